/*
 * leaf.h - what authz reads from a device certificate itself (one the
 * signer issued, presented over TLS or sent for adoption): its serial as
 * the signer prints serials, its CN and its key, believed over anything a
 * request says about it.
 */
#ifndef SF_LEAF_H
#define SF_LEAF_H

#include <stddef.h>
#include <stdint.h>

#include "pubkey.h"

typedef struct {
	char serial[64];         /* upper-case hex */
	char cn[80];
	pubkey_info key;         /* canonical, with its fingerprint */
	int64_t not_before, not_after;
} leaf_info;

/*
 * The first certificate of pem into *l (leaf_fini it). SF_EINVAL (no
 * certificate, a serial the signer does not make, no CN, a key the
 * policy refuses) with why; nothing to release then.
 */
int leaf_read(const char *pem, leaf_info *l, char *why, size_t whylen);
void leaf_fini(leaf_info *l);    /* NULL-safe; zeroes *l */

#endif
