/* file.c -- what the loaders and savers of files share (see file.h). */
#include <stdarg.h>
#include <stdio.h>

#include "file.h"
#include "nabla.h"

int nb__file_vfail(char *msg, int status, const char *path, const char *fmt, va_list ap)
{
	int n;

	if (!msg)
		return status;
	n = vsnprintf(msg, NB_MSG_MAX, fmt, ap);
	if (n >= 0 && n < NB_MSG_MAX)
		snprintf(msg + n, NB_MSG_MAX - (size_t)n, ": %s", path);
	return status;
}

int nb__file_fail(char *msg, int status, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	status = nb__file_vfail(msg, status, path, fmt, ap);
	va_end(ap);
	return status;
}
