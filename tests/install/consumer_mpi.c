/* consumer_mpi.c -- a program built against an installed nabla_mpi with pkg-config and
 * started by mpirun: the ranks sync a small network, take a data-parallel step, and end
 * with the same parameters, which the ranks check. */
#include <stdio.h>
#include <string.h>

#include <nabla_mpi.h>

int main(void)
{
	const size_t sizes[] = { 2, 3, 1 };
	nb_net_config cfg = { .n_layers = 3, .sizes = sizes, .seed = 1 };
	nb_sgd sgd = { .batch = 4, .eta = 0.5 };
	const double x[] = { 0, 1, 1, 0, 1, 1, 0, 0 }, y[] = { 1, 1, 0, 0 };
	double w[6], w0[6], cost = 0.0;
	char msg[NB_MSG_MAX] = "";
	nb_mpi *mpi = NULL;
	nb_net *net = NULL;
	int status, same, all = 0;

	MPI_Init(NULL, NULL);
	status = nb_mpi_new(MPI_COMM_WORLD, NULL, &mpi, msg);
	if (status == NB_OK && nb_net_new(&cfg, &net, msg) != NB_OK)
		status = nb_mpi_agree(mpi, NB_EINVAL, msg);
	if (status == NB_OK)
		status = nb_mpi_net_sync(mpi, net);
	if (status == NB_OK)
		status = nb_mpi_net_sgd_step(mpi, net, x, y, 4, &sgd, &cost);
	if (status == NB_OK) {
		memcpy(w, nb_net_weights(net, 0), sizeof w);
		memcpy(w0, w, sizeof w);
		MPI_Bcast(w0, 6, MPI_DOUBLE, 0, MPI_COMM_WORLD);
		same = memcmp(w, w0, sizeof w) == 0;
		MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
	}
	if (status != NB_OK || !all) {
		fprintf(stderr, "consumer_mpi: %s\n", status != NB_OK ? (mpi ? nb_mpi_message(mpi) :
		        msg) : "the ranks' parameters differ");
		status = 1;
	} else if (nb_mpi_rank(mpi) == 0) {
		printf("nabla_mpi %s: %d ranks took a step (cost %.6f) and agree to the bit\n",
		       nb_version(), nb_mpi_size(mpi), cost);
	}
	nb_net_free(net);
	nb_mpi_free(mpi);
	MPI_Finalize();
	return status == NB_OK ? 0 : 1;
}
