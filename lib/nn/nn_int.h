/* nn_int.h -- what the network library's modules share. The library is written on
 * nabla.h's public calls only: nothing here reaches into the engine, and these helpers,
 * named nn__, are neither installed nor exported. */
#ifndef NN_INT_H
#define NN_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "nabla_nn.h"

/* A sticky error, as a tape's: the first one is kept, in a fixed buffer so that running
 * out of memory can be reported too. */
struct nn_error {
	int status;
	char message[NB_MSG_MAX];
};

/* Record status and the formatted message on e unless an error is there already;
 * return e's status. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 0)))
#endif
int nn__error_vset(struct nn_error *e, int status, const char *fmt, va_list ap);
void nn__error_clear(struct nn_error *e);

/* Write the formatted message into msg (NB_MSG_MAX bytes; nothing when msg is NULL) and
 * return status. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
int nn__msg_fail(char *msg, int status, const char *fmt, ...);

#endif
