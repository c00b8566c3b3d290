/*
 * test_shm_bad.c - bad input and exhausted resources on a live shm channel.
 *
 * The peer is a child process driven by commands through shared memory
 * (receive what is there, give buffers back, report counters, send), so each
 * test can arrange exactly who is slow: descriptors outside the segment or
 * larger than the peer's buffers, bad flags, closed and unknown channels, a
 * full send queue, a full receive queue (drop and count, never overwrite),
 * an empty free queue, bogus and double releases, and sends still queued
 * when their channel is closed and its slot reused. Every refusal is checked
 * for its exact code, and for having sent nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "helpers/proc.h"
#include "helpers/shm_peer.h"

#define TMO 10000
#define MAXREC 256

enum { CMD_RECV = 1, CMD_RELEASE, CMD_STATS, CMD_SEND, CMD_EXIT };

struct ctl {
	char a[UNET_NAME_MAX], b[UNET_NAME_MAX];
	struct unet_ep_attr attr; /* the child's */
	uint32_t cmd, arg, cmd_seq, ack_seq;
	int32_t result;
	int32_t child_ch;
	uint32_t nrec, downs;
	struct rec {
		uint64_t seq;
		uint32_t len, flags;
		int32_t intact;
	} rec[MAXREC];
	struct unet_stats st;
};

/* Message seq: bytes [0,8) carry seq, the rest pattern(seq). */
static void msg_fill(uint8_t *p, uint32_t len, uint64_t seq)
{
	if (len >= 8) {
		memcpy(p, &seq, 8);
		pattern_fill(p + 8, len - 8, seq);
	}
}

static int child_ctl(void *arg)
{
	struct ctl *c = arg;
	struct peer p;
	struct unet_desc held[MAXREC], d[16];
	unsigned nheld = 0;
	uint64_t sent = 0;

	if (peer_open(&p, c->b, &c->attr))
		return 10;
	c->child_ch = unet_chan_open(p.ep, c->a, TMO);
	if (c->child_ch < 0)
		return 11;
	for (uint32_t seen = 0;; seen++) {
		if (proc_wait_u32(&c->cmd_seq, seen + 1, 60000))
			return 12;
		int32_t res = 0;
		switch (c->cmd) {
		case CMD_RECV: /* everything that arrives within 100 ms */
			c->nrec = 0;
			for (;;) {
				int n = peer_recv(&p, d, 16, 100);
				if (n <= 0)
					break;
				for (int i = 0; i < n && c->nrec < MAXREC; i++) {
					if (d[i].flags & UNET_DF_CHAN_DOWN) {
						c->downs++;
						continue;
					}
					struct rec *r = &c->rec[c->nrec++];
					const uint8_t *q = peer_payload(&p, &d[i]);
					r->len = d[i].len;
					r->flags = d[i].flags;
					r->seq = UINT64_MAX;
					if (d[i].len >= 8)
						memcpy(&r->seq, q, 8);
					r->intact = d[i].len >= 8 &&
						    !pattern_check(q + 8, d[i].len - 8, r->seq);
					if (d[i].flags & UNET_DF_INLINE)
						continue;
					if (c->arg) /* give it back now, or hold it */
						res |= unet_release(p.ep, &d[i], 1);
					else
						held[nheld++] = d[i];
				}
			}
			break;
		case CMD_RELEASE:
			res = unet_release(p.ep, held, nheld);
			nheld = 0;
			break;
		case CMD_STATS:
			unet_get_stats(p.ep, &c->st);
			break;
		case CMD_SEND: /* arg segment messages of 1000 bytes */
			for (uint32_t i = 0; i < c->arg && !res; i++, sent++) {
				struct unet_desc s = {.chan = (uint16_t)c->child_ch, .len = 1000,
						      .off = 8192};
				struct unet_comp comp;
				msg_fill(p.seg + s.off, s.len, sent);
				res = peer_send(&p, &s, TMO);
				while (!res && unet_poll_comp(p.ep, &comp, 1) == 0)
					;
			}
			break;
		case CMD_EXIT:
			peer_close(&p);
			proc_set_u32(&c->ack_seq, seen + 1);
			return 0;
		}
		c->result = res;
		proc_set_u32(&c->ack_seq, seen + 1);
	}
}

static struct ctl *ctl_new(const char *tag)
{
	struct ctl *c = proc_shared(sizeof(*c));

	assert_non_null(c);
	proc_name(c->a, sizeof(c->a), tag);
	proc_name(c->b, sizeof(c->b), tag);
	return c;
}

static int32_t ctl_do(struct ctl *c, uint32_t cmd, uint32_t arg)
{
	c->cmd = cmd;
	c->arg = arg;
	proc_set_u32(&c->cmd_seq, c->cmd_seq + 1);
	assert_int_equal(proc_wait_u32(&c->ack_seq, c->cmd_seq, 30000), 0);
	return c->result;
}

/* Child process with c->attr, and our endpoint with `mine`, connected. */
static pid_t pair_up(struct ctl *c, struct peer *p, const struct unet_ep_attr *mine, int *ch)
{
	pid_t pid = proc_fork(child_ctl, c);

	assert_true(pid > 0);
	assert_int_equal(peer_open(p, c->a, mine), 0);
	*ch = unet_chan_open(p->ep, c->b, TMO);
	assert_true(*ch >= 0);
	return pid;
}

static void finish(struct ctl *c, struct peer *p, pid_t pid)
{
	ctl_do(c, CMD_EXIT, 0);
	assert_int_equal(proc_wait(pid, 20000), 0);
	peer_close(p);
	proc_unshare(c, sizeof(*c));
}

static struct unet_desc seg_desc(struct peer *p, int ch, uint64_t off, uint32_t len, uint64_t seq)
{
	struct unet_desc d = {.chan = (uint16_t)ch, .off = off, .len = len};

	if (off < p->seg_size && len <= p->seg_size - off)
		msg_fill(p->seg + off, len, seq);
	return d;
}

static struct unet_desc inl_desc(int ch, uint32_t len, uint64_t seq)
{
	struct unet_desc d = {.chan = (uint16_t)ch, .len = len, .flags = UNET_DF_INLINE};

	msg_fill(d.data, len <= UNET_INLINE_MAX ? len : UNET_INLINE_MAX, seq);
	return d;
}

/* The child received exactly seqs first..first+n-1, intact, in order. */
static void expect_rec(struct ctl *c, uint64_t first, uint32_t n)
{
	assert_int_equal(c->nrec, n);
	for (uint32_t i = 0; i < n; i++) {
		assert_int_equal(c->rec[i].seq, first + i);
		assert_true(c->rec[i].intact);
	}
}

/* ---- descriptors --------------------------------------------------------- */

static void test_bad_descriptors(void **state)
{
	struct ctl *c = ctl_new("bd");
	struct peer p;
	int ch;

	c->attr.rx_buf_size = 256;
	pid_t pid = pair_up(c, &p, NULL, &ch);
	const uint64_t S = p.seg_size;
	struct unet_stats st;
	struct {
		uint64_t off;
		uint32_t len;
	} range[] = {
		{S + 1, 0},		 {S, 1},		   {S - 10, 11},
		{S + 4096, 8},		 {UINT64_MAX, 2},	   {UINT64_MAX - 5, 10},
		{UINT64_MAX - S + 1, 0}, {0, (uint32_t)S + 1},	   {8, UINT32_MAX},
		{1ull << 63, 16},	 {S - 1, UINT32_MAX - 100}, {(1ull << 32) + 8, 8},
	};

	assert_int_equal(unet_chan_mtu(p.ep, (unsigned)ch), 256);
	for (unsigned i = 0; i < sizeof(range) / sizeof(range[0]); i++) {
		struct unet_desc d = seg_desc(&p, ch, range[i].off, range[i].len, 0);
		if (unet_send(p.ep, &d, 1) != -ERANGE)
			fail_msg("off %llu len %u: not -ERANGE", (unsigned long long)range[i].off,
				 range[i].len);
	}
	/* Larger than the peer's buffers, but inside our segment. */
	struct unet_desc d = seg_desc(&p, ch, 0, 257, 0);
	assert_int_equal(unet_send(p.ep, &d, 1), -EMSGSIZE);
	d = seg_desc(&p, ch, 0, 100000, 0);
	assert_int_equal(unet_send(p.ep, &d, 1), -EMSGSIZE);
	d = inl_desc(ch, UNET_INLINE_MAX + 1, 0);
	assert_int_equal(unet_send(p.ep, &d, 1), -EMSGSIZE);
	d = inl_desc(ch, UINT32_MAX, 0);
	assert_int_equal(unet_send(p.ep, &d, 1), -EMSGSIZE);
	/* Flags the application may not set. */
	d = seg_desc(&p, ch, 0, 16, 0);
	d.flags = UNET_DF_CHAN_DOWN;
	assert_int_equal(unet_send(p.ep, &d, 1), -EINVAL);
	d.flags = 0x8000;
	assert_int_equal(unet_send(p.ep, &d, 1), -EINVAL);
	d.flags = UNET_DF_INLINE | 0x4000;
	assert_int_equal(unet_send(p.ep, &d, 1), -EINVAL);
	/* Other channels: never opened, beyond max_chans. */
	d = inl_desc(ch + 1, 8, 0);
	assert_int_equal(unet_send(p.ep, &d, 1), -ENOTCONN);
	d = inl_desc(4000, 8, 0);
	assert_int_equal(unet_send(p.ep, &d, 1), -ENOTCONN);

	/* Nothing went out. Then a batch with a bad third descriptor: the
	 * good prefix is sent, the rest is not. */
	unet_get_stats(p.ep, &st);
	assert_int_equal(st.tx_msgs + st.tx_dropped, 0);
	struct unet_desc b[4] = {inl_desc(ch, 8, 0), seg_desc(&p, ch, 0, 256, 1),
				 seg_desc(&p, ch, S, 8, 2), inl_desc(ch, 8, 3)};
	assert_int_equal(unet_send(p.ep, b, 4), 2);
	assert_int_equal(unet_send(p.ep, &b[2], 2), -ERANGE);
	/* Edges that are fine: zero bytes at the very end, a full buffer. */
	struct unet_desc ok[2] = {seg_desc(&p, ch, S, 0, 9), seg_desc(&p, ch, S - 256, 256, 2)};
	assert_int_equal(unet_send(p.ep, ok, 2), 2);
	ctl_do(c, CMD_RECV, 1);
	assert_int_equal(c->nrec, 4);
	assert_int_equal(c->rec[0].seq, 0);
	assert_int_equal(c->rec[1].seq, 1);
	assert_int_equal(c->rec[2].len, 0);
	assert_int_equal(c->rec[3].seq, 2);
	assert_true(c->rec[0].intact && c->rec[1].intact && c->rec[3].intact);

	/* After a close: the channel is gone for sending. */
	assert_int_equal(unet_chan_close(p.ep, (unsigned)ch), 0);
	d = inl_desc(ch, 8, 0);
	assert_int_equal(unet_send(p.ep, &d, 1), -ENOTCONN);
	d = seg_desc(&p, ch, 0, 8, 0);
	assert_int_equal(unet_send(p.ep, &d, 1), -ENOTCONN);
	finish(c, &p, pid);
}

/* ---- queues full ---------------------------------------------------------- */

static void test_full_send_queue(void **state)
{
	struct ctl *c = ctl_new("sq");
	struct unet_ep_attr mine = {.sq_depth = 4};
	struct unet_comp comp[16];
	struct peer p;
	int ch;

	pid_t pid = pair_up(c, &p, &mine, &ch);
	/* Four go out and fill the completion queue; four wait in the send
	 * queue; then it is full. */
	for (uint64_t s = 0; s < 8; s++) {
		struct unet_desc d = seg_desc(&p, ch, s * 1024, 1000, s);
		assert_int_equal(unet_send(p.ep, &d, 1), 1);
	}
	struct unet_desc d = seg_desc(&p, ch, 9000, 1000, 8);
	assert_int_equal(unet_send(p.ep, &d, 1), -EAGAIN);
	d = inl_desc(ch, 8, 8);
	assert_int_equal(unet_send(p.ep, &d, 1), -EAGAIN); /* behind them, in order */
	ctl_do(c, CMD_RECV, 1);
	expect_rec(c, 0, 4);
	/* Reaping lets the rest go, in order, each completion naming its buffer. */
	assert_int_equal(unet_poll_comp(p.ep, comp, 16), 4);
	assert_int_equal(unet_poll_comp(p.ep, comp + 4, 16), 4);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(comp[i].status, 0);
		assert_int_equal(comp[i].off, (uint64_t)i * 1024);
		assert_int_equal(comp[i].len, 1000);
	}
	assert_int_equal(unet_send(p.ep, &d, 1), 1);
	ctl_do(c, CMD_RECV, 1);
	expect_rec(c, 4, 5);
	finish(c, &p, pid);
}

static void test_full_receive_queue(void **state)
{
	struct ctl *c = ctl_new("rq");
	struct unet_comp comp[8];
	struct unet_stats st;
	struct peer p;
	int ch;

	c->attr.rq_depth = 4;
	pid_t pid = pair_up(c, &p, NULL, &ch);
	/* Nobody receives: four fit, the rest are dropped. */
	for (uint64_t s = 0; s < 10; s++) {
		struct unet_desc d = inl_desc(ch, 16 + (uint32_t)s, s);
		assert_int_equal(unet_send(p.ep, &d, 1), 1);
	}
	for (uint64_t s = 10; s < 13; s++) {
		struct unet_desc d = seg_desc(&p, ch, s * 2048, 1500, s);
		assert_int_equal(unet_send(p.ep, &d, 1), 1);
	}
	assert_int_equal(unet_poll_comp(p.ep, comp, 8), 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(comp[i].status, -ENOSPC);
	unet_get_stats(p.ep, &st);
	assert_int_equal(st.tx_msgs, 4);
	assert_int_equal(st.tx_dropped, 9);
	ctl_do(c, CMD_STATS, 0);
	assert_int_equal(c->st.rx_drop_full, 9);
	assert_int_equal(c->st.rx_drop_nobuf, 0);
	/* The first four, untouched by the nine that came after. */
	ctl_do(c, CMD_RECV, 1);
	expect_rec(c, 0, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(c->rec[i].len, 16 + i);
	/* Room again. */
	struct unet_desc d = seg_desc(&p, ch, 0, 2048, 13);
	assert_int_equal(unet_send(p.ep, &d, 1), 1);
	assert_int_equal(unet_poll_comp(p.ep, comp, 8), 1);
	assert_int_equal(comp[0].status, 0);
	ctl_do(c, CMD_RECV, 1);
	expect_rec(c, 13, 1);
	finish(c, &p, pid);
}

static void test_empty_free_queue(void **state)
{
	struct ctl *c = ctl_new("fq");
	struct unet_comp comp[8];
	struct unet_stats st;
	struct peer p;
	int ch;

	c->attr.rx_bufs = 4;
	c->attr.rq_depth = 16;
	pid_t pid = pair_up(c, &p, NULL, &ch);
	for (uint64_t s = 0; s < 6; s++) {
		struct unet_desc d = seg_desc(&p, ch, s * 2048, 2000, s);
		assert_int_equal(unet_send(p.ep, &d, 1), 1);
	}
	assert_int_equal(unet_poll_comp(p.ep, comp, 8), 6);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(comp[i].status, i < 4 ? 0 : -ENOBUFS);
		assert_int_equal(comp[i].off, (uint64_t)i * 2048);
	}
	/* Inline needs no buffer: it still gets through. */
	struct unet_desc d = inl_desc(ch, 8, 6);
	assert_int_equal(unet_send(p.ep, &d, 1), 1);
	/* The child takes all and holds the four buffers. */
	ctl_do(c, CMD_RECV, 0);
	assert_int_equal(c->nrec, 5);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(c->rec[i].seq, i < 4 ? (uint64_t)i : 6);
		assert_true(c->rec[i].intact);
	}
	d = seg_desc(&p, ch, 0, 100, 7);
	assert_int_equal(unet_send(p.ep, &d, 1), 1);
	assert_int_equal(unet_poll_comp(p.ep, comp, 8), 1);
	assert_int_equal(comp[0].status, -ENOBUFS);
	unet_get_stats(p.ep, &st);
	assert_int_equal(st.tx_dropped, 3);
	ctl_do(c, CMD_STATS, 0);
	assert_int_equal(c->st.rx_drop_nobuf, 3);
	assert_int_equal(c->st.rx_drop_full, 0);
	/* Buffers back: deliveries resume. */
	assert_int_equal(ctl_do(c, CMD_RELEASE, 0), 0);
	assert_int_equal(unet_send(p.ep, &d, 1), 1);
	assert_int_equal(unet_poll_comp(p.ep, comp, 8), 1);
	assert_int_equal(comp[0].status, 0);
	ctl_do(c, CMD_RECV, 1);
	expect_rec(c, 7, 1);
	finish(c, &p, pid);
}

/* ---- releases ------------------------------------------------------------ */

static void test_release_errors(void **state)
{
	struct ctl *c = ctl_new("rl");
	struct unet_ep_attr mine = {.rx_bufs = 8, .rx_buf_size = 1024};
	struct unet_desc in[8];
	struct peer p;
	int ch;

	pid_t pid = pair_up(c, &p, &mine, &ch);
	assert_int_equal(ctl_do(c, CMD_SEND, 3), 0);
	int n = 0;
	while (n < 3) {
		int k = peer_recv(&p, in + n, 8, TMO);
		assert_true(k > 0);
		n += k;
	}
	assert_int_equal(n, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(in[i].flags, 0);
		assert_int_equal(in[i].len, 1000);
		uint64_t seq;
		memcpy(&seq, unet_ptr(p.ep, in[i].off), 8);
		assert_int_equal(seq, (uint64_t)i);
	}
	/* Not a buffer: inside one, between them, in the application part,
	 * past the last buffer, in another channel's (unused) area, far off. */
	uint64_t o = in[0].off;
	const uint64_t bogus[] = {o + 1, o + 64, o + 1023, o - 1, 0, 4096, p.seg_size - 1024,
				  o + 8 * 1024 * 64, UINT64_MAX, UINT64_MAX - 1023};
	for (unsigned i = 0; i < sizeof(bogus) / sizeof(bogus[0]); i++) {
		struct unet_desc d = in[0];
		d.off = bogus[i];
		int rc = unet_release(p.ep, &d, 1);
		if (rc != -ERANGE && rc != -ENOTCONN && rc != -EALREADY)
			fail_msg("release of %llu: %d", (unsigned long long)bogus[i], rc);
		if (bogus[i] < p.seg_size || bogus[i] % 1024 != o % 1024)
			assert_int_equal(rc, -ERANGE);
	}
	/* Just before the first buffer (page aligned) lie the rings. */
	struct unet_desc d = in[0];
	assert_int_equal(o % 4096, 0);
	d.off = o - 1024;
	assert_int_equal(unet_release(p.ep, &d, 1), -ERANGE);

	/* A buffer on the free queue (never handed to us) is not ours to give. */
	int held_idx = 0;
	for (int i = 0; i < 3; i++)
		if (in[i].off > in[held_idx].off)
			held_idx = i;
	d = in[held_idx];
	d.off += 1024;
	assert_int_equal(unet_release(p.ep, &d, 1), -EALREADY);
	/* Release once: fine; twice: -EALREADY, and the buffer is not queued
	 * twice (the child's later sends land in distinct buffers). */
	assert_int_equal(unet_release(p.ep, &in[0], 1), 0);
	assert_int_equal(unet_release(p.ep, &in[0], 1), -EALREADY);
	assert_int_equal(unet_release(p.ep, &in[1], 2), 0);
	assert_int_equal(unet_release(p.ep, &in[2], 1), -EALREADY);
	assert_int_equal(ctl_do(c, CMD_SEND, 8), 0);
	for (n = 0; n < 8;) {
		int k = peer_recv(&p, in + n, 8 - (unsigned)n, TMO);
		assert_true(k > 0);
		n += k;
	}
	for (int i = 0; i < 8; i++) {
		uint64_t seq;
		memcpy(&seq, unet_ptr(p.ep, in[i].off), 8);
		assert_int_equal(seq, 3 + (uint64_t)i);
		assert_int_equal(pattern_check((uint8_t *)unet_ptr(p.ep, in[i].off) + 8, 992, seq),
				 0);
		for (int j = 0; j < i; j++)
			assert_int_not_equal(in[i].off, in[j].off);
	}
	/* Buffers of a closed channel went with it. */
	assert_int_equal(unet_chan_close(p.ep, (unsigned)ch), 0);
	assert_int_equal(unet_release(p.ep, &in[0], 1), -ENOTCONN);
	finish(c, &p, pid);
}

/* ---- sends queued on a channel that is then closed ----------------------- */

static void test_queued_sends_on_closed_channel(void **state)
{
	struct ctl *c1 = ctl_new("q1"), *c2 = ctl_new("q2");
	struct unet_ep_attr mine = {.sq_depth = 4};
	struct unet_comp comp[16];
	struct peer p;
	int ch;

	strcpy(c2->a, c1->a);
	c1->attr.rx_buf_size = 4096;
	c2->attr.rx_buf_size = 64;
	pid_t pid1 = pair_up(c1, &p, &mine, &ch);
	assert_int_equal(ch, 0);
	for (uint64_t s = 0; s < 8; s++) {
		struct unet_desc d = seg_desc(&p, ch, s * 4096, 4000, s);
		assert_int_equal(unet_send(p.ep, &d, 1), 1);
	}
	/* Four delivered, four stuck behind the full completion queue. */
	assert_int_equal(unet_chan_close(p.ep, 0), 0);
	/* Slot 0 goes to a peer with 64-byte buffers. */
	pid_t pid2 = proc_fork(child_ctl, c2);
	int ch2 = unet_chan_open(p.ep, c2->b, TMO);
	assert_int_equal(ch2, 0);
	assert_int_equal(unet_chan_mtu(p.ep, 0), 64);
	/* The four stuck sends complete as undeliverable; none reaches the
	 * new peer (wrong peer, and 4000 bytes into 64-byte buffers). */
	assert_int_equal(unet_poll_comp(p.ep, comp, 16), 4);
	assert_int_equal(unet_poll_comp(p.ep, comp + 4, 16), 4);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(comp[i].off, (uint64_t)i * 4096);
		assert_int_equal(comp[i].status, i < 4 ? 0 : -ENOTCONN);
	}
	ctl_do(c2, CMD_RECV, 1);
	assert_int_equal(c2->nrec, 0);
	ctl_do(c2, CMD_STATS, 0);
	assert_int_equal(c2->st.rx_drop_bad + c2->st.rx_drop_full + c2->st.rx_drop_nobuf, 0);
	ctl_do(c1, CMD_RECV, 1);
	expect_rec(c1, 0, 4);
	/* The new channel works. */
	struct unet_desc d = seg_desc(&p, ch2, 0, 64, 100);
	assert_int_equal(unet_send(p.ep, &d, 1), 1);
	ctl_do(c2, CMD_RECV, 1);
	expect_rec(c2, 100, 1);
	ctl_do(c1, CMD_EXIT, 0);
	assert_int_equal(proc_wait(pid1, 20000), 0);
	finish(c2, &p, pid2);
	proc_unshare(c1, sizeof(*c1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_bad_descriptors, proc_teardown),
		cmocka_unit_test_teardown(test_full_send_queue, proc_teardown),
		cmocka_unit_test_teardown(test_full_receive_queue, proc_teardown),
		cmocka_unit_test_teardown(test_empty_free_queue, proc_teardown),
		cmocka_unit_test_teardown(test_release_errors, proc_teardown),
		cmocka_unit_test_teardown(test_queued_sends_on_closed_channel, proc_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
