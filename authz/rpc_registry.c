/*
 * rpc_registry.c - the Registry service, authz's admin API on its local
 * admin socket: import devices (checked record by record as the signer
 * checks them, recres.c), list, show, disable and enable devices, list
 * certificates, things and groups, store and list policies and
 * provisioning templates, and mirror what the signer decided (device
 * revocation, certificate status; adoption is rpc_adopt.c's). Each
 * handler checks its request, calls the registry and copies the result
 * into the reply; registry errors reach the caller through
 * rpc_fail_err().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz.h"
#include "devrec.h"
#include "err.h"
#include "log.h"
#include "pbenum.h"
#include "recres.h"
#include "secretfree/v1/registry.pb-c.h"

#define LIST_DEFAULT 100
#define LIST_MAX 1000

static size_t
list_limit(uint32_t want)
{
	return want == 0 ? LIST_DEFAULT : want > LIST_MAX ? LIST_MAX : want;
}

static int
h_import(rpc_call *call, const ProtobufCMessage *reqm, ProtobufCMessage *respm,
    void *arg)
{
	const Secretfree__V1__ImportDevicesRequest *req = (const void *)reqm;
	Secretfree__V1__ImportResult *resp = (void *)respm;
	authz_ctx *ctx = arg;
	recres_valid *valid;
	registry_import_rec *recs;
	size_t nv;
	int *outcome, rc;

	if ((rc = recres_check(call, req->records, req->n_records, resp, &valid,
	    &nv)) != RPC_OK)
		return rc;
	recs = rpc_call_alloc(call, (nv ? nv : 1) * sizeof *recs);
	outcome = rpc_call_alloc(call, (nv ? nv : 1) * sizeof *outcome);
	if (recs == NULL || outcome == NULL)
		return rpc_fail_err(call, SF_ENOMEM, "out of memory");
	for (size_t i = 0; i < nv; i++) {
		recs[i].device_id = valid[i].device_id;
		recs[i].spki = valid[i].spki;
		recs[i].spki_len = valid[i].spki_len;
		recs[i].key_sha256 = valid[i].key_sha256;
		recs[i].product_line = valid[i].product_line;
		recs[i].region = valid[i].region;
	}
	if (nv && (rc = registry_import(ctx->reg, recs, nv, outcome)) != 0)
		return rpc_fail_err(call, rc, "import failed");
	recres_finish(call, resp, valid, nv, outcome);
	log_info("import devices: %u imported, %u unchanged, %u refused",
	    resp->imported, resp->unchanged, resp->refused);
	return RPC_OK;
}

static void
fill_device(rpc_call *call, const registry_device *d, Secretfree__V1__Device *o)
{
	o->device_id = rpc_call_strdup(call, d->device_id);
	rpc_call_set_bytes(call, &o->spki_der, d->spki, d->spki_len);
	rpc_call_set_bytes(call, &o->key_sha256, d->key_sha256, 32);
	o->product_line = rpc_call_strdup(call, d->product_line);
	o->region = rpc_call_strdup(call, d->region);
	o->state = d->state;
	o->created_at = d->created_at;
	o->updated_at = d->updated_at;
	o->current_serial = rpc_call_strdup(call, d->current_serial);
	o->thing_name = rpc_call_strdup(call, d->state == DEVICE_ACTIVE ?
	    d->device_id : "");
	o->origin = rpc_call_strdup(call, d->origin ? d->origin : "");
}

static int
h_list_devices(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__ListDevicesRequest *req = (const void *)reqm;
	Secretfree__V1__ListDevicesResponse *resp = (void *)respm;
	authz_ctx *ctx = arg;
	registry_device *v = NULL;
	size_t n = 0;
	int rc;

	if ((rc = registry_device_list(ctx->reg, req->product_line,
	    req->region, req->state, req->after_device_id,
	    list_limit(req->limit), &v, &n)) != 0)
		return rpc_fail_err(call, rc, "device list failed");
	resp->devices = rpc_call_alloc(call, (n ? n : 1) * sizeof(void *));
	for (size_t i = 0; i < n; i++) {
		resp->devices[i] = rpc_call_new_message(call,
		    &secretfree__v1__device__descriptor);
		fill_device(call, &v[i], resp->devices[i]);
	}
	resp->n_devices = n;
	registry_devices_free(v, n);
	return RPC_OK;
}

/* The registered device id (a valid one), into d; else the call's failure. */
static int
find_device(rpc_call *call, authz_ctx *ctx, const char *id, registry_device *d)
{
	int rc;

	if (!device_id_valid(id, NULL, 0))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "\"%s\" is not a"
		    " valid device id", id);
	rc = registry_device_get(ctx->reg, id, d);
	if (rc == SF_ENOTFOUND)
		return rpc_fail_err(call, rc, "device %s is not registered",
		    id);
	if (rc)
		return rpc_fail_err(call, rc, "device lookup failed");
	return RPC_OK;
}

static int
h_get_device(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__GetDeviceRequest *req = (const void *)reqm;
	registry_device d;
	int rc;

	if ((rc = find_device(call, arg, req->device_id, &d)) != RPC_OK)
		return rc;
	fill_device(call, &d, (Secretfree__V1__Device *)respm);
	registry_device_fini(&d);
	return RPC_OK;
}

/* Set a device's state: DISABLED, REVOKED, or 0 to enable it. */
static int
set_state(rpc_call *call, authz_ctx *ctx, const char *id, int target,
    ProtobufCMessage *respm)
{
	registry_device d;
	int rc, state;

	if ((rc = find_device(call, ctx, id, &d)) != RPC_OK)
		return rc;
	/* Enabling returns a device to what its certificates make it. */
	state = target ? target : *d.current_serial ? DEVICE_ACTIVE :
	    DEVICE_REGISTERED;
	registry_device_fini(&d);
	if ((rc = registry_device_set_state(ctx->reg, id, state)) != 0)
		return rpc_fail_err(call, rc, "device %s: cannot set its state",
		    id);
	if ((rc = registry_device_get(ctx->reg, id, &d)) != 0)
		return rpc_fail_err(call, rc, "device lookup failed");
	log_info("device %s %s", id, target == DEVICE_DISABLED ? "disabled" :
	    target == DEVICE_REVOKED ? "revoked" : "enabled");
	fill_device(call, &d, (Secretfree__V1__Device *)respm);
	registry_device_fini(&d);
	return RPC_OK;
}

static int
h_disable(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__SetDeviceStateRequest *req = (const void *)reqm;

	return set_state(call, arg, req->device_id, DEVICE_DISABLED, respm);
}

static int
h_enable(rpc_call *call, const ProtobufCMessage *reqm, ProtobufCMessage *respm,
    void *arg)
{
	const Secretfree__V1__SetDeviceStateRequest *req = (const void *)reqm;

	return set_state(call, arg, req->device_id, 0, respm);
}

/* Registry.RevokeDevice: the signer revoked it; enrollment refuses it. */
static int
h_revoke(rpc_call *call, const ProtobufCMessage *reqm, ProtobufCMessage *respm,
    void *arg)
{
	const Secretfree__V1__SetDeviceStateRequest *req = (const void *)reqm;

	return set_state(call, arg, req->device_id, DEVICE_REVOKED, respm);
}

static char **
copy_strings(rpc_call *call, char *const *v, size_t n)
{
	char **out = rpc_call_alloc(call, (n ? n : 1) * sizeof(char *));

	for (size_t i = 0; out && i < n; i++)
		out[i] = rpc_call_strdup(call, v[i]);
	return out;
}

/* name=value pairs as Attribute messages. */
static Secretfree__V1__Attribute **
copy_attributes(rpc_call *call, char *const *names, char *const *values,
    size_t n)
{
	Secretfree__V1__Attribute **out = rpc_call_alloc(call,
	    (n ? n : 1) * sizeof(void *));

	for (size_t i = 0; i < n; i++) {
		out[i] = rpc_call_new_message(call,
		    &secretfree__v1__attribute__descriptor);
		out[i]->name = rpc_call_strdup(call, names[i]);
		out[i]->value = rpc_call_strdup(call, values[i]);
	}
	return out;
}

static int
h_list_certs(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__ListDeviceCertificatesRequest *req =
	    (const void *)reqm;
	Secretfree__V1__ListDeviceCertificatesResponse *resp = (void *)respm;
	authz_ctx *ctx = arg;
	registry_cert *v = NULL;
	size_t n = 0;
	int rc;

	/* A device's certificates newest first; with no device, every
	 * certificate in serial order, paged by after_serial. */
	if (*req->device_id && !device_id_valid(req->device_id, NULL, 0))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "\"%s\" is not a"
		    " valid device id", req->device_id);
	if (*req->device_id)
		rc = registry_cert_list(ctx->reg, req->device_id,
		    list_limit(req->limit), &v, &n);
	else
		rc = registry_cert_page(ctx->reg, req->after_serial,
		    list_limit(req->limit), &v, &n);
	if (rc != 0)
		return rpc_fail_err(call, rc, "certificate list failed");
	resp->certificates = rpc_call_alloc(call, (n ? n : 1) * sizeof(void *));
	for (size_t i = 0; i < n; i++) {
		Secretfree__V1__CertificateInfo *c = rpc_call_new_message(call,
		    &secretfree__v1__certificate_info__descriptor);

		c->serial = rpc_call_strdup(call, v[i].serial);
		c->ca_name = rpc_call_strdup(call, v[i].ca_name);
		c->device_id = rpc_call_strdup(call, v[i].device_id);
		c->enrollment_id = rpc_call_strdup(call, v[i].enrollment_id);
		c->status = v[i].status;
		c->not_before = v[i].not_before;
		c->not_after = v[i].not_after;
		c->issued_at = v[i].issued_at;
		c->revocation_reason = v[i].revocation_reason;
		c->revoked_at = v[i].revoked_at;
		c->replaces_serial = rpc_call_strdup(call,
		    v[i].replaces_serial);
		c->ack_deadline = v[i].ack_deadline;
		c->renew_after = v[i].renew_after;
		c->renew_before = v[i].renew_before;
		resp->certificates[i] = c;
	}
	resp->n_certificates = n;
	registry_certs_free(v, n);
	return RPC_OK;
}

static void
fill_thing(rpc_call *call, const registry_thing *t, Secretfree__V1__Thing *o)
{
	o->name = rpc_call_strdup(call, t->name);
	o->device_id = rpc_call_strdup(call, t->device_id);
	o->attributes = copy_attributes(call, t->attr_names, t->attr_values,
	    t->nattrs);
	o->n_attributes = t->nattrs;
	o->groups = copy_strings(call, t->groups, t->ngroups);
	o->n_groups = t->ngroups;
	o->certificate_serial = rpc_call_strdup(call, t->certificate_serial);
	o->created_at = t->created_at;
}

static int
h_list_things(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__ListThingsRequest *req = (const void *)reqm;
	Secretfree__V1__ListThingsResponse *resp = (void *)respm;
	authz_ctx *ctx = arg;
	registry_thing *v = NULL;
	size_t n = 0;
	int rc;

	if ((rc = registry_thing_list(ctx->reg, req->group, req->after_name,
	    list_limit(req->limit), &v, &n)) != 0)
		return rpc_fail_err(call, rc, "thing list failed");
	resp->things = rpc_call_alloc(call, (n ? n : 1) * sizeof(void *));
	for (size_t i = 0; i < n; i++) {
		resp->things[i] = rpc_call_new_message(call,
		    &secretfree__v1__thing__descriptor);
		fill_thing(call, &v[i], resp->things[i]);
	}
	resp->n_things = n;
	registry_things_free(v, n);
	return RPC_OK;
}

static int
h_get_thing(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__GetThingRequest *req = (const void *)reqm;
	authz_ctx *ctx = arg;
	registry_thing t;
	int rc;

	if (*req->name == '\0')
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "name is required");
	rc = registry_thing_get(ctx->reg, req->name, &t);
	if (rc == SF_ENOTFOUND)
		return rpc_fail_err(call, rc, "no thing %s", req->name);
	if (rc)
		return rpc_fail_err(call, rc, "thing lookup failed");
	fill_thing(call, &t, (Secretfree__V1__Thing *)respm);
	registry_thing_fini(&t);
	return RPC_OK;
}

static int
h_list_groups(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	Secretfree__V1__ListGroupsResponse *resp = (void *)respm;
	authz_ctx *ctx = arg;
	char **names = NULL;
	uint32_t *counts = NULL;
	size_t n = 0;
	int rc;

	if ((rc = registry_group_list(ctx->reg, &names, &counts, &n)) != 0)
		return rpc_fail_err(call, rc, "group list failed");
	resp->groups = rpc_call_alloc(call, (n ? n : 1) * sizeof(void *));
	for (size_t i = 0; i < n; i++) {
		Secretfree__V1__Group *g = rpc_call_new_message(call,
		    &secretfree__v1__group__descriptor);

		g->name = rpc_call_strdup(call, names[i]);
		g->things = counts[i];
		resp->groups[i] = g;
	}
	resp->n_groups = n;
	registry_strings_free(names, n);
	free(counts);
	return RPC_OK;
}

static int
h_put_policy(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__Policy *req = (const void *)reqm;
	Secretfree__V1__Policy *resp = (void *)respm;
	authz_ctx *ctx = arg;
	int rc;

	if (!sf_name_valid(req->name))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "policy name must"
		    " be 1-32 of a-z, 0-9, -");
	rc = registry_policy_put(ctx->reg, req->name, req->document);
	if (rc == SF_EINVAL)
		return rpc_fail_err(call, rc, "policy %s: the document is not"
		    " valid JSON", req->name);
	if (rc)
		return rpc_fail_err(call, rc, "cannot store policy %s",
		    req->name);
	resp->name = rpc_call_strdup(call, req->name);
	resp->document = rpc_call_strdup(call, req->document);
	return RPC_OK;
}

static int
h_list_policies(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	Secretfree__V1__ListPoliciesResponse *resp = (void *)respm;
	authz_ctx *ctx = arg;
	char **names = NULL, **docs = NULL;
	size_t n = 0;
	int rc;

	if ((rc = registry_policy_list(ctx->reg, &names, &docs, &n)) != 0)
		return rpc_fail_err(call, rc, "policy list failed");
	resp->policies = rpc_call_alloc(call, (n ? n : 1) * sizeof(void *));
	for (size_t i = 0; i < n; i++) {
		Secretfree__V1__Policy *p = rpc_call_new_message(call,
		    &secretfree__v1__policy__descriptor);

		p->name = rpc_call_strdup(call, names[i]);
		p->document = rpc_call_strdup(call, docs[i]);
		resp->policies[i] = p;
	}
	resp->n_policies = n;
	registry_strings_free(names, n);
	registry_strings_free(docs, n);
	return RPC_OK;
}

static void
fill_template(rpc_call *call, const registry_template *t,
    Secretfree__V1__ProvisioningTemplate *o)
{
	o->product_line = rpc_call_strdup(call, t->product_line);
	o->thing_group = rpc_call_strdup(call, t->thing_group);
	o->policies = copy_strings(call, t->policies, t->npolicies);
	o->n_policies = t->npolicies;
	o->attributes = copy_attributes(call, t->attr_names, t->attr_values,
	    t->nattrs);
	o->n_attributes = t->nattrs;
}

static int
h_put_template(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__ProvisioningTemplate *req = (const void *)reqm;
	authz_ctx *ctx = arg;
	registry_template t;
	int rc;

	if (!sf_name_valid(req->product_line))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "product_line must"
		    " be 1-32 of a-z, 0-9, -");
	memset(&t, 0, sizeof t);
	t.product_line = req->product_line;
	t.thing_group = req->thing_group;
	t.policies = req->policies;
	t.npolicies = req->n_policies;
	t.attr_names = rpc_call_alloc(call, (req->n_attributes + 1) *
	    sizeof(char *));
	t.attr_values = rpc_call_alloc(call, (req->n_attributes + 1) *
	    sizeof(char *));
	if (t.attr_names == NULL || t.attr_values == NULL)
		return rpc_fail_err(call, SF_ENOMEM, "out of memory");
	for (size_t i = 0; i < req->n_attributes; i++) {
		if (*req->attributes[i]->name == '\0')
			return rpc_fail(call, RPC_INVALID_ARGUMENT,
			    "attribute %zu has no name", i);
		t.attr_names[i] = req->attributes[i]->name;
		t.attr_values[i] = req->attributes[i]->value;
	}
	t.nattrs = req->n_attributes;
	rc = registry_template_put(ctx->reg, &t);
	if (rc == SF_ENOTFOUND)
		return rpc_fail_err(call, rc, "a policy the template names"
		    " does not exist: create it first");
	if (rc == SF_EINVAL)
		return rpc_fail_err(call, rc, "template %s: attribute values"
		    " may use only ${device_id}, ${serial}, ${region} and"
		    " ${product_line}, and no policy or attribute may be named"
		    " twice", req->product_line);
	if (rc)
		return rpc_fail_err(call, rc, "cannot store template %s",
		    req->product_line);
	fill_template(call, &t, (Secretfree__V1__ProvisioningTemplate *)respm);
	return RPC_OK;
}

static int
h_list_templates(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	Secretfree__V1__ListTemplatesResponse *resp = (void *)respm;
	authz_ctx *ctx = arg;
	registry_template *v = NULL;
	size_t n = 0;
	int rc;

	if ((rc = registry_template_list(ctx->reg, &v, &n)) != 0)
		return rpc_fail_err(call, rc, "template list failed");
	resp->templates = rpc_call_alloc(call, (n ? n : 1) * sizeof(void *));
	for (size_t i = 0; i < n; i++) {
		resp->templates[i] = rpc_call_new_message(call,
		    &secretfree__v1__provisioning_template__descriptor);
		fill_template(call, &v[i], resp->templates[i]);
	}
	resp->n_templates = n;
	registry_templates_free(v, n);
	return RPC_OK;
}

#define MIRROR_MAX 10000

/* Registry.UpdateCertificateStatus: what the signer decided, mirrored. */
static int
h_update_status(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__UpdateCertificateStatusRequest *req =
	    (const void *)reqm;
	Secretfree__V1__UpdateCertificateStatusResponse *resp = (void *)respm;
	authz_ctx *ctx = arg;

	registry_cert_update *u;
	int *outcome, rc;
	size_t bad = 0;

	if (req->n_updates > MIRROR_MAX)
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "at most %d"
		    " updates per call, not %zu", MIRROR_MAX, req->n_updates);
	u = rpc_call_alloc(call, (req->n_updates ? req->n_updates : 1) *
	    sizeof *u);
	outcome = rpc_call_alloc(call, (req->n_updates ? req->n_updates : 1) *
	    sizeof *outcome);
	if (u == NULL || outcome == NULL)
		return rpc_fail(call, RPC_INTERNAL, "out of memory");
	for (size_t i = 0; i < req->n_updates; i++)
		u[i] = (registry_cert_update){ req->updates[i]->serial,
		    req->updates[i]->status, req->updates[i]->reason,
		    req->updates[i]->revoked_at };
	/* One transaction for the call: all of it, or none of it. */
	rc = registry_cert_mirror_batch(ctx->reg, u, req->n_updates, outcome,
	    &bad);
	if (rc == SF_EINVAL)
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "update %zu:"
		    " serial \"%s\" with status %d is not a certificate"
		    " status; nothing was recorded", bad, u[bad].serial ?
		    u[bad].serial : "", u[bad].status);
	if (rc)
		return rpc_fail_err(call, rc, "the registry could not record"
		    " the %zu updates; nothing was recorded", req->n_updates);
	for (size_t i = 0; i < req->n_updates; i++) {
		/* What authz cached about it may no longer hold. */
		if (outcome[i] == REGISTRY_MIRROR_UPDATED)
			ocsp_cache_forget(ctx->ocsp, u[i].serial);
		resp->updated += outcome[i] == REGISTRY_MIRROR_UPDATED;
		resp->unchanged += outcome[i] == REGISTRY_MIRROR_UNCHANGED;
		resp->unknown += outcome[i] == REGISTRY_MIRROR_UNKNOWN;
	}
	log_info("certificate status mirrored: %u updated, %u unchanged, %u"
	    " unknown", resp->updated, resp->unchanged, resp->unknown);
	return RPC_OK;
}

static const rpc_method registry_methods[] = {
	{ "ImportDevices", RPC_UNARY, h_import, AUTHZ_ADMIN },
	{ "ListDevices", RPC_UNARY, h_list_devices, AUTHZ_ADMIN },
	{ "GetDevice", RPC_UNARY, h_get_device, AUTHZ_ADMIN },
	{ "DisableDevice", RPC_UNARY, h_disable, AUTHZ_ADMIN },
	{ "EnableDevice", RPC_UNARY, h_enable, AUTHZ_ADMIN },
	{ "ListCertificates", RPC_UNARY, h_list_certs, AUTHZ_ADMIN },
	{ "ListThings", RPC_UNARY, h_list_things, AUTHZ_ADMIN },
	{ "GetThing", RPC_UNARY, h_get_thing, AUTHZ_ADMIN },
	{ "ListGroups", RPC_UNARY, h_list_groups, AUTHZ_ADMIN },
	{ "PutPolicy", RPC_UNARY, h_put_policy, AUTHZ_ADMIN },
	{ "ListPolicies", RPC_UNARY, h_list_policies, AUTHZ_ADMIN },
	{ "PutTemplate", RPC_UNARY, h_put_template, AUTHZ_ADMIN },
	{ "ListTemplates", RPC_UNARY, h_list_templates, AUTHZ_ADMIN },
	{ "RevokeDevice", RPC_UNARY, h_revoke, AUTHZ_ADMIN },
	{ "UpdateCertificateStatus", RPC_UNARY, h_update_status,
	    AUTHZ_ADMIN },
	{ "AdoptCertificate", RPC_UNARY, rpc_registry_adopt, AUTHZ_ADMIN },
	{ "SetRenewalWindow", RPC_UNARY, rpc_registry_renewal_window,
	    AUTHZ_ADMIN },
	{ "RegisterManufacturer", RPC_UNARY, rpc_registry_mfr_register,
	    AUTHZ_ADMIN },
	{ "SetManufacturerCrl", RPC_UNARY, rpc_registry_mfr_set_crl,
	    AUTHZ_ADMIN },
	{ "ListManufacturers", RPC_UNARY, rpc_registry_mfr_list,
	    AUTHZ_ADMIN },
};

int
rpc_registry_register(rpc_server *srv, authz_ctx *ctx)
{
	return rpc_server_add_service(srv, &secretfree__v1__registry__descriptor,
	    registry_methods, sizeof registry_methods / sizeof registry_methods[0],
	    ctx);
}
