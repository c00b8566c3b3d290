/*
 * msg_wire.c - parsing of msg fragments (format in msg_wire.h).
 *
 * One small function on purpose: everything a peer can put on the wire
 * passes through it before any channel state is touched, and it is the
 * target of the libFuzzer harness (tests/fuzz/fuzz_msg.c). It reads only
 * inside [buf, buf+len) and accepts a fragment only if every field that can
 * be checked without channel state is consistent.
 */
#include <errno.h>

#include "msg_wire.h"

int unet__msg_parse(const void *buf, uint32_t len, struct msg_frag *f)
{
	const uint8_t *p = buf;

	if (!p || len < MSG_HDR || p[3] != MSG_WIRE_VERSION)
		return -EBADMSG;
	f->op = p[0];
	f->flags = p[1];
	f->type = p[2];
	f->epoch = msg_get32(p + 4);
	f->seq = msg_get32(p + 8);
	f->ack = msg_get32(p + 12);
	f->tag = f->echo = f->credit = f->maxfrag = f->sack = 0;
	f->has_sack = 0;
	f->status = 0;
	f->payload = p + MSG_HDR;
	f->plen = len - MSG_HDR;
	if (f->epoch == 0)
		return -EBADMSG;

	switch (f->op) {
	case MSG_OP_DATA: {
		uint8_t tagged = f->flags & (MSG_F_REQ | MSG_F_REPLY);

		if (f->flags & ~(MSG_F_FIRST | MSG_F_LAST | MSG_F_REQ | MSG_F_REPLY | MSG_F_NACK))
			return -EBADMSG;
		if (tagged == (MSG_F_REQ | MSG_F_REPLY) || (tagged && !(f->flags & MSG_F_FIRST)))
			return -EBADMSG;
		if (tagged) {
			if (f->plen < MSG_TAG)
				return -EBADMSG;
			f->tag = msg_get32(f->payload);
			if (f->tag == 0)
				return -EBADMSG;
			f->payload += MSG_TAG;
			f->plen -= MSG_TAG;
		}
		if (f->flags & MSG_F_NACK) {
			/* A bare status: one fragment, negative errno. */
			if (!(f->flags & MSG_F_REPLY) || !(f->flags & MSG_F_LAST) || f->plen != 4)
				return -EBADMSG;
			f->status = (int32_t)msg_get32(f->payload);
			if (f->status >= 0 || f->status < -4095)
				return -EBADMSG;
		}
		return 0;
	}
	case MSG_OP_ACK:
		if (f->flags & ~(MSG_F_PING | MSG_F_PONG) || (f->plen != 0 && f->plen != MSG_SACK))
			return -EBADMSG;
		if (f->plen == MSG_SACK) {
			f->has_sack = 1;
			f->sack = msg_get32(f->payload);
			f->payload += MSG_SACK;
			f->plen = 0;
		}
		return 0;
	case MSG_OP_RST:
		return f->flags || f->plen != 0 ? -EBADMSG : 0;
	case MSG_OP_SYN:
		if (f->flags & ~MSG_F_NEED || len != MSG_SYN_LEN)
			return -EBADMSG;
		f->echo = msg_get32(f->payload);
		f->credit = msg_get32(f->payload + 4);
		f->maxfrag = msg_get32(f->payload + 8);
		f->payload += 12;
		f->plen = 0;
		if (f->credit == 0 || f->maxfrag < MSG_MIN_FRAG)
			return -EBADMSG;
		return 0;
	default:
		return -EBADMSG;
	}
}
