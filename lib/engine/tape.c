/* tape.c -- the Wengert list: nodes carved from chunks of memory the tape keeps, recording
 * with hash-consing (reserve, compute, commit: a failed call leaves no trace), and marks
 * that let a program drop what it recorded since and record again without allocating. */
#include <string.h>

#include "nabla_int.h"
#include "pool.h"

/* The first chunk, and the most a new chunk adds when the tape grows (chunks double in
 * between; a node larger than that gets a chunk of its own size). */
#define CHUNK_MIN ((size_t)16 << 10)
#define CHUNK_MAX ((size_t)4 << 20)

/* Node blocks, and so values, start on this boundary: a cache line, so that a vector of
 * eight doubles read from a value's start never spans two. */
#define NODE_ALIGN ((size_t)64)

/* Under AddressSanitizer every node is followed by a poisoned gap, and a chunk's free
 * space is poisoned, so that a kernel writing past its node's values is caught as it
 * would be with one allocation per node. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NB_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define NB_ASAN 1
#endif
#ifdef NB_ASAN
#include <sanitizer/asan_interface.h>
#define REDZONE NODE_ALIGN
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define REDZONE ((size_t)0)
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

nb_tape *nb_tape_new_alloc(nb_alloc_fn alloc, void *ud)
{
	nb_tape *t;

	if (!alloc)
		return NULL;
	t = alloc(ud, NULL, 0, sizeof *t);
	if (!t)
		return NULL;
	memset(t, 0, sizeof *t);
	t->alloc = alloc;
	t->ud = ud;
	t->threads = 1;
	return t;
}

nb_tape *nb_tape_new(void)
{
	return nb_tape_new_alloc(nb_default_alloc, NULL);
}

void nb_tape_free(nb_tape *t)
{
	if (!t || !nb__writable(t, "tape_free"))
		return;
	for (size_t c = 0; c < t->n_chunks; c++) {
		UNPOISON(t->chunk[c].mem, t->chunk[c].size);
		nb__free(t, t->chunk[c].mem, t->chunk[c].size);
	}
	nb__free(t, t->chunk, t->chunks_cap * sizeof *t->chunk);
	nb__free(t, t->node, t->cap * sizeof *t->node);
	nb__free(t, t->scratch, t->scratch_n * sizeof *t->scratch);
	nb__hashcons_free(t);
	nb__user_ops_free(t);
	t->alloc(t->ud, t, sizeof *t, 0);
}

size_t nb_tape_size(const nb_tape *t)
{
	return t ? t->n : 0;
}

size_t nb__tape_bytes(const nb_tape *t)
{
	size_t bytes = sizeof *t + t->chunks_cap * sizeof *t->chunk + t->cap * sizeof *t->node +
	               t->scratch_n * sizeof *t->scratch + t->hc.cap * sizeof *t->hc.slot +
	               nb__user_ops_bytes(t);

	for (size_t c = 0; c < t->n_chunks; c++)
		bytes += t->chunk[c].size;
	return bytes;
}

size_t nb_tape_bytes(const nb_tape *t)
{
	return t ? nb__tape_bytes(t) : 0;
}

/* ---- Memory: the node list and the chunks ------------------------------------------ */

bool nb__grow_array(nb_tape *t, void **old, size_t n, size_t *cap, size_t first,
                       size_t elem)
{
	size_t new_cap = *cap ? 2 * *cap : first, bytes;
	void *p;

	if (!nb__mul_size(new_cap, elem, &bytes) || !(p = nb__try_alloc(t, bytes)))
		return false;
	if (n)
		memcpy(p, *old, n * elem);
	nb__free(t, *old, *cap * elem);
	*old = p;
	*cap = new_cap;
	return true;
}

/* Make room for one more node pointer, doubling the list. */
static bool reserve_one(nb_tape *t)
{
	void *node = t->node;

	if (t->n < t->cap)
		return true;
	if (!nb__grow_array(t, &node, t->n, &t->cap, 64, sizeof *t->node)) {
		nb__fail(t, NB_ENOMEM, "out of memory: a list of %zu nodes", 2 * t->cap);
		return false;
	}
	t->node = node;
	return true;
}

/* Append an empty chunk of at least bytes bytes after the last one. Records no error: the
 * caller names what the memory was for. */
static bool add_chunk(nb_tape *t, size_t bytes)
{
	size_t have = 0, size, first;
	char *mem;

	for (size_t c = 0; c < t->n_chunks; c++)
		have += t->chunk[c].size;
	size = have < CHUNK_MIN ? CHUNK_MIN : have > CHUNK_MAX ? CHUNK_MAX : have;
	size = bytes > size ? bytes : size;
	if (t->n_chunks == t->chunks_cap) {
		void *chunk = t->chunk;

		if (!nb__grow_array(t, &chunk, t->n_chunks, &t->chunks_cap, 8, sizeof *t->chunk))
			return false;
		t->chunk = chunk;
	}
	if (!nb__add_size(size, NODE_ALIGN, &size))
		return false;
	mem = nb__try_alloc(t, size);
	if (!mem)
		return false;
	POISON(mem, size);
	/* the allocator aligns less: the chunk's nodes start at its first aligned byte */
	first = (size_t)(-(uintptr_t)mem & (NODE_ALIGN - 1));
	t->chunk[t->n_chunks++] = (struct nb_chunk){ .mem = mem, .size = size, .used = first,
	                                             .first = first };
	return true;
}

/* bytes from the first chunk from the current one on that has room, or a new chunk; the
 * index of the chunk goes to *index. Chunks only advance, so that giving back everything
 * from one node on is a matter of resetting counters (see rewind). */
static void *chunk_alloc(nb_tape *t, size_t bytes, size_t *index)
{
	size_t span;

	if (!nb__add_size(bytes, REDZONE, &span))
		return NULL;
	for (size_t c = t->cur;; c++) {
		struct nb_chunk *k;

		if (c == t->n_chunks && !add_chunk(t, span))
			return NULL;
		k = &t->chunk[c];
		if (k->size - k->used < span)
			continue;
		t->cur = c;
		*index = c;
		UNPOISON(k->mem + k->used, bytes);
		k->used += span;
		return k->mem + k->used - span;
	}
}

/* Give back every byte from node x on: x and what was carved after it. */
static void chunks_truncate(nb_tape *t, const nb_tensor *x)
{
	size_t first = x->chunk;  /* read before x itself is poisoned */
	struct nb_chunk *k = &t->chunk[first];

	t->cur = first;
	k->used = (size_t)((const char *)x - k->mem);
	POISON(k->mem + k->used, k->size - k->used);
	for (size_t c = first + 1; c < t->n_chunks; c++) {
		t->chunk[c].used = t->chunk[c].first;
		POISON(t->chunk[c].mem, t->chunk[c].size);
	}
}

/* The header of a node, rounded up so that its values start aligned. */
static size_t node_head(void)
{
	return (sizeof(nb_tensor) + NODE_ALIGN - 1) / NODE_ALIGN * NODE_ALIGN;
}

/* The bytes of a node: its header, then its values unless they are borrowed, rounded up
 * to NODE_ALIGN; false when that does not fit in size_t. */
static bool node_bytes(size_t size, bool borrowed, size_t *bytes)
{
	size_t values = 0, total;

	/* a view's values are not the node's, but they must be addressable all the same */
	if (!nb__mul_size(size, sizeof(double), &values))
		return false;
	if (borrowed)
		values = 0;
	if (!nb__add_size(node_head(), values, &total) ||
	    !nb__add_size(total, NODE_ALIGN - 1, &total))
		return false;
	*bytes = total / NODE_ALIGN * NODE_ALIGN;
	return true;
}

/* A node of op with the shape, its memory carved and every field but the values set or
 * zero, not yet on the list (commit_node puts it there). */
static nb_tensor *new_node(nb_tape *t, const struct nb_op *op, int rank, const size_t *dim,
                           double *borrowed)
{
	size_t size = nb__shape_size(rank, dim), bytes, chunk;
	char s[NB_MSG_MAX];
	nb_tensor *x;

	if (!node_bytes(size, borrowed != NULL, &bytes))
		return nb__fail(t, NB_ESHAPE, "%s: shape %s is too large: its size in bytes "
		                "overflows size_t", op->name, nb__shape_str(rank, dim, s));
	if (!reserve_one(t))
		return NULL;
	x = chunk_alloc(t, bytes, &chunk);
	if (!x)
		return nb__fail(t, NB_ENOMEM, "%s: out of memory allocating %zu bytes for shape %s",
		                op->name, bytes, nb__shape_str(rank, dim, s));
	if (!borrowed)  /* the alignment padding after the values is off limits too */
		POISON((char *)x + node_head() + size * sizeof(double),
		       bytes - node_head() - size * sizeof(double));
	memset(x, 0, sizeof *x);
	x->op = op;
	x->tape = t;
	x->id = t->n;
	x->chunk = chunk;
	x->rank = rank;
	if (rank)
		memcpy(x->dim, dim, (size_t)rank * sizeof *dim);
	x->size = size;
	x->borrowed = borrowed != NULL;
	x->value = borrowed ? borrowed : (double *)((char *)x + node_head());
	x->in_gradient = t->in_backward;
	return x;
}

static void commit_node(nb_tape *t, nb_tensor *x)
{
	t->node[t->n++] = x;
}

/* ---- Read-only tapes ---------------------------------------------------------------- */

bool nb__writable(nb_tape *t, const char *fn)
{
	if (!t->lock)
		return true;
	nb__fail(t, NB_EINVAL, "%s: the tape is read-only (its owner locked it with "
	         "nb_tape_lock)", fn);
	return false;
}

int nb_tape_lock(nb_tape *t, const void *key)
{
	if (!t || !key)
		return NB_ENULL;
	if (t->lock)
		return nb__fail(t, NB_EINVAL, "tape_lock: the tape is locked already"), NB_EINVAL;
	t->lock = key;
	return NB_OK;
}

int nb_tape_unlock(nb_tape *t, const void *key)
{
	if (!t || !key)
		return NB_ENULL;
	if (t->lock != key)
		return nb__fail(t, NB_EINVAL, "tape_unlock: %s", t->lock ? "another key locked the "
		                "tape" : "the tape is not locked"), NB_EINVAL;
	t->lock = NULL;
	return NB_OK;
}

int nb_tape_locked(const nb_tape *t)
{
	return t && t->lock;
}

/* ---- Threads ------------------------------------------------------------------------ */

/* Not a change nb__writable() guards: the count changes no value (nabla.h). More threads
 * than processors would only wait on each other. */
int nb_tape_set_threads(nb_tape *t, int n)
{
	int cap = nb__processors();

	if (!t)
		return 1;
	t->threads = n < 1 ? 1 : n > cap ? cap : n;
	return t->threads;
}

int nb_tape_threads(const nb_tape *t)
{
	return t ? t->threads : 1;
}

/* ---- Recording ---------------------------------------------------------------------- */

nb_tensor *nb__append_leaf(nb_tape *t, const struct nb_op *op, int rank, const size_t *dim,
                           double *borrowed)
{
	nb_tensor *x = nb__writable(t, op->name) ? new_node(t, op, rank, dim, borrowed) : NULL;

	if (!x)
		return NULL;
	x->needs_grad = op == &nb__op_variable;
	x->time = ++t->clock;
	x->checked = t->epoch;
	commit_node(t, x);
	return x;
}

nb_tensor *nb__record(nb_tape *t, const struct nb_op *op, nb_tensor *const *in,
                      const struct nb_attr *attr, int rank, const size_t *dim)
{
	static const struct nb_attr none;
	uint64_t h;
	nb_tensor *x;

	if (!attr)
		attr = &none;
	if (!nb__writable(t, op->name))
		return NULL;
	h = nb__node_hash(op, in, attr, rank, dim);
	x = nb__hashcons_find(&t->hc, h, op, in, attr, rank, dim);
	if (x) {  /* an equal node: hand it back only once its value is current */
		nb__refresh(x);
		return t->err.status == NB_OK ? x : NULL;
	}
	for (int i = 0; i < op->arity; i++)
		nb__refresh(in[i]);
	if (t->err.status != NB_OK || !nb__hashcons_reserve(t))
		return NULL;
	x = new_node(t, op, rank, dim, NULL);
	if (!x)
		return NULL;
	x->attr = *attr;
	for (int i = 0; i < op->arity; i++) {
		x->in[i] = in[i];
		x->needs_grad |= in[i]->needs_grad;
	}
	if (!nb__compute(t, x)) {
		chunks_truncate(t, x);
		return NULL;
	}
	x->hash = h;
	nb__hashcons_insert(t, x);
	commit_node(t, x);
	return x;
}

bool nb__reserve_scratch(nb_tape *t, size_t n)
{
	size_t bytes;
	double *s;

	if (n <= t->scratch_n)
		return true;
	if (!nb__mul_size(n, sizeof *s, &bytes)) {
		nb__fail(t, NB_ENOMEM, "out of memory: %zu doubles of scratch space", n);
		return false;
	}
	s = nb__alloc(t, bytes);
	if (!s)
		return false;
	nb__free(t, t->scratch, t->scratch_n * sizeof *t->scratch);
	t->scratch = s;
	t->scratch_n = n;
	return true;
}

nb_tensor *nb__record_unary(nb_tape *t, const struct nb_op *op, nb_tensor *x)
{
	if (!nb__args_ok(t, op->name, &x, 1))
		return NULL;
	return nb__record(t, op, &x, NULL, x->rank, x->dim);
}

/* ---- Marks -------------------------------------------------------------------------- */

nb_tensor *nb__undo(nb_tape *t, size_t mark, nb_tensor *result)
{
	if (!result && t->n > mark)
		nb_tape_rewind(t, mark);
	return result;
}

size_t nb_tape_mark(const nb_tape *t)
{
	return t ? t->n : 0;
}

int nb_tape_rewind(nb_tape *t, size_t mark)
{
	if (!t)
		return NB_ENULL;
	if (!nb__writable(t, "rewind"))
		return t->err.status;
	if (mark > t->n) {
		nb__fail(t, NB_EINVAL, "rewind: mark %zu is past the end of the tape (%zu nodes)",
		         mark, t->n);
		return NB_EINVAL;
	}
	if (mark == t->n)
		return NB_OK;
	if (t->sweep_end > mark)  /* some gradient of the last sweep is dropped */
		t->grads_valid = false;
	for (size_t i = t->n; i-- > mark;)
		if (t->node[i]->hashed)
			nb__hashcons_remove(t, t->node[i]);
	chunks_truncate(t, t->node[mark]);
	t->n = mark;
	return NB_OK;
}

int nb_tape_reset(nb_tape *t)
{
	return nb_tape_rewind(t, 0);
}

nb_tensor *nb_tape_find(const nb_tape *t, const char *name)
{
	if (!t || !name || !*name)
		return NULL;
	for (size_t i = t->n; i-- > 0;)
		if (!strcmp(t->node[i]->name, name))
			return t->node[i];
	return NULL;
}
