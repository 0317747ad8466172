/*
 * token_int.h - what the token's files share (token.c: the key operations;
 * token_session.c: the PIN, the slot, the session pool and its repair).
 * Private to signer/token*.c: nothing else includes it.
 */
#ifndef SF_TOKEN_INT_H
#define SF_TOKEN_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include <p11-kit/pkcs11.h>

#include "token.h"
#include "token_uri.h"

enum { FAULT_NONE = 0, FAULT_SESSION = 1, FAULT_MODULE = 2 };

struct token {
	CK_FUNCTION_LIST *f;
	int initialized;           /* token_open's C_Initialize succeeded */
	token_uri uri;             /* [token] uri: which token */
	CK_SLOT_ID slot;
	char label[33];            /* CKA token label, trailing blanks cut */
	char *pin;                 /* PIN_PAGE bytes, mlock'd, NUL-terminated */
	size_t pinlen;
	EVP_MD *sha256, *sha384;
	pthread_mutex_t admin;     /* serialises generate/find (labels) */

	pthread_mutex_t mu;        /* guards the pool state below */
	pthread_cond_t cv;
	CK_SESSION_HANDLE *sess;   /* CK_INVALID_HANDLE when closed */
	int *idle;                 /* stack of indexes of idle sessions */
	int nsess, nidle, busy;
	int exclusive;             /* a repair is running or waiting to */
	int need;                  /* FAULT_* the next taker must repair */
	uint64_t gen;              /* bumped by every repair */
	/* For token_status (under mu). */
	uint64_t faults, repairs, failed_repairs;
	CK_RV last_fault;
	int64_t last_fault_at, last_repair_at;
	int repair_failing;        /* the last repair failed */
};

/* A session taken from the pool. */
typedef struct {
	int idx;
	CK_SESSION_HANDLE h;
	uint64_t gen;
} tsess;

/*
 * One attempt of an operation on a session. Returns 0 or SF_E*; *crv gets
 * the CK_RV that failed, which decides whether the pool needs repair and
 * whether the operation is tried again.
 */
typedef int (*token_fn)(token *, const tsess *, void *, CK_RV *);

/* The FAULT_* a CK_RV calls for (FAULT_NONE: the pool is fine). */
int fault_class(CK_RV rv);

/* A CK_RV as an SF_E* code; 0 for CKR_OK. */
int rv_err(CK_RV rv);

/* CKR_OK if session s is logged in, else why not. */
CK_RV session_logged_in(token *t, CK_SESSION_HANDLE s);

/*
 * Run fn on a pooled session; after a fault, once more on a repaired pool.
 * what and label (of the key, may be NULL) name the operation in logs.
 */
int token_run(token *t, token_fn fn, void *arg, const char *what,
    const char *label);

#endif
