/* nn_error.c -- the network library's messages and sticky errors. */
#include <stdio.h>

#include "nn_int.h"

int nn__error_vset(struct nn_error *e, int status, const char *fmt, va_list ap)
{
	if (e->status != NB_OK)
		return e->status;
	e->status = status;
	vsnprintf(e->message, sizeof e->message, fmt, ap);
	return status;
}

void nn__error_clear(struct nn_error *e)
{
	e->status = NB_OK;
	e->message[0] = '\0';
}

int nn__msg_fail(char *msg, int status, const char *fmt, ...)
{
	va_list ap;

	if (!msg)
		return status;
	va_start(ap, fmt);
	vsnprintf(msg, NB_MSG_MAX, fmt, ap);
	va_end(ap);
	return status;
}
