/*
 * ocsp.c - the OCSP responder's request path and its signing (see ocsp.h):
 * which CA a CertID names, the stored response looked up, and what is
 * signed on the spot. The background task is in ocsp_task.c, delegated
 * responders in ocsp_responder.c.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>

#include "err.h"
#include "log.h"
#include "ocsp_int.h"
#include "ocspmsg.h"
#include "pbenum.h"
#include "sign.h"

ocsp *
ocsp_new(const signer_conf *conf, token *t, journal *j, ca_store *cas)
{
	ocsp *o = calloc(1, sizeof *o);

	if (o == NULL)
		return NULL;
	pthread_mutex_init(&o->lock, NULL);
	pthread_mutex_init(&o->make, NULL);
	o->conf = conf;
	o->tok = t;
	o->jn = j;
	o->cas = cas;
	/* Only the global bucket is used: on_demand a second, bursts of as
	 * many. */
	o->rl = rate_new(1, 1, conf->ocsp_on_demand, conf->ocsp_on_demand);
	if (o->rl == NULL) {
		ocsp_free(o);
		return NULL;
	}
	return o;
}

void
ocsp_free(ocsp *o)
{
	if (o == NULL)
		return;
	ocsp_responders_free(o->responders);
	rate_free(o->rl);
	pthread_mutex_destroy(&o->lock);
	pthread_mutex_destroy(&o->make);
	free(o);
}

void
ocsp_set_conf(ocsp *o, const signer_conf *conf)
{
	pthread_mutex_lock(&o->lock);
	o->conf = conf;
	rate_set(o->rl, 1, 1, conf->ocsp_on_demand, conf->ocsp_on_demand);
	pthread_mutex_unlock(&o->lock);
}

const signer_conf *
ocsp_conf(ocsp *o)
{
	const signer_conf *cf;

	pthread_mutex_lock(&o->lock);
	cf = o->conf;
	pthread_mutex_unlock(&o->lock);
	return cf;
}

int
ocsp_ca_usable(ocsp *o, const ca *c, int64_t now)
{
	return ca_cert(o->cas, c) != NULL && ca_key_usable(c) &&
	    c->rec.not_after > now;
}

/* ---- signing ---- */

/* 1 if the response's signature verifies with pub. */
static int
verify(const OCSP_BASICRESP *bs, EVP_PKEY *pub)
{
	int ok = ASN1_item_verify(ASN1_ITEM_rptr(OCSP_RESPDATA),
	    OCSP_resp_get0_tbs_sigalg(bs), OCSP_resp_get0_signature(bs),
	    OCSP_resp_get0_respdata(bs), pub) == 1;

	ERR_clear_error();
	return ok;
}

/* The DER of an OCSPResponse carrying bs, into a malloc'd buffer. */
static int
resp_der(OCSP_BASICRESP *bs, uint8_t **der, size_t *len)
{
	OCSP_RESPONSE *r = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL,
	    bs);
	unsigned char *p = NULL;
	int l = r ? i2d_OCSP_RESPONSE(r, &p) : -1;

	OCSP_RESPONSE_free(r);
	if (l > 0 && (*der = malloc((size_t)l)) != NULL) {
		memcpy(*der, p, (size_t)l);
		*len = (size_t)l;
	}
	OPENSSL_free(p);
	return *der ? 0 : SF_ENOMEM;
}

/* Add the single responses to bs, all with the same thisUpdate and
 * nextUpdate. */
static int
add_singles(OCSP_BASICRESP *bs, const ocsp_single *v, size_t n,
    int64_t now, int validity)
{
	ASN1_TIME *thisupd = ASN1_TIME_set(NULL, (time_t)now);
	ASN1_TIME *nextupd = ASN1_TIME_set(NULL, (time_t)(now + validity));
	ASN1_TIME *rev = NULL;
	int rc = SF_ENOMEM;

	if (thisupd == NULL || nextupd == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		ASN1_TIME_free(rev);
		rev = NULL;
		if (v[i].status == V_OCSP_CERTSTATUS_REVOKED &&
		    (rev = ASN1_TIME_set(NULL, (time_t)v[i].revoked_at)) ==
		    NULL)
			goto out;
		if (OCSP_basic_add1_status(bs, v[i].id, v[i].status,
		    v[i].reason, rev, thisupd, nextupd) == NULL)
			goto out;
	}
	rc = 0;
out:
	ASN1_TIME_free(rev);
	ASN1_TIME_free(thisupd);
	ASN1_TIME_free(nextupd);
	return rc;
}

int
ocsp_sign(ocsp *o, const signer_conf *cf, ca *c, const ocsp_single *v,
    size_t n, int64_t now, uint8_t **der, size_t *len)
{
	OCSP_BASICRESP *bs = NULL;
	token_key *key;
	X509 *cert;
	int rc;

	*der = NULL;
	*len = 0;
	if ((rc = ocsp_responder_get(o, cf, c, now, 0, &key, &cert)) != 0)
		return rc;
	if ((bs = OCSP_BASICRESP_new()) == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	if ((rc = add_singles(bs, v, n, now, cf->ocsp_validity)) != 0 ||
	    (rc = sign_ocsp(o->tok, key, cert, bs)) != 0)
		goto out;
	/* A delegated responder shows its certificate (RFC 6960 4.2.2.2). */
	if (cf->ocsp_delegated && !OCSP_basic_add1_cert(bs, cert)) {
		rc = SF_ENOMEM;
		goto out;
	}
	/* A faulty token, or a key that is not the certificate's, must not
	 * put a bad response into the world. */
	if (!verify(bs, X509_get0_pubkey(cert))) {
		log_warnx("OCSP: CA %s: the token's signature does not verify"
		    " with the signer's certificate; response discarded",
		    c->rec.name);
		rc = SF_EUNAVAIL;   /* the token misbehaves */
		goto out;
	}
	rc = resp_der(bs, der, len);
out:
	ERR_clear_error();
	OCSP_BASICRESP_free(bs);
	return rc;
}

/* The status, reason and time the journal's row says. */
static void
single_of(const journal_ocsp_cert *jc, int64_t now, ocsp_single *s)
{
	s->status = V_OCSP_CERTSTATUS_GOOD;
	s->reason = OCSP_REVOKED_STATUS_NOSTATUS;
	s->revoked_at = 0;
	if (jc->status != CERT_REVOKED && jc->status != CERT_SUPERSEDED)
		return;
	s->status = V_OCSP_CERTSTATUS_REVOKED;
	s->revoked_at = jc->revoked_at ? jc->revoked_at : now;
	/* unspecified is left out, as in a CRL (RFC 5280 5.3.1). */
	if (jc->revocation_reason != 0)
		s->reason = jc->revocation_reason;
	else if (jc->status == CERT_SUPERSEDED)
		s->reason = OCSP_REVOKED_STATUS_SUPERSEDED;
}

/* A serial in the journal's text form as an ASN1_INTEGER. */
static ASN1_INTEGER *
serial_int(const char *hex)
{
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai = NULL;

	if (BN_hex2bn(&bn, hex) > 0)
		ai = BN_to_ASN1_INTEGER(bn, NULL);
	BN_free(bn);
	return ai;
}

int
ocsp_sign_stored(ocsp *o, const signer_conf *cf, ca *c,
    const journal_ocsp_cert *jc, int64_t now, journal_ocsp_resp *out)
{
	const EVP_MD *md = EVP_get_digestbyname(jc->cert_id_hash);
	ASN1_INTEGER *serial = NULL;
	ocsp_single s;
	uint8_t *der = NULL;
	size_t len = 0;
	int rc = SF_EUNAVAIL;

	memset(out, 0, sizeof *out);
	if (ca_cert(o->cas, c) == NULL)
		goto out;
	rc = SF_ENOMEM;
	if (md == NULL || (serial = serial_int(jc->serial)) == NULL)
		goto out;
	/* Our own CertID, as every client with this hash computes it. */
	s.id = OCSP_cert_id_new(md, X509_get_subject_name(c->cert),
	    X509_get0_pubkey_bitstr(c->cert), serial);
	if (s.id == NULL)
		goto out;
	single_of(jc, now, &s);
	rc = ocsp_sign(o, cf, c, &s, 1, now, &der, &len);
	OCSP_CERTID_free(s.id);
	if (rc != 0)
		goto out;
	out->ca_id = jc->ca_id;
	out->serial = jc->serial;
	out->cert_id_hash = jc->cert_id_hash;
	out->status = s.status;
	out->this_update = now;
	out->next_update = now + cf->ocsp_validity;
	out->der = der;
	out->der_len = len;
out:
	ERR_clear_error();
	ASN1_INTEGER_free(serial);
	return rc;
}

/* ---- requests ---- */

/* The CA whose certificate's subject and key hash (with md) to id's
 * issuerNameHash and issuerKeyHash; NULL if none. */
static ca *
find_ca(ocsp *o, OCSP_CERTID *id, const EVP_MD *md)
{
	ca **all = NULL, *found = NULL;
	size_t n = ca_list(o->cas, &all);

	for (size_t i = 0; i < n && found == NULL; i++) {
		OCSP_CERTID *mine;

		if (ca_cert(o->cas, all[i]) == NULL)
			continue;
		mine = OCSP_cert_id_new(md, X509_get_subject_name(all[i]->cert),
		    X509_get0_pubkey_bitstr(all[i]->cert), NULL);
		if (mine && OCSP_id_issuer_cmp(mine, id) == 0)
			found = all[i];
		OCSP_CERTID_free(mine);
	}
	free(all);
	return found;
}

/* The OCSPResponseStatus for a signing failure. */
static int
failed(const ca *c, int rc)
{
	log_warnx("OCSP: CA %s: cannot sign a response: %s", c->rec.name,
	    sf_strerror(rc));
	return rc == SF_EUNAVAIL ? OCSP_RESPONSE_STATUS_TRYLATER :
	    OCSP_RESPONSE_STATUS_INTERNALERROR;
}

/* Sign what has no stored response and gets none: within the on-demand
 * rate, else tryLater. */
static int
on_demand(ocsp *o, const signer_conf *cf, ca *c, const ocsp_single *v,
    size_t n, int64_t now, uint8_t **out, size_t *outlen,
    int64_t *next_update)
{
	int rc;

	if (rate_take_global(o->rl) != 0) {
		log_debug("OCSP: on-demand rate spent; tryLater");
		return OCSP_RESPONSE_STATUS_TRYLATER;
	}
	if ((rc = ocsp_sign(o, cf, c, v, n, now, out, outlen)) != 0)
		return failed(c, rc);
	*next_update = now + cf->ocsp_validity;
	return OCSP_RESPONSE_STATUS_SUCCESSFUL;
}

/*
 * One CertID: the stored response if it is current; else one signed now
 * and stored (a certificate the task has not reached, a hash asked for the
 * first time, a revocation the task has not caught up with); an unknown
 * serial or an expired certificate on demand. Returns an
 * OCSPResponseStatus; *out is set only for SUCCESSFUL.
 */
static int
answer_one(ocsp *o, const signer_conf *cf, OCSP_CERTID *id, int64_t now,
    uint8_t **out, size_t *outlen, int64_t *next_update)
{
	ocsp_single s = { id, V_OCSP_CERTSTATUS_UNKNOWN,
	    OCSP_REVOKED_STATUS_NOSTATUS, 0 };
	journal_ocsp_stored stored;
	journal_ocsp_cert jc;
	journal_ocsp_resp fresh;
	const EVP_MD *md;
	const char *hash = ocspmsg_hash_name(id, &md);
	char serial[64];
	ca *c;
	int rc;

	if (hash == NULL)
		return OCSP_RESPONSE_STATUS_MALFORMEDREQUEST;
	if ((c = find_ca(o, id, md)) == NULL) {
		log_debug("OCSP: a CertID of none of our CAs: unauthorized");
		return OCSP_RESPONSE_STATUS_UNAUTHORIZED;
	}
	rc = ocspmsg_serial_hex(id, serial, sizeof serial) != 0 ? SF_ENOTFOUND :
	    journal_ocsp_get(o->jn, c->rec.id, serial, hash, &jc, &stored);
	if (rc == SF_ENOTFOUND)
		return on_demand(o, cf, c, &s, 1, now, out, outlen,
		    next_update);
	if (rc != 0)
		return OCSP_RESPONSE_STATUS_TRYLATER;
	single_of(&jc, now, &s);
	if (stored.der && stored.next_update > now &&
	    stored.status == s.status) {
		*out = stored.der;
		*outlen = stored.der_len;
		*next_update = stored.next_update;
		return OCSP_RESPONSE_STATUS_SUCCESSFUL;
	}
	free(stored.der);
	if (jc.not_after <= now)
		return on_demand(o, cf, c, &s, 1, now, out, outlen,
		    next_update);
	if ((rc = ocsp_sign_stored(o, cf, c, &jc, now, &fresh)) != 0)
		return failed(c, rc);
	if (journal_ocsp_put(o->jn, &fresh, 1) != 0)
		log_warnx("OCSP: CA %s: response for %s not stored",
		    c->rec.name, serial);
	*out = (uint8_t *)fresh.der;
	*outlen = fresh.der_len;
	*next_update = fresh.next_update;
	return OCSP_RESPONSE_STATUS_SUCCESSFUL;
}

/* Several CertIDs of one CA: one response signed on demand, each status
 * from the journal. Several CAs: unauthorized. */
static int
answer_many(ocsp *o, const signer_conf *cf, OCSP_REQUEST *req, int64_t now,
    uint8_t **out, size_t *outlen, int64_t *next_update)
{
	ocsp_single v[OCSPMSG_MAX_IDS];
	journal_ocsp_stored stored;
	journal_ocsp_cert jc;
	int n = OCSP_request_onereq_count(req), rc;
	const EVP_MD *md;
	char serial[64];
	ca *c = NULL, *ci;

	for (int i = 0; i < n && i < OCSPMSG_MAX_IDS; i++) {
		v[i].id = OCSP_onereq_get0_id(OCSP_request_onereq_get0(req, i));
		v[i].status = V_OCSP_CERTSTATUS_UNKNOWN;
		v[i].reason = OCSP_REVOKED_STATUS_NOSTATUS;
		v[i].revoked_at = 0;
		if (ocspmsg_hash_name(v[i].id, &md) == NULL)
			return OCSP_RESPONSE_STATUS_MALFORMEDREQUEST;
		if ((ci = find_ca(o, v[i].id, md)) == NULL ||
		    (c != NULL && ci != c)) {
			log_debug("OCSP: a request about several CAs");
			return OCSP_RESPONSE_STATUS_UNAUTHORIZED;
		}
		c = ci;
		if (ocspmsg_serial_hex(v[i].id, serial, sizeof serial) != 0)
			continue;
		rc = journal_ocsp_get(o->jn, c->rec.id, serial, "sha1", &jc,
		    &stored);
		free(stored.der);
		if (rc == 0)
			single_of(&jc, now, &v[i]);
		else if (rc != SF_ENOTFOUND)
			return OCSP_RESPONSE_STATUS_TRYLATER;
	}
	return on_demand(o, cf, c, v, (size_t)n, now, out, outlen,
	    next_update);
}

int
ocsp_respond(ocsp *o, const uint8_t *der, size_t len, int64_t now,
    uint8_t **resp, size_t *resp_len, int64_t *next_update)
{
	const signer_conf *cf = ocsp_conf(o);
	OCSP_REQUEST *req = NULL;
	char why[128];
	int st;

	*resp = NULL;
	*resp_len = 0;
	*next_update = 0;
	if (ocspmsg_req_parse(der, len, &req, why, sizeof why) != 0) {
		log_debug("OCSP: malformed request: %s", why);
		st = OCSP_RESPONSE_STATUS_MALFORMEDREQUEST;
	} else if (OCSP_request_onereq_count(req) == 1)
		st = answer_one(o, cf, OCSP_onereq_get0_id(
		    OCSP_request_onereq_get0(req, 0)), now, resp, resp_len,
		    next_update);
	else
		st = answer_many(o, cf, req, now, resp, resp_len, next_update);
	OCSP_REQUEST_free(req);
	ERR_clear_error();
	if (st == OCSP_RESPONSE_STATUS_SUCCESSFUL)
		return 0;
	*next_update = 0;
	return ocspmsg_status_fmt(st, resp, resp_len);
}
