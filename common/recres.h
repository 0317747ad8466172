/*
 * recres.h - factory-import batches on the wire: the per-record checks and
 * the per-record results, shared by the signer's
 * CaAdmin.RegisterDeviceKeys and authz's Registry.ImportDevices so that
 * both refuse the same things with the same reasons and messages.
 *
 * Store outcomes (the signer's JOURNAL_DEV_* and authz's REGISTRY_* use the
 * same numbers): 1 imported, 2 unchanged, 3 id has another key, 4 key has
 * another id, 5 id and key known with another product line or region.
 */
#ifndef SF_RECRES_H
#define SF_RECRES_H

#include <stddef.h>
#include <stdint.h>

#include "rpc.h"
#include "secretfree/v1/common.pb-c.h"

#define RECRES_MAX_RECORDS 10000

typedef struct {
	size_t index;                  /* into the request's records */
	const char *device_id;
	const uint8_t *spki;           /* canonical DER (call memory) */
	size_t spki_len;
	const uint8_t *key_sha256;     /* 32 bytes (call memory) */
	const char *product_line;
	const char *region;
} recres_valid;

/*
 * Check every record (devrec_check) and start resp's results: refused
 * records get their result now; the others are returned in *valid (call
 * memory) for the caller's store. RPC_OK or a status (too many records).
 */
int recres_check(rpc_call *call, Secretfree__V1__DeviceKeyRecord *const *recs,
    size_t n, Secretfree__V1__ImportResult *resp, recres_valid **valid,
    size_t *nvalid);
/* Fill the results of the valid records from the store's outcomes and
 * count imported / unchanged / refused. */
void recres_finish(rpc_call *call, Secretfree__V1__ImportResult *resp,
    const recres_valid *valid, size_t nvalid, const int *outcome);

#endif
