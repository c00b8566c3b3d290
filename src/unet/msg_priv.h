/*
 * msg_priv.h - state shared by msg.c (the public API, request table, poll
 * loop) and msg_proto.c (the per-channel protocol engine).
 *
 * Per channel the sender keeps a *staging ring*: one stage_size chunk of
 * the endpoint's segment, cut into nslots fixed-size slots, each holding
 * one fragment in wire format (header + payload). Sequence number s lives
 * in slot s & mask, so retransmission is "send slot s again", and a U-Net
 * send completion finds its slot from its offset alone. Sequence counters
 * are free-running 32-bit values compared with serial arithmetic:
 *
 *   snd_tail <= snd_una <= snd_nxt <= snd_end,   snd_max >= snd_nxt
 *   [tail, una)  acked, slot still referenced by an unreaped U-Net send
 *   [una, nxt)   sent, not acked (at most `window` of them)
 *   [nxt, end)   staged, not yet sent (go-back-N rewinds nxt to una)
 */
#ifndef UNET_MSG_PRIV_H
#define UNET_MSG_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "msg_internal.h"
#include "msg_wire.h"
#include "nic.h"
#include "unet/msg.h"

#define MSG_BATCH      32
#define MSG_NIL	       UINT32_MAX
#define MSG_LOSSY_FRAG 1400u /* udp/xdp: fragment + IP/UDP(/Ethernet) under 1500 */
#define MSG_SYN_MAX_NS (100u * 1000000u)
/* First sequence number of every session, both ways: close below 2^32 so
 * that every session, and so every test, crosses the wrap within its first
 * 256 fragments. (Stale fragments are told apart by the epoch, not by a
 * random initial sequence number.) */
#define MSG_ISN 0xffffff00u

enum { MC_FREE = 0, MC_SYN, MC_OPEN, MC_FAILED };
enum { RQ_FREE = 0, RQ_WAIT, RQ_DONE };

static inline bool seq_lt(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

struct msg_chan {
	uint8_t state;
	bool have_peer;	    /* peer_epoch learned from a SYN */
	bool peer_knows_me; /* the peer echoed my_epoch */
	bool ack_now;	    /* send a standalone ack at the end of this poll */
	bool recovering;    /* fast go-back done, until snd_una passes recover */
	bool pong_due;	    /* the peer pinged: answer with a PONG echoing pong_seq */
	uint32_t pong_seq;
	int fail_code;
	uint32_t id;
	uint32_t my_epoch, peer_epoch, prev_epoch;
	uint32_t peer_credit, peer_maxfrag;

	/* send */
	uint32_t window, wire_max, slot_size, nslots, mask;
	int32_t chunk;
	uint64_t stage_off;
	uint8_t *stage;
	uint32_t *slen;	 /* wire length per slot */
	uint16_t *sinfl; /* unreaped U-Net sends per slot */
	uint32_t snd_tail, snd_una, snd_nxt, snd_max, snd_end;
	uint32_t dupacks, recover;
	uint32_t sack_hi;	 /* holes below this were resent on selective-ack evidence */
	uint64_t rto_ns, rto_at; /* rto_at 0: timer off */
	uint64_t progress_at;	 /* last ack progress (or start of outstanding data) */
	uint64_t syn_ns, syn_at;
	uint64_t heard_at, ping_at;
	uint32_t nwait; /* requests awaiting a reply on this channel */

	/* receive */
	uint32_t rcv_nxt, ack_sent;
	uint64_t ack_due; /* delayed ack: when an unacked arrival must be acked */
	uint8_t *rbuf;	  /* UNET_MSG_MAX reassembly buffer, kept for the slot's life */
	uint32_t rlen, rtag;
	uint8_t rtype, rflags;
	bool inmsg, poison;
	struct msg_req *rreq; /* the request a reply in reassembly completes */

	/* Lossy NICs: fragments that arrived ahead of a hole, kept (copied, so
	 * they hold no receive buffer and no credit) until it is filled. Slot
	 * seq & (nooo - 1); nooo >= our credit >= the peer's window, so every
	 * fragment the peer may have in flight has a slot of its own. */
	uint32_t nooo, ooo_stride;
	uint8_t *ooo_has;
	struct msg_frag *ooo_f;
	uint8_t *ooo_data;
};

struct msg_req {
	uint8_t state;
	uint16_t gen;
	uint16_t chan;
	uint32_t cap, len;
	int status;
	void *reply, *ctx;
	uint32_t next, prev; /* done list (both) or free list (next) */
};

struct msg_handler {
	unet_msg_handler fn;
	void *arg;
};

struct unet_msg_ep {
	struct unet_ep *ep;
	struct unet_msg_attr attr;
	bool lossy; /* not shm: loss, duplication, reordering possible */
	uint32_t max_chans;
	uint32_t credit, maxfrag; /* what we advertise in SYNs */
	uint64_t rto_init_ns, rto_max_ns, dead_ns, ping_ns, ack_delay_ns;
	uint64_t now;

	struct msg_chan *chans;
	uint16_t *live; /* attached channels (any state but MC_FREE) */
	uint32_t nlive;

	uint32_t nchunks;
	int32_t *chunk_owner; /* chan id, -1 free, -2 draining after detach */
	uint32_t *chunk_infl;

	struct msg_handler h[UNET_MSG_TYPES];

	struct msg_req *reqs;
	uint32_t free_head, done_head, done_tail;

	struct unet_msg_stats st;
	bool in_poll;
	unet_msg_fail_hook on_fail;
	void *on_fail_arg;

	struct unet_desc rx[MSG_BATCH], tx[MSG_BATCH];
	struct unet_comp comp[MSG_BATCH];
};

/* msg_proto.c */
int msg_stage(struct unet_msg_ep *mep, struct msg_chan *mc, uint8_t type, uint8_t flags,
	      uint32_t tag, const void *a, uint32_t alen, const void *b, uint32_t blen);
void msg_push(struct unet_msg_ep *mep, struct msg_chan *mc);
void msg_reap(struct unet_msg_ep *mep);
void msg_send_syn(struct unet_msg_ep *mep, struct msg_chan *mc);
void msg_send_rst(struct unet_msg_ep *mep, struct msg_chan *mc);
void msg_service(struct unet_msg_ep *mep, struct msg_chan *mc);
uint64_t msg_next_deadline(struct unet_msg_ep *mep, struct msg_chan *mc);
int msg_input(struct unet_msg_ep *mep, struct msg_chan *mc, const struct msg_frag *f);
void msg_fail(struct unet_msg_ep *mep, struct msg_chan *mc, int code);
void msg_ack_check(struct unet_msg_ep *mep, struct msg_chan *mc);
void msg_ack_flush(struct unet_msg_ep *mep, struct msg_chan *mc);

/* msg.c: request table */
struct msg_req *msg_req_lookup(struct unet_msg_ep *mep, uint32_t tag, unsigned chan);
void msg_req_complete(struct unet_msg_ep *mep, struct msg_req *r, int status, uint32_t len);

#endif /* UNET_MSG_PRIV_H */
