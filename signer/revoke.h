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

/*
 * Revoke the n certificates rows (their ca_id and serial) for reason at
 * time when, in one journal transaction, durable on return; with dev,
 * that device's state changes in the same transaction. Then a kick to the
 * background tasks. changed[i] (if not NULL) is 1 for each certificate
 * this call revoked (0: it was revoked already and keeps its first
 * revocation). SF_EINVAL (reason), SF_ENOTFOUND (dev names no device),
 * SF_EDB: nothing written then; why says which.
 */
int revoke_batch(signer_ctx *ctx, const journal_cert_row *rows, size_t n,
    int reason, int64_t when, const journal_device_state *dev,
    uint8_t *changed, char *why, size_t whylen);

/*
 * Revoke every live certificate of device_id (unexpired, ACTIVE or
 * PENDING_ACK) for reason and, unless keep, the device itself (state
 * REVOKED: never issued to again), in one journal transaction under the
 * device's issuance lock, so that no certificate is issued for it
 * meanwhile. 0 with *out the certificates this call revoked, as they are
 * now (n of them: journal_cert_rows_free), and *when the time recorded.
 * SF_EINVAL (reason), SF_ENOTFOUND (device), SF_EDB; why says which.
 */
int revoke_device(signer_ctx *ctx, const char *device_id, int reason,
    int keep, journal_cert_row **out, size_t *n, int64_t *when, char *why,
    size_t whylen);

#endif
