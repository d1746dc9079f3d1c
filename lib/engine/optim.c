/* optim.c -- optimizer steps on variables, in place: SGD with momentum and weight decay,
 * and Adam. A step reads every gradient before it changes any parameter (a gradient is
 * computed from the parameters), then marks the parameters changed, as nb_set() does. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kernel.h"
#include "nabla_int.h"

/* The gradient of params[i]: grads[i], or the last sweep's. A parameter the last sweep
 * gave no gradient node has a zero gradient: *zero is set and the result is the parameter
 * itself (for its shape), so that no zero literal is recorded. NULL when there was no
 * sweep, or grads[i] is NULL. */
static nb_tensor *grad_of(nb_tensor *const *params, nb_tensor *const *grads, size_t i,
                         bool *zero)
{
	nb_tensor *p = params[i];

	*zero = false;
	if (grads)
		return grads[i];
	if (!p->tape->grads_valid)
		return NULL;
	if (p->grad_sweep == p->tape->sweep)
		return p->grad;
	*zero = true;
	return p;
}

/* Check the parameter lists of fn: n >= 1 variables of one tape, each with a gradient of
 * its shape (grads[i], or nb_grad(params[i]) when grads is NULL). Returns the tape, or
 * NULL after recording the error on it (NULL with no tape to record on). */
static nb_tape *params_ok(const char *fn, nb_tensor *const *params, nb_tensor *const *grads,
                          size_t n)
{
	nb_tape *t = params && n && params[0] ? params[0]->tape : NULL;
	char sp[NB_MSG_MAX], sg[NB_MSG_MAX];

	if (!t || t->err.status != NB_OK || !nb__writable(t, fn))
		return NULL;
	for (size_t i = 0; i < n; i++) {
		nb_tensor *p = params[i], *g;
		bool zero;

		if (!p || p->tape != t)
			return nb__fail(t, p ? NB_ETAPE : NB_ENULL, "%s: params[%zu] %s", fn, i,
			                p ? "belongs to another tape" : "is NULL");
		if (p->op != &nb__op_variable)
			return nb__fail(t, NB_EINVAL, "%s: params[%zu] is a %s node, not a variable",
			                fn, i, p->op->name);
		g = grad_of(params, grads, i, &zero);
		if (!g)
			return nb__fail(t, NB_EINVAL, "%s: params[%zu] has no gradient%s", fn, i,
			                grads ? " (grads[i] is NULL)" : ": call nb_backward() first");
		if (!nb__same_shape(g, p))
			return nb__fail(t, NB_ESHAPE, "%s: gradient of shape %s for params[%zu] of "
			                "shape %s", fn, nb__shape_str(g->rank, g->dim, sg), i,
			                nb__shape_str(p->rank, p->dim, sp));
	}
	return t;
}

/* The status to return when params gives no tape to record an error on. */
static int no_tape(nb_tensor *const *params, size_t n)
{
	if (!params || (n && !params[0]))
		return NB_ENULL;
	return n ? params[0]->tape->err.status : NB_EINVAL;
}

static bool state_ok(nb_tape *t, const char *fn, const char *what, double *const *s,
                     size_t n)
{
	if (!s) {
		nb__fail(t, NB_ENULL, "%s: %s is NULL", fn, what);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (!s[i]) {
			nb__fail(t, NB_ENULL, "%s: %s[%zu] is NULL", fn, what, i);
			return false;
		}
	return true;
}

/* Whether g's values are (part of) some parameter's memory: the gradient of w in
 * sum(w ⊙ u) is u itself, which an update of u would change under w's feet. */
static bool aliased(nb_tensor *const *params, size_t n, const nb_tensor *g)
{
	uintptr_t g0 = (uintptr_t)g->value, g1 = (uintptr_t)(g->value + g->size);

	for (size_t j = 0; j < n; j++) {
		uintptr_t p0 = (uintptr_t)params[j]->value;
		uintptr_t p1 = (uintptr_t)(params[j]->value + params[j]->size);

		if (g0 < p1 && p0 < g1)
			return true;
	}
	return false;
}

/* Bring every gradient up to date before any parameter changes, and copy the aliased
 * ones, in order, into the tape's scratch space (which grows only the first time). */
static bool gather_grads(nb_tape *t, nb_tensor *const *params, nb_tensor *const *grads,
                         size_t n)
{
	size_t need = 0, used = 0;

	for (size_t i = 0; i < n; i++) {
		bool zero;
		nb_tensor *g = grad_of(params, grads, i, &zero);

		if (zero)
			continue;
		nb__refresh(g);
		need += aliased(params, n, g) ? g->size : 0;
	}
	if (t->err.status != NB_OK || (need && !nb__reserve_scratch(t, need)))
		return false;
	for (size_t i = 0; i < n; i++) {
		bool zero;
		nb_tensor *g = grad_of(params, grads, i, &zero);

		if (zero || !aliased(params, n, g))
			continue;
		memcpy(t->scratch + used, g->value, g->size * sizeof(double));
		used += g->size;
	}
	return true;
}

/* Where update i reads its gradient: the node, its copy at *used in scratch, or NULL for
 * a zero gradient. */
static const double *grad_values(nb_tape *t, nb_tensor *const *params, nb_tensor *const *grads,
                                 size_t n, size_t i, size_t *used)
{
	bool zero;
	nb_tensor *g = grad_of(params, grads, i, &zero);

	if (zero)
		return NULL;
	if (!aliased(params, n, g))
		return g->value;
	*used += g->size;
	return t->scratch + *used - g->size;
}

/* The finite number v > 0 (>= 0 with zero_ok), or an error for fn naming the option. */
static bool positive(nb_tape *t, const char *fn, const char *name, double v, bool zero_ok)
{
	if ((v > 0.0 || (zero_ok && v == 0.0)) && isfinite(v))
		return true;
	nb__fail(t, NB_EINVAL, "%s: %s must be a finite number %s 0, not %g", fn, name,
	         zero_ok ? ">=" : ">", v);
	return false;
}

static bool fraction(nb_tape *t, const char *fn, const char *name, double v)
{
	if (v >= 0.0 && v < 1.0)
		return true;
	nb__fail(t, NB_EINVAL, "%s: %s must be in [0, 1), not %g", fn, name, v);
	return false;
}

/* weight_decay, or the n per-parameter coefficients of decay, all >= 0. */
static bool decay_ok(nb_tape *t, const char *fn, double weight_decay, const double *decay,
                     size_t n)
{
	char name[32];

	if (!decay)
		return positive(t, fn, "weight_decay", weight_decay, true);
	for (size_t i = 0; i < n; i++) {
		snprintf(name, sizeof name, "decay[%zu]", i);
		if (!positive(t, fn, name, decay[i], true))
			return false;
	}
	return true;
}

static double decay_of(double weight_decay, const double *decay, size_t i)
{
	return decay ? decay[i] : weight_decay;
}

static bool sgd_opts_ok(nb_tape *t, const nb_sgd_opts *o, size_t n)
{
	if (!o) {
		nb__fail(t, NB_ENULL, "sgd_update: options are NULL");
		return false;
	}
	return positive(t, "sgd_update", "eta", o->eta, false) &&
	       fraction(t, "sgd_update", "momentum", o->momentum) &&
	       decay_ok(t, "sgd_update", o->weight_decay, o->decay, n);
}

/* The SGD step with g = 0: only weight decay and momentum move w. */
static void sgd_zero_grad(double *w, double *v, size_t n, double eta, double mu, double decay)
{
	for (size_t i = 0; i < n; i++) {
		if (!v) {
			w[i] -= eta * (decay * w[i]);
			continue;
		}
		v[i] = mu * v[i] - eta * (decay * w[i]);
		w[i] += v[i];
	}
}

int nb_sgd_update(nb_tensor *const *params, nb_tensor *const *grads, double *const *velocity,
                  size_t n, const nb_sgd_opts *o)
{
	nb_tape *t = params_ok("sgd_update", params, grads, n);
	size_t used = 0;

	if (!t)
		return no_tape(params, n);
	if (!sgd_opts_ok(t, o, n) ||
	    (o->momentum > 0.0 && !state_ok(t, "sgd_update", "velocity", velocity, n)) ||
	    !gather_grads(t, params, grads, n))
		return t->err.status;
	for (size_t i = 0; i < n; i++) {
		const double *g = grad_values(t, params, grads, n, i, &used);

		double *v = o->momentum > 0.0 ? velocity[i] : NULL;
		double decay = decay_of(o->weight_decay, o->decay, i);

		if (g)
			nb__sgd_update(params[i]->value, v, g, params[i]->size, o->eta, o->momentum,
			               decay);
		else
			sgd_zero_grad(params[i]->value, v, params[i]->size, o->eta, o->momentum, decay);
		nb__leaf_changed(params[i]);
	}
	return NB_OK;
}

/* One parameter's Adam step (Kingma and Ba, algorithm 1, with L2 weight decay added to the
 * gradient as PyTorch's Adam does), with the bias corrections c1 = 1 - beta1^k and
 * c2 = 1 - beta2^k of step k. */
static void adam_one(double *w, double *m, double *v, const double *g, size_t size,
                     const nb_adam_opts *o, double decay, double c1, double c2)
{
	for (size_t i = 0; i < size; i++) {
		double gi = (g ? g[i] : 0.0) + decay * w[i];  /* g NULL: a zero gradient */

		m[i] = o->beta1 * m[i] + (1.0 - o->beta1) * gi;
		v[i] = o->beta2 * v[i] + (1.0 - o->beta2) * gi * gi;
		w[i] -= o->eta * (m[i] / c1) / (sqrt(v[i] / c2) + o->eps);
	}
}

static bool adam_opts_ok(nb_tape *t, const nb_adam_opts *o, size_t n, size_t step)
{
	const char *fn = "adam_update";

	if (!o) {
		nb__fail(t, NB_ENULL, "%s: options are NULL", fn);
		return false;
	}
	if (!positive(t, fn, "eta", o->eta, false) || !fraction(t, fn, "beta1", o->beta1) ||
	    !fraction(t, fn, "beta2", o->beta2) || !positive(t, fn, "eps", o->eps, false) ||
	    !decay_ok(t, fn, o->weight_decay, o->decay, n))
		return false;
	if (step == 0) {
		nb__fail(t, NB_EINVAL, "%s: step is 0 (the first step is 1)", fn);
		return false;
	}
	return true;
}

int nb_adam_update(nb_tensor *const *params, nb_tensor *const *grads, double *const *m,
                   double *const *v, size_t n, const nb_adam_opts *o, size_t step)
{
	nb_tape *t = params_ok("adam_update", params, grads, n);
	size_t used = 0;
	double c1, c2;

	if (!t)
		return no_tape(params, n);
	if (!adam_opts_ok(t, o, n, step) || !state_ok(t, "adam_update", "m", m, n) ||
	    !state_ok(t, "adam_update", "v", v, n) || !gather_grads(t, params, grads, n))
		return t->err.status;
	c1 = 1.0 - pow(o->beta1, (double)step);
	c2 = 1.0 - pow(o->beta2, (double)step);
	for (size_t i = 0; i < n; i++) {
		const double *g = grad_values(t, params, grads, n, i, &used);

		adam_one(params[i]->value, m[i], v[i], g, params[i]->size, o,
		         decay_of(o->weight_decay, o->decay, i), c1, c2);
		nb__leaf_changed(params[i]);
	}
	return NB_OK;
}
