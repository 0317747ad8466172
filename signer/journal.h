/*
 * journal.h - the signer's journal (SQLite, WAL, its own file): CAs,
 * every issued certificate, revocations, and the registered device keys
 * (device id -> key fingerprint) for the signer's own second key check.
 *
 * Durability: journal_cert_record() returns only once the row is committed
 * with synchronous=FULL. Concurrent callers are grouped into one
 * transaction by a writer thread (group commit): one fsync serves a batch,
 * and no caller returns before its batch is on disk.
 *
 * One writing connection per database (SQLite 3.40's WAL-reset bug needs
 * two writers), plus one reading connection. The only file of the signer
 * with SQL in it.
 */
#ifndef SF_JOURNAL_H
#define SF_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct journal journal;

int journal_open(const char *path, journal **out, char *why, size_t whylen);
void journal_close(journal *j);

/* ---- CAs ---- */

typedef struct {
	int64_t id;
	char *name;            /* "root", "widgiot", "us-east-1.widgiot" */
	char *generation;      /* "2026a" */
	int role;              /* CA_ROLE_* (common.proto numbers) */
	int64_t parent_id;     /* 0: none (root or external parent) */
	char *product_line;
	char *region;
	int state;             /* CA_STATE_* */
	char *key_label;
	int key_type;          /* PUBKEY_* */
	char *subject;         /* configured subject (for CSRs), "/C=../CN=.." */
	char *serial;          /* uppercase hex; empty while pending */
	int64_t not_before, not_after;
	int path_len;          /* -1: unlimited */
	uint8_t *cert_der;     /* NULL while pending */
	size_t cert_len;
	char *crl_url, *ocsp_url, *ca_issuers_url;  /* published for certs it issues */
	char *permitted;       /* name constraints, newline-separated */
	char *excluded;
	int external_parent;
	char *external_chain;  /* PEM: the outside parent's chain, to its root */
	int64_t created_at;
	int64_t crl_number;
} journal_ca;

/* Insert a CA (id set on return). SF_EEXIST for a taken (name, generation)
 * or key label. */
int journal_ca_insert(journal *j, journal_ca *ca);
/* Set certificate, serial, validity, state and (if not NULL) the external
 * parent's chain of CA id. */
int journal_ca_set_cert(journal *j, int64_t id, const uint8_t *der,
    size_t len, const char *serial, int64_t not_before, int64_t not_after,
    int state, const char *external_chain);
int journal_ca_set_state(journal *j, int64_t id, int state);
/* All CAs, in creation order. *out is malloc'd; free with journal_ca_list_free. */
int journal_ca_list(journal *j, journal_ca **out, size_t *n);
void journal_ca_list_free(journal_ca *v, size_t n);
void journal_ca_fini(journal_ca *ca);
/* A deep copy of src into dst. */
int journal_ca_copy(journal_ca *dst, const journal_ca *src);
/* Atomically increment and return the CA's CRL number. */
int journal_ca_next_crl_number(journal *j, int64_t id, int64_t *out);

/* ---- issued certificates ---- */

typedef struct {
	int64_t ca_id;
	const char *serial;        /* uppercase hex */
	const char *subject;
	const char *device_id;     /* may be "" (server and CA certificates) */
	const uint8_t *key_sha256; /* 32 bytes */
	int64_t not_before, not_after, issued_at;
	const char *requester;
	const char *profile;       /* "device:widgiot", "server", "ca" */
	const char *enrollment_id;
	const char *replaces_serial;
	const uint8_t *der;
	size_t der_len;
} journal_cert;

/*
 * Record an issued certificate durably. Returns 0 once committed;
 * SF_EEXIST if the CA already issued this serial (the certificate must
 * then not be returned); SF_EDB if the commit failed or the row cannot be
 * stored (e.g. no CA with that id).
 */
int journal_cert_record(journal *j, const journal_cert *c);

typedef struct {
	int64_t ca_id;
	char *ca_name;
	char *serial;
	char *subject;
	char *device_id;
	uint8_t key_sha256[32];
	int64_t not_before, not_after, issued_at;
	char *requester, *profile, *enrollment_id;
	int status;                /* CERTIFICATE_STATUS_* */
	int revocation_reason;
	int64_t revoked_at;
	uint8_t *der;
	size_t der_len;
	char *replaces_serial;     /* "" unless a renewal */
} journal_cert_row;

/* Look a certificate up by serial (and CA id, 0 = any CA). SF_ENOTFOUND. */
int journal_cert_get(journal *j, const char *serial, int64_t ca_id,
    journal_cert_row *out);
/* Certificates, optionally filtered by CA id and/or device id, serial
 * order, after `after` (paging), at most limit. */
int journal_cert_list(journal *j, int64_t ca_id, const char *device_id,
    const char *after, size_t limit, journal_cert_row **out, size_t *n);
void journal_cert_row_fini(journal_cert_row *r);
void journal_cert_rows_free(journal_cert_row *v, size_t n);
/* Number of certificates issued by a CA (0 = all). */
int journal_cert_count(journal *j, int64_t ca_id, int64_t *out);
/* Mark revoked (status, time, reason); SF_ENOTFOUND; SF_ESTATE if already. */
int journal_cert_revoke(journal *j, int64_t ca_id, const char *serial,
    int reason, int64_t when);
/* Revoked, unexpired-or-not certificates of a CA, for its CRL: calls cb per row. */
int journal_cert_revoked(journal *j, int64_t ca_id,
    int (*cb)(const char *serial, int64_t revoked_at, int reason, void *arg),
    void *arg);
/*
 * The live certificates of a device at time now (status ACTIVE or
 * PENDING_ACK, notAfter later than now), oldest first: an indexed look-up
 * (a device has few rows). *out (n of them) is the caller's:
 * journal_cert_rows_free.
 */
int journal_cert_live(journal *j, const char *device_id, int64_t now,
    journal_cert_row **out, size_t *n);
/* The certificates recorded under enrollment_id (at most limit), oldest
 * first: journal_cert_rows_free. */
int journal_cert_by_enrollment(journal *j, const char *enrollment_id,
    size_t limit, journal_cert_row **out, size_t *n);

/* A certificate by its key in the journal. */
typedef struct {
	int64_t ca_id;
	const char *serial;
} journal_cert_ref;

/* A device's new state, for a change made in another table's transaction. */
typedef struct {
	const char *device_id;
	int state;                 /* DEVICE_STATE_* */
	const char *reason;        /* free text */
} journal_device_state;

/*
 * Revoke the n certificates refs for reason at time when, in one
 * transaction, durable on return; with dev, that device's state changes
 * in the same transaction (all or nothing). A certificate revoked already
 * keeps its first revocation; changed[i] (if changed is not NULL) is 1
 * for those this call revoked. SF_ENOTFOUND (and nothing written) when
 * dev names no device; SF_EDB.
 */
int journal_cert_revoke_batch(journal *j, const journal_cert_ref *refs,
    size_t n, int reason, int64_t when, const journal_device_state *dev,
    uint8_t *changed);

/* ---- registered device keys ---- */

typedef struct {
	const char *device_id;
	const uint8_t *key_sha256;  /* 32 bytes */
	const char *product_line;
	const char *region;         /* "" = any */
} journal_device;

enum { JOURNAL_DEV_IMPORTED = 1, JOURNAL_DEV_UNCHANGED = 2,
    JOURNAL_DEV_ID_OTHER_KEY = 3, JOURNAL_DEV_KEY_OTHER_ID = 4,
    JOURNAL_DEV_OTHER_PLACE = 5 };

/*
 * Register a batch of devices in one transaction. outcome[i] gets one of
 * JOURNAL_DEV_*: a known id with the same key and the same product line and
 * region is UNCHANGED; a known id with another key ID_OTHER_KEY; the key
 * known under another id KEY_OTHER_ID; a known id and key with another
 * product line or region OTHER_PLACE (refused: not overwritten).
 * Nothing is written for refused records.
 */
int journal_device_register(journal *j, const journal_device *d, size_t n,
    int *outcome);
/* Look a device up. SF_ENOTFOUND. pl and region are malloc'd. */
int journal_device_get(journal *j, const char *device_id,
    uint8_t key_sha256[32], char **product_line, char **region);

/*
 * The signer's record of a device: its registration, its state, and its
 * live certificates (unexpired, ACTIVE or PENDING_ACK) as of a time.
 */
typedef struct {
	char *device_id;
	uint8_t key_sha256[32];
	char *product_line;
	char *region;              /* "" = any */
	int state;                 /* DEVICE_STATE_ ACTIVE, DISABLED, REVOKED */
	char *state_reason;        /* the last change's free text */
	int64_t created_at, updated_at;
	uint32_t live;             /* live certificates */
	char *current_serial;      /* the live ACTIVE one that expires last;
	                              "" if none */
} journal_device_row;

void journal_device_row_fini(journal_device_row *d);   /* zeroes *d */
void journal_device_rows_free(journal_device_row *v, size_t n);
/* A device as of now, into *out. SF_ENOTFOUND. */
int journal_device_info(journal *j, const char *device_id, int64_t now,
    journal_device_row *out);
/* Devices by id after `after` ("" = from the start), in state (0 = any),
 * at most limit, as of now: journal_device_rows_free. */
int journal_device_list(journal *j, const char *after, int state,
    size_t limit, int64_t now, journal_device_row **out, size_t *n);
/*
 * Set a device's state (DEVICE_STATE_ACTIVE or DISABLED) with the
 * admin's reason, durable on return. *changed is 0 when it was in that
 * state already (nothing is written then). SF_ENOTFOUND; SF_ESTATE for a
 * REVOKED device (revocation is final); SF_EINVAL for another state
 * (a device is revoked with journal_cert_revoke_batch).
 */
int journal_device_set_state(journal *j, const char *device_id, int state,
    const char *reason, int64_t now, int *changed);

#endif
