/* file.c -- what the loaders and savers of files share (see file.h). */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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
