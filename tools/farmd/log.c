/*
 * log.c - farmd's log: one line per event on stderr, each with a UTC
 * timestamp (milliseconds), the node id and a level, so that the logs of
 * every node of a cluster can be merged with `sort`.
 *
 * One write(2) per line keeps lines whole when several nodes share a file;
 * the log is never on the data path.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "farmd.h"

static uint32_t log_id;
static enum farmd_level log_level = FARMD_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void farmd_log_init(uint32_t id, enum farmd_level level)
{
	log_id = id;
	log_level = level;
}

int farmd_level_parse(const char *s, enum farmd_level *out)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum farmd_level)i;
			return 0;
		}
	}
	return -1;
}

uint64_t farmd_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void farmd_log(enum farmd_level level, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	size_t n;
	int k;

	if (level > log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	k = snprintf(line + n, sizeof(line) - n, ".%03ldZ farmd[%u] %s: ", ts.tv_nsec / 1000000,
		     log_id, level_names[level]);
	n += (size_t)k;
	va_start(ap, fmt);
	k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	n = k < 0 ? n : n + (size_t)k;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2; /* cut, but keep the newline */
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nowhere left to say it */
	}
}
