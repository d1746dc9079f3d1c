/* problem.c -- the training problems of problem.h: random mini-batches, nabla's network
 * for them and the reference trainer beside it, timed in turns. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "problem.h"

void problem_make(struct problem *p)
{
	size_t in = p->sizes[0], out = p->sizes[p->n_layers - 1], n = p->batch * p->steps;

	p->x = malloc(n * in * sizeof *p->x);
	p->y = calloc(n * out, sizeof *p->y);
	p->xc = malloc(n * in * sizeof *p->xc);
	p->yc = malloc(n * out * sizeof *p->yc);
	if (!p->x || !p->y || !p->xc || !p->yc)
		bench_die("problem", "out of memory");
	bench_fill(p->x, n * in);
	for (size_t e = 0; e < n; e++)
		p->y[e * out + (size_t)(bench_uniform() * (double)out)] = 1.0;
	for (size_t s = 0; s < p->steps; s++) {  /* each batch transposed on its own */
		size_t b = p->batch, off = s * b;

		for (size_t e = 0; e < b; e++) {
			for (size_t i = 0; i < in; i++)
				p->xc[off * in + i * b + e] = p->x[(off + e) * in + i];
			for (size_t k = 0; k < out; k++)
				p->yc[off * out + k * b + e] = p->y[(off + e) * out + k];
		}
	}
}

void problem_free(struct problem *p)
{
	free(p->x);
	free(p->y);
	free(p->xc);
	free(p->yc);
}

nb_net *problem_net(const struct problem *p, nb_alloc_fn alloc, void *ud)
{
	nb_net_config cfg = { .n_layers = p->n_layers, .sizes = p->sizes, .seed = 1,
	                      .init = NB_INIT_SCALED, .alloc = alloc, .alloc_ud = ud };
	char msg[NB_MSG_MAX];
	nb_net *net;

	if (nb_net_new(&cfg, &net, msg) != NB_OK)
		bench_die("net", msg);
	return net;
}

/* Forward w a, backward dw = delta a^T, and w^T delta for every layer but the first
 * (nobody needs the gradient of the input). */
double problem_step_flops(const struct problem *p)
{
	double f = 0.0;

	for (size_t l = 0; l + 1 < p->n_layers; l++)
		f += 2.0 * (double)(p->sizes[l] * p->sizes[l + 1] * p->batch) * (l ? 3.0 : 2.0);
	return f;
}

#ifdef HAVE_OPENBLAS
/* net's parameters come in the order of nb_net_tensors(): w1, b1, w2, ... */
blas_trainer *problem_trainer(const struct problem *p, nb_net *net)
{
	size_t L = p->n_layers - 1;
	nb_named_tensor nt[2 * BLAS_TRAINER_MAX_LAYERS];
	blas_trainer *bt = blas_trainer_new(p->n_layers, p->sizes, p->batch);

	if (!bt)
		bench_die("blas_trainer", "out of memory");
	if (nb_net_tensors(net, nt, 2 * L) != 2 * L)
		bench_die("blas_trainer", "the network has other layers");
	for (size_t l = 0; l < L; l++) {
		const nb_named_tensor *w = &nt[2 * l], *b = &nt[2 * l + 1];

		if (w->dim[0] != p->sizes[l + 1] || w->dim[1] != p->sizes[l] ||
		    b->dim[0] != p->sizes[l + 1])
			bench_die("blas_trainer", "the network's parameters have other shapes");
		memcpy(blas_trainer_weights(bt, l), w->data, w->dim[0] * w->dim[1] * sizeof(double));
		memcpy(blas_trainer_biases(bt, l), b->data, b->dim[0] * sizeof(double));
	}
	return bt;
}

/* |x - y| / max(|x|, |y|), 0 when both are 0. */
static double rel_diff(double x, double y)
{
	double big = fmax(fabs(x), fabs(y));

	return big > 0.0 ? fabs(x - y) / big : 0.0;
}

double problem_max_rel_diff(const struct problem *p, nb_net *net, blas_trainer *bt)
{
	double d = 0.0;

	for (size_t l = 0; l + 1 < p->n_layers; l++) {
		const double *w = nb_net_weights(net, l), *b = nb_net_biases(net, l);
		const double *rw = blas_trainer_weights(bt, l), *rb = blas_trainer_biases(bt, l);

		for (size_t i = 0; i < p->sizes[l + 1] * p->sizes[l]; i++)
			d = fmax(d, rel_diff(w[i], rw[i]));
		for (size_t i = 0; i < p->sizes[l + 1]; i++)
			d = fmax(d, rel_diff(b[i], rb[i]));
	}
	return d;
}

void problem_trainer_times(const struct problem *p, nb_net *net, blas_trainer *bt,
                           double *nabla_s, double *ref_s)
{
	nb_sgd opt = { .batch = p->batch, .eta = 0.1 };
	size_t in = p->sizes[0], out = p->sizes[p->n_layers - 1], b = p->batch;
	double tn[REPEATS], tr[REPEATS];

	for (int r = -1; r < REPEATS; r++) {
		double t0 = bench_now(), t1;

		for (size_t s = 0; s < p->steps; s++)
			if (nb_net_sgd_step(net, p->x + s * b * in, p->y + s * b * out, b, &opt,
			                    NULL) != NB_OK)
				bench_die("sgd_step", nb_net_message(net));
		t1 = bench_now();
		for (size_t s = 0; s < p->steps; s++)
			blas_trainer_step(bt, p->x + s * b * in, p->y + s * b * out, opt.eta);
		if (r >= 0) {
			tn[r] = (t1 - t0) / (double)p->steps;
			tr[r] = (bench_now() - t1) / (double)p->steps;
		}
	}
	*nabla_s = bench_median(tn, REPEATS);
	*ref_s = bench_median(tr, REPEATS);
}
#endif
