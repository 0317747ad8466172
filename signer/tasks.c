/*
 * tasks.c - the signer's background tasks, in one list (maint.h): what
 * runs every period and after a change is kicked. Each module that needs
 * background work adds one line here.
 */
#include "crl.h"
#include "err.h"
#include "renew.h"
#include "signer.h"

int
signer_maint_tasks(signer_ctx *ctx)
{
	int rc;

	/* First, so that the same run's CRL and OCSP work sees what it
	 * revoked. */
	if ((rc = maint_add(ctx->mt, "renew", renew_task, ctx,
	    renew_task_period(signer_conf_now(ctx)))) != 0)
		return rc;
	if ((rc = ocsp_maint_add(ctx->oc, ctx->mt)) != 0)
		return rc;
	if ((rc = maint_add(ctx->mt, "crl", crl_task, ctx,
	    signer_conf_now(ctx)->crl_check_s)) != 0)
		return rc;
	/* Last, so that a checkpoint covers what the others wrote. */
	if (ctx->conf->audit_checkpoint_s > 0 && (rc = maint_add(ctx->mt,
	    "audit", audit_task, ctx->au, ctx->conf->audit_checkpoint_s < 60 ?
	    ctx->conf->audit_checkpoint_s : 60)) != 0)
		return rc;
	return 0;
}
