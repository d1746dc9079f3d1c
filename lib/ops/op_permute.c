/* op_permute.c -- y = permute(x, perm): output axis i is input axis perm[i] (as
 * numpy.transpose with axes, rank up to 4). Its gradient is dy permuted back by the
 * inverse permutation. */
#include <string.h>

#include "nabla_int.h"

/* Walk the output in order, reading x at the strides of the permuted axes. */
static void permute_forward(nb_tensor *y)
{
	const nb_tensor *x = y->in[0];
	size_t xs[NB_MAX_RANK] = { 0 }, s[NB_MAX_RANK] = { 0 }, d[NB_MAX_RANK] = { 1, 1, 1, 1 };
	size_t stride = 1;
	int r = x->rank, pad = NB_MAX_RANK - r;
	double *out = y->value;

	for (int i = r - 1; i >= 0; i--) {
		xs[i] = stride;
		stride *= x->dim[i];
	}
	for (int i = 0; i < r; i++) {
		s[pad + i] = xs[y->attr.perm[i]];
		d[pad + i] = y->dim[i];
	}
	for (size_t i0 = 0; i0 < d[0]; i0++)
		for (size_t i1 = 0; i1 < d[1]; i1++)
			for (size_t i2 = 0; i2 < d[2]; i2++) {
				const double *row = x->value + i0 * s[0] + i1 * s[1] + i2 * s[2];

				for (size_t i3 = 0; i3 < d[3]; i3++)
					*out++ = row[i3 * s[3]];
			}
}

static void permute_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	int inverse[NB_MAX_RANK];

	for (int i = 0; i < y->rank; i++)
		inverse[y->attr.perm[i]] = i;
	nb__grad_add(t, y->in[0], nb_permute(t, dy, inverse));
}

const struct nb_op nb__op_permute = {
	.name = "permute", .arity = 1, .forward = permute_forward, .backward = permute_backward,
};

nb_tensor *nb_permute(nb_tape *t, nb_tensor *x, const int *perm)
{
	struct nb_attr attr = { 0 };
	size_t dim[NB_MAX_RANK];
	bool seen[NB_MAX_RANK] = { false }, identity = true;
	char s[NB_MSG_MAX];

	if (!nb__args_ok(t, "permute", &x, 1))
		return NULL;
	if (!perm && x->rank > 0)
		return nb__fail(t, NB_ENULL, "permute: perm is NULL");
	for (int i = 0; i < x->rank; i++) {
		if (perm[i] < 0 || perm[i] >= x->rank || seen[perm[i]])
			return nb__fail(t, NB_EINVAL, "permute: perm[%d] = %d: not a permutation of "
			                "the %d axes of %s", i, perm[i], x->rank,
			                nb__shape_str(x->rank, x->dim, s));
		seen[perm[i]] = true;
		attr.perm[i] = perm[i];
		dim[i] = x->dim[perm[i]];
		identity &= perm[i] == i;
	}
	if (identity)
		return x;
	return nb__record(t, &nb__op_permute, &x, &attr, x->rank, dim);
}
