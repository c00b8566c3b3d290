/* test_rdma_xdp.c - served rdma over the AF_XDP NIC: the suite of
 * test_rdma_suite.h (correctness with many in flight, three initiators'
 * atomics plus the owner's summing exactly, every protection case touching
 * no byte) between two network namespaces joined by a veth (copy mode), the
 * target in one, the initiators in the other. An interface queue takes one
 * AF_XDP endpoint, so the three initiators of the atomics test use the udp
 * NIC (kernel sockets speak the same frames) against the xdp target.
 * Skipped, with the reason, without root, namespaces or an xdp-enabled
 * build. */
#include "test_rdma_suite.h"

static struct netns_pair pair;
static bool have_pair;
static char uri[2][64], udp_uri[64];
static struct cfg xdp_alloc, xdp_reg, xdp_udp;

static int probe_xdp(void *arg)
{
	struct unet_nic *nic;
	int rc = unet_nic_open(uri[0], &nic);

	if (rc == 0)
		unet_nic_close(nic);
	return rc == 0 ? 0 : -rc;
}

static int group_setup(void **state)
{
	const char *why = netns_unavailable();
	int rc;

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
		return 0;
	}
	xdp_alloc = (struct cfg){
	    .nic = {uri[0], uri[1]},
	    .ip = {pair.ip[0], pair.ip[1]},
	    .ns = {pair.ns[0], pair.ns[1]},
	    .serve = true,
	};
	xdp_reg = xdp_alloc;
	xdp_reg.reg = true;
	snprintf(udp_uri, sizeof(udp_uri), "udp:%s", pair.ip[1]);
	xdp_udp = xdp_alloc;
	xdp_udp.nic[INITIATOR] = udp_uri;
	return 0;
}

static int group_teardown(void **state)
{
	if (have_pair)
		netns_pair_destroy(&pair);
	have_pair = false;
	return 0;
}

static void test_ops(void **state)
{
	if (!have_pair)
		skip();
	suite_ops(&xdp_alloc, false);
}

static void test_atomics(void **state)
{
	if (!have_pair)
		skip();
	suite_atomics(&xdp_udp);
}

static void test_protect_alloc(void **state)
{
	if (!have_pair)
		skip();
	suite_protect(&xdp_alloc);
}

static void test_protect_reg(void **state)
{
	if (!have_pair)
		skip();
	suite_protect(&xdp_reg);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, suite_setup, suite_teardown)
	const struct CMUnitTest tests[] = {
	    T(test_ops),
	    T(test_atomics),
	    T(test_protect_alloc),
	    T(test_protect_reg),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
