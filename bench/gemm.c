/* gemm.c -- nabla's matrix products against the BLAS's, one thread each, timed in turns on
 * the same operands. nabla's product is timed through the public API, a tape holding two
 * leaves and one nb_matmul_t replayed after a leaf is touched, so its figure includes
 * what a user pays for a product; the BLAS's is a cblas_dgemm call. */
#define _POSIX_C_SOURCE 200809L

#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef HAVE_OPENBLAS
#include <cblas.h>
#endif

#include "bench.h"

/* Each turn runs products for about this long, so that short ones are timed over many. */
#define TURN_SECONDS 0.02

/* Products of nabla and of the BLAS differ by rounding only: a larger difference means
 * the two were not given the same shape. */
#define SAME_PRODUCT_TOL 1e-12

/* ---- The processor, the kernels and the BLAS ------------------------------------------ */

/* The "model name" of /proc/cpuinfo into buf, or "unknown". */
static void cpu_model(char *buf, size_t size)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];

	snprintf(buf, size, "unknown");
	while (f && fgets(line, sizeof line, f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, "model name", 10) != 0 || !colon)
			continue;
		colon += strspn(colon + 1, " \t") + 1;
		colon[strcspn(colon, "\n")] = '\0';
		snprintf(buf, size, "%s", colon);
		break;
	}
	if (f)
		fclose(f);
}

void gemm_print_setup(void)
{
	char cpu[256];

	cpu_model(cpu, sizeof cpu);
	printf("cpu: %s; nabla kernels: %s; ", cpu, nb_kernels());
#ifdef HAVE_OPENBLAS
	{
		/* openblas_get_config() starts with "OpenBLAS" itself */
		const char *config = openblas_get_config();

		if (strncmp(config, "OpenBLAS ", 9) == 0)
			config += 9;
		printf("blas: OpenBLAS %s core %s\n", config, openblas_get_corename());
	}
#else
	printf("blas: none\n");
#endif
	fflush(stdout);
}

/* ---- Timing a product ------------------------------------------------------------------ */

/* One shape's operands, stored as the transposes say, and its two ways of multiplying. */
struct product {
	bool ta, tb;
	size_t m, n, k;
	double *a, *b, *c;      /* a: m x k (k x m when ta), b: k x n (n x k when tb), c: m x n */
	nb_tape *tape;
	nb_tensor *x, *y;       /* the leaves, and y = op(x) op(second leaf) */
};

static void product_new(struct product *p, bool ta, bool tb, size_t m, size_t n, size_t k)
{
	size_t adim[2] = { ta ? k : m, ta ? m : k }, bdim[2] = { tb ? n : k, tb ? k : n };

	*p = (struct product){ .ta = ta, .tb = tb, .m = m, .n = n, .k = k };
	p->a = malloc(m * k * sizeof *p->a);
	p->b = malloc(k * n * sizeof *p->b);
	p->c = calloc(m * n, sizeof *p->c);
	p->tape = nb_tape_new();
	if (!p->a || !p->b || !p->c || !p->tape)
		bench_die("gemm", "out of memory");
	bench_fill(p->a, m * k);
	bench_fill(p->b, k * n);
	p->x = nb_constant(p->tape, 2, adim, p->a);
	p->y = nb_matmul_t(p->tape, p->x, nb_constant(p->tape, 2, bdim, p->b),
	                   (ta ? NB_TRANS_A : 0) | (tb ? NB_TRANS_B : 0));
	if (!p->y)
		bench_die("gemm", nb_tape_message(p->tape));
}

static void product_free(struct product *p)
{
	free(p->a);
	free(p->b);
	free(p->c);
	nb_tape_free(p->tape);
}

/* Seconds per product of `times` products by nabla: touch a leaf, replay the tape. */
static double nabla_turn(struct product *p, size_t times)
{
	double t0 = bench_now();

	for (size_t i = 0; i < times; i++) {
		nb_touch(p->x);
		if (nb_tape_replay(p->tape) != NB_OK)
			bench_die("gemm", nb_tape_message(p->tape));
	}
	return (bench_now() - t0) / (double)times;
}

#ifdef HAVE_OPENBLAS
/* The same by cblas_dgemm, into p->c. */
static double blas_turn(struct product *p, size_t times)
{
	int m = (int)p->m, n = (int)p->n, k = (int)p->k;
	double t0 = bench_now();

	for (size_t i = 0; i < times; i++)
		cblas_dgemm(CblasRowMajor, p->ta ? CblasTrans : CblasNoTrans,
		            p->tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0, p->a, p->ta ? m : k,
		            p->b, p->tb ? k : n, 0.0, p->c, n);
	return (bench_now() - t0) / (double)times;
}

/* The largest difference between nabla's product and the BLAS's, over the largest
 * element. */
static double product_difference(struct product *p)
{
	const double *y = nb_value(p->y);
	double diff = 0.0, big = 0.0;

	for (size_t i = 0; i < p->m * p->n; i++) {
		diff = fmax(diff, fabs(y[i] - p->c[i]));
		big = fmax(big, fabs(p->c[i]));
	}
	return big > 0.0 ? diff / big : diff;
}
#endif

/* How many products make a turn of about TURN_SECONDS, from one that took s. */
static size_t turn_size(double s)
{
	return s >= TURN_SECONDS ? 1 : (size_t)(TURN_SECONDS / s) + 1;
}

void gemm_compare(bool ta, bool tb, size_t m, size_t n, size_t k, double *nabla_s,
                  double *blas_s)
{
	struct product p;
	double nabla_t[REPEATS], blas_t[REPEATS];
	size_t times_n, times_b = 0;

	product_new(&p, ta, tb, m, n, k);
	times_n = turn_size(nabla_turn(&p, 1));  /* warm: recording computed one already */
#ifdef HAVE_OPENBLAS
	blas_turn(&p, 1);
	times_b = turn_size(blas_turn(&p, 1));
#endif
	for (int r = 0; r < REPEATS; r++) {
		nabla_t[r] = nabla_turn(&p, times_n);
#ifdef HAVE_OPENBLAS
		blas_t[r] = blas_turn(&p, times_b);
#else
		blas_t[r] = NAN;
#endif
	}
	*nabla_s = bench_median(nabla_t, REPEATS);
	*blas_s = times_b ? bench_median(blas_t, REPEATS) : NAN;
#ifdef HAVE_OPENBLAS
	if (product_difference(&p) > SAME_PRODUCT_TOL)
		printf("warning: gemm %zu %zu %zu %d %d: nabla's product and the BLAS's differ by "
		       "%.3g of the largest element\n", m, n, k, ta, tb, product_difference(&p));
#endif
	product_free(&p);
}

static double gflops(size_t m, size_t n, size_t k, double seconds)
{
	return 2.0 * (double)m * (double)n * (double)k / seconds * 1e-9;
}

/* ---- One run per instruction set ------------------------------------------------------ */

/* Each of nabla's kernel sets and the OpenBLAS core built for the same instructions:
 * plain x86-64 has SSE2, which Prescott's kernels use (with SSE3). */
static const struct isa {
	const char *name, *core;
} isas[] = {
	{ "avx512", "SkylakeX" },
	{ "avx2", "Haswell" },
	{ "plain", "Prescott" },
};

static bool cpu_has(const char *name)
{
#if defined(__x86_64__) && defined(__GNUC__)
	if (strcmp(name, "avx512") == 0)
		return __builtin_cpu_supports("avx512f");
	if (strcmp(name, "avx2") == 0)
		return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
	return true;
#else
	return strcmp(name, "plain") == 0;
#endif
}

/* Run "self --gemm-only isa" with OPENBLAS_CORETYPE=core and print what it prints. */
static void run_child(const char *self, const struct isa *s)
{
	int fd[2], status;
	char line[512];
	pid_t pid;
	FILE *out;

	fflush(stdout);
	if (pipe(fd) != 0)
		bench_die("gemm", "cannot make a pipe");
	pid = fork();
	if (pid < 0)
		bench_die("gemm", "cannot fork");
	if (pid == 0) {
		close(fd[0]);
		dup2(fd[1], STDOUT_FILENO);
		close(fd[1]);
		setenv("OPENBLAS_CORETYPE", s->core, 1);
		execl(self, self, "--gemm-only", s->name, (char *)NULL);
		_exit(127);
	}
	close(fd[1]);
	out = fdopen(fd[0], "r");
	while (out && fgets(line, sizeof line, out))
		fputs(line, stdout);
	if (out)
		fclose(out);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		printf("gemm_ratio_vs_blas_1024_%s: n/a (bench --gemm-only %s failed)\n", s->name,
		       s->name);
	fflush(stdout);
}

void gemm_ratios_per_isa(const char *self)
{
	for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++)
		if (cpu_has(isas[i].name))
			run_child(self, &isas[i]);
}

int gemm_only(const char *name)
{
	const struct isa *s = NULL;
	double ns, bs;

	for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++)
		if (strcmp(isas[i].name, name) == 0)
			s = &isas[i];
	if (!s) {
		fprintf(stderr, "bench: --gemm-only takes avx512, avx2 or plain, not %s\n", name);
		return 2;
	}
#ifdef HAVE_OPENBLAS
	openblas_set_num_threads(1);
	if (strcasecmp(openblas_get_corename(), s->core) != 0) {
		const char *asked = getenv("OPENBLAS_CORETYPE");

		printf("warning: gemm_ratio_vs_blas_1024_%s: OpenBLAS runs core %s, not %s "
		       "(OPENBLAS_CORETYPE=%s)\n", s->name, openblas_get_corename(), s->core,
		       asked ? asked : "unset");
	}
#endif
	if (nb_set_kernels(s->name) != 0) {
		printf("gemm_ratio_vs_blas_1024_%s: n/a (this build or processor lacks them)\n",
		       s->name);
		return 0;
	}
	if (strcmp(nb_kernels(), s->name) != 0)
		printf("warning: gemm_ratio_vs_blas_1024_%s: nabla runs the %s kernels\n", s->name,
		       nb_kernels());
	gemm_compare(false, false, 1024, 1024, 1024, &ns, &bs);
#ifdef HAVE_OPENBLAS
	printf("gemm_ratio_vs_blas_1024_%s: %.3f (nabla %s %.2f GFLOP/s, OpenBLAS %s %.2f "
	       "GFLOP/s)\n", s->name, ns / bs, nb_kernels(), gflops(1024, 1024, 1024, ns),
	       openblas_get_corename(), gflops(1024, 1024, 1024, bs));
#else
	printf("gemm_ratio_vs_blas_1024_%s: n/a (no BLAS; nabla %.2f GFLOP/s)\n", s->name,
	       gflops(1024, 1024, 1024, ns));
#endif
	return 0;
}

/* ---- make bench-gemm ------------------------------------------------------------------ */

/* The products of a training step (lib/nn/layer.c records z = w a + b as
 * nb_matmul_t(w, a), with NB_TRANS_B when a holds one example per row; op_matmul.c's rule
 * gives dw = delta a^T and da = w^T delta): m n k ta tb, and what each is. The conv
 * network's are per image, ten to a step (nb_conv2d: w as O x CKK times the windows,
 * CKK x L). */
static const struct shape {
	size_t m, n, k;
	bool ta, tb;
	const char *what;
} shapes[] = {
	{ 64, 64, 64, 0, 0, "square" },
	{ 128, 128, 128, 0, 0, "square" },
	{ 256, 256, 256, 0, 0, "square" },
	{ 512, 512, 512, 0, 0, "square" },
	{ 1024, 1024, 1024, 0, 0, "square" },
	{ 2048, 2048, 2048, 0, 0, "square" },
	/* [784, 30, 10], batch 10 */
	{ 30, 10, 784, 0, 1, "nielsen z1 = w1 x^T" },
	{ 10, 10, 30, 0, 0, "nielsen z2 = w2 a1" },
	{ 10, 30, 10, 0, 1, "nielsen dw2 = d2 a1^T" },
	{ 30, 10, 10, 1, 0, "nielsen da1 = w2^T d2" },
	{ 30, 784, 10, 0, 0, "nielsen dw1 = d1 x" },
	/* [784, 256, 256, 10], batch 64 */
	{ 256, 64, 784, 0, 1, "wide z1 = w1 x^T" },
	{ 256, 64, 256, 0, 0, "wide z2 = w2 a1" },
	{ 10, 64, 256, 0, 0, "wide z3 = w3 a2" },
	{ 10, 256, 64, 0, 1, "wide dw3 = d3 a2^T" },
	{ 256, 64, 10, 1, 0, "wide da2 = w3^T d3" },
	{ 256, 256, 64, 0, 1, "wide dw2 = d2 a1^T" },
	{ 256, 64, 256, 1, 0, "wide da1 = w2^T d2" },
	{ 256, 784, 64, 0, 0, "wide dw1 = d1 x" },
	/* mnist --net conv, batch 10: conv 5x5, 20 maps on 1x28x28; 40 maps on 20x12x12 */
	{ 20, 576, 25, 0, 0, "conv1 z = w cols, per image" },
	{ 20, 25, 576, 0, 1, "conv1 dw = dz cols^T, per image" },
	{ 40, 64, 500, 0, 0, "conv2 z = w cols, per image" },
	{ 40, 500, 64, 0, 1, "conv2 dw = dz cols^T, per image" },
	{ 500, 64, 40, 1, 0, "conv2 dcols = w^T dz, per image" },
};

void gemm_shapes(void)
{
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		const struct shape *s = &shapes[i];
		double ns, bs;

		gemm_compare(s->ta, s->tb, s->m, s->n, s->k, &ns, &bs);
		printf("gemm %zu %zu %zu %d %d: nabla %.2f GFLOP/s, ", s->m, s->n, s->k, s->ta,
		       s->tb, gflops(s->m, s->n, s->k, ns));
		if (isnan(bs))
			printf("blas n/a, ratio n/a (%s)\n", s->what);
		else
			printf("blas %.2f GFLOP/s, ratio %.3f (%s)\n", gflops(s->m, s->n, s->k, bs),
			       ns / bs, s->what);
		fflush(stdout);
	}
}
