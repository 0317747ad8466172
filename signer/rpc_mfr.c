/*
 * rpc_mfr.c - CaAdmin's just-in-time provisioning handlers (admin
 * socket): manufacturer CAs (RegisterManufacturer, ListManufacturers,
 * SetManufacturerCrl) and AllowBirthCertificate. The signer holds the
 * manufacturers' certificates (never a key) and checks every birth
 * certificate against them itself (issue.c); the CLI mirrors each change
 * in authz afterwards.
 */
#include <stdlib.h>
#include <string.h>

#include "birth.h"
#include "devrec.h"
#include "devstate.h"
#include "err.h"
#include "log.h"
#include "pbenum.h"
#include "pubkey.h"
#include "rpc_admin.h"
#include "util.h"

static void
fill_mfr(rpc_call *call, const journal_mfr *m,
    Secretfree__V1__ManufacturerInfo *o)
{
	birth_ca bc;
	char why[128];
	char *pem = NULL;
	int64_t num, next = 0;

	o->name = rpc_call_strdup(call, m->name);
	o->product_line = rpc_call_strdup(call, m->product_line);
	o->subject = rpc_call_strdup(call, m->subject);
	rpc_call_set_bytes(call, &o->spki_sha256, m->spki_sha256, 32);
	o->created_at = m->created_at;
	o->crl_number = m->crl_number;
	if (birth_ca_parse(m->cert_der, m->cert_len, 0, &bc, why,
	    sizeof why) == 0) {
		o->certificate_pem = rpc_call_strdup(call, bc.pem);
		o->not_after = bc.not_after;
		birth_ca_fini(&bc);
	}
	if (m->crl_der && birth_crl_parse(m->crl_der, m->crl_len, m->cert_der,
	    m->cert_len, &num, &next, NULL, NULL, &pem, why,
	    sizeof why) == 0) {
		o->crl_pem = rpc_call_strdup(call, pem);
		o->crl_next_update = next;
		free(pem);
	}
}

/* The product line has a profile and an issuing CA. */
static int
product_line_known(signer_ctx *ctx, const char *pl)
{
	ca **all;
	size_t n;
	int found = 0;

	if (signer_conf_product(ctx->conf, pl) == NULL)
		return 0;
	n = ca_list(ctx->cas, &all);
	for (size_t i = 0; i < n && !found; i++)
		found = all[i]->rec.role ==
		    SECRETFREE__V1__CA_ROLE__CA_ROLE_ISSUING &&
		    strcmp(all[i]->rec.product_line, pl) == 0;
	free(all);
	return found;
}

int
rpc_mfr_register(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__RegisterManufacturerRequest *req =
	    (const void *)reqm;
	signer_ctx *ctx = arg;
	journal_mfr m, old;
	birth_ca bc;
	char why[256], name[33], other[64];
	int rc;

	if (!sf_name_valid(req->product_line))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "product_line"
		    " \"%s\" is not a product line id (1-32 of a-z, 0-9, -)",
		    req->product_line);
	if (!product_line_known(ctx, req->product_line))
		return rpc_fail(call, RPC_FAILED_PRECONDITION, "product line"
		    " %s has no profile in the signer's configuration or no"
		    " issuing CA", req->product_line);
	if ((rc = birth_ca_parse((const uint8_t *)req->certificate_pem,
	    strlen(req->certificate_pem), sf_now(), &bc, why,
	    sizeof why)) != 0)
		return rpc_fail_err(call, rc, "%s", why);
	if (*req->name)
		sf_strlcpy(name, req->name, sizeof name);
	else
		birth_name_from_cn(bc.cn, name);
	if (strlen(req->name) > 32 || !sf_name_valid(name)) {
		birth_ca_fini(&bc);
		if (*req->name == '\0')
			return rpc_fail(call, RPC_INVALID_ARGUMENT, "the CA's CN"
			    " gives no name (1-32 of a-z, 0-9, -): give one");
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "manufacturer name"
		    " \"%s\" must be 1-32 of a-z, 0-9, -", req->name);
	}
	memset(&m, 0, sizeof m);
	m.name = name;
	m.product_line = (char *)req->product_line;
	m.subject = bc.subject;
	memcpy(m.spki_sha256, bc.spki_sha256, 32);
	m.cert_der = bc.der;
	m.cert_len = bc.der_len;
	m.created_at = sf_now();
	rc = journal_mfr_insert(ctx->jn, &m, other);
	birth_ca_fini(&bc);
	if (rc == SF_EEXIST) {
		/* The same CA under the same name and product line: done. */
		if (strcmp(other, name) == 0 && journal_mfr_get(ctx->jn, name,
		    &old) == 0) {
			int same = memcmp(old.spki_sha256, m.spki_sha256,
			    32) == 0 && strcmp(old.product_line,
			    req->product_line) == 0;

			if (same)
				fill_mfr(call, &old, (void *)respm);
			journal_mfr_fini(&old);
			if (same)
				return RPC_OK;
		}
		return rpc_fail_err(call, rc, strcmp(other, name) == 0 ?
		    "manufacturer %s is registered already with another CA or"
		    " product line" : "this CA is registered already, as"
		    " manufacturer %s", other);
	}
	if (rc)
		return rpc_fail_err(call, rc, "cannot record the manufacturer");
	if ((rc = journal_mfr_get(ctx->jn, name, &old)) != 0)
		return rpc_fail_err(call, rc, "cannot read the manufacturer"
		    " back");
	fill_mfr(call, &old, (void *)respm);
	journal_mfr_fini(&old);
	log_info("manufacturer %s registered for product line %s", name,
	    req->product_line);
	return RPC_OK;
}

int
rpc_mfr_list(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__ListManufacturersRequest *req =
	    (const void *)reqm;
	Secretfree__V1__ListManufacturersResponse *resp = (void *)respm;
	signer_ctx *ctx = arg;
	journal_mfr *v = NULL;
	size_t n = 0;
	int rc;

	if (*req->product_line && !sf_name_valid(req->product_line))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "product_line"
		    " \"%s\" is not a product line id", req->product_line);
	if ((rc = journal_mfr_list(ctx->jn, req->product_line, &v, &n)) != 0)
		return rpc_fail_err(call, rc, "manufacturer list failed");
	resp->manufacturers = rpc_call_alloc(call, (n ? n : 1) *
	    sizeof(void *));
	for (size_t i = 0; i < n; i++) {
		resp->manufacturers[i] = rpc_call_new_message(call,
		    &secretfree__v1__manufacturer_info__descriptor);
		fill_mfr(call, &v[i], resp->manufacturers[i]);
	}
	resp->n_manufacturers = n;
	journal_mfrs_free(v, n);
	return RPC_OK;
}

int
rpc_mfr_set_crl(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__SetManufacturerCrlRequest *req =
	    (const void *)reqm;
	signer_ctx *ctx = arg;
	journal_mfr m;
	uint8_t *der = NULL;
	size_t len = 0;
	int64_t num, next;
	char why[256];
	int rc;

	if (!sf_name_valid(req->name))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "\"%s\" is not a"
		    " manufacturer name", req->name);
	if ((rc = journal_mfr_get(ctx->jn, req->name, &m)) != 0)
		return rpc_fail_err(call, rc, rc == SF_ENOTFOUND ? "no"
		    " manufacturer %s" : "manufacturer lookup failed",
		    req->name);
	if ((rc = birth_crl_parse((const uint8_t *)req->crl_pem,
	    strlen(req->crl_pem), m.cert_der, m.cert_len, &num, &next, &der,
	    &len, NULL, why, sizeof why)) != 0) {
		journal_mfr_fini(&m);
		return rpc_fail_err(call, rc, "%s", why);
	}
	rc = journal_mfr_set_crl(ctx->jn, req->name, der, len, num);
	free(der);
	if (rc == SF_ESTATE)
		rc = rpc_fail_err(call, rc, "manufacturer %s has CRL number"
		    " %lld; this one's is %lld: only a newer CRL replaces it",
		    req->name, (long long)m.crl_number, (long long)num);
	else if (rc)
		rc = rpc_fail_err(call, rc, "cannot record the CRL");
	journal_mfr_fini(&m);
	if (rc)
		return rc;
	if ((rc = journal_mfr_get(ctx->jn, req->name, &m)) != 0)
		return rpc_fail_err(call, rc, "cannot read the manufacturer"
		    " back");
	fill_mfr(call, &m, (void *)respm);
	journal_mfr_fini(&m);
	log_info("manufacturer %s: CRL number %lld registered", req->name,
	    (long long)num);
	return RPC_OK;
}

int
rpc_mfr_allow_birth(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__AllowBirthCertificateRequest *req =
	    (const void *)reqm;
	signer_ctx *ctx = arg;
	char *origin = NULL;
	int rc, reuse, has;

	if (!device_id_valid(req->device_id, NULL, 0))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "\"%s\" is not a"
		    " valid device id", req->device_id);
	devstate_lock(req->device_id);
	rc = journal_device_birth(ctx->jn, req->device_id, &origin, &reuse,
	    &has);
	if (rc == 0 && strncmp(origin, "birth:", 6) != 0)
		rc = SF_ESTATE;
	else if (rc == 0)
		rc = journal_device_allow_birth(ctx->jn, req->device_id, 1);
	devstate_unlock(req->device_id);
	free(origin);
	if (rc == SF_ENOTFOUND)
		return rpc_fail_err(call, rc, "device %s is not registered",
		    req->device_id);
	if (rc == SF_ESTATE)
		return rpc_fail_err(call, rc, "device %s was not registered by"
		    " a birth certificate", req->device_id);
	if (rc)
		return rpc_fail_err(call, rc, "cannot record it");
	log_info("device %s: its birth certificate may be used once more",
	    req->device_id);
	{
		Secretfree__V1__GetDeviceKeyRequest g =
		    SECRETFREE__V1__GET_DEVICE_KEY_REQUEST__INIT;

		g.device_id = req->device_id;
		return rpc_admin_get_device(call, &g.base, respm, arg);
	}
}
