/*
 * registry.h - authz's device registry: devices and their factory keys,
 * things with attributes, thing groups, policies, provisioning templates,
 * certificates per device, and enrollments (for idempotent retries and
 * latent retrieval).
 *
 * The storage sits behind this one narrow interface; registry.c is the only
 * file of authz with SQL in it (SQLite, WAL), so that a PostgreSQL backend
 * can follow without touching callers. ":memory:" opens a private
 * in-memory registry (tests).
 *
 * Thread safety: every function may be called from several threads; writes
 * go through one connection, in one transaction per call.
 *
 * Numbers: device states are secretfree.v1.DeviceState values, certificate
 * statuses secretfree.v1.CertificateStatus, enrollment states
 * secretfree.v1.EnrollmentState (common.proto / provisioning.proto).
 */
#ifndef SF_REGISTRY_H
#define SF_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

typedef struct registry registry;

int registry_open(const char *path, registry **out, char *why, size_t whylen);
void registry_close(registry *r);   /* NULL-safe */

/* ---- devices ---- */

typedef struct {
	char *device_id;
	uint8_t *spki;           /* canonical DER SubjectPublicKeyInfo */
	size_t spki_len;
	uint8_t key_sha256[32];
	char *product_line;
	char *region;            /* "" = any */
	int state;               /* DEVICE_STATE_* */
	int64_t created_at, updated_at;
	char *current_serial;    /* "" if none */
} reg_device;

void reg_device_fini(reg_device *d);          /* NULL-safe; zeroes */
void reg_devices_free(reg_device *v, size_t n);

/* SF_ENOTFOUND if the id is not registered. */
int registry_device_get(registry *r, const char *device_id, reg_device *out);

typedef struct {
	const char *device_id;
	const uint8_t *spki;
	size_t spki_len;
	const uint8_t *key_sha256;   /* 32 bytes, computed by the caller */
	const char *product_line;
	const char *region;          /* "" = any */
} reg_import;

enum { REG_IMPORTED = 1, REG_UNCHANGED = 2, REG_ID_OTHER_KEY = 3,
    REG_KEY_OTHER_ID = 4, REG_OTHER_PLACE = 5 };

/*
 * Import a batch in one transaction; outcome[i] gets REG_*. A known id with
 * the same key, product line and region is UNCHANGED (a no-op); a known id
 * with another key ID_OTHER_KEY; a key known under another id
 * KEY_OTHER_ID; same id and key with another product line or region
 * OTHER_PLACE. Refused records write nothing; records later in the batch
 * see earlier ones. New devices are DEVICE_STATE_REGISTERED.
 */
int registry_import(registry *r, const reg_import *recs, size_t n,
    int *outcome);

/* Devices in id order after `after` ("" = from the start), at most limit;
 * filters are ignored when empty / 0. */
int registry_device_list(registry *r, const char *product_line,
    const char *region, int state, const char *after, size_t limit,
    reg_device **out, size_t *n);
/* Set a device's state (DISABLED / back to REGISTERED or ACTIVE).
 * SF_ENOTFOUND. */
int registry_device_set_state(registry *r, const char *device_id, int state);
int registry_device_count(registry *r, int64_t *out);

/* ---- templates and policies ---- */

typedef struct {
	char *product_line;
	char *thing_group;        /* "" = none */
	char **policies;          /* names */
	size_t npolicies;
	char **attr_names;        /* attribute templates, values may use
	                             ${device_id} ${serial} ${region} ${product_line} */
	char **attr_values;
	size_t nattrs;
} reg_template;

void reg_template_fini(reg_template *t);
/* Insert or replace. Policies named must exist (SF_ENOTFOUND otherwise). */
int registry_template_put(registry *r, const reg_template *t);
int registry_template_get(registry *r, const char *product_line,
    reg_template *out);    /* SF_ENOTFOUND */
int registry_template_list(registry *r, reg_template **out, size_t *n);
void reg_templates_free(reg_template *v, size_t n);

/* document must be valid JSON (SF_EINVAL otherwise). Insert or replace. */
int registry_policy_put(registry *r, const char *name, const char *document);
int registry_policy_get(registry *r, const char *name, char **document);
/* names[i], documents[i]; free with reg_strings_free on both. */
int registry_policy_list(registry *r, char ***names, char ***documents,
    size_t *n);
void reg_strings_free(char **v, size_t n);

/* ---- enrollments and certificates ---- */

typedef struct {
	char *enrollment_id;
	char *device_id;
	char *idempotency_key;   /* "" if none */
	uint8_t csr_sha256[32];
	char *serial;
	char *ca_name;
	char *certificate_pem;
	char *chain_pem;
	char *region;
	int64_t not_before, not_after, created_at;
	int state;               /* ENROLLMENT_STATE_* */
	char *replaces_serial;   /* "" for a first enrollment */
} reg_enrollment;

void reg_enrollment_fini(reg_enrollment *e);

/* SF_ENOTFOUND. */
int registry_enrollment_get(registry *r, const char *enrollment_id,
    reg_enrollment *out);
/* The enrollment of (device, idempotency key). SF_ENOTFOUND. */
int registry_enrollment_by_key(registry *r, const char *device_id,
    const char *idempotency_key, reg_enrollment *out);
/* The newest enrollment of (device, CSR fingerprint) created at or after
 * since, without an idempotency key. SF_ENOTFOUND. */
int registry_enrollment_by_csr(registry *r, const char *device_id,
    const uint8_t csr_sha256[32], int64_t since, reg_enrollment *out);

/*
 * Record an issued certificate, in one transaction: the enrollment, the
 * certificate row (status ACTIVE, or PENDING_ACK when e->state is
 * PENDING_ACK), the device made ACTIVE with current_serial (first
 * enrollment only), and the product line's template applied if tmpl is
 * not NULL: the thing (name = device id) with its attributes expanded, its
 * group, and the template's policies attached to the certificate.
 * SF_EEXIST if (device, idempotency key) is already recorded (a racing
 * retry: read it back with registry_enrollment_by_key).
 */
int registry_enroll_commit(registry *r, const reg_enrollment *e,
    const reg_template *tmpl);

/* Certificates of a device, newest first. */
typedef struct {
	char *serial;
	char *ca_name;
	char *enrollment_id;
	int status;              /* CERTIFICATE_STATUS_* */
	int64_t not_before, not_after, issued_at;
	char **policies;
	size_t npolicies;
} reg_cert;

int registry_cert_list(registry *r, const char *device_id, size_t limit,
    reg_cert **out, size_t *n);
void reg_certs_free(reg_cert *v, size_t n);
/* Set a certificate's status (ACTIVE on acknowledgement, SUPERSEDED,
 * REVOKED); for ACTIVE the device's current_serial follows. SF_ENOTFOUND. */
int registry_cert_set_status(registry *r, const char *serial, int status);
int registry_enrollment_set_state(registry *r, const char *enrollment_id,
    int state);

/* ---- things and groups ---- */

typedef struct {
	char *name;
	char *device_id;
	char **attr_names, **attr_values;
	size_t nattrs;
	char **groups;
	size_t ngroups;
	char *certificate_serial;
	int64_t created_at;
} reg_thing;

void reg_thing_fini(reg_thing *t);
void reg_things_free(reg_thing *v, size_t n);
int registry_thing_get(registry *r, const char *name, reg_thing *out);  /* SF_ENOTFOUND */
int registry_thing_list(registry *r, const char *group, const char *after,
    size_t limit, reg_thing **out, size_t *n);
/* Group names with their member counts. */
int registry_group_list(registry *r, char ***names, uint32_t **counts,
    size_t *n);

#endif
