/*
 * path_floor.c - the physical floor: two processes talking through nothing
 * but shared memory, with no library, queue or descriptor in between.
 *
 * Ping-pong: each message is one cache line holding a sequence word and, for
 * messages up to 56 bytes, the payload itself, so a small round trip is
 * exactly two cache-line transfers. Larger messages are copied into a buffer
 * next to the line first and the line then says "it is there". Streaming:
 * the same slots as a ring, the consumer publishing its index every quarter
 * ring. Every message is copied in from the sender's private buffer and the
 * receiver checks the sequence number at its head, which is what the shm NIC
 * does too, so the comparison is like for like.
 *
 * Why the line moves: on this VM the cost of moving a line between the two
 * CPUs depends on the physical page it lives in (all lines of a page cost
 * the same, a page keeps its cost, and a round trip costs ~160 to ~420 ns
 * depending on the two pages: probably where the host put them). A fixed
 * pair of lines is a lottery drawn at mmap time, so the ping-pong moves to
 * the next pair of pages every BLOCK messages, over K pairs, and its median
 * is the typical page's cost. Not every message: touching a new page per
 * message costs ~90 ns more here (the shm NIC's ring packs 64 descriptors
 * per page, so it does not pay that either). --floor-slots 1 brings back
 * the single fixed line each way.
 *
 * The mapping is MAP_SHARED anonymous memory created before fork.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "perf.h"

#define LINE_DATA  56u
#define PAIR	   128u /* keep hot lines apart from the adjacent-line prefetcher */
#define MAX_SLOTS  64u
#define AREA_BYTES (16u << 20) /* fewer slots for big messages, past this */
#define BLOCK	   256u	       /* ping-pong messages per pair of pages */

struct line {
	_Alignas(PAIR) uint64_t seq;
	uint8_t data[LINE_DATA];
};

/* A direction: K slots of [line | payload buffer]; a page or more each for
 * ping-pong, packed for streaming (a ring moves on every message). */
struct area {
	uint8_t *base;
	size_t stride;
	uint32_t k;
};

struct floor_ctx {
	uint8_t *map;
	size_t map_size;
	struct area ab, ba, st; /* ping, pong, stream */
	uint64_t *cons;		/* streaming: slots consumed, own line */
	uint8_t *priv;		/* the sender's private source buffer */
	size_t max;
	uint64_t seq; /* ping-pong: both sides step it in lockstep */
	uint64_t idx; /* streaming: produced (initiator) / consumed (responder) */
	uint64_t cons_cache;
};

static size_t round_up(size_t v, size_t a)
{
	return (v + a - 1) / a * a;
}

static int floor_setup(void *vc, const struct perf_opts *o, size_t max)
{
	struct floor_ctx *c = vc;
	size_t page = 4096, packed = PAIR + round_up(max, PAIR);
	size_t stride = round_up(packed, page);
	uint32_t k = (uint32_t)(AREA_BYTES / stride);
	uint8_t *at;

	if (k > MAX_SLOTS)
		k = MAX_SLOTS;
	if (k < 4)
		k = 4;
	c->max = max;
	c->ab = (struct area){.stride = stride, .k = o->floor_slots ? o->floor_slots : k};
	c->ba = c->ab;
	c->st = (struct area){.stride = packed, .k = k};
	c->map_size = page + round_up(stride * c->ab.k, page) * 2 + round_up(packed * k, page);
	c->map = mmap(NULL, c->map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (c->map == MAP_FAILED)
		return -errno;
	memset(c->map, 0, c->map_size); /* fault everything in before fork */
	c->cons = (uint64_t *)c->map;
	at = c->map + page;
	c->ab.base = at;
	at += round_up(stride * c->ab.k, page);
	c->ba.base = at;
	at += round_up(stride * c->ba.k, page);
	c->st.base = at;
	return 0;
}

static int floor_attach(void *vc, int side)
{
	struct floor_ctx *c = vc;

	c->priv = malloc(c->max < 8 ? 8 : c->max);
	if (!c->priv)
		return -ENOMEM;
	memset(c->priv, 0x5a, c->max);
	return 0;
}

static inline struct line *slot(const struct area *a, uint64_t i)
{
	return (struct line *)(a->base + (i % a->k) * a->stride);
}

static inline void put(struct line *l, const uint8_t *src, size_t size, uint64_t seq)
{
	if (size <= LINE_DATA)
		memcpy(l->data, src, size);
	else
		memcpy((uint8_t *)l + PAIR, src, size);
	__atomic_store_n(&l->seq, seq, __ATOMIC_RELEASE);
}

static inline int take(const struct line *l, size_t size, uint64_t seq)
{
	struct perf_wait w;
	uint64_t head;

	perf_wait_begin(&w);
	while (__atomic_load_n(&l->seq, __ATOMIC_ACQUIRE) != seq) {
		int rc = perf_wait_step(&w);
		if (rc)
			return rc;
	}
	memcpy(&head, size <= LINE_DATA ? l->data : (const uint8_t *)l + PAIR, sizeof(head));
	return head == seq ? 0 : -EBADMSG;
}

static int floor_ping(void *vc, size_t size, uint32_t iters, uint64_t *rtt)
{
	struct floor_ctx *c = vc;

	for (uint32_t i = 0; i < iters; i++) {
		uint64_t s = ++c->seq, t0 = perf_ticks();
		memcpy(c->priv, &s, sizeof(s));
		put(slot(&c->ab, s / BLOCK), c->priv, size, s);
		int rc = take(slot(&c->ba, s / BLOCK), size, s);
		if (rc)
			return rc;
		rtt[i] = perf_ticks() - t0;
	}
	return 0;
}

static int floor_pong(void *vc, size_t size, uint32_t iters)
{
	struct floor_ctx *c = vc;

	for (uint32_t i = 0; i < iters; i++) {
		uint64_t s = ++c->seq;
		int rc = take(slot(&c->ab, s / BLOCK), size, s);
		if (rc)
			return rc;
		memcpy(c->priv, &s, sizeof(s));
		put(slot(&c->ba, s / BLOCK), c->priv, size, s);
	}
	return 0;
}

static int floor_stream_tx(void *vc, size_t size, uint64_t count)
{
	struct floor_ctx *c = vc;

	for (uint64_t n = 0; n < count; n++) {
		uint64_t i = c->idx, tag = i + 1;
		if (i - c->cons_cache >= c->st.k) {
			struct perf_wait w;
			perf_wait_begin(&w);
			for (;;) {
				c->cons_cache = __atomic_load_n(c->cons, __ATOMIC_ACQUIRE);
				if (i - c->cons_cache < c->st.k)
					break;
				int rc = perf_wait_step(&w);
				if (rc)
					return rc;
			}
		}
		memcpy(c->priv, &tag, sizeof(tag));
		put(slot(&c->st, i), c->priv, size, tag);
		c->idx++;
	}
	return 0;
}

static int floor_stream_rx(void *vc, size_t size, uint64_t count, struct perf_stream_rx *res)
{
	struct floor_ctx *c = vc;
	uint32_t every = c->st.k / 4;

	for (uint64_t n = 0; n < count; n++) {
		int rc = take(slot(&c->st, c->idx), size, c->idx + 1);
		if (rc)
			return rc;
		c->idx++;
		if (c->idx % every == 0)
			__atomic_store_n(c->cons, c->idx, __ATOMIC_RELEASE);
	}
	__atomic_store_n(c->cons, c->idx, __ATOMIC_RELEASE);
	res->last_ns = perf_now_ns();
	res->received = count;
	return 0;
}

static void floor_detach(void *vc, int side)
{
	struct floor_ctx *c = vc;

	free(c->priv);
	c->priv = NULL;
}

static void floor_teardown(void *vc)
{
	struct floor_ctx *c = vc;

	munmap(c->map, c->map_size);
}

const struct perf_path perf_path_floor = {
    .key = "floor",
    .title = "shm floor",
    .ctx_size = sizeof(struct floor_ctx),
    .max_msg = PERF_MAX_MSG,
    .setup = floor_setup,
    .attach = floor_attach,
    .ping = floor_ping,
    .pong = floor_pong,
    .stream_tx = floor_stream_tx,
    .stream_rx = floor_stream_rx,
    .detach = floor_detach,
    .teardown = floor_teardown,
    .note = "raw shared-memory flag ping-pong: one cache line each way (payload inside up "
	    "to 56 B), moving to the next of 64 page pairs every 256 messages",
};
