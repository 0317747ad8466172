/*
 * rpc_client.c - the client side of the layer (rpc.h): a channel to a Unix
 * socket or a TLS endpoint, unary and server-streaming calls that pack the
 * request and unpack the reply, and raw calls for tests of the wire. Each
 * call has its own completion queue, so one channel serves many threads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include "err.h"
#include "log.h"
#include "rpc_int.h"
#include "util.h"

static char TAG_CLIENT;

/* Pack a message into a new byte buffer. */
static grpc_byte_buffer *
pack_message(const ProtobufCMessage *m)
{
	size_t sz = protobuf_c_message_get_packed_size(m);
	grpc_slice s = grpc_slice_malloc(sz);
	grpc_byte_buffer *bb;

	protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
	bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

struct rpc_client {
	grpc_channel *ch;
	char *target;
};

int
rpc_client_open(const char *target, const rpc_client_opts *o,
    rpc_client **out)
{
	rpc_client *c = NULL;
	grpc_channel_credentials *creds = NULL;
	grpc_arg args[7];
	grpc_channel_args cargs;
	char *ca = NULL, *cert = NULL, *key = NULL;
	size_t nargs = 0;
	int maxmsg = (int)(o && o->max_message ? o->max_message :
	    RPC_DEFAULT_CLIENT_MAX_MESSAGE);
	int rc = SF_ENOMEM;

	*out = NULL;
	if (target == NULL || *target == '\0')
		return SF_EINVAL;
	if ((c = calloc(1, sizeof *c)) == NULL ||
	    (c->target = strdup(target)) == NULL)
		goto out;
	rpc_arg_int(&args[nargs++], GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, maxmsg);
	rpc_arg_int(&args[nargs++], GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, maxmsg);
	/*
	 * A restarted peer (the signer, behind authz) is found again within
	 * two seconds, not after gRPC's default back-off of up to two minutes.
	 */
	rpc_arg_int(&args[nargs++], GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
	/* Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC also takes it as the
	 * connect timeout, and a loaded machine needs more than 100 ms. */
	rpc_arg_int(&args[nargs++], GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
	if (strncmp(target, "unix:", 5) == 0 || (o && o->insecure_tcp)) {
		creds = grpc_insecure_credentials_create();
	} else {
		grpc_ssl_pem_key_cert_pair pair;

		rc = SF_EIO;
		if (o && o->tls_ca_file &&
		    (ca = rpc_read_text(o->tls_ca_file)) == NULL) {
			log_warn("cannot read CA file %s", o->tls_ca_file);
			goto out;
		}
		if (o && o->tls_cert_file) {
			if ((cert = rpc_read_text(o->tls_cert_file)) == NULL ||
			    o->tls_key_file == NULL ||
			    (key = rpc_read_text(o->tls_key_file)) == NULL) {
				log_warn("cannot read client certificate/key");
				goto out;
			}
			pair.private_key = key;
			pair.cert_chain = cert;
		}
		creds = grpc_ssl_credentials_create(ca, cert ? &pair : NULL,
		    NULL, NULL);
		if (o && o->server_name) {
			args[nargs].type = GRPC_ARG_STRING;
			args[nargs].key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
			args[nargs].value.string = (char *)o->server_name;
			nargs++;
		}
	}
	if (creds == NULL) {
		rc = SF_EINTERNAL;
		goto out;
	}
	cargs.num_args = nargs;
	cargs.args = args;
	c->ch = grpc_channel_create(target, creds, &cargs);
	grpc_channel_credentials_release(creds);
	if (c->ch == NULL) {
		rc = SF_EINTERNAL;
		goto out;
	}
	*out = c;
	c = NULL;  /* transferred */
	rc = 0;
out:
	rpc_free_secret(key);
	free(cert);
	free(ca);
	rpc_client_close(c);
	return rc;
}

void
rpc_client_close(rpc_client *c)
{
	if (c == NULL)
		return;
	if (c->ch)
		grpc_channel_destroy(c->ch);
	free(c->target);
	free(c);
}

static gpr_timespec
client_deadline(int timeout_ms)
{
	return timeout_ms <= 0 ? rpc_forever() : rpc_after_ms(timeout_ms);
}

static void
status_set(rpc_status *st, int code, grpc_slice *details, const char *fallback)
{
	size_t n;

	if (st == NULL)
		return;
	st->code = code;
	st->message[0] = '\0';
	if (details && GRPC_SLICE_LENGTH(*details) > 0) {
		n = GRPC_SLICE_LENGTH(*details);
		if (n >= sizeof st->message)
			n = sizeof st->message - 1;
		memcpy(st->message, GRPC_SLICE_START_PTR(*details), n);
		st->message[n] = '\0';
	} else if (fallback)
		snprintf(st->message, sizeof st->message, "%s", fallback);
}

static int
client_wait(grpc_completion_queue *cq)
{
	grpc_event ev = grpc_completion_queue_next(cq, rpc_forever(), NULL);

	return ev.type == GRPC_OP_COMPLETE && ev.success;
}

/* A new call to path on a queue of its own (*cq), or NULL with st set. */
static grpc_call *
client_new_call(rpc_client *c, const char *path, int timeout_ms,
    grpc_completion_queue **cq, rpc_status *st)
{
	grpc_slice method = grpc_slice_from_copied_string(path);
	grpc_call *call;

	*cq = grpc_completion_queue_create_for_next(NULL);
	call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS,
	    *cq, method, NULL, client_deadline(timeout_ms), NULL);
	grpc_slice_unref(method);
	if (call == NULL) {
		rpc_cq_drain(*cq);
		*cq = NULL;
		status_set(st, RPC_INTERNAL, NULL, "cannot create call");
	}
	return call;
}

/* ops[0..3]: send the metadata, the request and the close; receive the
 * server's initial metadata into md. */
static void
request_ops(grpc_op *ops, grpc_byte_buffer *send, grpc_metadata_array *md)
{
	memset(ops, 0, 4 * sizeof *ops);
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = md;
}

/* *op: receive the final status into code and details. */
static void
status_op(grpc_op *op, grpc_metadata_array *trail, grpc_status_code *code,
    grpc_slice *details)
{
	memset(op, 0, sizeof *op);
	op->op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	op->data.recv_status_on_client.trailing_metadata = trail;
	op->data.recv_status_on_client.status = code;
	op->data.recv_status_on_client.status_details = details;
}

static int
call_raw_bb(rpc_client *c, const char *path, grpc_byte_buffer *send,
    grpc_byte_buffer **recv, int timeout_ms, rpc_status *st)
{
	grpc_completion_queue *cq;
	grpc_call *call;
	grpc_op ops[6];
	grpc_metadata_array md, trail;
	grpc_status_code code = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice();
	int rc;

	*recv = NULL;
	if ((call = client_new_call(c, path, timeout_ms, &cq, st)) == NULL)
		return RPC_INTERNAL;
	grpc_metadata_array_init(&md);
	grpc_metadata_array_init(&trail);
	request_ops(ops, send, &md);
	memset(&ops[4], 0, sizeof ops[4]);
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = recv;
	status_op(&ops[5], &trail, &code, &details);
	if (grpc_call_start_batch(call, ops, 6, &TAG_CLIENT, NULL) !=
	    GRPC_CALL_OK || !client_wait(cq)) {
		status_set(st, RPC_INTERNAL, NULL, "call failed");
		rc = RPC_INTERNAL;
	} else {
		rc = (int)code;
		status_set(st, rc, &details, rpc_code_name(rc));
	}
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&md);
	grpc_metadata_array_destroy(&trail);
	grpc_call_unref(call);
	rpc_cq_drain(cq);
	if (rc != RPC_OK && *recv) {
		grpc_byte_buffer_destroy(*recv);
		*recv = NULL;
	}
	return rc;
}

int
rpc_client_call_raw(rpc_client *c, const char *path, const void *body,
    size_t len, uint8_t **out, size_t *out_len, int timeout_ms,
    rpc_status *st)
{
	grpc_slice s = grpc_slice_from_copied_buffer(body, len);
	grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&s, 1);
	grpc_byte_buffer *recv = NULL;
	int rc;

	grpc_slice_unref(s);
	*out = NULL;
	*out_len = 0;
	rc = call_raw_bb(c, path, send, &recv, timeout_ms, st);
	grpc_byte_buffer_destroy(send);
	if (rc == RPC_OK && recv) {
		grpc_slice r = rpc_buffer_slice(recv);
		size_t n = GRPC_SLICE_LENGTH(r);

		if ((*out = malloc(n ? n : 1)) != NULL) {
			memcpy(*out, GRPC_SLICE_START_PTR(r), n);
			*out_len = n;
		} else
			rc = RPC_INTERNAL;
		grpc_slice_unref(r);
	}
	if (recv)
		grpc_byte_buffer_destroy(recv);
	return rc;
}

static char *
method_path(const ProtobufCServiceDescriptor *svc, const char *method,
    const ProtobufCMethodDescriptor **md)
{
	*md = protobuf_c_service_descriptor_get_method_by_name(svc, method);
	if (*md == NULL)
		return NULL;
	return sf_aprintf("/%s/%s", svc->name, method);
}

int
rpc_client_call(rpc_client *c, const ProtobufCServiceDescriptor *svc,
    const char *method, const ProtobufCMessage *req, ProtobufCMessage **resp,
    int timeout_ms, rpc_status *st)
{
	const ProtobufCMethodDescriptor *md;
	grpc_byte_buffer *send, *recv = NULL;
	char *path;
	int rc;

	*resp = NULL;
	if ((path = method_path(svc, method, &md)) == NULL) {
		status_set(st, RPC_UNIMPLEMENTED, NULL, "no such method");
		return RPC_UNIMPLEMENTED;
	}
	if (req->descriptor != md->input) {
		free(path);
		status_set(st, RPC_INTERNAL, NULL, "wrong request type");
		return RPC_INTERNAL;
	}
	send = pack_message(req);
	rc = call_raw_bb(c, path, send, &recv, timeout_ms, st);
	grpc_byte_buffer_destroy(send);
	free(path);
	if (rc == RPC_OK) {
		grpc_slice r;

		if (recv == NULL) {
			status_set(st, RPC_INTERNAL, NULL, "no reply message");
			return RPC_INTERNAL;
		}
		r = rpc_buffer_slice(recv);
		*resp = protobuf_c_message_unpack(md->output, NULL,
		    GRPC_SLICE_LENGTH(r), GRPC_SLICE_START_PTR(r));
		grpc_slice_unref(r);
		if (*resp == NULL) {
			status_set(st, RPC_INTERNAL, NULL,
			    "reply is not a valid message");
			rc = RPC_INTERNAL;
		}
	}
	if (recv)
		grpc_byte_buffer_destroy(recv);
	return rc;
}

int
rpc_client_stream(rpc_client *c, const ProtobufCServiceDescriptor *svc,
    const char *method, const ProtobufCMessage *req, rpc_stream_cb cb,
    void *arg, int timeout_ms, rpc_status *st)
{
	const ProtobufCMethodDescriptor *md;
	grpc_completion_queue *cq;
	grpc_call *call;
	grpc_op ops[4];
	grpc_metadata_array md_in, trail;
	grpc_status_code code = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice();
	grpc_byte_buffer *send, *recv;
	char *path;
	int rc = RPC_INTERNAL, stopped = 0;

	if ((path = method_path(svc, method, &md)) == NULL) {
		status_set(st, RPC_UNIMPLEMENTED, NULL, "no such method");
		return RPC_UNIMPLEMENTED;
	}
	call = client_new_call(c, path, timeout_ms, &cq, st);
	free(path);
	if (call == NULL)
		return RPC_INTERNAL;
	grpc_metadata_array_init(&md_in);
	grpc_metadata_array_init(&trail);
	send = pack_message(req);
	request_ops(ops, send, &md_in);
	if (grpc_call_start_batch(call, ops, 4, &TAG_CLIENT, NULL) ==
	    GRPC_CALL_OK)
		client_wait(cq);
	for (;;) {
		grpc_slice r;
		ProtobufCMessage *m;

		recv = NULL;
		memset(ops, 0, sizeof ops);
		ops[0].op = GRPC_OP_RECV_MESSAGE;
		ops[0].data.recv_message.recv_message = &recv;
		if (grpc_call_start_batch(call, ops, 1, &TAG_CLIENT, NULL) !=
		    GRPC_CALL_OK || !client_wait(cq) || recv == NULL)
			break;
		r = rpc_buffer_slice(recv);
		grpc_byte_buffer_destroy(recv);
		m = protobuf_c_message_unpack(md->output, NULL,
		    GRPC_SLICE_LENGTH(r), GRPC_SLICE_START_PTR(r));
		grpc_slice_unref(r);
		if (m == NULL || cb(m, arg) != 0) {
			if (m)
				protobuf_c_message_free_unpacked(m, NULL);
			stopped = 1;
			grpc_call_cancel(call, NULL);
			break;
		}
		protobuf_c_message_free_unpacked(m, NULL);
	}
	status_op(&ops[0], &trail, &code, &details);
	if (grpc_call_start_batch(call, ops, 1, &TAG_CLIENT, NULL) ==
	    GRPC_CALL_OK && client_wait(cq)) {
		rc = stopped ? RPC_CANCELLED : (int)code;
		status_set(st, rc, stopped ? NULL : &details,
		    stopped ? "stopped by the receiver" : rpc_code_name(rc));
	} else
		status_set(st, rc, NULL, "call failed");
	grpc_byte_buffer_destroy(send);
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&md_in);
	grpc_metadata_array_destroy(&trail);
	grpc_call_unref(call);
	rpc_cq_drain(cq);
	return rc;
}
