/* nabla_nn.h -- the network library on top of nabla: data sets, networks, training,
 * model files and files of named tensors. Everything here is written on nabla.h's public
 * calls (link with -lnabla_nn -lnabla, or pkg-config nabla_nn); only this library needs
 * zlib.
 *
 * Errors: functions that create or load take a char msg[NB_MSG_MAX] buffer (may be NULL)
 * and return a status of nabla.h; a network keeps the first error of its training and
 * evaluation calls, as a tape does (nb_net_status(), nb_net_message()).
 */
#ifndef NABLA_NN_H
#define NABLA_NN_H

#include "nabla.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Loading files: options ------------------------------------------------------- */

/** The default of nb_load_opts.max_bytes: 1 GiB, about 2.8 times what the 60,000
 * training images of MNIST or Fashion-MNIST take in memory (381 MB). */
#define NB_LOAD_MAX_BYTES ((size_t)1 << 30)

/** Options of the loaders of files: nb_dataset_load_idx_opts(), nb_dataset_load_dir_opts(),
 * nb_dataset_load_idx_part(), nb_dataset_load_dir_part(), nb_net_load_opts(),
 * nb_tensors_load() and nb_tensors_load_into(). A zero field takes its
 * default, so {0} (or a NULL pointer to options) gives what the functions without _opts
 * do. */
typedef struct nb_load_opts {
	nb_alloc_fn alloc;      /* every allocation of the load, zlib's included, and of what
	                         * it returns, for its whole life (NULL: malloc) */
	void *alloc_ud;         /* passed to alloc */
	size_t max_bytes;       /* the most memory what is loaded may take (0:
	                         * NB_LOAD_MAX_BYTES); each loader says what it counts */
} nb_load_opts;

/* ---- Data sets: the IDX format of MNIST -------------------------------------------- */

/** Images and labels in memory. x holds n rows of features = rows * cols pixels scaled to
 * [0, 1]; y the same n examples' labels one-hot (n rows of classes); label the labels.
 * Filled by nb_dataset_load*(); a caller may also build one by hand (for example a view
 * of the first examples of another), but then must not pass it to nb_dataset_free(). */
typedef struct nb_dataset {
	size_t n;
	size_t rows, cols;
	size_t features;        /* rows * cols */
	size_t classes;         /* 10 */
	double *x;              /* n x features, row-major */
	double *y;              /* n x classes, one-hot */
	unsigned char *label;   /* n labels, each < classes */
	nb_alloc_fn alloc;      /* what allocated x, y and label, set by a load, used by
	                         * nb_dataset_free() (NULL: free) */
	void *alloc_ud;         /* passed to alloc */
} nb_dataset;

/** Load an IDX image file (magic 0x00000803) and an IDX label file (0x00000801), each
 * plain or gzip-compressed. On error ds is left empty (all zero), nothing leaks, and msg
 * (NB_MSG_MAX bytes, may be NULL) says what is wrong, with the byte offset where it
 * applies, then names the file ("label 10 at byte 9 is not a digit (0..9): PATH"; the
 * path comes last so that a long one, cut at the end of msg, never hides the reason):
 * NB_ENULL, NB_EIO (cannot open or read, gzip error, or not a regular file: a FIFO, a
 * directory or a device is refused without being read, so a load never blocks),
 * NB_EFORMAT (bad magic, truncated, counts that disagree, absurd dimensions, a label
 * >= 10, a data set over the limit below), NB_ENOMEM ("out of memory ...").
 *
 * Memory: the data set takes n (8 features + 8 classes + 1) bytes (x, y and label), and a
 * load that would need more than NB_LOAD_MAX_BYTES is refused from the image header,
 * before any data is read, with NB_EFORMAT ("60000 images of 28 x 28 (byte 4) would take
 * ... bytes, over the limit of ..."). nb_dataset_load_idx_opts() takes another limit. A
 * load never allocates for data a file does not hold: the arrays grow as the bytes
 * arrive, so a short file claiming a huge count is reported as truncated having taken
 * little memory. While it scales them, a load also holds the n features pixel bytes. */
int nb_dataset_load_idx(const char *images, const char *labels, nb_dataset *ds, char msg[NB_MSG_MAX]);

/** nb_dataset_load_idx() with options (NULL: the defaults): every allocation, zlib's
 * included, goes through opts->alloc, which ds keeps for nb_dataset_free(), and
 * opts->max_bytes bounds the data set's n (8 features + 8 classes + 1) bytes. */
int nb_dataset_load_idx_opts(const char *images, const char *labels,
                             const nb_load_opts *opts, nb_dataset *ds, char msg[NB_MSG_MAX]);

/** nb_dataset_load_idx_opts() for part `part` of `parts` (0 <= part < parts), so that each
 * process of a data-parallel run loads only its share: of the file's n examples, part p
 * holds n / parts, plus one when p < n % parts, starting at example p * (n / parts) +
 * min(p, n % parts); so the parts, in order, are the whole file, and their sizes differ by
 * at most one. Part 0 of 1 is the whole file, as nb_dataset_load_idx_opts() loads it (the
 * same data and messages, but those about arguments start "load_idx_part: ").
 * ds->n is the part's count; when parts > n a part may be empty: NB_OK with ds->n 0,
 * ds->x, ds->y and ds->label NULL, and the file's rows, cols, features and classes (the
 * networks refuse an empty data set). A file must still hold at least one image.
 *
 * Examples before the part are skipped without being kept: a plain file is read from
 * the part's first byte (lseek), a gzip file is inflated and the bytes dropped. The file
 * is checked as far as it is read: both headers, counts that agree, the labels of the
 * part (skipped labels are not checked: a label >= 10 before or after the part is not
 * reported), and a file too short for the part is truncated ("truncated at byte 20
 * (image data of part 1 of 3 needs 28 bytes): PATH", the byte where the file ends).
 * Only a part that ends where the file's data does (the last, and an empty one, which
 * starts there) reads on to the end of the file, so only it reports bytes after the data
 * and checks a gzip stream's CRC and length; the others stop after their last example
 * (so the processes of a run may disagree about a damaged file). opts->max_bytes bounds the part's n (8 features
 * + 8 classes + 1) bytes, not the file's ("part 1 of 3 (2667 of the 8000 images of 28 x
 * 28 at byte 4) would take ... bytes, over the limit of ..."). Errors as
 * nb_dataset_load_idx(), and NB_EINVAL when parts is 0 ("load_idx_part: parts is 0 (1 or
 * more expected)") or part >= parts ("load_idx_part: part 3 of 3 (0 to 2 expected)"). */
int nb_dataset_load_idx_part(const char *images, const char *labels, size_t part, size_t parts,
                             const nb_load_opts *opts, nb_dataset *ds, char msg[NB_MSG_MAX]);

/** Load split "train" or "t10k" from directory dir in the standard MNIST layout:
 * SPLIT-images-idx3-ubyte and SPLIT-labels-idx1-ubyte, each with or without ".gz"
 * (the plain file is preferred when both exist). Errors as nb_dataset_load_idx(), and
 * NB_EINVAL for another split. */
int nb_dataset_load_dir(const char *dir, const char *split, nb_dataset *ds, char msg[NB_MSG_MAX]);

/** nb_dataset_load_dir() with options, as nb_dataset_load_idx_opts(). */
int nb_dataset_load_dir_opts(const char *dir, const char *split, const nb_load_opts *opts,
                             nb_dataset *ds, char msg[NB_MSG_MAX]);

/** nb_dataset_load_dir_opts() for one part, as nb_dataset_load_idx_part() (messages
 * about arguments start "load_dir_part: "). */
int nb_dataset_load_dir_part(const char *dir, const char *split, size_t part, size_t parts,
                             const nb_load_opts *opts, nb_dataset *ds, char msg[NB_MSG_MAX]);

/** Free what a load allocated (through the allocator the load used) and zero ds. NULL
 * does nothing. */
void nb_dataset_free(nb_dataset *ds);

/* ---- Named tensors: what files of tensors hold ------------------------------------ */

/** A named tensor: what nb_tensors_save() writes, nb_tensors_load() gives back and
 * nb_tensors_load_into() fills. Every function that takes one checks it the same way:
 * name not NULL, 1 to NB_NAME_MAX - 1 bytes (a C string, so no NUL inside), unique among
 * the tensors passed together; rank 0 to NB_MAX_RANK; dim[0..rank-1] each >= 1; data not
 * NULL. The dims of a higher rank are ignored. */
typedef struct nb_named_tensor {
	const char *name;       /* compared byte for byte */
	int rank;               /* 0 (a scalar) to NB_MAX_RANK */
	size_t dim[NB_MAX_RANK];/* dim[0..rank-1], each >= 1 */
	double *data;           /* the product of the dims doubles (1 for a scalar), row-major */
} nb_named_tensor;

/* ---- Networks: lists of layers as op graphs, trained by replaying their tapes -------- */

typedef struct nb_net nb_net;

enum nb_init {
	NB_INIT_NORMAL = 0,  /* weights and biases standard normal (Nielsen, chapter 1) */
	NB_INIT_SCALED = 1,  /* weights normal with deviation 1/sqrt(n_in), biases standard
	                      * normal (Nielsen, chapter 3) */
	NB_INIT_HE = 2,      /* weights normal with deviation sqrt(2/n_in), biases 0 (He et
	                      * al., for relu) */
	NB_INIT_GLOROT = 3,  /* weights uniform in +-sqrt(6/(n_in + n_out)), biases 0 (Glorot
	                      * and Bengio) */
	NB_INIT_ZERO = 4     /* weights and biases 0 (Nielsen's softmax layer, network3.py) */
};
/* n_in and n_out are a unit's inputs and outputs: a dense layer's inputs and units, a
 * convolution's channels x k x k and maps x k x k. */

/** The kinds of layer of a network described as a list. */
enum nb_layer_kind {
	NB_LAYER_DENSE = 1,      /* z = w a + b: units outputs, then the activation */
	NB_LAYER_CONV2D = 2,     /* z = conv2d(a, w) + b: units maps of k x k windows moved by
	                          * stride over pad zeros, then the activation (nb_conv2d) */
	NB_LAYER_MAX_POOL = 3,   /* the maximum of each k x k window moved by stride */
	NB_LAYER_AVG_POOL = 4,   /* the mean of each k x k window moved by stride */
	NB_LAYER_DROPOUT = 5,    /* in training, each value 0 with probability p and scaled by
	                          * 1 / (1 - p) otherwise (nb_dropout); nothing at evaluation */
	NB_LAYER_ACTIVATION = 6  /* the activation alone */
};

/** One layer. Fields a kind does not use must be 0. Images flow as N x C x H x W (one
 * example per row, NCHW); a dense layer flattens what it reads and gives units x N (one
 * example per column, as Nielsen writes z = w a + b), so after the first dense layer come
 * only dense, dropout and activation layers. */
typedef struct nb_layer {
	int kind;           /* enum nb_layer_kind */
	size_t units;       /* dense: outputs; conv2d: output channels (maps); >= 1 */
	size_t k;           /* conv2d, pools: the window is k x k; >= 1 */
	size_t stride;      /* conv2d (0: 1), pools (0: k) */
	size_t pad;         /* conv2d: zeros on every side of the image */
	int activation;     /* dense, conv2d, activation: enum nb_activation (softmax: over
	                     * the units of each example) */
	int init;           /* dense, conv2d: enum nb_init */
	double p;           /* dropout: in [0, 1) */
} nb_layer;

/* Initialisers of nb_layer for each kind, for C (designated initialisers). */
#define NB_DENSE(n, act, ini) { .kind = NB_LAYER_DENSE, .units = (n), .activation = (act), \
	                        .init = (ini) }
#define NB_CONV2D(maps, ksize, act, ini) { .kind = NB_LAYER_CONV2D, .units = (maps), \
	                                   .k = (ksize), .activation = (act), .init = (ini) }
#define NB_MAX_POOL(ksize) { .kind = NB_LAYER_MAX_POOL, .k = (ksize) }
#define NB_AVG_POOL(ksize) { .kind = NB_LAYER_AVG_POOL, .k = (ksize) }
#define NB_DROPOUT(prob) { .kind = NB_LAYER_DROPOUT, .p = (prob) }
#define NB_ACTIVATION(act) { .kind = NB_LAYER_ACTIVATION, .activation = (act) }

/** A network's shape and choices; zero fields take the defaults (sigmoid, quadratic cost,
 * standard normal initialisation, seed 0, malloc). A network is given either by its sizes
 * (a fully connected one, hidden and output choosing the activations, init the
 * initialisation), or by a list of layers. */
typedef struct nb_net_config {
	size_t n_layers;        /* sizes: >= 2, input layer included */
	const size_t *sizes;    /* n_layers sizes, each >= 1 (ignored with layers) */
	int hidden;             /* sizes: activation of hidden layers: NB_SIGMOID, NB_TANH,
	                         * NB_RELU, NB_SOFTPLUS, NB_IDENTITY */
	int output;             /* sizes: of the output layer: those or NB_SOFTMAX */
	int cost;               /* NB_QUADRATIC, or NB_CROSS_ENTROPY (needs a sigmoid or
	                         * softmax output: -1/n sum ln a_y with softmax, the
	                         * log-likelihood) */
	int init;               /* sizes: enum nb_init */
	unsigned long long seed;/* initialisation, shuffling and dropout masks: same seed, same
	                         * run, bit for bit */
	nb_alloc_fn alloc;      /* every allocation of the network and its tapes (NULL: malloc) */
	void *alloc_ud;         /* passed to alloc */
	const nb_layer *layers; /* non-NULL: the network is these layer_count layers, ending
	                         * with a dense one (activation layers may follow it); sizes,
	                         * n_layers, hidden, output and init are ignored */
	size_t layer_count;     /* 1 .. NB_NET_MAX_LAYERS */
	size_t input[3];        /* with layers: an example's channels, height and width (0
	                         * counts as 1); its features, their product, are stored
	                         * channel by channel, row by row */
} nb_net_config;

/** The most layers of a list (a network of sizes: NB_NET_MAX_LAYERS + 1 sizes). */
#define NB_NET_MAX_LAYERS 64

/** The ways nb_sgd can move parameters. */
enum nb_method {
	NB_METHOD_SGD = 0,   /* stochastic gradient descent, with momentum when it is > 0 */
	NB_METHOD_ADAM = 1   /* Adam (nb_adam_update), with beta1, beta2 and eps */
};

/** How to train: for each weight, v = momentum v - eta (dC/dw + weight_decay w), w += v
 * (biases the same without weight decay), or Adam on dC/dw + weight_decay w. Nielsen's L2
 * regularisation with parameter lambda over a training set of N examples is weight_decay
 * = lambda / N (network2.py); network3.py's is lambda / (number of mini-batches). */
typedef struct nb_sgd {
	size_t batch;           /* mini-batch size, >= 1 */
	double eta;             /* learning rate, > 0 */
	double momentum;        /* SGD: 0 <= momentum < 1; 0: plain SGD */
	double weight_decay;    /* >= 0 */
	int method;             /* enum nb_method */
	double beta1, beta2;    /* Adam: in [0, 1); 0 takes 0.9 and 0.999 */
	double eps;             /* Adam: > 0; 0 takes 1e-8 */
} nb_sgd;

/** Create a network with freshly initialised parameters. Returns NB_OK and *out, or
 * NB_ENULL / NB_EINVAL (a bad size or choice; msg says which) / NB_ENOMEM with *out NULL. */
int nb_net_new(const nb_net_config *cfg, nb_net **out, char msg[NB_MSG_MAX]);

/** Free the network. NULL does nothing. */
void nb_net_free(nb_net *net);

/** The first error of a training or evaluation call on net (sticky, as a tape's), its
 * message, and a way to clear it. A NULL net: NB_ENULL and "net is NULL". */
int nb_net_status(const nb_net *net);
const char *nb_net_message(const nb_net *net);
void nb_net_clear_error(nb_net *net);

/** The configuration (sizes and layers borrowed from net, seed as given) and the
 * parameters of the l-th layer that has some (0 <= l < nb_net_param_layers()): weights of
 * a dense layer are units x inputs, row-major (with sizes: sizes[l+1] x sizes[l]), of a
 * convolution maps x channels x k x k; biases units (maps). The pointers are writable and
 * valid until nb_net_free(); NULL for a bad l. After writing them, nothing needs to be
 * called: the next step or evaluation reads them. */
nb_net_config nb_net_get_config(const nb_net *net);
double *nb_net_weights(nb_net *net, size_t l);
double *nb_net_biases(nb_net *net, size_t l);
/** The number of layers with parameters (dense and conv2d layers), 0 for NULL. */
size_t nb_net_param_layers(const nb_net *net);
/** The parameters as named tensors, w1, b1, w2, b2, ... (shapes as nb_net_weights() says,
 * biases units x 1, or maps x 1 x 1 for a convolution; data pointing at the network's
 * arrays): the first max of them go into out (which may be NULL when max is 0). Returns
 * how many there are, 2 nb_net_param_layers(net); 0 for NULL. Handy to save a network's
 * parameters with a program's own tensors (nb_tensors_save()). */
size_t nb_net_tensors(nb_net *net, nb_named_tensor *out, size_t max);
/** The values of one example in (its features) and out (the last layer's units); 0 for
 * NULL. */
size_t nb_net_inputs(const nb_net *net);
size_t nb_net_outputs(const nb_net *net);
/** The network as nb_bp_reference() takes it (pointers borrowed from net); all zero for a
 * network of layers that is not a fully connected one of sizes. */
nb_mlp nb_net_mlp(const nb_net *net);

/** Let the matrix products of the network's training, prediction and evaluation use up to
 * n threads: nb_tape_set_threads(), with what it grants, for every tape the network has
 * recorded or records later, nb_net_tape()'s included (default 1). Results are identical
 * for any count, and the count is not saved with the network. Returns the count granted
 * (below 1 means 1; at most the processors online); for a NULL net, 1, doing nothing;
 * NB_ENOMEM, recorded on net, leaves the count as it was and returns it. */
int nb_net_set_threads(nb_net *net, int n);

/** One SGD step on the mini-batch of n examples x (n x sizes[0], row-major) with targets y
 * (n x sizes[L]): record (once per batch size) and replay the tape, then update the
 * parameters. *cost (may be NULL) receives the mini-batch's cost before the update.
 * After the first step of a batch size, a step allocates nothing. */
int nb_net_sgd_step(nb_net *net, const double *x, const double *y, size_t n,
                    const nb_sgd *opt, double *cost);

/** The number of parameters, weights and biases of every layer: the length of
 * nb_net_grad(). 0 for NULL. */
size_t nb_net_param_count(const nb_net *net);

/** The network's flat gradient: nb_net_param_count() doubles holding dC/dw1, dC/db1,
 * dC/dw2, ... in the order and shapes of nb_net_tensors(), each row-major, one after the
 * other; valid until nb_net_free(). nb_net_gradient() writes it and
 * nb_net_apply_gradient() reads it, and between the two a program may change it: sum it
 * over the processes of a data-parallel run (nabla_mpi.h), clip it, or write a gradient of
 * its own. Made (zero) by the first call that needs it; NULL on error (NB_ENOMEM, recorded
 * on net) or for a NULL net. */
double *nb_net_grad(nb_net *net);

/** The first half of nb_net_sgd_step(): the gradient of the cost of the mini-batch of n
 * examples x, y (as nb_net_sgd_step() takes them) with respect to every parameter, times
 * scale (finite), written into nb_net_grad(); the parameters do not move. *cost (may be
 * NULL) gets the mini-batch's cost. scale lets a process weigh its share of a larger
 * batch: a process holding n of the B examples of a mini-batch passes n / B, and the sum
 * over the processes is the gradient of the whole mini-batch. Returns NB_OK, NB_ENULL,
 * NB_EINVAL (n is 0, scale not finite), NB_ENOMEM or a tape's error (recorded on net).
 * After the first call of a batch size, a call allocates nothing. */
int nb_net_gradient(nb_net *net, const double *x, const double *y, size_t n, double scale,
                    double *cost);

/** The second half of nb_net_sgd_step(): move the parameters by the gradient in
 * nb_net_grad() as opt says (opt->batch is not read), with the same optimizer state, so
 * that nb_net_gradient() with scale 1 followed by nb_net_apply_gradient() is
 * nb_net_sgd_step(), bit for bit. Returns NB_OK, NB_ENULL, NB_EINVAL for bad options,
 * or NB_ENOMEM (the flat gradient or the optimizer's state, made at their first use),
 * recorded on net; on error no parameter has moved. */
int nb_net_apply_gradient(nb_net *net, const nb_sgd *opt);

/** Called during an epoch after each mini-batch with the examples done so far. */
typedef void (*nb_progress_fn)(void *ud, size_t done, size_t total);

/** One epoch: shuffle the examples (with the network's generator), then one SGD step per
 * mini-batch (the last one may be smaller). *mean_cost (may be NULL) receives the mean
 * over the examples of the cost before each step. progress may be NULL. */
int nb_net_sgd_epoch(nb_net *net, const nb_dataset *train, const nb_sgd *opt,
                     double *mean_cost, nb_progress_fn progress, void *ud);

/** Feed n examples forward: out (n x sizes[L], row-major) gets the output activations. */
int nb_net_predict(nb_net *net, const double *x, size_t n, double *out);

/** Classify every example of ds (arg-max of the output): *correct (may be NULL) gets the
 * number right, *mean_cost (may be NULL) the mean cost per example. */
int nb_net_evaluate(nb_net *net, const nb_dataset *ds, size_t *correct, double *mean_cost);

/** The tape of the training graph for mini-batches of the given size (recorded if
 * needed), for pictures: nodes are named x, y, w1, b1, z1, a1, ..., C (nb_tape_find()).
 * It is the network's own copy, kept until nb_net_free() whatever else is trained, and
 * the same tape for the same size each time; its parameters view the network's. It is
 * read-only (nb_tape_lock()): reading values and drawing it work, recording on it,
 * writing its leaves or freeing it fail with NB_EINVAL. NULL on error. */
nb_tape *nb_net_tape(nb_net *net, size_t batch);

/** Save the network to path in nabla's model format (docs/model-format.md): version 1
 * for a network of sizes whose choices version 1 holds, otherwise version 2, a file of
 * named tensors (nb_net_tensors()) whose description is the configuration as text;
 * written to a temporary file in the same directory, then renamed over path, so that a
 * failure never destroys an existing file. path must not exist or be a regular file, which is replaced
 * and keeps its permission bits; a new file gets 0666 less the umask. A symbolic link, a
 * directory, a FIFO or a device at path is refused with NB_EIO before anything is
 * written. Messages about the file give the reason, then the path, as the loaders' do.
 * Returns NB_OK, NB_ENULL, NB_EIO (msg names the file), NB_ENOMEM, or NB_EINVAL for a
 * network a load would refuse: one whose file would exceed the 1 GiB a load accepts, or
 * with a NaN or an infinity among its parameters (a diverged network; msg names the
 * first: "weight 3 of layer 1 is nan, which a model file cannot hold (it would not
 * load): PATH", in version 2 "parameter w2[3] is nan, which a model file of a network
 * cannot hold (it would not load): PATH"). */
int nb_net_save(const nb_net *net, const char *path, char msg[NB_MSG_MAX]);

/** Load a network saved by nb_net_save(), of either version (every version-1 file
 * loads). Returns NB_OK and *out, or NB_ENULL, NB_EIO (cannot open or read, or not a
 * regular file, which is refused without being read), NB_EFORMAT (wrong magic,
 * unsupported version, truncated, checksum mismatch, bad contents: msg says which, with
 * the byte offset; for version 2 also a description that is not a network or tensors
 * that are not its parameters, docs/model-format.md), NB_ENOMEM; *out is NULL on
 * error. */
int nb_net_load(const char *path, nb_net **out, char msg[NB_MSG_MAX]);

/** nb_net_load() with options (NULL: the defaults): every allocation of the load, and
 * of the network for its whole life, goes through opts->alloc (it becomes the network's
 * nb_net_config.alloc); opts->max_bytes bounds the file's size, which the format bounds
 * to 1 GiB anyway (a larger file: NB_EFORMAT, "N bytes, over the limit of M
 * (nb_load_opts.max_bytes): PATH"). The network takes about as much memory as its file. */
int nb_net_load_opts(const char *path, const nb_load_opts *opts, nb_net **out, char msg[NB_MSG_MAX]);

/* ---- Files of named tensors: model file format version 2 -------------------------- */


/** What nb_tensors_load() gives: the file's n tensors in the file's order and its
 * description (NUL-terminated, "" when it has none). Names, dims and data all live in one
 * block of `bytes` bytes from the load's allocator (alloc, alloc_ud: the nb_load_opts
 * ones, or malloc); data is writable, the rest read-only. Free with nb_tensors_free(). */
typedef struct nb_tensor_file {
	size_t n;
	nb_named_tensor *tensors;
	char *description;
	size_t bytes;           /* the block's size, for nb_tensors_free() */
	nb_alloc_fn alloc;      /* what allocated the block (NULL: nothing was) */
	void *alloc_ud;         /* passed to alloc */
} nb_tensor_file;

/** Options of nb_tensors_save_opts(). A zero field takes its default, so {0} (or a NULL
 * pointer) gives what nb_tensors_save() does. */
typedef struct nb_save_opts {
	nb_alloc_fn alloc;      /* every allocation of the save (NULL: malloc) */
	void *alloc_ud;         /* passed to alloc */
} nb_save_opts;

/** Save n tensors (n may be 0; tensors may then be NULL) and a description (NULL: none)
 * to path in model file format version 2 (docs/model-format.md, "Version 2: named
 * tensors"): magic "NABLATNS", every value bit for bit (NaN, infinities and -0 included),
 * an XXH3-64 checksum. The file is written as nb_net_save() writes one: to a temporary
 * file in the same directory, then renamed over path, so that a failure never destroys an
 * existing file; path must not exist or be a regular file (which is replaced and keeps its
 * permission bits; a new file gets 0666 less the umask), and a symbolic link, a directory,
 * a FIFO or a device is refused with NB_EIO before anything is written. The whole file is
 * built in memory first (plus about 64 bytes per tensor to check the names).
 *
 * Returns NB_OK, or, with nothing written and msg saying why, then naming the file:
 * NB_ENULL ("nb_tensors_save: path is NULL", "nb_tensors_save: tensors is NULL" when
 * n > 0; "tensor 2: name is NULL: PATH", "tensor 2 (\"w1\"): data is NULL: PATH");
 * NB_EINVAL for a tensor a load would refuse: "tensor 2: empty name: PATH", "tensor 2:
 * name \"...\" is 30 bytes, longer than 23: PATH", "tensor 2 (\"w1\"): rank 5 (0 to 4
 * expected): PATH", "tensor 2 (\"w1\"): dimension 1 is 0 (each is at least 1): PATH",
 * "tensor 3 (\"w1\") has the name of tensor 1: PATH", or a file over the 1 GiB a load
 * accepts, "tensors too large for a tensor file (over 1073741824 bytes): PATH"; NB_EIO
 * ("cannot replace: a FIFO, not a regular file: PATH", "cannot create a temporary file:
 * ...", "cannot write: ...: PATH"); NB_ENOMEM ("out of memory ...: PATH"). */
int nb_tensors_save(const char *path, const nb_named_tensor *tensors, size_t n,
                    const char *description, char msg[NB_MSG_MAX]);

/** nb_tensors_save() with options (NULL: the defaults): every allocation of the save goes
 * through opts->alloc. */
int nb_tensors_save_opts(const char *path, const nb_named_tensor *tensors, size_t n,
                         const char *description, const nb_save_opts *opts,
                         char msg[NB_MSG_MAX]);

/** Load a file saved by nb_tensors_save() into *out (options may be NULL: malloc and
 * NB_LOAD_MAX_BYTES). The whole file is read and checked before anything is built:
 * size, magic, version, checksum, then every field in file order (the checks of
 * docs/model-format.md); any NaN or infinity is loaded as it was saved. Returns NB_OK and
 * *out, to give back with nb_tensors_free(); or, with *out all zero, nothing leaked and
 * msg giving the reason (with the byte offset where it applies) then the path:
 * NB_ENULL ("nb_tensors_load: path is NULL", "nb_tensors_load: out is NULL"); NB_EIO
 * (cannot open or read; not a regular file, refused without being read); NB_EFORMAT
 * ("version 1 file: a network, which nb_net_load() reads: PATH" for a file of
 * nb_net_save(); bad magic, unsupported version, truncated, "checksum mismatch at byte N
 * (...): the file is corrupt or truncated", a bad field such as "tensor 1 (\"w1\"): rank
 * 5 at byte 41 (0 to 4 expected)" or "tensor 3 (\"w1\") at byte 120 has the name of
 * tensor 1", a file over opts->max_bytes: "N bytes, over the limit of M
 * (nb_load_opts.max_bytes)"); NB_ENOMEM ("out of memory ..."). opts->max_bytes bounds the
 * file's size, which the format bounds to 1 GiB anyway. A load holds the file while it
 * builds *out, whose block takes the file's data plus about 64 bytes per tensor (and
 * about 80 more per tensor meanwhile, to check the names): never more than the file can
 * hold, whatever its fields claim. */
int nb_tensors_load(const char *path, const nb_load_opts *opts, nb_tensor_file *out,
                    char msg[NB_MSG_MAX]);

/** Load the tensors of path into the caller's arrays: each of the n tensors (checked as
 * nb_tensors_save() checks them, with the same messages after "nb_tensors_load_into: ")
 * must be in the file under its name with exactly its rank and dims, and gets the file's
 * values in its data. The whole file is checked as nb_tensors_load() checks it, and every
 * tensor asked for is found, before any data is written: on error nothing is. Tensors of
 * the file not asked for are ignored. Returns NB_OK, the errors of nb_tensors_load()
 * ("nb_tensors_load_into: path is NULL", "nb_tensors_load_into: tensors is NULL" when
 * n > 0), NB_ENULL / NB_EINVAL for a bad tensor asked for, or NB_EFORMAT naming the
 * tensor: "tensor \"w3\" is not in the file: PATH", "tensor \"w1\" is (3x4) in the file
 * (tensor 2 at byte 60), not (4x3): PATH". Allocates (through opts->alloc) only while it
 * runs. */
int nb_tensors_load_into(const char *path, const nb_load_opts *opts,
                         const nb_named_tensor *tensors, size_t n, char msg[NB_MSG_MAX]);

/** Give back what nb_tensors_load() allocated (through its allocator) and zero f. NULL, or
 * an all-zero f, does nothing. */
void nb_tensors_free(nb_tensor_file *f);

#ifdef __cplusplus
}
#endif

#endif /* NABLA_NN_H */
