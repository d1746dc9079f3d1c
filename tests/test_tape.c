/* test_tape.c -- the tape: hash-consing, the reverse sweep, accumulation, higher order,
 * replay (and that it allocates nothing), and the allocator hook. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "helpers.h"
#include "userops.h"

static const size_t D23[2] = { 2, 3 };

START_TEST(test_hashcons_returns_existing_node)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 2, D23, NULL);
	nb_tensor *s1 = nb_sigmoid(t, x);
	size_t n = nb_tape_size(t);
	nb_tensor *s2 = nb_sigmoid(t, x);

	ck_assert_ptr_eq(s1, s2);
	ck_assert_uint_eq(nb_tape_size(t), n);
	ck_assert_ptr_eq(nb_scalar(t, 1.0), nb_scalar(t, 1.0));
	ck_assert_ptr_ne(nb_scalar(t, 1.0), nb_scalar(t, 2.0));
	ck_assert_ptr_ne(nb_scale(t, x, 2.0), nb_scale(t, x, 3.0));
	ck_assert_ptr_ne(nb_matmul_t(t, x, x, NB_TRANS_A), nb_matmul_t(t, x, x, NB_TRANS_B));
	nb_tape_free(t);
}
END_TEST

START_TEST(test_leaves_are_never_merged)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *a = nb_constant(t, 2, D23, NULL);
	nb_tensor *b = nb_constant(t, 2, D23, NULL);

	ck_assert_ptr_ne(a, b);
	ck_assert_uint_eq(nb_tape_size(t), 2);
	nb_tape_free(t);
}
END_TEST

/* sigma'(z) = sigma(z)(1 - sigma(z)) in sigmoid's rule reuses the forward node y. */
START_TEST(test_sigmoid_backward_reuses_forward_node)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *z = nb_variable(t, 2, D23, (double[]){ 1, 2, 3, -1, -2, 0 });
	nb_tensor *a = nb_sigmoid(t, z);
	/* weighted, so that dC/da is k and not a literal 1 that the product would drop */
	nb_tensor *k = nb_constant(t, 2, D23, (double[]){ 1, 2, 3, 4, 5, 6 });
	nb_tensor *c = nb_sum(t, nb_mul(t, a, k));
	nb_tensor *dz, *prime;
	size_t before;

	ck_assert_int_eq(nb_backward(t, c, NULL), NB_OK);
	dz = nb_grad(z);
	ck_assert_str_eq(nb_op_name(dz), "mul");
	ck_assert_ptr_eq(nb_input(dz, 0), k);
	prime = nb_input(dz, 1);
	ck_assert_str_eq(nb_op_name(prime), "mul");
	ck_assert_ptr_eq(nb_input(prime, 0), a);
	ck_assert_str_eq(nb_op_name(nb_input(prime, 1)), "sub");
	ck_assert_ptr_eq(nb_input(nb_input(prime, 1), 1), a);
	/* Writing sigma'(z) again by hand finds the same nodes: nothing is added. */
	before = nb_tape_size(t);
	ck_assert_ptr_eq(nb_mul(t, a, nb_sub(t, nb_scalar(t, 1.0), a)), prime);
	ck_assert_uint_eq(nb_tape_size(t), before);
	nb_tape_free(t);
}
END_TEST

/* A second sweep from the same output records no new node and gives the same values. */
START_TEST(test_backward_twice_is_identical)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *w = nb_variable(t, 2, D23, (double[]){ 1, -2, 3, 0.5, 2, -1 });
	nb_tensor *x = nb_constant(t, 2, (size_t[]){ 3, 2 }, (double[]){ 1, 2, 3, 4, 5, 6 });
	nb_tensor *c = nb_sum(t, nb_sigmoid(t, nb_matmul(t, w, x)));
	nb_tensor *g1, *g2;
	size_t n;

	ck_assert_int_eq(nb_backward(t, c, NULL), NB_OK);
	g1 = nb_grad(w);
	n = nb_tape_size(t);
	ck_assert_int_eq(nb_backward(t, c, NULL), NB_OK);
	g2 = nb_grad(w);
	ck_assert_ptr_eq(g1, g2);
	ck_assert_uint_eq(nb_tape_size(t), n);
	nb_tape_free(t);
}
END_TEST

/* x used three times: d/dx (x ⊙ x + x) = 2x + 1, summed over the uses. */
START_TEST(test_gradients_accumulate_over_uses)
{
	nb_tape *t = nb_tape_new();
	double v[3] = { -1.5, 0.25, 4.0 };
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 3 }, v);
	nb_tensor *y = nb_sum(t, nb_add(t, nb_mul(t, x, x), x));
	const double *g;

	ck_assert_int_eq(nb_backward(t, y, NULL), NB_OK);
	g = nb_value(nb_grad(x));
	for (int i = 0; i < 3; i++)
		ck_assert_double_eq(g[i], 2.0 * v[i] + 1.0);
	nb_tape_free(t);
}
END_TEST

START_TEST(test_constants_get_no_gradient)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 1, 2 });
	nb_tensor *k = nb_constant(t, 1, (size_t[]){ 2 }, (double[]){ 3, 4 });
	nb_tensor *y = nb_sum(t, nb_mul(t, x, k));

	ck_assert_int_eq(nb_backward(t, y, NULL), NB_OK);
	/* the gradient of a constant is a zero literal of its shape, usable in any op */
	ck_assert_str_eq(nb_op_name(nb_grad(k)), "fill");
	ck_assert_uint_eq(nb_size(nb_grad(k)), 2);
	ck_assert_double_eq(nb_value(nb_grad(k))[0], 0.0);
	ck_assert_double_eq(nb_value(nb_grad(k))[1], 0.0);
	ck_assert_double_eq(nb_value(nb_grad(x))[0], 3.0);
	ck_assert_double_eq(nb_value(nb_grad(x))[1], 4.0);
	nb_tape_free(t);
}
END_TEST

/* Gradients are nodes: d2/dx2 x^3 = 6x and d3/dx3 x^3 = 6 by repeated sweeps. */
START_TEST(test_higher_order_by_repeated_backward)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 0, NULL, (double[]){ 1.5 });
	nb_tensor *y = nb_mul(t, nb_mul(t, x, x), x);
	nb_tensor *g1, *g2;

	ck_assert_int_eq(nb_backward(t, y, NULL), NB_OK);
	g1 = nb_grad(x);
	ck_assert_double_eq_tol(nb_value(g1)[0], 3 * 1.5 * 1.5, 1e-15);
	ck_assert_int_eq(nb_backward(t, g1, NULL), NB_OK);
	g2 = nb_grad(x);
	ck_assert_double_eq_tol(nb_value(g2)[0], 6 * 1.5, 1e-15);
	ck_assert_int_eq(nb_backward(t, g2, NULL), NB_OK);
	ck_assert_double_eq_tol(nb_value(nb_grad(x))[0], 6.0, 1e-15);
	nb_tape_free(t);
}
END_TEST

START_TEST(test_backward_with_seed)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 2, 3 });
	nb_tensor *y = nb_mul(t, x, x);
	nb_tensor *seed = nb_constant(t, 1, (size_t[]){ 2 }, (double[]){ 10, 100 });

	ck_assert_int_eq(nb_backward(t, y, seed), NB_OK);
	ck_assert_double_eq(nb_value(nb_grad(x))[0], 40.0);
	ck_assert_double_eq(nb_value(nb_grad(x))[1], 600.0);
	nb_tape_free(t);
}
END_TEST

/* A two-layer sigmoid network with its gradients; *out gets [cost, w1, w2, b1, x]. */
static nb_tensor *build_net(nb_tape *t, const double *x, const double *w1, const double *w2,
                            const double *b1, nb_tensor **out)
{
	nb_tensor *X = nb_constant(t, 2, (size_t[]){ 3, 4 }, x);
	nb_tensor *W1 = nb_variable(t, 2, (size_t[]){ 5, 3 }, w1);
	nb_tensor *B1 = nb_variable(t, 2, (size_t[]){ 5, 1 }, b1);
	nb_tensor *W2 = nb_variable(t, 2, (size_t[]){ 2, 5 }, w2);
	nb_tensor *Y = nb_constant(t, 2, (size_t[]){ 2, 4 }, NULL);
	nb_tensor *a1 = nb_sigmoid(t, nb_add(t, nb_matmul(t, W1, X), B1));
	nb_tensor *c = nb_quadratic_cost(t, nb_sigmoid(t, nb_matmul(t, W2, a1)), Y);

	nb_backward(t, c, NULL);
	out[0] = c;
	out[1] = W1;
	out[2] = W2;
	out[3] = B1;
	out[4] = X;
	return c;
}

static void random_net(test_rng *r, double *x, double *w1, double *w2, double *b1)
{
	rng_fill(r, x, 12, 0, 1);
	rng_fill(r, w1, 15, -1, 1);
	rng_fill(r, w2, 10, -1, 1);
	rng_fill(r, b1, 5, -1, 1);
}

/* Replay after nb_set gives bit-identical values to building the graph afresh. */
START_TEST(test_replay_matches_fresh_build)
{
	test_rng r;
	double x[12], w1[15], w2[10], b1[5], x2[12];
	nb_tensor *a[5], *b[5];
	nb_tape *t = nb_tape_new(), *u = nb_tape_new();

	rng_seed(&r, 7);
	random_net(&r, x, w1, w2, b1);
	rng_fill(&r, x2, 12, 0, 1);
	build_net(t, x, w1, w2, b1, a);
	ck_assert_int_eq(nb_set(a[4], x2, 12), NB_OK);
	ck_assert_int_eq(nb_tape_replay(t), NB_OK);
	build_net(u, x2, w1, w2, b1, b);
	ck_assert_int_eq(nb_tape_status(u), NB_OK);
	for (int i = 0; i < 4; i++) {
		const nb_tensor *ga = i ? nb_grad(a[i]) : a[0], *gb = i ? nb_grad(b[i]) : b[0];

		ck_assert_uint_eq(nb_size(ga), nb_size(gb));
		ck_assert_mem_eq(nb_value(ga), nb_value(gb), nb_size(ga) * sizeof(double));
	}
	nb_tape_free(t);
	nb_tape_free(u);
}
END_TEST

START_TEST(test_replay_allocates_nothing)
{
	test_rng r;
	double x[12], w1[15], w2[10], b1[5];
	nb_tensor *a[5];
	count_alloc c = { 0 };
	nb_tape *t = nb_tape_new_alloc(count_alloc_fn, &c);
	size_t allocs;

	rng_seed(&r, 3);
	random_net(&r, x, w1, w2, b1);
	build_net(t, x, w1, w2, b1, a);
	allocs = c.allocs;
	ck_assert_uint_gt(allocs, 0);
	for (int step = 0; step < 5; step++) {
		rng_fill(&r, x, 12, 0, 1);
		ck_assert_int_eq(nb_set(a[4], x, 12), NB_OK);
		ck_assert_int_eq(nb_tape_replay(t), NB_OK);
	}
	ck_assert_uint_eq(c.allocs, allocs);
	nb_tape_free(t);
	ck_assert_uint_eq(c.frees, c.allocs);
	ck_assert_uint_eq(c.bytes_in_use, 0);
}
END_TEST

/* Every allocation of a small training graph is made to fail in turn: each run ends with
 * NB_ENOMEM or completes, and the tape frees everything it took. */
START_TEST(test_every_allocation_failure_is_reported)
{
	test_rng r;
	double x[12], w1[15], w2[10], b1[5];
	nb_tensor *a[5];
	size_t k;

	rng_seed(&r, 5);
	random_net(&r, x, w1, w2, b1);
	for (k = 2;; k++) {  /* allocation 1 is the tape itself: nb_tape_new_alloc is NULL */
		count_alloc c = { .fail_at = k };
		nb_tape *t = nb_tape_new_alloc(count_alloc_fn, &c);
		int status;

		ck_assert_ptr_nonnull(t);
		build_net(t, x, w1, w2, b1, a);
		status = nb_tape_status(t);
		nb_tape_free(t);
		ck_assert_uint_eq(c.bytes_in_use, 0);
		if (c.fail_at != 0) {  /* nothing failed: the whole graph was built */
			ck_assert_int_eq(status, NB_OK);
			break;
		}
		ck_assert_int_eq(status, NB_ENOMEM);
	}
	/* nodes live in chunks, so a graph takes few allocations: the tape, its node list,
	 * chunks, the hash table, scratch space */
	ck_assert_uint_gt(k, 4);
	{
		count_alloc c = { .fail_at = 1 };

		ck_assert_ptr_null(nb_tape_new_alloc(count_alloc_fn, &c));
	}
}
END_TEST

START_TEST(test_out_of_memory_message)
{
	count_alloc c = { .fail_at = 3 };
	nb_tape *t = nb_tape_new_alloc(count_alloc_fn, &c);

	/* allocation 2 is the node list, 3 the first chunk of nodes */
	ck_assert_ptr_null(nb_constant(t, 2, (size_t[]){ 10, 10 }, NULL));
	ck_assert_int_eq(nb_tape_status(t), NB_ENOMEM);
	/* the size includes the node's header, which is the library's business */
	ck_assert_int_eq(strncmp(nb_tape_message(t), "constant: out of memory allocating ", 35), 0);
	ck_assert_ptr_nonnull(strstr(nb_tape_message(t), " bytes for shape (10x10)"));
	ck_assert_uint_eq(nb_tape_size(t), 0);
	nb_tape_free(t);
}
END_TEST

START_TEST(test_clear_error_makes_tape_usable)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *a = nb_constant(t, 1, (size_t[]){ 2 }, (double[]){ 1, 2 });

	ck_assert_ptr_null(nb_matmul(t, a, a));
	ck_assert_int_eq(nb_tape_status(t), NB_ERANK);
	nb_tape_clear_error(t);
	ck_assert_int_eq(nb_tape_status(t), NB_OK);
	ck_assert_str_eq(nb_tape_message(t), "");
	ck_assert_double_eq(nb_value(nb_sum(t, a))[0], 3.0);
	nb_tape_free(t);
}
END_TEST

/* ---- Non-finite values and stale values -------------------------------------------- */

START_TEST(test_check_finite_names_the_forward_op)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 1, -1 });

	ck_assert_double_nan(nb_value(nb_log(t, x))[1]);  /* off by default: NaN, no error */
	ck_assert_int_eq(nb_tape_status(t), NB_OK);
	nb_tape_check_finite(t, 1);
	ck_assert_ptr_null(nb_log(t, nb_scale(t, x, 2.0)));
	ck_assert_int_eq(nb_tape_status(t), NB_ENONFINITE);
	ck_assert_str_eq(nb_tape_message(t), "log: produced NaN at element 1 of node 3, shape (2), "
	                 "in the forward pass");
	nb_tape_free(t);
}
END_TEST

START_TEST(test_check_finite_catches_overflow)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_constant(t, 0, NULL, (double[]){ 1000 });

	nb_tape_check_finite(t, 1);
	ck_assert_ptr_null(nb_exp(t, x));
	ck_assert_str_eq(nb_tape_message(t), "exp: produced an infinity at element 0 of node 1, "
	                 "shape (), in the forward pass");
	nb_tape_free(t);
}
END_TEST

/* log(x) is finite at a tiny x, but its gradient 1/x overflows: the backward pass. */
START_TEST(test_check_finite_catches_backward)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 0, NULL, (double[]){ 1e-320 });
	nb_tensor *y = nb_log(t, x);

	nb_tape_check_finite(t, 1);
	ck_assert_double_eq_tol(nb_value(y)[0], log(1e-320), 1e-9);
	ck_assert_int_eq(nb_backward(t, y, NULL), NB_ENONFINITE);
	ck_assert_str_eq(nb_tape_message(t), "div: produced an infinity at element 0 of node 3, "
	                 "shape (), in the backward pass");
	nb_tape_free(t);
}
END_TEST

START_TEST(test_check_finite_in_replay)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 0, NULL, (double[]){ 2 });

	nb_tape_check_finite(t, 1);
	ck_assert_ptr_nonnull(nb_log(t, x));
	ck_assert_int_eq(nb_set(x, (double[]){ -2 }, 1), NB_OK);
	ck_assert_int_eq(nb_tape_replay(t), NB_ENONFINITE);
	ck_assert_str_eq(nb_tape_message(t), "log: produced NaN at element 0 of node 1, shape (), "
	                 "in the forward pass");
	nb_tape_check_finite(NULL, 1);
	nb_tape_free(t);
}
END_TEST

/* A value backward reads was computed before its input changed: the sweep recomputes it
 * first, so the gradient is the one at the new point, with or without a replay. */
START_TEST(test_backward_after_set_uses_new_values)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 1, 2 });
	nb_tensor *other = nb_variable(t, 0, NULL, (double[]){ 3 });
	nb_tensor *y = nb_sum(t, nb_mul(t, x, x));

	ck_assert_ptr_nonnull(nb_exp(t, other));
	ck_assert_int_eq(nb_set(other, (double[]){ 4 }, 1), NB_OK);
	ck_assert_int_eq(nb_backward(t, y, NULL), NB_OK);
	ck_assert_double_eq(nb_value(nb_grad(x))[1], 4.0);
	ck_assert_int_eq(nb_set(x, (double[]){ 3, 4 }, 2), NB_OK);
	ck_assert_int_eq(nb_backward(t, y, NULL), NB_OK);
	ck_assert_double_eq(nb_value(y)[0], 25.0);
	ck_assert_double_eq(nb_value(nb_grad(x))[0], 6.0);
	ck_assert_double_eq(nb_value(nb_grad(x))[1], 8.0);
	nb_tape_free(t);
}
END_TEST

/* The header, the library and the package (AC_INIT, through config.h) agree on the
 * version, and the header's parts and number are made of the package's string. */
START_TEST(test_version)
{
	char parts[32];

	ck_assert_str_eq(nb_version(), PACKAGE_VERSION);
	ck_assert_str_eq(nb_version(), NB_VERSION_STRING);
	snprintf(parts, sizeof parts, "%d.%d.%d", NB_VERSION_MAJOR, NB_VERSION_MINOR,
	         NB_VERSION_PATCH);
	ck_assert_str_eq(parts, PACKAGE_VERSION);
	ck_assert_int_eq(nb_version_number(), NB_VERSION_NUMBER);
	ck_assert_int_eq(NB_VERSION_NUMBER,
	                 NB_VERSION_MAJOR * 10000 + NB_VERSION_MINOR * 100 + NB_VERSION_PATCH);
}
END_TEST

START_TEST(test_queries)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_constant(t, 3, (size_t[]){ 2, 3, 4 }, NULL);
	char buf[NB_MSG_MAX];

	ck_assert_int_eq(nb_rank(x), 3);
	ck_assert_uint_eq(nb_dim(x, 2), 4);
	ck_assert_uint_eq(nb_dim(x, 3), 0);
	ck_assert_uint_eq(nb_dim(x, -1), 0);
	ck_assert_uint_eq(nb_size(x), 24);
	ck_assert_str_eq(nb_shape_str(x, buf), "(2x3x4)");
	ck_assert_str_eq(nb_shape_str(nb_scalar(t, 1), buf), "()");
	ck_assert_str_eq(nb_op_name(x), "constant");
	ck_assert_ptr_null(nb_input(x, 0));
	ck_assert_int_eq(nb_rank(NULL), -1);
	ck_assert_uint_eq(nb_size(NULL), 0);
	ck_assert_ptr_null(nb_value(NULL));
	ck_assert_ptr_null(nb_op_name(NULL));
	ck_assert_ptr_null(nb_grad(NULL));
	ck_assert_str_eq(nb_shape_str(NULL, buf), "(null)");
	ck_assert_str_eq(nb_status_name(NB_ESHAPE), "NB_ESHAPE");
	ck_assert_str_eq(nb_status_name(99), "NB_UNKNOWN");
	ck_assert_str_eq(nb_status_text(NB_ENOMEM), "out of memory");
	nb_tape_free(t);
	nb_tape_free(NULL);
}
END_TEST

/* A locked tape refuses every change with the same message, recorded on it, and keeps
 * answering reads; only its key unlocks it, and only then does nb_tape_free() free it. */
START_TEST(test_locked_tape_is_read_only)
{
	static const char *const fns[] = {
		"constant", "variable", "add", "set", "touch", "set_name", "rewind", "backward",
		"gradients", "sgd_update", "check_finite", "tape_free", "cube"
	};
	int key, other;
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 1, 2 });
	nb_tensor *y = nb_sum(t, nb_mul(t, x, x)), *g = NULL;
	nb_sgd_opts sgd = { .eta = 0.1 };
	char want[NB_MSG_MAX];
	size_t n;

	ck_assert_int_eq(nb_backward(t, y, NULL), NB_OK);
	ck_assert_int_eq(nb_tape_lock(t, &key), NB_OK);
	ck_assert(nb_tape_locked(t));
	n = nb_tape_size(t);
	for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
		switch (i) {
		case 0: ck_assert_ptr_null(nb_constant(t, 0, NULL, (double[]){ 1 })); break;
		case 1: ck_assert_ptr_null(nb_variable(t, 0, NULL, (double[]){ 1 })); break;
		case 2: ck_assert_ptr_null(nb_add(t, x, x)); break;
		case 3: ck_assert_int_eq(nb_set(x, (double[]){ 3, 4 }, 2), NB_EINVAL); break;
		case 4: ck_assert_int_eq(nb_touch(x), NB_EINVAL); break;
		case 5: nb_set_name(x, "renamed"); break;
		case 6: ck_assert_int_eq(nb_tape_rewind(t, 0), NB_EINVAL); break;
		case 7: ck_assert_int_eq(nb_backward(t, y, NULL), NB_EINVAL); break;
		case 8: ck_assert_int_eq(nb_gradients(t, y, NULL, &x, 1, &g), NB_EINVAL); break;
		case 9: ck_assert_int_eq(nb_sgd_update(&x, NULL, NULL, 1, &sgd), NB_EINVAL); break;
		case 10: nb_tape_check_finite(t, 1); break;
		case 11: nb_tape_free(t); break;
		case 12: ck_assert_ptr_null(nb_apply(t, &cube_op, &x, 1)); break;
		}
		snprintf(want, sizeof want, "%s: the tape is read-only (its owner locked it with "
		         "nb_tape_lock)", fns[i]);
		ck_assert_int_eq(nb_tape_status(t), NB_EINVAL);
		ck_assert_str_eq(nb_tape_message(t), want);
		nb_tape_clear_error(t);
	}
	/* nothing changed, and reads still work */
	ck_assert_uint_eq(nb_tape_size(t), n);
	ck_assert_str_eq(nb_name(x), "");
	ck_assert_double_eq(nb_value(y)[0], 5.0);
	ck_assert_double_eq(nb_value(nb_grad(x))[1], 4.0);
	ck_assert_int_eq(nb_tape_replay(t), NB_OK);
	ck_assert_int_eq(nb_tape_lock(t, &other), NB_EINVAL);
	ck_assert_str_eq(nb_tape_message(t), "tape_lock: the tape is locked already");
	nb_tape_clear_error(t);
	ck_assert_int_eq(nb_tape_unlock(t, &other), NB_EINVAL);
	ck_assert_str_eq(nb_tape_message(t), "tape_unlock: another key locked the tape");
	nb_tape_clear_error(t);
	ck_assert_int_eq(nb_tape_unlock(t, &key), NB_OK);
	ck_assert(!nb_tape_locked(t));
	ck_assert_int_eq(nb_tape_unlock(t, &key), NB_EINVAL);
	ck_assert_str_eq(nb_tape_message(t), "tape_unlock: the tape is not locked");
	ck_assert_int_eq(nb_tape_lock(NULL, &key), NB_ENULL);
	ck_assert_int_eq(nb_tape_lock(t, NULL), NB_ENULL);
	ck_assert_int_eq(nb_tape_unlock(NULL, &key), NB_ENULL);
	ck_assert(!nb_tape_locked(NULL));
	nb_tape_free(t);
}
END_TEST

static Suite *tape_suite(void)
{
	Suite *s = suite_create("tape");
	TCase *tc = tcase_create("tape");

	tcase_add_test(tc, test_hashcons_returns_existing_node);
	tcase_add_test(tc, test_leaves_are_never_merged);
	tcase_add_test(tc, test_sigmoid_backward_reuses_forward_node);
	tcase_add_test(tc, test_backward_twice_is_identical);
	tcase_add_test(tc, test_gradients_accumulate_over_uses);
	tcase_add_test(tc, test_constants_get_no_gradient);
	tcase_add_test(tc, test_higher_order_by_repeated_backward);
	tcase_add_test(tc, test_backward_with_seed);
	tcase_add_test(tc, test_replay_matches_fresh_build);
	tcase_add_test(tc, test_replay_allocates_nothing);
	tcase_add_test(tc, test_every_allocation_failure_is_reported);
	tcase_add_test(tc, test_out_of_memory_message);
	tcase_add_test(tc, test_clear_error_makes_tape_usable);
	tcase_add_test(tc, test_queries);
	tcase_add_test(tc, test_version);
	tcase_add_test(tc, test_check_finite_names_the_forward_op);
	tcase_add_test(tc, test_check_finite_catches_overflow);
	tcase_add_test(tc, test_check_finite_catches_backward);
	tcase_add_test(tc, test_locked_tape_is_read_only);
	tcase_add_test(tc, test_check_finite_in_replay);
	tcase_add_test(tc, test_backward_after_set_uses_new_values);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(tape_suite());
}
