/*
 * issue.h - device and server certificates: the checks the signer makes on
 * its own before it signs, and the certificate it builds from the profile.
 */
#ifndef SF_ISSUE_H
#define SF_ISSUE_H

#include <stddef.h>
#include <stdint.h>

#include "ca.h"
#include "config.h"
#include "journal.h"
#include "rate.h"

typedef struct {
	const signer_conf *conf;
	ca_store *cas;
	journal *jn;
	rate *rl;
} issuer_ctx;

typedef struct {
	const uint8_t *csr;
	size_t csr_len;
	const char *product_line;
	const char *region;
	const char *requester;
	const char *enrollment_id;
	const char *replaces_serial;
} issue_req;

typedef struct {
	char serial[64];
	char *cert_pem;          /* malloc'd */
	const char *chain_pem;   /* the issuing CA's chain (borrowed) */
	const char *ca_name;     /* borrowed */
	char device_id[65];
	char *subject;           /* malloc'd */
	int64_t not_before, not_after;
	uint8_t key_sha256[32];
} issue_result;

/*
 * Issue a device certificate. Each refusal returns its code with a
 * sentence in why (DESIGN.md's table):
 *   SF_EINVAL / SF_ETOOBIG / SF_EKEYTYPE  malformed CSR, bad signature,
 *                                         bad CN, key not allowed
 *   SF_ENOTFOUND   device id not in the signer's own table
 *   SF_EPERM       key, product line or region differs from the table
 *   SF_ELIMIT      per-device or global rate cap
 *   SF_ESTATE      no active issuing CA for the product line and region,
 *                  or it expires within [limits] ca_min_remaining_days
 *   SF_EUNAVAIL    token unavailable
 */
int issue_device(issuer_ctx *ic, const issue_req *r, issue_result *out,
    char *why, size_t whylen);

/* A TLS server certificate (serverAuth) for our own endpoints. */
typedef struct {
	const uint8_t *csr;
	size_t csr_len;
	const char *ca_name;     /* "" = the first active issuing CA */
	char *const *dns;
	size_t ndns;
	char *const *ips;
	size_t nips;
	const char *common_name;
	int validity_days;
} issue_server_req;

int issue_server(issuer_ctx *ic, const issue_server_req *r,
    issue_result *out, char *why, size_t whylen);

void issue_result_fini(issue_result *r);

#endif
