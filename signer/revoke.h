/*
 * revoke.h - revoking certificates: the journal first (durable before the
 * reply), then a kick to the background tasks that regenerate CRLs and
 * refresh OCSP responses (maint.h), so that every change reaches the
 * published status on its own.
 */
#ifndef SF_REVOKE_H
#define SF_REVOKE_H

#include <stddef.h>
#include <stdint.h>

#include "signer.h"

/*
 * 1 if reason (an RFC 5280 CRLReason, as common.proto numbers them) may be
 * given to a revocation here: unspecified, keyCompromise, cACompromise,
 * affiliationChanged, superseded, cessationOfOperation,
 * privilegeWithdrawn, aACompromise. Not certificateHold (a revocation here
 * is permanent), not removeFromCRL (for delta CRLs only), not 7 (unused).
 */
int revoke_reason_ok(int reason);
/* "keyCompromise" etc. (RFC 5280 spelling); "unknown" otherwise. */
const char *revoke_reason_name(int reason);

/*
 * Revoke the certificate serial of CA ca_id (0: whichever CA issued it)
 * for reason, now. 0 once the journal has it (*row, if not NULL, is the
 * certificate after the change: journal_cert_row_fini it); a certificate
 * already revoked for the same reason is 0 too, with *already = 1.
 * SF_EINVAL (reason), SF_ENOTFOUND (no such serial), SF_ESTATE (already
 * revoked for another reason), SF_EDB. why says which.
 */
int revoke_cert(signer_ctx *ctx, int64_t ca_id, const char *serial,
    int reason, journal_cert_row *row, int *already, char *why,
    size_t whylen);

#endif
