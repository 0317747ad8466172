/*
 * ca_int.h - what the three files of the CA module share and nobody else
 * sees: the store's layout, and the pieces of ca.c that creation
 * (ca_create.c) and the external parent's import (ca_external.c) reuse.
 * Not part of the interface (ca.h): nothing outside signer/ca*.c
 * includes this file.
 */
#ifndef SF_CA_INT_H
#define SF_CA_INT_H

#include <pthread.h>

#include "ca.h"

struct ca_store {
	pthread_rwlock_t lock;    /* v and n; a CA's record and certificate */
	pthread_mutex_t admin;    /* one admin change at a time */
	const signer_conf *conf;
	token *tok;
	journal *jn;
	ca **v;
	size_t n;
};

/* Free a CA that is not (or no longer) in the store; NULL-safe. */
void ca_free(ca *c);
/* Compute what a CA with a certificate needs to issue: key id, the
 * extensions it puts into what it issues, its chain. 0 or SF_E*. */
int ca_prepare(ca *c);
/* Append c to the store, which owns it from then on (write lock taken). */
int ca_store_append(ca_store *s, ca *c);
/* 1 for ACTIVE and PENDING: the states that hold a CA's name. */
int ca_state_live(int state);
/*
 * With s->lock held: the CA of that name and generation; without a
 * generation the ACTIVE one, else the last live one (live_only) or the
 * last one of any state. Borrowed.
 */
ca *ca_find_locked(ca_store *s, const char *name, const char *gen,
    int live_only);

/*
 * The two halves of ca_issue. ca_issue_sign sets a fresh serial (into
 * serial_hex), the issuer's name, notAfter capped at the issuer's, those
 * of the issuer's AKI, CRL DP and AIA extensions it has, and the token's
 * signature, checked with the issuer's public key. A root is its own
 * issuer: issuer->cert may be x itself. ca_issue_record journals x as
 * issued by issuer (whose record must already be in the journal).
 */
int ca_issue_sign(ca_store *s, const ca *issuer, X509 *x,
    char serial_hex[64]);
int ca_issue_record(ca_store *s, const ca *issuer, X509 *x,
    const ca_issue_meta *m, const char *serial_hex);

#endif
