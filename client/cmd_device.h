/*
 * cmd_device.h - what the device commands share across their files
 * (cmd_device.c: import, list, show; cmd_devstate.c: disable, enable,
 * revoke; cmd_audit.c: reconcile).
 */
#ifndef SF_CMD_DEVICE_H
#define SF_CMD_DEVICE_H

#include <stddef.h>

#include <jansson.h>

#include "secretfree/v1/registry.pb-c.h"

/* A DeviceState as the CLI prints it ("registered", "revoked"), in buf. */
const char *cmd_device_state_name(int v, char *buf, size_t len);
/* authz's record of a device as --json prints it (a new reference; NULL
 * when out of memory); key_type when its key can be read. */
json_t *cmd_device_json(const Secretfree__V1__Device *d);

#endif
