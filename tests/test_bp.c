/* test_bp.c -- autodiff against the closed-form backpropagation equations BP1-BP4.
 *
 * A sigmoid network recorded as an op graph on a tape must give, after nb_backward(), the
 * gradients nb_bp_reference() computes with plain loops; its gradient graph must show the
 * equations' structure; a replay on new data must track the reference; and the reference
 * must refuse bad arguments with a clear status and message.
 *
 * Layer numbering follows nabla.h: layer 0 is the input, layer L the output; index l of
 * the arrays below (w, b, z, a, dw, db, delta) belongs to layer l + 1. */

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "nabla.h"

/* Every network in the table has this many layers (input included). */
#define N_SIZES 3
#define N_W (N_SIZES - 1)

/* Floor of the relative comparisons where nothing else bounds them: both values 0. */
#define REL_FLOOR 1e-300

/* The hand-computed case does the very same arithmetic as the reference, in the same
 * order, so the two agree to rounding of the last place or better. */
#define TOL_HAND 1e-15

struct net_case {
	size_t sizes[N_SIZES];
	int one_hot;  /* targets: one-hot columns (a classifier) or uniform in [0, 1) */
};

static const struct net_case net_cases[] = {
	{ { 2, 3, 2 }, 0 },
	{ { 4, 5, 3 }, 1 },
	{ { 784, 30, 10 }, 1 },
};
static const size_t batch_sizes[] = { 1, 10 };

#define N_NET_CASES (sizeof net_cases / sizeof net_cases[0])
#define N_BATCH_SIZES (sizeof batch_sizes / sizeof batch_sizes[0])
/* Loop tests run over the table crossed with the batch sizes. */
#define N_LOOP ((int)(N_NET_CASES * N_BATCH_SIZES))

/* One network with its data, the reference's results and the op graph. */
struct bp_fixture {
	size_t sizes[N_SIZES];
	size_t n;  /* batch size: x is sizes[0] x n, one example per column */
	int one_hot;
	test_rng rng;
	double *w[N_W], *b[N_W], *x, *y;
	double *dw[N_W], *db[N_W], *delta[N_W], cost;  /* from nb_bp_reference */
	double *mag_dw[N_W], *mag_db[N_W], *mag_delta[N_W];  /* see term_magnitudes() */
	nb_tape *t;
	nb_tensor *tx, *ty, *tw[N_W], *tb[N_W], *tz[N_W], *ta[N_W], *tc;
};

static double *alloc_doubles(size_t count)
{
	double *p = calloc(count, sizeof *p);

	ck_assert_ptr_nonnull(p);
	return p;
}

/* Inputs uniform in [0, 1); targets one-hot (one 1 per column) or uniform in [0, 1). */
static void fill_data(struct bp_fixture *f)
{
	size_t m = f->sizes[N_SIZES - 1], n = f->n;

	rng_fill(&f->rng, f->x, f->sizes[0] * n, 0.0, 1.0);
	if (!f->one_hot) {
		rng_fill(&f->rng, f->y, m * n, 0.0, 1.0);
		return;
	}
	memset(f->y, 0, m * n * sizeof *f->y);
	for (size_t c = 0; c < n; c++) {
		size_t j = (size_t)rng_uniform(&f->rng, 0.0, (double)m);

		f->y[(j < m ? j : m - 1) * n + c] = 1.0;
	}
}

/* Case i of a loop test: allocate everything, standard normal weights and biases. */
static void fixture_init(struct bp_fixture *f, int i)
{
	const struct net_case *nc = &net_cases[(size_t)i / N_BATCH_SIZES];

	memset(f, 0, sizeof *f);
	memcpy(f->sizes, nc->sizes, sizeof f->sizes);
	f->n = batch_sizes[(size_t)i % N_BATCH_SIZES];
	f->one_hot = nc->one_hot;
	rng_seed(&f->rng, 20240 + (uint64_t)i);
	for (size_t l = 0; l < N_W; l++) {
		size_t rows = f->sizes[l + 1], cols = f->sizes[l];

		f->w[l] = alloc_doubles(rows * cols);
		f->b[l] = alloc_doubles(rows);
		f->dw[l] = alloc_doubles(rows * cols);
		f->db[l] = alloc_doubles(rows);
		f->delta[l] = alloc_doubles(rows * f->n);
		f->mag_dw[l] = alloc_doubles(rows * cols);
		f->mag_db[l] = alloc_doubles(rows);
		f->mag_delta[l] = alloc_doubles(rows * f->n);
		for (size_t k = 0; k < rows * cols; k++)
			f->w[l][k] = rng_normal(&f->rng);
		for (size_t k = 0; k < rows; k++)
			f->b[l][k] = rng_normal(&f->rng);
	}
	f->x = alloc_doubles(f->sizes[0] * f->n);
	f->y = alloc_doubles(f->sizes[N_SIZES - 1] * f->n);
	fill_data(f);
}

static void fixture_free(struct bp_fixture *f)
{
	nb_tape_free(f->t);
	for (size_t l = 0; l < N_W; l++) {
		free(f->w[l]);
		free(f->b[l]);
		free(f->dw[l]);
		free(f->db[l]);
		free(f->delta[l]);
		free(f->mag_dw[l]);
		free(f->mag_db[l]);
		free(f->mag_delta[l]);
	}
	free(f->x);
	free(f->y);
}

/* Run nb_bp_reference on the fixture's current data. */
static void run_reference(struct bp_fixture *f)
{
	nb_mlp net = {
		.n_layers = N_SIZES, .sizes = f->sizes,
		.w = (const double *const *)f->w, .b = (const double *const *)f->b,
	};
	char msg[NB_MSG_MAX] = "";
	int status = nb_bp_reference(&net, f->n, f->x, f->y, f->dw, f->db, f->delta, &f->cost,
	                             msg);

	ck_assert_msg(status == NB_OK, "nb_bp_reference: %s: %s", nb_status_name(status), msg);
}

/* Record the network as an op graph and its reverse sweep:
 * z^l = w^l a^{l-1} + b^l (b^l is sizes[l] x 1, broadcast over the n columns),
 * a^l = sigma(z^l), C = quadratic_cost(a^L, y). */
static void build_graph(struct bp_fixture *f)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *a;
	size_t n = f->n;

	ck_assert_ptr_nonnull(t);
	f->t = t;
	f->tx = nb_constant(t, 2, (size_t[]){ f->sizes[0], n }, f->x);
	f->ty = nb_constant(t, 2, (size_t[]){ f->sizes[N_SIZES - 1], n }, f->y);
	a = f->tx;
	for (size_t l = 0; l < N_W; l++) {
		size_t rows = f->sizes[l + 1], cols = f->sizes[l];

		f->tw[l] = nb_variable(t, 2, (size_t[]){ rows, cols }, f->w[l]);
		f->tb[l] = nb_variable(t, 2, (size_t[]){ rows, 1 }, f->b[l]);
		f->tz[l] = nb_add(t, nb_matmul(t, f->tw[l], a), f->tb[l]);
		f->ta[l] = nb_sigmoid(t, f->tz[l]);
		a = f->ta[l];
	}
	f->tc = nb_quadratic_cost(t, a, f->ty);
	ck_assert_msg(nb_tape_status(t) == NB_OK, "recording: %s", nb_tape_message(t));
	ck_assert_msg(nb_backward(t, f->tc, NULL) == NB_OK, "backward: %s", nb_tape_message(t));
}

/* BP2 on magnitudes (see term_magnitudes()): m^l from m^{l+1}, for l >= 1. */
static void magnitude_bp2(struct bp_fixture *f, size_t l)
{
	size_t n = f->n, rows = f->sizes[l + 1], cols = f->sizes[l];
	const double *a = nb_value(f->ta[l - 1]), *w = f->w[l], *m_next = f->mag_delta[l];
	double *m = f->mag_delta[l - 1];

	for (size_t k = 0; k < cols; k++) {
		for (size_t c = 0; c < n; c++) {
			double s = 0.0, ac = a[k * n + c];

			for (size_t j = 0; j < rows; j++)
				s += fabs(w[j * cols + k]) * m_next[j * n + c];
			m[k * n + c] = s * (ac * (1.0 - ac));
		}
	}
}

/* BP3 and BP4 on magnitudes, for layer l + 1 (index l). */
static void magnitude_bp3_bp4(struct bp_fixture *f, size_t l)
{
	size_t n = f->n, rows = f->sizes[l + 1], cols = f->sizes[l];
	const double *a = l == 0 ? f->x : nb_value(f->ta[l - 1]), *m = f->mag_delta[l];

	for (size_t j = 0; j < rows; j++) {
		f->mag_db[l][j] = 0.0;
		for (size_t c = 0; c < n; c++)
			f->mag_db[l][j] += m[j * n + c];
		for (size_t k = 0; k < cols; k++) {
			double s = 0.0;

			for (size_t c = 0; c < n; c++)
				s += m[j * n + c] * fabs(a[k * n + c]);
			f->mag_dw[l][j * cols + k] = s;
		}
	}
}

/* The floor of each comparison: the magnitude of the terms the entry sums.
 *
 * Gradients are sums of terms of both signs: over the batch in BP3 and BP4, over the units
 * of the next layer in BP2. Where the engine and the reference round a term differently
 * (another summation order, 1/n applied another way: both are legitimate), a one-ulp
 * change of a term moves a sum by about eps times the magnitude of its terms, not of the
 * sum. An entry that cancels to far below its terms then shows a relative difference far
 * above eps: when the reference divided by n and the engine multiplied by 1/n, an entry
 * of dC/dw^1 at [784,30,10], n = 10, 216 times smaller than its terms, differed by 1.2e-12
 * relative to itself, 5e-15 relative to its terms. So each entry is compared to
 * max(|entry|, magnitude of its terms): the entry itself wherever nothing cancels, and a
 * larger floor only as far as cancellation actually happened. TOL_EXACT is not loosened.
 *
 * The magnitudes are BP1-BP4 run on absolute values, where nothing can cancel:
 *   BP1 (|a^L| + |y|) ⊙ sigma'(z^L) / n   (a^L - y cancels where the network is right)
 *   BP2 m^l = (|w^{l+1}|^T m^{l+1}) ⊙ sigma'(z^l)
 *   BP3 sum over examples of m^l    BP4 m^l |a^{l-1}|^T
 * Activations come from the tape's forward values. */
static void term_magnitudes(struct bp_fixture *f)
{
	size_t L = N_W;

	const double *a = nb_value(f->ta[L - 1]), *y = nb_value(f->ty);

	for (size_t i = 0; i < f->sizes[L] * f->n; i++)  /* BP1 */
		f->mag_delta[L - 1][i] = (fabs(a[i]) + fabs(y[i])) * (a[i] * (1.0 - a[i])) /
		                         (double)f->n;
	for (size_t l = L - 1; l >= 1; l--)
		magnitude_bp2(f, l);
	for (size_t l = 0; l < L; l++)
		magnitude_bp3_bp4(f, l);
}

/* Assert that tensor x holds count values equal to want within TOL_EXACT, each relative
 * to the larger of itself and mag, the magnitude of its terms (see term_magnitudes()). */
static void assert_values(const char *what, size_t layer, const nb_tensor *x,
                          const double *want, const double *mag, size_t count)
{
	const double *got;

	ck_assert_msg(x != NULL, "%s^%zu: no gradient node", what, layer);
	ck_assert_msg(nb_size(x) == count, "%s^%zu: %zu values, want %zu", what, layer,
	              nb_size(x), count);
	got = nb_value(x);
	for (size_t i = 0; i < count; i++) {
		double d = max_rel_diff(&got[i], &want[i], 1, fmax(mag[i], REL_FLOOR));

		ck_assert_msg(d <= TOL_EXACT,
		              "%s^%zu[%zu]: %.17g, reference %.17g: relative difference %g > %g",
		              what, layer, i, got[i], want[i], d, TOL_EXACT);
	}
}

static void assert_grad_w(const struct bp_fixture *f)
{
	for (size_t l = 0; l < N_W; l++)
		assert_values("BP4 dC/dw", l + 1, nb_grad(f->tw[l]), f->dw[l], f->mag_dw[l],
		              f->sizes[l + 1] * f->sizes[l]);
}

static void assert_grad_b(const struct bp_fixture *f)
{
	for (size_t l = 0; l < N_W; l++)
		assert_values("BP3 dC/db", l + 1, nb_grad(f->tb[l]), f->db[l], f->mag_db[l],
		              f->sizes[l + 1]);
}

static void assert_grad_z(const struct bp_fixture *f)
{
	for (size_t l = 0; l < N_W; l++)
		assert_values(l + 1 == N_W ? "BP1 delta" : "BP2 delta", l + 1, nb_grad(f->tz[l]),
		              f->delta[l], f->mag_delta[l], f->sizes[l + 1] * f->n);
}

static void assert_cost(const struct bp_fixture *f)
{
	ck_assert_ptr_nonnull(f->tc);
	ck_assert_uint_eq(nb_size(f->tc), 1);
	ck_assert_msg(rel_diff(nb_value(f->tc)[0], f->cost) <= TOL_EXACT,
	              "cost %.17g, reference %.17g", nb_value(f->tc)[0], f->cost);
}

/* ---- Autodiff equals BP1-BP4 -------------------------------------------------------- */

START_TEST(test_grad_w_equals_bp4)
{
	struct bp_fixture f;

	fixture_init(&f, _i);
	run_reference(&f);
	build_graph(&f);
	term_magnitudes(&f);
	assert_grad_w(&f);
	fixture_free(&f);
}
END_TEST

START_TEST(test_grad_b_equals_bp3)
{
	struct bp_fixture f;

	fixture_init(&f, _i);
	run_reference(&f);
	build_graph(&f);
	term_magnitudes(&f);
	assert_grad_b(&f);
	fixture_free(&f);
}
END_TEST

START_TEST(test_grad_z_equals_bp1_bp2)
{
	struct bp_fixture f;

	fixture_init(&f, _i);
	run_reference(&f);
	build_graph(&f);
	term_magnitudes(&f);
	assert_grad_z(&f);
	fixture_free(&f);
}
END_TEST

START_TEST(test_cost_equals_reference)
{
	struct bp_fixture f;

	fixture_init(&f, _i);
	run_reference(&f);
	build_graph(&f);
	assert_cost(&f);
	fixture_free(&f);
}
END_TEST

/* ---- The gradient graph has the structure of the equations -------------------------- */

static int has_input(const nb_tensor *x, const nb_tensor *in)
{
	return nb_input(x, 0) == in || nb_input(x, 1) == in;
}

/* sigma'(z) ⊙: dz = da ⊙ (a ⊙ (1 - a)), the sigmoid's backward rule, so dz is a "mul"
 * node with da as one input and a ⊙ (1 - a), a "mul" of a, as the other. */
static void assert_sigmoid_prime_product(const nb_tensor *a, const nb_tensor *dz,
                                         size_t layer)
{
	const nb_tensor *da = nb_grad(a);
	const nb_tensor *other;

	ck_assert_msg(dz != NULL && da != NULL, "layer %zu: missing gradient", layer);
	ck_assert_msg(strcmp(nb_op_name(dz), "mul") == 0, "dC/dz^%zu is a \"%s\" node, not mul",
	              layer, nb_op_name(dz));
	ck_assert_msg(has_input(dz, da), "dC/dz^%zu: dC/da^%zu is not a factor", layer, layer);
	other = nb_input(dz, 0) == da ? nb_input(dz, 1) : nb_input(dz, 0);
	ck_assert_msg(strcmp(nb_op_name(other), "mul") == 0 && has_input(other, a),
	              "dC/dz^%zu: the sigma' factor is not a ⊙ (1 - a)", layer);
}

START_TEST(test_bp1_grad_zL_is_hadamard_product)
{
	struct bp_fixture f;

	fixture_init(&f, _i);
	build_graph(&f);
	/* BP1: delta^L = dC/da^L ⊙ sigma'(z^L). */
	assert_sigmoid_prime_product(f.ta[N_W - 1], nb_grad(f.tz[N_W - 1]), N_W);
	fixture_free(&f);
}
END_TEST

START_TEST(test_bp2_grad_a_is_transposed_matmul)
{
	struct bp_fixture f;

	fixture_init(&f, _i);
	build_graph(&f);
	/* BP2: delta^l = ((w^{l+1})^T delta^{l+1}) ⊙ sigma'(z^l): the first factor is
	 * dC/da^l, a matmul involving w^{l+1}; the Hadamard product is the sigmoid's rule. */
	for (size_t l = 0; l + 1 < N_W; l++) {
		const nb_tensor *ga = nb_grad(f.ta[l]);

		ck_assert_msg(ga != NULL, "no gradient for a^%zu", l + 1);
		ck_assert_msg(strcmp(nb_op_name(ga), "matmul") == 0,
		              "dC/da^%zu is a \"%s\" node, not matmul", l + 1, nb_op_name(ga));
		ck_assert_msg(has_input(ga, f.tw[l + 1]), "dC/da^%zu: w^%zu is not an operand",
		              l + 1, l + 2);
		assert_sigmoid_prime_product(f.ta[l], nb_grad(f.tz[l]), l + 1);
	}
	fixture_free(&f);
}
END_TEST

START_TEST(test_bp3_bp4_grad_nodes)
{
	struct bp_fixture f;

	fixture_init(&f, _i);
	build_graph(&f);
	for (size_t l = 0; l < N_W; l++) {
		const nb_tensor *gw = nb_grad(f.tw[l]), *gb = nb_grad(f.tb[l]);
		const nb_tensor *a_prev = l == 0 ? f.tx : f.ta[l - 1];

		/* BP4: dw^l = delta^l (a^{l-1})^T, a matmul with a^{l-1} as an operand. */
		ck_assert_msg(gw != NULL && strcmp(nb_op_name(gw), "matmul") == 0,
		              "dC/dw^%zu is not a matmul node", l + 1);
		ck_assert_msg(has_input(gw, a_prev), "dC/dw^%zu: a^%zu is not an operand", l + 1,
		              l);
		/* BP3: db^l sums delta^l over the batch, the adjoint of broadcasting b^l over
		 * the n columns. With n = 1 nothing was broadcast, so no sum is required. */
		ck_assert_ptr_nonnull(gb);
		if (f.n > 1)
			ck_assert_msg(strcmp(nb_op_name(gb), "reduce_to") == 0,
			              "dC/db^%zu is a \"%s\" node, not reduce_to", l + 1,
			              nb_op_name(gb));
	}
	fixture_free(&f);
}
END_TEST

/* ---- Replay on new data -------------------------------------------------------------- */

START_TEST(test_replay_tracks_bp_reference)
{
	struct bp_fixture f;

	fixture_init(&f, _i);
	build_graph(&f);
	fill_data(&f);  /* new x and y, same weights */
	ck_assert_int_eq(nb_set(f.tx, f.x, f.sizes[0] * f.n), NB_OK);
	ck_assert_int_eq(nb_set(f.ty, f.y, f.sizes[N_SIZES - 1] * f.n), NB_OK);
	ck_assert_msg(nb_tape_replay(f.t) == NB_OK, "replay: %s", nb_tape_message(f.t));
	run_reference(&f);
	term_magnitudes(&f);
	assert_grad_w(&f);
	assert_grad_b(&f);
	assert_grad_z(&f);
	assert_cost(&f);
	fixture_free(&f);
}
END_TEST

/* ---- A case computed by hand ---------------------------------------------------------- */

static double hand_sigma(double z)
{
	return 1.0 / (1.0 + exp(-z));
}

/* [1,1,1], two examples: every quantity of BP1-BP4 written out with sigma itself. */
/* Every allocation of the reference goes through the network's allocator: failing each
 * in turn gives NB_ENOMEM and leaks nothing, and the run after the last one succeeds. */
START_TEST(test_reference_uses_the_callers_allocator)
{
	const double w1 = 0.5, b1 = -0.25, w2 = -1.5, b2 = 0.75;
	const double x[2] = { 0.8, -0.3 }, y[2] = { 1.0, 0.9 };
	const size_t sizes[3] = { 1, 1, 1 };
	const double *w[2] = { &w1, &w2 }, *b[2] = { &b1, &b2 };
	double dw[2], db[2];
	size_t k;

	for (k = 1;; k++) {
		count_alloc c = { .fail_at = k };
		nb_mlp net = { 3, sizes, w, b, count_alloc_fn, &c };
		char msg[NB_MSG_MAX] = "";
		int status = nb_bp_reference(&net, 2, x, y, (double *[]){ &dw[0], &dw[1] },
		                             (double *[]){ &db[0], &db[1] }, NULL, NULL, msg);

		ck_assert_uint_eq(c.bytes_in_use, 0);
		if (c.fail_at != 0) {
			ck_assert_int_eq(status, NB_OK);
			ck_assert_uint_gt(c.allocs, 0);
			break;
		}
		ck_assert_int_eq(status, NB_ENOMEM);
		ck_assert_str_eq(msg, "bp_reference: out of memory");
	}
	ck_assert_uint_gt(k, 3);
}
END_TEST

START_TEST(test_reference_matches_hand_computation)
{
	const double w1 = 0.5, b1 = -0.25, w2 = -1.5, b2 = 0.75;
	const double x[2] = { 0.8, -0.3 }, y[2] = { 1.0, 0.9 };
	double a1[2], a2[2], d1[2], d2[2];
	double dw[2], db[2], got_d1[2], got_d2[2], cost = 0.0;
	const size_t sizes[3] = { 1, 1, 1 };
	const double *w[2] = { &w1, &w2 }, *b[2] = { &b1, &b2 };
	nb_mlp net = { .n_layers = 3, .sizes = sizes, .w = w, .b = b };
	char msg[NB_MSG_MAX] = "";

	for (int c = 0; c < 2; c++) {
		a1[c] = hand_sigma(w1 * x[c] + b1);
		a2[c] = hand_sigma(w2 * a1[c] + b2);
		/* BP1, with the 1/n = 1/2 of the mean over the batch */
		d2[c] = (a2[c] - y[c]) / 2.0 * (a2[c] * (1.0 - a2[c]));
		/* BP2 */
		d1[c] = (w2 * d2[c]) * (a1[c] * (1.0 - a1[c]));
	}
	ck_assert_int_eq(nb_bp_reference(&net, 2, x, y, (double *[]){ &dw[0], &dw[1] },
	                                 (double *[]){ &db[0], &db[1] },
	                                 (double *[]){ got_d1, got_d2 }, &cost, msg),
	                 NB_OK);
	for (int c = 0; c < 2; c++) {
		ck_assert_double_le(rel_diff(got_d2[c], d2[c]), TOL_HAND);
		ck_assert_double_le(rel_diff(got_d1[c], d1[c]), TOL_HAND);
	}
	/* BP3 and BP4: sums over the two examples */
	ck_assert_double_le(rel_diff(db[1], d2[0] + d2[1]), TOL_HAND);
	ck_assert_double_le(rel_diff(dw[1], d2[0] * a1[0] + d2[1] * a1[1]), TOL_HAND);
	ck_assert_double_le(rel_diff(db[0], d1[0] + d1[1]), TOL_HAND);
	ck_assert_double_le(rel_diff(dw[0], d1[0] * x[0] + d1[1] * x[1]), TOL_HAND);
	ck_assert_double_le(rel_diff(cost, ((y[0] - a2[0]) * (y[0] - a2[0]) +
	                                    (y[1] - a2[1]) * (y[1] - a2[1])) / 4.0),
	                    TOL_HAND);
}
END_TEST

/* A NULL entry of delta skips that layer's error; the others are still written. */
START_TEST(test_reference_skips_null_delta_entry)
{
	const double w1 = 0.5, b1 = -0.25, w2 = -1.5, b2 = 0.75, x = 0.8, y = 1.0;
	const size_t sizes[3] = { 1, 1, 1 };
	const double *w[2] = { &w1, &w2 }, *b[2] = { &b1, &b2 };
	nb_mlp net = { .n_layers = 3, .sizes = sizes, .w = w, .b = b };
	double dw[2], db[2], d2 = 0.0;

	ck_assert_int_eq(nb_bp_reference(&net, 1, &x, &y, (double *[]){ &dw[0], &dw[1] },
	                                 (double *[]){ &db[0], &db[1] },
	                                 (double *[]){ NULL, &d2 }, NULL, NULL),
	                 NB_OK);
	/* With one example, delta^2 is dC/db^2 (BP3). */
	ck_assert_double_eq(d2, db[1]);
	ck_assert_double_ne(d2, 0.0);
}
END_TEST

/* ---- Bad arguments -------------------------------------------------------------------- */

/* A valid [2,3,2] network with one example, which each case below breaks in one way. */
struct bp_args {
	size_t sizes[3];
	double w0[6], w1[6], b0[3], b1[2], x[2], y[2];
	double dw0[6], dw1[6], db0[3], db1[2];
	const double *w[2], *b[2];
	double *dw[2], *db[2];
	nb_mlp net;
	const nb_mlp *netp;
	size_t n;
	const double *xp, *yp;
	double *const *dwp, *const *dbp;
};

static void args_init(struct bp_args *a)
{
	memset(a, 0, sizeof *a);
	a->sizes[0] = 2;
	a->sizes[1] = 3;
	a->sizes[2] = 2;
	a->w[0] = a->w0;
	a->w[1] = a->w1;
	a->b[0] = a->b0;
	a->b[1] = a->b1;
	a->dw[0] = a->dw0;
	a->dw[1] = a->dw1;
	a->db[0] = a->db0;
	a->db[1] = a->db1;
	a->net = (nb_mlp){ .n_layers = 3, .sizes = a->sizes, .w = a->w, .b = a->b };
	a->netp = &a->net;
	a->n = 1;
	a->xp = a->x;
	a->yp = a->y;
	a->dwp = a->dw;
	a->dbp = a->db;
}

static void break_net(struct bp_args *a) { a->netp = NULL; }
static void break_x(struct bp_args *a) { a->xp = NULL; }
static void break_y(struct bp_args *a) { a->yp = NULL; }
static void break_dw(struct bp_args *a) { a->dwp = NULL; }
static void break_db(struct bp_args *a) { a->dbp = NULL; }
static void break_layers(struct bp_args *a) { a->net.n_layers = 1; }
static void break_size(struct bp_args *a) { a->sizes[2] = 0; }
static void break_batch(struct bp_args *a) { a->n = 0; }
static void break_w1(struct bp_args *a) { a->w[1] = NULL; }
/* Activations that no size_t can count: refused before anything is read or allocated. */
static void break_memory(struct bp_args *a) { a->sizes[1] = SIZE_MAX / 4; }

struct bad_case {
	void (*breaks)(struct bp_args *a);
	int status;
	const char *message;
};

static const struct bad_case bad_cases[] = {
	{ break_net, NB_ENULL, "bp_reference: net is NULL" },
	{ break_x, NB_ENULL, "bp_reference: x is NULL" },
	{ break_y, NB_ENULL, "bp_reference: y is NULL" },
	{ break_dw, NB_ENULL, "bp_reference: dw is NULL" },
	{ break_db, NB_ENULL, "bp_reference: db is NULL" },
	{ break_layers, NB_EINVAL, "bp_reference: need at least 2 layers, got 1" },
	{ break_size, NB_EINVAL, "bp_reference: layer 2 has size 0" },
	{ break_batch, NB_EINVAL, "bp_reference: batch size n is 0" },
	{ break_w1, NB_ENULL, "bp_reference: w[1] is NULL" },
	{ break_memory, NB_ENOMEM, "bp_reference: out of memory" },
};

#define N_BAD_CASES ((int)(sizeof bad_cases / sizeof bad_cases[0]))

static int call_reference(const struct bp_args *a, char *msg)
{
	return nb_bp_reference(a->netp, a->n, a->xp, a->yp, a->dwp, a->dbp, NULL, NULL, msg);
}

START_TEST(test_reference_rejects_bad_argument)
{
	const struct bad_case *bc = &bad_cases[_i];
	struct bp_args a;
	char msg[NB_MSG_MAX] = "";

	args_init(&a);
	ck_assert_int_eq(call_reference(&a, msg), NB_OK);
	ck_assert_str_eq(msg, "");
	bc->breaks(&a);
	ck_assert_int_eq(call_reference(&a, msg), bc->status);
	ck_assert_str_eq(msg, bc->message);
	/* Without a message buffer the status is the same. */
	ck_assert_int_eq(call_reference(&a, NULL), bc->status);
}
END_TEST

/* ---- Suite ------------------------------------------------------------------------------ */

static Suite *bp_suite(void)
{
	Suite *s = suite_create("bp");
	TCase *eq = tcase_create("equations");
	TCase *st = tcase_create("structure");
	TCase *rp = tcase_create("replay");
	TCase *ref = tcase_create("reference");

	/* The [784,30,10] cases are slow under valgrind, not in any test's logic. */
	tcase_set_timeout(eq, 120);
	tcase_set_timeout(st, 120);
	tcase_set_timeout(rp, 120);
	tcase_add_loop_test(eq, test_grad_w_equals_bp4, 0, N_LOOP);
	tcase_add_loop_test(eq, test_grad_b_equals_bp3, 0, N_LOOP);
	tcase_add_loop_test(eq, test_grad_z_equals_bp1_bp2, 0, N_LOOP);
	tcase_add_loop_test(eq, test_cost_equals_reference, 0, N_LOOP);
	tcase_add_loop_test(st, test_bp1_grad_zL_is_hadamard_product, 0, N_LOOP);
	tcase_add_loop_test(st, test_bp2_grad_a_is_transposed_matmul, 0, N_LOOP);
	tcase_add_loop_test(st, test_bp3_bp4_grad_nodes, 0, N_LOOP);
	tcase_add_loop_test(rp, test_replay_tracks_bp_reference, 0, N_LOOP);
	tcase_add_test(ref, test_reference_matches_hand_computation);
	tcase_add_test(ref, test_reference_uses_the_callers_allocator);
	tcase_add_test(ref, test_reference_skips_null_delta_entry);
	tcase_add_loop_test(ref, test_reference_rejects_bad_argument, 0, N_BAD_CASES);
	suite_add_tcase(s, eq);
	suite_add_tcase(s, st);
	suite_add_tcase(s, rp);
	suite_add_tcase(s, ref);
	return s;
}

int main(void)
{
	return run_suite(bp_suite());
}
