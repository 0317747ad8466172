/*
 * import.c - streamed readers of the factory's files (see import.h).
 *
 * csv and jsonl read their input a byte at a time through one line reader
 * that never holds more than RECORD_MAX bytes of the current record; a
 * record (or line) that runs past it is refused and the rest of its line
 * skipped, so a file of any size, or one enormous line, streams through in
 * a fixed amount of memory. dir reads the directory with readdir, one entry
 * at a time, and each file up to RECORD_MAX.
 *
 * A CSV record that goes wrong on a later line than its first (a quote that
 * is never closed swallows the lines after it) is refused at its first line,
 * and the lines after that first one are read again as new records: they
 * are put back in front of the input (r->pb). So one stray quote costs one
 * record, not the rest of the file.
 *
 * JSON is parsed by SQLite's built-in JSON1 functions on an in-memory
 * database: no hand-written JSON parser and no new dependency. This is the
 * one place outside the registry and the journal that talks SQL, and it only
 * ever runs one prepared SELECT over the line it is given.
 *
 * Nothing here logs: every refusal is the factory's input, and the caller
 * reports it with its file and line.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sqlite3.h>

#include "devrec.h"
#include "err.h"
#include "import.h"
#include "pubkey.h"
#include "util.h"

/* Far above any record (an RSA-8192 PEM key is about 1.5 KiB). */
#define RECORD_MAX (64 * 1024)

/* secretfree.v1.RefusalReason numbers (common.proto), as in devrec.c. */
enum { R_BAD_DEVICE_ID = 1, R_BAD_KEY = 2, R_KEY_TYPE = 3,
    R_BAD_PRODUCT_LINE = 6, R_BAD_REGION = 7 };

/* What read_line() found. */
enum { LINE_END = 0, LINE_NL = 1, LINE_LAST = 2, LINE_FULL = 3 };

/* CSV field states (RFC 4180). */
enum { F_START, F_PLAIN, F_QUOTED, F_QUOTE_IN_QUOTED };

#define CSV_FIELDS 4

struct import_reader {
	int fmt;
	char name[256];            /* the path as given, for rec->source */
	char *def_pl, *def_region; /* NULL = none */
	FILE *fp;                  /* csv, jsonl */
	int own_fp;                /* 0 for stdin */
	DIR *dir;                  /* dir */
	uint64_t lineno;           /* lines begun so far (dir: .pem files) */
	int started, done, header_seen;
	import_record *last;       /* the record the last call filled */

	char *raw;                 /* the current record's bytes */
	size_t rawlen;
	char *pb;                  /* bytes put back in front of the input */
	size_t pblen, pbpos;

	/* csv: decoded fields, each NUL-terminated, in fld. */
	char *fld;
	size_t fldlen;
	size_t foff[CSV_FIELDS];
	unsigned nfields;
	int fstate;

	sqlite3 *db;               /* jsonl */
	sqlite3_stmt *st;
};

static void __attribute__((format(printf, 3, 4)))
say(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

#define malformed(rec, ...) do {					\
	(rec)->reason = IMPORT_MALFORMED;				\
	say((rec)->why, sizeof (rec)->why, __VA_ARGS__);		\
} while (0)

/*
 * A copy fit for a terminal: at most size - 1 bytes, and anything outside
 * printable ASCII shown as '?'. Good values never have such bytes.
 */
static void
copy_shown(char *dst, size_t size, const char *src)
{
	size_t i;

	for (i = 0; src != NULL && src[i] != '\0' && i + 1 < size; i++)
		dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
	dst[i] = '\0';
}

/*
 * The checks of devrec_check(), in its order, on a record of the right
 * shape. Fills rec; 0, or SF_ENOMEM (the only failure that is not the
 * record's).
 */
static int
check(import_reader *r, import_record *rec, const char *id, const char *key,
    size_t keylen, const char *pl, const char *region)
{
	int rc;

	if (pl == NULL || pl[0] == '\0')
		pl = r->def_pl;
	if (region == NULL || region[0] == '\0')
		region = r->def_region;
	copy_shown(rec->device_id, sizeof rec->device_id, id);
	copy_shown(rec->product_line, sizeof rec->product_line, pl);
	copy_shown(rec->region, sizeof rec->region, region);

	if (!device_id_valid(id, rec->why, sizeof rec->why)) {
		rec->reason = R_BAD_DEVICE_ID;
		return 0;
	}
	if (pl == NULL || pl[0] == '\0') {
		rec->reason = R_BAD_PRODUCT_LINE;
		say(rec->why, sizeof rec->why, "no product line: the record "
		    "has none and no default was given");
		return 0;
	}
	if (!sf_name_valid(pl)) {
		rec->reason = R_BAD_PRODUCT_LINE;
		say(rec->why, sizeof rec->why, "product line \"%s\" is not a "
		    "valid id (1-32 of a-z, 0-9, -)", rec->product_line);
		return 0;
	}
	if (region != NULL && region[0] != '\0' && !sf_name_valid(region)) {
		rec->reason = R_BAD_REGION;
		say(rec->why, sizeof rec->why, "region \"%s\" is not a valid "
		    "id (1-32 of a-z, 0-9, -)", rec->region);
		return 0;
	}
	if (key == NULL) {
		rec->reason = R_BAD_KEY;
		say(rec->why, sizeof rec->why, "public key of more than %d "
		    "KiB", RECORD_MAX / 1024);
		return 0;
	}
	rc = pubkey_from_text(key, keylen, &rec->key, rec->why,
	    sizeof rec->why);
	if (rc == SF_ENOMEM)
		return rc;
	if (rc == SF_EKEYTYPE)
		rec->reason = R_KEY_TYPE;
	else if (rc != 0)
		rec->reason = R_BAD_KEY;
	return 0;
}

/* The next byte: the put-back bytes first, then the file. */
static inline int
src_getc(import_reader *r)
{
	if (r->pbpos < r->pblen)
		return (unsigned char)r->pb[r->pbpos++];
	return getc_unlocked(r->fp);
}

/*
 * Append the next line, '\n' included, to r->raw. LINE_NL: it ended with
 * '\n'; LINE_LAST: the input ended after it; LINE_END: no input left;
 * LINE_FULL: r->raw reached RECORD_MAX first (the rest of the line is still
 * unread); SF_EIO.
 */
static int
read_line(import_reader *r)
{
	int ch, begun = 0;

	for (;;) {
		if (r->rawlen >= RECORD_MAX)
			return LINE_FULL;
		if ((ch = src_getc(r)) == EOF) {
			if (ferror(r->fp))
				return SF_EIO;
			return begun ? LINE_LAST : LINE_END;
		}
		if (!begun) {
			begun = 1;
			r->lineno++;
		}
		r->raw[r->rawlen++] = (char)ch;
		if (ch == '\n')
			return LINE_NL;
	}
}

/* Skip the rest of a line that read_line() found too long. */
static int
drain_line(import_reader *r)
{
	int ch;

	while ((ch = src_getc(r)) != EOF)
		if (ch == '\n')
			return 0;
	return ferror(r->fp) ? SF_EIO : 0;
}

/* Put p[0..n) back in front of what is still to be read. */
static int
put_back(import_reader *r, const char *p, size_t n)
{
	size_t rest = r->pblen - r->pbpos;
	char *nb;

	if (n == 0)
		return 0;
	if ((nb = malloc(n + rest)) == NULL)
		return SF_ENOMEM;
	memcpy(nb, p, n);
	if (rest > 0)
		memcpy(nb + n, r->pb + r->pbpos, rest);
	free(r->pb);
	r->pb = nb;
	r->pblen = n + rest;
	r->pbpos = 0;
	return 0;
}

/* A UTF-8 byte order mark (spreadsheets write one) is not data. */
static int
skip_bom(import_reader *r)
{
	static const char bom[3] = { '\xef', '\xbb', '\xbf' };
	char got[3];
	size_t n;
	int ch;

	for (n = 0; n < 3 && (ch = src_getc(r)) != EOF; n++) {
		got[n] = (char)ch;
		if (got[n] != bom[n]) {
			n++;
			break;
		}
	}
	if (ferror(r->fp))
		return SF_EIO;
	if (n == 3 && memcmp(got, bom, 3) == 0)
		return 0;
	return put_back(r, got, n);
}

static int
is_blank(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' &&
		    p[i] != '\n')
			return 0;
	return 1;
}

static void
csv_add(import_reader *r, char ch)
{
	if (r->nfields < CSV_FIELDS)
		r->fld[r->fldlen++] = ch;
}

static void
csv_end_field(import_reader *r)
{
	if (r->nfields < CSV_FIELDS) {
		r->fld[r->fldlen++] = '\0';
		if (r->nfields + 1 < CSV_FIELDS)
			r->foff[r->nfields + 1] = r->fldlen;
	}
	r->nfields++;
	r->fstate = F_START;
}

/*
 * Run the CSV state machine over r->raw[from..r->rawlen), one line that
 * read_line() gave as how. 1 when the record ended, 0 when it goes on (in
 * a quoted field), or a static sentence saying what is wrong in *err.
 */
static int
csv_scan(import_reader *r, size_t from, int how, const char **err)
{
	const char *p = r->raw;
	size_t end = r->rawlen;

	for (size_t i = from; i < end; i++) {
		char ch = p[i];
		int eol = ch == '\n' || (ch == '\r' && i + 2 == end &&
		    p[i + 1] == '\n');

		if (ch == '\0') {
			*err = "a NUL byte";
			return -1;
		}
		switch (r->fstate) {
		case F_START:
		case F_PLAIN:
			if (eol) {
				csv_end_field(r);
				return 1;
			}
			if (ch == ',')
				csv_end_field(r);
			else if (ch == '"' && r->fstate == F_START)
				r->fstate = F_QUOTED;
			else if (ch == '"') {
				*err = "a quote inside an unquoted field";
				return -1;
			} else {
				csv_add(r, ch);
				r->fstate = F_PLAIN;
			}
			break;
		case F_QUOTED:
			if (ch == '"')
				r->fstate = F_QUOTE_IN_QUOTED;
			else
				csv_add(r, ch);
			break;
		case F_QUOTE_IN_QUOTED:
			if (eol) {
				csv_end_field(r);
				return 1;
			}
			if (ch == '"') {
				csv_add(r, '"');
				r->fstate = F_QUOTED;
			} else if (ch == ',')
				csv_end_field(r);
			else {
				*err = "text after a closing quote";
				return -1;
			}
			break;
		}
	}
	if (how == LINE_LAST && r->fstate != F_QUOTED) {
		csv_end_field(r);
		return 1;
	}
	return 0;
}

static int
csv_next(import_reader *r, import_record *rec)
{
	const char *err = NULL, *f[CSV_FIELDS];
	size_t first;
	int how, rc, first_rec;

again:
	r->rawlen = 0;
	if ((how = read_line(r)) == LINE_END || how < 0)
		return how;
	rec->line = r->lineno;
	if (how == LINE_FULL) {
		r->header_seen = 1;
		if ((rc = drain_line(r)) != 0)
			return rc;
		malformed(rec, "line %llu: record over %d KiB",
		    (unsigned long long)rec->line, RECORD_MAX / 1024);
		return 1;
	}
	if (is_blank(r->raw, r->rawlen))
		goto again;
	/* Only the first record may be the header. */
	first_rec = !r->header_seen;
	r->header_seen = 1;

	r->fldlen = 0;
	r->foff[0] = 0;
	r->nfields = 0;
	r->fstate = F_START;
	first = r->rawlen;
	for (size_t from = 0;;) {
		if ((rc = csv_scan(r, from, how, &err)) != 0)
			break;
		/* In a quoted field at the end of the line: it goes on. */
		from = r->rawlen;
		if (how == LINE_LAST || (how = read_line(r)) == LINE_END) {
			err = "a quoted field is not closed (unterminated "
			    "quote)";
			break;
		}
		if (how < 0)
			return how;
		if (how == LINE_FULL) {
			err = "a quoted field is not closed within 64 KiB "
			    "(unterminated quote?)";
			break;
		}
	}
	if (err != NULL) {
		/* The lines after the first are read again. */
		if ((rc = put_back(r, r->raw + first, r->rawlen - first)) != 0)
			return rc;
		r->lineno = rec->line;
		malformed(rec, "line %llu: %s", (unsigned long long)rec->line,
		    err);
		return 1;
	}

	for (unsigned i = 0; i < CSV_FIELDS; i++)
		f[i] = i < r->nfields ? r->fld + r->foff[i] : NULL;
	if (first_rec && strcasecmp(f[0], "device_id") == 0)
		goto again;
	if (r->nfields < 2 || r->nfields > CSV_FIELDS) {
		malformed(rec, "line %llu: %u field%s, expected 2 to 4",
		    (unsigned long long)rec->line, r->nfields,
		    r->nfields == 1 ? "" : "s");
		return 1;
	}
	if ((rc = check(r, rec, f[0], f[1], strlen(f[1]), f[2], f[3])) != 0)
		return rc;
	return 1;
}

/*
 * One statement for every line: the top-level type (NULL if the line is
 * not JSON), then for each field its JSON type, its value and its JSON
 * text. The CASEs keep the JSON functions away from text that is not a
 * JSON object, where they would fail the statement; SQLite caches the
 * parse of ?1 across the calls of one step. The JSON text is there because
 * SQLite 3.40 ends a decoded string at a \u0000 escape without a word.
 */
#define JSON_FIELD(k)							\
	", CASE t WHEN 'object' THEN json_type(j, '$." k "') END"	\
	", CASE t WHEN 'object' THEN json_extract(j, '$." k "') END"	\
	", CASE t WHEN 'object' THEN j -> '$." k "' END"
static const char json_sql[] =
    "WITH x(j, t) AS MATERIALIZED (SELECT ?1,"
    " CASE WHEN json_valid(?1) THEN json_type(?1) END) SELECT t"
    JSON_FIELD("device_id")
    JSON_FIELD("public_key")
    JSON_FIELD("public_key_pem")
    JSON_FIELD("public_key_der_base64")
    JSON_FIELD("product_line")
    JSON_FIELD("region")
    " FROM x";

static const char *const json_keys[] = {
	"device_id", "public_key", "public_key_pem", "public_key_der_base64",
	"product_line", "region",
};
#define JSON_NKEYS (sizeof json_keys / sizeof json_keys[0])
enum { J_ID, J_KEY, J_KEY_PEM, J_KEY_B64, J_PL, J_REGION };

/* How a JSON type is named in a message. */
static const char *
json_kind(const char *t)
{
	if (strcmp(t, "object") == 0)
		return "an object";
	if (strcmp(t, "array") == 0)
		return "an array";
	if (strcmp(t, "text") == 0)
		return "a string";
	if (strcmp(t, "integer") == 0 || strcmp(t, "real") == 0)
		return "a number";
	if (strcmp(t, "true") == 0 || strcmp(t, "false") == 0)
		return "a boolean";
	return t;
}

/* A JSON string token escapes a NUL character. */
static int
json_has_nul(const char *s)
{
	for (; s != NULL && *s != '\0'; s++) {
		if (*s != '\\' || s[1] == '\0')
			continue;
		if (s[1] == 'u' && strncmp(s + 2, "0000", 4) == 0)
			return 1;
		s++;  /* the escaped character, maybe a backslash */
	}
	return 0;
}

/* The fields of the object in r->st's current row into v[] (NULL = absent). */
static int
json_fields(import_reader *r, import_record *rec, const char *v[JSON_NKEYS],
    size_t vlen[JSON_NKEYS])
{
	unsigned long long line = (unsigned long long)rec->line;
	const char *t, *key = NULL;

	for (size_t i = 0; i < JSON_NKEYS; i++) {
		int col = 1 + 3 * (int)i;

		v[i] = NULL;
		vlen[i] = 0;
		t = (const char *)sqlite3_column_text(r->st, col);
		if (t == NULL || strcmp(t, "null") == 0)
			continue;
		if (strcmp(t, "text") != 0) {
			malformed(rec, "line %llu: \"%s\" is %s, expected a "
			    "string", line, json_keys[i], json_kind(t));
			return -1;
		}
		v[i] = (const char *)sqlite3_column_text(r->st, col + 1);
		vlen[i] = (size_t)sqlite3_column_bytes(r->st, col + 1);
		if (v[i] == NULL)
			return SF_ENOMEM;
		if (memchr(v[i], '\0', vlen[i]) != NULL || json_has_nul(
		    (const char *)sqlite3_column_text(r->st, col + 2))) {
			malformed(rec, "line %llu: \"%s\" has a NUL "
			    "character", line, json_keys[i]);
			return -1;
		}
	}
	for (size_t i = J_KEY; i <= J_KEY_B64; i++) {
		if (v[i] == NULL)
			continue;
		if (key != NULL) {
			malformed(rec, "line %llu: both \"%s\" and \"%s\": "
			    "give the key once", line, key, json_keys[i]);
			return -1;
		}
		key = json_keys[i];
		v[J_KEY] = v[i];
		vlen[J_KEY] = vlen[i];
	}
	if (v[J_ID] == NULL || key == NULL) {
		malformed(rec, "line %llu: no \"%s\"", line, v[J_ID] == NULL ?
		    "device_id" : "public_key");
		return -1;
	}
	return 0;
}

static int
jsonl_next(import_reader *r, import_record *rec)
{
	const char *t, *v[JSON_NKEYS];
	size_t vlen[JSON_NKEYS], n;
	int how, rc = 1;

again:
	r->rawlen = 0;
	if ((how = read_line(r)) == LINE_END || how < 0)
		return how;
	rec->line = r->lineno;
	if (how == LINE_FULL) {
		if ((rc = drain_line(r)) != 0)
			return rc;
		malformed(rec, "line %llu: line over %d KiB",
		    (unsigned long long)rec->line, RECORD_MAX / 1024);
		return 1;
	}
	n = r->rawlen;
	while (n > 0 && (r->raw[n - 1] == '\n' || r->raw[n - 1] == '\r'))
		n--;
	if (is_blank(r->raw, n))
		goto again;
	if (memchr(r->raw, '\0', n) != NULL) {
		malformed(rec, "line %llu: a NUL byte",
		    (unsigned long long)rec->line);
		return 1;
	}

	sqlite3_reset(r->st);
	if (sqlite3_bind_text(r->st, 1, r->raw, (int)n, SQLITE_STATIC) !=
	    SQLITE_OK || sqlite3_step(r->st) != SQLITE_ROW) {
		say(rec->why, sizeof rec->why, "SQLite JSON: %s",
		    sqlite3_errmsg(r->db));
		rc = SF_EDB;
		goto out;
	}
	if ((t = (const char *)sqlite3_column_text(r->st, 0)) == NULL) {
		malformed(rec, "line %llu: not valid JSON",
		    (unsigned long long)rec->line);
		goto out;
	}
	if (strcmp(t, "object") != 0) {
		malformed(rec, "line %llu: %s, expected a JSON object",
		    (unsigned long long)rec->line, json_kind(t));
		goto out;
	}
	if ((rc = json_fields(r, rec, v, vlen)) != 0) {
		rc = rc == -1 ? 1 : rc;
		goto out;
	}
	if ((rc = check(r, rec, v[J_ID], v[J_KEY], vlen[J_KEY], v[J_PL],
	    v[J_REGION])) == 0)
		rc = 1;
out:
	sqlite3_reset(r->st);
	sqlite3_clear_bindings(r->st);
	return rc;
}

static int
dir_next(import_reader *r, import_record *rec)
{
	struct dirent *de;
	struct stat st;
	char id[256];
	size_t n;
	ssize_t got;
	int fd = -1, rc = 1;

	for (;;) {
		errno = 0;
		if ((de = readdir(r->dir)) == NULL) {
			if (errno == 0)
				return 0;
			say(rec->why, sizeof rec->why, "reading %s: %s",
			    r->name, strerror(errno));
			return SF_EIO;
		}
		n = strlen(de->d_name);
		if (n >= 4 && strcmp(de->d_name + n - 4, ".pem") == 0)
			break;
	}
	rec->line = ++r->lineno;
	sf_strlcpy(rec->source, de->d_name, sizeof rec->source);
	sf_strlcpy(id, de->d_name, sizeof id);
	id[n - 4] = '\0';  /* n <= NAME_MAX < sizeof id */

	/* O_NONBLOCK: a FIFO named *.pem must not hang the import. */
	fd = openat(dirfd(r->dir), de->d_name, O_RDONLY | O_NONBLOCK |
	    O_NOCTTY | O_CLOEXEC);
	if (fd == -1 || fstat(fd, &st) == -1) {
		copy_shown(rec->device_id, sizeof rec->device_id, id);
		malformed(rec, "%s: cannot open: %s", rec->source,
		    strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		copy_shown(rec->device_id, sizeof rec->device_id, id);
		malformed(rec, "%s: not a regular file", rec->source);
		goto out;
	}
	r->rawlen = 0;
	while (r->rawlen <= RECORD_MAX && (got = read(fd, r->raw + r->rawlen,
	    RECORD_MAX + 1 - r->rawlen)) != 0) {
		if (got == -1 && errno == EINTR)
			continue;
		if (got == -1) {
			copy_shown(rec->device_id, sizeof rec->device_id, id);
			malformed(rec, "%s: cannot read: %s", rec->source,
			    strerror(errno));
			goto out;
		}
		r->rawlen += (size_t)got;
	}
	if (check(r, rec, id, r->rawlen > RECORD_MAX ? NULL : r->raw,
	    r->rawlen, NULL, NULL) != 0)
		rc = SF_ENOMEM;
out:
	if (fd != -1)
		close(fd);
	return rc;
}

static int
format_of_name(const char *path)
{
	static const struct {
		const char *suffix;
		int fmt;
	} sfx[] = {
		{ ".csv", IMPORT_CSV }, { ".jsonl", IMPORT_JSONL },
		{ ".ndjson", IMPORT_JSONL }, { ".json", IMPORT_JSONL },
	};
	size_t n = strlen(path), k;

	for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
		k = strlen(sfx[i].suffix);
		if (n > k && strcasecmp(path + n - k, sfx[i].suffix) == 0)
			return sfx[i].fmt;
	}
	return IMPORT_AUTO;
}

static int
open_json(import_reader *r, char *why, size_t whylen)
{
	if (sqlite3_open_v2(":memory:", &r->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(r->db, json_sql, -1, SQLITE_PREPARE_PERSISTENT,
	    &r->st, NULL) != SQLITE_OK) {
		say(why, whylen, "SQLite JSON: %s", r->db ?
		    sqlite3_errmsg(r->db) : "out of memory");
		return SF_EDB;
	}
	return 0;
}

int
import_open(const char *path, int fmt, const char *default_product_line,
    const char *default_region, import_reader **out, char *why,
    size_t whylen)
{
	import_reader *r = NULL;
	struct stat st;
	int use_stdin, rc = SF_EINVAL;

	*out = NULL;
	if (path == NULL || path[0] == '\0') {
		say(why, whylen, "no file name");
		goto out;
	}
	if (fmt < IMPORT_AUTO || fmt > IMPORT_JSONL) {
		say(why, whylen, "unknown import format %d", fmt);
		goto out;
	}
	use_stdin = strcmp(path, "-") == 0;
	if (use_stdin && fmt != IMPORT_CSV && fmt != IMPORT_JSONL) {
		say(why, whylen, "standard input needs an explicit format: "
		    "csv or jsonl");
		goto out;
	}
	if (fmt == IMPORT_AUTO) {
		if (stat(path, &st) == -1) {
			say(why, whylen, "cannot open %s: %s", path,
			    strerror(errno));
			rc = SF_EIO;
			goto out;
		}
		if (S_ISDIR(st.st_mode))
			fmt = IMPORT_DIR;
		else if ((fmt = format_of_name(path)) == IMPORT_AUTO) {
			say(why, whylen, "cannot tell the format of %s: "
			    "expected a directory, or a name ending in .csv, "
			    ".jsonl, .ndjson or .json", path);
			goto out;
		}
	}

	rc = SF_ENOMEM;
	if ((r = calloc(1, sizeof *r)) == NULL)
		goto out;
	r->fmt = fmt;
	sf_strlcpy(r->name, use_stdin ? "stdin" : path, sizeof r->name);
	if ((default_product_line != NULL &&
	    (r->def_pl = strdup(default_product_line)) == NULL) ||
	    (default_region != NULL &&
	    (r->def_region = strdup(default_region)) == NULL) ||
	    (r->raw = malloc(RECORD_MAX + 1)) == NULL)
		goto out;

	rc = SF_EIO;
	if (fmt == IMPORT_DIR) {
		if ((r->dir = opendir(path)) == NULL) {
			say(why, whylen, "cannot open directory %s: %s", path,
			    strerror(errno));
			goto out;
		}
	} else {
		if (use_stdin)
			r->fp = stdin;
		else if ((r->fp = fopen(path, "re")) == NULL) {
			say(why, whylen, "cannot open %s: %s", path,
			    strerror(errno));
			goto out;
		}
		r->own_fp = !use_stdin;
		if (fstat(fileno(r->fp), &st) == 0 && S_ISDIR(st.st_mode)) {
			say(why, whylen, "%s is a directory: only the dir "
			    "format reads one", path);
			rc = SF_EINVAL;
			goto out;
		}
	}
	rc = SF_ENOMEM;
	if (fmt == IMPORT_CSV &&
	    (r->fld = malloc(RECORD_MAX + CSV_FIELDS)) == NULL)
		goto out;
	if (fmt == IMPORT_JSONL && (rc = open_json(r, why, whylen)) != 0)
		goto out;
	*out = r;
	r = NULL;  /* transferred */
	rc = 0;
out:
	import_close(r);
	return rc;
}

int
import_next(import_reader *r, import_record *rec)
{
	int rc = 0;

	/* Only what this reader put there is ours to release. */
	if (rec == r->last)
		import_record_fini(rec);
	memset(rec, 0, sizeof *rec);
	r->last = rec;
	if (r->done)
		return 0;
	sf_strlcpy(rec->source, r->name, sizeof rec->source);
	if (!r->started && r->fp != NULL && (rc = skip_bom(r)) != 0)
		goto out;
	r->started = 1;
	switch (r->fmt) {
	case IMPORT_DIR:
		rc = dir_next(r, rec);
		break;
	case IMPORT_CSV:
		rc = csv_next(r, rec);
		break;
	case IMPORT_JSONL:
		rc = jsonl_next(r, rec);
		break;
	default:
		rc = SF_EINTERNAL;
		break;
	}
out:
	if (rc == SF_EIO && r->fp != NULL)
		say(rec->why, sizeof rec->why, "reading %s: %s", r->name,
		    strerror(errno));
	if (rc != 1) {
		r->done = 1;
		import_record_fini(rec);
	}
	return rc;
}

void
import_record_fini(import_record *rec)
{
	if (rec != NULL)
		pubkey_info_free(&rec->key);
}

void
import_close(import_reader *r)
{
	if (r == NULL)
		return;
	if (r->fp != NULL && r->own_fp)
		fclose(r->fp);
	if (r->dir != NULL)
		closedir(r->dir);
	sqlite3_finalize(r->st);
	sqlite3_close(r->db);
	free(r->def_pl);
	free(r->def_region);
	free(r->raw);
	free(r->pb);
	free(r->fld);
	free(r);
}

const char *
import_format_name(int fmt)
{
	switch (fmt) {
	case IMPORT_DIR:
		return "dir";
	case IMPORT_CSV:
		return "csv";
	case IMPORT_JSONL:
		return "jsonl";
	}
	return "auto";
}

int
import_format(const import_reader *r)
{
	return r->fmt;
}
