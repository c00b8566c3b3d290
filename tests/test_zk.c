/* test_zk.c - the ZooKeeper wrapper (src/farm/zk.h) against a real
 * standalone server started by the test (tests/helpers/zk_server.h):
 * create/get/set/delete with versions, the conditional set that loses a
 * race (-ESTALE), ephemeral znodes vanishing with their session, sequential
 * names in order, watches, bad arguments, a server that is not there
 * (-ETIMEDOUT, bounded), and a server restart the session survives.
 * Skipped, with the reason, when libfarm has no ZooKeeper or no server can
 * be run here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <cmocka.h>

#include "helpers/proc.h"
#include "helpers/zk_server.h"
#include "zk.h"

static struct zk_server srv;
static const char *skip_reason;

struct evlog {
	int n[8];
	char last[FARM_ZK_PATH_MAX];
};

static void on_event(void *arg, enum farm_zk_event ev, const char *path)
{
	struct evlog *l = arg;

	if ((int)ev >= 0 && ev < 8)
		__atomic_add_fetch(&l->n[ev], 1, __ATOMIC_RELEASE);
	if (path[0])
		snprintf(l->last, sizeof(l->last), "%s", path);
}

static int wait_ev(struct evlog *l, enum farm_zk_event ev, int want, int ms)
{
	uint64_t end = proc_now_ms() + (uint64_t)ms;

	while (__atomic_load_n(&l->n[ev], __ATOMIC_ACQUIRE) < want) {
		if (proc_now_ms() > end)
			return -ETIMEDOUT;
		usleep(2000);
	}
	return 0;
}

static int setup(void **state)
{
	(void)state;
	return zk_server_setup(&srv, &skip_reason);
}

static int teardown(void **state)
{
	(void)state;
	zk_server_destroy(&srv);
	return 0;
}

#define SKIP_IF_NO_ZK()                                                                            \
	do {                                                                                       \
		if (skip_reason) {                                                                 \
			printf("# skipped: %s\n", skip_reason);                                    \
			skip();                                                                    \
		}                                                                                  \
	} while (0)

static struct farm_zk *open_zk(struct evlog *l, int session_ms)
{
	struct farm_zk_attr a = {.session_ms = session_ms,
				 .connect_ms = 10000,
				 .on_event = l ? on_event : NULL,
				 .arg = l};
	struct farm_zk *z = NULL;

	assert_int_equal(farm_zk_open(srv.hosts, &a, &z), 0);
	assert_non_null(z);
	assert_true(farm_zk_connected(z));
	return z;
}

static void test_basics(void **state)
{
	(void)state;
	SKIP_IF_NO_ZK();
	struct farm_zk *z = open_zk(NULL, 4000);
	char buf[64];
	size_t len;
	int32_t v, v2;

	assert_int_equal(farm_zk_mkdirs(z, "/t/basics/a"), 0);
	assert_int_equal(farm_zk_mkdirs(z, "/t/basics/a"), 0); /* idempotent */
	assert_int_equal(farm_zk_create(z, "/t/basics/a/x", "hello", 5, 0, NULL, 0), 0);
	assert_int_equal(farm_zk_create(z, "/t/basics/a/x", "again", 5, 0, NULL, 0), -EEXIST);
	len = sizeof(buf);
	assert_int_equal(farm_zk_get(z, "/t/basics/a/x", false, buf, &len, &v), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(buf, "hello", 5);
	/* Conditional set: the first with the version read wins, the second
	 * (same old version) loses with -ESTALE. */
	assert_int_equal(farm_zk_set(z, "/t/basics/a/x", "world!", 6, v, &v2), 0);
	assert_int_equal(v2, v + 1);
	assert_int_equal(farm_zk_set(z, "/t/basics/a/x", "late", 4, v, NULL), -ESTALE);
	len = sizeof(buf);
	assert_int_equal(farm_zk_get(z, "/t/basics/a/x", false, buf, &len, &v), 0);
	assert_int_equal(len, 6);
	assert_memory_equal(buf, "world!", 6);
	/* Too small a buffer says how much there is. */
	len = 3;
	assert_int_equal(farm_zk_get(z, "/t/basics/a/x", false, buf, &len, NULL), -EMSGSIZE);
	assert_int_equal(len, 6);
	assert_int_equal(farm_zk_exists(z, "/t/basics/a/x", false), 0);
	assert_int_equal(farm_zk_exists(z, "/t/basics/a/nope", false), -ENOENT);
	assert_int_equal(farm_zk_delete(z, "/t/basics/a", -1), -ENOTEMPTY);
	assert_int_equal(farm_zk_delete(z, "/t/basics/a/x", v + 5), -ESTALE);
	assert_int_equal(farm_zk_delete(z, "/t/basics/a/x", v), 0);
	len = sizeof(buf);
	assert_int_equal(farm_zk_get(z, "/t/basics/a/x", false, buf, &len, NULL), -ENOENT);
	/* Bad arguments are refused before the server sees them. */
	assert_int_equal(farm_zk_create(z, "relative", NULL, 0, 0, NULL, 0), -EINVAL);
	assert_int_equal(farm_zk_create(z, "/t/trailing/", NULL, 0, 0, NULL, 0), -EINVAL);
	assert_int_equal(farm_zk_create(z, "/t/x", NULL, 0, 99, NULL, 0), -EINVAL);
	assert_int_equal(farm_zk_get(z, "/t", false, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(farm_zk_get(NULL, "/t", false, buf, &len, NULL), -EINVAL);
	farm_zk_close(z);
}

static void test_ephemeral_sequence(void **state)
{
	(void)state;
	SKIP_IF_NO_ZK();
	struct farm_zk *a = open_zk(NULL, 4000), *b = open_zk(NULL, 4000);
	char made[4][FARM_ZK_PATH_MAX], kids[8][FARM_ZK_PATH_MAX];
	int n;

	assert_int_equal(farm_zk_mkdirs(a, "/t/seq"), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(farm_zk_create(i % 2 ? b : a, "/t/seq/n_", "x", 1,
						FARM_ZK_EPHEMERAL | FARM_ZK_SEQUENCE, made[i],
						sizeof(made[i])),
				 0);
	for (int i = 1; i < 4; i++)
		assert_true(strcmp(made[i - 1], made[i]) < 0); /* creation order */
	n = farm_zk_children(a, "/t/seq", false, kids, 8);
	assert_int_equal(n, 4);
	for (int i = 0; i < 4; i++)
		assert_string_equal(kids[i], strrchr(made[i], '/') + 1);
	assert_int_equal(farm_zk_children(a, "/t/seq", false, kids, 2), -E2BIG);
	/* b's session ends: its ephemerals go at once (a clean close). */
	farm_zk_close(b);
	n = farm_zk_children(a, "/t/seq", false, kids, 8);
	assert_int_equal(n, 2);
	assert_string_equal(kids[0], strrchr(made[0], '/') + 1);
	assert_string_equal(kids[1], strrchr(made[2], '/') + 1);
	farm_zk_close(a);
}

static void test_watches(void **state)
{
	(void)state;
	SKIP_IF_NO_ZK();
	static struct evlog l;
	struct farm_zk *w = open_zk(&l, 4000), *o = open_zk(NULL, 4000);
	char buf[16], kids[4][FARM_ZK_PATH_MAX];
	size_t len = sizeof(buf);

	assert_int_equal(farm_zk_mkdirs(o, "/t/watch"), 0);
	assert_int_equal(farm_zk_create(o, "/t/watch/c", "1", 1, 0, NULL, 0), 0);
	assert_int_equal(farm_zk_get(w, "/t/watch/c", true, buf, &len, NULL), 0);
	assert_int_equal(farm_zk_children(w, "/t/watch", true, kids, 4), 1);
	assert_int_equal(farm_zk_exists(w, "/t/watch/later", true), -ENOENT);
	assert_int_equal(farm_zk_set(o, "/t/watch/c", "2", 1, -1, NULL), 0);
	assert_int_equal(wait_ev(&l, FARM_ZK_EV_CHANGED, 1, 5000), 0);
	assert_int_equal(farm_zk_create(o, "/t/watch/later", NULL, 0, 0, NULL, 0), 0);
	assert_int_equal(wait_ev(&l, FARM_ZK_EV_CREATED, 1, 5000), 0);
	assert_int_equal(wait_ev(&l, FARM_ZK_EV_CHILD, 1, 5000), 0);
	/* A watch fires once: a second change without re-arming is silent. */
	assert_int_equal(farm_zk_set(o, "/t/watch/c", "3", 1, -1, NULL), 0);
	usleep(200000);
	assert_int_equal(__atomic_load_n(&l.n[FARM_ZK_EV_CHANGED], __ATOMIC_ACQUIRE), 1);
	farm_zk_close(o);
	farm_zk_close(w);
}

static void test_no_server(void **state)
{
	(void)state;
	SKIP_IF_NO_ZK();
	struct farm_zk_attr a = {.session_ms = 2000, .connect_ms = 400};
	struct farm_zk *z = (void *)1;
	uint64_t t0 = proc_now_ms();
	char hosts[64];

	/* A port where nothing listens: the server's own port + 1 is as good
	 * a guess as any free one; bounded either way. */
	snprintf(hosts, sizeof(hosts), "127.0.0.1:%d", srv.port == 65535 ? 1 : srv.port + 1);
	int rc = farm_zk_open(hosts, &a, &z);
	assert_true(rc == -ETIMEDOUT || rc == 0);
	if (rc == 0) {
		farm_zk_close(z); /* someone listens there: nothing to show */
		return;
	}
	assert_null(z);
	assert_true(proc_now_ms() - t0 < 3000);
	assert_int_equal(farm_zk_open("", &a, &z), -EINVAL);
	assert_int_equal(farm_zk_open(NULL, &a, &z), -EINVAL);
	printf("# connect to nothing gave up after %llu ms\n",
	       (unsigned long long)(proc_now_ms() - t0));
}

static void test_server_restart(void **state)
{
	(void)state;
	SKIP_IF_NO_ZK();
	static struct evlog l;
	struct farm_zk *z = open_zk(&l, 4000);
	char buf[16];
	size_t len = sizeof(buf);
	uint64_t t0;

	assert_int_equal(farm_zk_mkdirs(z, "/t/restart"), 0);
	assert_int_equal(farm_zk_create(z, "/t/restart/eph", "e", 1, FARM_ZK_EPHEMERAL, NULL, 0),
			 0);
	zk_server_stop(&srv);
	assert_int_equal(wait_ev(&l, FARM_ZK_EV_DISCONNECTED, 1, 5000), 0);
	assert_false(farm_zk_connected(z));
	/* While down: calls fail, bounded, with a connection error. */
	t0 = proc_now_ms();
	int rc = farm_zk_get(z, "/t/restart/eph", false, buf, &len, NULL);
	assert_true(rc == -ECONNRESET || rc == -ETIMEDOUT);
	assert_true(proc_now_ms() - t0 < 5000);
	assert_int_equal(zk_server_restart(&srv, 30000), 0);
	t0 = proc_now_ms();
	assert_int_equal(wait_ev(&l, FARM_ZK_EV_CONNECTED, 2, 10000), 0);
	printf("# reconnected %llu ms after the server answered\n",
	       (unsigned long long)(proc_now_ms() - t0));
	/* Same session: the ephemeral is still there. */
	len = sizeof(buf);
	assert_int_equal(farm_zk_get(z, "/t/restart/eph", false, buf, &len, NULL), 0);
	assert_false(farm_zk_expired(z));
	farm_zk_close(z);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_basics),	   cmocka_unit_test(test_ephemeral_sequence),
	    cmocka_unit_test(test_watches),	   cmocka_unit_test(test_no_server),
	    cmocka_unit_test(test_server_restart),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
