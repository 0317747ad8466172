/*
 * journal_cert.c - the issued certificates of the signer's journal (see
 * journal.h): look-ups, lists, counts and revocation. Recording a new
 * certificate goes through the group commit in journal.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "err.h"
#include "journal_int.h"
#include "log.h"
#include "pbenum.h"
#include "util.h"

static const char *CERT_COLS =
    "c.ca_id, a.name, c.serial, c.subject, c.device_id, c.key_sha256,"
    " c.not_before, c.not_after, c.issued_at, c.requester, c.profile,"
    " c.enrollment_id, c.status, c.revocation_reason, c.revoked_at,"
    " c.cert_der, c.replaces_serial, c.ack_deadline, c.acked_at";

static int
cert_from_row(sqlite3_stmt *st, journal_cert_row *r)
{
	const void *fp;

	memset(r, 0, sizeof *r);
	r->ca_id = sqlite3_column_int64(st, 0);
	r->ca_name = journal_col_strdup(st, 1);
	r->serial = journal_col_strdup(st, 2);
	r->subject = journal_col_strdup(st, 3);
	r->device_id = journal_col_strdup(st, 4);
	if ((fp = sqlite3_column_blob(st, 5)) != NULL &&
	    sqlite3_column_bytes(st, 5) == 32)
		memcpy(r->key_sha256, fp, 32);
	r->not_before = sqlite3_column_int64(st, 6);
	r->not_after = sqlite3_column_int64(st, 7);
	r->issued_at = sqlite3_column_int64(st, 8);
	r->requester = journal_col_strdup(st, 9);
	r->profile = journal_col_strdup(st, 10);
	r->enrollment_id = journal_col_strdup(st, 11);
	r->status = sqlite3_column_int(st, 12);
	r->revocation_reason = sqlite3_column_int(st, 13);
	r->revoked_at = sqlite3_column_int64(st, 14);
	r->der = journal_col_blobdup(st, 15, &r->der_len);
	r->replaces_serial = journal_col_strdup(st, 16);
	r->ack_deadline = sqlite3_column_int64(st, 17);
	r->acked_at = sqlite3_column_int64(st, 18);
	if (!r->ca_name || !r->serial || !r->subject || !r->device_id ||
	    !r->requester || !r->profile || !r->enrollment_id || !r->der ||
	    !r->replaces_serial) {
		journal_cert_row_fini(r);
		return SF_ENOMEM;
	}
	return 0;
}

void
journal_cert_row_fini(journal_cert_row *r)
{
	if (r == NULL)
		return;
	free(r->ca_name);
	free(r->serial);
	free(r->subject);
	free(r->device_id);
	free(r->requester);
	free(r->profile);
	free(r->enrollment_id);
	free(r->der);
	free(r->replaces_serial);
	memset(r, 0, sizeof *r);
}

void
journal_cert_rows_free(journal_cert_row *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		journal_cert_row_fini(&v[i]);
	free(v);
}

int
journal_cert_get(journal *j, const char *serial, int64_t ca_id,
    journal_cert_row *out)
{
	sqlite3_stmt *st = NULL;
	char *sql;
	int rc = SF_EDB, r;

	memset(out, 0, sizeof *out);
	sql = sf_aprintf("SELECT %s FROM certs c JOIN cas a ON a.id = c.ca_id"
	    " WHERE c.serial = ?1 AND (?2 = 0 OR c.ca_id = ?2)"
	    " ORDER BY c.issued_at DESC LIMIT 1", CERT_COLS);
	if (sql == NULL)
		return SF_ENOMEM;
	pthread_mutex_lock(&j->rlock);
	if (journal_rstmt(j, sql, &st, "prepare certificate lookup") != 0)
		goto out;
	journal_bind_text(st, 1, serial);
	sqlite3_bind_int64(st, 2, ca_id);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW)
		rc = cert_from_row(st, out);
	else if (r == SQLITE_DONE)
		rc = SF_ENOTFOUND;
	else
		rc = journal_db_err(j->rdb, "certificate lookup");
out:
	journal_rstmt_done(st);
	pthread_mutex_unlock(&j->rlock);
	free(sql);
	return rc;
}

/*
 * Certificates WHERE where (CERT_COLS of certs c joined with its CA a),
 * its parameters bound in order from the arguments as types says: 'i' an
 * int64_t, 't' a string. *out (n of them) is the caller's.
 */
static int
cert_select(journal *j, journal_cert_row **out, size_t *n, const char *what,
    const char *where, const char *types, ...)
{
	sqlite3_stmt *st = NULL;
	journal_cert_row *v = NULL, *nv;
	size_t cnt = 0;
	va_list ap;
	char *sql;
	int rc = SF_EDB, r;

	*out = NULL;
	*n = 0;
	sql = sf_aprintf("SELECT %s FROM certs c JOIN cas a ON a.id = c.ca_id"
	    " %s", CERT_COLS, where);
	if (sql == NULL)
		return SF_ENOMEM;
	pthread_mutex_lock(&j->rlock);
	if (journal_rstmt(j, sql, &st, what) != 0)
		goto out;
	va_start(ap, types);
	for (int i = 0; types[i]; i++) {
		if (types[i] == 'i')
			sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
		else
			journal_bind_text(st, i + 1, va_arg(ap, const char *));
	}
	va_end(ap);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if ((nv = realloc(v, (cnt + 1) * sizeof *v)) == NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
		v = nv;
		if ((rc = cert_from_row(st, &v[cnt])) != 0)
			goto out;
		cnt++;
	}
	if (r != SQLITE_DONE) {
		rc = journal_db_err(j->rdb, what);
		goto out;
	}
	*out = v;
	*n = cnt;
	v = NULL;  /* transferred */
	cnt = 0;
	rc = 0;
out:
	journal_cert_rows_free(v, cnt);
	journal_rstmt_done(st);
	pthread_mutex_unlock(&j->rlock);
	free(sql);
	return rc;
}

int
journal_cert_list(journal *j, int64_t ca_id, const char *device_id,
    const char *after, size_t limit, journal_cert_row **out, size_t *n)
{
	return cert_select(j, out, n, "list certificates",
	    "WHERE (?1 = 0 OR c.ca_id = ?1) AND (?2 = '' OR c.device_id = ?2)"
	    " AND c.serial > ?3 ORDER BY c.serial LIMIT ?4", "itti", ca_id,
	    device_id, after, (int64_t)limit);
}

/* The count sql (one parameter: a CA id) answers. */
static int
count_of(journal *j, const char *sql, int64_t ca_id, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB;

	*out = 0;
	pthread_mutex_lock(&j->rlock);
	if (journal_prepare(j->rdb, sql, &st, "prepare count") != 0)
		goto out;
	sqlite3_bind_int64(st, 1, ca_id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = 0;
	} else
		rc = journal_db_err(j->rdb, "count");
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->rlock);
	return rc;
}

int
journal_cert_count(journal *j, int64_t ca_id, int64_t *out)
{
	return count_of(j, "SELECT count(*) FROM certs WHERE ?1 = 0 OR"
	    " ca_id = ?1", ca_id, out);
}

int
journal_cert_revoke(journal *j, int64_t ca_id, const char *serial, int reason,
    int64_t when)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB;

	pthread_mutex_lock(&j->wlock);
	/* 4 = CERTIFICATE_STATUS_REVOKED */
	if (journal_prepare(j->wdb, "UPDATE certs SET status = 4, revoked_at = ?,"
	    " revocation_reason = ? WHERE ca_id = ? AND serial = ? AND"
	    " status != 4", &st, "prepare revoke") != 0)
		goto out;
	sqlite3_bind_int64(st, 1, when);
	sqlite3_bind_int(st, 2, reason);
	sqlite3_bind_int64(st, 3, ca_id);
	journal_bind_text(st, 4, serial);
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = journal_db_err(j->wdb, "revoke");
		goto out;
	}
	if (sqlite3_changes(j->wdb) == 1)
		rc = 0;
	else {
		sqlite3_finalize(st);
		st = NULL;
		rc = SF_ENOTFOUND;
		if (sqlite3_prepare_v2(j->wdb, "SELECT 1 FROM certs WHERE"
		    " ca_id = ? AND serial = ?", -1, &st, NULL) == SQLITE_OK) {
			sqlite3_bind_int64(st, 1, ca_id);
			journal_bind_text(st, 2, serial);
			if (sqlite3_step(st) == SQLITE_ROW)
				rc = SF_ESTATE;
		}
	}
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->wlock);
	return rc;
}

/* "?5,?6,..." for n ids after four other parameters (malloc'd). */
static char *
id_params(size_t n)
{
	char *v = malloc(n * 12 + 1), *p = v;

	for (size_t i = 0; v && i < n; i++)
		p += sprintf(p, "%s?%zu", i ? "," : "", i + 5);
	return v;
}

/* With wlock held, st's parameters 5.. bound to ids: the rows it returns
 * (ca_id, serial, device_id) appended to *out. */
static int
collect_revoked(journal *j, sqlite3_stmt *st, journal_revoked **out,
    size_t *n)
{
	journal_revoked *nv;
	int r;

	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if ((nv = realloc(*out, (*n + 1) * sizeof **out)) == NULL)
			return SF_ENOMEM;
		*out = nv;
		nv[*n].ca_id = sqlite3_column_int64(st, 0);
		sf_strlcpy(nv[*n].serial, (const char *)sqlite3_column_text(st,
		    1), sizeof nv[*n].serial);
		sf_strlcpy(nv[*n].device_id, (const char *)sqlite3_column_text(
		    st, 2), sizeof nv[*n].device_id);
		(*n)++;
	}
	return r == SQLITE_DONE ? 0 : journal_db_err(j->wdb, "revoke batch");
}

int
journal_cert_revoke_batch(journal *j, const int64_t *ids, size_t n,
    int reason, int64_t when, size_t max, journal_revoked **out,
    size_t *nout, int64_t *remaining)
{
	sqlite3_stmt *up = NULL, *cnt = NULL;
	char *in, *sql_up = NULL, *sql_cnt = NULL;
	int rc = SF_ENOMEM;

	*out = NULL;
	*nout = 0;
	*remaining = 0;
	if (n == 0)
		return 0;
	if ((in = id_params(n)) == NULL ||
	    (sql_up = sf_aprintf("UPDATE certs SET status = ?1,"
	    " revoked_at = ?2, revocation_reason = ?3 WHERE rowid IN"
	    " (SELECT rowid FROM certs WHERE ca_id IN (%s) AND status != ?1"
	    " LIMIT ?4) RETURNING ca_id, serial, device_id", in)) == NULL ||
	    (sql_cnt = sf_aprintf("SELECT count(*) FROM certs WHERE ca_id IN"
	    " (%s) AND status != ?1", in)) ==
	    NULL)
		goto out;
	if ((rc = journal_tx_begin(j)) != 0)
		goto out;
	rc = SF_EDB;
	if (journal_prepare(j->wdb, sql_up, &up, "prepare revoke batch") != 0 ||
	    journal_prepare(j->wdb, sql_cnt, &cnt, "prepare revoke count") != 0)
		goto end;
	/* The count uses ?1 and the ids: ?2-?4 are unused slots there. */
	for (int k = 0; k < 2; k++) {
		sqlite3_stmt *st = k ? cnt : up;

		sqlite3_bind_int(st, 1, CERT_REVOKED);
		sqlite3_bind_int64(st, 2, when);
		sqlite3_bind_int(st, 3, reason);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)max);
		for (size_t i = 0; i < n; i++)
			sqlite3_bind_int64(st, (int)i + 5, ids[i]);
	}
	if (max > 0 && (rc = collect_revoked(j, up, out, nout)) != 0)
		goto end;
	rc = SF_EDB;
	if (sqlite3_step(cnt) == SQLITE_ROW) {
		*remaining = sqlite3_column_int64(cnt, 0);
		rc = 0;
	} else
		journal_db_err(j->wdb, "revoke count");
end:
	sqlite3_finalize(up);
	sqlite3_finalize(cnt);
	if ((rc = journal_tx_end(j, rc)) != 0) {
		free(*out);
		*out = NULL;
		*nout = 0;
	}
out:
	free(in);
	free(sql_up);
	free(sql_cnt);
	return rc;
}

int
journal_cert_revoked(journal *j, int64_t ca_id, int64_t expired_before,
    int (*cb)(const char *, int64_t, int, void *), void *arg)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB, r;

	pthread_mutex_lock(&j->rlock);
	/* 3 = CERTIFICATE_STATUS_SUPERSEDED, 4 = REVOKED; reason 4 =
	 * superseded (RFC 5280). */
	if (journal_prepare(j->rdb, "SELECT serial, revoked_at, CASE WHEN"
	    " status = 3 AND revocation_reason = 0 THEN 4 ELSE"
	    " revocation_reason END FROM certs WHERE ca_id = ? AND"
	    " status IN (3, 4) AND not_after >= ? ORDER BY serial", &st,
	    "prepare revoked list") != 0)
		goto out;
	sqlite3_bind_int64(st, 1, ca_id);
	sqlite3_bind_int64(st, 2, expired_before);
	rc = 0;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = cb((const char *)sqlite3_column_text(st, 0),
		    sqlite3_column_int64(st, 1), sqlite3_column_int(st, 2),
		    arg)) != 0)
			goto out;
	}
	if (r != SQLITE_DONE)
		rc = journal_db_err(j->rdb, "revoked list");
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->rlock);
	return rc;
}

int
journal_cert_issued_since(journal *j, int64_t since,
    int (*cb)(const char *, int64_t, void *), void *arg)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB, r;

	pthread_mutex_lock(&j->rlock);
	/* The literal "!= ''" lets SQLite use the partial index
	 * certs_issued. */
	if (journal_prepare(j->rdb, "SELECT device_id, issued_at FROM certs"
	    " WHERE issued_at >= ? AND device_id != ''"
	    " ORDER BY issued_at, rowid", &st,
	    "prepare issued since") != 0)
		goto out;
	sqlite3_bind_int64(st, 1, since);
	rc = 0;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = cb((const char *)sqlite3_column_text(st, 0),
		    sqlite3_column_int64(st, 1), arg)) != 0)
			goto out;
	}
	if (r != SQLITE_DONE)
		rc = journal_db_err(j->rdb, "issued since");
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->rlock);
	return rc;
}

int
journal_cert_revoked_count(journal *j, int64_t ca_id, int64_t *out)
{
	/* 3 = CERTIFICATE_STATUS_SUPERSEDED, 4 = REVOKED */
	return count_of(j, "SELECT count(*) FROM certs WHERE ca_id = ? AND"
	    " status IN (3, 4)", ca_id, out);
}

int
journal_cert_live(journal *j, const char *device_id, int64_t now,
    journal_cert_row **out, size_t *n)
{
	/* Served by the index certs_live (device_id, status, not_after). */
	return cert_select(j, out, n, "live certificates",
	    "WHERE c.device_id = ?1 AND c.status IN (?2, ?3)"
	    " AND c.not_after > ?4 ORDER BY c.issued_at, c.rowid", "tiii",
	    device_id, (int64_t)CERT_ACTIVE, (int64_t)CERT_PENDING_ACK, now);
}

int
journal_cert_by_enrollment(journal *j, const char *enrollment_id,
    size_t limit, journal_cert_row **out, size_t *n)
{
	/* The literal "!= ''" lets SQLite use the partial index
	 * certs_enrollment. */
	return cert_select(j, out, n, "certificates by enrollment",
	    "WHERE c.enrollment_id = ?1 AND c.enrollment_id != ''"
	    " ORDER BY c.issued_at, c.rowid LIMIT ?2", "ti", enrollment_id,
	    (int64_t)limit);
}

int
journal_cert_revoke_refs(journal *j, const journal_cert_ref *refs,
    size_t n, int reason, int64_t when, const journal_device_state *dev,
    uint8_t *changed)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB, intx = 0;

	pthread_mutex_lock(&j->wlock);
	if (journal_prepare(j->wdb, "UPDATE certs SET status = ?1,"
	    " revoked_at = ?2, revocation_reason = ?3 WHERE ca_id = ?4 AND"
	    " serial = ?5 AND status != ?1", &st, "prepare revoke batch") != 0)
		goto out;
	if (journal_exec(j->wdb, "BEGIN IMMEDIATE") != 0)
		goto out;
	intx = 1;
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int(st, 1, CERT_REVOKED);
		sqlite3_bind_int64(st, 2, when);
		sqlite3_bind_int(st, 3, reason);
		sqlite3_bind_int64(st, 4, refs[i].ca_id);
		journal_bind_text(st, 5, refs[i].serial);
		if (sqlite3_step(st) != SQLITE_DONE) {
			rc = journal_db_err(j->wdb, "revoke batch");
			goto out;
		}
		if (changed)
			changed[i] = sqlite3_changes(j->wdb) == 1;
	}
	if (dev && (rc = journal_device_state_tx(j, dev, when)) != 0)
		goto out;
	rc = journal_exec(j->wdb, "COMMIT");
	intx = rc != 0;
out:
	if (intx)
		journal_exec(j->wdb, "ROLLBACK");
	if (rc != 0 && changed)
		memset(changed, 0, n);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->wlock);
	return rc;
}

/* Run st (its parameters bound) on wdb: SF_EDB if it fails, else the rows
 * it changed in *changes. */
static int
step_changes(journal *j, sqlite3_stmt *st, const char *what, int *changes)
{
	if (sqlite3_step(st) != SQLITE_DONE)
		return journal_db_err(j->wdb, what);
	*changes = sqlite3_changes(j->wdb);
	return 0;
}

int
journal_cert_acknowledge(journal *j, int64_t ca_id, const char *serial,
    const char *device_id, const char *old_serial, const uint8_t *new_key,
    int64_t when)
{
	sqlite3_stmt *up = NULL, *old = NULL;
	int rc, n = 0;

	if ((rc = journal_tx_begin(j)) != 0)
		return rc;
	rc = SF_EDB;
	if (journal_prepare(j->wdb, "UPDATE certs SET status = ?1,"
	    " acked_at = ?2 WHERE ca_id = ?3 AND serial = ?4 AND"
	    " device_id = ?5 AND status = ?6 AND ack_deadline > ?2", &up,
	    "prepare acknowledge") != 0 ||
	    journal_prepare(j->wdb, "UPDATE certs SET status = ?1,"
	    " revocation_reason = ?2, revoked_at = ?3 WHERE serial = ?4 AND"
	    " device_id = ?5 AND status = ?6", &old,
	    "prepare supersede") != 0)
		goto out;
	sqlite3_bind_int(up, 1, CERT_ACTIVE);
	sqlite3_bind_int64(up, 2, when);
	sqlite3_bind_int64(up, 3, ca_id);
	journal_bind_text(up, 4, serial);
	journal_bind_text(up, 5, device_id);
	sqlite3_bind_int(up, 6, CERT_PENDING_ACK);
	if ((rc = step_changes(j, up, "acknowledge", &n)) != 0)
		goto out;
	if (n != 1) {
		rc = SF_ESTATE;
		goto out;
	}
	if (*old_serial) {
		/* 4 = superseded (RFC 5280 CRLReason) */
		sqlite3_bind_int(old, 1, CERT_SUPERSEDED);
		sqlite3_bind_int(old, 2, 4);
		sqlite3_bind_int64(old, 3, when);
		journal_bind_text(old, 4, old_serial);
		journal_bind_text(old, 5, device_id);
		sqlite3_bind_int(old, 6, CERT_ACTIVE);
		if ((rc = step_changes(j, old, "supersede", &n)) != 0)
			goto out;
	}
	if (new_key)
		rc = journal_device_key_tx(j, device_id, new_key, when);
out:
	sqlite3_finalize(up);
	sqlite3_finalize(old);
	return journal_tx_end(j, rc);
}

int
journal_cert_expire_pending(journal *j, int64_t now, int reason, size_t max,
    journal_revoked **out, size_t *n)
{
	sqlite3_stmt *st = NULL;
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = journal_tx_begin(j)) != 0)
		return rc;
	rc = SF_EDB;
	/* The literal "status = 2" (PENDING_ACK) lets SQLite use the partial
	 * index certs_pending. */
	if (journal_prepare(j->wdb, "UPDATE certs SET status = ?1,"
	    " revoked_at = ack_deadline, revocation_reason = ?2 WHERE rowid IN"
	    " (SELECT rowid FROM certs WHERE status = 2 AND ack_deadline > 0"
	    " AND ack_deadline <= ?3 ORDER BY ack_deadline LIMIT ?4)"
	    " RETURNING ca_id, serial, device_id", &st,
	    "prepare expire pending") != 0)
		goto out;
	sqlite3_bind_int(st, 1, CERT_REVOKED);
	sqlite3_bind_int(st, 2, reason);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)max);
	rc = collect_revoked(j, st, out, n);
out:
	sqlite3_finalize(st);
	if ((rc = journal_tx_end(j, rc)) != 0) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return rc;
}
