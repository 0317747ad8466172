/*
 * rpc_adopt.c - Registry.AdoptCertificate (admin socket): record an
 * orphan, a certificate the signer issued that authz never recorded (its
 * registry commit failed, or authz's deadline passed while the signer
 * was still committing). `secretfree audit reconcile` finds them in the
 * signer's journal and sends each here with its chain. authz believes
 * the certificate, not the request: the serial, validity, CN and key come
 * from the certificate itself, and its key must be the device's
 * registered key.
 */
#include <stdio.h>
#include <string.h>

#include "authz.h"
#include "devrec.h"
#include "err.h"
#include "leaf.h"
#include "log.h"
#include "pbenum.h"
#include "secretfree/v1/registry.pb-c.h"
#include "util.h"

/* The request's own fields, before the certificate is read. */
static int
request_check(rpc_call *call, const Secretfree__V1__AdoptCertificateRequest *q)
{
	if (!device_id_valid(q->device_id, NULL, 0))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "\"%s\" is not a"
		    " valid device id", q->device_id);
	if (!sf_enrollment_id_valid(q->enrollment_id))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "enrollment_id must"
		    " be 1-64 of A-Z, a-z, 0-9, '.', '_', ':', '-'");
	if (*q->ca_name == '\0' || strlen(q->ca_name) > 64 ||
	    *q->chain_pem == '\0')
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "ca_name and"
		    " chain_pem are required");
	if (*q->region && !sf_name_valid(q->region))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "region \"%s\" is"
		    " not a valid region id", q->region);
	if (*q->replaces_serial && !sf_serial_valid(q->replaces_serial))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "replaces_serial"
		    " must be 1-40 upper-case hex digits");
	if (q->status < CERT_ACTIVE || q->status > CERT_EXPIRED)
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "status %d is not"
		    " a certificate status", q->status);
	return RPC_OK;
}

static void
fill_info(rpc_call *call, const registry_enrollment *e,
    const registry_adopt_status *st, Secretfree__V1__CertificateInfo *o)
{
	o->serial = rpc_call_strdup(call, e->serial);
	o->ca_name = rpc_call_strdup(call, e->ca_name);
	o->device_id = rpc_call_strdup(call, e->device_id);
	o->enrollment_id = rpc_call_strdup(call, e->enrollment_id);
	o->certificate_pem = rpc_call_strdup(call, e->certificate_pem);
	o->replaces_serial = rpc_call_strdup(call, e->replaces_serial);
	o->not_before = e->not_before;
	o->not_after = e->not_after;
	o->issued_at = e->created_at;
	o->status = st->status;
	o->revocation_reason = st->revocation_reason;
	o->revoked_at = st->revoked_at;
}

int
rpc_registry_adopt(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__AdoptCertificateRequest *q = (const void *)reqm;
	authz_ctx *ctx = arg;
	registry_adopt_status st = { q->status, q->revocation_reason,
	    q->revoked_at };
	registry_enrollment e;
	registry_template tmpl;
	registry_device dev;
	leaf_info l;
	char why[256] = "";
	int rc, have_tmpl = 0;

	memset(&dev, 0, sizeof dev);
	memset(&tmpl, 0, sizeof tmpl);
	if ((rc = request_check(call, q)) != RPC_OK)
		return rc;
	if (leaf_read(q->certificate_pem, &l, why, sizeof why) != 0)
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "%s", why);
	rc = registry_device_get(ctx->reg, q->device_id, &dev);
	if (rc == SF_ENOTFOUND) {
		rc = rpc_fail_err(call, rc, "device %s is not registered",
		    q->device_id);
		goto out;
	} else if (rc != 0) {
		rc = rpc_fail_err(call, rc, "device lookup failed");
		goto out;
	}
	/* A renewal may carry the new key the signer allowed (a key change
	 * authz never recorded). */
	if (strcmp(l.cn, q->device_id) != 0 ||
	    (memcmp(l.key.sha256, dev.key_sha256, 32) != 0 &&
	    *q->replaces_serial == '\0')) {
		rc = rpc_fail(call, RPC_PERMISSION_DENIED, "certificate %s is"
		    " not for device %s's registered key", l.serial,
		    q->device_id);
		goto out;
	}
	memset(&e, 0, sizeof e);
	e.enrollment_id = q->enrollment_id;
	e.device_id = q->device_id;
	e.idempotency_key = "";
	e.serial = l.serial;
	e.ca_name = q->ca_name;
	e.certificate_pem = q->certificate_pem;
	e.chain_pem = q->chain_pem;
	e.region = q->region;
	e.not_before = l.not_before;
	e.not_after = l.not_after;
	e.created_at = sf_now();
	e.state = st.status == CERT_PENDING_ACK ? ENROLLMENT_PENDING_ACK :
	    ENROLLMENT_ISSUED;
	e.replaces_serial = q->replaces_serial;
	e.ack_deadline = q->ack_deadline;
	have_tmpl = registry_template_get(ctx->reg, dev.product_line,
	    &tmpl) == 0;
	rc = registry_enroll_adopt(ctx->reg, &e, have_tmpl ? &tmpl : NULL,
	    &st);
	if (rc == SF_EEXIST) {
		rc = rpc_fail_err(call, rc, "certificate %s or enrollment %s"
		    " is recorded already", l.serial, q->enrollment_id);
		goto out;
	}
	if (rc != 0) {
		rc = rpc_fail_err(call, rc, "certificate %s: the registry could"
		    " not record it", l.serial);
		goto out;
	}
	log_info("device %s: certificate %s (enrollment %s) adopted from the"
	    " signer's journal", q->device_id, l.serial, q->enrollment_id);
	fill_info(call, &e, &st, (Secretfree__V1__CertificateInfo *)respm);
	rc = RPC_OK;
out:
	if (have_tmpl)
		registry_template_fini(&tmpl);
	registry_device_fini(&dev);
	leaf_fini(&l);
	return rc;
}
