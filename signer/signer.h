/*
 * signer.h - the signer process's shared state and its two services.
 *
 * Dispatch (OpenSSH monitor style): the Signer service is served only on
 * the issuance socket and CaAdmin only on the admin socket; the rpc layer
 * refuses a method on the wrong socket with PERMISSION_DENIED before any
 * handler runs. Every handler validates its request fully before it
 * touches the token.
 */
#ifndef SF_SIGNER_H
#define SF_SIGNER_H

#include "audit.h"
#include "ca.h"
#include "config.h"
#include "issue.h"
#include "journal.h"
#include "maint.h"
#include "ocsp.h"
#include "rate.h"
#include "rpc.h"
#include "token.h"

/* The signer's listeners (rpc_listener_opts.id, rpc_method.listeners). */
enum {
	SIGNER_ISSUANCE = 1 << 0,   /* authz: issue certificates */
	SIGNER_ADMIN = 1 << 1,      /* the CLI: manage CAs */
};

typedef struct {
	signer_conf *conf;
	token *tok;
	journal *jn;
	ca_store *cas;
	rate *rl;
	issuer_ctx ic;
	/* Background work (maint.h): modules add their tasks with
	 * signer_maint_tasks() before it starts, and kick it on changes. */
	maint *mt;
	ocsp *oc;                  /* the OCSP responder (ocsp.h) */
	audit *au;                 /* audit checkpoints (audit.h) */
	int64_t started_at;        /* for CaAdmin.GetStatus */
} signer_ctx;

/* The configuration now: SIGHUP publishes a new one (release) while
 * calls and background tasks read it (acquire); the old one stays. */
static inline const signer_conf *
signer_conf_now(signer_ctx *ctx)
{
	return __atomic_load_n(&ctx->conf, __ATOMIC_ACQUIRE);
}

/* Register every background task on ctx->mt (before maint_start). */
int signer_maint_tasks(signer_ctx *ctx);

/* Register Signer and CaAdmin on srv. */
int rpc_signer_register(rpc_server *srv, signer_ctx *ctx);
int rpc_admin_register(rpc_server *srv, signer_ctx *ctx);

#endif
