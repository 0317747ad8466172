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
#include "pubkey.h"

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
/* Append c to the store, which owns it from then on (write lock taken);
 * in the same step retire (if not NULL) becomes RETIRING. */
int ca_store_append(ca_store *s, ca *c, ca *retire);
/* 1 for ACTIVE and PENDING: the states that hold a CA's name. */
int ca_state_live(int state);
/*
 * With s->lock held: the CA of that name and generation; without a
 * generation the ACTIVE one, else the last live one (live_only) or the
 * last one of any state. Borrowed.
 */
ca *ca_find_locked(ca_store *s, const char *name, const char *gen,
    int live_only);

/* With s->lock held: "2026a (active), 2026b (pending)", the generations
 * of name whose state states() accepts (NULL: all), into buf. Returns how
 * many there are. */
size_t ca_generations_text(ca_store *s, const char *name,
    int (*states)(int), char *buf, size_t len);

/* ---- the steps of making a CA generation (ca_create.c), which a
 * rotation (ca_rotate.c) shares ---- */

/* What the steps hand on to each other. */
typedef struct {
	const ca_create_req *r;  /* creation's request; NULL in a rotation */
	const signer_conf *cf;   /* the configuration at the start */
	const product_conf *pc;  /* the product line's; NULL for a root */
	ca *c;                   /* the new CA, ours until it is recorded */
	ca *parent;              /* its signer; NULL: root, external parent */
	int days;
	int def_path;            /* the configured pathLen */
	const char *subj_tmpl;   /* the configured subject template */
	char label[160];         /* the key's CKA_LABEL */
	X509_NAME *subject;
	pubkey_info pk;          /* the generated key */
	ca_issue_meta meta;      /* the journal row of its certificate */
} ca_create_plan;

/* With s->lock held: the ACTIVE CA that signs a new CA of role named
 * name (the root signs intermediates, a product line's intermediate its
 * issuing CAs) into *parent. SF_ESTATE, SF_EUNAVAIL with why. */
int ca_create_parent(ca_store *s, int role, const char *product_line,
    const char *name, ca **parent, char *why, size_t whylen);
/* With s->lock held: the generation asked for if it is free, else <year>
 * and the first free letter (malloc'd); NULL if taken or none is free. */
char *ca_create_generation(ca_store *s, const char *name, const char *want);
/* With p->c->rec's role, product line, region and generation set: the
 * role's configured key type, validity, pathLen and subject template
 * (key_type and days, when not 0, win) and the key's label. */
void ca_create_defaults(ca_create_plan *p, int key_type, int days);
/* Steps 2-4: everything the certificate will say checked (p->subject
 * parsed; refusals SF_EINVAL) before the key is generated in the token
 * under p->label; then p->c's certificate built and signed (journaled
 * under its parent), or with external the CSR (*csr_pem, malloc'd) the
 * parent will sign. */
int ca_create_make(ca_store *s, ca_create_plan *p, int external,
    char **csr_pem, char *why, size_t whylen);
/* Free what the plan holds; after a failure (rc) also the CSR. */
void ca_create_plan_fini(ca_create_plan *p, int rc, char **csr_pem);

/*
 * The two halves of ca_issue. ca_issue_sign sets a fresh serial (into
 * serial_hex), the issuer's name, the validity cut to the issuer's, those
 * of the issuer's AKI, CRL DP and AIA extensions it has, checks x against
 * profile (a journal profile name: lint.h) and then has the token sign,
 * checked with the issuer's certificate's public key. A root is its own
 * issuer: issuer->cert may be x itself. ca_issue_record journals x as
 * issued by issuer (whose record must already be in the journal).
 */
int ca_issue_sign(ca_store *s, const ca *issuer, X509 *x,
    const char *profile, char serial_hex[64]);
int ca_issue_record(ca_store *s, const ca *issuer, X509 *x,
    const ca_issue_meta *m, const char *serial_hex);

#endif
