/*
 * profile.h - the parts the signer builds certificates from: subjects,
 * serials, public keys and every extension. Nothing here copies anything
 * from a CSR but its public key: CSR extensions are requests, not orders.
 */
#ifndef SF_PROFILE_H
#define SF_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pubkey.h"

#define SERIAL_LEN 16
#define SERIAL_MARK 0x01
#define SERIAL_RANDOM_AT 5

/*
 * Parse a subject in OpenSSL's "/C=US/O=Org/CN=name" form or RFC 2253-ish
 * "C=US, O=Org, CN=name" form (a backslash escapes the separator).
 * Attributes: C, ST, L, O, OU, CN, DC, emailAddress, serialNumber, UID.
 * UTF-8 values. NULL with why set on error.
 */
X509_NAME *profile_subject_parse(const char *s, char *why, size_t whylen);
/* The subject in the one-line "/C=US/O=..." form that
 * profile_subject_parse reads back: UTF-8 values, '/' and backslash
 * escaped with a backslash (malloc'd). */
char *profile_subject_fmt(const X509_NAME *n);

/* A fresh positive serial of SERIAL_LEN bytes and its text form (uppercase
 * hex, as `openssl x509 -serial` prints it): the byte SERIAL_MARK (never
 * 0, so DER keeps all 16 bytes, and below 0x80, so positive), the Unix
 * second of issuance as 4 big-endian bytes, then 11 bytes (88 bits) from
 * the CSPRNG, over the 64 the CA/Browser Forum asks for. Serials sort by
 * issuance time; within a second, at random. */
int profile_serial_new(uint8_t serial[SERIAL_LEN], char hex[2 * SERIAL_LEN + 1]);
/* Put a serial into a certificate. */
int profile_set_serial(X509 *x, const uint8_t *serial, size_t len);
/* The text form of a certificate's serial (uppercase hex) into out. */
int profile_serial_hex(const ASN1_INTEGER *ai, char *out, size_t outlen);

/* notBefore a minute ago (device clocks are not all right), notAfter
 * days from now. SF_ECRYPTO if OpenSSL fails. */
int profile_set_validity(X509 *x, int days);
/* An ASN1_TIME as seconds since the epoch; 0 if it does not parse. */
int64_t profile_time_unix(const ASN1_TIME *t);

/* Give x the canonical public key: its SPKI carries pk's canonical bytes
 * and X509_get0_pubkey(x) answers the same key. For CA certificates and
 * anything kept and used in memory. */
int profile_set_pubkey(X509 *x, const pubkey_info *pk);
/*
 * The issuance path: the canonical bytes without an OpenSSL decode/encode
 * round trip (X509_set_pubkey re-encodes through the provider encoders:
 * 44% of an issuance's instructions). On a fresh X509 the decoded key
 * stays unset (X509_get0_pubkey answers NULL); the DER carries the key.
 * For certificates that are only encoded and returned.
 */
int profile_set_pubkey_fast(X509 *x, const pubkey_info *pk);
/* SubjectKeyIdentifier: SHA-1 of the subjectPublicKey bits (RFC 5280 4.2.1.2 (1)). */
void profile_key_id(const uint8_t *key_bits, size_t len, uint8_t id[20]);

/* Extensions (new objects, owned by the caller; NULL on error). */
X509_EXTENSION *profile_ext_basic(int ca, int path_len);   /* critical; path_len -1: none */
X509_EXTENSION *profile_ext_key_usage(unsigned bits);      /* critical; KU_* bits */
X509_EXTENSION *profile_ext_eku(const int *nids, size_t n);
X509_EXTENSION *profile_ext_ski(const uint8_t id[20]);
X509_EXTENSION *profile_ext_aki(const uint8_t id[20]);
X509_EXTENSION *profile_ext_crldp(const char *url);
/* A CRL's issuingDistributionPoint naming url (critical), for a CRL that
 * covers the certificates whose CRL DP is url. */
X509_EXTENSION *profile_ext_idp(const char *url);
X509_EXTENSION *profile_ext_aia(const char *ocsp_url, const char *ca_issuers_url);
/* Name constraints from newline-separated "DNS:.example.com",
 * "IP:10.0.0.0/255.0.0.0", "email:example.com", "URI:.example.com"
 * (critical). NULL and why on a bad entry; *none = 1 when both are empty. */
X509_EXTENSION *profile_ext_name_constraints(const char *permitted,
    const char *excluded, int *none, char *why, size_t whylen);
/* subjectAltName from DNS names and IP addresses. */
X509_EXTENSION *profile_ext_san(char *const *dns, size_t ndns,
    char *const *ips, size_t nips, char *why, size_t whylen);

/* Add ext to x (x keeps a copy). */
int profile_add(X509 *x, const X509_EXTENSION *ext);
/* Add ext to x and free ext. A NULL ext (a constructor above that failed)
 * is SF_ECRYPTO, so that constructors can be passed in directly. */
int profile_add0(X509 *x, X509_EXTENSION *ext);

/* PEM of a certificate (malloc'd, NUL-terminated). */
char *profile_cert_pem(X509 *x);

#endif
