/* nabla.h -- tape-based reverse-mode automatic differentiation over tensors.
 *
 * A program records tensor ops on a tape (a Wengert list). Each op is evaluated at once
 * and appended as a node. nb_backward() sweeps the tape in reverse and applies each op's
 * backward rule, written with nabla's own ops, so gradients are nodes on the same tape:
 * they can be read, replayed and differentiated again. Numbers are double.
 *
 * Ownership in one sentence: the tape owns every tensor recorded on it; tensor handles
 * are borrowed until nb_tape_free(). Nobody frees a tensor.
 *
 * Threads: tapes, networks and data sets are independent. Different threads may use
 * different ones at the same time; one tape (or network) must not be used by two threads
 * at once; reading a value counts as using its tape, since it may recompute it. The
 * matrix kernels' thread count belongs to a tape (nb_tape_set_threads(), default 1); their
 * extra threads come from a pool the process shares, and no tape waits while another
 * uses it.
 *
 * Errors are sticky: the first failure (bad shape, NULL argument, out of memory, ...) is
 * recorded on the tape with a message naming the op and the shapes; every later op on that
 * tape returns NULL at once. Read nb_tape_status() and nb_tape_message() when convenient.
 */
#ifndef NABLA_H
#define NABLA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Version ----------------------------------------------------------------------- */

/* NB_VERSION_MAJOR, NB_VERSION_MINOR, NB_VERSION_PATCH, NB_VERSION_STRING ("MAJOR.MINOR.PATCH")
 * and NB_VERSION_NUMBER (MAJOR * 10000 + MINOR * 100 + PATCH): the version of these headers,
 * in nabla_version.h, which configure writes from the package's version. */
#include "nabla_version.h"

/** The library's version as "MAJOR.MINOR.PATCH" (static storage), and as a number built like
 * NB_VERSION_NUMBER. */
const char *nb_version(void);
int nb_version_number(void);

/* ---- Status ------------------------------------------------------------------------ */

/** X(name, value, description): the one list of status codes. NB_ESTALE is no longer
 * returned (values are recomputed when read); it keeps its number so codes stay stable.
 * NB_EINTERNAL means a bug in nabla (a backward rule broke an invariant). */
#define NB_STATUS_MAP(X)                                              \
	X(NB_OK, 0, "no error")                                       \
	X(NB_ENULL, 1, "NULL argument")                               \
	X(NB_ESHAPE, 2, "shapes do not fit")                          \
	X(NB_ERANK, 3, "rank out of range")                           \
	X(NB_EINVAL, 4, "invalid argument")                           \
	X(NB_ETAPE, 5, "tensor belongs to another tape")              \
	X(NB_ENOMEM, 6, "out of memory")                              \
	X(NB_EIO, 7, "input/output error")                            \
	X(NB_EFORMAT, 8, "bad file format")                           \
	X(NB_ENONFINITE, 9, "non-finite value")                       \
	X(NB_ESTALE, 10, "stale value")                               \
	X(NB_EINTERNAL, 11, "internal error")

enum nb_status {
#define NB_STATUS_ENUM(name, value, text) name = value,
	NB_STATUS_MAP(NB_STATUS_ENUM)
#undef NB_STATUS_ENUM
};

/** Tensors have rank 0 (a scalar) to NB_MAX_RANK. */
#define NB_MAX_RANK 4

/** Size of a buffer that holds any message nabla writes, terminating NUL included. The
 * functions that write one into the caller's buffer take it as char msg[NB_MSG_MAX], so
 * that compilers can warn about a smaller array; NULL is allowed wherever a function says
 * so (hence no [static NB_MSG_MAX], which would promise a buffer). */
#define NB_MSG_MAX 256

/** The symbolic name of a status ("NB_ESHAPE"), or "NB_UNKNOWN". Static storage. */
const char *nb_status_name(int status);

/** A short English description of a status ("shapes do not fit"). Static storage. */
const char *nb_status_text(int status);

/* ---- Tape -------------------------------------------------------------------------- */

typedef struct nb_tape nb_tape;
typedef struct nb_tensor nb_tensor;

/** Allocator hook, as Lua's lua_Alloc: with nsize == 0 free ptr (which may be NULL) and
 * return NULL; otherwise return a block of nsize bytes (ptr is NULL: nabla never
 * reallocates through the hook), or NULL on failure. osize is the size of ptr's block.
 * ud is the pointer given to nb_tape_new_alloc(). */
typedef void *(*nb_alloc_fn)(void *ud, void *ptr, size_t osize, size_t nsize);

/** The allocator behind every hook left NULL: malloc and free in the shape of
 * nb_alloc_fn, for an allocator of one's own that counts or limits and then forwards. */
void *nb_default_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/** Make t read-only to everyone but the holder of key (any non-NULL pointer), until
 * nb_tape_unlock(t, key): whatever would change t then fails with NB_EINVAL and the
 * message "FN: the tape is read-only (its owner locked it with nb_tape_lock)" recorded on
 * t (clear it with nb_tape_clear_error()): recording ops or leaves, sweeps, nb_set(),
 * nb_touch(), nb_set_name(), optimizer updates, nb_tape_check_finite(), rewinds, resets,
 * and nb_tape_free(), which then does nothing. Reading values (recomputed when stale, as
 * always), gradients, names and pictures, and nb_tape_replay(), work. A network locks the
 * tapes nb_net_tape() hands out. Returns NB_OK, NB_ENULL, or NB_EINVAL when t is locked
 * already; nb_tape_unlock() NB_EINVAL for another key or a tape not locked. */
int nb_tape_lock(nb_tape *t, const void *key);
int nb_tape_unlock(nb_tape *t, const void *key);
/** Non-zero when t is locked. */
int nb_tape_locked(const nb_tape *t);

/** A new empty tape using malloc/free. Returns NULL only if memory is exhausted. */
nb_tape *nb_tape_new(void);

/** A new empty tape that allocates everything through alloc (called with ud). Returns NULL
 * if alloc is NULL or the first allocation fails. */
nb_tape *nb_tape_new_alloc(nb_alloc_fn alloc, void *ud);

/** Free the tape and every tensor recorded on it. nb_tape_free(NULL) does nothing. */
void nb_tape_free(nb_tape *t);

/** NB_OK, or the status of the first error recorded on the tape. A NULL tape: NB_ENULL. */
int nb_tape_status(const nb_tape *t);

/** The message of the first error ("matmul: inner dimensions differ: (3x4) @ (5x2)"), ""
 * when there is none, "tape is NULL" for a NULL tape. Borrowed until the next
 * nb_tape_clear_error() or nb_tape_free(). */
const char *nb_tape_message(const nb_tape *t);

/** Forget the recorded error so that the tape can be used again. Nodes recorded before the
 * error stay valid; the failed call recorded nothing. */
void nb_tape_clear_error(nb_tape *t);

/** With on != 0, check every value the tape computes from now on, in recording, replay and
 * backward alike (as PyTorch's anomaly detection does): the first node that produces a
 * NaN or an infinity records NB_ENONFINITE with a message naming the op, the node, the
 * element, its shape and the pass ("log: produced NaN at element 0 of node 1, shape (2),
 * in the forward pass"). Off by default: it reads every value once more. */
void nb_tape_check_finite(nb_tape *t, int on);

/** Let the matrix kernels of this tape's ops use up to n threads, the calling one among
 * them (default 1; below 1 means 1; capped at the processors online). Allowed on a locked
 * tape: it changes no value. Results are identical for any count. Only products of about
 * two million multiply-adds or more are shared out, with threads of a pool the process
 * keeps (started on first use, asleep between products). A product never waits for
 * another tape's: while the pool works on one, the others run on their calling threads
 * alone. Returns the count granted; for a NULL tape, 1, doing nothing. */
int nb_tape_set_threads(nb_tape *t, int n);

/** The count nb_tape_set_threads() granted the tape: 1 until it is called, and for NULL. */
int nb_tape_threads(const nb_tape *t);

/** Number of nodes on the tape (leaves included). Hash-consing shows here: recording an op
 * that is already on the tape with the same inputs and attributes adds no node. */
size_t nb_tape_size(const nb_tape *t);

/** Bytes the tape holds from its allocator: its nodes' memory (kept for reuse after a
 * rewind), the node list, the hash-consing table and the kernels' scratch space. */
size_t nb_tape_bytes(const nb_tape *t);

/** A position on the tape: the number of nodes recorded so far (0 for a NULL tape). */
size_t nb_tape_mark(const nb_tape *t);

/** Drop every node recorded after mark (from nb_tape_mark()), gradient nodes included, and
 * keep their memory for the nodes recorded next: a loop that records a graph, uses it and
 * rewinds allocates nothing once its first iteration has run. Handles of dropped nodes
 * must not be used again (their memory holds the next nodes); nodes before the mark stay
 * valid. When a dropped node is a gradient of the last backward sweep, nb_grad() returns
 * NULL until the next sweep. The tape's error, if any, is kept. Returns NB_OK, NB_ENULL,
 * or NB_EINVAL for a mark past the end of the tape (recorded on the tape). */
int nb_tape_rewind(nb_tape *t, size_t mark);

/** Drop every node: nb_tape_rewind(t, 0). */
int nb_tape_reset(nb_tape *t);

/** The most recently recorded node named name (see nb_set_name()), or NULL when there is
 * none, t or name is NULL, or name is "". Records no error. */
nb_tensor *nb_tape_find(const nb_tape *t, const char *name);

/* ---- Leaves ------------------------------------------------------------------------ */

/** A constant leaf (an input or a target) of the given shape: rank 0..NB_MAX_RANK, every
 * dim >= 1. data (row-major, nb_size() doubles) is copied; NULL means zeros. Constants get
 * no gradient. Their values may be changed with nb_set() and the tape replayed. */
nb_tensor *nb_constant(nb_tape *t, int rank, const size_t *dim, const double *data);

/** A variable leaf (a parameter): like nb_constant, but nb_backward() gives it a gradient. */
nb_tensor *nb_variable(nb_tape *t, int rank, const size_t *dim, const double *data);

/** A variable (or constant) leaf whose values are the caller's array data, nb_size()
 * doubles row-major, used in place and never copied: parameters that live in the caller's
 * memory, shared by several tapes, or updated by the caller's own optimizer. data must
 * stay valid until the tape is freed. After writing into data, call nb_touch() so that
 * the values computed from it are recomputed when next read. NB_ENULL for a NULL data. */
nb_tensor *nb_variable_view(nb_tape *t, int rank, const size_t *dim, double *data);
nb_tensor *nb_constant_view(nb_tape *t, int rank, const size_t *dim, double *data);

/** A literal scalar v, rank 0. Literals are immutable and hash-consed by value, so
 * nb_scalar(t, 1.0) twice is one node. */
nb_tensor *nb_scalar(nb_tape *t, double v);

/** A literal tensor of the given shape with every element equal to v (hash-consed). */
nb_tensor *nb_fill(nb_tape *t, int rank, const size_t *dim, double v);

/** Give x a short name (at most NB_NAME_MAX - 1 bytes are kept) for graph pictures. A NULL
 * x does nothing; a NULL name removes the name. */
#define NB_NAME_MAX 24
void nb_set_name(nb_tensor *x, const char *name);
/** The name given with nb_set_name(), or "" (borrowed until nb_tape_free()). */
const char *nb_name(const nb_tensor *x);

/** Copy n doubles (n must be nb_size(x)) into the leaf x (constant or variable, owned or a
 * view). Every value read afterwards is computed from the new values (see "Values" below).
 * Errors (recorded on x's tape and returned): NB_ENULL, NB_EINVAL for a non-leaf or a
 * literal, NB_ESHAPE for a wrong n. */
int nb_set(nb_tensor *x, const double *data, size_t n);

/** Say that the values of the leaf x changed in place (a view's array written by the
 * caller): as nb_set() without the copy. It takes effect even on a tape that holds an
 * error (and returns that error), since the memory has changed already. NB_ENULL, or
 * NB_EINVAL for a non-leaf. */
int nb_touch(nb_tensor *x);

/* ---- Tensor queries (x may be NULL: rank -1, size 0, value NULL, name NULL) ---------- */

int nb_rank(const nb_tensor *x);
/** Size of axis i (0 <= i < rank), or 0 when i is out of range. */
size_t nb_dim(const nb_tensor *x, int i);
/** Number of elements: the product of the dims, 1 for a scalar. */
size_t nb_size(const nb_tensor *x);
/** Row-major values, borrowed until the tape is freed or rewound below x. Always current:
 * when a leaf x depends on changed since x was computed, nb_value() first recomputes x and
 * only the stale nodes it depends on (allocating nothing). The pointer stays valid; its
 * contents change when x is recomputed. Reading counts as using the tape (threads). */
const double *nb_value(const nb_tensor *x);
/** Name of the op that produced x: "constant", "variable", "fill", "matmul", ... */
const char *nb_op_name(const nb_tensor *x);
/** Input i of x (NULL for leaves or i out of range): lets tests look inside the graph. */
nb_tensor *nb_input(const nb_tensor *x, int i);
/** Write the shape of x as "(3x4)" ("()" for a scalar) into buf of NB_MSG_MAX bytes. */
char *nb_shape_str(const nb_tensor *x, char *buf);

/** Print x for humans on out: a line with its op, its name (if it has one) and its shape,
 * then its values as numpy prints an array: nested brackets, one row of the last axis per
 * line, a blank line between matrices, rows wrapped before column 75. The values printed
 * share one format with 6 significant digits (as %.6g), right-aligned to one width: fixed
 * notation with the points aligned ("2." for a whole number), or exponential notation with
 * as many digits after the point for all ("1.50e-07  2.25e+08") when one of them needs it
 * (an absolute value below 1e-4 or from 1e6 on) or the largest nonzero absolute value
 * exceeds 1000 times the smallest. Non-finite values print as nan, inf and -inf; a scalar
 * is one value. Above 1000 elements, each axis longer than 6 shows only its first and
 * last 3 items, with "..." between them. For a 2x3 variable named w:
 *
 *     variable w (2x3)
 *     [[ 1.   -2.5   3.  ]
 *      [-0.25 10.    6.  ]]
 *
 * Reads nb_value(x) once, allocates nothing, leaves the tape's error alone, and flushes
 * out. Returns NB_OK, NB_ENULL when out or x is NULL (nothing is written), or NB_EIO when
 * writing or flushing fails. */
int nb_print(FILE *out, const nb_tensor *x);

/* ---- Ops ----------------------------------------------------------------------------
 * Every op returns a new tensor on t (or an equal node already there, brought up to date),
 * or NULL after recording an error on t: NB_ENULL for a NULL input, NB_ETAPE for an input
 * of another tape, NB_ESHAPE / NB_ERANK / NB_EINVAL as each op says, NB_ESHAPE or
 * NB_ENOMEM for a result too large to hold. A call that fails records nothing (no node).
 * After an error every op on t returns NULL without touching the message.
 * Literal zeros and ones (nb_fill(.., 0.0), nb_scalar(t, 1.0), and the zero gradients
 * nb_grad() returns) are simplified structurally, as symbolic zeros are in JAX: a ⊙ 0 and
 * 0 @ b are zero literals, a + 0, a - 0, a ⊙ 1 and a / 1 are a (broadcast to the result's
 * shape), even where a holds NaN or an infinity.
 * Elementwise binary ops broadcast as numpy does: shapes are aligned on the right, and
 * each pair of dims must be equal or one of them 1. */

/** c = a + b, broadcasting. */
nb_tensor *nb_add(nb_tape *t, nb_tensor *a, nb_tensor *b);
/** c = a - b, broadcasting. */
nb_tensor *nb_sub(nb_tape *t, nb_tensor *a, nb_tensor *b);
/** c = a ⊙ b, the Hadamard (elementwise) product, broadcasting. */
nb_tensor *nb_mul(nb_tape *t, nb_tensor *a, nb_tensor *b);
/** c = a / b, elementwise, broadcasting. */
nb_tensor *nb_div(nb_tape *t, nb_tensor *a, nb_tensor *b);
/** y = c * x for a constant c (not differentiated). */
nb_tensor *nb_scale(nb_tape *t, nb_tensor *x, double c);
/** y = -x. */
nb_tensor *nb_neg(nb_tape *t, nb_tensor *x);
/** y = 1 / (1 + exp(-x)), elementwise. */
nb_tensor *nb_sigmoid(nb_tape *t, nb_tensor *x);
/** y = tanh(x), elementwise. */
nb_tensor *nb_tanh(nb_tape *t, nb_tensor *x);
/** y = exp(x), elementwise. */
nb_tensor *nb_exp(nb_tape *t, nb_tensor *x);
/** y = log(x), elementwise (NaN for x < 0, as the C library's log). */
nb_tensor *nb_log(nb_tape *t, nb_tensor *x);

/** y = x^p for a constant p (not differentiated), elementwise, as the C library's pow:
 * NaN for x < 0 unless p is a whole number. x^0 is a literal 1 and x^1 is x (structural),
 * x^2 is nb_square(). NB_EINVAL for a p that is not finite. */
nb_tensor *nb_pow(nb_tape *t, nb_tensor *x, double p);
/** y = x ⊙ x. */
nb_tensor *nb_square(nb_tape *t, nb_tensor *x);
/** y = sqrt(x), elementwise (NaN for x < 0; the gradient at 0 is infinite). */
nb_tensor *nb_sqrt(nb_tape *t, nb_tensor *x);
/** y = |x|, elementwise; its gradient at 0 is 0. */
nb_tensor *nb_abs(nb_tape *t, nb_tensor *x);
/** y = log(1 + x), elementwise, accurate for small x. */
nb_tensor *nb_log1p(nb_tape *t, nb_tensor *x);
/** y = log(1 + exp(x)), elementwise, computed without overflow; its gradient is
 * sigmoid(x). */
nb_tensor *nb_softplus(nb_tape *t, nb_tensor *x);

/** y = max(x, 0), elementwise. */
nb_tensor *nb_relu(nb_tape *t, nb_tensor *x);
/** y = 1 where x > 0, else 0: the derivative of relu. Its own gradient is zero. */
nb_tensor *nb_step(nb_tape *t, nb_tensor *x);
/** y = exp(x) / sum exp(x) along axis (0 <= axis < rank, NB_EINVAL otherwise), computed
 * with the maximum subtracted. For a (classes x n) matrix, axis 0 gives one distribution
 * per column, that is per example. */
nb_tensor *nb_softmax(nb_tape *t, nb_tensor *x, int axis);

/** max(a, b) and min(a, b), elementwise, broadcasting; a NaN operand gives NaN. At a tie
 * the gradient goes to a. */
nb_tensor *nb_maximum(nb_tape *t, nb_tensor *a, nb_tensor *b);
nb_tensor *nb_minimum(nb_tape *t, nb_tensor *a, nb_tensor *b);
/** y = a where m != 0, else b, elementwise, broadcasting all three (a 0/1 mask m selects
 * between two tensors; NaN where m is NaN). m gets no gradient. */
nb_tensor *nb_where(nb_tape *t, nb_tensor *m, nb_tensor *a, nb_tensor *b);

/** The mean of all elements (a scalar), or along one axis, keepdim as nb_sum_axis(). */
nb_tensor *nb_mean(nb_tape *t, nb_tensor *x);
nb_tensor *nb_mean_axis(nb_tape *t, nb_tensor *x, int axis, int keepdim);
/** The maximum along one axis, keepdim as nb_sum_axis(); a line holding a NaN gives NaN.
 * Its gradient goes to the first element of the line that holds the maximum. */
nb_tensor *nb_max_axis(nb_tape *t, nb_tensor *x, int axis, int keepdim);
/** Where the maxima of nb_max_axis() are: the index along axis of each line's maximum
 * (the first at a tie, the first NaN if any), for the n = nb_size(x) / nb_dim(x, axis)
 * lines in row-major order, into idx. A query of x's current values, not an op: nothing
 * is recorded or differentiated. NB_ENULL, NB_EINVAL (axis), NB_ESHAPE (n), recorded on
 * x's tape, or the tape's error. */
int nb_argmax(const nb_tensor *x, int axis, size_t *idx, size_t n);
/** log sum exp(x) along one axis, keepdim as nb_sum_axis(), computed with the maximum
 * subtracted (finite for large x; +inf when the line holds +inf). */
nb_tensor *nb_logsumexp(nb_tape *t, nb_tensor *x, int axis, int keepdim);
/** log softmax(x) along one axis: x - logsumexp(x), never the log of a rounded 0. */
nb_tensor *nb_log_softmax(nb_tape *t, nb_tensor *x, int axis);

/** Flags of nb_matmul_t: use the transpose of an operand without copying it. */
enum { NB_TRANS_A = 1, NB_TRANS_B = 2 };

/** c = a b for rank-2 a (m x k) and b (k x n); for rank-3 a (batch x m x k) and b
 * (batch x k x n), one product per batch element, c (batch x m x n). NB_ERANK unless both
 * have rank 2 or both rank 3; NB_ESHAPE when the inner dimensions or the batch sizes
 * differ. */
nb_tensor *nb_matmul(nb_tape *t, nb_tensor *a, nb_tensor *b);
/** c = op(a) op(b), where op(a) is a^T when flags has NB_TRANS_A (likewise B); in a batch,
 * each matrix is transposed. */
nb_tensor *nb_matmul_t(nb_tape *t, nb_tensor *a, nb_tensor *b, int flags);
/** y = x^T for rank-2 x (NB_ERANK otherwise). */
nb_tensor *nb_transpose(nb_tape *t, nb_tensor *x);
/** The same values in another shape with as many elements (NB_ESHAPE otherwise). */
nb_tensor *nb_reshape(nb_tape *t, nb_tensor *x, int rank, const size_t *dim);

/** The range [start, end) of one axis (0 <= start < end <= nb_dim(x, axis); NB_EINVAL
 * otherwise); the whole axis is x itself. */
nb_tensor *nb_slice(nb_tape *t, nb_tensor *x, int axis, size_t start, size_t end);
/** x with before zeros ahead of it and after zeros behind it along one axis (for a
 * convolution's zero padding, one call per axis); 0 and 0 is x itself. */
nb_tensor *nb_pad(nb_tape *t, nb_tensor *x, int axis, size_t before, size_t after);
/** The n tensors xs, of one rank and the same dims but along axis, joined along it in
 * order: NB_ENULL, NB_ETAPE or NB_ESHAPE naming the index of a bad one, NB_EINVAL for
 * n == 0 or a bad axis. */
nb_tensor *nb_concat(nb_tape *t, nb_tensor *const *xs, size_t n, int axis);
/** Axes reordered: output axis i is input axis perm[i] (perm has nb_rank(x) entries, a
 * permutation of 0 .. rank - 1; NB_EINVAL otherwise), as numpy.transpose(x, perm). */
nb_tensor *nb_permute(nb_tape *t, nb_tensor *x, const int *perm);

/** Rows of a table by index, an embedding lookup: row i of the result is row idx[i] of
 * table (V x D, or V for a vector: a result of idx's length). idx is a vector of whole
 * numbers in [0, V) (NB_EINVAL naming the first that is not; NB_ERANK for other ranks);
 * it gets no gradient, and the table's gradient sums the rows of a repeated index. An
 * index made invalid later by nb_set() gives rows of NaN. */
nb_tensor *nb_gather_rows(nb_tape *t, nb_tensor *table, nb_tensor *idx);

/** A 2-d convolution as torch.nn.functional.conv2d has it (cross-correlation, no bias):
 * x is N x C x H x W, w is O x C x KH x KW, the result N x O x OH x OW with
 * OH = (H + 2 pad - KH) / stride + 1 (likewise OW), x padded with pad zeros on every side.
 * Add a bias of shape (O x 1 x 1) with nb_add. NB_ERANK for other ranks, NB_ESHAPE when
 * the channels differ or the window does not fit, NB_EINVAL for a stride of 0. Its
 * gradients are made of ops (the windows of an image and their adjoint), so they can be
 * differentiated again. */
nb_tensor *nb_conv2d(nb_tape *t, nb_tensor *x, nb_tensor *w, size_t stride, size_t pad);
/** Pooling of N x C x H x W images over k x k windows moved by stride, no padding: the
 * maximum (its gradient goes to the first maximum of each window) or the mean of each. */
nb_tensor *nb_max_pool2d(nb_tape *t, nb_tensor *x, size_t k, size_t stride);
nb_tensor *nb_avg_pool2d(nb_tape *t, nb_tensor *x, size_t k, size_t stride);

/** Dropout in training: x ⊙ mask, each element of mask 0 with probability p (in [0, 1);
 * NB_EINVAL otherwise) and 1 / (1 - p) otherwise. The mask is drawn again each time the
 * node is computed again (a replay on new inputs: every training step), from seed and the
 * number of masks drawn before, so a run is reproducible; a new recording starts the
 * sequence of masks again. p = 0 is x itself. Two calls with the same x, p and seed are
 * one node (hash-consing): give independent masks their own seeds. At evaluation, do not
 * record it. */
nb_tensor *nb_dropout(nb_tape *t, nb_tensor *x, double p, unsigned long long seed);

/** Sum of all elements, a scalar. */
nb_tensor *nb_sum(nb_tape *t, nb_tensor *x);
/** Sum along one axis (0 <= axis < rank, NB_EINVAL otherwise). keepdim != 0 keeps that
 * axis with size 1; otherwise it is removed. */
nb_tensor *nb_sum_axis(nb_tape *t, nb_tensor *x, int axis, int keepdim);
/** Broadcast x to the given shape, as numpy.broadcast_to (NB_ESHAPE if it does not fit). */
nb_tensor *nb_broadcast_to(nb_tape *t, nb_tensor *x, int rank, const size_t *dim);
/** Sum x down to a shape it broadcasts from: the adjoint of broadcasting, which turns the
 * gradient of a broadcast result into the gradient of its operand (NB_ESHAPE if the shape
 * does not broadcast to x's shape). */
nb_tensor *nb_reduce_to(nb_tape *t, nb_tensor *x, int rank, const size_t *dim);

/** Quadratic cost C = 1/(2n) sum ||y - a||^2, a scalar, for a and y of the same shape
 * (NB_ESHAPE otherwise). The last axis indexes the n examples, as the columns of
 * Nielsen's matrix form; a tensor of rank 0 or 1 is one example (n = 1). */
nb_tensor *nb_quadratic_cost(nb_tape *t, nb_tensor *a, nb_tensor *y);

/** Cross-entropy cost of a sigmoid output layer, from its weighted input z (a = sigmoid(z)):
 * C = -1/n sum [y ln a + (1 - y) ln(1 - a)] (Nielsen's equation 63), computed from z so
 * that it is finite for every z; dC/dz = (a - y) / n. z and y have the same shape
 * (NB_ESHAPE otherwise); n as for nb_quadratic_cost. */
nb_tensor *nb_sigmoid_cross_entropy(nb_tape *t, nb_tensor *z, nb_tensor *y);
/** Cross-entropy cost of a softmax output layer (softmax along axis 0), from z:
 * C = -1/n sum y ln softmax(z); for targets summing to 1 per example, dC/dz = (a - y) / n. */
nb_tensor *nb_softmax_cross_entropy(nb_tape *t, nb_tensor *z, nb_tensor *y);

/* ---- User-defined ops ---------------------------------------------------------------
 * A program can add an op of its own and use it as it uses nabla's: it is recorded,
 * hash-consed, replayed and swept like a built-in op, the gradient checker checks it (and
 * names it when its rule is wrong), and since its backward rule is written with nabla's
 * ops, its gradients can be differentiated again. An op is a definition the program keeps
 * (usually a static const struct) for as long as any tape holds a node of it. */

/** The most inputs an op takes. */
#define NB_OP_MAX_ARITY 4

typedef struct nb_op_def nb_op_def;

/** Shape rule: the output's shape for the inputs in[0..arity-1] (read their shapes with
 * nb_rank() and nb_dim()) into *rank and dim; return NB_OK, or an error status (NB_ESHAPE,
 * NB_ERANK, NB_EINVAL) after writing the reason into msg ("inputs (2x3) and (3) differ"),
 * which nabla records on the tape after the op's name. */
typedef int (*nb_shape_fn)(const nb_op_def *op, nb_tensor *const *in, int *rank,
                           size_t dim[NB_MAX_RANK], char msg[NB_MSG_MAX]);

/** Forward kernel: the output's values y (nb_size(out) doubles, row-major) from the inputs'
 * values x[i] (nb_size(in[i]) doubles each). It runs at recording and at every replay, so
 * it must compute from x alone, without recording ops or reading other values. */
typedef void (*nb_forward_fn)(const nb_op_def *op, nb_tensor *const *in,
                              const double *const *x, const nb_tensor *out, double *y);

/** Backward rule: record, with nabla's ops on t, the vector-Jacobian products
 * grad[i] = dL/d in[i] from dy = dL/d out, each of in[i]'s exact shape (grad[] starts all
 * NULL; an entry left NULL means a zero gradient). out is the op's own node, whose value
 * the rule may use. Return NB_OK, or nb_tape_status(t) when an op failed. */
typedef int (*nb_backward_fn)(nb_tape *t, const nb_op_def *op, nb_tensor *const *in,
                              nb_tensor *out, nb_tensor *dy, nb_tensor **grad);

/** Optional, for piecewise kernels (relu-like): fold the branch each element took at the
 * inputs' values x into one number. The gradient checker compares it across each finite
 * difference, and reports an element whose difference crosses a branch as "at a kink"
 * instead of as a failure. */
typedef unsigned long long (*nb_branch_fn)(const nb_op_def *op, nb_tensor *const *in,
                                           const double *const *x);

struct nb_op_def {
	const char *name;        /* in messages, pictures and the checker's reports */
	int arity;               /* 1 .. NB_OP_MAX_ARITY */
	nb_shape_fn shape;       /* NULL: elementwise, every input of in[0]'s shape */
	nb_forward_fn forward;   /* required */
	nb_backward_fn backward; /* NULL: the op passes no gradient (as nb_step) */
	nb_branch_fn branch;     /* NULL: smooth */
	void *ud;                /* the program's, for the callbacks */
};

/** Apply the op defined by op to the n inputs (n must be op->arity): check the definition
 * and the inputs, run the shape rule, and record the node. NULL after recording an error:
 * NB_ENULL (a NULL op, input, name or forward), NB_EINVAL (an arity out of range or other
 * than n), NB_ETAPE, or the shape rule's status with its message ("myop: ..."). */
nb_tensor *nb_apply(nb_tape *t, const nb_op_def *op, nb_tensor *const *in, int n);

/** Use the matrix kernels named: "avx512", "avx2", "plain", or "auto", the best this
 * processor runs (the default). Returns 0, or -1 when the name is unknown, or this build
 * or this processor lacks those kernels (the kernels in use are unchanged). Process-wide:
 * call it before starting threads. The kernels differ only in the last bits of products
 * (AVX2 and AVX-512 multiply and add in one rounding, plain C in two). */
int nb_set_kernels(const char *name);

/** The name of the matrix kernels in use: "avx512", "avx2" or "plain" (static storage). */
const char *nb_kernels(void);

/* ---- Backward and replay ------------------------------------------------------------
 * Values. Whatever a program reads or records after changing a leaf (nb_set, nb_touch,
 * an optimizer update) is computed from the current leaf values: a value is recomputed,
 * with only what it depends on, when it is read. A training loop either records its
 * graph once and changes the leaves each step (replay), or rewinds to a mark and records
 * the graph again each step (needed when shapes change); both allocate nothing once warm. */

/** Reverse sweep from y: records the gradient of y with respect to every node y depends on
 * (through variables) as new nodes, so that nb_grad() can read them and they can be
 * differentiated again. seed is dL/dy for some scalar L, of y's shape; NULL means y must
 * have one element and the seed is 1. Returns NB_OK or the tape's error: NB_EINVAL for a
 * y with more than one element and no seed, NB_ESHAPE for a seed of another shape,
 * NB_ENOMEM, NB_EINTERNAL (a backward rule broke an invariant: a bug in nabla), or the
 * errors of a user-defined op's rule (NB_EINVAL for a gradient of the wrong shape). A sweep
 * that fails records nothing. */
int nb_backward(nb_tape *t, nb_tensor *y, nb_tensor *seed);

/** The gradient of x from the last sweep (nb_backward() or nb_gradients()): a node of x's
 * shape, a zero literal (hash-consed, usable in any op) when y does not depend on x, or
 * NULL when there was no sweep, its gradients were dropped by nb_tape_rewind(), x is NULL,
 * or recording the zero failed. The next sweep changes what nb_grad() returns, not the
 * nodes it returned. */
nb_tensor *nb_grad(const nb_tensor *x);

/** The gradients of y with respect to the n tensors xs (leaves or computed nodes of t, as
 * torch.autograd.grad takes them) into out[0..n-1]: each a node of xs[i]'s shape, or a
 * zero literal. Only what lies between xs and y is differentiated. The handles stay valid
 * whatever is swept later (until a rewind drops them), so gradients compose: calling
 * nb_gradients() on a sum of out[i] ⊙ v gives Hessian-vector products, and so on. seed as
 * for nb_backward(). Returns NB_OK, or the errors of nb_backward() and NB_ENULL, NB_ETAPE
 * for bad xs; on error out is all NULL and nothing was recorded. */
int nb_gradients(nb_tape *t, nb_tensor *y, nb_tensor *seed, nb_tensor *const *xs, size_t n,
                 nb_tensor **out);

/** Bring every node up to date with the leaves in one linear pass, in recording order,
 * recomputing only the nodes whose inputs changed: forward values and recorded gradients
 * alike. Reading values does this on demand already; replay does it for the whole tape at
 * once. A replay allocates nothing. Returns NB_OK, or the tape's error (and does nothing)
 * after one. */
int nb_tape_replay(nb_tape *t);

/* ---- Forward mode, Jacobians and Hessians -------------------------------------------
 * Built from reverse mode alone, so every op has them: J u is the gradient of <J^T w, u>
 * with respect to a cotangent w, and a Hessian differentiates a gradient again. xs may be
 * leaves or computed nodes of t, as for nb_gradients(), even one tensor twice; y need not
 * depend on all of them (their part is zero).
 * The graphs are recorded on t, with seed leaves of nabla's own that no handle reaches (a
 * cotangent of y's shape; for nb_hessian() one direction per xs[i]): a later call with
 * the same y and xs finds those seeds, and then by hash-consing the whole graph, so it
 * records and allocates nothing. A rewind that drops a graph drops its seeds with it, and
 * the next call records both again.
 * A call that gets past its argument checks sweeps the tape: afterwards nb_grad() returns
 * NULL until the next nb_backward() or nb_gradients(), so that an optimizer cannot take
 * an internal gradient for a parameter's. Errors, recorded on t: NB_ENULL, NB_ETAPE,
 * NB_EINVAL (n == 0; a Hessian of a y with more than one element), NB_ESHAPE (us[i] or
 * vs[i] not of xs[i]'s shape), and those of nb_gradients(); a call that fails records
 * nothing. */

/** J u: the directional derivative of y along (us[0], ..., us[n-1]), us[i] of xs[i]'s
 * shape: a node of y's shape on t, or a zero literal when y depends on none of xs. It is
 * an ordinary node (hash-consed: the same call twice gives the same node), so it can be
 * differentiated again, JVPs of JVPs included. NULL on error. */
nb_tensor *nb_jvp(nb_tape *t, nb_tensor *y, nb_tensor *const *xs, nb_tensor *const *us,
                  size_t n);

/** Hessian-vector product of y, which must have one element: out[i] = sum_j
 * d^2 y / dxs[i] dxs[j] vs[j], vs[j] of xs[j]'s shape, as nodes of xs[i]'s shape (or zero
 * literals). out may be vs, not xs. Returns NB_OK or the error; on error out is all NULL. */
int nb_hvp(nb_tape *t, nb_tensor *y, nb_tensor *const *xs, nb_tensor *const *vs, size_t n,
           nb_tensor **out);

/** The dense Jacobian of y with respect to xs at the current leaf values, into J (the
 * caller's m x N doubles, row-major): m = nb_size(y), N = the sum of nb_size(xs[i]), and
 * J[r][c] = dy_r / dz_c for z the concatenation of the xs flattened row-major. One
 * vector-Jacobian graph is recorded and its values read once per row; a later call with
 * the same y and xs (after nb_set() of the inputs, say) finds that graph again and only
 * recomputes what changed. Returns NB_OK or the error; on error J's contents are
 * unspecified. */
int nb_jacobian(nb_tape *t, nb_tensor *y, nb_tensor *const *xs, size_t n, double *J);

/** The dense Hessian of y, which must have one element, with respect to xs: N x N
 * row-major into H, H[r][c] = d^2 y / dz_r dz_c with z as for nb_jacobian(). One
 * Hessian-vector graph is recorded and reused as nb_jacobian() does. */
int nb_hessian(nb_tape *t, nb_tensor *y, nb_tensor *const *xs, size_t n, double *H);

/* ---- Optimizers: steps on variables, in place --------------------------------------
 * Each updates the n variables params (owned or views, all of one tape) from their
 * gradients grads[i] (NULL: nb_grad(params[i]) of the last sweep), reading every gradient
 * before changing any parameter, and marks them changed as nb_set() does. State arrays
 * (velocity, m, v) are the caller's, one of nb_size(params[i]) doubles per parameter,
 * zero before the first step. Allocates nothing (except, the first time, scratch space
 * when a gradient's values are another parameter's). Errors, recorded on the tape:
 * NB_ENULL, NB_ETAPE, NB_EINVAL (a parameter that is not a variable, no gradient, a bad
 * option), NB_ESHAPE (a gradient of another shape); on error nothing is updated. */

/** SGD: for each element, v = momentum v - eta (g + weight_decay w), w += v; with momentum
 * 0, w -= eta (g + weight_decay w) and velocity may be NULL. */
typedef struct nb_sgd_opts {
	double eta;           /* learning rate, > 0 */
	double momentum;      /* in [0, 1) */
	double weight_decay;  /* L2 coefficient, >= 0 */
	const double *decay;  /* n coefficients, one per parameter, used instead of weight_decay
	                       * (NULL: weight_decay for all), e.g. 0 for biases */
} nb_sgd_opts;
int nb_sgd_update(nb_tensor *const *params, nb_tensor *const *grads, double *const *velocity,
                  size_t n, const nb_sgd_opts *opts);

/** Adam (Kingma and Ba), with L2 weight decay added to the gradient as in PyTorch's Adam:
 * g += weight_decay w; m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2;
 * w -= eta (m / (1 - beta1^step)) / (sqrt(v / (1 - beta2^step)) + eps). step counts the
 * updates, this one included (1 for the first). NB_ADAM_DEFAULTS gives PyTorch's defaults. */
typedef struct nb_adam_opts {
	double eta;           /* > 0 */
	double beta1, beta2;  /* in [0, 1) */
	double eps;           /* > 0 */
	double weight_decay;  /* >= 0 */
	const double *decay;  /* as in nb_sgd_opts */
} nb_adam_opts;
#define NB_ADAM_DEFAULTS { 1e-3, 0.9, 0.999, 1e-8, 0.0, NULL }
int nb_adam_update(nb_tensor *const *params, nb_tensor *const *grads, double *const *m,
                   double *const *v, size_t n, const nb_adam_opts *opts, size_t step);

/** Write the tape as a Graphviz DOT graph: one box per node labelled with its name (if
 * any), op and shape; nodes recorded by nb_backward() (the gradient graph) are drawn
 * apart from the forward ones, and the gradient node of a named node x from the last
 * nb_backward() is labelled "dC/dx". The stream is flushed, not closed. Returns NB_OK,
 * NB_ENULL, or NB_EIO when a write or the flush fails. */
int nb_tape_write_dot(const nb_tape *t, FILE *out);

/* ---- Random numbers ----------------------------------------------------------------
 * xoshiro256** seeded through splitmix64: the same seed gives the same numbers on every
 * machine, so that initialisations, dropout masks and shuffles are reproducible bit for
 * bit. A generator is a plain value: copy it to fork a stream. */

typedef struct nb_rng {
	uint64_t s[4];
} nb_rng;

/** Seed r: any seed, 0 included, gives a good state. */
void nb_rng_seed(nb_rng *r, uint64_t seed);
/** The next 64 random bits. */
uint64_t nb_rng_next(nb_rng *r);
/** Uniform in [0, 1), with 53 random bits. */
double nb_rng_uniform(nb_rng *r);
/** Standard normal (Box-Muller, one value per call). */
double nb_rng_normal(nb_rng *r);
/** Uniform in 0 .. n-1 without modulo bias; n >= 1 (0 gives 0). */
size_t nb_rng_below(nb_rng *r, size_t n);

/* ---- Expressions from text --------------------------------------------------------
 * A small language for expressions of nabla's ops (docs/expressions.md has the grammar
 * and every function): numbers (2.5, 1e-3) are scalar literals, names are the caller's
 * inputs, + - * / are elementwise and broadcast, @ is matmul, x.T the transpose, and
 * every op is a function, attributes by position or keyword: "sum(sigmoid(w @ a + b) * y,
 * axis=0)". Precedence, loosest first: + -, then * / @, then unary - +, then .T, all left
 * to right. */

/** Nesting deeper than this (parentheses, calls and signs) is an error, never a stack
 * overflow. */
#define NB_PARSE_MAX_DEPTH 200

/** A named input of an expression: name is letters, digits and _, not starting with a
 * digit; x is a tensor of the tape parsed on. */
typedef struct nb_parse_input {
	const char *name;
	nb_tensor *x;
} nb_parse_input;

/** Where nb_parse() found an error: line and column from 1 (columns count bytes) and the
 * offset in bytes from the start of the text; all 0 when there was no error or it was
 * not in the text. */
typedef struct nb_parse_loc {
	size_t line, col;
	size_t offset;
} nb_parse_loc;

/** Parse src and record it on t, with the n named inputs: returns the node of its value,
 * or NULL with the error recorded on t. An error in the text is NB_EINVAL with a message
 * "LINE:COL: what" ("1:14: unknown function 'sigmod'"); an op that fails gives its own
 * status and message after the position of the operator or call ("1:3: matmul: inner
 * dimensions differ: (3x4) @ (5x2)"). Bad inputs (a NULL or malformed name, a NULL
 * tensor, one of another tape, two inputs of one name) are NB_ENULL, NB_EINVAL or
 * NB_ETAPE, without a position; a NULL src is NB_ENULL. On any error the tape is as it
 * was: nothing is recorded. where (may be NULL) receives the error's position. A tape
 * that already holds an error is left alone, with NULL returned. Allocates nothing but
 * the nodes it records; safe on any input. */
nb_tensor *nb_parse(nb_tape *t, const char *src, const nb_parse_input *inputs, size_t n,
                    nb_parse_loc *where);

/* ---- Gradient check ----------------------------------------------------------------
 * nb_gradcheck() compares the reverse-mode gradient of an expression with finite
 * differences of the expression itself, at first and second order, and reports the whole
 * story: per input, the worst mismatches, non-finite values, points where an op is not
 * differentiable, inputs the output does not depend on, and, when the check fails, why:
 * the first op whose backward rule disagrees with its own forward kernel, a value that
 * left the graph, or a C branch that changed what was recorded.
 *
 * By default every difference calls the expression again, on a rewound tape, so that
 * anything the expression does in C (reading a value and feeding it back as a constant,
 * branching on a value) shows in the differences as it does in the true function. The
 * replay option takes differences by nb_set() and replay of the one recorded tape
 * instead: faster, and blind to all of that, since a replay repeats what was recorded. */

/** A user expression: builds a tensor on the tape t from inputs (n of them, each a
 * variable, or a constant where the check's mask says so, of the shape given to
 * nb_gradcheck) and returns it, or NULL on error. It may record anything. It is called
 * once to record the graph that is differentiated, once on a fresh tape (the gradients
 * must come out the same), and then once per evaluation of a difference, on a tape
 * rewound to just after its inputs, so with the same handles each time; ud is the
 * caller's. */
typedef nb_tensor *(*nb_expr_fn)(nb_tape *t, nb_tensor *const *inputs, size_t n, void *ud);

/** One input of a gradient check: shape and values (copied). */
typedef struct nb_gradcheck_input {
	int rank;
	const size_t *dim;
	const double *data;
} nb_gradcheck_input;

enum nb_gradcheck_mode {
	NB_GRADCHECK_AUTO = 0,       /* elements when the checked inputs hold at most
	                              * max_elements values in all; otherwise random directions
	                              * first, then every element of each input that fails */
	NB_GRADCHECK_ELEMENTS = 1,   /* every element of every checked input */
	NB_GRADCHECK_DIRECTIONS = 2  /* `directions` random unit directions per checked input */
};

/** The most inputs a check takes, and the most mismatches a result lists. */
#define NB_GRADCHECK_MAX_INPUTS 64
#define NB_GRADCHECK_WORST 8

/** Options; a zero field takes its default, so {0} (or NULL) is a sensible choice. */
typedef struct nb_gradcheck_opts {
	int mode;            /* enum nb_gradcheck_mode */
	int replay;          /* non-zero: differences by replay of the recorded tape (see above) */
	const int *mask;     /* n flags, 0 where the input is a constant and is not checked
	                      * (NULL: every input is checked) */
	double step;         /* h = step max(1, |x|) per coordinate (default cbrt(DBL_EPSILON),
	                      * about 6.1e-6, which balances truncation and rounding) */
	int levels;          /* Richardson levels: central differences at h, 2h, ... extrapolated
	                      * to h -> 0, with an estimate of their error (default 2, at most
	                      * 4; 1: a plain central difference, rounding error estimated) */
	double atol;         /* pass when |analytic - numeric| <= atol + rtol |numeric| + the */
	double rtol;         /* numeric value's estimated error (defaults 1e-7 and 1e-6) */
	size_t directions;   /* per input in direction mode (default 4) */
	size_t max_elements; /* the auto mode's limit (default 4096) */
	unsigned long seed;  /* output weights, directions, second-order vector (default 1) */
	int first_order_only;/* non-zero: skip the second-order check */
	nb_alloc_fn alloc;   /* every allocation of the check and its tapes (NULL: malloc) */
	void *alloc_ud;      /* passed to alloc */
} nb_gradcheck_opts;

/** One comparison: element index of input input, or, when direction is set, the
 * derivative along random direction number index of that input. */
typedef struct nb_gradcheck_mismatch {
	size_t input;
	size_t index;
	int direction;
	double analytic;     /* from the backward sweep */
	double numeric;      /* from finite differences (NaN when none was finite) */
	double error;        /* the estimated error of numeric */
} nb_gradcheck_mismatch;

/** Counts and extremes of the comparisons of one input, or of all of them. */
typedef struct nb_gradcheck_stats {
	size_t checked;      /* comparisons made */
	size_t failed;       /* outside tolerance, not at a kink (non-finite ones included) */
	size_t kinks;        /* outside tolerance where an op is not differentiable within the
	                      * step (a branch of a piecewise op changed): not failures */
	size_t nonfinite;    /* analytic or numeric value NaN or infinite: failures */
	size_t one_sided;    /* differences taken on one side, the other not being finite */
	double max_abs_err;  /* largest |analytic - numeric| over finite comparisons not at kinks */
	double max_rel_err;  /* largest |analytic - numeric| / max(|analytic|, |numeric|) */
	nb_gradcheck_mismatch worst;  /* where |analytic - numeric| exceeds tolerance most */
} nb_gradcheck_stats;

/** The result of one order. */
typedef struct nb_gradcheck_result {
	int passed;          /* no failure */
	nb_gradcheck_stats all;
	nb_gradcheck_stats input[NB_GRADCHECK_MAX_INPUTS];
	size_t n_worst;      /* the worst failures, worst first */
	nb_gradcheck_mismatch worst[NB_GRADCHECK_WORST];
} nb_gradcheck_result;

/** A report the caller owns. */
typedef struct nb_gradcheck_report {
	int status;            /* NB_OK, or the error that stopped the check */
	char message[NB_MSG_MAX]; /* the error's message when status != NB_OK */
	int passed;            /* status is NB_OK and every part below passed */
	/* the options actually used */
	int mode, replay, levels;
	double step, atol, rtol;
	size_t directions;
	size_t n_inputs;
	int checked[NB_GRADCHECK_MAX_INPUTS];     /* input k was checked (the mask) */
	int independent[NB_GRADCHECK_MAX_INPUTS]; /* warning: the output does not depend on
	                                           * checked input k (its gradient is zero) */
	size_t output_size;    /* elements of the expression's value (> 1: reduced to
	                        * sum(r ⊙ f) with random r) */
	int repeatable;        /* recorded again on a fresh tape, f gave bit-identical gradients */
	int forward_reverse;   /* <u, J^T v> (reverse mode) equals <J u, v> (forward mode,
	                        * nb_jvp) for random u, v within 100 ulps of the terms: no
	                        * finite differences, so no truncation error either */
	double reverse_dot, forward_dot;  /* the two sides */
	nb_gradcheck_result first;   /* gradient against differences of the expression */
	int second_checked;          /* the second-order check ran */
	nb_gradcheck_result second;  /* gradient of v . grad against its differences */
	/* Why, when the check failed (each is reported where it was seen, failed or not). */
	int graph_break;       /* a constant or an attribute the expression recorded changed
	                        * with the inputs: a value that left the graph */
	size_t break_node;     /* the first such node on the expression's tape */
	size_t break_input;    /* the input whose change changed it */
	char break_op[NB_MSG_MAX];  /* its op and shape, "constant (3)" */
	int control_flow;      /* the expression recorded another graph at a point of the
	                        * differences: a C branch on a value */
	size_t flow_input;     /* the input whose change changed the graph */
	int culprit;           /* a node whose backward rule disagrees with differences of its
	                        * own forward kernel, on its own recorded inputs (each node is
	                        * checked with the default options, by replay) */
	size_t culprit_node;   /* the first such node, in recording order */
	char culprit_op[NB_MSG_MAX];  /* its op and shapes: "cube_wrong (3) -> (3)" */
	nb_gradcheck_mismatch culprit_worst; /* its worst mismatch (input: of the node) */
} nb_gradcheck_report;

/** Check the gradient of f at the given inputs (n of them, at most
 * NB_GRADCHECK_MAX_INPUTS) against finite differences, at first order and (unless
 * opts->first_order_only) at second order: the gradient of the scalar
 * s = sum_k <v_k, grad_k f> for random v, a Hessian-vector product, against the
 * differences of s. A non-scalar f is reduced to sum(r ⊙ f) with a random r. When the
 * check fails, each node f recorded is checked on its own inputs to name the culprit.
 * opts may be NULL. Returns report->status: NB_OK when the check ran (see
 * report->passed), otherwise NB_ENULL, NB_EINVAL (no inputs, too many, none left by the
 * mask, bad options),
 * NB_ENOMEM, or the error f recorded (at the point where it recorded it). */
int nb_gradcheck(nb_expr_fn f, void *ud, const nb_gradcheck_input *inputs, size_t n,
                 const nb_gradcheck_opts *opts, nb_gradcheck_report *report);

/** Print a report for humans: the verdict, the options, then per order a summary, one
 * line per input and the worst mismatches, then the warnings and the diagnosis. */
void nb_gradcheck_print(FILE *out, const nb_gradcheck_report *report);

/* ---- Self-test ---------------------------------------------------------------------- */

/** A program's own op for nb_selftest(), with the inputs (op->arity of them) to check it
 * at. */
typedef struct nb_selftest_op {
	const nb_op_def *op;
	const nb_gradcheck_input *inputs;
} nb_selftest_op;

/** What nb_selftest() did and found. */
typedef struct nb_selftest_report {
	int passed;              /* no failure */
	size_t ops;              /* ops swept: nabla's own and the program's */
	size_t cases;            /* expressions gradient-checked, at first and second order */
	size_t comparisons;      /* values those checks compared */
	size_t forward_reverse;  /* agreements <u, J^T v> = <J u, v> checked */
	size_t edges;            /* edge-value cases */
	size_t failures;
	char first_failure[NB_MSG_MAX];  /* "log: ...", or why the self-test could not run */
} nb_selftest_report;

/** Sweep every op of nabla, and the n ops of the program in ops (may be NULL when n is
 * 0): each through nb_gradcheck() at first and second order on a few shapes (broadcasting
 * and transposed operands included), forward mode (nb_jvp) against reverse mode with no
 * finite differences (<u, J^T v> = <J u, v> to 100 ulps), and, for elementwise ops
 * (user ops without a shape rule), edge values 0, +-inf, NaN and +-800 in each operand: a
 * NaN must give a NaN, a finite value gradients that are not NaN, and
 * nb_tape_check_finite() must report exactly the values and gradients that are not
 * finite. It also fails for an op of nabla no case records. With log not NULL, one line
 * per check ("ok   add: ..." or "FAIL ..."). Returns NB_OK when it ran (see
 * report->passed), NB_ENULL or NB_EINVAL for bad arguments (report->first_failure says
 * which). */
int nb_selftest(const nb_selftest_op *ops, size_t n, FILE *log, nb_selftest_report *report);

/* ---- Closed-form backpropagation (BP1-BP4), the reference to compare against -------- */

/** The activations and costs of the closed forms here and of nabla_nn.h's networks. */
enum nb_activation { NB_SIGMOID = 0, NB_TANH = 1, NB_RELU = 2, NB_SOFTMAX = 3,
	NB_SOFTPLUS = 4, NB_IDENTITY = 5 };  /* the last two: networks only */
enum nb_cost { NB_QUADRATIC = 0, NB_CROSS_ENTROPY = 1 };

/** A fully connected network: n_layers sizes (input first), n_layers - 1 weight matrices
 * w[l] (sizes[l+1] x sizes[l], row-major) and bias vectors b[l] (sizes[l+1]). Its units
 * are sigmoid for nb_bp_reference(); nb_bp_reference_opts() takes other choices. */
typedef struct nb_mlp {
	size_t n_layers;
	const size_t *sizes;
	const double *const *w;
	const double *const *b;
	nb_alloc_fn alloc;    /* nb_bp_reference()'s work space (NULL: malloc) */
	void *alloc_ud;       /* passed to alloc */
} nb_mlp;

/** Gradients of the quadratic cost C = 1/(2n) sum_x ||y(x) - a^L(x)||^2 over a mini-batch
 * of n examples by the closed-form equations, on the matrix kernels and with no tape:
 *   BP1 delta^L = (a^L - y) ⊙ sigma'(z^L) / n      BP3 dC/db^l = sum over examples of delta^l
 *   BP2 delta^l = ((w^{l+1})^T delta^{l+1}) ⊙ sigma'(z^l)   BP4 dC/dw^l = delta^l (a^{l-1})^T
 * x is sizes[0] x n and y sizes[L] x n, row-major, one example per column. Outputs, each
 * allocated by the caller with the shape of what it receives: dw[l], db[l], and, when
 * delta is not NULL, delta[l] (sizes[l+1] x n, dC/dz for layer l+1); cost may be NULL.
 * Returns NB_OK, NB_ENULL, NB_EINVAL (fewer than 2 layers, a zero size, n == 0) or
 * NB_ENOMEM; on error writes a message into msg (NB_MSG_MAX bytes) when msg is not NULL. */
int nb_bp_reference(const nb_mlp *net, size_t n, const double *x, const double *y,
                    double *const *dw, double *const *db, double *const *delta, double *cost,
                    char msg[NB_MSG_MAX]);

/** The choices of nb_bp_reference_opts(), those of chapter 3 of Nielsen's book. A zero
 * field takes its default, so {0} (or a NULL pointer) gives nb_bp_reference(): sigmoid
 * units, the quadratic cost, no regularisation, one example per column. Activations and
 * costs are the values of enum nb_activation and enum nb_cost (see "Networks" below). */
typedef struct nb_bp_opts {
	int hidden;             /* activation of hidden layers: NB_SIGMOID, NB_TANH, NB_RELU */
	int output;             /* of the output layer: those or NB_SOFTMAX */
	const int *activations; /* NULL: hidden and output; otherwise n_layers - 1 entries, one
	                         * per layer (activations[l] for layer l + 1, the last for the
	                         * output layer), and hidden and output are ignored */
	int cost;               /* NB_QUADRATIC, or NB_CROSS_ENTROPY: for a sigmoid output
	                         * -1/n sum [y ln a + (1 - y) ln(1 - a)], for a softmax output
	                         * the log-likelihood -1/n sum y ln a (-1/n sum_x ln a_y(x) for
	                         * one-hot y), as nb_sigmoid_cross_entropy() and
	                         * nb_softmax_cross_entropy() compute them from z^L */
	double lambda;          /* L2 regularisation: C += lambda/(2n) sum of every weight
	                         * squared (not the biases); finite, >= 0 */
	int rows;               /* non-zero: one example per row: x is n x sizes[0], y
	                         * n x sizes[L], delta[l] n x sizes[l+1] */
} nb_bp_opts;

/** nb_bp_reference() for the choices of opts (NULL: the defaults), with the equations as
 * chapter 3 of Nielsen's book extends them (its equation numbers). BP2-BP4 keep their
 * form, with each hidden layer's f' in place of sigma' (sigma' = a (1 - a),
 * tanh' = 1 - a^2, relu' = step(z)); BP1 becomes
 *   quadratic cost           delta^L = (a^L - y) ⊙ f'(z^L) / n; for a softmax output the
 *                            Jacobian's product, a_j (g_j - sum_k a_k g_k), g = (a^L - y) / n
 *   sigmoid, cross-entropy   delta^L = (a^L - y) / n                            (66)
 *   softmax, log-likelihood  delta^L = (a^L sum_k y_k - y) / n, that is (a^L - y) / n for
 *                            targets that sum to 1 in each example            (84)
 * and L2 adds lambda/(2n) sum w^2 to C and (lambda/n) w to each dC/dw, nothing to dC/db
 * (87-89), n being this batch's size: Nielsen's lambda over a training set of N examples
 * is lambda n / N here, and nb_sgd's weight_decay is lambda / n. With examples as rows the
 * same equations run in row form, z^l = a^{l-1} (w^l)^T + b^l. C, dw, db and delta are
 * those of the op graph of the same network (z = w a + b, the activation and cost ops,
 * L2 as lambda/(2n) sum(w ⊙ w)) to rounding; nb_net records that graph for the choices
 * it offers. Returns what nb_bp_reference() does, and NB_EINVAL for a bad choice, with a
 * message naming the field: "bp_reference: opts->lambda is -1, not a finite number >= 0";
 * softmax is for the output layer only, and cross-entropy needs a sigmoid or softmax
 * output layer. */
int nb_bp_reference_opts(const nb_mlp *net, size_t n, const double *x, const double *y,
                         const nb_bp_opts *opts, double *const *dw, double *const *db,
                         double *const *delta, double *cost, char msg[NB_MSG_MAX]);

#ifdef __cplusplus
}
#endif

#endif /* NABLA_H */
