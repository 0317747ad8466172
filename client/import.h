/*
 * import.h - streamed readers of the files a factory line produces:
 *
 *   dir    a directory of PEM public keys named <device id>.pem
 *          (product line and region from the caller's defaults)
 *   csv    device_id,public_key[,product_line,region]  (RFC 4180 quoting;
 *          a quoted field may span lines, so a PEM key fits in one field;
 *          an optional header line starting with "device_id" is skipped)
 *   jsonl  one JSON object per line: {"device_id": ..., "public_key": ...,
 *          "product_line": ..., "region": ...}; strict UTF-8, a key named
 *          twice is refused, and so is \u0000 in any of these members
 *
 * public_key is a PEM "PUBLIC KEY" block or base64 of the DER SPKI.
 * Fields a record lacks come from the defaults. Nothing but the current
 * record is held in memory, so a million records stream through.
 *
 * A bad record does not stop the reader: it comes back with `reason` set
 * (a secretfree.v1.RefusalReason number, or IMPORT_MALFORMED for a line
 * that is not a record at all) and a sentence in `why`, and the next call
 * goes on with the next record.
 */
#ifndef SF_IMPORT_H
#define SF_IMPORT_H

#include <stddef.h>
#include <stdint.h>

#include "pubkey.h"

enum { IMPORT_AUTO = 0, IMPORT_DIR = 1, IMPORT_CSV = 2, IMPORT_JSONL = 3 };

/* A line that is not a record (bad CSV/JSON, missing fields, a line over
 * 64 KiB; dir: an entry that is not a readable regular file). Not a
 * RefusalReason: the caller reports it like one, with the record's line. */
#define IMPORT_MALFORMED 100

typedef struct import_reader import_reader;

typedef struct {
	uint64_t line;            /* first line of the record (csv, jsonl); n-th file (dir) */
	char source[256];         /* file the record came from (dir: its name) */
	/* As read, defaults filled in; truncated if longer, and bytes outside
	 * printable ASCII shown as '?' (a good value has none). */
	char device_id[DEVICE_ID_MAX + 1];
	char product_line[33];
	char region[33];          /* "" = none */
	pubkey_info key;          /* valid when reason == 0 */
	int reason;               /* 0 = good record */
	char why[200];            /* malformed: "line N: ..." (dir: "name: ...") */
} import_record;

/*
 * Open path as fmt (IMPORT_AUTO: a directory is dir; *.csv csv; *.jsonl,
 * *.ndjson, *.json jsonl). default_product_line / default_region fill what
 * a record lacks (NULL = none). path "-" is standard input, with fmt
 * IMPORT_CSV or IMPORT_JSONL. SF_EIO (cannot open), SF_EINVAL (unknown
 * format), why says which.
 */
int import_open(const char *path, int fmt, const char *default_product_line,
    const char *default_region, import_reader **out, char *why,
    size_t whylen);
/*
 * The next record: 1 with *rec filled (good or refused), 0 at the end,
 * SF_EIO on a read error (rec->why says what), or SF_ENOMEM; after 0 or
 * an error rec owns nothing and further
 * calls return 0. import_record_fini() releases rec's key. When rec is the
 * record the previous call filled, import_next starts by releasing it, so
 * a loop over one rec leaks nothing; records kept apart (a batch) stay
 * valid until their import_record_fini(). rec need not be initialised.
 */
int import_next(import_reader *r, import_record *rec);
void import_record_fini(import_record *rec);
void import_close(import_reader *r);    /* NULL-safe */
/* "dir", "csv", "jsonl". */
const char *import_format_name(int fmt);
int import_format(const import_reader *r);

#endif
