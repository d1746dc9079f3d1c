/* gradcheck_report.c -- the gradient checker's report: folding comparisons into counts,
 * extremes and the list of the worst mismatches, and printing it for humans. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gradcheck_int.h"

void nb__gc_result_start(nb_gradcheck_result *r)
{
	memset(r, 0, sizeof *r);
	r->passed = 1;
}

double nb__gc_tolerance(const nb_gradcheck_report *rep, const nb_gradcheck_mismatch *m)
{
	return rep->atol + rep->rtol * fabs(m->numeric) + m->error;
}

/* How far a comparison lies outside its tolerance; non-finite ones lie infinitely far. */
static double excess(const nb_gradcheck_report *rep, const nb_gradcheck_mismatch *m)
{
	double e = fabs(m->analytic - m->numeric) - nb__gc_tolerance(rep, m);

	return isfinite(e) ? e : INFINITY;
}

static void stats_add(const nb_gradcheck_report *rep, nb_gradcheck_stats *s,
                      const struct nb__comparison *c, int finite, int failed)
{
	const nb_gradcheck_mismatch *m = &c->m;
	double abs_err = fabs(m->analytic - m->numeric);
	double big = fmax(fabs(m->analytic), fabs(m->numeric));

	int kink = finite && !failed && abs_err > nb__gc_tolerance(rep, m);

	s->checked++;
	s->failed += failed;
	s->nonfinite += !finite;
	s->one_sided += c->one_sided != 0;
	s->kinks += kink;
	if (kink)  /* not a comparison of derivatives: kept out of the worst and the maxima */
		return;
	if (s->checked - s->kinks == 1 || excess(rep, m) > excess(rep, &s->worst))
		s->worst = *m;
	if (!finite)
		return;
	s->max_abs_err = fmax(s->max_abs_err, abs_err);
	s->max_rel_err = fmax(s->max_rel_err, big > 0.0 ? abs_err / big : 0.0);
}

/* Keep the failures worst first, at most NB_GRADCHECK_WORST of them. */
static void worst_add(const nb_gradcheck_report *rep, nb_gradcheck_result *r,
                      const nb_gradcheck_mismatch *m)
{
	size_t i = r->n_worst < NB_GRADCHECK_WORST ? r->n_worst++ : NB_GRADCHECK_WORST;

	while (i > 0 && excess(rep, m) > excess(rep, &r->worst[i - 1])) {
		if (i < NB_GRADCHECK_WORST)
			r->worst[i] = r->worst[i - 1];
		i--;
	}
	if (i < NB_GRADCHECK_WORST)
		r->worst[i] = *m;
}

int nb__gc_fold(const nb_gradcheck_report *rep, nb_gradcheck_result *r,
                const struct nb__comparison *c)
{
	const nb_gradcheck_mismatch *m = &c->m;
	int finite = isfinite(m->analytic) && isfinite(m->numeric);
	int outside = !(fabs(m->analytic - m->numeric) <= nb__gc_tolerance(rep, m));
	int failed = !finite || (outside && !c->kink);

	stats_add(rep, &r->all, c, finite, failed);
	if (m->input < NB_GRADCHECK_MAX_INPUTS)
		stats_add(rep, &r->input[m->input], c, finite, failed);
	if (failed) {
		r->passed = 0;
		worst_add(rep, r, m);
	}
	return failed;
}

/* ---- Printing ------------------------------------------------------------------------ */

static const char *pass_fail(int passed)
{
	return passed ? "PASS" : "FAIL";
}

static const char *mode_name(int mode)
{
	return mode == NB_GRADCHECK_ELEMENTS ? "elements"
	       : mode == NB_GRADCHECK_DIRECTIONS ? "directions" : "auto";
}

static void print_where(FILE *out, const nb_gradcheck_mismatch *m)
{
	if (m->direction)
		fprintf(out, "input %zu direction %zu", m->input, m->index);
	else
		fprintf(out, "input %zu element %zu", m->input, m->index);
}

static void print_mismatch(FILE *out, const char *lead, const nb_gradcheck_mismatch *m)
{
	fprintf(out, "%s", lead);
	print_where(out, m);
	fprintf(out, ": analytic %.12g, numeric %.12g (error estimate %.2g)\n", m->analytic,
	        m->numeric, m->error);
}

static void print_counts(FILE *out, const nb_gradcheck_stats *s)
{
	fprintf(out, "%zu checked, %zu failed", s->checked, s->failed);
	if (s->kinks)
		fprintf(out, ", %zu at a kink", s->kinks);
	if (s->nonfinite)
		fprintf(out, ", %zu non-finite", s->nonfinite);
	if (s->one_sided)
		fprintf(out, ", %zu one-sided", s->one_sided);
	fprintf(out, "; max abs err %.3g, max rel err %.3g", s->max_abs_err, s->max_rel_err);
}

static void print_result(FILE *out, const char *name, const nb_gradcheck_report *rep,
                         const nb_gradcheck_result *r)
{
	size_t lines = 0;

	fprintf(out, "  %-13s %s  ", name, pass_fail(r->passed));
	print_counts(out, &r->all);
	fprintf(out, "\n");
	for (size_t k = 0; k < rep->n_inputs && k < NB_GRADCHECK_MAX_INPUTS; k++)
		lines += rep->checked[k] && r->input[k].checked > 0;
	for (size_t k = 0; lines > 1 && k < rep->n_inputs && k < NB_GRADCHECK_MAX_INPUTS; k++) {
		const nb_gradcheck_stats *s = &r->input[k];

		if (!rep->checked[k] || s->checked == 0)
			continue;
		fprintf(out, "    input %-4zu %s  ", k, pass_fail(s->failed == 0));
		print_counts(out, s);
		fprintf(out, "\n");
	}
	for (size_t i = 0; i < r->n_worst; i++)
		print_mismatch(out, i == 0 ? "    worst: " : "           ", &r->worst[i]);
	if (r->n_worst == 0 && r->all.checked > 0)
		print_mismatch(out, "    closest to tolerance: ", &r->all.worst);
}

static void print_diagnosis(FILE *out, const nb_gradcheck_report *r)
{
	for (size_t k = 0; k < r->n_inputs && k < NB_GRADCHECK_MAX_INPUTS; k++)
		if (r->checked[k] && r->independent[k])
			fprintf(out, "  warning: the output does not depend on input %zu\n", k);
	if (r->graph_break)
		fprintf(out, "  graph break: node %zu (%s) changes when input %zu does: a value "
		        "left the graph (read with nb_value() and recorded again as a constant or "
		        "an attribute), so no gradient flows through it\n",
		        r->break_node, r->break_op, r->break_input);
	if (r->control_flow)
		fprintf(out, "  control flow: the expression records another graph when input %zu "
		        "changes within the step: a C branch on a value\n", r->flow_input);
	if (r->culprit) {
		fprintf(out, "  culprit: node %zu, %s: its backward rule disagrees with differences "
		        "of its forward kernel\n", r->culprit_node, r->culprit_op);
		print_mismatch(out, "    at its ", &r->culprit_worst);
	} else if (!r->passed && (r->first.n_worst || r->second.n_worst)) {
		fprintf(out, "  every op's backward rule agrees with its own kernel%s\n",
		        r->graph_break || r->control_flow ? ": see above"
		        : "; the suspects are the expression's C code, or the step and tolerances");
	}
}

void nb_gradcheck_print(FILE *out, const nb_gradcheck_report *report)
{
	const nb_gradcheck_report *r = report;

	if (!out)
		return;
	if (!r) {
		fprintf(out, "(null report)\n");
		return;
	}
	if (r->status != NB_OK) {
		fprintf(out, "gradcheck: ERROR %s (%s): %s\n", nb_status_name(r->status),
		        nb_status_text(r->status), r->message);
		return;
	}
	fprintf(out, "gradcheck: %s\n", pass_fail(r->passed));
	fprintf(out, "  mode          %s, %s, step %.3g max(1, |x|), %d Richardson level%s, "
	        "atol %g, rtol %g\n", mode_name(r->mode),
	        r->replay ? "by replay" : "re-evaluated", r->step, r->levels,
	        r->levels == 1 ? "" : "s", r->atol, r->rtol);
	fprintf(out, "  output        %zu element%s%s\n", r->output_size,
	        r->output_size == 1 ? "" : "s",
	        r->output_size > 1 ? ", reduced to sum(r * f) with a random r" : "");
	print_result(out, "first order", r, &r->first);
	fprintf(out, "  %-13s %s\n", "repeatable", r->repeatable ? "yes" : "NO (FAIL)");
	fprintf(out, "  %-13s %s  <u, J^T v> = %.17g, <J u, v> = %.17g\n", "fwd vs rev",
	        pass_fail(r->forward_reverse), r->reverse_dot, r->forward_dot);
	if (r->second_checked)
		print_result(out, "second order", r, &r->second);
	else
		fprintf(out, "  %-13s skipped\n", "second order");
	print_diagnosis(out, r);
	fflush(out);
}
