/* nabla_int.h -- what the library's modules share: the node layout, op descriptors, the
 * tape, and the nb__ helpers. Nothing here is installed or exported. */
#ifndef NABLA_INT_H
#define NABLA_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nabla.h"

#define NB_MAX_ARITY 2

/* Attributes of a node besides its inputs and shape. Each field has one meaning; unused
 * fields stay zero so that hash-consing compares like with like. */
struct nb_attr {
	double c;     /* scale factor (scale), fill value (fill) */
	int axis;     /* reduced axis (sum_axis) */
	int keepdim;  /* sum_axis keeps the axis with size 1 */
	int trans;    /* NB_TRANS_A | NB_TRANS_B (matmul) */
};

/* An op's row in the table: a node points at it. forward computes y->value from the
 * inputs' values and must not allocate (replay calls it). backward records, with
 * nabla's own ops, the gradients of y's inputs given dy = dL/dy, through nb__grad_add. */
struct nb_op {
	const char *name;
	int arity;
	void (*forward)(nb_tensor *y);
	void (*backward)(nb_tape *t, nb_tensor *y, nb_tensor *dy);
};

/* A node of the tape. The value buffer is allocated with the node. */
struct nb_tensor {
	const struct nb_op *op;
	nb_tape *tape;
	size_t id;                       /* position on the tape */
	int rank;
	size_t dim[NB_MAX_RANK];
	size_t size;                     /* product of dim */
	struct nb_attr attr;
	nb_tensor *in[NB_MAX_ARITY];
	nb_tensor *grad;                 /* dL/dx from the last backward, or NULL */
	bool needs_grad;                 /* a variable, or computed from one */
	bool in_gradient;                /* recorded by nb_backward() (for pictures) */
	bool reached;                    /* scratch of nb_backward()'s staleness check */
	uint64_t time;                   /* tape clock when value was last written */
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

struct nb_tape {
	nb_alloc_fn alloc;
	void *ud;
	nb_tensor **node;                /* the Wengert list, in recording order */
	size_t n, cap;
	struct nb_hashcons hc;
	bool in_backward;                /* nb_backward() is recording */
	bool check_finite;               /* nb_tape_check_finite() */
	uint64_t clock;                  /* ticks at every value written: computed or set */
	double *scratch;                 /* kernels' work space, sized when nodes are recorded */
	size_t scratch_n;                /* doubles in scratch */
	int status;
	char message[NB_MSG_MAX];
};

/* The op descriptors (lib/ops.def lists them all). */
#define NB_OP(name) extern const struct nb_op nb__op_##name;
#include "ops.def"
#undef NB_OP

/* alloc.c */
void *nb__alloc(nb_tape *t, size_t size);
void nb__free(nb_tape *t, void *p, size_t size);
void *nb__default_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/* error.c: record the first error on t (later ones are dropped) and return NULL. */
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
bool nb__broadcast_shape(int ra, const size_t *da, int rb, const size_t *db,
                         int *rank, size_t *dim);
/* Strides (in elements) of an operand of shape (r, d) read as a tensor of the output
 * shape (rank, dim) padded on the left to NB_MAX_RANK axes: 0 on broadcast axes. */
void nb__broadcast_strides(int r, const size_t *d, int rank, const size_t *dim,
                           size_t stride[NB_MAX_RANK]);
/* The output shape padded on the left with ones to NB_MAX_RANK axes. */
void nb__pad_dims(int rank, const size_t *dim, size_t out[NB_MAX_RANK]);

/* hashcons.c */
uint64_t nb__node_hash(const struct nb_op *op, nb_tensor *const *in,
                       const struct nb_attr *attr, int rank, const size_t *dim);
nb_tensor *nb__hashcons_find(const struct nb_hashcons *hc, uint64_t h, const struct nb_op *op,
                             nb_tensor *const *in, const struct nb_attr *attr, int rank,
                             const size_t *dim);
bool nb__hashcons_insert(nb_tape *t, nb_tensor *x, uint64_t h);
void nb__hashcons_free(nb_tape *t);

/* tape.c */
/* Record op applied to in (op->arity of them) with attr (NULL: none) and output shape
 * (rank, dim): return the equal node already on the tape, or append and evaluate a new
 * one. Shapes have been checked by the caller. */
nb_tensor *nb__record(nb_tape *t, const struct nb_op *op, nb_tensor *const *in,
                      const struct nb_attr *attr, int rank, const size_t *dim);
/* Check x and record the elementwise op of one input x, with x's shape. */
nb_tensor *nb__record_unary(nb_tape *t, const struct nb_op *op, nb_tensor *x);
/* Make the tape's scratch space at least n doubles (at recording, never in replay). */
bool nb__reserve_scratch(nb_tape *t, size_t n);
/* Add g to x's gradient (dL/dx += g); nothing when x needs no gradient. */
void nb__grad_add(nb_tape *t, nb_tensor *x, nb_tensor *g);
/* Whether a backward rule should build the gradient of x at all. */
static inline bool nb__wants_grad(const nb_tensor *x)
{
	return x->needs_grad;
}

/* tape.c: a leaf whose value is the caller's memory (of nb__shape_size(rank, dim)
 * doubles, outliving the tape): the network's parameters, shared by its tapes. */
nb_tensor *nb__leaf_view(nb_tape *t, bool variable, int rank, const size_t *dim, double *data);

/* op_cost.c: costs. The number of examples n of a cost's operand: the size of its last
 * axis, or 1 for rank 0 and 1. */
size_t nb__examples(const nb_tensor *a);
/* Check the operands of cost op: same tape, not NULL, same shape. */
bool nb__cost_args(nb_tape *t, const char *op, nb_tensor *a, nb_tensor *y);

/* op_reduce.c: the gradient of a broadcast operand x from the gradient g of the result. */
nb_tensor *nb__unbroadcast(nb_tape *t, nb_tensor *g, const nb_tensor *x);

#endif
