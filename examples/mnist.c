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
 * With MPI (when configure found one), --mpi trains one network with every process that
 * mpirun starts, through nabla_mpi.h:
 *   nb_mpi_new()               a context over MPI_COMM_WORLD
 *   nb_mpi_dataset_load_dir()  each process (rank) reads only its part of the data
 *   nb_mpi_net_sync()          every rank starts from rank 0's parameters
 *   nb_mpi_net_sgd_epoch()     each mini-batch of --batch examples is split across the
 *                              ranks, and their gradients are summed for one update
 *   nb_mpi_net_evaluate()      the test digits of all the parts
 *   nb_mpi_net_save()          rank 0 saves
 * Each call is collective, and when a rank fails every rank returns its error: rank 0
 * prints the lines and writes the files, and every rank exits with the same status.
 *
 * Run: ./examples/mnist               784-30-10 sigmoid network, 30 epochs on the bundled
 *                                     8,000 training and 2,000 test digits
 *      ./examples/mnist --net conv    Nielsen's convolutional network of chapter 6
 *      mpirun -np 2 ./examples/mnist --mpi
 *                                     the same network trained by two processes
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
#ifdef NABLA_WITH_MPI
#include "nabla_mpi.h"
#endif
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
	int mpi;                      /* --mpi */
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
	OPT_TEST_LIMIT, OPT_SAVE, OPT_LOAD, OPT_CSV, OPT_SVG, OPT_DOT, OPT_MPI
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
	{ "mpi", no_argument, NULL, OPT_MPI },  /* refused by a build without MPI */
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

/* --help's part about --mpi, which depends on the build. */
#ifdef NABLA_WITH_MPI
#define MPI_HELP \
	"Parallel training (MPI):\n" \
	"  --mpi              train one network with every process mpirun starts, as in\n" \
	"                     mpirun -np 2 mnist --mpi: each process (rank) reads only its\n" \
	"                     part of the training and test sets, every rank takes its share\n" \
	"                     of each mini-batch of --batch examples (which must be at least\n" \
	"                     the number of ranks) and their gradients are summed for one\n" \
	"                     update. The ranks shuffle their own parts, so the accuracy is\n" \
	"                     close to one process's, not the same. Rank 0 prints and writes\n" \
	"                     --save, --csv, --svg and --dot; --load is read by rank 0 only.\n" \
	"                     --train-limit and --test-limit keep the first N examples of the\n" \
	"                     whole set, as without --mpi, and split those: every rank then\n" \
	"                     reads the whole files\n" \
	"\n"
#else
#define MPI_HELP \
	"Parallel training (MPI):\n" \
	"  --mpi              not in this build: configure found no MPI\n" \
	"\n"
#endif

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
	       MPI_HELP
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

/* The first mistake of the command line, said by main(): with --mpi, only rank 0 says it,
 * and the option may come after the mistake, so the whole line is read first. */
static char usage_message[1024];

/* Keep the message of a mistake (printf-style, without "mnist: ") unless one was kept
 * already; return EXIT_USAGE. */
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	if (usage_message[0] != '\0')
		return EXIT_USAGE;
	va_start(ap, fmt);
	vsnprintf(usage_message, sizeof usage_message, fmt, ap);
	va_end(ap);
	return EXIT_USAGE;
}

/* Say which option has a bad value and what it should be; return EXIT_USAGE. */
static int bad_value(int code, const char *value, const char *expected)
{
	return usage_error("--%s: invalid value '%s': expected %s", option_name(code), value,
	                   expected);
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
	case OPT_MPI:
#ifdef NABLA_WITH_MPI
		o->mpi = 1;
		break;
#else
		return usage_error("--mpi: this build has no MPI: configure found none (install "
		                   "one, e.g. Open MPI, and run configure again)");
#endif
	}
	return ok ? 0 : bad_value(code, arg, expected);
}

/* Fill o from the command line with getopt_long (we say getopt's errors ourselves, so
 * that they name "mnist" and not the libtool wrapper's binary). The whole line is read,
 * so that o->mpi is known, but the first of --help and a mistake decides: returns
 * KEEP_GOING, or the status to exit with: 0 for --help (main() prints the help),
 * EXIT_USAGE after a mistake (main() says usage_message). */
static int parse_options(int argc, char **argv, struct options *o)
{
	int code, result = KEEP_GOING;

	*o = DEFAULTS;
	opterr = 0;
	while ((code = getopt_long(argc, argv, ":h", LONG_OPTIONS, NULL)) != -1) {
		int status = KEEP_GOING;

		if (code == 'h')
			status = EXIT_SUCCESS;
		else if (code == ':')  /* optopt is the option that lacks its value */
			status = usage_error("--%s needs a value", option_name(optopt));
		else if (code == '?')  /* unknown, ambiguous, or given a value it does not take */
			status = usage_error("unrecognized or ambiguous option '%s'",
			                     argv[optind - 1]);
		else if (set_option(o, code, optarg) != 0)
			status = EXIT_USAGE;
		else {
			if (code <= OPT_SEED)
				o->net_options = 1;
			o->given[code - OPT_LAYERS] = 1;
		}
		if (result == KEEP_GOING)
			result = status;
	}
	if (result != KEEP_GOING)
		return result;
	if (o->conv) {  /* network3.py's choices, unless the command line says otherwise */
		if (!o->given[OPT_EPOCHS - OPT_LAYERS])
			o->epochs = 20;
		if (!o->given[OPT_ETA - OPT_LAYERS])
			o->eta = 0.03;
		if (!o->given[OPT_LAMBDA - OPT_LAYERS])
			o->lambda = 0.1;
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	return KEEP_GOING;
}

/* What parse_options() left to say: the help, or the mistake. */
static void say_usage(int status)
{
	if (status == EXIT_SUCCESS)
		usage();
	else
		fprintf(stderr, "mnist: %s\n%s", usage_message, TRY_HELP);
}

/* ---- Data and network ---------------------------------------------------------------- */

/* What the program works with. */
struct run {
	nb_dataset train_all, test_all;  /* as loaded: freed with nb_dataset_free() */
	nb_dataset train, test;          /* views of their first examples (--*-limit); with
	                                  * --mpi, this rank's part of the set or its share
	                                  * of those first examples */
	size_t train_n, test_n;          /* the examples of train and test on all the ranks */
	nb_net *net;
	struct curve curve;              /* one point per epoch, the same on every rank */
	char title[200], subtitle[200];  /* the network, and how it is trained */
	int rank, size;                  /* this rank and the number of ranks; 0 and 1 without
	                                  * --mpi */
#ifdef NABLA_WITH_MPI
	nb_mpi *mpi;                     /* --mpi: the ranks' context; NULL without */
#endif
};

/* Errors. Without --mpi an error is printed where it happens. With --mpi, every rank must
 * learn of an error of any one, so that none waits for the others in a collective call,
 * and it must be said once: the message is kept in error_text, the ranks agree at the end
 * of each step (agree()), and rank 0 prints the first failing rank's message. */
static int keep_errors;
static char error_text[1024];  /* cut to NB_MSG_MAX - 1 bytes when the ranks agree */

/* An error (printf-style, without "mnist: "): print it or keep it; return status. */
static int fail(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(error_text, sizeof error_text, fmt, ap);
	va_end(ap);
	if (!keep_errors)
		fprintf(stderr, "mnist: %s\n", error_text);
	return status;
}

#ifdef NABLA_WITH_MPI
/* An error the ranks agreed on in a collective call (each has the same message): rank 0
 * says it. */
static int mpi_failed(const struct run *r)
{
	if (r->rank == 0)
		fprintf(stderr, "mnist: %s\n", nb_mpi_message(r->mpi));
	return EXIT_FAILURE;
}
#endif

/* With --mpi, the ranks agree on what each did on its own (status 0, or an exit status with
 * its message in error_text): 0 on every rank when every rank did it, otherwise an exit
 * status on every rank (this rank's own, or EXIT_FAILURE), rank 0 having said the message
 * ("rank 1: ..."). Without --mpi, status (said already). */
static int agree(const struct run *r, int status)
{
#ifdef NABLA_WITH_MPI
	if (r->mpi && nb_mpi_agree(r->mpi, status ? NB_EINVAL : NB_OK,
	                           status ? error_text : NULL) != NB_OK) {
		mpi_failed(r);
		return status ? status : EXIT_FAILURE;
	}
#else
	(void)r;
#endif
	return status;
}

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
	    nb_dataset_load_dir(o->data, "t10k", &r->test_all, msg) != NB_OK)
		return fail(EXIT_FAILURE, "%s", msg);
	r->train = first_examples(&r->train_all, o->train_limit);
	r->test = first_examples(&r->test_all, o->test_limit);
	r->train_n = r->train.n;
	r->test_n = r->test.n;
	return 0;
}

#ifdef NABLA_WITH_MPI
/* Rank r's share of the first n examples of ds (all of them when it has fewer), split as
 * nb_mpi_dataset_load_dir() splits a file: of n, rank r of P holds n / P, one more when
 * r < n % P, in rank order. A view, as first_examples() makes. */
static nb_dataset share_of(const nb_dataset *ds, size_t n, int rank, int size)
{
	nb_dataset view = *ds;
	size_t p = (size_t)size, q = (size_t)rank, each, rest, first;

	if (n > ds->n)
		n = ds->n;
	each = n / p;
	rest = n % p;
	first = q * each + (q < rest ? q : rest);
	view.n = each + (q < rest);
	if (view.n > 0) {
		view.x += first * ds->features;
		view.y += first * ds->classes;
		view.label += first;
	}
	return view;
}

/* One split of --data with --mpi: without a limit each rank reads only its part of the
 * files (nb_mpi_dataset_load_dir()); with one, each reads them whole and keeps its share of
 * the first limit examples, so that the ranks train on what one process would. *total gets
 * the examples of all the ranks. */
static int load_split_mpi(struct run *r, const char *dir, const char *split, size_t limit,
                          nb_dataset *all, nb_dataset *part, size_t *total)
{
	unsigned long long mine, sum = 0;

	if (limit == SIZE_MAX) {
		if (nb_mpi_dataset_load_dir(r->mpi, dir, split, NULL, all) != NB_OK)
			return mpi_failed(r);
		*part = *all;
	} else {
		char msg[NB_MSG_MAX];
		int status = 0;

		if (nb_dataset_load_dir(dir, split, all, msg) != NB_OK)
			status = fail(EXIT_FAILURE, "%s", msg);
		if ((status = agree(r, status)) != 0)
			return status;
		*part = share_of(all, limit, r->rank, r->size);
	}
	mine = part->n;
	MPI_Allreduce(&mine, &sum, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
	*total = (size_t)sum;
	return 0;
}

static int load_data_mpi(const struct options *o, struct run *r)
{
	int status = load_split_mpi(r, o->data, "train", o->train_limit, &r->train_all,
	                            &r->train, &r->train_n);

	if (status == 0)
		status = load_split_mpi(r, o->data, "t10k", o->test_limit, &r->test_all, &r->test,
		                        &r->test_n);
	return status;
}
#endif

/* Whether a network of in inputs and out outputs reads the data's images (one input per
 * pixel) and answers with its classes (one output each); if not, say so, blaming option
 * value. */
static int fits_data(size_t in, size_t out, const struct options *o, const nb_dataset *ds,
                     const char *option, const char *value)
{
	if (in == ds->features && out == ds->classes)
		return 1;
	fail(0, "%s %s: the network has %zu inputs and %zu outputs, but the images in %s have "
	     "%zu pixels and %zu classes", option, value, in, out, o->data, ds->features,
	     ds->classes);
	return 0;
}

/* A network saved by --save. The file holds the layers and choices, so the options that
 * would shape a new network do not apply. */
static int load_net(const struct options *o, struct run *r)
{
	char msg[NB_MSG_MAX];

	if (nb_net_load(o->load, &r->net, msg) != NB_OK)
		return fail(EXIT_FAILURE, "%s", msg);
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

	if (nb_net_new(&cfg, &r->net, msg) != NB_OK)
		return fail(EXIT_FAILURE, "%s", msg);
	return 0;
}

/* A new network with random parameters. nb_net_new() checks the configuration, and its
 * message names what it rejects. */
static int new_net(struct options *o, struct run *r)
{
	char msg[NB_MSG_MAX];
	nb_net_config cfg;

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
	if (nb_net_new(&cfg, &r->net, msg) != NB_OK)
		return fail(EXIT_FAILURE, "%s", msg);
	return 0;
}

#ifdef NABLA_WITH_MPI
/* What rank 0 tells the other ranks of the network it loaded: its configuration with the
 * sizes or layers copied in. The ranks run the same program, so the bytes mean the same
 * on each; the pointers sent are replaced on arrival. */
struct net_shape {
	nb_net_config cfg;
	size_t sizes[NB_NET_MAX_LAYERS + 1];
	nb_layer layers[NB_NET_MAX_LAYERS];
};

/* --load with --mpi: rank 0 reads the file (it need not be on the other machines) and
 * sends the network's configuration; the other ranks make a network of it, which
 * nb_mpi_net_sync() then gives rank 0's parameters. */
static int load_net_mpi(const struct options *o, struct run *r)
{
	struct net_shape shape;
	char msg[NB_MSG_MAX];
	int status = 0;

	memset(&shape, 0, sizeof shape);
	if (r->rank == 0 && (status = load_net(o, r)) == 0) {
		shape.cfg = nb_net_get_config(r->net);
		if (shape.cfg.layers && shape.cfg.layer_count <= NB_NET_MAX_LAYERS)
			memcpy(shape.layers, shape.cfg.layers,
			       shape.cfg.layer_count * sizeof *shape.layers);
		else if (!shape.cfg.layers && shape.cfg.n_layers <= NB_NET_MAX_LAYERS + 1)
			memcpy(shape.sizes, shape.cfg.sizes, shape.cfg.n_layers * sizeof *shape.sizes);
		else
			status = fail(EXIT_FAILURE, "%s: the network has more layers than %d",
			              o->load, NB_NET_MAX_LAYERS);
	}
	if ((status = agree(r, status)) != 0)
		return status;
	MPI_Bcast(&shape, (int)sizeof shape, MPI_BYTE, 0, MPI_COMM_WORLD);
	if (r->rank != 0) {
		shape.cfg.sizes = shape.cfg.layers ? NULL : shape.sizes;
		shape.cfg.layers = shape.cfg.layers ? shape.layers : NULL;
		shape.cfg.alloc = NULL;
		shape.cfg.alloc_ud = NULL;
		if (nb_net_new(&shape.cfg, &r->net, msg) != NB_OK)
			status = fail(EXIT_FAILURE, "%s", msg);
	}
	return agree(r, status);
}
#endif

/* The network: the one --load names, or a new one. With --mpi, every rank makes the same
 * and starts from rank 0's parameters. */
static int make_net(struct options *o, struct run *r)
{
#ifdef NABLA_WITH_MPI
	if (r->mpi) {
		int status = o->load ? load_net_mpi(o, r) : agree(r, new_net(o, r));

		if (status == 0 && nb_mpi_net_sync(r->mpi, r->net) != NB_OK)
			status = mpi_failed(r);
		return status;
	}
#endif
	return o->load ? load_net(o, r) : new_net(o, r);
}

/* Report the first error of a training or evaluation call (sticky on the network, and
 * agreed by the ranks with --mpi). */
static int net_failed(const struct run *r)
{
#ifdef NABLA_WITH_MPI
	if (r->mpi)
		return mpi_failed(r);
#endif
	return fail(EXIT_FAILURE, "%s", nb_net_message(r->net));
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
	       o->epochs, o->epochs == 1 ? "" : "s", cfg.seed, r->train_n, r->test_n);
	if (o->mpi)
		append(r->subtitle, sizeof r->subtitle, ", %d rank%s (MPI)", r->size,
		       r->size == 1 ? "" : "s");
	if (r->rank == 0)
		printf("nabla: %s, %s from %s\n", r->title, r->subtitle, o->data);
}

/* --dot: the tape nb_net_sgd_step() replays for mini-batches of the chosen size, drawn
 * by Graphviz with "dot -Tsvg FILE". The tape is the network's: we only look. With
 * --mpi, rank 0 draws the tape of a whole mini-batch (each rank's holds its share). */
static int write_dot(const struct options *o, const struct run *r)
{
	nb_tape *tape;
	FILE *f;
	int status;

	if (!o->dot || r->rank != 0)
		return 0;
	tape = nb_net_tape(r->net, o->batch);
	if (!tape)
		return fail(EXIT_FAILURE, "%s", nb_net_message(r->net));
	f = fopen(o->dot, "w");
	if (!f)
		return fail(EXIT_FAILURE, "cannot write %s: %s", o->dot, strerror(errno));
	status = nb_tape_write_dot(tape, f);
	if (fclose(f) != 0 || status != NB_OK)
		return fail(EXIT_FAILURE, "cannot write %s: %s", o->dot, nb_status_text(NB_EIO));
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

/* nb_net_sgd_epoch() calls this after each mini-batch (nb_mpi_net_sgd_epoch() after each
 * global one, counting the examples of all the ranks; only rank 0 draws). Redrawing
 * thousands of times a second would slow training down, so the bar is redrawn at most
 * every 0.1 s. */
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
 * and add the point to the learning curve. The time covers both. With --mpi the ranks
 * train and evaluate together, and rank 0 prints. */
static int run_epoch(struct run *r, const nb_sgd *sgd, size_t epoch, int show_bar)
{
	struct curve_point p = { .epoch = epoch, .total = r->test.n, .train_cost = NAN };
	struct progress bar = { .start = now() };
	nb_progress_fn progress = show_bar ? show_progress : NULL;
	int status = NB_OK;

#ifdef NABLA_WITH_MPI
	if (r->mpi) {
		/* Each rank shuffles its part (the order depends on the seed, the epoch,
		 * counted from 0, and the rank), then one step per global mini-batch;
		 * p.train_cost gets the mean cost of the examples, each taken before its
		 * step. The evaluation adds up the parts' counts: p.total is all of them. */
		if (epoch > 0) {
			status = nb_mpi_net_sgd_epoch(r->mpi, r->net, &r->train, sgd, epoch - 1,
			                              &p.train_cost, progress, &bar);
			clear_progress(&bar);
		}
		if (status == NB_OK)
			status = nb_mpi_net_evaluate(r->mpi, r->net, &r->test, &p.correct,
			                             &p.total, &p.test_cost);
	} else
#endif
	{
		if (epoch > 0) {
			/* Shuffle, then one SGD step per mini-batch; p.train_cost gets the mean
			 * of the mini-batch costs, each taken before its step. */
			status = nb_net_sgd_epoch(r->net, &r->train, sgd, &p.train_cost, progress,
			                          &bar);
			clear_progress(&bar);
		}
		/* Classify every test digit (the arg-max of the output layer). */
		if (status == NB_OK)
			status = nb_net_evaluate(r->net, &r->test, &p.correct, &p.test_cost);
	}
	if (status != NB_OK)
		return net_failed(r);
	if (r->rank == 0)
		print_epoch(&p, now() - bar.start);
	status = curve_add(&r->curve, &p) != 0 ? fail(EXIT_FAILURE, "%s", strerror(ENOMEM)) : 0;
	return agree(r, status);
}

/* Epochs 1 to --epochs (or only epoch 0, an evaluation), then the best one. */
static int train(const struct options *o, struct run *r)
{
	/* Nielsen's L2 term (lambda / 2n) sum w^2 adds (lambda / n) w to each weight's
	 * gradient: the library calls lambda / n the weight decay. */
	nb_sgd sgd = {
		.batch = o->batch, .eta = o->eta, .momentum = o->momentum,
		.weight_decay = r->train_n ? o->lambda / (double)r->train_n : 0.0,
	};
	/* network3.py divides lambda by the number of mini-batches instead. With --mpi, n
	 * and the mini-batches are those of all the ranks. */
	size_t batches = r->train_n / o->batch ? r->train_n / o->batch : 1;

	if (o->conv)
		sgd.weight_decay = o->lambda / (double)batches;
	int show_bar = r->rank == 0 && isatty(STDERR_FILENO);
	const struct curve_point *best;

	for (size_t epoch = o->epochs ? 1 : 0; epoch <= o->epochs; epoch++)
		if (run_epoch(r, &sgd, epoch, show_bar) != 0)
			return EXIT_FAILURE;
	best = curve_best(&r->curve);
	if (r->rank == 0)
		printf("best: epoch %zu, %zu / %zu (%.2f%%)\n", best->epoch, best->correct,
		       best->total,
		       best->total ? 100.0 * (double)best->correct / (double)best->total : 0.0);
	return 0;
}

/* --save, --csv and --svg, after training. With --mpi, the ranks save together (rank 0
 * writes the file) and rank 0 writes the curves. */
static int write_results(const struct options *o, struct run *r)
{
	char msg[NB_MSG_MAX];
	const char *path = NULL;
	int err = 0;

#ifdef NABLA_WITH_MPI
	if (r->mpi) {
		if (o->save && nb_mpi_net_save(r->mpi, r->net, o->save) != NB_OK)
			return mpi_failed(r);
	} else
#endif
	if (o->save && nb_net_save(r->net, o->save, msg) != NB_OK)
		return fail(EXIT_FAILURE, "%s", msg);
	if (r->rank == 0 && o->csv && (err = curve_write_csv(&r->curve, o->csv)) != 0)
		path = o->csv;
	else if (r->rank == 0 && o->svg && (err = curve_write_svg(&r->curve, o->svg, r->title,
	                                                          r->subtitle)) != 0)
		path = o->svg;
	return agree(r, err ? fail(EXIT_FAILURE, "cannot write %s: %s", path, strerror(err)) : 0);
}

static void free_run(struct run *r)
{
	curve_free(&r->curve);
	nb_net_free(r->net);
	nb_dataset_free(&r->train_all);  /* the views train and test are not freed */
	nb_dataset_free(&r->test_all);
}

/* Load, make the network, train and write what was asked: 0 or the exit status. */
static int run_program(struct options *o, struct run *r)
{
	int status;

#ifdef NABLA_WITH_MPI
	if (r->mpi)
		status = load_data_mpi(o, r);
	else
#endif
		status = load_data(o, r);
	if (status == 0)
		status = make_net(o, r);
	if (status == 0) {
		describe(o, r);
		status = agree(r, write_dot(o, r));
	}
	if (status == 0)
		status = train(o, r);
	if (status == 0)
		status = write_results(o, r);
	return status;
}

#ifdef NABLA_WITH_MPI
/* --mpi: the same program on every rank of MPI_COMM_WORLD, after parse_options() gave
 * status; every rank returns the same exit status. */
static int main_mpi(struct options *o, struct run *r, int status)
{
	char msg[NB_MSG_MAX];

	if (MPI_Init(NULL, NULL) != MPI_SUCCESS) {
		fprintf(stderr, "mnist: --mpi: MPI_Init failed\n");
		return EXIT_FAILURE;
	}
	MPI_Comm_rank(MPI_COMM_WORLD, &r->rank);
	if (status != KEEP_GOING) {  /* --help or a mistake: said once */
		if (r->rank == 0)
			say_usage(status);
	} else if (nb_mpi_new(MPI_COMM_WORLD, NULL, &r->mpi, msg) != NB_OK) {
		if (r->rank == 0)
			fprintf(stderr, "mnist: %s\n", msg);
		status = EXIT_FAILURE;
	} else {
		r->size = nb_mpi_size(r->mpi);
		keep_errors = 1;
		status = run_program(o, r);
	}
	free_run(r);
	nb_mpi_free(r->mpi);
	MPI_Finalize();
	return status;
}
#endif

int main(int argc, char **argv)
{
	struct options opt;
	struct run run = { .size = 1 };
	int status = parse_options(argc, argv, &opt);

#ifdef NABLA_WITH_MPI
	if (opt.mpi)
		return main_mpi(&opt, &run, status);
#endif
	if (status != KEEP_GOING) {
		say_usage(status);
		return status;
	}
	status = run_program(&opt, &run);
	free_run(&run);
	return status;
}
