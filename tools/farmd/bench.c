/*
 * bench.c - `bench read`: one-sided object reads measured inside the node,
 * where a FaRM application runs, so the figure is the read path itself and
 * not the admin socket's round trip.
 *
 * Two passes over the same object. The throughput pass times the whole loop
 * (ops_per_sec: wall clock, so time the node spent descheduled on a busy
 * machine counts against it) and each chunk of POLL_EVERY reads
 * (chunk_ops_per_sec: the median chunk, the read path's rate while it had
 * a CPU); two clock reads per chunk cost nothing. The latency pass takes one timestamp per
 * read, so each sample is one read plus one vDSO clock_gettime (~26 ns
 * here); it keeps at most LAT_MAX samples. The node keeps serving its peers
 * (farm_poll every POLL_EVERY reads): a benchmark must not starve them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "farmd.h"

#define WARMUP	    2000u
#define LAT_MAX	    200000u
#define POLL_EVERY  4096u
#define ALLOC_TRIES 64

static uint32_t primary(struct farmd *d, uint32_t region)
{
	uint32_t reps[FARM_MAX_MEMBERS];

	return farm_region_replicas(d->f, region, reps, FARM_MAX_MEMBERS) > 0 ? reps[0] : 0;
}

static bool wanted(struct farmd *d, farm_addr_t a, bool remote)
{
	uint32_t p = primary(d, FARM_REGION(a));

	return p && (p != d->id) == remote;
}

/* An object whose primary is another node (remote) or this one (local):
 * ask for it with the locality hint in a region of the right kind, and
 * fall back to plain allocations until one lands right. */
static int alloc_target(struct farmd *d, uint32_t size, bool remote, farm_addr_t *out)
{
	const struct farm_config *c = farm_get_config(d->f);
	farm_addr_t junk[ALLOC_TRIES];
	int njunk = 0, rc = -ENOENT;

	*out = FARM_NULL;
	for (uint32_t r = 0; r < c->regions && *out == FARM_NULL; r++) {
		farm_addr_t a;
		if (primary(d, r) == 0 || (primary(d, r) != d->id) != remote)
			continue;
		/* Offset 0 of region 0 is FARM_NULL: hint with the region's first line. */
		rc = farm_alloc(d->f, size, FARM_ADDR(r, r == 0 ? 64 : 0), &a);
		if (rc < 0)
			continue;
		if (wanted(d, a, remote))
			*out = a;
		else
			farm_free(d->f, a);
	}
	while (*out == FARM_NULL && njunk < ALLOC_TRIES) {
		farm_addr_t a;
		rc = farm_alloc(d->f, size, FARM_NULL, &a);
		if (rc < 0)
			break;
		if (wanted(d, a, remote))
			*out = a;
		else
			junk[njunk++] = a;
	}
	while (njunk > 0)
		farm_free(d->f, junk[--njunk]);
	return *out != FARM_NULL ? 0 : rc < 0 ? rc : -ENOENT;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int bench_read(struct farmd *d, uint32_t size, uint64_t count, bool remote, struct bench_result *r,
	       char *err, size_t errlen)
{
	struct farm_stats s0, s1;
	uint64_t *lat = NULL, *chunk = NULL, nlat, nchunks = 0, t0, t1, prev;
	void *buf;
	int rc;

	memset(r, 0, sizeof(*r));
	if (remote && farm_get_config(d->f)->nmembers < 2) {
		snprintf(err, errlen, "a remote read needs a second node");
		return -EINVAL;
	}
	rc = alloc_target(d, size, remote, &r->addr);
	if (rc < 0) {
		snprintf(err, errlen, "cannot allocate a %u B object with a %s primary: %s", size,
			 remote ? "remote" : "local", farm_strerror(rc));
		return rc;
	}
	r->target = primary(d, FARM_REGION(r->addr));
	nlat = count < LAT_MAX ? count : LAT_MAX;
	buf = calloc(1, size);
	lat = malloc(nlat * sizeof(*lat));
	chunk = malloc((count / POLL_EVERY + 1) * sizeof(*chunk));
	if (!buf || !lat || !chunk) {
		rc = -ENOMEM;
		goto out;
	}
	/* Real content, so the copy is not of a page of zeros. */
	memset(buf, 0xa5, size);
	rc = farm_write(d->f, r->addr, buf, size);
	for (uint32_t i = 0; i < WARMUP && rc == 0; i++)
		rc = farm_read(d->f, r->addr, buf, size, NULL);
	if (rc < 0)
		goto out;

	farm_get_stats(d->f, &s0);
	t0 = farmd_now_ns();
	for (uint64_t done = 0; done < count;) {
		uint64_t n = count - done < POLL_EVERY ? count - done : POLL_EVERY, c0, c1;
		c0 = farmd_now_ns();
		for (uint64_t i = 0; i < n; i++) {
			rc = farm_read(d->f, r->addr, buf, size, NULL);
			if (rc < 0)
				goto out;
		}
		c1 = farmd_now_ns();
		if (n == POLL_EVERY || nchunks == 0)
			chunk[nchunks++] = (c1 - c0) * POLL_EVERY / n; /* ns per full chunk */
		farm_poll(d->f);
		done += n;
	}
	t1 = farmd_now_ns();
	farm_get_stats(d->f, &s1);

	prev = farmd_now_ns();
	for (uint64_t i = 0; i < nlat; i++) {
		uint64_t t;
		rc = farm_read(d->f, r->addr, buf, size, NULL);
		if (rc < 0)
			goto out;
		t = farmd_now_ns();
		lat[i] = t - prev;
		prev = t;
		if ((i & (POLL_EVERY - 1)) == POLL_EVERY - 1) {
			farm_poll(d->f);
			prev = farmd_now_ns(); /* the poll is not part of a read */
		}
	}
	qsort(lat, nlat, sizeof(*lat), cmp_u64);
	r->count = count;
	r->seconds = (double)(t1 - t0) / 1e9;
	r->ops_per_sec = r->seconds > 0 ? (double)count / r->seconds : 0;
	qsort(chunk, nchunks, sizeof(*chunk), cmp_u64);
	r->chunk_ops_per_sec =
	    chunk[nchunks / 2] ? (double)POLL_EVERY * 1e9 / (double)chunk[nchunks / 2] : 0;
	r->median_ns = lat[nlat / 2];
	r->p99_ns = lat[nlat * 99 / 100];
	r->min_ns = lat[0];
	r->lat_samples = nlat;
	r->retries = s1.read_retries - s0.read_retries;
out:
	if (rc < 0 && !err[0])
		snprintf(err, errlen, "reading %u B at node %u: %s", size, r->target,
			 farm_strerror(rc));
	free(chunk);
	free(lat);
	free(buf);
	farm_free(d->f, r->addr);
	return rc;
}
