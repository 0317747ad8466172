/*
 * rpc.c - the generic gRPC core <-> protobuf-c layer (see rpc.h).
 *
 * Server model: every listener is a grpc_server of its own (a call carries
 * no identity of the port it came in on, and the method table is checked
 * against the listener's id),
 * with one completion queue and one thread per worker. A worker asks for a
 * call, serves it to the end, and asks for the next: simple, and a slow
 * handler holds only its own worker.
 *
 * Unix listeners own their socket: an accept thread hands each connection to
 * gRPC with grpc_server_add_channel_from_fd(), after which gRPC reports the
 * call's peer as "fd:N" and SO_PEERCRED on N gives the peer's uid. gRPC
 * 1.51 exposes no peer credentials otherwise; the "fd:N" format is pinned by
 * tests/unit/common/test_rpc.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "err.h"
#include "log.h"
#include "rpc.h"
#include "util.h"

#define DEFAULT_WORKERS 4
#define DEFAULT_MAX_MESSAGE (1024 * 1024)
#define DEFAULT_CLIENT_MAX_MESSAGE (16 * 1024 * 1024)
#define DEFAULT_MAX_STREAMS 32
#define DEFAULT_RECV_TIMEOUT_MS 10000

/* Distinct addresses used as completion-queue tags. */
static char TAG_NEW, TAG_RECV, TAG_CLOSE, TAG_SEND, TAG_SHUTDOWN, TAG_CLIENT;

const char *
rpc_code_name(int code)
{
	static const char *names[] = {
		"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
		"DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
		"PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
		"FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
		"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
		"UNAUTHENTICATED",
	};

	if (code < 0 || code >= (int)(sizeof names / sizeof names[0]))
		return "UNKNOWN";
	return names[code];
}

int
rpc_status_from_err(int err)
{
	switch (err) {
	case SF_OK: return RPC_OK;
	case SF_EINVAL:
	case SF_ETOOBIG:
	case SF_EKEYTYPE: return RPC_INVALID_ARGUMENT;
	case SF_ENOTFOUND: return RPC_NOT_FOUND;
	case SF_EPERM:
	case SF_ECONFLICT: return RPC_PERMISSION_DENIED;
	case SF_EEXIST: return RPC_ALREADY_EXISTS;
	case SF_ELIMIT: return RPC_RESOURCE_EXHAUSTED;
	case SF_EUNAVAIL: return RPC_UNAVAILABLE;
	case SF_ESTATE: return RPC_FAILED_PRECONDITION;
	case SF_ETIMEOUT: return RPC_DEADLINE_EXCEEDED;
	}
	return RPC_INTERNAL;
}

int
rpc_err_from_status(int code)
{
	switch (code) {
	case RPC_OK: return SF_OK;
	case RPC_INVALID_ARGUMENT: return SF_EINVAL;
	case RPC_NOT_FOUND: return SF_ENOTFOUND;
	case RPC_PERMISSION_DENIED: return SF_EPERM;
	case RPC_ALREADY_EXISTS: return SF_EEXIST;
	case RPC_RESOURCE_EXHAUSTED: return SF_ELIMIT;
	case RPC_FAILED_PRECONDITION: return SF_ESTATE;
	case RPC_UNAVAILABLE:
	case RPC_DEADLINE_EXCEEDED: return SF_EUNAVAIL;
	}
	return SF_EINTERNAL;
}

/* Tools that report each call's status themselves keep gRPC's own error
 * lines out of their users' way (rpc_grpc_log_quiet). */
static int grpc_log_quiet;

void
rpc_grpc_log_quiet(int quiet)
{
	grpc_log_quiet = quiet;
}

static void
grpc_log_cb(gpr_log_func_args *a)
{
	if (a->severity == GPR_LOG_SEVERITY_ERROR && !grpc_log_quiet)
		log_warnx("grpc: %s (%s:%d)", a->message, a->file, a->line);
	else
		log_debug("grpc: %s", a->message);
}

void
rpc_init(void)
{
	gpr_set_log_function(grpc_log_cb);
	gpr_set_log_verbosity(GPR_LOG_SEVERITY_ERROR);
	grpc_init();
}

void
rpc_fini(void)
{
	/* Plain grpc_shutdown returns before cleanup has finished in 1.51. */
	grpc_shutdown_blocking();
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

/* ------------------------------------------------------------------ */
/* Server.                                                              */

struct arena_blk {
	struct arena_blk *next;
	union {
		long double ld;
		void *p;
		long long ll;
	} data[];
};

struct svc_entry {
	const ProtobufCServiceDescriptor *desc;
	rpc_method *methods;
	size_t n;
	void *arg;
};

struct method_entry {
	char *path;
	size_t svc;    /* index into srv->svcs */
	size_t idx;    /* method index, .proto order */
};

struct listener;

struct worker {
	struct listener *l;
	grpc_completion_queue *cq;
	pthread_t thr;
	int started;
};

struct listener {
	rpc_server *srv;
	char *name;
	char *address;
	grpc_server *gs;
	grpc_completion_queue *shutdown_cq;
	struct worker *workers;
	int nworkers;
	unsigned id;
	uid_t *uids;
	size_t nuids;
	int any_uid;
	int is_unix;
	char *unix_path;
	int unix_fd;
	int stop_pipe[2];
	pthread_t accept_thr;
	int accept_started;
	grpc_server_credentials *fd_creds;
	int port;
	size_t max_message;
	int recv_timeout_ms;
	int shut;
	int active;              /* calls being served (atomic) */
};

struct rpc_server {
	struct svc_entry *svcs;
	size_t nsvcs;
	struct method_entry *methods;
	size_t nmethods;
	struct listener **ls;
	size_t nls;
	int started;
};

struct rpc_call {
	struct listener *l;
	grpc_call *call;
	grpc_completion_queue *cq;
	char *method;
	gpr_timespec deadline;
	struct arena_blk *arena;
	int code;
	char *msg;
	int sent_md;
	int close_started, closed, close_cancelled;
	int ended;
	long uid, pid;
	const char *peer_cert;
	int peer_cert_done;
	char *peer_desc;
};

rpc_server *
rpc_server_new(void)
{
	return calloc(1, sizeof(rpc_server));
}

int
rpc_server_add_service(rpc_server *srv, const ProtobufCServiceDescriptor *desc,
    const rpc_method *methods, size_t n, void *arg)
{
	struct svc_entry *svcs;
	struct method_entry *me;
	size_t si;

	if (srv->started || n != desc->n_methods) {
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
	svcs = realloc(srv->svcs, (srv->nsvcs + 1) * sizeof *svcs);
	if (svcs == NULL)
		return SF_ENOMEM;
	srv->svcs = svcs;
	me = realloc(srv->methods, (srv->nmethods + n) * sizeof *me);
	if (me == NULL)
		return SF_ENOMEM;
	srv->methods = me;
	si = srv->nsvcs;
	svcs[si].desc = desc;
	svcs[si].methods = malloc(n * sizeof(rpc_method));
	if (svcs[si].methods == NULL)
		return SF_ENOMEM;
	memcpy(svcs[si].methods, methods, n * sizeof(rpc_method));
	svcs[si].n = n;
	svcs[si].arg = arg;
	for (size_t i = 0; i < n; i++) {
		char *path = sf_aprintf("/%s/%s", desc->name,
		    desc->methods[i].name);
		if (path == NULL)
			return SF_ENOMEM;
		me[srv->nmethods + i].path = path;
		me[srv->nmethods + i].svc = si;
		me[srv->nmethods + i].idx = i;
	}
	srv->nmethods += n;
	srv->nsvcs++;
	return 0;
}

static char *
slurp_text(const char *path)
{
	char *buf = NULL;
	size_t len = 0;

	if (sf_read_file(path, 1 << 20, (uint8_t **)&buf, &len) != 0)
		return NULL;
	return buf;  /* sf_read_file NUL-terminates */
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
	if ((cert = slurp_text(o->tls_cert_file)) == NULL) {
		log_warn("listener %s: cannot read %s", o->name,
		    o->tls_cert_file);
		goto out;
	}
	if ((key = slurp_text(o->tls_key_file)) == NULL) {
		log_warn("listener %s: cannot read %s", o->name,
		    o->tls_key_file);
		goto out;
	}
	if (o->tls_client_ca_file &&
	    (ca = slurp_text(o->tls_client_ca_file)) == NULL) {
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
	if (key) {
		explicit_bzero(key, strlen(key));
		free(key);
	}
	free(cert);
	free(ca);
	return creds;
}

static int
unix_listen(struct listener *l, const rpc_listener_opts *o)
{
	struct sockaddr_un sun;
	struct stat st;
	char *dir = NULL, *slash;
	mode_t mode = o->socket_mode ? o->socket_mode : 0660;
	int fd = -1, rc = SF_EIO;

	if (strlen(l->unix_path) >= sizeof sun.sun_path) {
		log_warnx("listener %s: socket path too long: %s", l->name,
		    l->unix_path);
		return SF_ECONFIG;
	}
	if ((dir = strdup(l->unix_path)) == NULL)
		return SF_ENOMEM;
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if (stat(dir, &st) != 0) {
			/* Parents as mkdir -p makes them; the socket's own
			 * directory with the restrictive mode. */
			for (char *p = dir + 1; (p = strchr(p, '/')) != NULL;
			    p++) {
				*p = '\0';
				if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
					log_warn("listener %s: mkdir %s", l->name,
					    dir);
					goto out;
				}
				*p = '/';
			}
			if (mkdir(dir, o->dir_mode ? o->dir_mode : 0750) != 0) {
				log_warn("listener %s: mkdir %s", l->name, dir);
				goto out;
			}
			if (o->socket_gid != (gid_t)-1 && o->socket_gid != 0 &&
			    chown(dir, (uid_t)-1, o->socket_gid) != 0)
				log_warn("listener %s: chgrp %s", l->name, dir);
		}
	}
	if (lstat(l->unix_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_warnx("listener %s: %s exists and is not a socket",
			    l->name, l->unix_path);
			rc = SF_ECONFIG;
			goto out;
		}
		unlink(l->unix_path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		log_warn("listener %s: socket", l->name);
		goto out;
	}
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, l->unix_path, strlen(l->unix_path) + 1);
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		log_warn("listener %s: bind %s", l->name, l->unix_path);
		goto out;
	}
	if (chmod(l->unix_path, mode) != 0) {
		log_warn("listener %s: chmod %s", l->name, l->unix_path);
		goto out;
	}
	if (o->socket_gid != (gid_t)-1 && o->socket_gid != 0 &&
	    chown(l->unix_path, (uid_t)-1, o->socket_gid) != 0) {
		log_warn("listener %s: chgrp %s", l->name, l->unix_path);
		goto out;
	}
	if (listen(fd, 128) != 0) {
		log_warn("listener %s: listen", l->name);
		goto out;
	}
	if (pipe2(l->stop_pipe, O_CLOEXEC) != 0) {
		log_warn("listener %s: pipe", l->name);
		goto out;
	}
	l->unix_fd = fd;
	fd = -1;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(dir);
	return rc;
}

static void
set_arg(grpc_arg *a, const char *key, int value)
{
	a->type = GRPC_ARG_INTEGER;
	a->key = (char *)key;
	a->value.integer = value;
}

static void listener_free(struct listener *l);

int
rpc_server_listen(rpc_server *srv, const rpc_listener_opts *o)
{
	struct listener *l, **ls;
	grpc_arg args[8];
	grpc_channel_args cargs;
	int nw, rc = SF_ENOMEM;

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
	l->unix_fd = -1;
	l->stop_pipe[0] = l->stop_pipe[1] = -1;
	l->name = strdup(o->name ? o->name : o->address);
	l->address = strdup(o->address);
	if (l->name == NULL || l->address == NULL)
		goto fail;
	l->id = o->id;
	l->any_uid = o->any_uid;
	l->nuids = o->n_allowed_uids ? o->n_allowed_uids : 1;
	if ((l->uids = calloc(l->nuids, sizeof(uid_t))) == NULL)
		goto fail;
	if (o->n_allowed_uids)
		memcpy(l->uids, o->allowed_uids, l->nuids * sizeof(uid_t));
	else
		l->uids[0] = geteuid();
	l->max_message = o->max_message ? o->max_message : DEFAULT_MAX_MESSAGE;
	l->recv_timeout_ms = o->recv_timeout_ms ? o->recv_timeout_ms :
	    DEFAULT_RECV_TIMEOUT_MS;

	set_arg(&args[0], GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
	    (int)l->max_message);
	set_arg(&args[1], GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
	    DEFAULT_CLIENT_MAX_MESSAGE);
	set_arg(&args[2], GRPC_ARG_MAX_CONCURRENT_STREAMS,
	    o->max_concurrent_streams ? o->max_concurrent_streams :
	    DEFAULT_MAX_STREAMS);
	set_arg(&args[3], GRPC_ARG_MAX_CONNECTION_IDLE_MS, 300000);
	set_arg(&args[4], GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, 10000);
	set_arg(&args[5], GRPC_ARG_MAX_METADATA_SIZE, 16384);
	set_arg(&args[6], GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
	set_arg(&args[7], GRPC_ARG_KEEPALIVE_TIME_MS, 120000);
	cargs.num_args = 8;
	cargs.args = args;
	if ((l->gs = grpc_server_create(&cargs, NULL)) == NULL)
		goto fail;

	nw = o->workers > 0 ? o->workers : DEFAULT_WORKERS;
	if ((l->workers = calloc((size_t)nw, sizeof *l->workers)) == NULL)
		goto fail;
	l->nworkers = nw;
	for (int i = 0; i < nw; i++) {
		l->workers[i].l = l;
		l->workers[i].cq = grpc_completion_queue_create_for_next(NULL);
		grpc_server_register_completion_queue(l->gs,
		    l->workers[i].cq, NULL);
	}
	l->shutdown_cq = grpc_completion_queue_create_for_next(NULL);
	grpc_server_register_completion_queue(l->gs, l->shutdown_cq, NULL);

	if (strncmp(o->address, "unix:", 5) == 0) {
		l->is_unix = 1;
		if ((l->unix_path = strdup(o->address + 5)) == NULL)
			goto fail;
		if ((rc = unix_listen(l, o)) != 0)
			goto fail;
		l->fd_creds = grpc_insecure_server_credentials_create();
	} else {
		grpc_server_credentials *creds;

		rc = SF_ECONFIG;
		if (o->insecure_tcp)
			creds = grpc_insecure_server_credentials_create();
		else
			creds = tls_server_creds(o);
		if (creds == NULL)
			goto fail;
		l->port = grpc_server_add_http2_port(l->gs, o->address, creds);
		grpc_server_credentials_release(creds);
		if (l->port == 0) {
			log_warnx("listener %s: cannot listen on %s", l->name,
			    o->address);
			goto fail;
		}
	}
	if ((ls = realloc(srv->ls, (srv->nls + 1) * sizeof *ls)) == NULL) {
		rc = SF_ENOMEM;
		goto fail;
	}
	srv->ls = ls;
	srv->ls[srv->nls++] = l;
	return 0;
fail:
	listener_free(l);
	return rc;
}

int
rpc_server_port(const rpc_server *srv, size_t i)
{
	return i < srv->nls ? srv->ls[i]->port : 0;
}

static void *
arena_alloc(struct arena_blk **arena, size_t size)
{
	struct arena_blk *b;

	if (size > SIZE_MAX - sizeof *b)
		return NULL;
	if ((b = calloc(1, sizeof *b + size)) == NULL)
		return NULL;
	b->next = *arena;
	*arena = b;
	return b->data;
}

static void
arena_free(struct arena_blk *b)
{
	while (b) {
		struct arena_blk *n = b->next;
		free(b);
		b = n;
	}
}

void *
rpc_call_alloc(rpc_call *call, size_t size)
{
	return arena_alloc(&call->arena, size ? size : 1);
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

char *
rpc_call_printf(rpc_call *call, const char *fmt, ...)
{
	va_list ap;
	char *tmp, *p;

	va_start(ap, fmt);
	if (vasprintf(&tmp, fmt, ap) < 0)
		tmp = NULL;
	va_end(ap);
	if (tmp == NULL)
		return NULL;
	p = rpc_call_strdup(call, tmp);
	free(tmp);
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
	char *tmp;

	va_start(ap, fmt);
	if (vasprintf(&tmp, fmt, ap) < 0)
		tmp = NULL;
	va_end(ap);
	call->code = code;
	if (tmp) {
		call->msg = rpc_call_strdup(call, tmp);
		free(tmp);
	}
	return code;
}

int
rpc_fail_err(rpc_call *call, int err, const char *fmt, ...)
{
	int code = rpc_status_from_err(err);
	va_list ap;
	char *tmp;

	va_start(ap, fmt);
	if (vasprintf(&tmp, fmt, ap) < 0)
		tmp = NULL;
	va_end(ap);
	if (code == RPC_INTERNAL)
		log_warnx("%s: internal error: %s (%s)", call->method,
		    tmp && *tmp ? tmp : "", sf_strerror(err));
	call->code = code;
	call->msg = rpc_call_strdup(call, tmp && *tmp ? tmp :
	    sf_strerror(err));
	free(tmp);
	return code;
}

const char *
rpc_call_method(const rpc_call *call)
{
	return call->method;
}

const char *
rpc_call_listener(const rpc_call *call)
{
	return call->l->name;
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

	if (gpr_time_cmp(call->deadline, gpr_inf_future(call->deadline.clock_type)) == 0)
		return INT64_MAX;
	now = gpr_now(call->deadline.clock_type);
	d = gpr_time_sub(call->deadline, now);
	return (int64_t)d.tv_sec * 1000 + d.tv_nsec / 1000000;
}

const char *
rpc_call_peer(rpc_call *call)
{
	char *p;

	if (call->peer_desc)
		return call->peer_desc;
	if (call->uid >= 0)
		call->peer_desc = rpc_call_printf(call, "uid %ld pid %ld",
		    call->uid, call->pid);
	else if ((p = grpc_call_get_peer(call->call)) != NULL) {
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
	if ((ctx = grpc_call_auth_context(call->call)) == NULL)
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

static gpr_timespec
inf_future(void)
{
	return gpr_inf_future(GPR_CLOCK_REALTIME);
}

static int
peer_check(rpc_call *rc)
{
	struct listener *l = rc->l;
	struct ucred cred;
	socklen_t clen = sizeof cred;
	char *peer = grpc_call_get_peer(rc->call);
	char *end;
	long fd = -1;

	if (peer && strncmp(peer, "fd:", 3) == 0) {
		errno = 0;
		fd = strtol(peer + 3, &end, 10);
		if (errno || *end != '\0' || fd < 0 || fd > INT_MAX)
			fd = -1;
	}
	if (fd < 0) {
		/* Fail closed: the peer format this check relies on changed. */
		log_warnx("listener %s: unexpected peer \"%s\"; refusing",
		    l->name, peer ? peer : "(null)");
		gpr_free(peer);
		return 0;
	}
	gpr_free(peer);
	if (getsockopt((int)fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0) {
		log_warn("listener %s: SO_PEERCRED", l->name);
		return 0;
	}
	rc->uid = cred.uid;
	rc->pid = cred.pid;
	if (l->any_uid)
		return 1;
	for (size_t i = 0; i < l->nuids; i++)
		if (l->uids[i] == cred.uid)
			return 1;
	return 0;
}

static const struct method_entry *
find_method(const rpc_server *srv, const char *path)
{
	for (size_t i = 0; i < srv->nmethods; i++)
		if (strcmp(srv->methods[i].path, path) == 0)
			return &srv->methods[i];
	return NULL;
}

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

static grpc_slice
read_buffer(grpc_byte_buffer *bb)
{
	grpc_byte_buffer_reader r;
	grpc_slice s;

	if (!grpc_byte_buffer_reader_init(&r, bb))
		return grpc_empty_slice();
	s = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	return s;
}

int
rpc_call_send(rpc_call *rc, const ProtobufCMessage *msg)
{
	grpc_op ops[2];
	size_t n = 0;
	grpc_byte_buffer *bb;
	const char *bad;
	int ok;

	if (rc->ended)
		return -1;
	if (!rpc_message_utf8_ok(msg, &bad)) {
		log_warnx("%s: reply field %s is not UTF-8", rc->method, bad);
		return -1;
	}
	memset(ops, 0, sizeof ops);
	if (!rc->sent_md) {
		ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
		n++;
	}
	bb = pack_message(msg);
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n].data.send_message.send_message = bb;
	n++;
	if (grpc_call_start_batch(rc->call, ops, n, &TAG_SEND, NULL) !=
	    GRPC_CALL_OK) {
		grpc_byte_buffer_destroy(bb);
		rc->ended = 1;
		return -1;
	}
	rc->sent_md = 1;
	ok = call_wait(rc, &TAG_SEND, inf_future());
	grpc_byte_buffer_destroy(bb);
	if (ok != 1) {
		rc->ended = 1;
		return -1;
	}
	return 0;
}

/* Send the final status (and, for a unary OK, the reply). */
static void
send_final(rpc_call *rc, grpc_byte_buffer *reply)
{
	grpc_op ops[4];
	size_t n = 0;
	grpc_slice details;
	int cancelled = 0;
	const char *msg = rc->msg ? rc->msg :
	    (rc->code == RPC_OK ? "" : rpc_code_name(rc->code));

	if (rc->ended)
		return;
	memset(ops, 0, sizeof ops);
	details = grpc_slice_from_copied_string(msg);
	if (!rc->sent_md) {
		ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
		n++;
	}
	if (reply) {
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
	if (grpc_call_start_batch(rc->call, ops, n, &TAG_SEND, NULL) ==
	    GRPC_CALL_OK)
		call_wait(rc, &TAG_SEND, inf_future());
	grpc_slice_unref(details);
	rc->ended = 1;
}

static void
serve_call(struct listener *l, grpc_completion_queue *cq, grpc_call *call,
    grpc_call_details *det)
{
	rpc_server *srv = l->srv;
	rpc_call rc;
	const struct method_entry *me;
	const struct svc_entry *svc = NULL;
	const ProtobufCMethodDescriptor *md = NULL;
	const rpc_method *m = NULL;
	grpc_byte_buffer *in = NULL, *reply = NULL;
	ProtobufCMessage *req = NULL, *resp = NULL;
	grpc_slice body;
	grpc_op op;
	int w;
	const char *bad;
	gpr_timespec recv_deadline;

	memset(&rc, 0, sizeof rc);
	rc.l = l;
	rc.call = call;
	rc.cq = cq;
	rc.deadline = det->deadline;
	rc.uid = rc.pid = -1;
	rc.method = rpc_call_strndup(&rc,
	    (const char *)GRPC_SLICE_START_PTR(det->method),
	    GRPC_SLICE_LENGTH(det->method));
	if (rc.method == NULL) {
		rc.code = RPC_INTERNAL;
		goto finish;
	}

	if ((me = find_method(srv, rc.method)) == NULL) {
		rpc_fail(&rc, RPC_UNIMPLEMENTED, "unknown method %s",
		    rc.method);
		goto finish;
	}
	svc = &srv->svcs[me->svc];
	md = &svc->desc->methods[me->idx];
	m = &svc->methods[me->idx];
	if (!(m->listeners & l->id)) {
		rpc_fail(&rc, RPC_PERMISSION_DENIED,
		    "%s is not served on the %s listener", rc.method, l->name);
		log_warnx("listener %s: refused %s (not served here)",
		    l->name, rc.method);
		goto finish;
	}
	if (l->is_unix && !peer_check(&rc)) {
		rpc_fail(&rc, RPC_PERMISSION_DENIED,
		    "peer uid %ld is not allowed on the %s socket", rc.uid,
		    l->name);
		log_warnx("listener %s: refused %s from uid %ld pid %ld",
		    l->name, rc.method, rc.uid, rc.pid);
		goto finish;
	}
	if (m->fn == NULL) {
		rpc_fail(&rc, RPC_UNIMPLEMENTED, "%s is not implemented",
		    rc.method);
		goto finish;
	}

	/* The request body. */
	memset(&op, 0, sizeof op);
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &in;
	if (grpc_call_start_batch(call, &op, 1, &TAG_RECV, NULL) !=
	    GRPC_CALL_OK) {
		rc.code = RPC_INTERNAL;
		goto finish;
	}
	recv_deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
	    gpr_time_from_millis(l->recv_timeout_ms, GPR_TIMESPAN));
	if ((w = call_wait(&rc, &TAG_RECV, recv_deadline)) != 1) {
		if (w < 0) {
			/* The client never sent its message: give up on it. */
			grpc_call_cancel(call, NULL);
			call_wait(&rc, &TAG_RECV, inf_future());
		}
		rc.ended = 1;
		goto finish;
	}
	if (in == NULL) {
		rpc_fail(&rc, RPC_INVALID_ARGUMENT, "no request message");
		goto finish;
	}
	memset(&op, 0, sizeof op);
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = &rc.close_cancelled;
	if (grpc_call_start_batch(call, &op, 1, &TAG_CLOSE, NULL) ==
	    GRPC_CALL_OK)
		rc.close_started = 1;

	body = read_buffer(in);
	req = protobuf_c_message_unpack(md->input, NULL,
	    GRPC_SLICE_LENGTH(body), GRPC_SLICE_START_PTR(body));
	grpc_slice_unref(body);
	if (req == NULL) {
		rpc_fail(&rc, RPC_INVALID_ARGUMENT,
		    "request body is not a valid %s message", md->input->name);
		goto finish;
	}
	if (!rpc_message_utf8_ok(req, &bad)) {
		rpc_fail(&rc, RPC_INVALID_ARGUMENT,
		    "field %s is not valid UTF-8", bad);
		goto finish;
	}

	if (m->kind == RPC_UNARY) {
		resp = rpc_call_new_message(&rc, md->output);
		if (resp == NULL) {
			rc.code = RPC_INTERNAL;
			goto finish;
		}
	}
	rc.code = m->fn(&rc, req, resp, svc->arg);
	if (rc.code < 0 || rc.code > RPC_UNAUTHENTICATED) {
		log_warnx("%s: handler returned %d", rc.method, rc.code);
		rc.code = RPC_INTERNAL;
	}
	if (rc.code == RPC_OK && resp) {
		if (!rpc_message_utf8_ok(resp, &bad)) {
			log_warnx("%s: reply field %s is not UTF-8", rc.method,
			    bad);
			rpc_fail(&rc, RPC_INTERNAL,
			    "reply field %s is not valid UTF-8", bad);
		} else
			reply = pack_message(resp);
	}
finish:
	send_final(&rc, reply);
	if (rc.close_started && !rc.closed)
		call_wait(&rc, &TAG_CLOSE, inf_future());
	if (reply)
		grpc_byte_buffer_destroy(reply);
	if (in)
		grpc_byte_buffer_destroy(in);
	if (req)
		protobuf_c_message_free_unpacked(req, NULL);
	arena_free(rc.arena);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct listener *l = w->l;

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
				    inf_future(), NULL);
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

static void *
accept_main(void *arg)
{
	struct listener *l = arg;

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = l->unix_fd, .events = POLLIN },
			{ .fd = l->stop_pipe[0], .events = POLLIN },
		};
		int fd;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_warn("listener %s: poll", l->name);
			break;
		}
		if (pfd[1].revents)
			break;
		if (!(pfd[0].revents & POLLIN))
			continue;
		fd = accept4(l->unix_fd, NULL, NULL,
		    SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				log_warn("listener %s: accept", l->name);
				usleep(100000);
			}
			continue;
		}
		/* gRPC owns fd from here and closes it with the channel. */
		grpc_server_add_channel_from_fd(l->gs, fd, l->fd_creds);
	}
	return NULL;
}

int
rpc_server_start(rpc_server *srv)
{
	if (srv->started)
		return SF_EINVAL;
	for (size_t i = 0; i < srv->nls; i++) {
		struct listener *l = srv->ls[i];

		grpc_server_start(l->gs);
		for (int k = 0; k < l->nworkers; k++) {
			if (pthread_create(&l->workers[k].thr, NULL,
			    worker_main, &l->workers[k]) != 0) {
				log_warn("listener %s: pthread_create", l->name);
				return SF_EINTERNAL;
			}
			l->workers[k].started = 1;
		}
		if (l->is_unix) {
			if (pthread_create(&l->accept_thr, NULL, accept_main,
			    l) != 0) {
				log_warn("listener %s: pthread_create", l->name);
				return SF_EINTERNAL;
			}
			l->accept_started = 1;
		}
	}
	srv->started = 1;
	return 0;
}

static void
drain_cq(grpc_completion_queue *cq)
{
	grpc_event ev;

	grpc_completion_queue_shutdown(cq);
	do
		ev = grpc_completion_queue_next(cq, inf_future(), NULL);
	while (ev.type != GRPC_QUEUE_SHUTDOWN);
	grpc_completion_queue_destroy(cq);
}

static void
listener_shutdown(struct listener *l, int grace_ms)
{
	grpc_event ev;

	if (l->shut)
		return;
	l->shut = 1;
	if (l->accept_started) {
		(void)!write(l->stop_pipe[1], "x", 1);
		pthread_join(l->accept_thr, NULL);
		l->accept_started = 0;
	}
	if (l->gs == NULL)
		return;
	grpc_server_shutdown_and_notify(l->gs, l->shutdown_cq, &TAG_SHUTDOWN);
	/*
	 * Idle client connections keep gRPC from reporting the shutdown done:
	 * wait for calls in flight (up to the grace period), not for idle
	 * peers, then cancel what is left.
	 */
	{
		int64_t end = sf_mono_ms() + grace_ms;

		do {
			ev = grpc_completion_queue_next(l->shutdown_cq,
			    gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
			    gpr_time_from_millis(20, GPR_TIMESPAN)), NULL);
		} while (ev.type == GRPC_QUEUE_TIMEOUT &&
		    __atomic_load_n(&l->active, __ATOMIC_SEQ_CST) > 0 &&
		    sf_mono_ms() < end);
	}
	if (ev.type == GRPC_QUEUE_TIMEOUT) {
		grpc_server_cancel_all_calls(l->gs);
		ev = grpc_completion_queue_next(l->shutdown_cq, inf_future(),
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
listener_free(struct listener *l)
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
			grpc_completion_queue_next(l->shutdown_cq, inf_future(),
			    NULL);
			l->shut = 1;
		}
	}
	if (l->gs)
		grpc_server_destroy(l->gs);
	for (int k = 0; k < l->nworkers; k++)
		if (l->workers[k].cq)
			drain_cq(l->workers[k].cq);
	if (l->shutdown_cq)
		drain_cq(l->shutdown_cq);
	if (l->fd_creds)
		grpc_server_credentials_release(l->fd_creds);
	if (l->unix_fd >= 0) {
		close(l->unix_fd);
		if (l->unix_path)
			unlink(l->unix_path);
	}
	if (l->stop_pipe[0] >= 0)
		close(l->stop_pipe[0]);
	if (l->stop_pipe[1] >= 0)
		close(l->stop_pipe[1]);
	free(l->workers);
	free(l->uids);
	free(l->unix_path);
	free(l->name);
	free(l->address);
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
	for (size_t i = 0; i < srv->nsvcs; i++)
		free(srv->svcs[i].methods);
	free(srv->svcs);
	for (size_t i = 0; i < srv->nmethods; i++)
		free(srv->methods[i].path);
	free(srv->methods);
	free(srv);
}

/* ------------------------------------------------------------------ */
/* Client.                                                              */

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
	    DEFAULT_CLIENT_MAX_MESSAGE);
	int rc = SF_ENOMEM;

	*out = NULL;
	if (target == NULL || *target == '\0')
		return SF_EINVAL;
	if ((c = calloc(1, sizeof *c)) == NULL ||
	    (c->target = strdup(target)) == NULL)
		goto out;
	set_arg(&args[nargs++], GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, maxmsg);
	set_arg(&args[nargs++], GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, maxmsg);
	/*
	 * A restarted peer (the signer, behind authz) is found again within
	 * two seconds, not after gRPC's default back-off of up to two minutes.
	 */
	set_arg(&args[nargs++], GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
	/* Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC also takes it as the
	 * connect timeout, and a loaded machine needs more than 100 ms. */
	set_arg(&args[nargs++], GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
	if (strncmp(target, "unix:", 5) == 0 || (o && o->insecure_tcp)) {
		creds = grpc_insecure_credentials_create();
	} else {
		grpc_ssl_pem_key_cert_pair pair;

		rc = SF_EIO;
		if (o && o->tls_ca_file &&
		    (ca = slurp_text(o->tls_ca_file)) == NULL) {
			log_warn("cannot read CA file %s", o->tls_ca_file);
			goto out;
		}
		if (o && o->tls_cert_file) {
			if ((cert = slurp_text(o->tls_cert_file)) == NULL ||
			    o->tls_key_file == NULL ||
			    (key = slurp_text(o->tls_key_file)) == NULL) {
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
	if (key) {
		explicit_bzero(key, strlen(key));
		free(key);
	}
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
	if (timeout_ms <= 0)
		return inf_future();
	return gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
	    gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
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
	grpc_event ev = grpc_completion_queue_next(cq, inf_future(), NULL);

	return ev.type == GRPC_OP_COMPLETE && ev.success;
}

static grpc_call *
client_new_call(rpc_client *c, grpc_completion_queue *cq, const char *path,
    int timeout_ms)
{
	grpc_slice method = grpc_slice_from_copied_string(path);
	grpc_call *call;

	call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS,
	    cq, method, NULL, client_deadline(timeout_ms), NULL);
	grpc_slice_unref(method);
	return call;
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
	cq = grpc_completion_queue_create_for_next(NULL);
	if ((call = client_new_call(c, cq, path, timeout_ms)) == NULL) {
		drain_cq(cq);
		status_set(st, RPC_INTERNAL, NULL, "cannot create call");
		return RPC_INTERNAL;
	}
	grpc_metadata_array_init(&md);
	grpc_metadata_array_init(&trail);
	memset(ops, 0, sizeof ops);
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &trail;
	ops[5].data.recv_status_on_client.status = &code;
	ops[5].data.recv_status_on_client.status_details = &details;
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
	drain_cq(cq);
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
		grpc_slice r = read_buffer(recv);
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
		r = read_buffer(recv);
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
	cq = grpc_completion_queue_create_for_next(NULL);
	call = client_new_call(c, cq, path, timeout_ms);
	free(path);
	if (call == NULL) {
		drain_cq(cq);
		status_set(st, RPC_INTERNAL, NULL, "cannot create call");
		return RPC_INTERNAL;
	}
	grpc_metadata_array_init(&md_in);
	grpc_metadata_array_init(&trail);
	send = pack_message(req);
	memset(ops, 0, sizeof ops);
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &md_in;
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
		r = read_buffer(recv);
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
	memset(ops, 0, sizeof ops);
	ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[0].data.recv_status_on_client.trailing_metadata = &trail;
	ops[0].data.recv_status_on_client.status = &code;
	ops[0].data.recv_status_on_client.status_details = &details;
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
	drain_cq(cq);
	return rc;
}
