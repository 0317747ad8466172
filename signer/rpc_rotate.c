/*
 * rpc_rotate.c - CaAdmin's handlers for a CA's generations (admin
 * socket): RotateCa (a new generation; the old one RETIRING), RetireCa
 * (the end of the overlap) and RevokeCa (a generation and, with cascade,
 * everything below it, in batches). Each change is in the journal before
 * the reply; CRLs and OCSP responses follow through the background
 * tasks, which are kicked.
 */
#include <stdio.h>
#include <string.h>

#include "devrec.h"
#include "err.h"
#include "pbenum.h"
#include "revoke.h"
#include "rpc_admin.h"

#define REVOKE_BATCH_DEFAULT 5000
#define REVOKE_BATCH_MAX 20000

/* name required; generation, if any, a valid id. RPC_OK or the status
 * the call failed with. */
static int
check_name(rpc_call *call, const char *name, const char *generation)
{
	if (*name == '\0')
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "name is required");
	if (*generation && !sf_name_valid(generation))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "generation must be"
		    " 1-32 of a-z, 0-9, -");
	return RPC_OK;
}

int
rpc_admin_rotate_ca(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__RotateCaRequest *req = (const void *)reqm;
	Secretfree__V1__RotateCaResponse *resp = (void *)respm;
	signer_ctx *ctx = arg;
	/* A key type out of range is refused with the CA's other checks. */
	ca_rotate_req r = { req->name, (int)req->key_type, req->generation };
	ca *c, *prev;
	char *csr = NULL, why[320];
	int rc;

	if ((rc = check_name(call, req->name, req->generation)) != RPC_OK)
		return rc;
	if ((rc = ca_rotate(ctx->cas, &r, &c, &prev, &csr, why,
	    sizeof why)) != 0)
		return rpc_fail_err(call, rc, "%s", why);
	maint_kick(ctx->mt);
	resp->ca = rpc_admin_ca_info(call, ctx, c);
	resp->previous = rpc_admin_ca_info(call, ctx, prev);
	resp->csr_pem = rpc_call_strdup(call, csr ? csr : "");
	free(csr);
	return RPC_OK;
}

int
rpc_admin_retire_ca(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__RetireCaRequest *req = (const void *)reqm;
	signer_ctx *ctx = arg;
	char why[320];
	ca *c;
	int rc;

	if ((rc = check_name(call, req->name, req->generation)) != RPC_OK)
		return rc;
	if ((rc = ca_retire(ctx->cas, req->name, req->generation, &c, why,
	    sizeof why)) != 0)
		return rpc_fail_err(call, rc, "%s", why);
	maint_kick(ctx->mt);
	rpc_admin_fill_ca(call, ctx, c, (Secretfree__V1__CaInfo *)respm);
	return RPC_OK;
}

/* This call's revocations as the CertificateStatusUpdates authz mirrors. */
static void
fill_revoked(rpc_call *call, const ca *c, const ca_revoke_result *res,
    Secretfree__V1__RevokeCaResponse *resp)
{
	resp->revoked = rpc_call_alloc(call, (res->ncerts ? res->ncerts : 1) *
	    sizeof *resp->revoked);
	for (size_t i = 0; resp->revoked && i < res->ncerts; i++) {
		Secretfree__V1__CertificateStatusUpdate *u =
		    rpc_call_new_message(call,
		    &secretfree__v1__certificate_status_update__descriptor);

		if (u == NULL)
			break;
		u->serial = rpc_call_strdup(call, res->certs[i].serial);
		u->device_id = rpc_call_strdup(call, res->certs[i].device_id);
		u->status = CERT_REVOKED;
		u->reason = ca_revoke_leaf_reason(c->rec.revocation_reason);
		u->revoked_at = c->rec.revoked_at;
		resp->revoked[resp->n_revoked++] = u;
	}
	resp->crls_regenerated = rpc_call_alloc(call, (res->nchanged ?
	    res->nchanged : 1) * sizeof(char *));
	for (size_t i = 0; resp->crls_regenerated && i < res->nchanged; i++) {
		char buf[160];

		snprintf(buf, sizeof buf, "%s/%s", res->changed[i]->rec.name,
		    res->changed[i]->rec.generation);
		resp->crls_regenerated[resp->n_crls_regenerated++] =
		    rpc_call_strdup(call, buf);
	}
}

int
rpc_admin_revoke_ca(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__RevokeCaRequest *req = (const void *)reqm;
	Secretfree__V1__RevokeCaResponse *resp = (void *)respm;
	signer_ctx *ctx = arg;
	ca_revoke_req r;
	ca_revoke_result res;
	char why[320];
	ca *c;
	int rc;

	if ((rc = check_name(call, req->name, req->generation)) != RPC_OK)
		return rc;
	if (req->max_certificates > REVOKE_BATCH_MAX)
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "max_certificates"
		    " must be at most %d", REVOKE_BATCH_MAX);
	r.reason = req->reason;
	r.cascade = req->cascade;
	r.max = req->max_certificates ? req->max_certificates :
	    REVOKE_BATCH_DEFAULT;
	if ((rc = ca_pick(ctx->cas, req->name, req->generation, &c, why,
	    sizeof why)) != 0 ||
	    (rc = ca_revoke(ctx->cas, c, &r, &res, why, sizeof why)) != 0)
		return rpc_fail_err(call, rc, "%s", why);
	if (res.cas_revoked || res.ncerts)
		maint_kick(ctx->mt);
	resp->ca = rpc_admin_ca_info(call, ctx, c);
	resp->certificates_revoked = (uint32_t)res.ncerts;
	resp->cas_revoked = (uint32_t)res.cas_revoked;
	resp->remaining = (uint64_t)res.remaining;
	fill_revoked(call, c, &res, resp);
	ca_revoke_result_fini(&res);
	return RPC_OK;
}
