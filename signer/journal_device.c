/*
 * journal_device.c - the registered device keys of the signer's journal
 * (see journal.h): the table behind the signer's own, second check of a
 * device's key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "err.h"
#include "journal_int.h"
#include "log.h"
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
	    " product_line, region, created_at) VALUES (?,?,?,?,?)", &ins,
	    "prepare device register") != 0)
		goto out;
	if (journal_exec(j->wdb, "BEGIN IMMEDIATE") != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		/* Earlier records of this batch are visible: same transaction. */
		outcome[i] = device_outcome(j, by_id, by_key, &d[i]);
		if (outcome[i] != JOURNAL_DEV_IMPORTED)
			continue;
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
	}
	if (journal_exec(j->wdb, "COMMIT") != 0) {
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
