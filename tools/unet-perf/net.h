/*
 * net.h - what the files of `unet-perf compare-net` share (net_*.c).
 *
 * compare-net measures paths over a real (virtual) wire: one veth pair
 * between two network namespaces it creates itself (net_ns.c). Side 0 (the
 * initiator) lives in the first namespace, side 1 (the responder) in the
 * second. The paths (net_unet.c: U-Net endpoints on the xdp and udp NICs;
 * net_kudp.c: plain kernel UDP sockets) are ordinary struct perf_path
 * values driven by the shared runner (runner.c), so they are timed,
 * pinned and reported exactly like the paths of `compare`; the only new
 * thing is that their attach() first enters the side's namespace and
 * re-pins there.
 *
 * The wire facts (namespace, interface and address of each side), the CPUs
 * and the streaming window are set once in net_cfg by the mode before any
 * path runs, and reach the forked processes by inheritance. What a path
 * learns that the runner does not carry (each side's unet_ep_info line,
 * what the sender sent, the endpoints' drop counters) comes back through a
 * shared page the path maps in setup() and copies into net_report[] in
 * teardown(), in the initiator, after the responder is gone.
 */
#ifndef UNET_PERF_NET_H
#define UNET_PERF_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "perf.h"

#define NET_MAX_MSG 1472u /* IPv4 UDP payload in a 1500-byte veth MTU, no fragments */

/* ---- the namespaces (net_ns.c) ------------------------------------------ */

struct net_ns {
	char ns[2][32];	 /* namespace names, "unp-PID-a" / "unp-PID-b" */
	char dev[2][16]; /* dev[i] is the veth end inside ns[i] */
	char ip[2][16];	 /* ip[i] is dev[i]'s address, 10.88.S.{1,2}/24 */
	bool made[2];	 /* ns[i] was created and is not deleted yet */
};

/* NULL when namespaces and veth can be made here, else the reason. */
const char *net_ns_unavailable(void);
/* Create both namespaces and the veth pair, addresses and links up. Returns
 * 0 or -errno; on failure whatever was made is already removed. Also
 * removes "unp-PID-*" namespaces left by runs whose PID is dead. */
int net_ns_create(struct net_ns *n);
/* Kill what runs inside (only our children can), delete both namespaces
 * (and with them the veth). Async-signal-safe enough for a handler: fork,
 * execv and waitpid only. Idempotent. */
void net_ns_destroy(struct net_ns *n);
/* setns() the caller into ns[side]. 0 or -errno. */
int net_ns_enter(const struct net_ns *n, int side);

/* ---- what every path reads ---------------------------------------------- */

struct net_cfg {
	struct net_ns ns;
	int cpus[2];	    /* initiator, responder */
	unsigned window_ms; /* one-way streaming: receiver's counting window */
	char xdp_mode[8];   /* "auto", "native" or "generic" */
	uint32_t xdp_rx_bufs;
};
extern struct net_cfg net_cfg;

/* Enter side's namespace and pin to its CPU (after entering, so the pin is
 * the last word whatever setns does). 0 or -errno. */
int net_side_enter(int side);

/* Per path, what the runner does not carry. */
enum {
	NR_XDP,
	NR_XDP_GENERIC,
	NR_UDP_NIC,
	NR_UDP_BLOCKING,
	NR_UDP_BUSY,
	NR_PPS_XDP,
	NR_PPS_XDP_GENERIC,
	NR_PPS_UDP_NIC,
	NR_PPS_KERNEL,
	NR_MAX
};

struct net_report {
	bool valid;
	char info[2][256];     /* per side: unet_ep_info(), or the socket set-up */
	uint64_t tx_sent;      /* streaming: messages the sender handed over, all runs */
	uint64_t rx_in_window; /* ... and those the receiver counted in its windows */
	uint64_t rx_dropped;   /* receiver's drop counters after the runs */
	uint64_t rx_reordered, rx_duplicated; /* see struct net_seqs */
	uint64_t tx_cpu_ns; /* sender's CPU time while streaming (softirq work included) */
};
extern struct net_report net_report[NR_MAX];

/* The shared page a path maps in setup(): the responder writes its side. */
struct net_shared {
	char info[2][256];
	uint64_t tx_sent;
	uint64_t rx_in_window;
	uint64_t rx_dropped;
	uint64_t rx_reordered, rx_duplicated;
	uint64_t tx_cpu_ns;
};
struct net_shared *net_shared_map(void); /* NULL on failure */
/* Copy into net_report[which] and unmap. */
void net_shared_done(struct net_shared *sh, int which);

/*
 * One-way streaming over a fixed window, the same for every path: the
 * sender sends flat out for window + NET_TAIL_MS; the receiver counts, from
 * the first message it gets, what arrives within window_ms, then drains
 * until the wire has been quiet for NET_QUIET_MS so the next run starts
 * clean. The runner's rate (received / (last arrival - sender's start)) is
 * then the receiver's packet rate.
 */
#define NET_TAIL_MS  50
#define NET_QUIET_MS 30

struct net_window {
	uint64_t t_first, t_end; /* ns; t_first 0 until the first message */
	uint64_t counted, last_ns, quiet_since;
};
void net_window_begin(struct net_window *w);
/* n messages just arrived at `now`. */
static inline void net_window_add(struct net_window *w, uint64_t now, uint64_t n)
{
	if (!w->t_first) {
		w->t_first = now;
		w->t_end = now + (uint64_t)net_cfg.window_ms * 1000000ull;
	}
	if (now <= w->t_end) {
		w->counted += n;
		w->last_ns = now;
	}
	w->quiet_since = 0;
}
/* Nothing arrived at `now`: 1 when the run is over, 0 to go on, or
 * -ETIMEDOUT when nothing came at all for PERF_STALL_MS. */
int net_window_idle(struct net_window *w, uint64_t now);

/*
 * What the receiver of a stream checks in each message's sequence number.
 * UDP promises no order, and flat-out streaming over veth does deliver an
 * occasional message a few places late (seen with the xdp NIC), so order
 * is counted, not enforced; a number seen twice within the last NET_SEQS
 * is a duplicate, which no path here should produce. Both go into the
 * report.
 */
#define NET_SEQS (1u << 16)
struct net_seqs {
	uint64_t *seen; /* NET_SEQS slots, by seq modulo NET_SEQS */
	uint64_t last;	/* highest seen */
	uint64_t reordered, duplicated;
};
int net_seqs_init(struct net_seqs *s); /* 0 or -ENOMEM */
void net_seqs_free(struct net_seqs *s);
static inline void net_seqs_note(struct net_seqs *s, uint64_t seq)
{
	uint64_t *slot = &s->seen[seq & (NET_SEQS - 1)];

	if (*slot == seq)
		s->duplicated++;
	else if (seq < s->last)
		s->reordered++;
	*slot = seq;
	if (seq > s->last)
		s->last = seq;
}

/* CPU time of the calling thread, ns. Without IRQ time accounting (as here)
 * the softirq work a send triggers -- the whole receive side of the veth --
 * runs and is charged in the sender's context, so sender CPU per packet is
 * the path's full per-packet cost, whatever share of a CPU it got. */
uint64_t net_thread_cpu_ns(void);

/* ---- the paths (net_unet.c, net_kudp.c) ---------------------------------- */

extern const struct perf_path net_path_xdp;	     /* latency, --xdp-mode (auto) */
extern const struct perf_path net_path_xdp_generic;  /* latency, generic XDP */
extern const struct perf_path net_path_udp_nic;	     /* latency */
extern const struct perf_path net_path_udp_blocking; /* latency */
extern const struct perf_path net_path_udp_busy;     /* latency */
extern const struct perf_path net_path_pps_xdp;	     /* 64 B one-way rate */
extern const struct perf_path net_path_pps_xdp_generic;
extern const struct perf_path net_path_pps_udp_nic; /* 64 B one-way rate */
extern const struct perf_path net_path_pps_kernel;  /* sendmmsg / recvmmsg */

#endif /* UNET_PERF_NET_H */
