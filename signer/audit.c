/*
 * audit.c - checkpoints of the audit trail signed in the token, and
 * verification of the chain and of their signatures (see audit.h).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "audit.h"
#include "err.h"
#include "log.h"
#include "pubkey.h"
#include "util.h"

struct audit {
	token *tok;
	journal *jn;
	char *label;
	int checkpoint_s;
	pthread_mutex_t lock;      /* key, last_try; one checkpoint at a time */
	token_key *key;
	int64_t last_try;          /* the task's last checkpoint or start */
};

audit *
audit_new(token *tok, journal *jn, const char *key_label, int checkpoint_s)
{
	audit *a = calloc(1, sizeof *a);

	if (a == NULL || (a->label = strdup(key_label)) == NULL) {
		free(a);
		return NULL;
	}
	a->tok = tok;
	a->jn = jn;
	a->checkpoint_s = checkpoint_s;
	a->last_try = sf_now();
	pthread_mutex_init(&a->lock, NULL);
	return a;
}

void
audit_free(audit *a)
{
	if (a == NULL)
		return;
	token_key_free(a->key);
	pthread_mutex_destroy(&a->lock);
	free(a->label);
	free(a);
}

size_t
audit_signed_text(const journal_audit_checkpoint *c, char *buf, size_t len)
{
	return audit_checkpoint_text(c->seq, c->head, c->at, buf, len);
}

/* The audit key, found or made; lock held. */
static int
key_locked(audit *a, char *why, size_t whylen)
{
	int rc;

	if (a->key)
		return 0;
	rc = token_find_key(a->tok, a->label, &a->key);
	if (rc == SF_ENOTFOUND) {
		rc = token_generate_key(a->tok, a->label, PUBKEY_EC_P256,
		    &a->key);
		if (rc == 0)
			log_info("audit: generated the checkpoint key \"%s\""
			    " (EC P-256) in the token", a->label);
	} else if (rc == 0 && (rc = token_key_check(a->tok, a->key, why,
	    whylen)) != 0) {
		token_key_free(a->key);
		a->key = NULL;
		return rc;
	}
	if (rc == 0 && token_key_type(a->key) != PUBKEY_EC_P256) {
		sf_why(why, whylen, "the audit key \"%s\" is not an EC P-256"
		    " key", a->label);
		token_key_free(a->key);
		a->key = NULL;
		return SF_EKEYTYPE;
	}
	if (rc != 0 && why[0] == '\0')
		sf_why(why, whylen, "the audit key \"%s\": %s", a->label,
		    sf_strerror(rc));
	return rc;
}

int
audit_public_pem(audit *a, char **pem, char *why, size_t whylen)
{
	BIO *b = NULL;
	char *data;
	long n;
	int rc;

	*pem = NULL;
	pthread_mutex_lock(&a->lock);
	if ((rc = key_locked(a, why, whylen)) != 0)
		goto out;
	rc = SF_ECRYPTO;
	if ((b = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_PUBKEY(b, token_key_public(a->key)) ||
	    (n = BIO_get_mem_data(b, &data)) <= 0 ||
	    (*pem = strndup(data, (size_t)n)) == NULL) {
		sf_why(why, whylen, "cannot write the audit key as PEM");
		goto out;
	}
	rc = 0;
out:
	BIO_free(b);
	pthread_mutex_unlock(&a->lock);
	return rc;
}

/* Does sig verify c with pub? */
static int
sig_ok(EVP_PKEY *pub, const journal_audit_checkpoint *c)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	char text[256];
	size_t n = audit_signed_text(c, text, sizeof text);
	int ok;

	ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) ==
	    1 && EVP_DigestVerify(md, c->signature, c->signature_len,
	    (const unsigned char *)text, n) == 1;
	EVP_MD_CTX_free(md);
	return ok;
}

int
audit_checkpoint(audit *a, journal_audit_checkpoint *out, int *made,
    char *why, size_t whylen)
{
	journal_audit_checkpoint c, *v = NULL;
	audit_report rep;
	uint8_t sig[1024];
	size_t siglen = sizeof sig, n = 0;
	char text[256];
	int64_t cps = 0;
	int rc;

	memset(out, 0, sizeof *out);
	*made = 0;
	pthread_mutex_lock(&a->lock);
	if ((rc = journal_audit_verify(a->jn, &rep, &cps)) != 0) {
		sf_why(why, whylen, "cannot read the audit trail");
		goto out;
	}
	if (rep.first_bad) {
		sf_why(why, whylen, "the audit trail is broken at event %lld"
		    " (%s): %s; no checkpoint is signed until it is"
		    " investigated", (long long)rep.first_bad,
		    audit_damage_name(rep.damage), rep.problem);
		rc = SF_ESTATE;
		goto out;
	}
	if ((rc = journal_audit_checkpoints(a->jn, rep.last_seq, rep.last_seq,
	    1, &v, &n)) != 0) {
		sf_why(why, whylen, "cannot read the checkpoints");
		goto out;
	}
	if (n == 1) {
		*out = v[0];
		free(v);
		goto out;
	}
	journal_audit_checkpoints_free(v, n);
	if ((rc = key_locked(a, why, whylen)) != 0)
		goto out;
	memset(&c, 0, sizeof c);
	c.seq = rep.last_seq;
	sf_strlcpy(c.head, rep.last_hash, sizeof c.head);
	c.at = sf_now();
	c.key_label = a->label;
	n = audit_signed_text(&c, text, sizeof text);
	if ((rc = token_sign(a->tok, a->key, (const uint8_t *)text, n, sig,
	    &siglen)) != 0) {
		sf_why(why, whylen, "the token cannot sign the checkpoint: %s",
		    sf_strerror(rc));
		goto out;
	}
	c.signature = sig;
	c.signature_len = siglen;
	/* What the token signed must verify with its public key. */
	if (!sig_ok(token_key_public(a->key), &c)) {
		sf_why(why, whylen, "the checkpoint's signature does not verify"
		    " with the audit key's public key");
		rc = SF_ECRYPTO;
		goto out;
	}
	if ((rc = journal_audit_checkpoint_put(a->jn, &c)) != 0) {
		sf_why(why, whylen, "cannot record the checkpoint");
		goto out;
	}
	out->seq = c.seq;
	out->at = c.at;
	memcpy(out->head, c.head, sizeof out->head);
	out->key_label = strdup(c.key_label);
	if ((out->signature = malloc(siglen)) != NULL)
		memcpy(out->signature, sig, siglen);
	out->signature_len = siglen;
	if (out->key_label == NULL || out->signature == NULL) {
		journal_audit_checkpoint_fini(out);
		rc = SF_ENOMEM;
		goto out;
	}
	*made = 1;
	log_info("audit: checkpoint at event %lld (%s)", (long long)c.seq,
	    c.head);
out:
	pthread_mutex_unlock(&a->lock);
	return rc;
}

#define CP_PAGE 500

int
audit_verify(audit *a, audit_report *rep, int64_t *checkpoints, char *why,
    size_t whylen)
{
	journal_audit_checkpoint *v = NULL;
	int64_t from = 0, heads = 0;
	size_t n = 0;
	int rc;

	*checkpoints = 0;
	if ((rc = journal_audit_verify(a->jn, rep, &heads)) != 0) {
		sf_why(why, whylen, "cannot read the audit trail");
		return rc;
	}
	if (rep->first_bad)
		return 0;
	pthread_mutex_lock(&a->lock);
	if (heads > 0 && (rc = key_locked(a, why, whylen)) != 0)
		goto out;
	for (;;) {
		if ((rc = journal_audit_checkpoints(a->jn, from, INT64_MAX,
		    CP_PAGE, &v, &n)) != 0) {
			sf_why(why, whylen, "cannot read the checkpoints");
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			token_key *k = NULL;
			EVP_PKEY *pub = token_key_public(a->key);
			int good;

			if (strcmp(v[i].key_label, a->label) != 0 &&
			    token_find_key(a->tok, v[i].key_label, &k) == 0)
				pub = token_key_public(k);
			good = sig_ok(pub, &v[i]);
			token_key_free(k);
			if (!good) {
				audit_report_bad(rep, v[i].seq,
				    AUDIT_CHECKPOINT, "the checkpoint at event"
				    " %lld does not verify with the audit key"
				    " \"%s\": it was altered or signed by"
				    " another key", (long long)v[i].seq,
				    v[i].key_label);
				journal_audit_checkpoints_free(v, n);
				goto out;
			}
			(*checkpoints)++;
			from = v[i].seq + 1;
		}
		journal_audit_checkpoints_free(v, n);
		if (n < CP_PAGE)
			break;
	}
out:
	pthread_mutex_unlock(&a->lock);
	return rc;
}

int
audit_task(void *arg, int64_t now)
{
	audit *a = arg;
	journal_audit_checkpoint *v = NULL, c;
	int64_t head = 0, last = 0;
	char hh[65], why[512] = "";
	size_t n = 0;
	int rc, made = 0;

	if (a->checkpoint_s <= 0)
		return 0;
	pthread_mutex_lock(&a->lock);
	last = a->last_try;
	pthread_mutex_unlock(&a->lock);
	if (now - last < a->checkpoint_s)
		return 0;
	if ((rc = journal_audit_head(a->jn, &head, hh)) != 0 ||
	    (rc = journal_audit_checkpoints(a->jn, 0, -1, 1, &v, &n)) != 0)
		return rc;
	if (n == 1 && v[0].seq >= head)
		head = 0;   /* nothing new since */
	journal_audit_checkpoints_free(v, n);
	pthread_mutex_lock(&a->lock);
	a->last_try = now;
	pthread_mutex_unlock(&a->lock);
	if (head == 0)
		return 0;
	if ((rc = audit_checkpoint(a, &c, &made, why, sizeof why)) != 0) {
		log_warnx("audit: no checkpoint: %s", why);
		return rc;
	}
	journal_audit_checkpoint_fini(&c);
	return 0;
}
