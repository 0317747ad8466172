/*
 * devrec.c - the checks both daemons make on one factory record (see
 * devrec.h). authz and the signer each run exactly this code, so that a
 * record one of them refuses is refused by the other for the same reason
 * and with the same sentence.
 */
#include <stdio.h>
#include <string.h>

#include "devrec.h"
#include "err.h"

/* secretfree.v1.RefusalReason numbers (common.proto). */
enum { R_BAD_DEVICE_ID = 1, R_BAD_KEY = 2, R_KEY_TYPE = 3,
    R_BAD_PRODUCT_LINE = 6, R_BAD_REGION = 7 };

#define DIGITS "0123456789"
#define UPPER "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define LOWER "abcdefghijklmnopqrstuvwxyz"

/* s is 1..max characters, each one of set. */
static int
spelled(const char *s, size_t max, const char *set)
{
	size_t n = s ? strlen(s) : 0;

	return n > 0 && n <= max && strspn(s, set) == n;
}

int
sf_name_valid(const char *s)
{
	return spelled(s, 32, LOWER DIGITS "-") && s[0] != '-';
}

int
sf_serial_valid(const char *s)
{
	return spelled(s, 40, DIGITS "ABCDEF");
}

int
sf_enrollment_id_valid(const char *s)
{
	return spelled(s, 64, UPPER LOWER DIGITS "._:-");
}

int
devrec_check(const char *device_id, const uint8_t *spki, size_t spki_len,
    const char *product_line, const char *region, pubkey_info *pk,
    char *why, size_t whylen)
{
	int rc;

	memset(pk, 0, sizeof *pk);
	if (!device_id_valid(device_id, why, whylen))
		return R_BAD_DEVICE_ID;
	if (!sf_name_valid(product_line)) {
		snprintf(why, whylen, "product line \"%s\" is not a valid id"
		    " (1-32 of a-z, 0-9, -)", product_line ? product_line : "");
		return R_BAD_PRODUCT_LINE;
	}
	if (region && *region && !sf_name_valid(region)) {
		snprintf(why, whylen, "region \"%s\" is not a valid id"
		    " (1-32 of a-z, 0-9, -)", region);
		return R_BAD_REGION;
	}
	rc = pubkey_from_spki(spki, spki_len, pk, why, whylen);
	if (rc == SF_EKEYTYPE)
		return R_KEY_TYPE;
	if (rc)
		return R_BAD_KEY;
	return 0;
}
