/*
 * registry.c - the registry's core on SQLite (see registry.h): opening and
 * closing a registry (its connections, pragmas and schema), the statements
 * each connection keeps prepared, transactions, and the helpers the other
 * registry*.c files share through registry_int.h. Devices, templates and
 * policies, enrollments and certificates, things and groups each have their
 * own file; all of authz's SQL is in these files.
 *
 * Connections. One writing connection per database (SQLite 3.40's
 * WAL-reset bug needs two writers on one database), used under a mutex, and
 * one read-only connection under its own mutex, so that reads do not queue
 * behind a writer's fsync (WAL lets them read the last committed state).
 * ":memory:" is private to the connection that opens it, so an in-memory
 * registry has only the writing connection, and it serves reads too. A
 * daemon opens its registry once; a second registry_open() of the same file
 * would be a second writer. Each connection keeps the statements run on it
 * prepared (registry_stmt), used under its mutex and reset after each use,
 * so that a call does not parse and plan its SQL again: an enrollment runs
 * about twenty of them.
 *
 * Every writing function is one transaction (BEGIN IMMEDIATE, so that the
 * write lock is taken before anything is read); reads that take more than
 * one statement run in one read transaction, so they see one snapshot.
 *
 * Durability: synchronous=FULL. An enrollment row is what makes a retried
 * request return the same certificate instead of a second one, and what
 * lets a device that lost the answer fetch it again; with NORMAL the last
 * commits can be lost on power loss. Imports are one transaction per
 * batch, so FULL costs one fsync per batch, not per record.
 *
 * Group commit (file registries). Concurrent write transactions share one
 * SQLite transaction and one fsync, and none returns before that commit:
 *   - registry_tx(Q_BEGIN_IMMEDIATE) opens the group's transaction, or
 *     joins the one open, and takes a savepoint of its own;
 *   - registry_tx_end() releases the savepoint (or rolls back to it: a
 *     caller's failure undoes its own work only). Then, when other
 *     threads are queued for the connection, it waits for the commit
 *     (pthread_cond_wait hands the connection on); else it commits the
 *     group and wakes the members with the result;
 *   - registry_wunlock() commits a group left open with nobody queued,
 *     and registry_wlock() commits one open before a caller that writes
 *     outside a transaction (its statement must not join someone else's);
 *   - SQLite rolls a whole transaction back on some errors (a full disk):
 *     then every member gets the error.
 * ":memory:" has nothing to fsync and commits each transaction alone.
 *
 * The schema (user_version 3) is SCHEMA below; a version 1 or 2 file is
 * upgraded in place (MIGRATE_2, MIGRATE_3). Foreign keys are enforced;
 * CHECKs keep fingerprints 32 bytes and policy documents JSON. Constraint
 * failures map onto our codes (registry_sql_err): UNIQUE and PRIMARY KEY
 * -> SF_EEXIST, FOREIGN KEY -> SF_ENOTFOUND, CHECK and NOT NULL ->
 * SF_EINVAL.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "err.h"
#include "log.h"
#include "registry_int.h"
#include "util.h"

#define SCHEMA_VERSION 3

/*
 * Version 3 (just-in-time provisioning): the manufacturer CAs mirrored
 * from the signer, and where each device came from ("" a factory import,
 * "birth:<manufacturer>" registered by its birth certificate).
 */
#define MFR_TABLE_3 \
    "CREATE TABLE IF NOT EXISTS manufacturers (" \
    " name TEXT PRIMARY KEY NOT NULL," \
    " product_line TEXT NOT NULL," \
    " certificate_pem TEXT NOT NULL," \
    " crl_pem TEXT NOT NULL DEFAULT ''," \
    " crl_number INTEGER NOT NULL DEFAULT 0," \
    " created_at INTEGER NOT NULL," \
    " updated_at INTEGER NOT NULL);"
static const char *MIGRATE_3 =
    "ALTER TABLE devices ADD COLUMN origin TEXT NOT NULL DEFAULT '';"
    MFR_TABLE_3
    "PRAGMA user_version = 3;";

/*
 * Version 2 (the lifecycle): a certificate's revocation, what it replaces,
 * its acknowledgement deadline and its suggested renewal window.
 */
#define CERT_COLUMNS_2 \
    " revoked_at INTEGER NOT NULL DEFAULT 0," \
    " revocation_reason INTEGER NOT NULL DEFAULT 0," \
    " replaces_serial TEXT NOT NULL DEFAULT ''," \
    " ack_deadline INTEGER NOT NULL DEFAULT 0," \
    " renew_after INTEGER NOT NULL DEFAULT 0," \
    " renew_before INTEGER NOT NULL DEFAULT 0," \
    " renew_note TEXT NOT NULL DEFAULT ''"
/* authz's sweep of renewals past their acknowledgement deadline reads
 * only these (2 = CERTIFICATE_STATUS_PENDING_ACK, a literal so that the
 * sweep's query can use the partial index). */
#define CERT_INDEX_2 \
    "CREATE INDEX IF NOT EXISTS certificates_pending" \
    " ON certificates(ack_deadline) WHERE status = 2;"
static const char *MIGRATE_2 =
    "ALTER TABLE certificates ADD COLUMN revoked_at INTEGER NOT NULL"
    " DEFAULT 0;"
    "ALTER TABLE certificates ADD COLUMN revocation_reason INTEGER NOT NULL"
    " DEFAULT 0;"
    "ALTER TABLE certificates ADD COLUMN replaces_serial TEXT NOT NULL"
    " DEFAULT '';"
    "ALTER TABLE certificates ADD COLUMN ack_deadline INTEGER NOT NULL"
    " DEFAULT 0;"
    "ALTER TABLE certificates ADD COLUMN renew_after INTEGER NOT NULL"
    " DEFAULT 0;"
    "ALTER TABLE certificates ADD COLUMN renew_before INTEGER NOT NULL"
    " DEFAULT 0;"
    "ALTER TABLE certificates ADD COLUMN renew_note TEXT NOT NULL"
    " DEFAULT '';"
    CERT_INDEX_2
    "PRAGMA user_version = 2;";
#define BUSY_TIMEOUT_MS 10000

/*
 * The schema. Text columns that may be absent hold '' rather than NULL
 * ('' = any region, no serial, no idempotency key, no group, a first
 * enrollment), so that comparisons and unique indexes need no IS NULL.
 * States and statuses are the secretfree.v1 numbers (pbenum.h).
 */
static const char *SCHEMA =
    /* Factory keys; current_serial is the certificate the device holds. */
    "CREATE TABLE IF NOT EXISTS devices ("
    " device_id TEXT PRIMARY KEY NOT NULL,"
    " spki BLOB NOT NULL CHECK (length(spki) > 0),"
    " key_sha256 BLOB NOT NULL UNIQUE CHECK (length(key_sha256) = 32),"
    " product_line TEXT NOT NULL,"
    " region TEXT NOT NULL DEFAULT '',"
    " state INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL,"
    " current_serial TEXT NOT NULL DEFAULT '',"
    " origin TEXT NOT NULL DEFAULT '');"
    MFR_TABLE_3
    /* One row per issued certificate, for retries and later fetches. */
    "CREATE TABLE IF NOT EXISTS enrollments ("
    " enrollment_id TEXT PRIMARY KEY NOT NULL,"
    " device_id TEXT NOT NULL REFERENCES devices(device_id),"
    " idempotency_key TEXT NOT NULL DEFAULT '',"
    " csr_sha256 BLOB NOT NULL CHECK (length(csr_sha256) = 32),"
    " serial TEXT NOT NULL,"
    " ca_name TEXT NOT NULL,"
    " certificate_pem TEXT NOT NULL,"
    " chain_pem TEXT NOT NULL,"
    " region TEXT NOT NULL DEFAULT '',"
    " not_before INTEGER NOT NULL,"
    " not_after INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " state INTEGER NOT NULL,"
    " replaces_serial TEXT NOT NULL DEFAULT '');"
    /* A retry with an idempotency key finds its enrollment by (device,
     * key): a partial index, since most requests carry no key. A retry
     * without one finds it by (device, CSR fingerprint) in a window. */
    "CREATE UNIQUE INDEX IF NOT EXISTS enrollments_key"
    " ON enrollments(device_id, idempotency_key)"
    " WHERE idempotency_key != '';"
    "CREATE INDEX IF NOT EXISTS enrollments_csr"
    " ON enrollments(device_id, csr_sha256, created_at);"
    /* Certificates per device, newest first by issued_at. */
    "CREATE TABLE IF NOT EXISTS certificates ("
    " serial TEXT PRIMARY KEY NOT NULL,"
    " device_id TEXT NOT NULL REFERENCES devices(device_id),"
    " ca_name TEXT NOT NULL,"
    " enrollment_id TEXT NOT NULL REFERENCES enrollments(enrollment_id),"
    " status INTEGER NOT NULL,"
    " not_before INTEGER NOT NULL,"
    " not_after INTEGER NOT NULL,"
    " issued_at INTEGER NOT NULL,"
    CERT_COLUMNS_2 ");"
    "CREATE INDEX IF NOT EXISTS certificates_device"
    " ON certificates(device_id, issued_at);"
    "CREATE INDEX IF NOT EXISTS certificates_enrollment"
    " ON certificates(enrollment_id);"
    CERT_INDEX_2
    "CREATE TABLE IF NOT EXISTS policies ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " document TEXT NOT NULL CHECK (json_valid(document)),"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL);"
    /* The policies a certificate carries (from its template). */
    "CREATE TABLE IF NOT EXISTS cert_policies ("
    " serial TEXT NOT NULL REFERENCES certificates(serial)"
    "  ON DELETE CASCADE,"
    " policy TEXT NOT NULL REFERENCES policies(name),"
    " PRIMARY KEY (serial, policy));"
    "CREATE INDEX IF NOT EXISTS cert_policies_policy"
    " ON cert_policies(policy);"
    /* Provisioning templates, per product line, with their ordered
     * policies and attribute templates. */
    "CREATE TABLE IF NOT EXISTS templates ("
    " product_line TEXT PRIMARY KEY NOT NULL,"
    " thing_group TEXT NOT NULL DEFAULT '',"
    " updated_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS template_policies ("
    " product_line TEXT NOT NULL REFERENCES templates(product_line)"
    "  ON DELETE CASCADE,"
    " position INTEGER NOT NULL,"
    " policy TEXT NOT NULL REFERENCES policies(name),"
    " PRIMARY KEY (product_line, policy));"
    "CREATE INDEX IF NOT EXISTS template_policies_policy"
    " ON template_policies(policy);"
    "CREATE TABLE IF NOT EXISTS template_attributes ("
    " product_line TEXT NOT NULL REFERENCES templates(product_line)"
    "  ON DELETE CASCADE,"
    " position INTEGER NOT NULL,"
    " name TEXT NOT NULL,"
    " value TEXT NOT NULL,"
    " PRIMARY KEY (product_line, name));"
    /* Things (named after their device), attributes and groups. */
    "CREATE TABLE IF NOT EXISTS things ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " device_id TEXT NOT NULL REFERENCES devices(device_id),"
    " certificate_serial TEXT NOT NULL DEFAULT '',"
    " created_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS things_device ON things(device_id);"
    "CREATE TABLE IF NOT EXISTS thing_attributes ("
    " thing TEXT NOT NULL REFERENCES things(name) ON DELETE CASCADE,"
    " name TEXT NOT NULL,"
    " value TEXT NOT NULL,"
    " PRIMARY KEY (thing, name));"
    "CREATE TABLE IF NOT EXISTS groups ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " created_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS thing_groups ("
    " thing TEXT NOT NULL REFERENCES things(name) ON DELETE CASCADE,"
    " group_name TEXT NOT NULL REFERENCES groups(name),"
    " PRIMARY KEY (thing, group_name));"
    "CREATE INDEX IF NOT EXISTS thing_groups_group"
    " ON thing_groups(group_name);";

static const char *const SQL[NQ] = {
	[Q_BEGIN] = "BEGIN",
	[Q_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
	[Q_SAVEPOINT] = "SAVEPOINT g",
	[Q_RELEASE] = "RELEASE g",
	[Q_ROLLBACK_TO] = "ROLLBACK TO g",
};

/* ---- helpers shared through registry_int.h ---- */

/* Set once an fsync of the registry failed: nothing more is written until
 * authz restarts (the page cache can no longer be trusted). */
static int fsync_failed;

/*
 * The disk's failures, with the line an operator needs: SF_EUNAVAIL for a
 * full disk or an I/O error (a failed fsync also stops every later write
 * transaction); 0 when code is none of them.
 */
static int
disk_err(sqlite3 *db, int code, const char *what)
{
	if (code == SQLITE_IOERR_FSYNC || code == SQLITE_IOERR_DIR_FSYNC) {
		if (!__atomic_exchange_n(&fsync_failed, 1, __ATOMIC_ACQ_REL))
			log_warnx("registry: %s: fsync failed (%s): what was"
			    " written may not be on disk; authz writes nothing"
			    " more and answers UNAVAILABLE until it is"
			    " restarted", what, sqlite3_errmsg(db));
		return SF_EUNAVAIL;
	}
	if ((code & 0xff) == SQLITE_FULL) {
		log_warnx("registry: %s: the disk is full (%s): enrollments"
		    " fail until space is freed", what, sqlite3_errmsg(db));
		return SF_EUNAVAIL;
	}
	if ((code & 0xff) == SQLITE_IOERR) {
		log_warnx("registry: %s: I/O error (%s)", what,
		    sqlite3_errmsg(db));
		return SF_EUNAVAIL;
	}
	return 0;
}

/*
 * Map a failed step's result code onto ours. Constraint failures are the
 * caller's input (a duplicate, a dangling name, a bad value) and logged at
 * debug level only; anything else is a database problem and logged.
 */
int
registry_sql_err(sqlite3 *db, int code, const char *what)
{
	switch (code) {
	case SQLITE_CONSTRAINT_PRIMARYKEY:
	case SQLITE_CONSTRAINT_UNIQUE:
		log_debug("registry: %s: %s", what, sqlite3_errmsg(db));
		return SF_EEXIST;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		log_debug("registry: %s: %s", what, sqlite3_errmsg(db));
		return SF_ENOTFOUND;
	case SQLITE_CONSTRAINT_CHECK:
	case SQLITE_CONSTRAINT_NOTNULL:
		log_debug("registry: %s: %s", what, sqlite3_errmsg(db));
		return SF_EINVAL;
	}
	if (disk_err(db, code, what) != 0)
		return SF_EUNAVAIL;
	log_warnx("registry: %s: %s", what, sqlite3_errmsg(db));
	if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED)
		return SF_EUNAVAIL;
	return SF_EDB;
}

/* SQL run once, at open (pragmas, the schema). */
static int
exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int code;

	if ((code = sqlite3_exec(db, sql, NULL, NULL, &msg)) != SQLITE_OK) {
		log_warnx("registry: %s: %s", sql, msg ? msg : "?");
		sqlite3_free(msg);
		return ((code & 0xff) == SQLITE_BUSY) ? SF_EUNAVAIL : SF_EDB;
	}
	return 0;
}

/* A statement used once, at open (finalized by the caller). */
static int
prep(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK) {
		log_warnx("registry: cannot prepare \"%s\": %s", sql,
		    sqlite3_errmsg(db));
		*st = NULL;
		return SF_EDB;
	}
	return 0;
}

/*
 * The cache: a statement is prepared on its connection the first time it
 * is used there (SQLITE_PREPARE_PERSISTENT: it lives as long as the
 * connection) and kept until registry_close. A statement left stepped
 * would hold the reader's snapshot and its bindings would carry into the
 * next call, hence registry_done() on every path.
 */
int
registry_stmt(struct dbconn *c, const char *const *sql, int q,
    sqlite3_stmt **st)
{
	*st = NULL;
	if (sql[q] == NULL) {
		/* An id used by a file whose table does not have it. */
		log_warnx("registry: statement %d has no SQL here", q);
		return SF_EINTERNAL;
	}
	if (c->st[q] == NULL && sqlite3_prepare_v3(c->db, sql[q], -1,
	    SQLITE_PREPARE_PERSISTENT, &c->st[q], NULL) != SQLITE_OK) {
		log_warnx("registry: cannot prepare \"%s\": %s", sql[q],
		    sqlite3_errmsg(c->db));
		c->st[q] = NULL;
		return SF_EDB;
	}
	*st = c->st[q];
	return 0;
}

void
registry_done(sqlite3_stmt *st)
{
	if (st == NULL)
		return;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static void
stmts_finalize(struct dbconn *c)
{
	for (int q = 0; q < NQ; q++) {
		sqlite3_finalize(c->st[q]);
		c->st[q] = NULL;
	}
}

int
registry_run(sqlite3 *db, sqlite3_stmt *st, const char *what)
{
	int code, rc = 0;

	if ((code = sqlite3_step(st)) != SQLITE_DONE)
		rc = registry_sql_err(db, code, what);
	sqlite3_reset(st);
	return rc;
}

int
registry_run_one(sqlite3 *db, sqlite3_stmt *st, const char *what)
{
	int rc;

	if ((rc = registry_run(db, st, what)) == 0 && sqlite3_changes(db) != 1)
		rc = SF_ENOTFOUND;
	return rc;
}

/* Run kept statement q (a transaction statement) on c. */
static int
tx_step(struct dbconn *c, int q)
{
	sqlite3_stmt *st;
	int code, rc;

	if ((rc = registry_stmt(c, SQL, q, &st)) != 0)
		return rc;
	if ((code = sqlite3_step(st)) == SQLITE_DONE)
		rc = 0;
	else if (disk_err(c->db, code, SQL[q]) != 0)
		rc = SF_EUNAVAIL;
	else {
		log_warnx("registry: %s: %s", SQL[q], sqlite3_errmsg(c->db));
		rc = ((code & 0xff) == SQLITE_BUSY) ? SF_EUNAVAIL : SF_EDB;
	}
	sqlite3_reset(st);
	return rc;
}

/* The group's transaction is over (committed, rolled back, or lost):
 * wake its members with rc. */
static void
group_done(struct dbconn *c, int rc)
{
	for (struct member *m = c->members; m; m = m->next) {
		m->rc = rc;
		m->done = 1;
	}
	c->members = NULL;
	c->open = 0;
	c->ckpt.bulk = 0;
	pthread_cond_broadcast(&c->committed);
}

/* Wait, as a member, until the group's transaction is over (me is off
 * the list again when this returns; out of line, so that GCC sees no
 * local's address left behind). */
static __attribute__((noinline)) void
group_wait(struct dbconn *c, struct member *me)
{
	me->next = c->members;
	c->members = me;
	while (!me->done)
		pthread_cond_wait(&c->committed, &c->lock);
}

/* Commit the group's open transaction: its result. */
static int
group_commit(struct dbconn *c)
{
	int rc;

	if (sqlite3_get_autocommit(c->db))
		rc = SF_EUNAVAIL;        /* SQLite rolled it back */
	else if ((rc = tx_step(c, Q_COMMIT)) != 0)
		tx_step(c, Q_ROLLBACK);
	group_done(c, rc);
	return rc;
}

/* Transactions are kept statements too. */
int
registry_tx(struct dbconn *c, int q)
{
	int rc;

	if ((q == Q_BEGIN_IMMEDIATE) &&
	    __atomic_load_n(&fsync_failed, __ATOMIC_ACQUIRE))
		return SF_EUNAVAIL;
	if (q == Q_BEGIN_IMMEDIATE && c->group) {
		/* A group left open after SQLite dropped it: fail it. */
		if (c->open && sqlite3_get_autocommit(c->db))
			group_done(c, SF_EUNAVAIL);
		if (!c->open) {
			if ((rc = tx_step(c, Q_BEGIN_IMMEDIATE)) != 0)
				return rc;
			c->open = 1;
		}
		if ((rc = tx_step(c, Q_SAVEPOINT)) != 0 && c->members == NULL)
			group_commit(c);     /* nothing of anyone's in it */
		return rc;
	}
	return tx_step(c, q);
}

int
registry_tx_end(struct dbconn *c, int rc)
{
	struct member me = { 0, 0, NULL };
	int crc;

	if (!(c->group && c->open)) {
		if (rc == 0 && (rc = registry_tx(c, Q_COMMIT)) == 0)
			return 0;
		registry_tx(c, Q_ROLLBACK);
		return rc;
	}
	/* The caller's part of the group's transaction. */
	if (sqlite3_get_autocommit(c->db)) {
		/* SQLite rolled the whole transaction back (a full disk):
		 * everyone's work in it is gone. */
		group_done(c, SF_EUNAVAIL);
		return rc ? rc : SF_EUNAVAIL;
	}
	if (rc == 0)
		rc = tx_step(c, Q_RELEASE);
	if (rc != 0 && !sqlite3_get_autocommit(c->db)) {
		tx_step(c, Q_ROLLBACK_TO);
		tx_step(c, Q_RELEASE);
	}
	if (__atomic_load_n(&c->queued, __ATOMIC_ACQUIRE) > 0 && rc == 0 &&
	    !sqlite3_get_autocommit(c->db)) {
		/* Others are coming: let them add theirs, and wait for the
		 * commit (the wait hands the connection on). */
		group_wait(c, &me);
		return me.rc;
	}
	crc = group_commit(c);
	return rc ? rc : crc;
}

struct dbconn *
registry_wlock(registry *r)
{
	struct dbconn *c = &r->w;

	__atomic_add_fetch(&c->queued, 1, __ATOMIC_ACQ_REL);
	pthread_mutex_lock(&c->lock);
	__atomic_sub_fetch(&c->queued, 1, __ATOMIC_ACQ_REL);
	return c;
}

void
registry_wunlock(registry *r)
{
	struct dbconn *c = &r->w;

	/* A group nobody else is coming to commit (its last member's
	 * transaction did not begin, or was refused). */
	if (c->group && c->open &&
	    __atomic_load_n(&c->queued, __ATOMIC_ACQUIRE) == 0)
		group_commit(c);
	pthread_mutex_unlock(&c->lock);
}

struct dbconn *
registry_rlock(registry *r)
{
	pthread_mutex_lock(&r->reader->lock);
	return r->reader;
}

void
registry_runlock(registry *r)
{
	pthread_mutex_unlock(&r->reader->lock);
}

void *
registry_grow(void *v, size_t *cap, size_t n, size_t sz)
{
	size_t ncap;
	void *nv;

	if (n < *cap)
		return v;
	ncap = *cap ? *cap * 2 : 16;
	if ((nv = reallocarray(v, ncap, sz)) == NULL)
		return NULL;
	*cap = ncap;
	return nv;
}

int
registry_rows(sqlite3 *db, sqlite3_stmt *st, size_t sz, registry_row_fn row,
    void *arg, void **v, size_t *n, const char *what)
{
	size_t cap = 0;
	char *elem;
	void *nv;
	int code, rc;

	*v = NULL;
	*n = 0;
	while ((code = sqlite3_step(st)) == SQLITE_ROW) {
		if ((nv = registry_grow(*v, &cap, *n, sz)) == NULL)
			return SF_ENOMEM;
		*v = nv;
		elem = (char *)nv + *n * sz;
		memset(elem, 0, sz);
		(*n)++;
		if ((rc = row(st, elem, arg)) != 0)
			return rc;
	}
	if (code != SQLITE_DONE)
		return registry_sql_err(db, code, what);
	return 0;
}

int
registry_rows_tx(struct dbconn *c, sqlite3_stmt *st, size_t sz,
    registry_row_fn row, void *arg, void **v, size_t *n, const char *what)
{
	int rc;

	*v = NULL;
	*n = 0;
	if ((rc = registry_tx(c, Q_BEGIN)) != 0)
		return rc;
	rc = registry_rows(c->db, st, sz, row, arg, v, n, what);
	/* Nothing stepped may outlive the transaction. */
	sqlite3_reset(st);
	return registry_tx_end(c, rc);
}

int
registry_one(void *v, size_t n, size_t sz, void *out)
{
	int rc = SF_ENOTFOUND;

	if (n > 0) {
		memcpy(out, v, sz);  /* transferred */
		rc = 0;
	}
	free(v);
	return rc;
}

int
registry_collect(sqlite3 *db, sqlite3_stmt *st, char ***c0, char ***c1,
    size_t *n)
{
	char **a = NULL, **b = NULL, **na;
	size_t cnt = 0, capa = 0, capb = 0;
	int code, rc = 0;

	*c0 = NULL;
	if (c1)
		*c1 = NULL;
	*n = 0;
	while ((code = sqlite3_step(st)) == SQLITE_ROW) {
		if ((na = registry_grow(a, &capa, cnt, sizeof *a)) == NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
		a = na;
		if (c1) {
			if ((na = registry_grow(b, &capb, cnt,
			    sizeof *b)) == NULL) {
				rc = SF_ENOMEM;
				goto out;
			}
			b = na;
			b[cnt] = NULL;
		}
		a[cnt] = col_strdup(st, 0);
		if (c1)
			b[cnt] = col_strdup(st, 1);
		cnt++;
		if (a[cnt - 1] == NULL || (c1 && b[cnt - 1] == NULL)) {
			rc = SF_ENOMEM;
			goto out;
		}
	}
	if (code != SQLITE_DONE) {
		rc = registry_sql_err(db, code, "read list");
		goto out;
	}
	*c0 = a;
	a = NULL;  /* transferred */
	if (c1) {
		*c1 = b;
		b = NULL;  /* transferred */
	}
	*n = cnt;
out:
	registry_strings_free(a, cnt);
	registry_strings_free(b, cnt);
	sqlite3_reset(st);
	return rc;
}

/* ---- open / close ---- */

static int
conn_open(const char *path, int flags, sqlite3 **out, char *why,
    size_t whylen)
{
	sqlite3 *db = NULL;

	*out = NULL;
	/* NOMUTEX: each connection is used under our own mutex. */
	if (sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		sf_why(why, whylen, "cannot open registry %s: %s", path,
		    db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return db ? SF_EDB : SF_ENOMEM;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	*out = db;
	return 0;
}

/* Create the schema, or check that the file holds ours. */
static int
schema_init(struct dbconn *c, char *why, size_t whylen)
{
	sqlite3_stmt *st = NULL;
	sqlite3 *db = c->db;
	char *sql = NULL;
	int rc, version = -1;

	if ((rc = registry_tx(c, Q_BEGIN_IMMEDIATE)) != 0)
		goto out;
	if ((rc = prep(db, "PRAGMA user_version", &st)) != 0)
		goto out;
	if (sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (version < 0 || version > SCHEMA_VERSION) {
		sf_why(why, whylen, "registry schema version %d is not %d",
		    version, SCHEMA_VERSION);
		rc = SF_EDB;
		goto out;
	}
	if (version > 0 && version < SCHEMA_VERSION) {
		if ((version < 2 && (rc = exec(db, MIGRATE_2)) != 0) ||
		    (rc = exec(db, MIGRATE_3)) != 0) {
			sf_why(why, whylen, "cannot upgrade the registry from"
			    " version %d: %s", version, sqlite3_errmsg(db));
			goto out;
		}
		log_info("registry upgraded from version %d to %d", version,
		    SCHEMA_VERSION);
	}
	if (version == 0) {
		if ((sql = sf_aprintf("%sPRAGMA user_version = %d;", SCHEMA,
		    SCHEMA_VERSION)) == NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
		if ((rc = exec(db, sql)) != 0) {
			sf_why(why, whylen, "cannot create the registry "
			    "schema: %s", sqlite3_errmsg(db));
			goto out;
		}
	}
	rc = 0;
out:
	free(sql);
	return registry_tx_end(c, rc);
}

int
registry_open(const char *path, registry **out, char *why, size_t whylen)
{
	registry *r = NULL;
	sqlite3_stmt *st = NULL;
	int rc, memory, wal = 0;

	*out = NULL;
	if (why && whylen)
		*why = '\0';
	if (empty(path)) {
		sf_why(why, whylen, "no registry path");
		return SF_EINVAL;
	}
	memory = strcmp(path, ":memory:") == 0;
	if ((r = calloc(1, sizeof *r)) == NULL)
		return SF_ENOMEM;
	pthread_mutex_init(&r->w.lock, NULL);
	pthread_mutex_init(&r->rd.lock, NULL);
	pthread_cond_init(&r->w.committed, NULL);
	r->reader = memory ? &r->w : &r->rd;
	if ((rc = conn_open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	    &r->w.db, why, whylen)) != 0)
		goto out;
	if ((rc = prep(r->w.db, "PRAGMA journal_mode=WAL", &st)) != 0)
		goto out;
	if (sqlite3_step(st) == SQLITE_ROW)
		wal = sqlite3_stricmp((const char *)sqlite3_column_text(st, 0),
		    "wal") == 0;
	sqlite3_finalize(st);
	st = NULL;
	if (!wal && !memory) {
		/* A reader beside the writer needs WAL. */
		sf_why(why, whylen, "registry %s: cannot use WAL mode", path);
		rc = SF_EDB;
		goto out;
	}
	if ((rc = exec(r->w.db, "PRAGMA synchronous=FULL")) != 0 ||
	    (rc = exec(r->w.db, "PRAGMA foreign_keys=ON")) != 0 ||
	    (rc = exec(r->w.db, "PRAGMA cache_size=-16384")) != 0) {
		sf_why(why, whylen, "cannot set up registry %s: %s", path,
		    sqlite3_errmsg(r->w.db));
		goto out;
	}
	if ((rc = schema_init(&r->w, why, whylen)) != 0) {
		if (why && whylen && *why == '\0')
			sf_why(why, whylen, "cannot initialise registry %s",
			    path);
		goto out;
	}
	if (!memory && (rc = conn_open(path, SQLITE_OPEN_READONLY, &r->rd.db,
	    why, whylen)) != 0)
		goto out;
	if (!memory)
		walckpt_install(&r->w.ckpt, r->w.db);
	r->w.group = !memory;
	log_debug("registry: %s open", path);
	*out = r;
	r = NULL;  /* transferred */
	rc = 0;
out:
	registry_close(r);
	return rc;
}

void
registry_close(registry *r)
{
	if (r == NULL)
		return;
	/* Kept statements first: sqlite3_close() refuses a connection that
	 * has some. The reader first: the last connection to close
	 * checkpoints. */
	stmts_finalize(&r->rd);
	sqlite3_close(r->rd.db);
	stmts_finalize(&r->w);
	sqlite3_close(r->w.db);
	pthread_mutex_destroy(&r->rd.lock);
	pthread_mutex_destroy(&r->w.lock);
	pthread_cond_destroy(&r->w.committed);
	free(r);
}

void
registry_strings_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

