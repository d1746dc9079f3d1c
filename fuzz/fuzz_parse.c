/* fuzz_parse.c -- libFuzzer target for nb_parse() (lib/parse.c): an input is the text of
 * an expression, parsed on a tape with inputs named a, c (2x3), b (3x2), v (3), s (a
 * scalar), z and y (3x4). The tape's allocator refuses blocks over ALLOC_MAX bytes and
 * more than ALLOC_TOTAL in all, so that no expression allocates much: larger results fail
 * as out of memory. After each parse:
 *   - it returned NULL exactly when the tape's status is not NB_OK;
 *   - on failure the tape has the nodes it had before; the status is one a parse may
 *     give (never NB_EINTERNAL), the message is NUL-terminated within NB_MSG_MAX bytes and
 *     starts with "LINE:COL: ", the position nb_parse_loc gives, whose offset lies in the
 *     text and has that line and column;
 *   - on success the position is all 0, the value can be read, a second parse of the
 *     text returns the same node and records nothing (hash-consing: the parse is a
 *     function of the text), and a backward sweep from it records no internal error;
 * and after nb_tape_free() the allocator holds nothing.
 *
 * Run: ./build.sh fuzz (each target FUZZ_SECONDS, default 60, on a copy of
 * fuzz/corpus/parse/, with the dictionary fuzz/parse.dict, then once over every file in
 * fuzz/regressions/parse/). The corpus files are plain text, written by hand. */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nabla.h>

#include "fuzz.h"

#define ALLOC_MAX ((size_t)256 << 10)
#define ALLOC_TOTAL ((size_t)4 << 20)
#define N_INPUTS 7


/* The named inputs, with values away from 0 so that log and div mostly stay finite. */
static void make_inputs(nb_tape *t, nb_parse_input *in)
{
	static const char *const names[N_INPUTS] = { "a", "b", "c", "v", "s", "z", "y" };
	static const int rank[N_INPUTS] = { 2, 2, 2, 1, 0, 2, 2 };
	static const size_t dim[N_INPUTS][2] = { { 2, 3 }, { 3, 2 }, { 2, 3 }, { 3 }, { 0 },
	                                         { 3, 4 }, { 3, 4 } };
	double data[12];

	for (int i = 0; i < 12; i++)
		data[i] = 0.25 + 0.125 * i;
	for (int i = 0; i < N_INPUTS; i++) {
		in[i] = (nb_parse_input){ names[i], nb_variable(t, rank[i], dim[i], data) };
		FUZZ_CHECK(in[i].x != NULL, "input %s: %s", names[i], nb_tape_message(t));
	}
}

/* The statuses a parse may end with: its own errors and the ops'. */
static bool parse_status(int status)
{
	return status == NB_EINVAL || status == NB_ESHAPE || status == NB_ERANK ||
	       status == NB_ENOMEM;
}

static void check_failure(nb_tape *t, const char *src, size_t len, const nb_parse_loc *at,
                          size_t size)
{
	const char *msg = nb_tape_message(t);
	size_t line = 1, col = 1, mline, mcol;
	int consumed = 0;

	FUZZ_CHECK(parse_status(nb_tape_status(t)), "status %s: %s",
	           nb_status_name(nb_tape_status(t)), msg);
	FUZZ_CHECK(nb_tape_size(t) == size, "a failed parse left %zu nodes, not %zu",
	           nb_tape_size(t), size);
	FUZZ_CHECK(memchr(msg, '\0', NB_MSG_MAX) != NULL, "message not terminated");
	FUZZ_CHECK(sscanf(msg, "%zu:%zu: %n", &mline, &mcol, &consumed) == 2 && consumed > 0,
	           "message without a position: %s", msg);
	FUZZ_CHECK(mline == at->line && mcol == at->col, "message at %zu:%zu, where %zu:%zu",
	           mline, mcol, at->line, at->col);
	FUZZ_CHECK(at->offset <= len, "offset %zu past the text (%zu bytes)", at->offset, len);
	for (size_t i = 0; i < at->offset; i++) {
		col = src[i] == '\n' ? 1 : col + 1;
		line += src[i] == '\n';
	}
	FUZZ_CHECK(line == at->line && col == at->col, "offset %zu is %zu:%zu, not %zu:%zu",
	           at->offset, line, col, at->line, at->col);
}

/* The seed of a backward sweep: ones of y's shape, or NULL for one element. */
static nb_tensor *ones(nb_tape *t, nb_tensor *y)
{
	size_t dim[NB_MAX_RANK];

	if (nb_size(y) == 1)
		return NULL;
	for (int i = 0; i < nb_rank(y); i++)
		dim[i] = nb_dim(y, i);
	return nb_fill(t, nb_rank(y), dim, 1.0);
}

static void check_success(nb_tape *t, const char *src, const nb_parse_input *in,
                          nb_tensor *y, const nb_parse_loc *at)
{
	size_t size = nb_tape_size(t);
	int status;

	FUZZ_CHECK(at->line == 0 && at->col == 0 && at->offset == 0, "position after success");
	FUZZ_CHECK(nb_value(y) != NULL, "no value");
	FUZZ_CHECK(nb_parse(t, src, in, N_INPUTS, NULL) == y, "a second parse gave another node");
	FUZZ_CHECK(nb_tape_size(t) == size, "a second parse recorded %zu nodes",
	           nb_tape_size(t) - size);
	status = nb_backward(t, y, ones(t, y));
	FUZZ_CHECK(status == NB_OK || status == NB_ENOMEM, "backward: %s: %s",
	           nb_status_name(status), nb_tape_message(t));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_alloc mem = { .max_block = ALLOC_MAX, .max_total = ALLOC_TOTAL };
	nb_parse_input in[N_INPUTS];
	nb_parse_loc at;
	nb_tape *t;
	nb_tensor *y;
	char *src = malloc(size + 1);
	size_t before;

	FUZZ_CHECK(src != NULL, "out of memory");
	memcpy(src, data, size);
	src[size] = '\0';
	t = nb_tape_new_alloc(fuzz_alloc_fn, &mem);
	FUZZ_CHECK(t != NULL, "no tape");
	make_inputs(t, in);
	before = nb_tape_size(t);
	y = nb_parse(t, src, in, N_INPUTS, &at);
	FUZZ_CHECK((y == NULL) == (nb_tape_status(t) != NB_OK), "returned %p with status %s",
	           (void *)y, nb_status_name(nb_tape_status(t)));
	if (y)
		check_success(t, src, in, y, &at);
	else
		check_failure(t, src, strlen(src), &at, before);
	nb_tape_free(t);
	FUZZ_CHECK(mem.in_use == 0 && mem.blocks == 0, "%zu bytes in %zu blocks left after "
	           "nb_tape_free", mem.in_use, mem.blocks);
	free(src);
	return 0;
}
