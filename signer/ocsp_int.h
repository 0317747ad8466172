/*
 * ocsp_int.h - what the OCSP responder's two files share (ocsp.c: requests,
 * signing, the background task; ocsp_responder.c: delegated responder
 * certificates). Not for use outside signer/ocsp*.c.
 */
#ifndef SF_OCSP_INT_H
#define SF_OCSP_INT_H

#include <pthread.h>

#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include "ocsp.h"
#include "rate.h"

/* A delegated responder: kept until ocsp_free, since a request may still
 * sign with one its successor replaced. */
struct responder {
	int64_t ca_id;
	token_key *key;
	X509 *cert;
	int64_t not_after;
	struct responder *next;
};

struct ocsp {
	pthread_mutex_t lock;        /* conf, responders */
	pthread_mutex_t make;        /* one responder made at a time */
	const signer_conf *conf;
	token *tok;
	journal *jn;
	ca_store *cas;
	maint *mt;
	rate *rl;                    /* on-demand signatures */
	struct responder *responders;   /* newest first */
	int64_t scan_rowid;          /* the task's cursor over new certificates */
};

/* One SingleResponse to sign. */
typedef struct {
	OCSP_CERTID *id;             /* borrowed */
	int status;                  /* V_OCSP_CERTSTATUS_* */
	int reason;                  /* CRLReason; -1: none given */
	int64_t revoked_at;
} ocsp_single;

/*
 * Sign a response with the single responses v[0..n-1] as c's responder
 * (ocsp_responder_get), thisUpdate now, nextUpdate now + validity, and
 * verify it with the responder's public key. *der is the DER OCSPResponse
 * (malloc'd). SF_EUNAVAIL (c cannot sign, token down), SF_ECRYPTO (the
 * signature did not verify), SF_ENOMEM.
 */
int ocsp_sign(ocsp *o, const signer_conf *cf, ca *c, const ocsp_single *v,
    size_t n, int64_t now, uint8_t **der, size_t *len);
/*
 * The response to store for certificate jc of c (the CertID hashed as
 * jc->cert_id_hash says; status from the journal): *out filled, out->der
 * malloc'd (free it), out->serial and out->cert_id_hash pointing into jc.
 */
int ocsp_sign_stored(ocsp *o, const signer_conf *cf, ca *c,
    const journal_ocsp_cert *jc, int64_t now, journal_ocsp_resp *out);
/* 1 if c can sign responses at now (a certificate, a key, not expired). */
int ocsp_ca_usable(ocsp *o, const ca *c, int64_t now);

/* The configuration in force (o->conf under o->lock; it outlives o). */
const signer_conf *ocsp_conf(ocsp *o);

/*
 * The key and certificate that sign c's responses at time now (borrowed:
 * they live as long as o): c's own when cf says responder = ca; otherwise
 * c's delegated responder, made first (key in the token, certificate
 * issued by c and journaled) when c has none that stays valid for margin
 * more seconds. SF_EUNAVAIL if c cannot sign (no key or certificate, token
 * down); another SF_E* code if a responder could not be made.
 */
int ocsp_responder_get(ocsp *o, const signer_conf *cf, ca *c, int64_t now,
    int64_t margin, token_key **key, X509 **cert);
/* Free the responders (ocsp_free). */
void ocsp_responders_free(struct responder *r);

#endif
