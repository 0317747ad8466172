/*
 * rpc_provisioning.c - the Provisioning service, for devices over TLS and
 * for local tools on the admin socket: Enroll (enroll.c decides), and
 * FetchCertificate / StreamCertificate, which serve an enrollment's PEM
 * bundle whole or in chunks with its length and SHA-256 so that a device
 * can resume and check what it got; the renewal methods are
 * rpc_renew.c's. A call over TLS with a renewed certificate pending
 * acknowledgement acknowledges it (renewal_first_use). Module errors reach
 * the caller through rpc_fail_err().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz.h"
#include "err.h"
#include "jitp.h"
#include "log.h"
#include "renewal.h"
#include "secretfree/v1/provisioning.pb-c.h"

#define CHUNK_DEFAULT 1024
#define CHUNK_MAX (64 * 1024)

void
rpc_provisioning_fill(rpc_call *call, const registry_enrollment *en,
    int replayed, ProtobufCMessage *respm)
{
	Secretfree__V1__EnrollResponse *resp = (void *)respm;
	char *bundle = NULL;
	size_t len = 0;
	uint8_t sha[32];

	resp->enrollment_id = rpc_call_strdup(call, en->enrollment_id);
	resp->serial = rpc_call_strdup(call, en->serial);
	resp->certificate_pem = rpc_call_strdup(call, en->certificate_pem);
	resp->chain_pem = rpc_call_strdup(call, en->chain_pem);
	resp->device_id = rpc_call_strdup(call, en->device_id);
	resp->ca_name = rpc_call_strdup(call, en->ca_name);
	resp->not_before = en->not_before;
	resp->not_after = en->not_after;
	resp->state = en->state;
	resp->replayed = replayed;
	resp->replaces_serial = rpc_call_strdup(call, en->replaces_serial);
	resp->ack_deadline = en->ack_deadline;
	resp->renew_after = en->renew_after;
	resp->renew_before = en->renew_before;
	if (enroll_bundle(en, &bundle, &len, sha) == 0) {
		resp->bundle_length = len;
		rpc_call_set_bytes(call, &resp->bundle_sha256, sha, 32);
		free(bundle);
	}
}

static int
h_enroll(rpc_call *call, const ProtobufCMessage *reqm, ProtobufCMessage *respm,
    void *arg)
{
	const Secretfree__V1__EnrollRequest *req = (const void *)reqm;
	authz_ctx *ctx = arg;
	enroll_req r;
	registry_enrollment en;
	const char *peer;
	char why[512];
	int rc, replayed;

	renewal_first_use(ctx, call);
	memset(&r, 0, sizeof r);
	r.csr = req->csr.data;
	r.csr_len = req->csr.len;
	r.idempotency_key = req->idempotency_key;
	r.region = req->region;
	/* A client certificate we did not issue is a birth certificate
	 * (the listener verified it against tls_client_ca and the
	 * manufacturer CAs; enroll.c checks it again). */
	peer = rpc_call_peer_cert(call);
	if (peer && !jitp_cert_ours(ctx->reg, peer))
		r.birth_cert_pem = peer;
	if ((rc = enroll_device(&ctx->en, &r, &en, &replayed, why,
	    sizeof why)) != 0) {
		log_info("enroll refused (%s, from %s): %s",
		    rpc_code_name(rpc_status_from_err(rc)),
		    rpc_call_peer(call), why);
		return rpc_fail_err(call, rc, "%s", why);
	}
	rpc_provisioning_fill(call, &en, replayed, respm);
	registry_enrollment_fini(&en);
	return RPC_OK;
}

static int
get_bundle(rpc_call *call, authz_ctx *ctx, const char *id,
    registry_enrollment *en, char **bundle, size_t *len, uint8_t sha[32])
{
	int rc;

	renewal_first_use(ctx, call);
	if (*id == '\0')
		return rpc_fail(call, RPC_INVALID_ARGUMENT,
		    "enrollment_id is required");
	rc = registry_enrollment_get(ctx->reg, id, en);
	if (rc == SF_ENOTFOUND)
		return rpc_fail_err(call, rc, "no enrollment %s", id);
	if (rc)
		return rpc_fail_err(call, rc, "registry lookup failed");
	if ((rc = enroll_bundle(en, bundle, len, sha)) != 0) {
		registry_enrollment_fini(en);
		return rpc_fail_err(call, rc, "cannot build the bundle");
	}
	return RPC_OK;
}

static int
h_fetch(rpc_call *call, const ProtobufCMessage *reqm, ProtobufCMessage *respm,
    void *arg)
{
	const Secretfree__V1__FetchCertificateRequest *req = (const void *)reqm;
	Secretfree__V1__FetchCertificateResponse *resp = (void *)respm;
	authz_ctx *ctx = arg;
	registry_enrollment en;
	char *bundle;
	size_t total, n;
	uint8_t sha[32];
	int rc;

	if ((rc = get_bundle(call, ctx, req->enrollment_id, &en, &bundle,
	    &total, sha)) != RPC_OK)
		return rc;
	if (req->offset > total) {
		rc = rpc_fail(call, RPC_OUT_OF_RANGE, "offset %llu is past the"
		    " end of the %zu-byte bundle",
		    (unsigned long long)req->offset, total);
		goto out;
	}
	n = total - (size_t)req->offset;
	if (req->length && req->length < n)
		n = (size_t)req->length;
	rpc_call_set_bytes(call, &resp->data, bundle + req->offset, n);
	resp->offset = req->offset;
	resp->total = total;
	rpc_call_set_bytes(call, &resp->sha256, sha, 32);
	resp->serial = rpc_call_strdup(call, en.serial);
	rc = RPC_OK;
out:
	free(bundle);
	registry_enrollment_fini(&en);
	return rc;
}

static int
h_stream(rpc_call *call, const ProtobufCMessage *reqm, ProtobufCMessage *respm,
    void *arg)
{
	const Secretfree__V1__StreamCertificateRequest *req =
	    (const void *)reqm;
	authz_ctx *ctx = arg;
	registry_enrollment en;
	char *bundle;
	size_t total, off, chunk;
	uint8_t sha[32];
	int rc;

	chunk = req->chunk_size ? req->chunk_size : CHUNK_DEFAULT;
	if (chunk < 16 || chunk > CHUNK_MAX)
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "chunk_size must be"
		    " 16..%d bytes", CHUNK_MAX);
	if ((rc = get_bundle(call, ctx, req->enrollment_id, &en, &bundle,
	    &total, sha)) != RPC_OK)
		return rc;
	if (req->offset > total) {
		rc = rpc_fail(call, RPC_OUT_OF_RANGE, "offset past the end");
		goto out;
	}
	rc = RPC_OK;
	for (off = (size_t)req->offset; off < total; off += chunk) {
		Secretfree__V1__FetchCertificateResponse m =
		    SECRETFREE__V1__FETCH_CERTIFICATE_RESPONSE__INIT;

		m.data.data = (uint8_t *)bundle + off;
		m.data.len = total - off < chunk ? total - off : chunk;
		m.offset = off;
		m.total = total;
		m.sha256.data = sha;
		m.sha256.len = 32;
		m.serial = en.serial;
		if (rpc_call_send(call, &m.base) != 0) {
			rc = RPC_CANCELLED;
			break;
		}
	}
out:
	free(bundle);
	registry_enrollment_fini(&en);
	return rc;
}

static const rpc_method provisioning_methods[] = {
	{ "Enroll", RPC_UNARY, h_enroll, AUTHZ_DEVICE | AUTHZ_ADMIN },
	{ "FetchCertificate", RPC_UNARY, h_fetch, AUTHZ_DEVICE | AUTHZ_ADMIN },
	{ "StreamCertificate", RPC_SERVER_STREAM, h_stream,
	    AUTHZ_DEVICE | AUTHZ_ADMIN },
	{ "Renew", RPC_UNARY, rpc_provisioning_renew,
	    AUTHZ_DEVICE | AUTHZ_ADMIN },
	{ "Acknowledge", RPC_UNARY, rpc_provisioning_ack,
	    AUTHZ_DEVICE | AUTHZ_ADMIN },
	{ "GetRenewalInfo", RPC_UNARY, rpc_provisioning_renewal_info,
	    AUTHZ_DEVICE | AUTHZ_ADMIN },
};

int
rpc_provisioning_register(rpc_server *srv, authz_ctx *ctx)
{
	return rpc_server_add_service(srv,
	    &secretfree__v1__provisioning__descriptor, provisioning_methods,
	    sizeof provisioning_methods / sizeof provisioning_methods[0], ctx);
}
