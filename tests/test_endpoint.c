/*
 * test_endpoint.c - the generic endpoint layer on the shm NIC, without a
 * peer: NIC lookup, endpoint life cycle (no fd or mapping leaks over many
 * create/destroy rounds), attribute validation, names (in use, too long,
 * reclaimed from a killed owner), and every call that must refuse bad input
 * on an endpoint that has no channel: sends, releases, closes, opens to a
 * name nobody holds, and a channel to oneself.
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
#include "unet/unet.h"

struct fixture {
	struct unet_nic *nic;
};

static int setup(void **state)
{
	static struct fixture f;

	if (unet_nic_open("shm", &f.nic) != 0)
		return -1;
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	unet_nic_close(f->nic);
	return 0;
}

static void test_nic_open(void **state)
{
	struct unet_nic *nic = NULL;

	assert_int_equal(unet_nic_open("nosuchnic", &nic), -EPROTONOSUPPORT);
	assert_int_equal(unet_nic_open("shmx", &nic), -EPROTONOSUPPORT);
	assert_int_equal(unet_nic_open("sh", &nic), -EPROTONOSUPPORT);
	assert_int_equal(unet_nic_open("", &nic), -EPROTONOSUPPORT);
	assert_int_equal(unet_nic_open(":shm", &nic), -EPROTONOSUPPORT);
	assert_int_equal(unet_nic_open("foo:bar", &nic), -EPROTONOSUPPORT);
	assert_null(nic);
	assert_int_equal(unet_nic_open(NULL, &nic), -EINVAL);
	assert_int_equal(unet_nic_open("shm", NULL), -EINVAL);
	assert_int_equal(unet_nic_open("shm", &nic), 0);
	assert_string_equal(unet_nic_kind(nic), "shm");
	unet_nic_close(nic);
	unet_nic_close(NULL);
}

static void test_create_destroy_no_leak(void **state)
{
	struct fixture *f = *state;
	char name[UNET_NAME_MAX];
	struct unet_ep *ep;
	struct unet_ep_attr small = {.seg_size = 4096, .sq_depth = 1, .rq_depth = 1,
				     .rx_bufs = 1, .rx_buf_size = 64, .max_chans = 1};
	struct unet_ep_attr odd = {.seg_size = 12345, .sq_depth = 2, .rq_depth = 2,
				   .rx_bufs = 3, .rx_buf_size = 192, .max_chans = 3};
	struct unet_ep_attr pool = {.rdma_pool = 1 << 20};
	const struct unet_ep_attr *attrs[] = {NULL, &small, &odd, &pool};

	/* Warm up whatever libc caches on first use. */
	proc_name(name, sizeof(name), "ep");
	assert_int_equal(unet_ep_create(f->nic, name, NULL, &ep), 0);
	unet_ep_destroy(ep);

	int fds = proc_count_fds(), maps = proc_count_maps();
	int memfds = proc_count_maps_of("memfd:");
	uint64_t va = proc_mapped_bytes();
	assert_true(fds > 0 && maps > 0 && va > 0);
	for (int i = 0; i < 400; i++) {
		const struct unet_ep_attr *a = attrs[i % 4];
		proc_name(name, sizeof(name), "ep");
		assert_int_equal(unet_ep_create(f->nic, name, a, &ep), 0);
		size_t sz;
		uint8_t *seg = unet_ep_segment(ep, &sz);
		assert_non_null(seg);
		assert_int_equal(sz, a ? a->seg_size ? a->seg_size : 1u << 20 : 1u << 20);
		seg[0] = 1; /* the application part is ours to write */
		seg[sz - 1] = 2;
		assert_true(unet_fd(ep) >= 0);
		assert_string_equal(unet_ep_name(ep), name);
		if (a == &small) {
			assert_int_equal(unet_ep_attr(ep)->sq_depth, 1);
			assert_int_equal(unet_ep_attr(ep)->max_chans, 1);
		} else if (a == NULL) {
			assert_int_equal(unet_ep_attr(ep)->sq_depth, 256);
			assert_int_equal(unet_ep_attr(ep)->rx_buf_size, 2048);
		}
		unet_ep_destroy(ep);
	}
	/* A leak would add at least one mapping (and megabytes of address
	 * space) per round; the allocator (ASan's especially) may grow a bit. */
	assert_int_equal(proc_count_fds(), fds);
	assert_int_equal(proc_count_maps_of("memfd:"), memfds);
	assert_true(proc_count_maps() <= maps + 16);
	assert_true(proc_mapped_bytes() <= va + (16u << 20));
	unet_ep_destroy(NULL);
}

static void test_bad_attrs(void **state)
{
	struct fixture *f = *state;
	struct unet_ep *ep = NULL;
	char name[UNET_NAME_MAX];
	const struct unet_ep_attr bad[] = {
		{.sq_depth = 3},
		{.sq_depth = 100},
		{.sq_depth = 1u << 21},
		{.sq_depth = 0x80000001u},
		{.rq_depth = 5},
		{.rq_depth = 1u << 21},
		{.rx_buf_size = 100},
		{.rx_buf_size = 63},
		{.rx_buf_size = 128u << 20},
		{.rx_bufs = (1u << 20) + 1},
		{.max_chans = 5000},
		{.seg_size = (1ull << 40) + 1},
	};
	int fds = proc_count_fds();

	proc_name(name, sizeof(name), "attr");
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(unet_ep_create(f->nic, name, &bad[i], &ep), -EINVAL);
		assert_null(ep);
	}
	assert_int_equal(proc_count_fds(), fds);
	/* The name was never taken by the failed attempts. */
	assert_int_equal(unet_ep_create(f->nic, name, NULL, &ep), 0);
	unet_ep_destroy(ep);
}

static void test_bad_names(void **state)
{
	struct fixture *f = *state;
	struct unet_ep *ep = NULL, *ep2 = NULL;
	char name[UNET_NAME_MAX + 8];

	assert_int_equal(unet_ep_create(f->nic, "", NULL, &ep), -EINVAL);
	assert_int_equal(unet_ep_create(f->nic, NULL, NULL, &ep), -EINVAL);
	assert_int_equal(unet_ep_create(NULL, "x", NULL, &ep), -EINVAL);
	memset(name, 'n', sizeof(name));
	name[UNET_NAME_MAX] = 0; /* 64 characters: one too many */
	assert_int_equal(unet_ep_create(f->nic, name, NULL, &ep), -ENAMETOOLONG);
	name[UNET_NAME_MAX - 1] = 0; /* 63: fits */
	name[0] = (char)('a' + getpid() % 26);
	snprintf(name + 1, 12, "%d", (int)getpid());
	name[strlen(name)] = 'n';
	assert_int_equal(unet_ep_create(f->nic, name, NULL, &ep), 0);
	assert_int_equal(unet_ep_create(f->nic, name, NULL, &ep2), -EADDRINUSE);
	assert_null(ep2);
	unet_ep_destroy(ep);
	assert_int_equal(unet_ep_create(f->nic, name, NULL, &ep), 0);
	unet_ep_destroy(ep);
}

/* ---- names across processes ------------------------------------------- */

struct name_arg {
	char name[UNET_NAME_MAX];
	uint32_t *flag;
};

static int hold_name(void *arg)
{
	struct name_arg *a = arg;
	struct unet_nic *nic;
	struct unet_ep *ep;

	if (unet_nic_open("shm", &nic) || unet_ep_create(nic, a->name, NULL, &ep))
		return 10;
	proc_set_u32(a->flag, 1);
	for (;;) /* until killed */
		pause();
}

static int try_name(void *arg)
{
	struct name_arg *a = arg;
	struct unet_nic *nic;
	struct unet_ep *ep = NULL;

	if (unet_nic_open("shm", &nic))
		return 10;
	int rc = unet_ep_create(nic, a->name, NULL, &ep);
	if (rc == 0)
		return 11;
	return rc == -EADDRINUSE && ep == NULL ? 0 : 12;
}

static void test_name_other_process(void **state)
{
	struct fixture *f = *state;
	struct name_arg *a = proc_shared(sizeof(*a) + sizeof(uint32_t));
	struct unet_ep *ep;

	assert_non_null(a);
	a->flag = (uint32_t *)(a + 1);
	proc_name(a->name, sizeof(a->name), "held");

	/* Held by another live process: ours is refused, and so is a third's. */
	pid_t holder = proc_fork(hold_name, a);
	assert_true(holder > 0);
	assert_int_equal(proc_wait_u32(a->flag, 1, 10000), 0);
	assert_int_equal(unet_ep_create(f->nic, a->name, NULL, &ep), -EADDRINUSE);
	pid_t third = proc_fork(try_name, a);
	assert_int_equal(proc_wait(third, 10000), 0);

	/* kill -9: the name is free at once, no clean-up, no waiting. */
	kill(holder, SIGKILL);
	uint64_t t0 = proc_now_ms();
	int rc;
	while ((rc = unet_ep_create(f->nic, a->name, NULL, &ep)) == -EADDRINUSE &&
	       proc_now_ms() - t0 < 1000)
		usleep(1000);
	assert_int_equal(rc, 0);
	print_message("name reclaimed %llu ms after kill -9 (before reaping)\n",
		      (unsigned long long)(proc_now_ms() - t0));
	proc_kill(holder);
	/* And now it is ours: others are refused. */
	third = proc_fork(try_name, a);
	assert_int_equal(proc_wait(third, 10000), 0);
	unet_ep_destroy(ep);
	proc_unshare(a, sizeof(*a) + sizeof(uint32_t));
}

/* ---- bad input on an endpoint with no channel -------------------------- */

static void test_send_no_channel(void **state)
{
	struct fixture *f = *state;
	struct unet_ep *ep;
	char name[UNET_NAME_MAX];
	struct unet_desc d = {.off = 0, .len = 16, .chan = 0};
	struct unet_stats st;

	proc_name(name, sizeof(name), "nochan");
	assert_int_equal(unet_ep_create(f->nic, name, NULL, &ep), 0);
	assert_int_equal(unet_send(ep, &d, 1), -ENOTCONN);
	d.chan = 63;
	assert_int_equal(unet_send(ep, &d, 1), -ENOTCONN);
	d.chan = 64; /* beyond max_chans */
	assert_int_equal(unet_send(ep, &d, 1), -ENOTCONN);
	d.chan = UINT16_MAX;
	assert_int_equal(unet_send(ep, &d, 1), -ENOTCONN);
	d.chan = 0;
	d.flags = UNET_DF_INLINE;
	assert_int_equal(unet_send(ep, &d, 1), -ENOTCONN);
	assert_int_equal(unet_send_inline(ep, 0, "hello", 5), -ENOTCONN);
	assert_int_equal(unet_send_inline(ep, 70000, "hello", 5), -ENOTCONN);
	assert_int_equal(unet_send_inline(ep, 0, name, UNET_INLINE_MAX + 1), -EMSGSIZE);
	assert_int_equal(unet_send_inline(ep, 0, NULL, 0), -ENOTCONN); /* empty message */
	assert_int_equal(unet_send(ep, &d, 0), 0);
	assert_int_equal(unet_chan_close(ep, 0), -ENOTCONN);
	assert_int_equal(unet_chan_close(ep, 64), -ENOTCONN);
	assert_int_equal(unet_chan_close(ep, UINT32_MAX), -ENOTCONN);
	assert_int_equal(unet_chan_status(ep, 0), -ENOTCONN);
	assert_int_equal(unet_chan_status(ep, 1000), -ENOTCONN);
	assert_int_equal(unet_chan_mtu(ep, 0), -ENOTCONN);
	assert_int_equal(unet_chan_mtu(ep, 1000), -ENOTCONN);

	struct unet_comp c[4];
	struct unet_desc r[4];
	assert_int_equal(unet_poll_comp(ep, c, 4), 0);
	assert_int_equal(unet_recv(ep, r, 4), 0);
	assert_int_equal(unet_progress(ep), 0);
	unet_get_stats(ep, &st);
	assert_int_equal(st.tx_msgs, 0);
	assert_int_equal(st.tx_dropped, 0);
	unet_ep_destroy(ep);
}

static void test_release_bogus(void **state)
{
	struct fixture *f = *state;
	struct unet_ep *ep;
	char name[UNET_NAME_MAX];
	size_t sz;

	proc_name(name, sizeof(name), "rel");
	assert_int_equal(unet_ep_create(f->nic, name, NULL, &ep), 0);
	unet_ep_segment(ep, &sz);
	const uint64_t offs[] = {0, 64, sz - 64, sz, sz + 1, 1ull << 40, UINT64_MAX,
				 UINT64_MAX - 4095};
	for (unsigned i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		struct unet_desc d = {.off = offs[i], .len = 64};
		int rc = unet_release(ep, &d, 1);
		/* Beyond the application part lie the (closed) receive areas:
		 * either way the offset is no buffer we handed out. */
		assert_true(rc == -ERANGE || rc == -ENOTCONN);
		if (offs[i] < sz)
			assert_int_equal(rc, -ERANGE);
	}
	/* Inline descriptors and events have nothing to release. */
	struct unet_desc inl = {.off = 12345, .len = 4, .flags = UNET_DF_INLINE};
	assert_int_equal(unet_release(ep, &inl, 1), 0);
	assert_int_equal(unet_release(ep, NULL, 0), 0);
	unet_ep_destroy(ep);
}

static void test_open_nonexistent(void **state)
{
	struct fixture *f = *state;
	struct unet_ep *ep;
	char name[UNET_NAME_MAX], ghost[UNET_NAME_MAX];
	char longname[UNET_REMOTE_MAX + 2];

	proc_name(name, sizeof(name), "lonely");
	proc_name(ghost, sizeof(ghost), "ghost");
	assert_int_equal(unet_ep_create(f->nic, name, NULL, &ep), 0);
	int fds = proc_count_fds();

	uint64_t t0 = proc_now_ms();
	assert_int_equal(unet_chan_open(ep, ghost, 0), -ENOENT);
	assert_true(proc_now_ms() - t0 < 200);

	t0 = proc_now_ms();
	assert_int_equal(unet_chan_open(ep, ghost, 300), -ENOENT);
	uint64_t el = proc_now_ms() - t0;
	assert_true(el >= 300);
	assert_true(el < 3000);

	assert_int_equal(unet_chan_open(ep, "", 0), -EINVAL);
	assert_int_equal(unet_chan_open(ep, NULL, 0), -EINVAL);
	memset(longname, 'x', sizeof(longname));
	longname[UNET_NAME_MAX] = 0;
	assert_int_equal(unet_chan_open(ep, longname, 0), -ENAMETOOLONG);
	longname[UNET_REMOTE_MAX + 1] = 0;
	assert_int_equal(unet_chan_open(ep, longname, 0), -ENAMETOOLONG);

	/* Nothing was left behind: no fd, no half-open channel slot. */
	assert_int_equal(proc_count_fds(), fds);
	for (unsigned i = 0; i < 64; i++)
		assert_int_equal(unet_chan_status(ep, i), -ENOTCONN);
	unet_ep_destroy(ep);
}

/* A channel names a pair of endpoints; an endpoint paired with itself is
 * refused (-EINVAL) at once rather than left to a hand-shake that can only
 * time out or fail. */
static void test_chan_to_self(void **state)
{
	struct fixture *f = *state;
	struct unet_ep *ep;
	char name[UNET_NAME_MAX];

	proc_name(name, sizeof(name), "self");
	assert_int_equal(unet_ep_create(f->nic, name, NULL, &ep), 0);
	int fds = proc_count_fds();
	uint64_t t0 = proc_now_ms();
	assert_int_equal(unet_chan_open(ep, name, 2000), -EINVAL);
	assert_true(proc_now_ms() - t0 < 1000);
	assert_int_equal(proc_count_fds(), fds);
	for (unsigned i = 0; i < 64; i++)
		assert_int_equal(unet_chan_status(ep, i), -ENOTCONN);
	/* Still healthy afterwards. */
	assert_int_equal(unet_wait(ep, 0), 0);
	unet_ep_destroy(ep);
}

static void test_wait_timeout(void **state)
{
	struct fixture *f = *state;
	struct unet_ep *ep;
	char name[UNET_NAME_MAX];
	struct unet_stats st;

	proc_name(name, sizeof(name), "wait");
	assert_int_equal(unet_ep_create(f->nic, name, NULL, &ep), 0);
	assert_int_equal(unet_wait(ep, 0), 0);
	uint64_t t0 = proc_now_ms();
	assert_int_equal(unet_wait(ep, 200), 0);
	uint64_t el = proc_now_ms() - t0;
	assert_true(el >= 200 && el < 2000);
	unet_get_stats(ep, &st);
	assert_true(st.wakeups >= 1);
	assert_int_equal(unet_arm(ep), 0);
	unet_ep_destroy(ep);
}

static void test_strerror(void **state)
{
	const int codes[] = {-EINVAL, -ERANGE, -EMSGSIZE, -ENOTCONN, -ECONNRESET, -EAGAIN,
			     -ENOBUFS, -ENOSPC, -EADDRINUSE, -ENOENT, -ETIMEDOUT, -EALREADY,
			     -EMFILE, -EPROTONOSUPPORT, -ENAMETOOLONG, -EPERM};

	assert_string_equal(unet_strerror(0), "success");
	for (unsigned i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		const char *s = unet_strerror(codes[i]);
		assert_non_null(s);
		assert_true(strlen(s) > 5);
		for (unsigned j = 0; j < i; j++)
			assert_string_not_equal(s, unet_strerror(codes[j]));
	}
	assert_non_null(unet_strerror(-12345));
	assert_non_null(unet_strerror(7));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_nic_open, proc_teardown),
		cmocka_unit_test_teardown(test_create_destroy_no_leak, proc_teardown),
		cmocka_unit_test_teardown(test_bad_attrs, proc_teardown),
		cmocka_unit_test_teardown(test_bad_names, proc_teardown),
		cmocka_unit_test_teardown(test_name_other_process, proc_teardown),
		cmocka_unit_test_teardown(test_send_no_channel, proc_teardown),
		cmocka_unit_test_teardown(test_release_bogus, proc_teardown),
		cmocka_unit_test_teardown(test_open_nonexistent, proc_teardown),
		cmocka_unit_test_teardown(test_chan_to_self, proc_teardown),
		cmocka_unit_test_teardown(test_wait_timeout, proc_teardown),
		cmocka_unit_test_teardown(test_strerror, proc_teardown),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
