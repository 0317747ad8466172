/*
 * journal.c - the signer's SQLite journal (see journal.h): opening it, the
 * schema, the shared statement helpers, and the group commit that makes
 * every issued certificate durable before it is returned. The tables'
 * queries are in journal_ca.c, journal_cert.c, journal_device.c and
 * journal_ocsp.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "err.h"
#include "journal_int.h"
#include "log.h"
#include "pbenum.h"
#include "util.h"

#define BATCH_MAX 256

#define JOURNAL_VERSION 4
#define STR_(x) #x
#define STR(x) STR_(x)

/* What version 3 adds beside new columns: shared by SCHEMA and MIGRATE_3. */
#define SCHEMA_3 \
    "CREATE TABLE IF NOT EXISTS manufacturers (" \
    " id INTEGER PRIMARY KEY," \
    " name TEXT NOT NULL UNIQUE," \
    " product_line TEXT NOT NULL," \
    " subject TEXT NOT NULL," \
    " spki_sha256 BLOB NOT NULL UNIQUE," \
    " cert_der BLOB NOT NULL," \
    " crl_der BLOB," \
    " crl_number INTEGER NOT NULL DEFAULT 0," \
    " created_at INTEGER NOT NULL," \
    " updated_at INTEGER NOT NULL DEFAULT 0);" \
    "CREATE INDEX IF NOT EXISTS manufacturers_pl" \
    " ON manufacturers(product_line);"

/* What version 2 adds beside new columns: shared by SCHEMA and MIGRATE_2. */
#define SCHEMA_2 \
    "CREATE INDEX IF NOT EXISTS certs_enrollment ON certs(enrollment_id)" \
    " WHERE enrollment_id != '';" \
    "CREATE INDEX IF NOT EXISTS certs_status ON certs(ca_id, status);" \
    "CREATE INDEX IF NOT EXISTS certs_live" \
    " ON certs(device_id, status, not_after);" \
    "CREATE INDEX IF NOT EXISTS certs_pending ON certs(ack_deadline)" \
    " WHERE status = 2;" \
    "CREATE TABLE IF NOT EXISTS crls (" \
    " ca_id INTEGER NOT NULL REFERENCES cas(id)," \
    " shard INTEGER NOT NULL," \
    " crl_number INTEGER NOT NULL," \
    " this_update INTEGER NOT NULL," \
    " next_update INTEGER NOT NULL," \
    " revoked_count INTEGER NOT NULL DEFAULT 0," \
    " revocations INTEGER NOT NULL DEFAULT 0," \
    " der BLOB NOT NULL," \
    " PRIMARY KEY (ca_id, shard));" \
    "CREATE TABLE IF NOT EXISTS ocsp (" \
    " ca_id INTEGER NOT NULL REFERENCES cas(id)," \
    " serial TEXT NOT NULL," \
    " cert_id_hash TEXT NOT NULL DEFAULT 'sha1'," \
    " status INTEGER NOT NULL," \
    " this_update INTEGER NOT NULL," \
    " next_update INTEGER NOT NULL," \
    " der BLOB NOT NULL," \
    " PRIMARY KEY (ca_id, serial, cert_id_hash));" \
    "CREATE INDEX IF NOT EXISTS ocsp_age ON ocsp(ca_id, this_update);" \
    "CREATE TABLE IF NOT EXISTS ocsp_responders (" \
    " ca_id INTEGER NOT NULL REFERENCES cas(id)," \
    " serial TEXT NOT NULL," \
    " key_label TEXT NOT NULL UNIQUE," \
    " not_after INTEGER NOT NULL," \
    " created_at INTEGER NOT NULL," \
    " PRIMARY KEY (ca_id, serial));"

static const char *SCHEMA =
    "CREATE TABLE IF NOT EXISTS cas ("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " generation TEXT NOT NULL,"
    " role INTEGER NOT NULL,"
    " parent_id INTEGER,"
    " product_line TEXT NOT NULL DEFAULT '',"
    " region TEXT NOT NULL DEFAULT '',"
    " state INTEGER NOT NULL,"
    " key_label TEXT NOT NULL UNIQUE,"
    " key_type INTEGER NOT NULL,"
    " subject TEXT NOT NULL,"
    " serial TEXT NOT NULL DEFAULT '',"
    " not_before INTEGER NOT NULL DEFAULT 0,"
    " not_after INTEGER NOT NULL DEFAULT 0,"
    " path_len INTEGER NOT NULL DEFAULT -1,"
    " cert_der BLOB,"
    " crl_url TEXT NOT NULL DEFAULT '',"
    " ocsp_url TEXT NOT NULL DEFAULT '',"
    " ca_issuers_url TEXT NOT NULL DEFAULT '',"
    " permitted TEXT NOT NULL DEFAULT '',"
    " excluded TEXT NOT NULL DEFAULT '',"
    " external_parent INTEGER NOT NULL DEFAULT 0,"
    " external_chain TEXT NOT NULL DEFAULT '',"
    " created_at INTEGER NOT NULL,"
    " crl_number INTEGER NOT NULL DEFAULT 0,"
    " crl_shards INTEGER NOT NULL DEFAULT 1,"
    " retired_at INTEGER NOT NULL DEFAULT 0,"
    " revoked_at INTEGER NOT NULL DEFAULT 0,"
    " revocation_reason INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE (name, generation));"
    "CREATE TABLE IF NOT EXISTS certs ("
    " ca_id INTEGER NOT NULL REFERENCES cas(id),"
    " serial TEXT NOT NULL,"
    " subject TEXT NOT NULL,"
    " device_id TEXT NOT NULL DEFAULT '',"
    " key_sha256 BLOB NOT NULL,"
    " not_before INTEGER NOT NULL,"
    " not_after INTEGER NOT NULL,"
    " issued_at INTEGER NOT NULL,"
    " requester TEXT NOT NULL DEFAULT '',"
    " profile TEXT NOT NULL DEFAULT '',"
    " enrollment_id TEXT NOT NULL DEFAULT '',"
    " replaces_serial TEXT NOT NULL DEFAULT '',"
    " cert_der BLOB NOT NULL,"
    " status INTEGER NOT NULL DEFAULT 1,"
    " revoked_at INTEGER NOT NULL DEFAULT 0,"
    " revocation_reason INTEGER NOT NULL DEFAULT 0,"
    " ack_deadline INTEGER NOT NULL DEFAULT 0,"
    " acked_at INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (ca_id, serial));"
    "CREATE INDEX IF NOT EXISTS certs_serial ON certs(serial);"
    "CREATE TABLE IF NOT EXISTS devices ("
    " device_id TEXT PRIMARY KEY,"
    " key_sha256 BLOB NOT NULL UNIQUE,"
    " product_line TEXT NOT NULL,"
    " region TEXT NOT NULL DEFAULT '',"
    " created_at INTEGER NOT NULL,"
    " state INTEGER NOT NULL DEFAULT 2,"
    " state_reason TEXT NOT NULL DEFAULT '',"
    " updated_at INTEGER NOT NULL DEFAULT 0,"
    " origin TEXT NOT NULL DEFAULT '',"
    " birth_serial TEXT NOT NULL DEFAULT '',"
    " birth_reuse INTEGER NOT NULL DEFAULT 0);"
    SCHEMA_2
    SCHEMA_3
    "PRAGMA user_version = 3;";

/*
 * Version 2 (the lifecycle): CA rotation and revocation, CRL partitions,
 * acknowledgement deadlines, device state at the signer, stored CRLs and
 * pre-signed OCSP responses. A version 1 journal gets the new columns and
 * tables; a newer one than this code knows is refused.
 */
static const char *MIGRATE_2 =
    "ALTER TABLE cas ADD COLUMN crl_shards INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE cas ADD COLUMN retired_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE cas ADD COLUMN revoked_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE cas ADD COLUMN revocation_reason INTEGER NOT NULL"
    " DEFAULT 0;"
    "ALTER TABLE certs ADD COLUMN ack_deadline INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE certs ADD COLUMN acked_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN state INTEGER NOT NULL DEFAULT 2;"
    "ALTER TABLE devices ADD COLUMN state_reason TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE devices ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;"
    SCHEMA_2
    "PRAGMA user_version = 2;";

/*
 * Version 3 (just-in-time provisioning): the registered manufacturer CAs
 * and, for each device, where it came from (origin: "" a factory import,
 * "birth:<manufacturer>" registered on first contact with a birth
 * certificate), that certificate's serial, and whether the admin lets
 * the birth certificate be used once more (birth_reuse).
 */
static const char *MIGRATE_3 =
    "ALTER TABLE devices ADD COLUMN origin TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE devices ADD COLUMN birth_serial TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE devices ADD COLUMN birth_reuse INTEGER NOT NULL"
    " DEFAULT 0;"
    SCHEMA_3
    "PRAGMA user_version = 3;";

/*
 * Version 4 (the audit trail, journal_audit.c): audit_events, audit_head,
 * audit_checkpoints and the triggers that append an event for every change;
 * the chain starts with a journal-upgraded event (journal-created for a new
 * journal). Installed by journal_audit_install after the steps above.
 */

/*
 * Set once an fsync of the journal has failed: the page cache can no
 * longer be trusted to hold what was written (PostgreSQL's lesson), so
 * nothing more is written until the signer is restarted.
 */
static int fsync_failed;

int
journal_broken(void)
{
	return __atomic_load_n(&fsync_failed, __ATOMIC_ACQUIRE);
}

/*
 * The SF_E* for SQLite's last error on db, with the log line that says
 * what an operator must do: a full disk or a failed write is
 * SF_EUNAVAIL (issuing resumes when space returns); a failed fsync stops
 * every write until a restart; anything else is SF_EDB.
 */
static int
db_code(sqlite3 *db, const char *what, const char *msg)
{
	int ext = sqlite3_extended_errcode(db);

	if (ext == SQLITE_IOERR_FSYNC || ext == SQLITE_IOERR_DIR_FSYNC) {
		if (!__atomic_exchange_n(&fsync_failed, 1, __ATOMIC_ACQ_REL))
			log_warnx("journal: %s: fsync failed (%s): what was"
			    " written may not be on disk; the signer writes"
			    " nothing more and answers UNAVAILABLE until it is"
			    " restarted", what, msg);
		return SF_EUNAVAIL;
	}
	if ((ext & 0xff) == SQLITE_FULL) {
		log_warnx("journal: %s: the disk is full (%s): nothing is"
		    " issued until space is freed", what, msg);
		return SF_EUNAVAIL;
	}
	if ((ext & 0xff) == SQLITE_IOERR) {
		log_warnx("journal: %s: I/O error (%s)", what, msg);
		return SF_EUNAVAIL;
	}
	log_warnx("journal: %s: %s", what, msg);
	return SF_EDB;
}

int
journal_db_err(sqlite3 *db, const char *what)
{
	return db_code(db, what, sqlite3_errmsg(db));
}

static int
db_open(const char *path, sqlite3 **out, int flags, char *why, size_t whylen)
{
	sqlite3 *db = NULL;

	*out = NULL;
	if (sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		sf_why(why, whylen, "cannot open journal %s: %s", path,
		    db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return SF_EDB;
	}
	sqlite3_busy_timeout(db, 10000);
	sqlite3_extended_result_codes(db, 1);
	if (journal_audit_functions(db) != 0) {
		sf_why(why, whylen, "cannot open journal %s: %s", path,
		    sqlite3_errmsg(db));
		sqlite3_close(db);
		return SF_EDB;
	}
	*out = db;
	return 0;
}

int
journal_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st,
    const char *what)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
		return journal_db_err(db, what);
	return 0;
}

int
journal_rstmt(journal *j, const char *sql, sqlite3_stmt **st,
    const char *what)
{
	struct rcache *c;
	char *copy;

	for (size_t i = 0; i < JOURNAL_RCACHE; i++)
		if (j->rcache[i].sql != NULL &&
		    strcmp(j->rcache[i].sql, sql) == 0) {
			*st = j->rcache[i].st;
			return 0;
		}
	if (journal_prepare(j->rdb, sql, st, what) != 0)
		return SF_EDB;
	/* A statement the cache cannot keep would never be finalised. */
	if ((copy = strdup(sql)) == NULL) {
		sqlite3_finalize(*st);
		*st = NULL;
		return SF_ENOMEM;
	}
	c = &j->rcache[j->rcache_next];
	j->rcache_next = (j->rcache_next + 1) % JOURNAL_RCACHE;
	sqlite3_finalize(c->st);
	free(c->sql);
	c->sql = copy;
	c->st = *st;
	return 0;
}

void
journal_rstmt_done(sqlite3_stmt *st)
{
	if (st == NULL)
		return;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

int
journal_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc;

	/* After a failed fsync, no new write transaction. */
	if (strncmp(sql, "BEGIN", 5) == 0 && journal_broken())
		return SF_EUNAVAIL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		rc = db_code(db, sql, msg ? msg : "?");
		sqlite3_free(msg);
		return rc;
	}
	return 0;
}

/*
 * Indexes that change no row and no query's answer, made (or dropped) on
 * every open, so that a journal of any version 2 gets them without an
 * upgrade step: certs_issued serves journal_cert_issued_since (the rate
 * limits' replay at start-up), which would otherwise read every row.
 * certs_device (device_id), which journals before 2026-12-06 have, is
 * dropped: certs_live (device_id, status, not_after) begins with the same
 * column and serves every query it served, and each certificate no
 * longer writes a page of it.
 */
static const char *INDEXES =
    "CREATE INDEX IF NOT EXISTS certs_issued ON certs(issued_at)"
    " WHERE device_id != '';"
    "DROP INDEX IF EXISTS certs_device;";

/* Create the schema, or bring an older journal up to this version in one
 * transaction. SF_ECONFIG for a journal newer than this code. */
static int
schema(sqlite3 *db, const char *path, char *why, size_t whylen)
{
	sqlite3_stmt *st = NULL;
	int version = -1, rc = SF_EDB;

	if (journal_prepare(db, "PRAGMA user_version", &st,
	    "read the journal's version") != 0)
		return SF_EDB;
	if (sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version < 0)
		return SF_EDB;
	if (version > JOURNAL_VERSION) {
		sf_why(why, whylen, "journal %s is version %d; this signer"
		    " knows versions up to %d", path, version, JOURNAL_VERSION);
		return SF_ECONFIG;
	}
	if (version == JOURNAL_VERSION)
		return 0;
	if (journal_exec(db, "BEGIN IMMEDIATE") != 0)
		return SF_EDB;
	if (version == 0)
		rc = journal_exec(db, SCHEMA);
	else {
		rc = version >= 2 ? 0 : journal_exec(db, MIGRATE_2);
		if (rc == 0 && version < 3)
			rc = journal_exec(db, MIGRATE_3);
	}
	if (rc == 0)
		rc = journal_audit_install(db, version, JOURNAL_VERSION);
	if (rc == 0)
		rc = journal_exec(db, "PRAGMA user_version = "
		    STR(JOURNAL_VERSION));
	if (rc == 0 && (rc = journal_exec(db, "COMMIT")) == 0) {
		if (version > 0)
			log_info("journal %s: upgraded from version %d to %d;"
			    " the audit trail starts here", path, version,
			    JOURNAL_VERSION);
	} else {
		journal_exec(db, "ROLLBACK");
		rc = SF_EDB;
	}
	return rc;
}

int
journal_open(const char *path, journal **out, char *why, size_t whylen)
{
	journal *j;
	int rc = SF_EDB;

	*out = NULL;
	if ((j = calloc(1, sizeof *j)) == NULL ||
	    (j->path = strdup(path)) == NULL) {
		free(j);
		return SF_ENOMEM;
	}
	pthread_mutex_init(&j->wlock, NULL);
	pthread_mutex_init(&j->rlock, NULL);
	pthread_mutex_init(&j->qlock, NULL);
	pthread_cond_init(&j->qdone, NULL);
	if ((rc = db_open(path, &j->wdb, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE, why, whylen)) != 0)
		goto out;
	/*
	 * FULL: a journal that promises "recorded before returned" must
	 * survive power loss, not only a process crash.
	 */
	if (journal_exec(j->wdb, "PRAGMA journal_mode=WAL") != 0 ||
	    journal_exec(j->wdb, "PRAGMA synchronous=FULL") != 0 ||
	    journal_exec(j->wdb, "PRAGMA foreign_keys=ON") != 0 ||
	    journal_exec(j->wdb, "PRAGMA cache_size=-16384") != 0 ||
	    (rc = schema(j->wdb, path, why, whylen)) != 0 ||
	    (rc = journal_exec(j->wdb, INDEXES)) != 0) {
		if (rc == SF_ECONFIG)
			goto out;
		sf_why(why, whylen, "cannot initialise journal %s: %s", path,
		    sqlite3_errmsg(j->wdb));
		rc = SF_EDB;
		goto out;
	}
	if ((rc = db_open(path, &j->rdb, SQLITE_OPEN_READONLY, why,
	    whylen)) != 0)
		goto out;
	if (sqlite3_prepare_v2(j->wdb,
	    "INSERT INTO certs (ca_id, serial, subject, device_id, key_sha256,"
	    " not_before, not_after, issued_at, requester, profile,"
	    " enrollment_id, replaces_serial, cert_der, status, ack_deadline)"
	    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &j->ins_cert,
	    NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(j->rdb,
	    "SELECT key_sha256, product_line, region FROM devices"
	    " WHERE device_id = ?", -1, &j->get_device, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(j->wdb, "BEGIN IMMEDIATE", -1, &j->begin,
	    NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(j->wdb, "COMMIT", -1, &j->commit, NULL) !=
	    SQLITE_OK) {
		sf_why(why, whylen, "cannot prepare journal statements: %s",
		    sqlite3_errmsg(j->wdb));
		rc = SF_EDB;
		goto out;
	}
	walckpt_install(&j->ckpt, j->wdb);
	*out = j;
	j = NULL;  /* transferred */
	rc = 0;
out:
	journal_close(j);
	return rc;
}

void
journal_close(journal *j)
{
	if (j == NULL)
		return;
	sqlite3_finalize(j->ins_cert);
	sqlite3_finalize(j->get_device);
	sqlite3_finalize(j->begin);
	sqlite3_finalize(j->commit);
	for (size_t i = 0; i < JOURNAL_RCACHE; i++) {
		sqlite3_finalize(j->rcache[i].st);
		free(j->rcache[i].sql);
	}
	sqlite3_close(j->rdb);
	sqlite3_close(j->wdb);
	pthread_mutex_destroy(&j->wlock);
	pthread_mutex_destroy(&j->rlock);
	pthread_mutex_destroy(&j->qlock);
	pthread_cond_destroy(&j->qdone);
	free(j->path);
	free(j);
}

/* ---- helpers ---- */

int
journal_tx_begin(journal *j)
{
	int rc;

	pthread_mutex_lock(&j->wlock);
	if ((rc = journal_exec(j->wdb, "BEGIN IMMEDIATE")) != 0) {
		pthread_mutex_unlock(&j->wlock);
		return rc;
	}
	return 0;
}

int
journal_tx_end(journal *j, int rc)
{
	if (rc == 0)
		rc = journal_exec(j->wdb, "COMMIT");
	if (rc != 0)
		journal_exec(j->wdb, "ROLLBACK");
	pthread_mutex_unlock(&j->wlock);
	return rc;
}

void
journal_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	sqlite3_bind_text(st, i, s ? s : "", -1, SQLITE_TRANSIENT);
}

char *
journal_col_strdup(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return strdup(s ? (const char *)s : "");
}

uint8_t *
journal_col_blobdup(sqlite3_stmt *st, int i, size_t *len)
{
	const void *b = sqlite3_column_blob(st, i);
	int n = sqlite3_column_bytes(st, i);
	uint8_t *p;

	*len = 0;
	if (b == NULL || n <= 0)
		return NULL;
	if ((p = malloc((size_t)n)) == NULL)
		return NULL;
	memcpy(p, b, (size_t)n);
	*len = (size_t)n;
	return p;
}

/* ---- issued certificates: group commit ---- */

static int
insert_cert(journal *j, const journal_cert *c)
{
	sqlite3_stmt *st = j->ins_cert;
	int r;

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	sqlite3_bind_int64(st, 1, c->ca_id);
	journal_bind_text(st, 2, c->serial);
	journal_bind_text(st, 3, c->subject);
	journal_bind_text(st, 4, c->device_id);
	sqlite3_bind_blob(st, 5, c->key_sha256, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, c->not_before);
	sqlite3_bind_int64(st, 7, c->not_after);
	sqlite3_bind_int64(st, 8, c->issued_at);
	journal_bind_text(st, 9, c->requester);
	journal_bind_text(st, 10, c->profile);
	journal_bind_text(st, 11, c->enrollment_id);
	journal_bind_text(st, 12, c->replaces_serial);
	sqlite3_bind_blob(st, 13, c->der, (int)c->der_len, SQLITE_STATIC);
	sqlite3_bind_int(st, 14, c->status ? c->status : CERT_ACTIVE);
	sqlite3_bind_int64(st, 15, c->ack_deadline);
	r = sqlite3_step(st);
	sqlite3_reset(st);
	if (r == SQLITE_DONE)
		return 0;
	/* Only the (ca_id, serial) key means "serial taken"; an unknown CA
	 * (foreign key) or a missing column is a failure of ours. */
	if (r == SQLITE_CONSTRAINT_PRIMARYKEY || r == SQLITE_CONSTRAINT_UNIQUE)
		return SF_EEXIST;
	return journal_db_err(j->wdb, "insert certificate");
}

/* BEGIN IMMEDIATE or COMMIT, kept prepared: journal_exec's codes. */
static int
tx_step(journal *j, sqlite3_stmt *st, const char *what)
{
	int r;

	if (st == j->begin && journal_broken())
		return SF_EUNAVAIL;
	r = sqlite3_step(st);
	sqlite3_reset(st);
	return r == SQLITE_DONE ? 0 : journal_db_err(j->wdb, what);
}

static void
run_batch(journal *j, struct pending *batch)
{
	int commit_rc;

	pthread_mutex_lock(&j->wlock);
	if ((commit_rc = tx_step(j, j->begin, "BEGIN IMMEDIATE")) == 0) {
		for (struct pending *p = batch; p; p = p->next) {
			p->rc = insert_cert(j, p->c);
			/* The disk's trouble fails the whole batch. */
			if (p->rc == SF_EUNAVAIL)
				commit_rc = SF_EUNAVAIL;
		}
		if (commit_rc == 0)
			commit_rc = tx_step(j, j->commit, "COMMIT");
		if (commit_rc != 0)
			journal_exec(j->wdb, "ROLLBACK");
	}
	pthread_mutex_unlock(&j->wlock);
	if (commit_rc)
		for (struct pending *p = batch; p; p = p->next)
			p->rc = commit_rc;
}

/*
 * Group commit without a thread of its own: a caller queues its record
 * and, when no commit is under way, becomes the leader, takes what is
 * queued (up to BATCH_MAX), commits it in one transaction and wakes the
 * others; a caller whose record is not done yet when a commit ends tries
 * to lead the next one. With one client a record is committed by the
 * thread that made it (no hand-off to a writer thread and back); under
 * load the records that queued during a commit share the next fsync.
 */
int
journal_cert_record(journal *j, const journal_cert *c)
{
	struct pending p = { c, 0, 0, NULL };

	if (journal_broken())
		return SF_EUNAVAIL;
	pthread_mutex_lock(&j->qlock);
	if (j->tail)
		j->tail->next = &p;
	else
		j->head = &p;
	j->tail = &p;
	while (!p.done) {
		struct pending *batch, *last;
		int n = 1;

		if (j->committing) {
			pthread_cond_wait(&j->qdone, &j->qlock);
			continue;
		}
		j->committing = 1;
		batch = last = j->head;
		while (last->next && n < BATCH_MAX) {
			last = last->next;
			n++;
		}
		j->head = last->next;
		if (j->head == NULL)
			j->tail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&j->qlock);

		run_batch(j, batch);

		pthread_mutex_lock(&j->qlock);
		for (struct pending *q = batch; q; q = q->next)
			q->done = 1;
		j->committing = 0;
		pthread_cond_broadcast(&j->qdone);
	}
	pthread_mutex_unlock(&j->qlock);
	return p.rc;
}
