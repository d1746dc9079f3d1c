/* mpi.c -- the context of data-parallel training: a duplicate communicator, agreement
 * between ranks on the outcome of each call (so that no rank waits in a collective for one
 * that failed), and the sum over the ranks in a fixed order, which makes a run with P
 * ranks reproducible to the bit on any MPI library. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mpi_int.h"

/* ---- Small things ------------------------------------------------------------------- */

size_t mpi__share(size_t n, size_t parts, size_t p)
{
	return n / parts + (p < n % parts);
}

size_t mpi__share_first(size_t n, size_t parts, size_t p)
{
	return p * (n / parts) + (p < n % parts ? p : n % parts);
}

void *mpi__mem(const nb_mpi *m, size_t size)
{
	return m->alloc(m->alloc_ud, NULL, 0, size ? size : 1);
}

void mpi__unmem(const nb_mpi *m, void *p, size_t size)
{
	if (p)
		m->alloc(m->alloc_ud, p, size ? size : 1, 0);
}

bool mpi__reserve(const nb_mpi *m, double **p, size_t *cap, size_t n)
{
	if (*cap >= n && *p)
		return true;
	mpi__unmem(m, *p, *cap * sizeof **p);
	*cap = 0;
	*p = n <= SIZE_MAX / sizeof **p ? mpi__mem(m, n * sizeof **p) : NULL;
	if (*p)
		*cap = n;
	return *p != NULL;
}

int mpi__fail(char *msg, int status, const char *fmt, ...)
{
	va_list ap;

	if (msg) {
		va_start(ap, fmt);
		vsnprintf(msg, NB_MSG_MAX, fmt, ap);
		va_end(ap);
	}
	return status;
}

int mpi__error(nb_mpi *m, int status, const char *fmt, ...)
{
	va_list ap;

	if (m->status != NB_OK)
		return m->status;
	va_start(ap, fmt);
	vsnprintf(m->message, sizeof m->message, fmt, ap);
	va_end(ap);
	m->status = status;
	return status;
}

int mpi__entry(const nb_mpi *m)
{
	return m ? m->status : NB_ENULL;
}

/* MPI's reason for error code rc, after what failed. */
static int mpi_failed(char *msg, const char *what, int rc)
{
	char reason[MPI_MAX_ERROR_STRING];
	int len = 0;

	if (MPI_Error_string(rc, reason, &len) != MPI_SUCCESS)
		snprintf(reason, sizeof reason, "error %d", rc);
	return mpi__fail(msg, NB_EIO, "%s failed: %s", what, reason);
}

/* ---- The context -------------------------------------------------------------------- */

static void release(nb_mpi *m)
{
	size_t p = (size_t)m->size;

	mpi__unmem(m, m->parts, m->parts_cap * sizeof *m->parts);
	mpi__unmem(m, m->count, p * sizeof *m->count);
	mpi__unmem(m, m->first, p * sizeof *m->first);
	mpi__unmem(m, m->recv_count, p * sizeof *m->recv_count);
	mpi__unmem(m, m->recv_first, p * sizeof *m->recv_first);
	mpi__unmem(m, m->counts, p * sizeof *m->counts);
	mpi__unmem(m, m->votes, p * (1 + MPI_VOTE_MAX) * sizeof *m->votes);
	mpi__unmem(m, m->pack, m->pack_cap * sizeof *m->pack);
	mpi__unmem(m, m->order, m->order_cap * sizeof *m->order);
	mpi__unmem(m, m->bx, m->bx_cap * sizeof *m->bx);
	mpi__unmem(m, m->by, m->by_cap * sizeof *m->by);
	if (m->comm != MPI_COMM_NULL)
		MPI_Comm_free(&m->comm);
	m->alloc(m->alloc_ud, m, sizeof *m, 0);
}

/* The context over the duplicate dup: its rank and size, and the arrays whose size is
 * the number of ranks. */
static int open_comm(nb_mpi *m, MPI_Comm dup, char *msg)
{
	size_t p;

	m->comm = dup;
	MPI_Comm_rank(m->comm, &m->rank);
	MPI_Comm_size(m->comm, &m->size);
	p = (size_t)m->size;
	m->count = mpi__mem(m, p * sizeof *m->count);
	m->first = mpi__mem(m, p * sizeof *m->first);
	m->recv_count = mpi__mem(m, p * sizeof *m->recv_count);
	m->recv_first = mpi__mem(m, p * sizeof *m->recv_first);
	m->counts = mpi__mem(m, p * sizeof *m->counts);
	m->votes = mpi__mem(m, p * (1 + MPI_VOTE_MAX) * sizeof *m->votes);
	if (!m->count || !m->first || !m->recv_count || !m->recv_first || !m->counts ||
	    !m->votes)
		return mpi__fail(msg, NB_ENOMEM, "mpi_new: out of memory");
	return NB_OK;
}

/* Whether every rank made its context. A context may lack the arrays mpi__agree() needs,
 * so this takes the worst status with MPI_Allreduce. */
static int agree_on_new(MPI_Comm dup, int status, char *msg)
{
	int worst = status;

	if (MPI_Allreduce(&status, &worst, 1, MPI_INT, MPI_MAX, dup) != MPI_SUCCESS)
		return mpi__fail(msg, NB_EIO, "mpi_new: MPI_Allreduce failed");
	if (worst != NB_OK && status == NB_OK)
		return mpi__fail(msg, worst, "mpi_new: another rank could not make its context "
		                 "(%s)", nb_status_text(worst));
	return worst;
}

/* A context over dup from alloc into *made, or an error in msg (the program's out is
 * NULL when it has nowhere to put one). */
static int make_context(MPI_Comm dup, const nb_mpi_opts *opts, nb_mpi **out,
                        nb_mpi **made, char *msg)
{
	nb_alloc_fn alloc = opts && opts->alloc ? opts->alloc : nb_default_alloc;
	nb_mpi *m;

	if (!out)
		return mpi__fail(msg, NB_ENULL, "mpi_new: out is NULL");
	m = alloc(opts ? opts->alloc_ud : NULL, NULL, 0, sizeof *m);
	if (!m)
		return mpi__fail(msg, NB_ENOMEM, "mpi_new: out of memory");
	memset(m, 0, sizeof *m);
	m->alloc = alloc;
	m->alloc_ud = opts ? opts->alloc_ud : NULL;
	*made = m;
	return open_comm(m, dup, msg);
}

/* The duplicate comes first, a collective every rank makes whatever its own arguments
 * and memory, so that the ranks can agree on the outcome over it. */
int nb_mpi_new(MPI_Comm comm, const nb_mpi_opts *opts, nb_mpi **out, char msg[NB_MSG_MAX])
{
	MPI_Comm dup = MPI_COMM_NULL;
	int up = 0, down = 0, rc, status;
	nb_mpi *m = NULL;

	if (out)
		*out = NULL;
	MPI_Initialized(&up);
	MPI_Finalized(&down);
	if (!up || down)
		return mpi__fail(msg, NB_EINVAL, "mpi_new: MPI is %s", down ? "finalised already"
		                 : "not initialised: call MPI_Init() first");
	if (comm == MPI_COMM_NULL)
		return mpi__fail(msg, NB_EINVAL, "mpi_new: the communicator is MPI_COMM_NULL");
	rc = MPI_Comm_dup(comm, &dup);
	if (rc != MPI_SUCCESS)
		return mpi_failed(msg, "mpi_new: MPI_Comm_dup", rc);
	MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
	status = agree_on_new(dup, make_context(dup, opts, out, &m, msg), msg);
	if (status != NB_OK) {
		if (m)
			release(m);  /* frees dup too */
		else
			MPI_Comm_free(&dup);
		return status;
	}
	*out = m;
	return NB_OK;
}

void nb_mpi_free(nb_mpi *mpi)
{
	if (mpi)
		release(mpi);
}

int nb_mpi_rank(const nb_mpi *mpi)
{
	return mpi ? mpi->rank : -1;
}

int nb_mpi_size(const nb_mpi *mpi)
{
	return mpi ? mpi->size : 0;
}

int nb_mpi_status(const nb_mpi *mpi)
{
	return mpi ? mpi->status : NB_ENULL;
}

const char *nb_mpi_message(const nb_mpi *mpi)
{
	return mpi ? mpi->message : "mpi is NULL";
}

void nb_mpi_clear_error(nb_mpi *mpi)
{
	if (mpi) {
		mpi->status = NB_OK;
		mpi->message[0] = '\0';
	}
}

/* ---- Agreement ---------------------------------------------------------------------- */

/* Every rank's status and values, gathered: one collective whatever happened before it. */
static int gather_votes(nb_mpi *m, int status, const double *mine, size_t k)
{
	double vote[1 + MPI_VOTE_MAX];
	int width = 1 + MPI_VOTE_MAX, rc;

	vote[0] = status;
	for (size_t j = 0; j < MPI_VOTE_MAX; j++)
		vote[1 + j] = j < k ? mine[j] : 0.0;
	rc = MPI_Allgather(vote, width, MPI_DOUBLE, m->votes, width, MPI_DOUBLE, m->comm);
	if (rc != MPI_SUCCESS) {
		char msg[NB_MSG_MAX];

		return mpi__error(m, mpi_failed(msg, "MPI_Allgather", rc), "%s", msg);
	}
	return NB_OK;
}

double mpi__vote(const nb_mpi *m, int q, size_t j)
{
	return m->votes[(size_t)q * (1 + MPI_VOTE_MAX) + 1 + j];
}

int mpi__agree(nb_mpi *m, int status, const char *msg, const double *mine, size_t k)
{
	char text[NB_MSG_MAX] = "";
	int failed = -1, rc;

	if (gather_votes(m, status, mine, k) != NB_OK)
		return m->status;
	for (int q = 0; q < m->size && failed < 0; q++)
		if (m->votes[(size_t)q * (1 + MPI_VOTE_MAX)] != NB_OK)
			failed = q;
	if (failed < 0)
		return NB_OK;
	if (failed == m->rank && msg)
		snprintf(text, sizeof text, "%s", msg);
	/* the failing rank's message, for every rank to say */
	rc = MPI_Bcast(text, (int)sizeof text, MPI_CHAR, failed, m->comm);
	text[sizeof text - 1] = '\0';
	if (rc != MPI_SUCCESS)
		snprintf(text, sizeof text, "failed with %s (its message was lost: MPI_Bcast "
		         "failed)", nb_status_name((int)m->votes[(size_t)failed * (1 + MPI_VOTE_MAX)]));
	return mpi__error(m, (int)m->votes[(size_t)failed * (1 + MPI_VOTE_MAX)], "rank %d: %s",
	                  failed, text);
}

int mpi__failed_ranks(const nb_mpi *m)
{
	int n = 0;

	for (int q = 0; q < m->size; q++)
		n += m->votes[(size_t)q * (1 + MPI_VOTE_MAX)] != NB_OK;
	return n;
}

void mpi__append(nb_mpi *m, const char *text)
{
	size_t used = strlen(m->message);

	snprintf(m->message + used, sizeof m->message - used, "%s", text);
}

int nb_mpi_agree(nb_mpi *mpi, int status, const char *message)
{
	if (mpi__entry(mpi) != NB_OK)
		return mpi__entry(mpi);
	return mpi__agree(mpi, status, message, NULL, 0);
}

/* ---- The sum in rank order ---------------------------------------------------------- */

/* The parts of an n-double buffer: rank q sums count[q] doubles from first[q], and gets
 * them from every rank, one after the other. */
int mpi__sum_ready(nb_mpi *m, size_t n, char *msg)
{
	size_t mine = mpi__share(n, (size_t)m->size, (size_t)m->rank);

	if (m->size == 1)
		return NB_OK;  /* one rank's sum is its buffer */
	if (n > (size_t)INT_MAX)
		return mpi__fail(msg, NB_EINVAL, "sum: %zu values, more than MPI's counts reach "
		                 "(%d)", n, INT_MAX);
	for (size_t q = 0; q < (size_t)m->size; q++) {
		m->count[q] = (int)mpi__share(n, (size_t)m->size, q);
		m->first[q] = (int)mpi__share_first(n, (size_t)m->size, q);
		m->recv_count[q] = (int)mine;
		m->recv_first[q] = (int)(q * mine);
	}
	if (!mpi__reserve(m, &m->parts, &m->parts_cap, mine * (size_t)m->size))
		return mpi__fail(msg, NB_ENOMEM, "sum: out of memory for %zu values",
		                 mine * (size_t)m->size);
	return NB_OK;
}

/* This rank's part, from every rank's copy in parts (rank q's at q * mine), added up in
 * rank order: ((g_0 + g_1) + g_2) + ..., element by element. */
static void add_up(const nb_mpi *m, double *out, size_t mine)
{
	memcpy(out, m->parts, mine * sizeof *out);
	for (size_t q = 1; q < (size_t)m->size; q++) {
		const double *g = m->parts + q * mine;

		for (size_t j = 0; j < mine; j++)
			out[j] += g[j];
	}
}

int mpi__sum(nb_mpi *m, double *buf)
{
	char msg[NB_MSG_MAX] = "";
	int rc;

	if (m->size == 1)
		return NB_OK;
	/* part q of every rank's buffer to rank q */
	rc = MPI_Alltoallv(buf, m->count, m->first, MPI_DOUBLE, m->parts, m->recv_count,
	                   m->recv_first, MPI_DOUBLE, m->comm);
	if (rc != MPI_SUCCESS)
		return mpi__error(m, mpi_failed(msg, "sum: MPI_Alltoallv", rc), "%s", msg);
	add_up(m, buf + m->first[m->rank], (size_t)m->count[m->rank]);
	rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, m->count, m->first,
	                    MPI_DOUBLE, m->comm);
	if (rc != MPI_SUCCESS)
		return mpi__error(m, mpi_failed(msg, "sum: MPI_Allgatherv", rc), "%s", msg);
	return NB_OK;
}

/* ---- Shapes the ranks agree on ------------------------------------------------------ */

unsigned long long mpi__fold(unsigned long long h, unsigned long long v)
{
	return (h ^ v) * 1099511628211ull;  /* FNV-1a, a value at a time */
}

int mpi__agree_shapes(nb_mpi *m, const char *fn, int status, char *msg,
                      unsigned long long hash, size_t total, const char *what)
{
	double mine[2] = { (double)(hash >> 11), (double)total };  /* 53 bits: exact */

	if (mpi__agree(m, status, msg, mine, 2) != NB_OK)
		return m->status;
	if (mpi__vote(m, 0, 0) != mine[0] || mpi__vote(m, 0, 1) != mine[1])
		status = mpi__fail(msg, NB_ESHAPE, "%s: its %s (%zu values) are not shaped as rank "
		                   "0's (%.0f values)", fn, what, total, mpi__vote(m, 0, 1));
	return mpi__agree(m, status, msg, NULL, 0);
}
