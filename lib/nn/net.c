/* net.c -- a network of layers (layer.c) written as an op graph and trained by replaying
 * its tape. Nothing here knows backpropagation: the graph (for a fully connected network
 * z = w a + b, a = act(z), then the cost) is recorded once per mini-batch size,
 * nb_backward() records its gradients (BP1-BP4 emerge from the ops' rules), and a
 * training step writes the next mini-batch into the input leaves, replays the tape, and
 * moves the parameters against their gradients. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "layer.h"
#include "nn_int.h"

/* How many recorded graphs a network keeps: the training batch size, a smaller last
 * batch, and evaluation batches. */
#define NB_NET_GRAPHS 4

/* Examples per evaluation mini-batch: large enough that replay costs little per example,
 * small enough that the tape stays a few megabytes. */
#define EVAL_BATCH 500

/* The network recorded on a tape for mini-batches of one size. Parameters are variable
 * views of the network's arrays, so every graph sees every update without copying; the
 * mini-batch is written into arrays that constant views read. */
struct nb_graph {
	size_t batch;            /* 0: slot unused */
	bool train;              /* backward (and dropout) recorded: grad is set */
	nb_tape *tape;
	double *xdata, *ydata;   /* the arrays behind x and y */
	nb_tensor *x;            /* one example per row: batch x features, or batch x C x H x W
	                          * for a network of images, as data sets hold them */
	nb_tensor *y;            /* outputs x batch: one example per column, as a^L */
	nb_tensor *out;          /* a^L */
	nb_tensor *cost;
	nb_tensor **param;       /* 2L leaves: w^1 .. w^L, then b^1 .. b^L */
	nb_tensor **grad;        /* their 2L gradient nodes (train only) */
	struct nb_graph *next;   /* the list of graphs handed out by nb_net_tape() */
};

struct nb_net {
	nb_net_config cfg;       /* sizes and layers point at the network's copies; alloc is
	                          * never NULL */
	size_t *sizes;           /* a network of sizes: its sizes */
	nb_layer *spec;          /* the layers as given (a network of sizes: its dense ones) */
	struct nn_layer *layer;  /* the same with their shapes */
	size_t n_layer;
	size_t L;                /* layers with parameters */
	size_t *param_layer;     /* the layer of each of them */
	size_t features, outputs;/* an example's values in and out */
	bool images;             /* x is batch x C x H x W: a convolution or pool reads it */
	double **w, **b;         /* parameters, L arrays each */
	double **state[3];       /* optimizer state, 2L arrays each (weights, then biases),
	                          * made at the first step that needs it: SGD's velocity
	                          * (STATE_VELOCITY), Adam's m and v (STATE_M, STATE_V) */
	size_t adam_steps;       /* Adam updates so far */
	double *decay;           /* 2L weight decay coefficients: weights, then biases (0) */
	nb_rng rng;
	size_t *perm;            /* the shuffled order of an epoch */
	size_t perm_n;
	struct nb_graph graph[NB_NET_GRAPHS];
	size_t next_victim;      /* the slot a new graph replaces when all are used */
	struct nb_graph *shown;  /* graphs of nb_net_tape(), kept until nb_net_free() */
	int threads;             /* each tape's nb_tape_set_threads() */
	struct nb_flat *flat;    /* nb_net_grad()'s buffer and the update that reads it, made
	                          * by the first call that needs them */
	char (*tensor_name)[NB_NAME_MAX]; /* 2L names for nb_net_tensors(): w1, b1, ... */
	struct nn_error err;
};

/* The flat gradient a program may change between nb_net_gradient() and
 * nb_net_apply_gradient(), and a tape of its own on which the update reads it: variable
 * views of the parameters and constant views of the buffer, in the optimizer's order
 * (weights w^1 .. w^L, then biases), each view reading its part of the buffer, which
 * holds them in nb_net_tensors()' order (w1, b1, w2, ...). */
struct nb_flat {
	double *grad;            /* count doubles */
	size_t count;
	nb_tape *tape;
	nb_tensor **param;       /* 2L */
	nb_tensor **view;        /* 2L */
};

/* ---- Errors ------------------------------------------------------------------------- */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int net_fail(nb_net *net, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	nn__error_vset(&net->err, status, fmt, ap);
	va_end(ap);
	return net->err.status;
}

int nb_net_status(const nb_net *net)
{
	return net ? net->err.status : NB_ENULL;
}

const char *nb_net_message(const nb_net *net)
{
	return net ? net->err.message : "net is NULL";
}

void nb_net_clear_error(nb_net *net)
{
	if (net)
		nn__error_clear(&net->err);
}

/* ---- Creation ----------------------------------------------------------------------- */

static bool hidden_ok(int act)
{
	return act >= NB_SIGMOID && act <= NB_IDENTITY && act != NB_SOFTMAX;
}

/* A network of sizes: the checks, and messages, it has always had. */
static int check_sizes(const nb_net_config *cfg, char *msg)
{
	if (cfg->n_layers < 2)
		return nn__msg_fail(msg, NB_EINVAL, "net: need at least 2 layers, got %zu",
		                    cfg->n_layers);
	if (cfg->n_layers > NB_NET_MAX_LAYERS + 1)
		return nn__msg_fail(msg, NB_EINVAL, "net: %zu layers, over the %d a network may "
		                    "have", cfg->n_layers, NB_NET_MAX_LAYERS + 1);
	if (!cfg->sizes)
		return nn__msg_fail(msg, NB_ENULL, "net: sizes is NULL");
	for (size_t l = 0; l < cfg->n_layers; l++)
		if (cfg->sizes[l] == 0 || cfg->sizes[l] > (1u << 24))
			return nn__msg_fail(msg, NB_EINVAL, "net: layer %zu has size %zu (1..%u)", l,
			                    cfg->sizes[l], 1u << 24);
	if (!hidden_ok(cfg->hidden))
		return nn__msg_fail(msg, NB_EINVAL, "net: hidden activation %d is not sigmoid, tanh, "
		                    "relu, softplus or identity", cfg->hidden);
	if (!nn__activation_name(cfg->output))
		return nn__msg_fail(msg, NB_EINVAL, "net: unknown output activation %d", cfg->output);
	if (!nn__init_name(cfg->init))
		return nn__msg_fail(msg, NB_EINVAL, "net: unknown initialisation %d", cfg->init);
	return NB_OK;
}

/* The activation a network ends with: the last one of its list. */
static int output_activation(const nb_layer *spec, size_t n)
{
	for (size_t i = n; i-- > 0;)
		if (spec[i].kind == NB_LAYER_DENSE || spec[i].kind == NB_LAYER_ACTIVATION)
			return spec[i].activation;
	return NB_IDENTITY;
}

static int check_cost(int cost, int out, char *msg)
{
	if (cost != NB_QUADRATIC && cost != NB_CROSS_ENTROPY)
		return nn__msg_fail(msg, NB_EINVAL, "net: unknown cost %d", cost);
	if (cost == NB_CROSS_ENTROPY && out != NB_SIGMOID && out != NB_SOFTMAX)
		return nn__msg_fail(msg, NB_EINVAL, "net: cross-entropy cost needs a sigmoid or "
		                    "softmax output layer, not %s", nn__activation_name(out));
	return NB_OK;
}

static int check_config(const nb_net_config *cfg, char *msg)
{
	int status;

	if (!cfg)
		return nn__msg_fail(msg, NB_ENULL, "net: config is NULL");
	if (!cfg->layers) {
		status = check_sizes(cfg, msg);
		return status ? status : check_cost(cfg->cost, cfg->output, msg);
	}
	if (cfg->layer_count == 0 || cfg->layer_count > NB_NET_MAX_LAYERS)
		return nn__msg_fail(msg, NB_EINVAL, "net: %zu layers (1..%d)", cfg->layer_count,
		                    NB_NET_MAX_LAYERS);
	return NB_OK;  /* the layers themselves: nn__layers_resolve() */
}

/* ---- Memory: everything through the configured allocator -------------------------- */

/* size zeroed bytes, or NULL. */
static void *mem(const nb_net *net, size_t size)
{
	void *p = net->cfg.alloc(net->cfg.alloc_ud, NULL, 0, size);

	if (p)
		memset(p, 0, size);
	return p;
}

static void unmem(const nb_net *net, void *p, size_t size)
{
	if (p)
		net->cfg.alloc(net->cfg.alloc_ud, p, size, 0);
}

/* Doubles in parameter array i of 2L: weights of layer i, then biases. */
static size_t param_size(const nb_net *net, size_t i)
{
	const struct nn_layer *l = &net->layer[net->param_layer[i % net->L]];

	return i < net->L ? nn__weights_size(l) : nn__biases_size(l);
}

/* The shape of parameter array i of 2L (weights of layer i, then biases): its rank, and
 * its dims in *dim. The one place that says a bias is units x 1, or maps x 1 x 1 for a
 * convolution; the graphs' views, the flat gradient's and nb_net_tensors() all ask here. */
static int param_shape(const nb_net *net, size_t i, const size_t **dim)
{
	const struct nn_layer *l = &net->layer[net->param_layer[i % net->L]];

	*dim = i < net->L ? l->wdim : l->bdim;
	return i < net->L ? l->wrank : l->wrank == 4 ? 3 : 2;
}

/* Free the first n of the 2L arrays of a, and a itself; a NULL a is nothing to free. */
static void free_arrays(const nb_net *net, double **a, size_t n)
{
	for (size_t i = 0; a && i < n; i++)
		unmem(net, a[i], param_size(net, i) * sizeof **a);
	unmem(net, a, 2 * net->L * sizeof *a);
}

/* 2L zeroed arrays of the parameters' shapes, or NULL. */
static double **param_arrays(const nb_net *net)
{
	double **a = mem(net, 2 * net->L * sizeof *a);

	for (size_t i = 0; a && i < 2 * net->L; i++) {
		a[i] = mem(net, param_size(net, i) * sizeof **a);
		if (!a[i]) {
			free_arrays(net, a, i);
			return NULL;
		}
	}
	return a;
}

static void graph_free(const nb_net *net, struct nb_graph *g)
{
	nb_tape_free(g->tape);
	unmem(net, g->xdata, g->batch * net->features * sizeof *g->xdata);
	unmem(net, g->ydata, g->batch * net->outputs * sizeof *g->ydata);
	unmem(net, g->param, 2 * net->L * sizeof *g->param);
	unmem(net, g->grad, 2 * net->L * sizeof *g->grad);
	memset(g, 0, sizeof *g);
}

static void flat_free(const nb_net *net, struct nb_flat *f);

void nb_net_free(nb_net *net)
{
	if (!net)
		return;
	flat_free(net, net->flat);
	for (size_t i = 0; i < NB_NET_GRAPHS; i++)
		graph_free(net, &net->graph[i]);
	while (net->shown) {
		struct nb_graph *g = net->shown;

		net->shown = g->next;
		nb_tape_unlock(g->tape, net);
		graph_free(net, g);
		unmem(net, g, sizeof *g);
	}
	unmem(net, net->decay, 2 * net->L * sizeof *net->decay);
	unmem(net, net->tensor_name, 2 * net->L * sizeof *net->tensor_name);
	if (net->w) {  /* w holds the 2L parameter arrays; b points into it */
		free_arrays(net, net->w, 2 * net->L);
		for (int k = 0; k < 3; k++)
			free_arrays(net, net->state[k], net->state[k] ? 2 * net->L : 0);
	}
	unmem(net, net->param_layer, net->L * sizeof *net->param_layer);
	unmem(net, net->layer, net->n_layer * sizeof *net->layer);
	unmem(net, net->spec, net->n_layer * sizeof *net->spec);
	unmem(net, net->sizes, net->cfg.n_layers * sizeof *net->sizes);
	unmem(net, net->perm, net->perm_n * sizeof *net->perm);
	net->cfg.alloc(net->cfg.alloc_ud, net, sizeof *net, 0);
}

/* The list of a network of sizes: one dense layer per weight layer. */
static int copy_layers(nb_net *net, const nb_net_config *cfg)
{
	if (cfg->layers) {
		net->n_layer = cfg->layer_count;
		net->spec = mem(net, net->n_layer * sizeof *net->spec);
		if (net->spec)
			memcpy(net->spec, cfg->layers, net->n_layer * sizeof *net->spec);
		net->cfg.layers = net->spec;
		net->cfg.n_layers = 0;
		net->cfg.sizes = NULL;
		return net->spec ? NB_OK : NB_ENOMEM;
	}
	net->n_layer = cfg->n_layers - 1;
	net->sizes = mem(net, cfg->n_layers * sizeof *net->sizes);
	net->spec = mem(net, net->n_layer * sizeof *net->spec);
	if (!net->sizes || !net->spec)
		return NB_ENOMEM;
	memcpy(net->sizes, cfg->sizes, cfg->n_layers * sizeof *net->sizes);
	net->cfg.sizes = net->sizes;
	for (size_t l = 0; l < net->n_layer; l++)
		net->spec[l] = (nb_layer){ .kind = NB_LAYER_DENSE, .units = cfg->sizes[l + 1],
		                           .activation = l + 1 == net->n_layer ? cfg->output
		                                                              : cfg->hidden,
		                           .init = cfg->init };
	memset(net->cfg.input, 0, sizeof net->cfg.input);
	net->cfg.input[0] = cfg->sizes[0];
	return NB_OK;
}

/* Work out the shapes, check the cost against them and note the parameter layers. */
static int shape_net(nb_net *net, char *msg)
{
	int status;

	net->layer = mem(net, net->n_layer * sizeof *net->layer);
	if (!net->layer)
		return nn__msg_fail(msg, NB_ENOMEM, "net: out of memory");
	status = nn__layers_resolve(net->spec, net->n_layer, net->cfg.input, net->layer, msg);
	if (status == NB_OK && net->cfg.layers)
		status = check_cost(net->cfg.cost, output_activation(net->spec, net->n_layer), msg);
	if (status != NB_OK)
		return status;
	for (size_t i = 0; i < net->n_layer; i++) {
		net->L += net->layer[i].wrank != 0;
		net->images = net->images || net->spec[i].kind == NB_LAYER_CONV2D ||
		              net->spec[i].kind == NB_LAYER_MAX_POOL ||
		              net->spec[i].kind == NB_LAYER_AVG_POOL;
	}
	net->features = net->layer[0].in[0] * net->layer[0].in[1] * net->layer[0].in[2];
	net->outputs = net->layer[net->n_layer - 1].out[0];
	net->param_layer = mem(net, net->L * sizeof *net->param_layer);
	if (!net->param_layer)
		return nn__msg_fail(msg, NB_ENOMEM, "net: out of memory");
	for (size_t i = 0, p = 0; i < net->n_layer; i++)
		if (net->layer[i].wrank)
			net->param_layer[p++] = i;
	return NB_OK;
}

/* Each layer's initialisation, layer by layer, from the network's generator. */
static void initialise(nb_net *net)
{
	for (size_t l = 0; l < net->L; l++)
		nn__layer_init(&net->layer[net->param_layer[l]], net->w[l], net->b[l], &net->rng);
}

static int make_params(nb_net *net)
{
	net->w = param_arrays(net);
	net->b = net->w ? net->w + net->L : NULL;
	net->decay = mem(net, 2 * net->L * sizeof *net->decay);
	net->tensor_name = mem(net, 2 * net->L * sizeof *net->tensor_name);
	return net->w && net->decay && net->tensor_name ? NB_OK : NB_ENOMEM;
}

int nb_net_new(const nb_net_config *cfg, nb_net **out, char msg[NB_MSG_MAX])
{
	nb_alloc_fn alloc;
	nb_net *net;
	int status;

	if (!out)
		return nn__msg_fail(msg, NB_ENULL, "net: out is NULL");
	*out = NULL;
	status = check_config(cfg, msg);
	if (status != NB_OK)
		return status;
	alloc = cfg->alloc ? cfg->alloc : nb_default_alloc;
	net = alloc(cfg->alloc_ud, NULL, 0, sizeof *net);
	if (!net)
		return nn__msg_fail(msg, NB_ENOMEM, "net: out of memory");
	memset(net, 0, sizeof *net);
	net->cfg = *cfg;
	net->cfg.alloc = alloc;
	net->threads = 1;
	status = copy_layers(net, cfg);
	if (status != NB_OK)
		status = nn__msg_fail(msg, NB_ENOMEM, "net: out of memory");
	if (status == NB_OK)
		status = shape_net(net, msg);
	if (status == NB_OK && make_params(net) != NB_OK)
		status = nn__msg_fail(msg, NB_ENOMEM, "net: out of memory");
	if (status != NB_OK) {
		nb_net_free(net);
		return status;
	}
	nb_rng_seed(&net->rng, cfg->seed);
	initialise(net);
	*out = net;
	return NB_OK;
}

/* ---- Parameters --------------------------------------------------------------------- */

nb_net_config nb_net_get_config(const nb_net *net)
{
	nb_net_config none = { 0 };

	return net ? net->cfg : none;
}

double *nb_net_weights(nb_net *net, size_t l)
{
	return net && l < net->L ? net->w[l] : NULL;
}

double *nb_net_biases(nb_net *net, size_t l)
{
	return net && l < net->L ? net->b[l] : NULL;
}

size_t nb_net_param_layers(const nb_net *net)
{
	return net ? net->L : 0;
}

size_t nb_net_tensors(nb_net *net, nb_named_tensor *out, size_t max)
{
	static const char *const names[2] = { "w", "b" };

	for (size_t i = 0; net && i < 2 * net->L && i < max; i++) {
		size_t a = i / 2 + (i % 2 ? net->L : 0);  /* w1, b1, w2, ...: array a of 2L */
		nb_named_tensor *t = &out[i];
		const size_t *dim;

		snprintf(net->tensor_name[i], sizeof net->tensor_name[i], "%s%zu", names[i % 2],
		         i / 2 + 1);
		t->name = net->tensor_name[i];
		t->rank = param_shape(net, a, &dim);
		memset(t->dim, 0, sizeof t->dim);
		memcpy(t->dim, dim, (size_t)t->rank * sizeof *t->dim);
		t->data = net->w[a];  /* w holds the 2L arrays; b points into it */
	}
	return net ? 2 * net->L : 0;
}

size_t nb_net_inputs(const nb_net *net)
{
	return net ? net->features : 0;
}

size_t nb_net_outputs(const nb_net *net)
{
	return net ? net->outputs : 0;
}

nb_mlp nb_net_mlp(const nb_net *net)
{
	nb_mlp m = { 0 };

	if (net && net->sizes) {
		m.n_layers = net->cfg.n_layers;
		m.sizes = net->sizes;
		m.w = (const double *const *)net->w;
		m.b = (const double *const *)net->b;
		m.alloc = net->cfg.alloc;
		m.alloc_ud = net->cfg.alloc_ud;
	}
	return m;
}

/* ---- Recording the graph ------------------------------------------------------------ */

/* The cross-entropy costs take the input of the last activation, z^L, where they can be
 * computed stably; the quadratic cost takes a^L. */
static nb_tensor *cost_of(const nb_net *net, nb_tape *t, nb_tensor *z, nb_tensor *a,
                          nb_tensor *y)
{
	if (net->cfg.cost == NB_QUADRATIC)
		return nb_quadratic_cost(t, a, y);
	if (output_activation(net->spec, net->n_layer) == NB_SOFTMAX)
		return nb_softmax_cross_entropy(t, z, y);
	return nb_sigmoid_cross_entropy(t, z, y);
}

static void name(nb_tensor *x, const char *what, size_t l)
{
	char s[NB_NAME_MAX];

	snprintf(s, sizeof s, "%s%zu", what, l);
	nb_set_name(x, s);
}

/* A dropout layer's seed in one graph: the network's seed, the layer and the graph's
 * batch size, so that no two masks of a network repeat each other. */
static unsigned long long dropout_seed(const nb_net *net, size_t layer, size_t batch)
{
	return net->cfg.seed * 0x9e3779b97f4a7c15ull + (layer + 1) * 0xbf58476d1ce4e5b9ull +
	       batch;
}

/* The views of parameter layer p's weights and biases, named w<p+1> and b<p+1>. */
static void record_params(const nb_net *net, struct nb_graph *g, size_t p)
{
	const size_t *wdim, *bdim;
	int wrank = param_shape(net, p, &wdim), brank = param_shape(net, net->L + p, &bdim);
	nb_tensor *w = nb_variable_view(g->tape, wrank, wdim, net->w[p]);
	nb_tensor *b = nb_variable_view(g->tape, brank, bdim, net->b[p]);

	name(w, "w", p + 1);
	name(b, "b", p + 1);
	g->param[p] = w;
	g->param[net->L + p] = b;
}

/* Record every layer, naming its output a<l> (and the input of its activation z<l>),
 * then the cost. For a network of sizes this is z^l = w^l a^{l-1} + b^l, a^l = act(z^l),
 * the first layer reading the rows of x as the columns of a^0. */
static void record_forward(const nb_net *net, struct nb_graph *g)
{
	nb_tape *t = g->tape;
	nb_tensor *a = g->x, *z = NULL;

	for (size_t i = 0, p = 0; i < net->n_layer; i++) {
		const struct nn_layer *l = &net->layer[i];
		nb_tensor *pre = NULL, *w = NULL, *b = NULL;

		if (l->wrank) {
			record_params(net, g, p);
			w = g->param[p];
			b = g->param[net->L + p];
			p++;
		}
		a = nn__layer_record(t, l, a, w, b, g->train, dropout_seed(net, i, g->batch), &pre);
		if (pre) {  /* the input of the layer's activation: the cost may need it */
			z = pre;
			if (pre != a)
				name(z, "z", i + 1);
		}
		name(a, "a", i + 1);
	}
	g->out = a;
	g->cost = cost_of(net, t, z, a, g->y);
	nb_set_name(g->cost, "C");
}

/* Backward once: from then on reading the gradients recomputes them for the new data. */
static void record_backward(nb_net *net, struct nb_graph *g)
{
	nb_gradients(g->tape, g->cost, NULL, g->param, 2 * net->L, g->grad);
}

static int record(nb_net *net, struct nb_graph *g, size_t batch, bool train)
{
	const size_t *in = net->layer[0].in;

	g->batch = batch;
	g->train = train;
	g->tape = nb_tape_new_alloc(net->cfg.alloc, net->cfg.alloc_ud);
	nb_tape_set_threads(g->tape, net->threads);
	g->xdata = mem(net, batch * net->features * sizeof *g->xdata);
	g->ydata = mem(net, batch * net->outputs * sizeof *g->ydata);
	g->param = mem(net, 2 * net->L * sizeof *g->param);
	g->grad = train ? mem(net, 2 * net->L * sizeof *g->grad) : NULL;
	if (!g->tape || !g->xdata || !g->ydata || !g->param || (train && !g->grad))
		return net_fail(net, NB_ENOMEM, "net: out of memory recording a tape");
	if (net->images)
		g->x = nb_constant_view(g->tape, 4, (size_t[]){ batch, in[0], in[1], in[2] },
		                        g->xdata);
	else
		g->x = nb_constant_view(g->tape, 2, (size_t[]){ batch, net->features }, g->xdata);
	g->y = nb_constant_view(g->tape, 2, (size_t[]){ net->outputs, batch }, g->ydata);
	nb_set_name(g->x, "x");
	nb_set_name(g->y, "y");
	record_forward(net, g);
	if (train && nb_tape_status(g->tape) == NB_OK)
		record_backward(net, g);
	if (nb_tape_status(g->tape) != NB_OK)
		return net_fail(net, nb_tape_status(g->tape), "net: %s", nb_tape_message(g->tape));
	return NB_OK;
}

/* The graph for this batch size and purpose, recorded on first use into a free slot, or
 * over the oldest recording when every slot is taken. A failed recording leaves the slot
 * free. */
static struct nb_graph *graph_for(nb_net *net, size_t batch, bool train)
{
	struct nb_graph *g = NULL;

	for (size_t i = 0; i < NB_NET_GRAPHS; i++)
		if (net->graph[i].batch == batch && net->graph[i].train == train)
			return &net->graph[i];
	for (size_t i = 0; i < NB_NET_GRAPHS && !g; i++)
		if (net->graph[i].batch == 0)
			g = &net->graph[i];
	if (!g) {
		g = &net->graph[net->next_victim];
		net->next_victim = (net->next_victim + 1) % NB_NET_GRAPHS;
		graph_free(net, g);
	}
	if (record(net, g, batch, train) == NB_OK)
		return g;
	graph_free(net, g);
	return NULL;
}

/* A graph of its own, which no cache eviction frees: the caller holds its tape until
 * nb_net_free(), locked so that it can only be looked at. */
nb_tape *nb_net_tape(nb_net *net, size_t batch)
{
	struct nb_graph *g;

	if (!net || net->err.status != NB_OK)
		return NULL;
	if (batch == 0) {
		net_fail(net, NB_EINVAL, "tape: batch size is 0");
		return NULL;
	}
	for (g = net->shown; g; g = g->next)
		if (g->batch == batch)
			return g->tape;
	g = mem(net, sizeof *g);
	if (!g) {
		net_fail(net, NB_ENOMEM, "net: out of memory recording a tape");
		return NULL;
	}
	if (record(net, g, batch, true) != NB_OK) {
		graph_free(net, g);
		unmem(net, g, sizeof *g);
		return NULL;
	}
	nb_tape_lock(g->tape, net);  /* for pictures: nobody else records on it */
	g->next = net->shown;
	net->shown = g;
	return g->tape;
}

/* ---- Threads ------------------------------------------------------------------------ */

/* Every tape the network has gets the count, and record() gives it to those it makes.
 * What a tape is granted is for nabla to say, so an empty tape made for the question
 * says it: the network may have no tape yet. */
int nb_net_set_threads(nb_net *net, int n)
{
	nb_tape *probe;

	if (!net)
		return 1;
	probe = nb_tape_new_alloc(net->cfg.alloc, net->cfg.alloc_ud);
	if (!probe) {
		net_fail(net, NB_ENOMEM, "set_threads: out of memory");
		return net->threads;
	}
	net->threads = nb_tape_set_threads(probe, n);
	nb_tape_free(probe);
	for (size_t i = 0; i < NB_NET_GRAPHS; i++)
		nb_tape_set_threads(net->graph[i].tape, net->threads);
	for (struct nb_graph *g = net->shown; g; g = g->next)
		nb_tape_set_threads(g->tape, net->threads);
	return net->threads;
}

/* ---- Feeding data ------------------------------------------------------------------- */

/* Parameters are shared by every graph, updated through one of them or through the flat
 * gradient's tape, and written by programs through the pointers nb_net_weights() and
 * nb_net_tensors() hand out, at any time: so the views of the graph about to be replayed
 * are touched every time, and every value computed from them alone (the weights reshaped
 * or transposed for the backward pass) is recomputed. Those are a few copies of the
 * parameters; the rest of the graph depends on the mini-batch and is recomputed anyway. */
static void tell_of_updates(const nb_net *net, struct nb_graph *g)
{
	for (size_t i = 0; i < 2 * net->L; i++)
		nb_touch(g->param[i]);
}

/* Write example j of the mini-batch: its features into row j of x, its target into
 * column j of y. */
static void put_example(const nb_net *net, struct nb_graph *g, size_t j, const double *x,
                        const double *y)
{
	size_t in = net->features, out = net->outputs;

	memcpy(g->xdata + j * in, x, in * sizeof *x);
	for (size_t k = 0; y && k < out; k++)
		g->ydata[k * g->batch + j] = y[k];
}

/* The mini-batch of rows first .. first + n - 1 of an array (order NULL) or of
 * order[first ..] in a data set. */
static void put_batch(const nb_net *net, struct nb_graph *g, const double *x, const double *y,
                      const size_t *order, size_t first)
{
	size_t in = net->features, out = net->outputs;

	for (size_t j = 0; j < g->batch; j++) {
		size_t e = order ? order[first + j] : first + j;

		put_example(net, g, j, x + e * in, y ? y + e * out : NULL);
	}
	nb_touch(g->x);
	nb_touch(g->y);
	tell_of_updates(net, g);
}

/* ---- Training ----------------------------------------------------------------------- */

static int check_sgd(nb_net *net, const nb_sgd *opt)
{
	if (!opt)
		return net_fail(net, NB_ENULL, "sgd: options are NULL");
	if (opt->batch == 0)
		return net_fail(net, NB_EINVAL, "sgd: batch size is 0");
	if (!(opt->eta > 0.0) || isinf(opt->eta))
		return net_fail(net, NB_EINVAL, "sgd: eta must be a finite number > 0, not %g",
		                opt->eta);
	if (!(opt->momentum >= 0.0 && opt->momentum < 1.0))
		return net_fail(net, NB_EINVAL, "sgd: momentum must be in [0, 1), not %g",
		                opt->momentum);
	if (!(opt->weight_decay >= 0.0) || isinf(opt->weight_decay))
		return net_fail(net, NB_EINVAL, "sgd: weight decay must be a finite number >= 0, "
		                "not %g", opt->weight_decay);
	if (opt->method != NB_METHOD_SGD && opt->method != NB_METHOD_ADAM)
		return net_fail(net, NB_EINVAL, "sgd: unknown method %d", opt->method);
	if (opt->method == NB_METHOD_SGD)
		return NB_OK;
	if (!(opt->beta1 >= 0.0 && opt->beta1 < 1.0) || !(opt->beta2 >= 0.0 && opt->beta2 < 1.0))
		return net_fail(net, NB_EINVAL, "sgd: Adam's beta1 and beta2 must be in [0, 1), not "
		                "%g and %g", opt->beta1, opt->beta2);
	if (!(opt->eps >= 0.0) || isinf(opt->eps))
		return net_fail(net, NB_EINVAL, "sgd: Adam's eps must be a finite number >= 0 (0: "
		                "1e-8), not %g", opt->eps);
	return NB_OK;
}

/* Which set of optimizer state is which: each method has its own, so that switching
 * methods between steps never reads one's state as the other's. */
enum { STATE_VELOCITY, STATE_M, STATE_V };

/* The optimizer's state arrays first .. first + sets - 1, zero, at the first step that
 * needs them. */
static int ensure_state(nb_net *net, int first, int sets)
{
	for (int k = first; k < first + sets; k++) {
		if (net->state[k])
			continue;
		net->state[k] = param_arrays(net);
		if (!net->state[k])
			return net_fail(net, NB_ENOMEM, "sgd: out of memory for the optimizer's state");
	}
	return NB_OK;
}

/* Move the 2L parameters params by grads (tensors of one tape) as opt says. */
static int update(nb_net *net, nb_tensor *const *params, nb_tensor *const *grads,
                  const nb_sgd *opt)
{
	/* Biases get no weight decay (Nielsen, chapter 3). */
	for (size_t l = 0; l < net->L; l++) {
		net->decay[l] = opt->weight_decay;
		net->decay[net->L + l] = 0.0;
	}
	if (opt->method == NB_METHOD_ADAM) {
		nb_adam_opts o = { .eta = opt->eta, .beta1 = opt->beta1 ? opt->beta1 : 0.9,
		                   .beta2 = opt->beta2 ? opt->beta2 : 0.999,
		                   .eps = opt->eps ? opt->eps : 1e-8, .decay = net->decay };

		if (ensure_state(net, STATE_M, 2))
			return net->err.status;
		return nb_adam_update(params, grads, net->state[STATE_M], net->state[STATE_V],
		                      2 * net->L, &o, ++net->adam_steps);
	}
	nb_sgd_opts o = { .eta = opt->eta, .momentum = opt->momentum, .decay = net->decay };

	if (opt->momentum > 0.0 && ensure_state(net, STATE_VELOCITY, 1))
		return net->err.status;
	return nb_sgd_update(params, grads, net->state[STATE_VELOCITY], 2 * net->L, &o);
}

/* update() on tape t, its errors reported as sgd's. */
static int update_on(nb_net *net, nb_tape *t, nb_tensor *const *params,
                     nb_tensor *const *grads, const nb_sgd *opt)
{
	if (update(net, params, grads, opt) == NB_OK)
		return NB_OK;
	return net->err.status ? net->err.status
	                       : net_fail(net, nb_tape_status(t), "sgd: %s", nb_tape_message(t));
}

/* Replay the graph on the batch already written into it and update the parameters, in
 * one call so that every gradient is read before any parameter moves. */
static int step(nb_net *net, struct nb_graph *g, const nb_sgd *opt, double *cost)
{
	if (nb_tape_replay(g->tape) != NB_OK)
		return net_fail(net, nb_tape_status(g->tape), "sgd: %s", nb_tape_message(g->tape));
	if (cost)
		*cost = nb_value(g->cost)[0];
	if (update_on(net, g->tape, g->param, g->grad, opt) != NB_OK)
		return net->err.status;
	return NB_OK;
}

int nb_net_sgd_step(nb_net *net, const double *x, const double *y, size_t n,
                    const nb_sgd *opt, double *cost)
{
	struct nb_graph *g;

	if (!net)
		return NB_ENULL;
	if (net->err.status != NB_OK || check_sgd(net, opt))
		return net->err.status;
	if (!x || !y)
		return net_fail(net, NB_ENULL, "sgd_step: %s is NULL", x ? "y" : "x");
	if (n == 0)
		return net_fail(net, NB_EINVAL, "sgd_step: no examples (n is 0)");
	g = graph_for(net, n, true);
	if (!g)
		return net->err.status;
	put_batch(net, g, x, y, NULL, 0);
	return step(net, g, opt, cost);
}

/* ---- Gradients for a program's own update ------------------------------------------- */

size_t nb_net_param_count(const nb_net *net)
{
	size_t n = 0;

	for (size_t i = 0; net && i < 2 * net->L; i++)
		n += param_size(net, i);
	return n;
}

/* Where parameter array i of 2L (weights of layer i, then biases) starts in the flat
 * gradient, which holds them as nb_net_tensors() lists them: w1, b1, w2, b2, ... */
static size_t flat_offset(const nb_net *net, size_t i)
{
	size_t p = i % net->L, off = 0;

	for (size_t q = 0; q < p; q++)
		off += param_size(net, q) + param_size(net, net->L + q);
	return i < net->L ? off : off + param_size(net, p);
}

static void flat_free(const nb_net *net, struct nb_flat *f)
{
	if (!f)
		return;
	nb_tape_free(f->tape);
	unmem(net, f->grad, f->count * sizeof *f->grad);
	unmem(net, f->param, 2 * net->L * sizeof *f->param);
	unmem(net, f->view, 2 * net->L * sizeof *f->view);
	unmem(net, f, sizeof *f);
}

/* The views of array i of 2L on f's tape (w holds the 2L arrays). */
static void flat_views(const nb_net *net, struct nb_flat *f, size_t i)
{
	const size_t *dim;
	int rank = param_shape(net, i, &dim);

	f->param[i] = nb_variable_view(f->tape, rank, dim, net->w[i]);
	f->view[i] = nb_constant_view(f->tape, rank, dim, f->grad + flat_offset(net, i));
}

/* The flat gradient and its update tape, made on first use. */
static struct nb_flat *flat_of(nb_net *net, const char *fn)
{
	struct nb_flat *f = net->flat;

	if (f)
		return f;
	f = mem(net, sizeof *f);
	if (f) {
		f->count = nb_net_param_count(net);
		f->grad = mem(net, f->count * sizeof *f->grad);
		f->param = mem(net, 2 * net->L * sizeof *f->param);
		f->view = mem(net, 2 * net->L * sizeof *f->view);
		f->tape = nb_tape_new_alloc(net->cfg.alloc, net->cfg.alloc_ud);
	}
	if (!f || !f->grad || !f->param || !f->view || !f->tape) {
		flat_free(net, f);
		net_fail(net, NB_ENOMEM, "%s: out of memory for the flat gradient", fn);
		return NULL;
	}
	for (size_t i = 0; i < 2 * net->L; i++)
		flat_views(net, f, i);
	if (nb_tape_status(f->tape) != NB_OK) {
		net_fail(net, nb_tape_status(f->tape), "%s: %s", fn, nb_tape_message(f->tape));
		flat_free(net, f);
		return NULL;
	}
	net->flat = f;
	return f;
}

double *nb_net_grad(nb_net *net)
{
	struct nb_flat *f;

	if (!net || net->err.status != NB_OK)
		return NULL;
	f = flat_of(net, "grad");
	return f ? f->grad : NULL;
}

/* Array i of the graph's gradients into its place in the flat buffer, times scale. */
static void gather(const nb_net *net, const struct nb_graph *g, size_t i, double scale,
                   double *flat)
{
	const double *v = nb_value(g->grad[i]);
	double *out = flat + flat_offset(net, i);
	size_t n = param_size(net, i);

	if (scale == 1.0) {
		memcpy(out, v, n * sizeof *out);
		return;
	}
	for (size_t k = 0; k < n; k++)
		out[k] = scale * v[k];
}

int nb_net_gradient(nb_net *net, const double *x, const double *y, size_t n, double scale,
                    double *cost)
{
	struct nb_graph *g;
	struct nb_flat *f;

	if (!net)
		return NB_ENULL;
	if (net->err.status != NB_OK)
		return net->err.status;
	if (!x || !y)
		return net_fail(net, NB_ENULL, "gradient: %s is NULL", x ? "y" : "x");
	if (n == 0)
		return net_fail(net, NB_EINVAL, "gradient: no examples (n is 0)");
	if (!isfinite(scale))
		return net_fail(net, NB_EINVAL, "gradient: scale must be finite, not %g", scale);
	f = flat_of(net, "gradient");
	g = f ? graph_for(net, n, true) : NULL;
	if (!g)
		return net->err.status;
	put_batch(net, g, x, y, NULL, 0);
	if (nb_tape_replay(g->tape) != NB_OK)
		return net_fail(net, nb_tape_status(g->tape), "gradient: %s",
		                nb_tape_message(g->tape));
	if (cost)
		*cost = nb_value(g->cost)[0];
	for (size_t i = 0; i < 2 * net->L; i++)
		gather(net, g, i, scale, f->grad);
	return NB_OK;
}

/* The buffer's values may have been written by the program: its views are told, then read
 * by the same update a step makes. */
int nb_net_apply_gradient(nb_net *net, const nb_sgd *opt)
{
	struct nb_flat *f;

	if (!net)
		return NB_ENULL;
	if (net->err.status != NB_OK || check_sgd(net, opt))
		return net->err.status;
	f = flat_of(net, "apply_gradient");
	if (!f)
		return net->err.status;
	for (size_t i = 0; i < 2 * net->L; i++)
		nb_touch(f->view[i]);
	if (update_on(net, f->tape, f->param, f->view, opt) != NB_OK)
		return net->err.status;
	return NB_OK;
}

/* The data set fits the network: features in, classes out. */
static int check_data(nb_net *net, const char *fn, const nb_dataset *ds)
{
	if (!ds)
		return net_fail(net, NB_ENULL, "%s: data set is NULL", fn);
	if (!ds->x || !ds->y || ds->n == 0)
		return net_fail(net, NB_EINVAL, "%s: data set is empty", fn);
	if (ds->features != net->features || ds->classes != net->outputs)
		return net_fail(net, NB_ESHAPE, "%s: data has %zu features and %zu classes, the "
		                "network %zu inputs and %zu outputs", fn, ds->features,
		                ds->classes, net->features, net->outputs);
	return NB_OK;
}

/* A fresh random order of 0..n-1 (Fisher-Yates). */
static int shuffle(nb_net *net, size_t n)
{
	if (net->perm_n != n) {
		unmem(net, net->perm, net->perm_n * sizeof *net->perm);
		net->perm = mem(net, n * sizeof *net->perm);
		net->perm_n = net->perm ? n : 0;
		if (!net->perm)
			return net_fail(net, NB_ENOMEM, "sgd_epoch: out of memory");
	}
	for (size_t i = 0; i < n; i++)
		net->perm[i] = i;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = nb_rng_below(&net->rng, i + 1), tmp = net->perm[i];

		net->perm[i] = net->perm[j];
		net->perm[j] = tmp;
	}
	return NB_OK;
}

int nb_net_sgd_epoch(nb_net *net, const nb_dataset *train, const nb_sgd *opt,
                     double *mean_cost, nb_progress_fn progress, void *ud)
{
	double total = 0.0;

	if (!net)
		return NB_ENULL;
	if (net->err.status != NB_OK || check_sgd(net, opt) || check_data(net, "sgd_epoch", train) ||
	    shuffle(net, train->n))
		return net->err.status;
	for (size_t first = 0; first < train->n; first += opt->batch) {
		size_t n = train->n - first < opt->batch ? train->n - first : opt->batch;
		struct nb_graph *g = graph_for(net, n, true);
		double cost;

		if (!g)
			return net->err.status;
		put_batch(net, g, train->x, train->y, net->perm, first);
		if (step(net, g, opt, &cost))
			return net->err.status;
		total += cost * (double)n;
		if (progress)
			progress(ud, first + n, train->n);
	}
	if (mean_cost)
		*mean_cost = total / (double)train->n;
	return NB_OK;
}

/* ---- Evaluation --------------------------------------------------------------------- */

static size_t argmax_column(const double *a, size_t rows, size_t cols, size_t j)
{
	size_t best = 0;

	for (size_t k = 1; k < rows; k++)
		if (a[k * cols + j] > a[best * cols + j])
			best = k;
	return best;
}

/* Forward the examples first .. first + n - 1 through an evaluation graph. */
static struct nb_graph *forward(nb_net *net, const double *x, const double *y, size_t first,
                                size_t n)
{
	struct nb_graph *g = graph_for(net, n, false);

	if (!g)
		return NULL;
	put_batch(net, g, x, y, NULL, first);
	if (nb_tape_replay(g->tape) != NB_OK) {
		net_fail(net, nb_tape_status(g->tape), "net: %s", nb_tape_message(g->tape));
		return NULL;
	}
	return g;
}

int nb_net_evaluate(nb_net *net, const nb_dataset *ds, size_t *correct, double *mean_cost)
{
	size_t right = 0, out;
	double total = 0.0;

	if (!net)
		return NB_ENULL;
	if (net->err.status != NB_OK || check_data(net, "evaluate", ds))
		return net->err.status;
	if (!ds->label)
		return net_fail(net, NB_EINVAL, "evaluate: data set has no labels");
	out = net->outputs;
	for (size_t first = 0; first < ds->n; first += EVAL_BATCH) {
		size_t n = ds->n - first < EVAL_BATCH ? ds->n - first : EVAL_BATCH;
		struct nb_graph *g = forward(net, ds->x, ds->y, first, n);

		if (!g)
			return net->err.status;
		for (size_t j = 0; j < n; j++)
			right += argmax_column(nb_value(g->out), out, n, j) == ds->label[first + j];
		total += nb_value(g->cost)[0] * (double)n;
	}
	if (correct)
		*correct = right;
	if (mean_cost)
		*mean_cost = total / (double)ds->n;
	return NB_OK;
}

int nb_net_predict(nb_net *net, const double *x, size_t n, double *out)
{
	size_t m;

	if (!net)
		return NB_ENULL;
	if (net->err.status != NB_OK)
		return net->err.status;
	if (!x || !out)
		return net_fail(net, NB_ENULL, "predict: %s is NULL", x ? "out" : "x");
	if (n == 0)
		return net_fail(net, NB_EINVAL, "predict: no examples (n is 0)");
	m = net->outputs;
	for (size_t first = 0; first < n; first += EVAL_BATCH) {
		size_t k = n - first < EVAL_BATCH ? n - first : EVAL_BATCH;
		struct nb_graph *g = forward(net, x, NULL, first, k);

		if (!g)
			return net->err.status;
		for (size_t j = 0; j < k; j++)
			for (size_t c = 0; c < m; c++)
				out[(first + j) * m + c] = nb_value(g->out)[c * k + j];
	}
	return NB_OK;
}
