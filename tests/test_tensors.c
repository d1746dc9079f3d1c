/* test_tensors.c -- nb_tensors_save(), nb_tensors_load() and nb_tensors_load_into(): files
 * of named tensors (model file format version 2). A round trip is bit-exact, the file is
 * laid out as docs/model-format.md says, every truncation, flipped byte and bad field is
 * refused with its message, every argument a load would refuse is refused at save, every
 * allocation failure leaks nothing, and a failed save never harms the file it would have
 * replaced. Files are written in the current directory (the build tree) under unique
 * names and removed afterwards. */
#define _XOPEN_SOURCE 700

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* The test writes its own files and checksums, with the header-only build of xxHash, so
 * that it checks the format independently of lib/nn/tensors.c. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "helpers.h"

#define PATH_MAX_LEN 128
#define MSG_FULL (NB_MSG_MAX + PATH_MAX_LEN)
#define CRAFT_MAX 4096
#define SPARE 16

/* ---- Files ------------------------------------------------------------------------- */

static void unique_path(char *path, const char *tag)
{
	static unsigned counter;

	snprintf(path, PATH_MAX_LEN, "test_tensors_%ld_%u_%s.nbt", (long)getpid(), counter++,
	         tag);
}

/* The whole file, malloc'd with SPARE bytes more for a test to append; *len gets its
 * size. */
static unsigned char *read_bytes(const char *path, size_t *len)
{
	struct stat st;
	FILE *f = fopen(path, "rb");
	unsigned char *buf;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fstat(fileno(f), &st), 0);
	buf = malloc((size_t)st.st_size + SPARE);
	ck_assert_ptr_nonnull(buf);
	*len = fread(buf, 1, (size_t)st.st_size, f);
	ck_assert_uint_eq(*len, (size_t)st.st_size);
	fclose(f);
	return buf;
}

static void write_bytes(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

/* The file at path holds exactly len bytes of want. */
static void expect_file(const char *path, const unsigned char *want, size_t len)
{
	size_t got_len;
	unsigned char *got = read_bytes(path, &got_len);

	ck_assert_uint_eq(got_len, len);
	ck_assert(memcmp(got, want, len) == 0);
	free(got);
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

/* Whether msg ends with ": PATH", as every message about a file does. */
static int names_file(const char *msg, const char *path)
{
	size_t m = strlen(msg), n = strlen(path);

	return m > n + 2 && strncmp(msg + m - n - 2, ": ", 2) == 0 &&
	       strcmp(msg + m - n, path) == 0;
}

/* msg is exactly "want: path". */
static void expect_msg(const char *msg, const char *want, const char *path)
{
	char full[MSG_FULL];

	snprintf(full, sizeof full, "%s: %s", want, path);
	ck_assert_str_eq(msg, full);
}

static const unsigned char zero_file[sizeof(nb_tensor_file)];

/* The load fails with this status, leaves out all zero, and the message is exactly
 * "want: path" (or, when want is NULL, ends with the path). */
static void expect_load_fails(const char *path, const nb_load_opts *opts, int status,
                              const char *want)
{
	char msg[NB_MSG_MAX] = "";
	nb_tensor_file out;

	memset(&out, 0xa5, sizeof out);
	ck_assert_str_eq(nb_status_name(nb_tensors_load(path, opts, &out, msg)),
	                 nb_status_name(status));
	ck_assert(memcmp(&out, zero_file, sizeof out) == 0);
	if (want == NULL)
		ck_assert_msg(names_file(msg, path), "message does not name the file: \"%s\"",
		              msg);
	else
		expect_msg(msg, want, path);
}

/* ---- Tensors ----------------------------------------------------------------------- */

/* Five tensors of ranks 0 to 4 whose values include every kind of double: -0, a NaN with
 * a payload, infinities, a subnormal, the extremes. */
struct set {
	double s[1], b[3], w[6], c[4], k[6];
	nb_named_tensor t[5];
};

static void make_set(struct set *st)
{
	static const uint64_t special[] = {
		0x8000000000000000u,    /* -0 */
		0x7ff0000000000123u,    /* a signalling NaN with a payload */
		0xfff8000000000000u,    /* -NaN, quiet */
		0x7ff0000000000000u,    /* inf */
		0xfff0000000000000u,    /* -inf */
		0x0000000000000001u,    /* the smallest subnormal */
	};
	double *all[] = { st->s, st->b, st->w, st->c, st->k };
	size_t len[] = { 1, 3, 6, 4, 6 }, j = 0;

	for (size_t a = 0; a < 5; a++) {
		for (size_t i = 0; i < len[a]; i++, j++) {
			uint64_t bits;

			if (j < sizeof special / sizeof special[0]) {
				bits = special[j];
				memcpy(&all[a][i], &bits, sizeof bits);
			} else {
				all[a][i] = j % 2 ? DBL_MAX / (double)j : -1.0 / (double)j;
			}
		}
	}
	st->t[0] = (nb_named_tensor){ "s", 0, { 0 }, st->s };
	st->t[1] = (nb_named_tensor){ "layer1.bias", 1, { 3 }, st->b };
	st->t[2] = (nb_named_tensor){ "layer1.weight", 2, { 2, 3 }, st->w };
	st->t[3] = (nb_named_tensor){ "conv", 3, { 2, 1, 2 }, st->c };
	st->t[4] = (nb_named_tensor){ "abcdefghijklmnopqrstuvw", 4, { 1, 2, 1, 3 }, st->k };
}

static size_t values_of(const nb_named_tensor *t)
{
	size_t n = 1;

	for (int d = 0; d < t->rank; d++)
		n *= t->dim[d];
	return n;
}

/* a and b hold the same n tensors: names, shapes and every value's bits. */
static void expect_same_tensors(const nb_named_tensor *a, const nb_named_tensor *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		ck_assert_str_eq(a[i].name, b[i].name);
		ck_assert_int_eq(a[i].rank, b[i].rank);
		for (int d = 0; d < a[i].rank; d++)
			ck_assert_uint_eq(a[i].dim[d], b[i].dim[d]);
		ck_assert(memcmp(a[i].data, b[i].data, values_of(&a[i]) * sizeof(double)) == 0);
	}
}

static void save_ok(const char *path, const nb_named_tensor *t, size_t n, const char *desc)
{
	char msg[NB_MSG_MAX] = "";

	ck_assert_msg(nb_tensors_save(path, t, n, desc, msg) == NB_OK, "save: %s", msg);
}

static void load_ok(const char *path, const nb_load_opts *opts, nb_tensor_file *out)
{
	char msg[NB_MSG_MAX] = "";

	ck_assert_msg(nb_tensors_load(path, opts, out, msg) == NB_OK, "load: %s", msg);
}

/* The small file of the worked example of docs/model-format.md: description "hi", a 2 x 3
 * tensor "w" and a scalar "s". 124 bytes. */
static double small_w[6] = { 0.5, -1.0, 2.0, 0.25, -0.0, 3.0 };
static double small_s[1] = { 7.0 };
static const nb_named_tensor small_set[2] = {
	{ "w", 2, { 2, 3 }, small_w },
	{ "s", 0, { 0 }, small_s },
};
#define SMALL_LEN 124

static unsigned char *saved_small(const char *path, size_t *len)
{
	unsigned char *f;

	save_ok(path, small_set, 2, "hi");
	f = read_bytes(path, len);
	ck_assert_uint_eq(*len, SMALL_LEN);
	return f;
}

/* ---- Round trips ------------------------------------------------------------------- */

static char long_desc[5001];

static const char *round_trip_desc(int i)
{
	if (i == 0)
		return "";
	if (i == 1)
		return "a network of two layers, trained 30 epochs\n(with a newline)";
	memset(long_desc, 'd', sizeof long_desc - 1);
	long_desc[sizeof long_desc - 1] = '\0';
	return long_desc;
}

START_TEST(test_round_trip_is_bit_exact)
{
	char path[PATH_MAX_LEN];
	const char *desc = round_trip_desc(_i);
	struct set st;
	nb_tensor_file f;
	size_t len;
	unsigned char *bytes;

	make_set(&st);
	unique_path(path, "round_trip");
	save_ok(path, st.t, 5, desc);
	bytes = read_bytes(path, &len);
	ck_assert_uint_eq(len, 24 + strlen(desc) + 17 + 51 + 85 + 68 + 111 + 8);
	free(bytes);
	load_ok(path, NULL, &f);
	ck_assert_uint_eq(f.n, 5);
	expect_same_tensors(st.t, f.tensors, 5);
	ck_assert_str_eq(f.description, desc);
	ck_assert(f.alloc == nb_default_alloc);
	nb_tensors_free(&f);
	ck_assert(memcmp(&f, zero_file, sizeof f) == 0);
	nb_tensors_free(&f);  /* a zeroed file: nothing */
	nb_tensors_free(NULL);
	expect_no_temporaries(path);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* A NULL description is an empty one, and no tensors at all is a file too. */
START_TEST(test_empty_set_round_trips)
{
	char path[PATH_MAX_LEN];
	nb_tensor_file f;
	unsigned char want[32] = "NABLATNS\x02\0\0\0";
	uint64_t sum = XXH3_64bits(want, 24);

	for (int i = 0; i < 8; i++)
		want[24 + i] = (unsigned char)(sum >> (8 * i));
	unique_path(path, "empty");
	save_ok(path, NULL, 0, NULL);
	expect_file(path, want, sizeof want);
	load_ok(path, NULL, &f);
	ck_assert_uint_eq(f.n, 0);
	ck_assert_str_eq(f.description, "");
	nb_tensors_free(&f);
	ck_assert_int_eq(nb_tensors_load_into(path, NULL, NULL, 0, NULL), NB_OK);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* The small file is the worked example of docs/model-format.md, byte for byte. */
START_TEST(test_file_layout_matches_the_document)
{
	char path[PATH_MAX_LEN];
	size_t len;
	unsigned char *f;
	uint64_t bits = 0;

	unique_path(path, "layout");
	f = saved_small(path, &len);
	ck_assert(memcmp(f, "NABLATNS\x02\0\0\0\x02\0\0\0\x02\0\0\0\0\0\0\0hi", 26) == 0);
	ck_assert(memcmp(f + 26, "\x01\0\0\0w\x02\0\0\0", 9) == 0);
	ck_assert(memcmp(f + 35, "\x02\0\0\0\0\0\0\0\x03\0\0\0\0\0\0\0", 16) == 0);
	ck_assert(memcmp(f + 51, "\0\0\0\0\0\0\xe0\x3f", 8) == 0);          /* 0.5 */
	ck_assert(memcmp(f + 83, "\0\0\0\0\0\0\0\x80", 8) == 0);            /* -0 */
	ck_assert(memcmp(f + 99, "\x01\0\0\0s\0\0\0\0", 9) == 0);
	ck_assert(memcmp(f + 108, "\0\0\0\0\0\0\x1c\x40", 8) == 0);         /* 7 */
	for (int i = 7; i >= 0; i--)
		bits = bits << 8 | f[116 + i];
	ck_assert(bits == XXH3_64bits(f, 116));
	free(f);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* ---- Corruption -------------------------------------------------------------------- */

START_TEST(test_every_truncation_is_rejected)
{
	char good[PATH_MAX_LEN], bad[PATH_MAX_LEN], want[NB_MSG_MAX];
	size_t len;
	unsigned char *f;
	uint64_t stored = 0;

	unique_path(good, "trunc_good");
	unique_path(bad, "trunc_bad");
	f = saved_small(good, &len);
	for (size_t n = 0; n < len; n++) {
		write_bytes(bad, f, n);
		expect_load_fails(bad, NULL, NB_EFORMAT, NULL);
		ck_assert_int_eq(nb_tensors_load_into(bad, NULL, NULL, 0, NULL), NB_EFORMAT);
	}
	write_bytes(bad, f, 5);
	expect_load_fails(bad, NULL, NB_EFORMAT, "truncated: 5 bytes, shorter than the 32-byte "
	                  "header and checksum");
	write_bytes(bad, f, 31);
	expect_load_fails(bad, NULL, NB_EFORMAT, "truncated: 31 bytes, shorter than the 32-byte "
	                  "header and checksum");
	write_bytes(bad, f, 100);
	for (int i = 7; i >= 0; i--)
		stored = stored << 8 | f[92 + i];
	snprintf(want, sizeof want, "checksum mismatch at byte 92 (stored 0x%016llx, computed "
	         "0x%016llx): the file is corrupt or truncated", (unsigned long long)stored,
	         (unsigned long long)XXH3_64bits(f, 92));
	expect_load_fails(bad, NULL, NB_EFORMAT, want);
	free(f);
	ck_assert_int_eq(remove(good), 0);
	ck_assert_int_eq(remove(bad), 0);
}
END_TEST

START_TEST(test_every_flipped_byte_is_rejected)
{
	static const unsigned char masks[] = { 0xff, 0x01, 0x80 };
	char good[PATH_MAX_LEN], bad[PATH_MAX_LEN];
	size_t len;
	unsigned char *f;

	unique_path(good, "flip_good");
	unique_path(bad, "flip_bad");
	f = saved_small(good, &len);
	for (size_t m = 0; m < sizeof masks; m++) {
		for (size_t i = 0; i < len; i++) {
			f[i] ^= masks[m];
			write_bytes(bad, f, len);
			f[i] ^= masks[m];
			expect_load_fails(bad, NULL, NB_EFORMAT, NULL);
		}
	}
	free(f);
	ck_assert_int_eq(remove(good), 0);
	ck_assert_int_eq(remove(bad), 0);
}
END_TEST

START_TEST(test_bad_magic_version_and_checksum_have_their_messages)
{
	char path[PATH_MAX_LEN], want[NB_MSG_MAX];
	size_t len;
	unsigned char *f;
	uint64_t stored = 0;

	unique_path(path, "magic");
	f = saved_small(path, &len);
	f[7] = 'Q';
	write_bytes(path, f, len);
	expect_load_fails(path, NULL, NB_EFORMAT, "bad magic at byte 0 (not a nabla tensor "
	                  "file)");
	f[7] = 'S';
	f[8] = 3;
	write_bytes(path, f, len);
	expect_load_fails(path, NULL, NB_EFORMAT, "unsupported version 3 at byte 8 (this nabla "
	                  "reads version 2)");
	f[8] = 2;
	f[60] ^= 0x10;  /* inside w's values */
	write_bytes(path, f, len);
	for (int i = 7; i >= 0; i--)
		stored = stored << 8 | f[116 + i];
	snprintf(want, sizeof want, "checksum mismatch at byte 116 (stored 0x%016llx, computed "
	         "0x%016llx): the file is corrupt or truncated", (unsigned long long)stored,
	         (unsigned long long)XXH3_64bits(f, 116));
	expect_load_fails(path, NULL, NB_EFORMAT, want);
	memcpy(f + len, "more", 4);  /* bytes after the checksum: it is not where it was */
	f[60] ^= 0x10;
	write_bytes(path, f, len + 4);
	expect_load_fails(path, NULL, NB_EFORMAT, NULL);
	free(f);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* A network's file (version 1) is not a tensor file, and the message says who reads it. */
START_TEST(test_version_1_file_is_named)
{
	char path[PATH_MAX_LEN], msg[NB_MSG_MAX];
	nb_net_config cfg = { .n_layers = 2, .sizes = (const size_t[]){ 2, 1 } };
	nb_net *net = NULL;
	double w[2];

	ck_assert_int_eq(nb_net_new(&cfg, &net, NULL), NB_OK);
	unique_path(path, "v1");
	ck_assert_int_eq(nb_net_save(net, path, NULL), NB_OK);
	expect_load_fails(path, NULL, NB_EFORMAT, "version 1 file: a network, which "
	                  "nb_net_load() reads");
	ck_assert_int_eq(nb_tensors_load_into(path, NULL, &(nb_named_tensor){ "w", 1, { 2 }, w },
	                                      1, msg), NB_EFORMAT);
	expect_msg(msg, "version 1 file: a network, which nb_net_load() reads", path);
	nb_net_free(net);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* ---- Files with a valid checksum but bad fields, made by hand ---------------------- */

/* A tensor of a hand-made file: name_len 0 takes strlen(name); values 0 writes as many
 * values as the dims say, i / 4 - 1 for the i-th. */
struct craft_tensor {
	const char *name;
	uint32_t name_len;
	uint32_t rank;
	uint64_t dim[5];
	uint64_t values;
};

/* A hand-made file: description (desc_len 0: strlen), the description length field
 * (desc_field 0: the real one), the count field (the number of tensors plus count_delta),
 * the tensors, extra bytes after them, then the checksum; want is the message (NULL: the
 * load succeeds). */
struct craft {
	const char *desc;
	size_t desc_len;
	uint64_t desc_field;
	int count_delta;
	struct craft_tensor t[3];
	size_t nt;
	const char *extra;
	size_t extra_len;
	const char *want;
};

static unsigned char *put_le(unsigned char *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (unsigned char)(v >> (8 * i));
	return p + bytes;
}

static uint64_t craft_values(const struct craft_tensor *t)
{
	uint64_t n = 1;

	if (t->values)
		return t->values;
	for (uint32_t d = 0; d < t->rank; d++)
		n *= t->dim[d];
	return n;
}

static size_t craft_file(unsigned char *buf, const struct craft *c)
{
	size_t desc_len = c->desc_len ? c->desc_len : c->desc ? strlen(c->desc) : 0;
	unsigned char *p = buf;

	memcpy(p, "NABLATNS", 8);
	p = put_le(p + 8, 2, 4);
	p = put_le(p, (uint64_t)((int)c->nt + c->count_delta), 4);
	p = put_le(p, c->desc_field ? c->desc_field : desc_len, 8);
	if (desc_len)
		memcpy(p, c->desc, desc_len);
	p += desc_len;
	for (size_t i = 0; i < c->nt; i++) {
		const struct craft_tensor *t = &c->t[i];
		uint32_t len = t->name_len ? t->name_len : (uint32_t)strlen(t->name);

		p = put_le(p, len, 4);
		memcpy(p, t->name, len);
		p = put_le(p + len, t->rank, 4);
		for (uint32_t d = 0; d < t->rank; d++)
			p = put_le(p, t->dim[d], 8);
		for (uint64_t k = 0; k < craft_values(t); k++) {
			double v = (double)k / 4.0 - 1.0;
			uint64_t bits;

			memcpy(&bits, &v, sizeof bits);
			p = put_le(p, bits, 8);
		}
	}
	if (c->extra_len)
		memcpy(p, c->extra, c->extra_len);
	p += c->extra_len;
	p = put_le(p, XXH3_64bits(buf, (size_t)(p - buf)), 8);
	ck_assert_uint_le((size_t)(p - buf), CRAFT_MAX);
	return (size_t)(p - buf);
}

#define W23 { "w", 0, 2, { 2, 3 }, 0 }  /* 73 bytes: 4 + 1 + 4 + 16 + 48 */
#define A4 { "a", 0, 1, { 4 }, 0 }      /* 49 bytes: 4 + 1 + 4 + 8 + 32 */

static const struct craft crafted[] = {
	{ .desc = "ok", .t = { W23, { "s", 0, 0, { 0 }, 0 }, A4 }, .nt = 3 },
	{ .t = { W23 }, .nt = 1, .desc_field = 1000,
	  .want = "description of 1000 bytes at byte 16 runs past the end of the data (byte 97)" },
	{ .desc = "ab\0c", .desc_len = 4, .t = { W23 }, .nt = 1,
	  .want = "description has a NUL byte at byte 26" },
	{ .t = { W23 }, .nt = 1, .count_delta = 99,
	  .want = "100 tensors at byte 12 cannot fit in the 73 bytes after the description (a "
	          "tensor takes at least 17)" },
	{ .t = { W23 }, .nt = 1, .count_delta = -1,
	  .want = "73 bytes after the last tensor (byte 24)" },
	{ .t = { W23 }, .nt = 1, .extra = "xyz", .extra_len = 3,
	  .want = "3 bytes after the last tensor (byte 97)" },
	{ .t = { { "", 0, 2, { 2, 3 }, 0 } }, .nt = 1,
	  .want = "tensor 0: name length 0 at byte 24 (1 to 23 expected)" },
	{ .t = { { "abcdefghijklmnopqrstuvwx", 0, 0, { 0 }, 0 } }, .nt = 1,
	  .want = "tensor 0: name length 24 at byte 24 (1 to 23 expected)" },
	{ .t = { { "a\0b", 3, 0, { 0 }, 0 } }, .nt = 1,
	  .want = "tensor 0: name has a NUL byte at byte 29" },
	{ .t = { { "w", 0, 5, { 1, 1, 1, 1, 1 }, 0 } }, .nt = 1,
	  .want = "tensor 0 (\"w\"): rank 5 at byte 29 (0 to 4 expected)" },
	{ .t = { { "w", 0, 2, { 2, 0 }, 0 } }, .nt = 1,
	  .want = "tensor 0 (\"w\"): dimension 1 is 0 at byte 41 (each is at least 1)" },
	{ .t = { { "w", 0, 2, { 2, 3 }, 5 } }, .nt = 1,
	  .want = "tensor 0 (\"w\"): data of shape (2x3) at byte 49 runs past the end of the "
	          "data (byte 89)" },
	{ .t = { { "w", 0, 2, { (uint64_t)1 << 32, (uint64_t)1 << 32 }, 2 } }, .nt = 1,
	  .want = "tensor 0 (\"w\"): data of shape (4294967296x4294967296) at byte 49 runs past "
	          "the end of the data (byte 65)" },
	{ .t = { { "w", 0, 3, { 3, UINT64_MAX, UINT64_MAX }, 2 } }, .nt = 1,
	  .want = "tensor 0 (\"w\"): data of shape (3x18446744073709551615x18446744073709551615) "
	          "at byte 57 runs past the end of the data (byte 73)" },
	{ .t = { A4 }, .nt = 1, .count_delta = 1, .extra = "\x01\0", .extra_len = 2,
	  .want = "tensor 1: name length at byte 73 runs past the end of the data (byte 75)" },
	{ .t = { A4 }, .nt = 1, .count_delta = 1, .extra = "\x05\0\0\0ab", .extra_len = 6,
	  .want = "tensor 1: name at byte 77 runs past the end of the data (byte 79)" },
	{ .t = { A4 }, .nt = 1, .count_delta = 1, .extra = "\x01\0\0\0b", .extra_len = 5,
	  .want = "tensor 1 (\"b\"): rank at byte 78 runs past the end of the data (byte 78)" },
	{ .t = { A4 }, .nt = 1, .count_delta = 1,
	  .extra = "\x01\0\0\0b\x02\0\0\0\x03\0\0\0\0\0\0\0", .extra_len = 17,
	  .want = "tensor 1 (\"b\"): dimension 1 at byte 90 runs past the end of the data (byte "
	          "90)" },
	{ .t = { W23, { "s", 0, 0, { 0 }, 0 }, { "w", 0, 0, { 0 }, 0 } }, .nt = 3,
	  .want = "tensor 2 (\"w\") at byte 114 has the name of tensor 0" },
	{ .t = { { "w", 0, 1, { 1 }, 0 }, { "w", 0, 0, { 0 }, 0 } }, .nt = 2,
	  .want = "tensor 1 (\"w\") at byte 49 has the name of tensor 0" },
};

/* The first crafted file loads with exactly its fields and values. */
static void expect_crafted_set(const char *path, const struct craft *c)
{
	nb_tensor_file f;

	load_ok(path, NULL, &f);
	ck_assert_uint_eq(f.n, c->nt);
	ck_assert_str_eq(f.description, c->desc);
	for (size_t i = 0; i < c->nt; i++) {
		const nb_named_tensor *t = &f.tensors[i];

		ck_assert_str_eq(t->name, c->t[i].name);
		ck_assert_int_eq(t->rank, (int)c->t[i].rank);
		for (uint32_t d = 0; d < c->t[i].rank; d++)
			ck_assert_uint_eq(t->dim[d], c->t[i].dim[d]);
		for (size_t k = 0; k < values_of(t); k++)
			ck_assert(t->data[k] == (double)k / 4.0 - 1.0);
	}
	nb_tensors_free(&f);
}

START_TEST(test_crafted_file_is_checked_field_by_field)
{
	const struct craft *c = &crafted[_i];
	char path[PATH_MAX_LEN], msg[NB_MSG_MAX];
	unsigned char buf[CRAFT_MAX];

	unique_path(path, "craft");
	write_bytes(path, buf, craft_file(buf, c));
	if (c->want == NULL) {
		expect_crafted_set(path, c);
	} else {
		expect_load_fails(path, NULL, NB_EFORMAT, c->want);
		ck_assert_int_eq(nb_tensors_load_into(path, NULL, NULL, 0, msg), NB_EFORMAT);
		expect_msg(msg, c->want, path);
	}
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* ---- Loading into the caller's arrays ---------------------------------------------- */

#define SENTINEL 12345.0

static void fill(double *v, size_t n, double x)
{
	for (size_t i = 0; i < n; i++)
		v[i] = x;
}

static int all_equal(const double *v, size_t n, double x)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] != x)
			return 0;
	return 1;
}

/* Some of the file's tensors, asked for in another order, get exactly the file's values;
 * the others are ignored. */
START_TEST(test_load_into_fills_what_is_asked_for)
{
	char path[PATH_MAX_LEN], msg[NB_MSG_MAX] = "";
	struct set st;
	double k[6], s[1], c[4];
	nb_named_tensor want[3];

	make_set(&st);
	unique_path(path, "into");
	save_ok(path, st.t, 5, "x");
	want[0] = st.t[4];
	want[0].data = k;
	want[1] = st.t[0];
	want[1].data = s;
	want[2] = st.t[3];
	want[2].data = c;
	ck_assert_msg(nb_tensors_load_into(path, NULL, want, 3, msg) == NB_OK, "%s", msg);
	ck_assert(memcmp(k, st.k, sizeof k) == 0);
	ck_assert(memcmp(s, st.s, sizeof s) == 0);
	ck_assert(memcmp(c, st.c, sizeof c) == 0);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* A tensor missing or of another shape is refused, naming it, both shapes and the file,
 * and no tensor asked for is written, not even those before it that matched. */
START_TEST(test_load_into_writes_nothing_unless_all_match)
{
	char path[PATH_MAX_LEN], msg[NB_MSG_MAX] = "";
	double a[6], b[6];
	nb_named_tensor want[2] = {
		{ "s", 0, { 0 }, a },
		{ "w", 2, { 3, 2 }, b },
	};

	unique_path(path, "into_bad");
	save_ok(path, small_set, 2, "hi");
	fill(a, 6, SENTINEL);
	fill(b, 6, SENTINEL);
	ck_assert_int_eq(nb_tensors_load_into(path, NULL, want, 2, msg), NB_EFORMAT);
	expect_msg(msg, "tensor \"w\" is (2x3) in the file (tensor 0 at byte 26), not (3x2)",
	           path);
	want[1].rank = 1;
	want[1].dim[0] = 6;
	ck_assert_int_eq(nb_tensors_load_into(path, NULL, want, 2, msg), NB_EFORMAT);
	expect_msg(msg, "tensor \"w\" is (2x3) in the file (tensor 0 at byte 26), not (6)", path);
	want[1] = (nb_named_tensor){ "x", 0, { 0 }, b };
	ck_assert_int_eq(nb_tensors_load_into(path, NULL, want, 2, msg), NB_EFORMAT);
	expect_msg(msg, "tensor \"x\" is not in the file", path);
	want[0] = (nb_named_tensor){ "w", 2, { 2, 4 }, a };
	ck_assert_int_eq(nb_tensors_load_into(path, NULL, want, 1, msg), NB_EFORMAT);
	expect_msg(msg, "tensor \"w\" is (2x3) in the file (tensor 0 at byte 26), not (2x4)",
	           path);
	ck_assert(all_equal(a, 6, SENTINEL) && all_equal(b, 6, SENTINEL));
	want[0] = (nb_named_tensor){ "s", 0, { 0 }, a };
	want[1] = (nb_named_tensor){ "w", 2, { 2, 3 }, b };
	ck_assert_int_eq(nb_tensors_load_into(path, NULL, want, 2, msg), NB_OK);
	ck_assert(a[0] == 7.0 && all_equal(a + 1, 5, SENTINEL));
	ck_assert(memcmp(b, small_w, sizeof small_w) == 0);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* A corrupt file writes nothing either. */
START_TEST(test_load_into_corrupt_file_writes_nothing)
{
	char path[PATH_MAX_LEN], msg[NB_MSG_MAX] = "";
	size_t len;
	unsigned char *f;
	double a[6];
	nb_named_tensor want = { "w", 2, { 2, 3 }, a };

	unique_path(path, "into_corrupt");
	f = saved_small(path, &len);
	f[110] ^= 1;  /* in s, after w's values */
	write_bytes(path, f, len);
	fill(a, 6, SENTINEL);
	ck_assert_int_eq(nb_tensors_load_into(path, NULL, &want, 1, msg), NB_EFORMAT);
	ck_assert_msg(strncmp(msg, "checksum mismatch", 17) == 0 && names_file(msg, path),
	              "%s", msg);
	ck_assert(all_equal(a, 6, SENTINEL));
	free(f);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* ---- Bad arguments ----------------------------------------------------------------- */

/* A bad tensor given to save (at index 1 of 3; index 0 and 2 good) is refused with its
 * status and message, naming the file, and nothing is written; the same tensor asked for
 * by load_into is refused with the same message after the function's name. */
struct bad_tensor {
	nb_named_tensor t;
	int status;
	const char *want;
};

static double bad_data[4];

static const struct bad_tensor bad_tensors[] = {
	{ { NULL, 1, { 2 }, bad_data }, NB_ENULL, "tensor 1: name is NULL" },
	{ { "", 1, { 2 }, bad_data }, NB_EINVAL, "tensor 1: empty name" },
	{ { "abcdefghijklmnopqrstuvwxyz0123", 1, { 2 }, bad_data }, NB_EINVAL,
	  "tensor 1: name \"abcdefghijklmnopqrstuvw...\" is 30 bytes, longer than 23" },
	{ { "b", 1, { 2 }, NULL }, NB_ENULL, "tensor 1 (\"b\"): data is NULL" },
	{ { "b", 5, { 1, 1, 1, 1 }, bad_data }, NB_EINVAL,
	  "tensor 1 (\"b\"): rank 5 (0 to 4 expected)" },
	{ { "b", -1, { 1 }, bad_data }, NB_EINVAL, "tensor 1 (\"b\"): rank -1 (0 to 4 expected)" },
	{ { "b", 3, { 2, 2, 0 }, bad_data }, NB_EINVAL,
	  "tensor 1 (\"b\"): dimension 2 is 0 (each is at least 1)" },
	{ { "b", 1, { 0 }, bad_data }, NB_EINVAL,
	  "tensor 1 (\"b\"): dimension 0 is 0 (each is at least 1)" },
	{ { "a", 1, { 2 }, bad_data }, NB_EINVAL, "tensor 1 (\"a\") has the name of tensor 0" },
};

START_TEST(test_bad_tensor_is_refused_at_save_and_load_into)
{
	const struct bad_tensor *b = &bad_tensors[_i];
	char path[PATH_MAX_LEN], msg[NB_MSG_MAX] = "", want[NB_MSG_MAX];
	double a[2] = { 1, 2 }, c[2] = { 3, 4 };
	nb_named_tensor ts[3] = { { "a", 1, { 2 }, a }, b->t, { "c", 1, { 2 }, c } };

	unique_path(path, "bad_tensor");
	ck_assert_int_eq(nb_tensors_save(path, ts, 3, NULL, msg), b->status);
	expect_msg(msg, b->want, path);
	ck_assert_int_eq(access(path, F_OK), -1);
	save_ok(path, small_set, 2, "hi");
	ck_assert_int_eq(nb_tensors_load_into(path, NULL, ts, 3, msg), b->status);
	snprintf(want, sizeof want, "nb_tensors_load_into: %s", b->want);
	expect_msg(msg, want, path);
	ck_assert(a[0] == 1 && c[0] == 3);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* A save too large for a file (which no load would accept) is refused before its values
 * are read: data points at far fewer doubles than the dims say. */
START_TEST(test_save_refuses_a_file_over_the_format_limit)
{
	char path[PATH_MAX_LEN], msg[NB_MSG_MAX] = "";
	double v[1] = { 0 };
	nb_named_tensor huge[3] = {
		{ "big", 2, { (size_t)1 << 26, 2 }, v },        /* exactly 1 GiB of values */
		{ "wraps", 2, { SIZE_MAX, SIZE_MAX }, v },              /* overflows any count */
		{ "a", 4, { (size_t)1 << 20, (size_t)1 << 20, (size_t)1 << 20, 2 }, v },
	};

	unique_path(path, "huge_save");
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(nb_tensors_save(path, &huge[i], 1, NULL, msg), NB_EINVAL);
		expect_msg(msg, "tensors too large for a tensor file (over 1073741824 bytes)",
		           path);
	}
	ck_assert_int_eq(access(path, F_OK), -1);
}
END_TEST

START_TEST(test_null_arguments_are_rejected)
{
	char path[PATH_MAX_LEN], msg[NB_MSG_MAX];
	nb_tensor_file f;

	unique_path(path, "null");
	ck_assert_int_eq(nb_tensors_save(NULL, small_set, 2, NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "nb_tensors_save: path is NULL");
	ck_assert_int_eq(nb_tensors_save(path, NULL, 1, NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "nb_tensors_save: tensors is NULL");
	ck_assert_int_eq(nb_tensors_save_opts(NULL, NULL, 0, NULL, NULL, NULL), NB_ENULL);
	ck_assert_int_eq(access(path, F_OK), -1);
	memset(&f, 1, sizeof f);
	ck_assert_int_eq(nb_tensors_load(NULL, NULL, &f, msg), NB_ENULL);
	ck_assert_str_eq(msg, "nb_tensors_load: path is NULL");
	ck_assert(memcmp(&f, zero_file, sizeof f) == 0);
	ck_assert_int_eq(nb_tensors_load(path, NULL, NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "nb_tensors_load: out is NULL");
	ck_assert_int_eq(nb_tensors_load(NULL, NULL, NULL, NULL), NB_ENULL);
	ck_assert_int_eq(nb_tensors_load_into(NULL, NULL, small_set, 2, msg), NB_ENULL);
	ck_assert_str_eq(msg, "nb_tensors_load_into: path is NULL");
	ck_assert_int_eq(nb_tensors_load_into(path, NULL, NULL, 2, msg), NB_ENULL);
	ck_assert_str_eq(msg, "nb_tensors_load_into: tensors is NULL");
	ck_assert_int_eq(access(path, F_OK), -1);
}
END_TEST

START_TEST(test_msg_may_be_null)
{
	char path[PATH_MAX_LEN];
	nb_tensor_file f;

	unique_path(path, "nullmsg");
	ck_assert_int_eq(nb_tensors_load(path, NULL, &f, NULL), NB_EIO);
	ck_assert_int_eq(nb_tensors_save(path, small_set, 2, "hi", NULL), NB_OK);
	ck_assert_int_eq(nb_tensors_load(path, NULL, &f, NULL), NB_OK);
	nb_tensors_free(&f);
	ck_assert_int_eq(nb_tensors_save(path, (nb_named_tensor[]){ small_set[0], small_set[0] },
	                                 2, NULL, NULL), NB_EINVAL);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

START_TEST(test_load_refuses_what_is_not_a_regular_file)
{
	char path[PATH_MAX_LEN];

	unique_path(path, "missing");
	expect_load_fails(path, NULL, NB_EIO, "cannot open: No such file or directory");
	unique_path(path, "fifo");
	ck_assert_int_eq(mkfifo(path, 0644), 0);
	alarm(20);
	expect_load_fails(path, NULL, NB_EIO, "cannot open: a FIFO, not a regular file");
	alarm(0);
	ck_assert_int_eq(remove(path), 0);
	expect_load_fails(".", NULL, NB_EIO, "cannot open: a directory, not a regular file");
	expect_load_fails("/dev/zero", NULL, NB_EIO, "cannot open: a character device, not a "
	                  "regular file");
}
END_TEST

/* ---- Limits and allocation --------------------------------------------------------- */

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
	expect_load_fails(path, NULL, NB_EFORMAT, "larger than 1073741824 bytes: not a nabla "
	                  "tensor file");
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* A caller's limit below the file's size refuses it before reading; at the size, loads. */
START_TEST(test_load_limit_bounds_the_file_size)
{
	char path[PATH_MAX_LEN], msg[NB_MSG_MAX];
	nb_load_opts opts = { .max_bytes = SMALL_LEN - 1 };
	nb_tensor_file f;
	double a[6];
	nb_named_tensor want = { "w", 2, { 2, 3 }, a };

	unique_path(path, "limit");
	save_ok(path, small_set, 2, "hi");
	expect_load_fails(path, &opts, NB_EFORMAT, "124 bytes, over the limit of 123 "
	                  "(nb_load_opts.max_bytes)");
	ck_assert_int_eq(nb_tensors_load_into(path, &opts, &want, 1, msg), NB_EFORMAT);
	expect_msg(msg, "124 bytes, over the limit of 123 (nb_load_opts.max_bytes)", path);
	opts.max_bytes = SMALL_LEN;
	load_ok(path, &opts, &f);
	expect_same_tensors(small_set, f.tensors, 2);
	nb_tensors_free(&f);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* A load runs out of memory at each of its allocations in turn (the file's bytes, the
 * tensors' list, the result): each is NB_ENOMEM with "out of memory" and leaks nothing,
 * until it succeeds with a result that is given back through the same allocator. */
START_TEST(test_load_out_of_memory_at_every_allocation)
{
	char path[PATH_MAX_LEN], msg[NB_MSG_MAX];
	struct set st;
	count_alloc c;
	nb_load_opts opts = { .alloc = count_alloc_fn, .alloc_ud = &c };
	nb_tensor_file f;
	size_t k;
	int status;

	make_set(&st);
	unique_path(path, "load_oom");
	save_ok(path, st.t, 5, "d");
	for (k = 0;; k++) {
		c = (count_alloc){ .fail_at = k + 1 };
		memset(&f, 1, sizeof f);
		status = nb_tensors_load(path, &opts, &f, msg);
		if (status == NB_OK)
			break;
		ck_assert_msg(status == NB_ENOMEM, "allocation %zu: %s", k, msg);
		ck_assert_msg(strstr(msg, "out of memory") != NULL && names_file(msg, path),
		              "allocation %zu: %s", k, msg);
		ck_assert(memcmp(&f, zero_file, sizeof f) == 0);
		ck_assert_uint_eq(c.bytes_in_use, 0);
		ck_assert_uint_eq(c.allocs, c.frees);
	}
	ck_assert_uint_eq(k, 3);
	ck_assert(f.alloc == count_alloc_fn && f.alloc_ud == &c);
	ck_assert_uint_eq(c.bytes_in_use, f.bytes);
	expect_same_tensors(st.t, f.tensors, 5);
	nb_tensors_free(&f);
	ck_assert_uint_eq(c.bytes_in_use, 0);
	ck_assert_uint_eq(c.allocs, c.frees);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* The same for load_into (the list of tensors asked for, the file, the file's list), and
 * nothing asked for is written on any failure. */
START_TEST(test_load_into_out_of_memory_at_every_allocation)
{
	char path[PATH_MAX_LEN], msg[NB_MSG_MAX];
	count_alloc c;
	nb_load_opts opts = { .alloc = count_alloc_fn, .alloc_ud = &c };
	double a[6], s[1];
	nb_named_tensor want[2] = { { "w", 2, { 2, 3 }, a }, { "s", 0, { 0 }, s } };
	size_t k;
	int status;

	unique_path(path, "into_oom");
	save_ok(path, small_set, 2, "hi");
	for (k = 0;; k++) {
		c = (count_alloc){ .fail_at = k + 1 };
		fill(a, 6, SENTINEL);
		s[0] = SENTINEL;
		status = nb_tensors_load_into(path, &opts, want, 2, msg);
		ck_assert_uint_eq(c.bytes_in_use, 0);
		ck_assert_uint_eq(c.allocs, c.frees);
		if (status == NB_OK)
			break;
		ck_assert_msg(status == NB_ENOMEM && strstr(msg, "out of memory") != NULL &&
		              names_file(msg, path), "allocation %zu: %s", k, msg);
		ck_assert(all_equal(a, 6, SENTINEL) && s[0] == SENTINEL);
	}
	ck_assert_uint_eq(k, 3);
	ck_assert(memcmp(a, small_w, sizeof a) == 0 && s[0] == 7.0);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* A save runs out of memory at each of its allocations in turn (the list of tensors, the
 * file image, the temporary file's name): each is NB_ENOMEM, leaks nothing and leaves the
 * old file as it was. */
START_TEST(test_save_out_of_memory_keeps_the_old_file)
{
	char path[PATH_MAX_LEN], msg[NB_MSG_MAX];
	struct set st;
	count_alloc c;
	nb_save_opts opts = { .alloc = count_alloc_fn, .alloc_ud = &c };
	unsigned char *before;
	size_t len, k;
	int status;

	make_set(&st);
	unique_path(path, "save_oom");
	save_ok(path, small_set, 2, "hi");
	before = read_bytes(path, &len);
	for (k = 0;; k++) {
		c = (count_alloc){ .fail_at = k + 1 };
		status = nb_tensors_save_opts(path, st.t, 5, "new", &opts, msg);
		ck_assert_uint_eq(c.bytes_in_use, 0);
		ck_assert_uint_eq(c.allocs, c.frees);
		if (status == NB_OK)
			break;
		ck_assert_msg(status == NB_ENOMEM && strstr(msg, "out of memory") != NULL &&
		              names_file(msg, path), "allocation %zu: %s", k, msg);
		expect_file(path, before, len);
		expect_no_temporaries(path);
	}
	ck_assert_uint_eq(k, 3);
	free(before);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* ---- Atomic saving ----------------------------------------------------------------- */

/* Save with the file size limit set to limit bytes, so that the write of the temporary
 * file fails part-way, even for root. */
static int save_with_size_limit(const char *path, const nb_named_tensor *t, size_t n,
                                rlim_t limit, char *msg)
{
	struct rlimit old, low;
	void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);  /* EFBIG, not a signal */
	int status;

	getrlimit(RLIMIT_FSIZE, &old);
	low = old;
	low.rlim_cur = limit;
	setrlimit(RLIMIT_FSIZE, &low);
	status = nb_tensors_save(path, t, n, NULL, msg);
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, old_handler);
	return status;
}

START_TEST(test_failed_save_keeps_the_old_file)
{
	char path[PATH_MAX_LEN], msg[NB_MSG_MAX] = "";
	struct set st;
	unsigned char *before;
	size_t len;
	nb_tensor_file f;

	make_set(&st);
	unique_path(path, "atomic");
	before = saved_small(path, &len);
	ck_assert_int_eq(save_with_size_limit(path, st.t, 5, 100, msg), NB_EIO);
	ck_assert_msg(names_file(msg, path) && strstr(msg, "cannot write") != NULL, "%s", msg);
	expect_file(path, before, len);
	expect_no_temporaries(path);
	/* A bad tensor after good ones: refused before anything is written. */
	ck_assert_int_eq(nb_tensors_save(path, (nb_named_tensor[]){ st.t[0], st.t[0] }, 2, NULL,
	                                 msg), NB_EINVAL);
	expect_file(path, before, len);
	save_ok(path, st.t, 5, NULL);
	expect_no_temporaries(path);
	load_ok(path, NULL, &f);
	expect_same_tensors(st.t, f.tensors, 5);
	nb_tensors_free(&f);
	free(before);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

START_TEST(test_save_refuses_a_directory)
{
	char path[PATH_MAX_LEN], msg[NB_MSG_MAX] = "";
	struct stat st;

	unique_path(path, "dir_target");
	ck_assert_int_eq(mkdir(path, 0755), 0);
	ck_assert_int_eq(nb_tensors_save(path, small_set, 2, NULL, msg), NB_EIO);
	expect_msg(msg, "cannot replace: a directory, not a regular file", path);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	expect_no_temporaries(path);
	ck_assert_int_eq(rmdir(path), 0);
}
END_TEST

/* Saving "to" a symbolic link would rename a new file over the link and leave the file
 * it points to as it was: refused, and both stay as they were. */
START_TEST(test_save_refuses_a_symbolic_link)
{
	char link[PATH_MAX_LEN], target[PATH_MAX_LEN], msg[NB_MSG_MAX] = "";
	struct stat st;

	unique_path(target, "link_target");
	unique_path(link, "link");
	write_bytes(target, "not tensors", 11);
	ck_assert_int_eq(symlink(target, link), 0);
	ck_assert_int_eq(nb_tensors_save(link, small_set, 2, NULL, msg), NB_EIO);
	expect_msg(msg, "cannot replace: a symbolic link, not a regular file", link);
	ck_assert_int_eq(lstat(link, &st), 0);
	ck_assert(S_ISLNK(st.st_mode));
	expect_file(target, (const unsigned char *)"not tensors", 11);
	expect_no_temporaries(link);
	ck_assert_int_eq(remove(link), 0);
	ck_assert_int_eq(remove(target), 0);
}
END_TEST

/* A FIFO is refused at once (nothing opens it, so nothing waits for a reader) and stays. */
START_TEST(test_save_refuses_a_fifo)
{
	char path[PATH_MAX_LEN], msg[NB_MSG_MAX] = "";
	struct stat st;

	unique_path(path, "fifo_target");
	ck_assert_int_eq(mkfifo(path, 0644), 0);
	alarm(20);
	ck_assert_int_eq(nb_tensors_save(path, small_set, 2, NULL, msg), NB_EIO);
	alarm(0);
	expect_msg(msg, "cannot replace: a FIFO, not a regular file", path);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISFIFO(st.st_mode));
	expect_no_temporaries(path);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

/* A new file gets 0666 less the umask; a replaced one keeps its mode. */
START_TEST(test_file_modes)
{
	char path[PATH_MAX_LEN];
	mode_t old = umask(027);
	struct stat st;

	unique_path(path, "mode");
	save_ok(path, small_set, 2, NULL);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0640);
	ck_assert_int_eq(chmod(path, 0604), 0);
	save_ok(path, small_set, 1, NULL);
	umask(old);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0604);
	ck_assert_int_eq(remove(path), 0);
}
END_TEST

static Suite *tensors_suite(void)
{
	Suite *s = suite_create("tensors");
	TCase *round = tcase_create("round trip");
	TCase *corrupt = tcase_create("corruption");
	TCase *args = tcase_create("arguments");
	TCase *save = tcase_create("saving and memory");

	tcase_add_loop_test(round, test_round_trip_is_bit_exact, 0, 3);
	tcase_add_test(round, test_empty_set_round_trips);
	tcase_add_test(round, test_file_layout_matches_the_document);
	tcase_add_test(round, test_load_into_fills_what_is_asked_for);
	tcase_add_test(round, test_load_into_writes_nothing_unless_all_match);
	tcase_add_test(round, test_load_into_corrupt_file_writes_nothing);
	suite_add_tcase(s, round);

	/* Hundreds of loads, each a file write and read: give valgrind room. */
	tcase_set_timeout(corrupt, 120);
	tcase_add_test(corrupt, test_every_truncation_is_rejected);
	tcase_add_test(corrupt, test_every_flipped_byte_is_rejected);
	tcase_add_test(corrupt, test_bad_magic_version_and_checksum_have_their_messages);
	tcase_add_test(corrupt, test_version_1_file_is_named);
	tcase_add_loop_test(corrupt, test_crafted_file_is_checked_field_by_field, 0,
	                    sizeof crafted / sizeof crafted[0]);
	tcase_add_test(corrupt, test_load_refuses_what_is_not_a_regular_file);
	tcase_add_test(corrupt, test_huge_file_is_rejected_unread);
	suite_add_tcase(s, corrupt);

	tcase_add_loop_test(args, test_bad_tensor_is_refused_at_save_and_load_into, 0,
	                    sizeof bad_tensors / sizeof bad_tensors[0]);
	tcase_add_test(args, test_save_refuses_a_file_over_the_format_limit);
	tcase_add_test(args, test_null_arguments_are_rejected);
	tcase_add_test(args, test_msg_may_be_null);
	suite_add_tcase(s, args);

	tcase_add_test(save, test_load_limit_bounds_the_file_size);
	tcase_add_test(save, test_load_out_of_memory_at_every_allocation);
	tcase_add_test(save, test_load_into_out_of_memory_at_every_allocation);
	tcase_add_test(save, test_save_out_of_memory_keeps_the_old_file);
	tcase_add_test(save, test_failed_save_keeps_the_old_file);
	tcase_add_test(save, test_save_refuses_a_directory);
	tcase_add_test(save, test_save_refuses_a_symbolic_link);
	tcase_add_test(save, test_save_refuses_a_fifo);
	tcase_add_test(save, test_file_modes);
	suite_add_tcase(s, save);
	return s;
}

int main(void)
{
	return run_suite(tensors_suite());
}
