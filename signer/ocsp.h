/*
 * ocsp.h - the signer's OCSP responder (RFC 6960), with pre-signed
 * responses as RFC 5019 and large CAs serve them.
 *
 * Every unexpired certificate in the journal has a response signed ahead
 * of time (one SingleResponse, CertID hashed with SHA-1, thisUpdate and
 * nextUpdate from [ocsp]) stored in the journal's ocsp table. A background
 * task (ocsp_refresh, registered by ocsp_maint_add) signs them for new
 * certificates, re-signs them after a revocation (the revoke path kicks
 * it) and once they are refresh_seconds old, and deletes those of expired
 * certificates. A request is answered by looking its response up; only
 * what has no usable response yet is signed on the spot:
 *   - a certificate the task has not reached yet, a CertID hashed with
 *     SHA-256/384/512 asked for the first time, a certificate revoked since
 *     its response was made: signed and stored (so bounded by the journal,
 *     and refreshed by the task from then on);
 *   - a serial the CA never issued (status unknown), a request about
 *     several certificates, an expired certificate: signed, not stored, at
 *     most [ocsp] on_demand_per_second a second (beyond: tryLater), so
 *     that random serials cannot keep the token busy.
 * Nonces are not echoed (RFC 5019 2.2.1: a pre-signed response cannot
 * carry one), so the same request gets the same bytes until the response
 * is refreshed.
 *
 * Who signs: the CA's own key in the token ([ocsp] responder = ca, the
 * responder id is the CA's name), or ([ocsp] responder = delegated) a
 * responder certificate per CA (id-kp-OCSPSigning, id-pkix-ocsp-nocheck)
 * whose key is generated in the token like a CA key and whose certificate
 * the CA issues and the journal records; it is made when first needed and
 * renewed responder_renew_days before it expires, and is included in each
 * response. Every response is verified with the signer's public key
 * before it is stored or returned.
 *
 * Which CA: the one whose certificate's subject and key hash to the
 * CertID's issuerNameHash and issuerKeyHash (SHA-1, SHA-256, SHA-384,
 * SHA-512). No such CA: unauthorized. A request about several
 * certificates is answered in one response when they share a CA, and
 * with unauthorized otherwise (no one signer may answer for two CAs).
 */
#ifndef SF_OCSP_H
#define SF_OCSP_H

#include <stddef.h>
#include <stdint.h>

#include "ca.h"
#include "config.h"
#include "journal.h"
#include "maint.h"
#include "token.h"

typedef struct ocsp ocsp;

/* A responder over the signer's state (all borrowed; conf may be replaced
 * with ocsp_set_conf). NULL when out of memory. */
ocsp *ocsp_new(const signer_conf *conf, token *t, journal *j, ca_store *cas);
void ocsp_free(ocsp *o);   /* NULL-safe; no call on o may be running */
/* Use a new configuration (SIGHUP); the old one must outlive running calls. */
void ocsp_set_conf(ocsp *o, const signer_conf *conf);

/*
 * Answer the DER OCSPRequest req at time now. 0 with *resp (malloc'd DER
 * OCSPResponse) and *next_update (the response's nextUpdate: it may be
 * cached until then; 0 for an error status, which must not be cached).
 * Refusals are answers too: malformedRequest (not an OCSPRequest, a hash
 * we do not know), unauthorized (not one of our CAs, or several CAs),
 * tryLater (token unavailable, on-demand rate spent), internalError.
 * SF_ENOMEM only when not even an error response can be made.
 */
int ocsp_respond(ocsp *o, const uint8_t *req, size_t len, int64_t now,
    uint8_t **resp, size_t *resp_len, int64_t *next_update);

/*
 * The background task (a maint_fn; arg is the ocsp): make the delegated
 * responders that are missing or due, sign what is missing, re-sign what
 * changed or aged, drop what expired. At most a few thousand signatures a
 * run; when more is due it kicks the scheduler to come back soon.
 * 0 or the first error (the task runs again at its next turn).
 */
int ocsp_refresh(void *arg, int64_t now);
/* Register ocsp_refresh on m every [ocsp] interval_seconds; m is kept for
 * the kicks. Before maint_start. */
int ocsp_maint_add(ocsp *o, maint *m);

#endif
