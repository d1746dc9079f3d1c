/* fuzz.h -- what the libFuzzer targets share: a check that is never compiled out, and
 * temporary files (nabla's loaders take paths, so each input goes through one). */
#ifndef NABLA_FUZZ_H
#define NABLA_FUZZ_H

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
