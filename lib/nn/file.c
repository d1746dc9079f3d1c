/* file.c -- what the loaders and savers of files share (see file.h). */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "file.h"
#include "nn_int.h"

int nn__file_vfail(char *msg, int status, const char *path, const char *fmt, va_list ap)
{
	int n;

	if (!msg)
		return status;
	n = vsnprintf(msg, NB_MSG_MAX, fmt, ap);
	if (n >= 0 && n < NB_MSG_MAX)
		snprintf(msg + n, NB_MSG_MAX - (size_t)n, ": %s", path);
	return status;
}

int nn__file_fail(char *msg, int status, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	status = nn__file_vfail(msg, status, path, fmt, ap);
	va_end(ap);
	return status;
}

const char *nn__file_kind(mode_t mode)
{
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISLNK(mode))
		return "a symbolic link";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISSOCK(mode))
		return "a socket";
	return "a special file";
}

static int open_fail(const char *path, int err, char *msg)
{
	if (err == ENOMEM)
		return nn__file_fail(msg, NB_ENOMEM, path, "cannot open: out of memory");
	return nn__file_fail(msg, NB_EIO, path, "cannot open: %s", strerror(err));
}

static int not_regular(const char *path, mode_t mode, char *msg)
{
	return nn__file_fail(msg, NB_EIO, path, "cannot open: %s, not a regular file",
	                     nn__file_kind(mode));
}

/* stat() first, so that a FIFO or a device is not even opened (opening a FIFO releases a
 * writer waiting for a reader; opening some devices does things). Then open with
 * O_NONBLOCK, so that a FIFO put there meanwhile cannot make open() wait, and fstat() the
 * file actually opened. */
int nn__open_regular(const char *path, int *fd, off_t *size, char *msg)
{
	struct stat st;
	int f, err;

	*fd = -1;
	if (stat(path, &st) != 0)
		return open_fail(path, errno, msg);
	if (!S_ISREG(st.st_mode))
		return not_regular(path, st.st_mode, msg);
	do
		f = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	while (f < 0 && errno == EINTR);
	if (f < 0)
		return open_fail(path, errno, msg);
	if (fstat(f, &st) != 0) {
		err = errno;
		close(f);
		return open_fail(path, err, msg);
	}
	if (!S_ISREG(st.st_mode)) {
		close(f);
		return not_regular(path, st.st_mode, msg);
	}
	/* Regular files ignore O_NONBLOCK; clear it all the same, so reads are plain ones. */
	fcntl(f, F_SETFL, fcntl(f, F_GETFL) & ~O_NONBLOCK);
	*fd = f;
	*size = st.st_size;
	return NB_OK;
}

int nn__read_full(int fd, void *buf, size_t n, size_t *got)
{
	unsigned char *p = buf;

	*got = 0;
	while (*got < n) {
		ssize_t k = read(fd, p + *got, n - *got);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return errno;
		if (k == 0)
			break;
		*got += (size_t)k;
	}
	return 0;
}

void nn__load_settings(const nb_load_opts *opts, nb_alloc_fn *alloc, void **ud,
                       size_t *max_bytes)
{
	*alloc = opts && opts->alloc ? opts->alloc : nb_default_alloc;
	*ud = opts && opts->alloc ? opts->alloc_ud : NULL;
	*max_bytes = opts && opts->max_bytes ? opts->max_bytes : NB_LOAD_MAX_BYTES;
}

/* ---- Reading whole files ------------------------------------------------------------ */

/* A file of size bytes is within the format's bound and the caller's limit. */
static int check_size(const char *path, off_t size, uint64_t format_max, size_t max_bytes,
                      const char *kind, char *msg)
{
	if ((uint64_t)size > format_max)
		return nn__file_fail(msg, NB_EFORMAT, path, "larger than %" PRIu64 " bytes: not a "
		                     "nabla %s file", format_max, kind);
	if ((uint64_t)size > max_bytes)
		return nn__file_fail(msg, NB_EFORMAT, path, "%" PRIu64 " bytes, over the limit of "
		                     "%zu (nb_load_opts.max_bytes)", (uint64_t)size, max_bytes);
	return NB_OK;
}

/* Only a regular file is read: a FIFO would block, and would have no size to check
 * first. */
int nn__read_file(const char *path, nb_alloc_fn alloc, void *ud, uint64_t format_max,
                  size_t max_bytes, const char *kind, unsigned char **data, size_t *cap,
                  size_t *len, char *msg)
{
	off_t size;
	int fd, err, status = nn__open_regular(path, &fd, &size, msg);

	*data = NULL;
	*cap = 0;
	*len = 0;
	if (status != NB_OK)
		return status;
	status = check_size(path, size, format_max, max_bytes, kind, msg);
	*cap = status == NB_OK ? (size_t)size : 0;
	if (*cap > 0 && (*data = alloc(ud, NULL, 0, *cap)) == NULL)
		status = nn__file_fail(msg, NB_ENOMEM, path, "out of memory reading the file");
	if (status != NB_OK) {
		close(fd);
		*cap = 0;
		return status;
	}
	err = nn__read_full(fd, *data, *cap, len);
	close(fd);
	if (err == 0)
		return NB_OK;
	if (*data)
		alloc(ud, *data, *cap, 0);
	*data = NULL;
	*cap = 0;
	return nn__file_fail(msg, NB_EIO, path, "cannot read: %s", strerror(err));
}

/* ---- Saving atomically ------------------------------------------------------------- */

/* lstat() sees a symbolic link itself. What appears at path between this check and the
 * rename, rename() replaces. */
int nn__check_target(const char *path, int *old_mode, char *msg)
{
	struct stat st;

	*old_mode = -1;
	if (lstat(path, &st) != 0)
		return NB_OK;
	if (!S_ISREG(st.st_mode))
		return nn__file_fail(msg, NB_EIO, path, "cannot replace: %s, not a regular file",
		                     nn__file_kind(st.st_mode));
	*old_mode = (int)(st.st_mode & 0777);
	return NB_OK;
}

/* Write len bytes to the fresh temporary file fd, flush them to the disk, and close fd
 * whatever happens. A write error may only show at fsync or even close. */
static int write_all(int fd, const char *path, const unsigned char *buf, size_t len,
                     char *msg)
{
	size_t done = 0;
	int err = 0;

	while (done < len && err == 0) {
		ssize_t k = write(fd, buf + done, len - done);

		if (k > 0)
			done += (size_t)k;
		else if (k == 0)
			err = EIO;
		else if (errno != EINTR)
			err = errno;
	}
	if (err == 0 && fsync(fd) != 0)
		err = errno;
	if (close(fd) != 0 && err == 0)
		err = errno;
	if (err != 0)
		return nn__file_fail(msg, NB_EIO, path, "cannot write: %s", strerror(err));
	return NB_OK;
}

/* splitmix64's finaliser: spreads a few changing bits over all 64. */
static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* Create the temporary file tmp (path, then TMP_SUFFIX to fill in) with O_EXCL and mode
 * 0666, so that the umask applies to it as to any new file. mkstemp() would make it 0600,
 * and reading the umask to correct that (umask() sets it as it reads) would change it for
 * every thread of the process meanwhile. Names are tried until one is free, as mkstemp()
 * does. Returns the descriptor, or -1 with errno set. */
#define TMP_SUFFIX ".XXXXXX"
static int create_temporary(char *tmp, size_t n)
{
	static const char chars[] = "abcdefghijklmnopqrstuvwxyz"
	                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	static atomic_uint_fast64_t counter;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	for (int attempt = 0; attempt < 100; attempt++) {
		uint64_t v = mix64((uint64_t)getpid() << 32 ^ (uint64_t)ts.tv_nsec ^
		                   atomic_fetch_add(&counter, 1) << 40);
		int fd;

		for (size_t i = 1; i < sizeof TMP_SUFFIX - 1; i++, v /= sizeof chars - 1)
			tmp[n + i] = chars[v % (sizeof chars - 1)];
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	return -1;
}

/* Memory comes from the caller's allocator, so that tests can make saving run out of
 * it. */
int nn__replace_file(nb_alloc_fn alloc, void *ud, const char *path, int old_mode,
                     const unsigned char *buf, size_t len, char *msg)
{
	size_t n = strlen(path);
	char *tmp = alloc(ud, NULL, 0, n + sizeof TMP_SUFFIX);
	int fd, status;

	if (tmp == NULL)
		return nn__file_fail(msg, NB_ENOMEM, path, "out of memory");
	memcpy(tmp, path, n);
	memcpy(tmp + n, TMP_SUFFIX, sizeof TMP_SUFFIX);
	fd = create_temporary(tmp, n);
	if (fd < 0) {
		status = nn__file_fail(msg, NB_EIO, path, "cannot create a temporary file: %s",
		                       strerror(errno));
		alloc(ud, tmp, n + sizeof TMP_SUFFIX, 0);
		return status;
	}
	/* Cosmetic where it fails (some file systems have no modes): ignored. */
	if (old_mode >= 0)
		(void)fchmod(fd, (mode_t)old_mode);
	status = write_all(fd, path, buf, len, msg);
	if (status == NB_OK && rename(tmp, path) != 0)
		status = nn__file_fail(msg, NB_EIO, path, "cannot replace: %s", strerror(errno));
	if (status != NB_OK)
		unlink(tmp);
	alloc(ud, tmp, n + sizeof TMP_SUFFIX, 0);
	return status;
}
