/* test_udp_faults.c - the udp NIC when the kernel pushes back on sends.
 *
 * Loopback never runs out of send buffer (it frees each packet as it queues
 * it), so this program puts its own sendmmsg() in front of libc's: the
 * executable's definition interposes on libunet's call. For the endpoint
 * whose socket is `fault_fd` it can let a number of messages through and
 * then say EAGAIN/ENOBUFS, or refuse one message with an errno, exactly as
 * the kernel's sendmmsg would (a count when some went, -1 when the first
 * failed). Checked: a kernel push-back leaves the rest queued, in order,
 * without completions, and the next call into the endpoint sends them; a
 * refused message completes with its errno and the batch goes on; sends
 * queued for a channel that closes never reach the slot's next channel. */
#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "unet/unet.h"

static int fault_fd = -1;
static long fault_budget = -1; /* messages to let through before push-back; -1: no limit */
static int fault_errno_full = EAGAIN;
static long fault_refuse_at = -1; /* message number (since reset) to refuse */
static int fault_refuse_errno;
static long fault_count; /* messages passed to the kernel since reset */
static long fault_calls;

int sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
	static int (*real)(int, struct mmsghdr *, unsigned int, int);
	unsigned int allow = n;

	if (!real)
		real = (int (*)(int, struct mmsghdr *, unsigned int, int))dlsym(RTLD_NEXT,
										 "sendmmsg");
	if (fd != fault_fd)
		return real(fd, v, n, flags);
	fault_calls++;
	if (fault_budget >= 0 && allow > fault_budget)
		allow = (unsigned int)fault_budget;
	if (fault_refuse_at >= fault_count && fault_refuse_at < fault_count + (long)allow)
		allow = (unsigned int)(fault_refuse_at - fault_count);
	if (allow == 0) {
		if (fault_refuse_at == fault_count) {
			fault_refuse_at = -1;
			fault_count++; /* the kernel consumed nothing, but the caller skips it */
			errno = fault_refuse_errno;
		} else {
			errno = fault_errno_full;
		}
		return -1;
	}
	int r = real(fd, v, allow, flags);
	if (r > 0) {
		fault_count += r;
		if (fault_budget >= 0)
			fault_budget -= r;
	}
	return r;
}

static void fault_reset(int fd)
{
	fault_fd = fd;
	fault_budget = -1;
	fault_errno_full = EAGAIN;
	fault_refuse_at = -1;
	fault_count = 0;
	fault_calls = 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct pair {
	struct unet_nic *nic;
	struct unet_ep *tx, *rx;
	int ct, cr;
};

static void pair_open(struct pair *p)
{
	char r[64];

	assert_int_equal(unet_nic_open("udp:127.0.0.1", &p->nic), 0);
	assert_int_equal(unet_ep_create(p->nic, "0", NULL, &p->tx), 0);
	assert_int_equal(unet_ep_create(p->nic, "0", NULL, &p->rx), 0);
	sprintf(r, "127.0.0.1:%s", unet_ep_name(p->rx));
	p->ct = unet_chan_open(p->tx, r, 0);
	sprintf(r, "127.0.0.1:%s", unet_ep_name(p->tx));
	p->cr = unet_chan_open(p->rx, r, 0);
	assert_true(p->ct >= 0 && p->cr >= 0);
	fault_reset(unet_fd(p->tx));
}

static void pair_close(struct pair *p)
{
	fault_reset(-1);
	unet_ep_destroy(p->tx);
	unet_ep_destroy(p->rx);
	unet_nic_close(p->nic);
}

/* Message i: inline when i is odd (4 bytes), else 100 bytes from the
 * segment at i * 128; both start with i. */
static void queue_msgs(struct pair *p, uint32_t first, uint32_t n)
{
	uint8_t *seg = unet_ep_segment(p->tx, NULL);
	struct unet_desc d[64];

	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = first + k;
		d[k] = (struct unet_desc){.chan = (uint16_t)p->ct};
		if (i % 2) {
			d[k].flags = UNET_DF_INLINE;
			d[k].len = 4;
			memcpy(d[k].data, &i, 4);
		} else {
			d[k].off = (uint64_t)i * 128;
			d[k].len = 100;
			memset(seg + d[k].off, (int)(i & 0xff), 100);
			memcpy(seg + d[k].off, &i, 4);
		}
	}
	assert_int_equal(unet_send(p->tx, d, n), (int)n);
}

/* Receive until `n` have come or 300 ms pass quietly; returns the sequence
 * numbers in arrival order. */
static unsigned drain(struct unet_ep *ep, uint32_t *seq, unsigned n)
{
	struct unet_desc d[16];
	unsigned got = 0;

	for (uint64_t end = now_ms() + 300; got < n && now_ms() < end;) {
		int k = unet_recv(ep, d, 16);
		if (k == 0) {
			unet_wait(ep, 10);
			continue;
		}
		for (int i = 0; i < k; i++) {
			const uint8_t *b = (d[i].flags & UNET_DF_INLINE) ? d[i].data
									 : unet_ptr(ep, d[i].off);
			memcpy(&seq[got], b, 4);
			if (!(d[i].flags & UNET_DF_INLINE)) {
				assert_int_equal(d[i].len, 100);
				for (int j = 4; j < 100; j++)
					assert_int_equal(b[j], seq[got] & 0xff);
			}
			got++;
		}
		assert_int_equal(unet_release(ep, d, (unsigned)k), 0);
		end = now_ms() + 300;
	}
	return got;
}

static void test_pushback_keeps_order(void **state)
{
	struct pair p;
	uint32_t seq[64];
	struct unet_comp c[64];
	struct unet_stats st;

	pair_open(&p);
	fault_budget = 3;
	queue_msgs(&p, 0, 10);
	unet_get_stats(p.tx, &st);
	assert_true(fault_calls >= 2); /* the interposer is in the path */
	assert_int_equal(st.tx_msgs, 3);
	assert_int_equal(st.tx_dropped, 0);
	/* Completions only for what went: messages 0 and 2. */
	assert_int_equal(unet_poll_comp(p.tx, c, 64), 2);
	assert_int_equal(c[0].off, 0);
	assert_int_equal(c[1].off, 256);
	assert_int_equal(c[0].status, 0);
	assert_int_equal(c[1].status, 0);
	/* The stuck sends keep the endpoint from going to sleep. */
	assert_int_equal(unet_arm(p.tx), 1);
	assert_int_equal(drain(p.rx, seq, 3), 3);
	for (uint32_t i = 0; i < 3; i++)
		assert_int_equal(seq[i], i);

	/* More sends queue up behind, in order, still without going out. */
	queue_msgs(&p, 10, 5);
	unet_get_stats(p.tx, &st);
	assert_int_equal(st.tx_msgs, 3);

	/* Push-back over (ENOBUFS is treated the same): the next call into
	 * the endpoint sends everything, in order. */
	fault_errno_full = ENOBUFS;
	fault_budget = 4;
	assert_int_equal(unet_progress(p.tx), 0);
	unet_get_stats(p.tx, &st);
	assert_int_equal(st.tx_msgs, 7);
	fault_budget = -1;
	struct unet_desc none[1];
	assert_int_equal(unet_recv(p.tx, none, 1), 0); /* receiving drives sends too */
	unet_get_stats(p.tx, &st);
	assert_int_equal(st.tx_msgs, 15);
	assert_int_equal(unet_arm(p.tx), 0);
	assert_int_equal(drain(p.rx, seq, 12), 12);
	for (uint32_t i = 0; i < 12; i++)
		assert_int_equal(seq[i], 3 + i);
	int n = unet_poll_comp(p.tx, c, 64);
	assert_int_equal(n, 6); /* 4 6 8 10 12 14 */
	for (int i = 0; i < n; i++) {
		assert_int_equal(c[i].status, 0);
		assert_int_equal(c[i].off, (uint64_t)(4 + 2 * i) * 128);
	}
	pair_close(&p);
}

static void test_refused_mid_batch(void **state)
{
	struct pair p;
	uint32_t seq[64];
	struct unet_comp c[64];
	struct unet_stats st;

	pair_open(&p);
	fault_refuse_at = 4; /* a segment message */
	fault_refuse_errno = EPERM;
	queue_msgs(&p, 0, 8);
	unet_get_stats(p.tx, &st);
	assert_int_equal(st.tx_msgs, 7);
	assert_int_equal(st.tx_dropped, 1);
	assert_int_equal(unet_poll_comp(p.tx, c, 64), 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(c[i].off, (uint64_t)(2 * i) * 128);
		assert_int_equal(c[i].status, i == 2 ? -EPERM : 0);
	}
	assert_int_equal(drain(p.rx, seq, 7), 7);
	const uint32_t expect[] = {0, 1, 2, 3, 5, 6, 7};
	for (int i = 0; i < 7; i++)
		assert_int_equal(seq[i], expect[i]);

	/* The first of a batch refused: same story. */
	fault_reset(unet_fd(p.tx));
	fault_refuse_at = 0;
	fault_refuse_errno = EACCES;
	queue_msgs(&p, 20, 2);
	assert_int_equal(unet_poll_comp(p.tx, c, 64), 1);
	assert_int_equal(c[0].status, -EACCES);
	assert_int_equal(drain(p.rx, seq, 1), 1);
	assert_int_equal(seq[0], 21);
	pair_close(&p);
}

static void test_close_with_queued_sends(void **state)
{
	struct pair p;
	uint32_t seq[64];
	struct unet_comp c[64];
	struct unet_stats st;
	char r[64];

	pair_open(&p);
	fault_budget = 0;
	queue_msgs(&p, 0, 6);
	assert_int_equal(unet_chan_close(p.tx, (unsigned)p.ct), 0);
	/* Reopen the same slot towards a third endpoint. */
	struct unet_ep *third;
	assert_int_equal(unet_ep_create(p.nic, "0", NULL, &third), 0);
	sprintf(r, "127.0.0.1:%s", unet_ep_name(third));
	assert_int_equal(unet_chan_open(p.tx, r, 0), p.ct);
	sprintf(r, "127.0.0.1:%s", unet_ep_name(p.tx));
	assert_true(unet_chan_open(third, r, 0) >= 0);

	fault_budget = -1;
	assert_int_equal(unet_progress(p.tx), 0);
	assert_int_equal(unet_poll_comp(p.tx, c, 64), 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(c[i].status, -ENOTCONN);
	unet_get_stats(p.tx, &st);
	assert_int_equal(st.tx_dropped, 6);
	assert_int_equal(st.tx_msgs, 0);
	assert_int_equal(drain(third, seq, 1), 0);
	assert_int_equal(drain(p.rx, seq, 1), 0);

	/* The new channel itself works. */
	queue_msgs(&p, 7, 1);
	assert_int_equal(drain(third, seq, 1), 1);
	assert_int_equal(seq[0], 7);
	unet_ep_destroy(third);
	pair_close(&p);
}

/* A full completion queue holds segment sends back; reaping lets them go. */
static void test_completion_queue_full(void **state)
{
	struct unet_nic *nic;
	struct unet_ep *tx, *rx;
	struct unet_ep_attr at = {.sq_depth = 8};
	struct unet_desc d[8];
	struct unet_comp c[8];
	struct unet_stats st;
	uint32_t seq[64];
	char r[64];

	assert_int_equal(unet_nic_open("udp:127.0.0.1", &nic), 0);
	assert_int_equal(unet_ep_create(nic, "0", &at, &tx), 0);
	assert_int_equal(unet_ep_create(nic, "0", NULL, &rx), 0);
	sprintf(r, "127.0.0.1:%s", unet_ep_name(rx));
	int ct = unet_chan_open(tx, r, 0);
	sprintf(r, "127.0.0.1:%s", unet_ep_name(tx));
	assert_true(unet_chan_open(rx, r, 0) >= 0);
	uint8_t *seg = unet_ep_segment(tx, NULL);
	for (uint32_t i = 0; i < 16; i++) {
		memset(seg + i * 128, (int)i, 100);
		memcpy(seg + i * 128, &i, 4);
	}
	for (uint32_t i = 0; i < 8; i++)
		d[i] = (struct unet_desc){.chan = (uint16_t)ct, .off = i * 128, .len = 100};
	assert_int_equal(unet_send(tx, d, 8), 8); /* fills the completion queue */
	for (uint32_t i = 0; i < 8; i++)
		d[i].off = (8 + i) * 128;
	assert_int_equal(unet_send(tx, d, 8), 8); /* queued behind it */
	unet_get_stats(tx, &st);
	assert_int_equal(st.tx_msgs, 8);
	assert_int_equal(unet_send(tx, d, 1), -EAGAIN);
	assert_int_equal(unet_poll_comp(tx, c, 8), 8); /* and the rest go */
	unet_get_stats(tx, &st);
	assert_int_equal(st.tx_msgs, 16);
	assert_int_equal(unet_poll_comp(tx, c, 8), 8);
	for (int i = 0; i < 8; i++)
		assert_int_equal(c[i].off, (uint64_t)(8 + i) * 128);
	assert_int_equal(drain(rx, seq, 16), 16);
	for (uint32_t i = 0; i < 16; i++)
		assert_int_equal(seq[i], i);
	unet_ep_destroy(tx);
	unet_ep_destroy(rx);
	unet_nic_close(nic);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pushback_keeps_order),
		cmocka_unit_test(test_refused_mid_batch),
		cmocka_unit_test(test_close_with_queued_sends),
		cmocka_unit_test(test_completion_queue_full),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
