/*
 * workload_bank.c - the bank: the workload that checks transactions rather
 * than measures them (see workload.h).
 *
 * Layout: a root object {magic, accounts, initial, index count, index
 * addresses}; index objects, each an array of up to IDX_PER_OBJ account
 * addresses; accounts of one line each, {version, writer, balance},
 * allocated round-robin over the regions so every primary holds some and
 * transfers cross nodes. The version and writer are the application's:
 * a transfer installs the version it read plus one and its own id, so the
 * history checker can tell which write every read saw.
 *
 * Invariants checked while running: no committed read of a negative
 * balance (a transfer that would overdraw rolls itself back), and every
 * committed audit sums to accounts * initial. The plain audit after a run
 * checks the same on the final state.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "workload.h"

#define BANK_MAGIC   0x4b4e41424d524146ull /* "FARMBANK" */
#define IDX_PER_OBJ  (FARM_OBJ_MAX / 8)
#define INIT_BATCH   32 /* accounts initialised per transaction */
#define AUDIT_SAMPLE 32

struct bank_root {
	uint64_t magic;
	uint32_t accounts, nindex;
	int64_t initial;
	farm_addr_t index[]; /* nindex addresses */
};

struct account {
	uint64_t ver, writer;
	int64_t balance;
};

struct farm_bank {
	struct farm *f;
	uint32_t n;
	int64_t initial;
	uint32_t max_transfer, audit_pct;
	farm_addr_t *acct;
	uint64_t rng, seq, self;
	farm_wl_record_fn rec_fn;
	void *rec_ctx;
	struct farm_wl_rec rec;
	struct account buf[FARM_TX_MAX_READS];
};

static uint32_t root_size(uint32_t nindex)
{
	return (uint32_t)(sizeof(struct bank_root) + nindex * sizeof(farm_addr_t));
}

/* Set the initial balance of accounts [from, to) in one transaction. */
static int init_batch(struct farm *f, const farm_addr_t *a, uint32_t from, uint32_t to,
		      int64_t initial)
{
	struct account v = {0, 0, initial};
	struct farm_tx_result res;

	for (int attempt = 0; attempt < 100; attempt++) {
		struct farm_tx *tx;
		int rc = farm_tx_begin(f, &tx);
		if (rc < 0)
			return rc;
		for (uint32_t i = from; i < to && rc == 0; i++)
			rc = farm_tx_write(tx, a[i], &v, sizeof(v));
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

int farm_bank_create(struct farm *f, const struct farm_bank_params *p, farm_addr_t *root)
{
	const struct farm_config *cfg = farm_get_config(f);
	uint32_t n = p->accounts, nindex = (n + IDX_PER_OBJ - 1) / IDX_PER_OBJ;
	struct bank_root *r = NULL;
	farm_addr_t *a = NULL;
	uint32_t made = 0, idx_made = 0;
	int rc = 0;

	*root = FARM_NULL;
	if (n < 2 || p->initial < 0 || root_size(nindex) > FARM_OBJ_MAX)
		return -EINVAL;
	a = calloc(n, sizeof(*a));
	r = calloc(1, root_size(nindex));
	if (!a || !r) {
		rc = -ENOMEM;
		goto fail;
	}
	/* Round-robin over regions: the hint's region when it has room. */
	for (; made < n; made++) {
		uint32_t region = made % cfg->regions;
		rc = farm_alloc(f, sizeof(struct account), FARM_ADDR(region, 64), &a[made]);
		if (rc < 0)
			goto fail;
	}
	for (uint32_t i = 0; i < n; i += INIT_BATCH)
		if ((rc = init_batch(f, a, i, i + INIT_BATCH < n ? i + INIT_BATCH : n,
				     p->initial)) < 0)
			goto fail;
	for (; idx_made < nindex; idx_made++) {
		uint32_t first = idx_made * IDX_PER_OBJ;
		uint32_t cnt = n - first < IDX_PER_OBJ ? n - first : IDX_PER_OBJ;
		uint32_t bytes = cnt * (uint32_t)sizeof(farm_addr_t);
		if ((rc = farm_alloc(f, bytes, FARM_NULL, &r->index[idx_made])) < 0)
			goto fail;
		if ((rc = farm_write(f, r->index[idx_made], a + first, bytes)) < 0) {
			idx_made++;
			goto fail;
		}
	}
	r->magic = BANK_MAGIC;
	r->accounts = n;
	r->nindex = nindex;
	r->initial = p->initial;
	if ((rc = farm_alloc(f, root_size(nindex), FARM_NULL, root)) < 0)
		goto fail;
	if ((rc = farm_write(f, *root, r, root_size(nindex))) < 0) {
		farm_free(f, *root);
		*root = FARM_NULL;
		goto fail;
	}
	free(a);
	free(r);
	return 0;
fail:
	while (idx_made > 0)
		farm_free(f, r->index[--idx_made]);
	while (made > 0)
		farm_free(f, a[--made]);
	free(a);
	free(r);
	return rc;
}

int farm_bank_open(struct farm *f, farm_addr_t root, uint64_t seed, struct farm_bank **out)
{
	struct bank_root *r = NULL;
	struct farm_bank *b = NULL;
	uint32_t size;
	int rc;

	*out = NULL;
	if ((rc = farm_obj_size(f, root, &size)) < 0)
		return rc;
	if (size < sizeof(*r))
		return -EINVAL;
	r = malloc(size);
	b = calloc(1, sizeof(*b));
	if (!r || !b) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = farm_read(f, root, r, size, NULL)) < 0)
		goto fail;
	if (r->magic != BANK_MAGIC || r->accounts < 2 || size < root_size(r->nindex) ||
	    r->nindex != (r->accounts + IDX_PER_OBJ - 1) / IDX_PER_OBJ) {
		rc = -EINVAL;
		goto fail;
	}
	b->acct = malloc(r->accounts * sizeof(*b->acct));
	if (!b->acct) {
		rc = -ENOMEM;
		goto fail;
	}
	for (uint32_t i = 0; i < r->nindex; i++) {
		uint32_t first = i * IDX_PER_OBJ;
		uint32_t cnt =
		    r->accounts - first < IDX_PER_OBJ ? r->accounts - first : IDX_PER_OBJ;
		if ((rc = farm_read(f, r->index[i], b->acct + first,
				    cnt * (uint32_t)sizeof(farm_addr_t), NULL)) < 0)
			goto fail;
	}
	b->f = f;
	b->n = r->accounts;
	b->initial = r->initial;
	b->max_transfer = 100;
	b->audit_pct = 0;
	b->rng = seed ? seed : 1;
	b->self = farm_self(f);
	free(r);
	*out = b;
	return 0;
fail:
	free(r);
	if (b)
		free(b->acct);
	free(b);
	return rc;
}

void farm_bank_set_recorder(struct farm_bank *b, farm_wl_record_fn fn, void *ctx)
{
	b->rec_fn = fn;
	b->rec_ctx = ctx;
}

void farm_bank_set_params(struct farm_bank *b, uint32_t max_transfer, uint32_t audit_pct)
{
	b->max_transfer = max_transfer ? max_transfer : 1;
	b->audit_pct = audit_pct > 100 ? 100 : audit_pct;
}

uint32_t farm_bank_accounts(const struct farm_bank *b)
{
	return b->n;
}

farm_addr_t farm_bank_account(const struct farm_bank *b, uint32_t i)
{
	return i < b->n ? b->acct[i] : FARM_NULL;
}

void farm_bank_close(struct farm_bank *b)
{
	if (!b)
		return;
	free(b->acct);
	free(b);
}

/* A transactional read of account i into b->buf[k], recorded. */
static int read_acct(struct farm_bank *b, struct farm_tx *tx, uint32_t i, uint32_t k)
{
	struct account *v = &b->buf[k];
	int rc = farm_tx_read(tx, b->acct[i], v, sizeof(*v));

	if (rc == 0)
		b->rec.reads[b->rec.nreads++] =
		    (struct farm_wl_read){b->acct[i], v->ver, v->writer};
	return rc;
}

static int write_acct(struct farm_bank *b, struct farm_tx *tx, uint32_t i,
		      const struct account *old, int64_t balance)
{
	struct account v = {old->ver + 1, b->rec.id, balance};

	b->rec.writes[b->rec.nwrites++] = (struct farm_wl_write){b->acct[i], v.ver};
	return farm_tx_write(tx, b->acct[i], &v, sizeof(v));
}

/* End the attempt (see farm_wl_end) and record it. */
static int finish(struct farm_bank *b, struct farm_tx *tx, int type, int rc, bool rollback,
		  struct farm_wl_stats *st)
{
	rc = farm_wl_end(tx, rc, rollback, b->rec.nwrites > 0, type, b->rec.start_ns, st,
			 &b->rec.end_ns);
	/* An aborted attempt keeps its writes in the record: the checker never
	 * takes them as installed, but names them if a read saw one. */
	b->rec.committed = rc == 0;
	if (b->rec_fn)
		b->rec_fn(b->rec_ctx, &b->rec);
	return rc < 0 && rc != -EAGAIN ? rc : 0;
}

static int transfer(struct farm_bank *b, struct farm_wl_stats *st)
{
	uint32_t from = (uint32_t)(farm_wl_rand(&b->rng) % b->n);
	uint32_t to = (uint32_t)(farm_wl_rand(&b->rng) % (b->n - 1));
	int64_t amount = 1 + (int64_t)(farm_wl_rand(&b->rng) % b->max_transfer);
	struct farm_tx *tx;
	int rc;

	to += to >= from; /* a different account */
	b->rec.start_ns = farm_wl_now_ns();
	if ((rc = farm_tx_begin(b->f, &tx)) < 0) {
		st->errors++;
		st->last_error = rc;
		return rc;
	}
	if ((rc = read_acct(b, tx, from, 0)) == 0)
		rc = read_acct(b, tx, to, 1);
	if (rc < 0)
		return finish(b, tx, FARM_BANK_TRANSFER, rc, false, st);
	for (int k = 0; k < 2; k++)
		if (b->buf[k].balance < 0)
			st->violations++;
	if (b->buf[0].balance < amount) /* the rule: no overdraft */
		return finish(b, tx, FARM_BANK_TRANSFER, 0, true, st);
	rc = write_acct(b, tx, from, &b->buf[0], b->buf[0].balance - amount);
	if (rc == 0)
		rc = write_acct(b, tx, to, &b->buf[1], b->buf[1].balance + amount);
	return finish(b, tx, FARM_BANK_TRANSFER, rc, false, st);
}

/* Read-only: every account when they fit in a read set (then the sum must
 * be exact), else a sample (then only signs are checked). */
static int audit(struct farm_bank *b, struct farm_wl_stats *st)
{
	bool all = b->n <= FARM_TX_MAX_READS;
	uint32_t count = all ? b->n : AUDIT_SAMPLE;
	int64_t sum = 0;
	uint32_t neg = 0;
	struct farm_tx *tx;
	int rc;

	b->rec.start_ns = farm_wl_now_ns();
	if ((rc = farm_tx_begin(b->f, &tx)) < 0) {
		st->errors++;
		st->last_error = rc;
		return rc;
	}
	for (uint32_t k = 0; k < count && rc == 0; k++) {
		uint32_t i = all ? k : (uint32_t)(farm_wl_rand(&b->rng) % b->n);
		if ((rc = read_acct(b, tx, i, k)) == 0) {
			sum += b->buf[k].balance;
			neg += b->buf[k].balance < 0;
		}
	}
	uint64_t committed = st->committed;
	rc = finish(b, tx, FARM_BANK_AUDIT, rc, false, st);
	if (st->committed > committed && (neg || (all && sum != (int64_t)b->n * b->initial)))
		st->violations++;
	return rc;
}

int farm_bank_step(struct farm_bank *b, struct farm_wl_stats *st)
{
	bool aud = b->audit_pct && farm_wl_rand(&b->rng) % 100 < b->audit_pct;
	int type = aud ? FARM_BANK_AUDIT : FARM_BANK_TRANSFER;

	b->rec.id = (b->self << 48) | ++b->seq;
	b->rec.nreads = b->rec.nwrites = 0;
	st->attempts++;
	st->type_attempts[type]++;
	return aud ? audit(b, st) : transfer(b, st);
}

int farm_bank_audit(struct farm_bank *b, int64_t *total, int64_t *expected, uint32_t *negative)
{
	*total = 0;
	*negative = 0;
	*expected = (int64_t)b->n * b->initial;
	for (uint32_t i = 0; i < b->n; i++) {
		struct account v;
		int rc = farm_read(b->f, b->acct[i], &v, sizeof(v), NULL);
		if (rc < 0)
			return rc;
		*total += v.balance;
		*negative += v.balance < 0;
	}
	return 0;
}
