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

struct csr_req;                 /* csr.c's parse of a request */

typedef struct {
	struct csr_req *req;      /* the parsed request (owned) */
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
 * Checks, in order, each failing with its own code and a sentence in why;
 * the cheap ones come first, so that the self-signature is verified only
 * for a request that passed everything else (a key with a huge RSA
 * exponent costs nothing):
 *  - len > max_len                                 SF_ETOOBIG
 *  - not a CSR in any of the forms above           SF_EINVAL
 *  - key refused by the policy (pubkey.h)          SF_EKEYTYPE
 *  - subject has no CN, several CNs, or a CN that is
 *    not a valid device id (device_id_valid())     SF_EINVAL
 *  - signed with MD5 or SHA-1 (csr_verify)         SF_EINVAL
 *  - the self-signature does not verify            SF_EINVAL
 * Extensions in the request are ignored: they are requests, not orders.
 * On success *out owns its members; release them with csr_info_fini().
 */
int csr_parse(const uint8_t *data, size_t len, size_t max_len, csr_info *out,
    char *why, size_t whylen);
void csr_info_fini(csr_info *ci);   /* NULL-safe; zeroes *ci */

/*
 * The request csr_parse parsed, written again in DER (the info as
 * received, the rest re-encoded, as i2d_X509_REQ would write it) into
 * *der (OPENSSL_malloc'd). Its length, or -1.
 */
int csr_encode(const csr_info *ci, unsigned char **der);

/*
 * The last two checks of csr_parse, for a request parsed elsewhere (the
 * signer's server CSRs): its signature algorithm must not hash with MD5
 * or SHA-1 (nor MD2, MD4, MDC-2, RIPEMD-160), then the self-signature must
 * verify with pk, the request's key. Check the key's policy first. 0, or
 * SF_EINVAL with why naming the algorithm or the bad signature.
 */
int csr_verify(X509_REQ *req, EVP_PKEY *pk, char *why, size_t whylen);

#endif
