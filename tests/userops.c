/* userops.c -- the user-defined ops of userops.h. */
#include <math.h>
#include <stdio.h>

#include "userops.h"

static void cube_forward(const nb_op_def *op, nb_tensor *const *in, const double *const *x,
                         const nb_tensor *out, double *y)
{
	(void)op;
	(void)out;
	for (size_t i = 0; i < nb_size(in[0]); i++)
		y[i] = x[0][i] * x[0][i] * x[0][i];
}

/* dx = c x^2 dy, with c = 3 (right) or 2 (wrong) in ud. */
static int cube_backward(nb_tape *t, const nb_op_def *op, nb_tensor *const *in,
                         nb_tensor *out, nb_tensor *dy, nb_tensor **grad)
{
	double c = *(const double *)op->ud;

	(void)out;
	grad[0] = nb_mul(t, dy, nb_scale(t, nb_mul(t, in[0], in[0]), c));
	return nb_tape_status(t);
}

static const double three = 3.0, two = 2.0;
const nb_op_def cube_op = {
	.name = "cube", .arity = 1, .forward = cube_forward, .backward = cube_backward,
	.ud = (void *)&three,
};
const nb_op_def cube_wrong_op = {
	.name = "cube_wrong", .arity = 1, .forward = cube_forward, .backward = cube_backward,
	.ud = (void *)&two,
};

static int outer_shape(const nb_op_def *op, nb_tensor *const *in, int *rank,
                       size_t dim[NB_MAX_RANK], char msg[NB_MSG_MAX])
{
	(void)op;
	for (int i = 0; i < 2; i++)
		if (nb_rank(in[i]) != 1) {
			snprintf(msg, NB_MSG_MAX, "input %d has rank %d, a vector is needed", i,
			         nb_rank(in[i]));
			return NB_ERANK;
		}
	*rank = 2;
	dim[0] = nb_dim(in[0], 0);
	dim[1] = nb_dim(in[1], 0);
	return NB_OK;
}

static void outer_forward(const nb_op_def *op, nb_tensor *const *in, const double *const *x,
                          const nb_tensor *out, double *y)
{
	size_t m = nb_dim(in[0], 0), n = nb_dim(in[1], 0);

	(void)op;
	(void)out;
	for (size_t i = 0; i < m; i++)
		for (size_t j = 0; j < n; j++)
			y[i * n + j] = x[0][i] * x[1][j];
}

/* da = dy b, db = dy^T a, as matrix products of a column and a row. */
static int outer_backward(nb_tape *t, const nb_op_def *op, nb_tensor *const *in,
                          nb_tensor *out, nb_tensor *dy, nb_tensor **grad)
{
	size_t m = nb_dim(in[0], 0), n = nb_dim(in[1], 0);

	(void)op;
	(void)out;
	grad[0] = nb_reshape(t, nb_matmul(t, dy, nb_reshape(t, in[1], 2, (size_t[]){ n, 1 })),
	                     1, (size_t[]){ m });
	grad[1] = nb_reshape(t, nb_matmul_t(t, dy, nb_reshape(t, in[0], 2, (size_t[]){ m, 1 }),
	                                    NB_TRANS_A),
	                     1, (size_t[]){ n });
	return nb_tape_status(t);
}

const nb_op_def outer_op = {
	.name = "outer", .arity = 2, .shape = outer_shape, .forward = outer_forward,
	.backward = outer_backward,
};

static void hypot_forward(const nb_op_def *op, nb_tensor *const *in, const double *const *x,
                          const nb_tensor *out, double *y)
{
	(void)op;
	(void)out;
	for (size_t i = 0; i < nb_size(in[0]); i++)
		y[i] = hypot(x[0][i], x[1][i]);
}

/* d/da = a / y, d/db = b / y. */
static int hypot_backward(nb_tape *t, const nb_op_def *op, nb_tensor *const *in,
                          nb_tensor *out, nb_tensor *dy, nb_tensor **grad)
{
	nb_tensor *s = nb_div(t, dy, out);

	(void)op;
	grad[0] = nb_mul(t, s, in[0]);
	grad[1] = nb_mul(t, s, in[1]);
	return nb_tape_status(t);
}

const nb_op_def hypot_op = {
	.name = "hypot", .arity = 2, .forward = hypot_forward, .backward = hypot_backward,
};

static void clip_forward(const nb_op_def *op, nb_tensor *const *in, const double *const *x,
                         const nb_tensor *out, double *y)
{
	(void)op;
	(void)out;
	for (size_t i = 0; i < nb_size(in[0]); i++)
		y[i] = x[0][i] < 0.0 ? 0.0 : x[0][i] > 1.0 ? 1.0 : x[0][i];
}

/* dx = dy where 0 < x < 1: step(x) ⊙ step(1 - x). */
static int clip_backward(nb_tape *t, const nb_op_def *op, nb_tensor *const *in,
                         nb_tensor *out, nb_tensor *dy, nb_tensor **grad)
{
	nb_tensor *inside = nb_mul(t, nb_step(t, in[0]),
	                           nb_step(t, nb_sub(t, nb_scalar(t, 1.0), in[0])));

	(void)op;
	(void)out;
	grad[0] = nb_mul(t, dy, inside);
	return nb_tape_status(t);
}

/* Each element is below, inside or above [0, 1]. */
static unsigned long long clip_branch(const nb_op_def *op, nb_tensor *const *in,
                                      const double *const *x)
{
	unsigned long long h = 0;

	(void)op;
	for (size_t i = 0; i < nb_size(in[0]); i++)
		h = h * 3 + (x[0][i] < 0.0 ? 0 : x[0][i] > 1.0 ? 2 : 1);
	return h;
}

const nb_op_def clip_op = {
	.name = "clip", .arity = 1, .forward = clip_forward, .backward = clip_backward,
	.branch = clip_branch,
};

static int silent_shape(const nb_op_def *op, nb_tensor *const *in, int *rank,
                        size_t dim[NB_MAX_RANK], char msg[NB_MSG_MAX])
{
	(void)op;
	(void)in;
	(void)rank;
	(void)dim;
	(void)msg;
	return NB_EINVAL;
}

const nb_op_def silent_shape_op = {
	.name = "silent", .arity = 1, .shape = silent_shape, .forward = cube_forward,
};

static int zero_dim_shape(const nb_op_def *op, nb_tensor *const *in, int *rank,
                          size_t dim[NB_MAX_RANK], char msg[NB_MSG_MAX])
{
	(void)op;
	(void)in;
	(void)msg;
	*rank = 1;
	dim[0] = 0;
	return NB_OK;
}

const nb_op_def zero_dim_op = {
	.name = "zerodim", .arity = 1, .shape = zero_dim_shape, .forward = cube_forward,
};

static int bad_grad_shape_backward(nb_tape *t, const nb_op_def *op, nb_tensor *const *in,
                                   nb_tensor *out, nb_tensor *dy, nb_tensor **grad)
{
	(void)op;
	(void)in;
	(void)out;
	grad[0] = nb_sum(t, dy);
	grad[0] = nb_reshape(t, grad[0], 1, (size_t[]){ 1 });
	return nb_tape_status(t);
}

const nb_op_def bad_grad_shape_op = {
	.name = "badshape", .arity = 1, .forward = cube_forward,
	.backward = bad_grad_shape_backward,
};

static int failing_backward(nb_tape *t, const nb_op_def *op, nb_tensor *const *in,
                            nb_tensor *out, nb_tensor *dy, nb_tensor **grad)
{
	(void)t;
	(void)op;
	(void)in;
	(void)out;
	(void)dy;
	(void)grad;
	return NB_EINVAL;
}

const nb_op_def failing_rule_op = {
	.name = "failing", .arity = 1, .forward = cube_forward, .backward = failing_backward,
};

static nb_tape *foreign;

static int foreign_backward(nb_tape *t, const nb_op_def *op, nb_tensor *const *in,
                            nb_tensor *out, nb_tensor *dy, nb_tensor **grad)
{
	(void)t;
	(void)op;
	(void)out;
	(void)dy;
	if (!foreign)
		foreign = nb_tape_new();
	grad[0] = nb_constant(foreign, nb_rank(in[0]), (size_t[]){ nb_dim(in[0], 0) }, NULL);
	return NB_OK;
}

const nb_op_def foreign_grad_op = {
	.name = "foreign", .arity = 1, .forward = cube_forward, .backward = foreign_backward,
};

void foreign_grad_cleanup(void)
{
	nb_tape_free(foreign);
	foreign = NULL;
}

nb_tensor *apply_unary(nb_tape *t, nb_tensor *const *x, size_t n, void *ud)
{
	(void)n;
	return nb_apply(t, (const nb_op_def *)ud, x, 1);
}

/* dx = dy ⊙ 3 x^2 with 3 x^2 frozen into a constant: right at first order, but the rule's
 * own gradient misses the dependence on x, so second derivatives are wrong. */
static int cube_frozen_backward(nb_tape *t, const nb_op_def *op, nb_tensor *const *in,
                                nb_tensor *out, nb_tensor *dy, nb_tensor **grad)
{
	size_t n = nb_size(in[0]), dim[NB_MAX_RANK];
	const double *x = nb_value(in[0]);
	double d[64];

	(void)op;
	(void)out;
	if (n > 64)
		return NB_EINVAL;
	for (int i = 0; i < nb_rank(in[0]); i++)
		dim[i] = nb_dim(in[0], i);
	for (size_t i = 0; i < n; i++)
		d[i] = 3.0 * x[i] * x[i];
	grad[0] = nb_mul(t, dy, nb_constant(t, nb_rank(in[0]), dim, d));
	return nb_tape_status(t);
}

const nb_op_def cube_frozen_op = {
	.name = "cube_frozen", .arity = 1, .forward = cube_forward,
	.backward = cube_frozen_backward,
};

static void nan_free_forward(const nb_op_def *op, nb_tensor *const *in,
                             const double *const *x, const nb_tensor *out, double *y)
{
	(void)op;
	(void)out;
	for (size_t i = 0; i < nb_size(in[0]); i++)
		y[i] = isnan(x[0][i]) ? 0.0 : x[0][i];
}

static int identity_backward(nb_tape *t, const nb_op_def *op, nb_tensor *const *in,
                             nb_tensor *out, nb_tensor *dy, nb_tensor **grad)
{
	(void)t;
	(void)op;
	(void)in;
	(void)out;
	grad[0] = dy;
	return NB_OK;
}

const nb_op_def nan_free_op = {
	.name = "nan_free", .arity = 1, .forward = nan_free_forward,
	.backward = identity_backward,
};

static void identity_forward(const nb_op_def *op, nb_tensor *const *in,
                             const double *const *x, const nb_tensor *out, double *y)
{
	(void)op;
	(void)out;
	for (size_t i = 0; i < nb_size(in[0]); i++)
		y[i] = x[0][i];
}

/* dx = dy ⊙ x / x: right wherever x != 0, NaN at 0 where the value is 0. */
static int x_over_x_backward(nb_tape *t, const nb_op_def *op, nb_tensor *const *in,
                             nb_tensor *out, nb_tensor *dy, nb_tensor **grad)
{
	(void)op;
	(void)out;
	grad[0] = nb_mul(t, dy, nb_div(t, in[0], in[0]));
	return nb_tape_status(t);
}

const nb_op_def x_over_x_op = {
	.name = "x_over_x", .arity = 1, .forward = identity_forward,
	.backward = x_over_x_backward,
};

/* dx = dy ⊙ dy: not linear in dy, so no vector-Jacobian product at all. */
static int squared_cotangent_backward(nb_tape *t, const nb_op_def *op, nb_tensor *const *in,
                                      nb_tensor *out, nb_tensor *dy, nb_tensor **grad)
{
	(void)op;
	(void)in;
	(void)out;
	grad[0] = nb_mul(t, dy, dy);
	return nb_tape_status(t);
}

const nb_op_def squared_cotangent_op = {
	.name = "squared_cotangent", .arity = 1, .forward = identity_forward,
	.backward = squared_cotangent_backward,
};
