/*
 * journal_ca.c - the CAs table of the signer's journal (see journal.h):
 * insert, certificate and state updates (a rotation's new generation and
 * the old one's retirement in one transaction, a CA's revocation with its
 * own certificate), CRL numbers, listing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "err.h"
#include "journal_int.h"
#include "log.h"
#include "pbenum.h"
#include "util.h"

static const char *CA_COLS =
    "id, name, generation, role, parent_id, product_line, region, state,"
    " key_label, key_type, subject, serial, not_before, not_after, path_len,"
    " cert_der, crl_url, ocsp_url, ca_issuers_url, permitted, excluded,"
    " external_parent, created_at, crl_number, external_chain,"
    " retired_at, revoked_at, revocation_reason, crl_shards";

static int
ca_from_row(sqlite3_stmt *st, journal_ca *ca)
{
	memset(ca, 0, sizeof *ca);
	ca->id = sqlite3_column_int64(st, 0);
	ca->name = journal_col_strdup(st, 1);
	ca->generation = journal_col_strdup(st, 2);
	ca->role = sqlite3_column_int(st, 3);
	ca->parent_id = sqlite3_column_int64(st, 4);
	ca->product_line = journal_col_strdup(st, 5);
	ca->region = journal_col_strdup(st, 6);
	ca->state = sqlite3_column_int(st, 7);
	ca->key_label = journal_col_strdup(st, 8);
	ca->key_type = sqlite3_column_int(st, 9);
	ca->subject = journal_col_strdup(st, 10);
	ca->serial = journal_col_strdup(st, 11);
	ca->not_before = sqlite3_column_int64(st, 12);
	ca->not_after = sqlite3_column_int64(st, 13);
	ca->path_len = sqlite3_column_int(st, 14);
	ca->cert_der = journal_col_blobdup(st, 15, &ca->cert_len);
	ca->crl_url = journal_col_strdup(st, 16);
	ca->ocsp_url = journal_col_strdup(st, 17);
	ca->ca_issuers_url = journal_col_strdup(st, 18);
	ca->permitted = journal_col_strdup(st, 19);
	ca->excluded = journal_col_strdup(st, 20);
	ca->external_parent = sqlite3_column_int(st, 21);
	ca->created_at = sqlite3_column_int64(st, 22);
	ca->crl_number = sqlite3_column_int64(st, 23);
	ca->external_chain = journal_col_strdup(st, 24);
	ca->retired_at = sqlite3_column_int64(st, 25);
	ca->revoked_at = sqlite3_column_int64(st, 26);
	ca->revocation_reason = sqlite3_column_int(st, 27);
	ca->crl_shards = sqlite3_column_int(st, 28);
	if (!ca->external_chain || !ca->name || !ca->generation ||
	    !ca->product_line || !ca->region || !ca->key_label ||
	    !ca->subject || !ca->serial || !ca->crl_url || !ca->ocsp_url ||
	    !ca->ca_issuers_url || !ca->permitted || !ca->excluded) {
		journal_ca_fini(ca);
		return SF_ENOMEM;
	}
	return 0;
}

void
journal_ca_fini(journal_ca *ca)
{
	if (ca == NULL)
		return;
	free(ca->name);
	free(ca->generation);
	free(ca->product_line);
	free(ca->region);
	free(ca->key_label);
	free(ca->subject);
	free(ca->serial);
	free(ca->cert_der);
	free(ca->crl_url);
	free(ca->ocsp_url);
	free(ca->ca_issuers_url);
	free(ca->permitted);
	free(ca->excluded);
	free(ca->external_chain);
	memset(ca, 0, sizeof *ca);
}

int
journal_ca_copy(journal_ca *d, const journal_ca *s)
{
	*d = *s;
	d->name = strdup(s->name ? s->name : "");
	d->generation = strdup(s->generation ? s->generation : "");
	d->product_line = strdup(s->product_line ? s->product_line : "");
	d->region = strdup(s->region ? s->region : "");
	d->key_label = strdup(s->key_label ? s->key_label : "");
	d->subject = strdup(s->subject ? s->subject : "");
	d->serial = strdup(s->serial ? s->serial : "");
	d->crl_url = strdup(s->crl_url ? s->crl_url : "");
	d->ocsp_url = strdup(s->ocsp_url ? s->ocsp_url : "");
	d->ca_issuers_url = strdup(s->ca_issuers_url ? s->ca_issuers_url : "");
	d->permitted = strdup(s->permitted ? s->permitted : "");
	d->excluded = strdup(s->excluded ? s->excluded : "");
	d->external_chain = strdup(s->external_chain ? s->external_chain : "");
	d->cert_der = NULL;
	if (s->cert_der && s->cert_len) {
		if ((d->cert_der = malloc(s->cert_len)) != NULL)
			memcpy(d->cert_der, s->cert_der, s->cert_len);
	}
	if (!d->name || !d->generation || !d->product_line || !d->region ||
	    !d->key_label || !d->subject || !d->serial || !d->crl_url ||
	    !d->ocsp_url || !d->ca_issuers_url || !d->permitted ||
	    !d->excluded || !d->external_chain ||
	    (s->cert_der && s->cert_len && !d->cert_der)) {
		journal_ca_fini(d);
		return SF_ENOMEM;
	}
	return 0;
}

/* The INSERT of journal_ca_insert, with wlock held. */
static int
insert_locked(journal *j, journal_ca *ca)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB, r;

	if (journal_prepare(j->wdb,
	    "INSERT INTO cas (name, generation, role, parent_id, product_line,"
	    " region, state, key_label, key_type, subject, serial, not_before,"
	    " not_after, path_len, cert_der, crl_url, ocsp_url, ca_issuers_url,"
	    " permitted, excluded, external_parent, created_at, external_chain,"
	    " crl_shards)"
	    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", &st,
	    "prepare CA insert") != 0)
		goto out;
	journal_bind_text(st, 1, ca->name);
	journal_bind_text(st, 2, ca->generation);
	sqlite3_bind_int(st, 3, ca->role);
	if (ca->parent_id)
		sqlite3_bind_int64(st, 4, ca->parent_id);
	else
		sqlite3_bind_null(st, 4);
	journal_bind_text(st, 5, ca->product_line);
	journal_bind_text(st, 6, ca->region);
	sqlite3_bind_int(st, 7, ca->state);
	journal_bind_text(st, 8, ca->key_label);
	sqlite3_bind_int(st, 9, ca->key_type);
	journal_bind_text(st, 10, ca->subject);
	journal_bind_text(st, 11, ca->serial);
	sqlite3_bind_int64(st, 12, ca->not_before);
	sqlite3_bind_int64(st, 13, ca->not_after);
	sqlite3_bind_int(st, 14, ca->path_len);
	if (ca->cert_der)
		sqlite3_bind_blob(st, 15, ca->cert_der, (int)ca->cert_len,
		    SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, 15);
	journal_bind_text(st, 16, ca->crl_url);
	journal_bind_text(st, 17, ca->ocsp_url);
	journal_bind_text(st, 18, ca->ca_issuers_url);
	journal_bind_text(st, 19, ca->permitted);
	journal_bind_text(st, 20, ca->excluded);
	sqlite3_bind_int(st, 21, ca->external_parent);
	sqlite3_bind_int64(st, 22, ca->created_at);
	journal_bind_text(st, 23, ca->external_chain);
	sqlite3_bind_int(st, 24, ca->crl_shards > 0 ? ca->crl_shards : 1);
	r = sqlite3_step(st);
	if (r == SQLITE_DONE) {
		ca->id = sqlite3_last_insert_rowid(j->wdb);
		rc = 0;
	} else if ((r & 0xff) == SQLITE_CONSTRAINT)
		rc = SF_EEXIST;
	else
		rc = journal_db_err(j->wdb, "insert CA");
out:
	sqlite3_finalize(st);
	return rc;
}

int
journal_ca_insert(journal *j, journal_ca *ca)
{
	int rc;

	pthread_mutex_lock(&j->wlock);
	rc = insert_locked(j, ca);
	pthread_mutex_unlock(&j->wlock);
	return rc;
}

/*
 * With wlock held: the state of CA id, and its time (retired_at for
 * RETIRING and RETIRED, revoked_at and reason for REVOKED); only from
 * state from (-1: any). SF_ENOTFOUND if no CA id is in that state.
 */
static int
set_state_locked(journal *j, int64_t id, int from, int state, int64_t when,
    int reason)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB;

	if (journal_prepare(j->wdb, "UPDATE cas SET state = ?1,"
	    " retired_at = CASE WHEN ?2 THEN ?4 ELSE retired_at END,"
	    " revoked_at = CASE WHEN ?3 THEN ?4 ELSE revoked_at END,"
	    " revocation_reason = CASE WHEN ?3 THEN ?5"
	    " ELSE revocation_reason END"
	    " WHERE id = ?6 AND (?7 < 0 OR state = ?7)", &st,
	    "prepare CA state") != 0)
		return rc;
	sqlite3_bind_int(st, 1, state);
	sqlite3_bind_int(st, 2, state == CA_RETIRING || state == CA_RETIRED);
	sqlite3_bind_int(st, 3, state == CA_REVOKED);
	sqlite3_bind_int64(st, 4, when);
	sqlite3_bind_int(st, 5, reason);
	sqlite3_bind_int64(st, 6, id);
	sqlite3_bind_int(st, 7, from);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = journal_db_err(j->wdb, "update CA state");
	else
		rc = sqlite3_changes(j->wdb) == 1 ? 0 : SF_ENOTFOUND;
	sqlite3_finalize(st);
	return rc;
}

int
journal_ca_rotate(journal *j, journal_ca *ca, int64_t retire_id)
{
	int rc;

	if ((rc = journal_tx_begin(j)) != 0)
		return rc;
	if ((rc = insert_locked(j, ca)) == 0 && retire_id)
		rc = set_state_locked(j, retire_id, CA_ACTIVE, CA_RETIRING,
		    ca->created_at, 0);
	if ((rc = journal_tx_end(j, rc)) != 0)
		ca->id = 0;
	return rc;
}

int
journal_ca_set_cert(journal *j, int64_t id, const uint8_t *der, size_t len,
    const char *serial, int64_t nb, int64_t na, int state,
    const char *external_chain, int64_t retire_id)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB;

	if (journal_tx_begin(j) != 0)
		return SF_EDB;
	if (journal_prepare(j->wdb, "UPDATE cas SET cert_der = ?, serial = ?,"
	    " not_before = ?, not_after = ?, state = ?,"
	    " external_chain = coalesce(?, external_chain)"
	    " WHERE id = ?", &st, "prepare CA update") != 0)
		goto out;
	sqlite3_bind_blob(st, 1, der, (int)len, SQLITE_TRANSIENT);
	journal_bind_text(st, 2, serial);
	sqlite3_bind_int64(st, 3, nb);
	sqlite3_bind_int64(st, 4, na);
	sqlite3_bind_int(st, 5, state);
	if (external_chain)
		journal_bind_text(st, 6, external_chain);
	else
		sqlite3_bind_null(st, 6);
	sqlite3_bind_int64(st, 7, id);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = journal_db_err(j->wdb, "update CA");
	else
		rc = sqlite3_changes(j->wdb) == 1 ? 0 : SF_ENOTFOUND;
	if (rc == 0 && retire_id)
		rc = set_state_locked(j, retire_id, CA_ACTIVE, CA_RETIRING,
		    sf_now(), 0);
out:
	sqlite3_finalize(st);
	return journal_tx_end(j, rc);
}

int
journal_ca_set_state(journal *j, int64_t id, int state, int64_t when,
    int reason)
{
	int rc;

	pthread_mutex_lock(&j->wlock);
	rc = set_state_locked(j, id, -1, state, when, reason);
	pthread_mutex_unlock(&j->wlock);
	return rc;
}

/* With wlock held: CA id REVOKED (st's ?1 the id, ?4 the reason). */
static int
revoke_one(journal *j, sqlite3_stmt *st, int64_t id, int reason)
{
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int(st, 4, reason);
	if (sqlite3_step(st) != SQLITE_DONE)
		return journal_db_err(j->wdb, "revoke CA");
	return 0;
}

int
journal_ca_revoke(journal *j, int64_t top, int reason, const int64_t *below,
    size_t n, int below_reason, int64_t when, int64_t parent_id,
    const char *serial)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = journal_tx_begin(j)) != 0)
		return rc;
	rc = SF_EDB;
	if (journal_prepare(j->wdb, "UPDATE cas SET state = ?2,"
	    " revoked_at = ?3, revocation_reason = ?4"
	    " WHERE id = ?1 AND state != ?2", &st, "prepare CA revoke") != 0)
		goto out;
	sqlite3_bind_int(st, 2, CA_REVOKED);
	sqlite3_bind_int64(st, 3, when);
	rc = top ? revoke_one(j, st, top, reason) : 0;
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = revoke_one(j, st, below[i], below_reason);
	if (rc != 0 || parent_id == 0 || serial == NULL || *serial == '\0')
		goto out;
	sqlite3_finalize(st);
	st = NULL;
	rc = SF_EDB;
	if (journal_prepare(j->wdb, "UPDATE certs SET status = ?3,"
	    " revoked_at = ?4, revocation_reason = ?5"
	    " WHERE ca_id = ?1 AND serial = ?2 AND status != ?3", &st,
	    "prepare CA certificate revoke") != 0)
		goto out;
	sqlite3_bind_int64(st, 1, parent_id);
	journal_bind_text(st, 2, serial);
	sqlite3_bind_int(st, 3, CERT_REVOKED);
	sqlite3_bind_int64(st, 4, when);
	sqlite3_bind_int(st, 5, reason);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 :
	    journal_db_err(j->wdb, "revoke CA certificate");
out:
	sqlite3_finalize(st);
	return journal_tx_end(j, rc);
}

int
journal_ca_next_crl_number(journal *j, int64_t id, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB;

	*out = 0;
	pthread_mutex_lock(&j->wlock);
	if (journal_prepare(j->wdb, "UPDATE cas SET crl_number = crl_number + 1"
	    " WHERE id = ? RETURNING crl_number", &st,
	    "prepare CRL number") != 0)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = 0;
	} else
		rc = SF_ENOTFOUND;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->wlock);
	return rc;
}

int
journal_ca_list(journal *j, journal_ca **out, size_t *n)
{
	sqlite3_stmt *st = NULL;
	journal_ca *v = NULL, *nv;
	size_t cnt = 0;
	char *sql;
	int rc = SF_EDB, r;

	*out = NULL;
	*n = 0;
	if ((sql = sf_aprintf("SELECT %s FROM cas ORDER BY id", CA_COLS)) ==
	    NULL)
		return SF_ENOMEM;
	pthread_mutex_lock(&j->rlock);
	if (journal_prepare(j->rdb, sql, &st, "prepare CA list") != 0)
		goto out;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if ((nv = realloc(v, (cnt + 1) * sizeof *v)) == NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
		v = nv;
		if ((rc = ca_from_row(st, &v[cnt])) != 0)
			goto out;
		cnt++;
	}
	if (r != SQLITE_DONE) {
		rc = journal_db_err(j->rdb, "list CAs");
		goto out;
	}
	*out = v;
	*n = cnt;
	v = NULL;  /* transferred */
	cnt = 0;
	rc = 0;
out:
	journal_ca_list_free(v, cnt);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->rlock);
	free(sql);
	return rc;
}

void
journal_ca_list_free(journal_ca *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		journal_ca_fini(&v[i]);
	free(v);
}
