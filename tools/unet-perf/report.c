/*
 * report.c - how unet-perf results leave the program: aligned tables for
 * people, one JSON object for scripts.
 *
 * The JSON writer streams (no tree is built): it remembers, per nesting
 * level, whether a comma is due, so callers state members in order and
 * cannot produce invalid JSON by forgetting one. NaN and infinities, which
 * JSON cannot spell, become null.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "perf.h"

/* ---- tables ------------------------------------------------------------- */

static const char *size_str(size_t s, char *buf, size_t len)
{
	if (s >= (1u << 20) && s % (1u << 20) == 0)
		snprintf(buf, len, "%zu MiB", s >> 20);
	else if (s >= 1024 && s % 1024 == 0)
		snprintf(buf, len, "%zu KiB", s >> 10);
	else
		snprintf(buf, len, "%zu B", s);
	return buf;
}

static const char *why_not(int rc, const struct perf_result *r)
{
	switch (rc) {
	case -EMSGSIZE:
		return "too big";
	case -ENOTSUP:
		return "-";
	case -ECANCELED:
		return "not run";
	default:
		return "FAILED";
	}
}

enum { COLW = 24 };

/* Plain ns for the numbers people compare; a unit once they stop fitting. */
static const char *ns_str(double ns, char *buf, size_t len)
{
	if (ns < 100000)
		snprintf(buf, len, "%.0f", ns);
	else if (ns < 10e6)
		snprintf(buf, len, "%.0fus", ns / 1e3);
	else
		snprintf(buf, len, "%.1fms", ns / 1e6);
	return buf;
}

static void rule(FILE *f, int nr)
{
	fprintf(f, "---------+");
	for (int i = 0; i < nr; i++)
		fprintf(f, "%.*s%s", COLW + 2, "--------------------------------",
			i + 1 < nr ? "+" : "");
	fputc('\n', f);
}

void perf_print_latency(FILE *f, const struct perf_result *r, int nr)
{
	char b[32];

	fprintf(f, "%8s |", "size");
	for (int i = 0; i < nr; i++)
		fprintf(f, " %*s %s", COLW, r[i].path->title, i + 1 < nr ? "|" : "");
	fputc('\n', f);
	rule(f, nr);
	for (int k = 0; k < r[0].n; k++) {
		fprintf(f, "%8s |", size_str(r[0].pt[k].size, b, sizeof(b)));
		for (int i = 0; i < nr; i++) {
			const struct perf_point *p = &r[i].pt[k];
			char cell[64];
			char m[16], p99[16], p999[16];
			if (p->lat_rc == 0)
				snprintf(cell, sizeof(cell), "%s / %s / %s",
					 ns_str(p->lat.median, m, sizeof(m)),
					 ns_str(p->lat.p99, p99, sizeof(p99)),
					 ns_str(p->lat.p999, p999, sizeof(p999)));
			else
				snprintf(cell, sizeof(cell), "%s", why_not(p->lat_rc, &r[i]));
			fprintf(f, " %*s %s", COLW, cell, i + 1 < nr ? "|" : "");
		}
		fputc('\n', f);
	}
}

void perf_print_bandwidth(FILE *f, const struct perf_result *r, int nr)
{
	const struct perf_result *s[16];
	int ns = 0;
	bool loss = false;
	char b[32];

	for (int i = 0; i < nr && ns < 16; i++)
		if (r[i].path->stream_tx)
			s[ns++] = &r[i];
	if (ns == 0)
		return;
	fprintf(f, "%8s |", "size");
	for (int i = 0; i < ns; i++)
		fprintf(f, " %*s %s", COLW, s[i]->path->title, i + 1 < ns ? "|" : "");
	fputc('\n', f);
	rule(f, ns);
	for (int k = 0; k < s[0]->n; k++) {
		fprintf(f, "%8s |", size_str(s[0]->pt[k].size, b, sizeof(b)));
		for (int i = 0; i < ns; i++) {
			const struct perf_point *p = &s[i]->pt[k];
			char cell[64];
			if (p->bw_rc == 0) {
				bool lost = p->received < p->sent;
				loss |= lost;
				snprintf(cell, sizeof(cell), "%s%.2f (%.2f M/s)", lost ? "*" : "",
					 p->gbps, p->mmsgs);
			} else {
				snprintf(cell, sizeof(cell), "%s", why_not(p->bw_rc, s[i]));
			}
			fprintf(f, " %*s %s", COLW, cell, i + 1 < ns ? "|" : "");
		}
		fputc('\n', f);
	}
	if (!loss)
		return;
	fprintf(f, "  * messages lost (goodput shown):");
	for (int i = 0; i < ns; i++)
		for (int k = 0; k < s[i]->n; k++) {
			const struct perf_point *p = &s[i]->pt[k];
			if (p->bw_rc == 0 && p->received < p->sent)
				fprintf(f, " %s %s %.1f%%;", s[i]->path->key,
					size_str(p->size, b, sizeof(b)),
					100.0 * (double)(p->sent - p->received) / (double)p->sent);
		}
	fputc('\n', f);
}

const struct perf_point *perf_find_point(const struct perf_result *r, size_t size)
{
	for (int k = 0; k < r->n; k++)
		if (r->pt[k].size == size)
			return &r->pt[k];
	return NULL;
}

/* ---- JSON ------------------------------------------------------------- */

static void put_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void member(struct perf_json *j, const char *key)
{
	if (!j->first[j->depth])
		fputc(',', j->f);
	j->first[j->depth] = false;
	if (key) {
		put_string(j->f, key);
		fputc(':', j->f);
	}
}

static void open_(struct perf_json *j, const char *key, char kind)
{
	member(j, key);
	fputc(kind, j->f);
	if (j->depth < 15)
		j->depth++;
	j->kind[j->depth] = kind;
	j->first[j->depth] = true;
}

void perf_json_begin(struct perf_json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
	j->first[0] = true;
	open_(j, NULL, '{');
}

void perf_json_obj(struct perf_json *j, const char *key)
{
	open_(j, key, '{');
}

void perf_json_arr(struct perf_json *j, const char *key)
{
	open_(j, key, '[');
}

void perf_json_close(struct perf_json *j)
{
	if (j->depth == 0)
		return;
	fputc(j->kind[j->depth] == '[' ? ']' : '}', j->f);
	j->depth--;
}

void perf_json_end(struct perf_json *j)
{
	while (j->depth > 0)
		perf_json_close(j);
	fputc('\n', j->f);
	fflush(j->f);
}

void perf_json_num(struct perf_json *j, const char *key, double v)
{
	member(j, key);
	if (isfinite(v))
		fprintf(j->f, "%.6g", v);
	else
		fputs("null", j->f);
}

void perf_json_int(struct perf_json *j, const char *key, int64_t v)
{
	member(j, key);
	fprintf(j->f, "%lld", (long long)v);
}

void perf_json_str(struct perf_json *j, const char *key, const char *v)
{
	member(j, key);
	put_string(j->f, v);
}

void perf_json_bool(struct perf_json *j, const char *key, bool v)
{
	member(j, key);
	fputs(v ? "true" : "false", j->f);
}

void perf_json_null(struct perf_json *j, const char *key)
{
	member(j, key);
	fputs("null", j->f);
}

static void point_status(struct perf_json *j, int rc)
{
	if (rc == -EMSGSIZE)
		perf_json_str(j, "skipped", "larger than the path's largest message");
	else if (rc == -ECANCELED)
		perf_json_str(j, "skipped", "not run: the path failed earlier");
	else
		perf_json_str(j, "error", strerror(-rc));
}

void perf_json_results(struct perf_json *j, const struct perf_result *r, int nr)
{
	perf_json_obj(j, "latency");
	for (int i = 0; i < nr; i++) {
		perf_json_arr(j, r[i].path->key);
		for (int k = 0; k < r[i].n; k++) {
			const struct perf_point *p = &r[i].pt[k];
			perf_json_obj(j, NULL);
			perf_json_int(j, "size", (int64_t)p->size);
			if (p->lat_rc == 0) {
				perf_json_num(j, "median_ns", p->lat.median);
				perf_json_num(j, "p99_ns", p->lat.p99);
				perf_json_num(j, "p999_ns", p->lat.p999);
				perf_json_num(j, "min_ns", p->lat.min);
				perf_json_num(j, "mean_ns", p->lat.mean);
				perf_json_num(j, "max_ns", p->lat.max);
				perf_json_int(j, "samples", p->lat.n);
			} else {
				point_status(j, p->lat_rc);
			}
			perf_json_close(j);
		}
		perf_json_close(j);
	}
	perf_json_close(j);
	perf_json_obj(j, "bandwidth");
	for (int i = 0; i < nr; i++) {
		if (!r[i].path->stream_tx)
			continue;
		perf_json_arr(j, r[i].path->key);
		for (int k = 0; k < r[i].n; k++) {
			const struct perf_point *p = &r[i].pt[k];
			perf_json_obj(j, NULL);
			perf_json_int(j, "size", (int64_t)p->size);
			if (p->bw_rc == 0) {
				perf_json_num(j, "gbps", p->gbps);
				perf_json_num(j, "mmsgs_per_s", p->mmsgs);
				perf_json_int(j, "sent", (int64_t)p->sent);
				perf_json_int(j, "received", (int64_t)p->received);
				perf_json_num(j, "seconds", p->seconds);
			} else {
				point_status(j, p->bw_rc);
			}
			perf_json_close(j);
		}
		perf_json_close(j);
	}
	perf_json_close(j);
}
