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

typedef struct {
	char serial[64];
	char *certificate_pem;    /* malloc'd */
	char *chain_pem;          /* malloc'd */
	char ca_name[80];
	int64_t not_before, not_after;
} sclient_cert;

int sclient_open(const char *target, int timeout_ms,
    sclient **out);
void sclient_close(sclient *c);

/*
 * Ask the signer to issue. Returns an rpc status (RPC_OK with *out filled);
 * the signer's own status passes through, except that a deadline answers
 * RPC_UNAVAILABLE (DESIGN.md: the signer was too slow, try later). msg
 * gets the signer's message.
 */
int sclient_issue(sclient *c, const uint8_t *csr, size_t csr_len,
    const char *product_line, const char *region, const char *enrollment_id,
    const char *replaces_serial, sclient_cert *out, char *msg, size_t msglen);
void sclient_cert_fini(sclient_cert *sc);

#endif
