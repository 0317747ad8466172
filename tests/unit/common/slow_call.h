/*
 * slow_call.h - a client call whose request message goes out when the test
 * says, or never: its headers are sent at once. For tests of the server's
 * intake (common/rpc_intake.c): header-only streams, slow bodies, bodies
 * that never come. Insecure channels only (Unix sockets, test TCP).
 */
#ifndef SLOW_CALL_H
#define SLOW_CALL_H

#include <stddef.h>

#include "rpc.h"

typedef struct slow_chan slow_chan;
typedef struct slow_call slow_call;

/* A channel to target ("unix:/path" or "host:port"); NULL on failure. */
slow_chan *slow_chan_open(const char *target);
void slow_chan_close(slow_chan *ch);             /* NULL ok */

/* Start a call of path ("/pkg.Svc/Method") with a deadline timeout_ms
 * from now, sending only its headers. NULL on failure. */
slow_call *slow_call_open(slow_chan *ch, const char *path, int timeout_ms);
/* Send the request message and half-close. 0 or -1. */
int slow_call_send(slow_call *c, const void *body, size_t len);
/* Wait up to wait_ms for the call's status: its code (and st filled), or
 * -1 if it has not ended by then. */
int slow_call_status(slow_call *c, int wait_ms, rpc_status *st);
/* Cancel the call if it is still running, wait for it, free it. NULL ok. */
void slow_call_close(slow_call *c);

#endif
