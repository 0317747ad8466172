/*
 * keysig.c - signatures by a device's key over given bytes (see keysig.h):
 * the proofs of a renewal with a new key and of an acknowledgement.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "err.h"
#include "keysig.h"

/* SHA-256, or none for Ed25519 (it hashes inside); NULL with *ok 0 for a
 * key of another kind. */
static const EVP_MD *
digest_for(EVP_PKEY *key, int *ok)
{
	*ok = 1;
	if (EVP_PKEY_is_a(key, "ED25519"))
		return NULL;
	if (EVP_PKEY_is_a(key, "EC") || EVP_PKEY_is_a(key, "RSA"))
		return EVP_sha256();
	*ok = 0;
	return NULL;
}

int
keysig_verify(EVP_PKEY *key, const uint8_t *data, size_t len,
    const uint8_t *sig, size_t siglen, char *why, size_t whylen)
{
	EVP_MD_CTX *md = NULL;
	const EVP_MD *h;
	int ok, rc = SF_EINVAL;

	if (siglen == 0 || siglen > KEYSIG_MAX) {
		sf_why(why, whylen, "the signature is %s", siglen ? "too long" :
		    "empty");
		return SF_EINVAL;
	}
	h = digest_for(key, &ok);
	if (!ok) {
		sf_why(why, whylen, "a key of that type cannot be used here");
		return SF_EINVAL;
	}
	if ((md = EVP_MD_CTX_new()) == NULL)
		return SF_ENOMEM;
	if (EVP_DigestVerifyInit(md, NULL, h, NULL, key) == 1 &&
	    EVP_DigestVerify(md, sig, siglen, data, len) == 1)
		rc = 0;
	else {
		sf_why(why, whylen, "the signature does not verify");
		rc = SF_EPERM;
	}
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return rc;
}

int
keysig_verify_spki(const uint8_t *spki, size_t spki_len, const uint8_t *data,
    size_t len, const uint8_t *sig, size_t siglen, char *why, size_t whylen)
{
	const unsigned char *p = spki;
	EVP_PKEY *key = NULL;
	int rc;

	if (spki_len == 0 || spki_len > 64 * 1024 ||
	    (key = d2i_PUBKEY(NULL, &p, (long)spki_len)) == NULL) {
		ERR_clear_error();
		sf_why(why, whylen, "the key is not a SubjectPublicKeyInfo");
		return SF_EINVAL;
	}
	rc = keysig_verify(key, data, len, sig, siglen, why, whylen);
	EVP_PKEY_free(key);
	return rc;
}

int
keysig_verify_cert(const uint8_t *der, size_t der_len, const uint8_t *data,
    size_t len, const uint8_t *sig, size_t siglen, char *why, size_t whylen)
{
	const unsigned char *p = der;
	X509 *x = NULL;
	EVP_PKEY *key;
	int rc = SF_EINVAL;

	if (der_len == 0 || der_len > 64 * 1024 ||
	    (x = d2i_X509(NULL, &p, (long)der_len)) == NULL ||
	    (key = X509_get0_pubkey(x)) == NULL)
		sf_why(why, whylen, "the certificate's key cannot be read");
	else
		rc = keysig_verify(key, data, len, sig, siglen, why, whylen);
	X509_free(x);
	ERR_clear_error();
	return rc;
}

int
keysig_csr_der(const csr_info *ci, uint8_t **der, size_t *len, char *why,
    size_t whylen)
{
	unsigned char *d = NULL;
	unsigned int shalen = 0;
	uint8_t sha[EVP_MAX_MD_SIZE];
	int n;

	*der = NULL;
	*len = 0;
	if ((n = csr_encode(ci, &d)) <= 0) {
		ERR_clear_error();
		sf_why(why, whylen, "the CSR cannot be encoded");
		return SF_EINVAL;
	}
	if (!EVP_Digest(d, (size_t)n, sha, &shalen, EVP_sha256(), NULL) ||
	    shalen != 32 || memcmp(sha, ci->sha256, 32) != 0) {
		OPENSSL_free(d);
		ERR_clear_error();
		sf_why(why, whylen, "the CSR is not in DER's one encoding, so"
		    " a signature over it cannot be checked");
		return SF_EINVAL;
	}
	if ((*der = malloc((size_t)n)) == NULL) {
		OPENSSL_free(d);
		return SF_ENOMEM;
	}
	memcpy(*der, d, (size_t)n);
	*len = (size_t)n;
	OPENSSL_free(d);
	return 0;
}

int
keysig_sign(EVP_PKEY *key, const uint8_t *data, size_t len, uint8_t **sig,
    size_t *siglen, char *why, size_t whylen)
{
	EVP_MD_CTX *md = NULL;
	const EVP_MD *h;
	size_t n = 0;
	int ok, rc = SF_ECRYPTO;

	*sig = NULL;
	*siglen = 0;
	h = digest_for(key, &ok);
	if (!ok || (md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit(md, NULL, h, NULL, key) != 1 ||
	    EVP_DigestSign(md, NULL, &n, data, len) != 1 ||
	    (*sig = malloc(n)) == NULL ||
	    EVP_DigestSign(md, *sig, &n, data, len) != 1) {
		free(*sig);
		*sig = NULL;
		sf_why(why, whylen, "the key cannot sign (%s)", ok ?
		    "the signature failed" : "not an EC, RSA or Ed25519 key");
		goto out;
	}
	*siglen = n;
	rc = 0;
out:
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return rc;
}
