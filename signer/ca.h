/*
 * ca.h - the CA hierarchy: root -> product-line intermediate -> issuing CA
 * per region, every key in the token, every certificate in the journal.
 *
 * CAs are named "root", "<product line>" and "<region>.<product line>";
 * each name may have several generations ("2026a", "2026b", ...), of which
 * at most one is active. CA objects live until ca_store_close(): handlers
 * may keep a pointer after the store's lock is released.
 *
 * A generation's life: PENDING (external parent, until its certificate is
 * imported) -> ACTIVE (the one that issues) -> RETIRING (a rotation made a
 * newer one ACTIVE: still valid, still signs its CRL and OCSP, issues
 * nothing) -> RETIRED (ca_retire: the overlap is over). Any of them may
 * become REVOKED (ca_revoke).
 */
#ifndef SF_CA_H
#define SF_CA_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "config.h"
#include "journal.h"
#include "token.h"

typedef struct ca ca;
typedef struct ca_store ca_store;

struct ca {
	journal_ca rec;          /* the journal row (rec.state may change) */
	token_key *key;          /* NULL if the token lacks the key */
	X509 *cert;              /* NULL while pending */
	/* The CA's public key: its certificate's (borrowed from cert), or
	 * while pending the token's (borrowed from key). What the CA signs
	 * is verified with the certificate's key, never the token's. */
	EVP_PKEY *pub;
	uint8_t ski[20];         /* its certificate's SKI, else SHA-1 of
	                          * the key bits */
	/* Set by the key checks (ca_keys.c); read through ca_key_usable()
	 * and ca_key_problem(). */
	int key_bad;             /* the key is not bound to the certificate */
	char key_problem[256];   /* why the CA cannot sign; "" if it can */
	/* Extensions every certificate it issues carries. */
	X509_EXTENSION *ext_aki, *ext_crldp, *ext_aia;
	/* rec.crl_shards > 1: shard k's CRL DP at [k - 1] (crl.h), used
	 * instead of ext_crldp. */
	X509_EXTENSION **ext_crldp_shard;
	char *chain_pem;         /* this CA first, up to its root */
	ca *parent;              /* NULL for the root or an external parent */
};

typedef struct {
	int role;                     /* CA_ROLE_* */
	const char *product_line;
	const char *region;
	int key_type;                 /* PUBKEY_*; 0 = configured default */
	const char *subject;          /* NULL/"" = configured template */
	int validity_days;            /* 0 = configured default */
	int has_path_len;
	int path_len;                 /* -1 unlimited */
	char *const *permitted;
	size_t npermitted;
	char *const *excluded;
	size_t nexcluded;
	const char *crl_url, *ocsp_url, *ca_issuers_url;  /* "" = template */
	int external_parent;
	const char *generation;       /* NULL/"" = <year> + first free letter */
	const char *display_name;     /* ${display_name} in subjects; "" = configured */
	int crl_shards;               /* 0 = [defaults] crl_shards */
} ca_create_req;

/* What goes into the journal with a certificate a CA issues. */
typedef struct {
	const char *profile;          /* "device:widgiot", "server", "ca" */
	const char *device_id;
	const uint8_t *key_sha256;
	const char *requester;
	const char *enrollment_id;
	const char *replaces_serial;
	int64_t ack_deadline;         /* 0: ACTIVE; else journaled PENDING_ACK,
	                                 revoked unless acknowledged by then */
} ca_issue_meta;

int ca_store_open(const signer_conf *conf, token *t, journal *j,
    ca_store **out, char *why, size_t whylen);
void ca_store_close(ca_store *s);
/* Use a new configuration (SIGHUP); the old one must outlive running calls. */
void ca_store_set_conf(ca_store *s, const signer_conf *conf);

/* The active generation of a CA name (or a given generation); without an
 * active one, the newest. */
ca *ca_find(ca_store *s, const char *name, const char *generation);
/* The newest generation of a CA name in state (CA_STATE_*), or NULL. */
ca *ca_find_state(ca_store *s, const char *name, int state);
/* The active issuing CA for a product line and region, or NULL. */
ca *ca_find_issuing(ca_store *s, const char *product_line, const char *region);
/* A snapshot of every CA (malloc'd array of pointers; free the array). */
size_t ca_list(ca_store *s, ca ***out);
/*
 * The store's read lock. A CA's record (state, serial, validity, the
 * external chain, retirement and revocation), its certificate, chain and
 * extensions change under the write lock (ca_import_cert, rotation,
 * retirement, revocation) and old strings are freed then: whoever reads
 * more than the fields that never change (name, generation, role, product
 * line, region, key label, key, parent) holds the read lock meanwhile.
 * No ca_* call may be made while holding it, except ca_key_usable,
 * ca_key_problem, ca_subject_text and ca_state_name.
 */
void ca_store_read_lock(ca_store *s);
void ca_store_read_unlock(ca_store *s);
/*
 * c's certificate (NULL while pending) and state, read under the read
 * lock. A certificate, once there, never changes, and neither do the
 * chain, validity and extensions ca_import_cert set with it: after
 * ca_cert returned non-NULL they may be read without the lock.
 */
X509 *ca_cert(ca_store *s, const ca *c);
int ca_state(ca_store *s, const ca *c);

/*
 * Create a CA (key generated in the token). On success *out is the new CA;
 * with external_parent it is PENDING and *csr_pem (malloc'd) holds its
 * CSR. Errors: SF_EINVAL (bad request), SF_EEXIST (exists), SF_ESTATE
 * (no parent, product line not configured, parent's pathLen exhausted),
 * SF_EUNAVAIL (token); why says which.
 */
int ca_create(ca_store *s, const ca_create_req *req, ca **out,
    char **csr_pem, char *why, size_t whylen);
/* A CSR (PEM) for an existing CA's key. */
int ca_export_csr(ca_store *s, ca *c, const char *subject, char **csr_pem,
    char *why, size_t whylen);
/* Import an externally signed certificate for a PENDING CA. */
int ca_import_cert(ca_store *s, ca *c, const char *cert_pem,
    const char *chain_pem, char *why, size_t whylen);

/*
 * Finish and issue x under issuer: serial, issuer name, AKI, CRL DP, AIA,
 * validity cut to the issuer's; check it against meta->profile (lint.h);
 * sign in the token; verify with the public key of the issuer's
 * certificate; journal durably. Only then is x returned usable.
 * serial_hex gets the serial. SF_EUNAVAIL (token, or the issuer's key is
 * not bound to its certificate), SF_EINTERNAL (the linter refused x: the
 * log names the rule; nothing was signed), SF_EDB (journal), SF_ECRYPTO
 * (the signature did not verify: nothing was journaled).
 */
int ca_issue(ca_store *s, ca *issuer, X509 *x, const ca_issue_meta *meta,
    char serial_hex[64]);

/*
 * 0 if c may issue now: ACTIVE, with a certificate that has not expired
 * and has at least [limits] ca_min_remaining_days left, and its key in the
 * token. SF_ESTATE (SF_EUNAVAIL: no key) with why naming the CA, its
 * generation and what to do. ca_issue refuses an inactive or expired
 * issuer on its own, without the message.
 */
int ca_usable(ca_store *s, const ca *c, char *why, size_t whylen);

/* ---- the CA keys bound to their certificates (ca_keys.c) ---- */

/*
 * Check every CA's key in the token against the CA: the private key's
 * attributes read back (token_key_check), and for a CA with an unexpired
 * certificate the public key the token holds under its label equal to the
 * certificate's, and a challenge signed by the private key verified with
 * the certificate's key. A CA that fails (or whose key is missing) is
 * unavailable: it signs nothing (certificates, CRLs, OCSP responses, CSRs)
 * until a later check passes; each is logged with the reason, and one that
 * passes again is logged too. ca_store_open runs it; SIGHUP runs it again.
 * Returns the number of unavailable CAs (expired ones are not counted);
 * first (may be NULL) names the first of them and why.
 */
size_t ca_store_check_keys(ca_store *s, char *first, size_t firstlen);
/* 1 if c's key is in the token and passed the last check. */
int ca_key_usable(const ca *c);
/* Why c cannot sign into buf ("" if it can). */
void ca_key_problem(const ca *c, char *buf, size_t len);

/* Subject of a CA's certificate in "/C=../CN=.." form (malloc'd). */
char *ca_subject_text(const ca *c);
/* "active", "retiring", ... for a CA_STATE_* (static). */
const char *ca_state_name(int state);

/* ---- rotation (ca_rotate.c) ---- */

typedef struct {
	const char *name;
	int key_type;             /* PUBKEY_*; 0 = the old generation's */
	const char *generation;   /* NULL/"" = <year> + first free letter */
} ca_rotate_req;

/*
 * A new generation of CA r->name: a new key in the token, a certificate
 * from the parent's ACTIVE generation, the old generation's subject, name
 * constraints and pathLen, the role's configured validity, and URLs from
 * the configured templates in which a ${name} without ${generation}
 * becomes "<name>-<generation>" (generations must not share a CRL). The
 * old ACTIVE generation becomes RETIRING in the same journal transaction.
 * With an external parent the new generation is PENDING and *csr_pem
 * (malloc'd) its CSR; the old one stays ACTIVE until the certificate is
 * imported (ca_import_cert retires it then). *out is the new generation,
 * *prev the old one. SF_EINVAL (bad request), SF_ENOTFOUND (no such CA),
 * SF_ESTATE (the root, no ACTIVE generation, a rotation already pending,
 * a parent that cannot issue, URLs that would collide), SF_EEXIST
 * (generation taken), SF_EUNAVAIL (token); why says which.
 */
int ca_rotate(ca_store *s, const ca_rotate_req *r, ca **out, ca **prev,
    char **csr_pem, char *why, size_t whylen);

/*
 * End the overlap of a RETIRING generation (generation NULL/"": the only
 * RETIRING one): it becomes RETIRED; it still signs its CRL. A RETIRED
 * one is left as it is (0). SF_ENOTFOUND, SF_EINVAL (several RETIRING:
 * name one), SF_ESTATE (ACTIVE, PENDING or REVOKED; a CA it certified is
 * still live: rotate and retire that one first).
 */
int ca_retire(ca_store *s, const char *name, const char *generation,
    ca **out, char *why, size_t whylen);

/* ---- revocation (ca_revoke.c) ---- */

/*
 * Which generation of name a revocation means: that generation, or
 * without one the CA's only generation. SF_ENOTFOUND; SF_EINVAL when the
 * name has several generations and none was named (why lists them).
 */
int ca_pick(ca_store *s, const char *name, const char *generation,
    ca **out, char *why, size_t whylen);

typedef struct {
	int reason;          /* RFC 5280 CRLReason (revoke_reason_ok) */
	int cascade;         /* also every certificate and CA below it */
	size_t max;          /* certificates per call (> 0) */
} ca_revoke_req;

typedef struct {
	journal_revoked *certs;   /* this call's revocations (malloc'd) */
	size_t ncerts;
	size_t cas_revoked;       /* CAs that became REVOKED in this call */
	int64_t remaining;        /* certificates below still to revoke */
	const ca **changed;       /* CAs whose CRL this call changed (malloc'd
	                           * array, borrowed CAs) */
	size_t nchanged;
} ca_revoke_result;

/*
 * Revoke CA c (not the root): REVOKED in the journal (no issuance from
 * then on) and its own certificate revoked in its parent's scope, so that
 * the parent's CRL lists it. With cascade, every CA below it is REVOKED
 * too, and each call revokes up to r->max of the certificates they issued
 * that are not revoked yet, in one journal transaction, for cACompromise
 * when c is revoked for keyCompromise and else for c's reason. Without
 * cascade, a CA below it that is still live is refused. Calling again
 * (same reason) carries on where the last call stopped: 0 with nothing
 * left. SF_EINVAL (reason), SF_ESTATE (root; revoked already for another
 * reason; live CAs below without cascade), SF_EDB. Free out with
 * ca_revoke_result_fini.
 */
int ca_revoke(ca_store *s, ca *c, const ca_revoke_req *r,
    ca_revoke_result *out, char *why, size_t whylen);
void ca_revoke_result_fini(ca_revoke_result *r);
/* The reason the certificates below a CA revoked for reason get. */
int ca_revoke_leaf_reason(int reason);

#endif
