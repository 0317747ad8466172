/*
 * revoke.c - revoking certificates (see revoke.h): one by serial, a batch
 * in one transaction, and all of a device's.
 */
#include <stdlib.h>
#include <string.h>

#include "devstate.h"
#include "err.h"
#include "log.h"
#include "pbenum.h"
#include "revoke.h"
#include "util.h"

int
revoke_reason_ok(int reason)
{
	switch (reason) {
	case 0: case 1: case 2: case 3: case 4: case 5: case 9: case 10:
		return 1;
	}
	return 0;
}

const char *
revoke_reason_name(int reason)
{
	static const char *const names[] = { "unspecified", "keyCompromise",
	    "cACompromise", "affiliationChanged", "superseded",
	    "cessationOfOperation", "certificateHold", "unknown",
	    "removeFromCRL", "privilegeWithdrawn", "aACompromise" };

	if (reason < 0 || reason > 10)
		return "unknown";
	return names[reason];
}

static int
reason_check(int reason, char *why, size_t whylen)
{
	if (revoke_reason_ok(reason))
		return 0;
	sf_why(why, whylen, "reason %d (%s) is not one a certificate can be"
	    " revoked for here", reason, revoke_reason_name(reason));
	return SF_EINVAL;
}

int
revoke_cert(signer_ctx *ctx, int64_t ca_id, const char *serial,
    int reason, journal_cert_row *row, int *already, char *why,
    size_t whylen)
{
	journal_cert_row cur;
	int rc;

	*already = 0;
	if (row)
		memset(row, 0, sizeof *row);
	if ((rc = reason_check(reason, why, whylen)) != 0)
		return rc;
	memset(&cur, 0, sizeof cur);
	if ((rc = journal_cert_get(ctx->jn, serial, ca_id, &cur)) != 0) {
		if (rc == SF_ENOTFOUND)
			sf_why(why, whylen, "no certificate with serial %s",
			    serial);
		return rc;
	}
	if (cur.status == CERT_REVOKED) {
		if (cur.revocation_reason != reason) {
			sf_why(why, whylen, "certificate %s was revoked"
			    " already, for %s", serial,
			    revoke_reason_name(cur.revocation_reason));
			journal_cert_row_fini(&cur);
			return SF_ESTATE;
		}
		*already = 1;
	} else {
		rc = journal_cert_revoke(ctx->jn, cur.ca_id, cur.serial,
		    reason, sf_now());
		if (rc == SF_ESTATE) {
			/* Revoked by another call since we looked. */
			journal_cert_row_fini(&cur);
			return revoke_cert(ctx, ca_id, serial, reason, row,
			    already, why, whylen);
		}
		if (rc != 0) {
			sf_why(why, whylen, "the journal could not record the"
			    " revocation");
			journal_cert_row_fini(&cur);
			return rc;
		}
		log_info("certificate %s (CA %s, device %s) revoked: %s",
		    cur.serial, cur.ca_name, *cur.device_id ? cur.device_id :
		    "-", revoke_reason_name(reason));
		maint_kick(ctx->mt);
	}
	journal_cert_row_fini(&cur);
	if (row && (rc = journal_cert_get(ctx->jn, serial, ca_id, row)) != 0)
		sf_why(why, whylen, "the revoked certificate could not be read"
		    " back");
	return rc;
}

int
revoke_batch(signer_ctx *ctx, const journal_cert_row *rows, size_t n,
    int reason, int64_t when, const journal_device_state *dev,
    uint8_t *changed, char *why, size_t whylen)
{
	journal_cert_ref *refs;
	int rc;

	if ((rc = reason_check(reason, why, whylen)) != 0)
		return rc;
	if ((refs = calloc(n ? n : 1, sizeof *refs)) == NULL)
		return SF_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		refs[i].ca_id = rows[i].ca_id;
		refs[i].serial = rows[i].serial;
	}
	rc = journal_cert_revoke_refs(ctx->jn, refs, n, reason, when, dev,
	    changed);
	free(refs);
	if (rc == SF_ENOTFOUND)
		sf_why(why, whylen, "device %s is not registered",
		    dev ? dev->device_id : "");
	else if (rc != 0)
		sf_why(why, whylen, "the journal could not record the"
		    " revocations");
	else if (n > 0)
		maint_kick(ctx->mt);
	return rc;
}

int
revoke_device(signer_ctx *ctx, const char *device_id, int reason, int keep,
    journal_cert_row **out, size_t *n, int64_t *when, char *why,
    size_t whylen)
{
	journal_device_state dev = { device_id, DEVICE_REVOKED, NULL };
	journal_device_row d;
	journal_cert_row *lv = NULL;
	uint8_t *changed = NULL;
	size_t nl = 0, k = 0;
	int rc;

	*out = NULL;
	*n = 0;
	*when = sf_now();
	memset(&d, 0, sizeof d);
	if ((rc = reason_check(reason, why, whylen)) != 0)
		return rc;
	dev.reason = revoke_reason_name(reason);
	devstate_lock(device_id);
	rc = journal_device_info(ctx->jn, device_id, *when, &d);
	if (rc == SF_ENOTFOUND)
		sf_why(why, whylen, "device %s is not registered", device_id);
	if (rc != 0 || (rc = journal_cert_live(ctx->jn, device_id, *when, &lv,
	    &nl)) != 0)
		goto out;
	if ((changed = calloc(nl ? nl : 1, 1)) == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	/* A device revoked already keeps its first reason. */
	if ((rc = revoke_batch(ctx, lv, nl, reason, *when, keep ||
	    d.state == DEVICE_REVOKED ? NULL : &dev, changed, why,
	    whylen)) != 0)
		goto out;
	for (size_t i = 0; i < nl; i++) {
		if (!changed[i])
			continue;
		lv[i].status = CERT_REVOKED;
		lv[i].revocation_reason = reason;
		lv[i].revoked_at = *when;
		if (k != i) {
			journal_cert_row_fini(&lv[k]);
			lv[k] = lv[i];
			memset(&lv[i], 0, sizeof lv[i]);
		}
		k++;
	}
	for (size_t i = k; i < nl; i++)
		journal_cert_row_fini(&lv[i]);
	log_info("device %s: %zu certificates revoked (%s)%s", device_id, k,
	    revoke_reason_name(reason), keep ? "; the device may enroll"
	    " again" : d.state == DEVICE_REVOKED ? "; the device was revoked"
	    " already" : "; the device is revoked");
	*out = lv;
	*n = k;
	lv = NULL;  /* transferred */
out:
	devstate_unlock(device_id);
	journal_cert_rows_free(lv, nl);
	journal_device_row_fini(&d);
	free(changed);
	return rc;
}
