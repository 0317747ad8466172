/*
 * token.h - the signer's custody of CA keys in a PKCS#11 token.
 *
 * The module is loaded through p11-kit and called through its function
 * list (no libp11 here: libp11 0.4.12 cannot generate EC keys and its
 * PKCS11_open_session closes every session of the process). token.c and
 * token_session.c (with their private token_int.h) are the only files in
 * the project that include pkcs11.h; CK_RV values become SF_E* codes.
 *
 * Keys are named by label (CKA_LABEL) and by RFC 7512 URI
 * ("pkcs11:token=<token label>;object=<label>;type=private").
 *
 * Thread safety: token_sign() may be called from several threads at once;
 * it takes one of a pool of sessions. Other calls serialise internally.
 *
 * Faults: when the token answers with a session/login/device error
 * (CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED, CKR_USER_NOT_LOGGED_IN,
 * CKR_DEVICE_REMOVED, CKR_DEVICE_ERROR, CKR_TOKEN_NOT_PRESENT,
 * CKR_CRYPTOKI_NOT_INITIALIZED, CKR_KEY_HANDLE_INVALID,
 * CKR_OBJECT_HANDLE_INVALID) an operation re-opens (re-initialising the
 * module for device errors), logs in again, finds its key again and retries
 * once; if that fails too it returns SF_EUNAVAIL. It never blocks forever.
 */
#ifndef SF_TOKEN_H
#define SF_TOKEN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>

typedef struct token token;
typedef struct token_key token_key;

typedef struct {
	const char *module;    /* path of the PKCS#11 module (.so) */
	const char *uri;       /* "pkcs11:token=secretfree" (may carry pin-source=) */
	const char *pin_file;  /* user PIN file: mode 0600 or stricter */
	/* Who may own the PIN file besides the euid and root: the user the
	 * signer runs as once started (it reads the file as root first). */
	uid_t pin_owner;
	int sessions;          /* signing sessions; default 4 */
} token_opts;

/*
 * Load the module, find the one token the URI matches, open the session
 * pool and log in once as the user. The PIN comes from pin_file (refused
 * unless it is a regular file owned by the euid, root or pin_owner, with
 * no group/other permission bits) or, if pin_file is NULL, from the URI's pin-source
 * ("file:/path" or a path; same checks). The PIN is never logged; a URI
 * carrying pin-value is refused.
 * Errors: SF_ECONFIG (bad URI, no/several tokens, PIN file unsafe),
 * SF_EPERM (wrong PIN), SF_EUNAVAIL (module fails); why says which.
 */
int token_open(const token_opts *o, token **out, char *why, size_t whylen);

/* What token_status reports. */
typedef struct {
	int available;             /* a probe just now succeeded */
	uint64_t faults;           /* fault answers seen since start */
	uint64_t repairs;          /* session pool rebuilds that worked */
	uint64_t failed_repairs;
	char last_fault[80];       /* the last fault's text; "" if none */
	int64_t last_fault_at, last_repair_at;   /* Unix time; 0 never */
	int sessions, sessions_busy;
} token_state;

/*
 * The token's state into *out, after a probe through the session pool
 * (C_GetSessionInfo; a repair the pool owes is attempted first, so asking
 * also heals). 0 when the probe worked, else its SF_E* (SF_EUNAVAIL).
 */
int token_status(token *t, token_state *out);
/* Logs out, closes sessions, finalises; NULL-safe. No call on t may be in
 * progress. token_keys may be freed before or after. */
void token_close(token *t);
const char *token_label(const token *t);

/*
 * Generate a key pair in the token, type PUBKEY_EC_P256, PUBKEY_EC_P384,
 * PUBKEY_RSA_2048/3072/4096 or PUBKEY_ED25519 (pubkey.h), with CKA_LABEL
 * label and a random 16-byte CKA_ID. Private key template: CKA_TOKEN,
 * CKA_PRIVATE, CKA_SENSITIVE = TRUE, CKA_EXTRACTABLE = FALSE, CKA_SIGN =
 * TRUE and CKA_DECRYPT, CKA_UNWRAP, CKA_SIGN_RECOVER, CKA_DERIVE,
 * CKA_MODIFIABLE, CKA_COPYABLE = FALSE explicitly (SoftHSM2 2.6.1 then
 * answers C_SetAttributeValue and C_CopyObject with
 * CKR_ACTION_PROHIBITED). The attributes are read back
 * (CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE and CKA_LOCAL must be TRUE
 * too); a key that does not match is destroyed and SF_ECRYPTO returned. SF_EEXIST if label is
 * taken, SF_EKEYTYPE for a type the token cannot make.
 */
int token_generate_key(token *t, const char *label, int type,
    token_key **out);
/* Find a private key (and its public half, by CKA_ID) by label.
 * SF_ENOTFOUND; SF_ECONFLICT if several private keys carry the label. */
int token_find_key(token *t, const char *label, token_key **out);
void token_key_free(token_key *k);   /* NULL-safe; the key stays in the token */

/* Read the usage attributes back and check them as token_generate_key does.
 * 0 if they match; SF_EPERM with why naming the attribute otherwise. */
int token_key_check(token *t, token_key *k, char *why, size_t whylen);

const char *token_key_label(const token_key *k);
int token_key_type(const token_key *k);           /* PUBKEY_* */
EVP_PKEY *token_key_public(const token_key *k);   /* borrowed */
/* malloc'd RFC 7512 URI of the private key. */
char *token_key_uri(const token *t, const token_key *k);
/* NID of the signature algorithm X.509 names for this key:
 * NID_ecdsa_with_SHA256 (P-256), NID_ecdsa_with_SHA384 (P-384),
 * NID_sha256WithRSAEncryption (RSA), NID_ED25519. */
int token_key_sig_nid(const token_key *k);

/*
 * Sign tbs, the complete to-be-signed DER (the token key never leaves the
 * token). ECDSA: SHA-256 / SHA-384 computed here, CKM_ECDSA in the token,
 * and the raw r||s converted to a DER ECDSA-Sig-Value. RSA:
 * CKM_SHA256_RSA_PKCS. Ed25519: CKM_EDDSA over tbs. *siglen: in, the size
 * of sig (at least 1024; SF_EINVAL if the signature does not fit); out,
 * the signature's length. Every started operation is finished (SoftHSM2
 * keeps a pending C_SignInit across logout).
 */
int token_sign(token *t, token_key *k, const uint8_t *tbs, size_t len,
    uint8_t *sig, size_t *siglen);

/* Fault injection for tests: what a faulty HSM or a foreign library in the
 * same process does to our state. */
int token_test_close_all_sessions(token *t);   /* C_CloseAllSessions */
int token_test_logout(token *t);               /* C_Logout */
int token_test_finalize(token *t);             /* C_Finalize */

#endif
