/*
 * enroll.h - first enrollment: a CSR whose key is the one registered for
 * CN = device id gets a certificate from the signer; the device is
 * registered (thing, certificate, group, policies) as the product line's
 * template says. Idempotent: a retry gets the same certificate.
 */
#ifndef SF_ENROLL_H
#define SF_ENROLL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "csr.h"
#include "rate.h"
#include "registry.h"
#include "sclient.h"

#define ENROLL_LOCKS 64

typedef struct {
	const authz_conf *conf;
	registry *reg;
	sclient *signer;
	rate *rl;
	/* Enrollments of one device are serialised, so that two concurrent
	 * retries do not both reach the signer. */
	pthread_mutex_t locks[ENROLL_LOCKS];
	/* Just-in-time provisioning: bumped at each change of the
	 * manufacturer CAs (jitp.h). */
	uint64_t mfr_generation;
} enroll_ctx;

/* e->conf as SIGHUP last published it (release there, acquire here). */
static inline const authz_conf *
enroll_conf(const enroll_ctx *e)
{
	return __atomic_load_n(&e->conf, __ATOMIC_ACQUIRE);
}

int enroll_ctx_init(enroll_ctx *e, const authz_conf *conf, registry *reg,
    sclient *signer, rate *rl);
void enroll_ctx_fini(enroll_ctx *e);

typedef struct {
	const uint8_t *csr;
	size_t csr_len;
	const char *idempotency_key;   /* "" = none */
	const char *region;            /* "" = the device's, else the default */
	/*
	 * Just-in-time provisioning, whatever door the request came by (gRPC
	 * over TLS, EST, MQTT): the device's birth certificate (PEM, leaf
	 * first) as its transport authenticated it; NULL or "" = none. A
	 * device authz does not know is registered by it (jitp.h); for a
	 * device registered so, it goes to the signer with the request.
	 */
	const char *birth_cert_pem;
	/* 1: birth_cert_pem is only ever a birth certificate (EST
	 * simplereenroll with a client certificate that is not ours, the
	 * MQTT door's birth_certificate field), so a device registered
	 * from a factory list is refused with it; 0 (gRPC: the listener
	 * verified our CAs and the manufacturers' alike): such a device's
	 * client certificate is ours and is ignored here. */
	int birth_only;
} enroll_req;

/*
 * Enroll. 0 with *out the enrollment (release it with
 * registry_enrollment_fini) and *replayed saying whether it is an earlier
 * result returned again; else an SF_E* code whose status is DESIGN.md's
 * (SF_ELIMIT rate, SF_EINVAL / SF_ETOOBIG / SF_EKEYTYPE request or CSR,
 * SF_ENOTFOUND unknown device, SF_EPERM disabled device, other key or
 * region, or the signer's refusal as sclient_issue maps it), with a
 * sentence for the device in why.
 */
int enroll_device(enroll_ctx *e, const enroll_req *r, registry_enrollment *out,
    int *replayed, char *why, size_t whylen);

/* A renewal, for enroll_issue (all borrowed). */
typedef struct {
	const char *replaces_serial;           /* the certificate it renews */
	const uint8_t *current_key_signature;  /* a new key: keysig.h */
	size_t current_key_signature_len;
} enroll_renewal;

/*
 * What enroll_device and renew_device (renew.h) do once the request is
 * checked, the caller holding the device's lock: make the enrollment id
 * (derived from r->idempotency_key, and for a renewal from the serial it
 * renews too), ask the signer (Signer.Issue; with rn a renewal, recorded
 * PENDING_ACK with the signer's deadline, the device keeping its current
 * certificate), record the certificate with the product line's template
 * applied, and read the enrollment back into *out. A racing retry that
 * recorded first is returned instead (*replayed). Errors as
 * enroll_device.
 */
int enroll_issue(enroll_ctx *e, const enroll_req *r, const csr_info *ci,
    const registry_device *dev, const char *region, const enroll_renewal *rn,
    registry_enrollment *out, int *replayed, char *why, size_t whylen);

/* The lock serialising the enrollments and renewals of device id. */
pthread_mutex_t *enroll_device_lock(enroll_ctx *e, const char *device_id);
/* What Enroll and Renew refuse before the CSR is parsed: the global rate
 * (SF_ELIMIT), an empty CSR, an idempotency key that is not at most 128
 * printable ASCII characters (SF_EINVAL); why says which. */
int enroll_request_check(enroll_ctx *e, size_t csr_len,
    const char *idempotency_key, char *why, size_t whylen);

/*
 * The enrollment id enroll_issue gives a request with idempotency key key
 * (not "") of device_id: a first enrollment (renews "") or a renewal of
 * the certificate serial renews. For front doors that must name an
 * enrollment before it is done (http latent issuance). 0, SF_EINVAL (no
 * key), SF_ECRYPTO, SF_ENOMEM.
 */
int enroll_id_for(const char *device_id, const char *renews, const char *key,
    char out[64]);

/* The PEM bundle FetchCertificate serves (leaf, then chain), malloc'd,
 * with its length and SHA-256. */
int enroll_bundle(const registry_enrollment *en, char **bundle, size_t *len,
    uint8_t sha256[32]);

#endif
