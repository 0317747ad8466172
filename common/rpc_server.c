/*
 * rpc_server.c - the gRPC side of the server (rpc.h): listeners, workers,
 * and each call's life on the wire around the dispatch of rpc_dispatch.c.
 *
 * Every listener is a grpc_server of its own (a call carries no identity
 * of the port it came in on, and the method table is checked against the
 * listener's id), with one completion queue and one thread per worker. A
 * worker asks for a call, serves it to the end, and asks for the next:
 * simple, and a slow handler holds only its own worker. Serving a call:
 * rpc_dispatch_find() (method, listener, Unix peer uid), then read the
 * body, rpc_dispatch_body() (unpack, UTF-8, handler, packed reply), then
 * send the reply and status. TCP listeners use TLS; Unix listeners are
 * rpc_unix.c's.
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

/* Distinct addresses used as completion-queue tags. */
static char TAG_NEW, TAG_RECV, TAG_CLOSE, TAG_SEND, TAG_SHUTDOWN;

struct worker {
	struct rpc_listener *l;
	grpc_completion_queue *cq;
	pthread_t thr;
	int started;
};

struct rpc_listener {
	rpc_server *srv;
	char *name;
	unsigned id;
	grpc_server *gs;
	grpc_completion_queue *shutdown_cq;
	struct worker *workers;
	int nworkers;
	struct rpc_unix *ux;     /* Unix listeners */
	int port;                /* TCP listeners */
	size_t max_message;
	int recv_timeout_ms;
	int shut;
	int active;              /* calls being served (atomic) */
};

rpc_server *
rpc_server_new(void)
{
	return calloc(1, sizeof(rpc_server));
}

static grpc_server_credentials *
tls_server_creds(const rpc_listener_opts *o)
{
	grpc_ssl_pem_key_cert_pair pair;
	grpc_server_credentials *creds = NULL;
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
	creds = grpc_ssl_server_credentials_create_ex(ca, &pair, 1, req, NULL);
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
		creds = tls_server_creds(o);
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

/* The listener's gRPC server, a completion queue per worker and one for
 * its shutdown. */
static int
listener_grpc_new(struct rpc_listener *l, const rpc_listener_opts *o)
{
	grpc_arg args[8];
	grpc_channel_args cargs;
	int nw = o->workers > 0 ? o->workers : RPC_DEFAULT_WORKERS;

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
	if ((l->gs = grpc_server_create(&cargs, NULL)) == NULL)
		return SF_ENOMEM;
	if ((l->workers = calloc((size_t)nw, sizeof *l->workers)) == NULL)
		return SF_ENOMEM;
	l->nworkers = nw;
	for (int i = 0; i < nw; i++) {
		l->workers[i].l = l;
		l->workers[i].cq = grpc_completion_queue_create_for_next(NULL);
		grpc_server_register_completion_queue(l->gs,
		    l->workers[i].cq, NULL);
	}
	l->shutdown_cq = grpc_completion_queue_create_for_next(NULL);
	grpc_server_register_completion_queue(l->gs, l->shutdown_cq, NULL);
	return 0;
}

static void listener_free(struct rpc_listener *l);

int
rpc_server_listen(rpc_server *srv, const rpc_listener_opts *o)
{
	struct rpc_listener *l, **ls;
	int rc = SF_ENOMEM;

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
	l->recv_timeout_ms = o->recv_timeout_ms ? o->recv_timeout_ms :
	    RPC_DEFAULT_RECV_TIMEOUT_MS;
	if ((rc = listener_grpc_new(l, o)) != 0)
		goto out;
	if (strncmp(o->address, "unix:", 5) == 0)
		rc = rpc_unix_open(o, l->name, l->gs, &l->ux);
	else
		rc = tcp_listen(l, o);
	if (rc != 0)
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
/* A call on the wire.                                                  */

/*
 * Wait on the call's queue until `tag` completes or `deadline` passes.
 * Returns 1 on success, 0 if the operation failed, -1 on timeout.
 * The close notification may arrive meanwhile; it is recorded.
 */
static int
call_wait(rpc_call *rc, void *tag, gpr_timespec deadline)
{
	for (;;) {
		grpc_event ev = grpc_completion_queue_next(rc->cq, deadline,
		    NULL);

		if (ev.type == GRPC_QUEUE_TIMEOUT)
			return -1;
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			return 0;
		if (ev.tag == &TAG_CLOSE)
			rc->closed = 1;
		if (ev.tag == tag)
			return ev.success ? 1 : 0;
	}
}

/* A byte buffer holding buf, which it takes (and frees with itself). */
static grpc_byte_buffer *
buffer_take(uint8_t *buf, size_t len)
{
	grpc_slice s;
	grpc_byte_buffer *bb;

	if (len == 0) {
		free(buf);
		s = grpc_empty_slice();
	} else
		s = grpc_slice_new(buf, len, free);
	bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

int
rpc_server_send(rpc_call *rc, uint8_t *buf, size_t len)
{
	grpc_op ops[2];
	size_t n = 0;
	grpc_byte_buffer *bb = buffer_take(buf, len);
	int ok;

	memset(ops, 0, sizeof ops);
	if (!rc->sent_md) {
		ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
		n++;
	}
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n].data.send_message.send_message = bb;
	n++;
	if (grpc_call_start_batch(rc->gcall, ops, n, &TAG_SEND, NULL) !=
	    GRPC_CALL_OK) {
		grpc_byte_buffer_destroy(bb);
		rc->ended = 1;
		return -1;
	}
	rc->sent_md = 1;
	ok = call_wait(rc, &TAG_SEND, rpc_forever());
	grpc_byte_buffer_destroy(bb);
	if (ok != 1) {
		rc->ended = 1;
		return -1;
	}
	return 0;
}

/* Send the final status (and, for a unary OK, the packed reply). */
static void
send_final(rpc_call *rc)
{
	grpc_op ops[4];
	size_t n = 0;
	grpc_slice details;
	grpc_byte_buffer *reply = NULL;
	int cancelled = 0;

	if (rc->ended)
		return;
	memset(ops, 0, sizeof ops);
	details = grpc_slice_from_copied_string(rpc_call_status_message(rc));
	if (!rc->sent_md) {
		ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
		n++;
	}
	if (rc->code == RPC_OK && rc->reply) {
		reply = buffer_take(rc->reply, rc->reply_len);
		rc->reply = NULL;  /* transferred */
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n].data.send_message.send_message = reply;
		n++;
	}
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = (grpc_status_code)rc->code;
	ops[n].data.send_status_from_server.status_details = &details;
	n++;
	if (!rc->close_started) {
		ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
		ops[n].data.recv_close_on_server.cancelled = &cancelled;
		n++;
		rc->close_started = 1;
		rc->closed = 1;  /* completes with this batch */
	}
	if (grpc_call_start_batch(rc->gcall, ops, n, &TAG_SEND, NULL) ==
	    GRPC_CALL_OK)
		call_wait(rc, &TAG_SEND, rpc_forever());
	grpc_slice_unref(details);
	if (reply)
		grpc_byte_buffer_destroy(reply);
	rc->ended = 1;
}

/*
 * Read the request body into *in, giving a client that never sends it
 * recv_timeout_ms, then ask to hear of the client's cancellation. Returns
 * 0, or -1 when the call is over (no status is sent then) or has failed
 * with its status set.
 */
static int
recv_body(struct rpc_listener *l, rpc_call *rc, grpc_byte_buffer **in)
{
	grpc_op op;
	int w;

	memset(&op, 0, sizeof op);
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = in;
	if (grpc_call_start_batch(rc->gcall, &op, 1, &TAG_RECV, NULL) !=
	    GRPC_CALL_OK) {
		rc->code = RPC_INTERNAL;
		return -1;
	}
	if ((w = call_wait(rc, &TAG_RECV, rpc_after_ms(l->recv_timeout_ms))) !=
	    1) {
		if (w < 0) {
			/* The client never sent its message: give up on it. */
			grpc_call_cancel(rc->gcall, NULL);
			call_wait(rc, &TAG_RECV, rpc_forever());
		}
		rc->ended = 1;
		return -1;
	}
	if (*in == NULL) {
		rpc_fail(rc, RPC_INVALID_ARGUMENT, "no request message");
		return -1;
	}
	memset(&op, 0, sizeof op);
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = &rc->close_cancelled;
	if (grpc_call_start_batch(rc->gcall, &op, 1, &TAG_CLOSE, NULL) ==
	    GRPC_CALL_OK)
		rc->close_started = 1;
	return 0;
}

static void
serve_call(struct rpc_listener *l, grpc_completion_queue *cq, grpc_call *call,
    grpc_call_details *det)
{
	rpc_call rc;
	const struct rpc_path *p;
	grpc_byte_buffer *in = NULL;
	grpc_slice body;

	rpc_call_init(&rc, l->srv, l->name, l->id);
	rc.ux = l->ux;
	rc.gcall = call;
	rc.cq = cq;
	rc.deadline = det->deadline;
	rc.method = rpc_call_strndup(&rc,
	    (const char *)GRPC_SLICE_START_PTR(det->method),
	    GRPC_SLICE_LENGTH(det->method));
	if (rc.method == NULL) {
		rc.code = RPC_INTERNAL;
		goto out;
	}
	if ((p = rpc_dispatch_find(&rc)) == NULL ||
	    recv_body(l, &rc, &in) != 0)
		goto out;
	body = rpc_buffer_slice(in);
	rpc_dispatch_body(&rc, p, GRPC_SLICE_START_PTR(body),
	    GRPC_SLICE_LENGTH(body));
	grpc_slice_unref(body);
out:
	send_final(&rc);
	if (rc.close_started && !rc.closed)
		call_wait(&rc, &TAG_CLOSE, rpc_forever());
	if (in)
		grpc_byte_buffer_destroy(in);
	rpc_call_fini(&rc);
}

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

int
rpc_call_cancelled(rpc_call *call)
{
	if (call->ended)
		return 1;
	if (call->close_started && !call->closed) {
		/* Only this call's events are on the worker's queue. */
		grpc_event ev = grpc_completion_queue_next(call->cq,
		    gpr_time_0(GPR_CLOCK_REALTIME), NULL);

		if (ev.type == GRPC_OP_COMPLETE && ev.tag == &TAG_CLOSE)
			call->closed = 1;
	}
	return call->closed && call->close_cancelled;
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
/* Workers, start and stop.                                             */

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct rpc_listener *l = w->l;

	for (;;) {
		grpc_call *call = NULL;
		grpc_call_details det;
		grpc_metadata_array md;
		grpc_event ev;
		int ok;

		grpc_call_details_init(&det);
		grpc_metadata_array_init(&md);
		ok = grpc_server_request_call(l->gs, &call, &det, &md, w->cq,
		    w->cq, &TAG_NEW) == GRPC_CALL_OK;
		if (ok) {
			do
				ev = grpc_completion_queue_next(w->cq,
				    rpc_forever(), NULL);
			while (ev.type == GRPC_OP_COMPLETE &&
			    ev.tag != &TAG_NEW);
			ok = ev.type == GRPC_OP_COMPLETE && ev.success;
		}
		if (ok) {
			__atomic_add_fetch(&l->active, 1, __ATOMIC_SEQ_CST);
			serve_call(l, w->cq, call, &det);
			__atomic_sub_fetch(&l->active, 1, __ATOMIC_SEQ_CST);
		}
		if (call)
			grpc_call_unref(call);
		grpc_call_details_destroy(&det);
		grpc_metadata_array_destroy(&md);
		if (!ok)
			break;
	}
	return NULL;
}

int
rpc_server_start(rpc_server *srv)
{
	if (srv->started)
		return SF_EINVAL;
	for (size_t i = 0; i < srv->nls; i++) {
		struct rpc_listener *l = srv->ls[i];

		grpc_server_start(l->gs);
		for (int k = 0; k < l->nworkers; k++) {
			if (pthread_create(&l->workers[k].thr, NULL,
			    worker_main, &l->workers[k]) != 0) {
				log_warn("listener %s: pthread_create", l->name);
				return SF_EINTERNAL;
			}
			l->workers[k].started = 1;
		}
		if (l->ux && rpc_unix_start(l->ux) != 0)
			return SF_EINTERNAL;
	}
	srv->started = 1;
	return 0;
}

static void
listener_shutdown(struct rpc_listener *l, int grace_ms)
{
	grpc_event ev;
	int64_t end;

	if (l->shut)
		return;
	l->shut = 1;
	rpc_unix_stop(l->ux);
	if (l->gs == NULL)
		return;
	grpc_server_shutdown_and_notify(l->gs, l->shutdown_cq, &TAG_SHUTDOWN);
	end = sf_mono_ms() + grace_ms;
	/*
	 * Idle client connections keep gRPC from reporting the shutdown done:
	 * wait for calls in flight (up to the grace period), not for idle
	 * peers, then cancel what is left.
	 */
	do {
		ev = grpc_completion_queue_next(l->shutdown_cq,
		    rpc_after_ms(20), NULL);
	} while (ev.type == GRPC_QUEUE_TIMEOUT &&
	    __atomic_load_n(&l->active, __ATOMIC_SEQ_CST) > 0 &&
	    sf_mono_ms() < end);
	if (ev.type == GRPC_QUEUE_TIMEOUT) {
		grpc_server_cancel_all_calls(l->gs);
		ev = grpc_completion_queue_next(l->shutdown_cq, rpc_forever(),
		    NULL);
	}
	for (int k = 0; k < l->nworkers; k++)
		if (l->workers[k].started) {
			pthread_join(l->workers[k].thr, NULL);
			l->workers[k].started = 0;
		}
}

void
rpc_server_shutdown(rpc_server *srv, int grace_ms)
{
	if (srv == NULL)
		return;
	/* Stop every listener's intake first, then wait for each. */
	for (size_t i = 0; i < srv->nls; i++)
		listener_shutdown(srv->ls[i], grace_ms);
}

static void
listener_free(struct rpc_listener *l)
{
	if (l == NULL)
		return;
	if (l->gs && !l->shut) {
		if (l->srv && l->srv->started)
			listener_shutdown(l, 0);
		else {
			/* Never started: shut down without waiting for calls. */
			grpc_server_shutdown_and_notify(l->gs, l->shutdown_cq,
			    &TAG_SHUTDOWN);
			grpc_server_cancel_all_calls(l->gs);
			grpc_completion_queue_next(l->shutdown_cq, rpc_forever(),
			    NULL);
			l->shut = 1;
		}
	}
	if (l->gs)
		grpc_server_destroy(l->gs);
	for (int k = 0; k < l->nworkers; k++)
		if (l->workers[k].cq)
			rpc_cq_drain(l->workers[k].cq);
	if (l->shutdown_cq)
		rpc_cq_drain(l->shutdown_cq);
	rpc_unix_close(l->ux);
	free(l->workers);
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
