/*
 * ocsp_cache.h - authz's in-memory cache of OCSP responses, keyed by what
 * a request asks about (its CertIDs: ocspmsg_req_key), each kept until
 * its nextUpdate, so that repeated queries never reach the signer and are
 * still answered while the signer is away.
 *
 * Bounded: past max_entries the oldest entry goes. Keys are hashed with a
 * per-process secret, so chosen CertIDs cannot pile into one bucket. Each
 * entry remembers the serials it answers for, so that a revocation
 * mirrored into authz drops the responses that no longer hold. Safe to
 * use from several threads.
 */
#ifndef SF_OCSP_CACHE_H
#define SF_OCSP_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct ocsp_cache ocsp_cache;

/* A cache of at most max_entries (0: a cache that keeps nothing). NULL if
 * out of memory. */
ocsp_cache *ocsp_cache_new(size_t max_entries);
void ocsp_cache_free(ocsp_cache *c);   /* NULL-safe */

/*
 * The response kept for key, if its next_update is still after now: 0
 * with *der (malloc'd copy), *len and *next_update; SF_ENOTFOUND (never
 * kept, expired, dropped). NULL-safe (SF_ENOTFOUND).
 */
int ocsp_cache_get(ocsp_cache *c, const uint8_t *key, size_t keylen,
    int64_t now, uint8_t **der, size_t *len, int64_t *next_update);
/*
 * Keep a copy of der for key until next_update (replacing what was kept),
 * answering for serials (comma-separated uppercase hex). Nothing is kept
 * if next_update is not after now. 0, SF_ENOMEM. NULL-safe.
 */
int ocsp_cache_put(ocsp_cache *c, const uint8_t *key, size_t keylen,
    const char *serials, const uint8_t *der, size_t len, int64_t next_update,
    int64_t now);
/* Drop every response that answers for serial; how many. NULL-safe. */
size_t ocsp_cache_forget(ocsp_cache *c, const char *serial);
/* How many responses are kept. */
size_t ocsp_cache_count(ocsp_cache *c);

#endif
