/* file.h -- what the loaders and savers of files (idx.c, model.c) share: messages that
 * give the reason before the path. */
#ifndef NB_FILE_H
#define NB_FILE_H

#include <stdarg.h>

/* Write "REASON: PATH" into msg (NB_MSG_MAX bytes; nothing when msg is NULL), REASON
 * formatted from fmt, and return status. The reason comes first so that a long path, cut
 * at the end of the buffer, never hides it. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
int nb__file_fail(char *msg, int status, const char *path, const char *fmt, ...);
/* The same with a va_list, for functions that add their own context. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 0)))
#endif
int nb__file_vfail(char *msg, int status, const char *path, const char *fmt, va_list ap);

#endif
