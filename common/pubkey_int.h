/*
 * pubkey_int.h - helpers pubkey.c shares with csr.c inside libsfcommon.
 * Not part of the public interface (pubkey.h, csr.h): nothing outside
 * common/ includes this file.
 */
#ifndef SF_PUBKEY_INT_H
#define SF_PUBKEY_INT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "pubkey.h"

/*
 * As pubkey_from_spki, from an SPKI OpenSSL has already parsed (and whose
 * key it has already decoded), such as a CSR's: the request's key is taken
 * apart from its parsed fields, without an encode/decode round trip.
 */
int pubkey_from_x509_pubkey(const X509_PUBKEY *xpk, pubkey_info *out,
    char *why, size_t whylen);

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
