/*
 * registry_int.h - what the registry*.c files share inside libsfauthz: the
 * two connections, the statements each connection keeps prepared,
 * transactions, and the helpers that read columns and lists. Not part of
 * the public interface (registry.h): only registry*.c include this file.
 */
#ifndef SF_REGISTRY_INT_H
#define SF_REGISTRY_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "registry.h"
#include "walckpt.h"

/*
 * The statements that run after registry_open, by the file that runs
 * them. Each file keeps its SQL next to its code in its own table,
 * `static const char *const SQL[NQ]`, filling only its own rows
 * (designated initialisers); the ids are one numbering so that each
 * connection has one cache of prepared statements (registry_stmt).
 */
enum {
	/* registry.c: transactions */
	Q_BEGIN, Q_BEGIN_IMMEDIATE, Q_COMMIT, Q_ROLLBACK,
	Q_SAVEPOINT, Q_RELEASE, Q_ROLLBACK_TO,
	/* registry_device.c */
	Q_DEVICE_GET, Q_IMPORT_BY_ID, Q_IMPORT_BY_KEY, Q_IMPORT_INSERT,
	Q_DEVICE_LIST, Q_DEVICE_SET_STATE, Q_DEVICE_COUNT, Q_DEVICE_BY_KEY,
	/* registry_template.c: policies, groups, templates */
	Q_POLICY_PUT, Q_POLICY_GET, Q_POLICY_LIST, Q_POLICY_EXISTS,
	Q_GROUP_ENSURE, Q_TEMPLATE_PUT, Q_TEMPLATE_DEL_POLICIES,
	Q_TEMPLATE_DEL_ATTRS, Q_TEMPLATE_ADD_POLICY, Q_TEMPLATE_ADD_ATTR,
	Q_TEMPLATE_READ, Q_TEMPLATE_POLICIES, Q_TEMPLATE_ATTRS,
	/* registry_enroll.c: enrollments */
	Q_ENROLLMENT_GET, Q_ENROLLMENT_BY_KEY, Q_ENROLLMENT_BY_CSR,
	Q_ENROLLMENT_SET_STATE, Q_ENROLL_DEVICE, Q_ENROLLMENT_INSERT,
	Q_CERT_INSERT, Q_DEVICE_HOLD, Q_THING_HOLD, Q_THING_PUT,
	Q_THING_ATTR_PUT, Q_THING_GROUP_PUT, Q_CERT_POLICY_PUT,
	/* registry_enroll.c: certificates */
	Q_CERT_OF_DEVICE, Q_CERT_ALL, Q_CERT_POLICIES, Q_CERT_SET_STATUS,
	Q_CERT_PAGE, Q_CERT_GET,
	/* registry_thing.c */
	Q_THING_BY_NAME, Q_THING_PAGE, Q_THING_ATTRS, Q_THING_GROUPS,
	Q_GROUP_LIST,
	/* registry_status.c: mirrors of the signer's decisions */
	Q_CERT_MIRROR, Q_CERT_EXISTS, Q_DEVICE_RELEASE, Q_RENEWAL_SETTLE,
	/* registry_renew.c: renewal with acknowledgement */
	Q_RENEW_ENROLLMENT, Q_RENEW_ACTIVATE, Q_RENEW_SUPERSEDE,
	Q_RENEW_DEVICE_KEY, Q_RENEW_ENROLLMENT_STATE, Q_RENEW_EXPIRE,
	Q_RENEW_EXPIRE_ENROLLMENT, Q_RENEW_PULL,
	/* registry_mfr.c: manufacturer CAs (just-in-time provisioning) */
	Q_MFR_PUT, Q_MFR_SET_CRL, Q_MFR_LIST,
	NQ
};

/* A caller whose write transaction waits for the group's commit. */
struct member {
	int rc;
	int done;
	struct member *next;
};

/*
 * A connection, used only under its mutex. The writing connection of a
 * file registry commits in groups (registry.c, "Group commit"): the
 * fields after st are its state, all under lock but queued.
 */
struct dbconn {
	sqlite3 *db;
	pthread_mutex_t lock;
	sqlite3_stmt *st[NQ];    /* kept statements (NULL until used) */
	int group;               /* group commit on (file registries) */
	int open;                /* a group's transaction is open */
	int queued;              /* threads waiting for lock (atomic) */
	struct member *members;  /* waiting for the open one's commit */
	pthread_cond_t committed;
	walckpt ckpt;            /* when the writer checkpoints its WAL */
};

struct registry {
	struct dbconn w;         /* the one writing connection */
	struct dbconn rd;        /* read-only (file databases) */
	struct dbconn *reader;   /* &rd, or &w for ":memory:" */
};

/* ---- registry.c ---- */

/*
 * The writing connection, or the one for reads, locked; hand it back with
 * the matching unlock.
 */
struct dbconn *registry_wlock(registry *r);
void registry_wunlock(registry *r);
struct dbconn *registry_rlock(registry *r);
void registry_runlock(registry *r);

/*
 * Kept statement q of connection c (whose mutex the caller holds), with
 * the text sql[q] from the calling file's table: prepared on first use,
 * then reused. Hand it back with registry_done() on every path, before
 * the transaction ends. SF_EDB if it does not prepare.
 */
int registry_stmt(struct dbconn *c, const char *const *sql, int q,
    sqlite3_stmt **st);
/* Reset a kept statement and clear its bindings. NULL-safe. */
void registry_done(sqlite3_stmt *st);
/*
 * Our code for a failed step's SQLite result code: UNIQUE and PRIMARY KEY
 * SF_EEXIST, FOREIGN KEY SF_ENOTFOUND, CHECK and NOT NULL SF_EINVAL (the
 * caller's input: logged at debug level), BUSY and LOCKED SF_EUNAVAIL,
 * else SF_EDB (logged). what names the operation in the log.
 */
int registry_sql_err(sqlite3 *db, int code, const char *what);
/* Step a statement that returns no row, and reset it for another use. */
int registry_run(sqlite3 *db, sqlite3_stmt *st, const char *what);
/* registry_run for an UPDATE of one row: SF_ENOTFOUND when it matched
 * none. */
int registry_run_one(sqlite3 *db, sqlite3_stmt *st, const char *what);
/* Run Q_BEGIN, Q_BEGIN_IMMEDIATE, Q_COMMIT or Q_ROLLBACK on c. With
 * group commit, Q_BEGIN_IMMEDIATE joins the group's open transaction (a
 * savepoint of its own) or opens one. */
int registry_tx(struct dbconn *c, int q);
/* End the transaction begun by the caller: COMMIT when rc is 0, else (or
 * when COMMIT fails) ROLLBACK. Returns rc, or COMMIT's error. With group
 * commit, a write transaction returns only once the commit that holds it
 * is durable (or failed: its error). */
int registry_tx_end(struct dbconn *c, int rc);
/*
 * Step st to the end, collecting column 0 into *c0 and, if c1 is not
 * NULL, column 1 into *c1 (malloc'd arrays of *n malloc'd strings: the
 * caller's, registry_strings_free). On error nothing is returned.
 */
int registry_collect(sqlite3 *db, sqlite3_stmt *st, char ***c0, char ***c1,
    size_t *n);
/* Room for element n of an array v of *cap elements of size sz: v or its
 * reallocation; NULL (and v untouched) when out of memory. */
void *registry_grow(void *v, size_t *cap, size_t n, size_t sz);
/*
 * Step st to the end, one element of an array per row: *v grows as needed
 * (elements of size sz, each zeroed) and row() fills the new element from
 * the current row, arg being row()'s own. *n counts the elements, the one
 * row() failed on included, so that on error the caller releases *v with
 * its _free as on success.
 */
typedef int (*registry_row_fn)(sqlite3_stmt *st, void *elem, void *arg);
int registry_rows(sqlite3 *db, sqlite3_stmt *st, size_t sz,
    registry_row_fn row, void *arg, void **v, size_t *n, const char *what);
/* registry_rows in one read transaction on c, so that rows read with
 * their children (row() running more statements) are one snapshot. */
int registry_rows_tx(struct dbconn *c, sqlite3_stmt *st, size_t sz,
    registry_row_fn row, void *arg, void **v, size_t *n, const char *what);
/* The element a read of at most one row gave (v, n of size sz) moved into
 * out; SF_ENOTFOUND when there was none. Frees v either way. */
int registry_one(void *v, size_t n, size_t sz, void *out);

/* ---- registry_status.c ---- */

/*
 * Set a certificate's status, revocation reason and time (reason and time
 * kept only for REVOKED and SUPERSEDED) on c, in the caller's transaction: 1 when the
 * row changed (*device_id, if not NULL, gets its device, malloc'd), 0
 * when it was so already or does not exist, or a negative SF_E*.
 */
int registry_cert_status_tx(struct dbconn *c, const char *serial,
    int status, int reason, int64_t revoked_at, char **device_id);

/* ---- registry_enroll.c ---- */

/* The device holds serial now: its current_serial (and its thing's
 * certificate) follow, and a registered device becomes ACTIVE; a
 * disabled or revoked one stays so. On c, in the caller's transaction. */
int registry_device_hold(struct dbconn *c, const char *device_id,
    const char *serial, int64_t now);

/* ---- registry_template.c ---- */

/*
 * An attribute value of a template with ${device_id}, ${serial},
 * ${region} and ${product_line} replaced (conf_expand), malloc'd; NULL
 * when it names another variable, leaves a "${" open, or memory ran out.
 */
char *registry_attr_expand(const char *value, const char *device_id,
    const char *serial, const char *region, const char *product_line);
/* Names present, attribute values expandable: 0 or SF_EINVAL. */
int registry_template_valid(const registry_template *t);
/* SF_ENOTFOUND (and a log line naming user, e.g. "template widgiot") when
 * policy name is not stored. On c, in the caller's transaction. */
int registry_policy_check(struct dbconn *c, const char *name,
    const char *user);
/* Create a group if it is new. On c, in the caller's transaction. */
int registry_group_ensure(struct dbconn *c, const char *name, int64_t now);

/* ---- column helpers ---- */

static inline int
empty(const char *s)
{
	return s == NULL || *s == '\0';
}

/* A string parameter; NULL binds "". */
static inline void
bind_text(sqlite3_stmt *st, int i, const char *s)
{
	sqlite3_bind_text(st, i, s ? s : "", -1, SQLITE_TRANSIENT);
}

/* limit 0 = no limit (SQLite's LIMIT -1). */
static inline sqlite3_int64
sql_limit(size_t limit)
{
	return (limit == 0 || limit > INT64_MAX) ? -1 : (sqlite3_int64)limit;
}

/* A text column, malloc'd ("" for NULL); NULL when out of memory. */
static inline char *
col_strdup(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return strdup(s ? (const char *)s : "");
}

/* A blob column, malloc'd, its length in *len; NULL when empty or out of
 * memory. */
static inline uint8_t *
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

/* A 32-byte fingerprint column; zeroes if it is not 32 bytes. */
static inline void
col_fp(sqlite3_stmt *st, int i, uint8_t fp[32])
{
	const void *b = sqlite3_column_blob(st, i);

	if (b != NULL && sqlite3_column_bytes(st, i) == 32)
		memcpy(fp, b, 32);
	else
		memset(fp, 0, 32);
}

#endif
