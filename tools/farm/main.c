/*
 * main.c - farm, the command-line interface to a FaRM cluster.
 *
 *   farm cluster up|status|down     a local cluster, one farmd per node
 *   farm cluster restart ID         start one member of it again
 *   farm alloc|read|write|free      objects in the shared address space
 *   farm bench read                 one-sided read throughput and latency
 *   farm bench tx                   transactions: TATP or the bank
 *   farm bench recovery             throughput around a kill -9
 *
 * Every command takes --help, --json, --dir and --name; exit codes are
 * 0 success, 1 runtime failure, 2 bad arguments.
 */
#include <stdio.h>
#include <string.h>

#include "farm_cli.h"

static const char usage[] =
    "usage: farm COMMAND [options]            (farm COMMAND --help for details)\n"
    "\n"
    "  cluster up -n N [--nic shm|udp|xdp] [--netns] ...   start a local cluster\n"
    "  cluster status                                     nodes and region map\n"
    "  cluster down                                       stop it\n"
    "  cluster restart ID                                 start member ID again (rejoins)\n"
    "  alloc SIZE [--near ADDR] [--node N]                allocate an object\n"
    "  read ADDR [--len L] [--raw] [--node N]             read an object\n"
    "  write ADDR DATA | --hex HEX [--node N]             write an object\n"
    "  free ADDR [--node N]                               free an object\n"
    "  bench read [--size 64] [--count N] [--remote|--local] [--node N]\n"
    "  bench tx [--workload tatp|bank] [--clients N] [--seconds S]   transactions\n"
    "  bench recovery [--runs N] [--victim primary|cm|ID]   throughput around a kill -9\n"
    "  kv get|put|del|load|scan-stats [--table T] ...      the key-value store\n"
    "\n"
    "Common options: --dir RUN_DIR or --name NAME (which cluster; default\n"
    "'default', in /run/farm/NAME as root), --json (one JSON object on stdout),\n"
    "--help. Addresses are 0xRRRRRRRROOOOOOOO (region, offset).\n"
    "Exit status: 0 success, 1 runtime failure, 2 bad arguments.\n";

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
	    {"cluster", cmd_cluster}, {"alloc", cmd_alloc}, {"read", cmd_read},
	    {"write", cmd_write},     {"free", cmd_free},   {"bench", cmd_bench},
	    {"kv", cmd_kv},
	};

	if (argc < 2) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].fn(argc - 2, argv + 2);
	fprintf(stderr, "farm: unknown command '%s'\n%s", argv[1], usage);
	return EXIT_USAGE;
}
