/*
 * secretfree-authz - faces devices: holds the device registry, checks each
 * CSR's key against the key registered for its device id, and asks the
 * signer (over its issuance socket) to issue. Never touches a CA key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "authz.h"
#include "daemon.h"
#include "err.h"
#include "jitp.h"
#include "log.h"
#include "mqtt.h"
#include "privdrop.h"
#include "latent.h"
#include "renewal.h"

static const char *USAGE =
"Usage: secretfree-authz -c FILE [-d] [--check]\n"
"\n"
"The secretfree authorizer: the device-facing process. It keeps the device\n"
"registry (factory keys, things, groups, policies, certificates), checks\n"
"that a CSR's public key is the one registered for the device id in its\n"
"CN, asks the signer to issue, and records the device as provisioned.\n"
"\n"
"Options:\n"
"  -c, --config FILE  configuration file (required; see authz/README.md)\n"
"  -d, --debug        log debug messages\n"
"      --check        load the configuration and the registry, report, exit\n"
"  -h, --help         this text\n"
"\n"
"Listeners (from the configuration):\n"
"  device_listen      TCP with TLS: the Provisioning service, for devices\n"
"  admin_socket       Unix socket: Registry (and Provisioning for local\n"
"                     tools), for the secretfree CLI; refused to peers whose\n"
"                     uid is not in admin_uids (default: authz's own uid)\n"
"  [http] listen      plain HTTP: GET /health, GET /crl/<file> (the\n"
"                     signer's CRLs, fetched as they change; also written\n"
"                     into [http] crl_dir), OCSP at any other path; the\n"
"                     front doors too with plain_front_doors (loopback only)\n"
"  [http] tls_listen  HTTPS: the same, and the device front doors:\n"
"                     POST /new (the reference's REST call, CSR in the\n"
"                     device-csr header), GET /enrollments/<id>, and EST\n"
"                     (RFC 7030) at /.well-known/est/[<ca>/]<op>\n"
"  [mqtt] broker      not a listener: authz connects to this MQTT broker\n"
"                     (TLS) and answers devices' requests published on\n"
"                     <topic_prefix>/<device id>/csr and .../ack on\n"
"                     .../cert; it reconnects with back-off\n"
"\n"
"Signals:\n"
"  SIGTERM, SIGINT    finish running calls (5 s grace) and MQTT requests,\n"
"                     then exit\n"
"  SIGHUP             reload templates, policies and limits; reconnect to\n"
"                     the MQTT broker with the [mqtt] settings (files and\n"
"                     password re-read)\n"
"\n"
"Started as root, authz runs as [authz] user for good before it opens\n"
"the registry or a listener. That key is required when started as\n"
"root: authz refuses to start without it, and stays root only when told\n"
"so (user = root).\n"
"\n"
"Exit status: 0 clean shutdown (or --check passed), 1 start-up error,\n"
"2 usage error.\n"
"\n"
"Example:\n"
"  secretfree-authz -c /etc/secretfree/authz.conf\n";

/* Templates and policies from the configuration go into the registry,
 * policies first (templates name them). */
static int
seed_registry(authz_ctx *ctx, const authz_conf *c)
{
	int rc;

	for (size_t i = 0; i < c->npolicies; i++)
		if ((rc = registry_policy_put(ctx->reg, c->policies[i].name,
		    c->policies[i].document)) != 0) {
			log_warnx("policy %s: %s", c->policies[i].name,
			    rc == SF_EINVAL ? "the document is not valid JSON" :
			    sf_strerror(rc));
			return rc;
		}
	for (size_t i = 0; i < c->ntemplates; i++)
		if ((rc = registry_template_put(ctx->reg,
		    &c->templates[i])) != 0) {
			log_warnx("template %s: %s", c->templates[i].product_line,
			    rc == SF_ENOTFOUND ? "names a policy that is not"
			    " defined" : sf_strerror(rc));
			return rc;
		}
	return 0;
}

/* One HTTP listener: the front doors (or their refusal), then CRLs, OCSP
 * and the health check. */
static int
start_listener(authz_ctx *ctx, http_server **srvp, const char *name,
    const char *address, int tls, int front_doors)
{
	const authz_conf *c = ctx->conf;
	http_opts o = { 0 };
	char why[512] = "";
	int rc;

	if ((*srvp = http_server_new()) == NULL)
		return SF_ENOMEM;
	if ((rc = authz_http_front_doors(*srvp, ctx, front_doors)) != 0 ||
	    (rc = authz_http_routes(*srvp, ctx)) != 0)
		return rc;
	o.name = name;
	o.address = address;
	o.threads = c->http_threads;
	o.timeout_s = c->http_conn_timeout_s;
	o.max_connections = c->http_max_conns;
	o.per_ip_connections = c->http_conns_per_addr;
	o.body_timeout_ms = c->body_timeout_ms;
	/* A device-csr header carries up to csr_max_bytes of base64. */
	o.max_header = c->csr_max / 3 * 4 + 16384;
	if (o.max_header < 32768)
		o.max_header = 32768;
	if (tls) {
		o.tls_cert_file = c->tls_cert;
		o.tls_key_file = c->tls_key;
		o.tls_trust_file = c->tls_client_ca;
	}
	if ((rc = http_server_start(*srvp, &o, why, sizeof why)) != 0) {
		log_warnx("%s", why);
		return rc;
	}
	log_info("serving %s on %s (port %d)%s", tls ? "HTTPS" : "HTTP",
	    address, http_server_port(*srvp), front_doors ? " with the REST"
	    " and EST front doors" : "");
	return 0;
}

/* [http] listen (plain: CRLs, OCSP, health; the front doors only on
 * loopback) and tls_listen (HTTPS: all of it). */
static int
start_http(authz_ctx *ctx)
{
	const authz_conf *c = ctx->conf;
	int rc;

	if ((c->http_listen || c->https_listen) && (rc = latent_new(ctx,
	    c->latent_max, &ctx->latent)) != 0)
		return rc;
	if (c->http_listen && (rc = start_listener(ctx, &ctx->http, "http",
	    c->http_listen, 0, c->plain_front_doors)) != 0)
		return rc;
	if (c->https_listen && (rc = start_listener(ctx, &ctx->https, "https",
	    c->https_listen, 1, 1)) != 0)
		return rc;
	return 0;
}

static int
start(authz_ctx *ctx, const char *path, int debug, int check,
    rpc_server **srvp)
{
	rpc_listener_opts dev = { 0 }, adm = { 0 };
	privdrop_user pu;
	rpc_server *srv;
	char why[512] = "";
	int rc;

	if ((rc = authz_conf_load(path, &ctx->conf, why, sizeof why)) != 0) {
		log_warnx("%s", why);
		return rc;
	}
	log_setlevel(debug ? LOG_LEVEL_DEBUG : ctx->conf->log_level);
	if ((rc = privdrop_resolve("[authz] user", ctx->conf->user, &pu, why,
	    sizeof why)) != 0 ||
	    (rc = privdrop_apply(&pu, why, sizeof why)) != 0) {
		log_warnx("%s", why);
		return rc;
	}
	if (pu.change)
		log_info("running as user %s (uid %u)%s", pu.name,
		    (unsigned)pu.uid, pu.uid == 0 ? ": [authz] user = root" :
		    "");
	if ((rc = registry_open(ctx->conf->registry, &ctx->reg, why,
	    sizeof why)) != 0) {
		log_warnx("%s", why);
		return rc;
	}
	if ((rc = seed_registry(ctx, ctx->conf)) != 0)
		return rc;
	if (check) {
		int64_t n = 0;

		registry_device_count(ctx->reg, &n);
		printf("configuration %s: ok\nregistry %s: ok (%lld devices)\n",
		    path, ctx->conf->registry, (long long)n);
		return 0;
	}
	if ((rc = sclient_open(ctx->conf->signer_socket,
	    ctx->conf->signer_timeout_ms, &ctx->signer)) != 0) {
		log_warnx("cannot open a channel to the signer at %s",
		    ctx->conf->signer_socket);
		return rc;
	}
	if ((ctx->rl = rate_new(ctx->conf->device_max, ctx->conf->device_window,
	    ctx->conf->global_rate, ctx->conf->global_burst)) == NULL)
		return SF_ENOMEM;
	enroll_ctx_init(&ctx->en, ctx->conf, ctx->reg, ctx->signer, ctx->rl);
	if ((ctx->conf->http_listen || ctx->conf->https_listen ||
	    ctx->conf->crl_dir) &&
	    (rc = crl_pub_new(ctx->signer, ctx->conf->crl_dir,
	    ctx->conf->crl_refresh_s, &ctx->crls, why, sizeof why)) != 0) {
		log_warnx("%s", why);
		return rc;
	}

	if ((srv = rpc_server_new()) == NULL)
		return SF_ENOMEM;
	*srvp = srv;
	if ((rc = rpc_provisioning_register(srv, ctx)) != 0 ||
	    (rc = rpc_registry_register(srv, ctx)) != 0)
		return rc;
	adm.name = "admin";
	adm.address = ctx->conf->admin_socket;
	adm.id = AUTHZ_ADMIN;
	adm.allowed_uids = ctx->conf->admin_uids;
	adm.n_allowed_uids = ctx->conf->n_admin_uids;
	adm.socket_gid = ctx->conf->admin_gid;
	adm.workers = 4;
	adm.max_message = 16 << 20;   /* import batches */
	if ((rc = rpc_server_listen(srv, &adm)) != 0) {
		log_warnx("cannot listen on %s", ctx->conf->admin_socket);
		return rc;
	}
	if (ctx->conf->device_listen) {
		dev.name = "device";
		dev.address = ctx->conf->device_listen;
		dev.id = AUTHZ_DEVICE;
		dev.tls_cert_file = ctx->conf->tls_cert;
		dev.tls_key_file = ctx->conf->tls_key;
		dev.tls_client_ca_file = ctx->conf->tls_client_ca;
		/* Just-in-time provisioning: the manufacturer CAs too,
		 * followed live (jitp.h). */
		dev.client_ca_generation = jitp_client_ca_generation;
		dev.client_ca_extra = jitp_client_ca_pem;
		dev.client_ca_arg = &ctx->en;
		dev.workers = ctx->conf->workers;
		dev.max_message = ctx->conf->max_message;
		dev.max_concurrent_streams = ctx->conf->max_streams;
		dev.recv_timeout_ms = ctx->conf->body_timeout_ms;
		dev.peer_max_pending = ctx->conf->pending_per_address;
		if ((rc = rpc_server_listen(srv, &dev)) != 0) {
			log_warnx("cannot listen on %s (TLS)",
			    ctx->conf->device_listen);
			return rc;
		}
	}
	if ((rc = rpc_server_start(srv)) != 0)
		return rc;
	if (ctx->conf->device_listen)
		log_info("serving Provisioning on %s (TLS, port %d) and"
		    " Registry on %s", ctx->conf->device_listen,
		    rpc_server_port(srv, 1), ctx->conf->admin_socket);
	else
		log_info("serving Registry and Provisioning on %s",
		    ctx->conf->admin_socket);
	if ((rc = start_http(ctx)) != 0)
		return rc;
	if ((rc = renewal_sweeper_start(ctx, ctx->conf->renewal_sweep_s,
	    &ctx->sweep)) != 0)
		return rc;
	if (ctx->conf->mqtt && (rc = mqtt_door_start(ctx, ctx->conf->mqtt,
	    &ctx->mqtt, why, sizeof why)) != 0) {
		log_warnx("%s", why);
		return rc;
	}
	return ctx->crls ? crl_pub_start(ctx->crls) : 0;
}

static void
reload(void *arg, const char *path)
{
	authz_ctx *ctx = arg;
	authz_conf *nc = NULL;
	char why[512] = "";

	if (authz_conf_load(path, &nc, why, sizeof why) != 0) {
		log_warnx("reload: %s; keeping the running configuration", why);
		return;
	}
	if (seed_registry(ctx, nc) != 0) {
		log_warnx("reload: templates or policies refused; keeping the"
		    " running configuration");
		authz_conf_free(nc);
		return;
	}
	if ((nc->mqtt == NULL) != (ctx->mqtt == NULL))
		log_warnx("reload: adding or removing [mqtt] needs a restart");
	rate_set(ctx->rl, nc->device_max, nc->device_window, nc->global_rate,
	    nc->global_burst);
	/* Running calls may read the old configuration: kept until exit. */
	__atomic_store_n(&ctx->en.conf, nc, __ATOMIC_RELEASE);
	__atomic_store_n(&ctx->conf, nc, __ATOMIC_RELEASE);
	log_setlevel(nc->log_level);
	mqtt_door_reload(ctx->mqtt, nc->mqtt);
	log_info("reloaded %s (templates, policies, limits; listeners and the"
	    " registry path need a restart)", path);
}

int
main(int argc, char **argv)
{
	daemon_opts o;
	authz_ctx ctx;
	rpc_server *srv = NULL;
	int rc;

	daemon_opts_parse(&o, argc, argv, "secretfree-authz", USAGE);
	daemon_init("authz", &o);
	/* Before SQLite starts: no global mutex and counters around each of
	 * its allocations (nothing here reads sqlite3_memory_used()). */
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	memset(&ctx, 0, sizeof ctx);
	rc = start(&ctx, o.path, o.debug, o.check, &srv);
	if (rc == 0 && !o.check)
		daemon_wait(reload, &ctx, o.path);
	mqtt_door_stop(ctx.mqtt);
	/* Everything that serves calls stops before what the calls use
	 * (the OCSP cache, the CRLs) is freed. */
	renewal_sweeper_stop(ctx.sweep);
	http_server_free(ctx.http);
	http_server_free(ctx.https);
	daemon_shutdown(srv);
	latent_free(ctx.latent);
	ocsp_cache_free(ctx.ocsp);
	crl_pub_free(ctx.crls);
	if (ctx.rl)
		enroll_ctx_fini(&ctx.en);
	sclient_close(ctx.signer);
	registry_close(ctx.reg);
	rate_free(ctx.rl);
	authz_conf_free(ctx.conf);
	return daemon_exit(&o, rc);
}
