/*
 * journal.h - the signer's journal (SQLite, WAL, its own file): CAs,
 * every issued certificate, revocations, and the registered device keys
 * (device id -> key fingerprint) for the signer's own second key check.
 *
 * Durability: journal_cert_record() returns only once the row is committed
 * with synchronous=FULL. Concurrent callers are grouped into one
 * transaction (group commit, led by one of the callers): one fsync serves
 * a batch, and no caller returns before its batch is on disk.
 *
 * One writing connection per database (SQLite 3.40's WAL-reset bug needs
 * two writers), plus one reading connection. The only file of the signer
 * with SQL in it.
 */
#ifndef SF_JOURNAL_H
#define SF_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "auditchain.h"

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
	int64_t retired_at;    /* RETIRING: since when; RETIRED: when its overlap ended */
	int64_t revoked_at;
	int revocation_reason; /* RFC 5280 CRLReason, when REVOKED */
	int crl_shards;        /* CRL partitions (1: one CRL); fixed at creation */
} journal_ca;

/* Insert a CA (id set on return). SF_EEXIST for a taken (name, generation)
 * or key label. */
int journal_ca_insert(journal *j, journal_ca *ca);
/*
 * A rotation: insert ca as journal_ca_insert does and, in the same
 * transaction, make CA retire_id (0: none) RETIRING with retired_at =
 * ca->created_at. SF_EEXIST as above; SF_ENOTFOUND (nothing written) if
 * retire_id is not ACTIVE.
 */
int journal_ca_rotate(journal *j, journal_ca *ca, int64_t retire_id);
/* Set certificate, serial, validity, state and (if not NULL) the external
 * parent's chain of CA id; in the same transaction CA retire_id (0: none;
 * the generation a rotation replaces) becomes RETIRING. */
int journal_ca_set_cert(journal *j, int64_t id, const uint8_t *der,
    size_t len, const char *serial, int64_t not_before, int64_t not_after,
    int state, const char *external_chain, int64_t retire_id);
/* Set the state of CA id; when is its time: retired_at for RETIRING and
 * RETIRED, revoked_at (and reason) for REVOKED. SF_ENOTFOUND. */
int journal_ca_set_state(journal *j, int64_t id, int state, int64_t when,
    int reason);
/*
 * Revoke CAs in one transaction (revoked_at = when): CA top (0: none) for
 * reason, with its own certificate serial in its parent's scope
 * (parent_id; 0 or "": none) unless that is revoked already, and each of
 * below[0..n) for below_reason. A CA already REVOKED is left as it is.
 */
int journal_ca_revoke(journal *j, int64_t top, int reason,
    const int64_t *below, size_t n, int below_reason, int64_t when,
    int64_t parent_id, const char *serial);
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
	int status;                /* 0 = ACTIVE; PENDING_ACK for a renewal */
	int64_t ack_deadline;      /* PENDING_ACK: revoked unless acknowledged
	                              by then */
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
	int64_t ack_deadline;      /* a renewal's deadline (0: none) */
	int64_t acked_at;          /* when it was acknowledged (0: never) */
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
/* One certificate a batch revocation changed (journal_cert_revoke_batch). */
typedef struct {
	int64_t ca_id;
	char serial[65];
	char device_id[65];
} journal_revoked;

/*
 * Revoke, in one transaction, up to max certificates issued by the CAs
 * ids[0..n) that are not revoked yet (status REVOKED, revoked_at = when,
 * revocation_reason = reason). *out (malloc'd, *nout rows; NULL when
 * none) says which; *remaining counts those of the CAs still not revoked
 * afterwards. max 0 only counts. SF_EDB (nothing changed).
 */
int journal_cert_revoke_batch(journal *j, const int64_t *ids, size_t n,
    int reason, int64_t when, size_t max, journal_revoked **out,
    size_t *nout, int64_t *remaining);
/*
 * The entries of a CA's CRL: its REVOKED and SUPERSEDED certificates
 * whose notAfter is not before expired_before (0: all of them), in serial
 * order; cb per row (a SUPERSEDED one without a reason gets superseded).
 * A non-zero return from cb stops and is returned.
 */
int journal_cert_revoked(journal *j, int64_t ca_id, int64_t expired_before,
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
/*
 * The device certificates (device_id not "") issued at or after since,
 * oldest first: cb(device_id, issued_at, arg) per certificate, whatever
 * its status now. A non-zero return from cb stops and is returned. The
 * rate limits replay them at start-up (rate_replay_device).
 */
int journal_cert_issued_since(journal *j, int64_t since,
    int (*cb)(const char *device_id, int64_t issued_at, void *arg),
    void *arg);
/* The certificates recorded under enrollment_id (at most limit), oldest
 * first: journal_cert_rows_free. */
int journal_cert_by_enrollment(journal *j, const char *enrollment_id,
    size_t limit, journal_cert_row **out, size_t *n);

/*
 * A renewal acknowledged (renew.h): in one transaction, durable on return,
 * the PENDING_ACK certificate serial of CA ca_id becomes ACTIVE with
 * acked_at = when, provided its deadline is later than when; the
 * certificate it replaces (old_serial of that device; "" = none), if
 * ACTIVE still, becomes SUPERSEDED with reason superseded and
 * revoked_at = when; and with new_key the device's registered key becomes
 * new_key (32 bytes). SF_ESTATE (nothing written) when serial is not
 * PENDING_ACK or its deadline has passed; SF_ECONFLICT when new_key is
 * registered to another device; SF_EDB.
 */
int journal_cert_acknowledge(journal *j, int64_t ca_id, const char *serial,
    const char *device_id, const char *old_serial, const uint8_t *new_key,
    int64_t when);
/*
 * Revoke, in one transaction, up to max PENDING_ACK certificates whose
 * deadline is at or before now, for reason, each at its deadline (the
 * time it stopped being acceptable): *out (malloc'd, *n rows; NULL when
 * none) says which. SF_EDB (nothing changed).
 */
int journal_cert_expire_pending(journal *j, int64_t now, int reason,
    size_t max, journal_revoked **out, size_t *n);

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
int journal_cert_revoke_refs(journal *j, const journal_cert_ref *refs,
    size_t n, int reason, int64_t when, const journal_device_state *dev,
    uint8_t *changed);

/* How many certificates of a CA were ever revoked or superseded (only
 * grows): a CRL made when the count differed is out of date. */
int journal_cert_revoked_count(journal *j, int64_t ca_id, int64_t *out);

/* ---- CRLs (journal_crl.c) ---- */

/*
 * One stored CRL: shard 0 is a CA's complete CRL, 1..crl_shards its
 * partitions (a CA with one shard has only shard 0). Every CRL a CA has is
 * made and stored at once, with one CRL number.
 */
typedef struct {
	int64_t ca_id;
	int shard;
	int64_t crl_number;
	int64_t this_update, next_update;
	int64_t revoked_count;     /* entries in this CRL */
	int64_t revocations;       /* journal_cert_revoked_count when made */
	uint8_t *der;              /* NULL when read without it */
	size_t der_len;
} journal_crl;

/* Replace every stored CRL of CA ca_id by v[0..n) in one transaction
 * (durable on return). The rows' ca_id is ignored. SF_EDB. */
int journal_crl_put(journal *j, int64_t ca_id, const journal_crl *v,
    size_t n);
/* The stored CRL of ca_id's shard, with its DER when with_der. *out is
 * the caller's (journal_crl_fini). SF_ENOTFOUND, SF_EDB. */
int journal_crl_get(journal *j, int64_t ca_id, int shard, int with_der,
    journal_crl *out);
void journal_crl_fini(journal_crl *c);   /* NULL-safe; zeroes *c */

/* ---- OCSP responses and delegated responders (journal_ocsp.c) ---- */

/* The profile of a delegated OCSP responder's certificate in certs: it
 * carries id-pkix-ocsp-nocheck, so nobody asks OCSP about it. */
#define JOURNAL_PROFILE_OCSP "ocsp-responder"

/* A certificate as the OCSP responder sees it. */
typedef struct {
	int64_t rowid;             /* certificates are recorded in this order */
	int64_t ca_id;
	char serial[64];
	char cert_id_hash[8];      /* of the stored response: "sha1", ... */
	int status;                /* CERT_* (common.proto) */
	int revocation_reason;
	int64_t revoked_at, not_after;
} journal_ocsp_cert;

/* A response to store (der NULL: delete the stored one). */
typedef struct {
	int64_t ca_id;
	const char *serial;
	const char *cert_id_hash;  /* "sha1", "sha256", "sha384", "sha512" */
	int status;                /* V_OCSP_CERTSTATUS_GOOD, _REVOKED */
	int64_t this_update, next_update;
	const uint8_t *der;
	size_t der_len;
} journal_ocsp_resp;

/* A stored response (der malloc'd; NULL if there is none). */
typedef struct {
	uint8_t *der;
	size_t der_len;
	int status;
	int64_t this_update, next_update;
} journal_ocsp_stored;

/*
 * The certificate serial of CA ca_id (*cert) and its stored response for
 * CertIDs hashed with cert_id_hash (*stored; free stored->der), in one
 * read. SF_ENOTFOUND if that CA never issued that serial; SF_EDB.
 */
int journal_ocsp_get(journal *j, int64_t ca_id, const char *serial,
    const char *cert_id_hash, journal_ocsp_cert *cert,
    journal_ocsp_stored *stored);
/* Store (replace) or delete n responses in one transaction. */
int journal_ocsp_put(journal *j, const journal_ocsp_resp *v, size_t n);
/* The rowid of the newest certificate (0: none). */
int journal_ocsp_last_cert(journal *j, int64_t *rowid);
/*
 * Work for the background task, at most limit rows, *out malloc'd (free):
 * _missing: certificates with rowid in (after, upto], unexpired at now,
 * that have no response with a SHA-1 CertID (delegated responders'
 * certificates left out), in rowid order; _changed: responses of CA ca_id
 * that say good for a certificate revoked or superseded since; _aged:
 * responses of CA ca_id produced at or before `aged`, oldest first.
 */
int journal_ocsp_missing(journal *j, int64_t after, int64_t upto,
    int64_t now, size_t limit, journal_ocsp_cert **out, size_t *n);
int journal_ocsp_changed(journal *j, int64_t ca_id, size_t limit,
    journal_ocsp_cert **out, size_t *n);
int journal_ocsp_aged(journal *j, int64_t ca_id, int64_t aged, size_t limit,
    journal_ocsp_cert **out, size_t *n);

/* Record CA ca_id's delegated responder: its certificate (in certs) and
 * the label of its key in the token. */
int journal_ocsp_responder_add(journal *j, int64_t ca_id, const char *serial,
    const char *key_label, int64_t not_after);
/* CA ca_id's newest responder (serial, key_label malloc'd). SF_ENOTFOUND. */
int journal_ocsp_responder_get(journal *j, int64_t ca_id, char **serial,
    char **key_label, int64_t *not_after);

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
/* The device registered with key key_sha256, its id into id[65].
 * SF_ENOTFOUND. */
int journal_device_by_key(journal *j, const uint8_t key_sha256[32],
    char id[65]);
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
	char *origin;              /* "": factory import; "birth:<manufacturer>" */
	char *birth_serial;        /* the birth certificate's serial, or "" */
	int birth_reuse;           /* the admin allows its birth certificate
	                              once more (journal_device_allow_birth) */
} journal_device_row;

void journal_device_row_fini(journal_device_row *d);   /* zeroes *d */
void journal_device_rows_free(journal_device_row *v, size_t n);
/* A device as of now, into *out. SF_ENOTFOUND. */
int journal_device_info(journal *j, const char *device_id, int64_t now,
    journal_device_row *out);
/*
 * Everything issuance reads of a device, in one statement (one read of
 * the journal, one snapshot): its registration, its state, how many live
 * (active or pending acknowledgement, unexpired) certificates it holds,
 * counted up to cap only (the admission question is "cap reached?", and
 * a bounded count stays cheap however many a device has), what
 * just-in-time provisioning asks (origin, birth_reuse, whether the
 * journal holds any certificate of it), and whether any certificate was
 * issued under enrollment_id ("" asks nothing): most enrollments are
 * new, and need no further read for their replay check.
 */
typedef struct {
	uint8_t key_sha256[32];
	char *product_line;
	char *region;              /* "" = any */
	int state;                 /* DEVICE_STATE_ */
	uint32_t live;             /* up to cap */
	char *origin;              /* "" or "birth:<manufacturer>" */
	int birth_reuse;
	int has_cert;
	int enrollment_seen;       /* a certificate under enrollment_id */
} journal_device_view;

/* SF_ENOTFOUND, SF_ENOMEM, SF_EDB; journal_device_view_fini after. */
int journal_device_view_get(journal *j, const char *device_id,
    const char *enrollment_id, int64_t now, uint32_t cap,
    journal_device_view *out);
void journal_device_view_fini(journal_device_view *v);  /* zeroes *v */
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

/* ---- just-in-time provisioning (journal_mfr.c) ---- */

/*
 * Register a device on first contact with its birth certificate: origin
 * "birth:<manufacturer>", birth_serial. SF_EEXIST when the id is
 * registered already, SF_ECONFLICT when another device has the key.
 */
int journal_device_register_birth(journal *j, const char *device_id,
    const uint8_t key_sha256[32], const char *product_line,
    const char *region, const char *origin, const char *birth_serial);
/*
 * A device's origin (malloc'd), its birth_reuse flag and whether the
 * journal holds any certificate of it (*has_cert). SF_ENOTFOUND.
 */
int journal_device_birth(journal *j, const char *device_id, char **origin,
    int *reuse, int *has_cert);
/* Set a device's birth_reuse flag. SF_ENOTFOUND. */
int journal_device_allow_birth(journal *j, const char *device_id, int reuse);

/* A registered manufacturer CA. */
typedef struct {
	char *name;
	char *product_line;
	char *subject;
	uint8_t spki_sha256[32];
	uint8_t *cert_der;
	size_t cert_len;
	uint8_t *crl_der;          /* NULL: no CRL registered */
	size_t crl_len;
	int64_t crl_number;
	int64_t created_at, updated_at;
} journal_mfr;

void journal_mfr_fini(journal_mfr *m);          /* zeroes *m */
void journal_mfrs_free(journal_mfr *v, size_t n);
/* Insert m (its crl fields ignored). SF_EEXIST for a taken name or a CA
 * (by its key) registered already; *other (may be NULL; 64 bytes) gets
 * the name it is registered under. */
int journal_mfr_insert(journal *j, const journal_mfr *m, char other[64]);
/* The manufacturers of product_line (NULL or "": all), by name. */
int journal_mfr_list(journal *j, const char *product_line, journal_mfr **out,
    size_t *n);
/* One manufacturer. SF_ENOTFOUND. */
int journal_mfr_get(journal *j, const char *name, journal_mfr *out);
/* Replace the manufacturer's CRL, only by a newer number: SF_ENOTFOUND;
 * SF_ESTATE when number is not above the stored one. */
int journal_mfr_set_crl(journal *j, const char *name, const uint8_t *der,
    size_t len, int64_t number);

/* ---- the audit trail (journal_audit.c; DESIGN.md, "Audit trail") ---- */

/*
 * Every change to CAs, certificates, device keys, CRLs and manufacturer CAs
 * appends an event, in the same transaction, from an SQLite trigger; each
 * event's hash chains it to the one before (auditchain.h). Version 4 of
 * the journal starts the chain with a journal-created or journal-upgraded
 * event: what happened before an upgrade is not in it.
 */
typedef struct {
	int64_t seq, at;
	char *kind;            /* "certificate-issued" */
	char *subject;         /* a serial, device id, CA name/generation */
	char *detail;          /* a JSON object, exactly as hashed */
	char prev[65], hash[65];
} journal_audit_event;

/* Up to limit events after after_seq, in seq order; since > 0: from the
 * first event at or after that time on. */
int journal_audit_list(journal *j, int64_t after_seq, int64_t since,
    size_t limit, journal_audit_event **out, size_t *n);
void journal_audit_events_free(journal_audit_event *v, size_t n);
/* The last event the signer wrote (seq 0 and zeros before any). */
int journal_audit_head(journal *j, int64_t *seq, char head[65]);
/*
 * Walk the whole chain in one snapshot: rep names the first broken link
 * (first_bad 0: intact), and then checks that the chain ends where the
 * signer last wrote and that every checkpoint's head is its event's hash
 * (*checkpoints: how many are). Signatures are the caller's (audit.c).
 */
int journal_audit_verify(journal *j, audit_report *rep,
    int64_t *checkpoints);

typedef struct {
	int64_t seq, at;
	char head[65];
	char *key_label;
	uint8_t *signature;    /* DER ECDSA over audit_checkpoint_text() */
	size_t signature_len;
} journal_audit_checkpoint;

/* Record a checkpoint (one per seq: a second for the same seq is kept
 * out). */
int journal_audit_checkpoint_put(journal *j, const journal_audit_checkpoint *c);
/* Up to limit checkpoints with from_seq <= seq <= to_seq (to_seq < 0: no
 * bound; then the last limit of them), in seq order. */
int journal_audit_checkpoints(journal *j, int64_t from_seq, int64_t to_seq,
    size_t limit, journal_audit_checkpoint **out, size_t *n);
void journal_audit_checkpoints_free(journal_audit_checkpoint *v, size_t n);
void journal_audit_checkpoint_fini(journal_audit_checkpoint *c);  /* zeroes */

#endif
