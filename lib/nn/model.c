/* model.c -- nb_net_save() and nb_net_load(): nabla's model file, docs/model-format.md.
 *
 * Written against the public API only, as a user would. A file is built whole in memory,
 * little-endian byte by byte whatever the host, checksummed with XXH3-64, and written to a
 * temporary file renamed over the target (file.c), so that a failed save never harms an
 * old file.
 */
#define _POSIX_C_SOURCE 200809L

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <xxhash.h>

#include "file.h"
#include "le.h"
#include "net_file.h"
#include "nn_int.h"

#define MODEL_MAGIC "NABLAMLP"
#define MODEL_VERSION 1
#define FIXED_HEADER 20         /* magic, version, header length, n_layers */
#define CHECKSUM_BYTES 8
/* The largest file we read: a bound on memory for any input, and on the parameter count
 * (each is 8 bytes), which in turn bounds every layer size. */
#define MODEL_MAX_BYTES ((uint64_t)1 << 30)
#define MAX_PARAMS (MODEL_MAX_BYTES / 8)

/* Byte offsets of the fields (docs/model-format.md, "Layout"). */
#define OFF_VERSION 8
#define OFF_HEADER_LEN 12
#define OFF_N_LAYERS 16
#define OFF_SIZES 20

/* Offset of the field after the sizes, of the seed, and of the first parameter. */
static uint64_t off_config(uint64_t n) { return OFF_SIZES + 8 * n; }
static uint64_t off_seed(uint64_t n) { return off_config(n) + 16; }
static uint64_t header_len(uint64_t n) { return off_seed(n) + 8; }

/* ---- Sizes ------------------------------------------------------------------------- */

/* P = sum over l of sizes[l+1] (sizes[l] + 1), for n sizes read by size(ud, l); UINT64_MAX
 * when P exceeds MAX_PARAMS. Bounding each factor first keeps the products from
 * overflowing, whatever a corrupt file says. */
static uint64_t param_count(uint64_t (*size)(const void *, uint64_t), const void *ud,
                            uint64_t n)
{
	uint64_t count = 0;

	for (uint64_t l = 0; l + 1 < n; l++) {
		uint64_t in = size(ud, l), out = size(ud, l + 1);

		if (in > MAX_PARAMS || out > MAX_PARAMS)
			return UINT64_MAX;
		count += out * (in + 1);
		if (count > MAX_PARAMS)
			return UINT64_MAX;
	}
	return count;
}

static uint64_t file_size_at(const void *file, uint64_t l)
{
	return nn__get_u64((const unsigned char *)file + OFF_SIZES + 8 * l);
}

static uint64_t config_size_at(const void *sizes, uint64_t l)
{
	return ((const size_t *)sizes)[l];
}

/* ---- Saving ------------------------------------------------------------------------ */

/* Serialise the parameters of every layer, weights then biases, from p on. The API wants
 * a mutable net to hand out its arrays; they are only read here. */
static unsigned char *put_params(unsigned char *p, const nb_net *net, nb_net_config cfg)
{
	for (size_t l = 0; l + 1 < cfg.n_layers; l++) {
		const double *w = nb_net_weights((nb_net *)net, l);
		const double *b = nb_net_biases((nb_net *)net, l);
		size_t out = cfg.sizes[l + 1], in = cfg.sizes[l];

		assert(w != NULL && b != NULL);
		for (size_t i = 0; i < out * in; i++)
			p = nn__put_f64(p, w[i]);
		for (size_t i = 0; i < out; i++)
			p = nn__put_f64(p, b[i]);
	}
	return p;
}

/* Every parameter must be finite: a loader refuses a file with a NaN or an infinity (it
 * cannot tell a diverged network from a corrupt file), so saving one would write a file
 * that never loads. */
static int check_finite(const nb_net *net, const char *path, char *msg)
{
	nb_named_tensor ts[2 * NB_NET_MAX_LAYERS];
	size_t n = nb_net_tensors((nb_net *)net, ts, 2 * NB_NET_MAX_LAYERS), k, j;

	if (!nn__non_finite(ts, n, &k, &j))
		return NB_OK;
	return nn__file_fail(msg, NB_EINVAL, path, "%s %zu of layer %zu is %g, which a model "
	                     "file cannot hold (it would not load)", k % 2 ? "bias" : "weight",
	                     j, k / 2, ts[k].data[j]);
}

/* Build the whole file in memory: *file (the caller frees it) of *len bytes. */
static int encode(const nb_net *net, const char *path, unsigned char **file, size_t *len,
                  char *msg)
{
	nb_net_config cfg = nb_net_get_config(net);
	uint64_t n = cfg.n_layers;
	uint64_t count = param_count(config_size_at, cfg.sizes, n);
	unsigned char *buf, *p;

	if (count == UINT64_MAX || header_len(n) + 8 * count + CHECKSUM_BYTES > MODEL_MAX_BYTES)
		return nn__file_fail(msg, NB_EINVAL, path, "network too large for a model file "
		            "(over %" PRIu64 " bytes)", MODEL_MAX_BYTES);
	/* Bounded by MODEL_MAX_BYTES, the length and n fit in size_t and in the u32 fields. */
	*len = (size_t)(header_len(n) + 8 * count + CHECKSUM_BYTES);
	buf = cfg.alloc(cfg.alloc_ud, NULL, 0, *len);
	if (buf == NULL)
		return nn__file_fail(msg, NB_ENOMEM, path, "out of memory allocating %zu bytes",
		            *len);
	memcpy(buf, MODEL_MAGIC, 8);
	p = nn__put_u32(buf + OFF_VERSION, MODEL_VERSION);
	p = nn__put_u32(p, (uint32_t)header_len(n));
	p = nn__put_u32(p, (uint32_t)n);
	for (size_t l = 0; l < n; l++)
		p = nn__put_u64(p, cfg.sizes[l]);
	p = nn__put_u32(p, (uint32_t)cfg.hidden);
	p = nn__put_u32(p, (uint32_t)cfg.output);
	p = nn__put_u32(p, (uint32_t)cfg.cost);
	p = nn__put_u32(p, (uint32_t)cfg.init);
	p = nn__put_u64(p, cfg.seed);
	p = put_params(p, net, cfg);
	nn__put_u64(p, XXH3_64bits(buf, (size_t)(p - buf)));
	*file = buf;
	return NB_OK;
}

/* Whether a version-1 file holds the network: one of sizes with the choices it has
 * always had. Those are written as version 1, which every nabla reads; the others as
 * version 2. */
static bool fits_version1(const nb_net_config *cfg)
{
	return !cfg->layers && cfg->hidden <= NB_RELU && cfg->output <= NB_SOFTMAX &&
	       cfg->init <= NB_INIT_SCALED;
}

int nb_net_save(const nb_net *net, const char *path, char msg[NB_MSG_MAX])
{
	nb_net_config cfg;
	unsigned char *buf = NULL;
	size_t len = 0;
	int old_mode, status;

	if (net == NULL)
		return nn__msg_fail(msg, NB_ENULL, "nb_net_save: net is NULL");
	if (path == NULL)
		return nn__msg_fail(msg, NB_ENULL, "nb_net_save: path is NULL");
	cfg = nb_net_get_config(net);
	if (!fits_version1(&cfg))
		return nn__net_save_v2(net, path, msg);
	status = nn__check_target(path, &old_mode, msg);
	if (status == NB_OK)
		status = check_finite(net, path, msg);
	if (status == NB_OK)
		status = encode(net, path, &buf, &len, msg);
	if (status != NB_OK)
		return status;
	status = nn__replace_file(cfg.alloc, cfg.alloc_ud, path, old_mode, buf, len, msg);
	cfg.alloc(cfg.alloc_ud, buf, len, 0);
	return status;
}

/* ---- Reading ----------------------------------------------------------------------- */

/* The caller's choices for one load: nb_load_opts with the defaults filled in. */
struct model_load {
	nb_alloc_fn alloc;
	void *ud;
	size_t max_bytes;
};

static struct model_load load_options(const nb_load_opts *opts)
{
	struct model_load ld;

	nn__load_settings(opts, &ld.alloc, &ld.ud, &ld.max_bytes);
	return ld;
}

/* ---- Loading: the checks of docs/model-format.md, in order ------------------------- */

/* Steps 2 to 5: fixed header, magic, version, and a file size equal to the size T the
 * header implies (*total). */
static int check_layout(const char *path, const unsigned char *f, size_t len,
                        uint64_t *total, char *msg)
{
	uint64_t n, count;

	if (len < FIXED_HEADER)
		return nn__file_fail(msg, NB_EFORMAT, path, "truncated: %zu bytes, shorter than "
		            "the %d-byte fixed header", len, FIXED_HEADER);
	if (memcmp(f, MODEL_MAGIC, 8) != 0)
		return nn__file_fail(msg, NB_EFORMAT, path, "bad magic at byte 0 (not a nabla "
		            "model file)");
	if (nn__get_u32(f + OFF_VERSION) != MODEL_VERSION)
		return nn__file_fail(msg, NB_EFORMAT, path, "unsupported version %" PRIu32 " at "
		            "byte %d (this nabla reads version %d)", nn__get_u32(f + OFF_VERSION),
		            OFF_VERSION, MODEL_VERSION);
	n = nn__get_u32(f + OFF_N_LAYERS);
	if (len < off_config(n))  /* the sizes are not all there: T is unknown */
		return nn__file_fail(msg, NB_EFORMAT, path, "truncated: %zu bytes, the header "
		            "says at least %" PRIu64, len, header_len(n) + CHECKSUM_BYTES);
	count = param_count(file_size_at, f, n);
	if (count == UINT64_MAX)
		return nn__file_fail(msg, NB_EFORMAT, path, "truncated: %zu bytes, the header "
		            "says more than %" PRIu64, len, MODEL_MAX_BYTES);
	*total = header_len(n) + 8 * count + CHECKSUM_BYTES;
	if (len < *total)
		return nn__file_fail(msg, NB_EFORMAT, path, "truncated: %zu bytes, the header "
		            "says %" PRIu64, len, *total);
	if (len > *total)
		return nn__file_fail(msg, NB_EFORMAT, path, "%" PRIu64 " bytes after the end of "
		            "the model (byte %" PRIu64 ")", len - *total, *total);
	return NB_OK;
}

/* Step 6: the XXH3-64 of everything before the checksum. */
static int check_sum(const char *path, const unsigned char *f, uint64_t total, char *msg)
{
	uint64_t at = total - CHECKSUM_BYTES;
	uint64_t stored = nn__get_u64(f + at), computed = XXH3_64bits(f, (size_t)at);

	if (stored != computed)
		return nn__file_fail(msg, NB_EFORMAT, path, "checksum mismatch at byte %" PRIu64
		            " (stored 0x%016" PRIx64 ", computed 0x%016" PRIx64 "): the file is "
		            "corrupt", at, stored, computed);
	return NB_OK;
}

static const char *activation_name(uint32_t a)
{
	static const char *const names[] = { "sigmoid", "tanh", "relu", "softmax" };

	return a < 4 ? names[a] : "unknown";
}

/* Step 7, the structure: header length, layer count and sizes. */
static int check_shape(const char *path, const unsigned char *f, char *msg)
{
	uint64_t n = nn__get_u32(f + OFF_N_LAYERS);
	uint32_t h = nn__get_u32(f + OFF_HEADER_LEN);

	if (h != header_len(n))
		return nn__file_fail(msg, NB_EFORMAT, path, "header length %" PRIu32 " at byte "
		            "%d, %" PRIu64 " expected for %" PRIu64 " layers", h, OFF_HEADER_LEN,
		            header_len(n), n);
	if (n < 2)
		return nn__file_fail(msg, NB_EFORMAT, path, "n_layers is %" PRIu64 " at byte %d "
		            "(a network has at least 2)", n, OFF_N_LAYERS);
	for (uint64_t l = 0; l < n; l++) {
		if (file_size_at(f, l) == 0)
			return nn__file_fail(msg, NB_EFORMAT, path, "layer %" PRIu64 " has size 0 "
			            "at byte %" PRIu64, l, OFF_SIZES + 8 * l);
	}
	return NB_OK;
}

/* Step 7, the choices: each enum in range, and cross-entropy only where nb_net_new()
 * allows it. */
static int check_choices(const char *path, const unsigned char *f, char *msg)
{
	uint64_t at = off_config(nn__get_u32(f + OFF_N_LAYERS));
	uint32_t hidden = nn__get_u32(f + at), output = nn__get_u32(f + at + 4);
	uint32_t cost = nn__get_u32(f + at + 8), init = nn__get_u32(f + at + 12);

	if (hidden > NB_RELU)
		return nn__file_fail(msg, NB_EFORMAT, path, "hidden activation %" PRIu32 " at "
		            "byte %" PRIu64 " (0 sigmoid, 1 tanh or 2 relu expected)", hidden, at);
	if (output > NB_SOFTMAX)
		return nn__file_fail(msg, NB_EFORMAT, path, "output activation %" PRIu32 " at "
		            "byte %" PRIu64 " (0 to 3 expected)", output, at + 4);
	if (cost > NB_CROSS_ENTROPY)
		return nn__file_fail(msg, NB_EFORMAT, path, "cost %" PRIu32 " at byte %" PRIu64 " "
		            "(0 quadratic or 1 cross-entropy expected)", cost, at + 8);
	if (init > NB_INIT_SCALED)
		return nn__file_fail(msg, NB_EFORMAT, path, "initialisation %" PRIu32 " at byte %"
		            PRIu64 " (0 normal or 1 scaled expected)", init, at + 12);
	if (cost == NB_CROSS_ENTROPY && output != NB_SIGMOID && output != NB_SOFTMAX)
		return nn__file_fail(msg, NB_EFORMAT, path, "cross-entropy cost at byte %" PRIu64
		            " needs a sigmoid or softmax output, not %s", at + 8,
		            activation_name(output));
	return NB_OK;
}

/* Step 7, the parameters: every one finite. */
static int check_params(const char *path, const unsigned char *f, char *msg)
{
	uint64_t n = nn__get_u32(f + OFF_N_LAYERS), at = header_len(n);

	for (uint64_t l = 0; l + 1 < n; l++) {
		uint64_t in = file_size_at(f, l), out = file_size_at(f, l + 1);

		for (uint64_t i = 0; i < out * (in + 1); i++, at += 8) {
			double v = nn__get_f64(f + at);
			int bias = i >= out * in;  /* the biases follow the weights */

			if (isfinite(v))
				continue;
			return nn__file_fail(msg, NB_EFORMAT, path, "%s %" PRIu64 " of layer %"
			            PRIu64 " is %g at byte %" PRIu64, bias ? "bias" : "weight",
			            bias ? i - out * in : i, l, v, at);
		}
	}
	return NB_OK;
}

/* Copy the stored parameters over the fresh random ones of net. */
static void copy_params(nb_net *net, const unsigned char *f, const nb_net_config *cfg)
{
	const unsigned char *p = f + header_len(cfg->n_layers);

	for (size_t l = 0; l + 1 < cfg->n_layers; l++) {
		double *w = nb_net_weights(net, l), *b = nb_net_biases(net, l);
		size_t out = cfg->sizes[l + 1], in = cfg->sizes[l];

		assert(w != NULL && b != NULL);
		for (size_t i = 0; i < out * in; i++, p += 8)
			w[i] = nn__get_f64(p);
		for (size_t i = 0; i < out; i++, p += 8)
			b[i] = nn__get_f64(p);
	}
}

/* Step 8: a network of the checked configuration, with the stored parameters. */
static int build(const char *path, const unsigned char *f, const struct model_load *ld,
                 nb_net **out, char *msg)
{
	size_t n = nn__get_u32(f + OFF_N_LAYERS);
	uint64_t at = off_config(n);
	size_t *sizes = ld->alloc(ld->ud, NULL, 0, n * sizeof *sizes);
	nb_net_config cfg;
	char why[NB_MSG_MAX] = "";
	int status;

	if (sizes == NULL)
		return nn__file_fail(msg, NB_ENOMEM, path, "out of memory");
	for (size_t l = 0; l < n; l++)
		sizes[l] = (size_t)file_size_at(f, l);  /* at most MAX_PARAMS (step 5) */
	cfg = (nb_net_config){
		.n_layers = n, .sizes = sizes,
		.hidden = (int)nn__get_u32(f + at), .output = (int)nn__get_u32(f + at + 4),
		.cost = (int)nn__get_u32(f + at + 8), .init = (int)nn__get_u32(f + at + 12),
		.seed = nn__get_u64(f + off_seed(n)),
		.alloc = ld->alloc, .alloc_ud = ld->ud,
	};
	status = nb_net_new(&cfg, out, why);
	if (status == NB_OK)
		copy_params(*out, f, &cfg);
	else
		/* Our checks mirror nb_net_new()'s; anything it still refuses is the file's. */
		status = nn__file_fail(msg, status == NB_EINVAL ? NB_EFORMAT : status, path, "%s",
		                       why);
	ld->alloc(ld->ud, sizes, n * sizeof *sizes, 0);
	return status;
}

/* Check the file's bytes in the documented order, then build the network. */
static int decode(const char *path, const unsigned char *f, size_t len,
                  const struct model_load *ld, nb_net **out, char *msg)
{
	uint64_t total = 0;
	int status;

	status = check_layout(path, f, len, &total, msg);
	if (status == NB_OK)
		status = check_sum(path, f, total, msg);
	if (status == NB_OK)
		status = check_shape(path, f, msg);
	if (status == NB_OK)
		status = check_choices(path, f, msg);
	if (status == NB_OK)
		status = check_params(path, f, msg);
	return status == NB_OK ? build(path, f, ld, out, msg) : status;
}

int nb_net_load_opts(const char *path, const nb_load_opts *opts, nb_net **out, char msg[NB_MSG_MAX])
{
	struct model_load ld = load_options(opts);
	unsigned char *buf = NULL;
	size_t cap = 0, len = 0;
	int status;

	if (out != NULL)
		*out = NULL;
	if (path == NULL)
		return nn__msg_fail(msg, NB_ENULL, "nb_net_load: path is NULL");
	if (out == NULL)
		return nn__msg_fail(msg, NB_ENULL, "nb_net_load: out is NULL");
	status = nn__read_file(path, ld.alloc, ld.ud, MODEL_MAX_BYTES, ld.max_bytes, "model",
	                       &buf, &cap, &len, msg);
	if (status != NB_OK)
		return status;
	if (len >= 8 && !memcmp(buf, NN_TENSORS_MAGIC, 8)) {
		ld.alloc(ld.ud, buf, cap, 0);  /* version 2: the tensor file's loader reads it */
		return nn__net_load_v2(path, opts, out, msg);
	}
	status = decode(path, buf, len, &ld, out, msg);
	if (buf)
		ld.alloc(ld.ud, buf, cap, 0);
	if (status != NB_OK)
		*out = NULL;
	return status;
}

int nb_net_load(const char *path, nb_net **out, char msg[NB_MSG_MAX])
{
	return nb_net_load_opts(path, NULL, out, msg);
}
