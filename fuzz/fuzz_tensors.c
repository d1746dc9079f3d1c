/* fuzz_tensors.c -- libFuzzer target for nb_tensors_load() and nb_tensors_load_into(),
 * files of named tensors (lib/nn/tensors.c, docs/model-format.md, "Version 2: named
 * tensors").
 *
 * An input is a tensor file. It is loaded as it is, and then, since a mutated file almost
 * never keeps a valid checksum, once more with its last 8 bytes replaced by the XXH3-64 of
 * the rest, so that the checks of the fields are fuzzed too. Every load goes through a
 * counting allocator. A load that succeeds must give a well-formed set (names of 1 to 23
 * bytes without NUL, unique; ranks 0 to 4; dims >= 1; a description without NUL) whose
 * save writes the input again byte for byte, and nb_tensors_load_into() of that same set
 * must give the same values; a load that fails must leave the result all zero, name the
 * file and leak nothing. Each load is then repeated with one of its allocations failing,
 * which must be NB_ENOMEM and leak nothing too.
 *
 * Run: ./build.sh fuzz (each target FUZZ_SECONDS, default 60, on a copy of
 * fuzz/corpus/tensors/, then once over every file in fuzz/regressions/tensors/). By hand,
 * after it:
 *   build-fuzz/fuzz_tensors -max_total_time=600 build-fuzz/work/tensors
 * A crash leaves build-fuzz/artifacts/tensors/crash-*: fix the bug, then copy that file
 * into fuzz/regressions/tensors/ under a name saying what it caught. */
#define _POSIX_C_SOURCE 200809L /* mkstemp */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <nabla_nn.h>

#include "fuzz.h"
#include "fuzz_checksum.h"
#include "fuzz_msg.h"

static size_t values_of(const nb_named_tensor *t)
{
	size_t n = 1;

	for (int d = 0; d < t->rank; d++)
		n *= t->dim[d];
	return n;
}

/* Every tensor is well-formed and its name unique. */
static void check_set(const nb_tensor_file *f)
{
	FUZZ_CHECK(f->tensors != NULL && f->description != NULL, "no block");
	for (size_t i = 0; i < f->n; i++) {
		const nb_named_tensor *t = &f->tensors[i];
		size_t len = strlen(t->name);

		FUZZ_CHECK(len >= 1 && len < NB_NAME_MAX, "tensor %zu: name of %zu bytes", i, len);
		FUZZ_CHECK(t->rank >= 0 && t->rank <= NB_MAX_RANK, "tensor %zu: rank %d", i,
		           t->rank);
		for (int d = 0; d < t->rank; d++)
			FUZZ_CHECK(t->dim[d] >= 1, "tensor %zu: dimension %d is 0", i, d);
		FUZZ_CHECK(t->data != NULL, "tensor %zu: no data", i);
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(t->name, f->tensors[j].name) != 0, "tensors %zu and %zu "
			           "are both \"%s\"", j, i, t->name);
	}
}

/* Saving the loaded set writes exactly the input's size bytes of f. */
static void check_save_reproduces(const nb_tensor_file *set, const uint8_t *f, size_t size)
{
	char path[FUZZ_PATH_MAX], msg[NB_MSG_MAX] = "";
	struct fuzz_alloc c = { .max_block = SIZE_MAX, .max_total = SIZE_MAX };
	nb_save_opts opts = { .alloc = fuzz_alloc_fn, .alloc_ud = &c };
	FILE *in;
	uint8_t *back = malloc(size + 1);
	size_t got;
	int status;

	FUZZ_CHECK(back != NULL, "out of memory");
	fuzz_tmpfile(path, NULL, 0, 0);
	status = nb_tensors_save_opts(path, set->tensors, set->n, set->description, &opts, msg);
	FUZZ_CHECK(status == NB_OK, "save of a loaded set: %s", msg);
	FUZZ_CHECK(c.in_use == 0 && c.blocks == 0, "save leaked %zu bytes", c.in_use);
	in = fopen(path, "rb");
	FUZZ_CHECK(in != NULL, "cannot read back %s", path);
	got = fread(back, 1, size + 1, in);
	fclose(in);
	unlink(path);
	FUZZ_CHECK(got == size && memcmp(back, f, size) == 0, "the save wrote %zu bytes, not "
	           "the %zu loaded", got, size);
	free(back);
}

/* load_into of every tensor of the set, into fresh arrays, gives the same bits. */
static void check_load_into(const char *path, const nb_tensor_file *set)
{
	char msg[NB_MSG_MAX] = "";
	nb_named_tensor *want = calloc(set->n + 1, sizeof *want);
	int status;

	FUZZ_CHECK(want != NULL, "out of memory");
	for (size_t i = 0; i < set->n; i++) {
		want[i] = set->tensors[i];
		want[i].data = malloc(values_of(&want[i]) * sizeof(double));
		FUZZ_CHECK(want[i].data != NULL, "out of memory");
	}
	status = nb_tensors_load_into(path, NULL, want, set->n, msg);
	FUZZ_CHECK(status == NB_OK, "load_into of a loaded set: %s", msg);
	for (size_t i = 0; i < set->n; i++) {
		FUZZ_CHECK(memcmp(want[i].data, set->tensors[i].data,
		                  values_of(&want[i]) * sizeof(double)) == 0,
		           "load_into gave other values for \"%s\"", want[i].name);
		free(want[i].data);
	}
	free(want);
}

/* One load with allocation fail_at failing (0: none): the outcome either way. Returns the
 * number of allocations the load made. */
static size_t load_once(const char *path, const uint8_t *f, size_t size, size_t fail_at)
{
	static const unsigned char zero[sizeof(nb_tensor_file)];
	char msg[NB_MSG_MAX] = "";
	struct fuzz_alloc c = { .max_block = SIZE_MAX, .max_total = SIZE_MAX, .fail_at = fail_at };
	nb_load_opts opts = { .alloc = fuzz_alloc_fn, .alloc_ud = &c };
	nb_tensor_file set;
	int status;

	memset(&set, 0x5a, sizeof set);  /* the loader must set every field */
	status = nb_tensors_load(path, &opts, &set, msg);
	if (status == NB_OK) {
		FUZZ_CHECK(fail_at == 0 || fail_at > c.count, "NB_OK with allocation %zu failed",
		           fail_at);
		FUZZ_CHECK(c.blocks == 1 && c.in_use == set.bytes, "%zu blocks, %zu bytes held",
		           c.blocks, c.in_use);
		check_set(&set);
		if (fail_at == 0) {
			check_save_reproduces(&set, f, size);
			check_load_into(path, &set);
		}
		nb_tensors_free(&set);
	} else {
		FUZZ_CHECK(status == NB_EFORMAT || status == NB_ENOMEM, "status %s: %s",
		           nb_status_name(status), msg);
		FUZZ_CHECK(fail_at != 0 || status != NB_ENOMEM, "out of memory: %s", msg);
		FUZZ_CHECK(memcmp(&set, zero, sizeof set) == 0, "result set after: %s", msg);
		FUZZ_CHECK(fuzz_msg_names_file(msg, NB_MSG_MAX, path), "message does not name the "
		           "file: %s", msg);
	}
	FUZZ_CHECK(c.in_use == 0 && c.blocks == 0, "load leaked %zu bytes in %zu blocks: %s",
	           c.in_use, c.blocks, msg);
	return c.count;
}

/* Load size bytes of f, then again with one of the allocations failing (picked by the
 * input's size). */
static void load(const uint8_t *f, size_t size)
{
	char path[FUZZ_PATH_MAX];
	size_t allocs;

	fuzz_tmpfile(path, f, size, 0);
	allocs = load_once(path, f, size, 0);
	if (allocs > 0)
		load_once(path, f, size, 1 + size % allocs);
	unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_load_checksummed(data, size, load);
	return 0;
}
