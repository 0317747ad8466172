/*
 * rpc_server.c - the gRPC side of the server (rpc.h): listeners, their
 * limits, start and graceful stop, and what a handler may ask of its
 * call's transport (peer, client certificate, deadline).
 *
 * Every listener is a grpc_server of its own (a call carries no identity
 * of the port it came in on, and the method table is checked against the
 * listener's id). Its calls go through its intake (rpc_intake.c): the
 * intake takes each call as its headers arrive, checks it with
 * rpc_dispatch_find(), waits for its message without holding a worker,
 * and queues it for the listener's workers, which run rpc_dispatch_body()
 * (unpack, UTF-8, handler, packed reply) and send the reply and status.
 * TCP listeners use TLS, and rpc_conn.c keeps their connections so that
 * one abusing its streams can be closed; Unix listeners are rpc_unix.c's.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "err.h"
#include "log.h"
#include "rpc_int.h"
#include "util.h"

static char TAG_SHUTDOWN;

rpc_server *
rpc_server_new(void)
{
	return calloc(1, sizeof(rpc_server));
}

/*
 * A TLS listener whose client CAs may change (rpc_listener_opts'
 * client_ca_generation): gRPC calls fetch() at each handshake, and it
 * hands out a new configuration when the generation moved.
 */
struct rpc_tls_fetch {
	char *name;
	char *cert, *key, *ca;       /* ca: tls_client_ca_file's PEM, or NULL */
	uint64_t (*gen_fn)(void *);
	char *(*extra_fn)(void *);
	void *arg;
	pthread_mutex_t mu;
	uint64_t gen;
	int have;
};

static void
tls_fetch_free(struct rpc_tls_fetch *f)
{
	if (f == NULL)
		return;
	pthread_mutex_destroy(&f->mu);
	rpc_free_secret(f->key);
	free(f->cert);
	free(f->ca);
	free(f->name);
	free(f);
}

static grpc_ssl_certificate_config_reload_status
tls_fetch(void *user_data, grpc_ssl_server_certificate_config **config)
{
	struct rpc_tls_fetch *f = user_data;
	grpc_ssl_certificate_config_reload_status st =
	    GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
	grpc_ssl_pem_key_cert_pair pair;
	char *extra = NULL, *roots = NULL;
	uint64_t g;

	*config = NULL;
	pthread_mutex_lock(&f->mu);
	g = f->gen_fn(f->arg);
	if (f->have && g == f->gen)
		goto out;
	extra = f->extra_fn(f->arg);
	roots = sf_aprintf("%s%s%s", f->ca ? f->ca : "",
	    f->ca && extra && *extra ? "\n" : "", extra ? extra : "");
	if (roots == NULL) {
		st = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
		goto out;
	}
	pair.private_key = f->key;
	pair.cert_chain = f->cert;
	if ((*config = grpc_ssl_server_certificate_config_create(*roots ?
	    roots : NULL, &pair, 1)) == NULL) {
		st = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
		goto out;
	}
	if (f->have)
		log_info("listener %s: client CAs reloaded (generation %llu)",
		    f->name, (unsigned long long)g);
	f->gen = g;
	f->have = 1;
	st = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
out:
	pthread_mutex_unlock(&f->mu);
	free(extra);
	free(roots);
	return st;
}

static grpc_server_credentials *
tls_server_creds(struct rpc_listener *l, const rpc_listener_opts *o)
{
	grpc_ssl_pem_key_cert_pair pair;
	grpc_server_credentials *creds = NULL;
	grpc_ssl_server_credentials_options *opts;
	struct rpc_tls_fetch *f;
	char *cert = NULL, *key = NULL, *ca = NULL;
	grpc_ssl_client_certificate_request_type req;

	if (o->tls_cert_file == NULL || o->tls_key_file == NULL) {
		log_warnx("listener %s: TLS needs a certificate and a key",
		    o->name);
		return NULL;
	}
	if ((cert = rpc_read_text(o->tls_cert_file)) == NULL) {
		log_warn("listener %s: cannot read %s", o->name,
		    o->tls_cert_file);
		goto out;
	}
	if ((key = rpc_read_text(o->tls_key_file)) == NULL) {
		log_warn("listener %s: cannot read %s", o->name,
		    o->tls_key_file);
		goto out;
	}
	if (o->tls_client_ca_file &&
	    (ca = rpc_read_text(o->tls_client_ca_file)) == NULL) {
		log_warn("listener %s: cannot read %s", o->name,
		    o->tls_client_ca_file);
		goto out;
	}
	pair.private_key = key;
	pair.cert_chain = cert;
	if (ca == NULL)
		req = GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
	else if (o->require_client_cert)
		req = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
	else
		req = GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
	/* gRPC needs client CAs whenever it verifies client certificates:
	 * the extra ones only beside tls_client_ca_file. */
	if (ca == NULL || o->client_ca_generation == NULL ||
	    o->client_ca_extra == NULL) {
		creds = grpc_ssl_server_credentials_create_ex(ca, &pair, 1,
		    req, NULL);
		goto out;
	}
	if ((f = calloc(1, sizeof *f)) == NULL ||
	    (f->name = strdup(l->name)) == NULL) {
		free(f);
		goto out;
	}
	pthread_mutex_init(&f->mu, NULL);
	f->cert = cert;
	f->key = key;
	f->ca = ca;
	cert = key = ca = NULL;  /* transferred */
	f->gen_fn = o->client_ca_generation;
	f->extra_fn = o->client_ca_extra;
	f->arg = o->client_ca_arg;
	l->tls = f;
	if ((opts = grpc_ssl_server_credentials_create_options_using_config_fetcher(
	    req, tls_fetch, f)) != NULL)
		creds = grpc_ssl_server_credentials_create_with_options(opts);
out:
	rpc_free_secret(key);
	free(cert);
	free(ca);
	return creds;
}

/* Bind a TCP listener (TLS unless insecure_tcp, for tests). */
static int
tcp_listen(struct rpc_listener *l, const rpc_listener_opts *o)
{
	grpc_server_credentials *creds;

	if (o->insecure_tcp)
		creds = grpc_insecure_server_credentials_create();
	else
		creds = tls_server_creds(l, o);
	if (creds == NULL)
		return SF_ECONFIG;
	l->port = grpc_server_add_http2_port(l->gs, o->address, creds);
	grpc_server_credentials_release(creds);
	if (l->port == 0) {
		log_warnx("listener %s: cannot listen on %s", l->name,
		    o->address);
		return SF_ECONFIG;
	}
	return 0;
}

/* The listener's gRPC server and the queue for its shutdown. */
static int
listener_grpc_new(struct rpc_listener *l, const rpc_listener_opts *o)
{
	grpc_arg args[10];
	grpc_channel_args cargs;

	rpc_arg_int(&args[0], GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
	    (int)l->max_message);
	rpc_arg_int(&args[1], GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
	    RPC_DEFAULT_CLIENT_MAX_MESSAGE);
	rpc_arg_int(&args[2], GRPC_ARG_MAX_CONCURRENT_STREAMS,
	    o->max_concurrent_streams ? o->max_concurrent_streams :
	    RPC_DEFAULT_MAX_STREAMS);
	rpc_arg_int(&args[3], GRPC_ARG_MAX_CONNECTION_IDLE_MS, 300000);
	rpc_arg_int(&args[4], GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, 10000);
	rpc_arg_int(&args[5], GRPC_ARG_MAX_METADATA_SIZE, 16384);
	rpc_arg_int(&args[6], GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
	rpc_arg_int(&args[7], GRPC_ARG_KEEPALIVE_TIME_MS, 120000);
	cargs.num_args = 8;
	cargs.args = args;
	if (l->conns) {
		rpc_conn_arg(l->conns, &args[cargs.num_args++]);
		/*
		 * gRPC reads up to 4 MiB at a time from a busy connection, and
		 * parses all of it before a connection closed by rpc_conn.c
		 * notices: a rapid-reset flood's 4 MiB are some 100,000 calls.
		 */
		rpc_arg_int(&args[cargs.num_args++],
		    GRPC_ARG_TCP_MAX_READ_CHUNK_SIZE, RPC_TCP_READ_CHUNK);
	}
	if ((l->gs = grpc_server_create(&cargs, NULL)) == NULL)
		return SF_ENOMEM;
	l->shutdown_cq = grpc_completion_queue_create_for_next(NULL);
	grpc_server_register_completion_queue(l->gs, l->shutdown_cq, NULL);
	return 0;
}

static void listener_free(struct rpc_listener *l);

int
rpc_server_listen(rpc_server *srv, const rpc_listener_opts *o)
{
	struct rpc_listener *l, **ls;
	int rc = SF_ENOMEM, tcp;

	if (srv->started || o->address == NULL)
		return SF_EINVAL;
	if (o->id == 0 || (o->id & (o->id - 1)) != 0) {
		log_warnx_f("listener %s: id %#x is not one bit",
		    o->name ? o->name : o->address, o->id);
		return SF_EINVAL;
	}
	if ((l = calloc(1, sizeof *l)) == NULL)
		return SF_ENOMEM;
	l->srv = srv;
	l->id = o->id;
	if ((l->name = strdup(o->name ? o->name : o->address)) == NULL)
		goto out;
	l->max_message = o->max_message ? o->max_message :
	    RPC_DEFAULT_MAX_MESSAGE;
	tcp = strncmp(o->address, "unix:", 5) != 0;
	if ((tcp && (rc = rpc_conn_new(l->name, &l->conns)) != 0) ||
	    (rc = listener_grpc_new(l, o)) != 0)
		goto out;
	if (tcp)
		rc = tcp_listen(l, o);
	else
		rc = rpc_unix_open(o, l->name, l->gs, &l->ux);
	if (rc != 0 || (rc = rpc_intake_new(l, o, &l->in)) != 0)
		goto out;
	rc = SF_ENOMEM;
	if ((ls = realloc(srv->ls, (srv->nls + 1) * sizeof *ls)) == NULL)
		goto out;
	srv->ls = ls;
	srv->ls[srv->nls++] = l;
	l = NULL;  /* transferred */
	rc = 0;
out:
	listener_free(l);
	return rc;
}

int
rpc_server_port(const rpc_server *srv, size_t i)
{
	return i < srv->nls ? srv->ls[i]->port : 0;
}

const char *
rpc_server_listener_name(const rpc_server *srv, unsigned id)
{
	for (size_t i = 0; i < srv->nls; i++)
		if (srv->ls[i]->id == id)
			return srv->ls[i]->name;
	return "raw";
}

/* ------------------------------------------------------------------ */
/* A call's peer and deadline.                                          */

/* The transport's side of rpc.h's per-call accessors; under
 * rpc_dispatch_raw (no gcall) there is no peer and no deadline. */

const char *
rpc_call_peer(rpc_call *call)
{
	char *p;

	if (call->peer_desc)
		return call->peer_desc;
	if (call->uid >= 0)
		call->peer_desc = rpc_call_printf(call, "uid %ld pid %ld",
		    call->uid, call->pid);
	else if (call->gcall && (p = grpc_call_get_peer(call->gcall)) != NULL) {
		call->peer_desc = rpc_call_strdup(call, p);
		gpr_free(p);
	}
	return call->peer_desc ? call->peer_desc : "?";
}

const char *
rpc_call_peer_cert(rpc_call *call)
{
	grpc_auth_context *ctx;
	grpc_auth_property_iterator it;
	const grpc_auth_property *prop;

	if (call->peer_cert_done)
		return call->peer_cert;
	call->peer_cert_done = 1;
	if (call->gcall == NULL ||
	    (ctx = grpc_call_auth_context(call->gcall)) == NULL)
		return NULL;
	it = grpc_auth_context_find_properties_by_name(ctx,
	    GRPC_X509_PEM_CERT_PROPERTY_NAME);
	if ((prop = grpc_auth_property_iterator_next(&it)) != NULL &&
	    prop->value_length > 0)
		call->peer_cert = rpc_call_strndup(call, prop->value,
		    prop->value_length);
	grpc_auth_context_release(ctx);
	return call->peer_cert;
}

int64_t
rpc_call_ms_left(const rpc_call *call)
{
	gpr_timespec now, d;

	if (call->gcall == NULL || gpr_time_cmp(call->deadline,
	    gpr_inf_future(call->deadline.clock_type)) == 0)
		return INT64_MAX;
	now = gpr_now(call->deadline.clock_type);
	d = gpr_time_sub(call->deadline, now);
	return (int64_t)d.tv_sec * 1000 + d.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ */
/* Start and stop.                                                      */

int
rpc_server_start(rpc_server *srv)
{
	if (srv->started)
		return SF_EINVAL;
	for (size_t i = 0; i < srv->nls; i++) {
		struct rpc_listener *l = srv->ls[i];

		grpc_server_start(l->gs);
		l->started = 1;
		if (rpc_intake_start(l->in) != 0 ||
		    (l->ux && rpc_unix_start(l->ux) != 0))
			return SF_EINTERNAL;
	}
	srv->started = 1;
	return 0;
}

/* Stop taking connections and calls; calls in flight go on. */
static void
listener_stop(struct rpc_listener *l)
{
	if (l->shut)
		return;
	l->shut = 1;
	rpc_unix_stop(l->ux);
	rpc_intake_shutdown(l->in);
	grpc_server_shutdown_and_notify(l->gs, l->shutdown_cq, &TAG_SHUTDOWN);
}

/* Wait for the calls in flight until `end` (sf_mono_ms), cancel what is
 * left, and join the listener's threads. */
static void
listener_drain(struct rpc_listener *l, int64_t end)
{
	grpc_event ev;

	/*
	 * Idle client connections keep gRPC from reporting the shutdown done:
	 * wait for calls in flight (up to the grace period), not for idle
	 * peers, then cancel what is left.
	 */
	do {
		ev = grpc_completion_queue_next(l->shutdown_cq,
		    rpc_after_ms(20), NULL);
	} while (ev.type == GRPC_QUEUE_TIMEOUT && rpc_intake_busy(l->in) > 0 &&
	    sf_mono_ms() < end);
	if (ev.type == GRPC_QUEUE_TIMEOUT) {
		grpc_server_cancel_all_calls(l->gs);
		grpc_completion_queue_next(l->shutdown_cq, rpc_forever(), NULL);
	}
	rpc_intake_join(l->in);
}

void
rpc_server_shutdown(rpc_server *srv, int grace_ms)
{
	int64_t end = sf_mono_ms() + grace_ms;

	if (srv == NULL)
		return;
	/* Stop every listener's intake first, then wait for each. */
	for (size_t i = 0; i < srv->nls; i++)
		if (srv->ls[i]->started)
			listener_stop(srv->ls[i]);
	for (size_t i = 0; i < srv->nls; i++)
		if (srv->ls[i]->started && srv->ls[i]->in)
			listener_drain(srv->ls[i], end);
	for (size_t i = 0; i < srv->nls; i++)
		srv->ls[i]->started = 0;
}

static void
listener_free(struct rpc_listener *l)
{
	if (l == NULL)
		return;
	if (l->started) {
		listener_stop(l);
		listener_drain(l, 0);
	} else if (l->gs && !l->shut) {
		/* Never started: shut down without waiting for calls. */
		grpc_server_shutdown_and_notify(l->gs, l->shutdown_cq,
		    &TAG_SHUTDOWN);
		grpc_server_cancel_all_calls(l->gs);
		grpc_completion_queue_next(l->shutdown_cq, rpc_forever(), NULL);
	}
	if (l->gs)
		grpc_server_destroy(l->gs);
	rpc_intake_free(l->in);
	rpc_conn_free(l->conns);
	if (l->shutdown_cq)
		rpc_cq_drain(l->shutdown_cq);
	rpc_unix_close(l->ux);
	tls_fetch_free(l->tls);
	free(l->name);
	free(l);
}

void
rpc_server_free(rpc_server *srv)
{
	if (srv == NULL)
		return;
	for (size_t i = 0; i < srv->nls; i++)
		listener_free(srv->ls[i]);
	free(srv->ls);
	rpc_dispatch_free(srv);
	free(srv);
}
