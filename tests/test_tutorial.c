/* test_tutorial.c -- examples/tutorial refuses a data set it cannot use (its network
 * takes 28 x 28 images, two mini-batches of 10 of them) with a message, rather than read
 * past its buffers. The program is run as the user would run it (NABLA_TUTORIAL, set by
 * make check, is its path). */
#define _POSIX_C_SOURCE 200809L /* popen, mkdir */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define DIR "test_tutorial_data"
#define IMAGES DIR "/train-images-idx3-ubyte"
#define LABELS DIR "/train-labels-idx1-ubyte"

static void put_be32(FILE *f, unsigned v)
{
	unsigned char b[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16),
	                       (unsigned char)(v >> 8), (unsigned char)v };

	ck_assert_uint_eq(fwrite(b, 1, 4, f), 4);
}

/* A training split of n images of rows x cols pixels, every label 1. */
static void write_split(unsigned n, unsigned rows, unsigned cols)
{
	FILE *im = fopen(IMAGES, "wb"), *lb = fopen(LABELS, "wb");

	ck_assert_ptr_nonnull(im);
	ck_assert_ptr_nonnull(lb);
	put_be32(im, 0x803);
	put_be32(im, n);
	put_be32(im, rows);
	put_be32(im, cols);
	for (unsigned long i = 0; i < (unsigned long)n * rows * cols; i++)
		fputc((int)(i % 256), im);
	put_be32(lb, 0x801);
	put_be32(lb, n);
	for (unsigned i = 0; i < n; i++)
		fputc(1, lb);
	ck_assert_int_eq(fclose(im), 0);
	ck_assert_int_eq(fclose(lb), 0);
}

static void remove_split(void)
{
	remove(IMAGES);
	remove(LABELS);
	rmdir(DIR);
}

/* Run the tutorial on DIR: its exit status, and what it wrote (stdout and stderr). */
static int run_tutorial(char *out, size_t size)
{
	const char *prog = getenv("NABLA_TUTORIAL");
	char cmd[4096];
	FILE *p;
	size_t n;
	int status;

	ck_assert_msg(prog != NULL, "NABLA_TUTORIAL is unset: run through make check, or set it "
	              "to the path of examples/tutorial");
	snprintf(cmd, sizeof cmd, "'%s' --data %s 2>&1", prog, DIR);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	n = fread(out, 1, size - 1, p);
	out[n] = '\0';
	status = pclose(p);
	ck_assert_msg(WIFEXITED(status), "the tutorial did not exit: %s", out);
	return WEXITSTATUS(status);
}

static const struct {
	unsigned n, rows, cols;
	const char *want;
} bad_sets[] = {
	{ 30, 2, 3, "tutorial: the images of " DIR " are 2 x 3; this network takes 28 x 28\n" },
	{ 30, 784, 1, "tutorial: the images of " DIR " are 784 x 1; this network takes "
	  "28 x 28\n" },
	{ 19, 28, 28, "tutorial: " DIR " has 19 training images; this program takes two "
	  "mini-batches of 10\n" },
};

START_TEST(test_unusable_data_set_is_refused)
{
	char out[4096];

	remove_split();
	ck_assert_int_eq(mkdir(DIR, 0755), 0);
	write_split(bad_sets[_i].n, bad_sets[_i].rows, bad_sets[_i].cols);
	ck_assert_int_eq(run_tutorial(out, sizeof out), 1);
	ck_assert_str_eq(out, bad_sets[_i].want);
	remove_split();
}
END_TEST

static Suite *tutorial_suite(void)
{
	Suite *s = suite_create("tutorial");
	TCase *tc = tcase_create("data");

	tcase_add_loop_test(tc, test_unusable_data_set_is_refused, 0,
	                    (int)(sizeof bad_sets / sizeof bad_sets[0]));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(tutorial_suite());
}
