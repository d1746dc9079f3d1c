/* tensor.c -- shapes: validation, printing, numpy broadcasting, and the read-only
 * queries on a tensor handle. */
#include <stdio.h>
#include <string.h>

#include "nabla_int.h"

char *nb__shape_str(int rank, const size_t *dim, char *buf)
{
	size_t len = 0;

	buf[len++] = '(';
	for (int i = 0; i < rank && len < NB_MSG_MAX - 24; i++)
		len += (size_t)snprintf(buf + len, NB_MSG_MAX - len, i ? "x%zu" : "%zu", dim[i]);
	snprintf(buf + len, NB_MSG_MAX - len, ")");
	return buf;
}

bool nb__mul_size(size_t n, size_t size, size_t *out)
{
	if (size && n > SIZE_MAX / size)
		return false;
	*out = n * size;
	return true;
}

bool nb__add_size(size_t a, size_t b, size_t *out)
{
	if (a > SIZE_MAX - b)
		return false;
	*out = a + b;
	return true;
}

/* The product of the dims; SIZE_MAX when it overflows (no tensor is that large, and
 * recording checks every node's bytes before using it). */
size_t nb__shape_size(int rank, const size_t *dim)
{
	size_t n = 1;

	for (int i = 0; i < rank; i++)
		if (!nb__mul_size(n, dim[i], &n))
			return SIZE_MAX;
	return n;
}

/* A shape a tensor may have: rank 0..NB_MAX_RANK and dims >= 1. Records an error naming op
 * otherwise. Whether its bytes fit is checked where the node is made. */
bool nb__shape_ok(nb_tape *t, const char *op, int rank, const size_t *dim)
{
	if (rank < 0 || rank > NB_MAX_RANK) {
		nb__fail(t, NB_ERANK, "%s: rank %d is out of range (0..%d)", op, rank, NB_MAX_RANK);
		return false;
	}
	if (rank > 0 && !dim) {
		nb__fail(t, NB_ENULL, "%s: dims are NULL", op);
		return false;
	}
	for (int i = 0; i < rank; i++) {
		if (dim[i] == 0) {
			nb__fail(t, NB_ESHAPE, "%s: dim %d is 0", op, i);
			return false;
		}
	}
	return true;
}

bool nb__same_shape(const nb_tensor *a, const nb_tensor *b)
{
	return a->rank == b->rank && !memcmp(a->dim, b->dim, (size_t)a->rank * sizeof a->dim[0]);
}

void nb__pad_dims(int rank, const size_t *dim, size_t out[NB_MAX_RANK])
{
	int lead = NB_MAX_RANK - rank;

	for (int i = 0; i < NB_MAX_RANK; i++)
		out[i] = i < lead ? 1 : dim[i - lead];
}

/* numpy's rule: align on the right; each pair of dims is equal or one of them is 1. */
bool nb__broadcast_shape(int ra, const size_t *da, int rb, const size_t *db,
                         int *rank, size_t *dim)
{
	size_t pa[NB_MAX_RANK], pb[NB_MAX_RANK], out[NB_MAX_RANK];
	int r = ra > rb ? ra : rb;

	nb__pad_dims(ra, da, pa);
	nb__pad_dims(rb, db, pb);
	for (int i = 0; i < NB_MAX_RANK; i++) {
		if (pa[i] != pb[i] && pa[i] != 1 && pb[i] != 1)
			return false;
		out[i] = pa[i] == 1 ? pb[i] : pa[i];
	}
	*rank = r;
	memcpy(dim, out + NB_MAX_RANK - r, (size_t)r * sizeof *dim);
	return true;
}

void nb__broadcast_strides(int r, const size_t *d, int rank, const size_t *dim,
                           size_t stride[NB_MAX_RANK])
{
	size_t pd[NB_MAX_RANK], po[NB_MAX_RANK], s = 1;

	nb__pad_dims(r, d, pd);
	nb__pad_dims(rank, dim, po);
	for (int i = NB_MAX_RANK - 1; i >= 0; i--) {
		stride[i] = pd[i] == po[i] ? s : 0;
		s *= pd[i];
	}
}

int nb_rank(const nb_tensor *x)
{
	return x ? x->rank : -1;
}

size_t nb_dim(const nb_tensor *x, int i)
{
	return x && i >= 0 && i < x->rank ? x->dim[i] : 0;
}

size_t nb_size(const nb_tensor *x)
{
	return x ? x->size : 0;
}

const char *nb_op_name(const nb_tensor *x)
{
	return x ? x->op->name : NULL;
}

nb_tensor *nb_input(const nb_tensor *x, int i)
{
	return x && i >= 0 && i < x->op->arity ? x->in[i] : NULL;
}

char *nb_shape_str(const nb_tensor *x, char *buf)
{
	if (!buf)
		return NULL;
	if (!x) {
		snprintf(buf, NB_MSG_MAX, "(null)");
		return buf;
	}
	return nb__shape_str(x->rank, x->dim, buf);
}

struct nb__around nb__around_axis(const nb_tensor *x, int axis)
{
	struct nb__around a = { 1, x->dim[axis], 1 };

	for (int i = 0; i < axis; i++)
		a.outer *= x->dim[i];
	for (int i = axis + 1; i < x->rank; i++)
		a.inner *= x->dim[i];
	return a;
}

bool nb__reduced_shape(nb_tape *t, const char *op, const nb_tensor *x, int axis, int keepdim,
                       int *rank, size_t *dim)
{
	char s[NB_MSG_MAX];

	if (axis < 0 || axis >= x->rank) {
		nb__fail(t, NB_EINVAL, "%s: axis %d is out of range for shape %s", op, axis,
		         nb__shape_str(x->rank, x->dim, s));
		return false;
	}
	memcpy(dim, x->dim, sizeof x->dim);
	dim[axis] = 1;
	*rank = x->rank;
	if (!keepdim) {
		memmove(dim + axis, dim + axis + 1, (size_t)(x->rank - axis - 1) * sizeof *dim);
		(*rank)--;
	}
	return true;
}

nb_tensor *nb__along_axis(nb_tape *t, nb_tensor *g, const nb_tensor *x, int axis)
{
	size_t dim[NB_MAX_RANK];

	memcpy(dim, x->dim, sizeof x->dim);
	dim[axis] = 1;
	return nb_broadcast_to(t, nb_reshape(t, g, x->rank, dim), x->rank, x->dim);
}
