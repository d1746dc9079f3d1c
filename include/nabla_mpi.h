/* nabla_mpi.h -- data-parallel training over MPI, on top of nabla_nn.h: every process (a
 * rank) holds the same parameters, computes the gradient of its share of each global
 * mini-batch by replaying its own tape, the gradients are summed over the ranks, and every
 * rank applies the same update. Written on the public calls of nabla.h and nabla_nn.h and
 * on MPI; link with -lnabla_mpi -lnabla_nn -lnabla and the MPI library (pkg-config
 * nabla_mpi), and start the program with mpirun.
 *
 * The same answer as one process. The sum over the ranks is computed in a fixed order,
 * not in the MPI library's: rank q adds up part q of every rank's gradient as
 * ((g_0 + g_1) + g_2) + ... (fetched with MPI_Alltoallv), and MPI_Allgatherv gives every
 * rank every part. So a rerun with the same number of ranks gives the same parameters bit
 * for bit, on any MPI library, and they equal those of one process training on the same
 * global mini-batches to rounding (a few ulps per step: one process sums a mini-batch's
 * examples in one chain, P ranks in P chains, then the chains).
 *
 * Collective calls. Every function here that takes an nb_mpi, except nb_mpi_rank(),
 * nb_mpi_size(), nb_mpi_status() and nb_mpi_message(), is collective: every rank of the
 * communicator calls it, in the same order, with the same sizes and options (each with its
 * own data). Such a call never leaves a rank waiting for one that failed: each rank checks
 * its own arguments and work, then the ranks agree, and when any rank failed every rank
 * returns the status of the lowest failing rank, its message prefixed with that rank
 * ("rank 1: cannot open: No such file or directory: train-images-idx3-ubyte"), and keeps
 * it as the context's sticky error (nb_mpi_status(), nb_mpi_message()): later calls do
 * nothing and return it until nb_mpi_clear_error(). The errors a call cannot agree on are
 * those without a communicator to agree over: a NULL context, which returns NB_ENULL on
 * that rank alone, and nb_mpi_new() before MPI_Init() or on MPI_COMM_NULL. A rank that
 * dies (a crash, exit() without MPI_Finalize) is not an error of these calls: mpirun stops
 * the others.
 */
#ifndef NABLA_MPI_H
#define NABLA_MPI_H

#include <mpi.h>

#include "nabla_nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A communicator nabla trains over, with the work space of its sums. */
typedef struct nb_mpi nb_mpi;

/** Options of nb_mpi_new(); {0} or NULL gives the defaults. */
typedef struct nb_mpi_opts {
	nb_alloc_fn alloc;      /* every allocation of the context (NULL: malloc) */
	void *alloc_ud;         /* passed to alloc */
} nb_mpi_opts;

/** Make a context over comm (collective over comm): nabla works on a duplicate of comm,
 * so its messages never meet the program's, with MPI_ERRORS_RETURN, so that a failing MPI
 * call is an error nabla returns rather than an abort. MPI must be initialised
 * (MPI_Init()) and not finalised. The ranks agree: when one fails, every rank returns an
 * error and no context. Returns NB_OK and *out, or NB_ENULL (out is NULL), NB_EINVAL (MPI
 * not initialised, or comm is MPI_COMM_NULL: on this rank alone), NB_ENOMEM, NB_EIO (an
 * MPI call failed: msg has MPI's reason), with *out NULL and msg (NB_MSG_MAX bytes, may be
 * NULL) saying why: "mpi_new: out of memory" on the rank that ran out, "mpi_new: another
 * rank could not make its context (out of memory)" on the others. */
int nb_mpi_new(MPI_Comm comm, const nb_mpi_opts *opts, nb_mpi **out, char msg[NB_MSG_MAX]);

/** Free the context (collective: it frees the duplicate communicator). NULL does
 * nothing. */
void nb_mpi_free(nb_mpi *mpi);

/** This rank (0 .. size - 1) and the number of ranks; -1 and 0 for NULL. */
int nb_mpi_rank(const nb_mpi *mpi);
int nb_mpi_size(const nb_mpi *mpi);

/** The sticky error the ranks agreed on, and its message ("" when none); NB_ENULL and
 * "mpi is NULL" for NULL. nb_mpi_clear_error() clears it on this rank: call it on every
 * rank, since the others keep theirs. */
int nb_mpi_status(const nb_mpi *mpi);
const char *nb_mpi_message(const nb_mpi *mpi);
void nb_mpi_clear_error(nb_mpi *mpi);

/** Agree on the outcome of a program's own work: every rank passes its status (NB_OK or
 * an error) and message (may be NULL). Returns NB_OK on every rank when every status was
 * NB_OK; otherwise, on every rank, the status of the lowest rank that failed, with its
 * message, kept as the sticky error. */
int nb_mpi_agree(nb_mpi *mpi, int status, const char *message);

/* ---- Data: each rank loads its part ------------------------------------------------ */

/** nb_dataset_load_dir_part() of this rank's part: rank r of P loads part r of P (so a
 * rank never holds the examples the others train on), and the ranks agree on the outcome:
 * on error every rank's ds is empty. A rank's part may be empty (more ranks than
 * examples). */
int nb_mpi_dataset_load_dir(nb_mpi *mpi, const char *dir, const char *split,
                            const nb_load_opts *opts, nb_dataset *ds);

/** nb_dataset_load_idx_part() of this rank's part, as nb_mpi_dataset_load_dir(). */
int nb_mpi_dataset_load_idx(nb_mpi *mpi, const char *images, const char *labels,
                            const nb_load_opts *opts, nb_dataset *ds);

/* ---- Networks ----------------------------------------------------------------------- */

/** Give every rank rank 0's parameters: the ranks' networks must have the same
 * parameters (names and shapes, nb_net_tensors()), which the call checks first
 * (NB_ESHAPE: "rank 1: net_sync: its network's parameters (w1 (30x784), ...) are not rank
 * 0's (w1 (20x784), ...)"). Call it once after nb_net_new() on every rank (the same seed
 * gives the same start anyway: this makes sure). */
int nb_mpi_net_sync(nb_mpi *mpi, nb_net *net);

/** One data-parallel SGD step on the global mini-batch of n examples x, y (as
 * nb_net_sgd_step() takes them), which every rank passes whole: rank r takes its share,
 * n / P examples (one more on the first n % P ranks) in rank order, computes their
 * gradient weighed by its share (nb_net_gradient()), the ranks sum the gradients
 * (nb_net_grad()) in rank order, and every rank moves its parameters by the sum
 * (nb_net_apply_gradient()). *cost (may be NULL) gets the global mini-batch's cost before
 * the update, the same on every rank. The parameters after k steps equal those of one
 * process taking nb_net_sgd_step() on the same mini-batches, to rounding (bit for bit
 * with one rank). After the first step of a batch size a step allocates nothing.
 * Errors, agreed: those of nb_net_gradient() and nb_net_apply_gradient() on any rank,
 * and NB_EIO for a failed MPI call; after an error in the gradient no rank's parameters
 * have moved. An error in the update on some ranks only (no memory for the optimizer's
 * state, at the first step with momentum or Adam) leaves the ranks' parameters different:
 * the message says so; restore a checkpoint (nb_mpi_net_restore()). */
int nb_mpi_net_sgd_step(nb_mpi *mpi, nb_net *net, const double *x, const double *y,
                        size_t n, const nb_sgd *opt, double *cost);

/** One epoch over the training set split across the ranks: part holds this rank's
 * examples (nb_mpi_dataset_load_dir(), or any split of the program's: the parts may differ
 * in size). Each rank visits its examples in the order nb_mpi_epoch_order() gives for
 * (the network's seed, epoch, rank), and global step s is made of the next share of
 * opt->batch from every rank (rank r's share: batch / P, one more when r < batch % P), as
 * nb_mpi_net_sgd_step() makes one; a rank whose part is used up contributes nothing, and
 * the epoch ends when every part is. One process taking nb_net_sgd_step() on the
 * concatenation of the ranks' shares of each step trains the same network, to rounding.
 * The order depends on epoch, not on earlier calls, so a run restarted at epoch e from a
 * checkpoint saved after epoch e - 1 continues as if it had not stopped. *mean_cost (may
 * be NULL) gets the mean over all the examples of the cost before each step, the same on
 * every rank; progress (may be NULL) is called on every rank after each step with the
 * examples of all ranks done so far and their total. NB_EINVAL when opt->batch is smaller
 * than the number of ranks or the parts hold no example at all. */
int nb_mpi_net_sgd_epoch(nb_mpi *mpi, nb_net *net, const nb_dataset *part, const nb_sgd *opt,
                         size_t epoch, double *mean_cost, nb_progress_fn progress, void *ud);

/** The order in which rank `rank` visits its n examples in epoch `epoch` of a network of
 * seed `seed` (nb_mpi_net_sgd_epoch()): a Fisher-Yates shuffle of 0 .. n - 1 with an
 * nb_rng seeded from the three, into order (n entries). For a program that reproduces an
 * epoch with one process. */
void nb_mpi_epoch_order(unsigned long long seed, size_t epoch, int rank, size_t n,
                        size_t *order);

/** nb_net_evaluate() over a data set split across the ranks: *correct (may be NULL) gets
 * the examples classified right on all the parts, *total (may be NULL) how many there are,
 * *mean_cost (may be NULL) the mean cost over them; the same on every rank. A part may be
 * empty. */
int nb_mpi_net_evaluate(nb_mpi *mpi, nb_net *net, const nb_dataset *part, size_t *correct,
                        size_t *total, double *mean_cost);

/** Checkpoint: rank 0 saves its network to path with nb_net_save() (atomic: a failed save
 * never destroys an existing file), and the ranks agree on the outcome. path is read on
 * rank 0 only. */
int nb_mpi_net_save(nb_mpi *mpi, const nb_net *net, const char *path);

/** Restart: rank 0 loads the network saved at path (nb_net_load()), which must have the
 * parameters of net (names and shapes; NB_EFORMAT otherwise), and every rank's net gets
 * its parameters. The file is read on rank 0 only, so it need not be on the other machines.
 * A model file holds the parameters, not the optimizer's state: a run with momentum or
 * Adam restarts with that state zero. */
int nb_mpi_net_restore(nb_mpi *mpi, nb_net *net, const char *path);

/* ---- A program's own op graph ------------------------------------------------------- */

/** Give every rank rank 0's values of n leaves (variables or constants, owned or views;
 * the same shapes on every rank, checked: NB_ESHAPE naming the leaf), through nb_set(). */
int nb_mpi_broadcast(nb_mpi *mpi, nb_tensor *const *leaves, size_t n);

/** The sum over the ranks, in rank order, of weight times the values of src[i] (each
 * rank's gradients, say nb_grad() of its parameters after nb_backward() or a replay; its
 * weight, its share of the global mini-batch), written into the leaf dst[i] of the same
 * shape (a constant, say, to pass to nb_sgd_update() as the gradients) through nb_set(),
 * the same on every rank. src[i] and dst[i] may be of different tapes. After the first
 * call for a total size, a call allocates nothing. */
int nb_mpi_sum(nb_mpi *mpi, nb_tensor *const *src, nb_tensor *const *dst, size_t n,
               double weight);

#ifdef __cplusplus
}
#endif

#endif /* NABLA_MPI_H */
