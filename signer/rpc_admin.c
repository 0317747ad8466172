/*
 * rpc_admin.c - the CaAdmin service (admin socket, the PKI admin's CLI).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "devrec.h"
#include "err.h"
#include "log.h"
#include "pubkey.h"
#include "recres.h"
#include "secretfree/v1/ca_admin.pb-c.h"
#include "rpc_admin.h"
#include "signer.h"
#include "util.h"

/* With the store's read lock held. */
static void
fill_locked(rpc_call *call, const ca *c, Secretfree__V1__CaInfo *ci)
{
	char *subj = ca_subject_text(c), problem[sizeof c->key_problem];

	ci->name = rpc_call_strdup(call, c->rec.name);
	ci->role = c->rec.role;
	ci->parent = rpc_call_strdup(call, c->parent ? c->parent->rec.name :
	    "");
	ci->parent_generation = rpc_call_strdup(call, c->parent ?
	    c->parent->rec.generation : "");
	ci->retired_at = c->rec.retired_at;
	ci->revoked_at = c->rec.revoked_at;
	ci->revocation_reason = c->rec.revocation_reason;
	ci->product_line = rpc_call_strdup(call, c->rec.product_line);
	ci->region = rpc_call_strdup(call, c->rec.region);
	ci->state = c->rec.state;
	ci->key_label = rpc_call_strdup(call, c->rec.key_label);
	ci->key_type = c->rec.key_type;
	ci->subject = rpc_call_strdup(call, subj ? subj : c->rec.subject);
	ci->serial = rpc_call_strdup(call, c->rec.serial);
	ci->not_before = c->rec.not_before;
	ci->not_after = c->rec.not_after;
	if (c->rec.path_len >= 0) {
		ci->path_len = rpc_call_new_message(call,
		    &secretfree__v1__path_len__descriptor);
		if (ci->path_len)
			ci->path_len->value = (uint32_t)c->rec.path_len;
	}
	ci->certificate_pem = rpc_call_strdup(call, "");
	if (c->cert) {
		char *pem = NULL;
		BIO *b = BIO_new(BIO_s_mem());
		char *data;
		long n;

		if (b && PEM_write_bio_X509(b, c->cert) &&
		    (n = BIO_get_mem_data(b, &data)) > 0)
			pem = rpc_call_strndup(call, data, (size_t)n);
		BIO_free(b);
		if (pem)
			ci->certificate_pem = pem;
	}
	ci->crl_url = rpc_call_strdup(call, c->rec.crl_url);
	ci->ocsp_url = rpc_call_strdup(call, c->rec.ocsp_url);
	ci->ca_issuers_url = rpc_call_strdup(call, c->rec.ca_issuers_url);
	ci->generation = rpc_call_strdup(call, c->rec.generation);
	ci->external_parent = c->rec.external_parent;
	ci->created_at = c->rec.created_at;
	ci->crl_shards = (uint32_t)(c->rec.crl_shards > 1 ?
	    c->rec.crl_shards : 1);
	ci->key_uri = rpc_call_strdup(call, "");
	ca_key_problem(c, problem, sizeof problem);
	ci->unavailable = rpc_call_strdup(call, problem);
	for (int which = 0; which < 2; which++) {
		const char *lines = which ? c->rec.excluded : c->rec.permitted;
		size_t n = 0;
		char **v, *save = NULL, *tok, *buf;

		if (*lines == '\0')
			continue;
		for (const char *p = lines; *p; p++)
			n += *p == '\n';
		v = rpc_call_alloc(call, (n + 1) * sizeof(char *));
		buf = rpc_call_strdup(call, lines);
		n = 0;
		for (tok = strtok_r(buf, "\n", &save); tok;
		    tok = strtok_r(NULL, "\n", &save))
			v[n++] = tok;
		if (which) {
			ci->excluded_subtrees = v;
			ci->n_excluded_subtrees = n;
		} else {
			ci->permitted_subtrees = v;
			ci->n_permitted_subtrees = n;
		}
	}
	free(subj);
}

void
rpc_admin_fill_ca(rpc_call *call, signer_ctx *ctx, const ca *c,
    Secretfree__V1__CaInfo *ci)
{
	char *uri = c->key ? token_key_uri(ctx->tok, c->key) : NULL;

	ca_store_read_lock(ctx->cas);
	fill_locked(call, c, ci);
	ca_store_read_unlock(ctx->cas);
	if (uri) {
		ci->key_uri = rpc_call_strdup(call, uri);
		free(uri);
	}
}

Secretfree__V1__CaInfo *
rpc_admin_ca_info(rpc_call *call, signer_ctx *ctx, const ca *c)
{
	Secretfree__V1__CaInfo *ci = rpc_call_new_message(call,
	    &secretfree__v1__ca_info__descriptor);

	if (ci)
		rpc_admin_fill_ca(call, ctx, c, ci);
	return ci;
}

static int
h_create_ca(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__CreateCaRequest *req = (const void *)reqm;
	Secretfree__V1__CreateCaResponse *resp = (void *)respm;
	signer_ctx *ctx = arg;
	ca_create_req r;
	ca *c = NULL;
	char *csr = NULL, why[256];
	int rc;

	memset(&r, 0, sizeof r);
	r.role = req->role;
	r.product_line = req->product_line;
	r.region = req->region;
	r.key_type = req->key_type;
	r.subject = req->subject;
	r.validity_days = (int)req->validity_days;
	if (req->validity_days > 36500)
		return rpc_fail(call, RPC_INVALID_ARGUMENT,
		    "validity_days must be at most 36500");
	if (req->path_len) {
		if (req->path_len->value > 16)
			return rpc_fail(call, RPC_INVALID_ARGUMENT,
			    "path_len must be at most 16");
		r.has_path_len = 1;
		r.path_len = (int)req->path_len->value;
	}
	r.permitted = req->permitted_subtrees;
	r.npermitted = req->n_permitted_subtrees;
	r.excluded = req->excluded_subtrees;
	r.nexcluded = req->n_excluded_subtrees;
	r.crl_url = req->crl_url;
	r.ocsp_url = req->ocsp_url;
	r.ca_issuers_url = req->ca_issuers_url;
	r.external_parent = req->external_parent;
	r.generation = req->generation;
	r.display_name = req->product_display_name;
	r.crl_shards = (int)(req->crl_shards > CONFIG_MAX_SHARDS ?
	    CONFIG_MAX_SHARDS + 1 : req->crl_shards);
	if (*req->generation && !sf_name_valid(req->generation))
		return rpc_fail(call, RPC_INVALID_ARGUMENT,
		    "generation must be 1-32 of a-z, 0-9, -");
	if ((rc = ca_create(ctx->cas, &r, &c, &csr, why, sizeof why)) != 0)
		return rpc_fail_err(call, rc, "%s", why);
	resp->ca = rpc_admin_ca_info(call, ctx, c);
	resp->csr_pem = rpc_call_strdup(call, csr ? csr : "");
	free(csr);
	maint_kick(ctx->mt);  /* its first CRL */
	return RPC_OK;
}

static ca *
lookup(rpc_call *call, signer_ctx *ctx, const char *name, const char *gen,
    int *code)
{
	ca *c;

	if (*name == '\0') {
		*code = rpc_fail(call, RPC_INVALID_ARGUMENT, "name is required");
		return NULL;
	}
	if ((c = ca_find(ctx->cas, name, gen)) == NULL)
		*code = rpc_fail(call, RPC_NOT_FOUND, "no CA named %s%s%s", name,
		    gen && *gen ? " generation " : "", gen ? gen : "");
	return c;
}

static int
h_export_csr(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__ExportCaCsrRequest *req = (const void *)reqm;
	Secretfree__V1__ExportCaCsrResponse *resp = (void *)respm;
	signer_ctx *ctx = arg;
	char *csr = NULL, why[256] = "";
	int code, rc;
	ca *c;

	if ((c = lookup(call, ctx, req->name, NULL, &code)) == NULL)
		return code;
	if ((rc = ca_export_csr(ctx->cas, c, req->subject, &csr, why,
	    sizeof why)) != 0)
		return rpc_fail_err(call, rc, "%s", why);
	resp->csr_pem = rpc_call_strdup(call, csr);
	free(csr);
	return RPC_OK;
}

static int
h_import_cert(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__ImportCaCertificateRequest *req = (const void *)reqm;
	Secretfree__V1__CaInfo *resp = (void *)respm;
	signer_ctx *ctx = arg;
	char why[256] = "";
	int code, rc;
	ca *c;

	/* A rotation waiting for its certificate is the one meant. */
	if ((c = ca_find_state(ctx->cas, req->name,
	    SECRETFREE__V1__CA_STATE__CA_STATE_PENDING)) == NULL &&
	    (c = lookup(call, ctx, req->name, NULL, &code)) == NULL)
		return code;
	if ((rc = ca_import_cert(ctx->cas, c, req->certificate_pem,
	    req->chain_pem, why, sizeof why)) != 0)
		return rpc_fail_err(call, rc, "%s", why);
	rpc_admin_fill_ca(call, ctx, c, resp);
	maint_kick(ctx->mt);  /* its first CRL */
	return RPC_OK;
}

static int
h_list_cas(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__ListCasRequest *req = (const void *)reqm;
	Secretfree__V1__ListCasResponse *resp = (void *)respm;
	signer_ctx *ctx = arg;
	ca **all;
	size_t n = ca_list(ctx->cas, &all), k = 0;

	resp->cas = rpc_call_alloc(call, (n ? n : 1) * sizeof(void *));
	for (size_t i = 0; i < n; i++) {
		const ca *c = all[i];
		int state;

		if (*req->product_line &&
		    strcmp(c->rec.product_line, req->product_line) != 0)
			continue;
		if (*req->region && strcmp(c->rec.region, req->region) != 0)
			continue;
		ca_store_read_lock(ctx->cas);
		state = c->rec.state;
		ca_store_read_unlock(ctx->cas);
		if (!req->include_retired &&
		    (state == SECRETFREE__V1__CA_STATE__CA_STATE_RETIRED ||
		    state == SECRETFREE__V1__CA_STATE__CA_STATE_REVOKED))
			continue;
		resp->cas[k++] = rpc_admin_ca_info(call, ctx, c);
	}
	resp->n_cas = k;
	free(all);
	return RPC_OK;
}

static int
h_get_ca(rpc_call *call, const ProtobufCMessage *reqm, ProtobufCMessage *respm,
    void *arg)
{
	const Secretfree__V1__GetCaRequest *req = (const void *)reqm;
	signer_ctx *ctx = arg;
	int code;
	ca *c;

	if ((c = lookup(call, ctx, req->name, req->generation, &code)) == NULL)
		return code;
	rpc_admin_fill_ca(call, ctx, c, (Secretfree__V1__CaInfo *)respm);
	return RPC_OK;
}

static int
h_get_chain(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__GetCaRequest *req = (const void *)reqm;
	Secretfree__V1__GetChainResponse *resp = (void *)respm;
	signer_ctx *ctx = arg;
	const ca *p;
	size_t n = 0;
	int code;
	ca *c;

	if ((c = lookup(call, ctx, req->name, req->generation, &code)) == NULL)
		return code;
	if (c->chain_pem == NULL)
		return rpc_fail(call, RPC_FAILED_PRECONDITION, "CA %s has no"
		    " certificate yet", c->rec.name);
	resp->chain_pem = rpc_call_strdup(call, c->chain_pem);
	for (p = c; p; p = p->parent)
		n++;
	resp->names = rpc_call_alloc(call, n * sizeof(char *));
	n = 0;
	for (p = c; p; p = p->parent)
		resp->names[n++] = rpc_call_strdup(call, p->rec.name);
	resp->n_names = n;
	return RPC_OK;
}

static int
h_register_keys(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__RegisterDeviceKeysRequest *req = (const void *)reqm;
	Secretfree__V1__ImportResult *resp = (void *)respm;
	signer_ctx *ctx = arg;
	recres_valid *valid;
	journal_device *devs;
	size_t nv;
	int *outcome, rc;

	if ((rc = recres_check(call, req->records, req->n_records, resp, &valid,
	    &nv)) != RPC_OK)
		return rc;
	devs = rpc_call_alloc(call, (nv ? nv : 1) * sizeof *devs);
	outcome = rpc_call_alloc(call, (nv ? nv : 1) * sizeof *outcome);
	if (devs == NULL || outcome == NULL)
		return rpc_fail(call, RPC_INTERNAL, "out of memory");
	for (size_t i = 0; i < nv; i++) {
		devs[i].device_id = valid[i].device_id;
		devs[i].key_sha256 = valid[i].key_sha256;
		devs[i].product_line = valid[i].product_line;
		devs[i].region = valid[i].region;
	}
	if (nv && (rc = journal_device_register(ctx->jn, devs, nv,
	    outcome)) != 0)
		return rpc_fail_err(call, rc, "cannot record the devices");
	recres_finish(call, resp, valid, nv, outcome);
	log_info("register device keys: %u imported, %u unchanged, %u refused",
	    resp->imported, resp->unchanged, resp->refused);
	return RPC_OK;
}

static int
h_issue_server(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__IssueServerCertificateRequest *req =
	    (const void *)reqm;
	Secretfree__V1__IssueServerCertificateResponse *resp = (void *)respm;
	signer_ctx *ctx = arg;
	issue_server_req r;
	issue_result res;
	char why[256];
	int rc;

	memset(&r, 0, sizeof r);
	r.csr = req->csr.data;
	r.csr_len = req->csr.len;
	r.ca_name = req->ca_name;
	r.dns = req->dns_names;
	r.ndns = req->n_dns_names;
	r.ips = req->ip_addresses;
	r.nips = req->n_ip_addresses;
	r.common_name = req->common_name;
	r.validity_days = (int)req->validity_days;
	if (req->validity_days > 36500)
		return rpc_fail(call, RPC_INVALID_ARGUMENT,
		    "validity_days out of range");
	if ((rc = issue_server(&ctx->ic, &r, &res, why, sizeof why)) != 0)
		return rpc_fail_err(call, rc, "%s", why);
	resp->serial = rpc_call_strdup(call, res.serial);
	resp->certificate_pem = rpc_call_strdup(call, res.cert_pem);
	resp->chain_pem = rpc_call_strdup(call, res.chain_pem);
	issue_result_fini(&res);
	return RPC_OK;
}

void
rpc_admin_fill_cert(rpc_call *call, const journal_cert_row *row,
    Secretfree__V1__CertificateInfo *ci)
{
	const unsigned char *p = row->der;
	X509 *x = d2i_X509(NULL, &p, (long)row->der_len);
	BIO *b;
	char *data;
	long n;

	ci->serial = rpc_call_strdup(call, row->serial);
	ci->ca_name = rpc_call_strdup(call, row->ca_name);
	ci->subject = rpc_call_strdup(call, row->subject);
	ci->device_id = rpc_call_strdup(call, row->device_id);
	rpc_call_set_bytes(call, &ci->key_sha256, row->key_sha256, 32);
	ci->not_before = row->not_before;
	ci->not_after = row->not_after;
	ci->issued_at = row->issued_at;
	ci->status = row->status;
	ci->revocation_reason = row->revocation_reason;
	ci->revoked_at = row->revoked_at;
	ci->requester = rpc_call_strdup(call, row->requester);
	ci->profile = rpc_call_strdup(call, row->profile);
	ci->enrollment_id = rpc_call_strdup(call, row->enrollment_id);
	ci->replaces_serial = rpc_call_strdup(call, row->replaces_serial);
	ci->ack_deadline = row->ack_deadline;
	ci->acknowledged_at = row->acked_at;
	ci->certificate_pem = "";
	if (x && (b = BIO_new(BIO_s_mem())) != NULL) {
		if (PEM_write_bio_X509(b, x) &&
		    (n = BIO_get_mem_data(b, &data)) > 0)
			ci->certificate_pem = rpc_call_strndup(call, data,
			    (size_t)n);
		BIO_free(b);
	}
	X509_free(x);
}

int
rpc_admin_ca_id(rpc_call *call, signer_ctx *ctx, const char *name,
    int64_t *id)
{
	ca *c;

	*id = 0;
	if (*name == '\0')
		return 0;
	if ((c = ca_find(ctx->cas, name, NULL)) == NULL)
		return rpc_fail(call, RPC_NOT_FOUND, "no CA named %s", name);
	*id = c->rec.id;
	return 0;
}

static int
h_get_cert(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__GetCertificateRequest *req = (const void *)reqm;
	signer_ctx *ctx = arg;
	journal_cert_row row;
	int64_t id;
	int rc;

	if (*req->serial == '\0')
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "serial is required");
	if ((rc = rpc_admin_ca_id(call, ctx, req->ca_name, &id)) != 0)
		return rc;
	rc = journal_cert_get(ctx->jn, req->serial, id, &row);
	if (rc == SF_ENOTFOUND)
		return rpc_fail(call, RPC_NOT_FOUND, "no certificate with"
		    " serial %s", req->serial);
	if (rc)
		return rpc_fail_err(call, rc, "certificate lookup failed");
	rpc_admin_fill_cert(call, &row,
	    (Secretfree__V1__CertificateInfo *)respm);
	journal_cert_row_fini(&row);
	return RPC_OK;
}

static int
h_list_certs(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__ListCertificatesRequest *req = (const void *)reqm;
	Secretfree__V1__ListCertificatesResponse *resp = (void *)respm;
	signer_ctx *ctx = arg;
	journal_cert_row *rows = NULL;
	size_t n = 0, limit = req->limit ? req->limit : 100;
	int64_t id;
	int rc;

	if (limit > 1000)
		limit = 1000;
	if ((rc = rpc_admin_ca_id(call, ctx, req->ca_name, &id)) != 0)
		return rc;
	if ((rc = journal_cert_list(ctx->jn, id, req->device_id,
	    req->after_serial, limit, &rows, &n)) != 0)
		return rpc_fail_err(call, rc, "certificate list failed");
	resp->certificates = rpc_call_alloc(call, (n ? n : 1) * sizeof(void *));
	for (size_t i = 0; i < n; i++) {
		resp->certificates[i] = rpc_call_new_message(call,
		    &secretfree__v1__certificate_info__descriptor);
		rpc_admin_fill_cert(call, &rows[i], resp->certificates[i]);
	}
	resp->n_certificates = n;
	journal_cert_rows_free(rows, n);
	return RPC_OK;
}

/* CaAdmin.GetStatus: the token probed now, the CAs, uptime. */
static int
h_status(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	Secretfree__V1__GetStatusResponse *resp = (void *)respm;
	Secretfree__V1__TokenStatus *ts;
	signer_ctx *ctx = arg;
	token_state st;
	ca **all;
	size_t n;

	(void)reqm;
	ts = rpc_call_alloc(call, sizeof *ts);
	secretfree__v1__token_status__init(ts);
	(void)token_status(ctx->tok, &st);
	ts->label = rpc_call_strdup(call, token_label(ctx->tok));
	ts->available = st.available;
	ts->faults = st.faults;
	ts->repairs = st.repairs;
	ts->failed_repairs = st.failed_repairs;
	ts->last_fault = rpc_call_strdup(call, st.last_fault);
	ts->last_fault_at = st.last_fault_at;
	ts->last_repair_at = st.last_repair_at;
	ts->sessions = (uint32_t)st.sessions;
	ts->sessions_busy = (uint32_t)st.sessions_busy;
	resp->token = ts;
	resp->started_at = ctx->started_at;
	n = ca_list(ctx->cas, &all);
	resp->cas = (uint32_t)n;
	for (size_t i = 0; i < n; i++)
		if (!ca_key_usable(all[i]))
			resp->cas_unavailable++;
	free(all);
	resp->version = SF_VERSION;
	return RPC_OK;
}

static const rpc_method admin_methods[] = {
	{ "CreateCa", RPC_UNARY, h_create_ca, SIGNER_ADMIN },
	{ "ExportCaCsr", RPC_UNARY, h_export_csr, SIGNER_ADMIN },
	{ "ImportCaCertificate", RPC_UNARY, h_import_cert, SIGNER_ADMIN },
	{ "ListCas", RPC_UNARY, h_list_cas, SIGNER_ADMIN },
	{ "GetCa", RPC_UNARY, h_get_ca, SIGNER_ADMIN },
	{ "GetCaChain", RPC_UNARY, h_get_chain, SIGNER_ADMIN },
	{ "RotateCa", RPC_UNARY, rpc_admin_rotate_ca, SIGNER_ADMIN },
	{ "RevokeCa", RPC_UNARY, rpc_admin_revoke_ca, SIGNER_ADMIN },
	{ "RegisterDeviceKeys", RPC_UNARY, h_register_keys, SIGNER_ADMIN },
	{ "IssueServerCertificate", RPC_UNARY, h_issue_server, SIGNER_ADMIN },
	{ "GetCertificate", RPC_UNARY, h_get_cert, SIGNER_ADMIN },
	{ "ListCertificates", RPC_UNARY, h_list_certs, SIGNER_ADMIN },
	{ "RevokeCertificate", RPC_UNARY, rpc_admin_revoke_cert,
	    SIGNER_ADMIN },
	{ "GetCrl", RPC_UNARY, rpc_crl_admin_get, SIGNER_ADMIN },
	{ "GetDeviceKey", RPC_UNARY, rpc_admin_get_device, SIGNER_ADMIN },
	{ "ListDeviceKeys", RPC_UNARY, rpc_admin_list_devices,
	    SIGNER_ADMIN },
	{ "DisableDevice", RPC_UNARY, rpc_admin_disable_device,
	    SIGNER_ADMIN },
	{ "EnableDevice", RPC_UNARY, rpc_admin_enable_device, SIGNER_ADMIN },
	{ "RevokeDevice", RPC_UNARY, rpc_admin_revoke_device, SIGNER_ADMIN },
	{ "RetireCa", RPC_UNARY, rpc_admin_retire_ca, SIGNER_ADMIN },
	{ "GetStatus", RPC_UNARY, h_status, SIGNER_ADMIN },
	{ "RegisterManufacturer", RPC_UNARY, rpc_mfr_register, SIGNER_ADMIN },
	{ "ListManufacturers", RPC_UNARY, rpc_mfr_list, SIGNER_ADMIN },
	{ "SetManufacturerCrl", RPC_UNARY, rpc_mfr_set_crl, SIGNER_ADMIN },
	{ "AllowBirthCertificate", RPC_UNARY, rpc_mfr_allow_birth,
	    SIGNER_ADMIN },
	{ "VerifyAudit", RPC_UNARY, rpc_audit_verify, SIGNER_ADMIN },
	{ "ExportAudit", RPC_UNARY, rpc_audit_export, SIGNER_ADMIN },
	{ "AuditCheckpoint", RPC_UNARY, rpc_audit_checkpoint, SIGNER_ADMIN },
	{ "IssueClaimCertificate", RPC_UNARY, rpc_claim_issue, SIGNER_ADMIN },
	{ "RevokeClaimBatch", RPC_UNARY, rpc_claim_revoke_batch,
	    SIGNER_ADMIN },
};

int
rpc_admin_register(rpc_server *srv, signer_ctx *ctx)
{
	return rpc_server_add_service(srv, &secretfree__v1__ca_admin__descriptor,
	    admin_methods, sizeof admin_methods / sizeof admin_methods[0], ctx);
}
