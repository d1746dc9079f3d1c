/* test_idx.c -- the IDX loader: small files written here (plain and gzip) load exactly,
 * whole or in parts, every bad file gives its status and exact message and leaves the
 * data set empty, and the bundled digits (NABLA_DATA_DIR) load with the expected counts,
 * whole and in parts. */
#define _POSIX_C_SOURCE 200809L /* mkdir, rmdir */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "helpers.h"

/* Files are written in the current directory (the build tree) and removed afterwards. */
#define TMP(name) "test_idx_" name ".tmp"

/* The small data set most tests use: 3 images of 2 rows x 3 columns. */
#define N 3
#define ROWS 2
#define COLS 3
#define IMAGES_LEN (16 + N * ROWS * COLS)
#define LABELS_LEN (8 + N)
#define BLOB_MAX 256

static const unsigned char pixels[N * ROWS * COLS] = {
	0, 255, 51, 102, 153, 204,
	1, 2, 3, 4, 5, 6,
	250, 251, 252, 253, 254, 255,
};
static const unsigned char labels[N] = { 3, 0, 9 };

/* ---- Writing files ------------------------------------------------------------------- */

static size_t put_be32(unsigned char *b, uint32_t v)
{
	b[0] = (unsigned char)(v >> 24);
	b[1] = (unsigned char)(v >> 16);
	b[2] = (unsigned char)(v >> 8);
	b[3] = (unsigned char)v;
	return 4;
}

/* An image file's bytes: the header, then n * rows * cols pixels unless px is NULL. */
static size_t image_bytes(unsigned char *b, uint32_t magic, uint32_t n, uint32_t rows,
                          uint32_t cols, const unsigned char *px)
{
	size_t len = put_be32(b, magic);

	len += put_be32(b + len, n);
	len += put_be32(b + len, rows);
	len += put_be32(b + len, cols);
	if (px) {
		memcpy(b + len, px, (size_t)n * rows * cols);
		len += (size_t)n * rows * cols;
	}
	return len;
}

static size_t label_bytes(unsigned char *b, uint32_t magic, uint32_t n, const unsigned char *lab)
{
	size_t len = put_be32(b, magic);

	len += put_be32(b + len, n);
	memcpy(b + len, lab, n);
	return len + n;
}

static void write_plain(const char *name, const void *p, size_t n)
{
	FILE *f = fopen(name, "wb");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(p, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
}

static void write_gzip(const char *name, const void *p, size_t n)
{
	gzFile gz = gzopen(name, "wb");

	ck_assert_ptr_nonnull(gz);
	ck_assert_int_eq(gzwrite(gz, p, (unsigned)n), (int)n);
	ck_assert_int_eq(gzclose(gz), Z_OK);
}

static void write_file(const char *name, const void *p, size_t n, int gz)
{
	if (gz)
		write_gzip(name, p, n);
	else
		write_plain(name, p, n);
}

/* The good images and labels, plain or gzip. */
static void write_good(const char *im, int im_gz, const char *lb, int lb_gz)
{
	unsigned char b[BLOB_MAX];

	write_file(im, b, image_bytes(b, 0x803, N, ROWS, COLS, pixels), im_gz);
	write_file(lb, b, label_bytes(b, 0x801, N, labels), lb_gz);
}

/* Read a whole (small) file back, for cutting compressed files short. */
static size_t read_back(const char *name, unsigned char *b, size_t cap)
{
	FILE *f = fopen(name, "rb");
	size_t n;

	ck_assert_ptr_nonnull(f);
	n = fread(b, 1, cap, f);
	ck_assert_uint_lt(n, cap);
	fclose(f);
	return n;
}

/* ---- Expectations -------------------------------------------------------------------- */

static void expect_zeroed(const nb_dataset *ds)
{
	ck_assert_uint_eq(ds->n, 0);
	ck_assert_uint_eq(ds->rows, 0);
	ck_assert_uint_eq(ds->cols, 0);
	ck_assert_uint_eq(ds->features, 0);
	ck_assert_uint_eq(ds->classes, 0);
	ck_assert_ptr_null(ds->x);
	ck_assert_ptr_null(ds->y);
	ck_assert_ptr_null(ds->label);
}

/* ds filled with garbage, so that a loader that forgets to clear it is caught. */
static void scribble(nb_dataset *ds)
{
	memset(ds, 0xa5, sizeof *ds);
}

/* Loading fails with this status and message, ds is left empty, and a NULL msg is fine. */
static void expect_fail(const char *im, const char *lb, int status, const char *text)
{
	nb_dataset ds;
	char msg[NB_MSG_MAX] = "";

	scribble(&ds);
	ck_assert_str_eq(nb_status_name(nb_dataset_load_idx(im, lb, &ds, msg)),
	                 nb_status_name(status));
	ck_assert_str_eq(msg, text);
	expect_zeroed(&ds);
	scribble(&ds);
	ck_assert_int_eq(nb_dataset_load_idx(im, lb, &ds, NULL), status);
	expect_zeroed(&ds);
}

static void expect_dir_fail(const char *dir, const char *split, int status, const char *text)
{
	nb_dataset ds;
	char msg[NB_MSG_MAX] = "";

	scribble(&ds);
	ck_assert_str_eq(nb_status_name(nb_dataset_load_dir(dir, split, &ds, msg)),
	                 nb_status_name(status));
	ck_assert_str_eq(msg, text);
	expect_zeroed(&ds);
	scribble(&ds);
	ck_assert_int_eq(nb_dataset_load_dir(dir, split, &ds, NULL), status);
	expect_zeroed(&ds);
}

/* ds holds the small data set: shape, scaled pixels, one-hot rows and labels. */
static void expect_good(const nb_dataset *ds)
{
	ck_assert_uint_eq(ds->n, N);
	ck_assert_uint_eq(ds->rows, ROWS);
	ck_assert_uint_eq(ds->cols, COLS);
	ck_assert_uint_eq(ds->features, ROWS * COLS);
	ck_assert_uint_eq(ds->classes, 10);
	/* 0 -> 0, 255 -> 1 and 51 -> 0.2 exactly: division by 255 is correctly rounded. */
	ck_assert_double_eq(ds->x[0], 0.0);
	ck_assert_double_eq(ds->x[1], 1.0);
	ck_assert_double_eq(ds->x[2], 0.2);
	for (size_t i = 0; i < N * ROWS * COLS; i++)
		ck_assert_double_eq(ds->x[i], pixels[i] / 255.0);
	for (size_t i = 0; i < N; i++) {
		ck_assert_uint_eq(ds->label[i], labels[i]);
		for (size_t c = 0; c < 10; c++)
			ck_assert_double_eq(ds->y[i * 10 + c], c == labels[i] ? 1.0 : 0.0);
	}
}

/* Whether msg ends with ": PATH", as every message about a file does. */
static int names_file(const char *msg, const char *path)
{
	size_t m = strlen(msg), n = strlen(path);

	return m > n + 2 && strncmp(msg + m - n - 2, ": ", 2) == 0 &&
	       strcmp(msg + m - n, path) == 0;
}

static void remove2(const char *a, const char *b)
{
	remove(a);
	remove(b);
}

/* ---- Good files ---------------------------------------------------------------------- */

/* _i: bit 0 compresses the images, bit 1 the labels. */
START_TEST(test_good_pair_loads)
{
	const char *im = TMP("good_images"), *lb = TMP("good_labels");
	nb_dataset ds;
	char msg[NB_MSG_MAX] = "untouched";

	write_good(im, _i & 1, lb, _i & 2);
	scribble(&ds);
	ck_assert_int_eq(nb_dataset_load_idx(im, lb, &ds, msg), NB_OK);
	ck_assert_str_eq(msg, "untouched");
	expect_good(&ds);
	nb_dataset_free(&ds);
	expect_zeroed(&ds);
	remove2(im, lb);
}
END_TEST

/* The index of the first of n pixels that is not bytes[i] / 255, or n: one assertion for
 * many pixels, as each Check assertion reports to the parent process. */
static size_t first_bad_pixel(const double *x, const unsigned char *bytes, size_t n)
{
	size_t i = 0;

	while (i < n && x[i] == bytes[i] / 255.0)
		i++;
	return i;
}

/* More pixels than one read chunk, so chunk boundaries are crossed (plain and gzip). */
START_TEST(test_large_image_crosses_chunks)
{
	const char *im = TMP("large_images"), *lb = TMP("large_labels");
	const uint32_t n = 2, side = 150;
	size_t len = 16 + (size_t)n * side * side;
	unsigned char *b = malloc(len), lab[16];
	nb_dataset ds;

	ck_assert_ptr_nonnull(b);
	image_bytes(b, 0x803, n, side, side, NULL);
	for (size_t i = 16; i < len; i++)
		b[i] = (unsigned char)(i * 7 % 256);
	write_file(im, b, len, _i);
	write_file(lb, lab, label_bytes(lab, 0x801, n, (const unsigned char[]){ 7, 1 }), _i);
	ck_assert_int_eq(nb_dataset_load_idx(im, lb, &ds, NULL), NB_OK);
	ck_assert_uint_eq(ds.features, side * side);
	ck_assert_uint_eq(first_bad_pixel(ds.x, b + 16, len - 16), len - 16);
	ck_assert_double_eq(ds.y[7], 1.0);
	ck_assert_double_eq(ds.y[11], 1.0);
	nb_dataset_free(&ds);
	free(b);
	remove2(im, lb);
}
END_TEST

/* 4096 rows (or columns) is the largest side allowed. */
START_TEST(test_largest_side_loads)
{
	const char *im = TMP("side_images"), *lb = TMP("side_labels");
	unsigned char *b = calloc(16 + 4096, 1), lab[16];
	nb_dataset ds;

	ck_assert_ptr_nonnull(b);
	image_bytes(b, 0x803, 1, _i ? 1 : 4096, _i ? 4096 : 1, NULL);
	write_plain(im, b, 16 + 4096);
	write_plain(lb, lab, label_bytes(lab, 0x801, 1, (const unsigned char[]){ 5 }));
	ck_assert_int_eq(nb_dataset_load_idx(im, lb, &ds, NULL), NB_OK);
	ck_assert_uint_eq(ds.features, 4096);
	ck_assert_uint_eq(ds.rows, _i ? 1 : 4096);
	nb_dataset_free(&ds);
	free(b);
	remove2(im, lb);
}
END_TEST

START_TEST(test_free_null_and_zeroed_is_safe)
{
	nb_dataset ds;

	nb_dataset_free(NULL);
	memset(&ds, 0, sizeof ds);
	nb_dataset_free(&ds);
	expect_zeroed(&ds);
	nb_dataset_free(&ds);
	expect_zeroed(&ds);
}
END_TEST

/* ---- Bad headers --------------------------------------------------------------------- */

START_TEST(test_images_bad_magic)
{
	const char *im = TMP("magic_images"), *lb = TMP("magic_labels");
	unsigned char b[BLOB_MAX];

	write_good(im, 0, lb, 0);
	write_plain(im, b, image_bytes(b, 0x804, N, ROWS, COLS, pixels));
	expect_fail(im, lb, NB_EFORMAT, "bad magic 0x00000804 at byte 0 "
	            "(expected 0x00000803, an IDX image file): " TMP("magic_images"));
	remove2(im, lb);
}
END_TEST

START_TEST(test_labels_bad_magic)
{
	const char *im = TMP("magic2_images"), *lb = TMP("magic2_labels");
	unsigned char b[BLOB_MAX];

	write_good(im, 0, lb, 1);
	write_gzip(lb, b, label_bytes(b, 0x08030000, N, labels));
	expect_fail(im, lb, NB_EFORMAT, "bad magic 0x08030000 at byte 0 "
	            "(expected 0x00000801, an IDX label file): " TMP("magic2_labels"));
	remove2(im, lb);
}
END_TEST

/* Labels given as images: the first file is named, whatever the second holds. */
START_TEST(test_swapped_files)
{
	const char *im = TMP("swap_images"), *lb = TMP("swap_labels");

	write_good(im, 0, lb, 0);
	expect_fail(lb, im, NB_EFORMAT, "bad magic 0x00000801 at byte 0 "
	            "(expected 0x00000803, an IDX image file): " TMP("swap_labels"));
	expect_fail(im, im, NB_EFORMAT, "bad magic 0x00000803 at byte 0 "
	            "(expected 0x00000801, an IDX label file): " TMP("swap_images"));
	remove2(im, lb);
}
END_TEST

/* _i is the length of the image file, cut anywhere short of its 34 bytes. */
START_TEST(test_images_truncated_at_every_length)
{
	const char *im = TMP("cut_images"), *lb = TMP("cut_labels");
	unsigned char b[BLOB_MAX];
	char text[NB_MSG_MAX];

	write_good(im, 0, lb, 0);
	image_bytes(b, 0x803, N, ROWS, COLS, pixels);
	write_plain(im, b, (size_t)_i);
	snprintf(text, sizeof text, "truncated at byte %d (%s): %s", _i,
	         _i < 16 ? "header needs 16 bytes" : "image data needs 34 bytes", im);
	expect_fail(im, lb, NB_EFORMAT, text);
	remove2(im, lb);
}
END_TEST

START_TEST(test_labels_truncated_at_every_length)
{
	const char *im = TMP("cut2_images"), *lb = TMP("cut2_labels");
	unsigned char b[BLOB_MAX];
	char text[NB_MSG_MAX];

	write_good(im, 0, lb, 0);
	label_bytes(b, 0x801, N, labels);
	write_plain(lb, b, (size_t)_i);
	snprintf(text, sizeof text, "truncated at byte %d (%s): %s", _i,
	         _i < 8 ? "header needs 8 bytes" : "label data needs 11 bytes", lb);
	expect_fail(im, lb, NB_EFORMAT, text);
	remove2(im, lb);
}
END_TEST

/* Data cut short inside a gzip stream: truncated at the last byte zlib could inflate. */
START_TEST(test_gzip_data_truncated)
{
	const char *im = TMP("gzcut_images"), *lb = TMP("gzcut_labels");
	unsigned char b[BLOB_MAX];

	write_good(im, 0, lb, 0);
	write_gzip(im, b, image_bytes(b, 0x803, N, ROWS, COLS, pixels) - 4);
	expect_fail(im, lb, NB_EFORMAT,
	            "truncated at byte 30 (image data needs 34 bytes): " TMP("gzcut_images"));
	remove2(im, lb);
}
END_TEST

/* A gzip file cut anywhere never loads, and the message names the file. Cut inside the
 * 8-byte trailer (CRC and length), all the data inflates, and the stream is cut short. */
START_TEST(test_gzip_file_cut_anywhere)
{
	const char *im = TMP("gzshort_images"), *lb = TMP("gzshort_labels");
	unsigned char b[BLOB_MAX];
	char msg[NB_MSG_MAX];
	size_t len;
	nb_dataset ds;

	write_good(im, 1, lb, 0);
	len = read_back(im, b, sizeof b);
	for (size_t cut = 1; cut < len; cut++) {
		int s;

		write_plain(im, b, len - cut);
		scribble(&ds);
		msg[0] = '\0';
		s = nb_dataset_load_idx(im, lb, &ds, msg);
		ck_assert_msg(s == NB_EFORMAT || s == NB_EIO, "cut %zu: %s", cut, msg);
		ck_assert_msg(names_file(msg, im), "cut %zu: %s", cut, msg);
		if (cut <= 8)
			ck_assert_str_eq(msg, "gzip stream cut short after 34 bytes of data: "
			                 TMP("gzshort_images"));
		expect_zeroed(&ds);
	}
	remove2(im, lb);
}
END_TEST

START_TEST(test_counts_disagree)
{
	const char *im = TMP("count_images"), *lb = TMP("count_labels");
	unsigned char b[BLOB_MAX];
	size_t len;

	write_good(im, 0, lb, 0);
	write_plain(lb, b, label_bytes(b, 0x801, N - 1, labels));
	expect_fail(im, lb, NB_EFORMAT, "3 images but 2 labels: " TMP("count_labels"));
	len = label_bytes(b, 0x801, N, labels);
	put_be32(b + 4, 70000);
	write_plain(lb, b, len);
	expect_fail(im, lb, NB_EFORMAT, "3 images but 70000 labels: " TMP("count_labels"));
	remove2(im, lb);
}
END_TEST

static const struct {
	uint32_t n, rows, cols;
	const char *text;
} absurd[] = {
	{ 0, 28, 28, "absurd dimensions 0 x 28 x 28 at byte 4" },
	{ 70000, 0, 28, "absurd dimensions 70000 x 0 x 28 at byte 4" },
	{ 70000, 28, 0, "absurd dimensions 70000 x 28 x 0 at byte 4" },
	{ 3, 4097, 28, "absurd dimensions 3 x 4097 x 28 at byte 4" },
	{ 3, 28, 4097, "absurd dimensions 3 x 28 x 4097 at byte 4" },
	{ 100000001, 1, 1, "absurd dimensions 100000001 x 1 x 1 at byte 4" },
	{ 0xffffffff, 0xffffffff, 0xffffffff,
	  "absurd dimensions 4294967295 x 4294967295 x 4294967295 at byte 4" },
};

START_TEST(test_absurd_dimensions)
{
	const char *im = TMP("absurd_images"), *lb = TMP("absurd_labels");
	unsigned char b[BLOB_MAX];
	char text[NB_MSG_MAX];

	write_good(im, 0, lb, 0);
	write_plain(im, b, image_bytes(b, 0x803, absurd[_i].n, absurd[_i].rows, absurd[_i].cols,
	                               NULL));
	snprintf(text, sizeof text, "%s: %s", absurd[_i].text, im);
	expect_fail(im, lb, NB_EFORMAT, text);
	remove2(im, lb);
}
END_TEST

/* An allocator that records the most bytes in use at once. */
struct peak_alloc {
	count_alloc c;
	size_t peak;
};

static void *peak_alloc_fn(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct peak_alloc *p = ud;
	void *q = count_alloc_fn(&p->c, ptr, osize, nsize);

	if (p->c.bytes_in_use > p->peak)
		p->peak = p->c.bytes_in_use;
	return q;
}

/* Loading fails with this status and message, with opts (max_bytes given) and an
 * allocator that reports the peak of memory in use, which must stay under peak_max;
 * ds is left empty and nothing is left allocated. */
static void expect_fail_within(const char *im, const char *lb, size_t max_bytes,
                               size_t peak_max, int status, const char *text)
{
	struct peak_alloc p = { { 0 }, 0 };
	nb_load_opts opts = { .alloc = peak_alloc_fn, .alloc_ud = &p, .max_bytes = max_bytes };
	char msg[NB_MSG_MAX] = "";
	nb_dataset ds;

	scribble(&ds);
	ck_assert_str_eq(nb_status_name(nb_dataset_load_idx_opts(im, lb, &opts, &ds, msg)),
	                 nb_status_name(status));
	ck_assert_str_eq(msg, text);
	expect_zeroed(&ds);
	ck_assert_uint_eq(p.c.bytes_in_use, 0);
	ck_assert_uint_eq(p.c.allocs, p.c.frees);
	ck_assert_msg(p.peak <= peak_max, "peak %zu bytes", p.peak);
}

/* Headers may claim far more data than the file holds: the loader must find the file
 * truncated rather than first allocate what the headers claim (a fuzzer found a 27-byte
 * input that asked for 627 GB this way). By default the claim is over the limit; with
 * the limit lifted, the file is truncated and the load has taken less than 64 KB. */
START_TEST(test_huge_claim_is_truncated_not_allocated)
{
	const char *im = TMP("claim_images"), *lb = TMP("claim_labels");
	unsigned char b[BLOB_MAX];
	size_t len;
	char text[NB_MSG_MAX];

	write_plain(im, b, image_bytes(b, 0x803, 100000000, 28, 28, NULL));
	len = put_be32(b, 0x801);
	len += put_be32(b + len, 100000000);
	write_plain(lb, b, len);
	expect_fail(im, lb, NB_EFORMAT, "100000000 images of 28 x 28 (byte 4) would take "
	            "635300000000 bytes, over the limit of 1073741824 (nb_load_opts.max_bytes): "
	            TMP("claim_images"));
	snprintf(text, sizeof text,
	         "truncated at byte 16 (image data needs 78400000016 bytes): %s", im);
	expect_fail_within(im, lb, SIZE_MAX, 65536, NB_EFORMAT, text);
	remove2(im, lb);
}
END_TEST

/* A small gzip file whose header claims 50 million images of 1 x 1 (inflating into 4.4 GB
 * of data set, were they there), holding 1000: refused from the header by the default
 * limit, having taken only zlib's state; with the limit lifted, truncated, having taken
 * less than 128 KB. */
START_TEST(test_gzip_huge_claim_is_bounded)
{
	const char *im = TMP("bomb_images"), *lb = TMP("bomb_labels");
	unsigned char b[16 + 1000] = { 0 }, c[8 + 1000] = { 0 };
	char text[NB_MSG_MAX];

	write_gzip(im, b, image_bytes(b, 0x803, 50000000, 1, 1, NULL) + 1000);
	put_be32(c, 0x801);
	put_be32(c + 4, 50000000);
	write_gzip(lb, c, sizeof c);
	snprintf(text, sizeof text, "50000000 images of 1 x 1 (byte 4) would take 4450000000 "
	         "bytes, over the limit of 1073741824 (nb_load_opts.max_bytes): %s", im);
	expect_fail(im, lb, NB_EFORMAT, text);
	expect_fail_within(im, lb, 0, 65536, NB_EFORMAT, text);
	snprintf(text, sizeof text, "truncated at byte 1016 (image data needs 50000016 bytes): "
	         "%s", im);
	expect_fail_within(im, lb, SIZE_MAX, 131072, NB_EFORMAT, text);
	remove2(im, lb);
}
END_TEST

/* The limit counts x, y and label: 3 images of 2 x 3 take 3 (8 (6 + 10) + 1) = 387 bytes. */
START_TEST(test_limit_is_the_data_set_size)
{
	const char *im = TMP("limit_images"), *lb = TMP("limit_labels");
	nb_load_opts opts = { .max_bytes = 387 };
	nb_dataset ds;

	write_good(im, 1, lb, 0);
	ck_assert_int_eq(nb_dataset_load_idx_opts(im, lb, &opts, &ds, NULL), NB_OK);
	expect_good(&ds);
	nb_dataset_free(&ds);
	expect_fail_within(im, lb, 386, 65536, NB_EFORMAT, "3 images of 2 x 3 (byte 4) would "
	                   "take 387 bytes, over the limit of 386 (nb_load_opts.max_bytes): "
	                   TMP("limit_images"));
	remove2(im, lb);
}
END_TEST

/* ---- Bad data ------------------------------------------------------------------------ */

START_TEST(test_label_not_a_digit)
{
	const char *im = TMP("digit_images"), *lb = TMP("digit_labels");
	unsigned char b[BLOB_MAX];

	write_good(im, 0, lb, 0);
	write_plain(lb, b, label_bytes(b, 0x801, N, (const unsigned char[]){ 3, 10, 9 }));
	expect_fail(im, lb, NB_EFORMAT,
	            "label 10 at byte 9 is not a digit (0..9): " TMP("digit_labels"));
	write_gzip(lb, b, label_bytes(b, 0x801, N, (const unsigned char[]){ 3, 0, 255 }));
	expect_fail(im, lb, NB_EFORMAT,
	            "label 255 at byte 10 is not a digit (0..9): " TMP("digit_labels"));
	remove2(im, lb);
}
END_TEST

/* _i: 0 plain, 1 gzip (the extra bytes inside the compressed stream). */
START_TEST(test_trailing_bytes)
{
	const char *im = TMP("trail_images"), *lb = TMP("trail_labels");
	unsigned char b[BLOB_MAX];
	size_t len;

	write_good(im, _i, lb, _i);
	len = image_bytes(b, 0x803, N, ROWS, COLS, pixels);
	memcpy(b + len, "abc", 3);
	write_file(im, b, len + 3, _i);
	expect_fail(im, lb, NB_EFORMAT,
	            "3 unexpected bytes after the data at byte 34: " TMP("trail_images"));
	write_good(im, _i, lb, _i);
	len = label_bytes(b, 0x801, N, labels);
	b[len] = 0;
	write_file(lb, b, len + 1, _i);
	expect_fail(im, lb, NB_EFORMAT,
	            "1 unexpected byte after the data at byte 11: " TMP("trail_labels"));
	remove2(im, lb);
}
END_TEST

/* A valid gzip header, then a deflate block of the reserved type 3. */
START_TEST(test_corrupt_gzip_stream)
{
	const char *im = TMP("corrupt_images"), *lb = TMP("corrupt_labels");
	const unsigned char bad[] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff };

	write_good(im, 0, lb, 0);
	write_plain(im, bad, sizeof bad);
	expect_fail(im, lb, NB_EIO, "gzip error: invalid block type: " TMP("corrupt_images"));
	write_good(im, 0, lb, 0);
	write_plain(lb, bad, sizeof bad);
	expect_fail(im, lb, NB_EIO, "gzip error: invalid block type: " TMP("corrupt_labels"));
	remove2(im, lb);
}
END_TEST

/* ---- Files that cannot be read, arguments -------------------------------------------- */

START_TEST(test_missing_file)
{
	const char *im = TMP("missing_images"), *lb = TMP("missing_labels");
	char text[NB_MSG_MAX];

	remove2(im, lb);
	snprintf(text, sizeof text, "cannot open: %s: %s", strerror(ENOENT), im);
	expect_fail(im, lb, NB_EIO, text);
	write_good(im, 0, lb, 0);
	remove(lb);
	snprintf(text, sizeof text, "cannot open: %s: %s", strerror(ENOENT), lb);
	expect_fail(im, lb, NB_EIO, text);
	remove(im);
}
END_TEST

/* A directory is refused before it is read. */
START_TEST(test_directory_is_not_a_file)
{
	const char *lb = TMP("isdir_labels");

	write_good(TMP("isdir_images"), 0, lb, 0);
	expect_fail(".", lb, NB_EIO, "cannot open: a directory, not a regular file: .");
	remove2(TMP("isdir_images"), lb);
}
END_TEST

/* A FIFO with no writer would block a reader forever: it is refused without being read,
 * as either file or through a directory. The alarm ends the test if a load blocks. */
START_TEST(test_fifo_is_refused_at_once)
{
	const char *im = TMP("fifo_images"), *lb = TMP("fifo_labels");

	remove2(im, lb);
	ck_assert_int_eq(mkfifo(im, 0644), 0);
	write_good(TMP("fifo_good_images"), 0, lb, 0);
	alarm(20);
	expect_fail(im, lb, NB_EIO,
	            "cannot open: a FIFO, not a regular file: " TMP("fifo_images"));
	expect_fail(TMP("fifo_good_images"), im, NB_EIO,
	            "cannot open: a FIFO, not a regular file: " TMP("fifo_images"));
	alarm(0);
	remove2(im, lb);
	remove(TMP("fifo_good_images"));
}
END_TEST

/* A device is not read either (/dev/zero would give zeros for ever). */
START_TEST(test_device_is_refused)
{
	expect_fail("/dev/zero", "/dev/null", NB_EIO,
	            "cannot open: a character device, not a regular file: /dev/zero");
}
END_TEST

/* A long path is cut to NB_MSG_MAX - 1 bytes, never overflowing msg, and the reason
 * before it is whole. */
START_TEST(test_long_path_message_is_cut)
{
	char path[3 * NB_MSG_MAX], msg[NB_MSG_MAX + 1], want[NB_MSG_MAX];
	nb_dataset ds;

	memset(path, 'a', sizeof path - 1);
	path[sizeof path - 1] = '\0';
	msg[NB_MSG_MAX] = 'X';
	ck_assert_int_eq(nb_dataset_load_idx(path, path, &ds, msg), NB_EIO);
	ck_assert_uint_eq(strlen(msg), NB_MSG_MAX - 1);
	ck_assert_int_eq(msg[NB_MSG_MAX], 'X');
	snprintf(want, sizeof want, "cannot open: %s: aaaa", strerror(ENAMETOOLONG));
	ck_assert_msg(strncmp(msg, want, strlen(want)) == 0, "message: %s", msg);
	expect_zeroed(&ds);
}
END_TEST

/* LONG_DIR, two levels of 150-byte names inside it, then a file: a path of over 300
 * bytes whose every component is short enough to exist. */
#define LONG_DIR TMP("long")
#define LONG_NAME "dddddddddddddddddddddddddddddddddddddddddddddddddd" \
	"dddddddddddddddddddddddddddddddddddddddddddddddddd" \
	"dddddddddddddddddddddddddddddddddddddddddddddddddd"
#define LONG_PATH(file) LONG_DIR "/" LONG_NAME "/" LONG_NAME "/" file

static void make_long_dirs(void)
{
	ck_assert_int_eq(mkdir(LONG_DIR, 0755), 0);
	ck_assert_int_eq(mkdir(LONG_DIR "/" LONG_NAME, 0755), 0);
	ck_assert_int_eq(mkdir(LONG_DIR "/" LONG_NAME "/" LONG_NAME, 0755), 0);
}

static void remove_long_dirs(void)
{
	rmdir(LONG_DIR "/" LONG_NAME "/" LONG_NAME);
	rmdir(LONG_DIR "/" LONG_NAME);
	rmdir(LONG_DIR);
}

/* With a path of over 300 bytes, each message still starts with its whole reason. */
START_TEST(test_long_path_keeps_the_reason)
{
	const char *im = LONG_PATH("images"), *lb = LONG_PATH("labels");
	unsigned char b[BLOB_MAX];
	char msg[NB_MSG_MAX], reason[NB_MSG_MAX];
	nb_dataset ds;

	ck_assert_uint_gt(strlen(im), 300);
	remove_long_dirs();
	snprintf(reason, sizeof reason, "cannot open: %s", strerror(ENOENT));
	ck_assert_int_eq(nb_dataset_load_idx(im, lb, &ds, msg), NB_EIO);
	expect_reason_then_path(msg, reason, im);
	make_long_dirs();
	write_good(im, 0, lb, 1);
	write_plain(im, b, image_bytes(b, 0x804, N, ROWS, COLS, pixels));
	ck_assert_int_eq(nb_dataset_load_idx(im, lb, &ds, msg), NB_EFORMAT);
	expect_reason_then_path(msg, "bad magic 0x00000804 at byte 0 (expected 0x00000803, an "
	                        "IDX image file)", im);
	write_good(im, 0, lb, 1);
	write_gzip(lb, b, label_bytes(b, 0x801, N, (const unsigned char[]){ 3, 10, 9 }));
	ck_assert_int_eq(nb_dataset_load_idx(im, lb, &ds, msg), NB_EFORMAT);
	expect_reason_then_path(msg, "label 10 at byte 9 is not a digit (0..9)", lb);
	remove2(im, lb);
	remove_long_dirs();
}
END_TEST

START_TEST(test_null_arguments)
{
	nb_dataset ds;
	char msg[NB_MSG_MAX];

	expect_fail(NULL, "l", NB_ENULL, "load_idx: images is NULL");
	expect_fail("i", NULL, NB_ENULL, "load_idx: labels is NULL");
	ck_assert_int_eq(nb_dataset_load_idx("i", "l", NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "load_idx: ds is NULL");
	ck_assert_int_eq(nb_dataset_load_idx("i", "l", NULL, NULL), NB_ENULL);
	expect_dir_fail(NULL, "train", NB_ENULL, "load_dir: dir is NULL");
	expect_dir_fail(".", NULL, NB_ENULL, "load_dir: split is NULL");
	ck_assert_int_eq(nb_dataset_load_dir(".", "train", NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "load_dir: ds is NULL");
	scribble(&ds);
	ck_assert_int_eq(nb_dataset_load_idx(NULL, NULL, &ds, NULL), NB_ENULL);
	expect_zeroed(&ds);
}
END_TEST

START_TEST(test_bad_split)
{
	expect_dir_fail(".", "xyz", NB_EINVAL,
	                "load_dir: split must be \"train\" or \"t10k\", not \"xyz\"");
	expect_dir_fail(".", "", NB_EINVAL,
	                "load_dir: split must be \"train\" or \"t10k\", not \"\"");
	expect_dir_fail(".", "Train", NB_EINVAL,
	                "load_dir: split must be \"train\" or \"t10k\", not \"Train\"");
}
END_TEST

/* ---- Directories --------------------------------------------------------------------- */

#define DIR TMP("dir")
#define DIR_IM(split, ext) DIR "/" split "-images-idx3-ubyte" ext
#define DIR_LB(split, ext) DIR "/" split "-labels-idx1-ubyte" ext

static void remove_dir(void)
{
	remove2(DIR_IM("train", ""), DIR_LB("train", ""));
	remove2(DIR_IM("train", ".gz"), DIR_LB("train", ".gz"));
	remove2(DIR_IM("t10k", ""), DIR_LB("t10k", ""));
	rmdir(DIR);
}

START_TEST(test_dir_missing_files)
{
	char text[NB_MSG_MAX];

	remove_dir();
	snprintf(text, sizeof text, "cannot open: %s: %s[.gz]", strerror(ENOENT),
	         DIR_IM("train", ""));
	expect_dir_fail(DIR, "train", NB_EIO, text);
	ck_assert_int_eq(mkdir(DIR, 0755), 0);
	expect_dir_fail(DIR, "train", NB_EIO, text);
	write_plain(DIR_IM("train", ".gz"), "", 0);
	snprintf(text, sizeof text, "cannot open: %s: %s[.gz]", strerror(ENOENT),
	         DIR_LB("train", ""));
	expect_dir_fail(DIR, "train", NB_EIO, text);
	remove_dir();
}
END_TEST

/* Plain files are preferred over gzip ones; either kind alone is found, for each split. */
START_TEST(test_dir_finds_plain_then_gzip)
{
	unsigned char b[BLOB_MAX];
	nb_dataset ds;

	remove_dir();
	ck_assert_int_eq(mkdir(DIR, 0755), 0);
	write_good(DIR_IM("train", ".gz"), 1, DIR_LB("train", ".gz"), 1);
	write_plain(DIR_IM("train", ""), "bad", 3);
	expect_dir_fail(DIR, "train", NB_EFORMAT,
	                "truncated at byte 3 (header needs 16 bytes): " DIR_IM("train", ""));
	remove(DIR_IM("train", ""));
	ck_assert_int_eq(nb_dataset_load_dir(DIR, "train", &ds, NULL), NB_OK);
	expect_good(&ds);
	nb_dataset_free(&ds);
	write_good(DIR_IM("t10k", ""), 0, DIR_LB("t10k", ""), 0);
	write_plain(DIR_LB("train", ""), b, label_bytes(b, 0x801, 1, labels));
	expect_dir_fail(DIR, "train", NB_EFORMAT,
	                "3 images but 1 labels: " DIR_LB("train", ""));
	ck_assert_int_eq(nb_dataset_load_dir(DIR, "t10k", &ds, NULL), NB_OK);
	expect_good(&ds);
	nb_dataset_free(&ds);
	remove_dir();
}
END_TEST

/* ---- Parts --------------------------------------------------------------------------- */

/* Where part p of parts of n examples starts, and how many it holds, written out from the
 * header's rule rather than taken from the library. */
static void part_range(size_t p, size_t parts, size_t n, size_t *first, size_t *count)
{
	size_t q = n / parts, r = n % parts;

	*first = p * q + (p < r ? p : r);
	*count = q + (p < r ? 1 : 0);
}

/* ds is part p of parts of the small data set: the shape, then count examples from
 * first, each with its scaled pixels, label and one-hot row; an empty part has no arrays. */
static void expect_part(const nb_dataset *ds, size_t p, size_t parts)
{
	size_t first, count, f = ROWS * COLS;

	part_range(p, parts, N, &first, &count);
	ck_assert_uint_eq(ds->n, count);
	ck_assert_uint_eq(ds->rows, ROWS);
	ck_assert_uint_eq(ds->cols, COLS);
	ck_assert_uint_eq(ds->features, f);
	ck_assert_uint_eq(ds->classes, 10);
	if (count == 0) {
		ck_assert_ptr_null(ds->x);
		ck_assert_ptr_null(ds->y);
		ck_assert_ptr_null(ds->label);
		return;
	}
	ck_assert_uint_eq(first_bad_pixel(ds->x, pixels + first * f, count * f), count * f);
	for (size_t i = 0; i < count; i++) {
		ck_assert_uint_eq(ds->label[i], labels[first + i]);
		for (size_t c = 0; c < 10; c++)
			ck_assert_double_eq(ds->y[i * 10 + c], c == labels[first + i] ? 1.0 : 0.0);
	}
}

/* Loading part p of parts fails with this status and message, ds is left empty, and a
 * NULL msg is fine. */
static void expect_part_fail(const char *im, const char *lb, size_t p, size_t parts,
                             const nb_load_opts *opts, int status, const char *text)
{
	nb_dataset ds;
	char msg[NB_MSG_MAX] = "";

	scribble(&ds);
	ck_assert_str_eq(nb_status_name(nb_dataset_load_idx_part(im, lb, p, parts, opts, &ds,
	                                                         msg)),
	                 nb_status_name(status));
	ck_assert_str_eq(msg, text);
	expect_zeroed(&ds);
	scribble(&ds);
	ck_assert_int_eq(nb_dataset_load_idx_part(im, lb, p, parts, opts, &ds, NULL), status);
	expect_zeroed(&ds);
}

/* Part p of parts loads, holding what expect_part() says. */
static void expect_part_loads(const char *im, const char *lb, size_t p, size_t parts)
{
	char msg[NB_MSG_MAX] = "";
	nb_dataset ds;

	scribble(&ds);
	ck_assert_msg(nb_dataset_load_idx_part(im, lb, p, parts, NULL, &ds, msg) == NB_OK,
	              "part %zu of %zu: %s", p, parts, msg);
	expect_part(&ds, p, parts);
	nb_dataset_free(&ds);
}

/* Every part of 1 to 5 parts holds its examples (of 3: parts 3 and 4 of 5 are empty), the
 * parts in order are the whole load, and each part gives back all it took. _i: bit 0
 * compresses the images, bit 1 the labels. */
START_TEST(test_parts_are_the_whole_file)
{
	const char *im = TMP("parts_images"), *lb = TMP("parts_labels");
	size_t f = ROWS * COLS;
	nb_dataset whole;

	write_good(im, _i & 1, lb, _i & 2);
	ck_assert_int_eq(nb_dataset_load_idx(im, lb, &whole, NULL), NB_OK);
	for (size_t parts = 1; parts <= 5; parts++) {
		size_t next = 0;

		for (size_t p = 0; p < parts; p++) {
			count_alloc c = { 0 };
			nb_load_opts opts = { .alloc = count_alloc_fn, .alloc_ud = &c };
			char msg[NB_MSG_MAX] = "";
			nb_dataset ds;

			scribble(&ds);
			ck_assert_msg(nb_dataset_load_idx_part(im, lb, p, parts, &opts, &ds, msg) ==
			              NB_OK, "part %zu of %zu: %s", p, parts, msg);
			expect_part(&ds, p, parts);
			if (ds.n > 0) {
				ck_assert_mem_eq(ds.x, whole.x + next * f, ds.n * f * sizeof *ds.x);
				ck_assert_mem_eq(ds.y, whole.y + next * 10, ds.n * 10 * sizeof *ds.y);
				ck_assert_mem_eq(ds.label, whole.label + next, ds.n);
			}
			next += ds.n;
			nb_dataset_free(&ds);
			ck_assert_uint_eq(c.bytes_in_use, 0);
			ck_assert_uint_eq(c.allocs, c.frees);
		}
		ck_assert_uint_eq(next, N);
	}
	nb_dataset_free(&whole);
	remove2(im, lb);
}
END_TEST

/* Part 0 of 1 is the whole file, through either entry point. */
START_TEST(test_part_0_of_1_is_the_whole_load)
{
	const char *im = TMP("part01_images"), *lb = TMP("part01_labels");
	nb_dataset ds;

	write_good(im, 1, lb, 0);
	ck_assert_int_eq(nb_dataset_load_idx_part(im, lb, 0, 1, NULL, &ds, NULL), NB_OK);
	expect_good(&ds);
	nb_dataset_free(&ds);
	remove2(im, lb);
}
END_TEST

/* Each pixel of the large file of 2 images of 150 x 150 (22,500 bytes each, more than one
 * read chunk): part 1 of 2 starts past the first chunk, so a plain file is seeked. */
START_TEST(test_part_past_the_first_chunk)
{
	const char *im = TMP("bigpart_images"), *lb = TMP("bigpart_labels");
	const uint32_t n = 2, side = 150;
	size_t len = 16 + (size_t)n * side * side, f = (size_t)side * side;
	unsigned char *b = malloc(len), lab[16];
	nb_dataset ds;

	ck_assert_ptr_nonnull(b);
	image_bytes(b, 0x803, n, side, side, NULL);
	for (size_t i = 16; i < len; i++)
		b[i] = (unsigned char)(i * 7 % 256);
	write_file(im, b, len, _i);
	write_file(lb, lab, label_bytes(lab, 0x801, n, (const unsigned char[]){ 7, 1 }), _i);
	for (size_t p = 0; p < 2; p++) {
		ck_assert_int_eq(nb_dataset_load_idx_part(im, lb, p, 2, NULL, &ds, NULL), NB_OK);
		ck_assert_uint_eq(ds.n, 1);
		ck_assert_uint_eq(first_bad_pixel(ds.x, b + 16 + p * f, f), f);
		ck_assert_uint_eq(ds.label[0], p ? 1 : 7);
		ck_assert_double_eq(ds.y[p ? 1 : 7], 1.0);
		nb_dataset_free(&ds);
	}
	/* Cut short inside the first image: part 1 is truncated where the file ends (a seek
	 * never goes past it), part 0 too. */
	write_file(im, b, 20000, _i);
	expect_part_fail(im, lb, 1, 2, NULL, NB_EFORMAT, "truncated at byte 20000 (image data "
	                 "of part 1 of 2 needs 45016 bytes): " TMP("bigpart_images"));
	expect_part_fail(im, lb, 0, 2, NULL, NB_EFORMAT, "truncated at byte 20000 (image data "
	                 "of part 0 of 2 needs 22516 bytes): " TMP("bigpart_images"));
	free(b);
	remove2(im, lb);
}
END_TEST

/* A bad part is refused before any file is opened, leaving ds empty. */
START_TEST(test_bad_part_is_refused)
{
	const char *im = TMP("badpart_images"), *lb = TMP("badpart_labels");
	char text[NB_MSG_MAX];

	remove2(im, lb);
	expect_part_fail(im, lb, 0, 0, NULL, NB_EINVAL,
	                 "load_idx_part: parts is 0 (1 or more expected)");
	expect_part_fail(im, lb, 3, 3, NULL, NB_EINVAL,
	                 "load_idx_part: part 3 of 3 (0 to 2 expected)");
	expect_part_fail(im, lb, 1, 1, NULL, NB_EINVAL,
	                 "load_idx_part: part 1 of 1 (0 to 0 expected)");
	snprintf(text, sizeof text, "load_idx_part: part %zu of 2 (0 to 1 expected)", SIZE_MAX);
	expect_part_fail(im, lb, SIZE_MAX, 2, NULL, NB_EINVAL, text);
}
END_TEST

static void expect_dir_part_fail(const char *dir, const char *split, size_t p, size_t parts,
                                 int status, const char *text)
{
	nb_dataset ds;
	char msg[NB_MSG_MAX] = "";

	scribble(&ds);
	ck_assert_str_eq(nb_status_name(nb_dataset_load_dir_part(dir, split, p, parts, NULL, &ds,
	                                                         msg)),
	                 nb_status_name(status));
	ck_assert_str_eq(msg, text);
	expect_zeroed(&ds);
	scribble(&ds);
	ck_assert_int_eq(nb_dataset_load_dir_part(dir, split, p, parts, NULL, &ds, NULL), status);
	expect_zeroed(&ds);
}

START_TEST(test_dir_bad_part_is_refused)
{
	expect_dir_part_fail(".", "train", 0, 0, NB_EINVAL,
	                     "load_dir_part: parts is 0 (1 or more expected)");
	expect_dir_part_fail(".", "t10k", 3, 3, NB_EINVAL,
	                     "load_dir_part: part 3 of 3 (0 to 2 expected)");
	expect_dir_part_fail(".", "xyz", 0, 1, NB_EINVAL,
	                     "load_dir_part: split must be \"train\" or \"t10k\", not \"xyz\"");
}
END_TEST

START_TEST(test_part_null_arguments)
{
	char msg[NB_MSG_MAX] = "";

	expect_part_fail(NULL, "l", 0, 1, NULL, NB_ENULL, "load_idx_part: images is NULL");
	expect_part_fail("i", NULL, 0, 1, NULL, NB_ENULL, "load_idx_part: labels is NULL");
	/* NULL pointers are reported before a bad part. */
	expect_part_fail(NULL, NULL, 0, 0, NULL, NB_ENULL, "load_idx_part: images is NULL");
	ck_assert_int_eq(nb_dataset_load_idx_part("i", "l", 0, 1, NULL, NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "load_idx_part: ds is NULL");
	ck_assert_int_eq(nb_dataset_load_idx_part("i", "l", 0, 1, NULL, NULL, NULL), NB_ENULL);
	expect_dir_part_fail(NULL, "train", 0, 1, NB_ENULL, "load_dir_part: dir is NULL");
	expect_dir_part_fail(".", NULL, 0, 1, NB_ENULL, "load_dir_part: split is NULL");
	ck_assert_int_eq(nb_dataset_load_dir_part(".", "train", 0, 1, NULL, NULL, msg), NB_ENULL);
	ck_assert_str_eq(msg, "load_dir_part: ds is NULL");
}
END_TEST

/* A file too short for the part is truncated, at the byte where it ends; a part it holds
 * whole loads, as nothing after the part is read. _i: 0 plain, 1 gzip. */
START_TEST(test_part_past_the_end_is_truncated)
{
	const char *im = TMP("shortpart_images"), *lb = TMP("shortpart_labels");
	unsigned char b[BLOB_MAX];

	write_good(im, _i, lb, _i);
	/* the header claims 3 images, 22 bytes hold the first */
	write_file(im, b, image_bytes(b, 0x803, N, ROWS, COLS, pixels) - 12, _i);
	expect_part_fail(im, lb, 2, 3, NULL, NB_EFORMAT, "truncated at byte 22 (image data of "
	                 "part 2 of 3 needs 34 bytes): " TMP("shortpart_images"));
	expect_part_fail(im, lb, 1, 3, NULL, NB_EFORMAT, "truncated at byte 22 (image data of "
	                 "part 1 of 3 needs 28 bytes): " TMP("shortpart_images"));
	expect_part_loads(im, lb, 0, 3);
	/* the whole file: the message of nb_dataset_load_idx() */
	expect_part_fail(im, lb, 0, 1, NULL, NB_EFORMAT, "truncated at byte 22 (image data "
	                 "needs 34 bytes): " TMP("shortpart_images"));
	/* 25 bytes: part 1 is cut inside its own pixels */
	write_file(im, b, image_bytes(b, 0x803, N, ROWS, COLS, pixels) - 9, _i);
	expect_part_fail(im, lb, 1, 3, NULL, NB_EFORMAT, "truncated at byte 25 (image data of "
	                 "part 1 of 3 needs 28 bytes): " TMP("shortpart_images"));
	/* an empty part reads to the end of the file, so it is truncated too */
	expect_part_fail(im, lb, 4, 5, NULL, NB_EFORMAT, "truncated at byte 25 (image data of "
	                 "part 4 of 5 needs 34 bytes): " TMP("shortpart_images"));
	write_good(im, _i, lb, _i);
	write_file(lb, b, label_bytes(b, 0x801, N, labels) - 2, _i);
	expect_part_fail(im, lb, 1, 3, NULL, NB_EFORMAT, "truncated at byte 9 (label data of "
	                 "part 1 of 3 needs 10 bytes): " TMP("shortpart_labels"));
	expect_part_loads(im, lb, 0, 3);
	remove2(im, lb);
}
END_TEST

/* A label >= 10 in the part is reported at its byte in the file; skipped labels are not
 * read, so not checked. _i: 0 plain, 1 gzip. */
START_TEST(test_part_bad_label)
{
	const char *im = TMP("labelpart_images"), *lb = TMP("labelpart_labels");
	unsigned char b[BLOB_MAX];

	write_good(im, _i, lb, _i);
	write_file(lb, b, label_bytes(b, 0x801, N, (const unsigned char[]){ 3, 10, 9 }), _i);
	expect_part_fail(im, lb, 1, 3, NULL, NB_EFORMAT,
	                 "label 10 at byte 9 is not a digit (0..9): " TMP("labelpart_labels"));
	expect_part_fail(im, lb, 0, 2, NULL, NB_EFORMAT,
	                 "label 10 at byte 9 is not a digit (0..9): " TMP("labelpart_labels"));
	expect_part_loads(im, lb, 0, 3);
	expect_part_loads(im, lb, 2, 3);
	expect_part_loads(im, lb, 1, 2);
	expect_part_loads(im, lb, 3, 4);
	remove2(im, lb);
}
END_TEST

/* Only the part that ends the file (the last, or an empty one) reads on to check that
 * nothing follows the data; the others stop after their last example. */
START_TEST(test_part_trailing_bytes)
{
	const char *im = TMP("trailpart_images"), *lb = TMP("trailpart_labels");
	unsigned char b[BLOB_MAX];
	size_t len;

	write_good(im, _i, lb, _i);
	len = image_bytes(b, 0x803, N, ROWS, COLS, pixels);
	memcpy(b + len, "abc", 3);
	write_file(im, b, len + 3, _i);
	expect_part_fail(im, lb, 2, 3, NULL, NB_EFORMAT,
	                 "3 unexpected bytes after the data at byte 34: " TMP("trailpart_images"));
	expect_part_fail(im, lb, 4, 5, NULL, NB_EFORMAT,
	                 "3 unexpected bytes after the data at byte 34: " TMP("trailpart_images"));
	expect_part_loads(im, lb, 0, 3);
	expect_part_loads(im, lb, 1, 3);
	remove2(im, lb);
}
END_TEST

/* The limit counts the part: each example takes 8 (6 + 10) + 1 = 129 bytes, so with a
 * limit of 129 every part of 3 loads and the whole file does not; part 0 of 2 holds 2. */
START_TEST(test_limit_is_the_part_size)
{
	const char *im = TMP("limitpart_images"), *lb = TMP("limitpart_labels");
	nb_load_opts opts = { .max_bytes = 129 };
	nb_dataset ds;

	write_good(im, 0, lb, 1);
	for (size_t p = 0; p < 3; p++) {
		ck_assert_int_eq(nb_dataset_load_idx_part(im, lb, p, 3, &opts, &ds, NULL), NB_OK);
		expect_part(&ds, p, 3);
		nb_dataset_free(&ds);
	}
	ck_assert_int_eq(nb_dataset_load_idx_part(im, lb, 1, 2, &opts, &ds, NULL), NB_OK);
	expect_part(&ds, 1, 2);
	nb_dataset_free(&ds);
	expect_part_fail(im, lb, 0, 2, &opts, NB_EFORMAT, "part 0 of 2 (2 of the 3 images of "
	                 "2 x 3 at byte 4) would take 258 bytes, over the limit of 129 "
	                 "(nb_load_opts.max_bytes): " TMP("limitpart_images"));
	expect_part_fail(im, lb, 0, 1, &opts, NB_EFORMAT, "3 images of 2 x 3 (byte 4) would "
	                 "take 387 bytes, over the limit of 129 (nb_load_opts.max_bytes): "
	                 TMP("limitpart_images"));
	opts.max_bytes = 1;
	ck_assert_int_eq(nb_dataset_load_idx_part(im, lb, 3, 4, &opts, &ds, NULL), NB_OK);
	expect_part(&ds, 3, 4);
	nb_dataset_free(&ds);
	remove2(im, lb);
}
END_TEST

/* A file of no images is refused whatever the part, as by the whole-file loaders. */
START_TEST(test_part_of_an_empty_file_is_refused)
{
	const char *im = TMP("emptypart_images"), *lb = TMP("emptypart_labels");
	unsigned char b[BLOB_MAX];

	write_plain(im, b, image_bytes(b, 0x803, 0, ROWS, COLS, NULL));
	write_plain(lb, b, label_bytes(b, 0x801, 0, labels));
	expect_part_fail(im, lb, 0, 2, NULL, NB_EFORMAT,
	                 "absurd dimensions 0 x 2 x 3 at byte 4: " TMP("emptypart_images"));
	remove2(im, lb);
}
END_TEST

/* Through a directory, each part of 2 (the images compressed, the labels plain). */
START_TEST(test_dir_parts)
{
	nb_dataset ds;

	remove_dir();
	ck_assert_int_eq(mkdir(DIR, 0755), 0);
	write_good(DIR_IM("train", ".gz"), 1, DIR_LB("train", ""), 0);
	for (size_t p = 0; p < 2; p++) {
		ck_assert_int_eq(nb_dataset_load_dir_part(DIR, "train", p, 2, NULL, &ds, NULL),
		                 NB_OK);
		expect_part(&ds, p, 2);
		nb_dataset_free(&ds);
	}
	remove_dir();
}
END_TEST

/* ---- Running out of memory ------------------------------------------------------- */

/* Load with allocation number k + 1 failing (k = 0, 1, ...), through load_idx or, when
 * dir is set, load_dir. */
static int load_failing_at(size_t k, const char *im, const char *lb, const char *dir,
                           count_alloc *c, nb_dataset *ds, char *msg)
{
	nb_load_opts opts = { .alloc = count_alloc_fn, .alloc_ud = c };

	*c = (count_alloc){ .fail_at = k + 1 };
	scribble(ds);
	if (dir)
		return nb_dataset_load_dir_opts(dir, "train", &opts, ds, msg);
	return nb_dataset_load_idx_opts(im, lb, &opts, ds, msg);
}

/* Every allocation of a load, zlib's included, goes through the caller's allocator:
 * making each fail in turn gives NB_ENOMEM with "out of memory" and leaks nothing, until
 * the load succeeds and its data set gives everything back to that allocator. _i: bit 0
 * compresses the images, bit 1 the labels; _i == 4 loads through a directory. */
START_TEST(test_every_allocation_failure_is_reported)
{
	const char *im = _i < 4 ? TMP("oom_images") : DIR_IM("train", ".gz");
	const char *lb = _i < 4 ? TMP("oom_labels") : DIR_LB("train", "");
	const char *dir = _i < 4 ? NULL : DIR;
	char msg[NB_MSG_MAX];
	count_alloc c;
	nb_dataset ds;
	size_t k, gzip_files;
	int s;

	remove_dir();
	if (dir)
		ck_assert_int_eq(mkdir(DIR, 0755), 0);
	write_good(im, _i & 1 || dir, lb, _i & 2);
	for (k = 0; (s = load_failing_at(k, im, lb, dir, &c, &ds, msg)) != NB_OK; k++) {
		ck_assert_msg(s == NB_ENOMEM, "allocation %zu: %s: %s", k, nb_status_name(s), msg);
		ck_assert_msg(strstr(msg, "out of memory") != NULL, "allocation %zu: %s", k, msg);
		expect_zeroed(&ds);
		ck_assert_uint_eq(c.bytes_in_use, 0);
		ck_assert_uint_eq(c.allocs, c.frees);
	}
	/* pixels, x, labels, y; zlib's state and window for each gzip file; two paths */
	gzip_files = (size_t)((_i & 1) || dir) + ((_i & 2) != 0);
	ck_assert_uint_eq(k, 4 + 2 * gzip_files + (dir ? 2 : 0));
	expect_good(&ds);
	ck_assert(ds.alloc == count_alloc_fn);
	ck_assert_ptr_eq(ds.alloc_ud, &c);
	nb_dataset_free(&ds);
	ck_assert_uint_eq(c.bytes_in_use, 0);
	ck_assert_uint_eq(c.allocs, c.frees);
	remove2(im, lb);
	remove_dir();
}
END_TEST

/* A part's load takes the allocations of a whole file's, and an empty part only zlib's;
 * each fails in turn as there. _i: bit 0 compresses both files, bit 1 loads the empty
 * part 3 of 4 rather than part 1 of 2. */
START_TEST(test_part_allocation_failures)
{
	const char *im = TMP("oompart_images"), *lb = TMP("oompart_labels");
	size_t p = _i & 2 ? 3 : 1, parts = _i & 2 ? 4 : 2, k;
	count_alloc c;
	nb_load_opts opts = { .alloc = count_alloc_fn, .alloc_ud = &c };
	char msg[NB_MSG_MAX];
	nb_dataset ds;
	int s;

	write_good(im, _i & 1, lb, _i & 1);
	for (k = 0;; k++) {
		c = (count_alloc){ .fail_at = k + 1 };
		scribble(&ds);
		if ((s = nb_dataset_load_idx_part(im, lb, p, parts, &opts, &ds, msg)) == NB_OK)
			break;
		ck_assert_msg(s == NB_ENOMEM, "allocation %zu: %s: %s", k, nb_status_name(s), msg);
		ck_assert_msg(strstr(msg, "out of memory") != NULL, "allocation %zu: %s", k, msg);
		expect_zeroed(&ds);
		ck_assert_uint_eq(c.bytes_in_use, 0);
		ck_assert_uint_eq(c.allocs, c.frees);
	}
	/* pixels, x, labels, y; zlib's state and window for each gzip file */
	ck_assert_uint_eq(k, (_i & 2 ? 0 : 4) + (_i & 1 ? 4 : 0));
	expect_part(&ds, p, parts);
	nb_dataset_free(&ds);
	ck_assert_uint_eq(c.bytes_in_use, 0);
	ck_assert_uint_eq(c.allocs, c.frees);
	remove2(im, lb);
}
END_TEST

/* ---- The bundled digits -------------------------------------------------------------- */

static const size_t train_counts[10] = { 799, 913, 801, 813, 781, 689, 809, 865, 747, 783 };
static const size_t t10k_counts[10] = { 202, 214, 190, 219, 199, 174, 205, 205, 197, 195 };

static const struct {
	const char *split;
	size_t n;
	const size_t *counts;
	unsigned char first[4];   /* the first labels, as in the files */
} bundled[] = {
	{ "train", 8000, train_counts, { 6, 6, 8, 1 } },
	{ "t10k", 2000, t10k_counts, { 3, 4, 9, 7 } },
};

/* Labels are digits, each row of y is one-hot at its label, the label counts are the
 * known ones and pixels lie in [0, 1]. Each Check assertion reports to the parent process,
 * too slow for millions of values, so the loops count what is wrong and assert once. */
static void expect_digits(const nb_dataset *ds, const size_t *counts)
{
	size_t seen[10] = { 0 }, bad_label = 0, bad_y = 0, bad_x = 0;

	for (size_t i = 0; i < ds->n; i++) {
		if (ds->label[i] >= 10) {
			bad_label++;
			continue;
		}
		seen[ds->label[i]]++;
		for (size_t c = 0; c < 10; c++)
			bad_y += ds->y[i * 10 + c] != (c == ds->label[i]);
	}
	for (size_t i = 0; i < ds->n * ds->features; i++)
		bad_x += !(ds->x[i] >= 0.0 && ds->x[i] <= 1.0);
	ck_assert_uint_eq(bad_label, 0);
	ck_assert_uint_eq(bad_y, 0);
	ck_assert_uint_eq(bad_x, 0);
	for (size_t c = 0; c < 10; c++)
		ck_assert_uint_eq(seen[c], counts[c]);
}

START_TEST(test_bundled_data_loads)
{
	const char *dir = getenv("NABLA_DATA_DIR");
	char msg[NB_MSG_MAX] = "";
	nb_dataset ds;

	ck_assert_msg(dir != NULL, "NABLA_DATA_DIR is unset: run through make check, or set it "
	              "to the data/mnist-10k directory of the source tree");
	ck_assert_msg(nb_dataset_load_dir(dir, bundled[_i].split, &ds, msg) == NB_OK, "%s", msg);
	ck_assert_uint_eq(ds.n, bundled[_i].n);
	ck_assert_uint_eq(ds.rows, 28);
	ck_assert_uint_eq(ds.cols, 28);
	ck_assert_uint_eq(ds.features, 784);
	ck_assert_uint_eq(ds.classes, 10);
	ck_assert_mem_eq(ds.label, bundled[_i].first, 4);
	expect_digits(&ds, bundled[_i].counts);
	nb_dataset_free(&ds);
	expect_zeroed(&ds);
}
END_TEST

/* The training digits in 3 parts: 2667, 2667 and 2666 of the 8000, each the whole load's
 * examples from where the part before it ended (part 1 starts at example 2667). */
START_TEST(test_bundled_data_in_parts)
{
	const char *dir = getenv("NABLA_DATA_DIR");
	const size_t counts[3] = { 2667, 2667, 2666 }, f = 784;
	char msg[NB_MSG_MAX] = "";
	nb_dataset whole, ds;
	size_t next = 0;

	ck_assert_msg(dir != NULL, "NABLA_DATA_DIR is unset: run through make check, or set it "
	              "to the data/mnist-10k directory of the source tree");
	ck_assert_msg(nb_dataset_load_dir(dir, "train", &whole, msg) == NB_OK, "%s", msg);
	for (size_t p = 0; p < 3; p++) {
		ck_assert_msg(nb_dataset_load_dir_part(dir, "train", p, 3, NULL, &ds, msg) == NB_OK,
		              "part %zu: %s", p, msg);
		ck_assert_uint_eq(ds.n, counts[p]);
		ck_assert_uint_eq(ds.features, f);
		if (p == 1)
			ck_assert_mem_eq(ds.x, whole.x + 2667 * f, f * sizeof *ds.x);
		ck_assert_mem_eq(ds.x, whole.x + next * f, ds.n * f * sizeof *ds.x);
		ck_assert_mem_eq(ds.y, whole.y + next * 10, ds.n * 10 * sizeof *ds.y);
		ck_assert_mem_eq(ds.label, whole.label + next, ds.n);
		next += ds.n;
		nb_dataset_free(&ds);
	}
	ck_assert_uint_eq(next, whole.n);
	nb_dataset_free(&whole);
}
END_TEST

static Suite *idx_suite(void)
{
	Suite *s = suite_create("idx");
	TCase *good = tcase_create("good files");
	TCase *bad = tcase_create("bad files");
	TCase *args = tcase_create("arguments and directories");
	TCase *parts = tcase_create("parts");
	TCase *data = tcase_create("bundled data");

	tcase_add_loop_test(good, test_good_pair_loads, 0, 4);
	tcase_add_loop_test(good, test_large_image_crosses_chunks, 0, 2);
	tcase_add_loop_test(good, test_largest_side_loads, 0, 2);
	tcase_add_test(good, test_free_null_and_zeroed_is_safe);
	tcase_add_test(bad, test_images_bad_magic);
	tcase_add_test(bad, test_labels_bad_magic);
	tcase_add_test(bad, test_swapped_files);
	tcase_add_loop_test(bad, test_images_truncated_at_every_length, 0, IMAGES_LEN);
	tcase_add_loop_test(bad, test_labels_truncated_at_every_length, 0, LABELS_LEN);
	tcase_add_test(bad, test_gzip_data_truncated);
	tcase_add_test(bad, test_gzip_file_cut_anywhere);
	tcase_add_test(bad, test_counts_disagree);
	tcase_add_test(bad, test_huge_claim_is_truncated_not_allocated);
	tcase_add_test(bad, test_gzip_huge_claim_is_bounded);
	tcase_add_test(bad, test_limit_is_the_data_set_size);
	tcase_add_loop_test(bad, test_absurd_dimensions, 0, (int)(sizeof absurd / sizeof *absurd));
	tcase_add_test(bad, test_label_not_a_digit);
	tcase_add_loop_test(bad, test_trailing_bytes, 0, 2);
	tcase_add_test(bad, test_corrupt_gzip_stream);
	tcase_add_test(args, test_missing_file);
	tcase_add_test(args, test_directory_is_not_a_file);
	tcase_add_test(args, test_fifo_is_refused_at_once);
	tcase_add_test(args, test_device_is_refused);
	tcase_add_test(args, test_long_path_message_is_cut);
	tcase_add_test(args, test_long_path_keeps_the_reason);
	tcase_add_test(args, test_null_arguments);
	tcase_add_test(args, test_bad_split);
	tcase_add_test(args, test_dir_missing_files);
	tcase_add_test(args, test_dir_finds_plain_then_gzip);
	tcase_add_loop_test(args, test_every_allocation_failure_is_reported, 0, 5);
	tcase_add_loop_test(parts, test_parts_are_the_whole_file, 0, 4);
	tcase_add_test(parts, test_part_0_of_1_is_the_whole_load);
	tcase_add_loop_test(parts, test_part_past_the_first_chunk, 0, 2);
	tcase_add_test(parts, test_bad_part_is_refused);
	tcase_add_test(parts, test_dir_bad_part_is_refused);
	tcase_add_test(parts, test_part_null_arguments);
	tcase_add_loop_test(parts, test_part_past_the_end_is_truncated, 0, 2);
	tcase_add_loop_test(parts, test_part_bad_label, 0, 2);
	tcase_add_loop_test(parts, test_part_trailing_bytes, 0, 2);
	tcase_add_test(parts, test_limit_is_the_part_size);
	tcase_add_test(parts, test_part_of_an_empty_file_is_refused);
	tcase_add_test(parts, test_dir_parts);
	tcase_add_loop_test(parts, test_part_allocation_failures, 0, 4);
	/* 10,000 digits through zlib are slow under valgrind only. */
	tcase_set_timeout(data, 120);
	tcase_add_loop_test(data, test_bundled_data_loads, 0, 2);
	tcase_add_test(data, test_bundled_data_in_parts);
	suite_add_tcase(s, good);
	suite_add_tcase(s, bad);
	suite_add_tcase(s, args);
	suite_add_tcase(s, parts);
	suite_add_tcase(s, data);
	return s;
}

int main(void)
{
	return run_suite(idx_suite());
}
