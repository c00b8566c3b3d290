/*
 * kv_hash.c - the key hash of the key-value store: 64 bits, keyed by the
 * table's random seed so that keys cannot be chosen to pile into one
 * neighbourhood (hash flooding), and cheap on FaRM's 16-byte keys (two
 * multiplications). The top bits pick the directory entry and the low bits
 * the home slot, so the finaliser must mix into both ends (it does: every
 * output bit depends on every input bit through the 128-bit products).
 */
#include "kv_int.h"

#define KV_P0 0xa0761d6478bd642full
#define KV_P1 0xe7037ed1a0b428dbull
#define KV_P2 0x8ebc6af09c88c6e3ull

static inline uint64_t mum(uint64_t a, uint64_t b)
{
	__uint128_t r = (__uint128_t)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t tail(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	memcpy(&v, p, n);
	return v;
}

uint64_t kv__hash_default(const void *key, size_t klen, uint64_t seed)
{
	const uint8_t *p = key;
	uint64_t h = seed ^ mum(klen ^ KV_P0, KV_P1);
	size_t n = klen;

	while (n >= 16) {
		h = mum(kv_get64(p) ^ KV_P1, kv_get64(p + 8) ^ h);
		p += 16;
		n -= 16;
	}
	uint64_t a = 0, b = 0;
	if (n > 8) {
		a = kv_get64(p);
		b = tail(p + 8, n - 8);
	} else if (n) {
		a = tail(p, n);
	}
	h = mum(a ^ KV_P1 ^ h, b ^ KV_P2);
	return mum(h ^ KV_P0, h ^ KV_P2 ^ klen);
}

void farm_kv__set_hash(struct farm_kv *kv, kv_hash_fn fn)
{
	if (kv)
		kv->hash = fn ? fn : kv__hash_default;
}
