/* test_farm_rerep.c - re-replication (src/farm/rerep.h), forked shm nodes,
 * configurations adopted without ZooKeeper (farm__adopt_config):
 *   - after a member is removed, every region gets back to f+1 copies: the
 *     survivors' new backups are filled from the primaries within a bounded
 *     time, while farm_write / farm_alloc / farm_free and transactions keep
 *     running against the regions being copied; afterwards every replica of
 *     every region agrees byte for byte on the region header, the slab
 *     headers and every allocated object, and only the used part of each
 *     region was copied (high-water mark);
 *   - bad copy requests get clear errors (no such region, not its primary,
 *     not a backup, misaligned, out of range, stale or newer configuration),
 *     and a good one returns the region's bytes up to its high-water mark. */
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

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static uint64_t seed_from_env(void)
{
	const char *e = getenv("REREP_SEED");

	return e ? strtoull(e, NULL, 0) : (uint64_t)proc_now_ms() | 1;
}

static void log_line(void *arg, const char *line)
{
	fprintf(stderr, "  [node %u] %s\n", (unsigned)(uintptr_t)arg, line);
}

/* ---- removal, copy under load, replicas agree ------------------------------- */

#define RR_NODES 4
#define RR_REGION (2u << 20)
#define RR_REGIONS 8
#define RR_MAXOBJ 400 /* eight size classes: slabs are 64 KiB, the regions stay mostly empty */
#define RR_OBJS 160 /* per node */
#define RR_MIN_DURING 20

struct rr_arg {
	uint64_t seed;
	const struct farm_config *cfg;
	uint8_t *dump; /* [survivor][region][RR_REGION], MAP_SHARED */
};

/* count[idx]: 0 regions to copy at adoption, 1 copying now, 2 ops done
 * while some node was copying, 3 bytes copied, 4 copies done, 5 copies
 * started, 6 committed txs, 7 writes. */
static uint32_t copying_anywhere(const struct fc_shared *sh)
{
	uint32_t n = 0;

	for (int i = 0; i < RR_NODES - 1; i++)
		n += (uint32_t)__atomic_load_n(&sh->count[i][1], __ATOMIC_ACQUIRE);
	return n;
}

static bool tolerable(int rc)
{
	/* The transition: a peer that has not adopted yet (-ESTALE), a key
	 * not learnt yet (-EAGAIN), a slot changed under us. */
	return rc == -ESTALE || rc == -EAGAIN || rc == -EBUSY ||
	       rc == -ECONNRESET || rc == -ENXIO;
}

static int node_removal(struct farm *f, int idx, struct fc_shared *sh, void *argp)
{
	const struct rr_arg *arg = argp;
	static struct farm_config next;
	uint64_t s = arg->seed + (uint64_t)idx * 7919;
	uint8_t buf[1600];
	char err[256];
	int n = RR_NODES - 1;

	/* Before: objects of varied sizes, written by farm_write, then some
	 * committed transactions over them. */
	for (int k = 0; k < RR_OBJS; k++) {
		farm_addr_t a;
		uint32_t len = 8 + (uint32_t)(rnd(&s) % (RR_MAXOBJ - 8));
		memset(buf, (idx << 6) ^ k, sizeof(buf));
		FC_CHECK_RC(sh, idx, farm_alloc(f, len, FARM_NULL, &a), 0);
		FC_CHECK_RC(sh, idx, farm_write(f, a, buf, len), 0);
		sh->addr[idx * RR_OBJS + k] = a;
		sh->val[idx * RR_OBJS + k] = len;
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, RR_NODES, 20000), 0);
	for (int i = 0; i < 40; i++) {
		struct farm_tx *tx;
		int k = (int)(rnd(&s) % (RR_NODES * RR_OBJS));
		memset(buf, (int)rnd(&s), 8);
		FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
		if (farm_tx_write(tx, sh->addr[k], buf, 8) == 0 && farm_tx_commit(tx, NULL) == 0)
			sh->count[idx][6]++;
		else
			farm_tx_abort(tx);
	}
	/* A write in flight across the configuration change (its lock spans
	 * the adoption): region R is backed up by the victim D and by B, led
	 * by P, and gets N as its new backup. N allocates O there; after the
	 * crash P starts a write of O (locked, new bytes staged, REPLs to B
	 * and D as the old map says) while B sleeps without serving, and
	 * adopts: N's copy finds O locked, and only fetching it again after B
	 * acked gives N the new value (no REPL of it ever reaches N). */
	static struct farm_config nx;
	struct farm_rmap nm;
	uint32_t R = UINT32_MAX, P = 0, B = 0, N = 0, rep[4];
	nx = *arg->cfg;
	nx.nmembers = RR_NODES - 1;
	nx.config_id = 2;
	FC_CHECK_RC(sh, idx, farm__config_finish(&nx, err, sizeof(err)), 0);
	FC_CHECK_RC(sh, idx, farm_rmap_build(&nm, &nx), 0);
	for (uint32_t r = 0; r < RR_REGIONS && R == UINT32_MAX; r++) {
		const uint32_t *nr = farm_rmap_replicas(&nm, r);
		FC_CHECK(sh, idx, farm_region_replicas(f, r, rep, 4) == 3);
		if (rep[1] != RR_NODES && rep[2] != RR_NODES)
			continue; /* the victim is not a backup of r */
		if (nr[0] != rep[0])
			continue;
		R = r;
		P = rep[0];
		B = rep[1] == RR_NODES ? rep[2] : rep[1];
		N = nr[1] != P && nr[1] != B ? nr[1] : nr[2];
	}
	farm_rmap_free(&nm);
	FC_CHECK(sh, idx, R != UINT32_MAX);
	if (farm_self(f) == N) {
		farm_addr_t o;
		FC_CHECK_RC(sh, idx, farm_alloc(f, 200, FARM_ADDR(R, FARM_LINE), &o), 0);
		FC_CHECK(sh, idx, FARM_REGION(o) == R);
		sh->addr[FC_SLOTS - 1] = o;
	}
	/* Every CB record applied before the crash: the victim's own records
	 * are recovery's business (recovery.h), not this test's. */
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 1, RR_NODES, 20000), 0);
	farm__tx_flush(f);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 6, RR_NODES, 20000), 0);
	uint64_t end = proc_now_ms() + 10000;
	while (farm__tx_unapplied(f)) {
		FC_CHECK(sh, idx, proc_now_ms() < end);
		farm_poll(f);
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 7, RR_NODES, 20000), 0);
	if (idx == RR_NODES - 1) {
		/* The last member crashes (counted as done: nobody waits for it). */
		__atomic_add_fetch(&sh->done, 1, __ATOMIC_ACQ_REL);
		_exit(0);
	}

	int span_op = -1;
	if (farm_self(f) == B) {
		/* P's write waits for our ack meanwhile; then we ack it while
		 * still in configuration 1 (a REPL from configuration 1 would
		 * be refused once we are in 2). */
		usleep(300000);
		for (uint64_t t = proc_now_ms() + 20; proc_now_ms() < t;)
			farm_poll(f);
	} else if (farm_self(f) == P) {
		memset(buf, 0xab, 200);
		span_op = farm__op_new(f, FARM_OPK_CLIENT, 0);
		FC_CHECK(sh, idx, span_op >= 0);
		FC_CHECK_RC(sh, idx,
			    farm__primary_write(f, sh->addr[FC_SLOTS - 1], buf, 200, true,
						(uint32_t)span_op, NULL),
			    0);
	}
	/* The configuration manager's verdict: it is out. */
	next = *arg->cfg;
	next.nmembers = RR_NODES - 1;
	next.config_id = 2;
	farm__rerep_set_log(f, log_line, (void *)(uintptr_t)farm_self(f));
	farm__rerep_set_chunk(f, 4096); /* many round trips, paced: a copy that lasts */
	farm__rerep_set_pace(f, 500);
	FC_CHECK_RC(sh, idx, farm__adopt_config(f, &next, err, sizeof(err)), 0);
	sh->count[idx][0] = (uint64_t)farm__rerep_pending(f);
	__atomic_store_n(&sh->count[idx][1], (uint64_t)farm__rerep_pending(f), __ATOMIC_RELEASE);
	/* Every region now has a replica here (3 replicas, 3 members). */
	for (uint32_t r = 0; r < RR_REGIONS; r++)
		FC_CHECK(sh, idx, f->regions[r].mine != NULL);

	/* Nobody writes before every survivor has adopted: a primary still in
	 * configuration 1 would accept a write from configuration 2 and have
	 * its REPLs refused by backups in 2 (a divergence of the write path
	 * that is not this test's subject). B's regions are copied only now
	 * (B did not serve while it slept): the writes below meet them. */
	end = proc_now_ms() + 30000;
	__atomic_store_n(&sh->flag[idx], 1, __ATOMIC_RELEASE);
	for (int i = 0; i < n; i++)
		while (!__atomic_load_n(&sh->flag[i], __ATOMIC_ACQUIRE)) {
			FC_CHECK(sh, idx, proc_now_ms() < end);
			farm_poll(f);
		}
	/* Work against every region while the copies run, until no node
	 * copies any more (bounded). */
	uint64_t ops = 0;

	while (copying_anywhere(sh) || ops < 50) {
		uint32_t what = (uint32_t)(rnd(&s) % 10);
		int k = (int)(rnd(&s) % ((RR_NODES - 1) * RR_OBJS)); /* survivors' objects */
		farm_addr_t a = sh->addr[k];
		uint32_t len = (uint32_t)sh->val[k];
		bool during = copying_anywhere(sh) != 0;
		int rc;

		FC_CHECK(sh, idx, proc_now_ms() < end);
		for (uint32_t b = 0; b < sizeof(buf); b++)
			buf[b] = (uint8_t)rnd(&s);
		if (what < 5) {
			rc = farm_write(f, a, buf, 1 + (uint32_t)(rnd(&s) % len));
			if (rc == 0)
				sh->count[idx][7]++;
		} else if (what < 8) {
			struct farm_tx *tx;
			int j = (int)(rnd(&s) % ((RR_NODES - 1) * RR_OBJS));
			FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
			rc = farm_tx_write(tx, a, buf, 1 + (uint32_t)(rnd(&s) % len));
			if (rc == 0 && j != k)
				rc = farm_tx_write(tx, sh->addr[j], buf + 8, 8);
			if (rc == 0) {
				rc = farm_tx_commit(tx, NULL);
				if (rc == 0)
					sh->count[idx][6]++;
			} else {
				farm_tx_abort(tx);
			}
		} else if (what == 8) {
			farm_addr_t x;
			rc = farm_alloc(f, 16 + (uint32_t)(rnd(&s) % (RR_MAXOBJ - 16)), a, &x);
			if (rc == 0) {
				rc = farm_write(f, x, buf, 16);
				int rf = farm_free(f, x);
				FC_CHECK(sh, idx, rf == 0 || tolerable(rf));
			}
		} else {
			/* A transaction that allocates and keeps its object. */
			struct farm_tx *tx;
			farm_addr_t x;
			FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
			rc = farm_tx_alloc(tx, 16 + (uint32_t)(rnd(&s) % (RR_MAXOBJ - 16)), a, &x);
			if (rc == 0)
				rc = farm_tx_write(tx, x, buf, 8);
			if (rc == 0)
				rc = farm_tx_commit(tx, NULL);
			else
				farm_tx_abort(tx);
		}
		if (rc && !tolerable(rc)) {
			snprintf(sh->err[idx], sizeof(sh->err[idx]), "op %u during the copy: %d (%s)",
				 what, rc, farm_strerror(rc));
			return 1;
		}
		ops++;
		if (rc == 0 && during)
			sh->count[idx][2]++;
		if (ops % 4 == 0)
			farm__rehello_poll(f);
		__atomic_store_n(&sh->count[idx][1], (uint64_t)farm__rerep_pending(f),
				 __ATOMIC_RELEASE);
	}
	FC_CHECK(sh, idx, farm__rerep_pending(f) == 0);
	if (span_op >= 0) {
		while (f->ops[span_op].state == FARM_OP_WAIT) {
			FC_CHECK(sh, idx, proc_now_ms() < end);
			farm_poll(f);
		}
		farm__op_release(f, (uint32_t)span_op);
	}
	{
		/* O holds the new bytes here, whatever this node's role. */
		uint8_t o[200];
		FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[FC_SLOTS - 1], o, 200, NULL), 0);
		for (int i = 0; i < 8; i++)
			FC_CHECK(sh, idx, o[i] == 0xab);
	}

	/* Quiesce: every CB record applied everywhere. */
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 2, n, 30000), 0);
	farm__tx_flush(f);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 3, n, 30000), 0);
	end = proc_now_ms() + 10000;
	while (farm__tx_unapplied(f)) {
		FC_CHECK(sh, idx, proc_now_ms() < end);
		farm_poll(f);
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 4, n, 30000), 0);

	struct farm_rerep_stats st;
	farm__rerep_get_stats(f, &st);
	sh->count[idx][3] = st.bytes;
	sh->count[idx][4] = st.done;
	sh->count[idx][5] = st.started;
	for (uint32_t r = 0; r < RR_REGIONS; r++) {
		const struct farm_replica *x = f->regions[r].mine;
		FC_CHECK(sh, idx, x != NULL && !x->copying);
		memcpy(arg->dump + ((size_t)idx * RR_REGIONS + r) * RR_REGION, x->base, RR_REGION);
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 5, n, 30000), 0);
	return 0;
}

static void test_removal_rereplicates(void **state)
{
	static struct farm_config cfg;
	struct fc_shared *sh = proc_shared(sizeof(*sh));
	size_t dump_len = (size_t)(RR_NODES - 1) * RR_REGIONS * RR_REGION;
	struct rr_arg ra = {seed_from_env(), &cfg, proc_shared(dump_len)};
	uint64_t objs = 0, to_copy = 0, started = 0, done = 0, bytes = 0, during = 0, hwm_sum = 0;

	(void)state;
	print_message("seed %llu (REREP_SEED=%llu replays)\n", (unsigned long long)ra.seed,
		      (unsigned long long)ra.seed);
	fc_config(&cfg, RR_NODES, "rerep", RR_REGION, RR_REGIONS, 3);
	int rc = fc_run(&cfg, node_removal, &ra, sh, 20000, 55000);
	for (int i = 0; i < RR_NODES - 1; i++) {
		print_message("node %d: %llu regions to copy, %llu started, %llu done, %llu bytes "
			      "copied, %llu ops during the copy, %llu writes, %llu txs\n",
			      i + 1, (unsigned long long)sh->count[i][0],
			      (unsigned long long)sh->count[i][5], (unsigned long long)sh->count[i][4],
			      (unsigned long long)sh->count[i][3], (unsigned long long)sh->count[i][2],
			      (unsigned long long)sh->count[i][7], (unsigned long long)sh->count[i][6]);
		to_copy += sh->count[i][0];
		started += sh->count[i][5];
		done += sh->count[i][4];
		bytes += sh->count[i][3];
		during += sh->count[i][2];
	}
	assert_int_equal(rc, 0);
	/* A 4-node, 3-replica map loses a third of its copies with a member:
	 * something had to be copied, and all of it was. */
	assert_true(to_copy > 0);
	assert_int_equal(started, to_copy);
	assert_int_equal(done, started);
	assert_true(during >= RR_MIN_DURING);
	for (uint32_t r = 0; r < RR_REGIONS; r++) {
		const uint8_t *base[RR_NODES - 1];
		uint64_t hwm = 0;
		for (int i = 0; i < RR_NODES - 1; i++)
			base[i] = ra.dump + ((size_t)i * RR_REGIONS + r) * RR_REGION;
		for (int i = 1; i < RR_NODES - 1; i++) {
			uint64_t d = replicas_diff(base[0], base[i], RR_REGION, &objs, &hwm);
			if (d) {
				uint64_t o = (d - 1) & ~(uint64_t)(FARM_LINE - 1), h0, h1;
				memcpy(&h0, base[0] + o, 8);
				memcpy(&h1, base[i] + o, 8);
				print_message("region %u: node 1 and node %d differ at offset %llu "
					      "(headers %#llx / %#llx)\n",
					      r, i + 1, (unsigned long long)(d - 1),
					      (unsigned long long)h0, (unsigned long long)h1);
			}
			assert_int_equal(d, 0);
		}
		hwm_sum += hwm;
	}
	print_message("%llu object replicas compared equal; regions use %llu of %u bytes\n",
		      (unsigned long long)objs, (unsigned long long)hwm_sum,
		      RR_REGIONS * RR_REGION);
	assert_true(objs >= (RR_NODES - 1) * RR_OBJS);
	/* Only the used part was copied: the regions are mostly empty, and the
	 * bytes received stay far below the regions' size (re-fetched slots
	 * and chunks cut short by staging add a little). */
	assert_true(hwm_sum < (uint64_t)RR_REGIONS * RR_REGION / 2);
	assert_true(bytes < to_copy * (uint64_t)RR_REGION / 2);
	proc_unshare(ra.dump, dump_len);
	proc_unshare(sh, sizeof(*sh));
}

/* ---- bad requests ---------------------------------------------------------- */

static int node_bad(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	const struct farm_config *cfg = arg;
	uint32_t me = farm_self(f), rep[4];
	uint64_t size = cfg->region_size, hwm = 0;
	static uint8_t buf[FARM_REREP_CHUNK];
	uint32_t got = 0;
	farm_addr_t a;

	FC_CHECK(sh, idx, farm__rerep_pending(f) == 0);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, 3, 20000), 0);
	if (idx == 0) {
		uint32_t peer = 0, good = UINT32_MAX, notprim = UINT32_MAX, notbackup = UINT32_MAX;
		/* A region node 1 backs up; its primary is the peer asked. */
		for (uint32_t r = 0; r < cfg->regions && good == UINT32_MAX; r++) {
			FC_CHECK(sh, idx, farm_region_replicas(f, r, rep, 4) == 2);
			if (rep[1] == me) {
				good = r;
				peer = rep[0];
			}
		}
		FC_CHECK(sh, idx, good != UINT32_MAX);
		for (uint32_t r = 0; r < cfg->regions; r++) {
			FC_CHECK(sh, idx, farm_region_replicas(f, r, rep, 4) == 2);
			if (rep[0] != peer)
				notprim = r;
			if (rep[0] == peer && rep[1] != me)
				notbackup = r;
		}
		/* Something to copy (allocated at the remote primary). */
		FC_CHECK_RC(sh, idx, farm_alloc(f, 100, FARM_ADDR(good, FARM_LINE), &a), 0);
		FC_CHECK(sh, idx, FARM_REGION(a) == good);
		/* Asked by its backup: the bytes up to the high-water mark. */
		if (good != UINT32_MAX) {
			FC_CHECK_RC(sh, idx,
				    farm__rerep_fetch(f, peer, good, 0, 4096, buf, sizeof(buf), &got,
						      &hwm, 5000),
				    0);
			FC_CHECK(sh, idx, hwm >= 3 * FARM_LINE && hwm < size);
			FC_CHECK(sh, idx, got == (hwm < 4096 ? hwm : 4096));
			const struct farm_region_hdr *h = (const void *)buf;
			FC_CHECK(sh, idx, h->magic == FARM_REGION_MAGIC && h->region == good);
			/* At and past the high-water mark: no bytes, no error. */
			FC_CHECK_RC(sh, idx,
				    farm__rerep_fetch(f, peer, good, hwm, 64, buf, sizeof(buf), &got,
						      &hwm, 5000),
				    0);
			FC_CHECK(sh, idx, got == 0);
			FC_CHECK_RC(sh, idx,
				    farm__rerep_fetch(f, peer, good, 8, 64, buf, sizeof(buf), &got,
						      &hwm, 5000),
				    -EINVAL);
			FC_CHECK_RC(sh, idx,
				    farm__rerep_fetch(f, peer, good, 0, 0, buf, sizeof(buf), &got,
						      &hwm, 5000),
				    -EINVAL);
			FC_CHECK_RC(sh, idx,
				    farm__rerep_fetch(f, peer, good, 0, 100, buf, sizeof(buf), &got,
						      &hwm, 5000),
				    -EINVAL);
			FC_CHECK_RC(sh, idx,
				    farm__rerep_fetch(f, peer, good, 0, FARM_REREP_CHUNK + 64, buf,
						      sizeof(buf), &got, &hwm, 5000),
				    -EINVAL);
			FC_CHECK_RC(sh, idx,
				    farm__rerep_fetch(f, peer, good, size, 64, buf, sizeof(buf), &got,
						      &hwm, 5000),
				    -ERANGE);
			FC_CHECK_RC(sh, idx,
				    farm__rerep_fetch(f, peer, good, size - 64, 128, buf, sizeof(buf),
						      &got, &hwm, 5000),
				    -ERANGE);
			FC_CHECK_RC(sh, idx,
				    farm__rerep_fetch(f, peer, good, UINT64_MAX - 63, 128, buf,
						      sizeof(buf), &got, &hwm, 5000),
				    -ERANGE);
		}
		FC_CHECK(sh, idx, good != UINT32_MAX && notprim != UINT32_MAX);
		FC_CHECK_RC(sh, idx,
			    farm__rerep_fetch(f, peer, cfg->regions, 0, 64, buf, sizeof(buf), &got,
					      &hwm, 5000),
			    -ENOENT);
		FC_CHECK_RC(sh, idx,
			    farm__rerep_fetch(f, peer, UINT32_MAX, 0, 64, buf, sizeof(buf), &got,
					      &hwm, 5000),
			    -ENOENT);
		FC_CHECK_RC(sh, idx,
			    farm__rerep_fetch(f, peer, notprim, 0, 64, buf, sizeof(buf), &got, &hwm,
					      5000),
			    -ENXIO);
		if (notbackup != UINT32_MAX)
			FC_CHECK_RC(sh, idx,
				    farm__rerep_fetch(f, peer, notbackup, 0, 64, buf, sizeof(buf),
						      &got, &hwm, 5000),
				    -EPERM);
		/* Not a member: refused before anything is sent. */
		FC_CHECK_RC(sh, idx,
			    farm__rerep_fetch(f, 99, good, 0, 64, buf, sizeof(buf), &got, &hwm, 5000),
			    -ENOENT);
		FC_CHECK_RC(sh, idx,
			    farm__rerep_fetch(NULL, peer, good, 0, 64, buf, sizeof(buf), &got, &hwm,
					      5000),
			    -EINVAL);
		sh->val[0] = good;
		sh->val[1] = peer;
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 1, 3, 20000), 0);
	if (me == sh->val[1])
		farm__set_config_id(f, 2); /* the primary moves on */
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 2, 3, 20000), 0);
	if (idx == 0) {
		uint32_t peer = (uint32_t)sh->val[1], good = (uint32_t)sh->val[0];
		/* From an older configuration: refused. */
		FC_CHECK_RC(sh, idx,
			    farm__rerep_fetch(f, peer, good, 0, 64, buf, sizeof(buf), &got, &hwm,
					      5000),
			    -ESTALE);
		/* From a newer one than the primary's: wait until it adopts. */
		farm__set_config_id(f, 3);
		FC_CHECK_RC(sh, idx,
			    farm__rerep_fetch(f, peer, good, 0, 64, buf, sizeof(buf), &got, &hwm,
					      5000),
			    -EAGAIN);
		struct farm_rerep_stats st;
		farm__rerep_get_stats(f, &st);
		FC_CHECK(sh, idx, st.started == 0 && st.done == 0);
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 3, 3, 20000), 0);
	if (me == sh->val[1]) {
		struct farm_rerep_stats st;
		farm__rerep_get_stats(f, &st);
		FC_CHECK(sh, idx, st.served >= 2 && st.refused >= 10);
	}
	return 0;
}

static void test_bad_requests(void **state)
{
	static struct farm_config cfg;

	(void)state;
	fc_config(&cfg, 3, "rerepbad", 1 << 20, 12, 2);
	assert_int_equal(fc_run(&cfg, node_bad, &cfg, NULL, 20000, 50000), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_bad_requests, proc_teardown),
	    cmocka_unit_test_teardown(test_removal_rereplicates, proc_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
