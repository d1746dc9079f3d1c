/* selftest.c -- nb_selftest(): every op, nabla's and a program's own, through the
 * gradient checker at first and second order, forward mode against reverse mode with no
 * finite differences, and edge values. The installed library runs it on itself, so a
 * build on a new compiler or CPU can be trusted, or not, in one call. */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "nabla_int.h"

/* ---- The cases: one expression per line, exercising the op it names ------------------- */

typedef nb_tensor *(*build_fn)(nb_tape *t, nb_tensor *const *x);

struct st_case {
	const char *op;    /* the op the case is for (it appears in the expression) */
	build_fn build;
	size_t n;
	int rank[3];
	size_t dim[3][NB_MAX_RANK];
	double lo, hi;     /* input range: log and div want positive values away from 0 */
};

#define CASE(name, body)                                        \
	static nb_tensor *name(nb_tape *t, nb_tensor *const *x) \
	{                                                       \
		return body;                                    \
	}

CASE(e_add, nb_add(t, x[0], x[1]))
CASE(e_sub, nb_sub(t, x[0], x[1]))
CASE(e_mul, nb_mul(t, x[0], x[1]))
CASE(e_mul_self, nb_mul(t, x[0], x[0]))
CASE(e_div, nb_div(t, x[0], x[1]))
CASE(e_scale, nb_scale(t, x[0], -2.5))
CASE(e_neg, nb_neg(t, x[0]))
CASE(e_sigmoid, nb_sigmoid(t, x[0]))
CASE(e_tanh, nb_tanh(t, x[0]))
CASE(e_exp, nb_exp(t, x[0]))
CASE(e_log, nb_log(t, x[0]))
CASE(e_matmul, nb_matmul(t, x[0], x[1]))
CASE(e_matmul_ta, nb_matmul_t(t, x[0], x[1], NB_TRANS_A))
CASE(e_matmul_tb, nb_matmul_t(t, x[0], x[1], NB_TRANS_B))
CASE(e_matmul_tab, nb_matmul_t(t, x[0], x[1], NB_TRANS_A | NB_TRANS_B))
CASE(e_matmul_self, nb_matmul_t(t, x[0], x[0], NB_TRANS_A))
CASE(e_transpose, nb_exp(t, nb_transpose(t, nb_tanh(t, x[0]))))
CASE(e_reshape, nb_reshape(t, x[0], 4, (size_t[]){ 1, 2, 3, 2 }))
CASE(e_sum, nb_sum(t, x[0]))
CASE(e_sum_axis0, nb_sum_axis(t, x[0], 0, 1))
CASE(e_sum_axis1, nb_sum_axis(t, x[0], 1, 0))
CASE(e_broadcast_to, nb_broadcast_to(t, x[0], 3, (size_t[]){ 2, 3, 4 }))
CASE(e_reduce_to, nb_mul(t, nb_reduce_to(t, nb_exp(t, x[0]), 2, (size_t[]){ 3, 1 }),
                         nb_sum_axis(t, nb_tanh(t, x[1]), 1, 1)))
CASE(e_quadratic_cost, nb_quadratic_cost(t, x[0], x[1]))
CASE(e_fill, nb_mul(t, x[0], nb_fill(t, 2, (size_t[]){ 2, 3 }, 1.5)))
CASE(e_relu, nb_relu(t, nb_mul(t, x[0], x[0])))
CASE(e_step, nb_mul(t, nb_step(t, x[0]), nb_exp(t, x[0])))
CASE(e_softmax0, nb_softmax(t, x[0], 0))
CASE(e_softmax1, nb_softmax(t, x[0], 1))
CASE(e_sigmoid_xent, nb_sigmoid_cross_entropy(t, x[0], x[1]))
CASE(e_softmax_xent, nb_softmax_cross_entropy(t, x[0], x[1]))
CASE(e_pow3, nb_pow(t, x[0], 3.0))
CASE(e_pow_frac, nb_pow(t, x[0], -1.5))
CASE(e_square, nb_square(t, x[0]))
CASE(e_sqrt, nb_sqrt(t, x[0]))
CASE(e_abs, nb_mul(t, nb_abs(t, x[0]), x[1]))
CASE(e_log1p, nb_log1p(t, x[0]))
CASE(e_softplus, nb_softplus(t, x[0]))
CASE(e_maximum, nb_maximum(t, x[0], x[1]))
CASE(e_minimum, nb_minimum(t, x[0], x[1]))
CASE(e_where, nb_where(t, nb_step(t, x[0]), x[1], nb_tanh(t, x[2])))
CASE(e_mean, nb_mean(t, nb_mul(t, x[0], x[0])))
CASE(e_mean_axis, nb_mean_axis(t, nb_tanh(t, x[0]), 1, 0))
CASE(e_max_axis0, nb_max_axis(t, nb_mul(t, x[0], x[0]), 0, 0))
CASE(e_max_axis1, nb_max_axis(t, x[0], 1, 1))
CASE(e_logsumexp0, nb_logsumexp(t, x[0], 0, 0))
CASE(e_logsumexp1, nb_logsumexp(t, x[0], 1, 1))
CASE(e_log_softmax, nb_log_softmax(t, x[0], 1))
CASE(e_slice, nb_slice(t, nb_tanh(t, x[0]), 1, 1, 3))
CASE(e_pad, nb_mul(t, nb_pad(t, x[0], 0, 1, 2), nb_pad(t, x[0], 0, 2, 1)))
CASE(e_concat, nb_concat(t, (nb_tensor *[]){ x[0], nb_exp(t, x[1]), x[0] }, 3, 1))
CASE(e_permute3, nb_permute(t, nb_mul(t, x[0], x[0]), (const int[]){ 2, 0, 1 }))
CASE(e_permute4, nb_permute(t, x[0], (const int[]){ 3, 1, 0, 2 }))
CASE(e_bmm, nb_matmul(t, x[0], x[1]))
CASE(e_bmm_ta, nb_matmul_t(t, x[0], x[1], NB_TRANS_A))
CASE(e_bmm_tb, nb_tanh(t, nb_matmul_t(t, x[0], x[1], NB_TRANS_B)))
CASE(e_gather, nb_tanh(t, nb_gather_rows(t, x[0], nb_constant(t, 1, (size_t[]){ 5 },
                                                              (double[]){ 2, 0, 2, 3, 1 }))))
CASE(e_gather_vec, nb_mul(t, nb_gather_rows(t, x[0], nb_constant(t, 1, (size_t[]){ 3 },
                                                                 (double[]){ 4, 4, 0 })),
                          x[1]))
CASE(e_conv, nb_conv2d(t, x[0], x[1], 1, 1))
CASE(e_conv_s2, nb_tanh(t, nb_conv2d(t, x[0], x[1], 2, 0)))
CASE(e_max_pool, nb_max_pool2d(t, x[0], 2, 2))
CASE(e_avg_pool, nb_avg_pool2d(t, nb_mul(t, x[0], x[0]), 2, 1))
CASE(e_dropout, nb_dropout(t, nb_tanh(t, x[0]), 0.3, 7))
CASE(e_layer, nb_sigmoid(t, nb_add(t, nb_matmul(t, x[0], x[1]), x[2])))

static const struct st_case cases[] = {
	{ "add", e_add, 2, { 2, 2 }, { { 3, 4 }, { 3, 4 } }, -2, 2 },
	{ "add", e_add, 2, { 2, 1 }, { { 3, 4 }, { 4 } }, -2, 2 },
	{ "add", e_add, 2, { 2, 2 }, { { 3, 1 }, { 1, 4 } }, -2, 2 },
	{ "sub", e_sub, 2, { 3, 2 }, { { 2, 3, 4 }, { 3, 1 } }, -2, 2 },
	{ "sub", e_sub, 2, { 0, 2 }, { { 0 }, { 2, 2 } }, -2, 2 },
	{ "mul", e_mul, 2, { 2, 2 }, { { 3, 1 }, { 1, 4 } }, -2, 2 },
	{ "mul", e_mul_self, 1, { 2 }, { { 2, 3 } }, -2, 2 },
	{ "div", e_div, 2, { 2, 1 }, { { 2, 3 }, { 3 } }, 0.5, 2 },
	{ "scale", e_scale, 1, { 3 }, { { 2, 1, 3 } }, -2, 2 },
	{ "scale", e_neg, 1, { 1 }, { { 5 } }, -2, 2 },
	{ "sigmoid", e_sigmoid, 1, { 2 }, { { 2, 3 } }, -3, 3 },
	{ "tanh", e_tanh, 1, { 2 }, { { 2, 3 } }, -2, 2 },
	{ "exp", e_exp, 1, { 2 }, { { 2, 3 } }, -2, 2 },
	{ "log", e_log, 1, { 2 }, { { 2, 3 } }, 0.5, 3 },
	{ "matmul", e_matmul, 2, { 2, 2 }, { { 3, 4 }, { 4, 2 } }, -1, 1 },
	{ "matmul", e_matmul_ta, 2, { 2, 2 }, { { 4, 3 }, { 4, 2 } }, -1, 1 },
	{ "matmul", e_matmul_tb, 2, { 2, 2 }, { { 3, 4 }, { 2, 4 } }, -1, 1 },
	{ "matmul", e_matmul_tab, 2, { 2, 2 }, { { 4, 3 }, { 2, 4 } }, -1, 1 },
	{ "matmul", e_matmul_self, 1, { 2 }, { { 3, 2 } }, -1, 1 },
	{ "transpose", e_transpose, 1, { 2 }, { { 3, 4 } }, -1, 1 },
	{ "reshape", e_reshape, 1, { 2 }, { { 3, 4 } }, -1, 1 },
	{ "reduce_to", e_sum, 1, { 3 }, { { 2, 3, 2 } }, -1, 1 },
	{ "reduce_to", e_sum_axis0, 1, { 2 }, { { 3, 4 } }, -1, 1 },
	{ "reshape", e_sum_axis1, 1, { 3 }, { { 2, 3, 4 } }, -1, 1 },
	{ "broadcast_to", e_broadcast_to, 1, { 2 }, { { 3, 1 } }, -1, 1 },
	{ "broadcast_to", e_broadcast_to, 1, { 0 }, { { 0 } }, -1, 1 },
	{ "reduce_to", e_reduce_to, 2, { 3, 2 }, { { 2, 3, 4 }, { 3, 2 } }, -1, 1 },
	{ "quadratic_cost", e_quadratic_cost, 2, { 2, 2 }, { { 3, 5 }, { 3, 5 } }, -1, 1 },
	{ "quadratic_cost", e_quadratic_cost, 2, { 1, 1 }, { { 4 }, { 4 } }, -1, 1 },
	{ "fill", e_fill, 1, { 2 }, { { 2, 3 } }, -1, 1 },
	{ "relu", e_relu, 1, { 2 }, { { 2, 3 } }, -2, 2 },
	{ "step", e_step, 1, { 2 }, { { 2, 3 } }, -2, 2 },
	{ "softmax", e_softmax0, 1, { 2 }, { { 4, 3 } }, -2, 2 },
	{ "softmax", e_softmax1, 1, { 3 }, { { 2, 3, 2 } }, -2, 2 },
	{ "softmax", e_softmax0, 1, { 1 }, { { 5 } }, -2, 2 },
	{ "sigmoid_cross_entropy", e_sigmoid_xent, 2, { 2, 2 }, { { 3, 4 }, { 3, 4 } }, -2, 2 },
	{ "softmax_cross_entropy", e_softmax_xent, 2, { 2, 2 }, { { 4, 3 }, { 4, 3 } }, -2, 2 },
	{ "pow", e_pow3, 1, { 2 }, { { 2, 3 } }, -2, 2 },
	{ "pow", e_pow_frac, 1, { 2 }, { { 2, 3 } }, 0.5, 2 },
	{ "square", e_square, 1, { 2 }, { { 2, 3 } }, -2, 2 },
	{ "sqrt", e_sqrt, 1, { 2 }, { { 2, 3 } }, 0.5, 3 },
	{ "abs", e_abs, 2, { 2, 1 }, { { 2, 3 }, { 3 } }, -2, 2 },
	{ "log1p", e_log1p, 1, { 2 }, { { 2, 3 } }, -0.5, 2 },
	{ "softplus", e_softplus, 1, { 2 }, { { 2, 3 } }, -3, 3 },
	{ "maximum", e_maximum, 2, { 2, 1 }, { { 2, 3 }, { 3 } }, -2, 2 },
	{ "minimum", e_minimum, 2, { 2, 2 }, { { 3, 1 }, { 1, 4 } }, -2, 2 },
	{ "where", e_where, 3, { 2, 2, 1 }, { { 2, 3 }, { 2, 3 }, { 3 } }, -2, 2 },
	{ "mean", e_mean, 1, { 2 }, { { 3, 4 } }, -2, 2 },
	{ "mean", e_mean_axis, 1, { 3 }, { { 2, 3, 2 } }, -2, 2 },
	{ "max_axis", e_max_axis0, 1, { 2 }, { { 4, 3 } }, -2, 2 },
	{ "max_axis", e_max_axis1, 1, { 3 }, { { 2, 3, 2 } }, -2, 2 },
	{ "logsumexp", e_logsumexp0, 1, { 2 }, { { 4, 3 } }, -2, 2 },
	{ "logsumexp", e_logsumexp1, 1, { 3 }, { { 2, 3, 2 } }, -2, 2 },
	{ "logsumexp", e_log_softmax, 1, { 2 }, { { 3, 4 } }, -2, 2 },
	{ "slice", e_slice, 1, { 2 }, { { 2, 4 } }, -2, 2 },
	{ "pad", e_pad, 1, { 2 }, { { 2, 3 } }, -2, 2 },
	{ "concat", e_concat, 2, { 2, 2 }, { { 2, 3 }, { 2, 2 } }, -1, 1 },
	{ "permute", e_permute3, 1, { 3 }, { { 2, 3, 4 } }, -1, 1 },
	{ "permute", e_permute4, 1, { 4 }, { { 2, 1, 3, 2 } }, -1, 1 },
	{ "matmul", e_bmm, 2, { 3, 3 }, { { 2, 3, 4 }, { 2, 4, 2 } }, -1, 1 },
	{ "matmul", e_bmm_ta, 2, { 3, 3 }, { { 2, 4, 3 }, { 2, 4, 2 } }, -1, 1 },
	{ "matmul", e_bmm_tb, 2, { 3, 3 }, { { 3, 2, 3 }, { 3, 2, 3 } }, -1, 1 },
	{ "gather_rows", e_gather, 1, { 2 }, { { 4, 3 } }, -1, 1 },
	{ "gather_rows", e_gather_vec, 2, { 1, 1 }, { { 5 }, { 3 } }, -1, 1 },
	{ "im2col", e_conv, 2, { 4, 4 }, { { 1, 2, 3, 3 }, { 2, 2, 2, 2 } }, -1, 1 },
	{ "im2col", e_conv_s2, 2, { 4, 4 }, { { 2, 1, 4, 4 }, { 2, 1, 3, 3 } }, -1, 1 },
	{ "im2col", e_max_pool, 1, { 4 }, { { 1, 2, 4, 4 } }, -1, 1 },
	{ "im2col", e_avg_pool, 1, { 4 }, { { 1, 1, 3, 4 } }, -1, 1 },
	{ "dropout_mask", e_dropout, 1, { 2 }, { { 4, 5 } }, -2, 2 },
	{ "matmul", e_layer, 3, { 2, 2, 2 }, { { 3, 4 }, { 4, 5 }, { 3, 1 } }, -1, 1 },
};
#define N_CASES (sizeof cases / sizeof cases[0])

/* The elementwise ops, for the edge values: one or two operands (the other 1.5). */
struct st_edge {
	const char *op;
	int arity;
	nb_tensor *(*unary)(nb_tape *t, nb_tensor *x);
	nb_tensor *(*binary)(nb_tape *t, nb_tensor *a, nb_tensor *b);
};

static nb_tensor *scale_by(nb_tape *t, nb_tensor *x)
{
	return nb_scale(t, x, -2.5);
}

static nb_tensor *pow_by(nb_tape *t, nb_tensor *x)
{
	return nb_pow(t, x, 2.5);
}

static nb_tensor *logsumexp0(nb_tape *t, nb_tensor *x)
{
	return nb_logsumexp(t, x, 0, 0);
}

static nb_tensor *log_softmax0(nb_tape *t, nb_tensor *x)
{
	return nb_log_softmax(t, x, 0);
}

static nb_tensor *max_axis0(nb_tape *t, nb_tensor *x)
{
	return nb_max_axis(t, x, 0, 0);
}

static const struct st_edge edges[] = {
	{ "sigmoid", 1, nb_sigmoid, NULL }, { "tanh", 1, nb_tanh, NULL },
	{ "exp", 1, nb_exp, NULL }, { "log", 1, nb_log, NULL }, { "relu", 1, nb_relu, NULL },
	{ "step", 1, nb_step, NULL }, { "scale", 1, scale_by, NULL }, { "neg", 1, nb_neg, NULL },
	{ "pow", 1, pow_by, NULL }, { "square", 1, nb_square, NULL }, { "sqrt", 1, nb_sqrt, NULL },
	{ "abs", 1, nb_abs, NULL }, { "log1p", 1, nb_log1p, NULL },
	{ "softplus", 1, nb_softplus, NULL }, { "mean", 1, nb_mean, NULL },
	{ "logsumexp", 1, logsumexp0, NULL }, { "log_softmax", 1, log_softmax0, NULL },
	{ "max_axis", 1, max_axis0, NULL }, { "maximum", 2, NULL, nb_maximum },
	{ "minimum", 2, NULL, nb_minimum },
	{ "add", 2, NULL, nb_add }, { "sub", 2, NULL, nb_sub }, { "mul", 2, NULL, nb_mul },
	{ "div", 2, NULL, nb_div }, { "quadratic_cost", 2, NULL, nb_quadratic_cost },
	{ "sigmoid_cross_entropy", 2, NULL, nb_sigmoid_cross_entropy },
};
#define N_EDGES (sizeof edges / sizeof edges[0])

/* 0, the infinities, NaN, and values whose exp overflows. */
static const double edge_values[] = { 0.0, INFINITY, -INFINITY, NAN, 800.0, -800.0 };
#define N_EDGE_VALUES (sizeof edge_values / sizeof edge_values[0])

/* ---- The run -------------------------------------------------------------------------- */

struct selftest {
	nb_selftest_report *rep;
	FILE *log;
	nb_rng rng;
	const char *covered[64];   /* the ops some case recorded */
	size_t n_covered;
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void st_fail(struct selftest *s, const char *op, const char *fmt, ...)
{
	char what[NB_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (s->rep->failures++ == 0)
		snprintf(s->rep->first_failure, NB_MSG_MAX, "%.60s: %.190s", op, what);
	if (s->log)
		fprintf(s->log, "FAIL %s: %s\n", op, what);
}

static void st_ok(struct selftest *s, const char *op, const char *what)
{
	if (s->log)
		fprintf(s->log, "ok   %s: %s\n", op, what);
}

/* An expression the checker can call: a case's build, or a user op applied. */
struct expr {
	build_fn build;
	const nb_op_def *def;
};

static nb_tensor *expr_call(nb_tape *t, nb_tensor *const *x, size_t n, void *ud)
{
	const struct expr *e = ud;

	return e->def ? nb_apply(t, e->def, x, (int)n) : e->build(t, x);
}

/* Mark the ops recorded by e, and by a backward sweep from it, on fresh variables at the
 * inputs as covered. */
static void cover(struct selftest *s, const struct expr *e, const nb_gradcheck_input *in,
                  size_t n)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x[NB_OP_MAX_ARITY], *y;

	for (size_t k = 0; t && k < n; k++)
		x[k] = nb_variable(t, in[k].rank, in[k].dim, in[k].data);
	y = t ? expr_call(t, x, n, (void *)e) : NULL;

	/* the ops of the gradient graph too: some ops are recorded only by rules */
	if (y && nb_backward(t, nb_sum(t, y), NULL) == NB_OK)
		for (size_t i = n; i < t->n; i++) {
			const char *name = t->node[i]->op->name;
			size_t j = 0;

			while (j < s->n_covered && strcmp(s->covered[j], name))
				j++;
			if (j == s->n_covered && j < sizeof s->covered / sizeof s->covered[0])
				s->covered[s->n_covered++] = name;
		}
	nb_tape_free(t);
}

/* The gradient check of one expression at first and second order. */
static void check_gradients(struct selftest *s, const char *op, const struct expr *e,
                            const nb_gradcheck_input *in, size_t n, unsigned long seed)
{
	nb_gradcheck_opts o = { .seed = seed };
	nb_gradcheck_report r;

	s->rep->cases++;
	if (nb_gradcheck(expr_call, (void *)e, in, n, &o, &r) != NB_OK) {
		st_fail(s, op, "the check could not run: %s", r.message);
		return;
	}
	s->rep->comparisons += r.first.all.checked + r.second.all.checked;
	if (!r.passed) {
		const nb_gradcheck_mismatch *m = r.first.n_worst ? &r.first.worst[0]
		                                 : r.second.n_worst ? &r.second.worst[0] : NULL;

		if (m)
			st_fail(s, op, "%s-order gradient check failed at input %zu %s %zu: "
			        "analytic %.10g, numeric %.10g", r.first.n_worst ? "first" : "second",
			        m->input, m->direction ? "direction" : "element", m->index,
			        m->analytic, m->numeric);
		else
			st_fail(s, op, "gradient check failed (not repeatable)");
		return;
	}
	st_ok(s, op, "gradient check, first and second order");
}

static void check_forward_reverse(struct selftest *s, const char *op, const struct expr *e,
                                  const nb_gradcheck_input *in, size_t n);

/* One case with random inputs in [lo, hi). */
static void run_case(struct selftest *s, size_t i)
{
	const struct st_case *c = &cases[i];
	struct expr e = { c->build, NULL };
	nb_gradcheck_input in[3];
	double data[3][64];  /* the largest case input has 32 elements */

	for (size_t k = 0; k < c->n; k++) {
		size_t size = nb__shape_size(c->rank[k], c->dim[k]);

		for (size_t j = 0; j < size && j < 64; j++)
			data[k][j] = c->lo + (c->hi - c->lo) * nb_rng_uniform(&s->rng);
		in[k] = (nb_gradcheck_input){ c->rank[k], c->dim[k], data[k] };
	}
	cover(s, &e, in, c->n);
	check_gradients(s, c->op, &e, in, c->n, (unsigned long)i + 1);
	check_forward_reverse(s, c->op, &e, in, c->n);
}

/* ---- Forward mode against reverse mode ------------------------------------------------- */

/* Random constants of x's shapes. */
static nb_tensor *random_like(struct selftest *s, nb_tape *t, const nb_tensor *x)
{
	double v[256];
	size_t n = x->size < 256 ? x->size : 256;

	for (size_t i = 0; i < n; i++)
		v[i] = 2.0 * nb_rng_uniform(&s->rng) - 1.0;
	return x->size <= 256 ? nb_constant(t, x->rank, x->dim, v) : NULL;
}

/* <u, J^T v> = <J u, v> for random u and v: the reverse sweep against nb_jvp(), with no
 * finite differences, to about 100 ulps of the terms' magnitude. */
static void check_forward_reverse(struct selftest *s, const char *op, const struct expr *e,
                                  const nb_gradcheck_input *in, size_t n)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x[NB_OP_MAX_ARITY], *u[NB_OP_MAX_ARITY], *g[NB_OP_MAX_ARITY], *y, *v, *ju;
	double a = 0.0, b = 0.0, scale = 0.0;

	s->rep->forward_reverse++;
	for (size_t k = 0; t && k < n; k++)
		x[k] = nb_variable(t, in[k].rank, in[k].dim, in[k].data);
	y = t ? expr_call(t, x, n, (void *)e) : NULL;
	for (size_t k = 0; y && k < n; k++)
		u[k] = random_like(s, t, x[k]);
	v = y ? random_like(s, t, y) : NULL;
	if (!v || nb_gradients(t, y, v, x, n, g) != NB_OK ||
	    !(ju = nb_jvp(t, y, x, u, n))) {
		st_fail(s, op, "forward/reverse: %s", t ? nb_tape_message(t) : "out of memory");
		nb_tape_free(t);
		return;
	}
	for (size_t k = 0; k < n; k++)
		for (size_t i = 0; i < x[k]->size; i++) {
			double term = nb_value(u[k])[i] * nb_value(g[k])[i];

			a += term;
			scale += fabs(term);
		}
	for (size_t i = 0; i < y->size; i++) {
		double term = nb_value(ju)[i] * nb_value(v)[i];

		b += term;
		scale = fmax(scale, fabs(term));
	}
	if (!(fabs(a - b) <= 100.0 * DBL_EPSILON * fmax(scale, DBL_MIN)))
		st_fail(s, op, "forward/reverse: <u, J^T v> = %.17g but <J u, v> = %.17g", a, b);
	else
		st_ok(s, op, "forward mode against reverse mode");
	nb_tape_free(t);
}

/* ---- Edge values ------------------------------------------------------------------------ */

/* Record the op at operands x on t: an edge table row, or a user op. */
static nb_tensor *edge_call(nb_tape *t, const struct st_edge *row, const nb_op_def *def,
                            nb_tensor *const *x)
{
	if (def)
		return nb_apply(t, def, x, def->arity);
	return row->unary ? row->unary(t, x[0]) : row->binary(t, x[0], x[1]);
}

/* Operand p at the edge value e, the others at 1.5 (0.5 for a target). */
static void edge_operands(nb_tape *t, int arity, int p, double e, nb_tensor **x)
{
	for (int k = 0; k < arity; k++) {
		double v = k == p ? e : k > 0 ? 0.5 : 1.5;

		x[k] = nb_variable(t, 1, (size_t[]){ 1 }, &v);
	}
}

/* At an edge value: a NaN operand gives a NaN (no op turns one into a number); a finite
 * value has gradients that are not NaN; and with nb_tape_check_finite() on, recording
 * fails exactly when the value is not finite, and the sweep exactly when a gradient is
 * not. */
static void check_edge(struct selftest *s, const char *op, const struct st_edge *row,
                       const nb_op_def *def, int arity, int p, double e)
{
	nb_tape *t = nb_tape_new(), *tc = nb_tape_new();
	nb_tensor *x[NB_OP_MAX_ARITY], *xc[NB_OP_MAX_ARITY], *g[NB_OP_MAX_ARITY], *y, *yc;
	bool finite_grads = true;
	double v;

	s->rep->edges++;
	if (!t || !tc)
		goto out;
	edge_operands(t, arity, p, e, x);
	edge_operands(tc, arity, p, e, xc);
	y = edge_call(t, row, def, x);
	if (!y) {
		st_fail(s, op, "edge value %g of operand %d: %s", e, p, nb_tape_message(t));
		goto out;
	}
	v = nb_value(y)[0];
	if (isnan(e) && !isnan(v)) {
		st_fail(s, op, "operand %d NaN gives %g, not NaN", p, v);
		goto out;
	}
	nb_tape_check_finite(tc, 1);
	yc = edge_call(tc, row, def, xc);
	if ((yc == NULL) != !isfinite(v) ||
	    (!yc && nb_tape_status(tc) != NB_ENONFINITE)) {
		st_fail(s, op, "operand %d at %g: value %g, but checking finite values %s", p, e, v,
		        yc ? "reported nothing" : nb_tape_message(tc));
		goto out;
	}
	if (!isfinite(v))
		goto ok;
	if (nb_gradients(t, y, NULL, x, (size_t)arity, g) != NB_OK) {
		st_fail(s, op, "operand %d at %g: %s", p, e, nb_tape_message(t));
		goto out;
	}
	for (int k = 0; k < arity; k++) {
		double gk = nb_value(g[k])[0];

		finite_grads &= isfinite(gk) != 0;
		if (isnan(gk)) {
			st_fail(s, op, "operand %d at %g: finite value %g, NaN gradient of operand %d",
			        p, e, v, k);
			goto out;
		}
	}
	if ((nb_backward(tc, yc, NULL) == NB_OK) != finite_grads) {
		st_fail(s, op, "operand %d at %g: gradients %s finite, but checking finite values %s",
		        p, e, finite_grads ? "are" : "are not",
		        finite_grads ? nb_tape_message(tc) : "reported nothing");
		goto out;
	}
ok:
	st_ok(s, op, "edge value");
out:
	nb_tape_free(t);
	nb_tape_free(tc);
}

static void check_edges(struct selftest *s, const char *op, const struct st_edge *row,
                        const nb_op_def *def, int arity)
{
	for (int p = 0; p < arity; p++)
		for (size_t i = 0; i < N_EDGE_VALUES; i++)
			check_edge(s, op, row, def, arity, p, edge_values[i]);
}

/* ---- Entry point ------------------------------------------------------------------------ */

/* Every op of lib/ops.def that computes something was recorded by some case. */
static void check_coverage(struct selftest *s)
{
	static const char *const ops[] = {
#define NB_OP(name) #name,
#include "ops.def"
#undef NB_OP
	};

	for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
		bool found = !strcmp(ops[k], "constant") || !strcmp(ops[k], "variable");

		for (size_t j = 0; j < s->n_covered && !found; j++)
			found = !strcmp(s->covered[j], ops[k]);
		if (!found)
			st_fail(s, ops[k], "no self-test case records this op");
	}
	s->rep->ops = sizeof ops / sizeof ops[0] - 2;
}

static int user_ops_ok(const nb_selftest_op *ops, size_t n, nb_selftest_report *rep)
{
	if (n && !ops) {
		snprintf(rep->first_failure, NB_MSG_MAX, "selftest: ops is NULL");
		return NB_ENULL;
	}
	for (size_t i = 0; i < n; i++)
		if (!ops[i].op || !ops[i].inputs || !ops[i].op->name) {
			snprintf(rep->first_failure, NB_MSG_MAX,
			         "selftest: ops[%zu] has a NULL %s", i,
			         !ops[i].op ? "op" : !ops[i].inputs ? "inputs" : "name");
			return NB_ENULL;
		} else if (ops[i].op->arity < 1 || ops[i].op->arity > NB_OP_MAX_ARITY) {
			snprintf(rep->first_failure, NB_MSG_MAX, "selftest: ops[%zu] (%s) has arity %d",
			         i, ops[i].op->name, ops[i].op->arity);
			return NB_EINVAL;
		}
	return NB_OK;
}

int nb_selftest(const nb_selftest_op *ops, size_t n, FILE *log, nb_selftest_report *report)
{
	struct selftest s = { .rep = report, .log = log };
	int st;

	if (!report)
		return NB_ENULL;
	memset(report, 0, sizeof *report);
	st = user_ops_ok(ops, n, report);
	if (st != NB_OK)
		return st;
	nb_rng_seed(&s.rng, 2026);
	for (size_t i = 0; i < N_CASES; i++)
		run_case(&s, i);
	check_coverage(&s);
	for (size_t i = 0; i < N_EDGES; i++)
		check_edges(&s, edges[i].op, &edges[i], NULL, edges[i].arity);
	for (size_t i = 0; i < n; i++) {
		struct expr e = { NULL, ops[i].op };
		size_t arity = (size_t)ops[i].op->arity;

		report->ops++;
		check_gradients(&s, ops[i].op->name, &e, ops[i].inputs, arity, 1000 + i);
		check_forward_reverse(&s, ops[i].op->name, &e, ops[i].inputs, arity);
		if (!ops[i].op->shape)
			check_edges(&s, ops[i].op->name, NULL, ops[i].op, (int)arity);
	}
	report->passed = report->failures == 0;
	return NB_OK;
}
