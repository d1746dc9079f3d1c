/* fuzz.h -- what the libFuzzer targets share: a check that is never compiled out, an
 * allocator that counts and fails on demand, and temporary files (nabla's loaders take
 * paths, so each input goes through one). */
#ifndef NABLA_FUZZ_H
#define NABLA_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* A broken invariant is a crash, so that libFuzzer keeps the input that broke it. */
#define FUZZ_CHECK(cond, ...)                                                           \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__, __LINE__, \
			        #cond);                                                 \
			fprintf(stderr, __VA_ARGS__);                                   \
			fputc('\n', stderr);                                            \
			abort();                                                        \
		}                                                                       \
	} while (0)

/* An allocator hook for tapes that counts what it lends, checks every free against the
 * size it lent, refuses a block over max_block bytes, more than max_total in all, and the
 * allocation numbered fail_at (from 1; 0: none). */
struct fuzz_alloc {
	size_t max_block, max_total, fail_at;
	size_t count;   /* allocations asked for so far */
	size_t in_use;  /* bytes lent */
	size_t blocks;  /* blocks lent */
};

/* Each block starts with its size, so that a free can be checked against it. */
union fuzz_block_head {
	size_t size;
	max_align_t align;
};

static inline void *fuzz_alloc_fn(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct fuzz_alloc *c = ud;
	union fuzz_block_head *h;

	if (nsize == 0) {
		if (!ptr)
			return NULL;
		h = (union fuzz_block_head *)ptr - 1;
		FUZZ_CHECK(h->size == osize, "block of %zu bytes freed as %zu", h->size, osize);
		c->in_use -= osize;
		c->blocks--;
		free(h);
		return NULL;
	}
	FUZZ_CHECK(ptr == NULL, "the hook was asked to reallocate");
	if (++c->count == c->fail_at || nsize > c->max_block || nsize > c->max_total - c->in_use)
		return NULL;
	h = malloc(sizeof *h + nsize);
	FUZZ_CHECK(h != NULL, "out of memory");
	h->size = nsize;
	c->in_use += nsize;
	c->blocks++;
	return h + 1;
}

#define FUZZ_PATH_MAX 4096

/* Write size bytes of data, gzip-compressed when gzip is set, to a fresh file made by
 * mkstemp in $TMPDIR (or /tmp); its name goes into path (FUZZ_PATH_MAX bytes). The caller
 * unlinks it. A failure here is the machine's, not the input's: it aborts. */
static inline void fuzz_tmpfile(char *path, const uint8_t *data, size_t size, int gzip)
{
	const char *dir = getenv("TMPDIR");
	int fd, len;

	if (!dir || !*dir)
		dir = "/tmp";
	len = snprintf(path, FUZZ_PATH_MAX, "%s/nabla-fuzz-XXXXXX", dir);
	FUZZ_CHECK(len > 0 && len < FUZZ_PATH_MAX, "TMPDIR too long");
	fd = mkstemp(path);
	FUZZ_CHECK(fd >= 0, "mkstemp %s failed", path);
	if (gzip) {
		gzFile gz = gzdopen(fd, "wb1");  /* gzclose closes fd */

		FUZZ_CHECK(gz != NULL, "gzdopen %s failed", path);
		FUZZ_CHECK(size == 0 || gzwrite(gz, data, (unsigned)size) == (int)size,
		           "gzwrite %s failed", path);
		FUZZ_CHECK(gzclose(gz) == Z_OK, "gzclose %s failed", path);
		return;
	}
	for (size_t done = 0; done < size;) {
		ssize_t n = write(fd, data + done, size - done);

		FUZZ_CHECK(n > 0, "write %s failed", path);
		done += (size_t)n;
	}
	FUZZ_CHECK(close(fd) == 0, "close %s failed", path);
}

#endif
