/* op_conv.c -- convolution and pooling over images, NCHW, with the semantics of PyTorch's
 * torch.nn.functional (cross-correlation, OIHW weights, stride, zero padding). They are
 * built from one pair of ops: im2col, which lays every window of an image out as a
 * column, and col2im, its adjoint, which adds columns back into an image. Each is the
 * other's backward rule, so a convolution's gradient is itself made of ops and has
 * derivatives of any order:
 *   conv2d(x, w)   = w as (O, C*KH*KW) times the windows of all images (C*KH*KW, N*L),
 *                    one product for the batch, its result (O, N, L) permuted to N first
 *   max_pool2d(x)  = max_axis over each window, avg_pool2d(x) = mean_axis
 * with L = OH * OW window positions, OH = (H + 2 pad - KH) / stride + 1. */
#include <stdint.h>
#include <string.h>

#include "nabla_int.h"

/* The window of a node: height, width, stride, padding. */
enum { WIN_H, WIN_W, WIN_S, WIN_P };

/* The image (C, H, W) and window of an im2col: x is the image for im2col, the output for
 * col2im. For each channel c, window offset (ki, kj) and position (oh, ow), visit(image
 * index or SIZE_MAX outside the padded border, column index). */
struct geometry {
	size_t n, c, h, w, kh, kw, s, p, oh, ow;
};

static struct geometry geometry(const nb_tensor *image, const uint32_t win[4])
{
	struct geometry g = { image->dim[0], image->dim[1], image->dim[2], image->dim[3],
		              win[WIN_H], win[WIN_W], win[WIN_S], win[WIN_P], 0, 0 };

	g.oh = (g.h + 2 * g.p - g.kh) / g.s + 1;
	g.ow = (g.w + 2 * g.p - g.kw) / g.s + 1;
	return g;
}

/* The window positions ow whose column iw = ow s + kj - p falls inside a row of width w:
 * [*lo, *hi). */
static void inside(const struct geometry *g, size_t kj, size_t *lo, size_t *hi)
{
	size_t first = kj >= g->p ? 0 : (g->p - kj + g->s - 1) / g->s;
	size_t last = g->w + g->p > kj ? (g->w + g->p - kj - 1) / g->s + 1 : 0;

	*lo = first < g->ow ? first : g->ow;
	*hi = last < g->ow ? last : g->ow;
	if (*hi < *lo)
		*hi = *lo;
}

/* n values of an image row to a column's, or added back: the image and the columns are
 * different tensors, so the loops can be vectorised; the sum four at a time, which GCC
 * vectorizes at -O2 (where it leaves a loop with a remainder alone). */
static inline void copy_run(double *restrict row, double *restrict col, size_t n, bool gather)
{
	size_t i = 0;

	if (gather) {
		memcpy(col, row, n * sizeof *col);
		return;
	}
	for (; i + 4 <= n; i += 4) {
		row[i] += col[i];
		row[i + 1] += col[i + 1];
		row[i + 2] += col[i + 2];
		row[i + 3] += col[i + 3];
	}
	for (; i < n; i++)
		row[i] += col[i];
}

/* One row of one window offset kj, whose positions [lo, hi) fall inside the image:
 * copy the image's values into col (zeros outside the image), or add col back into the
 * image. Positions are visited in order, so that a scatter adds in the same order
 * whatever the path. */
static inline void window_row(const struct geometry *g, double *row, double *col, size_t kj,
                              size_t lo, size_t hi, bool gather)
{
	if (row && lo == 0 && hi == g->ow && g->s == 1) {  /* the common case: all inside */
		copy_run(row + kj - g->p, col, g->ow, gather);
		return;
	}
	if (gather) {
		memset(col, 0, lo * sizeof *col);
		memset(col + hi, 0, (g->ow - hi) * sizeof *col);
	}
	if (row == NULL || hi == lo) {  /* a padding row: all zeros, nothing to add */
		if (gather)
			memset(col + lo, 0, (hi - lo) * sizeof *col);
		return;
	}
	row += lo * g->s + kj - g->p;
	if (g->s == 1)
		copy_run(row, col + lo, hi - lo, gather);
	else if (gather)
		for (size_t ow = lo; ow < hi; ow++, row += g->s)
			col[ow] = *row;
	else
		for (size_t ow = lo; ow < hi; ow++, row += g->s)
			*row += col[ow];
}

/* Copy (gather) or add (scatter) between the image and the columns of every window:
 * per image (N, C, KH*KW, L), or wide, all images side by side (C*KH*KW, N*L). */
static void windows(const struct geometry *g, double *image, double *cols, bool wide,
                    bool gather)
{
	size_t kk = g->kh * g->kw, l = g->oh * g->ow, step = wide ? g->n * l : l;

	for (size_t n = 0; n < g->n; n++)
		for (size_t c = 0; c < g->c; c++) {
			double *img = image + (n * g->c + c) * g->h * g->w;
			double *col = wide ? cols + c * kk * step + n * l
			                   : cols + (n * g->c + c) * kk * l;

			for (size_t ki = 0; ki < g->kh; ki++)
				for (size_t kj = 0; kj < g->kw; kj++, col += step) {
					size_t lo, hi;

					inside(g, kj, &lo, &hi);  /* the same for every row */
					for (size_t oh = 0; oh < g->oh; oh++) {
						size_t ih = oh * g->s + ki;  /* + pad, in padded rows */
						bool in = ih >= g->p && ih - g->p < g->h;

						window_row(g, in ? img + (ih - g->p) * g->w : NULL,
						           col + oh * g->ow, kj, lo, hi, gather);
					}
				}
		}
}

static void im2col_forward(nb_tensor *y)
{
	struct geometry g = geometry(y->in[0], y->attr.win);

	windows(&g, y->in[0]->value, y->value, y->attr.keepdim, true);
}

static void col2im_forward(nb_tensor *y)
{
	struct geometry g = geometry(y, y->attr.win);

	memset(y->value, 0, y->size * sizeof *y->value);
	windows(&g, y->value, y->in[0]->value, y->in[0]->rank == 2, false);
}

static nb_tensor *col2im(nb_tape *t, nb_tensor *cols, const nb_tensor *image,
                         const uint32_t *win);

/* dx = col2im(dy): every column's gradient added back where it was read. */
static void im2col_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb__grad_add(t, y->in[0], col2im(t, dy, y->in[0], y->attr.win));
}

static nb_tensor *im2col(nb_tape *t, nb_tensor *x, const uint32_t *win, bool flat);

/* dcols = im2col(dy), in the columns' own shape. */
static void col2im_backward(nb_tape *t, nb_tensor *y, nb_tensor *dy)
{
	nb__grad_add(t, y->in[0], im2col(t, dy, y->attr.win, y->in[0]->rank == 2));
}

const struct nb_op nb__op_im2col = {
	.name = "im2col", .arity = 1, .forward = im2col_forward, .backward = im2col_backward,
};
const struct nb_op nb__op_col2im = {
	.name = "col2im", .arity = 1, .forward = col2im_forward, .backward = col2im_backward,
};

/* The columns of x (N, C, H, W): (N, C, KH*KW, OH*OW), or wide, those of all images side
 * by side, (C*KH*KW, N*OH*OW): the operand of a convolution's product, which then
 * multiplies the whole batch at once (attr.keepdim says which). */
static nb_tensor *im2col(nb_tape *t, nb_tensor *x, const uint32_t *win, bool wide)
{
	struct nb_attr attr = { .keepdim = wide };
	struct geometry g;
	size_t dim[4];

	memcpy(attr.win, win, sizeof attr.win);
	g = geometry(x, win);
	dim[0] = g.n;
	dim[1] = g.c;
	dim[2] = g.kh * g.kw;
	dim[3] = g.oh * g.ow;
	if (wide) {
		dim[0] = g.c * dim[2];
		dim[1] = g.n * dim[3];
	}
	return nb__record(t, &nb__op_im2col, &x, &attr, wide ? 2 : 4, dim);
}

/* The image of image's shape the columns cols add up to. */
static nb_tensor *col2im(nb_tape *t, nb_tensor *cols, const nb_tensor *image,
                         const uint32_t *win)
{
	struct nb_attr attr = { 0 };

	memcpy(attr.win, win, sizeof attr.win);
	return nb__record(t, &nb__op_col2im, &cols, &attr, 4, image->dim);
}

/* x is a batch of images and the window fits in them once padded; an error naming op
 * otherwise. The sizes multiplied here are those of x, which exists, so they fit. */
static bool window_ok(nb_tape *t, const char *op, const nb_tensor *x, size_t kh, size_t kw,
                      size_t stride, size_t pad)
{
	char s[NB_MSG_MAX];

	if (x->rank != 4) {
		nb__fail(t, NB_ERANK, "%s: the input must have rank 4 (N x C x H x W): %s", op,
		         nb__shape_str(x->rank, x->dim, s));
		return false;
	}
	if (stride == 0 || kh == 0 || kw == 0) {
		nb__fail(t, NB_EINVAL, "%s: %s is 0", op, stride ? "the window" : "the stride");
		return false;
	}
	if (stride > UINT32_MAX || kh > UINT32_MAX || kw > UINT32_MAX || pad > UINT32_MAX) {
		nb__fail(t, NB_EINVAL, "%s: a window, stride or padding over %u", op, UINT32_MAX);
		return false;
	}
	if (pad > x->dim[2] || pad > x->dim[3] || kh > x->dim[2] + 2 * pad ||
	    kw > x->dim[3] + 2 * pad) {
		nb__fail(t, NB_ESHAPE, "%s: a %zux%zu window with padding %zu does not fit in "
		         "images of %zux%zu", op, kh, kw, pad, x->dim[2], x->dim[3]);
		return false;
	}
	return true;
}

nb_tensor *nb_conv2d(nb_tape *t, nb_tensor *x, nb_tensor *w, size_t stride, size_t pad)
{
	nb_tensor *in[2] = { x, w }, *cols, *y;
	char sx[NB_MSG_MAX], sw[NB_MSG_MAX];
	size_t mark = t ? t->n : 0, n, o, ckk, l;
	uint32_t win[4];
	struct geometry g;

	if (!nb__args_ok(t, "conv2d", in, 2))
		return NULL;
	if (w->rank != 4)
		return nb__fail(t, NB_ERANK, "conv2d: weights must have rank 4 (O x C x KH x KW): %s",
		                nb__shape_str(w->rank, w->dim, sw));
	if (!window_ok(t, "conv2d", x, w->dim[2], w->dim[3], stride, pad))
		return NULL;
	if (x->dim[1] != w->dim[1])
		return nb__fail(t, NB_ESHAPE, "conv2d: the input %s has %zu channels, the weights "
		                "%s expect %zu", nb__shape_str(x->rank, x->dim, sx), x->dim[1],
		                nb__shape_str(w->rank, w->dim, sw), w->dim[1]);
	win[WIN_H] = (uint32_t)w->dim[2];
	win[WIN_W] = (uint32_t)w->dim[3];
	win[WIN_S] = (uint32_t)stride;
	win[WIN_P] = (uint32_t)pad;
	g = geometry(x, win);
	n = g.n;
	o = w->dim[0];
	ckk = g.c * g.kh * g.kw;
	l = g.oh * g.ow;
	/* one product for the whole batch, (O, C*KH*KW) (C*KH*KW, N*L): its gradients are one
	 * product each too, where per image they would be N, and dw a sum of N */
	cols = im2col(t, x, win, true);
	y = nb_matmul(t, nb_reshape(t, w, 2, (size_t[]){ o, ckk }), cols);
	y = nb_permute(t, nb_reshape(t, y, 3, (size_t[]){ o, n, l }), (const int[]){ 1, 0, 2 });
	y = nb_reshape(t, y, 4, (size_t[]){ n, o, g.oh, g.ow });
	return nb__undo(t, mark, y);
}

/* The windows of each channel reduced by reduce along their axis: pooling. */
static nb_tensor *pool(nb_tape *t, const char *op, nb_tensor *x, size_t k, size_t stride,
                       nb_tensor *(*reduce)(nb_tape *, nb_tensor *, int, int))
{
	size_t mark = t ? t->n : 0;
	uint32_t win[4] = { (uint32_t)k, (uint32_t)k, (uint32_t)stride, 0 };
	struct geometry g;
	nb_tensor *y;

	if (!nb__args_ok(t, op, &x, 1) || !window_ok(t, op, x, k, k, stride, 0))
		return NULL;
	g = geometry(x, win);
	y = nb_reshape(t, reduce(t, im2col(t, x, win, false), 2, 0), 4,
	               (size_t[]){ g.n, g.c, g.oh, g.ow });
	return nb__undo(t, mark, y);
}

nb_tensor *nb_max_pool2d(nb_tape *t, nb_tensor *x, size_t k, size_t stride)
{
	return pool(t, "max_pool2d", x, k, stride, nb_max_axis);
}

nb_tensor *nb_avg_pool2d(nb_tape *t, nb_tensor *x, size_t k, size_t stride)
{
	return pool(t, "avg_pool2d", x, k, stride, nb_mean_axis);
}
