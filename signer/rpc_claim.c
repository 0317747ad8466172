/*
 * rpc_claim.c - CaAdmin's claim certificates (admin socket): one issued
 * for a batch of devices (issue.h, issue_claim), and a whole batch
 * revoked in one journal transaction; the CA's CRL follows through the
 * background tasks, and the broker's claim listener checks that CRL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "issue.h"
#include "log.h"
#include "pbenum.h"
#include "revoke.h"
#include "rpc_admin.h"
#include "util.h"

/* No batch is that big; a guard for the reply's size. */
#define CLAIM_BATCH_CERTS 10000

int
rpc_claim_issue(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__IssueClaimCertificateRequest *req =
	    (const void *)reqm;
	Secretfree__V1__IssueServerCertificateResponse *resp = (void *)respm;
	signer_ctx *ctx = arg;
	issue_claim_req r;
	issue_result res;
	char why[256];
	int rc;

	if (req->validity_days > 36500)
		return rpc_fail(call, RPC_INVALID_ARGUMENT,
		    "validity_days out of range");
	memset(&r, 0, sizeof r);
	r.csr = req->csr.data;
	r.csr_len = req->csr.len;
	r.batch = req->batch;
	r.ca_name = req->ca_name;
	r.validity_days = (int)req->validity_days;
	if ((rc = issue_claim(&ctx->ic, &r, &res, why, sizeof why)) != 0)
		return rpc_fail_err(call, rc, "%s", why);
	resp->serial = rpc_call_strdup(call, res.serial);
	resp->certificate_pem = rpc_call_strdup(call, res.cert_pem);
	resp->chain_pem = rpc_call_strdup(call, res.chain_pem);
	issue_result_fini(&res);
	return RPC_OK;
}

/* The claim certificates of batch, as the journal has them now. */
static int
batch_rows(signer_ctx *ctx, const char *batch, journal_cert_row **rows,
    size_t *n)
{
	char eid[sizeof ISSUE_CLAIM_PREFIX + ISSUE_CLAIM_BATCH_MAX];
	size_t k = 0;
	int rc;

	snprintf(eid, sizeof eid, "%s%s", ISSUE_CLAIM_PREFIX, batch);
	if ((rc = journal_cert_by_enrollment(ctx->jn, eid, CLAIM_BATCH_CERTS,
	    rows, n)) != 0)
		return rc;
	/* Only what issue_claim recorded (the prefix is not a device's). */
	for (size_t i = 0; i < *n; i++) {
		if (strcmp((*rows)[i].profile, "claim") != 0) {
			journal_cert_row_fini(&(*rows)[i]);
			continue;
		}
		(*rows)[k++] = (*rows)[i];
	}
	*n = k;
	return 0;
}

int
rpc_claim_revoke_batch(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__RevokeClaimBatchRequest *req = (const void *)reqm;
	Secretfree__V1__RevokeClaimBatchResponse *resp = (void *)respm;
	signer_ctx *ctx = arg;
	journal_cert_row *rows = NULL, *live = NULL;
	size_t n = 0, nlive = 0;
	uint8_t *changed = NULL;
	char why[256] = "";
	int rc;

	if (!issue_claim_batch_ok(req->batch))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "a batch name is"
		    " 1-%d of [A-Za-z0-9._-]", ISSUE_CLAIM_BATCH_MAX);
	if (!revoke_reason_ok(req->reason))
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "reason %d cannot"
		    " be given here", req->reason);
	if ((rc = batch_rows(ctx, req->batch, &rows, &n)) != 0)
		return rpc_fail_err(call, rc, "cannot read the journal");
	if (n == 0) {
		journal_cert_rows_free(rows, n);
		return rpc_fail(call, RPC_NOT_FOUND, "no claim certificate"
		    " of batch %s", req->batch);
	}
	live = calloc(n, sizeof *live);
	changed = calloc(n, 1);
	if (live == NULL || changed == NULL) {
		rc = rpc_fail(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (rows[i].status == CERT_ACTIVE)
			live[nlive++] = rows[i];    /* borrowed */
	if (nlive && (rc = revoke_batch(ctx, live, nlive, req->reason,
	    sf_now(), NULL, changed, why, sizeof why)) != 0) {
		rc = rpc_fail_err(call, rc, "%s", why);
		goto out;
	}
	for (size_t i = 0; i < nlive; i++)
		resp->revoked += changed[i];
	log_info("claim batch %s: %u certificate(s) revoked (%s)",
	    req->batch, resp->revoked, revoke_reason_name(req->reason));
	journal_cert_rows_free(rows, n);
	rows = NULL;
	if ((rc = batch_rows(ctx, req->batch, &rows, &n)) != 0) {
		rc = rpc_fail_err(call, rc, "cannot read the journal");
		goto out;
	}
	resp->certificates = rpc_call_alloc(call, (n ? n : 1) *
	    sizeof *resp->certificates);
	for (size_t i = 0; resp->certificates && i < n; i++) {
		Secretfree__V1__CertificateInfo *ci = rpc_call_new_message(call,
		    &secretfree__v1__certificate_info__descriptor);

		if (ci == NULL)
			break;
		rpc_admin_fill_cert(call, &rows[i], ci);
		resp->certificates[resp->n_certificates++] = ci;
	}
	rc = RPC_OK;
out:
	free(live);
	free(changed);
	journal_cert_rows_free(rows, n);
	return rc;
}
