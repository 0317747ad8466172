/*
 * out.c - the commands' output (see out.h): tables and "key: value" lines
 * for people, JSON documents through jansson for --json. The commands
 * build their JSON values with json_pack and hand them here; jansson
 * escapes and lays them out (JSON_INDENT(2), key order as set). The one
 * thing jansson cannot do is print a document before all of it exists, so
 * out_stream prints the members of a streamed document one by one, each
 * laid out by jansson and shifted right by its depth: the same bytes as
 * the whole document printed at once.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "err.h"
#include "out.h"

/* How every document is laid out. */
#define OUT_JSON_FLAGS (JSON_INDENT(2) | JSON_ENCODE_ANY)

/* ------------------------------------------------------------------ */
/* For people                                                           */

const char *
out_time(int64_t t, char *buf, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (t == 0 || gmtime_r(&tt, &tm) == NULL) {
		snprintf(buf, len, "-");
		return buf;
	}
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

const char *
out_enum(const ProtobufCEnumDescriptor *d, int v, const char *prefix,
    char *buf, size_t len)
{
	const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d,
	    v);
	const char *s;
	size_t i;

	if (ev == NULL) {
		snprintf(buf, len, "?");
		return buf;
	}
	s = ev->name;
	if (prefix && strncmp(s, prefix, strlen(prefix)) == 0)
		s += strlen(prefix);
	for (i = 0; s[i] && i + 1 < len; i++)
		buf[i] = s[i] == '_' ? '-' : (char)tolower((unsigned char)s[i]);
	buf[i] = '\0';
	return buf;
}

void
out_kv(FILE *f, const char *key, const char *fmt, ...)
{
	va_list ap;
	char k[64], v[4096];

	va_start(ap, fmt);
	vsnprintf(v, sizeof v, fmt, ap);
	va_end(ap);
	if (*v == '\0')
		return;
	snprintf(k, sizeof k, "%s:", key);
	fprintf(f, "%-18s%s\n", k, v);
}

struct out_table {
	size_t ncols;
	size_t nrows, cap;
	char **cells;       /* (nrows + 1) * ncols, row 0 the headers */
};

out_table *
out_table_new(size_t ncols, const char *const *headers)
{
	out_table *t = calloc(1, sizeof *t);

	if (t == NULL)
		return NULL;
	t->ncols = ncols;
	if (out_table_add(t, headers) != 0) {
		out_table_free(t);
		return NULL;
	}
	return t;
}

int
out_table_add(out_table *t, const char *const *cells)
{
	char **nc;

	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;

		if ((nc = reallocarray(t->cells, cap * t->ncols,
		    sizeof *nc)) == NULL)
			return SF_ENOMEM;
		t->cells = nc;
		t->cap = cap;
	}
	for (size_t i = 0; i < t->ncols; i++) {
		const char *s = cells[i] && *cells[i] ? cells[i] : "-";

		if ((t->cells[t->nrows * t->ncols + i] = strdup(s)) == NULL) {
			while (i-- > 0)
				free(t->cells[t->nrows * t->ncols + i]);
			return SF_ENOMEM;
		}
	}
	t->nrows++;
	return 0;
}

size_t
out_table_rows(const out_table *t)
{
	return t->nrows ? t->nrows - 1 : 0;
}

void
out_table_print(const out_table *t, FILE *f)
{
	size_t w[32] = { 0 };
	size_t nc = t->ncols < 32 ? t->ncols : 32;

	for (size_t r = 0; r < t->nrows; r++)
		for (size_t i = 0; i < nc; i++) {
			size_t n = strlen(t->cells[r * t->ncols + i]);

			if (n > w[i])
				w[i] = n;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t i = 0; i < nc; i++) {
			const char *s = t->cells[r * t->ncols + i];

			if (i + 1 == nc)
				fputs(s, f);
			else
				fprintf(f, "%-*s  ", (int)w[i], s);
		}
		fputc('\n', f);
	}
}

void
out_table_free(out_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

/* ------------------------------------------------------------------ */
/* JSON values                                                          */

/* The length of the UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	size_t k;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		k = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		k = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		k = 4;
	else
		return 0;
	if (k > n)
		return 0;
	for (size_t i = 1; i < k; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	/* Overlong, surrogate and out-of-range forms. */
	if ((k == 3 && s[0] == 0xe0 && s[1] < 0xa0) ||
	    (k == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
	    (k == 4 && s[0] == 0xf0 && s[1] < 0x90) ||
	    (k == 4 && s[0] == 0xf4 && s[1] >= 0x90))
		return 0;
	return k;
}

json_t *
out_jstr(const char *s)
{
	static const char fffd[3] = { '\xef', '\xbf', '\xbd' };
	const unsigned char *u = (const unsigned char *)s;
	size_t n, i, k, o = 0;
	json_t *v;
	char *buf;

	if (s == NULL)
		return json_null();
	n = strlen(s);
	for (i = 0; i < n && (k = utf8_len(u + i, n - i)) != 0; i += k)
		;
	if (i == n)
		return json_stringn_nocheck(s, n);
	/* At most three bytes for each byte of s. */
	if ((buf = malloc(3 * n)) == NULL)
		return NULL;
	for (i = 0; i < n; i += k) {
		if ((k = utf8_len(u + i, n - i)) == 0) {
			memcpy(buf + o, fffd, 3);
			o += 3;
			k = 1;
		} else {
			memcpy(buf + o, s + i, k);
			o += k;
		}
	}
	v = json_stringn_nocheck(buf, o);
	free(buf);
	return v;
}

json_t *
out_jtime(int64_t t)
{
	char buf[32];

	if (t == 0)
		return json_null();
	return json_string(out_time(t, buf, sizeof buf));
}

json_t *
out_jstrs(char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		out_jappend(&a, out_jstr(v[i]));
	return a;
}

void
out_jappend(json_t **arr, json_t *v)
{
	if (*arr == NULL) {
		json_decref(v);
		return;
	}
	/* json_array_append_new releases v when it fails. */
	if (v == NULL || json_array_append_new(*arr, v) != 0) {
		json_decref(*arr);
		*arr = NULL;
	}
}

void
out_jset(json_t **obj, const char *key, json_t *v)
{
	json_t *k = out_jstr(key);
	int rc = -1;

	/* json_object_setn_new_nocheck releases v when it fails. */
	if (*obj != NULL && k != NULL && v != NULL)
		rc = json_object_setn_new_nocheck(*obj, json_string_value(k),
		    json_string_length(k), v);
	else
		json_decref(v);
	if (rc != 0) {
		json_decref(*obj);
		*obj = NULL;
	}
	json_decref(k);
}

/* ------------------------------------------------------------------ */
/* JSON documents                                                       */

int
out_json(cli *c, json_t *doc)
{
	int rc;

	if (doc == NULL)
		return cli_error(c, CLI_EXIT_ERROR, "out of memory");
	rc = json_dumpf(doc, stdout, OUT_JSON_FLAGS);
	json_decref(doc);
	if (rc != 0)
		return cli_error(c, CLI_EXIT_ERROR, "out of memory");
	fputc('\n', stdout);
	fflush(stdout);
	return CLI_EXIT_OK;
}

/*
 * v as jansson lays it out, each line after the first shifted right by
 * depth levels, as it would be inside a document; v is stolen. A value
 * that could not be made prints as null.
 */
static void
stream_value(FILE *f, int depth, json_t *v)
{
	char *text = v ? json_dumps(v, OUT_JSON_FLAGS) : NULL;

	json_decref(v);
	if (text == NULL) {
		fputs("null", f);
		return;
	}
	/* jansson escapes every newline in a string: these are layout. */
	for (const char *p = text; *p != '\0'; p++) {
		fputc(*p, f);
		if (*p == '\n')
			for (int i = 0; i < depth; i++)
				fputs("  ", f);
	}
	free(text);
}

/* The next member's comma and key. */
static void
stream_key(out_stream *s, const char *key)
{
	fputs(s->members++ > 0 ? ",\n  " : "\n  ", s->f);
	stream_value(s->f, 1, out_jstr(key));
	fputs(": ", s->f);
}

/* Every member of obj, in order; obj is stolen. */
static void
stream_members(out_stream *s, json_t *obj)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		stream_key(s, key);
		stream_value(s->f, 1, json_incref(v));
	}
	json_decref(obj);
}

void
out_stream_open(out_stream *s, FILE *f, json_t *head, const char *key)
{
	memset(s, 0, sizeof *s);
	s->f = f;
	fputc('{', f);
	stream_members(s, head);
	stream_key(s, key);
	fputc('[', f);
}

int
out_stream_item(out_stream *s, json_t *item)
{
	if (item == NULL)
		return SF_ENOMEM;
	fputs(s->items++ > 0 ? ",\n    " : "\n    ", s->f);
	stream_value(s->f, 2, item);
	return 0;
}

void
out_stream_close(out_stream *s, json_t *tail)
{
	fputs(s->items > 0 ? "\n  ]" : "]", s->f);
	stream_members(s, tail);
	fputs("\n}\n", s->f);
	fflush(s->f);
}
