/*
 * ocspmsg.h - what the signer (which answers OCSP) and authz (which serves
 * and caches the answers) both need to read in an RFC 6960 OCSP request,
 * and the unsigned OCSPResponse that carries only an error status. Both
 * sides parse with the same code, so that a request authz lets through is
 * one the signer reads the same way.
 */
#ifndef SF_OCSPMSG_H
#define SF_OCSPMSG_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ocsp.h>

/* The most CertIDs one request may ask about; more is malformed. */
#define OCSPMSG_MAX_IDS 16
/* The largest request read (a signed request with its certificates fits). */
#define OCSPMSG_MAX_REQUEST 16384

/*
 * Parse a DER OCSPRequest. 0 with *out (OCSP_REQUEST_free it), or SF_EINVAL
 * (why says which: empty, too large, not DER of an OCSPRequest, trailing
 * bytes, no CertID or more than OCSPMSG_MAX_IDS). The request's signature,
 * if any, and its extensions (a nonce among them) are not looked at.
 */
int ocspmsg_req_parse(const uint8_t *der, size_t len, OCSP_REQUEST **out,
    char *why, size_t whylen);

/*
 * The identity of what req asks about: the DER of each CertID, one after
 * another (a cache key: the nonce and the signature are not part of it).
 * *key is malloc'd. 0, SF_ENOMEM or SF_EINVAL.
 */
int ocspmsg_req_key(OCSP_REQUEST *req, uint8_t **key, size_t *len);

/*
 * The serial a CertID names as the signer's journal writes serials
 * (uppercase hex, two digits a byte, as `openssl x509 -serial` prints it)
 * into out (at least 2 * 20 + 1 bytes). SF_EINVAL for a negative, empty or
 * longer than 20-byte serial: no certificate here has one.
 */
int ocspmsg_serial_hex(const OCSP_CERTID *id, char *out, size_t outlen);

/*
 * The name OpenSSL gives a CertID's hash algorithm ("sha1", "sha256",
 * "sha384", "sha512") with *md set, or NULL for any other algorithm.
 */
const char *ocspmsg_hash_name(const OCSP_CERTID *id, const EVP_MD **md);

/*
 * An OCSPResponse with status (OCSP_RESPONSE_STATUS_MALFORMEDREQUEST,
 * _INTERNALERROR, _TRYLATER, _UNAUTHORIZED) and no response bytes: what a
 * responder answers when it does not answer. *der malloc'd. 0 or SF_ENOMEM.
 */
int ocspmsg_status_fmt(int status, uint8_t **der, size_t *len);

/* The OCSPResponse's status of a DER response; -1 if it does not parse. */
int ocspmsg_resp_status(const uint8_t *der, size_t len);

#endif
