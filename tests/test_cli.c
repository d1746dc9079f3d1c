/* test_cli.c -- the nabla command, run as a user runs it (NABLA_CLI, set by make check,
 * is its path): exit statuses, the lines that matter on stdout, the messages on stderr.
 * Expected numbers are worked out by hand. */
#define _POSIX_C_SOURCE 200809L /* popen */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "helpers.h"

#define ERR_FILE "test_cli.stderr"
#define OUT_MAX 65536

struct run {
	int status;         /* the exit status */
	char out[OUT_MAX];  /* stdout */
	char err[OUT_MAX];  /* stderr */
};

static void read_file(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");
	size_t n;

	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, size - 1, f);
	buf[n] = '\0';
	fclose(f);
}

/* Run the command with args (shell words, quoted by the caller). */
static void run_nabla(struct run *r, const char *args)
{
	const char *prog = getenv("NABLA_CLI");
	char cmd[4096];
	FILE *p;
	size_t n;
	int status;

	ck_assert_msg(prog != NULL, "NABLA_CLI is unset: run through make check, or set it to "
	              "the path of cli/nabla");
	snprintf(cmd, sizeof cmd, "'%s' %s 2>" ERR_FILE, prog, args);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	n = fread(r->out, 1, sizeof r->out - 1, p);
	r->out[n] = '\0';
	status = pclose(p);
	ck_assert_msg(WIFEXITED(status), "nabla %s did not exit", args);
	r->status = WEXITSTATUS(status);
	read_file(ERR_FILE, r->err, sizeof r->err);
	remove(ERR_FILE);
}

/* out holds line as a whole line. */
static int has_line(const char *out, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = strstr(out, line); p; p = strstr(p + 1, line))
		if ((p == out || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
			return 1;
	return 0;
}

#define ASSERT_LINE(r, line) \
	ck_assert_msg(has_line((r)->out, line), "no line '%s' in:\n%s", line, (r)->out)

/* sum(x * x) at (1, 2, 3) is 14, its gradient 2x; the check passes. */
START_TEST(test_grad_passes)
{
	static struct run r;

	run_nabla(&r, "grad 'sum(x * x)' 'x=[1, 2, 3]'");
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.err, "");
	ASSERT_LINE(&r, "== value");
	ASSERT_LINE(&r, "14.");
	ASSERT_LINE(&r, "== gradient of x");
	ASSERT_LINE(&r, "[2. 4. 6.]");
	ASSERT_LINE(&r, "== gradient check");
	ASSERT_LINE(&r, "gradcheck: PASS");
}
END_TEST

/* Two inputs, one of them random and a matrix product: every input gets its gradient,
 * in command-line order, and the check passes. The gradient of sum(w @ x) with respect
 * to w is the row sums of x repeated, 2 for x of ones. */
START_TEST(test_grad_of_matrix_expression)
{
	static struct run r;
	const char *w, *x;

	run_nabla(&r, "grad 'sum(w @ x)' 'w=randn(2,3)' 'x=ones(3,2)' --seed 5");
	ck_assert_int_eq(r.status, 0);
	w = strstr(r.out, "== gradient of w\n");
	x = strstr(r.out, "== gradient of x\n");
	ck_assert_ptr_nonnull(w);
	ck_assert_ptr_nonnull(x);
	ck_assert_msg(w < x, "the gradient of w comes after that of x");
	ASSERT_LINE(&r, "[[2. 2. 2.]");
	ASSERT_LINE(&r, " [2. 2. 2.]]");
	ASSERT_LINE(&r, "gradcheck: PASS");
}
END_TEST

/* relu has a kink at 0, where central differences see a slope of 1/2 and the gradient
 * is 0: reported as such, not as a failure. */
START_TEST(test_grad_reports_a_kink)
{
	static struct run r;

	run_nabla(&r, "grad --first-order 'sum(relu(x))' 'x=zeros(3)'");
	ck_assert_int_eq(r.status, 0);
	ASSERT_LINE(&r, "gradcheck: PASS");
	ASSERT_LINE(&r, "[0. 0. 0.]");
	ck_assert_ptr_nonnull(strstr(r.out, "3 checked, 0 failed, 3 at a kink"));
}
END_TEST

/* With a step of 0.5 and no extrapolation, the differences of exp are 4% to 17% off: the
 * check fails, and the status says so. */
START_TEST(test_grad_check_fails_with_a_coarse_step)
{
	static struct run r;

	run_nabla(&r, "grad --step 0.5 --levels=1 --first-order 'sum(exp(x))' 'x=[0, 1, 2]'");
	ck_assert_int_eq(r.status, 1);
	ASSERT_LINE(&r, "gradcheck: FAIL");
	ck_assert_ptr_nonnull(strstr(r.out, "step 0.5 max(1, |x|), 1 Richardson level,"));
	ck_assert_ptr_nonnull(strstr(r.out, "    worst: input 0 element 2: analytic 7.389"));
	/* the same by replay, and with a tolerance wide enough: passes */
	run_nabla(&r, "grad --step 0.5 --levels=1 --replay --atol 2 --mode elements 'sum(exp(x))' "
	    "'x=[0, 1, 2]'");
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "mode          elements, by replay,"));
}
END_TEST

/* An embedding lookup: the indices are data, not checked (--const); each row's gradient
 * is the sum over the times its index appears: 2 w1 twice and 2 w0 once. */
START_TEST(test_grad_with_a_constant_input)
{
	static struct run r;

	run_nabla(&r, "grad 'sum(gather_rows(w, i) * gather_rows(w, i))' 'w=[[1, 2], [3, 4]]' "
	          "'i=[1, 1, 0]' --const i");
	ck_assert_int_eq(r.status, 0);
	ASSERT_LINE(&r, "[[ 2.  4.]");
	ASSERT_LINE(&r, " [12. 16.]]");
	ASSERT_LINE(&r, "gradcheck: PASS");
	run_nabla(&r, "grad 'sum(x)' 'x=[1]' --const y");
	ck_assert_int_eq(r.status, 2);
	ck_assert_str_eq(r.err, "nabla: --const y: no input of that name\n");
}
END_TEST

START_TEST(test_grad_options_refused)
{
	static struct run r;

	run_nabla(&r, "grad --levels 5 'sum(x)' 'x=[1]'");
	ck_assert_int_eq(r.status, 2);
	ck_assert_str_eq(r.err, "nabla: grad: --levels takes 1, 2, 3 or 4\n"
	                 "usage: nabla grad [OPTIONS] EXPR NAME=VALUE...\n");
	run_nabla(&r, "grad --step -1 'sum(x)' 'x=[1]'");
	ck_assert_int_eq(r.status, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "nabla: grad: --step takes a non-negative number\n"));
	run_nabla(&r, "grad --atol=abc 'sum(x)' 'x=[1]'");
	ck_assert_ptr_nonnull(strstr(r.err, "nabla: grad: --atol takes a non-negative number\n"));
	run_nabla(&r, "grad --mode sideways 'sum(x)' 'x=[1]'");
	ck_assert_ptr_nonnull(strstr(r.err, "nabla: grad: --mode is auto, elements or directions\n"));
	run_nabla(&r, "grad --replay=1 'sum(x)' 'x=[1]'");
	ck_assert_ptr_nonnull(strstr(r.err, "nabla: grad: --replay takes no value\n"));
	run_nabla(&r, "grad 'sum(x)' 'x=[1]' --rtol");
	ck_assert_ptr_nonnull(strstr(r.err, "nabla: grad: --rtol needs a value\n"));
}
END_TEST

/* The column sums of x^3: row j of the Jacobian is 3 x^2 on column j's elements. */
START_TEST(test_jacobian_and_hessian)
{
	static struct run r;

	run_nabla(&r, "jacobian 'sum(x * x * x, axis=0)' 'x=[[1, 2], [3, 4]]'");
	ck_assert_int_eq(r.status, 0);
	ASSERT_LINE(&r, "== Jacobian (2 x 4; columns: x: 4)");
	ASSERT_LINE(&r, "[[ 3.  0. 27.  0.]");
	ASSERT_LINE(&r, " [ 0. 12.  0. 48.]]");
	/* d2/dx2 of sum(x^3) is 6x on the diagonal; the mixed term of x y is 1 */
	run_nabla(&r, "hessian 'sum(x * x * x) + sum(x * y)' 'x=[1, 2]' 'y=[5]'");
	ck_assert_int_eq(r.status, 0);
	ASSERT_LINE(&r, "== Hessian (3 x 3; columns: x: 2, y: 1)");
	ASSERT_LINE(&r, "[[ 6.  0.  1.]");
	ASSERT_LINE(&r, " [ 0. 12.  1.]");
	ASSERT_LINE(&r, " [ 1.  1.  0.]]");
	run_nabla(&r, "hessian 'x * x' 'x=[1, 2]'");
	ck_assert_int_eq(r.status, 2);
	ck_assert_str_eq(r.err, "nabla: hessian: the value of EXPR has 2 elements, not one\n");
	run_nabla(&r, "jacobian '1 + 2'");
	ck_assert_int_eq(r.status, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "no inputs to differentiate with respect to"));
}
END_TEST

START_TEST(test_selftest)
{
	static struct run r;

	run_nabla(&r, "selftest");
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(strncmp(r.out, "selftest: PASS: ", 16) == 0, "%s", r.out);
	ck_assert_ptr_nonnull(strstr(r.out, " 0 failures, "));
	run_nabla(&r, "selftest -v");
	ck_assert_int_eq(r.status, 0);
	ASSERT_LINE(&r, "ok   add: gradient check, first and second order");
	run_nabla(&r, "selftest now");
	ck_assert_int_eq(r.status, 2);
	ck_assert_ptr_nonnull(strstr(r.err, "nabla: selftest: takes no argument but -v\n"));
}
END_TEST

/* A value that is not a scalar: its gradients are those of the sum of its elements. */
START_TEST(test_grad_of_non_scalar)
{
	static struct run r;

	run_nabla(&r, "grad '3 * x' 'x=[1, 2]'");
	ck_assert_int_eq(r.status, 0);
	ASSERT_LINE(&r, "== value (not a scalar: the gradients are those of the sum of its "
	            "elements)");
	ASSERT_LINE(&r, "[3. 6.]");
	ASSERT_LINE(&r, "[3. 3.]");
}
END_TEST

START_TEST(test_grad_needs_inputs)
{
	static struct run r;

	run_nabla(&r, "grad '1 + 2'");
	ck_assert_int_eq(r.status, 2);
	ck_assert_str_eq(r.err, "nabla: grad: no inputs to differentiate with respect to\n"
	                 "usage: nabla grad [OPTIONS] EXPR NAME=VALUE...\n");
}
END_TEST

/* The message, the line of the expression, and a caret under the column; nothing on
 * stdout. */
START_TEST(test_parse_error_points_at_column)
{
	static struct run r;

	run_nabla(&r, "value 'sigmoid(x) + sigmod(x)' x=1");
	ck_assert_int_eq(r.status, 2);
	ck_assert_str_eq(r.out, "");
	ck_assert_str_eq(r.err, "nabla: 1:14: unknown function 'sigmod'\n"
	                 "  sigmoid(x) + sigmod(x)\n"
	                 "               ^\n");
}
END_TEST

START_TEST(test_op_error_points_at_operator)
{
	static struct run r;

	run_nabla(&r, "value 'a @ a' 'a=ones(2,3)'");
	ck_assert_int_eq(r.status, 2);
	ck_assert_msg(strncmp(r.err, "nabla: 1:3: matmul: ", 20) == 0, "%s", r.err);
	ck_assert_ptr_nonnull(strstr(r.err, "\n  a @ a\n    ^\n"));
}
END_TEST

static const struct {
	const char *args;
	const char *err;
} bad_inputs[] = {
	{ "value x 'x=randn(3,,4)'",
	  "nabla: x=randn(3,,4): 1:11: expected a dimension (a positive integer), found ','\n" },
	{ "value x 'x=[[1,2],[3]]'",
	  "nabla: x=[[1,2],[3]]: 1:10: ragged list: 1 item here, 2 in the first list at this "
	  "depth\n" },
	{ "value x 'x=[[1,2],3]'", "nabla: x=[[1,2],3]: 1:10: expected '[', found '3'\n" },
	{ "value x 'x=[1,[2]]'", "nabla: x=[1,[2]]: 1:6: expected a number, found '['\n" },
	{ "value x 'x=[]'", "nabla: x=[]: 1:4: empty list\n" },
	{ "value x 'x=[[[[[1]]]]]'", "nabla: x=[[[[[1]]]]]: 1:7: lists nested deeper than 4 "
	  "levels\n" },
	{ "value x 'x=zeros(2,3,4,5,6)'", "nabla: x=zeros(2,3,4,5,6): 1:17: expected ')' (at "
	  "most 4 dimensions), found '6'\n" },
	{ "value x 'x=zeros(0)'", "nabla: x=zeros(0): 1:9: expected a dimension (a positive "
	  "integer), found '0'\n" },
	{ "value x 'x=ones(4096,4096,4096)'", "nabla: x=ones(4096,4096,4096): 1:3: more than "
	  "16777216 elements\n" },
	{ "value x 'x=fives(2)'", "nabla: x=fives(2): 1:3: unknown generator 'fives' (zeros, "
	  "ones, rand, randn)\n" },
	{ "value x 'x=0x10'", "nabla: x=0x10: 1:4: unexpected 'x10' after the value\n" },
	{ "value x 'x=1e999'", "nabla: x=1e999: 1:3: number '1e999' is too large for a "
	  "double\n" },
	{ "value x 'x=1e'", "nabla: x=1e: 1:3: malformed number '1e'\n" },
	{ "value x 'x='", "nabla: x=: 1:3: expected a number, found end of input\n" },
	{ "value x x", "nabla: x: an input is NAME=VALUE, NAME letters, digits and _ (not "
	  "first)\n" },
	{ "value x 2x=1", "nabla: 2x=1: an input is NAME=VALUE, NAME letters, digits and _ "
	  "(not first)\n" },
	{ "value x x=1 x=2", "nabla: input 'x' is given twice\n" },
	{ "value x x=@test_cli_no_such_file", "nabla: x=@test_cli_no_such_file: 1:3: cannot "
	  "open test_cli_no_such_file: No such file or directory\n" },
};

/* A bad NAME=VALUE: exit status 2 and a message with the column in the argument. */
START_TEST(test_bad_input_spec)
{
	static struct run r;

	run_nabla(&r, bad_inputs[_i].args);
	ck_assert_int_eq(r.status, 2);
	ck_assert_str_eq(r.out, "");
	ck_assert_str_eq(r.err, bad_inputs[_i].err);
}
END_TEST

START_TEST(test_value)
{
	static struct run r;

	run_nabla(&r, "value 'a @ b - 1' 'a=[[1, 2], [3, 4]]' 'b=[[1], [-1]]'");
	ck_assert_int_eq(r.status, 0);
	ASSERT_LINE(&r, "[[-2.]");
	ASSERT_LINE(&r, " [-2.]]");
	run_nabla(&r, "value '2.5 * s' s=-2");
	ck_assert_int_eq(r.status, 0);
	ASSERT_LINE(&r, "-5.");
}
END_TEST

/* Options anywhere before "--"; after it, an expression may start with "--". */
START_TEST(test_double_dash)
{
	static struct run r;

	run_nabla(&r, "value -- --x x=3");
	ck_assert_int_eq(r.status, 0);
	ASSERT_LINE(&r, "3.");
	run_nabla(&r, "value --x x=3");
	ck_assert_int_eq(r.status, 2);
	ck_assert_str_eq(r.err, "nabla: value: unknown option '--x'\n"
	                 "usage: nabla value [--seed N] EXPR [NAME=VALUE]...\n");
}
END_TEST

/* A file: an optional shape, numbers, comments; errors give the line and column in it. */
START_TEST(test_file_input)
{
	static struct run r;
	FILE *f = fopen("test_cli_m.txt", "w");

	ck_assert_ptr_nonnull(f);
	fputs("# a matrix\n(2x2)\n1 2\n3 4  # the second row\n", f);
	ck_assert_int_eq(fclose(f), 0);
	run_nabla(&r, "value 'x.T' x=@test_cli_m.txt");
	ck_assert_int_eq(r.status, 0);
	ASSERT_LINE(&r, "[[1. 3.]");
	ASSERT_LINE(&r, " [2. 4.]]");
	run_nabla(&r, "value 'sum(x)' x=file:test_cli_m.txt");
	ck_assert_int_eq(r.status, 0);
	ASSERT_LINE(&r, "10.");

	f = fopen("test_cli_m.txt", "w");
	ck_assert_ptr_nonnull(f);
	fputs("1 2\n3 abc\n", f);
	ck_assert_int_eq(fclose(f), 0);
	run_nabla(&r, "value x x=@test_cli_m.txt");
	ck_assert_int_eq(r.status, 2);
	ck_assert_str_eq(r.err, "nabla: x=@test_cli_m.txt: test_cli_m.txt:2:3: expected a "
	                 "number, found 'abc'\n");

	f = fopen("test_cli_m.txt", "w");
	ck_assert_ptr_nonnull(f);
	fputs("(2x2) 1 2 3\n", f);
	ck_assert_int_eq(fclose(f), 0);
	run_nabla(&r, "value x x=@test_cli_m.txt");
	ck_assert_int_eq(r.status, 2);
	ck_assert_str_eq(r.err, "nabla: x=@test_cli_m.txt: test_cli_m.txt:1:1: the shape (2x2) "
	                 "holds 4 numbers, the file 3\n");

	f = fopen("test_cli_m.txt", "w");
	ck_assert_ptr_nonnull(f);
	fputs("5 6 7", f);
	ck_assert_int_eq(fclose(f), 0);
	run_nabla(&r, "value 'x' x=@test_cli_m.txt");
	ck_assert_int_eq(r.status, 0);
	ASSERT_LINE(&r, "variable x (3)");
	ASSERT_LINE(&r, "[5. 6. 7.]");
	remove("test_cli_m.txt");
}
END_TEST

/* The same seed gives the same values; another seed, others. */
START_TEST(test_seed)
{
	static struct run r1, r2, r3;

	run_nabla(&r1, "value x 'x=randn(4)' --seed 7");
	run_nabla(&r2, "value --seed=7 x 'x=randn(4)'");
	run_nabla(&r3, "value x 'x=randn(4)' --seed 8");
	ck_assert_int_eq(r1.status, 0);
	ck_assert_int_eq(r3.status, 0);
	ck_assert_str_eq(r1.out, r2.out);
	ck_assert_str_ne(r1.out, r3.out);
	run_nabla(&r1, "value x x=1 --seed");
	ck_assert_int_eq(r1.status, 2);
	run_nabla(&r1, "value x x=1 --seed -3");
	ck_assert_int_eq(r1.status, 2);
}
END_TEST

/* The graph after a backward sweep: the forward nodes, the gradient nodes, and the
 * gradient of the named input labelled dC/dx. */
START_TEST(test_dot)
{
	static struct run r;

	run_nabla(&r, "dot 'sigmoid(x)' x=0.5");
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.err, "");
	ck_assert_msg(strncmp(r.out, "digraph nabla {", 15) == 0, "%s", r.out);
	ck_assert_ptr_nonnull(strstr(r.out, "sigmoid"));
	ck_assert_ptr_nonnull(strstr(r.out, "dC/dx"));
	ck_assert_ptr_nonnull(strstr(r.out, "}\n"));
}
END_TEST

START_TEST(test_help_and_version)
{
	static struct run r;
	char want[64];

	run_nabla(&r, "--version");
	ck_assert_int_eq(r.status, 0);
	snprintf(want, sizeof want, "nabla %s\n", nb_version());
	ck_assert_str_eq(r.out, want);
	run_nabla(&r, "help");
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(strncmp(r.out, "usage: nabla COMMAND", 20) == 0, "%s", r.out);
	for (int i = 0; i < 7; i++) {
		static const char *const cmds[] = { "  value ", "  grad ", "  jacobian ",
			                            "  hessian ", "  dot ", "  selftest ",
			                            "  help " };

		ck_assert_msg(strstr(r.out, cmds[i]) != NULL, "%s not in %s", cmds[i], r.out);
	}
	run_nabla(&r, "--help");
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(strncmp(r.out, "usage: nabla COMMAND", 20) == 0, "%s", r.out);
	run_nabla(&r, "help grad");
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(strncmp(r.out, "usage: nabla grad ", 18) == 0, "%s", r.out);
	run_nabla(&r, "");
	ck_assert_int_eq(r.status, 2);
	ck_assert_str_eq(r.out, "");
	ck_assert_msg(strncmp(r.err, "usage: nabla COMMAND", 20) == 0, "%s", r.err);
	run_nabla(&r, "frobnicate");
	ck_assert_int_eq(r.status, 2);
	ck_assert_str_eq(r.err, "nabla: unknown command 'frobnicate' (nabla help lists them)\n");
	run_nabla(&r, "help frobnicate");
	ck_assert_int_eq(r.status, 2);
	run_nabla(&r, "value");
	ck_assert_int_eq(r.status, 2);
	ck_assert_str_eq(r.err, "nabla: value: missing EXPR\n"
	                 "usage: nabla value [--seed N] EXPR [NAME=VALUE]...\n");
}
END_TEST

/* Output that cannot be written is an error, not a silent success. */
START_TEST(test_output_error)
{
	static struct run r;

	run_nabla(&r, "value 'x + 1' 'x=[1, 2]' > /dev/full");
	ck_assert_int_eq(r.status, 2);
	ck_assert_msg(strncmp(r.err, "nabla: cannot write the output", 30) == 0, "%s", r.err);
}
END_TEST

static Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("cli");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_grad_passes);
	tcase_add_test(tc, test_grad_of_matrix_expression);
	tcase_add_test(tc, test_grad_reports_a_kink);
	tcase_add_test(tc, test_grad_check_fails_with_a_coarse_step);
	tcase_add_test(tc, test_grad_options_refused);
	tcase_add_test(tc, test_grad_with_a_constant_input);
	tcase_add_test(tc, test_jacobian_and_hessian);
	tcase_add_test(tc, test_selftest);
	tcase_add_test(tc, test_grad_of_non_scalar);
	tcase_add_test(tc, test_grad_needs_inputs);
	tcase_add_test(tc, test_parse_error_points_at_column);
	tcase_add_test(tc, test_op_error_points_at_operator);
	tcase_add_loop_test(tc, test_bad_input_spec, 0,
	                    (int)(sizeof bad_inputs / sizeof bad_inputs[0]));
	tcase_add_test(tc, test_value);
	tcase_add_test(tc, test_double_dash);
	tcase_add_test(tc, test_file_input);
	tcase_add_test(tc, test_seed);
	tcase_add_test(tc, test_dot);
	tcase_add_test(tc, test_help_and_version);
	tcase_add_test(tc, test_output_error);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(cli_suite());
}
