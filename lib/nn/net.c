/* net.c -- a multilayer perceptron written as an op graph and trained by replaying its
 * tape. Nothing here knows backpropagation: the graph z = w a + b, a = act(z), C = cost
 * is recorded once per mini-batch size, nb_backward() records its gradients (BP1-BP4
 * emerge from the ops' rules), and a training step writes the next mini-batch into the
 * input leaves, replays the tape, and moves the parameters against their gradients. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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
	bool train;              /* backward recorded: grad is set */
	nb_tape *tape;
	double *xdata, *ydata;   /* the arrays behind x and y */
	nb_tensor *x;            /* batch x sizes[0]: one example per row, as data sets hold them */
	nb_tensor *y;            /* sizes[L] x batch: one example per column, as a^L */
	nb_tensor *out;          /* a^L */
	nb_tensor *cost;
	nb_tensor **param;       /* 2L leaves: w^1 .. w^L, then b^1 .. b^L */
	nb_tensor **grad;        /* their 2L gradient nodes (train only) */
	uint64_t seen;           /* the network's parameter version this tape was told of */
	struct nb_graph *next;   /* the list of graphs handed out by nb_net_tape() */
};

struct nb_net {
	nb_net_config cfg;       /* cfg.sizes points at sizes; cfg.alloc is never NULL */
	size_t L;                /* weight layers: n_layers - 1 */
	size_t *sizes;
	double **w, **b;         /* parameters, L arrays each */
	double **vw, **vb;       /* momentum velocities, made at the first step that needs them */
	double **velocity;       /* 2L pointers: vw, then vb, as nb_sgd_update() takes them */
	double *decay;           /* 2L weight decay coefficients: weights, then biases (0) */
	uint64_t version;        /* counts parameter updates, so each tape can be told of them */
	nb_rng rng;
	size_t *perm;            /* the shuffled order of an epoch */
	size_t perm_n;
	struct nb_graph graph[NB_NET_GRAPHS];
	size_t next_victim;      /* the slot a new graph replaces when all are used */
	struct nb_graph *shown;  /* graphs of nb_net_tape(), kept until nb_net_free() */
	struct nn_error err;
};

static const char *const act_names[] = { "sigmoid", "tanh", "relu", "softmax" };

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

static int check_config(const nb_net_config *cfg, char *msg)
{
	if (!cfg)
		return nn__msg_fail(msg, NB_ENULL, "net: config is NULL");
	if (cfg->n_layers < 2)
		return nn__msg_fail(msg, NB_EINVAL, "net: need at least 2 layers, got %zu",
		                cfg->n_layers);
	if (!cfg->sizes)
		return nn__msg_fail(msg, NB_ENULL, "net: sizes is NULL");
	for (size_t l = 0; l < cfg->n_layers; l++)
		if (cfg->sizes[l] == 0 || cfg->sizes[l] > (1u << 24))
			return nn__msg_fail(msg, NB_EINVAL, "net: layer %zu has size %zu (1..%u)", l,
			                cfg->sizes[l], 1u << 24);
	if (cfg->hidden != NB_SIGMOID && cfg->hidden != NB_TANH && cfg->hidden != NB_RELU)
		return nn__msg_fail(msg, NB_EINVAL, "net: hidden activation %d is not sigmoid, tanh "
		                "or relu", cfg->hidden);
	if (cfg->output < NB_SIGMOID || cfg->output > NB_SOFTMAX)
		return nn__msg_fail(msg, NB_EINVAL, "net: unknown output activation %d", cfg->output);
	if (cfg->cost != NB_QUADRATIC && cfg->cost != NB_CROSS_ENTROPY)
		return nn__msg_fail(msg, NB_EINVAL, "net: unknown cost %d", cfg->cost);
	if (cfg->cost == NB_CROSS_ENTROPY && cfg->output != NB_SIGMOID &&
	    cfg->output != NB_SOFTMAX)
		return nn__msg_fail(msg, NB_EINVAL, "net: cross-entropy cost needs a sigmoid or "
		                "softmax output layer, not %s", act_names[cfg->output]);
	if (cfg->init != NB_INIT_NORMAL && cfg->init != NB_INIT_SCALED)
		return nn__msg_fail(msg, NB_EINVAL, "net: unknown initialisation %d", cfg->init);
	return NB_OK;
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

/* Doubles in layer l's weights (sizes[l+1] x sizes[l]) or biases (sizes[l+1]). */
static size_t layer_size(const nb_net *net, size_t l, bool weights)
{
	return net->sizes[l + 1] * (weights ? net->sizes[l] : 1);
}

/* Free the first n arrays of a and a itself; a NULL a is nothing to free. */
static void free_arrays(const nb_net *net, double **a, size_t n, bool weights)
{
	for (size_t l = 0; a && l < n; l++)
		unmem(net, a[l], layer_size(net, l, weights) * sizeof **a);
	unmem(net, a, net->L * sizeof *a);
}

/* L zeroed arrays of weights' or biases' shapes, or NULL. */
static double **layer_arrays(const nb_net *net, bool weights)
{
	double **a = mem(net, net->L * sizeof *a);

	for (size_t l = 0; a && l < net->L; l++) {
		a[l] = mem(net, layer_size(net, l, weights) * sizeof **a);
		if (!a[l]) {
			free_arrays(net, a, l, weights);
			return NULL;
		}
	}
	return a;
}

static void graph_free(const nb_net *net, struct nb_graph *g)
{
	if (!net->sizes)  /* a network whose creation failed early has no graph */
		return;
	nb_tape_free(g->tape);
	unmem(net, g->xdata, g->batch * net->sizes[0] * sizeof *g->xdata);
	unmem(net, g->ydata, g->batch * net->sizes[net->L] * sizeof *g->ydata);
	unmem(net, g->param, 2 * net->L * sizeof *g->param);
	unmem(net, g->grad, 2 * net->L * sizeof *g->grad);
	memset(g, 0, sizeof *g);
}

void nb_net_free(nb_net *net)
{
	if (!net)
		return;
	for (size_t i = 0; i < NB_NET_GRAPHS; i++)
		graph_free(net, &net->graph[i]);
	while (net->shown) {
		struct nb_graph *g = net->shown;

		net->shown = g->next;
		graph_free(net, g);
		unmem(net, g, sizeof *g);
	}
	unmem(net, net->velocity, 2 * net->L * sizeof *net->velocity);
	unmem(net, net->decay, 2 * net->L * sizeof *net->decay);
	free_arrays(net, net->w, net->L, true);
	free_arrays(net, net->b, net->L, false);
	free_arrays(net, net->vw, net->L, true);
	free_arrays(net, net->vb, net->L, false);
	unmem(net, net->sizes, net->cfg.n_layers * sizeof *net->sizes);
	unmem(net, net->perm, net->perm_n * sizeof *net->perm);
	net->cfg.alloc(net->cfg.alloc_ud, net, sizeof *net, 0);
}

/* Nielsen's choices: weights standard normal, or with deviation 1/sqrt(n_in) (chapter 3);
 * biases standard normal. */
static void initialise(nb_net *net)
{
	for (size_t l = 0; l < net->L; l++) {
		size_t rows = net->sizes[l + 1], cols = net->sizes[l];
		double scale = net->cfg.init == NB_INIT_SCALED ? 1.0 / sqrt((double)cols) : 1.0;

		for (size_t i = 0; i < rows * cols; i++)
			net->w[l][i] = scale * nb_rng_normal(&net->rng);
		for (size_t j = 0; j < rows; j++)
			net->b[l][j] = nb_rng_normal(&net->rng);
	}
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
	net->L = cfg->n_layers - 1;
	net->sizes = mem(net, cfg->n_layers * sizeof *net->sizes);
	if (net->sizes)
		memcpy(net->sizes, cfg->sizes, cfg->n_layers * sizeof *net->sizes);
	net->cfg.sizes = net->sizes;
	net->w = net->sizes ? layer_arrays(net, true) : NULL;
	net->b = net->w ? layer_arrays(net, false) : NULL;
	net->velocity = mem(net, 2 * net->L * sizeof *net->velocity);
	net->decay = mem(net, 2 * net->L * sizeof *net->decay);
	if (!net->w || !net->b || !net->velocity || !net->decay) {
		nb_net_free(net);
		return nn__msg_fail(msg, NB_ENOMEM, "net: out of memory");
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

nb_mlp nb_net_mlp(const nb_net *net)
{
	nb_mlp m = { 0 };

	if (net) {
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

static nb_tensor *activate(nb_tape *t, nb_tensor *z, int act)
{
	switch (act) {
	case NB_TANH:
		return nb_tanh(t, z);
	case NB_RELU:
		return nb_relu(t, z);
	case NB_SOFTMAX:
		return nb_softmax(t, z, 0);
	default:
		return nb_sigmoid(t, z);
	}
}

/* The cross-entropy costs take z^L, where they can be computed stably; the quadratic
 * cost takes a^L. */
static nb_tensor *cost_of(const nb_net *net, nb_tape *t, nb_tensor *z, nb_tensor *a,
                          nb_tensor *y)
{
	if (net->cfg.cost == NB_QUADRATIC)
		return nb_quadratic_cost(t, a, y);
	if (net->cfg.output == NB_SOFTMAX)
		return nb_softmax_cross_entropy(t, z, y);
	return nb_sigmoid_cross_entropy(t, z, y);
}

static void name(nb_tensor *x, const char *what, size_t l)
{
	char s[NB_NAME_MAX];

	snprintf(s, sizeof s, "%s%zu", what, l);
	nb_set_name(x, s);
}

/* Record z^l = w^l a^{l-1} + b^l and a^l = act(z^l) for every layer, then the cost. The
 * first layer reads the rows of x as the columns of a^0: w^1 x^T, a transposed operand,
 * so the data is never copied into column form. */
static void record_forward(const nb_net *net, struct nb_graph *g)
{
	nb_tape *t = g->tape;
	nb_tensor *a = NULL, *z = NULL;

	for (size_t l = 0; l < net->L; l++) {
		size_t rows = net->sizes[l + 1], cols = net->sizes[l];
		nb_tensor *w = nb_variable_view(t, 2, (size_t[]){ rows, cols }, net->w[l]);
		nb_tensor *b = nb_variable_view(t, 2, (size_t[]){ rows, 1 }, net->b[l]);
		nb_tensor *wa = l == 0 ? nb_matmul_t(t, w, g->x, NB_TRANS_B) : nb_matmul(t, w, a);

		z = nb_add(t, wa, b);
		a = activate(t, z, l + 1 == net->L ? net->cfg.output : net->cfg.hidden);
		name(w, "w", l + 1);
		name(b, "b", l + 1);
		name(z, "z", l + 1);
		name(a, "a", l + 1);
		g->param[l] = w;
		g->param[net->L + l] = b;
	}
	g->out = a;
	g->cost = z ? cost_of(net, t, z, a, g->y) : NULL;
	nb_set_name(g->cost, "C");
}

/* Backward once: from then on reading the gradients recomputes them for the new data. */
static void record_backward(nb_net *net, struct nb_graph *g)
{
	nb_gradients(g->tape, g->cost, NULL, g->param, 2 * net->L, g->grad);
}

static int record(nb_net *net, struct nb_graph *g, size_t batch, bool train)
{
	size_t in = net->sizes[0], out = net->sizes[net->L];

	g->batch = batch;
	g->train = train;
	g->tape = nb_tape_new_alloc(net->cfg.alloc, net->cfg.alloc_ud);
	g->xdata = mem(net, batch * in * sizeof *g->xdata);
	g->ydata = mem(net, batch * out * sizeof *g->ydata);
	g->param = mem(net, 2 * net->L * sizeof *g->param);
	g->grad = train ? mem(net, 2 * net->L * sizeof *g->grad) : NULL;
	if (!g->tape || !g->xdata || !g->ydata || !g->param || (train && !g->grad))
		return net_fail(net, NB_ENOMEM, "net: out of memory recording a tape");
	g->seen = net->version;
	g->x = nb_constant_view(g->tape, 2, (size_t[]){ batch, in }, g->xdata);
	g->y = nb_constant_view(g->tape, 2, (size_t[]){ out, batch }, g->ydata);
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
 * nb_net_free(). */
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
	g->next = net->shown;
	net->shown = g;
	return g->tape;
}

/* ---- Feeding data ------------------------------------------------------------------- */

/* Parameters are shared by every graph but updated through one: touch the views of a
 * graph that has not seen the latest update, so that its values are recomputed. */
static void tell_of_updates(const nb_net *net, struct nb_graph *g)
{
	if (g->seen == net->version)
		return;
	for (size_t i = 0; i < 2 * net->L; i++)
		nb_touch(g->param[i]);
	g->seen = net->version;
}

/* Write example j of the mini-batch: its features into row j of x, its target into
 * column j of y. */
static void put_example(const nb_net *net, struct nb_graph *g, size_t j, const double *x,
                        const double *y)
{
	size_t in = net->sizes[0], out = net->sizes[net->L];

	memcpy(g->xdata + j * in, x, in * sizeof *x);
	for (size_t k = 0; y && k < out; k++)
		g->ydata[k * g->batch + j] = y[k];
}

/* The mini-batch of rows first .. first + n - 1 of an array (order NULL) or of
 * order[first ..] in a data set. */
static void put_batch(const nb_net *net, struct nb_graph *g, const double *x, const double *y,
                      const size_t *order, size_t first)
{
	size_t in = net->sizes[0], out = net->sizes[net->L];

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
	return NB_OK;
}

static int ensure_velocity(nb_net *net)
{
	if (net->vw)
		return NB_OK;
	net->vw = layer_arrays(net, true);
	net->vb = layer_arrays(net, false);
	for (size_t l = 0; net->vw && net->vb && l < net->L; l++) {
		net->velocity[l] = net->vw[l];
		net->velocity[net->L + l] = net->vb[l];
	}
	if (net->vw && net->vb)
		return NB_OK;
	free_arrays(net, net->vw, net->L, true);
	free_arrays(net, net->vb, net->L, false);
	net->vw = net->vb = NULL;
	return net_fail(net, NB_ENOMEM, "sgd: out of memory for momentum");
}

/* Replay the graph on the batch already written into it and update the parameters, in
 * one call so that every gradient is read before any parameter moves. */
static int step(nb_net *net, struct nb_graph *g, const nb_sgd *opt, double *cost)
{
	nb_sgd_opts o = { .eta = opt->eta, .momentum = opt->momentum, .decay = net->decay };

	if (nb_tape_replay(g->tape) != NB_OK)
		return net_fail(net, nb_tape_status(g->tape), "sgd: %s", nb_tape_message(g->tape));
	if (cost)
		*cost = nb_value(g->cost)[0];
	if (opt->momentum > 0.0 && ensure_velocity(net))
		return net->err.status;
	/* Biases get no weight decay (Nielsen, chapter 3). */
	for (size_t l = 0; l < net->L; l++) {
		net->decay[l] = opt->weight_decay;
		net->decay[net->L + l] = 0.0;
	}
	if (nb_sgd_update(g->param, g->grad, net->velocity, 2 * net->L, &o) != NB_OK)
		return net_fail(net, nb_tape_status(g->tape), "sgd: %s", nb_tape_message(g->tape));
	g->seen = ++net->version;
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

/* The data set fits the network: features in, classes out. */
static int check_data(nb_net *net, const char *fn, const nb_dataset *ds)
{
	if (!ds)
		return net_fail(net, NB_ENULL, "%s: data set is NULL", fn);
	if (!ds->x || !ds->y || ds->n == 0)
		return net_fail(net, NB_EINVAL, "%s: data set is empty", fn);
	if (ds->features != net->sizes[0] || ds->classes != net->sizes[net->L])
		return net_fail(net, NB_ESHAPE, "%s: data has %zu features and %zu classes, the "
		                "network %zu inputs and %zu outputs", fn, ds->features,
		                ds->classes, net->sizes[0], net->sizes[net->L]);
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
	out = net->sizes[net->L];
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
	m = net->sizes[net->L];
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
