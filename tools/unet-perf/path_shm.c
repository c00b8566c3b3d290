/*
 * path_shm.c - the shm NIC through the public U-Net API (include/unet/unet.h),
 * exactly as an application would use it.
 *
 * Ping-pong: messages up to UNET_INLINE_MAX ride inline (unet_send_inline);
 * larger ones are sent from the segment, the receive buffer is released and
 * the send completion reaped inside the timed loop, because an application
 * must do both. The receiver busy-polls unet_recv.
 *
 * Like the floor (see path_floor.c for why), the ping-pong moves every
 * BLOCK messages to the next of several endpoint pairs, each with its own
 * channel and so its own receive rings on their own pages: one pair's
 * round trip depends on where the host put those few pages, and a single
 * pair would make the shm/floor ratio a lottery. --shm-pairs 1 is the
 * single pair an application with one peer has.
 *
 * Streaming needs flow control, as any U-Net application does: the NIC
 * drops (and counts) what finds no free buffer. The receiver returns
 * credits, an inline message with its running count, every quarter window;
 * the window is the receiver's buffer count (segment messages) or receive
 * queue depth (inline ones), so nothing is ever dropped. The sender rotates
 * over a few source slots in its segment (together at most 256 KiB, so they
 * stay in cache as the floor's single source buffer does) and reuses a slot
 * only after reaping its completion. Every message carries its sequence
 * number in its first 8 bytes, which the receiver checks.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "perf.h"
#include "unet/unet.h"

#define NSRC	  32u	       /* most source slots in the sender's segment */
#define SRC_BYTES (256u << 10) /* ... and at most this much: stay in L2 */
#define BATCH	  16u	       /* descriptors per unet_send while streaming */
#define MAX_PAIRS 64u
#define DEF_PAIRS 8u
#define BLOCK	  256u /* ping-pong messages per endpoint pair */

/* One endpoint of a pair, as seen from this process. */
struct pair {
	struct unet_ep *ep;
	unsigned ch;
	uint8_t *seg;
};

struct shm_ctx {
	char prefix[UNET_NAME_MAX - 8];
	struct unet_ep_attr attr;
	size_t max, slot;
	uint32_t nsrc, npairs;
	struct unet_nic *nic;
	struct pair pairs[MAX_PAIRS];
	uint64_t seq;
	uint8_t small[UNET_INLINE_MAX];
};

static size_t round_up(size_t v, size_t a)
{
	return (v + a - 1) / a * a;
}

static int shm_setup(void *vc, const struct perf_opts *o, size_t max)
{
	struct shm_ctx *c = vc;
	int pid = (int)getpid();

	c->max = max;
	c->slot = round_up(max, 4096);
	snprintf(c->prefix, sizeof(c->prefix), "unet-perf-%d", pid);
	c->npairs = o->shm_pairs ? o->shm_pairs : DEF_PAIRS;
	if (c->npairs > MAX_PAIRS)
		return -EINVAL;
	c->nsrc = (uint32_t)(SRC_BYTES / c->slot);
	c->nsrc = c->nsrc > NSRC ? NSRC : c->nsrc < 2 ? 2 : c->nsrc;
	c->attr.seg_size = c->nsrc * c->slot;
	c->attr.sq_depth = 256;
	c->attr.rq_depth = 256;
	c->attr.rx_bufs = 64;
	c->attr.rx_buf_size = (uint32_t)(max > 65536 ? round_up(max, 64) : 65536);
	c->attr.max_chans = 4;
	return 0;
}

static void ep_name(const struct shm_ctx *c, int side, uint32_t k, char *out)
{
	/* Bounded so the compiler can see it fits: k < MAX_PAIRS = 64. */
	snprintf(out, UNET_NAME_MAX, "%.48s-%c%u", c->prefix, side == PERF_INITIATOR ? 'i' : 'r',
		 k & (MAX_PAIRS - 1));
}

static void shm_detach(void *vc, int side)
{
	struct shm_ctx *c = vc;

	for (uint32_t k = 0; k < c->npairs; k++) {
		if (c->pairs[k].ep)
			unet_ep_destroy(c->pairs[k].ep);
		c->pairs[k].ep = NULL;
	}
	if (c->nic)
		unet_nic_close(c->nic);
	c->nic = NULL;
}

static int shm_attach(void *vc, int side)
{
	struct shm_ctx *c = vc;
	char me[UNET_NAME_MAX], peer[UNET_NAME_MAX];
	size_t segsz;
	int rc;

	rc = unet_nic_open("shm", &c->nic);
	if (rc < 0)
		return rc;
	/* Both sides walk the pairs in the same order, so each open meets
	 * the peer's. */
	for (uint32_t k = 0; k < c->npairs; k++) {
		struct pair *p = &c->pairs[k];
		ep_name(c, side, k, me);
		ep_name(c, !side, k, peer);
		rc = unet_ep_create(c->nic, me, &c->attr, &p->ep);
		if (rc < 0)
			goto fail;
		rc = unet_chan_open(p->ep, peer, PERF_STALL_MS * 2);
		if (rc < 0)
			goto fail;
		p->ch = (unsigned)rc;
		p->seg = unet_ep_segment(p->ep, &segsz);
		memset(p->seg, 0x5a, segsz); /* fault it in now, not in the timed loop */
	}
	memset(c->small, 0x5a, sizeof(c->small));
	return 0;
fail:
	shm_detach(c, side);
	return rc;
}

static void shm_teardown(void *vc)
{
}

/* One message of `size` bytes with `seq` at its head, from segment offset 0
 * when it does not fit inline. */
static inline int send_one(struct shm_ctx *c, struct pair *p, size_t size, uint64_t seq)
{
	if (size <= UNET_INLINE_MAX) {
		memcpy(c->small, &seq, sizeof(seq));
		return unet_send_inline(p->ep, p->ch, c->small, (uint32_t)size);
	}
	memcpy(p->seg, &seq, sizeof(seq));
	struct unet_desc d = {.off = 0, .len = (uint32_t)size, .chan = (uint16_t)p->ch};
	int rc = unet_send(p->ep, &d, 1);
	return rc == 1 ? 0 : rc < 0 ? rc : -EAGAIN;
}

static inline int recv_one(struct pair *p, struct unet_desc *in)
{
	struct perf_wait w;

	perf_wait_begin(&w);
	for (;;) {
		int n = unet_recv(p->ep, in, 1);
		if (n == 1)
			return in->flags & UNET_DF_CHAN_DOWN ? -ECONNRESET : 0;
		if (n < 0)
			return n;
		int rc = perf_wait_step(&w);
		if (rc)
			return rc;
	}
}

static inline const void *payload(struct pair *p, const struct unet_desc *d)
{
	return d->flags & UNET_DF_INLINE ? (const void *)d->data : unet_ptr(p->ep, d->off);
}

/* Check the head of a received message, give its buffer back, and reap the
 * completion of our own segment send. */
static inline int finish(struct pair *p, const struct unet_desc *in, size_t size, uint64_t seq)
{
	uint64_t head;
	int rc;

	if (in->len != size)
		return -EBADMSG;
	memcpy(&head, payload(p, in), sizeof(head));
	if (head != seq)
		return -EBADMSG;
	rc = unet_release(p->ep, in, 1);
	if (rc < 0)
		return rc;
	if (size > UNET_INLINE_MAX) {
		struct unet_comp comp;
		if (unet_poll_comp(p->ep, &comp, 1) != 1)
			return -EIO; /* the shm NIC completes synchronously */
		if (comp.status < 0)
			return comp.status;
	}
	return 0;
}

static int shm_ping(void *vc, size_t size, uint32_t iters, uint64_t *rtt)
{
	struct shm_ctx *c = vc;
	struct unet_desc in;

	for (uint32_t i = 0; i < iters; i++) {
		uint64_t s = ++c->seq, t0 = perf_ticks();
		struct pair *p = &c->pairs[s / BLOCK % c->npairs];
		int rc = send_one(c, p, size, s);
		if (rc == 0)
			rc = recv_one(p, &in);
		if (rc == 0)
			rc = finish(p, &in, size, s);
		if (rc < 0)
			return rc;
		rtt[i] = perf_ticks() - t0;
	}
	return 0;
}

static int shm_pong(void *vc, size_t size, uint32_t iters)
{
	struct shm_ctx *c = vc;
	struct unet_desc in;

	for (uint32_t i = 0; i < iters; i++) {
		uint64_t s = ++c->seq;
		struct pair *p = &c->pairs[s / BLOCK % c->npairs];
		int rc = recv_one(p, &in);
		if (rc == 0)
			rc = send_one(c, p, size, s);
		if (rc == 0)
			rc = finish(p, &in, size, s);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static uint32_t window(const struct shm_ctx *c, size_t size)
{
	return size <= UNET_INLINE_MAX ? c->attr.rq_depth : c->attr.rx_bufs;
}

static int shm_stream_tx(void *vc, size_t size, uint64_t count)
{
	struct shm_ctx *c = vc;
	struct pair *p = &c->pairs[0]; /* streaming is not a page lottery */
	const bool inl = size <= UNET_INLINE_MAX;
	const uint64_t win = window(c, size);
	uint64_t sent = 0, acked = 0, done = 0;
	struct unet_desc d[BATCH], in[8];
	struct unet_comp comp[64];
	struct perf_wait w;

	for (unsigned k = 0; k < BATCH; k++) {
		memset(&d[k], 0x5a, sizeof(d[k]));
		d[k].chan = (uint16_t)p->ch;
		d[k].len = (uint32_t)size;
		d[k].flags = inl ? UNET_DF_INLINE : 0;
		d[k].off = 0;
	}
	perf_wait_begin(&w);
	while (acked < count) {
		bool progress = false;
		int n = unet_recv(p->ep, in, 8);
		for (int k = 0; k < n; k++) {
			uint64_t v;
			if (in[k].flags & UNET_DF_CHAN_DOWN)
				return -ECONNRESET;
			if (!(in[k].flags & UNET_DF_INLINE) || in[k].len != sizeof(v))
				return -EBADMSG;
			memcpy(&v, in[k].data, sizeof(v));
			if (v > acked)
				acked = v;
			progress = true;
		}
		if (!inl) {
			int m = unet_poll_comp(p->ep, comp, 64);
			for (int k = 0; k < m; k++)
				if (comp[k].status < 0)
					return comp[k].status;
			done += (uint64_t)(m > 0 ? m : 0);
			progress |= m > 0;
		}
		uint64_t room = win - (sent - acked);
		if (room > count - sent)
			room = count - sent;
		if (!inl && room > c->nsrc - (sent - done))
			room = c->nsrc - (sent - done);
		if (room > BATCH)
			room = BATCH;
		if (room > 0) {
			for (unsigned k = 0; k < room; k++) {
				uint64_t seq = sent + k + 1;
				if (inl) {
					memcpy(d[k].data, &seq, sizeof(seq));
				} else {
					d[k].off = ((sent + k) % c->nsrc) * c->slot;
					memcpy(p->seg + d[k].off, &seq, sizeof(seq));
				}
			}
			int r = unet_send(p->ep, d, (unsigned)room);
			if (r < 0 && r != -EAGAIN)
				return r;
			if (r > 0) {
				sent += (uint64_t)r;
				progress = true;
			}
		}
		if (progress) {
			perf_wait_begin(&w);
		} else {
			int rc = perf_wait_step(&w);
			if (rc)
				return rc;
		}
	}
	/* Leave no completion behind for the next run to miscount. */
	while (!inl && done < sent) {
		int m = unet_poll_comp(p->ep, comp, 64);
		for (int k = 0; k < m; k++)
			if (comp[k].status < 0)
				return comp[k].status;
		if (m <= 0) {
			int rc = perf_wait_step(&w);
			if (rc)
				return rc;
		}
		done += (uint64_t)(m > 0 ? m : 0);
	}
	struct unet_stats st;
	unet_get_stats(p->ep, &st);
	return st.tx_dropped ? -ENOBUFS : 0;
}

static int shm_stream_rx(void *vc, size_t size, uint64_t count, struct perf_stream_rx *res)
{
	struct shm_ctx *c = vc;
	struct pair *p = &c->pairs[0];
	const uint64_t every = window(c, size) / 4;
	uint64_t got = 0;
	struct unet_desc d[32];
	struct perf_wait w;

	perf_wait_begin(&w);
	while (got < count) {
		int n = unet_recv(p->ep, d, 32);
		if (n <= 0) {
			int rc = n < 0 ? n : perf_wait_step(&w);
			if (rc)
				return rc;
			continue;
		}
		uint64_t before = got;
		for (int k = 0; k < n; k++) {
			uint64_t head;
			if (d[k].flags & UNET_DF_CHAN_DOWN)
				return -ECONNRESET;
			memcpy(&head, payload(p, &d[k]), sizeof(head));
			if (head != got + 1 || d[k].len != size)
				return -EBADMSG;
			got++;
		}
		int rc = unet_release(p->ep, d, (unsigned)n);
		if (rc < 0)
			return rc;
		/* Credits only after the buffers are back on the free queue. */
		if (got / every != before / every || got == count) {
			rc = unet_send_inline(p->ep, p->ch, &got, sizeof(got));
			if (rc < 0)
				return rc;
		}
		perf_wait_begin(&w);
	}
	res->last_ns = perf_now_ns();
	res->received = got;
	return 0;
}

const struct perf_path perf_path_shm = {
    .key = "shm",
    .title = "shm NIC",
    .ctx_size = sizeof(struct shm_ctx),
    .max_msg = PERF_MAX_MSG,
    .setup = shm_setup,
    .attach = shm_attach,
    .ping = shm_ping,
    .pong = shm_pong,
    .stream_tx = shm_stream_tx,
    .stream_rx = shm_stream_rx,
    .detach = shm_detach,
    .teardown = shm_teardown,
    .note = "U-Net shm NIC endpoints, inline <= 48 B, segment above, busy-polled unet_recv; "
	    "ping-pong moves to the next of 8 endpoint pairs every 256 messages",
};
