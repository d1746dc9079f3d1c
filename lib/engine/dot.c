/* dot.c -- a tape as a Graphviz DOT graph, so that people can look at how the backward
 * rules build the gradient graph (and where BP1-BP4 appear in it). */
#include <stdio.h>

#include "nabla_int.h"

static const char *fill_of(const nb_tensor *x)
{
	if (x->op == &nb__op_variable)
		return "#cfe2f3";  /* parameters: blue */
	if (x->op == &nb__op_constant || x->op == &nb__op_fill)
		return "#eeeeee";  /* data and literals: grey */
	return x->in_gradient ? "#fce5cd" : "#ffffff";  /* gradient graph: orange */
}

/* A name inside a quoted DOT string: quotes and backslashes escaped. */
static void write_escaped(FILE *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', out);
		fputc(*s, out);
	}
}

/* "name\nop (shape)", without the name line when there is none; literals and scalings
 * show their constant ("fill 1 ()", "scale 0.1 (10x10)"). */
static void write_node(FILE *out, const nb_tensor *x, const char *name)
{
	char s[NB_MSG_MAX];

	fprintf(out, "  n%zu [label=\"", x->id);
	write_escaped(out, name);
	fprintf(out, "%s%s", *name ? "\\n" : "", x->op->name);
	if (x->op == &nb__op_fill || x->op == &nb__op_scale)
		fprintf(out, " %g", x->attr.c);
	fprintf(out, " %s\", fillcolor=\"%s\"];\n", nb__shape_str(x->rank, x->dim, s),
	        fill_of(x));
}

int nb_tape_write_dot(const nb_tape *t, FILE *out)
{
	char gname[NB_NAME_MAX + 8];

	if (!t || !out)
		return NB_ENULL;
	fprintf(out, "digraph nabla {\n  rankdir=BT;\n"
	        "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", "
	        "fontsize=10];\n  edge [color=\"#666666\"];\n");
	for (size_t i = 0; i < t->n; i++) {
		const nb_tensor *x = t->node[i];

		write_node(out, x, x->name);
		for (int k = 0; k < x->op->arity; k++)
			fprintf(out, "  n%zu -> n%zu;\n", x->in[k]->id, x->id);
	}
	/* A later statement for the same node replaces its label: the gradient of a named
	 * node is called dC/dname. */
	for (size_t i = 0; i < t->n; i++) {
		const nb_tensor *x = t->node[i];

		if (!x->name[0] || !t->grads_valid || x->grad_sweep != t->sweep || x->grad == x)
			continue;
		snprintf(gname, sizeof gname, "dC/d%s", x->name);
		write_node(out, x->grad, gname);
	}
	fprintf(out, "}\n");
	/* A stream keeps what fits in its buffer: a write that fails (a full disk, say) shows
	 * only when that is flushed, and the caller's fclose() comes too late for our status. */
	if (fflush(out) != 0 || ferror(out))
		return NB_EIO;
	return NB_OK;
}
