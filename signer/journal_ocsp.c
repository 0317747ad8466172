/*
 * journal_ocsp.c - the pre-signed OCSP responses of the signer's journal
 * and the delegated responders' keys (see journal.h): the request path's
 * one read (the certificate and its stored response together), the
 * background task's work lists, and the writes, a batch per transaction.
 */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "err.h"
#include "journal_int.h"
#include "log.h"
#include "pbenum.h"
#include "util.h"

/* The columns every work list reads, in journal_ocsp_cert's order. */
#define CERT_COLS "c.rowid, c.ca_id, c.serial, %s, c.status," \
    " c.revocation_reason, c.revoked_at, c.not_after"

static void
cert_from_row(sqlite3_stmt *st, journal_ocsp_cert *c)
{
	const unsigned char *s;

	memset(c, 0, sizeof *c);
	c->rowid = sqlite3_column_int64(st, 0);
	c->ca_id = sqlite3_column_int64(st, 1);
	if ((s = sqlite3_column_text(st, 2)) != NULL)
		sf_strlcpy(c->serial, (const char *)s, sizeof c->serial);
	if ((s = sqlite3_column_text(st, 3)) != NULL)
		sf_strlcpy(c->cert_id_hash, (const char *)s,
		    sizeof c->cert_id_hash);
	c->status = sqlite3_column_int(st, 4);
	c->revocation_reason = sqlite3_column_int(st, 5);
	c->revoked_at = sqlite3_column_int64(st, 6);
	c->not_after = sqlite3_column_int64(st, 7);
}

int
journal_ocsp_get(journal *j, int64_t ca_id, const char *serial,
    const char *cert_id_hash, journal_ocsp_cert *cert,
    journal_ocsp_stored *stored)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB, r;

	memset(cert, 0, sizeof *cert);
	memset(stored, 0, sizeof *stored);
	pthread_mutex_lock(&j->rlock);
	if (journal_prepare(j->rdb, "SELECT c.rowid, c.ca_id, c.serial, ?3,"
	    " c.status, c.revocation_reason, c.revoked_at, c.not_after,"
	    " o.der, o.status, o.this_update, o.next_update"
	    " FROM certs c LEFT JOIN ocsp o ON o.ca_id = c.ca_id AND"
	    " o.serial = c.serial AND o.cert_id_hash = ?3"
	    " WHERE c.ca_id = ?1 AND c.serial = ?2", &st,
	    "prepare OCSP lookup") != 0)
		goto out;
	sqlite3_bind_int64(st, 1, ca_id);
	journal_bind_text(st, 2, serial);
	journal_bind_text(st, 3, cert_id_hash);
	if ((r = sqlite3_step(st)) == SQLITE_DONE) {
		rc = SF_ENOTFOUND;
		goto out;
	}
	if (r != SQLITE_ROW) {
		rc = journal_db_err(j->rdb, "OCSP lookup");
		goto out;
	}
	cert_from_row(st, cert);
	rc = 0;
	if (sqlite3_column_type(st, 8) != SQLITE_NULL) {
		stored->der = journal_col_blobdup(st, 8, &stored->der_len);
		stored->status = sqlite3_column_int(st, 9);
		stored->this_update = sqlite3_column_int64(st, 10);
		stored->next_update = sqlite3_column_int64(st, 11);
		if (stored->der == NULL)
			rc = SF_ENOMEM;
	}
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->rlock);
	return rc;
}

int
journal_ocsp_put(journal *j, const journal_ocsp_resp *v, size_t n)
{
	sqlite3_stmt *ins = NULL, *del = NULL, *st;
	int rc = SF_EDB;

	pthread_mutex_lock(&j->wlock);
	if (journal_prepare(j->wdb, "INSERT OR REPLACE INTO ocsp (ca_id,"
	    " serial, cert_id_hash, status, this_update, next_update, der)"
	    " VALUES (?,?,?,?,?,?,?)", &ins, "prepare OCSP store") != 0 ||
	    journal_prepare(j->wdb, "DELETE FROM ocsp WHERE ca_id = ? AND"
	    " serial = ? AND cert_id_hash = ?", &del,
	    "prepare OCSP delete") != 0 ||
	    journal_exec(j->wdb, "BEGIN IMMEDIATE") != 0)
		goto out;
	rc = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		st = v[i].der ? ins : del;
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, v[i].ca_id);
		journal_bind_text(st, 2, v[i].serial);
		journal_bind_text(st, 3, v[i].cert_id_hash);
		if (v[i].der) {
			sqlite3_bind_int(st, 4, v[i].status);
			sqlite3_bind_int64(st, 5, v[i].this_update);
			sqlite3_bind_int64(st, 6, v[i].next_update);
			sqlite3_bind_blob(st, 7, v[i].der, (int)v[i].der_len,
			    SQLITE_STATIC);
		}
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = journal_db_err(j->wdb, "store OCSP response");
	}
	/* All of the batch or none of it. */
	if (rc == 0 && journal_exec(j->wdb, "COMMIT") != 0)
		rc = SF_EDB;
	if (rc != 0)
		journal_exec(j->wdb, "ROLLBACK");
out:
	sqlite3_finalize(ins);
	sqlite3_finalize(del);
	pthread_mutex_unlock(&j->wlock);
	return rc;
}

int
journal_ocsp_last_cert(journal *j, int64_t *rowid)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB;

	*rowid = 0;
	pthread_mutex_lock(&j->rlock);
	if (journal_prepare(j->rdb, "SELECT coalesce(max(rowid), 0) FROM certs",
	    &st, "prepare last certificate") != 0)
		goto out;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*rowid = sqlite3_column_int64(st, 0);
		rc = 0;
	} else
		rc = journal_db_err(j->rdb, "last certificate");
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->rlock);
	return rc;
}

/*
 * Run a work-list query (its first parameters bound by the caller through
 * b[0..nb-1], its last one the limit) and collect the rows.
 */
static int
work_list(journal *j, const char *where, const char *hash_col,
    const int64_t *b, int nb, size_t limit, journal_ocsp_cert **out,
    size_t *n)
{
	sqlite3_stmt *st = NULL;
	journal_ocsp_cert *v = NULL;
	char *sql = NULL, *cols = NULL;
	size_t cnt = 0;
	int rc = SF_ENOMEM, r = SQLITE_DONE;

	*out = NULL;
	*n = 0;
	if ((cols = sf_aprintf(CERT_COLS, hash_col)) == NULL ||
	    (sql = sf_aprintf("SELECT %s %s LIMIT ?%d", cols, where,
	    nb + 1)) == NULL ||
	    (v = calloc(limit ? limit : 1, sizeof *v)) == NULL)
		goto out;
	pthread_mutex_lock(&j->rlock);
	if ((rc = journal_prepare(j->rdb, sql, &st,
	    "prepare OCSP work list")) == 0) {
		for (int i = 0; i < nb; i++)
			sqlite3_bind_int64(st, i + 1, b[i]);
		sqlite3_bind_int64(st, nb + 1, (sqlite3_int64)limit);
		while (cnt < limit && (r = sqlite3_step(st)) == SQLITE_ROW)
			cert_from_row(st, &v[cnt++]);
		if (cnt < limit && r != SQLITE_DONE)
			rc = journal_db_err(j->rdb, "OCSP work list");
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->rlock);
	if (rc != 0)
		goto out;
	*out = v;
	*n = cnt;
	v = NULL;  /* transferred */
out:
	free(v);
	free(sql);
	free(cols);
	return rc;
}

int
journal_ocsp_missing(journal *j, int64_t after, int64_t upto, int64_t now,
    size_t limit, journal_ocsp_cert **out, size_t *n)
{
	const int64_t b[] = { after, upto, now };

	return work_list(j, "FROM certs c WHERE c.rowid > ?1 AND"
	    " c.rowid <= ?2 AND c.not_after > ?3 AND"
	    " c.profile != '" JOURNAL_PROFILE_OCSP "' AND NOT EXISTS"
	    " (SELECT 1 FROM ocsp o WHERE o.ca_id = c.ca_id AND"
	    " o.serial = c.serial AND o.cert_id_hash = 'sha1')"
	    " ORDER BY c.rowid", "'sha1'", b, 3, limit, out, n);
}

int
journal_ocsp_changed(journal *j, int64_t ca_id, size_t limit,
    journal_ocsp_cert **out, size_t *n)
{
	const int64_t b[] = { ca_id, CERT_SUPERSEDED, CERT_REVOKED };

	/* 0 = V_OCSP_CERTSTATUS_GOOD. */
	return work_list(j, "FROM certs c JOIN ocsp o ON o.ca_id = c.ca_id"
	    " AND o.serial = c.serial WHERE c.ca_id = ?1 AND"
	    " c.status IN (?2, ?3) AND o.status = 0", "o.cert_id_hash", b, 3,
	    limit, out, n);
}

int
journal_ocsp_aged(journal *j, int64_t ca_id, int64_t aged, size_t limit,
    journal_ocsp_cert **out, size_t *n)
{
	const int64_t b[] = { ca_id, aged };

	return work_list(j, "FROM ocsp o JOIN certs c ON c.ca_id = o.ca_id"
	    " AND c.serial = o.serial WHERE o.ca_id = ?1 AND"
	    " o.this_update <= ?2 ORDER BY o.this_update", "o.cert_id_hash",
	    b, 2, limit, out, n);
}

int
journal_ocsp_responder_add(journal *j, int64_t ca_id, const char *serial,
    const char *key_label, int64_t not_after)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB;

	pthread_mutex_lock(&j->wlock);
	if (journal_prepare(j->wdb, "INSERT INTO ocsp_responders (ca_id,"
	    " serial, key_label, not_after, created_at) VALUES (?,?,?,?,?)",
	    &st, "prepare responder insert") != 0)
		goto out;
	sqlite3_bind_int64(st, 1, ca_id);
	journal_bind_text(st, 2, serial);
	journal_bind_text(st, 3, key_label);
	sqlite3_bind_int64(st, 4, not_after);
	sqlite3_bind_int64(st, 5, sf_now());
	if (sqlite3_step(st) == SQLITE_DONE)
		rc = 0;
	else
		rc = journal_db_err(j->wdb, "record responder");
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->wlock);
	return rc;
}

int
journal_ocsp_responder_get(journal *j, int64_t ca_id, char **serial,
    char **key_label, int64_t *not_after)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB, r;

	*serial = *key_label = NULL;
	*not_after = 0;
	pthread_mutex_lock(&j->rlock);
	if (journal_prepare(j->rdb, "SELECT serial, key_label, not_after FROM"
	    " ocsp_responders WHERE ca_id = ? ORDER BY rowid DESC LIMIT 1",
	    &st, "prepare responder lookup") != 0)
		goto out;
	sqlite3_bind_int64(st, 1, ca_id);
	if ((r = sqlite3_step(st)) == SQLITE_DONE) {
		rc = SF_ENOTFOUND;
		goto out;
	}
	if (r != SQLITE_ROW) {
		rc = journal_db_err(j->rdb, "responder lookup");
		goto out;
	}
	*serial = journal_col_strdup(st, 0);
	*key_label = journal_col_strdup(st, 1);
	*not_after = sqlite3_column_int64(st, 2);
	rc = *serial && *key_label ? 0 : SF_ENOMEM;
	if (rc) {
		free(*serial);
		free(*key_label);
		*serial = *key_label = NULL;
	}
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->rlock);
	return rc;
}
