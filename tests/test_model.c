/* test_model.c -- nb_net_save() and nb_net_load(): a round trip is bit-exact, the file is
 * laid out as docs/model-format.md says, every corruption is caught with a message, and a
 * failed save never harms the file it would have replaced. Files are written in the
 * current directory (the build tree) under unique names and removed afterwards. */
#define _XOPEN_SOURCE 700

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* The test computes checksums itself, with the header-only build of xxHash, so that it
 * checks the format independently of lib/nn/model.c. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "helpers.h"

#define PATH_MAX_LEN 128
#define CRAFT_MAX 4096          /* bytes of a hand-made file; the nets below need < 1000 */

/* ---- Files ------------------------------------------------------------------------- */

/* A file name no other test (nor another run of this program) uses: the process id, a
 * counter and a tag. */
static void unique_path(char *path, const char *tag)
{
	static unsigned counter;

	snprintf(path, PATH_MAX_LEN, "test_model_%ld_%u_%s.bin", (long)getpid(), counter++,
	         tag);
}

/* The whole file, malloc'd; *len gets its size. */
static unsigned char *read_bytes(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = malloc(CRAFT_MAX);

	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(buf);
	*len = fread(buf, 1, CRAFT_MAX, f);
	ck_assert(feof(f));
	fclose(f);
	return buf;
}

static void write_bytes(const char *path, const unsigned char *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

/* No file in the current directory is named path plus a suffix: no temporary file of a
 * save to path was left behind. */
static void expect_no_temporaries(const char *path)
{
	DIR *d = opendir(".");
	struct dirent *e;
	size_t n = strlen(path);

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, path, n) == 0 && e->d_name[n] != '\0')
			ck_abort_msg("temporary file left behind: %s", e->d_name);
	}
	closedir(d);
}

/* ---- Networks ---------------------------------------------------------------------- */

static const size_t sizes_342[] = { 3, 4, 2 };
static const size_t sizes_231[] = { 2, 3, 1 };
static const size_t sizes_4533[] = { 4, 5, 3, 3 };

static nb_net *make_net(size_t n_layers, const size_t *sizes, unsigned long long seed)
{
	nb_net_config cfg = { .n_layers = n_layers, .sizes = sizes, .seed = seed };
	char msg[NB_MSG_MAX] = "";
	nb_net *net = NULL;

	ck_assert_msg(nb_net_new(&cfg, &net, msg) == NB_OK, "nb_net_new: %s", msg);
	return net;
}

/* Save net to path, which must succeed. */
static void save_ok(const nb_net *net, const char *path)
{
	char msg[NB_MSG_MAX] = "";

	ck_assert_msg(nb_net_save(net, path, msg) == NB_OK, "save: %s", msg);
}

static nb_net *load_ok(const char *path)
{
	char msg[NB_MSG_MAX] = "";
	nb_net *net = NULL;

	ck_assert_msg(nb_net_load(path, &net, msg) == NB_OK, "load: %s", msg);
	ck_assert_ptr_nonnull(net);
	return net;
}

/* Whether msg ends with ": PATH", as every message about a file does. */
static int names_file(const char *msg, const char *path)
{
	size_t m = strlen(msg), n = strlen(path);

	return m > n + 2 && strncmp(msg + m - n - 2, ": ", 2) == 0 &&
	       strcmp(msg + m - n, path) == 0;
}

/* The load fails with this status, *out is NULL, and the message ends with the path
 * (when want is NULL) or is exactly "want: path". */
static void expect_load_fails(const char *path, int status, const char *want)
{
	char msg[NB_MSG_MAX] = "", full[NB_MSG_MAX + PATH_MAX_LEN];
	nb_net *dummy = make_net(2, sizes_231, 1), *net = dummy;

	ck_assert_str_eq(nb_status_name(nb_net_load(path, &net, msg)), nb_status_name(status));
	ck_assert_ptr_null(net);
	nb_net_free(dummy);
	if (want == NULL) {
		ck_assert_msg(names_file(msg, path), "message does not name the file: \"%s\"",
		              msg);
		return;
	}
	snprintf(full, sizeof full, "%s: %s", want, path);
	ck_assert_str_eq(msg, full);
}

static void expect_same_config(const nb_net *a, const nb_net *b)
{
	nb_net_config ca = nb_net_get_config(a), cb = nb_net_get_config(b);

	ck_assert_uint_eq(ca.n_layers, cb.n_layers);
	for (size_t l = 0; l < ca.n_layers; l++)
		ck_assert_uint_eq(ca.sizes[l], cb.sizes[l]);
	ck_assert_int_eq(ca.hidden, cb.hidden);
	ck_assert_int_eq(ca.output, cb.output);
	ck_assert_int_eq(ca.cost, cb.cost);
	ck_assert_int_eq(ca.init, cb.init);
	ck_assert(ca.seed == cb.seed);
}

/* Every weight and bias bit for bit. */
static void expect_same_params(nb_net *a, nb_net *b)
{
	nb_net_config cfg = nb_net_get_config(a);

	for (size_t l = 0; l + 1 < cfg.n_layers; l++) {
		size_t out = cfg.sizes[l + 1], in = cfg.sizes[l];

		ck_assert_ptr_nonnull(nb_net_weights(b, l));
		ck_assert(memcmp(nb_net_weights(a, l), nb_net_weights(b, l),
		                 out * in * sizeof(double)) == 0);
		ck_assert(memcmp(nb_net_biases(a, l), nb_net_biases(b, l),
		                 out * sizeof(double)) == 0);
	}
}

/* Both nets give bit-identical outputs on the same random inputs. */
static void expect_same_predictions(nb_net *a, nb_net *b)
{
	enum { N = 7 };
	nb_net_config cfg = nb_net_get_config(a);
	size_t in = cfg.sizes[0], out = cfg.sizes[cfg.n_layers - 1];
	double x[N * 8], ya[N * 8], yb[N * 8];
	test_rng r;

	ck_assert(in <= 8 && out <= 8);
	rng_seed(&r, 99);
	rng_fill(&r, x, N * in, -2.0, 2.0);
	ck_assert_int_eq(nb_net_predict(a, x, N, ya), NB_OK);
	ck_assert_int_eq(nb_net_predict(b, x, N, yb), NB_OK);
	ck_assert(memcmp(ya, yb, N * out * sizeof(double)) == 0);
}

/* ---- Round trips ------------------------------------------------------------------- */

static const nb_net_config round_trip_configs[] = {
	{ .n_layers = 3, .sizes = sizes_342, .seed = 42 },
	{ .n_layers = 4, .sizes = sizes_4533, .hidden = NB_TANH, .output = NB_SOFTMAX,
	  .cost = NB_CROSS_ENTROPY, .init = NB_INIT_SCALED, .seed = 0xfedcba9876543210ULL },
	{ .n_layers = 3, .sizes = sizes_231, .hidden = NB_RELU, .output = NB_SIGMOID,
	  .cost = NB_CROSS_ENTROPY, .seed = UINT64_MAX },
};

START_TEST(test_round_trip_is_bit_exact)
{
	char path[PATH_MAX_LEN];
	nb_net *a = NULL, *b;

	ck_assert_int_eq(nb_net_new(&round_trip_configs[_i], &a, NULL), NB_OK);
	unique_path(path, "round_trip");
	save_ok(a, path);
	b = load_ok(path);
	expect_same_config(a, b);
	expect_same_params(a, b);
	expect_same_predictions(a, b);
	nb_net_free(a);
	nb_net_free(b);
	expect_no_temporaries(path);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* The [2, 3, 1] file is the worked example of docs/model-format.md, field by field. */
START_TEST(test_file_layout_matches_the_document)
{
	char path[PATH_MAX_LEN];
	nb_net *net = make_net(3, sizes_231, 0x0102030405060708ULL);
	unsigned char *f;
	size_t len;
	uint64_t bits;
	double w0;

	unique_path(path, "layout");
	save_ok(net, path);
	f = read_bytes(path, &len);
	ck_assert_uint_eq(len, 180);
	ck_assert(memcmp(f, "NABLAMLP\x01\0\0\0\x44\0\0\0\x03\0\0\0", 20) == 0);
	ck_assert(memcmp(f + 20, "\x02\0\0\0\0\0\0\0\x03\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0",
	                 24) == 0);
	ck_assert(memcmp(f + 44, (unsigned char[16]){ 0 }, 16) == 0);  /* all defaults */
	ck_assert(memcmp(f + 60, "\x08\x07\x06\x05\x04\x03\x02\x01", 8) == 0);
	bits = 0;
	for (int i = 7; i >= 0; i--)
		bits = bits << 8 | f[68 + i];
	memcpy(&w0, &bits, sizeof w0);
	ck_assert(w0 == nb_net_weights(net, 0)[0]);
	bits = 0;
	for (int i = 7; i >= 0; i--)
		bits = bits << 8 | f[172 + i];
	ck_assert(bits == XXH3_64bits(f, 172));
	free(f);
	nb_net_free(net);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* ---- Corruption -------------------------------------------------------------------- */

/* Saves a [3, 4, 2] net and returns the file's bytes (284 of them). */
static unsigned char *saved_342(const char *path, size_t *len)
{
	nb_net *net = make_net(3, sizes_342, 7);
	unsigned char *f;

	save_ok(net, path);
	nb_net_free(net);
	f = read_bytes(path, len);
	ck_assert_uint_eq(*len, 284);
	return f;
}

START_TEST(test_every_flipped_byte_is_rejected)
{
	static const unsigned char masks[] = { 0xff, 0x01 };
	char good[PATH_MAX_LEN], bad[PATH_MAX_LEN];
	size_t len;
	unsigned char *f;

	unique_path(good, "flip_good");
	unique_path(bad, "flip_bad");
	f = saved_342(good, &len);
	for (size_t m = 0; m < sizeof masks; m++) {
		for (size_t i = 0; i < len; i++) {
			f[i] ^= masks[m];
			write_bytes(bad, f, len);
			f[i] ^= masks[m];
			expect_load_fails(bad, NB_EFORMAT, NULL);
		}
	}
	free(f);
	ck_assert_int_eq(remove(good), 0);
	ck_assert_int_eq(remove(bad), 0);
}
END_TEST

START_TEST(test_every_truncation_is_rejected)
{
	char good[PATH_MAX_LEN], bad[PATH_MAX_LEN];
	size_t len;
	unsigned char *f;

	unique_path(good, "trunc_good");
	unique_path(bad, "trunc_bad");
	f = saved_342(good, &len);
	for (size_t n = 0; n < len; n++) {
		write_bytes(bad, f, n);
		expect_load_fails(bad, NB_EFORMAT, NULL);
	}
	write_bytes(bad, f, 10);
	expect_load_fails(bad, NB_EFORMAT, "truncated: 10 bytes, shorter than the 20-byte "
	                  "fixed header");
	write_bytes(bad, f, 200);
	expect_load_fails(bad, NB_EFORMAT, "truncated: 200 bytes, the header says 284");
	free(f);
	ck_assert_int_eq(remove(good), 0);
	ck_assert_int_eq(remove(bad), 0);
}
END_TEST

START_TEST(test_appended_bytes_are_rejected)
{
	char path[PATH_MAX_LEN];
	size_t len;
	unsigned char *f;

	unique_path(path, "append");
	f = saved_342(path, &len);
	memcpy(f + len, "extra", 5);
	write_bytes(path, f, len + 5);
	expect_load_fails(path, NB_EFORMAT, "5 bytes after the end of the model (byte 284)");
	free(f);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

START_TEST(test_bad_magic_and_version_have_their_messages)
{
	char path[PATH_MAX_LEN];
	size_t len;
	unsigned char *f;

	unique_path(path, "magic");
	f = saved_342(path, &len);
	f[7] = 'Q';
	write_bytes(path, f, len);
	expect_load_fails(path, NB_EFORMAT, "bad magic at byte 0 (not a nabla model file)");
	f[7] = 'P';
	f[8] = 7;
	write_bytes(path, f, len);
	expect_load_fails(path, NB_EFORMAT, "unsupported version 7 at byte 8 (this nabla "
	                  "reads version 1)");
	f[8] = 1;
	f[17] = 1;  /* n_layers 259: the sizes alone would run past the end */
	write_bytes(path, f, len);
	expect_load_fails(path, NB_EFORMAT, "truncated: 284 bytes, the header says at least "
	                  "2124");
	free(f);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

START_TEST(test_checksum_mismatch_has_its_message)
{
	char path[PATH_MAX_LEN], want[NB_MSG_MAX];
	size_t len;
	unsigned char *f;
	uint64_t stored = 0;

	unique_path(path, "checksum");
	f = saved_342(path, &len);
	f[100] ^= 0x10;  /* inside the weights */
	write_bytes(path, f, len);
	for (int i = 7; i >= 0; i--)
		stored = stored << 8 | f[276 + i];
	snprintf(want, sizeof want, "checksum mismatch at byte 276 (stored 0x%016llx, "
	         "computed 0x%016llx): the file is corrupt", (unsigned long long)stored,
	         (unsigned long long)XXH3_64bits(f, 276));
	expect_load_fails(path, NB_EFORMAT, want);
	free(f);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* ---- Files with a valid checksum but bad contents, made by hand --------------------- */

/* The fields of a file, written by the test's own encoder (from the document, not from
 * lib/nn/model.c). params are i / 8 - 1 except the one at bad_index + 1 (0: none). */
struct craft {
	uint32_t header_len;    /* 0: the right one, 44 + 8n */
	uint32_t n;
	uint64_t sizes[4];
	uint32_t hidden, output, cost, init;
	uint64_t seed;
	size_t bad_at;
	double bad;
	const char *want;       /* the message after "path: "; NULL: the load succeeds */
};

static unsigned char *put_le(unsigned char *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (unsigned char)(v >> (8 * i));
	return p + bytes;
}

static double craft_param(const struct craft *c, size_t i)
{
	return c->bad_at == i + 1 ? c->bad : (double)i / 8.0 - 1.0;
}

/* Parameters the sizes imply; none when there would be more than fit in CRAFT_MAX. */
static size_t craft_params(const struct craft *c)
{
	uint64_t p = 0;

	for (uint32_t l = 0; l + 1 < c->n; l++) {
		if (c->sizes[l] > 64 || c->sizes[l + 1] > 64)
			return 0;
		p += c->sizes[l + 1] * (c->sizes[l] + 1);
	}
	return (size_t)p;
}

static size_t craft_file(unsigned char *buf, const struct craft *c)
{
	unsigned char *p = buf;
	uint64_t bits;

	memcpy(p, "NABLAMLP", 8);
	p = put_le(p + 8, 1, 4);
	p = put_le(p, c->header_len ? c->header_len : 44 + 8 * c->n, 4);
	p = put_le(p, c->n, 4);
	for (uint32_t l = 0; l < c->n; l++)
		p = put_le(p, c->sizes[l], 8);
	p = put_le(p, c->hidden, 4);
	p = put_le(p, c->output, 4);
	p = put_le(p, c->cost, 4);
	p = put_le(p, c->init, 4);
	p = put_le(p, c->seed, 8);
	for (size_t i = 0; i < craft_params(c); i++) {
		double v = craft_param(c, i);

		memcpy(&bits, &v, sizeof bits);
		p = put_le(p, bits, 8);
	}
	p = put_le(p, XXH3_64bits(buf, (size_t)(p - buf)), 8);
	return (size_t)(p - buf);
}

static const struct craft crafted[] = {
	{ .n = 3, .sizes = { 3, 4, 2 }, .hidden = NB_RELU, .output = NB_SOFTMAX,
	  .cost = NB_CROSS_ENTROPY, .init = NB_INIT_SCALED, .seed = 0xdeadbeefcafef00dULL },
	{ .n = 3, .sizes = { 3, 4, 2 }, .header_len = 99,
	  .want = "header length 99 at byte 12, 68 expected for 3 layers" },
	{ .n = 1, .sizes = { 3 }, .want = "n_layers is 1 at byte 16 (a network has at least 2)" },
	{ .n = 0, .want = "n_layers is 0 at byte 16 (a network has at least 2)" },
	{ .n = 3, .sizes = { 0, 4, 2 }, .want = "layer 0 has size 0 at byte 20" },
	{ .n = 3, .sizes = { 3, 0, 2 }, .want = "layer 1 has size 0 at byte 28" },
	{ .n = 3, .sizes = { 3, 4, 2 }, .hidden = NB_SOFTMAX,
	  .want = "hidden activation 3 at byte 44 (0 sigmoid, 1 tanh or 2 relu expected)" },
	{ .n = 3, .sizes = { 3, 4, 2 }, .output = 4,
	  .want = "output activation 4 at byte 48 (0 to 3 expected)" },
	{ .n = 3, .sizes = { 3, 4, 2 }, .cost = 2,
	  .want = "cost 2 at byte 52 (0 quadratic or 1 cross-entropy expected)" },
	{ .n = 3, .sizes = { 3, 4, 2 }, .init = 0x80000000u,
	  .want = "initialisation 2147483648 at byte 56 (0 normal or 1 scaled expected)" },
	{ .n = 3, .sizes = { 3, 4, 2 }, .output = NB_TANH, .cost = NB_CROSS_ENTROPY,
	  .want = "cross-entropy cost at byte 52 needs a sigmoid or softmax output, not tanh" },
	{ .n = 3, .sizes = { 3, 4, 2 }, .bad_at = 5 + 1, .bad = NAN,
	  .want = "weight 5 of layer 0 is nan at byte 108" },
	{ .n = 3, .sizes = { 3, 4, 2 }, .bad_at = 25 + 1, .bad = -INFINITY,
	  .want = "bias 1 of layer 1 is -inf at byte 268" },
	{ .n = 3, .sizes = { 3, (uint64_t)1 << 40, 2 },
	  .want = "truncated: 76 bytes, the header says more than 1073741824" },
	{ .n = 2, .sizes = { 1, ((uint64_t)1 << 24) + 1 },
	  .want = "truncated: 68 bytes, the header says 268435540" },
};

/* A file the test wrote itself loads with exactly its fields and parameters. */
static void expect_crafted_net(const char *path, const struct craft *c)
{
	nb_net *net = load_ok(path);
	nb_net_config cfg = nb_net_get_config(net);
	size_t i = 0;

	ck_assert_uint_eq(cfg.n_layers, c->n);
	ck_assert_int_eq(cfg.hidden, c->hidden);
	ck_assert_int_eq(cfg.output, c->output);
	ck_assert_int_eq(cfg.cost, c->cost);
	ck_assert_int_eq(cfg.init, c->init);
	ck_assert(cfg.seed == c->seed);
	for (size_t l = 0; l + 1 < c->n; l++) {
		size_t out = c->sizes[l + 1], in = c->sizes[l];

		ck_assert_uint_eq(cfg.sizes[l], in);
		for (size_t k = 0; k < out * in; k++)
			ck_assert(nb_net_weights(net, l)[k] == craft_param(c, i++));
		for (size_t k = 0; k < out; k++)
			ck_assert(nb_net_biases(net, l)[k] == craft_param(c, i++));
	}
	nb_net_free(net);
}

START_TEST(test_crafted_file_is_checked_field_by_field)
{
	const struct craft *c = &crafted[_i];
	char path[PATH_MAX_LEN];
	unsigned char buf[CRAFT_MAX];

	unique_path(path, "craft");
	write_bytes(path, buf, craft_file(buf, c));
	if (c->want)
		expect_load_fails(path, NB_EFORMAT, c->want);
	else
		expect_crafted_net(path, c);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* ---- Bad arguments and missing files ----------------------------------------------- */

START_TEST(test_missing_file_is_an_io_error)
{
	char path[PATH_MAX_LEN];

	unique_path(path, "missing");
	expect_load_fails(path, NB_EIO, "cannot open: No such file or directory");
}
END_TEST

/* A FIFO with no writer would block a reader forever, and a directory is no file: both
 * are refused without being read. The alarm ends the test if the load blocks. */
START_TEST(test_load_refuses_what_is_not_a_regular_file)
{
	char path[PATH_MAX_LEN];

	unique_path(path, "fifo");
	ck_assert_int_eq(mkfifo(path, 0644), 0);
	alarm(20);
	expect_load_fails(path, NB_EIO, "cannot open: a FIFO, not a regular file");
	alarm(0);
	ck_assert_int_eq(remove(path), 0);
	expect_load_fails(".", NB_EIO, "cannot open: a directory, not a regular file");
	expect_load_fails("/dev/zero", NB_EIO, "cannot open: a character device, not a regular "
	                  "file");
}
END_TEST

/* A file over 1 GiB is refused before it is read (a sparse file: no disk needed). */
START_TEST(test_huge_file_is_rejected_unread)
{
	char path[PATH_MAX_LEN];
	FILE *f;

	unique_path(path, "huge");
	f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(ftruncate(fileno(f), ((off_t)1 << 30) + 1), 0);
	ck_assert_int_eq(fclose(f), 0);
	expect_load_fails(path, NB_EFORMAT, "larger than 1073741824 bytes: not a nabla model "
	                  "file");
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* LONG_DIR, two levels of 150-byte names inside it, then a file: a path of over 300
 * bytes whose every component is short enough to exist. */
#define LONG_DIR "test_model_long"
#define LONG_NAME "dddddddddddddddddddddddddddddddddddddddddddddddddd" \
	"dddddddddddddddddddddddddddddddddddddddddddddddddd" \
	"dddddddddddddddddddddddddddddddddddddddddddddddddd"
#define LONG_PATH LONG_DIR "/" LONG_NAME "/" LONG_NAME "/model.bin"

static void remove_long_dirs(void)
{
	remove(LONG_PATH);
	rmdir(LONG_DIR "/" LONG_NAME "/" LONG_NAME);
	rmdir(LONG_DIR "/" LONG_NAME);
	rmdir(LONG_DIR);
}

/* With a path of over 300 bytes, each message of saving and loading still starts with
 * its whole reason. */
START_TEST(test_long_path_keeps_the_reason)
{
	char msg[NB_MSG_MAX], reason[NB_MSG_MAX];
	nb_net *net = make_net(3, sizes_342, 1), *out = NULL;

	ck_assert_uint_gt(strlen(LONG_PATH), 300);
	remove_long_dirs();
	snprintf(reason, sizeof reason, "cannot open: %s", strerror(ENOENT));
	ck_assert_int_eq(nb_net_load(LONG_PATH, &out, msg), NB_EIO);
	expect_reason_then_path(msg, reason, LONG_PATH);
	snprintf(reason, sizeof reason, "cannot create a temporary file: %s", strerror(ENOENT));
	ck_assert_int_eq(nb_net_save(net, LONG_PATH, msg), NB_EIO);
	expect_reason_then_path(msg, reason, LONG_PATH);
	ck_assert_int_eq(mkdir(LONG_DIR, 0755), 0);
	ck_assert_int_eq(mkdir(LONG_DIR "/" LONG_NAME, 0755), 0);
	ck_assert_int_eq(mkdir(LONG_DIR "/" LONG_NAME "/" LONG_NAME, 0755), 0);
	write_bytes(LONG_PATH, (const unsigned char *)"NABLAMLQ\1\0\0\0\0\0\0\0\0\0\0\0", 20);
	ck_assert_int_eq(nb_net_load(LONG_PATH, &out, msg), NB_EFORMAT);
	expect_reason_then_path(msg, "bad magic at byte 0 (not a nabla model file)", LONG_PATH);
	ck_assert_ptr_null(out);
	nb_net_free(net);
	remove_long_dirs();
}
END_TEST

START_TEST(test_null_arguments_are_rejected)
{
	char path[PATH_MAX_LEN], msg[NB_MSG_MAX];
	nb_net *net = make_net(3, sizes_342, 1), *out = net;

	unique_path(path, "null");
	ck_assert_int_eq(nb_net_save(NULL, path, msg), NB_ENULL);
	ck_assert_str_eq(msg, "nb_net_save: net is NULL");
	ck_assert_int_eq(nb_net_save(net, NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "nb_net_save: path is NULL");
	ck_assert_int_eq(nb_net_save(NULL, NULL, NULL), NB_ENULL);
	ck_assert_int_eq(nb_net_load(NULL, &out, msg), NB_ENULL);
	ck_assert_ptr_null(out);
	ck_assert_str_eq(msg, "nb_net_load: path is NULL");
	ck_assert_int_eq(nb_net_load(path, NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "nb_net_load: out is NULL");
	ck_assert_int_eq(nb_net_load(NULL, NULL, NULL), NB_ENULL);
	ck_assert_int_eq(access(path, F_OK), -1);  /* nothing was written */
	nb_net_free(net);
}
END_TEST

START_TEST(test_msg_may_be_null)
{
	char path[PATH_MAX_LEN];
	nb_net *net = make_net(3, sizes_342, 1), *out = net;

	unique_path(path, "nullmsg");
	ck_assert_int_eq(nb_net_load(path, &out, NULL), NB_EIO);
	ck_assert_ptr_null(out);
	ck_assert_int_eq(nb_net_save(net, path, NULL), NB_OK);
	ck_assert_int_eq(nb_net_load(path, &out, NULL), NB_OK);
	nb_net_free(out);
	nb_net_free(net);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* ---- Atomic saving ----------------------------------------------------------------- */

/* Save net to path with the file size limit set to limit bytes, so that the write of the
 * temporary file fails part-way, even for root. Nothing of Check's may run meanwhile: it
 * writes to files of its own. */
static int save_with_size_limit(const nb_net *net, const char *path, rlim_t limit,
                                char *msg)
{
	struct rlimit old, low;
	void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);  /* EFBIG, not a signal */
	int status;

	getrlimit(RLIMIT_FSIZE, &old);
	low = old;
	low.rlim_cur = limit;
	setrlimit(RLIMIT_FSIZE, &low);
	status = nb_net_save(net, path, msg);
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, old_handler);
	return status;
}

START_TEST(test_failed_save_keeps_the_old_file)
{
	char path[PATH_MAX_LEN], msg[NB_MSG_MAX] = "";
	nb_net *a = make_net(3, sizes_342, 1), *b = make_net(3, sizes_342, 2), *c;
	unsigned char *before, *after;
	size_t len_before, len_after;

	unique_path(path, "atomic");
	save_ok(a, path);
	before = read_bytes(path, &len_before);
	ck_assert_int_eq(save_with_size_limit(b, path, 100, msg), NB_EIO);
	ck_assert_msg(names_file(msg, path), "message: %s", msg);
	ck_assert_ptr_nonnull(strstr(msg, "cannot write"));
	after = read_bytes(path, &len_after);
	ck_assert_uint_eq(len_after, len_before);
	ck_assert(memcmp(before, after, len_before) == 0);
	expect_no_temporaries(path);
	save_ok(b, path);  /* the same save without the limit replaces a by b */
	expect_no_temporaries(path);
	c = load_ok(path);
	expect_same_params(b, c);
	free(before);
	free(after);
	nb_net_free(a);
	nb_net_free(b);
	nb_net_free(c);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* Saving runs out of memory at each of its allocations in turn (they go through the
 * network's allocator): each failure is NB_ENOMEM and leaves the old file as it was. */
START_TEST(test_save_out_of_memory_keeps_the_old_file)
{
	char path[PATH_MAX_LEN], msg[NB_MSG_MAX];
	nb_net *a = make_net(3, sizes_342, 1), *b;
	count_alloc c = { 0 };
	nb_net_config cfg = nb_net_get_config(a);
	unsigned char *before, *after;
	size_t len_before, len_after, k;

	unique_path(path, "oom");
	save_ok(a, path);
	before = read_bytes(path, &len_before);
	cfg.seed = 2;
	cfg.alloc = count_alloc_fn;
	cfg.alloc_ud = &c;
	ck_assert_int_eq(nb_net_new(&cfg, &b, NULL), NB_OK);
	for (k = 1;; k++) {
		c.fail_at = c.allocs + k;
		if (nb_net_save(b, path, msg) == NB_OK)
			break;
		ck_assert_ptr_nonnull(strstr(msg, "out of memory"));
		after = read_bytes(path, &len_after);
		ck_assert_uint_eq(len_after, len_before);
		ck_assert(memcmp(before, after, len_before) == 0);
		free(after);
		expect_no_temporaries(path);
	}
	ck_assert_uint_eq(k, 3);  /* the file image and the temporary's name, then success */
	free(before);
	nb_net_free(a);
	nb_net_free(b);
	ck_assert_uint_eq(c.bytes_in_use, 0);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* Loading runs out of memory at each of its allocations in turn (the file's bytes, the
 * sizes, and every allocation of the network, through the caller's allocator): each is
 * NB_ENOMEM with "out of memory" and leaks nothing, until the load succeeds with a
 * network that allocates through that allocator for its whole life. */
START_TEST(test_load_out_of_memory_at_every_allocation)
{
	char path[PATH_MAX_LEN], msg[NB_MSG_MAX];
	nb_net *a = make_net(3, sizes_342, 1), *b = NULL;
	count_alloc c;
	nb_load_opts opts = { .alloc = count_alloc_fn, .alloc_ud = &c };
	size_t k;
	int status;

	unique_path(path, "load_oom");
	save_ok(a, path);
	for (k = 0;; k++) {
		c = (count_alloc){ .fail_at = k + 1 };
		b = a;
		status = nb_net_load_opts(path, &opts, &b, msg);
		if (status == NB_OK)
			break;
		ck_assert_msg(status == NB_ENOMEM, "allocation %zu: %s", k, msg);
		ck_assert_msg(strstr(msg, "out of memory") != NULL && names_file(msg, path),
		              "allocation %zu: %s", k, msg);
		ck_assert_ptr_null(b);
		ck_assert_uint_eq(c.bytes_in_use, 0);
		ck_assert_uint_eq(c.allocs, c.frees);
	}
	ck_assert_uint_ge(k, 3);  /* the file, the sizes, and at least one of the network's */
	c.fail_at = 0;  /* the allocation it would have failed is the network's to make */
	ck_assert(nb_net_get_config(b).alloc == count_alloc_fn);
	expect_same_params(a, b);
	expect_same_predictions(a, b);
	nb_net_free(b);
	ck_assert_uint_eq(c.bytes_in_use, 0);
	ck_assert_uint_eq(c.allocs, c.frees);
	nb_net_free(a);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* A caller's limit below the file's size refuses it before reading; at the size, loads. */
START_TEST(test_load_limit_bounds_the_file_size)
{
	char path[PATH_MAX_LEN], msg[NB_MSG_MAX], want[NB_MSG_MAX + PATH_MAX_LEN];
	nb_net *a = make_net(3, sizes_342, 1), *b = NULL;
	nb_load_opts opts = { .max_bytes = 283 };

	unique_path(path, "limit");
	save_ok(a, path);
	ck_assert_int_eq(nb_net_load_opts(path, &opts, &b, msg), NB_EFORMAT);
	snprintf(want, sizeof want, "284 bytes, over the limit of 283 "
	         "(nb_load_opts.max_bytes): %s", path);
	ck_assert_str_eq(msg, want);
	ck_assert_ptr_null(b);
	opts.max_bytes = 284;
	ck_assert_int_eq(nb_net_load_opts(path, &opts, &b, msg), NB_OK);
	expect_same_params(a, b);
	nb_net_free(b);
	ck_assert_int_eq(nb_net_load_opts(path, NULL, &b, msg), NB_OK);
	nb_net_free(b);
	nb_net_free(a);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* A directory component that is a regular file fails for root too (ENOTDIR). */
START_TEST(test_save_into_a_file_as_directory_fails)
{
	char dir[PATH_MAX_LEN], path[2 * PATH_MAX_LEN], want[3 * PATH_MAX_LEN];
	char msg[NB_MSG_MAX] = "";
	nb_net *net = make_net(3, sizes_342, 1);

	unique_path(dir, "not_a_dir");
	write_bytes(dir, (const unsigned char *)"x", 1);
	snprintf(path, sizeof path, "%s/model.bin", dir);
	ck_assert_int_eq(nb_net_save(net, path, msg), NB_EIO);
	snprintf(want, sizeof want, "cannot create a temporary file: %s: %s", strerror(ENOTDIR),
	         path);
	ck_assert_str_eq(msg, want);
	expect_no_temporaries(dir);
	nb_net_free(net);
	ck_assert_int_eq(remove(dir), 0);
}
END_TEST

/* A network whose parameters diverged cannot be saved: the file would not load (a model
 * file holds finite values only). Save refuses it, naming the parameter, and leaves the
 * old file as it was; once the values are finite again, save and load agree. */
START_TEST(test_save_refuses_non_finite_parameters)
{
	char path[PATH_MAX_LEN], msg[NB_MSG_MAX] = "", want[NB_MSG_MAX + PATH_MAX_LEN];
	nb_net *net = make_net(3, sizes_342, 1), *back;
	unsigned char *before, *after;
	size_t len_before, len_after;
	double w3;

	unique_path(path, "nan");
	save_ok(net, path);
	before = read_bytes(path, &len_before);
	w3 = nb_net_weights(net, 1)[3];
	nb_net_weights(net, 1)[3] = NAN;
	ck_assert_int_eq(nb_net_save(net, path, msg), NB_EINVAL);
	snprintf(want, sizeof want, "weight 3 of layer 1 is nan, which a model file cannot hold "
	         "(it would not load): %s", path);
	ck_assert_str_eq(msg, want);
	nb_net_weights(net, 1)[3] = w3;
	nb_net_biases(net, 0)[2] = -INFINITY;
	ck_assert_int_eq(nb_net_save(net, path, msg), NB_EINVAL);
	snprintf(want, sizeof want, "bias 2 of layer 0 is -inf, which a model file cannot hold "
	         "(it would not load): %s", path);
	ck_assert_str_eq(msg, want);
	after = read_bytes(path, &len_after);
	ck_assert_uint_eq(len_after, len_before);
	ck_assert(memcmp(before, after, len_before) == 0);
	expect_no_temporaries(path);
	nb_net_biases(net, 0)[2] = 0.5;
	save_ok(net, path);
	back = load_ok(path);
	expect_same_params(net, back);
	free(before);
	free(after);
	nb_net_free(back);
	nb_net_free(net);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* A directory at the path is refused before anything is written. */
START_TEST(test_save_refuses_a_directory)
{
	char path[PATH_MAX_LEN], msg[NB_MSG_MAX] = "", want[NB_MSG_MAX + PATH_MAX_LEN];
	nb_net *net = make_net(3, sizes_342, 1);
	struct stat st;

	unique_path(path, "dir_target");
	ck_assert_int_eq(mkdir(path, 0755), 0);
	ck_assert_int_eq(nb_net_save(net, path, msg), NB_EIO);
	snprintf(want, sizeof want, "cannot replace: a directory, not a regular file: %s", path);
	ck_assert_str_eq(msg, want);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	expect_no_temporaries(path);
	nb_net_free(net);
	ck_assert_int_eq(rmdir(path), 0);
}
END_TEST

/* Saving "to" a symbolic link would rename a new file over the link and leave the file
 * it points to as it was: refused, and both stay as they were. */
START_TEST(test_save_refuses_a_symbolic_link)
{
	char link[PATH_MAX_LEN], target[PATH_MAX_LEN], msg[NB_MSG_MAX] = "";
	char want[NB_MSG_MAX + PATH_MAX_LEN], got[PATH_MAX_LEN];
	nb_net *net = make_net(3, sizes_342, 1);
	struct stat st;
	size_t len;
	unsigned char *f;

	unique_path(target, "link_target");
	unique_path(link, "link");
	write_bytes(target, (const unsigned char *)"not a model", 11);
	ck_assert_int_eq(symlink(target, link), 0);
	ck_assert_int_eq(nb_net_save(net, link, msg), NB_EIO);
	snprintf(want, sizeof want, "cannot replace: a symbolic link, not a regular file: %s",
	         link);
	ck_assert_str_eq(msg, want);
	ck_assert_int_eq(lstat(link, &st), 0);
	ck_assert(S_ISLNK(st.st_mode));
	ck_assert_int_eq((int)readlink(link, got, sizeof got - 1), (int)strlen(target));
	got[strlen(target)] = '\0';
	ck_assert_str_eq(got, target);
	f = read_bytes(target, &len);
	ck_assert_uint_eq(len, 11);
	ck_assert(memcmp(f, "not a model", 11) == 0);
	free(f);
	expect_no_temporaries(link);
	nb_net_free(net);
	ck_assert_int_eq(remove(link), 0);
	ck_assert_int_eq(remove(target), 0);
}
END_TEST

/* A FIFO is refused at once (nothing opens it, so nothing waits for a reader) and stays. */
START_TEST(test_save_refuses_a_fifo)
{
	char path[PATH_MAX_LEN], msg[NB_MSG_MAX] = "", want[NB_MSG_MAX + PATH_MAX_LEN];
	nb_net *net = make_net(3, sizes_342, 1);
	struct stat st;

	unique_path(path, "fifo_target");
	ck_assert_int_eq(mkfifo(path, 0644), 0);
	alarm(20);
	ck_assert_int_eq(nb_net_save(net, path, msg), NB_EIO);
	alarm(0);
	snprintf(want, sizeof want, "cannot replace: a FIFO, not a regular file: %s", path);
	ck_assert_str_eq(msg, want);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISFIFO(st.st_mode));
	expect_no_temporaries(path);
	nb_net_free(net);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* A new model file gets 0666 less the umask, as any new file; _i picks the umask. */
static const mode_t umasks[] = { 022, 077, 002 };

START_TEST(test_new_file_mode_follows_the_umask)
{
	char path[PATH_MAX_LEN];
	nb_net *net = make_net(3, sizes_342, 1);
	mode_t old = umask(umasks[_i]);
	struct stat st;

	unique_path(path, "umask");
	save_ok(net, path);
	umask(old);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0666 & ~umasks[_i]);
	nb_net_free(net);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* A file replaced keeps its mode, whatever the umask. */
START_TEST(test_replaced_file_keeps_its_mode)
{
	char path[PATH_MAX_LEN];
	nb_net *net = make_net(3, sizes_342, 1);
	mode_t old = umask(077);
	struct stat st;

	unique_path(path, "mode");
	save_ok(net, path);
	ck_assert_int_eq(chmod(path, 0640), 0);
	save_ok(net, path);
	umask(old);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0640);
	nb_net_free(net);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

static Suite *model_suite(void)
{
	Suite *s = suite_create("model");
	TCase *round = tcase_create("round trip");
	TCase *corrupt = tcase_create("corruption");
	TCase *save = tcase_create("saving");

	tcase_add_loop_test(round, test_round_trip_is_bit_exact, 0,
	                    sizeof round_trip_configs / sizeof round_trip_configs[0]);
	tcase_add_test(round, test_file_layout_matches_the_document);
	tcase_add_test(round, test_msg_may_be_null);
	suite_add_tcase(s, round);

	/* Hundreds of loads, each a file write and read: give valgrind room. */
	tcase_set_timeout(corrupt, 120);
	tcase_add_test(corrupt, test_every_flipped_byte_is_rejected);
	tcase_add_test(corrupt, test_every_truncation_is_rejected);
	tcase_add_test(corrupt, test_appended_bytes_are_rejected);
	tcase_add_test(corrupt, test_bad_magic_and_version_have_their_messages);
	tcase_add_test(corrupt, test_checksum_mismatch_has_its_message);
	tcase_add_loop_test(corrupt, test_crafted_file_is_checked_field_by_field, 0,
	                    sizeof crafted / sizeof crafted[0]);
	tcase_add_test(corrupt, test_missing_file_is_an_io_error);
	tcase_add_test(corrupt, test_load_refuses_what_is_not_a_regular_file);
	tcase_add_test(corrupt, test_huge_file_is_rejected_unread);
	tcase_add_test(corrupt, test_null_arguments_are_rejected);
	tcase_add_test(corrupt, test_long_path_keeps_the_reason);
	suite_add_tcase(s, corrupt);

	tcase_add_test(save, test_failed_save_keeps_the_old_file);
	tcase_add_test(save, test_save_out_of_memory_keeps_the_old_file);
	tcase_add_test(save, test_load_out_of_memory_at_every_allocation);
	tcase_add_test(save, test_load_limit_bounds_the_file_size);
	tcase_add_test(save, test_save_into_a_file_as_directory_fails);
	tcase_add_test(save, test_save_refuses_non_finite_parameters);
	tcase_add_test(save, test_save_refuses_a_directory);
	tcase_add_test(save, test_save_refuses_a_symbolic_link);
	tcase_add_test(save, test_save_refuses_a_fifo);
	tcase_add_loop_test(save, test_new_file_mode_follows_the_umask, 0,
	                    sizeof umasks / sizeof umasks[0]);
	tcase_add_test(save, test_replaced_file_keeps_its_mode);
	suite_add_tcase(s, save);
	return s;
}

int main(void)
{
	return run_suite(model_suite());
}
