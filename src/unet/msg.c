/*
 * msg.c - the public face of the msg layer (unet/msg.h): endpoint and
 * channel lifecycle, sends and requests, the request table, and the poll
 * loop that feeds arriving fragments to the protocol engine (msg_proto.c).
 *
 * Memory is all taken at create and attach: the segment is cut into
 * stage_size chunks (one per attached channel), each channel slot gets a
 * UNET_MSG_MAX reassembly buffer at its first attach and keeps it, and the
 * request table is a fixed array with an intrusive free list and an
 * intrusive, doubly linked list of completed requests (so unet_msg_wait can
 * take one out of the middle while the others stay queued in order).
 *
 * Request ids are (generation << 16 | slot): the 32-bit tag that travels in
 * the request and comes back in the reply. A reply whose tag does not name
 * a waiting request of the same channel is dropped, so a duplicated or late
 * reply can never complete a reused slot.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "msg_priv.h"

#define MS_NS 1000000ull

/* ---- request table -------------------------------------------------------- */

static uint32_t req_tag(const struct unet_msg_ep *mep, const struct msg_req *r)
{
	return (uint32_t)r->gen << 16 | (uint32_t)(r - mep->reqs);
}

static struct msg_req *req_by_id(struct unet_msg_ep *mep, int64_t id)
{
	struct msg_req *r;

	if (id <= 0 || id > UINT32_MAX || (id & 0xffff) >= mep->attr.max_reqs)
		return NULL;
	r = &mep->reqs[id & 0xffff];
	return r->state != RQ_FREE && r->gen == (uint16_t)(id >> 16) ? r : NULL;
}

struct msg_req *msg_req_lookup(struct unet_msg_ep *mep, uint32_t tag, unsigned chan)
{
	struct msg_req *r = req_by_id(mep, tag);

	return r && r->state == RQ_WAIT && r->chan == chan ? r : NULL;
}

void msg_req_complete(struct unet_msg_ep *mep, struct msg_req *r, int status, uint32_t len)
{
	uint32_t i = (uint32_t)(r - mep->reqs);
	struct msg_chan *mc = &mep->chans[r->chan];

	if (mc->nwait)
		mc->nwait--;
	r->state = RQ_DONE;
	r->status = status;
	r->len = len;
	r->next = MSG_NIL;
	r->prev = mep->done_tail;
	if (mep->done_tail != MSG_NIL)
		mep->reqs[mep->done_tail].next = i;
	else
		mep->done_head = i;
	mep->done_tail = i;
}

/* Take a completed request off the done list, report it, free its slot. */
static void req_reap(struct unet_msg_ep *mep, struct msg_req *r, struct unet_msg_comp *c)
{
	uint32_t i = (uint32_t)(r - mep->reqs);

	if (r->prev != MSG_NIL)
		mep->reqs[r->prev].next = r->next;
	else
		mep->done_head = r->next;
	if (r->next != MSG_NIL)
		mep->reqs[r->next].prev = r->prev;
	else
		mep->done_tail = r->prev;
	c->req_id = req_tag(mep, r);
	c->status = r->status;
	c->len = r->len;
	c->ctx = r->ctx;
	r->state = RQ_FREE;
	/* Skip 0 once the 16 bits wrap (in int arithmetic r->gen + 1 never
	 * is 0): a request id of 0 would lose its reply. */
	r->gen = (uint16_t)(r->gen + 1) ? (uint16_t)(r->gen + 1) : 1;
	r->next = mep->free_head;
	mep->free_head = i;
}

/* ---- create / destroy ------------------------------------------------------ */

static int attr_fill(struct unet_msg_ep *mep, const struct unet_msg_attr *in)
{
	struct unet_msg_attr *a = &mep->attr;
	const struct unet_ep_attr *ea = unet_ep_attr(mep->ep);

	if (in)
		*a = *in;
	else
		memset(a, 0, sizeof(*a));
	if (!a->stage_size)
		a->stage_size = 2u << 20;
	if (!a->max_reqs)
		a->max_reqs = 1024;
	if (!a->rto_us)
		a->rto_us = mep->lossy ? 3000 : 1000;
	if (!a->dead_ms)
		a->dead_ms = 3000;
	if (a->max_reqs > 65535 || a->stage_size < 8192 || a->stage_size % 64 ||
	    a->rto_us > 10u * 1000 * 1000 || a->dead_ms > 3600u * 1000 ||
	    (a->frag_size && a->frag_size < MSG_MIN_FRAG - MSG_HDR))
		return -EINVAL;
	if (mep->ep->seg_size < a->stage_size)
		return -ENOMEM; /* not even one channel's staging ring fits */
	mep->rto_init_ns = (uint64_t)a->rto_us * 1000;
	mep->dead_ns = (uint64_t)a->dead_ms * MS_NS;
	mep->rto_max_ns = mep->dead_ns / 4 < 250 * MS_NS ? mep->dead_ns / 4 : 250 * MS_NS;
	if (mep->rto_max_ns < mep->rto_init_ns)
		mep->rto_max_ns = mep->rto_init_ns;
	mep->ping_ns = mep->dead_ns / 8 > mep->rto_init_ns ? mep->dead_ns / 8 : mep->rto_init_ns;
	mep->ack_delay_ns = mep->rto_init_ns / 4;
	/* What a peer may have in flight to us on one channel: every fragment
	 * takes a receive buffer and a receive-queue slot, and half the queue
	 * stays free for acks and handshakes. */
	mep->credit = ea->rx_bufs < ea->rq_depth / 2 ? ea->rx_bufs : ea->rq_depth / 2;
	if (!mep->credit)
		mep->credit = 1;
	mep->maxfrag = ea->rx_buf_size;
	return 0;
}

int unet_msg_create(struct unet_ep *ep, const struct unet_msg_attr *attr, struct unet_msg_ep **out)
{
	struct unet_msg_ep *mep;
	int rc;

	if (!ep || !out)
		return -EINVAL;
	mep = calloc(1, sizeof(*mep));
	if (!mep)
		return -ENOMEM;
	mep->ep = ep;
	mep->lossy = strcmp(unet_nic_kind(ep->nic), "shm") != 0;
	mep->max_chans = unet_ep_attr(ep)->max_chans;
	rc = attr_fill(mep, attr);
	if (rc < 0) {
		free(mep);
		return rc;
	}
	mep->nchunks = (uint32_t)(ep->seg_size / mep->attr.stage_size);
	mep->chans = calloc(mep->max_chans, sizeof(*mep->chans));
	mep->live = calloc(mep->max_chans, sizeof(*mep->live));
	mep->chunk_owner = malloc(mep->nchunks * sizeof(*mep->chunk_owner));
	mep->chunk_infl = calloc(mep->nchunks, sizeof(*mep->chunk_infl));
	mep->reqs = calloc(mep->attr.max_reqs, sizeof(*mep->reqs));
	if (!mep->chans || !mep->live || !mep->chunk_owner || !mep->chunk_infl || !mep->reqs) {
		unet_msg_destroy(mep);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < mep->nchunks; i++)
		mep->chunk_owner[i] = -1;
	for (uint32_t i = 0; i < mep->attr.max_reqs; i++) {
		mep->reqs[i].gen = 1;
		mep->reqs[i].next = i + 1 < mep->attr.max_reqs ? i + 1 : MSG_NIL;
	}
	mep->free_head = 0;
	mep->done_head = mep->done_tail = MSG_NIL;
	*out = mep;
	return 0;
}

static void chan_release(struct unet_msg_ep *mep, struct msg_chan *mc)
{
	if (mc->chunk >= 0)
		mep->chunk_owner[mc->chunk] = mep->chunk_infl[mc->chunk] ? -2 : -1;
	mc->chunk = -1;
	free(mc->slen);
	free(mc->sinfl);
	mc->slen = NULL;
	mc->sinfl = NULL;
	mc->state = MC_FREE;
	for (uint32_t i = 0; i < mep->nlive; i++)
		if (mep->live[i] == mc->id) {
			mep->live[i] = mep->live[--mep->nlive];
			break;
		}
}

void unet_msg_destroy(struct unet_msg_ep *mep)
{
	if (!mep)
		return;
	if (mep->chans) {
		for (uint32_t i = 0; i < mep->max_chans; i++) {
			struct msg_chan *mc = &mep->chans[i];
			if (mc->state == MC_SYN || mc->state == MC_OPEN)
				msg_send_rst(mep, mc);
			free(mc->slen);
			free(mc->sinfl);
			free(mc->rbuf);
			free(mc->ooo_has);
			free(mc->ooo_f);
			free(mc->ooo_data);
		}
	}
	free(mep->chans);
	free(mep->live);
	free(mep->chunk_owner);
	free(mep->chunk_infl);
	free(mep->reqs);
	free(mep);
}

struct unet_ep *unet_msg_unet(struct unet_msg_ep *mep)
{
	return mep ? mep->ep : NULL;
}

/* ---- attach / detach ------------------------------------------------------- */

static uint32_t new_epoch(uint32_t avoid)
{
	uint32_t e = 0;

	while (e == 0 || e == avoid) {
		if (getrandom(&e, sizeof(e), 0) != sizeof(e))
			e = (uint32_t)unet__now_ns() * 2654435761u; /* no entropy: still differs */
	}
	return e;
}

int unet_msg_attach(struct unet_msg_ep *mep, unsigned chan)
{
	struct msg_chan *mc;
	uint32_t w, nslots;
	int32_t chunk = -1;
	int mtu;

	if (!mep)
		return -EINVAL;
	if (chan >= mep->max_chans)
		return -ENOTCONN;
	mtu = unet_chan_mtu(mep->ep, chan);
	if (mtu < 0)
		return mtu;
	mc = &mep->chans[chan];
	if (mc->state == MC_FAILED)
		unet_msg_detach(mep, chan); /* re-attach after a failure */
	if (mc->state != MC_FREE)
		return -EALREADY;

	/* Fragment size: the peer's buffers (mtu on shm), ours (which a udp
	 * peer configured like us also has), and a 1500-byte link for udp/xdp. */
	w = (uint32_t)mtu;
	if (w > mep->maxfrag)
		w = mep->maxfrag;
	if (mep->lossy && w > MSG_LOSSY_FRAG)
		w = MSG_LOSSY_FRAG;
	if (w > mep->attr.stage_size / 8)
		w = (mep->attr.stage_size / 8) & ~63u; /* at least 8 slots to stage into */
	if (w < MSG_MIN_FRAG)
		return -EMSGSIZE;
	if (mep->attr.frag_size && mep->attr.frag_size < w - MSG_HDR)
		w = mep->attr.frag_size + MSG_HDR;
	for (uint32_t k = 0; k < mep->nchunks; k++)
		if (mep->chunk_owner[k] == -1) {
			chunk = (int32_t)k;
			break;
		}
	if (chunk < 0)
		return -ENOMEM; /* every staging chunk of the segment is in use */
	mc->slot_size = (w + 63) & ~63u;
	nslots = mep->attr.stage_size / mc->slot_size;
	while (nslots & (nslots - 1))
		nslots &= nslots - 1; /* round down to a power of two */
	if (!mc->rbuf)
		mc->rbuf = malloc(UNET_MSG_MAX);
	if (mep->lossy && !mc->ooo_has) {
		uint32_t n = 1;
		while (n < mep->credit)
			n <<= 1;
		mc->nooo = n;
		mc->ooo_stride = mep->maxfrag - MSG_HDR;
		mc->ooo_has = calloc(n, 1);
		mc->ooo_f = calloc(n, sizeof(*mc->ooo_f));
		mc->ooo_data = malloc((size_t)n * mc->ooo_stride);
		if (!mc->ooo_has || !mc->ooo_f || !mc->ooo_data) {
			free(mc->ooo_has);
			free(mc->ooo_f);
			free(mc->ooo_data);
			mc->ooo_has = NULL;
			mc->ooo_f = NULL;
			mc->ooo_data = NULL;
			mc->nooo = 0;
			return -ENOMEM;
		}
	}
	mc->slen = calloc(nslots, sizeof(*mc->slen));
	mc->sinfl = calloc(nslots, sizeof(*mc->sinfl));
	if (!mc->rbuf || !mc->slen || !mc->sinfl) {
		free(mc->slen);
		free(mc->sinfl);
		mc->slen = NULL;
		mc->sinfl = NULL;
		return -ENOMEM;
	}
	struct msg_chan keep = *mc; /* buffers that live as long as the slot */
	memset(mc, 0, sizeof(*mc));
	mc->rbuf = keep.rbuf;
	mc->slen = keep.slen;
	mc->sinfl = keep.sinfl;
	mc->nooo = keep.nooo;
	mc->ooo_stride = keep.ooo_stride;
	mc->ooo_has = keep.ooo_has;
	mc->ooo_f = keep.ooo_f;
	mc->ooo_data = keep.ooo_data;
	if (mc->ooo_has)
		memset(mc->ooo_has, 0, mc->nooo);
	mc->id = chan;
	mc->snd_tail = mc->snd_una = mc->snd_nxt = mc->snd_max = mc->snd_end = MSG_ISN;
	mc->rcv_nxt = mc->ack_sent = MSG_ISN;
	mc->wire_max = w;
	mc->slot_size = (w + 63) & ~63u;
	mc->nslots = nslots;
	mc->mask = nslots - 1;
	mc->chunk = chunk;
	mc->stage_off = (uint64_t)chunk * mep->attr.stage_size;
	mc->stage = (uint8_t *)unet_ptr(mep->ep, mc->stage_off);
	mep->chunk_owner[chunk] = (int32_t)chan;
	mc->my_epoch = new_epoch(keep.my_epoch);
	mc->rto_ns = mep->rto_init_ns;
	mc->syn_ns = mep->rto_init_ns;
	mep->now = unet__now_ns();
	mc->heard_at = mc->progress_at = mep->now;
	mc->state = MC_SYN;
	mep->live[mep->nlive++] = (uint16_t)chan;
	msg_send_syn(mep, mc);
	mc->syn_at = mep->now + mc->syn_ns;
	return 0;
}

int unet_msg_detach(struct unet_msg_ep *mep, unsigned chan)
{
	struct msg_chan *mc;

	if (!mep)
		return -EINVAL;
	if (chan >= mep->max_chans || mep->chans[chan].state == MC_FREE)
		return -ENOTCONN;
	mc = &mep->chans[chan];
	if (mc->state != MC_FAILED) {
		msg_send_rst(mep, mc);
		msg_fail(mep, mc, -ECONNRESET);
	}
	chan_release(mep, mc);
	return 0;
}

/* ---- handlers and sends ---------------------------------------------------- */

static int handle(struct unet_msg_ep *mep, uint8_t type, unet_msg_handler fn, void *arg)
{
	mep->h[type].fn = fn;
	mep->h[type].arg = arg;
	return 0;
}

int unet_msg_handle(struct unet_msg_ep *mep, uint8_t type, unet_msg_handler fn, void *arg)
{
	if (!mep || type > UNET_MSG_TYPE_USER_MAX)
		return -EINVAL;
	return handle(mep, type, fn, arg);
}

int unet__msg_handle_reserved(struct unet_msg_ep *mep, uint8_t type, unet_msg_handler fn, void *arg)
{
	if (!mep || type < UNET_MSG_TYPE_RESERVED_MIN)
		return -EINVAL;
	return handle(mep, type, fn, arg);
}

/* The channel, if messages may be queued on it. */
static int chan_for_send(struct unet_msg_ep *mep, unsigned chan, struct msg_chan **out)
{
	struct msg_chan *mc;

	if (chan >= mep->max_chans || mep->chans[chan].state == MC_FREE)
		return -ENOTCONN;
	mc = &mep->chans[chan];
	if (mc->state == MC_FAILED)
		return -ECONNRESET;
	*out = mc;
	return 0;
}

static int send_common(struct unet_msg_ep *mep, unsigned chan, uint8_t type, uint8_t flags,
		       uint32_t tag, const void *a, uint32_t alen, const void *b, uint32_t blen)
{
	struct msg_chan *mc;
	int rc;

	if ((!a && alen) || (!b && blen))
		return -EINVAL;
	if (alen > UNET_MSG_MAX || blen > UNET_MSG_MAX - alen)
		return -EMSGSIZE;
	rc = chan_for_send(mep, chan, &mc);
	if (rc < 0)
		return rc;
	/* The clock matters when outstanding data starts (dead_ms counts from
	 * it); in a stream the last poll's time is close enough for timers. */
	if (mc->snd_una == mc->snd_end)
		mep->now = unet__now_ns();
	rc = msg_stage(mep, mc, type, flags, tag, a, alen, b, blen);
	if (rc < 0)
		return rc;
	msg_push(mep, mc);
	return 0;
}

int unet_msg_send(struct unet_msg_ep *mep, unsigned chan, uint8_t type, const void *buf,
		  uint32_t len)
{
	if (!mep || type > UNET_MSG_TYPE_USER_MAX)
		return -EINVAL;
	return send_common(mep, chan, type, 0, 0, buf, len, NULL, 0);
}

int unet__msg_send2(struct unet_msg_ep *mep, unsigned chan, uint8_t type, const void *a,
		    uint32_t alen, const void *b, uint32_t blen)
{
	if (!mep)
		return -EINVAL;
	return send_common(mep, chan, type, 0, 0, a, alen, b, blen);
}

int64_t unet_msg_request(struct unet_msg_ep *mep, unsigned chan, uint8_t type, const void *buf,
			 uint32_t len, void *reply, uint32_t cap, void *ctx)
{
	struct msg_chan *mc;
	struct msg_req *r;
	uint32_t tag;
	int rc;

	if (!mep || type > UNET_MSG_TYPE_USER_MAX || (!buf && len) || (!reply && cap))
		return -EINVAL;
	if (len > UNET_MSG_MAX)
		return -EMSGSIZE;
	rc = chan_for_send(mep, chan, &mc);
	if (rc < 0)
		return rc;
	if (mep->free_head == MSG_NIL)
		return -EBUSY;
	r = &mep->reqs[mep->free_head];
	tag = req_tag(mep, r);
	mep->now = unet__now_ns();
	rc = msg_stage(mep, mc, type, MSG_F_REQ, tag, buf, len, NULL, 0);
	if (rc < 0)
		return rc;
	mep->free_head = r->next;
	r->state = RQ_WAIT;
	r->chan = (uint16_t)chan;
	r->reply = reply;
	r->cap = cap;
	r->len = 0;
	r->status = 0;
	r->ctx = ctx;
	if (mc->nwait++ == 0)
		mc->heard_at = mc->ping_at = mep->now; /* silence is measured from now */
	msg_push(mep, mc);
	return tag;
}

int unet_msg_reply(struct unet_msg_ep *mep, const struct unet_msg *m, const void *buf, uint32_t len)
{
	if (!mep || !m || m->req_id == 0 || m->req_id > UINT32_MAX)
		return -EINVAL;
	return send_common(mep, m->chan, 0, MSG_F_REPLY, (uint32_t)m->req_id, buf, len, NULL, 0);
}

/* ---- progress -------------------------------------------------------------- */

/* One received descriptor. Returns messages delivered. */
static int rx_one(struct unet_msg_ep *mep, const struct unet_desc *d)
{
	struct msg_chan *mc = d->chan < mep->max_chans ? &mep->chans[d->chan] : NULL;
	bool inl = d->flags & UNET_DF_INLINE;
	struct msg_frag f;
	int got = 0;

	if (d->flags & UNET_DF_CHAN_DOWN) {
		if (mc)
			msg_fail(mep, mc, -ECONNRESET);
		return 0;
	}
	if (!mc || mc->state == MC_FREE || mc->state == MC_FAILED)
		mep->st.frags_bad++; /* not attached (or failed): nobody to take it */
	else if (unet__msg_parse(inl ? d->data : unet_ptr(mep->ep, d->off), d->len, &f) < 0)
		mep->st.frags_bad++;
	else
		got = msg_input(mep, mc, &f);
	if (!inl)
		unet_release(mep->ep, d, 1);
	/* Ack after the buffer is back in the free queue: the ack is credit. */
	if (mc && mc->state == MC_OPEN)
		msg_ack_check(mep, mc);
	return got;
}

int unet_msg_poll(struct unet_msg_ep *mep, unsigned budget)
{
	int done = 0;
	unsigned frags = 0;

	if (!mep)
		return -EINVAL;
	if (mep->in_poll)
		return -EDEADLK; /* from inside a handler */
	mep->in_poll = true;
	mep->now = unet__now_ns();
	msg_reap(mep);
	while ((unsigned)done < budget && frags < 8 * MSG_BATCH) {
		unsigned want =
		    budget - (unsigned)done < MSG_BATCH ? budget - (unsigned)done : MSG_BATCH;
		int n = unet_recv(mep->ep, mep->rx, want);
		if (n <= 0)
			break;
		for (int i = 0; i < n; i++)
			done += rx_one(mep, &mep->rx[i]);
		frags += (unsigned)n;
		mep->now = unet__now_ns();
	}
	for (uint32_t i = 0; i < mep->nlive; i++)
		msg_service(mep, &mep->chans[mep->live[i]]);
	mep->in_poll = false;
	return done;
}

int unet_msg_poll_comp(struct unet_msg_ep *mep, struct unet_msg_comp *c, unsigned max)
{
	unsigned n = 0;

	if (!mep || (!c && max))
		return -EINVAL;
	while (n < max && mep->done_head != MSG_NIL) {
		req_reap(mep, &mep->reqs[mep->done_head], &c[n]);
		n++;
	}
	return (int)n;
}

int unet_msg_idle(struct unet_msg_ep *mep, int timeout_ms)
{
	uint64_t next = 0, now;
	int t = timeout_ms;

	if (!mep)
		return -EINVAL;
	if (mep->in_poll)
		return -EDEADLK;
	now = unet__now_ns();
	mep->now = now;
	for (uint32_t i = 0; i < mep->nlive; i++) {
		struct msg_chan *mc = &mep->chans[mep->live[i]];
		msg_ack_flush(mep, mc);
		if (mc->state == MC_OPEN &&
		    (mc->pong_due ||
		     (mc->snd_nxt != mc->snd_end && mc->snd_nxt - mc->snd_una < mc->window)))
			return 1; /* work for the next poll already */
		uint64_t d = msg_next_deadline(mep, mc);
		if (d && (!next || d < next))
			next = d;
	}
	if (next) {
		if (next <= now)
			return 1;
		uint64_t ms = (next - now + MS_NS - 1) / MS_NS;
		if (t < 0 || ms < (uint64_t)t)
			t = (int)ms;
	}
	return unet_wait(mep->ep, t);
}

int unet_msg_wait(struct unet_msg_ep *mep, int64_t req_id, int timeout_ms, struct unet_msg_comp *c)
{
	uint64_t deadline;
	struct msg_req *r;

	if (!mep || !c)
		return -EINVAL;
	if (mep->in_poll)
		return -EDEADLK;
	r = req_by_id(mep, req_id);
	if (!r)
		return -EINVAL;
	deadline = timeout_ms < 0 ? UINT64_MAX : unet__now_ns() + (uint64_t)timeout_ms * MS_NS;
	for (;;) {
		if (r->state == RQ_DONE) {
			req_reap(mep, r, c);
			return 0;
		}
		int rc = unet_msg_poll(mep, 64);
		if (rc < 0)
			return rc;
		if (r->state == RQ_DONE)
			continue;
		uint64_t now = unet__now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		uint64_t left =
		    deadline == UINT64_MAX ? 1000 : (deadline - now + MS_NS - 1) / MS_NS;
		unet_msg_idle(mep, left > 1000 ? 1000 : (int)left);
	}
}

void unet_msg_get_stats(const struct unet_msg_ep *mep, struct unet_msg_stats *st)
{
	if (mep && st)
		*st = mep->st;
}

int unet_msg_status(struct unet_msg_ep *mep, unsigned chan)
{
	if (!mep || chan >= mep->max_chans)
		return -ENOTCONN;
	switch (mep->chans[chan].state) {
	case MC_OPEN:
		return 0;
	case MC_SYN:
		return -EINPROGRESS;
	case MC_FAILED:
		return mep->chans[chan].fail_code;
	default:
		return -ENOTCONN;
	}
}

/* ---- internal API for layers above ------------------------------------------ */

int unet__msg_chan_state(struct unet_msg_ep *mep, unsigned chan)
{
	return unet_msg_status(mep, chan);
}

void unet__msg_on_fail(struct unet_msg_ep *mep, unet_msg_fail_hook fn, void *arg)
{
	mep->on_fail = fn;
	mep->on_fail_arg = arg;
}
