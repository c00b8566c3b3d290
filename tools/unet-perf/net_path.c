/*
 * net_path.c - what the compare-net paths share: the wire configuration,
 * entering a side, the page through which the responder reports back, and
 * the fixed-window receive count of one-way streaming (see net.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>

#include "net.h"

struct net_cfg net_cfg;
struct net_report net_report[NR_MAX];

int net_side_enter(int side)
{
	int rc = net_ns_enter(&net_cfg.ns, side);

	return rc < 0 ? rc : perf_pin(net_cfg.cpus[side]);
}

struct net_shared *net_shared_map(void)
{
	void *p = mmap(NULL, sizeof(struct net_shared), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void net_shared_done(struct net_shared *sh, int which)
{
	struct net_report *r = &net_report[which];

	if (!sh)
		return;
	/* A path may run more than once (rate rounds): counts add up. */
	memcpy(r->info, sh->info, sizeof(r->info));
	r->tx_sent += sh->tx_sent;
	r->rx_in_window += sh->rx_in_window;
	r->rx_dropped += sh->rx_dropped;
	r->rx_reordered += sh->rx_reordered;
	r->rx_duplicated += sh->rx_duplicated;
	r->tx_cpu_ns += sh->tx_cpu_ns;
	r->valid = true;
	munmap(sh, sizeof(*sh));
}

void net_window_begin(struct net_window *w)
{
	memset(w, 0, sizeof(*w));
}

int net_window_idle(struct net_window *w, uint64_t now)
{
	if (!w->quiet_since)
		w->quiet_since = now;
	if (!w->t_first)
		return now - w->quiet_since > (uint64_t)PERF_STALL_MS * 1000000ull ? -ETIMEDOUT : 0;
	/* The sender goes on NET_TAIL_MS past our window; what it sends then
	 * is drained, not counted, and the run ends once the wire is quiet. */
	return now > w->t_end && now - w->quiet_since > (uint64_t)NET_QUIET_MS * 1000000ull;
}

int net_seqs_init(struct net_seqs *s)
{
	memset(s, 0, sizeof(*s));
	/* Seq 0 is never sent, so zeroed slots match nothing. */
	s->seen = calloc(NET_SEQS, sizeof(*s->seen));
	return s->seen ? 0 : -ENOMEM;
}

void net_seqs_free(struct net_seqs *s)
{
	free(s->seen);
	s->seen = NULL;
}

uint64_t net_thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
