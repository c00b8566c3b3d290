/*
 * msg_internal.h - what layers built on msg inside libunet (rdma) may use
 * beyond the public contract in unet/msg.h.
 *
 * Message types 240..255 are reserved for them: the public unet_msg_handle
 * and unet_msg_send refuse those types so an application can never collide
 * with, or impersonate, a library protocol.
 */
#ifndef UNET_MSG_INTERNAL_H
#define UNET_MSG_INTERNAL_H

#include <stdint.h>

#include "unet/msg.h"

#define UNET_MSG_TYPE_RESERVED_MIN 240

/* Register a handler for a reserved type (240..255). */
int unet__msg_handle_reserved(struct unet_msg_ep *mep, uint8_t type, unet_msg_handler fn,
			      void *arg);

/* Queue a one-way message of any type (0..255) whose body is the
 * concatenation of [a, a+alen) and [b, b+blen): a protocol header and a
 * payload without an intermediate copy. Returns as unet_msg_send. */
int unet__msg_send2(struct unet_msg_ep *mep, unsigned chan, uint8_t type, const void *a,
		    uint32_t alen, const void *b, uint32_t blen);

/* State of a channel at the msg level: 0 established, -EINPROGRESS while
 * the handshake runs, -ENOTCONN not attached, or the failure code
 * (-ECONNRESET, -ETIMEDOUT, -EMSGSIZE) of a failed channel. */
int unet__msg_chan_state(struct unet_msg_ep *mep, unsigned chan);

/* Called (from inside unet_msg_poll/send/detach) when a channel fails or is
 * detached, after its requests have completed, so a layer above can fail
 * its own operations on that channel. One hook per endpoint; NULL clears. */
typedef void (*unet_msg_fail_hook)(struct unet_msg_ep *mep, unsigned chan, int code, void *arg);
void unet__msg_on_fail(struct unet_msg_ep *mep, unet_msg_fail_hook fn, void *arg);

#endif /* UNET_MSG_INTERNAL_H */
