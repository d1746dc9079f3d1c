/* error.c -- the version, status names and the tape's sticky error: the first error is
 * kept, in a fixed buffer so that running out of memory can be reported too. */
#include <stdarg.h>
#include <stdio.h>

#include "nabla_int.h"

const char *nb_version(void)
{
	return NB_VERSION_STRING;
}

int nb_version_number(void)
{
	return NB_VERSION_NUMBER;
}

const char *nb_status_name(int status)
{
	switch (status) {
#define NB_STATUS_NAME(name, value, text) case value: return #name;
	NB_STATUS_MAP(NB_STATUS_NAME)
#undef NB_STATUS_NAME
	}
	return "NB_UNKNOWN";
}

const char *nb_status_text(int status)
{
	switch (status) {
#define NB_STATUS_TEXT(name, value, text) case value: return text;
	NB_STATUS_MAP(NB_STATUS_TEXT)
#undef NB_STATUS_TEXT
	}
	return "unknown status";
}

int nb__error_vset(struct nb_error *e, int status, const char *fmt, va_list ap)
{
	if (e->status != NB_OK)
		return e->status;
	e->status = status;
	vsnprintf(e->message, sizeof e->message, fmt, ap);
	return status;
}

int nb__error_set(struct nb_error *e, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	nb__error_vset(e, status, fmt, ap);
	va_end(ap);
	return e->status;
}

void nb__error_clear(struct nb_error *e)
{
	e->status = NB_OK;
	e->message[0] = '\0';
}

void *nb__fail(nb_tape *t, int status, const char *fmt, ...)
{
	va_list ap;

	if (!t)
		return NULL;
	va_start(ap, fmt);
	nb__error_vset(&t->err, status, fmt, ap);
	va_end(ap);
	return NULL;
}

int nb__msg_fail(char *msg, int status, const char *fmt, ...)
{
	va_list ap;

	if (!msg)
		return status;
	va_start(ap, fmt);
	vsnprintf(msg, NB_MSG_MAX, fmt, ap);
	va_end(ap);
	return status;
}

bool nb__args_ok(nb_tape *t, const char *op, nb_tensor *const *in, int n)
{
	if (!t || t->err.status != NB_OK)
		return false;
	for (int i = 0; i < n; i++) {
		if (!in[i]) {
			nb__fail(t, NB_ENULL, "%s: argument %d is NULL", op, i + 1);
			return false;
		}
		if (in[i]->tape != t) {
			nb__fail(t, NB_ETAPE, "%s: argument %d belongs to another tape", op, i + 1);
			return false;
		}
	}
	return true;
}

int nb_tape_status(const nb_tape *t)
{
	return t ? t->err.status : NB_ENULL;
}

const char *nb_tape_message(const nb_tape *t)
{
	return t ? t->err.message : "tape is NULL";
}

void nb_tape_clear_error(nb_tape *t)
{
	if (!t)
		return;
	nb__error_clear(&t->err);
}
