/*
 * journal_int.h - what the journal's files share (journal.c: the database,
 * its schema and the group commit; journal_ca.c, journal_cert.c,
 * journal_device.c: one table each; journal_ocsp.c: OCSP responses and
 * responders). Not for use outside journal*.c.
 */
#ifndef SF_JOURNAL_INT_H
#define SF_JOURNAL_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "journal.h"
#include "walckpt.h"

/* Read statements kept prepared: the ones each issuance runs, and room
 * for the admin calls' without evicting them at every call. */
#define JOURNAL_RCACHE 32

struct pending {
	const journal_cert *c;
	int rc;
	int done;
	struct pending *next;
};

struct journal {
	char *path;                 /* the file (audit verification's own connection) */
	sqlite3 *wdb, *rdb;
	pthread_mutex_t wlock, rlock;
	sqlite3_stmt *ins_cert;     /* wdb */
	sqlite3_stmt *get_device;   /* rdb */
	sqlite3_stmt *begin, *commit;  /* wdb: the group commit's */
	/* rdb statements kept prepared (journal_rstmt), under rlock. */
	struct rcache {
		char *sql;
		sqlite3_stmt *st;
	} rcache[JOURNAL_RCACHE];
	size_t rcache_next;         /* the slot to reuse when all are taken */
	/* Group commit (journal_cert_record): the queue, and whether a
	 * caller is committing a batch of it. */
	pthread_mutex_t qlock;
	pthread_cond_t qdone;
	struct pending *head, *tail;
	int committing;
	walckpt ckpt;               /* when wdb checkpoints its WAL (wlock) */
};

/* Log "journal: what: <sqlite error>" and return SF_EDB; SF_EUNAVAIL for
 * a full disk, an I/O error or a failed fsync (which also stops every
 * later write: journal_broken). */
int journal_db_err(sqlite3 *db, const char *what);
/* 1 once an fsync of the journal failed: nothing more is written until the
 * signer restarts (every write transaction answers SF_EUNAVAIL). */
int journal_broken(void);
/* Prepare sql on db; SF_EDB (logged as what) if it fails. Callers start
 * with rc = SF_EDB, so on failure they only have to goto out. */
int journal_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st,
    const char *what);
/*
 * sql prepared on rdb, from the cache of kept statements when it has run
 * before: the caller holds rlock and, when done, calls journal_rstmt_done
 * instead of sqlite3_finalize (which resets it, so that no read stays
 * open and the WAL can be checkpointed). Same errors as journal_prepare.
 */
int journal_rstmt(journal *j, const char *sql, sqlite3_stmt **st,
    const char *what);
void journal_rstmt_done(sqlite3_stmt *st);
/* Run sql (no result rows); SF_EDB (or SF_EUNAVAIL, as journal_db_err),
 * logged, if it fails. A BEGIN after a failed fsync: SF_EUNAVAIL. */
int journal_exec(sqlite3 *db, const char *sql);
/* An explicit write transaction on wdb: journal_tx_begin takes wlock and
 * begins (journal_exec's code, lock released, if it cannot); journal_tx_end
 * commits when rc is 0, else rolls back, releases wlock and returns rc (the
 * commit's code if the commit failed). */
int journal_tx_begin(journal *j);
int journal_tx_end(journal *j, int rc);
/* Bind s (NULL as ""), copied. */
void journal_bind_text(sqlite3_stmt *st, int i, const char *s);
/* Column i as a malloc'd string ("" for NULL); NULL if out of memory. */
char *journal_col_strdup(sqlite3_stmt *st, int i);
/* Column i as a malloc'd blob; NULL (and *len 0) if empty. */
uint8_t *journal_col_blobdup(sqlite3_stmt *st, int i, size_t *len);

/* journal_device.c: set a device's state on the writing connection, in
 * the caller's transaction (the caller holds wlock). SF_ENOTFOUND. */
int journal_device_state_tx(journal *j, const journal_device_state *d,
    int64_t now);

/* journal_device.c: make key_sha256 (32 bytes) device_id's registered key,
 * in the caller's transaction (the caller holds wlock). SF_ENOTFOUND;
 * SF_ECONFLICT when another device has that key. */
int journal_device_key_tx(journal *j, const char *device_id,
    const uint8_t *key_sha256, int64_t now);

/* journal_audit.c: register sf_chain, sf_sha256, sf_kind and sf_now (the
 * audit triggers' functions) on db. SF_EDB. */
int journal_audit_functions(sqlite3 *db);
/* journal_audit.c: the audit tables and triggers, and the first event
 * (journal-created, or journal-upgraded from from_version), in the
 * caller's transaction. */
int journal_audit_install(sqlite3 *db, int from_version, int to_version);

#endif
