/*
 * jitp.h - just-in-time provisioning in authz: the manufacturer CAs
 * mirrored from the signer (registry_mfr.c) as trust anchors, for authz's
 * own check of a birth certificate and for the client CAs of the device
 * TLS listener (rpc_listener_opts' client_ca_generation), which follow a
 * registration without a restart.
 */
#ifndef SF_JITP_H
#define SF_JITP_H

#include <stdint.h>

#include "birth.h"
#include "enroll.h"

/* The listener's callbacks; arg is the enroll_ctx. */
uint64_t jitp_client_ca_generation(void *arg);
/* Every manufacturer CA's PEM, concatenated (malloc'd; NULL: none). */
char *jitp_client_ca_pem(void *arg);
/* A manufacturer was registered or changed: the next TLS connection
 * reloads the client CAs. */
void jitp_changed(enroll_ctx *e);

/*
 * Verify the birth certificate pem against every manufacturer CA authz
 * holds (birth_verify). 0 with *bi and *product_line (malloc'd: the
 * matching manufacturer's); SF_EPERM / SF_EINVAL with why; SF_EDB.
 */
int jitp_verify(enroll_ctx *e, const char *pem, birth_info *bi,
    char **product_line, char *why, size_t whylen);

/*
 * 1 if the certificate pem (its first) is one the registry recorded as
 * issued to a device: the same serial and the same bytes as on record;
 * else 0 (a birth certificate, another CA's, or garbage).
 */
int jitp_cert_ours(registry *reg, const char *pem);
/* 1 if the first certificates of PEM a and b are the same certificate
 * (byte for byte), else 0. */
int jitp_same_cert(const char *a, const char *b);

#endif
