/* net_text.h -- a network's configuration as the text of a version-2 model file. */
#ifndef NN_NET_TEXT_H
#define NN_NET_TEXT_H

#include <stddef.h>

#include "nn_int.h"

/* A configuration read from text, with the arrays it points into. */
struct nn_net_text {
	nb_net_config cfg;
	nb_layer layers[NB_NET_MAX_LAYERS];
	size_t sizes[NB_NET_MAX_LAYERS + 1];
};

/* Write cfg's description into buf (cap bytes, NUL-terminated when it fits) and return
 * its length, as snprintf does: a caller sizes buf with a first call of cap 0. */
size_t nn__net_describe(const nb_net_config *cfg, char *buf, size_t cap);

/* Read a description into *d. NB_OK, or NB_EFORMAT with why (NB_MSG_MAX bytes) naming
 * the line: "network description, line 5: unknown field \"size\"". The values themselves
 * are nb_net_new()'s to check. */
int nn__net_parse(const char *text, struct nn_net_text *d, char *why);

#endif
