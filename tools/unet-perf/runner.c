/*
 * runner.c - runs one path between two processes on two CPUs.
 *
 * The initiator (this process) forks the responder, pins each to its CPU and
 * then drives it through a control socket: "ping-pong N messages of S bytes",
 * "receive a stream of N messages of S bytes", "quit". The control socket is
 * never used inside a timed loop; it only orders the phases, so every path
 * is measured by its own data path alone.
 *
 * Streaming bandwidth is timed from the initiator's first send to the
 * responder's receipt of the last message (CLOCK_MONOTONIC is one clock
 * for both processes), so a sender that only fills a queue is not credited.
 *
 * The responder dies with us (PR_SET_PDEATHSIG), and we give up on it after
 * PERF_STALL_MS without progress, so a broken path fails that path only.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "perf.h"

enum { CMD_PING = 1, CMD_STREAM = 2, CMD_QUIT = 3 };

struct ctl_cmd {
	uint32_t op;
	uint32_t pad;
	uint64_t size, count;
};

struct ctl_reply {
	int32_t rc;
	uint32_t pad;
	uint64_t received, last_ns;
};

static int ctl_send(int fd, const void *m, size_t len)
{
	return send(fd, m, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -ECONNRESET;
}

/* Read one reply, waiting at most ms. */
static int ctl_reply_wait(int fd, struct ctl_reply *r, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int n;

	do
		n = poll(&p, 1, ms);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return -ETIMEDOUT;
	if (n < 0)
		return -errno;
	if (recv(fd, r, sizeof(*r), 0) != (ssize_t)sizeof(*r))
		return -ECONNRESET; /* the responder died */
	return 0;
}

static void reply(int fd, int rc, const struct perf_stream_rx *s)
{
	struct ctl_reply r = {.rc = rc};

	if (s) {
		r.received = s->received;
		r.last_ns = s->last_ns;
	}
	ctl_send(fd, &r, sizeof(r));
}

static __attribute__((noreturn)) void responder(const struct perf_path *p, void *ctx, int fd,
						int cpu, pid_t parent)
{
	struct ctl_cmd c;
	int rc;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	rc = perf_pin(cpu);
	if (rc == 0)
		rc = p->attach(ctx, PERF_RESPONDER);
	reply(fd, rc, NULL);
	if (rc < 0)
		_exit(1);
	while (recv(fd, &c, sizeof(c), 0) == (ssize_t)sizeof(c)) {
		struct perf_stream_rx s = {0};
		if (c.op == CMD_QUIT)
			break;
		reply(fd, 0, NULL); /* go: we are about to listen */
		if (c.op == CMD_PING)
			rc = p->pong(ctx, c.size, (uint32_t)c.count);
		else if (c.op == CMD_STREAM)
			rc = p->stream_rx(ctx, c.size, c.count, &s);
		else
			rc = -EINVAL;
		reply(fd, rc, &s);
	}
	p->detach(ctx, PERF_RESPONDER);
	_exit(0);
}

uint64_t perf_stream_count(const struct perf_opts *o, size_t size)
{
	uint64_t c = o->stream_bytes / (size ? size : 1);
	uint64_t cap = (uint64_t)o->iters * 10;

	if (c < 1000)
		c = 1000;
	if (c > 200000)
		c = 200000;
	if (cap < 200)
		cap = 200;
	return c < cap ? c : cap;
}

static void fail(struct perf_result *res, int rc, const char *what)
{
	if (res->rc == 0) {
		res->rc = rc;
		snprintf(res->err, sizeof(res->err), "%s: %s", what, strerror(-rc));
	}
}

static int one_ping(const struct perf_path *p, void *ctx, int fd, const struct perf_opts *o,
		    struct perf_point *pt, uint64_t *rtt)
{
	struct ctl_cmd c = {.op = CMD_PING, .size = pt->size, .count = o->warmup + o->iters};
	struct ctl_reply r;
	int rc;

	rc = ctl_send(fd, &c, sizeof(c));
	if (rc == 0)
		rc = ctl_reply_wait(fd, &r, PERF_STALL_MS);
	if (rc == 0)
		rc = r.rc;
	if (rc < 0)
		return rc;
	rc = p->ping(ctx, pt->size, o->warmup + o->iters, rtt);
	int rc2 = ctl_reply_wait(fd, &r, PERF_STALL_MS + 1000);
	if (rc == 0)
		rc = rc2 < 0 ? rc2 : r.rc;
	if (rc == 0)
		perf_lat_compute(rtt + o->warmup, o->iters, &pt->lat);
	return rc;
}

/* One timed stream of c->count messages; its rate into *gbps / *mmsgs. */
static int stream_once(const struct perf_path *p, void *ctx, int fd, const struct ctl_cmd *c,
		       struct perf_point *pt, double *gbps, double *mmsgs)
{
	struct ctl_reply r;
	uint64_t t0;
	int rc;

	rc = ctl_send(fd, c, sizeof(*c));
	if (rc == 0)
		rc = ctl_reply_wait(fd, &r, PERF_STALL_MS);
	if (rc == 0)
		rc = r.rc;
	if (rc < 0)
		return rc;
	t0 = perf_now_ns();
	rc = p->stream_tx(ctx, pt->size, c->count);
	int rc2 = ctl_reply_wait(fd, &r, PERF_STALL_MS + 1000);
	if (rc == 0)
		rc = rc2 < 0 ? rc2 : r.rc;
	if (rc < 0)
		return rc;
	if (r.received == 0 || r.last_ns <= t0)
		return -EIO;
	pt->sent += c->count;
	pt->received += r.received;
	pt->seconds += (double)(r.last_ns - t0) / 1e9;
	*gbps = (double)r.received * (double)pt->size / (double)(r.last_ns - t0);
	*mmsgs = (double)r.received / (double)(r.last_ns - t0) * 1e3;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* PERF_STREAM_REPS streams, the median rate reported: on a shared machine
 * one preemption can halve a 10 ms run, and the median shrugs that off. */
static int one_stream(const struct perf_path *p, void *ctx, int fd, const struct perf_opts *o,
		      struct perf_point *pt)
{
	struct ctl_cmd c = {.op = CMD_STREAM, .size = pt->size};
	double gbps[PERF_STREAM_REPS], mmsgs[PERF_STREAM_REPS];

	c.count = perf_stream_count(o, pt->size) / PERF_STREAM_REPS;
	if (c.count < 100)
		c.count = 100;
	for (int i = 0, empty = 0; i < PERF_STREAM_REPS; i++) {
		int rc = stream_once(p, ctx, fd, &c, pt, &gbps[i], &mmsgs[i]);
		/* A round where not one message arrived measured nothing (the
		 * receiver was not scheduled in time on a loaded machine, and
		 * the rings overflowed): it is run again, at most 3 times. */
		if (rc == -EIO && ++empty <= 3) {
			i--;
			continue;
		}
		if (rc < 0)
			return rc;
	}
	qsort(gbps, PERF_STREAM_REPS, sizeof(double), cmp_double);
	qsort(mmsgs, PERF_STREAM_REPS, sizeof(double), cmp_double);
	pt->gbps = gbps[PERF_STREAM_REPS / 2];
	pt->mmsgs = mmsgs[PERF_STREAM_REPS / 2];
	return 0;
}

/* Stop the responder: politely, then by its pid. Returns how often it was
 * preempted (involuntary context switches) in its life. */
static long reap(pid_t pid, int fd, bool polite)
{
	struct ctl_cmd c = {.op = CMD_QUIT};
	struct rusage ru;
	int status;

	memset(&ru, 0, sizeof(ru));
	if (polite && ctl_send(fd, &c, sizeof(c)) == 0) {
		for (int i = 0; i < 200; i++) {
			if (wait4(pid, &status, WNOHANG, &ru) == pid)
				return ru.ru_nivcsw;
			usleep(10000);
		}
	}
	kill(pid, SIGKILL);
	wait4(pid, &status, 0, &ru);
	return ru.ru_nivcsw;
}

static long preempted_self(void)
{
	struct rusage ru;

	return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_nivcsw : 0;
}

static void result_init(const struct perf_path *p, const struct perf_opts *o,
			struct perf_result *res)
{
	memset(res, 0, sizeof(*res));
	res->path = p;
	res->n = o->nsizes;
	for (int i = 0; i < o->nsizes; i++) {
		struct perf_point *pt = &res->pt[i];
		pt->size = o->sizes[i];
		pt->lat_rc = pt->size > p->max_msg ? -EMSGSIZE : -ECANCELED;
		pt->bw_rc = !p->stream_tx || o->no_stream ? -ENOTSUP : pt->lat_rc;
	}
}

void perf_skip_path(const struct perf_path *p, const struct perf_opts *o, struct perf_result *res)
{
	result_init(p, o, res);
}

int perf_run_path(const struct perf_path *p, const struct perf_opts *o, struct perf_result *res,
		  FILE *log)
{
	size_t max_size = 0;
	uint64_t *rtt = NULL;
	void *ctx = NULL;
	int sv[2] = {-1, -1}, rc;
	struct ctl_reply r;
	pid_t pid;

	result_init(p, o, res);
	for (int i = 0; i < o->nsizes; i++)
		if (o->sizes[i] <= p->max_msg && o->sizes[i] > max_size)
			max_size = o->sizes[i];
	if (max_size == 0)
		return 0; /* nothing this path can carry */
	rtt = malloc(sizeof(*rtt) * ((size_t)o->warmup + o->iters));
	ctx = calloc(1, p->ctx_size);
	if (!rtt || !ctx) {
		fail(res, -ENOMEM, "memory");
		goto out;
	}
	rc = perf_pin(o->cpus[0]);
	if (rc < 0) {
		fail(res, rc, "pinning to the first CPU");
		goto out;
	}
	rc = p->setup(ctx, o, max_size);
	if (rc < 0) {
		fail(res, rc, "set-up");
		goto out_free;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		fail(res, -errno, "control socket");
		goto out_teardown;
	}
	fflush(stdout);
	fflush(stderr);
	if (log)
		fflush(log);
	pid_t parent = getpid();
	long self0 = preempted_self();
	pid = fork();
	if (pid < 0) {
		fail(res, -errno, "fork");
		goto out_teardown;
	}
	if (pid == 0) {
		close(sv[0]);
		responder(p, ctx, sv[1], o->cpus[1], parent);
	}
	close(sv[1]);
	sv[1] = -1;
	rc = p->attach(ctx, PERF_INITIATOR);
	if (rc < 0) {
		fail(res, rc, "attach (initiator)");
		reap(pid, sv[0], false);
		goto out_teardown;
	}
	rc = ctl_reply_wait(sv[0], &r, PERF_STALL_MS * 2);
	if (rc == 0 && r.rc < 0)
		rc = r.rc;
	if (rc < 0) {
		fail(res, rc, "responder start");
		reap(pid, sv[0], false);
		goto out_detach;
	}
	for (int i = 0; i < res->n && res->rc == 0; i++) {
		struct perf_point *pt = &res->pt[i];
		if (pt->size > p->max_msg)
			continue;
		if (log)
			fprintf(log, "  %-14s %7zu B ping-pong\r", p->key, pt->size), fflush(log);
		pt->lat_rc = one_ping(p, ctx, sv[0], o, pt, rtt);
		if (pt->lat_rc < 0) {
			fail(res, pt->lat_rc, "ping-pong");
			break;
		}
		if (pt->bw_rc == -ENOTSUP)
			continue;
		if (log)
			fprintf(log, "  %-14s %7zu B stream   \r", p->key, pt->size), fflush(log);
		pt->bw_rc = one_stream(p, ctx, sv[0], o, pt);
		if (pt->bw_rc < 0) {
			fail(res, pt->bw_rc, "stream");
			break;
		}
	}
	if (log)
		fprintf(log, "%50s\r", ""), fflush(log);
	res->preempted = reap(pid, sv[0], res->rc == 0) + preempted_self() - self0;
out_detach:
	p->detach(ctx, PERF_INITIATOR);
out_teardown:
	p->teardown(ctx);
out_free:
	for (int i = 0; i < 2; i++)
		if (sv[i] >= 0)
			close(sv[i]);
out:
	free(ctx);
	free(rtt);
	return res->rc;
}
