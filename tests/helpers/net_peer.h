/*
 * net_peer.h - an endpoint on any NIC for the network tests (xdp, udp):
 * open by URI, receive with a deadline, send until accepted, and a byte
 * pattern tied to a sequence number so a lost, duplicated, reordered or
 * torn message shows. No cmocka here: forked children use it, and report
 * through exit codes.
 */
#ifndef TESTS_HELPERS_NET_PEER_H
#define TESTS_HELPERS_NET_PEER_H

#include <stddef.h>
#include <stdint.h>

#include "unet/unet.h"

struct np {
	struct unet_nic *nic;
	struct unet_ep *ep;
	uint8_t *seg;
	size_t seg_size;
};

/* Open NIC `uri` and endpoint `name`. 0 or the failing code. */
int np_open(struct np *p, const char *uri, const char *name, const struct unet_ep_attr *attr);
void np_close(struct np *p);
/* Channel to "IP:PORT". */
int np_chan(struct np *p, const char *ip, unsigned port, int timeout_ms);
/* At least one descriptor within timeout_ms: the count, 0 on timeout, or
 * a negative code. Blocks in unet_wait between tries. */
int np_recv(struct np *p, struct unet_desc *d, unsigned max, int timeout_ms);
/* Send one descriptor, reaping completions while the queue is full. */
int np_send(struct np *p, const struct unet_desc *d, int timeout_ms);
const uint8_t *np_payload(struct np *p, const struct unet_desc *d);

void np_fill(uint8_t *p, uint32_t len, uint64_t seq);
int np_check(const uint8_t *p, uint32_t len, uint64_t seq); /* 0 when intact */

#endif /* TESTS_HELPERS_NET_PEER_H */
