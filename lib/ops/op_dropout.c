/* op_dropout.c -- y = dropout(x, p) = x ⊙ mask, each element of mask 0 with probability p
 * and 1 / (1 - p) otherwise (inverted dropout: the expected value of y is x). The mask is
 * a node of its own, drawn from a generator seeded by the seed and the number of masks
 * that node drew before: a new mask every time it is computed again (at every replay on
 * new inputs, that is every training step), the same one for the forward pass and the
 * backward rule of a step, and the same sequence of masks for the same seed. A fresh
 * recording starts the sequence again, so a gradient check that records the expression
 * for every evaluation sees one mask. The mask gets no gradient; mul's rule passes dy ⊙
 * mask to x. At evaluation, do not record it. */
#include "nabla_int.h"

static void dropout_mask_forward(nb_tensor *y)
{
	nb_rng r;
	double p = y->attr.c, keep = 1.0 / (1.0 - p);

	nb_rng_seed(&r, y->attr.start ^ (0x9e3779b97f4a7c15ULL * ++y->draws));
	for (size_t i = 0; i < y->size; i++)
		y->value[i] = nb_rng_uniform(&r) < p ? 0.0 : keep;
}

const struct nb_op nb__op_dropout_mask = {
	.name = "dropout_mask", .arity = 1, .forward = dropout_mask_forward,
};

nb_tensor *nb_dropout(nb_tape *t, nb_tensor *x, double p, unsigned long long seed)
{
	struct nb_attr attr = { .c = p, .start = (size_t)seed };
	size_t mark = t ? t->n : 0;

	if (!nb__args_ok(t, "dropout", &x, 1))
		return NULL;
	if (!(p >= 0.0 && p < 1.0))
		return nb__fail(t, NB_EINVAL, "dropout: probability %g is not in [0, 1)", p);
	if (p == 0.0)
		return x;
	return nb__undo(t, mark, nb_mul(t, x, nb__record(t, &nb__op_dropout_mask, &x, &attr,
	                                                 x->rank, x->dim)));
}
