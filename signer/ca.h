/*
 * ca.h - the CA hierarchy: root -> product-line intermediate -> issuing CA
 * per region, every key in the token, every certificate in the journal.
 *
 * CAs are named "root", "<product line>" and "<region>.<product line>";
 * each name may have several generations ("2026a", "2026b", ...), of which
 * at most one is active. CA objects live until ca_store_close(): handlers
 * may keep a pointer after the store's lock is released.
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
	EVP_PKEY *pub;           /* the key's public half (borrowed from key) */
	uint8_t ski[20];         /* key identifier (SHA-1 of the key bits) */
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
} ca_issue_meta;

int ca_store_open(const signer_conf *conf, token *t, journal *j,
    ca_store **out, char *why, size_t whylen);
void ca_store_close(ca_store *s);
/* Use a new configuration (SIGHUP); the old one must outlive running calls. */
void ca_store_set_conf(ca_store *s, const signer_conf *conf);

/* The active generation of a CA name (or a given generation). */
ca *ca_find(ca_store *s, const char *name, const char *generation);
/* The active issuing CA for a product line and region, or NULL. */
ca *ca_find_issuing(ca_store *s, const char *product_line, const char *region);
/* A snapshot of every CA (malloc'd array of pointers; free the array). */
size_t ca_list(ca_store *s, ca ***out);

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
 * notAfter capped at the issuer's; sign in the token; verify with the
 * issuer's public key; journal durably. Only then is x returned usable.
 * serial_hex gets the serial. SF_EUNAVAIL (token), SF_EDB (journal),
 * SF_ECRYPTO (the signature did not verify: nothing was journaled).
 */
int ca_issue(ca_store *s, ca *issuer, X509 *x, const ca_issue_meta *meta,
    char serial_hex[64]);

/* Subject of a CA's certificate in "/C=../CN=.." form (malloc'd). */
char *ca_subject_text(const ca *c);

#endif
