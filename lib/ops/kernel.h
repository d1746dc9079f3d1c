/* kernel.h -- the numeric kernels under the ops: the matrix product, for every shape that
 * training meets (a mini-batch's small products and large square ones, transposed
 * operands read or packed without a copy by the caller), and the SGD update. */
#ifndef NB_KERNEL_H
#define NB_KERNEL_H

#include <stdbool.h>
#include <stddef.h>

/* Scratch space for a kernel: n doubles at p. */
struct nb__work {
	double *p;
	size_t n;
};

/* C = op(A) op(B), with C m x n, op(A) m x k, op(B) k x n, all row-major and dense: A is
 * stored m x k, or k x m when ta (op(A) = A^T); B is stored k x n, or n x k when tb. C may
 * not overlap A or B. k may be 0 (C = 0). work has at least nb__gemm_work(..., 1)
 * doubles (p may be NULL when that is 0), so that a product never allocates; it runs on
 * up to `threads` threads, as many as work has room for. Each element of C
 * is summed in the same order whatever the number of threads, so results depend only on
 * the kernels in use (nb_kernels()). */
void nb__gemm(int threads, bool ta, bool tb, size_t m, size_t n, size_t k, const double *a,
              const double *b, double *c, struct nb__work work);

/* The scratch space nb__gemm() needs for these operands on `threads` threads, in
 * doubles. */
size_t nb__gemm_work(bool ta, bool tb, size_t m, size_t n, size_t k, int threads);

/* One step of gradient descent on n parameters w with gradient g: w -= eta (g + decay w);
 * with a velocity v (not NULL): v = mu v - eta (g + decay w), w += v. The three arrays
 * do not overlap. */
void nb__sgd_update(double *restrict w, double *restrict v, const double *restrict g, size_t n,
                    double eta, double mu, double decay);

#endif
