/*
 * Unit tests of the rpc layer (common/rpc*.c) over real Unix sockets: round
 * trips, status codes, deadlines, malformed bodies, UTF-8 checks, which
 * listener may call which method, the peer-uid check and the "fd:N" peer
 * format it relies on, streaming, concurrency, the transport-free dispatch
 * (rpc_dispatch_raw) against the socket, the intake (slow and missing
 * request messages hold no worker, the per-peer budget, the message
 * timeout, a cancelled call frees its worker), and shutdown with calls in
 * flight and calls waiting for their message.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "echo_service.h"
#include "log.h"
#include "rpc.h"
#include "rpc_int.h"
#include "slow_call.h"
#include "util.h"
#include "../../tap.h"

static char tmpdir[256], echo_addr[300], other_addr[300], denied_addr[300];
static char tight_addr[300], hasty_addr[300];
static const ProtobufCServiceDescriptor *ECHO =
    &secretfree__test__v1__echo__descriptor;

/* A Unix listener's options: name, address, id, the group left as is. */
static void
unix_opts(rpc_listener_opts *o, const char *name, const char *address,
    unsigned id)
{
	memset(o, 0, sizeof *o);
	o->name = name;
	o->address = address;
	o->id = id;
	o->socket_gid = (gid_t)-1;
}

static rpc_server *
start_server(void)
{
	static const uid_t nobody[] = { 12345 };
	rpc_listener_opts a, b, c, d, e;
	rpc_server *srv = rpc_server_new();

	if (srv == NULL || echo_register(srv) != 0)
		return NULL;
	unix_opts(&a, "echo", echo_addr, ECHO_LISTENER);
	a.workers = 4;
	a.max_message = 64 * 1024;
	unix_opts(&b, "other", other_addr, OTHER_LISTENER);
	unix_opts(&c, "denied", denied_addr, ECHO_LISTENER);
	c.allowed_uids = nobody;
	c.n_allowed_uids = 1;
	/* One worker, and at most 3 calls of one peer pending. */
	unix_opts(&d, "tight", tight_addr, ECHO_LISTENER);
	d.workers = 1;
	d.peer_max_pending = 3;
	/* A request message must follow its headers within 300 ms. */
	unix_opts(&e, "hasty", hasty_addr, ECHO_LISTENER);
	e.workers = 1;
	e.recv_timeout_ms = 300;
	if (rpc_server_listen(srv, &a) != 0 || rpc_server_listen(srv, &b) != 0 ||
	    rpc_server_listen(srv, &c) != 0 || rpc_server_listen(srv, &d) != 0 ||
	    rpc_server_listen(srv, &e) != 0 || rpc_server_start(srv) != 0) {
		rpc_server_free(srv);
		return NULL;
	}
	return srv;
}

static int
say(rpc_client *c, Secretfree__Test__V1__EchoRequest *req,
    Secretfree__Test__V1__EchoReply **out, rpc_status *st)
{
	ProtobufCMessage *resp = NULL;
	int rc = rpc_client_call(c, ECHO, "Say", &req->base, &resp, 5000, st);

	*out = (void *)resp;
	return rc;
}

static void
test_round_trip(rpc_client *c)
{
	Secretfree__Test__V1__EchoRequest req = SECRETFREE__TEST__V1__ECHO_REQUEST__INIT;
	Secretfree__Test__V1__Inner inner = SECRETFREE__TEST__V1__INNER__INIT;
	Secretfree__Test__V1__EchoReply *r = NULL;
	char *tags[] = { "a", "\xc3\xa9t\xc3\xa9" };
	uint8_t data[] = { 0, 1, 2, 0, 255 };
	rpc_status st;
	int rc;

	req.text = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x94\x91";
	req.data.data = data;
	req.data.len = sizeof data;
	req.tags = tags;
	req.n_tags = 2;
	inner.note = "inside";
	req.inner = &inner;
	rc = say(c, &req, &r, &st);
	is_int(rc, RPC_OK, "unary round trip answers OK");
	if (r) {
		is_str(r->text, req.text, "UTF-8 text echoed unchanged");
		ok(r->data.len == sizeof data &&
		    memcmp(r->data.data, data, sizeof data) == 0,
		    "bytes with NULs echoed unchanged");
		ok(r->n_tags == 2 && strcmp(r->tags[1], tags[1]) == 0,
		    "repeated strings echoed");
		is_str(r->listener, "echo", "handler sees its listener name");
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
}

static void
test_statuses(rpc_client *c)
{
	static const int codes[] = { RPC_INVALID_ARGUMENT, RPC_NOT_FOUND,
	    RPC_PERMISSION_DENIED, RPC_RESOURCE_EXHAUSTED, RPC_UNAVAILABLE,
	    RPC_INTERNAL };
	Secretfree__Test__V1__FailRequest req = SECRETFREE__TEST__V1__FAIL_REQUEST__INIT;
	ProtobufCMessage *resp;
	rpc_status st;

	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		char msg[64];
		int rc;

		snprintf(msg, sizeof msg, "device 1111: reason %zu", i);
		req.code = codes[i];
		req.message = msg;
		rc = rpc_client_call(c, ECHO, "Fail", &req.base, &resp, 5000, &st);
		is_int(rc, codes[i], "handler status %s reaches the client",
		    rpc_code_name(codes[i]));
		is_str(st.message, msg, "status message reaches the client");
		ok(resp == NULL, "no reply message with an error status");
	}
}

static void
test_unknown_and_denied(rpc_client *c, rpc_client *denied, rpc_client *other)
{
	uint8_t *out;
	size_t outlen;
	rpc_status st;
	int rc;

	rc = rpc_client_call_raw(c, "/secretfree.test.v1.Echo/Nope", "", 0,
	    &out, &outlen, 5000, &st);
	is_int(rc, RPC_UNIMPLEMENTED, "unknown method: UNIMPLEMENTED");
	ok(strstr(st.message, "Nope") != NULL, "message names the method (%s)",
	    st.message);
	rc = rpc_client_call_raw(c, "/no.such.Service/Say", "", 0, &out,
	    &outlen, 5000, &st);
	is_int(rc, RPC_UNIMPLEMENTED, "unknown service: UNIMPLEMENTED");
	rc = rpc_client_call_raw(c, "/secretfree.test.v1.Other/Ping", "", 0,
	    &out, &outlen, 5000, &st);
	is_int(rc, RPC_PERMISSION_DENIED,
	    "known service not served on this listener: PERMISSION_DENIED");
	ok(strstr(st.message, "not served") != NULL, "message says why (%s)",
	    st.message);
	rc = rpc_client_call_raw(other, "/secretfree.test.v1.Other/Ping", "", 0,
	    &out, &outlen, 5000, &st);
	is_int(rc, RPC_OK, "the same method on its own listener: OK");
	free(out);
	rc = rpc_client_call_raw(other, "/secretfree.test.v1.Echo/Say", "", 0,
	    &out, &outlen, 5000, &st);
	is_int(rc, RPC_PERMISSION_DENIED, "and Echo is refused there");
	rc = rpc_client_call_raw(c, "/secretfree.test.v1.Echo/Missing", "", 0,
	    &out, &outlen, 5000, &st);
	is_int(rc, RPC_UNIMPLEMENTED, "method without handler: UNIMPLEMENTED");
	rc = rpc_client_call_raw(denied, "/secretfree.test.v1.Echo/Say", "", 0,
	    &out, &outlen, 5000, &st);
	is_int(rc, RPC_PERMISSION_DENIED,
	    "peer uid not in the socket's allowlist: PERMISSION_DENIED");
	ok(strstr(st.message, "uid") != NULL, "message names the uid (%s)",
	    st.message);
}

static void
test_bad_bodies(rpc_client *c)
{
	static const struct { const char *what; const char *body; size_t len;
	    int code; const char *needle; } cases[] = {
		{ "truncated length-delimited field", "\x0a\xff", 2,
		    RPC_INVALID_ARGUMENT, "not a valid" },
		{ "length past the end", "\x0a\x05" "ab", 4,
		    RPC_INVALID_ARGUMENT, "not a valid" },
		{ "garbage bytes", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11,
		    RPC_INVALID_ARGUMENT, "not a valid" },
		{ "invalid UTF-8 in a string", "\x0a\x02\xff\xfe", 4,
		    RPC_INVALID_ARGUMENT, "text" },
		{ "overlong UTF-8 in a string", "\x0a\x02\xc0\xaf", 4,
		    RPC_INVALID_ARGUMENT, "text" },
		{ "UTF-16 surrogate in a string", "\x0a\x03\xed\xa0\x80", 5,
		    RPC_INVALID_ARGUMENT, "text" },
		{ "invalid UTF-8 in a repeated string", "\x1a\x01\x80", 3,
		    RPC_INVALID_ARGUMENT, "tags" },
		{ "invalid UTF-8 in a nested message", "\x22\x04\x0a\x02\xff\xfe", 6,
		    RPC_INVALID_ARGUMENT, "note" },
		{ "empty body (all defaults)", "", 0, RPC_OK, NULL },
		{ "unknown field is kept, not fatal", "\x78\x01", 2, RPC_OK, NULL },
	};
	uint8_t *out;
	size_t outlen;
	rpc_status st;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = rpc_client_call_raw(c, "/secretfree.test.v1.Echo/Say",
		    cases[i].body, cases[i].len, &out, &outlen, 5000, &st);

		is_int(rc, cases[i].code, "%s: %s", cases[i].what,
		    rpc_code_name(cases[i].code));
		if (cases[i].needle)
			ok(strstr(st.message, cases[i].needle) != NULL,
			    "%s: message says what (%s)", cases[i].what,
			    st.message);
		free(out);
	}
}

static void
test_limits(rpc_client *c)
{
	size_t big = 200 * 1024;
	uint8_t *body = calloc(1, big + 8), *out;
	size_t outlen;
	rpc_status st;
	int rc;

	/* Field 2 (bytes), length as a varint, then the bytes. */
	body[0] = 0x12;
	body[1] = (uint8_t)(0x80 | (big & 0x7f));
	body[2] = (uint8_t)(0x80 | ((big >> 7) & 0x7f));
	body[3] = (uint8_t)(big >> 14);
	rc = rpc_client_call_raw(c, "/secretfree.test.v1.Echo/Say", body,
	    big + 4, &out, &outlen, 5000, &st);
	is_int(rc, RPC_RESOURCE_EXHAUSTED,
	    "request over the listener's size limit: RESOURCE_EXHAUSTED");
	free(body);

	rc = rpc_client_call_raw(c, "/secretfree.test.v1.Echo/BadReply", "", 0,
	    &out, &outlen, 5000, &st);
	is_int(rc, RPC_INTERNAL, "a handler's invalid UTF-8 reply: INTERNAL");
}

static void
test_deadline(rpc_client *c)
{
	Secretfree__Test__V1__SleepRequest req = SECRETFREE__TEST__V1__SLEEP_REQUEST__INIT;
	ProtobufCMessage *resp;
	rpc_status st;
	int64_t t0 = sf_mono_ms();
	int rc;

	req.ms = 1500;
	rc = rpc_client_call(c, ECHO, "Sleep", &req.base, &resp, 200, &st);
	is_int(rc, RPC_DEADLINE_EXCEEDED, "client deadline: DEADLINE_EXCEEDED");
	ok(sf_mono_ms() - t0 < 1000, "the client returns at its deadline (%lld ms)",
	    (long long)(sf_mono_ms() - t0));
	req.ms = 10;
	rc = rpc_client_call(c, ECHO, "Sleep", &req.base, &resp, 5000, &st);
	is_int(rc, RPC_OK, "within the deadline: OK");
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
}

struct count_state { uint32_t n, next; int order_ok; uint32_t stop_after; };

static int
count_cb(const ProtobufCMessage *m, void *arg)
{
	const Secretfree__Test__V1__EchoReply *r = (const void *)m;
	struct count_state *s = arg;

	if (r->index != s->next)
		s->order_ok = 0;
	s->next++;
	s->n++;
	return s->stop_after && s->n >= s->stop_after;
}

static void
test_stream(rpc_client *c)
{
	Secretfree__Test__V1__CountRequest req = SECRETFREE__TEST__V1__COUNT_REQUEST__INIT;
	struct count_state s = { 0, 0, 1, 0 };
	rpc_status st;
	int rc;

	req.n = 50;
	rc = rpc_client_stream(c, ECHO, "Count", &req.base, count_cb, &s, 5000,
	    &st);
	is_int(rc, RPC_OK, "server stream ends with OK");
	is_int(s.n, 50, "all 50 stream messages arrive");
	ok(s.order_ok, "in order");
	memset(&s, 0, sizeof s);
	s.order_ok = 1;
	s.stop_after = 3;
	req.n = 1000;
	rc = rpc_client_stream(c, ECHO, "Count", &req.base, count_cb, &s, 5000,
	    &st);
	is_int(rc, RPC_CANCELLED, "receiver stopping early: CANCELLED");
	is_int(s.n, 3, "no message after the stop");
}

static void
test_peer(rpc_client *c)
{
	Secretfree__Test__V1__EchoRequest req = SECRETFREE__TEST__V1__ECHO_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	Secretfree__Test__V1__EchoReply *r;
	rpc_status st;
	int rc;

	/*
	 * The uid check parses gRPC's "fd:N" peer string for connections
	 * added with grpc_server_add_channel_from_fd and fails closed
	 * otherwise: if gRPC changes that format, this test fails.
	 */
	rc = rpc_client_call(c, ECHO, "Whoami", &req.base, &resp, 5000, &st);
	is_int(rc, RPC_OK, "Whoami over the Unix socket");
	r = (void *)resp;
	if (r) {
		is_int(r->uid, geteuid(), "peer uid from SO_PEERCRED is ours");
		is_int(r->pid, getpid(), "peer pid from SO_PEERCRED is ours");
		protobuf_c_message_free_unpacked(resp, NULL);
	}
}

struct hammer { rpc_client *c; int ok; };

static void *
hammer_main(void *arg)
{
	struct hammer *h = arg;

	for (int i = 0; i < 200; i++) {
		Secretfree__Test__V1__EchoRequest req =
		    SECRETFREE__TEST__V1__ECHO_REQUEST__INIT;
		Secretfree__Test__V1__EchoReply *r = NULL;
		char text[32];
		rpc_status st;

		snprintf(text, sizeof text, "call %d", i);
		req.text = text;
		if (say(h->c, &req, &r, &st) == RPC_OK && r &&
		    strcmp(r->text, text) == 0)
			h->ok++;
		if (r)
			protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	return NULL;
}

static void
test_concurrency(rpc_client *c)
{
	pthread_t t[4];
	struct hammer h[4];
	int total = 0;

	for (int i = 0; i < 4; i++) {
		h[i].c = c;
		h[i].ok = 0;
		pthread_create(&t[i], NULL, hammer_main, &h[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		total += h[i].ok;
	}
	is_int(total, 800, "4 threads x 200 calls on one channel all answered");
}

static void
test_socket_modes(void)
{
	struct stat st;
	char dir[300];
	int r;

	snprintf(dir, sizeof dir, "%s/echo", tmpdir);
	r = stat(dir, &st);
	ok(r == 0 && (st.st_mode & 07777) == 0750,
	    "socket directory created 0750 (%o)", st.st_mode & 07777);
	r = stat(echo_addr + 5, &st);
	ok(r == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 07777) == 0660,
	    "socket is 0660 (%o)", st.st_mode & 07777);
}

struct sleeper { int rc; rpc_client *c; };

static void *
sleeper_main(void *arg)
{
	struct sleeper *s = arg;
	Secretfree__Test__V1__SleepRequest req = SECRETFREE__TEST__V1__SLEEP_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	rpc_status st;

	req.ms = 3000;
	s->rc = rpc_client_call(s->c, ECHO,
	    "Sleep", &req.base, &resp, 10000, &st);
	if (resp)
		protobuf_c_message_free_unpacked(resp, NULL);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The intake: calls cost no worker until their message is in.         */

#define SAY "/secretfree.test.v1.Echo/Say"
#define SAY_HI "\x0a\x02hi"

/* Open n calls on ch that send only their headers, and give the server
 * a moment to take them. */
static void
slow_open_n(slow_chan *ch, slow_call **calls, int n)
{
	for (int i = 0; i < n; i++)
		calls[i] = slow_call_open(ch, SAY, 30000);
	usleep(300000);
}

/* Send each call's message; how many are then answered OK. */
static int
slow_finish_n(slow_call **calls, int n)
{
	rpc_status st;
	int nok = 0;

	for (int i = 0; i < n; i++)
		if (calls[i])
			slow_call_send(calls[i], SAY_HI, 4);
	for (int i = 0; i < n; i++) {
		if (calls[i] && slow_call_status(calls[i], 10000, &st) == RPC_OK)
			nok++;
		slow_call_close(calls[i]);
		calls[i] = NULL;
	}
	return nok;
}

static void
test_slow_bodies(rpc_client *c)
{
	slow_chan *ch = slow_chan_open(echo_addr);
	slow_call *slow[8];
	uint8_t *out = NULL;
	size_t outlen;
	rpc_status st;
	int64_t t0;
	int rc;

	/* The echo listener has 4 workers: twice as many calls wait. */
	slow_open_n(ch, slow, 8);
	t0 = sf_mono_ms();
	rc = rpc_client_call_raw(c, SAY, SAY_HI, 4, &out, &outlen, 2000, &st);
	is_int(rc, RPC_OK, "workers + 4 calls without their message: another"
	    " call is still served");
	ok(sf_mono_ms() - t0 < 1500, "and at once (%lld ms)",
	    (long long)(sf_mono_ms() - t0));
	free(out);
	is_int(slow_finish_n(slow, 8), 8,
	    "when their messages come, all 8 slow calls are answered OK");
	slow_chan_close(ch);
}

static void
test_peer_budget(void)
{
	slow_chan *ch = slow_chan_open(tight_addr);
	slow_call *slow[3];
	rpc_client *t = NULL;
	uint8_t *out = NULL;
	size_t outlen;
	rpc_status st;
	int rc;

	rpc_client_open(tight_addr, NULL, &t);
	slow_open_n(ch, slow, 3);
	rc = rpc_client_call_raw(t, SAY, SAY_HI, 4, &out, &outlen, 5000, &st);
	is_int(rc, RPC_RESOURCE_EXHAUSTED, "a peer with 3 calls pending (its"
	    " budget) gets RESOURCE_EXHAUSTED for a 4th");
	ok(strstr(st.message, "too many calls from uid") != NULL,
	    "the message names the peer (%s)", st.message);
	free(out);
	is_int(slow_finish_n(slow, 3), 3, "the 3 pending calls are answered");
	rc = rpc_client_call_raw(t, SAY, SAY_HI, 4, &out, &outlen, 5000, &st);
	is_int(rc, RPC_OK, "then the peer may call again");
	free(out);
	rpc_client_close(t);
	slow_chan_close(ch);
}

static void
test_body_timeout(void)
{
	slow_chan *ch = slow_chan_open(hasty_addr);
	slow_call *s;
	rpc_status st;
	int64_t t0 = sf_mono_ms(), ms;
	int rc;

	s = slow_call_open(ch, SAY, 30000);
	rc = s ? slow_call_status(s, 10000, &st) : -1;
	ms = sf_mono_ms() - t0;
	is_int(rc, RPC_CANCELLED, "a message that never comes: CANCELLED");
	ok(rc >= 0 && strstr(st.message, "no request message within 300 ms"),
	    "the status says why (%s)", rc >= 0 ? st.message : "");
	ok(ms >= 250 && ms < 5000, "after the listener's 300 ms (%lld ms)",
	    (long long)ms);
	slow_call_close(s);
	s = slow_call_open(ch, SAY, 30000);
	usleep(50000);
	if (s)
		slow_call_send(s, SAY_HI, 4);
	is_int(s ? slow_call_status(s, 10000, &st) : -1, RPC_OK,
	    "a message 50 ms after its headers is served");
	slow_call_close(s);
	slow_chan_close(ch);
}

/* gRPC's names for TCP peers (as 1.51 writes them) and the address each
 * budget and ban applies to (rpc_conn.c). */
static void
test_peer_keys(void)
{
	static const struct { const char *peer, *key; } cases[] = {
		{ "ipv4:127.0.0.1:43110", "ipv4:127.0.0.1" },
		{ "ipv6:%5B::1%5D:56214", "ipv6:::/64" },
		{ "ipv6:[2001:db8:1:2:3:4:5:6]:443", "ipv6:2001:db8:1:2::/64" },
		{ "ipv6:%5B2001:db8:1:2::9%5D:443", "ipv6:2001:db8:1:2::/64" },
		{ "ipv6:%5B::ffff:10.1.2.3%5D:80", "ipv4:10.1.2.3" },
		{ "ipv6:%5Bfe80::1%25eth0%5D:80", "ipv6:fe80::/64" },
	};
	static const char *bad[] = { "unix:", "fd:12", "ipv4:", "ipv4:1.2.3:4",
	    "ipv6:%5Bzz::1%5D:1", "ipv4:1.2.3.4:99999", "ipv4:1.2.3.4:",
	    "ipv6:%5B::1%5D", NULL };
	struct sockaddr_storage ss;
	char key[RPC_PEER_KEY_LEN];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = rpc_conn_peer_parse(cases[i].peer, &ss);

		rpc_conn_addr_key(&ss, key, sizeof key);
		ok(rc == 0 && strcmp(key, cases[i].key) == 0,
		    "peer %s is budgeted as %s (%s)", cases[i].peer,
		    cases[i].key, key);
	}
	for (size_t i = 0; bad[i]; i++)
		ok(rpc_conn_peer_parse(bad[i], &ss) != 0,
		    "%s is not a TCP peer", bad[i]);
}

/* The tight listener has one worker: a handler that sees its client
 * cancel (rpc_call_cancelled) must give it back. */
static void
test_cancel_frees_worker(void)
{
	Secretfree__Test__V1__SleepRequest req = SECRETFREE__TEST__V1__SLEEP_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	rpc_client *t = NULL;
	uint8_t *out = NULL;
	size_t outlen;
	rpc_status st;
	int64_t t0;
	int rc;

	rpc_client_open(tight_addr, NULL, &t);
	req.ms = 5000;
	rc = rpc_client_call(t, ECHO, "Sleep", &req.base, &resp, 300, &st);
	is_int(rc, RPC_DEADLINE_EXCEEDED, "a 5 s handler with a 300 ms"
	    " deadline: DEADLINE_EXCEEDED");
	t0 = sf_mono_ms();
	rc = rpc_client_call_raw(t, SAY, SAY_HI, 4, &out, &outlen, 4000, &st);
	is_int(rc, RPC_OK, "the only worker is free again");
	ok(sf_mono_ms() - t0 < 2000, "well before the handler's 5 s (%lld ms)",
	    (long long)(sf_mono_ms() - t0));
	free(out);
	rpc_client_close(t);
}

/*
 * rpc_dispatch_raw, the fuzzers' entry: each request gets the status, the
 * message and the reply bytes it gets over the socket, since both run the
 * same dispatch once the body is read.
 */
static void
test_dispatch_raw(rpc_server *srv, rpc_client *c)
{
	static const struct { const char *what; const char *path;
	    const char *body; size_t len; int code; const char *needle; } cases[] = {
		{ "good body", "/secretfree.test.v1.Echo/Say",
		    "\x0a\x02hi", 4, RPC_OK, NULL },
		{ "malformed body", "/secretfree.test.v1.Echo/Say",
		    "\x0a\x05" "ab", 4, RPC_INVALID_ARGUMENT, "not a valid" },
		{ "bad UTF-8", "/secretfree.test.v1.Echo/Say",
		    "\x0a\x02\xff\xfe", 4, RPC_INVALID_ARGUMENT, "text" },
		{ "wrong listener", "/secretfree.test.v1.Other/Ping",
		    "", 0, RPC_PERMISSION_DENIED,
		    "/secretfree.test.v1.Other/Ping is not served on the echo"
		    " listener" },
		{ "unknown method", "/secretfree.test.v1.Echo/Nope",
		    "", 0, RPC_UNIMPLEMENTED, "unknown method" },
		{ "no handler", "/secretfree.test.v1.Echo/Missing",
		    "", 0, RPC_UNIMPLEMENTED, "not implemented" },
		{ "handler's status", "/secretfree.test.v1.Echo/Fail",
		    "\x08\x05\x12\x04gone", 8, RPC_NOT_FOUND, "gone" },
		{ "invalid UTF-8 reply", "/secretfree.test.v1.Echo/BadReply",
		    "", 0, RPC_INTERNAL, "reply field text" },
		{ "server stream", "/secretfree.test.v1.Echo/Count",
		    "\x08\x03", 2, RPC_OK, NULL },
	};
	Secretfree__Test__V1__EchoReply *r;
	rpc_server *bare;
	uint8_t *out, *wire;
	size_t outlen, wirelen;
	rpc_status st, wst;
	int rc;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		rc = rpc_dispatch_raw(srv, ECHO_LISTENER, cases[i].path,
		    cases[i].body, cases[i].len, &out, &outlen, &st);
		is_int(rc, cases[i].code, "raw %s: %s", cases[i].what,
		    rpc_code_name(cases[i].code));
		is_int(st.code, rc, "raw %s: the status is in st too",
		    cases[i].what);
		if (cases[i].needle)
			ok(strstr(st.message, cases[i].needle) != NULL,
			    "raw %s: message says what (%s)", cases[i].what,
			    st.message);
		if (strstr(cases[i].path, "Count") != NULL) {
			ok(out == NULL, "raw %s: no reply bytes", cases[i].what);
			continue;
		}
		rpc_client_call_raw(c, cases[i].path, cases[i].body,
		    cases[i].len, &wire, &wirelen, 5000, &wst);
		is_int(st.code, wst.code, "raw %s: the status as over the"
		    " socket", cases[i].what);
		is_str(st.message, wst.message, "raw %s: the message as over"
		    " the socket", cases[i].what);
		is_int((int)outlen, (int)wirelen, "raw %s: the reply's length"
		    " as over the socket", cases[i].what);
		ok(outlen != wirelen || outlen == 0 ||
		    memcmp(out, wire, outlen) == 0,
		    "raw %s: the same reply bytes", cases[i].what);
		free(out);
		free(wire);
	}
	rc = rpc_dispatch_raw(srv, OTHER_LISTENER,
	    "/secretfree.test.v1.Echo/Say", "", 0, &out, &outlen, &st);
	is_int(rc, RPC_PERMISSION_DENIED, "raw: Echo refused on Other's listener");
	is_str(st.message, "/secretfree.test.v1.Echo/Say is not served on the"
	    " other listener", "raw: and the message names that listener");

	/* A fuzzer's server: services, no listener, no socket. */
	bare = rpc_server_new();
	ok(bare && echo_register(bare) == 0, "a server without listeners");
	rc = rpc_dispatch_raw(bare, ECHO_LISTENER,
	    "/secretfree.test.v1.Echo/Whoami", "", 0, &out, &outlen, &st);
	is_int(rc, RPC_OK, "raw without listeners: OK");
	r = (void *)protobuf_c_message_unpack(
	    &secretfree__test__v1__echo_reply__descriptor, NULL, outlen, out);
	ok(r != NULL, "raw reply unpacks");
	if (r) {
		is_str(r->listener, "raw", "raw listener name without listeners");
		is_int(r->uid, -1, "raw: no peer uid");
		is_str(r->peer, "raw dispatch", "raw: the peer says so");
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	free(out);
	rc = rpc_dispatch_raw(bare, 1u << 7, "/secretfree.test.v1.Echo/Say",
	    "", 0, &out, &outlen, NULL);
	is_int(rc, RPC_PERMISSION_DENIED, "raw: a bit no row names is refused");
	rpc_server_free(bare);
}

int
main(void)
{
	rpc_client *c = NULL, *denied = NULL, *other = NULL, *none = NULL;
	rpc_server *srv;
	rpc_status st;
	uint8_t *out;
	size_t outlen;
	sigset_t set;
	int rc;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	log_init("test_rpc", LOG_LEVEL_WARN);
	snprintf(tmpdir, sizeof tmpdir, "/tmp/sf-test-rpc.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 99;
	snprintf(echo_addr, sizeof echo_addr, "unix:%s/echo/echo.sock", tmpdir);
	snprintf(other_addr, sizeof other_addr, "unix:%s/other.sock", tmpdir);
	snprintf(denied_addr, sizeof denied_addr, "unix:%s/denied.sock", tmpdir);
	snprintf(tight_addr, sizeof tight_addr, "unix:%s/tight.sock", tmpdir);
	snprintf(hasty_addr, sizeof hasty_addr, "unix:%s/hasty.sock", tmpdir);

	rpc_init();
	srv = start_server();
	ok(srv != NULL, "server with five Unix listeners starts");
	if (srv == NULL)
		return tap_done();
	rpc_client_open(echo_addr, NULL, &c);
	rpc_client_open(denied_addr, NULL, &denied);
	rpc_client_open(other_addr, NULL, &other);

	test_round_trip(c);
	test_statuses(c);
	test_unknown_and_denied(c, denied, other);
	test_bad_bodies(c);
	test_limits(c);
	test_deadline(c);
	test_stream(c);
	test_peer(c);
	test_concurrency(c);
	test_socket_modes();
	test_dispatch_raw(srv, c);
	test_peer_keys();
	test_slow_bodies(c);
	test_peer_budget();
	test_body_timeout();
	test_cancel_frees_worker();

	{
		char addr[320];

		snprintf(addr, sizeof addr, "unix:%s/nothing.sock", tmpdir);
		rpc_client_open(addr, NULL, &none);
		rc = rpc_client_call_raw(none, "/secretfree.test.v1.Echo/Say",
		    "", 0, &out, &outlen, 2000, &st);
		is_int(rc, RPC_UNAVAILABLE, "no server at the socket: UNAVAILABLE");
		rpc_client_close(none);
	}

	{
		/* Shutdown with a call in flight and calls waiting for their
		 * message: all cancelled, nothing hung. */
		struct sleeper s = { -1, c };
		slow_chan *ch = slow_chan_open(echo_addr);
		slow_call *slow[3];
		pthread_t t;
		int64_t t0;
		int nerr = 0;

		pthread_create(&t, NULL, sleeper_main, &s);
		slow_open_n(ch, slow, 3);
		t0 = sf_mono_ms();
		rpc_server_shutdown(srv, 100);
		ok(sf_mono_ms() - t0 < 2500,
		    "shutdown returns without waiting for the slow call (%lld ms)",
		    (long long)(sf_mono_ms() - t0));
		pthread_join(t, NULL);
		ok(s.rc != RPC_OK, "the in-flight call ends with an error (%s)",
		    rpc_code_name(s.rc));
		for (int i = 0; i < 3; i++) {
			rc = slow[i] ? slow_call_status(slow[i], 5000, &st) : -1;
			nerr += rc > RPC_OK;
			slow_call_close(slow[i]);
		}
		is_int(nerr, 3, "the calls waiting for their message end with"
		    " an error");
		slow_chan_close(ch);
	}
	rpc_server_free(srv);
	{
		struct stat sst;

		ok(stat(echo_addr + 5, &sst) != 0, "socket removed on free");
	}
	rpc_client_close(c);
	rpc_client_close(denied);
	rpc_client_close(other);
	rpc_fini();
	{
		char cmd[300];

		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
		(void)!system(cmd);
	}
	return tap_done();
}
