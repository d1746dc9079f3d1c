/* layer.c -- each kind of layer: the fields it takes, the shape it gives, its parameters
 * and their initialisation, and the ops it records. Nothing here knows backpropagation:
 * a layer records its forward ops, and their rules give every gradient. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "layer.h"

static const char *const kind_names[] = {
	NULL, "dense", "conv2d", "max_pool", "avg_pool", "dropout", "activation"
};
static const char *const act_names[] = {
	"sigmoid", "tanh", "relu", "softmax", "softplus", "identity"
};
static const char *const init_names[] = { "normal", "scaled", "he", "glorot", "zero" };

#define COUNT(a) (sizeof (a) / sizeof (a)[0])

const char *nn__kind_name(int kind)
{
	return kind >= 0 && (size_t)kind < COUNT(kind_names) ? kind_names[kind] : NULL;
}

const char *nn__activation_name(int act)
{
	return act >= 0 && (size_t)act < COUNT(act_names) ? act_names[act] : NULL;
}

const char *nn__init_name(int init)
{
	return init >= 0 && (size_t)init < COUNT(init_names) ? init_names[init] : NULL;
}

/* ---- Checking a list ---------------------------------------------------------------- */

/* The fields each kind reads; every other one must be 0, so that a field given to the
 * wrong kind (a pool's pad, a dense layer's k) is an error, not ignored. */
enum { F_UNITS = 1, F_K = 2, F_STRIDE = 4, F_PAD = 8, F_ACT = 16, F_INIT = 32, F_P = 64 };
static const int kind_fields[] = {
	0, F_UNITS | F_ACT | F_INIT, F_UNITS | F_K | F_STRIDE | F_PAD | F_ACT | F_INIT,
	F_K | F_STRIDE, F_K | F_STRIDE, F_P, F_ACT
};

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int layer_fail(char *msg, size_t i, const nb_layer *s, const char *fmt, ...)
{
	char reason[NB_MSG_MAX];
	const char *kind = nn__kind_name(s->kind);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	if (kind)
		return nn__msg_fail(msg, NB_EINVAL, "net: layer %zu (%s): %s", i, kind, reason);
	return nn__msg_fail(msg, NB_EINVAL, "net: layer %zu: %s", i, reason);
}

static int check_unused(char *msg, size_t i, const nb_layer *s)
{
	int used = kind_fields[s->kind];
	const char *kind = nn__kind_name(s->kind);

	if (!(used & F_UNITS) && s->units)
		return layer_fail(msg, i, s, "units is %zu, but a %s layer has none", s->units, kind);
	if (!(used & F_K) && s->k)
		return layer_fail(msg, i, s, "k is %zu, but a %s layer has no window", s->k, kind);
	if (!(used & F_STRIDE) && s->stride)
		return layer_fail(msg, i, s, "stride is %zu, but a %s layer has no window",
		                  s->stride, kind);
	if (!(used & F_PAD) && s->pad)
		return layer_fail(msg, i, s, "pad is %zu, but a %s layer has no padding", s->pad,
		                  kind);
	if (!(used & F_ACT) && s->activation)
		return layer_fail(msg, i, s, "activation is %d, but a %s layer has none",
		                  s->activation, kind);
	if (!(used & F_INIT) && s->init)
		return layer_fail(msg, i, s, "init is %d, but a %s layer has no parameters",
		                  s->init, kind);
	if (!(used & F_P) && s->p != 0.0)
		return layer_fail(msg, i, s, "p is %g, but only a dropout layer has one", s->p);
	return NB_OK;
}

/* The values of the fields a kind reads. */
static int check_fields(char *msg, size_t i, const nb_layer *s)
{
	int used = kind_fields[s->kind];

	if ((used & F_UNITS) && (s->units == 0 || s->units > NN_MAX_ELEMENTS))
		return layer_fail(msg, i, s, "%zu units (1..%zu)", s->units, NN_MAX_ELEMENTS);
	if ((used & F_K) && (s->k == 0 || s->k > 1024))
		return layer_fail(msg, i, s, "a window of %zu x %zu (k is 1..1024)", s->k, s->k);
	if ((used & F_STRIDE) && s->stride > 1024)
		return layer_fail(msg, i, s, "stride %zu (0..1024)", s->stride);
	if ((used & F_PAD) && s->pad > 1024)
		return layer_fail(msg, i, s, "pad %zu (0..1024)", s->pad);
	if ((used & F_ACT) && !nn__activation_name(s->activation))
		return layer_fail(msg, i, s, "unknown activation %d", s->activation);
	if ((used & F_INIT) && !nn__init_name(s->init))
		return layer_fail(msg, i, s, "unknown initialisation %d", s->init);
	if ((used & F_P) && !(s->p >= 0.0 && s->p < 1.0))
		return layer_fail(msg, i, s, "p is %g, not in [0, 1)", s->p);
	return NB_OK;
}

/* The side of what a window of k moved by stride over size + 2 pad covers, or 0 when it
 * does not fit. */
static size_t windows(size_t size, size_t k, size_t stride, size_t pad)
{
	return size + 2 * pad < k ? 0 : (size + 2 * pad - k) / stride + 1;
}

/* The shapes a layer gives from what it reads (l->in, l->columns_in set). */
static int shape_layer(char *msg, size_t i, struct nn_layer *l)
{
	const nb_layer *s = &l->spec;
	size_t c = l->in[0], h = l->in[1], w = l->in[2], oh, ow;

	memcpy(l->out, l->in, sizeof l->out);
	switch (s->kind) {
	case NB_LAYER_DENSE:
		l->out[0] = s->units;
		l->out[1] = l->out[2] = 1;
		l->wrank = 2;
		l->wdim[0] = s->units;
		l->wdim[1] = c * h * w;
		l->bdim[0] = s->units;
		l->bdim[1] = 1;
		l->fan_in = c * h * w;
		l->fan_out = s->units;
		break;
	case NB_LAYER_CONV2D:
	case NB_LAYER_MAX_POOL:
	case NB_LAYER_AVG_POOL:
		if (l->columns_in)
			return layer_fail(msg, i, s, "reads images, but a dense layer before it gives "
			                  "columns");
		if (s->pad > h || s->pad > w)  /* as nb_conv2d() has it */
			return layer_fail(msg, i, s, "padding %zu is more than a %zu x %zu image",
			                  s->pad, h, w);
		oh = windows(h, s->k, l->spec.stride, s->pad);
		ow = windows(w, s->k, l->spec.stride, s->pad);
		if (oh == 0 || ow == 0)
			return layer_fail(msg, i, s, "a %zu x %zu window does not fit a %zu x %zu "
			                  "image padded by %zu", s->k, s->k, h, w, s->pad);
		l->out[1] = oh;
		l->out[2] = ow;
		if (s->kind != NB_LAYER_CONV2D)
			break;
		l->out[0] = s->units;
		l->wrank = 4;
		l->wdim[0] = s->units;
		l->wdim[1] = c;
		l->wdim[2] = l->wdim[3] = s->k;
		l->bdim[0] = s->units;
		l->bdim[1] = l->bdim[2] = 1;
		l->fan_in = c * s->k * s->k;
		l->fan_out = s->units * s->k * s->k;
		break;
	default:
		break;
	}
	if (l->out[0] * l->out[1] * l->out[2] > NN_MAX_ELEMENTS ||
	    nn__weights_size(l) > NN_MAX_ELEMENTS)
		return layer_fail(msg, i, s, "over %zu values per example or in its weights",
		                  NN_MAX_ELEMENTS);
	return NB_OK;
}

int nn__layers_resolve(const nb_layer *spec, size_t n, const size_t input[3],
                       struct nn_layer *out, char *msg)
{
	size_t in[3];
	bool columns = false;
	const nb_layer *last = NULL;

	for (int d = 0; d < 3; d++) {
		in[d] = input[d] ? input[d] : 1;
		if (in[d] > NN_MAX_ELEMENTS)
			return nn__msg_fail(msg, NB_EINVAL, "net: input[%d] is %zu (0..%zu)", d,
			                    input[d], NN_MAX_ELEMENTS);
	}
	if (in[0] * in[1] * in[2] > NN_MAX_ELEMENTS)
		return nn__msg_fail(msg, NB_EINVAL, "net: an input of %zu x %zu x %zu is over %zu "
		                    "values", in[0], in[1], in[2], NN_MAX_ELEMENTS);
	for (size_t i = 0; i < n; i++) {
		struct nn_layer *l = &out[i];
		int status;

		memset(l, 0, sizeof *l);
		l->spec = spec[i];
		if (!nn__kind_name(spec[i].kind))
			return layer_fail(msg, i, &spec[i], "unknown kind %d", spec[i].kind);
		status = check_unused(msg, i, &spec[i]);
		if (status == NB_OK)
			status = check_fields(msg, i, &spec[i]);
		if (status != NB_OK)
			return status;
		if (l->spec.kind == NB_LAYER_CONV2D && l->spec.stride == 0)
			l->spec.stride = 1;
		if ((l->spec.kind == NB_LAYER_MAX_POOL || l->spec.kind == NB_LAYER_AVG_POOL) &&
		    l->spec.stride == 0)
			l->spec.stride = l->spec.k;
		memcpy(l->in, in, sizeof in);
		l->columns_in = columns;
		status = shape_layer(msg, i, l);
		if (status != NB_OK)
			return status;
		memcpy(in, l->out, sizeof in);
		columns = columns || spec[i].kind == NB_LAYER_DENSE;
		if (spec[i].kind != NB_LAYER_ACTIVATION)
			last = &spec[i];
	}
	if (!last || last->kind != NB_LAYER_DENSE)
		return nn__msg_fail(msg, NB_EINVAL, "net: the last layer must be a dense one, or "
		                    "activations after one, not %s",
		                    last ? nn__kind_name(last->kind) : "activations alone");
	return NB_OK;
}

size_t nn__weights_size(const struct nn_layer *l)
{
	size_t n = l->wrank ? 1 : 0;

	for (int d = 0; d < l->wrank; d++)
		n *= l->wdim[d];
	return n;
}

size_t nn__biases_size(const struct nn_layer *l)
{
	return l->wrank ? l->bdim[0] : 0;
}

/* ---- Initialisation ----------------------------------------------------------------- */

/* Weights first, then biases, each in order, so that a network of sizes draws exactly
 * what it always has from one seed. */
void nn__layer_init(const struct nn_layer *l, double *w, double *b, nb_rng *r)
{
	size_t nw = nn__weights_size(l), nb = nn__biases_size(l);
	double in = (double)l->fan_in, limit = sqrt(6.0 / (in + (double)l->fan_out));
	double scale = l->spec.init == NB_INIT_SCALED ? 1.0 / sqrt(in)
	             : l->spec.init == NB_INIT_HE ? sqrt(2.0 / in) : 1.0;
	bool normal_biases = l->spec.init == NB_INIT_NORMAL || l->spec.init == NB_INIT_SCALED;

	for (size_t i = 0; i < nw; i++) {
		if (l->spec.init == NB_INIT_GLOROT)
			w[i] = limit * (2.0 * nb_rng_uniform(r) - 1.0);
		else if (l->spec.init == NB_INIT_ZERO)
			w[i] = 0.0;
		else
			w[i] = scale * nb_rng_normal(r);
	}
	for (size_t j = 0; j < nb; j++)
		b[j] = normal_biases ? nb_rng_normal(r) : 0.0;
}

/* ---- Recording ---------------------------------------------------------------------- */

/* Softmax couples the values of one example: a column after a dense layer, the channels
 * of a pixel before. */
static nb_tensor *activate(nb_tape *t, nb_tensor *z, int act, bool columns)
{
	switch (act) {
	case NB_TANH: return nb_tanh(t, z);
	case NB_RELU: return nb_relu(t, z);
	case NB_SOFTMAX: return nb_softmax(t, z, columns ? 0 : 1);
	case NB_SOFTPLUS: return nb_softplus(t, z);
	case NB_IDENTITY: return z;
	default: return nb_sigmoid(t, z);
	}
}

/* z = w a + b (BP2 and BP4 emerge from matmul's rule, BP3 from add's). Images and the
 * input's rows are read as columns through a transposed operand, so nothing is copied
 * into column form. */
static nb_tensor *dense(nb_tape *t, const struct nn_layer *l, nb_tensor *a, nb_tensor *w,
                        nb_tensor *b)
{
	if (l->columns_in)
		return nb_add(t, nb_matmul(t, w, a), b);
	if (nb_rank(a) != 2)
		a = nb_reshape(t, a, 2, (size_t[]){ nb_dim(a, 0), l->wdim[1] });
	return nb_add(t, nb_matmul_t(t, w, a, NB_TRANS_B), b);
}

nb_tensor *nn__layer_record(nb_tape *t, const struct nn_layer *l, nb_tensor *a, nb_tensor *w,
                            nb_tensor *b, bool train, unsigned long long seed,
                            nb_tensor **pre)
{
	const nb_layer *s = &l->spec;
	bool columns = l->columns_in || s->kind == NB_LAYER_DENSE;
	nb_tensor *z = a;

	switch (s->kind) {
	case NB_LAYER_DENSE:
		z = dense(t, l, a, w, b);
		break;
	case NB_LAYER_CONV2D:
		z = nb_add(t, nb_conv2d(t, a, w, s->stride, s->pad), b);
		break;
	case NB_LAYER_MAX_POOL:
		return nb_max_pool2d(t, a, s->k, s->stride);
	case NB_LAYER_AVG_POOL:
		return nb_avg_pool2d(t, a, s->k, s->stride);
	case NB_LAYER_DROPOUT:
		return train && s->p > 0.0 ? nb_dropout(t, a, s->p, seed) : a;
	default:
		break;
	}
	if (pre)
		*pre = z;
	return activate(t, z, s->activation, columns);
}
