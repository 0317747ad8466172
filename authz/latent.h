/*
 * latent.h - latent issuance for the HTTP front doors (reference 002): an
 * enrollment (or an EST renewal) runs in a thread of its own; the request
 * waits for it at most enroll_wait_ms, and when it is not done by then the
 * device gets 202 with the enrollment id and comes back for the
 * certificate (GET /enrollments/{id}, or the same EST request again).
 *
 * The decisions are enroll.c's and renewal.c's: this only names the
 * enrollment before it is done. An enrollment id is derived from (device,
 * idempotency key) (enroll_id_for), so every request gets a key: the
 * device's `Idempotency-Key`, else the key of the earlier enrollment the
 * same CSR made within the idempotency window, else a random one
 * ("http-" and 32 hex digits). A request repeating one still running
 * (same device, same CSR bytes) waits for that one instead of starting
 * another, and one repeating a request that is done reuses its key: it
 * gets the same certificate back, also when the first was issued by the
 * signer but not recorded (an orphan; see enroll.c). Outcomes are kept in memory for LATENT_KEEP_S seconds, so that
 * a device polling for an enrollment that failed learns why.
 */
#ifndef SF_LATENT_H
#define SF_LATENT_H

#include <stddef.h>
#include <stdint.h>

#include "authz.h"

#define LATENT_KEEP_S 600

typedef struct latent latent;

typedef struct {
	const uint8_t *csr;
	size_t csr_len;
	const char *idempotency_key;      /* "" = none */
	const char *region;               /* "" = the device's or default */
	/* A renewal (EST simplereenroll): the verified TLS client
	 * certificate (PEM) it renews; NULL for a first enrollment. */
	const char *peer_cert;
	const uint8_t *current_key_signature;   /* a new key: keysig.h */
	size_t current_key_signature_len;
	/* A first enrollment by a manufacturer's birth certificate (PEM,
	 * the TLS client certificate on EST simplereenroll): jitp.h.
	 * NULL: none. Never with peer_cert. */
	const char *birth_cert;
} latent_req;

typedef struct {
	int done;                  /* 0: still running (answer 202) */
	int rc;                    /* when done: 0 or an SF_E* code */
	char why[512];             /* rc's sentence */
	char enrollment_id[64];    /* known even when not done */
	char idempotency_key[160];
	int replayed;              /* an earlier result returned again */
	registry_enrollment en;    /* done && rc == 0 */
} latent_result;

/* At most max_running enrollments at a time (more: SF_ELIMIT). */
int latent_new(authz_ctx *ctx, int max_running, latent **out);
/* Wait for the running ones (each bounded by the signer's deadline), then
 * free; NULL-safe. */
void latent_free(latent *l);

/*
 * Run r, waiting for it at most wait_ms. 0 with *out (latent_result_fini
 * it): done or not; the refusals that come before anything runs (the
 * CSR does not parse, the renewal's certificate does not read, too many
 * running, no memory) are in *out too, as done with rc. Returns an SF_E*
 * code only when *out could not be filled at all.
 */
int latent_run(latent *l, const latent_req *r, int wait_ms,
    latent_result *out);

/*
 * What is known in memory about enrollment_id: 0 with *out (running, or
 * done with an error: rc and why; done with success: rc 0 and no en, read
 * it from the registry), or SF_ENOTFOUND.
 */
int latent_lookup(latent *l, const char *enrollment_id, latent_result *out);

void latent_result_fini(latent_result *r);   /* NULL-safe */

#endif
