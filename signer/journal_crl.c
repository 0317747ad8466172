/*
 * journal_crl.c - the crls table of the signer's journal (see journal.h):
 * every CRL a CA has (its complete CRL and its partitions) stored and
 * replaced together, so that a reader never sees shards of two
 * generations.
 */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "err.h"
#include "journal_int.h"

static int
insert_crl(journal *j, int64_t ca_id, const journal_crl *c)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = journal_prepare(j->wdb, "INSERT INTO crls (ca_id, shard,"
	    " crl_number, this_update, next_update, revoked_count,"
	    " revocations, der) VALUES (?,?,?,?,?,?,?,?)", &st,
	    "prepare CRL insert")) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, ca_id);
	sqlite3_bind_int(st, 2, c->shard);
	sqlite3_bind_int64(st, 3, c->crl_number);
	sqlite3_bind_int64(st, 4, c->this_update);
	sqlite3_bind_int64(st, 5, c->next_update);
	sqlite3_bind_int64(st, 6, c->revoked_count);
	sqlite3_bind_int64(st, 7, c->revocations);
	sqlite3_bind_blob(st, 8, c->der, (int)c->der_len, SQLITE_STATIC);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 :
	    journal_db_err(j->wdb, "insert CRL");
	sqlite3_finalize(st);
	return rc;
}

int
journal_crl_put(journal *j, int64_t ca_id, const journal_crl *v, size_t n)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB, begun = 0;

	pthread_mutex_lock(&j->wlock);
	if (journal_exec(j->wdb, "BEGIN IMMEDIATE") != 0)
		goto out;
	begun = 1;
	if (journal_prepare(j->wdb, "DELETE FROM crls WHERE ca_id = ?", &st,
	    "prepare CRL delete") != 0)
		goto out;
	sqlite3_bind_int64(st, 1, ca_id);
	if (sqlite3_step(st) != SQLITE_DONE) {
		journal_db_err(j->wdb, "delete CRLs");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (insert_crl(j, ca_id, &v[i]) != 0)
			goto out;
	if (journal_exec(j->wdb, "COMMIT") == 0)
		rc = 0;
out:
	if (rc != 0 && begun)
		journal_exec(j->wdb, "ROLLBACK");
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->wlock);
	return rc;
}

int
journal_crl_get(journal *j, int64_t ca_id, int shard, int with_der,
    journal_crl *out)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB, r;

	memset(out, 0, sizeof *out);
	pthread_mutex_lock(&j->rlock);
	if (journal_prepare(j->rdb, with_der ? "SELECT crl_number, this_update,"
	    " next_update, revoked_count, revocations, der FROM crls"
	    " WHERE ca_id = ? AND shard = ?" : "SELECT crl_number,"
	    " this_update, next_update, revoked_count, revocations FROM crls"
	    " WHERE ca_id = ? AND shard = ?", &st, "prepare CRL get") != 0)
		goto out;
	sqlite3_bind_int64(st, 1, ca_id);
	sqlite3_bind_int(st, 2, shard);
	if ((r = sqlite3_step(st)) == SQLITE_DONE) {
		rc = SF_ENOTFOUND;
		goto out;
	}
	if (r != SQLITE_ROW) {
		rc = journal_db_err(j->rdb, "get CRL");
		goto out;
	}
	out->ca_id = ca_id;
	out->shard = shard;
	out->crl_number = sqlite3_column_int64(st, 0);
	out->this_update = sqlite3_column_int64(st, 1);
	out->next_update = sqlite3_column_int64(st, 2);
	out->revoked_count = sqlite3_column_int64(st, 3);
	out->revocations = sqlite3_column_int64(st, 4);
	rc = 0;
	if (with_der && (out->der = journal_col_blobdup(st, 5,
	    &out->der_len)) == NULL)
		rc = SF_ENOMEM;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->rlock);
	return rc;
}

void
journal_crl_fini(journal_crl *c)
{
	if (c == NULL)
		return;
	free(c->der);
	memset(c, 0, sizeof *c);
}
