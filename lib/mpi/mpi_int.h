/* mpi_int.h -- what the data-parallel library's modules share: the context, agreement
 * between ranks, and the sum in rank order. Written on nabla.h, nabla_nn.h and MPI only;
 * these helpers, named mpi__, are neither installed nor exported. */
#ifndef NB_MPI_INT_H
#define NB_MPI_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "nabla_mpi.h"

/* The most values a rank contributes to one agreement (mpi__agree()). */
#define MPI_VOTE_MAX 3

struct nb_mpi {
	MPI_Comm comm;           /* nabla's duplicate of the program's communicator */
	int rank, size;
	nb_alloc_fn alloc;       /* never NULL */
	void *alloc_ud;
	int status;              /* the sticky error the ranks agreed on */
	char message[NB_MSG_MAX];
	/* The sum's work space, grown when a sum needs more, never shrunk. */
	double *parts;           /* size x the largest part a rank sums */
	size_t parts_cap;
	int *count, *first;      /* size each: every rank's part of the buffer */
	int *recv_count, *recv_first; /* size each: where each rank's copy of this rank's
	                          * part arrives in parts */
	size_t *counts;          /* size: every rank's examples in an epoch */
	double *votes;           /* size x (1 + MPI_VOTE_MAX): every rank's status and values */
	double *pack;            /* nb_mpi_sum(), nb_mpi_broadcast(): the tensors, flat */
	size_t pack_cap;
	/* An epoch's work space (mpi_net.c). */
	size_t *order;           /* this rank's order of its examples */
	size_t order_cap;
	double *bx, *by;         /* this rank's share of a mini-batch */
	size_t bx_cap, by_cap;
};

/* n / parts, plus one for the first n % parts parts: part p's share of n, and where it
 * starts. The one split of batches and data sets between ranks. */
size_t mpi__share(size_t n, size_t parts, size_t p);
size_t mpi__share_first(size_t n, size_t parts, size_t p);

/* Memory of the context's allocator: size bytes (not zeroed), or NULL; give back. */
void *mpi__mem(const nb_mpi *m, size_t size);
void mpi__unmem(const nb_mpi *m, void *p, size_t size);
/* *p holding at least n doubles (*cap counts them): grown, its contents lost, when it
 * holds fewer. false when out of memory (*p is then NULL, *cap 0). */
bool mpi__reserve(const nb_mpi *m, double **p, size_t *cap, size_t n);

/* Format a message into msg (NB_MSG_MAX bytes) and return status. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
int mpi__fail(char *msg, int status, const char *fmt, ...);

/* The ranks agree (collective): each passes its status and message (NULL: none) and k <=
 * MPI_VOTE_MAX values, which mpi__vote() gives afterwards (value j of rank q). Returns
 * NB_OK when every status is NB_OK; otherwise the status of the lowest failing rank, whose
 * message, after "rank R: ", becomes the context's sticky error on every rank. A failed
 * MPI call is an error too (NB_EIO). */
int mpi__agree(nb_mpi *m, int status, const char *msg, const double *mine, size_t k);
double mpi__vote(const nb_mpi *m, int q, size_t j);
/* How many ranks failed in the last agreement. */
int mpi__failed_ranks(const nb_mpi *m);
/* Add text to the end of the sticky error's message (cut to fit). */
void mpi__append(nb_mpi *m, const char *text);

/* The sum of an n-double buffer over the ranks, in two halves. mpi__sum_ready(), on this
 * rank alone, splits the buffer into the ranks' parts and makes the work space (grown
 * only the first time): NB_OK, or an error in msg (NB_ENOMEM, NB_EINVAL for a buffer over
 * MPI's int counts), which the caller folds into the agreement that precedes the sum, so
 * that a step makes no collective for it. mpi__sum() (collective) then sums buf over the
 * ranks in rank order, in place, the same on every rank: NB_OK or NB_EIO, recorded. */
int mpi__sum_ready(nb_mpi *m, size_t n, char *msg);
int mpi__sum(nb_mpi *m, double *buf);

/* Fold v into the hash h (start from MPI_HASH_START): shapes, a value at a time. */
#define MPI_HASH_START 1469598103934665603ull
unsigned long long mpi__fold(unsigned long long h, unsigned long long v);

/* Agree on status, then check that every rank's shapes (hash) and sizes (total) are rank
 * 0's and agree on that: NB_ESHAPE for a rank whose are not ("fn: its what (N values) are
 * not shaped as rank 0's (M values)"). */
int mpi__agree_shapes(nb_mpi *m, const char *fn, int status, char *msg,
                      unsigned long long hash, size_t total, const char *what);

/* Record an error on the context (no agreement: for errors every rank meets alike). */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
int mpi__error(nb_mpi *m, int status, const char *fmt, ...);

/* The status to return at the start of a collective call: the sticky error, or NB_ENULL
 * for a NULL context. */
int mpi__entry(const nb_mpi *m);

#endif
