/* net_file.c -- networks in model file format version 2: a file of named tensors
 * (tensors.c) whose description is the network's configuration as text (net_text.c) and
 * whose tensors are its parameters, w1, b1, w2, b2, ... (nb_net_tensors()). model.c
 * writes a network here when version 1 cannot hold it, and reads both versions. */
#include <math.h>
#include <string.h>

#include "file.h"
#include "net_file.h"
#include "net_text.h"

static size_t values_of(const nb_named_tensor *t)
{
	size_t size = 1;

	for (int d = 0; d < t->rank; d++)
		size *= t->dim[d];
	return size;
}

bool nn__non_finite(const nb_named_tensor *ts, size_t n, size_t *t, size_t *j)
{
	for (*t = 0; *t < n; (*t)++)
		for (*j = 0; *j < values_of(&ts[*t]); (*j)++)
			if (!isfinite(ts[*t].data[*j]))
				return true;
	return false;
}

int nn__net_save_v2(const nb_net *net, const char *path, char *msg)
{
	nb_net_config cfg = nb_net_get_config(net);
	size_t n = nb_net_tensors((nb_net *)net, NULL, 0);
	size_t len = nn__net_describe(&cfg, NULL, 0) + 1;
	nb_named_tensor *ts = cfg.alloc(cfg.alloc_ud, NULL, 0, n * sizeof *ts);
	char *text = cfg.alloc(cfg.alloc_ud, NULL, 0, len);
	nb_save_opts opts = { cfg.alloc, cfg.alloc_ud };
	int status = NB_OK;
	size_t k, j;

	if (!ts || !text)
		status = nn__file_fail(msg, NB_ENOMEM, path, "out of memory describing the network");
	if (status == NB_OK) {
		nb_net_tensors((nb_net *)net, ts, n);
		nn__net_describe(&cfg, text, len);
		if (nn__non_finite(ts, n, &k, &j))
			status = nn__file_fail(msg, NB_EINVAL, path, "parameter %s[%zu] is %g, which "
			                       "a model file of a network cannot hold (it would not "
			                       "load)", ts[k].name, j, ts[k].data[j]);
	}
	if (status == NB_OK)
		status = nb_tensors_save_opts(path, ts, n, text, &opts, msg);
	if (ts)
		cfg.alloc(cfg.alloc_ud, ts, n * sizeof *ts, 0);
	if (text)
		cfg.alloc(cfg.alloc_ud, text, len, 0);
	return status;
}

/* The file's tensor named name, or NULL. */
static const nb_named_tensor *find(const nb_tensor_file *f, const char *name)
{
	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->tensors[i].name, name))
			return &f->tensors[i];
	return NULL;
}

/* Every parameter of net from the file, which must hold exactly them, in their shapes,
 * all finite. */
static int copy_params(nb_net *net, const nb_tensor_file *f, const char *path, char *msg)
{
	nb_named_tensor ts[2 * NB_NET_MAX_LAYERS];
	size_t n = nb_net_tensors(net, ts, 2 * NB_NET_MAX_LAYERS), k, j;

	if (f->n != n)
		return nn__file_fail(msg, NB_EFORMAT, path, "%zu tensors for a network of %zu "
		                     "parameters", f->n, n);
	if (nn__non_finite(f->tensors, f->n, &k, &j))
		return nn__file_fail(msg, NB_EFORMAT, path, "parameter %s[%zu] is %g",
		                     f->tensors[k].name, j, f->tensors[k].data[j]);
	for (size_t i = 0; i < n; i++) {
		const nb_named_tensor *t = find(f, ts[i].name);

		if (!t)
			return nn__file_fail(msg, NB_EFORMAT, path, "parameter %s is not in the file",
			                     ts[i].name);
		if (t->rank != ts[i].rank ||
		    memcmp(t->dim, ts[i].dim, (size_t)t->rank * sizeof *t->dim))
			return nn__file_fail(msg, NB_EFORMAT, path, "parameter %s has the wrong shape "
			                     "for the network described", ts[i].name);
	}
	for (size_t i = 0; i < n; i++)
		memcpy(ts[i].data, find(f, ts[i].name)->data, values_of(&ts[i]) * sizeof(double));
	return NB_OK;
}

int nn__net_load_v2(const char *path, const nb_load_opts *opts, nb_net **out, char *msg)
{
	nb_alloc_fn alloc;
	void *ud;
	size_t max_bytes;
	nb_tensor_file f = { 0 };
	struct nn_net_text *d = NULL;
	char why[NB_MSG_MAX];
	int status;

	nn__load_settings(opts, &alloc, &ud, &max_bytes);
	status = nb_tensors_load(path, opts, &f, msg);
	if (status == NB_OK && !f.description[0])
		status = nn__file_fail(msg, NB_EFORMAT, path, "a file of named tensors without a "
		                       "network (nb_tensors_load() reads it)");
	if (status == NB_OK) {
		d = alloc(ud, NULL, 0, sizeof *d);
		if (!d)
			status = nn__file_fail(msg, NB_ENOMEM, path, "out of memory");
	}
	if (status == NB_OK && nn__net_parse(f.description, d, why) != NB_OK)
		status = nn__file_fail(msg, NB_EFORMAT, path, "%s", why);
	if (status == NB_OK) {
		d->cfg.alloc = alloc;
		d->cfg.alloc_ud = ud;
		status = nb_net_new(&d->cfg, out, why);
		if (status != NB_OK)  /* what nb_net_new() refuses is the file's */
			status = nn__file_fail(msg, status == NB_ENOMEM ? NB_ENOMEM : NB_EFORMAT, path,
			                       "%s", why);
	}
	if (status == NB_OK)
		status = copy_params(*out, &f, path, msg);
	if (status != NB_OK && out && *out) {
		nb_net_free(*out);
		*out = NULL;
	}
	if (d)
		alloc(ud, d, sizeof *d, 0);
	nb_tensors_free(&f);
	return status;
}
