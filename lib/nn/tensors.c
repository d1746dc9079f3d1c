/* tensors.c -- nb_tensors_save() and nb_tensors_load(): files of named tensors, model file
 * format version 2 (docs/model-format.md, "Version 2: named tensors").
 *
 * As model.c does for networks: a file is built whole in memory, little-endian byte by byte
 * whatever the host, checksummed with XXH3-64 and saved atomically (file.c); a load reads
 * the whole file, checks the checksum, then every field in file order, and only then
 * builds what it returns, in one block from the caller's allocator.
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "file.h"
#include "le.h"
#include "nn_int.h"

#define TNS_MAGIC "NABLATNS"
#define MODEL_V1_MAGIC "NABLAMLP"
#define TNS_VERSION 2
#define CHECKSUM_BYTES 8
/* Byte offsets of the header's fields (docs/model-format.md, "Version 2: layout"). */
#define OFF_VERSION 8
#define OFF_COUNT 12
#define OFF_DESC_LEN 16
#define OFF_DESC 24
#define MIN_FILE (OFF_DESC + CHECKSUM_BYTES)
/* The smallest tensor: name length, a 1-byte name, rank 0, one value. */
#define MIN_TENSOR (4 + 1 + 4 + 8)
#define NAME_MAX_LEN (NB_NAME_MAX - 1)
/* The largest file: a bound on memory for any input (as a version-1 file's), and so on
 * every count of the format, which all fit in size_t. */
#define TNS_MAX_BYTES ((uint64_t)1 << 30)
#define MAX_VALUES (TNS_MAX_BYTES / 8)
/* "(" and up to NB_MAX_RANK dims of 20 digits with "x" between, ")". */
#define SHAPE_STRLEN 96

/* One tensor as a file holds it or a caller passes it: its name (not NUL-terminated in a
 * file), shape, where its values are in the file (NULL for a caller's), where it starts,
 * and its index among the others. */
struct tensor_ref {
	const char *name;
	uint32_t name_len;
	uint32_t rank;
	uint64_t dim[NB_MAX_RANK];
	uint64_t count;
	const unsigned char *data;
	uint64_t at;
	size_t index;
};

/* ---- Shapes and names -------------------------------------------------------------- */

/* "(3x4)", "()" for a scalar, into buf of SHAPE_STRLEN bytes. */
static const char *shape_str(char *buf, uint32_t rank, const uint64_t *dim)
{
	size_t n = 0;

	buf[n++] = '(';
	for (uint32_t d = 0; d < rank; d++)
		n += (size_t)snprintf(buf + n, SHAPE_STRLEN - n, "%s%" PRIu64, d ? "x" : "",
		                      dim[d]);
	snprintf(buf + n, SHAPE_STRLEN - n, ")");
	return buf;
}

/* Names in byte order, shorter first when one is the other's prefix. */
static int name_cmp(const char *a, uint32_t alen, const char *b, uint32_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return (alen > blen) - (alen < blen);
}

static int ref_cmp(const void *pa, const void *pb)
{
	const struct tensor_ref *a = pa, *b = pb;
	int c = name_cmp(a->name, a->name_len, b->name, b->name_len);

	if (c != 0)
		return c;
	return (a->index > b->index) - (a->index < b->index);
}

static int index_cmp(const void *pa, const void *pb)
{
	const struct tensor_ref *a = pa, *b = pb;

	return (a->index > b->index) - (a->index < b->index);
}

/* Sort refs by name, then index. Return the first tensor (by index) whose name an earlier
 * one has, *orig that earlier one; NULL when the names are unique. */
static const struct tensor_ref *first_duplicate(struct tensor_ref *refs, size_t n,
                                                const struct tensor_ref **orig)
{
	const struct tensor_ref *dup = NULL;
	size_t run = 0;

	if (n < 2)
		return NULL;
	qsort(refs, n, sizeof *refs, ref_cmp);
	for (size_t i = 1; i < n; i++) {
		if (name_cmp(refs[i].name, refs[i].name_len, refs[run].name,
		             refs[run].name_len) != 0)
			run = i;
		else if (dup == NULL || refs[i].index < dup->index) {
			dup = &refs[i];
			*orig = &refs[run];
		}
	}
	return dup;
}

/* The ref with this name among n sorted by first_duplicate(), or NULL. */
static const struct tensor_ref *find_name(const struct tensor_ref *refs, size_t n,
                                          const char *name, uint32_t len)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = name_cmp(name, len, refs[mid].name, refs[mid].name_len);

		if (c == 0)
			return &refs[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static void *alloc_array(nb_alloc_fn alloc, void *ud, size_t n, size_t size)
{
	if (n == 0 || n > SIZE_MAX / size)
		return NULL;
	return alloc(ud, NULL, 0, n * size);
}

/* ---- Tensors a caller passes: the checks a load makes, before any I/O --------------- */

/* Check tensor i and describe it in *r. The values of a shape too large for a file (more
 * than MAX_VALUES) are counted as MAX_VALUES + 1, so nothing overflows. prefix is put
 * before each message ("" or "nb_tensors_load_into: "). */
static int check_tensor(const char *path, const char *prefix, const nb_named_tensor *t,
                        size_t i, struct tensor_ref *r, char *msg)
{
	size_t len;

	if (t->name == NULL)
		return nn__file_fail(msg, NB_ENULL, path, "%stensor %zu: name is NULL", prefix, i);
	len = strlen(t->name);
	if (len == 0)
		return nn__file_fail(msg, NB_EINVAL, path, "%stensor %zu: empty name", prefix, i);
	if (len > NAME_MAX_LEN)
		return nn__file_fail(msg, NB_EINVAL, path, "%stensor %zu: name \"%.*s...\" is %zu "
		                     "bytes, longer than %d", prefix, i, NAME_MAX_LEN, t->name,
		                     len, NAME_MAX_LEN);
	if (t->data == NULL)
		return nn__file_fail(msg, NB_ENULL, path, "%stensor %zu (\"%s\"): data is NULL",
		                     prefix, i, t->name);
	if (t->rank < 0 || t->rank > NB_MAX_RANK)
		return nn__file_fail(msg, NB_EINVAL, path, "%stensor %zu (\"%s\"): rank %d (0 to "
		                     "%d expected)", prefix, i, t->name, t->rank, NB_MAX_RANK);
	*r = (struct tensor_ref){ .name = t->name, .name_len = (uint32_t)len,
	                          .rank = (uint32_t)t->rank, .count = 1, .index = i };
	for (int d = 0; d < t->rank; d++) {
		if (t->dim[d] == 0)
			return nn__file_fail(msg, NB_EINVAL, path, "%stensor %zu (\"%s\"): "
			            "dimension %d is 0 (each is at least 1)", prefix, i, t->name,
			            d);
		r->dim[d] = t->dim[d];
		if (t->dim[d] > MAX_VALUES || r->count * t->dim[d] > MAX_VALUES)
			r->count = MAX_VALUES + 1;
		else
			r->count *= t->dim[d];
	}
	return NB_OK;
}

/* Check the n tensors one by one, then that their names are unique. Their refs (n of
 * them, from alloc, in the caller's order) go to *out. */
static int check_tensors(const char *path, const char *prefix, const nb_named_tensor *ts,
                         size_t n, nb_alloc_fn alloc, void *ud, struct tensor_ref **out,
                         char *msg)
{
	struct tensor_ref *refs = n ? alloc_array(alloc, ud, n, sizeof *refs) : NULL;
	const struct tensor_ref *dup, *orig = NULL;
	int status = NB_OK;

	if (n > 0 && refs == NULL)
		return nn__file_fail(msg, NB_ENOMEM, path, "%sout of memory", prefix);
	for (size_t i = 0; i < n && status == NB_OK; i++)
		status = check_tensor(path, prefix, &ts[i], i, &refs[i], msg);
	if (status == NB_OK && (dup = first_duplicate(refs, n, &orig)) != NULL)
		status = nn__file_fail(msg, NB_EINVAL, path, "%stensor %zu (\"%s\") has the name "
		                       "of tensor %zu", prefix, dup->index, ts[dup->index].name,
		                       orig->index);
	if (status == NB_OK) {
		if (n > 1)
			qsort(refs, n, sizeof *refs, index_cmp);
		*out = refs;
		return NB_OK;
	}
	if (refs)
		alloc(ud, refs, n * sizeof *refs, 0);
	return status;
}

/* ---- Saving ------------------------------------------------------------------------ */

/* The file's size for these tensors and a description of desc_len bytes, or UINT64_MAX
 * when it would exceed TNS_MAX_BYTES. Each term is bounded before it is added. */
static uint64_t file_size(const struct tensor_ref *refs, size_t n, size_t desc_len)
{
	uint64_t total = MIN_FILE;

	if (desc_len > TNS_MAX_BYTES || n > TNS_MAX_BYTES / MIN_TENSOR)
		return UINT64_MAX;
	total += desc_len;
	for (size_t i = 0; i < n && total <= TNS_MAX_BYTES; i++) {
		if (refs[i].count > MAX_VALUES)
			return UINT64_MAX;
		total += 4 + refs[i].name_len + 4 + 8 * refs[i].rank + 8 * refs[i].count;
	}
	return total <= TNS_MAX_BYTES ? total : UINT64_MAX;
}

/* Write the file into buf, len bytes: header, description, each tensor, checksum. The
 * values are copied as bits, never loaded as doubles, so NaN payloads survive. */
static void encode(unsigned char *buf, size_t len, const nb_named_tensor *ts,
                   const struct tensor_ref *refs, size_t n, const char *desc,
                   size_t desc_len)
{
	unsigned char *p = buf;

	memcpy(p, TNS_MAGIC, 8);
	p = nn__put_u32(p + 8, TNS_VERSION);
	p = nn__put_u32(p, (uint32_t)n);
	p = nn__put_u64(p, desc_len);
	memcpy(p, desc, desc_len);
	p += desc_len;
	for (size_t i = 0; i < n; i++) {
		const struct tensor_ref *r = &refs[i];

		p = nn__put_u32(p, r->name_len);
		memcpy(p, r->name, r->name_len);
		p = nn__put_u32(p + r->name_len, r->rank);
		for (uint32_t d = 0; d < r->rank; d++)
			p = nn__put_u64(p, r->dim[d]);
		for (uint64_t k = 0; k < r->count; k++) {
			uint64_t bits;

			memcpy(&bits, &ts[i].data[k], sizeof bits);
			p = nn__put_u64(p, bits);
		}
	}
	nn__put_u64(p, XXH3_64bits(buf, len - CHECKSUM_BYTES));
}

/* Check the tensors and build the file in a block of *len bytes from alloc (*buf). */
static int build_file(const char *path, const nb_named_tensor *ts, size_t n,
                      const char *desc, nb_alloc_fn alloc, void *ud, unsigned char **buf,
                      size_t *len, char *msg)
{
	struct tensor_ref *refs = NULL;
	size_t desc_len = strlen(desc);
	uint64_t size;
	int status = check_tensors(path, "", ts, n, alloc, ud, &refs, msg);

	if (status != NB_OK)
		return status;
	size = file_size(refs, n, desc_len);
	if (size == UINT64_MAX)
		status = nn__file_fail(msg, NB_EINVAL, path, "tensors too large for a tensor file "
		                       "(over %" PRIu64 " bytes)", TNS_MAX_BYTES);
	else if ((*buf = alloc(ud, NULL, 0, (size_t)size)) == NULL)
		status = nn__file_fail(msg, NB_ENOMEM, path, "out of memory allocating %" PRIu64
		                       " bytes", size);
	else {
		*len = (size_t)size;
		encode(*buf, *len, ts, refs, n, desc, desc_len);
	}
	if (refs)
		alloc(ud, refs, n * sizeof *refs, 0);
	return status;
}

int nb_tensors_save_opts(const char *path, const nb_named_tensor *tensors, size_t n,
                         const char *description, const nb_save_opts *opts,
                         char msg[NB_MSG_MAX])
{
	nb_alloc_fn alloc = opts && opts->alloc ? opts->alloc : nb_default_alloc;
	void *ud = opts && opts->alloc ? opts->alloc_ud : NULL;
	unsigned char *buf = NULL;
	size_t len = 0;
	int old_mode, status;

	if (path == NULL)
		return nn__msg_fail(msg, NB_ENULL, "nb_tensors_save: path is NULL");
	if (tensors == NULL && n > 0)
		return nn__msg_fail(msg, NB_ENULL, "nb_tensors_save: tensors is NULL");
	status = nn__check_target(path, &old_mode, msg);
	if (status == NB_OK)
		status = build_file(path, tensors, n, description ? description : "", alloc, ud,
		                    &buf, &len, msg);
	if (status != NB_OK)
		return status;
	status = nn__replace_file(alloc, ud, path, old_mode, buf, len, msg);
	alloc(ud, buf, len, 0);
	return status;
}

int nb_tensors_save(const char *path, const nb_named_tensor *tensors, size_t n,
                    const char *description, char msg[NB_MSG_MAX])
{
	return nb_tensors_save_opts(path, tensors, n, description, NULL, msg);
}

/* ---- Loading: the checks of docs/model-format.md, in order ------------------------- */

/* One load: the file's bytes, where the checksum starts (end), and the caller's choices. */
struct tns_load {
	const char *path;
	const unsigned char *f;
	size_t len;
	uint64_t end;
	nb_alloc_fn alloc;
	void *ud;
	size_t max_bytes;
	char *msg;
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int load_fail(const struct tns_load *ld, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	nn__file_vfail(ld->msg, status, ld->path, fmt, ap);
	va_end(ap);
	return status;
}

/* Steps 2 to 5: length, magic (a version-1 file is named as such), version, checksum. */
static int check_header(struct tns_load *ld)
{
	const unsigned char *f = ld->f;
	uint64_t stored, computed;

	if (ld->len >= 8 && memcmp(f, MODEL_V1_MAGIC, 8) == 0)
		return load_fail(ld, NB_EFORMAT, "version 1 file: a network, which nb_net_load() "
		                 "reads");
	if (ld->len < MIN_FILE)
		return load_fail(ld, NB_EFORMAT, "truncated: %zu bytes, shorter than the %d-byte "
		                 "header and checksum", ld->len, MIN_FILE);
	if (memcmp(f, TNS_MAGIC, 8) != 0)
		return load_fail(ld, NB_EFORMAT, "bad magic at byte 0 (not a nabla tensor file)");
	if (nn__get_u32(f + OFF_VERSION) != TNS_VERSION)
		return load_fail(ld, NB_EFORMAT, "unsupported version %" PRIu32 " at byte %d "
		                 "(this nabla reads version %d)", nn__get_u32(f + OFF_VERSION),
		                 OFF_VERSION, TNS_VERSION);
	ld->end = ld->len - CHECKSUM_BYTES;
	stored = nn__get_u64(f + ld->end);
	computed = XXH3_64bits(f, (size_t)ld->end);
	if (stored != computed)
		return load_fail(ld, NB_EFORMAT, "checksum mismatch at byte %" PRIu64 " (stored "
		                 "0x%016" PRIx64 ", computed 0x%016" PRIx64 "): the file is "
		                 "corrupt or truncated", ld->end, stored, computed);
	return NB_OK;
}

/* Step 6, the description and the count; *count is bounded by the bytes left. */
static int check_description(const struct tns_load *ld, uint32_t *count)
{
	uint64_t desc_len = nn__get_u64(ld->f + OFF_DESC_LEN), left;
	const unsigned char *nul;

	if (desc_len > ld->end - OFF_DESC)
		return load_fail(ld, NB_EFORMAT, "description of %" PRIu64 " bytes at byte %d "
		                 "runs past the end of the data (byte %" PRIu64 ")", desc_len,
		                 OFF_DESC_LEN, ld->end);
	nul = memchr(ld->f + OFF_DESC, '\0', (size_t)desc_len);
	if (nul != NULL)
		return load_fail(ld, NB_EFORMAT, "description has a NUL byte at byte %td",
		                 nul - ld->f);
	*count = nn__get_u32(ld->f + OFF_COUNT);
	left = ld->end - OFF_DESC - desc_len;
	if (*count > left / MIN_TENSOR)
		return load_fail(ld, NB_EFORMAT, "%" PRIu32 " tensors at byte %d cannot fit in "
		                 "the %" PRIu64 " bytes after the description (a tensor takes at "
		                 "least %d)", *count, OFF_COUNT, left, MIN_TENSOR);
	return NB_OK;
}

/* What a tensor's messages start with: "tensor 2", and its name once it is known. */
static const char *tensor_label(char *buf, const struct tensor_ref *r)
{
	if (r->name == NULL)
		snprintf(buf, NB_MSG_MAX, "tensor %zu", r->index);
	else
		snprintf(buf, NB_MSG_MAX, "tensor %zu (\"%.*s\")", r->index, (int)r->name_len,
		         r->name);
	return buf;
}

/* Whether bytes more bytes are there at *at before the checksum; if not, the message
 * "LABEL: WHAT at byte AT runs past the end of the data (byte END)". */
static int need(const struct tns_load *ld, const struct tensor_ref *r, uint64_t at,
                uint64_t bytes, const char *what)
{
	char label[NB_MSG_MAX];

	if (bytes <= ld->end - at)
		return NB_OK;
	return load_fail(ld, NB_EFORMAT, "%s: %s at byte %" PRIu64 " runs past the end of the "
	                 "data (byte %" PRIu64 ")", tensor_label(label, r), what, at, ld->end);
}

/* The name of the tensor at *at into r, checked. */
static int read_name(const struct tns_load *ld, struct tensor_ref *r, uint64_t *at)
{
	const unsigned char *nul;
	uint32_t len;
	int status = need(ld, r, *at, 4, "name length");

	if (status != NB_OK)
		return status;
	len = nn__get_u32(ld->f + *at);
	if (len < 1 || len > NAME_MAX_LEN)
		return load_fail(ld, NB_EFORMAT, "tensor %zu: name length %" PRIu32 " at byte %"
		                 PRIu64 " (1 to %d expected)", r->index, len, *at, NAME_MAX_LEN);
	*at += 4;
	if ((status = need(ld, r, *at, len, "name")) != NB_OK)
		return status;
	nul = memchr(ld->f + *at, '\0', len);
	if (nul != NULL)
		return load_fail(ld, NB_EFORMAT, "tensor %zu: name has a NUL byte at byte %td",
		                 r->index, nul - ld->f);
	r->name = (const char *)ld->f + *at;
	r->name_len = len;
	*at += len;
	return NB_OK;
}

/* The rank and dims of the tensor at *at into r, checked, and its values' count, which
 * must fit in the bytes left: bounding each factor by them first keeps the product from
 * overflowing, whatever the file says. */
static int read_shape(const struct tns_load *ld, struct tensor_ref *r, uint64_t *at)
{
	char label[NB_MSG_MAX], what[NB_MSG_MAX], shape[SHAPE_STRLEN];
	uint64_t left;
	int status = need(ld, r, *at, 4, "rank");

	if (status != NB_OK)
		return status;
	r->rank = nn__get_u32(ld->f + *at);
	if (r->rank > NB_MAX_RANK)
		return load_fail(ld, NB_EFORMAT, "%s: rank %" PRIu32 " at byte %" PRIu64 " (0 to "
		                 "%d expected)", tensor_label(label, r), r->rank, *at,
		                 NB_MAX_RANK);
	*at += 4;
	for (uint32_t d = 0; d < r->rank; d++, *at += 8) {
		snprintf(what, sizeof what, "dimension %" PRIu32, d);
		if ((status = need(ld, r, *at, 8, what)) != NB_OK)
			return status;
		r->dim[d] = nn__get_u64(ld->f + *at);
		if (r->dim[d] == 0)
			return load_fail(ld, NB_EFORMAT, "%s: dimension %" PRIu32 " is 0 at byte %"
			                 PRIu64 " (each is at least 1)", tensor_label(label, r), d,
			                 *at);
	}
	left = (ld->end - *at) / 8;
	r->count = 1;
	for (uint32_t d = 0; d < r->rank && r->count <= left; d++)
		r->count = r->dim[d] > left ? left + 1 : r->count * r->dim[d];
	if (r->count > left) {  /* no count of bytes is enough: need() fails */
		snprintf(what, sizeof what, "data of shape %s", shape_str(shape, r->rank, r->dim));
		return need(ld, r, *at, UINT64_MAX, what);
	}
	r->data = ld->f + *at;
	*at += 8 * r->count;
	return NB_OK;
}

/* Step 6, the tensors: each in turn into refs[0..count-1], then nothing left over. */
static int read_tensors(const struct tns_load *ld, struct tensor_ref *refs, uint32_t count)
{
	uint64_t at = OFF_DESC + nn__get_u64(ld->f + OFF_DESC_LEN);
	int status = NB_OK;

	for (uint32_t i = 0; i < count && status == NB_OK; i++) {
		refs[i] = (struct tensor_ref){ .index = i, .at = at };
		status = read_name(ld, &refs[i], &at);
		if (status == NB_OK)
			status = read_shape(ld, &refs[i], &at);
	}
	if (status == NB_OK && at != ld->end)
		return load_fail(ld, NB_EFORMAT, "%" PRIu64 " bytes after the last tensor (byte %"
		                 PRIu64 ")", ld->end - at, at);
	return status;
}

/* Read and check the whole file: its bytes into *buf (*cap of them, from the load's
 * allocator), its tensors into *refs (*count, from the allocator too, sorted by name).
 * On error both are freed and NULL. */
static int load_checked(struct tns_load *ld, unsigned char **buf, size_t *cap,
                        struct tensor_ref **refs, uint32_t *count)
{
	const struct tensor_ref *dup, *orig = NULL;
	char label[NB_MSG_MAX];
	int status;

	*refs = NULL;
	*count = 0;
	status = nn__read_file(ld->path, ld->alloc, ld->ud, TNS_MAX_BYTES, ld->max_bytes,
	                       "tensor", buf, cap, &ld->len, ld->msg);
	if (status != NB_OK)
		return status;
	ld->f = *buf;
	status = check_header(ld);
	if (status == NB_OK)
		status = check_description(ld, count);
	if (status == NB_OK && *count > 0 &&
	    (*refs = alloc_array(ld->alloc, ld->ud, *count, sizeof **refs)) == NULL)
		status = load_fail(ld, NB_ENOMEM, "out of memory");
	if (status == NB_OK)
		status = read_tensors(ld, *refs, *count);
	if (status == NB_OK && (dup = first_duplicate(*refs, *count, &orig)) != NULL)
		status = load_fail(ld, NB_EFORMAT, "%s at byte %" PRIu64 " has the name of tensor "
		                   "%zu", tensor_label(label, dup), dup->at, orig->index);
	if (status == NB_OK)
		return NB_OK;
	if (*refs)
		ld->alloc(ld->ud, *refs, *count * sizeof **refs, 0);
	if (*buf)
		ld->alloc(ld->ud, *buf, *cap, 0);
	*refs = NULL;
	*buf = NULL;
	return status;
}

static void load_release(const struct tns_load *ld, unsigned char *buf, size_t cap,
                         struct tensor_ref *refs, uint32_t count)
{
	if (refs)
		ld->alloc(ld->ud, refs, count * sizeof *refs, 0);
	if (buf)
		ld->alloc(ld->ud, buf, cap, 0);
}

/* n values of the file at p into data, as bits. */
static void copy_values(double *data, const unsigned char *p, uint64_t n)
{
	for (uint64_t k = 0; k < n; k++, p += 8) {
		uint64_t bits = nn__get_u64(p);

		memcpy(&data[k], &bits, sizeof bits);
	}
}

/* The block of nb_tensor_file: the tensors, then all their values (*values of them),
 * their names, the description. Every term is bounded by the checked file, so the sum
 * fits in 64 bits. */
static uint64_t block_size(const struct tensor_ref *refs, uint32_t count, uint64_t desc_len,
                           uint64_t *values)
{
	uint64_t bytes = (uint64_t)count * sizeof(nb_named_tensor) + desc_len + 1;

	*values = 0;
	for (uint32_t i = 0; i < count; i++) {
		*values += refs[i].count;
		bytes += 8 * refs[i].count + refs[i].name_len + 1;
	}
	return bytes;
}

/* Step 7: the tensors in the file's order, in one block from the load's allocator. */
static int build_result(const struct tns_load *ld, const struct tensor_ref *refs,
                        uint32_t count, nb_tensor_file *out)
{
	uint64_t desc_len = nn__get_u64(ld->f + OFF_DESC_LEN), total;
	uint64_t bytes = block_size(refs, count, desc_len, &total);
	unsigned char *block;
	double *values;
	char *text;

	if (bytes > SIZE_MAX || (block = ld->alloc(ld->ud, NULL, 0, (size_t)bytes)) == NULL)
		return load_fail(ld, NB_ENOMEM, "out of memory allocating %" PRIu64 " bytes",
		                 bytes);
	*out = (nb_tensor_file){ .n = count, .tensors = (nb_named_tensor *)(void *)block,
	                         .bytes = (size_t)bytes, .alloc = ld->alloc,
	                         .alloc_ud = ld->ud };
	values = (double *)(void *)(block + count * sizeof(nb_named_tensor));
	text = (char *)(values + total);
	for (uint32_t i = 0; i < count; i++) {  /* refs are sorted by name: place each */
		const struct tensor_ref *r = &refs[i];
		nb_named_tensor *t = &out->tensors[r->index];

		*t = (nb_named_tensor){ .name = text, .rank = (int)r->rank, .data = values };
		for (uint32_t d = 0; d < r->rank; d++)
			t->dim[d] = (size_t)r->dim[d];
		copy_values(values, r->data, r->count);
		values += r->count;
		memcpy(text, r->name, r->name_len);
		text[r->name_len] = '\0';
		text += r->name_len + 1;
	}
	out->description = text;
	memcpy(text, ld->f + OFF_DESC, (size_t)desc_len);
	text[desc_len] = '\0';
	return NB_OK;
}

static struct tns_load load_settings(const char *path, const nb_load_opts *opts, char *msg)
{
	struct tns_load ld = { .path = path, .msg = msg };

	nn__load_settings(opts, &ld.alloc, &ld.ud, &ld.max_bytes);
	return ld;
}

int nb_tensors_load(const char *path, const nb_load_opts *opts, nb_tensor_file *out,
                    char msg[NB_MSG_MAX])
{
	struct tns_load ld = load_settings(path, opts, msg);
	struct tensor_ref *refs;
	unsigned char *buf;
	size_t cap;
	uint32_t count;
	int status;

	if (out != NULL)
		*out = (nb_tensor_file){ 0 };
	if (path == NULL)
		return nn__msg_fail(msg, NB_ENULL, "nb_tensors_load: path is NULL");
	if (out == NULL)
		return nn__msg_fail(msg, NB_ENULL, "nb_tensors_load: out is NULL");
	status = load_checked(&ld, &buf, &cap, &refs, &count);
	if (status != NB_OK)
		return status;
	status = build_result(&ld, refs, count, out);
	load_release(&ld, buf, cap, refs, count);
	return status;
}

/* Find the file's tensor for the caller's r, of exactly r's shape, and point r->data at
 * its values in the file; else NB_EFORMAT. */
static int match(const struct tns_load *ld, const struct tensor_ref *refs, uint32_t count,
                 struct tensor_ref *r)
{
	char want[SHAPE_STRLEN], have[SHAPE_STRLEN];
	const struct tensor_ref *f = find_name(refs, count, r->name, r->name_len);

	if (f == NULL)
		return load_fail(ld, NB_EFORMAT, "tensor \"%s\" is not in the file", r->name);
	if (f->rank != r->rank || memcmp(f->dim, r->dim, r->rank * sizeof *r->dim) != 0)
		return load_fail(ld, NB_EFORMAT, "tensor \"%s\" is %s in the file (tensor %zu at "
		                 "byte %" PRIu64 "), not %s", r->name,
		                 shape_str(have, f->rank, f->dim), f->index, f->at,
		                 shape_str(want, r->rank, r->dim));
	r->data = f->data;
	return NB_OK;
}

int nb_tensors_load_into(const char *path, const nb_load_opts *opts,
                         const nb_named_tensor *tensors, size_t n, char msg[NB_MSG_MAX])
{
	struct tns_load ld = load_settings(path, opts, msg);
	struct tensor_ref *want = NULL, *refs;
	unsigned char *buf;
	size_t cap;
	uint32_t count;
	int status;

	if (path == NULL)
		return nn__msg_fail(msg, NB_ENULL, "nb_tensors_load_into: path is NULL");
	if (tensors == NULL && n > 0)
		return nn__msg_fail(msg, NB_ENULL, "nb_tensors_load_into: tensors is NULL");
	status = check_tensors(path, "nb_tensors_load_into: ", tensors, n, ld.alloc, ld.ud,
	                       &want, msg);
	if (status != NB_OK)
		return status;
	status = load_checked(&ld, &buf, &cap, &refs, &count);
	for (size_t i = 0; i < n && status == NB_OK; i++)
		status = match(&ld, refs, count, &want[i]);
	/* Everything is checked: only now is the caller's data written. */
	for (size_t i = 0; i < n && status == NB_OK; i++)
		copy_values(tensors[i].data, want[i].data, want[i].count);
	load_release(&ld, buf, cap, refs, count);
	if (want)
		ld.alloc(ld.ud, want, n * sizeof *want, 0);
	return status;
}

void nb_tensors_free(nb_tensor_file *f)
{
	if (f == NULL)
		return;
	if (f->alloc != NULL && f->tensors != NULL)
		f->alloc(f->alloc_ud, f->tensors, f->bytes, 0);
	*f = (nb_tensor_file){ 0 };
}
