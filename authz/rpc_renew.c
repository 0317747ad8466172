/*
 * rpc_renew.c - the renewal methods: Provisioning.Renew, Acknowledge and
 * GetRenewalInfo (devices over TLS, local tools on the admin socket; what
 * is decided is renewal.c's), and Registry.SetRenewalWindow (admin socket),
 * which pulls the suggested renewal window of a set of certificates
 * forward, after an incident, so that their devices renew early.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz.h"
#include "devrec.h"
#include "err.h"
#include "log.h"
#include "pbenum.h"
#include "pubkey.h"
#include "renewal.h"
#include "secretfree/v1/provisioning.pb-c.h"
#include "secretfree/v1/registry.pb-c.h"
#include "util.h"

#define DEFAULT_WINDOW (7 * 86400)   /* SetRenewalWindow's renew_before */
#define NOTE_MAX 256
#define DEVICES_MAX 1000

int
rpc_provisioning_renew(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__RenewRequest *req = (const void *)reqm;
	authz_ctx *ctx = arg;
	registry_enrollment en;
	renewal_req r;
	char why[512];
	int rc, replayed = 0;

	renewal_first_use(ctx, call);
	r.csr = req->csr.data;
	r.csr_len = req->csr.len;
	r.idempotency_key = req->idempotency_key;
	r.current_serial = req->current_serial;
	r.current_key_signature = req->current_key_signature.data;
	r.current_key_signature_len = req->current_key_signature.len;
	r.peer_cert = rpc_call_peer_cert(call);
	if ((rc = renewal_renew(ctx, &r, &en, &replayed, why,
	    sizeof why)) != 0)
		return rpc_fail_err(call, rc, "%s", why);
	rpc_provisioning_fill(call, &en, replayed, respm);
	registry_enrollment_fini(&en);
	return RPC_OK;
}

int
rpc_provisioning_ack(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__AcknowledgeRequest *req = (const void *)reqm;
	Secretfree__V1__AcknowledgeResponse *resp = (void *)respm;
	authz_ctx *ctx = arg;
	renewal_ack_req r;
	char why[512], *superseded = NULL;
	int rc;

	renewal_first_use(ctx, call);
	r.enrollment_id = req->enrollment_id;
	r.serial = req->serial;
	r.key_signature = req->key_signature.data;
	r.key_signature_len = req->key_signature.len;
	r.peer_cert = rpc_call_peer_cert(call);
	/* Only the admin socket has a peer uid: its listener checked it. */
	r.local = rpc_call_peer_uid(call) >= 0;
	if ((rc = renewal_acknowledge(ctx, &r, &superseded, why,
	    sizeof why)) != 0) {
		log_info("acknowledge %s refused (%s, from %s): %s",
		    req->enrollment_id, rpc_code_name(rpc_status_from_err(rc)),
		    rpc_call_peer(call), why);
		return rpc_fail_err(call, rc, "%s", why);
	}
	resp->state = ENROLLMENT_ACKNOWLEDGED;
	resp->superseded_serial = rpc_call_strdup(call, superseded);
	free(superseded);
	return RPC_OK;
}

int
rpc_provisioning_renewal_info(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__RenewalInfoRequest *req = (const void *)reqm;
	Secretfree__V1__RenewalInfo *resp = (void *)respm;
	authz_ctx *ctx = arg;
	registry_cert c;
	int rc;

	renewal_first_use(ctx, call);
	if (!sf_serial_valid(req->serial))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "serial must be 1-40"
		    " upper-case hex digits");
	if ((rc = registry_cert_get(ctx->reg, req->serial, &c)) ==
	    SF_ENOTFOUND)
		return rpc_fail_err(call, rc, "no certificate %s", req->serial);
	if (rc != 0)
		return rpc_fail_err(call, rc, "registry lookup failed");
	resp->serial = rpc_call_strdup(call, c.serial);
	resp->window_start = c.renew_after;
	resp->window_end = c.renew_before;
	/* Recorded before windows were: the default one. */
	if (c.renew_after == 0 || c.renew_before == 0)
		registry_renew_window(c.not_before, c.not_after,
		    &resp->window_start, &resp->window_end);
	resp->explanation = rpc_call_strdup(call, c.renew_note);
	registry_cert_fini(&c);
	return RPC_OK;
}

/* The selectors of a SetRenewalWindow request, checked. */
static int
selectors_check(rpc_call *call,
    const Secretfree__V1__SetRenewalWindowRequest *q)
{
	if (q->n_device_ids == 0 && *q->product_line == '\0' &&
	    *q->ca_name == '\0')
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "name the"
		    " certificates: device_ids, product_line or ca_name");
	if (q->n_device_ids > DEVICES_MAX)
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "at most %d device"
		    " ids per call, not %zu", DEVICES_MAX, q->n_device_ids);
	for (size_t i = 0; i < q->n_device_ids; i++)
		if (!device_id_valid(q->device_ids[i], NULL, 0))
			return rpc_fail(call, RPC_INVALID_ARGUMENT, "device id"
			    " %zu (\"%s\") is not a valid device id", i,
			    q->device_ids[i]);
	if (*q->product_line && !sf_name_valid(q->product_line))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "product_line"
		    " \"%s\" is not a valid product line id", q->product_line);
	if (strlen(q->ca_name) > 64)
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "ca_name is too"
		    " long");
	if (strlen(q->explanation) > NOTE_MAX)
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "explanation is"
		    " longer than %d bytes", NOTE_MAX);
	return RPC_OK;
}

int
rpc_registry_renewal_window(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__SetRenewalWindowRequest *q = (const void *)reqm;
	Secretfree__V1__SetRenewalWindowResponse *resp = (void *)respm;
	authz_ctx *ctx = arg;
	registry_renew_sel sel;
	int64_t after, before;
	uint32_t n = 0;
	int rc;

	if ((rc = selectors_check(call, q)) != RPC_OK)
		return rc;
	after = q->renew_after ? q->renew_after : sf_now();
	before = q->renew_before ? q->renew_before : after + DEFAULT_WINDOW;
	if (after < 0 || before <= after)
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "renew_before (%lld)"
		    " must be later than renew_after (%lld)", (long long)before,
		    (long long)after);
	sel.devices = q->device_ids;
	sel.ndevices = q->n_device_ids;
	sel.product_line = q->product_line;
	sel.ca_name = q->ca_name;
	if ((rc = registry_renew_pull(ctx->reg, &sel, after, before,
	    q->explanation, &n)) != 0)
		return rpc_fail_err(call, rc, "the registry could not record"
		    " the renewal window");
	resp->certificates = n;
	log_info("renewal window pulled forward to %lld..%lld for %u"
	    " certificates (%s)", (long long)after, (long long)before, n,
	    *q->explanation ? q->explanation : "no explanation");
	return RPC_OK;
}
