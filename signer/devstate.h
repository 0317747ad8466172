/*
 * devstate.h - the signer's own view of a device beyond its key: the
 * signer, not authz, is the source of truth for whether a device may get
 * certificates. A lock per device serialises everything that concerns
 * one device (issuance, its state changes, the revocation of all its
 * certificates), so that a hostile authz calling Signer.Issue many times
 * at once cannot get past the checks made here with the journal's record
 * of the device: its state, an earlier certificate under the same
 * enrollment id (a replay), a renewal's replaces_serial, and the cap on
 * live certificates (unexpired, ACTIVE or PENDING_ACK).
 */
#ifndef SF_DEVSTATE_H
#define SF_DEVSTATE_H

#include <stddef.h>
#include <stdint.h>

#include "issue.h"

/*
 * The lock of a device, held from the first look at its record to the
 * journal's commit. Striped: unrelated devices may share a stripe, which
 * only makes them wait for each other.
 */
void devstate_lock(const char *device_id);
void devstate_unlock(const char *device_id);

enum { DEVSTATE_ISSUE = 0, DEVSTATE_REPLAYED = 1 };

/*
 * May device device_id, whose key (key_sha256) the caller has checked
 * against its registration, get a new certificate for r? dv is the
 * journal's view of the device, read under the device's lock, which the
 * caller still holds, with its live certificates counted up to the
 * signer's device_live cap. Returns
 *   DEVSTATE_ISSUE     yes: go on and issue;
 *   DEVSTATE_REPLAYED  the journal holds a live certificate of this device
 *                      and key under r->enrollment_id: it is in *out
 *                      (replayed set; release with issue_result_fini),
 *                      and nothing is to be issued, taken from the rate
 *                      or counted against the cap;
 * or a refusal with a sentence in why:
 *   SF_EPERM      the device is DISABLED or REVOKED; the enrollment id is
 *                 another device's or key's; replaces_serial is another
 *                 device's certificate
 *   SF_ESTATE     the enrollment id's certificate is no longer live;
 *                 replaces_serial is not ACTIVE or has expired, or a
 *                 renewal of it is pending acknowledgement; the
 *                 device holds its cap of live certificates and this is
 *                 no renewal that may pass it
 *   SF_ENOTFOUND  replaces_serial names no certificate
 *   SF_EDB, SF_ENOMEM
 * A renewal passes the cap when replaces_serial is an ACTIVE, unexpired
 * certificate of the device that no other live certificate replaces yet
 * (so a device holds at most twice its cap, never more).
 */
int devstate_admit(issuer_ctx *ic, const issue_req *r, const char *device_id,
    const uint8_t key_sha256[32], const journal_device_view *dv,
    issue_result *out, char *why, size_t whylen);

#endif
