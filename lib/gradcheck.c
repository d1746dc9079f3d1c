/* gradcheck.c -- nb_gradcheck(): compare reverse-mode gradients with central differences.
 *
 * Written against the public API only, as a user would: record the expression on a fresh
 * tape, sweep backward, then perturb the variables with nb_set() and nb_tape_replay() to
 * get finite differences. The second-order check differentiates the recorded gradient
 * nodes again, which works because they are ordinary nodes on the same tape.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "nabla.h"
#include "rng.h"

/* Defaults for zero option fields. A central difference has truncation error O(h^2),
 * ~1e-12 at h = 1e-6, and roundoff ~eps/h, ~1e-10: both far below atol + rtol |numeric|,
 * while a wrong backward rule is off by O(1). */
#define DEFAULT_STEP 1e-6
#define DEFAULT_ATOL 1e-7
#define DEFAULT_RTOL 1e-6
#define DEFAULT_SEED 1UL

/* The state of one check. Buffers are indexed by flat position over all inputs: input k
 * occupies [off[k], off[k] + nb_size(x[k])). */
struct check {
	nb_gradcheck_report *rep;
	nb_tape *t;
	nb_tensor **x;     /* the variables handed to f */
	size_t n;
	size_t *off;       /* n + 1 offsets; off[n] is the total size */
	double *base;      /* the input values the check is centred on */
	double *work;      /* scratch for nb_set() */
	double *grad;      /* analytic gradient (first order, then Hessian-vector product) */
	double *again;     /* gradient of the second sweep, for the repeatability check */
	double *dir;       /* direction u (direction mode) */
	size_t biggest;    /* doubles in work */
	struct nb_rng rng;
	nb_alloc_fn alloc; /* the caller's allocator, or malloc's */
	void *ud;
};

/* ---- Memory: everything through the caller's allocator ----------------------------- */

/* n elements of size bytes, or NULL (also when n * size overflows). */
static void *take(const struct check *c, size_t n, size_t size)
{
	return size && n > SIZE_MAX / size ? NULL : c->alloc(c->ud, NULL, 0, n * size + !n);
}

static void give(const struct check *c, void *p, size_t n, size_t size)
{
	if (p)
		c->alloc(c->ud, p, n * size + !n, 0);
}

/* ---- Random numbers: the library's generator, so a check is the same on every run ---- */

/* Uniform in [-1, 1). */
static void rng_fill(struct nb_rng *r, double *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = 2.0 * nb__rng_uniform(r) - 1.0;
}

/* ---- Errors ------------------------------------------------------------------------ */

static int fail(nb_gradcheck_report *rep, int status, const char *fmt, ...)
{
	va_list ap;

	rep->status = status;
	va_start(ap, fmt);
	vsnprintf(rep->message, sizeof(rep->message), fmt, ap);
	va_end(ap);
	return status;
}

/* Copy the tape's error into the report; returns it (NB_OK when there is none). */
static int tape_error(struct check *c)
{
	int st = nb_tape_status(c->t);

	if (st != NB_OK)
		fail(c->rep, st, "%s", nb_tape_message(c->t));
	return st;
}

/* ---- Arguments and options --------------------------------------------------------- */

static int check_input(nb_gradcheck_report *rep, const nb_gradcheck_input *in, size_t k)
{
	if (in->rank < 0 || in->rank > NB_MAX_RANK)
		return fail(rep, NB_EINVAL, "gradcheck: input %zu has rank %d (0..%d allowed)",
		            k, in->rank, NB_MAX_RANK);
	if (in->rank > 0 && !in->dim)
		return fail(rep, NB_ENULL, "gradcheck: input %zu has rank %d but dim is NULL",
		            k, in->rank);
	for (int i = 0; i < in->rank; i++) {
		if (in->dim[i] == 0)
			return fail(rep, NB_EINVAL,
			            "gradcheck: input %zu has dim[%d] = 0 (>= 1 needed)", k, i);
	}
	return NB_OK;
}

/* A negative or NaN option is an error; zero takes the default. */
static int option(nb_gradcheck_report *rep, const char *name, double v, double def,
                  double *out)
{
	if (!(v >= 0.0))
		return fail(rep, NB_EINVAL, "gradcheck: %s is %g (must be >= 0)", name, v);
	*out = v > 0.0 ? v : def;
	return NB_OK;
}

/* Validate opts (NULL: all defaults) and store the values used in the report. */
static int read_opts(nb_gradcheck_report *rep, const nb_gradcheck_opts *opts)
{
	static const nb_gradcheck_opts zero;

	if (!opts)
		opts = &zero;
	if (opts->mode != NB_GRADCHECK_ELEMENTS && opts->mode != NB_GRADCHECK_DIRECTION)
		return fail(rep, NB_EINVAL, "gradcheck: unknown mode %d", opts->mode);
	rep->mode = opts->mode;
	if (option(rep, "step", opts->step, DEFAULT_STEP, &rep->step) ||
	    option(rep, "atol", opts->atol, DEFAULT_ATOL, &rep->atol) ||
	    option(rep, "rtol", opts->rtol, DEFAULT_RTOL, &rep->rtol))
		return rep->status;
	return NB_OK;
}

static int check_args(nb_expr_fn f, const nb_gradcheck_input *inputs, size_t n,
                      nb_gradcheck_report *rep)
{
	if (!f)
		return fail(rep, NB_ENULL, "gradcheck: f is NULL");
	if (!inputs)
		return fail(rep, NB_ENULL, "gradcheck: inputs is NULL");
	if (n == 0)
		return fail(rep, NB_EINVAL, "gradcheck: no inputs (n is 0)");
	for (size_t k = 0; k < n; k++)
		if (check_input(rep, &inputs[k], k))
			return rep->status;
	return NB_OK;
}

/* ---- Setup and teardown ------------------------------------------------------------ */

static size_t input_size(const nb_gradcheck_input *in)
{
	size_t s = 1;

	for (int i = 0; i < in->rank; i++)
		s *= in->dim[i];
	return s;
}

static void check_free(struct check *c)
{
	size_t total = c->off ? c->off[c->n] : 0;

	nb_tape_free(c->t);
	give(c, c->x, c->n, sizeof(*c->x));
	give(c, c->base, total, sizeof(double));
	give(c, c->work, c->biggest, sizeof(double));
	give(c, c->grad, total, sizeof(double));
	give(c, c->again, total, sizeof(double));
	give(c, c->dir, total, sizeof(double));
	give(c, c->off, c->n + 1, sizeof(*c->off));
}

/* Allocate the buffers and record one variable per input on a fresh tape. */
static int check_init(struct check *c, const nb_gradcheck_input *inputs, size_t n)
{
	size_t total = 0, biggest = 0;

	c->n = n;
	c->off = n < SIZE_MAX ? take(c, n + 1, sizeof(*c->off)) : NULL;
	c->x = take(c, n, sizeof(*c->x));
	if (!c->off || !c->x) {
		give(c, c->off, n + 1, sizeof(*c->off));
		c->off = NULL;
		return fail(c->rep, NB_ENOMEM, "gradcheck: out of memory");
	}
	memset(c->x, 0, n * sizeof(*c->x));
	for (size_t k = 0; k < n; k++) {
		size_t s = input_size(&inputs[k]);

		c->off[k] = total;
		if (s > SIZE_MAX - total) {
			c->off[n] = 0;
			return fail(c->rep, NB_EINVAL, "gradcheck: the inputs have too many elements");
		}
		total += s;
		biggest = s > biggest ? s : biggest;
	}
	c->off[n] = total;
	c->biggest = biggest;
	c->base = take(c, total, sizeof(double));
	c->work = take(c, biggest, sizeof(double));
	c->grad = take(c, total, sizeof(double));
	c->again = take(c, total, sizeof(double));
	c->dir = take(c, total, sizeof(double));
	c->t = nb_tape_new_alloc(c->alloc, c->ud);
	if (!c->base || !c->work || !c->grad || !c->again || !c->dir || !c->t)
		return fail(c->rep, NB_ENOMEM, "gradcheck: out of memory");
	for (size_t k = 0; k < n; k++)
		c->x[k] = nb_variable(c->t, inputs[k].rank, inputs[k].dim, inputs[k].data);
	if (tape_error(c))
		return c->rep->status;
	/* nb_variable() read NULL data as zeros: take the values back from the tape. */
	for (size_t k = 0; k < n; k++)
		memcpy(c->base + c->off[k], nb_value(c->x[k]), nb_size(c->x[k]) * sizeof(double));
	return NB_OK;
}

/* ---- The scalar to differentiate --------------------------------------------------- */

/* f's value itself when it has one element, otherwise L = sum(r ⊙ out) for a random
 * constant r, so that every output element takes part with its own weight. */
static nb_tensor *objective(struct check *c, nb_tensor *out)
{
	size_t dim[NB_MAX_RANK];
	int rank = nb_rank(out);
	double *r;
	nb_tensor *rt;

	c->rep->output_size = nb_size(out);
	if (c->rep->output_size == 1)
		return out;
	r = take(c, c->rep->output_size, sizeof(double));
	if (!r) {
		fail(c->rep, NB_ENOMEM, "gradcheck: out of memory");
		return NULL;
	}
	for (int i = 0; i < rank; i++)
		dim[i] = nb_dim(out, i);
	rng_fill(&c->rng, r, c->rep->output_size);
	rt = nb_constant(c->t, rank, dim, r);
	give(c, r, c->rep->output_size, sizeof(double));
	return nb_sum(c->t, nb_mul(c->t, rt, out));
}

/* Call f and reduce its value to a scalar; NULL with the report's status set on error. */
static nb_tensor *record_expression(struct check *c, nb_expr_fn f, void *ud)
{
	nb_tensor *out = f(c->t, c->x, c->n, ud);
	nb_tensor *y;

	if (tape_error(c))
		return NULL;
	if (!out) {
		fail(c->rep, NB_ENULL, "gradcheck: the expression returned NULL");
		return NULL;
	}
	y = objective(c, out);
	if (c->rep->status != NB_OK || tape_error(c))
		return NULL;
	return y;
}

/* ---- Analytic gradients ------------------------------------------------------------ */

/* Copy the gradient of every input from the last nb_backward() into buf (NULL: zero). */
static int read_grads(struct check *c, double *buf)
{
	for (size_t k = 0; k < c->n; k++) {
		nb_tensor *g = nb_grad(c->x[k]);
		size_t s = nb_size(c->x[k]);

		if (!g) {
			memset(buf + c->off[k], 0, s * sizeof(double));
			continue;
		}
		if (nb_size(g) != s) {
			char sg[NB_MSG_MAX], sx[NB_MSG_MAX];

			return fail(c->rep, NB_ESHAPE,
			            "gradcheck: gradient of input %zu has shape %s, input has %s",
			            k, nb_shape_str(g, sg), nb_shape_str(c->x[k], sx));
		}
		memcpy(buf + c->off[k], nb_value(g), s * sizeof(double));
	}
	return NB_OK;
}

/* Sweep backward from y into c->grad. */
static int backward(struct check *c, nb_tensor *y)
{
	if (nb_backward(c->t, y, NULL) != NB_OK)
		return tape_error(c);
	return read_grads(c, c->grad);
}

/* Record the expression a second time, on a fresh tape, at the same point and with the
 * same random reduction (the generator as it was before the first recording), sweep, and
 * compare the gradients bit for bit: a difference means the expression or the sweep
 * depends on something it should not (uninitialised memory, state outside the graph).
 * Hash-consing would hand a second sweep on the first tape its own nodes back, so only a
 * fresh tape can tell. */
static int check_repeatable(struct check *c, nb_expr_fn f, void *ud, const struct nb_rng *rng)
{
	nb_tape *t0 = c->t;
	nb_tensor **x0 = c->x, *y;
	struct nb_rng r0 = c->rng;
	size_t total = c->off[c->n];

	c->t = nb_tape_new_alloc(c->alloc, c->ud);
	c->x = take(c, c->n, sizeof(*c->x));
	c->rng = *rng;
	if (!c->t || !c->x)
		fail(c->rep, NB_ENOMEM, "gradcheck: out of memory");
	else
		memset(c->x, 0, c->n * sizeof(*c->x));
	for (size_t k = 0; c->x && c->t && k < c->n; k++) {
		size_t dim[NB_MAX_RANK];

		for (int i = 0; i < nb_rank(x0[k]); i++)
			dim[i] = nb_dim(x0[k], i);
		c->x[k] = nb_variable(c->t, nb_rank(x0[k]), dim, c->base + c->off[k]);
	}
	y = c->rep->status == NB_OK && !tape_error(c) ? record_expression(c, f, ud) : NULL;
	if (y && nb_backward(c->t, y, NULL) != NB_OK)
		tape_error(c);
	else if (y && read_grads(c, c->again) == NB_OK)
		c->rep->repeatable = memcmp(c->grad, c->again, total * sizeof(double)) == 0;
	nb_tape_free(c->t);
	give(c, c->x, c->n, sizeof(*c->x));
	c->t = t0;
	c->x = x0;
	c->rng = r0;
	return c->rep->status;
}

/* ---- Finite differences ------------------------------------------------------------ */

/* Set input k to base with element i replaced by v (i == SIZE_MAX: base itself). */
static int set_input(struct check *c, size_t k, size_t i, double v)
{
	size_t s = nb_size(c->x[k]);

	memcpy(c->work, c->base + c->off[k], s * sizeof(double));
	if (i < s)
		c->work[i] = v;
	return nb_set(c->x[k], c->work, s);
}

/* y's value after replaying the tape with the current leaf values. */
static int replay_value(struct check *c, nb_tensor *y, double *v)
{
	*v = NAN;  /* defined on every path, though only read after success */
	if (nb_tape_replay(c->t) != NB_OK)
		return tape_error(c);
	*v = nb_value(y)[0];
	return NB_OK;
}

/* dy/dx for element i of input k. Dividing by the perturbation actually represented,
 * xp - xm, rather than 2h removes the rounding of x + h from the error. */
static int diff_element(struct check *c, nb_tensor *y, size_t k, size_t i, double *d)
{
	double x = c->base[c->off[k] + i], h = c->rep->step;
	double xp = x + h, xm = x - h, yp, ym;

	if (set_input(c, k, i, xp) || replay_value(c, y, &yp) ||
	    set_input(c, k, i, xm) || replay_value(c, y, &ym) ||
	    set_input(c, k, SIZE_MAX, 0.0))
		return tape_error(c);
	*d = (yp - ym) / (xp - xm);
	return NB_OK;
}

/* Set every input to base + s u. */
static int set_along(struct check *c, double s)
{
	for (size_t k = 0; k < c->n; k++) {
		size_t sz = nb_size(c->x[k]);
		const double *b = c->base + c->off[k], *u = c->dir + c->off[k];

		for (size_t i = 0; i < sz; i++)
			c->work[i] = b[i] + s * u[i];
		if (nb_set(c->x[k], c->work, sz))
			return tape_error(c);
	}
	return NB_OK;
}

/* The directional derivative of y along c->dir. */
static int diff_direction(struct check *c, nb_tensor *y, double *d)
{
	double h = c->rep->step, yp, ym;

	if (set_along(c, h) || replay_value(c, y, &yp) ||
	    set_along(c, -h) || replay_value(c, y, &ym) || set_along(c, 0.0))
		return c->rep->status;
	*d = (yp - ym) / (2.0 * h);
	return NB_OK;
}

/* A random direction of unit length over all inputs together. */
static void make_direction(struct check *c)
{
	size_t total = c->off[c->n];
	double norm = 0.0;

	rng_fill(&c->rng, c->dir, total);
	for (size_t i = 0; i < total; i++)
		norm += c->dir[i] * c->dir[i];
	norm = sqrt(norm);
	for (size_t i = 0; norm > 0.0 && i < total; i++)
		c->dir[i] /= norm;
}

/* ---- Comparison -------------------------------------------------------------------- */

static double tolerance(const nb_gradcheck_report *rep, double numeric)
{
	return rep->atol + rep->rtol * fabs(numeric);
}

/* How far |a - n| exceeds the tolerance; NaN counts as infinitely far. */
static double excess(const nb_gradcheck_report *rep, double a, double n)
{
	double e = fabs(a - n) - tolerance(rep, n);

	return isnan(e) ? INFINITY : e;
}

static void result_start(nb_gradcheck_result *r)
{
	memset(r, 0, sizeof(*r));
	r->passed = 1;
}

/* Fold one comparison into r. The `!(x <= max)` tests let a NaN error stick. */
static void result_add(const nb_gradcheck_report *rep, nb_gradcheck_result *r, double a,
                       double n, size_t k, size_t i)
{
	double abs_err = fabs(a - n), big = fmax(fabs(a), fabs(n));
	double rel_err = big > 0.0 ? abs_err / big : abs_err;  /* 0 when both are 0 */

	if (!(abs_err <= tolerance(rep, n)))
		r->passed = 0;
	if (!(abs_err <= r->max_abs_err))
		r->max_abs_err = abs_err;
	if (!(rel_err <= r->max_rel_err))
		r->max_rel_err = rel_err;
	if (r->checked == 0 || excess(rep, a, n) > excess(rep, r->analytic, r->numeric)) {
		r->worst_input = k;
		r->worst_index = i;
		r->numeric = n;
		r->analytic = a;
	}
	r->checked++;
}

/* Compare c->grad with central differences of y, element by element or along c->dir. */
static int compare(struct check *c, nb_tensor *y, nb_gradcheck_result *r)
{
	double d = NAN, a = 0.0;

	result_start(r);
	if (c->rep->mode == NB_GRADCHECK_DIRECTION) {
		for (size_t j = 0; j < c->off[c->n]; j++)
			a += c->grad[j] * c->dir[j];
		if (diff_direction(c, y, &d))
			return c->rep->status;
		result_add(c->rep, r, a, d, 0, 0);
		return replay_value(c, y, &d);
	}
	for (size_t k = 0; k < c->n; k++)
		for (size_t i = 0; i < nb_size(c->x[k]); i++) {
			if (diff_element(c, y, k, i, &d))
				return c->rep->status;
			result_add(c->rep, r, c->grad[c->off[k] + i], d, k, i);
		}
	/* Leave every node at the base point, where the next nodes will be recorded. */
	return replay_value(c, y, &d);
}

/* ---- Second order ------------------------------------------------------------------ */

/* s = sum_k <v_k, g_k> for random constants v_k and the gradient nodes g_k of the last
 * sweep: its gradient is the Hessian-vector product H v. */
static nb_tensor *hvp_objective(struct check *c)
{
	nb_tensor *s = NULL;

	for (size_t k = 0; k < c->n; k++) {
		nb_tensor *g = nb_grad(c->x[k]), *v, *term;
		size_t dim[NB_MAX_RANK];
		int rank = nb_rank(c->x[k]);

		if (!g)
			continue;
		for (int i = 0; i < rank; i++)
			dim[i] = nb_dim(c->x[k], i);
		rng_fill(&c->rng, c->work, nb_size(c->x[k]));
		v = nb_constant(c->t, rank, dim, c->work);
		term = nb_sum(c->t, nb_mul(c->t, v, g));
		s = s ? nb_add(c->t, s, term) : term;
	}
	return s ? s : nb_scalar(c->t, 0.0);
}

static int second_order(struct check *c)
{
	nb_tensor *s = hvp_objective(c);

	if (tape_error(c) || backward(c, s))
		return c->rep->status;
	c->rep->second_checked = 1;
	return compare(c, s, &c->rep->second);
}

/* ---- Entry points ------------------------------------------------------------------ */

static int run(struct check *c, nb_expr_fn f, void *ud, const nb_gradcheck_input *inputs,
               size_t n, int first_order_only)
{
	struct nb_rng before;
	nb_tensor *y;

	if (check_init(c, inputs, n))
		return c->rep->status;
	before = c->rng;
	y = record_expression(c, f, ud);
	if (!y || backward(c, y) || check_repeatable(c, f, ud, &before))
		return c->rep->status;
	if (c->rep->mode == NB_GRADCHECK_DIRECTION)
		make_direction(c);
	if (compare(c, y, &c->rep->first))
		return c->rep->status;
	if (!first_order_only && second_order(c))
		return c->rep->status;
	return NB_OK;
}

int nb_gradcheck(nb_expr_fn f, void *ud, const nb_gradcheck_input *inputs, size_t n,
                 const nb_gradcheck_opts *opts, nb_gradcheck_report *report)
{
	struct check c = { .rep = report };
	nb_gradcheck_report *rep = report;

	if (!rep)
		return NB_ENULL;
	memset(rep, 0, sizeof(*rep));
	if (read_opts(rep, opts) || check_args(f, inputs, n, rep))
		return rep->status;
	nb__rng_seed(&c.rng, opts && opts->seed ? opts->seed : DEFAULT_SEED);
	c.alloc = opts && opts->alloc ? opts->alloc : nb__default_alloc;
	c.ud = opts ? opts->alloc_ud : NULL;
	run(&c, f, ud, inputs, n, opts && opts->first_order_only);
	check_free(&c);
	rep->passed = rep->status == NB_OK && rep->first.passed && rep->repeatable &&
	              (!rep->second_checked || rep->second.passed);
	return rep->status;
}

/* ---- Printing ---------------------------------------------------------------------- */

static const char *pass_fail(int passed)
{
	return passed ? "PASS" : "FAIL";
}

static void print_result(FILE *out, const char *name, const nb_gradcheck_result *r,
                         int mode)
{
	fprintf(out, "  %-13s %s  %zu checked, max abs err %.3g, max rel err %.3g\n", name,
	        pass_fail(r->passed), r->checked, r->max_abs_err, r->max_rel_err);
	if (r->checked == 0)
		return;
	if (mode == NB_GRADCHECK_DIRECTION)
		fprintf(out, "  %-13s along the random direction:", "");
	else
		fprintf(out, "  %-13s worst at input %zu element %zu:", "", r->worst_input,
		        r->worst_index);
	fprintf(out, " numeric %.12g, analytic %.12g\n", r->numeric, r->analytic);
}

void nb_gradcheck_print(FILE *out, const nb_gradcheck_report *report)
{
	const nb_gradcheck_report *r = report;

	if (!out)
		return;
	if (!r) {
		fprintf(out, "(null report)\n");
		return;
	}
	if (r->status != NB_OK) {
		fprintf(out, "gradcheck: ERROR %s (%s): %s\n", nb_status_name(r->status),
		        nb_status_text(r->status), r->message);
		return;
	}
	fprintf(out, "gradcheck: %s\n", pass_fail(r->passed));
	fprintf(out, "  mode          %s, step %g, atol %g, rtol %g\n",
	        r->mode == NB_GRADCHECK_DIRECTION ? "direction" : "elements",
	        r->step, r->atol, r->rtol);
	fprintf(out, "  output        %zu element%s%s\n", r->output_size,
	        r->output_size == 1 ? "" : "s",
	        r->output_size > 1 ? ", reduced to sum(r * f) with a random r" : "");
	print_result(out, "first order", &r->first, r->mode);
	fprintf(out, "  %-13s %s\n", "repeatable", r->repeatable ? "yes" : "NO (FAIL)");
	if (r->second_checked)
		print_result(out, "second order", &r->second, r->mode);
	else
		fprintf(out, "  %-13s skipped\n", "second order");
}
