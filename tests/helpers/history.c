/*
 * history.c - see history.h. Three parts: the log (append and parse
 * records), the history (transactions and their reads and writes in
 * growable arrays), and the check (versions, graph, Tarjan's strongly
 * connected components, and a shortest cycle spelt out per bad component).
 *
 * Sized for a million transactions: the graph is a compressed adjacency
 * array of 32-bit node numbers built in two passes, Tarjan runs with an
 * explicit stack, and edge labels (wr/ww/rw/rt and the object) are not
 * stored but worked out again for the few edges of a reported cycle.
 */
#include "helpers/history.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REC_MAGIC 0x48545831u /* "HTX1" */
#define NONE	  UINT32_MAX

/* ---- log ------------------------------------------------------------------ */

struct rec {
	uint32_t magic;
	uint32_t committed;
	uint64_t id, start_ns, end_ns;
	uint32_t nreads, nwrites;
};

void hist_log_init(struct hist_log *l, void *mem, size_t cap)
{
	l->buf = mem;
	l->cap = cap;
	l->len = 0;
	l->records = l->dropped = 0;
}

size_t hist_rec_size(uint32_t nreads, uint32_t nwrites)
{
	return sizeof(struct rec) + (size_t)nreads * sizeof(struct hist_read) +
	       (size_t)nwrites * sizeof(struct hist_write);
}

int hist_log_add(struct hist_log *l, const struct hist_tx *t)
{
	struct rec r = {REC_MAGIC, t->committed, t->id,	    t->start_ns,
			t->end_ns, t->nreads,	 t->nwrites};
	size_t need, rb = (size_t)t->nreads * sizeof(struct hist_read);
	uint8_t *p;

	if (t->nreads > HIST_MAX_OPS || t->nwrites > HIST_MAX_OPS)
		return -EINVAL;
	need = hist_rec_size(t->nreads, t->nwrites);
	if (l->cap - l->len < need) {
		l->dropped++;
		return -ENOSPC;
	}
	p = l->buf + l->len;
	memcpy(p, &r, sizeof(r));
	if (rb)
		memcpy(p + sizeof(r), t->reads, rb);
	if (t->nwrites)
		memcpy(p + sizeof(r) + rb, t->writes,
		       (size_t)t->nwrites * sizeof(struct hist_write));
	l->len += need;
	l->records++;
	return 0;
}

int hist_log_save(const struct hist_log *l, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t off = 0;

	if (fd < 0)
		return -errno;
	while (off < l->len) {
		ssize_t k = write(fd, l->buf + off, l->len - off);
		if (k < 0) {
			int rc = -errno;
			close(fd);
			return rc;
		}
		off += (size_t)k;
	}
	return close(fd) < 0 ? -errno : 0;
}

/* ---- history -------------------------------------------------------------- */

struct htx {
	uint64_t id, start, end;
	size_t roff, woff;
	uint32_t nr, nw;
	bool committed;
};

struct history {
	struct htx *tx;
	size_t ntx, captx;
	struct hist_read *r;
	size_t nr, capr;
	struct hist_write *w;
	size_t nw, capw;
};

struct history *hist_new(void)
{
	return calloc(1, sizeof(struct history));
}

void hist_free(struct history *h)
{
	if (!h)
		return;
	free(h->tx);
	free(h->r);
	free(h->w);
	free(h);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t c = *cap ? *cap : 1024;
	void *q;

	if (need <= *cap)
		return 0;
	while (c < need)
		c *= 2;
	q = realloc(*p, c * elem);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = c;
	return 0;
}

int hist_add(struct history *h, const struct hist_tx *t)
{
	struct htx *x;

	if (grow((void **)&h->tx, &h->captx, h->ntx + 1, sizeof(*h->tx)) < 0 ||
	    grow((void **)&h->r, &h->capr, h->nr + t->nreads, sizeof(*h->r)) < 0 ||
	    grow((void **)&h->w, &h->capw, h->nw + t->nwrites, sizeof(*h->w)) < 0)
		return -ENOMEM;
	x = &h->tx[h->ntx++];
	*x = (struct htx){t->id, t->start_ns, t->end_ns,  h->nr,
			  h->nw, t->nreads,   t->nwrites, t->committed};
	if (t->nreads)
		memcpy(h->r + h->nr, t->reads, t->nreads * sizeof(*h->r));
	if (t->nwrites)
		memcpy(h->w + h->nw, t->writes, t->nwrites * sizeof(*h->w));
	h->nr += t->nreads;
	h->nw += t->nwrites;
	return 0;
}

int hist_merge(struct history *h, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t off = 0;

	while (off < len) {
		struct rec r;
		size_t need;

		if (len - off < sizeof(r))
			return -EPROTO;
		memcpy(&r, p + off, sizeof(r));
		if (r.magic != REC_MAGIC || r.committed > 1 || r.nreads > HIST_MAX_OPS ||
		    r.nwrites > HIST_MAX_OPS)
			return -EPROTO;
		need = hist_rec_size(r.nreads, r.nwrites);
		if (len - off < need)
			return -EPROTO;
		/* Copied straight into the arrays: memcpy does not mind if the
		 * caller's bytes are unaligned. */
		if (grow((void **)&h->tx, &h->captx, h->ntx + 1, sizeof(*h->tx)) < 0 ||
		    grow((void **)&h->r, &h->capr, h->nr + r.nreads, sizeof(*h->r)) < 0 ||
		    grow((void **)&h->w, &h->capw, h->nw + r.nwrites, sizeof(*h->w)) < 0)
			return -ENOMEM;
		h->tx[h->ntx++] = (struct htx){r.id,  r.start_ns, r.end_ns,  h->nr,
					       h->nw, r.nreads,	  r.nwrites, r.committed != 0};
		if (r.nreads)
			memcpy(h->r + h->nr, p + off + sizeof(r), r.nreads * sizeof(*h->r));
		if (r.nwrites)
			memcpy(h->w + h->nw, p + off + sizeof(r) + r.nreads * sizeof(*h->r),
			       r.nwrites * sizeof(*h->w));
		h->nr += r.nreads;
		h->nw += r.nwrites;
		off += need;
	}
	return 0;
}

int hist_merge_file(struct history *h, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;
	size_t len = 0, cap = 1 << 20;
	uint8_t *buf;

	if (fd < 0)
		return -errno;
	buf = malloc(cap);
	for (;;) {
		ssize_t k;
		if (!buf) {
			close(fd);
			return -ENOMEM;
		}
		if (len == cap) {
			uint8_t *q = realloc(buf, cap *= 2);
			if (!q) {
				free(buf);
				close(fd);
				return -ENOMEM;
			}
			buf = q;
		}
		k = read(fd, buf + len, cap - len);
		if (k < 0) {
			rc = -errno;
			free(buf);
			close(fd);
			return rc;
		}
		if (k == 0)
			break;
		len += (size_t)k;
	}
	close(fd);
	rc = hist_merge(h, buf, len);
	free(buf);
	return rc;
}

/* ---- check ---------------------------------------------------------------- */

/* A version some transaction installed: object, version, and who (an index
 * into the committed list, or into the history for aborted writes). */
struct ver {
	uint64_t obj, ver;
	uint32_t tx;
};

struct check {
	struct history *h;
	struct hist_report *rep;
	uint32_t n;	  /* committed transactions = tx nodes 0..n-1 */
	uint32_t *ctx;	  /* committed index -> history index */
	struct ver *vers; /* committed writes, sorted by (obj, ver) */
	size_t nvers;
	struct ver *avers; /* aborted writes, sorted: only to explain bad reads */
	size_t navers;
	uint32_t nodes; /* n tx nodes, then n end-time nodes */
	uint32_t *from, *to;
	size_t nedges, capedges;
	size_t *first; /* edges of node v: adj[first[v] .. first[v + 1]) */
	uint32_t *adj;
	uint32_t *comp; /* node -> strongly connected component */
	uint32_t ncomp;
};

static void say(struct hist_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct hist_report *r, const char *fmt, ...)
{
	size_t len = strlen(r->text);
	va_list ap;

	if (len + 1 >= sizeof(r->text))
		return;
	va_start(ap, fmt);
	vsnprintf(r->text + len, sizeof(r->text) - len, fmt, ap);
	va_end(ap);
}

static unsigned long long id_of(const struct check *c, uint32_t k)
{
	return (unsigned long long)c->h->tx[c->ctx[k]].id;
}

static const struct htx *tx_of(const struct check *c, uint32_t k)
{
	return &c->h->tx[c->ctx[k]];
}

static int cmp_ver(const void *a, const void *b)
{
	const struct ver *x = a, *y = b;

	if (x->obj != y->obj)
		return x->obj < y->obj ? -1 : 1;
	if (x->ver != y->ver)
		return x->ver < y->ver ? -1 : 1;
	return x->tx < y->tx ? -1 : x->tx > y->tx;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* First entry of v[0..n) at or after (obj, ver). */
static size_t lower(const struct ver *v, size_t n, uint64_t obj, uint64_t ver)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v[mid].obj < obj || (v[mid].obj == obj && v[mid].ver < ver))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The committed writer of (obj, ver), or NONE. */
static uint32_t writer_of(const struct check *c, uint64_t obj, uint64_t ver)
{
	size_t i = lower(c->vers, c->nvers, obj, ver);

	return i < c->nvers && c->vers[i].obj == obj && c->vers[i].ver == ver ? c->vers[i].tx
									      : NONE;
}

/* The committed writer of the first version of obj after ver, or NONE;
 * *next gets that version. */
static uint32_t next_writer(const struct check *c, uint64_t obj, uint64_t ver, uint64_t *next)
{
	size_t i = lower(c->vers, c->nvers, obj, ver + 1);

	if (i < c->nvers && c->vers[i].obj == obj) {
		if (next)
			*next = c->vers[i].ver;
		return c->vers[i].tx;
	}
	return NONE;
}

static int add_edge(struct check *c, uint32_t a, uint32_t b)
{
	if (a == b || a == NONE || b == NONE)
		return 0;
	if (c->nedges == c->capedges) {
		size_t cap = c->capedges ? c->capedges * 2 : 4096;
		uint32_t *f = realloc(c->from, cap * sizeof(*f));
		if (!f)
			return -ENOMEM;
		c->from = f;
		uint32_t *t = realloc(c->to, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		c->to = t;
		c->capedges = cap;
	}
	c->from[c->nedges] = a;
	c->to[c->nedges] = b;
	c->nedges++;
	return 0;
}

/* Ids non-zero and unique, end >= start, no write of version 0; and the
 * committed list. */
static int check_records(struct check *c)
{
	struct history *h = c->h;
	struct hist_report *r = c->rep;
	uint64_t *ids = malloc((h->ntx + 1) * sizeof(*ids));

	if (!ids)
		return -ENOMEM;
	for (size_t i = 0; i < h->ntx; i++) {
		struct htx *t = &h->tx[i];
		ids[i] = t->id;
		if (t->id == 0) {
			r->bad_records++;
			say(r, "record %zu: transaction id 0\n", i);
		}
		if (t->end < t->start) {
			r->bad_records++;
			say(r, "T%#llx: ends (%llu) before it starts (%llu)\n",
			    (unsigned long long)t->id, (unsigned long long)t->end,
			    (unsigned long long)t->start);
			t->end = t->start; /* keeps the real-time order acyclic */
		}
		for (uint32_t k = 0; k < t->nw; k++)
			if (h->w[t->woff + k].ver == 0) {
				r->bad_records++;
				say(r, "T%#llx: writes version 0 (the initial state) of %#llx\n",
				    (unsigned long long)t->id,
				    (unsigned long long)h->w[t->woff + k].obj);
			}
		if (t->committed) {
			c->ctx[c->n++] = (uint32_t)i;
			r->committed++;
			r->reads += t->nr;
			r->writes += t->nw;
		} else {
			r->aborted++;
		}
	}
	qsort(ids, h->ntx, sizeof(*ids), cmp_u64);
	for (size_t i = 1; i < h->ntx; i++)
		if (ids[i] == ids[i - 1] && ids[i] != 0 && (i == 1 || ids[i - 2] != ids[i])) {
			r->bad_records++;
			say(r, "T%#llx: the id of more than one record\n",
			    (unsigned long long)ids[i]);
		}
	free(ids);
	return 0;
}

/* Committed versions sorted (and each installed once), aborted ones too. */
static int collect_versions(struct check *c)
{
	struct history *h = c->h;
	size_t nc = 0, na = 0;

	for (size_t i = 0; i < h->ntx; i++)
		*(h->tx[i].committed ? &nc : &na) += h->tx[i].nw;
	c->vers = malloc((nc + 1) * sizeof(*c->vers));
	c->avers = malloc((na + 1) * sizeof(*c->avers));
	if (!c->vers || !c->avers)
		return -ENOMEM;
	for (uint32_t k = 0; k < c->n; k++) {
		const struct htx *t = tx_of(c, k);
		for (uint32_t j = 0; j < t->nw; j++)
			c->vers[c->nvers++] =
			    (struct ver){h->w[t->woff + j].obj, h->w[t->woff + j].ver, k};
	}
	for (size_t i = 0; i < h->ntx; i++) {
		const struct htx *t = &h->tx[i];
		for (uint32_t j = 0; !t->committed && j < t->nw; j++)
			c->avers[c->navers++] =
			    (struct ver){h->w[t->woff + j].obj, h->w[t->woff + j].ver, (uint32_t)i};
	}
	qsort(c->vers, c->nvers, sizeof(*c->vers), cmp_ver);
	qsort(c->avers, c->navers, sizeof(*c->avers), cmp_ver);
	for (size_t i = 1; i < c->nvers; i++) {
		const struct ver *a = &c->vers[i - 1], *b = &c->vers[i];
		if (a->obj != b->obj || a->ver != b->ver)
			continue;
		c->rep->dup_versions++;
		if (a->tx == b->tx)
			say(c->rep, "T%#llx: installs version %llu of %#llx twice\n",
			    id_of(c, a->tx), (unsigned long long)a->ver,
			    (unsigned long long)a->obj);
		else
			say(c->rep,
			    "lost update: T%#llx and T%#llx both committed version %llu of %#llx\n",
			    id_of(c, a->tx), id_of(c, b->tx), (unsigned long long)a->ver,
			    (unsigned long long)a->obj);
	}
	return 0;
}

/* Why a committed read of (obj, ver) has no committed writer. */
static void explain_bad_read(struct check *c, uint32_t k, const struct hist_read *rd)
{
	size_t i = lower(c->avers, c->navers, rd->obj, rd->ver);

	if (i < c->navers && c->avers[i].obj == rd->obj && c->avers[i].ver == rd->ver)
		say(c->rep,
		    "T%#llx read version %llu of %#llx, installed only by T%#llx, which aborted\n",
		    id_of(c, k), (unsigned long long)rd->ver, (unsigned long long)rd->obj,
		    (unsigned long long)c->h->tx[c->avers[i].tx].id);
	else
		say(c->rep,
		    "T%#llx read version %llu of %#llx (writer T%#llx), which no committed "
		    "transaction installed\n",
		    id_of(c, k), (unsigned long long)rd->ver, (unsigned long long)rd->obj,
		    (unsigned long long)rd->writer);
}

/* wr, ww and rw edges; bad reads and writer ids on the way. */
static int data_edges(struct check *c)
{
	struct history *h = c->h;
	struct hist_report *r = c->rep;

	for (uint32_t k = 0; k < c->n; k++) {
		const struct htx *t = tx_of(c, k);
		for (uint32_t j = 0; j < t->nr; j++) {
			const struct hist_read *rd = &h->r[t->roff + j];
			if (rd->ver == 0) {
				if (rd->writer != 0) {
					r->bad_writers++;
					say(r,
					    "T%#llx read the initial version of %#llx with writer "
					    "T%#llx\n",
					    id_of(c, k), (unsigned long long)rd->obj,
					    (unsigned long long)rd->writer);
				}
			} else {
				uint32_t w = writer_of(c, rd->obj, rd->ver);
				if (w == NONE) {
					r->bad_reads++;
					explain_bad_read(c, k, rd);
				} else if (rd->writer != tx_of(c, w)->id) {
					r->bad_writers++;
					say(r,
					    "T%#llx read version %llu of %#llx carrying writer "
					    "T%#llx, "
					    "but T%#llx committed that version\n",
					    id_of(c, k), (unsigned long long)rd->ver,
					    (unsigned long long)rd->obj,
					    (unsigned long long)rd->writer, id_of(c, w));
				}
				if (add_edge(c, w, k) < 0) /* wr */
					return -ENOMEM;
			}
			if (add_edge(c, k, next_writer(c, rd->obj, rd->ver, NULL)) < 0) /* rw */
				return -ENOMEM;
		}
		for (uint32_t j = 0; j < t->nw; j++) {
			const struct hist_write *wr = &h->w[t->woff + j];
			if (add_edge(c, k, next_writer(c, wr->obj, wr->ver, NULL)) < 0) /* ww */
				return -ENOMEM;
		}
	}
	return 0;
}

struct endkey {
	uint64_t end;
	uint32_t k;
};

static int cmp_end(const void *a, const void *b)
{
	const struct endkey *x = a, *y = b;

	return x->end < y->end ? -1 : x->end > y->end;
}

/* Real time through a chain of end-time nodes (see history.h): node n + i
 * is the i-th end in time order. */
static int time_edges(struct check *c)
{
	uint32_t n = c->n;
	struct endkey *order = malloc((n + 1) * sizeof(*order));
	uint64_t *ends = malloc((n + 1) * sizeof(*ends));
	int rc = 0;

	if (!order || !ends) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t k = 0; k < n; k++)
		order[k] = (struct endkey){tx_of(c, k)->end, k};
	qsort(order, n, sizeof(*order), cmp_end);
	for (uint32_t i = 0; i < n && rc == 0; i++) {
		ends[i] = order[i].end;
		rc = add_edge(c, order[i].k, n + i);
		if (rc == 0 && i + 1 < n)
			rc = add_edge(c, n + i, n + i + 1);
	}
	for (uint32_t k = 0; k < n && rc == 0; k++) {
		uint64_t start = tx_of(c, k)->start;
		uint32_t lo = 0, hi = n; /* ends before `start`: [0, lo) */
		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;
			if (ends[mid] < start)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo > 0)
			rc = add_edge(c, n + lo - 1, k);
	}
out:
	free(order);
	free(ends);
	return rc;
}

static int build_csr(struct check *c)
{
	c->first = calloc((size_t)c->nodes + 1, sizeof(*c->first));
	c->adj = malloc((c->nedges + 1) * sizeof(*c->adj));
	if (!c->first || !c->adj)
		return -ENOMEM;
	for (size_t e = 0; e < c->nedges; e++)
		c->first[c->from[e] + 1]++;
	for (uint32_t v = 0; v < c->nodes; v++)
		c->first[v + 1] += c->first[v];
	size_t *fill = malloc(((size_t)c->nodes + 1) * sizeof(*fill));
	if (!fill)
		return -ENOMEM;
	memcpy(fill, c->first, ((size_t)c->nodes + 1) * sizeof(*fill));
	for (size_t e = 0; e < c->nedges; e++)
		c->adj[fill[c->from[e]]++] = c->to[e];
	free(fill);
	free(c->from);
	free(c->to);
	c->from = c->to = NULL;
	return 0;
}

/* Tarjan's strongly connected components, with an explicit stack. */
static int tarjan(struct check *c)
{
	uint32_t N = c->nodes, counter = 0, sp = 0, csp = 0;
	uint32_t *idx = malloc((N + 1) * sizeof(*idx)), *low = malloc((N + 1) * sizeof(*low));
	uint32_t *stack = malloc((N + 1) * sizeof(*stack)), *cs = malloc((N + 1) * sizeof(*cs));
	size_t *ce = malloc((N + 1) * sizeof(*ce));
	uint8_t *on = calloc(N + 1, 1);
	int rc = 0;

	c->comp = malloc((N + 1) * sizeof(*c->comp));
	if (!idx || !low || !stack || !cs || !ce || !on || !c->comp) {
		rc = -ENOMEM;
		goto out;
	}
	memset(idx, 0xff, (N + 1) * sizeof(*idx));
	for (uint32_t s = 0; s < N; s++) {
		if (idx[s] != NONE)
			continue;
		idx[s] = low[s] = counter++;
		stack[sp++] = s;
		on[s] = 1;
		cs[csp] = s;
		ce[csp++] = c->first[s];
		while (csp) {
			uint32_t v = cs[csp - 1];
			if (ce[csp - 1] < c->first[v + 1]) {
				uint32_t w = c->adj[ce[csp - 1]++];
				if (idx[w] == NONE) {
					idx[w] = low[w] = counter++;
					stack[sp++] = w;
					on[w] = 1;
					cs[csp] = w;
					ce[csp++] = c->first[w];
				} else if (on[w] && idx[w] < low[v]) {
					low[v] = idx[w];
				}
				continue;
			}
			if (low[v] == idx[v]) {
				uint32_t x;
				do {
					x = stack[--sp];
					on[x] = 0;
					c->comp[x] = c->ncomp;
				} while (x != v);
				c->ncomp++;
			}
			if (--csp) {
				uint32_t u = cs[csp - 1];
				if (low[v] < low[u])
					low[u] = low[v];
			}
		}
	}
out:
	free(idx);
	free(low);
	free(stack);
	free(cs);
	free(ce);
	free(on);
	return rc;
}

/* Why a -> b (two committed transactions joined by a direct edge). */
static void label(const struct check *c, uint32_t a, uint32_t b, char *out, size_t len)
{
	const struct history *h = c->h;
	const struct htx *ta = tx_of(c, a), *tb = tx_of(c, b);
	uint64_t next;

	for (uint32_t j = 0; j < tb->nr; j++) {
		const struct hist_read *rd = &h->r[tb->roff + j];
		if (rd->ver && writer_of(c, rd->obj, rd->ver) == a) {
			snprintf(out, len, "wr %#llx v%llu", (unsigned long long)rd->obj,
				 (unsigned long long)rd->ver);
			return;
		}
	}
	for (uint32_t j = 0; j < ta->nw; j++) {
		const struct hist_write *wr = &h->w[ta->woff + j];
		if (next_writer(c, wr->obj, wr->ver, &next) == b) {
			snprintf(out, len, "ww %#llx v%llu<v%llu", (unsigned long long)wr->obj,
				 (unsigned long long)wr->ver, (unsigned long long)next);
			return;
		}
	}
	for (uint32_t j = 0; j < ta->nr; j++) {
		const struct hist_read *rd = &h->r[ta->roff + j];
		if (next_writer(c, rd->obj, rd->ver, &next) == b) {
			snprintf(out, len, "rw %#llx read v%llu, next v%llu",
				 (unsigned long long)rd->obj, (unsigned long long)rd->ver,
				 (unsigned long long)next);
			return;
		}
	}
	snprintf(out, len, "?");
}

#define CYCLE_SHOW 16 /* hops of a long cycle spelt out */

/* A shortest cycle through tx node s inside its component, spelt out. */
static int describe_cycle(struct check *c, uint32_t s, uint32_t size)
{
	uint32_t N = c->nodes, *par = malloc((N + 1) * sizeof(*par));
	uint32_t *q = malloc((N + 1) * sizeof(*q)), qh = 0, qt = 0, last = NONE;

	if (!par || !q) {
		free(par);
		free(q);
		return -ENOMEM;
	}
	memset(par, 0xff, (N + 1) * sizeof(*par));
	par[s] = s;
	q[qt++] = s;
	while (qh < qt && last == NONE) {
		uint32_t u = q[qh++];
		for (size_t e = c->first[u]; e < c->first[u + 1]; e++) {
			uint32_t w = c->adj[e];
			if (c->comp[w] != c->comp[s])
				continue;
			if (w == s) {
				last = u;
				break;
			}
			if (par[w] == NONE) {
				par[w] = u;
				q[qt++] = w;
			}
		}
	}
	/* The path s -> ... -> last, reversed into q. */
	uint32_t len = 0;
	for (uint32_t v = last; v != NONE; v = v == s ? NONE : par[v])
		q[len++] = v;
	say(c->rep, "cycle among %u transactions: T%#llx", size, id_of(c, s));
	uint32_t a = s, hops = 0;
	bool through_time = false;
	for (uint32_t step = 1; step <= len; step++) {
		uint32_t v = step < len ? q[len - 1 - step] : s;
		if (v >= c->n) { /* an end-time node: real-time order */
			through_time = true;
			continue;
		}
		if (hops++ < CYCLE_SHOW) {
			char why[160];
			if (through_time)
				snprintf(why, sizeof(why), "rt end %llu < start %llu",
					 (unsigned long long)tx_of(c, a)->end,
					 (unsigned long long)tx_of(c, v)->start);
			else
				label(c, a, v, why, sizeof(why));
			say(c->rep, " -[%s]-> T%#llx", why, id_of(c, v));
		} else if (hops == CYCLE_SHOW + 1) {
			say(c->rep, " ...");
		}
		through_time = false;
		a = v;
	}
	say(c->rep, "\n");
	free(par);
	free(q);
	return 0;
}

static int find_cycles(struct check *c)
{
	uint32_t *count = calloc((size_t)c->ncomp + 1, sizeof(*count));
	uint32_t shown = 0;
	int rc = 0;

	if (!count)
		return -ENOMEM;
	for (uint32_t k = 0; k < c->n; k++)
		count[c->comp[k]]++;
	for (uint32_t k = 0; k < c->n && rc == 0; k++) {
		uint32_t m = count[c->comp[k]];
		if (m < 2)
			continue;
		c->rep->cycles++;
		c->rep->cycle_txs += m;
		count[c->comp[k]] = 0; /* once per component */
		if (shown++ < 3)
			rc = describe_cycle(c, k, m);
	}
	free(count);
	return rc;
}

int hist_check(struct history *h, struct hist_report *r)
{
	struct check c = {.h = h, .rep = r};
	int rc;

	memset(r, 0, sizeof(*r));
	r->txs = h->ntx;
	if (h->ntx >= NONE / 2)
		return -E2BIG;
	c.ctx = malloc((h->ntx + 1) * sizeof(*c.ctx));
	if (!c.ctx)
		return -ENOMEM;
	if ((rc = check_records(&c)) < 0 || (rc = collect_versions(&c)) < 0 ||
	    (rc = data_edges(&c)) < 0)
		goto out;
	c.nodes = 2 * c.n;
	if ((rc = time_edges(&c)) < 0 || (rc = build_csr(&c)) < 0 || (rc = tarjan(&c)) < 0 ||
	    (rc = find_cycles(&c)) < 0)
		goto out;
	r->nodes = c.nodes;
	r->edges = c.nedges;
	r->anomalies = r->cycles + r->dup_versions + r->bad_reads + r->bad_writers + r->bad_records;
out:
	free(c.ctx);
	free(c.vers);
	free(c.avers);
	free(c.from);
	free(c.to);
	free(c.first);
	free(c.adj);
	free(c.comp);
	return rc;
}
