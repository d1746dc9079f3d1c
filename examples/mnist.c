/* mnist.c -- teach a network to read handwritten digits, as in chapters 1 and 2 of Michael
 * Nielsen's "Neural Networks and Deep Learning" (with the options of chapter 3).
 *
 * A tour of nabla's network API, in the order a program meets it:
 *   nb_dataset_load_dir()  read images and labels in the IDX format MNIST ships in
 *   nb_net_new()           build a network; its forward pass, cost and gradients are
 *   (or nb_net_load())     recorded once on a tape and replayed for every mini-batch
 *   nb_net_sgd_epoch()     one pass of stochastic gradient descent over the training set
 *   nb_net_evaluate()      count the test digits the network classifies right
 *   nb_net_save()          keep the trained parameters in a file
 * No call aborts: each returns a status, and a message says what went wrong.
 *
 * Run: ./examples/mnist               784-30-10 sigmoid network, 30 epochs on the bundled
 *                                     8,000 training and 2,000 test digits
 *      ./examples/mnist --net conv    Nielsen's convolutional network of chapter 6
 *      ./examples/mnist --help        every option
 */
#define _POSIX_C_SOURCE 200809L  /* clock_gettime, isatty */

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nabla_nn.h"
#include "curve.h"

/* The build sets this to the source tree's data/mnist-10k. */
#ifndef NABLA_DATA_DIR
#define NABLA_DATA_DIR "data/mnist-10k"
#endif

/* Exit statuses: 0 done, 1 a library or file error, 2 a bad command line. */
enum { EXIT_USAGE = 2, KEEP_GOING = -1 };

enum { MAX_LAYERS = 16, MAX_UNITS = 1000000, DEFAULT_HIDDEN = 30, BAR_WIDTH = 30 };

/* ---- Command line -------------------------------------------------------------------- */

/* Everything the command line says. */
struct options {
	size_t n_layers;              /* 0: the data's pixels, DEFAULT_HIDDEN, its classes */
	size_t sizes[MAX_LAYERS];
	const char *layers;           /* the --layers text, for messages */
	int hidden, output, cost, init;
	unsigned long long seed;
	size_t epochs, batch;
	double eta, momentum, lambda;
	const char *data;
	size_t train_limit, test_limit;
	const char *save, *load, *csv, *svg, *dot;
	int net_options;              /* an option that --load overrides was given */
	int conv;                     /* --net conv */
	double dropout;               /* --dropout: before each dense layer of --net conv */
	int given[64];                /* which training options the command line gave */
};

/* Nielsen's network of chapter 1, trained on every bundled digit. */
static const struct options DEFAULTS = {
	.hidden = NB_SIGMOID, .output = NB_SIGMOID, .cost = NB_QUADRATIC,
	.init = NB_INIT_NORMAL, .seed = 1, .epochs = 30, .batch = 10, .eta = 3.0,
	.data = NABLA_DATA_DIR, .train_limit = SIZE_MAX, .test_limit = SIZE_MAX,
};

/* The options that shape a network come first, so that "code <= OPT_SEED" finds them. */
enum {
	OPT_LAYERS = 256, OPT_ACTIVATION, OPT_OUTPUT, OPT_COST, OPT_INIT, OPT_NET, OPT_DROPOUT,
	OPT_SEED, OPT_EPOCHS, OPT_BATCH, OPT_ETA, OPT_MOMENTUM, OPT_LAMBDA, OPT_DATA, OPT_TRAIN_LIMIT,
	OPT_TEST_LIMIT, OPT_SAVE, OPT_LOAD, OPT_CSV, OPT_SVG, OPT_DOT
};

static const struct option LONG_OPTIONS[] = {
	{ "layers", required_argument, NULL, OPT_LAYERS },
	{ "activation", required_argument, NULL, OPT_ACTIVATION },
	{ "output", required_argument, NULL, OPT_OUTPUT },
	{ "cost", required_argument, NULL, OPT_COST },
	{ "init", required_argument, NULL, OPT_INIT },
	{ "net", required_argument, NULL, OPT_NET },
	{ "dropout", required_argument, NULL, OPT_DROPOUT },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "epochs", required_argument, NULL, OPT_EPOCHS },
	{ "batch", required_argument, NULL, OPT_BATCH },
	{ "eta", required_argument, NULL, OPT_ETA },
	{ "momentum", required_argument, NULL, OPT_MOMENTUM },
	{ "lambda", required_argument, NULL, OPT_LAMBDA },
	{ "data", required_argument, NULL, OPT_DATA },
	{ "train-limit", required_argument, NULL, OPT_TRAIN_LIMIT },
	{ "test-limit", required_argument, NULL, OPT_TEST_LIMIT },
	{ "save", required_argument, NULL, OPT_SAVE },
	{ "load", required_argument, NULL, OPT_LOAD },
	{ "csv", required_argument, NULL, OPT_CSV },
	{ "svg", required_argument, NULL, OPT_SVG },
	{ "dot", required_argument, NULL, OPT_DOT },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

/* Names of the library's choices, indexed by their enum values. */
static const char *const ACTIVATIONS[] = {
	[NB_SIGMOID] = "sigmoid", [NB_TANH] = "tanh", [NB_RELU] = "relu",
	[NB_SOFTMAX] = "softmax", [NB_SOFTPLUS] = "softplus", [NB_IDENTITY] = "identity",
};
static const char *const COSTS[] = {
	[NB_QUADRATIC] = "quadratic", [NB_CROSS_ENTROPY] = "cross-entropy",
};
static const char *const INITS[] = { [NB_INIT_NORMAL] = "normal", [NB_INIT_SCALED] = "scaled" };

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char TRY_HELP[] = "Try 'mnist --help' for more information.\n";

static void usage(void)
{
	printf("Usage: mnist [OPTION]...\n"
	       "Train a fully connected network on handwritten digits with nabla, as in chapters\n"
	       "1 and 2 of Nielsen's \"Neural Networks and Deep Learning\", and print how many\n"
	       "test digits it classifies right after each epoch. Defaults in parentheses.\n"
	       "\n"
	       "Network (with --load, the file sets these and they are ignored):\n"
	       "  --layers N,N,...   layer sizes, input first; the first must be the number of\n"
	       "                     pixels of an image, the last the number of classes\n"
	       "                     (784,30,10)\n"
	       "  --activation F     hidden layers: sigmoid, tanh, relu, softplus or identity\n"
	       "                     (sigmoid)\n"
	       "  --output F         output layer: those or softmax (sigmoid)\n"
	       "  --cost C           quadratic or cross-entropy; cross-entropy needs a sigmoid\n"
	       "                     or softmax output (quadratic)\n"
	       "  --init I           normal: standard normal weights; scaled: weights with\n"
	       "                     deviation 1/sqrt(inputs of the layer) (normal)\n"
	       "  --net conv         Nielsen's network of chapter 6 instead: conv 5x5, 20 maps,\n"
	       "                     relu -> max-pool 2x2 -> conv 5x5, 40 maps, relu -> max-pool\n"
	       "                     2x2 -> dense 100 relu -> softmax 10, log-likelihood cost; it\n"
	       "                     changes the defaults to --epochs 20 --eta 0.03 --lambda 0.1,\n"
	       "                     lambda as network3.py has it (divided by the number of\n"
	       "                     mini-batches), and ignores --layers to --init\n"
	       "  --dropout P        with --net conv: dropout with probability P before each\n"
	       "                     dense layer (0)\n"
	       "  --seed N           seed of the initialisation, the shuffling and dropout (1)\n"
	       "  --load FILE        start from a network saved with --save (a new network)\n"
	       "\n"
	       "Training:\n"
	       "  --epochs N         passes over the training set; 0 only evaluates (30)\n"
	       "  --batch N          mini-batch size (10)\n"
	       "  --eta X            learning rate (3)\n"
	       "  --momentum X       momentum, 0 <= X < 1 (0: plain gradient descent)\n"
	       "  --lambda X         L2 regularisation: weight decay lambda / training examples\n"
	       "                     (0)\n"
	       "\n"
	       "Data:\n"
	       "  --data DIR         directory with train-* and t10k-* IDX files, plain or .gz\n"
	       "                     (%s)\n"
	       "  --train-limit N    use only the first N training examples (all)\n"
	       "  --test-limit N     use only the first N test examples (all)\n"
	       "\n"
	       "Output (none by default):\n"
	       "  --save FILE        save the trained network\n"
	       "  --csv FILE         write the learning curve as CSV\n"
	       "  --svg FILE         draw the learning curve as an SVG picture\n"
	       "  --dot FILE         write the training tape for one mini-batch as Graphviz DOT\n"
	       "  -h, --help         show this help and exit\n"
	       "\n"
	       "Example: Nielsen's chapter 3 network, its learning curve drawn in curve.svg:\n"
	       "  mnist --cost cross-entropy --init scaled --eta 0.5 --lambda 5 --svg curve.svg\n",
	       NABLA_DATA_DIR);
}

/* The long name of an option ("epochs"), from its code. */
static const char *option_name(int code)
{
	for (const struct option *o = LONG_OPTIONS; o->name; o++)
		if (o->val == code)
			return o->name;
	return "?";
}

/* Say which option has a bad value and what it should be; return EXIT_USAGE. */
static int bad_value(int code, const char *value, const char *expected)
{
	fprintf(stderr, "mnist: --%s: invalid value '%s': expected %s\n%s", option_name(code),
	        value, expected, TRY_HELP);
	return EXIT_USAGE;
}

/* A whole number from min to max in decimal digits only: strtoull alone would take
 * "-1", " 5" and "" too. Returns 1 with *out set, or 0. */
static int parse_ull(const char *s, unsigned long long min, unsigned long long max,
                     unsigned long long *out)
{
	char *end;
	unsigned long long v;

	if (!isdigit((unsigned char)s[0]))
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return 0;
	*out = v;
	return 1;
}

static int parse_size(const char *s, size_t min, size_t *out)
{
	unsigned long long v;

	if (!parse_ull(s, min, SIZE_MAX, &v))
		return 0;
	*out = (size_t)v;
	return 1;
}

/* A finite number. Returns 1 with *out set, or 0. */
static int parse_real(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return end != s && *end == '\0' && errno == 0 && isfinite(*out);
}

/* One of the first n names. Returns 1 with *out set to its index, or 0. */
static int parse_choice(const char *s, const char *const *names, size_t n, int *out)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (int)i;
			return 1;
		}
	}
	return 0;
}

/* Layer sizes "784,30,10": 2 to MAX_LAYERS numbers from 1 to MAX_UNITS. */
static int parse_layers(const char *s, struct options *o)
{
	o->n_layers = 0;
	for (;;) {
		char *end;
		unsigned long long v;

		if (!isdigit((unsigned char)*s) || o->n_layers == MAX_LAYERS)
			return 0;
		errno = 0;
		v = strtoull(s, &end, 10);
		if (errno != 0 || v == 0 || v > MAX_UNITS)
			return 0;
		o->sizes[o->n_layers++] = (size_t)v;
		if (*end != ',')
			return *end == '\0' && o->n_layers >= 2;
		s = end + 1;
	}
}

/* Store the value of one option. Returns 0, or EXIT_USAGE after saying what is wrong. */
static int set_option(struct options *o, int code, const char *arg)
{
	int ok = 1;
	const char *expected = "";

	switch (code) {
	case OPT_LAYERS:
		o->layers = arg;
		ok = parse_layers(arg, o);
		expected = "2 to 16 sizes from 1 to 1000000 separated by commas, as 784,30,10";
		break;
	case OPT_ACTIVATION:  /* softmax is for the output layer only */
		ok = parse_choice(arg, ACTIVATIONS, COUNT(ACTIVATIONS), &o->hidden) &&
		     o->hidden != NB_SOFTMAX;
		expected = "sigmoid, tanh, relu, softplus or identity";
		break;
	case OPT_OUTPUT:
		ok = parse_choice(arg, ACTIVATIONS, COUNT(ACTIVATIONS), &o->output);
		expected = "sigmoid, tanh, relu, softmax, softplus or identity";
		break;
	case OPT_COST:
		ok = parse_choice(arg, COSTS, COUNT(COSTS), &o->cost);
		expected = "quadratic or cross-entropy";
		break;
	case OPT_INIT:
		ok = parse_choice(arg, INITS, COUNT(INITS), &o->init);
		expected = "normal or scaled";
		break;
	case OPT_NET:
		ok = strcmp(arg, "conv") == 0;
		o->conv = ok;
		expected = "conv";
		break;
	case OPT_DROPOUT:
		ok = parse_real(arg, &o->dropout) && o->dropout >= 0 && o->dropout < 1;
		expected = "a number from 0 to less than 1";
		break;
	case OPT_SEED:
		ok = parse_ull(arg, 0, ULLONG_MAX, &o->seed);
		expected = "a whole number >= 0";
		break;
	case OPT_EPOCHS:
		ok = parse_size(arg, 0, &o->epochs);
		expected = "a whole number >= 0";
		break;
	case OPT_BATCH:
	case OPT_TRAIN_LIMIT:
	case OPT_TEST_LIMIT:
		ok = parse_size(arg, 1, code == OPT_BATCH ? &o->batch :
		                code == OPT_TRAIN_LIMIT ? &o->train_limit : &o->test_limit);
		expected = "a whole number >= 1";
		break;
	case OPT_ETA:
		ok = parse_real(arg, &o->eta) && o->eta > 0;
		expected = "a number > 0";
		break;
	case OPT_MOMENTUM:
		ok = parse_real(arg, &o->momentum) && o->momentum >= 0 && o->momentum < 1;
		expected = "a number from 0 to less than 1";
		break;
	case OPT_LAMBDA:
		ok = parse_real(arg, &o->lambda) && o->lambda >= 0;
		expected = "a number >= 0";
		break;
	case OPT_DATA: o->data = arg; break;
	case OPT_SAVE: o->save = arg; break;
	case OPT_LOAD: o->load = arg; break;
	case OPT_CSV: o->csv = arg; break;
	case OPT_SVG: o->svg = arg; break;
	case OPT_DOT: o->dot = arg; break;
	}
	return ok ? 0 : bad_value(code, arg, expected);
}

/* Fill o from the command line with getopt_long (we print getopt's errors ourselves, so
 * that they name "mnist" and not the libtool wrapper's binary). Returns KEEP_GOING, or
 * the status to exit with: 0 after --help, EXIT_USAGE after a mistake. */
static int parse_options(int argc, char **argv, struct options *o)
{
	int code;

	*o = DEFAULTS;
	opterr = 0;
	while ((code = getopt_long(argc, argv, ":h", LONG_OPTIONS, NULL)) != -1) {
		if (code == 'h') {
			usage();
			return EXIT_SUCCESS;
		}
		if (code == ':') {  /* optopt is the option that lacks its value */
			fprintf(stderr, "mnist: --%s needs a value\n%s", option_name(optopt),
			        TRY_HELP);
			return EXIT_USAGE;
		}
		if (code == '?') {  /* unknown, ambiguous, or given a value it does not take */
			fprintf(stderr, "mnist: unrecognized or ambiguous option '%s'\n%s",
			        argv[optind - 1], TRY_HELP);
			return EXIT_USAGE;
		}
		if (set_option(o, code, optarg) != 0)
			return EXIT_USAGE;
		if (code <= OPT_SEED)
			o->net_options = 1;
		o->given[code - OPT_LAYERS] = 1;
	}
	if (o->conv) {  /* network3.py's choices, unless the command line says otherwise */
		if (!o->given[OPT_EPOCHS - OPT_LAYERS])
			o->epochs = 20;
		if (!o->given[OPT_ETA - OPT_LAYERS])
			o->eta = 0.03;
		if (!o->given[OPT_LAMBDA - OPT_LAYERS])
			o->lambda = 0.1;
	}
	if (optind < argc) {
		fprintf(stderr, "mnist: unexpected argument '%s'\n%s", argv[optind], TRY_HELP);
		return EXIT_USAGE;
	}
	return KEEP_GOING;
}

/* ---- Data and network ---------------------------------------------------------------- */

/* What the program works with. */
struct run {
	nb_dataset train_all, test_all;  /* as loaded: freed with nb_dataset_free() */
	nb_dataset train, test;          /* views of their first examples (--*-limit) */
	nb_net *net;
	struct curve curve;              /* one point per epoch */
	char title[200], subtitle[200];  /* the network, and how it is trained */
};

/* A view of the first n examples of ds (all of them when it has fewer): the same buffers,
 * since x, y and label are row-major, with a smaller count. The nb_dataset comment allows
 * such hand-built views; they must never go to nb_dataset_free(). */
static nb_dataset first_examples(const nb_dataset *ds, size_t n)
{
	nb_dataset view = *ds;

	if (n < view.n)
		view.n = n;
	return view;
}

/* Load the "train" and "t10k" splits of --data. On error the message names the file. */
static int load_data(const struct options *o, struct run *r)
{
	char msg[NB_MSG_MAX];

	if (nb_dataset_load_dir(o->data, "train", &r->train_all, msg) != NB_OK ||
	    nb_dataset_load_dir(o->data, "t10k", &r->test_all, msg) != NB_OK) {
		fprintf(stderr, "mnist: %s\n", msg);
		return EXIT_FAILURE;
	}
	r->train = first_examples(&r->train_all, o->train_limit);
	r->test = first_examples(&r->test_all, o->test_limit);
	return 0;
}

/* Whether a network of in inputs and out outputs reads the data's images (one input per
 * pixel) and answers with its classes (one output each); if not, say so, blaming option
 * value. */
static int fits_data(size_t in, size_t out, const struct options *o, const nb_dataset *ds,
                     const char *option, const char *value)
{
	if (in == ds->features && out == ds->classes)
		return 1;
	fprintf(stderr, "mnist: %s %s: the network has %zu inputs and %zu outputs, but the "
	        "images in %s have %zu pixels and %zu classes\n", option, value, in, out,
	        o->data, ds->features, ds->classes);
	return 0;
}

/* A network saved by --save. The file holds the layers and choices, so the options that
 * would shape a new network do not apply. */
static int load_net(const struct options *o, struct run *r)
{
	char msg[NB_MSG_MAX];

	if (nb_net_load(o->load, &r->net, msg) != NB_OK) {
		fprintf(stderr, "mnist: %s\n", msg);
		return EXIT_FAILURE;
	}
	if (o->net_options)
		fprintf(stderr, "mnist: warning: the network comes from %s, so --layers, "
		        "--activation, --output, --cost, --init, --net, --dropout and --seed are "
		        "ignored\n", o->load);
	return fits_data(nb_net_inputs(r->net), nb_net_outputs(r->net), o, &r->train, "--load",
	                 o->load) ? 0 : EXIT_FAILURE;
}

/* Nielsen's convolutional network (chapter 6, network3.py) as a list of layers: the
 * images go in as 1 x 28 x 28, each convolution makes maps of 24 x 24 and then 8 x 8,
 * each pool halves them, and the dense layers read the 40 x 4 x 4 values that remain.
 * He initialisation suits the relu layers; the softmax layer starts at zero, as
 * network3.py's does. */
static int make_conv_net(const struct options *o, struct run *r)
{
	const nb_layer conv[] = {
		NB_CONV2D(20, 5, NB_RELU, NB_INIT_HE), NB_MAX_POOL(2),
		NB_CONV2D(40, 5, NB_RELU, NB_INIT_HE), NB_MAX_POOL(2),
	};
	const nb_layer dropout = NB_DROPOUT(o->dropout);
	const nb_layer dense[] = {
		NB_DENSE(100, NB_RELU, NB_INIT_HE),
		NB_DENSE(r->train.classes, NB_SOFTMAX, NB_INIT_ZERO),
	};
	nb_layer layers[8];
	size_t n = 0;

	/* the four image layers, then each dense layer with dropout before it if asked */
	for (size_t i = 0; i < COUNT(conv); i++)
		layers[n++] = conv[i];
	for (size_t i = 0; i < COUNT(dense); i++) {
		if (o->dropout > 0)
			layers[n++] = dropout;
		layers[n++] = dense[i];
	}
	nb_net_config cfg = {
		.layers = layers, .layer_count = n,
		.input = { 1, r->train.rows, r->train.cols },
		.cost = NB_CROSS_ENTROPY, .seed = o->seed,
	};
	char msg[NB_MSG_MAX];

	if (nb_net_new(&cfg, &r->net, msg) != NB_OK) {
		fprintf(stderr, "mnist: %s\n", msg);
		return EXIT_FAILURE;
	}
	return 0;
}

/* A new network with random parameters (or the one --load names). nb_net_new() checks
 * the configuration, and its message names what it rejects. */
static int make_net(struct options *o, struct run *r)
{
	char msg[NB_MSG_MAX];
	nb_net_config cfg;

	if (o->load)
		return load_net(o, r);
	if (o->conv)
		return make_conv_net(o, r);
	if (o->n_layers == 0) {
		o->n_layers = 3;
		o->sizes[0] = r->train.features;
		o->sizes[1] = DEFAULT_HIDDEN;
		o->sizes[2] = r->train.classes;
	} else if (!fits_data(o->sizes[0], o->sizes[o->n_layers - 1], o, &r->train, "--layers",
	                      o->layers)) {
		return EXIT_USAGE;
	}
	cfg = (nb_net_config){
		.n_layers = o->n_layers, .sizes = o->sizes, .hidden = o->hidden,
		.output = o->output, .cost = o->cost, .init = o->init, .seed = o->seed,
	};
	if (nb_net_new(&cfg, &r->net, msg) != NB_OK) {
		fprintf(stderr, "mnist: %s\n", msg);
		return EXIT_FAILURE;
	}
	return 0;
}

/* Report the first error of a training or evaluation call (sticky on the network). */
static int net_failed(const nb_net *net)
{
	fprintf(stderr, "mnist: %s\n", nb_net_message(net));
	return EXIT_FAILURE;
}

/* ---- Describing the run -------------------------------------------------------------- */

/* Append printf-style text to the string in buf (size bytes), cutting it if need be. */
static void append(char *buf, size_t size, const char *fmt, ...)
{
	size_t len = strlen(buf);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf + len, size - len, fmt, ap);
	va_end(ap);
}

static const char *name_of(const char *const *names, size_t n, int value)
{
	return value >= 0 && (size_t)value < n ? names[value] : "?";
}

/* A network of layers in one line: "conv 5x5x20 relu, max-pool 2, ..., dense 10 softmax". */
static void describe_layers(const nb_net_config *cfg, char *buf, size_t size)
{
	static const char *const kinds[] = {
		"?", "dense", "conv", "max-pool", "avg-pool", "dropout", "activation"
	};

	for (size_t i = 0; i < cfg->layer_count; i++) {
		const nb_layer *l = &cfg->layers[i];
		const char *act = name_of(ACTIVATIONS, COUNT(ACTIVATIONS), l->activation);
		const char *kind = name_of(kinds, COUNT(kinds), l->kind);

		if (i)
			append(buf, size, ", ");
		if (l->kind == NB_LAYER_CONV2D)
			append(buf, size, "conv %zux%zux%zu %s", l->k, l->k, l->units, act);
		else if (l->kind == NB_LAYER_DENSE)
			append(buf, size, "dense %zu %s", l->units, act);
		else if (l->kind == NB_LAYER_DROPOUT)
			append(buf, size, "dropout %g", l->p);
		else if (l->kind == NB_LAYER_ACTIVATION)
			append(buf, size, "%s", act);
		else
			append(buf, size, "%s %zu", kind, l->k);
	}
}

/* Title: the network, as the library has it ("[784, 30, 10] sigmoid, quadratic cost,
 * normal init"). Subtitle: the training ("batch 10, eta 3, 30 epochs, seed 1, 8000 train
 * / 2000 test"). Both go on the first output line and on the SVG picture. */
static void describe(const struct options *o, struct run *r)
{
	nb_net_config cfg = nb_net_get_config(r->net);
	const char *hidden = name_of(ACTIVATIONS, COUNT(ACTIVATIONS), cfg.hidden);
	const char *output = name_of(ACTIVATIONS, COUNT(ACTIVATIONS), cfg.output);

	r->title[0] = r->subtitle[0] = '\0';
	if (cfg.layers)
		describe_layers(&cfg, r->title, sizeof r->title);
	for (size_t i = 0; i < cfg.n_layers; i++)
		append(r->title, sizeof r->title, "%s%zu", i ? ", " : "[", cfg.sizes[i]);
	if (cfg.layers)
		append(r->title, sizeof r->title, ", %s cost",
		       cfg.cost == NB_CROSS_ENTROPY ? "log-likelihood" : "quadratic");
	else if (cfg.n_layers > 2 && cfg.hidden != cfg.output)
		append(r->title, sizeof r->title, "] %s hidden, %s output", hidden, output);
	else
		append(r->title, sizeof r->title, "] %s", output);
	if (!cfg.layers)
		append(r->title, sizeof r->title, ", %s cost",
		       name_of(COSTS, COUNT(COSTS), cfg.cost));
	if (o->load)
		append(r->title, sizeof r->title, ", loaded from %s", o->load);
	else if (!cfg.layers)
		append(r->title, sizeof r->title, ", %s init",
		       name_of(INITS, COUNT(INITS), cfg.init));

	append(r->subtitle, sizeof r->subtitle, "batch %zu, eta %g", o->batch, o->eta);
	if (o->momentum > 0)
		append(r->subtitle, sizeof r->subtitle, ", momentum %g", o->momentum);
	if (o->lambda > 0)
		append(r->subtitle, sizeof r->subtitle, ", lambda %g", o->lambda);
	append(r->subtitle, sizeof r->subtitle, ", %zu epoch%s, seed %llu, %zu train / %zu test",
	       o->epochs, o->epochs == 1 ? "" : "s", cfg.seed, r->train.n, r->test.n);
	printf("nabla: %s, %s from %s\n", r->title, r->subtitle, o->data);
}

/* --dot: the tape nb_net_sgd_step() replays for mini-batches of the chosen size, drawn
 * by Graphviz with "dot -Tsvg FILE". The tape is the network's: we only look. */
static int write_dot(const struct options *o, nb_net *net)
{
	nb_tape *tape;
	FILE *f;
	int status;

	if (!o->dot)
		return 0;
	tape = nb_net_tape(net, o->batch);
	if (!tape)
		return net_failed(net);
	f = fopen(o->dot, "w");
	if (!f) {
		fprintf(stderr, "mnist: cannot write %s: %s\n", o->dot, strerror(errno));
		return EXIT_FAILURE;
	}
	status = nb_tape_write_dot(tape, f);
	if (fclose(f) != 0 || status != NB_OK) {
		fprintf(stderr, "mnist: cannot write %s: %s\n", o->dot, nb_status_text(NB_EIO));
		return EXIT_FAILURE;
	}
	return 0;
}

/* ---- Training ------------------------------------------------------------------------ */

/* Seconds on a clock that never jumps, for measuring durations. */
static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The progress bar of an epoch, on stderr: when the epoch started, when the bar was last
 * drawn (seconds since the start) and how wide it was, so that it can be erased. */
struct progress {
	double start, drawn;
	int width;
};

/* nb_net_sgd_epoch() calls this after each mini-batch. Redrawing thousands of times a
 * second would slow training down, so the bar is redrawn at most every 0.1 s. */
static void show_progress(void *ud, size_t done, size_t total)
{
	struct progress *p = ud;
	double t = now() - p->start;
	char bar[BAR_WIDTH + 1];
	size_t full = total ? done * BAR_WIDTH / total : BAR_WIDTH;

	if (t - p->drawn < 0.1)
		return;
	p->drawn = t;
	memset(bar, '#', full);
	memset(bar + full, '.', BAR_WIDTH - full);
	bar[BAR_WIDTH] = '\0';
	p->width = fprintf(stderr, "\r[%s] %3zu%%  %.0f samples/s", bar,
	                   total ? done * 100 / total : 100, done / t);
}

/* Erase the bar (if one was drawn) so that the epoch's line starts on a clean line. */
static void clear_progress(const struct progress *p)
{
	if (p->width > 0)
		fprintf(stderr, "\r%*s\r", p->width, "");
}

/* "Epoch 3: 1850 / 2000, cost 0.0212, 0.31 s"; epoch 0 only evaluates, so it has no
 * cost and no time. */
static void print_epoch(const struct curve_point *p, double seconds)
{
	if (p->epoch == 0)
		printf("Epoch 0: %zu / %zu\n", p->correct, p->total);
	else
		printf("Epoch %zu: %zu / %zu, cost %.4f, %.2f s\n", p->epoch, p->correct,
		       p->total, p->train_cost, seconds);
	fflush(stdout);  /* show it now even when stdout is a pipe */
}

/* One epoch: train (except for epoch 0), then evaluate on the test set, print the line
 * and add the point to the learning curve. The time covers both. */
static int run_epoch(struct run *r, const nb_sgd *sgd, size_t epoch, int show_bar)
{
	struct curve_point p = { .epoch = epoch, .total = r->test.n, .train_cost = NAN };
	struct progress bar = { .start = now() };
	int status = NB_OK;

	if (epoch > 0) {
		/* Shuffle, then one SGD step per mini-batch; p.train_cost gets the mean of
		 * the mini-batch costs, each taken before its step. */
		status = nb_net_sgd_epoch(r->net, &r->train, sgd, &p.train_cost,
		                          show_bar ? show_progress : NULL, &bar);
		clear_progress(&bar);
	}
	/* Classify every test digit (the arg-max of the output layer). */
	if (status == NB_OK)
		status = nb_net_evaluate(r->net, &r->test, &p.correct, &p.test_cost);
	if (status != NB_OK)
		return net_failed(r->net);
	print_epoch(&p, now() - bar.start);
	if (curve_add(&r->curve, &p) != 0) {
		fprintf(stderr, "mnist: %s\n", strerror(ENOMEM));
		return EXIT_FAILURE;
	}
	return 0;
}

/* Epochs 1 to --epochs (or only epoch 0, an evaluation), then the best one. */
static int train(const struct options *o, struct run *r)
{
	/* Nielsen's L2 term (lambda / 2n) sum w^2 adds (lambda / n) w to each weight's
	 * gradient: the library calls lambda / n the weight decay. */
	nb_sgd sgd = {
		.batch = o->batch, .eta = o->eta, .momentum = o->momentum,
		.weight_decay = r->train.n ? o->lambda / (double)r->train.n : 0.0,
	};
	/* network3.py divides lambda by the number of mini-batches instead. */
	size_t batches = r->train.n / o->batch ? r->train.n / o->batch : 1;

	if (o->conv)
		sgd.weight_decay = o->lambda / (double)batches;
	int show_bar = isatty(STDERR_FILENO);
	const struct curve_point *best;

	for (size_t epoch = o->epochs ? 1 : 0; epoch <= o->epochs; epoch++)
		if (run_epoch(r, &sgd, epoch, show_bar) != 0)
			return EXIT_FAILURE;
	best = curve_best(&r->curve);
	printf("best: epoch %zu, %zu / %zu (%.2f%%)\n", best->epoch, best->correct, best->total,
	       best->total ? 100.0 * (double)best->correct / (double)best->total : 0.0);
	return 0;
}

/* --save, --csv and --svg, after training. */
static int write_results(const struct options *o, struct run *r)
{
	char msg[NB_MSG_MAX];
	const char *path = NULL;
	int err = 0;

	if (o->save && nb_net_save(r->net, o->save, msg) != NB_OK) {
		fprintf(stderr, "mnist: %s\n", msg);
		return EXIT_FAILURE;
	}
	if (o->csv && (err = curve_write_csv(&r->curve, o->csv)) != 0)
		path = o->csv;
	else if (o->svg && (err = curve_write_svg(&r->curve, o->svg, r->title,
	                                          r->subtitle)) != 0)
		path = o->svg;
	if (err != 0) {
		fprintf(stderr, "mnist: cannot write %s: %s\n", path, strerror(err));
		return EXIT_FAILURE;
	}
	return 0;
}

static void free_run(struct run *r)
{
	curve_free(&r->curve);
	nb_net_free(r->net);
	nb_dataset_free(&r->train_all);  /* the views train and test are not freed */
	nb_dataset_free(&r->test_all);
}

int main(int argc, char **argv)
{
	struct options opt;
	struct run run = { 0 };
	int status = parse_options(argc, argv, &opt);

	if (status != KEEP_GOING)
		return status;
	status = load_data(&opt, &run);
	if (status == 0)
		status = make_net(&opt, &run);
	if (status == 0) {
		describe(&opt, &run);
		status = write_dot(&opt, run.net);
	}
	if (status == 0)
		status = train(&opt, &run);
	if (status == 0)
		status = write_results(&opt, &run);
	free_run(&run);
	return status;
}
