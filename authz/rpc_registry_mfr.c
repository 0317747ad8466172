/*
 * rpc_registry_mfr.c - Registry's manufacturer methods (admin socket):
 * authz's mirror of the manufacturer CAs the signer registered (the CLI
 * calls the signer first). authz checks the certificate and the CRL
 * again itself, keeps them for its own check of birth certificates
 * (jitp.h), and the device TLS listener trusts the CAs from the next
 * connection on.
 */
#include <stdlib.h>
#include <string.h>

#include "authz.h"
#include "birth.h"
#include "devrec.h"
#include "err.h"
#include "jitp.h"
#include "log.h"
#include "secretfree/v1/registry.pb-c.h"
#include "util.h"

static void
fill_mfr(rpc_call *call, const registry_mfr *m,
    Secretfree__V1__ManufacturerInfo *o)
{
	birth_ca bc;
	int64_t num, next;
	char why[128];

	o->name = rpc_call_strdup(call, m->name);
	o->product_line = rpc_call_strdup(call, m->product_line);
	o->certificate_pem = rpc_call_strdup(call, m->certificate_pem);
	o->crl_pem = rpc_call_strdup(call, m->crl_pem);
	o->crl_number = m->crl_number;
	o->created_at = m->created_at;
	if (birth_ca_parse((const uint8_t *)m->certificate_pem,
	    strlen(m->certificate_pem), 0, &bc, why, sizeof why) == 0) {
		o->subject = rpc_call_strdup(call, bc.subject);
		rpc_call_set_bytes(call, &o->spki_sha256, bc.spki_sha256, 32);
		o->not_after = bc.not_after;
		birth_ca_fini(&bc);
	}
	if (*m->crl_pem && birth_crl_parse((const uint8_t *)m->crl_pem,
	    strlen(m->crl_pem), (const uint8_t *)m->certificate_pem,
	    strlen(m->certificate_pem), &num, &next, NULL, NULL, NULL, why,
	    sizeof why) == 0)
		o->crl_next_update = next;
}

/* The manufacturer called name, into *out (registry_mfrs_free(out, 1)). */
static int
mfr_get(authz_ctx *ctx, const char *name, registry_mfr **out)
{
	registry_mfr *v = NULL;
	size_t n = 0;
	int rc;

	*out = NULL;
	if ((rc = registry_mfr_list(ctx->reg, NULL, &v, &n)) != 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0) {
			if ((*out = calloc(1, sizeof **out)) == NULL) {
				registry_mfrs_free(v, n);
				return SF_ENOMEM;
			}
			**out = v[i];
			memset(&v[i], 0, sizeof v[i]);
			registry_mfrs_free(v, n);
			return 0;
		}
	registry_mfrs_free(v, n);
	return SF_ENOTFOUND;
}

int
rpc_registry_mfr_register(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__RegisterManufacturerRequest *req =
	    (const void *)reqm;
	authz_ctx *ctx = arg;
	registry_mfr *m = NULL;
	birth_ca bc;
	char why[256];
	int rc;

	if (!sf_name_valid(req->name) || !sf_name_valid(req->product_line))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "name and"
		    " product_line must each be 1-32 of a-z, 0-9, -");
	if ((rc = birth_ca_parse((const uint8_t *)req->certificate_pem,
	    strlen(req->certificate_pem), sf_now(), &bc, why,
	    sizeof why)) != 0)
		return rpc_fail_err(call, rc, "%s", why);
	rc = registry_mfr_put(ctx->reg, req->name, req->product_line, bc.pem);
	birth_ca_fini(&bc);
	if (rc)
		return rpc_fail_err(call, rc, "cannot record manufacturer %s",
		    req->name);
	jitp_changed(&ctx->en);
	if ((rc = mfr_get(ctx, req->name, &m)) != 0)
		return rpc_fail_err(call, rc, "cannot read manufacturer %s"
		    " back", req->name);
	fill_mfr(call, m, (void *)respm);
	registry_mfrs_free(m, 1);
	log_info("manufacturer %s (product line %s) recorded; the device"
	    " listener trusts it from the next connection", req->name,
	    req->product_line);
	return RPC_OK;
}

int
rpc_registry_mfr_set_crl(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__SetManufacturerCrlRequest *req =
	    (const void *)reqm;
	authz_ctx *ctx = arg;
	registry_mfr *m = NULL;
	int64_t num, next;
	char why[256], *pem = NULL;
	int rc;

	if (!sf_name_valid(req->name))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "\"%s\" is not a"
		    " manufacturer name", req->name);
	if ((rc = mfr_get(ctx, req->name, &m)) != 0)
		return rpc_fail_err(call, rc, rc == SF_ENOTFOUND ? "no"
		    " manufacturer %s" : "manufacturer lookup failed",
		    req->name);
	rc = birth_crl_parse((const uint8_t *)req->crl_pem,
	    strlen(req->crl_pem), (const uint8_t *)m->certificate_pem,
	    strlen(m->certificate_pem), &num, &next, NULL, NULL, &pem, why,
	    sizeof why);
	registry_mfrs_free(m, 1);
	m = NULL;
	if (rc)
		return rpc_fail_err(call, rc, "%s", why);
	rc = registry_mfr_set_crl(ctx->reg, req->name, pem, num);
	free(pem);
	if (rc)
		return rpc_fail_err(call, rc, "cannot record the CRL");
	if ((rc = mfr_get(ctx, req->name, &m)) != 0)
		return rpc_fail_err(call, rc, "cannot read manufacturer %s"
		    " back", req->name);
	fill_mfr(call, m, (void *)respm);
	registry_mfrs_free(m, 1);
	log_info("manufacturer %s: CRL number %lld recorded", req->name,
	    (long long)num);
	return RPC_OK;
}

int
rpc_registry_mfr_list(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__ListManufacturersRequest *req =
	    (const void *)reqm;
	Secretfree__V1__ListManufacturersResponse *resp = (void *)respm;
	authz_ctx *ctx = arg;
	registry_mfr *v = NULL;
	size_t n = 0;
	int rc;

	if ((rc = registry_mfr_list(ctx->reg, req->product_line, &v,
	    &n)) != 0)
		return rpc_fail_err(call, rc, "manufacturer list failed");
	resp->manufacturers = rpc_call_alloc(call, (n ? n : 1) *
	    sizeof(void *));
	for (size_t i = 0; i < n; i++) {
		resp->manufacturers[i] = rpc_call_new_message(call,
		    &secretfree__v1__manufacturer_info__descriptor);
		fill_mfr(call, &v[i], resp->manufacturers[i]);
	}
	resp->n_manufacturers = n;
	registry_mfrs_free(v, n);
	return RPC_OK;
}
