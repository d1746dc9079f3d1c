/* test_print.c -- nb_print(): the exact text for every rank, alignment, wrapping, the
 * two notations, non-finite values, elided large tensors, names, and the statuses of
 * NULL arguments and write errors. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "nabla.h"

/* Large enough for every text printed below. */
#define TEXT_MAX 8192

/* What nb_print() writes for x, through a temporary file; the call must succeed. */
static const char *printed(const nb_tensor *x)
{
	static char buf[TEXT_MAX];
	FILE *f = tmpfile();
	size_t len;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(nb_print(f, x), NB_OK);
	rewind(f);
	len = fread(buf, 1, sizeof buf - 1, f);
	buf[len] = '\0';
	fclose(f);
	return buf;
}

/* A constant of the given shape holding first, first + step, first + 2 step, ... */
static nb_tensor *counting(nb_tape *t, int rank, const size_t *dim, double first, double step)
{
	static double v[2000];
	nb_tensor *x;
	size_t n = 1;

	for (int i = 0; i < rank; i++)
		n *= dim[i];
	ck_assert_uint_le(n, sizeof v / sizeof v[0]);
	for (size_t i = 0; i < n; i++)
		v[i] = first + step * (double)i;
	x = nb_constant(t, rank, dim, v);
	ck_assert_ptr_nonnull(x);
	return x;
}

/* ---- Shapes ------------------------------------------------------------------------ */

START_TEST(test_scalar_is_one_number)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, (size_t[]){ 2 }, (double[]){ 0.1, 0.2 });

	ck_assert_str_eq(printed(nb_scalar(t, 2.5)), "fill ()\n2.5\n");
	ck_assert_str_eq(printed(nb_scalar(t, -3)), "fill ()\n-3.\n");
	ck_assert_str_eq(printed(nb_quadratic_cost(t, x, nb_fill(t, 1, (size_t[]){ 2 }, 0))),
	                 "quadratic_cost ()\n0.025\n");
	ck_assert_str_eq(printed(nb_scalar(t, 1.0 / 3)), "fill ()\n0.333333\n");
	nb_tape_free(t);
}
END_TEST

START_TEST(test_vector_is_one_row)
{
	nb_tape *t = nb_tape_new();

	ck_assert_str_eq(printed(counting(t, 1, (size_t[]){ 4 }, 1, 1)),
	                 "constant (4)\n[1. 2. 3. 4.]\n");
	ck_assert_str_eq(printed(counting(t, 1, (size_t[]){ 1 }, 0.5, 0)),
	                 "constant (1)\n[0.5]\n");
	ck_assert_str_eq(printed(nb_constant(t, 1, (size_t[]){ 3 },
	                                     (double[]){ 3.14159265358979, 2.71828182845905, 1.0 / 3 })),
	                 "constant (3)\n[3.14159  2.71828  0.333333]\n");
	nb_tape_free(t);
}
END_TEST

/* Points line up: whole parts padded on the left, fractions with spaces on the right. */
START_TEST(test_matrix_columns_align_on_the_point)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_constant(t, 2, (size_t[]){ 2, 3 },
	                           (double[]){ 1, -2.5, 3, -0.25, 10, 6 });

	ck_assert_str_eq(printed(x), "constant (2x3)\n"
	                             "[[ 1.   -2.5   3.  ]\n"
	                             " [-0.25 10.    6.  ]]\n");
	ck_assert_str_eq(printed(counting(t, 2, (size_t[]){ 1, 1 }, 5, 0)),
	                 "constant (1x1)\n[[5.]]\n");
	nb_tape_free(t);
}
END_TEST

/* A blank line between matrices. */
START_TEST(test_rank3_separates_matrices)
{
	nb_tape *t = nb_tape_new();

	ck_assert_str_eq(printed(counting(t, 3, (size_t[]){ 2, 3, 4 }, 0, 0.5)),
	                 "constant (2x3x4)\n"
	                 "[[[ 0.   0.5  1.   1.5]\n"
	                 "  [ 2.   2.5  3.   3.5]\n"
	                 "  [ 4.   4.5  5.   5.5]]\n"
	                 "\n"
	                 " [[ 6.   6.5  7.   7.5]\n"
	                 "  [ 8.   8.5  9.   9.5]\n"
	                 "  [10.  10.5 11.  11.5]]]\n");
	nb_tape_free(t);
}
END_TEST

/* Two blank lines between the rank-3 blocks, one between their matrices. */
START_TEST(test_rank4_nests_four_levels)
{
	nb_tape *t = nb_tape_new();

	ck_assert_str_eq(printed(counting(t, 4, (size_t[]){ 2, 2, 2, 2 }, -8, 1)),
	                 "constant (2x2x2x2)\n"
	                 "[[[[-8. -7.]\n"
	                 "   [-6. -5.]]\n"
	                 "\n"
	                 "  [[-4. -3.]\n"
	                 "   [-2. -1.]]]\n"
	                 "\n"
	                 "\n"
	                 " [[[ 0.  1.]\n"
	                 "   [ 2.  3.]]\n"
	                 "\n"
	                 "  [[ 4.  5.]\n"
	                 "   [ 6.  7.]]]]\n");
	nb_tape_free(t);
}
END_TEST

/* A row that would pass column 75 goes on under its first value. */
START_TEST(test_long_row_wraps)
{
	nb_tape *t = nb_tape_new();

	ck_assert_str_eq(printed(counting(t, 1, (size_t[]){ 30 }, 0.125, 1)),
	                 "constant (30)\n"
	                 "[ 0.125  1.125  2.125  3.125  4.125  5.125  6.125  7.125  8.125  9.125\n"
	                 " 10.125 11.125 12.125 13.125 14.125 15.125 16.125 17.125 18.125 19.125\n"
	                 " 20.125 21.125 22.125 23.125 24.125 25.125 26.125 27.125 28.125 29.125]\n");
	nb_tape_free(t);
}
END_TEST

/* ---- Notation ---------------------------------------------------------------------- */

/* Exponential when a value is below 1e-4 or from 1e6 on, or the range exceeds 1000. */
START_TEST(test_exponential_notation)
{
	nb_tape *t = nb_tape_new();

	ck_assert_str_eq(printed(nb_constant(t, 1, (size_t[]){ 3 }, (double[]){ 1e-5, 2, 3e10 })),
	                 "constant (3)\n[1.e-05 2.e+00 3.e+10]\n");
	ck_assert_str_eq(printed(nb_constant(t, 1, (size_t[]){ 2 }, (double[]){ -1.5e-7, 2.25e8 })),
	                 "constant (2)\n[-1.50e-07  2.25e+08]\n");
	ck_assert_str_eq(printed(nb_constant(t, 1, (size_t[]){ 3 }, (double[]){ 0, 0.5, 1000 })),
	                 "constant (3)\n[0.e+00 5.e-01 1.e+03]\n");
	/* rounds to 1e+06 in 6 digits */
	ck_assert_str_eq(printed(nb_constant(t, 1, (size_t[]){ 2 }, (double[]){ 999999.7, 1 })),
	                 "constant (2)\n[1.e+06 1.e+00]\n");
	ck_assert_str_eq(printed(nb_scalar(t, 1e-300)), "fill ()\n1.e-300\n");
	nb_tape_free(t);
}
END_TEST

START_TEST(test_fixed_notation_up_to_the_limits)
{
	nb_tape *t = nb_tape_new();

	ck_assert_str_eq(printed(nb_constant(t, 1, (size_t[]){ 3 }, (double[]){ 1e-4, 0.05, 0 })),
	                 "constant (3)\n[0.0001 0.05   0.    ]\n");
	ck_assert_str_eq(printed(nb_constant(t, 1, (size_t[]){ 2 }, (double[]){ 999999, 1000 })),
	                 "constant (2)\n[999999.   1000.]\n");
	ck_assert_str_eq(printed(nb_constant(t, 1, (size_t[]){ 2 }, (double[]){ -0.0, 0 })),
	                 "constant (2)\n[-0.  0.]\n");
	nb_tape_free(t);
}
END_TEST

/* nan for every NaN (whatever its sign bit), right-aligned like the numbers. */
START_TEST(test_non_finite_values)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_constant(t, 1, (size_t[]){ 4 },
	                           (double[]){ 1.5, NAN, INFINITY, -INFINITY });
	nb_tensor *y = nb_constant(t, 2, (size_t[]){ 2, 2 },
	                           (double[]){ -NAN, 1, 2.25e-9, -INFINITY });

	ck_assert_str_eq(printed(x), "constant (4)\n[ 1.5  nan  inf -inf]\n");
	ck_assert_str_eq(printed(y), "constant (2x2)\n"
	                             "[[     nan 1.00e+00]\n"
	                             " [2.25e-09     -inf]]\n");
	ck_assert_str_eq(printed(nb_scalar(t, NAN)), "fill ()\nnan\n");
	ck_assert_str_eq(printed(nb_constant(t, 1, (size_t[]){ 2 },
	                                     (double[]){ INFINITY, NAN })),
	                 "constant (2)\n[inf nan]\n");
	nb_tape_free(t);
}
END_TEST

/* ---- Elision ----------------------------------------------------------------------- */

/* 1600 elements: the first and last 3 rows and columns; widths from those shown only. */
START_TEST(test_large_matrix_elides_rows_and_columns)
{
	nb_tape *t = nb_tape_new();

	ck_assert_str_eq(printed(counting(t, 2, (size_t[]){ 40, 40 }, 100, 1)),
	                 "constant (40x40)\n"
	                 "[[ 100.  101.  102. ...  137.  138.  139.]\n"
	                 " [ 140.  141.  142. ...  177.  178.  179.]\n"
	                 " [ 180.  181.  182. ...  217.  218.  219.]\n"
	                 " ...\n"
	                 " [1580. 1581. 1582. ... 1617. 1618. 1619.]\n"
	                 " [1620. 1621. 1622. ... 1657. 1658. 1659.]\n"
	                 " [1660. 1661. 1662. ... 1697. 1698. 1699.]]\n");
	nb_tape_free(t);
}
END_TEST

/* 0 to 1999: a range above 1000, so exponential, as numpy prints it. */
START_TEST(test_large_vector_elides_the_middle)
{
	nb_tape *t = nb_tape_new();

	ck_assert_str_eq(printed(counting(t, 1, (size_t[]){ 2000 }, 0, 1)),
	                 "constant (2000)\n"
	                 "[0.000e+00 1.000e+00 2.000e+00 ... 1.997e+03 1.998e+03 1.999e+03]\n");
	nb_tape_free(t);
}
END_TEST

/* Only axes longer than 6 are elided; 1000 elements are all printed (rows wrap). */
START_TEST(test_elision_per_axis_above_1000_elements)
{
	nb_tape *t = nb_tape_new();
	const char *s;
	size_t n;

	ck_assert_str_eq(printed(counting(t, 3, (size_t[]){ 2, 2, 300 }, 1, 0)),
	                 "constant (2x2x300)\n"
	                 "[[[1. 1. 1. ... 1. 1. 1.]\n"
	                 "  [1. 1. 1. ... 1. 1. 1.]]\n"
	                 "\n"
	                 " [[1. 1. 1. ... 1. 1. 1.]\n"
	                 "  [1. 1. 1. ... 1. 1. 1.]]]\n");
	ck_assert_str_eq(printed(counting(t, 3, (size_t[]){ 8, 1, 200 }, 0, 0)),
	                 "constant (8x1x200)\n"
	                 "[[[0. 0. 0. ... 0. 0. 0.]]\n"
	                 "\n"
	                 " [[0. 0. 0. ... 0. 0. 0.]]\n"
	                 "\n"
	                 " [[0. 0. 0. ... 0. 0. 0.]]\n"
	                 "\n"
	                 " ...\n"
	                 "\n"
	                 " [[0. 0. 0. ... 0. 0. 0.]]\n"
	                 "\n"
	                 " [[0. 0. 0. ... 0. 0. 0.]]\n"
	                 "\n"
	                 " [[0. 0. 0. ... 0. 0. 0.]]]\n");
	s = printed(counting(t, 2, (size_t[]){ 10, 100 }, 0, 0));
	ck_assert_ptr_null(strstr(s, "..."));
	for (n = 0; (s = strstr(s, "0.")) != NULL; s++)
		n++;
	ck_assert_uint_eq(n, 1000);
	nb_tape_free(t);
}
END_TEST

/* ---- The first line, and the statuses ---------------------------------------------- */

START_TEST(test_first_line_names_op_name_and_shape)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *w = nb_variable(t, 2, (size_t[]){ 2, 2 }, (double[]){ 1, 2, 3, 4 });
	nb_tensor *x = nb_constant(t, 2, (size_t[]){ 2, 1 }, (double[]){ 1, -1 });
	nb_tensor *z = nb_matmul(t, w, x);

	nb_set_name(w, "w1");
	ck_assert_str_eq(printed(w), "variable w1 (2x2)\n[[1. 2.]\n [3. 4.]]\n");
	ck_assert_str_eq(printed(z), "matmul (2x1)\n[[-1.]\n [-1.]]\n");
	nb_set_name(z, "z1");
	ck_assert_str_eq(printed(z), "matmul z1 (2x1)\n[[-1.]\n [-1.]]\n");
	nb_tape_free(t);
}
END_TEST

/* NULL arguments: NB_ENULL, nothing written, the tape untouched. */
START_TEST(test_null_arguments)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_scalar(t, 1);
	FILE *f = tmpfile();

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(nb_print(NULL, x), NB_ENULL);
	ck_assert_int_eq(nb_print(f, NULL), NB_ENULL);
	ck_assert_int_eq(nb_print(NULL, NULL), NB_ENULL);
	ck_assert_int_eq(ftell(f), 0);
	ck_assert_int_eq(nb_tape_status(t), NB_OK);
	fclose(f);
	nb_tape_free(t);
}
END_TEST

/* /dev/full accepts the writes into the stream's buffer and fails at the flush, or for a
 * text longer than the buffer (about 9000 bytes here) already while writing. */
START_TEST(test_write_failure_is_eio)
{
	nb_tape *t = nb_tape_new();
	nb_tensor *small = nb_scalar(t, 1);
	nb_tensor *large = counting(t, 2, (size_t[]){ 10, 100 }, 1000.125, 1);
	FILE *f = fopen("/dev/full", "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(nb_print(f, small), NB_EIO);
	fclose(f);
	f = fopen("/dev/full", "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(nb_print(f, large), NB_EIO);
	fclose(f);
	nb_tape_free(t);
}
END_TEST

static Suite *print_suite(void)
{
	Suite *s = suite_create("print");
	TCase *shape = tcase_create("shapes");
	TCase *notation = tcase_create("notation");
	TCase *elide = tcase_create("elision");
	TCase *misc = tcase_create("header and status");

	tcase_add_test(shape, test_scalar_is_one_number);
	tcase_add_test(shape, test_vector_is_one_row);
	tcase_add_test(shape, test_matrix_columns_align_on_the_point);
	tcase_add_test(shape, test_rank3_separates_matrices);
	tcase_add_test(shape, test_rank4_nests_four_levels);
	tcase_add_test(shape, test_long_row_wraps);
	tcase_add_test(notation, test_exponential_notation);
	tcase_add_test(notation, test_fixed_notation_up_to_the_limits);
	tcase_add_test(notation, test_non_finite_values);
	tcase_add_test(elide, test_large_matrix_elides_rows_and_columns);
	tcase_add_test(elide, test_large_vector_elides_the_middle);
	tcase_add_test(elide, test_elision_per_axis_above_1000_elements);
	tcase_add_test(misc, test_first_line_names_op_name_and_shape);
	tcase_add_test(misc, test_null_arguments);
	tcase_add_test(misc, test_write_failure_is_eio);
	suite_add_tcase(s, shape);
	suite_add_tcase(s, notation);
	suite_add_tcase(s, elide);
	suite_add_tcase(s, misc);
	return s;
}

int main(void)
{
	return run_suite(print_suite());
}
