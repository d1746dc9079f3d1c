/* file.h -- what the loaders and savers of files (idx.c, model.c) share: messages that
 * give the reason before the path, and reading regular files only. */
#ifndef NB_FILE_H
#define NB_FILE_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

#include "nn_int.h"

/* Write "REASON: PATH" into msg (NB_MSG_MAX bytes; nothing when msg is NULL), REASON
 * formatted from fmt, and return status. The reason comes first so that a long path, cut
 * at the end of the buffer, never hides it. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
int nn__file_fail(char *msg, int status, const char *path, const char *fmt, ...);
/* The same with a va_list, for functions that add their own context. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 0)))
#endif
int nn__file_vfail(char *msg, int status, const char *path, const char *fmt, va_list ap);

/* The allocator and byte limit of a load: the options', or malloc and NB_LOAD_MAX_BYTES. */
void nn__load_settings(const nb_load_opts *opts, nb_alloc_fn *alloc, void **ud,
                       size_t *max_bytes);

/* What a file that is not a regular one is, for messages: "a directory", "a FIFO", ... */
const char *nn__file_kind(mode_t mode);

/* Open path for reading if it is a regular file: NB_OK with *fd (the caller closes it)
 * and *size, or NB_EIO / NB_ENOMEM with *fd = -1 and a message ("cannot open: a FIFO, not
 * a regular file: PATH"). Never waits: a FIFO without a writer, or a device, is refused
 * before it is read. */
int nn__open_regular(const char *path, int *fd, off_t *size, char *msg);

/* Read up to n bytes from fd into buf, retrying interrupted reads, until n or the end of
 * the file: 0 with *got the bytes read, or the errno of a failed read. */
int nn__read_full(int fd, void *buf, size_t n, size_t *got);

#endif
