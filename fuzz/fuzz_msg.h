/* fuzz_msg.h -- what the libFuzzer targets check of a loader's message. */
#ifndef NABLA_FUZZ_MSG_H
#define NABLA_FUZZ_MSG_H

#include <string.h>

/* Whether msg is a message of at most max bytes that ends ": PATH", as every loader
 * message about a file does (the reason first, so that a long path cut at the end of
 * the buffer never hides it). A full buffer may end with the start of the path only. */
static inline int fuzz_msg_names_file(const char *msg, size_t max, const char *path)
{
	const char *end = memchr(msg, '\0', max);
	size_t len = strlen(path), m;

	if (!end)
		return 0;
	m = (size_t)(end - msg);
	if (m + 1 == max) {
		for (const char *p = strstr(msg, ": "); p; p = strstr(p + 1, ": "))
			if (strncmp(p + 2, path, m - (size_t)(p + 2 - msg)) == 0)
				return 1;
		return 0;
	}
	return m > len + 2 && strncmp(msg + m - len - 2, ": ", 2) == 0 &&
	       strcmp(msg + m - len, path) == 0;
}

#endif
