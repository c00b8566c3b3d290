/* test_rdma_served.c - operations the target's progress loop serves: over
 * the udp NIC on loopback (regions from unet_mr_alloc and unet_mr_reg),
 * and over shm with unet_mr_reg memory or without an RDMA pool. The same
 * suite as the one-sided path (test_rdma_suite.h): correctness with many
 * in flight and multi-chunk transfers, three initiators' atomics plus the
 * owner's summing exactly, every protection case touching no byte. Plus
 * what only the served path has: a target that stops serving makes
 * operations time out, a target that dies makes them fail. */
#include "test_rdma_suite.h"

static const struct cfg udp_alloc = {.nic = {"udp:127.0.0.1"}, .serve = true};
static const struct cfg udp_reg = {.nic = {"udp:127.0.0.1"}, .reg = true, .serve = true};
static const struct cfg shm_reg = {.nic = {"shm"}, .pool = SUITE_POOL, .reg = true, .serve = true};
static const struct cfg shm_nopool = {.nic = {"shm"}, .serve = true};

#define CASE(cfgname)                                                                              \
	static void test_ops_##cfgname(void **state)                                               \
	{                                                                                          \
		suite_ops(&cfgname, false);                                                        \
	}                                                                                          \
	static void test_atomics_##cfgname(void **state)                                           \
	{                                                                                          \
		suite_atomics(&cfgname);                                                           \
	}                                                                                          \
	static void test_protect_##cfgname(void **state)                                           \
	{                                                                                          \
		suite_protect(&cfgname);                                                           \
	}

CASE(udp_alloc)
CASE(udp_reg)
CASE(shm_reg)
CASE(shm_nopool)

/* A served target that stops serving (SIGSTOP): operations time out with
 * -ETIMEDOUT after timeout_ms; once it dies they fail at once. */
static void test_stopped_target(void **state)
{
	const struct cfg *c = &shm_reg;
	struct rnode n;
	pid_t pid = proc_fork(ops_target, (void *)c);
	uint8_t buf[64];

	assert_true(pid > 0);
	assert_int_equal(node_up(c, INITIATOR, &n, sh->iaddr[0], &sh->i_open[0], 0,
				 &(struct unet_rdma_attr){.timeout_ms = 300}),
			 0);
	int ch = node_connect(c, TARGET, &n, sh->taddr, &sh->t_open);
	assert_true(ch >= 0);
	assert_int_equal(proc_wait_u32(&sh->ready, 1, 20000), 0);
	assert_int_equal(rread(n.r, (unsigned)ch, sh->key, 0, buf, 64), 0);
	assert_int_equal(kill(pid, SIGSTOP), 0);
	uint64_t t0 = proc_now_ms();
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(rread(n.r, (unsigned)ch, sh->key, 0, buf, 64), -ETIMEDOUT);
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0x5a);
	assert_true(proc_now_ms() - t0 >= 250);
	proc_kill(pid);
	int st = 0;
	for (int i = 0; i < 100; i++) {
		st = rread(n.r, (unsigned)ch, sh->key, 0, buf, 64);
		if (st == -ECONNRESET)
			break;
		/* While the target was stopped, msg may have declared the
		 * channel dead by its own timeout (dead_ms: a loaded machine
		 * stretches the stop); a failed channel stays failed, and
		 * says so. */
		if (st == -ETIMEDOUT && unet_msg_status(n.mep, (unsigned)ch) == -ETIMEDOUT) {
			printf("# channel failed by msg's timeout before the kill\n");
			st = -ECONNRESET;
			break;
		}
		unet_progress(n.ep);
	}
	assert_int_equal(st, -ECONNRESET);
	rnode_close(&n);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, suite_setup, suite_teardown)
	const struct CMUnitTest tests[] = {
	    T(test_ops_udp_alloc),   T(test_ops_udp_reg),	 T(test_ops_shm_reg),
	    T(test_ops_shm_nopool),  T(test_atomics_udp_alloc),	 T(test_atomics_udp_reg),
	    T(test_atomics_shm_reg), T(test_atomics_shm_nopool), T(test_protect_udp_alloc),
	    T(test_protect_udp_reg), T(test_protect_shm_reg),	 T(test_protect_shm_nopool),
	    T(test_stopped_target),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
