/* file.h -- what the loaders and savers of files (idx.c, model.c, tensors.c) share:
 * messages that give the reason before the path, reading regular files only, and saving
 * atomically through a temporary file. */
#ifndef NB_FILE_H
#define NB_FILE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

/* Read the whole of the regular file path into *data: a block of *cap bytes from alloc
 * (NULL for an empty file; the caller frees it, *cap bytes, on success), *len of them
 * read (fewer if the file shrank meanwhile). The size is checked before anything is
 * allocated or read: a file over format_max bytes is NB_EFORMAT "larger than FORMAT_MAX
 * bytes: not a nabla KIND file", one over max_bytes NB_EFORMAT "N bytes, over the limit
 * of M (nb_load_opts.max_bytes)". Errors of nn__open_regular(), NB_ENOMEM "out of memory
 * reading the file", NB_EIO "cannot read: ..."; *data is NULL on error. */
int nn__read_file(const char *path, nb_alloc_fn alloc, void *ud, uint64_t format_max,
                  size_t max_bytes, const char *kind, unsigned char **data, size_t *cap,
                  size_t *len, char *msg);

/* What is at path now, before a save replaces it: nothing (*old_mode -1), or a regular
 * file (*old_mode its permission bits, which the new file keeps). Anything else is NB_EIO
 * "cannot replace: a symbolic link, not a regular file": renaming over a link would
 * replace the link and leave the file it points to as it was, and a FIFO, a device or a
 * directory is not a file to save into. A path lstat() cannot reach is left to
 * nn__replace_file(), which says why. This is a check, not a lock. */
int nn__check_target(const char *path, int *old_mode, char *msg);

/* Write len bytes of buf to a temporary file beside path (path then ".XXXXXX", created
 * with O_EXCL and mode 0666 so that the umask applies, given old_mode's bits when it is
 * not -1), fsync and close it, then rename it over path. On any failure the temporary
 * file is removed and path is left as it was: NB_EIO ("cannot create a temporary file:
 * ...", "cannot write: ...", "cannot replace: ...") or NB_ENOMEM. The temporary file's
 * name is the one allocation, through alloc. */
int nn__replace_file(nb_alloc_fn alloc, void *ud, const char *path, int old_mode,
                     const unsigned char *buf, size_t len, char *msg);

#endif
