/*
 * issue.h - device and server certificates: the checks the signer makes on
 * its own before it signs, and the certificate it builds from the profile.
 */
#ifndef SF_ISSUE_H
#define SF_ISSUE_H

#include <stddef.h>
#include <stdint.h>

#include "ca.h"
#include "config.h"
#include "journal.h"
#include "rate.h"

typedef struct {
	const signer_conf *conf;
	ca_store *cas;
	journal *jn;
	rate *rl;
} issuer_ctx;

/* ic->conf as SIGHUP last published it (see signer_conf_now). */
static inline const signer_conf *
issue_conf(const issuer_ctx *ic)
{
	return __atomic_load_n(&ic->conf, __ATOMIC_ACQUIRE);
}

typedef struct {
	const uint8_t *csr;
	size_t csr_len;
	const char *product_line;
	const char *region;
	const char *requester;       /* the caller's free text: at most 64
	                                printable ASCII characters */
	const char *enrollment_id;   /* "" or 1-64 of [A-Za-z0-9._:-] */
	const char *replaces_serial; /* "" or a serial (sf_serial_valid) */
	const char *peer;            /* the transport's view of the caller,
	                                journaled beside requester; NULL: none */
	/* A renewal with a new key: the device's signature with the key of
	 * replaces_serial's certificate over the CSR's DER (keysig.h). */
	const uint8_t *current_key_signature;
	size_t current_key_signature_len;
	/* Just-in-time provisioning: the device's birth certificate (PEM,
	 * leaf first; birth.h), or NULL. */
	const uint8_t *birth_cert;
	size_t birth_cert_len;
} issue_req;

typedef struct {
	char serial[64];
	char *cert_pem;          /* malloc'd */
	const char *chain_pem;   /* the issuing CA's chain (borrowed) */
	const char *ca_name;     /* borrowed */
	char device_id[65];
	char *subject;           /* malloc'd */
	int64_t not_before, not_after;
	uint8_t key_sha256[32];
	int status;              /* CERTIFICATE_STATUS_* */
	int replayed;            /* an earlier certificate of the enrollment */
	int64_t ack_deadline;    /* PENDING_ACK: acknowledge before this */
} issue_result;

/*
 * Issue a device certificate, or return again the live certificate the
 * journal holds for the same device, key and enrollment id (out->replayed;
 * nothing is issued, nothing taken from the per-device rate or the cap).
 * A renewal (r->replaces_serial) is journaled PENDING_ACK with a deadline
 * [limits] ack_timeout_seconds away (out->status, out->ack_deadline); a
 * CSR with a key other than the registered one is a key change, allowed
 * only in a renewal whose current_key_signature verifies (renew.h).
 * Issuance for one device is serialised (devstate.h).
 * With a birth certificate (r->birth_cert) the signer verifies it against
 * the manufacturer CAs registered for r->product_line (birth.h); its CN
 * and key must be the CSR's; a device not in the table is then
 * registered (origin "birth:<manufacturer>"). A device registered so
 * that holds any certificate already gets no first certificate again
 * (SF_EPERM) unless the admin allowed its birth certificate once more;
 * a retry of the same enrollment id still gets its certificate back.
 * Each refusal
 * returns its code with a sentence in why (DESIGN.md's table):
 *   SF_EINVAL / SF_ETOOBIG / SF_EKEYTYPE  malformed CSR, bad signature,
 *                                         bad CN, key not allowed; a bad
 *                                         requester, enrollment id or
 *                                         replaces_serial
 *   SF_ENOTFOUND   device id not in the signer's own table; an unknown
 *                  replaces_serial
 *   SF_EPERM       key, product line or region differs from the table
 *                  (a new key without a verifying current_key_signature,
 *                  or registered to another device); the device is
 *                  disabled or revoked; the enrollment id or
 *                  replaces_serial is another device's
 *   SF_ELIMIT      per-device or global rate cap
 *   SF_ESTATE      no active issuing CA for the product line and region,
 *                  or it expires within [limits] ca_min_remaining_days;
 *                  the device holds its cap of live certificates
 *                  ([limits] device_live_certificates) and this is no
 *                  renewal of an active one; replaces_serial not active,
 *                  or a renewal of it is pending acknowledgement
 *   SF_EUNAVAIL    token unavailable
 */
int issue_device(issuer_ctx *ic, const issue_req *r, issue_result *out,
    char *why, size_t whylen);

/* A TLS server certificate (serverAuth) for our own endpoints. */
typedef struct {
	const uint8_t *csr;
	size_t csr_len;
	const char *ca_name;     /* "" = the first active issuing CA */
	char *const *dns;
	size_t ndns;
	char *const *ips;
	size_t nips;
	const char *common_name;
	int validity_days;
} issue_server_req;

int issue_server(issuer_ctx *ic, const issue_server_req *r,
    issue_result *out, char *why, size_t whylen);

/*
 * A claim certificate (MQTT provisioning, reference 004): one key shared
 * by a batch of devices to reach their own provisioning topics on the
 * broker's claim listener; never a device's certificate (authz issues
 * only for a registered key, whatever the connection). clientAuth,
 * subject O=<organization>, OU=claim, CN=claim-<batch>, from an issuing
 * CA; journaled with profile "claim", no device, and enrollment id
 * ISSUE_CLAIM_PREFIX<batch>, by which a batch is revoked at once
 * (CaAdmin.RevokeClaimBatch).
 */
#define ISSUE_CLAIM_PREFIX "claim:"
/* Days of a claim certificate by default, and at most (always cut to
 * its issuer's own validity). */
#define ISSUE_CLAIM_DAYS 365
#define ISSUE_CLAIM_DAYS_MAX 3650
#define ISSUE_CLAIM_BATCH_MAX 48
typedef struct {
	const uint8_t *csr;      /* PKCS#10: only its key is used */
	size_t csr_len;
	const char *ca_name;     /* "" = the first active issuing CA */
	const char *batch;       /* 1-48 of [A-Za-z0-9._-] */
	int validity_days;       /* 0: ISSUE_CLAIM_DAYS */
} issue_claim_req;

int issue_claim_batch_ok(const char *batch);
int issue_claim(issuer_ctx *ic, const issue_claim_req *r,
    issue_result *out, char *why, size_t whylen);

void issue_result_fini(issue_result *r);

/*
 * Replay into ic->rl every device certificate the journal records issued
 * in the last [limits] device_window_seconds (rate_replay_device), so that
 * a restart hands no device a fresh burst. *n (may be NULL) gets how many.
 * SF_EDB.
 */
int issue_rate_replay(issuer_ctx *ic, size_t *n);

#endif
