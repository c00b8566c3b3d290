/*
 * fuzz_memcache.c - libFuzzer harness for the memcached gateway's protocol
 * engine: the parser (mc_parse in src/farm/memcache.c), the executor
 * (src/farm/memcache_exec.c) and the connection stream
 * (src/farm/memcache_conn.c) that every byte a client sends goes through.
 *
 * Two checks per input. (1) mc_parse on an exact-size heap copy (ASan sees
 * any read past the end): it consumes no more than it was given, and every
 * pointer it returns lies inside the input, keys within memcached's 250
 * bytes. (2) The input as a client stream, cut into chunks whose sizes come
 * from the input itself, through a connection over a small in-harness store
 * with a value limit of 512 bytes: no crash, and the memory bounds hold
 * (input buffer, reply backlog).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
 *         tests/fuzz/fuzz_memcache.c src/farm/memcache.c \
 *         src/farm/memcache_exec.c src/farm/memcache_conn.c -o fuzz_memcache
 *   ./fuzz_memcache -dict=tests/fuzz/fuzz_memcache.dict -max_total_time=10
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/farm/memcache.h"

#define MAXV   512u
#define NITEMS 8
#define HIGH   4096u

struct item {
	char key[MC_KEY_MAX];
	size_t klen, vlen;
	uint8_t val[MAXV + MC_ITEM_HDR_MAX];
	uint64_t ver;
	int used;
};

static struct item items[NITEMS];
static uint64_t next_ver;

static struct item *find(const void *key, size_t klen)
{
	for (int i = 0; i < NITEMS; i++)
		if (items[i].used && items[i].klen == klen && memcmp(items[i].key, key, klen) == 0)
			return &items[i];
	return NULL;
}

static int put_at(struct item *it, const void *key, size_t klen, const void *val, size_t vlen,
		  uint64_t *ver)
{
	if (klen > MC_KEY_MAX || vlen > sizeof(it ? it->val : items[0].val))
		return -EFBIG;
	if (!it) {
		for (int i = 0; i < NITEMS && !it; i++)
			if (!items[i].used)
				it = &items[i];
		if (!it)
			return -ENOSPC; /* a full store is a case to cover too */
		it->used = 1;
		memcpy(it->key, key, klen);
		it->klen = klen;
	}
	memmove(it->val, val, vlen);
	it->vlen = vlen;
	it->ver = ++next_ver;
	if (ver)
		*ver = it->ver;
	return 0;
}

static int s_get(void *s, const void *key, size_t klen, void *val, size_t cap, size_t *vlen,
		 uint64_t *ver)
{
	struct item *it = find(key, klen);

	if (!it)
		return -ENOENT;
	if (vlen)
		*vlen = it->vlen;
	if (it->vlen > cap)
		return -ENOBUFS;
	memcpy(val, it->val, it->vlen);
	if (ver)
		*ver = it->ver;
	return 0;
}

static int s_put(void *s, const void *key, size_t klen, const void *val, size_t vlen,
		 enum mc_put_mode mode, uint64_t *ver)
{
	struct item *it = find(key, klen);

	if (mode == MC_PUT_ADD && it)
		return -EEXIST;
	if (mode == MC_PUT_REPLACE && !it)
		return -ENOENT;
	return put_at(it, key, klen, val, vlen, ver);
}

static int s_cas(void *s, const void *key, size_t klen, uint64_t expect, const void *val,
		 size_t vlen, uint64_t *ver)
{
	struct item *it = find(key, klen);

	if (!expect)
		return -EINVAL;
	if (!it)
		return -ENOENT;
	if (it->ver != expect)
		return -ECANCELED;
	return put_at(it, key, klen, val, vlen, ver);
}

static int s_del(void *s, const void *key, size_t klen, uint64_t expect)
{
	struct item *it = find(key, klen);

	if (!it)
		return -ENOENT;
	if (expect && it->ver != expect)
		return -ECANCELED;
	it->used = 0;
	return 0;
}

static const struct mc_store_ops ops = {s_get, s_put, s_cas, s_del};

static void check_parse(const uint8_t *data, size_t size)
{
	char *copy = malloc(size ? size : 1);
	struct mc_cmd c;
	ssize_t n;

	memcpy(copy, data, size);
	n = mc_parse(copy, size, MAXV, &c);
	if (n > (ssize_t)size || (n < 0 && n != MC_PARSE_CLOSE))
		abort();
#define INSIDE(p, l)                                                                               \
	do {                                                                                       \
		if ((p) && ((const char *)(p) < copy || (const char *)(p) + (l) > copy + size))    \
			abort();                                                                   \
	} while (0)
	if (n > 0) {
		INSIDE(c.key, c.klen);
		INSIDE(c.keys, c.keys_len);
		INSIDE(c.data, c.dlen);
		if (c.key && c.klen > MC_KEY_MAX)
			abort();
		if (c.data && (c.dlen > MAXV || c.too_large))
			abort();
		if (c.op == MC_OP_NONE && c.reply == NULL && !c.noreply)
			abort(); /* an error must be answered unless noreply */
		if (c.keys) {
			const char *p = c.keys, *k;
			size_t kl;
			while (mc_next_key(&p, c.keys + c.keys_len, &k, &kl))
				if (kl > MC_KEY_MAX || kl == 0)
					abort();
		}
	}
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t scratch[MAXV + MC_ITEM_HDR_MAX];
	struct mc_exec ex = {
	    .ops = &ops, .max_value = MAXV, .scratch = scratch, .version = "fuzz", .started = 1000};
	struct mc_conn c = {0};
	size_t off = 1, chunk;

	if (size > 200000)
		return 0;
	check_parse(data, size);
	memset(items, 0, sizeof(items));
	next_ver = 0;
	mc_exec_tick(&ex, 1000);
	chunk = size ? 1 + data[0] % 64 : 1;
	while (off < size) {
		size_t room, n = chunk;
		char *p = mc_conn_rbuf(&c, MAXV, &room);
		if (!p)
			break;
		if (n > size - off)
			n = size - off;
		if (n > room)
			n = room;
		memcpy(p, data + off, n);
		mc_conn_rdone(&ex, &c, n);
		off += n;
		mc_conn_run(&ex, &c, HIGH);
		/* bounds: one command in the input, the backlog near `high` */
		if (c.in_cap > MC_GET_LINE_MAX + 16384 + MAXV + MC_LINE_MAX)
			abort();
		if (c.out.len - c.out_off > HIGH + 2 * (MAXV + MC_KEY_MAX + 64) + 4096)
			abort();
		/* a slow reader: take half of the replies */
		mc_conn_sent(&ex, &c, (c.out.len - c.out_off + 1) / 2);
		mc_exec_tick(&ex, 1000 + (int64_t)(off % 7));
	}
	mc_conn_free(&c);
	return 0;
}
