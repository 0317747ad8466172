/*
 * slow_call.c - client calls that send their request message late or
 * never (slow_call.h), on gRPC core directly: rpc_client sends a call's
 * message with its headers, which is what these tests must not do.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include "slow_call.h"

struct slow_chan {
	grpc_channel *ch;
};

struct slow_call {
	grpc_call *call;
	grpc_completion_queue *cq;
	grpc_metadata_array md_in, trailers;
	grpc_status_code status;
	grpc_slice details;
	grpc_byte_buffer *sent, *reply;
	int started_send, got_status, send_done;
};

/* Tags: the first batch (headers, status) and the message's. */
static char TAG_OPEN, TAG_SEND;

static gpr_timespec
after_ms(int ms)
{
	return gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
	    gpr_time_from_millis(ms, GPR_TIMESPAN));
}

slow_chan *
slow_chan_open(const char *target)
{
	slow_chan *ch = calloc(1, sizeof *ch);
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();

	if (ch)
		ch->ch = grpc_channel_create(target, creds, NULL);
	grpc_channel_credentials_release(creds);
	if (ch && ch->ch == NULL) {
		free(ch);
		ch = NULL;
	}
	return ch;
}

void
slow_chan_close(slow_chan *ch)
{
	if (ch == NULL)
		return;
	grpc_channel_destroy(ch->ch);
	free(ch);
}

slow_call *
slow_call_open(slow_chan *ch, const char *path, int timeout_ms)
{
	slow_call *c = calloc(1, sizeof *c);
	grpc_slice method = grpc_slice_from_copied_string(path);
	grpc_op ops[3];

	if (c == NULL)
		return NULL;
	c->cq = grpc_completion_queue_create_for_next(NULL);
	c->call = grpc_channel_create_call(ch->ch, NULL, GRPC_PROPAGATE_DEFAULTS,
	    c->cq, method, NULL, after_ms(timeout_ms), NULL);
	grpc_slice_unref(method);
	grpc_metadata_array_init(&c->md_in);
	grpc_metadata_array_init(&c->trailers);
	c->details = grpc_empty_slice();
	memset(ops, 0, sizeof ops);
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[1].data.recv_initial_metadata.recv_initial_metadata = &c->md_in;
	ops[2].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[2].data.recv_status_on_client.trailing_metadata = &c->trailers;
	ops[2].data.recv_status_on_client.status = &c->status;
	ops[2].data.recv_status_on_client.status_details = &c->details;
	if (c->call == NULL ||
	    grpc_call_start_batch(c->call, ops, 3, &TAG_OPEN, NULL) !=
	    GRPC_CALL_OK) {
		c->got_status = 1;   /* nothing to wait for */
		slow_call_close(c);
		return NULL;
	}
	return c;
}

int
slow_call_send(slow_call *c, const void *body, size_t len)
{
	grpc_slice s = grpc_slice_from_copied_buffer(body, len);
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_op ops[3];
	int rc;

	grpc_slice_unref(s);
	memset(ops, 0, sizeof ops);
	ops[0].op = GRPC_OP_SEND_MESSAGE;
	ops[0].data.send_message.send_message = bb;
	ops[1].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[2].op = GRPC_OP_RECV_MESSAGE;
	ops[2].data.recv_message.recv_message = &c->reply;
	rc = grpc_call_start_batch(c->call, ops, 3, &TAG_SEND, NULL) ==
	    GRPC_CALL_OK ? 0 : -1;
	if (rc == 0) {
		c->started_send = 1;
		c->sent = bb;   /* until the batch completes */
	} else
		grpc_byte_buffer_destroy(bb);
	return rc;
}

int
slow_call_status(slow_call *c, int wait_ms, rpc_status *st)
{
	gpr_timespec end = after_ms(wait_ms);

	while (!c->got_status || (c->started_send && !c->send_done)) {
		grpc_event ev = grpc_completion_queue_next(c->cq, end, NULL);

		if (ev.type != GRPC_OP_COMPLETE)
			return -1;
		if (ev.tag == &TAG_OPEN)
			c->got_status = 1;
		else
			c->send_done = 1;
	}
	if (st) {
		st->code = (int)c->status;
		snprintf(st->message, sizeof st->message, "%.*s",
		    (int)GRPC_SLICE_LENGTH(c->details),
		    (const char *)GRPC_SLICE_START_PTR(c->details));
	}
	return (int)c->status;
}

void
slow_call_close(slow_call *c)
{
	if (c == NULL)
		return;
	if (c->call) {
		if (!c->got_status)
			grpc_call_cancel(c->call, NULL);
		slow_call_status(c, 60000, NULL);
		grpc_call_unref(c->call);
	}
	if (c->sent)
		grpc_byte_buffer_destroy(c->sent);
	if (c->reply)
		grpc_byte_buffer_destroy(c->reply);
	grpc_slice_unref(c->details);
	grpc_metadata_array_destroy(&c->md_in);
	grpc_metadata_array_destroy(&c->trailers);
	grpc_completion_queue_shutdown(c->cq);
	while (grpc_completion_queue_next(c->cq, gpr_inf_future(
	    GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(c->cq);
	free(c);
}
