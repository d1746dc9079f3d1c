/* hashcons.c -- hash-consing: an op recorded again with the same inputs, attributes and
 * shape returns the node already on the tape. The key is hashed with XXH3; the table is
 * open addressing with linear probing over node pointers. */
#include <string.h>

#include <xxhash.h>

#include "nabla_int.h"

/* The attributes as words, field by field so that no struct padding is hashed. */
enum { ATTR_WORDS = 8 };

static size_t attr_words(const struct nb_attr *attr, uint64_t *key)
{
	size_t k = 0;

	memcpy(&key[k++], &attr->c, sizeof attr->c);
	key[k++] = (uint64_t)(uint32_t)attr->axis | (uint64_t)attr->keepdim << 32 |
	           (uint64_t)attr->trans << 40;
	key[k] = 0;
	for (int i = 0; i < NB_MAX_RANK; i++)
		key[k] |= (uint64_t)attr->perm[i] << (8 * i);
	k++;
	key[k++] = attr->of ? (uint64_t)attr->of->id + 1 : 0;
	key[k++] = (uint64_t)attr->slot;
	key[k++] = (uint64_t)attr->start;
	key[k++] = (uint64_t)attr->win[0] | (uint64_t)attr->win[1] << 32;
	key[k++] = (uint64_t)attr->win[2] | (uint64_t)attr->win[3] << 32;
	return k;
}

uint64_t nb__attr_hash(const struct nb_attr *attr)
{
	uint64_t key[ATTR_WORDS];

	return XXH3_64bits(key, attr_words(attr, key) * sizeof key[0]);
}

/* c is compared by its bits: fill(-0.0) and fill(0.0) are different literals. */
bool nb__attr_equal(const struct nb_attr *a, const struct nb_attr *b)
{
	uint64_t ka[ATTR_WORDS], kb[ATTR_WORDS];
	size_t n = attr_words(a, ka);

	attr_words(b, kb);
	return !memcmp(ka, kb, n * sizeof ka[0]);
}

/* The key as words. */
enum { KEY_WORDS = 2 + NB_MAX_ARITY + ATTR_WORDS + NB_MAX_RANK };

uint64_t nb__node_hash(const struct nb_op *op, nb_tensor *const *in,
                       const struct nb_attr *attr, int rank, const size_t *dim)
{
	uint64_t key[KEY_WORDS] = { 0 };
	size_t k = 0;

	key[k++] = (uint64_t)(uintptr_t)op;
	for (int i = 0; i < op->arity; i++)
		key[k++] = in[i]->id;
	k += attr_words(attr, key + k);
	key[k++] = (uint64_t)rank;
	for (int i = 0; i < rank; i++)
		key[k++] = dim[i];
	return XXH3_64bits(key, k * sizeof key[0]);
}

static bool node_matches(const nb_tensor *x, const struct nb_op *op, nb_tensor *const *in,
                         const struct nb_attr *attr, int rank, const size_t *dim)
{
	if (x->op != op || x->rank != rank)
		return false;
	for (int i = 0; i < op->arity; i++)
		if (x->in[i] != in[i])
			return false;
	if (!nb__attr_equal(&x->attr, attr))
		return false;
	return rank == 0 || !memcmp(x->dim, dim, (size_t)rank * sizeof *dim);
}

/* The slot index a node with hash h probes first. */
static size_t first_slot(const struct nb_hashcons *hc, uint64_t h)
{
	return (size_t)h & (hc->cap - 1);
}

nb_tensor *nb__hashcons_find(const struct nb_hashcons *hc, uint64_t h, const struct nb_op *op,
                             nb_tensor *const *in, const struct nb_attr *attr, int rank,
                             const size_t *dim)
{
	if (hc->cap == 0)
		return NULL;
	for (size_t i = first_slot(hc, h);; i = (i + 1) & (hc->cap - 1)) {
		nb_tensor *x = hc->slot[i];

		if (!x)
			return NULL;
		if (node_matches(x, op, in, attr, rank, dim))
			return x;
	}
}

static void place(struct nb_hashcons *hc, nb_tensor *x)
{
	size_t i = first_slot(hc, x->hash);

	while (hc->slot[i])
		i = (i + 1) & (hc->cap - 1);
	hc->slot[i] = x;
	hc->used++;
}

/* Double the table (or make the first one) and re-place every node. */
static bool grow(nb_tape *t)
{
	struct nb_hashcons *hc = &t->hc;
	size_t old_cap = hc->cap, cap = old_cap ? 2 * old_cap : 64, bytes;
	nb_tensor **old = hc->slot, **slot;

	if (!nb__mul_size(cap, sizeof *slot, &bytes)) {
		nb__fail(t, NB_ENOMEM, "out of memory: a hash table of %zu slots", cap);
		return false;
	}
	slot = nb__alloc(t, bytes);
	if (!slot)
		return false;
	memset(slot, 0, bytes);
	hc->slot = slot;
	hc->cap = cap;
	hc->used = 0;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i])
			place(hc, old[i]);
	nb__free(t, old, old_cap * sizeof *old);
	return true;
}

/* Keep the load at most one half, so that probes stay short. */
bool nb__hashcons_reserve(nb_tape *t)
{
	return 2 * (t->hc.used + 1) <= t->hc.cap || grow(t);
}

void nb__hashcons_insert(nb_tape *t, nb_tensor *x)
{
	place(&t->hc, x);
	x->hashed = true;
}

/* Linear probing's deletion without tombstones (Knuth's algorithm R): empty x's slot,
 * then move back every later node of the run that would no longer be found. */
void nb__hashcons_remove(nb_tape *t, nb_tensor *x)
{
	struct nb_hashcons *hc = &t->hc;
	size_t mask = hc->cap - 1, i = first_slot(hc, x->hash);

	while (hc->slot[i] != x)
		i = (i + 1) & mask;
	for (size_t j = (i + 1) & mask; hc->slot[j]; j = (j + 1) & mask) {
		size_t home = first_slot(hc, hc->slot[j]->hash);

		/* slot[j] may move to the hole at i unless its home lies cyclically in (i, j]. */
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		hc->slot[i] = hc->slot[j];
		i = j;
	}
	hc->slot[i] = NULL;
	hc->used--;
	x->hashed = false;
}

void nb__hashcons_free(nb_tape *t)
{
	nb__free(t, t->hc.slot, t->hc.cap * sizeof *t->hc.slot);
	t->hc.slot = NULL;
	t->hc.cap = t->hc.used = 0;
}
