/*
 * devstate.c - the signer's own view of a device at issuance (see
 * devstate.h): the per-device locks, and the checks of its state, of a
 * replayed enrollment id, of a renewal's replaces_serial and of the cap
 * on live certificates, each made with the journal, never with what
 * authz says.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "devstate.h"
#include "err.h"
#include "log.h"
#include "pbenum.h"
#include "profile.h"
#include "util.h"

#define LOCKS 64

static pthread_mutex_t locks[LOCKS];
static pthread_once_t locks_once = PTHREAD_ONCE_INIT;

static void
locks_init(void)
{
	for (int i = 0; i < LOCKS; i++)
		pthread_mutex_init(&locks[i], NULL);
}

static pthread_mutex_t *
stripe(const char *id)
{
	uint32_t h = 2166136261u;

	pthread_once(&locks_once, locks_init);
	while (*id)
		h = (h ^ (unsigned char)*id++) * 16777619u;
	return &locks[h % LOCKS];
}

void
devstate_lock(const char *device_id)
{
	pthread_mutex_lock(stripe(device_id));
}

void
devstate_unlock(const char *device_id)
{
	pthread_mutex_unlock(stripe(device_id));
}

static const char *
status_name(int status)
{
	switch (status) {
	case CERT_ACTIVE: return "active";
	case CERT_PENDING_ACK: return "pending acknowledgement";
	case CERT_SUPERSEDED: return "superseded";
	case CERT_REVOKED: return "revoked";
	case CERT_EXPIRED: return "expired";
	}
	return "in an unknown state";
}

static int
live(const journal_cert_row *c, int64_t now)
{
	return (c->status == CERT_ACTIVE || c->status == CERT_PENDING_ACK) &&
	    c->not_after > now;
}

/* The device's state, as the journal read it (dv), allows issuance. */
static int
state_check(const journal_device_view *dv, const char *device_id,
    char *why, size_t whylen)
{
	int rc = 0, state = dv->state;

	if (state == DEVICE_DISABLED || state == DEVICE_REVOKED) {
		log_warnx("issue: device %s is %s at the signer (authz should"
		    " have refused it)", device_id, state == DEVICE_REVOKED ?
		    "revoked" : "disabled");
		sf_why(why, whylen, "device %s is %s", device_id,
		    state == DEVICE_REVOKED ? "revoked" : "disabled");
		rc = SF_EPERM;
	}
	return rc;
}

/* The earlier certificate c returned again, as issue_device returns one. */
static int
replay_fill(issuer_ctx *ic, const journal_cert_row *c, issue_result *out)
{
	const unsigned char *p = c->der;
	X509 *x = d2i_X509(NULL, &p, (long)c->der_len);
	ca **all = NULL;
	size_t n = ca_list(ic->cas, &all);
	int rc = SF_ENOMEM;

	for (size_t i = 0; i < n; i++)
		/* The CA issued c: it has its certificate and chain. */
		if (all[i]->rec.id == c->ca_id &&
		    ca_cert(ic->cas, all[i]) != NULL) {
			out->chain_pem = all[i]->chain_pem;
			out->ca_name = all[i]->rec.name;
		}
	free(all);
	sf_strlcpy(out->serial, c->serial, sizeof out->serial);
	sf_strlcpy(out->device_id, c->device_id, sizeof out->device_id);
	memcpy(out->key_sha256, c->key_sha256, 32);
	out->not_before = c->not_before;
	out->not_after = c->not_after;
	out->status = c->status;
	out->ack_deadline = c->status == CERT_PENDING_ACK ? c->ack_deadline : 0;
	out->replayed = 1;
	if (x == NULL || out->chain_pem == NULL)
		rc = SF_EINTERNAL;
	else if ((out->cert_pem = profile_cert_pem(x)) != NULL &&
	    (out->subject = strdup(c->subject)) != NULL)
		rc = 0;
	X509_free(x);
	return rc;
}

/*
 * A certificate recorded under r's enrollment id: DEVSTATE_REPLAYED with
 * it in *out when it is this device's and key's and still live,
 * DEVSTATE_ISSUE when there is none, else a refusal.
 */
static int
replay_check(issuer_ctx *ic, const issue_req *r, const char *device_id,
    const uint8_t key_sha256[32], const journal_device_view *dv,
    issue_result *out, char *why, size_t whylen)
{
	journal_cert_row *v = NULL;
	size_t n = 0;
	int rc, found = -1;

	/* A new enrollment id (dv read it with the device): nothing more to
	 * read. */
	if (*r->enrollment_id == '\0' || !dv->enrollment_seen)
		return DEVSTATE_ISSUE;
	if ((rc = journal_cert_by_enrollment(ic->jn, r->enrollment_id, 8, &v,
	    &n)) != 0) {
		sf_why(why, whylen, "enrollment lookup failed");
		return rc;
	}
	rc = DEVSTATE_ISSUE;
	for (size_t i = 0; i < n && rc == DEVSTATE_ISSUE; i++) {
		if (strcmp(v[i].device_id, device_id) != 0 ||
		    memcmp(v[i].key_sha256, key_sha256, 32) != 0) {
			log_warnx("issue: enrollment id %s of device %s"
			    " (certificate %s) asked for again for %s",
			    r->enrollment_id, v[i].device_id, v[i].serial,
			    device_id);
			sf_why(why, whylen, "enrollment id %s belongs to"
			    " another device or key", r->enrollment_id);
			rc = SF_EPERM;
		} else if (found < 0 && live(&v[i], sf_now()))
			found = (int)i;
	}
	if (rc == DEVSTATE_ISSUE && found >= 0) {
		if ((rc = replay_fill(ic, &v[found], out)) == 0) {
			rc = DEVSTATE_REPLAYED;
			log_info("issue: device %s certificate %s returned again"
			    " for enrollment %s", device_id, out->serial,
			    r->enrollment_id);
		} else
			sf_why(why, whylen, "the earlier certificate could"
			    " not be read back");
	} else if (rc == DEVSTATE_ISSUE && n > 0) {
		sf_why(why, whylen, "enrollment id %s has had certificate %s,"
		    " now %s: a new enrollment needs a new id",
		    r->enrollment_id, v[0].serial, v[0].not_after <= sf_now() &&
		    v[0].status != CERT_REVOKED ? "expired" :
		    status_name(v[0].status));
		rc = SF_ESTATE;
	}
	journal_cert_rows_free(v, n);
	return rc;
}

/*
 * r renews an ACTIVE, unexpired certificate of the device that no live
 * certificate replaces yet (one pending renewal per certificate: its
 * retry under the same enrollment id is a replay, found before): 0 with
 * *exempt set (it may pass the cap), else a refusal. Renewals are rare:
 * the device's live certificates are read only for them.
 */
static int
renewal_check(issuer_ctx *ic, const issue_req *r, const char *device_id,
    int *exempt, char *why, size_t whylen)
{
	journal_cert_row c, *lv = NULL;
	const char *s = r->replaces_serial;
	size_t n = 0;
	int rc;

	*exempt = 0;
	if (*s == '\0')
		return 0;
	rc = journal_cert_get(ic->jn, s, 0, &c);
	if (rc == SF_ENOTFOUND)
		sf_why(why, whylen, "replaces_serial %s: no certificate with"
		    " that serial", s);
	if (rc != 0)
		return rc;
	if (strcmp(c.device_id, device_id) != 0) {
		log_warnx("issue: renewal for device %s names certificate %s"
		    " of %s", device_id, s, *c.device_id ? c.device_id :
		    "no device");
		sf_why(why, whylen, "replaces_serial %s is not a certificate"
		    " of device %s", s, device_id);
		rc = SF_EPERM;
	} else if (c.status != CERT_ACTIVE) {
		sf_why(why, whylen, "replaces_serial %s is %s, not active", s,
		    status_name(c.status));
		rc = SF_ESTATE;
	} else if (c.not_after <= sf_now()) {
		sf_why(why, whylen, "replaces_serial %s has expired", s);
		rc = SF_ESTATE;
	}
	journal_cert_row_fini(&c);
	if (rc == 0 && (rc = journal_cert_live(ic->jn, device_id, sf_now(),
	    &lv, &n)) != 0)
		sf_why(why, whylen, "certificate lookup failed");
	/* One past its deadline is about to be revoked (renew_task). */
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (strcmp(lv[i].replaces_serial, s) == 0 &&
		    !(lv[i].status == CERT_PENDING_ACK &&
		    lv[i].ack_deadline <= sf_now())) {
			sf_why(why, whylen, "certificate %s has a renewal"
			    " pending acknowledgement already (%s, until %lld):"
			    " acknowledge it, or retry with its enrollment id",
			    s, lv[i].serial, (long long)lv[i].ack_deadline);
			rc = SF_ESTATE;
		}
	*exempt = rc == 0;
	journal_cert_rows_free(lv, n);
	return rc;
}

int
devstate_admit(issuer_ctx *ic, const issue_req *r, const char *device_id,
    const uint8_t key_sha256[32], const journal_device_view *dv,
    issue_result *out, char *why, size_t whylen)
{
	uint32_t live = dv->live;
	int rc, exempt = 0, cap = issue_conf(ic)->device_live;

	if ((rc = state_check(dv, device_id, why, whylen)) != 0 ||
	    (rc = replay_check(ic, r, device_id, key_sha256, dv, out, why,
	    whylen)) != DEVSTATE_ISSUE ||
	    (rc = renewal_check(ic, r, device_id, &exempt, why, whylen)) != 0)
		return rc;
	if (live >= (uint32_t)cap && !exempt) {
		log_warnx("issue: device %s holds %u live certificates (cap"
		    " %d)", device_id, live, cap);
		sf_why(why, whylen, "device %s holds %u live certificates, the"
		    " most it may hold (%d): revoke one, or renew the current"
		    " one naming it in replaces_serial", device_id, live, cap);
		return SF_ESTATE;
	}
	return DEVSTATE_ISSUE;
}
