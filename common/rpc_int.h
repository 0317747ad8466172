/*
 * rpc_int.h - what the rpc*.c files share and nobody else sees: the server's
 * method table, a call's state, the two dispatch steps the gRPC server and
 * rpc_dispatch_raw() both run, the Unix-socket listener, and a few gRPC
 * helpers the server and the client both use.
 */
#ifndef SF_RPC_INT_H
#define SF_RPC_INT_H

#include <stdint.h>
#include <sys/socket.h>

#include <grpc/grpc.h>

#include "rpc.h"

#define RPC_DEFAULT_WORKERS 4
#define RPC_DEFAULT_MAX_MESSAGE (1024 * 1024)
#define RPC_DEFAULT_CLIENT_MAX_MESSAGE ((int)RPC_REPLY_MAX)
#define RPC_DEFAULT_MAX_STREAMS 32
#define RPC_DEFAULT_RECV_TIMEOUT_MS 5000
#define RPC_DEFAULT_MAX_PENDING 1024
#define RPC_DEFAULT_PEER_MAX_PENDING 64
#define RPC_PEER_KEY_LEN 64
#define RPC_TCP_READ_CHUNK (64 * 1024)

/* A registered service: its descriptor, a copy of its method table. */
struct rpc_svc {
	const ProtobufCServiceDescriptor *desc;
	rpc_method *methods;
	size_t n;
	void *arg;
};

/* One method, by its path "/pkg.Svc/Method". */
struct rpc_path {
	char *path;
	size_t svc;    /* index into srv->svcs */
	size_t idx;    /* method index, .proto order */
};

struct rpc_intake;     /* rpc_intake.c */
struct rpc_icall;      /* rpc_intake.c: a call on the wire */
struct rpc_conns;      /* rpc_conn.c */
struct rpc_unix;       /* rpc_unix.c */

/* A listener: a grpc_server of its own (rpc_server.c). */
struct rpc_listener {
	rpc_server *srv;
	char *name;
	unsigned id;
	grpc_server *gs;
	grpc_completion_queue *shutdown_cq;
	struct rpc_intake *in;
	struct rpc_conns *conns; /* TCP listeners */
	struct rpc_unix *ux;     /* Unix listeners */
	int port;                /* TCP listeners */
	struct rpc_tls_fetch *tls;  /* TLS with client CAs fetched at handshake */
	size_t max_message;
	int started;             /* grpc_server_start done */
	int shut;
};

struct rpc_server {
	struct rpc_svc *svcs;
	size_t nsvcs;
	struct rpc_path *paths;
	size_t npaths;
	struct rpc_listener **ls;
	size_t nls;
	int started;
};

/* A block of a call's memory (rpc_call_alloc). */
struct rpc_arena {
	struct rpc_arena *next;
	union {
		long double ld;
		void *p;
		long long ll;
	} data[];
};

struct rpc_call {
	/* Set by whoever runs the call (rpc_server.c, rpc_dispatch_raw). */
	rpc_server *srv;
	const char *listener;        /* its name */
	unsigned listener_id;
	const struct rpc_unix *ux;   /* Unix listener: checks the peer */
	char *method;                /* "/pkg.Svc/Method", in the arena */
	/* The outcome. */
	int code;
	const char *msg;
	uint8_t *reply;              /* packed unary reply, malloc'd */
	size_t reply_len;
	/* Memory for the handler's reply, freed when the call ends. */
	struct rpc_arena *arena;
	/* The peer, as far as known. */
	long uid, pid;
	const char *peer_cert;
	int peer_cert_done;
	const char *peer_desc;
	/* The gRPC side; gcall and wire are NULL under rpc_dispatch_raw. */
	grpc_call *gcall;
	struct rpc_icall *wire;
	gpr_timespec deadline;
	int sent_md;
	int ended;                   /* nothing more can be sent */
};

/* rpc_call.c */
/* Set up a call of srv on a listener (name, id) with no transport yet. */
void rpc_call_init(rpc_call *call, rpc_server *srv, const char *listener,
    unsigned listener_id);
/* Release the call's memory and reply. */
void rpc_call_fini(rpc_call *call);
/* The status message a client reads: the handler's, else the code's name
 * ("" for OK). */
const char *rpc_call_status_message(const rpc_call *call);

/* rpc_dispatch.c */
/* Step 1: find call->method and decide whether the caller may call it
 * (listener id, then the Unix peer's uid, then is there a handler).
 * Returns the method, or NULL with the call's status set. */
const struct rpc_path *rpc_dispatch_find(rpc_call *call);
/* Step 2, once the body has been read: unpack and check it, call the
 * handler, check and pack its reply into call->reply. The status is in
 * call->code (and call->msg). */
void rpc_dispatch_body(rpc_call *call, const struct rpc_path *p,
    const uint8_t *body, size_t len);
void rpc_dispatch_free(rpc_server *srv);

/* rpc_server.c */
/* The name of the first listener with this id, else "raw". */
const char *rpc_server_listener_name(const rpc_server *srv, unsigned id);

/* rpc_intake.c (see there): a listener's calls, from their headers to
 * their end. */
/* Register the intake's completion queue with l->gs (before
 * grpc_server_start); o gives the workers and the limits. l is borrowed
 * for the intake's life. */
int rpc_intake_new(struct rpc_listener *l, const rpc_listener_opts *o,
    struct rpc_intake **out);
/* Start the intake thread and the workers (after grpc_server_start). */
int rpc_intake_start(struct rpc_intake *in);
/* Ask for no more calls: before grpc_server_shutdown_and_notify. */
void rpc_intake_shutdown(struct rpc_intake *in);
/* Calls taken from gRPC and not yet ended. */
int rpc_intake_busy(struct rpc_intake *in);
/* Once gRPC is shutting down: wait for every call to end, then join the
 * threads. */
void rpc_intake_join(struct rpc_intake *in);
/* After grpc_server_destroy: drain the queue and free. NULL ok. */
void rpc_intake_free(struct rpc_intake *in);
/* Send one packed stream message on the call; takes buf. 0 or -1. */
int rpc_intake_send(rpc_call *call, uint8_t *buf, size_t len);

/* rpc_conn.c (see there): a TCP listener's connections. */
/* The table, holding one reference to itself; rpc_conn_free drops it. */
int rpc_conn_new(const char *name, struct rpc_conns **out);
/* The channel argument that makes gRPC report accepted connections. */
void rpc_conn_arg(struct rpc_conns *cs, grpc_arg *a);
/* A strike against the connection from peer (address and port): past the
 * limit it is closed and its address refused for a while. NULL cs ok. */
void rpc_conn_strike(struct rpc_conns *cs, const struct sockaddr_storage *peer);
/* After grpc_server_destroy. NULL ok. */
void rpc_conn_free(struct rpc_conns *cs);
/* A gRPC TCP peer ("ipv4:A:P", "ipv6:[A]:P") as an address: 0 or -1. */
int rpc_conn_peer_parse(const char *peer, struct sockaddr_storage *ss);
/* The address a budget or a ban applies to: "ipv4:A" or "ipv6:P::/64". */
void rpc_conn_addr_key(const struct sockaddr_storage *ss, char *key,
    size_t keylen);

/* rpc_unix.c (see there) */
int rpc_unix_open(const rpc_listener_opts *o, const char *name,
    grpc_server *gs, struct rpc_unix **out);
int rpc_unix_start(struct rpc_unix *u);
void rpc_unix_stop(struct rpc_unix *u);
void rpc_unix_close(struct rpc_unix *u);
int rpc_unix_peer_check(const struct rpc_unix *u, rpc_call *call);

/* rpc.c: gRPC helpers of both sides. */
void rpc_arg_int(grpc_arg *a, const char *key, int value);
char *rpc_read_text(const char *path);          /* malloc'd, or NULL */
void rpc_free_secret(char *s);                  /* wipe, free; NULL ok */
gpr_timespec rpc_forever(void);
gpr_timespec rpc_after_ms(int ms);
grpc_slice rpc_buffer_slice(grpc_byte_buffer *bb);
void rpc_cq_drain(grpc_completion_queue *cq);    /* shut down and destroy */

#endif
