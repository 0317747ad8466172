/*
 * mirror.c - telling authz what the signer decided (see mirror.h).
 */
#include <stdio.h>

#include "mirror.h"
#include "rpc.h"
#include "secretfree/v1/registry.pb-c.h"

/* The registry takes at most this many updates per call. */
#define BATCH 5000

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
			return cli_error(c, CLI_EXIT_MIRROR, "%s at the signer,"
			    " but authz did not record it (%s: %s); the"
			    " change holds; run `secretfree audit reconcile`"
			    " once authz answers", what, rpc_code_name(st.code),
			    st.message);
		if (unknown)
			*unknown += resp->unknown;
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		resp = NULL;
	}
	return 0;
}
