/* test_msg_xdp.c - the msg layer over the AF_XDP NIC: random-size message
 * streams both ways and pipelined request/reply between two network
 * namespaces joined by a veth (copy mode), with every byte checked. Skipped
 * (with the reason) without root, namespaces or an xdp-enabled build. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "msg_common.h"

static struct netns_pair pair;
static bool have_pair;
static char uri[2][64];

static int probe_xdp(void *arg)
{
	struct unet_nic *nic;
	int rc;

	(void)arg;
	rc = unet_nic_open(uri[0], &nic);
	if (rc == 0)
		unet_nic_close(nic);
	return rc == 0 ? 0 : -rc;
}

static int setup(void **state)
{
	const char *why = netns_unavailable();
	int rc;

	(void)state;
	if (why) {
		printf("skipped: %s\n", why);
		return 0;
	}
	rc = netns_pair_create(&pair, NULL);
	if (rc < 0) {
		printf("skipped: cannot create namespaces: %s\n", strerror(-rc));
		return 0;
	}
	have_pair = true;
	for (int i = 0; i < 2; i++)
		snprintf(uri[i], sizeof(uri[i]), "xdp:%s", pair.dev[i]);
	rc = netns_run(pair.ns[0], probe_xdp, NULL, 10000);
	if (rc != 0) {
		printf("skipped: xdp NIC unavailable here: %s\n", strerror(rc));
		netns_pair_destroy(&pair);
		have_pair = false;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (have_pair)
		netns_pair_destroy(&pair);
	have_pair = false;
	return 0;
}

static struct mp_cfg xdp_cfg(uint32_t seed)
{
	struct mp_cfg cfg;

	memset(&cfg, 0, sizeof(cfg));
	for (int i = 0; i < 2; i++) {
		cfg.uri[i] = uri[i];
		cfg.addr[i] = pair.ip[i];
		cfg.netns[i] = pair.ns[i];
	}
	cfg.ea.seg_size = 4u << 20;
	cfg.seed = seed;
	return cfg;
}

static uint32_t seed_now(void)
{
	return (uint32_t)proc_now_ms() ^ (uint32_t)getpid() << 8;
}

static void test_xdp_stream(void **state)
{
	struct mp_stream p = {.n = 150, .max = UNET_MSG_MAX};
	struct mp_shared *sh;
	struct mp_cfg cfg;

	(void)state;
	if (!have_pair)
		skip();
	cfg = xdp_cfg(seed_now());
	sh = proc_shared(sizeof(*sh));
	assert_non_null(sh);
	cfg.role[0] = cfg.role[1] = mp_role_stream;
	cfg.arg = &p;
	print_message("seed %u\n", cfg.seed);
	uint64_t t0 = proc_now_ms();
	assert_int_equal(mp_run(&cfg, sh, NULL), 0);
	assert_int_equal(sh->count[0], p.n);
	assert_int_equal(sh->count[1], p.n);
	print_message(
	    "%llu ms; retransmitted %llu/%llu, timeouts %llu/%llu, U-Net drops %llu/%llu\n",
	    (unsigned long long)(proc_now_ms() - t0), (unsigned long long)sh->stat[0][0],
	    (unsigned long long)sh->stat[1][0], (unsigned long long)sh->stat[0][4],
	    (unsigned long long)sh->stat[1][4], (unsigned long long)sh->stat[0][6],
	    (unsigned long long)sh->stat[1][6]);
	assert_int_equal(sh->stat[0][1], 0);
	assert_int_equal(sh->stat[1][1], 0);
	proc_unshare(sh, sizeof(*sh));
}

static void test_xdp_reqrep(void **state)
{
	struct mp_rr p = {.n = 300, .depth = 16, .max_req = 64u << 10, .max_rep = 256u << 10};
	struct mp_shared *sh;
	struct mp_cfg cfg;

	(void)state;
	if (!have_pair)
		skip();
	cfg = xdp_cfg(seed_now());
	sh = proc_shared(sizeof(*sh));
	assert_non_null(sh);
	cfg.role[0] = mp_role_client;
	cfg.role[1] = mp_role_server;
	cfg.arg = &p;
	print_message("seed %u\n", cfg.seed);
	assert_int_equal(mp_run(&cfg, sh, NULL), 0);
	assert_int_equal(sh->count[1], p.n);
	proc_unshare(sh, sizeof(*sh));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_xdp_stream),
	    cmocka_unit_test(test_xdp_reqrep),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
