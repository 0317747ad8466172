/*
 * renewal.h - renewal with acknowledgement, authz's part: a device that
 * proves it holds its current certificate gets a new one (same key, or a
 * new key it proves it may move to), PENDING_ACK until it acknowledges
 * it; then the one it replaces is superseded. Unacknowledged renewals are
 * revoked after the signer's deadline (by the signer, and by authz's own
 * sweep here), the old certificate staying the device's: no device is
 * ever left without a working certificate.
 *
 * The signer checks everything again on its own (signer/renew.h): authz
 * deciding wrongly cannot move a device to a key of authz's choosing.
 */
#ifndef SF_RENEWAL_H
#define SF_RENEWAL_H

#include <stddef.h>
#include <stdint.h>

#include "authz.h"

/* RFC 5280 CRLReason of a renewal revoked for want of an acknowledgement,
 * as the signer records it: cessationOfOperation. */
#define RENEWAL_EXPIRED_REASON 5

typedef struct {
	const uint8_t *csr;
	size_t csr_len;
	const char *idempotency_key;     /* "" = none */
	const char *current_serial;      /* "" = the TLS client certificate's */
	const uint8_t *current_key_signature;   /* a new key: keysig.h */
	size_t current_key_signature_len;
	const char *peer_cert;           /* the verified TLS client
	                                    certificate (PEM); NULL: none */
} renewal_req;

/*
 * Provisioning.Renew. The device proves it holds its current certificate:
 * it is the TLS client certificate (CN = the CSR's device id), or it is
 * named by current_serial and the CSR is signed by the device's
 * registered key. That certificate must be the device's and ACTIVE. A CSR
 * with another key needs current_key_signature: the registered key's
 * signature over the CSR's DER; the new key must be no other device's.
 * A retry (same idempotency key, or the same CSR within the window) gets
 * the same renewal. 0 with *out the enrollment (PENDING_ACK;
 * registry_enrollment_fini) and *replayed, or an SF_E* code with a
 * sentence in why: SF_EINVAL (request, CSR, no current certificate
 * named, an idempotency key used for something else), SF_ENOTFOUND
 * (device or certificate), SF_EPERM (another device's certificate, a
 * disabled device, a new key without a verifying signature or of another
 * device), SF_ESTATE (the certificate is not active, or has a pending
 * renewal), SF_ELIMIT, or the signer's refusal.
 */
int renewal_renew(authz_ctx *ctx, const renewal_req *r,
    registry_enrollment *out, int *replayed, char *why, size_t whylen);

typedef struct {
	const char *enrollment_id;
	const char *serial;              /* "" or the enrollment's */
	const uint8_t *key_signature;    /* keysig.h, over enrollment_id */
	size_t key_signature_len;
	const char *peer_cert;           /* TLS client certificate; NULL */
	int local;                       /* on the admin socket */
} renewal_ack_req;

/*
 * Provisioning.Acknowledge. The device proves it holds the new
 * certificate's key: the call comes over TLS with that certificate, or
 * on the admin socket, or key_signature verifies with its key over the
 * enrollment id. Then the signer (Signer.Acknowledge), then the registry
 * (registry_renew_ack): the new certificate ACTIVE and the device's, the
 * old one SUPERSEDED, a new key registered. Acknowledging again succeeds.
 * 0 with *superseded (malloc'd; the serial replaced), or SF_EINVAL,
 * SF_ENOTFOUND, SF_EPERM (no proof), SF_ESTATE (no renewal; its deadline
 * passed), or the signer's refusal, with why.
 */
int renewal_acknowledge(authz_ctx *ctx, const renewal_ack_req *r,
    char **superseded, char *why, size_t whylen);

/*
 * A Provisioning call over TLS whose client certificate is a renewed
 * certificate pending acknowledgement is its first use: acknowledge it.
 * Nothing happens for any other call; a failure is logged only (the call
 * goes on).
 */
void renewal_first_use(authz_ctx *ctx, rpc_call *call);
/* The same for a verified TLS client certificate (PEM) met elsewhere (the
 * HTTPS front doors); NULL: nothing. */
void renewal_first_use_pem(authz_ctx *ctx, const char *pem);

/*
 * authz's sweep: renewals whose deadline has passed become FAILED, their
 * certificates REVOKED (registry_renew_sweep), and OCSP responses cached
 * for them are dropped. Returns the number swept, or an SF_E* code.
 */
int renewal_sweep(authz_ctx *ctx, int64_t now);

/* A thread running renewal_sweep every period_s seconds. */
typedef struct renewal_sweeper renewal_sweeper;
int renewal_sweeper_start(authz_ctx *ctx, int period_s, renewal_sweeper **out);
void renewal_sweeper_stop(renewal_sweeper *s);   /* NULL-safe */

#endif
