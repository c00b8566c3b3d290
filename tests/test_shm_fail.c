/*
 * test_shm_fail.c - a peer killed with SIGKILL (by pid) must not wedge the
 * survivor.
 *
 * The survivor is a sender (it gets -ECONNRESET from unet_send, and in its
 * completions, within a bounded number of sends and time) or a receiver (it
 * gets, in order and intact, everything the dead peer delivered, then one
 * UNET_DF_CHAN_DOWN event, and unet_wait returns instead of hanging). A
 * peer that dies while we dial it fails the dial at once rather than at the
 * timeout, and a new process under the dead one's name can be reached at
 * once. Children count what they delivered in shared memory, so the
 * survivor knows exactly what it must have received.
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

#define TMO 10000

struct board {
	char a[UNET_NAME_MAX], b[UNET_NAME_MAX];
	uint32_t ready, delivered, go;
};

static struct board *board_new(const char *tag)
{
	struct board *w = proc_shared(sizeof(*w));

	assert_non_null(w);
	proc_name(w->a, sizeof(w->a), tag);
	proc_name(w->b, sizeof(w->b), tag);
	return w;
}

/* ---- the receiver's peer dies ------------------------------------------- */

/* Send inline messages (seq in the first 8 bytes, then pattern) slowly, and
 * count each one delivered, until killed. Never more than fit the peer's
 * receive queue, so none is dropped. */
static int child_trickle(void *arg)
{
	struct board *w = arg;
	struct peer p;

	if (peer_open(&p, w->b, NULL))
		return 10;
	int ch = unet_chan_open(p.ep, w->a, TMO);
	if (ch < 0)
		return 11;
	for (uint64_t seq = 0; seq < 200; seq++) {
		struct unet_desc d = {.chan = (uint16_t)ch, .flags = UNET_DF_INLINE, .len = 40};
		memcpy(d.data, &seq, 8);
		pattern_fill(d.data + 8, 32, seq);
		if (unet_send(p.ep, &d, 1) != 1)
			return 12;
		proc_set_u32(&w->delivered, (uint32_t)seq + 1);
		usleep(200);
	}
	for (;;)
		pause(); /* the parent kills us before we get here, normally */
}

static void test_sender_dies_receiver_survives(void **state)
{
	struct board *w = board_new("rd");
	struct peer p;
	struct unet_desc d[16];

	pid_t pid = proc_fork(child_trickle, w);
	assert_int_equal(peer_open(&p, w->a, NULL), 0);
	int ch = unet_chan_open(p.ep, w->b, TMO);
	assert_true(ch >= 0);
	/* Let it get going, then kill it mid-stream without reading. */
	assert_int_equal(proc_wait_u32(&w->delivered, 50, TMO), 0);
	proc_kill(pid);
	uint32_t n = proc_get_u32(&w->delivered);
	assert_true(n >= 50 && n <= 200);
	/* Learn about the death first (the hard order for the NIC: the event
	 * is queued while the messages still wait). */
	uint64_t t0 = proc_now_ms();
	while (unet_chan_status(p.ep, (unsigned)ch) == 0 && proc_now_ms() - t0 < TMO) {
		unet_progress(p.ep);
		usleep(1000);
	}
	assert_int_equal(unet_chan_status(p.ep, (unsigned)ch), -ECONNRESET);
	/* Everything it delivered, in order, intact; then the event; then
	 * nothing. One message may have been delivered but not yet counted. */
	uint64_t next = 0;
	int down = 0;
	while (!down) {
		int k = peer_recv(&p, d, 1 + next % 16, TMO);
		assert_true(k > 0);
		for (int i = 0; i < k; i++) {
			assert_false(down); /* nothing after the event */
			if (d[i].flags & UNET_DF_CHAN_DOWN) {
				assert_int_equal(d[i].chan, ch);
				down = 1;
				continue;
			}
			uint64_t seq;
			assert_int_equal(d[i].len, 40);
			memcpy(&seq, d[i].data, 8);
			assert_int_equal(seq, next);
			assert_int_equal(pattern_check(d[i].data + 8, 32, seq), 0);
			next++;
		}
	}
	assert_true(next == n || next == n + 1);
	assert_int_equal(unet_recv(p.ep, d, 16), 0);
	/* Waiting on a dead channel returns on time. */
	t0 = proc_now_ms();
	assert_int_equal(unet_wait(p.ep, 100), 0);
	assert_true(proc_now_ms() - t0 < 2000);
	/* Sending to the dead peer is refused. */
	assert_int_equal(unet_send_inline(p.ep, (unsigned)ch, "x", 1), -ECONNRESET);
	assert_int_equal(unet_chan_close(p.ep, (unsigned)ch), 0);
	peer_close(&p);
	proc_unshare(w, sizeof(*w));
}

/* ---- the sender's peer dies ---------------------------------------------- */

/* Receive and release everything, count it, until killed. */
static int child_sink(void *arg)
{
	struct board *w = arg;
	struct peer p;
	struct unet_desc d[32];

	if (peer_open(&p, w->b, NULL))
		return 10;
	int ch = unet_chan_open(p.ep, w->a, TMO);
	if (ch < 0)
		return 11;
	for (;;) {
		int n = peer_recv(&p, d, 32, 1000);
		for (int i = 0; i < n; i++)
			unet_release(p.ep, &d[i], 1);
		if (n > 0)
			proc_set_u32(&w->delivered, proc_get_u32(&w->delivered) + (uint32_t)n);
	}
}

static void run_sender_survives(int segment)
{
	struct board *w = board_new(segment ? "ss" : "si");
	struct peer p;
	struct unet_comp comp[64];
	struct unet_desc d;
	int rc = 0;
	uint64_t sent = 0, reset_comps = 0;

	pid_t pid = proc_fork(child_sink, w);
	assert_int_equal(peer_open(&p, w->a, NULL), 0);
	int ch = unet_chan_open(p.ep, w->b, TMO);
	assert_true(ch >= 0);
	memset(&d, 0, sizeof(d));
	d.chan = (uint16_t)ch;
	d.len = 32;
	d.flags = segment ? 0 : UNET_DF_INLINE;
	/* Stream until the sink has taken a good part, then kill it and keep
	 * sending, as a sender unaware of the death would. Only send; the
	 * NIC must notice by itself. */
	uint64_t t0 = proc_now_ms(), t_kill = 0;
	for (;;) {
		if (!t_kill && proc_get_u32(&w->delivered) >= 1000) {
			proc_kill(pid);
			t_kill = proc_now_ms();
		}
		rc = unet_send(p.ep, &d, 1);
		if (rc == 1) {
			sent++;
		} else if (rc == -EAGAIN || rc == 0) {
			usleep(10);
		} else {
			break;
		}
		int k = unet_poll_comp(p.ep, comp, 64);
		for (int i = 0; i < k; i++) {
			if (comp[i].status == -ECONNRESET)
				reset_comps++;
			else if (!t_kill)
				assert_int_equal(comp[i].status, 0);
		}
		while (!t_kill && sent - proc_get_u32(&w->delivered) > 32 &&
		       proc_now_ms() - t0 < TMO)
			usleep(20); /* do not outrun the sink (64 buffers) before the kill */
		assert_true(proc_now_ms() - t0 < 3 * TMO);
	}
	assert_int_equal(rc, -ECONNRESET);
	assert_true(t_kill > 0);
	/* Bounded: at most a receive queue's worth of sends after death. */
	print_message("%s: -ECONNRESET %llu ms after kill -9, %llu sends in all\n",
		      segment ? "segment" : "inline", (unsigned long long)(proc_now_ms() - t_kill),
		      (unsigned long long)sent);
	assert_true(proc_now_ms() - t_kill < 5000);
	assert_int_equal(unet_chan_status(p.ep, (unsigned)ch), -ECONNRESET);
	if (segment) /* the send that found it dead says so */
		assert_true(reset_comps + (uint64_t)unet_poll_comp(p.ep, comp, 64) >= 1);
	/* The receive side hears of it too, and waiting does not hang. */
	struct unet_desc e;
	assert_int_equal(peer_recv(&p, &e, 1, 1000), 1);
	assert_int_equal(e.flags, UNET_DF_CHAN_DOWN);
	assert_int_equal(e.chan, ch);
	assert_int_equal(unet_wait(p.ep, 50), 0);
	assert_int_equal(unet_chan_close(p.ep, (unsigned)ch), 0);
	peer_close(&p);
	proc_unshare(w, sizeof(*w));
}

static void test_receiver_dies_sender_survives_inline(void **state)
{
	run_sender_survives(0);
}

static void test_receiver_dies_sender_survives_segment(void **state)
{
	run_sender_survives(1);
}

/* ---- death during the hand-shake ------------------------------------------ */

static int child_idle(void *arg)
{
	struct board *w = arg;
	struct peer p;

	if (peer_open(&p, w->b, NULL))
		return 10;
	proc_set_u32(&w->ready, 1);
	for (;;)
		pause(); /* never opens the channel, never services the endpoint */
}

static void test_peer_dies_while_dialled(void **state)
{
	struct board *w = board_new("hd");
	struct peer p;

	pid_t pid = proc_fork(child_idle, w);
	assert_int_equal(peer_open(&p, w->a, NULL), 0);
	assert_int_equal(proc_wait_u32(&w->ready, 1, TMO), 0);
	/* Kill it 200 ms into a 10 s dial: the dial fails then, not at 10 s. */
	pid_t killer = fork();
	if (killer == 0) {
		usleep(200000);
		kill(pid, SIGKILL);
		_exit(0);
	}
	uint64_t t0 = proc_now_ms();
	int rc = unet_chan_open(p.ep, w->b, TMO);
	uint64_t el = proc_now_ms() - t0;
	assert_int_equal(proc_wait(killer, TMO), 0);
	proc_kill(pid);
	assert_int_equal(rc, -ECONNRESET);
	assert_true(el < 3000);
	for (unsigned i = 0; i < 64; i++)
		assert_int_equal(unet_chan_status(p.ep, i), -ENOTCONN);
	peer_close(&p);
	proc_unshare(w, sizeof(*w));
}

/* ---- a new process under the dead one's name ------------------------------- */

static int child_echo_once(void *arg)
{
	struct board *w = arg;
	struct peer p;
	struct unet_desc d;

	if (peer_open(&p, w->b, NULL))
		return 10;
	int ch = unet_chan_open(p.ep, w->a, TMO);
	if (ch < 0)
		return 11;
	proc_set_u32(&w->ready, proc_get_u32(&w->ready) + 1);
	if (peer_recv(&p, &d, 1, TMO) != 1 || !(d.flags & UNET_DF_INLINE))
		return 12;
	d.chan = (uint16_t)ch;
	if (unet_send(p.ep, &d, 1) != 1)
		return 13;
	if (proc_get_u32(&w->go)) { /* the second incarnation exits cleanly */
		proc_wait_u32(&w->delivered, 1, TMO);
		peer_close(&p);
		return 0;
	}
	for (;;)
		pause();
}

static void test_replacement_under_same_name(void **state)
{
	struct board *w = board_new("rn");
	struct peer p;
	struct unet_desc d;

	pid_t pid = proc_fork(child_echo_once, w);
	assert_int_equal(peer_open(&p, w->a, NULL), 0);
	int ch = unet_chan_open(p.ep, w->b, TMO);
	assert_true(ch >= 0);
	assert_int_equal(unet_send_inline(p.ep, (unsigned)ch, "one", 4), 0);
	assert_int_equal(peer_recv(&p, &d, 1, TMO), 1);
	assert_string_equal((char *)d.data, "one");
	proc_kill(pid);
	assert_int_equal(peer_recv(&p, &d, 1, TMO), 1);
	assert_int_equal(d.flags, UNET_DF_CHAN_DOWN);
	assert_int_equal(unet_chan_close(p.ep, (unsigned)ch), 0);

	/* Same name, new process, at once. */
	proc_set_u32(&w->go, 1);
	pid = proc_fork(child_echo_once, w);
	ch = unet_chan_open(p.ep, w->b, TMO);
	assert_true(ch >= 0);
	assert_int_equal(unet_send_inline(p.ep, (unsigned)ch, "two", 4), 0);
	assert_int_equal(peer_recv(&p, &d, 1, TMO), 1);
	assert_string_equal((char *)d.data, "two");
	proc_set_u32(&w->delivered, 1);
	assert_int_equal(proc_wait(pid, TMO), 0);
	peer_close(&p);
	proc_unshare(w, sizeof(*w));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_sender_dies_receiver_survives, proc_teardown),
		cmocka_unit_test_teardown(test_receiver_dies_sender_survives_inline, proc_teardown),
		cmocka_unit_test_teardown(test_receiver_dies_sender_survives_segment, proc_teardown),
		cmocka_unit_test_teardown(test_peer_dies_while_dialled, proc_teardown),
		cmocka_unit_test_teardown(test_replacement_under_same_name, proc_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
