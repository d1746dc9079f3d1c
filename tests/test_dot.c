/* test_dot.c -- nb_tape_write_dot(): a write that fails, even one the stream's buffer
 * hides until it is flushed, is reported; a write that succeeds is all in the file when
 * the call returns. */
#define _POSIX_C_SOURCE 200809L /* fileno, pread */
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

/* A tape of three nodes, whose picture is a few hundred bytes: less than a stream's
 * buffer, so that a failing write shows only when the buffer is flushed. */
static nb_tape *small_tape(void)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 1, 2 });

	nb_set_name(x, "x");
	ck_assert_ptr_nonnull(nb_sigmoid(t, nb_neg(t, x)));
	return t;
}

/* /dev/full takes nothing: every write fails with ENOSPC. */
START_TEST(test_write_to_a_full_device_is_an_io_error)
{
	nb_tape *t = small_tape();
	FILE *f = fopen("/dev/full", "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(nb_tape_write_dot(t, f), NB_EIO);
	fclose(f);
	nb_tape_free(t);
}
END_TEST

/* The picture is in the file before the stream is closed: the call flushed it. */
START_TEST(test_written_picture_is_flushed)
{
	nb_tape *t = small_tape();
	FILE *f = tmpfile();
	char buf[4096];
	ssize_t n;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(nb_tape_write_dot(t, f), NB_OK);
	n = pread(fileno(f), buf, sizeof buf - 1, 0);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_ptr_nonnull(strstr(buf, "digraph nabla {"));
	ck_assert_ptr_nonnull(strstr(buf, "label=\"x\\nvariable (2)\""));
	ck_assert_int_eq(buf[n - 2], '}');
	fclose(f);
	nb_tape_free(t);
}
END_TEST

static Suite *dot_suite(void)
{
	Suite *s = suite_create("dot");
	TCase *tc = tcase_create("write");

	tcase_add_test(tc, test_write_to_a_full_device_is_an_io_error);
	tcase_add_test(tc, test_written_picture_is_flushed);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(dot_suite());
}
