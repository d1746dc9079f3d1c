/* test_layers.c -- networks described as lists of layers: a training step of a
 * convolutional network equals the same graph written with the op API, SGD and Adam;
 * shapes and initialisations; dropout in training only; no allocation after the first
 * step and every allocation failure reported; learning on real digits; every bad list. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* A small network of every kind with parameters: 1 x 6 x 6 images, conv 3x3 with 2 maps,
 * max-pool 2, dense 3 tanh, dense 2 softmax, log-likelihood cost. */
static const nb_layer SMALL[] = {
	NB_CONV2D(2, 3, NB_RELU, NB_INIT_HE),
	NB_MAX_POOL(2),
	NB_DENSE(3, NB_TANH, NB_INIT_GLOROT),
	NB_DENSE(2, NB_SOFTMAX, NB_INIT_SCALED),
};

static nb_net *small_net(nb_alloc_fn alloc, void *ud)
{
	nb_net_config cfg = { .layers = SMALL, .layer_count = 4, .input = { 1, 6, 6 },
	                      .cost = NB_CROSS_ENTROPY, .seed = 3, .alloc = alloc,
	                      .alloc_ud = ud };
	char msg[NB_MSG_MAX];
	nb_net *net = NULL;

	ck_assert_msg(nb_net_new(&cfg, &net, msg) == NB_OK, "%s", msg);
	return net;
}

/* A batch of 4 random images and one-hot targets (rows). */
static void small_batch(double x[4 * 36], double y[4 * 2])
{
	test_rng r;

	rng_seed(&r, 11);
	rng_fill(&r, x, 4 * 36, -1.0, 1.0);
	for (int i = 0; i < 4; i++) {
		y[2 * i] = i % 2;
		y[2 * i + 1] = 1 - i % 2;
	}
}

/* The same network written with the op API on the network's parameters (copied): its
 * cost and the gradients of w1, b1, w2, b2, w3, b3 into g (6 arrays of the sizes). */
static double op_graph_gradients(nb_net *net, const double *x, const double *y, double *g[6])
{
	nb_tape *t = nb_tape_new();
	const size_t wd[3][4] = { { 2, 1, 3, 3 }, { 3, 8 }, { 2, 3 } };
	const int wr[3] = { 4, 2, 2 };
	const size_t bd[3][3] = { { 2, 1, 1 }, { 3, 1 }, { 2, 1 } };
	double yt[8];
	nb_tensor *p[6], *d[6], *a, *z, *c;
	double cost;

	for (int i = 0; i < 4; i++)
		for (int k = 0; k < 2; k++)
			yt[k * 4 + i] = y[i * 2 + k];
	for (int l = 0; l < 3; l++) {
		p[l] = nb_variable(t, wr[l], wd[l], nb_net_weights(net, (size_t)l));
		p[3 + l] = nb_variable(t, l == 0 ? 3 : 2, bd[l], nb_net_biases(net, (size_t)l));
	}
	a = nb_constant(t, 4, (size_t[]){ 4, 1, 6, 6 }, x);
	a = nb_relu(t, nb_add(t, nb_conv2d(t, a, p[0], 1, 0), p[3]));
	a = nb_reshape(t, nb_max_pool2d(t, a, 2, 2), 2, (size_t[]){ 4, 8 });
	a = nb_tanh(t, nb_add(t, nb_matmul_t(t, p[1], a, NB_TRANS_B), p[4]));
	z = nb_add(t, nb_matmul(t, p[2], a), p[5]);
	c = nb_softmax_cross_entropy(t, z, nb_constant(t, 2, (size_t[]){ 2, 4 }, yt));
	ck_assert_int_eq(nb_gradients(t, c, NULL, (nb_tensor *[]){ p[0], p[1], p[2], p[3], p[4],
	                                                              p[5] }, 6, d), NB_OK);
	for (int i = 0; i < 6; i++)
		memcpy(g[i], nb_value(d[i]), nb_size(d[i]) * sizeof(double));
	cost = nb_value(c)[0];
	nb_tape_free(t);
	return cost;
}

static const size_t SMALL_SIZES[6] = { 18, 24, 6, 2, 3, 2 };

static double *param(nb_net *net, int i)
{
	return i < 3 ? nb_net_weights(net, (size_t)i) : nb_net_biases(net, (size_t)i - 3);
}

/* ---- Training steps -------------------------------------------------------------------- */

/* One step of the network (SGD with weight decay, then Adam) moves each parameter as the
 * update formula says with the gradients of the op-API graph. */
START_TEST(test_step_equals_op_graph_step)
{
	nb_net *net = small_net(NULL, NULL);
	nb_sgd opt = { .batch = 4, .eta = 0.1, .weight_decay = 0.01, .method = _i };
	double x[4 * 36], y[8], *g[6], *before[6], cost, want;

	small_batch(x, y);
	for (int i = 0; i < 6; i++) {
		g[i] = malloc(SMALL_SIZES[i] * sizeof(double));
		before[i] = malloc(SMALL_SIZES[i] * sizeof(double));
		memcpy(before[i], param(net, i), SMALL_SIZES[i] * sizeof(double));
	}
	want = op_graph_gradients(net, x, y, g);
	ck_assert_int_eq(nb_net_sgd_step(net, x, y, 4, &opt, &cost), NB_OK);
	ck_assert_double_eq_tol(cost, want, 1e-14);
	for (int i = 0; i < 6; i++)
		for (size_t j = 0; j < SMALL_SIZES[i]; j++) {
			double w = before[i][j], dw = g[i][j] + (i < 3 ? opt.weight_decay * w : 0.0);
			/* Adam's first step: m / (1 - beta1) = dw, v / (1 - beta2) = dw^2 */
			double step = _i == NB_METHOD_ADAM ? dw / (fabs(dw) + 1e-8) : dw;

			ck_assert_double_eq_tol(param(net, i)[j], w - 0.1 * step, 1e-12);
		}
	for (int i = 0; i < 6; i++) {
		free(g[i]);
		free(before[i]);
	}
	nb_net_free(net);
}
END_TEST

/* Each method keeps its own state: Adam after a step of SGD with momentum moves the
 * parameters exactly as Adam after a plain step from the same parameters. */
START_TEST(test_methods_keep_their_own_state)
{
	nb_net *a = small_net(NULL, NULL), *b = small_net(NULL, NULL);
	nb_sgd momentum = { .batch = 4, .eta = 0.1, .momentum = 0.9 };
	nb_sgd plain = { .batch = 4, .eta = 0.1 };
	nb_sgd adam = { .batch = 4, .eta = 0.01, .method = NB_METHOD_ADAM };
	double x[4 * 36], y[8];

	small_batch(x, y);
	ck_assert_int_eq(nb_net_sgd_step(a, x, y, 4, &momentum, NULL), NB_OK);
	ck_assert_int_eq(nb_net_sgd_step(b, x, y, 4, &plain, NULL), NB_OK);
	for (int i = 0; i < 6; i++)  /* the parameters are the caller's to write */
		memcpy(param(b, i), param(a, i), SMALL_SIZES[i] * sizeof(double));
	ck_assert_int_eq(nb_net_sgd_step(a, x, y, 4, &adam, NULL), NB_OK);
	ck_assert_int_eq(nb_net_sgd_step(b, x, y, 4, &adam, NULL), NB_OK);
	for (int i = 0; i < 6; i++)
		ck_assert_mem_eq(param(a, i), param(b, i), SMALL_SIZES[i] * sizeof(double));
	nb_net_free(a);
	nb_net_free(b);
}
END_TEST

/* ---- Shapes and initialisations -------------------------------------------------------- */

START_TEST(test_shapes_of_a_conv_net)
{
	nb_net *net = small_net(NULL, NULL);
	nb_net_config cfg = nb_net_get_config(net);

	ck_assert_uint_eq(nb_net_inputs(net), 36);
	ck_assert_uint_eq(nb_net_outputs(net), 2);
	ck_assert_uint_eq(nb_net_param_layers(net), 3);
	ck_assert_ptr_nonnull(nb_net_weights(net, 2));
	ck_assert_ptr_null(nb_net_weights(net, 3));
	ck_assert_ptr_null(nb_net_biases(net, 3));
	ck_assert_ptr_nonnull(cfg.layers);
	ck_assert_ptr_ne(cfg.layers, SMALL);  /* the network's own copy */
	ck_assert_uint_eq(cfg.layer_count, 4);
	ck_assert_int_eq(cfg.layers[0].kind, NB_LAYER_CONV2D);
	ck_assert_ptr_null(nb_net_mlp(net).sizes);  /* not a network of sizes */
	ck_assert_uint_eq(nb_net_inputs(NULL), 0);
	ck_assert_uint_eq(nb_net_outputs(NULL), 0);
	ck_assert_uint_eq(nb_net_param_layers(NULL), 0);
	nb_net_free(net);
}
END_TEST

/* Mean and deviation of n values. */
static void moments(const double *v, size_t n, double *mean, double *sd)
{
	double s = 0, s2 = 0;

	for (size_t i = 0; i < n; i++)
		s += v[i];
	*mean = s / (double)n;
	for (size_t i = 0; i < n; i++)
		s2 += (v[i] - *mean) * (v[i] - *mean);
	*sd = sqrt(s2 / (double)n);
}

/* Each initialisation draws weights of its deviation (within 3% over 40,000 of them) and
 * the biases it says. */
START_TEST(test_initialisations)
{
	static const int inits[] = { NB_INIT_NORMAL, NB_INIT_SCALED, NB_INIT_HE, NB_INIT_GLOROT,
	                             NB_INIT_ZERO };
	const double n_in = 400, n_out = 100;
	const double want_sd[] = { 1.0, 1.0 / sqrt(n_in), sqrt(2.0 / n_in),
	                           sqrt(6.0 / (n_in + n_out)) / sqrt(3.0), 0.0 };
	nb_layer layers[1] = { NB_DENSE(100, NB_SIGMOID, inits[_i]) };
	nb_net_config cfg = { .layers = layers, .layer_count = 1, .input = { 400 }, .seed = 5 };
	nb_net *net = NULL;
	double mean, sd, *w, *b, most = 0;

	ck_assert_int_eq(nb_net_new(&cfg, &net, NULL), NB_OK);
	w = nb_net_weights(net, 0);
	b = nb_net_biases(net, 0);
	moments(w, 40000, &mean, &sd);
	ck_assert_double_le(fabs(sd - want_sd[_i]), 0.03 * want_sd[_i]);
	ck_assert_double_le(fabs(mean), 0.03 * (want_sd[_i] > 0 ? want_sd[_i] : 1));
	for (size_t i = 0; i < 40000; i++)
		most = fmax(most, fabs(w[i]));
	if (inits[_i] == NB_INIT_GLOROT)
		ck_assert_double_le(most, sqrt(6.0 / (n_in + n_out)));
	moments(b, 100, &mean, &sd);
	if (inits[_i] == NB_INIT_NORMAL || inits[_i] == NB_INIT_SCALED)
		ck_assert_double_gt(sd, 0.5);
	else
		ck_assert_double_eq(sd + fabs(mean), 0.0);
	nb_net_free(net);
}
END_TEST

/* ---- Dropout ------------------------------------------------------------------------------- */

/* Dropout changes training costs from step to step (a new mask each time) but not
 * evaluation: predictions equal those of the same network without the dropout layer. */
START_TEST(test_dropout_only_in_training)
{
	const nb_layer with[] = { NB_DENSE(8, NB_RELU, NB_INIT_HE), NB_DROPOUT(0.5),
	                          NB_DENSE(2, NB_SOFTMAX, NB_INIT_GLOROT) };
	const nb_layer without[] = { NB_DENSE(8, NB_RELU, NB_INIT_HE),
	                             NB_DENSE(2, NB_SOFTMAX, NB_INIT_GLOROT) };
	nb_net_config cfg = { .layers = with, .layer_count = 3, .input = { 36 },
	                      .cost = NB_CROSS_ENTROPY, .seed = 9 };
	nb_sgd opt = { .batch = 4, .eta = 1e-9 };
	double x[4 * 36], y[8], out1[8], out2[8], c1, c2, c3;
	nb_net *a = NULL, *b = NULL;

	small_batch(x, y);
	ck_assert_int_eq(nb_net_new(&cfg, &a, NULL), NB_OK);
	cfg.layers = without;
	cfg.layer_count = 2;
	ck_assert_int_eq(nb_net_new(&cfg, &b, NULL), NB_OK);
	ck_assert_int_eq(nb_net_predict(a, x, 4, out1), NB_OK);
	ck_assert_int_eq(nb_net_predict(b, x, 4, out2), NB_OK);
	ck_assert_mem_eq(out1, out2, sizeof out1);
	ck_assert_int_eq(nb_net_sgd_step(a, x, y, 4, &opt, &c1), NB_OK);
	ck_assert_int_eq(nb_net_sgd_step(a, x, y, 4, &opt, &c2), NB_OK);
	ck_assert_int_eq(nb_net_sgd_step(b, x, y, 4, &opt, &c3), NB_OK);
	ck_assert_double_ne(c1, c2);
	ck_assert_double_ne(c1, c3);
	nb_net_free(a);
	nb_net_free(b);
}
END_TEST

/* ---- Memory -------------------------------------------------------------------------------- */

START_TEST(test_conv_steps_allocate_nothing)
{
	count_alloc c = { 0 };
	nb_net *net = small_net(count_alloc_fn, &c);
	nb_sgd opt = { .batch = 4, .eta = 0.1, .method = NB_METHOD_ADAM };
	double x[4 * 36], y[8];
	size_t allocs;

	small_batch(x, y);
	ck_assert_int_eq(nb_net_sgd_step(net, x, y, 4, &opt, NULL), NB_OK);
	allocs = c.allocs;
	for (int k = 0; k < 5; k++)
		ck_assert_int_eq(nb_net_sgd_step(net, x, y, 4, &opt, NULL), NB_OK);
	ck_assert_uint_eq(c.allocs, allocs);
	nb_net_free(net);
	ck_assert_uint_eq(c.bytes_in_use, 0);
}
END_TEST

/* Allocation k fails, for every k until creation and a step succeed: NB_ENOMEM each
 * time, and every byte given back. */
START_TEST(test_every_allocation_failure)
{
	nb_net_config cfg = { .layers = SMALL, .layer_count = 4, .input = { 1, 6, 6 },
	                      .cost = NB_CROSS_ENTROPY };
	nb_sgd opt = { .batch = 4, .eta = 0.1, .method = NB_METHOD_ADAM };
	double x[4 * 36], y[8];
	int done = 0;

	small_batch(x, y);
	for (size_t k = 1; !done; k++) {
		count_alloc c = { .fail_at = k };
		nb_net *net = NULL;
		int status;

		cfg.alloc = count_alloc_fn;
		cfg.alloc_ud = &c;
		status = nb_net_new(&cfg, &net, NULL);
		if (status == NB_OK)
			status = nb_net_sgd_step(net, x, y, 4, &opt, NULL);
		ck_assert(status == NB_OK || status == NB_ENOMEM);
		done = status == NB_OK;
		nb_net_free(net);
		ck_assert_uint_eq(c.bytes_in_use, 0);
		ck_assert_uint_lt(k, 10000);
	}
}
END_TEST

/* ---- Learning ------------------------------------------------------------------------------ */

/* A small convolutional network learns the bundled digits: 600 of them, 3 epochs, then
 * better than 70% of 300 others right (chance: 10%). */
START_TEST(test_conv_net_learns_digits)
{
	const nb_layer layers[] = { NB_CONV2D(4, 5, NB_RELU, NB_INIT_HE), NB_MAX_POOL(4),
	                            NB_DENSE(10, NB_SOFTMAX, NB_INIT_ZERO) };
	nb_net_config cfg = { .layers = layers, .layer_count = 3, .input = { 1, 28, 28 },
	                      .cost = NB_CROSS_ENTROPY, .seed = 1 };
	nb_sgd opt = { .batch = 10, .eta = 0.1 };
	nb_dataset all, train, test;
	char msg[NB_MSG_MAX];
	nb_net *net = NULL;
	size_t right;

	const char *dir = getenv("NABLA_DATA_DIR");

	ck_assert_msg(dir != NULL, "NABLA_DATA_DIR is not set (make check sets it)");
	ck_assert_msg(nb_dataset_load_dir(dir, "train", &all, msg) == NB_OK, "%s", msg);
	train = all;
	train.n = 600;
	test = all;
	test.n = 300;
	test.x += 600 * all.features;
	test.y += 600 * all.classes;
	test.label += 600;
	ck_assert_int_eq(nb_net_new(&cfg, &net, NULL), NB_OK);
	for (int e = 0; e < 3; e++)
		ck_assert_int_eq(nb_net_sgd_epoch(net, &train, &opt, NULL, NULL, NULL), NB_OK);
	ck_assert_int_eq(nb_net_evaluate(net, &test, &right, NULL), NB_OK);
	ck_assert_uint_gt(right, 210);
	nb_net_free(net);
	nb_dataset_free(&all);
}
END_TEST

/* ---- Bad lists ----------------------------------------------------------------------------- */

static const nb_layer DENSE2[] = { NB_DENSE(2, NB_SOFTMAX, 0) };
static const nb_layer BAD_KIND[] = { { .kind = 9 } };
static const nb_layer NO_UNITS[] = { NB_DENSE(0, 0, 0) };
static const nb_layer POOL_PAD[] = { { .kind = NB_LAYER_MAX_POOL, .k = 2, .pad = 1 },
                                     NB_DENSE(2, 0, 0) };
static const nb_layer BIG_WINDOW[] = { NB_CONV2D(2, 7, 0, 0), NB_DENSE(2, 0, 0) };
static const nb_layer WIDE_PAD[] = { { .kind = NB_LAYER_CONV2D, .units = 1, .k = 5, .pad = 3 },
                                     NB_DENSE(2, 0, 0) };
static const nb_layer CONV_AFTER_DENSE[] = { NB_DENSE(4, 0, 0), NB_CONV2D(2, 1, 0, 0),
                                             NB_DENSE(2, 0, 0) };
static const nb_layer BAD_P[] = { NB_DROPOUT(1.0), NB_DENSE(2, 0, 0) };
static const nb_layer BAD_ACT[] = { NB_DENSE(2, 9, 0) };
static const nb_layer BAD_INIT[] = { NB_DENSE(2, 0, 7) };
static const nb_layer ENDS_IN_POOL[] = { NB_MAX_POOL(2) };
static const nb_layer DENSE_P[] = { { .kind = NB_LAYER_DENSE, .units = 2, .p = 0.5 } };
static const nb_layer TANH_OUT[] = { NB_DENSE(2, NB_TANH, 0) };

static const struct {
	nb_net_config cfg;
	int status;
	const char *msg;
} bad_lists[] = {
	{ { .layers = DENSE2, .layer_count = 0 }, NB_EINVAL, "net: 0 layers (1..64)" },
	{ { .layers = DENSE2, .layer_count = 65 }, NB_EINVAL, "net: 65 layers (1..64)" },
	{ { .layers = BAD_KIND, .layer_count = 1 }, NB_EINVAL, "net: layer 0: unknown kind 9" },
	{ { .layers = NO_UNITS, .layer_count = 1 }, NB_EINVAL,
	  "net: layer 0 (dense): 0 units (1..268435456)" },
	{ { .layers = POOL_PAD, .layer_count = 2, .input = { 1, 6, 6 } }, NB_EINVAL,
	  "net: layer 0 (max_pool): pad is 1, but a max_pool layer has no padding" },
	{ { .layers = BIG_WINDOW, .layer_count = 2, .input = { 1, 6, 6 } }, NB_EINVAL,
	  "net: layer 0 (conv2d): a 7 x 7 window does not fit a 6 x 6 image padded by 0" },
	{ { .layers = WIDE_PAD, .layer_count = 2, .input = { 1, 2, 2 } }, NB_EINVAL,
	  "net: layer 0 (conv2d): padding 3 is more than a 2 x 2 image" },
	{ { .layers = CONV_AFTER_DENSE, .layer_count = 3, .input = { 1, 6, 6 } }, NB_EINVAL,
	  "net: layer 1 (conv2d): reads images, but a dense layer before it gives columns" },
	{ { .layers = BAD_P, .layer_count = 2, .input = { 4 } }, NB_EINVAL,
	  "net: layer 0 (dropout): p is 1, not in [0, 1)" },
	{ { .layers = BAD_ACT, .layer_count = 1 }, NB_EINVAL,
	  "net: layer 0 (dense): unknown activation 9" },
	{ { .layers = BAD_INIT, .layer_count = 1 }, NB_EINVAL,
	  "net: layer 0 (dense): unknown initialisation 7" },
	{ { .layers = ENDS_IN_POOL, .layer_count = 1, .input = { 1, 4, 4 } }, NB_EINVAL,
	  "net: the last layer must be a dense one, or activations after one, not max_pool" },
	{ { .layers = DENSE_P, .layer_count = 1 }, NB_EINVAL,
	  "net: layer 0 (dense): p is 0.5, but only a dropout layer has one" },
	{ { .layers = TANH_OUT, .layer_count = 1, .cost = NB_CROSS_ENTROPY }, NB_EINVAL,
	  "net: cross-entropy cost needs a sigmoid or softmax output layer, not tanh" },
	{ { .layers = DENSE2, .layer_count = 1, .cost = 5 }, NB_EINVAL, "net: unknown cost 5" },
	{ { .layers = DENSE2, .layer_count = 1, .input = { 1u << 20, 1u << 20 } }, NB_EINVAL,
	  "net: an input of 1048576 x 1048576 x 1 is over 268435456 values" },
};

START_TEST(test_bad_list)
{
	char msg[NB_MSG_MAX];
	nb_net *net = (nb_net *)1;

	ck_assert_int_eq(nb_net_new(&bad_lists[_i].cfg, &net, msg), bad_lists[_i].status);
	ck_assert_str_eq(msg, bad_lists[_i].msg);
	ck_assert_ptr_null(net);
}
END_TEST

/* Adam's options are checked like SGD's. */
START_TEST(test_bad_adam_options)
{
	nb_net *net = small_net(NULL, NULL);
	double x[4 * 36], y[8];
	nb_sgd bad_beta = { .batch = 4, .eta = 0.1, .method = NB_METHOD_ADAM, .beta1 = 1.0 };
	nb_sgd bad_eps = { .batch = 4, .eta = 0.1, .method = NB_METHOD_ADAM, .eps = -1 };
	nb_sgd bad_method = { .batch = 4, .eta = 0.1, .method = 2 };

	small_batch(x, y);
	ck_assert_int_eq(nb_net_sgd_step(net, x, y, 4, &bad_beta, NULL), NB_EINVAL);
	ck_assert_str_eq(nb_net_message(net),
	                 "sgd: Adam's beta1 and beta2 must be in [0, 1), not 1 and 0");
	nb_net_clear_error(net);
	ck_assert_int_eq(nb_net_sgd_step(net, x, y, 4, &bad_eps, NULL), NB_EINVAL);
	ck_assert_str_eq(nb_net_message(net),
	                 "sgd: Adam's eps must be a finite number >= 0 (0: 1e-8), not -1");
	nb_net_clear_error(net);
	ck_assert_int_eq(nb_net_sgd_step(net, x, y, 4, &bad_method, NULL), NB_EINVAL);
	ck_assert_str_eq(nb_net_message(net), "sgd: unknown method 2");
	nb_net_free(net);
}
END_TEST

/* ---- Model files ----------------------------------------------------------------------- */

#define PATH "test_layers.model"

/* The first 8 bytes of a file: its magic. */
static void magic_of(const char *path, char out[9])
{
	FILE *f = fopen(path, "rb");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fread(out, 1, 8, f), 8);
	out[8] = '\0';
	fclose(f);
}

/* A network of layers, dropout and every field included, saves as version 2 and loads
 * back the same: its layers, its parameters bit for bit, its outputs. */
START_TEST(test_layers_save_and_load)
{
	const nb_layer layers[] = {
		{ .kind = NB_LAYER_CONV2D, .units = 3, .k = 3, .stride = 1, .pad = 1,
		  .activation = NB_SOFTPLUS, .init = NB_INIT_GLOROT },
		NB_AVG_POOL(2), NB_DROPOUT(0.1234567890123), NB_DENSE(4, NB_IDENTITY, NB_INIT_HE),
		NB_ACTIVATION(NB_TANH), NB_DENSE(2, NB_SIGMOID, NB_INIT_NORMAL),
	};
	nb_net_config cfg = { .layers = layers, .layer_count = 6, .input = { 1, 6, 6 },
	                      .cost = NB_CROSS_ENTROPY, .seed = 77 };
	nb_sgd opt = { .batch = 4, .eta = 0.1 };
	double x[4 * 36], y[8], out1[8], out2[8];
	char msg[NB_MSG_MAX], magic[9];
	nb_named_tensor a[8], b[8];
	nb_net *net = NULL, *back = NULL;
	nb_net_config got;

	small_batch(x, y);
	ck_assert_int_eq(nb_net_new(&cfg, &net, NULL), NB_OK);
	ck_assert_int_eq(nb_net_sgd_step(net, x, y, 4, &opt, NULL), NB_OK);
	ck_assert_msg(nb_net_save(net, PATH, msg) == NB_OK, "%s", msg);
	magic_of(PATH, magic);
	ck_assert_str_eq(magic, "NABLATNS");
	ck_assert_msg(nb_net_load(PATH, &back, msg) == NB_OK, "%s", msg);
	got = nb_net_get_config(back);
	ck_assert_uint_eq(got.layer_count, 6);
	ck_assert_mem_eq(got.layers, layers, sizeof layers);
	ck_assert_mem_eq(got.input, cfg.input, sizeof cfg.input);
	ck_assert_int_eq(got.cost, cfg.cost);
	ck_assert_uint_eq(got.seed, 77);
	ck_assert_uint_eq(nb_net_tensors(net, a, 8), 6);
	ck_assert_uint_eq(nb_net_tensors(back, b, 8), 6);
	for (int i = 0; i < 6; i++) {
		size_t n = 1;

		ck_assert_str_eq(a[i].name, b[i].name);
		ck_assert_int_eq(a[i].rank, b[i].rank);
		for (int d = 0; d < a[i].rank; d++)
			n *= a[i].dim[d];
		ck_assert_mem_eq(a[i].data, b[i].data, n * sizeof(double));
	}
	ck_assert_str_eq(a[0].name, "w1");
	ck_assert_str_eq(a[1].name, "b1");
	ck_assert_int_eq(a[1].rank, 3);
	ck_assert_int_eq(nb_net_predict(net, x, 4, out1), NB_OK);
	ck_assert_int_eq(nb_net_predict(back, x, 4, out2), NB_OK);
	ck_assert_mem_eq(out1, out2, sizeof out1);
	nb_net_free(net);
	nb_net_free(back);
	remove(PATH);
}
END_TEST

/* A network of sizes keeps version 1 when it fits (older nabla reads it), and takes
 * version 2 for a choice version 1 lacks, loading back as a network of sizes. */
START_TEST(test_sizes_choose_their_version)
{
	const size_t sizes[] = { 3, 4, 2 };
	nb_net_config cfg = { .n_layers = 3, .sizes = sizes, .seed = 2 };
	char magic[9], msg[NB_MSG_MAX];
	nb_net *net = NULL, *back = NULL;
	nb_mlp m;

	ck_assert_int_eq(nb_net_new(&cfg, &net, NULL), NB_OK);
	ck_assert_int_eq(nb_net_save(net, PATH, NULL), NB_OK);
	magic_of(PATH, magic);
	ck_assert_str_eq(magic, "NABLAMLP");
	nb_net_free(net);
	cfg.hidden = NB_SOFTPLUS;
	cfg.init = NB_INIT_HE;
	ck_assert_int_eq(nb_net_new(&cfg, &net, NULL), NB_OK);
	ck_assert_int_eq(nb_net_save(net, PATH, NULL), NB_OK);
	magic_of(PATH, magic);
	ck_assert_str_eq(magic, "NABLATNS");
	ck_assert_msg(nb_net_load(PATH, &back, msg) == NB_OK, "%s", msg);
	m = nb_net_mlp(back);
	ck_assert_uint_eq(m.n_layers, 3);
	ck_assert_mem_eq(m.sizes, sizes, sizeof sizes);
	ck_assert_int_eq(nb_net_get_config(back).hidden, NB_SOFTPLUS);
	ck_assert_int_eq(nb_net_get_config(back).init, NB_INIT_HE);
	ck_assert_mem_eq(nb_net_weights(back, 1), nb_net_weights(net, 1), 8 * sizeof(double));
	nb_net_free(net);
	nb_net_free(back);
	remove(PATH);
}
END_TEST

/* Files of tensors that are not networks, each refused with what is wrong. */
static const struct {
	const char *description;
	int tensors;   /* how many of w1, b1 (2 x 3 and 2 x 1) the file holds; 3: b1 3 x 1 */
	const char *msg;
} bad_files[] = {
	{ "", 2, "a file of named tensors without a network (nb_tensors_load() reads it): " },
	{ "nabla net\n", 2, "network description, line 1: not \"nabla network\": " },
	{ "nabla network\nfoo 1\n", 2,
	  "network description, line 2: unknown keyword \"foo\": " },
	{ "nabla network\ninput 3\n", 2,
	  "network description, line 2: input needs 3 numbers, not 1: " },
	{ "nabla network\ninput 3 1 1\ndense units=2 size=3\n", 2,
	  "network description, line 3: unknown field \"size\": " },
	{ "nabla network\ninput 3 1 1\ndense units=2 activation=wiggly\n", 2,
	  "network description, line 3: unknown name \"wiggly\": " },
	{ "nabla network\ninput 3 1 1\ndense units=x\n", 2,
	  "network description, line 3: \"x\" is not a whole number from 0 to 268435456: " },
	{ "nabla network\ninput 3 1 1\ndense units\n", 2,
	  "network description, line 3: \"units\" has no value (key=value): " },
	{ "nabla network\nseed -4\n", 2,
	  "network description, line 2: seed \"-4\" is not a whole number: " },
	{ "nabla network\ncost quadratic extra\n", 2,
	  "network description, line 2: more after the value: " },
	{ "nabla network\ninput 3 1 1\nmax_pool k=1 stride=1\n", 2,
	  "net: the last layer must be a dense one, or activations after one, not max_pool: " },
	{ "nabla network\ninput 3 1 1\ndense units=2\n", 1, "1 tensors for a network of 2 "
	  "parameters: " },
	{ "nabla network\ninput 3 1 1\ndense units=2\n", 3,
	  "parameter b1 has the wrong shape for the network described: " },
	{ "nabla network\ninput 3 1 1\ndense units=2\n", 4, "parameter b1 is not in the file: " },
	{ "nabla network\ninput 3 1 1\ndense units=2\n", 5, "parameter w1[0] is nan: " },
};

START_TEST(test_bad_network_files)
{
	double w[6] = { 1, 2, 3, 4, 5, 6 }, b[3] = { 1, 2, 3 }, nan[6] = { NAN };
	nb_named_tensor ts[2] = { { "w1", 2, { 2, 3 }, w }, { "b1", 2, { 2, 1 }, b } };
	char msg[NB_MSG_MAX], want[NB_MSG_MAX];
	nb_net *net = (nb_net *)1;
	int k = bad_files[_i].tensors;

	if (k == 3)
		ts[1].dim[0] = 3;
	if (k == 4)
		ts[1].name = "c1";
	if (k == 5)
		ts[0].data = nan;
	ck_assert_int_eq(nb_tensors_save(PATH, ts, k == 1 ? 1 : 2, bad_files[_i].description,
	                                 msg), NB_OK);
	ck_assert_int_eq(nb_net_load(PATH, &net, msg), NB_EFORMAT);
	snprintf(want, sizeof want, "%s%s", bad_files[_i].msg, PATH);
	ck_assert_str_eq(msg, want);
	ck_assert_ptr_null(net);
	remove(PATH);
}
END_TEST

/* Saving a diverged network of layers is refused, naming the value. */
START_TEST(test_save_refuses_non_finite)
{
	nb_net *net = small_net(NULL, NULL);
	char msg[NB_MSG_MAX];

	nb_net_biases(net, 1)[2] = INFINITY;
	ck_assert_int_eq(nb_net_save(net, PATH, msg), NB_EINVAL);
	ck_assert_str_eq(msg, "parameter b2[2] is inf, which a model file of a network cannot "
	                 "hold (it would not load): " PATH);
	nb_net_free(net);
}
END_TEST

/* Every allocation failure of a version-2 save and load: NB_ENOMEM, nothing leaked. */
START_TEST(test_file_allocation_failures)
{
	nb_net *net = small_net(NULL, NULL);
	int done = 0;

	for (size_t k = 1; !done; k++) {
		count_alloc c = { .fail_at = k };
		nb_load_opts o = { .alloc = count_alloc_fn, .alloc_ud = &c };
		nb_net_config cfg = nb_net_get_config(net);
		nb_net *copy = NULL, *back = NULL;
		int status;

		cfg.alloc = count_alloc_fn;
		cfg.alloc_ud = &c;
		c.fail_at = 0;
		ck_assert_int_eq(nb_net_new(&cfg, &copy, NULL), NB_OK);
		c.fail_at = c.allocs + k;
		status = nb_net_save(copy, PATH, NULL);
		if (status == NB_OK)
			status = nb_net_load_opts(PATH, &o, &back, NULL);
		ck_assert(status == NB_OK || status == NB_ENOMEM);
		done = status == NB_OK;
		nb_net_free(back);
		nb_net_free(copy);
		ck_assert_uint_eq(c.bytes_in_use, 0);
		ck_assert_uint_lt(k, 1000);
	}
	nb_net_free(net);
	remove(PATH);
}
END_TEST

/* A network written with the op API saves its variables with nb_tensors_save() and a
 * fresh program loads them with nb_tensors_load_into(): the same outputs, bit for bit. */
START_TEST(test_op_api_network_saves_bit_for_bit)
{
	double w[3 * 4], b[3], w2[3 * 4] = { 0 }, b2[3] = { 0 }, x[4 * 5], out[2][15];
	const size_t wd[2] = { 3, 4 }, bd[2] = { 3, 1 };
	nb_sgd_opts o = { .eta = 0.3 };
	char msg[NB_MSG_MAX];
	test_rng r;

	rng_seed(&r, 21);
	rng_fill(&r, w, 12, -1, 1);
	rng_fill(&r, b, 3, -1, 1);
	rng_fill(&r, x, 20, -1, 1);
	for (int k = 0; k < 2; k++) {
		nb_tape *t = nb_tape_new();
		nb_tensor *pw = nb_variable_view(t, 2, wd, k ? w2 : w);
		nb_tensor *pb = nb_variable_view(t, 2, bd, k ? b2 : b);
		nb_tensor *a = nb_tanh(t, nb_add(t, nb_matmul(t, pw, nb_constant(t, 2,
		                                 (size_t[]){ 4, 5 }, x)), pb));
		nb_tensor *c = nb_sum(t, nb_mul(t, a, a));

		if (k == 0) {  /* train a little, then save */
			for (int s = 0; s < 3; s++) {
				ck_assert_int_eq(nb_backward(t, c, NULL), NB_OK);
				ck_assert_int_eq(nb_sgd_update((nb_tensor *[]){ pw, pb }, NULL, NULL, 2,
				                               &o), NB_OK);
			}
			ck_assert_msg(nb_tensors_save(PATH, (nb_named_tensor[]){
			              { "w", 2, { 3, 4 }, w }, { "b", 2, { 3, 1 }, b } }, 2,
			              "a tanh layer", msg) == NB_OK, "%s", msg);
		} else {  /* a fresh program: load into its arrays, then tell the tape */
			ck_assert_msg(nb_tensors_load_into(PATH, NULL, (nb_named_tensor[]){
			              { "b", 2, { 3, 1 }, b2 }, { "w", 2, { 3, 4 }, w2 } }, 2,
			              msg) == NB_OK, "%s", msg);
			nb_touch(pw);
			nb_touch(pb);
		}
		memcpy(out[k], nb_value(a), sizeof out[k]);
		nb_tape_free(t);
	}
	ck_assert_mem_eq(w2, w, sizeof w);
	ck_assert_mem_eq(b2, b, sizeof b);
	ck_assert_mem_eq(out[1], out[0], sizeof out[0]);
	remove(PATH);
}
END_TEST

static Suite *layers_suite(void)
{
	Suite *s = suite_create("layers");
	TCase *steps = tcase_create("steps");
	TCase *bad = tcase_create("bad lists");
	TCase *files = tcase_create("model files");

	tcase_add_loop_test(steps, test_step_equals_op_graph_step, NB_METHOD_SGD,
	                    NB_METHOD_ADAM + 1);
	tcase_add_test(steps, test_methods_keep_their_own_state);
	tcase_add_test(steps, test_shapes_of_a_conv_net);
	tcase_add_loop_test(steps, test_initialisations, 0, 5);
	tcase_add_test(steps, test_dropout_only_in_training);
	tcase_add_test(steps, test_conv_steps_allocate_nothing);
	tcase_add_test(steps, test_every_allocation_failure);
	tcase_add_test(steps, test_conv_net_learns_digits);
	tcase_set_timeout(steps, 300);
	tcase_add_loop_test(bad, test_bad_list, 0, (int)(sizeof bad_lists / sizeof bad_lists[0]));
	tcase_add_test(bad, test_bad_adam_options);
	tcase_add_test(files, test_layers_save_and_load);
	tcase_add_test(files, test_sizes_choose_their_version);
	tcase_add_loop_test(files, test_bad_network_files, 0,
	                    (int)(sizeof bad_files / sizeof bad_files[0]));
	tcase_add_test(files, test_save_refuses_non_finite);
	tcase_add_test(files, test_file_allocation_failures);
	tcase_add_test(files, test_op_api_network_saves_bit_for_bit);
	suite_add_tcase(s, steps);
	suite_add_tcase(s, bad);
	suite_add_tcase(s, files);
	return s;
}

int main(void)
{
	return run_suite(layers_suite());
}
