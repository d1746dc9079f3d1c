/* userops.h -- user-defined ops shared by the tests: correct ones, one with a wrong rule,
 * a piecewise one, and definitions that are wrong in each way nb_apply() must refuse. */
#ifndef NB_TEST_USEROPS_H
#define NB_TEST_USEROPS_H

#include "nabla.h"

extern const nb_op_def cube_op;        /* y = x^3, dx = 3 x^2 dy */
extern const nb_op_def cube_wrong_op;  /* y = x^3 with the wrong rule dx = 2 x^2 dy */
extern const nb_op_def cube_frozen_op; /* y = x^3, right rule from a constant (at most 64
                                        * elements): wrong second derivatives */
extern const nb_op_def outer_op;       /* (m), (n) -> (m x n): a b^T, with a shape rule */
extern const nb_op_def hypot_op;       /* elementwise sqrt(a^2 + b^2), no shape rule */
extern const nb_op_def clip_op;        /* min(max(x, 0), 1): piecewise, with a branch rule */
extern const nb_op_def silent_shape_op;    /* shape rule fails with no message */
extern const nb_op_def zero_dim_op;        /* shape rule returns a dim of 0 */
extern const nb_op_def bad_grad_shape_op;  /* rule hands a gradient of shape (1) */
extern const nb_op_def failing_rule_op;    /* rule returns NB_EINVAL */
extern const nb_op_def foreign_grad_op;    /* rule hands a gradient of another tape */
void foreign_grad_cleanup(void);
extern const nb_op_def nan_free_op;          /* turns NaN into 0: a laundered NaN */
extern const nb_op_def x_over_x_op;          /* identity, rule dy x / x: NaN at 0 */
extern const nb_op_def squared_cotangent_op; /* identity, rule dy^2: not linear in dy */

/* An nb_expr_fn: the op given as ud applied to the first input. */
nb_tensor *apply_unary(nb_tape *t, nb_tensor *const *x, size_t n, void *ud);

#endif
