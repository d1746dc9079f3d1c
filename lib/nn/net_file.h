/* net_file.h -- networks in model file format version 2 (net_file.c). */
#ifndef NN_NET_FILE_H
#define NN_NET_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "nn_int.h"

/* The magic of a version-2 file: a file of named tensors (tensors.c). */
#define NN_TENSORS_MAGIC "NABLATNS"

/* Whether one of the n tensors holds a NaN or an infinity: the first one, tensor *t
 * element *j. A loader refuses such a network (it cannot tell a diverged network from a
 * corrupt file), so a save refuses it too. */
bool nn__non_finite(const nb_named_tensor *ts, size_t n, size_t *t, size_t *j);

/* Save net to path as a file of named tensors describing it; nb_net_save()'s errors. */
int nn__net_save_v2(const nb_net *net, const char *path, char *msg);

/* Load a network from a file of named tensors; nb_net_load_opts()'s errors, and
 * NB_EFORMAT for a description or parameters that do not make a network. */
int nn__net_load_v2(const char *path, const nb_load_opts *opts, nb_net **out, char *msg);

#endif
