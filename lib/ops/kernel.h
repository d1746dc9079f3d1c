/* kernel.h -- the numeric kernels under the ops: matrix products for the shapes that
 * training meets (tall-skinny, small batches, transposed operands read in place). */
#ifndef NB_KERNEL_H
#define NB_KERNEL_H

#include <stdbool.h>
#include <stddef.h>

/* C = op(A) op(B), with C m x n, op(A) m x k, op(B) k x n, all row-major and dense: A is
 * stored m x k, or k x m when ta (op(A) = A^T); B is stored k x n, or n x k when tb. C may
 * not overlap A or B. k may be 0 (C = 0). work is scratch space of nb__gemm_work() doubles
 * (NULL when that is 0), so that a product never allocates. A large product runs on up to
 * threads threads (the tape's count; 1 or less: the caller's alone), which share its rows
 * through nb__parallel_for(). The arithmetic order of every element is fixed, so results
 * do not depend on the number of threads. */
void nb__gemm(int threads, bool ta, bool tb, size_t m, size_t n, size_t k, const double *a,
              const double *b, double *c, double *work);

/* The scratch space nb__gemm() needs for these operands, in doubles. */
size_t nb__gemm_work(bool ta, bool tb, size_t m, size_t n, size_t k);

/* One step of gradient descent on n parameters w with gradient g: w -= eta (g + decay w);
 * with a velocity v (not NULL): v = mu v - eta (g + decay w), w += v. */
void nb__sgd_update(double *w, double *v, const double *g, size_t n, double eta, double mu,
                    double decay);

#endif
