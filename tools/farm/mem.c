/*
 * mem.c - poking at the shared address space through one node's admin
 * socket: `farm alloc | read | write | free | bench read`.
 *
 * The CLI is not a node, so it cannot read FaRM memory itself; it asks a
 * node (--node N, default the first member), and the node does the work as
 * an application would, one-sided reads included. Plain output is
 * key=value pairs on one line (alloc prints the bare address, for
 * A=$(farm alloc 64)); --json prints the node's reply as it came.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../farmd/proto.h"
#include "farm_cli.h"

#define CALL_TIMEOUT_MS	 10000
#define BENCH_TIMEOUT_MS 600000

static const char alloc_usage[] =
    "usage: farm alloc SIZE [--near ADDR] [--node N] [--dir RUN_DIR] [--name NAME] [--json]\n"
    "\n"
    "Allocate an object of SIZE payload bytes (1..61440) and print its address\n"
    "0xRRRRRRRROOOOOOOO. --near ADDR asks for ADDR's region (FaRM's locality hint).\n"
    "The node (default: the first) runs the allocation at the region's primary.\n";
static const char read_usage[] =
    "usage: farm read ADDR [--len L] [--raw] [--node N] [--dir RUN_DIR] [--name NAME] [--json]\n"
    "\n"
    "Read the object at ADDR (all of it, or its first L bytes) with a lock-free\n"
    "one-sided read from node N. Prints addr= len= version= primary= hex=, or\n"
    "with --raw the bytes themselves.\n";
static const char write_usage[] =
    "usage: farm write ADDR DATA | --hex HEX  [--node N] [--dir RUN_DIR] [--name NAME] [--json]\n"
    "\n"
    "Write DATA (a string) or HEX (bytes in hex) at the start of the object at\n"
    "ADDR: the primary locks it, installs the bytes with a new version,\n"
    "replicates to the backups and unlocks.\n";
static const char free_usage[] =
    "usage: farm free ADDR [--node N] [--dir RUN_DIR] [--name NAME] [--json]\n"
    "\n"
    "Free the object at ADDR.\n";
static const char bench_usage[] =
    "usage: farm bench read [--size 64] [--count N] [--remote|--local] [--node N]\n"
    "                       [--dir RUN_DIR] [--name NAME] [--json]\n"
    "       farm bench tx ...   (transactions: farm bench tx --help)\n"
    "\n"
    "Inside node N (default the first), read one object of --size bytes --count\n"
    "times (default 1000000), one read at a time from one thread. --remote (the\n"
    "default): an object whose primary is another node, read one-sided; --local:\n"
    "one this node holds. Prints, as measured inside the node: ops_per_sec (all\n"
    "reads over the wall-clock time), chunk_ops_per_sec (the median rate over\n"
    "chunks of 4096 reads: time the node spent descheduled on a busy machine\n"
    "falls out of it) and the per-read latency median and p99.\n";

/* Find the node to talk to and make sure it belongs to the cluster. */
static int pick_node(struct cli *c, const char *node_s, uint32_t *id)
{
	static struct farm_config cfg;
	int rc;

	if (rundir_resolve(c) < 0)
		usage_fail(c, "run directory path too long");
	rc = cluster_load(c, &cfg);
	if (rc)
		return rc;
	if (cfg.nmembers == 0)
		return fail(c, "%s has no members", c->conf_path);
	if (!node_s) {
		*id = cfg.members[0].id;
		return 0;
	}
	*id = (uint32_t)parse_num(c, "--node", node_s, 1, UINT32_MAX);
	for (uint32_t i = 0; i < cfg.nmembers; i++)
		if (cfg.members[i].id == *id)
			return 0;
	usage_fail(c, "--node %u is not a member of cluster '%s' (%u members)", *id, cfg.cluster,
		   cfg.nmembers);
}

/* Send `line` to node `id`; print the raw reply with --json. Returns 0 or
 * the exit code (1) with the error reported. */
static int call(struct cli *c, uint32_t id, const char *line, int timeout_ms, struct json **j)
{
	char err[512], *raw = NULL;
	int rc = admin_query(c->run_dir, id, line, timeout_ms, &raw, j, err, sizeof(err));

	if (rc < 0) {
		if (c->json && raw) {
			puts(raw); /* the node's own error object */
			c->json = false;
		}
		free(raw);
		json_free(*j);
		*j = NULL;
		return fail(c, "%s", err);
	}
	if (c->json)
		puts(raw);
	free(raw);
	return 0;
}

int cmd_alloc(int argc, char **argv)
{
	struct cli c = {.cmd = "alloc", .usage = alloc_usage};
	const char *near = NULL, *node = NULL;
	const struct opt opts[] = {
	    {"near", 0, true, &near, NULL},
	    {"node", 0, true, &node, NULL},
	    {NULL, 0, false, NULL, NULL},
	};
	char *pos[1], line[128];
	struct json *j;
	uint64_t size, a = 0;
	uint32_t id;
	int npos, rc;

	opts_parse(&c, opts, argc, argv, pos, 1, &npos);
	if (npos != 1)
		usage_fail(&c, "SIZE is required");
	size = parse_size(&c, "SIZE", pos[0]);
	if (size < 1 || size > FARM_OBJ_MAX)
		usage_fail(&c, "SIZE must be 1..%u bytes, got %s", FARM_OBJ_MAX, pos[0]);
	if (near)
		a = parse_addr(&c, "--near", near);
	if ((rc = pick_node(&c, node, &id)))
		return rc;
	if (near)
		snprintf(line, sizeof(line), "alloc %llu 0x%016llx", (unsigned long long)size,
			 (unsigned long long)a);
	else
		snprintf(line, sizeof(line), "alloc %llu", (unsigned long long)size);
	if ((rc = call(&c, id, line, CALL_TIMEOUT_MS, &j)))
		return rc;
	if (!c.json)
		printf("%s\n", json_str(j, "addr"));
	json_free(j);
	return 0;
}

int cmd_read(int argc, char **argv)
{
	struct cli c = {.cmd = "read", .usage = read_usage};
	const char *len = NULL, *node = NULL;
	bool raw = false;
	const struct opt opts[] = {
	    {"len", 0, true, &len, NULL},
	    {"node", 0, true, &node, NULL},
	    {"raw", 0, false, NULL, &raw},
	    {NULL, 0, false, NULL, NULL},
	};
	char *pos[1], line[128];
	struct json *j;
	uint64_t a, l = 0;
	uint32_t id;
	int npos, rc;

	opts_parse(&c, opts, argc, argv, pos, 1, &npos);
	if (npos != 1)
		usage_fail(&c, "ADDR is required");
	a = parse_addr(&c, "ADDR", pos[0]);
	if (len) {
		l = parse_size(&c, "--len", len);
		if (l < 1 || l > FARM_OBJ_MAX)
			usage_fail(&c, "--len must be 1..%u, got %s", FARM_OBJ_MAX, len);
	}
	if (raw && c.json)
		usage_fail(&c, "--raw and --json exclude each other");
	if ((rc = pick_node(&c, node, &id)))
		return rc;
	if (len)
		snprintf(line, sizeof(line), "read 0x%016llx %llu", (unsigned long long)a,
			 (unsigned long long)l);
	else
		snprintf(line, sizeof(line), "read 0x%016llx", (unsigned long long)a);
	if ((rc = call(&c, id, line, CALL_TIMEOUT_MS, &j)))
		return rc;
	if (raw) {
		const char *hex = json_str(j, "hex");
		size_t n = hex ? strlen(hex) / 2 : 0;
		unsigned char *buf = malloc(n + 1);
		if (!buf || farm_hex_decode(hex ? hex : "", buf, n) != (long)n) {
			free(buf);
			json_free(j);
			return fail(&c, "node %u sent bad hex", id);
		}
		fwrite(buf, 1, n, stdout);
		free(buf);
	} else if (!c.json) {
		printf("addr=%s len=%llu version=%llu primary=%llu hex=%s\n", json_str(j, "addr"),
		       (unsigned long long)json_u64(j, "len"),
		       (unsigned long long)json_u64(j, "version"),
		       (unsigned long long)json_u64(j, "primary"), json_str(j, "hex"));
	}
	json_free(j);
	return 0;
}

int cmd_write(int argc, char **argv)
{
	struct cli c = {.cmd = "write", .usage = write_usage};
	const char *hex = NULL, *node = NULL;
	const struct opt opts[] = {
	    {"hex", 0, true, &hex, NULL},
	    {"node", 0, true, &node, NULL},
	    {NULL, 0, false, NULL, NULL},
	};
	char *pos[2], *line;
	struct json *j;
	size_t n;
	uint64_t a;
	uint32_t id;
	int npos, rc;

	opts_parse(&c, opts, argc, argv, pos, 2, &npos);
	if (npos < 1)
		usage_fail(&c, "ADDR is required");
	a = parse_addr(&c, "ADDR", pos[0]);
	if ((npos == 2) == (hex != NULL))
		usage_fail(&c, "give either DATA or --hex HEX (exactly one)");
	if (hex) {
		n = strlen(hex);
		if (n == 0 || n % 2 || strspn(hex, "0123456789abcdefABCDEF") != n)
			usage_fail(&c, "--hex needs an even number of hex digits");
		n /= 2;
	} else {
		n = strlen(pos[1]);
		if (n == 0)
			usage_fail(&c, "DATA is empty");
	}
	if (n > FARM_OBJ_MAX)
		usage_fail(&c, "data is %zu bytes; an object holds at most %u", n, FARM_OBJ_MAX);
	if ((rc = pick_node(&c, node, &id)))
		return rc;
	line = malloc(2 * n + 64);
	if (!line)
		return fail(&c, "out of memory");
	int k = sprintf(line, "write 0x%016llx ", (unsigned long long)a);
	if (hex)
		strcpy(line + k, hex);
	else
		farm_hex_encode(pos[1], n, line + k);
	rc = call(&c, id, line, CALL_TIMEOUT_MS, &j);
	free(line);
	if (rc)
		return rc;
	if (!c.json)
		printf("addr=%s len=%llu primary=%llu\n", json_str(j, "addr"),
		       (unsigned long long)json_u64(j, "len"),
		       (unsigned long long)json_u64(j, "primary"));
	json_free(j);
	return 0;
}

int cmd_free(int argc, char **argv)
{
	struct cli c = {.cmd = "free", .usage = free_usage};
	const char *node = NULL;
	const struct opt opts[] = {
	    {"node", 0, true, &node, NULL},
	    {NULL, 0, false, NULL, NULL},
	};
	char *pos[1], line[64];
	struct json *j;
	uint64_t a;
	uint32_t id;
	int npos, rc;

	opts_parse(&c, opts, argc, argv, pos, 1, &npos);
	if (npos != 1)
		usage_fail(&c, "ADDR is required");
	a = parse_addr(&c, "ADDR", pos[0]);
	if ((rc = pick_node(&c, node, &id)))
		return rc;
	snprintf(line, sizeof(line), "free 0x%016llx", (unsigned long long)a);
	if ((rc = call(&c, id, line, CALL_TIMEOUT_MS, &j)))
		return rc;
	if (!c.json)
		printf("freed %s\n", json_str(j, "addr"));
	json_free(j);
	return 0;
}

int cmd_bench(int argc, char **argv)
{
	struct cli c = {.cmd = "bench", .usage = bench_usage};
	const char *size_s = NULL, *count_s = NULL, *node = NULL;
	bool remote = false, local = false;
	const struct opt opts[] = {
	    {"size", 0, true, &size_s, NULL},  {"count", 0, true, &count_s, NULL},
	    {"node", 0, true, &node, NULL},    {"remote", 0, false, NULL, &remote},
	    {"local", 0, false, NULL, &local}, {NULL, 0, false, NULL, NULL},
	};
	char *pos[1], line[128];
	struct json *j;
	uint64_t size = 64, count = 1000000;
	uint32_t id;
	int npos, rc;

	if (argc >= 1 && strcmp(argv[0], "tx") == 0)
		return cmd_bench_tx(argc - 1, argv + 1);
	if (argc >= 1 && strcmp(argv[0], "recovery") == 0)
		return cmd_bench_recovery(argc - 1, argv + 1);
	opts_parse(&c, opts, argc, argv, pos, 1, &npos);
	if (npos != 1 || strcmp(pos[0], "read") != 0)
		usage_fail(&c, "which benchmark? 'read', 'tx' or 'recovery': farm bench read | "
			       "farm bench tx | farm bench recovery");
	if (remote && local)
		usage_fail(&c, "--remote and --local exclude each other");
	if (size_s)
		size = parse_size(&c, "--size", size_s);
	if (size < 1 || size > FARM_OBJ_MAX)
		usage_fail(&c, "--size must be 1..%u bytes", FARM_OBJ_MAX);
	if (count_s)
		count = parse_size(&c, "--count", count_s);
	if (count < 1 || count > 1000000000u)
		usage_fail(&c, "--count must be 1..1000000000");
	if ((rc = pick_node(&c, node, &id)))
		return rc;
	snprintf(line, sizeof(line), "bench read %llu %llu %s", (unsigned long long)size,
		 (unsigned long long)count, local ? "local" : "remote");
	progress(&c, "node %u: reading one %llu B %s object %llu times...", id,
		 (unsigned long long)size, local ? "local" : "remote", (unsigned long long)count);
	if ((rc = call(&c, id, line, BENCH_TIMEOUT_MS, &j)))
		return rc;
	if (!c.json)
		printf("op=read size=%llu where=%s node=%u target=%llu count=%llu seconds=%.3f "
		       "ops_per_sec=%.0f chunk_ops_per_sec=%.0f median_ns=%llu p99_ns=%llu "
		       "retries=%llu\n",
		       (unsigned long long)size, local ? "local" : "remote", id,
		       (unsigned long long)json_u64(j, "target"),
		       (unsigned long long)json_u64(j, "count"), json_num(j, "seconds"),
		       json_num(j, "ops_per_sec"), json_num(j, "chunk_ops_per_sec"),
		       (unsigned long long)json_u64(j, "median_ns"),
		       (unsigned long long)json_u64(j, "p99_ns"),
		       (unsigned long long)json_u64(j, "retries"));
	json_free(j);
	return 0;
}
