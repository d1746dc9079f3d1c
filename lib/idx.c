/* idx.c -- load MNIST's IDX files into an nb_dataset.
 *
 * An IDX file is a big-endian header followed by unsigned bytes. Images: u32 magic
 * 0x00000803, u32 count, u32 rows, u32 cols, then count * rows * cols pixels, row by row.
 * Labels: u32 magic 0x00000801, u32 count, then count labels 0..9. Files may be gzip
 * compressed; zlib's gzread() reads plain and gzip files alike, so offsets in messages
 * are those of the uncompressed bytes. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "file.h"
#include "nabla_int.h"

#define IDX_IMAGES 0x00000803u
#define IDX_LABELS 0x00000801u
#define IDX_IMAGE_HEADER 16     /* magic, count, rows, cols */
#define IDX_LABEL_HEADER 8      /* magic, count */
#define IDX_MAX_SIDE 4096u
#define IDX_MAX_COUNT 100000000u
#define IDX_CLASSES 10
/* Bytes per gzread() call; on the stack, and zlib buffers its own reads besides. */
#define IDX_CHUNK 16384

/* An open IDX file: the path as given (for messages), the zlib handle, how many
 * uncompressed bytes have been read, and where messages go (may be NULL). */
struct idx_file {
	const char *path;
	gzFile gz;
	size_t off;
	char *msg;
};

/* As nb__msg_fail(), with ": PATH" after the reason: every message about a file names it. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int file_fail(struct idx_file *f, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	status = nb__file_vfail(f->msg, status, f->path, fmt, ap);
	va_end(ap);
	return status;
}

/* Report zlib's error on f. gzerror() puts the name gzdopen() gave the file, "<fd:N>",
 * in front: the path goes at the end instead. */
static int gz_fail(struct idx_file *f)
{
	int err;
	const char *s = gzerror(f->gz, &err), *colon = strstr(s, ": ");

	if (err == Z_MEM_ERROR)
		return file_fail(f, NB_ENOMEM, "out of memory in zlib");
	if (strncmp(s, "<fd:", 4) == 0 && colon)
		s = colon + 2;
	if (err == Z_ERRNO)
		return file_fail(f, NB_EIO, "cannot read: %s", s);
	return file_fail(f, NB_EIO, "gzip error: %s", s);
}

/* Open path, which must be a regular file (a FIFO would block the load forever). */
static int idx_open(struct idx_file *f, const char *path, char *msg)
{
	off_t size;
	int fd, s = nb__open_regular(path, &fd, &size, msg);

	f->path = path;
	f->off = 0;
	f->msg = msg;
	if (s != NB_OK)
		return s;
	f->gz = gzdopen(fd, "rb");
	if (f->gz)
		return NB_OK;
	close(fd);
	return file_fail(f, NB_ENOMEM, "cannot open: out of memory");
}

static void idx_close(struct idx_file *f)
{
	if (f->gz)
		gzclose(f->gz);
	f->gz = NULL;
}

/* Read exactly n bytes into buf. A file that ends first is truncated: the message says
 * where, and that what (a header, the data) needs need bytes in all. */
static int idx_read(struct idx_file *f, unsigned char *buf, size_t n, const char *what,
                    size_t need)
{
	while (n > 0) {
		unsigned ask = n < IDX_CHUNK ? (unsigned)n : IDX_CHUNK;
		int got = gzread(f->gz, buf, ask);

		if (got < 0)
			return gz_fail(f);
		if (got == 0)
			return file_fail(f, NB_EFORMAT,
			                 "truncated at byte %zu (%s needs %zu bytes)", f->off,
			                 what, need);
		buf += got;
		n -= (size_t)got;
		f->off += (size_t)got;
	}
	return NB_OK;
}

/* The file must end where the data does. zlib reports a gzip stream cut short (its
 * trailer missing, say) only as Z_BUF_ERROR once it runs out, so that is checked here. */
static int idx_expect_end(struct idx_file *f)
{
	unsigned char buf[IDX_CHUNK];
	size_t extra = 0;
	int got, err;

	while ((got = gzread(f->gz, buf, sizeof buf)) > 0)
		extra += (size_t)got;
	if (got < 0)
		return gz_fail(f);
	if (extra > 0)
		return file_fail(f, NB_EFORMAT, "%zu unexpected byte%s after the data at byte %zu",
		                 extra, extra == 1 ? "" : "s", f->off);
	gzerror(f->gz, &err);
	return err == Z_BUF_ERROR ? gz_fail(f) : NB_OK;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Read the magic number at byte 0 and check it, before the rest of the header, so that a
 * short file of the other kind is reported as such rather than as truncated. */
static int read_magic(struct idx_file *f, uint32_t magic, size_t header, const char *kind)
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

/* Read and check an image header; set ds's n, rows, cols, features and classes. */
static int read_image_header(struct idx_file *f, nb_dataset *ds)
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
	ds->n = n;
	ds->rows = rows;
	ds->cols = cols;
	ds->features = (size_t)rows * cols;
	ds->classes = IDX_CLASSES;
	return NB_OK;
}

/* Read and check a label header: its count must be the images' n. */
static int read_label_header(struct idx_file *f, size_t n)
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

static int out_of_memory(struct idx_file *f, const nb_dataset *ds)
{
	return file_fail(f, NB_ENOMEM, "out of memory for %zu images of %zu x %zu", ds->n,
	                 ds->rows, ds->cols);
}

/* Make room in ds->x for want pixels, want <= n * features (which dims_ok() has bounded):
 * double the capacity *cap, up to n * features. The pixels are stored as they arrive,
 * never all allocated up front, so that memory stays within a constant factor of the
 * data a file really holds: a 16-byte header claiming 10^8 images of 28 x 28 is a
 * truncated file, not a request for 627 GB that fails as out of memory. */
static int grow_pixels(struct idx_file *f, nb_dataset *ds, size_t *cap, size_t want)
{
	size_t total = ds->n * ds->features, c = *cap ? *cap : IDX_CHUNK;
	double *x;

	if (want <= *cap)
		return NB_OK;
	while (c < want)
		c *= 2;
	if (c > total)
		c = total;
	x = realloc(ds->x, c * sizeof *x);
	if (!x)
		return out_of_memory(f, ds);
	ds->x = x;
	*cap = c;
	return NB_OK;
}

/* Allocate the label arrays once the pixels have shown that the headers' n is real, so
 * that they too stay within a constant factor of the data. y starts all zero: the
 * one-hot rows are set as the labels are read. */
static int labels_alloc(struct idx_file *f, nb_dataset *ds)
{
	ds->y = calloc(ds->n * ds->classes, sizeof *ds->y);
	ds->label = malloc(ds->n);
	if (ds->y && ds->label)
		return NB_OK;
	return out_of_memory(f, ds);
}

/* Read the pixel bytes a chunk at a time and scale them to [0, 1] into ds->x. */
static int read_pixels(struct idx_file *f, nb_dataset *ds)
{
	unsigned char buf[IDX_CHUNK];
	size_t total = ds->n * ds->features, cap = 0;
	size_t need = IDX_IMAGE_HEADER + total;

	for (size_t done = 0; done < total;) {
		size_t k = total - done < sizeof buf ? total - done : sizeof buf;
		int s = idx_read(f, buf, k, "image data", need);

		if (s == NB_OK)
			s = grow_pixels(f, ds, &cap, done + k);
		if (s != NB_OK)
			return s;
		for (size_t i = 0; i < k; i++)
			ds->x[done + i] = buf[i] / 255.0;
		done += k;
	}
	return idx_expect_end(f);
}

/* Read the labels into ds->label, check each, and set the one-hot rows of ds->y. */
static int read_labels(struct idx_file *f, nb_dataset *ds)
{
	int s = idx_read(f, ds->label, ds->n, "label data", IDX_LABEL_HEADER + ds->n);

	if (s != NB_OK)
		return s;
	for (size_t i = 0; i < ds->n; i++) {
		unsigned c = ds->label[i];

		if (c >= IDX_CLASSES)
			return file_fail(f, NB_EFORMAT,
			                 "label %u at byte %zu is not a digit (0..9)", c,
			                 IDX_LABEL_HEADER + i);
		ds->y[i * ds->classes + c] = 1.0;
	}
	return idx_expect_end(f);
}

/* Both headers first, so that files that do not match fail before any data is read.
 * The caller closes both files, whichever step fails. */
static int load(struct idx_file *im, struct idx_file *lb, const char *labels, nb_dataset *ds)
{
	int s = read_image_header(im, ds);

	if (s == NB_OK)
		s = idx_open(lb, labels, im->msg);
	if (s == NB_OK)
		s = read_label_header(lb, ds->n);
	if (s == NB_OK)
		s = read_pixels(im, ds);
	if (s == NB_OK)
		s = labels_alloc(im, ds);
	if (s == NB_OK)
		s = read_labels(lb, ds);
	return s;
}

int nb_dataset_load_idx(const char *images, const char *labels, nb_dataset *ds, char *msg)
{
	struct idx_file im = { 0 }, lb = { 0 };
	int s;

	if (ds)
		memset(ds, 0, sizeof *ds);
	if (!images)
		return nb__msg_fail(msg, NB_ENULL, "load_idx: images is NULL");
	if (!labels)
		return nb__msg_fail(msg, NB_ENULL, "load_idx: labels is NULL");
	if (!ds)
		return nb__msg_fail(msg, NB_ENULL, "load_idx: ds is NULL");
	s = idx_open(&im, images, msg);
	if (s == NB_OK)
		s = load(&im, &lb, labels, ds);
	idx_close(&im);
	idx_close(&lb);
	if (s != NB_OK)
		nb_dataset_free(ds);
	return s;
}

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
	return nb__file_fail(msg, NB_EIO, path, "cannot open: %s", strerror(ENOENT));
}

/* Find the two files of a split in dir and load them. */
static int load_split(const char *dir, const char *split, nb_dataset *ds, char *msg)
{
	size_t size = strlen(dir) + sizeof "/train-images-idx3-ubyte[.gz]";
	char *im = malloc(size), *lb = malloc(size);
	int s = NB_OK;

	if (!im || !lb)
		s = nb__msg_fail(msg, NB_ENOMEM, "load_dir: out of memory");
	if (s == NB_OK)
		s = find_file(im, size, dir, split, "images-idx3-ubyte", msg);
	if (s == NB_OK)
		s = find_file(lb, size, dir, split, "labels-idx1-ubyte", msg);
	if (s == NB_OK)
		s = nb_dataset_load_idx(im, lb, ds, msg);
	free(im);
	free(lb);
	return s;
}

int nb_dataset_load_dir(const char *dir, const char *split, nb_dataset *ds, char *msg)
{
	if (ds)
		memset(ds, 0, sizeof *ds);
	if (!dir)
		return nb__msg_fail(msg, NB_ENULL, "load_dir: dir is NULL");
	if (!split)
		return nb__msg_fail(msg, NB_ENULL, "load_dir: split is NULL");
	if (!ds)
		return nb__msg_fail(msg, NB_ENULL, "load_dir: ds is NULL");
	if (strcmp(split, "train") != 0 && strcmp(split, "t10k") != 0)
		return nb__msg_fail(msg, NB_EINVAL,
		            "load_dir: split must be \"train\" or \"t10k\", not \"%s\"", split);
	return load_split(dir, split, ds, msg);
}

void nb_dataset_free(nb_dataset *ds)
{
	if (!ds)
		return;
	free(ds->x);
	free(ds->y);
	free(ds->label);
	memset(ds, 0, sizeof *ds);
}
