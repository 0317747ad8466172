/*
 * rpc_dispatch.c - the method table and the dispatch of one request,
 * without any transport (rpc.h). The table is one row per method, each
 * naming the listeners that may call it (OpenSSH monitor.c's mon_table).
 * A call goes through two steps: rpc_dispatch_find() finds the method and
 * decides whether this caller may call it (listener, then the Unix peer's
 * uid, then is there a handler), before the server so much as reads the
 * body; rpc_dispatch_body() unpacks the body, checks every string for
 * UTF-8, calls the handler, and checks and packs its reply. The gRPC server
 * (rpc_server.c) reads the body between the two; rpc_dispatch_raw() takes
 * it from its caller, so a fuzzer feeding it runs the production code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "rpc_int.h"
#include "util.h"

/* A table must match its descriptor row for row, and a handler must be
 * reachable from some listener (a row left without one is a mistake). */
static int
table_check(const ProtobufCServiceDescriptor *desc, const rpc_method *methods,
    size_t n)
{
	if (n != desc->n_methods) {
		log_warnx_f("%s: %zu handlers for %u methods", desc->name, n,
		    desc->n_methods);
		return SF_EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(methods[i].method, desc->methods[i].name) != 0) {
			log_warnx_f("%s: handler %zu is for %s, expected %s",
			    desc->name, i, methods[i].method,
			    desc->methods[i].name);
			return SF_EINVAL;
		}
		if (methods[i].fn && methods[i].listeners == 0) {
			log_warnx_f("%s: %s has a handler but no listener",
			    desc->name, methods[i].method);
			return SF_EINVAL;
		}
	}
	return 0;
}

int
rpc_server_add_service(rpc_server *srv, const ProtobufCServiceDescriptor *desc,
    const rpc_method *methods, size_t n, void *arg)
{
	struct rpc_svc *svcs;
	struct rpc_path *paths;
	rpc_method *rows = NULL;
	size_t np = 0;
	int rc;

	if (srv->started)
		return SF_EINVAL;
	if ((rc = table_check(desc, methods, n)) != 0)
		return rc;
	if ((svcs = realloc(srv->svcs, (srv->nsvcs + 1) * sizeof *svcs)) == NULL)
		return SF_ENOMEM;
	srv->svcs = svcs;
	if ((paths = realloc(srv->paths, (srv->npaths + n) * sizeof *paths)) ==
	    NULL)
		return SF_ENOMEM;
	srv->paths = paths;
	rc = SF_ENOMEM;
	if ((rows = calloc(n ? n : 1, sizeof *rows)) == NULL)
		goto out;
	memcpy(rows, methods, n * sizeof *rows);
	for (np = 0; np < n; np++) {
		struct rpc_path *p = &paths[srv->npaths + np];

		if ((p->path = sf_aprintf("/%s/%s", desc->name,
		    desc->methods[np].name)) == NULL)
			goto out;
		p->svc = srv->nsvcs;
		p->idx = np;
	}
	svcs[srv->nsvcs].desc = desc;
	svcs[srv->nsvcs].methods = rows;
	rows = NULL;  /* transferred */
	svcs[srv->nsvcs].n = n;
	svcs[srv->nsvcs].arg = arg;
	srv->nsvcs++;
	srv->npaths += n;
	rc = 0;
out:
	if (rc != 0)
		for (size_t i = 0; i < np; i++)
			free(paths[srv->npaths + i].path);
	free(rows);
	return rc;
}

void
rpc_dispatch_free(rpc_server *srv)
{
	for (size_t i = 0; i < srv->nsvcs; i++)
		free(srv->svcs[i].methods);
	free(srv->svcs);
	for (size_t i = 0; i < srv->npaths; i++)
		free(srv->paths[i].path);
	free(srv->paths);
}

const struct rpc_path *
rpc_dispatch_find(rpc_call *call)
{
	const rpc_server *srv = call->srv;
	const struct rpc_path *p = NULL;
	const rpc_method *m;

	for (size_t i = 0; i < srv->npaths && p == NULL; i++)
		if (strcmp(srv->paths[i].path, call->method) == 0)
			p = &srv->paths[i];
	if (p == NULL) {
		rpc_fail(call, RPC_UNIMPLEMENTED, "unknown method %s",
		    call->method);
		return NULL;
	}
	m = &srv->svcs[p->svc].methods[p->idx];
	if (!(m->listeners & call->listener_id)) {
		rpc_fail(call, RPC_PERMISSION_DENIED,
		    "%s is not served on the %s listener", call->method,
		    call->listener);
		log_warnx("listener %s: refused %s (not served here)",
		    call->listener, call->method);
		return NULL;
	}
	if (call->ux && rpc_unix_peer_check(call->ux, call) != 0)
		return NULL;
	if (m->fn == NULL) {
		rpc_fail(call, RPC_UNIMPLEMENTED, "%s is not implemented",
		    call->method);
		return NULL;
	}
	return p;
}

/*
 * Check a reply message for UTF-8 and pack it into *buf (malloc'd).
 * Returns 0, or -1 with *bad naming the offending field (NULL when out of
 * memory).
 */
static int
reply_pack(rpc_call *call, const ProtobufCMessage *m, uint8_t **buf,
    size_t *len, const char **bad)
{
	size_t n;

	*buf = NULL;
	*len = 0;
	if (!rpc_message_utf8_ok(m, bad)) {
		log_warnx("%s: reply field %s is not UTF-8", call->method,
		    *bad);
		return -1;
	}
	n = protobuf_c_message_get_packed_size(m);
	if ((*buf = malloc(n ? n : 1)) == NULL)
		return -1;
	*len = protobuf_c_message_pack(m, *buf);
	return 0;
}

void
rpc_dispatch_body(rpc_call *call, const struct rpc_path *p,
    const uint8_t *body, size_t len)
{
	const struct rpc_svc *svc = &call->srv->svcs[p->svc];
	const ProtobufCMethodDescriptor *md = &svc->desc->methods[p->idx];
	const rpc_method *m = &svc->methods[p->idx];
	ProtobufCMessage *req, *resp = NULL;
	const char *bad;

	req = protobuf_c_message_unpack(md->input, NULL, len, body);
	if (req == NULL) {
		rpc_fail(call, RPC_INVALID_ARGUMENT,
		    "request body is not a valid %s message", md->input->name);
		goto out;
	}
	if (!rpc_message_utf8_ok(req, &bad)) {
		rpc_fail(call, RPC_INVALID_ARGUMENT,
		    "field %s is not valid UTF-8", bad);
		goto out;
	}
	if (m->kind == RPC_UNARY &&
	    (resp = rpc_call_new_message(call, md->output)) == NULL) {
		call->code = RPC_INTERNAL;
		goto out;
	}
	call->code = m->fn(call, req, resp, svc->arg);
	if (call->code < 0 || call->code > RPC_UNAUTHENTICATED) {
		log_warnx("%s: handler returned %d", call->method, call->code);
		call->code = RPC_INTERNAL;
	}
	if (call->code == RPC_OK && resp &&
	    reply_pack(call, resp, &call->reply, &call->reply_len, &bad) != 0) {
		if (bad)
			rpc_fail(call, RPC_INTERNAL,
			    "reply field %s is not valid UTF-8", bad);
		else
			call->code = RPC_INTERNAL;
	}
out:
	if (req)
		protobuf_c_message_free_unpacked(req, NULL);
}

int
rpc_call_send(rpc_call *call, const ProtobufCMessage *msg)
{
	uint8_t *buf;
	size_t len;
	const char *bad;

	if (call->ended || reply_pack(call, msg, &buf, &len, &bad) != 0)
		return -1;
	if (call->gcall == NULL) {
		/* rpc_dispatch_raw: checked and packed as on the wire. */
		free(buf);
		return 0;
	}
	return rpc_intake_send(call, buf, len);
}

int
rpc_dispatch_raw(rpc_server *srv, unsigned listener, const char *path,
    const void *body, size_t len, uint8_t **reply, size_t *reply_len,
    rpc_status *st)
{
	const struct rpc_path *p;
	rpc_call call;
	int code;

	*reply = NULL;
	*reply_len = 0;
	rpc_call_init(&call, srv, rpc_server_listener_name(srv, listener),
	    listener);
	call.peer_desc = "raw dispatch";
	if ((call.method = rpc_call_strdup(&call, path)) == NULL)
		call.code = RPC_INTERNAL;
	else if ((p = rpc_dispatch_find(&call)) != NULL)
		rpc_dispatch_body(&call, p, body, len);
	if (call.code == RPC_OK) {
		*reply = call.reply;
		*reply_len = call.reply_len;
		call.reply = NULL;  /* transferred */
	}
	if (st) {
		/* As rpc_client reads it: an empty message is the code's name. */
		const char *m = rpc_call_status_message(&call);

		st->code = call.code;
		snprintf(st->message, sizeof st->message, "%s",
		    *m ? m : rpc_code_name(call.code));
	}
	code = call.code;
	rpc_call_fini(&call);
	return code;
}
