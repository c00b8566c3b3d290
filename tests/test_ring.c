/*
 * test_ring.c - the SPSC descriptor rings of include/unet/ring.h.
 *
 * Single-threaded cases pin down the index arithmetic (empty, full, batch,
 * cancel, and wraparound of the free-running 32-bit indices, started right
 * below UINT32_MAX so a run crosses 2^32); a corrupt peer index must never
 * yield a count above the ring size or a slot outside the ring. The stress
 * cases push millions of elements between two threads and between two
 * processes (ring in MAP_SHARED memory) with random batch sizes on both
 * sides; every element carries a sequence number, a payload derived from it
 * and a checksum, so a lost, duplicated, reordered or torn element fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "helpers/proc.h"
#include "unet/ring.h"

/* Element of the stress runs: one cache line. */
struct elem {
	uint64_t seq;
	uint32_t sum;
	uint32_t len;
	uint8_t payload[48];
};

#if defined(__SANITIZE_ADDRESS__)
#define STRESS_N (1u << 20) /* ASan at -O0: the checks, not the volume */
#else
#define STRESS_N (4u << 20)
#endif
#define STRESS_RING 1024u

static uint32_t fnv(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

static void elem_fill(struct elem *e, uint64_t seq, uint64_t seed)
{
	uint64_t x = mix(seq ^ seed);

	e->seq = seq;
	e->len = (uint32_t)(x % (sizeof(e->payload) + 1));
	for (uint32_t i = 0; i < sizeof(e->payload); i++)
		e->payload[i] = (uint8_t)(x >> ((i % 8) * 8)) ^ (uint8_t)i;
	e->sum = fnv(e->payload, e->len) ^ (uint32_t)seq;
}

/* 0 when e is element `seq` intact. */
static int elem_check(const struct elem *e, uint64_t seq, uint64_t seed)
{
	struct elem want;

	elem_fill(&want, seq, seed);
	if (e->seq != seq)
		return 1;
	if (e->len != want.len || e->sum != want.sum)
		return 2;
	if (memcmp(e->payload, want.payload, sizeof(want.payload)) != 0)
		return 3;
	if (fnv(e->payload, e->len) ^ (uint32_t)seq ^ e->sum)
		return 4;
	return 0;
}

/* A private view for one role: the producer publishes prod, the consumer
 * cons, so `pub` starts at that index as the shared header holds it. */
static void attach_as(struct unet_ring *r, void *mem, uint32_t size, uint32_t esize, int init,
		      int producer)
{
	memset(r, 0xa5, sizeof(*r)); /* stale garbage must not matter */
	assert_int_equal(unet_ring_attach(r, mem, size, esize, init), 0);
	r->pub = producer ? r->cached_prod : r->cached_cons;
}

static void *ring_mem(uint32_t size, uint32_t esize)
{
	size_t bytes = unet_ring__bytes(size, esize);
	bytes = (bytes + UNET_CACHELINE - 1) / UNET_CACHELINE * UNET_CACHELINE;
	void *m = aligned_alloc(UNET_CACHELINE, bytes);

	assert_non_null(m);
	memset(m, 0x5a, unet_ring__bytes(size, esize));
	return m;
}

static int slot_in(const struct unet_ring *r, const void *p)
{
	const char *s = r->slots, *q = p;

	return q >= s && q + r->esize <= s + (size_t)r->size * r->esize &&
	       (size_t)(q - s) % r->esize == 0;
}

/* ---- single-threaded --------------------------------------------------- */

static void test_attach_bad(void **state)
{
	struct unet_ring r;
	void *m = ring_mem(8, 8);

	assert_int_equal(unet_ring_attach(&r, m, 0, 8, 1), -EINVAL);
	assert_int_equal(unet_ring_attach(&r, m, 3, 8, 1), -EINVAL);
	assert_int_equal(unet_ring_attach(&r, m, 12, 8, 1), -EINVAL);
	assert_int_equal(unet_ring_attach(&r, m, 0x80000001u, 8, 1), -EINVAL);
	assert_int_equal(unet_ring_attach(&r, m, 8, 0, 1), -EINVAL);
	assert_int_equal(unet_ring_attach(&r, m, 1, 8, 1), 0);
	assert_int_equal(unet_ring_attach(&r, m, 8, 8, 1), 0);
	free(m);
}

static void test_empty_full(void **state)
{
	const uint32_t size = 8;
	void *m = ring_mem(size, sizeof(uint64_t));
	struct unet_ring p, c;
	uint32_t idx, n;

	attach_as(&p, m, size, sizeof(uint64_t), 1, 1);
	attach_as(&c, m, size, sizeof(uint64_t), 0, 0);

	assert_int_equal(unet_ring_cons__peek(&c, 1, &idx), 0);
	assert_int_equal(unet_ring_cons__peek(&c, size, &idx), 0);
	assert_int_equal(unet_ring_prod__nb_free(&p, size), size);

	/* Fill to the brim; one more is refused. */
	n = unet_ring_prod__reserve(&p, size, &idx);
	assert_int_equal(n, size);
	for (uint32_t i = 0; i < n; i++)
		*(uint64_t *)unet_ring__slot(&p, idx + i) = 100 + i;
	assert_int_equal(unet_ring_prod__reserve(&p, 1, &idx), 0);
	/* Reserved but not submitted: the consumer sees nothing yet. */
	assert_int_equal(unet_ring_cons__peek(&c, 1, &idx), 0);
	unet_ring_prod__submit(&p, size);
	assert_int_equal(unet_ring_prod__reserve(&p, 1, &idx), 0);
	assert_int_equal(unet_ring_prod__nb_free(&p, 1), 0);

	/* Drain in two batches; the producer gets room only after release. */
	n = unet_ring_cons__peek(&c, 3, &idx);
	assert_int_equal(n, 3);
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(*(uint64_t *)unet_ring__slot(&c, idx + i), 100 + i);
	assert_int_equal(unet_ring_prod__reserve(&p, 1, &idx), 0);
	unet_ring_cons__release(&c, 3);
	n = unet_ring_prod__reserve(&p, 5, &idx);
	assert_int_equal(n, 3); /* asks 5, gets what is free */
	unet_ring_prod__cancel(&p, 3);
	n = unet_ring_cons__peek(&c, 100, &idx);
	assert_int_equal(n, size - 3);
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(*(uint64_t *)unet_ring__slot(&c, idx + i), 103 + i);
	unet_ring_cons__release(&c, n);
	assert_int_equal(unet_ring_cons__peek(&c, 1, &idx), 0);
	assert_int_equal(unet_ring_prod__nb_free(&p, size), size);
	assert_int_equal(__atomic_load_n(&p.hdr->prod, __ATOMIC_RELAXED), size);
	assert_int_equal(__atomic_load_n(&p.hdr->cons, __ATOMIC_RELAXED), size);
	free(m);
}

static void test_batch_and_cancel(void **state)
{
	const uint32_t size = 16;
	void *m = ring_mem(size, sizeof(uint64_t));
	struct unet_ring p, c;
	uint32_t idx, idx2, n;

	attach_as(&p, m, size, sizeof(uint64_t), 1, 1);
	attach_as(&c, m, size, sizeof(uint64_t), 0, 0);

	/* Two reservations, submitted oldest first in pieces. */
	assert_int_equal(unet_ring_prod__reserve(&p, 4, &idx), 4);
	assert_int_equal(unet_ring_prod__reserve(&p, 4, &idx2), 4);
	assert_int_equal(idx2, idx + 4);
	for (uint32_t i = 0; i < 8; i++)
		*(uint64_t *)unet_ring__slot(&p, idx + i) = i;
	unet_ring_prod__submit(&p, 2);
	assert_int_equal(unet_ring_cons__peek(&c, 8, &idx), 2);
	unet_ring_cons__cancel(&c, 2);
	unet_ring_prod__submit(&p, 6);
	/* A peek that found 2 cached entries and wants more refreshes. */
	n = unet_ring_cons__peek(&c, 8, &idx);
	assert_int_equal(n, 8);
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(*(uint64_t *)unet_ring__slot(&c, idx + i), i);

	/* Consume 3, give the other 5 back: they come again, in order. */
	unet_ring_cons__cancel(&c, 5);
	unet_ring_cons__release(&c, 3);
	n = unet_ring_cons__peek(&c, 2, &idx);
	assert_int_equal(n, 2);
	assert_int_equal(*(uint64_t *)unet_ring__slot(&c, idx), 3);
	unet_ring_cons__release(&c, 2);
	n = unet_ring_cons__peek(&c, 100, &idx);
	assert_int_equal(n, 3);
	assert_int_equal(*(uint64_t *)unet_ring__slot(&c, idx), 5);
	unet_ring_cons__release(&c, 3);

	/* A cancelled reservation is handed out again at the same index. */
	assert_int_equal(unet_ring_prod__reserve(&p, 5, &idx), 5);
	unet_ring_prod__cancel(&p, 2);
	assert_int_equal(unet_ring_prod__reserve(&p, 1, &idx2), 1);
	assert_int_equal(idx2, idx + 3);
	for (uint32_t i = 0; i < 4; i++)
		*(uint64_t *)unet_ring__slot(&p, idx + i) = 40 + i;
	unet_ring_prod__submit(&p, 4);
	n = unet_ring_cons__peek(&c, 100, &idx);
	assert_int_equal(n, 4);
	for (uint32_t i = 0; i < 4; i++)
		assert_int_equal(*(uint64_t *)unet_ring__slot(&c, idx + i), 40 + i);
	unet_ring_cons__release(&c, 4);
	assert_int_equal(unet_ring_cons__peek(&c, 1, &idx), 0);
	free(m);
}

/* Start both indices at `start` (as if the ring had already carried that
 * many elements) and push `total` elements through in uneven batches. */
static void run_wrap(uint32_t start, uint32_t size, uint32_t total)
{
	void *m = ring_mem(size, sizeof(uint64_t));
	struct unet_ring p, c;
	struct unet_ring_hdr *h = m;
	uint32_t idx, produced = 0, consumed = 0, round = 0;

	memset(h, 0, sizeof(*h));
	h->prod = h->cons = start;
	attach_as(&p, m, size, sizeof(uint64_t), 0, 1);
	attach_as(&c, m, size, sizeof(uint64_t), 0, 0);
	assert_int_equal(p.pub, start);
	assert_int_equal(c.pub, start);
	assert_int_equal(unet_ring_cons__peek(&c, 1, &idx), 0);
	assert_int_equal(unet_ring_prod__nb_free(&p, size), size);

	while (consumed < total) {
		uint32_t want = 1 + (round * 7) % (size + 2), n;
		round++;
		if (want > total - produced)
			want = total - produced;
		n = unet_ring_prod__reserve(&p, want, &idx);
		assert_true(n <= size);
		assert_int_equal(idx, start + produced);
		for (uint32_t i = 0; i < n; i++) {
			uint64_t *s = unet_ring__slot(&p, idx + i);
			assert_true(slot_in(&p, s));
			*s = (uint64_t)(produced + i) * 2654435761u;
		}
		unet_ring_prod__submit(&p, n);
		produced += n;
		assert_true(produced - consumed <= size);

		want = 1 + (round * 5) % (size + 3);
		n = unet_ring_cons__peek(&c, want, &idx);
		assert_true(n <= produced - consumed);
		assert_int_equal(idx, start + consumed);
		for (uint32_t i = 0; i < n; i++) {
			uint64_t *s = unet_ring__slot(&c, idx + i);
			assert_true(slot_in(&c, s));
			assert_int_equal(*s, (uint64_t)(consumed + i) * 2654435761u);
		}
		unet_ring_cons__release(&c, n);
		consumed += n;
	}
	assert_int_equal(h->prod, start + total);
	assert_int_equal(h->cons, start + total);
	assert_int_equal(unet_ring_cons__peek(&c, 1, &idx), 0);
	free(m);
}

static void test_wrap_small(void **state)
{
	run_wrap(0, 4, 1000);
	run_wrap(0, 1, 100);
}

static void test_wrap_2_32(void **state)
{
	/* Indices cross 2^32 within the first few batches, several times
	 * over the run for the smaller starting gaps. */
	run_wrap(UINT32_MAX - 5, 8, 10000);
	run_wrap(UINT32_MAX, 16, 10000);
	run_wrap(UINT32_MAX - 1000, 1024, 100000);
	run_wrap(0x80000000u - 3, 4, 1000); /* the sign bit of a difference */
}

/* Full at the 2^32 boundary: prod wrapped to a small number, cons not. */
static void test_full_across_2_32(void **state)
{
	const uint32_t size = 8;
	void *m = ring_mem(size, sizeof(uint64_t));
	struct unet_ring p, c;
	struct unet_ring_hdr *h = m;
	uint32_t idx;

	memset(h, 0, sizeof(*h));
	h->prod = h->cons = UINT32_MAX - 2;
	attach_as(&p, m, size, sizeof(uint64_t), 0, 1);
	attach_as(&c, m, size, sizeof(uint64_t), 0, 0);
	assert_int_equal(unet_ring_prod__reserve(&p, size, &idx), size);
	unet_ring_prod__submit(&p, size);
	assert_int_equal(h->prod, (uint32_t)(UINT32_MAX - 2 + size));
	assert_true(h->prod < h->cons); /* wrapped */
	assert_int_equal(unet_ring_prod__reserve(&p, 1, &idx), 0);
	assert_int_equal(unet_ring_cons__peek(&c, 100, &idx), size);
	unet_ring_cons__release(&c, 1);
	assert_int_equal(unet_ring_prod__reserve(&p, 2, &idx), 1);
	free(m);
}

/* A peer that writes nonsense into its index makes our view refuse or
 * clamp, never hand out more than the ring or a slot outside it. */
static void test_corrupt_peer_index(void **state)
{
	const uint32_t size = 16;
	void *m = ring_mem(size, sizeof(uint64_t));
	struct unet_ring p, c;
	struct unet_ring_hdr *h = m;
	uint32_t idx, n;
	const uint32_t bad[] = {1, 17, 100, 0x7fffffffu, 0x80000000u, UINT32_MAX, UINT32_MAX - 15,
				UINT32_MAX - 16, 12345678u};

	for (unsigned k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		for (uint32_t base = 0; base < 3; base++) {
			uint32_t start = base == 0 ? 0 : base == 1 ? 5 : UINT32_MAX - 3;

			memset(h, 0, sizeof(*h));
			h->prod = h->cons = start;
			attach_as(&p, m, size, sizeof(uint64_t), 0, 1);
			attach_as(&c, m, size, sizeof(uint64_t), 0, 0);

			/* Consumer lies: cons jumps. */
			__atomic_store_n(&h->cons, start + bad[k], __ATOMIC_RELAXED);
			n = unet_ring_prod__reserve(&p, 1000, &idx);
			assert_true(n <= size);
			for (uint32_t i = 0; i < n; i++)
				assert_true(slot_in(&p, unet_ring__slot(&p, idx + i)));
			/* ...or runs behind by more than a ring. */
			__atomic_store_n(&h->cons, start - bad[k], __ATOMIC_RELAXED);
			p.cached_cons = start - bad[k] + 1; /* force the refresh */
			n = unet_ring_prod__reserve(&p, 1000, &idx);
			assert_true(n <= size);

			/* Producer lies: prod jumps (both directions). */
			memset(h, 0, sizeof(*h));
			h->prod = h->cons = start;
			attach_as(&c, m, size, sizeof(uint64_t), 0, 0);
			__atomic_store_n(&h->prod, start + bad[k], __ATOMIC_RELAXED);
			n = unet_ring_cons__peek(&c, 1000, &idx);
			assert_true(n <= size);
			assert_int_equal(idx, start);
			for (uint32_t i = 0; i < n; i++)
				assert_true(slot_in(&c, unet_ring__slot(&c, idx + i)));
			unet_ring_cons__release(&c, n);
			n = unet_ring_cons__peek(&c, 1000, &idx);
			assert_true(n <= size);
			for (uint32_t i = 0; i < n; i++)
				assert_true(slot_in(&c, unet_ring__slot(&c, idx + i)));
			attach_as(&c, m, size, sizeof(uint64_t), 0, 0);
			__atomic_store_n(&h->prod, start - bad[k], __ATOMIC_RELAXED);
			n = unet_ring_cons__peek(&c, 1000, &idx);
			assert_true(n <= size);
			for (uint32_t i = 0; i < n; i++)
				assert_true(slot_in(&c, unet_ring__slot(&c, idx + i)));
		}
	}
	/* Any index at all maps into the ring. */
	attach_as(&c, m, size, sizeof(uint64_t), 1, 0);
	for (uint64_t i = 0; i <= UINT32_MAX; i += 65521)
		assert_true(slot_in(&c, unet_ring__slot(&c, (uint32_t)i)));
	assert_true(slot_in(&c, unet_ring__slot(&c, UINT32_MAX)));
	free(m);
}

/* ---- stress ------------------------------------------------------------ */

struct stress {
	struct unet_ring view;
	uint64_t seed;
	uint32_t n;
	int err; /* consumer: first error, as elem_check reports it */
	uint64_t bad_seq;
};

static void backoff(unsigned *spins)
{
	if (++*spins < 256) {
		__builtin_ia32_pause();
	} else if (*spins < 512) {
		sched_yield();
	} else {
		struct timespec ts = {0, 20000};
		nanosleep(&ts, NULL);
	}
}

static uint32_t rng_next(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(*s >> 33);
}

static void produce(struct stress *s)
{
	uint64_t rng = s->seed ^ 0x1234;
	uint32_t sent = 0, idx;
	unsigned spins = 0;

	while (sent < s->n) {
		uint32_t want = 1 + rng_next(&rng) % 64, n;
		if (want > s->n - sent)
			want = s->n - sent;
		n = unet_ring_prod__reserve(&s->view, want, &idx);
		if (n == 0) {
			backoff(&spins);
			continue;
		}
		spins = 0;
		for (uint32_t i = 0; i < n; i++)
			elem_fill(unet_ring__slot(&s->view, idx + i), sent + i, s->seed);
		/* Sometimes publish in two steps, as a NIC batching would. */
		if (n > 1 && (rng_next(&rng) & 1)) {
			unet_ring_prod__submit(&s->view, n / 2);
			unet_ring_prod__submit(&s->view, n - n / 2);
		} else {
			unet_ring_prod__submit(&s->view, n);
		}
		sent += n;
	}
}

static void consume(struct stress *s)
{
	uint64_t rng = s->seed ^ 0x9876;
	uint32_t got = 0, idx;
	unsigned spins = 0;

	while (got < s->n) {
		uint32_t want = 1 + rng_next(&rng) % 64, n;
		n = unet_ring_cons__peek(&s->view, want, &idx);
		if (n == 0) {
			backoff(&spins);
			continue;
		}
		spins = 0;
		/* Sometimes consume only part and give the rest back. */
		uint32_t use = n > 1 && (rng_next(&rng) % 4 == 0) ? n / 2 : n;
		for (uint32_t i = 0; i < use; i++) {
			if (s->err)
				break; /* keep draining so the producer can finish */
			int e = elem_check(unet_ring__slot(&s->view, idx + i), got + i, s->seed);
			if (e) {
				s->err = e;
				s->bad_seq = got + i;
			}
		}
		unet_ring_cons__cancel(&s->view, n - use);
		unet_ring_cons__release(&s->view, use);
		got += use;
	}
}

static void *producer_thread(void *arg)
{
	produce(arg);
	return NULL;
}

static void test_stress_threads(void **state)
{
	void *m = ring_mem(STRESS_RING, sizeof(struct elem));
	struct stress ps = {.seed = (uint64_t)time(NULL) * 2654435761u, .n = STRESS_N};
	struct stress cs = ps;
	pthread_t t;
	uint64_t t0 = proc_now_ms();

	attach_as(&ps.view, m, STRESS_RING, sizeof(struct elem), 1, 1);
	attach_as(&cs.view, m, STRESS_RING, sizeof(struct elem), 0, 0);
	assert_int_equal(pthread_create(&t, NULL, producer_thread, &ps), 0);
	consume(&cs);
	pthread_join(t, NULL);
	print_message("two threads: %u elements in %llu ms\n", STRESS_N,
		      (unsigned long long)(proc_now_ms() - t0));
	if (cs.err)
		fail_msg("element %llu: check %d failed", (unsigned long long)cs.bad_seq, cs.err);
	assert_int_equal(__atomic_load_n(&cs.view.hdr->cons, __ATOMIC_RELAXED), STRESS_N);
	free(m);
}

static int consumer_proc(void *arg)
{
	struct stress *s = arg;

	consume(s);
	return s->err ? 10 + s->err : 0;
}

static void test_stress_processes(void **state)
{
	size_t bytes = unet_ring__bytes(STRESS_RING, sizeof(struct elem));
	void *m = proc_shared(bytes);
	struct stress ps = {.seed = (uint64_t)time(NULL) * 40503u + 7, .n = STRESS_N};
	struct stress cs = ps;
	uint64_t t0 = proc_now_ms();

	assert_non_null(m);
	attach_as(&ps.view, m, STRESS_RING, sizeof(struct elem), 1, 1);
	attach_as(&cs.view, m, STRESS_RING, sizeof(struct elem), 0, 0);
	pid_t pid = proc_fork(consumer_proc, &cs);
	assert_true(pid > 0);
	produce(&ps);
	int rc = proc_wait(pid, 50000);
	print_message("two processes: %u elements in %llu ms\n", STRESS_N,
		      (unsigned long long)(proc_now_ms() - t0));
	assert_int_equal(rc, 0);
	assert_int_equal(__atomic_load_n(&ps.view.hdr->cons, __ATOMIC_ACQUIRE), STRESS_N);
	proc_unshare(m, bytes);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_attach_bad, proc_teardown),
		cmocka_unit_test_teardown(test_empty_full, proc_teardown),
		cmocka_unit_test_teardown(test_batch_and_cancel, proc_teardown),
		cmocka_unit_test_teardown(test_wrap_small, proc_teardown),
		cmocka_unit_test_teardown(test_wrap_2_32, proc_teardown),
		cmocka_unit_test_teardown(test_full_across_2_32, proc_teardown),
		cmocka_unit_test_teardown(test_corrupt_peer_index, proc_teardown),
		cmocka_unit_test_teardown(test_stress_threads, proc_teardown),
		cmocka_unit_test_teardown(test_stress_processes, proc_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
