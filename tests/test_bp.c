/* test_bp.c -- autodiff against the closed-form backpropagation equations BP1-BP4.
 *
 * A sigmoid network recorded as an op graph on a tape must give, after nb_backward(), the
 * gradients nb_bp_reference() computes with plain loops; its gradient graph must show the
 * equations' structure; a replay on new data must track the reference; and the reference
 * must refuse bad arguments with a clear status and message. Then the same for the
 * choices of chapter 3 (nb_bp_reference_opts): tanh and ReLU units, the cross-entropy and
 * log-likelihood costs, a softmax output, L2 regularisation, examples as rows.
 *
 * Layer numbering follows nabla.h: layer 0 is the input, layer L the output; index l of
 * the arrays below (w, b, z, a, dw, db, delta) belongs to layer l + 1. */

#include <check.h>
#include <math.h>
#include <stdbool.h>
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

/* ---- Chapter 3: other units and costs, L2, examples as rows ---------------------------
 *
 * nb_bp_reference_opts() against autodiff through the library's ops, for every
 * combination of hidden units (sigmoid, tanh, relu), output layer and cost, lambda 0 and
 * 0.5, and both layouts, on networks of three and four layers and batches of 1 and 10;
 * then per-layer lists of activations. The op graph is written out with the public ops,
 * as nb_net records it:
 *   columns: z^1 = w^1 x^T + b^1 with x held one example per row (nb_matmul_t), then
 *            z^l = w^l a^{l-1} + b^l; b^l is sizes[l] x 1; softmax along axis 0
 *   rows:    z^l = a^{l-1} (w^l)^T + b^l, a^0 = x; b^l is 1 x sizes[l]; softmax along
 *            axis 1; the cost ops take one example per column, so they get transposes
 *   C = cost + lambda/(2n) sum_l sum(w^l ⊙ w^l)
 * where the cost is nb_quadratic_cost(a^L, y), nb_sigmoid_cross_entropy(z^L, y) or
 * nb_softmax_cross_entropy(z^L, y). The products are those the reference computes, so
 * that both forward passes agree: the matrix kernel sums a product in an order that
 * depends on how it is called, and where a tanh or a sigmoid saturates, f'(z) = 1 - a^2
 * or a (1 - a) turns one last bit of a into a large relative difference of delta, which
 * the magnitudes below (bounds on the rounding of the backward pass) do not cover.
 * Every dC/dw^l, dC/db^l, delta^l = dC/dz^l and C is compared, as above, within TOL_EXACT
 * of the larger of itself and the magnitude of the terms it sums. Random data never puts a
 * ReLU exactly at its kink, z = 0. */

#define MAX_LAYERS 4
#define MAX_W (MAX_LAYERS - 1)

/* Targets: uniform in [0, 1), one-hot columns, or columns of a probability distribution
 * that is not one-hot (what the softmax costs allow beyond Nielsen's one-hot y). */
enum { TARGET_UNIFORM, TARGET_ONE_HOT, TARGET_DISTRIBUTION };

struct net3_case {
	size_t n_layers;
	size_t sizes[MAX_LAYERS];
	int targets;
};

static const struct net3_case net3_cases[] = {
	{ 3, { 2, 3, 2 }, TARGET_UNIFORM },
	{ 3, { 4, 5, 3 }, TARGET_ONE_HOT },
	{ 4, { 5, 4, 3, 2 }, TARGET_DISTRIBUTION },
	{ 3, { 784, 30, 10 }, TARGET_ONE_HOT },
};

/* An output layer and a cost, which go together. */
struct head {
	int output, cost;
};

static const struct head heads[] = {
	{ NB_SIGMOID, NB_QUADRATIC },     { NB_SIGMOID, NB_CROSS_ENTROPY },
	{ NB_SOFTMAX, NB_CROSS_ENTROPY }, { NB_SOFTMAX, NB_QUADRATIC },
	{ NB_TANH, NB_QUADRATIC },        { NB_RELU, NB_QUADRATIC },
};
static const int hiddens[] = { NB_SIGMOID, NB_TANH, NB_RELU };
static const double lambdas[] = { 0.0, 0.5 };
static const char *const act_names[] = { "sigmoid", "tanh", "relu", "softmax" };

#define N_NET3 (sizeof net3_cases / sizeof net3_cases[0])
#define N_HEADS (sizeof heads / sizeof heads[0])
#define N_HIDDENS (sizeof hiddens / sizeof hiddens[0])
#define N_LAMBDAS (sizeof lambdas / sizeof lambdas[0])
/* Each case below is crossed with the batch sizes, the lambdas and the two layouts. */
#define N_VARIANTS (N_BATCH_SIZES * N_LAMBDAS * 2)
#define N_OPTS_LOOP ((int)(N_NET3 * N_HIDDENS * N_HEADS * N_VARIANTS))

/* Activation lists, one per layer, given as nb_bp_opts.activations. */
struct mixed_case {
	size_t net;  /* index into net3_cases */
	int acts[MAX_W];
	int cost;
};

static const struct mixed_case mixed_cases[] = {
	{ 2, { NB_RELU, NB_TANH, NB_SOFTMAX }, NB_CROSS_ENTROPY },
	{ 2, { NB_TANH, NB_RELU, NB_SIGMOID }, NB_CROSS_ENTROPY },
	{ 2, { NB_SIGMOID, NB_RELU, NB_TANH }, NB_QUADRATIC },
	{ 2, { NB_TANH, NB_SIGMOID, NB_SOFTMAX }, NB_QUADRATIC },
};

#define N_MIXED_LOOP ((int)(sizeof mixed_cases / sizeof mixed_cases[0] * N_VARIANTS))

/* One network with its data, the reference's results, the op graph and the magnitudes.
 * Index l of the per-layer arrays belongs to layer l + 1. */
struct net3 {
	size_t L;  /* weight layers: n_layers - 1 */
	size_t sizes[MAX_LAYERS], n;
	int acts[MAX_W];
	nb_bp_opts opts;
	char what[160];  /* the case, for messages */
	test_rng rng;
	double *w[MAX_W], *b[MAX_W];
	double *xc, *yc;  /* the data, one example per column */
	double *xr;       /* x with one example per row, as the tape reads it */
	double *x, *y;    /* as given to the reference: xc and yc, or xr and yc^T for rows */
	double *dw[MAX_W], *db[MAX_W], *delta[MAX_W], cost;  /* from the reference */
	double *a[MAX_W], *zL;  /* the tape's a^l and z^L, one example per column */
	double *mag_dw[MAX_W], *mag_db[MAX_W], *mag_delta[MAX_W], mag_cost;
	nb_tape *t;
	nb_tensor *tw[MAX_W], *tb[MAX_W], *tz[MAX_W], *ta[MAX_W], *tc;
};

/* A rows x cols matrix transposed, in a new array. */
static double *transposed(const double *src, size_t rows, size_t cols)
{
	double *dst = alloc_doubles(rows * cols);

	for (size_t i = 0; i < rows; i++)
		for (size_t j = 0; j < cols; j++)
			dst[j * rows + i] = src[i * cols + j];
	return dst;
}

/* Targets of the net's kind, m x n, one example per column. */
static void net3_targets(struct net3 *f, int kind)
{
	size_t m = f->sizes[f->L], n = f->n;

	if (kind == TARGET_ONE_HOT) {
		for (size_t c = 0; c < n; c++) {
			size_t j = (size_t)rng_uniform(&f->rng, 0.0, (double)m);

			f->yc[(j < m ? j : m - 1) * n + c] = 1.0;
		}
		return;
	}
	rng_fill(&f->rng, f->yc, m * n, 0.0, 1.0);
	for (size_t c = 0; kind == TARGET_DISTRIBUTION && c < n; c++) {
		double s = 0.0;

		for (size_t k = 0; k < m; k++)
			s += f->yc[k * n + c];
		for (size_t k = 0; k < m; k++)
			f->yc[k * n + c] /= s;
	}
}

/* Variant v of a case: which batch size, lambda and layout. */
static void net3_variant(struct net3 *f, int v)
{
	f->n = batch_sizes[(size_t)v % N_BATCH_SIZES];
	f->opts.lambda = lambdas[(size_t)v / N_BATCH_SIZES % N_LAMBDAS];
	f->opts.rows = (size_t)v / (N_BATCH_SIZES * N_LAMBDAS) % 2;
}

/* Allocate everything and draw the data: standard normal parameters, inputs uniform in
 * [0, 1), targets of the case's kind. f->n, f->acts and f->opts are set. */
static void net3_alloc(struct net3 *f, const struct net3_case *nc, uint64_t seed)
{
	size_t n = f->n, in, out;

	f->L = nc->n_layers - 1;
	memcpy(f->sizes, nc->sizes, sizeof f->sizes);
	in = f->sizes[0];
	out = f->sizes[f->L];
	rng_seed(&f->rng, seed);
	for (size_t l = 0; l < f->L; l++) {
		size_t rows = f->sizes[l + 1], cols = f->sizes[l];

		f->w[l] = alloc_doubles(rows * cols);
		f->b[l] = alloc_doubles(rows);
		f->dw[l] = alloc_doubles(rows * cols);
		f->db[l] = alloc_doubles(rows);
		f->delta[l] = alloc_doubles(rows * n);
		f->a[l] = alloc_doubles(rows * n);
		f->mag_dw[l] = alloc_doubles(rows * cols);
		f->mag_db[l] = alloc_doubles(rows);
		f->mag_delta[l] = alloc_doubles(rows * n);
		for (size_t k = 0; k < rows * cols; k++)
			f->w[l][k] = rng_normal(&f->rng);
		for (size_t k = 0; k < rows; k++)
			f->b[l][k] = rng_normal(&f->rng);
	}
	f->zL = alloc_doubles(out * n);
	f->xc = alloc_doubles(in * n);
	f->yc = alloc_doubles(out * n);
	rng_fill(&f->rng, f->xc, in * n, 0.0, 1.0);
	net3_targets(f, nc->targets);
	f->xr = transposed(f->xc, in, n);
	f->x = f->opts.rows ? f->xr : f->xc;
	f->y = f->opts.rows ? transposed(f->yc, out, n) : f->yc;
}

static void net3_describe(struct net3 *f)
{
	char acts[64] = "";

	for (size_t l = 0; l < f->L; l++)
		snprintf(acts + strlen(acts), sizeof acts - strlen(acts), "%s%s", l ? "," : "",
		         act_names[f->acts[l]]);
	snprintf(f->what, sizeof f->what, "[%zu..%zu] %zu layers, n %zu, %s, %s, lambda %g, %s",
	         f->sizes[0], f->sizes[f->L], f->L + 1, f->n, acts,
	         f->opts.cost == NB_QUADRATIC ? "quadratic" : "cross-entropy", f->opts.lambda,
	         f->opts.rows ? "rows" : "columns");
}

/* Case i of test_opts_*: a hidden activation and a head, crossed with the variants. */
static void net3_init(struct net3 *f, int i)
{
	size_t k = (size_t)i;
	const struct head *h;
	int hidden;

	memset(f, 0, sizeof *f);
	net3_variant(f, (int)(k % N_VARIANTS));
	k /= N_VARIANTS;
	h = &heads[k % N_HEADS];
	k /= N_HEADS;
	hidden = hiddens[k % N_HIDDENS];
	k /= N_HIDDENS;
	f->opts.hidden = hidden;
	f->opts.output = h->output;
	f->opts.cost = h->cost;
	f->L = net3_cases[k].n_layers - 1;
	for (size_t l = 0; l < f->L; l++)
		f->acts[l] = l + 1 == f->L ? h->output : hidden;
	net3_alloc(f, &net3_cases[k], 30000 + (uint64_t)i);
	net3_describe(f);
}

/* Case i of test_mixed_*: an activation list, crossed with the variants. */
static void net3_init_mixed(struct net3 *f, int i)
{
	const struct mixed_case *mc = &mixed_cases[(size_t)i / N_VARIANTS];

	memset(f, 0, sizeof *f);
	net3_variant(f, (int)((size_t)i % N_VARIANTS));
	memcpy(f->acts, mc->acts, sizeof f->acts);
	f->opts.activations = f->acts;
	f->opts.cost = mc->cost;
	/* Ignored when a list is given; set to show it. */
	f->opts.hidden = NB_SOFTMAX;
	f->opts.output = NB_TANH;
	net3_alloc(f, &net3_cases[mc->net], 40000 + (uint64_t)i);
	net3_describe(f);
}

static void net3_free(struct net3 *f)
{
	nb_tape_free(f->t);
	for (size_t l = 0; l < f->L; l++) {
		free(f->w[l]);
		free(f->b[l]);
		free(f->dw[l]);
		free(f->db[l]);
		free(f->delta[l]);
		free(f->a[l]);
		free(f->mag_dw[l]);
		free(f->mag_db[l]);
		free(f->mag_delta[l]);
	}
	free(f->xr);
	if (f->y != f->yc)
		free(f->y);
	free(f->xc);
	free(f->yc);
	free(f->zL);
}

static void net3_reference(struct net3 *f)
{
	nb_mlp net = {
		.n_layers = f->L + 1, .sizes = f->sizes,
		.w = (const double *const *)f->w, .b = (const double *const *)f->b,
	};
	char msg[NB_MSG_MAX] = "";
	int status = nb_bp_reference_opts(&net, f->n, f->x, f->y, &f->opts, f->dw, f->db,
	                                  f->delta, &f->cost, msg);

	ck_assert_msg(status == NB_OK, "%s: %s: %s", f->what, nb_status_name(status), msg);
}

static nb_tensor *activation_op(nb_tape *t, nb_tensor *z, int act, int axis)
{
	switch (act) {
	case NB_TANH:
		return nb_tanh(t, z);
	case NB_RELU:
		return nb_relu(t, z);
	case NB_SOFTMAX:
		return nb_softmax(t, z, axis);
	default:
		return nb_sigmoid(t, z);
	}
}

/* C = cost + lambda/(2n) sum of the squares of every weight. */
static nb_tensor *net3_cost(const struct net3 *f, nb_tape *t, nb_tensor *zL, nb_tensor *aL,
                            nb_tensor *y)
{
	nb_tensor *c, *l2 = NULL;

	if (f->opts.cost == NB_QUADRATIC)
		c = nb_quadratic_cost(t, aL, y);
	else if (f->acts[f->L - 1] == NB_SOFTMAX)
		c = nb_softmax_cross_entropy(t, zL, y);
	else
		c = nb_sigmoid_cross_entropy(t, zL, y);
	if (f->opts.lambda == 0.0)
		return c;
	for (size_t l = 0; l < f->L; l++) {
		nb_tensor *s = nb_sum(t, nb_mul(t, f->tw[l], f->tw[l]));

		l2 = l2 ? nb_add(t, l2, s) : s;
	}
	return nb_add(t, c, nb_scale(t, l2, f->opts.lambda / (2.0 * (double)f->n)));
}

/* The tape's values of x (rows x cols, or cols x rows when transpose), one example per
 * column. */
static void values_as_columns(const nb_tensor *x, double *dst, size_t rows, size_t cols,
                              bool transpose)
{
	const double *v = nb_value(x);

	ck_assert_ptr_nonnull(v);
	for (size_t j = 0; j < rows; j++)
		for (size_t c = 0; c < cols; c++)
			dst[j * cols + c] = transpose ? v[c * rows + j] : v[j * cols + c];
}

static void net3_graph(struct net3 *f)
{
	nb_tape *t = nb_tape_new();
	bool rows = f->opts.rows != 0;
	size_t n = f->n, in = f->sizes[0], out = f->sizes[f->L];
	nb_tensor *a, *y, *z = NULL;

	ck_assert_ptr_nonnull(t);
	f->t = t;
	a = nb_constant(t, 2, (size_t[]){ n, in }, f->xr);
	y = nb_constant(t, 2, rows ? (size_t[]){ n, out } : (size_t[]){ out, n }, f->y);
	for (size_t l = 0; l < f->L; l++) {
		size_t r = f->sizes[l + 1], c = f->sizes[l];

		f->tw[l] = nb_variable(t, 2, (size_t[]){ r, c }, f->w[l]);
		f->tb[l] = nb_variable(t, 2, rows ? (size_t[]){ 1, r } : (size_t[]){ r, 1 },
		                       f->b[l]);
		if (rows)
			z = nb_matmul_t(t, a, f->tw[l], NB_TRANS_B);
		else if (l == 0)
			z = nb_matmul_t(t, f->tw[l], a, NB_TRANS_B);
		else
			z = nb_matmul(t, f->tw[l], a);
		f->tz[l] = nb_add(t, z, f->tb[l]);
		f->ta[l] = activation_op(t, f->tz[l], f->acts[l], rows ? 1 : 0);
		a = f->ta[l];
		z = f->tz[l];
	}
	if (rows)
		f->tc = net3_cost(f, t, nb_transpose(t, z), nb_transpose(t, a), nb_transpose(t, y));
	else
		f->tc = net3_cost(f, t, z, a, y);
	ck_assert_msg(nb_tape_status(t) == NB_OK, "%s: recording: %s", f->what,
	              nb_tape_message(t));
	ck_assert_msg(nb_backward(t, f->tc, NULL) == NB_OK, "%s: backward: %s", f->what,
	              nb_tape_message(t));
	for (size_t l = 0; l < f->L; l++)
		values_as_columns(f->ta[l], f->a[l], f->sizes[l + 1], n, rows);
	values_as_columns(f->tz[f->L - 1], f->zL, out, n, rows);
}

/* f'(z) from a = f(z), never negative: sigmoid a (1 - a), tanh 1 - a^2, relu [a > 0]. */
static double act_prime(int act, double a)
{
	if (act == NB_TANH)
		return 1.0 - a * a;
	if (act == NB_RELU)
		return a > 0.0 ? 1.0 : 0.0;
	return a * (1.0 - a);
}

/* BP1 on magnitudes, g = (|a| + |y|) / n standing for (a - y) / n, which cancels where the
 * network is right:
 *   quadratic        g ⊙ f'(z^L); for softmax a_j (g_j + sum_k a_k g_k), the Jacobian's
 *                    two terms
 *   cross-entropy    g for a sigmoid output, (a_j sum_k |y_k| + |y_j|) / n for softmax */
static void net3_bp1_magnitude(struct net3 *f)
{
	size_t L = f->L, m = f->sizes[L], n = f->n;
	const double *a = f->a[L - 1], *y = f->yc;
	double *mag = f->mag_delta[L - 1];
	int act = f->acts[L - 1];

	for (size_t c = 0; c < n; c++) {
		double mass = 0.0, dot = 0.0;

		for (size_t k = 0; k < m; k++) {
			size_t i = k * n + c;

			mass += fabs(y[i]);
			dot += a[i] * (fabs(a[i]) + fabs(y[i])) / (double)n;
		}
		for (size_t k = 0; k < m; k++) {
			size_t i = k * n + c;
			double g = (fabs(a[i]) + fabs(y[i])) / (double)n;

			if (f->opts.cost == NB_CROSS_ENTROPY && act == NB_SOFTMAX)
				mag[i] = (a[i] * mass + fabs(y[i])) / (double)n;
			else if (f->opts.cost == NB_CROSS_ENTROPY)
				mag[i] = g;
			else if (act == NB_SOFTMAX)
				mag[i] = a[i] * (g + dot);
			else
				mag[i] = g * act_prime(act, a[i]);
		}
	}
}

/* BP2 on magnitudes: m^l = (|w^{l+1}|^T m^{l+1}) ⊙ f'(z^l), for index l >= 1 from l. */
static void net3_bp2_magnitude(struct net3 *f, size_t l)
{
	size_t n = f->n, rows = f->sizes[l + 1], cols = f->sizes[l];
	const double *a = f->a[l - 1], *w = f->w[l], *m_next = f->mag_delta[l];

	for (size_t k = 0; k < cols; k++) {
		for (size_t c = 0; c < n; c++) {
			double s = 0.0;

			for (size_t j = 0; j < rows; j++)
				s += fabs(w[j * cols + k]) * m_next[j * n + c];
			f->mag_delta[l - 1][k * n + c] = s * act_prime(f->acts[l - 1], a[k * n + c]);
		}
	}
}

/* BP3 and BP4 on magnitudes for index l, with the L2 term (lambda/n) |w|. */
static void net3_bp3_bp4_magnitude(struct net3 *f, size_t l)
{
	size_t n = f->n, rows = f->sizes[l + 1], cols = f->sizes[l];
	const double *a = l == 0 ? f->xc : f->a[l - 1], *m = f->mag_delta[l];
	double decay = f->opts.lambda / (double)n;

	for (size_t j = 0; j < rows; j++) {
		f->mag_db[l][j] = 0.0;
		for (size_t c = 0; c < n; c++)
			f->mag_db[l][j] += m[j * n + c];
		for (size_t k = 0; k < cols; k++) {
			double s = decay * fabs(f->w[l][j * cols + k]);

			for (size_t c = 0; c < n; c++)
				s += m[j * n + c] * fabs(a[k * n + c]);
			f->mag_dw[l][j * cols + k] = s;
		}
	}
}

/* The terms the cost sums, each by its magnitude: quadratic (|a| + |y|)^2 / (2n);
 * sigmoid cross-entropy max(z, 0) - z y + ln(1 + e^{-|z|}) as |z| + |z y| + ln 2 at most;
 * log-likelihood -y (z - ln sum e^z) as |y| (|z| + max |z| + ln m); L2 its own value. */
static void net3_cost_magnitude(struct net3 *f)
{
	size_t m = f->sizes[f->L], n = f->n;
	const double *a = f->a[f->L - 1], *z = f->zL, *y = f->yc;
	double s = 0.0, l2 = 0.0;

	for (size_t c = 0; c < n; c++) {
		double top = 0.0;

		for (size_t k = 0; k < m; k++)
			top = fmax(top, fabs(z[k * n + c]));
		for (size_t k = 0; k < m; k++) {
			size_t i = k * n + c;

			if (f->opts.cost == NB_QUADRATIC)
				s += (fabs(a[i]) + fabs(y[i])) * (fabs(a[i]) + fabs(y[i])) / 2.0;
			else if (f->acts[f->L - 1] == NB_SOFTMAX)
				s += fabs(y[i]) * (fabs(z[i]) + top + log((double)m));
			else
				s += fabs(z[i]) + fabs(z[i] * y[i]) + log(2.0);
		}
	}
	for (size_t l = 0; l < f->L; l++)
		for (size_t i = 0; i < f->sizes[l + 1] * f->sizes[l]; i++)
			l2 += f->w[l][i] * f->w[l][i];
	f->mag_cost = s / (double)n + f->opts.lambda / (2.0 * (double)n) * l2;
}

static void net3_magnitudes(struct net3 *f)
{
	net3_bp1_magnitude(f);
	for (size_t l = f->L - 1; l >= 1; l--)
		net3_bp2_magnitude(f, l);
	for (size_t l = 0; l < f->L; l++)
		net3_bp3_bp4_magnitude(f, l);
	net3_cost_magnitude(f);
}

/* Assert that x holds rows x cols values (cols x rows when transposed, as delta is for
 * examples as rows) equal to want, each within TOL_EXACT relative to the larger of itself
 * and its magnitude in mag (rows x cols). */
static void net3_assert(const struct net3 *f, const char *what, size_t layer,
                        const nb_tensor *x, const double *want, const double *mag,
                        size_t rows, size_t cols, bool transposed)
{
	const double *got;

	ck_assert_msg(x != NULL, "%s: %s^%zu: no gradient node", f->what, what, layer);
	ck_assert_msg(nb_size(x) == rows * cols, "%s: %s^%zu: %zu values, want %zu", f->what,
	              what, layer, nb_size(x), rows * cols);
	got = nb_value(x);
	for (size_t i = 0; i < rows * cols; i++) {
		size_t j = transposed ? i % rows : i / cols, c = transposed ? i / rows : i % cols;
		double d = max_rel_diff(&got[i], &want[i], 1, fmax(mag[j * cols + c], REL_FLOOR));

		ck_assert_msg(d <= TOL_EXACT,
		              "%s: %s^%zu[%zu]: %.17g, reference %.17g: relative difference %g > %g",
		              f->what, what, layer, i, got[i], want[i], d, TOL_EXACT);
	}
}

static void net3_assert_all(const struct net3 *f)
{
	double c = nb_value(f->tc)[0];
	double d = max_rel_diff(&c, &f->cost, 1, fmax(f->mag_cost, REL_FLOOR));

	ck_assert_msg(d <= TOL_EXACT, "%s: cost %.17g, reference %.17g: relative difference %g",
	              f->what, c, f->cost, d);
	for (size_t l = 0; l < f->L; l++) {
		size_t rows = f->sizes[l + 1], cols = f->sizes[l];

		net3_assert(f, "delta", l + 1, nb_grad(f->tz[l]), f->delta[l], f->mag_delta[l], rows,
		            f->n, f->opts.rows != 0);
		net3_assert(f, "dC/db", l + 1, nb_grad(f->tb[l]), f->db[l], f->mag_db[l], rows, 1,
		            false);
		net3_assert(f, "dC/dw", l + 1, nb_grad(f->tw[l]), f->dw[l], f->mag_dw[l], rows,
		            cols, false);
	}
}

START_TEST(test_opts_autodiff_equals_closed_form)
{
	struct net3 f;

	net3_init(&f, _i);
	net3_reference(&f);
	net3_graph(&f);
	net3_magnitudes(&f);
	net3_assert_all(&f);
	net3_free(&f);
}
END_TEST

START_TEST(test_opts_activation_lists_equal_autodiff)
{
	struct net3 f;

	net3_init_mixed(&f, _i);
	net3_reference(&f);
	net3_graph(&f);
	net3_magnitudes(&f);
	net3_assert_all(&f);
	net3_free(&f);
}
END_TEST

/* ---- Chapter 3: the reference on its own ------------------------------------------------ */

/* The outputs of one run of the reference on a bp_fixture's network and data. */
struct ref_out {
	double *dw[N_W], *db[N_W], *delta[N_W], cost;
};

static void ref_out_run(struct ref_out *r, const struct bp_fixture *f, const nb_bp_opts *opts)
{
	nb_mlp net = {
		.n_layers = N_SIZES, .sizes = f->sizes,
		.w = (const double *const *)f->w, .b = (const double *const *)f->b,
	};
	char msg[NB_MSG_MAX] = "";

	for (size_t l = 0; l < N_W; l++) {
		r->dw[l] = alloc_doubles(f->sizes[l + 1] * f->sizes[l]);
		r->db[l] = alloc_doubles(f->sizes[l + 1]);
		r->delta[l] = alloc_doubles(f->sizes[l + 1] * f->n);
	}
	ck_assert_msg(nb_bp_reference_opts(&net, f->n, f->x, f->y, opts, r->dw, r->db, r->delta,
	                                   &r->cost, msg) == NB_OK, "%s", msg);
}

static void ref_out_free(struct ref_out *r)
{
	for (size_t l = 0; l < N_W; l++) {
		free(r->dw[l]);
		free(r->db[l]);
		free(r->delta[l]);
	}
}

/* r and s hold the same bits. */
static void assert_same_outputs(const struct ref_out *r, const struct ref_out *s,
                                const struct bp_fixture *f)
{
	ck_assert(memcmp(&r->cost, &s->cost, sizeof r->cost) == 0);
	for (size_t l = 0; l < N_W; l++) {
		size_t rows = f->sizes[l + 1], cols = f->sizes[l];

		ck_assert(memcmp(r->dw[l], s->dw[l], rows * cols * sizeof *r->dw[l]) == 0);
		ck_assert(memcmp(r->db[l], s->db[l], rows * sizeof *r->db[l]) == 0);
		ck_assert(memcmp(r->delta[l], s->delta[l], rows * f->n * sizeof *r->delta[l]) == 0);
	}
}

/* NULL options, zero options and nb_bp_reference() are one computation, bit for bit; an
 * activation list saying what hidden and output say is the same as those two. */
START_TEST(test_opts_defaults_are_bp_reference)
{
	static const int acts[N_W] = { NB_TANH, NB_SOFTMAX };
	const nb_bp_opts zero = { 0 };
	const nb_bp_opts fields = { .hidden = NB_TANH, .output = NB_SOFTMAX,
	                            .cost = NB_CROSS_ENTROPY, .lambda = 0.5 };
	const nb_bp_opts list = { .activations = acts, .cost = NB_CROSS_ENTROPY, .lambda = 0.5 };
	struct bp_fixture f;
	struct ref_out plain, by_null, by_zero, by_fields, by_list;

	fixture_init(&f, _i);
	run_reference(&f);
	memcpy(plain.dw, f.dw, sizeof plain.dw);
	memcpy(plain.db, f.db, sizeof plain.db);
	memcpy(plain.delta, f.delta, sizeof plain.delta);
	plain.cost = f.cost;
	ref_out_run(&by_null, &f, NULL);
	ref_out_run(&by_zero, &f, &zero);
	ref_out_run(&by_fields, &f, &fields);
	ref_out_run(&by_list, &f, &list);
	assert_same_outputs(&by_null, &plain, &f);
	assert_same_outputs(&by_zero, &plain, &f);
	assert_same_outputs(&by_list, &by_fields, &f);
	/* ... and the choices do change the result. */
	ck_assert(memcmp(&by_fields.cost, &plain.cost, sizeof plain.cost) != 0);
	ref_out_free(&by_null);
	ref_out_free(&by_zero);
	ref_out_free(&by_fields);
	ref_out_free(&by_list);
	fixture_free(&f);
}
END_TEST

/* [1,1,2], two examples as rows: tanh hidden unit, softmax output, log-likelihood cost, L2;
 * every quantity written out from its definition (the softmax and ln a^L themselves, not
 * the reference's z - logsumexp), so the two agree to rounding, far within TOL_EXACT. */
START_TEST(test_opts_match_hand_computation_softmax)
{
	const double w1 = 0.5, b1 = -0.25, w2[2] = { -1.5, 0.7 }, b2[2] = { 0.75, -0.1 };
	const double lambda = 0.3, x[2] = { 0.8, -0.3 };
	const double y[4] = { 0.0, 1.0, 1.0, 0.0 };  /* rows: example 0 is class 1, 1 class 0 */
	const size_t sizes[3] = { 1, 1, 2 };
	const double *w[2] = { &w1, w2 }, *b[2] = { &b1, b2 };
	const nb_bp_opts opts = { .hidden = NB_TANH, .output = NB_SOFTMAX,
	                          .cost = NB_CROSS_ENTROPY, .lambda = lambda, .rows = 1 };
	nb_mlp net = { .n_layers = 3, .sizes = sizes, .w = w, .b = b };
	double a1[2], a2[4], d1[2], d2[4], cost = 0.0, want_cost = 0.0;
	double dw1, db1, dw2[2], db2[2], got_d1[2], got_d2[4], got_cost = 0.0;

	for (int c = 0; c < 2; c++) {
		double e0, e1;

		a1[c] = tanh(w1 * x[c] + b1);
		e0 = exp(w2[0] * a1[c] + b2[0]);
		e1 = exp(w2[1] * a1[c] + b2[1]);
		a2[c * 2 + 0] = e0 / (e0 + e1);
		a2[c * 2 + 1] = e1 / (e0 + e1);
		/* (80): -ln of the output of the right class, averaged over n = 2 */
		cost -= log(a2[c * 2 + (c == 0 ? 1 : 0)]) / 2.0;
		/* (84) */
		for (int j = 0; j < 2; j++)
			d2[c * 2 + j] = (a2[c * 2 + j] - y[c * 2 + j]) / 2.0;
		/* BP2 with tanh' = 1 - a^2 */
		d1[c] = (w2[0] * d2[c * 2] + w2[1] * d2[c * 2 + 1]) * (1.0 - a1[c] * a1[c]);
	}
	/* (87): lambda/(2n) sum w^2 */
	cost += lambda / 4.0 * (w1 * w1 + w2[0] * w2[0] + w2[1] * w2[1]);
	ck_assert_int_eq(nb_bp_reference_opts(&net, 2, x, y, &opts, (double *[]){ &dw1, dw2 },
	                                      (double *[]){ &db1, db2 },
	                                      (double *[]){ got_d1, got_d2 }, &got_cost, NULL),
	                 NB_OK);
	want_cost = cost;
	ck_assert_double_le(rel_diff(got_cost, want_cost), TOL_EXACT);
	/* delta^2 is n x 2, one example per row, as y */
	for (int i = 0; i < 4; i++)
		ck_assert_double_le(rel_diff(got_d2[i], d2[i]), TOL_EXACT);
	for (int c = 0; c < 2; c++)
		ck_assert_double_le(rel_diff(got_d1[c], d1[c]), TOL_EXACT);
	/* BP3 (no L2: 89), BP4 plus (lambda/n) w (88) */
	for (int j = 0; j < 2; j++) {
		ck_assert_double_le(rel_diff(db2[j], d2[j] + d2[2 + j]), TOL_EXACT);
		ck_assert_double_le(rel_diff(dw2[j], d2[j] * a1[0] + d2[2 + j] * a1[1] +
		                                     lambda / 2.0 * w2[j]), TOL_EXACT);
	}
	ck_assert_double_le(rel_diff(db1, d1[0] + d1[1]), TOL_EXACT);
	ck_assert_double_le(rel_diff(dw1, d1[0] * x[0] + d1[1] * x[1] + lambda / 2.0 * w1),
	                    TOL_EXACT);
}
END_TEST

/* [1,1,1], two examples as columns: a ReLU hidden unit that is off for the second example,
 * a sigmoid output with the cross-entropy cost and a target that is not 0 or 1. */
START_TEST(test_opts_match_hand_computation_cross_entropy)
{
	const double w1 = 0.5, b1 = -0.25, w2 = -1.5, b2 = 0.75;
	const double x[2] = { 0.8, -0.3 }, y[2] = { 1.0, 0.25 };
	const size_t sizes[3] = { 1, 1, 1 };
	const double *w[2] = { &w1, &w2 }, *b[2] = { &b1, &b2 };
	const nb_bp_opts opts = { .hidden = NB_RELU, .cost = NB_CROSS_ENTROPY };
	nb_mlp net = { .n_layers = 3, .sizes = sizes, .w = w, .b = b };
	double a1[2], a2[2], d1[2], d2[2], cost = 0.0;
	double dw[2], db[2], got_d1[2], got_d2[2], got_cost = 0.0;

	for (int c = 0; c < 2; c++) {
		double z1 = w1 * x[c] + b1;

		a1[c] = z1 > 0.0 ? z1 : 0.0;  /* z1 is 0.15, then -0.4 */
		a2[c] = 1.0 / (1.0 + exp(-(w2 * a1[c] + b2)));
		/* (63), averaged over n = 2 */
		cost -= (y[c] * log(a2[c]) + (1.0 - y[c]) * log(1.0 - a2[c])) / 2.0;
		/* (66) */
		d2[c] = (a2[c] - y[c]) / 2.0;
		/* BP2 with relu' = step(z) */
		d1[c] = w2 * d2[c] * (z1 > 0.0 ? 1.0 : 0.0);
	}
	ck_assert_int_eq(nb_bp_reference_opts(&net, 2, x, y, &opts, (double *[]){ &dw[0], &dw[1] },
	                                      (double *[]){ &db[0], &db[1] },
	                                      (double *[]){ got_d1, got_d2 }, &got_cost, NULL),
	                 NB_OK);
	ck_assert_double_le(rel_diff(got_cost, cost), TOL_EXACT);
	for (int c = 0; c < 2; c++) {
		ck_assert_double_le(rel_diff(got_d2[c], d2[c]), TOL_EXACT);
		ck_assert_double_le(rel_diff(got_d1[c], d1[c]), TOL_EXACT);
	}
	ck_assert_double_eq(got_d1[1], 0.0);
	ck_assert_double_le(rel_diff(db[1], d2[0] + d2[1]), TOL_EXACT);
	ck_assert_double_le(rel_diff(dw[1], d2[0] * a1[0] + d2[1] * a1[1]), TOL_EXACT);
	ck_assert_double_le(rel_diff(db[0], d1[0] + d1[1]), TOL_EXACT);
	ck_assert_double_le(rel_diff(dw[0], d1[0] * x[0] + d1[1] * x[1]), TOL_EXACT);
}
END_TEST

/* The options the reference refuses, on the valid [2,3,2] network of bp_args. */
static const int acts_softmax_hidden[2] = { NB_SOFTMAX, NB_SIGMOID };
static const int acts_bad_hidden[2] = { 42, NB_SIGMOID };
static const int acts_bad_output[2] = { NB_TANH, 9 };
static const int acts_relu_output[2] = { NB_TANH, NB_RELU };

static const struct {
	nb_bp_opts opts;
	const char *message;
} bad_opts[] = {
	{ { .hidden = 7 }, "bp_reference: opts->hidden is 7, not sigmoid, tanh or relu" },
	{ { .hidden = -1 }, "bp_reference: opts->hidden is -1, not sigmoid, tanh or relu" },
	{ { .hidden = NB_SOFTMAX }, "bp_reference: opts->hidden is softmax, which is for the "
	                            "output layer only (hidden layers: sigmoid, tanh or relu)" },
	{ { .output = 4 }, "bp_reference: opts->output is 4, not sigmoid, tanh, relu or softmax" },
	{ { .output = -1 },
	  "bp_reference: opts->output is -1, not sigmoid, tanh, relu or softmax" },
	{ { .cost = 2 }, "bp_reference: opts->cost is 2, not quadratic or cross-entropy" },
	{ { .cost = -1 }, "bp_reference: opts->cost is -1, not quadratic or cross-entropy" },
	{ { .output = NB_TANH, .cost = NB_CROSS_ENTROPY },
	  "bp_reference: opts->cost is cross-entropy, which needs a sigmoid or softmax output "
	  "layer, not tanh" },
	{ { .output = NB_RELU, .cost = NB_CROSS_ENTROPY },
	  "bp_reference: opts->cost is cross-entropy, which needs a sigmoid or softmax output "
	  "layer, not relu" },
	{ { .lambda = -0.5 }, "bp_reference: opts->lambda is -0.5, not a finite number >= 0" },
	{ { .lambda = NAN }, "bp_reference: opts->lambda is nan, not a finite number >= 0" },
	{ { .lambda = INFINITY }, "bp_reference: opts->lambda is inf, not a finite number >= 0" },
	{ { .activations = acts_softmax_hidden },
	  "bp_reference: opts->activations[0] is softmax, which is for the output layer only "
	  "(hidden layers: sigmoid, tanh or relu)" },
	{ { .activations = acts_bad_hidden },
	  "bp_reference: opts->activations[0] is 42, not sigmoid, tanh or relu" },
	{ { .activations = acts_bad_output },
	  "bp_reference: opts->activations[1] is 9, not sigmoid, tanh, relu or softmax" },
	{ { .activations = acts_relu_output, .cost = NB_CROSS_ENTROPY },
	  "bp_reference: opts->cost is cross-entropy, which needs a sigmoid or softmax output "
	  "layer, not relu" },
};

#define N_BAD_OPTS ((int)(sizeof bad_opts / sizeof bad_opts[0]))

/* Each is NB_EINVAL with its message, with or without a buffer, and writes no output. */
START_TEST(test_opts_rejects_bad_choice)
{
	struct bp_args a;
	char msg[NB_MSG_MAX] = "";
	double cost = 42.0;

	args_init(&a);
	a.dw0[0] = 42.0;
	ck_assert_int_eq(nb_bp_reference_opts(a.netp, a.n, a.xp, a.yp, &bad_opts[_i].opts, a.dwp,
	                                      a.dbp, NULL, &cost, msg),
	                 NB_EINVAL);
	ck_assert_str_eq(msg, bad_opts[_i].message);
	ck_assert_double_eq(a.dw0[0], 42.0);
	ck_assert_double_eq(cost, 42.0);
	ck_assert_int_eq(nb_bp_reference_opts(a.netp, a.n, a.xp, a.yp, &bad_opts[_i].opts, a.dwp,
	                                      a.dbp, NULL, NULL, NULL),
	                 NB_EINVAL);
}
END_TEST

/* The arguments nb_bp_reference() refuses, nb_bp_reference_opts() refuses alike, whatever
 * the (valid) options. */
START_TEST(test_opts_rejects_bad_argument)
{
	const nb_bp_opts opts = { .hidden = NB_TANH, .output = NB_SOFTMAX,
	                          .cost = NB_CROSS_ENTROPY, .lambda = 0.5, .rows = 1 };
	const struct bad_case *bc = &bad_cases[_i];
	struct bp_args a;
	char msg[NB_MSG_MAX] = "";

	args_init(&a);
	ck_assert_int_eq(nb_bp_reference_opts(a.netp, a.n, a.xp, a.yp, &opts, a.dwp, a.dbp, NULL,
	                                      NULL, msg),
	                 NB_OK);
	bc->breaks(&a);
	ck_assert_int_eq(nb_bp_reference_opts(a.netp, a.n, a.xp, a.yp, &opts, a.dwp, a.dbp, NULL,
	                                      NULL, msg),
	                 bc->status);
	ck_assert_str_eq(msg, bc->message);
}
END_TEST

/* With options too, every allocation goes through the network's allocator: failing each
 * in turn gives NB_ENOMEM and leaks nothing. */
START_TEST(test_opts_use_the_callers_allocator)
{
	const nb_bp_opts opts = { .hidden = NB_RELU, .output = NB_SOFTMAX,
	                          .cost = NB_CROSS_ENTROPY, .lambda = 0.5, .rows = 1 };
	struct bp_args a;
	size_t k;

	args_init(&a);
	for (k = 1;; k++) {
		count_alloc c = { .fail_at = k };
		char msg[NB_MSG_MAX] = "";
		int status;

		a.net.alloc = count_alloc_fn;
		a.net.alloc_ud = &c;
		status = nb_bp_reference_opts(a.netp, a.n, a.xp, a.yp, &opts, a.dwp, a.dbp, NULL,
		                              NULL, msg);
		ck_assert_uint_eq(c.bytes_in_use, 0);
		if (c.fail_at != 0) {
			ck_assert_int_eq(status, NB_OK);
			break;
		}
		ck_assert_int_eq(status, NB_ENOMEM);
		ck_assert_str_eq(msg, "bp_reference: out of memory");
	}
	ck_assert_uint_gt(k, 3);
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
	TCase *ch3 = tcase_create("chapter 3");

	/* The [784,30,10] cases are slow under valgrind, not in any test's logic. */
	tcase_set_timeout(eq, 120);
	tcase_set_timeout(st, 120);
	tcase_set_timeout(rp, 120);
	tcase_set_timeout(ch3, 120);
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
	tcase_add_loop_test(ch3, test_opts_autodiff_equals_closed_form, 0, N_OPTS_LOOP);
	tcase_add_loop_test(ch3, test_opts_activation_lists_equal_autodiff, 0, N_MIXED_LOOP);
	tcase_add_loop_test(ch3, test_opts_defaults_are_bp_reference, 0, N_LOOP);
	tcase_add_test(ch3, test_opts_match_hand_computation_softmax);
	tcase_add_test(ch3, test_opts_match_hand_computation_cross_entropy);
	tcase_add_loop_test(ch3, test_opts_rejects_bad_choice, 0, N_BAD_OPTS);
	tcase_add_loop_test(ch3, test_opts_rejects_bad_argument, 0, N_BAD_CASES);
	tcase_add_test(ch3, test_opts_use_the_callers_allocator);
	suite_add_tcase(s, eq);
	suite_add_tcase(s, st);
	suite_add_tcase(s, rp);
	suite_add_tcase(s, ref);
	suite_add_tcase(s, ch3);
	return s;
}

int main(void)
{
	return run_suite(bp_suite());
}
