/* test_farm_join.c - a node joins a running cluster (docs/farm.md,
 * "Joining"), forked shm nodes, configurations built by hand and adopted
 * with farm__adopt_config (no ZooKeeper):
 *   (1) joining: the survivors adopt a configuration that lists the new
 *       member as joining; it starts in it (farm_node_start answers "not
 *       yet" peers by retrying), its extra backup replicas are filled by
 *       re-replication while transfers and writes run on every node,
 *       the joiner's own included (as a participant and as a coordinator);
 *   (2) joined: once it holds every replica (rerep pending 0) everyone
 *       adopts the configuration without the flag: the joiner leads some
 *       regions, members it displaced drop theirs;
 * then every region has its replicas, they agree byte for byte, the bank
 * total holds, every object's last acknowledged write is there, and reads
 * and committed transactions work through the joiner's primary regions.
 * Twice: a new member id, and a member that crashed and comes back as a
 * new process (removed and added back in one configuration change). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <cmocka.h>

#include "farm/farm.h"
#include "helpers/farm_cluster.h"
#include "helpers/replicas.h"
#include "helpers/proc.h"
#include "config.h"
#include "membership_node.h"
#include "node.h"
#include "regionmap.h"
#include "rerep.h"
#include "tx.h"

#define JN_MEMBERS 4 /* the joiner is member 4 */
#define JN_REGION (1u << 20)
#define JN_REGIONS 12
#define JN_ACC 64      /* bank accounts, 1000 each */
#define JN_OWN 16      /* objects each node writes alone */
#define JN_PHASE2 300  /* operations per node once joined */

/* sh->flag: */
enum {
	F_ADOPTED_B = 0, /* survivors in the joining configuration */
	F_READY,         /* the joiner holds every replica */
	F_ADOPTED_C,     /* nodes in the joined configuration */
	F_GONE,          /* scenario 2: the old member 4 exited */
};
/* sh->count[member - 1][]: */
enum {
	C_COPIED = 0, /* joiner: bytes copied */
	C_TX,         /* committed transfers */
	C_TX_JLED,    /* ... touching a region the joiner leads (phase 2) */
	C_READS_JLED, /* reads of objects the joiner leads (phase 2) */
	C_PHASE1,     /* operations while the joiner copied */
	C_START_MS,
	C_PRIMARIES,  /* regions led after (2) */
};
/* sh->addr: accounts at [0, JN_ACC), then each member's own objects;
 * sh->val: the last acknowledged sequence of an own object, and at
 * JN_ATT + k the last attempted one. */
#define JN_OWN_AT(m, k) (JN_ACC + ((m) - 1) * JN_OWN + (k))
#define JN_ATT 2048

struct jn_arg {
	int scenario; /* 1: new member id; 2: a member comes back */
	uint64_t seed;
	struct farm_config c0, c1, c2; /* before, joining, joined */
	uint8_t *dump;                 /* [member][region][JN_REGION] */
	uint8_t *held;                 /* [member][region]: 1 when dumped */
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void log_line(void *arg, const char *line)
{
	fprintf(stderr, "  [node %u] %s\n", (unsigned)(uintptr_t)arg, line);
}

static bool tolerable(int rc)
{
	/* A key not learnt yet, a lock held a little long, a peer between
	 * configurations. */
	return rc == -EAGAIN || rc == -ESTALE || rc == -EBUSY || rc == -ECONNRESET ||
	       rc == -ENXIO || rc == -ETIMEDOUT || rc == -ENOTCONN;
}

static bool joiner_leads(struct farm *f, farm_addr_t a)
{
	uint32_t rep[8];

	return farm_region_replicas(f, FARM_REGION(a), rep, 8) > 0 && rep[0] == JN_MEMBERS;
}

/* One random operation: a transfer between two accounts, a write of one of
 * our own objects, or a read. Returns 0 or a tolerable error; 1 on a
 * failure (message in sh->err). */
static int one_op(struct farm *f, int idx, struct fc_shared *sh, uint64_t *s, bool phase2)
{
	uint32_t me = farm_self(f), what = (uint32_t)(rnd(s) % 10);
	int rc;

	if (what < 5) {
		uint32_t a = (uint32_t)(rnd(s) % JN_ACC), b = (uint32_t)(rnd(s) % JN_ACC);
		uint64_t x, y, amt = 1 + rnd(s) % 10;
		struct farm_tx *tx;
		if (a == b)
			return 0;
		FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
		rc = farm_tx_read(tx, sh->addr[a], &x, 8);
		if (!rc)
			rc = farm_tx_read(tx, sh->addr[b], &y, 8);
		if (!rc && x < amt) {
			farm_tx_abort(tx);
			return 0;
		}
		if (!rc) {
			x -= amt;
			y += amt;
			rc = farm_tx_write(tx, sh->addr[a], &x, 8);
		}
		if (!rc)
			rc = farm_tx_write(tx, sh->addr[b], &y, 8);
		if (rc) {
			farm_tx_abort(tx);
			return tolerable(rc) ? 0 : (snprintf(sh->err[idx], sizeof(sh->err[idx]),
							     "tx access: %s", farm_strerror(rc)),
						    1);
		}
		struct farm_tx_result res;
		int crc = farm_tx_commit(tx, &res);
		if (crc && phase2 && getenv("JOIN_DEBUG"))
			fprintf(stderr, "node %u commit: %d %s\n", me, crc, farm_abort_str(res.reason));
		if (crc == 0) {
			sh->count[me - 1][C_TX]++;
			if (phase2 && (joiner_leads(f, sh->addr[a]) || joiner_leads(f, sh->addr[b])))
				sh->count[me - 1][C_TX_JLED]++;
		}
		return 0;
	}
	if (what < 8) {
		uint32_t k = (uint32_t)(rnd(s) % JN_OWN);
		uint32_t slot = JN_OWN_AT(me, k);
		uint64_t seq = sh->val[JN_ATT + slot] + 1, v[8];
		if (!sh->addr[slot])
			return 0;
		for (int i = 0; i < 8; i++)
			v[i] = seq * 8 + (uint64_t)i;
		sh->val[JN_ATT + slot] = seq;
		rc = farm_write(f, sh->addr[slot], v, sizeof(v));
		if (rc == 0)
			sh->val[slot] = seq;
		else if (!tolerable(rc))
			return snprintf(sh->err[idx], sizeof(sh->err[idx]), "write: %s",
					farm_strerror(rc)),
			       1;
		return 0;
	}
	uint32_t a = (uint32_t)(rnd(s) % JN_ACC);
	uint64_t x;
	rc = farm_read(f, sh->addr[a], &x, 8, NULL);
	if (rc && phase2 && getenv("JOIN_DEBUG"))
		fprintf(stderr, "node %u read %#llx: %d\n", me, (unsigned long long)sh->addr[a], rc);
	if (rc && !tolerable(rc))
		return snprintf(sh->err[idx], sizeof(sh->err[idx]), "read: %s", farm_strerror(rc)),
		       1;
	if (rc == 0 && phase2 && joiner_leads(f, sh->addr[a]))
		sh->count[me - 1][C_READS_JLED]++;
	return 0;
}

/* Adopt `c` with no operation in flight anywhere (a primary still in the
 * older configuration would have its REPLs refused by backups in the new
 * one: a divergence of the write path that is not this test's subject),
 * and wait until all n nodes did. */
static int adopt_all(struct farm *f, int idx, struct fc_shared *sh, const struct farm_config *c,
		     int bar, int flag, uint32_t n)
{
	char err[256];
	uint64_t end = proc_now_ms() + 30000;

	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, bar, (int)n, 30000), 0);
	if (farm_config_id(f) < c->config_id) {
		int rc = farm__adopt_config(f, c, err, sizeof(err));
		if (rc) {
			snprintf(sh->err[idx], sizeof(sh->err[idx]), "adopt %llu: %.200s",
				 (unsigned long long)c->config_id, err);
			return 1;
		}
	}
	__atomic_add_fetch(&sh->flag[flag], 1, __ATOMIC_ACQ_REL);
	while (__atomic_load_n(&sh->flag[flag], __ATOMIC_ACQUIRE) < n) {
		FC_CHECK(sh, idx, proc_now_ms() < end);
		if (farm_poll(f) == 0)
			farm_idle(f, 1);
	}
	return 0;
}

/* Every CB record applied everywhere (n nodes). */
static int quiesce(struct farm *f, int idx, struct fc_shared *sh, int bar, int n)
{
	uint64_t end = proc_now_ms() + 10000;

	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, bar, n, 30000), 0);
	farm__tx_flush(f);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, bar + 1, n, 30000), 0);
	while (farm__tx_unapplied(f)) {
		if (proc_now_ms() >= end) {
			struct farm_txs *t = f->tx;
			for (uint32_t c = 0; c < t->nrings; c++)
				fprintf(stderr,
					"node %u ring %u (of %u): head %llu trunc %llu dead %d "
					"retired %d end %llu; peer trunc %llu sent %llu\n",
					farm_self(f), c, t->log_id[c], (unsigned long long)t->ring[c].head,
					(unsigned long long)t->ring[c].ctl->trunc, t->ring[c].dead,
					t->ring[c].retired, (unsigned long long)t->ring[c].end,
					(unsigned long long)t->peer[c].trunc,
					(unsigned long long)t->peer[c].trunc_sent);
			for (uint32_t c = 0; c < t->nrings; c++) {
				/* A stuck ring: what is at its head, and where the
				 * records its coordinator wrote actually are. */
				const struct farm_txring *r = &t->ring[c];
				uint64_t lo = UINT64_MAX, hi = 0, good = 0;
				const struct farm_logrec *h;
				if (r->head == r->ctl->trunc)
					continue;
				h = (const struct farm_logrec *)(r->data + (r->head & (t->cap - 1)));
				fprintf(stderr,
					"  ring %u at head: tag %llu len %u type %u coord %u config %llu "
					"cseq %llu\n",
					c, (unsigned long long)h->tag, h->len, h->type, h->coord,
					(unsigned long long)h->config_id, (unsigned long long)h->cseq);
				for (uint64_t o = 0; o < t->cap; o += 64) {
					const struct farm_logrec *x =
					    (const struct farm_logrec *)(r->data + o);
					if (x->tag && ((x->tag - 1) & (t->cap - 1)) == o) {
						good++;
						lo = x->tag - 1 < lo ? x->tag - 1 : lo;
						hi = x->tag - 1 > hi ? x->tag - 1 : hi;
					}
				}
				fprintf(stderr, "  ring %u: %llu records with a good tag, positions %llu..%llu\n",
					c, (unsigned long long)good, (unsigned long long)lo,
					(unsigned long long)hi);
			}
			fprintf(stderr, "done %llu..%llu; bad records %llu, copy stalls %llu\n",
				(unsigned long long)t->done_head, (unsigned long long)t->done_tail,
				(unsigned long long)t->st.bad_records,
				(unsigned long long)t->st.copy_stalls);
			for (uint32_t i = 0; i < f->nreps; i++)
				if (f->reps[i].copying)
					fprintf(stderr, "node %u region %u: still copying\n",
						farm_self(f), f->reps[i].region);
		}
		FC_CHECK(sh, idx, proc_now_ms() < end);
		farm_poll(f);
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, bar + 2, n, 30000), 0);
	return 0;
}

/* The part every member of the joined cluster runs, from the joining
 * configuration on: work until the joiner is ready, adopt the joined
 * configuration, work through the joiner's regions, check, dump. */
static int from_joining(struct farm *f, int idx, struct fc_shared *sh, const struct jn_arg *arg,
			uint64_t *s)
{
	uint32_t me = farm_self(f);
	uint64_t end = proc_now_ms() + 30000;
	bool joiner = me == JN_MEMBERS;

	while (!__atomic_load_n(&sh->flag[F_READY], __ATOMIC_ACQUIRE)) {
		FC_CHECK(sh, idx, proc_now_ms() < end);
		if (joiner && !farm__rerep_pending(f)) {
			struct farm_rerep_stats st;
			farm__rerep_get_stats(f, &st);
			sh->count[me - 1][C_COPIED] = st.bytes;
			__atomic_store_n(&sh->flag[F_READY], 1, __ATOMIC_RELEASE);
			break;
		}
		if (one_op(f, idx, sh, s, false))
			return 1;
		sh->count[me - 1][C_PHASE1]++;
		farm_poll(f);
	}
	if (quiesce(f, idx, sh, 10, JN_MEMBERS) ||
	    adopt_all(f, idx, sh, &arg->c2, 13, F_ADOPTED_C, JN_MEMBERS))
		return 1;
	for (uint32_t r = 0; r < JN_REGIONS; r++) {
		const struct farm_replica *x = f->regions[r].mine;
		int role = farm_rmap_role(&f->map, r, me);
		FC_CHECK(sh, idx, (role >= 0) == (x != NULL));
		FC_CHECK(sh, idx, !x || !x->copying);
		if (role == 0)
			sh->count[me - 1][C_PRIMARIES]++;
	}
	for (int i = 0; i < JN_PHASE2; i++) {
		FC_CHECK(sh, idx, proc_now_ms() < end + 30000);
		if (one_op(f, idx, sh, s, true))
			return 1;
		if (i % 8 == 0)
			farm__rehello_poll(f);
	}
	if (quiesce(f, idx, sh, 14, JN_MEMBERS))
		return 1;

	/* Everything readable from here, and as acknowledged. */
	uint64_t total = 0;
	for (uint32_t a = 0; a < JN_ACC; a++) {
		uint64_t x;
		FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[a], &x, 8, NULL), 0);
		total += x;
	}
	if (total != (uint64_t)JN_ACC * 1000) {
		snprintf(sh->err[idx], sizeof(sh->err[idx]), "bank total %llu, want %u",
			 (unsigned long long)total, JN_ACC * 1000);
		return 1;
	}
	for (uint32_t m = 1; m <= JN_MEMBERS; m++)
		for (uint32_t k = 0; k < JN_OWN; k++) {
			uint32_t slot = JN_OWN_AT(m, k);
			uint64_t v[8];
			if (!sh->addr[slot])
				continue;
			FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[slot], v, sizeof(v), NULL), 0);
			if (v[0] % 8 || v[0] / 8 < sh->val[slot] ||
			    v[0] / 8 > sh->val[JN_ATT + slot]) {
				snprintf(sh->err[idx], sizeof(sh->err[idx]),
					 "object %u of member %u: sequence %llu, acknowledged %llu, "
					 "attempted %llu",
					 k, m, (unsigned long long)(v[0] / 8),
					 (unsigned long long)sh->val[slot],
					 (unsigned long long)sh->val[JN_ATT + slot]);
				return 1;
			}
		}
	for (uint32_t r = 0; r < JN_REGIONS; r++) {
		const struct farm_replica *x = f->regions[r].mine;
		if (!x)
			continue;
		memcpy(arg->dump + ((size_t)(me - 1) * JN_REGIONS + r) * JN_REGION, x->base,
		       JN_REGION);
		arg->held[(me - 1) * JN_REGIONS + r] = 1;
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 17, JN_MEMBERS, 30000), 0);
	return 0;
}

static int make_objects(struct farm *f, int idx, struct fc_shared *sh)
{
	uint32_t me = farm_self(f);
	uint64_t v[8] = {0};

	if (me == 1)
		for (uint32_t a = 0; a < JN_ACC; a++) {
			uint64_t x = 1000;
			farm_addr_t o;
			/* Spread over every region (the hint is its region). */
			FC_CHECK_RC(sh, idx,
				    farm_alloc(f, 64, FARM_ADDR(a % JN_REGIONS, FARM_LINE), &o), 0);
			FC_CHECK_RC(sh, idx, farm_write(f, o, &x, 8), 0);
			sh->addr[a] = o;
		}
	for (uint32_t k = 0; k < JN_OWN; k++) {
		farm_addr_t o;
		int rc;
		while ((rc = farm_alloc(f, sizeof(v), FARM_ADDR((k + me) % JN_REGIONS, FARM_LINE),
					&o)) &&
		       tolerable(rc))
			farm_poll(f);
		FC_CHECK_RC(sh, idx, rc, 0);
		FC_CHECK_RC(sh, idx, farm_write(f, o, v, sizeof(v)), 0);
		sh->addr[JN_OWN_AT(me, k)] = o;
	}
	return 0;
}

/* A member of the cluster before the join (started in c0). */
static int run_member(struct farm *f, int idx, struct fc_shared *sh, const struct jn_arg *arg)
{
	uint32_t me = farm_self(f), n0 = arg->c0.nmembers;
	uint64_t s = arg->seed + me * 7919;

	farm__rerep_set_log(f, log_line, (void *)(uintptr_t)me);
	if (make_objects(f, idx, sh))
		return 1;
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, (int)n0, 20000), 0);
	for (int i = 0; i < 200; i++)
		if (one_op(f, idx, sh, &s, false))
			return 1;
	if (quiesce(f, idx, sh, 1, (int)n0))
		return 1;
	if (me == JN_MEMBERS) {
		/* Scenario 2: member 4 crashes (its last words are in every
		 * replica: quiesced). */
		__atomic_add_fetch(&sh->done, 1, __ATOMIC_ACQ_REL);
		__atomic_store_n(&sh->flag[F_GONE], 1, __ATOMIC_RELEASE);
		_exit(0);
	}
	if (arg->scenario == 2) {
		uint64_t end = proc_now_ms() + 10000;
		while (!__atomic_load_n(&sh->flag[F_GONE], __ATOMIC_ACQUIRE)) {
			FC_CHECK(sh, idx, proc_now_ms() < end);
			farm_poll(f);
		}
		usleep(20000); /* its endpoint is gone with the process */
	}
	if (adopt_all(f, idx, sh, &arg->c1, 4, F_ADOPTED_B, JN_MEMBERS - 1))
		return 1;
	return from_joining(f, idx, sh, arg, &s);
}

/* The joiner: starts in the joining configuration once the others are in
 * it. */
static int run_joiner(struct fc_shared *sh, int idx, const struct jn_arg *arg)
{
	uint64_t s = arg->seed ^ 0x5555, t0, end = proc_now_ms() + 20000;
	struct farm *f;
	int rc;

	while (__atomic_load_n(&sh->flag[F_ADOPTED_B], __ATOMIC_ACQUIRE) < JN_MEMBERS - 1) {
		FC_CHECK(sh, idx, proc_now_ms() < end);
		usleep(1000);
	}
	t0 = proc_now_ms();
	rc = farm_node_start_err(&arg->c1, JN_MEMBERS, 10000, &f, sh->err[idx],
				 sizeof(sh->err[idx]));
	if (rc)
		return 100;
	sh->count[JN_MEMBERS - 1][C_START_MS] = proc_now_ms() - t0;
	farm__rerep_set_log(f, log_line, (void *)(uintptr_t)JN_MEMBERS);
	farm__rerep_set_chunk(f, 4096); /* a copy long enough for the others' work to meet */
	farm__rerep_set_pace(f, 300);
	FC_CHECK(sh, idx, farm__rerep_pending(f) > 0);
	for (uint32_t r = 0; r < JN_REGIONS; r++) {
		int role = farm_rmap_role(&f->map, r, JN_MEMBERS);
		FC_CHECK(sh, idx, role != 0); /* never a primary while joining */
		FC_CHECK(sh, idx, (role > 0) == (f->regions[r].mine != NULL));
	}
	/* A member that comes back goes on writing its old objects: their
	 * last acknowledged values must have survived its absence. */
	if (arg->scenario == 1 && make_objects(f, idx, sh))
		return 1;
	rc = from_joining(f, idx, sh, arg, &s);
	__atomic_add_fetch(&sh->done, 1, __ATOMIC_ACQ_REL);
	for (uint64_t t = proc_now_ms() + 20000;
	     __atomic_load_n(&sh->done, __ATOMIC_ACQUIRE) < JN_MEMBERS + (arg->scenario == 2) &&
	     proc_now_ms() < t;)
		if (farm_poll(f) == 0)
			farm_idle(f, 2);
	farm_node_stop(f);
	return rc;
}

struct jn_child {
	struct jn_arg *arg;
	struct fc_shared *sh;
	int idx; /* members 1..n0 at 0..n0-1; the joiner after them */
};

static int child_main(void *p)
{
	struct jn_child *c = p;
	struct fc_shared *sh = c->sh;
	const struct jn_arg *arg = c->arg;
	struct farm *f;
	int rc;

	if (c->idx >= (int)arg->c0.nmembers)
		return run_joiner(sh, c->idx, arg);
	rc = farm_node_start_err(&arg->c0, arg->c0.members[c->idx].id, 20000, &f,
				 sh->err[c->idx], sizeof(sh->err[c->idx]));
	if (rc) {
		__atomic_add_fetch(&sh->done, 1, __ATOMIC_ACQ_REL);
		return 100;
	}
	rc = run_member(f, c->idx, sh, arg);
	sh->result[c->idx] = rc;
	__atomic_add_fetch(&sh->done, 1, __ATOMIC_ACQ_REL);
	for (uint64_t t = proc_now_ms() + 20000;
	     __atomic_load_n(&sh->done, __ATOMIC_ACQUIRE) < arg->c0.nmembers + 1 &&
	     proc_now_ms() < t;)
		if (farm_poll(f) == 0)
			farm_idle(f, 2);
	farm_node_stop(f);
	return rc;
}

static void run_scenario(int scenario)
{
	static struct jn_arg arg;
	struct fc_shared *sh = proc_shared(sizeof(*sh));
	size_t dump_len = (size_t)JN_MEMBERS * JN_REGIONS * JN_REGION;
	struct jn_child ch[JN_MEMBERS + 1];
	pid_t pid[JN_MEMBERS + 1];
	struct farm_config all;
	struct farm_rmap map;
	int nchild, failed = 0;
	const char *e = getenv("JOIN_SEED");
	uint64_t objs = 0;

	memset(&arg, 0, sizeof(arg));
	arg.scenario = scenario;
	arg.seed = e ? strtoull(e, NULL, 0) : (uint64_t)proc_now_ms() | 1;
	arg.dump = proc_shared(dump_len);
	arg.held = proc_shared(JN_MEMBERS * JN_REGIONS);
	print_message("scenario %d (%s), seed %llu (JOIN_SEED replays)\n", scenario,
		      scenario == 1 ? "a new member id" : "a member comes back",
		      (unsigned long long)arg.seed);
	fc_config(&all, JN_MEMBERS, "join", JN_REGION, JN_REGIONS, 3);
	arg.c0 = all;
	if (scenario == 1)
		arg.c0.nmembers = JN_MEMBERS - 1;
	arg.c0.config_id = 1;
	arg.c1 = all;
	arg.c1.members[JN_MEMBERS - 1].joining = 1;
	arg.c1.config_id = 2;
	arg.c2 = all;
	arg.c2.config_id = 3;
	assert_int_equal(farm__config_finish(&arg.c0, NULL, 0), 0);
	assert_int_equal(farm__config_finish(&arg.c1, NULL, 0), 0);
	assert_int_equal(farm__config_finish(&arg.c2, NULL, 0), 0);

	nchild = (int)arg.c0.nmembers + 1;
	for (int i = 0; i < nchild; i++) {
		ch[i] = (struct jn_child){&arg, sh, i};
		pid[i] = proc_fork(child_main, &ch[i]);
	}
	for (int i = 0; i < nchild; i++) {
		int rc = proc_wait(pid[i], 90000);
		if (rc) {
			print_message("child %d: exit %d: %s\n", i, rc,
				      sh->err[i][0] ? sh->err[i] : "(no message)");
			failed = failed ? failed : rc;
		}
	}
	for (uint32_t m = 1; m <= JN_MEMBERS; m++)
		print_message("member %u: %llu transfers committed (%llu touching the joiner's "
			      "regions), %llu reads of them, %llu ops during the copy, %llu "
			      "regions led\n",
			      m, (unsigned long long)sh->count[m - 1][C_TX],
			      (unsigned long long)sh->count[m - 1][C_TX_JLED],
			      (unsigned long long)sh->count[m - 1][C_READS_JLED],
			      (unsigned long long)sh->count[m - 1][C_PHASE1],
			      (unsigned long long)sh->count[m - 1][C_PRIMARIES]);
	print_message("joiner: started in %llu ms, copied %llu bytes\n",
		      (unsigned long long)sh->count[JN_MEMBERS - 1][C_START_MS],
		      (unsigned long long)sh->count[JN_MEMBERS - 1][C_COPIED]);
	assert_int_equal(failed, 0);

	/* (2): the plain ring of all members; every holder has its replica,
	 * and they agree. */
	assert_int_equal(farm_rmap_build(&map, &arg.c2), 0);
	assert_int_equal(map.k, 3);
	for (uint32_t r = 0; r < JN_REGIONS; r++) {
		const uint32_t *rep = farm_rmap_replicas(&map, r);
		const uint8_t *p0 = arg.dump + ((size_t)(rep[0] - 1) * JN_REGIONS + r) * JN_REGION;
		for (uint32_t m = 1; m <= JN_MEMBERS; m++)
			assert_int_equal(arg.held[(m - 1) * JN_REGIONS + r],
					 farm_rmap_role(&map, r, m) >= 0);
		for (uint32_t i = 1; i < map.k; i++) {
			const uint8_t *pb =
			    arg.dump + ((size_t)(rep[i] - 1) * JN_REGIONS + r) * JN_REGION;
			uint64_t d = replicas_diff(p0, pb, JN_REGION, &objs, NULL);
			if (d)
				print_message("region %u: members %u and %u differ at offset %llu\n",
					      r, rep[0], rep[i], (unsigned long long)(d - 1));
			assert_int_equal(d, 0);
		}
	}
	farm_rmap_free(&map);
	print_message("%llu object replicas compared equal\n", (unsigned long long)objs);
	assert_true(objs >= JN_ACC);
	/* The joiner leads regions, served reads and transactions there, and
	 * coordinated transactions itself. */
	assert_true(sh->count[JN_MEMBERS - 1][C_PRIMARIES] > 0);
	assert_true(sh->count[JN_MEMBERS - 1][C_COPIED] > 0);
	uint64_t jled = 0, rj = 0;
	for (uint32_t m = 1; m <= JN_MEMBERS; m++) {
		jled += sh->count[m - 1][C_TX_JLED];
		rj += sh->count[m - 1][C_READS_JLED];
	}
	assert_true(jled > 0);
	assert_true(rj > 0);
	assert_true(sh->count[JN_MEMBERS - 1][C_TX] > 0);
	proc_unshare(arg.dump, dump_len);
	proc_unshare(arg.held, JN_MEMBERS * JN_REGIONS);
	proc_unshare(sh, sizeof(*sh));
}

static void test_new_member_joins(void **state)
{
	(void)state;
	run_scenario(1);
}

static void test_member_comes_back(void **state)
{
	(void)state;
	run_scenario(2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_new_member_joins, proc_teardown),
	    cmocka_unit_test_teardown(test_member_comes_back, proc_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
