/*
 * auditchain.h - the audit trail's hash chain (DESIGN.md, "Audit trail"),
 * shared by the signer (its journal's audit_events table) and the CLI
 * (`secretfree audit verify --file`, an export in JSON Lines).
 *
 * Each event's hash chains it to the one before:
 *
 *   hash = SHA-256( prev "\n" seq "\t" at "\t" kind "\t" subject "\t" detail )
 *
 * prev and hash as 64 lower-case hex digits, the first event's prev 64
 * zeros, seq and at in decimal, detail the JSON text exactly as stored.
 *
 * audit_chain_verify walks a sequence of events in seq order and names
 * the first broken link and what was done to it: an event edited (its
 * fields no longer give its hash, or it no longer chains), deleted (a gap
 * in seq, or an event chaining to one that is not there), inserted (an
 * event the next one does not chain to, or one the chain skips) or
 * reordered (an event chaining to one that comes later). The walk reads
 * the events through callbacks, so that the journal streams them from
 * SQLite and the CLI from an array.
 */
#ifndef SF_AUDITCHAIN_H
#define SF_AUDITCHAIN_H

#include <stddef.h>
#include <stdint.h>

#define AUDIT_ZERO_HASH \
    "0000000000000000000000000000000000000000000000000000000000000000"

/* SHA-256 of p as 64 lower-case hex digits. 0 or SF_ECRYPTO. */
int audit_sha256_hex(const void *p, size_t n, char out[65]);

/* The text a checkpoint signs: SHA-256 with the audit key (ECDSA P-256),
 * so `openssl dgst -sha256 -verify` checks it. */
#define AUDIT_CHECKPOINT_MAGIC "secretfree-audit-checkpoint v1"

typedef struct {
	int64_t seq, at;
	const char *kind, *subject, *detail;
	char prev[65], hash[65];
} audit_row;

enum {
	AUDIT_INTACT = 0,
	AUDIT_EDITED,
	AUDIT_DELETED,
	AUDIT_INSERTED,
	AUDIT_REORDERED,
	AUDIT_CHECKPOINT,    /* the chain is whole but differs from a checkpoint */
};

/* "intact", "edited", "deleted", "inserted", "reordered", "checkpoint". */
const char *audit_damage_name(int damage);

/* The event's hash into out (64 hex digits). 0 or SF_ECRYPTO. */
int audit_chain_hash(const char *prev, int64_t seq, int64_t at,
    const char *kind, const char *subject, const char *detail, char out[65]);

/* The text a checkpoint signs, into buf (NUL-terminated); its length. */
size_t audit_checkpoint_text(int64_t seq, const char *head, int64_t at,
    char *buf, size_t len);

typedef struct {
	void *arg;
	/* The next event in seq order into *r (its strings valid until the
	 * next call): 1, 0 at the end, or a negative SF_E*. */
	int (*next)(void *arg, audit_row *r);
	/* The seq of an event whose hash is hash: 1 (and *seq), 0 if none,
	 * or a negative SF_E*. */
	int (*find_hash)(void *arg, const char *hash, int64_t *seq);
	/* The prev of the first event after seq: 1 (and prev), 0 if none,
	 * or a negative SF_E*. */
	int (*next_prev)(void *arg, int64_t seq, char prev[65]);
	/* The last seq the writer says it wrote (the journal's audit_head);
	 * 0: unknown. A broken event after it was inserted. */
	int64_t end;
} audit_source;

typedef struct {
	int64_t events;        /* events walked */
	int64_t last_seq;      /* the last event's seq; 0 if none */
	char last_hash[65];
	int64_t first_bad;     /* the first broken link's seq; 0: intact */
	int damage;            /* AUDIT_* */
	char problem[320];     /* one sentence naming it */
} audit_report;

/*
 * Walk src from the event with seq start (1 for the whole chain), whose
 * prev must be start_prev (AUDIT_ZERO_HASH for the whole chain; NULL:
 * whatever the first event says, for a partial export). Stops at the
 * first broken link (rep->first_bad, damage, problem). 0, or a negative
 * SF_E* from a callback.
 */
int audit_chain_verify(const audit_source *src, int64_t start,
    const char *start_prev, audit_report *rep);

/* Set rep's first broken link (the helpers that look past the walk: the
 * journal's head record, a checkpoint). */
void audit_report_bad(audit_report *rep, int64_t seq, int damage,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
