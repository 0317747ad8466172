/*
 * registry_status.c - the registry's mirrors of decisions the signer made
 * first (see registry.h): a certificate's status and revocation. The
 * signer is the source of truth for both; the CLI calls it first and then
 * asks authz to agree (and `secretfree audit reconcile` repairs any
 * disagreement).
 */
#include <string.h>

#include "err.h"
#include "pbenum.h"
#include "registry_int.h"
#include "util.h"

static const char *const SQL[NQ] = {
	[Q_CERT_MIRROR] = "UPDATE certificates SET status = ?1,"
	    " revocation_reason = ?2, revoked_at = ?3 WHERE serial = ?4"
	    " AND (status != ?1 OR revocation_reason != ?2 OR"
	    " revoked_at != ?3) RETURNING device_id",
	[Q_CERT_EXISTS] = "SELECT 1 FROM certificates WHERE serial = ?",
	[Q_RENEWAL_SETTLE] = "UPDATE enrollments SET state = ?1 WHERE"
	    " state = ?2 AND enrollment_id = (SELECT enrollment_id FROM"
	    " certificates WHERE serial = ?3)",
	[Q_DEVICE_RELEASE] = "UPDATE devices SET current_serial = '',"
	    " state = CASE state WHEN ?1 THEN ?2 ELSE state END,"
	    " updated_at = ?3 WHERE device_id = ?4 AND current_serial = ?5",
};

/* The certificate exists: 1, 0, or an error code < 0. */
static int
cert_exists(struct dbconn *c, const char *serial)
{
	sqlite3_stmt *st = NULL;
	int rc, code;

	if ((rc = registry_stmt(c, SQL, Q_CERT_EXISTS, &st)) != 0)
		return rc;
	bind_text(st, 1, serial);
	code = sqlite3_step(st);
	rc = code == SQLITE_ROW ? 1 : code == SQLITE_DONE ? 0 :
	    registry_sql_err(c->db, code, "certificate lookup");
	registry_done(st);
	return rc;
}

/* A revoked certificate is no longer its device's current one. */
static int
device_release(struct dbconn *c, const char *device_id, const char *serial)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = registry_stmt(c, SQL, Q_DEVICE_RELEASE, &st)) != 0)
		return rc;
	sqlite3_bind_int(st, 1, DEVICE_ACTIVE);
	sqlite3_bind_int(st, 2, DEVICE_REGISTERED);
	sqlite3_bind_int64(st, 3, sf_now());
	bind_text(st, 4, device_id);
	bind_text(st, 5, serial);
	rc = registry_run(c->db, st, "release device");
	registry_done(st);
	return rc;
}

/*
 * A renewal's certificate the signer says is ACTIVE was acknowledged
 * there (authz missed it): its enrollment is ACKNOWLEDGED and the device
 * holds it. One it says is REVOKED will never be: its enrollment FAILED.
 * Other enrollments, and renewals settled already, are left as they are.
 */
static int
renewal_settle(struct dbconn *c, const char *device_id, const char *serial,
    int status)
{
	sqlite3_stmt *st = NULL;
	int rc, changed;

	if (status != CERT_ACTIVE && status != CERT_REVOKED)
		return 0;
	if ((rc = registry_stmt(c, SQL, Q_RENEWAL_SETTLE, &st)) != 0)
		return rc;
	sqlite3_bind_int(st, 1, status == CERT_ACTIVE ?
	    ENROLLMENT_ACKNOWLEDGED : ENROLLMENT_FAILED);
	sqlite3_bind_int(st, 2, ENROLLMENT_PENDING_ACK);
	bind_text(st, 3, serial);
	rc = registry_run(c->db, st, "settle renewal");
	changed = sqlite3_changes(c->db);
	registry_done(st);
	if (rc == 0 && changed && status == CERT_ACTIVE)
		rc = registry_device_hold(c, device_id, serial, sf_now());
	return rc;
}

int
registry_cert_status_tx(struct dbconn *c, const char *serial, int status,
    int reason, int64_t revoked_at, char **device_id)
{
	sqlite3_stmt *st = NULL;
	int rc, code;

	if (device_id)
		*device_id = NULL;
	if ((rc = registry_stmt(c, SQL, Q_CERT_MIRROR, &st)) != 0)
		return rc;
	sqlite3_bind_int(st, 1, status);
	/* A superseded certificate is revoked too (reason superseded). */
	sqlite3_bind_int(st, 2, status == CERT_REVOKED ||
	    status == CERT_SUPERSEDED ? reason : 0);
	sqlite3_bind_int64(st, 3, status == CERT_REVOKED ||
	    status == CERT_SUPERSEDED ? revoked_at : 0);
	bind_text(st, 4, serial);
	if ((code = sqlite3_step(st)) == SQLITE_ROW) {
		rc = 1;
		if (device_id && (*device_id = col_strdup(st, 0)) == NULL)
			rc = SF_ENOMEM;
	} else if (code != SQLITE_DONE)
		rc = registry_sql_err(c->db, code, "mirror certificate");
	registry_done(st);
	return rc;
}

/* One update inside the caller's transaction: its outcome, or < 0. */
static int
mirror_tx(struct dbconn *c, const registry_cert_update *u, int *outcome)
{
	char *device_id = NULL;
	int rc;

	if ((rc = registry_cert_status_tx(c, u->serial, u->status, u->reason,
	    u->revoked_at, &device_id)) < 0)
		return rc;
	if (rc == 0) {
		if ((rc = cert_exists(c, u->serial)) < 0)
			return rc;
		*outcome = rc ? REGISTRY_MIRROR_UNCHANGED :
		    REGISTRY_MIRROR_UNKNOWN;
		return 0;
	}
	*outcome = REGISTRY_MIRROR_UPDATED;
	rc = 0;
	if (u->status == CERT_REVOKED || u->status == CERT_SUPERSEDED)
		rc = device_release(c, device_id, u->serial);
	if (rc == 0)
		rc = renewal_settle(c, device_id, u->serial, u->status);
	free(device_id);
	return rc;
}

int
registry_cert_mirror_batch(registry *r, const registry_cert_update *u,
    size_t n, int *outcome, size_t *bad)
{
	struct dbconn *c;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		outcome[i] = 0;
		if (u[i].serial == NULL || *u[i].serial == '\0' ||
		    u[i].status < CERT_ACTIVE || u[i].status > CERT_EXPIRED) {
			if (bad)
				*bad = i;
			return SF_EINVAL;
		}
	}
	if (n == 0)
		return 0;
	c = registry_wlock(r);
	if ((rc = registry_tx(c, Q_BEGIN_IMMEDIATE)) == 0) {
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = mirror_tx(c, &u[i], &outcome[i]);
		rc = registry_tx_end(c, rc);
	}
	registry_wunlock(r);
	if (rc != 0)
		for (size_t i = 0; i < n; i++)
			outcome[i] = 0;
	return rc;
}

int
registry_cert_mirror(registry *r, const char *serial, int status,
    int reason, int64_t revoked_at, int *outcome)
{
	registry_cert_update u = { serial, status, reason, revoked_at };

	return registry_cert_mirror_batch(r, &u, 1, outcome, NULL);
}
