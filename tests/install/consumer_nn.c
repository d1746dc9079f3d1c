/* consumer_nn.c -- a program built against an installed nabla_nn with pkg-config: a small
 * network takes a training step, is saved, loaded back and gives the same outputs. */
#include <stdio.h>
#include <string.h>

#include <nabla_nn.h>

int main(void)
{
	const size_t sizes[] = { 2, 3, 1 };
	nb_net_config cfg = { .n_layers = 3, .sizes = sizes, .seed = 1 };
	nb_sgd sgd = { .batch = 2, .eta = 0.5 };
	const double x[] = { 0, 1, 1, 0 }, y[] = { 1, 0 };
	double before[2], after[2], cost;
	char msg[NB_MSG_MAX];
	nb_net *net = NULL, *back = NULL;
	int status = nb_net_new(&cfg, &net, msg);

	if (status == NB_OK)
		status = nb_net_sgd_step(net, x, y, 2, &sgd, &cost);
	if (status == NB_OK)
		status = nb_net_save(net, "consumer_nn.model", msg);
	if (status == NB_OK)
		status = nb_net_load("consumer_nn.model", &back, msg);
	if (status == NB_OK)
		status = nb_net_predict(net, x, 2, before);
	if (status == NB_OK)
		status = nb_net_predict(back, x, 2, after);
	remove("consumer_nn.model");
	if (status != NB_OK || memcmp(before, after, sizeof before) != 0) {
		fprintf(stderr, "consumer_nn: %s\n", status != NB_OK ? msg : "outputs differ");
		return 1;
	}
	printf("nabla_nn %s: a network saved and loaded gives (%.6f, %.6f) again\n",
	       nb_version(), after[0], after[1]);
	nb_net_free(net);
	nb_net_free(back);
	return 0;
}
