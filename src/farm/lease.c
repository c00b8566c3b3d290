/*
 * lease.c - the lease thread (lease.h has the protocol and the rules).
 *
 * One thread, one UDP socket, one eventfd to wake it. Each turn: send the
 * renewals that are due, check the expiries that are due, recompute the
 * serving flag, then sleep in ppoll until the next of those instants or a
 * datagram. State is under one mutex, held only while computing; callbacks
 * run after it is released, so they may read the lease (not set its view).
 *
 * Per-member state is indexed like the view's members; a new view carries
 * over what is known of members that stay (when we last heard them) and
 * gives newcomers a whole lease from now.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lease.h"

#define LEASE_MAGIC 0x464c5345u /* "FLSE" */
#define ROUNDS	    64u		/* REQs remembered, to match their GRANTs */

enum {
	MSG_REQ = 1,
	MSG_GRANT,
	MSG_NOTIFY,
	MSG_PROBE,
	MSG_PROBE_ACK,
	MSG_PING,
	MSG_PONG,
	MSG_PROBE_NACK,
};

struct lease_msg {
	uint32_t magic;
	uint32_t type;
	uint32_t from, to;
	uint64_t cluster;   /* attr.cluster: two clusters on one host never mix */
	uint64_t inc;	    /* the sender's incarnation */
	uint64_t config_id; /* the sender's view */
	uint64_t seq;
};

struct round {
	uint64_t seq;
	uint64_t t_sent;
	uint64_t acks; /* bit i: member index i granted it */
};

enum { EV_MEMBER = 1, EV_CM, EV_SERVING, EV_NEWER };
struct event {
	int type;
	uint32_t id;
	uint64_t cfg;
	bool on;
};

struct farm_lease {
	struct farm_lease_attr a;
	uint64_t lease_ns, renew_ns;
	int fd, efd;
	struct sockaddr_in me;
	pthread_t thr;
	bool started;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	bool blocked;
	struct farm_lease_view v;
	struct sockaddr_in sa[FARM_MAX_MEMBERS];
	int self_idx, cm_idx;		  /* -1: not in the view */
	uint64_t heard[FARM_MAX_MEMBERS]; /* CM: last REQ/GRANT from member i */
	bool expired[FARM_MAX_MEMBERS];	  /* CM: reported for this view */
	uint64_t cm_heard;		  /* member: last REQ/GRANT from the CM */
	bool cm_expired;
	uint64_t seq, next_send, last_send, last_grant;
	uint64_t last_tick; /* the last tick (stall detection) */
	struct round rounds[ROUNDS];
	uint64_t probe_seq, probe_acks, probe_nacks;
	uint64_t ping_seq;
	bool ping_ok;
	uint64_t newer_seen;

	int serving;	      /* atomic */
	uint64_t valid_until; /* atomic */
	struct farm_lease_stats st;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int parse_addr(const char *s, struct sockaddr_in *out)
{
	char ip[32];
	const char *c = strrchr(s, ':');
	char *end;
	long port;

	if (!c || c == s || (size_t)(c - s) >= sizeof(ip))
		return -EINVAL;
	memcpy(ip, s, (size_t)(c - s));
	ip[c - s] = 0;
	port = strtol(c + 1, &end, 10);
	if (*end || end == c + 1 || port <= 0 || port > 65535)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	out->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, ip, &out->sin_addr) != 1)
		return -EINVAL;
	return 0;
}

static int view_index(const struct farm_lease_view *v, uint32_t id)
{
	for (uint32_t i = 0; i < v->n; i++)
		if (v->m[i].id == id)
			return (int)i;
	return -1;
}

static void send_to(struct farm_lease *l, int idx, uint32_t type, uint64_t seq, uint64_t cfg)
{
	struct lease_msg m = {.magic = LEASE_MAGIC,
			      .cluster = l->a.cluster,
			      .type = type,
			      .from = l->a.self,
			      .to = l->v.m[idx].id,
			      .inc = l->a.inc,
			      .config_id = cfg,
			      .seq = seq};

	if (l->blocked) {
		l->st.dropped++;
		return;
	}
	/* A full socket buffer or an unreachable peer is a lost renewal,
	 * which the lease absorbs; nothing to do about it here. */
	if (sendto(l->fd, &m, sizeof(m), MSG_DONTWAIT, (struct sockaddr *)&l->sa[idx],
		   sizeof(l->sa[idx])) == (ssize_t)sizeof(m)) {
		if (type == MSG_REQ)
			l->st.req_sent++;
		else if (type == MSG_GRANT)
			l->st.grant_sent++;
	}
}

static void reply(struct farm_lease *l, const struct sockaddr_in *to, const struct lease_msg *q,
		  uint32_t type)
{
	struct lease_msg m = {.magic = LEASE_MAGIC,
			      .cluster = l->a.cluster,
			      .type = type,
			      .from = l->a.self,
			      .to = q->from,
			      .inc = l->a.inc,
			      .config_id = l->v.config_id,
			      .seq = q->seq};

	if (sendto(l->fd, &m, sizeof(m), MSG_DONTWAIT, (const struct sockaddr *)to, sizeof(*to)) ==
		(ssize_t)sizeof(m) &&
	    type == MSG_GRANT)
		l->st.grant_sent++;
}

static bool is_cm(const struct farm_lease *l)
{
	return l->self_idx >= 0 && l->self_idx == l->cm_idx;
}

/* Grants the CM needs: with itself, a majority of the view. */
static uint32_t majority_of_others(const struct farm_lease *l)
{
	return l->v.n / 2;
}

/* attr.until_out follows the lease (lock held). */
static void publish_until(struct farm_lease *l)
{
	uint64_t u;

	if (!l->a.until_out)
		return;
	if (l->self_idx < 0 || l->v.n == 0)
		u = 0;
	else if (is_cm(l) && l->v.n == 1)
		u = UINT64_MAX;
	else
		u = __atomic_load_n(&l->valid_until, __ATOMIC_RELAXED);
	__atomic_store_n(l->a.until_out, u, __ATOMIC_RELEASE);
}

static void extend(struct farm_lease *l, uint64_t until, uint64_t now)
{
	uint64_t cur = __atomic_load_n(&l->valid_until, __ATOMIC_RELAXED);

	if (l->last_grant && now - l->last_grant > l->st.max_grant_age_ns && now < cur)
		l->st.max_grant_age_ns = now - l->last_grant;
	l->last_grant = now;
	if (until > cur)
		__atomic_store_n(&l->valid_until, until, __ATOMIC_RELEASE);
	publish_until(l);
}

/* A datagram arrived: update state (lock held); may queue events. */
static void handle(struct farm_lease *l, const struct lease_msg *q, const struct sockaddr_in *src,
		   uint64_t now, struct event *ev, int *nev)
{
	int from = view_index(&l->v, q->from);
	bool known = from >= 0 && l->v.m[from].inc == q->inc;

	if (q->config_id > l->v.config_id && q->config_id > l->newer_seen) {
		l->newer_seen = q->config_id;
		ev[(*nev)++] = (struct event){.type = EV_NEWER, .cfg = q->config_id};
	}
	switch (q->type) {
	case MSG_REQ:
		l->st.req_recv++;
		if (l->self_idx < 0)
			break;
		if (is_cm(l)) {
			/* Never renew a member already reported expired: the
			 * CM is about to remove it and it must stay stopped. */
			if (!known || l->expired[from])
				break;
			l->heard[from] = now;
			reply(l, src, q, MSG_GRANT);
		} else if ((known && from == l->cm_idx) || q->config_id > l->v.config_id) {
			if (known && from == l->cm_idx) {
				l->cm_heard = now;
				l->cm_expired = false;
			}
			reply(l, src, q, MSG_GRANT);
		}
		break;
	case MSG_GRANT:
		l->st.grant_recv++;
		if (!known || l->self_idx < 0)
			break;
		if (is_cm(l)) {
			struct round *r = &l->rounds[q->seq % ROUNDS];
			l->heard[from] = now;
			if (r->seq != q->seq || (r->acks & (1ull << from)))
				break;
			r->acks |= 1ull << from;
			if ((uint32_t)__builtin_popcountll(r->acks) >= majority_of_others(l))
				extend(l, r->t_sent + l->lease_ns, now);
		} else if (from == l->cm_idx) {
			struct round *r = &l->rounds[q->seq % ROUNDS];
			l->cm_heard = now;
			l->cm_expired = false;
			if (r->seq == q->seq)
				extend(l, r->t_sent + l->lease_ns, now);
		}
		break;
	case MSG_NOTIFY:
		break; /* the config id did the work above */
	case MSG_PROBE:
		/* Agree to a takeover only when we, too, cannot hear the CM,
		 * and only for the configuration we are in. */
		if (!known || l->self_idx < 0)
			break;
		/* "Not yet" is an answer too: the prober asks again at once
		 * rather than waiting out its timeout. */
		reply(l, src, q,
		      !is_cm(l) && q->config_id == l->v.config_id &&
			      now >= l->cm_heard + l->lease_ns
			  ? MSG_PROBE_ACK
			  : MSG_PROBE_NACK);
		break;
	case MSG_PROBE_ACK:
	case MSG_PROBE_NACK:
		if (known && q->seq == l->probe_seq) {
			if (q->type == MSG_PROBE_ACK)
				l->probe_acks |= 1ull << from;
			else
				l->probe_nacks |= 1ull << from;
			pthread_cond_broadcast(&l->cond);
		}
		break;
	case MSG_PING:
		/* Anyone may ask whether our lease socket is reachable: a
		 * removed node checks the path to the CM before rejoining. */
		reply(l, src, q, MSG_PONG);
		break;
	case MSG_PONG:
		if (q->seq == l->ping_seq) {
			l->ping_ok = true;
			pthread_cond_broadcast(&l->cond);
		}
		break;
	default:
		l->st.bad++;
	}
}

/* Sends and expiries that are due (lock held). Returns the next instant
 * something is due. */
static uint64_t tick(struct farm_lease *l, uint64_t now, struct event *ev, int *nev)
{
	uint64_t next = now + l->renew_ns;
	bool serving;

	if (l->self_idx < 0 || l->v.n == 0) {
		serving = false;
		goto out;
	}
	/* This thread stood still (the VM stopped, or it was not scheduled):
	 * not having heard the others meanwhile says nothing about them, and
	 * their renewals wait in our socket. Expire nobody before a couple of
	 * renewal periods have passed since. Safe: a member's lease runs on
	 * its own clock from its own requests, never beyond what was granted,
	 * so removing it later than we could is always allowed. */
	if (l->last_tick && now - l->last_tick > 2 * l->renew_ns) {
		uint64_t floor = now + 2 * l->renew_ns - l->lease_ns;
		for (uint32_t i = 0; i < l->v.n; i++)
			if (l->heard[i] < floor)
				l->heard[i] = floor;
		if (l->cm_heard < floor)
			l->cm_heard = floor;
		l->st.stalls++;
	}
	l->last_tick = now;
	if (now >= l->next_send) {
		if (l->last_send && now - l->last_send > l->st.max_gap_ns)
			l->st.max_gap_ns = now - l->last_send;
		l->last_send = now;
		l->seq++;
		l->rounds[l->seq % ROUNDS] = (struct round){.seq = l->seq, .t_sent = now};
		if (is_cm(l)) {
			for (uint32_t i = 0; i < l->v.n; i++)
				if ((int)i != l->self_idx)
					send_to(l, (int)i, MSG_REQ, l->seq, l->v.config_id);
		} else if (l->cm_idx >= 0) {
			send_to(l, l->cm_idx, MSG_REQ, l->seq, l->v.config_id);
		}
		l->next_send = now + l->renew_ns;
	}
	if (l->next_send < next)
		next = l->next_send;
	if (is_cm(l)) {
		for (uint32_t i = 0; i < l->v.n; i++) {
			if ((int)i == l->self_idx || l->expired[i])
				continue;
			uint64_t end = l->heard[i] + l->lease_ns;
			if (now >= end) {
				l->expired[i] = true;
				l->st.expiries_seen++;
				ev[(*nev)++] = (struct event){
				    .type = EV_MEMBER, .id = l->v.m[i].id, .cfg = l->v.config_id};
			} else if (end < next) {
				next = end;
			}
		}
		serving = l->v.n == 1 || now < __atomic_load_n(&l->valid_until, __ATOMIC_RELAXED);
	} else {
		uint64_t end = l->cm_heard + l->lease_ns;
		if (!l->cm_expired && l->cm_idx >= 0) {
			if (now >= end) {
				l->cm_expired = true;
				l->st.expiries_seen++;
				ev[(*nev)++] = (struct event){
				    .type = EV_CM, .id = l->v.cm, .cfg = l->v.config_id};
			} else if (end < next) {
				next = end;
			}
		}
		serving = now < __atomic_load_n(&l->valid_until, __ATOMIC_RELAXED);
	}
	{
		uint64_t vu = __atomic_load_n(&l->valid_until, __ATOMIC_RELAXED);
		if (serving && vu > now && vu < next)
			next = vu;
	}
out:
	publish_until(l);
	if (serving != (bool)__atomic_load_n(&l->serving, __ATOMIC_RELAXED)) {
		__atomic_store_n(&l->serving, serving, __ATOMIC_RELEASE);
		ev[(*nev)++] = (struct event){.type = EV_SERVING, .on = serving};
	}
	return next;
}

static void fire(struct farm_lease *l, const struct event *ev, int n)
{
	for (int i = 0; i < n; i++) {
		const struct event *e = &ev[i];
		if (e->type == EV_MEMBER && l->a.on_member_expired)
			l->a.on_member_expired(l->a.arg, e->id, e->cfg);
		else if (e->type == EV_CM && l->a.on_cm_expired)
			l->a.on_cm_expired(l->a.arg, e->id, e->cfg);
		else if (e->type == EV_SERVING && l->a.on_serving)
			l->a.on_serving(l->a.arg, e->on);
		else if (e->type == EV_NEWER && l->a.on_newer)
			l->a.on_newer(l->a.arg, e->cfg);
	}
}

static void *lease_thread(void *arg)
{
	struct farm_lease *l = arg;
	struct event ev[FARM_MAX_MEMBERS + 8];

	if (l->a.realtime) {
		struct sched_param sp = {.sched_priority = 10};
		if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0)
			l->st.realtime = true;
	}
	for (;;) {
		int nev = 0;
		uint64_t now = now_ns(), next;

		pthread_mutex_lock(&l->lock);
		if (l->stop) {
			pthread_mutex_unlock(&l->lock);
			break;
		}
		next = tick(l, now, ev, &nev);
		pthread_mutex_unlock(&l->lock);
		fire(l, ev, nev);

		now = now_ns();
		struct pollfd p[2] = {{.fd = l->fd, .events = POLLIN},
				      {.fd = l->efd, .events = POLLIN}};
		uint64_t wait = next > now ? next - now : 0;
		struct timespec ts = {.tv_sec = (time_t)(wait / 1000000000ull),
				      .tv_nsec = (long)(wait % 1000000000ull)};
		if (ppoll(p, 2, &ts, NULL) <= 0)
			continue;
		if (p[1].revents) {
			uint64_t x;
			if (read(l->efd, &x, sizeof(x)) < 0) {
				/* woken all the same */
			}
		}
		if (!p[0].revents)
			continue;
		nev = 0;
		for (int k = 0; k < 64; k++) {
			struct lease_msg q;
			struct sockaddr_in src;
			socklen_t sl = sizeof(src);
			ssize_t got = recvfrom(l->fd, &q, sizeof(q), MSG_DONTWAIT,
					       (struct sockaddr *)&src, &sl);
			if (got < 0)
				break;
			pthread_mutex_lock(&l->lock);
			if (l->blocked) {
				l->st.dropped++;
			} else if (got != (ssize_t)sizeof(q) || q.magic != LEASE_MAGIC ||
				   q.cluster != l->a.cluster || q.to != l->a.self) {
				l->st.bad++;
			} else if (nev < (int)(sizeof(ev) / sizeof(ev[0])) - 4) {
				handle(l, &q, &src, now_ns(), ev, &nev);
			}
			pthread_mutex_unlock(&l->lock);
		}
		fire(l, ev, nev);
	}
	return NULL;
}

static void wake(struct farm_lease *l)
{
	uint64_t one = 1;

	if (write(l->efd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: the thread is awake anyway */
	}
}

int farm_lease_start(const struct farm_lease_attr *a, struct farm_lease **out)
{
	struct farm_lease *l;
	socklen_t sl;
	int rc;

	if (!a || !out || !a->self)
		return -EINVAL;
	*out = NULL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->a = *a;
	l->fd = l->efd = -1;
	if (!l->a.lease_ms)
		l->a.lease_ms = FARM_LEASE_DEFAULT_MS;
	if (!l->a.renew_ms)
		l->a.renew_ms = l->a.lease_ms / FARM_LEASE_RENEW_DIV;
	if (!l->a.renew_ms)
		l->a.renew_ms = 1;
	if (l->a.renew_ms >= l->a.lease_ms) {
		free(l);
		return -EINVAL;
	}
	l->lease_ns = (uint64_t)l->a.lease_ms * 1000000ull;
	l->renew_ns = (uint64_t)l->a.renew_ms * 1000000ull;
	l->self_idx = l->cm_idx = -1;
	{
		/* Priority inheritance: a SCHED_FIFO lease thread must not wait
		 * behind a busy application thread that was preempted while it
		 * held the lock (reading stats, say). */
		pthread_mutexattr_t ma;
		pthread_mutexattr_init(&ma);
		pthread_mutexattr_setprotocol(&ma, PTHREAD_PRIO_INHERIT);
		pthread_mutex_init(&l->lock, &ma);
		pthread_mutexattr_destroy(&ma);
	}
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&l->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	l->me.sin_family = AF_INET;
	if (inet_pton(AF_INET, a->bind ? a->bind : "127.0.0.1", &l->me.sin_addr) != 1) {
		rc = -EINVAL;
		goto fail;
	}
	l->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	l->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->fd < 0 || l->efd < 0) {
		rc = -errno;
		goto fail;
	}
	if (bind(l->fd, (struct sockaddr *)&l->me, sizeof(l->me))) {
		rc = -errno;
		goto fail;
	}
	sl = sizeof(l->me);
	getsockname(l->fd, (struct sockaddr *)&l->me, &sl);
	if ((rc = pthread_create(&l->thr, NULL, lease_thread, l))) {
		rc = -rc;
		goto fail;
	}
	l->started = true;
	*out = l;
	return 0;
fail:
	farm_lease_stop(l);
	return rc;
}

void farm_lease_stop(struct farm_lease *l)
{
	if (!l)
		return;
	if (l->started) {
		pthread_mutex_lock(&l->lock);
		l->stop = true;
		pthread_mutex_unlock(&l->lock);
		wake(l);
		pthread_join(l->thr, NULL);
	}
	if (l->fd >= 0)
		close(l->fd);
	if (l->efd >= 0)
		close(l->efd);
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

int farm_lease_addr(const struct farm_lease *l, char *buf, size_t len)
{
	char ip[INET_ADDRSTRLEN];
	int n;

	if (!l || !buf || !inet_ntop(AF_INET, &l->me.sin_addr, ip, sizeof(ip)))
		return -EINVAL;
	n = snprintf(buf, len, "%s:%u", ip, ntohs(l->me.sin_port));
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

int farm_lease_set_view(struct farm_lease *l, const struct farm_lease_view *v)
{
	struct sockaddr_in sa[FARM_MAX_MEMBERS];
	uint64_t heard[FARM_MAX_MEMBERS], now = now_ns();

	if (!l || !v || v->n > FARM_MAX_MEMBERS)
		return -EINVAL;
	for (uint32_t i = 0; i < v->n; i++)
		if (parse_addr(v->m[i].addr, &sa[i]))
			return -EINVAL;
	pthread_mutex_lock(&l->lock);
	/* Only a CM that stays CM knows when it last heard each member; a new
	 * CM (or a member) starts every lease from now. */
	bool was_cm = is_cm(l) && v->cm == l->a.self;
	for (uint32_t i = 0; i < v->n; i++) {
		int old = view_index(&l->v, v->m[i].id);
		heard[i] =
		    was_cm && old >= 0 && l->v.m[old].inc == v->m[i].inc ? l->heard[old] : now;
	}
	if (l->cm_idx < 0 || l->v.cm != v->cm || !v->n)
		l->cm_heard = now;
	l->v = *v;
	memcpy(l->sa, sa, sizeof(sa[0]) * v->n);
	memcpy(l->heard, heard, sizeof(heard[0]) * v->n);
	memset(l->expired, 0, sizeof(l->expired));
	l->cm_expired = false;
	l->self_idx = view_index(&l->v, l->a.self);
	if (l->self_idx >= 0 && l->v.m[l->self_idx].inc != l->a.inc)
		l->self_idx = -1; /* that is an older us */
	l->cm_idx = view_index(&l->v, v->cm);
	/* Rounds are matched by member index: forget those of the old view. */
	memset(l->rounds, 0, sizeof(l->rounds));
	l->next_send = 0; /* renew at once under the new view */
	publish_until(l);
	pthread_mutex_unlock(&l->lock);
	wake(l);
	return 0;
}

bool farm_lease_serving(const struct farm_lease *l)
{
	return l && __atomic_load_n(&l->serving, __ATOMIC_ACQUIRE);
}

uint64_t farm_lease_valid_until(const struct farm_lease *l)
{
	return l ? __atomic_load_n(&l->valid_until, __ATOMIC_ACQUIRE) : 0;
}

bool farm_lease_cm_lost(const struct farm_lease *l)
{
	struct farm_lease *m = (struct farm_lease *)l;
	bool lost;

	if (!l)
		return true;
	pthread_mutex_lock(&m->lock);
	lost = m->cm_idx < 0 || (!is_cm(m) && now_ns() >= m->cm_heard + m->lease_ns);
	pthread_mutex_unlock(&m->lock);
	return lost;
}

void farm_lease_notify(struct farm_lease *l, uint64_t config_id)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	for (uint32_t i = 0; i < l->v.n; i++)
		if ((int)i != l->self_idx)
			send_to(l, (int)i, MSG_NOTIFY, 0, config_id);
	pthread_mutex_unlock(&l->lock);
}

int farm_lease_probe(struct farm_lease *l, int timeout_ms)
{
	struct timespec dl;
	uint32_t want = 0;
	int agree;

	if (!l)
		return -EINVAL;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&l->lock);
	l->probe_seq++;
	l->probe_acks = l->probe_nacks = 0;
	for (uint32_t i = 0; i < l->v.n; i++)
		if ((int)i != l->self_idx && (int)i != l->cm_idx) {
			send_to(l, (int)i, MSG_PROBE, l->probe_seq, l->v.config_id);
			want++;
		}
	while ((uint32_t)__builtin_popcountll(l->probe_acks | l->probe_nacks) < want)
		if (pthread_cond_timedwait(&l->cond, &l->lock, &dl) == ETIMEDOUT)
			break;
	agree = __builtin_popcountll(l->probe_acks);
	if (l->self_idx >= 0 && l->cm_idx != l->self_idx && now_ns() >= l->cm_heard + l->lease_ns)
		agree++;
	pthread_mutex_unlock(&l->lock);
	return agree;
}

int farm_lease_ping(struct farm_lease *l, uint32_t id, const char *addr, int timeout_ms)
{
	struct sockaddr_in sa;
	struct timespec dl;
	int rc = -ETIMEDOUT;

	if (!l || !addr || parse_addr(addr, &sa))
		return -EINVAL;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&l->lock);
	l->ping_seq++;
	l->ping_ok = false;
	if (!l->blocked) {
		struct lease_msg m = {.magic = LEASE_MAGIC,
				      .cluster = l->a.cluster,
				      .type = MSG_PING,
				      .from = l->a.self,
				      .to = id,
				      .inc = l->a.inc,
				      .config_id = l->v.config_id,
				      .seq = l->ping_seq};
		if (sendto(l->fd, &m, sizeof(m), MSG_DONTWAIT, (struct sockaddr *)&sa,
			   sizeof(sa)) != (ssize_t)sizeof(m))
			rc = -errno;
		else
			while (!l->ping_ok)
				if (pthread_cond_timedwait(&l->cond, &l->lock, &dl) == ETIMEDOUT)
					break;
	}
	if (l->ping_ok)
		rc = 0;
	pthread_mutex_unlock(&l->lock);
	return rc;
}

void farm_lease_block(struct farm_lease *l, bool block)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	l->blocked = block;
	pthread_mutex_unlock(&l->lock);
	wake(l);
}

void farm_lease_get_stats(const struct farm_lease *l, struct farm_lease_stats *st)
{
	struct farm_lease *m = (struct farm_lease *)l;

	if (!l || !st)
		return;
	pthread_mutex_lock(&m->lock);
	*st = m->st;
	pthread_mutex_unlock(&m->lock);
}
