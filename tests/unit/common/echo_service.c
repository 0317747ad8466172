#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "echo_service.h"

static int
echo_say(rpc_call *call, const ProtobufCMessage *reqm, ProtobufCMessage *respm,
    void *arg)
{
	const Secretfree__Test__V1__EchoRequest *req = (const void *)reqm;
	Secretfree__Test__V1__EchoReply *resp = (void *)respm;

	resp->text = rpc_call_strdup(call, req->text);
	rpc_call_set_bytes(call, &resp->data, req->data.data, req->data.len);
	if (req->n_tags) {
		resp->tags = rpc_call_alloc(call, req->n_tags * sizeof(char *));
		for (size_t i = 0; i < req->n_tags; i++)
			resp->tags[i] = rpc_call_strdup(call, req->tags[i]);
		resp->n_tags = req->n_tags;
	}
	resp->listener = rpc_call_strdup(call, rpc_call_listener(call));
	return RPC_OK;
}

static int
echo_fail(rpc_call *call, const ProtobufCMessage *reqm, ProtobufCMessage *respm,
    void *arg)
{
	const Secretfree__Test__V1__FailRequest *req = (const void *)reqm;

	return rpc_fail(call, req->code, "%s", req->message);
}

static int
echo_count(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__Test__V1__CountRequest *req = (const void *)reqm;

	for (uint32_t i = 0; i < req->n; i++) {
		Secretfree__Test__V1__EchoReply r =
		    SECRETFREE__TEST__V1__ECHO_REPLY__INIT;

		r.index = i;
		r.text = "chunk";
		if (rpc_call_send(call, &r.base) != 0)
			return RPC_CANCELLED;
	}
	return RPC_OK;
}

static int
echo_sleep(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	const Secretfree__Test__V1__SleepRequest *req = (const void *)reqm;
	Secretfree__Test__V1__EchoReply *resp = (void *)respm;

	for (uint32_t t = 0; t < req->ms; t += 10) {
		if (rpc_call_cancelled(call))
			return rpc_fail(call, RPC_CANCELLED, "cancelled");
		usleep(10000);
	}
	resp->text = "awake";
	return RPC_OK;
}

static int
echo_whoami(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	Secretfree__Test__V1__EchoReply *resp = (void *)respm;

	resp->uid = rpc_call_peer_uid(call);
	resp->pid = rpc_call_peer_pid(call);
	resp->peer = rpc_call_strdup(call, rpc_call_peer(call));
	resp->listener = rpc_call_strdup(call, rpc_call_listener(call));
	resp->text = rpc_call_strdup(call, rpc_call_peer_cert(call) ?
	    rpc_call_peer_cert(call) : "");
	return RPC_OK;
}

static int
echo_bad_reply(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	Secretfree__Test__V1__EchoReply *resp = (void *)respm;

	resp->text = rpc_call_strdup(call, "bad \xff\xfe");
	return RPC_OK;
}

static int
other_ping(rpc_call *call, const ProtobufCMessage *reqm,
    ProtobufCMessage *respm, void *arg)
{
	Secretfree__Test__V1__EchoReply *resp = (void *)respm;

	resp->text = "pong";
	return RPC_OK;
}

static const rpc_method echo_methods[] = {
	{ "Say", RPC_UNARY, echo_say, ECHO_LISTENER },
	{ "Fail", RPC_UNARY, echo_fail, ECHO_LISTENER },
	{ "Count", RPC_SERVER_STREAM, echo_count, ECHO_LISTENER },
	{ "Sleep", RPC_UNARY, echo_sleep, ECHO_LISTENER },
	{ "Whoami", RPC_UNARY, echo_whoami, ECHO_LISTENER },
	{ "Missing", RPC_UNARY, NULL, ECHO_LISTENER },
	{ "BadReply", RPC_UNARY, echo_bad_reply, ECHO_LISTENER },
};

static const rpc_method other_methods[] = {
	{ "Ping", RPC_UNARY, other_ping, OTHER_LISTENER },
};

int
echo_register(rpc_server *srv)
{
	int rc;

	rc = rpc_server_add_service(srv, &secretfree__test__v1__echo__descriptor,
	    echo_methods, sizeof echo_methods / sizeof echo_methods[0], NULL);
	if (rc == 0)
		rc = rpc_server_add_service(srv,
		    &secretfree__test__v1__other__descriptor, other_methods,
		    sizeof other_methods / sizeof other_methods[0], NULL);
	return rc;
}
