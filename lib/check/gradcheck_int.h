/* gradcheck_int.h -- what the gradient checker's two files share: the report's
 * bookkeeping (gradcheck_report.c) used by the checker itself (gradcheck.c). */
#ifndef NB_GRADCHECK_INT_H
#define NB_GRADCHECK_INT_H

#include "nabla.h"

/* One comparison as the checker classified it. */
struct nb__comparison {
	nb_gradcheck_mismatch m;
	int kink;       /* an op's branch changed within the differences */
	int one_sided;  /* the differences were taken on one side */
};

/* Start a result: passed, nothing counted. */
void nb__gc_result_start(nb_gradcheck_result *r);
/* The tolerance of a comparison: atol + rtol |numeric| + the numeric value's error. */
double nb__gc_tolerance(const nb_gradcheck_report *rep, const nb_gradcheck_mismatch *m);
/* Fold one comparison into r (totals, its input's line, the worst list); returns whether
 * it failed. */
int nb__gc_fold(const nb_gradcheck_report *rep, nb_gradcheck_result *r,
                const struct nb__comparison *c);

#endif
