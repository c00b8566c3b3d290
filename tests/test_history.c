/* test_history.c - the strict-serializability checker (helpers/history.h)
 * on hand-made histories: each classic anomaly is found, and the legal
 * near-misses next to it are accepted, so the checker is neither blind
 * nor paranoid. Then logs (written by several processes, saved to files,
 * malformed), and a large random history generated from a serial
 * execution (accepted) with one stale read injected (found). The random
 * seed is printed; HIST_SEED=n replays it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "helpers/history.h"
#include "helpers/proc.h"

#define X 0x100000040ull
#define Y 0x200000040ull
#define Z 0x300000080ull

#define RD(...)                                                                                    \
	((const struct hist_read[]){__VA_ARGS__}),                                                 \
	    (uint32_t)(sizeof((struct hist_read[]){__VA_ARGS__}) / sizeof(struct hist_read))
#define WR(...)                                                                                    \
	((const struct hist_write[]){__VA_ARGS__}),                                                \
	    (uint32_t)(sizeof((struct hist_write[]){__VA_ARGS__}) / sizeof(struct hist_write))
#define NORD NULL, 0
#define NOWR NULL, 0

static void tx(struct history *h, uint64_t id, uint64_t start, uint64_t end, bool committed,
	       const struct hist_read *r, uint32_t nr, const struct hist_write *w, uint32_t nw)
{
	struct hist_tx t = {id, start, end, committed, nr, nw, r, w};

	assert_int_equal(hist_add(h, &t), 0);
}

static struct hist_report check(struct history *h)
{
	struct hist_report r;

	assert_int_equal(hist_check(h, &r), 0);
	if (r.anomalies)
		printf("    checker says:\n%s", r.text);
	return r;
}

/* Serial transfers, a concurrent pair that commutes, a read-only snapshot:
 * strictly serializable. Also a concurrent reader seeing the old value: legal
 * because the two overlap in time. */
static void test_serializable(void **state)
{
	struct history *h = hist_new();
	struct hist_report r;

	tx(h, 1, 10, 20, true, RD({X, 0, 0}, {Y, 0, 0}), WR({X, 1}, {Y, 1}));
	tx(h, 2, 30, 40, true, RD({X, 1, 1}, {Y, 1, 1}), WR({X, 2}, {Y, 2}));
	/* 3 and 4 overlap and touch different objects */
	tx(h, 3, 50, 70, true, RD({X, 2, 2}), WR({X, 3}));
	tx(h, 4, 55, 65, true, RD({Z, 0, 0}), WR({Z, 1}));
	/* read-only snapshot after both */
	tx(h, 5, 80, 90, true, RD({X, 3, 3}, {Y, 2, 2}, {Z, 1, 4}), NOWR);
	/* 6 writes Y; 7 overlaps 6 and still sees the old Y: fine */
	tx(h, 6, 100, 120, true, RD({Y, 2, 2}), WR({Y, 3}));
	tx(h, 7, 110, 130, true, RD({Y, 2, 2}, {X, 3, 3}), NOWR);
	/* an aborted transaction's writes do not count, its reads neither */
	tx(h, 8, 140, 150, false, RD({X, 0, 0}), WR({X, 1}));
	r = check(h);
	assert_int_equal(r.anomalies, 0);
	assert_int_equal(r.txs, 8);
	assert_int_equal(r.committed, 7);
	assert_int_equal(r.aborted, 1);
	assert_int_equal(r.reads, 12);
	assert_int_equal(r.writes, 7);
	hist_free(h);
}

/* Write skew: both read X and Y, one writes X, the other Y. Each missed
 * the other's write: rw both ways. */
static void test_write_skew(void **state)
{
	struct history *h = hist_new();
	struct hist_report r;

	tx(h, 1, 10, 30, true, RD({X, 0, 0}, {Y, 0, 0}), WR({X, 1}));
	tx(h, 2, 15, 35, true, RD({X, 0, 0}, {Y, 0, 0}), WR({Y, 1}));
	r = check(h);
	assert_int_equal(r.cycles, 1);
	assert_int_equal(r.cycle_txs, 2);
	assert_int_equal(r.anomalies, 1);
	assert_non_null(strstr(r.text, "cycle among 2 transactions"));
	assert_non_null(strstr(r.text, "rw 0x100000040 read v0, next v1"));
	assert_non_null(strstr(r.text, "rw 0x200000040 read v0, next v1"));
	hist_free(h);

	/* The same two, but the second saw the first's X: serial (1 then 2). */
	h = hist_new();
	tx(h, 1, 10, 30, true, RD({X, 0, 0}, {Y, 0, 0}), WR({X, 1}));
	tx(h, 2, 15, 35, true, RD({X, 1, 1}, {Y, 0, 0}), WR({Y, 1}));
	r = check(h);
	assert_int_equal(r.anomalies, 0);
	hist_free(h);
}

/* Lost update, both shapes: two transactions install the same version
 * (both read v0 and wrote v1), or the second read v0 yet wrote v2 over
 * the first's v1 (a cycle: rw one way, ww the other). */
static void test_lost_update(void **state)
{
	struct history *h = hist_new();
	struct hist_report r;

	tx(h, 1, 10, 30, true, RD({X, 0, 0}), WR({X, 1}));
	tx(h, 2, 15, 35, true, RD({X, 0, 0}), WR({X, 1}));
	r = check(h);
	assert_int_equal(r.dup_versions, 1);
	assert_true(r.anomalies >= 1);
	assert_non_null(strstr(r.text, "lost update: T0x1 and T0x2 both committed version 1"));
	hist_free(h);

	h = hist_new();
	tx(h, 1, 10, 30, true, RD({X, 0, 0}), WR({X, 1}));
	tx(h, 2, 15, 35, true, RD({X, 0, 0}), WR({X, 2}));
	r = check(h);
	assert_int_equal(r.cycles, 1);
	assert_int_equal(r.dup_versions, 0);
	assert_non_null(strstr(r.text, "ww 0x100000040 v1<v2"));
	hist_free(h);

	/* One of them aborted: no loss. */
	h = hist_new();
	tx(h, 1, 10, 30, true, RD({X, 0, 0}), WR({X, 1}));
	tx(h, 2, 15, 35, false, RD({X, 0, 0}), WR({X, 1}));
	tx(h, 3, 40, 50, true, RD({X, 1, 1}), NOWR);
	r = check(h);
	assert_int_equal(r.anomalies, 0);
	hist_free(h);
}

/* A stale read: T2 starts after T1 ended (T1 wrote X), yet reads the old
 * X. Serializable (T2 before T1) but not strictly: the real-time edge
 * closes the cycle. The same reads with T2 overlapping T1 are fine, and
 * so is a tie (T2 starting the very nanosecond T1 ends). */
static void test_stale_read(void **state)
{
	struct history *h = hist_new();
	struct hist_report r;

	tx(h, 1, 10, 20, true, RD({X, 0, 0}), WR({X, 1}));
	tx(h, 2, 21, 30, true, RD({X, 0, 0}), NOWR);
	r = check(h);
	assert_int_equal(r.cycles, 1);
	assert_non_null(strstr(r.text, "rt end 20 < start 21"));
	assert_non_null(strstr(r.text, "rw 0x100000040 read v0, next v1"));
	hist_free(h);

	h = hist_new();
	tx(h, 1, 10, 20, true, RD({X, 0, 0}), WR({X, 1}));
	tx(h, 2, 19, 30, true, RD({X, 0, 0}), NOWR);
	tx(h, 3, 20, 30, true, RD({X, 0, 0}), NOWR);
	r = check(h);
	assert_int_equal(r.anomalies, 0);
	hist_free(h);

	/* Real time through a chain: 1 < 2 < 3 in time, 3 reads before 1's
	 * write. Only the transitive order through 2 condemns it. */
	h = hist_new();
	tx(h, 1, 10, 20, true, RD({X, 0, 0}), WR({X, 1}));
	tx(h, 2, 25, 35, true, RD({Y, 0, 0}), WR({Y, 1}));
	tx(h, 3, 40, 50, true, RD({X, 0, 0}), NOWR);
	r = check(h);
	assert_int_equal(r.cycles, 1);
	hist_free(h);
}

/* Fractured read: T1 writes X and Y together; T2 sees the new X and the
 * old Y. wr one way, rw the other. */
static void test_fractured_read(void **state)
{
	struct history *h = hist_new();
	struct hist_report r;

	tx(h, 1, 10, 30, true, RD({X, 0, 0}, {Y, 0, 0}), WR({X, 1}, {Y, 1}));
	tx(h, 2, 15, 35, true, RD({X, 1, 1}, {Y, 0, 0}), NOWR);
	r = check(h);
	assert_int_equal(r.cycles, 1);
	assert_int_equal(r.anomalies, 1);
	assert_non_null(strstr(r.text, "wr 0x100000040 v1"));
	assert_non_null(strstr(r.text, "rw 0x200000040 read v0, next v1"));
	hist_free(h);

	/* Both new, or both old: fine. */
	h = hist_new();
	tx(h, 1, 10, 30, true, RD({X, 0, 0}, {Y, 0, 0}), WR({X, 1}, {Y, 1}));
	tx(h, 2, 15, 35, true, RD({X, 1, 1}, {Y, 1, 1}), NOWR);
	tx(h, 3, 12, 25, true, RD({X, 0, 0}, {Y, 0, 0}), NOWR);
	r = check(h);
	assert_int_equal(r.anomalies, 0);
	hist_free(h);
}

/* Reads of versions nobody committed, writer ids that disagree. */
static void test_bad_reads(void **state)
{
	struct history *h = hist_new();
	struct hist_report r;

	tx(h, 1, 10, 20, false, RD({X, 0, 0}), WR({X, 1}));
	tx(h, 2, 30, 40, true, RD({X, 1, 1}), NOWR); /* dirty: 1 aborted */
	tx(h, 3, 30, 40, true, RD({Y, 7, 9}), NOWR); /* from nowhere */
	tx(h, 4, 50, 60, true, RD({Z, 0, 0}), WR({Z, 1}));
	tx(h, 5, 70, 80, true, RD({Z, 1, 2}), NOWR); /* Z v1 is 4's, not 2's */
	tx(h, 6, 70, 80, true, RD({Y, 0, 4}), NOWR); /* initial with a writer */
	r = check(h);
	assert_int_equal(r.bad_reads, 2);
	assert_int_equal(r.bad_writers, 2);
	assert_int_equal(r.cycles, 0);
	assert_int_equal(r.anomalies, 4);
	assert_non_null(strstr(r.text, "installed only by T0x1, which aborted"));
	assert_non_null(strstr(r.text, "which no committed transaction installed"));
	assert_non_null(strstr(r.text, "but T0x4 committed that version"));
	hist_free(h);
}

static void test_bad_records(void **state)
{
	struct history *h = hist_new();
	struct hist_report r;

	tx(h, 0, 10, 20, true, RD({X, 0, 0}), NOWR);
	tx(h, 1, 30, 20, true, RD({X, 0, 0}), NOWR);
	tx(h, 2, 30, 40, true, RD({X, 0, 0}), NOWR);
	tx(h, 2, 50, 60, true, RD({X, 0, 0}), NOWR);
	tx(h, 3, 50, 60, true, NORD, WR({Y, 0}));
	r = check(h);
	assert_int_equal(r.bad_records, 4);
	assert_int_equal(r.anomalies, 4);
	hist_free(h);
	/* Empty history: nothing to say. */
	h = hist_new();
	r = check(h);
	assert_int_equal(r.anomalies, 0);
	assert_int_equal(r.txs, 0);
	hist_free(h);
}

/* Long cycle: T1 -> T2 -> ... -> T6 by wr on a chain of objects, and T1
 * read what T6 wrote. Found and spelt out in order. */
static void test_long_cycle(void **state)
{
	struct history *h = hist_new();
	struct hist_report r;

	for (uint64_t i = 1; i <= 6; i++) {
		uint64_t mine = 0x1000 * i, prev = 0x1000 * (i - 1);
		if (i == 1)
			tx(h, i, 10, 100, true, RD({0x6000, 1, 6}), WR({mine, 1}));
		else
			tx(h, i, 10 + i, 100 + i, true, RD({prev, 1, i - 1}), WR({mine, 1}));
	}
	r = check(h);
	assert_int_equal(r.cycles, 1);
	assert_int_equal(r.cycle_txs, 6);
	assert_non_null(strstr(r.text, "T0x1 -[wr 0x1000 v1]-> T0x2 -[wr 0x2000 v1]-> T0x3"));
	assert_non_null(strstr(r.text, "T0x6 -[wr 0x6000 v1]-> T0x1"));
	hist_free(h);
}

/* ---- logs ------------------------------------------------------------------ */

struct logs {
	struct hist_log log[3];
	uint8_t mem[3][8192];
};

/* Child k records one transaction of a write skew (k = 0, 1) or a
 * read-only transaction overlapping both (k = 2), in its own log. */
static int child_k(struct logs *L, int k)
{
	struct hist_log *l = &L->log[k];
	struct hist_read rd[2] = {{X, 0, 0}, {Y, 0, 0}};
	struct hist_write wr[1] = {{k == 0 ? X : Y, 1}};
	struct hist_tx t = {(uint64_t)k + 1, 10, 30, true, 2, 1, rd, wr};

	hist_log_init(l, L->mem[k], sizeof(L->mem[k]));
	if (k == 2) { /* a read-only tx that overlaps both */
		t.nwrites = 0;
		t.start_ns = 5; /* before 1 and 2 wrote */
		t.end_ns = 40;
	}
	return hist_log_add(l, &t) == 0 ? 0 : 1;
}

static int child0(void *a)
{
	return child_k(a, 0);
}
static int child1(void *a)
{
	return child_k(a, 1);
}
static int child2(void *a)
{
	return child_k(a, 2);
}

static void test_logs_from_processes(void **state)
{
	struct logs *L = proc_shared(sizeof(*L));
	int (*fn[3])(void *) = {child0, child1, child2};
	pid_t pid[3];
	struct history *h = hist_new();
	struct hist_report r;

	for (int k = 0; k < 3; k++)
		pid[k] = proc_fork(fn[k], L);
	for (int k = 0; k < 3; k++)
		assert_int_equal(proc_wait(pid[k], 10000), 0);
	for (int k = 2; k >= 0; k--) { /* any order */
		assert_int_equal(L->log[k].records, 1);
		assert_int_equal(hist_merge(h, L->log[k].buf, L->log[k].len), 0);
	}
	r = check(h);
	assert_int_equal(r.txs, 3);
	assert_int_equal(r.cycles, 1); /* 1 and 2 are a write skew */
	assert_int_equal(r.cycle_txs, 2);
	hist_free(h);
	proc_unshare(L, sizeof(*L));
}

static void test_log_file_and_malformed(void **state)
{
	static uint8_t mem[4096];
	struct hist_log l;
	struct hist_read rd[2] = {{X, 0, 0}, {Y, 0, 0}};
	struct hist_write wr[2] = {{X, 1}, {Y, 1}};
	struct hist_tx t1 = {1, 10, 30, true, 2, 2, rd, wr};
	struct hist_tx t2 = {2, 40, 50, true, 1, 0, rd, NULL}; /* stale read of X */
	struct history *h;
	struct hist_report r;
	char path[64];

	hist_log_init(&l, mem, sizeof(mem));
	assert_int_equal(hist_log_add(&l, &t1), 0);
	assert_int_equal(hist_log_add(&l, &t2), 0);
	assert_int_equal(l.len, hist_rec_size(2, 2) + hist_rec_size(1, 0));
	snprintf(path, sizeof(path), "/tmp/test_history-%d.log", (int)getpid());
	assert_int_equal(hist_log_save(&l, path), 0);
	h = hist_new();
	assert_int_equal(hist_merge_file(h, path), 0);
	unlink(path);
	r = check(h);
	assert_int_equal(r.txs, 2);
	assert_int_equal(r.cycles, 1); /* real time: 2 started after 1 ended */
	hist_free(h);
	h = hist_new();
	assert_int_equal(hist_merge_file(h, path), -ENOENT);
	hist_free(h);

	/* Truncated, bad magic, absurd counts: -EPROTO, never a crash. */
	h = hist_new();
	assert_int_equal(hist_merge(h, mem, l.len - 1), -EPROTO);
	hist_free(h);
	uint8_t bad[256];
	memcpy(bad, mem, sizeof(bad));
	bad[0] ^= 0xff;
	h = hist_new();
	assert_int_equal(hist_merge(h, bad, hist_rec_size(2, 2)), -EPROTO);
	hist_free(h);
	memcpy(bad, mem, sizeof(bad));
	memset(bad + 32, 0xff, 4); /* nreads */
	h = hist_new();
	assert_int_equal(hist_merge(h, bad, sizeof(bad)), -EPROTO);
	hist_free(h);
	/* Unaligned bytes are fine. */
	static uint8_t odd[4097];
	memcpy(odd + 1, mem, l.len);
	h = hist_new();
	assert_int_equal(hist_merge(h, odd + 1, l.len), 0);
	r = check(h);
	assert_int_equal(r.txs, 2);
	hist_free(h);

	/* A full log refuses and counts; too many ops is -EINVAL. */
	hist_log_init(&l, mem, hist_rec_size(2, 2) + 8);
	assert_int_equal(hist_log_add(&l, &t1), 0);
	assert_int_equal(hist_log_add(&l, &t1), -ENOSPC);
	assert_int_equal(l.dropped, 1);
	assert_int_equal(l.records, 1);
	struct hist_tx big = t1;
	big.nreads = HIST_MAX_OPS + 1;
	assert_int_equal(hist_log_add(&l, &big), -EINVAL);
}

/* ---- a large random history ------------------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

#define BIG_TXS	 200000u
#define BIG_OBJS 500u

struct objstate {
	uint64_t ver, writer;
};

/* A serial execution of bank-like transfers and read-only audits on BIG_OBJS
 * objects, each at a serialization point p = 100 * i; its real-time bounds
 * are random but contain p, so real time agrees with the serial order and
 * concurrent transactions overlap a lot. Aborted attempts sprinkle bogus
 * writes. `stale` >= 0: transfer number `stale` reads its first object one
 * version back (it then writes over a version it never saw: a cycle). */
static void build_big(struct history *h, uint64_t seed, long stale, uint64_t *victim)
{
	struct objstate *o = calloc(BIG_OBJS, sizeof(*o));
	uint64_t s = seed ? seed : 1, id = 1;
	long transfers = 0;

	assert_non_null(o);
	for (uint32_t i = 0; i < BIG_TXS; i++, id++) {
		uint64_t p = 100ull * (i + 1000), start = p - rng_next(&s) % 2000,
			 end = p + rng_next(&s) % 2000;
		uint32_t kind = (uint32_t)(rng_next(&s) % 10);
		struct hist_read rd[8];
		struct hist_write wr[2];
		if (kind < 7) { /* transfer a -> b */
			uint32_t a = (uint32_t)(rng_next(&s) % BIG_OBJS), b;
			do
				b = (uint32_t)(rng_next(&s) % BIG_OBJS);
			while (b == a);
			rd[0] = (struct hist_read){a + 1, o[a].ver, o[a].writer};
			rd[1] = (struct hist_read){b + 1, o[b].ver, o[b].writer};
			if (transfers++ == stale && o[a].ver >= 2) {
				rd[0].ver--;	       /* stale */
				rd[0].writer = 0xdead; /* whatever the old value said */
				*victim = id;
				stale = -1;
			} else if (transfers - 1 == stale) {
				stale++; /* needs an object written twice: try the next */
			}
			wr[0] = (struct hist_write){a + 1, o[a].ver + 1};
			wr[1] = (struct hist_write){b + 1, o[b].ver + 1};
			o[a] = (struct objstate){o[a].ver + 1, id};
			o[b] = (struct objstate){o[b].ver + 1, id};
			tx(h, id, start, end, true, rd, 2, wr, 2);
		} else if (kind < 9) { /* read-only audit of 8 */
			for (int k = 0; k < 8; k++) {
				uint32_t a = (uint32_t)(rng_next(&s) % BIG_OBJS);
				rd[k] = (struct hist_read){a + 1, o[a].ver, o[a].writer};
			}
			tx(h, id, start, end, true, rd, 8, NULL, 0);
		} else { /* an aborted attempt: stale read, conflicting write */
			uint32_t a = (uint32_t)(rng_next(&s) % BIG_OBJS);
			rd[0] = (struct hist_read){a + 1, o[a].ver ? o[a].ver - 1 : 0, 0};
			wr[0] = (struct hist_write){a + 1, o[a].ver ? o[a].ver : 1};
			tx(h, id, start, end, false, rd, 1, wr, 1);
		}
	}
	free(o);
}

static uint64_t seed_from_env(void)
{
	const char *e = getenv("HIST_SEED");
	struct timespec ts;

	if (e && *e)
		return strtoull(e, NULL, 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
}

static void test_big_random(void **state)
{
	uint64_t seed = seed_from_env(), victim = 0;
	struct history *h = hist_new();
	struct hist_report r;
	uint64_t t0 = proc_now_ms();

	printf("    seed %#llx (HIST_SEED=%#llx to replay)\n", (unsigned long long)seed,
	       (unsigned long long)seed);
	build_big(h, seed, -1, &victim);
	r = check(h);
	printf("    %llu txs (%llu committed), graph %llu nodes %llu edges: %llu anomalies, "
	       "%llu ms\n",
	       (unsigned long long)r.txs, (unsigned long long)r.committed,
	       (unsigned long long)r.nodes, (unsigned long long)r.edges,
	       (unsigned long long)r.anomalies, (unsigned long long)(proc_now_ms() - t0));
	assert_int_equal(r.anomalies, 0);
	assert_int_equal(r.txs, BIG_TXS);
	hist_free(h);

	h = hist_new();
	long at = (long)(seed % (BIG_TXS / 2));
	build_big(h, seed, at, &victim);
	assert_true(victim != 0);
	r = check(h);
	char want[64];
	snprintf(want, sizeof(want), "T%#llx", (unsigned long long)victim);
	assert_true(r.cycles >= 1);
	assert_non_null(strstr(r.text, want));
	hist_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_serializable),
	    cmocka_unit_test(test_write_skew),
	    cmocka_unit_test(test_lost_update),
	    cmocka_unit_test(test_stale_read),
	    cmocka_unit_test(test_fractured_read),
	    cmocka_unit_test(test_bad_reads),
	    cmocka_unit_test(test_bad_records),
	    cmocka_unit_test(test_long_cycle),
	    cmocka_unit_test_teardown(test_logs_from_processes, proc_teardown),
	    cmocka_unit_test(test_log_file_and_malformed),
	    cmocka_unit_test(test_big_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
