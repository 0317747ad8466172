/*
 * journal_device.c - the registered device keys of the signer's journal
 * (see journal.h): the table behind the signer's own, second check of a
 * device's key, and each device's state (ACTIVE, DISABLED, REVOKED) with
 * its live certificates, the signer being the source of truth for both.
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

static int
device_outcome(journal *j, sqlite3_stmt *by_id, sqlite3_stmt *by_key,
    const journal_device *d)
{
	int out = JOURNAL_DEV_IMPORTED;

	sqlite3_reset(by_id);
	journal_bind_text(by_id, 1, d->device_id);
	if (sqlite3_step(by_id) == SQLITE_ROW) {
		const void *fp = sqlite3_column_blob(by_id, 0);
		const char *pl = (const char *)sqlite3_column_text(by_id, 1);
		const char *rg = (const char *)sqlite3_column_text(by_id, 2);

		if (fp == NULL || sqlite3_column_bytes(by_id, 0) != 32 ||
		    memcmp(fp, d->key_sha256, 32) != 0)
			out = JOURNAL_DEV_ID_OTHER_KEY;
		else if (strcmp(pl ? pl : "", d->product_line) != 0 ||
		    strcmp(rg ? rg : "", d->region ? d->region : "") != 0)
			out = JOURNAL_DEV_OTHER_PLACE;
		else
			out = JOURNAL_DEV_UNCHANGED;
	}
	sqlite3_reset(by_id);
	if (out != JOURNAL_DEV_IMPORTED)
		return out;
	sqlite3_reset(by_key);
	sqlite3_bind_blob(by_key, 1, d->key_sha256, 32, SQLITE_STATIC);
	if (sqlite3_step(by_key) == SQLITE_ROW)
		out = JOURNAL_DEV_KEY_OTHER_ID;
	sqlite3_reset(by_key);
	(void)j;
	return out;
}

int
journal_device_register(journal *j, const journal_device *d, size_t n,
    int *outcome)
{
	sqlite3_stmt *by_id = NULL, *by_key = NULL, *ins = NULL;
	int64_t now = sf_now();
	int rc = SF_EDB;

	pthread_mutex_lock(&j->wlock);
	if (journal_prepare(j->wdb, "SELECT key_sha256, product_line, region"
	    " FROM devices WHERE device_id = ?", &by_id,
	    "prepare device register") != 0 ||
	    journal_prepare(j->wdb, "SELECT device_id FROM devices WHERE"
	    " key_sha256 = ?", &by_key, "prepare device register") != 0 ||
	    journal_prepare(j->wdb, "INSERT INTO devices (device_id, key_sha256,"
	    " product_line, region, created_at) VALUES (?,?,?,?,?)"
	    " ON CONFLICT DO NOTHING", &ins, "prepare device register") != 0)
		goto out;
	if (journal_exec(j->wdb, "BEGIN IMMEDIATE") != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		/*
		 * Earlier records of this batch are visible: same transaction.
		 * The insert first (nearly every record of an import is new);
		 * a device id or key already there (PRIMARY KEY, UNIQUE)
		 * inserts nothing, and the look-ups then say which and how.
		 */
		sqlite3_reset(ins);
		journal_bind_text(ins, 1, d[i].device_id);
		sqlite3_bind_blob(ins, 2, d[i].key_sha256, 32, SQLITE_STATIC);
		journal_bind_text(ins, 3, d[i].product_line);
		journal_bind_text(ins, 4, d[i].region);
		sqlite3_bind_int64(ins, 5, now);
		if (sqlite3_step(ins) != SQLITE_DONE) {
			journal_db_err(j->wdb, "insert device");
			journal_exec(j->wdb, "ROLLBACK");
			goto out;
		}
		if (sqlite3_changes(j->wdb) == 1) {
			outcome[i] = JOURNAL_DEV_IMPORTED;
			continue;
		}
		outcome[i] = device_outcome(j, by_id, by_key, &d[i]);
		if (outcome[i] == JOURNAL_DEV_IMPORTED) {
			/* A conflict neither look-up finds. */
			log_warnx("journal: device %s: insert ignored, yet no"
			    " row has its id or key", d[i].device_id);
			journal_exec(j->wdb, "ROLLBACK");
			goto out;
		}
	}
	/* A factory batch: its commit checkpoints only past the bulk bar
	 * (common/walckpt.h). */
	j->ckpt.bulk = n > 1;
	rc = journal_exec(j->wdb, "COMMIT");
	j->ckpt.bulk = 0;
	if (rc != 0) {
		rc = SF_EDB;
		journal_exec(j->wdb, "ROLLBACK");
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(by_id);
	sqlite3_finalize(by_key);
	sqlite3_finalize(ins);
	pthread_mutex_unlock(&j->wlock);
	return rc;
}

int
journal_device_get(journal *j, const char *device_id, uint8_t key_sha256[32],
    char **product_line, char **region)
{
	sqlite3_stmt *st = j->get_device;
	int rc, r;

	*product_line = *region = NULL;
	pthread_mutex_lock(&j->rlock);
	sqlite3_reset(st);
	journal_bind_text(st, 1, device_id);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32) {
		memcpy(key_sha256, sqlite3_column_blob(st, 0), 32);
		*product_line = journal_col_strdup(st, 1);
		*region = journal_col_strdup(st, 2);
		rc = (*product_line && *region) ? 0 : SF_ENOMEM;
	} else if (r == SQLITE_DONE)
		rc = SF_ENOTFOUND;
	else
		rc = journal_db_err(j->rdb, "device lookup");
	sqlite3_reset(st);
	pthread_mutex_unlock(&j->rlock);
	if (rc) {
		free(*product_line);
		free(*region);
		*product_line = *region = NULL;
	}
	return rc;
}

int
journal_device_by_key(journal *j, const uint8_t key_sha256[32], char id[65])
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB, r;

	id[0] = '\0';
	pthread_mutex_lock(&j->rlock);
	if (journal_prepare(j->rdb, "SELECT device_id FROM devices WHERE"
	    " key_sha256 = ?", &st, "prepare device by key") != 0)
		goto out;
	sqlite3_bind_blob(st, 1, key_sha256, 32, SQLITE_STATIC);
	if ((r = sqlite3_step(st)) == SQLITE_ROW) {
		sf_strlcpy(id, (const char *)sqlite3_column_text(st, 0), 65);
		rc = 0;
	} else if (r == SQLITE_DONE)
		rc = SF_ENOTFOUND;
	else
		rc = journal_db_err(j->rdb, "device by key");
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->rlock);
	return rc;
}

/* ---- state ---- */

/*
 * A device row with its live certificates counted and its current one
 * (the live ACTIVE certificate that expires last): the correlated
 * sub-queries read only the index certs_live. ?1 ACTIVE, ?2 PENDING_ACK,
 * ?3 now.
 */
#define DEVICE_SELECT "SELECT d.device_id, d.key_sha256, d.product_line," \
	" d.region, d.state, d.state_reason, d.created_at, d.updated_at," \
	" (SELECT count(*) FROM certs c WHERE c.device_id = d.device_id" \
	"  AND c.status IN (?1, ?2) AND c.not_after > ?3)," \
	" (SELECT c.serial FROM certs c WHERE c.device_id = d.device_id" \
	"  AND c.status = ?1 AND c.not_after > ?3" \
	"  ORDER BY c.not_after DESC LIMIT 1)," \
	" d.origin, d.birth_serial, d.birth_reuse" \
	" FROM devices d "

void
journal_device_row_fini(journal_device_row *d)
{
	if (d == NULL)
		return;
	free(d->device_id);
	free(d->product_line);
	free(d->region);
	free(d->state_reason);
	free(d->current_serial);
	free(d->origin);
	free(d->birth_serial);
	memset(d, 0, sizeof *d);
}

void
journal_device_rows_free(journal_device_row *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		journal_device_row_fini(&v[i]);
	free(v);
}

static int
device_from_row(sqlite3_stmt *st, journal_device_row *d)
{
	memset(d, 0, sizeof *d);
	d->device_id = journal_col_strdup(st, 0);
	if (sqlite3_column_bytes(st, 1) == 32)
		memcpy(d->key_sha256, sqlite3_column_blob(st, 1), 32);
	d->product_line = journal_col_strdup(st, 2);
	d->region = journal_col_strdup(st, 3);
	d->state = sqlite3_column_int(st, 4);
	d->state_reason = journal_col_strdup(st, 5);
	d->created_at = sqlite3_column_int64(st, 6);
	d->updated_at = sqlite3_column_int64(st, 7);
	d->live = (uint32_t)sqlite3_column_int64(st, 8);
	d->current_serial = journal_col_strdup(st, 9);
	d->origin = journal_col_strdup(st, 10);
	d->birth_serial = journal_col_strdup(st, 11);
	d->birth_reuse = sqlite3_column_int(st, 12);
	if (!d->device_id || !d->product_line || !d->region ||
	    !d->state_reason || !d->current_serial || !d->origin ||
	    !d->birth_serial) {
		journal_device_row_fini(d);
		return SF_ENOMEM;
	}
	return 0;
}

/* Rows of DEVICE_SELECT + where; ?4.. are id (text) and, if limit is not
 * 0, state and limit. */
static int
device_select(journal *j, const char *where, const char *id, int state,
    size_t limit, int64_t now, journal_device_row **out, size_t *n)
{
	sqlite3_stmt *st = NULL;
	journal_device_row *v = NULL, *nv;
	size_t cnt = 0;
	char *sql;
	int rc = SF_EDB, r;

	*out = NULL;
	*n = 0;
	if ((sql = sf_aprintf("%s%s", DEVICE_SELECT, where)) == NULL)
		return SF_ENOMEM;
	pthread_mutex_lock(&j->rlock);
	if (journal_rstmt(j, sql, &st, "prepare device state") != 0)
		goto out;
	sqlite3_bind_int(st, 1, CERT_ACTIVE);
	sqlite3_bind_int(st, 2, CERT_PENDING_ACK);
	sqlite3_bind_int64(st, 3, now);
	journal_bind_text(st, 4, id);
	if (limit) {
		sqlite3_bind_int(st, 5, state);
		sqlite3_bind_int64(st, 6, (sqlite3_int64)limit);
	}
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if ((nv = realloc(v, (cnt + 1) * sizeof *v)) == NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
		v = nv;
		if ((rc = device_from_row(st, &v[cnt])) != 0)
			goto out;
		cnt++;
	}
	if (r != SQLITE_DONE) {
		rc = journal_db_err(j->rdb, "device state");
		goto out;
	}
	*out = v;
	*n = cnt;
	v = NULL;  /* transferred */
	cnt = 0;
	rc = 0;
out:
	journal_device_rows_free(v, cnt);
	journal_rstmt_done(st);
	pthread_mutex_unlock(&j->rlock);
	free(sql);
	return rc;
}

int
journal_device_info(journal *j, const char *device_id, int64_t now,
    journal_device_row *out)
{
	journal_device_row *v = NULL;
	size_t n = 0;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = device_select(j, "WHERE d.device_id = ?4", device_id, 0, 0,
	    now, &v, &n)) != 0)
		return rc;
	if (n == 0)
		rc = SF_ENOTFOUND;
	else {
		*out = v[0];
		memset(&v[0], 0, sizeof v[0]);  /* transferred */
	}
	journal_device_rows_free(v, n);
	return rc;
}

void
journal_device_view_fini(journal_device_view *v)
{
	if (v == NULL)
		return;
	free(v->product_line);
	free(v->region);
	free(v->origin);
	memset(v, 0, sizeof *v);
}

int
journal_device_view_get(journal *j, const char *device_id,
    const char *enrollment_id, int64_t now, uint32_t cap,
    journal_device_view *out)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB, r;

	memset(out, 0, sizeof *out);
	pthread_mutex_lock(&j->rlock);
	/* The sub-queries read only the indexes certs_live and (the literal
	 * "!= ''") the partial certs_enrollment. */
	if (journal_rstmt(j, "SELECT d.key_sha256, d.product_line, d.region,"
	    " d.state, (SELECT count(*) FROM (SELECT 1 FROM certs c"
	    " WHERE c.device_id = ?1 AND c.status IN (?2, ?3)"
	    " AND c.not_after > ?4 LIMIT ?5)), d.origin, d.birth_reuse,"
	    " EXISTS (SELECT 1 FROM certs c WHERE c.device_id = ?1),"
	    " EXISTS (SELECT 1 FROM certs c WHERE c.enrollment_id = ?6"
	    " AND c.enrollment_id != '')"
	    " FROM devices d WHERE d.device_id = ?1", &st,
	    "prepare device view") != 0)
		goto out;
	journal_bind_text(st, 1, device_id);
	journal_bind_text(st, 6, enrollment_id);
	sqlite3_bind_int(st, 2, CERT_ACTIVE);
	sqlite3_bind_int(st, 3, CERT_PENDING_ACK);
	sqlite3_bind_int64(st, 4, now);
	sqlite3_bind_int64(st, 5, cap);
	if ((r = sqlite3_step(st)) == SQLITE_ROW) {
		rc = SF_EDB;
		if (sqlite3_column_bytes(st, 0) != 32) {
			log_warnx("journal: device %s: a key digest of %d"
			    " bytes", device_id, sqlite3_column_bytes(st, 0));
			goto out;
		}
		memcpy(out->key_sha256, sqlite3_column_blob(st, 0), 32);
		out->product_line = journal_col_strdup(st, 1);
		out->region = journal_col_strdup(st, 2);
		out->state = sqlite3_column_int(st, 3);
		out->live = (uint32_t)sqlite3_column_int64(st, 4);
		out->origin = journal_col_strdup(st, 5);
		out->birth_reuse = sqlite3_column_int(st, 6);
		out->has_cert = sqlite3_column_int(st, 7);
		out->enrollment_seen = sqlite3_column_int(st, 8);
		rc = out->product_line && out->region && out->origin ? 0 :
		    SF_ENOMEM;
	} else if (r == SQLITE_DONE)
		rc = SF_ENOTFOUND;
	else
		rc = journal_db_err(j->rdb, "device view");
out:
	journal_rstmt_done(st);
	pthread_mutex_unlock(&j->rlock);
	if (rc)
		journal_device_view_fini(out);
	return rc;
}

int
journal_device_list(journal *j, const char *after, int state, size_t limit,
    int64_t now, journal_device_row **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (limit == 0)
		return 0;
	return device_select(j, "WHERE d.device_id > ?4 AND (?5 = 0 OR"
	    " d.state = ?5) ORDER BY d.device_id LIMIT ?6", after, state,
	    limit, now, out, n);
}

int
journal_device_state_tx(journal *j, const journal_device_state *d,
    int64_t now)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB;

	if (journal_prepare(j->wdb, "UPDATE devices SET state = ?,"
	    " state_reason = ?, updated_at = ? WHERE device_id = ?", &st,
	    "prepare device state") != 0)
		return rc;
	sqlite3_bind_int(st, 1, d->state);
	journal_bind_text(st, 2, d->reason);
	sqlite3_bind_int64(st, 3, now);
	journal_bind_text(st, 4, d->device_id);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = journal_db_err(j->wdb, "device state");
	else
		rc = sqlite3_changes(j->wdb) == 1 ? 0 : SF_ENOTFOUND;
	sqlite3_finalize(st);
	return rc;
}

int
journal_device_key_tx(journal *j, const char *device_id,
    const uint8_t *key_sha256, int64_t now)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB, r;

	if (journal_prepare(j->wdb, "UPDATE devices SET key_sha256 = ?,"
	    " updated_at = ? WHERE device_id = ?", &st,
	    "prepare device key") != 0)
		return rc;
	sqlite3_bind_blob(st, 1, key_sha256, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	journal_bind_text(st, 3, device_id);
	r = sqlite3_step(st);
	if (r == SQLITE_DONE)
		rc = sqlite3_changes(j->wdb) == 1 ? 0 : SF_ENOTFOUND;
	else if (r == SQLITE_CONSTRAINT_UNIQUE)
		rc = SF_ECONFLICT;   /* key_sha256 is UNIQUE */
	else
		rc = journal_db_err(j->wdb, "device key");
	sqlite3_finalize(st);
	return rc;
}

int
journal_device_set_state(journal *j, const char *device_id, int state,
    const char *reason, int64_t now, int *changed)
{
	journal_device_state d = { device_id, state, reason };
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB, intx = 0, r, cur = 0;

	*changed = 0;
	if (state != DEVICE_ACTIVE && state != DEVICE_DISABLED)
		return SF_EINVAL;
	pthread_mutex_lock(&j->wlock);
	/* Read and write in one transaction: a revocation cannot slip in
	 * between the look and the change. */
	if (journal_exec(j->wdb, "BEGIN IMMEDIATE") != 0)
		goto out;
	intx = 1;
	if (journal_prepare(j->wdb, "SELECT state FROM devices WHERE"
	    " device_id = ?", &st, "prepare device state") != 0)
		goto out;
	journal_bind_text(st, 1, device_id);
	if ((r = sqlite3_step(st)) == SQLITE_ROW)
		cur = sqlite3_column_int(st, 0);
	else if (r == SQLITE_DONE)
		rc = SF_ENOTFOUND;
	else
		rc = journal_db_err(j->wdb, "device state");
	if (r != SQLITE_ROW)
		goto out;
	if (cur == DEVICE_REVOKED)
		rc = SF_ESTATE;
	else if (cur == state)
		rc = 0;
	else if ((rc = journal_device_state_tx(j, &d, now)) == 0 &&
	    (rc = journal_exec(j->wdb, "COMMIT")) == 0) {
		intx = 0;
		*changed = 1;
	}
out:
	if (intx)
		journal_exec(j->wdb, "ROLLBACK");
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->wlock);
	return rc;
}
