/*
 * signer_client.h - authz's only way to the signer: Signer.Issue over the
 * signer's issuance socket (OpenSSH monitor_wrap.c style: one stub per
 * request the other side answers).
 */
#ifndef SF_SIGNER_CLIENT_H
#define SF_SIGNER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct signer_client signer_client;

typedef struct {
	char serial[64];
	char *certificate_pem;    /* malloc'd */
	char *chain_pem;          /* malloc'd */
	char ca_name[80];
	int64_t not_before, not_after;
} signer_cert;

int signer_client_open(const char *target, int timeout_ms,
    signer_client **out);
void signer_client_close(signer_client *c);

/*
 * Ask the signer to issue. Returns an rpc status (RPC_OK with *out filled);
 * the signer's own status passes through, except that a deadline answers
 * RPC_UNAVAILABLE (DESIGN.md: the signer was too slow, try later). msg
 * gets the signer's message.
 */
int signer_issue(signer_client *c, const uint8_t *csr, size_t csr_len,
    const char *product_line, const char *region, const char *enrollment_id,
    const char *replaces_serial, signer_cert *out, char *msg, size_t msglen);
void signer_cert_fini(signer_cert *sc);

#endif
