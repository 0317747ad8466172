/*
 * renew.h - renewal with acknowledgement, the signer's part. A renewal is
 * Signer.Issue with replaces_serial (issue.h): the new certificate is
 * journaled PENDING_ACK with a deadline. The device's acknowledgement
 * (Signer.Acknowledge, through authz) makes it ACTIVE and supersedes the
 * one it replaces in one journal transaction; without one by the
 * deadline a background task revokes it and the old one stays. So a
 * device always holds a certificate that works, and unacknowledged
 * certificates do not pile up.
 *
 * A renewal may move the device to a new key. The signer does not trust
 * authz to have checked that the device asked for it: the request must
 * carry the device's signature with its current key (the key of the
 * certificate it replaces, as the journal recorded it) over the new CSR,
 * and the new key becomes the device's registered key only at the
 * acknowledgement.
 */
#ifndef SF_RENEW_H
#define SF_RENEW_H

#include <stddef.h>
#include <stdint.h>

#include "csr.h"
#include "issue.h"
#include "signer.h"

/* RFC 5280 CRLReason of a renewal revoked for want of an acknowledgement:
 * cessationOfOperation (the certificate was never put to use). */
#define RENEW_EXPIRED_REASON 5

/*
 * The CSR ci of request r carries a key other than registered, the
 * device's registered key: may the device move to it? Only in a renewal
 * (r->replaces_serial: a certificate of this device whose key is the
 * registered one) whose r->current_key_signature verifies over the CSR's
 * DER with that certificate's key (keysig.h), and only to a key no other
 * device has. 0, or SF_EPERM (SF_ENOTFOUND for an unknown
 * replaces_serial, SF_EINVAL for a CSR whose DER cannot be checked) with
 * a sentence in why.
 */
int renew_key_proof(issuer_ctx *ic, const issue_req *r, const csr_info *ci,
    const uint8_t registered[32], char *why, size_t whylen);

/*
 * The device acknowledged its renewed certificate serial. Under the
 * device's issuance lock: serial, a PENDING_ACK certificate of device_id
 * whose deadline has not passed, becomes ACTIVE; the certificate it
 * replaces becomes SUPERSEDED (reason superseded, revoked now); a new key
 * becomes the device's registered key; all in one journal transaction,
 * durable before the return, then a kick to the CRL and OCSP tasks. An
 * ACTIVE certificate (acknowledged already) is returned as it is. 0 with
 * *out the certificate as it is now (journal_cert_row_fini), or:
 *   SF_EINVAL     a malformed device id or serial
 *   SF_ENOTFOUND  no certificate with that serial
 *   SF_EPERM      the certificate is another device's; the device is
 *                 disabled or revoked; its new key is another device's
 *   SF_ESTATE     the certificate is revoked, superseded or expired, or
 *                 its deadline has passed
 *   SF_EDB
 * with a sentence in why.
 */
int renew_acknowledge(signer_ctx *ctx, const char *device_id,
    const char *serial, journal_cert_row *out, char *why, size_t whylen);

/*
 * The background task (maint.h; arg: the signer_ctx): revoke every
 * PENDING_ACK certificate whose deadline is at or before now, reason
 * RENEW_EXPIRED_REASON, revoked at its deadline; the certificate it would
 * have replaced stays as it is. Kicks the CRL and OCSP tasks when it
 * revoked any.
 */
int renew_task(void *arg, int64_t now);
/* The task's period for a configuration: an eighth of the
 * acknowledgement timeout, between 1 and 60 seconds. */
int renew_task_period(const signer_conf *conf);

#endif
