/* op_gather.c -- y = gather_rows(table, idx): row i of y is row idx[i] of the table (an
 * embedding lookup), and its adjoint y = scatter_rows(g, idx, rows): row idx[i] of y is
 * the sum of the rows i of g that name it, so that a repeated index accumulates its
 * gradient. Each is the other's backward rule; idx, a tensor of whole numbers, gets no
 * gradient. An index that is not a row (after nb_set() on idx) gives NaN rows, which
 * nb_tape_check_finite() reports. */
#include <math.h>
#include <string.h>

#include "nabla_int.h"

/* Row v of a table of rows rows, or rows when v is not one. */
static size_t row_of(double v, size_t rows)
{
	return v >= 0.0 && v < (double)rows && v == floor(v) ? (size_t)v : rows;
}

static void gather_rows_forward(nb_tensor *y)
{
	const nb_tensor *table = y->in[0], *idx = y->in[1];
	size_t rows = table->dim[0], width = table->size / rows;

	for (size_t i = 0; i < idx->size; i++) {
		size_t r = row_of(idx->value[i], rows);
		double *out = y->value + i * width;

		if (r == rows)
			for (size_t j = 0; j < width; j++)
				out[j] = NAN;
		else
			memcpy(out, table->value + r * width, width * sizeof *out);
	}
}

static void scatter_rows_forward(nb_tensor *y)
{
	const nb_tensor *g = y->in[0], *idx = y->in[1];
	size_t rows = y->dim[0], width = y->size / rows;

	memset(y->value, 0, y->size * sizeof *y->value);
	for (size_t i = 0; i < idx->size; i++) {
		size_t r = row_of(idx->value[i], rows);

		for (size_t j = 0; j < width; j++)
			if (r == rows)
				y->value[j] = NAN;  /* poisons the result: it cannot be right */
			else
				y->value[r * width + j] += g->value[i * width + j];
	}
}

/* d table = scatter_rows(dy, idx, rows of the table). */
static void gather_rows_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb_tensor *table = y->in[0], *in[2] = { dy, y->in[1] };
	struct nb_attr attr = { .start = table->dim[0] };

	if (nb__wants_grad(table))
		nb__grad_add(t, table, nb__record(t, &nb__op_scatter_rows, in, &attr, table->rank,
		                                  table->dim));
}

/* d g = gather_rows(dy, idx). */
static void scatter_rows_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	if (nb__wants_grad(y->in[0]))
		nb__grad_add(t, y->in[0], nb_gather_rows(t, dy, y->in[1]));
}

const struct nb_op nb__op_gather_rows = {
	.name = "gather_rows", .arity = 2, .forward = gather_rows_forward,
	.backward = gather_rows_backward,
};
const struct nb_op nb__op_scatter_rows = {
	.name = "scatter_rows", .arity = 2, .forward = scatter_rows_forward,
	.backward = scatter_rows_backward,
};

/* Every index a row of the table, now (a later nb_set() is the kernels' to catch). */
static bool indices_ok(nb_tape *t, const nb_tensor *table, const nb_tensor *idx)
{
	char s[NB_MSG_MAX];

	nb__refresh((nb_tensor *)idx);
	for (size_t i = 0; i < idx->size; i++)
		if (row_of(idx->value[i], table->dim[0]) == table->dim[0]) {
			nb__fail(t, NB_EINVAL, "gather_rows: idx[%zu] = %g is not a row of the table %s",
			         i, idx->value[i], nb__shape_str(table->rank, table->dim, s));
			return false;
		}
	return true;
}

nb_tensor *nb_gather_rows(nb_tape *t, nb_tensor *table, nb_tensor *idx)
{
	nb_tensor *in[2] = { table, idx };
	char st[NB_MSG_MAX], si[NB_MSG_MAX];
	size_t dim[2];

	if (!nb__args_ok(t, "gather_rows", in, 2))
		return NULL;
	if (table->rank < 1 || table->rank > 2 || idx->rank != 1)
		return nb__fail(t, NB_ERANK, "gather_rows: a table of rank 1 or 2 and a vector of "
		                "indices are needed: %s and %s",
		                nb__shape_str(table->rank, table->dim, st),
		                nb__shape_str(idx->rank, idx->dim, si));
	if (!indices_ok(t, table, idx))
		return NULL;
	dim[0] = idx->dim[0];
	dim[1] = table->rank == 2 ? table->dim[1] : 1;
	return nb__record(t, &nb__op_gather_rows, in, NULL, table->rank, dim);
}
