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
 * Every allocation, zlib's included, goes through the caller's allocator.
 *
 * A load may take one part of a file's examples (each process of a data-parallel run
 * its own), and a whole file is part 0 of 1, so every load takes the same path: skip
 * the examples before the part (zfile.c seeks over them in a plain file), read the
 * part's, and, only in the part that ends the file, read on to check that the file ends
 * there. Limits and arrays count the part's examples, messages give offsets in the file. */
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
/* Room for what a part's data is called: "label data of part P of PARTS". */
#define IDX_NAME_MAX 80
/* Bytes read at a time, and the first size of a growing array. */
#define IDX_CHUNK NB_ZFILE_CHUNK

/* The caller's choices for one load (nb_load_opts with the defaults filled in). */
struct idx_load {
	const char *fn;         /* the public function, for messages about arguments */
	size_t part, parts;     /* 0 and 1 for a whole file */
	nb_alloc_fn alloc;
	void *ud;
	size_t max_bytes;
	char *msg;
};

/* What a load builds: the shape from the image header, the part (count examples from
 * example first, of the file's n), the part's pixels as bytes while they arrive
 * (bytes_cap of them allocated), then x; its labels (label_cap allocated), then y. It
 * becomes the caller's nb_dataset only when everything is read and checked. */
struct idx_data {
	size_t n, rows, cols, features;
	size_t first, count;
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

/* A file that ends before need bytes: the message says where, and that what (a header,
 * the data) needs need bytes in all. */
static int truncated(struct nb_zfile *f, const char *what, size_t need)
{
	return file_fail(f, NB_EFORMAT, "truncated at byte %zu (%s needs %zu bytes)", f->off,
	                 what, need);
}

/* Read exactly n bytes into buf; a file that ends first is truncated. */
static int idx_read(struct nb_zfile *f, unsigned char *buf, size_t n, const char *what,
                    size_t need)
{
	while (n > 0) {
		size_t got;
		int s = nn__zfile_read(f, buf, n, &got);

		if (s != NB_OK)
			return s;
		if (got == 0)
			return truncated(f, what, need);
		buf += got;
		n -= got;
	}
	return NB_OK;
}

/* Pass over n bytes without keeping them; a file that ends first is truncated, at the
 * byte where it ends (nn__zfile_skip() never seeks past it). */
static int idx_skip(struct nb_zfile *f, size_t n, const char *what, size_t need)
{
	size_t skipped;
	int s = nn__zfile_skip(f, n, &skipped);

	if (s == NB_OK && skipped < n)
		return truncated(f, what, need);
	return s;
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

/* The bytes of the part's data set: x, y and label. dims_ok() bounds n to 10^8 and a
 * side to 4096, so this fits in 64 bits. */
static uint64_t dataset_bytes(const struct idx_data *d)
{
	uint64_t per_image = sizeof(double) * ((uint64_t)d->features + IDX_CLASSES) + 1;

	return (uint64_t)d->count * per_image;
}

/* Part p of P takes n / P examples, one more when p < n % P, after those of the parts
 * before it: sizes differ by at most one and the parts, in order, are the file. */
static void part_bounds(const struct idx_load *ld, struct idx_data *d)
{
	size_t q = d->n / ld->parts, r = d->n % ld->parts;

	d->first = ld->part * q + (ld->part < r ? ld->part : r);
	d->count = q + (ld->part < r);
}

/* Whether the part's data ends where the file's does. */
static int ends_file(const struct idx_data *d)
{
	return d->first + d->count == d->n;
}

/* The limit is the part's: a message about a part says which, and of how many images. */
static int over_limit(struct nb_zfile *f, const struct idx_load *ld, const struct idx_data *d)
{
	if (ld->parts == 1)
		return file_fail(f, NB_EFORMAT, "%zu images of %zu x %zu (byte 4) would take %"
		                 PRIu64 " bytes, over the limit of %zu (nb_load_opts.max_bytes)",
		                 d->n, d->rows, d->cols, dataset_bytes(d), ld->max_bytes);
	return file_fail(f, NB_EFORMAT, "part %zu of %zu (%zu of the %zu images of %zu x %zu "
	                 "at byte 4) would take %" PRIu64 " bytes, over the limit of %zu "
	                 "(nb_load_opts.max_bytes)", ld->part, ld->parts, d->count, d->n,
	                 d->rows, d->cols, dataset_bytes(d), ld->max_bytes);
}

/* What the data of a part is called in messages about truncation: kind ("image data")
 * for a whole file, "image data of part 1 of 3" for a part. */
static const char *data_name(const struct idx_load *ld, const char *kind,
                             char name[IDX_NAME_MAX])
{
	if (ld->parts == 1)
		return kind;
	snprintf(name, IDX_NAME_MAX, "%s of part %zu of %zu", kind, ld->part, ld->parts);
	return name;
}

/* Read and check an image header, including the part's size against the caller's
 * limit. */
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
	part_bounds(ld, d);
	if (dataset_bytes(d) > ld->max_bytes)
		return over_limit(f, ld, d);
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

/* Skip the pixels of the examples before the part, then read the part's count *
 * features bytes, growing d->bytes as they arrive. Only the part that ends the file
 * reads on to check its end: another stops where its data does, so that it reads no
 * more of the file than it needs. */
static int read_pixels(struct nb_zfile *f, const struct idx_load *ld, struct idx_data *d)
{
	size_t skip = d->first * d->features, total = d->count * d->features;
	size_t need = IDX_IMAGE_HEADER + skip + total;
	char name[IDX_NAME_MAX];
	const char *what = data_name(ld, "image data", name);
	int s = idx_skip(f, skip, what, need);

	for (size_t done = 0, k; s == NB_OK && done < total; done += k) {
		k = total - done < IDX_CHUNK ? total - done : IDX_CHUNK;
		s = grow(f, ld, &d->bytes, &d->bytes_cap, done, done + k, total, "pixels");
		if (s == NB_OK)
			s = idx_read(f, d->bytes + done, k, what, need);
	}
	if (s == NB_OK && ends_file(d))
		s = idx_expect_end(f);
	return s;
}

/* Once every pixel is there, x: each byte scaled to [0, 1]. The bytes are freed. An
 * empty part has neither (an allocation of 0 bytes might be NULL). */
static int scale_pixels(struct nb_zfile *f, const struct idx_load *ld, struct idx_data *d)
{
	size_t total = d->count * d->features;

	if (total == 0)
		return NB_OK;
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

/* Skip the labels before the part, read the part's count, growing d->label as they
 * arrive, and check that each is a digit; as for the pixels, only the part that ends the
 * file checks its end. Skipped labels are not checked: they are not read. */
static int read_labels(struct nb_zfile *f, const struct idx_load *ld, struct idx_data *d)
{
	size_t need = IDX_LABEL_HEADER + d->first + d->count;
	char name[IDX_NAME_MAX];
	const char *what = data_name(ld, "label data", name);
	int s = idx_skip(f, d->first, what, need);

	for (size_t done = 0, k; s == NB_OK && done < d->count; done += k) {
		k = d->count - done < IDX_CHUNK ? d->count - done : IDX_CHUNK;
		s = grow(f, ld, &d->label, &d->label_cap, done, done + k, d->count, "labels");
		if (s == NB_OK)
			s = idx_read(f, d->label + done, k, what, need);
	}
	for (size_t i = 0; s == NB_OK && i < d->count; i++) {
		if (d->label[i] >= IDX_CLASSES)
			return file_fail(f, NB_EFORMAT,
			                 "label %u at byte %zu is not a digit (0..9)", d->label[i],
			                 IDX_LABEL_HEADER + d->first + i);
	}
	if (s == NB_OK && ends_file(d))
		s = idx_expect_end(f);
	return s;
}

/* Once every label is there, y: one one-hot row per label. */
static int one_hot(struct nb_zfile *f, const struct idx_load *ld, struct idx_data *d)
{
	size_t size = d->count * IDX_CLASSES * sizeof *d->y;

	if (size == 0)
		return NB_OK;
	d->y = ld->alloc(ld->ud, NULL, 0, size);
	if (!d->y)
		return file_fail(f, NB_ENOMEM, "out of memory (%zu bytes for the one-hot labels)",
		                 size);
	memset(d->y, 0, size);
	for (size_t i = 0; i < d->count; i++)
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
	release(ld, d->x, d->count * d->features * sizeof *d->x);
	release(ld, d->label, d->label_cap);
	release(ld, d->y, d->count * IDX_CLASSES * sizeof *d->y);
}

/* The data set, every array full: grow() stopped each at exactly its size. An empty
 * part keeps the file's shape, with no arrays. */
static void commit(const struct idx_load *ld, const struct idx_data *d, nb_dataset *ds)
{
	assert(d->bytes == NULL && d->label_cap == d->count);
	*ds = (nb_dataset){
		.n = d->count, .rows = d->rows, .cols = d->cols, .features = d->features,
		.classes = IDX_CLASSES, .x = d->x, .y = d->y, .label = d->label,
		.alloc = ld->alloc, .alloc_ud = ld->ud,
	};
}

/* The choices of one load by public function fn, of part part of parts. */
static struct idx_load load_options(const char *fn, size_t part, size_t parts,
                                    const nb_load_opts *opts, char *msg)
{
	struct idx_load ld = { .fn = fn, .part = part, .parts = parts, .msg = msg };

	nn__load_settings(opts, &ld.alloc, &ld.ud, &ld.max_bytes);
	return ld;
}

static int check_part(const struct idx_load *ld)
{
	if (ld->parts == 0)
		return nn__msg_fail(ld->msg, NB_EINVAL, "%s: parts is 0 (1 or more expected)",
		                    ld->fn);
	if (ld->part >= ld->parts)
		return nn__msg_fail(ld->msg, NB_EINVAL, "%s: part %zu of %zu (0 to %zu expected)",
		                    ld->fn, ld->part, ld->parts, ld->parts - 1);
	return NB_OK;
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

/* Both loaders of a pair of files, the whole-file one as part 0 of 1. */
static int load_idx_checked(const char *images, const char *labels,
                            const struct idx_load *ld, nb_dataset *ds)
{
	int s;

	if (ds)
		memset(ds, 0, sizeof *ds);
	if (!images)
		return nn__msg_fail(ld->msg, NB_ENULL, "%s: images is NULL", ld->fn);
	if (!labels)
		return nn__msg_fail(ld->msg, NB_ENULL, "%s: labels is NULL", ld->fn);
	if (!ds)
		return nn__msg_fail(ld->msg, NB_ENULL, "%s: ds is NULL", ld->fn);
	if ((s = check_part(ld)) != NB_OK)
		return s;
	return load_idx(images, labels, ld, ds);
}

int nb_dataset_load_idx_part(const char *images, const char *labels, size_t part, size_t parts,
                             const nb_load_opts *opts, nb_dataset *ds, char msg[NB_MSG_MAX])
{
	struct idx_load ld = load_options("load_idx_part", part, parts, opts, msg);

	return load_idx_checked(images, labels, &ld, ds);
}

int nb_dataset_load_idx_opts(const char *images, const char *labels,
                             const nb_load_opts *opts, nb_dataset *ds, char msg[NB_MSG_MAX])
{
	struct idx_load ld = load_options("load_idx", 0, 1, opts, msg);

	return load_idx_checked(images, labels, &ld, ds);
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
		s = nn__msg_fail(ld->msg, NB_ENOMEM, "%s: out of memory", ld->fn);
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

/* Both loaders of a directory, the whole-split one as part 0 of 1. */
static int load_dir_checked(const char *dir, const char *split, const struct idx_load *ld,
                            nb_dataset *ds)
{
	int s;

	if (ds)
		memset(ds, 0, sizeof *ds);
	if (!dir)
		return nn__msg_fail(ld->msg, NB_ENULL, "%s: dir is NULL", ld->fn);
	if (!split)
		return nn__msg_fail(ld->msg, NB_ENULL, "%s: split is NULL", ld->fn);
	if (!ds)
		return nn__msg_fail(ld->msg, NB_ENULL, "%s: ds is NULL", ld->fn);
	if (strcmp(split, "train") != 0 && strcmp(split, "t10k") != 0)
		return nn__msg_fail(ld->msg, NB_EINVAL,
		                    "%s: split must be \"train\" or \"t10k\", not \"%s\"", ld->fn,
		                    split);
	if ((s = check_part(ld)) != NB_OK)
		return s;
	return load_split(dir, split, ld, ds);
}

int nb_dataset_load_dir_part(const char *dir, const char *split, size_t part, size_t parts,
                             const nb_load_opts *opts, nb_dataset *ds, char msg[NB_MSG_MAX])
{
	struct idx_load ld = load_options("load_dir_part", part, parts, opts, msg);

	return load_dir_checked(dir, split, &ld, ds);
}

int nb_dataset_load_dir_opts(const char *dir, const char *split, const nb_load_opts *opts,
                             nb_dataset *ds, char msg[NB_MSG_MAX])
{
	struct idx_load ld = load_options("load_dir", 0, 1, opts, msg);

	return load_dir_checked(dir, split, &ld, ds);
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
