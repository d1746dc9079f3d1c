/* layer.h -- the layers of a network: the shapes each reads and gives, its parameters,
 * their initialisation, and the ops it records. net.c strings them together. */
#ifndef NN_LAYER_H
#define NN_LAYER_H

#include <stdbool.h>
#include <stddef.h>

#include "nn_int.h"

/* The most elements of one image or parameter array: shapes stay far from overflow. */
#define NN_MAX_ELEMENTS ((size_t)1 << 28)

/* A layer with its shapes worked out. Data flows as images (N x C x H x W, or N x F for
 * the input of a network without images) until the first dense layer, then as columns
 * (units x N). */
struct nn_layer {
	nb_layer spec;          /* as given, with a pool's stride 0 made k, a conv's 1 */
	size_t in[3], out[3];   /* channels, height, width read and given; columns: {n, 1, 1} */
	bool columns_in;        /* it reads units x N */
	int wrank;              /* weights' rank: 0 for a layer without parameters */
	size_t wdim[4];         /* dense: units x inputs; conv2d: maps x channels x k x k */
	size_t bdim[3];         /* dense: units x 1; conv2d: maps x 1 x 1 */
	size_t fan_in, fan_out; /* what the initialisations call n_in and n_out */
};

/* The name of a kind, an activation or an initialisation, for messages and model files
 * ("dense", "relu", "he"); NULL for a value out of range. */
const char *nn__kind_name(int kind);
const char *nn__activation_name(int act);
const char *nn__init_name(int init);

/* Check a list of n layers reading images of shape input and work out its shapes into
 * out (n entries). NB_OK, or NB_EINVAL with a message naming the layer ("net: layer 3
 * (conv2d): ..."). */
int nn__layers_resolve(const nb_layer *spec, size_t n, const size_t input[3],
                       struct nn_layer *out, char *msg);

/* The number of elements of a layer's weights and biases (0 when it has none). */
size_t nn__weights_size(const struct nn_layer *l);
size_t nn__biases_size(const struct nn_layer *l);

/* Draw a layer's parameters from r, weights first, as its initialisation says. */
void nn__layer_init(const struct nn_layer *l, double *w, double *b, nb_rng *r);

/* Record layer l reading a; w and b are its parameter leaves (NULL when it has none).
 * A dropout layer records only when train is set, with seed. *pre (may be NULL) gets the
 * input of the layer's activation, for a cost that needs it. Returns the layer's output,
 * NULL when the tape holds an error. */
nb_tensor *nn__layer_record(nb_tape *t, const struct nn_layer *l, nb_tensor *a, nb_tensor *w,
                            nb_tensor *b, bool train, unsigned long long seed,
                            nb_tensor **pre);

#endif
