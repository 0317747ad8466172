/*
 * keysig.h - a device's signature with one of its keys over given bytes:
 * the proofs a renewal carries (Provisioning.Renew, Signer.Issue). With a
 * new key, the device signs the new CSR's DER with its current key, so that
 * the move to the new key is authorized by the key the device holds now;
 * when it acknowledges a renewed certificate without presenting it over
 * TLS, it signs the enrollment id with the new certificate's key.
 *
 * The signature: SHA-256 with ECDSA (a DER Ecdsa-Sig-Value) or RSA PKCS#1
 * v1.5; Ed25519 (pure, RFC 8032) over the bytes themselves. authz and the
 * signer each verify with this code, with the key they hold themselves.
 */
#ifndef SF_KEYSIG_H
#define SF_KEYSIG_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "csr.h"

#define KEYSIG_MAX 1024      /* an RSA-8192 signature is 1024 bytes */

/*
 * Verify sig over data with key. 0 when it verifies; SF_EINVAL for an
 * empty or oversized signature or a key of another kind than EC, RSA or
 * Ed25519; SF_EPERM when it does not verify. why (NULL-safe) says which.
 */
int keysig_verify(EVP_PKEY *key, const uint8_t *data, size_t len,
    const uint8_t *sig, size_t siglen, char *why, size_t whylen);

/* The same with the key of a DER SubjectPublicKeyInfo (SF_EINVAL if it is
 * not one) or of a DER certificate. */
int keysig_verify_spki(const uint8_t *spki, size_t spki_len,
    const uint8_t *data, size_t len, const uint8_t *sig, size_t siglen,
    char *why, size_t whylen);
int keysig_verify_cert(const uint8_t *der, size_t der_len,
    const uint8_t *data, size_t len, const uint8_t *sig, size_t siglen,
    char *why, size_t whylen);

/*
 * The DER of a parsed CSR, the bytes a key-change signature covers:
 * malloc'd into *der. It is re-encoded, and refused (SF_EINVAL) unless its
 * SHA-256 is ci->sha256, the fingerprint of the bytes received, so that
 * the signature is checked over exactly what the device sent.
 */
int keysig_csr_der(const csr_info *ci, uint8_t **der, size_t *len,
    char *why, size_t whylen);

/*
 * Sign data with key as keysig_verify expects: *sig malloc'd. 0, or
 * SF_ECRYPTO (why says so) when the key cannot sign.
 */
int keysig_sign(EVP_PKEY *key, const uint8_t *data, size_t len, uint8_t **sig,
    size_t *siglen, char *why, size_t whylen);

#endif
