/* zfile.h -- the bytes of a regular file, inflated when it is gzip-compressed, for the
 * IDX loader. zlib allocates through the caller's allocator, as everything else does. */
#ifndef NB_ZFILE_H
#define NB_ZFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <zlib.h>

#include "nn_int.h"

#define NB_ZFILE_CHUNK 16384  /* bytes of the file read at a time */

/* An open file. Read-only for the caller: path, and off, the count of (uncompressed)
 * bytes read so far. */
struct nb_zfile {
	const char *path;       /* as given, for messages */
	char *msg;              /* where messages go (NB_MSG_MAX bytes, may be NULL) */
	nb_alloc_fn alloc;      /* zlib's allocations */
	void *ud;
	size_t off;
	int fd;
	bool gzip;              /* the file starts with gzip's magic bytes */
	bool zlive;             /* zs is initialised and must be ended */
	bool raw_eof;           /* read() has returned 0 */
	bool data_end;          /* the last gzip member has ended */
	z_stream zs;            /* next_in, avail_in: the unread part of in, plain files too */
	unsigned char in[NB_ZFILE_CHUNK];
};

/* Open path, which must be a regular file, and see whether it is gzip. On error f is
 * closed already and msg says why, naming the file. A struct that was never opened must
 * have fd -1 for nn__zfile_close() to leave it alone. */
int nn__zfile_open(struct nb_zfile *f, const char *path, nb_alloc_fn alloc, void *ud,
                   char *msg);

/* Read up to n (> 0) bytes into buf: *got is 0 only at the end of the data. Errors:
 * NB_EIO (a read error, a corrupt gzip stream), NB_EFORMAT (a gzip stream cut short),
 * NB_ENOMEM (zlib ran out of memory), each with its message. */
int nn__zfile_read(struct nb_zfile *f, unsigned char *buf, size_t n, size_t *got);

/* Skip up to n bytes of data without keeping them: *skipped is less than n only at the
 * end of the data, and off moves on by *skipped, as if they had been read. A plain file
 * drops what is buffered, then seeks, never past its end (so that a message about a
 * file too short gives the byte where it ends); a gzip file is inflated and the bytes
 * dropped. Errors as nn__zfile_read(), and NB_EIO when the file cannot be seeked. */
int nn__zfile_skip(struct nb_zfile *f, size_t n, size_t *skipped);

/* Close the file and free zlib's state. */
void nn__zfile_close(struct nb_zfile *f);

#endif
