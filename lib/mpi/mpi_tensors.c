/* mpi_tensors.c -- a program's own op graph over MPI: rank 0's parameters to every rank,
 * and the gradients summed over the ranks in rank order. Tensors are copied into one flat
 * buffer of the context, so that a call is one collective whatever the number of tensors;
 * their values are read with nb_value() and written with nb_set(), so views, owned leaves
 * and any tape's tensors all work. */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "mpi_int.h"

/* Check a list of n tensors (leaves only when need_leaf, for nb_set()) and give its total
 * size and the hash of its shapes. */
static int list_ok(nb_tensor *const *t, size_t n, const char *fn, const char *what,
                   bool need_leaf, size_t *total, unsigned long long *hash, char *msg)
{
	*total = 0;
	*hash = MPI_HASH_START;
	if (!t && n)
		return mpi__fail(msg, NB_ENULL, "%s: %s is NULL", fn, what);
	for (size_t i = 0; i < n; i++) {
		const char *op = nb_op_name(t[i]);

		if (!t[i])
			return mpi__fail(msg, NB_ENULL, "%s: %s[%zu] is NULL", fn, what, i);
		if (need_leaf && strcmp(op, "variable") != 0 && strcmp(op, "constant") != 0)
			return mpi__fail(msg, NB_EINVAL, "%s: %s[%zu] is a %s node, not a variable or "
			                 "a constant", fn, what, i, op);
		*hash = mpi__fold(*hash, (unsigned long long)nb_rank(t[i]));
		for (int d = 0; d < nb_rank(t[i]); d++)
			*hash = mpi__fold(*hash, nb_dim(t[i], d));
		*total += nb_size(t[i]);
	}
	if (*total > (size_t)INT_MAX)
		return mpi__fail(msg, NB_EINVAL, "%s: %zu values, more than MPI's counts reach "
		                 "(%d)", fn, *total, INT_MAX);
	return NB_OK;
}

/* dst[i] has src[i]'s shape, for every i. */
static int pairs_ok(nb_tensor *const *src, nb_tensor *const *dst, size_t n, char *msg)
{
	char a[NB_MSG_MAX], b[NB_MSG_MAX];

	for (size_t i = 0; i < n; i++) {
		nb_shape_str(src[i], a);
		nb_shape_str(dst[i], b);
		if (strcmp(a, b) != 0)
			return mpi__fail(msg, NB_ESHAPE, "sum: src[%zu] is %s, dst[%zu] %s", i, a, i, b);
	}
	return NB_OK;
}

/* The values of n tensors times weight into buf, one after the other. */
static void pack(nb_tensor *const *t, size_t n, double weight, double *buf)
{
	for (size_t i = 0; i < n; i++) {
		const double *v = nb_value(t[i]);
		size_t k = nb_size(t[i]);

		if (weight == 1.0)
			memcpy(buf, v, k * sizeof *buf);
		else
			for (size_t j = 0; j < k; j++)
				buf[j] = weight * v[j];
		buf += k;
	}
}

/* buf back into n leaves. */
static int unpack(nb_tensor *const *t, size_t n, const double *buf, const char *fn,
                  const char *what, char *msg)
{
	for (size_t i = 0; i < n; i++) {
		int status = nb_set(t[i], buf, nb_size(t[i]));

		if (status != NB_OK)
			return mpi__fail(msg, status, "%s: nb_set() of %s[%zu] failed: %s (its tape's "
			                 "message says why)", fn, what, i, nb_status_text(status));
		buf += nb_size(t[i]);
	}
	return NB_OK;
}

int nb_mpi_broadcast(nb_mpi *mpi, nb_tensor *const *leaves, size_t n)
{
	char msg[NB_MSG_MAX] = "";
	unsigned long long hash;
	size_t total;
	int status, rc;

	if (mpi__entry(mpi) != NB_OK)
		return mpi__entry(mpi);
	status = list_ok(leaves, n, "broadcast", "leaves", true, &total, &hash, msg);
	if (status == NB_OK && !mpi__reserve(mpi, &mpi->pack, &mpi->pack_cap, total))
		status = mpi__fail(msg, NB_ENOMEM, "broadcast: out of memory for %zu values", total);
	if (mpi__agree_shapes(mpi, "broadcast", status, msg, hash, total, "leaves") != NB_OK)
		return mpi->status;
	if (mpi->rank == 0)
		pack(leaves, n, 1.0, mpi->pack);
	rc = MPI_Bcast(mpi->pack, (int)total, MPI_DOUBLE, 0, mpi->comm);
	status = rc == MPI_SUCCESS ? NB_OK
	                           : mpi__fail(msg, NB_EIO, "broadcast: MPI_Bcast failed");
	if (status == NB_OK && mpi->rank != 0)
		status = unpack(leaves, n, mpi->pack, "broadcast", "leaves", msg);
	return mpi__agree(mpi, status, msg, NULL, 0);
}

int nb_mpi_sum(nb_mpi *mpi, nb_tensor *const *src, nb_tensor *const *dst, size_t n,
               double weight)
{
	char msg[NB_MSG_MAX] = "";
	unsigned long long hash, unused;
	size_t total, dst_total;
	int status;

	if (mpi__entry(mpi) != NB_OK)
		return mpi__entry(mpi);
	status = list_ok(src, n, "sum", "src", false, &total, &hash, msg);
	if (status == NB_OK)
		status = list_ok(dst, n, "sum", "dst", true, &dst_total, &unused, msg);
	if (status == NB_OK)
		status = pairs_ok(src, dst, n, msg);
	if (status == NB_OK && !isfinite(weight))
		status = mpi__fail(msg, NB_EINVAL, "sum: weight must be finite, not %g", weight);
	if (status == NB_OK && !mpi__reserve(mpi, &mpi->pack, &mpi->pack_cap, total))
		status = mpi__fail(msg, NB_ENOMEM, "sum: out of memory for %zu values", total);
	if (status == NB_OK)
		status = mpi__sum_ready(mpi, total, msg);
	if (mpi__agree_shapes(mpi, "sum", status, msg, hash, total, "tensors") != NB_OK)
		return mpi->status;
	pack(src, n, weight, mpi->pack);
	if (mpi__sum(mpi, mpi->pack) != NB_OK)
		return mpi->status;
	return mpi__agree(mpi, unpack(dst, n, mpi->pack, "sum", "dst", msg), msg, NULL, 0);
}
