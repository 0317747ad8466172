/*
 * rpc_device.c - CaAdmin's device handlers (admin socket): the signer's
 * record of a device (GetDeviceKey, ListDeviceKeys) and the changes of
 * its state (DisableDevice, EnableDevice, RevokeDevice). The signer is
 * the source of truth for device state: each change is in the journal,
 * durably, before the reply, and made under the device's issuance lock,
 * so that no certificate is issued for it after the reply that the new
 * state would refuse. The CLI then mirrors the change in authz.
 */
#include <stdio.h>
#include <string.h>

#include "devstate.h"
#include "err.h"
#include "log.h"
#include "pbenum.h"
#include "pubkey.h"
#include "revoke.h"
#include "rpc_admin.h"
#include "util.h"

#define LIST_DEFAULT 100
#define LIST_MAX 1000
#define NOTE_MAX 256

static void
fill_device(rpc_call *call, const journal_device_row *d,
    Secretfree__V1__DeviceKeyInfo *o)
{
	o->device_id = rpc_call_strdup(call, d->device_id);
	rpc_call_set_bytes(call, &o->key_sha256, d->key_sha256, 32);
	o->product_line = rpc_call_strdup(call, d->product_line);
	o->region = rpc_call_strdup(call, d->region);
	o->state = d->state;
	o->live_certificates = d->live;
	o->current_serial = rpc_call_strdup(call, d->current_serial);
	o->updated_at = d->updated_at;
	o->origin = rpc_call_strdup(call, d->origin);
	o->birth_serial = rpc_call_strdup(call, d->birth_serial);
	o->birth_reuse = d->birth_reuse != 0;
}

/* A valid device id, else the call's failure (its status returned). */
static int
id_check(rpc_call *call, const char *id)
{
	if (!device_id_valid(id, NULL, 0))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "\"%s\" is not a"
		    " valid device id", id);
	return RPC_OK;
}

/* The device as it is now, into o; NOT_FOUND when it is not registered. */
static int
reply_device(rpc_call *call, signer_ctx *ctx, const char *id,
    Secretfree__V1__DeviceKeyInfo *o)
{
	journal_device_row d;
	int rc;

	rc = journal_device_info(ctx->jn, id, sf_now(), &d);
	if (rc == SF_ENOTFOUND)
		return rpc_fail_err(call, rc, "device %s is not registered",
		    id);
	if (rc)
		return rpc_fail_err(call, rc, "device lookup failed");
	fill_device(call, &d, o);
	journal_device_row_fini(&d);
	return RPC_OK;
}

int
rpc_admin_get_device(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__GetDeviceKeyRequest *req = (const void *)reqm;
	int rc;

	if ((rc = id_check(call, req->device_id)) != RPC_OK)
		return rc;
	return reply_device(call, arg, req->device_id,
	    (Secretfree__V1__DeviceKeyInfo *)respm);
}

int
rpc_admin_list_devices(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__ListDeviceKeysRequest *req = (const void *)reqm;
	Secretfree__V1__ListDeviceKeysResponse *resp = (void *)respm;
	signer_ctx *ctx = arg;
	journal_device_row *v = NULL;
	size_t n = 0, limit = req->limit ? req->limit : LIST_DEFAULT;
	int rc;

	if (limit > LIST_MAX)
		limit = LIST_MAX;
	if (req->state != 0 && req->state != DEVICE_ACTIVE &&
	    req->state != DEVICE_DISABLED && req->state != DEVICE_REVOKED)
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "state %d: the"
		    " signer's devices are active, disabled or revoked",
		    req->state);
	if ((rc = journal_device_list(ctx->jn, req->after_device_id,
	    req->state, limit, sf_now(), &v, &n)) != 0)
		return rpc_fail_err(call, rc, "device list failed");
	resp->devices = rpc_call_alloc(call, (n ? n : 1) * sizeof(void *));
	for (size_t i = 0; i < n; i++) {
		resp->devices[i] = rpc_call_new_message(call,
		    &secretfree__v1__device_key_info__descriptor);
		fill_device(call, &v[i], resp->devices[i]);
	}
	resp->n_devices = n;
	journal_device_rows_free(v, n);
	return RPC_OK;
}

/* The admin's note for the journal: printable, at most NOTE_MAX bytes. */
static int
note_check(rpc_call *call, const char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return rpc_fail(call, RPC_INVALID_ARGUMENT, "reason"
			    " must not hold control characters");
	if (n > NOTE_MAX)
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "reason must be at"
		    " most %d bytes", NOTE_MAX);
	return RPC_OK;
}

static int
set_state(rpc_call *call, signer_ctx *ctx,
    const Secretfree__V1__SetDeviceKeyStateRequest *req, int state,
    ProtobufCMessage *respm)
{
	const char *id = req->device_id;
	int rc, changed = 0;

	if ((rc = id_check(call, id)) != RPC_OK ||
	    (rc = note_check(call, req->reason)) != RPC_OK)
		return rc;
	devstate_lock(id);
	rc = journal_device_set_state(ctx->jn, id, state, req->reason,
	    sf_now(), &changed);
	devstate_unlock(id);
	if (rc == SF_ENOTFOUND)
		return rpc_fail_err(call, rc, "device %s is not registered",
		    id);
	if (rc == SF_ESTATE)
		return rpc_fail_err(call, rc, "device %s is revoked: a revoked"
		    " device is never %s again", id, state == DEVICE_ACTIVE ?
		    "enabled" : "issued to, and stays revoked");
	if (rc)
		return rpc_fail_err(call, rc, "device %s: the journal could"
		    " not record its state", id);
	if (changed)
		log_info("device %s %s%s%s", id, state == DEVICE_ACTIVE ?
		    "enabled" : "disabled", *req->reason ? ": " : "",
		    req->reason);
	return reply_device(call, ctx, id,
	    (Secretfree__V1__DeviceKeyInfo *)respm);
}

int
rpc_admin_disable_device(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	return set_state(call, arg, (const void *)reqm, DEVICE_DISABLED,
	    respm);
}

int
rpc_admin_enable_device(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	return set_state(call, arg, (const void *)reqm, DEVICE_ACTIVE, respm);
}

int
rpc_admin_revoke_device(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__RevokeDeviceRequest *req = (const void *)reqm;
	Secretfree__V1__RevokeDeviceResponse *resp = (void *)respm;
	signer_ctx *ctx = arg;
	journal_cert_row *v = NULL;
	size_t n = 0;
	int64_t when;
	char why[256] = "";
	int rc;

	if ((rc = id_check(call, req->device_id)) != RPC_OK)
		return rc;
	if ((rc = revoke_device(ctx, req->device_id, req->reason,
	    req->keep_device, &v, &n, &when, why, sizeof why)) != 0)
		return rpc_fail_err(call, rc, "%s", why);
	resp->revoked = rpc_call_alloc(call, (n ? n : 1) * sizeof(void *));
	for (size_t i = 0; i < n; i++) {
		Secretfree__V1__CertificateStatusUpdate *u =
		    rpc_call_new_message(call,
		    &secretfree__v1__certificate_status_update__descriptor);

		u->serial = rpc_call_strdup(call, v[i].serial);
		u->status = v[i].status;
		u->reason = v[i].revocation_reason;
		u->revoked_at = v[i].revoked_at;
		u->device_id = rpc_call_strdup(call, v[i].device_id);
		resp->revoked[i] = u;
	}
	resp->n_revoked = n;
	journal_cert_rows_free(v, n);
	resp->device = rpc_call_new_message(call,
	    &secretfree__v1__device_key_info__descriptor);
	return reply_device(call, ctx, req->device_id, resp->device);
}
