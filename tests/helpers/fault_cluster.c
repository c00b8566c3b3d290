/*
 * fault_cluster.c - see fault_cluster.h. The member process (node_main)
 * first, then what the parent drives (flt_up .. flt_down), then the
 * judge. The member is shaped like farmd with --zk so that what is tested
 * is the path a real deployment runs; only the application differs.
 */
#include "helpers/fault_cluster.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers/netns.h"
#include "helpers/proc.h"
#include "helpers/replicas.h"
#include "membership.h"
#include "membership_node.h"
#include "node.h"
#include "object.h"
#include "rerep.h"
#include "slab.h"
#include "tx.h"
#include "workload.h"

#define INITIAL	     1000
#define MAX_TRANSFER 300
#define FINAL_ID     ((0x7ffull << 48) | 1)
#define REHELLO_NS   (2000ull * 1000000ull)

struct account { /* the bank's layout (workload_bank.c) */
	uint64_t ver, writer;
	int64_t balance;
};

/* Per node, shared: the highest sequence of each writer node seen by a
 * committed read, and the newest committed version of each account. */
struct flt_track {
	uint64_t seen[FLT_MAX_NODES];
	uint64_t top_ver[FLT_MAX_ACCTS], top_writer[FLT_MAX_ACCTS];
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* ---- the member process --------------------------------------------------------------- */

struct nctx {
	struct flt_cluster *c;
	struct flt_shared *sh;
	struct flt_node *me;
	struct flt_track *tr;
	int idx;
	uint32_t id;
	struct farm *f;
	struct farm_membership *m;
	struct farm_bank *b;
	uint64_t rng, seq, rehello_until;
	bool out; /* removed from the configuration: no data path */
	struct farm_mchange ch;
	struct hist_read rd[FLT_MAX_ACCTS];
	struct hist_write wr[2];
};

static struct flt_shared *g_sh;
static int g_idx;
static struct farm *g_f;
static const uint64_t *g_until;

static void on_serving(void *arg, bool on)
{
	struct farm *f = __atomic_load_n(&g_f, __ATOMIC_ACQUIRE);
	struct flt_node *me = &g_sh->node[g_idx];

	(void)arg;
	if (f)
		farm__lease_fence(f, on);
	if (!on && __atomic_load_n(&me->serving, __ATOMIC_ACQUIRE)) {
		if (!me->lease_drops)
			__atomic_store_n(&me->lease_end_ns, g_until ? *g_until : now_ns(),
					 __ATOMIC_RELEASE);
		__atomic_add_fetch(&me->lease_drops, 1, __ATOMIC_ACQ_REL);
	}
	__atomic_store_n(&me->serving, on, __ATOMIC_RELEASE);
}

static void note(struct flt_node *me, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(me->note, sizeof(me->note), fmt, ap);
	va_end(ap);
}

static uint64_t mask_of(const struct farm_config *cfg)
{
	uint64_t m = 0;

	for (uint32_t i = 0; i < cfg->nmembers; i++)
		if (cfg->members[i].id < 64)
			m |= 1ull << cfg->members[i].id;
	return m;
}

static void publish_roles(struct nctx *x, int8_t *role)
{
	for (uint32_t r = 0; r < FLT_MAX_REGIONS; r++)
		role[r] = (int8_t)(x->f && r < x->f->cfg.regions && x->f->regions[r].mine
					   ? x->f->regions[r].mine->role
					   : -1);
}

static void mpoll(struct nctx *x);

static void try_rejoin(struct nctx *x, const struct farm_config *next)
{
	struct farm_config cfg = *next;
	struct flt_node *me = x->me;
	int rc;

	memcpy(cfg.run_dir, x->c->seed.run_dir, sizeof(cfg.run_dir));
	__atomic_store_n(&g_f, NULL, __ATOMIC_RELEASE);
	farm_bank_close(x->b);
	x->b = NULL;
	if (x->f)
		farm_node_stop(x->f);
	x->f = NULL;
	rc = farm_node_start_err(&cfg, x->id, 8000, &x->f, me->rejoin_err,
				 sizeof(me->rejoin_err));
	me->rejoin_rc = rc ? rc : 1;
	if (rc) {
		/* As farmd does when it cannot serve: leave, so the CM takes
		 * us out again and the survivors lead our regions again. */
		x->f = NULL;
		farm_membership_stop(x->m);
		x->m = NULL;
		return;
	}
	farm__membership_attach(x->f, farm_membership_serving_flag(x->m),
				farm_membership_lease_until(x->m));
	farm__membership_attach_changes(x->f, x->m);
	__atomic_store_n(&g_f, x->f, __ATOMIC_RELEASE);
	/* The joined configuration may follow the joining one at once: a
	 * read refused as stale, or of a region whose new primary's key is
	 * not known yet, is tried again after adopting (bounded). */
	uint64_t until = now_ns() + 5000000000ull;
	x->out = false; /* in: mpoll adopts what comes meanwhile */
	while ((rc = farm_bank_open(x->f, x->sh->root, x->rng, &x->b)) &&
	       (rc == -ESTALE || rc == -EAGAIN) && now_ns() < until && x->f) {
		mpoll(x);
		if (x->f && farm_poll(x->f) == 0)
			farm_idle(x->f, 1);
	}
	if (rc || !x->f) {
		snprintf(me->rejoin_err, sizeof(me->rejoin_err),
			 "node restarted in configuration %llu, but farm_bank_open: %s",
			 (unsigned long long)next->config_id, farm_strerror(rc));
		me->rejoin_rc = rc ? rc : -ENOTCONN;
		x->out = true;
		return;
	}
	x->out = false;
	me->removed = 0;
}

/* farmd_zk_poll's work, plus what the parent watches. */
static void mpoll(struct nctx *x)
{
	struct flt_node *me = x->me;
	struct farm_membership_stats st;
	char err[256];

	if (!x->m)
		return;
	farm_membership_get_stats(x->m, &st);
	me->is_cm = st.is_cm;
	me->zk_up = st.zk_connected;
	me->max_gap_ns = st.lease.max_gap_ns;
	if (x->f && x->rehello_until) {
		farm__rehello_poll(x->f);
		if (now_ns() > x->rehello_until)
			x->rehello_until = 0;
	}
	if (x->f && x->f->cfg.members[x->f->self_idx].joining && !farm__rerep_pending(x->f))
		farm_membership_ready(x->m, farm_config_id(x->f)); /* as farmd: joined */
	if (!farm_membership_changed(x->m) || farm_membership_take(x->m, &x->ch) <= 0)
		return;
	/* Removed, or removed and back as a new incarnation within one take:
	 * then self_removed is false (it compares with our new incarnation)
	 * but we are in removed[]: our state is stale all the same. */
	bool gone = x->ch.self_removed;
	for (uint32_t i = 0; i < x->ch.nremoved; i++)
		if (x->ch.removed[i] == x->id && !x->ch.self_removed) {
			gone = true;
			me->stale_take++;
		}
	if (gone && !x->out) {
		x->out = true;
		__atomic_store_n(&me->removed, 1, __ATOMIC_RELEASE);
		note(me, "removed in configuration %llu", (unsigned long long)x->ch.next.id);
	}
	if (x->ch.self_removed)
		return;
	if (x->out) {
		if (me->rejoin_rc == 0)
			try_rejoin(x, &x->ch.next.cfg);
		return;
	}
	int rc = farm__adopt_config(x->f, &x->ch.next.cfg, err, sizeof(err));
	if (rc) {
		me->adopt_fail++;
		note(me, "adopt %llu: %s", (unsigned long long)x->ch.next.id, err);
		return;
	}
	me->adopts++;
	me->adopt_ns = now_ns();
	x->rehello_until = now_ns() + REHELLO_NS;
	__atomic_store_n(&me->member_mask, mask_of(&x->f->cfg), __ATOMIC_RELEASE);
	__atomic_store_n(&me->config_id, farm_config_id(x->f), __ATOMIC_RELEASE);
}

static void serve(struct nctx *x, int ms)
{
	mpoll(x);
	if (!x->f) {
		usleep((useconds_t)ms * 1000);
		return;
	}
	if (farm_poll(x->f) == 0)
		farm_idle(x->f, ms);
}

static void record(struct nctx *x, uint64_t id, uint64_t start, uint64_t end, bool committed,
		   uint32_t nr, uint32_t nw)
{
	struct hist_tx t = {id, start, end, committed, nr, nw, x->rd, x->wr};

	hist_log_add(&x->me->log, &t);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(&x->me->pend.logged_id, id, __ATOMIC_RELEASE);
	__atomic_store_n(&x->me->pend.state, 0, __ATOMIC_RELEASE);
}

static void set_pending(struct nctx *x, uint64_t id, uint64_t start, uint32_t nr, uint32_t nw)
{
	struct flt_pending *p = &x->me->pend;

	p->id = id;
	p->start_ns = start;
	p->nreads = nr;
	p->nwrites = nw;
	memcpy(p->reads, x->rd, nr * sizeof(x->rd[0]));
	memcpy(p->writes, x->wr, nw * sizeof(x->wr[0]));
	__atomic_store_n(&p->state, 1, __ATOMIC_RELEASE);
}

static void committed(struct nctx *x, uint64_t start, uint64_t end, uint32_t nr)
{
	struct flt_node *me = x->me;
	uint64_t ev = __atomic_load_n(&x->sh->event_ns, __ATOMIC_ACQUIRE);
	uint64_t lapse = __atomic_load_n(&me->lease_end_ns, __ATOMIC_ACQUIRE);

	me->committed++;
	if (ev && start > ev) {
		if (!me->after_event++)
			me->first_after_ns = end;
	}
	if (lapse && start >= lapse)
		me->after_lapse++;
	if (lapse && end >= lapse)
		me->ended_after_lapse++;
	for (uint32_t i = 0; i < nr; i++) {
		uint64_t w = x->rd[i].writer, node = w >> 48;
		if (node >= 1 && node <= FLT_MAX_NODES && (w & 0xffffffffffffull) > x->tr->seen[node - 1])
			x->tr->seen[node - 1] = w & 0xffffffffffffull;
	}
}

/* The rest of one attempt after its reads and writes: commit (pending
 * slot around it), count, record. */
static void finish(struct nctx *x, struct farm_tx *tx, uint64_t id, uint64_t start, uint32_t nr,
		   uint32_t nw)
{
	struct farm_tx_result res = {0};
	struct flt_node *me = x->me;
	int rc;

	set_pending(x, id, start, nr, nw);
	rc = farm_tx_commit(tx, &res);
	uint64_t end = now_ns();
	if (rc == -EIO) {
		/* Outcome unknown (farm.h): recovery decides. The pending slot
		 * keeps it for the judge, as a dead coordinator's, and this
		 * node starts no transaction that would overwrite the slot. */
		__atomic_store_n(&me->doubt, 1, __ATOMIC_RELEASE);
		me->errors++;
		me->last_error = rc;
		return;
	}
	record(x, id, start, end, rc == 0, nr, nw);
	if (rc == 0) {
		committed(x, start, end, nr);
		for (uint32_t i = 0; i < nw; i++)
			for (uint32_t a = 0; a < x->sh->accounts; a++)
				if (x->sh->acct[a] == x->wr[i].obj &&
				    x->wr[i].ver >= x->tr->top_ver[a]) {
					x->tr->top_ver[a] = x->wr[i].ver;
					x->tr->top_writer[a] = id;
				}
	} else if (rc == -EAGAIN) {
		me->aborted++;
		me->reasons[res.reason & 7]++;
	} else {
		me->errors++;
		me->last_error = rc;
	}
	if (rc && (rc != -EAGAIN || res.reason == FARM_ABORT_FAILURE)) {
		uint64_t k = me->nfail++ % 256;
		me->fail[k].id = id;
		me->fail[k].start_ns = start;
		me->fail[k].end_ns = end;
		me->fail[k].rc = rc;
		me->fail[k].reason = (int32_t)res.reason;
		serve(x, 1); /* a failed participant: do not spin on it */
	}
}

static void step(struct nctx *x)
{
	struct flt_shared *sh = x->sh;
	struct flt_node *me = x->me;
	struct account v[FLT_MAX_ACCTS];
	struct farm_tx *tx;
	uint32_t ne = sh->neligible, nr = 0;
	int rc;

	if (__atomic_load_n(&me->doubt, __ATOMIC_ACQUIRE)) {
		serve(x, 1);
		return;
	}
	if (!farm_membership_serving(x->m)) {
		/* Lapsed: a plain read of anything must be refused. */
		struct account a;
		me->reads_lapsed++;
		if (farm_read(x->f, sh->acct[sh->eligible[me->reads_lapsed % ne]], &a, sizeof(a),
			      NULL) == 0)
			me->reads_lapsed_ok++;
	}
	if (me->log.cap - me->log.len < (256u << 10)) {
		me->log_pauses++; /* no room to record: wait rather than lose records */
		serve(x, 1);
		return;
	}
	uint64_t id = ((uint64_t)(x->idx + 1) << 48) | ++x->seq;
	uint64_t start = now_ns();
	bool audit = rnd(&x->rng) % 100 < x->c->o.audit_pct;
	me->attempts++;
	if ((rc = farm_tx_begin(x->f, &tx)) < 0) {
		me->errors++;
		me->last_error = rc;
		serve(x, 1);
		return;
	}
	uint32_t k0 = (uint32_t)(rnd(&x->rng) % ne), k1 = (uint32_t)(rnd(&x->rng) % (ne - 1));
	k1 += k1 >= k0;
	uint32_t want = audit ? ne : 2;
	for (uint32_t k = 0; k < want && rc == 0; k++) {
		uint32_t i = sh->eligible[audit ? k : (k ? k1 : k0)];
		rc = farm_tx_read(tx, sh->acct[i], &v[k], sizeof(v[k]));
		if (rc == 0) {
			x->rd[nr++] = (struct hist_read){sh->acct[i], v[k].ver, v[k].writer};
			if (v[k].balance < 0)
				me->violations++;
		}
	}
	if (rc < 0) {
		farm_tx_abort(tx);
		record(x, id, start, now_ns(), false, nr, 0);
		if (rc == -EAGAIN)
			me->aborted++;
		else
			me->errors++, me->last_error = rc;
		if (rc != -EAGAIN || !farm_membership_serving(x->m))
			serve(x, 1);
		return;
	}
	if (audit) {
		int64_t sum = 0;
		for (uint32_t k = 0; k < ne; k++)
			sum += v[k].balance;
		uint64_t before = me->committed;
		finish(x, tx, id, start, nr, 0);
		if (me->committed > before && sum != (int64_t)ne * INITIAL)
			me->violations++;
		return;
	}
	int64_t amount = 1 + (int64_t)(rnd(&x->rng) % MAX_TRANSFER);
	if (v[0].balance < amount) {
		farm_tx_abort(tx);
		record(x, id, start, now_ns(), false, nr, 0);
		me->rolled++;
		return;
	}
	struct account w0 = {v[0].ver + 1, id, v[0].balance - amount};
	struct account w1 = {v[1].ver + 1, id, v[1].balance + amount};
	x->wr[0] = (struct hist_write){x->rd[0].obj, w0.ver};
	x->wr[1] = (struct hist_write){x->rd[1].obj, w1.ver};
	rc = farm_tx_write(tx, x->rd[0].obj, &w0, sizeof(w0));
	if (rc == 0)
		rc = farm_tx_write(tx, x->rd[1].obj, &w1, sizeof(w1));
	if (rc < 0) { /* -EAGAIN: the object changed since it was read */
		farm_tx_abort(tx);
		record(x, id, start, now_ns(), false, nr, 0);
		if (rc == -EAGAIN)
			me->aborted++;
		else
			me->errors++, me->last_error = rc;
		return;
	}
	finish(x, tx, id, start, nr, 2);
}

static bool quitting(const struct flt_shared *sh)
{
	return __atomic_load_n(&sh->phase, __ATOMIC_ACQUIRE) >= FLT_QUIT;
}

static int barrier(struct nctx *x, int k, int ms)
{
	uint32_t n = (uint32_t)__builtin_popcount(x->sh->data_mask);
	uint64_t end = proc_now_ms() + (uint64_t)ms;

	__atomic_add_fetch(&x->sh->bar[k], 1, __ATOMIC_ACQ_REL);
	while (__atomic_load_n(&x->sh->bar[k], __ATOMIC_ACQUIRE) < n) {
		if (proc_now_ms() > end || quitting(x->sh)) {
			snprintf(x->me->err, sizeof(x->me->err), "stop barrier %d: %u of %u came", k,
				 __atomic_load_n(&x->sh->bar[k], __ATOMIC_ACQUIRE), n);
			return -ETIMEDOUT;
		}
		serve(x, 1);
	}
	return 0;
}

static void save_all(struct nctx *x)
{
	for (uint32_t i = 0; i < x->sh->accounts; i++) {
		struct account a;
		int rc = farm_read(x->f, x->sh->acct[i], &a, sizeof(a), NULL);
		x->sh->saved[i] = (struct flt_final){a.ver, a.writer, a.balance, rc, 0};
	}
	__atomic_store_n(&x->sh->sab_saved, 1, __ATOMIC_RELEASE);
}

/* The self-check's lost update: an account's early value put back with a
 * plain (replicated) write, as if every later transfer of it were lost. */
static void sabotage_lost(struct nctx *x)
{
	struct flt_shared *sh = x->sh;

	for (uint32_t i = 0; i < sh->accounts; i++) {
		struct account a;
		if (sh->saved[i].rc || farm_read(x->f, sh->acct[i], &a, sizeof(a), NULL) ||
		    a.balance == sh->saved[i].balance)
			continue;
		struct account old = {sh->saved[i].ver, sh->saved[i].writer, sh->saved[i].balance};
		if (farm_write(x->f, sh->acct[i], &old, sizeof(old)) == 0)
			sh->sab_acct = (int32_t)i;
		return;
	}
}

static void final_read(struct nctx *x)
{
	struct flt_shared *sh = x->sh;
	uint64_t end = proc_now_ms() + 5000;

	sh->fin_start_ns = now_ns();
	for (uint32_t i = 0; i < sh->accounts; i++) {
		struct account a = {0};
		struct flt_final *fn = &sh->fin[i];
		/* An account locked by a transaction nobody finishes stays
		 * -EAGAIN: retried for a while (5 s over all), then reported. */
		while ((fn->rc = farm_read(x->f, sh->acct[i], &a, sizeof(a), NULL)) == -EAGAIN &&
		       proc_now_ms() < end) {
			fn->retries++;
			serve(x, 1);
		}
		fn->ver = a.ver;
		fn->writer = a.writer;
		fn->balance = a.balance;
	}
	sh->fin_end_ns = now_ns();
}

static void dump(struct nctx *x)
{
	struct flt_cluster *c = x->c;
	uint64_t rs = c->seed.region_size;

	for (uint32_t r = 0; r < c->seed.regions; r++) {
		const struct farm_replica *rep = x->f->regions[r].mine;
		if (!rep)
			continue;
		if (x->sh->sab_replica && (int32_t)r == x->sh->sab_region && rep->role == 1)
			rep->base[x->sh->sab_off] ^= 0x40; /* the self-check's torn backup */
		memcpy(c->dump + ((size_t)x->idx * c->seed.regions + r) * rs, rep->base, rs);
	}
	publish_roles(x, x->me->held_role);
	if (x->f->tx) {
		const struct farm_txstats *t = &x->f->tx->st;
		struct farm_stats fs;
		uint64_t *o = x->me->rstats;
		farm_get_stats(x->f, &fs);
		o[FLT_RS_ROUNDS] = t->rcv_rounds;
		o[FLT_RS_RCV_COMMITS] = t->rcv_commits;
		o[FLT_RS_RCV_ABORTS] = t->rcv_aborts;
		o[FLT_RS_RCV_LOCKED] = t->rcv_locked;
		o[FLT_RS_CB_APPLIED] = t->cb_applied;
		o[FLT_RS_CB_SKIPPED] = t->cb_skipped;
		o[FLT_RS_LATE_INSTALLS] = t->late_installs;
		o[FLT_RS_LATE_UNLOCKS] = t->late_unlocks;
		o[FLT_RS_BAD_RECORDS] = t->bad_records;
		o[FLT_RS_IN_DOUBT] = t->in_doubt;
		o[FLT_RS_RESYNCS] = fs.resyncs;
		o[FLT_RS_REPLIES_DEFERRED] = fs.replies_deferred;
		o[FLT_RS_REPLIES_LOST] = fs.replies_lost;
	}
}

static void say(struct flt_verdict *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A commit was lost: what each node's recovery did, and who held what. */
static void say_recovery(struct flt_cluster *c, struct flt_verdict *v)
{
	const struct flt_shared *sh = c->sh;

	for (uint32_t i = 0; i < sh->n; i++) {
		const struct flt_node *n = &sh->node[i];
		const uint64_t *o = n->rstats;
		char roles[2 * FLT_MAX_REGIONS + 1];
		size_t k = 0;
		for (uint32_t r = 0; r < c->seed.regions && r < FLT_MAX_REGIONS; r++) {
			/* start role, role at the dump: P primary, b backup, . none */
			roles[k++] = n->role[r] < 0 ? '.' : n->role[r] == 0 ? 'P' : 'b';
			roles[k++] = n->held_role[r] < 0 ? '.' : n->held_role[r] == 0 ? 'P' : 'b';
		}
		roles[k] = 0;
		say(v,
		    "node %u%s: rounds %llu, decided %llu commit / %llu abort, locked %llu; cb "
		    "applied %llu skipped %llu; late installs %llu unlocks %llu; bad records %llu; "
		    "in doubt %llu; resyncs %llu; replies deferred %llu lost %llu; regions "
		    "(start,dump) %s\n",
		    i + 1, n->dead ? " (killed)" : "", (unsigned long long)o[FLT_RS_ROUNDS],
		    (unsigned long long)o[FLT_RS_RCV_COMMITS],
		    (unsigned long long)o[FLT_RS_RCV_ABORTS], (unsigned long long)o[FLT_RS_RCV_LOCKED],
		    (unsigned long long)o[FLT_RS_CB_APPLIED], (unsigned long long)o[FLT_RS_CB_SKIPPED],
		    (unsigned long long)o[FLT_RS_LATE_INSTALLS],
		    (unsigned long long)o[FLT_RS_LATE_UNLOCKS],
		    (unsigned long long)o[FLT_RS_BAD_RECORDS], (unsigned long long)o[FLT_RS_IN_DOUBT],
		    (unsigned long long)o[FLT_RS_RESYNCS],
		    (unsigned long long)o[FLT_RS_REPLIES_DEFERRED],
		    (unsigned long long)o[FLT_RS_REPLIES_LOST], roles);
	}
}

static void stop_phase(struct nctx *x)
{
	struct flt_node *me = x->me;
	uint64_t end;

	if (!x->f || !(x->sh->data_mask & (1u << x->idx)))
		return;
	if (barrier(x, 0, 20000))
		return;
	farm__tx_flush(x->f);
	if (barrier(x, 1, 20000))
		return;
	end = proc_now_ms() + 8000;
	while ((me->unapplied = farm__tx_unapplied(x->f)) && proc_now_ms() < end)
		serve(x, 1);
	me->drain_rc = me->unapplied ? -ETIMEDOUT : 0;
	if (barrier(x, 2, 20000))
		return;
	/* Re-replication in progress: let it finish (bounded). */
	end = proc_now_ms() + 10000;
	for (bool busy = true; busy && proc_now_ms() < end;) {
		busy = false;
		for (uint32_t i = 0; i < x->f->nreps; i++)
			busy |= x->f->reps[i].copying;
		if (busy) {
			me->copy_wait++;
			serve(x, 1);
		}
	}
	if (x->idx == (int)x->sh->auditor) {
		if (x->sh->sab_lost)
			sabotage_lost(x);
		final_read(x);
	}
	if (barrier(x, 3, 30000))
		return;
	dump(x);
	if (barrier(x, 4, 20000))
		return;
	me->finished = 1;
}

static int node_main(void *p)
{
	struct nctx *x = p;
	struct flt_cluster *c = x->c;
	struct flt_node *me = x->me;
	struct farm_config cfg;
	struct farm_mconfig mc;
	int rc;

	for (int sig = 1; sig < 32; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	g_sh = x->sh;
	g_idx = x->idx;
	if (c->o.netns[x->idx] && (rc = netns_enter(c->o.netns[x->idx])) < 0) {
		snprintf(me->err, sizeof(me->err), "netns %s: %s", c->o.netns[x->idx],
			 strerror(-rc));
		me->start_rc = rc;
		return 2;
	}
	struct farm_membership_attr a = {.zk = c->o.zk,
					 .zk_session_ms = 4000,
					 .lease_ms = c->o.lease_ms,
					 .lease_bind = c->o.ip[x->idx],
					 .realtime = true,
					 .start_timeout_ms = 30000,
					 .rejoin = c->o.rejoin,
					 .on_serving = on_serving};
	g_until = NULL;
	rc = farm_membership_start(&c->seed, x->id, &a, &x->m, me->err, sizeof(me->err));
	if (rc) {
		me->start_rc = rc;
		return 3;
	}
	g_until = farm_membership_lease_until(x->m);
	farm_membership_config(x->m, &mc);
	cfg = mc.cfg;
	memcpy(cfg.run_dir, c->seed.run_dir, sizeof(cfg.run_dir));
	farm_membership_take(x->m, &x->ch);
	rc = farm_node_start_err(&cfg, x->id, 30000, &x->f, me->err, sizeof(me->err));
	if (rc) {
		me->start_rc = rc;
		farm_membership_stop(x->m);
		return 4;
	}
	farm__membership_attach(x->f, farm_membership_serving_flag(x->m),
				farm_membership_lease_until(x->m));
	farm__membership_attach_changes(x->f, x->m);
	__atomic_store_n(&g_f, x->f, __ATOMIC_RELEASE);
	me->config_id = farm_config_id(x->f);
	me->member_mask = mask_of(&x->f->cfg);
	publish_roles(x, me->role);
	__atomic_store_n(&me->started, 1, __ATOMIC_RELEASE);

	/* Node 0 lays out the bank once everyone runs; all open it. */
	struct flt_shared *sh = x->sh;
	uint64_t end = proc_now_ms() + 60000;
	if (x->idx == 0) {
		/* Everyone started and holding a lease: a member whose lease
		 * is not granted yet fences its node page (reads: -ESTALE). */
		for (int i = 0; i < (int)sh->n; i++)
			while (!__atomic_load_n(&sh->node[i].started, __ATOMIC_ACQUIRE) ||
			       !__atomic_load_n(&sh->node[i].serving, __ATOMIC_ACQUIRE)) {
				if (proc_now_ms() > end || quitting(sh))
					return 5;
				serve(x, 1);
			}
		struct farm_bank_params bp = {sh->accounts, INITIAL, MAX_TRANSFER, 0};
		farm_addr_t root;
		rc = farm_bank_create(x->f, &bp, &root);
		if (rc) {
			snprintf(me->err, sizeof(me->err), "farm_bank_create: %s",
				 farm_strerror(rc));
			return 6;
		}
		__atomic_store_n(&sh->root, root, __ATOMIC_RELEASE);
	}
	while (!__atomic_load_n(&sh->root, __ATOMIC_ACQUIRE)) {
		if (proc_now_ms() > end || quitting(sh))
			return 7;
		serve(x, 1);
	}
	x->rng = c->o.seed * 1000003u + (uint64_t)x->idx + 1;
	rc = farm_bank_open(x->f, sh->root, x->rng, &x->b);
	if (rc) {
		snprintf(me->err, sizeof(me->err), "farm_bank_open: %s", farm_strerror(rc));
		return 8;
	}
	if (x->idx == 0)
		for (uint32_t i = 0; i < sh->accounts; i++)
			sh->acct[i] = farm_bank_account(x->b, i);
	__atomic_store_n(&me->ready, 1, __ATOMIC_RELEASE);
	while (__atomic_load_n(&sh->phase, __ATOMIC_ACQUIRE) < FLT_RUN)
		serve(x, 1);
	if (quitting(sh))
		goto out;

	uint32_t turn = 0;
	while (__atomic_load_n(&sh->phase, __ATOMIC_ACQUIRE) == FLT_RUN) {
		if ((turn++ & 7) == 0)
			mpoll(x);
		if (x->out || !x->f) {
			serve(x, 1);
			continue;
		}
		step(x);
		if (sh->sab_lost && x->idx == 0 && !sh->sab_saved && me->committed >= 200)
			save_all(x);
	}
	stop_phase(x);
	while (__atomic_load_n(&sh->phase, __ATOMIC_ACQUIRE) < FLT_QUIT)
		serve(x, 2);
out:
	/* As farmd: membership first (the lease thread fences the node). */
	if (x->m)
		farm_membership_stop(x->m);
	__atomic_store_n(&g_f, NULL, __ATOMIC_RELEASE);
	farm_bank_close(x->b);
	if (x->f)
		farm_node_stop(x->f);
	return 0;
}

/* ---- the parent --------------------------------------------------------------------- */

static int seq_no;

/* Alive and not a zombie (PID 1 reaps late here: PLATFORM-NOTES). */
static bool alive(pid_t pid)
{
	char path[64], buf[256];
	FILE *fp;
	bool up = false;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(fp = fopen(path, "r")))
		return false;
	if (fgets(buf, sizeof(buf), fp)) {
		const char *p = strrchr(buf, ')');
		up = p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
	}
	fclose(fp);
	return up;
}

int flt_up(struct flt_cluster *c, const struct flt_opts *o, char *err, size_t errlen)
{
	struct farm_config *s = &c->seed;
	int n = o->n;

	memset(c, 0, sizeof(*c));
	c->o = *o;
	if (n < 2 || n > FLT_MAX_NODES)
		return -EINVAL;
	snprintf(c->name, sizeof(c->name), "%s%d-%d", o->tag, (int)getpid(), ++seq_no);
	farm_config_defaults(s);
	snprintf(s->cluster, sizeof(s->cluster), "%s", c->name);
	s->region_size = 256u << 10;
	s->regions = o->regions ? o->regions : 2u * (uint32_t)n;
	s->replicas = o->replicas;
	s->nmembers = (uint32_t)n;
	uint16_t port = (uint16_t)(21000 + (getpid() % 500) * 40 + (seq_no % 4) * 8);
	for (int i = 0; i < n; i++) {
		s->members[i].id = (uint32_t)i + 1;
		if (o->ip[i])
			snprintf(s->members[i].addr, sizeof(s->members[i].addr), "%s:%u", o->ip[i],
				 port + i);
		else
			snprintf(s->members[i].addr, sizeof(s->members[i].addr), "%s-%d", c->name,
				 i + 1);
	}
	if (o->ip[0])
		snprintf(s->nic, sizeof(s->nic), "udp");
	snprintf(s->run_dir, sizeof(s->run_dir), "/tmp/%s", c->name);
	if (s->regions > FLT_MAX_REGIONS)
		return -EINVAL;
	c->sh = proc_shared(sizeof(*c->sh));
	c->logmem = proc_shared((size_t)n * FLT_LOG_BYTES);
	c->dump_len = (size_t)n * s->regions * s->region_size;
	c->dump = proc_shared(c->dump_len);
	struct flt_track *tr = proc_shared(sizeof(*tr) * FLT_MAX_NODES);
	struct nctx *ctx = calloc((size_t)n, sizeof(*ctx));
	if (!c->sh || !c->logmem || !c->dump || !tr || !ctx)
		return -ENOMEM;
	c->sh->n = (uint32_t)n;
	c->sh->accounts = 60;
	c->sh->neligible = c->sh->accounts;
	for (uint32_t i = 0; i < c->sh->accounts; i++)
		c->sh->eligible[i] = i;
	c->sh->data_mask = (1u << n) - 1;
	/* the tracking tables ride after the nodes, in their own mapping */
	c->track = tr;
	for (int i = 0; i < n; i++) {
		hist_log_init(&c->sh->node[i].log, c->logmem + (size_t)i * FLT_LOG_BYTES,
			      FLT_LOG_BYTES);
		ctx[i] = (struct nctx){.c = c,
				       .sh = c->sh,
				       .me = &c->sh->node[i],
				       .tr = &tr[i],
				       .idx = i,
				       .id = (uint32_t)i + 1};
		c->sh->node[i].pid = proc_fork(node_main, &ctx[i]);
	}
	free(ctx); /* the children have their copies */
	uint64_t end = proc_now_ms() + 60000;
	for (int i = 0; i < n; i++) {
		struct flt_node *nd = &c->sh->node[i];
		while (!__atomic_load_n(&nd->ready, __ATOMIC_ACQUIRE)) {
			bool up = alive(nd->pid);
			if (!up || proc_now_ms() > end) {
				snprintf(err, errlen, "member %d %s: %s", i + 1,
					 !up ? "exited" : "not ready in 60 s",
					 nd->err[0] ? nd->err : "(no message)");
				return -ETIMEDOUT;
			}
			usleep(2000);
		}
	}
	return 0;
}

void flt_go(struct flt_cluster *c)
{
	__atomic_store_n(&c->sh->phase, FLT_RUN, __ATOMIC_RELEASE);
}

void flt_kill(struct flt_cluster *c, int idx)
{
	struct flt_node *nd = &c->sh->node[idx];

	if (nd->pid > 0 && !nd->dead) {
		proc_kill(nd->pid);
		nd->dead = 1;
	}
}

int64_t flt_wait_removed(struct flt_cluster *c, uint32_t gone, int timeout_ms)
{
	uint64_t end = proc_now_ms() + (uint64_t)timeout_ms;
	uint64_t gone_ids = 0;

	for (uint32_t i = 0; i < c->sh->n; i++)
		if (gone & (1u << i))
			gone_ids |= 1ull << (i + 1);
	for (;;) {
		bool all = true;
		for (uint32_t i = 0; i < c->sh->n; i++) {
			const struct flt_node *nd = &c->sh->node[i];
			if ((gone & (1u << i)) || nd->dead)
				continue;
			if (__atomic_load_n(&nd->member_mask, __ATOMIC_ACQUIRE) & gone_ids)
				all = false;
		}
		if (all)
			return (int64_t)(now_ns() - c->sh->event_ns) / 1000000;
		if (proc_now_ms() > end)
			return -ETIMEDOUT;
		usleep(1000);
	}
}

uint64_t flt_commits(const struct flt_cluster *c, uint32_t mask)
{
	uint64_t s = 0;

	for (uint32_t i = 0; i < c->sh->n; i++)
		if (mask & (1u << i))
			s += __atomic_load_n(&c->sh->node[i].committed, __ATOMIC_RELAXED);
	return s;
}

int flt_cm(const struct flt_cluster *c)
{
	for (uint32_t i = 0; i < c->sh->n; i++)
		if (!c->sh->node[i].dead && c->sh->node[i].is_cm)
			return (int)i;
	return -1;
}

int flt_stop(struct flt_cluster *c, uint32_t data_mask, int timeout_ms)
{
	uint64_t end = proc_now_ms() + (uint64_t)timeout_ms;

	c->sh->data_mask = data_mask;
	c->sh->auditor = (uint32_t)__builtin_ctz(data_mask);
	__atomic_store_n(&c->sh->phase, FLT_STOP, __ATOMIC_RELEASE);
	for (uint32_t i = 0; i < c->sh->n; i++) {
		if (!(data_mask & (1u << i)))
			continue;
		while (!__atomic_load_n(&c->sh->node[i].finished, __ATOMIC_ACQUIRE)) {
			if (proc_now_ms() > end || c->sh->node[i].err[0] || !alive(c->sh->node[i].pid))
				return -ETIMEDOUT;
			usleep(2000);
		}
	}
	return 0;
}

void flt_down(struct flt_cluster *c)
{
	if (!c->sh)
		return;
	__atomic_store_n(&c->sh->phase, FLT_QUIT, __ATOMIC_RELEASE);
	for (uint32_t i = 0; i < c->sh->n; i++)
		if (c->sh->node[i].pid > 0 && !c->sh->node[i].dead) {
			if (proc_wait(c->sh->node[i].pid, 10000) < 0)
				proc_kill(c->sh->node[i].pid);
			c->sh->node[i].dead = 1;
		}
	proc_unshare(c->logmem, (size_t)c->sh->n * FLT_LOG_BYTES);
	proc_unshare(c->dump, c->dump_len);
	proc_unshare(c->track, sizeof(struct flt_track) * FLT_MAX_NODES);
	proc_unshare(c->sh, sizeof(*c->sh));
	c->sh = NULL;
}

void flt_print_nodes(const struct flt_cluster *c)
{
	static const char *rs[8] = {"none", "locked", "changed", "validate",
				    "read", "log_full", "failure", "user"};

	for (uint32_t i = 0; i < c->sh->n; i++) {
		const struct flt_node *nd = &c->sh->node[i];
		char why[200] = "";
		size_t at = 0;
		for (int r = 1; r < 8 && at < sizeof(why) - 24; r++)
			if (nd->reasons[r])
				at += (size_t)snprintf(why + at, sizeof(why) - at, " %s %llu", rs[r],
						       (unsigned long long)nd->reasons[r]);
		printf("#   node %u%s%s: config %llu, %llu attempts, %llu committed (%llu after "
		       "the event), %llu aborted [%s ], %llu rolled back, %llu errors (last %s), "
		       "%llu violations, %llu records; lease drops %u (longest renewal gap %.1f "
		       "ms), adopted %llu (%llu failed), unapplied at drain %llu%s%s%s%s\n",
		       i + 1, nd->dead ? " (killed)" : "", nd->removed ? " (removed)" : "",
		       (unsigned long long)nd->config_id, (unsigned long long)nd->attempts,
		       (unsigned long long)nd->committed, (unsigned long long)nd->after_event,
		       (unsigned long long)nd->aborted, why, (unsigned long long)nd->rolled,
		       (unsigned long long)nd->errors,
		       nd->last_error ? farm_strerror(nd->last_error) : "none",
		       (unsigned long long)nd->violations, (unsigned long long)nd->log.records,
		       nd->lease_drops, nd->max_gap_ns / 1e6, (unsigned long long)nd->adopts,
		       (unsigned long long)nd->adopt_fail, (unsigned long long)nd->unapplied,
		       nd->err[0] ? "; error: " : "", nd->err, nd->note[0] ? "; last note: " : "",
		       nd->note);
	}
}

/* ---- the judge ----------------------------------------------------------------------- */

static void say(struct flt_verdict *v, const char *fmt, ...)
{
	size_t at = strlen(v->text);
	va_list ap;

	if (at >= sizeof(v->text) - 2)
		return;
	va_start(ap, fmt);
	vsnprintf(v->text + at, sizeof(v->text) - at, fmt, ap);
	va_end(ap);
}

static void judge_replicas(struct flt_cluster *c, uint32_t surv, struct flt_verdict *v)
{
	uint64_t rs = c->seed.region_size;
	uint32_t want = c->seed.replicas, live = (uint32_t)__builtin_popcount(surv);

	if (want > live)
		want = live;
	v->replicas_ok = v->copies_ok = true;
	for (uint32_t r = 0; r < c->seed.regions; r++) {
		int prim = -1, holders = 0;
		for (uint32_t i = 0; i < c->sh->n; i++)
			if ((surv & (1u << i)) && c->sh->node[i].held_role[r] >= 0) {
				holders++;
				if (c->sh->node[i].held_role[r] == 0 || prim < 0)
					prim = c->sh->node[i].held_role[r] == 0 ? (int)i
										: (prim < 0 ? (int)i : prim);
			}
		if (!holders) {
			v->regions_lost++;
			v->replicas_ok = false;
			say(v, "region %u: no surviving replica\n", r);
			continue;
		}
		if ((uint32_t)holders < want) {
			v->regions_short++;
			v->copies_ok = false;
			say(v, "region %u: %d replicas among the survivors, f+1 = %u wanted\n", r,
			    holders, want);
		}
		const uint8_t *pb = c->dump + ((size_t)prim * c->seed.regions + r) * rs;
		for (uint32_t i = 0; i < c->sh->n; i++) {
			if (!(surv & (1u << i)) || (int)i == prim || c->sh->node[i].held_role[r] < 0)
				continue;
			const uint8_t *bb = c->dump + ((size_t)i * c->seed.regions + r) * rs;
			uint64_t d = replicas_diff(pb, bb, rs, &v->objects_cmp, NULL);
			v->regions_cmp++;
			if (d) {
				uint64_t o = (d - 1) & ~(uint64_t)(FARM_LINE - 1), h0, h1;
				memcpy(&h0, pb + o, 8);
				memcpy(&h1, bb + o, 8);
				v->regions_diff++;
				v->replicas_ok = false;
				say(v,
				    "region %u: node %d (role %d) and node %u (role %d) differ at "
				    "offset %llu (line at %llu: headers %#llx / %#llx)\n",
				    r, prim + 1, c->sh->node[prim].held_role[r], i + 1,
				    c->sh->node[i].held_role[r], (unsigned long long)(d - 1),
				    (unsigned long long)o, (unsigned long long)h0,
				    (unsigned long long)h1);
			}
		}
	}
}

/* The checker names transactions that "aborted" while a read saw their
 * value: say what their commit returned, and when. */
static void explain_aborted(struct flt_cluster *c, struct flt_verdict *v)
{
	const char *p = v->rep.text;
	uint64_t ev = c->sh->event_ns;
	int said = 0;

	while ((p = strstr(p, "installed only by T")) && said < 5) {
		uint64_t id = strtoull(p + 19, NULL, 16);
		p += 19;
		for (uint32_t i = 0; i < c->sh->n; i++) {
			const struct flt_node *nd = &c->sh->node[i];
			for (uint32_t k = 0; k < 256 && k < nd->nfail; k++) {
				if (nd->fail[k].id != id)
					continue;
				say(v,
				    "T%#llx (node %u): farm_tx_commit returned %s (%s), begun %+.1f ms "
				    "and returned %+.1f ms from the fault; node %u's lease %s\n",
				    (unsigned long long)id, i + 1, farm_strerror(nd->fail[k].rc),
				    farm_abort_str((enum farm_abort_reason)nd->fail[k].reason),
				    ((double)nd->fail[k].start_ns - (double)ev) / 1e6,
				    ((double)nd->fail[k].end_ns - (double)ev) / 1e6, i + 1,
				    nd->lease_drops ? "lapsed" : "never lapsed");
				if (nd->lease_drops)
					say(v, "  (lease ended %+.1f ms from the fault)\n",
					    ((double)nd->lease_end_ns - (double)ev) / 1e6);
				said++;
			}
		}
	}
}

void flt_judge(struct flt_cluster *c, uint32_t surv, uint64_t resumed_min, struct flt_verdict *v)
{
	struct flt_shared *sh = c->sh;
	struct flt_track *tr = c->track;
	struct history *h = hist_new();
	static struct hist_read rd[FLT_MAX_ACCTS];

	memset(v, 0, sizeof(*v));
	/* 1. The bank total and the final state, read through a survivor. */
	v->expected = (int64_t)sh->accounts * INITIAL;
	for (uint32_t i = 0; i < sh->accounts; i++) {
		const struct flt_final *fn = &sh->fin[i];
		if (fn->rc) {
			v->unreadable++;
			if (v->unreadable <= 5) {
				uint32_t r = FARM_REGION(sh->acct[i]);
				int prim = -1;
				for (uint32_t k = 0; k < sh->n; k++)
					if (r < FLT_MAX_REGIONS && sh->node[k].role[r] == 0)
						prim = (int)k + 1;
				/* Its header at each survivor's replica (the dump). */
				char hdrs[160] = "";
				size_t at = 0;
				for (uint32_t k = 0; k < sh->n && at < sizeof(hdrs) - 40; k++) {
					if (sh->node[k].dead || !sh->node[k].finished ||
					    r >= c->seed.regions || sh->node[k].held_role[r] < 0)
						continue;
					uint64_t hw;
					memcpy(&hw,
					       c->dump +
						   ((size_t)k * c->seed.regions + r) *
						       c->seed.region_size +
						   FARM_OFFSET(sh->acct[i]),
					       8);
					at += (size_t)snprintf(hdrs + at, sizeof(hdrs) - at,
							       " node %u (role %d): %s", k + 1,
							       sh->node[k].held_role[r],
							       farm_hdr_locked(hw) ? "LOCKED" : "unlocked");
				}
				say(v,
				    "account %u (%#llx, region %u, led by node %d at start%s): final "
				    "read %s after %u retries; header at%s\n",
				    i, (unsigned long long)sh->acct[i], r, prim,
				    prim > 0 && sh->node[prim - 1].dead ? ", killed" : "",
				    farm_strerror(fn->rc), fn->retries, at ? hdrs : " no replica");
			}
			continue;
		}
		v->total += fn->balance;
		v->negative += fn->balance < 0;
	}
	v->total_ok = !v->unreadable && !v->negative && v->total == v->expected;
	if (!v->total_ok)
		say(v, "bank total %lld, expected %lld (%u accounts unreadable, %u negative)\n",
		    (long long)v->total, (long long)v->expected, v->unreadable, v->negative);

	/* 2. Histories: every log (dead members' up to their death), the
	 * in-doubt transactions of dead coordinators, the final read. */
	for (uint32_t i = 0; i < sh->n; i++)
		if (hist_merge(h, sh->node[i].log.buf, sh->node[i].log.len))
			say(v, "node %u: history log malformed\n", i + 1);
	uint64_t top_ver[FLT_MAX_ACCTS] = {0}, top_writer[FLT_MAX_ACCTS] = {0};
	for (uint32_t i = 0; i < sh->n; i++)
		for (uint32_t a = 0; a < sh->accounts; a++)
			if (tr[i].top_ver[a] > top_ver[a]) {
				top_ver[a] = tr[i].top_ver[a];
				top_writer[a] = tr[i].top_writer[a];
			}
	for (uint32_t i = 0; i < sh->n; i++) {
		const struct flt_pending *p = &sh->node[i].pend;
		if (!p->state || p->logged_id == p->id)
			continue;
		uint64_t seq = p->id & 0xffffffffffffull, seen = 0;
		for (uint32_t j = 0; j < sh->n; j++)
			if (tr[j].seen[i] > seen)
				seen = tr[j].seen[i];
		bool read_later = seen >= seq;
		for (uint32_t a = 0; a < sh->accounts; a++)
			read_later |= !sh->fin[a].rc && sh->fin[a].writer == p->id;
		struct hist_tx t = {p->id,	 p->start_ns, sh->fin_start_ns - 1,
				    read_later,	 p->nreads,   p->nwrites,
				    p->reads,	 p->writes};
		hist_add(h, &t);
		v->in_doubt++;
		v->in_doubt_committed += read_later;
		say(v, "node %u %s T%#llx: %s (a later read saw its value: %s)\n", i + 1,
		    sh->node[i].doubt ? "was told 'outcome unknown' (-EIO) for"
				      : "died inside the commit of", (unsigned long long)p->id, read_later ? "committed" : "not committed",
		    read_later ? "yes" : "no");
		if (read_later)
			for (uint32_t w = 0; w < p->nwrites; w++)
				for (uint32_t a = 0; a < sh->accounts; a++)
					if (sh->acct[a] == p->writes[w].obj &&
					    p->writes[w].ver >= top_ver[a]) {
						top_ver[a] = p->writes[w].ver;
						top_writer[a] = p->id;
					}
	}
	uint32_t nr = 0;
	for (uint32_t a = 0; a < sh->accounts; a++)
		if (!sh->fin[a].rc)
			rd[nr++] = (struct hist_read){sh->acct[a], sh->fin[a].ver, sh->fin[a].writer};
	struct hist_tx fin = {FINAL_ID, sh->fin_start_ns, sh->fin_end_ns, true, nr, 0, rd, NULL};
	hist_add(h, &fin);
	hist_check(h, &v->rep);
	hist_free(h);
	v->committed = v->rep.committed;
	v->hist_ok = v->rep.anomalies == 0;
	explain_aborted(c, v);
	if (!v->hist_ok)
		say(v, "history checker: %llu anomalies (%llu cycles, %llu lost updates, %llu bad "
		       "reads, %llu wrong writers)\n%s",
		    (unsigned long long)v->rep.anomalies, (unsigned long long)v->rep.cycles,
		    (unsigned long long)v->rep.dup_versions, (unsigned long long)v->rep.bad_reads,
		    (unsigned long long)v->rep.bad_writers, v->rep.text);

	/* 3. Every committed write is in the final state: the final version of
	 * each account is the newest committed one, by the same writer. */
	for (uint32_t a = 0; a < sh->accounts; a++) {
		const struct flt_final *fn = &sh->fin[a];
		if (fn->rc)
			continue;
		if (fn->ver < top_ver[a] || (fn->ver == top_ver[a] && fn->writer != top_writer[a])) {
			v->missing++;
			if (v->missing <= 5)
				say(v,
				    "account %u: T%#llx committed version %llu, the final state "
				    "holds version %llu by T%#llx: an acknowledged commit is lost\n",
				    a, (unsigned long long)top_writer[a],
				    (unsigned long long)top_ver[a], (unsigned long long)fn->ver,
				    (unsigned long long)fn->writer);
		}
	}
	v->final_ok = !v->missing && !v->unreadable;
	/* (FLT_SAY_RCV=1 shows it for the self-check's lost update too) */
	if ((v->missing || !v->hist_ok) && (!sh->sab_lost || getenv("FLT_SAY_RCV")))
		say_recovery(c, v);

	for (uint32_t i = 0; i < sh->n; i++)
		if ((surv & (1u << i)) && sh->node[i].drain_rc)
			say(v, "node %u: drain incomplete, farm__tx_unapplied = %llu after 8 s%s\n",
			    i + 1, (unsigned long long)sh->node[i].unapplied,
			    sh->node[i].unapplied > (1ull << 62) ? " (negative: a ring's head is "
								   "past its truncation point)"
								 : "");

	/* 4. Replicas. */
	judge_replicas(c, surv, v);

	/* 5. Throughput after the event. */
	for (uint32_t i = 0; i < sh->n; i++)
		if (surv & (1u << i))
			v->resumed += sh->node[i].after_event;
	v->resumed_ok = v->resumed >= resumed_min;
	if (!v->resumed_ok)
		say(v, "survivors committed %llu transactions begun after the event, %llu needed\n",
		    (unsigned long long)v->resumed, (unsigned long long)resumed_min);
}
