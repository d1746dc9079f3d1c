/* rng.h -- the library's random numbers: xoshiro256** seeded through splitmix64, so that
 * a network's initialisation and shuffling are reproducible bit for bit from one seed. */
#ifndef NB_RNG_H
#define NB_RNG_H

#include <stddef.h>
#include <stdint.h>

struct nb_rng {
	uint64_t s[4];
};

void nb__rng_seed(struct nb_rng *r, uint64_t seed);
uint64_t nb__rng_next(struct nb_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double nb__rng_uniform(struct nb_rng *r);
/* Standard normal (Box-Muller; one value per call). */
double nb__rng_normal(struct nb_rng *r);
/* Uniform in 0..n-1 without modulo bias (n >= 1). */
size_t nb__rng_below(struct nb_rng *r, size_t n);

#endif
