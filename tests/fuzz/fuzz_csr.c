/* libFuzzer target: csr_parse on raw bytes (what Enroll and Signer.Issue
 * receive in their csr field). */
#include <stddef.h>
#include <stdint.h>

#include <openssl/err.h>

#include "csr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	csr_info ci;
	char why[256];

	if (csr_parse(data, len, CSR_MAX_DEFAULT, &ci, why, sizeof why) == 0)
		csr_info_fini(&ci);
	ERR_clear_error();
	return 0;
}
