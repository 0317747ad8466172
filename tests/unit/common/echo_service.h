/* The test service of tests/proto/secretfree/test/v1/echo.proto, served by
 * the rpc layer (common/rpc*.c) in test_rpc.c and in the echo-server test
 * daemon. */
#ifndef ECHO_SERVICE_H
#define ECHO_SERVICE_H

#include "rpc.h"
#include "secretfree/test/v1/echo.pb-c.h"

/* The test listeners' ids: Echo is served on ECHO_LISTENER, Other on
 * OTHER_LISTENER. */
enum { ECHO_LISTENER = 1 << 0, OTHER_LISTENER = 1 << 1 };

/* Register Echo and Other on srv. */
int echo_register(rpc_server *srv);

#endif
