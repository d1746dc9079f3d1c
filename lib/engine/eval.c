/* eval.c -- values that are never stale. Every value carries the tick of the tape's clock
 * at which it was written, so a computed node is stale exactly when one of its inputs is
 * newer than it. Reading a value (nb_value, recording an op on it, a backward sweep)
 * first brings it up to date, recomputing the node and only what it depends on; replay
 * does the same for the whole tape. Nothing here allocates. */
#include <math.h>

#include "nabla_int.h"

void nb_tape_check_finite(nb_tape *t, int on)
{
	if (t && nb__writable(t, "check_finite"))
		t->check_finite = on != 0;
}

bool nb__compute(nb_tape *t, nb_tensor *x)
{
	char s[NB_MSG_MAX];

	x->op->forward(x);
	x->time = ++t->clock;
	x->checked = t->epoch;
	if (!t->check_finite)
		return true;
	for (size_t i = 0; i < x->size; i++) {
		if (isfinite(x->value[i]))
			continue;
		nb__fail(t, NB_ENONFINITE, "%s: produced %s at element %zu of node %zu, shape %s, in "
		         "the %s pass", x->op->name, isnan(x->value[i]) ? "NaN" : "an infinity", i,
		         x->id, nb__shape_str(x->rank, x->dim, s),
		         x->in_gradient ? "backward" : "forward");
		return false;
	}
	return true;
}

void nb__leaf_changed(nb_tensor *x)
{
	x->time = ++x->tape->clock;
	x->tape->epoch++;
}

/* Some input was written after x was. */
static bool stale(const nb_tensor *x)
{
	for (int k = 0; k < x->op->arity; k++)
		if (x->in[k]->time > x->time)
			return true;
	return false;
}

/* A node is current when it was checked in this epoch (no leaf changed since). Otherwise
 * walk back from x, stamping what it depends on and stopping at current nodes, then go
 * forward over the stamped nodes in recording order, recomputing the stale ones: inputs
 * come first, so a recomputed node makes its users stale in turn. */
void nb__refresh(nb_tensor *x)
{
	nb_tape *t = x->tape;
	uint64_t stamp;
	size_t lo = x->id;

	if (x->checked == t->epoch)
		return;
	stamp = ++t->walk;
	x->walk = stamp;
	for (size_t i = x->id;; i--) {
		nb_tensor *v = t->node[i];

		for (int k = 0; v->walk == stamp && v->checked != t->epoch && k < v->op->arity; k++) {
			v->in[k]->walk = stamp;
			lo = v->in[k]->id < lo ? v->in[k]->id : lo;
		}
		if (i <= lo)
			break;
	}
	for (size_t i = lo; i <= x->id; i++) {
		nb_tensor *v = t->node[i];

		if (v->walk != stamp || v->checked == t->epoch)
			continue;
		if (stale(v))
			nb__compute(t, v);  /* a non-finite value is recorded; the walk goes on */
		v->checked = t->epoch;
	}
}

const double *nb_value(const nb_tensor *x)
{
	if (!x)
		return NULL;
	/* A value brought up to date is the same tensor, so x is logically const. */
	nb__refresh((nb_tensor *)x);
	return x->value;
}

int nb_tape_replay(nb_tape *t)
{
	if (!t)
		return NB_ENULL;
	if (t->err.status != NB_OK)
		return t->err.status;
	for (size_t i = 0; i < t->n; i++) {
		nb_tensor *v = t->node[i];

		if (v->checked == t->epoch)
			continue;
		if (stale(v) && !nb__compute(t, v))
			return t->err.status;
		v->checked = t->epoch;
	}
	return NB_OK;
}
