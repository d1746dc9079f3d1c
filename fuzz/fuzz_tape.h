/* fuzz_tape.h -- the byte format of fuzz_tape.c's inputs, shared with make_corpus.c, which
 * writes the seeds in it.
 *
 * An input is a program of calls on one tape. Byte 0 is the allocation to fail (counted
 * from 1, the tape itself being the first; 0: none). Then come commands, at most
 * FT_MAX_CALLS of them: an opcode byte (taken modulo FT_COUNT) and its operands. An input
 * that ends inside a command reads zeros for the rest. Operands:
 *
 *   H  a handle: 0xff is NULL, any other byte indexes the table of live handles modulo its
 *      length (NULL while the table is empty). Every tensor a call returns is added.
 *   B  a plain byte.
 *   V  values, 2 bytes (start, stride): element i is value byte (start + i * stride) mod 256.
 *   X  a value byte: 0..15 the special values of enum ft_value; b >= 16 is (b - 136) / 8.
 *   D  a dim byte: b < 0xc0 is 1 + b % 8; b < 0xf0 is 9 + 4 (b - 0xc0) (9..197); 0xf0 + k
 *      is the special dim k of enum ft_dim (0, SIZE_MAX, SIZE_MAX / 8, 1 << 40, ...).
 *   S  a shape. Its first byte b says how it is made:
 *        b >= 0xf8         rank 1 + (b & 3) with dims NULL;
 *        0xf0 <= b < 0xf8  the shape of the tensor H that follows, changed by b & 7 as
 *                          enum ft_derive says (with a D or an axis byte after H);
 *        otherwise         rank FT_RANKS[b % 8] (0..4, or -1 or 5: out of range), then
 *                          one D per axis of a rank in 0..4.
 *
 * The commands and their operands, in order after the opcode:
 */
#ifndef NABLA_FUZZ_TAPE_H
#define NABLA_FUZZ_TAPE_H

enum ft_cmd {
	FT_CONSTANT,      /* S V: nb_constant (data NULL when the shape is too big to copy) */
	FT_VARIABLE,      /* S V: nb_variable */
	FT_CONSTANT_VIEW, /* S V: nb_constant_view onto the target's buffer, filled with V */
	FT_VARIABLE_VIEW, /* S V: nb_variable_view, likewise */
	FT_FILL,          /* S X: nb_fill */
	FT_SCALAR,        /* X: nb_scalar */
	FT_UNARY,         /* B(enum ft_unary) H */
	FT_BINARY,        /* B(enum ft_binary) H H */
	FT_MATMUL_T,      /* H H B: nb_matmul_t, flags B % 6 (4 and -1 for 4, 5: invalid) */
	FT_SCALE,         /* H X: nb_scale */
	FT_AXIS,          /* B(enum ft_axis) H B: axis B % 7 - 1 (-1..5) */
	FT_SHAPE,         /* B(enum ft_shape_op) H S: the shape op on H, to the shape S */
	FT_AGAIN,         /* the last op command again, with the same arguments */
	FT_SET,           /* H B(enum ft_set_size) V: nb_set */
	FT_TOUCH,         /* H: nb_touch */
	FT_WRITE_VIEW,    /* B V: write V into the array of view B (mod views), nb_touch it */
	FT_VALUE,         /* H: nb_value, then check every oracle node */
	FT_BACKWARD,      /* H H(seed): nb_backward */
	FT_GRAD,          /* H: nb_grad */
	FT_GRADIENTS,     /* H H(seed) B H..: nb_gradients; n = B % 5 handles follow;
	                   * B & 8: xs NULL, B & 16: out NULL */
	FT_REPLAY,        /* nb_tape_replay, then check every oracle node */
	FT_MARK,          /* push nb_tape_mark() on a stack of FT_MARKS marks */
	FT_REWIND,        /* B: nb_tape_rewind to mark B % (marks + 2) of the stack (newest
	                   * first); one past: the end + 1; two past: the end; 0xff: SIZE_MAX */
	FT_RESET,         /* nb_tape_reset */
	FT_CLEAR_ERROR,   /* nb_tape_clear_error */
	FT_CHECK_FINITE,  /* B: nb_tape_check_finite(t, B & 1) */
	FT_SGD,           /* B H.. [H..] B B B: nb_sgd_update, see ft_opt_flags; then eta,
	                   * momentum and decay, each an index into a table of good and bad
	                   * options */
	FT_ADAM,          /* B H.. [H..] B B B B B B: nb_adam_update; eta, beta1, beta2, eps,
	                   * decay, step (the byte itself; 0 is invalid) */
	FT_FAIL_ALLOC,    /* B: fail the allocation B from now (1: the next one; 0: none) */
	FT_DOT,           /* nb_tape_write_dot to /dev/null */
	FT_COUNT
};

#define FT_MAX_CALLS 96
#define FT_MARKS 8

/* Ranks of a plain shape, by its first byte mod 8: two out of range. */
#define FT_RANKS { 0, 1, 2, 3, 4, -1, 5, 2 }
#define FT_SHAPE_NULL_DIMS 0xf8
#define FT_SHAPE_DERIVED 0xf0

/* How a derived shape changes the shape of its tensor H. */
enum ft_derive {
	FT_SAME,          /* H's shape */
	FT_FLAT,          /* (size of H) */
	FT_PREPEND,       /* D: (D, H's dims) when H's rank is below 4 */
	FT_ONE_AT,        /* B: H's shape with axis B % rank set to 1 */
	FT_DROP_FIRST,    /* H's shape without its first axis */
	FT_SET_AT,        /* B D: H's shape with axis B % rank set to D */
	FT_REVERSED,      /* H's dims in reverse order */
	FT_ROW            /* (1, size of H) */
};

#define FT_DIM_SPECIAL 0xf0
enum ft_dim {
	FT_DIM_0, FT_DIM_SIZE_MAX, FT_DIM_SIZE_MAX_8, FT_DIM_SIZE_MAX_8_1, FT_DIM_SIZE_MAX_16,
	FT_DIM_2_40, FT_DIM_2_32, FT_DIM_2_20, FT_DIM_SIZE_MAX_2_1, FT_DIM_2_62, FT_DIM_2_61,
	FT_DIM_65536, FT_DIM_8193, FT_DIM_1024, FT_DIM_257, FT_DIM_100
};

enum ft_value {
	FT_V0, FT_VNEG0, FT_V1, FT_VNEG1, FT_VHALF, FT_V2, FT_V3, FT_VNEG7_5, FT_V1E300,
	FT_VNEG1E300, FT_VINF, FT_VNEGINF, FT_VNAN, FT_VDBL_MIN, FT_VDENORMAL, FT_V710
};

enum ft_unary {
	FT_SIGMOID, FT_TANH, FT_EXP, FT_LOG, FT_RELU, FT_STEP, FT_NEG, FT_TRANSPOSE, FT_SUM,
	FT_UNARY_COUNT
};

enum ft_binary {
	FT_ADD, FT_SUB, FT_MUL, FT_DIV, FT_MATMUL, FT_QUADRATIC_COST, FT_SIGMOID_XENT,
	FT_SOFTMAX_XENT, FT_BINARY_COUNT
};

enum ft_axis { FT_SOFTMAX, FT_SUM_AXIS, FT_SUM_AXIS_KEEPDIM, FT_AXIS_COUNT };

enum ft_shape_op { FT_RESHAPE, FT_BROADCAST_TO, FT_REDUCE_TO, FT_SHAPE_OP_COUNT };

/* The size nb_set is given, by B % 8. */
enum ft_set_size {
	FT_SET_RIGHT, FT_SET_LESS, FT_SET_MORE, FT_SET_ZERO, FT_SET_SIZE_MAX, FT_SET_DATA_NULL,
	FT_SET_X_NULL, FT_SET_RIGHT_AGAIN
};

/* The flags byte of FT_SGD and FT_ADAM: 1 + (B & 3) parameters follow, then as many
 * gradients with FT_OPT_GRADS (otherwise grads is NULL: the last sweep's). */
enum ft_opt_flags {
	FT_OPT_GRADS = 4,        /* explicit gradients */
	FT_OPT_STATE_NULL = 8,   /* velocity (or m and v) NULL */
	FT_OPT_DECAY = 16,       /* a decay array, every coefficient the decay option */
	FT_OPT_PARAMS_NULL = 32  /* params NULL */
};

#endif
