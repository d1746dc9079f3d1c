/* curve.h -- a learning curve: test accuracy and cost per epoch, written as CSV or SVG.
 *
 * The trainer appends one point per epoch and, at the end, writes the points as a table
 * (for a spreadsheet or a plotting script) or as a self-contained SVG picture.
 */
#ifndef CURVE_H
#define CURVE_H

#include <stddef.h>

/* One epoch's results. A cost that is not known is NAN: there is no training cost for
 * epoch 0, which only evaluates. */
struct curve_point {
	size_t epoch;        /* 0 before any training, then 1, 2, ... */
	size_t correct;      /* test examples classified right ... */
	size_t total;        /* ... out of this many */
	double train_cost;   /* mean training cost over the epoch */
	double test_cost;    /* mean cost over the test set after the epoch */
};

/* A growing array of points. A zeroed struct is an empty curve. */
struct curve {
	struct curve_point *point;
	size_t n, cap;
};

/* Append a copy of p. Returns 0, or ENOMEM (and c is unchanged). */
int curve_add(struct curve *c, const struct curve_point *p);

/* The point with the most correct answers (the earliest of equals); NULL when c is
 * empty. Borrowed until the next curve_add() or curve_free(). */
const struct curve_point *curve_best(const struct curve *c);

/* Write c to path as CSV: the header "epoch,correct,total,accuracy,train_cost,test_cost"
 * and one line per point; accuracy is correct / total (a fraction), an unknown cost is an
 * empty field. Returns 0, or an errno value when the file cannot be opened or written. */
int curve_write_csv(const struct curve *c, const char *path);

/* Write c to path as an SVG picture (valid XML, no external fonts or scripts): test
 * accuracy in % above, training and test cost below, both against the epoch. title and
 * subtitle (may be NULL) are printed at the top. Returns 0 or an errno value. */
int curve_write_svg(const struct curve *c, const char *path, const char *title,
                    const char *subtitle);

/* Free the points and empty c. */
void curve_free(struct curve *c);

#endif /* CURVE_H */
