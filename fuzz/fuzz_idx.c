/* fuzz_idx.c -- libFuzzer target for nb_dataset_load_idx(), MNIST's IDX loader (lib/nn/idx.c).
 *
 * An input is a pair of files. Bytes 0 and 1 (big-endian) are the length of the images
 * file, byte 2 says which of the two to gzip before loading (bit 0 the images, bit 1 the
 * labels; a file left plain may hold a gzip stream of its own, which zlib reads as well),
 * and the rest is the images file followed by the labels file (whatever is left). A load
 * that succeeds must give a well-formed data set holding exactly the bytes of the files;
 * one that fails must leave the data set zeroed, name a file and leak nothing.
 *
 * Run: ./build.sh fuzz (each target FUZZ_SECONDS, default 60, on a copy of
 * fuzz/corpus/idx/, then once over every file in fuzz/regressions/idx/). By hand, after it:
 *   build-fuzz/fuzz/fuzz_idx -max_total_time=600 build-fuzz/work/idx
 * A crash leaves build-fuzz/artifacts/idx/crash-*: fix the bug, then copy that file into
 * fuzz/regressions/idx/ under a name saying what it caught, so every run replays it. */
#define _POSIX_C_SOURCE 200809L /* mkstemp */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <nabla_nn.h>

#include "fuzz.h"
#include "fuzz_msg.h"

#define PREFIX 3                /* the images length (2 bytes), then the gzip choice */
#define IDX_IMAGE_HEADER 16
#define IDX_LABEL_HEADER 8

/* One of the two files: its bytes as given, and whether it goes to disk gzipped. */
struct part {
	const uint8_t *data;
	size_t size;
	int gzip;
};

/* Whether the loader reads back exactly p's bytes: true unless p is written plain and is
 * itself a gzip stream (then its content is whatever that stream inflates to). */
static int content_known(const struct part *p)
{
	return p->gzip || p->size < 2 || p->data[0] != 0x1f || p->data[1] != 0x8b;
}

/* A loaded data set: shapes consistent, pixels in [0, 1], labels digits, y one-hot. */
static void check_dataset(const nb_dataset *ds)
{
	FUZZ_CHECK(ds->n >= 1 && ds->rows >= 1 && ds->cols >= 1, "n %zu, %zu x %zu", ds->n,
	           ds->rows, ds->cols);
	FUZZ_CHECK(ds->features == ds->rows * ds->cols, "features %zu", ds->features);
	FUZZ_CHECK(ds->classes == 10, "classes %zu", ds->classes);
	FUZZ_CHECK(ds->x && ds->y && ds->label, "an array is NULL");
	for (size_t i = 0; i < ds->n * ds->features; i++)
		FUZZ_CHECK(ds->x[i] >= 0.0 && ds->x[i] <= 1.0, "x[%zu] = %g", i, ds->x[i]);
	for (size_t i = 0; i < ds->n; i++) {
		FUZZ_CHECK(ds->label[i] < ds->classes, "label[%zu] = %u", i, ds->label[i]);
		for (size_t c = 0; c < ds->classes; c++)
			FUZZ_CHECK(ds->y[i * ds->classes + c] == (c == ds->label[i]),
			           "y[%zu][%zu] is not one-hot for label %u", i, c, ds->label[i]);
	}
}

/* Where the content is known, the data set is that content: same length, pixel bytes
 * scaled by 1/255, the same labels. */
static void check_content(const nb_dataset *ds, const struct part *im, const struct part *lb)
{
	if (content_known(im)) {
		FUZZ_CHECK(im->size == IDX_IMAGE_HEADER + ds->n * ds->features,
		           "images file of %zu bytes for %zu x %zu", im->size, ds->n, ds->features);
		for (size_t i = 0; i < ds->n * ds->features; i++)
			FUZZ_CHECK(ds->x[i] == im->data[IDX_IMAGE_HEADER + i] / 255.0,
			           "x[%zu] = %g, byte %u", i, ds->x[i],
			           im->data[IDX_IMAGE_HEADER + i]);
	}
	if (content_known(lb)) {
		FUZZ_CHECK(lb->size == IDX_LABEL_HEADER + ds->n, "labels file of %zu bytes for %zu",
		           lb->size, ds->n);
		FUZZ_CHECK(memcmp(ds->label, lb->data + IDX_LABEL_HEADER, ds->n) == 0,
		           "labels differ from the file");
	}
}

/* A failed load: a status it documents, an empty data set, a message naming a file. */
static void check_failure(int status, const nb_dataset *ds, const char *msg, const char *im,
                          const char *lb)
{
	static const nb_dataset empty;

	FUZZ_CHECK(status == NB_EIO || status == NB_EFORMAT || status == NB_ENOMEM,
	           "status %s: %s", nb_status_name(status), msg);
	FUZZ_CHECK(memcmp(ds, &empty, sizeof empty) == 0, "data set not empty after: %s", msg);
	FUZZ_CHECK(fuzz_msg_names_file(msg, NB_MSG_MAX, im) ||
	           fuzz_msg_names_file(msg, NB_MSG_MAX, lb),
	           "message names neither file: %s", msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct part im, lb;
	char im_path[FUZZ_PATH_MAX], lb_path[FUZZ_PATH_MAX], msg[NB_MSG_MAX] = "";
	size_t split;
	nb_dataset ds;
	int status;

	if (size < PREFIX)
		return 0;
	split = (size_t)data[0] << 8 | data[1];
	if (split > size - PREFIX)
		split = size - PREFIX;
	im = (struct part){ data + PREFIX, split, data[2] & 1 };
	lb = (struct part){ data + PREFIX + split, size - PREFIX - split, data[2] >> 1 & 1 };
	fuzz_tmpfile(im_path, im.data, im.size, im.gzip);
	fuzz_tmpfile(lb_path, lb.data, lb.size, lb.gzip);
	status = nb_dataset_load_idx(im_path, lb_path, &ds, msg);
	if (status == NB_OK) {
		check_dataset(&ds);
		check_content(&ds, &im, &lb);
	} else {
		check_failure(status, &ds, msg, im_path, lb_path);
	}
	nb_dataset_free(&ds);
	unlink(im_path);
	unlink(lb_path);
	return 0;
}
