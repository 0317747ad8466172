/*
 * registry_renew.c - renewal with acknowledgement in the registry (see
 * registry.h): the default renewal window, the acknowledgement that makes
 * a renewed certificate the device's and supersedes the one it replaces,
 * authz's own sweep of renewals nobody acknowledged in time, and an
 * administrator pulling renewal windows forward.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "pbenum.h"
#include "registry_int.h"
#include "util.h"

/* RFC 5280 CRLReason superseded. */
#define REASON_SUPERSEDED 4

static const char *const SQL[NQ] = {
	[Q_RENEW_ENROLLMENT] = "SELECT device_id, serial, replaces_serial,"
	    " state FROM enrollments WHERE enrollment_id = ?",
	[Q_RENEW_ENROLLMENT_STATE] = "UPDATE enrollments SET state = ?"
	    " WHERE enrollment_id = ?",
	/* The signer is the source of truth: what it acknowledged is ACTIVE
	 * even if authz's sweep got to it first. */
	[Q_RENEW_ACTIVATE] = "UPDATE certificates SET status = ?1,"
	    " revocation_reason = 0, revoked_at = 0 WHERE serial = ?2",
	[Q_RENEW_SUPERSEDE] = "UPDATE certificates SET status = ?1,"
	    " revocation_reason = ?2, revoked_at = ?3 WHERE serial = ?4 AND"
	    " device_id = ?5 AND status IN (?6, ?7)",
	[Q_RENEW_DEVICE_KEY] = "UPDATE devices SET spki = ?, key_sha256 = ?,"
	    " updated_at = ? WHERE device_id = ?",
	/* The literal "status = 2" (PENDING_ACK) lets SQLite use the partial
	 * index certificates_pending. */
	[Q_RENEW_EXPIRE] = "UPDATE certificates SET status = ?1,"
	    " revocation_reason = ?2, revoked_at = ack_deadline"
	    " WHERE serial IN (SELECT serial FROM certificates WHERE"
	    " status = 2 AND ack_deadline > 0 AND ack_deadline <= ?3"
	    " ORDER BY ack_deadline LIMIT ?4) RETURNING serial, enrollment_id",
	[Q_RENEW_EXPIRE_ENROLLMENT] = "UPDATE enrollments SET state = ?1"
	    " WHERE enrollment_id = ?2 AND state = ?3",
	[Q_RENEW_PULL] = "UPDATE certificates SET"
	    " renew_after = CASE WHEN renew_after = 0 OR renew_after > ?1"
	    "  THEN ?1 ELSE renew_after END,"
	    " renew_before = CASE WHEN renew_before = 0 OR renew_before > ?2"
	    "  THEN ?2 ELSE renew_before END,"
	    " renew_note = ?3"
	    " WHERE status = ?4 AND not_after > ?5"
	    " AND (renew_after = 0 OR renew_after > ?1 OR renew_before = 0"
	    "  OR renew_before > ?2)"
	    " AND (?6 = '' OR device_id = ?6)"
	    " AND (?7 = '' OR device_id IN"
	    "  (SELECT device_id FROM devices WHERE product_line = ?7))"
	    " AND (?8 = '' OR ca_name = ?8)",
};

void
registry_renew_window(int64_t not_before, int64_t not_after,
    int64_t *renew_after, int64_t *renew_before)
{
	int64_t v = not_after - not_before;

	if (v <= 0) {
		*renew_after = not_before;
		*renew_before = not_after;
		return;
	}
	*renew_after = not_before + v / 3 * 2;
	*renew_before = not_before + v / 6 * 5;
}

/* What registry_renew_ack reads of the enrollment. */
struct renewal {
	char *device_id, *serial, *replaces;
	int state;
};

static void
renewal_fini(struct renewal *w)
{
	free(w->device_id);
	free(w->serial);
	free(w->replaces);
	memset(w, 0, sizeof *w);
}

static int
renewal_get(struct dbconn *c, const char *enrollment_id, struct renewal *w)
{
	sqlite3_stmt *st = NULL;
	int rc, code;

	memset(w, 0, sizeof *w);
	if ((rc = registry_stmt(c, SQL, Q_RENEW_ENROLLMENT, &st)) != 0)
		return rc;
	bind_text(st, 1, enrollment_id);
	if ((code = sqlite3_step(st)) == SQLITE_ROW) {
		w->device_id = col_strdup(st, 0);
		w->serial = col_strdup(st, 1);
		w->replaces = col_strdup(st, 2);
		w->state = sqlite3_column_int(st, 3);
		if (!w->device_id || !w->serial || !w->replaces) {
			renewal_fini(w);
			rc = SF_ENOMEM;
		}
	} else if (code == SQLITE_DONE)
		rc = SF_ENOTFOUND;
	else
		rc = registry_sql_err(c->db, code, "renewal lookup");
	registry_done(st);
	return rc;
}

/* Bind the values of args (types: 'i' an int64_t, 't' a string, in order
 * from parameter 1) to kept statement q of c and run it. */
static int
run_q(struct dbconn *c, int q, const char *what, const char *types, ...)
{
	sqlite3_stmt *st = NULL;
	va_list ap;
	int rc;

	if ((rc = registry_stmt(c, SQL, q, &st)) != 0)
		return rc;
	va_start(ap, types);
	for (int i = 0; types[i]; i++) {
		if (types[i] == 'i')
			sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
		else
			bind_text(st, i + 1, va_arg(ap, const char *));
	}
	va_end(ap);
	rc = registry_run(c->db, st, what);
	registry_done(st);
	return rc;
}

static int
set_key(struct dbconn *c, const char *device_id, const registry_key *key,
    int64_t when)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = registry_stmt(c, SQL, Q_RENEW_DEVICE_KEY, &st)) != 0)
		return rc;
	sqlite3_bind_blob(st, 1, key->spki, (int)key->spki_len,
	    SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, key->key_sha256, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, when);
	bind_text(st, 4, device_id);
	rc = registry_run_one(c->db, st, "renewal: device key");
	registry_done(st);
	return rc;
}

int
registry_renew_ack(registry *r, const char *enrollment_id, int64_t when,
    const registry_key *key, char **superseded)
{
	struct renewal w = { 0 };
	struct dbconn *c;
	int rc, intx = 0;

	if (superseded)
		*superseded = NULL;
	if (empty(enrollment_id) || (key && (key->spki == NULL ||
	    key->spki_len == 0 || key->key_sha256 == NULL)))
		return SF_EINVAL;
	c = registry_wlock(r);
	if ((rc = registry_tx(c, Q_BEGIN_IMMEDIATE)) != 0)
		goto out;
	intx = 1;
	if ((rc = renewal_get(c, enrollment_id, &w)) != 0)
		goto out;
	if (empty(w.replaces)) {
		rc = SF_ESTATE;
		goto out;
	}
	/* Acknowledged already: nothing to change. */
	if (w.state == ENROLLMENT_ACKNOWLEDGED)
		goto out;
	if ((rc = run_q(c, Q_RENEW_ENROLLMENT_STATE, "renewal: enrollment",
	    "it", (int64_t)ENROLLMENT_ACKNOWLEDGED, enrollment_id)) != 0 ||
	    (rc = run_q(c, Q_RENEW_ACTIVATE, "renewal: activate", "it",
	    (int64_t)CERT_ACTIVE, w.serial)) != 0 ||
	    (rc = registry_device_hold(c, w.device_id, w.serial, when)) != 0 ||
	    (rc = run_q(c, Q_RENEW_SUPERSEDE, "renewal: supersede", "iiittii",
	    (int64_t)CERT_SUPERSEDED, (int64_t)REASON_SUPERSEDED, when,
	    w.replaces, w.device_id, (int64_t)CERT_ACTIVE,
	    (int64_t)CERT_PENDING_ACK)) != 0)
		goto out;
	if (key)
		rc = set_key(c, w.device_id, key, when);
out:
	if (intx)
		rc = registry_tx_end(c, rc);
	registry_wunlock(r);
	if (rc == 0 && superseded && (*superseded = strdup(w.replaces)) ==
	    NULL)
		rc = SF_ENOMEM;
	if (rc == 0)
		log_debug("registry: renewal %s of %s acknowledged: certificate"
		    " %s, %s superseded", enrollment_id, w.device_id, w.serial,
		    w.replaces);
	renewal_fini(&w);
	return rc;
}

int
registry_renew_sweep(registry *r, int64_t now, int reason, size_t max,
    char ***serials, size_t *n)
{
	sqlite3_stmt *st = NULL;
	struct dbconn *c;
	char **eids = NULL;
	int rc, intx = 0;

	*serials = NULL;
	*n = 0;
	c = registry_wlock(r);
	if ((rc = registry_tx(c, Q_BEGIN_IMMEDIATE)) != 0)
		goto out;
	intx = 1;
	if ((rc = registry_stmt(c, SQL, Q_RENEW_EXPIRE, &st)) != 0)
		goto out;
	sqlite3_bind_int(st, 1, CERT_REVOKED);
	sqlite3_bind_int(st, 2, reason);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_int64(st, 4, sql_limit(max));
	rc = registry_collect(c->db, st, serials, &eids, n);
	registry_done(st);
	for (size_t i = 0; rc == 0 && i < *n; i++)
		rc = run_q(c, Q_RENEW_EXPIRE_ENROLLMENT, "renewal: failed",
		    "iti", (int64_t)ENROLLMENT_FAILED, eids[i],
		    (int64_t)ENROLLMENT_PENDING_ACK);
out:
	if (intx)
		rc = registry_tx_end(c, rc);
	registry_wunlock(r);
	registry_strings_free(eids, *n);
	if (rc != 0) {
		registry_strings_free(*serials, *n);
		*serials = NULL;
		*n = 0;
	}
	return rc;
}

int
registry_renew_pull(registry *r, const registry_renew_sel *sel,
    int64_t renew_after, int64_t renew_before, const char *note,
    uint32_t *count)
{
	sqlite3_stmt *st = NULL;
	struct dbconn *c;
	const char *pl = sel->product_line ? sel->product_line : "";
	const char *ca = sel->ca_name ? sel->ca_name : "";
	size_t rounds = sel->ndevices ? sel->ndevices : 1;
	int rc, intx = 0;

	*count = 0;
	if ((sel->ndevices == 0 && *pl == '\0' && *ca == '\0') ||
	    renew_after >= renew_before)
		return SF_EINVAL;
	for (size_t i = 0; i < sel->ndevices; i++)
		if (empty(sel->devices[i]))
			return SF_EINVAL;
	c = registry_wlock(r);
	if ((rc = registry_tx(c, Q_BEGIN_IMMEDIATE)) != 0)
		goto out;
	intx = 1;
	if ((rc = registry_stmt(c, SQL, Q_RENEW_PULL, &st)) != 0)
		goto out;
	/* One statement per device named: a few devices, or all of a
	 * product line or CA in one. */
	for (size_t i = 0; rc == 0 && i < rounds; i++) {
		sqlite3_bind_int64(st, 1, renew_after);
		sqlite3_bind_int64(st, 2, renew_before);
		bind_text(st, 3, note);
		sqlite3_bind_int(st, 4, CERT_ACTIVE);
		sqlite3_bind_int64(st, 5, sf_now());
		bind_text(st, 6, sel->ndevices ? sel->devices[i] : "");
		bind_text(st, 7, pl);
		bind_text(st, 8, ca);
		if ((rc = registry_run(c->db, st, "renewal window")) == 0)
			*count += (uint32_t)sqlite3_changes(c->db);
	}
out:
	registry_done(st);
	if (intx)
		rc = registry_tx_end(c, rc);
	registry_wunlock(r);
	if (rc != 0)
		*count = 0;
	return rc;
}
