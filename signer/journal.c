/*
 * journal.c - the signer's SQLite journal (see journal.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "err.h"
#include "journal.h"
#include "log.h"
#include "util.h"

#define BATCH_MAX 256

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
    " PRIMARY KEY (ca_id, serial));"
    "CREATE INDEX IF NOT EXISTS certs_device ON certs(device_id);"
    "CREATE INDEX IF NOT EXISTS certs_serial ON certs(serial);"
    "CREATE TABLE IF NOT EXISTS devices ("
    " device_id TEXT PRIMARY KEY,"
    " key_sha256 BLOB NOT NULL UNIQUE,"
    " product_line TEXT NOT NULL,"
    " region TEXT NOT NULL DEFAULT '',"
    " created_at INTEGER NOT NULL);"
    "PRAGMA user_version = 1;";

struct pending {
	const journal_cert *c;
	int rc;
	int done;
	struct pending *next;
};

struct journal {
	sqlite3 *wdb, *rdb;
	pthread_mutex_t wlock, rlock;
	sqlite3_stmt *ins_cert;     /* wdb */
	sqlite3_stmt *get_device;   /* rdb */
	/* Group commit. */
	pthread_mutex_t qlock;
	pthread_cond_t qwork, qdone;
	struct pending *head, *tail;
	int stop;
	pthread_t writer;
	int writer_started;
};

static int
db_err(sqlite3 *db, const char *what)
{
	log_warnx("journal: %s: %s", what, sqlite3_errmsg(db));
	return SF_EDB;
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
	*out = db;
	return 0;
}

/*
 * Prepare sql on db; if it fails, log what and return SF_EDB. Every caller
 * starts with rc = SF_EDB, so on failure it only has to goto out.
 */
static int
prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, const char *what)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
		return db_err(db, what);
	return 0;
}

static int
exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		log_warnx("journal: %s: %s", sql, msg ? msg : "?");
		sqlite3_free(msg);
		return SF_EDB;
	}
	return 0;
}

static void *writer_main(void *arg);

int
journal_open(const char *path, journal **out, char *why, size_t whylen)
{
	journal *j;
	int rc = SF_EDB;

	*out = NULL;
	if ((j = calloc(1, sizeof *j)) == NULL)
		return SF_ENOMEM;
	pthread_mutex_init(&j->wlock, NULL);
	pthread_mutex_init(&j->rlock, NULL);
	pthread_mutex_init(&j->qlock, NULL);
	pthread_cond_init(&j->qwork, NULL);
	pthread_cond_init(&j->qdone, NULL);
	if ((rc = db_open(path, &j->wdb, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE, why, whylen)) != 0)
		goto out;
	/*
	 * FULL: a journal that promises "recorded before returned" must
	 * survive power loss, not only a process crash.
	 */
	if (exec(j->wdb, "PRAGMA journal_mode=WAL") != 0 ||
	    exec(j->wdb, "PRAGMA synchronous=FULL") != 0 ||
	    exec(j->wdb, "PRAGMA foreign_keys=ON") != 0 ||
	    exec(j->wdb, SCHEMA) != 0) {
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
	    " enrollment_id, replaces_serial, cert_der)"
	    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &j->ins_cert,
	    NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(j->rdb,
	    "SELECT key_sha256, product_line, region FROM devices"
	    " WHERE device_id = ?", -1, &j->get_device, NULL) != SQLITE_OK) {
		sf_why(why, whylen, "cannot prepare journal statements: %s",
		    sqlite3_errmsg(j->wdb));
		rc = SF_EDB;
		goto out;
	}
	if (pthread_create(&j->writer, NULL, writer_main, j) != 0) {
		sf_why(why, whylen, "cannot start the journal writer");
		rc = SF_EINTERNAL;
		goto out;
	}
	j->writer_started = 1;
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
	if (j->writer_started) {
		pthread_mutex_lock(&j->qlock);
		j->stop = 1;
		pthread_cond_signal(&j->qwork);
		pthread_mutex_unlock(&j->qlock);
		pthread_join(j->writer, NULL);
	}
	sqlite3_finalize(j->ins_cert);
	sqlite3_finalize(j->get_device);
	sqlite3_close(j->rdb);
	sqlite3_close(j->wdb);
	pthread_mutex_destroy(&j->wlock);
	pthread_mutex_destroy(&j->rlock);
	pthread_mutex_destroy(&j->qlock);
	pthread_cond_destroy(&j->qwork);
	pthread_cond_destroy(&j->qdone);
	free(j);
}

/* ---- helpers ---- */

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
	if (b == NULL || n <= 0)
		return NULL;
	if ((p = malloc((size_t)n)) == NULL)
		return NULL;
	memcpy(p, b, (size_t)n);
	*len = (size_t)n;
	return p;
}

/* ---- CAs ---- */

static const char *CA_COLS =
    "id, name, generation, role, parent_id, product_line, region, state,"
    " key_label, key_type, subject, serial, not_before, not_after, path_len,"
    " cert_der, crl_url, ocsp_url, ca_issuers_url, permitted, excluded,"
    " external_parent, created_at, crl_number, external_chain";

static int
ca_from_row(sqlite3_stmt *st, journal_ca *ca)
{
	memset(ca, 0, sizeof *ca);
	ca->id = sqlite3_column_int64(st, 0);
	ca->name = col_strdup(st, 1);
	ca->generation = col_strdup(st, 2);
	ca->role = sqlite3_column_int(st, 3);
	ca->parent_id = sqlite3_column_int64(st, 4);
	ca->product_line = col_strdup(st, 5);
	ca->region = col_strdup(st, 6);
	ca->state = sqlite3_column_int(st, 7);
	ca->key_label = col_strdup(st, 8);
	ca->key_type = sqlite3_column_int(st, 9);
	ca->subject = col_strdup(st, 10);
	ca->serial = col_strdup(st, 11);
	ca->not_before = sqlite3_column_int64(st, 12);
	ca->not_after = sqlite3_column_int64(st, 13);
	ca->path_len = sqlite3_column_int(st, 14);
	ca->cert_der = col_blobdup(st, 15, &ca->cert_len);
	ca->crl_url = col_strdup(st, 16);
	ca->ocsp_url = col_strdup(st, 17);
	ca->ca_issuers_url = col_strdup(st, 18);
	ca->permitted = col_strdup(st, 19);
	ca->excluded = col_strdup(st, 20);
	ca->external_parent = sqlite3_column_int(st, 21);
	ca->created_at = sqlite3_column_int64(st, 22);
	ca->crl_number = sqlite3_column_int64(st, 23);
	ca->external_chain = col_strdup(st, 24);
	if (!ca->external_chain || !ca->name || !ca->generation || !ca->product_line || !ca->region ||
	    !ca->key_label || !ca->subject || !ca->serial || !ca->crl_url ||
	    !ca->ocsp_url || !ca->ca_issuers_url || !ca->permitted ||
	    !ca->excluded) {
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

static char *
dupnull(const char *s)
{
	return strdup(s ? s : "");
}

int
journal_ca_copy(journal_ca *d, const journal_ca *s)
{
	*d = *s;
	d->name = dupnull(s->name);
	d->generation = dupnull(s->generation);
	d->product_line = dupnull(s->product_line);
	d->region = dupnull(s->region);
	d->key_label = dupnull(s->key_label);
	d->subject = dupnull(s->subject);
	d->serial = dupnull(s->serial);
	d->crl_url = dupnull(s->crl_url);
	d->ocsp_url = dupnull(s->ocsp_url);
	d->ca_issuers_url = dupnull(s->ca_issuers_url);
	d->permitted = dupnull(s->permitted);
	d->excluded = dupnull(s->excluded);
	d->external_chain = dupnull(s->external_chain);
	d->cert_der = NULL;
	if (s->cert_der && s->cert_len) {
		if ((d->cert_der = malloc(s->cert_len)) != NULL)
			memcpy(d->cert_der, s->cert_der, s->cert_len);
	}
	if (!d->name || !d->generation || !d->product_line || !d->region ||
	    !d->key_label || !d->subject || !d->serial || !d->crl_url ||
	    !d->ocsp_url || !d->ca_issuers_url || !d->permitted ||
	    !d->excluded || !d->external_chain || (s->cert_der && s->cert_len && !d->cert_der)) {
		journal_ca_fini(d);
		return SF_ENOMEM;
	}
	return 0;
}

int
journal_ca_insert(journal *j, journal_ca *ca)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB, r;

	pthread_mutex_lock(&j->wlock);
	if (prepare(j->wdb,
	    "INSERT INTO cas (name, generation, role, parent_id, product_line,"
	    " region, state, key_label, key_type, subject, serial, not_before,"
	    " not_after, path_len, cert_der, crl_url, ocsp_url, ca_issuers_url,"
	    " permitted, excluded, external_parent, created_at, external_chain)"
	    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", &st,
	    "prepare CA insert") != 0)
		goto out;
	bind_text(st, 1, ca->name);
	bind_text(st, 2, ca->generation);
	sqlite3_bind_int(st, 3, ca->role);
	if (ca->parent_id)
		sqlite3_bind_int64(st, 4, ca->parent_id);
	else
		sqlite3_bind_null(st, 4);
	bind_text(st, 5, ca->product_line);
	bind_text(st, 6, ca->region);
	sqlite3_bind_int(st, 7, ca->state);
	bind_text(st, 8, ca->key_label);
	sqlite3_bind_int(st, 9, ca->key_type);
	bind_text(st, 10, ca->subject);
	bind_text(st, 11, ca->serial);
	sqlite3_bind_int64(st, 12, ca->not_before);
	sqlite3_bind_int64(st, 13, ca->not_after);
	sqlite3_bind_int(st, 14, ca->path_len);
	if (ca->cert_der)
		sqlite3_bind_blob(st, 15, ca->cert_der, (int)ca->cert_len,
		    SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, 15);
	bind_text(st, 16, ca->crl_url);
	bind_text(st, 17, ca->ocsp_url);
	bind_text(st, 18, ca->ca_issuers_url);
	bind_text(st, 19, ca->permitted);
	bind_text(st, 20, ca->excluded);
	sqlite3_bind_int(st, 21, ca->external_parent);
	sqlite3_bind_int64(st, 22, ca->created_at);
	bind_text(st, 23, ca->external_chain);
	r = sqlite3_step(st);
	if (r == SQLITE_DONE) {
		ca->id = sqlite3_last_insert_rowid(j->wdb);
		rc = 0;
	} else if ((r & 0xff) == SQLITE_CONSTRAINT)
		rc = SF_EEXIST;
	else
		rc = db_err(j->wdb, "insert CA");
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->wlock);
	return rc;
}

int
journal_ca_set_cert(journal *j, int64_t id, const uint8_t *der, size_t len,
    const char *serial, int64_t nb, int64_t na, int state,
    const char *external_chain)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB;

	pthread_mutex_lock(&j->wlock);
	if (prepare(j->wdb, "UPDATE cas SET cert_der = ?, serial = ?,"
	    " not_before = ?, not_after = ?, state = ?,"
	    " external_chain = coalesce(?, external_chain)"
	    " WHERE id = ?", &st, "prepare CA update") != 0)
		goto out;
	sqlite3_bind_blob(st, 1, der, (int)len, SQLITE_TRANSIENT);
	bind_text(st, 2, serial);
	sqlite3_bind_int64(st, 3, nb);
	sqlite3_bind_int64(st, 4, na);
	sqlite3_bind_int(st, 5, state);
	if (external_chain)
		bind_text(st, 6, external_chain);
	else
		sqlite3_bind_null(st, 6);
	sqlite3_bind_int64(st, 7, id);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_err(j->wdb, "update CA");
	else
		rc = sqlite3_changes(j->wdb) == 1 ? 0 : SF_ENOTFOUND;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->wlock);
	return rc;
}

int
journal_ca_set_state(journal *j, int64_t id, int state)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB;

	pthread_mutex_lock(&j->wlock);
	if (prepare(j->wdb, "UPDATE cas SET state = ? WHERE id = ?", &st,
	    "prepare CA state") != 0)
		goto out;
	sqlite3_bind_int(st, 1, state);
	sqlite3_bind_int64(st, 2, id);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_err(j->wdb, "update CA state");
	else
		rc = sqlite3_changes(j->wdb) == 1 ? 0 : SF_ENOTFOUND;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->wlock);
	return rc;
}

int
journal_ca_next_crl_number(journal *j, int64_t id, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB;

	*out = 0;
	pthread_mutex_lock(&j->wlock);
	if (prepare(j->wdb, "UPDATE cas SET crl_number = crl_number + 1"
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
	if (prepare(j->rdb, sql, &st, "prepare CA list") != 0)
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
		rc = db_err(j->rdb, "list CAs");
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

/* ---- issued certificates: group commit ---- */

static int
insert_cert(journal *j, const journal_cert *c)
{
	sqlite3_stmt *st = j->ins_cert;
	int r;

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	sqlite3_bind_int64(st, 1, c->ca_id);
	bind_text(st, 2, c->serial);
	bind_text(st, 3, c->subject);
	bind_text(st, 4, c->device_id);
	sqlite3_bind_blob(st, 5, c->key_sha256, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, c->not_before);
	sqlite3_bind_int64(st, 7, c->not_after);
	sqlite3_bind_int64(st, 8, c->issued_at);
	bind_text(st, 9, c->requester);
	bind_text(st, 10, c->profile);
	bind_text(st, 11, c->enrollment_id);
	bind_text(st, 12, c->replaces_serial);
	sqlite3_bind_blob(st, 13, c->der, (int)c->der_len, SQLITE_STATIC);
	r = sqlite3_step(st);
	sqlite3_reset(st);
	if (r == SQLITE_DONE)
		return 0;
	/* Only the (ca_id, serial) key means "serial taken"; an unknown CA
	 * (foreign key) or a missing column is a failure of ours. */
	if (r == SQLITE_CONSTRAINT_PRIMARYKEY || r == SQLITE_CONSTRAINT_UNIQUE)
		return SF_EEXIST;
	return db_err(j->wdb, "insert certificate");
}

static void
run_batch(journal *j, struct pending *batch)
{
	int commit_rc = 0;

	pthread_mutex_lock(&j->wlock);
	if (exec(j->wdb, "BEGIN IMMEDIATE") != 0)
		commit_rc = SF_EDB;
	for (struct pending *p = batch; p; p = p->next)
		p->rc = commit_rc ? commit_rc : insert_cert(j, p->c);
	if (commit_rc == 0 && exec(j->wdb, "COMMIT") != 0) {
		exec(j->wdb, "ROLLBACK");
		commit_rc = SF_EDB;
	}
	pthread_mutex_unlock(&j->wlock);
	if (commit_rc)
		for (struct pending *p = batch; p; p = p->next)
			p->rc = commit_rc;
}

static void *
writer_main(void *arg)
{
	journal *j = arg;

	pthread_mutex_lock(&j->qlock);
	for (;;) {
		struct pending *batch, *last;
		int n = 1;

		while (j->head == NULL && !j->stop)
			pthread_cond_wait(&j->qwork, &j->qlock);
		if (j->head == NULL && j->stop)
			break;
		/* Take up to BATCH_MAX waiting records. */
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
		for (struct pending *p = batch; p; p = p->next)
			p->done = 1;
		pthread_cond_broadcast(&j->qdone);
	}
	pthread_mutex_unlock(&j->qlock);
	return NULL;
}

int
journal_cert_record(journal *j, const journal_cert *c)
{
	struct pending p = { c, 0, 0, NULL };

	pthread_mutex_lock(&j->qlock);
	if (j->stop) {
		pthread_mutex_unlock(&j->qlock);
		return SF_EUNAVAIL;
	}
	if (j->tail)
		j->tail->next = &p;
	else
		j->head = &p;
	j->tail = &p;
	pthread_cond_signal(&j->qwork);
	while (!p.done)
		pthread_cond_wait(&j->qdone, &j->qlock);
	pthread_mutex_unlock(&j->qlock);
	return p.rc;
}

static const char *CERT_COLS =
    "c.ca_id, a.name, c.serial, c.subject, c.device_id, c.key_sha256,"
    " c.not_before, c.not_after, c.issued_at, c.requester, c.profile,"
    " c.enrollment_id, c.status, c.revocation_reason, c.revoked_at,"
    " c.cert_der";

static int
cert_from_row(sqlite3_stmt *st, journal_cert_row *r)
{
	const void *fp;

	memset(r, 0, sizeof *r);
	r->ca_id = sqlite3_column_int64(st, 0);
	r->ca_name = col_strdup(st, 1);
	r->serial = col_strdup(st, 2);
	r->subject = col_strdup(st, 3);
	r->device_id = col_strdup(st, 4);
	if ((fp = sqlite3_column_blob(st, 5)) != NULL &&
	    sqlite3_column_bytes(st, 5) == 32)
		memcpy(r->key_sha256, fp, 32);
	r->not_before = sqlite3_column_int64(st, 6);
	r->not_after = sqlite3_column_int64(st, 7);
	r->issued_at = sqlite3_column_int64(st, 8);
	r->requester = col_strdup(st, 9);
	r->profile = col_strdup(st, 10);
	r->enrollment_id = col_strdup(st, 11);
	r->status = sqlite3_column_int(st, 12);
	r->revocation_reason = sqlite3_column_int(st, 13);
	r->revoked_at = sqlite3_column_int64(st, 14);
	r->der = col_blobdup(st, 15, &r->der_len);
	if (!r->ca_name || !r->serial || !r->subject || !r->device_id ||
	    !r->requester || !r->profile || !r->enrollment_id || !r->der) {
		journal_cert_row_fini(r);
		return SF_ENOMEM;
	}
	return 0;
}

void
journal_cert_row_fini(journal_cert_row *r)
{
	if (r == NULL)
		return;
	free(r->ca_name);
	free(r->serial);
	free(r->subject);
	free(r->device_id);
	free(r->requester);
	free(r->profile);
	free(r->enrollment_id);
	free(r->der);
	memset(r, 0, sizeof *r);
}

void
journal_cert_rows_free(journal_cert_row *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		journal_cert_row_fini(&v[i]);
	free(v);
}

int
journal_cert_get(journal *j, const char *serial, int64_t ca_id,
    journal_cert_row *out)
{
	sqlite3_stmt *st = NULL;
	char *sql;
	int rc = SF_EDB, r;

	memset(out, 0, sizeof *out);
	sql = sf_aprintf("SELECT %s FROM certs c JOIN cas a ON a.id = c.ca_id"
	    " WHERE c.serial = ?1 AND (?2 = 0 OR c.ca_id = ?2)"
	    " ORDER BY c.issued_at DESC LIMIT 1", CERT_COLS);
	if (sql == NULL)
		return SF_ENOMEM;
	pthread_mutex_lock(&j->rlock);
	if (prepare(j->rdb, sql, &st, "prepare certificate lookup") != 0)
		goto out;
	bind_text(st, 1, serial);
	sqlite3_bind_int64(st, 2, ca_id);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW)
		rc = cert_from_row(st, out);
	else if (r == SQLITE_DONE)
		rc = SF_ENOTFOUND;
	else
		rc = db_err(j->rdb, "certificate lookup");
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->rlock);
	free(sql);
	return rc;
}

int
journal_cert_list(journal *j, int64_t ca_id, const char *device_id,
    const char *after, size_t limit, journal_cert_row **out, size_t *n)
{
	sqlite3_stmt *st = NULL;
	journal_cert_row *v = NULL, *nv;
	size_t cnt = 0;
	char *sql;
	int rc = SF_EDB, r;

	*out = NULL;
	*n = 0;
	sql = sf_aprintf("SELECT %s FROM certs c JOIN cas a ON a.id = c.ca_id"
	    " WHERE (?1 = 0 OR c.ca_id = ?1) AND (?2 = '' OR c.device_id = ?2)"
	    " AND c.serial > ?3 ORDER BY c.serial LIMIT ?4", CERT_COLS);
	if (sql == NULL)
		return SF_ENOMEM;
	pthread_mutex_lock(&j->rlock);
	if (prepare(j->rdb, sql, &st, "prepare certificate list") != 0)
		goto out;
	sqlite3_bind_int64(st, 1, ca_id);
	bind_text(st, 2, device_id);
	bind_text(st, 3, after);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)limit);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if ((nv = realloc(v, (cnt + 1) * sizeof *v)) == NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
		v = nv;
		if ((rc = cert_from_row(st, &v[cnt])) != 0)
			goto out;
		cnt++;
	}
	if (r != SQLITE_DONE) {
		rc = db_err(j->rdb, "list certificates");
		goto out;
	}
	*out = v;
	*n = cnt;
	v = NULL;  /* transferred */
	cnt = 0;
	rc = 0;
out:
	journal_cert_rows_free(v, cnt);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->rlock);
	free(sql);
	return rc;
}

int
journal_cert_count(journal *j, int64_t ca_id, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB;

	*out = 0;
	pthread_mutex_lock(&j->rlock);
	if (prepare(j->rdb, "SELECT count(*) FROM certs"
	    " WHERE ?1 = 0 OR ca_id = ?1", &st, "prepare count") != 0)
		goto out;
	sqlite3_bind_int64(st, 1, ca_id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = 0;
	}
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->rlock);
	return rc;
}

int
journal_cert_revoke(journal *j, int64_t ca_id, const char *serial, int reason,
    int64_t when)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB;

	pthread_mutex_lock(&j->wlock);
	/* 4 = CERTIFICATE_STATUS_REVOKED */
	if (prepare(j->wdb, "UPDATE certs SET status = 4, revoked_at = ?,"
	    " revocation_reason = ? WHERE ca_id = ? AND serial = ? AND"
	    " status != 4", &st, "prepare revoke") != 0)
		goto out;
	sqlite3_bind_int64(st, 1, when);
	sqlite3_bind_int(st, 2, reason);
	sqlite3_bind_int64(st, 3, ca_id);
	bind_text(st, 4, serial);
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = db_err(j->wdb, "revoke");
		goto out;
	}
	if (sqlite3_changes(j->wdb) == 1)
		rc = 0;
	else {
		sqlite3_finalize(st);
		st = NULL;
		rc = SF_ENOTFOUND;
		if (sqlite3_prepare_v2(j->wdb, "SELECT 1 FROM certs WHERE"
		    " ca_id = ? AND serial = ?", -1, &st, NULL) == SQLITE_OK) {
			sqlite3_bind_int64(st, 1, ca_id);
			bind_text(st, 2, serial);
			if (sqlite3_step(st) == SQLITE_ROW)
				rc = SF_ESTATE;
		}
	}
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->wlock);
	return rc;
}

int
journal_cert_revoked(journal *j, int64_t ca_id,
    int (*cb)(const char *, int64_t, int, void *), void *arg)
{
	sqlite3_stmt *st = NULL;
	int rc = SF_EDB, r;

	pthread_mutex_lock(&j->rlock);
	if (prepare(j->rdb, "SELECT serial, revoked_at, revocation_reason"
	    " FROM certs WHERE ca_id = ? AND status = 4 ORDER BY serial", &st,
	    "prepare revoked list") != 0)
		goto out;
	sqlite3_bind_int64(st, 1, ca_id);
	rc = 0;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = cb((const char *)sqlite3_column_text(st, 0),
		    sqlite3_column_int64(st, 1), sqlite3_column_int(st, 2),
		    arg)) != 0)
			goto out;
	}
	if (r != SQLITE_DONE)
		rc = db_err(j->rdb, "revoked list");
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->rlock);
	return rc;
}

/* ---- devices ---- */

static int
device_outcome(journal *j, sqlite3_stmt *by_id, sqlite3_stmt *by_key,
    const journal_device *d)
{
	int out = JOURNAL_DEV_IMPORTED;

	sqlite3_reset(by_id);
	bind_text(by_id, 1, d->device_id);
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
	if (prepare(j->wdb, "SELECT key_sha256, product_line, region"
	    " FROM devices WHERE device_id = ?", &by_id,
	    "prepare device register") != 0 ||
	    prepare(j->wdb, "SELECT device_id FROM devices WHERE"
	    " key_sha256 = ?", &by_key, "prepare device register") != 0 ||
	    prepare(j->wdb, "INSERT INTO devices (device_id, key_sha256,"
	    " product_line, region, created_at) VALUES (?,?,?,?,?)", &ins,
	    "prepare device register") != 0)
		goto out;
	if (exec(j->wdb, "BEGIN IMMEDIATE") != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		/* Earlier records of this batch are visible: same transaction. */
		outcome[i] = device_outcome(j, by_id, by_key, &d[i]);
		if (outcome[i] != JOURNAL_DEV_IMPORTED)
			continue;
		sqlite3_reset(ins);
		bind_text(ins, 1, d[i].device_id);
		sqlite3_bind_blob(ins, 2, d[i].key_sha256, 32, SQLITE_STATIC);
		bind_text(ins, 3, d[i].product_line);
		bind_text(ins, 4, d[i].region);
		sqlite3_bind_int64(ins, 5, now);
		if (sqlite3_step(ins) != SQLITE_DONE) {
			db_err(j->wdb, "insert device");
			exec(j->wdb, "ROLLBACK");
			goto out;
		}
	}
	if (exec(j->wdb, "COMMIT") != 0) {
		exec(j->wdb, "ROLLBACK");
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
	bind_text(st, 1, device_id);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32) {
		memcpy(key_sha256, sqlite3_column_blob(st, 0), 32);
		*product_line = col_strdup(st, 1);
		*region = col_strdup(st, 2);
		rc = (*product_line && *region) ? 0 : SF_ENOMEM;
	} else if (r == SQLITE_DONE)
		rc = SF_ENOTFOUND;
	else
		rc = db_err(j->rdb, "device lookup");
	sqlite3_reset(st);
	pthread_mutex_unlock(&j->rlock);
	if (rc) {
		free(*product_line);
		free(*region);
		*product_line = *region = NULL;
	}
	return rc;
}
