/*
 * rpc_signer.c - the Signer service (issuance socket, authz only).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devrec.h"
#include "err.h"
#include "log.h"
#include "renew.h"
#include "rpc_admin.h"
#include "secretfree/v1/signer.pb-c.h"
#include "signer.h"
#include "util.h"

static int
h_issue(rpc_call *call, const ProtobufCMessage *reqm, ProtobufCMessage *respm,
    void *arg)
{
	const Secretfree__V1__IssueRequest *req = (const void *)reqm;
	Secretfree__V1__IssueResponse *resp = (void *)respm;
	signer_ctx *ctx = arg;
	issue_req r;
	issue_result res;
	char why[256];
	int rc;

	memset(&r, 0, sizeof r);
	r.csr = req->csr.data;
	r.csr_len = req->csr.len;
	r.product_line = req->product_line;
	r.region = req->region;
	/* The requester is recorded as the peer says it and as we see it. */
	r.requester = req->requester;
	r.peer = rpc_call_peer(call);
	r.enrollment_id = req->enrollment_id;
	r.replaces_serial = req->replaces_serial;
	r.current_key_signature = req->current_key_signature.data;
	r.current_key_signature_len = req->current_key_signature.len;
	r.birth_cert = req->birth_certificate.data;
	r.birth_cert_len = req->birth_certificate.len;
	if ((rc = issue_device(&ctx->ic, &r, &res, why, sizeof why)) != 0) {
		log_info("issue refused for %s: %s", *res.device_id ?
		    res.device_id : "(no device id)", why);
		return rpc_fail_err(call, rc, "%s", why);
	}
	resp->serial = rpc_call_strdup(call, res.serial);
	resp->certificate_pem = rpc_call_strdup(call, res.cert_pem);
	resp->chain_pem = rpc_call_strdup(call, res.chain_pem);
	resp->ca_name = rpc_call_strdup(call, res.ca_name);
	resp->subject = rpc_call_strdup(call, res.subject);
	resp->not_before = res.not_before;
	resp->not_after = res.not_after;
	rpc_call_set_bytes(call, &resp->key_sha256, res.key_sha256, 32);
	resp->replayed = res.replayed;
	resp->status = res.status;
	resp->ack_deadline = res.ack_deadline;
	issue_result_fini(&res);
	return RPC_OK;
}

static int
h_get_ca_chain(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__GetCaChainRequest *req = (const void *)reqm;
	Secretfree__V1__GetCaChainResponse *resp = (void *)respm;
	signer_ctx *ctx = arg;
	ca *c;

	if (!sf_name_valid(req->product_line) || !sf_name_valid(req->region))
		return rpc_fail(call, RPC_INVALID_ARGUMENT,
		    "product_line and region are required");
	if ((c = ca_find_issuing(ctx->cas, req->product_line, req->region)) ==
	    NULL)
		return rpc_fail(call, RPC_NOT_FOUND, "no active issuing CA"
		    " %s.%s", req->region, req->product_line);
	resp->ca_name = rpc_call_strdup(call, c->rec.name);
	resp->chain_pem = rpc_call_strdup(call, c->chain_pem);
	return RPC_OK;
}

/*
 * Signer.OcspRespond: the answer to a DER OCSP request (ocsp.h). A request
 * that is not one gets an OCSPResponse saying malformedRequest, not a
 * gRPC error: authz passes the bytes on as they are.
 */
static int
h_ocsp_respond(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__OcspRespondRequest *req = (const void *)reqm;
	Secretfree__V1__OcspRespondResponse *resp = (void *)respm;
	signer_ctx *ctx = arg;
	uint8_t *der = NULL;
	size_t len = 0;
	int64_t next_update = 0;
	int rc;

	if (ctx->oc == NULL)
		return rpc_fail(call, RPC_UNAVAILABLE, "the OCSP responder is"
		    " not running");
	if ((rc = ocsp_respond(ctx->oc, req->request_der.data,
	    req->request_der.len, sf_now(), &der, &len, &next_update)) != 0)
		return rpc_fail_err(call, rc, "no OCSP response could be made");
	rpc_call_set_bytes(call, &resp->response_der, der, len);
	resp->next_update = next_update;
	free(der);
	return RPC_OK;
}

/*
 * Signer.Acknowledge: the device installed its renewed certificate
 * (renew.h). authz asks only once the device proved it holds the new
 * certificate's key; the signer checks the rest itself.
 */
static int
h_acknowledge(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__SignerAcknowledgeRequest *req =
	    (const void *)reqm;
	journal_cert_row row;
	char why[256] = "";
	int rc;

	if ((rc = renew_acknowledge(arg, req->device_id, req->serial, &row,
	    why, sizeof why)) != 0) {
		log_info("acknowledge refused for %s (%s): %s", req->device_id,
		    req->serial, why);
		return rpc_fail_err(call, rc, "%s", why);
	}
	rpc_admin_fill_cert(call, &row, (Secretfree__V1__CertificateInfo *)respm);
	journal_cert_row_fini(&row);
	return RPC_OK;
}

static const rpc_method signer_methods[] = {
	{ "Issue", RPC_UNARY, h_issue, SIGNER_ISSUANCE },
	{ "GetCrl", RPC_UNARY, rpc_crl_get, SIGNER_ISSUANCE },
	{ "OcspRespond", RPC_UNARY, h_ocsp_respond, SIGNER_ISSUANCE },
	{ "GetCaChain", RPC_UNARY, h_get_ca_chain, SIGNER_ISSUANCE },
	{ "Acknowledge", RPC_UNARY, h_acknowledge, SIGNER_ISSUANCE },
	{ "GetCrlIndex", RPC_UNARY, rpc_crl_index, SIGNER_ISSUANCE },
};

int
rpc_signer_register(rpc_server *srv, signer_ctx *ctx)
{
	return rpc_server_add_service(srv, &secretfree__v1__signer__descriptor,
	    signer_methods, sizeof signer_methods / sizeof signer_methods[0],
	    ctx);
}
