/*
 * msg_proto.c - the per-channel protocol engine of the msg layer: staging,
 * transmission, retransmission, cumulative acks, the handshake,
 * reassembly and failure detection. (msg.c holds the public API around it.)
 *
 * Flow control is by credit: the receiver advertises in the handshake how
 * many fragments it can buffer per channel, the sender keeps at most that
 * many unacknowledged (the window), and an ack is sent only once the
 * fragments it covers have left the receive buffers. On shm, where nothing
 * is lost unless a receiver runs out of buffers, nothing is ever dropped.
 *
 * Loss recovery, cumulative acks only:
 *   shm (FIFO, lossless by credit): go-back-N, but only on proof of loss.
 *     A timeout there usually means a busy receiver, and resending would
 *     put more than the credit into its buffers (the originals still sit
 *     in its receive queue) and cause the very drops flow control
 *     prevents. So the timer sends a PING; the channel is FIFO, so when
 *     the PONG comes back everything sent before the PING has been
 *     processed, and an ack short of the PING's seq proves a loss.
 *   udp, xdp (loss, duplication, reordering): the receiver keeps fragments
 *     that arrive ahead of a hole (copied out of the receive buffer, so
 *     they cost no credit) and says which in a 32-bit selective-ack bitmap
 *     on its standalone acks. The sender resends a fragment the peer lacks
 *     while holding three later ones (once per loss episode), the oldest
 *     unacked one after three duplicate acks, on each partial ack, or on a
 *     timeout -- never a whole window. Measured with 5% loss, 5%
 *     duplication, 25% reordering (tests/test_msg_udp.c): 7x fewer
 *     retransmissions and 3x faster than plain go-back-N, which also
 *     collapsed on a busy xdp receiver (its window dumps overflowed it).
 *
 * Handshake (both sides send the same SYN: epoch, echo of the peer's epoch
 * or 0, credit, largest fragment accepted; NEED asks for an answer):
 *   a side learns the peer's epoch from a SYN whose echo is 0 or its own
 *   epoch (never from a SYN addressed to an older incarnation of itself),
 *   and is established once the peer has echoed its epoch, or once data
 *   arrives from the learned epoch (only an established peer sends data).
 * A SYN from a different epoch on an established channel means the peer
 * restarted: the channel fails with -ECONNRESET and must be re-attached.
 *
 * Liveness: a channel fails with -ETIMEDOUT when data has been outstanding
 * with no ack progress for dead_ms, or when replies are awaited and nothing
 * at all has been heard for dead_ms (PINGs keep a quiet, healthy peer
 * heard). On shm a dead peer shows at once as a U-Net channel-down event.
 */
#include <errno.h>
#include <string.h>

#include "msg_priv.h"

/* ---- staging ------------------------------------------------------------ */

/* Reclaim slots that are acked and no longer referenced by the NIC. */
static uint32_t stage_room(struct msg_chan *mc)
{
	while (mc->snd_tail != mc->snd_una && mc->sinfl[mc->snd_tail & mc->mask] == 0)
		mc->snd_tail++;
	return mc->nslots - (mc->snd_end - mc->snd_tail);
}

/* Copy `n` bytes of the concatenation (a, b) starting at *pos. */
static void gather(uint8_t *dst, const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t pos,
		   uint32_t n)
{
	if (pos < alen) {
		uint32_t k = alen - pos < n ? alen - pos : n;
		memcpy(dst, a + pos, k);
		dst += k;
		n -= k;
		pos += k;
	}
	if (n)
		memcpy(dst, b + (pos - alen), n);
}

int msg_stage(struct unet_msg_ep *mep, struct msg_chan *mc, uint8_t type, uint8_t flags,
	      uint32_t tag, const void *a, uint32_t alen, const void *b, uint32_t blen)
{
	uint32_t len = alen + blen, ext = tag ? MSG_TAG : 0;
	uint32_t pay = mc->wire_max - MSG_HDR, first = pay - ext, nfrag, pos = 0;

	if (alen > UNET_MSG_MAX || blen > UNET_MSG_MAX || len > UNET_MSG_MAX)
		return -EMSGSIZE;
	nfrag = len <= first ? 1 : 1 + (len - first + pay - 1) / pay;
	if (nfrag > mc->nslots)
		return -EMSGSIZE; /* could never fit: stage_size is too small */
	if (nfrag > stage_room(mc)) {
		msg_reap(mep);
		if (nfrag > stage_room(mc))
			return -EAGAIN;
	}
	if (mc->snd_una == mc->snd_end)
		mc->progress_at = mep->now; /* outstanding data starts now */
	for (uint32_t k = 0; k < nfrag; k++) {
		uint32_t seq = mc->snd_end + k, s = seq & mc->mask, off = MSG_HDR, n;
		uint8_t *p = mc->stage + (size_t)s * mc->slot_size;
		uint8_t fl = (k == 0 ? MSG_F_FIRST | flags : 0) | (k == nfrag - 1 ? MSG_F_LAST : 0);

		msg_put_hdr(p, MSG_OP_DATA, fl, type, mc->my_epoch, seq, 0);
		if (k == 0 && ext) {
			msg_put32(p + off, tag);
			off += MSG_TAG;
		}
		n = len - pos < mc->wire_max - off ? len - pos : mc->wire_max - off;
		gather(p + off, a, alen, b, pos, n);
		pos += n;
		mc->slen[s] = off + n;
	}
	mc->snd_end += nfrag;
	mep->st.msgs_sent++;
	return 0;
}

/* ---- transmission ------------------------------------------------------- */

void msg_reap(struct unet_msg_ep *mep)
{
	int n;

	while ((n = unet_poll_comp(mep->ep, mep->comp, MSG_BATCH)) > 0) {
		for (int i = 0; i < n; i++) {
			uint64_t k = mep->comp[i].off / mep->attr.stage_size;
			int32_t owner;

			if (k >= mep->nchunks || mep->chunk_infl[k] == 0)
				continue; /* not a staging send of ours */
			mep->chunk_infl[k]--;
			owner = mep->chunk_owner[k];
			if (owner >= 0) {
				struct msg_chan *mc = &mep->chans[owner];
				uint64_t s =
				    (mep->comp[i].off - k * mep->attr.stage_size) / mc->slot_size;
				if (s < mc->nslots && mc->sinfl[s])
					mc->sinfl[s]--;
			} else if (owner == -2 && mep->chunk_infl[k] == 0) {
				mep->chunk_owner[k] = -1; /* drained: reusable */
			}
		}
		if (n < MSG_BATCH)
			break;
	}
}

static void arm_rto(struct unet_msg_ep *mep, struct msg_chan *mc)
{
	mc->rto_at = mc->snd_una != mc->snd_nxt ? mep->now + mc->rto_ns : 0;
}

/* Descriptor for the staged fragment `seq`, with the current ack. */
static void fill_desc(struct msg_chan *mc, uint32_t seq, struct unet_desc *d)
{
	uint32_t s = seq & mc->mask, len = mc->slen[s];
	uint8_t *p = mc->stage + (size_t)s * mc->slot_size;

	msg_put32(p + 12, mc->rcv_nxt);
	d->chan = (uint16_t)mc->id;
	d->len = len;
	if (len <= UNET_INLINE_MAX) {
		d->flags = UNET_DF_INLINE;
		d->off = 0;
		memcpy(d->data, p, len);
	} else {
		d->flags = 0;
		d->off = mc->stage_off + (uint64_t)s * mc->slot_size;
	}
}

/* Fast retransmit of the oldest unacked fragment alone (lossy NICs): the
 * peer keeps what arrived after the hole, so filling it is enough. */
static void resend_seq(struct unet_msg_ep *mep, struct msg_chan *mc, uint32_t seq)
{
	struct unet_desc *d = &mep->tx[0];

	if (!seq_lt(seq, mc->snd_nxt) || seq_lt(seq, mc->snd_una))
		return;
	fill_desc(mc, seq, d);
	if (unet_send(mep->ep, d, 1) != 1)
		return; /* the timer will do it */
	mep->st.frags_retx++;
	if (!(d->flags & UNET_DF_INLINE)) {
		mc->sinfl[seq & mc->mask]++;
		mep->chunk_infl[mc->chunk]++;
	}
	mc->ack_sent = mc->rcv_nxt;
	mc->rto_at = mep->now + mc->rto_ns;
}

static void resend_one(struct unet_msg_ep *mep, struct msg_chan *mc)
{
	resend_seq(mep, mc, mc->snd_una);
}

/* Resend snd_una and remember it, so selective acks do not resend it too. */
static void resend_mark(struct unet_msg_ep *mep, struct msg_chan *mc)
{
	resend_one(mep, mc);
	if (seq_lt(mc->sack_hi, mc->snd_una + 1))
		mc->sack_hi = mc->snd_una + 1;
}

/* Selective ack from a lossy peer: a fragment it lacks while it holds at
 * least three later ones is taken as lost (TCP's duplicate-ack threshold,
 * so that mere reordering rarely costs a resend) and resent once; holes
 * below sack_hi were already resent and wait for the timer. */
static void sack_input(struct unet_msg_ep *mep, struct msg_chan *mc, uint32_t ack, uint32_t bits)
{
	uint32_t above = 0;
	int top = 31;

	if (ack != mc->snd_una || !bits)
		return;
	if (seq_lt(mc->sack_hi, mc->snd_una))
		mc->sack_hi = mc->snd_una;
	/* Walk down from the highest held fragment, counting held ones. */
	while (top >= 0 && !(bits >> top & 1))
		top--;
	uint32_t hi = ack + 1 + (uint32_t)top; /* highest held */
	for (int i = top; i >= -1; i--) {
		uint32_t seq = ack + 1 + (uint32_t)i; /* i == -1: snd_una itself */
		if (i >= 0 && (bits >> i & 1)) {
			above++;
			continue;
		}
		if (above >= 3 && !seq_lt(seq, mc->sack_hi))
			resend_seq(mep, mc, seq);
	}
	if (seq_lt(mc->sack_hi, hi))
		mc->sack_hi = hi;
}

/* Send what the window allows, piggybacking the current ack. */
void msg_push(struct unet_msg_ep *mep, struct msg_chan *mc)
{
	bool retried = false;

	while (mc->state == MC_OPEN && mc->snd_nxt != mc->snd_end &&
	       mc->snd_nxt - mc->snd_una < mc->window) {
		uint32_t first = mc->snd_nxt, n = 0;
		int rc;

		while (mc->snd_nxt != mc->snd_end && mc->snd_nxt - mc->snd_una < mc->window &&
		       n < MSG_BATCH)
			fill_desc(mc, mc->snd_nxt++, &mep->tx[n++]);
		rc = unet_send(mep->ep, mep->tx, n);
		if (rc <= 0) {
			mc->snd_nxt = first;
			if (rc == -EAGAIN && !retried) {
				msg_reap(mep); /* the NIC may stall on a full completion queue */
				retried = true;
				continue;
			}
			if (rc != -EAGAIN)
				msg_fail(mep, mc, rc == -ENOTCONN ? -ECONNRESET : rc);
			return;
		}
		mc->snd_nxt = first + (uint32_t)rc;
		for (uint32_t i = 0; i < (uint32_t)rc; i++) {
			uint32_t seq = first + i;
			if (seq_lt(seq, mc->snd_max)) {
				mep->st.frags_retx++;
			} else {
				mep->st.frags_sent++;
				mc->snd_max = seq + 1;
			}
			if (!(mep->tx[i].flags & UNET_DF_INLINE)) {
				mc->sinfl[seq & mc->mask]++;
				mep->chunk_infl[mc->chunk]++;
			}
		}
		mc->ack_sent = mc->rcv_nxt;
		mc->ack_now = false;
		if (!mc->rto_at)
			arm_rto(mep, mc);
		if ((uint32_t)rc < n)
			return; /* send queue full */
	}
}

/* A control fragment (ACK, SYN, RST): inline, unsequenced, best effort. */
static int send_ctl(struct unet_msg_ep *mep, struct msg_chan *mc, const uint8_t *p, uint32_t len)
{
	int rc = unet_send_inline(mep->ep, mc->id, p, len);

	if (rc == -EAGAIN) {
		msg_reap(mep);
		rc = unet_send_inline(mep->ep, mc->id, p, len);
	}
	if (rc < 0 && rc != -EAGAIN && mc->state != MC_FAILED)
		msg_fail(mep, mc, rc == -ENOTCONN ? -ECONNRESET : rc);
	return rc;
}

/* Which of the 32 fragments after rcv_nxt+0 we hold (ooo_keep). */
static uint32_t sack_bits(const struct msg_chan *mc)
{
	uint32_t bits = 0;

	for (uint32_t i = 0; i < 32 && i + 1 < mc->nooo; i++) {
		uint32_t seq = mc->rcv_nxt + 1 + i, k = seq & (mc->nooo - 1);
		if (mc->ooo_has[k] && mc->ooo_f[k].seq == seq)
			bits |= 1u << i;
	}
	return bits;
}

static void send_ack(struct unet_msg_ep *mep, struct msg_chan *mc, uint8_t flags)
{
	uint8_t p[MSG_HDR + MSG_SACK];
	uint32_t seq = flags & MSG_F_PONG ? mc->pong_seq : mc->snd_nxt, len = MSG_HDR;

	msg_put_hdr(p, MSG_OP_ACK, flags, 0, mc->my_epoch, seq, mc->rcv_nxt);
	if (mc->nooo) {
		uint32_t bits = sack_bits(mc);
		if (bits) {
			msg_put32(p + MSG_HDR, bits);
			len += MSG_SACK;
		}
	}
	if (send_ctl(mep, mc, p, len) == 0) {
		mep->st.acks_sent++;
		mc->ack_sent = mc->rcv_nxt;
		mc->ack_now = false;
		if (flags & MSG_F_PONG)
			mc->pong_due = false;
	}
}

void msg_send_syn(struct unet_msg_ep *mep, struct msg_chan *mc)
{
	uint8_t p[MSG_SYN_LEN];

	msg_put_hdr(p, MSG_OP_SYN, mc->state == MC_OPEN ? 0 : MSG_F_NEED, 0, mc->my_epoch, 0, 0);
	msg_put32(p + MSG_HDR, mc->have_peer ? mc->peer_epoch : 0);
	msg_put32(p + MSG_HDR + 4, mep->credit);
	msg_put32(p + MSG_HDR + 8, mep->maxfrag);
	send_ctl(mep, mc, p, sizeof(p));
}

void msg_send_rst(struct unet_msg_ep *mep, struct msg_chan *mc)
{
	uint8_t p[MSG_HDR];

	msg_put_hdr(p, MSG_OP_RST, 0, 0, mc->my_epoch, 0, 0);
	unet_send_inline(mep->ep, mc->id, p, sizeof(p)); /* best effort, never fails us */
}

/* Acks are due when the peer asked, when enough fragments went unacked
 * that its window (our credit) is a quarter used, and otherwise after
 * ack_delay (msg_service) or before blocking (msg_ack_flush): delayed so
 * that a reply or the next request carries it, as in request/reply loops. */
void msg_ack_check(struct unet_msg_ep *mep, struct msg_chan *mc)
{
	uint32_t every = mep->credit / 4 ? mep->credit / 4 : 1;

	if (mc->state == MC_OPEN && mc->rcv_nxt - mc->ack_sent >= every)
		send_ack(mep, mc, 0);
}

/* ---- failure ------------------------------------------------------------ */

void msg_fail(struct unet_msg_ep *mep, struct msg_chan *mc, int code)
{
	if (mc->state == MC_FREE || mc->state == MC_FAILED)
		return;
	mc->state = MC_FAILED;
	mc->fail_code = code;
	/* Drop everything unsent or unacked; slots still referenced by the NIC
	 * are reclaimed as their completions come in. */
	mc->snd_una = mc->snd_nxt = mc->snd_end;
	mc->rto_at = 0;
	mc->inmsg = false;
	mc->rreq = NULL;
	for (uint32_t i = 0; i < mep->attr.max_reqs && mc->nwait; i++) {
		struct msg_req *r = &mep->reqs[i];
		if (r->state == RQ_WAIT && r->chan == mc->id)
			msg_req_complete(mep, r, code, 0);
	}
	mc->nwait = 0;
	if (mep->on_fail)
		mep->on_fail(mep, mc->id, code, mep->on_fail_arg);
}

/* ---- timers ------------------------------------------------------------- */

static uint64_t min_nz(uint64_t a, uint64_t b)
{
	return a == 0 ? b : b == 0 ? a : a < b ? a : b;
}

uint64_t msg_next_deadline(struct unet_msg_ep *mep, struct msg_chan *mc)
{
	uint64_t t = 0;

	if (mc->state == MC_SYN)
		t = mc->syn_at;
	if (mc->state != MC_OPEN && mc->state != MC_SYN)
		return 0;
	if (mc->state == MC_OPEN)
		t = min_nz(t, mc->rto_at);
	if (mc->state == MC_OPEN && mc->rcv_nxt != mc->ack_sent)
		t = min_nz(t, mc->ack_due);
	if (mc->snd_una != mc->snd_end)
		t = min_nz(t, mc->progress_at + mep->dead_ns);
	if (mc->nwait) {
		t = min_nz(t, mc->heard_at + mep->dead_ns);
		if (mc->state == MC_OPEN)
			t = min_nz(t, mc->ping_at > mc->heard_at + mep->ping_ns
					  ? mc->ping_at
					  : mc->heard_at + mep->ping_ns);
	}
	return t;
}

static void timers(struct unet_msg_ep *mep, struct msg_chan *mc)
{
	uint64_t now = mep->now;

	if ((mc->snd_una != mc->snd_end && now - mc->progress_at > mep->dead_ns) ||
	    (mc->nwait && now - mc->heard_at > mep->dead_ns)) {
		mep->st.timeouts++;
		msg_fail(mep, mc, -ETIMEDOUT);
		return;
	}
	if (mc->state == MC_SYN) {
		if (now >= mc->syn_at) {
			msg_send_syn(mep, mc);
			mc->syn_ns =
			    mc->syn_ns * 2 < MSG_SYN_MAX_NS ? mc->syn_ns * 2 : MSG_SYN_MAX_NS;
			mc->syn_at = now + mc->syn_ns;
		}
		return;
	}
	if (mc->rto_at && now >= mc->rto_at) {
		mc->rto_at = 0;
		if (mc->snd_una != mc->snd_nxt) {
			mep->st.timeouts++;
			mc->rto_ns =
			    mc->rto_ns * 2 < mep->rto_max_ns ? mc->rto_ns * 2 : mep->rto_max_ns;
			if (mep->lossy) {
				/* Resend the oldest unacked alone: the receiver keeps
				 * what came after it, and partial acks lead us from hole
				 * to hole. Resending the whole window instead would, when
				 * the timeout only meant a busy receiver, pour more than
				 * its credit into its buffers and cause real loss. */
				resend_one(mep, mc);
				mc->sack_hi =
				    mc->snd_una + 1; /* evidence may resend the rest again */
				mc->rto_at = now + mc->rto_ns; /* even if the NIC refused it */
				mc->recover = mc->snd_max;
				mc->recovering = true;
				mc->dupacks = 0;
			} else {
				/* Probe; the PONG tells whether anything was lost. */
				send_ack(mep, mc, MSG_F_PING);
				mc->rto_at = now + mc->rto_ns;
			}
		}
	}
	if (mc->nwait && mc->snd_una == mc->snd_end && now - mc->heard_at >= mep->ping_ns &&
	    now >= mc->ping_at) {
		send_ack(mep, mc, MSG_F_PING);
		mc->ping_at = now + mep->ping_ns;
	}
}

/* Timers, then whatever the window allows, then an ack if one is owed. */
void msg_service(struct unet_msg_ep *mep, struct msg_chan *mc)
{
	if (mc->state != MC_SYN && mc->state != MC_OPEN)
		return;
	timers(mep, mc);
	if (mc->state != MC_OPEN)
		return;
	msg_push(mep, mc);
	if (mc->state == MC_OPEN && mc->pong_due)
		send_ack(mep, mc, MSG_F_PONG);
	if (mc->state == MC_OPEN &&
	    (mc->ack_now || (mc->rcv_nxt != mc->ack_sent && mep->now >= mc->ack_due)))
		send_ack(mep, mc, 0);
}

/* About to block: nothing will carry the ack for a while, send it now. */
void msg_ack_flush(struct unet_msg_ep *mep, struct msg_chan *mc)
{
	if (mc->state == MC_OPEN && mc->pong_due)
		send_ack(mep, mc, MSG_F_PONG);
	if (mc->state == MC_OPEN && (mc->ack_now || mc->rcv_nxt != mc->ack_sent))
		send_ack(mep, mc, 0);
}

/* ---- input -------------------------------------------------------------- */

static void establish(struct unet_msg_ep *mep, struct msg_chan *mc)
{
	uint32_t w = mc->peer_credit;

	if (mc->peer_maxfrag < mc->wire_max) {
		/* The peer's buffers are smaller than ours (rx_buf_size differs).
		 * With nothing staged yet, cut smaller fragments from now on;
		 * messages already cut to the larger size could never be
		 * delivered, and the channel fails. */
		if (mc->snd_end != mc->snd_una) {
			msg_fail(mep, mc, -EMSGSIZE);
			return;
		}
		mc->wire_max = mc->peer_maxfrag;
	}
	if (mep->attr.window && mep->attr.window < w)
		w = mep->attr.window;
	mc->window = w < mc->nslots ? w : mc->nslots;
	mc->state = MC_OPEN;
	mc->heard_at = mep->now;
	if (mc->snd_una != mc->snd_end)
		mc->progress_at = mep->now;
}

static void syn_input(struct unet_msg_ep *mep, struct msg_chan *mc, const struct msg_frag *f)
{
	if (f->echo != 0 && f->echo != mc->my_epoch) {
		mep->st.frags_bad++; /* addressed to an older incarnation of us */
		return;
	}
	if (mc->have_peer && f->epoch != mc->peer_epoch) {
		if (mc->state == MC_OPEN) {
			msg_fail(mep, mc, -ECONNRESET); /* the peer restarted */
			return;
		}
		mc->peer_knows_me = false; /* it restarted during the handshake */
	}
	mc->have_peer = true;
	mc->peer_epoch = f->epoch;
	mc->heard_at = mep->now;
	if (mc->state == MC_SYN) {
		mc->peer_credit = f->credit;
		mc->peer_maxfrag = f->maxfrag;
	}
	if (f->echo == mc->my_epoch)
		mc->peer_knows_me = true;
	if (mc->state == MC_SYN && mc->peer_knows_me)
		establish(mep, mc);
	if ((f->flags & MSG_F_NEED) && mc->state != MC_FAILED)
		msg_send_syn(mep, mc);
}

/* An ack from the peer. Returns false when it acknowledges data we never
 * sent (a broken peer). */
static bool ack_input(struct unet_msg_ep *mep, struct msg_chan *mc, uint32_t ack, bool standalone)
{
	if (seq_lt(mc->snd_max, ack))
		return false;
	if (seq_lt(mc->snd_una, ack)) {
		mc->snd_una = ack;
		if (seq_lt(mc->snd_nxt, ack))
			mc->snd_nxt = ack;
		mc->progress_at = mep->now;
		mc->rto_ns = mep->rto_init_ns;
		mc->dupacks = 0;
		arm_rto(mep, mc);
		if (mc->recovering) {
			if (!seq_lt(mc->snd_una, mc->recover))
				mc->recovering = false;
			else if (!seq_lt(mc->snd_una, mc->sack_hi))
				resend_mark(mep, mc); /* partial ack: the next hole */
		}
	} else if (mep->lossy && ack == mc->snd_una && standalone && mc->snd_una != mc->snd_nxt) {
		/* The peer keeps asking for snd_una: lost, or overtaken. */
		if (++mc->dupacks == 3 && !mc->recovering) {
			if (!seq_lt(mc->snd_una, mc->sack_hi))
				resend_mark(mep, mc);
			mc->recover = mc->snd_max;
			mc->recovering = true;
		}
	}
	return true;
}

static int dispatch(struct unet_msg_ep *mep, struct msg_chan *mc, const void *data, uint32_t len)
{
	const struct msg_handler *h = &mep->h[mc->rtype];
	struct unet_msg m;

	if (!h->fn) {
		mep->st.frags_bad++;
		if (mc->rflags & MSG_F_REQ) {
			/* Tell the requester rather than leave it waiting forever. */
			uint8_t st[4];
			msg_put32(st, (uint32_t)-EOPNOTSUPP);
			msg_stage(mep, mc, 0, MSG_F_REPLY | MSG_F_NACK, mc->rtag, st, 4, NULL, 0);
		}
		return 0;
	}
	m.chan = mc->id;
	m.type = mc->rtype;
	m.len = len;
	m.data = data;
	m.req_id = (mc->rflags & MSG_F_REQ) ? mc->rtag : 0;
	mep->st.msgs_delivered++;
	h->fn(mep, &m, h->arg);
	return 1;
}

/* An in-sequence data fragment. Returns messages delivered (0 or 1). */
static int frag_accept(struct unet_msg_ep *mep, struct msg_chan *mc, const struct msg_frag *f)
{
	bool first = f->flags & MSG_F_FIRST, last = f->flags & MSG_F_LAST;

	if (first) {
		if (mc->inmsg)
			mep->st.frags_bad++; /* the previous message never ended */
		mc->inmsg = true;
		mc->poison = false;
		mc->rlen = 0;
		mc->rtype = f->type;
		mc->rflags = f->flags;
		mc->rtag = f->tag;
		mc->rreq = NULL;
		if (f->flags & MSG_F_REPLY) {
			mc->rreq = msg_req_lookup(mep, f->tag, mc->id);
			mc->poison = mc->rreq == NULL;
		} else if (last) {
			mc->inmsg = false;
			return dispatch(mep, mc, f->payload, f->plen); /* zero copy */
		}
	} else if (!mc->inmsg) {
		mep->st.frags_bad++; /* a continuation of nothing */
		return 0;
	}
	if (!mc->poison) {
		if (f->plen > UNET_MSG_MAX - mc->rlen) {
			mc->poison = true;
		} else if (mc->rreq) {
			struct msg_req *r = mc->rreq;
			if (mc->rlen < r->cap) {
				uint32_t k =
				    r->cap - mc->rlen < f->plen ? r->cap - mc->rlen : f->plen;
				memcpy((uint8_t *)r->reply + mc->rlen, f->payload, k);
			}
			mc->rlen += f->plen;
		} else {
			memcpy(mc->rbuf + mc->rlen, f->payload, f->plen);
			mc->rlen += f->plen;
		}
	}
	if (!last)
		return 0;
	mc->inmsg = false;
	if (mc->poison) {
		mep->st.frags_bad++;
		return 0;
	}
	if (mc->rreq) {
		struct msg_req *r = mc->rreq;
		mc->rreq = NULL;
		mep->st.msgs_delivered++;
		if (mc->rflags & MSG_F_NACK)
			msg_req_complete(mep, r, f->status, 0);
		else if (mc->rlen > r->cap)
			msg_req_complete(mep, r, -EMSGSIZE, r->cap);
		else
			msg_req_complete(mep, r, 0, mc->rlen);
		return 1;
	}
	return dispatch(mep, mc, mc->rbuf, mc->rlen);
}

/* Keep a fragment that arrived ahead of rcv_nxt. False if it cannot be
 * kept (shm, or no room) or is a duplicate of one kept. */
static bool ooo_keep(struct msg_chan *mc, const struct msg_frag *f)
{
	uint32_t k = f->seq & (mc->nooo - 1);

	if (!mc->nooo || f->seq - mc->rcv_nxt >= mc->nooo || f->plen > mc->ooo_stride ||
	    mc->ooo_has[k])
		return false;
	mc->ooo_f[k] = *f;
	mc->ooo_f[k].payload = mc->ooo_data + (size_t)k * mc->ooo_stride;
	memcpy(mc->ooo_data + (size_t)k * mc->ooo_stride, f->payload, f->plen);
	mc->ooo_has[k] = 1;
	return true;
}

/* The hole is filled: take the kept fragments that now follow in order. */
static int ooo_drain(struct unet_msg_ep *mep, struct msg_chan *mc)
{
	int got = 0;

	while (mc->state == MC_OPEN && mc->ooo_has[mc->rcv_nxt & (mc->nooo - 1)]) {
		uint32_t k = mc->rcv_nxt & (mc->nooo - 1);
		struct msg_frag f = mc->ooo_f[k];

		mc->ooo_has[k] = 0;
		if (f.seq != mc->rcv_nxt)
			break; /* cannot happen: slots are unique within the window */
		mc->rcv_nxt++;
		mc->ack_now = true; /* the sender is waiting on this hole */
		got += frag_accept(mep, mc, &f);
	}
	return got;
}

int msg_input(struct unet_msg_ep *mep, struct msg_chan *mc, const struct msg_frag *f)
{
	if (f->op == MSG_OP_SYN) {
		syn_input(mep, mc, f);
		return 0;
	}
	if (!mc->have_peer || f->epoch != mc->peer_epoch) {
		mep->st.frags_bad++; /* unknown or stale incarnation of the peer */
		return 0;
	}
	if (f->op == MSG_OP_RST) {
		msg_fail(mep, mc, -ECONNRESET);
		return 0;
	}
	if (mc->state == MC_SYN) {
		establish(mep, mc); /* only an established peer sends these */
		if (mc->state != MC_OPEN)
			return 0;
	}
	mc->heard_at = mep->now;
	if (!ack_input(mep, mc, f->ack, f->op == MSG_OP_ACK)) {
		mep->st.frags_bad++;
		return 0;
	}
	if (f->op == MSG_OP_ACK) {
		if (f->has_sack && mep->lossy)
			sack_input(mep, mc, f->ack, f->sack);
		if (f->flags & MSG_F_PING) {
			mc->pong_due = true;
			mc->pong_seq = f->seq;
		}
		if ((f->flags & MSG_F_PONG) && !mep->lossy && seq_lt(mc->snd_una, f->seq) &&
		    !seq_lt(mc->snd_max, f->seq)) {
			/* FIFO channel: all we sent before the PING was processed,
			 * and [snd_una, seq) is not among it. Lost: send again. */
			mc->snd_nxt = mc->snd_una;
		}
		return 0;
	}
	if (f->seq != mc->rcv_nxt) {
		if (seq_lt(f->seq, mc->rcv_nxt))
			mep->st.frags_dup++;
		else if (!mc->nooo || ooo_keep(mc, f))
			mep->st.frags_ooo++;
		else
			mep->st.frags_dup++; /* already kept, or beyond any window */
		mc->ack_now = true;	     /* tell the sender where we are */
		return 0;
	}
	if (mc->rcv_nxt == mc->ack_sent)
		mc->ack_due = mep->now + mep->ack_delay_ns;
	mc->rcv_nxt++;
	int got = frag_accept(mep, mc, f);
	return mc->nooo ? got + ooo_drain(mep, mc) : got;
}
