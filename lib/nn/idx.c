/* idx.c -- load MNIST's IDX files into an nb_dataset.
 *
 * An IDX file is a big-endian header followed by unsigned bytes. Images: u32 magic
 * 0x00000803, u32 count, u32 rows, u32 cols, then count * rows * cols pixels, row by row.
 * Labels: u32 magic 0x00000801, u32 count, then count labels 0..9. Files may be gzip
 * compressed (zfile.c reads both kinds), so offsets in messages are those of the
 * uncompressed bytes.
 *
 * What a load allocates is bounded twice: by the caller's limit (nb_load_opts.max_bytes),
 * checked against the image header before any data is read, and by the data a file
 * really holds, since arrays grow as bytes arrive rather than to what a header claims.
 * Every allocation, zlib's included, goes through the caller's allocator. */
#define _POSIX_C_SOURCE 200809L

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "file.h"
#include "nn_int.h"
#include "zfile.h"

#define IDX_IMAGES 0x00000803u
#define IDX_LABELS 0x00000801u
#define IDX_IMAGE_HEADER 16     /* magic, count, rows, cols */
#define IDX_LABEL_HEADER 8      /* magic, count */
#define IDX_MAX_SIDE 4096u
#define IDX_MAX_COUNT 100000000u
#define IDX_CLASSES 10
/* Bytes read at a time, and the first size of a growing array. */
#define IDX_CHUNK NB_ZFILE_CHUNK

/* The caller's choices for one load (nb_load_opts with the defaults filled in). */
struct idx_load {
	nb_alloc_fn alloc;
	void *ud;
	size_t max_bytes;
	char *msg;
};

/* What a load builds: the shape from the image header, the pixels as bytes while they
 * arrive (bytes_cap of them allocated), then x; the labels (label_cap allocated), then y.
 * It becomes the caller's nb_dataset only when everything is read and checked. */
struct idx_data {
	size_t n, rows, cols, features;
	unsigned char *bytes;
	size_t bytes_cap;
	double *x;
	unsigned char *label;
	size_t label_cap;
	double *y;
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int file_fail(struct nb_zfile *f, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	status = nn__file_vfail(f->msg, status, f->path, fmt, ap);
	va_end(ap);
	return status;
}

static void release(const struct idx_load *ld, void *p, size_t size)
{
	if (p)
		ld->alloc(ld->ud, p, size, 0);
}

/* ---- Reading bytes ----------------------------------------------------------------- */

/* Read exactly n bytes into buf. A file that ends first is truncated: the message says
 * where, and that what (a header, the data) needs need bytes in all. */
static int idx_read(struct nb_zfile *f, unsigned char *buf, size_t n, const char *what,
                    size_t need)
{
	while (n > 0) {
		size_t got;
		int s = nn__zfile_read(f, buf, n, &got);

		if (s != NB_OK)
			return s;
		if (got == 0)
			return file_fail(f, NB_EFORMAT,
			                 "truncated at byte %zu (%s needs %zu bytes)", f->off,
			                 what, need);
		buf += got;
		n -= got;
	}
	return NB_OK;
}

/* The file must end where the data does. Reading to the end also checks a gzip stream's
 * CRC and length, which come after the data. */
static int idx_expect_end(struct nb_zfile *f)
{
	unsigned char buf[IDX_CHUNK];
	size_t extra = 0, at = f->off, got;
	int s;

	do {
		s = nn__zfile_read(f, buf, sizeof buf, &got);
		extra += got;
	} while (s == NB_OK && got > 0);
	if (s != NB_OK)
		return s;
	if (extra > 0)
		return file_fail(f, NB_EFORMAT, "%zu unexpected byte%s after the data at byte %zu",
		                 extra, extra == 1 ? "" : "s", at);
	return NB_OK;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- Headers ----------------------------------------------------------------------- */

/* Read the magic number at byte 0 and check it, before the rest of the header, so that a
 * short file of the other kind is reported as such rather than as truncated. */
static int read_magic(struct nb_zfile *f, uint32_t magic, size_t header, const char *kind)
{
	unsigned char b[4];
	int s = idx_read(f, b, 4, "header", header);

	if (s != NB_OK)
		return s;
	if (be32(b) != magic)
		return file_fail(f, NB_EFORMAT,
		                 "bad magic 0x%08lx at byte 0 (expected 0x%08lx, an IDX %s file)",
		                 (unsigned long)be32(b), (unsigned long)magic, kind);
	return NB_OK;
}

/* Whether n x rows x cols is a plausible image set whose doubles can be counted in a
 * size_t. */
static int dims_ok(uint32_t n, uint32_t rows, uint32_t cols)
{
	if (n < 1 || n > IDX_MAX_COUNT || rows < 1 || rows > IDX_MAX_SIDE || cols < 1 ||
	    cols > IDX_MAX_SIDE)
		return 0;
	return (size_t)rows * cols <= SIZE_MAX / sizeof(double) / n;
}

/* The bytes of the data set the header describes: x, y and label. dims_ok() bounds n to
 * 10^8 and a side to 4096, so this fits in 64 bits. */
static uint64_t dataset_bytes(const struct idx_data *d)
{
	uint64_t per_image = sizeof(double) * ((uint64_t)d->features + IDX_CLASSES) + 1;

	return (uint64_t)d->n * per_image;
}

/* Read and check an image header, including against the caller's limit. */
static int read_image_header(struct nb_zfile *f, const struct idx_load *ld, struct idx_data *d)
{
	unsigned char b[12];
	uint32_t n, rows, cols;
	int s = read_magic(f, IDX_IMAGES, IDX_IMAGE_HEADER, "image");

	if (s == NB_OK)
		s = idx_read(f, b, sizeof b, "header", IDX_IMAGE_HEADER);
	if (s != NB_OK)
		return s;
	n = be32(b);
	rows = be32(b + 4);
	cols = be32(b + 8);
	if (!dims_ok(n, rows, cols))
		return file_fail(f, NB_EFORMAT, "absurd dimensions %lu x %lu x %lu at byte 4",
		                 (unsigned long)n, (unsigned long)rows, (unsigned long)cols);
	d->n = n;
	d->rows = rows;
	d->cols = cols;
	d->features = (size_t)rows * cols;
	if (dataset_bytes(d) > ld->max_bytes)
		return file_fail(f, NB_EFORMAT, "%zu images of %zu x %zu (byte 4) would take %"
		                 PRIu64 " bytes, over the limit of %zu (nb_load_opts.max_bytes)",
		                 d->n, d->rows, d->cols, dataset_bytes(d), ld->max_bytes);
	return NB_OK;
}

/* Read and check a label header: its count must be the images' n. */
static int read_label_header(struct nb_zfile *f, size_t n)
{
	unsigned char b[4];
	int s = read_magic(f, IDX_LABELS, IDX_LABEL_HEADER, "label");

	if (s == NB_OK)
		s = idx_read(f, b, sizeof b, "header", IDX_LABEL_HEADER);
	if (s != NB_OK)
		return s;
	if (be32(b) != n)
		return file_fail(f, NB_EFORMAT, "%zu images but %lu labels", n,
		                 (unsigned long)be32(b));
	return NB_OK;
}

/* ---- Data -------------------------------------------------------------------------- */

/* Make room in *p (*cap bytes, used of them in use) for want <= max bytes: double the
 * capacity, up to max, and copy (the hook does not reallocate). Growing as bytes arrive,
 * never to what a header claims, keeps memory within a constant factor of the data a
 * file really holds: a 16-byte header claiming 10^8 images is a truncated file, not a
 * request for gigabytes. */
static int grow(struct nb_zfile *f, const struct idx_load *ld, unsigned char **p,
                size_t *cap, size_t used, size_t want, size_t max, const char *what)
{
	size_t c = *cap ? *cap : IDX_CHUNK;
	unsigned char *q;

	if (want <= *cap)
		return NB_OK;
	while (c < want)
		c *= 2;
	if (c > max)
		c = max;
	q = ld->alloc(ld->ud, NULL, 0, c);
	if (!q)
		return file_fail(f, NB_ENOMEM, "out of memory (%zu bytes for the %s)", c, what);
	if (used)
		memcpy(q, *p, used);
	release(ld, *p, *cap);
	*p = q;
	*cap = c;
	return NB_OK;
}

/* Read the n * features pixel bytes, growing d->bytes as they arrive. */
static int read_pixels(struct nb_zfile *f, const struct idx_load *ld, struct idx_data *d)
{
	size_t total = d->n * d->features, need = IDX_IMAGE_HEADER + total;

	for (size_t done = 0; done < total;) {
		size_t k = total - done < IDX_CHUNK ? total - done : IDX_CHUNK;
		int s = grow(f, ld, &d->bytes, &d->bytes_cap, done, done + k, total, "pixels");

		if (s == NB_OK)
			s = idx_read(f, d->bytes + done, k, "image data", need);
		if (s != NB_OK)
			return s;
		done += k;
	}
	return idx_expect_end(f);
}

/* Once every pixel is there, x: each byte scaled to [0, 1]. The bytes are freed. */
static int scale_pixels(struct nb_zfile *f, const struct idx_load *ld, struct idx_data *d)
{
	size_t total = d->n * d->features;

	d->x = ld->alloc(ld->ud, NULL, 0, total * sizeof *d->x);
	if (!d->x)
		return file_fail(f, NB_ENOMEM, "out of memory (%zu bytes for the images)",
		                 total * sizeof *d->x);
	for (size_t i = 0; i < total; i++)
		d->x[i] = d->bytes[i] / 255.0;
	release(ld, d->bytes, d->bytes_cap);
	d->bytes = NULL;
	d->bytes_cap = 0;
	return NB_OK;
}

/* Read the n labels, growing d->label as they arrive, and check that each is a digit. */
static int read_labels(struct nb_zfile *f, const struct idx_load *ld, struct idx_data *d)
{
	size_t need = IDX_LABEL_HEADER + d->n;

	for (size_t done = 0; done < d->n;) {
		size_t k = d->n - done < IDX_CHUNK ? d->n - done : IDX_CHUNK;
		int s = grow(f, ld, &d->label, &d->label_cap, done, done + k, d->n, "labels");

		if (s == NB_OK)
			s = idx_read(f, d->label + done, k, "label data", need);
		if (s != NB_OK)
			return s;
		done += k;
	}
	for (size_t i = 0; i < d->n; i++) {
		if (d->label[i] >= IDX_CLASSES)
			return file_fail(f, NB_EFORMAT,
			                 "label %u at byte %zu is not a digit (0..9)", d->label[i],
			                 IDX_LABEL_HEADER + i);
	}
	return idx_expect_end(f);
}

/* Once every label is there, y: one one-hot row per label. */
static int one_hot(struct nb_zfile *f, const struct idx_load *ld, struct idx_data *d)
{
	size_t size = d->n * IDX_CLASSES * sizeof *d->y;

	d->y = ld->alloc(ld->ud, NULL, 0, size);
	if (!d->y)
		return file_fail(f, NB_ENOMEM, "out of memory (%zu bytes for the one-hot labels)",
		                 size);
	memset(d->y, 0, size);
	for (size_t i = 0; i < d->n; i++)
		d->y[i * IDX_CLASSES + d->label[i]] = 1.0;
	return NB_OK;
}

/* ---- Loading ----------------------------------------------------------------------- */

/* Both headers first, so that files that do not match fail before any data is read.
 * The caller closes both files and frees d, whichever step fails. */
static int load(struct nb_zfile *im, struct nb_zfile *lb, const char *labels,
                const struct idx_load *ld, struct idx_data *d)
{
	int s = read_image_header(im, ld, d);

	if (s == NB_OK)
		s = nn__zfile_open(lb, labels, ld->alloc, ld->ud, ld->msg);
	if (s == NB_OK)
		s = read_label_header(lb, d->n);
	if (s == NB_OK)
		s = read_pixels(im, ld, d);
	if (s == NB_OK)
		s = scale_pixels(im, ld, d);
	if (s == NB_OK)
		s = read_labels(lb, ld, d);
	if (s == NB_OK)
		s = one_hot(lb, ld, d);
	return s;
}

static void free_data(const struct idx_load *ld, struct idx_data *d)
{
	release(ld, d->bytes, d->bytes_cap);
	release(ld, d->x, d->n * d->features * sizeof *d->x);
	release(ld, d->label, d->label_cap);
	release(ld, d->y, d->n * IDX_CLASSES * sizeof *d->y);
}

/* The data set, every array full: grow() stopped each at exactly its size. */
static void commit(const struct idx_load *ld, const struct idx_data *d, nb_dataset *ds)
{
	assert(d->bytes == NULL && d->label_cap == d->n);
	*ds = (nb_dataset){
		.n = d->n, .rows = d->rows, .cols = d->cols, .features = d->features,
		.classes = IDX_CLASSES, .x = d->x, .y = d->y, .label = d->label,
		.alloc = ld->alloc, .alloc_ud = ld->ud,
	};
}

static struct idx_load load_options(const nb_load_opts *opts, char *msg)
{
	struct idx_load ld = { .msg = msg };

	nn__load_settings(opts, &ld.alloc, &ld.ud, &ld.max_bytes);
	return ld;
}

static int load_idx(const char *images, const char *labels, const struct idx_load *ld,
                    nb_dataset *ds)
{
	struct nb_zfile im, lb = { .fd = -1 };
	struct idx_data d = { 0 };
	int s = nn__zfile_open(&im, images, ld->alloc, ld->ud, ld->msg);

	if (s != NB_OK)
		return s;
	s = load(&im, &lb, labels, ld, &d);
	nn__zfile_close(&im);
	nn__zfile_close(&lb);
	if (s == NB_OK)
		commit(ld, &d, ds);
	else
		free_data(ld, &d);
	return s;
}

int nb_dataset_load_idx_opts(const char *images, const char *labels,
                             const nb_load_opts *opts, nb_dataset *ds, char msg[NB_MSG_MAX])
{
	struct idx_load ld = load_options(opts, msg);

	if (ds)
		memset(ds, 0, sizeof *ds);
	if (!images)
		return nn__msg_fail(msg, NB_ENULL, "load_idx: images is NULL");
	if (!labels)
		return nn__msg_fail(msg, NB_ENULL, "load_idx: labels is NULL");
	if (!ds)
		return nn__msg_fail(msg, NB_ENULL, "load_idx: ds is NULL");
	return load_idx(images, labels, &ld, ds);
}

int nb_dataset_load_idx(const char *images, const char *labels, nb_dataset *ds, char msg[NB_MSG_MAX])
{
	return nb_dataset_load_idx_opts(images, labels, NULL, ds, msg);
}

/* ---- Directories ------------------------------------------------------------------- */

/* Whether path exists: 0, or the errno of stat() (never opening it: it may be a FIFO). */
static int probe(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? 0 : errno;
}

/* Write DIR/SPLIT-KIND into path (room for "[.gz]" included) and add ".gz" when only the
 * compressed file exists. A file that exists but cannot be opened is kept, so that the
 * loader reports why; when neither exists, the message names both as "PATH[.gz]". */
static int find_file(char *path, size_t size, const char *dir, const char *split,
                     const char *kind, char *msg)
{
	size_t len = (size_t)snprintf(path, size, "%s/%s-%s", dir, split, kind);

	if (probe(path) != ENOENT)
		return NB_OK;
	strcpy(path + len, ".gz");
	if (probe(path) != ENOENT)
		return NB_OK;
	strcpy(path + len, "[.gz]");
	return nn__file_fail(msg, NB_EIO, path, "cannot open: %s", strerror(ENOENT));
}

/* Find the two files of a split in dir and load them; the paths are allocated through
 * the caller's allocator too. */
static int load_split(const char *dir, const char *split, const struct idx_load *ld,
                      nb_dataset *ds)
{
	size_t size = strlen(dir) + sizeof "/train-images-idx3-ubyte[.gz]";
	char *im = ld->alloc(ld->ud, NULL, 0, size), *lb = NULL;
	int s = NB_OK;

	if (im)
		lb = ld->alloc(ld->ud, NULL, 0, size);
	if (!lb)
		s = nn__msg_fail(ld->msg, NB_ENOMEM, "load_dir: out of memory");
	if (s == NB_OK)
		s = find_file(im, size, dir, split, "images-idx3-ubyte", ld->msg);
	if (s == NB_OK)
		s = find_file(lb, size, dir, split, "labels-idx1-ubyte", ld->msg);
	if (s == NB_OK)
		s = load_idx(im, lb, ld, ds);
	release(ld, im, size);
	release(ld, lb, size);
	return s;
}

int nb_dataset_load_dir_opts(const char *dir, const char *split, const nb_load_opts *opts,
                             nb_dataset *ds, char msg[NB_MSG_MAX])
{
	struct idx_load ld = load_options(opts, msg);

	if (ds)
		memset(ds, 0, sizeof *ds);
	if (!dir)
		return nn__msg_fail(msg, NB_ENULL, "load_dir: dir is NULL");
	if (!split)
		return nn__msg_fail(msg, NB_ENULL, "load_dir: split is NULL");
	if (!ds)
		return nn__msg_fail(msg, NB_ENULL, "load_dir: ds is NULL");
	if (strcmp(split, "train") != 0 && strcmp(split, "t10k") != 0)
		return nn__msg_fail(msg, NB_EINVAL,
		            "load_dir: split must be \"train\" or \"t10k\", not \"%s\"", split);
	return load_split(dir, split, &ld, ds);
}

int nb_dataset_load_dir(const char *dir, const char *split, nb_dataset *ds, char msg[NB_MSG_MAX])
{
	return nb_dataset_load_dir_opts(dir, split, NULL, ds, msg);
}

/* A data set a load filled gives its arrays back to the allocator that made them. */
void nb_dataset_free(nb_dataset *ds)
{
	nb_alloc_fn alloc;

	if (!ds)
		return;
	alloc = ds->alloc ? ds->alloc : nb_default_alloc;
	if (ds->x)
		alloc(ds->alloc_ud, ds->x, ds->n * ds->features * sizeof *ds->x, 0);
	if (ds->y)
		alloc(ds->alloc_ud, ds->y, ds->n * ds->classes * sizeof *ds->y, 0);
	if (ds->label)
		alloc(ds->alloc_ud, ds->label, ds->n, 0);
	memset(ds, 0, sizeof *ds);
}
