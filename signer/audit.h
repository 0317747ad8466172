/*
 * audit.h - the signer's side of the audit trail (journal.h, "audit
 * trail"; DESIGN.md, "Audit trail"): checkpoints, the chain's head signed
 * by a key in the token, and verification of the chain and of every
 * checkpoint's signature.
 *
 * The audit key is an EC P-256 key in the token under [audit] key_label
 * (default "audit-checkpoint"), generated like a CA key the first time a
 * checkpoint is made. A checkpoint signs (ECDSA with SHA-256) the text
 * audit_checkpoint_text() gives: "secretfree-audit-checkpoint v1\n<seq>\n
 * <head>\n<at>\n", so that `openssl dgst -sha256 -verify` checks it with
 * the key's public half and nothing of ours.
 */
#ifndef SF_AUDIT_H
#define SF_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "journal.h"
#include "token.h"

typedef struct audit audit;

/* NULL if out of memory. The label is copied. */
audit *audit_new(token *tok, journal *jn, const char *key_label,
    int checkpoint_s);
void audit_free(audit *a);   /* NULL-safe */

/* The audit key's public key as PEM (malloc'd), generating the key if
 * the token has none. SF_EUNAVAIL (token), SF_ECRYPTO; why says which. */
int audit_public_pem(audit *a, char **pem, char *why, size_t whylen);

/*
 * A checkpoint of the chain's head now, into *out (the caller's:
 * journal_audit_checkpoint_fini). The whole chain is verified first: a broken
 * chain is not signed (SF_ESTATE, why naming the first broken link). When
 * the head has a checkpoint already, that one is returned (*made 0).
 */
int audit_checkpoint(audit *a, journal_audit_checkpoint *out, int *made,
    char *why, size_t whylen);

/*
 * Verify the chain (journal_audit_verify) and every checkpoint's
 * signature with the audit key (a checkpoint signed under another label
 * with that key, if the token has it). A bad signature is damage
 * AUDIT_CHECKPOINT at its seq. *checkpoints: how many verified.
 */
int audit_verify(audit *a, audit_report *rep, int64_t *checkpoints,
    char *why, size_t whylen);

/* The background task (maint.h; arg: the audit): a checkpoint when there
 * are events after the last one and [audit] checkpoint_seconds have
 * passed since it (or since start-up). */
int audit_task(void *arg, int64_t now);

/* The text signed into buf for c; its length. */
size_t audit_signed_text(const journal_audit_checkpoint *c, char *buf,
    size_t len);

#endif
