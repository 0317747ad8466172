/*
 * rpc_revoke.c - CaAdmin's revocation handlers (admin socket): one
 * certificate by serial. The journal has the revocation before the reply;
 * CRLs and OCSP responses follow through the background tasks.
 */
#include <string.h>

#include "devrec.h"
#include "err.h"
#include "revoke.h"
#include "rpc_admin.h"

int
rpc_admin_revoke_cert(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__RevokeCertificateRequest *req =
	    (const void *)reqm;
	signer_ctx *ctx = arg;
	journal_cert_row row;
	char why[256] = "";
	int64_t id;
	int rc, already;

	if (!sf_serial_valid(req->serial))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "serial must be"
		    " 1-40 upper-case hex digits, as openssl x509 -serial"
		    " prints it");
	if ((rc = rpc_admin_ca_id(call, ctx, req->ca_name, &id)) != 0)
		return rc;
	if ((rc = revoke_cert(ctx, id, req->serial, req->reason, &row,
	    &already, why, sizeof why)) != 0)
		return rpc_fail_err(call, rc, "%s", why);
	rpc_admin_fill_cert(call, &row,
	    (Secretfree__V1__CertificateInfo *)respm);
	journal_cert_row_fini(&row);
	return RPC_OK;
}
