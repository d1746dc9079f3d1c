/* test_mnist.c -- examples/mnist --net conv, run as a user runs it (NABLA_MNIST, set by
 * make check, is its path): Nielsen's chapter-6 network is built, trains an epoch on a
 * few digits, saves itself, and loads back to the same accuracy; bad values of its
 * options are refused with their messages. */
#define _POSIX_C_SOURCE 200809L /* popen */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "helpers.h"

#define MODEL "test_mnist.nbm"

/* Run mnist with args; its output (stdout and stderr) into out; returns its exit status. */
static int run_mnist(const char *args, char *out, size_t size)
{
	const char *prog = getenv("NABLA_MNIST");
	char cmd[4096];
	size_t len = 0, got;
	int status;
	FILE *p;

	ck_assert_msg(prog != NULL, "NABLA_MNIST is unset: run through make check, or set it to "
	              "the path of examples/mnist");
	snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", prog, args);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	while (len + 1 < size && (got = fread(out + len, 1, size - 1 - len, p)) > 0)
		len += got;
	out[len] = '\0';
	status = pclose(p);
	ck_assert_msg(WIFEXITED(status), "mnist did not exit");
	return WEXITSTATUS(status);
}

/* The number right in the line starting with prefix ("Epoch 1: "), or -1. */
static long right_after(const char *out, const char *prefix)
{
	const char *at = strstr(out, prefix);

	return at ? strtol(at + strlen(prefix), NULL, 10) : -1;
}

START_TEST(test_conv_net_trains_saves_and_loads)
{
	static char out[16384], again[16384];
	long trained, loaded;

	ck_assert_int_eq(run_mnist("--net conv --epochs 1 --train-limit 200 --test-limit 100 "
	                           "--save " MODEL, out, sizeof out), 0);
	ck_assert_msg(strstr(out, "nabla: conv 5x5x20 relu, max-pool 2, conv 5x5x40 relu, "
	                     "max-pool 2, dense 100 relu, dense 10 softmax, log-likelihood cost, "
	                     "batch 10, eta 0.03, lambda 0.1, 1 epoch") != NULL, "%s", out);
	trained = right_after(out, "Epoch 1: ");
	ck_assert_msg(trained >= 0 && trained <= 100, "%s", out);
	ck_assert_ptr_nonnull(strstr(out, " / 100, cost "));
	ck_assert_int_eq(run_mnist("--load " MODEL " --epochs 0 --test-limit 100", again,
	                           sizeof again), 0);
	loaded = right_after(again, "Epoch 0: ");
	ck_assert_msg(loaded == trained, "trained %ld, loaded %ld: %s", trained, loaded, again);
	remove(MODEL);
}
END_TEST

static const struct {
	const char *args, *msg;
} bad[] = {
	{ "--net cnn", "mnist: --net: invalid value 'cnn': expected conv\n" },
	{ "--net conv --dropout 1", "mnist: --dropout: invalid value '1': expected a number from "
	  "0 to less than 1\n" },
};

START_TEST(test_bad_options)
{
	char out[4096];

	ck_assert_int_eq(run_mnist(bad[_i].args, out, sizeof out), 2);
	ck_assert_msg(strncmp(out, bad[_i].msg, strlen(bad[_i].msg)) == 0, "%s", out);
}
END_TEST

static Suite *mnist_suite(void)
{
	Suite *s = suite_create("mnist");
	TCase *tc = tcase_create("conv");

	tcase_add_test(tc, test_conv_net_trains_saves_and_loads);
	tcase_add_loop_test(tc, test_bad_options, 0, (int)(sizeof bad / sizeof bad[0]));
	tcase_set_timeout(tc, 300);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(mnist_suite());
}
