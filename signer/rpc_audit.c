/*
 * rpc_audit.c - CaAdmin.VerifyAudit, ExportAudit and AuditCheckpoint: the
 * journal's audit trail (audit.h, journal.h) on the admin socket.
 */
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "err.h"
#include "log.h"
#include "rpc_admin.h"
#include "secretfree/v1/ca_admin.pb-c.h"
#include "signer.h"
#include "util.h"

typedef Secretfree__V1__AuditCheckpointInfo CheckpointInfo;

/* A signer context without the audit module (a test's) answers this. */
#define NEED_AUDIT(call, ctx) do { \
	if ((ctx)->au == NULL) \
		return rpc_fail(call, RPC_UNAVAILABLE, "the audit trail is" \
		    " not open"); \
} while (0)

static void
fill_checkpoint(rpc_call *call, const journal_audit_checkpoint *c,
    const char *pem, CheckpointInfo *ci)
{
	char text[256];

	audit_signed_text(c, text, sizeof text);
	ci->seq = c->seq;
	ci->head = rpc_call_strdup(call, c->head);
	ci->at = c->at;
	ci->key_label = rpc_call_strdup(call, c->key_label);
	rpc_call_set_bytes(call, &ci->signature, c->signature,
	    c->signature_len);
	ci->signed_text = rpc_call_strdup(call, text);
	ci->public_key_pem = rpc_call_strdup(call, pem ? pem : "");
}

int
rpc_audit_verify(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	Secretfree__V1__VerifyAuditResponse *resp = (void *)respm;
	signer_ctx *ctx = arg;
	audit_report rep;
	int64_t cps = 0;
	char why[512] = "";
	int rc;

	(void)reqm;
	NEED_AUDIT(call, ctx);
	if ((rc = audit_verify(ctx->au, &rep, &cps, why, sizeof why)) != 0)
		return rpc_fail_err(call, rc, "%s", why);
	resp->intact = rep.first_bad == 0;
	resp->events = rep.events;
	resp->head_seq = rep.last_seq;
	resp->head = rpc_call_strdup(call, rep.last_hash);
	resp->first_bad_seq = rep.first_bad;
	resp->damage = rpc_call_strdup(call, audit_damage_name(rep.damage));
	resp->problem = rpc_call_strdup(call, rep.problem);
	resp->checkpoints = cps;
	if (rep.first_bad)
		log_warnx("audit: the trail is broken at event %lld (%s): %s",
		    (long long)rep.first_bad, audit_damage_name(rep.damage),
		    rep.problem);
	return RPC_OK;
}

int
rpc_audit_export(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__V1__ExportAuditRequest *req = (const void *)reqm;
	Secretfree__V1__ExportAuditResponse *resp = (void *)respm;
	signer_ctx *ctx = arg;
	journal_audit_event *ev = NULL;
	journal_audit_checkpoint *cv = NULL;
	size_t got = 0, n, nc = 0, limit = req->limit ? req->limit : 500;
	char *pem = NULL, why[512] = "";
	int rc;

	NEED_AUDIT(call, ctx);
	if (limit > 5000)
		limit = 5000;
	if (req->after_seq < 0 || req->since < 0)
		return rpc_fail(call, RPC_INVALID_ARGUMENT, "after_seq and"
		    " since must not be negative");
	/* One more than asked: is there a next page? */
	if ((rc = journal_audit_list(ctx->jn, req->after_seq,
	    req->after_seq ? 0 : req->since, limit + 1, &ev, &got)) != 0)
		return rpc_fail_err(call, rc, "cannot read the audit trail");
	resp->more = got > limit;
	n = got > limit ? limit : got;
	resp->events = rpc_call_alloc(call, (n ? n : 1) * sizeof(void *));
	for (size_t i = 0; i < n; i++) {
		Secretfree__V1__AuditEvent *e = rpc_call_new_message(call,
		    &secretfree__v1__audit_event__descriptor);

		e->seq = ev[i].seq;
		e->at = ev[i].at;
		e->kind = rpc_call_strdup(call, ev[i].kind);
		e->subject = rpc_call_strdup(call, ev[i].subject);
		e->detail = rpc_call_strdup(call, ev[i].detail);
		e->prev = rpc_call_strdup(call, ev[i].prev);
		e->hash = rpc_call_strdup(call, ev[i].hash);
		resp->events[i] = e;
	}
	resp->n_events = n;
	if (n > 0 && (rc = journal_audit_checkpoints(ctx->jn, ev[0].seq,
	    ev[n - 1].seq, limit, &cv, &nc)) != 0) {
		journal_audit_events_free(ev, got);
		return rpc_fail_err(call, rc, "cannot read the checkpoints");
	}
	journal_audit_events_free(ev, got);
	if (nc > 0 && (rc = audit_public_pem(ctx->au, &pem, why,
	    sizeof why)) != 0) {
		journal_audit_checkpoints_free(cv, nc);
		return rpc_fail_err(call, rc, "%s", why);
	}
	resp->checkpoints = rpc_call_alloc(call, (nc ? nc : 1) *
	    sizeof(void *));
	for (size_t i = 0; i < nc; i++) {
		resp->checkpoints[i] = rpc_call_new_message(call,
		    &secretfree__v1__audit_checkpoint_info__descriptor);
		fill_checkpoint(call, &cv[i], pem, resp->checkpoints[i]);
	}
	resp->n_checkpoints = nc;
	resp->public_key_pem = rpc_call_strdup(call, pem ? pem : "");
	journal_audit_checkpoints_free(cv, nc);
	free(pem);
	return RPC_OK;
}

int
rpc_audit_checkpoint(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	signer_ctx *ctx = arg;
	journal_audit_checkpoint c;
	char *pem = NULL, why[512] = "";
	int rc, made = 0;

	(void)reqm;
	NEED_AUDIT(call, ctx);
	if ((rc = audit_checkpoint(ctx->au, &c, &made, why, sizeof why)) != 0)
		return rpc_fail_err(call, rc, "%s", why);
	if ((rc = audit_public_pem(ctx->au, &pem, why, sizeof why)) != 0) {
		journal_audit_checkpoint_fini(&c);
		return rpc_fail_err(call, rc, "%s", why);
	}
	fill_checkpoint(call, &c, pem, (CheckpointInfo *)respm);
	((CheckpointInfo *)respm)->made = made;
	journal_audit_checkpoint_fini(&c);
	free(pem);
	return RPC_OK;
}
