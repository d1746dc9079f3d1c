/* zfile.c -- the bytes of a regular file, inflated when it is gzip-compressed.
 *
 * zlib's gzread() would do this, but it allocates with malloc and offers no hook, so
 * that its memory escaped the caller's allocator (and the tests that make every
 * allocation fail in turn). Here inflate() runs on a z_stream whose zalloc and zfree go
 * through the hook, and plain files are copied through the same input buffer. As
 * gzread() does, a file is gzip when it starts with the magic bytes 1f 8b; several gzip
 * members one after the other (cat a.gz b.gz) are one stream; bytes after the last member
 * that do not start another are ignored, as gzip(1) ignores them. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "file.h"
#include "zfile.h"

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int zfail(struct nb_zfile *f, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	status = nn__file_vfail(f->msg, status, f->path, fmt, ap);
	va_end(ap);
	return status;
}

/* ---- zlib's allocations, through the hook ------------------------------------------ */

/* zfree() is not told a block's size, which the hook wants back: each block starts with
 * it, in a header as aligned as anything zlib may store after it. */
union zhead {
	size_t size;
	max_align_t align;
};

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
	struct nb_zfile *f = opaque;
	union zhead *h;
	size_t n;

	if (size != 0 && items > (SIZE_MAX - sizeof *h) / size)
		return Z_NULL;
	n = sizeof *h + (size_t)items * size;
	h = f->alloc(f->ud, NULL, 0, n);
	if (h == NULL)
		return Z_NULL;
	h->size = n;
	return h + 1;
}

static void z_free(voidpf opaque, voidpf p)
{
	struct nb_zfile *f = opaque;
	union zhead *h = (union zhead *)p - 1;

	if (p != Z_NULL)
		f->alloc(f->ud, h, h->size, 0);
}

/* ---- Input ------------------------------------------------------------------------- */

/* Read more of the file into in, after the bytes not used yet (moved to its start).
 * Called only when in has room. */
static int fill_input(struct nb_zfile *f)
{
	size_t have = f->zs.avail_in;
	ssize_t got;

	memmove(f->in, f->zs.next_in, have);
	f->zs.next_in = f->in;
	do
		got = read(f->fd, f->in + have, sizeof f->in - have);
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return zfail(f, NB_EIO, "cannot read: %s", strerror(errno));
	if (got == 0)
		f->raw_eof = true;
	f->zs.avail_in = (uInt)(have + (size_t)got);
	return NB_OK;
}

/* Make at least two bytes of input available, unless the file ends first. */
static int fill_two(struct nb_zfile *f)
{
	int s = NB_OK;

	while (s == NB_OK && f->zs.avail_in < 2 && !f->raw_eof)
		s = fill_input(f);
	return s;
}

static bool at_gzip_magic(const struct nb_zfile *f)
{
	return f->zs.avail_in >= 2 && f->zs.next_in[0] == 0x1f && f->zs.next_in[1] == 0x8b;
}

/* ---- Opening ----------------------------------------------------------------------- */

/* inflateInit2() with 16 + 15 window bits: a gzip stream (header, deflate data, CRC and
 * length checked by zlib) with the largest window. */
static int start_inflate(struct nb_zfile *f)
{
	int ret;

	f->zs.zalloc = z_alloc;
	f->zs.zfree = z_free;
	f->zs.opaque = f;
	ret = inflateInit2(&f->zs, 16 + MAX_WBITS);
	if (ret == Z_MEM_ERROR)
		return zfail(f, NB_ENOMEM, "out of memory in zlib");
	if (ret != Z_OK)
		return zfail(f, NB_EIO, "gzip error: %s", f->zs.msg ? f->zs.msg : zError(ret));
	f->zlive = true;
	return NB_OK;
}

int nn__zfile_open(struct nb_zfile *f, const char *path, nb_alloc_fn alloc, void *ud,
                   char *msg)
{
	off_t size;
	int s;

	memset(f, 0, offsetof(struct nb_zfile, in));
	f->path = path;
	f->msg = msg;
	f->alloc = alloc;
	f->ud = ud;
	f->zs.next_in = f->in;
	s = nn__open_regular(path, &f->fd, &size, msg);
	if (s == NB_OK)
		s = fill_two(f);
	if (s == NB_OK && at_gzip_magic(f)) {
		f->gzip = true;
		s = start_inflate(f);
	}
	if (s != NB_OK)
		nn__zfile_close(f);
	return s;
}

void nn__zfile_close(struct nb_zfile *f)
{
	if (f->zlive)
		inflateEnd(&f->zs);
	f->zlive = false;
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

/* ---- Reading ----------------------------------------------------------------------- */

static int read_plain(struct nb_zfile *f, unsigned char *buf, size_t n, size_t *got)
{
	int s;

	*got = 0;
	if (f->zs.avail_in == 0 && !f->raw_eof && (s = fill_input(f)) != NB_OK)
		return s;
	*got = n < f->zs.avail_in ? n : f->zs.avail_in;
	memcpy(buf, f->zs.next_in, *got);
	f->zs.next_in += *got;
	f->zs.avail_in -= (uInt)*got;
	f->off += *got;
	return NB_OK;
}

/* A gzip member ended: another may follow; anything else ends the data. */
static int next_member(struct nb_zfile *f)
{
	int s = fill_two(f);

	if (s != NB_OK)
		return s;
	if (at_gzip_magic(f))
		inflateReset(&f->zs);
	else
		f->data_end = true;
	return NB_OK;
}

/* One call of inflate(), with more input first when it has none. */
static int inflate_step(struct nb_zfile *f)
{
	uInt before;
	int ret, s;

	if (f->zs.avail_in == 0) {
		if (!f->raw_eof && (s = fill_input(f)) != NB_OK)
			return s;
		if (f->zs.avail_in == 0)
			return zfail(f, NB_EFORMAT,
			             "gzip stream cut short after %zu bytes of data", f->off);
	}
	before = f->zs.avail_out;
	ret = inflate(&f->zs, Z_NO_FLUSH);
	f->off += before - f->zs.avail_out;
	switch (ret) {
	case Z_OK:
	case Z_BUF_ERROR:  /* no progress without more input: the next step reads some */
		return NB_OK;
	case Z_STREAM_END:
		return next_member(f);
	case Z_MEM_ERROR:
		return zfail(f, NB_ENOMEM, "out of memory in zlib");
	default:
		return zfail(f, NB_EIO, "gzip error: %s", f->zs.msg ? f->zs.msg : zError(ret));
	}
}

static int read_gzip(struct nb_zfile *f, unsigned char *buf, size_t n, size_t *got)
{
	uInt want = n < NB_ZFILE_CHUNK ? (uInt)n : NB_ZFILE_CHUNK;
	int s = NB_OK;

	f->zs.next_out = buf;
	f->zs.avail_out = want;
	while (s == NB_OK && f->zs.avail_out > 0 && !f->data_end)
		s = inflate_step(f);
	*got = want - f->zs.avail_out;
	return s;
}

int nn__zfile_read(struct nb_zfile *f, unsigned char *buf, size_t n, size_t *got)
{
	return f->gzip ? read_gzip(f, buf, n, got) : read_plain(f, buf, n, got);
}

/* ---- Skipping ---------------------------------------------------------------------- */

/* Drop the buffered bytes first; past them the descriptor stands at off, so a seek of
 * what is left, bounded by the file's size, lands where reading would have. */
static int skip_plain(struct nb_zfile *f, size_t n, size_t *skipped)
{
	size_t k = n < f->zs.avail_in ? n : f->zs.avail_in;
	struct stat st;
	uint64_t left;

	f->zs.next_in += k;
	f->zs.avail_in -= (uInt)k;
	f->off += k;
	*skipped = k;
	if (k == n || f->raw_eof)
		return NB_OK;
	if (fstat(f->fd, &st) != 0)
		return zfail(f, NB_EIO, "cannot stat: %s", strerror(errno));
	left = (uint64_t)st.st_size > f->off ? (uint64_t)st.st_size - f->off : 0;
	k = n - k < left ? n - k : (size_t)left;
	if (k > 0 && lseek(f->fd, (off_t)k, SEEK_CUR) < 0)
		return zfail(f, NB_EIO, "cannot seek: %s", strerror(errno));
	f->off += k;
	*skipped += k;
	return NB_OK;
}

/* A deflate stream cannot be entered in the middle: inflate what comes before. */
static int skip_gzip(struct nb_zfile *f, size_t n, size_t *skipped)
{
	unsigned char buf[NB_ZFILE_CHUNK];
	size_t got = 0;
	int s = NB_OK;

	*skipped = 0;
	do {
		s = read_gzip(f, buf, n - *skipped, &got);
		*skipped += got;
	} while (s == NB_OK && got > 0 && *skipped < n);
	return s;
}

int nn__zfile_skip(struct nb_zfile *f, size_t n, size_t *skipped)
{
	*skipped = 0;
	if (n == 0)
		return NB_OK;
	return f->gzip ? skip_gzip(f, n, skipped) : skip_plain(f, n, skipped);
}
