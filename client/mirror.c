/*
 * mirror.c - telling authz what the signer decided (see mirror.h).
 */
#include <stdio.h>

#include "mirror.h"
#include "rpc.h"
#include "secretfree/v1/registry.pb-c.h"

/* The registry takes at most this many updates per call. */
#define BATCH 5000

/* The message every mirror failure gives; returns CLI_EXIT_MIRROR. */
static int
not_followed(cli *c, const char *what, const rpc_status *st)
{
	return cli_error(c, CLI_EXIT_MIRROR, "%s at the signer, but authz did"
	    " not record it (%s: %s); the change holds; run `secretfree audit"
	    " reconcile` once authz answers", what, rpc_code_name(st->code),
	    st->message);
}

int
mirror_cert_status(cli *c, const char *what,
    Secretfree__V1__CertificateStatusUpdate *const *updates, size_t n,
    size_t *unknown)
{
	Secretfree__V1__UpdateCertificateStatusRequest req =
	    SECRETFREE__V1__UPDATE_CERTIFICATE_STATUS_REQUEST__INIT;
	Secretfree__V1__UpdateCertificateStatusResponse *resp = NULL;
	rpc_status st;

	if (unknown)
		*unknown = 0;
	for (size_t off = 0; off < n; off += BATCH) {
		req.updates = (Secretfree__V1__CertificateStatusUpdate **)
		    updates + off;
		req.n_updates = n - off < BATCH ? n - off : BATCH;
		if (cli_call_quiet(c, CLI_AUTHZ,
		    &secretfree__v1__registry__descriptor,
		    "UpdateCertificateStatus", &req.base,
		    (ProtobufCMessage **)&resp, &st) != 0)
			return not_followed(c, what, &st);
		if (unknown)
			*unknown += resp->unknown;
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		resp = NULL;
	}
	return 0;
}

int
mirror_device_state(cli *c, const char *what, const char *method,
    const char *device_id, const char *reason, Secretfree__V1__Device **out)
{
	Secretfree__V1__SetDeviceStateRequest req =
	    SECRETFREE__V1__SET_DEVICE_STATE_REQUEST__INIT;
	Secretfree__V1__Device *d = NULL;
	rpc_status st;

	if (out)
		*out = NULL;
	req.device_id = (char *)device_id;
	req.reason = (char *)(reason ? reason : "");
	if (cli_call_quiet(c, CLI_AUTHZ, &secretfree__v1__registry__descriptor,
	    method, &req.base, (ProtobufCMessage **)&d, &st) != 0)
		return not_followed(c, what, &st);
	if (out)
		*out = d;
	else
		protobuf_c_message_free_unpacked(&d->base, NULL);
	return 0;
}
