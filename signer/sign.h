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

int sign_cert(token *t, token_key *k, X509 *x);
int sign_crl(token *t, token_key *k, X509_CRL *crl);
int sign_req(token *t, token_key *k, X509_REQ *req);
/*
 * Sign an OCSP basic response as the CA whose certificate is ca_cert and
 * whose key is k; the responder id is the CA's name (RFC 6960 byName). The
 * response's single responses must already be added.
 */
int sign_ocsp(token *t, token_key *k, X509 *ca_cert, OCSP_BASICRESP *bs);

/* 1 if x's signature verifies with issuer_pub. */
int sign_verify_cert(X509 *x, EVP_PKEY *issuer_pub);

#endif
