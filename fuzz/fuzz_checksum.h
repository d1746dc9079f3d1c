/* fuzz_checksum.h -- for the targets of checksummed files (fuzz_model.c, fuzz_tensors.c):
 * a mutated file almost never carries the right checksum, which would stop every load at
 * the first check, so each input is loaded as it is and then, unless its checksum is
 * right already, again with its last 8 bytes made the XXH3-64 (seed 0, little-endian) of
 * the bytes before them: that takes the loader past the checksum, to the checks of every
 * field. */
#ifndef NABLA_FUZZ_CHECKSUM_H
#define NABLA_FUZZ_CHECKSUM_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "fuzz.h"

static inline void fuzz_load_checksummed(const uint8_t *data, size_t size,
                                         void (*load)(const uint8_t *, size_t))
{
	uint64_t sum, stored = 0;
	uint8_t *fixed;

	load(data, size);
	if (size < 8)
		return;
	sum = XXH3_64bits(data, size - 8);
	for (int i = 7; i >= 0; i--)
		stored = stored << 8 | data[size - 8 + i];
	if (stored == sum)
		return;
	fixed = malloc(size);
	FUZZ_CHECK(fixed != NULL, "out of memory");
	memcpy(fixed, data, size - 8);
	for (int i = 0; i < 8; i++)
		fixed[size - 8 + i] = (uint8_t)(sum >> (8 * i));
	load(fixed, size);
	free(fixed);
}

#endif
