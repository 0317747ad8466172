/*
 * rpc_int.h - what the rpc*.c files share and nobody else sees: the server's
 * method table, a call's state, the two dispatch steps the gRPC server and
 * rpc_dispatch_raw() both run, the Unix-socket listener, and a few gRPC
 * helpers the server and the client both use.
 */
#ifndef SF_RPC_INT_H
#define SF_RPC_INT_H

#include <stdint.h>

#include <grpc/grpc.h>

#include "rpc.h"

#define RPC_DEFAULT_WORKERS 4
#define RPC_DEFAULT_MAX_MESSAGE (1024 * 1024)
#define RPC_DEFAULT_CLIENT_MAX_MESSAGE (16 * 1024 * 1024)
#define RPC_DEFAULT_MAX_STREAMS 32
#define RPC_DEFAULT_RECV_TIMEOUT_MS 10000

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

struct rpc_listener;   /* rpc_server.c */
struct rpc_unix;       /* rpc_unix.c */

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
	/* The gRPC side; gcall is NULL under rpc_dispatch_raw. */
	grpc_call *gcall;
	grpc_completion_queue *cq;
	gpr_timespec deadline;
	int sent_md;
	int close_started, closed, close_cancelled;
	int ended;
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
/* Send one packed stream message on the call; takes buf. 0 or -1. */
int rpc_server_send(rpc_call *call, uint8_t *buf, size_t len);
/* The name of the first listener with this id, else "raw". */
const char *rpc_server_listener_name(const rpc_server *srv, unsigned id);

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
