/* parse.c -- nb_parse(): an expression written as text, recorded on a tape.
 *
 * A recursive-descent parser that records each op as soon as its operands are parsed, so
 * there is no syntax tree and nothing to allocate besides the tape's own nodes. Errors
 * are recorded on the tape as "LINE:COL: what", and the tape is rewound to where the
 * parse began, so that a failed parse records nothing. The lexer is a pure function of
 * the text and a position: peeking ahead costs nothing, and a bad token (an unknown
 * character, a malformed number) is only reported if the parser reaches it, so that the
 * first error in the text is the one reported.
 *
 * Functions are rows of one table (funcs[] below): a name, the parameters (tensor
 * operands first, then attributes given as number literals, positionally or by keyword),
 * and the op that builds the result. Adding an op is adding a row.
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla_int.h"

#define MAX_PARAMS 8     /* parameters of one function, tensors and attributes */
#define NUM_MAX 128      /* characters of a number literal */
#define QUOTE_MAX 32     /* characters of a name or token quoted in a message */
#define EXP_CAP 100000   /* |decimal exponent| beyond which every double is 0 or inf */

/* ---- The function table ------------------------------------------------------------ */

enum kind {
	P_TENSOR,  /* an expression; positional only, before every attribute */
	P_NUMBER,  /* a number literal */
	P_INT,     /* an integer literal (in int's range) */
	P_SIZE,    /* an integer literal from 0 to INT_MAX: a size, a stride, a seed */
	P_BOOL,    /* 0 or 1 */
	P_DIMS     /* the rest of the positional arguments: 0 to NB_MAX_RANK dims >= 1 */
};

enum presence { REQUIRED, OPTIONAL, DEFAULT };

struct param {
	const char *name;
	enum kind kind;
	enum presence presence;
	double def;  /* the value of a DEFAULT parameter that is not given */
};

/* A call's arguments as the builders see them, indexed like the function's parameters:
 * tensors in x[], attributes in num[] (given[] says whether an OPTIONAL one was), and a
 * P_DIMS parameter's dims in (rank, dim). */
struct call {
	nb_tensor *x[MAX_PARAMS];
	double num[MAX_PARAMS];
	bool given[MAX_PARAMS];
	int rank;
	size_t dim[NB_MAX_RANK];
};

typedef nb_tensor *(*unary_fn)(nb_tape *t, nb_tensor *x);
typedef nb_tensor *(*binary_fn)(nb_tape *t, nb_tensor *a, nb_tensor *b);
typedef nb_tensor *(*build_fn)(nb_tape *t, const struct call *c);

/* One function: exactly one of unary, binary and build is set. The first two are for
 * ops that take only tensors, called with x[0] (and x[1]). */
struct func {
	const char *name;
	struct param param[MAX_PARAMS];
	unary_fn unary;
	binary_fn binary;
	build_fn build;
};

#define TENSOR(n) { n, P_TENSOR, REQUIRED, 0 }
#define NUMBER(n) { n, P_NUMBER, REQUIRED, 0 }
#define INT_DEFAULT(n, v) { n, P_INT, DEFAULT, v }
#define SIZE_DEFAULT(n, v) { n, P_SIZE, DEFAULT, v }
#define INT_OPTIONAL(n) { n, P_INT, OPTIONAL, 0 }
#define BOOL_DEFAULT(n, v) { n, P_BOOL, DEFAULT, v }
#define DIMS(n) { n, P_DIMS, OPTIONAL, 0 }
#define UNARY(name, f) { name, { TENSOR("x") }, .unary = f }
#define BINARY(name, f, a, b) { name, { TENSOR(a), TENSOR(b) }, .binary = f }

static nb_tensor *build_scale(nb_tape *t, const struct call *c)
{
	return nb_scale(t, c->x[0], c->num[1]);
}

static nb_tensor *build_pow(nb_tape *t, const struct call *c)
{
	return nb_pow(t, c->x[0], c->num[1]);
}

static nb_tensor *build_softmax(nb_tape *t, const struct call *c)
{
	return nb_softmax(t, c->x[0], (int)c->num[1]);
}

/* matmul(a, b) and its transposed forms, one op with flags. */
static nb_tensor *build_matmul(nb_tape *t, const struct call *c)
{
	int flags = (c->num[2] != 0.0 ? NB_TRANS_A : 0) | (c->num[3] != 0.0 ? NB_TRANS_B : 0);

	return flags ? nb_matmul_t(t, c->x[0], c->x[1], flags) : nb_matmul(t, c->x[0], c->x[1]);
}

static nb_tensor *build_reshape(nb_tape *t, const struct call *c)
{
	return nb_reshape(t, c->x[0], c->rank, c->dim);
}

static nb_tensor *build_broadcast_to(nb_tape *t, const struct call *c)
{
	return nb_broadcast_to(t, c->x[0], c->rank, c->dim);
}

static nb_tensor *build_reduce_to(nb_tape *t, const struct call *c)
{
	return nb_reduce_to(t, c->x[0], c->rank, c->dim);
}

/* sum(x), sum(x, axis), and keepdim for both: sum(x, keepdim=1) keeps every axis with
 * size 1, as numpy's sum(x, keepdims=True). mean the same. */
static nb_tensor *reduction(nb_tape *t, const struct call *c,
                            nb_tensor *(*all)(nb_tape *, nb_tensor *),
                            nb_tensor *(*along)(nb_tape *, nb_tensor *, int, int))
{
	size_t ones[NB_MAX_RANK] = { 1, 1, 1, 1 };
	int keepdim = c->num[2] != 0.0;

	if (c->given[1])
		return along(t, c->x[0], (int)c->num[1], keepdim);
	if (!keepdim)
		return all(t, c->x[0]);
	return nb_reshape(t, all(t, c->x[0]), nb_rank(c->x[0]), ones);
}

static nb_tensor *build_sum(nb_tape *t, const struct call *c)
{
	return reduction(t, c, nb_sum, nb_sum_axis);
}

static nb_tensor *build_mean(nb_tape *t, const struct call *c)
{
	return reduction(t, c, nb_mean, nb_mean_axis);
}

static nb_tensor *build_max(nb_tape *t, const struct call *c)
{
	return nb_max_axis(t, c->x[0], (int)c->num[1], c->num[2] != 0.0);
}

static nb_tensor *build_logsumexp(nb_tape *t, const struct call *c)
{
	return nb_logsumexp(t, c->x[0], (int)c->num[1], c->num[2] != 0.0);
}

static nb_tensor *build_log_softmax(nb_tape *t, const struct call *c)
{
	return nb_log_softmax(t, c->x[0], (int)c->num[1]);
}

static nb_tensor *build_slice(nb_tape *t, const struct call *c)
{
	return nb_slice(t, c->x[0], (int)c->num[1], (size_t)c->num[2], (size_t)c->num[3]);
}

static nb_tensor *build_pad(nb_tape *t, const struct call *c)
{
	return nb_pad(t, c->x[0], (int)c->num[1], (size_t)c->num[2], (size_t)c->num[3]);
}

static nb_tensor *build_concat(nb_tape *t, const struct call *c)
{
	return nb_concat(t, c->x, 2, (int)c->num[2]);
}

/* permute(x, p0, p1, ...): as many axes as x has. */
static nb_tensor *build_permute(nb_tape *t, const struct call *c)
{
	int perm[NB_MAX_RANK], given = 0, r = nb_rank(c->x[0]);
	char s[NB_MSG_MAX];

	for (int i = 0; i < NB_MAX_RANK; i++) {
		perm[i] = (int)c->num[1 + i];
		given += c->given[1 + i];
	}
	if (given != r)
		return nb__fail(t, NB_EINVAL, "permute: %d axes given for the %d of %s", given, r,
		                nb__shape_str(r, c->x[0]->dim, s));
	return nb_permute(t, c->x[0], perm);
}

static nb_tensor *build_conv2d(nb_tape *t, const struct call *c)
{
	return nb_conv2d(t, c->x[0], c->x[1], (size_t)c->num[2], (size_t)c->num[3]);
}

static nb_tensor *build_max_pool2d(nb_tape *t, const struct call *c)
{
	return nb_max_pool2d(t, c->x[0], (size_t)c->num[1], (size_t)c->num[2]);
}

static nb_tensor *build_avg_pool2d(nb_tape *t, const struct call *c)
{
	return nb_avg_pool2d(t, c->x[0], (size_t)c->num[1], (size_t)c->num[2]);
}

static nb_tensor *build_dropout(nb_tape *t, const struct call *c)
{
	return nb_dropout(t, c->x[0], c->num[1], (unsigned long long)c->num[2]);
}

static nb_tensor *build_where(nb_tape *t, const struct call *c)
{
	return nb_where(t, c->x[0], c->x[1], c->x[2]);
}

static const struct func funcs[] = {
	BINARY("add", nb_add, "a", "b"),
	BINARY("sub", nb_sub, "a", "b"),
	BINARY("mul", nb_mul, "a", "b"),
	BINARY("div", nb_div, "a", "b"),
	UNARY("neg", nb_neg),
	{ "scale", { TENSOR("x"), NUMBER("c") }, .build = build_scale },
	UNARY("sigmoid", nb_sigmoid),
	UNARY("tanh", nb_tanh),
	UNARY("exp", nb_exp),
	UNARY("log", nb_log),
	UNARY("sqrt", nb_sqrt),
	UNARY("square", nb_square),
	{ "pow", { TENSOR("x"), NUMBER("p") }, .build = build_pow },
	UNARY("abs", nb_abs),
	UNARY("log1p", nb_log1p),
	UNARY("softplus", nb_softplus),
	UNARY("relu", nb_relu),
	UNARY("step", nb_step),
	{ "softmax", { TENSOR("x"), INT_DEFAULT("axis", 0) }, .build = build_softmax },
	{ "matmul", { TENSOR("a"), TENSOR("b"), BOOL_DEFAULT("trans_a", 0),
	              BOOL_DEFAULT("trans_b", 0) }, .build = build_matmul },
	UNARY("transpose", nb_transpose),
	{ "reshape", { TENSOR("x"), DIMS("shape") }, .build = build_reshape },
	{ "sum", { TENSOR("x"), INT_OPTIONAL("axis"), BOOL_DEFAULT("keepdim", 0) },
	  .build = build_sum },
	{ "mean", { TENSOR("x"), INT_OPTIONAL("axis"), BOOL_DEFAULT("keepdim", 0) },
	  .build = build_mean },
	{ "max", { TENSOR("x"), INT_DEFAULT("axis", 0), BOOL_DEFAULT("keepdim", 0) },
	  .build = build_max },
	{ "logsumexp", { TENSOR("x"), INT_DEFAULT("axis", 0), BOOL_DEFAULT("keepdim", 0) },
	  .build = build_logsumexp },
	{ "log_softmax", { TENSOR("x"), INT_DEFAULT("axis", 0) }, .build = build_log_softmax },
	BINARY("maximum", nb_maximum, "a", "b"),
	BINARY("gather_rows", nb_gather_rows, "table", "idx"),
	{ "conv2d", { TENSOR("x"), TENSOR("w"), SIZE_DEFAULT("stride", 1), SIZE_DEFAULT("pad", 0) },
	  .build = build_conv2d },
	{ "dropout", { TENSOR("x"), NUMBER("p"), SIZE_DEFAULT("seed", 1) },
	  .build = build_dropout },
	{ "max_pool2d", { TENSOR("x"), SIZE_DEFAULT("k", 2), SIZE_DEFAULT("stride", 2) },
	  .build = build_max_pool2d },
	{ "avg_pool2d", { TENSOR("x"), SIZE_DEFAULT("k", 2), SIZE_DEFAULT("stride", 2) },
	  .build = build_avg_pool2d },
	BINARY("minimum", nb_minimum, "a", "b"),
	{ "where", { TENSOR("m"), TENSOR("a"), TENSOR("b") }, .build = build_where },
	{ "slice", { TENSOR("x"), INT_DEFAULT("axis", 0), SIZE_DEFAULT("start", 0),
	             SIZE_DEFAULT("end", 0) }, .build = build_slice },
	{ "pad", { TENSOR("x"), INT_DEFAULT("axis", 0), SIZE_DEFAULT("before", 0),
	           SIZE_DEFAULT("after", 0) }, .build = build_pad },
	{ "concat", { TENSOR("a"), TENSOR("b"), INT_DEFAULT("axis", 0) }, .build = build_concat },
	{ "permute", { TENSOR("x"), INT_OPTIONAL("p0"), INT_OPTIONAL("p1"), INT_OPTIONAL("p2"),
	               INT_OPTIONAL("p3") }, .build = build_permute },
	{ "broadcast_to", { TENSOR("x"), DIMS("shape") }, .build = build_broadcast_to },
	{ "reduce_to", { TENSOR("x"), DIMS("shape") }, .build = build_reduce_to },
	BINARY("quadratic_cost", nb_quadratic_cost, "a", "y"),
	BINARY("sigmoid_cross_entropy", nb_sigmoid_cross_entropy, "z", "y"),
	BINARY("softmax_cross_entropy", nb_softmax_cross_entropy, "z", "y"),
};

static const struct func *find_func(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof funcs / sizeof funcs[0]; i++)
		if (strlen(funcs[i].name) == len && !memcmp(funcs[i].name, name, len))
			return &funcs[i];
	return NULL;
}

static int n_params(const struct func *f)
{
	int n = 0;

	while (n < MAX_PARAMS && f->param[n].name)
		n++;
	return n;
}

/* The signature for messages: "matmul(a, b, trans_a=0, trans_b=0)", "sum(x, [axis],
 * keepdim=0)", "reshape(x, shape...)". */
static const char *signature(const struct func *f, char buf[NB_MSG_MAX])
{
	size_t len = (size_t)snprintf(buf, NB_MSG_MAX, "%s(", f->name);

	for (int i = 0; i < n_params(f) && len < NB_MSG_MAX; i++) {
		const struct param *q = &f->param[i];
		const char *sep = i ? ", " : "";

		if (q->kind == P_DIMS)
			len += (size_t)snprintf(buf + len, NB_MSG_MAX - len, "%s%s...", sep, q->name);
		else if (q->presence == DEFAULT)
			len += (size_t)snprintf(buf + len, NB_MSG_MAX - len, "%s%s=%g", sep, q->name,
			                        q->def);
		else if (q->presence == OPTIONAL)
			len += (size_t)snprintf(buf + len, NB_MSG_MAX - len, "%s[%s]", sep, q->name);
		else
			len += (size_t)snprintf(buf + len, NB_MSG_MAX - len, "%s%s", sep, q->name);
	}
	if (len < NB_MSG_MAX)
		snprintf(buf + len, NB_MSG_MAX - len, ")");
	return buf;
}

/* ---- Lexer --------------------------------------------------------------------------- */

enum tok {
	T_END, T_NUM, T_NAME, T_PLUS, T_MINUS, T_STAR, T_SLASH, T_AT, T_LPAREN, T_RPAREN,
	T_COMMA, T_EQUAL, T_DOT,
	/* bad tokens: an error if the parser reaches them */
	T_BAD_CHAR, T_BAD_NUM, T_LONG_NUM, T_HUGE_NUM, T_POW
};

struct token {
	enum tok kind;
	size_t pos, len;  /* where it is in the text */
	double num;       /* T_NUM's value */
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Letters by hand rather than isalpha(), which depends on the locale. */
static bool is_name_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_name_char(char c)
{
	return is_name_start(c) || is_digit(c);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* The value of the number literal s[0..len): its digits without the point, and the
 * exponent adjusted, go to strtod as "DIGITSeEXP". With no decimal point in the string,
 * the locale cannot change how it is read, and strtod rounds correctly. */
static double number_value(const char *s, size_t len)
{
	char buf[NUM_MAX + 16];
	size_t n = 0, i = 0;
	long exp = 0, e = 0;
	int sign = 1;
	bool point = false;

	for (; i < len && (is_digit(s[i]) || s[i] == '.'); i++) {
		if (s[i] == '.') {
			point = true;
			continue;
		}
		buf[n++] = s[i];
		exp -= point;  /* each digit after the point divides by 10 */
	}
	if (i < len) {  /* the exponent: e, an optional sign, digits */
		i++;
		if (s[i] == '+' || s[i] == '-')
			sign = s[i++] == '-' ? -1 : 1;
		for (; i < len; i++)
			if (e < EXP_CAP)
				e = e * 10 + (s[i] - '0');
	}
	snprintf(buf + n, sizeof buf - n, "e%ld", exp + sign * e);
	return strtod(buf, NULL);
}

/* A number: digits [. digits] [e [+-] digits], or . digits. A number run into letters,
 * digits or points ("2x", "1e", "1.2.3") is one malformed token. */
static struct token lex_number(const char *s, size_t pos)
{
	struct token k = { T_NUM, pos, 0, 0.0 };
	size_t i = pos;
	bool ok = true;

	while (is_digit(s[i]))
		i++;
	if (s[i] == '.')
		for (i++; is_digit(s[i]); i++)
			;
	if (s[i] == 'e' || s[i] == 'E') {
		size_t d;

		i += s[i + 1] == '+' || s[i + 1] == '-' ? 2 : 1;
		for (d = i; is_digit(s[i]); i++)
			;
		ok = i > d;
	}
	for (; is_name_char(s[i]) || s[i] == '.'; i++)
		ok = false;
	k.len = i - pos;
	if (!ok)
		k.kind = T_BAD_NUM;
	else if (k.len > NUM_MAX)
		k.kind = T_LONG_NUM;
	else if (isinf(k.num = number_value(s + pos, k.len)))
		k.kind = T_HUGE_NUM;
	return k;
}

/* The token at or after pos. */
static struct token lex(const char *s, size_t pos)
{
	static const char punct[] = "+-*/@(),=.";
	static const enum tok kinds[] = { T_PLUS, T_MINUS, T_STAR, T_SLASH, T_AT, T_LPAREN,
	                                  T_RPAREN, T_COMMA, T_EQUAL, T_DOT };
	struct token k;
	const char *p;

	while (is_space(s[pos]))
		pos++;
	k = (struct token){ T_END, pos, 0, 0.0 };
	if (!s[pos])
		return k;
	if (is_digit(s[pos]) || (s[pos] == '.' && is_digit(s[pos + 1])))
		return lex_number(s, pos);
	if (is_name_start(s[pos])) {
		for (k.len = 1; is_name_char(s[pos + k.len]); k.len++)
			;
		k.kind = T_NAME;
		return k;
	}
	k.len = 1;
	if (s[pos] == '^' || (s[pos] == '*' && s[pos + 1] == '*')) {
		k.kind = T_POW;
		k.len = s[pos] == '^' ? 1 : 2;
	} else if ((p = strchr(punct, s[pos])) != NULL) {
		k.kind = kinds[p - punct];
	} else {
		k.kind = T_BAD_CHAR;
	}
	return k;
}

/* ---- The parser's state and its errors ---------------------------------------------- */

struct parser {
	nb_tape *t;
	const char *src;
	const nb_parse_input *in;
	size_t n_in;
	struct token tok;   /* the current token */
	int depth;          /* nesting: parentheses, calls and signs */
	size_t err_pos;     /* where the recorded error is, when there is one */
};

static void advance(struct parser *p)
{
	p->tok = lex(p->src, p->tok.pos + p->tok.len);
}

static struct token peek(const struct parser *p)
{
	return lex(p->src, p->tok.pos + p->tok.len);
}

/* The line and column (both from 1, columns in bytes) of offset pos. */
static nb_parse_loc locate(const char *src, size_t pos)
{
	nb_parse_loc loc = { 1, 1, pos };

	for (size_t i = 0; i < pos; i++) {
		if (src[i] == '\n') {
			loc.line++;
			loc.col = 1;
		} else {
			loc.col++;
		}
	}
	return loc;
}

/* Record status on the tape with the message after "LINE:COL: " for position pos. */
static void fail_at(struct parser *p, size_t pos, int status, const char *msg)
{
	nb_parse_loc loc = locate(p->src, pos);

	p->err_pos = pos;
	nb__fail(p->t, status, "%zu:%zu: %s", loc.line, loc.col, msg);
}

#if defined(__GNUC__)
#define PRINTF_3_4 __attribute__((format(printf, 3, 4)))
#define PRINTF_3_0 __attribute__((format(printf, 3, 0)))
#else
#define PRINTF_3_4
#define PRINTF_3_0
#endif

/* A syntax (or semantic) error at pos, NB_EINVAL. */
PRINTF_3_0 static void vsyntax(struct parser *p, size_t pos, const char *fmt, va_list ap)
{
	char msg[NB_MSG_MAX];

	vsnprintf(msg, sizeof msg, fmt, ap);
	fail_at(p, pos, NB_EINVAL, msg);
}

/* The same, returning NULL for the parsers of tensors... */
PRINTF_3_4 static void *syntax(struct parser *p, size_t pos, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsyntax(p, pos, fmt, ap);
	va_end(ap);
	return NULL;
}

/* ... and false for the others. */
PRINTF_3_4 static bool refuse(struct parser *p, size_t pos, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsyntax(p, pos, fmt, ap);
	va_end(ap);
	return false;
}

/* An op called at pos returned NULL: its error, whatever its status, gets the position
 * in front. A NULL without an error would be a bug in a builder. */
static nb_tensor *op_result(struct parser *p, size_t pos, nb_tensor *y)
{
	char msg[NB_MSG_MAX];
	int status = nb_tape_status(p->t);

	if (y)
		return y;
	if (status == NB_OK) {
		fail_at(p, pos, NB_EINTERNAL, "an op returned NULL without an error");
		return NULL;
	}
	snprintf(msg, sizeof msg, "%s", nb_tape_message(p->t));
	nb_tape_clear_error(p->t);
	fail_at(p, pos, status, msg);
	return NULL;
}

/* A token for messages: "end of input", "'+'", "'sigmod'" (long ones cut, with "..."). */
static const char *describe(const struct parser *p, const struct token *k, char buf[64])
{
	int len = k->len > QUOTE_MAX ? QUOTE_MAX : (int)k->len;

	if (k->kind == T_END)
		return "end of input";
	snprintf(buf, 64, "'%.*s%s'", len, p->src + k->pos, k->len > QUOTE_MAX ? "..." : "");
	return buf;
}

/* The current token is not one the grammar allows here: say why. Bad tokens have their
 * own messages; any other is "expected WHAT, found TOKEN". */
static void *unexpected(struct parser *p, const char *what)
{
	const struct token *k = &p->tok;
	unsigned char c = (unsigned char)p->src[k->pos];
	char d[64];

	switch (k->kind) {
	case T_BAD_CHAR:
		if (c >= 0x20 && c < 0x7f)
			return syntax(p, k->pos, "unexpected character '%c'", c);
		return syntax(p, k->pos, "unexpected byte 0x%02x", c);
	case T_BAD_NUM:
		return syntax(p, k->pos, "malformed number %s", describe(p, k, d));
	case T_LONG_NUM:
		return syntax(p, k->pos, "number longer than %d characters", NUM_MAX);
	case T_HUGE_NUM:
		return syntax(p, k->pos, "number %s is too large for a double", describe(p, k, d));
	case T_POW:
		return syntax(p, k->pos, "%s is not an operator: write pow(x, p)",
		              describe(p, k, d));
	default:
		return syntax(p, k->pos, "expected %s, found %s", what, describe(p, k, d));
	}
}

/* A parenthesis opened at open is not closed where it should be: "expected ')' to close
 * the '(' at 1:4, found end of input" (for a call, "the 'exp(' at"). */
static void *unclosed(struct parser *p, size_t open, const char *what)
{
	nb_parse_loc at = locate(p->src, open);
	struct token k = lex(p->src, open);
	char msg[128], d[64];

	if (k.kind == T_NAME)  /* a call */
		snprintf(d, sizeof d, "'%.*s('", k.len > QUOTE_MAX ? QUOTE_MAX : (int)k.len,
		         p->src + open);
	else
		snprintf(d, sizeof d, "'('");
	snprintf(msg, sizeof msg, "%s to close the %s at %zu:%zu", what, d, at.line, at.col);
	return unexpected(p, msg);
}

/* Enter one level of nesting, opened at pos; false (and an error) past the limit, so
 * that no input can exhaust the stack. */
static bool enter(struct parser *p, size_t pos)
{
	if (++p->depth <= NB_PARSE_MAX_DEPTH)
		return true;
	return refuse(p, pos, "expression nested too deeply (more than %d levels)",
	              NB_PARSE_MAX_DEPTH);
}

/* ---- Grammar ------------------------------------------------------------------------- */

static nb_tensor *parse_expression(struct parser *p);

static nb_tensor *parse_name(struct parser *p)
{
	struct token k = p->tok;
	int len = k.len > QUOTE_MAX ? QUOTE_MAX : (int)k.len;
	const char *more = k.len > QUOTE_MAX ? "..." : "";

	for (size_t i = 0; i < p->n_in; i++) {
		if (strlen(p->in[i].name) == k.len && !memcmp(p->in[i].name, p->src + k.pos, k.len)) {
			advance(p);
			return p->in[i].x;
		}
	}
	if (find_func(p->src + k.pos, k.len))
		return syntax(p, k.pos, "'%.*s' is a function: call it as %.*s(...)", len,
		              p->src + k.pos, len, p->src + k.pos);
	return syntax(p, k.pos, "unknown name '%.*s%s'", len, p->src + k.pos, more);
}

/* Whether a token after a number makes it part of an expression ("2*3", "2.T", "2(").
 * Anything else after it is the caller's to judge. */
static bool continues_expression(enum tok k)
{
	switch (k) {
	case T_PLUS: case T_MINUS: case T_STAR: case T_SLASH: case T_AT: case T_LPAREN:
	case T_DOT: case T_POW:
		return true;
	default:
		return false;
	}
}

/* An attribute's value: a number literal with an optional sign, alone in its argument,
 * of the parameter's kind. */
static bool parse_attr(struct parser *p, const struct func *f, int i, double *v)
{
	const struct param *q = &f->param[i];
	size_t start = p->tok.pos;
	char sig[NB_MSG_MAX];
	double sign = 1.0;

	if (p->tok.kind == T_MINUS || p->tok.kind == T_PLUS) {
		sign = p->tok.kind == T_MINUS ? -1.0 : 1.0;
		advance(p);
	}
	if (p->tok.kind >= T_BAD_CHAR) {
		unexpected(p, "");  /* the bad token's own message */
		return false;
	}
	if (p->tok.kind != T_NUM)
		return refuse(p, start, "argument '%s' of %s must be a number", q->name,
		              signature(f, sig));
	*v = sign * p->tok.num;
	advance(p);
	if (continues_expression(p->tok.kind))
		return refuse(p, start, "argument '%s' of %s must be a number", q->name,
		              signature(f, sig));
	if (q->kind == P_INT && (*v != floor(*v) || fabs(*v) > INT_MAX))
		return refuse(p, start, "argument '%s' of %s must be an integer", q->name,
		              signature(f, sig));
	if (q->kind == P_SIZE && (*v != floor(*v) || *v < 0.0 || *v > INT_MAX))
		return refuse(p, start, "argument '%s' of %s must be an integer >= 0", q->name,
		              signature(f, sig));
	if (q->kind == P_BOOL && *v != 0.0 && *v != 1.0)
		return refuse(p, start, "argument '%s' of %s must be 0 or 1", q->name,
		              signature(f, sig));
	if (q->kind == P_DIMS && (*v != floor(*v) || *v < 1.0 || *v > 0x1p53))
		return refuse(p, start, "dimensions of %s must be positive integers",
		              signature(f, sig));
	return true;
}

/* One dimension of a P_DIMS parameter, at most NB_MAX_RANK of them. */
static bool parse_dim(struct parser *p, const struct func *f, int i, struct call *c)
{
	char sig[NB_MSG_MAX];
	double v;

	if (c->rank == NB_MAX_RANK)
		return refuse(p, p->tok.pos, "too many dimensions for %s: at most %d",
		              signature(f, sig), NB_MAX_RANK);
	if (!parse_attr(p, f, i, &v))
		return false;
	c->dim[c->rank++] = (size_t)v;
	return true;
}

/* name=value: the parameter it names must be an attribute not given yet. */
static bool parse_keyword(struct parser *p, const struct func *f, struct call *c)
{
	struct token k = p->tok;
	int len = k.len > QUOTE_MAX ? QUOTE_MAX : (int)k.len;
	char sig[NB_MSG_MAX];

	for (int i = 0; i < n_params(f); i++) {
		const struct param *q = &f->param[i];

		if (strlen(q->name) != k.len || memcmp(q->name, p->src + k.pos, k.len))
			continue;
		if (q->kind == P_TENSOR || q->kind == P_DIMS)
			return refuse(p, k.pos, "argument '%s' of %s cannot be given by keyword",
			              q->name, signature(f, sig));
		if (c->given[i])
			return refuse(p, k.pos, "argument '%s' of %s given twice", q->name,
			              signature(f, sig));
		advance(p);  /* the name */
		advance(p);  /* = */
		return (c->given[i] = parse_attr(p, f, i, &c->num[i]));
	}
	return refuse(p, k.pos, "unknown keyword '%.*s%s' for %s", len, p->src + k.pos,
	              k.len > QUOTE_MAX ? "..." : "", signature(f, sig));
}

/* The positional argument *next (a parameter index, advanced past tensors and given
 * attributes; a P_DIMS parameter takes every later one). */
static bool parse_positional(struct parser *p, const struct func *f, int *next,
                             struct call *c)
{
	int n = n_params(f), i = *next;
	char sig[NB_MSG_MAX];

	if (i >= n)
		return refuse(p, p->tok.pos, "too many arguments for %s", signature(f, sig));
	if (f->param[i].kind == P_DIMS)
		return (c->given[i] = parse_dim(p, f, i, c));
	(*next)++;
	c->given[i] = true;
	if (f->param[i].kind != P_TENSOR)
		return parse_attr(p, f, i, &c->num[i]);
	return (c->x[i] = parse_expression(p)) != NULL;
}

/* After the last argument: every required parameter given, defaults filled in. */
static bool complete_call(struct parser *p, const struct func *f, struct call *c)
{
	char sig[NB_MSG_MAX];

	for (int i = 0; i < n_params(f); i++) {
		const struct param *q = &f->param[i];

		if (!c->given[i] && q->presence == REQUIRED)
			return refuse(p, p->tok.pos, "missing argument '%s' of %s", q->name,
			              signature(f, sig));
		if (!c->given[i] && q->presence == DEFAULT)
			c->num[i] = q->def;
	}
	return true;
}

static nb_tensor *build(nb_tape *t, const struct func *f, const struct call *c)
{
	if (f->unary)
		return f->unary(t, c->x[0]);
	if (f->binary)
		return f->binary(t, c->x[0], c->x[1]);
	return f->build(t, c);
}

/* name ( [argument {, argument}] ): the current token is the name, then "(". */
static nb_tensor *parse_call(struct parser *p)
{
	struct token name = p->tok;
	const struct func *f = find_func(p->src + name.pos, name.len);
	int len = name.len > QUOTE_MAX ? QUOTE_MAX : (int)name.len, next = 0;
	bool keywords = false;
	struct call c;

	if (!f)
		return syntax(p, name.pos, "unknown function '%.*s%s'", len, p->src + name.pos,
		              name.len > QUOTE_MAX ? "..." : "");
	memset(&c, 0, sizeof c);
	if (!enter(p, name.pos))
		return NULL;
	advance(p);  /* the name */
	advance(p);  /* ( */
	while (p->tok.kind != T_RPAREN) {
		bool ok;

		if (p->tok.kind == T_NAME && peek(p).kind == T_EQUAL) {
			ok = parse_keyword(p, f, &c);
			keywords = true;
		} else if (keywords) {
			return syntax(p, p->tok.pos, "positional argument after a keyword argument");
		} else {
			ok = parse_positional(p, f, &next, &c);
		}
		if (!ok)
			return NULL;
		if (p->tok.kind == T_COMMA)
			advance(p);
		else if (p->tok.kind != T_RPAREN)
			return unclosed(p, name.pos, "',' or ')'");
		else
			break;
		if (p->tok.kind == T_RPAREN)
			return unexpected(p, "an argument");
	}
	if (!complete_call(p, f, &c))
		return NULL;
	advance(p);  /* ) */
	p->depth--;
	return op_result(p, name.pos, build(p->t, f, &c));
}

/* number | name | call | ( expression ) */
static nb_tensor *parse_primary(struct parser *p)
{
	struct token open = p->tok;
	nb_tensor *x;

	switch (p->tok.kind) {
	case T_NUM:
		advance(p);
		return op_result(p, open.pos, nb_scalar(p->t, open.num));
	case T_NAME:
		return peek(p).kind == T_LPAREN ? parse_call(p) : parse_name(p);
	case T_LPAREN:
		if (!enter(p, open.pos))
			return NULL;
		advance(p);
		if (!(x = parse_expression(p)))
			return NULL;
		if (p->tok.kind != T_RPAREN)
			return unclosed(p, open.pos, "')'");
		advance(p);
		p->depth--;
		return x;
	default:
		return unexpected(p, "an expression");
	}
}

/* primary { . T } */
static nb_tensor *parse_postfix(struct parser *p)
{
	nb_tensor *x = parse_primary(p);

	while (x && p->tok.kind == T_DOT) {
		size_t pos = p->tok.pos;

		advance(p);
		if (p->tok.kind != T_NAME || p->tok.len != 1 || p->src[p->tok.pos] != 'T')
			return unexpected(p, "T (transpose) after '.'");
		advance(p);
		x = op_result(p, pos, nb_transpose(p->t, x));
	}
	return x;
}

/* ( - | + ) unary | postfix. A minus right before a number makes a negative literal. */
static nb_tensor *parse_unary(struct parser *p)
{
	struct token sign = p->tok;
	nb_tensor *x;

	if (sign.kind != T_MINUS && sign.kind != T_PLUS)
		return parse_postfix(p);
	advance(p);
	if (sign.kind == T_MINUS && p->tok.kind == T_NUM && peek(p).kind != T_DOT) {
		struct token k = p->tok;

		advance(p);
		return op_result(p, sign.pos, nb_scalar(p->t, -k.num));
	}
	if (!enter(p, sign.pos) || !(x = parse_unary(p)))
		return NULL;
	p->depth--;
	return sign.kind == T_PLUS ? x : op_result(p, sign.pos, nb_neg(p->t, x));
}

/* unary { ( * | / | @ ) unary } */
static nb_tensor *parse_product(struct parser *p)
{
	nb_tensor *x = parse_unary(p);

	while (x && (p->tok.kind == T_STAR || p->tok.kind == T_SLASH || p->tok.kind == T_AT)) {
		struct token op = p->tok;
		nb_tensor *y;

		advance(p);
		if (!(y = parse_unary(p)))
			return NULL;
		x = op_result(p, op.pos, op.kind == T_STAR    ? nb_mul(p->t, x, y)
		                         : op.kind == T_SLASH ? nb_div(p->t, x, y)
		                                              : nb_matmul(p->t, x, y));
	}
	return x;
}

/* product { ( + | - ) product } */
static nb_tensor *parse_expression(struct parser *p)
{
	nb_tensor *x = parse_product(p);

	while (x && (p->tok.kind == T_PLUS || p->tok.kind == T_MINUS)) {
		struct token op = p->tok;
		nb_tensor *y;

		advance(p);
		if (!(y = parse_product(p)))
			return NULL;
		x = op_result(p, op.pos, op.kind == T_PLUS ? nb_add(p->t, x, y)
		                                           : nb_sub(p->t, x, y));
	}
	return x;
}

/* ---- Entry ------------------------------------------------------------------------ */

static bool is_name(const char *s)
{
	if (!is_name_start(*s))
		return false;
	while (is_name_char(*s))
		s++;
	return *s == '\0';
}

PRINTF_3_4 static bool bad_input(nb_tape *t, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	nb__error_vset(&t->err, status, fmt, ap);
	va_end(ap);
	return false;
}

/* The inputs are usable: named, distinct, on t. Errors have no position in the text. */
static bool inputs_ok(nb_tape *t, const nb_parse_input *in, size_t n)
{
	if (n && !in)
		return bad_input(t, NB_ENULL, "parse: inputs is NULL");
	for (size_t i = 0; i < n; i++) {
		if (!in[i].name)
			return bad_input(t, NB_ENULL, "parse: inputs[%zu].name is NULL", i);
		if (!is_name(in[i].name))
			return bad_input(t, NB_EINVAL, "parse: inputs[%zu].name '%.*s' is not a name "
			                "(a letter or _, then letters, digits or _)", i, QUOTE_MAX,
			                in[i].name);
		if (!in[i].x)
			return bad_input(t, NB_ENULL, "parse: inputs[%zu].x ('%.*s') is NULL", i,
			                QUOTE_MAX, in[i].name);
		if (in[i].x->tape != t)
			return bad_input(t, NB_ETAPE, "parse: inputs[%zu].x ('%.*s') belongs to another "
			                "tape", i, QUOTE_MAX, in[i].name);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(in[i].name, in[j].name))
				return bad_input(t, NB_EINVAL, "parse: inputs[%zu] and inputs[%zu] are both "
				                "named '%.*s'", j, i, QUOTE_MAX, in[i].name);
	}
	return true;
}

nb_tensor *nb_parse(nb_tape *t, const char *src, const nb_parse_input *inputs, size_t n,
                    nb_parse_loc *where)
{
	struct parser p = { t, src, inputs, n, { T_END, 0, 0, 0.0 }, 0, 0 };
	nb_tensor *y = NULL;
	size_t mark = nb_tape_mark(t);

	if (where)
		*where = (nb_parse_loc){ 0, 0, 0 };
	if (!t || t->err.status != NB_OK)
		return NULL;
	if (!src)
		return nb__fail(t, NB_ENULL, "parse: src is NULL");
	if (!inputs_ok(t, inputs, n))
		return NULL;
	p.tok = lex(src, 0);
	if (p.tok.kind == T_END)
		syntax(&p, p.tok.pos, "empty expression");
	else if ((y = parse_expression(&p)) && p.tok.kind != T_END)
		y = p.tok.kind == T_RPAREN ? syntax(&p, p.tok.pos, "unmatched ')'")
		                           : unexpected(&p, "an operator or the end");
	if (y)
		return y;
	nb_tape_rewind(t, mark);
	if (where)
		*where = locate(src, p.err_pos);
	return NULL;
}
