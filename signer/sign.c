/*
 * sign.c - token signatures on X.509 structures (see sign.h).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/rand.h>

#include "err.h"
#include "log.h"
#include "sign.h"

#define SIG_MAX 1024

static int
set_alg(X509_ALGOR *alg, int nid)
{
	/* RFC 4055: RSA PKCS#1 v1.5 carries NULL parameters; ECDSA and
	 * Ed25519 (RFC 5758, RFC 8410) carry none. */
	int ptype = nid == NID_sha256WithRSAEncryption ? V_ASN1_NULL :
	    V_ASN1_UNDEF;

	return X509_ALGOR_set0(alg, OBJ_nid2obj(nid), ptype, NULL) ? 0 :
	    SF_ECRYPTO;
}

static int
set_sig(ASN1_BIT_STRING *bs, const uint8_t *sig, size_t len)
{
	if (!ASN1_BIT_STRING_set(bs, (unsigned char *)sig, (int)len))
		return SF_ECRYPTO;
	/* No unused bits, as X509_sign leaves it. */
	bs->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
	bs->flags |= ASN1_STRING_FLAG_BITS_LEFT;
	return 0;
}

static int
sign_der(token *t, token_key *k, unsigned char *tbs, int tbslen,
    ASN1_BIT_STRING *out)
{
	uint8_t sig[SIG_MAX];
	size_t siglen = sizeof sig;
	int rc;

	if (tbslen <= 0)
		return SF_ECRYPTO;
	if ((rc = token_sign(t, k, tbs, (size_t)tbslen, sig, &siglen)) != 0)
		return rc;
	return set_sig(out, sig, siglen);
}

int
sign_cert_alg(token_key *k, X509 *x)
{
	const ASN1_BIT_STRING *csig;
	const X509_ALGOR *calg;
	int nid = token_key_sig_nid(k), rc;

	X509_get0_signature(&csig, &calg, x);
	if ((rc = set_alg((X509_ALGOR *)X509_get0_tbs_sigalg(x), nid)) == 0)
		rc = set_alg((X509_ALGOR *)calg, nid);
	return rc;
}

int
sign_cert(token *t, token_key *k, X509 *x)
{
	const ASN1_BIT_STRING *csig;
	const X509_ALGOR *calg;
	unsigned char *tbs = NULL;
	int len, rc;

	if ((rc = sign_cert_alg(k, x)) != 0)
		return rc;
	X509_get0_signature(&csig, &calg, x);
	if ((len = i2d_re_X509_tbs(x, &tbs)) <= 0)
		return SF_ECRYPTO;
	rc = sign_der(t, k, tbs, len, (ASN1_BIT_STRING *)csig);
	OPENSSL_free(tbs);
	return rc;
}

/*
 * OpenSSL 3.0 has no setter for the algorithm inside a CRL's (or an OCSP
 * response's) to-be-signed part. So the structure is first signed with a
 * throwaway software key of the same algorithm, which sets both algorithm
 * fields exactly as OpenSSL encodes them; the token then signs the
 * re-encoded TBS and its signature replaces the throwaway one. The
 * throwaway keys are made once per process and sign nothing that leaves it.
 */
static pthread_mutex_t dummy_lock = PTHREAD_MUTEX_INITIALIZER;
static EVP_PKEY *dummy_ec, *dummy_rsa, *dummy_ed;

/* The digest a signature algorithm hashes with (NULL for Ed25519). */
static int
sig_md(int sig_nid, const EVP_MD **md)
{
	*md = NULL;
	switch (sig_nid) {
	case NID_ecdsa_with_SHA256:
	case NID_sha256WithRSAEncryption:
		*md = EVP_sha256();
		return 0;
	case NID_ecdsa_with_SHA384:
		*md = EVP_sha384();
		return 0;
	case NID_ED25519:
		return 0;
	}
	return SF_EKEYTYPE;
}

static EVP_PKEY *
dummy_key(int sig_nid, const EVP_MD **md)
{
	EVP_PKEY **slot, *k;

	if (sig_md(sig_nid, md) != 0)
		return NULL;
	slot = sig_nid == NID_sha256WithRSAEncryption ? &dummy_rsa :
	    sig_nid == NID_ED25519 ? &dummy_ed : &dummy_ec;
	pthread_mutex_lock(&dummy_lock);
	if (*slot == NULL) {
		if (slot == &dummy_ec)
			*slot = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		else if (slot == &dummy_rsa)
			*slot = EVP_PKEY_Q_keygen(NULL, NULL, "RSA",
			    (size_t)2048);
		else
			*slot = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	}
	k = *slot;
	pthread_mutex_unlock(&dummy_lock);
	return k;
}

int
sign_crl(token *t, token_key *k, X509_CRL *crl)
{
	const ASN1_BIT_STRING *csig;
	const X509_ALGOR *calg;
	const EVP_MD *md;
	EVP_PKEY *dummy = dummy_key(token_key_sig_nid(k), &md);
	unsigned char *tbs = NULL;
	int len, rc;

	if (dummy == NULL || X509_CRL_sign(crl, dummy, md) <= 0)
		return SF_ECRYPTO;
	X509_CRL_get0_signature(crl, &csig, &calg);
	if ((len = i2d_re_X509_CRL_tbs(crl, &tbs)) <= 0)
		return SF_ECRYPTO;
	rc = sign_der(t, k, tbs, len, (ASN1_BIT_STRING *)csig);
	OPENSSL_free(tbs);
	return rc;
}

/*
 * OCSP_basic_sign checks the key against the signer's certificate, and
 * OpenSSL 3.0 gives no way into the response's TBS otherwise. So a
 * throwaway certificate with the CA's subject and the throwaway key's
 * public half stands in: OpenSSL sets the responder id (the CA's name, the
 * same in both) and the algorithm, and the token's signature over the
 * re-encoded TBS then replaces the throwaway one.
 */
/*
 * The stand-ins, kept: making one costs an X509_PUBKEY_set, which goes
 * through OpenSSL 3.0's decoders and was some 40 % of a pre-signed OCSP
 * response. One per CA subject and throwaway key, looked up by subject
 * (not by pointer: a rotated CA's X509 is freed and its address reused).
 */
#define STAND_INS 16
static struct {
	X509 *x;          /* subject = issuer = the CA's, the dummy's key */
	EVP_PKEY *dummy;
} stand_ins[STAND_INS];
static size_t stand_in_next;
static pthread_mutex_t stand_in_lock = PTHREAD_MUTEX_INITIALIZER;

/* A reference to the stand-in for ca_cert and dummy (X509_free it). */
static X509 *
stand_in_get(X509 *ca_cert, EVP_PKEY *dummy)
{
	const X509_NAME *name = X509_get_subject_name(ca_cert);
	X509 *x = NULL;

	pthread_mutex_lock(&stand_in_lock);
	for (size_t i = 0; i < STAND_INS && x == NULL; i++)
		if (stand_ins[i].x && stand_ins[i].dummy == dummy &&
		    X509_NAME_cmp(X509_get_subject_name(stand_ins[i].x),
		    name) == 0 && X509_up_ref(stand_ins[i].x))
			x = stand_ins[i].x;
	pthread_mutex_unlock(&stand_in_lock);
	if (x)
		return x;
	if ((x = X509_new()) == NULL ||
	    !X509_set_subject_name(x, name) ||
	    !X509_set_issuer_name(x, name) ||
	    !X509_set_pubkey(x, dummy)) {
		X509_free(x);
		return NULL;
	}
	pthread_mutex_lock(&stand_in_lock);
	if (X509_up_ref(x)) {
		X509_free(stand_ins[stand_in_next].x);
		stand_ins[stand_in_next].x = x;
		stand_ins[stand_in_next].dummy = dummy;
		stand_in_next = (stand_in_next + 1) % STAND_INS;
	}
	pthread_mutex_unlock(&stand_in_lock);
	return x;
}

int
sign_ocsp(token *t, token_key *k, X509 *ca_cert, OCSP_BASICRESP *bs)
{
	const EVP_MD *md;
	EVP_PKEY *dummy = dummy_key(token_key_sig_nid(k), &md);
	X509 *stand_in = NULL;
	unsigned char *tbs = NULL;
	int len, rc = SF_ECRYPTO;

	if (dummy == NULL || (stand_in = stand_in_get(ca_cert, dummy)) ==
	    NULL || OCSP_basic_sign(bs, stand_in, dummy, md, NULL,
	    OCSP_NOCERTS) != 1)
		goto out;
	if ((len = i2d_OCSP_RESPDATA((OCSP_RESPDATA *)
	    OCSP_resp_get0_respdata(bs), &tbs)) <= 0)
		goto out;
	rc = sign_der(t, k, tbs, len,
	    (ASN1_BIT_STRING *)OCSP_resp_get0_signature(bs));
out:
	ERR_clear_error();
	OPENSSL_free(tbs);
	X509_free(stand_in);
	return rc;
}

int
sign_req(token *t, token_key *k, X509_REQ *req)
{
	X509_ALGOR *alg = X509_ALGOR_new();
	ASN1_BIT_STRING *bs = ASN1_BIT_STRING_new();
	unsigned char *tbs = NULL;
	int len, rc = SF_ECRYPTO;

	if (alg == NULL || bs == NULL)
		goto out;
	if ((rc = set_alg(alg, token_key_sig_nid(k))) != 0)
		goto out;
	/* A request names its algorithm once, outside the signed part. */
	if (!X509_REQ_set1_signature_algo(req, alg)) {
		rc = SF_ECRYPTO;
		goto out;
	}
	if ((len = i2d_re_X509_REQ_tbs(req, &tbs)) <= 0) {
		rc = SF_ECRYPTO;
		goto out;
	}
	if ((rc = sign_der(t, k, tbs, len, bs)) != 0)
		goto out;
	X509_REQ_set0_signature(req, bs);
	bs = NULL;  /* transferred */
out:
	OPENSSL_free(tbs);
	X509_ALGOR_free(alg);
	ASN1_BIT_STRING_free(bs);
	return rc;
}

/*
 * The probe's bytes: a fixed prefix and 32 random bytes. They start with
 * a letter, not with the 0x30 of a DER SEQUENCE, so the signature is over
 * nothing a certificate, CRL, OCSP response or request could be.
 */
#define PROBE_PREFIX "secretfree-signer key probe\n"

int
sign_probe(token *t, token_key *k, EVP_PKEY *pub)
{
	uint8_t msg[sizeof PROBE_PREFIX - 1 + 32], sig[SIG_MAX];
	size_t siglen = sizeof sig;
	const EVP_MD *md;
	EVP_MD_CTX *ctx = NULL;
	int rc;

	memcpy(msg, PROBE_PREFIX, sizeof PROBE_PREFIX - 1);
	if (sig_md(token_key_sig_nid(k), &md) != 0 ||
	    RAND_bytes(msg + sizeof PROBE_PREFIX - 1, 32) != 1)
		return SF_ECRYPTO;
	if ((rc = token_sign(t, k, msg, sizeof msg, sig, &siglen)) != 0)
		return rc;
	rc = SF_EPERM;
	if ((ctx = EVP_MD_CTX_new()) != NULL &&
	    EVP_DigestVerifyInit(ctx, NULL, md, NULL, pub) == 1 &&
	    EVP_DigestVerify(ctx, sig, siglen, msg, sizeof msg) == 1)
		rc = 0;
	ERR_clear_error();
	EVP_MD_CTX_free(ctx);
	return rc;
}

int
sign_verify_cert(X509 *x, EVP_PKEY *issuer_pub)
{
	int ok = X509_verify(x, issuer_pub) == 1;

	if (!ok)
		ERR_clear_error();
	return ok;
}
