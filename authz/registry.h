/*
 * registry.h - authz's device registry: devices and their factory keys,
 * things with attributes, thing groups, policies, provisioning templates,
 * certificates per device, and enrollments (for idempotent retries and
 * latent retrieval).
 *
 * The storage sits behind this one narrow interface; the registry*.c files
 * are the only ones of authz with SQL in them (SQLite, WAL), so that a
 * PostgreSQL backend can follow without touching callers. ":memory:" opens
 * a private in-memory registry (tests).
 *
 * Thread safety: every function may be called from several threads; writes
 * go through one connection, in one transaction per call.
 *
 * Results: 0 or a negative SF_E* code. Structures a function fills belong
 * to the caller, who releases them with the matching _fini (one) or _free
 * (an array); every _fini and _free accepts NULL, and a failed call leaves
 * nothing to release. Bad arguments (an empty id, a state out of range)
 * are SF_EINVAL; a database failure SF_EDB (SF_EUNAVAIL when the database
 * stayed locked past the busy timeout).
 *
 * Numbers: device states are secretfree.v1.DeviceState values, certificate
 * statuses secretfree.v1.CertificateStatus, enrollment states
 * secretfree.v1.EnrollmentState (pbenum.h names them).
 */
#ifndef SF_REGISTRY_H
#define SF_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

typedef struct registry registry;

/* Open (creating the file and the schema if need be) the registry at
 * path; *out until registry_close. A file holding another schema version
 * is refused (SF_EDB), with a sentence in why. */
int registry_open(const char *path, registry **out, char *why, size_t whylen);
void registry_close(registry *r);   /* NULL-safe */

/* An array of n malloc'd strings, as the list functions return them. */
void registry_strings_free(char **v, size_t n);

/* ---- devices (registry_device.c) ---- */

typedef struct {
	char *device_id;
	uint8_t *spki;           /* canonical DER SubjectPublicKeyInfo */
	size_t spki_len;
	uint8_t key_sha256[32];
	char *product_line;
	char *region;            /* "" = any */
	int state;               /* DEVICE_* (pbenum.h) */
	int64_t created_at, updated_at;
	char *current_serial;    /* "" if none */
	char *origin;            /* "": factory import; "birth:<manufacturer>" */
} registry_device;

void registry_device_fini(registry_device *d);   /* zeroes *d */
void registry_devices_free(registry_device *v, size_t n);

/* The device, into *out. SF_ENOTFOUND if the id is not registered. */
int registry_device_get(registry *r, const char *device_id,
    registry_device *out);

/* One factory record for registry_import; all of it borrowed. */
typedef struct {
	const char *device_id;
	const uint8_t *spki;
	size_t spki_len;
	const uint8_t *key_sha256;   /* 32 bytes, computed by the caller */
	const char *product_line;
	const char *region;          /* "" = any */
} registry_import_rec;

/* Outcomes of registry_import (the numbers recres.h expects). */
enum { REGISTRY_IMPORTED = 1, REGISTRY_UNCHANGED = 2,
    REGISTRY_ID_OTHER_KEY = 3, REGISTRY_KEY_OTHER_ID = 4,
    REGISTRY_OTHER_PLACE = 5 };

/*
 * Import a batch in one transaction; outcome[i] gets REGISTRY_*. A known
 * id with the same key, product line and region is UNCHANGED (a no-op); a
 * known id with another key ID_OTHER_KEY; a key known under another id
 * KEY_OTHER_ID; same id and key with another product line or region
 * OTHER_PLACE. Refused records write nothing; records later in the batch
 * see earlier ones. New devices are DEVICE_REGISTERED. A malformed record
 * refuses the whole batch (SF_EINVAL) before anything is written; on any
 * error every outcome is 0.
 */
int registry_import(registry *r, const registry_import_rec *recs, size_t n,
    int *outcome);
/* registry_import of one device registered by its birth certificate,
 * with its origin ("birth:<manufacturer>"). */
int registry_import_birth(registry *r, const registry_import_rec *rec,
    const char *origin, int *outcome);

/* Devices in id order after `after` ("" = from the start), at most limit
 * (0 = all); filters are ignored when empty / 0. *out (n of them) is the
 * caller's: registry_devices_free. */
int registry_device_list(registry *r, const char *product_line,
    const char *region, int state, const char *after, size_t limit,
    registry_device **out, size_t *n);
/* The device registered with key key_sha256: its id into id[65].
 * SF_ENOTFOUND. */
int registry_device_by_key(registry *r, const uint8_t key_sha256[32],
    char id[65]);
/* Set a device's state (DISABLED, REVOKED, or back to REGISTERED or
 * ACTIVE): any of them, since the registry mirrors what the signer
 * decided. SF_ENOTFOUND. */
int registry_device_set_state(registry *r, const char *device_id, int state);
int registry_device_count(registry *r, int64_t *out);

/* ---- templates and policies (registry_template.c) ---- */

typedef struct {
	char *product_line;
	char *thing_group;        /* "" = none */
	char **policies;          /* names */
	size_t npolicies;
	char **attr_names;        /* attribute templates, values may use */
	char **attr_values;       /* ${device_id} ${serial} ${region} and
	                             ${product_line} */
	size_t nattrs;
} registry_template;

void registry_template_fini(registry_template *t);   /* zeroes *t */
void registry_templates_free(registry_template *v, size_t n);
/* Insert or replace; *t stays the caller's. Policies named must exist
 * (SF_ENOTFOUND otherwise); an attribute value naming another ${...}, or a
 * name given twice, is SF_EINVAL. */
int registry_template_put(registry *r, const registry_template *t);
/* The product line's template, into *out. SF_ENOTFOUND. */
int registry_template_get(registry *r, const char *product_line,
    registry_template *out);
/* Every template, by product line: registry_templates_free. */
int registry_template_list(registry *r, registry_template **out, size_t *n);

/* document must be valid JSON (SF_EINVAL otherwise). Insert or replace. */
int registry_policy_put(registry *r, const char *name, const char *document);
/* *document is malloc'd. SF_ENOTFOUND. */
int registry_policy_get(registry *r, const char *name, char **document);
/* names[i], documents[i], by name; free both with registry_strings_free. */
int registry_policy_list(registry *r, char ***names, char ***documents,
    size_t *n);

/* ---- enrollments and certificates (registry_enroll.c) ---- */

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
	int state;               /* ENROLLMENT_* (pbenum.h) */
	char *replaces_serial;   /* "" for a first enrollment */
	/* Its certificate's (read back; on record, 0 = none / the default
	 * window, registry_renew_window). */
	int64_t ack_deadline;    /* PENDING_ACK: the signer's deadline */
	int64_t renew_after, renew_before;
} registry_enrollment;

void registry_enrollment_fini(registry_enrollment *e);   /* zeroes *e */

/* The enrollment, into *out. SF_ENOTFOUND. */
int registry_enrollment_get(registry *r, const char *enrollment_id,
    registry_enrollment *out);
/* The enrollment of (device, idempotency key). SF_ENOTFOUND (also for an
 * empty key: nothing is recorded under one). */
int registry_enrollment_by_key(registry *r, const char *device_id,
    const char *idempotency_key, registry_enrollment *out);
/* The newest enrollment of (device, CSR fingerprint) created at or after
 * since, without an idempotency key. SF_ENOTFOUND. */
int registry_enrollment_by_csr(registry *r, const char *device_id,
    const uint8_t csr_sha256[32], int64_t since, registry_enrollment *out);

/*
 * Record an issued certificate, in one transaction: the enrollment, the
 * certificate row (status ACTIVE, or PENDING_ACK when e->state is
 * PENDING_ACK), the device made ACTIVE with current_serial (first
 * enrollment only), and the product line's template applied if tmpl is
 * not NULL: the thing (name = device id) with its attributes expanded, its
 * group, and the template's policies attached to the certificate. e and
 * tmpl stay the caller's. SF_EEXIST if (device, idempotency key) is
 * already recorded (a racing retry: read it back with
 * registry_enrollment_by_key), or the enrollment id or serial is taken;
 * SF_ENOTFOUND for an unknown device or a policy that does not exist;
 * SF_EINVAL for another product line's template. Nothing is written then.
 */
int registry_enroll_commit(registry *r, const registry_enrollment *e,
    const registry_template *tmpl);

/* A certificate's status as the signer's journal has it. */
typedef struct {
	int status;              /* CERT_* */
	int revocation_reason;   /* when REVOKED */
	int64_t revoked_at;
} registry_adopt_status;

/*
 * Record an orphan: a certificate the signer issued that the registry
 * never recorded (found by `secretfree audit reconcile`). As
 * registry_enroll_commit (e->idempotency_key is "", e->csr_sha256 zeroes:
 * nothing but its enrollment id finds it again), with the certificate's
 * status as *st says; the device holds it only if it is ACTIVE and the
 * device holds no certificate (the one it holds is the one it received).
 * SF_EEXIST if the serial or the enrollment id is recorded already;
 * SF_EINVAL for a status out of range.
 */
int registry_enroll_adopt(registry *r, const registry_enrollment *e,
    const registry_template *tmpl, const registry_adopt_status *st);
/* Set an enrollment's state. SF_ENOTFOUND. */
int registry_enrollment_set_state(registry *r, const char *enrollment_id,
    int state);

/* A certificate of a device. */
typedef struct {
	char *serial;
	char *ca_name;
	char *enrollment_id;
	int status;              /* CERT_* (pbenum.h) */
	int64_t not_before, not_after, issued_at;
	char **policies;
	size_t npolicies;
	/* The lifecycle (schema version 2). */
	int revocation_reason;
	int64_t revoked_at;
	char *replaces_serial;   /* "" = a first enrollment */
	int64_t ack_deadline;
	int64_t renew_after, renew_before;
	char *renew_note;
	char *device_id;
} registry_cert;

void registry_cert_fini(registry_cert *c);   /* zeroes *c */
void registry_certs_free(registry_cert *v, size_t n);
/* Certificates of a device ("" = of every device), newest first, at most
 * limit (0 = all): registry_certs_free. */
int registry_cert_list(registry *r, const char *device_id, size_t limit,
    registry_cert **out, size_t *n);
/* Certificates of every device in serial order after `after` ("" = from
 * the start), at most limit (0 = all): registry_certs_free. For a
 * comparison with the signer's journal, which lists in the same order. */
int registry_cert_page(registry *r, const char *after, size_t limit,
    registry_cert **out, size_t *n);
/* The certificate serial, into *out. SF_ENOTFOUND. */
int registry_cert_get(registry *r, const char *serial, registry_cert *out);
/* Set a certificate's status (ACTIVE on acknowledgement, SUPERSEDED,
 * REVOKED); for ACTIVE the device's current_serial follows. SF_ENOTFOUND. */
int registry_cert_set_status(registry *r, const char *serial, int status);

/* Outcomes of registry_cert_mirror. */
enum { REGISTRY_MIRROR_UPDATED = 1, REGISTRY_MIRROR_UNCHANGED = 2,
    REGISTRY_MIRROR_UNKNOWN = 3 };

/*
 * Mirror the signer's record of a certificate: status (CERT_*), revocation
 * reason and time (kept for REVOKED and SUPERSEDED), in one transaction.
 * A revoked or superseded certificate that was its device's current one
 * is no longer: the device's current_serial is cleared (and an ACTIVE
 * device becomes REGISTERED, so that it may enroll again). A renewal
 * pending acknowledgement in authz is settled as the signer's status
 * says: ACTIVE (acknowledged there) makes its enrollment ACKNOWLEDGED and
 * the device hold it, REVOKED its enrollment FAILED. *outcome:
 * REGISTRY_MIRROR_*. SF_EINVAL for a bad status.
 */
int registry_cert_mirror(registry *r, const char *serial, int status,
    int reason, int64_t revoked_at, int *outcome);

/* One certificate's status as the signer recorded it. */
typedef struct {
	const char *serial;
	int status;
	int reason;
	int64_t revoked_at;
} registry_cert_update;

/*
 * registry_cert_mirror for n certificates in one transaction (one commit
 * and fsync, not n: a cascade revokes hundreds of thousands): outcome[i]
 * for update i. Every update is checked before anything is written
 * (SF_EINVAL: *bad is its index); a failure undoes the whole call.
 */
int registry_cert_mirror_batch(registry *r, const registry_cert_update *u,
    size_t n, int *outcome, size_t *bad);

/* ---- renewal with acknowledgement (registry_renew.c) ---- */

/*
 * The default renewal window of a certificate valid from not_before to
 * not_after (RFC 9773 in spirit): from two thirds of its validity to five
 * sixths, so that the last sixth is left for retries and the
 * acknowledgement.
 */
void registry_renew_window(int64_t not_before, int64_t not_after,
    int64_t *renew_after, int64_t *renew_before);

/* A device's new key, registered in authz at the acknowledgement. */
typedef struct {
	const uint8_t *spki;       /* canonical DER SubjectPublicKeyInfo */
	size_t spki_len;
	const uint8_t *key_sha256; /* 32 bytes */
} registry_key;

/*
 * The device acknowledged the renewal enrollment_id, and the signer
 * agreed: in one transaction the enrollment becomes ACKNOWLEDGED, its
 * certificate ACTIVE and the device's current one (the thing follows),
 * the certificate it replaces SUPERSEDED with reason superseded and
 * revoked_at = when (if it was not revoked already), and with key (not
 * NULL) the device's registered key becomes key. *superseded (if not
 * NULL) gets the serial that was replaced (malloc'd; "" if none).
 * Acknowledging again changes nothing and succeeds. The signer, asked
 * first, is the source of truth: a FAILED renewal it acknowledged (authz's
 * sweep got ahead of it) is acknowledged too. SF_ENOTFOUND; SF_ESTATE for
 * an enrollment that is no renewal; SF_EEXIST when key is another
 * device's (nothing is changed then).
 */
int registry_renew_ack(registry *r, const char *enrollment_id, int64_t when,
    const registry_key *key, char **superseded);

/*
 * authz's own sweep: every PENDING_ACK certificate whose deadline is at
 * or before now becomes REVOKED (reason, revoked at its deadline, as the
 * signer records it) and its enrollment FAILED, at most max in one
 * transaction. *serials (malloc'd strings, *n of them:
 * registry_strings_free) says which.
 */
int registry_renew_sweep(registry *r, int64_t now, int reason, size_t max,
    char ***serials, size_t *n);

/* Which certificates registry_renew_pull moves: ACTIVE and unexpired,
 * of these devices (ndevices 0: any), product line ("": any) and CA
 * ("": any); at least one selector must be given (SF_EINVAL). */
typedef struct {
	char *const *devices;
	size_t ndevices;
	const char *product_line;
	const char *ca_name;
} registry_renew_sel;

/*
 * Pull the renewal window of the selected certificates forward to
 * [renew_after, renew_before) (renew_after < renew_before, SF_EINVAL
 * otherwise) with note as its explanation, never later than it was:
 * each bound becomes the earlier of the two. *count: the certificates
 * whose window moved (only those take the note).
 */
int registry_renew_pull(registry *r, const registry_renew_sel *sel,
    int64_t renew_after, int64_t renew_before, const char *note,
    uint32_t *count);

/* ---- things and groups (registry_thing.c) ---- */

typedef struct {
	char *name;
	char *device_id;
	char **attr_names, **attr_values;
	size_t nattrs;
	char **groups;
	size_t ngroups;
	char *certificate_serial;
	int64_t created_at;
} registry_thing;

void registry_thing_fini(registry_thing *t);   /* zeroes *t */
void registry_things_free(registry_thing *v, size_t n);
/* The thing, into *out. SF_ENOTFOUND. */
int registry_thing_get(registry *r, const char *name, registry_thing *out);
/* Things by name after `after` ("" or NULL = from the start), of group
 * ("" or NULL = of any), at most limit (0 = all): registry_things_free. */
int registry_thing_list(registry *r, const char *group, const char *after,
    size_t limit, registry_thing **out, size_t *n);
/* Group names with their member counts, by name: registry_strings_free on
 * *names, free() on *counts. */
int registry_group_list(registry *r, char ***names, uint32_t **counts,
    size_t *n);

/* ---- manufacturer CAs, mirrored from the signer (registry_mfr.c) ---- */

typedef struct {
	char *name;
	char *product_line;
	char *certificate_pem;
	char *crl_pem;            /* "" = none */
	int64_t crl_number;
	int64_t created_at, updated_at;
} registry_mfr;

void registry_mfrs_free(registry_mfr *v, size_t n);
/* Record (or replace: the signer decided) the manufacturer name. */
int registry_mfr_put(registry *r, const char *name, const char *product_line,
    const char *certificate_pem);
/* Replace its CRL. SF_ENOTFOUND. */
int registry_mfr_set_crl(registry *r, const char *name, const char *crl_pem,
    int64_t crl_number);
/* The manufacturers of product_line ("" or NULL: all), by name. */
int registry_mfr_list(registry *r, const char *product_line,
    registry_mfr **out, size_t *n);

#endif
