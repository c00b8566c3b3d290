/*
 * test_memcache.c - the memcached protocol engine (src/farm/memcache*.c)
 * without sockets or a cluster: the parser against memcached 1.6's answers
 * (as measured with memcached 1.6.18: tests/memcache_conformance.sh keeps
 * checking them against the real thing), its number parsing against libc's
 * strto* as memcached calls them, commands split at every byte boundary,
 * and the executor over a small reference store with farm_kv_*'s contract
 * (versions, add/replace/cas/delete codes), with a settable clock.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "memcache.h"

/* ---- a reference store ------------------------------------------------- */

#define REF_MAX 512

struct ref_item {
	char key[256];
	size_t klen;
	uint8_t val[70000];
	size_t vlen;
	uint64_t ver;
	bool used;
};

static struct ref_store {
	struct ref_item *it;
	uint64_t next_ver;
	int fail; /* injected failure for the next op, 0 = none */
	size_t puts;
} ref;

static struct ref_item *ref_find(const void *key, size_t klen)
{
	for (int i = 0; i < REF_MAX; i++)
		if (ref.it[i].used && ref.it[i].klen == klen &&
		    memcmp(ref.it[i].key, key, klen) == 0)
			return &ref.it[i];
	return NULL;
}

static int ref_get(void *s, const void *key, size_t klen, void *val, size_t cap, size_t *vlen,
		   uint64_t *ver)
{
	struct ref_item *it = ref_find(key, klen);

	(void)s;
	if (ref.fail) {
		int rc = ref.fail;
		ref.fail = 0;
		return rc;
	}
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

static int ref_store_at(struct ref_item *it, const void *key, size_t klen, const void *val,
			size_t vlen, uint64_t *ver)
{
	if (!it) {
		for (int i = 0; i < REF_MAX && !it; i++)
			if (!ref.it[i].used)
				it = &ref.it[i];
		if (!it)
			return -ENOSPC;
		it->used = true;
		memcpy(it->key, key, klen);
		it->klen = klen;
	}
	memmove(it->val, val, vlen);
	it->vlen = vlen;
	it->ver = ++ref.next_ver;
	ref.puts++;
	if (ver)
		*ver = it->ver;
	return 0;
}

static int ref_put(void *s, const void *key, size_t klen, const void *val, size_t vlen,
		   enum mc_put_mode mode, uint64_t *ver)
{
	struct ref_item *it = ref_find(key, klen);

	(void)s;
	if (ref.fail) {
		int rc = ref.fail;
		ref.fail = 0;
		return rc;
	}
	if (mode == MC_PUT_ADD && it)
		return -EEXIST;
	if (mode == MC_PUT_REPLACE && !it)
		return -ENOENT;
	return ref_store_at(it, key, klen, val, vlen, ver);
}

static int ref_cas(void *s, const void *key, size_t klen, uint64_t expect, const void *val,
		   size_t vlen, uint64_t *ver)
{
	struct ref_item *it = ref_find(key, klen);

	(void)s;
	if (expect == 0)
		return -EINVAL;
	if (!it)
		return -ENOENT;
	if (it->ver != expect)
		return -ECANCELED;
	return ref_store_at(it, key, klen, val, vlen, ver);
}

static int ref_del(void *s, const void *key, size_t klen, uint64_t expect)
{
	struct ref_item *it = ref_find(key, klen);

	(void)s;
	if (!it)
		return -ENOENT;
	if (expect && it->ver != expect)
		return -ECANCELED;
	it->used = false;
	return 0;
}

static const struct mc_store_ops ref_ops = {ref_get, ref_put, ref_cas, ref_del};

#define MAXV 4096u

static struct mc_exec ex;
static uint8_t scratch[MAXV + MC_ITEM_HDR_MAX];

static int setup(void **state)
{
	(void)state;
	ref.it = calloc(REF_MAX, sizeof(*ref.it));
	ref.next_ver = 100;
	ref.fail = 0;
	memset(&ex, 0, sizeof(ex));
	ex.ops = &ref_ops;
	ex.store = &ref;
	ex.max_value = MAXV;
	ex.scratch = scratch;
	ex.version = "1.6.18-farm";
	ex.started = 1700000000;
	mc_exec_tick(&ex, 1700000000);
	return ref.it ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	free(ref.it);
	return 0;
}

/* Feed `in` to a fresh connection `chunk` bytes at a time (0: at once),
 * run, and return the replies (static buffer). */
static char outbuf[1 << 20];
static size_t outlen;
static bool conn_quit, conn_closed;

static const char *feed(const char *in, size_t len, size_t chunk)
{
	struct mc_conn c = {0};
	size_t off = 0;

	outlen = 0;
	while (off < len) {
		size_t room, n = chunk ? chunk : len;
		char *p = mc_conn_rbuf(&c, ex.max_value, &room);
		if (!p)
			break;
		if (n > len - off)
			n = len - off;
		if (n > room)
			n = room;
		memcpy(p, in + off, n);
		mc_conn_rdone(&ex, &c, n);
		off += n;
		mc_conn_run(&ex, &c, 1 << 16);
		/* what a socket would take now */
		assert_true(outlen + c.out.len - c.out_off < sizeof(outbuf));
		if (c.out.len > c.out_off)
			memcpy(outbuf + outlen, c.out.p + c.out_off, c.out.len - c.out_off);
		outlen += c.out.len - c.out_off;
		mc_conn_sent(&ex, &c, c.out.len - c.out_off);
	}
	conn_quit = c.quit;
	conn_closed = c.close_now;
	mc_conn_free(&c);
	outbuf[outlen] = '\0';
	return outbuf;
}

static const char *run(const char *in)
{
	return feed(in, strlen(in), 0);
}

#define EXPECT(in, want) assert_string_equal(run(in), want)

/* ---- parser: memcached's answers ------------------------------------------- */

static void test_errors(void **state)
{
	char longkey[300], line[700];

	(void)state;
	memset(longkey, 'x', 251);
	longkey[251] = '\0';
	EXPECT("\r\n", "ERROR\r\n");
	EXPECT("\n", "ERROR\r\n");
	EXPECT("GET k\r\n", "ERROR\r\n");
	EXPECT("get\tk\r\n", "ERROR\r\n");
	EXPECT("get\r\n", "ERROR\r\n");
	EXPECT("gets\r\n", "ERROR\r\n");
	EXPECT("x\r\n", "ERROR\r\n");
	EXPECT("set k 0 0\r\n", "ERROR\r\n");
	EXPECT("set k 0 0 1 2 3\r\nA\r\n", "ERROR\r\nERROR\r\n");
	EXPECT("set k 0 0 abc\r\nA\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n");
	EXPECT("set k 0 0 -1\r\nA\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n");
	EXPECT("set k abc 0 1\r\nA\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n");
	EXPECT("set k -1 0 1\r\nA\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n");
	EXPECT("set k 0 0 1\r\nXY\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n");
	EXPECT("set k 0 0 1 noreply\r\nXY\r\n", "ERROR\r\n");
	snprintf(line, sizeof(line), "set %s 0 0 1\r\nA\r\n", longkey);
	EXPECT(line, "CLIENT_ERROR bad command line format\r\nERROR\r\n");
	snprintf(line, sizeof(line), "set %s 0 0 1 noreply\r\nA\r\n", longkey);
	EXPECT(line, "ERROR\r\n");
	EXPECT("incr n -1\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n");
	EXPECT("incr n 18446744073709551616\r\n",
	       "CLIENT_ERROR invalid numeric delta argument\r\n");
	EXPECT("incr n\r\n", "ERROR\r\n");
	EXPECT("touch c abc\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
	EXPECT("touch c\r\n", "ERROR\r\n");
	EXPECT("delete d 1\r\n",
	       "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n");
	EXPECT("delete d 1 noreply\r\n", "");
	EXPECT("delete d x y z\r\n", "ERROR\r\n");
	EXPECT("delete\r\n", "ERROR\r\n");
	EXPECT("cas c 0 0 1\r\nB\r\n", "ERROR\r\nERROR\r\n");
	EXPECT("cas c 0 0 1 -1\r\nB\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n");
	EXPECT("verbosity\r\n", "ERROR\r\n");
	EXPECT("verbosity x\r\n", "CLIENT_ERROR bad command line format\r\n");
	EXPECT("verbosity 1\r\n", "OK\r\n");
	EXPECT("verbosity 1 noreply\r\n", "");
	EXPECT("flush_all x\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
	EXPECT("stats detail\r\n", "CLIENT_ERROR usage: stats detail on|off|dump\r\n");
	EXPECT("stats foo\r\n", "ERROR\r\n");
	EXPECT("stats reset\r\n", "RESET\r\n");
	EXPECT("shutdown\r\n", "ERROR: shutdown not enabled\r\n");
	EXPECT("version x\r\n", "VERSION 1.6.18-farm\r\n");
	/* a NUL ends the line for memcached: the rest is ignored */
	assert_string_equal(feed("get k\0junk\r\n", 12, 0), "END\r\n");
	assert_string_equal(feed("\0\1\2get k\r\n", 10, 0), "ERROR\r\n");
}

static void test_get_culls(void **state)
{
	char longkey[300], line[800];

	(void)state;
	memset(longkey, 'x', 251);
	longkey[251] = '\0';
	EXPECT("set a 0 0 1\r\nA\r\n", "STORED\r\n");
	/* the earlier keys' values and the set's STORED are dropped... */
	snprintf(line, sizeof(line), "set b 0 0 1\r\nB\r\nget a %s a\r\n", longkey);
	EXPECT(line, "CLIENT_ERROR bad command line format\r\n");
	/* ...but not what a finished get had written out */
	snprintf(line, sizeof(line), "get a a\r\nget %s\r\n", longkey);
	EXPECT(line, "VALUE a 0 1\r\nA\r\nVALUE a 0 1\r\nA\r\nEND\r\n"
		     "CLIENT_ERROR bad command line format\r\n");
	/* 250 bytes is fine */
	longkey[250] = '\0';
	snprintf(line, sizeof(line), "get %s\r\n", longkey);
	EXPECT(line, "END\r\n");
}

static void test_storage(void **state)
{
	char want[256];
	uint64_t ver = 0;

	(void)state;
	EXPECT("set k 0 0 1\r\nA\r\nget k\r\n", "STORED\r\nVALUE k 0 1\r\nA\r\nEND\r\n");
	/* flags and lengths wrap as memcached's strtoul/strtol into 32 bits do */
	EXPECT("set k 4294967296 0 1\r\nA\r\nget k\r\n", "STORED\r\nVALUE k 0 1\r\nA\r\nEND\r\n");
	EXPECT("set k 0 0 4294967297\r\nA\r\nget k\r\n", "STORED\r\nVALUE k 0 1\r\nA\r\nEND\r\n");
	EXPECT("set k +5 \t3 1\r\nA\r\nget k\r\n", "STORED\r\nVALUE k 5 1\r\nA\r\nEND\r\n");
	EXPECT("set k 0 0 1 garbage\r\nA\r\n", "STORED\r\n");
	EXPECT("set k 0 0 1 noreply\r\nB\r\nget k\r\n", "VALUE k 0 1\r\nB\r\nEND\r\n");
	EXPECT("set e 0 0 0\r\n\r\nget e\r\n", "STORED\r\nVALUE e 0 0\r\n\r\nEND\r\n");
	EXPECT("add k 0 0 1\r\nC\r\n", "NOT_STORED\r\n");
	EXPECT("add new 7 0 2\r\nCC\r\nget new\r\n", "STORED\r\nVALUE new 7 2\r\nCC\r\nEND\r\n");
	EXPECT("replace nokey 0 0 1\r\nC\r\n", "NOT_STORED\r\n");
	EXPECT("replace k 3 0 1\r\nR\r\nget k\r\n", "STORED\r\nVALUE k 3 1\r\nR\r\nEND\r\n");
	EXPECT("append k 9 0 2\r\nZZ\r\nprepend k 9 0 1\r\nY\r\nget k\r\n",
	       "STORED\r\nSTORED\r\nVALUE k 3 4\r\nYRZZ\r\nEND\r\n");
	EXPECT("append nokey 0 0 1\r\nZ\r\n", "NOT_STORED\r\n");
	/* cas: the unique is the store version */
	assert_int_equal(ref_get(NULL, "k", 1, scratch, sizeof(scratch), NULL, &ver), 0);
	snprintf(want, sizeof(want), "VALUE k 3 4 %llu\r\nYRZZ\r\nEND\r\n",
		 (unsigned long long)ver);
	EXPECT("gets k\r\n", want);
	EXPECT("cas k 0 0 1 1\r\nB\r\n", "EXISTS\r\n");
	EXPECT("cas k 0 0 1 0\r\nB\r\n", "EXISTS\r\n");
	EXPECT("cas nokey 0 0 1 5\r\nB\r\n", "NOT_FOUND\r\n");
	snprintf(want, sizeof(want), "cas k 1 0 1 %llu\r\nB\r\nget k\r\n", (unsigned long long)ver);
	EXPECT(want, "STORED\r\nVALUE k 1 1\r\nB\r\nEND\r\n");
	EXPECT(want, "EXISTS\r\nVALUE k 1 1\r\nB\r\nEND\r\n"); /* the version moved */
	EXPECT("delete k\r\ndelete k\r\nget k\r\n", "DELETED\r\nNOT_FOUND\r\nEND\r\n");
	EXPECT("set d 0 0 1\r\nA\r\ndelete d 0\r\n", "STORED\r\nDELETED\r\n");
	EXPECT("set d 0 0 1\r\nA\r\ndelete d noreply\r\nget d\r\n", "STORED\r\nEND\r\n");
	EXPECT("set d 0 0 1\r\nA\r\ndelete d 0 noreply\r\nget d\r\n", "STORED\r\nEND\r\n");
	/* multi-get, misses skipped, beyond 24 tokens */
	EXPECT("set a 0 0 1\r\n1\r\nset b 0 0 1\r\n2\r\nget a x b y a\r\n",
	       "STORED\r\nSTORED\r\nVALUE a 0 1\r\n1\r\nVALUE b 0 1\r\n2\r\nVALUE a 0 "
	       "1\r\n1\r\nEND\r\n");
	EXPECT("get x x x x x x x x x x x x x x x x x x x x x x x x x x x x x a   x b\r\n",
	       "VALUE a 0 1\r\n1\r\nVALUE b 0 1\r\n2\r\nEND\r\n");
	EXPECT("bget a\r\n", "VALUE a 0 1\r\n1\r\nEND\r\n");
}

static void test_too_large(void **state)
{
	static char in[3 * MAXV];
	size_t n;

	(void)state;
	EXPECT("set big 0 0 1\r\nA\r\n", "STORED\r\n");
	n = (size_t)snprintf(in, sizeof(in), "set big 0 0 %u\r\n", MAXV + 1);
	memset(in + n, 'x', MAXV + 1);
	n += MAXV + 1;
	n += (size_t)snprintf(in + n, sizeof(in) - n, "\r\nget big\r\n");
	/* the old value goes too (memcached: "unacceptable for SET") */
	for (size_t chunk = 0; chunk < 3000; chunk = chunk ? chunk * 3 : 1) {
		assert_string_equal(feed(in, n, chunk),
				    "SERVER_ERROR object too large for cache\r\nEND\r\n");
	}
	n = (size_t)snprintf(in, sizeof(in), "set big 0 0 2000000000 noreply\r\n");
	assert_string_equal(feed(in, n, 0), "");
	n = (size_t)snprintf(in, sizeof(in), "set big 0 0 %u\r\n", MAXV);
	memset(in + n, 'y', MAXV);
	n += MAXV;
	n += (size_t)snprintf(in + n, sizeof(in) - n, "\r\n");
	assert_string_equal(feed(in, n, 7), "STORED\r\n");
	EXPECT("append big 0 0 1\r\nZ\r\n", "SERVER_ERROR object too large for cache\r\n");
}

static void test_arith(void **state)
{
	(void)state;
	EXPECT("set n 0 0 2\r\n10\r\ndecr n 5\r\nget n\r\nincr n 100\r\nget n\r\n",
	       "STORED\r\n5\r\nVALUE n 0 2\r\n5 \r\nEND\r\n105\r\nVALUE n 0 3\r\n105\r\nEND\r\n");
	EXPECT("incr nokey 1\r\n", "NOT_FOUND\r\n");
	EXPECT("set n 0 0 3\r\n 12\r\nincr n 1\r\n", "STORED\r\n13\r\n");
	EXPECT("set n 0 0 3\r\n12a\r\nincr n 1\r\n",
	       "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
	EXPECT("set n 0 0 20\r\n18446744073709551615\r\nincr n 2\r\n", "STORED\r\n1\r\n");
	EXPECT("set n 0 0 0\r\n\r\nincr n 1\r\n",
	       "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
	EXPECT("set n 0 0 2\r\n-0\r\nincr n 1\r\n", "STORED\r\n1\r\n");
	EXPECT("incr n 1 noreply\r\nget n\r\n", "VALUE n 0 2\r\n2 \r\nEND\r\n");
	EXPECT("set n 5 0 1\r\n5\r\ndecr n 10\r\nget n\r\n",
	       "STORED\r\n0\r\nVALUE n 5 1\r\n0\r\nEND\r\n");
	EXPECT("set n 0 0 3\r\n+12\r\nincr n 1\r\n", "STORED\r\n13\r\n");
	EXPECT("set n 0 0 2\r\n-5\r\nincr n 1\r\n",
	       "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
}

static void test_expiry_touch_flush(void **state)
{
	(void)state;
	EXPECT("set k 0 -1 1\r\nA\r\nget k\r\n", "STORED\r\nEND\r\n");
	EXPECT("set k 0 2592001 1\r\nA\r\nget k\r\n", "STORED\r\nEND\r\n"); /* 1970 */
	EXPECT("set k 0 10 1\r\nA\r\nget k\r\n", "STORED\r\nVALUE k 0 1\r\nA\r\nEND\r\n");
	mc_exec_tick(&ex, ex.now + 9);
	EXPECT("get k\r\n", "VALUE k 0 1\r\nA\r\nEND\r\n");
	EXPECT("touch k 100\r\n", "TOUCHED\r\n");
	mc_exec_tick(&ex, ex.now + 50);
	EXPECT("get k\r\n", "VALUE k 0 1\r\nA\r\nEND\r\n");
	mc_exec_tick(&ex, ex.now + 51);
	EXPECT("get k\r\ntouch k 5\r\n", "END\r\nNOT_FOUND\r\n");
	assert_null(ref_find("k", 1)); /* removed when found expired */
	/* add over an expired item works, replace does not */
	EXPECT("set k 0 1 1\r\nA\r\n", "STORED\r\n");
	mc_exec_tick(&ex, ex.now + 1);
	EXPECT("replace k 0 0 1\r\nB\r\nadd k 0 0 1\r\nC\r\nget k\r\n",
	       "NOT_STORED\r\nSTORED\r\nVALUE k 0 1\r\nC\r\nEND\r\n");
	EXPECT("gat 100 k nokey\r\n", "VALUE k 0 1\r\nC\r\nEND\r\n");
	EXPECT("touch k 10 noreply\r\n", "");
	/* flush_all: now, and with a delay */
	EXPECT("set a 0 0 1\r\n1\r\nflush_all\r\nget a k\r\n", "STORED\r\nOK\r\nEND\r\n");
	EXPECT("set a 0 0 1\r\n1\r\nget a\r\n", "STORED\r\nVALUE a 0 1\r\n1\r\nEND\r\n");
	EXPECT("flush_all 10\r\nget a\r\n", "OK\r\nVALUE a 0 1\r\n1\r\nEND\r\n");
	mc_exec_tick(&ex, ex.now + 10);
	EXPECT("get a\r\nflush_all noreply\r\nflush_all 0\r\n", "END\r\nOK\r\n");
	/* a second gateway (fresh executor state) learns the generation */
	ex.gen = 0;
	ex.gen_read_at = 0;
	EXPECT("set b 0 0 1\r\n1\r\n", "STORED\r\n"); /* stored under generation 0 */
	mc_exec_tick(&ex, ex.now + 1);
	EXPECT("get b\r\n", "END\r\n");
}

/* Every command of a pipelined script split at every byte boundary gives
 * the same replies as the script sent at once. */
static void test_split_everywhere(void **state)
{
	static const char script[] =
	    "set a 0 0 5\r\nhello\r\nget a b\r\nincr x 1\r\nappend a 0 0 1\r\n!\r\n"
	    "gets a\r\ndelete a\r\nset b 1 0 3 noreply\r\nabc\r\nget b\r\nversion\r\n"
	    "set c 0 0 1\r\nXY\r\n\r\nbogus\r\n";
	static char whole[4096];

	(void)state;
	strcpy(whole, run(script));
	for (size_t chunk = 1; chunk < sizeof(script); chunk++) {
		/* fresh store each time: same versions, same replies */
		teardown(NULL);
		setup(NULL);
		const char *got = feed(script, sizeof(script) - 1, chunk);
		if (strstr(whole, "VALUE a 0 6 ")) {
			/* gets shows a version: equal because the store restarted */
		}
		assert_string_equal(got, whole);
		teardown(NULL);
		setup(NULL);
		strcpy(whole, run(script));
	}
}

static void test_quit_and_junk(void **state)
{
	static char junk[4000];

	(void)state;
	EXPECT("version\r\nquit\r\nversion\r\n", "VERSION 1.6.18-farm\r\n");
	assert_true(conn_quit);
	memset(junk, 'x', sizeof(junk));
	assert_string_equal(feed(junk, sizeof(junk), 0), "");
	assert_true(conn_closed);
	/* a long get line without its newline yet is a multi-get, not junk */
	memcpy(junk, "get ", 4);
	assert_string_equal(feed(junk, sizeof(junk), 0), "");
	assert_false(conn_closed);
	memset(junk, ' ', 150);
	memcpy(junk + 150, "get ", 4);
	feed(junk, sizeof(junk), 0);
	assert_true(conn_closed);
}

static void test_store_failures(void **state)
{
	(void)state;
	ref.fail = -ENOSPC;
	EXPECT("set k 0 0 1\r\nA\r\n", "SERVER_ERROR out of memory storing object\r\n");
	ref.fail = -ETIMEDOUT;
	EXPECT("get k\r\n", "SERVER_ERROR Connection timed out\r\n");
	EXPECT("set k 0 0 1\r\nA\r\nget k\r\n", "STORED\r\nVALUE k 0 1\r\nA\r\nEND\r\n");
}

/* A multi-get whose replies exceed the backlog bound stops and resumes. */
static void test_get_backpressure(void **state)
{
	struct mc_conn c = {0};
	static char val[MAXV];
	char line[8192], *p;
	size_t room, n, got = 0, rounds = 0;

	(void)state;
	memset(val, 'v', sizeof(val));
	for (int i = 0; i < 20; i++) {
		char k[16];
		snprintf(k, sizeof(k), "big%d", i);
		assert_int_equal(ref_put(NULL, k, strlen(k), val, sizeof(val), MC_PUT_SET, NULL),
				 0);
	}
	n = (size_t)snprintf(line, sizeof(line), "get");
	for (int i = 0; i < 20; i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, " big%d", i);
	n += (size_t)snprintf(line + n, sizeof(line) - n, "\r\nversion\r\n");
	p = mc_conn_rbuf(&c, ex.max_value, &room);
	assert_true(room >= n);
	memcpy(p, line, n);
	mc_conn_rdone(&ex, &c, n);
	for (;;) {
		mc_conn_run(&ex, &c, 3 * MAXV);
		size_t q = c.out.len - c.out_off;
		assert_true(q <= 5 * MAXV); /* bounded backlog */
		if (q == 0)
			break;
		got += q;
		mc_conn_sent(&ex, &c, q);
		rounds++;
	}
	assert_true(rounds > 3);
	assert_int_equal(got, 20 * (sizeof("VALUE big10 0 4096\r\n") - 1 + MAXV + 2) - 10 + 5 +
				  sizeof("VERSION 1.6.18-farm\r\n") - 1);
	mc_conn_free(&c);
}

/* ---- numbers against libc, as memcached's safe_strto* use it ------------- */

static bool libc_strtoul(const char *s, uint32_t *out)
{
	char *end;
	unsigned long l;

	errno = 0;
	*out = 0;
	l = strtoul(s, &end, 10);
	if (errno == ERANGE || s == end)
		return false;
	if (isspace((unsigned char)*end) || (*end == '\0' && end != s)) {
		if ((long)l < 0 && strchr(s, '-'))
			return false;
		*out = (uint32_t)l;
		return true;
	}
	return false;
}

static bool libc_strtol(const char *s, int32_t *out)
{
	char *end;
	long l;

	errno = 0;
	*out = 0;
	l = strtol(s, &end, 10);
	if (errno == ERANGE || s == end)
		return false;
	if (isspace((unsigned char)*end) || (*end == '\0' && end != s)) {
		*out = (int32_t)l;
		return true;
	}
	return false;
}

static bool libc_strtoull(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long l;

	errno = 0;
	*out = 0;
	l = strtoull(s, &end, 10);
	if (errno == ERANGE || s == end)
		return false;
	if (isspace((unsigned char)*end) || (*end == '\0' && end != s)) {
		if ((long long)l < 0 && strchr(s, '-'))
			return false;
		*out = l;
		return true;
	}
	return false;
}

static void test_numbers_vs_libc(void **state)
{
	static const char alpha[] = "0123456789+-\t\r\v\fx9";
	static const char *fixed[] = {"0",
				      "-0",
				      "+0",
				      "4294967295",
				      "4294967296",
				      "-1",
				      "18446744073709551615",
				      "18446744073709551616",
				      "9223372036854775807",
				      "9223372036854775808",
				      "-9223372036854775808",
				      "-9223372036854775809",
				      "2147483648",
				      "-2147483649",
				      "  7",
				      "\t7\t",
				      "7x",
				      "",
				      "+",
				      "-",
				      "00000000000000000000000001"};
	char s[40];
	uint64_t seed = 88172645463325252ull;

	(void)state;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]) + 200000; i++) {
		uint32_t a32, b32;
		int32_t ai, bi;
		uint64_t a64, b64;
		if (i < sizeof(fixed) / sizeof(fixed[0])) {
			strcpy(s, fixed[i]);
		} else {
			size_t n = 0, len;
			seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
			len = 1 + seed % 24;
			for (; n < len; n++) {
				seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
				/* mostly digits, so that big numbers come up */
				s[n] = seed % 4 ? (char)('0' + seed % 10)
						: alpha[seed % (sizeof(alpha) - 1)];
			}
			s[n] = '\0';
		}
		bool r1 = mc_strtoul32(s, strlen(s), &a32), r2 = libc_strtoul(s, &b32);
		assert_int_equal(r1, r2);
		if (r1)
			assert_int_equal(a32, b32);
		r1 = mc_strtol32(s, strlen(s), &ai);
		r2 = libc_strtol(s, &bi);
		assert_int_equal(r1, r2);
		if (r1)
			assert_int_equal(ai, bi);
		r1 = mc_strtoull(s, strlen(s), &a64);
		r2 = libc_strtoull(s, &b64);
		if (r1 != r2)
			fail_msg("strtoull mirror differs on '%s'", s);
		if (r1)
			assert_true(a64 == b64);
	}
}

static void test_item_codec(void **state)
{
	uint8_t buf[64];
	struct mc_item it;
	size_t h;

	(void)state;
	h = mc_item_hdr(0, 0, 0, buf);
	assert_int_equal(h, 1);
	h = mc_item_hdr(0xdeadbeef, 1234567890123, 7, buf);
	assert_int_equal(h, MC_ITEM_HDR_MAX);
	memcpy(buf + h, "data", 4);
	mc_item_decode(buf, h + 4, &it);
	assert_int_equal(it.flags, 0xdeadbeef);
	assert_true(it.expires == 1234567890123);
	assert_int_equal(it.gen, 7);
	assert_int_equal(it.dlen, 4);
	assert_memory_equal(it.data, "data", 4);
	/* a value not written by the gateway is plain data; so is a header cut short */
	mc_item_decode("plain", 5, &it);
	assert_int_equal(it.dlen, 5);
	assert_int_equal(it.flags, 0);
	buf[0] = 0xA3;
	mc_item_decode(buf, 3, &it);
	assert_int_equal(it.dlen, 3);
	assert_int_equal(mc_expiry(0, 100), 0);
	assert_true(mc_expiry(-5, 100) <= 100);
	assert_int_equal(mc_expiry(10, 100), 110);
	assert_int_equal(mc_expiry(2592001, 1700000000), 2592001);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_get_culls, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_storage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_arith, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expiry_touch_flush, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_split_everywhere, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_quit_and_junk, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_store_failures, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_get_backpressure, setup, teardown),
	    cmocka_unit_test(test_numbers_vs_libc),
	    cmocka_unit_test(test_item_codec),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
