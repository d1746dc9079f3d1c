/* test_null.c -- every pointer argument of every public function, passed as NULL.
 *
 * The rule: a function that takes a pointer is tested with NULL for it, and the result is
 * what nabla.h documents (status and message where there is one), never a crash. Most
 * cases live beside the code they concern; this file holds the rest. Where each function
 * of nabla.h is covered:
 *
 *   tape: nb_tape_new_alloc (alloc NULL), status, message, clear_error, size, replay,
 *     backward (all NULL), leaves with a NULL tape, fill with NULL dims: test_errors
 *     (test_leaves_reject_null_tape, test_leaf_rejects_zero_dim_and_null_dims);
 *     nb_tape_free, rank, size, value, op_name, grad, shape_str (x NULL): test_tape
 *     (test_queries); nb_tape_check_finite: test_tape (test_check_finite_in_replay)
 *   ops, tensor arguments and the tape of one-operand ops: test_errors
 *     (test_unary_null_argument, test_binary_null_arguments, test_unary_null_tape)
 *   nb_set (x, data), nb_backward (y): test_errors; nb_tape_write_dot: test_net
 *     (test_tape_is_named_and_drawn); nb_print: test_print (test_null_arguments)
 *   nb_gradcheck (f, inputs, report), nb_gradcheck_print: test_gradcheck
 *   nb_bp_reference (net, x, y, dw, db, w[l], msg): test_bp
 *     (test_reference_rejects_bad_argument; delta entries: test_reference_skips_null_delta_entry);
 *     nb_bp_reference_opts, the same and opts (NULL: the defaults): test_bp
 *     (test_opts_rejects_bad_argument, test_opts_defaults_are_bp_reference)
 *   data sets: test_idx (test_null_arguments, test_part_null_arguments,
 *     test_free_null_and_zeroed_is_safe), and below for the _opts and _part loaders
 *   networks: test_net (test_new_rejects_null, test_bad_data), model files: test_model
 *     (test_null_arguments_are_rejected, test_msg_may_be_null), and below for
 *     nb_net_load_opts; tensor files (every function, every pointer, a tensor's name and
 *     data): test_tensors (test_null_arguments_are_rejected, test_msg_may_be_null,
 *     test_bad_tensor_is_refused_at_save_and_load_into)
 *
 *   marks, rewind, reset, find, views (data), touch, nb_gradients, the updates (params,
 *     grads, state, options): test_lifetime, test_grads
 *   nb_jvp, nb_hvp, nb_jacobian, nb_hessian (every argument): test_derive
 *     (test_jvp_errors, test_hvp_errors, test_jacobian_and_hessian_errors)
 *   nb_tape_set_threads, nb_tape_threads, nb_net_set_threads: test_threads
 *     (test_tape_thread_count_is_clamped, test_net_thread_count_reaches_its_tapes)
 *
 * and below: the views and bytes of a NULL tape, the updates' state entries, the tape of two-operand ops, the dims of leaves and of reshape, broadcast_to
 * and reduce_to, names, the remaining queries, backward's tape, the allocator's ud,
 * gradcheck's input data, every field of nb_mlp and every output array of the
 * reference, and the remaining arguments of the network functions. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* ---- Tape, leaves and queries -------------------------------------------------------- */

START_TEST(test_views_and_bytes_of_null_tape)
{
	double v[2] = { 0 };

	ck_assert_ptr_null(nb_variable_view(NULL, 1, (size_t[]){ 2 }, v));
	ck_assert_ptr_null(nb_constant_view(NULL, 1, (size_t[]){ 2 }, v));
	ck_assert_uint_eq(nb_tape_bytes(NULL), 0);
}
END_TEST

/* A NULL entry of a state list is refused, naming the entry, and nothing moves. */
START_TEST(test_update_null_state_entries)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *w = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 1, 2 });
	double m[2] = { 0 }, *ms[1] = { m }, *none[1] = { NULL };
	nb_sgd_opts o = { .eta = 0.1, .momentum = 0.5 };
	nb_adam_opts a = NB_ADAM_DEFAULTS;

	ck_assert_int_eq(nb_backward(t, nb_sum(t, nb_mul(t, w, w)), NULL), NB_OK);
	ck_assert_int_eq(nb_sgd_update(&w, NULL, none, 1, &o), NB_ENULL);
	ck_assert_str_eq(nb_tape_message(t), "sgd_update: velocity[0] is NULL");
	nb_tape_clear_error(t);
	ck_assert_int_eq(nb_adam_update(&w, NULL, none, ms, 1, &a, 1), NB_ENULL);
	ck_assert_str_eq(nb_tape_message(t), "adam_update: m[0] is NULL");
	nb_tape_clear_error(t);
	ck_assert_int_eq(nb_adam_update(&w, NULL, ms, ms, 1, NULL, 1), NB_ENULL);
	ck_assert_str_eq(nb_tape_message(t), "adam_update: options are NULL");
	nb_tape_clear_error(t);
	ck_assert_int_eq(nb_sgd_update((nb_tensor *[]){ NULL }, NULL, NULL, 1, &o), NB_ENULL);
	ck_assert_int_eq(nb_adam_update(NULL, NULL, ms, ms, 1, &a, 1), NB_ENULL);
	ck_assert_double_eq(nb_value(w)[1], 2.0);
	nb_tape_free(t);
}
END_TEST

/* Two-operand ops with a NULL tape return NULL; the operands' tape is untouched. */
typedef nb_tensor *(*binary_fn)(nb_tape *, nb_tensor *, nb_tensor *);

static nb_tensor *matmul_ta(nb_tape *t, nb_tensor *a, nb_tensor *b)
{
	return nb_matmul_t(t, a, b, NB_TRANS_A);
}

static const binary_fn binary_ops[] = {
	nb_add, nb_sub, nb_mul, nb_div, nb_matmul, matmul_ta, nb_quadratic_cost,
	nb_sigmoid_cross_entropy, nb_softmax_cross_entropy,
};

#define N_BINARY (int)(sizeof binary_ops / sizeof binary_ops[0])

START_TEST(test_binary_null_tape)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *a = nb_variable(t, 2, (size_t[]){ 2, 2 }, NULL);

	ck_assert_ptr_null(binary_ops[_i](NULL, a, a));
	ck_assert_ptr_null(binary_ops[_i](NULL, NULL, NULL));
	ck_assert_int_eq(nb_tape_status(t), NB_OK);
	ck_assert_str_eq(nb_tape_message(t), "");
	nb_tape_free(t);
}
END_TEST

/* A leaf of rank > 0 needs its dims; rank 0 needs none, and NULL data means zeros. */
START_TEST(test_leaves_reject_null_dims)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *s;

	ck_assert_ptr_null(nb_constant(t, 2, NULL, NULL));
	ck_assert_int_eq(nb_tape_status(t), NB_ENULL);
	ck_assert_str_eq(nb_tape_message(t), "constant: dims are NULL");
	nb_tape_clear_error(t);
	ck_assert_ptr_null(nb_variable(t, 1, NULL, (double[]){ 1 }));
	ck_assert_int_eq(nb_tape_status(t), NB_ENULL);
	ck_assert_str_eq(nb_tape_message(t), "variable: dims are NULL");
	nb_tape_clear_error(t);
	s = nb_variable(t, 0, NULL, NULL);
	ck_assert_ptr_nonnull(s);
	ck_assert_double_eq(nb_value(s)[0], 0.0);
	ck_assert_ptr_nonnull(nb_fill(t, 0, NULL, 2.0));
	ck_assert_int_eq(nb_tape_status(t), NB_OK);
	nb_tape_free(t);
}
END_TEST

/* reshape, broadcast_to and reduce_to: a target shape of rank > 0 with NULL dims. */
typedef nb_tensor *(*shape_fn)(nb_tape *, nb_tensor *, int, const size_t *);

static const struct {
	const char *name;
	shape_fn f;
} shape_ops[] = {
	{ "reshape", nb_reshape }, { "broadcast_to", nb_broadcast_to },
	{ "reduce_to", nb_reduce_to },
};

#define N_SHAPE (int)(sizeof shape_ops / sizeof shape_ops[0])

START_TEST(test_shape_ops_reject_null_dims)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 0, NULL, NULL);
	char want[NB_MSG_MAX];

	ck_assert_ptr_null(shape_ops[_i].f(t, x, 1, NULL));
	ck_assert_int_eq(nb_tape_status(t), NB_ENULL);
	snprintf(want, sizeof want, "%s: dims are NULL", shape_ops[_i].name);
	ck_assert_str_eq(nb_tape_message(t), want);
	nb_tape_clear_error(t);
	/* Rank 0 needs no dims: a scalar to a scalar is the scalar itself. */
	ck_assert_ptr_eq(shape_ops[_i].f(t, x, 0, NULL), x);
	ck_assert_ptr_null(shape_ops[_i].f(NULL, x, 1, (size_t[]){ 1 }));
	ck_assert_ptr_null(shape_ops[_i].f(NULL, NULL, 1, NULL));
	ck_assert_int_eq(nb_tape_status(t), NB_OK);
	nb_tape_free(t);
}
END_TEST

START_TEST(test_names_accept_null)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 0, NULL, NULL);

	nb_set_name(NULL, "x");  /* does nothing */
	nb_set_name(NULL, NULL);
	ck_assert_str_eq(nb_name(NULL), "");
	nb_set_name(x, "w1");
	ck_assert_str_eq(nb_name(x), "w1");
	nb_set_name(x, NULL);  /* removes the name */
	ck_assert_str_eq(nb_name(x), "");
	ck_assert_int_eq(nb_tape_status(t), NB_OK);
	nb_tape_free(t);
}
END_TEST

/* The queries test_tape does not already ask of NULL, and a NULL buffer for the shape. */
START_TEST(test_queries_accept_null)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 2, (size_t[]){ 2, 3 }, NULL);

	ck_assert_uint_eq(nb_dim(NULL, 0), 0);
	ck_assert_ptr_null(nb_input(NULL, 0));
	ck_assert_ptr_null(nb_shape_str(x, NULL));
	ck_assert_ptr_null(nb_shape_str(NULL, NULL));
	ck_assert_int_eq(nb_tape_write_dot(NULL, NULL), NB_ENULL);
	nb_tape_free(t);
}
END_TEST

/* A NULL tape with a good output: NB_ENULL, and the output's tape records nothing. */
START_TEST(test_backward_null_tape)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 0, NULL, (double[]){ 2 });
	nb_tensor *y = nb_mul(t, x, x);

	ck_assert_int_eq(nb_backward(NULL, y, NULL), NB_ENULL);
	ck_assert_int_eq(nb_backward(NULL, y, y), NB_ENULL);
	ck_assert_int_eq(nb_tape_status(t), NB_OK);
	ck_assert_ptr_null(nb_grad(x));
	/* A NULL seed means 1 for a one-element output. */
	ck_assert_int_eq(nb_backward(t, y, NULL), NB_OK);
	ck_assert_double_eq(nb_value(nb_grad(x))[0], 4.0);
	nb_tape_free(t);
}
END_TEST

/* ud is the caller's: NULL is passed through to the hook as given. */
static int saw_non_null_ud;

static void *plain_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	(void)osize;
	if (ud != NULL)
		saw_non_null_ud = 1;
	if (nsize == 0) {
		free(ptr);
		return NULL;
	}
	return malloc(nsize);
}

START_TEST(test_tape_new_alloc_null_ud)
{
	nb_tape *t = nb_tape_new_alloc(plain_alloc, NULL);

	ck_assert_ptr_nonnull(t);
	ck_assert_ptr_nonnull(nb_sigmoid(t, nb_variable(t, 1, (size_t[]){ 3 }, NULL)));
	ck_assert_int_eq(nb_tape_status(t), NB_OK);
	nb_tape_free(t);
	ck_assert_int_eq(saw_non_null_ud, 0);
}
END_TEST

/* ---- Gradient check ------------------------------------------------------------------ */

static nb_tensor *sum_sigmoid(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	(void)n;
	(void)ud;
	return nb_sum(t, nb_sigmoid(t, in[0]));
}

/* Every pointer NULL at once; a NULL report still gives the status. An input's data may
 * be NULL (zeros, as for nb_variable), and so may opts and ud. */
START_TEST(test_gradcheck_accepts_or_rejects_null)
{
	nb_gradcheck_input in = { 1, (size_t[]){ 3 }, NULL };
	nb_gradcheck_report r;

	ck_assert_int_eq(nb_gradcheck(NULL, NULL, NULL, 0, NULL, NULL), NB_ENULL);
	ck_assert_int_eq(nb_gradcheck(NULL, NULL, NULL, 0, NULL, &r), NB_ENULL);
	ck_assert_int_eq(r.status, NB_ENULL);
	ck_assert_str_eq(r.message, "gradcheck: f is NULL");
	ck_assert_int_eq(r.passed, 0);
	ck_assert_int_eq(nb_gradcheck(sum_sigmoid, NULL, &in, 1, NULL, &r), NB_OK);
	ck_assert_int_eq(r.passed, 1);
	ck_assert_str_eq(r.message, "");
	nb_gradcheck_print(NULL, NULL);  /* prints nothing, does not crash */
}
END_TEST

/* ---- Closed-form reference: every pointer inside nb_mlp, every output array ---------- */

/* A good [1,1,1] network with one example, which each case breaks in one way. */
struct ref_args {
	size_t sizes[3];
	double w0, w1, b0, b1, x, y, dw0, dw1, db0, db1;
	const double *w[2], *b[2];
	double *dw[2], *db[2];
	nb_mlp net;
};

static void ref_init(struct ref_args *a)
{
	memset(a, 0, sizeof *a);
	a->sizes[0] = a->sizes[1] = a->sizes[2] = 1;
	a->w0 = 0.5;
	a->w1 = -1.5;
	a->x = 0.8;
	a->y = 1.0;
	a->w[0] = &a->w0;
	a->w[1] = &a->w1;
	a->b[0] = &a->b0;
	a->b[1] = &a->b1;
	a->dw[0] = &a->dw0;
	a->dw[1] = &a->dw1;
	a->db[0] = &a->db0;
	a->db[1] = &a->db1;
	a->net = (nb_mlp){ .n_layers = 3, .sizes = a->sizes, .w = a->w, .b = a->b };
}

static void null_sizes(struct ref_args *a) { a->net.sizes = NULL; }
static void null_w(struct ref_args *a) { a->net.w = NULL; }
static void null_b(struct ref_args *a) { a->net.b = NULL; }
static void null_w0(struct ref_args *a) { a->w[0] = NULL; }
static void null_b0(struct ref_args *a) { a->b[0] = NULL; }
static void null_b1(struct ref_args *a) { a->b[1] = NULL; }
static void null_dw0(struct ref_args *a) { a->dw[0] = NULL; }
static void null_dw1(struct ref_args *a) { a->dw[1] = NULL; }
static void null_db0(struct ref_args *a) { a->db[0] = NULL; }
static void null_db1(struct ref_args *a) { a->db[1] = NULL; }

static const struct {
	void (*breaks)(struct ref_args *a);
	const char *message;
} ref_cases[] = {
	{ null_sizes, "bp_reference: net->sizes is NULL" },
	{ null_w, "bp_reference: net->w is NULL" },
	{ null_b, "bp_reference: net->b is NULL" },
	{ null_w0, "bp_reference: w[0] is NULL" },
	{ null_b0, "bp_reference: b[0] is NULL" },
	{ null_b1, "bp_reference: b[1] is NULL" },
	{ null_dw0, "bp_reference: dw[0] is NULL" },
	{ null_dw1, "bp_reference: dw[1] is NULL" },
	{ null_db0, "bp_reference: db[0] is NULL" },
	{ null_db1, "bp_reference: db[1] is NULL" },
};

#define N_REF_CASES (int)(sizeof ref_cases / sizeof ref_cases[0])

static int call_ref(struct ref_args *a, char *msg)
{
	return nb_bp_reference(&a->net, 1, &a->x, &a->y, a->dw, a->db, NULL, NULL, msg);
}

START_TEST(test_reference_rejects_null_inside)
{
	struct ref_args a;
	char msg[NB_MSG_MAX] = "";

	ref_init(&a);
	ck_assert_int_eq(call_ref(&a, msg), NB_OK);
	ref_cases[_i].breaks(&a);
	ck_assert_int_eq(call_ref(&a, msg), NB_ENULL);
	ck_assert_str_eq(msg, ref_cases[_i].message);
	ck_assert_int_eq(call_ref(&a, NULL), NB_ENULL);
}
END_TEST

START_TEST(test_reference_all_null)
{
	char msg[NB_MSG_MAX] = "";

	ck_assert_int_eq(nb_bp_reference(NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	                 NB_ENULL);
	ck_assert_int_eq(nb_bp_reference(NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, msg),
	                 NB_ENULL);
	ck_assert_str_eq(msg, "bp_reference: net is NULL");
}
END_TEST

/* ---- Data sets and networks ---------------------------------------------------------- */

START_TEST(test_dataset_loads_all_null)
{
	char msg[NB_MSG_MAX] = "";

	ck_assert_int_eq(nb_dataset_load_idx(NULL, NULL, NULL, NULL), NB_ENULL);
	ck_assert_int_eq(nb_dataset_load_dir(NULL, NULL, NULL, NULL), NB_ENULL);
	ck_assert_int_eq(nb_dataset_load_dir(NULL, NULL, NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "load_dir: dir is NULL");
	ck_assert_int_eq(nb_dataset_load_idx_opts(NULL, NULL, NULL, NULL, NULL), NB_ENULL);
	ck_assert_int_eq(nb_dataset_load_idx_opts(NULL, NULL, NULL, NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "load_idx: images is NULL");
	ck_assert_int_eq(nb_dataset_load_idx_opts("i", NULL, NULL, NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "load_idx: labels is NULL");
	ck_assert_int_eq(nb_dataset_load_idx_opts("i", "l", NULL, NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "load_idx: ds is NULL");
	ck_assert_int_eq(nb_dataset_load_dir_opts(NULL, NULL, NULL, NULL, NULL), NB_ENULL);
	ck_assert_int_eq(nb_dataset_load_dir_opts(NULL, NULL, NULL, NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "load_dir: dir is NULL");
	ck_assert_int_eq(nb_dataset_load_dir_opts(".", NULL, NULL, NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "load_dir: split is NULL");
	ck_assert_int_eq(nb_dataset_load_dir_opts(".", "train", NULL, NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "load_dir: ds is NULL");
	ck_assert_int_eq(nb_dataset_load_idx_part(NULL, NULL, 0, 1, NULL, NULL, NULL), NB_ENULL);
	ck_assert_int_eq(nb_dataset_load_idx_part(NULL, NULL, 0, 1, NULL, NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "load_idx_part: images is NULL");
	ck_assert_int_eq(nb_dataset_load_idx_part("i", NULL, 0, 1, NULL, NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "load_idx_part: labels is NULL");
	ck_assert_int_eq(nb_dataset_load_idx_part("i", "l", 0, 1, NULL, NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "load_idx_part: ds is NULL");
	ck_assert_int_eq(nb_dataset_load_dir_part(NULL, NULL, 0, 1, NULL, NULL, NULL), NB_ENULL);
	ck_assert_int_eq(nb_dataset_load_dir_part(NULL, NULL, 0, 1, NULL, NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "load_dir_part: dir is NULL");
	ck_assert_int_eq(nb_dataset_load_dir_part(".", NULL, 0, 1, NULL, NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "load_dir_part: split is NULL");
	ck_assert_int_eq(nb_dataset_load_dir_part(".", "train", 0, 1, NULL, NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "load_dir_part: ds is NULL");
}
END_TEST

/* NULL options are the defaults, and a NULL alloc in options means malloc (its ud
 * ignored): a missing file is reported either way. */
START_TEST(test_dataset_null_options_are_the_defaults)
{
	nb_load_opts opts = { .alloc = NULL, .alloc_ud = &opts };
	char msg[NB_MSG_MAX] = "";
	nb_dataset ds;

	ck_assert_int_eq(nb_dataset_load_idx_opts("test_null_no_such_file", "l", NULL, &ds, msg),
	                 NB_EIO);
	ck_assert_str_eq(msg, "cannot open: No such file or directory: test_null_no_such_file");
	ck_assert_ptr_null(ds.x);
	ck_assert_int_eq(nb_dataset_load_dir_opts("test_null_no_such_dir", "t10k", &opts, &ds,
	                                          msg), NB_EIO);
	ck_assert_str_eq(msg, "cannot open: No such file or directory: "
	                 "test_null_no_such_dir/t10k-images-idx3-ubyte[.gz]");
	ck_assert_ptr_null(ds.x);
	ck_assert_int_eq(nb_dataset_load_idx_part("test_null_no_such_file", "l", 1, 2, NULL, &ds,
	                                          msg), NB_EIO);
	ck_assert_str_eq(msg, "cannot open: No such file or directory: test_null_no_such_file");
	ck_assert_int_eq(nb_dataset_load_dir_part("test_null_no_such_dir", "t10k", 1, 2, &opts,
	                                          &ds, msg), NB_EIO);
	ck_assert_str_eq(msg, "cannot open: No such file or directory: "
	                 "test_null_no_such_dir/t10k-images-idx3-ubyte[.gz]");
	ck_assert_ptr_null(ds.x);
}
END_TEST

START_TEST(test_net_load_opts_rejects_null)
{
	nb_net *net = (nb_net *)&net;  /* anything but NULL */
	char msg[NB_MSG_MAX] = "";

	ck_assert_int_eq(nb_net_load_opts(NULL, NULL, &net, msg), NB_ENULL);
	ck_assert_ptr_null(net);
	ck_assert_str_eq(msg, "nb_net_load: path is NULL");
	ck_assert_int_eq(nb_net_load_opts("m", NULL, NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "nb_net_load: out is NULL");
	ck_assert_int_eq(nb_net_load_opts(NULL, NULL, NULL, NULL), NB_ENULL);
	ck_assert_int_eq(nb_net_load_opts("test_null_no_such_model", NULL, &net, msg), NB_EIO);
	ck_assert_str_eq(msg, "cannot open: No such file or directory: test_null_no_such_model");
}
END_TEST

START_TEST(test_net_new_null_config_clears_out)
{
	nb_net *net = (nb_net *)&net;  /* anything but NULL */

	ck_assert_int_eq(nb_net_new(NULL, &net, NULL), NB_ENULL);
	ck_assert_ptr_null(net);
	ck_assert_int_eq(nb_net_new(NULL, NULL, NULL), NB_ENULL);
}
END_TEST

/* Queries of a NULL network: an empty configuration and network, no parameters. */
START_TEST(test_net_queries_accept_null)
{
	nb_net_config cfg = nb_net_get_config(NULL);
	nb_mlp m = nb_net_mlp(NULL);
	char msg[NB_MSG_MAX] = "";
	double dw = 0, db = 0;

	ck_assert_uint_eq(cfg.n_layers, 0);
	ck_assert_ptr_null(cfg.sizes);
	ck_assert(cfg.alloc == NULL);
	ck_assert_ptr_null(nb_net_biases(NULL, 0));
	ck_assert_ptr_null(nb_net_weights(NULL, 0));
	ck_assert_uint_eq(m.n_layers, 0);
	ck_assert_ptr_null(m.sizes);
	ck_assert_ptr_null(m.w);
	ck_assert_ptr_null(m.b);
	/* ... which the reference refuses rather than reads. */
	ck_assert_int_eq(nb_bp_reference(&m, 1, &dw, &db, (double *[]){ &dw },
	                                 (double *[]){ &db }, NULL, NULL, msg),
	                 NB_EINVAL);
	ck_assert_str_eq(msg, "bp_reference: need at least 2 layers, got 0");
}
END_TEST

static const size_t S232[3] = { 2, 3, 2 };

static nb_net *small_net(void)
{
	nb_net_config cfg = { .n_layers = 3, .sizes = S232, .seed = 1 };
	char msg[NB_MSG_MAX] = "";
	nb_net *net = NULL;

	ck_assert_msg(nb_net_new(&cfg, &net, msg) == NB_OK, "%s", msg);
	return net;
}

/* The net's sticky error after a call: status, message, then cleared. */
static void expect_net_error(nb_net *net, int got, int status, const char *message)
{
	ck_assert_int_eq(got, status);
	ck_assert_int_eq(nb_net_status(net), status);
	ck_assert_str_eq(nb_net_message(net), message);
	nb_net_clear_error(net);
}

START_TEST(test_sgd_step_rejects_null)
{
	nb_net *net = small_net();
	double x[2] = { 0.5, 0.25 }, y[2] = { 1, 0 }, cost = -1;
	nb_sgd opt = { .batch = 1, .eta = 1 };

	expect_net_error(net, nb_net_sgd_step(net, x, NULL, 1, &opt, NULL), NB_ENULL,
	                 "sgd_step: y is NULL");
	expect_net_error(net, nb_net_sgd_step(net, x, y, 1, NULL, NULL), NB_ENULL,
	                 "sgd: options are NULL");
	expect_net_error(net, nb_net_sgd_step(net, NULL, NULL, 1, NULL, NULL), NB_ENULL,
	                 "sgd: options are NULL");
	ck_assert_int_eq(nb_net_sgd_step(net, x, y, 1, &opt, NULL), NB_OK);
	ck_assert_int_eq(nb_net_sgd_step(net, x, y, 1, &opt, &cost), NB_OK);
	ck_assert_double_ge(cost, 0.0);
	nb_net_free(net);
}
END_TEST

START_TEST(test_sgd_epoch_rejects_null)
{
	nb_net *net = small_net();
	double x[4] = { 0.5, 0.25, 0.1, 0.9 }, y[4] = { 1, 0, 0, 1 };
	unsigned char label[2] = { 0, 1 };
	nb_dataset ds = { .n = 2, .rows = 1, .cols = 2, .features = 2, .classes = 2,
	                  .x = x, .y = y, .label = label };
	nb_sgd opt = { .batch = 1, .eta = 1 };

	expect_net_error(net, nb_net_sgd_epoch(net, NULL, &opt, NULL, NULL, NULL), NB_ENULL,
	                 "sgd_epoch: data set is NULL");
	expect_net_error(net, nb_net_sgd_epoch(net, &ds, NULL, NULL, NULL, NULL), NB_ENULL,
	                 "sgd: options are NULL");
	/* mean_cost, progress and ud may be NULL. */
	ck_assert_int_eq(nb_net_sgd_epoch(net, &ds, &opt, NULL, NULL, NULL), NB_OK);
	nb_net_free(net);
}
END_TEST

START_TEST(test_predict_rejects_null_x)
{
	nb_net *net = small_net();
	double x[2] = { 0.5, 0.25 }, out[2];

	expect_net_error(net, nb_net_predict(net, NULL, 1, out), NB_ENULL, "predict: x is NULL");
	expect_net_error(net, nb_net_predict(net, NULL, 1, NULL), NB_ENULL, "predict: x is NULL");
	ck_assert_int_eq(nb_net_predict(net, x, 1, out), NB_OK);
	nb_net_free(net);
}
END_TEST

/* A data set built by hand without its x or y arrays is refused as empty. */
START_TEST(test_dataset_without_arrays_is_empty)
{
	nb_net *net = small_net();
	double x[2] = { 0.5, 0.25 }, y[2] = { 1, 0 };
	unsigned char label[1] = { 0 };
	nb_dataset ds = { .n = 1, .rows = 1, .cols = 2, .features = 2, .classes = 2,
	                  .x = NULL, .y = y, .label = label };
	nb_sgd opt = { .batch = 1, .eta = 1 };

	expect_net_error(net, nb_net_evaluate(net, &ds, NULL, NULL), NB_EINVAL,
	                 "evaluate: data set is empty");
	ds.x = x;
	ds.y = NULL;
	expect_net_error(net, nb_net_sgd_epoch(net, &ds, &opt, NULL, NULL, NULL), NB_EINVAL,
	                 "sgd_epoch: data set is empty");
	nb_net_free(net);
}
END_TEST

static Suite *null_suite(void)
{
	Suite *s = suite_create("null");
	TCase *tape = tcase_create("tape");
	TCase *check = tcase_create("gradcheck and reference");
	TCase *net = tcase_create("data and networks");

	tcase_add_test(tape, test_views_and_bytes_of_null_tape);
	tcase_add_test(tape, test_update_null_state_entries);
	tcase_add_loop_test(tape, test_binary_null_tape, 0, N_BINARY);
	tcase_add_test(tape, test_leaves_reject_null_dims);
	tcase_add_loop_test(tape, test_shape_ops_reject_null_dims, 0, N_SHAPE);
	tcase_add_test(tape, test_names_accept_null);
	tcase_add_test(tape, test_queries_accept_null);
	tcase_add_test(tape, test_backward_null_tape);
	tcase_add_test(tape, test_tape_new_alloc_null_ud);
	tcase_add_test(check, test_gradcheck_accepts_or_rejects_null);
	tcase_add_loop_test(check, test_reference_rejects_null_inside, 0, N_REF_CASES);
	tcase_add_test(check, test_reference_all_null);
	tcase_add_test(net, test_dataset_loads_all_null);
	tcase_add_test(net, test_dataset_null_options_are_the_defaults);
	tcase_add_test(net, test_net_load_opts_rejects_null);
	tcase_add_test(net, test_net_new_null_config_clears_out);
	tcase_add_test(net, test_net_queries_accept_null);
	tcase_add_test(net, test_sgd_step_rejects_null);
	tcase_add_test(net, test_sgd_epoch_rejects_null);
	tcase_add_test(net, test_predict_rejects_null_x);
	tcase_add_test(net, test_dataset_without_arrays_is_empty);
	suite_add_tcase(s, tape);
	suite_add_tcase(s, check);
	suite_add_tcase(s, net);
	return s;
}

int main(void)
{
	return run_suite(null_suite());
}
