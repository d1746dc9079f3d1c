/* make_corpus.c -- write the fuzzers' seed corpora, fuzz/corpus/idx/ and fuzz/corpus/model/:
 * a few small valid inputs and a few invalid ones, each named for what it is. The files
 * are committed; run this only to change them, from the top of the tree:
 *
 *   cc -std=c11 -Iinclude fuzz/make_corpus.c lib/[a-z]*.c $(pkg-config --cflags --libs \
 *       libxxhash zlib) -lm -o make_corpus && ./make_corpus fuzz/corpus && rm make_corpus
 *
 * An IDX input is what fuzz_idx.c reads: the images file's length (2 bytes, big-endian),
 * which files to gzip (1 byte: bit 0 images, bit 1 labels), the images file, the labels
 * file. Valid models come from nb_net_save(); invalid ones are saved files changed by
 * hand, most with their checksum made valid again so that the later checks see them. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nabla.h>
#include <xxhash.h>
#include <zlib.h>

#define BUF_MAX 4096

static const char *out_dir;

static void die(const char *what, const char *name)
{
	fprintf(stderr, "make_corpus: %s: %s\n", name, what);
	exit(1);
}

static void write_file(const char *kind, const char *name, const void *p, size_t n)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s/%s", out_dir, kind, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0)
		die("cannot write", path);
}

/* ---- IDX ----------------------------------------------------------------------------- */

static size_t put_be32(uint8_t *b, uint32_t v)
{
	b[0] = (uint8_t)(v >> 24);
	b[1] = (uint8_t)(v >> 16);
	b[2] = (uint8_t)(v >> 8);
	b[3] = (uint8_t)v;
	return 4;
}

/* An images file: magic, n, rows, cols, then npix pixels i * 37 + 11 (mod 256). */
static size_t images(uint8_t *b, uint32_t magic, uint32_t n, uint32_t rows, uint32_t cols,
                     size_t npix)
{
	size_t len = put_be32(b, magic);

	len += put_be32(b + len, n);
	len += put_be32(b + len, rows);
	len += put_be32(b + len, cols);
	for (size_t i = 0; i < npix; i++)
		b[len++] = (uint8_t)(i * 37 + 11);
	return len;
}

/* A labels file: magic, n, then the nlab labels given. */
static size_t labels(uint8_t *b, uint32_t magic, uint32_t n, const uint8_t *lab, size_t nlab)
{
	size_t len = put_be32(b, magic);

	len += put_be32(b + len, n);
	memcpy(b + len, lab, nlab);
	return len + nlab;
}

/* src as a gzip stream (the bytes of a .gz file) in dst; returns its length. */
static size_t gzip_bytes(uint8_t *dst, const uint8_t *src, size_t n)
{
	z_stream z = { 0 };

	if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		die("deflateInit2 failed", "gzip");
	z.next_in = (uint8_t *)src;
	z.avail_in = (uInt)n;
	z.next_out = dst;
	z.avail_out = BUF_MAX;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END)
		die("deflate failed", "gzip");
	deflateEnd(&z);
	return z.total_out;
}

/* Write one fuzz_idx input: the prefix, then the two files. */
static void idx_input(const char *name, int gzip, const uint8_t *im, size_t nim,
                      const uint8_t *lb, size_t nlb)
{
	uint8_t b[3 + 2 * BUF_MAX];

	b[0] = (uint8_t)(nim >> 8);
	b[1] = (uint8_t)nim;
	b[2] = (uint8_t)gzip;
	memcpy(b + 3, im, nim);
	memcpy(b + 3 + nim, lb, nlb);
	write_file("idx", name, b, 3 + nim + nlb);
}

static void idx_corpus(void)
{
	static const uint8_t lab[] = { 7, 0, 9, 3 };
	uint8_t im[BUF_MAX], lb[64], gim[BUF_MAX], glb[64];
	size_t nim, nlb;

	nim = images(im, 0x803, 1, 1, 1, 1);
	nlb = labels(lb, 0x801, 1, lab, 1);
	idx_input("ok-1x1x1-plain", 0, im, nim, lb, nlb);
	nim = images(im, 0x803, 1, 28, 28, 784);
	idx_input("ok-1x28x28-plain", 0, im, nim, lb, nlb);
	nim = images(im, 0x803, 3, 2, 3, 18);
	nlb = labels(lb, 0x801, 3, lab, 3);
	idx_input("ok-3x2x3-gzip-images", 1, im, nim, lb, nlb);
	idx_input("ok-3x2x3-gzip-labels", 2, im, nim, lb, nlb);
	nim = images(im, 0x803, 4, 4, 4, 64);
	nlb = labels(lb, 0x801, 4, lab, 4);
	idx_input("ok-4x4x4-gzip-both", 3, im, nim, lb, nlb);
	/* Left plain by the target, but gzip streams themselves: mutations corrupt them. */
	idx_input("ok-4x4x4-gz-files", 0, gim, gzip_bytes(gim, im, nim), glb,
	          gzip_bytes(glb, lb, nlb));

	nim = images(im, 0x801, 1, 1, 1, 1);
	nlb = labels(lb, 0x801, 1, lab, 1);
	idx_input("bad-images-magic", 0, im, nim, lb, nlb);
	nim = images(im, 0x803, 1, 1, 1, 1);
	nlb = labels(lb, 0x801, 1, (const uint8_t[]){ 10 }, 1);
	idx_input("bad-label-10", 0, im, nim, lb, nlb);
	nlb = labels(lb, 0x801, 2, lab, 2);
	idx_input("bad-counts-disagree", 0, im, nim, lb, nlb);
	nim = images(im, 0x803, 2, 2, 2, 5);
	idx_input("bad-images-truncated", 1, im, nim, lb, nlb);
	nim = images(im, 0x803, 2, 1, 1, 3);
	idx_input("bad-images-trailing-byte", 0, im, nim, lb, nlb);
	nim = images(im, 0x803, 0, 28, 28, 0);
	idx_input("bad-zero-images", 0, im, nim, lb, nlb);
}

/* ---- Models -------------------------------------------------------------------------- */

/* A network saved by nb_net_save(), read back into b; returns its length. */
static size_t saved_model(uint8_t *b, const char *name, const nb_net_config *cfg)
{
	char path[1024], msg[NB_MSG_MAX];
	nb_net *net;
	FILE *f;
	size_t n;

	snprintf(path, sizeof path, "%s/model/%s", out_dir, name);
	if (nb_net_new(cfg, &net, msg) != NB_OK || nb_net_save(net, path, msg) != NB_OK)
		die(msg, name);
	nb_net_free(net);
	f = fopen(path, "rb");
	if (!f)
		die("cannot read back", path);
	n = fread(b, 1, BUF_MAX, f);
	fclose(f);
	return n;
}

/* Make the checksum (the last 8 bytes) valid again after a change. */
static void resum(uint8_t *b, size_t n)
{
	uint64_t sum = XXH3_64bits(b, n - 8);

	for (int i = 0; i < 8; i++)
		b[n - 8 + i] = (uint8_t)(sum >> (8 * i));
}

static void model_corpus(void)
{
	nb_net_config cfg = { .n_layers = 3, .sizes = (const size_t[]){ 2, 3, 1 }, .seed = 1 };
	uint8_t b[BUF_MAX];
	size_t n;

	n = saved_model(b, "ok-2-3-1-sigmoid-quadratic", &cfg);
	write_file("model", "bad-truncated", b, 30);
	write_file("model", "bad-extra-byte", b, n + 1);
	b[100] ^= 0x10;
	write_file("model", "bad-checksum", b, n);
	b[100] ^= 0x10;
	b[8] = 2;
	write_file("model", "bad-version-2", b, n);
	b[8] = 1;
	for (int i = 0; i < 8; i++)  /* weight 5 of layer 0: a quiet NaN, 0x7ff8000000000000 */
		b[68 + 8 * 5 + i] = i == 7 ? 0x7f : i == 6 ? 0xf8 : 0;
	resum(b, n);
	write_file("model", "bad-nan-weight", b, n);

	cfg = (nb_net_config){ .n_layers = 3, .sizes = (const size_t[]){ 3, 4, 2 },
	                       .hidden = NB_RELU, .output = NB_SOFTMAX,
	                       .cost = NB_CROSS_ENTROPY, .init = NB_INIT_SCALED, .seed = 12345 };
	n = saved_model(b, "ok-3-4-2-relu-softmax-xent", &cfg);
	b[24 + 8 * 3] = NB_RELU;  /* the output activation */
	resum(b, n);
	write_file("model", "bad-xent-relu-output", b, n);
	b[24 + 8 * 3] = NB_SOFTMAX;
	b[12] = 0;  /* header length 0 */
	resum(b, n);
	write_file("model", "bad-header-length", b, n);

	cfg = (nb_net_config){ .n_layers = 2, .sizes = (const size_t[]){ 1, 1 },
	                       .hidden = NB_TANH, .output = NB_TANH, .seed = 7 };
	saved_model(b, "ok-1-1-tanh", &cfg);
	cfg = (nb_net_config){ .n_layers = 4, .sizes = (const size_t[]){ 4, 2, 2, 3 },
	                       .hidden = NB_TANH, .output = NB_RELU, .seed = 99 };
	saved_model(b, "ok-4-2-2-3-tanh-relu", &cfg);
	cfg = (nb_net_config){ .n_layers = 2, .sizes = (const size_t[]){ 2, 2 },
	                       .output = NB_SIGMOID, .cost = NB_CROSS_ENTROPY, .seed = 3 };
	saved_model(b, "ok-2-2-sigmoid-xent", &cfg);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: make_corpus DIR (writes DIR/idx/ and DIR/model/)\n");
		return 2;
	}
	out_dir = argv[1];
	idx_corpus();
	model_corpus();
	return 0;
}
