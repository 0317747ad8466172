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
 * Each JSON line is parsed by jansson (json_loadb over that line alone, the
 * document freed before the next line). jansson refuses what is not UTF-8
 * and, with JSON_REJECT_DUPLICATES, an object that names a key twice (which
 * of the two a parser takes is not agreed on, and a record is not to be
 * guessed at). It is asked to accept \u0000 (JSON_ALLOW_NUL) so that a NUL
 * in a field we read is refused here with the field's name, while one in a
 * field we ignore does not cost the record.
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

#include <jansson.h>

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
};

#define malformed(rec, ...) do {					\
	(rec)->reason = IMPORT_MALFORMED;				\
	sf_why((rec)->why, sizeof (rec)->why, __VA_ARGS__);		\
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
		sf_why(rec->why, sizeof rec->why, "no product line: the record "
		    "has none and no default was given");
		return 0;
	}
	if (!sf_name_valid(pl)) {
		rec->reason = R_BAD_PRODUCT_LINE;
		sf_why(rec->why, sizeof rec->why, "product line \"%s\" is not "
		    "a valid id (1-32 of a-z, 0-9, -)", rec->product_line);
		return 0;
	}
	if (region != NULL && region[0] != '\0' && !sf_name_valid(region)) {
		rec->reason = R_BAD_REGION;
		sf_why(rec->why, sizeof rec->why, "region \"%s\" is not a "
		    "valid id (1-32 of a-z, 0-9, -)", rec->region);
		return 0;
	}
	if (key == NULL) {
		rec->reason = R_BAD_KEY;
		sf_why(rec->why, sizeof rec->why, "public key of more than %d "
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
 * The next line that is not blank into r->raw, rec->line set to its
 * number: LINE_NL or LINE_LAST; LINE_FULL (r->raw holds its first
 * RECORD_MAX bytes, the rest of the line is unread); LINE_END; SF_EIO.
 */
static int
next_line(import_reader *r, import_record *rec)
{
	int how;

	do {
		r->rawlen = 0;
		if ((how = read_line(r)) == LINE_END || how < 0)
			return how;
		rec->line = r->lineno;
	} while (how != LINE_FULL && is_blank(r->raw, r->rawlen));
	return how;
}

/*
 * Run the CSV state machine over r->raw[from..r->rawlen), one line that
 * read_line() gave as how. 1 when the record ended, 0 when it goes on (in
 * a quoted field), or -1 with a static sentence saying what is wrong in
 * *why.
 */
static int
csv_scan(import_reader *r, size_t from, int how, const char **why)
{
	const char *p = r->raw;
	size_t end = r->rawlen;

	for (size_t i = from; i < end; i++) {
		char ch = p[i];
		int eol = ch == '\n' || (ch == '\r' && i + 2 == end &&
		    p[i + 1] == '\n');

		if (ch == '\0') {
			*why = "a NUL byte";
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
				*why = "a quote inside an unquoted field";
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
				*why = "text after a closing quote";
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

/*
 * The next CSV record, blank lines skipped, decoded into r->fld: 1 with
 * rec->line set (and rec refused as malformed when the record is not
 * CSV), 0 at the end, SF_EIO or SF_ENOMEM.
 */
static int
csv_record(import_reader *r, import_record *rec)
{
	const char *why = NULL;
	size_t first;
	int how, rc;

	if ((how = next_line(r, rec)) == LINE_END || how < 0)
		return how;
	r->header_seen = 1;
	if (how == LINE_FULL) {
		if ((rc = drain_line(r)) != 0)
			return rc;
		malformed(rec, "line %llu: record over %d KiB",
		    (unsigned long long)rec->line, RECORD_MAX / 1024);
		return 1;
	}

	r->fldlen = 0;
	r->foff[0] = 0;
	r->nfields = 0;
	r->fstate = F_START;
	first = r->rawlen;
	for (size_t from = 0;;) {
		if (csv_scan(r, from, how, &why) != 0)
			break;
		/* In a quoted field at the end of the line: it goes on. */
		from = r->rawlen;
		if (how == LINE_LAST || (how = read_line(r)) == LINE_END) {
			why = "a quoted field is not closed (unterminated "
			    "quote)";
			break;
		}
		if (how < 0)
			return how;
		if (how == LINE_FULL) {
			why = "a quoted field is not closed within 64 KiB "
			    "(unterminated quote?)";
			break;
		}
	}
	if (why != NULL) {
		/* The lines after the first are read again. */
		if ((rc = put_back(r, r->raw + first, r->rawlen - first)) != 0)
			return rc;
		r->lineno = rec->line;
		malformed(rec, "line %llu: %s", (unsigned long long)rec->line,
		    why);
	}
	return 1;
}

static int
csv_next(import_reader *r, import_record *rec)
{
	const char *f[CSV_FIELDS];
	int rc, first_rec;

	/* Only the first record may be the header. */
	do {
		first_rec = !r->header_seen;
		if ((rc = csv_record(r, rec)) != 1 || rec->reason != 0)
			return rc;
		for (unsigned i = 0; i < CSV_FIELDS; i++)
			f[i] = i < r->nfields ? r->fld + r->foff[i] : NULL;
	} while (first_rec && strcasecmp(f[0], "device_id") == 0);

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

/* The members of a record; the key is given under one of three names. */
static const char *const jsonl_keys[] = {
	"device_id", "public_key", "public_key_pem", "public_key_der_base64",
	"product_line", "region",
};
#define JSONL_NKEYS (sizeof jsonl_keys / sizeof jsonl_keys[0])
enum { J_ID, J_KEY, J_KEY_PEM, J_KEY_B64, J_PL, J_REGION };

/* How a JSON value's type is named in a message. */
static const char *
jsonl_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		break;
	}
	return "null";
}

/*
 * The record's members into v[] and vlen[] (NULL = absent or null),
 * borrowed from obj: 0, or -1 with rec refused as malformed.
 */
static int
jsonl_fields(import_record *rec, json_t *obj, const char *v[JSONL_NKEYS],
    size_t vlen[JSONL_NKEYS])
{
	unsigned long long line = (unsigned long long)rec->line;
	json_t *m[JSONL_NKEYS] = { NULL };
	const char *key = NULL;

	/* Optional members of any type; unknown ones are ignored. */
	if (json_unpack(obj, "{s?o s?o s?o s?o s?o s?o}",
	    jsonl_keys[J_ID], &m[J_ID], jsonl_keys[J_KEY], &m[J_KEY],
	    jsonl_keys[J_KEY_PEM], &m[J_KEY_PEM], jsonl_keys[J_KEY_B64],
	    &m[J_KEY_B64], jsonl_keys[J_PL], &m[J_PL], jsonl_keys[J_REGION],
	    &m[J_REGION]) != 0)
		return SF_EINTERNAL;
	for (size_t i = 0; i < JSONL_NKEYS; i++) {
		v[i] = NULL;
		vlen[i] = 0;
		if (m[i] == NULL || json_is_null(m[i]))
			continue;
		if (!json_is_string(m[i])) {
			malformed(rec, "line %llu: \"%s\" is %s, expected a "
			    "string", line, jsonl_keys[i], jsonl_kind(m[i]));
			return -1;
		}
		v[i] = json_string_value(m[i]);
		vlen[i] = json_string_length(m[i]);
		/* Accepted by the parser (JSON_ALLOW_NUL), refused here. */
		if (memchr(v[i], '\0', vlen[i]) != NULL) {
			malformed(rec, "line %llu: \"%s\" has a NUL "
			    "character (\\u0000)", line, jsonl_keys[i]);
			return -1;
		}
	}
	for (size_t i = J_KEY; i <= J_KEY_B64; i++) {
		if (v[i] == NULL)
			continue;
		if (key != NULL) {
			malformed(rec, "line %llu: both \"%s\" and \"%s\": "
			    "give the key once", line, key, jsonl_keys[i]);
			return -1;
		}
		key = jsonl_keys[i];
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

/* Why jansson could not load a line: 1 with rec refused, or SF_ENOMEM. */
static int
jsonl_refuse(import_record *rec, const json_error_t *jerr)
{
	unsigned long long line = (unsigned long long)rec->line;

	switch (json_error_code(jerr)) {
	case json_error_out_of_memory:
		return SF_ENOMEM;
	case json_error_invalid_utf8:
		malformed(rec, "line %llu: not valid UTF-8", line);
		break;
	case json_error_duplicate_key:
		malformed(rec, "line %llu: an object names a key twice", line);
		break;
	default:
		malformed(rec, "line %llu: not valid JSON", line);
		break;
	}
	return 1;
}

/* jansson's flags for a line: see the comment at the top. */
#define JSONL_LOAD (JSON_DECODE_ANY | JSON_ALLOW_NUL |			\
    JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL)

static int
jsonl_next(import_reader *r, import_record *rec)
{
	const char *v[JSONL_NKEYS];
	size_t vlen[JSONL_NKEYS], n;
	json_error_t jerr;
	json_t *doc = NULL;
	int how, rc = 1;

	if ((how = next_line(r, rec)) == LINE_END || how < 0)
		return how;
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
	if (memchr(r->raw, '\0', n) != NULL) {
		malformed(rec, "line %llu: a NUL byte",
		    (unsigned long long)rec->line);
		goto out;
	}
	if ((doc = json_loadb(r->raw, n, JSONL_LOAD, &jerr)) == NULL) {
		rc = jsonl_refuse(rec, &jerr);
		goto out;
	}
	if (!json_is_object(doc)) {
		malformed(rec, "line %llu: %s, expected a JSON object",
		    (unsigned long long)rec->line, jsonl_kind(doc));
		goto out;
	}
	if ((rc = jsonl_fields(rec, doc, v, vlen)) != 0) {
		rc = rc == -1 ? 1 : rc;
		goto out;
	}
	if ((rc = check(r, rec, v[J_ID], v[J_KEY], vlen[J_KEY], v[J_PL],
	    v[J_REGION])) == 0)
		rc = 1;
out:
	json_decref(doc);
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
			sf_why(rec->why, sizeof rec->why, "reading %s: %s",
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
		sf_why(why, whylen, "no file name");
		goto out;
	}
	if (fmt < IMPORT_AUTO || fmt > IMPORT_JSONL) {
		sf_why(why, whylen, "unknown import format %d", fmt);
		goto out;
	}
	use_stdin = strcmp(path, "-") == 0;
	if (use_stdin && fmt != IMPORT_CSV && fmt != IMPORT_JSONL) {
		sf_why(why, whylen, "standard input needs an explicit format: "
		    "csv or jsonl");
		goto out;
	}
	if (fmt == IMPORT_AUTO) {
		if (stat(path, &st) == -1) {
			sf_why(why, whylen, "cannot open %s: %s", path,
			    strerror(errno));
			rc = SF_EIO;
			goto out;
		}
		if (S_ISDIR(st.st_mode))
			fmt = IMPORT_DIR;
		else if ((fmt = format_of_name(path)) == IMPORT_AUTO) {
			sf_why(why, whylen, "cannot tell the format of %s: "
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
			sf_why(why, whylen, "cannot open directory %s: %s",
			    path, strerror(errno));
			goto out;
		}
	} else {
		if (use_stdin)
			r->fp = stdin;
		else if ((r->fp = fopen(path, "re")) == NULL) {
			sf_why(why, whylen, "cannot open %s: %s", path,
			    strerror(errno));
			goto out;
		}
		r->own_fp = !use_stdin;
		if (fstat(fileno(r->fp), &st) == 0 && S_ISDIR(st.st_mode)) {
			sf_why(why, whylen, "%s is a directory: only the dir "
			    "format reads one", path);
			rc = SF_EINVAL;
			goto out;
		}
	}
	rc = SF_ENOMEM;
	if (fmt == IMPORT_CSV &&
	    (r->fld = malloc(RECORD_MAX + CSV_FIELDS)) == NULL)
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
		sf_why(rec->why, sizeof rec->why, "reading %s: %s", r->name,
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
