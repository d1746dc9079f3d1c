/* alloc.c -- every allocation of a tape goes through its allocator hook, so that tests
 * can count allocations and make them fail. */
#include <stdlib.h>

#include "nabla_int.h"

void *nb_default_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	(void)ud;
	(void)osize;
	if (nsize == 0) {
		free(ptr);
		return NULL;
	}
	return malloc(nsize);
}

void *nb__try_alloc(nb_tape *t, size_t size)
{
	return t->alloc(t->ud, NULL, 0, size);
}

/* A block of size bytes, or NULL with NB_ENOMEM recorded on t. */
void *nb__alloc(nb_tape *t, size_t size)
{
	void *p = nb__try_alloc(t, size);

	if (!p)
		nb__fail(t, NB_ENOMEM, "out of memory allocating %zu bytes", size);
	return p;
}

void nb__free(nb_tape *t, void *p, size_t size)
{
	if (p)
		t->alloc(t->ud, p, size, 0);
}
