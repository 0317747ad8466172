/*
 * registry.c - authz's device registry on SQLite (see registry.h). The only
 * file of authz with SQL in it.
 *
 * Connections. One writing connection per database (SQLite 3.40's
 * WAL-reset bug needs two writers on one database), used under a mutex, and
 * one read-only connection under its own mutex, so that reads do not queue
 * behind a writer's fsync (WAL lets them read the last committed state).
 * ":memory:" is private to the connection that opens it, so an in-memory
 * registry has only the writing connection, and it serves reads too. A
 * daemon opens its registry once; a second registry_open() of the same file
 * would be a second writer. Each connection keeps the statements run on it
 * prepared (SQL[] below), used under its mutex and reset after each use.
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
 * Schema (user_version 1):
 *
 *   devices              device_id PK, spki, key_sha256 UNIQUE,
 *                        product_line, region ('' = any), state,
 *                        created_at, updated_at, current_serial ('' = none)
 *   enrollments          enrollment_id PK, device_id -> devices,
 *                        idempotency_key ('' = none), csr_sha256, serial,
 *                        ca_name, certificate_pem, chain_pem, region,
 *                        not_before, not_after, created_at, state,
 *                        replaces_serial ('' = first enrollment).
 *                        UNIQUE (device_id, idempotency_key) where the key
 *                        is not empty (a partial index); an index on
 *                        (device_id, csr_sha256, created_at) for retries
 *                        without a key.
 *   certificates         serial PK, device_id -> devices, ca_name,
 *                        enrollment_id -> enrollments, status, not_before,
 *                        not_after, issued_at; index (device_id, issued_at)
 *   cert_policies        (serial -> certificates, policy -> policies)
 *   policies             name PK, document (CHECK json_valid), times
 *   templates            product_line PK, thing_group ('' = none)
 *   template_policies    (product_line -> templates, position,
 *                        policy -> policies)
 *   template_attributes  (product_line -> templates, position, name, value)
 *   things               name PK (the device id), device_id -> devices,
 *                        certificate_serial, created_at
 *   thing_attributes     (thing -> things, name, value)
 *   groups               name PK, created_at
 *   thing_groups         (thing -> things, group_name -> groups)
 *
 * Foreign keys are enforced; CHECKs keep fingerprints 32 bytes and policy
 * documents JSON. Constraint failures map onto our codes: UNIQUE and
 * PRIMARY KEY -> SF_EEXIST, FOREIGN KEY -> SF_ENOTFOUND, CHECK and
 * NOT NULL -> SF_EINVAL.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "err.h"
#include "log.h"
#include "pbenum.h"
#include "registry.h"
#include "util.h"

#define SCHEMA_VERSION 1
#define BUSY_TIMEOUT_MS 10000

static const char *SCHEMA =
    "CREATE TABLE IF NOT EXISTS devices ("
    " device_id TEXT PRIMARY KEY NOT NULL,"
    " spki BLOB NOT NULL CHECK (length(spki) > 0),"
    " key_sha256 BLOB NOT NULL UNIQUE CHECK (length(key_sha256) = 32),"
    " product_line TEXT NOT NULL,"
    " region TEXT NOT NULL DEFAULT '',"
    " state INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL,"
    " current_serial TEXT NOT NULL DEFAULT '');"
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
    "CREATE UNIQUE INDEX IF NOT EXISTS enrollments_key"
    " ON enrollments(device_id, idempotency_key)"
    " WHERE idempotency_key != '';"
    "CREATE INDEX IF NOT EXISTS enrollments_csr"
    " ON enrollments(device_id, csr_sha256, created_at);"
    "CREATE TABLE IF NOT EXISTS certificates ("
    " serial TEXT PRIMARY KEY NOT NULL,"
    " device_id TEXT NOT NULL REFERENCES devices(device_id),"
    " ca_name TEXT NOT NULL,"
    " enrollment_id TEXT NOT NULL REFERENCES enrollments(enrollment_id),"
    " status INTEGER NOT NULL,"
    " not_before INTEGER NOT NULL,"
    " not_after INTEGER NOT NULL,"
    " issued_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS certificates_device"
    " ON certificates(device_id, issued_at);"
    "CREATE INDEX IF NOT EXISTS certificates_enrollment"
    " ON certificates(enrollment_id);"
    "CREATE TABLE IF NOT EXISTS policies ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " document TEXT NOT NULL CHECK (json_valid(document)),"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS cert_policies ("
    " serial TEXT NOT NULL REFERENCES certificates(serial)"
    "  ON DELETE CASCADE,"
    " policy TEXT NOT NULL REFERENCES policies(name),"
    " PRIMARY KEY (serial, policy));"
    "CREATE INDEX IF NOT EXISTS cert_policies_policy"
    " ON cert_policies(policy);"
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

/*
 * The statements that run after registry_open, each prepared on its
 * connection the first time it is used there and kept until
 * registry_close (see stmt()), so that a call does not parse and plan its
 * SQL again: an enrollment runs about twenty of them.
 */
#define DEVICE_COLS "device_id, spki, key_sha256, product_line, region," \
	" state, created_at, updated_at, current_serial"
#define ENROLLMENT_COLS "enrollment_id, device_id, idempotency_key," \
	" csr_sha256, serial, ca_name, certificate_pem, chain_pem, region," \
	" not_before, not_after, created_at, state, replaces_serial"
#define CERT_COLS "serial, ca_name, enrollment_id, status, not_before," \
	" not_after, issued_at"
#define THING_COLS "name, device_id, certificate_serial, created_at"

enum {
	Q_BEGIN, Q_BEGIN_IMMEDIATE, Q_COMMIT, Q_ROLLBACK,
	/* devices */
	Q_DEVICE_GET, Q_IMPORT_BY_ID, Q_IMPORT_BY_KEY, Q_IMPORT_INSERT,
	Q_DEVICE_LIST, Q_DEVICE_SET_STATE, Q_DEVICE_COUNT,
	/* policies, groups, templates */
	Q_POLICY_PUT, Q_POLICY_GET, Q_POLICY_LIST, Q_POLICY_EXISTS,
	Q_GROUP_ENSURE, Q_TEMPLATE_PUT, Q_TEMPLATE_DEL_POLICIES,
	Q_TEMPLATE_DEL_ATTRS, Q_TEMPLATE_ADD_POLICY, Q_TEMPLATE_ADD_ATTR,
	Q_TEMPLATE_READ, Q_TEMPLATE_POLICIES, Q_TEMPLATE_ATTRS,
	/* enrollments */
	Q_ENROLLMENT_GET, Q_ENROLLMENT_BY_KEY, Q_ENROLLMENT_BY_CSR,
	Q_ENROLLMENT_SET_STATE, Q_ENROLL_DEVICE, Q_ENROLLMENT_INSERT,
	Q_CERT_INSERT, Q_DEVICE_HOLD, Q_THING_HOLD, Q_THING_PUT,
	Q_THING_ATTR_PUT, Q_THING_GROUP_PUT, Q_CERT_POLICY_PUT,
	/* certificates */
	Q_CERT_OF_DEVICE, Q_CERT_ALL, Q_CERT_POLICIES, Q_CERT_SET_STATUS,
	/* things and groups */
	Q_THING_BY_NAME, Q_THING_PAGE, Q_THING_ATTRS, Q_THING_GROUPS,
	Q_GROUP_LIST,
	NQ
};

/* Q_DEVICE_LIST's "?3 = 0" is "no state filter": DeviceState UNSPECIFIED. */
_Static_assert(DEVICE_UNSPECIFIED == 0, "no state filter is UNSPECIFIED");

static const char *const SQL[NQ] = {
	[Q_BEGIN] = "BEGIN",
	[Q_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE",
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",

	[Q_DEVICE_GET] =
	    "SELECT " DEVICE_COLS " FROM devices WHERE device_id = ?",
	[Q_IMPORT_BY_ID] = "SELECT key_sha256, product_line, region"
	    " FROM devices WHERE device_id = ?",
	[Q_IMPORT_BY_KEY] = "SELECT 1 FROM devices WHERE key_sha256 = ?",
	[Q_IMPORT_INSERT] = "INSERT INTO devices (device_id, spki,"
	    " key_sha256, product_line, region, state, created_at,"
	    " updated_at) VALUES (?,?,?,?,?,?,?,?)",
	[Q_DEVICE_LIST] = "SELECT " DEVICE_COLS " FROM devices"
	    " WHERE (?1 = '' OR product_line = ?1)"
	    " AND (?2 = '' OR region = ?2) AND (?3 = 0 OR state = ?3)"
	    " AND device_id > ?4 ORDER BY device_id LIMIT ?5",
	[Q_DEVICE_SET_STATE] = "UPDATE devices SET state = ?,"
	    " updated_at = ? WHERE device_id = ?",
	[Q_DEVICE_COUNT] = "SELECT count(*) FROM devices",

	/* The CHECK (json_valid(document)) refuses what is not JSON. */
	[Q_POLICY_PUT] = "INSERT INTO policies (name, document,"
	    " created_at, updated_at) VALUES (?1, ?2, ?3, ?3)"
	    " ON CONFLICT (name) DO UPDATE SET document = excluded.document,"
	    " updated_at = excluded.updated_at",
	[Q_POLICY_GET] = "SELECT document FROM policies WHERE name = ?",
	[Q_POLICY_LIST] = "SELECT name, document FROM policies"
	    " ORDER BY name",
	[Q_POLICY_EXISTS] = "SELECT 1 FROM policies WHERE name = ?",
	[Q_GROUP_ENSURE] = "INSERT INTO groups (name, created_at)"
	    " VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
	[Q_TEMPLATE_PUT] = "INSERT INTO templates (product_line,"
	    " thing_group, updated_at) VALUES (?, ?, ?)"
	    " ON CONFLICT (product_line)"
	    " DO UPDATE SET thing_group = excluded.thing_group,"
	    " updated_at = excluded.updated_at",
	[Q_TEMPLATE_DEL_POLICIES] =
	    "DELETE FROM template_policies WHERE product_line = ?",
	[Q_TEMPLATE_DEL_ATTRS] =
	    "DELETE FROM template_attributes WHERE product_line = ?",
	[Q_TEMPLATE_ADD_POLICY] = "INSERT INTO template_policies"
	    " (product_line, position, policy) VALUES (?, ?, ?)",
	[Q_TEMPLATE_ADD_ATTR] = "INSERT INTO template_attributes"
	    " (product_line, position, name, value) VALUES (?, ?, ?, ?)",
	[Q_TEMPLATE_READ] = "SELECT product_line, thing_group FROM templates"
	    " WHERE ?1 IS NULL OR product_line = ?1 ORDER BY product_line",
	[Q_TEMPLATE_POLICIES] = "SELECT policy FROM template_policies"
	    " WHERE product_line = ? ORDER BY position",
	[Q_TEMPLATE_ATTRS] = "SELECT name, value FROM template_attributes"
	    " WHERE product_line = ? ORDER BY position",

	[Q_ENROLLMENT_GET] = "SELECT " ENROLLMENT_COLS " FROM enrollments"
	    " WHERE enrollment_id = ?",
	/* The literal "!= ''" lets SQLite use the partial unique index. */
	[Q_ENROLLMENT_BY_KEY] = "SELECT " ENROLLMENT_COLS
	    " FROM enrollments WHERE device_id = ? AND idempotency_key = ?"
	    " AND idempotency_key != ''",
	[Q_ENROLLMENT_BY_CSR] = "SELECT " ENROLLMENT_COLS
	    " FROM enrollments"
	    " WHERE device_id = ? AND csr_sha256 = ? AND created_at >= ?"
	    " AND idempotency_key = ''"
	    " ORDER BY created_at DESC, rowid DESC LIMIT 1",
	[Q_ENROLLMENT_SET_STATE] = "UPDATE enrollments SET state = ?"
	    " WHERE enrollment_id = ?",
	[Q_ENROLL_DEVICE] = "SELECT product_line, region, current_serial,"
	    " state FROM devices WHERE device_id = ?",
	[Q_ENROLLMENT_INSERT] = "INSERT INTO enrollments (" ENROLLMENT_COLS
	    ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
	[Q_CERT_INSERT] = "INSERT INTO certificates (serial, device_id,"
	    " ca_name, enrollment_id, status, not_before, not_after,"
	    " issued_at) VALUES (?,?,?,?,?,?,?,?)",
	[Q_DEVICE_HOLD] = "UPDATE devices SET current_serial = ?1,"
	    " state = CASE state WHEN ?2 THEN ?2 ELSE ?3 END, updated_at = ?4"
	    " WHERE device_id = ?5",
	[Q_THING_HOLD] = "UPDATE things SET certificate_serial = ?"
	    " WHERE device_id = ?",
	[Q_THING_PUT] = "INSERT INTO things (name, device_id,"
	    " certificate_serial, created_at) VALUES (?1, ?1, ?2, ?3)"
	    " ON CONFLICT (name) DO UPDATE SET"
	    " certificate_serial = excluded.certificate_serial",
	[Q_THING_ATTR_PUT] = "INSERT INTO thing_attributes (thing, name,"
	    " value) VALUES (?, ?, ?) ON CONFLICT (thing, name)"
	    " DO UPDATE SET value = excluded.value",
	[Q_THING_GROUP_PUT] = "INSERT INTO thing_groups (thing, group_name)"
	    " VALUES (?, ?) ON CONFLICT DO NOTHING",
	[Q_CERT_POLICY_PUT] = "INSERT INTO cert_policies (serial, policy)"
	    " VALUES (?, ?) ON CONFLICT DO NOTHING",

	[Q_CERT_OF_DEVICE] = "SELECT " CERT_COLS " FROM certificates"
	    " WHERE device_id = ?1"
	    " ORDER BY issued_at DESC, rowid DESC LIMIT ?2",
	[Q_CERT_ALL] = "SELECT " CERT_COLS " FROM certificates"
	    " ORDER BY issued_at DESC, rowid DESC LIMIT ?2",
	[Q_CERT_POLICIES] = "SELECT policy FROM cert_policies"
	    " WHERE serial = ? ORDER BY rowid",
	[Q_CERT_SET_STATUS] = "UPDATE certificates SET status = ?"
	    " WHERE serial = ? RETURNING device_id",

	[Q_THING_BY_NAME] = "SELECT " THING_COLS " FROM things"
	    " WHERE name = ?1",
	[Q_THING_PAGE] = "SELECT " THING_COLS " FROM things t"
	    " WHERE (?1 = '' OR EXISTS (SELECT 1 FROM thing_groups m"
	    "  WHERE m.thing = t.name AND m.group_name = ?1))"
	    " AND name > ?2 ORDER BY name LIMIT ?3",
	[Q_THING_ATTRS] = "SELECT name, value FROM thing_attributes"
	    " WHERE thing = ? ORDER BY rowid",
	[Q_THING_GROUPS] = "SELECT group_name FROM thing_groups"
	    " WHERE thing = ? ORDER BY group_name",
	[Q_GROUP_LIST] = "SELECT g.name, (SELECT count(*) FROM thing_groups m"
	    " WHERE m.group_name = g.name) FROM groups g ORDER BY g.name",
};

struct dbconn {
	sqlite3 *db;
	pthread_mutex_t lock;
	sqlite3_stmt *st[NQ];    /* kept statements (NULL until used) */
};

struct registry {
	struct dbconn w;         /* the one writing connection */
	struct dbconn rd;        /* read-only (file databases) */
	struct dbconn *reader;   /* &rd, or &w for ":memory:" */
};

/* ---- SQLite helpers ---- */

/*
 * Map a failed step's result code onto ours. Constraint failures are the
 * caller's input (a duplicate, a dangling name, a bad value) and logged at
 * debug level only; anything else is a database problem and logged.
 */
static int
db_fail(sqlite3 *db, int code, const char *what)
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
 * Kept statement q of connection c, whose mutex the caller holds:
 * prepared on first use (SQLITE_PREPARE_PERSISTENT: it lives as long as
 * the connection), then reused. Hand it back with done() on every path,
 * before the transaction ends: a statement left stepped would hold the
 * reader's snapshot, and its bindings would carry into the next call.
 */
static int
stmt(struct dbconn *c, int q, sqlite3_stmt **st)
{
	if (c->st[q] == NULL && sqlite3_prepare_v3(c->db, SQL[q], -1,
	    SQLITE_PREPARE_PERSISTENT, &c->st[q], NULL) != SQLITE_OK) {
		log_warnx("registry: cannot prepare \"%s\": %s", SQL[q],
		    sqlite3_errmsg(c->db));
		c->st[q] = NULL;
		*st = NULL;
		return SF_EDB;
	}
	*st = c->st[q];
	return 0;
}

/* Reset a kept statement and clear its bindings. NULL-safe. */
static void
done(sqlite3_stmt *st)
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

/* Step a statement that returns no row, and reset it for another use. */
static int
run(sqlite3 *db, sqlite3_stmt *st, const char *what)
{
	int code, rc = 0;

	if ((code = sqlite3_step(st)) != SQLITE_DONE)
		rc = db_fail(db, code, what);
	sqlite3_reset(st);
	return rc;
}

/* BEGIN, BEGIN IMMEDIATE, COMMIT, ROLLBACK (kept statements too). */
static int
tx(struct dbconn *c, int q)
{
	sqlite3_stmt *st;
	int code, rc;

	if ((rc = stmt(c, q, &st)) != 0)
		return rc;
	if ((code = sqlite3_step(st)) == SQLITE_DONE)
		rc = 0;
	else {
		log_warnx("registry: %s: %s", SQL[q], sqlite3_errmsg(c->db));
		rc = ((code & 0xff) == SQLITE_BUSY) ? SF_EUNAVAIL : SF_EDB;
	}
	sqlite3_reset(st);
	return rc;
}

/* End the transaction begun by the caller: COMMIT when rc is 0. */
static int
tx_end(struct dbconn *c, int rc)
{
	if (rc == 0 && (rc = tx(c, Q_COMMIT)) == 0)
		return 0;
	tx(c, Q_ROLLBACK);
	return rc;
}

static struct dbconn *
wlock(registry *r)
{
	pthread_mutex_lock(&r->w.lock);
	return &r->w;
}

static void
wunlock(registry *r)
{
	pthread_mutex_unlock(&r->w.lock);
}

static struct dbconn *
rlock(registry *r)
{
	pthread_mutex_lock(&r->reader->lock);
	return r->reader;
}

static void
runlock(registry *r)
{
	pthread_mutex_unlock(&r->reader->lock);
}

static void
bind_text(sqlite3_stmt *st, int i, const char *s)
{
	sqlite3_bind_text(st, i, s ? s : "", -1, SQLITE_TRANSIENT);
}

static char *
col_strdup(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return strdup(s ? (const char *)s : "");
}

static uint8_t *
col_blobdup(sqlite3_stmt *st, int i, size_t *len)
{
	const void *b = sqlite3_column_blob(st, i);
	int n = sqlite3_column_bytes(st, i);
	uint8_t *p;

	*len = 0;
	if (b == NULL || n <= 0 || (p = malloc((size_t)n)) == NULL)
		return NULL;
	memcpy(p, b, (size_t)n);
	*len = (size_t)n;
	return p;
}

static void
col_fp(sqlite3_stmt *st, int i, uint8_t fp[32])
{
	const void *b = sqlite3_column_blob(st, i);

	if (b != NULL && sqlite3_column_bytes(st, i) == 32)
		memcpy(fp, b, 32);
	else
		memset(fp, 0, 32);
}

static int
empty(const char *s)
{
	return s == NULL || *s == '\0';
}

/* limit 0 = no limit (SQLite's LIMIT -1). */
static sqlite3_int64
sql_limit(size_t limit)
{
	return (limit == 0 || limit > INT64_MAX) ? -1 : (sqlite3_int64)limit;
}

/* Room for element n of an array of *cap elements of size sz; NULL (and v
 * untouched) when out of memory. */
static void *
grow(void *v, size_t *cap, size_t n, size_t sz)
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

/*
 * Step st to the end, collecting column 0 into *c0 and, if c1 is not NULL,
 * column 1 into *c1. On error nothing is returned.
 */
static int
collect(sqlite3 *db, sqlite3_stmt *st, char ***c0, char ***c1, size_t *n)
{
	char **a = NULL, **b = NULL, **na;
	size_t cnt = 0, capa = 0, capb = 0;
	int code, rc = 0;

	*c0 = NULL;
	if (c1)
		*c1 = NULL;
	*n = 0;
	while ((code = sqlite3_step(st)) == SQLITE_ROW) {
		if ((na = grow(a, &capa, cnt, sizeof *a)) == NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
		a = na;
		if (c1) {
			if ((na = grow(b, &capb, cnt, sizeof *b)) == NULL) {
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
		rc = db_fail(db, code, "read list");
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
		snprintf(why, whylen, "cannot open registry %s: %s", path,
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

	if ((rc = tx(c, Q_BEGIN_IMMEDIATE)) != 0)
		goto out;
	if ((rc = prep(db, "PRAGMA user_version", &st)) != 0)
		goto out;
	if (sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (version < 0 || version > SCHEMA_VERSION) {
		snprintf(why, whylen, "registry schema version %d is not %d",
		    version, SCHEMA_VERSION);
		rc = SF_EDB;
		goto out;
	}
	if (version == 0) {
		if ((sql = sf_aprintf("%sPRAGMA user_version = %d;", SCHEMA,
		    SCHEMA_VERSION)) == NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
		if ((rc = exec(db, sql)) != 0) {
			snprintf(why, whylen, "cannot create the registry "
			    "schema: %s", sqlite3_errmsg(db));
			goto out;
		}
	}
	rc = 0;
out:
	free(sql);
	return tx_end(c, rc);
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
		snprintf(why, whylen, "no registry path");
		return SF_EINVAL;
	}
	memory = strcmp(path, ":memory:") == 0;
	if ((r = calloc(1, sizeof *r)) == NULL)
		return SF_ENOMEM;
	pthread_mutex_init(&r->w.lock, NULL);
	pthread_mutex_init(&r->rd.lock, NULL);
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
		snprintf(why, whylen, "registry %s: cannot use WAL mode", path);
		rc = SF_EDB;
		goto out;
	}
	if ((rc = exec(r->w.db, "PRAGMA synchronous=FULL")) != 0 ||
	    (rc = exec(r->w.db, "PRAGMA foreign_keys=ON")) != 0) {
		snprintf(why, whylen, "cannot set up registry %s: %s", path,
		    sqlite3_errmsg(r->w.db));
		goto out;
	}
	if ((rc = schema_init(&r->w, why, whylen)) != 0) {
		if (why && whylen && *why == '\0')
			snprintf(why, whylen, "cannot initialise registry %s",
			    path);
		goto out;
	}
	if (!memory && (rc = conn_open(path, SQLITE_OPEN_READONLY, &r->rd.db,
	    why, whylen)) != 0)
		goto out;
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
	free(r);
}

void
registry_strings_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- devices ---- */

void
registry_device_fini(registry_device *d)
{
	if (d == NULL)
		return;
	free(d->device_id);
	free(d->spki);
	free(d->product_line);
	free(d->region);
	free(d->current_serial);
	memset(d, 0, sizeof *d);
}

void
registry_devices_free(registry_device *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		registry_device_fini(&v[i]);
	free(v);
}

static int
device_from_row(sqlite3_stmt *st, registry_device *d)
{
	memset(d, 0, sizeof *d);
	d->device_id = col_strdup(st, 0);
	d->spki = col_blobdup(st, 1, &d->spki_len);
	col_fp(st, 2, d->key_sha256);
	d->product_line = col_strdup(st, 3);
	d->region = col_strdup(st, 4);
	d->state = sqlite3_column_int(st, 5);
	d->created_at = sqlite3_column_int64(st, 6);
	d->updated_at = sqlite3_column_int64(st, 7);
	d->current_serial = col_strdup(st, 8);
	if (!d->device_id || !d->spki || !d->product_line || !d->region ||
	    !d->current_serial) {
		registry_device_fini(d);
		return SF_ENOMEM;
	}
	return 0;
}

int
registry_device_get(registry *r, const char *device_id, registry_device *out)
{
	sqlite3_stmt *st = NULL;
	struct dbconn *c;
	sqlite3 *db;
	int rc, code;

	memset(out, 0, sizeof *out);
	if (empty(device_id))
		return SF_EINVAL;
	c = rlock(r);
	db = c->db;
	if ((rc = stmt(c, Q_DEVICE_GET, &st)) != 0)
		goto out;
	bind_text(st, 1, device_id);
	if ((code = sqlite3_step(st)) == SQLITE_ROW)
		rc = device_from_row(st, out);
	else if (code == SQLITE_DONE)
		rc = SF_ENOTFOUND;
	else
		rc = db_fail(db, code, "device lookup");
out:
	done(st);
	runlock(r);
	return rc;
}

static int
import_valid(const registry_import_rec *d)
{
	return !empty(d->device_id) && d->spki != NULL && d->spki_len > 0 &&
	    d->spki_len <= INT32_MAX && d->key_sha256 != NULL &&
	    !empty(d->product_line);
}

/* REGISTRY_* for one record, or a negative SF_E*. */
static int
import_outcome(sqlite3 *db, sqlite3_stmt *by_id, sqlite3_stmt *by_key,
    const registry_import_rec *d)
{
	const char *pl, *rg;
	int code, out = REGISTRY_IMPORTED;

	bind_text(by_id, 1, d->device_id);
	if ((code = sqlite3_step(by_id)) == SQLITE_ROW) {
		pl = (const char *)sqlite3_column_text(by_id, 1);
		rg = (const char *)sqlite3_column_text(by_id, 2);
		if (sqlite3_column_bytes(by_id, 0) != 32 ||
		    memcmp(sqlite3_column_blob(by_id, 0), d->key_sha256,
		    32) != 0)
			out = REGISTRY_ID_OTHER_KEY;
		else if (strcmp(pl ? pl : "", d->product_line) != 0 ||
		    strcmp(rg ? rg : "", d->region ? d->region : "") != 0)
			out = REGISTRY_OTHER_PLACE;
		else
			out = REGISTRY_UNCHANGED;
	} else if (code != SQLITE_DONE)
		out = db_fail(db, code, "import: device lookup");
	sqlite3_reset(by_id);
	if (out != REGISTRY_IMPORTED)
		return out;
	sqlite3_bind_blob(by_key, 1, d->key_sha256, 32, SQLITE_STATIC);
	if ((code = sqlite3_step(by_key)) == SQLITE_ROW)
		out = REGISTRY_KEY_OTHER_ID;
	else if (code != SQLITE_DONE)
		out = db_fail(db, code, "import: key lookup");
	sqlite3_reset(by_key);
	return out;
}

int
registry_import(registry *r, const registry_import_rec *recs, size_t n,
    int *outcome)
{
	sqlite3_stmt *by_id = NULL, *by_key = NULL, *ins = NULL;
	int64_t now = sf_now();
	struct dbconn *c;
	sqlite3 *db;
	int rc, intx = 0;

	for (size_t i = 0; i < n; i++)
		outcome[i] = 0;
	for (size_t i = 0; i < n; i++)
		if (!import_valid(&recs[i]))
			return SF_EINVAL;
	if (n == 0)
		return 0;
	c = wlock(r);
	db = c->db;
	if ((rc = stmt(c, Q_IMPORT_BY_ID, &by_id)) != 0 ||
	    (rc = stmt(c, Q_IMPORT_BY_KEY, &by_key)) != 0 ||
	    (rc = stmt(c, Q_IMPORT_INSERT, &ins)) != 0)
		goto out;
	if ((rc = tx(c, Q_BEGIN_IMMEDIATE)) != 0)
		goto out;
	intx = 1;
	for (size_t i = 0; i < n; i++) {
		const registry_import_rec *d = &recs[i];

		/* One transaction: later records see the earlier ones. */
		if ((rc = import_outcome(db, by_id, by_key, d)) < 0)
			goto out;
		outcome[i] = rc;
		if (outcome[i] != REGISTRY_IMPORTED)
			continue;
		bind_text(ins, 1, d->device_id);
		sqlite3_bind_blob(ins, 2, d->spki, (int)d->spki_len,
		    SQLITE_STATIC);
		sqlite3_bind_blob(ins, 3, d->key_sha256, 32, SQLITE_STATIC);
		bind_text(ins, 4, d->product_line);
		bind_text(ins, 5, d->region);
		sqlite3_bind_int(ins, 6, DEVICE_REGISTERED);
		sqlite3_bind_int64(ins, 7, now);
		sqlite3_bind_int64(ins, 8, now);
		if ((rc = run(db, ins, "import: insert device")) != 0)
			goto out;
	}
	rc = 0;
out:
	done(by_id);
	done(by_key);
	done(ins);
	if (intx)
		rc = tx_end(c, rc);
	wunlock(r);
	if (rc != 0) {
		log_warnx("registry: import of %zu records failed: %s", n,
		    sf_strerror(rc));
		for (size_t i = 0; i < n; i++)
			outcome[i] = 0;
	}
	return rc;
}

int
registry_device_list(registry *r, const char *product_line,
    const char *region, int state, const char *after, size_t limit,
    registry_device **out, size_t *n)
{
	sqlite3_stmt *st = NULL;
	registry_device *v = NULL, *nv;
	size_t cnt = 0, cap = 0;
	struct dbconn *c;
	sqlite3 *db;
	int rc, code;

	*out = NULL;
	*n = 0;
	c = rlock(r);
	db = c->db;
	if ((rc = stmt(c, Q_DEVICE_LIST, &st)) != 0)
		goto out;
	bind_text(st, 1, product_line);
	bind_text(st, 2, region);
	sqlite3_bind_int(st, 3, state);
	bind_text(st, 4, after);
	sqlite3_bind_int64(st, 5, sql_limit(limit));
	while ((code = sqlite3_step(st)) == SQLITE_ROW) {
		if ((nv = grow(v, &cap, cnt, sizeof *v)) == NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
		v = nv;
		if ((rc = device_from_row(st, &v[cnt])) != 0)
			goto out;
		cnt++;
	}
	if (code != SQLITE_DONE) {
		rc = db_fail(db, code, "list devices");
		goto out;
	}
	*out = v;
	*n = cnt;
	v = NULL;  /* transferred */
	cnt = 0;
out:
	registry_devices_free(v, cnt);
	done(st);
	runlock(r);
	return rc;
}

int
registry_device_set_state(registry *r, const char *device_id, int state)
{
	sqlite3_stmt *st = NULL;
	struct dbconn *c;
	sqlite3 *db;
	int rc;

	if (empty(device_id) || state < DEVICE_REGISTERED ||
	    state > DEVICE_DISABLED)
		return SF_EINVAL;
	c = wlock(r);
	db = c->db;
	if ((rc = stmt(c, Q_DEVICE_SET_STATE, &st)) != 0)
		goto out;
	sqlite3_bind_int(st, 1, state);
	sqlite3_bind_int64(st, 2, sf_now());
	bind_text(st, 3, device_id);
	if ((rc = run(db, st, "set device state")) != 0)
		goto out;
	rc = sqlite3_changes(db) == 1 ? 0 : SF_ENOTFOUND;
out:
	done(st);
	wunlock(r);
	return rc;
}

int
registry_device_count(registry *r, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	struct dbconn *c;
	sqlite3 *db;
	int rc, code;

	*out = 0;
	c = rlock(r);
	db = c->db;
	if ((rc = stmt(c, Q_DEVICE_COUNT, &st)) != 0)
		goto out;
	if ((code = sqlite3_step(st)) == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	else
		rc = db_fail(db, code, "count devices");
out:
	done(st);
	runlock(r);
	return rc;
}

/* ---- template expansion ---- */

struct tvars {
	const char *device_id, *serial, *region, *product_line;
};

static int
buf_add(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	char *nb;
	size_t ncap;

	if (*len + n + 1 > *cap) {
		for (ncap = *cap ? *cap : 64; ncap < *len + n + 1; ncap *= 2)
			;
		if ((nb = realloc(*buf, ncap)) == NULL)
			return SF_ENOMEM;
		*buf = nb;
		*cap = ncap;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

/*
 * Expand ${device_id}, ${serial}, ${region} and ${product_line} in an
 * attribute value of a template. Any other ${...}, or a "${" without its
 * "}", is SF_EINVAL: a typo in a template is refused when the template is
 * stored rather than copied into every thing. A '$' not followed by '{'
 * is itself. With out NULL, only check.
 */
static int
expand(const char *in, const struct tvars *v, char **out)
{
	static const char *names[] = { "device_id", "serial", "region",
	    "product_line" };
	const char *vals[4] = { v->device_id, v->serial, v->region,
	    v->product_line };
	char *buf = NULL;
	size_t len = 0, cap = 0, nlen, i;
	const char *p = in, *end;
	int rc;

	if (out)
		*out = NULL;
	if ((rc = buf_add(&buf, &len, &cap, "", 0)) != 0)
		goto out;
	while (*p != '\0') {
		if (p[0] != '$' || p[1] != '{') {
			nlen = strcspn(p + 1, "$") + 1;
			if ((rc = buf_add(&buf, &len, &cap, p, nlen)) != 0)
				goto out;
			p += nlen;
			continue;
		}
		if ((end = strchr(p + 2, '}')) == NULL) {
			rc = SF_EINVAL;
			goto out;
		}
		nlen = (size_t)(end - (p + 2));
		for (i = 0; i < 4; i++)
			if (strlen(names[i]) == nlen &&
			    strncmp(names[i], p + 2, nlen) == 0)
				break;
		if (i == 4) {
			rc = SF_EINVAL;
			goto out;
		}
		if ((rc = buf_add(&buf, &len, &cap, vals[i] ? vals[i] : "",
		    strlen(vals[i] ? vals[i] : ""))) != 0)
			goto out;
		p = end + 1;
	}
	if (out) {
		*out = buf;
		buf = NULL;  /* transferred */
	}
out:
	free(buf);
	return rc;
}

/* ---- policies ---- */

int
registry_policy_put(registry *r, const char *name, const char *document)
{
	sqlite3_stmt *st = NULL;
	int64_t now = sf_now();
	struct dbconn *c;
	int rc;

	if (empty(name) || document == NULL)
		return SF_EINVAL;
	c = wlock(r);
	if ((rc = stmt(c, Q_POLICY_PUT, &st)) != 0)
		goto out;
	bind_text(st, 1, name);
	bind_text(st, 2, document);
	sqlite3_bind_int64(st, 3, now);
	rc = run(c->db, st, "put policy");
out:
	done(st);
	wunlock(r);
	return rc;
}

int
registry_policy_get(registry *r, const char *name, char **document)
{
	sqlite3_stmt *st = NULL;
	struct dbconn *c;
	sqlite3 *db;
	int rc, code;

	*document = NULL;
	if (empty(name))
		return SF_EINVAL;
	c = rlock(r);
	db = c->db;
	if ((rc = stmt(c, Q_POLICY_GET, &st)) != 0)
		goto out;
	bind_text(st, 1, name);
	if ((code = sqlite3_step(st)) == SQLITE_ROW)
		rc = (*document = col_strdup(st, 0)) ? 0 : SF_ENOMEM;
	else if (code == SQLITE_DONE)
		rc = SF_ENOTFOUND;
	else
		rc = db_fail(db, code, "get policy");
out:
	done(st);
	runlock(r);
	return rc;
}

int
registry_policy_list(registry *r, char ***names, char ***documents,
    size_t *n)
{
	sqlite3_stmt *st = NULL;
	struct dbconn *c;
	int rc;

	*names = *documents = NULL;
	*n = 0;
	c = rlock(r);
	if ((rc = stmt(c, Q_POLICY_LIST, &st)) != 0)
		goto out;
	rc = collect(c->db, st, names, documents, n);
out:
	done(st);
	runlock(r);
	return rc;
}

/* ---- templates ---- */

void
registry_template_fini(registry_template *t)
{
	if (t == NULL)
		return;
	free(t->product_line);
	free(t->thing_group);
	registry_strings_free(t->policies, t->npolicies);
	registry_strings_free(t->attr_names, t->nattrs);
	registry_strings_free(t->attr_values, t->nattrs);
	memset(t, 0, sizeof *t);
}

void
registry_templates_free(registry_template *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		registry_template_fini(&v[i]);
	free(v);
}

/* Names present, attribute values expandable. */
static int
template_valid(const registry_template *t)
{
	static const struct tvars none = { "", "", "", "" };

	if (empty(t->product_line))
		return SF_EINVAL;
	if (t->npolicies && t->policies == NULL)
		return SF_EINVAL;
	for (size_t i = 0; i < t->npolicies; i++)
		if (empty(t->policies[i]))
			return SF_EINVAL;
	if (t->nattrs && (t->attr_names == NULL || t->attr_values == NULL))
		return SF_EINVAL;
	for (size_t i = 0; i < t->nattrs; i++)
		if (empty(t->attr_names[i]) || t->attr_values[i] == NULL ||
		    expand(t->attr_values[i], &none, NULL) != 0)
			return SF_EINVAL;
	return 0;
}

/* SF_ENOTFOUND (and a log line) when the policy is not stored. */
static int
policy_exists(sqlite3 *db, sqlite3_stmt *st, const char *name,
    const char *user)
{
	int code, rc = 0;

	bind_text(st, 1, name);
	if ((code = sqlite3_step(st)) == SQLITE_DONE) {
		log_warnx("registry: %s names policy \"%s\", which does not "
		    "exist", user, name);
		rc = SF_ENOTFOUND;
	} else if (code != SQLITE_ROW)
		rc = db_fail(db, code, "policy lookup");
	sqlite3_reset(st);
	return rc;
}

/* Create a group if it is new. */
static int
group_ensure(struct dbconn *c, const char *name, int64_t now)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = stmt(c, Q_GROUP_ENSURE, &st)) != 0)
		return rc;
	bind_text(st, 1, name);
	sqlite3_bind_int64(st, 2, now);
	rc = run(c->db, st, "create group");
	done(st);
	return rc;
}

int
registry_template_put(registry *r, const registry_template *t)
{
	sqlite3_stmt *pol = NULL, *up = NULL, *delp = NULL, *dela = NULL,
	    *tp = NULL, *ta = NULL;
	int64_t now = sf_now();
	char user[128];
	struct dbconn *c;
	sqlite3 *db;
	int rc, intx = 0;

	if ((rc = template_valid(t)) != 0)
		return rc;
	snprintf(user, sizeof user, "template %s", t->product_line);
	c = wlock(r);
	db = c->db;
	if ((rc = stmt(c, Q_POLICY_EXISTS, &pol)) != 0 ||
	    (rc = stmt(c, Q_TEMPLATE_PUT, &up)) != 0 ||
	    (rc = stmt(c, Q_TEMPLATE_DEL_POLICIES, &delp)) != 0 ||
	    (rc = stmt(c, Q_TEMPLATE_DEL_ATTRS, &dela)) != 0 ||
	    (rc = stmt(c, Q_TEMPLATE_ADD_POLICY, &tp)) != 0 ||
	    (rc = stmt(c, Q_TEMPLATE_ADD_ATTR, &ta)) != 0)
		goto out;
	if ((rc = tx(c, Q_BEGIN_IMMEDIATE)) != 0)
		goto out;
	intx = 1;
	for (size_t i = 0; i < t->npolicies; i++)
		if ((rc = policy_exists(db, pol, t->policies[i], user)) != 0)
			goto out;
	bind_text(up, 1, t->product_line);
	bind_text(up, 2, t->thing_group);
	sqlite3_bind_int64(up, 3, now);
	if ((rc = run(db, up, "put template")) != 0)
		goto out;
	if (!empty(t->thing_group) &&
	    (rc = group_ensure(c, t->thing_group, now)) != 0)
		goto out;
	/* Replace the children: policies, then attributes. */
	bind_text(delp, 1, t->product_line);
	if ((rc = run(db, delp, "clear template policies")) != 0)
		goto out;
	bind_text(dela, 1, t->product_line);
	if ((rc = run(db, dela, "clear template attributes")) != 0)
		goto out;
	for (size_t i = 0; i < t->npolicies; i++) {
		bind_text(tp, 1, t->product_line);
		sqlite3_bind_int64(tp, 2, (sqlite3_int64)i);
		bind_text(tp, 3, t->policies[i]);
		if ((rc = run(db, tp, "put template policy")) != 0)
			goto out;
	}
	for (size_t i = 0; i < t->nattrs; i++) {
		bind_text(ta, 1, t->product_line);
		sqlite3_bind_int64(ta, 2, (sqlite3_int64)i);
		bind_text(ta, 3, t->attr_names[i]);
		bind_text(ta, 4, t->attr_values[i]);
		if ((rc = run(db, ta, "put template attribute")) != 0)
			goto out;
	}
	rc = 0;
out:
	/* A name twice in one template is the caller's mistake. */
	if (rc == SF_EEXIST)
		rc = SF_EINVAL;
	done(pol);
	done(up);
	done(delp);
	done(dela);
	done(tp);
	done(ta);
	if (intx)
		rc = tx_end(c, rc);
	wunlock(r);
	return rc;
}

/* Fill a template's policies and attributes (row already read). */
static int
template_fill(sqlite3 *db, sqlite3_stmt *pols, sqlite3_stmt *attrs,
    registry_template *t)
{
	int rc;

	bind_text(pols, 1, t->product_line);
	if ((rc = collect(db, pols, &t->policies, NULL, &t->npolicies)) != 0)
		return rc;
	bind_text(attrs, 1, t->product_line);
	return collect(db, attrs, &t->attr_names, &t->attr_values,
	    &t->nattrs);
}

/*
 * Read templates (one, or all when product_line is NULL) in one read
 * transaction.
 */
static int
template_read(registry *r, const char *product_line, registry_template **out,
    size_t *n)
{
	sqlite3_stmt *st = NULL, *pols = NULL, *attrs = NULL;
	registry_template *v = NULL, *nv;
	size_t cnt = 0, cap = 0;
	struct dbconn *c;
	sqlite3 *db;
	int rc, code, intx = 0;

	*out = NULL;
	*n = 0;
	c = rlock(r);
	db = c->db;
	if ((rc = stmt(c, Q_TEMPLATE_READ, &st)) != 0 ||
	    (rc = stmt(c, Q_TEMPLATE_POLICIES, &pols)) != 0 ||
	    (rc = stmt(c, Q_TEMPLATE_ATTRS, &attrs)) != 0)
		goto out;
	if ((rc = tx(c, Q_BEGIN)) != 0)
		goto out;
	intx = 1;
	if (product_line)
		bind_text(st, 1, product_line);
	while ((code = sqlite3_step(st)) == SQLITE_ROW) {
		if ((nv = grow(v, &cap, cnt, sizeof *v)) == NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
		v = nv;
		memset(&v[cnt], 0, sizeof v[cnt]);
		v[cnt].product_line = col_strdup(st, 0);
		v[cnt].thing_group = col_strdup(st, 1);
		cnt++;
		if (!v[cnt - 1].product_line || !v[cnt - 1].thing_group) {
			rc = SF_ENOMEM;
			goto out;
		}
		if ((rc = template_fill(db, pols, attrs, &v[cnt - 1])) != 0)
			goto out;
	}
	if (code != SQLITE_DONE) {
		rc = db_fail(db, code, "read templates");
		goto out;
	}
	*out = v;
	*n = cnt;
	v = NULL;  /* transferred */
	cnt = 0;
out:
	registry_templates_free(v, cnt);
	done(st);
	done(pols);
	done(attrs);
	if (intx)
		rc = tx_end(c, rc);
	runlock(r);
	return rc;
}

int
registry_template_get(registry *r, const char *product_line,
    registry_template *out)
{
	registry_template *v = NULL;
	size_t n = 0;
	int rc;

	memset(out, 0, sizeof *out);
	if (empty(product_line))
		return SF_EINVAL;
	if ((rc = template_read(r, product_line, &v, &n)) != 0)
		return rc;
	if (n == 0) {
		free(v);
		return SF_ENOTFOUND;
	}
	*out = v[0];  /* transferred */
	free(v);
	return 0;
}

int
registry_template_list(registry *r, registry_template **out, size_t *n)
{
	return template_read(r, NULL, out, n);
}

/* ---- enrollments ---- */

void
registry_enrollment_fini(registry_enrollment *e)
{
	if (e == NULL)
		return;
	free(e->enrollment_id);
	free(e->device_id);
	free(e->idempotency_key);
	free(e->serial);
	free(e->ca_name);
	free(e->certificate_pem);
	free(e->chain_pem);
	free(e->region);
	free(e->replaces_serial);
	memset(e, 0, sizeof *e);
}

static int
enrollment_from_row(sqlite3_stmt *st, registry_enrollment *e)
{
	memset(e, 0, sizeof *e);
	e->enrollment_id = col_strdup(st, 0);
	e->device_id = col_strdup(st, 1);
	e->idempotency_key = col_strdup(st, 2);
	col_fp(st, 3, e->csr_sha256);
	e->serial = col_strdup(st, 4);
	e->ca_name = col_strdup(st, 5);
	e->certificate_pem = col_strdup(st, 6);
	e->chain_pem = col_strdup(st, 7);
	e->region = col_strdup(st, 8);
	e->not_before = sqlite3_column_int64(st, 9);
	e->not_after = sqlite3_column_int64(st, 10);
	e->created_at = sqlite3_column_int64(st, 11);
	e->state = sqlite3_column_int(st, 12);
	e->replaces_serial = col_strdup(st, 13);
	if (!e->enrollment_id || !e->device_id || !e->idempotency_key ||
	    !e->serial || !e->ca_name || !e->certificate_pem ||
	    !e->chain_pem || !e->region || !e->replaces_serial) {
		registry_enrollment_fini(e);
		return SF_ENOMEM;
	}
	return 0;
}

/* Step a bound enrollment query: its first row, or SF_ENOTFOUND. */
static int
enrollment_step(sqlite3 *db, sqlite3_stmt *st, registry_enrollment *out)
{
	int code;

	if ((code = sqlite3_step(st)) == SQLITE_ROW)
		return enrollment_from_row(st, out);
	if (code == SQLITE_DONE)
		return SF_ENOTFOUND;
	return db_fail(db, code, "enrollment lookup");
}

int
registry_enrollment_get(registry *r, const char *enrollment_id,
    registry_enrollment *out)
{
	sqlite3_stmt *st = NULL;
	struct dbconn *c;
	int rc;

	memset(out, 0, sizeof *out);
	if (empty(enrollment_id))
		return SF_EINVAL;
	c = rlock(r);
	if ((rc = stmt(c, Q_ENROLLMENT_GET, &st)) != 0)
		goto out;
	bind_text(st, 1, enrollment_id);
	rc = enrollment_step(c->db, st, out);
out:
	done(st);
	runlock(r);
	return rc;
}

int
registry_enrollment_by_key(registry *r, const char *device_id,
    const char *idempotency_key, registry_enrollment *out)
{
	sqlite3_stmt *st = NULL;
	struct dbconn *c;
	int rc;

	memset(out, 0, sizeof *out);
	if (empty(device_id))
		return SF_EINVAL;
	/* Nothing is recorded under an empty key. */
	if (empty(idempotency_key))
		return SF_ENOTFOUND;
	c = rlock(r);
	if ((rc = stmt(c, Q_ENROLLMENT_BY_KEY, &st)) != 0)
		goto out;
	bind_text(st, 1, device_id);
	bind_text(st, 2, idempotency_key);
	rc = enrollment_step(c->db, st, out);
out:
	done(st);
	runlock(r);
	return rc;
}

int
registry_enrollment_by_csr(registry *r, const char *device_id,
    const uint8_t csr_sha256[32], int64_t since, registry_enrollment *out)
{
	sqlite3_stmt *st = NULL;
	struct dbconn *c;
	int rc;

	memset(out, 0, sizeof *out);
	if (empty(device_id) || csr_sha256 == NULL)
		return SF_EINVAL;
	c = rlock(r);
	if ((rc = stmt(c, Q_ENROLLMENT_BY_CSR, &st)) != 0)
		goto out;
	bind_text(st, 1, device_id);
	sqlite3_bind_blob(st, 2, csr_sha256, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, since);
	rc = enrollment_step(c->db, st, out);
out:
	done(st);
	runlock(r);
	return rc;
}

int
registry_enrollment_set_state(registry *r, const char *enrollment_id,
    int state)
{
	sqlite3_stmt *st = NULL;
	struct dbconn *c;
	sqlite3 *db;
	int rc;

	if (empty(enrollment_id) || state < ENROLLMENT_ISSUED ||
	    state > ENROLLMENT_FAILED)
		return SF_EINVAL;
	c = wlock(r);
	db = c->db;
	if ((rc = stmt(c, Q_ENROLLMENT_SET_STATE, &st)) != 0)
		goto out;
	sqlite3_bind_int(st, 1, state);
	bind_text(st, 2, enrollment_id);
	if ((rc = run(db, st, "set enrollment state")) != 0)
		goto out;
	rc = sqlite3_changes(db) == 1 ? 0 : SF_ENOTFOUND;
out:
	done(st);
	wunlock(r);
	return rc;
}

/* What enroll_commit needs to know of the device. */
struct devrow {
	char *product_line, *region, *current_serial;
	int state;
};

static void
devrow_fini(struct devrow *d)
{
	free(d->product_line);
	free(d->region);
	free(d->current_serial);
	memset(d, 0, sizeof *d);
}

static int
devrow_get(struct dbconn *c, const char *device_id, struct devrow *d)
{
	sqlite3_stmt *st = NULL;
	int rc, code;

	memset(d, 0, sizeof *d);
	if ((rc = stmt(c, Q_ENROLL_DEVICE, &st)) != 0)
		return rc;
	bind_text(st, 1, device_id);
	if ((code = sqlite3_step(st)) == SQLITE_ROW) {
		d->product_line = col_strdup(st, 0);
		d->region = col_strdup(st, 1);
		d->current_serial = col_strdup(st, 2);
		d->state = sqlite3_column_int(st, 3);
		if (!d->product_line || !d->region || !d->current_serial) {
			devrow_fini(d);
			rc = SF_ENOMEM;
		}
	} else if (code == SQLITE_DONE)
		rc = SF_ENOTFOUND;
	else
		rc = db_fail(c->db, code, "enroll: device lookup");
	done(st);
	return rc;
}

static int
enrollment_valid(const registry_enrollment *e)
{
	return e != NULL && !empty(e->enrollment_id) &&
	    !empty(e->device_id) && !empty(e->serial) && !empty(e->ca_name) &&
	    !empty(e->certificate_pem) &&
	    e->state >= ENROLLMENT_ISSUED &&
	    e->state <= ENROLLMENT_FAILED;
}

static int
enrollment_insert(struct dbconn *c, const registry_enrollment *e,
    int64_t created)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = stmt(c, Q_ENROLLMENT_INSERT, &st)) != 0)
		return rc;
	bind_text(st, 1, e->enrollment_id);
	bind_text(st, 2, e->device_id);
	bind_text(st, 3, e->idempotency_key);
	sqlite3_bind_blob(st, 4, e->csr_sha256, 32, SQLITE_STATIC);
	bind_text(st, 5, e->serial);
	bind_text(st, 6, e->ca_name);
	bind_text(st, 7, e->certificate_pem);
	bind_text(st, 8, e->chain_pem);
	bind_text(st, 9, e->region);
	sqlite3_bind_int64(st, 10, e->not_before);
	sqlite3_bind_int64(st, 11, e->not_after);
	sqlite3_bind_int64(st, 12, created);
	sqlite3_bind_int(st, 13, e->state);
	bind_text(st, 14, e->replaces_serial);
	rc = run(c->db, st, "enroll: insert enrollment");
	done(st);
	return rc;
}

static int
cert_insert(struct dbconn *c, const registry_enrollment *e, int64_t created)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = stmt(c, Q_CERT_INSERT, &st)) != 0)
		return rc;
	bind_text(st, 1, e->serial);
	bind_text(st, 2, e->device_id);
	bind_text(st, 3, e->ca_name);
	bind_text(st, 4, e->enrollment_id);
	sqlite3_bind_int(st, 5, e->state == ENROLLMENT_PENDING_ACK ?
	    CERT_PENDING_ACK : CERT_ACTIVE);
	sqlite3_bind_int64(st, 6, e->not_before);
	sqlite3_bind_int64(st, 7, e->not_after);
	sqlite3_bind_int64(st, 8, created);
	rc = run(c->db, st, "enroll: insert certificate");
	done(st);
	return rc;
}

/*
 * The device holds serial now: current_serial follows, and a registered
 * device becomes ACTIVE. A device disabled while its request was being
 * signed stays DISABLED: the certificate is recorded (it exists), but
 * only an administrator enables a device again.
 */
static int
device_hold(struct dbconn *c, const char *device_id, const char *serial,
    int64_t now)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = stmt(c, Q_DEVICE_HOLD, &st)) != 0)
		return rc;
	bind_text(st, 1, serial);
	sqlite3_bind_int(st, 2, DEVICE_DISABLED);
	sqlite3_bind_int(st, 3, DEVICE_ACTIVE);
	sqlite3_bind_int64(st, 4, now);
	bind_text(st, 5, device_id);
	if ((rc = run(c->db, st, "device serial")) == 0 &&
	    sqlite3_changes(c->db) != 1)
		rc = SF_ENOTFOUND;
	done(st);
	if (rc == 0 && (rc = stmt(c, Q_THING_HOLD, &st)) == 0) {
		bind_text(st, 1, serial);
		bind_text(st, 2, device_id);
		rc = run(c->db, st, "thing serial");
		done(st);
	}
	return rc;
}

/*
 * Apply the product line's template: the thing named after the device,
 * its attributes (template values expanded; other attributes kept), its
 * group, and the template's policies attached to the new certificate.
 */
static int
template_apply(struct dbconn *c, const registry_enrollment *e,
    const struct devrow *d, const registry_template *t,
    const char *thing_serial, int64_t now)
{
	sqlite3_stmt *th = NULL, *at = NULL, *gm = NULL, *pol = NULL,
	    *cp = NULL;
	sqlite3 *db = c->db;
	struct tvars v;
	char *value = NULL, user[128];
	int rc;

	v.device_id = e->device_id;
	v.serial = e->serial;
	v.region = empty(e->region) ? d->region : e->region;
	v.product_line = d->product_line;
	snprintf(user, sizeof user, "template %s", t->product_line);
	if ((rc = stmt(c, Q_THING_PUT, &th)) != 0 ||
	    (rc = stmt(c, Q_THING_ATTR_PUT, &at)) != 0 ||
	    (rc = stmt(c, Q_THING_GROUP_PUT, &gm)) != 0 ||
	    (rc = stmt(c, Q_POLICY_EXISTS, &pol)) != 0 ||
	    (rc = stmt(c, Q_CERT_POLICY_PUT, &cp)) != 0)
		goto out;
	bind_text(th, 1, e->device_id);
	bind_text(th, 2, thing_serial);
	sqlite3_bind_int64(th, 3, now);
	if ((rc = run(db, th, "enroll: thing")) != 0)
		goto out;
	for (size_t i = 0; i < t->nattrs; i++) {
		if ((rc = expand(t->attr_values[i], &v, &value)) != 0)
			goto out;
		bind_text(at, 1, e->device_id);
		bind_text(at, 2, t->attr_names[i]);
		bind_text(at, 3, value);
		free(value);
		value = NULL;
		if ((rc = run(db, at, "enroll: thing attribute")) != 0)
			goto out;
	}
	if (!empty(t->thing_group)) {
		if ((rc = group_ensure(c, t->thing_group, now)) != 0)
			goto out;
		bind_text(gm, 1, e->device_id);
		bind_text(gm, 2, t->thing_group);
		if ((rc = run(db, gm, "enroll: thing group")) != 0)
			goto out;
	}
	for (size_t i = 0; i < t->npolicies; i++) {
		if ((rc = policy_exists(db, pol, t->policies[i], user)) != 0)
			goto out;
		bind_text(cp, 1, e->serial);
		bind_text(cp, 2, t->policies[i]);
		if ((rc = run(db, cp, "enroll: certificate policy")) != 0)
			goto out;
	}
out:
	free(value);
	done(th);
	done(at);
	done(gm);
	done(pol);
	done(cp);
	return rc;
}

int
registry_enroll_commit(registry *r, const registry_enrollment *e,
    const registry_template *tmpl)
{
	struct devrow d = { 0 };
	int64_t now = sf_now(), created;
	struct dbconn *c;
	int rc, intx = 0, first;

	if (!enrollment_valid(e))
		return SF_EINVAL;
	if (tmpl != NULL && (rc = template_valid(tmpl)) != 0)
		return rc;
	created = e->created_at ? e->created_at : now;
	/* A rotation names the certificate it replaces; the device keeps
	 * its current one until the new one is acknowledged. */
	first = empty(e->replaces_serial);
	c = wlock(r);
	if ((rc = tx(c, Q_BEGIN_IMMEDIATE)) != 0)
		goto out;
	intx = 1;
	if ((rc = devrow_get(c, e->device_id, &d)) != 0)
		goto out;
	if (tmpl != NULL && strcmp(tmpl->product_line, d.product_line) != 0) {
		log_warnx("registry: template %s given for device %s of "
		    "product line %s", tmpl->product_line, e->device_id,
		    d.product_line);
		rc = SF_EINVAL;
		goto out;
	}
	if ((rc = enrollment_insert(c, e, created)) != 0 ||
	    (rc = cert_insert(c, e, created)) != 0)
		goto out;
	if (first && (rc = device_hold(c, e->device_id, e->serial,
	    now)) != 0)
		goto out;
	if (tmpl != NULL && (rc = template_apply(c, e, &d, tmpl,
	    first ? e->serial : d.current_serial, now)) != 0)
		goto out;
	if (first && d.state == DEVICE_DISABLED)
		log_warnx("registry: device %s was disabled while enrolling; "
		    "certificate %s recorded, device left disabled",
		    e->device_id, e->serial);
out:
	if (intx)
		rc = tx_end(c, rc);
	wunlock(r);
	if (rc == 0)
		log_debug("registry: enrollment %s of %s: certificate %s",
		    e->enrollment_id, e->device_id, e->serial);
	else if (rc != SF_EEXIST)
		log_warnx("registry: enrollment %s of %s (certificate %s) not "
		    "recorded: %s", e->enrollment_id, e->device_id, e->serial,
		    sf_strerror(rc));
	devrow_fini(&d);
	return rc;
}

/* ---- certificates ---- */

void
registry_cert_fini(registry_cert *c)
{
	if (c == NULL)
		return;
	free(c->serial);
	free(c->ca_name);
	free(c->enrollment_id);
	registry_strings_free(c->policies, c->npolicies);
	memset(c, 0, sizeof *c);
}

void
registry_certs_free(registry_cert *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		registry_cert_fini(&v[i]);
	free(v);
}

/* Newest first; device_id "" = every device's. */
int
registry_cert_list(registry *r, const char *device_id, size_t limit,
    registry_cert **out, size_t *n)
{
	sqlite3_stmt *st = NULL, *pols = NULL;
	registry_cert *v = NULL, *nv, *c;
	size_t cnt = 0, cap = 0;
	struct dbconn *conn;
	sqlite3 *db;
	int rc, code, intx = 0;

	*out = NULL;
	*n = 0;
	conn = rlock(r);
	db = conn->db;
	if ((rc = stmt(conn, empty(device_id) ? Q_CERT_ALL : Q_CERT_OF_DEVICE,
	    &st)) != 0 ||
	    (rc = stmt(conn, Q_CERT_POLICIES, &pols)) != 0)
		goto out;
	if ((rc = tx(conn, Q_BEGIN)) != 0)
		goto out;
	intx = 1;
	bind_text(st, 1, device_id);  /* unused by CERT_ALL */
	sqlite3_bind_int64(st, 2, sql_limit(limit));
	while ((code = sqlite3_step(st)) == SQLITE_ROW) {
		if ((nv = grow(v, &cap, cnt, sizeof *v)) == NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
		v = nv;
		c = &v[cnt++];
		memset(c, 0, sizeof *c);
		c->serial = col_strdup(st, 0);
		c->ca_name = col_strdup(st, 1);
		c->enrollment_id = col_strdup(st, 2);
		c->status = sqlite3_column_int(st, 3);
		c->not_before = sqlite3_column_int64(st, 4);
		c->not_after = sqlite3_column_int64(st, 5);
		c->issued_at = sqlite3_column_int64(st, 6);
		if (!c->serial || !c->ca_name || !c->enrollment_id) {
			rc = SF_ENOMEM;
			goto out;
		}
		bind_text(pols, 1, c->serial);
		if ((rc = collect(db, pols, &c->policies, NULL,
		    &c->npolicies)) != 0)
			goto out;
	}
	if (code != SQLITE_DONE) {
		rc = db_fail(db, code, "list certificates");
		goto out;
	}
	*out = v;
	*n = cnt;
	v = NULL;  /* transferred */
	cnt = 0;
out:
	registry_certs_free(v, cnt);
	done(st);
	done(pols);
	if (intx)
		rc = tx_end(conn, rc);
	runlock(r);
	return rc;
}

int
registry_cert_set_status(registry *r, const char *serial, int status)
{
	sqlite3_stmt *st = NULL;
	char *device_id = NULL;
	struct dbconn *c;
	sqlite3 *db;
	int rc, code, intx = 0;

	if (empty(serial) || status < CERT_ACTIVE ||
	    status > CERT_EXPIRED)
		return SF_EINVAL;
	c = wlock(r);
	db = c->db;
	if ((rc = tx(c, Q_BEGIN_IMMEDIATE)) != 0)
		goto out;
	intx = 1;
	if ((rc = stmt(c, Q_CERT_SET_STATUS, &st)) != 0)
		goto out;
	sqlite3_bind_int(st, 1, status);
	bind_text(st, 2, serial);
	if ((code = sqlite3_step(st)) == SQLITE_ROW) {
		if ((device_id = col_strdup(st, 0)) == NULL)
			rc = SF_ENOMEM;
	} else if (code == SQLITE_DONE)
		rc = SF_ENOTFOUND;
	else
		rc = db_fail(db, code, "set certificate status");
	done(st);
	st = NULL;
	if (rc != 0)
		goto out;
	/* An acknowledged certificate is the one the device holds now. */
	if (status == CERT_ACTIVE)
		rc = device_hold(c, device_id, serial, sf_now());
out:
	done(st);
	if (intx)
		rc = tx_end(c, rc);
	wunlock(r);
	free(device_id);
	return rc;
}

/* ---- things and groups ---- */

void
registry_thing_fini(registry_thing *t)
{
	if (t == NULL)
		return;
	free(t->name);
	free(t->device_id);
	registry_strings_free(t->attr_names, t->nattrs);
	registry_strings_free(t->attr_values, t->nattrs);
	registry_strings_free(t->groups, t->ngroups);
	free(t->certificate_serial);
	memset(t, 0, sizeof *t);
}

void
registry_things_free(registry_thing *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		registry_thing_fini(&v[i]);
	free(v);
}

/*
 * Read things (the one called name, or else a page of a group's or of
 * all) in one read transaction.
 */
static int
thing_read(registry *r, const char *name, const char *group,
    const char *after, size_t limit, registry_thing **out, size_t *n)
{
	sqlite3_stmt *st = NULL, *attrs = NULL, *groups = NULL;
	registry_thing *v = NULL, *nv, *t;
	size_t cnt = 0, cap = 0;
	struct dbconn *c;
	sqlite3 *db;
	int rc, code, intx = 0;

	*out = NULL;
	*n = 0;
	c = rlock(r);
	db = c->db;
	if ((rc = stmt(c, name ? Q_THING_BY_NAME : Q_THING_PAGE, &st)) != 0 ||
	    (rc = stmt(c, Q_THING_ATTRS, &attrs)) != 0 ||
	    (rc = stmt(c, Q_THING_GROUPS, &groups)) != 0)
		goto out;
	if ((rc = tx(c, Q_BEGIN)) != 0)
		goto out;
	intx = 1;
	if (name)
		bind_text(st, 1, name);
	else {
		bind_text(st, 1, group);
		bind_text(st, 2, after);
		sqlite3_bind_int64(st, 3, sql_limit(limit));
	}
	while ((code = sqlite3_step(st)) == SQLITE_ROW) {
		if ((nv = grow(v, &cap, cnt, sizeof *v)) == NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
		v = nv;
		t = &v[cnt++];
		memset(t, 0, sizeof *t);
		t->name = col_strdup(st, 0);
		t->device_id = col_strdup(st, 1);
		t->certificate_serial = col_strdup(st, 2);
		t->created_at = sqlite3_column_int64(st, 3);
		if (!t->name || !t->device_id || !t->certificate_serial) {
			rc = SF_ENOMEM;
			goto out;
		}
		bind_text(attrs, 1, t->name);
		if ((rc = collect(db, attrs, &t->attr_names, &t->attr_values,
		    &t->nattrs)) != 0)
			goto out;
		bind_text(groups, 1, t->name);
		if ((rc = collect(db, groups, &t->groups, NULL,
		    &t->ngroups)) != 0)
			goto out;
	}
	if (code != SQLITE_DONE) {
		rc = db_fail(db, code, "read things");
		goto out;
	}
	*out = v;
	*n = cnt;
	v = NULL;  /* transferred */
	cnt = 0;
out:
	registry_things_free(v, cnt);
	done(st);
	done(attrs);
	done(groups);
	if (intx)
		rc = tx_end(c, rc);
	runlock(r);
	return rc;
}

int
registry_thing_get(registry *r, const char *name, registry_thing *out)
{
	registry_thing *v = NULL;
	size_t n = 0;
	int rc;

	memset(out, 0, sizeof *out);
	if (empty(name))
		return SF_EINVAL;
	if ((rc = thing_read(r, name, NULL, NULL, 0, &v, &n)) != 0)
		return rc;
	if (n == 0) {
		free(v);
		return SF_ENOTFOUND;
	}
	*out = v[0];  /* transferred */
	free(v);
	return 0;
}

int
registry_thing_list(registry *r, const char *group, const char *after,
    size_t limit, registry_thing **out, size_t *n)
{
	return thing_read(r, NULL, group, after, limit, out, n);
}

int
registry_group_list(registry *r, char ***names, uint32_t **counts,
    size_t *n)
{
	sqlite3_stmt *st = NULL;
	char **nm = NULL, **nnm;
	uint32_t *ct = NULL, *nct;
	size_t cnt = 0, capn = 0, capc = 0;
	struct dbconn *c;
	sqlite3 *db;
	int rc, code;

	*names = NULL;
	*counts = NULL;
	*n = 0;
	c = rlock(r);
	db = c->db;
	if ((rc = stmt(c, Q_GROUP_LIST, &st)) != 0)
		goto out;
	while ((code = sqlite3_step(st)) == SQLITE_ROW) {
		if ((nnm = grow(nm, &capn, cnt, sizeof *nm)) == NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
		nm = nnm;
		if ((nct = grow(ct, &capc, cnt, sizeof *ct)) == NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
		ct = nct;
		ct[cnt] = (uint32_t)sqlite3_column_int64(st, 1);
		if ((nm[cnt++] = col_strdup(st, 0)) == NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
	}
	if (code != SQLITE_DONE) {
		rc = db_fail(db, code, "list groups");
		goto out;
	}
	*names = nm;
	*counts = ct;
	*n = cnt;
	nm = NULL;  /* transferred */
	ct = NULL;
	cnt = 0;
out:
	registry_strings_free(nm, cnt);
	free(ct);
	done(st);
	runlock(r);
	return rc;
}
