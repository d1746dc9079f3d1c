/* test_net.c -- networks built as op graphs: one SGD step equals a step computed from the
 * closed-form BP1-BP4 reference, momentum and weight decay, reproducibility, allocation
 * (none after the first step; every failure reported), training on real digits, and
 * every bad argument. */
#define _POSIX_C_SOURCE 200809L  /* open_memstream */

#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* ---- Helpers -------------------------------------------------------------------------- */

static nb_net *make_net(const size_t *sizes, size_t n_layers, unsigned long long seed)
{
	nb_net_config cfg = { .n_layers = n_layers, .sizes = sizes, .seed = seed };
	char msg[NB_MSG_MAX];
	nb_net *net = NULL;

	ck_assert_msg(nb_net_new(&cfg, &net, msg) == NB_OK, "%s", msg);
	return net;
}

/* Row-major (n x k) to (k x n): the reference takes one example per column. */
static double *columns(const double *rows, size_t n, size_t k)
{
	double *c = malloc(n * k * sizeof *c);

	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < k; j++)
			c[j * n + i] = rows[i * k + j];
	return c;
}

/* The gradients of the reference, one array per layer, and the cost. */
struct ref {
	size_t L;
	double *dw[4], *db[4], cost;
};

static void reference(nb_net *net, const double *x, const double *y, size_t n, struct ref *r)
{
	nb_mlp m = nb_net_mlp(net);
	double *xc = columns(x, n, m.sizes[0]), *yc = columns(y, n, m.sizes[m.n_layers - 1]);
	char msg[NB_MSG_MAX];

	r->L = m.n_layers - 1;
	for (size_t l = 0; l < r->L; l++) {
		r->dw[l] = malloc(m.sizes[l + 1] * m.sizes[l] * sizeof(double));
		r->db[l] = malloc(m.sizes[l + 1] * sizeof(double));
	}
	ck_assert_msg(nb_bp_reference(&m, n, xc, yc, r->dw, r->db, NULL, &r->cost, msg) == NB_OK,
	              "%s", msg);
	free(xc);
	free(yc);
}

static void ref_free(struct ref *r)
{
	for (size_t l = 0; l < r->L; l++) {
		free(r->dw[l]);
		free(r->db[l]);
	}
}

/* a and b agree to TOL_EXACT relative to the magnitude of the terms that made them: a
 * parameter w - eta g is compared relative to max(|w|, |eta g|), which it may cancel. */
static void assert_close(const double *a, const double *b, const double *mag, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(fabs(a[i] - b[i]) <= TOL_EXACT * fmax(mag[i], fabs(b[i])),
		              "element %zu: %.17g, expected %.17g", i, a[i], b[i]);
}

static const size_t S453[3] = { 4, 5, 3 };

static void random_batch(test_rng *r, double *x, double *y, size_t n, size_t in, size_t out)
{
	rng_fill(r, x, n * in, 0, 1);
	rng_fill(r, y, n * out, 0, 1);
}

/* ---- SGD equals the closed form --------------------------------------------------------- */

/* Expected parameters after w -= eta (g + decay w) with velocity: v = mu v - eta (g + d w). */
struct expect {
	double w[2][20], b[2][5], vw[2][20], vb[2][5], mag_w[2][20], mag_b[2][5];
};

static void expect_step(nb_net *net, struct expect *e, const struct ref *r, double eta,
                        double mu, double decay)
{
	nb_mlp m = nb_net_mlp(net);

	for (size_t l = 0; l < 2; l++) {
		for (size_t i = 0; i < m.sizes[l + 1] * m.sizes[l]; i++) {
			e->vw[l][i] = mu * e->vw[l][i] - eta * (r->dw[l][i] + decay * e->w[l][i]);
			e->mag_w[l][i] = fmax(fabs(e->w[l][i]), fabs(e->vw[l][i]));
			e->w[l][i] += e->vw[l][i];
		}
		for (size_t j = 0; j < m.sizes[l + 1]; j++) {
			e->vb[l][j] = mu * e->vb[l][j] - eta * r->db[l][j];
			e->mag_b[l][j] = fmax(fabs(e->b[l][j]), fabs(e->vb[l][j]));
			e->b[l][j] += e->vb[l][j];
		}
	}
}

static void assert_params(nb_net *net, const struct expect *e)
{
	for (size_t l = 0; l < 2; l++) {
		assert_close(nb_net_weights(net, l), e->w[l], e->mag_w[l], S453[l + 1] * S453[l]);
		assert_close(nb_net_biases(net, l), e->b[l], e->mag_b[l], S453[l + 1]);
	}
}

/* Three steps (plain, or with momentum and weight decay), each against the closed form
 * evaluated at the parameters the previous expected step produced. */
static void run_steps(double mu, double decay)
{
	nb_net *net = make_net(S453, 3, 11);
	nb_sgd opt = { .batch = 6, .eta = 0.7, .momentum = mu, .weight_decay = decay };
	struct expect e = { 0 };
	double x[6 * 4], y[6 * 3], cost;
	test_rng r;

	rng_seed(&r, 2);
	for (size_t l = 0; l < 2; l++) {
		memcpy(e.w[l], nb_net_weights(net, l), S453[l + 1] * S453[l] * sizeof(double));
		memcpy(e.b[l], nb_net_biases(net, l), S453[l + 1] * sizeof(double));
	}
	for (int k = 0; k < 3; k++) {
		struct ref ref;

		random_batch(&r, x, y, 6, 4, 3);
		reference(net, x, y, 6, &ref);
		ck_assert_int_eq(nb_net_sgd_step(net, x, y, 6, &opt, &cost), NB_OK);
		ck_assert_double_le(rel_diff(cost, ref.cost), TOL_EXACT);
		expect_step(net, &e, &ref, opt.eta, mu, decay);
		assert_params(net, &e);
		ref_free(&ref);
	}
	nb_net_free(net);
}

START_TEST(test_sgd_step_equals_closed_form_step)
{
	run_steps(0.0, 0.0);
}
END_TEST

START_TEST(test_momentum_and_weight_decay_steps)
{
	run_steps(0.9, 0.01);
}
END_TEST

/* ---- Reproducibility and allocation ----------------------------------------------------- */

static const size_t S242[3] = { 2, 4, 2 };

START_TEST(test_same_seed_same_run)
{
	nb_dataset ds;
	nb_net *a = make_net(S242, 3, 5), *b = make_net(S242, 3, 5), *c = make_net(S242, 3, 6);
	nb_sgd opt = { .batch = 7, .eta = 2.0 };

	make_pairs_data(&ds, 100, 1);
	for (int e = 0; e < 3; e++) {
		ck_assert_int_eq(nb_net_sgd_epoch(a, &ds, &opt, NULL, NULL, NULL), NB_OK);
		ck_assert_int_eq(nb_net_sgd_epoch(b, &ds, &opt, NULL, NULL, NULL), NB_OK);
		ck_assert_int_eq(nb_net_sgd_epoch(c, &ds, &opt, NULL, NULL, NULL), NB_OK);
	}
	for (size_t l = 0; l < 2; l++) {
		ck_assert_mem_eq(nb_net_weights(a, l), nb_net_weights(b, l),
		                 S242[l + 1] * S242[l] * sizeof(double));
		ck_assert_mem_eq(nb_net_biases(a, l), nb_net_biases(b, l), S242[l + 1] * sizeof(double));
	}
	ck_assert(memcmp(nb_net_weights(a, 0), nb_net_weights(c, 0), 8 * sizeof(double)) != 0);
	nb_net_free(a);
	nb_net_free(b);
	nb_net_free(c);
	free_pairs_data(&ds);
}
END_TEST

START_TEST(test_steps_allocate_nothing_after_the_first)
{
	count_alloc c = { 0 };
	nb_net_config cfg = { .n_layers = 3, .sizes = S453, .alloc = count_alloc_fn,
	                      .alloc_ud = &c };
	nb_sgd opt = { .batch = 6, .eta = 0.5, .momentum = 0.5 };
	double x[6 * 4], y[6 * 3];
	nb_dataset ds;
	nb_net *net;
	size_t allocs;
	test_rng r;

	rng_seed(&r, 4);
	random_batch(&r, x, y, 6, 4, 3);
	ck_assert_int_eq(nb_net_new(&cfg, &net, NULL), NB_OK);
	ck_assert_int_eq(nb_net_sgd_step(net, x, y, 6, &opt, NULL), NB_OK);
	allocs = c.allocs;
	for (int k = 0; k < 10; k++)
		ck_assert_int_eq(nb_net_sgd_step(net, x, y, 6, &opt, NULL), NB_OK);
	ck_assert_uint_eq(c.allocs, allocs);
	nb_net_free(net);
	ck_assert_uint_eq(c.bytes_in_use, 0);

	make_pairs_data(&ds, 50, 2);  /* epochs: the order and the graphs are made once */
	cfg.sizes = S242;
	ck_assert_int_eq(nb_net_new(&cfg, &net, NULL), NB_OK);
	ck_assert_int_eq(nb_net_sgd_epoch(net, &ds, &opt, NULL, NULL, NULL), NB_OK);
	allocs = c.allocs;
	ck_assert_int_eq(nb_net_sgd_epoch(net, &ds, &opt, NULL, NULL, NULL), NB_OK);
	ck_assert_uint_eq(c.allocs, allocs);
	nb_net_free(net);
	ck_assert_uint_eq(c.bytes_in_use, 0);
	free_pairs_data(&ds);
}
END_TEST

/* Allocation k fails, for every k until a whole run succeeds: each run ends with a clear
 * NB_ENOMEM (at creation or in training) and gives everything back. */
START_TEST(test_every_allocation_failure_is_reported)
{
	nb_dataset ds;
	size_t k;

	make_pairs_data(&ds, 30, 3);
	for (k = 1;; k++) {
		count_alloc c = { .fail_at = k };
		nb_net_config cfg = { .n_layers = 3, .sizes = S242, .alloc = count_alloc_fn,
		                      .alloc_ud = &c };
		nb_sgd opt = { .batch = 8, .eta = 1.0, .momentum = 0.5 };
		char msg[NB_MSG_MAX];
		nb_net *net = NULL;
		int st = nb_net_new(&cfg, &net, msg);

		if (st == NB_OK) {
			st = nb_net_sgd_epoch(net, &ds, &opt, NULL, NULL, NULL);
			if (st == NB_OK)
				st = nb_net_evaluate(net, &ds, NULL, NULL);
			snprintf(msg, sizeof msg, "%s", nb_net_message(net));
		}
		nb_net_free(net);
		ck_assert_uint_eq(c.bytes_in_use, 0);
		if (c.fail_at != 0) {  /* no allocation failed: the run is complete */
			ck_assert_int_eq(st, NB_OK);
			break;
		}
		ck_assert_int_eq(st, NB_ENOMEM);
		ck_assert_ptr_nonnull(strstr(msg, "out of memory"));
	}
	ck_assert_uint_gt(k, 30);
	free_pairs_data(&ds);
}
END_TEST

/* ---- Training ------------------------------------------------------------------------- */

/* Every activation and cost the network offers learns the synthetic problem. */
START_TEST(test_every_configuration_learns)
{
	static const int combos[][3] = {
		{ NB_SIGMOID, NB_SIGMOID, NB_QUADRATIC }, { NB_TANH, NB_SIGMOID, NB_CROSS_ENTROPY },
		{ NB_RELU, NB_SOFTMAX, NB_CROSS_ENTROPY }, { NB_RELU, NB_TANH, NB_QUADRATIC },
		{ NB_SIGMOID, NB_SOFTMAX, NB_QUADRATIC }, { NB_RELU, NB_SIGMOID, NB_QUADRATIC },
	};
	const int *cb = combos[_i];
	nb_net_config cfg = { .n_layers = 3, .sizes = (size_t[]){ 2, 8, 2 }, .hidden = cb[0],
	                      .output = cb[1], .cost = cb[2], .init = NB_INIT_SCALED, .seed = 3 };
	nb_sgd opt = { .batch = 10, .eta = 0.5, .momentum = 0.5 };
	nb_dataset train, test;
	double before, after;
	size_t correct;
	nb_net *net;

	make_pairs_data(&train, 400, 7);
	make_pairs_data(&test, 200, 8);
	ck_assert_int_eq(nb_net_new(&cfg, &net, NULL), NB_OK);
	ck_assert_int_eq(nb_net_evaluate(net, &test, NULL, &before), NB_OK);
	for (int e = 0; e < 40; e++)
		ck_assert_int_eq(nb_net_sgd_epoch(net, &train, &opt, NULL, NULL, NULL), NB_OK);
	ck_assert_int_eq(nb_net_evaluate(net, &test, &correct, &after), NB_OK);
	ck_assert_msg(after < 0.5 * before, "cost %g -> %g", before, after);
	ck_assert_uint_ge(correct, 180);  /* 90%; chance is 50% */
	nb_net_free(net);
	free_pairs_data(&train);
	free_pairs_data(&test);
}
END_TEST

/* The first examples of a data set, as a view. */
static nb_dataset head(const nb_dataset *ds, size_t n)
{
	nb_dataset v = *ds;

	v.n = n;
	return v;
}

static void load_split(const char *split, nb_dataset *ds)
{
	const char *dir = getenv("NABLA_DATA_DIR");
	char msg[NB_MSG_MAX];

	ck_assert_msg(dir != NULL, "NABLA_DATA_DIR is not set (make check sets it)");
	ck_assert_msg(nb_dataset_load_dir(dir, split, ds, msg) == NB_OK, "%s", msg);
}

/* Nielsen's network on a slice of the bundled digits: well above the 10% of chance. */
START_TEST(test_short_training_on_digits)
{
	nb_dataset train, test, tr, te;
	nb_net *net = make_net((size_t[]){ 784, 30, 10 }, 3, 1);
	nb_sgd opt = { .batch = 10, .eta = 3.0 };
	size_t correct;

	load_split("train", &train);
	load_split("t10k", &test);
	tr = head(&train, 1000);
	te = head(&test, 500);
	for (int e = 0; e < 4; e++)
		ck_assert_int_eq(nb_net_sgd_epoch(net, &tr, &opt, NULL, NULL, NULL), NB_OK);
	ck_assert_int_eq(nb_net_evaluate(net, &te, &correct, NULL), NB_OK);
	ck_assert_msg(correct >= 300, "%zu / 500 correct", correct);
	nb_net_free(net);
	nb_dataset_free(&train);
	nb_dataset_free(&test);
}
END_TEST

/* evaluate's count and mean cost agree with predict's outputs. */
START_TEST(test_evaluate_agrees_with_predict)
{
	nb_dataset ds;
	nb_net *net = make_net(S242, 3, 9);
	double *out, cost, want = 0.0;
	size_t correct, right = 0;

	make_pairs_data(&ds, 1234, 4);  /* more than one evaluation batch, and a remainder */
	out = malloc(ds.n * 2 * sizeof *out);
	ck_assert_int_eq(nb_net_predict(net, ds.x, ds.n, out), NB_OK);
	ck_assert_int_eq(nb_net_evaluate(net, &ds, &correct, &cost), NB_OK);
	for (size_t i = 0; i < ds.n; i++) {
		right += (out[2 * i + 1] > out[2 * i]) == ds.label[i];
		for (size_t k = 0; k < 2; k++)
			want += (out[2 * i + k] - ds.y[2 * i + k]) * (out[2 * i + k] - ds.y[2 * i + k]);
	}
	ck_assert_uint_eq(correct, right);
	ck_assert_double_le(rel_diff(cost, want / 2.0 / (double)ds.n), 1e-13);
	free(out);
	nb_net_free(net);
	free_pairs_data(&ds);
}
END_TEST

/* ---- The recorded graph ----------------------------------------------------------------- */

/* The training tape names its nodes, and BP1 is there: dC/dz^L is a Hadamard product. */
START_TEST(test_tape_is_named_and_drawn)
{
	nb_net *net = make_net(S453, 3, 1);
	nb_tape *t = nb_net_tape(net, 10);
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	ck_assert_ptr_nonnull(t);
	ck_assert_ptr_eq(nb_net_tape(net, 10), t);  /* recorded once */
	ck_assert(nb_tape_locked(t));  /* the network's: only to look at */
	ck_assert_ptr_null(nb_add(t, nb_tape_find(t, "w1"), nb_tape_find(t, "w1")));
	ck_assert_str_eq(nb_tape_message(t),
	                 "add: the tape is read-only (its owner locked it with nb_tape_lock)");
	nb_tape_clear_error(t);
	nb_tape_free(t);  /* refused: nb_net_free() frees it */
	nb_tape_clear_error(t);
	f = open_memstream(&buf, &len);
	ck_assert_int_eq(nb_tape_write_dot(t, f), NB_OK);
	fclose(f);
	ck_assert_ptr_nonnull(strstr(buf, "digraph nabla"));
	ck_assert_ptr_nonnull(strstr(buf, "label=\"w1\\nvariable (5x4)\""));
	ck_assert_ptr_nonnull(strstr(buf, "label=\"z2\\nadd (3x10)\""));
	ck_assert_ptr_nonnull(strstr(buf, "label=\"dC/dz2\\nmul (3x10)\""));
	ck_assert_ptr_nonnull(strstr(buf, "label=\"dC/dw1\\nmatmul (5x4)\""));
	ck_assert_ptr_nonnull(strstr(buf, "label=\"C\\nquadratic_cost ()\""));
	ck_assert_ptr_nonnull(strstr(buf, "fill 1 ()"));  /* literals show their value */
	ck_assert_ptr_nonnull(strstr(buf, "#fce5cd"));  /* gradient nodes are drawn apart */
	free(buf);
	ck_assert_int_eq(nb_tape_write_dot(NULL, stdout), NB_ENULL);
	ck_assert_int_eq(nb_tape_write_dot(t, NULL), NB_ENULL);
	ck_assert_ptr_null(nb_net_tape(net, 0));
	ck_assert_str_eq(nb_net_message(net), "tape: batch size is 0");
	nb_net_free(net);
}
END_TEST

/* ---- Bad arguments ------------------------------------------------------------------------ */

static const struct {
	nb_net_config cfg;
	int status;
	const char *msg;
} bad_configs[] = {
	{ { .n_layers = 1, .sizes = S453 }, NB_EINVAL, "net: need at least 2 layers, got 1" },
	{ { .n_layers = 3 }, NB_ENULL, "net: sizes is NULL" },
	{ { .n_layers = 3, .sizes = (size_t[]){ 4, 0, 3 } }, NB_EINVAL,
	  "net: layer 1 has size 0 (1..16777216)" },
	{ { .n_layers = 3, .sizes = S453, .hidden = NB_SOFTMAX }, NB_EINVAL,
	  "net: hidden activation 3 is not sigmoid, tanh, relu, softplus or identity" },
	{ { .n_layers = 3, .sizes = S453, .output = 9 }, NB_EINVAL,
	  "net: unknown output activation 9" },
	{ { .n_layers = 3, .sizes = S453, .cost = 2 }, NB_EINVAL, "net: unknown cost 2" },
	{ { .n_layers = 3, .sizes = S453, .cost = NB_CROSS_ENTROPY, .output = NB_TANH }, NB_EINVAL,
	  "net: cross-entropy cost needs a sigmoid or softmax output layer, not tanh" },
	{ { .n_layers = 3, .sizes = S453, .init = -1 }, NB_EINVAL, "net: unknown initialisation -1" },
};

START_TEST(test_bad_config)
{
	char msg[NB_MSG_MAX];
	nb_net *net = (nb_net *)&msg;

	ck_assert_int_eq(nb_net_new(&bad_configs[_i].cfg, &net, msg), bad_configs[_i].status);
	ck_assert_str_eq(msg, bad_configs[_i].msg);
	ck_assert_ptr_null(net);
}
END_TEST

START_TEST(test_new_rejects_null)
{
	char msg[NB_MSG_MAX];
	nb_net *net;

	ck_assert_int_eq(nb_net_new(NULL, &net, msg), NB_ENULL);
	ck_assert_str_eq(msg, "net: config is NULL");
	ck_assert_int_eq(nb_net_new(&bad_configs[0].cfg, NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "net: out is NULL");
	ck_assert_int_eq(nb_net_status(NULL), NB_ENULL);
	ck_assert_str_eq(nb_net_message(NULL), "net is NULL");
	ck_assert_ptr_null(nb_net_weights(NULL, 0));
	ck_assert_int_eq(nb_net_sgd_step(NULL, NULL, NULL, 0, NULL, NULL), NB_ENULL);
	ck_assert_int_eq(nb_net_sgd_epoch(NULL, NULL, NULL, NULL, NULL, NULL), NB_ENULL);
	ck_assert_int_eq(nb_net_evaluate(NULL, NULL, NULL, NULL), NB_ENULL);
	ck_assert_int_eq(nb_net_predict(NULL, NULL, 0, NULL), NB_ENULL);
	ck_assert_ptr_null(nb_net_tape(NULL, 1));
	nb_net_free(NULL);
	nb_net_clear_error(NULL);
}
END_TEST

static const struct {
	nb_sgd opt;
	const char *msg;
} bad_sgd[] = {
	{ { .batch = 0, .eta = 1 }, "sgd: batch size is 0" },
	{ { .batch = 1, .eta = 0 }, "sgd: eta must be a finite number > 0, not 0" },
	{ { .batch = 1, .eta = -1 }, "sgd: eta must be a finite number > 0, not -1" },
	{ { .batch = 1, .eta = INFINITY }, "sgd: eta must be a finite number > 0, not inf" },
	{ { .batch = 1, .eta = 1, .momentum = 1 }, "sgd: momentum must be in [0, 1), not 1" },
	{ { .batch = 1, .eta = 1, .momentum = -0.5 }, "sgd: momentum must be in [0, 1), not -0.5" },
	{ { .batch = 1, .eta = 1, .weight_decay = -1 },
	  "sgd: weight decay must be a finite number >= 0, not -1" },
};

/* A bad option is reported by step and epoch alike; the error is sticky until cleared. */
START_TEST(test_bad_sgd_options)
{
	nb_net *net = make_net(S242, 3, 1);
	double x[2] = { 0.5, 0.5 }, y[2] = { 1, 0 };
	nb_dataset ds;
	nb_sgd good = { .batch = 1, .eta = 1 };

	make_pairs_data(&ds, 10, 1);
	ck_assert_int_eq(nb_net_sgd_step(net, x, y, 1, &bad_sgd[_i].opt, NULL), NB_EINVAL);
	ck_assert_str_eq(nb_net_message(net), bad_sgd[_i].msg);
	ck_assert_int_eq(nb_net_sgd_step(net, x, y, 1, &good, NULL), NB_EINVAL);
	nb_net_clear_error(net);
	ck_assert_int_eq(nb_net_sgd_epoch(net, &ds, &bad_sgd[_i].opt, NULL, NULL, NULL), NB_EINVAL);
	ck_assert_str_eq(nb_net_message(net), bad_sgd[_i].msg);
	nb_net_clear_error(net);
	ck_assert_int_eq(nb_net_sgd_step(net, x, y, 1, &good, NULL), NB_OK);
	nb_net_free(net);
	free_pairs_data(&ds);
}
END_TEST

START_TEST(test_bad_data)
{
	nb_net *net = make_net(S453, 3, 1);
	nb_sgd opt = { .batch = 2, .eta = 1 };
	nb_dataset ds, empty = { 0 };
	double x[4] = { 0 };

	make_pairs_data(&ds, 10, 1);
	ck_assert_int_eq(nb_net_sgd_epoch(net, &ds, &opt, NULL, NULL, NULL), NB_ESHAPE);
	ck_assert_str_eq(nb_net_message(net), "sgd_epoch: data has 2 features and 2 classes, the "
	                 "network 4 inputs and 3 outputs");
	nb_net_clear_error(net);
	ck_assert_int_eq(nb_net_evaluate(net, &ds, NULL, NULL), NB_ESHAPE);
	nb_net_clear_error(net);
	ck_assert_int_eq(nb_net_evaluate(net, NULL, NULL, NULL), NB_ENULL);
	ck_assert_str_eq(nb_net_message(net), "evaluate: data set is NULL");
	nb_net_clear_error(net);
	ck_assert_int_eq(nb_net_evaluate(net, &empty, NULL, NULL), NB_EINVAL);
	ck_assert_str_eq(nb_net_message(net), "evaluate: data set is empty");
	nb_net_clear_error(net);
	{
		nb_dataset nolabel = { .n = 1, .features = 4, .classes = 3, .x = x, .y = x };

		ck_assert_int_eq(nb_net_evaluate(net, &nolabel, NULL, NULL), NB_EINVAL);
		ck_assert_str_eq(nb_net_message(net), "evaluate: data set has no labels");
		nb_net_clear_error(net);
	}
	ck_assert_int_eq(nb_net_sgd_step(net, NULL, x, 1, &opt, NULL), NB_ENULL);
	ck_assert_str_eq(nb_net_message(net), "sgd_step: x is NULL");
	nb_net_clear_error(net);
	ck_assert_int_eq(nb_net_sgd_step(net, x, x, 0, &opt, NULL), NB_EINVAL);
	ck_assert_str_eq(nb_net_message(net), "sgd_step: no examples (n is 0)");
	nb_net_clear_error(net);
	ck_assert_int_eq(nb_net_predict(net, x, 1, NULL), NB_ENULL);
	ck_assert_str_eq(nb_net_message(net), "predict: out is NULL");
	nb_net_clear_error(net);
	ck_assert_int_eq(nb_net_predict(net, x, 0, x), NB_EINVAL);
	ck_assert_str_eq(nb_net_message(net), "predict: no examples (n is 0)");
	nb_net_free(net);
	free_pairs_data(&ds);
}
END_TEST

/* ---- The two halves of a step: nb_net_gradient() and nb_net_apply_gradient() ---------- */

/* A fully connected network (S453) or a small convolutional one of 1 x 6 x 6 images. */
static nb_net *flat_net(bool conv, nb_alloc_fn alloc, void *ud)
{
	static const nb_layer CONV[] = { NB_CONV2D(2, 3, NB_RELU, NB_INIT_HE), NB_MAX_POOL(2),
	                                 NB_DENSE(3, NB_SIGMOID, NB_INIT_SCALED) };
	nb_net_config cfg = { .n_layers = 3, .sizes = S453, .seed = 7, .alloc = alloc,
	                      .alloc_ud = ud };
	char msg[NB_MSG_MAX];
	nb_net *net = NULL;

	if (conv) {
		cfg.layers = CONV;
		cfg.layer_count = 3;
		cfg.input[0] = 1;
		cfg.input[1] = cfg.input[2] = 6;
	}
	ck_assert_msg(nb_net_new(&cfg, &net, msg) == NB_OK, "%s", msg);
	return net;
}

/* The bytes of a tensor's data. */
static size_t tensor_bytes(const nb_named_tensor *t)
{
	size_t size = sizeof(double);

	for (int d = 0; d < t->rank; d++)
		size *= t->dim[d];
	return size;
}

/* Every parameter of a and b, bit for bit. */
static void assert_same_params(nb_net *a, nb_net *b)
{
	nb_named_tensor ta[8], tb[8];
	size_t n = nb_net_tensors(a, ta, 8);

	ck_assert_uint_eq(nb_net_tensors(b, tb, 8), n);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(memcmp(ta[i].data, tb[i].data, tensor_bytes(&ta[i])) == 0,
		              "%s differs", ta[i].name);
}

static const nb_sgd FLAT_OPTS[3] = {
	{ .batch = 6, .eta = 0.5 },
	{ .batch = 6, .eta = 0.2, .momentum = 0.7, .weight_decay = 0.01 },
	{ .batch = 6, .eta = 0.01, .method = NB_METHOD_ADAM },
};

/* _i: the optimizer (FLAT_OPTS[i / 2]) and the network (conv when i is odd). Five steps of
 * nb_net_sgd_step() and five of gradient-then-apply move the parameters alike, to the bit,
 * with the same costs. */
START_TEST(test_gradient_then_apply_is_a_step)
{
	const nb_sgd *opt = &FLAT_OPTS[_i / 2];
	bool conv = _i % 2;
	nb_net *a = flat_net(conv, NULL, NULL), *b = flat_net(conv, NULL, NULL);
	size_t in = nb_net_inputs(a), out = nb_net_outputs(a);
	double x[6 * 36], y[6 * 4];
	test_rng r;

	rng_seed(&r, 21);
	for (int k = 0; k < 5; k++) {
		double ca, cb;

		random_batch(&r, x, y, 6, in, out);
		ck_assert_int_eq(nb_net_sgd_step(a, x, y, 6, opt, &ca), NB_OK);
		ck_assert_int_eq(nb_net_gradient(b, x, y, 6, 1.0, &cb), NB_OK);
		ck_assert_int_eq(nb_net_apply_gradient(b, opt), NB_OK);
		ck_assert(ca == cb);
	}
	assert_same_params(a, b);
	nb_net_free(a);
	nb_net_free(b);
}
END_TEST

/* The gradients of a batch's parts, each weighed by its share of the batch, sum to the
 * batch's gradient (to rounding); the gradient moves no parameter; the buffer is laid out
 * as nb_net_tensors() lists the parameters. */
START_TEST(test_gradient_shares_sum_to_the_batch)
{
	nb_net *net = flat_net(_i, NULL, NULL);
	size_t in = nb_net_inputs(net), out = nb_net_outputs(net), n = nb_net_param_count(net);
	double x[6 * 36], y[6 * 4], *whole = malloc(n * sizeof *whole), *sum = malloc(n * sizeof *sum);
	double *before = malloc(n * sizeof *before), *g = nb_net_grad(net), big = 0.0;
	nb_named_tensor t[8];
	size_t count = nb_net_tensors(net, t, 8), off = 0;
	test_rng r;

	ck_assert_ptr_nonnull(g);
	for (size_t i = 0; i < count; i++) {  /* the parameters, flat, to see they stay */
		memcpy(before + off, t[i].data, tensor_bytes(&t[i]));
		off += tensor_bytes(&t[i]) / sizeof(double);
	}
	ck_assert_uint_eq(off, n);
	rng_seed(&r, 5);
	random_batch(&r, x, y, 6, in, out);
	ck_assert_int_eq(nb_net_gradient(net, x, y, 6, 1.0, NULL), NB_OK);
	memcpy(whole, g, n * sizeof *whole);
	ck_assert_int_eq(nb_net_gradient(net, x, y, 2, 2.0 / 6.0, NULL), NB_OK);
	memcpy(sum, g, n * sizeof *sum);
	ck_assert_int_eq(nb_net_gradient(net, x + 2 * in, y + 2 * out, 4, 4.0 / 6.0, NULL), NB_OK);
	for (size_t k = 0; k < n; k++)
		sum[k] += g[k];
	ck_assert_double_le(max_rel_diff(sum, whole, n, 1e-12), 1e-13);
	for (size_t k = 0; k < n; k++)  /* a gradient, not zeros compared with zeros */
		big = fmax(big, fabs(whole[k]));
	ck_assert_double_gt(big, 1e-3);
	off = 0;
	for (size_t i = 0; i < count; i++) {
		ck_assert_mem_eq(t[i].data, before + off, tensor_bytes(&t[i]));
		off += tensor_bytes(&t[i]) / sizeof(double);
	}
	free(whole);
	free(sum);
	free(before);
	nb_net_free(net);
}
END_TEST

/* The layout: dC/dw1 comes first. A change of one weight by h moves the cost by about
 * h dC/dw (central difference), and the same for the first bias (after all of w1). */
START_TEST(test_gradient_is_where_the_tensors_are)
{
	nb_net *net = flat_net(false, NULL, NULL);
	double x[6 * 4], y[6 * 3], *g = nb_net_grad(net), c0, c1, h = 1e-6;
	double *w = nb_net_weights(net, 0), *b = nb_net_biases(net, 0);
	double dw, db;
	test_rng r;

	rng_seed(&r, 8);
	random_batch(&r, x, y, 6, 4, 3);
	ck_assert_int_eq(nb_net_gradient(net, x, y, 6, 1.0, NULL), NB_OK);
	dw = g[3];
	db = g[5 * 4 + 1];
	w[3] += h;
	ck_assert_int_eq(nb_net_gradient(net, x, y, 6, 1.0, &c1), NB_OK);
	w[3] -= 2 * h;
	ck_assert_int_eq(nb_net_gradient(net, x, y, 6, 1.0, &c0), NB_OK);
	w[3] += h;
	ck_assert_double_le(fabs((c1 - c0) / (2 * h) - dw), 1e-7 * (1 + fabs(dw)));
	b[1] += h;
	ck_assert_int_eq(nb_net_gradient(net, x, y, 6, 1.0, &c1), NB_OK);
	b[1] -= 2 * h;
	ck_assert_int_eq(nb_net_gradient(net, x, y, 6, 1.0, &c0), NB_OK);
	b[1] += h;
	ck_assert_double_le(fabs((c1 - c0) / (2 * h) - db), 1e-7 * (1 + fabs(db)));
	ck_assert_uint_eq(nb_net_param_count(net), 5 * 4 + 5 + 3 * 5 + 3);
	nb_net_free(net);
}
END_TEST

/* Parameters written through nb_net_weights() and nb_net_biases() after a step are what
 * the next gradient reads: every node computed from them, the transposes of the backward
 * pass included, is recomputed. */
START_TEST(test_written_parameters_are_read)
{
	nb_net *a = flat_net(_i, NULL, NULL), *b = flat_net(_i, NULL, NULL);
	size_t in = nb_net_inputs(a), out = nb_net_outputs(a), n = nb_net_param_count(a);
	double x[6 * 36], y[6 * 4], *ga = malloc(n * sizeof *ga);
	nb_named_tensor tb[8];
	test_rng r;

	rng_seed(&r, 12);
	random_batch(&r, x, y, 6, in, out);
	ck_assert_int_eq(nb_net_sgd_step(a, x, y, 6, &FLAT_OPTS[0], NULL), NB_OK);
	ck_assert_int_eq(nb_net_gradient(a, x, y, 6, 1.0, NULL), NB_OK);
	nb_net_tensors(b, tb, 8);  /* b's parameters into a, through a's pointers */
	for (size_t l = 0; l < nb_net_param_layers(a); l++) {
		memcpy(nb_net_weights(a, l), tb[2 * l].data, tensor_bytes(&tb[2 * l]));
		memcpy(nb_net_biases(a, l), tb[2 * l + 1].data, tensor_bytes(&tb[2 * l + 1]));
	}
	ck_assert_int_eq(nb_net_gradient(a, x, y, 6, 1.0, NULL), NB_OK);
	memcpy(ga, nb_net_grad(a), n * sizeof *ga);
	ck_assert_int_eq(nb_net_gradient(b, x, y, 6, 1.0, NULL), NB_OK);
	ck_assert_mem_eq(ga, nb_net_grad(b), n * sizeof *ga);
	free(ga);
	nb_net_free(a);
	nb_net_free(b);
}
END_TEST

START_TEST(test_gradient_allocates_nothing_after_the_first)
{
	count_alloc c = { 0 };
	nb_net *net = flat_net(_i, count_alloc_fn, &c);
	double x[6 * 36], y[6 * 4];
	size_t allocs;
	test_rng r;

	rng_seed(&r, 9);
	random_batch(&r, x, y, 6, nb_net_inputs(net), nb_net_outputs(net));
	ck_assert_int_eq(nb_net_gradient(net, x, y, 6, 0.5, NULL), NB_OK);
	ck_assert_int_eq(nb_net_apply_gradient(net, &FLAT_OPTS[1]), NB_OK);
	allocs = c.allocs;
	for (int k = 0; k < 5; k++) {
		ck_assert_int_eq(nb_net_gradient(net, x, y, 6, 0.5, NULL), NB_OK);
		ck_assert_int_eq(nb_net_apply_gradient(net, &FLAT_OPTS[1]), NB_OK);
	}
	ck_assert_uint_eq(c.allocs, allocs);
	nb_net_free(net);
	ck_assert_uint_eq(c.bytes_in_use, 0);
}
END_TEST

/* Allocation k fails, for every k until gradient-then-apply succeeds: NB_ENOMEM with a
 * message, nothing leaked, and no parameter moved by a failed apply. */
START_TEST(test_gradient_allocation_failures)
{
	double x[6 * 4], y[6 * 3];
	test_rng r;
	size_t k;

	rng_seed(&r, 10);
	random_batch(&r, x, y, 6, 4, 3);
	for (k = 1;; k++) {
		count_alloc c = { 0 };
		nb_net *net = flat_net(false, count_alloc_fn, &c);
		double w0;
		int st;

		c.fail_at = c.allocs + k;
		w0 = nb_net_weights(net, 0)[0];
		st = nb_net_gradient(net, x, y, 6, 1.0, NULL);
		if (st == NB_OK)
			st = nb_net_apply_gradient(net, &FLAT_OPTS[1]);
		if (c.fail_at != 0) {  /* no allocation failed */
			ck_assert_int_eq(st, NB_OK);
			nb_net_free(net);
			ck_assert_uint_eq(c.bytes_in_use, 0);
			break;
		}
		ck_assert_int_eq(st, NB_ENOMEM);
		ck_assert_ptr_nonnull(strstr(nb_net_message(net), "out of memory"));
		ck_assert(nb_net_weights(net, 0)[0] == w0);
		nb_net_free(net);
		ck_assert_uint_eq(c.bytes_in_use, 0);
	}
	ck_assert_uint_gt(k, 3);
}
END_TEST

START_TEST(test_gradient_bad_input)
{
	nb_net *net = flat_net(false, NULL, NULL);
	double x[4] = { 0 }, y[3] = { 0 };

	ck_assert_int_eq(nb_net_gradient(NULL, x, y, 1, 1.0, NULL), NB_ENULL);
	ck_assert_int_eq(nb_net_apply_gradient(NULL, &FLAT_OPTS[0]), NB_ENULL);
	ck_assert_ptr_null(nb_net_grad(NULL));
	ck_assert_uint_eq(nb_net_param_count(NULL), 0);
	ck_assert_int_eq(nb_net_gradient(net, NULL, y, 1, 1.0, NULL), NB_ENULL);
	ck_assert_str_eq(nb_net_message(net), "gradient: x is NULL");
	nb_net_clear_error(net);
	ck_assert_int_eq(nb_net_gradient(net, x, NULL, 1, 1.0, NULL), NB_ENULL);
	ck_assert_str_eq(nb_net_message(net), "gradient: y is NULL");
	nb_net_clear_error(net);
	ck_assert_int_eq(nb_net_gradient(net, x, y, 0, 1.0, NULL), NB_EINVAL);
	ck_assert_str_eq(nb_net_message(net), "gradient: no examples (n is 0)");
	nb_net_clear_error(net);
	ck_assert_int_eq(nb_net_gradient(net, x, y, 1, NAN, NULL), NB_EINVAL);
	ck_assert_str_eq(nb_net_message(net), "gradient: scale must be finite, not nan");
	nb_net_clear_error(net);
	ck_assert_int_eq(nb_net_apply_gradient(net, NULL), NB_ENULL);
	ck_assert_str_eq(nb_net_message(net), "sgd: options are NULL");
	/* sticky: the error stays until cleared */
	ck_assert_int_eq(nb_net_gradient(net, x, y, 1, 1.0, NULL), NB_ENULL);
	ck_assert_ptr_null(nb_net_grad(net));
	nb_net_clear_error(net);
	ck_assert_int_eq(nb_net_apply_gradient(net, &(nb_sgd){ .batch = 1, .eta = -1.0 }),
	                 NB_EINVAL);
	nb_net_free(net);
}
END_TEST

static Suite *net_suite(void)
{
	Suite *s = suite_create("net");
	TCase *sgd = tcase_create("sgd");
	TCase *train = tcase_create("training");
	TCase *bad = tcase_create("bad arguments");
	TCase *grad = tcase_create("gradient and apply");

	tcase_add_test(sgd, test_sgd_step_equals_closed_form_step);
	tcase_add_test(sgd, test_momentum_and_weight_decay_steps);
	tcase_add_test(sgd, test_same_seed_same_run);
	tcase_add_test(sgd, test_steps_allocate_nothing_after_the_first);
	tcase_add_test(sgd, test_every_allocation_failure_is_reported);
	tcase_add_loop_test(grad, test_gradient_then_apply_is_a_step, 0, 6);
	tcase_add_loop_test(grad, test_gradient_shares_sum_to_the_batch, 0, 2);
	tcase_add_test(grad, test_gradient_is_where_the_tensors_are);
	tcase_add_loop_test(grad, test_written_parameters_are_read, 0, 2);
	tcase_add_loop_test(grad, test_gradient_allocates_nothing_after_the_first, 0, 2);
	tcase_add_test(grad, test_gradient_allocation_failures);
	tcase_add_test(grad, test_gradient_bad_input);
	tcase_add_loop_test(train, test_every_configuration_learns, 0, 6);
	tcase_add_test(train, test_short_training_on_digits);
	tcase_add_test(train, test_evaluate_agrees_with_predict);
	tcase_add_test(train, test_tape_is_named_and_drawn);
	tcase_set_timeout(train, 120);
	tcase_add_loop_test(bad, test_bad_config, 0, (int)(sizeof bad_configs / sizeof bad_configs[0]));
	tcase_add_test(bad, test_new_rejects_null);
	tcase_add_loop_test(bad, test_bad_sgd_options, 0, (int)(sizeof bad_sgd / sizeof bad_sgd[0]));
	tcase_add_test(bad, test_bad_data);
	suite_add_tcase(s, sgd);
	suite_add_tcase(s, grad);
	suite_add_tcase(s, train);
	suite_add_tcase(s, bad);
	return s;
}

int main(void)
{
	return run_suite(net_suite());
}
