/*
 * ca_keys.c - each CA's key in the token bound to its certificate (see
 * ca.h). A CA key is found in the token by its label alone; a restored or
 * re-initialised token, or a key pair made again under the same label,
 * would otherwise have the signer sign with a key its certificate does
 * not name. So at start-up and on SIGHUP every CA that can still sign is
 * checked three ways: the private key's attributes as the token reads
 * them back, the public key the token holds under the label against the
 * certificate's SubjectPublicKeyInfo, and a challenge signed by the
 * private key verified with the certificate's key (the only check that
 * binds the private half itself). A CA that fails is unavailable: every
 * signing path asks ca_key_usable() first.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "ca_int.h"
#include "err.h"
#include "log.h"
#include "sign.h"
#include "util.h"

/* Guards every CA's key_problem text; key_bad is read atomically. */
static pthread_mutex_t problem_lock = PTHREAD_MUTEX_INITIALIZER;

int
ca_key_usable(const ca *c)
{
	return c->key != NULL && !__atomic_load_n(&c->key_bad,
	    __ATOMIC_ACQUIRE);
}

void
ca_key_problem(const ca *c, char *buf, size_t len)
{
	pthread_mutex_lock(&problem_lock);
	sf_strlcpy(buf, c->key_problem[0] || c->key ? c->key_problem :
	    "its key is not in the token", len);
	pthread_mutex_unlock(&problem_lock);
}

/* Record the outcome of a check ("" when it passed); 1 if it changed. */
static int
set_problem(ca *c, const char *text)
{
	int changed;

	pthread_mutex_lock(&problem_lock);
	changed = strcmp(c->key_problem, text) != 0;
	sf_strlcpy(c->key_problem, text, sizeof c->key_problem);
	__atomic_store_n(&c->key_bad, text[0] != '\0', __ATOMIC_RELEASE);
	pthread_mutex_unlock(&problem_lock);
	return changed;
}

/* The public key the token holds under c's label now, against the
 * certificate's. 0 or SF_EPERM with why. */
static int
check_public(ca_store *s, const ca *c, X509 *cert, char *why, size_t whylen)
{
	token_key *now = NULL;
	int rc;

	if ((rc = token_find_key(s->tok, c->rec.key_label, &now)) != 0) {
		sf_why(why, whylen, "key %s cannot be found again in the"
		    " token: %s", c->rec.key_label, sf_strerror(rc));
		return rc;
	}
	if (EVP_PKEY_eq(token_key_public(now), X509_get0_pubkey(cert)) !=
	    1 || EVP_PKEY_eq(token_key_public(c->key),
	    X509_get0_pubkey(cert)) != 1) {
		sf_why(why, whylen, "the public key in the token under label"
		    " %s is not the one its certificate (serial %s) names",
		    c->rec.key_label, c->rec.serial);
		rc = SF_EPERM;
	}
	ERR_clear_error();
	token_key_free(now);
	return rc;
}

/*
 * One CA's key against its certificate: the public key first (the
 * plainest finding: this is not the CA's key), then what the token says
 * of the private key, then the signed challenge. A pending CA has no
 * certificate yet: its key's attributes alone. 0, or an SF_E* with why.
 */
static int
check_one(ca_store *s, const ca *c, X509 *cert, char *why, size_t whylen)
{
	char attr[160];
	int rc;

	if (c->key == NULL) {
		sf_why(why, whylen, "key %s is not in the token",
		    c->rec.key_label);
		return SF_ENOTFOUND;
	}
	if (cert && (rc = check_public(s, c, cert, why, whylen)) != 0)
		return rc;
	if ((rc = token_key_check(s->tok, c->key, attr, sizeof attr)) != 0) {
		sf_why(why, whylen, "key %s: %s", c->rec.key_label, attr);
		return rc;
	}
	if (cert && (rc = sign_probe(s->tok, c->key,
	    X509_get0_pubkey(cert))) != 0) {
		sf_why(why, whylen, "the private key %s does not sign for the"
		    " public key of its certificate (serial %s)%s%s",
		    c->rec.key_label, c->rec.serial, rc == SF_EPERM ? "" : ": ",
		    rc == SF_EPERM ? "" : sf_strerror(rc));
		return rc;
	}
	return 0;
}

size_t
ca_store_check_keys(ca_store *s, char *first, size_t firstlen)
{
	int64_t now = sf_now();
	char why[sizeof ((ca *)0)->key_problem];
	size_t n, bad = 0;
	ca **all = NULL;

	n = ca_list(s, &all);
	for (size_t i = 0; i < n; i++) {
		ca *c = all[i];
		/* An import may give a pending CA its certificate meanwhile. */
		X509 *cert = ca_cert(s, c);

		/* An expired CA signs nothing: not checked, not counted. */
		if (cert && c->rec.not_after <= now)
			continue;
		why[0] = '\0';
		if (check_one(s, c, cert, why, sizeof why) != 0) {
			if (bad++ == 0)
				sf_why(first, firstlen, "CA %s %s cannot sign:"
				    " %s", c->rec.name, c->rec.generation, why);
			set_problem(c, why);
			log_warnx("CA %s %s is unavailable: it signs nothing"
			    " (certificates, CRLs, OCSP) until a check passes"
			    " (restart or SIGHUP): %s", c->rec.name,
			    c->rec.generation, why);
		} else if (set_problem(c, ""))
			log_info("CA %s %s: key %s is bound to its certificate"
			    " again; the CA is available", c->rec.name,
			    c->rec.generation, c->rec.key_label);
	}
	free(all);
	return bad;
}
