/*
 * registry_device.c - devices in the registry (see registry.h): the
 * factory import, one transaction per batch with an outcome per record,
 * lookups and pages of devices, their count, and their state as an
 * administrator sets it. A device's current certificate is set by
 * enrollment (registry_enroll.c).
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "pbenum.h"
#include "registry_int.h"
#include "util.h"

#define DEVICE_COLS "device_id, spki, key_sha256, product_line, region," \
	" state, created_at, updated_at, current_serial, origin"

/* Q_DEVICE_LIST's "?3 = 0" is "no state filter": DeviceState UNSPECIFIED. */
_Static_assert(DEVICE_UNSPECIFIED == 0, "no state filter is UNSPECIFIED");

static const char *const SQL[NQ] = {
	[Q_DEVICE_GET] =
	    "SELECT " DEVICE_COLS " FROM devices WHERE device_id = ?",
	[Q_IMPORT_BY_ID] = "SELECT key_sha256, product_line, region"
	    " FROM devices WHERE device_id = ?",
	[Q_IMPORT_BY_KEY] = "SELECT 1 FROM devices WHERE key_sha256 = ?",
	/* A device id or key already there: no row, then import_outcome. */
	[Q_IMPORT_INSERT] = "INSERT INTO devices (device_id, spki,"
	    " key_sha256, product_line, region, state, created_at,"
	    " updated_at, origin) VALUES (?,?,?,?,?,?,?,?,?)"
	    " ON CONFLICT DO NOTHING",
	[Q_DEVICE_LIST] = "SELECT " DEVICE_COLS " FROM devices"
	    " WHERE (?1 = '' OR product_line = ?1)"
	    " AND (?2 = '' OR region = ?2) AND (?3 = 0 OR state = ?3)"
	    " AND device_id > ?4 ORDER BY device_id LIMIT ?5",
	[Q_DEVICE_SET_STATE] = "UPDATE devices SET state = ?,"
	    " updated_at = ? WHERE device_id = ?",
	[Q_DEVICE_COUNT] = "SELECT count(*) FROM devices",
	[Q_DEVICE_BY_KEY] = "SELECT device_id FROM devices WHERE"
	    " key_sha256 = ?",
};

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
	free(d->origin);
	memset(d, 0, sizeof *d);
}

void
registry_devices_free(registry_device *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		registry_device_fini(&v[i]);
	free(v);
}

/* The row of a DEVICE_COLS query into *elem (a registry_device). */
static int
device_row(sqlite3_stmt *st, void *elem, void *arg)
{
	registry_device *d = elem;

	(void)arg;
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
	d->origin = col_strdup(st, 9);
	if (!d->device_id || !d->spki || !d->product_line || !d->region ||
	    !d->current_serial || !d->origin) {
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
	c = registry_rlock(r);
	db = c->db;
	if ((rc = registry_stmt(c, SQL, Q_DEVICE_GET, &st)) != 0)
		goto out;
	bind_text(st, 1, device_id);
	if ((code = sqlite3_step(st)) == SQLITE_ROW)
		rc = device_row(st, out, NULL);
	else if (code == SQLITE_DONE)
		rc = SF_ENOTFOUND;
	else
		rc = registry_sql_err(db, code, "device lookup");
out:
	registry_done(st);
	registry_runlock(r);
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
		out = registry_sql_err(db, code, "import: device lookup");
	sqlite3_reset(by_id);
	if (out != REGISTRY_IMPORTED)
		return out;
	sqlite3_bind_blob(by_key, 1, d->key_sha256, 32, SQLITE_STATIC);
	if ((code = sqlite3_step(by_key)) == SQLITE_ROW)
		out = REGISTRY_KEY_OTHER_ID;
	else if (code != SQLITE_DONE)
		out = registry_sql_err(db, code, "import: key lookup");
	sqlite3_reset(by_key);
	return out;
}

static int
import_batch(registry *r, const registry_import_rec *recs, size_t n,
    const char *origin, int *outcome)
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
	c = registry_wlock(r);
	db = c->db;
	if ((rc = registry_stmt(c, SQL, Q_IMPORT_BY_ID, &by_id)) != 0 ||
	    (rc = registry_stmt(c, SQL, Q_IMPORT_BY_KEY, &by_key)) != 0 ||
	    (rc = registry_stmt(c, SQL, Q_IMPORT_INSERT, &ins)) != 0)
		goto out;
	if ((rc = registry_tx(c, Q_BEGIN_IMMEDIATE)) != 0)
		goto out;
	intx = 1;
	/* A factory batch: its commit checkpoints only past the bulk bar
	 * (common/walckpt.h); the group's commit clears the mark. */
	if (n > 1)
		c->ckpt.bulk = 1;
	for (size_t i = 0; i < n; i++) {
		const registry_import_rec *d = &recs[i];

		/*
		 * One transaction: later records see the earlier ones. The
		 * insert comes first, since nearly every record of an import
		 * is new: a device id or key that is there already (the
		 * table's PRIMARY KEY and UNIQUE) inserts nothing, and only
		 * then do the look-ups say which of the two and how.
		 */
		bind_text(ins, 1, d->device_id);
		sqlite3_bind_blob(ins, 2, d->spki, (int)d->spki_len,
		    SQLITE_STATIC);
		sqlite3_bind_blob(ins, 3, d->key_sha256, 32, SQLITE_STATIC);
		bind_text(ins, 4, d->product_line);
		bind_text(ins, 5, d->region);
		sqlite3_bind_int(ins, 6, DEVICE_REGISTERED);
		sqlite3_bind_int64(ins, 7, now);
		sqlite3_bind_int64(ins, 8, now);
		bind_text(ins, 9, origin);
		if ((rc = registry_run(db, ins, "import: insert device")) != 0)
			goto out;
		if (sqlite3_changes(db) == 1) {
			outcome[i] = REGISTRY_IMPORTED;
			continue;
		}
		if ((rc = import_outcome(db, by_id, by_key, d)) < 0)
			goto out;
		if (rc == REGISTRY_IMPORTED) {
			/* A conflict neither look-up finds. */
			rc = SF_EDB;
			goto out;
		}
		outcome[i] = rc;
	}
	rc = 0;
out:
	registry_done(by_id);
	registry_done(by_key);
	registry_done(ins);
	if (intx)
		rc = registry_tx_end(c, rc);
	registry_wunlock(r);
	if (rc != 0) {
		log_warnx("registry: import of %zu records failed: %s", n,
		    sf_strerror(rc));
		for (size_t i = 0; i < n; i++)
			outcome[i] = 0;
	}
	return rc;
}

int
registry_import(registry *r, const registry_import_rec *recs, size_t n,
    int *outcome)
{
	return import_batch(r, recs, n, "", outcome);
}

int
registry_import_birth(registry *r, const registry_import_rec *rec,
    const char *origin, int *outcome)
{
	return import_batch(r, rec, 1, origin, outcome);
}

int
registry_device_list(registry *r, const char *product_line,
    const char *region, int state, const char *after, size_t limit,
    registry_device **out, size_t *n)
{
	sqlite3_stmt *st = NULL;
	struct dbconn *c;
	void *v = NULL;
	size_t cnt = 0;
	int rc;

	*out = NULL;
	*n = 0;
	c = registry_rlock(r);
	if ((rc = registry_stmt(c, SQL, Q_DEVICE_LIST, &st)) != 0)
		goto out;
	bind_text(st, 1, product_line);
	bind_text(st, 2, region);
	sqlite3_bind_int(st, 3, state);
	bind_text(st, 4, after);
	sqlite3_bind_int64(st, 5, sql_limit(limit));
	if ((rc = registry_rows(c->db, st, sizeof **out, device_row, NULL, &v,
	    &cnt, "list devices")) != 0)
		goto out;
	*out = v;
	*n = cnt;
	v = NULL;  /* transferred */
out:
	registry_devices_free(v, cnt);
	registry_done(st);
	registry_runlock(r);
	return rc;
}

int
registry_device_set_state(registry *r, const char *device_id, int state)
{
	sqlite3_stmt *st = NULL;
	struct dbconn *c;
	int rc, intx = 0;

	if (empty(device_id) || state < DEVICE_REGISTERED ||
	    state > DEVICE_REVOKED)
		return SF_EINVAL;
	c = registry_wlock(r);
	/* A transaction, to share the group's commit (registry.c). */
	if ((rc = registry_tx(c, Q_BEGIN_IMMEDIATE)) != 0)
		goto out;
	intx = 1;
	if ((rc = registry_stmt(c, SQL, Q_DEVICE_SET_STATE, &st)) != 0)
		goto out;
	sqlite3_bind_int(st, 1, state);
	sqlite3_bind_int64(st, 2, sf_now());
	bind_text(st, 3, device_id);
	rc = registry_run_one(c->db, st, "set device state");
out:
	registry_done(st);
	if (intx)
		rc = registry_tx_end(c, rc);
	registry_wunlock(r);
	return rc;
}

int
registry_device_by_key(registry *r, const uint8_t key_sha256[32], char id[65])
{
	sqlite3_stmt *st = NULL;
	struct dbconn *c;
	int rc, code;

	id[0] = '\0';
	c = registry_rlock(r);
	if ((rc = registry_stmt(c, SQL, Q_DEVICE_BY_KEY, &st)) != 0)
		goto out;
	sqlite3_bind_blob(st, 1, key_sha256, 32, SQLITE_STATIC);
	if ((code = sqlite3_step(st)) == SQLITE_ROW)
		sf_strlcpy(id, (const char *)sqlite3_column_text(st, 0), 65);
	else if (code == SQLITE_DONE)
		rc = SF_ENOTFOUND;
	else
		rc = registry_sql_err(c->db, code, "device by key");
out:
	registry_done(st);
	registry_runlock(r);
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
	c = registry_rlock(r);
	db = c->db;
	if ((rc = registry_stmt(c, SQL, Q_DEVICE_COUNT, &st)) != 0)
		goto out;
	if ((code = sqlite3_step(st)) == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	else
		rc = registry_sql_err(db, code, "count devices");
out:
	registry_done(st);
	registry_runlock(r);
	return rc;
}

