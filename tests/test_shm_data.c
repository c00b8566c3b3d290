/*
 * test_shm_data.c - moving messages over the shm NIC, every byte checked.
 *
 * Edge lengths and offsets of inline and segment messages; send completions
 * (status, offset, length, channel, in order; none for inline); several
 * senders into one receiver, each on its own channel; and a two-process
 * stress of millions of mixed inline and segment messages.
 *
 * The shm NIC drops what the receiver has no room for (U-Net's raw queues),
 * so the traffic tests run a credit window: the receiver hands back a
 * cumulative count, inline, every CREDIT_EVERY messages, and a sender never
 * has more than WINDOW messages unaccounted for, fewer than the receiver's
 * buffers. A drop is then a bug and every counter must add up exactly.
 * Each message's length and bytes derive from (sender, sequence number).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "helpers/proc.h"
#include "helpers/shm_peer.h"

#define TMO 10000
#define RX_BUFS 512
#define WINDOW 384      /* < RX_BUFS: a sender never overruns the receiver */
#define CREDIT_EVERY 64
#define SLOT 2048       /* send buffer slot in the sender's segment */
#define NSLOTS 256

#if defined(__SANITIZE_ADDRESS__)
#define STRESS_N (1u << 18) /* ASan at -O0: about 10x slower per message */
#else
#define STRESS_N (2u << 20)
#endif

struct flow {
	char rx[UNET_NAME_MAX];    /* receiver */
	char tx[4][UNET_NAME_MAX]; /* senders */
	uint32_t nsenders;
	uint32_t n; /* messages per sender */
	uint32_t fail_seq, fail_why;
};

static uint64_t key(uint32_t sender, uint64_t seq)
{
	return ((uint64_t)sender << 40) ^ seq;
}

/* Length and kind of message seq: roughly a third inline, segment lengths
 * spread over 0..SLOT with the edges hit often. */
static void msg_shape(uint32_t sender, uint64_t seq, uint32_t *len, int *inl)
{
	uint64_t x = (key(sender, seq) + 1) * 0x9e3779b97f4a7c15ull;

	x ^= x >> 29;
	*inl = x % 3 == 0;
	switch ((x >> 8) % 8) {
	case 0:
		*len = 0;
		break;
	case 1:
		*len = *inl ? UNET_INLINE_MAX : SLOT;
		break;
	default:
		*len = (uint32_t)((x >> 16) % ((*inl ? UNET_INLINE_MAX : SLOT) + 1));
	}
}

/* ---- sender ------------------------------------------------------------ */

struct sender {
	struct peer p;
	int ch;
	uint32_t id;
	uint64_t sent, credited, completed;
	uint64_t seg_sent; /* segment messages sent: completions expected */
	uint64_t comp_seq[NSLOTS]; /* seq of the segment send in each slot */
};

/* Take completions; each must match the oldest segment send. */
static int reap(struct sender *s)
{
	struct unet_comp c[32];
	int n = unet_poll_comp(s->p.ep, c, 32);

	for (int i = 0; i < n; i++, s->completed++) {
		uint64_t slot = s->completed % NSLOTS;
		uint32_t len;
		int inl;
		msg_shape(s->id, s->comp_seq[slot], &len, &inl);
		if (c[i].status != 0 || c[i].off != slot * SLOT || c[i].len != len ||
		    c[i].chan != s->ch || inl) {
			fprintf(stderr, "completion %llu: status %d off %llu len %u chan %u\n",
				(unsigned long long)s->completed, c[i].status,
				(unsigned long long)c[i].off, c[i].len, c[i].chan);
			return -1;
		}
	}
	return n;
}

/* Take credits (and only credits) from the receiver. */
static int credits(struct sender *s)
{
	struct unet_desc d[8];
	int n = unet_recv(s->p.ep, d, 8);

	for (int i = 0; i < n; i++) {
		uint64_t v;
		if (!(d[i].flags & UNET_DF_INLINE) || d[i].len != sizeof(v) || d[i].chan != s->ch)
			return -1;
		memcpy(&v, d[i].data, sizeof(v));
		if (v < s->credited || v > s->sent)
			return -1;
		s->credited = v;
	}
	return n;
}

static int send_one(struct sender *s)
{
	struct unet_desc d = {.chan = (uint16_t)s->ch};
	uint32_t len;
	int inl;

	msg_shape(s->id, s->sent, &len, &inl);
	d.len = len;
	if (inl) {
		d.flags = UNET_DF_INLINE;
		pattern_fill(d.data, len, key(s->id, s->sent));
	} else {
		/* Completions come back in order, so slot reuse is safe once
		 * fewer than NSLOTS segment sends are outstanding. */
		while (s->seg_sent - s->completed >= NSLOTS)
			if (reap(s) < 0)
				return 20;
		uint64_t slot = s->seg_sent % NSLOTS;
		d.off = slot * SLOT;
		pattern_fill(s->p.seg + d.off, len, key(s->id, s->sent));
		s->comp_seq[slot] = s->sent;
	}
	int rc = peer_send(&s->p, &d, TMO);
	if (rc != 0) {
		fprintf(stderr, "sender %u: send %llu: %s\n", s->id, (unsigned long long)s->sent,
			unet_strerror(rc));
		return 21;
	}
	s->seg_sent += !inl;
	s->sent++;
	return 0;
}

static int run_sender(struct flow *f, uint32_t id)
{
	struct sender *s = calloc(1, sizeof(*s));
	uint64_t t0 = proc_now_ms();
	struct unet_stats st;

	if (!s)
		return 9;
	s->id = id;
	if (peer_open(&s->p, f->tx[id], NULL))
		return 10;
	s->ch = unet_chan_open(s->p.ep, f->rx, TMO);
	if (s->ch < 0)
		return 11;
	while (s->credited < f->n) {
		if (proc_now_ms() - t0 > 60000)
			return 12;
		if (credits(s) < 0 || reap(s) < 0)
			return 13;
		if (s->sent < f->n && s->sent - s->credited < WINDOW) {
			int rc = send_one(s);
			if (rc)
				return rc;
			continue;
		}
		if (unet_wait(s->p.ep, 100) < 0)
			return 14;
	}
	while (s->completed < s->seg_sent)
		if (reap(s) < 0)
			return 15;
	unet_get_stats(s->p.ep, &st);
	if (st.tx_msgs != f->n || st.tx_dropped != 0 || st.tx_inline != f->n - s->seg_sent)
		return 16;
	unet_chan_close(s->p.ep, (unsigned)s->ch);
	peer_close(&s->p);
	free(s);
	return 0;
}

/* ---- receiver ------------------------------------------------------------- */

struct rx_chan {
	uint64_t got;
	uint32_t sender;
	int ch;
};

/* Receive f->n messages from each of f->nsenders senders. Returns 0, or the
 * failing sender's id * 100 + reason (and fills f->fail_*). */
static int run_receiver(struct flow *f, struct peer *p, struct rx_chan *rc, uint64_t *seg_rx)
{
	struct unet_desc d[32];
	uint64_t total = 0, want = (uint64_t)f->n * f->nsenders, t0 = proc_now_ms();

	while (total < want) {
		if (proc_now_ms() - t0 > 60000)
			return 1;
		int n = peer_recv(p, d, 32, TMO);
		if (n <= 0)
			return 2;
		for (int i = 0; i < n; i++) {
			struct rx_chan *r = NULL;
			for (uint32_t k = 0; k < f->nsenders; k++)
				if (rc[k].ch == d[i].chan)
					r = &rc[k];
			if (r && (d[i].flags & UNET_DF_CHAN_DOWN) && r->got == f->n)
				continue; /* a sender that is done closes its channel */
			if (!r || (d[i].flags & UNET_DF_CHAN_DOWN)) {
				f->fail_why = 3;
				return 3;
			}
			uint32_t len;
			int inl;
			msg_shape(r->sender, r->got, &len, &inl);
			int bad = d[i].len != len ? 4
				  : !!(d[i].flags & UNET_DF_INLINE) != inl ? 5
				  : pattern_check(peer_payload(p, &d[i]), len, key(r->sender, r->got))
				      ? 6
				      : 0;
			if (bad) {
				f->fail_seq = (uint32_t)r->got;
				f->fail_why = (uint32_t)bad;
				return (int)(r->sender * 100 + (uint32_t)bad);
			}
			if (!inl) {
				(*seg_rx)++;
				if (unet_release(p->ep, &d[i], 1) != 0)
					return 7;
			}
			r->got++;
			total++;
			if (r->got % CREDIT_EVERY == 0 || r->got == f->n) {
				uint64_t v = r->got;
				if (unet_send_inline(p->ep, (unsigned)r->ch, &v, sizeof(v)) != 0)
					return 8;
			}
		}
	}
	return 0;
}

/* ---- tests ------------------------------------------------------------------ */

static struct flow *flow_new(uint32_t nsenders, uint32_t n)
{
	struct flow *f = proc_shared(sizeof(*f));

	assert_non_null(f);
	proc_name(f->rx, sizeof(f->rx), "drx");
	for (uint32_t i = 0; i < nsenders; i++)
		proc_name(f->tx[i], sizeof(f->tx[i]), "dtx");
	f->nsenders = nsenders;
	f->n = n;
	return f;
}

static int one_sender(void *arg)
{
	return run_sender(arg, 0);
}

static int sender_1(void *arg)
{
	return run_sender(arg, 1);
}

static int sender_2(void *arg)
{
	return run_sender(arg, 2);
}

static int sender_3(void *arg)
{
	return run_sender(arg, 3);
}

static void run_flow(uint32_t nsenders, uint32_t n)
{
	int (*fns[4])(void *) = {one_sender, sender_1, sender_2, sender_3};
	struct flow *f = flow_new(nsenders, n);
	struct rx_chan rc[4];
	pid_t pid[4];
	struct peer p;
	struct unet_stats st;
	uint64_t seg_rx = 0, t0 = proc_now_ms();

	struct unet_ep_attr a = {.rx_bufs = RX_BUFS, .rq_depth = 2 * RX_BUFS};

	for (uint32_t i = 0; i < nsenders; i++)
		pid[i] = proc_fork(fns[i], f);
	assert_int_equal(peer_open(&p, f->rx, &a), 0);
	for (uint32_t i = 0; i < nsenders; i++) {
		rc[i].ch = unet_chan_open(p.ep, f->tx[i], TMO);
		assert_true(rc[i].ch >= 0);
		rc[i].sender = i;
		rc[i].got = 0;
	}
	int r = run_receiver(f, &p, rc, &seg_rx);
	if (r)
		fail_msg("receiver: %d (seq %u why %u)", r, f->fail_seq, f->fail_why);
	uint64_t ms = proc_now_ms() - t0;
	for (uint32_t i = 0; i < nsenders; i++)
		assert_int_equal(proc_wait(pid[i], 60000), 0);
	unet_get_stats(p.ep, &st);
	assert_int_equal(st.rx_msgs, (uint64_t)n * nsenders);
	assert_int_equal(st.rx_inline, (uint64_t)n * nsenders - seg_rx);
	assert_int_equal(st.rx_drop_nobuf + st.rx_drop_full + st.rx_drop_bad + st.rx_drop_nochan +
				 st.rx_drop_toobig,
			 0);
	print_message("%u sender(s) x %u messages: %llu ms, %.2f M msg/s\n", nsenders, n,
		      (unsigned long long)ms, (double)n * nsenders / 1000.0 / (double)(ms + 1));
	peer_close(&p);
	proc_unshare(f, sizeof(*f));
}

static void test_two_process_stress(void **state)
{
	run_flow(1, STRESS_N);
}

static void test_three_senders_one_receiver(void **state)
{
	run_flow(3, 100000);
}

/* ---- edges and completions, one exchange at a time ------------------------ */

struct edge_board {
	char a[UNET_NAME_MAX], b[UNET_NAME_MAX];
	uint32_t done;
};

/* Echo every message back on the channel, with the same kind and bytes. */
static int child_echo(void *arg)
{
	struct edge_board *w = arg;
	struct peer p;
	struct unet_desc d[16];

	if (peer_open(&p, w->b, NULL))
		return 10;
	int ch = unet_chan_open(p.ep, w->a, TMO);
	if (ch < 0)
		return 11;
	while (!proc_get_u32(&w->done)) {
		int n = unet_recv(p.ep, d, 16);
		if (n == 0) {
			unet_wait(p.ep, 50);
			continue;
		}
		for (int i = 0; i < n; i++) {
			struct unet_desc out = d[i];
			if (d[i].flags & UNET_DF_CHAN_DOWN)
				return 0;
			out.chan = (uint16_t)ch;
			if (!(d[i].flags & UNET_DF_INLINE)) {
				memcpy(p.seg, unet_ptr(p.ep, d[i].off), d[i].len);
				out.off = 0;
				if (unet_release(p.ep, &d[i], 1) != 0)
					return 12;
			}
			if (peer_send(&p, &out, TMO) != 0)
				return 13;
			struct unet_comp c;
			while (!(out.flags & UNET_DF_INLINE) && unet_poll_comp(p.ep, &c, 1) == 0)
				;
		}
	}
	peer_close(&p);
	return 0;
}

static void test_edges_and_completions(void **state)
{
	struct edge_board *w = proc_shared(sizeof(*w));
	struct peer p;
	struct unet_desc d, in;
	struct unet_comp c[8];
	const uint32_t inl_lens[] = {0, 1, 7, 8, 47, 48};
	const uint32_t seg_lens[] = {0, 1, 63, 64, 65, 2047, 2048};

	assert_non_null(w);
	proc_name(w->a, sizeof(w->a), "ea");
	proc_name(w->b, sizeof(w->b), "eb");
	pid_t pid = proc_fork(child_echo, w);
	assert_int_equal(peer_open(&p, w->a, NULL), 0);
	int ch = unet_chan_open(p.ep, w->b, TMO);
	assert_true(ch >= 0);
	uint64_t seq = 1000;

	/* Inline: no completion, bytes back intact. */
	for (unsigned i = 0; i < sizeof(inl_lens) / sizeof(inl_lens[0]); i++, seq++) {
		memset(&d, 0, sizeof(d));
		d.chan = (uint16_t)ch;
		d.flags = UNET_DF_INLINE;
		d.len = inl_lens[i];
		d.off = 0xdeadbeef; /* unused for inline: must not matter */
		pattern_fill(d.data, d.len, seq);
		assert_int_equal(unet_send(p.ep, &d, 1), 1);
		assert_int_equal(unet_poll_comp(p.ep, c, 8), 0);
		assert_int_equal(peer_recv(&p, &in, 1, TMO), 1);
		assert_int_equal(in.flags, UNET_DF_INLINE);
		assert_int_equal(in.chan, ch);
		assert_int_equal(in.len, d.len);
		assert_int_equal(pattern_check(in.data, in.len, seq), 0);
		assert_int_equal(unet_release(p.ep, &in, 1), 0);
	}
	/* Segment: from offsets at both ends of the segment; one completion
	 * each, naming the buffer; receive is zero copy into a receive area. */
	for (unsigned i = 0; i < sizeof(seg_lens) / sizeof(seg_lens[0]); i++) {
		for (int end = 0; end < 2; end++, seq++) {
			memset(&d, 0, sizeof(d));
			d.chan = (uint16_t)ch;
			d.len = seg_lens[i];
			d.off = end ? p.seg_size - d.len : 0;
			pattern_fill(p.seg + d.off, d.len, seq);
			assert_int_equal(unet_send(p.ep, &d, 1), 1);
			assert_int_equal(unet_poll_comp(p.ep, c, 8), 1);
			assert_int_equal(c[0].status, 0);
			assert_int_equal(c[0].off, d.off);
			assert_int_equal(c[0].len, d.len);
			assert_int_equal(c[0].chan, ch);
			assert_int_equal(peer_recv(&p, &in, 1, TMO), 1);
			assert_int_equal(in.flags, 0);
			assert_int_equal(in.len, d.len);
			assert_true(in.off >= p.seg_size); /* a receive area, not ours */
			assert_int_equal(pattern_check(unet_ptr(p.ep, in.off), in.len, seq), 0);
			assert_int_equal(unet_release(p.ep, &in, 1), 0);
		}
	}
	/* A batch: one call, several descriptors, completions in order. */
	struct unet_desc b[6];
	for (int i = 0; i < 6; i++, seq++) {
		memset(&b[i], 0, sizeof(b[i]));
		b[i].chan = (uint16_t)ch;
		b[i].len = 100 + (uint32_t)i;
		b[i].off = 4096 * (uint64_t)(i + 1);
		if (i % 3 == 2) {
			b[i].flags = UNET_DF_INLINE;
			b[i].len = 20;
			pattern_fill(b[i].data, 20, seq);
		} else {
			pattern_fill(p.seg + b[i].off, b[i].len, seq);
		}
	}
	assert_int_equal(unet_send(p.ep, b, 6), 6);
	assert_int_equal(unet_poll_comp(p.ep, c, 8), 4);
	for (int i = 0, k = 0; i < 6; i++) {
		if (b[i].flags)
			continue;
		assert_int_equal(c[k].off, b[i].off);
		assert_int_equal(c[k].len, b[i].len);
		assert_int_equal(c[k].status, 0);
		k++;
	}
	for (int i = 0; i < 6; i++) {
		assert_int_equal(peer_recv(&p, &in, 1, TMO), 1);
		assert_int_equal(in.len, b[i].len);
		assert_int_equal(pattern_check(peer_payload(&p, &in), in.len, seq - 6 + (uint64_t)i),
				 0);
		assert_int_equal(unet_release(p.ep, &in, 1), 0);
	}
	struct unet_stats st;
	unet_get_stats(p.ep, &st);
	assert_int_equal(st.tx_msgs, 6 + 14 + 6);
	assert_int_equal(st.tx_inline, 6 + 2);
	assert_int_equal(st.rx_msgs, 6 + 14 + 6);
	assert_int_equal(st.rx_inline, 6 + 2);
	proc_set_u32(&w->done, 1);
	unet_chan_close(p.ep, (unsigned)ch);
	assert_int_equal(proc_wait(pid, 20000), 0);
	peer_close(&p);
	proc_unshare(w, sizeof(*w));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_edges_and_completions, proc_teardown),
		cmocka_unit_test_teardown(test_three_senders_one_receiver, proc_teardown),
		cmocka_unit_test_teardown(test_two_process_stress, proc_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
