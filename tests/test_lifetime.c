/* test_lifetime.c -- the lifetime rules of a define-by-run program: values are never stale
 * after nb_set() or nb_touch(), a failed call records nothing, every size is checked,
 * tapes rewind to a mark and record again without allocating, views, names. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "helpers.h"

/* ---- No stale value ---------------------------------------------------------------- */

/* An op recorded after nb_set() that hash-conses onto a node computed before it gets the
 * node's current value, not the old one. */
START_TEST(test_hashconsed_node_after_set_is_current)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 0, NULL, (double[]){ 0.0 });
	nb_tensor *y = nb_exp(t, x);

	ck_assert_double_eq(nb_value(y)[0], 1.0);
	ck_assert_int_eq(nb_set(x, (double[]){ 1.0 }, 1), NB_OK);
	ck_assert_double_eq(nb_value(nb_add(t, nb_exp(t, x), x))[0], exp(1.0) + 1.0);
	ck_assert_ptr_eq(nb_exp(t, x), y);
	ck_assert_double_eq(nb_value(y)[0], exp(1.0));
	ck_assert_int_eq(nb_tape_status(t), NB_OK);
	nb_tape_free(t);
}
END_TEST

/* A loop that changes its inputs and forgets nb_tape_replay() still reads the values of
 * the current inputs, and only what changed is recomputed. */
START_TEST(test_value_after_set_without_replay)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_constant(t, 1, (size_t[]){ 2 }, (double[]){ 1, 2 });
	nb_tensor *w = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 3, 4 });
	nb_tensor *c = nb_sum(t, nb_mul(t, x, w));

	for (int i = 0; i < 5; i++) {
		double v[2] = { i, 2.0 * i };

		ck_assert_int_eq(nb_set(x, v, 2), NB_OK);
		ck_assert_double_eq(nb_value(c)[0], 3.0 * i + 8.0 * i);
	}
	nb_tape_free(t);
}
END_TEST

/* The gradient node of a first sweep, handed back by hash-consing in a second sweep after
 * nb_set(), holds the gradient at the new point. */
START_TEST(test_second_sweep_after_set_is_current)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *w = nb_variable(t, 1, (size_t[]){ 3 }, (double[]){ 5, 6, 7 });
	nb_tensor *c = nb_constant(t, 1, (size_t[]){ 3 }, (double[]){ 1, 2, 3 });
	const double *g;

	ck_assert_int_eq(nb_backward(t, nb_sum(t, nb_mul(t, w, c)), NULL), NB_OK);
	ck_assert_int_eq(nb_set(c, (double[]){ 10, 20, 30 }, 3), NB_OK);
	ck_assert_int_eq(nb_backward(t, nb_sum(t, nb_mul(t, c, w)), NULL), NB_OK);
	g = nb_value(nb_grad(w));
	ck_assert_double_eq(g[0], 10.0);
	ck_assert_double_eq(g[1], 20.0);
	ck_assert_double_eq(g[2], 30.0);
	nb_tape_free(t);
}
END_TEST

/* Replay recomputes only the nodes whose inputs changed: a node that depends on an
 * unchanged leaf keeps its value buffer untouched (its contents are poked to see). */
START_TEST(test_replay_recomputes_only_what_changed)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *a = nb_variable(t, 0, NULL, (double[]){ 1.0 });
	nb_tensor *b = nb_variable(t, 0, NULL, (double[]){ 2.0 });
	nb_tensor *ea = nb_exp(t, a), *eb = nb_exp(t, b);
	double *peek = (double *)nb_value(ea);

	peek[0] = -1.0;  /* a value replay would overwrite if it recomputed ea */
	ck_assert_int_eq(nb_set(b, (double[]){ 3.0 }, 1), NB_OK);
	ck_assert_int_eq(nb_tape_replay(t), NB_OK);
	ck_assert_double_eq(nb_value(ea)[0], -1.0);
	ck_assert_double_eq(nb_value(eb)[0], exp(3.0));
	nb_tape_free(t);
}
END_TEST

/* ---- A failed call records nothing ------------------------------------------------- */

START_TEST(test_failed_nonfinite_call_records_nothing)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 1, -1 });
	size_t n = nb_tape_size(t);

	nb_tape_check_finite(t, 1);
	for (int attempt = 0; attempt < 3; attempt++) {
		ck_assert_ptr_null(nb_log(t, x));
		ck_assert_int_eq(nb_tape_status(t), NB_ENONFINITE);
		ck_assert_uint_eq(nb_tape_size(t), n);
		nb_tape_clear_error(t);
		ck_assert_int_eq(nb_tape_replay(t), NB_OK);
	}
	ck_assert_int_eq(nb_set(x, (double[]){ 1, 2 }, 2), NB_OK);
	ck_assert_double_eq(nb_value(nb_log(t, x))[1], log(2.0));
	ck_assert_uint_eq(nb_tape_size(t), n + 1);
	nb_tape_free(t);
}
END_TEST

START_TEST(test_failed_shape_call_records_nothing)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *a = nb_constant(t, 2, (size_t[]){ 3, 4 }, NULL);
	nb_tensor *b = nb_constant(t, 2, (size_t[]){ 5, 2 }, NULL);
	size_t n = nb_tape_size(t);

	ck_assert_ptr_null(nb_matmul(t, a, b));
	ck_assert_ptr_null(nb_add(t, a, b));
	ck_assert_uint_eq(nb_tape_size(t), n);
	nb_tape_free(t);
}
END_TEST

/* Record the same sequence of ops with allocation k failing, for every k: the failed call
 * leaves the tape as it was (no node, and no hash entry: after clearing the error the
 * same op records a fresh node in the same place, with the right value). */
static nb_tensor *record_op(nb_tape *t, int i, nb_tensor **h)
{
	switch (i) {
	case 0: return nb_variable(t, 2, (size_t[]){ 40, 30 }, NULL);
	case 1: return nb_constant(t, 2, (size_t[]){ 30, 20 }, NULL);
	case 2: return nb_matmul(t, h[0], h[1]);
	case 3: return nb_sigmoid(t, h[2]);
	case 4: return nb_fill(t, 2, (size_t[]){ 40, 20 }, 0.5);
	case 5: return nb_mul(t, h[3], h[4]);
	default: return nb_sum(t, h[5]);
	}
}

START_TEST(test_failed_allocation_records_nothing)
{
	const int ops = 7;
	size_t k;

	for (k = 2;; k++) {
		count_alloc c = { .fail_at = k };
		nb_tape *t = nb_tape_new_alloc(count_alloc_fn, &c);
		nb_tensor *h[7];
		int failed = -1;

		for (int i = 0; i < ops; i++) {
			size_t n = nb_tape_size(t);

			h[i] = record_op(t, i, h);
			if (h[i])
				continue;
			ck_assert_int_eq(nb_tape_status(t), NB_ENOMEM);
			ck_assert_uint_eq(nb_tape_size(t), n);
			failed = i;
			nb_tape_clear_error(t);
			h[i] = record_op(t, i, h);
			ck_assert_ptr_nonnull(h[i]);
			ck_assert_uint_eq(nb_tape_size(t), n + 1);
		}
		/* 40 x 20 halves of sigmoid(0) = 0.5: 800 * 0.25 */
		ck_assert_double_eq(nb_value(h[6])[0], 200.0);
		ck_assert_int_eq(nb_tape_status(t), NB_OK);
		nb_tape_free(t);
		ck_assert_uint_eq(c.bytes_in_use, 0);
		if (failed < 0)
			break;
	}
	ck_assert_uint_gt(k, 4);
}
END_TEST

/* A sweep that runs out of memory is undone: the tape has the nodes it had before. */
START_TEST(test_failed_backward_records_nothing)
{
	size_t k;

	for (k = 2;; k++) {
		count_alloc c = { 0 };
		nb_tape *t = nb_tape_new_alloc(count_alloc_fn, &c);
		nb_tensor *x = nb_variable(t, 2, (size_t[]){ 200, 100 }, NULL);
		nb_tensor *y = nb_sum(t, nb_tanh(t, nb_matmul_t(t, x, x, NB_TRANS_B)));
		size_t n = nb_tape_size(t);
		int status;

		c.fail_at = c.allocs + (k - 1);
		status = nb_backward(t, y, NULL);
		if (status == NB_OK) {
			nb_tape_free(t);
			break;
		}
		ck_assert_int_eq(status, NB_ENOMEM);
		ck_assert_uint_eq(nb_tape_size(t), n);
		ck_assert_ptr_null(nb_grad(x));
		nb_tape_free(t);
		ck_assert_uint_eq(c.bytes_in_use, 0);
	}
	ck_assert_uint_gt(k, 2);
}
END_TEST

/* ---- Every size checked ------------------------------------------------------------ */

/* An allocator that refuses anything over 1 GiB, as a machine without that memory would
 * (the sanitizers' malloc would rather abort the test). */
static void *small_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	(void)ud;
	(void)osize;
	if (nsize == 0) {
		free(ptr);
		return NULL;
	}
	return nsize > ((size_t)1 << 30) ? NULL : malloc(nsize);
}

START_TEST(test_leaf_size_overflow_is_eshape)
{
	nb_tape *t = nb_tape_new_alloc(small_alloc, NULL);
	size_t n = SIZE_MAX / 8;

	/* n doubles fit in size_t, but not with the node's header */
	ck_assert_ptr_null(nb_constant(t, 1, &n, NULL));
	ck_assert_int_eq(nb_tape_status(t), NB_ESHAPE);
	ck_assert_str_eq(nb_tape_message(t), "constant: shape (2305843009213693951) is too "
	                 "large: its size in bytes overflows size_t");
	ck_assert_uint_eq(nb_tape_size(t), 0);
	nb_tape_free(t);
}
END_TEST

/* At the boundary: the largest sizes whose bytes fit are an allocation failure
 * (NB_ENOMEM naming the op and shape), one more element is an overflow (NB_ESHAPE). */
START_TEST(test_leaf_size_boundary)
{
	size_t n, last_fit = 0;
	int prev = NB_ENOMEM;

	/* Walk up to the boundary: it lies within a few hundred elements of SIZE_MAX / 8. */
	for (n = SIZE_MAX / 8 - 64; n <= SIZE_MAX / 8; n++) {
		nb_tape *t = nb_tape_new_alloc(small_alloc, NULL);
		int status;

		ck_assert_ptr_null(nb_constant(t, 1, &n, NULL));
		status = nb_tape_status(t);
		ck_assert(status == NB_ENOMEM || status == NB_ESHAPE);
		if (status == NB_ENOMEM) {
			ck_assert_int_eq(prev, NB_ENOMEM);  /* no ENOMEM after the first ESHAPE */
			ck_assert_ptr_nonnull(strstr(nb_tape_message(t), "constant: out of memory"));
			last_fit = n;
		}
		prev = status;
		nb_tape_free(t);
	}
	ck_assert_uint_gt(last_fit, SIZE_MAX / 8 - 64);
	ck_assert_uint_lt(last_fit, SIZE_MAX / 8);
	ck_assert_int_eq(prev, NB_ESHAPE);
}
END_TEST

/* Computed shapes are checked too: broadcasting K x 1 with 1 x K, and the product of
 * the same two, would need K^2 elements. Views make the operands without memory. */
START_TEST(test_computed_size_overflow_is_eshape)
{
	static double small[1];
	nb_tape *t = nb_tape_new_alloc(small_alloc, NULL);
	size_t k = (size_t)1 << 33;
	nb_tensor *col = nb_constant_view(t, 2, (size_t[]){ k, 1 }, small);
	nb_tensor *row = nb_constant_view(t, 2, (size_t[]){ 1, k }, small);
	size_t n = nb_tape_size(t);

	ck_assert_ptr_nonnull(col);
	ck_assert_ptr_null(nb_add(t, col, row));
	ck_assert_int_eq(nb_tape_status(t), NB_ESHAPE);
	ck_assert_str_eq(nb_tape_message(t), "add: shape (8589934592x8589934592) is too large: "
	                 "its size in bytes overflows size_t");
	nb_tape_clear_error(t);
	ck_assert_ptr_null(nb_matmul(t, col, row));
	ck_assert_int_eq(nb_tape_status(t), NB_ESHAPE);
	ck_assert_str_eq(nb_tape_message(t), "matmul: shape (8589934592x8589934592) is too "
	                 "large: its size in bytes overflows size_t");
	nb_tape_clear_error(t);
	ck_assert_ptr_null(nb_broadcast_to(t, col, 3, (size_t[]){ k, k, 1 }));
	ck_assert_int_eq(nb_tape_status(t), NB_ESHAPE);
	ck_assert_uint_eq(nb_tape_size(t), n);
	nb_tape_free(t);
}
END_TEST

/* A view's values are the caller's, but its shape must still be addressable. */
START_TEST(test_view_size_overflow_is_eshape)
{
	static double small[1];
	nb_tape *t = nb_tape_new();
	size_t big = (size_t)1 << 40;

	ck_assert_ptr_null(nb_constant_view(t, 2, (size_t[]){ big, big }, small));
	ck_assert_int_eq(nb_tape_status(t), NB_ESHAPE);
	ck_assert_str_eq(nb_tape_message(t), "constant: shape (1099511627776x1099511627776) is "
	                 "too large: its size in bytes overflows size_t");
	nb_tape_clear_error(t);
	ck_assert_ptr_null(nb_variable_view(t, 1, (size_t[]){ SIZE_MAX / 4 }, small));
	ck_assert_int_eq(nb_tape_status(t), NB_ESHAPE);
	ck_assert_uint_eq(nb_tape_size(t), 0);
	nb_tape_free(t);
}
END_TEST

/* Ops made of two recordings (sum_axis without keepdim: a reduction, then a reshape;
 * 0 - b: -b, then its broadcast) record nothing when either step fails. Each allocation
 * of the call is made to fail in turn; the shapes are such that the second step's node
 * needs a new chunk of the tape (16 KiB at first), so that it fails too. */
static nb_tensor *two_step(nb_tape *t, nb_tensor *x, nb_tensor *zero, int which)
{
	return which == 0 ? nb_sum_axis(t, x, 0, 0) : nb_sub(t, zero, x);
}

START_TEST(test_failed_composite_op_records_nothing)
{
	static const char *second[2] = { "reshape: out of memory", "broadcast_to: out of memory" };
	static const size_t cols[2] = { 500, 300 };

	for (int which = 0; which < 2; which++) {
		int second_failed = 0;
		size_t k;

		for (k = 1;; k++) {
			count_alloc c = { 0 };
			nb_tape *t = nb_tape_new_alloc(count_alloc_fn, &c);
			nb_tensor *x = nb_variable(t, 2, (size_t[]){ 2, cols[which] }, NULL);
			nb_tensor *zero = nb_fill(t, 3, (size_t[]){ 2, 1, 1 }, 0.0);
			size_t n = nb_tape_size(t);
			nb_tensor *y;

			ck_assert_ptr_nonnull(zero);
			c.fail_at = c.allocs + k;
			y = two_step(t, x, zero, which);
			if (!y) {
				ck_assert_int_eq(nb_tape_status(t), NB_ENOMEM);
				ck_assert_uint_eq(nb_tape_size(t), n);
				second_failed += !strncmp(nb_tape_message(t), second[which],
				                          strlen(second[which]));
			}
			nb_tape_free(t);
			ck_assert_uint_eq(c.bytes_in_use, 0);
			if (y)
				break;
		}
		ck_assert_int_eq(second_failed, 1);
	}
}
END_TEST

/* ---- Rewind ------------------------------------------------------------------------ */

START_TEST(test_rewind_drops_nodes_after_the_mark)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 3 }, (double[]){ 1, 2, 3 });
	size_t mark = nb_tape_mark(t);
	nb_tensor *y = nb_sum(t, nb_exp(t, x));

	ck_assert_uint_eq(mark, 1);
	ck_assert_ptr_nonnull(y);
	ck_assert_int_eq(nb_backward(t, y, NULL), NB_OK);
	ck_assert_ptr_nonnull(nb_grad(x));
	ck_assert_uint_gt(nb_tape_size(t), 3);
	ck_assert_int_eq(nb_tape_rewind(t, mark), NB_OK);
	ck_assert_uint_eq(nb_tape_size(t), 1);
	ck_assert_uint_eq(nb_tape_mark(t), mark);
	ck_assert_ptr_null(nb_grad(x));  /* its gradient was dropped */
	ck_assert_double_eq(nb_value(x)[2], 3.0);
	/* the hash-consing table forgot the dropped nodes: exp is recorded anew */
	y = nb_exp(t, x);
	ck_assert_uint_eq(nb_tape_size(t), 2);
	ck_assert_double_eq(nb_value(y)[0], exp(1.0));
	ck_assert_int_eq(nb_tape_reset(t), NB_OK);
	ck_assert_uint_eq(nb_tape_size(t), 0);
	nb_tape_free(t);
}
END_TEST

START_TEST(test_rewind_past_the_end_is_einval)
{
	nb_tape *t = nb_tape_new();

	ck_assert_ptr_nonnull(nb_scalar(t, 1.0));
	ck_assert_int_eq(nb_tape_rewind(t, 2), NB_EINVAL);
	ck_assert_int_eq(nb_tape_status(t), NB_EINVAL);
	ck_assert_str_eq(nb_tape_message(t), "rewind: mark 2 is past the end of the tape "
	                 "(1 nodes)");
	ck_assert_uint_eq(nb_tape_size(t), 1);
	ck_assert_int_eq(nb_tape_rewind(NULL, 0), NB_ENULL);
	ck_assert_int_eq(nb_tape_reset(NULL), NB_ENULL);
	ck_assert_uint_eq(nb_tape_mark(NULL), 0);
	nb_tape_free(t);
}
END_TEST

/* A gradient sweep recorded before the mark survives a rewind that drops only later
 * nodes. */
START_TEST(test_rewind_keeps_earlier_gradients)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 1, 2 });
	size_t mark;

	ck_assert_int_eq(nb_backward(t, nb_sum(t, nb_mul(t, x, x)), NULL), NB_OK);
	mark = nb_tape_mark(t);
	ck_assert_ptr_nonnull(nb_exp(t, x));
	ck_assert_int_eq(nb_tape_rewind(t, mark), NB_OK);
	ck_assert_double_eq(nb_value(nb_grad(x))[1], 4.0);
	nb_tape_free(t);
}
END_TEST

/* Nielsen's training step [784, 30, 10], batch 10, recorded again after each rewind:
 * once warm, the node count and the tape's bytes stay constant and nothing is
 * allocated, for 10,000 iterations. Parameters are views the step updates in place. */
struct nielsen {
	double w1[30 * 784], b1[30], w2[10 * 30], b2[10], x[10 * 784], y[10 * 10];
	nb_tensor *leaf[6];  /* w1, b1, w2, b2, x, y */
};

static void nielsen_init(struct nielsen *n, nb_tape *t)
{
	test_rng r;

	rng_seed(&r, 11);
	for (size_t i = 0; i < 30 * 784; i++)
		n->w1[i] = rng_normal(&r);
	rng_fill(&r, n->b1, 30, -1, 1);
	rng_fill(&r, n->w2, 300, -1, 1);
	rng_fill(&r, n->b2, 10, -1, 1);
	rng_fill(&r, n->x, 7840, 0, 1);
	memset(n->y, 0, sizeof n->y);
	for (int j = 0; j < 10; j++)
		n->y[j * 10 + j] = 1.0;
	n->leaf[0] = nb_variable_view(t, 2, (size_t[]){ 30, 784 }, n->w1);
	n->leaf[1] = nb_variable_view(t, 2, (size_t[]){ 30, 1 }, n->b1);
	n->leaf[2] = nb_variable_view(t, 2, (size_t[]){ 10, 30 }, n->w2);
	n->leaf[3] = nb_variable_view(t, 2, (size_t[]){ 10, 1 }, n->b2);
	n->leaf[4] = nb_constant_view(t, 2, (size_t[]){ 10, 784 }, n->x);
	n->leaf[5] = nb_constant_view(t, 2, (size_t[]){ 10, 10 }, n->y);
}

/* Record the forward pass and its gradients, take one SGD step; the cost before it. */
static double nielsen_step(struct nielsen *n, nb_tape *t)
{
	nb_tensor **p = n->leaf;
	nb_tensor *a1 = nb_sigmoid(t, nb_add(t, nb_matmul_t(t, p[0], p[4], NB_TRANS_B), p[1]));
	nb_tensor *a2 = nb_sigmoid(t, nb_add(t, nb_matmul(t, p[2], a1), p[3]));
	nb_tensor *c = nb_quadratic_cost(t, a2, p[5]);
	nb_sgd_opts o = { .eta = 3.0 };
	double cost;

	ck_assert_int_eq(nb_backward(t, c, NULL), NB_OK);
	cost = nb_value(c)[0];
	ck_assert_int_eq(nb_sgd_update(p, NULL, NULL, 4, &o), NB_OK);
	return cost;
}

START_TEST(test_rerecord_loop_is_constant)
{
	static struct nielsen n;
	count_alloc c = { 0 };
	nb_tape *t = nb_tape_new_alloc(count_alloc_fn, &c);
	size_t mark, nodes, bytes, allocs;
	double first, cost = 0.0;

	nielsen_init(&n, t);
	mark = nb_tape_mark(t);
	first = nielsen_step(&n, t);
	nodes = nb_tape_size(t);
	bytes = nb_tape_bytes(t);
	allocs = c.allocs;
	for (int i = 0; i < 10000; i++) {
		ck_assert_int_eq(nb_tape_rewind(t, mark), NB_OK);
		cost = nielsen_step(&n, t);
		ck_assert_uint_eq(nb_tape_size(t), nodes);
		ck_assert_uint_eq(nb_tape_bytes(t), bytes);
	}
	ck_assert_uint_eq(c.allocs, allocs);
	ck_assert(cost < first);  /* the steps trained on the one mini-batch */
	nb_tape_free(t);
	ck_assert_uint_eq(c.bytes_in_use, 0);
}
END_TEST

/* ---- Views and touch --------------------------------------------------------------- */

START_TEST(test_view_reads_caller_memory_after_touch)
{
	double w[2] = { 1, 2 };
	nb_tape *t = nb_tape_new();
	nb_tensor *v = nb_variable_view(t, 1, (size_t[]){ 2 }, w);
	nb_tensor *s = nb_sum(t, nb_mul(t, v, v));

	ck_assert_ptr_eq(nb_value(v), w);
	ck_assert_double_eq(nb_value(s)[0], 5.0);
	w[0] = 3.0;
	ck_assert_int_eq(nb_touch(v), NB_OK);
	ck_assert_double_eq(nb_value(s)[0], 13.0);
	ck_assert_int_eq(nb_set(v, (double[]){ 0, 1 }, 2), NB_OK);  /* writes into w */
	ck_assert_double_eq(w[0], 0.0);
	ck_assert_double_eq(nb_value(s)[0], 1.0);
	ck_assert_int_eq(nb_backward(t, s, NULL), NB_OK);
	ck_assert_double_eq(nb_value(nb_grad(v))[1], 2.0);
	nb_tape_free(t);
	ck_assert_double_eq(w[1], 1.0);  /* the caller's array outlives the tape */
}
END_TEST

/* A touch takes effect on a tape holding an error: the caller wrote the array already. */
START_TEST(test_touch_on_tape_in_error_takes_effect)
{
	double w[1] = { 1.0 };
	nb_tape *t = nb_tape_new();
	nb_tensor *v = nb_variable_view(t, 0, NULL, w);
	nb_tensor *e = nb_exp(t, v);

	ck_assert_ptr_null(nb_matmul(t, v, v));
	w[0] = 2.0;
	ck_assert_int_eq(nb_touch(v), NB_ERANK);
	nb_tape_clear_error(t);
	ck_assert_double_eq(nb_value(e)[0], exp(2.0));
	nb_tape_free(t);
}
END_TEST

START_TEST(test_view_and_touch_errors)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 0, NULL, NULL);

	ck_assert_ptr_null(nb_variable_view(t, 1, (size_t[]){ 2 }, NULL));
	ck_assert_int_eq(nb_tape_status(t), NB_ENULL);
	ck_assert_str_eq(nb_tape_message(t), "variable_view: data is NULL");
	nb_tape_clear_error(t);
	ck_assert_ptr_null(nb_constant_view(t, 1, (size_t[]){ 0 }, (double[]){ 1 }));
	ck_assert_str_eq(nb_tape_message(t), "constant_view: dim 0 is 0");
	nb_tape_clear_error(t);
	ck_assert_int_eq(nb_touch(nb_exp(t, x)), NB_EINVAL);
	ck_assert_str_eq(nb_tape_message(t), "touch: tensor is a exp node, not a constant or "
	                 "variable leaf");
	ck_assert_int_eq(nb_touch(NULL), NB_ENULL);
	nb_tape_free(t);
}
END_TEST

/* ---- Names ------------------------------------------------------------------------- */

START_TEST(test_find_returns_latest_named_node)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *a = nb_scalar(t, 1.0), *b = nb_scalar(t, 2.0);

	nb_set_name(a, "w");
	ck_assert_ptr_eq(nb_tape_find(t, "w"), a);
	nb_set_name(b, "w");
	ck_assert_ptr_eq(nb_tape_find(t, "w"), b);
	ck_assert_ptr_null(nb_tape_find(t, "nothing"));
	ck_assert_ptr_null(nb_tape_find(t, ""));
	ck_assert_ptr_null(nb_tape_find(t, NULL));
	ck_assert_ptr_null(nb_tape_find(NULL, "w"));
	nb_tape_free(t);
}
END_TEST

START_TEST(test_set_name_to_own_name_keeps_it)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *a = nb_scalar(t, 1.0);

	nb_set_name(a, "weights");
	nb_set_name(a, nb_name(a));
	ck_assert_str_eq(nb_name(a), "weights");
	nb_set_name(a, nb_name(a) + 1);  /* overlapping, shifted */
	ck_assert_str_eq(nb_name(a), "eights");
	nb_tape_free(t);
}
END_TEST

/* ---- A network's tape -------------------------------------------------------------- */

/* The tape nb_net_tape() hands out lives as long as the network, however many other
 * batch sizes are trained and evaluated meanwhile. */
START_TEST(test_net_tape_outlives_graph_cache)
{
	nb_net_config cfg = { .n_layers = 3, .sizes = (size_t[]){ 2, 3, 2 }, .seed = 1 };
	nb_net *net;
	nb_dataset ds;
	nb_tape *t;
	nb_tensor *c;

	ck_assert_int_eq(nb_net_new(&cfg, &net, NULL), NB_OK);
	make_pairs_data(&ds, 40, 3);
	t = nb_net_tape(net, 4);
	ck_assert_ptr_nonnull(t);
	for (size_t batch = 1; batch <= 9; batch++) {
		nb_sgd opt = { .batch = batch, .eta = 0.5 };

		ck_assert_int_eq(nb_net_sgd_epoch(net, &ds, &opt, NULL, NULL, NULL), NB_OK);
	}
	ck_assert_int_eq(nb_net_evaluate(net, &ds, NULL, NULL), NB_OK);
	ck_assert_ptr_eq(nb_net_tape(net, 4), t);
	c = nb_tape_find(t, "C");
	ck_assert_ptr_nonnull(c);
	ck_assert(isfinite(nb_value(c)[0]));
	ck_assert_ptr_nonnull(nb_tape_find(t, "w1"));
	free_pairs_data(&ds);
	nb_net_free(net);
}
END_TEST

static Suite *lifetime_suite(void)
{
	Suite *s = suite_create("lifetime");
	TCase *tc = tcase_create("lifetime");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_hashconsed_node_after_set_is_current);
	tcase_add_test(tc, test_value_after_set_without_replay);
	tcase_add_test(tc, test_second_sweep_after_set_is_current);
	tcase_add_test(tc, test_replay_recomputes_only_what_changed);
	tcase_add_test(tc, test_failed_nonfinite_call_records_nothing);
	tcase_add_test(tc, test_failed_shape_call_records_nothing);
	tcase_add_test(tc, test_failed_allocation_records_nothing);
	tcase_add_test(tc, test_failed_backward_records_nothing);
	tcase_add_test(tc, test_leaf_size_overflow_is_eshape);
	tcase_add_test(tc, test_leaf_size_boundary);
	tcase_add_test(tc, test_computed_size_overflow_is_eshape);
	tcase_add_test(tc, test_view_size_overflow_is_eshape);
	tcase_add_test(tc, test_failed_composite_op_records_nothing);
	tcase_add_test(tc, test_touch_on_tape_in_error_takes_effect);
	tcase_add_test(tc, test_rewind_drops_nodes_after_the_mark);
	tcase_add_test(tc, test_rewind_past_the_end_is_einval);
	tcase_add_test(tc, test_rewind_keeps_earlier_gradients);
	tcase_add_test(tc, test_rerecord_loop_is_constant);
	tcase_add_test(tc, test_view_reads_caller_memory_after_touch);
	tcase_add_test(tc, test_view_and_touch_errors);
	tcase_add_test(tc, test_find_returns_latest_named_node);
	tcase_add_test(tc, test_set_name_to_own_name_keeps_it);
	tcase_add_test(tc, test_net_tape_outlives_graph_cache);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(lifetime_suite());
}
