/*
 * devrec.h - the checks authz and the signer both make on a factory
 * record, so that both refuse the same things for the same reasons
 * (DESIGN.md "Conventions": factory import).
 */
#ifndef SF_DEVREC_H
#define SF_DEVREC_H

#include <stddef.h>
#include <stdint.h>

#include "pubkey.h"

/* Product line and region ids: 1-32 of [a-z0-9-], starting alphanumeric. */
int sf_name_valid(const char *s);
/* Serials in text, as the signer writes them and `openssl x509 -serial`
 * prints them: 1-40 upper-case hex digits (RFC 5280: at most 20 octets). */
int sf_serial_valid(const char *s);
/* Enrollment ids as authz makes them and the signer journals them: 1-64
 * of [A-Za-z0-9._:-]. */
int sf_enrollment_id_valid(const char *s);

/*
 * Check one record: device id syntax, product line (required) and region
 * (optional) syntax, the key parses and the policy allows it. Returns 0
 * with *pk filled (canonical key and fingerprint; free with
 * pubkey_info_free), or a secretfree.v1.RefusalReason number
 * (BAD_DEVICE_ID, BAD_PRODUCT_LINE, BAD_REGION, BAD_KEY,
 * KEY_TYPE_NOT_ALLOWED) with a sentence in why.
 */
int devrec_check(const char *device_id, const uint8_t *spki, size_t spki_len,
    const char *product_line, const char *region, pubkey_info *pk,
    char *why, size_t whylen);

#endif
