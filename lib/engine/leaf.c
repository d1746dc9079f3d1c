/* leaf.c -- the leaves of a tape: constants and variables that own their values or view
 * the caller's memory, the calls that change them (nb_set, nb_touch), and names. */
#include <stdio.h>
#include <string.h>

#include "nabla_int.h"

/* Leaves have no kernel and no rule: their values are set by the user. */
const struct nb_op nb__op_constant = { .name = "constant", .arity = 0 };
const struct nb_op nb__op_variable = { .name = "variable", .arity = 0 };

/* A leaf that owns its values (copied from data, zeros for NULL). */
static nb_tensor *owned_leaf(nb_tape *t, const struct nb_op *op, int rank, const size_t *dim,
                             const double *data)
{
	nb_tensor *x;

	if (!nb__args_ok(t, op->name, NULL, 0) || !nb__shape_ok(t, op->name, rank, dim))
		return NULL;
	x = nb__append_leaf(t, op, rank, dim, NULL);
	if (!x)
		return NULL;
	if (data)
		memcpy(x->value, data, x->size * sizeof *data);
	else
		memset(x->value, 0, x->size * sizeof *x->value);
	return x;
}

/* A leaf whose values are the caller's memory at data, used in place. */
static nb_tensor *view_leaf(nb_tape *t, const struct nb_op *op, int rank, const size_t *dim,
                            double *data)
{
	const char *name = op == &nb__op_variable ? "variable_view" : "constant_view";

	if (!nb__args_ok(t, name, NULL, 0) || !nb__shape_ok(t, name, rank, dim))
		return NULL;
	if (!data)
		return nb__fail(t, NB_ENULL, "%s: data is NULL", name);
	return nb__append_leaf(t, op, rank, dim, data);
}

nb_tensor *nb_constant(nb_tape *t, int rank, const size_t *dim, const double *data)
{
	return owned_leaf(t, &nb__op_constant, rank, dim, data);
}

nb_tensor *nb_variable(nb_tape *t, int rank, const size_t *dim, const double *data)
{
	return owned_leaf(t, &nb__op_variable, rank, dim, data);
}

nb_tensor *nb_constant_view(nb_tape *t, int rank, const size_t *dim, double *data)
{
	return view_leaf(t, &nb__op_constant, rank, dim, data);
}

nb_tensor *nb_variable_view(nb_tape *t, int rank, const size_t *dim, double *data)
{
	return view_leaf(t, &nb__op_variable, rank, dim, data);
}

/* Check that x is a leaf a caller may change, for fn; records the error otherwise. */
static bool changeable(nb_tensor *x, const char *fn)
{
	nb_tape *t = x->tape;

	if (!nb__args_ok(t, fn, &x, 1) || !nb__writable(t, fn))
		return false;
	if (!nb__is_leaf(x)) {
		nb__fail(t, NB_EINVAL, "%s: tensor is a %s node, not a constant or variable leaf", fn,
		         x->op->name);
		return false;
	}
	return true;
}

int nb_set(nb_tensor *x, const double *data, size_t n)
{
	nb_tape *t = x ? x->tape : NULL;
	char s[NB_MSG_MAX];

	if (!x)
		return NB_ENULL;
	if (!changeable(x, "set"))
		return t->err.status;
	if (!data)
		nb__fail(t, NB_ENULL, "set: data is NULL");
	else if (n != x->size)
		nb__fail(t, NB_ESHAPE, "set: %zu values for a tensor of shape %s (%zu elements)",
		         n, nb__shape_str(x->rank, x->dim, s), x->size);
	else {
		memmove(x->value, data, n * sizeof *data);
		nb__leaf_changed(x);
	}
	return t->err.status;
}

/* Even on a tape holding an error: the caller has written the memory already, and a
 * refused touch would leave every value computed from it stale after the error is
 * cleared. */
int nb_touch(nb_tensor *x)
{
	if (!x)
		return NB_ENULL;
	if (!nb__writable(x->tape, "touch"))
		return x->tape->err.status;
	if (nb__is_leaf(x))
		nb__leaf_changed(x);
	else
		nb__fail(x->tape, NB_EINVAL, "touch: tensor is a %s node, not a constant or "
		         "variable leaf", x->op->name);
	return x->tape->err.status;
}

void nb_set_name(nb_tensor *x, const char *name)
{
	size_t len;

	if (!x || !nb__writable(x->tape, "set_name"))
		return;
	if (!name)
		name = "";
	/* name may be x's own (nb_set_name(x, nb_name(x))): copy as overlapping memory. */
	for (len = 0; len < sizeof x->name - 1 && name[len]; len++)
		;
	memmove(x->name, name, len);
	x->name[len] = '\0';
}

const char *nb_name(const nb_tensor *x)
{
	return x ? x->name : "";
}
