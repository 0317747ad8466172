/*
 * sclient.c - the signer client: authz's stubs for the requests the
 * signer answers on its issuance socket, as OpenSSH's monitor_wrap.c
 * mm_* stubs stand for the monitor's answers. Each stub packs its request,
 * makes the call with the configured deadline and unpacks the reply into
 * plain C types, so no other file of authz sees a signer message or a
 * channel; authz holds no CA key and reaches the signer only from here.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "pbenum.h"
#include "rpc.h"
#include "sclient.h"
#include "secretfree/v1/signer.pb-c.h"
#include "util.h"

struct sclient {
	rpc_client *rc;
	int timeout_ms;
};

int
sclient_open(const char *target, int timeout_ms, sclient **out)
{
	sclient *c;
	int rc;

	*out = NULL;
	if ((c = calloc(1, sizeof *c)) == NULL)
		return SF_ENOMEM;
	if ((rc = rpc_client_open(target, NULL, &c->rc)) != 0) {
		free(c);
		return rc;
	}
	c->timeout_ms = timeout_ms;
	*out = c;
	return 0;
}

void
sclient_close(sclient *c)
{
	if (c == NULL)
		return;
	rpc_client_close(c->rc);
	free(c);
}

void
sclient_cert_fini(sclient_cert *sc)
{
	if (sc == NULL)
		return;
	free(sc->certificate_pem);
	free(sc->chain_pem);
	memset(sc, 0, sizeof *sc);
}

/* Call method with req; 0 with *resp (protobuf_c_message_free_unpacked
 * it), or the signer's status as an SF_E* code with its message in why. */
static int
call_signer(sclient *c, const char *method, const ProtobufCMessage *req,
    ProtobufCMessage **resp, char *why, size_t whylen)
{
	rpc_status st;
	int code;

	code = rpc_client_call(c->rc, &secretfree__v1__signer__descriptor,
	    method, req, resp, c->timeout_ms, &st);
	if (code == RPC_DEADLINE_EXCEEDED) {
		log_warnx("signer did not answer within %d ms", c->timeout_ms);
		sf_why(why, whylen, "the signer did not answer in time");
		return rpc_err_from_status(code);
	}
	if (code != RPC_OK) {
		if (code == RPC_UNAVAILABLE)
			log_warnx("signer unavailable: %s", st.message);
		sf_why(why, whylen, "%s", st.message);
		return rpc_err_from_status(code);
	}
	return 0;
}

/* Signer.Issue with req into *out (as sclient_issue). */
static int
issue_call(sclient *c, Secretfree__V1__IssueRequest *req, sclient_cert *out,
    char *why, size_t whylen)
{
	Secretfree__V1__IssueResponse *resp = NULL;
	ProtobufCMessage *m = NULL;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = call_signer(c, "Issue", &req->base, &m, why, whylen)) != 0)
		return rc;
	resp = (Secretfree__V1__IssueResponse *)m;
	sf_strlcpy(out->serial, resp->serial, sizeof out->serial);
	sf_strlcpy(out->ca_name, resp->ca_name, sizeof out->ca_name);
	out->certificate_pem = strdup(resp->certificate_pem);
	out->chain_pem = strdup(resp->chain_pem);
	out->not_before = resp->not_before;
	out->not_after = resp->not_after;
	out->replayed = resp->replayed;
	out->status = resp->status;
	out->ack_deadline = resp->ack_deadline;
	protobuf_c_message_free_unpacked(m, NULL);
	if (!out->certificate_pem || !out->chain_pem || !*out->serial) {
		sclient_cert_fini(out);
		sf_why(why, whylen, "incomplete reply from the signer");
		return SF_EINTERNAL;
	}
	return 0;
}

int
sclient_issue(sclient *c, const uint8_t *csr, size_t csr_len,
    const char *product_line, const char *region, const char *enrollment_id,
    const char *replaces_serial, sclient_cert *out, char *why, size_t whylen)
{
	Secretfree__V1__IssueRequest req = SECRETFREE__V1__ISSUE_REQUEST__INIT;

	req.csr.data = (uint8_t *)csr;
	req.csr.len = csr_len;
	req.product_line = (char *)product_line;
	req.region = (char *)region;
	req.requester = "authz:enroll";
	req.enrollment_id = (char *)(enrollment_id ? enrollment_id : "");
	req.replaces_serial = (char *)(replaces_serial ? replaces_serial : "");
	return issue_call(c, &req, out, why, whylen);
}

int
sclient_issue_birth(sclient *c, const uint8_t *csr, size_t csr_len,
    const char *product_line, const char *region, const char *enrollment_id,
    const char *birth_pem, sclient_cert *out, char *why, size_t whylen)
{
	Secretfree__V1__IssueRequest req = SECRETFREE__V1__ISSUE_REQUEST__INIT;

	req.csr.data = (uint8_t *)csr;
	req.csr.len = csr_len;
	req.product_line = (char *)product_line;
	req.region = (char *)region;
	req.requester = "authz:enroll";
	req.enrollment_id = (char *)(enrollment_id ? enrollment_id : "");
	req.replaces_serial = "";
	req.birth_certificate.data = (uint8_t *)birth_pem;
	req.birth_certificate.len = birth_pem ? strlen(birth_pem) : 0;
	return issue_call(c, &req, out, why, whylen);
}

int
sclient_ocsp(sclient *c, const uint8_t *req, size_t len, uint8_t **resp,
    size_t *resp_len, int64_t *next_update, char *why, size_t whylen)
{
	Secretfree__V1__OcspRespondRequest rq =
	    SECRETFREE__V1__OCSP_RESPOND_REQUEST__INIT;
	Secretfree__V1__OcspRespondResponse *r;
	ProtobufCMessage *m = NULL;
	rpc_status st;
	int code, rc = SF_EINTERNAL;

	*resp = NULL;
	*resp_len = 0;
	*next_update = 0;
	rq.request_der.data = (uint8_t *)req;
	rq.request_der.len = len;
	code = rpc_client_call(c->rc, &secretfree__v1__signer__descriptor,
	    "OcspRespond", &rq.base, &m, c->timeout_ms, &st);
	if (code != RPC_OK) {
		sf_why(why, whylen, "%s", code == RPC_DEADLINE_EXCEEDED ?
		    "the signer did not answer in time" : st.message);
		return rpc_err_from_status(code);
	}
	r = (Secretfree__V1__OcspRespondResponse *)m;
	if (r->response_der.len == 0)
		sf_why(why, whylen, "an empty OCSP response from the signer");
	else if ((*resp = malloc(r->response_der.len)) == NULL)
		rc = SF_ENOMEM;
	else {
		memcpy(*resp, r->response_der.data, r->response_der.len);
		*resp_len = r->response_der.len;
		*next_update = r->next_update;
		rc = 0;
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

/* ---- CRLs: Signer.GetCrlIndex, Signer.GetCrl ---- */

void
sclient_crl_index_free(sclient_crl_entry *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].ca_name);
		free(v[i].generation);
	}
	free(v);
}

int
sclient_crl_index(sclient *c, sclient_crl_entry **out, size_t *n, char *why,
    size_t whylen)
{
	Secretfree__V1__GetCrlIndexRequest req =
	    SECRETFREE__V1__GET_CRL_INDEX_REQUEST__INIT;
	Secretfree__V1__GetCrlIndexResponse *resp;
	ProtobufCMessage *m = NULL;
	sclient_crl_entry *v;
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = call_signer(c, "GetCrlIndex", &req.base, &m, why,
	    whylen)) != 0)
		return rc;
	resp = (Secretfree__V1__GetCrlIndexResponse *)m;
	if ((v = calloc(resp->n_cas ? resp->n_cas : 1, sizeof *v)) == NULL) {
		protobuf_c_message_free_unpacked(m, NULL);
		return SF_ENOMEM;
	}
	for (size_t i = 0; i < resp->n_cas; i++) {
		const Secretfree__V1__CrlIndexEntry *e = resp->cas[i];

		v[i].ca_name = strdup(e->ca_name);
		v[i].generation = strdup(e->generation);
		v[i].shards = e->shards;
		v[i].crl_number = e->crl_number;
		v[i].this_update = e->this_update;
		v[i].next_update = e->next_update;
		if (!v[i].ca_name || !v[i].generation)
			rc = SF_ENOMEM;
	}
	if (rc == 0) {
		*out = v;
		*n = resp->n_cas;
	} else
		sclient_crl_index_free(v, resp->n_cas);
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

void
sclient_crl_fini(sclient_crl *crl)
{
	if (crl == NULL)
		return;
	free(crl->der);
	free(crl->distribution_point);
	memset(crl, 0, sizeof *crl);
}

int
sclient_get_crl(sclient *c, const char *ca_name, const char *generation,
    unsigned shard, sclient_crl *out, char *why, size_t whylen)
{
	Secretfree__V1__GetCrlRequest req = SECRETFREE__V1__GET_CRL_REQUEST__INIT;
	Secretfree__V1__GetCrlResponse *resp;
	ProtobufCMessage *m = NULL;
	int rc;

	memset(out, 0, sizeof *out);
	req.ca_name = (char *)ca_name;
	req.generation = (char *)(generation ? generation : "");
	req.shard = shard;
	if ((rc = call_signer(c, "GetCrl", &req.base, &m, why, whylen)) != 0)
		return rc;
	resp = (Secretfree__V1__GetCrlResponse *)m;
	out->crl_number = resp->crl_number;
	out->this_update = resp->this_update;
	out->next_update = resp->next_update;
	out->shards = resp->shards;
	out->distribution_point = strdup(resp->distribution_point);
	if (resp->crl_der.len && (out->der = malloc(resp->crl_der.len)))
		memcpy(out->der, resp->crl_der.data, resp->crl_der.len);
	out->der_len = out->der ? resp->crl_der.len : 0;
	protobuf_c_message_free_unpacked(m, NULL);
	if (out->der == NULL || out->distribution_point == NULL) {
		sclient_crl_fini(out);
		sf_why(why, whylen, "incomplete reply from the signer");
		return SF_EINTERNAL;
	}
	return 0;
}

/* ---- renewal with acknowledgement ---- */

int
sclient_renew(sclient *c, const sclient_renewal *r, sclient_cert *out,
    char *why, size_t whylen)
{
	Secretfree__V1__IssueRequest req = SECRETFREE__V1__ISSUE_REQUEST__INIT;

	req.csr.data = (uint8_t *)r->csr;
	req.csr.len = r->csr_len;
	req.product_line = (char *)r->product_line;
	req.region = (char *)r->region;
	req.requester = "authz:renew";
	req.enrollment_id = (char *)r->enrollment_id;
	req.replaces_serial = (char *)r->replaces_serial;
	req.current_key_signature.data = (uint8_t *)r->current_key_signature;
	req.current_key_signature.len = r->current_key_signature_len;
	return issue_call(c, &req, out, why, whylen);
}

int
sclient_acknowledge(sclient *c, const char *device_id, const char *serial,
    int64_t *acked_at, char *why, size_t whylen)
{
	Secretfree__V1__SignerAcknowledgeRequest req =
	    SECRETFREE__V1__SIGNER_ACKNOWLEDGE_REQUEST__INIT;
	Secretfree__V1__CertificateInfo *ci;
	ProtobufCMessage *m = NULL;
	int rc;

	*acked_at = 0;
	req.device_id = (char *)device_id;
	req.serial = (char *)serial;
	if ((rc = call_signer(c, "Acknowledge", &req.base, &m, why,
	    whylen)) != 0)
		return rc;
	ci = (Secretfree__V1__CertificateInfo *)m;
	*acked_at = ci->acknowledged_at;
	if (ci->status != CERT_ACTIVE || strcmp(ci->serial, serial) != 0) {
		sf_why(why, whylen, "the signer's reply is not the"
		    " acknowledged certificate");
		rc = SF_EINTERNAL;
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

int
sclient_ca_chain(sclient *c, const char *product_line, const char *region,
    char **ca_name, char **chain_pem, char *why, size_t whylen)
{
	Secretfree__V1__GetCaChainRequest req =
	    SECRETFREE__V1__GET_CA_CHAIN_REQUEST__INIT;
	Secretfree__V1__GetCaChainResponse *r;
	ProtobufCMessage *m = NULL;
	int rc;

	*ca_name = *chain_pem = NULL;
	req.product_line = (char *)product_line;
	req.region = (char *)region;
	if ((rc = call_signer(c, "GetCaChain", &req.base, &m, why,
	    whylen)) != 0)
		return rc;
	r = (Secretfree__V1__GetCaChainResponse *)m;
	if (*r->chain_pem == '\0') {
		sf_why(why, whylen, "the signer's reply has no chain");
		rc = SF_EINTERNAL;
	} else if ((*ca_name = strdup(r->ca_name)) == NULL ||
	    (*chain_pem = strdup(r->chain_pem)) == NULL) {
		free(*ca_name);
		*ca_name = NULL;
		rc = SF_ENOMEM;
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}
