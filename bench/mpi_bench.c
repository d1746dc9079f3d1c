/* mpi_bench.c -- data-parallel training over MPI (nabla_mpi.h), built when configure found
 * MPI: the wide network [784, 256, 256, 10] takes SGD steps on global mini-batches of 128
 * with one rank and with two, and bench compares the two runs.
 *
 * bench (make bench) starts each run as its own job, through the mpirun configure found
 * (MPIRUN in the environment overrides it): mpirun -np N bench --mpi-step FILE. In that
 * mode every rank makes the same mini-batches and the same network, and times
 * nb_mpi_net_sgd_step() on the whole global mini-batch, of which each rank computes its
 * share; rank 0 prints "mpi_us_per_step: T" and the network is saved to FILE
 * (nb_mpi_net_save()). bench reads T from each run, loads both files and compares their
 * parameters, then removes them. */
#define _POSIX_C_SOURCE 200809L

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mpi.h>

#include "nabla_mpi.h"
#include "bench.h"
#include "problem.h"

/* The configure's mpirun, set by the build (empty when configure found none). */
#ifndef NABLA_MPIRUN
#define NABLA_MPIRUN ""
#endif

/* The problem: the wide network, a global mini-batch of 128, BATCHES different ones;
 * WARMUP steps, then REPEATS passes of STEPS steps, each pass timed. */
enum { GLOBAL_BATCH = 128, BATCHES = 40, WARMUP = 3, STEPS = 30 };
static const size_t WIDE[] = { 784, 256, 256, 10 };

/* ---- bench --mpi-step FILE: one rank of a run ------------------------------------------ */

/* Stop every rank after a failed collective call, whose message every rank has (it names
 * the rank that failed): rank 0 says it. */
_Noreturn static void mpi_die(nb_mpi *mpi, const char *what)
{
	if (nb_mpi_rank(mpi) == 0)
		fprintf(stderr, "bench --mpi-step: %s: %s\n", what, nb_mpi_message(mpi));
	nb_mpi_free(mpi);
	MPI_Finalize();
	exit(1);
}

int mpi_step(const char *path)
{
	struct problem p = { .n_layers = 4, .sizes = WIDE, .batch = GLOBAL_BATCH,
	                     .steps = BATCHES };
	nb_sgd opt = { .batch = GLOBAL_BATCH, .eta = 0.1 };
	size_t in = WIDE[0], out = WIDE[3], k = 0;
	double t[REPEATS];
	char msg[NB_MSG_MAX];
	nb_mpi *mpi = NULL;
	nb_net *net;

	if (MPI_Init(NULL, NULL) != MPI_SUCCESS)
		bench_die("mpi-step", "MPI_Init failed");
	if (nb_mpi_new(MPI_COMM_WORLD, NULL, &mpi, msg) != NB_OK) {
		MPI_Finalize();
		bench_die("mpi-step", msg);
	}
	problem_make(&p);  /* the same mini-batches on every rank: bench's fixed sequence */
	net = problem_net(&p, NULL, NULL);
	nb_net_set_threads(net, 1);
	if (nb_mpi_net_sync(mpi, net) != NB_OK)
		mpi_die(mpi, "net_sync");
	for (int r = -1; r < REPEATS; r++) {  /* r = -1: the warm-up */
		size_t steps = r < 0 ? WARMUP : STEPS;
		double t0, mine, slowest;

		MPI_Barrier(MPI_COMM_WORLD);
		t0 = bench_now();
		for (size_t s = 0; s < steps; s++, k = (k + 1) % BATCHES)
			if (nb_mpi_net_sgd_step(mpi, net, p.x + k * GLOBAL_BATCH * in,
			                        p.y + k * GLOBAL_BATCH * out, GLOBAL_BATCH, &opt,
			                        NULL) != NB_OK)
				mpi_die(mpi, "net_sgd_step");
		mine = (bench_now() - t0) / (double)steps;
		/* a step is done when the slowest rank is done */
		MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
		if (r >= 0)
			t[r] = slowest;
	}
	if (nb_mpi_rank(mpi) == 0) {
		printf("mpi_us_per_step: %.2f\n", bench_median(t, REPEATS) * 1e6);
		fflush(stdout);
	}
	if (nb_mpi_net_save(mpi, net, path) != NB_OK)
		mpi_die(mpi, "net_save");
	nb_net_free(net);
	problem_free(&p);
	nb_mpi_free(mpi);
	MPI_Finalize();
	return 0;
}

/* ---- bench: the two runs, and the figures ----------------------------------------------- */

/* Run "mpirun [options] -np ranks self --mpi-step path" and read its microseconds per
 * step from its output (relayed on stderr when it says anything else). Returns them, or
 * NAN after saying why not. */
static double run_ranks(const char *mpirun, const char *self, int ranks, const char *path)
{
	char np[16], line[512];
	const char *argv[10];
	int fd[2], status, n = 0;
	double us = NAN;
	pid_t pid;
	FILE *out;

	snprintf(np, sizeof np, "%d", ranks);
	argv[n++] = mpirun;
#ifdef OPEN_MPI
	/* Open MPI refuses root without the first, and more ranks than cores without the
	 * second (a 2-rank run on one core still runs, slowly) */
	if (geteuid() == 0)
		argv[n++] = "--allow-run-as-root";
	argv[n++] = "--oversubscribe";
#endif
	argv[n++] = "-np";
	argv[n++] = np;
	argv[n++] = self;
	argv[n++] = "--mpi-step";
	argv[n++] = path;
	argv[n] = NULL;
	fflush(stdout);
	if (pipe(fd) != 0)
		bench_die("mpi", "cannot make a pipe");
	pid = fork();
	if (pid < 0)
		bench_die("mpi", "cannot fork");
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		if (null >= 0)  /* mpirun relays its stdin to rank 0: give it none */
			dup2(null, STDIN_FILENO);
		close(fd[0]);
		dup2(fd[1], STDOUT_FILENO);
		close(fd[1]);
		execv(mpirun, (char *const *)argv);
		fprintf(stderr, "bench: cannot run %s: %s\n", mpirun, strerror(errno));
		_exit(127);
	}
	close(fd[1]);
	out = fdopen(fd[0], "r");
	while (out && fgets(line, sizeof line, out))
		if (sscanf(line, "mpi_us_per_step: %lf", &us) != 1)
			fprintf(stderr, "%s", line);
	if (out)
		fclose(out);
	else
		close(fd[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "bench: %s -np %d %s --mpi-step failed\n", mpirun, ranks, self);
		return NAN;
	}
	return us;
}

/* |x - y| / max(|x|, |y|), 0 when both are 0 (as problem.c measures). */
static double rel_diff(double x, double y)
{
	double big = fmax(fabs(x), fabs(y));

	return big > 0.0 ? fabs(x - y) / big : 0.0;
}

/* How far apart the parameters of the networks saved at a and b are: d[0], the largest
 * difference in a tensor relative to its largest parameter (the tensor's scale), over the
 * tensors; d[1], the largest difference of one parameter relative to itself, which a
 * parameter near 0 makes large. false after saying why there is none. */
static bool saved_difference(const char *a, const char *b, double d[2])
{
	enum { MAX_TENSORS = 16 };
	nb_named_tensor ta[MAX_TENSORS], tb[MAX_TENSORS];
	nb_net *na = NULL, *nb = NULL;
	char msg[NB_MSG_MAX];
	bool ok = false;
	size_t n;

	if (nb_net_load(a, &na, msg) != NB_OK || nb_net_load(b, &nb, msg) != NB_OK) {
		fprintf(stderr, "bench: %s\n", msg);
	} else if ((n = nb_net_tensors(na, ta, MAX_TENSORS)) !=
	           nb_net_tensors(nb, tb, MAX_TENSORS) || n > MAX_TENSORS) {
		fprintf(stderr, "bench: %s and %s hold different networks\n", a, b);
	} else {
		ok = true;
		d[0] = d[1] = 0.0;
		for (size_t i = 0; i < n; i++) {
			double scale = 0.0, diff = 0.0;
			size_t count = 1;

			for (int j = 0; j < ta[i].rank; j++)
				count *= ta[i].dim[j];
			for (size_t j = 0; j < count; j++) {
				scale = fmax(scale, fabs(ta[i].data[j]));
				diff = fmax(diff, fabs(ta[i].data[j] - tb[i].data[j]));
				d[1] = fmax(d[1], rel_diff(ta[i].data[j], tb[i].data[j]));
			}
			d[0] = fmax(d[0], scale > 0.0 ? diff / scale : diff);
		}
	}
	nb_net_free(na);
	nb_net_free(nb);
	return ok;
}

void mpi_speedup(const char *self)
{
	static const char one[] = "bench-mpi-1rank.nbm", two[] = "bench-mpi-2ranks.nbm";
	const char *mpirun = getenv("MPIRUN");
	char exe[4096];
	ssize_t len = readlink(self, exe, sizeof exe - 1);
	double t1, t2, d[2];

	if (!mpirun || !*mpirun)
		mpirun = NABLA_MPIRUN;
	if (!*mpirun) {
		printf("mpi_speedup_2ranks: n/a (configure found no mpirun)\n");
		return;
	}
	/* mpirun starts the ranks itself, so it needs bench's real path, not /proc/self/exe */
	if (len <= 0 || (size_t)len >= sizeof exe - 1)
		bench_die("mpi", "cannot find bench's own executable");
	exe[len] = '\0';
	t1 = run_ranks(mpirun, exe, 1, one);
	t2 = run_ranks(mpirun, exe, 2, two);
	if (isnan(t1) || isnan(t2)) {
		printf("mpi_speedup_2ranks: n/a (bench --mpi-step failed under %s)\n", mpirun);
	} else {
		printf("mpi_us_per_step_1rank: %.2f\n", t1);
		printf("mpi_us_per_step_2ranks: %.2f\n", t2);
		printf("mpi_speedup_2ranks: %.2f\n", t1 / t2);
		if (!saved_difference(one, two, d)) {
			printf("mpi_max_rel_diff_2ranks_vs_1: n/a (the saved networks)\n");
		} else {
			printf("mpi_max_rel_diff_2ranks_vs_1: %.3g\n", d[0]);
			printf("mpi_max_elementwise_rel_diff_2ranks_vs_1: %.3g\n", d[1]);
		}
	}
	remove(one);
	remove(two);
}
