/* gradcheck.c -- nb_gradcheck(): reverse-mode gradients against finite differences of the
 * expression itself.
 *
 * The expression is recorded once on the analysis tape, where the gradients (and, one
 * order up, a Hessian-vector product) are taken. Each finite difference then evaluates the
 * expression again at a perturbed point: by default by calling it once more on a second
 * tape rewound to just after its inputs (so what it does in C counts, and nothing is
 * allocated once warm), or, with the replay option, by nb_set() and replay of the
 * analysis tape. While evaluating, the checker compares what was recorded with what was
 * recorded at the point checked, node by node: another graph means a C branch, another
 * constant or attribute a value that left the graph, another branch of a piecewise op a
 * kink. When the check fails, each node is checked on its own inputs, the first whose rule
 * disagrees with its kernel named.
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <xxhash.h>

#include "gradcheck_int.h"
#include "nabla_int.h"

#define DEFAULT_ATOL 1e-7
#define DEFAULT_RTOL 1e-6
#define DEFAULT_LEVELS 2
#define MAX_LEVELS 4
#define DEFAULT_DIRECTIONS 4
#define DEFAULT_MAX_ELEMENTS 4096
#define DEFAULT_SEED 1UL

/* Rounding error of a difference quotient (f(x + h) - f(x - h)) / 2h is about
 * eps |f| / h; this many times that is its estimate, generous since f's own rounding is
 * unknown and Richardson extrapolation amplifies it a little. */
#define ROUNDING_FACTOR 8.0

/* The state of one check. Flat buffers are indexed over all inputs: input k occupies
 * [off[k], off[k] + size of input k). */
struct check {
	nb_gradcheck_report *rep;
	nb_expr_fn f;
	void *ud;
	const nb_gradcheck_input *in;
	size_t n, total, biggest;
	const int *mask;
	size_t max_elements;
	int nested;          /* a node's own check, for the culprit search */
	size_t *off;
	double *base;        /* the point checked */
	double *point;       /* where the expression is evaluated */
	double *grad;        /* analytic gradient, flat */
	double *hvp;         /* analytic Hessian-vector product, flat */
	double *v;           /* the second-order vector, flat */
	double *dir;         /* a direction over one input */
	double *r;           /* the output's random weights */
	size_t out_size;
	int out_rank;
	size_t out_dim[NB_MAX_RANK];
	/* the analysis tape: expression, gradients, second-order scalar */
	nb_tape *t;
	nb_tensor **x, **g, *out, *y, *s;
	size_t mark;
	/* the evaluation tape */
	nb_tape *te;
	nb_tensor **xe;
	size_t mark_e;
	/* what the expression recorded at the point checked: two hashes per node */
	uint64_t *sig;
	size_t n_sig;
	uint64_t branch0;
	int order;           /* what evaluate() computes: 1 the objective, 2 the second order */
	size_t cur_input;    /* the input being perturbed */
	nb_rng rng;
	nb_alloc_fn alloc;
	void *aud;
};

/* ---- Memory and errors --------------------------------------------------------------- */

static void *take(struct check *c, size_t n, size_t size)
{
	size_t bytes;

	if (!nb__mul_size(n ? n : 1, size, &bytes))
		return NULL;
	return c->alloc(c->aud, NULL, 0, bytes);
}

static void give(struct check *c, void *p, size_t n, size_t size)
{
	if (p)
		c->alloc(c->aud, p, (n ? n : 1) * size, 0);
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int fail(nb_gradcheck_report *rep, int status, const char *fmt, ...)
{
	va_list ap;

	if (rep->status != NB_OK)
		return rep->status;
	rep->status = status;
	va_start(ap, fmt);
	vsnprintf(rep->message, sizeof rep->message, fmt, ap);
	va_end(ap);
	return status;
}

/* Copy tape t's error into the report; returns it (NB_OK when there is none). */
static int tape_error(struct check *c, nb_tape *t)
{
	int st = nb_tape_status(t);

	if (st != NB_OK)
		fail(c->rep, st, "%s", nb_tape_message(t));
	return c->rep->status;
}

static int no_memory(struct check *c)
{
	return fail(c->rep, NB_ENOMEM, "gradcheck: out of memory");
}

/* ---- Options and arguments ----------------------------------------------------------- */

static int option(nb_gradcheck_report *rep, const char *name, double v, double def,
                  double *out)
{
	if (!(v >= 0.0) || isinf(v))
		return fail(rep, NB_EINVAL, "gradcheck: %s is %g (must be finite and >= 0)", name, v);
	*out = v > 0.0 ? v : def;
	return NB_OK;
}

static int read_opts(struct check *c, const nb_gradcheck_opts *o)
{
	static const nb_gradcheck_opts zero;
	nb_gradcheck_report *rep = c->rep;

	if (!o)
		o = &zero;
	if (o->mode < NB_GRADCHECK_AUTO || o->mode > NB_GRADCHECK_DIRECTIONS)
		return fail(rep, NB_EINVAL, "gradcheck: unknown mode %d", o->mode);
	if (o->levels < 0 || o->levels > MAX_LEVELS)
		return fail(rep, NB_EINVAL, "gradcheck: levels is %d (0..%d allowed, 0: %d)",
		            o->levels, MAX_LEVELS, DEFAULT_LEVELS);
	rep->mode = o->mode;
	rep->replay = o->replay != 0;
	rep->levels = o->levels ? o->levels : DEFAULT_LEVELS;
	rep->directions = o->directions ? o->directions : DEFAULT_DIRECTIONS;
	if (option(rep, "step", o->step, cbrt(DBL_EPSILON), &rep->step) ||
	    option(rep, "atol", o->atol, DEFAULT_ATOL, &rep->atol) ||
	    option(rep, "rtol", o->rtol, DEFAULT_RTOL, &rep->rtol))
		return rep->status;
	c->mask = o->mask;
	c->max_elements = o->max_elements ? o->max_elements : DEFAULT_MAX_ELEMENTS;
	nb_rng_seed(&c->rng, o->seed ? o->seed : DEFAULT_SEED);
	c->alloc = o->alloc ? o->alloc : nb_default_alloc;
	c->aud = o->alloc_ud;
	return NB_OK;
}

static int check_input(nb_gradcheck_report *rep, const nb_gradcheck_input *in, size_t k)
{
	if (in->rank < 0 || in->rank > NB_MAX_RANK)
		return fail(rep, NB_EINVAL, "gradcheck: input %zu has rank %d (0..%d allowed)",
		            k, in->rank, NB_MAX_RANK);
	if (in->rank > 0 && !in->dim)
		return fail(rep, NB_ENULL, "gradcheck: input %zu has rank %d but dim is NULL",
		            k, in->rank);
	for (int i = 0; i < in->rank; i++)
		if (in->dim[i] == 0)
			return fail(rep, NB_EINVAL,
			            "gradcheck: input %zu has dim[%d] = 0 (>= 1 needed)", k, i);
	return NB_OK;
}

static int check_args(struct check *c, nb_expr_fn f, const nb_gradcheck_input *in, size_t n)
{
	if (!f)
		return fail(c->rep, NB_ENULL, "gradcheck: f is NULL");
	if (!in)
		return fail(c->rep, NB_ENULL, "gradcheck: inputs is NULL");
	if (n == 0)
		return fail(c->rep, NB_EINVAL, "gradcheck: no inputs (n is 0)");
	if (n > NB_GRADCHECK_MAX_INPUTS)
		return fail(c->rep, NB_EINVAL, "gradcheck: %zu inputs (at most %d)", n,
		            NB_GRADCHECK_MAX_INPUTS);
	for (size_t k = 0; k < n; k++)
		if (check_input(c->rep, &in[k], k))
			return c->rep->status;
	c->f = f;
	c->in = in;
	c->n = n;
	c->rep->n_inputs = n;
	for (size_t k = 0; k < n; k++)
		c->rep->checked[k] = !c->mask || c->mask[k];
	for (size_t k = 0; k < n; k++)
		if (c->rep->checked[k])
			return NB_OK;
	return fail(c->rep, NB_EINVAL, "gradcheck: the mask leaves no input to check");
}

/* ---- Setup and teardown -------------------------------------------------------------- */

static size_t input_size(const struct check *c, size_t k)
{
	return c->off[k + 1] - c->off[k];
}

static int sizes(struct check *c)
{
	c->off = take(c, c->n + 1, sizeof *c->off);
	if (!c->off)
		return no_memory(c);
	c->off[0] = 0;
	for (size_t k = 0; k < c->n; k++) {
		size_t s = nb__shape_size(c->in[k].rank, c->in[k].dim);

		if (!nb__add_size(c->off[k], s, &c->off[k + 1]))
			return fail(c->rep, NB_EINVAL, "gradcheck: the inputs have too many elements");
		c->biggest = s > c->biggest ? s : c->biggest;
	}
	c->total = c->off[c->n];
	return NB_OK;
}

/* Inputs on tape t: variables, or constants where masked out; then the mark after them. */
static int make_inputs(struct check *c, nb_tape *t, nb_tensor **x, size_t *mark)
{
	for (size_t k = 0; k < c->n; k++) {
		const nb_gradcheck_input *in = &c->in[k];

		x[k] = c->rep->checked[k] ? nb_variable(t, in->rank, in->dim, NULL)
		                          : nb_constant(t, in->rank, in->dim, NULL);
		if (x[k])
			nb_set(x[k], c->base + c->off[k], input_size(c, k));
	}
	*mark = nb_tape_mark(t);
	return tape_error(c, t);
}

static int setup(struct check *c)
{
	if (sizes(c))
		return c->rep->status;
	c->base = take(c, c->total, sizeof(double));
	c->point = take(c, c->total, sizeof(double));
	c->grad = take(c, c->total, sizeof(double));
	c->hvp = take(c, c->total, sizeof(double));
	c->v = take(c, c->total, sizeof(double));
	c->dir = take(c, c->biggest, sizeof(double));
	c->x = take(c, c->n, sizeof *c->x);
	c->g = take(c, c->n, sizeof *c->g);
	c->xe = take(c, c->n, sizeof *c->xe);
	c->t = nb_tape_new_alloc(c->alloc, c->aud);
	c->te = nb_tape_new_alloc(c->alloc, c->aud);
	if (!c->base || !c->point || !c->grad || !c->hvp || !c->v || !c->dir || !c->x || !c->g ||
	    !c->xe || !c->t || !c->te)
		return no_memory(c);
	memset(c->g, 0, c->n * sizeof *c->g);
	for (size_t k = 0; k < c->n; k++) {
		if (c->in[k].data)
			memcpy(c->base + c->off[k], c->in[k].data, input_size(c, k) * sizeof(double));
		else
			memset(c->base + c->off[k], 0, input_size(c, k) * sizeof(double));
	}
	memcpy(c->point, c->base, c->total * sizeof(double));
	if (make_inputs(c, c->t, c->x, &c->mark) || make_inputs(c, c->te, c->xe, &c->mark_e))
		return c->rep->status;
	return NB_OK;
}

static void teardown(struct check *c)
{
	nb_tape_free(c->t);
	nb_tape_free(c->te);
	give(c, c->base, c->total, sizeof(double));
	give(c, c->point, c->total, sizeof(double));
	give(c, c->grad, c->total, sizeof(double));
	give(c, c->hvp, c->total, sizeof(double));
	give(c, c->v, c->total, sizeof(double));
	give(c, c->dir, c->biggest, sizeof(double));
	give(c, c->r, c->out_size, sizeof(double));
	give(c, c->sig, c->n_sig, sizeof *c->sig);
	give(c, c->x, c->n, sizeof *c->x);
	give(c, c->g, c->n, sizeof *c->g);
	give(c, c->xe, c->n, sizeof *c->xe);
	give(c, c->off, c->n + 1, sizeof *c->off);
}

/* Uniform in [-1, 1). */
static void rng_fill(nb_rng *r, double *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = 2.0 * nb_rng_uniform(r) - 1.0;
}

/* ---- Recording the expression ---------------------------------------------------------- */

/* The expression's value reduced to a scalar: itself when it has one element, otherwise
 * sum(r ⊙ out) with the check's random r, so every element takes part with its weight. */
static nb_tensor *objective(struct check *c, nb_tape *t, nb_tensor *out)
{
	nb_tensor *r;

	if (c->out_size == 1)
		return out;
	r = nb_constant(t, c->out_rank, c->out_dim, c->r);
	return nb_sum(t, nb_mul(t, r, out));
}

/* Remember the shape of the expression's value and draw its weights. */
static int first_output(struct check *c, nb_tensor *out)
{
	c->out_rank = nb_rank(out);
	for (int i = 0; i < c->out_rank; i++)
		c->out_dim[i] = nb_dim(out, i);
	c->out_size = nb_size(out);
	c->rep->output_size = c->out_size;
	if (c->out_size == 1)
		return NB_OK;
	c->r = take(c, c->out_size, sizeof(double));
	if (!c->r)
		return no_memory(c);
	rng_fill(&c->rng, c->r, c->out_size);
	return NB_OK;
}

/* Call the expression on t with inputs x; NULL with the report's status set on error, or
 * when its value's shape is not the one it had at the point checked. */
static nb_tensor *call_expression(struct check *c, nb_tape *t, nb_tensor *const *x)
{
	char s0[NB_MSG_MAX], s1[NB_MSG_MAX];
	nb_tensor *out = c->f(t, x, c->n, c->ud);

	if (tape_error(c, t))
		return NULL;
	if (!out) {
		fail(c->rep, NB_ENULL, "gradcheck: the expression returned NULL");
		return NULL;
	}
	if (out->tape != t) {
		fail(c->rep, NB_ETAPE, "gradcheck: the expression returned a tensor of another tape");
		return NULL;
	}
	if (c->out_size && (out->rank != c->out_rank ||
	                    memcmp(out->dim, c->out_dim, (size_t)out->rank * sizeof *out->dim))) {
		fail(c->rep, NB_ESHAPE, "gradcheck: the expression's value has shape %s when input "
		     "%zu changes, %s at the point checked",
		     nb__shape_str(out->rank, out->dim, s1), c->cur_input,
		     nb__shape_str(c->out_rank, c->out_dim, s0));
		return NULL;
	}
	return out;
}

/* s = sum_k <v_k, g_k> over the checked inputs, from y's gradients g on t: its gradient is
 * the Hessian-vector product H v. */
static nb_tensor *second_scalar(struct check *c, nb_tape *t, nb_tensor *const *x,
                                nb_tensor *y, nb_tensor **g)
{
	nb_tensor *s = nb_scalar(t, 0.0);

	if (nb_gradients(t, y, NULL, x, c->n, g) != NB_OK)
		return NULL;
	for (size_t k = 0; k < c->n; k++) {
		nb_tensor *v;

		if (!c->rep->checked[k])
			continue;
		v = nb_constant(t, x[k]->rank, x[k]->dim, c->v + c->off[k]);
		s = nb_add(t, s, nb_sum(t, nb_mul(t, v, g[k])));
	}
	return s;
}

/* ---- What the expression recorded ------------------------------------------------------ */

/* A node's structure: op, inputs, shape, not its attributes. A user op is known by its
 * definition, since each tape has its own descriptor of it. */
static uint64_t structure_hash(const nb_tensor *x)
{
	uint64_t key[2 + NB_MAX_ARITY + NB_MAX_RANK] = { 0 };
	size_t k = 0;

	key[k++] = x->op->def ? (uint64_t)(uintptr_t)x->op->def : (uint64_t)(uintptr_t)x->op;
	for (int i = 0; i < x->op->arity; i++)
		key[k++] = x->in[i]->id;
	key[k++] = (uint64_t)x->rank;
	for (int i = 0; i < x->rank; i++)
		key[k++] = x->dim[i];
	return XXH3_64bits(key, k * sizeof key[0]);
}

/* What a node takes from outside the graph: a leaf's (or literal's) values, an op's
 * attributes. It changing with the inputs means a value left the graph. */
static uint64_t outside_hash(const nb_tensor *x)
{
	if (nb__is_leaf(x))
		return XXH3_64bits(x->value, x->size * sizeof *x->value);
	return nb__attr_hash(&x->attr);
}

/* The nodes the expression recorded on t after its inputs (at mark), up to its value
 * out: none when the value is an input itself. */
static size_t recorded_end(size_t mark, const nb_tensor *out)
{
	return out->id + 1 > mark ? out->id + 1 : mark;
}

/* The branches the piecewise ops among nodes [from, to) of t took. */
static uint64_t branches(nb_tape *t, size_t from, size_t to)
{
	uint64_t h = 0;

	for (size_t i = from; i < to; i++) {
		nb_tensor *x = t->node[i];

		if (!x->op->branch)
			continue;
		nb__refresh(x);
		h = h * 0x9e3779b97f4a7c15ULL ^ x->op->branch(x);
	}
	return h;
}

static void describe(const nb_tensor *x, char *buf)
{
	char s[NB_MSG_MAX];

	snprintf(buf, NB_MSG_MAX, "%s %s", x->op->name, nb__shape_str(x->rank, x->dim, s));
}

/* Remember what the expression recorded at the point checked. */
static int remember(struct check *c, nb_tape *t, size_t from, size_t to)
{
	c->n_sig = 2 * (to - from);
	c->sig = take(c, c->n_sig, sizeof *c->sig);
	if (!c->sig)
		return no_memory(c);
	for (size_t i = from; i < to; i++) {
		c->sig[2 * (i - from)] = structure_hash(t->node[i]);
		c->sig[2 * (i - from) + 1] = outside_hash(t->node[i]);
	}
	c->branch0 = branches(t, from, to);
	return NB_OK;
}

/* Compare what was recorded at a perturbed point with what was at the point checked: note
 * a changed graph or a value that left it in the report; return whether a branch of a
 * piecewise op changed. */
static bool compare_recording(struct check *c, nb_tape *t, size_t from, size_t to)
{
	nb_gradcheck_report *rep = c->rep;

	if (2 * (to - from) != c->n_sig) {
		if (!rep->control_flow)
			rep->control_flow = 1, rep->flow_input = c->cur_input;
		return false;
	}
	for (size_t i = from; i < to; i++) {
		const nb_tensor *x = t->node[i];

		if (structure_hash(x) != c->sig[2 * (i - from)]) {
			if (!rep->control_flow)
				rep->control_flow = 1, rep->flow_input = c->cur_input;
			return false;
		}
		if (outside_hash(x) != c->sig[2 * (i - from) + 1] && !rep->graph_break) {
			rep->graph_break = 1;
			rep->break_node = i - from;
			rep->break_input = c->cur_input;
			describe(x, rep->break_op);
		}
	}
	return branches(t, from, to) != c->branch0;
}

/* ---- Evaluation at c->point ------------------------------------------------------------ */

/* Record the expression again on the rewound evaluation tape and return what order asks
 * for; *kink tells whether an op's branch changed. */
static int evaluate_again(struct check *c, double *value, bool *kink)
{
	nb_tape *t = c->te;
	nb_tensor *out, *y, *g[NB_GRADCHECK_MAX_INPUTS];

	nb_tape_rewind(t, c->mark_e);
	for (size_t k = 0; k < c->n; k++)
		nb_set(c->xe[k], c->point + c->off[k], input_size(c, k));
	if (tape_error(c, t))
		return c->rep->status;
	out = call_expression(c, t, c->xe);
	if (!out)
		return c->rep->status;
	*kink = compare_recording(c, t, c->mark_e, recorded_end(c->mark_e, out));
	y = objective(c, t, out);
	if (y && c->order == 2)
		y = second_scalar(c, t, c->xe, y, g);
	if (tape_error(c, t))
		return c->rep->status;
	*value = nb_value(y)[0];
	return NB_OK;
}

/* Set the analysis tape's inputs to c->point and read its scalar of this order. */
static int evaluate_replay(struct check *c, double *value, bool *kink)
{
	for (size_t k = 0; k < c->n; k++)
		nb_set(c->x[k], c->point + c->off[k], input_size(c, k));
	*value = nb_value(c->order == 2 ? c->s : c->y)[0];
	if (tape_error(c, c->t))
		return c->rep->status;
	*kink = compare_recording(c, c->t, c->mark, recorded_end(c->mark, c->out));
	return NB_OK;
}

static int evaluate(struct check *c, double *value, bool *kink)
{
	return c->rep->replay ? evaluate_replay(c, value, kink) : evaluate_again(c, value, kink);
}

/* ---- Finite differences with an error estimate ------------------------------------------ */

/* A perturbation of input k: element i (dir NULL), or the direction dir. */
struct perturbation {
	size_t k, i;
	const double *dir;
	double h;            /* the finest step */
};

/* c->point = base + s u on input k; returns the displacement actually represented along u
 * (for an element, the rounding of x + s). */
static double displace(struct check *c, const struct perturbation *p, double s)
{
	double *pt = c->point + c->off[p->k];
	const double *b = c->base + c->off[p->k];

	if (!p->dir) {
		pt[p->i] = b[p->i] + s;
		return pt[p->i] - b[p->i];
	}
	for (size_t j = 0; j < input_size(c, p->k); j++)
		pt[j] = b[j] + s * p->dir[j];
	return s;
}

/* Back to the point checked, where the analysis tape's next nodes are recorded. */
static void restore(struct check *c, const struct perturbation *p)
{
	memcpy(c->point + c->off[p->k], c->base + c->off[p->k],
	       input_size(c, p->k) * sizeof(double));
	if (c->rep->replay)
		nb_set(c->x[p->k], c->base + c->off[p->k], input_size(c, p->k));
}

static int value_at(struct check *c, const struct perturbation *p, double s, double *f,
                    double *moved, struct nb__comparison *cmp)
{
	bool kink = false;

	*moved = displace(c, p, s);
	if (evaluate(c, f, &kink))
		return c->rep->status;
	cmp->kink |= kink;
	return NB_OK;
}

/* The difference quotient at step h: central, or one-sided (sign +1 or -1, a second-order
 * formula from f0, f(x +- h) and f(x +- 2h)). *fbig gets the largest |f| used. */
static int quotient(struct check *c, const struct perturbation *p, double h, int side,
                    double f0, double *d, double *fbig, struct nb__comparison *cmp)
{
	double f1, f2, m1, m2;

	if (side == 0) {
		if (value_at(c, p, h, &f1, &m1, cmp) || value_at(c, p, -h, &f2, &m2, cmp))
			return c->rep->status;
		*d = (f1 - f2) / (m1 - m2);
	} else {
		if (value_at(c, p, side * h, &f1, &m1, cmp) ||
		    value_at(c, p, 2.0 * side * h, &f2, &m2, cmp))
			return c->rep->status;
		*d = (-3.0 * f0 + 4.0 * f1 - f2) / (2.0 * m1);
	}
	*fbig = fmax(*fbig, fmax(fabs(f1), fabs(f2)));
	return NB_OK;
}

/* Richardson's tableau over steps 2^(L-1) h, ..., 2h, h on one side choice: the
 * extrapolated derivative and its estimated error (the last two corrections, plus
 * rounding). */
static int tableau(struct check *c, const struct perturbation *p, int side, double f0,
                   struct nb__comparison *cmp)
{
	double a[MAX_LEVELS][MAX_LEVELS] = { { 0.0 } }, fbig = fabs(f0), trunc = 0.0;
	int L = c->rep->levels;

	for (int j = 0; j < L; j++) {
		double hj = ldexp(p->h, L - 1 - j);

		if (quotient(c, p, hj, side, f0, &a[j][0], &fbig, cmp))
			return c->rep->status;
		for (int m = 1; m <= j; m++)
			a[j][m] = a[j][m - 1] + (a[j][m - 1] - a[j - 1][m - 1]) / (ldexp(1.0, 2 * m) - 1.0);
	}
	if (L > 1)
		trunc = fmax(fabs(a[L - 1][L - 1] - a[L - 1][L - 2]),
		             fabs(a[L - 1][L - 1] - a[L - 2][L - 2]));
	cmp->m.numeric = a[L - 1][L - 1];
	cmp->m.error = trunc + ROUNDING_FACTOR * DBL_EPSILON * fbig / p->h;
	return NB_OK;
}

/* The derivative along p into cmp: central differences; where some value is not finite
 * (log near 0, a step past a pole), central ones at a step 64 times finer, then one-sided
 * ones on the side where all values are. */
static int difference(struct check *c, const struct perturbation *p, double f0,
                      struct nb__comparison *cmp)
{
	static const struct { int side; double scale; } tries[] = {
		{ 0, 1.0 }, { 0, 1.0 / 64 }, { 1, 1.0 }, { -1, 1.0 },
	};
	struct perturbation q = *p;
	int st = NB_OK;

	c->cur_input = p->k;
	for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
		cmp->kink = 0;
		q.h = p->h * tries[i].scale;
		st = tableau(c, &q, tries[i].side, f0, cmp);
		if (st || (isfinite(cmp->m.numeric) && isfinite(cmp->m.error))) {
			cmp->one_sided = tries[i].side != 0;
			break;
		}
	}
	restore(c, p);
	return st;
}

/* ---- Comparisons ------------------------------------------------------------------------ */

/* The analytic values of this order, flat. */
static const double *analytic(const struct check *c)
{
	return c->order == 2 ? c->hvp : c->grad;
}

/* Compare every element of input k; returns the number of failures, or -1 on error. */
static long check_elements(struct check *c, size_t k, double f0, nb_gradcheck_result *r)
{
	const double *b = c->base + c->off[k];
	long failed = 0;

	for (size_t i = 0; i < input_size(c, k); i++) {
		struct perturbation p = { k, i, NULL, c->rep->step * fmax(1.0, fabs(b[i])) };
		struct nb__comparison cmp = { .m = { k, i, 0, analytic(c)[c->off[k] + i], NAN, 0 } };

		if (difference(c, &p, f0, &cmp) != NB_OK)
			return -1;
		failed += nb__gc_fold(c->rep, r, &cmp);
	}
	return failed;
}

/* A random unit direction over input k into c->dir. */
static void random_direction(struct check *c, size_t k)
{
	size_t s = input_size(c, k);
	double norm = 0.0;

	do {
		rng_fill(&c->rng, c->dir, s);
		norm = 0.0;
		for (size_t i = 0; i < s; i++)
			norm += c->dir[i] * c->dir[i];
	} while (norm == 0.0);
	norm = sqrt(norm);
	for (size_t i = 0; i < s; i++)
		c->dir[i] /= norm;
}

static long check_directions(struct check *c, size_t k, double f0, nb_gradcheck_result *r)
{
	const double *b = c->base + c->off[k], *a = analytic(c) + c->off[k];
	double big = 1.0;
	long failed = 0;

	for (size_t i = 0; i < input_size(c, k); i++)
		big = fmax(big, fabs(b[i]));
	for (size_t d = 0; d < c->rep->directions; d++) {
		struct perturbation p = { k, d, c->dir, c->rep->step * big };
		struct nb__comparison cmp = { .m = { k, d, 1, 0.0, NAN, 0 } };

		random_direction(c, k);
		for (size_t i = 0; i < input_size(c, k); i++)
			cmp.m.analytic += a[i] * c->dir[i];
		if (difference(c, &p, f0, &cmp) != NB_OK)
			return -1;
		failed += nb__gc_fold(c->rep, r, &cmp);
	}
	return failed;
}

/* One order: every checked input, by elements, by directions, or directions first and
 * elements where they fail (auto, for inputs too large to check element by element). */
static int compare(struct check *c, double f0, nb_gradcheck_result *r)
{
	int mode = c->rep->mode;
	size_t checked = 0;

	nb__gc_result_start(r);
	for (size_t k = 0; k < c->n; k++)
		checked += c->rep->checked[k] ? input_size(c, k) : 0;
	if (mode == NB_GRADCHECK_AUTO && checked <= c->max_elements)
		mode = NB_GRADCHECK_ELEMENTS;
	for (size_t k = 0; k < c->n; k++) {
		long failed = 0;

		if (!c->rep->checked[k])
			continue;
		if (mode != NB_GRADCHECK_ELEMENTS)
			failed = check_directions(c, k, f0, r);
		if (failed > 0 && mode == NB_GRADCHECK_AUTO)
			failed = check_elements(c, k, f0, r);
		else if (mode == NB_GRADCHECK_ELEMENTS)
			failed = check_elements(c, k, f0, r);
		if (failed < 0)
			return c->rep->status;
	}
	return NB_OK;
}

/* ---- The analysis ------------------------------------------------------------------------ */

/* Copy gradient nodes g (of the checked inputs) into buf. */
static void read_grads(struct check *c, nb_tensor *const *g, double *buf)
{
	for (size_t k = 0; k < c->n; k++) {
		if (c->rep->checked[k])
			memcpy(buf + c->off[k], nb_value(g[k]), input_size(c, k) * sizeof(double));
		else
			memset(buf + c->off[k], 0, input_size(c, k) * sizeof(double));
	}
}

/* Record the expression and its gradients on the analysis tape, and remember what it
 * recorded. */
static int analyse(struct check *c)
{
	nb_tensor *gs[NB_GRADCHECK_MAX_INPUTS];

	c->out = call_expression(c, c->t, c->x);
	if (!c->out || first_output(c, c->out))
		return c->rep->status;
	c->y = objective(c, c->t, c->out);
	if (tape_error(c, c->t) || remember(c, c->t, c->mark, recorded_end(c->mark, c->out)))
		return c->rep->status;
	if (nb_gradients(c->t, c->y, NULL, c->x, c->n, gs) != NB_OK)
		return tape_error(c, c->t);
	for (size_t k = 0; k < c->n; k++)
		c->rep->independent[k] = c->rep->checked[k] && nb__is_zero(gs[k]);
	memcpy(c->g, gs, c->n * sizeof *gs);
	read_grads(c, gs, c->grad);
	return tape_error(c, c->t);
}

/* Record again on a fresh tape at the same point and compare the gradients bit for bit: a
 * difference means the expression or a rule depends on something it should not
 * (uninitialised memory, state outside the graph). */
static int check_repeatable(struct check *c)
{
	nb_tape *t = nb_tape_new_alloc(c->alloc, c->aud);
	nb_tensor *x[NB_GRADCHECK_MAX_INPUTS], *g[NB_GRADCHECK_MAX_INPUTS], *out, *y;
	size_t mark;
	double *again = take(c, c->total, sizeof(double));

	if (!t || !again) {
		nb_tape_free(t);
		give(c, again, c->total, sizeof(double));
		return no_memory(c);
	}
	out = make_inputs(c, t, x, &mark) ? NULL : call_expression(c, t, x);
	y = out ? objective(c, t, out) : NULL;
	if (y && nb_gradients(t, y, NULL, x, c->n, g) == NB_OK) {
		read_grads(c, g, again);
		c->rep->repeatable = memcmp(again, c->grad, c->total * sizeof(double)) == 0;
	}
	tape_error(c, t);
	nb_tape_free(t);
	give(c, again, c->total, sizeof(double));
	return c->rep->status;
}

/* <u, J^T v> = <J u, v> on the analysis tape, for random u over the checked inputs and v
 * of the output's shape: reverse mode against forward mode, exact up to rounding. */
static int forward_reverse(struct check *c)
{
	nb_tensor *u[NB_GRADCHECK_MAX_INPUTS], *g[NB_GRADCHECK_MAX_INPUTS], *v, *ju;
	double *buf = take(c, c->biggest > c->out_size ? c->biggest : c->out_size, sizeof(double));
	double a = 0.0, b = 0.0, scale = 0.0;
	nb_gradcheck_report *rep = c->rep;

	if (!buf)
		return no_memory(c);
	for (size_t k = 0; k < c->n; k++) {
		if (rep->checked[k])
			rng_fill(&c->rng, buf, input_size(c, k));
		else
			memset(buf, 0, input_size(c, k) * sizeof(double));
		u[k] = nb_constant(c->t, c->x[k]->rank, c->x[k]->dim, buf);
	}
	rng_fill(&c->rng, buf, c->out_size);
	v = nb_constant(c->t, c->out_rank, c->out_dim, buf);
	give(c, buf, c->biggest > c->out_size ? c->biggest : c->out_size, sizeof(double));
	if (!v || nb_gradients(c->t, c->out, v, c->x, c->n, g) != NB_OK ||
	    !(ju = nb_jvp(c->t, c->out, c->x, u, c->n)))
		return tape_error(c, c->t);
	for (size_t k = 0; k < c->n; k++)
		for (size_t i = 0; rep->checked[k] && i < input_size(c, k); i++) {
			double term = nb_value(u[k])[i] * nb_value(g[k])[i];

			a += term;
			scale += fabs(term);
		}
	for (size_t i = 0; i < c->out_size; i++) {
		double term = nb_value(ju)[i] * nb_value(v)[i];

		b += term;
		scale = fmax(scale, fabs(term));
	}
	rep->reverse_dot = a;
	rep->forward_dot = b;
	rep->forward_reverse = fabs(a - b) <= 100.0 * DBL_EPSILON * fmax(scale, DBL_MIN);
	return tape_error(c, c->t);
}

static int second_order(struct check *c)
{
	nb_tensor *h[NB_GRADCHECK_MAX_INPUTS], *gs[NB_GRADCHECK_MAX_INPUTS];

	rng_fill(&c->rng, c->v, c->total);
	c->s = second_scalar(c, c->t, c->x, c->y, gs);
	if (!c->s || nb_gradients(c->t, c->s, NULL, c->x, c->n, h) != NB_OK)
		return tape_error(c, c->t);
	read_grads(c, h, c->hvp);
	if (tape_error(c, c->t))
		return c->rep->status;
	c->order = 2;
	c->rep->second_checked = 1;
	return compare(c, nb_value(c->s)[0], &c->rep->second);
}

/* ---- The culprit: each node on its own inputs -------------------------------------------- */

static nb_tensor *record_node(nb_tape *t, nb_tensor *const *in, size_t n, void *ud)
{
	const nb_tensor *x = ud;

	(void)n;
	if (!nb__reserve_scratch(t, x->tape->scratch_n))
		return NULL;
	return nb__record(t, x->op, in, &x->attr, x->rank, x->dim);
}

static int run_check(struct check *c);

/* Check node x's rule against its kernel at its recorded inputs, at the orders the
 * expression failed at. The node is recorded again for each difference: a rule can break
 * the graph (a constant made from a value), which only its second order would show and
 * replay would hide. */
static int check_node(struct check *c, nb_tensor *x, nb_gradcheck_report *sub)
{
	nb_gradcheck_input in[NB_MAX_ARITY];
	struct check n = { .rep = sub, .nested = 1, .alloc = c->alloc, .aud = c->aud };

	memset(sub, 0, sizeof *sub);
	for (int k = 0; k < x->op->arity; k++) {
		nb__refresh(x->in[k]);
		in[k] = (nb_gradcheck_input){ x->in[k]->rank, x->in[k]->dim, x->in[k]->value };
	}
	/* the defaults, not the caller's options: a coarse step or a tight tolerance chosen
	 * for the expression would make correct rules look wrong */
	sub->mode = NB_GRADCHECK_AUTO;
	sub->levels = DEFAULT_LEVELS;
	sub->directions = DEFAULT_DIRECTIONS;
	sub->step = cbrt(DBL_EPSILON);
	sub->atol = DEFAULT_ATOL;
	sub->rtol = DEFAULT_RTOL;
	n.max_elements = DEFAULT_MAX_ELEMENTS;
	n.rng = c->rng;
	n.ud = x;
	if (check_args(&n, record_node, in, (size_t)x->op->arity) == NB_OK)
		n.order = c->rep->first.passed ? 2 : 1;
	if (sub->status == NB_OK)
		run_check(&n);
	teardown(&n);
	return sub->status;
}

static void find_culprit(struct check *c)
{
	nb_gradcheck_report sub;

	for (size_t i = c->mark; i < recorded_end(c->mark, c->out); i++) {
		nb_tensor *x = c->t->node[i];
		const nb_gradcheck_result *r;
		char s[NB_MSG_MAX];
		size_t len;

		if (x->op->arity == 0 || check_node(c, x, &sub) != NB_OK)
			continue;
		r = !sub.first.passed ? &sub.first : sub.second_checked ? &sub.second : NULL;
		if (!r || r->passed)
			continue;
		c->rep->culprit = 1;
		c->rep->culprit_node = i - c->mark;
		c->rep->culprit_worst = r->worst[0];
		len = (size_t)snprintf(c->rep->culprit_op, NB_MSG_MAX, "%s", x->op->name);
		for (int k = 0; k < x->op->arity && len < NB_MSG_MAX; k++)
			len += (size_t)snprintf(c->rep->culprit_op + len, NB_MSG_MAX - len, "%s%s",
			                        k ? ", " : " ", nb__shape_str(x->in[k]->rank,
			                                                      x->in[k]->dim, s));
		if (len < NB_MSG_MAX)
			snprintf(c->rep->culprit_op + len, NB_MSG_MAX - len, " -> %s",
			         nb__shape_str(x->rank, x->dim, s));
		return;
	}
}

/* ---- Entry points ---------------------------------------------------------------------- */

static int run_check(struct check *c)
{
	int second = c->order != 1;

	c->order = 1;
	if (setup(c) || analyse(c))
		return c->rep->status;
	if (c->nested)
		c->rep->repeatable = c->rep->forward_reverse = 1;
	else if (check_repeatable(c) || forward_reverse(c))
		return c->rep->status;
	if (compare(c, nb_value(c->y)[0], &c->rep->first))
		return c->rep->status;
	if (second && second_order(c))
		return c->rep->status;
	return NB_OK;
}

int nb_gradcheck(nb_expr_fn f, void *ud, const nb_gradcheck_input *inputs, size_t n,
                 const nb_gradcheck_opts *opts, nb_gradcheck_report *report)
{
	struct check c = { .rep = report, .ud = ud };
	nb_gradcheck_report *rep = report;

	if (!rep)
		return NB_ENULL;
	memset(rep, 0, sizeof *rep);
	if (read_opts(&c, opts) || check_args(&c, f, inputs, n))
		return rep->status;
	c.order = opts && opts->first_order_only ? 1 : 2;
	run_check(&c);
	rep->passed = rep->status == NB_OK && rep->first.passed && rep->repeatable &&
	              rep->forward_reverse && (!rep->second_checked || rep->second.passed);
	if (rep->status == NB_OK && !rep->passed)
		find_culprit(&c);
	teardown(&c);
	return rep->status;
}
