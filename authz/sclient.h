/*
 * sclient.h - the signer client: authz's only way to the signer,
 * Signer.Issue over the signer's issuance socket (OpenSSH monitor_wrap.c
 * style: one stub per request the other side answers).
 */
#ifndef SF_SCLIENT_H
#define SF_SCLIENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct sclient sclient;

/* What Signer.Issue answered. */
typedef struct {
	char serial[64];
	char *certificate_pem;    /* malloc'd */
	char *chain_pem;          /* malloc'd */
	char ca_name[80];
	int64_t not_before, not_after;
	int replayed;             /* the signer's earlier certificate for the
	                             enrollment id, returned again */
} sclient_cert;

/*
 * A channel to the signer's issuance socket at target ("unix:/path");
 * every call on it has a deadline of timeout_ms. Opening does not wait for
 * the signer: a call made while it is down fails with SF_EUNAVAIL. 0 with
 * *out (close with sclient_close), or the rpc layer's SF_E* code.
 */
int sclient_open(const char *target, int timeout_ms, sclient **out);
void sclient_close(sclient *c);   /* NULL-safe */

/*
 * Ask the signer to issue a certificate for csr (PEM or DER) of the
 * product line in region, recorded under enrollment_id (replaces_serial:
 * "" for a first enrollment). 0 with *out filled (release it with
 * sclient_cert_fini), or the signer's refusal as an SF_E* code with its
 * message in why: the signer's status maps back through
 * rpc_err_from_status(), so that it reaches the device unchanged, except
 * that a deadline is SF_EUNAVAIL (DESIGN.md: the signer was too slow,
 * try later). A reply without a certificate or a serial is SF_EINTERNAL.
 */
int sclient_issue(sclient *c, const uint8_t *csr, size_t csr_len,
    const char *product_line, const char *region, const char *enrollment_id,
    const char *replaces_serial, sclient_cert *out, char *why, size_t whylen);
void sclient_cert_fini(sclient_cert *sc);   /* NULL-safe; zeroes *sc */

#endif
