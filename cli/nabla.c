/* nabla.c -- the nabla command: record an expression (docs/expressions.md) on a tape
 * from the command line, and print its value, its gradients and their check, its
 * Jacobian or Hessian, or its graph; or run the library's self-test.
 *
 *   nabla grad 'sum(sigmoid(w @ x))' 'w=randn(3,4)' 'x=ones(4,2)'
 *
 * Written on the public API only, as any program using the library would be. Each
 * subcommand is one function and one row of commands[]; the ones that take an
 * expression share struct session, which reads the options, the expression and the
 * inputs, and records the expression. Exit status: 0 done (grad, selftest: the check
 * passed), 1 the check failed, 2 the command could not run (usage, expression, input or
 * output errors); errors go to stderr after "nabla: ".
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nabla.h>

#include "spec.h"

#define PROG "nabla"

enum { EXIT_DONE = 0, EXIT_CHECK_FAILED = 1, EXIT_ERROR = 2 };

struct command;

/* What the commands that take an expression share: the options, the inputs (variables
 * on the tape, in command-line order) and the recorded expression y. */
struct session {
	const struct command *cmd;
	const char *expr;
	unsigned long seed;
	nb_gradcheck_opts check;  /* grad's options: the checker's own */
	const char *consts[NB_GRADCHECK_MAX_INPUTS];  /* --const NAME: not checked */
	size_t n_consts;
	struct spec *in;
	size_t n;
	nb_parse_input *named;  /* n inputs for nb_parse */
	nb_tape *t;
	nb_tensor *y;
};

/* A subcommand: run gets the arguments after its name. */
struct command {
	const char *name;
	const char *args;     /* for usage lines */
	const char *summary;
	int (*run)(const struct command *cmd, int argc, char **argv);
};

/* ---- Messages ---------------------------------------------------------------------- */

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static int error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", PROG);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_ERROR;
}

static int usage_error(const struct command *cmd, const char *what)
{
	error("%s: %s", cmd->name, what);
	fprintf(stderr, "usage: %s %s %s\n", PROG, cmd->name, cmd->args);
	return EXIT_ERROR;
}

/* The line of src holding the error, and a caret under its column. */
static void show_error_line(const char *src, const nb_parse_loc *at)
{
	const char *line = src, *end;

	for (size_t l = 1; l < at->line && (line = strchr(line, '\n')) != NULL; l++)
		line++;
	if (!line)
		return;
	end = strchr(line, '\n');
	if (!end)
		end = line + strlen(line);
	fprintf(stderr, "  %.*s\n  %*s^\n", (int)(end - line), line, (int)at->col - 1, "");
}

/* Everything written to stdout reached it. */
static int finish_output(int status)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		return error("cannot write the output: %s", strerror(errno));
	return status;
}

/* ---- Sessions: options, inputs, the expression ---------------------------------------- */

static void session_close(struct session *s)
{
	for (size_t i = 0; i < s->n; i++)
		spec_free(&s->in[i]);
	free(s->in);
	free(s->named);
	nb_tape_free(s->t);
	memset(s, 0, sizeof *s);
}

/* The options: --NAME VALUE or --NAME=VALUE (or --NAME alone for a flag). */
enum opt_kind { OPT_SEED, OPT_STEP, OPT_ATOL, OPT_RTOL, OPT_LEVELS, OPT_MODE, OPT_REPLAY,
                OPT_FIRST, OPT_CONST };

static const struct option {
	const char *name;
	enum opt_kind kind;
	int flag;  /* takes no value */
} options[] = {
	{ "seed", OPT_SEED, 0 }, { "step", OPT_STEP, 0 }, { "atol", OPT_ATOL, 0 },
	{ "rtol", OPT_RTOL, 0 }, { "levels", OPT_LEVELS, 0 }, { "mode", OPT_MODE, 0 },
	{ "replay", OPT_REPLAY, 1 }, { "first-order", OPT_FIRST, 1 }, { "const", OPT_CONST, 0 },
};

/* A non-negative number for --NAME, or an error. */
static int read_number(const struct session *s, const char *name, const char *value, double *v)
{
	char what[128], *end;

	errno = 0;
	*v = strtod(value, &end);
	if (*value && !*end && !errno && *v >= 0.0 && isfinite(*v))
		return EXIT_DONE;
	snprintf(what, sizeof what, "--%s takes a non-negative number", name);
	return usage_error(s->cmd, what);
}

static int set_mode(struct session *s, const char *value)
{
	static const char *const modes[] = { "auto", "elements", "directions" };

	for (int m = 0; m < 3; m++)
		if (!strcmp(value, modes[m])) {
			s->check.mode = m;  /* the order of enum nb_gradcheck_mode */
			return EXIT_DONE;
		}
	return usage_error(s->cmd, "--mode is auto, elements or directions");
}

static int set_option(struct session *s, const struct option *o, const char *value)
{
	double v = 0.0;
	char *end;

	switch (o->kind) {
	case OPT_REPLAY:
		s->check.replay = 1;
		return EXIT_DONE;
	case OPT_CONST:
		if (s->n_consts == NB_GRADCHECK_MAX_INPUTS)
			return usage_error(s->cmd, "too many --const");
		s->consts[s->n_consts++] = value;
		return EXIT_DONE;
	case OPT_FIRST:
		s->check.first_order_only = 1;
		return EXIT_DONE;
	case OPT_MODE:
		return set_mode(s, value);
	case OPT_SEED:
		errno = 0;
		s->seed = strtoul(value, &end, 10);
		if (!*value || *end || errno || *value == '-')
			return usage_error(s->cmd, "--seed takes a non-negative integer");
		s->check.seed = s->seed;
		return EXIT_DONE;
	default:
		break;
	}
	if (read_number(s, o->name, value, &v))
		return EXIT_ERROR;
	if (o->kind == OPT_STEP)
		s->check.step = v;
	else if (o->kind == OPT_ATOL)
		s->check.atol = v;
	else if (o->kind == OPT_RTOL)
		s->check.rtol = v;
	else if (v != floor(v) || v < 1 || v > 4)
		return usage_error(s->cmd, "--levels takes 1, 2, 3 or 4");
	else
		s->check.levels = (int)v;
	return EXIT_DONE;
}

/* The option at argv[*i] (which starts with "--"). */
static int read_option(struct session *s, int argc, char **argv, int *i)
{
	const char *arg = argv[*i] + 2, *eq = strchr(arg, '=');
	size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
	char what[128];

	for (size_t k = 0; k < sizeof options / sizeof options[0]; k++) {
		const struct option *o = &options[k];

		if (strlen(o->name) != len || strncmp(o->name, arg, len))
			continue;
		if (o->flag && eq) {
			snprintf(what, sizeof what, "--%s takes no value", o->name);
			return usage_error(s->cmd, what);
		}
		if (o->flag || eq)
			return set_option(s, o, eq ? eq + 1 : NULL);
		if (*i + 1 >= argc) {
			snprintf(what, sizeof what, "--%s needs a value", o->name);
			return usage_error(s->cmd, what);
		}
		return set_option(s, o, argv[++*i]);
	}
	snprintf(what, sizeof what, "unknown option '%.64s'", argv[*i]);
	return usage_error(s->cmd, what);
}

/* arg, NAME=VALUE: one more input. */
static int add_input(struct session *s, const char *arg)
{
	char msg[SPEC_MSG_MAX];

	if (spec_read(&s->in[s->n], arg, s->seed, msg) != 0)
		return error("%s", msg);
	for (size_t j = 0; j < s->n; j++)
		if (!strcmp(s->in[j].name, s->in[s->n].name)) {
			error("input '%s' is given twice", s->in[s->n].name);
			spec_free(&s->in[s->n]);
			return EXIT_ERROR;
		}
	s->n++;
	return EXIT_DONE;
}

/* The arguments: options anywhere before "--", then EXPR, then NAME=VALUE inputs. The
 * inputs are read after every option, so that --seed applies to all wherever it is. */
static int read_args(struct session *s, int argc, char **argv)
{
	char **plain = calloc((size_t)argc + 1, sizeof *plain);
	int rc = EXIT_DONE, n = 0;
	bool options = true;

	s->in = calloc((size_t)argc + 1, sizeof *s->in);
	if (!plain || !s->in) {
		free(plain);
		return error("out of memory");
	}
	for (int i = 0; i < argc && rc == EXIT_DONE; i++) {
		if (options && !strcmp(argv[i], "--"))
			options = false;
		else if (options && !strncmp(argv[i], "--", 2))
			rc = read_option(s, argc, argv, &i);
		else
			plain[n++] = argv[i];
	}
	if (rc == EXIT_DONE && n == 0)
		rc = usage_error(s->cmd, "missing EXPR");
	s->expr = plain[0];
	for (int i = 1; i < n && rc == EXIT_DONE; i++)
		rc = add_input(s, plain[i]);
	free(plain);
	return rc;
}

/* The inputs as variables on the tape, named for pictures and for nb_parse. */
static int make_inputs(struct session *s)
{
	for (size_t i = 0; i < s->n; i++) {
		nb_tensor *x = nb_variable(s->t, s->in[i].rank, s->in[i].dim, s->in[i].data);

		nb_set_name(x, s->in[i].name);
		s->named[i] = (nb_parse_input){ s->in[i].name, x };
	}
	return nb_tape_status(s->t) == NB_OK ? EXIT_DONE : error("%s", nb_tape_message(s->t));
}

/* Every --const names an input. */
static int consts_known(const struct session *s)
{
	for (size_t j = 0; j < s->n_consts; j++) {
		size_t i = 0;

		while (i < s->n && strcmp(s->consts[j], s->in[i].name))
			i++;
		if (i == s->n)
			return error("--const %s: no input of that name", s->consts[j]);
	}
	return EXIT_DONE;
}

/* Read the arguments, make the inputs and record the expression on a new tape. */
static int session_open(struct session *s, const struct command *cmd, int argc, char **argv)
{
	nb_parse_loc at;
	int rc;

	memset(s, 0, sizeof *s);
	s->cmd = cmd;
	s->seed = 1;
	s->check.seed = 1;
	if ((rc = read_args(s, argc, argv)) != 0 || (rc = consts_known(s)) != 0)
		return rc;
	s->named = calloc(s->n + 1, sizeof *s->named);
	s->t = nb_tape_new();
	if (!s->named || !s->t)
		return error("out of memory");
	if ((rc = make_inputs(s)) != 0)
		return rc;
	s->y = nb_parse(s->t, s->expr, s->named, s->n, &at);
	if (s->y)
		return EXIT_DONE;
	error("%s", nb_tape_message(s->t));
	if (at.line)
		show_error_line(s->expr, &at);
	return EXIT_ERROR;
}

/* The seed of a backward sweep from y: NULL (1) for one element, else ones, so that the
 * gradients are those of the sum of y's elements. */
static nb_tensor *ones_seed(nb_tape *t, nb_tensor *y)
{
	size_t dim[NB_MAX_RANK];

	if (nb_size(y) == 1)
		return NULL;
	for (int i = 0; i < nb_rank(y); i++)
		dim[i] = nb_dim(y, i);
	return nb_fill(t, nb_rank(y), dim, 1.0);
}

/* ---- value ----------------------------------------------------------------------- */

static int cmd_value(const struct command *cmd, int argc, char **argv)
{
	struct session s;
	int rc = session_open(&s, cmd, argc, argv);

	if (rc == 0 && nb_print(stdout, s.y) != NB_OK)
		rc = EXIT_ERROR;
	session_close(&s);
	return finish_output(rc);
}

/* ---- grad ------------------------------------------------------------------------ */

/* The expression for nb_gradcheck(): parsed again on each fresh tape it is given, with
 * the check's variables under the inputs' names. */
struct recorder {
	const struct session *s;
	nb_parse_input *named;
};

static nb_tensor *record_expr(nb_tape *t, nb_tensor *const *inputs, size_t n, void *ud)
{
	struct recorder *r = ud;

	for (size_t i = 0; i < n; i++)
		r->named[i] = (nb_parse_input){ r->s->in[i].name, inputs[i] };
	return nb_parse(t, r->s->expr, r->named, n, NULL);
}

/* The gradient check of the session's expression at its inputs: 0 passed, 1 failed,
 * 2 did not run. */
static int check_gradients(const struct session *s)
{
	nb_gradcheck_input *gin = calloc(s->n + 1, sizeof *gin);
	struct recorder r = { s, calloc(s->n + 1, sizeof *r.named) };
	nb_gradcheck_opts opts = s->check;
	int mask[NB_GRADCHECK_MAX_INPUTS];
	nb_gradcheck_report rep;
	int rc;

	for (size_t i = 0; i < s->n && i < NB_GRADCHECK_MAX_INPUTS; i++) {
		mask[i] = 1;
		for (size_t j = 0; j < s->n_consts; j++)
			mask[i] &= strcmp(s->consts[j], s->in[i].name) != 0;
	}
	opts.mask = mask;
	if (!gin || !r.named) {
		free(gin);
		free(r.named);
		return error("out of memory");
	}
	for (size_t i = 0; i < s->n; i++)
		gin[i] = (nb_gradcheck_input){ s->in[i].rank, s->in[i].dim, s->in[i].data };
	printf("== gradient check\n");
	nb_gradcheck(record_expr, &r, gin, s->n, &opts, &rep);
	nb_gradcheck_print(stdout, &rep);
	if (rep.status != NB_OK)
		rc = error("the gradient check did not run: %s", rep.message);
	else
		rc = rep.passed ? EXIT_DONE : EXIT_CHECK_FAILED;
	free(gin);
	free(r.named);
	return rc;
}

/* The gradient of every input (of the sum of y's elements when y is not a scalar). */
static int print_gradients(const struct session *s)
{
	nb_tensor **x = calloc(s->n + 1, sizeof *x), **g = calloc(s->n + 1, sizeof *g);
	int rc = EXIT_DONE;

	if (!x || !g) {
		rc = error("out of memory");
	} else {
		for (size_t i = 0; i < s->n; i++)
			x[i] = s->named[i].x;
		if (nb_gradients(s->t, s->y, ones_seed(s->t, s->y), x, s->n, g) != NB_OK)
			rc = error("%s", nb_tape_message(s->t));
		for (size_t i = 0; rc == EXIT_DONE && i < s->n; i++) {
			printf("\n== gradient of %s\n", s->in[i].name);
			if (nb_print(stdout, g[i]) != NB_OK)
				rc = EXIT_ERROR;
		}
	}
	free(x);
	free(g);
	return rc;
}

static int cmd_grad(const struct command *cmd, int argc, char **argv)
{
	struct session s;
	int rc = session_open(&s, cmd, argc, argv);

	if (rc == 0 && s.n == 0)
		rc = usage_error(cmd, "no inputs to differentiate with respect to");
	if (rc == 0) {
		printf("== value%s\n", nb_size(s.y) == 1 ? ""
		       : " (not a scalar: the gradients are those of the sum of its elements)");
		if (nb_print(stdout, s.y) != NB_OK)
			rc = EXIT_ERROR;
	}
	if (rc == 0)
		rc = print_gradients(&s);
	if (rc == 0) {
		printf("\n");
		rc = check_gradients(&s);
	}
	session_close(&s);
	return finish_output(rc);
}

/* ---- dot ------------------------------------------------------------------------- */

static int cmd_dot(const struct command *cmd, int argc, char **argv)
{
	struct session s;
	int rc = session_open(&s, cmd, argc, argv);

	if (rc == 0 && nb_backward(s.t, s.y, ones_seed(s.t, s.y)) != NB_OK)
		rc = error("%s", nb_tape_message(s.t));
	if (rc == 0 && nb_tape_write_dot(s.t, stdout) != NB_OK)
		rc = EXIT_ERROR;
	session_close(&s);
	return finish_output(rc);
}

/* ---- jacobian, hessian ------------------------------------------------------------ */

/* The inputs' handles, and the total of their sizes. */
static nb_tensor **input_list(const struct session *s, size_t *total)
{
	nb_tensor **x = calloc(s->n + 1, sizeof *x);

	*total = 0;
	for (size_t i = 0; x && i < s->n; i++) {
		x[i] = s->named[i].x;
		*total += nb_size(x[i]);
	}
	return x;
}

/* Print rows x cols values as a matrix, in nb_print()'s format, after a title. */
static int print_matrix(const struct session *s, const char *title, size_t rows, size_t cols,
                        const double *m)
{
	nb_tensor *t = nb_constant(s->t, 2, (size_t[]){ rows, cols }, m);

	printf("== %s (%zu x %zu", title, rows, cols);
	for (size_t i = 0; i < s->n; i++)
		printf("%s%s: %zu", i ? ", " : "; columns: ", s->in[i].name, nb_size(s->named[i].x));
	printf(")\n");
	if (!t)
		return error("%s", nb_tape_message(s->t));
	return nb_print(stdout, t) == NB_OK ? EXIT_DONE : EXIT_ERROR;
}

/* The Jacobian (hessian == 0: one row per element of the value) or the Hessian of a
 * scalar value, the columns those of the inputs in order. */
static int derivative_matrix(const struct command *cmd, int argc, char **argv, int hessian)
{
	struct session s;
	int rc = session_open(&s, cmd, argc, argv);
	size_t total = 0, rows = 0;
	nb_tensor **x = NULL;
	double *m = NULL;

	if (rc == 0 && s.n == 0)
		rc = usage_error(cmd, "no inputs to differentiate with respect to");
	if (rc == 0 && hessian && nb_size(s.y) != 1)
		rc = error("hessian: the value of EXPR has %zu elements, not one", nb_size(s.y));
	if (rc == 0) {
		x = input_list(&s, &total);
		rows = hessian ? total : nb_size(s.y);
		m = x ? calloc(rows * total + 1, sizeof *m) : NULL;
		if (!m)
			rc = error("out of memory");
	}
	if (rc == 0 && (hessian ? nb_hessian(s.t, s.y, x, s.n, m)
	                        : nb_jacobian(s.t, s.y, x, s.n, m)) != NB_OK)
		rc = error("%s", nb_tape_message(s.t));
	if (rc == 0)
		rc = print_matrix(&s, hessian ? "Hessian" : "Jacobian", rows, total, m);
	free(m);
	free(x);
	session_close(&s);
	return finish_output(rc);
}

static int cmd_jacobian(const struct command *cmd, int argc, char **argv)
{
	return derivative_matrix(cmd, argc, argv, 0);
}

static int cmd_hessian(const struct command *cmd, int argc, char **argv)
{
	return derivative_matrix(cmd, argc, argv, 1);
}

/* ---- selftest -------------------------------------------------------------------- */

static double seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* nb_selftest() on the library this program runs with; -v lists every check. */
static int cmd_selftest(const struct command *cmd, int argc, char **argv)
{
	nb_selftest_report r;
	int verbose = argc == 1 && (!strcmp(argv[0], "-v") || !strcmp(argv[0], "--verbose"));
	double start;

	if (argc > 1 || (argc == 1 && !verbose))
		return usage_error(cmd, "takes no argument but -v");
	start = seconds();
	if (nb_selftest(NULL, 0, verbose ? stdout : NULL, &r) != NB_OK)
		return error("selftest did not run: %s", r.first_failure);
	printf("selftest: %s: %zu ops, %zu gradient checks (%zu values compared), %zu forward "
	       "against reverse, %zu edge values: %zu failures, %.2f s (nabla %s)\n",
	       r.passed ? "PASS" : "FAIL", r.ops, r.cases, r.comparisons, r.forward_reverse,
	       r.edges, r.failures, seconds() - start, nb_version());
	if (!r.passed)
		printf("first failure: %s\n", r.first_failure);
	return finish_output(r.passed ? EXIT_DONE : EXIT_CHECK_FAILED);
}

/* ---- help ------------------------------------------------------------------------ */

static const char inputs_help[] =
	"Inputs, NAME=VALUE (NAME as in EXPR):\n"
	"  2.5  [1,2,3]  [[1,2],[3,4]]   a number or a nested list of numbers\n"
	"  zeros(2,3)  ones(2)           filled with 0 or 1\n"
	"  rand(2,3)  randn(3,4)         uniform in [0, 1), standard normal (see --seed)\n"
	"  @PATH  file:PATH              numbers from a file, after an optional shape \"(2x3)\"\n"
	"\n"
	"Options:\n"
	"  --seed N         random inputs and the gradient check's random vectors (default 1)\n"
	"  --step H         grad: relative finite-difference step (default cbrt(DBL_EPSILON))\n"
	"  --levels L       grad: Richardson levels, 1 to 4 (default 2)\n"
	"  --atol A, --rtol R  grad: tolerances (defaults 1e-7, 1e-6)\n"
	"  --mode M         grad: auto, elements or directions (default auto)\n"
	"  --replay         grad: differences by replay of the recorded tape\n"
	"  --first-order    grad: skip the second-order check\n"
	"  --const NAME     grad: the input NAME is a constant, not checked (indices, data)\n"
	"  --               what follows is EXPR and inputs, even when it starts with --\n"
	"\n"
	"Exit status: 0 done (grad, selftest: the check passed), 1 the check failed,\n"
	"2 the command could not run (usage, expression, input or output error).\n"
	"The expression language and the inputs: docs/expressions.md.\n";

static int cmd_help(const struct command *cmd, int argc, char **argv);

static const struct command commands[] = {
	{ "value", "[--seed N] EXPR [NAME=VALUE]...", "print the value of EXPR", cmd_value },
	{ "grad", "[OPTIONS] EXPR NAME=VALUE...",
	  "print the value, the gradient of every input, and the gradient check", cmd_grad },
	{ "jacobian", "[--seed N] EXPR NAME=VALUE...",
	  "print the Jacobian of EXPR, one row per element, one column per input element",
	  cmd_jacobian },
	{ "hessian", "[--seed N] EXPR NAME=VALUE...",
	  "print the Hessian of EXPR (a scalar) over every input element", cmd_hessian },
	{ "dot", "[--seed N] EXPR [NAME=VALUE]...",
	  "print the graph of EXPR and its gradients as Graphviz DOT", cmd_dot },
	{ "selftest", "[-v]", "check every op of the library (-v: list every check)",
	  cmd_selftest },
	{ "help", "[COMMAND]", "print this help, or the usage of COMMAND", cmd_help },
};
static const size_t n_commands = sizeof commands / sizeof commands[0];

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < n_commands; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static void print_help(FILE *out)
{
	fprintf(out, "usage: %s COMMAND [--seed N] EXPR [NAME=VALUE]...\n\nCommands:\n", PROG);
	for (size_t i = 0; i < n_commands; i++)
		fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n%s", inputs_help);
}

/* help, or help COMMAND: its usage line and summary. */
static int cmd_help(const struct command *cmd, int argc, char **argv)
{
	const struct command *c;

	if (argc == 0) {
		print_help(stdout);
		return finish_output(EXIT_DONE);
	}
	if (argc > 1)
		return usage_error(cmd, "takes at most one COMMAND");
	if (!(c = find_command(argv[0])))
		return error("unknown command '%.64s' (%s help lists them)", argv[0], PROG);
	printf("usage: %s %s %s\n  %s\n", PROG, c->name, c->args, c->summary);
	return finish_output(EXIT_DONE);
}

int main(int argc, char **argv)
{
	const struct command *c;

	if (argc < 2) {
		print_help(stderr);
		return EXIT_ERROR;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		print_help(stdout);
		return finish_output(EXIT_DONE);
	}
	if (!strcmp(argv[1], "--version")) {
		printf("%s %s\n", PROG, nb_version());
		return finish_output(EXIT_DONE);
	}
	if (!(c = find_command(argv[1])))
		return error("unknown command '%.64s' (%s help lists them)", argv[1], PROG);
	return c->run(c, argc - 2, argv + 2);
}
