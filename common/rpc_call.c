/*
 * rpc_call.c - one call's memory and outcome, whatever carries it (rpc.h
 * "Per-call helpers"): the arena a handler builds its reply in (freed in
 * one go when the call ends), the status and message it fails with, and
 * the UTF-8 checks protobuf-c leaves to us (a proto3 string must be UTF-8,
 * and a Python client cannot decode a reply that is not). Nothing here
 * knows about gRPC.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "rpc_int.h"

void
rpc_call_init(rpc_call *call, rpc_server *srv, const char *listener,
    unsigned listener_id)
{
	memset(call, 0, sizeof *call);
	call->srv = srv;
	call->listener = listener;
	call->listener_id = listener_id;
	call->uid = call->pid = -1;
}

void
rpc_call_fini(rpc_call *call)
{
	struct rpc_arena *b = call->arena;

	while (b) {
		struct rpc_arena *n = b->next;

		free(b);
		b = n;
	}
	call->arena = NULL;
	free(call->reply);
	call->reply = NULL;
}

const char *
rpc_call_status_message(const rpc_call *call)
{
	if (call->msg)
		return call->msg;
	return call->code == RPC_OK ? "" : rpc_code_name(call->code);
}

void *
rpc_call_alloc(rpc_call *call, size_t size)
{
	struct rpc_arena *b;

	if (size == 0)
		size = 1;
	if (size > SIZE_MAX - sizeof *b)
		return NULL;
	if ((b = calloc(1, sizeof *b + size)) == NULL)
		return NULL;
	b->next = call->arena;
	call->arena = b;
	return b->data;
}

char *
rpc_call_strndup(rpc_call *call, const char *s, size_t n)
{
	char *p = rpc_call_alloc(call, n + 1);

	if (p)
		memcpy(p, s, n);
	return p;
}

char *
rpc_call_strdup(rpc_call *call, const char *s)
{
	return rpc_call_strndup(call, s ? s : "", s ? strlen(s) : 0);
}

/* fmt formatted into the call's memory; NULL when out of memory. */
static char *
call_vprintf(rpc_call *call, const char *fmt, va_list ap)
{
	char *tmp, *p;

	if (vasprintf(&tmp, fmt, ap) < 0)
		return NULL;
	p = rpc_call_strdup(call, tmp);
	free(tmp);
	return p;
}

char *
rpc_call_printf(rpc_call *call, const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	p = call_vprintf(call, fmt, ap);
	va_end(ap);
	return p;
}

void
rpc_call_set_bytes(rpc_call *call, ProtobufCBinaryData *out, const void *data,
    size_t len)
{
	if (len == 0) {
		out->data = NULL;
		out->len = 0;
		return;
	}
	out->data = rpc_call_alloc(call, len);
	if (out->data == NULL) {
		out->len = 0;
		return;
	}
	memcpy(out->data, data, len);
	out->len = len;
}

void *
rpc_call_new_message(rpc_call *call, const ProtobufCMessageDescriptor *desc)
{
	ProtobufCMessage *m = rpc_call_alloc(call, desc->sizeof_message);

	if (m)
		desc->message_init(m);
	return m;
}

int
rpc_fail(rpc_call *call, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	call->code = code;
	call->msg = call_vprintf(call, fmt, ap);
	va_end(ap);
	return code;
}

int
rpc_fail_err(rpc_call *call, int err, const char *fmt, ...)
{
	va_list ap;
	const char *why;

	va_start(ap, fmt);
	why = call_vprintf(call, fmt, ap);
	va_end(ap);
	if (why == NULL || *why == '\0')
		why = NULL;
	call->code = rpc_status_from_err(err);
	if (call->code == RPC_INTERNAL)
		log_warnx("%s: internal error: %s (%s)", call->method,
		    why ? why : "", sf_strerror(err));
	call->msg = why ? why : sf_strerror(err);
	return call->code;
}

const char *
rpc_call_method(const rpc_call *call)
{
	return call->method;
}

const char *
rpc_call_listener(const rpc_call *call)
{
	return call->listener;
}

long
rpc_call_peer_uid(const rpc_call *call)
{
	return call->uid;
}

long
rpc_call_peer_pid(const rpc_call *call)
{
	return call->pid;
}

/* ------------------------------------------------------------------ */
/* UTF-8 validation of string fields: protobuf-c does not do it.       */

int
rpc_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		unsigned c = s[i];
		size_t n;
		unsigned cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else
			return 0;
		if (len - i <= n)
			return 0;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		/* Overlong forms, surrogates and values past U+10FFFF. */
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return 0;
		i += n + 1;
	}
	return 1;
}

static int
msg_utf8_ok(const ProtobufCMessage *m, const char **bad, int depth)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	if (depth > 32)
		return 0;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m + f->offset;
		size_t n = 1;

		if (f->type != PROTOBUF_C_TYPE_STRING &&
		    f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t which = *(const uint32_t *)(const void *)
			    ((const char *)m + f->quantifier_offset);
			if (which != f->id)
				continue;
		}
		if (f->label == PROTOBUF_C_LABEL_REPEATED)
			n = *(const size_t *)(const void *)
			    ((const char *)m + f->quantifier_offset);
		for (size_t k = 0; k < n; k++) {
			const void *p;

			if (f->label == PROTOBUF_C_LABEL_REPEATED)
				p = (*(void *const *const *)(const void *)base)[k];
			else
				p = *(void *const *)(const void *)base;
			if (p == NULL)
				continue;
			if (f->type == PROTOBUF_C_TYPE_STRING) {
				if (!rpc_utf8_valid(p, strlen(p))) {
					*bad = f->name;
					return 0;
				}
			} else if (!msg_utf8_ok(p, bad, depth + 1))
				return 0;
		}
	}
	return 1;
}

int
rpc_message_utf8_ok(const ProtobufCMessage *msg, const char **bad)
{
	const char *dummy;

	*(bad ? bad : &dummy) = NULL;
	return msg_utf8_ok(msg, bad ? bad : &dummy, 0);
}
