/*
 * revoke.c - revoking certificates (see revoke.h).
 */
#include <string.h>

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
	if (!revoke_reason_ok(reason)) {
		sf_why(why, whylen, "reason %d (%s) is not one a certificate"
		    " can be revoked for here", reason,
		    revoke_reason_name(reason));
		return SF_EINVAL;
	}
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
