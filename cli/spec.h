/* spec.h -- the inputs of the nabla command, NAME=VALUE: a number, a nested list, a
 * generator (zeros, ones, rand, randn) or a file. docs/expressions.md describes them. */
#ifndef NABLA_CLI_SPEC_H
#define NABLA_CLI_SPEC_H

#include <stddef.h>

#include <nabla.h>

/* Size of a message of spec_read(), NUL included. */
#define SPEC_MSG_MAX 512

/* The most elements an input may have: 2^24 doubles, 128 MiB. */
#define SPEC_MAX_ELEMENTS ((size_t)1 << 24)

/* One input: its name, shape and row-major values (from malloc). */
struct spec {
	char *name;
	int rank;
	size_t dim[NB_MAX_RANK];
	size_t size;
	double *data;
};

/* Read arg, NAME=VALUE, into s. Random values come from a generator seeded with seed and
 * the name, so that an input's values depend on nothing else. Returns 0, or -1 with s
 * empty and msg saying what is wrong and where: "x=randn(3,,4): 1:11: expected a
 * dimension, found ','", or, in a file, "x=@d.txt: d.txt:2:5: ...". */
int spec_read(struct spec *s, const char *arg, unsigned long seed, char msg[SPEC_MSG_MAX]);

/* Free what spec_read() allocated and empty s. */
void spec_free(struct spec *s);

#endif
