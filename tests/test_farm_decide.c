/* test_farm_decide.c - recovery's decision for a dead coordinator's
 * transaction, from hand-built votes (recovery_wire.h,
 * farm__rcv_decide_bufs; docs/recovery.md, "Votes and the decision").
 *
 * The case that lost a committed transaction in test_farm_fault's
 * two-kill run: T committed in configuration 5 (every backup of its
 * configuration holds its COMMIT-BACKUP record; the COMMIT-PRIMARY died
 * with its primary), then a member got one of T's regions by
 * re-replication in configuration 6, before T's coordinator was removed.
 * That member never had T's record and must not count against it. A
 * replica of T's own configuration without the record still does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>

#include "recovery_wire.h"

#define T_ID   ((4ull << 48) | 0x1a6)
#define T_CSEQ 100
#define T_CFG  5

struct vb {
	uint8_t buf[1024];
	uint32_t len;
};

struct held {
	uint32_t region;
	uint64_t since;
};

/* A vote from member `from` in configuration cfg: regions held, the dead
 * coordinator 4's ring truncated up to trunc, and T with `votes` (0: T
 * not in its ring) over regions 3 and 9. */
static void vote(struct vb *b, uint32_t from, const struct held *h, uint32_t nh, uint64_t trunc,
		 uint16_t votes)
{
	struct vote_hdr hd = {.h = {.config_id = 7, .from = from},
			      .nheld = nh,
			      .ncoord = 1,
			      .nent = votes ? 1 : 0};
	struct vote_coord c = {.id = 4, .trunc_cseq = trunc};
	uint8_t *p = b->buf;

	memcpy(p, &hd, sizeof(hd));
	p += sizeof(hd);
	for (uint32_t i = 0; i < nh; i++) {
		struct vote_held x = {.region = h[i].region, .since = h[i].since};
		memcpy(p, &x, sizeof(x));
		p += sizeof(x);
	}
	memcpy(p, &c, sizeof(c));
	p += sizeof(c);
	if (votes) {
		struct vote_ent e = {.tx_id = T_ID,
				     .cseq = T_CSEQ,
				     .config = T_CFG,
				     .coord = 4,
				     .votes = votes,
				     .nregions = 2};
		uint32_t regions[2] = {3, 9};
		memcpy(p, &e, sizeof(e));
		memcpy(p + sizeof(e), regions, sizeof(regions));
		p += sizeof(e) + sizeof(regions); /* 8 bytes: already padded */
	}
	b->len = (uint32_t)(p - b->buf);
}

static int decide3(const struct vb *a, const struct vb *b, const struct vb *c)
{
	const uint8_t *bufs[3] = {a->buf, b->buf, c->buf};
	uint32_t lens[3] = {a->len, b->len, c->len};

	return farm__rcv_decide_bufs(bufs, lens, 3, T_ID);
}

/* Member 2 backed region 3 all along and holds T's CB record; member 3
 * got region 3 in configuration 6 by re-replication; member 1 got region
 * 9 in configuration `since1` and truncated coordinator 4's ring up to
 * trunc1. The decision. */
static int split_case(uint64_t since1, uint64_t trunc1)
{
	struct vb v1, v2, v3;
	struct held h1[] = {{9, since1}, {4, 0}}, h2[] = {{3, 0}, {5, 0}}, h3[] = {{3, 6}};

	vote(&v1, 1, h1, 2, trunc1, 0);
	vote(&v2, 2, h2, 2, 90, VOTE_B);
	vote(&v3, 3, h3, 1, 50, 0);
	return decide3(&v1, &v2, &v3);
}

/* Members 1 and 3 both got their region after T's configuration. */
static void test_new_replicas_do_not_count(void **state)
{
	(void)state;
	assert_int_equal(split_case(6, 50), 1);
}

/* The control: member 1 has held region 9 since configuration 5, T's
 * own: its COMMIT-BACKUP never came, so T was never reported, and it
 * aborts ... unless member 1 truncated past T (applied its record). */
static void test_old_replica_without_record_aborts(void **state)
{
	(void)state;
	assert_int_equal(split_case(5, 50), 0);
	assert_int_equal(split_case(5, T_CSEQ), 1);
}

/* COMMIT-PRIMARY anywhere commits; an abort vote anywhere aborts; a
 * malformed vote is refused. */
static void test_primary_abort_and_bad(void **state)
{
	(void)state;
	struct vb v1, v2, v3;
	struct held h1[] = {{9, 5}}, h2[] = {{3, 0}}, h3[] = {{3, 0}};

	vote(&v1, 1, h1, 1, 0, 0);
	vote(&v2, 2, h2, 1, 0, VOTE_B);
	vote(&v3, 3, h3, 1, 0, VOTE_P);
	assert_int_equal(decide3(&v1, &v2, &v3), 1);
	vote(&v3, 3, h3, 1, 0, VOTE_A);
	assert_int_equal(decide3(&v1, &v2, &v3), 0);
	v3.len -= 4; /* cut short */
	assert_int_equal(decide3(&v1, &v2, &v3), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_new_replicas_do_not_count),
	    cmocka_unit_test(test_old_replica_without_record_aborts),
	    cmocka_unit_test(test_primary_abort_and_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
