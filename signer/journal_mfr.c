/*
 * journal_mfr.c - just-in-time provisioning in the signer's journal (see
 * journal.h): the registered manufacturer CAs with their CRLs, and the
 * devices registered on first contact with a birth certificate.
 */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "err.h"
#include "journal_int.h"
#include "log.h"
#include "util.h"

int
journal_device_register_birth(journal *j, const char *device_id,
    const uint8_t key_sha256[32], const char *product_line,
    const char *region, const char *origin, const char *birth_serial)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB, r;

	pthread_mutex_lock(&j->wlock);
	if (journal_prepare(j->wdb, "SELECT device_id FROM devices WHERE"
	    " device_id = ?1 OR key_sha256 = ?2", &st,
	    "prepare birth register") != 0)
		goto out;
	journal_bind_text(st, 1, device_id);
	sqlite3_bind_blob(st, 2, key_sha256, 32, SQLITE_STATIC);
	if ((r = sqlite3_step(st)) == SQLITE_ROW) {
		rc = strcmp((const char *)sqlite3_column_text(st, 0),
		    device_id) == 0 ? SF_EEXIST : SF_ECONFLICT;
		goto out;
	} else if (r != SQLITE_DONE) {
		rc = journal_db_err(j->wdb, "birth register");
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (journal_prepare(j->wdb, "INSERT INTO devices (device_id,"
	    " key_sha256, product_line, region, created_at, updated_at,"
	    " origin, birth_serial) VALUES (?,?,?,?,?,?,?,?)", &st,
	    "prepare birth register") != 0)
		goto out;
	journal_bind_text(st, 1, device_id);
	sqlite3_bind_blob(st, 2, key_sha256, 32, SQLITE_STATIC);
	journal_bind_text(st, 3, product_line);
	journal_bind_text(st, 4, region);
	sqlite3_bind_int64(st, 5, sf_now());
	sqlite3_bind_int64(st, 6, sf_now());
	journal_bind_text(st, 7, origin);
	journal_bind_text(st, 8, birth_serial);
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = journal_db_err(j->wdb, "insert birth device");
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->wlock);
	return rc;
}

int
journal_device_birth(journal *j, const char *device_id, char **origin,
    int *reuse, int *has_cert)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB, r;

	*origin = NULL;
	*reuse = *has_cert = 0;
	pthread_mutex_lock(&j->rlock);
	if (journal_rstmt(j, "SELECT d.origin, d.birth_reuse,"
	    " EXISTS (SELECT 1 FROM certs c WHERE c.device_id = d.device_id)"
	    " FROM devices d WHERE d.device_id = ?", &st,
	    "prepare device birth") != 0)
		goto out;
	journal_bind_text(st, 1, device_id);
	if ((r = sqlite3_step(st)) == SQLITE_ROW) {
		*reuse = sqlite3_column_int(st, 1);
		*has_cert = sqlite3_column_int(st, 2);
		rc = (*origin = journal_col_strdup(st, 0)) ? 0 : SF_ENOMEM;
	} else if (r == SQLITE_DONE)
		rc = SF_ENOTFOUND;
	else
		rc = journal_db_err(j->rdb, "device birth");
out:
	journal_rstmt_done(st);
	pthread_mutex_unlock(&j->rlock);
	return rc;
}

int
journal_device_allow_birth(journal *j, const char *device_id, int reuse)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB;

	pthread_mutex_lock(&j->wlock);
	if (journal_prepare(j->wdb, "UPDATE devices SET birth_reuse = ?,"
	    " updated_at = ? WHERE device_id = ?", &st,
	    "prepare allow birth") != 0)
		goto out;
	sqlite3_bind_int(st, 1, reuse ? 1 : 0);
	sqlite3_bind_int64(st, 2, sf_now());
	journal_bind_text(st, 3, device_id);
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = journal_db_err(j->wdb, "allow birth");
		goto out;
	}
	rc = sqlite3_changes(j->wdb) ? 0 : SF_ENOTFOUND;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->wlock);
	return rc;
}

/* ---- manufacturers ---- */

#define MFR_SELECT "SELECT name, product_line, subject, spki_sha256," \
	" cert_der, crl_der, crl_number, created_at, updated_at" \
	" FROM manufacturers "

void
journal_mfr_fini(journal_mfr *m)
{
	if (m == NULL)
		return;
	free(m->name);
	free(m->product_line);
	free(m->subject);
	free(m->cert_der);
	free(m->crl_der);
	memset(m, 0, sizeof *m);
}

void
journal_mfrs_free(journal_mfr *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		journal_mfr_fini(&v[i]);
	free(v);
}

static int
mfr_from_row(sqlite3_stmt *st, journal_mfr *m)
{
	memset(m, 0, sizeof *m);
	m->name = journal_col_strdup(st, 0);
	m->product_line = journal_col_strdup(st, 1);
	m->subject = journal_col_strdup(st, 2);
	if (sqlite3_column_bytes(st, 3) == 32)
		memcpy(m->spki_sha256, sqlite3_column_blob(st, 3), 32);
	m->cert_der = journal_col_blobdup(st, 4, &m->cert_len);
	m->crl_der = journal_col_blobdup(st, 5, &m->crl_len);
	m->crl_number = sqlite3_column_int64(st, 6);
	m->created_at = sqlite3_column_int64(st, 7);
	m->updated_at = sqlite3_column_int64(st, 8);
	if (!m->name || !m->product_line || !m->subject || !m->cert_der) {
		journal_mfr_fini(m);
		return SF_ENOMEM;
	}
	return 0;
}

int
journal_mfr_insert(journal *j, const journal_mfr *m, char other[64])
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB, r;

	if (other)
		other[0] = '\0';
	pthread_mutex_lock(&j->wlock);
	if (journal_prepare(j->wdb, "SELECT name FROM manufacturers WHERE"
	    " name = ?1 OR spki_sha256 = ?2", &st, "prepare mfr insert") != 0)
		goto out;
	journal_bind_text(st, 1, m->name);
	sqlite3_bind_blob(st, 2, m->spki_sha256, 32, SQLITE_STATIC);
	if ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (other)
			sf_strlcpy(other, (const char *)sqlite3_column_text(st,
			    0), 64);
		rc = SF_EEXIST;
		goto out;
	} else if (r != SQLITE_DONE) {
		rc = journal_db_err(j->wdb, "mfr insert");
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (journal_prepare(j->wdb, "INSERT INTO manufacturers (name,"
	    " product_line, subject, spki_sha256, cert_der, created_at,"
	    " updated_at) VALUES (?,?,?,?,?,?,?)", &st,
	    "prepare mfr insert") != 0)
		goto out;
	journal_bind_text(st, 1, m->name);
	journal_bind_text(st, 2, m->product_line);
	journal_bind_text(st, 3, m->subject);
	sqlite3_bind_blob(st, 4, m->spki_sha256, 32, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, m->cert_der, (int)m->cert_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, m->created_at);
	sqlite3_bind_int64(st, 7, m->created_at);
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = journal_db_err(j->wdb, "insert mfr");
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->wlock);
	return rc;
}

static int
mfr_select(journal *j, const char *where, const char *arg, journal_mfr **out,
    size_t *n)
{
	sqlite3_stmt *st = NULL;
	journal_mfr *v = NULL, *nv;
	size_t cnt = 0;
	char *sql;
	int rc = SF_EDB, r;

	*out = NULL;
	*n = 0;
	if ((sql = sf_aprintf("%s%s ORDER BY name", MFR_SELECT, where)) ==
	    NULL)
		return SF_ENOMEM;
	pthread_mutex_lock(&j->rlock);
	if (journal_prepare(j->rdb, sql, &st, "prepare mfr list") != 0)
		goto out;
	if (arg)
		journal_bind_text(st, 1, arg);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if ((nv = realloc(v, (cnt + 1) * sizeof *v)) == NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
		v = nv;
		if ((rc = mfr_from_row(st, &v[cnt])) != 0)
			goto out;
		cnt++;
	}
	if (r != SQLITE_DONE) {
		rc = journal_db_err(j->rdb, "mfr list");
		goto out;
	}
	*out = v;
	*n = cnt;
	v = NULL;
	cnt = 0;
	rc = 0;
out:
	journal_mfrs_free(v, cnt);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->rlock);
	free(sql);
	return rc;
}

int
journal_mfr_list(journal *j, const char *product_line, journal_mfr **out,
    size_t *n)
{
	if (product_line && *product_line)
		return mfr_select(j, "WHERE product_line = ?1", product_line,
		    out, n);
	return mfr_select(j, "", NULL, out, n);
}

int
journal_mfr_get(journal *j, const char *name, journal_mfr *out)
{
	journal_mfr *v = NULL;
	size_t n = 0;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = mfr_select(j, "WHERE name = ?1", name, &v, &n)) != 0)
		return rc;
	if (n == 0)
		rc = SF_ENOTFOUND;
	else {
		*out = v[0];
		memset(&v[0], 0, sizeof v[0]);
	}
	journal_mfrs_free(v, n);
	return rc;
}

int
journal_mfr_set_crl(journal *j, const char *name, const uint8_t *der,
    size_t len, int64_t number)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB, r;

	pthread_mutex_lock(&j->wlock);
	if (journal_exec(j->wdb, "BEGIN IMMEDIATE") != 0)
		goto unlock;
	if (journal_prepare(j->wdb, "SELECT crl_der IS NOT NULL, crl_number"
	    " FROM manufacturers WHERE name = ?", &st, "prepare mfr crl") != 0)
		goto out;
	journal_bind_text(st, 1, name);
	if ((r = sqlite3_step(st)) == SQLITE_DONE) {
		rc = SF_ENOTFOUND;
		goto out;
	} else if (r != SQLITE_ROW) {
		rc = journal_db_err(j->wdb, "mfr crl");
		goto out;
	}
	if (sqlite3_column_int(st, 0) && number <= sqlite3_column_int64(st,
	    1)) {
		rc = SF_ESTATE;
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (journal_prepare(j->wdb, "UPDATE manufacturers SET crl_der = ?,"
	    " crl_number = ?, updated_at = ? WHERE name = ?", &st,
	    "prepare mfr crl") != 0)
		goto out;
	sqlite3_bind_blob(st, 1, der, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, number);
	sqlite3_bind_int64(st, 3, sf_now());
	journal_bind_text(st, 4, name);
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = journal_db_err(j->wdb, "mfr crl");
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	if (rc == 0 && journal_exec(j->wdb, "COMMIT") != 0)
		rc = SF_EDB;
	if (rc != 0)
		journal_exec(j->wdb, "ROLLBACK");
unlock:
	pthread_mutex_unlock(&j->wlock);
	return rc;
}
