/*
 * main.c - kvload, a load generator for key-value servers.
 *
 *   kvload --server HOST:PORT [--clients N] [--keys K] [--key-size 16]
 *          [--value-size 32] [--dist uniform|zipf] [--theta 0.99]
 *          [--get-ratio 1.0] [--depth D] [--duration S] [--load] [--json]
 *   kvload --native RUN_DIR [same workload options]
 *
 * memcached mode: N client processes, each with one TCP connection speaking
 * the memcached text protocol (get / set), D requests in flight per
 * connection (sent in one write, replies read as they come: pipelining),
 * keys and values from keygen.h. --load first stores every key (the clients
 * split the key space, 64 sets in flight each). The same binary drives real
 * memcached and farmd's gateway, so the two see the same load.
 *
 * native mode: the same workload run by FaRM's own client inside N farmd
 * nodes of the cluster in RUN_DIR at once (admin command `bench kv`, one
 * node per client, one-sided reads of the kv table); kvload only starts
 * them together and adds up what they report.
 *
 * Results: ops/s summed over the clients (each over its own measured
 * interval), hits and misses (a GET of a loaded key that misses is an
 * error of the server), latency percentiles per request (a pipelined
 * request's latency is its batch's round trip). Processes, not threads,
 * so that a client is what a deployment would run.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "keygen.h"

#define HIST_BUCKETS 1400 /* 2% wide: 1 ns .. ~10^12 ns */
#define MAX_CLIENTS  256
#define MAX_DEPTH    1024
#define LOAD_DEPTH   64

struct opts {
	char host[8][64], port[8][16]; /* --server A,B,...: client i uses i % nservers */
	int nservers;
	const char *servers;
	const char *native;
	int clients, depth;
	uint64_t keys;
	uint32_t ksize, vsize;
	double theta, get_ratio, duration;
	bool load, load_only, json;
	uint64_t seed;
};

struct result {
	uint64_t ops, gets, hits, misses, sets, errors;
	double seconds;
	uint64_t hist[HIST_BUCKETS];
	char err[160];
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int hist_bucket(uint64_t ns)
{
	int b = ns <= 1 ? 0 : (int)(log((double)ns) / log(1.02));
	return b >= HIST_BUCKETS ? HIST_BUCKETS - 1 : b;
}

static double hist_pct(const uint64_t *h, double pct)
{
	uint64_t total = 0, want, acc = 0;

	for (int i = 0; i < HIST_BUCKETS; i++)
		total += h[i];
	if (!total)
		return 0;
	want = (uint64_t)ceil(pct / 100.0 * (double)total);
	for (int i = 0; i < HIST_BUCKETS; i++) {
		acc += h[i];
		if (acc >= want)
			return pow(1.02, i + 0.5);
	}
	return pow(1.02, HIST_BUCKETS);
}

/* ---- one memcached-protocol client --------------------------------------- */

struct conn {
	int fd;
	char *rb;
	size_t rlen, rcap;
};

static int dial(const struct opts *o, int id, struct conn *c, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
	const char *host = o->host[id % o->nservers], *port = o->port[id % o->nservers];
	int one = 1, rc = getaddrinfo(host, port, &hints, &ai);

	if (rc != 0) {
		snprintf(err, errlen, "%.64s: %s", host, gai_strerror(rc));
		return -1;
	}
	c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		snprintf(err, errlen, "connect %.64s:%s: %s", host, port, strerror(errno));
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->rcap = 1 << 20;
	c->rb = malloc(c->rcap);
	c->rlen = 0;
	return c->rb ? 0 : -1;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* A line starting at rb+off, complete: its length with CRLF, else 0. */
static size_t line_at(const struct conn *c, size_t off)
{
	const char *nl = memchr(c->rb + off, '\n', c->rlen - off);
	return nl ? (size_t)(nl - (c->rb + off)) + 1 : 0;
}

/* Parse one reply at the front of the buffer: 1 parsed (*hit for gets),
 * 0 incomplete, -1 malformed / error reply. *used gets its length. */
static int parse_reply(const struct conn *c, bool get, bool *hit, uint32_t vsize, size_t *used)
{
	size_t l = line_at(c, 0);

	*used = 0;
	*hit = false;
	if (!l)
		return 0;
	if (!get) {
		*used = l;
		return l == 8 && memcmp(c->rb, "STORED\r\n", 8) == 0 ? 1 : -1;
	}
	if (l == 5 && memcmp(c->rb, "END\r\n", 5) == 0) {
		*used = 5;
		return 1;
	}
	if (l > 6 && memcmp(c->rb, "VALUE ", 6) == 0) {
		/* VALUE key flags bytes\r\n: bytes is the last number on the line */
		const char *e = c->rb + l - 2, *s = e;
		size_t bytes, end;
		while (s > c->rb && s[-1] != ' ')
			s--;
		bytes = strtoul(s, NULL, 10);
		end = l + bytes + 2;
		if (c->rlen < end + 5)
			return 0;
		if (memcmp(c->rb + end, "END\r\n", 5) != 0)
			return -1;
		*used = end + 5;
		*hit = bytes == vsize;
		return 1;
	}
	*used = l;
	return -1;
}

/* Read until `want` replies are parsed; kinds[i] says which were gets. */
static int read_replies(struct conn *c, const bool *kinds, int want, uint32_t vsize,
			struct result *r)
{
	int done = 0;

	while (done < want) {
		size_t used;
		bool hit;
		int rc = parse_reply(c, kinds[done], &hit, vsize, &used);
		if (rc == 0) {
			ssize_t n;
			if (c->rlen == c->rcap)
				return -1; /* a reply larger than the buffer: not ours */
			n = read(c->fd, c->rb + c->rlen, c->rcap - c->rlen);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return -1;
			c->rlen += (size_t)n;
			continue;
		}
		if (rc < 0) {
			if (r->errors++ == 0)
				snprintf(r->err, sizeof(r->err), "unexpected reply: %.*s",
					 (int)(used > 100 ? 100 : used), c->rb);
		} else if (kinds[done]) {
			if (hit)
				r->hits++;
			else
				r->misses++;
		}
		memmove(c->rb, c->rb + used, c->rlen - used);
		c->rlen -= used;
		done++;
	}
	return 0;
}

static size_t put_get(char *p, const struct keygen *g, uint64_t k)
{
	memcpy(p, "get ", 4);
	keygen_key(g, k, p + 4);
	memcpy(p + 4 + g->ksize, "\r\n", 2);
	return 6 + g->ksize;
}

static size_t put_set(char *p, const struct keygen *g, uint64_t k, uint32_t vsize)
{
	size_t n;

	memcpy(p, "set ", 4);
	keygen_key(g, k, p + 4);
	n = 4 + g->ksize;
	n += (size_t)sprintf(p + n, " 0 0 %u\r\n", vsize);
	keygen_value(k, p + n, vsize);
	n += vsize;
	memcpy(p + n, "\r\n", 2);
	return n + 2;
}

/* Store keys [first, last) with LOAD_DEPTH sets in flight. */
static int client_load(const struct opts *o, int id, uint64_t first, uint64_t last,
		       struct result *r)
{
	struct keygen g;
	struct conn c;
	bool kinds[LOAD_DEPTH] = {0};
	size_t cap = (size_t)LOAD_DEPTH * (o->ksize + o->vsize + 40);
	char *sb = malloc(cap);

	if (!sb || keygen_init(&g, o->keys, o->ksize, 0, 1) < 0 ||
	    dial(o, id, &c, r->err, sizeof(r->err)) < 0)
		return -1;
	for (uint64_t k = first; k < last;) {
		size_t n = 0;
		int d = 0;
		for (; d < LOAD_DEPTH && k < last; d++, k++)
			n += put_set(sb + n, &g, k, o->vsize);
		if (write_all(c.fd, sb, n) < 0 || read_replies(&c, kinds, d, o->vsize, r) < 0) {
			snprintf(r->err, sizeof(r->err), "connection lost while loading");
			return -1;
		}
		r->sets += (uint64_t)d;
	}
	close(c.fd);
	free(c.rb);
	free(sb);
	return r->errors ? -1 : 0;
}

static int client_run(const struct opts *o, int id, int ready_fd, int go_fd, struct result *r)
{
	struct keygen g;
	struct conn c;
	bool kinds[MAX_DEPTH];
	size_t cap = (size_t)o->depth * (o->ksize + o->vsize + 40);
	char *sb = malloc(cap), go;
	uint64_t t0, deadline;

	if (!sb ||
	    keygen_init(&g, o->keys, o->ksize, o->theta, o->seed * 7919 + (uint64_t)id + 1) < 0 ||
	    dial(o, id, &c, r->err, sizeof(r->err)) < 0) {
		if (!r->err[0])
			snprintf(r->err, sizeof(r->err), "client setup failed");
		return -1;
	}
	if (write(ready_fd, "r", 1) != 1 || read(go_fd, &go, 1) != 1)
		return -1;
	t0 = now_ns();
	deadline = t0 + (uint64_t)(o->duration * 1e9);
	for (uint64_t t = t0; t < deadline;) {
		size_t n = 0;
		uint64_t t1;
		for (int d = 0; d < o->depth; d++) {
			uint64_t k = keygen_next(&g);
			kinds[d] = o->get_ratio >= 1.0 || keygen_unit(&g) < o->get_ratio;
			n += kinds[d] ? put_get(sb + n, &g, k) : put_set(sb + n, &g, k, o->vsize);
		}
		if (write_all(c.fd, sb, n) < 0 ||
		    read_replies(&c, kinds, o->depth, o->vsize, r) < 0) {
			snprintf(r->err, sizeof(r->err), "connection lost");
			return -1;
		}
		t1 = now_ns();
		r->hist[hist_bucket(t1 - t)] += (uint64_t)o->depth;
		for (int d = 0; d < o->depth; d++)
			if (kinds[d])
				r->gets++;
			else
				r->sets++;
		r->ops += (uint64_t)o->depth;
		t = t1;
	}
	r->seconds = (double)(now_ns() - t0) / 1e9;
	close(c.fd);
	free(c.rb);
	free(sb);
	return 0;
}

/* ---- processes ------------------------------------------------------------- */

static int read_full(int fd, void *p, size_t n)
{
	char *b = p;
	while (n) {
		ssize_t r = read(fd, b, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Fork N children running `load` (true) or the measured run; sum results. */
static int run_children(const struct opts *o, bool load, struct result *sum)
{
	int res_fd[MAX_CLIENTS], ready[2], go[2], failed = 0;
	pid_t pid[MAX_CLIENTS];
	char c;

	memset(sum, 0, sizeof(*sum));
	if (pipe(ready) < 0 || pipe(go) < 0)
		return -1;
	for (int i = 0; i < o->clients; i++) {
		int p[2];
		if (pipe(p) < 0)
			return -1;
		fflush(NULL);
		pid[i] = fork();
		if (pid[i] < 0)
			return -1;
		if (pid[i] == 0) {
			struct result *r = calloc(1, sizeof(*r));
			int rc;
			close(p[0]);
			close(ready[0]);
			close(go[1]);
			if (load) {
				uint64_t per = o->keys / (uint64_t)o->clients;
				uint64_t first = per * (uint64_t)i;
				uint64_t last = i == o->clients - 1 ? o->keys : first + per;
				rc = client_load(o, i, first, last, r);
			} else {
				rc = client_run(o, i, ready[1], go[0], r);
			}
			if (rc < 0 && !r->err[0])
				snprintf(r->err, sizeof(r->err), "client %d failed", i);
			if (write(p[1], r, sizeof(*r)) != (ssize_t)sizeof(*r))
				_exit(1);
			_exit(rc < 0 ? 1 : 0);
		}
		close(p[1]);
		res_fd[i] = p[0];
	}
	close(ready[1]);
	close(go[0]);
	if (!load) {
		int n = 0;
		while (n < o->clients && read(ready[0], &c, 1) == 1)
			n++;
		for (int i = 0; i < n; i++)
			if (write(go[1], "g", 1) != 1)
				break;
	}
	close(go[1]);
	close(ready[0]);
	for (int i = 0; i < o->clients; i++) {
		struct result *r = calloc(1, sizeof(*r));
		if (!r || read_full(res_fd[i], r, sizeof(*r)) < 0) {
			failed++;
			if (r && !sum->err[0])
				snprintf(sum->err, sizeof(sum->err), "client %d died", i);
		} else {
			sum->ops += r->ops;
			sum->gets += r->gets;
			sum->hits += r->hits;
			sum->misses += r->misses;
			sum->sets += r->sets;
			sum->errors += r->errors;
			if (r->seconds > 0)
				sum->seconds += (double)r->ops / r->seconds; /* ops/s, summed */
			for (int b = 0; b < HIST_BUCKETS; b++)
				sum->hist[b] += r->hist[b];
			if (r->err[0] && !sum->err[0])
				snprintf(sum->err, sizeof(sum->err), "%s", r->err);
		}
		free(r);
		close(res_fd[i]);
	}
	for (int i = 0; i < o->clients; i++) {
		int st;
		while (waitpid(pid[i], &st, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			failed++;
	}
	return failed ? -1 : 0;
}

/* ---- native mode: `bench kv` in N nodes at once ------------------------------- */

static double json_num(const char *s, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(s, pat);
	return p ? strtod(p + strlen(pat), NULL) : NAN;
}

static int admin_dial(const char *dir, int id, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/node-%d.sock", dir, id);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(err, errlen, "cannot reach node %d at %s: %s", id, sa.sun_path,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int admin_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	while (n + 1 < cap) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		n += (size_t)r;
		if (memchr(buf, '\n', n))
			break;
	}
	buf[n] = '\0';
	return 0;
}

/* Send `cmd` to nodes 1..N at once, collect the replies. */
static int native_all(const struct opts *o, const char *cmd, int nodes, char replies[][1024],
		      char *err, size_t errlen)
{
	int fd[MAX_CLIENTS];

	for (int i = 0; i < nodes; i++) {
		fd[i] = admin_dial(o->native, i + 1, err, errlen);
		if (fd[i] < 0)
			return -1;
	}
	for (int i = 0; i < nodes; i++)
		if (write_all(fd[i], cmd, strlen(cmd)) < 0)
			return -1;
	for (int i = 0; i < nodes; i++) {
		if (admin_line(fd[i], replies[i], 1024) < 0) {
			snprintf(err, errlen, "node %d closed the admin socket", i + 1);
			return -1;
		}
		close(fd[i]);
		if (!strstr(replies[i], "\"ok\":true")) {
			snprintf(err, errlen, "node %d: %.120s", i + 1, replies[i]);
			return -1;
		}
	}
	return 0;
}

static int run_native(const struct opts *o, struct result *sum, double *p50, double *p99)
{
	static char replies[MAX_CLIENTS][1024];
	char cmd[256];

	memset(sum, 0, sizeof(*sum));
	if (o->load) {
		/* every node loads its share of the keys */
		for (int i = 0; i < o->clients; i++) {
			uint64_t per = o->keys / (uint64_t)o->clients;
			uint64_t first = per * (uint64_t)i;
			uint64_t count = i == o->clients - 1 ? o->keys - first : per;
			int fd = admin_dial(o->native, i + 1, sum->err, sizeof(sum->err));
			if (fd < 0)
				return -1;
			snprintf(cmd, sizeof(cmd), "bench kv load %llu %u:%u %llu %llu\n",
				 (unsigned long long)o->keys, o->ksize, o->vsize,
				 (unsigned long long)first, (unsigned long long)count);
			if (write_all(fd, cmd, strlen(cmd)) < 0 ||
			    admin_line(fd, replies[i], sizeof(replies[i])) < 0 ||
			    !strstr(replies[i], "\"ok\":true")) {
				snprintf(sum->err, sizeof(sum->err), "load at node %d: %.120s",
					 i + 1, replies[i]);
				close(fd);
				return -1;
			}
			close(fd);
		}
		if (o->load_only)
			return 0;
	}
	snprintf(cmd, sizeof(cmd), "bench kv get %llu %u:%u %.4f %.3f %d\n",
		 (unsigned long long)o->keys, o->ksize, o->vsize, o->theta, o->duration, o->depth);
	if (native_all(o, cmd, o->clients, replies, sum->err, sizeof(sum->err)) < 0)
		return -1;
	*p50 = 0;
	*p99 = 0;
	for (int i = 0; i < o->clients; i++) {
		double v50 = json_num(replies[i], "p50_ns"), v99 = json_num(replies[i], "p99_ns");
		sum->ops += (uint64_t)json_num(replies[i], "ops");
		sum->gets += (uint64_t)json_num(replies[i], "ops");
		sum->hits += (uint64_t)json_num(replies[i], "hits");
		sum->misses += (uint64_t)json_num(replies[i], "misses");
		sum->errors += (uint64_t)json_num(replies[i], "errors");
		sum->seconds += json_num(replies[i], "ops_per_sec");
		*p50 += v50 / o->clients; /* mean of the nodes' medians */
		if (v99 > *p99)
			*p99 = v99; /* the worst node's p99 */
	}
	return 0;
}

/* ---- main ---------------------------------------------------------------------- */

static const char usage[] =
    "usage: kvload --server HOST:PORT | --native RUN_DIR [options]\n"
    "\n"
    "  --server HOST:PORT  a memcached-protocol server (memcached, farmd --memcached-port);\n"
    "                      a comma-separated list spreads the clients over several\n"
    "                      servers (client i uses server i mod count)\n"
    "  --native RUN_DIR    FaRM's own client inside nodes 1..N of that cluster (bench kv)\n"
    "  --clients N         client processes, or nodes in native mode (default 2)\n"
    "  --keys K            key space (default 100000)\n"
    "  --key-size B        key bytes, >= 8 (default 16)\n"
    "  --value-size B      value bytes (default 32)\n"
    "  --dist D            uniform (default) or zipf\n"
    "  --theta T           Zipf skew (default 0.99)\n"
    "  --get-ratio R       share of GETs, the rest SETs (default 1.0)\n"
    "  --depth D           requests in flight per client (pipelining, default 1)\n"
    "  --duration S        seconds to measure (default 5)\n"
    "  --load              store every key first (--load-only: and stop)\n"
    "  --seed N            random seed (default 1)\n"
    "  --json              one JSON object on stdout\n"
    "\n"
    "Exit status: 0 ok, 1 failure (server unreachable, errors, GET misses after --load),\n"
    "2 bad arguments.\n";

static void bad(const char *what, const char *arg)
{
	fprintf(stderr, "kvload: %s '%s'\n(kvload --help for usage)\n", what, arg ? arg : "");
	exit(2);
}

static double num(const char *s, double min, double max, const char *what)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || !(v >= min && v <= max))
		bad(what, s);
	return v;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"server", 1, NULL, 's'},	 {"native", 1, NULL, 'N'},   {"clients", 1, NULL, 'c'},
	    {"keys", 1, NULL, 'k'},	 {"key-size", 1, NULL, 'K'}, {"value-size", 1, NULL, 'V'},
	    {"dist", 1, NULL, 'd'},	 {"theta", 1, NULL, 't'},    {"get-ratio", 1, NULL, 'g'},
	    {"depth", 1, NULL, 'D'},	 {"duration", 1, NULL, 'T'}, {"load", 0, NULL, 'l'},
	    {"load-only", 0, NULL, 'L'}, {"seed", 1, NULL, 'S'},     {"json", 0, NULL, 'j'},
	    {"help", 0, NULL, 'h'},	 {NULL, 0, NULL, 0}};
	struct opts o = {.clients = 2,
			 .depth = 1,
			 .keys = 100000,
			 .ksize = 16,
			 .vsize = 32,
			 .theta = 0.99,
			 .get_ratio = 1.0,
			 .duration = 5,
			 .seed = 1};
	bool zipf = false;
	struct result *sum;
	double p50 = 0, p99 = 0, p999 = 0, pmax = 0;
	struct keygen probe;
	int c, rc = 0;

	signal(SIGPIPE, SIG_IGN);
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 's': {
			char *list = strdup(optarg), *save = NULL;
			o.servers = optarg;
			for (char *t = strtok_r(list, ",", &save); t;
			     t = strtok_r(NULL, ",", &save)) {
				const char *colon = strrchr(t, ':');
				if (o.nservers == 8 || !colon || colon == t ||
				    strlen(colon + 1) >= sizeof(o.port[0]) ||
				    (size_t)(colon - t) >= sizeof(o.host[0]))
					bad("--server wants HOST:PORT[,HOST:PORT...] (up to 8), "
					    "got",
					    optarg);
				memcpy(o.host[o.nservers], t, (size_t)(colon - t));
				strcpy(o.port[o.nservers++], colon + 1);
			}
			free(list);
			break;
		}
		case 'N':
			o.native = optarg;
			break;
		case 'c':
			o.clients =
			    (int)num(optarg, 1, MAX_CLIENTS, "--clients must be 1..256, got");
			break;
		case 'k':
			o.keys = (uint64_t)num(optarg, 1, 1e12, "--keys must be 1..1e12, got");
			break;
		case 'K':
			o.ksize = (uint32_t)num(optarg, 8, 250, "--key-size must be 8..250, got");
			break;
		case 'V':
			o.vsize = (uint32_t)num(optarg, 0, 1 << 20,
						"--value-size must be 0..1048576, got");
			break;
		case 'd':
			if (strcmp(optarg, "zipf") == 0)
				zipf = true;
			else if (strcmp(optarg, "uniform") != 0)
				bad("--dist must be uniform or zipf, got", optarg);
			break;
		case 't':
			o.theta = num(optarg, 0.01, 0.999, "--theta must be in (0, 1), got");
			break;
		case 'g':
			o.get_ratio = num(optarg, 0, 1, "--get-ratio must be 0..1, got");
			break;
		case 'D':
			o.depth = (int)num(optarg, 1, MAX_DEPTH, "--depth must be 1..1024, got");
			break;
		case 'T':
			o.duration =
			    num(optarg, 0.01, 3600, "--duration must be 0.01..3600 s, got");
			break;
		case 'l':
			o.load = true;
			break;
		case 'L':
			o.load = o.load_only = true;
			break;
		case 'S':
			o.seed = (uint64_t)num(optarg, 0, 1e18, "--seed, got");
			break;
		case 'j':
			o.json = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			bad("unknown option", argv[optind - 1]);
		}
	}
	if (optind < argc)
		bad("unexpected argument", argv[optind]);
	if (!o.nservers == !o.native)
		bad("give exactly one of --server HOST:PORT and --native RUN_DIR", "");
	if (!zipf)
		o.theta = 0;
	if (keygen_init(&probe, o.keys, o.ksize, 0, 1) < 0)
		bad("--keys does not fit in --key-size bytes (\"key:\" + the index)", "");
	sum = calloc(1, sizeof(*sum));
	if (!sum)
		return 1;

	if (o.native) {
		rc = run_native(&o, sum, &p50, &p99);
	} else {
		if (o.load)
			rc = run_children(&o, true, sum);
		if (rc == 0 && !o.load_only)
			rc = run_children(&o, false, sum);
		p50 = hist_pct(sum->hist, 50);
		p99 = hist_pct(sum->hist, 99);
		p999 = hist_pct(sum->hist, 99.9);
		pmax = hist_pct(sum->hist, 100);
	}
	if (rc < 0 || sum->errors || (o.load && sum->misses)) {
		fprintf(stderr, "kvload: %s%s\n", sum->err[0] ? sum->err : "failed",
			sum->misses ? " (GETs of loaded keys missed)" : "");
		rc = -1;
	}
	if (o.load_only) {
		if (!o.json)
			printf("loaded %llu keys\n", (unsigned long long)o.keys);
		else
			printf("{\"loaded\":%llu,\"ok\":%s}\n", (unsigned long long)o.keys,
			       rc < 0 ? "false" : "true");
		free(sum);
		return rc < 0 ? 1 : 0;
	}
	if (o.json) {
		printf("{\"mode\":\"%s\",\"target\":\"%s\",\"clients\":%d,\"keys\":%llu,"
		       "\"key_size\":%u,\"value_size\":%u,\"dist\":\"%s\",\"theta\":%.3f,"
		       "\"get_ratio\":%.3f,\"depth\":%d,\"duration_s\":%.3f,\"ops\":%llu,"
		       "\"ops_per_sec\":%.0f,\"gets\":%llu,\"hits\":%llu,\"misses\":%llu,"
		       "\"sets\":%llu,\"errors\":%llu,\"p50_us\":%.2f,\"p99_us\":%.2f,"
		       "\"p999_us\":%.2f,\"max_us\":%.2f,\"ok\":%s}\n",
		       o.native ? "native" : "memcached", o.native ? o.native : o.servers,
		       o.clients, (unsigned long long)o.keys, o.ksize, o.vsize,
		       zipf ? "zipf" : "uniform", o.theta, o.get_ratio, o.depth, o.duration,
		       (unsigned long long)sum->ops, sum->seconds, (unsigned long long)sum->gets,
		       (unsigned long long)sum->hits, (unsigned long long)sum->misses,
		       (unsigned long long)sum->sets, (unsigned long long)sum->errors, p50 / 1e3,
		       p99 / 1e3, p999 / 1e3, pmax / 1e3, rc < 0 ? "false" : "true");
	} else {
		printf("%s %s: %d clients, %llu keys, %u B keys, %u B values, %s, depth %d\n",
		       o.native ? "native" : "memcached", o.native ? o.native : o.servers,
		       o.clients, (unsigned long long)o.keys, o.ksize, o.vsize,
		       zipf ? "zipf" : "uniform", o.depth);
		printf("  %.0f ops/s (%llu ops: %llu gets, %llu hits, %llu misses, %llu sets, "
		       "%llu errors)\n",
		       sum->seconds, (unsigned long long)sum->ops, (unsigned long long)sum->gets,
		       (unsigned long long)sum->hits, (unsigned long long)sum->misses,
		       (unsigned long long)sum->sets, (unsigned long long)sum->errors);
		printf("  latency p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us\n",
		       p50 / 1e3, p99 / 1e3, p999 / 1e3, pmax / 1e3);
	}
	free(sum);
	return rc < 0 ? 1 : 0;
}
