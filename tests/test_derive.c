/* test_derive.c -- forward mode, Jacobians and Hessians (lib/derive.c): against finite
 * differences, against each other and reverse mode, against closed forms; the reuse of
 * their graphs (no allocation, correct after nb_set and after rewinds); every error. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "helpers.h"

/* Two computations of one quantity that differ by rounding only agree within about 100
 * ulps of the magnitude of the terms they sum (the sum of their absolute values). */
#define ROUNDING (100 * DBL_EPSILON)

/* Central differences: the error is about h^2 |f'''| / 6 + DBL_EPSILON |f| / h, 1e-12 +
 * 2e-10 for values of order 1 and h = 1e-6 (for the gradient's differences, h = 1e-5:
 * 2e-11 each); the tolerances leave a margin of about 20 over that. */
#define FD_STEP 1e-6
#define FD_TOL 5e-9
#define FD2_STEP 1e-5
#define FD2_TOL 1e-9

#define MAX_IN 4
#define MAX_N 64   /* elements of the concatenated inputs, or of an output */

/* ---- Helpers ------------------------------------------------------------------------- */

static size_t cat_size(nb_tensor *const *xs, size_t n)
{
	size_t N = 0;

	for (size_t i = 0; i < n; i++)
		N += nb_size(xs[i]);
	return N;
}

/* The values of the n tensors side by side. */
static void cat_values(nb_tensor *const *xs, size_t n, double *out)
{
	for (size_t i = 0; i < n; i++) {
		memcpy(out, nb_value(xs[i]), nb_size(xs[i]) * sizeof *out);
		out += nb_size(xs[i]);
	}
}

/* Set the n leaves from the values z side by side. */
static void cat_set(nb_tensor *const *xs, size_t n, const double *z)
{
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(nb_set(xs[i], z, nb_size(xs[i])), NB_OK);
		z += nb_size(xs[i]);
	}
}

/* Constants of the shapes of xs with the values u side by side. */
static void cat_constants(nb_tape *t, nb_tensor *const *xs, size_t n, const double *u,
                          nb_tensor **us)
{
	for (size_t i = 0; i < n; i++) {
		size_t dim[NB_MAX_RANK];

		for (int k = 0; k < nb_rank(xs[i]); k++)
			dim[k] = nb_dim(xs[i], k);
		us[i] = nb_constant(t, nb_rank(xs[i]), dim, u);
		u += nb_size(xs[i]);
	}
}

/* Central differences of y's values along u at the leaves' values x0 (N of them), into
 * out; the leaves are left at x0. */
static void fd_directional(const nb_tensor *y, nb_tensor *const *xs, size_t n,
                           const double *x0, const double *u, double h, double *out)
{
	size_t N = cat_size(xs, n), m = nb_size(y);
	double z[MAX_N], plus[MAX_N];

	for (size_t c = 0; c < N; c++)
		z[c] = x0[c] + h * u[c];
	cat_set(xs, n, z);
	memcpy(plus, nb_value(y), m * sizeof *plus);
	for (size_t c = 0; c < N; c++)
		z[c] = x0[c] - h * u[c];
	cat_set(xs, n, z);
	for (size_t r = 0; r < m; r++)
		out[r] = (plus[r] - nb_value(y)[r]) / (2 * h);
	cat_set(xs, n, x0);
}

/* J u for the m x N matrix J, with the magnitude of each row's terms. */
static void mat_vec(const double *J, size_t m, size_t N, const double *u, double *out,
                    double *mag)
{
	for (size_t r = 0; r < m; r++) {
		out[r] = mag[r] = 0.0;
		for (size_t c = 0; c < N; c++) {
			out[r] += J[r * N + c] * u[c];
			mag[r] += fabs(J[r * N + c] * u[c]);
		}
	}
}

static void expect_close_fd(const double *got, const double *fd, size_t n, double tol)
{
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(fabs(got[i] - fd[i]) <= tol * (1 + fabs(fd[i])),
		              "element %zu: %.17g, differences give %.17g", i, got[i], fd[i]);
}

static void expect_rounding(const double *got, const double *want, const double *mag,
                            size_t n)
{
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(fabs(got[i] - want[i]) <= ROUNDING * mag[i],
		              "element %zu: %.17g, expected %.17g (terms of magnitude %g)", i,
		              got[i], want[i], mag[i]);
}

/* ---- Expressions --------------------------------------------------------------------- */

/* An expression of up to MAX_IN inputs of the given shapes (rank 2: rows x cols). */
typedef struct expr {
	const char *name;
	size_t n;
	size_t rows[MAX_IN], cols[MAX_IN];
	nb_tensor *(*build)(nb_tape *t, nb_tensor *const *x);
} expr;

static nb_tensor *constant_2d(nb_tape *t, size_t rows, size_t cols, const double *v)
{
	return nb_constant(t, 2, (size_t[]){ rows, cols }, v);
}

/* tanh(x) ⊙ exp(x) + x / (1 + x ⊙ x) */
static nb_tensor *e_elementwise(nb_tape *t, nb_tensor *const *x)
{
	nb_tensor *a = nb_mul(t, nb_tanh(t, x[0]), nb_exp(t, x[0]));

	return nb_add(t, a, nb_div(t, x[0], nb_add(t, nb_scalar(t, 1.0), nb_mul(t, x[0], x[0]))));
}

/* sigmoid(W x + b), b broadcast over the columns */
static nb_tensor *e_layer(nb_tape *t, nb_tensor *const *x)
{
	return nb_sigmoid(t, nb_add(t, nb_matmul(t, x[0], x[1]), x[2]));
}

/* (a + c) ⊙ sigmoid(c - a) - log(exp(a) + c ⊙ c), a a column and c a row */
static nb_tensor *e_broadcast(nb_tape *t, nb_tensor *const *x)
{
	nb_tensor *a = x[0], *c = x[1];
	nb_tensor *p = nb_mul(t, nb_add(t, a, c), nb_sigmoid(t, nb_sub(t, c, a)));

	return nb_sub(t, p, nb_log(t, nb_add(t, nb_exp(t, a), nb_mul(t, c, c))));
}

/* softmax(W z) along axis 0, one distribution per column */
static nb_tensor *e_softmax(nb_tape *t, nb_tensor *const *x)
{
	return nb_softmax(t, nb_matmul(t, x[0], x[1]), 0);
}

/* The cross-entropy of softmax(W a + b) for 4 examples a, plus a quadratic cost of
 * tanh((W a)^T / 2) against constant targets: scalar. */
static nb_tensor *e_cost(nb_tape *t, nb_tensor *const *x)
{
	static const double a[8] = { 0.5, -1.0, 0.25, 2.0, -0.75, 1.5, 0.1, -0.3 };
	static const double y[12] = { 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0 };
	static const double q[12] = { 0.1, -0.2, 0.3, 0.4, 0.5, -0.6,
	                              0.7, 0.8, -0.9, 0.2, 0.1, 0.0 };
	nb_tensor *wa = nb_matmul(t, x[0], constant_2d(t, 2, 4, a));
	nb_tensor *xent = nb_softmax_cross_entropy(t, nb_add(t, wa, x[1]), constant_2d(t, 3, 4, y));
	nb_tensor *th = nb_tanh(t, nb_scale(t, nb_transpose(t, wa), 0.5));

	return nb_add(t, xent, nb_quadratic_cost(t, th, constant_2d(t, 4, 3, q)));
}

static const expr exprs[] = {
	{ "elementwise", 1, { 3 }, { 2 }, e_elementwise },
	{ "layer", 3, { 3, 4, 3 }, { 4, 2, 1 }, e_layer },
	{ "broadcast", 2, { 3, 1 }, { 1, 4 }, e_broadcast },
	{ "softmax", 2, { 4, 4 }, { 4, 3 }, e_softmax },
	{ "cost", 2, { 3, 3 }, { 2, 1 }, e_cost },
};
#define N_EXPRS (sizeof exprs / sizeof exprs[0])

/* Record expression e on t at random inputs (variables) drawn from r; y returned. */
static nb_tensor *record_expr(nb_tape *t, const expr *e, test_rng *r, nb_tensor **xs)
{
	for (size_t i = 0; i < e->n; i++) {
		double v[MAX_N];

		rng_fill(r, v, e->rows[i] * e->cols[i], -1, 1);
		xs[i] = nb_variable(t, 2, (size_t[]){ e->rows[i], e->cols[i] }, v);
	}
	return e->build(t, xs);
}

/* ---- nb_jvp ------------------------------------------------------------------------- */

/* J u against central differences of y along u, and against J u from nb_jacobian(). */
START_TEST(test_jvp_against_differences_and_jacobian)
{
	const expr *e = &exprs[_i];
	nb_tape *t = nb_tape_new();
	nb_tensor *xs[MAX_IN], *us[MAX_IN], *y, *ju;
	double x0[MAX_N], u[MAX_N], got[MAX_N], fd[MAX_N], want[MAX_N], mag[MAX_N];
	double J[MAX_N * MAX_N];
	size_t N, m;
	test_rng r;

	rng_seed(&r, 11 + (uint64_t)_i);
	y = record_expr(t, e, &r, xs);
	N = cat_size(xs, e->n);
	m = nb_size(y);
	rng_fill(&r, u, N, -1, 1);
	cat_constants(t, xs, e->n, u, us);
	ju = nb_jvp(t, y, xs, us, e->n);
	ck_assert_msg(ju != NULL, "%s: %s", e->name, nb_tape_message(t));
	ck_assert_int_eq(nb_rank(ju), nb_rank(y));
	ck_assert_uint_eq(nb_size(ju), m);
	memcpy(got, nb_value(ju), m * sizeof *got);
	cat_values(xs, e->n, x0);
	fd_directional(y, xs, e->n, x0, u, FD_STEP, fd);
	expect_close_fd(got, fd, m, FD_TOL);
	ck_assert_int_eq(nb_jacobian(t, y, xs, e->n, J), NB_OK);
	mat_vec(J, m, N, u, want, mag);
	expect_rounding(nb_value(ju), want, mag, m);
	ck_assert_int_eq(nb_tape_status(t), NB_OK);
	nb_tape_free(t);
}
END_TEST

/* <u, J^T v> = <J u, v>: reverse and forward mode agree for random u and v, with no
 * finite differences, within rounding of the terms sum_rc |v_r J_rc u_c|. */
START_TEST(test_forward_and_reverse_agree)
{
	for (uint64_t seed = 1; seed <= 8; seed++) {
		const expr *e = &exprs[_i];
		nb_tape *t = nb_tape_new();
		nb_tensor *xs[MAX_IN], *us[MAX_IN], *gs[MAX_IN], *y, *ju, *v;
		double u[MAX_N], vv[MAX_N], jtv[MAX_N], J[MAX_N * MAX_N];
		double lhs = 0.0, rhs = 0.0, mag = 0.0;
		size_t N, m;
		test_rng r;

		rng_seed(&r, 100 * seed + (uint64_t)_i);
		y = record_expr(t, e, &r, xs);
		N = cat_size(xs, e->n);
		m = nb_size(y);
		rng_fill(&r, u, N, -1, 1);
		rng_fill(&r, vv, m, -1, 1);
		cat_constants(t, xs, e->n, u, us);
		ju = nb_jvp(t, y, xs, us, e->n);
		v = nb_constant(t, nb_rank(y), (size_t[]){ nb_dim(y, 0), nb_dim(y, 1) }, vv);
		ck_assert_int_eq(nb_gradients(t, y, v, xs, e->n, gs), NB_OK);
		cat_values(gs, e->n, jtv);
		ck_assert_int_eq(nb_jacobian(t, y, xs, e->n, J), NB_OK);
		for (size_t c = 0; c < N; c++)
			lhs += u[c] * jtv[c];
		for (size_t k = 0; k < m; k++)
			rhs += nb_value(ju)[k] * vv[k];
		for (size_t k = 0; k < m; k++)
			for (size_t c = 0; c < N; c++)
				mag += fabs(vv[k] * J[k * N + c] * u[c]);
		ck_assert_msg(fabs(lhs - rhs) <= ROUNDING * mag, "%s, seed %d: %.17g vs %.17g",
		              e->name, (int)seed, lhs, rhs);
		nb_tape_free(t);
	}
}
END_TEST

/* The JVP of a JVP is a second directional derivative: against the differences of the
 * first JVP along another direction, and for a scalar, against u^T H v. */
START_TEST(test_jvp_of_jvp)
{
	const expr *e = &exprs[_i];
	nb_tape *t = nb_tape_new();
	nb_tensor *xs[MAX_IN], *us[MAX_IN], *vs[MAX_IN], *y, *ju, *jju;
	double x0[MAX_N], u[MAX_N], v[MAX_N], fd[MAX_N], got[MAX_N], H[MAX_N * MAX_N];
	size_t N, m;
	test_rng r;

	rng_seed(&r, 31 + (uint64_t)_i);
	y = record_expr(t, e, &r, xs);
	N = cat_size(xs, e->n);
	m = nb_size(y);
	rng_fill(&r, u, N, -1, 1);
	rng_fill(&r, v, N, -1, 1);
	cat_constants(t, xs, e->n, u, us);
	cat_constants(t, xs, e->n, v, vs);
	ju = nb_jvp(t, y, xs, us, e->n);
	jju = nb_jvp(t, ju, xs, vs, e->n);
	ck_assert_ptr_nonnull(jju);
	memcpy(got, nb_value(jju), m * sizeof *got);
	cat_values(xs, e->n, x0);
	fd_directional(ju, xs, e->n, x0, v, FD_STEP, fd);
	expect_close_fd(got, fd, m, FD_TOL);
	if (m == 1) {
		double uhv = 0.0, mag = 0.0;

		ck_assert_int_eq(nb_hessian(t, y, xs, e->n, H), NB_OK);
		for (size_t a = 0; a < N; a++)
			for (size_t b = 0; b < N; b++) {
				uhv += u[a] * H[a * N + b] * v[b];
				mag += fabs(u[a] * H[a * N + b] * v[b]);
			}
		ck_assert_msg(fabs(got[0] - uhv) <= ROUNDING * mag, "%.17g vs %.17g", got[0], uhv);
	}
	nb_tape_free(t);
}
END_TEST

/* y = x ⊙ x ⊙ x: J u = 3 x^2 u, and along v again 6 x u v. */
START_TEST(test_jvp_of_jvp_closed_form)
{
	static const double x0[3] = { 0.5, -2.0, 3.0 }, u[3] = { 1.0, 0.25, -2.0 };
	static const double v[3] = { -1.5, 4.0, 0.5 };
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 3 }, x0);
	nb_tensor *cu = nb_constant(t, 1, (size_t[]){ 3 }, u);
	nb_tensor *cv = nb_constant(t, 1, (size_t[]){ 3 }, v);
	nb_tensor *y = nb_mul(t, nb_mul(t, x, x), x);
	nb_tensor *ju = nb_jvp(t, y, &x, &cu, 1), *jju = nb_jvp(t, ju, &x, &cv, 1);

	for (int i = 0; i < 3; i++) {
		double d1 = 3 * x0[i] * x0[i] * u[i], d2 = 6 * x0[i] * u[i] * v[i];

		ck_assert_double_eq_tol(nb_value(ju)[i], d1, ROUNDING * fabs(d1));
		ck_assert_double_eq_tol(nb_value(jju)[i], d2, ROUNDING * fabs(d2));
	}
	nb_tape_free(t);
}
END_TEST

/* For a linear f, J u = f(u): f(X) = 2 A X - (column sums of X), broadcast over rows. */
static nb_tensor *linear(nb_tape *t, nb_tensor *a, nb_tensor *x)
{
	return nb_sub(t, nb_scale(t, nb_matmul(t, a, x), 2.0), nb_sum_axis(t, x, 0, 1));
}

START_TEST(test_jvp_of_linear_function_is_the_function)
{
	static const double A[9] = { 1.5, -2.0, 0.25, 3.0, 0.5, -1.0, 2.0, 4.0, -0.75 };
	double xv[6], uv[6], mag[6];
	nb_tape *t = nb_tape_new();
	nb_tensor *a = constant_2d(t, 3, 3, A), *x, *u, *ju, *fu;
	test_rng r;

	rng_seed(&r, 5);
	rng_fill(&r, xv, 6, -1, 1);
	rng_fill(&r, uv, 6, -1, 1);
	x = nb_variable(t, 2, (size_t[]){ 3, 2 }, xv);
	u = constant_2d(t, 3, 2, uv);
	ju = nb_jvp(t, linear(t, a, x), &x, &u, 1);
	fu = linear(t, a, u);
	for (size_t i = 0; i < 3; i++)
		for (size_t j = 0; j < 2; j++) {
			mag[i * 2 + j] = 0.0;
			for (size_t k = 0; k < 3; k++)
				mag[i * 2 + j] += 2 * fabs(A[i * 3 + k] * uv[k * 2 + j]) + fabs(uv[k * 2 + j]);
		}
	expect_rounding(nb_value(ju), nb_value(fu), mag, 6);
	nb_tape_free(t);
}
END_TEST

/* Inputs y does not depend on contribute nothing; when it depends on none, J u is a zero
 * literal of y's shape; with y itself among xs, J u is that u. */
START_TEST(test_jvp_zero_parts)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *a = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 0.5, -1.0 });
	nb_tensor *b = nb_variable(t, 2, (size_t[]){ 2, 3 }, NULL);
	nb_tensor *ua = nb_constant(t, 1, (size_t[]){ 2 }, (double[]){ 2.0, 3.0 });
	nb_tensor *ub = nb_fill(t, 2, (size_t[]){ 2, 3 }, 7.0);
	nb_tensor *y = nb_exp(t, a), *xs[2] = { a, b }, *us[2] = { ua, ub }, *z;

	z = nb_jvp(t, y, xs, us, 2);
	ck_assert_double_eq_tol(nb_value(z)[0], exp(0.5) * 2.0, ROUNDING * exp(0.5) * 2.0);
	ck_assert_double_eq_tol(nb_value(z)[1], exp(-1.0) * 3.0, ROUNDING * exp(-1.0) * 3.0);
	z = nb_jvp(t, y, &xs[1], &us[1], 1);
	ck_assert_str_eq(nb_op_name(z), "fill");
	ck_assert_int_eq(nb_rank(z), 1);
	ck_assert_uint_eq(nb_dim(z, 0), 2);
	ck_assert_double_eq(nb_value(z)[0], 0.0);
	ck_assert_double_eq(nb_value(z)[1], 0.0);
	ck_assert_ptr_eq(nb_jvp(t, a, &a, &ua, 1), ua);
	ck_assert_int_eq(nb_tape_status(t), NB_OK);
	nb_tape_free(t);
}
END_TEST

/* The same JVP twice is the same node, and the second call records nothing. */
START_TEST(test_jvp_is_hash_consed)
{
	count_alloc c = { 0 };
	nb_tape *t = nb_tape_new_alloc(count_alloc_fn, &c);
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 3 }, (double[]){ 1, 2, 3 });
	nb_tensor *u = nb_constant(t, 1, (size_t[]){ 3 }, (double[]){ 1, 0, -1 });
	nb_tensor *y = nb_softmax(t, nb_tanh(t, x), 0), *z;
	size_t n, allocs;

	z = nb_jvp(t, y, &x, &u, 1);
	n = nb_tape_size(t);
	allocs = c.allocs;
	ck_assert_ptr_eq(nb_jvp(t, y, &x, &u, 1), z);
	ck_assert_uint_eq(nb_tape_size(t), n);
	ck_assert_uint_eq(c.allocs, allocs);
	nb_tape_free(t);
}
END_TEST

/* ---- nb_jacobian: closed forms ------------------------------------------------------ */

/* y = W x: dy/dx = W, and dy_i / dW_pq = [i = p] x_q; every entry exact. */
START_TEST(test_jacobian_of_matrix_vector_product)
{
	double wv[12], xv[4], J[3 * 16];
	nb_tape *t = nb_tape_new();
	nb_tensor *w, *x, *xs[2];
	test_rng r;

	rng_seed(&r, 2);
	rng_fill(&r, wv, 12, -2, 2);
	rng_fill(&r, xv, 4, -2, 2);
	w = nb_variable(t, 2, (size_t[]){ 3, 4 }, wv);
	x = nb_variable(t, 2, (size_t[]){ 4, 1 }, xv);
	xs[0] = w;
	xs[1] = x;
	ck_assert_int_eq(nb_jacobian(t, nb_matmul(t, w, x), xs, 2, J), NB_OK);
	for (size_t i = 0; i < 3; i++) {
		for (size_t p = 0; p < 3; p++)
			for (size_t q = 0; q < 4; q++)
				ck_assert_double_eq(J[i * 16 + p * 4 + q], i == p ? xv[q] : 0.0);
		for (size_t j = 0; j < 4; j++)
			ck_assert_double_eq(J[i * 16 + 12 + j], wv[i * 4 + j]);
	}
	nb_tape_free(t);
}
END_TEST

/* Elementwise sigmoid: diagonal, sigma (1 - sigma). */
START_TEST(test_jacobian_of_sigmoid_is_diagonal)
{
	double xv[6], J[36];
	nb_tape *t = nb_tape_new();
	nb_tensor *x;
	test_rng r;

	rng_seed(&r, 3);
	rng_fill(&r, xv, 6, -3, 3);
	x = nb_variable(t, 2, (size_t[]){ 2, 3 }, xv);
	ck_assert_int_eq(nb_jacobian(t, nb_sigmoid(t, x), &x, 1, J), NB_OK);
	for (size_t i = 0; i < 6; i++)
		for (size_t j = 0; j < 6; j++) {
			double s = 1.0 / (1.0 + exp(-xv[i])), d = s * (1.0 - s);

			if (i != j)
				ck_assert_double_eq(J[i * 6 + j], 0.0);
			else
				ck_assert_double_eq_tol(J[i * 6 + j], d, 4 * DBL_EPSILON * d);
		}
	nb_tape_free(t);
}
END_TEST

/* Softmax along axis 0 of a 3 x 2 matrix: within a column diag(s) - s s^T, across columns
 * exactly zero. */
START_TEST(test_jacobian_of_softmax)
{
	double xv[6], s[6], J[36];
	nb_tape *t = nb_tape_new();
	nb_tensor *x;
	test_rng r;

	rng_seed(&r, 4);
	rng_fill(&r, xv, 6, -2, 2);
	for (size_t c = 0; c < 2; c++) {
		double sum = 0.0;

		for (size_t k = 0; k < 3; k++)
			sum += exp(xv[k * 2 + c]);
		for (size_t k = 0; k < 3; k++)
			s[k * 2 + c] = exp(xv[k * 2 + c]) / sum;
	}
	x = nb_variable(t, 2, (size_t[]){ 3, 2 }, xv);
	ck_assert_int_eq(nb_jacobian(t, nb_softmax(t, x, 0), &x, 1, J), NB_OK);
	for (size_t a = 0; a < 6; a++)
		for (size_t b = 0; b < 6; b++) {
			double want = (a == b ? s[a] : 0.0) - s[a] * s[b];

			if (a % 2 != b % 2)
				ck_assert_double_eq(J[a * 6 + b], 0.0);
			else
				ck_assert_double_eq_tol(J[a * 6 + b], want,
				                        ROUNDING * (s[a] + s[a] * s[b]));
		}
	nb_tape_free(t);
}
END_TEST

/* y itself among xs: the identity; an input twice: its block twice; a constant and an
 * intermediate node as inputs. */
START_TEST(test_jacobian_of_leaves_intermediates_and_repeats)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 0.5, -1.0 });
	nb_tensor *k = nb_constant(t, 1, (size_t[]){ 2 }, (double[]){ 3.0, 4.0 });
	nb_tensor *z = nb_exp(t, x), *y = nb_mul(t, z, k);
	nb_tensor *xs[3] = { z, k, z };
	double J[2 * 6], I[4];

	ck_assert_int_eq(nb_jacobian(t, x, &x, 1, I), NB_OK);
	ck_assert_double_eq(I[0], 1.0);
	ck_assert_double_eq(I[1], 0.0);
	ck_assert_double_eq(I[2], 0.0);
	ck_assert_double_eq(I[3], 1.0);
	ck_assert_int_eq(nb_jacobian(t, y, xs, 3, J), NB_OK);
	for (size_t i = 0; i < 2; i++)
		for (size_t j = 0; j < 2; j++) {
			ck_assert_double_eq(J[i * 6 + j], i == j ? nb_value(k)[i] : 0.0);
			ck_assert_double_eq(J[i * 6 + 2 + j], i == j ? nb_value(z)[i] : 0.0);
			ck_assert_double_eq(J[i * 6 + 4 + j], J[i * 6 + j]);
		}
	nb_tape_free(t);
}
END_TEST

/* ---- nb_hessian and nb_hvp ---------------------------------------------------------- */

/* x^T A x has Hessian A + A^T, exactly: every product is with 0 or 1. */
START_TEST(test_hessian_of_quadratic_form)
{
	static const double A[9] = { 2, -1, 0.5, 3, 4, -2, 0, 1.5, -3 };
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 2, (size_t[]){ 3, 1 }, (double[]){ 0.3, -1.2, 2.0 });
	nb_tensor *a = constant_2d(t, 3, 3, A);
	nb_tensor *y = nb_matmul(t, nb_transpose(t, x), nb_matmul(t, a, x));
	double H[9];

	ck_assert_int_eq(nb_hessian(t, y, &x, 1, H), NB_OK);
	for (size_t i = 0; i < 3; i++)
		for (size_t j = 0; j < 3; j++)
			ck_assert_double_eq(H[i * 3 + j], A[i * 3 + j] + A[j * 3 + i]);
	nb_tape_free(t);
}
END_TEST

/* sum(sigmoid(x)): diagonal, sigma'' = sigma (1 - sigma) (1 - 2 sigma). */
START_TEST(test_hessian_of_sum_of_sigmoids)
{
	double xv[4], H[16];
	nb_tape *t = nb_tape_new();
	nb_tensor *x;
	test_rng r;

	rng_seed(&r, 6);
	rng_fill(&r, xv, 4, -3, 3);
	x = nb_variable(t, 2, (size_t[]){ 2, 2 }, xv);
	ck_assert_int_eq(nb_hessian(t, nb_sum(t, nb_sigmoid(t, x)), &x, 1, H), NB_OK);
	for (size_t i = 0; i < 4; i++)
		for (size_t j = 0; j < 4; j++) {
			double s = 1.0 / (1.0 + exp(-xv[i])), d = s * (1 - s);

			if (i != j)
				ck_assert_double_eq(H[i * 4 + j], 0.0);
			else
				ck_assert_double_eq_tol(H[i * 4 + j], d * (1 - 2 * s),
				                        ROUNDING * d * (1 + 2 * s));
		}
	nb_tape_free(t);
}
END_TEST

/* H against central differences of the gradient (nb_gradients, on the same tape). */
static void expect_hessian_matches_differences(nb_tape *t, nb_tensor *y, nb_tensor *const *xs,
                                               size_t n)
{
	size_t N = cat_size(xs, n);
	nb_tensor *g[MAX_IN];
	double x0[MAX_N], e[MAX_N] = { 0 }, H[MAX_N * MAX_N], col[MAX_N];

	ck_assert_int_eq(nb_hessian(t, y, xs, n, H), NB_OK);
	ck_assert_int_eq(nb_gradients(t, y, NULL, xs, n, g), NB_OK);
	cat_values(xs, n, x0);
	for (size_t c = 0; c < N; c++) {
		double plus[MAX_N], minus[MAX_N];

		e[c] = FD2_STEP;
		for (size_t k = 0; k < N; k++)
			col[k] = x0[k] + e[k];
		cat_set(xs, n, col);
		cat_values(g, n, plus);
		for (size_t k = 0; k < N; k++)
			col[k] = x0[k] - e[k];
		cat_set(xs, n, col);
		cat_values(g, n, minus);
		e[c] = 0.0;
		for (size_t k = 0; k < N; k++)
			ck_assert_msg(fabs(H[k * N + c] - (plus[k] - minus[k]) / (2 * FD2_STEP)) <=
			              FD2_TOL * (1 + fabs(H[k * N + c])),
			              "H[%zu][%zu] = %.17g, differences %.17g", k, c, H[k * N + c],
			              (plus[k] - minus[k]) / (2 * FD2_STEP));
	}
	cat_set(xs, n, x0);
	for (size_t a = 0; a < N; a++)  /* symmetric, to rounding */
		for (size_t b = 0; b < a; b++)
			ck_assert_double_eq_tol(H[a * N + b], H[b * N + a],
			                        ROUNDING * (fabs(H[a * N + b]) + 1e-300));
}

/* log sum exp(x), whose Hessian diag(p) - p p^T is dense. */
START_TEST(test_hessian_of_log_sum_exp)
{
	double xv[5];
	nb_tape *t = nb_tape_new();
	nb_tensor *x;
	test_rng r;

	rng_seed(&r, 7);
	rng_fill(&r, xv, 5, -2, 2);
	x = nb_variable(t, 1, (size_t[]){ 5 }, xv);
	expect_hessian_matches_differences(t, nb_log(t, nb_sum(t, nb_exp(t, x))), &x, 1);
	nb_tape_free(t);
}
END_TEST

/* The cost of two inputs, with the blocks between them. */
START_TEST(test_hessian_of_cost)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *xs[MAX_IN], *y;
	test_rng r;

	rng_seed(&r, 8);
	y = record_expr(t, &exprs[4], &r, xs);
	expect_hessian_matches_differences(t, y, xs, 2);
	nb_tape_free(t);
}
END_TEST

/* nb_hvp gives H v, with H from nb_hessian. */
START_TEST(test_hvp_is_hessian_times_vector)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *xs[MAX_IN], *vs[MAX_IN], *out[MAX_IN], *y;
	double v[MAX_N], H[MAX_N * MAX_N], want[MAX_N], mag[MAX_N], got[MAX_N];
	size_t N;
	test_rng r;

	rng_seed(&r, 9);
	y = record_expr(t, &exprs[4], &r, xs);
	N = cat_size(xs, 2);
	rng_fill(&r, v, N, -1, 1);
	cat_constants(t, xs, 2, v, vs);
	ck_assert_int_eq(nb_hvp(t, y, xs, vs, 2, out), NB_OK);
	for (size_t i = 0; i < 2; i++)
		ck_assert_uint_eq(nb_size(out[i]), nb_size(xs[i]));
	cat_values(out, 2, got);
	ck_assert_int_eq(nb_hessian(t, y, xs, 2, H), NB_OK);
	mat_vec(H, N, N, v, want, mag);
	expect_rounding(got, want, mag, N);
	/* out may be vs */
	ck_assert_int_eq(nb_hvp(t, y, xs, vs, 2, vs), NB_OK);
	ck_assert_ptr_eq(vs[0], out[0]);
	ck_assert_ptr_eq(vs[1], out[1]);
	nb_tape_free(t);
}
END_TEST

/* More inputs than one sweep takes at a time (20 scalars): y = (sum a_i x_i)^2 +
 * sum c_i x_i^3 has gradient 2 s a_i + 3 c_i x_i^2 and Hessian 2 a a^T + diag(6 c_i x_i),
 * with blocks across every pair of inputs. */
START_TEST(test_many_inputs)
{
	enum { K = 20 };
	double a[K], c[K], x0[K], u[K], J[K], H[K * K], s = 0.0, ju = 0.0, mag = 0.0;
	nb_tape *t = nb_tape_new();
	nb_tensor *xs[K], *us[K], *out[K], *sum = NULL, *cubes = NULL, *y, *z;
	test_rng r;

	rng_seed(&r, 10);
	rng_fill(&r, a, K, -1, 1);
	rng_fill(&r, c, K, -1, 1);
	rng_fill(&r, x0, K, -1, 1);
	rng_fill(&r, u, K, -1, 1);
	for (size_t i = 0; i < K; i++) {
		xs[i] = nb_variable(t, 0, NULL, &x0[i]);
		us[i] = nb_constant(t, 0, NULL, &u[i]);
		sum = sum ? nb_add(t, sum, nb_scale(t, xs[i], a[i])) : nb_scale(t, xs[i], a[i]);
		z = nb_scale(t, nb_mul(t, nb_mul(t, xs[i], xs[i]), xs[i]), c[i]);
		cubes = cubes ? nb_add(t, cubes, z) : z;
		s += a[i] * x0[i];
	}
	y = nb_add(t, nb_mul(t, sum, sum), cubes);
	ck_assert_int_eq(nb_jacobian(t, y, xs, K, J), NB_OK);
	ck_assert_int_eq(nb_hessian(t, y, xs, K, H), NB_OK);
	ck_assert_int_eq(nb_hvp(t, y, xs, us, K, out), NB_OK);
	z = nb_jvp(t, y, xs, us, K);
	for (size_t i = 0; i < K; i++) {
		double g = 2 * s * a[i] + 3 * c[i] * x0[i] * x0[i], hu = 0.0, hmag = 0.0;

		ck_assert_double_eq_tol(J[i], g, ROUNDING * (2 * fabs(s * a[i]) + 3 * fabs(c[i]) * x0[i] * x0[i] + K * fabs(a[i])));
		for (size_t j = 0; j < K; j++) {
			double h = 2 * a[i] * a[j] + (i == j ? 6 * c[i] * x0[i] : 0.0);

			ck_assert_double_eq_tol(H[i * K + j], h, ROUNDING * (fabs(2 * a[i] * a[j]) + 6 * fabs(c[i] * x0[i])));
			hu += h * u[j];
			hmag += fabs(h * u[j]);
		}
		ck_assert_double_eq_tol(nb_value(out[i])[0], hu, ROUNDING * hmag);
		ju += g * u[i];
		mag += fabs(g * u[i]);
	}
	ck_assert_double_eq_tol(nb_value(z)[0], ju, ROUNDING * mag);
	nb_tape_free(t);
}
END_TEST

/* ---- Reuse -------------------------------------------------------------------------- */

/* The Jacobian (dense, m x N) of sigmoid(W x + b) with respect to W, x and b at the
 * values w, x and b (3 x 4, 4 x 1, 3 x 1): dy_i/dW_pq = [i = p] s'_i x_q, dy/dx =
 * diag(s') W, dy/db = diag(s'). Magnitudes of the terms in mag. */
static void layer_jacobian(const double *w, const double *x, const double *b, double *J,
                           double *mag)
{
	enum { N = 12 + 4 + 3 };

	memset(J, 0, 3 * N * sizeof *J);
	for (size_t i = 0; i < 3; i++) {
		double z = b[i], zmag = fabs(b[i]), s, d;

		for (size_t j = 0; j < 4; j++) {
			z += w[i * 4 + j] * x[j];
			zmag += fabs(w[i * 4 + j] * x[j]);
		}
		s = 1.0 / (1.0 + exp(-z));
		d = s * (1.0 - s);
		for (size_t q = 0; q < 4; q++) {
			J[i * N + i * 4 + q] = d * x[q];
			J[i * N + 12 + q] = d * w[i * 4 + q];
		}
		J[i * N + 16 + i] = d;
		/* d as a function of z is evaluated from a z with rounding of zmag */
		for (size_t c = 0; c < N; c++)
			mag[i * N + c] = fabs(J[i * N + c]) * (1 + zmag);
	}
}

/* A second call at new inputs finds the graph of the first: it records and allocates
 * nothing, and its values are those of the new inputs (the closed form, and bit for bit
 * those of a fresh tape). */
START_TEST(test_jacobian_reuse_allocates_nothing)
{
	enum { N = 19 };
	double w[12], x[4], b[3], J[3 * N], fresh[3 * N], want[3 * N], mag[3 * N];
	count_alloc c = { 0 };
	nb_tape *t = nb_tape_new_alloc(count_alloc_fn, &c), *f = nb_tape_new();
	nb_tensor *xs[3], *fx[3], *y;
	size_t size, allocs;
	test_rng r;

	rng_seed(&r, 12);
	rng_fill(&r, w, 12, -1, 1);
	rng_fill(&r, x, 4, -1, 1);
	rng_fill(&r, b, 3, -1, 1);
	xs[0] = nb_variable(t, 2, (size_t[]){ 3, 4 }, w);
	xs[1] = nb_variable(t, 2, (size_t[]){ 4, 1 }, x);
	xs[2] = nb_variable(t, 2, (size_t[]){ 3, 1 }, b);
	y = e_layer(t, xs);
	ck_assert_int_eq(nb_jacobian(t, y, xs, 3, J), NB_OK);
	size = nb_tape_size(t);
	allocs = c.allocs;
	for (int step = 0; step < 3; step++) {
		rng_fill(&r, x, 4, -1, 1);
		rng_fill(&r, b, 3, -1, 1);
		ck_assert_int_eq(nb_set(xs[1], x, 4), NB_OK);
		ck_assert_int_eq(nb_set(xs[2], b, 3), NB_OK);
		ck_assert_int_eq(nb_jacobian(t, y, xs, 3, J), NB_OK);
		ck_assert_uint_eq(nb_tape_size(t), size);
		ck_assert_uint_eq(c.allocs, allocs);
		layer_jacobian(w, x, b, want, mag);
		expect_rounding(J, want, mag, 3 * N);
		fx[0] = nb_variable(f, 2, (size_t[]){ 3, 4 }, w);
		fx[1] = nb_variable(f, 2, (size_t[]){ 4, 1 }, x);
		fx[2] = nb_variable(f, 2, (size_t[]){ 3, 1 }, b);
		ck_assert_int_eq(nb_jacobian(f, e_layer(f, fx), fx, 3, fresh), NB_OK);
		for (size_t k = 0; k < 3 * N; k++)
			ck_assert_double_eq(J[k], fresh[k]);
		nb_tape_reset(f);
	}
	nb_tape_free(t);
	nb_tape_free(f);
	ck_assert_uint_eq(c.frees, c.allocs);
	ck_assert_uint_eq(c.bytes_in_use, 0);
}
END_TEST

/* The same for the Hessian of the cost, and for all four calls taken in turn: each finds
 * its own graph again, none evicts another's. */
START_TEST(test_every_call_reuses_its_graph)
{
	const expr *e = &exprs[4];
	double H[MAX_N * MAX_N], fresh[MAX_N * MAX_N], J[MAX_N], v[MAX_N], x0[MAX_N];
	count_alloc c = { 0 };
	nb_tape *t = nb_tape_new_alloc(count_alloc_fn, &c), *f;
	nb_tensor *xs[MAX_IN], *fx[MAX_IN], *vs[MAX_IN], *out[MAX_IN], *y, *z = NULL;
	size_t N, size = 0, allocs = 0;
	test_rng r;

	rng_seed(&r, 13);
	y = record_expr(t, e, &r, xs);
	N = cat_size(xs, e->n);
	rng_fill(&r, v, N, -1, 1);
	cat_constants(t, xs, e->n, v, vs);
	for (int round = 0; round < 3; round++) {
		rng_fill(&r, x0, N, -1, 1);
		cat_set(xs, e->n, x0);
		ck_assert_int_eq(nb_hessian(t, y, xs, e->n, H), NB_OK);
		ck_assert_int_eq(nb_jacobian(t, y, xs, e->n, J), NB_OK);
		ck_assert_int_eq(nb_hvp(t, y, xs, vs, e->n, out), NB_OK);
		if (round == 0)
			z = nb_jvp(t, y, xs, vs, e->n);
		else
			ck_assert_ptr_eq(nb_jvp(t, y, xs, vs, e->n), z);
		if (round == 0) {
			size = nb_tape_size(t);
			allocs = c.allocs;
		}
		ck_assert_uint_eq(nb_tape_size(t), size);
		ck_assert_uint_eq(c.allocs, allocs);
		f = nb_tape_new();
		for (size_t i = 0; i < e->n; i++)
			fx[i] = nb_variable(f, 2, (size_t[]){ e->rows[i], e->cols[i] }, NULL);
		cat_set(fx, e->n, x0);
		ck_assert_int_eq(nb_hessian(f, e->build(f, fx), fx, e->n, fresh), NB_OK);
		for (size_t k = 0; k < N * N; k++)
			ck_assert_double_eq(H[k], fresh[k]);
		nb_tape_free(f);
	}
	nb_tape_free(t);
}
END_TEST

/* A rewind that drops the graph (not y) and one that drops y too, with another y
 * recorded in its place: the next call records again and gives the new values. */
START_TEST(test_calls_after_rewinds)
{
	double xv[3] = { 0.5, -1.0, 2.0 }, J[9], H[9];
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 3 }, xv), *y;
	size_t below_y = nb_tape_mark(t), above_y;

	y = nb_exp(t, x);
	above_y = nb_tape_mark(t);
	ck_assert_int_eq(nb_jacobian(t, y, &x, 1, J), NB_OK);
	ck_assert_int_eq(nb_hessian(t, nb_sum(t, y), &x, 1, H), NB_OK);
	ck_assert_int_eq(nb_tape_rewind(t, above_y), NB_OK);
	xv[1] = 0.25;
	ck_assert_int_eq(nb_set(x, xv, 3), NB_OK);
	ck_assert_int_eq(nb_jacobian(t, y, &x, 1, J), NB_OK);
	ck_assert_int_eq(nb_hessian(t, nb_sum(t, y), &x, 1, H), NB_OK);
	for (size_t i = 0; i < 3; i++)
		for (size_t j = 0; j < 3; j++) {
			ck_assert_double_eq(J[i * 3 + j], i == j ? exp(xv[i]) : 0.0);
			ck_assert_double_eq(H[i * 3 + j], i == j ? exp(xv[i]) : 0.0);
		}
	/* the new y takes the old one's place on the tape (and in memory) */
	ck_assert_int_eq(nb_tape_rewind(t, below_y), NB_OK);
	y = nb_mul(t, x, x);
	ck_assert_uint_eq(nb_tape_mark(t), above_y);
	ck_assert_int_eq(nb_jacobian(t, y, &x, 1, J), NB_OK);
	ck_assert_int_eq(nb_hessian(t, nb_sum(t, y), &x, 1, H), NB_OK);
	for (size_t i = 0; i < 3; i++)
		for (size_t j = 0; j < 3; j++) {
			ck_assert_double_eq(J[i * 3 + j], i == j ? 2 * xv[i] : 0.0);
			ck_assert_double_eq(H[i * 3 + j], i == j ? 2.0 : 0.0);
		}
	ck_assert_int_eq(nb_tape_status(t), NB_OK);
	nb_tape_free(t);
}
END_TEST

/* Their sweeps are internal: afterwards nb_grad() gives NULL, so that an optimizer never
 * takes a seed's gradient for the caller's. */
START_TEST(test_calls_leave_no_gradients)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 1, 2 });
	nb_tensor *y = nb_sum(t, nb_exp(t, x)), *g;
	nb_sgd_opts o = { .eta = 0.1 };
	double J[2], H[4];

	ck_assert_int_eq(nb_backward(t, y, NULL), NB_OK);
	ck_assert_ptr_nonnull(nb_grad(x));
	ck_assert_int_eq(nb_jacobian(t, y, &x, 1, J), NB_OK);
	ck_assert_ptr_null(nb_grad(x));
	ck_assert_int_eq(nb_sgd_update(&x, NULL, NULL, 1, &o), NB_EINVAL);
	nb_tape_clear_error(t);
	ck_assert_int_eq(nb_backward(t, y, NULL), NB_OK);
	ck_assert_int_eq(nb_hessian(t, y, &x, 1, H), NB_OK);
	ck_assert_ptr_null(nb_grad(x));
	ck_assert_int_eq(nb_backward(t, y, NULL), NB_OK);
	ck_assert_ptr_nonnull(nb_jvp(t, y, &x, &x, 1));
	ck_assert_ptr_null(nb_grad(x));
	ck_assert_int_eq(nb_backward(t, y, NULL), NB_OK);
	ck_assert_int_eq(nb_hvp(t, y, &x, &x, 1, &g), NB_OK);
	ck_assert_ptr_null(nb_grad(x));
	nb_tape_free(t);
}
END_TEST

/* ---- Errors ------------------------------------------------------------------------- */

/* The call failed with status and message, recorded nothing, and left the last sweep's
 * gradient of x alone; then the error is cleared. */
static void expect_failure(nb_tape *t, int got, int status, const char *message, size_t size,
                           const nb_tensor *x, const nb_tensor *gx)
{
	ck_assert_int_eq(got, status);
	ck_assert_int_eq(nb_tape_status(t), status);
	ck_assert_str_eq(nb_tape_message(t), message);
	ck_assert_uint_eq(nb_tape_size(t), size);
	ck_assert_ptr_eq(nb_grad(x), gx);
	nb_tape_clear_error(t);
}

/* A tape with x (2x3), a second input k (3x2), y = x ⊙ x (2x3) and c = sum(y); a swept
 * gradient; a tensor of another tape. */
struct fixture {
	nb_tape *t, *other;
	nb_tensor *x, *k, *y, *c, *gx, *alien;
	nb_tensor *xs[2], *us[2];
	size_t size;
};

static void fixture_setup(struct fixture *f)
{
	f->t = nb_tape_new();
	f->other = nb_tape_new();
	f->x = nb_variable(f->t, 2, (size_t[]){ 2, 3 }, NULL);
	f->k = nb_variable(f->t, 2, (size_t[]){ 3, 2 }, NULL);
	f->y = nb_mul(f->t, f->x, f->x);
	f->c = nb_sum(f->t, nb_matmul(f->t, f->y, f->k));
	f->alien = nb_variable(f->other, 2, (size_t[]){ 2, 3 }, NULL);
	f->xs[0] = f->x;
	f->xs[1] = f->k;
	f->us[0] = f->x;
	f->us[1] = f->k;
	ck_assert_int_eq(nb_backward(f->t, f->c, NULL), NB_OK);
	f->gx = nb_grad(f->x);
	f->size = nb_tape_size(f->t);
}

static void fixture_free(struct fixture *f)
{
	nb_tape_free(f->t);
	nb_tape_free(f->other);
}

#define FAILS(call, status, message) \
	expect_failure(f.t, (call), status, message, f.size, f.x, f.gx)
/* nb_jvp's result as a status */
#define JVP(...) (nb_jvp(__VA_ARGS__) ? NB_OK : nb_tape_status(f.t))

START_TEST(test_jvp_errors)
{
	struct fixture f;
	nb_tensor *bad[2];

	fixture_setup(&f);
	ck_assert_ptr_null(nb_jvp(NULL, f.y, f.xs, f.us, 2));
	FAILS(JVP(f.t, NULL, f.xs, f.us, 2), NB_ENULL, "jvp: y is NULL");
	FAILS(JVP(f.t, f.alien, f.xs, f.us, 2), NB_ETAPE, "jvp: y belongs to another tape");
	FAILS(JVP(f.t, f.y, NULL, f.us, 2), NB_ENULL, "jvp: xs is NULL");
	FAILS(JVP(f.t, f.y, f.xs, f.us, 0), NB_EINVAL,
	      "jvp: n is 0: no tensors to differentiate with respect to");
	bad[0] = f.x;
	bad[1] = NULL;
	FAILS(JVP(f.t, f.y, bad, f.us, 2), NB_ENULL, "jvp: xs[1] is NULL");
	bad[1] = f.alien;
	FAILS(JVP(f.t, f.y, bad, f.us, 2), NB_ETAPE, "jvp: xs[1] belongs to another tape");
	FAILS(JVP(f.t, f.y, f.xs, NULL, 2), NB_ENULL, "jvp: us is NULL");
	bad[1] = NULL;
	FAILS(JVP(f.t, f.y, f.xs, bad, 2), NB_ENULL, "jvp: us[1] is NULL");
	bad[0] = f.alien;
	FAILS(JVP(f.t, f.y, f.xs, bad, 2), NB_ETAPE, "jvp: us[0] belongs to another tape");
	bad[0] = f.x;
	bad[1] = f.y;
	FAILS(JVP(f.t, f.y, f.xs, bad, 2), NB_ESHAPE, "jvp: us[1] has shape (2x3), xs[1] has (3x2)");
	/* a tape holding an error: NULL, and the message stays */
	ck_assert_ptr_null(nb_transpose(f.t, f.c));
	ck_assert_ptr_null(nb_jvp(f.t, f.y, f.xs, f.us, 2));
	FAILS(nb_tape_status(f.t), NB_ERANK, "transpose: operand must have rank 2: ()");
	fixture_free(&f);
}
END_TEST

START_TEST(test_hvp_errors)
{
	struct fixture f;
	nb_tensor *out[2], *bad[2] = { NULL, NULL };

	fixture_setup(&f);
	ck_assert_int_eq(nb_hvp(NULL, f.c, f.xs, f.us, 2, out), NB_ENULL);
	out[0] = out[1] = f.x;
	FAILS(nb_hvp(f.t, NULL, f.xs, f.us, 2, out), NB_ENULL, "hvp: y is NULL");
	ck_assert_ptr_null(out[0]);  /* on error out is all NULL */
	ck_assert_ptr_null(out[1]);
	FAILS(nb_hvp(f.t, f.alien, f.xs, f.us, 2, out), NB_ETAPE, "hvp: y belongs to another tape");
	FAILS(nb_hvp(f.t, f.c, NULL, f.us, 2, out), NB_ENULL, "hvp: xs is NULL");
	FAILS(nb_hvp(f.t, f.c, f.xs, f.us, 0, out), NB_EINVAL,
	      "hvp: n is 0: no tensors to differentiate with respect to");
	FAILS(nb_hvp(f.t, f.c, bad, f.us, 2, out), NB_ENULL, "hvp: xs[0] is NULL");
	FAILS(nb_hvp(f.t, f.c, f.xs, NULL, 2, out), NB_ENULL, "hvp: vs is NULL");
	bad[0] = f.x;
	FAILS(nb_hvp(f.t, f.c, f.xs, bad, 2, out), NB_ENULL, "hvp: vs[1] is NULL");
	bad[1] = f.alien;
	FAILS(nb_hvp(f.t, f.c, f.xs, bad, 2, out), NB_ETAPE, "hvp: vs[1] belongs to another tape");
	bad[1] = f.x;
	FAILS(nb_hvp(f.t, f.c, f.xs, bad, 2, out), NB_ESHAPE,
	      "hvp: vs[1] has shape (2x3), xs[1] has (3x2)");
	FAILS(nb_hvp(f.t, f.y, f.xs, f.us, 2, out), NB_EINVAL,
	      "hvp: y has shape (2x3): a Hessian needs an output of one element");
	FAILS(nb_hvp(f.t, f.c, f.xs, f.us, 2, NULL), NB_ENULL, "hvp: out is NULL");
	out[0] = out[1] = f.x;
	ck_assert_ptr_null(nb_transpose(f.t, f.c));
	ck_assert_int_eq(nb_hvp(f.t, f.c, f.xs, f.us, 2, out), NB_ERANK);
	ck_assert_ptr_null(out[0]);
	FAILS(nb_tape_status(f.t), NB_ERANK, "transpose: operand must have rank 2: ()");
	fixture_free(&f);
}
END_TEST

START_TEST(test_jacobian_and_hessian_errors)
{
	struct fixture f;
	nb_tensor *bad[2] = { NULL, NULL };
	double M[12 * 12], sentinel[12 * 12];

	fixture_setup(&f);
	for (size_t i = 0; i < 12 * 12; i++)
		M[i] = sentinel[i] = -7.0;
	ck_assert_int_eq(nb_jacobian(NULL, f.y, f.xs, 2, M), NB_ENULL);
	ck_assert_int_eq(nb_hessian(NULL, f.c, f.xs, 2, M), NB_ENULL);
	FAILS(nb_jacobian(f.t, NULL, f.xs, 2, M), NB_ENULL, "jacobian: y is NULL");
	FAILS(nb_hessian(f.t, NULL, f.xs, 2, M), NB_ENULL, "hessian: y is NULL");
	FAILS(nb_jacobian(f.t, f.alien, f.xs, 2, M), NB_ETAPE, "jacobian: y belongs to another tape");
	FAILS(nb_hessian(f.t, f.alien, f.xs, 2, M), NB_ETAPE, "hessian: y belongs to another tape");
	FAILS(nb_jacobian(f.t, f.y, NULL, 2, M), NB_ENULL, "jacobian: xs is NULL");
	FAILS(nb_hessian(f.t, f.c, NULL, 2, M), NB_ENULL, "hessian: xs is NULL");
	FAILS(nb_jacobian(f.t, f.y, f.xs, 0, M), NB_EINVAL,
	      "jacobian: n is 0: no tensors to differentiate with respect to");
	FAILS(nb_hessian(f.t, f.c, f.xs, 0, M), NB_EINVAL,
	      "hessian: n is 0: no tensors to differentiate with respect to");
	FAILS(nb_jacobian(f.t, f.y, bad, 2, M), NB_ENULL, "jacobian: xs[0] is NULL");
	bad[0] = f.x;
	bad[1] = f.alien;
	FAILS(nb_hessian(f.t, f.c, bad, 2, M), NB_ETAPE, "hessian: xs[1] belongs to another tape");
	FAILS(nb_jacobian(f.t, f.y, f.xs, 2, NULL), NB_ENULL, "jacobian: J is NULL");
	FAILS(nb_hessian(f.t, f.c, f.xs, 2, NULL), NB_ENULL, "hessian: H is NULL");
	FAILS(nb_hessian(f.t, f.y, f.xs, 2, M), NB_EINVAL,
	      "hessian: y has shape (2x3): a Hessian needs an output of one element");
	ck_assert_ptr_null(nb_transpose(f.t, f.c));
	ck_assert_int_eq(nb_jacobian(f.t, f.y, f.xs, 2, M), NB_ERANK);
	ck_assert_int_eq(nb_hessian(f.t, f.c, f.xs, 2, M), NB_ERANK);
	FAILS(nb_tape_status(f.t), NB_ERANK, "transpose: operand must have rank 2: ()");
	ck_assert_mem_eq(M, sentinel, sizeof M);
	fixture_free(&f);
}
END_TEST

/* Each allocation of a first call is made to fail in turn: the call reports NB_ENOMEM
 * and records nothing; once the error is cleared, the same call succeeds with the right
 * values. */
enum call_kind { JACOBIAN, HESSIAN, JVP_CALL, HVP_CALL };

static int run_call(enum call_kind k, nb_tape *t, nb_tensor *y, nb_tensor *const *xs,
                    nb_tensor *const *us, double *out)
{
	nb_tensor *h[2], *z;

	switch (k) {
	case JACOBIAN:
		return nb_jacobian(t, y, xs, 2, out);
	case HESSIAN:
		return nb_hessian(t, nb_sum(t, y), xs, 2, out);
	case JVP_CALL:
		z = nb_jvp(t, y, xs, us, 2);
		if (z)
			memcpy(out, nb_value(z), nb_size(z) * sizeof *out);
		return nb_tape_status(t);
	case HVP_CALL:
		if (nb_hvp(t, nb_sum(t, y), xs, us, 2, h) == NB_OK)
			cat_values(h, 2, out);
		return nb_tape_status(t);
	}
	return -1;
}

/* The graph of run_call: y = tanh(W x) with W 2x3 and x 3x2, directions of their shapes,
 * and sum(y) for the Hessian and the HVP, all recorded before the call, after pad other
 * nodes, so that the call's allocations (node list, chunks, hash table) come at other
 * points of it for different pads. */
struct oom_case {
	count_alloc c;
	nb_tape *t;
	nb_tensor *y, *xs[2], *us[2];
	size_t size;
};

static void oom_setup(struct oom_case *o, size_t pad)
{
	static const double w[6] = { 1, 2, -1, 0.5, 3, -2 };
	static const double x[6] = { 0.1, -0.2, 0.3, 0.4, -0.5, 0.6 };

	memset(&o->c, 0, sizeof o->c);
	o->t = nb_tape_new_alloc(count_alloc_fn, &o->c);
	o->xs[0] = nb_variable(o->t, 2, (size_t[]){ 2, 3 }, w);
	o->xs[1] = nb_variable(o->t, 2, (size_t[]){ 3, 2 }, x);
	for (size_t i = 0; i < pad; i++)
		nb_scale(o->t, o->xs[0], 2.0 + (double)i);
	o->us[0] = nb_scale(o->t, o->xs[0], 0.5);
	o->us[1] = nb_scale(o->t, o->xs[1], -2.0);
	o->y = nb_tanh(o->t, nb_matmul(o->t, o->xs[0], o->xs[1]));
	nb_sum(o->t, o->y);
	o->size = nb_tape_size(o->t);
	ck_assert_int_eq(nb_tape_status(o->t), NB_OK);
}

/* Every allocation of the call made to fail in turn, for one pad; the failures seen. */
static size_t fail_each_allocation(enum call_kind k, size_t pad, const double *want,
                                   size_t n_out)
{
	double got[144];
	size_t failures = 0;

	for (size_t fail = 1;; fail++) {
		struct oom_case o;
		int status;

		oom_setup(&o, pad);
		o.c.fail_at = o.c.allocs + fail;
		status = run_call(k, o.t, o.y, o.xs, o.us, got);
		if (o.c.fail_at != 0) {  /* the call made fewer allocations: done */
			ck_assert_int_eq(status, NB_OK);
			ck_assert_mem_eq(got, want, n_out * sizeof *got);
			nb_tape_free(o.t);
			return failures;
		}
		failures++;
		ck_assert_msg(status == NB_ENOMEM, "pad %zu fail %zu: %s", pad, fail, nb_tape_message(o.t));
		ck_assert_uint_eq(nb_tape_size(o.t), o.size);
		nb_tape_clear_error(o.t);
		ck_assert_int_eq(run_call(k, o.t, o.y, o.xs, o.us, got), NB_OK);
		ck_assert_mem_eq(got, want, n_out * sizeof *got);
		nb_tape_free(o.t);
		ck_assert_uint_eq(o.c.bytes_in_use, 0);
	}
}

START_TEST(test_out_of_memory_records_nothing)
{
	enum call_kind k = (enum call_kind)_i;
	size_t n_out = k == JACOBIAN ? 4 * 12 : k == HESSIAN ? 12 * 12 : k == JVP_CALL ? 4 : 12;
	double want[144];
	struct oom_case o;
	size_t failures = 0;

	oom_setup(&o, 0);
	ck_assert_int_eq(run_call(k, o.t, o.y, o.xs, o.us, want), NB_OK);
	nb_tape_free(o.t);
	for (size_t pad = 0; pad < 80; pad++)
		failures += fail_each_allocation(k, pad, want, n_out);
	ck_assert_uint_ge(failures, 3);
}
END_TEST

/* A non-finite gradient found while the rows are read, with the tape checking values:
 * log's derivative 1 / x overflows at a subnormal x, whose log is finite. */
static void expect_nonfinite(nb_tape *t, const char *msg)
{
	static const char head[] = "div: produced an infinity at element 0 of node ";
	static const char tail[] = ", shape (2), in the backward pass";
	size_t n = strlen(msg);

	ck_assert_int_eq(nb_tape_status(t), NB_ENONFINITE);
	ck_assert_msg(strncmp(msg, head, strlen(head)) == 0 && n > strlen(tail) &&
	              strcmp(msg + n - strlen(tail), tail) == 0, "%s", msg);
	nb_tape_clear_error(t);
}

START_TEST(test_nonfinite_row_records_nothing)
{
	static const double tiny[2] = { 1e-310, 1.0 }, fine[2] = { 0.25, 0.5 };
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 2 }, tiny);
	nb_tensor *y = nb_log(t, x);
	double J[4];
	size_t size = nb_tape_size(t);

	nb_tape_check_finite(t, 1);
	ck_assert_int_eq(nb_tape_status(t), NB_OK);
	/* the first call's graph is dropped */
	ck_assert_int_eq(nb_jacobian(t, y, &x, 1, J), NB_ENONFINITE);
	expect_nonfinite(t, nb_tape_message(t));
	ck_assert_uint_eq(nb_tape_size(t), size);
	/* a graph an earlier call recorded stays */
	ck_assert_int_eq(nb_set(x, fine, 2), NB_OK);
	ck_assert_int_eq(nb_jacobian(t, y, &x, 1, J), NB_OK);
	size = nb_tape_size(t);
	ck_assert_int_eq(nb_set(x, tiny, 2), NB_OK);
	ck_assert_int_eq(nb_jacobian(t, y, &x, 1, J), NB_ENONFINITE);
	expect_nonfinite(t, nb_tape_message(t));
	ck_assert_uint_eq(nb_tape_size(t), size);
	ck_assert_int_eq(nb_set(x, fine, 2), NB_OK);
	ck_assert_int_eq(nb_jacobian(t, y, &x, 1, J), NB_OK);
	ck_assert_uint_eq(nb_tape_size(t), size);
	ck_assert_double_eq(J[0], 4.0);
	ck_assert_double_eq(J[1], 0.0);
	ck_assert_double_eq(J[2], 0.0);
	ck_assert_double_eq(J[3], 2.0);
	nb_tape_free(t);
}
END_TEST

static Suite *derive_suite(void)
{
	Suite *s = suite_create("derive");
	TCase *fwd = tcase_create("jvp");
	TCase *dense = tcase_create("dense");
	TCase *reuse = tcase_create("reuse");
	TCase *errors = tcase_create("errors");

	tcase_add_loop_test(fwd, test_jvp_against_differences_and_jacobian, 0, (int)N_EXPRS);
	tcase_add_loop_test(fwd, test_forward_and_reverse_agree, 0, (int)N_EXPRS);
	tcase_add_loop_test(fwd, test_jvp_of_jvp, 0, (int)N_EXPRS);
	tcase_add_test(fwd, test_jvp_of_jvp_closed_form);
	tcase_add_test(fwd, test_jvp_of_linear_function_is_the_function);
	tcase_add_test(fwd, test_jvp_zero_parts);
	tcase_add_test(fwd, test_jvp_is_hash_consed);
	tcase_add_test(dense, test_jacobian_of_matrix_vector_product);
	tcase_add_test(dense, test_jacobian_of_sigmoid_is_diagonal);
	tcase_add_test(dense, test_jacobian_of_softmax);
	tcase_add_test(dense, test_jacobian_of_leaves_intermediates_and_repeats);
	tcase_add_test(dense, test_hessian_of_quadratic_form);
	tcase_add_test(dense, test_hessian_of_sum_of_sigmoids);
	tcase_add_test(dense, test_hessian_of_log_sum_exp);
	tcase_add_test(dense, test_hessian_of_cost);
	tcase_add_test(dense, test_hvp_is_hessian_times_vector);
	tcase_add_test(dense, test_many_inputs);
	tcase_add_test(reuse, test_jacobian_reuse_allocates_nothing);
	tcase_add_test(reuse, test_every_call_reuses_its_graph);
	tcase_add_test(reuse, test_calls_after_rewinds);
	tcase_add_test(reuse, test_calls_leave_no_gradients);
	tcase_add_test(errors, test_jvp_errors);
	tcase_add_test(errors, test_hvp_errors);
	tcase_add_test(errors, test_jacobian_and_hessian_errors);
	tcase_add_loop_test(errors, test_out_of_memory_records_nothing, 0, 4);
	tcase_add_test(errors, test_nonfinite_row_records_nothing);
	suite_add_tcase(s, fwd);
	suite_add_tcase(s, dense);
	suite_add_tcase(s, reuse);
	suite_add_tcase(s, errors);
	return s;
}

int main(void)
{
	return run_suite(derive_suite());
}
