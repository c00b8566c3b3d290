/*
 * shm_peer.h - small conveniences for tests that drive U-Net endpoints from
 * several processes: open a NIC and an endpoint in one call, receive with a
 * deadline, send while reaping completions, and a byte pattern that ties a
 * payload to its sequence number so any lost, duplicated, reordered or torn
 * message shows. No cmocka here: children use these too.
 */
#ifndef TESTS_HELPERS_SHM_PEER_H
#define TESTS_HELPERS_SHM_PEER_H

#include <stdint.h>

#include "unet/unet.h"

struct peer {
	struct unet_nic *nic;
	struct unet_ep *ep;
	uint8_t *seg;
	size_t seg_size;
};

/* Open "shm" and create endpoint `name`. Returns 0 or the failing code. */
int peer_open(struct peer *p, const char *name, const struct unet_ep_attr *attr);
void peer_close(struct peer *p);

/* Receive at least one descriptor within timeout_ms, blocking in unet_wait
 * between tries. Returns the count, 0 on timeout, or a negative code. */
int peer_recv(struct peer *p, struct unet_desc *d, unsigned max, int timeout_ms);

/* Send one descriptor, reaping (and dropping) completions while the send
 * queue is full, until timeout_ms. Returns 0 or the code unet_send gave. */
int peer_send(struct peer *p, const struct unet_desc *d, int timeout_ms);

/* Bytes of message `seq`: pattern_fill writes, pattern_check returns 0 when
 * p[0..len) is exactly what pattern_fill(seq) wrote. */
void pattern_fill(uint8_t *p, uint32_t len, uint64_t seq);
int pattern_check(const uint8_t *p, uint32_t len, uint64_t seq);

/* The payload of a received descriptor, inline or in the segment. */
const uint8_t *peer_payload(struct peer *p, const struct unet_desc *d);

#endif /* TESTS_HELPERS_SHM_PEER_H */
