/* test_farm_config.c - the static cluster config: the file format, its
 * defaults, the round trip through farm_config_format, and every way a
 * config file can be wrong (each refused with the line that is wrong). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include "farm/farm.h"
#include "config.h"

static const char *good =
	"# a comment\n"
	"cluster = demo\n"
	"nic = shm\n"
	"region_size = 4M   # trailing comment\n"
	"regions = 12\n"
	"replicas = 3\n"
	"vnodes = 64\n"
	"\n"
	"member = 1 farm-demo-1\n"
	"member = 2 farm-demo-2\n"
	"   member=3   farm-demo-3   ns3  \n";

static void test_parse_good(void **state)
{
	struct farm_config c;
	char err[256];

	assert_int_equal(farm_config_parse(good, &c, err, sizeof(err)), 0);
	assert_string_equal(c.cluster, "demo");
	assert_string_equal(c.nic, "shm");
	assert_int_equal(c.region_size, 4u << 20);
	assert_int_equal(c.regions, 12);
	assert_int_equal(c.replicas, 3);
	assert_int_equal(c.vnodes, 64);
	assert_int_equal(c.nmembers, 3);
	assert_int_equal(c.members[2].id, 3);
	assert_string_equal(c.members[2].addr, "farm-demo-3");
	assert_string_equal(c.members[2].netns, "ns3");
	assert_string_equal(c.members[0].netns, "");
	assert_int_equal(c.config_id, 1);
	assert_string_equal(c.run_dir, "/run/farm/demo");
}

static void test_defaults(void **state)
{
	struct farm_config c;
	char err[256];

	assert_int_equal(farm_config_parse("member = 7 a\nmember = 9 b\n", &c, err, sizeof(err)),
			 0);
	assert_string_equal(c.cluster, "farm");
	assert_string_equal(c.nic, "shm");
	assert_int_equal(c.region_size, 64u << 20);
	assert_int_equal(c.regions, 8); /* 4 per member */
	assert_int_equal(c.replicas, 3);
	assert_int_equal(farm__config_k(&c), 2); /* capped at the members */
	assert_int_equal(c.vnodes, 64);
	assert_int_equal(farm__config_member(&c, 9), 1);
	assert_int_equal(farm__config_member(&c, 8), -ENOENT);

	/* A config built in memory resolves the same way. */
	struct farm_config m;
	farm_config_defaults(&m);
	m.nmembers = 2;
	m.members[0].id = 7;
	strcpy(m.members[0].addr, "a");
	m.members[1].id = 9;
	strcpy(m.members[1].addr, "b");
	assert_int_equal(farm__config_finish(&m, err, sizeof(err)), 0);
	assert_memory_equal(&m, &c, sizeof(m));
}

static void test_suffixes(void **state)
{
	const struct {
		const char *v;
		uint64_t want;
	} t[] = {{"64K", 64u << 10}, {"65536", 65536}, {"1M", 1u << 20}, {"2MiB", 2u << 20},
		 {"8MB", 8u << 20},  {"1G", 1u << 30},    {"1g", 1u << 30}};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char text[128], err[256];
		struct farm_config c;
		snprintf(text, sizeof(text), "region_size = %s\nmember = 1 x\n", t[i].v);
		assert_int_equal(farm_config_parse(text, &c, err, sizeof(err)), 0);
		assert_int_equal(c.region_size, t[i].want);
	}
}

/* Each bad input: the code, and the line the message must name. */
static void test_bad(void **state)
{
	const struct {
		const char *text;
		int line;
		const char *says;
	} t[] = {
		{"member = 1 a\nbogus = 3\n", 2, "unknown key"},
		{"member = 1 a\nregions = 12x\n", 2, "regions"},
		{"member = 1 a\nregions = -1\n", 2, "regions"},
		{"member = 1 a\nregions = 0\n", 2, "regions"},
		{"member = 1 a\nregions = 99999999999999999999999\n", 2, "regions"},
		{"member = 1 a\nregion_size = 3M\n", 2, "power of two"},
		{"member = 1 a\nregion_size = 1000\n", 2, "power of two"},
		{"member = 1 a\nregion_size = 32K\n", 2, "power of two"},
		{"member = 1 a\nregion_size = 4G\n", 2, "power of two"},
		{"member = 1 a\nregion_size = 4T\n", 2, "region_size"},
		{"member = 1 a\nregion_size =\n", 2, "region_size"},
		{"member = 1 a\nreplicas = 0\n", 2, "replicas"},
		{"member = 1 a\nreplicas = 9\n", 2, "replicas"},
		{"member = 1 a\nvnodes = 0\n", 2, "vnodes"},
		{"member = 1 a\nconfig_id = 0\n", 2, "config_id"},
		{"member = 1 a\nnic = tcp\n", 2, "nic"},
		{"member = 1 a\nnic = xdp:\n", 2, "nic"},
		{"member = 1 a\ncluster = two words\n", 2, "cluster"},
		{"member = 1 a\ncluster = x\ncluster = y\n", 3, "twice"},
		{"member = 1 a\nmember = 1 b\n", 2, "duplicate member id"},
		{"member = 1 a\n\n# c\nmember = 2 a\n", 4, "duplicate member address"},
		{"member = 0 a\n", 1, "id must be > 0"},
		{"member = x a\n", 1, "bad id"},
		{"member = 1\n", 1, "ID ADDRESS"},
		{"member = 1 a ns extra\n", 1, "ID ADDRESS"},
		{"member = 1 a/b\n", 1, "bad address"},
		{"member = 1 a\njust words\n", 2, "key = value"},
		{"cluster = c\nnic = shm\n", 2, "no 'member'"},
		{"", 1, "no 'member'"},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct farm_config c;
		char err[256], want[32];
		int rc = farm_config_parse(t[i].text, &c, err, sizeof(err));
		if (rc != -EINVAL || !strstr(err, t[i].says))
			fail_msg("case %zu (%s): rc %d err '%s'", i, t[i].text, rc, err);
		snprintf(want, sizeof(want), "line %d:", t[i].line);
		if (strncmp(err, want, strlen(want)))
			fail_msg("case %zu: '%s' does not start with '%s'", i, err, want);
	}
	/* NULL err is allowed, and still refuses. */
	struct farm_config c;
	assert_int_equal(farm_config_parse("bogus = 1\n", &c, NULL, 0), -EINVAL);
	assert_int_equal(farm_config_parse(NULL, &c, NULL, 0), -EINVAL);
	/* A tiny err buffer is never overrun. */
	char tiny[8];
	memset(tiny, 'x', sizeof(tiny));
	assert_int_equal(farm_config_parse("bogus = 1\n", &c, tiny, 3), -EINVAL);
	assert_int_equal(strlen(tiny), 2);
	assert_int_equal(tiny[3], 'x');
}

static void test_too_many_members(void **state)
{
	char *text = malloc(8192), err[256];
	size_t at = 0;
	struct farm_config c;

	for (int i = 1; i <= FARM_MAX_MEMBERS + 1; i++)
		at += (size_t)sprintf(text + at, "member = %d n%d\n", i, i);
	assert_int_equal(farm_config_parse(text, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "line 65:"));
	free(text);
}

static void test_format_roundtrip(void **state)
{
	struct farm_config a, b;
	char buf[8192], err[256];
	int n;

	assert_int_equal(farm_config_parse(good, &a, err, sizeof(err)), 0);
	a.config_id = 42;
	n = farm_config_format(&a, buf, sizeof(buf));
	assert_true(n > 0 && (size_t)n == strlen(buf));
	assert_int_equal(farm_config_parse(buf, &b, err, sizeof(err)), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	/* Too small a buffer: -ENOSPC, and the buffer stays terminated. */
	assert_int_equal(farm_config_format(&a, buf, 20), -ENOSPC);
	assert_true(strlen(buf) < 20);
	/* Odd region sizes are written as plain numbers. */
	a.region_size = 3;
	assert_true(farm_config_format(&a, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "region_size = 3\n"));
}

static void test_load(void **state)
{
	char path[] = "/tmp/farm-config-XXXXXX", err[512];
	struct farm_config c;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, good, strlen(good)), (ssize_t)strlen(good));
	close(fd);
	assert_int_equal(farm_config_load(path, &c, err, sizeof(err)), 0);
	assert_int_equal(c.nmembers, 3);
	fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "oops\n", 5), 5);
	close(fd);
	assert_int_equal(farm_config_load(path, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "line 12:"));
	unlink(path);
	assert_int_equal(farm_config_load(path, &c, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, path));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),   cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_suffixes),     cmocka_unit_test(test_bad),
		cmocka_unit_test(test_too_many_members), cmocka_unit_test(test_format_roundtrip),
		cmocka_unit_test(test_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
