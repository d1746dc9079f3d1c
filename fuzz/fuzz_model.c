/* fuzz_model.c -- libFuzzer target for nb_net_load(), nabla's model files, version 1 and
 * version 2 (a network in a file of named tensors) (lib/nn/model.c, lib/nn/net_file.c,
 * docs/model-format.md).
 *
 * An input is a model file. It is loaded as it is, and then, since a mutated file almost
 * never keeps a valid checksum, once more with its last 8 bytes replaced by the XXH3-64 of
 * the rest, so that the checks after the checksum and the building of the network are
 * fuzzed too. A load that succeeds must give the configuration and the parameters the file
 * holds, and a network that predicts on a zero input; one that fails must leave *out NULL,
 * name the file and leak nothing.
 *
 * Run: ./build.sh fuzz (each target FUZZ_SECONDS, default 60, on a copy of
 * fuzz/corpus/model/, then once over every file in fuzz/regressions/model/). By hand,
 * after it:
 *   build-fuzz/fuzz/fuzz_model -max_total_time=600 build-fuzz/work/model
 * A crash leaves build-fuzz/artifacts/model/crash-*: fix the bug, then copy that file into
 * fuzz/regressions/model/ under a name saying what it caught, so every run replays it. */
#define _POSIX_C_SOURCE 200809L /* mkstemp */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <nabla_nn.h>

#include "fuzz.h"
#include "fuzz_checksum.h"
#include "fuzz_msg.h"

/* Byte offsets of docs/model-format.md, "Layout". */
#define OFF_N_LAYERS 16
#define OFF_SIZES 20

static uint64_t le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;

	for (int i = bytes - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* The configuration is the file's: layer count, sizes, choices, seed; and the file is
 * exactly as long as they make it. */
static void check_config(const nb_net_config *cfg, const uint8_t *f, size_t size)
{
	size_t n = cfg->n_layers, at = OFF_SIZES + 8 * n, params = 0;

	FUZZ_CHECK(n >= 2 && n == le(f + OFF_N_LAYERS, 4), "n_layers %zu", n);
	for (size_t l = 0; l < n; l++)
		FUZZ_CHECK(cfg->sizes[l] >= 1 && cfg->sizes[l] == le(f + OFF_SIZES + 8 * l, 8),
		           "size %zu of layer %zu", cfg->sizes[l], l);
	for (size_t l = 0; l + 1 < n; l++)
		params += cfg->sizes[l + 1] * (cfg->sizes[l] + 1);
	FUZZ_CHECK(size == at + 24 + 8 * params + 8 /* the checksum */, "%zu bytes for %zu "
	           "parameters", size, params);
	FUZZ_CHECK(cfg->hidden >= NB_SIGMOID && cfg->hidden <= NB_RELU, "hidden %d", cfg->hidden);
	FUZZ_CHECK(cfg->output >= NB_SIGMOID && cfg->output <= NB_SOFTMAX, "output %d",
	           cfg->output);
	FUZZ_CHECK(cfg->cost == NB_QUADRATIC || cfg->cost == NB_CROSS_ENTROPY, "cost %d", cfg->cost);
	FUZZ_CHECK(cfg->init == NB_INIT_NORMAL || cfg->init == NB_INIT_SCALED, "init %d", cfg->init);
	FUZZ_CHECK((uint64_t)cfg->hidden == le(f + at, 4) && (uint64_t)cfg->output == le(f + at + 4, 4)
	           && (uint64_t)cfg->cost == le(f + at + 8, 4) &&
	           (uint64_t)cfg->init == le(f + at + 12, 4) && cfg->seed == le(f + at + 16, 8),
	           "choices differ from the file");
}

/* Every parameter is the file's, bit for bit, and finite. */
static void check_params(nb_net *net, const nb_net_config *cfg, const uint8_t *f)
{
	const uint8_t *p = f + OFF_SIZES + 8 * cfg->n_layers + 24;

	for (size_t l = 0; l + 1 < cfg->n_layers; l++) {
		size_t count[2] = { cfg->sizes[l + 1] * cfg->sizes[l], cfg->sizes[l + 1] };
		double *v[2] = { nb_net_weights(net, l), nb_net_biases(net, l) };

		for (int k = 0; k < 2; k++) {
			FUZZ_CHECK(v[k] != NULL, "no parameters for layer %zu", l);
			for (size_t i = 0; i < count[k]; i++, p += 8) {
				uint64_t bits;

				memcpy(&bits, &v[k][i], sizeof bits);
				FUZZ_CHECK(bits == le(p, 8) && isfinite(v[k][i]),
				           "parameter %zu of layer %zu is %g", i, l, v[k][i]);
			}
		}
	}
}

/* The network runs: predict on one zero example, and each output is in the range of the
 * output activation (NaN aside: huge weights may overflow, which is not the loader's). */
static void check_predict(nb_net *net, const nb_net_config *cfg)
{
	size_t in = cfg->sizes[0], out = cfg->sizes[cfg->n_layers - 1];
	double *x = calloc(in, sizeof *x), *y = malloc(out * sizeof *y);
	int status;

	FUZZ_CHECK(x && y, "out of memory");
	status = nb_net_predict(net, x, 1, y);
	FUZZ_CHECK(status == NB_OK, "predict: %s", nb_net_message(net));
	for (size_t c = 0; c < out; c++) {
		double lo = cfg->output == NB_TANH ? -1.0 : 0.0;
		double hi = cfg->output == NB_RELU ? INFINITY : 1.0;

		FUZZ_CHECK(!(y[c] < lo || y[c] > hi), "output %zu is %g", c, y[c]);
	}
	free(x);
	free(y);
}

/* A version-2 file (a file of named tensors describing a network): every parameter is
 * the file's tensor of its name, bit for bit, and the network runs. */
static void check_version2(nb_net *net, const char *path)
{
	nb_named_tensor ts[2 * NB_NET_MAX_LAYERS];
	size_t n = nb_net_tensors(net, ts, 2 * NB_NET_MAX_LAYERS), in = nb_net_inputs(net);
	nb_tensor_file f = { 0 };
	char msg[NB_MSG_MAX];
	double *x, *y;

	FUZZ_CHECK(nb_tensors_load(path, NULL, &f, msg) == NB_OK, "tensors: %s", msg);
	FUZZ_CHECK(f.n == n, "%zu tensors for %zu parameters", f.n, n);
	for (size_t i = 0; i < n; i++) {
		size_t k = 0, size = 1;

		while (k < f.n && strcmp(f.tensors[k].name, ts[i].name))
			k++;
		FUZZ_CHECK(k < f.n, "parameter %s is not in the file", ts[i].name);
		for (int d = 0; d < ts[i].rank; d++)
			size *= ts[i].dim[d];
		FUZZ_CHECK(!memcmp(f.tensors[k].data, ts[i].data, size * sizeof(double)),
		           "parameter %s differs from the file", ts[i].name);
	}
	nb_tensors_free(&f);
	x = calloc(in, sizeof *x);
	y = malloc(nb_net_outputs(net) * sizeof *y);
	FUZZ_CHECK(x && y, "out of memory");
	FUZZ_CHECK(nb_net_predict(net, x, 1, y) == NB_OK, "predict: %s", nb_net_message(net));
	free(x);
	free(y);
}

/* Load size bytes of f from a temporary file and check the outcome either way. */
static void load(const uint8_t *f, size_t size)
{
	char path[FUZZ_PATH_MAX], msg[NB_MSG_MAX] = "";
	nb_net *net = (nb_net *)&net;  /* not NULL: the loader must set it */
	int status;

	fuzz_tmpfile(path, f, size, 0);
	status = nb_net_load(path, &net, msg);
	if (status == NB_OK) {
		nb_net_config cfg = nb_net_get_config(net);

		FUZZ_CHECK(net != NULL, "NB_OK without a network");
		if (size >= 8 && !memcmp(f, "NABLATNS", 8)) {
			check_version2(net, path);
		} else {
			check_config(&cfg, f, size);
			check_params(net, &cfg, f);
			check_predict(net, &cfg);
		}
		nb_net_free(net);
	} else {
		FUZZ_CHECK(status == NB_EIO || status == NB_EFORMAT || status == NB_ENOMEM,
		           "status %s: %s", nb_status_name(status), msg);
		FUZZ_CHECK(net == NULL, "*out set after: %s", msg);
		FUZZ_CHECK(fuzz_msg_names_file(msg, NB_MSG_MAX, path), "message does not name the "
		           "file: %s", msg);
	}
	unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_load_checksummed(data, size, load);
	return 0;
}
