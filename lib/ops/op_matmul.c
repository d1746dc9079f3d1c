/* op_matmul.c -- c = op(a) op(b), where op(a) is a or a^T: transposed operands are read in
 * place, never copied, so the backward rule can use a^T and b^T for free. Operands of
 * rank 3 are batches of matrices, (b x m x k) op (b x k x n), one product per batch
 * element; op transposes each matrix, and the rule is the same, batch by batch. */
#include <string.h>

#include "kernel.h"
#include "nabla_int.h"

/* The kernel takes transposed operands as they are stored (kernel.c), on the tape's
 * threads. */
static void matmul_forward(nb_tensor *y)
{
	const nb_tensor *a = y->in[0], *b = y->in[1];
	bool ta = y->attr.trans & NB_TRANS_A, tb = y->attr.trans & NB_TRANS_B;
	int r = y->rank - 2;  /* the matrices' first axis: 1 in a batch */
	size_t batch = r ? y->dim[0] : 1, m = y->dim[r], n = y->dim[r + 1];
	size_t k = ta ? a->dim[r] : a->dim[r + 1];

	struct nb__work work = { y->tape->scratch, y->tape->scratch_n };

	for (size_t i = 0; i < batch; i++)
		nb__gemm(y->tape->threads, ta, tb, m, n, k, a->value + i * m * k,
		         b->value + i * k * n, y->value + i * m * n, work);
}

/* With c = op(a) op(b) and dc = dL/dc:
 *   d op(a) = dc op(b)^T   -- for z = w a: dw = delta a^T (BP4)
 *   d op(b) = op(a)^T dc   -- and da = w^T delta, the first factor of BP2
 * and a transposed operand receives the transpose, again as a flagged matmul. */
static void matmul_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb_tensor *a = y->in[0], *b = y->in[1];
	int ta = y->attr.trans & NB_TRANS_A, tb = y->attr.trans & NB_TRANS_B;

	if (nb__wants_grad(a))
		nb__grad_add(t, a, ta ? nb_matmul_t(t, b, dy, (tb ? NB_TRANS_A : 0) | NB_TRANS_B)
		                      : nb_matmul_t(t, dy, b, tb ? 0 : NB_TRANS_B));
	if (nb__wants_grad(b))
		nb__grad_add(t, b, tb ? nb_matmul_t(t, dy, a, NB_TRANS_A | (ta ? NB_TRANS_B : 0))
		                      : nb_matmul_t(t, a, dy, ta ? 0 : NB_TRANS_A));
}

const struct nb_op nb__op_matmul = {
	.name = "matmul", .arity = 2, .forward = matmul_forward, .backward = matmul_backward,
};

/* "(3x4)" or, for a transposed operand, "(4x3)^T". */
static char *operand_str(const nb_tensor *x, bool trans, char *buf)
{
	nb__shape_str(x->rank, x->dim, buf);
	if (trans)
		strcat(buf, "^T");
	return buf;
}

nb_tensor *nb_matmul_t(nb_tape *t, nb_tensor *a, nb_tensor *b, int flags)
{
	nb_tensor *in[2] = { a, b };
	struct nb_attr attr = { .trans = flags };
	char sa[NB_MSG_MAX], sb[NB_MSG_MAX];
	size_t dim[3];
	int r;

	if (!nb__args_ok(t, "matmul", in, 2))
		return NULL;
	if (flags & ~(NB_TRANS_A | NB_TRANS_B))
		return nb__fail(t, NB_EINVAL, "matmul: unknown flags 0x%x", (unsigned)flags);
	operand_str(a, flags & NB_TRANS_A, sa);
	operand_str(b, flags & NB_TRANS_B, sb);
	if (a->rank != b->rank || a->rank < 2 || a->rank > 3)
		return nb__fail(t, NB_ERANK, "matmul: operands must both have rank 2, or both rank "
		                "3 (batches): %s @ %s", sa, sb);
	r = a->rank - 2;
	if (r && a->dim[0] != b->dim[0])
		return nb__fail(t, NB_ESHAPE, "matmul: batch sizes differ: %s @ %s", sa, sb);
	if (a->dim[r + (flags & NB_TRANS_A ? 0 : 1)] != b->dim[r + (flags & NB_TRANS_B ? 1 : 0)])
		return nb__fail(t, NB_ESHAPE, "matmul: inner dimensions differ: %s @ %s", sa, sb);
	dim[0] = a->dim[0];
	dim[r] = a->dim[r + (flags & NB_TRANS_A ? 1 : 0)];
	dim[r + 1] = b->dim[r + (flags & NB_TRANS_B ? 0 : 1)];
	if (nb__is_zero(a) || nb__is_zero(b))  /* structural: nabla.h, "Ops" */
		return nb__zeros(t, a->rank, dim);
	if (!nb__reserve_scratch(t, nb__gemm_work(flags & NB_TRANS_A, flags & NB_TRANS_B, dim[r],
	                                          dim[r + 1],
	                                          a->dim[r + (flags & NB_TRANS_A ? 0 : 1)],
	                                          t->threads)))
		return NULL;
	return nb__record(t, &nb__op_matmul, in, &attr, a->rank, dim);
}

nb_tensor *nb_matmul(nb_tape *t, nb_tensor *a, nb_tensor *b)
{
	return nb_matmul_t(t, a, b, 0);
}
