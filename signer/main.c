/*
 * secretfree-signer - holds the CA keys (in a PKCS#11 token) and the
 * issuance journal; signs for authz on the issuance socket and serves the
 * PKI admin on the admin socket. Never touches the network.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "daemon.h"
#include "err.h"
#include "log.h"
#include "privdrop.h"
#include "signer.h"
#include "util.h"

static const char *USAGE =
"Usage: secretfree-signer -c FILE [-d] [--check]\n"
"\n"
"The secretfree signer: the only process that touches a CA key. It keeps\n"
"the root, product-line intermediate and per-region issuing CA keys in a\n"
"PKCS#11 token, checks every request again on its own, builds and signs\n"
"certificates, and journals each one durably before it is returned.\n"
"\n"
"Options:\n"
"  -c, --config FILE  configuration file (required; see signer/README.md)\n"
"  -d, --debug        log debug messages\n"
"      --check        load the configuration, open the token and the\n"
"                     journal, report, and exit (0 if all is well)\n"
"  -h, --help         this text\n"
"\n"
"Sockets (from the configuration):\n"
"  issuance_socket    the Signer service, for authz only\n"
"  admin_socket       the CaAdmin service, for the secretfree CLI only\n"
"  Each is refused to peers whose uid is not configured for it\n"
"  (issuance_uids / admin_uids; default: the signer's own uid).\n"
"\n"
"Signals:\n"
"  SIGTERM, SIGINT    finish running calls (5 s grace), then exit\n"
"  SIGHUP             reload profiles and rate limits from the file\n"
"                     (sockets, token and journal need a restart) and\n"
"                     check every CA's key against its certificate again\n"
"\n"
"Started as root, the signer opens the token and reads the PIN as root,\n"
"then runs as [signer] user for good. That key is required when started\n"
"as root: the signer refuses to start without it, and stays root only\n"
"when told so (user = root). The token PIN is read from [token] pin_file\n"
"(mode 0600, owned by the signer's user or root) or a pin-source in\n"
"[token] uri; never from the command line.\n"
"\n"
"At start-up each CA's key in the token is checked against the CA's\n"
"certificate (public key, a signed challenge, the key's attributes); a CA\n"
"that fails signs nothing and is shown as unavailable in 'secretfree ca\n"
"list', or with [token] bad_key = refuse the signer does not start.\n"
"\n"
"Exit status: 0 clean shutdown (or --check passed), 1 start-up error,\n"
"2 usage error.\n"
"\n"
"Example:\n"
"  secretfree-signer -c /etc/secretfree/signer.conf\n";

static int
start(signer_ctx *ctx, const char *path, int debug, int check,
    rpc_server **srvp)
{
	rpc_listener_opts iss = { 0 }, adm = { 0 };
	token_opts to = { 0 };
	privdrop_user pu;
	rpc_server *srv = NULL;
	char why[512] = "";
	int rc;

	if ((rc = signer_conf_load(path, &ctx->conf, why, sizeof why)) != 0) {
		log_warnx("%s", why);
		return rc;
	}
	log_setlevel(debug ? LOG_LEVEL_DEBUG : ctx->conf->log_level);
	/* Before anything is opened: whom we become decides who may own the
	 * PIN file, and root without [signer] user stops here. */
	if ((rc = privdrop_resolve("[signer] user", ctx->conf->user, &pu, why,
	    sizeof why)) != 0) {
		log_warnx("%s", why);
		return rc;
	}
	to.module = ctx->conf->token_module;
	to.uri = ctx->conf->token_uri;
	to.pin_file = ctx->conf->token_pin_file;
	to.pin_owner = pu.uid;
	to.sessions = ctx->conf->token_sessions;
	if ((rc = token_open(&to, &ctx->tok, why, sizeof why)) != 0) {
		log_warnx("token: %s", why);
		return rc;
	}
	log_info("token \"%s\" open (%s)", token_label(ctx->tok),
	    ctx->conf->token_module);
	if ((rc = privdrop_apply(&pu, why, sizeof why)) != 0) {
		log_warnx("%s", why);
		return rc;
	}
	if (pu.change)
		log_info("running as user %s (uid %u)%s", pu.name,
		    (unsigned)pu.uid, pu.uid == 0 ? ": [signer] user = root" :
		    "");
	if ((rc = journal_open(ctx->conf->journal, &ctx->jn, why,
	    sizeof why)) != 0) {
		log_warnx("%s", why);
		return rc;
	}
	if ((rc = ca_store_open(ctx->conf, ctx->tok, ctx->jn, &ctx->cas, why,
	    sizeof why)) != 0) {
		log_warnx("%s", why);
		return rc;
	}
	ctx->rl = rate_new(ctx->conf->device_max, ctx->conf->device_window,
	    ctx->conf->global_rate, ctx->conf->global_burst);
	if (ctx->rl == NULL)
		return SF_ENOMEM;
	ctx->ic.conf = ctx->conf;
	ctx->ic.cas = ctx->cas;
	ctx->ic.jn = ctx->jn;
	ctx->ic.rl = ctx->rl;
	/* The per-device limit outlives a restart: what the journal says was
	 * issued in the last window counts again. */
	{
		size_t n = 0;

		if ((rc = issue_rate_replay(&ctx->ic, &n)) != 0) {
			log_warnx("cannot read the last window's issuance from"
			    " the journal");
			return rc;
		}
		log_info("rate limits: %zu device certificates of the last %d s"
		    " counted", n, ctx->conf->device_window);
	}
	if ((ctx->oc = ocsp_new(ctx->conf, ctx->tok, ctx->jn, ctx->cas)) ==
	    NULL)
		return SF_ENOMEM;
	if ((ctx->au = audit_new(ctx->tok, ctx->jn, ctx->conf->audit_key_label,
	    ctx->conf->audit_checkpoint_s)) == NULL)
		return SF_ENOMEM;
	if (check) {
		ca **all;
		size_t n = ca_list(ctx->cas, &all);

		printf("configuration %s: ok\ntoken %s: ok\njournal %s: ok"
		    " (%zu CAs)\n", path, token_label(ctx->tok),
		    ctx->conf->journal, n);
		free(all);
		return 0;
	}

	if ((srv = rpc_server_new()) == NULL)
		return SF_ENOMEM;
	*srvp = srv;
	if ((rc = rpc_signer_register(srv, ctx)) != 0 ||
	    (rc = rpc_admin_register(srv, ctx)) != 0)
		return rc;
	iss.name = "issuance";
	iss.address = ctx->conf->issuance_socket;
	iss.id = SIGNER_ISSUANCE;
	iss.allowed_uids = ctx->conf->issuance_uids;
	iss.n_allowed_uids = ctx->conf->n_issuance_uids;
	iss.socket_gid = ctx->conf->issuance_gid;
	iss.workers = ctx->conf->workers;
	iss.max_message = 1 << 20;
	adm.name = "admin";
	adm.address = ctx->conf->admin_socket;
	adm.id = SIGNER_ADMIN;
	adm.allowed_uids = ctx->conf->admin_uids;
	adm.n_allowed_uids = ctx->conf->n_admin_uids;
	adm.socket_gid = ctx->conf->admin_gid;
	adm.workers = 2;
	/* Device-key batches of up to 10,000 records. */
	adm.max_message = 16 << 20;
	if ((rc = rpc_server_listen(srv, &iss)) != 0 ||
	    (rc = rpc_server_listen(srv, &adm)) != 0) {
		log_warnx("cannot listen on the sockets");
		return rc;
	}
	if ((rc = rpc_server_start(srv)) != 0)
		return rc;
	if ((ctx->mt = maint_new(ctx->conf->maint_delay_ms)) == NULL)
		return SF_ENOMEM;
	if ((rc = signer_maint_tasks(ctx)) != 0 ||
	    (rc = maint_start(ctx->mt)) != 0) {
		log_warnx("cannot start the background tasks");
		return rc;
	}
	log_info("serving Signer on %s and CaAdmin on %s",
	    ctx->conf->issuance_socket, ctx->conf->admin_socket);
	return 0;
}

static void
reload(void *arg, const char *path)
{
	signer_ctx *ctx = arg;
	signer_conf *nc = NULL;
	char why[512] = "";

	if (signer_conf_load(path, &nc, why, sizeof why) != 0) {
		log_warnx("reload: %s; keeping the running configuration", why);
		return;
	}
	/*
	 * Running calls may still read the old configuration: it is kept
	 * (not freed) until exit. Reloads are rare.
	 */
	rate_set(ctx->rl, nc->device_max, nc->device_window, nc->global_rate,
	    nc->global_burst);
	__atomic_store_n(&ctx->ic.conf, nc, __ATOMIC_RELEASE);
	ca_store_set_conf(ctx->cas, nc);
	ocsp_set_conf(ctx->oc, nc);
	log_setlevel(nc->log_level);
	/* A key changed in the token since start-up is caught here too. */
	(void)ca_store_check_keys(ctx->cas, NULL, 0);
	log_info("reloaded %s (profiles and limits; socket, token and journal"
	    " settings need a restart)", path);
	__atomic_store_n(&ctx->conf, nc, __ATOMIC_RELEASE);
}

int
main(int argc, char **argv)
{
	daemon_opts o;
	signer_ctx ctx;
	rpc_server *srv = NULL;
	int rc;

	daemon_opts_parse(&o, argc, argv, "secretfree-signer", USAGE);
	daemon_init("signer", &o);
	/* Before SQLite starts: no global mutex and counters around each of
	 * its allocations (nothing here reads sqlite3_memory_used()). */
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	memset(&ctx, 0, sizeof ctx);
	ctx.started_at = sf_now();
	rc = start(&ctx, o.path, o.debug, o.check, &srv);
	if (rc == 0 && !o.check)
		daemon_wait(reload, &ctx, o.path);
	daemon_shutdown(srv);
	maint_free(ctx.mt);
	ocsp_free(ctx.oc);
	audit_free(ctx.au);
	ca_store_close(ctx.cas);
	journal_close(ctx.jn);
	token_close(ctx.tok);
	rate_free(ctx.rl);
	signer_conf_free(ctx.conf);
	return daemon_exit(&o, rc);
}
