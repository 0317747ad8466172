/*
 * crl.h - CRLs, made and signed in the signer (the token signs, nothing
 * else holds a CA key) and stored in the journal; authz fetches and
 * serves them (Signer.GetCrlIndex, Signer.GetCrl).
 *
 * Per CA: issuer = the CA's subject, thisUpdate = when it was made,
 * nextUpdate = thisUpdate + [crl] validity_seconds, a CRL number that only
 * grows, the CA's AKI, one entry per revoked (or superseded) certificate
 * with its revocation date and reason (none for unspecified), and an
 * issuingDistributionPoint equal to the CRL DP the CA's certificates
 * carry. Entries stay until [crl] validity_seconds after the certificate
 * expired, so that each appears on at least one CRL made after its
 * notAfter (RFC 5280 5.1.2.6), and then drop off.
 *
 * Partitions: a CA with crl_shards = N > 1 puts each certificate into
 * shard crl_shard_of(serial) and gives it that shard's own CRL DP
 * (crl_shard_url); shard k's CRL lists only that shard's entries and
 * names that URL in its IDP. Its complete CRL (shard 0, at crl_url, no
 * IDP: it covers every certificate of the CA) is made alongside for
 * consumers that want one file. With N = 1 there is one CRL, shard 0,
 * at crl_url with that IDP. Every CRL of a CA is made together with one
 * CRL number.
 *
 * When: a CA without a CRL gets one; a CA whose revoked count changed
 * since its stored CRL gets new ones (crl_task runs on maint's coalesced
 * kick, so a burst of revocations gives one new CRL number); so does a
 * CA within [crl] refresh_before_seconds of nextUpdate. ACTIVE, RETIRING
 * and RETIRED CAs keep signing their CRLs until the CA certificate
 * expires. A REVOKED CA signs new CRLs only when revocations follow its
 * own (the cascade), never just to renew: its last CRL then lapses at
 * nextUpdate, and relying parties fail closed on it.
 */
#ifndef SF_CRL_H
#define SF_CRL_H

#include <stddef.h>
#include <stdint.h>

#include "signer.h"

/*
 * The partition of a serial (uppercase or lowercase hex): the serial as a
 * big-endian number modulo shards, plus one (1..shards). 0 when shards is
 * 1 or less or the serial is not hex.
 */
int crl_shard_of(const char *serial_hex, int shards);

/*
 * Where CRL shard of a CA whose crl_url is url is published (malloc'd;
 * NULL when out of memory): url itself for shard 0; for shard k, url with
 * "-k" put before a final ".crl", else "-k.crl" appended
 * ("http://crl.example.net/us-east-1.widgiot-3.crl").
 */
char *crl_shard_url(const char *url, int shard);

/*
 * The bytes a reply carrying a CRL of der_len bytes takes, at most: the
 * DER, its PEM form too when with_pem (CaAdmin.GetCrl), and room for the
 * other fields. Compared with RPC_REPLY_MAX before a reply is sent.
 */
size_t crl_reply_bytes(size_t der_len, int with_pem);

/*
 * Make every CRL of c with a new CRL number and thisUpdate now: sign each
 * in the token, verify it with the public key of c's certificate, then
 * store them all in one journal transaction. SF_ESTATE (c has no
 * certificate), SF_EUNAVAIL (its key is not in the token, the token
 * failed), SF_ECRYPTO (a signature that does not verify: nothing stored),
 * SF_EDB; why says which.
 */
int crl_make(signer_ctx *ctx, ca *c, int64_t now, char *why, size_t whylen);

/* 1 if c should get new CRLs at now (see above), else 0. */
int crl_due(signer_ctx *ctx, const ca *c, int64_t now);

/* The background task (maint.h; arg: the signer_ctx): every CA's CRLs
 * that are due, made. The first error, after trying every CA. */
int crl_task(void *arg, int64_t now);

/*
 * The stored CRL of c's shard (0: the complete one), made first if c has
 * none yet. *out is the caller's (journal_crl_fini). SF_EINVAL (shard
 * beyond c's crl_shards; for a CA with one shard, 1 is the same as 0),
 * and crl_make's errors; why says which.
 */
int crl_get(signer_ctx *ctx, ca *c, int shard, journal_crl *out, char *why,
    size_t whylen);

#endif
