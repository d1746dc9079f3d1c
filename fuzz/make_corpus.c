/* make_corpus.c -- write the fuzzers' seed corpora, fuzz/corpus/idx/, fuzz/corpus/model/,
 * fuzz/corpus/tensors/ and fuzz/corpus/tape/: a few small valid inputs and a few invalid
 * ones, each named for what it is. The files are committed; every build compiles this program, and
 * `make corpus` (in the build directory, e.g. make -C build corpus) runs it to write them
 * again into the source tree, byte for byte the same unless this file changed.
 *
 * An IDX input is what fuzz_idx.c reads: the images file's length (2 bytes, big-endian),
 * which files to gzip (1 byte: bit 0 images, bit 1 labels), the images file, the labels
 * file. Valid models come from nb_net_save(); invalid ones are saved files changed by
 * hand, most with their checksum made valid again so that the later checks see them; so
 * are tensor files, from nb_tensors_save(). A tape input is a program of calls in the
 * format of fuzz_tape.h. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nabla_nn.h>
#include <xxhash.h>
#include <zlib.h>

#include "fuzz_tape.h"

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
	uint8_t b[BUF_MAX] = { 0 };  /* bad-extra-byte's extra byte is 0 */
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

/* ---- Tensor files ------------------------------------------------------------------- */

/* Tensors saved by nb_tensors_save(), read back into b; returns the file's length. */
static size_t saved_tensors(uint8_t *b, const char *name, const nb_named_tensor *t, size_t n,
                            const char *desc)
{
	char path[1024], msg[NB_MSG_MAX];
	FILE *f;
	size_t len;

	snprintf(path, sizeof path, "%s/tensors/%s", out_dir, name);
	if (nb_tensors_save(path, t, n, desc, msg) != NB_OK)
		die(msg, name);
	f = fopen(path, "rb");
	if (!f)
		die("cannot read back", path);
	len = fread(b, 1, BUF_MAX, f);
	fclose(f);
	return len;
}

/* A network saved by nb_net_save() among the tensor files: a version-1 file. */
static void saved_network(const char *name)
{
	nb_net_config cfg = { .n_layers = 2, .sizes = (const size_t[]){ 2, 1 }, .seed = 5 };
	char path[1024], msg[NB_MSG_MAX];
	nb_net *net;

	snprintf(path, sizeof path, "%s/tensors/%s", out_dir, name);
	if (nb_net_new(&cfg, &net, msg) != NB_OK || nb_net_save(net, path, msg) != NB_OK)
		die(msg, name);
	nb_net_free(net);
}

static void tensors_corpus(void)
{
	static double w[6] = { 0.5, -1.0, 2.0, 0.25, -0.0, 3.0 }, s[1] = { 7.0 };
	static double k[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, special[4];
	static const uint64_t bits[4] = { 0x7ff0000000000123u, 0xfff0000000000000u,
	                                  0x0000000000000001u, 0x8000000000000000u };
	nb_named_tensor ws[2] = { { "w", 2, { 2, 3 }, w }, { "s", 0, { 0 }, s } };
	nb_named_tensor all[3] = {
		{ "layer1.weight", 4, { 1, 2, 2, 2 }, k },
		{ "nan-inf-subnormal-0", 1, { 4 }, special },
		{ "bias", 3, { 2, 1, 1 }, w },
	};
	uint8_t b[BUF_MAX];
	size_t n;

	memcpy(special, bits, sizeof special);
	saved_tensors(b, "ok-empty", NULL, 0, NULL);
	saved_tensors(b, "ok-ranks-4-1-3-special-values", all, 3, "three tensors");
	n = saved_tensors(b, "ok-hi-w-2x3-s-scalar", ws, 2, "hi");
	write_file("tensors", "bad-truncated", b, 60);
	b[60] ^= 0x10;
	write_file("tensors", "bad-checksum", b, n);
	b[60] ^= 0x10;
	b[31] = 5;  /* w's rank */
	resum(b, n);
	write_file("tensors", "bad-rank-5", b, n);
	b[31] = 2;
	b[43] = 0;  /* w's second dimension */
	resum(b, n);
	write_file("tensors", "bad-zero-dim", b, n);
	b[43] = 3;
	b[103] = 'w';  /* s renamed w */
	resum(b, n);
	write_file("tensors", "bad-duplicate-name", b, n);
	b[103] = 's';
	b[12] = 3;  /* a tensor count of 3 */
	resum(b, n);
	write_file("tensors", "bad-count", b, n);
	saved_network("bad-version-1-model");
}

/* ---- Tape programs ------------------------------------------------------------------- */

/* Operand bytes of fuzz_tape.h: a plain shape of rank r with small dims 1..8, a handle
 * index, NULL, value bytes ((b - 136) / 8, or a special value), a special dim. */
#define SHAPE0 0
#define SHAPE1(a) 1, (a) - 1
#define SHAPE2(a, b) 2, (a) - 1, (b) - 1
#define SHAPE3(a, b, c) 3, (a) - 1, (b) - 1, (c) - 1
#define H(i) (i)
#define HNULL 0xff
#define X(v) (uint8_t)(136 + 8 * (v))
#define DIM(k) (FT_DIM_SPECIAL + (k))

struct prog {
	uint8_t b[BUF_MAX];
	size_t n;
};

static void emit(struct prog *p, const uint8_t *bytes, size_t n)
{
	if (p->n + n > BUF_MAX)
		die("program too long", "tape");
	memcpy(p->b + p->n, bytes, n);
	p->n += n;
}

#define EMIT(p, ...) emit(p, (const uint8_t[]){ __VA_ARGS__ }, \
                          sizeof((const uint8_t[]){ __VA_ARGS__ }))

/* Leaves, ops on them that the oracle recomputes, and values read after each change. */
static void tape_oracle(struct prog *p)
{
	EMIT(p, 0);
	EMIT(p, FT_VARIABLE, SHAPE2(2, 3), 140, 3);             /* 0: a */
	EMIT(p, FT_CONSTANT, SHAPE2(2, 3), 150, 5);             /* 1: b */
	EMIT(p, FT_BINARY, FT_ADD, H(0), H(1));                 /* 2 */
	EMIT(p, FT_BINARY, FT_MUL, H(0), H(1));                 /* 3 */
	EMIT(p, FT_UNARY, FT_EXP, H(0));                        /* 4 */
	EMIT(p, FT_BINARY, FT_DIV, H(1), H(0));                 /* 5 */
	EMIT(p, FT_BINARY, FT_SUB, H(0), H(1));                 /* 6 */
	EMIT(p, FT_VALUE, H(2));
	EMIT(p, FT_SET, H(0), FT_SET_RIGHT, FT_V0, 1);          /* 0, -0, 1, -1, 0.5, 2 */
	EMIT(p, FT_VALUE, H(3));
	EMIT(p, FT_SET, H(1), FT_SET_RIGHT, FT_V1E300, 1);      /* 1e300, ..., NaN, DBL_MIN */
	EMIT(p, FT_REPLAY);
	EMIT(p, FT_AGAIN);
	EMIT(p, FT_SET, H(0), FT_SET_LESS, 0, 0);               /* NB_ESHAPE */
	EMIT(p, FT_CLEAR_ERROR);
	EMIT(p, FT_SET, H(2), FT_SET_RIGHT, 0, 0);              /* NB_EINVAL: not a leaf */
	EMIT(p, FT_CLEAR_ERROR);
	EMIT(p, FT_VALUE, H(4));
}

/* Views on the target's buffer, written and touched, and stepped by SGD in place. */
static void tape_views(struct prog *p)
{
	EMIT(p, 0);
	EMIT(p, FT_CONSTANT_VIEW, SHAPE1(4), 130, 7);           /* 0: u */
	EMIT(p, FT_VARIABLE_VIEW, SHAPE1(4), 145, 11);          /* 1: w */
	EMIT(p, FT_BINARY, FT_MUL, H(1), H(0));                 /* 2 */
	EMIT(p, FT_UNARY, FT_SUM, H(2));                        /* 3 */
	EMIT(p, FT_BACKWARD, H(3), HNULL);
	EMIT(p, FT_SGD, 0, H(1), 0, 0, 0);                      /* w -= 0.1 u */
	EMIT(p, FT_VALUE, H(2));
	EMIT(p, FT_WRITE_VIEW, 0, 160, 1);
	EMIT(p, FT_VALUE, H(3));
	EMIT(p, FT_SET, H(1), FT_SET_RIGHT, 120, 9);
	EMIT(p, FT_REPLAY);
	EMIT(p, FT_TOUCH, H(2));                                /* NB_EINVAL */
	EMIT(p, FT_CLEAR_ERROR);
	EMIT(p, FT_TOUCH, H(0));
	EMIT(p, FT_WRITE_VIEW, 1, FT_VNAN, 1);
	EMIT(p, FT_VALUE, H(2));
}

/* A sigmoid layer with the quadratic cost: backward, SGD with momentum, Adam, replay,
 * and the cross-entropy costs and products with transposed operands. */
static void tape_layer(struct prog *p)
{
	EMIT(p, 0);
	EMIT(p, FT_VARIABLE, SHAPE2(3, 2), 128, 5);             /* 0: w */
	EMIT(p, FT_CONSTANT, SHAPE2(2, 4), 140, 3);             /* 1: x */
	EMIT(p, FT_VARIABLE, SHAPE2(3, 1), 136, 1);             /* 2: b */
	EMIT(p, FT_CONSTANT, SHAPE2(3, 4), 136, 8);             /* 3: y, 0 and 1 */
	EMIT(p, FT_BINARY, FT_MATMUL, H(0), H(1));              /* 4: w x */
	EMIT(p, FT_BINARY, FT_ADD, H(4), H(2));                 /* 5: z = w x + b */
	EMIT(p, FT_UNARY, FT_SIGMOID, H(5));                    /* 6 */
	EMIT(p, FT_BINARY, FT_QUADRATIC_COST, H(6), H(3));      /* 7 */
	EMIT(p, FT_BACKWARD, H(7), HNULL);
	EMIT(p, FT_GRAD, H(0));
	EMIT(p, FT_GRAD, H(2));
	EMIT(p, FT_SGD, 1, H(0), H(2), 0, 2, 1);                /* eta 0.1, momentum 0.9 */
	EMIT(p, FT_REPLAY);
	EMIT(p, FT_BACKWARD, H(7), HNULL);
	EMIT(p, FT_ADAM, 1, H(0), H(2), 7, 2, 3, 0, 0, 1);      /* PyTorch's defaults, step 1 */
	EMIT(p, FT_VALUE, H(7));
	EMIT(p, FT_BINARY, FT_SIGMOID_XENT, H(5), H(3));
	EMIT(p, FT_AXIS, FT_SOFTMAX, H(5), 1);                  /* axis 0 */
	EMIT(p, FT_BINARY, FT_SOFTMAX_XENT, H(5), H(3));
	EMIT(p, FT_MATMUL_T, H(0), H(1), 1);                    /* w^T x: NB_ESHAPE */
	EMIT(p, FT_CLEAR_ERROR);
	EMIT(p, FT_MATMUL_T, H(1), H(0), 3);                    /* x^T w^T */
	EMIT(p, FT_BACKWARD, H(7), HNULL);
	EMIT(p, FT_DOT);
}

/* Gradients of gradients: a Hessian-vector product, seeds, and a seedless sweep from a
 * tensor that is not a scalar (NB_EINVAL). */
static void tape_second_order(struct prog *p)
{
	EMIT(p, 0);
	EMIT(p, FT_VARIABLE, SHAPE1(3), 132, 6);                /* 0: x */
	EMIT(p, FT_UNARY, FT_TANH, H(0));                       /* 1 */
	EMIT(p, FT_BINARY, FT_MUL, H(1), H(1));                 /* 2 */
	EMIT(p, FT_UNARY, FT_SUM, H(2));                        /* 3 */
	EMIT(p, FT_GRADIENTS, H(3), HNULL, 1, H(0));            /* 4: g */
	EMIT(p, FT_CONSTANT, SHAPE1(3), 144, 1);                /* 5: v */
	EMIT(p, FT_BINARY, FT_MUL, H(4), H(5));                 /* 6 */
	EMIT(p, FT_UNARY, FT_SUM, H(6));                        /* 7 */
	EMIT(p, FT_GRADIENTS, H(7), HNULL, 1, H(0));            /* 8: H v */
	EMIT(p, FT_VALUE, H(8));
	EMIT(p, FT_SET, H(0), FT_SET_RIGHT, 120, 13);
	EMIT(p, FT_REPLAY);
	EMIT(p, FT_GRADIENTS, H(3), H(3), 2, H(0), H(1));
	EMIT(p, FT_BACKWARD, H(1), HNULL);                      /* NB_EINVAL */
	EMIT(p, FT_CLEAR_ERROR);
	EMIT(p, FT_BACKWARD, H(1), H(0));
	EMIT(p, FT_GRAD, H(0));
}

/* Marks and rewinds: gradients dropped with their nodes, marks past the end, a reset. */
static void tape_rewind(struct prog *p)
{
	EMIT(p, 0);
	EMIT(p, FT_VARIABLE, SHAPE2(2, 2), 140, 1);             /* 0: x */
	EMIT(p, FT_MARK);
	EMIT(p, FT_UNARY, FT_EXP, H(0));                        /* 1 */
	EMIT(p, FT_BINARY, FT_ADD, H(1), H(0));                 /* 2 */
	EMIT(p, FT_UNARY, FT_SUM, H(2));                        /* 3 */
	EMIT(p, FT_BACKWARD, H(3), HNULL);
	EMIT(p, FT_GRAD, H(0));                                 /* 4 */
	EMIT(p, FT_MARK);
	EMIT(p, FT_SCALE, H(4), X(2));
	EMIT(p, FT_REWIND, 0);                                  /* the newest mark */
	EMIT(p, FT_REWIND, 1);                                  /* the first: drops 1..4 */
	EMIT(p, FT_GRAD, H(0));                                 /* NULL: dropped */
	EMIT(p, FT_UNARY, FT_LOG, H(0));
	EMIT(p, FT_REWIND, 2);                                  /* the end + 1: NB_EINVAL */
	EMIT(p, FT_CLEAR_ERROR);
	EMIT(p, FT_REWIND, 0xff);                               /* SIZE_MAX */
	EMIT(p, FT_CLEAR_ERROR);
	EMIT(p, FT_RESET);
	EMIT(p, FT_SCALAR, FT_V1);
	EMIT(p, FT_FILL, SHAPE1(3), FT_V0);
	EMIT(p, FT_AGAIN);
}

/* Shapes nothing can hold: a size that overflows with the node's header, sizes that
 * overflow, a size too big for the allocator, bad ranks, NULL dims, a zero dim; each
 * refused, and the tape usable again after nb_tape_clear_error(). */
static void tape_shapes(struct prog *p)
{
	EMIT(p, 0);
	EMIT(p, FT_CONSTANT, 1, DIM(FT_DIM_SIZE_MAX_8), 0, 0);
	EMIT(p, FT_CLEAR_ERROR);
	EMIT(p, FT_FILL, 2, DIM(FT_DIM_2_40), DIM(FT_DIM_2_40), FT_V1);
	EMIT(p, FT_CLEAR_ERROR);
	EMIT(p, FT_VARIABLE, 1, DIM(FT_DIM_2_20), 0, 0);
	EMIT(p, FT_CLEAR_ERROR);
	EMIT(p, FT_CONSTANT, 6, 0, 0);                          /* rank 5 */
	EMIT(p, FT_CLEAR_ERROR);
	EMIT(p, FT_CONSTANT, FT_SHAPE_NULL_DIMS, 0, 0);
	EMIT(p, FT_CLEAR_ERROR);
	EMIT(p, FT_FILL, 2, 1, DIM(FT_DIM_0), FT_V2);
	EMIT(p, FT_CLEAR_ERROR);
	EMIT(p, FT_VARIABLE, SHAPE1(4), 140, 1);                /* 0 */
	EMIT(p, FT_SHAPE, FT_BROADCAST_TO, H(0), FT_SHAPE_DERIVED + FT_PREPEND, H(0),
	     DIM(FT_DIM_2_40));
	EMIT(p, FT_CLEAR_ERROR);
	EMIT(p, FT_SHAPE, FT_RESHAPE, H(0), SHAPE2(2, 2));      /* 1 */
	EMIT(p, FT_SHAPE, FT_BROADCAST_TO, H(1), FT_SHAPE_DERIVED + FT_PREPEND, H(1), 2);
	EMIT(p, FT_SHAPE, FT_REDUCE_TO, H(2), FT_SHAPE_DERIVED + FT_ONE_AT, H(2), 1);
	EMIT(p, FT_AXIS, FT_SUM_AXIS, H(2), 2);                 /* axis 1 */
	EMIT(p, FT_SHAPE, FT_RESHAPE, H(0), 2, DIM(FT_DIM_2_32), DIM(FT_DIM_2_32));
	EMIT(p, FT_CLEAR_ERROR);
	EMIT(p, FT_UNARY, FT_TRANSPOSE, H(0));                  /* NB_ERANK */
	EMIT(p, FT_CLEAR_ERROR);
	EMIT(p, FT_AXIS, FT_SOFTMAX, H(1), 0);                  /* axis -1: NB_EINVAL */
}

/* A graph of nodes of 512 doubles, so that chunks are added often, recorded with the
 * tape's allocation fail_at failing (0: none), then a sweep whose first allocation fails
 * when fail_sweep is set, and the sweep again. */
static void tape_oom(struct prog *p, uint8_t fail_at, uint8_t fail_sweep)
{
	EMIT(p, fail_at);
	EMIT(p, FT_VARIABLE, SHAPE3(8, 8, 8), 140, 3);          /* 0 */
	EMIT(p, FT_UNARY, FT_TANH, H(0));                       /* 1 */
	EMIT(p, FT_BINARY, FT_MUL, H(1), H(0));                 /* 2 */
	EMIT(p, FT_UNARY, FT_EXP, H(2));                        /* 3 */
	EMIT(p, FT_AXIS, FT_SUM_AXIS, H(3), 2);                 /* 4 */
	EMIT(p, FT_UNARY, FT_SUM, H(4));                        /* 5 */
	EMIT(p, FT_FAIL_ALLOC, fail_sweep);
	EMIT(p, FT_BACKWARD, H(5), HNULL);
	EMIT(p, FT_CLEAR_ERROR);
	EMIT(p, FT_BACKWARD, H(5), HNULL);
	EMIT(p, FT_SGD, 0, H(0), 0, 0, 0);
	EMIT(p, FT_REPLAY);
}

/* The non-finite check in recording, in a read and in replay, switched on and off. */
static void tape_finite(struct prog *p)
{
	EMIT(p, 0);
	EMIT(p, FT_CHECK_FINITE, 1);
	EMIT(p, FT_CONSTANT, SHAPE1(3), FT_VNEG1, 1);           /* 0: -1, 0.5, 2 */
	EMIT(p, FT_UNARY, FT_LOG, H(0));                        /* NB_ENONFINITE */
	EMIT(p, FT_CLEAR_ERROR);
	EMIT(p, FT_CHECK_FINITE, 0);
	EMIT(p, FT_UNARY, FT_LOG, H(0));                        /* 1: NaN, kept */
	EMIT(p, FT_SET, H(0), FT_SET_RIGHT, X(1), 8);           /* 1, 2, 3 */
	EMIT(p, FT_CHECK_FINITE, 1);
	EMIT(p, FT_SET, H(0), FT_SET_RIGHT, FT_V710, 1);        /* exp(710) overflows */
	EMIT(p, FT_UNARY, FT_EXP, H(0));                        /* NB_ENONFINITE */
	EMIT(p, FT_CLEAR_ERROR);
	EMIT(p, FT_VALUE, H(1));
	EMIT(p, FT_REPLAY);
	EMIT(p, FT_CLEAR_ERROR);
	EMIT(p, FT_DOT);
}

static void tape_corpus(void)
{
	static const struct {
		const char *name;
		void (*write)(struct prog *);
	} progs[] = {
		{ "ok-oracle-set-replay", tape_oracle },
		{ "ok-views-touch-sgd", tape_views },
		{ "ok-layer-backward-sgd-adam", tape_layer },
		{ "ok-second-order-gradients", tape_second_order },
		{ "ok-mark-rewind-reset", tape_rewind },
		{ "bad-shapes-refused", tape_shapes },
		{ "bad-non-finite-checked", tape_finite },
	};
	struct prog p;

	for (size_t i = 0; i < sizeof progs / sizeof progs[0]; i++) {
		p.n = 0;
		progs[i].write(&p);
		write_file("tape", progs[i].name, p.b, p.n);
	}
	p.n = 0;
	tape_oom(&p, 5, 0);  /* the hash-consing table */
	write_file("tape", "oom-hash-table", p.b, p.n);
	p.n = 0;
	tape_oom(&p, 6, 0);  /* the second chunk of nodes */
	write_file("tape", "oom-chunk", p.b, p.n);
	p.n = 0;
	tape_oom(&p, 0, 1);
	write_file("tape", "oom-sweep", p.b, p.n);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: make_corpus DIR (writes DIR/idx/, DIR/model/, "
		        "DIR/tensors/ and DIR/tape/)\n");
		return 2;
	}
	out_dir = argv[1];
	idx_corpus();
	model_corpus();
	tensors_corpus();
	tape_corpus();
	return 0;
}
