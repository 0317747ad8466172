/*
 * birth.h - birth certificates: a manufacturer's certificate for a device,
 * made in the factory by the manufacturer's own CA, that lets a device
 * unknown to us be registered on first contact (just-in-time
 * provisioning). The manufacturer's CA is registered with us (never its
 * key); a birth certificate is good when it chains to one of the CAs
 * registered for the product line, is in its validity period, is not on
 * the manufacturer's CRL (when one is registered) and names a device:
 * CN = a device id, not a CA. authz and the signer each check it with
 * this code, each against its own copy of the registered CAs.
 */
#ifndef SF_BIRTH_H
#define SF_BIRTH_H

#include <stddef.h>
#include <stdint.h>

#include "pubkey.h"

/* A registered manufacturer CA (all borrowed). */
typedef struct {
	const char *name;          /* the manufacturer's name with us */
	const uint8_t *cert;       /* its CA certificate, PEM or DER */
	size_t cert_len;
	const uint8_t *crl;        /* its CRL, PEM or DER; NULL: none */
	size_t crl_len;
} birth_anchor;

/* What a verified birth certificate says. */
typedef struct {
	char device_id[DEVICE_ID_MAX + 1];  /* the leaf's CN */
	uint8_t key_sha256[PUBKEY_FP_LEN];  /* its key's fingerprint */
	char serial[64];                    /* upper-case hex */
	char manufacturer[64];              /* the anchor's name */
	size_t anchor;                      /* its index */
} birth_info;

#define BIRTH_MAX_LEN 65536

/*
 * Verify the birth certificate pem (PEM: the leaf, then any intermediates
 * the device sends; at most BIRTH_MAX_LEN bytes) at time now against the
 * anchors, each tried alone: an anchor need not be self-signed
 * (X509_V_FLAG_PARTIAL_CHAIN), and when it has a CRL the leaf must be
 * issued by it directly and not be listed (X509_V_FLAG_CRL_CHECK; an
 * expired CRL refuses). The leaf must not be a CA, its CN must be a
 * device id (device_id_valid) and its key one the device key policy
 * accepts. 0 with *out; SF_EINVAL for bytes that are no certificate;
 * SF_EPERM with a sentence in why for anything else (issued by no
 * registered CA, expired, not yet valid, revoked, a CA, a bad CN or key).
 */
int birth_verify(const char *pem, size_t len, const birth_anchor *anchors,
    size_t n, int64_t now, birth_info *out, char *why, size_t whylen);

/* A manufacturer's CA certificate, as registration checks it. */
typedef struct {
	char *subject;             /* one line, RFC 2253; malloc'd */
	char *cn;                  /* its CN ("" if none); malloc'd */
	uint8_t spki_sha256[32];   /* SHA-256 of its DER SubjectPublicKeyInfo */
	uint8_t *der;              /* malloc'd */
	size_t der_len;
	char *pem;                 /* malloc'd */
	int64_t not_after;
} birth_ca;

/*
 * Parse a manufacturer's CA certificate (one PEM certificate or DER; a
 * PEM holding a private key is refused outright: we never hold the
 * manufacturer's key). It must be a CA (basicConstraints CA:TRUE and,
 * with keyUsage, keyCertSign) and not expired at now. 0 with *out
 * (birth_ca_fini); SF_EINVAL with why.
 */
int birth_ca_parse(const uint8_t *b, size_t len, int64_t now, birth_ca *out,
    char *why, size_t whylen);
void birth_ca_fini(birth_ca *c);   /* NULL-safe; zeroes *c */

/*
 * Parse a CRL (PEM or DER) for the CA certificate ca (PEM or DER): its
 * issuer must be the CA's subject and its signature verify with the
 * CA's key. 0 with *number (its CRL number; 0 when it has none),
 * *next_update, and *der / *pem (malloc'd; either pointer may be NULL);
 * SF_EINVAL with why.
 */
int birth_crl_parse(const uint8_t *crl, size_t len, const uint8_t *ca,
    size_t ca_len, int64_t *number, int64_t *next_update, uint8_t **der,
    size_t *der_len, char **pem, char *why, size_t whylen);

/* A name for a manufacturer made from a CA's CN: lower case, each run of
 * characters outside [a-z0-9] one '-', at most 32, trimmed of '-'; into
 * out[33]; "" when nothing is left. */
void birth_name_from_cn(const char *cn, char out[33]);

#endif
