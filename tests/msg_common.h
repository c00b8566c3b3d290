/*
 * msg_common.h - the scenarios the msg tests run over every NIC
 * (test_msg.c: shm, test_msg_udp.c: udp on loopback and under netem).
 *
 * A scenario is two *roles* run in two forked processes, each on its own
 * endpoint with one channel to the other. msg_pair_run() forks both, opens
 * the endpoints (shm names, or udp ports exchanged through a shared page),
 * attaches msg, runs the roles and returns the first non-zero exit code.
 * Roles report through exit codes (never cmocka: its jump buffers belong
 * to the parent) and print one line to stderr saying what went wrong.
 *
 * Content checks: message k of a stream has a length drawn from a seeded
 * generator both sides run, and bytes [0,12) = k, len, checksum of the rest
 * when it is long enough; the rest is a pattern of (stream, k). The receiver
 * regenerates the whole message and compares every byte, so a lost,
 * duplicated, reordered or torn message fails the test.
 *
 * Header-only (static inline functions) because the test programs share it
 * and tests/helpers/ is linked into every test of the project.
 */
#ifndef TESTS_MSG_COMMON_H
#define TESTS_MSG_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers/netns.h"
#include "helpers/proc.h"
#include "unet/msg.h"
#include "unet/unet.h"

#define MP_TIMEOUT_MS 50000

struct mp_shared {
	uint32_t port[2];  /* udp: bound ports */
	uint32_t relay[2]; /* udp through an impairing relay: the relay port side i dials */
	uint32_t relay_stat[4];
	uint32_t ready[2]; /* attached */
	uint32_t done[2];  /* role finished its own part */
	uint32_t count[2]; /* role-specific progress counters */
	uint32_t flag[4];
	uint64_t stat[2][8];
};

struct mp_ctx_s;

struct mp_cfg {
	const char *uri[2];	 /* "shm", "udp:127.0.0.1", ... */
	const char *addr[2];	 /* udp: the address the other side dials */
	const char *netns[2];	 /* network namespace to enter, or NULL */
	uint32_t port[2];	 /* udp: port to bind (0: any) */
	bool relay;		 /* udp: dial the relay (sh->relay[side]), not the peer */
	uint32_t rx_buf_size[2]; /* per-side override of ea.rx_buf_size (0: none) */
	struct unet_ep_attr ea;
	struct unet_msg_attr ma[2];
	uint32_t seed;
	int (*role[2])(struct mp_ctx_s *c);
	void *arg;
};

struct mp_ctx_s {
	int side;
	const struct mp_cfg *cfg;
	struct mp_shared *sh;
	struct unet_nic *nic;
	struct unet_ep *ep;
	struct unet_msg_ep *mep;
	int chan;
	char name[2][64];
};
typedef struct mp_ctx_s mp_ctx;

static inline void mp_fail(const mp_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void mp_fail(const mp_ctx *c, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "[side %d] ", c->side);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- generators ----------------------------------------------------------- */

static inline uint64_t mp_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* Length of message k of stream s: log-uniform over 0..UNET_MSG_MAX, with
 * the edges (0, inline limits, exactly UNET_MSG_MAX) well represented. */
static inline uint32_t mp_len(uint32_t seed, int s, uint32_t k, uint32_t max)
{
	uint64_t r = mp_mix(((uint64_t)seed << 32) ^ ((uint64_t)s << 28) ^ k);
	uint32_t len;

	switch (r % 16) {
	case 0:
		len = 0;
		break;
	case 1:
		len = (uint32_t)(r >> 8) % 48;
		break;
	case 2:
		len = max;
		break;
	default: {
		uint32_t bits = (uint32_t)(r >> 8) % 21;
		len = (uint32_t)(r >> 16) % ((1u << bits) + 1);
	}
	}
	return len > max ? max : len;
}

static inline uint32_t mp_sum(const uint8_t *p, uint32_t n)
{
	uint32_t h = 2166136261u;

	for (uint32_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static inline void mp_put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static inline uint32_t mp_get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static inline void mp_fill(uint8_t *p, uint32_t len, uint32_t seed, int s, uint32_t k)
{
	uint64_t x = mp_mix(((uint64_t)seed << 32) ^ ((uint64_t)s << 30) ^ k ^ 0x5bd1e995u);

	for (uint32_t i = 0; i < len; i++) {
		if ((i & 7) == 0)
			x = mp_mix(x + i);
		p[i] = (uint8_t)(x >> ((i & 7) * 8));
	}
	if (len >= 12) {
		mp_put32(p, k);
		mp_put32(p + 4, len);
		mp_put32(p + 8, mp_sum(p + 12, len - 12));
	}
}

/* 0 when p[0..len) is exactly message k of stream s. `scratch` holds
 * UNET_MSG_MAX bytes. */
static inline int mp_check(const uint8_t *p, uint32_t len, uint32_t seed, int s, uint32_t k,
			   uint32_t max, uint8_t *scratch)
{
	uint32_t want = mp_len(seed, s, k, max);

	if (len != want)
		return 1;
	if (len >= 12 && (mp_get32(p) != k || mp_get32(p + 4) != len ||
			  mp_get32(p + 8) != mp_sum(p + 12, len - 12)))
		return 2;
	mp_fill(scratch, len, seed, s, k);
	return memcmp(p, scratch, len) ? 3 : 0;
}

/* ---- process pair ----------------------------------------------------------- */

static inline int mp_open(mp_ctx *c)
{
	const struct mp_cfg *cfg = c->cfg;
	int s = c->side, o = 1 - s, rc;
	char remote[128];
	bool udp = strncmp(cfg->uri[s], "shm", 3) != 0; /* udp or xdp: ports */

	if (cfg->netns[s] && (rc = netns_enter(cfg->netns[s])) < 0) {
		mp_fail(c, "setns %s: %s", cfg->netns[s], strerror(-rc));
		return 10;
	}
	rc = unet_nic_open(cfg->uri[s], &c->nic);
	if (rc == 0) {
		char port[16];
		struct unet_ep_attr ea = cfg->ea;
		if (cfg->rx_buf_size[s])
			ea.rx_buf_size = cfg->rx_buf_size[s];
		snprintf(port, sizeof(port), "%u", cfg->port[s]);
		rc = unet_ep_create(c->nic, udp ? port : c->name[s], &ea, &c->ep);
	}
	if (rc < 0) {
		mp_fail(c, "open %s: %s", cfg->uri[s], unet_strerror(rc));
		return 11;
	}
	if (udp) {
		proc_set_u32(&c->sh->port[s], (uint32_t)atoi(unet_ep_name(c->ep)));
		if (proc_wait_u32(&c->sh->port[o], 1, 10000) < 0) {
			mp_fail(c, "peer never bound");
			return 12;
		}
		if (cfg->relay && proc_wait_u32(&c->sh->relay[s], 1, 10000) < 0) {
			mp_fail(c, "no relay");
			return 12;
		}
		if (cfg->relay)
			snprintf(remote, sizeof(remote), "127.0.0.1:%u",
				 proc_get_u32(&c->sh->relay[s]));
		else
			snprintf(remote, sizeof(remote), "%s:%u", cfg->addr[o],
				 proc_get_u32(&c->sh->port[o]));
	} else {
		snprintf(remote, sizeof(remote), "%s", c->name[o]);
	}
	c->chan = unet_chan_open(c->ep, remote, 10000);
	if (c->chan < 0) {
		mp_fail(c, "chan_open %s: %s", remote, unet_strerror(c->chan));
		return 13;
	}
	rc = unet_msg_create(c->ep, &cfg->ma[s], &c->mep);
	if (rc == 0)
		rc = unet_msg_attach(c->mep, (unsigned)c->chan);
	if (rc < 0) {
		mp_fail(c, "msg create/attach: %s", unet_strerror(rc));
		return 14;
	}
	proc_set_u32(&c->sh->ready[s], 1);
	return 0;
}

static inline void mp_close(mp_ctx *c)
{
	struct unet_msg_stats st;

	if (c->mep) {
		unet_msg_get_stats(c->mep, &st);
		c->sh->stat[c->side][0] = st.frags_retx;
		c->sh->stat[c->side][1] = st.frags_bad;
		c->sh->stat[c->side][2] = st.frags_dup;
		c->sh->stat[c->side][3] = st.frags_ooo;
		c->sh->stat[c->side][4] = st.timeouts;
		c->sh->stat[c->side][5] = st.msgs_delivered;
		unet_msg_destroy(c->mep);
	}
	if (c->ep) {
		struct unet_stats us;
		unet_get_stats(c->ep, &us);
		c->sh->stat[c->side][6] = us.rx_drop_nobuf + us.rx_drop_full;
		unet_ep_destroy(c->ep);
	}
	if (c->nic)
		unet_nic_close(c->nic);
}

static inline int mp_child(void *arg)
{
	mp_ctx *c = arg;
	int rc = mp_open(c);

	if (rc == 0)
		rc = c->cfg->role[c->side](c);
	mp_close(c);
	return rc;
}

/* Poll for up to `ms`, blocking when idle. */
static inline void mp_pump(mp_ctx *c, int ms)
{
	uint64_t end = proc_now_ms() + (uint64_t)ms;

	do {
		if (unet_msg_poll(c->mep, 64) == 0)
			unet_msg_idle(c->mep, 5);
	} while (proc_now_ms() < end);
}

/* Keep serving until both sides say they are done (the peer may still need
 * our acks or replies), or the deadline. */
static inline int mp_linger(mp_ctx *c)
{
	uint64_t end = proc_now_ms() + MP_TIMEOUT_MS;

	proc_set_u32(&c->sh->done[c->side], 1);
	while (!proc_get_u32(&c->sh->done[1 - c->side])) {
		if (proc_now_ms() > end) {
			mp_fail(c, "peer never finished");
			return 40;
		}
		if (unet_msg_poll(c->mep, 64) == 0)
			unet_msg_idle(c->mep, 5);
	}
	mp_pump(c, 20); /* last acks */
	return 0;
}

/* Run both roles; 0 when both exit 0. `sh` is the caller's shared page
 * (NULL: a fresh one) so it can read counters afterwards. */
static inline int mp_run(const struct mp_cfg *cfg, struct mp_shared *sh, pid_t *pids_out)
{
	static mp_ctx ctx[2];
	pid_t pid[2];
	int rc = 0;

	for (int s = 0; s < 2; s++) {
		memset(&ctx[s], 0, sizeof(ctx[s]));
		ctx[s].side = s;
		ctx[s].cfg = cfg;
		ctx[s].sh = sh;
	}
	proc_name(ctx[0].name[0], sizeof(ctx[0].name[0]), "msg-a");
	proc_name(ctx[0].name[1], sizeof(ctx[0].name[1]), "msg-b");
	memcpy(ctx[1].name, ctx[0].name, sizeof(ctx[0].name));
	for (int s = 0; s < 2; s++)
		pid[s] = proc_fork(mp_child, &ctx[s]);
	if (pids_out) {
		pids_out[0] = pid[0];
		pids_out[1] = pid[1];
		return 0;
	}
	for (int s = 0; s < 2; s++) {
		int r = proc_wait(pid[s], MP_TIMEOUT_MS);
		if (r != 0 && rc == 0)
			rc = r < 0 ? 255 : r;
		if (r != 0)
			fprintf(stderr, "side %d exited with %d\n", s, r);
	}
	return rc;
}

/* ---- scenario: bidirectional streams of random-size messages ---------------- */

struct mp_stream {
	uint32_t n;   /* messages each way */
	uint32_t max; /* largest message */
};

struct mp_rx {
	mp_ctx *c;
	uint32_t seed, got, max;
	int err;
	uint8_t *scratch;
};

static inline void mp_stream_handler(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg)
{
	struct mp_rx *rx = arg;
	int r;

	(void)mep;
	if (rx->err)
		return;
	if (m->chan != (unsigned)rx->c->chan || m->type != 1 || m->req_id != 0) {
		mp_fail(rx->c, "message %u: chan %u type %u req %llu", rx->got, m->chan, m->type,
			(unsigned long long)m->req_id);
		rx->err = 20;
		return;
	}
	r = mp_check(m->data, m->len, rx->seed, 1 - rx->c->side, rx->got, rx->max, rx->scratch);
	if (r) {
		mp_fail(rx->c, "message %u (len %u, want %u): content check %d", rx->got, m->len,
			mp_len(rx->seed, 1 - rx->c->side, rx->got, rx->max), r);
		rx->err = 21;
		return;
	}
	rx->got++;
	proc_set_u32(&rx->c->sh->count[rx->c->side], rx->got);
}

/* Send all our messages while receiving all of the peer's, both checked. */
static inline int mp_role_stream(mp_ctx *c)
{
	const struct mp_stream *p = c->cfg->arg;
	struct mp_rx rx = {.c = c, .seed = c->cfg->seed, .max = p->max};
	uint8_t *buf = malloc(UNET_MSG_MAX);
	uint64_t end = proc_now_ms() + MP_TIMEOUT_MS;
	uint32_t sent = 0;
	int rc = 0;

	rx.scratch = malloc(UNET_MSG_MAX);
	if (!buf || !rx.scratch)
		return 30;
	unet_msg_handle(c->mep, 1, mp_stream_handler, &rx);
	bool staged = false;
	while (sent < p->n || rx.got < p->n) {
		if (proc_now_ms() > end) {
			mp_fail(c, "stuck: sent %u received %u of %u", sent, rx.got, p->n);
			rc = 31;
			break;
		}
		if (sent < p->n) {
			uint32_t len = mp_len(c->cfg->seed, c->side, sent, p->max);
			if (!staged) {
				mp_fill(buf, len, c->cfg->seed, c->side, sent);
				staged = true;
			}
			int r = unet_msg_send(c->mep, (unsigned)c->chan, 1, buf, len);
			if (r == 0) {
				sent++;
				staged = false;
				continue;
			}
			if (r != -EAGAIN) {
				mp_fail(c, "send %u: %s", sent, unet_strerror(r));
				rc = 32;
				break;
			}
		}
		if (unet_msg_poll(c->mep, 64) == 0 && sent == p->n)
			unet_msg_idle(c->mep, 10);
		if (rx.err) {
			rc = rx.err;
			break;
		}
	}
	if (rc == 0)
		rc = mp_linger(c);
	free(buf);
	free(rx.scratch);
	return rc;
}

/* ---- scenario: request/reply ------------------------------------------------ */

/* Request body: [0,4) wanted reply length, [4,8) request index, then the
 * pattern of stream 2 index k. Reply: pattern of stream 3 index k, of the
 * wanted length. Type 2 replies in the handler or, when the staging ring
 * is full, later from the main loop (copy of chan and req_id). */
struct mp_pend {
	unsigned chan;
	uint64_t req_id;
	uint32_t want, k;
};

struct mp_srv {
	mp_ctx *c;
	uint32_t seed, served;
	int err;
	uint8_t *scratch, *out;
	struct mp_pend pend[256];
	uint32_t npend;
};

static inline int mp_reply(struct mp_srv *s, const struct mp_pend *p)
{
	struct unet_msg m = {.chan = p->chan, .req_id = p->req_id};

	mp_fill(s->out, p->want, s->seed, 3, p->k);
	return unet_msg_reply(s->c->mep, &m, s->out, p->want);
}

static inline void mp_srv_handler(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg)
{
	struct mp_srv *s = arg;
	struct mp_pend p;

	(void)mep;
	if (m->req_id == 0 || m->len < 8) {
		mp_fail(s->c, "bad request: req_id %llu len %u", (unsigned long long)m->req_id,
			m->len);
		s->err = 50;
		return;
	}
	p.chan = m->chan;
	p.req_id = m->req_id;
	p.want = mp_get32(m->data);
	p.k = mp_get32((const uint8_t *)m->data + 4);
	/* The request body must be intact too. */
	mp_fill(s->scratch, m->len - 8, s->seed, 2, p.k);
	if (memcmp((const uint8_t *)m->data + 8, s->scratch, m->len - 8) != 0) {
		mp_fail(s->c, "request %u corrupt", p.k);
		s->err = 51;
		return;
	}
	s->served++;
	proc_set_u32(&s->c->sh->count[s->c->side], s->served);
	/* Reply now, or later (in order) when the staging ring is full. */
	int r = s->npend ? -EAGAIN : mp_reply(s, &p);
	if (r == -EAGAIN && s->npend < 256) {
		s->pend[s->npend++] = p;
	} else if (r < 0) {
		mp_fail(s->c, "reply %u: %s", p.k, unet_strerror(r));
		s->err = 52;
	}
}

static inline int mp_role_server(mp_ctx *c)
{
	struct mp_srv s = {.c = c, .seed = c->cfg->seed};
	int rc = 0;

	s.scratch = malloc(UNET_MSG_MAX);
	s.out = malloc(UNET_MSG_MAX);
	if (!s.scratch || !s.out)
		return 30;
	unet_msg_handle(c->mep, 2, mp_srv_handler, &s);
	uint64_t end = proc_now_ms() + MP_TIMEOUT_MS;
	proc_set_u32(&c->sh->done[c->side], 1);
	while (!proc_get_u32(&c->sh->done[1 - c->side])) {
		if (proc_now_ms() > end || s.err) {
			rc = s.err ? s.err : 53;
			break;
		}
		while (s.npend) {
			int r = mp_reply(&s, &s.pend[0]);
			if (r == -EAGAIN)
				break;
			if (r < 0) {
				mp_fail(c, "deferred reply: %s", unet_strerror(r));
				rc = 54;
				break;
			}
			memmove(&s.pend[0], &s.pend[1], --s.npend * sizeof(s.pend[0]));
		}
		if (unet_msg_poll(c->mep, 64) == 0 && !s.npend)
			unet_msg_idle(c->mep, 5);
	}
	mp_pump(c, 20);
	free(s.scratch);
	free(s.out);
	return rc;
}

struct mp_rr {
	uint32_t n;	  /* requests */
	uint32_t depth;	  /* outstanding at once */
	uint32_t max_req; /* largest request body */
	uint32_t max_rep; /* largest reply */
};

struct mp_out {
	uint32_t k, want, cap;
	int64_t id;
	uint8_t *buf;
};

/* Pipelined requests with content checks, reaped by poll_comp and wait. */
static inline int mp_role_client(mp_ctx *c)
{
	const struct mp_rr *p = c->cfg->arg;
	uint32_t seed = c->cfg->seed, issued = 0, done = 0, inflight = 0;
	struct mp_out *outs = calloc(p->depth, sizeof(*outs));
	uint8_t *req = malloc(p->max_req + 8), *scratch = malloc(UNET_MSG_MAX);
	uint64_t end = proc_now_ms() + MP_TIMEOUT_MS;
	int rc = 0;

	if (!outs || !req || !scratch)
		return 30;
	for (uint32_t i = 0; i < p->depth; i++) {
		outs[i].buf = malloc(p->max_rep);
		outs[i].id = -1;
		if (!outs[i].buf)
			return 30;
	}
	while (done < p->n && rc == 0) {
		if (proc_now_ms() > end) {
			mp_fail(c, "stuck: %u of %u requests done", done, p->n);
			rc = 60;
			break;
		}
		/* Issue into free slots. */
		for (uint32_t i = 0; i < p->depth && issued < p->n; i++) {
			if (outs[i].id >= 0)
				continue;
			uint32_t k = issued, blen = mp_len(seed, 4, k, p->max_req);
			uint32_t want = mp_len(seed, 5, k, p->max_rep);
			/* Every 7th request gets a buffer too small for its reply. */
			uint32_t cap = (k % 7 == 3 && want > 0) ? want / 2 : p->max_rep;
			mp_put32(req, want);
			mp_put32(req + 4, k);
			mp_fill(req + 8, blen, seed, 2, k);
			int64_t id = unet_msg_request(c->mep, (unsigned)c->chan, 2, req, blen + 8,
						      outs[i].buf, cap, &outs[i]);
			if (id == -EAGAIN)
				break;
			if (id <= 0) {
				mp_fail(c, "request %u: %s", k, unet_strerror((int)id));
				rc = 61;
				break;
			}
			outs[i] = (struct mp_out){
			    .k = k, .want = want, .cap = cap, .id = id, .buf = outs[i].buf};
			issued++;
			inflight++;
		}
		/* Reap: every other round by waiting for the oldest, else by polling. */
		struct unet_msg_comp comp[16];
		int n = 0;
		if (inflight && (done & 1)) {
			struct mp_out *o = NULL;
			for (uint32_t i = 0; i < p->depth; i++)
				if (outs[i].id >= 0 && (!o || outs[i].k < o->k))
					o = &outs[i];
			int r = unet_msg_wait(c->mep, o->id, 20000, &comp[0]);
			if (r < 0) {
				mp_fail(c, "wait request %u: %s", o->k, unet_strerror(r));
				rc = 62;
				break;
			}
			n = 1;
		} else {
			if (unet_msg_poll(c->mep, 64) == 0)
				unet_msg_idle(c->mep, 5);
			n = unet_msg_poll_comp(c->mep, comp, 16);
		}
		for (int j = 0; j < n && rc == 0; j++) {
			struct mp_out *o = comp[j].ctx;
			if (!o || o->id != (int64_t)comp[j].req_id) {
				mp_fail(c, "completion with wrong ctx/id");
				rc = 63;
				break;
			}
			bool small = o->cap < o->want;
			int want_st = small ? -EMSGSIZE : 0;
			uint32_t want_len = small ? o->cap : o->want;
			if (comp[j].status != want_st || comp[j].len != want_len) {
				mp_fail(c, "request %u: status %d len %u, want %d %u", o->k,
					comp[j].status, comp[j].len, want_st, want_len);
				rc = 64;
				break;
			}
			mp_fill(scratch, o->want, seed, 3, o->k);
			if (memcmp(o->buf, scratch, want_len) != 0) {
				mp_fail(c, "reply %u corrupt", o->k);
				rc = 65;
				break;
			}
			o->id = -1;
			done++;
			inflight--;
		}
	}
	if (rc == 0) {
		/* A type nobody handles: the requester hears so, it is not left waiting. */
		int64_t id = unet_msg_request(c->mep, (unsigned)c->chan, 9, "x", 1, NULL, 0, NULL);
		struct unet_msg_comp cp;
		if (id <= 0 || unet_msg_wait(c->mep, id, 10000, &cp) != 0 ||
		    cp.status != -EOPNOTSUPP) {
			mp_fail(c, "request to an unhandled type: id %lld status %d", (long long)id,
				id > 0 ? cp.status : 0);
			rc = 66;
		}
	}
	if (rc == 0)
		rc = mp_linger(c);
	for (uint32_t i = 0; i < p->depth; i++)
		free(outs[i].buf);
	free(outs);
	free(req);
	free(scratch);
	return rc;
}

/* ---- scenario: the peer dies or stops ------------------------------------------ */

#define DEAD_REQS 4

static inline void sink_handler(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg)
{
	mp_ctx *c = arg;
	(void)mep;
	(void)m;
	proc_set_u32(&c->sh->count[c->side], proc_get_u32(&c->sh->count[c->side]) + 1);
}

/* Takes requests and never answers; the parent kills or stops it. */
static inline int role_mute_server(mp_ctx *c)
{
	unet_msg_handle(c->mep, 5, sink_handler, c);
	mp_pump(c, MP_TIMEOUT_MS);
	return 0;
}

/* Issue requests, wait for the parent's signal (flag[0] = 1: peer killed
 * or stopped), then expect every request to fail with flag[2]'s code
 * within flag[3] ms. */
static inline int role_doomed_client(mp_ctx *c)
{
	int64_t id[DEAD_REQS];
	struct unet_msg_comp comp;
	int want = -(int)c->sh->flag[2];

	for (int i = 0; i < DEAD_REQS; i++) {
		id[i] = unet_msg_request(c->mep, (unsigned)c->chan, 5, "ping", 4, NULL, 0, NULL);
		if (id[i] <= 0)
			return 80;
	}
	uint64_t end = proc_now_ms() + 20000;
	while (!proc_get_u32(&c->sh->flag[0])) {
		if (proc_now_ms() > end)
			return 81;
		if (unet_msg_poll(c->mep, 64) == 0)
			unet_msg_idle(c->mep, 2);
		if (unet_msg_poll_comp(c->mep, &comp, 1) != 0) {
			mp_fail(c, "request completed (%d) before the peer died", comp.status);
			return 82;
		}
	}
	uint64_t t0 = proc_now_ms();
	for (int i = 0; i < DEAD_REQS; i++) {
		int r = unet_msg_wait(c->mep, id[i], 10000, &comp);
		if (r != 0 || comp.status != want) {
			mp_fail(c, "request %d: wait %d status %d, want %d", i, r, comp.status,
				want);
			return 83;
		}
	}
	uint64_t dt = proc_now_ms() - t0;
	c->sh->stat[0][7] = dt;
	if (dt > c->sh->flag[3]) {
		mp_fail(c, "failure took %llu ms", (unsigned long long)dt);
		return 84;
	}
	int r = unet_msg_send(c->mep, (unsigned)c->chan, 1, "x", 1);
	if (r != -ECONNRESET) {
		mp_fail(c, "send on a failed channel: %d", r);
		return 85;
	}
	/* Re-attach is refused only while the U-Net channel is down. */
	return 0;
}

#endif /* TESTS_MSG_COMMON_H */
