/*
 * recres.c - factory-import batches on the wire (see recres.h).
 */
#include <string.h>

#include "devrec.h"
#include "pubkey.h"
#include "recres.h"

int
recres_check(rpc_call *call, Secretfree__V1__DeviceKeyRecord *const *recs,
    size_t n, Secretfree__V1__ImportResult *resp, recres_valid **validp,
    size_t *nvalid)
{
	recres_valid *valid;
	size_t nv = 0;

	*validp = NULL;
	*nvalid = 0;
	if (n > RECRES_MAX_RECORDS)
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "at most %d records"
		    " per batch, not %zu", RECRES_MAX_RECORDS, n);
	resp->results = rpc_call_alloc(call, (n ? n : 1) * sizeof(void *));
	valid = rpc_call_alloc(call, (n ? n : 1) * sizeof *valid);
	if (resp->results == NULL || valid == NULL)
		return rpc_fail(call, RPC_INTERNAL, "out of memory");
	resp->n_results = n;
	for (size_t i = 0; i < n; i++) {
		const Secretfree__V1__DeviceKeyRecord *d = recs[i];
		Secretfree__V1__RecordResult *r = rpc_call_new_message(call,
		    &secretfree__v1__record_result__descriptor);
		pubkey_info pk;
		char why[200];
		int reason;

		if (r == NULL)
			return rpc_fail(call, RPC_INTERNAL, "out of memory");
		resp->results[i] = r;
		r->index = (uint32_t)i;
		r->line = d->line;
		r->device_id = rpc_call_strdup(call, d->device_id);
		reason = devrec_check(d->device_id, d->spki_der.data,
		    d->spki_der.len, d->product_line, d->region, &pk, why,
		    sizeof why);
		if (reason) {
			r->outcome = SECRETFREE__V1__RECORD_OUTCOME__RECORD_OUTCOME_REFUSED;
			r->reason = reason;
			r->message = rpc_call_strdup(call, why);
			continue;
		}
		rpc_call_set_bytes(call, &r->key_sha256, pk.sha256, 32);
		valid[nv].index = i;
		valid[nv].device_id = d->device_id;
		valid[nv].spki = rpc_call_alloc(call, pk.spki_len);
		if (valid[nv].spki)
			memcpy((uint8_t *)valid[nv].spki, pk.spki, pk.spki_len);
		valid[nv].spki_len = pk.spki_len;
		valid[nv].key_sha256 = r->key_sha256.data;
		valid[nv].product_line = d->product_line;
		valid[nv].region = d->region;
		pubkey_info_free(&pk);
		if (valid[nv].spki == NULL || valid[nv].key_sha256 == NULL)
			return rpc_fail(call, RPC_INTERNAL, "out of memory");
		nv++;
	}
	*validp = valid;
	*nvalid = nv;
	return RPC_OK;
}

void
recres_finish(rpc_call *call, Secretfree__V1__ImportResult *resp,
    const recres_valid *valid, size_t nvalid, const int *outcome)
{
	for (size_t k = 0; k < nvalid; k++) {
		Secretfree__V1__RecordResult *r = resp->results[valid[k].index];
		const char *id = valid[k].device_id;

		r->outcome = SECRETFREE__V1__RECORD_OUTCOME__RECORD_OUTCOME_REFUSED;
		switch (outcome[k]) {
		case 1:
			r->outcome = SECRETFREE__V1__RECORD_OUTCOME__RECORD_OUTCOME_IMPORTED;
			break;
		case 2:
			r->outcome = SECRETFREE__V1__RECORD_OUTCOME__RECORD_OUTCOME_UNCHANGED;
			break;
		case 3:
			r->reason = SECRETFREE__V1__REFUSAL_REASON__REFUSAL_REASON_ID_HAS_OTHER_KEY;
			r->message = rpc_call_printf(call, "device %s is"
			    " registered with another key", id);
			break;
		case 4:
			r->reason = SECRETFREE__V1__REFUSAL_REASON__REFUSAL_REASON_KEY_HAS_OTHER_ID;
			r->message = rpc_call_printf(call, "the key of %s is"
			    " registered under another device id", id);
			break;
		default:
			r->reason = SECRETFREE__V1__REFUSAL_REASON__REFUSAL_REASON_ID_HAS_OTHER_PLACE;
			r->message = rpc_call_printf(call, "device %s is"
			    " registered for another product line or region",
			    id);
			break;
		}
	}
	for (size_t i = 0; i < resp->n_results; i++) {
		switch (resp->results[i]->outcome) {
		case SECRETFREE__V1__RECORD_OUTCOME__RECORD_OUTCOME_IMPORTED:
			resp->imported++;
			break;
		case SECRETFREE__V1__RECORD_OUTCOME__RECORD_OUTCOME_UNCHANGED:
			resp->unchanged++;
			break;
		default:
			resp->refused++;
		}
	}
}
