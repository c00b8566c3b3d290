/* test_lease.c - CM <-> member leases (src/farm/lease.h), in one process:
 * a CM and members, each with its own lease thread and UDP socket on
 * loopback. Grants make everyone serve; a member whose lease channel is cut
 * stops serving within its lease and *before* the CM declares it expired
 * (the order that makes removal safe); a cut-off CM stops serving and the
 * members that lost it agree to a takeover (probe); a wrong incarnation is
 * never granted; garbage is counted and ignored; and with every core kept
 * busy by spinning threads nobody expires with the default lease. Times
 * measured are printed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "helpers/proc.h"
#include "lease.h"

#define N 3

struct party {
	struct farm_lease *l;
	uint32_t id;
	uint64_t inc;
	/* set by callbacks (lease thread) */
	uint64_t member_exp_ns[N + 1]; /* CM: when member i was declared expired */
	uint64_t cm_exp_ns;
	uint64_t stop_ns; /* last serving -> false */
	uint32_t drops;	  /* serving true -> false transitions */
	uint32_t serving;
	uint64_t newer;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void on_member(void *arg, uint32_t id, uint64_t cfg)
{
	struct party *p = arg;

	(void)cfg;
	if (id <= N)
		__atomic_store_n(&p->member_exp_ns[id], now_ns(), __ATOMIC_RELEASE);
}

static void on_cm(void *arg, uint32_t cm, uint64_t cfg)
{
	struct party *p = arg;

	(void)cm;
	(void)cfg;
	__atomic_store_n(&p->cm_exp_ns, now_ns(), __ATOMIC_RELEASE);
}

static void on_serving(void *arg, bool on)
{
	struct party *p = arg;

	if (!on) {
		__atomic_store_n(&p->stop_ns, now_ns(), __ATOMIC_RELEASE);
		if (__atomic_load_n(&p->serving, __ATOMIC_RELAXED))
			__atomic_add_fetch(&p->drops, 1, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&p->serving, on, __ATOMIC_RELEASE);
}

static void on_newer(void *arg, uint64_t cfg)
{
	struct party *p = arg;

	__atomic_store_n(&p->newer, cfg, __ATOMIC_RELEASE);
}

static void start_party(struct party *p, uint32_t id, uint32_t lease_ms)
{
	struct farm_lease_attr a = {.self = id,
				    .inc = 1000 + id,
				    .cluster = (uint64_t)getpid() << 16 | 0x7e57,
				    .lease_ms = lease_ms,
				    .realtime = true,
				    .on_member_expired = on_member,
				    .on_cm_expired = on_cm,
				    .on_serving = on_serving,
				    .on_newer = on_newer,
				    .arg = p};

	memset(p, 0, sizeof(*p));
	p->id = id;
	p->inc = a.inc;
	assert_int_equal(farm_lease_start(&a, &p->l), 0);
}

/* Everyone gets the same view: members 1..n, CM `cm`. */
static void set_views(struct party *ps, int n, uint32_t cm, uint64_t cfg)
{
	struct farm_lease_view v = {.config_id = cfg, .cm = cm, .n = (uint32_t)n};

	for (int i = 0; i < n; i++) {
		v.m[i].id = ps[i].id;
		v.m[i].inc = ps[i].inc;
		assert_int_equal(farm_lease_addr(ps[i].l, v.m[i].addr, sizeof(v.m[i].addr)), 0);
	}
	for (int i = 0; i < n; i++)
		assert_int_equal(farm_lease_set_view(ps[i].l, &v), 0);
}

static int wait_serving(struct party *ps, int n, int ms)
{
	uint64_t end = proc_now_ms() + (uint64_t)ms;

	for (;;) {
		int ok = 0;
		for (int i = 0; i < n; i++)
			ok += farm_lease_serving(ps[i].l);
		if (ok == n)
			return 0;
		if (proc_now_ms() > end)
			return -ETIMEDOUT;
		usleep(1000);
	}
}

static int wait_u64(const uint64_t *p, int ms)
{
	uint64_t end = proc_now_ms() + (uint64_t)ms;

	while (!__atomic_load_n(p, __ATOMIC_ACQUIRE)) {
		if (proc_now_ms() > end)
			return -ETIMEDOUT;
		usleep(500);
	}
	return 0;
}

static void stop_all(struct party *ps, int n)
{
	for (int i = 0; i < n; i++)
		farm_lease_stop(ps[i].l);
}

static void test_grants(void **state)
{
	(void)state;
	static struct party ps[N];
	struct farm_lease_stats st;

	for (int i = 0; i < N; i++)
		start_party(&ps[i], (uint32_t)i + 1, 50);
	assert_false(farm_lease_serving(ps[0].l)); /* no view: nothing leased */
	set_views(ps, N, 1, 7);
	assert_int_equal(wait_serving(ps, N, 2000), 0);
	usleep(200000);
	for (int i = 0; i < N; i++) {
		assert_true(farm_lease_serving(ps[i].l));
		assert_true(farm_lease_valid_until(ps[i].l) > now_ns());
		farm_lease_get_stats(ps[i].l, &st);
		assert_true(st.grant_recv > 10);
		assert_int_equal(st.expiries_seen, 0);
		assert_int_equal(ps[i].drops, 0);
	}
	assert_false(farm_lease_cm_lost(ps[1].l));
	/* The CM announces configuration 8: members hear of a newer one.
	 * (Before its own view was set, a member may already have heard of 7.) */
	uint64_t end = proc_now_ms() + 2000;
	farm_lease_notify(ps[0].l, 8);
	while (__atomic_load_n(&ps[1].newer, __ATOMIC_ACQUIRE) != 8 && proc_now_ms() < end)
		usleep(500);
	assert_int_equal(ps[1].newer, 8);
	stop_all(ps, N);
}

static void test_member_partition(void **state)
{
	(void)state;
	static struct party ps[N];
	const uint32_t lease_ms = 30;

	for (int i = 0; i < N; i++)
		start_party(&ps[i], (uint32_t)i + 1, lease_ms);
	set_views(ps, N, 1, 1);
	assert_int_equal(wait_serving(ps, N, 2000), 0);
	usleep(100000);
	uint64_t t0 = now_ns();
	farm_lease_block(ps[2].l, true); /* member 3's lease channel is cut */
	assert_int_equal(wait_u64(&ps[2].stop_ns, 2000), 0);
	assert_int_equal(wait_u64(&ps[0].member_exp_ns[3], 2000), 0);
	uint64_t stop = ps[2].stop_ns - t0, exp = ps[0].member_exp_ns[3] - t0;
	printf("# lease %u ms: partitioned member stopped serving after %.1f ms, "
	       "CM declared it expired after %.1f ms\n",
	       lease_ms, stop / 1e6, exp / 1e6);
	/* Safety: the member's lease ends before the CM gives up on it (the
	 * flag itself flips within the lease thread's wake-up latency). */
	assert_true(farm_lease_valid_until(ps[2].l) <= ps[0].member_exp_ns[3]);
	/* Within the lease, plus the thread's wake-up (a VM stall here can
	 * last ~50 ms: the bound allows for one). */
	assert_true(stop <= (uint64_t)lease_ms * 1000000ull + 60000000ull);
	assert_true(exp >= (uint64_t)lease_ms * 1000000ull * 4 / 5);
	assert_false(farm_lease_serving(ps[2].l));
	/* The others keep serving; the member saw its CM go quiet. */
	assert_true(farm_lease_serving(ps[0].l));
	assert_true(farm_lease_serving(ps[1].l));
	assert_int_equal(wait_u64(&ps[2].cm_exp_ns, 2000), 0);
	/* Healed, it is still not renewed: the CM reported it and will remove
	 * it (only a new view takes it back). */
	farm_lease_block(ps[2].l, false);
	usleep(5 * lease_ms * 1000);
	assert_false(farm_lease_serving(ps[2].l));
	/* A new view without it; then one with it again (rejoined). */
	set_views(ps, 2, 1, 2);
	usleep(3 * lease_ms * 1000);
	assert_true(farm_lease_serving(ps[0].l) && farm_lease_serving(ps[1].l));
	set_views(ps, 3, 1, 3);
	assert_int_equal(wait_serving(ps, N, 2000), 0);
	stop_all(ps, N);
}

static void test_cm_partition(void **state)
{
	(void)state;
	static struct party ps[N];
	const uint32_t lease_ms = 30;

	for (int i = 0; i < N; i++)
		start_party(&ps[i], (uint32_t)i + 1, lease_ms);
	set_views(ps, N, 1, 1);
	assert_int_equal(wait_serving(ps, N, 2000), 0);
	/* While the CM is heard, nobody agrees to a takeover. */
	assert_int_equal(farm_lease_probe(ps[1].l, 100), 0);
	uint64_t t0 = now_ns();
	farm_lease_block(ps[0].l, true);
	assert_int_equal(wait_u64(&ps[1].cm_exp_ns, 2000), 0);
	assert_int_equal(wait_u64(&ps[2].cm_exp_ns, 2000), 0);
	assert_int_equal(wait_u64(&ps[0].stop_ns, 2000), 0);
	printf("# lease %u ms: members lost the CM after %.1f / %.1f ms; the cut-off CM "
	       "stopped serving after %.1f ms\n",
	       lease_ms, (ps[1].cm_exp_ns - t0) / 1e6, (ps[2].cm_exp_ns - t0) / 1e6,
	       (ps[0].stop_ns - t0) / 1e6);
	assert_true(farm_lease_cm_lost(ps[1].l));
	/* Member 2 asks member 3: both lost the CM, so 2 agree. */
	assert_int_equal(farm_lease_probe(ps[1].l, 500), 2);
	stop_all(ps, N);
}

static void test_incarnation_and_garbage(void **state)
{
	(void)state;
	static struct party ps[2];
	struct farm_lease_view v = {.config_id = 1, .cm = 1, .n = 2};
	struct farm_lease_stats st;
	struct farm_lease_attr bad = {.self = 9, .lease_ms = 10, .renew_ms = 10};
	struct farm_lease *x = (void *)1;

	for (int i = 0; i < 2; i++)
		start_party(&ps[i], (uint32_t)i + 1, 30);
	for (int i = 0; i < 2; i++) {
		v.m[i].id = ps[i].id;
		v.m[i].inc = ps[i].inc + (i == 1); /* the CM expects another member 2 */
		farm_lease_addr(ps[i].l, v.m[i].addr, sizeof(v.m[i].addr));
	}
	assert_int_equal(farm_lease_set_view(ps[0].l, &v), 0);
	v.m[1].inc = ps[1].inc;
	assert_int_equal(farm_lease_set_view(ps[1].l, &v), 0);
	usleep(200000);
	assert_false(farm_lease_serving(ps[1].l)); /* never granted */
	assert_int_equal(wait_u64(&ps[0].member_exp_ns[2], 2000), 0);

	/* Garbage at the CM's socket: counted, ignored, no crash. */
	struct sockaddr_in sa = {.sin_family = AF_INET};
	char addr[64], junk[100];
	farm_lease_addr(ps[0].l, addr, sizeof(addr));
	*strrchr(addr, ':') = 0;
	inet_pton(AF_INET, addr, &sa.sin_addr);
	farm_lease_addr(ps[0].l, addr, sizeof(addr));
	sa.sin_port = htons((uint16_t)atoi(strrchr(addr, ':') + 1));
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	srand(1234);
	printf("# garbage seed 1234\n");
	for (int i = 0; i < 50; i++) {
		for (size_t k = 0; k < sizeof(junk); k++)
			junk[k] = (char)rand();
		sendto(fd, junk, (size_t)(rand() % (int)sizeof(junk)), 0, (struct sockaddr *)&sa,
		       sizeof(sa));
	}
	close(fd);
	usleep(100000);
	farm_lease_get_stats(ps[0].l, &st);
	assert_true(st.bad >= 40);

	/* Bad arguments. */
	assert_int_equal(farm_lease_start(&bad, &x), -EINVAL); /* renew >= lease */
	bad.renew_ms = 2;
	bad.bind = "not-an-ip";
	assert_int_equal(farm_lease_start(&bad, &x), -EINVAL);
	assert_int_equal(farm_lease_start(NULL, &x), -EINVAL);
	strcpy(v.m[1].addr, "127.0.0.1");
	assert_int_equal(farm_lease_set_view(ps[0].l, &v), -EINVAL);
	strcpy(v.m[1].addr, "127.0.0.1:99999");
	assert_int_equal(farm_lease_set_view(ps[0].l, &v), -EINVAL);
	stop_all(ps, 2);
}

/* Two clusters on one host whose views name each other's sockets (a
 * stale address, a reused port): nothing crosses, nobody is granted. */
static void test_other_cluster(void **state)
{
	(void)state;
	static struct party ps[2];
	struct farm_lease_stats st;

	for (int i = 0; i < 2; i++)
		start_party(&ps[i], (uint32_t)i + 1, 30);
	/* Party 2 is rebuilt with another cluster tag. */
	farm_lease_stop(ps[1].l);
	struct farm_lease_attr a = {.self = 2,
				    .inc = ps[1].inc,
				    .lease_ms = 30,
				    .cluster = 0xdeadbeef,
				    .on_serving = on_serving,
				    .arg = &ps[1]};
	assert_int_equal(farm_lease_start(&a, &ps[1].l), 0);
	set_views(ps, 2, 1, 1);
	usleep(200000);
	assert_false(farm_lease_serving(ps[1].l));
	farm_lease_get_stats(ps[0].l, &st);
	assert_int_equal(st.req_recv, 0);
	assert_true(st.bad > 0);
	stop_all(ps, 2);
}

static volatile int spin_stop;

static void *spinner(void *arg)
{
	volatile uint64_t x = 0;

	(void)arg;
	while (!spin_stop)
		x++;
	return NULL;
}

/* Every core busy (twice over), default lease: no expiry, no drop.
 * FARM_LEASE_SOAK_S=SECONDS and FARM_LEASE_MS=MS make it the measurement
 * behind the default (docs/farm.md): the longest wake-up gap seen. */
static void test_no_false_expiry_under_load(void **state)
{
	(void)state;
	static struct party ps[N];
	pthread_t spin[4];
	struct farm_lease_stats st;
	uint64_t max_gap = 0, max_age = 0;
	int rt = 0;
	const char *soak = getenv("FARM_LEASE_SOAK_S"), *lms = getenv("FARM_LEASE_MS");
	unsigned secs = soak ? (unsigned)atoi(soak) : 3;
	uint32_t lease_ms = lms ? (uint32_t)atoi(lms) : FARM_LEASE_DEFAULT_MS;

	for (int i = 0; i < N; i++)
		start_party(&ps[i], (uint32_t)i + 1, lease_ms);
	set_views(ps, N, 1, 1);
	assert_int_equal(wait_serving(ps, N, 2000), 0);
	spin_stop = 0;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&spin[i], NULL, spinner, NULL), 0);
	for (unsigned s = 0; s < secs; s++)
		usleep(1000000);
	spin_stop = 1;
	for (int i = 0; i < 4; i++)
		pthread_join(spin[i], NULL);
	for (int i = 0; i < N; i++) {
		farm_lease_get_stats(ps[i].l, &st);
		if (st.max_gap_ns > max_gap)
			max_gap = st.max_gap_ns;
		if (st.max_grant_age_ns > max_age)
			max_age = st.max_grant_age_ns;
		rt += st.realtime;
		assert_int_equal(st.expiries_seen, 0);
		assert_int_equal(ps[i].drops, 0);
		assert_true(farm_lease_serving(ps[i].l));
	}
	printf("# lease %u ms under 4 spinning threads for %u s: no expiry; longest gap "
	       "between renewals %.2f ms, longest a lease went ungranted %.2f ms (%d of %d "
	       "lease threads SCHED_FIFO)\n",
	       lease_ms, secs, max_gap / 1e6, max_age / 1e6, rt, N);
	stop_all(ps, N);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_grants),	  cmocka_unit_test(test_member_partition),
	    cmocka_unit_test(test_cm_partition),  cmocka_unit_test(test_incarnation_and_garbage),
	    cmocka_unit_test(test_other_cluster), cmocka_unit_test(test_no_false_expiry_under_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
