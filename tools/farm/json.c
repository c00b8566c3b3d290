/*
 * json.c - just enough JSON to read farmd's replies: objects, arrays,
 * strings (with \" \\ \/ \b \f \n \r \t \uXXXX below 0x80), numbers, true,
 * false, null. A parse builds a small tree that json_free() releases.
 *
 * The CLI reads farmd's JSON rather than a second, plain protocol so that
 * there is one reply format, the one `--json` prints unchanged.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "farm_cli.h"

#define MAX_DEPTH 32

struct parser {
	const char *s;
	int depth;
};

static void skip_ws(struct parser *p)
{
	while (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')
		p->s++;
}

static struct json *parse_value(struct parser *p);

static char *parse_string(struct parser *p)
{
	size_t cap = 16, n = 0;
	char *out = malloc(cap);

	if (!out || *p->s != '"')
		goto bad;
	p->s++;
	while (*p->s && *p->s != '"') {
		char c = *p->s++;
		if (c == '\\') {
			c = *p->s++;
			switch (c) {
			case '"':
			case '\\':
			case '/':
				break;
			case 'b':
				c = '\b';
				break;
			case 'f':
				c = '\f';
				break;
			case 'n':
				c = '\n';
				break;
			case 'r':
				c = '\r';
				break;
			case 't':
				c = '\t';
				break;
			case 'u': {
				unsigned v = 0;
				for (int i = 0; i < 4; i++) {
					if (!isxdigit((unsigned char)p->s[i]))
						goto bad;
					v = v * 16 +
					    (unsigned)(isdigit((unsigned char)p->s[i])
							   ? p->s[i] - '0'
							   : (tolower((unsigned char)p->s[i]) -
							      'a' + 10));
				}
				p->s += 4;
				c = v < 0x80 ? (char)v : '?';
				break;
			}
			default:
				goto bad;
			}
		}
		if (n + 2 > cap) {
			char *q = realloc(out, cap *= 2);
			if (!q)
				goto bad;
			out = q;
		}
		out[n++] = c;
	}
	if (*p->s != '"')
		goto bad;
	p->s++;
	out[n] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

static struct json *node_new(enum json_type t)
{
	struct json *j = calloc(1, sizeof(*j));

	if (j)
		j->type = t;
	return j;
}

static int add_kid(struct json *j, char *key, struct json *kid)
{
	if (j->n % 8 == 0) {
		struct json **k = realloc(j->kids, (j->n + 8) * sizeof(*k));
		char **ks = realloc(j->keys, (j->n + 8) * sizeof(*ks));
		if (k)
			j->kids = k;
		if (ks)
			j->keys = ks;
		if (!k || !ks)
			return -1;
	}
	j->kids[j->n] = kid;
	j->keys[j->n] = key;
	j->n++;
	return 0;
}

static struct json *parse_container(struct parser *p, bool object)
{
	struct json *j = node_new(object ? JSON_OBJECT : JSON_ARRAY);
	char close = object ? '}' : ']';

	if (!j || ++p->depth > MAX_DEPTH)
		goto bad;
	p->s++;
	skip_ws(p);
	if (*p->s == close) {
		p->s++;
		p->depth--;
		return j;
	}
	for (;;) {
		char *key = NULL;
		struct json *v;
		skip_ws(p);
		if (object) {
			key = parse_string(p);
			skip_ws(p);
			if (!key || *p->s != ':') {
				free(key);
				goto bad;
			}
			p->s++;
		}
		v = parse_value(p);
		if (!v || add_kid(j, key, v) < 0) {
			free(key);
			json_free(v);
			goto bad;
		}
		skip_ws(p);
		if (*p->s == ',') {
			p->s++;
			continue;
		}
		if (*p->s != close)
			goto bad;
		p->s++;
		p->depth--;
		return j;
	}
bad:
	json_free(j);
	return NULL;
}

static struct json *parse_value(struct parser *p)
{
	struct json *j;

	skip_ws(p);
	if (*p->s == '{' || *p->s == '[')
		return parse_container(p, *p->s == '{');
	if (*p->s == '"') {
		char *s = parse_string(p);
		if (!s || !(j = node_new(JSON_STRING))) {
			free(s);
			return NULL;
		}
		j->str = s;
		return j;
	}
	if (strncmp(p->s, "true", 4) == 0 || strncmp(p->s, "false", 5) == 0) {
		if (!(j = node_new(JSON_BOOL)))
			return NULL;
		j->boolean = *p->s == 't';
		p->s += j->boolean ? 4 : 5;
		return j;
	}
	if (strncmp(p->s, "null", 4) == 0) {
		p->s += 4;
		return node_new(JSON_NULL);
	}
	if (*p->s == '-' || isdigit((unsigned char)*p->s)) {
		char *end;
		if (!(j = node_new(JSON_NUMBER)))
			return NULL;
		j->num = strtod(p->s, &end);
		if (end == p->s) {
			free(j);
			return NULL;
		}
		/* Integers keep all 64 bits (versions, config ids). */
		j->u64 = *p->s == '-' ? 0 : strtoull(p->s, NULL, 10);
		p->s = end;
		return j;
	}
	return NULL;
}

struct json *json_parse(const char *text)
{
	struct parser p = {.s = text};
	struct json *j = parse_value(&p);

	skip_ws(&p);
	if (j && *p.s) {
		json_free(j);
		return NULL;
	}
	return j;
}

void json_free(struct json *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->n; i++) {
		json_free(j->kids[i]);
		if (j->keys)
			free(j->keys[i]);
	}
	free(j->kids);
	free(j->keys);
	free(j->str);
	free(j);
}

const struct json *json_get(const struct json *j, const char *key)
{
	if (!j || j->type != JSON_OBJECT)
		return NULL;
	for (size_t i = 0; i < j->n; i++)
		if (strcmp(j->keys[i], key) == 0)
			return j->kids[i];
	return NULL;
}

const char *json_str(const struct json *j, const char *key)
{
	const struct json *v = json_get(j, key);

	return v && v->type == JSON_STRING ? v->str : NULL;
}

uint64_t json_u64(const struct json *j, const char *key)
{
	const struct json *v = json_get(j, key);

	return v && v->type == JSON_NUMBER ? v->u64 : 0;
}

double json_num(const struct json *j, const char *key)
{
	const struct json *v = json_get(j, key);

	return v && v->type == JSON_NUMBER ? v->num : 0;
}

bool json_true(const struct json *j, const char *key)
{
	const struct json *v = json_get(j, key);

	return v && v->type == JSON_BOOL && v->boolean;
}
