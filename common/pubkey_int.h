/*
 * pubkey_int.h - helpers pubkey.c shares with csr.c inside libsfcommon.
 * Not part of the public interface (pubkey.h, csr.h): nothing outside
 * common/ includes this file.
 */
#ifndef SF_PUBKEY_INT_H
#define SF_PUBKEY_INT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/asn1t.h>
#include <openssl/x509.h>

#include "pubkey.h"

/*
 * SubjectPublicKeyInfo as an ASN.1 template of ours: X509_PUBKEY's fields
 * without its d2i callback, which makes OpenSSL 3.0 decode the key through
 * the provider decoders. csr.c embeds it in its CertificationRequestInfo.
 */
typedef struct {
	X509_ALGOR *alg;
	ASN1_BIT_STRING *key;
} SF_SPKI;
DECLARE_ASN1_FUNCTIONS(SF_SPKI)

/*
 * As pubkey_from_spki, from an SPKI already parsed with SF_SPKI (a CSR's).
 */
int pubkey_from_sf_spki(const SF_SPKI *spki, pubkey_info *out, char *why,
    size_t whylen);

/*
 * An EVP_PKEY (public) for a key pubkey_from_* accepted, made from its
 * parts with EVP_PKEY_fromdata (group name and point; n and e) or, for
 * Ed25519, from the raw bytes: no decoder. 0, SF_EINVAL, SF_ECRYPTO.
 */
int pubkey_evp(const pubkey_info *pk, EVP_PKEY **out);

/*
 * Strict standard base64 (padding required, blanks and newlines anywhere
 * ignored) into a malloc'd buffer. SF_EINVAL if the text is not base64 or
 * decodes to nothing.
 */
int pubkey_b64_decode(const char *in, size_t len, uint8_t **out,
    size_t *outlen);

/* SHA-256 with a digest fetched once per process. 0 or SF_ECRYPTO. */
int pubkey_sha256(const uint8_t *data, size_t len, uint8_t md[32]);

#endif
