/* rng.c -- nb_rng: xoshiro256** (Blackman and Vigna), seeded through splitmix64. */
#include <math.h>
#include <stdint.h>

#include "nabla.h"


static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

void nb_rng_seed(nb_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t nb_rng_next(nb_rng *r)
{
	uint64_t *s = r->s, result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double nb_rng_uniform(nb_rng *r)
{
	return (double)(nb_rng_next(r) >> 11) * 0x1.0p-53;
}

double nb_rng_normal(nb_rng *r)
{
	double u1 = nb_rng_uniform(r), u2 = nb_rng_uniform(r);

	/* 1 - u1 is in (0, 1], so the logarithm is finite. */
	return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
}

/* Rejection of the top partial range keeps every value equally likely. */
size_t nb_rng_below(nb_rng *r, size_t n)
{
	if (n == 0)
		return 0;
	uint64_t limit = UINT64_MAX - UINT64_MAX % n, v;

	do
		v = nb_rng_next(r);
	while (v >= limit);
	return (size_t)(v % n);
}
