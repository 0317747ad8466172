/*
 * crl_pub.h - authz's CRL publisher: a thread that asks the signer which
 * CRLs exist (Signer.GetCrlIndex) every [http] crl_refresh_seconds,
 * fetches those whose CRL number changed (Signer.GetCrl, every shard of
 * the CA), keeps them in memory for the HTTP route GET /crl/<file>, and
 * writes them atomically into [http] crl_dir.
 *
 * Files: each CRL is named after the last segment of its distribution
 * point ("us-east-1.widgiot.crl", "us-east-1.widgiot-3.crl" for shard 3)
 * and published in DER under that name and in PEM under name + ".pem";
 * crls.pem holds every CA's complete CRL in PEM, for consumers that take
 * one file (mosquitto's crlfile). A distribution point whose last segment
 * is not a plain "*.crl" name gives "<ca name>.crl" / "<ca name>-<shard>.crl".
 * Two CAs publishing at the same URL (a rotated CA that kept its crl_url):
 * the newer one is served under that name, with a warning; crls.pem has
 * both.
 *
 * When the signer is away, what was fetched before is served (and logged
 * as stale once its nextUpdate has passed) rather than nothing; at start
 * the files crl_dir holds from a previous run are served until the signer
 * answers.
 */
#ifndef SF_CRL_PUB_H
#define SF_CRL_PUB_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "sclient.h"

#define CRL_PUB_BUNDLE "crls.pem"

typedef struct crl_pub crl_pub;

/*
 * A publisher fed through sc (borrowed: it must outlive the publisher),
 * writing into dir (NULL: memory only; created 0755 if missing) every
 * refresh_s seconds once started. 0 with *out, SF_EIO (dir cannot be
 * made) with why, SF_ENOMEM.
 */
int crl_pub_new(sclient *sc, const char *dir, int refresh_s, crl_pub **out,
    char *why, size_t whylen);
/* Start the thread; its first round runs at once. SF_EINTERNAL. */
int crl_pub_start(crl_pub *p);
/*
 * One round now, in the caller's thread: the index, then every CA whose
 * number changed, then the files. 0 when everything listed is up to
 * date; the signer's SF_E* code when it did not answer (what was served
 * stays); SF_EIO when a file could not be written.
 */
int crl_pub_refresh(crl_pub *p);
/* Stop the thread and free; NULL-safe. */
void crl_pub_free(crl_pub *p);

/*
 * A copy of the published file name (malloc'd into *data), with the
 * nextUpdate it carries (the earliest of crls.pem's). SF_ENOTFOUND.
 */
int crl_pub_get(crl_pub *p, const char *name, uint8_t **data, size_t *len,
    int64_t *next_update);

/* GET /crl/<file> (arg: the crl_pub): application/pkix-crl for DER,
 * application/x-pem-file for PEM, Cache-Control until nextUpdate (no-cache
 * once it has passed); 404 for an unknown name. */
int crl_pub_http(const http_req *rq, http_resp *rs, void *arg);

#endif
