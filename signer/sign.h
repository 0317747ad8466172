/*
 * sign.h - attach a token signature to certificates, CRLs and requests.
 *
 * The to-be-signed part is encoded by OpenSSL (i2d_re_X509_tbs and
 * friends) after the signature algorithm is set in both places it appears;
 * the token signs those bytes (token_sign); the signature goes into the
 * structure through the pointers OpenSSL's get0 accessors return. No
 * hand-written ASN.1. The caller verifies the result with the issuer's
 * public key before it is journaled or returned.
 */
#ifndef SF_SIGN_H
#define SF_SIGN_H

#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include "token.h"

/* Set the signature algorithm k signs with in both places x names it
 * (what sign_cert does first; the linter checks it before signing). */
int sign_cert_alg(token_key *k, X509 *x);
int sign_cert(token *t, token_key *k, X509 *x);
int sign_crl(token *t, token_key *k, X509_CRL *crl);
int sign_req(token *t, token_key *k, X509_REQ *req);
/*
 * Sign an OCSP basic response as the CA whose certificate is ca_cert and
 * whose key is k; the responder id is the CA's name (RFC 6960 byName). The
 * response's single responses must already be added.
 */
int sign_ocsp(token *t, token_key *k, X509 *ca_cert, OCSP_BASICRESP *bs);

/*
 * Prove that k's private half is the key pub names: the token signs a
 * random challenge (domain-separated: it cannot be taken for any structure
 * the signer signs) and pub verifies it. 0; SF_EPERM if the signature does
 * not verify with pub; token_sign's errors.
 */
int sign_probe(token *t, token_key *k, EVP_PKEY *pub);

/* 1 if x's signature verifies with issuer_pub. */
int sign_verify_cert(X509 *x, EVP_PKEY *issuer_pub);

#endif
