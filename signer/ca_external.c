/*
 * ca_external.c - a CA whose parent is outside this signer (an offline or
 * corporate root): the CSR for its key (ca_export_csr, also what
 * ca_create returns for such a CA) and the certificate the parent sends
 * back (ca_import_cert), which must be for the CA's key, be a CA
 * certificate, and verify against the chain given with it before the CA
 * becomes active (and, for a rotation's new generation, the one it
 * replaces RETIRING).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "ca_int.h"
#include "err.h"
#include "log.h"
#include "profile.h"
#include "secretfree/v1/common.pb-c.h"
#include "sign.h"
#include "util.h"

/* A CSR for the CA key k, signed in the token and checked (PEM,
 * malloc'd); NULL with why set. */
static char *
req_pem(token *t, token_key *k, X509_NAME *subject, EVP_PKEY *pub,
    char *why, size_t whylen)
{
	X509_REQ *req = X509_REQ_new();
	BIO *b = NULL;
	char *data, *out = NULL;
	long n;

	if (req == NULL || !X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
	    !X509_REQ_set_subject_name(req, subject) ||
	    !X509_REQ_set_pubkey(req, pub) || sign_req(t, k, req) != 0 ||
	    X509_REQ_verify(req, pub) != 1) {
		sf_why(why, whylen, "cannot make a CSR for the CA key");
		ERR_clear_error();
		goto out;
	}
	if ((b = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_X509_REQ(b, req))
		goto out;
	if ((n = BIO_get_mem_data(b, &data)) > 0 &&
	    (out = malloc((size_t)n + 1)) != NULL) {
		memcpy(out, data, (size_t)n);
		out[n] = '\0';
	}
out:
	BIO_free(b);
	X509_REQ_free(req);
	return out;
}

int
ca_export_csr(ca_store *s, ca *c, const char *subject, char **csr_pem,
    char *why, size_t whylen)
{
	X509_NAME *n = NULL;
	int rc = SF_EINVAL;

	*csr_pem = NULL;
	if (!ca_key_usable(c)) {
		char t[sizeof c->key_problem];

		ca_key_problem(c, t, sizeof t);
		sf_why(why, whylen, "CA %s is unavailable: %s", c->rec.name, t);
		return SF_EUNAVAIL;
	}
	if (subject && *subject)
		n = profile_subject_parse(subject, why, whylen);
	else if (c->cert)
		n = X509_NAME_dup(X509_get_subject_name(c->cert));
	else
		n = profile_subject_parse(c->rec.subject, why, whylen);
	if (n == NULL)
		return rc;
	if ((*csr_pem = req_pem(s->tok, c->key, n, c->pub, why, whylen)) !=
	    NULL)
		rc = 0;
	else
		rc = SF_ECRYPTO;
	X509_NAME_free(n);
	return rc;
}

static STACK_OF(X509) *
pem_certs(const char *pem)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x;

	if (sk == NULL || b == NULL) {
		sk_X509_free(sk);
		BIO_free(b);
		return NULL;
	}
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		if (!sk_X509_push(sk, x))
			X509_free(x);
	ERR_clear_error();
	BIO_free(b);
	return sk;
}

int
ca_import_cert(ca_store *s, ca *c, const char *cert_pem,
    const char *chain_pem, char *why, size_t whylen)
{
	STACK_OF(X509) *certs = NULL, *chain = NULL;
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509 *x;
	ca *old;
	unsigned char *der = NULL;
	char serial[64];
	int64_t nb, na;
	int rc = SF_EINVAL, n, derlen;

	pthread_mutex_lock(&s->admin);
	if (c->rec.state != SECRETFREE__V1__CA_STATE__CA_STATE_PENDING) {
		sf_why(why, whylen, "CA %s %s is not waiting for a"
		    " certificate", c->rec.name, c->rec.generation);
		rc = SF_ESTATE;
		goto out;
	}
	if ((certs = pem_certs(cert_pem)) == NULL ||
	    sk_X509_num(certs) != 1) {
		sf_why(why, whylen, "certificate_pem must hold exactly one"
		    " PEM certificate");
		goto out;
	}
	x = sk_X509_value(certs, 0);
	if (c->pub == NULL || EVP_PKEY_eq(X509_get0_pubkey(x), c->pub) != 1) {
		sf_why(why, whylen, "the certificate is not for the key of"
		    " CA %s", c->rec.name);
		rc = SF_EPERM;
		goto out;
	}
	if (X509_check_ca(x) != 1 ||
	    !(X509_get_key_usage(x) & KU_KEY_CERT_SIGN)) {
		sf_why(why, whylen, "the certificate is not a CA certificate"
		    " with keyCertSign");
		goto out;
	}
	if ((chain = pem_certs(chain_pem ? chain_pem : "")) == NULL ||
	    (n = sk_X509_num(chain)) == 0) {
		sf_why(why, whylen, "chain_pem must hold the issuer's chain"
		    " up to its root");
		goto out;
	}
	/* The last certificate of the chain is the trust anchor. */
	if ((store = X509_STORE_new()) == NULL ||
	    !X509_STORE_add_cert(store, sk_X509_value(chain, n - 1)) ||
	    (ctx = X509_STORE_CTX_new()) == NULL ||
	    !X509_STORE_CTX_init(ctx, store, x, chain)) {
		rc = SF_ECRYPTO;
		goto out;
	}
	if (X509_verify_cert(ctx) != 1) {
		sf_why(why, whylen, "the certificate does not verify against"
		    " the given chain: %s", X509_verify_cert_error_string(
		    X509_STORE_CTX_get_error(ctx)));
		goto out;
	}
	if (profile_serial_hex(X509_get0_serialNumber(x), serial,
	    sizeof serial) != 0 || (derlen = i2d_X509(x, &der)) <= 0) {
		rc = SF_ECRYPTO;
		goto out;
	}
	nb = profile_time_unix(X509_get0_notBefore(x));
	na = profile_time_unix(X509_get0_notAfter(x));
	/* A rotation's new generation: the one it replaces retires now. */
	old = ca_find_state(s, c->rec.name,
	    SECRETFREE__V1__CA_STATE__CA_STATE_ACTIVE);
	if ((rc = journal_ca_set_cert(s->jn, c->rec.id, der, (size_t)derlen,
	    serial, nb, na, SECRETFREE__V1__CA_STATE__CA_STATE_ACTIVE,
	    chain_pem, old ? old->rec.id : 0)) != 0) {
		sf_why(why, whylen, "cannot record the certificate");
		goto out;
	}
	pthread_rwlock_wrlock(&s->lock);
	free(c->rec.external_chain);
	c->rec.external_chain = strdup(chain_pem);
	free(c->rec.serial);
	c->rec.serial = strdup(serial);
	c->rec.not_before = nb;
	c->rec.not_after = na;
	X509_up_ref(x);
	c->cert = x;
	c->rec.state = SECRETFREE__V1__CA_STATE__CA_STATE_ACTIVE;
	if (old) {
		old->rec.state = SECRETFREE__V1__CA_STATE__CA_STATE_RETIRING;
		old->rec.retired_at = sf_now();
		log_info("CA %s %s: retiring, replaced by %s", old->rec.name,
		    old->rec.generation, c->rec.generation);
	}
	rc = ca_prepare(c);
	pthread_rwlock_unlock(&s->lock);
	log_info("CA %s %s: imported certificate %s from the external parent",
	    c->rec.name, c->rec.generation, serial);
out:
	pthread_mutex_unlock(&s->admin);
	ERR_clear_error();
	OPENSSL_free(der);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_pop_free(certs, X509_free);
	sk_X509_pop_free(chain, X509_free);
	return rc;
}
