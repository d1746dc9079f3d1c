// consumer.cpp -- the same from C++: nabla.h and nabla_nn.h must compile as C++.
#include <cstdio>
#include <cstring>

#include <nabla.h>
#include <nabla_nn.h>

int main()
{
	const size_t dim[1] = { 2 };
	const double v[2] = { 1, 2 };
	nb_tape *t = nb_tape_new();
	nb_tensor *x = nb_variable(t, 1, dim, v);
	nb_tensor *y = nb_sum(t, nb_mul(t, x, x));

	if (nb_backward(t, y, NULL) != NB_OK || nb_value(nb_grad(x))[1] != 4.0) {
		std::fprintf(stderr, "consumer (C++): %s\n", nb_tape_message(t));
		return 1;
	}
	std::printf("nabla %s from C++: ok\n", nb_version());
	nb_tape_free(t);
	return std::strcmp(nb_version(), NB_VERSION_STRING) != 0;
}
