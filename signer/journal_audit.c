/*
 * journal_audit.c - the journal's tamper-evident audit trail (journal.h,
 * "audit trail"; DESIGN.md, "Audit trail").
 *
 * Every change to the tables that matter (CAs, certificates, device keys,
 * CRLs, manufacturer CAs) appends an event to audit_events from an SQLite
 * trigger, so it is written in the same transaction as the change,
 * whatever code made it. Each event's hash chains it to the one before
 * (common/auditchain.h); audit_head holds the last event's seq and hash,
 * so that the next event chains from what the signer wrote last rather
 * than from whatever row is last now.
 *
 * The triggers call sf_chain(), sf_sha256(), sf_kind() and sf_now(), which
 * journal_audit_functions registers on the journal's writing connection:
 * a stock sqlite3 shell that changes those tables behind the signer's
 * back fails ("no such function"), and one that edits audit_events breaks
 * the chain, which journal_audit_verify finds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "auditchain.h"
#include "err.h"
#include "journal_int.h"
#include "log.h"
#include "pbenum.h"
#include "util.h"

/*
 * The statements every trigger runs, around its kind, subject and detail
 * (SQL expressions over NEW and OLD): the event, then the head.
 */
#define EVENT(kind, subject, detail) \
    " INSERT INTO audit_events (seq, at, kind, subject, detail, prev, hash)" \
    " SELECT h.seq + 1, e.t, e.k, e.s, e.d, h.hash," \
    "  sf_chain(h.hash, h.seq + 1, e.t, e.k, e.s, e.d)" \
    " FROM audit_head h, (SELECT sf_now() AS t, " kind " AS k," \
    "  " subject " AS s, " detail " AS d) e WHERE h.id = 1;" \
    " UPDATE audit_head SET seq = seq + 1, hash = (SELECT hash FROM" \
    "  audit_events WHERE seq = audit_head.seq + 1) WHERE id = 1;"

#define CA_NAME(id) \
    "(SELECT name || '/' || generation FROM cas WHERE id = " id ")"

static const char AUDIT_SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS audit_events ("
    " seq INTEGER PRIMARY KEY,"
    " at INTEGER NOT NULL,"
    " kind TEXT NOT NULL,"
    " subject TEXT NOT NULL,"
    " detail TEXT NOT NULL,"
    " prev TEXT NOT NULL,"
    " hash TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS audit_events_at ON audit_events(at);"
    "CREATE TABLE IF NOT EXISTS audit_head ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " seq INTEGER NOT NULL,"
    " hash TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS audit_checkpoints ("
    " seq INTEGER PRIMARY KEY,"
    " head TEXT NOT NULL,"
    " at INTEGER NOT NULL,"
    " key_label TEXT NOT NULL,"
    " signature BLOB NOT NULL);"
    "INSERT OR IGNORE INTO audit_head (id, seq, hash) VALUES (1, 0, '"
    AUDIT_ZERO_HASH "');"
    /* CAs */
    "CREATE TRIGGER IF NOT EXISTS audit_ca_created AFTER INSERT ON cas BEGIN"
    EVENT("'ca-created'", "NEW.name || '/' || NEW.generation",
    "json_object('role', NEW.role, 'state', NEW.state, 'parent',"
    " coalesce(" CA_NAME("NEW.parent_id") ", ''), 'product_line',"
    " NEW.product_line, 'region', NEW.region, 'key_label', NEW.key_label,"
    " 'subject', NEW.subject, 'serial', NEW.serial, 'cert_sha256',"
    " CASE WHEN NEW.cert_der IS NULL THEN '' ELSE sf_sha256(NEW.cert_der)"
    " END)")
    " END;"
    "CREATE TRIGGER IF NOT EXISTS audit_ca_changed AFTER UPDATE OF state,"
    " cert_der, revoked_at ON cas WHEN OLD.state IS NOT NEW.state OR"
    " OLD.cert_der IS NOT NEW.cert_der OR OLD.revoked_at IS NOT"
    " NEW.revoked_at BEGIN"
    EVENT("sf_kind('ca', OLD.state, NEW.state)",
    "NEW.name || '/' || NEW.generation",
    "json_object('state', NEW.state, 'old_state', OLD.state, 'serial',"
    " NEW.serial, 'cert_sha256', CASE WHEN NEW.cert_der IS NULL THEN ''"
    " ELSE sf_sha256(NEW.cert_der) END, 'retired_at', NEW.retired_at,"
    " 'revoked_at', NEW.revoked_at, 'revocation_reason',"
    " NEW.revocation_reason)")
    " END;"
    /* Certificates */
    "CREATE TRIGGER IF NOT EXISTS audit_cert_issued AFTER INSERT ON certs"
    " BEGIN"
    EVENT("'certificate-issued'", "NEW.serial",
    "json_object('ca', " CA_NAME("NEW.ca_id") ", 'device', NEW.device_id,"
    " 'key_sha256', lower(hex(NEW.key_sha256)), 'profile', NEW.profile,"
    " 'requester', NEW.requester, 'enrollment', NEW.enrollment_id,"
    " 'replaces', NEW.replaces_serial, 'status', NEW.status, 'not_before',"
    " NEW.not_before, 'not_after', NEW.not_after, 'cert_sha256',"
    " sf_sha256(NEW.cert_der))")
    " END;"
    "CREATE TRIGGER IF NOT EXISTS audit_cert_status AFTER UPDATE OF status"
    " ON certs WHEN OLD.status IS NOT NEW.status BEGIN"
    EVENT("sf_kind('certificate', OLD.status, NEW.status)", "NEW.serial",
    "json_object('ca', " CA_NAME("NEW.ca_id") ", 'device', NEW.device_id,"
    " 'status', NEW.status, 'old_status', OLD.status,"
    " 'revocation_reason', NEW.revocation_reason, 'revoked_at',"
    " NEW.revoked_at, 'acked_at', NEW.acked_at)")
    " END;"
    /* Device keys */
    "CREATE TRIGGER IF NOT EXISTS audit_device_registered AFTER INSERT ON"
    " devices BEGIN"
    EVENT("'device-registered'", "NEW.device_id",
    "json_object('key_sha256', lower(hex(NEW.key_sha256)), 'product_line',"
    " NEW.product_line, 'region', NEW.region, 'state', NEW.state,"
    " 'origin', NEW.origin, 'birth_serial', NEW.birth_serial)")
    " END;"
    "CREATE TRIGGER IF NOT EXISTS audit_device_changed AFTER UPDATE OF"
    " state, key_sha256, birth_reuse ON devices WHEN OLD.state IS NOT"
    " NEW.state OR OLD.key_sha256 IS NOT NEW.key_sha256 OR"
    " OLD.birth_reuse IS NOT NEW.birth_reuse BEGIN"
    EVENT("CASE WHEN OLD.key_sha256 IS NOT NEW.key_sha256 THEN"
    " 'device-key-changed' WHEN OLD.state IS NOT NEW.state THEN"
    " sf_kind('device', OLD.state, NEW.state) ELSE 'device-birth-reuse'"
    " END", "NEW.device_id",
    "json_object('state', NEW.state, 'old_state', OLD.state, 'reason',"
    " NEW.state_reason, 'key_sha256', lower(hex(NEW.key_sha256)),"
    " 'old_key_sha256', lower(hex(OLD.key_sha256)), 'birth_reuse',"
    " NEW.birth_reuse)")
    " END;"
    /* CRLs (journal_crl_put deletes a CA's CRLs and inserts the new ones) */
    "CREATE TRIGGER IF NOT EXISTS audit_crl_signed AFTER INSERT ON crls"
    " BEGIN"
    EVENT("'crl-signed'", "coalesce(" CA_NAME("NEW.ca_id") ", NEW.ca_id)"
    " || '#' || NEW.shard",
    "json_object('crl_number', NEW.crl_number, 'this_update',"
    " NEW.this_update, 'next_update', NEW.next_update, 'revoked',"
    " NEW.revoked_count, 'crl_sha256', sf_sha256(NEW.der))")
    " END;"
    /* Manufacturer CAs (just-in-time provisioning) */
    "CREATE TRIGGER IF NOT EXISTS audit_mfr_registered AFTER INSERT ON"
    " manufacturers BEGIN"
    EVENT("'manufacturer-registered'", "NEW.name",
    "json_object('product_line', NEW.product_line, 'subject', NEW.subject,"
    " 'spki_sha256', lower(hex(NEW.spki_sha256)), 'cert_sha256',"
    " sf_sha256(NEW.cert_der))")
    " END;"
    "CREATE TRIGGER IF NOT EXISTS audit_mfr_crl AFTER UPDATE OF crl_der ON"
    " manufacturers WHEN OLD.crl_der IS NOT NEW.crl_der BEGIN"
    EVENT("'manufacturer-crl'", "NEW.name",
    "json_object('crl_number', NEW.crl_number, 'crl_sha256',"
    " CASE WHEN NEW.crl_der IS NULL THEN '' ELSE sf_sha256(NEW.crl_der)"
    " END)")
    " END;";

/* The first event: the journal made, or brought up from version ?1 (the
 * events before it are not in the chain; it counts what was there). */
static const char GENESIS[] =
    "INSERT INTO audit_events (seq, at, kind, subject, detail, prev, hash)"
    " SELECT h.seq + 1, e.t, e.k, e.s, e.d, h.hash,"
    "  sf_chain(h.hash, h.seq + 1, e.t, e.k, e.s, e.d)"
    " FROM audit_head h, (SELECT sf_now() AS t,"
    "  CASE WHEN ?1 = 0 THEN 'journal-created' ELSE 'journal-upgraded' END"
    "  AS k, 'journal' AS s,"
    "  json_object('from_version', ?1, 'to_version', ?2, 'cas',"
    "  (SELECT count(*) FROM cas), 'certs', (SELECT count(*) FROM certs),"
    "  'devices', (SELECT count(*) FROM devices), 'manufacturers',"
    "  (SELECT count(*) FROM manufacturers)) AS d) e"
    " WHERE h.id = 1 AND h.seq = 0;";

static const char GENESIS_HEAD[] =
    "UPDATE audit_head SET seq = seq + 1, hash = (SELECT hash FROM"
    " audit_events WHERE seq = audit_head.seq + 1) WHERE id = 1 AND"
    " seq = 0 AND EXISTS (SELECT 1 FROM audit_events WHERE seq = 1);";

static const char *
text_arg(sqlite3_value *v)
{
	const unsigned char *s = sqlite3_value_text(v);

	return s ? (const char *)s : "";
}

/* sf_chain(prev, seq, at, kind, subject, detail): the event's hash. */
static void
fn_chain(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
	char out[65];

	(void)argc;
	if (audit_chain_hash(text_arg(argv[0]), sqlite3_value_int64(argv[1]),
	    sqlite3_value_int64(argv[2]), text_arg(argv[3]),
	    text_arg(argv[4]), text_arg(argv[5]), out) != 0) {
		sqlite3_result_error(cx, "sf_chain: digest failed", -1);
		return;
	}
	sqlite3_result_text(cx, out, 64, SQLITE_TRANSIENT);
}

/* sf_sha256(blob): lower-case hex. */
static void
fn_sha256(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
	char out[65];
	const void *p = sqlite3_value_blob(argv[0]);
	int n = sqlite3_value_bytes(argv[0]);

	(void)argc;
	if (audit_sha256_hex(p ? p : "", (size_t)n, out) != 0) {
		sqlite3_result_error(cx, "sf_sha256: digest failed", -1);
		return;
	}
	sqlite3_result_text(cx, out, 64, SQLITE_TRANSIENT);
}

/* sf_now(): the signer's clock. */
static void
fn_now(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
	(void)argc;
	(void)argv;
	sqlite3_result_int64(cx, sf_now());
}

/* The kind of a state change, from the enums' names (pbenum.h). */
static const char *
state_kind(const char *what, int from, int to)
{
	if (strcmp(what, "ca") == 0) {
		switch (to) {
		case CA_ACTIVE: return "ca-certified";
		case CA_RETIRING: return "ca-retiring";
		case CA_RETIRED: return "ca-retired";
		case CA_REVOKED: return "ca-revoked";
		}
		return "ca-changed";
	}
	if (strcmp(what, "certificate") == 0) {
		switch (to) {
		case CERT_ACTIVE:
			return from == CERT_PENDING_ACK ?
			    "certificate-acknowledged" : "certificate-status";
		case CERT_SUPERSEDED: return "certificate-superseded";
		case CERT_REVOKED: return "certificate-revoked";
		case CERT_EXPIRED: return "certificate-expired";
		}
		return "certificate-status";
	}
	switch (to) {
	case DEVICE_ACTIVE:
		return from == DEVICE_DISABLED ? "device-enabled" :
		    "device-active";
	case DEVICE_DISABLED: return "device-disabled";
	case DEVICE_REVOKED: return "device-revoked";
	}
	return "device-state";
}

/* sf_kind(what, old, new): "certificate-revoked" and the like. */
static void
fn_kind(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
	(void)argc;
	sqlite3_result_text(cx, state_kind(text_arg(argv[0]),
	    sqlite3_value_int(argv[1]), sqlite3_value_int(argv[2])), -1,
	    SQLITE_STATIC);
}

int
journal_audit_functions(sqlite3 *db)
{
	int f = SQLITE_UTF8 | SQLITE_DETERMINISTIC;

	if (sqlite3_create_function(db, "sf_chain", 6, f, NULL, fn_chain,
	    NULL, NULL) != SQLITE_OK ||
	    sqlite3_create_function(db, "sf_sha256", 1, f, NULL, fn_sha256,
	    NULL, NULL) != SQLITE_OK ||
	    sqlite3_create_function(db, "sf_kind", 3, f, NULL, fn_kind,
	    NULL, NULL) != SQLITE_OK ||
	    sqlite3_create_function(db, "sf_now", 0, SQLITE_UTF8, NULL, fn_now,
	    NULL, NULL) != SQLITE_OK)
		return SF_EDB;
	return 0;
}

int
journal_audit_install(sqlite3 *db, int from_version, int to_version)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = journal_exec(db, AUDIT_SCHEMA)) != 0)
		return rc;
	if ((rc = journal_prepare(db, GENESIS, &st, "audit genesis")) != 0)
		return rc;
	sqlite3_bind_int(st, 1, from_version);
	sqlite3_bind_int(st, 2, to_version);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 :
	    journal_db_err(db, "audit genesis");
	sqlite3_finalize(st);
	if (rc == 0)
		rc = journal_exec(db, GENESIS_HEAD);
	return rc;
}

/* ---- reading ---- */

void
journal_audit_events_free(journal_audit_event *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].kind);
		free(v[i].subject);
		free(v[i].detail);
	}
	free(v);
}

static void
copy_hex(char dst[65], sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	sf_strlcpy(dst, s ? (const char *)s : "", 65);
}

#define EVENT_COLS "seq, at, kind, subject, detail, prev, hash"

int
journal_audit_list(journal *j, int64_t after_seq, int64_t since,
    size_t limit, journal_audit_event **out, size_t *n)
{
	sqlite3_stmt *st = NULL;
	journal_audit_event *v = NULL;
	size_t k = 0;
	int r, rc = SF_EDB;

	*out = NULL;
	*n = 0;
	if (limit == 0)
		return 0;
	if ((v = calloc(limit, sizeof *v)) == NULL)
		return SF_ENOMEM;
	pthread_mutex_lock(&j->rlock);
	/* From a time: the first event at or after it, then every event
	 * after that one (the clock may step back; seq does not). */
	if (journal_prepare(j->rdb, "SELECT " EVENT_COLS " FROM audit_events"
	    " WHERE seq > max(?1, CASE WHEN ?2 > 0 THEN coalesce((SELECT"
	    " min(seq) FROM audit_events WHERE at >= ?2), 1 << 62) - 1"
	    " ELSE 0 END) ORDER BY seq LIMIT ?3", &st,
	    "prepare audit list") != 0)
		goto out;
	sqlite3_bind_int64(st, 1, after_seq);
	sqlite3_bind_int64(st, 2, since);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		journal_audit_event *e = &v[k++];

		e->seq = sqlite3_column_int64(st, 0);
		e->at = sqlite3_column_int64(st, 1);
		e->kind = journal_col_strdup(st, 2);
		e->subject = journal_col_strdup(st, 3);
		e->detail = journal_col_strdup(st, 4);
		copy_hex(e->prev, st, 5);
		copy_hex(e->hash, st, 6);
		if (!e->kind || !e->subject || !e->detail) {
			rc = SF_ENOMEM;
			goto out;
		}
	}
	if (r != SQLITE_DONE) {
		rc = journal_db_err(j->rdb, "list audit events");
		goto out;
	}
	*out = v;
	*n = k;
	v = NULL;
	rc = 0;
out:
	journal_audit_events_free(v, k);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->rlock);
	return rc;
}

int
journal_audit_head(journal *j, int64_t *seq, char head[65])
{
	sqlite3_stmt *st = NULL;
	int r, rc = SF_EDB;

	*seq = 0;
	sf_strlcpy(head, AUDIT_ZERO_HASH, 65);
	pthread_mutex_lock(&j->rlock);
	if (journal_prepare(j->rdb, "SELECT seq, hash FROM audit_head"
	    " WHERE id = 1", &st, "prepare audit head") != 0)
		goto out;
	if ((r = sqlite3_step(st)) == SQLITE_ROW) {
		*seq = sqlite3_column_int64(st, 0);
		copy_hex(head, st, 1);
	} else if (r != SQLITE_DONE) {
		rc = journal_db_err(j->rdb, "read audit head");
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->rlock);
	return rc;
}

/* ---- verification: the chain as audit_source ---- */

struct walk {
	sqlite3 *db;
	sqlite3_stmt *all, *by_hash, *after;
	char *kind, *subject, *detail;
};

static int
walk_next(void *arg, audit_row *r)
{
	struct walk *w = arg;
	int s = sqlite3_step(w->all);

	if (s == SQLITE_DONE)
		return 0;
	if (s != SQLITE_ROW)
		return journal_db_err(w->db, "verify audit");
	free(w->kind);
	free(w->subject);
	free(w->detail);
	w->kind = journal_col_strdup(w->all, 2);
	w->subject = journal_col_strdup(w->all, 3);
	w->detail = journal_col_strdup(w->all, 4);
	if (!w->kind || !w->subject || !w->detail)
		return SF_ENOMEM;
	r->seq = sqlite3_column_int64(w->all, 0);
	r->at = sqlite3_column_int64(w->all, 1);
	r->kind = w->kind;
	r->subject = w->subject;
	r->detail = w->detail;
	copy_hex(r->prev, w->all, 5);
	copy_hex(r->hash, w->all, 6);
	return 1;
}

static int
walk_find_hash(void *arg, const char *hash, int64_t *seq)
{
	struct walk *w = arg;
	int s;

	sqlite3_reset(w->by_hash);
	journal_bind_text(w->by_hash, 1, hash);
	if ((s = sqlite3_step(w->by_hash)) == SQLITE_ROW) {
		*seq = sqlite3_column_int64(w->by_hash, 0);
		return 1;
	}
	return s == SQLITE_DONE ? 0 : journal_db_err(w->db,
	    "verify audit");
}

static int
walk_next_prev(void *arg, int64_t seq, char prev[65])
{
	struct walk *w = arg;
	int s;

	sqlite3_reset(w->after);
	sqlite3_bind_int64(w->after, 1, seq);
	if ((s = sqlite3_step(w->after)) == SQLITE_ROW) {
		copy_hex(prev, w->after, 0);
		return 1;
	}
	return s == SQLITE_DONE ? 0 : journal_db_err(w->db,
	    "verify audit");
}

/* audit_head's seq (0 if the row is gone). */
static int
head_seq(sqlite3 *db, int64_t *seq)
{
	sqlite3_stmt *st = NULL;
	int r;

	*seq = 0;
	if (journal_prepare(db, "SELECT seq FROM audit_head WHERE id = 1",
	    &st, "prepare audit head") != 0)
		return SF_EDB;
	if ((r = sqlite3_step(st)) == SQLITE_ROW)
		*seq = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return r == SQLITE_ROW || r == SQLITE_DONE ? 0 :
	    journal_db_err(db, "read audit head");
}

/* After an intact walk: what the signer wrote last (audit_head) and the
 * checkpoints must agree with the chain. */
static int
verify_ends(sqlite3 *db, audit_report *rep, int64_t *checkpoints)
{
	sqlite3_stmt *st = NULL;
	int r, rc = SF_EDB;
	int64_t hseq = 0;
	char hhash[65] = "";

	if (journal_prepare(db, "SELECT seq, hash FROM audit_head WHERE"
	    " id = 1", &st, "prepare audit head") != 0)
		return rc;
	if ((r = sqlite3_step(st)) == SQLITE_ROW) {
		hseq = sqlite3_column_int64(st, 0);
		copy_hex(hhash, st, 1);
	} else if (r != SQLITE_DONE)
		goto out;
	sqlite3_finalize(st);
	st = NULL;
	if (r == SQLITE_DONE)
		audit_report_bad(rep, rep->last_seq + 1, AUDIT_DELETED,
		    "the record of the last event written (audit_head) was"
		    " deleted");
	else if (hseq > rep->last_seq)
		audit_report_bad(rep, rep->last_seq + 1, AUDIT_DELETED,
		    "event%s %lld%s%.0lld %s missing: the signer wrote up to"
		    " event %lld (deleted)", hseq > rep->last_seq + 1 ? "s" : "",
		    (long long)rep->last_seq + 1, hseq > rep->last_seq + 1 ?
		    ".." : "", hseq > rep->last_seq + 1 ? (long long)hseq : 0,
		    hseq > rep->last_seq + 1 ? "are" : "is", (long long)hseq);
	else if (hseq < rep->last_seq)
		audit_report_bad(rep, hseq + 1, AUDIT_INSERTED, "event %lld"
		    " was not written by the signer, whose last event is %lld"
		    " (inserted)", (long long)hseq + 1, (long long)hseq);
	else if (strcmp(hhash, rep->last_hash) != 0)
		audit_report_bad(rep, hseq, AUDIT_EDITED, "event %lld is not"
		    " the event the signer wrote last: its hash differs"
		    " (edited)", (long long)hseq);
	if (rep->first_bad) {
		rc = 0;
		goto out;
	}
	if (journal_prepare(db, "SELECT c.seq, c.at, e.hash IS c.head"
	    " FROM audit_checkpoints c LEFT JOIN audit_events e ON e.seq ="
	    " c.seq ORDER BY c.seq", &st, "prepare audit checkpoints") != 0)
		goto out;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_int(st, 2)) {
			(*checkpoints)++;
			continue;
		}
		audit_report_bad(rep, sqlite3_column_int64(st, 0),
		    AUDIT_CHECKPOINT, "event %lld is not the one the"
		    " checkpoint of %lld signed: the events up to it were"
		    " rewritten", (long long)sqlite3_column_int64(st, 0),
		    (long long)sqlite3_column_int64(st, 1));
		break;
	}
	if (r != SQLITE_DONE && r != SQLITE_ROW)
		goto out;
	rc = 0;
out:
	if (rc)
		rc = journal_db_err(db, "verify audit");
	sqlite3_finalize(st);
	return rc;
}

int
journal_audit_verify(journal *j, audit_report *rep, int64_t *checkpoints)
{
	struct walk w;
	audit_source src = { &w, walk_next, walk_find_hash, walk_next_prev,
	    0 };
	sqlite3 *db = NULL;
	int rc = SF_EDB;

	memset(&w, 0, sizeof w);
	*checkpoints = 0;
	memset(rep, 0, sizeof *rep);
	/*
	 * A connection of its own: the walk reads the whole chain, and the
	 * reading connection's lock would keep issuance waiting meanwhile.
	 */
	if (sqlite3_open_v2(j->path, &db, SQLITE_OPEN_READONLY |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		log_warnx("journal: verify audit: cannot open %s", j->path);
		goto out;
	}
	sqlite3_busy_timeout(db, 10000);
	sqlite3_extended_result_codes(db, 1);
	w.db = db;
	/* One snapshot for the whole walk. */
	if (journal_exec(db, "SAVEPOINT audit_verify") != 0)
		goto out;
	if (journal_prepare(db, "SELECT " EVENT_COLS " FROM audit_events"
	    " ORDER BY seq", &w.all, "prepare audit verify") != 0 ||
	    journal_prepare(db, "SELECT seq FROM audit_events WHERE"
	    " hash = ? ORDER BY seq LIMIT 1", &w.by_hash,
	    "prepare audit verify") != 0 ||
	    journal_prepare(db, "SELECT prev FROM audit_events WHERE"
	    " seq > ? ORDER BY seq LIMIT 1", &w.after,
	    "prepare audit verify") != 0)
		goto end;
	if (head_seq(db, &src.end) != 0)
		goto end;
	if ((rc = audit_chain_verify(&src, 1, AUDIT_ZERO_HASH, rep)) == 0 &&
	    rep->first_bad == 0)
		rc = verify_ends(db, rep, checkpoints);
end:
	sqlite3_finalize(w.all);
	sqlite3_finalize(w.by_hash);
	sqlite3_finalize(w.after);
	journal_exec(db, "RELEASE audit_verify");
out:
	sqlite3_close(db);
	free(w.kind);
	free(w.subject);
	free(w.detail);
	return rc;
}

/* ---- checkpoints ---- */

int
journal_audit_checkpoint_put(journal *j, const journal_audit_checkpoint *c)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = journal_tx_begin(j)) != 0)
		return rc;
	if ((rc = journal_prepare(j->wdb, "INSERT OR IGNORE INTO"
	    " audit_checkpoints (seq, head, at, key_label, signature)"
	    " VALUES (?,?,?,?,?)", &st, "prepare checkpoint")) == 0) {
		sqlite3_bind_int64(st, 1, c->seq);
		journal_bind_text(st, 2, c->head);
		sqlite3_bind_int64(st, 3, c->at);
		journal_bind_text(st, 4, c->key_label);
		sqlite3_bind_blob(st, 5, c->signature, (int)c->signature_len,
		    SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 :
		    journal_db_err(j->wdb, "insert checkpoint");
		sqlite3_finalize(st);
	}
	return journal_tx_end(j, rc);
}

void
journal_audit_checkpoint_fini(journal_audit_checkpoint *c)
{
	if (c == NULL)
		return;
	free(c->key_label);
	free(c->signature);
	memset(c, 0, sizeof *c);
}

void
journal_audit_checkpoints_free(journal_audit_checkpoint *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].key_label);
		free(v[i].signature);
	}
	free(v);
}

int
journal_audit_checkpoints(journal *j, int64_t from_seq, int64_t to_seq,
    size_t limit, journal_audit_checkpoint **out, size_t *n)
{
	sqlite3_stmt *st = NULL;
	journal_audit_checkpoint *v = NULL;
	size_t k = 0;
	int r, rc = SF_EDB;

	*out = NULL;
	*n = 0;
	if (limit == 0)
		return 0;
	if ((v = calloc(limit, sizeof *v)) == NULL)
		return SF_ENOMEM;
	pthread_mutex_lock(&j->rlock);
	/* to_seq < 0: the last limit checkpoints, in order. */
	if (journal_prepare(j->rdb, "SELECT * FROM (SELECT seq, head, at,"
	    " key_label, signature FROM audit_checkpoints WHERE seq >= ?1 AND"
	    " (?2 < 0 OR seq <= ?2) ORDER BY CASE WHEN ?2 < 0 THEN -seq ELSE"
	    " seq END LIMIT ?3) ORDER BY seq",
	    &st, "prepare checkpoints") != 0)
		goto out;
	sqlite3_bind_int64(st, 1, from_seq);
	sqlite3_bind_int64(st, 2, to_seq);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		journal_audit_checkpoint *c = &v[k++];

		c->seq = sqlite3_column_int64(st, 0);
		copy_hex(c->head, st, 1);
		c->at = sqlite3_column_int64(st, 2);
		c->key_label = journal_col_strdup(st, 3);
		c->signature = journal_col_blobdup(st, 4, &c->signature_len);
		if (c->key_label == NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
	}
	if (r != SQLITE_DONE) {
		rc = journal_db_err(j->rdb, "read checkpoints");
		goto out;
	}
	*out = v;
	*n = k;
	v = NULL;
	rc = 0;
out:
	journal_audit_checkpoints_free(v, k);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->rlock);
	return rc;
}
