/* op_user.c -- ops a program defines (nb_op_def) recorded like nabla's own. Each tape
 * keeps one descriptor (struct nb_op) per definition it has seen, whose forward, backward
 * and branch entries call the definition's callbacks; so hash-consing, replay, sweeps,
 * pictures and messages treat a user op as any other, under its own name. */
#include <string.h>

#include "nabla_int.h"

/* The values of y's inputs, as the callbacks take them. */
static void input_values(const nb_tensor *y, const double *x[NB_MAX_ARITY])
{
	for (int i = 0; i < y->op->arity; i++)
		x[i] = y->in[i]->value;
}

static void user_forward(nb_tensor *y)
{
	const nb_op_def *def = y->op->def;
	const double *x[NB_MAX_ARITY];

	input_values(y, x);
	def->forward(def, (nb_tensor *const *)y->in, x, y, y->value);
}

/* The rule records grad[i]; nb__grad_add then checks each one's shape, the one place
 * gradients are checked, so a rule that hands a wrong shape is named there. */
static void user_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	const nb_op_def *def = y->op->def;
	nb_tensor *grad[NB_MAX_ARITY] = { NULL };
	int st = def->backward(t, def, (nb_tensor *const *)y->in, y, dy, grad);

	if (st != NB_OK || t->err.status != NB_OK) {
		nb__fail(t, st != NB_OK ? st : t->err.status,
		         "%s: backward rule failed: %s", def->name, nb_status_text(st));
		return;
	}
	for (int i = 0; i < def->arity; i++)
		if (grad[i]) {
			if (grad[i]->tape != t) {
				nb__fail(t, NB_ETAPE, "%s: backward rule handed a gradient of another "
				         "tape for input %d", def->name, i);
				return;
			}
			nb__grad_add(t, y->in[i], grad[i]);
		}
}

static uint64_t user_branch(const nb_tensor *y)
{
	const nb_op_def *def = y->op->def;
	const double *x[NB_MAX_ARITY];

	input_values(y, x);
	return def->branch(def, (nb_tensor *const *)y->in, x);
}

/* The tape's descriptor for def, made on first use. */
static const struct nb_op *descriptor(nb_tape *t, const nb_op_def *def)
{
	struct nb_op *op;
	void *list = t->user_op;

	for (size_t i = 0; i < t->n_user_ops; i++)
		if (t->user_op[i]->def == def)
			return t->user_op[i];
	if (t->n_user_ops == t->user_ops_cap &&
	    !nb__grow_array(t, &list, t->n_user_ops, &t->user_ops_cap, 4, sizeof *t->user_op))
		return nb__fail(t, NB_ENOMEM, "%s: out of memory for the op's descriptor",
		                def->name);
	t->user_op = list;
	op = nb__alloc(t, sizeof *op);
	if (!op)
		return NULL;
	memset(op, 0, sizeof *op);
	op->name = def->name;
	op->arity = def->arity;
	op->forward = user_forward;
	op->backward = def->backward ? user_backward : NULL;
	op->branch = def->branch ? user_branch : NULL;
	op->def = def;
	t->user_op[t->n_user_ops++] = op;
	return op;
}

void nb__user_ops_free(nb_tape *t)
{
	for (size_t i = 0; i < t->n_user_ops; i++)
		nb__free(t, t->user_op[i], sizeof *t->user_op[i]);
	nb__free(t, t->user_op, t->user_ops_cap * sizeof *t->user_op);
}

size_t nb__user_ops_bytes(const nb_tape *t)
{
	return t->n_user_ops * sizeof(struct nb_op) + t->user_ops_cap * sizeof *t->user_op;
}

static bool def_ok(nb_tape *t, const nb_op_def *def, int n)
{
	if (!def) {
		nb__fail(t, NB_ENULL, "apply: op is NULL");
		return false;
	}
	if (!def->name) {
		nb__fail(t, NB_ENULL, "apply: the op's name is NULL");
		return false;
	}
	if (!def->forward) {
		nb__fail(t, NB_ENULL, "%s: the op has no forward kernel", def->name);
		return false;
	}
	if (def->arity < 1 || def->arity > NB_OP_MAX_ARITY) {
		nb__fail(t, NB_EINVAL, "%s: arity %d (1..%d allowed)", def->name, def->arity,
		         NB_OP_MAX_ARITY);
		return false;
	}
	if (n != def->arity) {
		nb__fail(t, NB_EINVAL, "%s: %d inputs given, the op takes %d", def->name, n,
		         def->arity);
		return false;
	}
	return true;
}

/* Without a shape rule: every input has in[0]'s shape, which is the output's. */
static int same_shapes(nb_tape *t, const nb_op_def *def, nb_tensor *const *in, int *rank,
                       size_t *dim)
{
	char sa[NB_MSG_MAX], sb[NB_MSG_MAX];

	for (int i = 1; i < def->arity; i++)
		if (!nb__same_shape(in[i], in[0])) {
			nb__fail(t, NB_ESHAPE, "%s: input %d has shape %s, input 0 has %s", def->name,
			         i, nb__shape_str(in[i]->rank, in[i]->dim, sa),
			         nb__shape_str(in[0]->rank, in[0]->dim, sb));
			return NB_ESHAPE;
		}
	*rank = in[0]->rank;
	memcpy(dim, in[0]->dim, sizeof in[0]->dim);
	return NB_OK;
}

/* The output shape by the op's rule, checked as any op's shape is. */
static bool out_shape(nb_tape *t, const nb_op_def *def, nb_tensor *const *in, int *rank,
                      size_t *dim)
{
	char msg[NB_MSG_MAX] = "";
	int st;

	if (!def->shape)
		return same_shapes(t, def, in, rank, dim) == NB_OK;
	*rank = 0;
	st = def->shape(def, in, rank, dim, msg);
	if (st != NB_OK) {
		nb__fail(t, st, "%s: %s", def->name, msg[0] ? msg : nb_status_text(st));
		return false;
	}
	return nb__shape_ok(t, def->name, *rank, dim);
}

nb_tensor *nb_apply(nb_tape *t, const nb_op_def *def, nb_tensor *const *in, int n)
{
	size_t dim[NB_MAX_RANK] = { 0 };
	const struct nb_op *op;
	int rank;

	if (!t || t->err.status != NB_OK)
		return NULL;
	if (!def_ok(t, def, n))
		return NULL;
	if (!in)
		return nb__fail(t, NB_ENULL, "%s: in is NULL", def->name);
	if (!nb__args_ok(t, def->name, in, n) || !out_shape(t, def, in, &rank, dim))
		return NULL;
	if (!nb__writable(t, def->name))  /* before the descriptor is kept on t */
		return NULL;
	op = descriptor(t, def);
	return op ? nb__record(t, op, in, NULL, rank, dim) : NULL;
}

uint64_t nb__branch_fold(uint64_t h, const double *x, size_t n, double at)
{
	for (size_t i = 0; i < n; i++)
		h = h * 0x100000001b3ULL ^ (x[i] > at);
	return h;
}
