/*
 * test_shm_wait.c - blocking: unet_fd, unet_arm, unet_wait on the shm NIC.
 *
 * A receiver that waits must really sleep (CPU time from getrusage stays
 * small, the wakeups counter moves by about one per wait) and must be woken
 * by a send, by the death of its peer, and through unet_fd() by poll(2) and
 * epoll(7). A thousand ping-pongs where each side sleeps at random points
 * would show a lost wakeup as a wait that times out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <cmocka.h>

#include "helpers/proc.h"
#include "helpers/shm_peer.h"

#define TMO 10000

struct board {
	char a[UNET_NAME_MAX], b[UNET_NAME_MAX];
	uint32_t go, sent, rounds;
	uint64_t send_ms[8];
};

static struct board *board_new(const char *tag)
{
	struct board *w = proc_shared(sizeof(*w));

	assert_non_null(w);
	proc_name(w->a, sizeof(w->a), tag);
	proc_name(w->b, sizeof(w->b), tag);
	return w;
}

static uint64_t cpu_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* For each go signal k: sleep 300 ms, send one inline message k. */
static int child_slow_sender(void *arg)
{
	struct board *w = arg;
	struct peer p;

	if (peer_open(&p, w->b, NULL))
		return 10;
	int ch = unet_chan_open(p.ep, w->a, TMO);
	if (ch < 0)
		return 11;
	for (uint32_t k = 0; k < w->rounds; k++) {
		if (proc_wait_u32(&w->go, k + 1, TMO))
			return 12;
		usleep(300000);
		w->send_ms[k] = proc_now_ms();
		if (unet_send_inline(p.ep, (unsigned)ch, &k, sizeof(k)) != 0)
			return 13;
		proc_set_u32(&w->sent, k + 1);
	}
	proc_wait_u32(&w->go, w->rounds + 1, TMO);
	peer_close(&p);
	return 0;
}

static void test_wait_sleeps_and_wakes_on_send(void **state)
{
	struct board *w = board_new("ws");
	struct peer p;
	struct unet_stats st0, st1;
	struct unet_desc d;

	w->rounds = 4;
	pid_t pid = proc_fork(child_slow_sender, w);
	assert_int_equal(peer_open(&p, w->a, NULL), 0);
	int ch = unet_chan_open(p.ep, w->b, TMO);
	assert_true(ch >= 0);
	for (uint32_t k = 0; k < w->rounds; k++) {
		unet_get_stats(p.ep, &st0);
		uint64_t c0 = cpu_us(), t0 = proc_now_ms();
		proc_set_u32(&w->go, k + 1);
		int rc = unet_wait(p.ep, TMO);
		uint64_t t1 = proc_now_ms(), c1 = cpu_us();
		unet_get_stats(p.ep, &st1);
		assert_int_equal(rc, 1);
		assert_int_equal(unet_recv(p.ep, &d, 1), 1);
		assert_int_equal(memcmp(d.data, &k, sizeof(k)), 0);
		assert_true(t1 - t0 >= 250);                 /* it did wait for the send */
		assert_true(t1 - w->send_ms[k] < 200);       /* and woke promptly */
		assert_true(st1.wakeups - st0.wakeups >= 1); /* by blocking, */
		assert_true(st1.wakeups - st0.wakeups <= 3);
		print_message("wait %llu ms, cpu %llu us, woke %lld ms after the send\n",
			      (unsigned long long)(t1 - t0), (unsigned long long)(c1 - c0),
			      (long long)(t1 - w->send_ms[k]));
		assert_true(c1 - c0 < 60000); /* not spinning: 300 ms asleep */
	}
	proc_set_u32(&w->go, w->rounds + 1);
	assert_int_equal(proc_wait(pid, TMO), 0);
	peer_close(&p);
	proc_unshare(w, sizeof(*w));
}

static void test_fd_poll_and_epoll(void **state)
{
	struct board *w = board_new("wf");
	struct peer p;
	struct unet_desc d;

	w->rounds = 3;
	pid_t pid = proc_fork(child_slow_sender, w);
	assert_int_equal(peer_open(&p, w->a, NULL), 0);
	int ch = unet_chan_open(p.ep, w->b, TMO);
	assert_true(ch >= 0);
	int fd = unet_fd(p.ep);
	assert_true(fd >= 0);

	/* poll(2): armed, nothing there, then readable once the send lands. */
	assert_int_equal(unet_arm(p.ep), 0);
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	assert_int_equal(poll(&pfd, 1, 0), 0);
	proc_set_u32(&w->go, 1);
	uint64_t c0 = cpu_us();
	assert_int_equal(poll(&pfd, 1, TMO), 1);
	assert_true(pfd.revents & POLLIN);
	assert_true(cpu_us() - c0 < 60000);
	unet_progress(p.ep);
	assert_int_equal(unet_recv(p.ep, &d, 1), 1);
	assert_int_equal(d.data[0], 0);

	/* epoll(7), the way an event loop would hold it. */
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN}, out;
	assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
	assert_int_equal(unet_arm(p.ep), 0);
	assert_int_equal(epoll_wait(ep, &out, 1, 0), 0);
	proc_set_u32(&w->go, 2);
	assert_int_equal(epoll_wait(ep, &out, 1, TMO), 1);
	unet_progress(p.ep);
	assert_int_equal(unet_recv(p.ep, &d, 1), 1);
	assert_int_equal(d.data[0], 1);
	close(ep);

	/* Work already there: arm says so instead of arming. */
	proc_set_u32(&w->go, 3);
	assert_int_equal(proc_wait_u32(&w->sent, 3, TMO), 0);
	assert_int_equal(unet_arm(p.ep), 1);
	assert_int_equal(unet_recv(p.ep, &d, 1), 1);
	assert_int_equal(d.data[0], 2);
	assert_int_equal(unet_arm(p.ep), 0);
	proc_set_u32(&w->go, 4);
	assert_int_equal(proc_wait(pid, TMO), 0);
	peer_close(&p);
	proc_unshare(w, sizeof(*w));
}

/* ---- woken by a death ------------------------------------------------------ */

static int child_silent(void *arg)
{
	struct board *w = arg;
	struct peer p;

	if (peer_open(&p, w->b, NULL))
		return 10;
	if (unet_chan_open(p.ep, w->a, TMO) < 0)
		return 11;
	proc_set_u32(&w->go, 1);
	for (;;)
		pause();
}

static void test_death_wakes_waiter(void **state)
{
	struct board *w = board_new("wd");
	struct peer p;
	struct unet_desc d;

	pid_t pid = proc_fork(child_silent, w);
	assert_int_equal(peer_open(&p, w->a, NULL), 0);
	int ch = unet_chan_open(p.ep, w->b, TMO);
	assert_true(ch >= 0);
	assert_int_equal(proc_wait_u32(&w->go, 1, TMO), 0);
	pid_t killer = fork();
	if (killer == 0) {
		usleep(300000);
		kill(pid, SIGKILL);
		_exit(0);
	}
	uint64_t t0 = proc_now_ms(), c0 = cpu_us();
	int rc = unet_wait(p.ep, TMO);
	uint64_t el = proc_now_ms() - t0;
	assert_int_equal(proc_wait(killer, TMO), 0);
	proc_kill(pid);
	assert_int_equal(rc, 1);
	assert_true(el >= 250 && el < 3000);
	assert_true(cpu_us() - c0 < 60000);
	assert_int_equal(unet_recv(p.ep, &d, 1), 1);
	assert_int_equal(d.flags, UNET_DF_CHAN_DOWN);
	assert_int_equal(d.chan, ch);
	/* Nothing more to wake for: a wait times out and returns. */
	assert_int_equal(unet_wait(p.ep, 100), 0);
	peer_close(&p);
	proc_unshare(w, sizeof(*w));
}

/* ---- no lost wakeups ------------------------------------------------------- */

static uint32_t rnd(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(*s >> 33);
}

/* Ping-pong where each side sleeps in unet_wait, replies after a random
 * pause (often longer than unet_wait's spin), and fails on any timeout. */
static int pingpong(struct peer *p, int ch, uint32_t rounds, int first, uint64_t seed)
{
	struct unet_desc d;

	for (uint32_t r = 0; r < rounds; r++) {
		if (first && unet_send_inline(p->ep, (unsigned)ch, &r, sizeof(r)) != 0)
			return 1;
		while (unet_recv(p->ep, &d, 1) == 0) {
			int rc = unet_wait(p->ep, 2000);
			if (rc != 1) {
				fprintf(stderr, "round %u: unet_wait gave %d: lost wakeup\n", r, rc);
				return 2;
			}
		}
		uint32_t v;
		memcpy(&v, d.data, sizeof(v));
		if (v != r || d.len != sizeof(v))
			return 3;
		if (!first && unet_send_inline(p->ep, (unsigned)ch, &r, sizeof(r)) != 0)
			return 4;
		uint32_t pause_us = rnd(&seed) % 4;
		if (pause_us)
			usleep(pause_us * 25);
	}
	return 0;
}

static int child_pong(void *arg)
{
	struct board *w = arg;
	struct peer p;

	if (peer_open(&p, w->b, NULL))
		return 10;
	int ch = unet_chan_open(p.ep, w->a, TMO);
	if (ch < 0)
		return 11;
	int rc = pingpong(&p, ch, w->rounds, 0, 99);
	proc_wait_u32(&w->go, 1, TMO);
	peer_close(&p);
	return rc ? 20 + rc : 0;
}

static void test_no_lost_wakeups(void **state)
{
	struct board *w = board_new("wl");
	struct peer p;
	struct unet_stats st;

	w->rounds = 1000;
	pid_t pid = proc_fork(child_pong, w);
	assert_int_equal(peer_open(&p, w->a, NULL), 0);
	int ch = unet_chan_open(p.ep, w->b, TMO);
	assert_true(ch >= 0);
	uint64_t t0 = proc_now_ms();
	assert_int_equal(pingpong(&p, ch, w->rounds, 1, 7), 0);
	proc_set_u32(&w->go, 1);
	assert_int_equal(proc_wait(pid, TMO), 0);
	unet_get_stats(p.ep, &st);
	print_message("%u round trips in %llu ms, %llu of our waits blocked\n", w->rounds,
		      (unsigned long long)(proc_now_ms() - t0), (unsigned long long)st.wakeups);
	assert_true(st.wakeups > 0); /* the test did exercise sleeping */
	peer_close(&p);
	proc_unshare(w, sizeof(*w));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_wait_sleeps_and_wakes_on_send, proc_teardown),
		cmocka_unit_test_teardown(test_fd_poll_and_epoll, proc_teardown),
		cmocka_unit_test_teardown(test_death_wakes_waiter, proc_teardown),
		cmocka_unit_test_teardown(test_no_lost_wakeups, proc_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
