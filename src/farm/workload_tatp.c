/*
 * workload_tatp.c - TATP (the Telecom Application Transaction Processing
 * benchmark) over FaRM objects: its four tables, its seven transactions
 * and its mix (see workload.h).
 *
 * Rows are grouped in three objects per subscriber, so a transaction
 * touches the fewest objects a key-value layout allows and two
 * transactions conflict only when the spec says they do:
 *   sub  the Subscriber row (one line);
 *   ai   its Access_Info rows, slot ai_type - 1 (one line);
 *   sf   its Special_Facility rows, slot sf_type - 1, each holding its
 *        Call_Forwarding rows in slots start_time / 8 (five lines).
 * The three are allocated in one region (FaRM's locality hint), regions
 * taken round-robin, so every primary holds subscribers. The index from
 * s_id to the three addresses is an array in FaRM objects, read once by
 * each client (it never changes after the load; with the key-value store
 * it becomes a hashtable lookup, one one-sided read). sub_nbr is s_id's
 * fifteen decimal digits, so looking a subscriber up by sub_nbr (the spec's
 * UPDATE_LOCATION and *_CALL_FORWARDING) lands on the same index entry.
 *
 * s_id is uniform over the population. A transaction whose row is absent
 * (the spec expects many) either commits with no result (the reads) or
 * rolls back (the updates), as TATP prescribes; both are counted apart
 * from conflict aborts. Every object carries its s_id: a read that finds
 * another subscriber's row counts as a violation.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workload.h"

#define TATP_MAGIC 0x5054415441524146ull /* "FARATATP" */
#define LOAD_BATCH 16			 /* subscribers written per transaction */

struct tatp_sub {
	uint32_t s_id;
	uint16_t bits;	/* bit_1 .. bit_10 */
	uint8_t hex[5]; /* hex_1 .. hex_10, a nibble each */
	uint8_t byte2[10];
	char sub_nbr[15];
	uint32_t msc_location, vlr_location;
};

struct tatp_ai_row {
	uint8_t present, data1, data2;
	char data3[3], data4[5];
};

struct tatp_ai {
	uint32_t s_id;
	struct tatp_ai_row ai[4];
};

struct tatp_cf {
	uint8_t present, end_time;
	char numberx[15];
};

struct tatp_sf_row {
	uint8_t present, is_active, error_cntrl, data_a;
	char data_b[5];
	struct tatp_cf cf[3]; /* start_time 0, 8, 16 */
};

struct tatp_sf {
	uint32_t s_id;
	struct tatp_sf_row sf[4];
};

struct tatp_idx {
	farm_addr_t sub, ai, sf;
};

#define IDX_PER_OBJ (FARM_OBJ_MAX / sizeof(struct tatp_idx))

struct tatp_root {
	uint64_t magic;
	uint32_t subscribers, nindex;
	farm_addr_t index[];
};

_Static_assert(sizeof(struct tatp_sub) <= 56, "a subscriber is one line");
_Static_assert(sizeof(struct tatp_ai) <= 56, "access info is one line");

struct farm_tatp {
	struct farm *f;
	uint32_t n;
	struct tatp_idx *idx;
	uint64_t rng;
	struct tatp_sub sub;
	struct tatp_ai ai;
	struct tatp_sf sf;
};

static const char *const names[FARM_TATP_NTYPES] = {
    "get_subscriber_data",    "get_new_destination", "get_access_data",
    "update_subscriber_data", "update_location",     "insert_call_forwarding",
    "delete_call_forwarding",
};

const char *farm_tatp_name(int type)
{
	return type >= 0 && type < FARM_TATP_NTYPES ? names[type] : "?";
}

static uint32_t rnd(uint64_t *s, uint32_t n)
{
	return (uint32_t)(farm_wl_rand(s) % n);
}

static void letters(uint64_t *s, char *out, int n)
{
	for (int i = 0; i < n; i++)
		out[i] = (char)('A' + rnd(s, 26));
}

static void digits(uint64_t *s, char *out, int n)
{
	for (int i = 0; i < n; i++)
		out[i] = (char)('0' + rnd(s, 10));
}

/* k distinct slots of 4, as a bit mask (1..4 rows per the spec). */
static uint32_t pick_slots(uint64_t *s)
{
	uint32_t want = 1 + rnd(s, 4), mask = 0;

	while ((uint32_t)__builtin_popcount(mask) < want)
		mask |= 1u << rnd(s, 4);
	return mask;
}

/* The rows of subscriber s_id, as the TATP population rules make them. */
static void populate(uint64_t *s, uint32_t s_id, struct tatp_sub *sub, struct tatp_ai *ai,
		     struct tatp_sf *sf)
{
	uint32_t mask;
	char num[16];

	memset(sub, 0, sizeof(*sub));
	memset(ai, 0, sizeof(*ai));
	memset(sf, 0, sizeof(*sf));
	sub->s_id = ai->s_id = sf->s_id = s_id;
	sub->bits = (uint16_t)rnd(s, 1u << 10);
	for (int i = 0; i < 5; i++)
		sub->hex[i] = (uint8_t)rnd(s, 256);
	for (int i = 0; i < 10; i++)
		sub->byte2[i] = (uint8_t)rnd(s, 256);
	snprintf(num, sizeof(num), "%015u", s_id);
	memcpy(sub->sub_nbr, num, sizeof(sub->sub_nbr));
	sub->msc_location = (uint32_t)farm_wl_rand(s);
	sub->vlr_location = (uint32_t)farm_wl_rand(s);
	mask = pick_slots(s);
	for (int t = 0; t < 4; t++) {
		struct tatp_ai_row *r = &ai->ai[t];
		if (!(mask & (1u << t)))
			continue;
		r->present = 1;
		r->data1 = (uint8_t)rnd(s, 256);
		r->data2 = (uint8_t)rnd(s, 256);
		letters(s, r->data3, 3);
		letters(s, r->data4, 5);
	}
	mask = pick_slots(s);
	for (int t = 0; t < 4; t++) {
		struct tatp_sf_row *r = &sf->sf[t];
		if (!(mask & (1u << t)))
			continue;
		r->present = 1;
		r->is_active = rnd(s, 100) < 85;
		r->error_cntrl = (uint8_t)rnd(s, 256);
		r->data_a = (uint8_t)rnd(s, 256);
		letters(s, r->data_b, 5);
		uint32_t ncf = rnd(s, 4), cfmask = 0; /* 0..3 call forwardings */
		while ((uint32_t)__builtin_popcount(cfmask) < ncf)
			cfmask |= 1u << rnd(s, 3);
		for (int k = 0; k < 3; k++) {
			if (!(cfmask & (1u << k)))
				continue;
			r->cf[k].present = 1;
			r->cf[k].end_time = (uint8_t)(k * 8 + 1 + rnd(s, 8));
			digits(s, r->cf[k].numberx, 15);
		}
	}
}

static uint32_t root_size(uint32_t nindex)
{
	return (uint32_t)(sizeof(struct tatp_root) + nindex * sizeof(farm_addr_t));
}

/* Write the rows of subscribers [from, to) in one transaction. */
static int load_batch(struct farm *f, const struct tatp_idx *idx, uint32_t from, uint32_t to,
		      uint64_t seed)
{
	struct tatp_sub sub;
	struct tatp_ai ai;
	struct tatp_sf sf;
	struct farm_tx_result res;

	for (int attempt = 0; attempt < 100; attempt++) {
		uint64_t s =
		    seed ^ ((uint64_t)from * 0x9e3779b97f4a7c15ull); /* same rows on retry */
		struct farm_tx *tx;
		int rc = farm_tx_begin(f, &tx);
		if (rc < 0)
			return rc;
		for (uint32_t i = from; i < to && rc == 0; i++) {
			populate(&s, i + 1, &sub, &ai, &sf);
			if ((rc = farm_tx_write(tx, idx[i].sub, &sub, sizeof(sub))) == 0 &&
			    (rc = farm_tx_write(tx, idx[i].ai, &ai, sizeof(ai))) == 0)
				rc = farm_tx_write(tx, idx[i].sf, &sf, sizeof(sf));
		}
		if (rc < 0) {
			farm_tx_abort(tx);
			return rc;
		}
		rc = farm_tx_commit(tx, &res);
		if (rc != -EAGAIN)
			return rc;
	}
	return -EAGAIN;
}

static void free_rows(struct farm *f, const struct tatp_idx *idx, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		if (idx[i].sub)
			farm_free(f, idx[i].sub);
		if (idx[i].ai)
			farm_free(f, idx[i].ai);
		if (idx[i].sf)
			farm_free(f, idx[i].sf);
	}
}

int farm_tatp_create(struct farm *f, uint32_t n, uint64_t seed, farm_addr_t *root)
{
	uint32_t regions = farm_get_config(f)->regions;
	uint32_t nindex = (uint32_t)((n + IDX_PER_OBJ - 1) / IDX_PER_OBJ), idx_made = 0;
	struct tatp_idx *idx = NULL;
	struct tatp_root *r = NULL;
	int rc = 0;

	*root = FARM_NULL;
	if (n < 1 || root_size(nindex) > FARM_OBJ_MAX)
		return -EINVAL;
	idx = calloc(n, sizeof(*idx));
	r = calloc(1, root_size(nindex));
	if (!idx || !r) {
		rc = -ENOMEM;
		goto fail;
	}
	for (uint32_t i = 0; i < n; i++) {
		farm_addr_t near = FARM_ADDR(i % regions, 64);
		if ((rc = farm_alloc(f, sizeof(struct tatp_sub), near, &idx[i].sub)) < 0 ||
		    (rc = farm_alloc(f, sizeof(struct tatp_ai), idx[i].sub, &idx[i].ai)) < 0 ||
		    (rc = farm_alloc(f, sizeof(struct tatp_sf), idx[i].sub, &idx[i].sf)) < 0)
			goto fail;
	}
	for (uint32_t i = 0; i < n; i += LOAD_BATCH)
		if ((rc = load_batch(f, idx, i, i + LOAD_BATCH < n ? i + LOAD_BATCH : n, seed)) < 0)
			goto fail;
	for (; idx_made < nindex; idx_made++) {
		uint32_t first = idx_made * (uint32_t)IDX_PER_OBJ;
		uint32_t cnt = n - first < IDX_PER_OBJ ? n - first : (uint32_t)IDX_PER_OBJ;
		uint32_t bytes = cnt * (uint32_t)sizeof(*idx);
		if ((rc = farm_alloc(f, bytes, FARM_NULL, &r->index[idx_made])) < 0)
			goto fail;
		if ((rc = farm_write(f, r->index[idx_made], idx + first, bytes)) < 0) {
			idx_made++;
			goto fail;
		}
	}
	r->magic = TATP_MAGIC;
	r->subscribers = n;
	r->nindex = nindex;
	if ((rc = farm_alloc(f, root_size(nindex), FARM_NULL, root)) < 0)
		goto fail;
	if ((rc = farm_write(f, *root, r, root_size(nindex))) < 0) {
		farm_free(f, *root);
		*root = FARM_NULL;
		goto fail;
	}
	free(idx);
	free(r);
	return 0;
fail:
	while (r && idx_made > 0)
		farm_free(f, r->index[--idx_made]);
	if (idx)
		free_rows(f, idx, n);
	free(idx);
	free(r);
	return rc;
}

int farm_tatp_open(struct farm *f, farm_addr_t root, uint64_t seed, struct farm_tatp **out)
{
	struct tatp_root *r = NULL;
	struct farm_tatp *t = NULL;
	uint32_t size;
	int rc;

	*out = NULL;
	if ((rc = farm_obj_size(f, root, &size)) < 0)
		return rc;
	if (size < sizeof(*r))
		return -EINVAL;
	r = malloc(size);
	t = calloc(1, sizeof(*t));
	if (!r || !t) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = farm_read(f, root, r, size, NULL)) < 0)
		goto fail;
	if (r->magic != TATP_MAGIC || r->subscribers < 1 || size < root_size(r->nindex) ||
	    r->nindex != (r->subscribers + IDX_PER_OBJ - 1) / IDX_PER_OBJ) {
		rc = -EINVAL;
		goto fail;
	}
	t->idx = malloc(r->subscribers * sizeof(*t->idx));
	if (!t->idx) {
		rc = -ENOMEM;
		goto fail;
	}
	for (uint32_t i = 0; i < r->nindex; i++) {
		uint32_t first = i * (uint32_t)IDX_PER_OBJ;
		uint32_t cnt = r->subscribers - first < IDX_PER_OBJ ? r->subscribers - first
								    : (uint32_t)IDX_PER_OBJ;
		if ((rc = farm_read(f, r->index[i], t->idx + first, cnt * (uint32_t)sizeof(*t->idx),
				    NULL)) < 0)
			goto fail;
	}
	t->f = f;
	t->n = r->subscribers;
	t->rng = seed ? seed : 1;
	free(r);
	*out = t;
	return 0;
fail:
	free(r);
	if (t)
		free(t->idx);
	free(t);
	return rc;
}

uint32_t farm_tatp_subscribers(const struct farm_tatp *t)
{
	return t->n;
}

void farm_tatp_close(struct farm_tatp *t)
{
	if (!t)
		return;
	free(t->idx);
	free(t);
}

/* ---- the seven transactions ------------------------------------------------
 * Each returns the code for farm_wl_end: 0 to commit, a read's error to
 * end with, or 1 to roll back (a row the update needs is absent). */

static int rd(struct farm_tatp *t, struct farm_tx *tx, farm_addr_t a, void *buf, uint32_t len,
	      uint32_t s_id, struct farm_wl_stats *st)
{
	int rc = farm_tx_read(tx, a, buf, len);

	if (rc == 0 && *(const uint32_t *)buf != s_id)
		st->violations++; /* another subscriber's row: the index or a read lied */
	return rc;
}

static int get_subscriber_data(struct farm_tatp *t, struct farm_tx *tx, uint32_t s,
			       struct farm_wl_stats *st)
{
	return rd(t, tx, t->idx[s - 1].sub, &t->sub, sizeof(t->sub), s, st);
}

static int get_new_destination(struct farm_tatp *t, struct farm_tx *tx, uint32_t s,
			       struct farm_wl_stats *st)
{
	uint32_t type = rnd(&t->rng, 4), start = 8 * rnd(&t->rng, 3), end = 1 + rnd(&t->rng, 24);
	int rc = rd(t, tx, t->idx[s - 1].sf, &t->sf, sizeof(t->sf), s, st);
	const struct tatp_sf_row *r = &t->sf.sf[type];
	volatile const char *found = NULL; /* the answer, were anyone asking */

	if (rc == 0 && r->present && r->is_active)
		for (uint32_t k = 0; k <= start / 8; k++)
			if (r->cf[k].present && r->cf[k].end_time > end)
				found = r->cf[k].numberx;
	(void)found;
	return rc;
}

static int get_access_data(struct farm_tatp *t, struct farm_tx *tx, uint32_t s,
			   struct farm_wl_stats *st)
{
	uint32_t type = rnd(&t->rng, 4);
	int rc = rd(t, tx, t->idx[s - 1].ai, &t->ai, sizeof(t->ai), s, st);
	volatile uint8_t data1 = rc == 0 && t->ai.ai[type].present ? t->ai.ai[type].data1 : 0;

	(void)data1;
	return rc;
}

static int update_subscriber_data(struct farm_tatp *t, struct farm_tx *tx, uint32_t s,
				  struct farm_wl_stats *st, bool *wrote)
{
	uint32_t type = rnd(&t->rng, 4), bit = rnd(&t->rng, 2), data_a = rnd(&t->rng, 256);
	int rc = rd(t, tx, t->idx[s - 1].sub, &t->sub, sizeof(t->sub), s, st);

	if (rc == 0)
		rc = rd(t, tx, t->idx[s - 1].sf, &t->sf, sizeof(t->sf), s, st);
	if (rc < 0)
		return rc;
	if (!t->sf.sf[type].present)
		return 1;
	t->sub.bits = (uint16_t)((t->sub.bits & ~1u) | bit);
	t->sf.sf[type].data_a = (uint8_t)data_a;
	*wrote = true;
	rc = farm_tx_write(tx, t->idx[s - 1].sub, &t->sub, sizeof(t->sub));
	return rc ? rc : farm_tx_write(tx, t->idx[s - 1].sf, &t->sf, sizeof(t->sf));
}

static int update_location(struct farm_tatp *t, struct farm_tx *tx, uint32_t s,
			   struct farm_wl_stats *st, bool *wrote)
{
	uint32_t vlr = (uint32_t)farm_wl_rand(&t->rng);
	int rc = rd(t, tx, t->idx[s - 1].sub, &t->sub, sizeof(t->sub), s, st);

	if (rc < 0)
		return rc;
	t->sub.vlr_location = vlr;
	*wrote = true;
	return farm_tx_write(tx, t->idx[s - 1].sub, &t->sub, sizeof(t->sub));
}

static int call_forwarding(struct farm_tatp *t, struct farm_tx *tx, uint32_t s, bool insert,
			   struct farm_wl_stats *st, bool *wrote)
{
	uint32_t type = rnd(&t->rng, 4), slot = rnd(&t->rng, 3);
	uint32_t end = slot * 8 + 1 + rnd(&t->rng, 8);
	int rc = rd(t, tx, t->idx[s - 1].sub, &t->sub, sizeof(t->sub), s, st);
	struct tatp_sf_row *r = &t->sf.sf[type];

	if (rc == 0)
		rc = rd(t, tx, t->idx[s - 1].sf, &t->sf, sizeof(t->sf), s, st);
	if (rc < 0)
		return rc;
	/* Insert needs the special facility and no row at that start time
	 * (primary key); delete needs the row. */
	if (!r->present || r->cf[slot].present != !insert)
		return 1;
	if (insert) {
		r->cf[slot].present = 1;
		r->cf[slot].end_time = (uint8_t)end;
		digits(&t->rng, r->cf[slot].numberx, 15);
	} else {
		memset(&r->cf[slot], 0, sizeof(r->cf[slot]));
	}
	*wrote = true;
	return farm_tx_write(tx, t->idx[s - 1].sf, &t->sf, sizeof(t->sf));
}

/* The mix, cumulative percentages in enum order. */
static const uint8_t mix[FARM_TATP_NTYPES] = {35, 45, 80, 82, 96, 98, 100};

int farm_tatp_step(struct farm_tatp *t, struct farm_wl_stats *st)
{
	uint32_t p = rnd(&t->rng, 100), s = 1 + rnd(&t->rng, t->n);
	uint64_t start, end;
	struct farm_tx *tx;
	bool wrote = false;
	int type = 0, rc;

	while (p >= mix[type])
		type++;
	st->attempts++;
	st->type_attempts[type]++;
	start = farm_wl_now_ns();
	if ((rc = farm_tx_begin(t->f, &tx)) < 0) {
		st->errors++;
		st->last_error = rc;
		return rc;
	}
	switch (type) {
	case FARM_TATP_GET_SUBSCRIBER_DATA:
		rc = get_subscriber_data(t, tx, s, st);
		break;
	case FARM_TATP_GET_NEW_DESTINATION:
		rc = get_new_destination(t, tx, s, st);
		break;
	case FARM_TATP_GET_ACCESS_DATA:
		rc = get_access_data(t, tx, s, st);
		break;
	case FARM_TATP_UPDATE_SUBSCRIBER_DATA:
		rc = update_subscriber_data(t, tx, s, st, &wrote);
		break;
	case FARM_TATP_UPDATE_LOCATION:
		rc = update_location(t, tx, s, st, &wrote);
		break;
	case FARM_TATP_INSERT_CALL_FORWARDING:
		rc = call_forwarding(t, tx, s, true, st, &wrote);
		break;
	default:
		rc = call_forwarding(t, tx, s, false, st, &wrote);
		break;
	}
	rc = farm_wl_end(tx, rc == 1 ? 0 : rc, rc == 1, wrote, type, start, st, &end);
	return rc < 0 && rc != -EAGAIN ? rc : 0;
}
