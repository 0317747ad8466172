/* libFuzzer target: the factory key parsers (DER SPKI and text forms). */
#include <stddef.h>
#include <stdint.h>

#include <openssl/err.h>

#include "pubkey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	pubkey_info pk;
	char why[256];

	if (pubkey_from_spki(data, len, &pk, why, sizeof why) == 0)
		pubkey_info_free(&pk);
	if (pubkey_from_text((const char *)data, len, &pk, why, sizeof why) == 0)
		pubkey_info_free(&pk);
	ERR_clear_error();
	return 0;
}
