/*
 * csr.h - PKCS#10 certificate requests, as both authz and the signer check
 * them (each on its own: the signer trusts nothing authz did).
 */
#ifndef SF_CSR_H
#define SF_CSR_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "pubkey.h"

#define CSR_MAX_DEFAULT (16 * 1024)

typedef struct {
	X509_REQ *req;            /* the parsed request (owned) */
	char cn[DEVICE_ID_MAX + 1];  /* the subject's single CN: the device id */
	pubkey_info key;          /* canonical key, fingerprint, policy applied */
	uint8_t sha256[32];       /* SHA-256 of the DER CSR: the CSR fingerprint */
} csr_info;

/*
 * Parse and check a CSR. The bytes may be PEM ("CERTIFICATE REQUEST" or
 * "NEW CERTIFICATE REQUEST"), DER, or base64 of either (the reference's
 * `device-csr` header carries base64 of the PEM), told apart by content;
 * surrounding blanks are ignored, nothing else may follow the request.
 *
 * Checks, in order, each failing with its own code and a sentence in why:
 *  - len > max_len                                 SF_ETOOBIG
 *  - not a CSR in any of the forms above           SF_EINVAL
 *  - the self-signature does not verify            SF_EINVAL
 *  - subject has no CN, several CNs, or a CN that is
 *    not a valid device id (device_id_valid())     SF_EINVAL
 *  - key refused by the policy (pubkey.h)          SF_EKEYTYPE
 * Extensions in the request are ignored: they are requests, not orders.
 * On success *out owns its members; release them with csr_info_fini().
 */
int csr_parse(const uint8_t *data, size_t len, size_t max_len, csr_info *out,
    char *why, size_t whylen);
void csr_info_fini(csr_info *ci);   /* NULL-safe; zeroes *ci */

#endif
