/* mpi_net.c -- the network library's networks trained over MPI. A step is the two halves
 * of nb_net_sgd_step() with a sum between them: each rank writes the gradient of its share
 * of the mini-batch, weighed by that share, into nb_net_grad(); the ranks sum it in rank
 * order; each applies it. Each collective is preceded by an agreement, so that an error on
 * one rank stops all of them at the same call. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mpi_int.h"

/* ---- Data ----------------------------------------------------------------------------- */

/* The ranks agree on each rank's load (status, msg): when any failed, every rank's ds is
 * empty. A context already in error loads nothing. */
static int agree_on_load(nb_mpi *mpi, int status, const char *msg, nb_dataset *ds)
{
	if (mpi__agree(mpi, status, msg, NULL, 0) != NB_OK && status == NB_OK)
		nb_dataset_free(ds);  /* another rank failed */
	return mpi->status;
}

static bool may_load(const nb_mpi *mpi, nb_dataset *ds)
{
	if (mpi__entry(mpi) == NB_OK)
		return true;
	if (ds)
		memset(ds, 0, sizeof *ds);
	return false;
}

int nb_mpi_dataset_load_dir(nb_mpi *mpi, const char *dir, const char *split,
                            const nb_load_opts *opts, nb_dataset *ds)
{
	char msg[NB_MSG_MAX] = "";

	if (!may_load(mpi, ds))
		return mpi__entry(mpi);
	return agree_on_load(mpi, nb_dataset_load_dir_part(dir, split, (size_t)mpi->rank,
	                                                   (size_t)mpi->size, opts, ds, msg),
	                     msg, ds);
}

int nb_mpi_dataset_load_idx(nb_mpi *mpi, const char *images, const char *labels,
                            const nb_load_opts *opts, nb_dataset *ds)
{
	char msg[NB_MSG_MAX] = "";

	if (!may_load(mpi, ds))
		return mpi__entry(mpi);
	return agree_on_load(mpi, nb_dataset_load_idx_part(images, labels, (size_t)mpi->rank,
	                                                   (size_t)mpi->size, opts, ds, msg),
	                     msg, ds);
}

/* ---- Parameters ----------------------------------------------------------------------- */

/* The most parameter tensors a network has: two per layer. */
#define NET_TENSORS (2 * NB_NET_MAX_LAYERS)

/* The parameters' shapes as text, "w1 (30x784), b1 (30x1), ...", cut to fit. */
static void shapes_text(const nb_named_tensor *t, size_t n, char *out, size_t size)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && used + 1 < size; i++) {
		int k = snprintf(out + used, size - used, "%s%s (", i ? ", " : "", t[i].name);

		for (int d = 0; k > 0 && d < t[i].rank && used + (size_t)k < size; d++)
			k += snprintf(out + used + k, size - used - (size_t)k, "%s%zu", d ? "x" : "",
			              t[i].dim[d]);
		if (k > 0 && used + (size_t)k < size)
			k += snprintf(out + used + k, size - used - (size_t)k, ")");
		used += k > 0 ? (size_t)k : 0;
	}
}

static size_t tensor_size(const nb_named_tensor *t)
{
	size_t size = 1;

	for (int d = 0; d < t->rank; d++)
		size *= t->dim[d];
	return size;
}

/* net's parameter tensors into t (NET_TENSORS), their count into *n, and the hash of their
 * names and shapes. */
static unsigned long long net_shapes(nb_net *net, nb_named_tensor *t, size_t *n)
{
	unsigned long long h = MPI_HASH_START;

	*n = nb_net_tensors(net, t, NET_TENSORS);
	for (size_t i = 0; i < *n; i++) {
		for (const char *c = t[i].name; *c; c++)
			h = mpi__fold(h, (unsigned char)*c);
		h = mpi__fold(h, (unsigned long long)t[i].rank);
		for (int d = 0; d < t[i].rank; d++)
			h = mpi__fold(h, t[i].dim[d]);
	}
	return h;
}

/* Check that every rank's network has rank 0's parameters, naming both when not. Rank 0's
 * shapes come as text, for the message. */
static int same_shapes(nb_mpi *m, nb_net *net, const char *fn, int status, char *msg)
{
	nb_named_tensor t[NET_TENSORS];
	char mine[NB_MSG_MAX / 2] = "", theirs[NB_MSG_MAX / 2] = "";
	unsigned long long hash = 0;
	size_t n = 0;
	double vote[2];

	if (status == NB_OK) {
		hash = net_shapes(net, t, &n);
		shapes_text(t, n, mine, sizeof mine);
	}
	vote[0] = (double)(hash >> 11);
	vote[1] = (double)nb_net_param_count(net);
	if (mpi__agree(m, status, msg, vote, 2) != NB_OK)
		return m->status;
	memcpy(theirs, mine, sizeof theirs);
	if (MPI_Bcast(theirs, (int)sizeof theirs, MPI_CHAR, 0, m->comm) != MPI_SUCCESS)
		return mpi__error(m, NB_EIO, "%s: MPI_Bcast failed", fn);
	theirs[sizeof theirs - 1] = '\0';
	if (mpi__vote(m, 0, 0) != vote[0] || mpi__vote(m, 0, 1) != vote[1])
		status = mpi__fail(msg, NB_ESHAPE, "%s: its network's parameters (%s) are not rank "
		                   "0's (%s)", fn, mine, theirs);
	return mpi__agree(m, status, msg, NULL, 0);
}

/* Rank 0's parameters to every rank, tensor by tensor. */
static int broadcast_params(nb_mpi *m, nb_net *net, const char *fn)
{
	nb_named_tensor t[NET_TENSORS];
	size_t n = nb_net_tensors(net, t, NET_TENSORS);

	for (size_t i = 0; i < n; i++)
		if (MPI_Bcast(t[i].data, (int)tensor_size(&t[i]), MPI_DOUBLE, 0, m->comm) !=
		    MPI_SUCCESS)
			return mpi__error(m, NB_EIO, "%s: MPI_Bcast of %s failed", fn, t[i].name);
	return NB_OK;
}

/* A rank's own check of a network: not NULL, no sticky error. */
static int net_ok(nb_net *net, const char *fn, char *msg)
{
	if (!net)
		return mpi__fail(msg, NB_ENULL, "%s: net is NULL", fn);
	if (nb_net_status(net) != NB_OK)
		return mpi__fail(msg, nb_net_status(net), "%s: %s", fn, nb_net_message(net));
	return NB_OK;
}

int nb_mpi_net_sync(nb_mpi *mpi, nb_net *net)
{
	char msg[NB_MSG_MAX] = "";
	int status;

	if (mpi__entry(mpi) != NB_OK)
		return mpi__entry(mpi);
	status = net_ok(net, "net_sync", msg);
	if (same_shapes(mpi, net, "net_sync", status, msg) != NB_OK)
		return mpi->status;
	return broadcast_params(mpi, net, "net_sync");
}

/* ---- Steps -------------------------------------------------------------------------- */

/* After a rank's gradient (status, its weighed cost): agree, sum the gradients, apply them,
 * agree again. *cost gets the global cost, summed in rank order. */
static int sum_and_apply(nb_mpi *m, nb_net *net, int status, char *msg,
                         double weighed_cost, const nb_sgd *opt, double *cost)
{
	char why[NB_MSG_MAX] = "";
	double total = 0.0;

	if (status == NB_OK)
		status = mpi__sum_ready(m, nb_net_param_count(net), msg);
	if (mpi__agree(m, status, msg, &weighed_cost, 1) != NB_OK)
		return m->status;
	for (int q = 0; q < m->size; q++)
		total += mpi__vote(m, q, 0);
	if (mpi__sum(m, nb_net_grad(net)) != NB_OK)
		return m->status;
	status = nb_net_apply_gradient(net, opt);
	if (status != NB_OK)
		mpi__fail(why, status, "%s", nb_net_message(net));
	if (mpi__agree(m, status, why, NULL, 0) != NB_OK) {
		/* a rank whose update failed kept its parameters; the others moved theirs */
		if (mpi__failed_ranks(m) < m->size)
			mpi__append(m, " (only some ranks failed, so the ranks' parameters now "
			            "differ: restore a checkpoint)");
		return m->status;
	}
	if (cost)
		*cost = total;
	return NB_OK;
}

/* This rank's gradient of m of a mini-batch of n examples at x, y (m may be 0: a zero
 * gradient), weighed by m / n; *cost gets its cost weighed alike. */
static int share_gradient(nb_net *net, const double *x, const double *y, size_t m, size_t n,
                          double *cost, char *msg)
{
	double *g = nb_net_grad(net);
	double c = 0.0;

	*cost = 0.0;
	if (!g)
		return mpi__fail(msg, nb_net_status(net), "%s", nb_net_message(net));
	if (m == 0) {
		memset(g, 0, nb_net_param_count(net) * sizeof *g);
		return NB_OK;
	}
	if (nb_net_gradient(net, x, y, m, (double)m / (double)n, &c) != NB_OK)
		return mpi__fail(msg, nb_net_status(net), "%s", nb_net_message(net));
	*cost = c * ((double)m / (double)n);
	return NB_OK;
}

int nb_mpi_net_sgd_step(nb_mpi *mpi, nb_net *net, const double *x, const double *y,
                        size_t n, const nb_sgd *opt, double *cost)
{
	char msg[NB_MSG_MAX] = "";
	size_t p = (size_t)(mpi ? mpi->size : 0), r = (size_t)(mpi ? mpi->rank : 0);
	double c = 0.0;
	int status;

	if (mpi__entry(mpi) != NB_OK)
		return mpi__entry(mpi);
	status = net_ok(net, "net_sgd_step", msg);
	if (status == NB_OK && (!x || !y || !opt))
		status = mpi__fail(msg, NB_ENULL, "net_sgd_step: %s is NULL",
		                   !x ? "x" : !y ? "y" : "opt");
	if (status == NB_OK && n == 0)
		status = mpi__fail(msg, NB_EINVAL, "net_sgd_step: no examples (n is 0)");
	if (status == NB_OK) {
		size_t first = mpi__share_first(n, p, r), in = nb_net_inputs(net);

		status = share_gradient(net, x + first * in, y + first * nb_net_outputs(net),
		                        mpi__share(n, p, r), n, &c, msg);
	}
	return sum_and_apply(mpi, net, status, msg, c, opt, cost);
}

/* ---- Epochs --------------------------------------------------------------------------- */

void nb_mpi_epoch_order(unsigned long long seed, size_t epoch, int rank, size_t n,
                        size_t *order)
{
	nb_rng rng;

	/* distinct seeds for every (seed, epoch, rank), the constants of splitmix64 */
	nb_rng_seed(&rng, seed ^ ((unsigned long long)epoch + 1) * 0x9e3779b97f4a7c15ull ^
	                  ((unsigned long long)rank + 1) * 0xbf58476d1ce4e5b9ull);
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n; i > 1; i--) {
		size_t j = nb_rng_below(&rng, i), tmp = order[i - 1];

		order[i - 1] = order[j];
		order[j] = tmp;
	}
}

/* A rank's own checks of an epoch's arguments, and its work space: the order of its
 * examples and room for its share of a mini-batch. */
static int epoch_ok(nb_mpi *m, nb_net *net, const nb_dataset *part, const nb_sgd *opt,
                    char *msg)
{
	size_t b = 0, in, out;
	int status = net_ok(net, "net_sgd_epoch", msg);

	if (status != NB_OK)
		return status;
	if (!part || !opt)
		return mpi__fail(msg, NB_ENULL, "net_sgd_epoch: %s is NULL", part ? "opt" : "part");
	in = nb_net_inputs(net);
	out = nb_net_outputs(net);
	if (part->n && (!part->x || !part->y))
		return mpi__fail(msg, NB_EINVAL, "net_sgd_epoch: part has %zu examples but no "
		                 "data", part->n);
	if (part->n && (part->features != in || part->classes != out))
		return mpi__fail(msg, NB_ESHAPE, "net_sgd_epoch: data has %zu features and %zu "
		                 "classes, the network %zu inputs and %zu outputs", part->features,
		                 part->classes, in, out);
	if (opt->batch < (size_t)m->size)
		return mpi__fail(msg, NB_EINVAL, "net_sgd_epoch: a batch of %zu is fewer examples "
		                 "than the %d ranks", opt->batch, m->size);
	b = mpi__share(opt->batch, (size_t)m->size, (size_t)m->rank);
	if (m->order_cap < part->n) {
		mpi__unmem(m, m->order, m->order_cap * sizeof *m->order);
		m->order = mpi__mem(m, part->n * sizeof *m->order);
		m->order_cap = m->order ? part->n : 0;
	}
	if ((part->n && !m->order) || !mpi__reserve(m, &m->bx, &m->bx_cap, b * in) ||
	    !mpi__reserve(m, &m->by, &m->by_cap, b * out))
		return mpi__fail(msg, NB_ENOMEM, "net_sgd_epoch: out of memory");
	return NB_OK;
}

/* Examples order[from .. from + k - 1] of part, copied into the mini-batch arrays. */
static void take(nb_mpi *m, const nb_dataset *part, size_t from, size_t k)
{
	size_t in = part->features, out = part->classes;

	for (size_t j = 0; j < k; j++) {
		size_t e = m->order[from + j];

		memcpy(m->bx + j * in, part->x + e * in, in * sizeof *m->bx);
		memcpy(m->by + j * out, part->y + e * out, out * sizeof *m->by);
	}
}

/* How many of rank q's examples (n_q of them, b_q a step) step s uses. */
static size_t used_at(size_t n_q, size_t b_q, size_t s)
{
	size_t done = s * b_q;

	return done >= n_q ? 0 : n_q - done < b_q ? n_q - done : b_q;
}

/* One global step s of an epoch: ns[q] examples on rank q, b[q] a step. */
static int epoch_step(nb_mpi *m, nb_net *net, const nb_dataset *part, const nb_sgd *opt,
                      size_t s, const size_t *ns, double *cost, size_t *examples)
{
	char msg[NB_MSG_MAX] = "";
	size_t p = (size_t)m->size, r = (size_t)m->rank, total = 0, mine, b;
	double c = 0.0;
	int status;

	for (size_t q = 0; q < p; q++)
		total += used_at(ns[q], mpi__share(opt->batch, p, q), s);
	b = mpi__share(opt->batch, p, r);
	mine = used_at(part->n, b, s);
	take(m, part, s * b, mine);
	status = share_gradient(net, m->bx, m->by, mine, total, &c, msg);
	*examples = total;
	return sum_and_apply(m, net, status, msg, c, opt, cost);
}

int nb_mpi_net_sgd_epoch(nb_mpi *mpi, nb_net *net, const nb_dataset *part, const nb_sgd *opt,
                         size_t epoch, double *mean_cost, nb_progress_fn progress, void *ud)
{
	char msg[NB_MSG_MAX] = "";
	size_t *ns, all = 0, done = 0, steps = 0;
	double mine, total = 0.0;
	int status;

	if (mpi__entry(mpi) != NB_OK)
		return mpi__entry(mpi);
	ns = mpi->counts;
	status = epoch_ok(mpi, net, part, opt, msg);
	mine = status == NB_OK ? (double)part->n : 0.0;
	if (mpi__agree(mpi, status, msg, &mine, 1) != NB_OK)
		return mpi->status;
	for (int q = 0; q < mpi->size; q++) {  /* every rank's count, and the steps they take */
		size_t b = mpi__share(opt->batch, (size_t)mpi->size, (size_t)q), k;

		ns[q] = (size_t)mpi__vote(mpi, q, 0);
		all += ns[q];
		k = (ns[q] + b - 1) / b;
		steps = k > steps ? k : steps;
	}
	if (all == 0)
		return mpi__error(mpi, NB_EINVAL, "net_sgd_epoch: the parts hold no example");
	nb_mpi_epoch_order(nb_net_get_config(net).seed, epoch, mpi->rank, part->n, mpi->order);
	for (size_t s = 0; s < steps; s++) {
		double cost;
		size_t k;

		if (epoch_step(mpi, net, part, opt, s, ns, &cost, &k) != NB_OK)
			return mpi->status;
		total += cost * (double)k;
		done += k;
		if (progress)
			progress(ud, done, all);
	}
	if (mean_cost)
		*mean_cost = total / (double)all;
	return NB_OK;
}

/* ---- Evaluation ----------------------------------------------------------------------- */

int nb_mpi_net_evaluate(nb_mpi *mpi, nb_net *net, const nb_dataset *part, size_t *correct,
                        size_t *total, double *mean_cost)
{
	char msg[NB_MSG_MAX] = "";
	double vote[3] = { 0.0, 0.0, 0.0 }, right = 0.0, cost = 0.0, n = 0.0;
	size_t c = 0;
	int status;

	if (mpi__entry(mpi) != NB_OK)
		return mpi__entry(mpi);
	status = net_ok(net, "net_evaluate", msg);
	if (status == NB_OK && !part)
		status = mpi__fail(msg, NB_ENULL, "net_evaluate: part is NULL");
	if (status == NB_OK && part->n > 0) {
		double mc = 0.0;

		if (nb_net_evaluate(net, part, &c, &mc) != NB_OK)
			status = mpi__fail(msg, nb_net_status(net), "%s", nb_net_message(net));
		vote[0] = (double)c;
		vote[1] = mc * (double)part->n;
		vote[2] = (double)part->n;
	}
	if (mpi__agree(mpi, status, msg, vote, 3) != NB_OK)
		return mpi->status;
	for (int q = 0; q < mpi->size; q++) {
		right += mpi__vote(mpi, q, 0);
		cost += mpi__vote(mpi, q, 1);
		n += mpi__vote(mpi, q, 2);
	}
	if (correct)
		*correct = (size_t)right;
	if (total)
		*total = (size_t)n;
	if (mean_cost)
		*mean_cost = n > 0.0 ? cost / n : 0.0;
	return NB_OK;
}

/* ---- Checkpoints ---------------------------------------------------------------------- */

int nb_mpi_net_save(nb_mpi *mpi, const nb_net *net, const char *path)
{
	char msg[NB_MSG_MAX] = "";
	int status = NB_OK;

	if (mpi__entry(mpi) != NB_OK)
		return mpi__entry(mpi);
	if (mpi->rank == 0)
		status = nb_net_save(net, path, msg);
	return mpi__agree(mpi, status, msg, NULL, 0);
}

/* Rank 0: the parameters of the file at path into net, which must have the same. */
static int load_params(nb_net *net, const char *path, char *msg)
{
	nb_named_tensor want[NET_TENSORS], got[NET_TENSORS];
	size_t n, k;
	nb_net *file = NULL;
	int status = nb_net_load(path, &file, msg);

	if (status != NB_OK)
		return status;
	if (net_shapes(net, want, &n) != net_shapes(file, got, &k) || n != k) {
		char a[NB_MSG_MAX / 3], b[NB_MSG_MAX / 3];

		shapes_text(want, n, a, sizeof a);
		shapes_text(got, k, b, sizeof b);
		nb_net_free(file);
		return mpi__fail(msg, NB_EFORMAT, "net_restore: the file's parameters (%s) are not "
		                 "the network's (%s): %s", b, a, path);
	}
	for (size_t i = 0; i < n; i++)
		memcpy(want[i].data, got[i].data, tensor_size(&want[i]) * sizeof(double));
	nb_net_free(file);
	return NB_OK;
}

int nb_mpi_net_restore(nb_mpi *mpi, nb_net *net, const char *path)
{
	char msg[NB_MSG_MAX] = "";
	int status;

	if (mpi__entry(mpi) != NB_OK)
		return mpi__entry(mpi);
	status = net_ok(net, "net_restore", msg);
	if (same_shapes(mpi, net, "net_restore", status, msg) != NB_OK)
		return mpi->status;
	status = mpi->rank == 0 ? load_params(net, path, msg) : NB_OK;
	if (mpi__agree(mpi, status, msg, NULL, 0) != NB_OK)
		return mpi->status;
	return broadcast_params(mpi, net, "net_restore");
}
