/*
 * msg_wire.h - the msg layer's fragment format, and the one function that
 * parses it.
 *
 * Every U-Net message the msg layer sends is one fragment:
 *
 *   0      1      2      3      4          8          12         16
 *   | op   | flags| type | ver  | epoch    | seq      | ack      | [tag] payload
 *
 * little-endian, 16 bytes, so a fragment with up to 32 payload bytes (28
 * for the first fragment of a request or reply, which carries a 4-byte
 * request tag) rides inline in a U-Net descriptor. `epoch` is the sender's
 * session epoch (random, non-zero, new at every attach): the receiver
 * accepts data only from the epoch it learned in the handshake, so
 * fragments of an older incarnation of the peer are rejected. `seq` numbers
 * data fragments, `ack` is the cumulative ack (next seq the sender of the
 * fragment expects), piggybacked on everything.
 *
 * Ops:
 *   DATA  one fragment of a message; FIRST/LAST delimit messages, REQ or
 *         REPLY (first fragment only) add the tag; NACK marks a reply that
 *         carries only a negative status (int32 payload): no handler.
 *   ACK   a standalone cumulative ack, optionally followed (lossy NICs) by
 *         a 32-bit selective-ack bitmap: bit i set = fragment ack+1+i is
 *         held by the receiver. PING asks the peer to answer with
 *         an ack flagged PONG whose seq echoes the PING's seq (the sender's
 *         snd_nxt when it pinged): a liveness probe while replies are
 *         awaited, and on shm, whose channels are FIFO, the retransmission
 *         probe (see msg_proto.c).
 *   SYN   handshake (body: echo epoch, credit, max fragment); NEED asks the
 *         peer to answer with its own SYN.
 *   RST   the sender detached: the receiver fails the channel.
 *
 * unet__msg_parse() checks everything that can be checked without channel
 * state; the channel code checks epochs, sequence numbers and message
 * structure. Anything else is a bug in the peer: dropped, counted.
 */
#ifndef UNET_MSG_WIRE_H
#define UNET_MSG_WIRE_H

#include <stdint.h>

#define MSG_WIRE_VERSION 1
#define MSG_HDR		 16u
#define MSG_TAG		 4u
#define MSG_SYN_LEN	 (MSG_HDR + 12u)
#define MSG_SACK	 4u
#define MSG_MIN_FRAG	 64u /* smallest max-fragment a peer may advertise */

enum { MSG_OP_DATA = 1, MSG_OP_ACK = 2, MSG_OP_SYN = 3, MSG_OP_RST = 4 };

/* DATA flags */
#define MSG_F_FIRST 0x01
#define MSG_F_LAST  0x02
#define MSG_F_REQ   0x04
#define MSG_F_REPLY 0x08
#define MSG_F_NACK  0x10
/* ACK flags */
#define MSG_F_PING 0x20
#define MSG_F_PONG 0x80
/* SYN flags */
#define MSG_F_NEED 0x40

/* A parsed fragment. `payload` points into the parsed buffer. */
struct msg_frag {
	uint8_t op, flags, type;
	uint32_t epoch, seq, ack;
	uint32_t tag;			/* DATA with REQ or REPLY */
	uint32_t echo, credit, maxfrag; /* SYN */
	uint32_t sack;			/* ACK: bitmap after `ack`, when has_sack */
	uint8_t has_sack;
	int32_t status; /* NACK */
	const uint8_t *payload;
	uint32_t plen;
};

/* Parse `len` bytes at `buf`. Returns 0, or -EBADMSG for anything
 * malformed (and then *f is meaningless). */
int unet__msg_parse(const void *buf, uint32_t len, struct msg_frag *f);

static inline void msg_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t msg_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Write a header; the ack field is (re)written at each transmission. */
static inline void msg_put_hdr(uint8_t *p, uint8_t op, uint8_t flags, uint8_t type, uint32_t epoch,
			       uint32_t seq, uint32_t ack)
{
	p[0] = op;
	p[1] = flags;
	p[2] = type;
	p[3] = MSG_WIRE_VERSION;
	msg_put32(p + 4, epoch);
	msg_put32(p + 8, seq);
	msg_put32(p + 12, ack);
}

#endif /* UNET_MSG_WIRE_H */
