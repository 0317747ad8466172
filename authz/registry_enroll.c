/*
 * registry_enroll.c - enrollments and certificates in the registry (see
 * registry.h). registry_enroll_commit records an issued certificate in one
 * transaction: the enrollment (what a retry gets back), the certificate,
 * the device's current certificate, and the product line's template
 * applied to the device's thing. Lookups serve retries by idempotency key
 * or CSR fingerprint; certificate lists and statuses serve the admin API
 * and acknowledgement.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "pbenum.h"
#include "registry_int.h"
#include "util.h"

#define ENROLLMENT_COLS "enrollment_id, device_id, idempotency_key," \
	" csr_sha256, serial, ca_name, certificate_pem, chain_pem, region," \
	" not_before, not_after, created_at, state, replaces_serial"
/* An enrollment with what its certificate's row adds. */
#define ENROLLMENT_SEL "SELECT e.enrollment_id, e.device_id," \
	" e.idempotency_key, e.csr_sha256, e.serial, e.ca_name," \
	" e.certificate_pem, e.chain_pem, e.region, e.not_before," \
	" e.not_after, e.created_at, e.state, e.replaces_serial," \
	" c.ack_deadline, c.renew_after, c.renew_before FROM enrollments e" \
	" LEFT JOIN certificates c ON c.serial = e.serial"
#define CERT_COLS "serial, ca_name, enrollment_id, status, not_before," \
	" not_after, issued_at, revocation_reason, revoked_at," \
	" replaces_serial, ack_deadline, renew_after, renew_before," \
	" renew_note, device_id"

static const char *const SQL[NQ] = {
	[Q_ENROLLMENT_GET] = ENROLLMENT_SEL " WHERE e.enrollment_id = ?",
	/* The literal "!= ''" lets SQLite use the partial unique index. */
	[Q_ENROLLMENT_BY_KEY] = ENROLLMENT_SEL " WHERE e.device_id = ? AND"
	    " e.idempotency_key = ? AND e.idempotency_key != ''",
	[Q_ENROLLMENT_BY_CSR] = ENROLLMENT_SEL
	    " WHERE e.device_id = ? AND e.csr_sha256 = ? AND e.created_at >= ?"
	    " AND e.idempotency_key = ''"
	    " ORDER BY e.created_at DESC, e.rowid DESC LIMIT 1",
	[Q_ENROLLMENT_SET_STATE] = "UPDATE enrollments SET state = ?"
	    " WHERE enrollment_id = ?",
	[Q_ENROLL_DEVICE] = "SELECT product_line, region, current_serial,"
	    " state FROM devices WHERE device_id = ?",
	[Q_ENROLLMENT_INSERT] = "INSERT INTO enrollments (" ENROLLMENT_COLS
	    ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
	[Q_CERT_INSERT] = "INSERT INTO certificates (serial, device_id,"
	    " ca_name, enrollment_id, status, not_before, not_after,"
	    " issued_at, replaces_serial, ack_deadline, renew_after,"
	    " renew_before) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
	[Q_DEVICE_HOLD] = "UPDATE devices SET current_serial = ?1,"
	    " state = CASE WHEN state IN (?2, ?6) THEN state ELSE ?3 END,"
	    " updated_at = ?4 WHERE device_id = ?5",
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
	[Q_CERT_PAGE] = "SELECT " CERT_COLS " FROM certificates"
	    " WHERE serial > ?1 ORDER BY serial LIMIT ?2",
	[Q_CERT_GET] = "SELECT " CERT_COLS " FROM certificates"
	    " WHERE serial = ?1 LIMIT ?2",
	[Q_CERT_POLICIES] = "SELECT policy FROM cert_policies"
	    " WHERE serial = ? ORDER BY rowid",
	[Q_CERT_SET_STATUS] = "UPDATE certificates SET status = ?"
	    " WHERE serial = ? RETURNING device_id",
};

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
	e->ack_deadline = sqlite3_column_int64(st, 14);
	e->renew_after = sqlite3_column_int64(st, 15);
	e->renew_before = sqlite3_column_int64(st, 16);
	if (!e->enrollment_id || !e->device_id || !e->idempotency_key ||
	    !e->serial || !e->ca_name || !e->certificate_pem ||
	    !e->chain_pem || !e->region || !e->replaces_serial) {
		registry_enrollment_fini(e);
		return SF_ENOMEM;
	}
	return 0;
}

/*
 * Run enrollment query q on the reading connection: Q_ENROLLMENT_GET by
 * id (a), Q_ENROLLMENT_BY_KEY by device (a) and idempotency key (key),
 * Q_ENROLLMENT_BY_CSR by device (a), CSR fingerprint (csr) and creation
 * time (since). Its first row into *out, or SF_ENOTFOUND.
 */
static int
enrollment_find(registry *r, int q, const char *a, const char *key,
    const uint8_t *csr, int64_t since, registry_enrollment *out)
{
	sqlite3_stmt *st = NULL;
	struct dbconn *c;
	int rc, code;

	c = registry_rlock(r);
	if ((rc = registry_stmt(c, SQL, q, &st)) != 0)
		goto out;
	bind_text(st, 1, a);
	if (key != NULL)
		bind_text(st, 2, key);
	if (csr != NULL) {
		sqlite3_bind_blob(st, 2, csr, 32, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, since);
	}
	if ((code = sqlite3_step(st)) == SQLITE_ROW)
		rc = enrollment_from_row(st, out);
	else if (code == SQLITE_DONE)
		rc = SF_ENOTFOUND;
	else
		rc = registry_sql_err(c->db, code, "enrollment lookup");
out:
	registry_done(st);
	registry_runlock(r);
	return rc;
}

int
registry_enrollment_get(registry *r, const char *enrollment_id,
    registry_enrollment *out)
{
	memset(out, 0, sizeof *out);
	if (empty(enrollment_id))
		return SF_EINVAL;
	return enrollment_find(r, Q_ENROLLMENT_GET, enrollment_id, NULL,
	    NULL, 0, out);
}

int
registry_enrollment_by_key(registry *r, const char *device_id,
    const char *idempotency_key, registry_enrollment *out)
{
	memset(out, 0, sizeof *out);
	if (empty(device_id))
		return SF_EINVAL;
	/* Nothing is recorded under an empty key. */
	if (empty(idempotency_key))
		return SF_ENOTFOUND;
	return enrollment_find(r, Q_ENROLLMENT_BY_KEY, device_id,
	    idempotency_key, NULL, 0, out);
}

int
registry_enrollment_by_csr(registry *r, const char *device_id,
    const uint8_t csr_sha256[32], int64_t since, registry_enrollment *out)
{
	memset(out, 0, sizeof *out);
	if (empty(device_id) || csr_sha256 == NULL)
		return SF_EINVAL;
	return enrollment_find(r, Q_ENROLLMENT_BY_CSR, device_id, NULL,
	    csr_sha256, since, out);
}

int
registry_enrollment_set_state(registry *r, const char *enrollment_id,
    int state)
{
	sqlite3_stmt *st = NULL;
	struct dbconn *c;
	int rc, intx = 0;

	if (empty(enrollment_id) || state < ENROLLMENT_ISSUED ||
	    state > ENROLLMENT_FAILED)
		return SF_EINVAL;
	c = registry_wlock(r);
	/* A transaction, to share the group's commit (registry.c). */
	if ((rc = registry_tx(c, Q_BEGIN_IMMEDIATE)) != 0)
		goto out;
	intx = 1;
	if ((rc = registry_stmt(c, SQL, Q_ENROLLMENT_SET_STATE, &st)) != 0)
		goto out;
	sqlite3_bind_int(st, 1, state);
	bind_text(st, 2, enrollment_id);
	rc = registry_run_one(c->db, st, "set enrollment state");
out:
	registry_done(st);
	if (intx)
		rc = registry_tx_end(c, rc);
	registry_wunlock(r);
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
	if ((rc = registry_stmt(c, SQL, Q_ENROLL_DEVICE, &st)) != 0)
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
		rc = registry_sql_err(c->db, code, "enroll: device lookup");
	registry_done(st);
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

	if ((rc = registry_stmt(c, SQL, Q_ENROLLMENT_INSERT, &st)) != 0)
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
	rc = registry_run(c->db, st, "enroll: insert enrollment");
	registry_done(st);
	return rc;
}

static int
cert_insert(struct dbconn *c, const registry_enrollment *e, int64_t created)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = registry_stmt(c, SQL, Q_CERT_INSERT, &st)) != 0)
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
	bind_text(st, 9, e->replaces_serial);
	sqlite3_bind_int64(st, 10, e->state == ENROLLMENT_PENDING_ACK ?
	    e->ack_deadline : 0);
	if (e->renew_after && e->renew_before) {
		sqlite3_bind_int64(st, 11, e->renew_after);
		sqlite3_bind_int64(st, 12, e->renew_before);
	} else {
		int64_t a, b;

		registry_renew_window(e->not_before, e->not_after, &a, &b);
		sqlite3_bind_int64(st, 11, a);
		sqlite3_bind_int64(st, 12, b);
	}
	rc = registry_run(c->db, st, "enroll: insert certificate");
	registry_done(st);
	return rc;
}

/*
 * The device holds serial now: current_serial follows, and a registered
 * device becomes ACTIVE. A device disabled (or revoked) while its request
 * was being signed stays so: the certificate is recorded (it exists), but
 * only an administrator enables a device again.
 */
int
registry_device_hold(struct dbconn *c, const char *device_id,
    const char *serial, int64_t now)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = registry_stmt(c, SQL, Q_DEVICE_HOLD, &st)) != 0)
		return rc;
	bind_text(st, 1, serial);
	sqlite3_bind_int(st, 2, DEVICE_DISABLED);
	sqlite3_bind_int(st, 3, DEVICE_ACTIVE);
	sqlite3_bind_int64(st, 4, now);
	bind_text(st, 5, device_id);
	sqlite3_bind_int(st, 6, DEVICE_REVOKED);
	rc = registry_run_one(c->db, st, "device serial");
	registry_done(st);
	if (rc == 0 && (rc = registry_stmt(c, SQL, Q_THING_HOLD, &st)) == 0) {
		bind_text(st, 1, serial);
		bind_text(st, 2, device_id);
		rc = registry_run(c->db, st, "thing serial");
		registry_done(st);
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
	sqlite3_stmt *th = NULL, *at = NULL, *gm = NULL, *cp = NULL;
	sqlite3 *db = c->db;
	const char *region = empty(e->region) ? d->region : e->region;
	char *value = NULL, user[128];
	int rc;

	snprintf(user, sizeof user, "template %s", t->product_line);
	if ((rc = registry_stmt(c, SQL, Q_THING_PUT, &th)) != 0 ||
	    (rc = registry_stmt(c, SQL, Q_THING_ATTR_PUT, &at)) != 0 ||
	    (rc = registry_stmt(c, SQL, Q_THING_GROUP_PUT, &gm)) != 0 ||
	    (rc = registry_stmt(c, SQL, Q_CERT_POLICY_PUT, &cp)) != 0)
		goto out;
	bind_text(th, 1, e->device_id);
	bind_text(th, 2, thing_serial);
	sqlite3_bind_int64(th, 3, now);
	if ((rc = registry_run(db, th, "enroll: thing")) != 0)
		goto out;
	for (size_t i = 0; i < t->nattrs; i++) {
		/* The values expand: registry_template_valid said so. */
		if ((value = registry_attr_expand(t->attr_values[i],
		    e->device_id, e->serial, region, d->product_line)) ==
		    NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
		bind_text(at, 1, e->device_id);
		bind_text(at, 2, t->attr_names[i]);
		bind_text(at, 3, value);
		free(value);
		value = NULL;
		if ((rc = registry_run(db, at,
		    "enroll: thing attribute")) != 0)
			goto out;
	}
	if (!empty(t->thing_group)) {
		if ((rc = registry_group_ensure(c, t->thing_group, now)) != 0)
			goto out;
		bind_text(gm, 1, e->device_id);
		bind_text(gm, 2, t->thing_group);
		if ((rc = registry_run(db, gm, "enroll: thing group")) != 0)
			goto out;
	}
	for (size_t i = 0; i < t->npolicies; i++) {
		if ((rc = registry_policy_check(c, t->policies[i],
		    user)) != 0)
			goto out;
		bind_text(cp, 1, e->serial);
		bind_text(cp, 2, t->policies[i]);
		if ((rc = registry_run(db, cp,
		    "enroll: certificate policy")) != 0)
			goto out;
	}
out:
	free(value);
	registry_done(th);
	registry_done(at);
	registry_done(gm);
	registry_done(cp);
	return rc;
}

/*
 * Record e (registry_enroll_commit), or with adopt an orphan the signer
 * has as *adopt says (registry_enroll_adopt).
 */
static int
enroll_record(registry *r, const registry_enrollment *e,
    const registry_template *tmpl, const registry_adopt_status *adopt)
{
	struct devrow d = { 0 };
	int64_t now = sf_now(), created;
	struct dbconn *c;
	int rc, intx = 0, first, holds;

	if (!enrollment_valid(e))
		return SF_EINVAL;
	if (tmpl != NULL && (rc = registry_template_valid(tmpl)) != 0)
		return rc;
	created = e->created_at ? e->created_at : now;
	/* A rotation names the certificate it replaces; the device keeps
	 * its current one until the new one is acknowledged. */
	first = empty(e->replaces_serial);
	c = registry_wlock(r);
	if ((rc = registry_tx(c, Q_BEGIN_IMMEDIATE)) != 0)
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
	/* An orphan is held only by a device that holds nothing: the one
	 * it holds is the one it received. */
	holds = first && (adopt == NULL || (adopt->status == CERT_ACTIVE &&
	    empty(d.current_serial)));
	if ((rc = enrollment_insert(c, e, created)) != 0 ||
	    (rc = cert_insert(c, e, created)) != 0)
		goto out;
	if (adopt && adopt->status != CERT_ACTIVE &&
	    adopt->status != CERT_PENDING_ACK && (rc = registry_cert_status_tx(
	    c, e->serial, adopt->status, adopt->revocation_reason,
	    adopt->revoked_at, NULL)) < 0)
		goto out;
	rc = 0;
	if (holds && (rc = registry_device_hold(c, e->device_id, e->serial,
	    now)) != 0)
		goto out;
	if (tmpl != NULL && (rc = template_apply(c, e, &d, tmpl,
	    holds ? e->serial : d.current_serial, now)) != 0)
		goto out;
	if (holds && d.state == DEVICE_DISABLED)
		log_warnx("registry: device %s was disabled while enrolling; "
		    "certificate %s recorded, device left disabled",
		    e->device_id, e->serial);
out:
	if (intx)
		rc = registry_tx_end(c, rc);
	registry_wunlock(r);
	if (rc == 0)
		log_debug("registry: enrollment %s of %s: certificate %s%s",
		    e->enrollment_id, e->device_id, e->serial, adopt ?
		    " (adopted)" : "");
	else if (rc != SF_EEXIST)
		log_warnx("registry: enrollment %s of %s (certificate %s) not "
		    "recorded: %s", e->enrollment_id, e->device_id, e->serial,
		    sf_strerror(rc));
	devrow_fini(&d);
	return rc;
}

int
registry_enroll_commit(registry *r, const registry_enrollment *e,
    const registry_template *tmpl)
{
	return enroll_record(r, e, tmpl, NULL);
}

int
registry_enroll_adopt(registry *r, const registry_enrollment *e,
    const registry_template *tmpl, const registry_adopt_status *st)
{
	if (st == NULL || st->status < CERT_ACTIVE ||
	    st->status > CERT_EXPIRED)
		return SF_EINVAL;
	return enroll_record(r, e, tmpl, st);
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
	free(c->replaces_serial);
	free(c->renew_note);
	free(c->device_id);
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

/* The statements cert_row reads a certificate's children with. */
struct cert_kids {
	sqlite3 *db;
	sqlite3_stmt *pols;
};

/* A CERT_COLS row and its policies into *elem (a registry_cert). */
static int
cert_row(sqlite3_stmt *st, void *elem, void *arg)
{
	const struct cert_kids *k = arg;
	registry_cert *c = elem;

	c->serial = col_strdup(st, 0);
	c->ca_name = col_strdup(st, 1);
	c->enrollment_id = col_strdup(st, 2);
	c->status = sqlite3_column_int(st, 3);
	c->not_before = sqlite3_column_int64(st, 4);
	c->not_after = sqlite3_column_int64(st, 5);
	c->issued_at = sqlite3_column_int64(st, 6);
	c->revocation_reason = sqlite3_column_int(st, 7);
	c->revoked_at = sqlite3_column_int64(st, 8);
	c->replaces_serial = col_strdup(st, 9);
	c->ack_deadline = sqlite3_column_int64(st, 10);
	c->renew_after = sqlite3_column_int64(st, 11);
	c->renew_before = sqlite3_column_int64(st, 12);
	c->renew_note = col_strdup(st, 13);
	c->device_id = col_strdup(st, 14);
	if (!c->serial || !c->ca_name || !c->enrollment_id ||
	    !c->replaces_serial || !c->renew_note || !c->device_id)
		return SF_ENOMEM;
	bind_text(k->pols, 1, c->serial);
	return registry_collect(k->db, k->pols, &c->policies, NULL,
	    &c->npolicies);
}

/* Certificates by query q (Q_CERT_OF_DEVICE, Q_CERT_ALL: ?1 a device id;
 * Q_CERT_PAGE, Q_CERT_GET: ?1 a serial), at most limit, in one read
 * transaction. */
static int
cert_query(registry *r, int q, const char *arg, size_t limit,
    registry_cert **out, size_t *n)
{
	sqlite3_stmt *st = NULL;
	struct cert_kids k = { NULL, NULL };
	struct dbconn *c;
	void *v = NULL;
	size_t cnt = 0;
	int rc;

	*out = NULL;
	*n = 0;
	c = registry_rlock(r);
	k.db = c->db;
	if ((rc = registry_stmt(c, SQL, q, &st)) != 0 ||
	    (rc = registry_stmt(c, SQL, Q_CERT_POLICIES, &k.pols)) != 0)
		goto out;
	bind_text(st, 1, arg);  /* unused by CERT_ALL */
	sqlite3_bind_int64(st, 2, sql_limit(limit));
	if ((rc = registry_rows_tx(c, st, sizeof **out, cert_row, &k, &v,
	    &cnt, "list certificates")) != 0)
		goto out;
	*out = v;
	*n = cnt;
	v = NULL;  /* transferred */
out:
	registry_certs_free(v, cnt);
	registry_done(st);
	registry_done(k.pols);
	registry_runlock(r);
	return rc;
}

/* Newest first. */
int
registry_cert_list(registry *r, const char *device_id, size_t limit,
    registry_cert **out, size_t *n)
{
	return cert_query(r, empty(device_id) ? Q_CERT_ALL : Q_CERT_OF_DEVICE,
	    device_id, limit, out, n);
}

int
registry_cert_page(registry *r, const char *after, size_t limit,
    registry_cert **out, size_t *n)
{
	return cert_query(r, Q_CERT_PAGE, after, limit, out, n);
}

int
registry_cert_get(registry *r, const char *serial, registry_cert *out)
{
	registry_cert *v = NULL;
	size_t n = 0;
	int rc;

	memset(out, 0, sizeof *out);
	if (empty(serial))
		return SF_EINVAL;
	if ((rc = cert_query(r, Q_CERT_GET, serial, 1, &v, &n)) != 0)
		return rc;
	return registry_one(v, n, sizeof *v, out);
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
	c = registry_wlock(r);
	db = c->db;
	if ((rc = registry_tx(c, Q_BEGIN_IMMEDIATE)) != 0)
		goto out;
	intx = 1;
	if ((rc = registry_stmt(c, SQL, Q_CERT_SET_STATUS, &st)) != 0)
		goto out;
	sqlite3_bind_int(st, 1, status);
	bind_text(st, 2, serial);
	if ((code = sqlite3_step(st)) == SQLITE_ROW) {
		if ((device_id = col_strdup(st, 0)) == NULL)
			rc = SF_ENOMEM;
	} else if (code == SQLITE_DONE)
		rc = SF_ENOTFOUND;
	else
		rc = registry_sql_err(db, code, "set certificate status");
	registry_done(st);
	st = NULL;
	if (rc != 0)
		goto out;
	/* An acknowledged certificate is the one the device holds now. */
	if (status == CERT_ACTIVE)
		rc = registry_device_hold(c, device_id, serial, sf_now());
out:
	registry_done(st);
	if (intx)
		rc = registry_tx_end(c, rc);
	registry_wunlock(r);
	free(device_id);
	return rc;
}

