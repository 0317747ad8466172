/*
 * rpc_intake.c - how a call moves through a listener (rpc_server.c), from
 * its headers to its last byte, so that a client slow to send its request
 * (or one that never sends it) costs no worker.
 *
 * gRPC completes every operation of a call on the completion queue the call
 * was requested on, so each listener has one queue, which only the intake
 * threads read. There are INTAKE_THREADS of them because a thread waiting
 * on a queue also does gRPC's transport work, and a flood of streams on a
 * connection holds such a thread for as long as the flood lasts (measured:
 * with one intake thread no call at all came out during a flood; with two,
 * one flood in three still got its connection cut a second late). The
 * intake keeps INTAKE_SLOTS grpc_server_request_call() outstanding. When a
 * call's headers arrive it runs rpc_dispatch_find() (method, listener, Unix
 * peer uid) at once, charges the call to its peer (an IPv4 address, an
 * IPv6 /64, a Unix uid) and asks for its message and its close. The call
 * is then pending: at most peer_max_pending calls of one peer and
 * max_pending in all; past that, and for a refused method or peer, the
 * intake cancels the call with its status without reading the body. A
 * call whose message is complete joins the ready queue; one whose message
 * has not come recv_timeout_ms after its headers is cancelled. On a TCP
 * listener, a call that ends without its message, or is refused over its
 * peer's budget, is a strike against its connection (rpc_conn.c closes a
 * connection with too many: the rapid-reset flood gRPC 1.51 does not
 * stop), and after each second of a flood the intake hands the memory
 * freed back to the system (malloc_trim). Workers take
 * calls from the ready queue (skipping those the client gave up on while
 * they waited), run rpc_dispatch_body() (the handler) and start the final
 * batch. What a worker starts completes on the intake's queue too: the
 * intake records it in the call (tags name the call and the operation) and
 * wakes a worker waiting for a stream message to go out through the call's
 * condition variable; rpc_call_cancelled() reads the recorded close. A call
 * is freed by whichever thread finds it let go with no operation in flight.
 * One mutex per listener guards the queues, the budgets and every call's
 * recorded state; handlers run without it.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "err.h"
#include "log.h"
#include "rpc_int.h"
#include "util.h"

/* Outstanding requests for calls: calls whose headers have arrived wait
 * inside gRPC until one is free, and the intake frees one at once. */
#define INTAKE_SLOTS 16
#define INTAKE_THREADS 4
#define PEER_BUCKETS 64
/* At most one log line this often about refused or timed-out calls. */
#define LOG_EVERY_MS 10000
/* Each second with this many new calls (a flood), and the first quiet
 * second after, the memory freed meanwhile goes back to the system: glibc
 * keeps the freed pages of its per-thread arenas otherwise, and a flood's
 * calls are allocated and freed across many threads. */
#define TRIM_AFTER 1024

enum { OP_NEW, OP_RECV, OP_CLOSE, OP_SEND, OP_FINAL, OP_N };

/* A completion-queue tag: which call, which operation. */
struct op_tag {
	struct rpc_icall *c;
	int op;
};

enum icall_state {
	IC_REQUESTED,   /* a request slot: no call yet */
	IC_WAITING,     /* headers in, message awaited (in->waiting) */
	IC_QUEUED,      /* message in, waiting for a worker (in->ready) */
	IC_RUNNING,     /* a worker has it */
	IC_DONE,        /* let go: freed once no operation is in flight */
};

/* A peer's budget: its calls waiting for a message or a worker. */
struct peer {
	struct peer *next;
	int n;
	char key[];
};

struct rpc_icall {
	struct rpc_intake *in;
	struct op_tag tags[OP_N];
	enum icall_state state;
	grpc_call *gcall;
	grpc_call_details det;
	grpc_metadata_array md;
	grpc_byte_buffer *body;
	grpc_byte_buffer *reply;     /* the final batch's message */
	grpc_slice details;          /* the final batch's status message */
	int nops;                    /* batches started, not completed */
	int closed, cancelled;       /* RECV_CLOSE_ON_SERVER done; its answer */
	int send_done, send_ok;      /* the stream message in flight */
	int64_t body_by;             /* sf_mono_ms() */
	struct sockaddr_storage addr; /* a TCP peer's; else AF_UNSPEC */
	struct peer *peer;           /* set while pending */
	const struct rpc_path *path;
	struct rpc_icall *prev, *next;
	pthread_cond_t cv;           /* its worker waits for a send here */
	rpc_call rc;
};

struct icall_list {
	struct rpc_icall *head, *tail;
};

struct rpc_intake {
	struct rpc_listener *l;
	const char *name;            /* the listener's */
	grpc_completion_queue *cq;
	int recv_timeout_ms, max_pending, peer_max_pending;
	pthread_mutex_t mu;
	pthread_cond_t ready_cv;
	struct icall_list waiting;   /* by arrival, so by deadline */
	struct icall_list ready;
	struct peer *peers[PEER_BUCKETS];
	int nrequested;              /* request slots outstanding */
	int live;                    /* calls taken and not freed */
	int arrived;                 /* calls taken since arrived_ms */
	int64_t arrived_ms;
	int burst;                   /* the last second had TRIM_AFTER */
	int npending;                /* waiting or queued */
	int shutting, stopping;
	pthread_t thrs[INTAKE_THREADS];
	int nthrs;
	pthread_t *workers;
	int nworkers, nstarted;
	int nrefused, nexpired;      /* since the last log line */
	int64_t logged_ms;
};

/* ------------------------------------------------------------------ */
/* Lists, budgets, a call's memory.                                    */

static void
list_push(struct icall_list *l, struct rpc_icall *c)
{
	c->next = NULL;
	c->prev = l->tail;
	if (l->tail)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
}

static void
list_remove(struct icall_list *l, struct rpc_icall *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		l->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		l->tail = c->prev;
	c->prev = c->next = NULL;
}

static struct peer **
peer_slot(struct rpc_intake *in, const char *key)
{
	uint32_t h = 2166136261u;   /* FNV-1a */
	struct peer **pp;

	for (const char *s = key; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	for (pp = &in->peers[h % PEER_BUCKETS]; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->key, key) == 0)
			break;
	return pp;
}

/* A strike against the call's connection (TCP listeners only). */
static void
intake_strike(struct rpc_intake *in, struct rpc_icall *c)
{
	if (c->addr.ss_family != AF_UNSPEC)
		rpc_conn_strike(in->l->conns, &c->addr);
}

/* Charge a call to key; -1 (and no charge) past a budget or out of memory,
 * with the call's status set. */
static int
peer_charge(struct rpc_intake *in, struct rpc_icall *c, const char *key)
{
	struct peer **pp = peer_slot(in, key), *p = *pp;
	size_t len = strlen(key);

	if (in->npending >= in->max_pending) {
		rpc_fail(&c->rc, RPC_RESOURCE_EXHAUSTED, "the %s listener has"
		    " too many calls in progress; try later", in->name);
		return -1;
	}
	if (p && p->n >= in->peer_max_pending) {
		rpc_fail(&c->rc, RPC_RESOURCE_EXHAUSTED, "too many calls from"
		    " %s in progress; try later", key);
		intake_strike(in, c);
		return -1;
	}
	if (p == NULL) {
		if ((p = calloc(1, sizeof *p + len + 1)) == NULL) {
			c->rc.code = RPC_INTERNAL;
			return -1;
		}
		memcpy(p->key, key, len + 1);
		*pp = p;
	}
	p->n++;
	in->npending++;
	c->peer = p;
	return 0;
}

/* The call is no longer pending: a worker took it, or it ended. */
static void
peer_release(struct rpc_intake *in, struct rpc_icall *c)
{
	struct peer **pp, *p = c->peer;

	if (p == NULL)
		return;
	c->peer = NULL;
	in->npending--;
	if (--p->n > 0)
		return;
	pp = peer_slot(in, p->key);
	*pp = p->next;
	free(p);
}

/*
 * The budget key of a call's peer, peer being gRPC's name for it: a Unix
 * peer's uid (read by rpc_dispatch_find), a TCP peer's address
 * (rpc_conn_addr_key), which is also kept in the call for its strikes;
 * anything else as gRPC names it (a budget per connection).
 */
static void
peer_key(struct rpc_icall *c, const char *peer, char *key, size_t keylen)
{
	if (c->rc.uid >= 0)
		snprintf(key, keylen, "uid %ld", c->rc.uid);
	else if (rpc_conn_peer_parse(peer, &c->addr) == 0)
		rpc_conn_addr_key(&c->addr, key, keylen);
	else
		snprintf(key, keylen, "%s", peer ? peer : "?");
}

static struct rpc_icall *
icall_new(struct rpc_intake *in)
{
	struct rpc_icall *c = calloc(1, sizeof *c);

	if (c == NULL)
		return NULL;
	c->in = in;
	for (int i = 0; i < OP_N; i++) {
		c->tags[i].c = c;
		c->tags[i].op = i;
	}
	grpc_call_details_init(&c->det);
	grpc_metadata_array_init(&c->md);
	c->details = grpc_empty_slice();
	c->rc.uid = c->rc.pid = -1;
	pthread_cond_init(&c->cv, NULL);
	return c;
}

static void
icall_free(struct rpc_icall *c)
{
	if (c->gcall)
		grpc_call_unref(c->gcall);
	if (c->body)
		grpc_byte_buffer_destroy(c->body);
	if (c->reply)
		grpc_byte_buffer_destroy(c->reply);
	grpc_slice_unref(c->details);
	grpc_call_details_destroy(&c->det);
	grpc_metadata_array_destroy(&c->md);
	rpc_call_fini(&c->rc);
	pthread_cond_destroy(&c->cv);
	free(c);
}

/* Free the call if it has been let go and nothing of it is in flight. */
static void
icall_settle(struct rpc_intake *in, struct rpc_icall *c)
{
	if (c->state != IC_DONE || c->nops > 0)
		return;
	in->live--;
	icall_free(c);
}

/* Start a batch from the intake thread (mutex held). 0 or -1. */
static int
icall_start(struct rpc_icall *c, const grpc_op *ops, size_t n, int op)
{
	c->nops++;
	if (grpc_call_start_batch(c->gcall, ops, n, &c->tags[op], NULL) ==
	    GRPC_CALL_OK)
		return 0;
	c->nops--;
	return -1;
}

/* Start a batch from a worker (mutex not held). 0 or -1. */
static int
worker_start(struct rpc_icall *c, const grpc_op *ops, size_t n, int op)
{
	struct rpc_intake *in = c->in;

	pthread_mutex_lock(&in->mu);
	c->nops++;
	pthread_mutex_unlock(&in->mu);
	if (grpc_call_start_batch(c->gcall, ops, n, &c->tags[op], NULL) ==
	    GRPC_CALL_OK)
		return 0;
	pthread_mutex_lock(&in->mu);
	c->nops--;
	pthread_mutex_unlock(&in->mu);
	return -1;
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

/*
 * The batch that ends a call: initial metadata unless sent, a unary OK's
 * reply, the status. The reply and the message are kept in the call until
 * it is freed. Returns the number of operations in ops.
 */
static size_t
final_batch(struct rpc_icall *c, grpc_op ops[3])
{
	rpc_call *rc = &c->rc;
	size_t n = 0;

	memset(ops, 0, 3 * sizeof *ops);
	c->details = grpc_slice_from_copied_string(rpc_call_status_message(rc));
	if (!rc->sent_md)
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (rc->code == RPC_OK && rc->reply) {
		c->reply = buffer_take(rc->reply, rc->reply_len);
		rc->reply = NULL;  /* transferred */
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n].data.send_message.send_message = c->reply;
		n++;
	}
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = (grpc_status_code)rc->code;
	ops[n].data.send_status_from_server.status_details = &c->details;
	n++;
	return n;
}

/* ------------------------------------------------------------------ */
/* The intake threads (mutex held throughout, but for the wait).       */

/*
 * Answer a call refused at intake with its status and let it go. Cancelling
 * with the status sends the client the same trailers a status batch would,
 * and leaves nothing of ours in flight: a flood's refused calls cost no
 * operation.
 */
static void
intake_answer(struct rpc_intake *in, struct rpc_icall *c)
{
	if (c->rc.code == RPC_RESOURCE_EXHAUSTED)
		in->nrefused++;
	grpc_call_cancel_with_status(c->gcall, (grpc_status_code)c->rc.code,
	    rpc_call_status_message(&c->rc), NULL);
	c->state = IC_DONE;
}

/*
 * A copy of bytes gRPC filled on one of its own threads (a call's
 * method). A function of its own, never inlined, so that tests/tsan.supp
 * can name exactly this copy: gRPC hands the call over through
 * synchronisation ThreadSanitizer cannot see, and once TSan has lost the
 * stack of gRPC's write the report names no gRPC frame.
 */
static __attribute__((noinline)) char *
intake_copy_grpc(rpc_call *rc, const grpc_slice *s)
{
	return rpc_call_strndup(rc, (const char *)GRPC_SLICE_START_PTR(*s),
	    GRPC_SLICE_LENGTH(*s));
}

/* A call's headers are in: check it, charge it, ask for its message. */
static void
intake_arrived(struct rpc_intake *in, struct rpc_icall *c)
{
	rpc_call *rc = &c->rc;
	grpc_op ops[2];
	char key[RPC_PEER_KEY_LEN], *peer;

	rpc_call_init(rc, in->l->srv, in->name, in->l->id);
	rc->ux = in->l->ux;
	rc->gcall = c->gcall;
	rc->wire = c;
	rc->deadline = c->det.deadline;
	rc->method = intake_copy_grpc(rc, &c->det.method);
	if (rc->method == NULL) {
		rc->code = RPC_INTERNAL;
		goto out;
	}
	if ((c->path = rpc_dispatch_find(rc)) == NULL)
		goto out;
	peer = grpc_call_get_peer(c->gcall);
	if (rc->uid < 0 && peer)
		rc->peer_desc = rpc_call_strdup(rc, peer);
	peer_key(c, peer, key, sizeof key);
	gpr_free(peer);
	if (peer_charge(in, c, key) != 0)
		goto out;
	/* Two batches: the close completes only when the call ends. */
	memset(ops, 0, sizeof ops);
	ops[0].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[0].data.recv_close_on_server.cancelled = &c->cancelled;
	ops[1].op = GRPC_OP_RECV_MESSAGE;
	ops[1].data.recv_message.recv_message = &c->body;
	if (icall_start(c, &ops[0], 1, OP_CLOSE) != 0 ||
	    icall_start(c, &ops[1], 1, OP_RECV) != 0) {
		rc->code = RPC_INTERNAL;
		goto out;
	}
	c->state = IC_WAITING;
	c->body_by = sf_mono_ms() + in->recv_timeout_ms;
	list_push(&in->waiting, c);
	return;
out:
	peer_release(in, c);
	intake_answer(in, c);
}

/* A call's message is in (or the call is over). */
static void
intake_body(struct rpc_intake *in, struct rpc_icall *c, int success)
{
	if (c->state != IC_WAITING)
		return;     /* timed out meanwhile, and cancelled */
	list_remove(&in->waiting, c);
	if (!success) {
		/* Cancelled, or over its size limit: gRPC has ended it. */
		peer_release(in, c);
		intake_strike(in, c);
		c->state = IC_DONE;
		return;
	}
	if (c->body == NULL) {
		peer_release(in, c);
		intake_strike(in, c);
		rpc_fail(&c->rc, RPC_INVALID_ARGUMENT, "no request message");
		intake_answer(in, c);
		return;
	}
	c->state = IC_QUEUED;
	list_push(&in->ready, c);
	pthread_cond_signal(&in->ready_cv);
}

static void
intake_event(struct rpc_intake *in, struct op_tag *t, int success)
{
	struct rpc_icall *c = t->c;

	if (t->op == OP_NEW) {
		in->nrequested--;
		if (!success) {     /* shutting down: no call */
			icall_free(c);
			return;
		}
		in->live++;
		in->arrived++;
		intake_arrived(in, c);
		icall_settle(in, c);
		return;
	}
	c->nops--;
	switch (t->op) {
	case OP_RECV:
		intake_body(in, c, success);
		break;
	case OP_CLOSE:
		c->closed = 1;
		break;
	case OP_SEND:
		c->send_done = 1;
		c->send_ok = success;
		pthread_cond_signal(&c->cv);
		break;
	}
	icall_settle(in, c);
}

/* Keep INTAKE_SLOTS requests for calls outstanding. */
static void
intake_request(struct rpc_intake *in)
{
	while (!in->shutting && in->nrequested < INTAKE_SLOTS) {
		struct rpc_icall *c = icall_new(in);

		if (c == NULL)
			return;
		if (grpc_server_request_call(in->l->gs, &c->gcall, &c->det,
		    &c->md, in->cq, in->cq, &c->tags[OP_NEW]) != GRPC_CALL_OK) {
			icall_free(c);
			return;
		}
		in->nrequested++;
	}
}

/* Cancel the calls whose message is late; the wait until the next is. */
static int
intake_expire(struct rpc_intake *in)
{
	struct rpc_icall *c;
	int64_t now = sf_mono_ms();
	char why[96];

	while ((c = in->waiting.head) != NULL && c->body_by <= now) {
		list_remove(&in->waiting, c);
		peer_release(in, c);
		c->state = IC_DONE;
		snprintf(why, sizeof why, "no request message within %d ms",
		    in->recv_timeout_ms);
		grpc_call_cancel_with_status(c->gcall, GRPC_STATUS_CANCELLED,
		    why, NULL);
		intake_strike(in, c);
		in->nexpired++;
	}
	if (in->shutting)
		return 50;
	if (c == NULL)
		return 1000;
	return c->body_by - now < 1000 ? (int)(c->body_by - now) : 1000;
}

static void
intake_log(struct rpc_intake *in)
{
	int64_t now;

	if (in->nrefused == 0 && in->nexpired == 0)
		return;
	if ((now = sf_mono_ms()) - in->logged_ms < LOG_EVERY_MS)
		return;
	if (in->nrefused)
		log_warnx("listener %s: %d call(s) refused: too many in"
		    " progress", in->name, in->nrefused);
	if (in->nexpired)
		log_warnx("listener %s: %d call(s) cancelled: no request"
		    " message within %d ms", in->name, in->nexpired,
		    in->recv_timeout_ms);
	in->nrefused = in->nexpired = 0;
	in->logged_ms = now;
}

/* 1 once a second during a burst of new calls, and once after it. */
static int
intake_trim_due(struct rpc_intake *in)
{
	int64_t now = sf_mono_ms();
	int due;

	if (now - in->arrived_ms < 1000)
		return 0;
	due = in->arrived >= TRIM_AFTER || in->burst;
	in->burst = in->arrived >= TRIM_AFTER;
	in->arrived = 0;
	in->arrived_ms = now;
	return due;
}

static void *
intake_main(void *arg)
{
	struct rpc_intake *in = arg;

	pthread_mutex_lock(&in->mu);
	for (;;) {
		grpc_event ev;
		int ms;

		intake_request(in);
		ms = intake_expire(in);
		if (in->shutting && in->nrequested == 0 && in->live == 0)
			break;
		pthread_mutex_unlock(&in->mu);
		ev = grpc_completion_queue_next(in->cq, rpc_after_ms(ms), NULL);
		pthread_mutex_lock(&in->mu);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type == GRPC_OP_COMPLETE)
			intake_event(in, ev.tag, ev.success);
		intake_log(in);
		if (intake_trim_due(in)) {
			pthread_mutex_unlock(&in->mu);
			malloc_trim(0);
			pthread_mutex_lock(&in->mu);
		}
	}
	pthread_mutex_unlock(&in->mu);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Workers.                                                             */

/* Serve a call whose message is in, and start its final batch. */
static void
worker_serve(struct rpc_icall *c)
{
	rpc_call *rc = &c->rc;
	grpc_slice body;
	grpc_op ops[3];
	size_t n;

	if (rpc_call_cancelled(rc))
		return;     /* the client gave up while it waited */
	body = rpc_buffer_slice(c->body);
	rpc_dispatch_body(rc, c->path, GRPC_SLICE_START_PTR(body),
	    GRPC_SLICE_LENGTH(body));
	grpc_slice_unref(body);
	if (rc->ended)
		return;     /* a stream message failed: the call is over */
	n = final_batch(c, ops);
	worker_start(c, ops, n, OP_FINAL);
	rc->ended = 1;
}

static void *
worker_main(void *arg)
{
	struct rpc_intake *in = arg;
	struct rpc_icall *c;

	pthread_mutex_lock(&in->mu);
	for (;;) {
		while (in->ready.head == NULL && !in->stopping)
			pthread_cond_wait(&in->ready_cv, &in->mu);
		if ((c = in->ready.head) == NULL)
			break;
		list_remove(&in->ready, c);
		peer_release(in, c);
		c->state = IC_RUNNING;
		pthread_mutex_unlock(&in->mu);
		worker_serve(c);
		pthread_mutex_lock(&in->mu);
		c->state = IC_DONE;
		icall_settle(in, c);
	}
	pthread_mutex_unlock(&in->mu);
	return NULL;
}

int
rpc_intake_send(rpc_call *rc, uint8_t *buf, size_t len)
{
	struct rpc_icall *c = rc->wire;
	struct rpc_intake *in = c->in;
	grpc_byte_buffer *bb = buffer_take(buf, len);
	grpc_op ops[2];
	size_t n = 0;
	int ok = 0;

	memset(ops, 0, sizeof ops);
	if (!rc->sent_md)
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n].data.send_message.send_message = bb;
	n++;
	c->send_done = 0;
	if (worker_start(c, ops, n, OP_SEND) == 0) {
		rc->sent_md = 1;
		pthread_mutex_lock(&in->mu);
		while (!c->send_done)
			pthread_cond_wait(&c->cv, &in->mu);
		ok = c->send_ok;
		pthread_mutex_unlock(&in->mu);
	}
	grpc_byte_buffer_destroy(bb);
	if (!ok) {
		rc->ended = 1;
		return -1;
	}
	return 0;
}

int
rpc_call_cancelled(rpc_call *rc)
{
	struct rpc_icall *c = rc->wire;
	int r;

	if (rc->ended)
		return 1;
	if (c == NULL)
		return 0;
	pthread_mutex_lock(&c->in->mu);
	r = c->closed && c->cancelled;
	pthread_mutex_unlock(&c->in->mu);
	return r;
}

/* ------------------------------------------------------------------ */
/* Life of the intake.                                                  */

int
rpc_intake_new(struct rpc_listener *l, const rpc_listener_opts *o,
    struct rpc_intake **out)
{
	struct rpc_intake *in;

	*out = NULL;
	if ((in = calloc(1, sizeof *in)) == NULL)
		return SF_ENOMEM;
	in->l = l;
	in->name = l->name;
	in->nworkers = o->workers > 0 ? o->workers : RPC_DEFAULT_WORKERS;
	in->recv_timeout_ms = o->recv_timeout_ms > 0 ? o->recv_timeout_ms :
	    RPC_DEFAULT_RECV_TIMEOUT_MS;
	in->max_pending = o->max_pending > 0 ? o->max_pending :
	    RPC_DEFAULT_MAX_PENDING;
	in->peer_max_pending = o->peer_max_pending > 0 ?
	    o->peer_max_pending : RPC_DEFAULT_PEER_MAX_PENDING;
	in->logged_ms = sf_mono_ms() - LOG_EVERY_MS;
	pthread_mutex_init(&in->mu, NULL);
	pthread_cond_init(&in->ready_cv, NULL);
	if ((in->workers = calloc((size_t)in->nworkers,
	    sizeof *in->workers)) == NULL) {
		rpc_intake_free(in);
		return SF_ENOMEM;
	}
	in->cq = grpc_completion_queue_create_for_next(NULL);
	grpc_server_register_completion_queue(l->gs, in->cq, NULL);
	*out = in;
	return 0;
}

int
rpc_intake_start(struct rpc_intake *in)
{
	for (; in->nthrs < INTAKE_THREADS; in->nthrs++)
		if (pthread_create(&in->thrs[in->nthrs], NULL, intake_main,
		    in) != 0) {
			log_warn("listener %s: pthread_create", in->name);
			return SF_EINTERNAL;
		}
	for (; in->nstarted < in->nworkers; in->nstarted++)
		if (pthread_create(&in->workers[in->nstarted], NULL,
		    worker_main, in) != 0) {
			log_warn("listener %s: pthread_create", in->name);
			return SF_EINTERNAL;
		}
	return 0;
}

void
rpc_intake_shutdown(struct rpc_intake *in)
{
	pthread_mutex_lock(&in->mu);
	in->shutting = 1;
	pthread_mutex_unlock(&in->mu);
}

int
rpc_intake_busy(struct rpc_intake *in)
{
	int n;

	pthread_mutex_lock(&in->mu);
	n = in->live;
	pthread_mutex_unlock(&in->mu);
	return n;
}

void
rpc_intake_join(struct rpc_intake *in)
{
	for (; in->nthrs > 0; in->nthrs--)
		pthread_join(in->thrs[in->nthrs - 1], NULL);
	pthread_mutex_lock(&in->mu);
	in->stopping = 1;
	pthread_cond_broadcast(&in->ready_cv);
	pthread_mutex_unlock(&in->mu);
	for (; in->nstarted > 0; in->nstarted--)
		pthread_join(in->workers[in->nstarted - 1], NULL);
}

void
rpc_intake_free(struct rpc_intake *in)
{
	if (in == NULL)
		return;
	if (in->cq)
		rpc_cq_drain(in->cq);
	pthread_cond_destroy(&in->ready_cv);
	pthread_mutex_destroy(&in->mu);
	free(in->workers);
	free(in);
}
