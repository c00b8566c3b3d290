/*
 * xdp_prog.h - the XDP program an interface's xdp endpoints share: attach
 * it, join it, leave it, and clean up after processes that died holding it.
 *
 * Life cycle, per endpoint:
 *   xdp_prog_open()     lock the interface, sweep entries of dead owners,
 *                       attach the program (or join the one attached),
 *                       claim the RX queue; returns with the lock held
 *   ...create and bind the AF_XDP socket on that queue...
 *   xdp_prog_publish()  insert socket and port into the maps, unlock
 *   xdp_prog_close()    remove them; the last one out detaches the program
 * xdp_prog_close() also undoes a failed open/publish at any stage.
 */
#ifndef UNET_XDP_PROG_H
#define UNET_XDP_PROG_H

#include <stdbool.h>
#include <stdint.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include "bpf/unet_xdp_maps.h"

enum unet_xdp_mode { UNET_XDP_AUTO = 0, UNET_XDP_NATIVE, UNET_XDP_GENERIC };

struct xdp_prog {
	int ifindex;
	uint32_t queue;
	int prog_fd, ports_fd, xsks_fd;
	uint32_t mode_flags; /* XDP_FLAGS_DRV_MODE or XDP_FLAGS_SKB_MODE, as attached */
	bool native;
	bool attached_here; /* we attached it (rather than joined) */
	int lock_fd;  /* interface lock, while held */
	int queue_fd; /* our claim on the queue, for the endpoint's lifetime */
	struct unet_port_key key;
	bool published;
};

/* Returns 0 with the interface lock held; -EBUSY when another program (not
 * ours) is attached, the queue is taken, or the attached program runs in
 * another mode than `mode` asks; -EPERM without privileges; -errno. On
 * failure call xdp_prog_close() all the same. */
int xdp_prog_open(struct xdp_prog *p, int ifindex, uint32_t queue, enum unet_xdp_mode mode);

/* Steer (addr, port) to `xsk_fd` (bound to p->queue), frames longer than
 * `max_frame` being dropped and counted. Releases the lock. -EADDRINUSE when
 * another endpoint owns that address and port. */
int xdp_prog_publish(struct xdp_prog *p, uint32_t addr, uint16_t port, uint32_t max_frame,
		     int xsk_fd);

/* Drops counted by the program for our port. */
int xdp_prog_counters(const struct xdp_prog *p, uint64_t *toobig, uint64_t *wrongq);

void xdp_prog_close(struct xdp_prog *p);

/* libbpf and libxdp print their warnings to stderr by default; library code
 * must not. Silence them around our calls and restore what the application
 * had set. */
struct xdp_quiet {
	libbpf_print_fn_t bpf_fn;
	libxdp_print_fn_t xdp_fn;
};
void xdp_quiet_begin(struct xdp_quiet *q);
void xdp_quiet_end(const struct xdp_quiet *q);

#endif /* UNET_XDP_PROG_H */
