/* le.h -- little-endian integers and doubles in the bytes of model files, whatever the
 * host's byte order (model.c writes version 1, tensors.c version 2). */
#ifndef NN_LE_H
#define NN_LE_H

#include <stdint.h>
#include <string.h>

static inline unsigned char *nn__put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
	return p + 4;
}

static inline unsigned char *nn__put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
	return p + 8;
}

/* A double as the little-endian u64 of its bits: exact, NaN payloads and -0 included. */
static inline unsigned char *nn__put_f64(unsigned char *p, double v)
{
	uint64_t bits;

	memcpy(&bits, &v, sizeof bits);
	return nn__put_u64(p, bits);
}

static inline uint32_t nn__get_u32(const unsigned char *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline uint64_t nn__get_u64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline double nn__get_f64(const unsigned char *p)
{
	uint64_t bits = nn__get_u64(p);
	double v;

	memcpy(&v, &bits, sizeof v);
	return v;
}

#endif
