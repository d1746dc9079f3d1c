/* test_closed_form.c -- examples/closed_form says what it shows: each of its networks ends
 * with "max relative difference: X", X (autodiff against nb_bp_reference_opts over every
 * entry of every gradient and the cost) is below 1e-12, and the program exits with 0. It
 * is run as the user would run it (NABLA_CLOSED_FORM, set by make check, is its path). */
#define _POSIX_C_SOURCE 200809L /* popen */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "helpers.h"

/* The networks the program compares. */
#define COMBINATIONS 3

#define CLAIM "max relative difference: "

START_TEST(test_example_claims_hold)
{
	const char *prog = getenv("NABLA_CLOSED_FORM");
	char cmd[4096], line[512];
	int claims = 0, status;
	FILE *p;

	ck_assert_msg(prog != NULL, "NABLA_CLOSED_FORM is unset: run through make check, or set "
	              "it to the path of examples/closed_form");
	snprintf(cmd, sizeof cmd, "'%s' 2>&1", prog);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	while (fgets(line, sizeof line, p) != NULL) {
		char *end;
		double x;

		if (strncmp(line, CLAIM, strlen(CLAIM)) != 0)
			continue;
		x = strtod(line + strlen(CLAIM), &end);
		ck_assert_msg(end != line + strlen(CLAIM) && *end == '\n', "not a number: %s", line);
		ck_assert_msg(x < TOL_EXACT, "%s", line);
		claims++;
	}
	status = pclose(p);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	              "closed_form did not exit with 0");
	ck_assert_int_eq(claims, COMBINATIONS);
}
END_TEST

static Suite *closed_form_suite(void)
{
	Suite *s = suite_create("closed_form");
	TCase *tc = tcase_create("example");

	tcase_add_test(tc, test_example_claims_hold);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_suite(closed_form_suite());
}
