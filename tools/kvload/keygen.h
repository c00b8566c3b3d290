/*
 * keygen.h - the key space every KV benchmark of this project draws from:
 * key i of a space of N is "key:" followed by i in decimal, zero-padded to
 * the key size (16 bytes by default, FaRM's setting), its value is
 * value_fill(i), and keys are drawn uniformly or from a Zipf distribution
 * (theta 0.99 by default, YCSB's generator after Gray et al., "Quickly
 * generating billion-record synthetic databases", with ranks scrambled by a
 * hash so the hot keys are spread over the table, as YCSB's
 * ScrambledZipfian does).
 *
 * Header-only (static inline) because two programs use it: kvload (the
 * memcached-protocol load generator) and farmd (`bench kv`, the native
 * client), and each tools/<name>/ directory builds one program; farmd
 * includes it as "../kvload/keygen.h". Same key space, same draws: the
 * native and the protocol clients read the same keys.
 */
#ifndef KVLOAD_KEYGEN_H
#define KVLOAD_KEYGEN_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define KEYGEN_KEY_MIN 8u
#define KEYGEN_KEY_MAX 250u

struct keygen {
	uint64_t n;	/* keys */
	uint32_t ksize; /* key bytes */
	bool zipf;
	double theta, alpha, zetan, eta, half_pow_theta;
	uint64_t rng;
};

static inline uint64_t keygen_rand(struct keygen *g)
{
	/* xorshift64* */
	g->rng ^= g->rng >> 12;
	g->rng ^= g->rng << 25;
	g->rng ^= g->rng >> 27;
	return g->rng * 2685821657736338717ull;
}

static inline double keygen_unit(struct keygen *g)
{
	return (double)(keygen_rand(g) >> 11) * (1.0 / 9007199254740992.0);
}

/* Set up a key space; theta <= 0 means uniform. seed != 0. Computing
 * zeta(n) costs n pow() calls (about 10 ms per million keys). */
static inline int keygen_init(struct keygen *g, uint64_t n, uint32_t ksize, double theta,
			      uint64_t seed)
{
	memset(g, 0, sizeof(*g));
	char digits[24];

	if (n < 1 || ksize < KEYGEN_KEY_MIN || ksize > KEYGEN_KEY_MAX || theta >= 1.0)
		return -1;
	/* the largest index must fit after "key:" */
	if ((uint32_t)snprintf(digits, sizeof(digits), "%llu", (unsigned long long)(n - 1)) >
	    ksize - 4)
		return -1;
	g->n = n;
	g->ksize = ksize;
	g->rng = seed ? seed : 0x9E3779B97F4A7C15ull;
	g->zipf = theta > 0;
	g->theta = theta;
	if (g->zipf) {
		double zeta2 = 1.0 + pow(0.5, theta);
		for (uint64_t i = 1; i <= n; i++)
			g->zetan += 1.0 / pow((double)i, theta);
		g->alpha = 1.0 / (1.0 - theta);
		g->eta = (1.0 - pow(2.0 / (double)n, 1.0 - theta)) / (1.0 - zeta2 / g->zetan);
		g->half_pow_theta = 1.0 + pow(0.5, theta);
	}
	return 0;
}

static inline uint64_t keygen_scramble(uint64_t x)
{
	/* splitmix64's finaliser: a bijection-quality mix */
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

/* The index of the next key to use. */
static inline uint64_t keygen_next(struct keygen *g)
{
	double u, uz;
	uint64_t rank;

	if (!g->zipf)
		return keygen_rand(g) % g->n;
	u = keygen_unit(g);
	uz = u * g->zetan;
	if (uz < 1.0)
		rank = 0;
	else if (uz < g->half_pow_theta)
		rank = 1;
	else
		rank = (uint64_t)((double)g->n * pow(g->eta * u - g->eta + 1.0, g->alpha));
	if (rank >= g->n)
		rank = g->n - 1;
	return keygen_scramble(rank) % g->n;
}

/* Key i: "key:" and i zero-padded to ksize bytes (no NUL). By hand, not
 * snprintf: the native client makes one key per lookup of ~100 ns, and
 * snprintf alone cost about half of that. */
static inline void keygen_key(const struct keygen *g, uint64_t i, char *out)
{
	char *p = out + g->ksize;

	memcpy(out, "key:", 4);
	memset(out + 4, '0', g->ksize - 4);
	do {
		*--p = (char)('0' + i % 10);
		i /= 10;
	} while (i && p > out + 4);
}

/* The value of key i: printable, recognisable, no CR or LF. */
static inline void keygen_value(uint64_t i, char *out, size_t vsize)
{
	for (size_t j = 0; j < vsize; j++)
		out[j] = (char)('a' + (i + j) % 26);
}

#endif /* KVLOAD_KEYGEN_H */
