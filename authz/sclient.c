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

int
sclient_issue(sclient *c, const uint8_t *csr, size_t csr_len,
    const char *product_line, const char *region, const char *enrollment_id,
    const char *replaces_serial, sclient_cert *out, char *why, size_t whylen)
{
	Secretfree__V1__IssueRequest req = SECRETFREE__V1__ISSUE_REQUEST__INIT;
	Secretfree__V1__IssueResponse *resp = NULL;
	ProtobufCMessage *m = NULL;
	rpc_status st;
	int code;

	memset(out, 0, sizeof *out);
	req.csr.data = (uint8_t *)csr;
	req.csr.len = csr_len;
	req.product_line = (char *)product_line;
	req.region = (char *)region;
	req.requester = "authz:enroll";
	req.enrollment_id = (char *)(enrollment_id ? enrollment_id : "");
	req.replaces_serial = (char *)(replaces_serial ? replaces_serial : "");
	code = rpc_client_call(c->rc, &secretfree__v1__signer__descriptor,
	    "Issue", &req.base, &m, c->timeout_ms, &st);
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
	resp = (Secretfree__V1__IssueResponse *)m;
	sf_strlcpy(out->serial, resp->serial, sizeof out->serial);
	sf_strlcpy(out->ca_name, resp->ca_name, sizeof out->ca_name);
	out->certificate_pem = strdup(resp->certificate_pem);
	out->chain_pem = strdup(resp->chain_pem);
	out->not_before = resp->not_before;
	out->not_after = resp->not_after;
	out->replayed = resp->replayed;
	protobuf_c_message_free_unpacked(m, NULL);
	if (!out->certificate_pem || !out->chain_pem || !*out->serial) {
		sclient_cert_fini(out);
		sf_why(why, whylen, "incomplete reply from the signer");
		return SF_EINTERNAL;
	}
	return 0;
}
