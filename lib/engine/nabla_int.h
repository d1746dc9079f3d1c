/* nabla_int.h -- what the library's modules share: the node layout, op descriptors, the
 * tape, and the nb__ helpers. Nothing here is installed or exported. */
#ifndef NABLA_INT_H
#define NABLA_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nabla.h"

#define NB_MAX_ARITY NB_OP_MAX_ARITY

/* Attributes of a node besides its inputs and shape. Each field has one meaning; unused
 * fields stay zero so that hash-consing compares like with like. */
struct nb_attr {
	double c;                  /* scale factor (scale), fill value (fill), p (dropout) */
	int axis;                  /* reduced axis (sum_axis) */
	unsigned char keepdim;     /* sum_axis keeps the axis with size 1; im2col gives its
	                            * columns flat (N, C*KH*KW, L) */
	unsigned char trans;       /* NB_TRANS_A | NB_TRANS_B (matmul) */
	unsigned char perm[NB_MAX_RANK]; /* output axis i is input axis perm[i] (permute) */
	const nb_tensor *of;       /* a seed leaf (derive.c): the output whose derivative
	                            * graph it feeds, recorded before it, so dropped no earlier */
	size_t slot;               /* which of that output's seeds it is */
	size_t start;              /* first index along axis (slice), zeros before (pad), the
	                            * seed (dropout) */
	uint32_t win[4];           /* a window's height, width, stride, padding (im2col): every
	                            * node carries the attributes, so they are kept small */
};

/* An op's row in the table: a node points at it. forward computes y->value from the
 * inputs' values and must not allocate (replay calls it). backward records, with
 * nabla's own ops, the gradients of y's inputs given dy = dL/dy, through nb__grad_add. */
struct nb_op {
	const char *name;
	int arity;
	void (*forward)(nb_tensor *y);
	void (*backward)(nb_tape *t, nb_tensor *y, nb_tensor *dy);
	/* Piecewise ops only (NULL otherwise): the branch each element of y's kernel took,
	 * folded into one number. The gradient checker compares it across a finite
	 * difference to tell a point where the op is not differentiable from a wrong rule. */
	uint64_t (*branch)(const nb_tensor *y);
	const nb_op_def *def;            /* a user-defined op's definition (op_user.c) */
};

/* A node of the tape. Its header and value buffer are one block of a tape chunk (a
 * view's values are the caller's). Times are ticks of the tape's clock, so that staleness
 * is a comparison: a computed node is stale when an input's value is newer than its own. */
struct nb_tensor {
	const struct nb_op *op;
	nb_tape *tape;
	size_t id;                       /* position on the tape */
	int rank;
	size_t dim[NB_MAX_RANK];
	size_t size;                     /* product of dim */
	struct nb_attr attr;
	nb_tensor *in[NB_MAX_ARITY];
	uint64_t hash;                   /* hash-consing key (valid when hashed) */
	size_t chunk;                    /* index of the tape chunk holding the node */
	uint64_t time;                   /* clock when value was last written */
	uint64_t checked;                /* epoch at which value was known current */
	uint64_t walk;                   /* scratch stamp of the demand-driven walk */
	uint64_t draws;                  /* random draws made by the kernel (dropout_mask) */
	nb_tensor *grad;                 /* dL/dx, valid when grad_sweep is the last sweep */
	uint64_t grad_sweep;
	uint64_t want_sweep;             /* nb_gradients(): on a path to a requested tensor */
	bool needs_grad;                 /* a variable, or computed from one */
	bool in_gradient;                /* recorded by a backward sweep (for pictures) */
	bool hashed;                     /* in the hash-consing table */
	bool borrowed;                   /* value is the caller's memory, not the node's */
	char name[NB_NAME_MAX];
	double *value;
};

/* The hash-consing table: open addressing over node pointers. */
struct nb_hashcons {
	nb_tensor **slot;
	size_t cap;                      /* a power of two, or 0 */
	size_t used;
};

/* One error, kept in a fixed buffer so that running out of memory can be reported too.
 * Tapes and networks each hold one; error.c is the only code that writes it. */
struct nb_error {
	int status;
	char message[NB_MSG_MAX];
};

/* A block of memory nodes are carved from, in order; rewinding gives the tail back. */
struct nb_chunk {
	char *mem;
	size_t size, used;
	size_t first;  /* the offset of the first node: its aligned start */
};

struct nb_tape {
	nb_alloc_fn alloc;
	void *ud;
	nb_tensor **node;                /* the Wengert list, in recording order */
	size_t n, cap;
	struct nb_chunk *chunk;          /* chunks after chunk[cur] are empty */
	size_t n_chunks, chunks_cap, cur;
	struct nb_hashcons hc;
	bool in_backward;                /* a sweep is recording */
	bool check_finite;               /* nb_tape_check_finite() */
	int threads;                     /* the matrix kernels' (nb_tape_set_threads), >= 1 */
	uint64_t clock;                  /* ticks at every value written: computed or set */
	uint64_t epoch;                  /* ticks at every leaf change: nb_set, nb_touch */
	uint64_t walk;                   /* stamps of demand-driven walks */
	uint64_t sweep;                  /* the current or last backward sweep */
	bool want_all;                   /* the sweep wants every variable (nb_backward) */
	bool grads_valid;                /* the last sweep's gradients are still on the tape */
	size_t sweep_end;                /* nodes on the tape when the last sweep ended */
	const struct nb_op *rule;        /* the op whose backward rule is running */
	double *scratch;                 /* kernels' work space, sized when nodes are recorded */
	struct nb_op **user_op;          /* descriptors of the user-defined ops recorded here */
	size_t n_user_ops, user_ops_cap;
	size_t scratch_n;                /* doubles in scratch */
	const void *lock;                /* nb_tape_lock()'s key: read-only while set */
	struct nb_error err;
};

/* The op descriptors (lib/ops.def lists them all). */
#define NB_OP(name) extern const struct nb_op nb__op_##name;
#include "ops.def"
#undef NB_OP

/* tape.c: whether t may be changed by fn; records "fn: the tape is read-only ..." when
 * t is locked (nb_tape_lock). Every change goes through it: recording, leaf writes,
 * names, rewinds and sweeps. */
bool nb__writable(nb_tape *t, const char *fn);

/* alloc.c: a block from t's allocator, or NULL; nb__alloc records NB_ENOMEM on failure,
 * nb__try_alloc leaves the message to its caller. */
void *nb__alloc(nb_tape *t, size_t size);
void *nb__try_alloc(nb_tape *t, size_t size);
void nb__free(nb_tape *t, void *p, size_t size);

/* error.c: record status and a message in e unless it already holds an error (the first
 * one is kept); returns e's status. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
int nb__error_set(struct nb_error *e, int status, const char *fmt, ...);
int nb__error_vset(struct nb_error *e, int status, const char *fmt, va_list ap);
void nb__error_clear(struct nb_error *e);
/* Record the first error on t (later ones are dropped) and return NULL. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void *nb__fail(nb_tape *t, int status, const char *fmt, ...);
/* For calls that report through a caller's buffer rather than a tape: write the message
 * into msg (NB_MSG_MAX bytes) unless msg is NULL, and return status. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
int nb__msg_fail(char *msg, int status, const char *fmt, ...);
/* Check that t is usable and the n inputs are non-NULL tensors of t; record an error
 * naming op otherwise. */
bool nb__args_ok(nb_tape *t, const char *op, nb_tensor *const *in, int n);

/* tensor.c: shapes. */
char *nb__shape_str(int rank, const size_t *dim, char *buf);
bool nb__shape_ok(nb_tape *t, const char *op, int rank, const size_t *dim);
bool nb__same_shape(const nb_tensor *a, const nb_tensor *b);
size_t nb__shape_size(int rank, const size_t *dim);
/* n * size into *out, false when it does not fit in size_t: the one place size arithmetic
 * is checked. */
bool nb__mul_size(size_t n, size_t size, size_t *out);
bool nb__add_size(size_t a, size_t b, size_t *out);
bool nb__broadcast_shape(int ra, const size_t *da, int rb, const size_t *db,
                         int *rank, size_t *dim);
/* Strides (in elements) of an operand of shape (r, d) read as a tensor of the output
 * shape (rank, dim) padded on the left to NB_MAX_RANK axes: 0 on broadcast axes. */
void nb__broadcast_strides(int r, const size_t *d, int rank, const size_t *dim,
                           size_t stride[NB_MAX_RANK]);
/* The output shape padded on the left with ones to NB_MAX_RANK axes. */
void nb__pad_dims(int rank, const size_t *dim, size_t out[NB_MAX_RANK]);

/* hashcons.c */
/* The attributes as a hash, and whether two sets are the same: the one place that knows
 * every field (the gradient checker hashes them too, to see a value leave the graph). */
uint64_t nb__attr_hash(const struct nb_attr *attr);
bool nb__attr_equal(const struct nb_attr *a, const struct nb_attr *b);
uint64_t nb__node_hash(const struct nb_op *op, nb_tensor *const *in,
                       const struct nb_attr *attr, int rank, const size_t *dim);
nb_tensor *nb__hashcons_find(const struct nb_hashcons *hc, uint64_t h, const struct nb_op *op,
                             nb_tensor *const *in, const struct nb_attr *attr, int rank,
                             const size_t *dim);
/* Make room for one more node, so that the insertion that follows cannot fail. */
bool nb__hashcons_reserve(nb_tape *t);
/* Insert x (x->hash set) after nb__hashcons_reserve(). */
void nb__hashcons_insert(nb_tape *t, nb_tensor *x);
void nb__hashcons_remove(nb_tape *t, nb_tensor *x);
void nb__hashcons_free(nb_tape *t);

/* tape.c */
/* Record op applied to in (op->arity of them) with attr (NULL: none) and output shape
 * (rank, dim): return the equal node already on the tape (brought up to date), or append
 * and evaluate a new one. Shapes have been checked by the caller, sizes have not. A
 * failure records nothing. */
nb_tensor *nb__record(nb_tape *t, const struct nb_op *op, nb_tensor *const *in,
                      const struct nb_attr *attr, int rank, const size_t *dim);
/* Check x and record the elementwise op of one input x, with x's shape. */
nb_tensor *nb__record_unary(nb_tape *t, const struct nb_op *op, nb_tensor *x);
/* Append a leaf of op (constant, variable) with the shape; values uninitialised unless
 * borrowed. */
nb_tensor *nb__append_leaf(nb_tape *t, const struct nb_op *op, int rank, const size_t *dim,
                           double *borrowed);
/* The result of an op built from several recordings: when it is NULL (a later step
 * failed), drop what the earlier steps recorded after mark, so the call records nothing. */
nb_tensor *nb__undo(nb_tape *t, size_t mark, nb_tensor *result);
/* A copy of the n elements (of elem bytes) of the array *old of *cap, in a new array of
 * twice the capacity (first when *cap is 0), which replaces it; false, recording nothing,
 * when the memory is not there. */
bool nb__grow_array(nb_tape *t, void **old, size_t n, size_t *cap, size_t first, size_t elem);
/* Make the tape's scratch space at least n doubles (at recording, never in replay). */
bool nb__reserve_scratch(nb_tape *t, size_t n);
/* Bytes the tape holds from its allocator. */
size_t nb__tape_bytes(const nb_tape *t);

/* eval.c: values on demand. */
/* Evaluate x's kernel now and stamp it; with checking on, an error (and false) for its
 * first non-finite value. */
bool nb__compute(nb_tape *t, nb_tensor *x);
/* Bring x's value up to date with the current leaves, recomputing x and only what it
 * depends on that is stale. Allocates nothing. */
void nb__refresh(nb_tensor *x);
/* A leaf's value changed: stamp it. */
void nb__leaf_changed(nb_tensor *x);
static inline bool nb__is_leaf(const nb_tensor *x)
{
	return x->op == &nb__op_constant || x->op == &nb__op_variable;
}

/* backward.c */
/* Add g to x's gradient (dL/dx += g) when the sweep wants x's gradient. g must have x's
 * exact shape: anything else is an internal error naming the rule that handed it. */
void nb__grad_add(nb_tape *t, nb_tensor *x, nb_tensor *g);
/* Whether a backward rule should build the gradient of x at all: prune before building. */
bool nb__wants_grad(const nb_tensor *x);

/* Structural literals, simplified by the ops so that no work is done for them. */
static inline bool nb__is_fill(const nb_tensor *x, double v)
{
	return x->op == &nb__op_fill && x->attr.c == v;
}
static inline bool nb__is_zero(const nb_tensor *x)
{
	return nb__is_fill(x, 0.0);
}
/* A zero literal of the shape (rank, dim). */
nb_tensor *nb__zeros(nb_tape *t, int rank, const size_t *dim);

/* op_cost.c: costs. The number of examples n of a cost's operand: the size of its last
 * axis, or 1 for rank 0 and 1. */
size_t nb__examples(const nb_tensor *a);
/* Check the operands of cost op: same tape, not NULL, same shape. */
bool nb__cost_args(nb_tape *t, const char *op, nb_tensor *a, nb_tensor *y);

/* op_user.c: the descriptors of user-defined ops a tape holds. */
void nb__user_ops_free(nb_tape *t);
size_t nb__user_ops_bytes(const nb_tape *t);
/* Fold the elements' branches (1 where a piecewise kernel took its upper branch) into a
 * running hash, for nb_op.branch. */
uint64_t nb__branch_fold(uint64_t h, const double *x, size_t n, double at);

/* tensor.c: x seen as (outer, d, inner) around an axis: element (o, k, i) is at
 * (o d + k) inner + i. */
struct nb__around {
	size_t outer, d, inner;
};
struct nb__around nb__around_axis(const nb_tensor *x, int axis);
/* The shape of a reduction of x along axis (kept with size 1, or removed), or an error
 * naming op for an axis out of range. */
bool nb__reduced_shape(nb_tape *t, const char *op, const nb_tensor *x, int axis, int keepdim,
                       int *rank, size_t *dim);
/* g, the gradient of a reduction of x along axis (either shape), broadcast back to x's. */
nb_tensor *nb__along_axis(nb_tape *t, nb_tensor *g, const nb_tensor *x, int axis);

/* op_reduce.c: the gradient of a broadcast operand x from the gradient g of the result. */
nb_tensor *nb__unbroadcast(nb_tape *t, nb_tensor *g, const nb_tensor *x);

#endif
