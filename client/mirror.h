/*
 * mirror.h - the CLI's second step of every admin change: the signer has
 * decided (it is the source of truth), and authz is told to agree. A
 * mirror that cannot be delivered leaves the change in force at the signer
 * and tells the admin to run `secretfree audit reconcile` (exit code
 * CLI_EXIT_MIRROR).
 */
#ifndef SF_MIRROR_H
#define SF_MIRROR_H

#include <stddef.h>

#include "cli.h"
#include "secretfree/v1/common.pb-c.h"
#include "secretfree/v1/registry.pb-c.h"

/*
 * Registry.UpdateCertificateStatus for n updates, in batches. 0, or
 * CLI_EXIT_MIRROR after a message naming what the signer did (what, e.g.
 * "certificate 5F3A... revoked") and why authz did not follow. *unknown
 * (if not NULL) counts serials authz has no record of (server and CA
 * certificates, or orphans: not an error).
 */
int mirror_cert_status(cli *c, const char *what,
    Secretfree__V1__CertificateStatusUpdate *const *updates, size_t n,
    size_t *unknown);

/*
 * Registry.<method> (DisableDevice, EnableDevice or RevokeDevice) for
 * device_id with the admin's reason: authz follows a change of the
 * device's state that the signer made. 0 with *out (if out is not NULL)
 * authz's device (protobuf_c_message_free_unpacked), or CLI_EXIT_MIRROR
 * after a message naming what the signer did (what) and why authz did not
 * follow.
 */
int mirror_device_state(cli *c, const char *what, const char *method,
    const char *device_id, const char *reason, Secretfree__V1__Device **out);

#endif
