/* alloc.h -- the allocator behind every hook left NULL, for modules written on the public
 * API that take the caller's nb_alloc_fn (gradcheck.c, bp_reference.c). */
#ifndef NB_ALLOC_H
#define NB_ALLOC_H

#include <stddef.h>

/* malloc and free in the shape of nb_alloc_fn. */
void *nb__default_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

#endif
