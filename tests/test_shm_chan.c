/*
 * test_shm_chan.c - channel set-up and tear-down on the shm NIC.
 *
 * Two (or three) processes open, use and close channels to each other over
 * and over: plain open/close/reopen; both sides dialling at the same instant
 * (the simultaneous-open race nic_shm.c resolves by name order), with either
 * side holding the smaller name; a dial that timed out must not poison the
 * next open; slot exhaustion (-EMFILE on both the dialling and the accepting
 * side); a graceful close seen by the peer; a CHAN_DOWN event never lost
 * however often one slot is reused. Every round exchanges a message both
 * ways, and leaks (fds, half-open slots) are counted at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "helpers/proc.h"
#include "helpers/shm_peer.h"

#define TMO 10000 /* ms: generous, the machine is shared */

struct board {
	char a[UNET_NAME_MAX], b[UNET_NAME_MAX];
	struct unet_ep_attr attr;
	uint32_t rounds;
	uint32_t ready, go, step;
	int32_t child_fd_delta;
};

static struct board *board_new(const char *ta, const char *tb)
{
	struct board *w = proc_shared(sizeof(*w));

	assert_non_null(w);
	proc_name(w->a, sizeof(w->a), ta);
	proc_name(w->b, sizeof(w->b), tb);
	return w;
}

/* Send an inline message carrying v. */
static int say(struct peer *p, int ch, uint32_t v)
{
	return unet_send_inline(p->ep, (unsigned)ch, &v, sizeof(v));
}

/* Receive one inline message on ch and return its value (or -1). */
static int64_t hear(struct peer *p, int ch)
{
	struct unet_desc d;
	uint32_t v;
	int n = peer_recv(p, &d, 1, TMO);

	if (n != 1 || d.chan != ch || !(d.flags & UNET_DF_INLINE) || d.len != sizeof(v)) {
		fprintf(stderr, "hear: n=%d chan=%u/%d flags=%#x len=%u\n", n, d.chan, ch,
			d.flags, d.len);
		return -1;
	}
	memcpy(&v, d.data, sizeof(v));
	return v;
}

/* ---- open / close / reopen ---------------------------------------------- */

static int child_reopen(void *arg)
{
	struct board *w = arg;
	struct peer p;

	if (peer_open(&p, w->b, NULL))
		return 10;
	int fds = proc_count_fds();
	for (uint32_t r = 0; r < w->rounds; r++) {
		int ch = unet_chan_open(p.ep, w->a, TMO);
		if (ch < 0)
			return 11;
		if (hear(&p, ch) != r)
			return 12;
		if (say(&p, ch, r + 1000) != 0)
			return 13;
		if (unet_chan_close(p.ep, (unsigned)ch) != 0)
			return 14;
	}
	for (int i = 0; i < 3; i++)
		unet_progress(p.ep);
	w->child_fd_delta = proc_count_fds() - fds;
	peer_close(&p);
	return 0;
}

static void test_open_close_reopen(void **state)
{
	struct board *w = board_new("oa", "ob");
	struct peer p;

	w->rounds = 50;
	pid_t pid = proc_fork(child_reopen, w);
	assert_int_equal(peer_open(&p, w->a, NULL), 0);
	int fds = proc_count_fds(), memfds = proc_count_maps_of("memfd:");
	for (uint32_t r = 0; r < w->rounds; r++) {
		int ch = unet_chan_open(p.ep, w->b, TMO);
		assert_true(ch >= 0);
		assert_int_equal(unet_chan_status(p.ep, (unsigned)ch), 0);
		assert_int_equal(unet_chan_mtu(p.ep, (unsigned)ch), 2048);
		assert_int_equal(say(&p, ch, r), 0);
		assert_int_equal(hear(&p, ch), r + 1000);
		assert_int_equal(unet_chan_close(p.ep, (unsigned)ch), 0);
		assert_int_equal(unet_chan_close(p.ep, (unsigned)ch), -ENOTCONN);
		assert_int_equal(unet_chan_status(p.ep, (unsigned)ch), -ENOTCONN);
		assert_int_equal(say(&p, ch, r), -ENOTCONN);
	}
	assert_int_equal(proc_wait(pid, 30000), 0);
	assert_int_equal(w->child_fd_delta, 0);
	for (int i = 0; i < 3; i++)
		unet_progress(p.ep);
	assert_int_equal(proc_count_fds(), fds);
	assert_int_equal(proc_count_maps_of("memfd:"), memfds);
	peer_close(&p);
	proc_unshare(w, sizeof(*w));
}

/* ---- simultaneous open ---------------------------------------------------- */

/* Both sides spin on `go` and dial the same instant. */
static int child_simul(void *arg)
{
	struct board *w = arg;
	struct peer p;

	if (peer_open(&p, w->b, &w->attr))
		return 10;
	int fds = proc_count_fds();
	for (uint32_t r = 0; r < w->rounds; r++) {
		proc_set_u32(&w->ready, r + 1);
		while (proc_get_u32(&w->go) < r + 1)
			;
		int ch = unet_chan_open(p.ep, w->a, TMO);
		if (ch < 0) {
			fprintf(stderr, "child: round %u: open: %s\n", r, unet_strerror(ch));
			return 11;
		}
		if (say(&p, ch, r) != 0)
			return 12;
		if (hear(&p, ch) != r + 1000)
			return 13;
		/* Wait until the parent is done with the channel too. */
		if (proc_wait_u32(&w->step, r + 1, TMO))
			return 14;
		if (unet_chan_close(p.ep, (unsigned)ch) != 0)
			return 15;
	}
	for (int i = 0; i < 3; i++)
		unet_progress(p.ep);
	w->child_fd_delta = proc_count_fds() - fds;
	peer_close(&p);
	return 0;
}

static void run_simul(const char *ta, const char *tb, uint32_t rounds, uint32_t slots)
{
	struct board *w = board_new(ta, tb);
	struct peer p;

	w->rounds = rounds;
	w->attr.max_chans = slots;
	assert_true(strcmp(ta, tb) != 0);
	pid_t pid = proc_fork(child_simul, w);
	assert_int_equal(peer_open(&p, w->a, &w->attr), 0);
	int fds = proc_count_fds();
	for (uint32_t r = 0; r < w->rounds; r++) {
		assert_int_equal(proc_wait_u32(&w->ready, r + 1, TMO), 0);
		proc_set_u32(&w->go, r + 1);
		int ch = unet_chan_open(p.ep, w->b, TMO);
		if (ch < 0)
			fail_msg("round %u: open: %s", r, unet_strerror(ch));
		assert_int_equal(hear(&p, ch), r);
		assert_int_equal(say(&p, ch, r + 1000), 0);
		proc_set_u32(&w->step, r + 1);
		assert_int_equal(unet_chan_close(p.ep, (unsigned)ch), 0);
	}
	assert_int_equal(proc_wait(pid, 60000), 0);
	assert_int_equal(w->child_fd_delta, 0);
	/* Whatever the races left in the listen queue is accepted now; a
	 * connection that lost a race must not linger as a half-open slot. */
	for (int i = 0; i < 3; i++)
		unet_progress(p.ep);
	assert_int_equal(proc_count_fds(), fds);
	peer_close(&p);
	proc_unshare(w, sizeof(*w));
}

static void test_simultaneous_open_smaller_first(void **state)
{
	run_simul("sa", "sb", 150, 0);
}

static void test_simultaneous_open_larger_first(void **state)
{
	run_simul("sb", "sa", 150, 0);
}

/* The race needs no slot beyond the one the open itself takes. */
static void test_simultaneous_open_one_slot(void **state)
{
	run_simul("sa", "sb", 60, 1);
	run_simul("sb", "sa", 60, 1);
}

/* ---- several channels between one pair, opened back to back -------------- */

#define NPAIR 8

static int child_pairs(void *arg)
{
	struct board *w = arg;
	struct peer p;
	int ch[NPAIR];

	if (peer_open(&p, w->b, NULL))
		return 10;
	for (int i = 0; i < NPAIR; i++) {
		ch[i] = unet_chan_open(p.ep, w->a, TMO);
		if (ch[i] < 0) {
			fprintf(stderr, "child: open %d: %s\n", i, unet_strerror(ch[i]));
			return 11;
		}
	}
	/* Echo on whatever channel a message came in on. */
	for (int i = 0; i < NPAIR; i++) {
		struct unet_desc d;
		if (peer_recv(&p, &d, 1, TMO) != 1 || !(d.flags & UNET_DF_INLINE))
			return 12;
		if (unet_send(p.ep, &d, 1) != 1)
			return 13;
	}
	proc_wait_u32(&w->step, 1, TMO);
	peer_close(&p);
	return 0;
}

static void test_many_channels_one_pair(void **state)
{
	struct board *w = board_new("pa", "pb");
	struct peer p;
	int ch[NPAIR];
	uint32_t seen = 0;

	pid_t pid = proc_fork(child_pairs, w);
	assert_int_equal(peer_open(&p, w->a, NULL), 0);
	for (int i = 0; i < NPAIR; i++) {
		ch[i] = unet_chan_open(p.ep, w->b, TMO);
		if (ch[i] < 0)
			fail_msg("open %d: %s", i, unet_strerror(ch[i]));
		for (int j = 0; j < i; j++)
			assert_int_not_equal(ch[i], ch[j]);
	}
	for (int i = 0; i < NPAIR; i++)
		assert_int_equal(say(&p, ch[i], (uint32_t)i), 0);
	/* Each channel's far end answers on the same channel. */
	for (int i = 0; i < NPAIR; i++) {
		struct unet_desc d;
		uint32_t v;
		assert_int_equal(peer_recv(&p, &d, 1, TMO), 1);
		memcpy(&v, d.data, sizeof(v));
		assert_true(v < NPAIR);
		assert_int_equal(d.chan, ch[v]);
		seen |= 1u << v;
	}
	assert_int_equal(seen, (1u << NPAIR) - 1);
	proc_set_u32(&w->step, 1);
	assert_int_equal(proc_wait(pid, 20000), 0);
	peer_close(&p);
	proc_unshare(w, sizeof(*w));
}

/* ---- a dial that timed out ----------------------------------------------- */

static int child_late(void *arg)
{
	struct board *w = arg;
	struct peer p;

	if (peer_open(&p, w->b, NULL))
		return 10;
	proc_set_u32(&w->ready, 1);
	/* Service the endpoint (as any event loop would) while the parent's
	 * first dial comes in and gives up. */
	while (proc_get_u32(&w->go) < 1)
		unet_wait(p.ep, 5);
	int ch = unet_chan_open(p.ep, w->a, TMO);
	if (ch < 0) {
		fprintf(stderr, "child: open after a timed-out dial: %s\n", unet_strerror(ch));
		return 11;
	}
	if (say(&p, ch, 7) != 0 || hear(&p, ch) != 8)
		return 12;
	proc_wait_u32(&w->step, 1, TMO);
	peer_close(&p);
	return 0;
}

static void test_open_after_timeout(void **state)
{
	struct board *w = board_new("ta", "tb");
	struct peer p;

	pid_t pid = proc_fork(child_late, w);
	assert_int_equal(peer_open(&p, w->a, NULL), 0);
	int fds = proc_count_fds();
	assert_int_equal(proc_wait_u32(&w->ready, 1, TMO), 0);
	uint64_t t0 = proc_now_ms();
	assert_int_equal(unet_chan_open(p.ep, w->b, 300), -ETIMEDOUT);
	assert_true(proc_now_ms() - t0 >= 300);
	assert_int_equal(proc_count_fds(), fds);
	usleep(50000); /* the child has seen our dial and its hang-up */
	proc_set_u32(&w->go, 1);
	int ch = unet_chan_open(p.ep, w->b, TMO);
	assert_true(ch >= 0);
	assert_int_equal(hear(&p, ch), 7);
	assert_int_equal(say(&p, ch, 8), 0);
	proc_set_u32(&w->step, 1);
	assert_int_equal(proc_wait(pid, 20000), 0);
	peer_close(&p);
	proc_unshare(w, sizeof(*w));
}

/* ---- slot exhaustion ------------------------------------------------------ */

static int child_many(void *arg)
{
	struct board *w = arg;
	struct peer p;
	int ch[2];

	if (peer_open(&p, w->b, NULL))
		return 10;
	for (int i = 0; i < 2; i++) {
		ch[i] = unet_chan_open(p.ep, w->a, TMO);
		if (ch[i] < 0)
			return 11;
	}
	/* The parent has no slot left: it refuses the third. */
	int rc = unet_chan_open(p.ep, w->a, TMO);
	if (rc != -EMFILE) {
		fprintf(stderr, "child: third open gave %d\n", rc);
		return 12;
	}
	for (int i = 0; i < 2; i++)
		if (say(&p, ch[i], (uint32_t)i) != 0)
			return 13;
	proc_set_u32(&w->ready, 1);
	proc_wait_u32(&w->step, 1, TMO);
	peer_close(&p);
	return 0;
}

static void test_slots_exhausted(void **state)
{
	struct board *w = board_new("ma", "mb");
	struct unet_ep_attr a = {.max_chans = 2};
	struct peer p;
	int ch[2];

	pid_t pid = proc_fork(child_many, w);
	assert_int_equal(peer_open(&p, w->a, &a), 0);
	for (int i = 0; i < 2; i++) {
		ch[i] = unet_chan_open(p.ep, w->b, TMO);
		if (ch[i] < 0)
			fail_msg("open %d: %s", i, unet_strerror(ch[i]));
	}
	assert_int_not_equal(ch[0], ch[1]);
	assert_int_equal(unet_chan_open(p.ep, w->b, TMO), -EMFILE);
	/* Keep servicing the endpoint: the child's third dial is refused. */
	uint64_t t0 = proc_now_ms();
	while (proc_get_u32(&w->ready) < 1 && proc_now_ms() - t0 < TMO)
		unet_wait(p.ep, 5);
	assert_int_equal(proc_get_u32(&w->ready), 1);
	/* Both channels work, each message on its own channel. */
	struct unet_desc d[2];
	int got = 0;
	uint32_t seen = 0;
	while (got < 2) {
		int n = peer_recv(&p, d, 2, TMO);
		assert_true(n > 0);
		for (int i = 0; i < n; i++) {
			uint32_t v;
			memcpy(&v, d[i].data, sizeof(v));
			assert_true(v < 2);
			assert_int_equal(d[i].chan, ch[v]);
			seen |= 1u << v;
		}
		got += n;
	}
	assert_int_equal(seen, 3);
	proc_set_u32(&w->step, 1);
	assert_int_equal(proc_wait(pid, 20000), 0);
	peer_close(&p);
	proc_unshare(w, sizeof(*w));
}

/* ---- a graceful close, seen from the other side -------------------------- */

static int child_closer(void *arg)
{
	struct board *w = arg;
	struct peer p;

	if (peer_open(&p, w->b, NULL))
		return 10;
	int ch = unet_chan_open(p.ep, w->a, TMO);
	if (ch < 0)
		return 11;
	for (uint32_t i = 0; i < 10; i++)
		if (say(&p, ch, i) != 0)
			return 12;
	if (unet_chan_close(p.ep, (unsigned)ch) != 0)
		return 13;
	proc_wait_u32(&w->step, 1, TMO); /* stay alive: a close, not a death */
	peer_close(&p);
	return 0;
}

static void test_peer_closes(void **state)
{
	struct board *w = board_new("ca", "cb");
	struct peer p;
	struct unet_desc d;

	pid_t pid = proc_fork(child_closer, w);
	assert_int_equal(peer_open(&p, w->a, NULL), 0);
	int ch = unet_chan_open(p.ep, w->b, TMO);
	assert_true(ch >= 0);
	/* Everything sent before the close arrives, in order, then the event. */
	for (int64_t i = 0; i < 10; i++)
		assert_int_equal(hear(&p, ch), i);
	assert_int_equal(peer_recv(&p, &d, 1, TMO), 1);
	assert_int_equal(d.flags, UNET_DF_CHAN_DOWN);
	assert_int_equal(d.chan, ch);
	assert_int_equal(d.len, 0);
	assert_int_equal(unet_chan_status(p.ep, (unsigned)ch), -ECONNRESET);
	assert_int_equal(unet_chan_mtu(p.ep, (unsigned)ch), -ECONNRESET);
	assert_int_equal(say(&p, ch, 1), -ECONNRESET);
	assert_int_equal(unet_release(p.ep, &d, 1), 0); /* an event: nothing to give back */
	assert_int_equal(unet_chan_close(p.ep, (unsigned)ch), 0);
	assert_int_equal(unet_chan_status(p.ep, (unsigned)ch), -ENOTCONN);
	assert_int_equal(unet_recv(p.ep, &d, 1), 0); /* one event, once */
	proc_set_u32(&w->step, 1);
	assert_int_equal(proc_wait(pid, 20000), 0);
	peer_close(&p);
	proc_unshare(w, sizeof(*w));
}

/* ---- one slot, reused: the down events still all arrive ------------------ */

static int child_open_and_sleep(void *arg)
{
	struct board *w = arg;
	struct peer p;

	if (peer_open(&p, w->b, NULL))
		return 10;
	int ch = unet_chan_open(p.ep, w->a, TMO);
	if (ch < 0)
		return 11;
	proc_set_u32(&w->ready, proc_get_u32(&w->ready) + 1);
	for (;;)
		pause();
}

/* Wait until the endpoint has noticed that channel ch went down, without
 * receiving (so the event stays queued). */
static void await_down(struct peer *p, int ch)
{
	uint64_t t0 = proc_now_ms();

	while (unet_chan_status(p->ep, (unsigned)ch) == 0 && proc_now_ms() - t0 < TMO) {
		usleep(1000);
		unet_progress(p->ep);
	}
	assert_int_equal(unet_chan_status(p->ep, (unsigned)ch), -ECONNRESET);
}

static void test_down_events_one_slot(void **state)
{
	struct board *w = board_new("ea", "eb");
	struct unet_ep_attr a = {.max_chans = 1};
	struct peer p;
	struct unet_desc d[4];

	assert_int_equal(peer_open(&p, w->a, &a), 0);
	for (uint32_t k = 0; k < 6; k++) {
		pid_t pid = proc_fork(child_open_and_sleep, w);
		int ch = unet_chan_open(p.ep, w->b, TMO);
		assert_int_equal(ch, 0);
		assert_int_equal(proc_wait_u32(&w->ready, k + 1, TMO), 0);
		proc_kill(pid);
		await_down(&p, ch);
		if (k % 2 == 0) {
			/* Close without reading the event: it is stale now. */
			assert_int_equal(unet_chan_close(p.ep, 0), 0);
			continue;
		}
		/* Exactly one event, for the channel that is down now. */
		int n = unet_recv(p.ep, d, 4);
		assert_int_equal(n, 1);
		assert_int_equal(d[0].flags, UNET_DF_CHAN_DOWN);
		assert_int_equal(d[0].chan, 0);
		assert_int_equal(unet_recv(p.ep, d, 4), 0);
		assert_int_equal(unet_chan_close(p.ep, 0), 0);
	}
	peer_close(&p);
	proc_unshare(w, sizeof(*w));
}

/* ---- a peer that never services its endpoint ----------------------------- */

static int child_deaf(void *arg)
{
	struct board *w = arg;
	struct peer p;

	if (peer_open(&p, w->b, NULL))
		return 10;
	proc_set_u32(&w->ready, 1);
	for (;;)
		pause(); /* never accepts: its listen queue fills up */
}

/* Dial it many times with a short timeout: every dial gives up on time,
 * also once the peer's listen queue is full. Runs in a child: a dial stuck
 * in connect() shows as a timeout of that child. */
static int child_dialler(void *arg)
{
	struct board *w = arg;
	struct peer p;

	if (peer_open(&p, w->a, NULL))
		return 10;
	for (uint32_t i = 0; i < w->rounds; i++) {
		uint64_t t0 = proc_now_ms();
		int rc = unet_chan_open(p.ep, w->b, 20);
		uint64_t el = proc_now_ms() - t0;
		if (rc != -ETIMEDOUT || el > 2000) {
			fprintf(stderr, "dial %u: %d after %llu ms\n", i, rc, (unsigned long long)el);
			return 11;
		}
		proc_set_u32(&w->step, i + 1);
	}
	peer_close(&p);
	return 0;
}

static void test_dial_deaf_peer(void **state)
{
	struct board *w = board_new("da", "db");

	w->rounds = 100; /* more than any listen backlog the NIC asks for */
	pid_t deaf = proc_fork(child_deaf, w);
	assert_int_equal(proc_wait_u32(&w->ready, 1, TMO), 0);
	pid_t dialler = proc_fork(child_dialler, w);
	int rc = proc_wait(dialler, 30000);
	if (rc != 0)
		fail_msg("dialler: %d after %u dials", rc, proc_get_u32(&w->step));
	proc_kill(deaf);
	proc_unshare(w, sizeof(*w));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_open_close_reopen, proc_teardown),
		cmocka_unit_test_teardown(test_simultaneous_open_smaller_first, proc_teardown),
		cmocka_unit_test_teardown(test_simultaneous_open_larger_first, proc_teardown),
		cmocka_unit_test_teardown(test_simultaneous_open_one_slot, proc_teardown),
		cmocka_unit_test_teardown(test_many_channels_one_pair, proc_teardown),
		cmocka_unit_test_teardown(test_open_after_timeout, proc_teardown),
		cmocka_unit_test_teardown(test_slots_exhausted, proc_teardown),
		cmocka_unit_test_teardown(test_peer_closes, proc_teardown),
		cmocka_unit_test_teardown(test_down_events_one_slot, proc_teardown),
		cmocka_unit_test_teardown(test_dial_deaf_peer, proc_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
