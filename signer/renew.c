/*
 * renew.c - renewal with acknowledgement, the signer's part (see renew.h):
 * the proof that allows a renewal to move a device to a new key, the
 * acknowledgement that makes a renewed certificate the device's, and the
 * background task that revokes renewals nobody acknowledged in time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devrec.h"
#include "devstate.h"
#include "err.h"
#include "keysig.h"
#include "log.h"
#include "pbenum.h"
#include "pubkey.h"
#include "renew.h"
#include "revoke.h"
#include "util.h"

#define EXPIRE_BATCH 1000

/* Log the refused key change of device id that why explains (authz
 * should have refused it); rc. */
static int
key_refused(const char *id, int rc, const char *why)
{
	log_warnx("issue: device %s: key change refused: %s (authz should have"
	    " refused it)", id, why);
	return rc;
}

int
renew_key_proof(issuer_ctx *ic, const issue_req *r, const csr_info *ci,
    const uint8_t registered[32], char *why, size_t whylen)
{
	journal_cert_row c;
	uint8_t *der = NULL;
	size_t len = 0;
	char other[65], hex[65];
	int rc;

	memset(&c, 0, sizeof c);
	if (*r->replaces_serial == '\0') {
		pubkey_fp_hex(ci->key.sha256, hex);
		log_warnx("issue: device %s presented key %s, not its"
		    " registered key (authz should have refused it)", ci->cn,
		    hex);
		sf_why(why, whylen, "the CSR key is not the key registered"
		    " for device %s", ci->cn);
		return SF_EPERM;
	}
	if (r->current_key_signature_len == 0) {
		sf_why(why, whylen, "the CSR key is not the key registered for"
		    " device %s, and no current_key_signature authorizes the"
		    " new key", ci->cn);
		return key_refused(ci->cn, SF_EPERM, why);
	}
	rc = journal_device_by_key(ic->jn, ci->key.sha256, other);
	if (rc == 0) {
		sf_why(why, whylen, "the new key is registered to device %s",
		    other);
		return key_refused(ci->cn, SF_EPERM, why);
	}
	if (rc != SF_ENOTFOUND) {
		sf_why(why, whylen, "device lookup failed");
		return rc;
	}
	rc = journal_cert_get(ic->jn, r->replaces_serial, 0, &c);
	if (rc == SF_ENOTFOUND)
		sf_why(why, whylen, "replaces_serial %s: no certificate with"
		    " that serial", r->replaces_serial);
	else if (rc != 0)
		sf_why(why, whylen, "certificate lookup failed");
	else if (strcmp(c.device_id, ci->cn) != 0 ||
	    memcmp(c.key_sha256, registered, 32) != 0) {
		sf_why(why, whylen, "replaces_serial %s is not a certificate"
		    " of device %s with its registered key", r->replaces_serial,
		    ci->cn);
		rc = key_refused(ci->cn, SF_EPERM, why);
	} else if ((rc = keysig_csr_der(ci, &der, &len, why, whylen)) == 0 &&
	    (rc = keysig_verify_cert(c.der, c.der_len, der, len,
	    r->current_key_signature, r->current_key_signature_len, NULL,
	    0)) != 0) {
		/* Malformed or wrong: either way not the current key's. */
		sf_why(why, whylen, "current_key_signature does not verify"
		    " with the key of certificate %s", r->replaces_serial);
		rc = key_refused(ci->cn, SF_EPERM, why);
	}
	if (rc == 0)
		log_info("issue: device %s: key change authorized by the key of"
		    " certificate %s", ci->cn, r->replaces_serial);
	free(der);
	journal_cert_row_fini(&c);
	return rc;
}

static const char *
status_word(int status)
{
	switch (status) {
	case CERT_SUPERSEDED: return "superseded";
	case CERT_REVOKED: return "revoked";
	case CERT_EXPIRED: return "expired";
	}
	return "not pending acknowledgement";
}

/* May c, a certificate of device_id, be acknowledged now? 0 (*done: it
 * is ACTIVE already), else a refusal. */
static int
ack_check(signer_ctx *ctx, const journal_cert_row *c, const char *device_id,
    int64_t now, int *done, char *why, size_t whylen)
{
	journal_device_row d;
	int rc;

	*done = 0;
	if (strcmp(c->device_id, device_id) != 0) {
		log_warnx("acknowledge: certificate %s is not device %s's"
		    " (authz should have refused it)", c->serial, device_id);
		sf_why(why, whylen, "certificate %s is not a certificate of"
		    " device %s", c->serial, device_id);
		return SF_EPERM;
	}
	if (c->status == CERT_ACTIVE && c->not_after > now) {
		*done = 1;
		return 0;
	}
	if (c->status != CERT_PENDING_ACK || c->not_after <= now) {
		sf_why(why, whylen, "certificate %s is %s", c->serial,
		    c->not_after <= now ? "expired" : status_word(c->status));
		return SF_ESTATE;
	}
	if (c->ack_deadline <= now) {
		sf_why(why, whylen, "the acknowledgement deadline of"
		    " certificate %s has passed: it is revoked, and the"
		    " certificate it would have replaced stays; renew again",
		    c->serial);
		maint_kick(ctx->mt);
		return SF_ESTATE;
	}
	if ((rc = journal_device_info(ctx->jn, device_id, now, &d)) != 0) {
		sf_why(why, whylen, "device lookup failed");
		return rc;
	}
	if (d.state == DEVICE_DISABLED || d.state == DEVICE_REVOKED) {
		sf_why(why, whylen, "device %s is %s", device_id,
		    d.state == DEVICE_REVOKED ? "revoked" : "disabled");
		rc = SF_EPERM;
	}
	journal_device_row_fini(&d);
	return rc;
}

int
renew_acknowledge(signer_ctx *ctx, const char *device_id, const char *serial,
    journal_cert_row *out, char *why, size_t whylen)
{
	journal_cert_row c;
	uint8_t reg[32];
	char *pl = NULL, *rg = NULL;
	int64_t now = sf_now();
	int rc, done = 0, newkey;

	memset(out, 0, sizeof *out);
	memset(&c, 0, sizeof c);
	if (!device_id_valid(device_id, NULL, 0) || !sf_serial_valid(serial)) {
		sf_why(why, whylen, "device_id and serial (upper-case hex) are"
		    " required");
		return SF_EINVAL;
	}
	devstate_lock(device_id);
	rc = journal_cert_get(ctx->jn, serial, 0, &c);
	if (rc == SF_ENOTFOUND)
		sf_why(why, whylen, "no certificate with serial %s", serial);
	else if (rc != 0)
		sf_why(why, whylen, "certificate lookup failed");
	if (rc != 0 || (rc = ack_check(ctx, &c, device_id, now, &done, why,
	    whylen)) != 0 || done)
		goto out;
	if ((rc = journal_device_get(ctx->jn, device_id, reg, &pl,
	    &rg)) != 0) {
		sf_why(why, whylen, "device lookup failed");
		goto out;
	}
	newkey = memcmp(reg, c.key_sha256, 32) != 0;
	rc = journal_cert_acknowledge(ctx->jn, c.ca_id, serial, device_id,
	    c.replaces_serial, newkey ? c.key_sha256 : NULL, now);
	if (rc == SF_ESTATE)
		sf_why(why, whylen, "certificate %s is no longer pending"
		    " acknowledgement (its deadline passed meanwhile)", serial);
	else if (rc == SF_ECONFLICT)
		sf_why(why, whylen, "the new key of certificate %s is"
		    " registered to another device", serial);
	else if (rc != 0)
		sf_why(why, whylen, "the journal could not record the"
		    " acknowledgement");
	if (rc != 0)
		goto out;
	log_info("acknowledge: device %s certificate %s active%s%s%s",
	    device_id, serial, *c.replaces_serial ? "; certificate " : "",
	    c.replaces_serial, *c.replaces_serial ? " superseded" : "");
	if (newkey)
		log_info("acknowledge: device %s: its new key is registered",
		    device_id);
	maint_kick(ctx->mt);
out:
	devstate_unlock(device_id);
	if (rc == 0 && (rc = journal_cert_get(ctx->jn, serial, c.ca_id,
	    out)) != 0)
		sf_why(why, whylen, "the certificate could not be read back");
	free(pl);
	free(rg);
	journal_cert_row_fini(&c);
	return rc;
}

int
renew_task(void *arg, int64_t now)
{
	signer_ctx *ctx = arg;
	journal_revoked *v = NULL;
	size_t n = 0, total = 0;
	int rc;

	do {
		if ((rc = journal_cert_expire_pending(ctx->jn, now,
		    RENEW_EXPIRED_REASON, EXPIRE_BATCH, &v, &n)) != 0)
			break;
		for (size_t i = 0; i < n; i++)
			log_info("renewal of device %s: certificate %s was not"
			    " acknowledged in time: revoked (%s)", v[i].device_id,
			    v[i].serial, revoke_reason_name(
			    RENEW_EXPIRED_REASON));
		total += n;
		free(v);
		v = NULL;
	} while (n == EXPIRE_BATCH);
	if (total > 0)
		maint_kick(ctx->mt);
	return rc;
}

int
renew_task_period(const signer_conf *conf)
{
	int p = conf->ack_timeout / 8;

	return p < 1 ? 1 : p > 60 ? 60 : p;
}
