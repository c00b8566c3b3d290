/*
 * msg.h - reliable messages and request/reply on U-Net endpoints (U-Net
 * Active Messages in spirit).
 *
 * A unet_msg_ep wraps one U-Net endpoint. Per channel it gives in-order,
 * exactly-once delivery of messages up to UNET_MSG_MAX bytes, whatever the
 * NIC underneath loses, duplicates or reorders:
 *
 *   - messages are cut into fragments that fit the channel (frag_size);
 *   - every fragment carries a sequence number and a cumulative ack;
 *   - the sender keeps at most `window` fragments unacknowledged (credit
 *     flow control: the window never exceeds what the receiver can buffer,
 *     so a slow receiver makes the sender wait, it never loses messages);
 *   - lost fragments are retransmitted, on a timeout that backs off or
 *     after three duplicate acks; duplicates are dropped and re-acked. On
 *     lossy NICs (udp, xdp) fragments that overtake a lost one are kept
 *     (and selectively acked) and only missing ones are resent; on shm
 *     (FIFO, lossless by credit) a timeout first probes, and the sender
 *     goes back only on proof of loss (docs/msg.md);
 *   - a channel with data or requests outstanding that makes no progress
 *     for `dead_ms` fails, and its outstanding requests complete with
 *     -ETIMEDOUT (an idle channel never times out: a peer may attach late);
 *   - every attach picks a random session epoch that the handshake
 *     exchanges, so fragments of an older incarnation of a peer are
 *     rejected, and a peer that restarts fails the channel (-ECONNRESET).
 *
 * Receiving is by handler: unet_msg_poll() runs the handler registered for
 * each arriving message's type, in order, on the caller's thread. A handler
 * may reply (unet_msg_reply) and may send. Requests (unet_msg_request) get
 * their reply delivered to a per-request completion.
 *
 * Memory: everything is sized at creation (send staging ring and reassembly
 * buffer per channel, request table); nothing is allocated on the data path.
 * One unet_msg_ep is used by one thread at a time.
 */
#ifndef UNET_MSG_H
#define UNET_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "unet/unet.h"

#ifdef __cplusplus
extern "C" {
#endif

#define UNET_MSG_MAX (1u << 20) /* largest message */
#define UNET_MSG_TYPES 256      /* handler table size; types 240..255 reserved */
#define UNET_MSG_TYPE_USER_MAX 239

struct unet_msg_ep;

/* One arrived message, valid only during the handler call. */
struct unet_msg {
	unsigned chan;
	uint8_t type;
	uint32_t len;
	const void *data;
	uint64_t req_id; /* non-zero for a request: pass the message to unet_msg_reply */
};

typedef void (*unet_msg_handler)(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg);

struct unet_msg_attr {
	uint32_t window;    /* fragments in flight per channel (default: from the NIC) */
	uint32_t frag_size; /* payload bytes per fragment (default: from the NIC) */
	uint32_t stage_size;/* send staging bytes per channel (default 2 MiB) */
	uint32_t max_reqs;  /* outstanding requests per endpoint (default 1024) */
	uint32_t rto_us;    /* initial retransmit timeout (default: 1000 on shm, 3000 else) */
	uint32_t dead_ms;   /* no progress for this long: channel fails (default 3000) */
};

/* Completion of a request: the reply, or why there is none. */
struct unet_msg_comp {
	uint64_t req_id;
	int status;       /* 0, -ETIMEDOUT, -ECONNRESET, -EMSGSIZE (reply > cap:
			     the first cap bytes were written), -EOPNOTSUPP (no
			     handler for the type at the peer) */
	uint32_t len;     /* reply length (bytes written to the reply buffer) */
	void *ctx;        /* as given to unet_msg_request */
};

struct unet_msg_stats {
	uint64_t msgs_sent, msgs_delivered;
	uint64_t frags_sent, frags_retx, frags_dup, frags_ooo, frags_bad;
	uint64_t acks_sent, timeouts;
};

/* Wrap endpoint `ep` (which stays owned by the caller and must outlive the
 * msg endpoint; destroy the msg endpoint outside its handlers). `attr` may
 * be NULL. All traffic on `ep` then belongs to
 * msg: its segment is cut into stage_size chunks, one per attached channel
 * (-ENOMEM when seg_size < stage_size), and messages on channels that are
 * not attached are dropped and counted (frags_bad). -EINVAL for a bad
 * attribute (max_reqs > 65535, stage_size < 8 KiB). */
int unet_msg_create(struct unet_ep *ep, const struct unet_msg_attr *attr,
		    struct unet_msg_ep **out);
void unet_msg_destroy(struct unet_msg_ep *mep);
struct unet_ep *unet_msg_unet(struct unet_msg_ep *mep);

/* Start reliable messaging on an open U-Net channel. Both ends must do it;
 * it returns at once and the handshake completes in unet_msg_poll (messages
 * sent meanwhile are queued). Attaching a failed channel starts it afresh.
 * -ENOTCONN (no open U-Net channel), -EALREADY (attached), -ENOMEM (every
 * stage_size chunk of the segment is taken by another channel). */
int unet_msg_attach(struct unet_msg_ep *mep, unsigned chan);
/* Stop, dropping anything unsent; outstanding requests fail with -ECONNRESET.
 * The peer is told (best effort) and its channel fails with -ECONNRESET. */
int unet_msg_detach(struct unet_msg_ep *mep, unsigned chan);
/* 0 when established, -EINPROGRESS during the handshake, -ENOTCONN when not
 * attached, or why the channel failed: -ECONNRESET (peer died, detached or
 * restarted), -ETIMEDOUT (dead_ms), -EMSGSIZE (the peer's buffers are
 * smaller than the fragments of messages queued before the handshake; with
 * nothing queued the fragments just shrink). A failed channel stays failed
 * until detached or re-attached. */
int unet_msg_status(struct unet_msg_ep *mep, unsigned chan);

/* Register the handler for message `type` (0..UNET_MSG_TYPE_USER_MAX). */
int unet_msg_handle(struct unet_msg_ep *mep, uint8_t type, unet_msg_handler fn, void *arg);

/* Queue a one-way message. Returns 0, -EAGAIN when the channel's staging
 * ring has no room (poll and retry), -EMSGSIZE above UNET_MSG_MAX,
 * -ENOTCONN / -ECONNRESET for a channel not attached / failed. */
int unet_msg_send(struct unet_msg_ep *mep, unsigned chan, uint8_t type, const void *buf,
		  uint32_t len);

/* Queue a request; the reply (up to `cap` bytes) is written to `reply` and
 * announced by a completion (unet_msg_poll_comp) carrying `ctx`. Returns
 * the request id (> 0) or a negative code (as unet_msg_send, plus -EBUSY
 * when max_reqs requests are outstanding). */
int64_t unet_msg_request(struct unet_msg_ep *mep, unsigned chan, uint8_t type, const void *buf,
			 uint32_t len, void *reply, uint32_t cap, void *ctx);

/* Answer request `m` (only inside its handler, or later with a copy of m's
 * chan and req_id). */
int unet_msg_reply(struct unet_msg_ep *mep, const struct unet_msg *m, const void *buf,
		   uint32_t len);

/* Make progress: receive and dispatch up to `budget` messages, send and
 * retransmit what is due, send acks. Returns messages dispatched (replies
 * included). Not from inside a handler (-EDEADLK), nor are unet_msg_wait
 * and unet_msg_idle; a handler that gets -EAGAIN from a send or reply
 * keeps a copy of what it needs and retries after the poll returns. */
int unet_msg_poll(struct unet_msg_ep *mep, unsigned budget);

/* Reap request completions, oldest first. Returns the count. */
int unet_msg_poll_comp(struct unet_msg_ep *mep, struct unet_msg_comp *c, unsigned max);

/* Poll until request `req_id` completes or `timeout_ms` passes, blocking
 * (unet_wait) when idle. Fills *c; returns 0, or -ETIMEDOUT (the request
 * stays outstanding), or -EINVAL for an id that is not outstanding. Other
 * requests' completions that arrive meanwhile stay queued. */
int unet_msg_wait(struct unet_msg_ep *mep, int64_t req_id, int timeout_ms,
		  struct unet_msg_comp *c);

/* Block until something arrives or timeout_ms passes (spins, then sleeps
 * on the endpoint's fd, bounded by the next retransmit deadline). Sends
 * owed acks first. Returns 1 when there is work for unet_msg_poll, 0 on
 * timeout. */
int unet_msg_idle(struct unet_msg_ep *mep, int timeout_ms);

void unet_msg_get_stats(const struct unet_msg_ep *mep, struct unet_msg_stats *st);

#ifdef __cplusplus
}
#endif
#endif /* UNET_MSG_H */
