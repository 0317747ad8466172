/*
 * out.h - what the secretfree commands print on standard output: aligned
 * tables and "key: value" lines for people, and with --json one JSON
 * document built with jansson, pretty-printed (two blanks of indent, keys
 * in the order they were set, a newline at the end).
 *
 * Every json_t * given to a function here is a new reference that the
 * function steals (json_pack's "o" takes them the same way); NULL stands
 * for a value that could not be made (out of memory).
 */
#ifndef SF_OUT_H
#define SF_OUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

typedef struct cli cli;

/* ---- for people ---- */

/* "2026-03-01T12:00:00Z" into buf (24 bytes suffice); "-" for 0.
 * Returns buf. */
const char *out_time(int64_t t, char *buf, size_t len);
/* An enum value's name without prefix, in lower case with '-' for '_':
 * CA_ROLE_ROOT -> "root". "?" when unknown. Returns buf. */
const char *out_enum(const ProtobufCEnumDescriptor *d, int v,
    const char *prefix, char *buf, size_t len);
/* "key:" padded to a column, then the value; no line at all when the
 * value is empty. */
void out_kv(FILE *f, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

typedef struct out_table out_table;

/* A table with ncols columns and the given headers (upper case); NULL
 * when out of memory. */
out_table *out_table_new(size_t ncols, const char *const *headers);
/* One row of ncols strings (copied; NULL or "" prints as "-"). 0 or
 * SF_ENOMEM. */
int out_table_add(out_table *t, const char *const *cells);
/* Print aligned, two blanks between columns, no trailing blanks. */
void out_table_print(const out_table *t, FILE *f);
size_t out_table_rows(const out_table *t);
void out_table_free(out_table *t);      /* NULL-safe */

/* ---- JSON values ---- */

/* A string; null for NULL. Bytes that are not UTF-8 become U+FFFD (the
 * daemons' strings are not checked on the wire). */
json_t *out_jstr(const char *s);
/* A time as out_time() writes it; null for 0. */
json_t *out_jtime(int64_t t);
/* An array of n strings. */
json_t *out_jstrs(char *const *v, size_t n);
/* Append v to the array *arr; when v is NULL or cannot be added, *arr is
 * released and set to NULL, so that the document around it fails whole
 * (json_pack refuses a NULL "o"). */
void out_jappend(json_t **arr, json_t *v);
/* Set the member key of the object *obj to v, the same way; a key that
 * is not UTF-8 is set as out_jstr() would write it. */
void out_jset(json_t **obj, const char *key, json_t *v);

/* ---- JSON documents ---- */

/*
 * Print doc on standard output and flush. CLI_EXIT_OK, or CLI_EXIT_ERROR
 * after "out of memory" when doc is NULL.
 */
int out_json(cli *c, json_t *doc);

/*
 * A document whose one array is printed item by item as the items come
 * (an import's refusals, pages of a list), so that memory does not grow
 * with their number: the members of head, then "key": [items...], then
 * the members of tail, laid out as out_json() would lay out the whole.
 */
typedef struct {
	FILE *f;
	size_t members;          /* members of the document so far */
	size_t items;            /* items of its array so far */
} out_stream;

/* Begin: "{", head's members (head may be NULL), "key": [. */
void out_stream_open(out_stream *s, FILE *f, json_t *head, const char *key);
/* One item of the array; an item that is NULL (out of memory) is left
 * out and SF_ENOMEM returned, else 0. */
int out_stream_item(out_stream *s, json_t *item);
/* End the array, print tail's members (tail may be NULL), end the
 * document with a newline and flush. */
void out_stream_close(out_stream *s, json_t *tail);

#endif
