/*
 * rpc.h - gRPC (C core) <-> protobuf-c, server and client side.
 *
 * A service is a protobuf-c service descriptor plus a table of handlers,
 * one per method in .proto order. The layer registers every
 * /<package>.<Service>/<Method>, unpacks the request, validates it (wire
 * format, UTF-8 in every string field), calls the handler, packs the reply
 * or sends the status the handler chose.
 *
 * Who may call what (OpenSSH monitor.c's mon_table): each listener has an
 * id, one bit (rpc_listener_opts.id), and each row of a method table names
 * the listeners that may call it (rpc_method.listeners), so that the tables
 * alone answer "what does this socket accept?". The process defines its
 * bits next to its listeners (signer.h, authz.h). On every call, in this
 * order: an unknown method answers UNIMPLEMENTED; a known method whose row
 * does not name the call's listener PERMISSION_DENIED ("... is not served
 * on the <name> listener"); on a Unix socket, a peer uid the socket does not
 * admit PERMISSION_DENIED ("peer uid N is not allowed on the <name>
 * socket"); a row without a handler UNIMPLEMENTED. Unix-socket listeners
 * accept connections themselves and check the peer's uid (SO_PEERCRED) on
 * every call; TCP listeners use TLS.
 *
 * The files: rpc.c (process set-up, status codes), rpc_call.c (a call's
 * memory, status and UTF-8 checks), rpc_dispatch.c (the method table and
 * the dispatch, without transport), rpc_server.c (listeners), rpc_intake.c
 * (a call's way from its headers to a worker and back to the wire),
 * rpc_conn.c (a TCP listener's connections, closing abusive ones),
 * rpc_unix.c (Unix sockets and the peer-uid check), rpc_client.c. They are the only files in the project that include gRPC
 * headers.
 */
#ifndef SF_RPC_H
#define SF_RPC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <protobuf-c/protobuf-c.h>

/* gRPC status codes, numbered as gRPC numbers them. */
/* The largest message a listener sends or a client receives: 16 MiB.
 * A handler whose reply could pass it refuses with a status that says so
 * (gRPC would otherwise fail the call with "Sent message larger than
 * max"). */
#define RPC_REPLY_MAX (16u * 1024 * 1024)

enum {
	RPC_OK = 0,
	RPC_CANCELLED = 1,
	RPC_UNKNOWN = 2,
	RPC_INVALID_ARGUMENT = 3,
	RPC_DEADLINE_EXCEEDED = 4,
	RPC_NOT_FOUND = 5,
	RPC_ALREADY_EXISTS = 6,
	RPC_PERMISSION_DENIED = 7,
	RPC_RESOURCE_EXHAUSTED = 8,
	RPC_FAILED_PRECONDITION = 9,
	RPC_ABORTED = 10,
	RPC_OUT_OF_RANGE = 11,
	RPC_UNIMPLEMENTED = 12,
	RPC_INTERNAL = 13,
	RPC_UNAVAILABLE = 14,
	RPC_DATA_LOSS = 15,
	RPC_UNAUTHENTICATED = 16,
};

/* "INVALID_ARGUMENT" etc.; never NULL. */
const char *rpc_code_name(int code);
/* The status an SF_E* error maps to (SF_OK -> RPC_OK); the one mapping in
 * the project (DESIGN.md's status table). */
int rpc_status_from_err(int err);
/* The SF_E* error a status received from a peer maps back to, so that a
 * peer's status passes through our own code unchanged (RPC_OK -> SF_OK).
 * DEADLINE_EXCEEDED maps to SF_EUNAVAIL: the peer was too slow, try later. */
int rpc_err_from_status(int code);

/* Process-wide set-up: grpc_init and routing gRPC's own logging into log.h.
 * Block SIGINT/SIGTERM/SIGHUP/SIGPIPE in the main thread before this (gRPC
 * starts threads). rpc_fini() waits for gRPC's cleanup to finish. */
void rpc_init(void);
void rpc_fini(void);
/* 1: gRPC's own error messages go to log_debug instead of log_warnx, for
 * tools (the CLI) that report every call's status themselves. */
void rpc_grpc_log_quiet(int quiet);

/* A call's status as a client reads it. */
typedef struct {
	int code;
	char message[512];
} rpc_status;

/* ---- server side ---- */

typedef struct rpc_call rpc_call;
typedef struct rpc_server rpc_server;

typedef enum { RPC_UNARY = 0, RPC_SERVER_STREAM = 1 } rpc_kind;

/*
 * A handler. `req` is the validated request (owned by the layer).
 * Unary: `resp` is an initialised, empty reply message (owned by the layer);
 * the handler fills it, taking memory for its fields from rpc_call_alloc()
 * and friends (released after the reply is sent), or pointing at static data.
 * Server-stream: `resp` is NULL; the handler calls rpc_call_send() per message.
 * Returns RPC_OK or a status code; rpc_fail() sets the message that goes
 * with it.
 */
typedef int (*rpc_handler)(rpc_call *call, const ProtobufCMessage *req,
    ProtobufCMessage *resp, void *arg);

/*
 * One row of a service's method table, e.g.
 *	{ "Issue", RPC_UNARY, h_issue, SIGNER_ISSUANCE },
 * `listeners` is the set of listener ids (rpc_listener_opts.id, OR-ed)
 * that may call the method; a call from any other listener answers
 * PERMISSION_DENIED before the handler or even the request body is looked
 * at. A row without a handler still names its listeners: elsewhere it
 * answers PERMISSION_DENIED, there UNIMPLEMENTED.
 */
typedef struct {
	const char *method;   /* must equal the descriptor's method name */
	rpc_kind kind;
	rpc_handler fn;       /* NULL: UNIMPLEMENTED */
	unsigned listeners;   /* ids of the listeners that may call it */
} rpc_method;

typedef struct {
	const char *name;           /* for logs: "issuance", "admin", ... */
	const char *address;        /* "unix:/path" or "host:port" (TLS) */
	unsigned id;                /* one bit; the rows naming it are served
	                             * here. Listeners may share a bit: they
	                             * then accept the same methods. */
	/* Unix sockets. */
	const uid_t *allowed_uids;  /* default: this process's euid only */
	size_t n_allowed_uids;
	int any_uid;                /* 1: no uid check (never for the signer) */
	mode_t socket_mode;         /* default 0660 */
	mode_t dir_mode;            /* if the directory is created; default 0750 */
	gid_t socket_gid;           /* (gid_t)-1: leave as is */
	/* TCP. */
	const char *tls_cert_file;  /* PEM chain, server certificate first */
	const char *tls_key_file;
	const char *tls_client_ca_file; /* trust anchors for client certificates */
	int require_client_cert;    /* 0: optional (verified when presented) */
	/*
	 * More trust anchors for client certificates, that may change while
	 * the listener runs (authz: the registered manufacturer CAs); only
	 * with tls_client_ca_file (without, no client certificate is asked
	 * for, and these are not either). At each
	 * new TLS connection gRPC asks; client_ca_generation(arg) is cheap
	 * and called every time, and when it differs from the last one,
	 * client_ca_extra(arg) gives the PEM to trust besides
	 * tls_client_ca_file (malloc'd; NULL: none), and the connection and
	 * the later ones verify against both. NULL: tls_client_ca_file only.
	 */
	uint64_t (*client_ca_generation)(void *arg);
	char *(*client_ca_extra)(void *arg);
	void *client_ca_arg;
	int insecure_tcp;           /* tests only: TCP without TLS */
	/* Limits; 0 = default. */
	int workers;                /* calls served at once; default 4 */
	size_t max_message;         /* default 1 MiB */
	int max_concurrent_streams; /* per connection; default 32 */
	/*
	 * A call costs no worker until its request message is complete
	 * (rpc_intake.c). Until then, and while it waits for a worker, it is
	 * pending. A message that has not arrived recv_timeout_ms after the
	 * headers is given up on (CANCELLED). Past max_pending calls pending
	 * on the listener, or peer_max_pending from one peer (an IPv4
	 * address, an IPv6 /64, a Unix uid), a new call is answered
	 * RESOURCE_EXHAUSTED without its message being read. On TCP, a
	 * connection with 64 calls in 10 s that ended without their message
	 * or were refused over the peer's budget (a rapid-reset flood) is
	 * closed, and its address refused for 30 s (rpc_conn.c).
	 */
	int recv_timeout_ms;        /* default 5 s */
	int max_pending;            /* default 1024 */
	int peer_max_pending;       /* default 64 */
} rpc_listener_opts;

rpc_server *rpc_server_new(void);
/* Register a service; `methods` has one entry per method, in .proto order.
 * `arg` is passed to every handler. The rows are copied. SF_EINVAL (and a
 * log line) if the table does not match the descriptor, or a row with a
 * handler names no listener. */
int rpc_server_add_service(rpc_server *srv,
    const ProtobufCServiceDescriptor *desc, const rpc_method *methods,
    size_t n_methods, void *arg);
/* Add a listener. Opens (and for Unix, binds) it now; serves after start.
 * SF_EINVAL if opts->id is not exactly one bit. */
int rpc_server_listen(rpc_server *srv, const rpc_listener_opts *opts);
/* The TCP port the i-th listener is bound to (useful with port 0). */
int rpc_server_port(const rpc_server *srv, size_t i);
int rpc_server_start(rpc_server *srv);
/* Stop accepting, give running calls grace_ms, then cancel them. */
void rpc_server_shutdown(rpc_server *srv, int grace_ms);
void rpc_server_free(rpc_server *srv);

/*
 * The dispatch without the transport, for fuzzers and tests (p11-kit's
 * fuzz/rpc_fuzzer.c): serve one request `body` for method `path`
 * ("/secretfree.v1.Signer/Issue") as if it had come in on a listener with
 * id `listener`, through the same code a gRPC call takes once its body has
 * been read: find the method, check that the listener may call it, unpack
 * the body, check every string for UTF-8, call the handler, check and pack
 * its reply. The server needs services, but neither listeners nor
 * rpc_init(): the call's listener name (rpc_call_listener) is that of the
 * first listener added with this id, else "raw". What it skips is the
 * peer: no uid check, rpc_call_peer_uid() -1, rpc_call_peer_cert() NULL,
 * no deadline, never cancelled; a server-stream handler's messages are
 * checked and packed as on the wire, then dropped.
 * Returns the status, also in st (may be NULL) with its message as the
 * client would read it. On RPC_OK of a unary method *reply is the packed
 * reply (malloc'd, the caller frees it); otherwise NULL.
 */
int rpc_dispatch_raw(rpc_server *srv, unsigned listener, const char *path,
    const void *body, size_t len, uint8_t **reply, size_t *reply_len,
    rpc_status *st);

/* Per-call helpers, valid until the handler returns. */
int rpc_fail(rpc_call *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * Fail the call with the status an SF_E* error maps to (rpc_status_from_err)
 * and the message fmt makes; an empty message becomes sf_strerror(err).
 * Errors that map to INTERNAL are logged with the method and the cause,
 * since the caller sees only "internal error". Every handler reports a
 * module's error through this one function. Returns the status.
 */
int rpc_fail_err(rpc_call *call, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void *rpc_call_alloc(rpc_call *call, size_t size);       /* zeroed */
char *rpc_call_strdup(rpc_call *call, const char *s);
char *rpc_call_strndup(rpc_call *call, const char *s, size_t n);
char *rpc_call_printf(rpc_call *call, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Copy bytes into the call's memory and point `out` at them. */
void rpc_call_set_bytes(rpc_call *call, ProtobufCBinaryData *out,
    const void *data, size_t len);
/* Allocate a zeroed, initialised message of type `desc`. */
void *rpc_call_new_message(rpc_call *call,
    const ProtobufCMessageDescriptor *desc);
/* Streaming: send one message; returns 0, or -1 if the call has ended. */
int rpc_call_send(rpc_call *call, const ProtobufCMessage *msg);
const char *rpc_call_method(const rpc_call *call);   /* "/pkg.Svc/Method" */
const char *rpc_call_listener(const rpc_call *call); /* listener name */
/* Unix listeners: the peer's credentials; -1 otherwise. */
long rpc_call_peer_uid(const rpc_call *call);
long rpc_call_peer_pid(const rpc_call *call);
/* TLS listeners: the verified client certificate in PEM, or NULL. */
const char *rpc_call_peer_cert(rpc_call *call);
/* A printable peer description for logs ("uid 1000 pid 42", "ipv4:..."). */
const char *rpc_call_peer(rpc_call *call);
/* Milliseconds until the client's deadline (INT64_MAX when none). */
int64_t rpc_call_ms_left(const rpc_call *call);
/* 1 once the client has cancelled or the deadline passed. */
int rpc_call_cancelled(rpc_call *call);

/* ---- client side ---- */

typedef struct rpc_client rpc_client;

typedef struct {
	const char *tls_ca_file;     /* TCP targets: trust anchors (PEM file) */
	const char *tls_cert_file;   /* optional client certificate (PEM) */
	const char *tls_key_file;
	const char *server_name;     /* TLS name to check, if not the host */
	int insecure_tcp;            /* tests only */
	size_t max_message;          /* default RPC_REPLY_MAX */
} rpc_client_opts;

/* target: "unix:/path" or "host:port". opts may be NULL for Unix targets. */
int rpc_client_open(const char *target, const rpc_client_opts *opts,
    rpc_client **out);
void rpc_client_close(rpc_client *c);

/*
 * A unary call. On RPC_OK *resp is the unpacked reply (free it with
 * protobuf_c_message_free_unpacked(*resp, NULL)). Returns the status code,
 * also written to st (which may be NULL). timeout_ms <= 0: no deadline.
 */
int rpc_client_call(rpc_client *c, const ProtobufCServiceDescriptor *svc,
    const char *method, const ProtobufCMessage *req, ProtobufCMessage **resp,
    int timeout_ms, rpc_status *st);
/* Raw bytes in and out, for tests of the wire itself. *out is malloc'd. */
int rpc_client_call_raw(rpc_client *c, const char *path, const void *body,
    size_t len, uint8_t **out, size_t *out_len, int timeout_ms,
    rpc_status *st);
/* Server-streaming call: cb gets each message (owned by the layer; return
 * non-zero from cb to stop early, which cancels the call). */
typedef int (*rpc_stream_cb)(const ProtobufCMessage *msg, void *arg);
int rpc_client_stream(rpc_client *c, const ProtobufCServiceDescriptor *svc,
    const char *method, const ProtobufCMessage *req, rpc_stream_cb cb,
    void *arg, int timeout_ms, rpc_status *st);

/* 1 if every string field of msg (recursively) is valid UTF-8; else 0 and
 * *bad names the first offending field. */
int rpc_message_utf8_ok(const ProtobufCMessage *msg, const char **bad);
int rpc_utf8_valid(const char *s, size_t len);

#endif
