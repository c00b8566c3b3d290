/* test_shm_smoke.c - two processes open shm endpoints, a channel each way,
 * and bounce inline and segment messages, checking every byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "unet/unet.h"

static void name(char *out, const char *what)
{
	sprintf(out, "smoke-%s-%d", what, (int)getpid());
}

static int child_echo(const char *me, const char *peer, int rounds)
{
	struct unet_nic *nic;
	struct unet_ep *ep;
	struct unet_desc d[8];
	if (unet_nic_open("shm", &nic) || unet_ep_create(nic, me, NULL, &ep))
		return 10;
	int ch = unet_chan_open(ep, peer, 5000);
	if (ch < 0)
		return 11;
	size_t segsz;
	uint8_t *seg = unet_ep_segment(ep, &segsz);
	for (int got = 0; got < rounds;) {
		int n = unet_recv(ep, d, 8);
		if (n == 0) {
			unet_wait(ep, 1000);
			continue;
		}
		for (int i = 0; i < n; i++, got++) {
			struct unet_desc out = d[i];
			out.chan = (uint16_t)ch;
			if (!(d[i].flags & UNET_DF_INLINE)) {
				memcpy(seg, unet_ptr(ep, d[i].off), d[i].len);
				out.off = 0;
				unet_release(ep, &d[i], 1);
			}
			while (unet_send(ep, &out, 1) != 1)
				;
			struct unet_comp c;
			while (!(out.flags & UNET_DF_INLINE) && unet_poll_comp(ep, &c, 1) == 0)
				;
		}
	}
	unet_ep_destroy(ep);
	unet_nic_close(nic);
	return 0;
}

static void test_pingpong(void **state)
{
	char a[64], b[64];
	name(a, "a");
	name(b, "b");
	const int rounds = 2000;
	pid_t pid = fork();
	if (pid == 0)
		_exit(child_echo(b, a, rounds));
	struct unet_nic *nic;
	struct unet_ep *ep;
	assert_int_equal(unet_nic_open("shm", &nic), 0);
	assert_int_equal(unet_ep_create(nic, a, NULL, &ep), 0);
	int ch = unet_chan_open(ep, b, 5000);
	assert_true(ch >= 0);
	size_t segsz;
	uint8_t *seg = unet_ep_segment(ep, &segsz);
	for (int r = 0; r < rounds; r++) {
		struct unet_desc d = {.chan = (uint16_t)ch};
		uint32_t len = (r % 2) ? 8 + (uint32_t)r % 40 : 100 + (uint32_t)r % 1900;
		uint8_t *src = (r % 2) ? d.data : seg + 4096;
		for (uint32_t i = 0; i < len; i++)
			src[i] = (uint8_t)(r * 7 + i);
		d.len = len;
		if (r % 2)
			d.flags = UNET_DF_INLINE;
		else
			d.off = 4096;
		assert_int_equal(unet_send(ep, &d, 1), 1);
		struct unet_desc in;
		int n;
		while ((n = unet_recv(ep, &in, 1)) == 0)
			unet_wait(ep, 1000);
		assert_int_equal(n, 1);
		assert_int_equal(in.len, len);
		assert_int_equal(in.chan, ch);
		const uint8_t *p = (in.flags & UNET_DF_INLINE) ? in.data : unet_ptr(ep, in.off);
		for (uint32_t i = 0; i < len; i++)
			assert_int_equal(p[i], (uint8_t)(r * 7 + i));
		assert_int_equal(unet_release(ep, &in, 1), 0);
		struct unet_comp c;
		if (!(r % 2)) {
			assert_int_equal(unet_poll_comp(ep, &c, 1), 1);
			assert_int_equal(c.status, 0);
			assert_int_equal(c.off, 4096);
		}
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	struct unet_stats st;
	unet_get_stats(ep, &st);
	assert_int_equal(st.tx_msgs, rounds);
	assert_int_equal(st.rx_msgs, rounds);
	unet_ep_destroy(ep);
	unet_nic_close(nic);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_pingpong)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
