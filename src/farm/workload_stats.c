/*
 * workload_stats.c - what the workloads share: a latency histogram that
 * needs no allocation and merges across nodes (log-linear buckets: exact
 * below 32 ns, then 32 buckets per power of two, so a percentile is within
 * ~3%), how an attempt ends and is counted, the clock and the random
 * stream; and the per-millisecond commit timeline that `farm bench
 * recovery` draws its curve from.
 */
#include <errno.h>
#include <time.h>

#include "workload.h"

static uint32_t bucket(uint64_t v)
{
	uint32_t e;

	if (v < FARM_LAT_SUB)
		return (uint32_t)v;
	e = 63u - (uint32_t)__builtin_clzll(v); /* >= 5 */
	return (e - 4) * FARM_LAT_SUB + (uint32_t)((v >> (e - 5)) & (FARM_LAT_SUB - 1));
}

static uint64_t bucket_low(uint32_t i)
{
	uint32_t e;

	if (i < FARM_LAT_SUB)
		return i;
	e = i / FARM_LAT_SUB + 4;
	return (uint64_t)(FARM_LAT_SUB + i % FARM_LAT_SUB) << (e - 5);
}

static uint64_t bucket_width(uint32_t i)
{
	return i < FARM_LAT_SUB ? 1 : 1ull << (i / FARM_LAT_SUB - 1);
}

uint64_t farm_lat_bucket_mid(uint32_t i)
{
	return bucket_low(i) + bucket_width(i) / 2;
}

void farm_lat_add(struct farm_lat *l, uint64_t ns)
{
	l->n[bucket(ns)]++;
	l->count++;
	l->sum += ns;
	if (ns > l->max)
		l->max = ns;
}

uint64_t farm_lat_pct(const struct farm_lat *l, double p)
{
	uint64_t want, seen = 0;

	if (l->count == 0)
		return 0;
	want = (uint64_t)(p * (double)l->count);
	if (want >= l->count)
		want = l->count - 1;
	for (uint32_t i = 0; i < FARM_LAT_BUCKETS; i++) {
		seen += l->n[i];
		if (seen > want) {
			uint64_t v = farm_lat_bucket_mid(i);
			return v < l->max ? v : l->max;
		}
	}
	return l->max;
}

void farm_lat_merge(struct farm_lat *into, const struct farm_lat *from)
{
	for (uint32_t i = 0; i < FARM_LAT_BUCKETS; i++)
		into->n[i] += from->n[i];
	into->count += from->count;
	into->sum += from->sum;
	if (from->max > into->max)
		into->max = from->max;
}

void farm_wl_timeline_add(struct farm_wl_timeline *t, uint64_t now_ns)
{
	uint64_t ms = now_ns / 1000000u;

	if (ms > t->last_ms) {
		/* Clear the slots time moved past (at most the whole ring). */
		uint64_t from =
		    ms - t->last_ms > FARM_WL_TL_MS ? ms - FARM_WL_TL_MS + 1 : t->last_ms + 1;
		for (uint64_t m = from; m <= ms; m++)
			t->n[m % FARM_WL_TL_MS] = 0;
		t->last_ms = ms;
	} else if (t->last_ms - ms >= FARM_WL_TL_MS) {
		return; /* older than the ring */
	}
	t->n[ms % FARM_WL_TL_MS]++;
}

uint32_t farm_wl_timeline_get(const struct farm_wl_timeline *t, uint64_t ms)
{
	if (ms > t->last_ms || t->last_ms - ms >= FARM_WL_TL_MS)
		return 0;
	return t->n[ms % FARM_WL_TL_MS];
}

uint64_t farm_wl_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t farm_wl_rand(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

int farm_wl_end(struct farm_tx *tx, int rc, bool rollback, bool wrote, int type, uint64_t start_ns,
		struct farm_wl_stats *st, uint64_t *end_ns)
{
	struct farm_tx_result res = {FARM_ABORT_NONE, 0};

	if (rc == 0 && rollback) {
		farm_tx_abort(tx);
		rc = 1;
	} else if (rc == 0 || rc == -EAGAIN) {
		rc = farm_tx_commit(tx, &res);
	} else {
		farm_tx_abort(tx);
	}
	*end_ns = farm_wl_now_ns();
	if (rc == 0) {
		st->committed++;
		st->type_committed[type]++;
		farm_lat_add(&st->commit, res.commit_ns);
		if (wrote)
			farm_lat_add(&st->commit_rw, res.commit_ns);
		farm_lat_add(&st->tx, *end_ns - start_ns);
		if (st->timeline)
			farm_wl_timeline_add(st->timeline, *end_ns);
	} else if (rc == 1) {
		st->rolled_back++;
	} else if (rc == -EAGAIN) {
		st->aborted++;
		st->reason[res.reason < 8 ? res.reason : 0]++;
	} else {
		st->errors++;
		st->last_error = rc;
	}
	return rc;
}
