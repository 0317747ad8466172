/*
 * rpc.c - what both sides of the gRPC core <-> protobuf-c layer share
 * (rpc.h): process-wide set-up and gRPC's own logging, the status codes and
 * their one mapping to and from SF_E*, and the small gRPC helpers
 * (channel arguments, deadlines, byte buffers, completion queues) that
 * rpc_server.c and rpc_client.c both use.
 */
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "err.h"
#include "log.h"
#include "rpc_int.h"
#include "util.h"

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
/* gRPC helpers of both sides.                                          */

void
rpc_arg_int(grpc_arg *a, const char *key, int value)
{
	a->type = GRPC_ARG_INTEGER;
	a->key = (char *)key;
	a->value.integer = value;
}

char *
rpc_read_text(const char *path)
{
	char *buf = NULL;
	size_t len = 0;

	if (sf_read_file(path, 1 << 20, (uint8_t **)&buf, &len) != 0)
		return NULL;
	return buf;  /* sf_read_file NUL-terminates */
}

void
rpc_free_secret(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

gpr_timespec
rpc_forever(void)
{
	return gpr_inf_future(GPR_CLOCK_REALTIME);
}

gpr_timespec
rpc_after_ms(int ms)
{
	return gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
	    gpr_time_from_millis(ms, GPR_TIMESPAN));
}

grpc_slice
rpc_buffer_slice(grpc_byte_buffer *bb)
{
	grpc_byte_buffer_reader r;
	grpc_slice s;

	if (!grpc_byte_buffer_reader_init(&r, bb))
		return grpc_empty_slice();
	s = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	return s;
}

void
rpc_cq_drain(grpc_completion_queue *cq)
{
	grpc_event ev;

	grpc_completion_queue_shutdown(cq);
	do
		ev = grpc_completion_queue_next(cq, rpc_forever(), NULL);
	while (ev.type != GRPC_QUEUE_SHUTDOWN);
	grpc_completion_queue_destroy(cq);
}
