/*
 * ocsp_responder.c - delegated OCSP responders (see ocsp.h): for each CA a
 * key generated in the token under the CA key policy (token.h) and a
 * short-lived certificate the CA issues for it (id-kp-OCSPSigning,
 * id-pkix-ocsp-nocheck), recorded in the journal (certs, and the key's
 * label in ocsp_responders) so that a restarted signer finds it again.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "err.h"
#include "log.h"
#include "ocsp_int.h"
#include "profile.h"
#include "pubkey.h"
#include "util.h"

/* The newest responder of a CA in memory (o->lock held), or NULL. */
static struct responder *
newest(ocsp *o, int64_t ca_id)
{
	for (struct responder *r = o->responders; r; r = r->next)
		if (r->ca_id == ca_id)
			return r;
	return NULL;
}

static void
push(ocsp *o, struct responder *r)
{
	pthread_mutex_lock(&o->lock);
	r->next = o->responders;
	o->responders = r;
	pthread_mutex_unlock(&o->lock);
}

void
ocsp_responders_free(struct responder *r)
{
	while (r) {
		struct responder *next = r->next;

		token_key_free(r->key);
		X509_free(r->cert);
		free(r);
		r = next;
	}
}

/* The responder the journal names for c (after a restart), if its key is
 * in the token with the CA key attributes and its certificate is the
 * key's; else NULL. */
static struct responder *
load(ocsp *o, ca *c)
{
	struct responder *r = NULL;
	journal_cert_row row;
	const unsigned char *p;
	char *serial = NULL, *label = NULL, why[160];
	int64_t not_after;
	int ok = 0;

	memset(&row, 0, sizeof row);
	if (journal_ocsp_responder_get(o->jn, c->rec.id, &serial, &label,
	    &not_after) != 0 || (r = calloc(1, sizeof *r)) == NULL)
		goto out;
	r->ca_id = c->rec.id;
	r->not_after = not_after;
	if (token_find_key(o->tok, label, &r->key) != 0) {
		log_warnx("OCSP: CA %s: responder key %s is not in the token;"
		    " a new responder will be made", c->rec.name, label);
		goto out;
	}
	if (token_key_check(o->tok, r->key, why, sizeof why) != 0) {
		log_warnx("OCSP: CA %s: responder key %s: %s; a new responder"
		    " will be made", c->rec.name, label, why);
		goto out;
	}
	if (journal_cert_get(o->jn, serial, c->rec.id, &row) != 0)
		goto out;
	p = row.der;
	r->cert = d2i_X509(NULL, &p, (long)row.der_len);
	if (r->cert == NULL || EVP_PKEY_eq(X509_get0_pubkey(r->cert),
	    token_key_public(r->key)) != 1) {
		log_warnx("OCSP: CA %s: responder certificate %s does not hold"
		    " key %s; a new responder will be made", c->rec.name,
		    serial, label);
		goto out;
	}
	ok = 1;
out:
	if (!ok) {
		ocsp_responders_free(r);
		r = NULL;
	}
	ERR_clear_error();
	journal_cert_row_fini(&row);
	free(serial);
	free(label);
	return r;
}

/* The CA's subject with CN = "<CA name> OCSP Responder". */
static X509_NAME *
subject(const ca *c)
{
	X509_NAME *n = X509_NAME_dup(X509_get_subject_name(c->cert));
	char cn[128];
	int i;

	if (n == NULL)
		return NULL;
	while ((i = X509_NAME_get_index_by_NID(n, NID_commonName, -1)) >= 0)
		X509_NAME_ENTRY_free(X509_NAME_delete_entry(n, i));
	snprintf(cn, sizeof cn, "%s OCSP Responder", c->rec.name);
	if (!X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_UTF8,
	    (unsigned char *)cn, -1, -1, 0)) {
		X509_NAME_free(n);
		return NULL;
	}
	return n;
}

/* id-pkix-ocsp-nocheck (RFC 6960 4.2.2.2.1): a NULL, not critical. */
static int
add_nocheck(X509 *x)
{
	ASN1_NULL *null = ASN1_NULL_new();
	int ok = null && X509_add1_ext_i2d(x, NID_id_pkix_OCSP_noCheck, null,
	    0, X509V3_ADD_DEFAULT) == 1;

	ASN1_NULL_free(null);
	return ok ? 0 : SF_ECRYPTO;
}

/* The responder certificate for pk, before c signs it. */
static X509 *
build(const ca *c, const pubkey_info *pk, int days)
{
	X509 *x = X509_new();
	X509_NAME *n = subject(c);
	int eku = NID_OCSP_sign;
	uint8_t ski[20];

	profile_key_id(pk->key_bits, pk->key_bits_len, ski);
	if (x == NULL || n == NULL || !X509_set_version(x, X509_VERSION_3) ||
	    !X509_set_subject_name(x, n) ||
	    profile_set_validity(x, days) != 0 ||
	    profile_set_pubkey(x, pk) != 0 ||
	    profile_add0(x, profile_ext_basic(0, -1)) != 0 ||
	    profile_add0(x, profile_ext_key_usage(KU_DIGITAL_SIGNATURE)) != 0 ||
	    profile_add0(x, profile_ext_eku(&eku, 1)) != 0 ||
	    profile_add0(x, profile_ext_ski(ski)) != 0 ||
	    add_nocheck(x) != 0) {
		X509_free(x);
		x = NULL;
	}
	X509_NAME_free(n);
	return x;
}

/*
 * A new responder for c: a key in the token, its certificate from c
 * (journaled by ca_issue), then the key's label in the journal. A key
 * whose certificate could not be made stays in the token unused (token.h
 * has no way to destroy one); the log names it.
 */
static int
make(ocsp *o, ca *c, int days, struct responder **out)
{
	ca_issue_meta m = { JOURNAL_PROFILE_OCSP, "", NULL, "signer:ocsp", "",
	    "" };
	struct responder *r = NULL;
	pubkey_info pk;
	uint8_t rnd[4];
	char hex[9], serial[64], why[160], *label = NULL;
	X509 *x = NULL;
	int rc = SF_ENOMEM;

	*out = NULL;
	memset(&pk, 0, sizeof pk);
	if (RAND_bytes(rnd, sizeof rnd) != 1)
		return SF_ECRYPTO;
	sf_hex(rnd, sizeof rnd, hex);
	if ((label = sf_aprintf("ocsp-%s-%s", c->rec.key_label, hex)) == NULL ||
	    (r = calloc(1, sizeof *r)) == NULL)
		goto out;
	if ((rc = token_generate_key(o->tok, label, token_key_type(c->key),
	    &r->key)) != 0) {
		log_warnx("OCSP: CA %s: cannot generate responder key %s: %s",
		    c->rec.name, label, sf_strerror(rc));
		goto out;
	}
	if ((rc = pubkey_from_evp(token_key_public(r->key), &pk, why,
	    sizeof why)) != 0 || (x = build(c, &pk, days)) == NULL) {
		rc = rc ? rc : SF_ECRYPTO;
		goto out;
	}
	m.key_sha256 = pk.sha256;
	if ((rc = ca_issue(o->cas, c, x, &m, serial)) != 0)
		goto out;
	r->ca_id = c->rec.id;
	r->not_after = profile_time_unix(X509_get0_notAfter(x));
	if ((rc = journal_ocsp_responder_add(o->jn, c->rec.id, serial, label,
	    r->not_after)) != 0)
		goto out;
	r->cert = x;
	x = NULL;  /* transferred */
	log_info("OCSP: CA %s: delegated responder %s (key %s) until %lld",
	    c->rec.name, serial, label, (long long)r->not_after);
	*out = r;
	r = NULL;  /* transferred */
out:
	if (rc != 0 && r && r->key)
		log_warnx("OCSP: CA %s: no responder certificate for key %s"
		    " (%s); the key stays in the token unused", c->rec.name,
		    label, sf_strerror(rc));
	ERR_clear_error();
	pubkey_info_free(&pk);
	X509_free(x);
	ocsp_responders_free(r);
	free(label);
	return rc;
}

int
ocsp_responder_get(ocsp *o, const signer_conf *cf, ca *c, int64_t now,
    int64_t margin, token_key **key, X509 **cert)
{
	struct responder *r, *made = NULL;
	int rc = 0;

	*key = NULL;
	*cert = NULL;
	if (!ca_key_usable(c) || ca_cert(o->cas, c) == NULL)
		return SF_EUNAVAIL;
	if (!cf->ocsp_delegated) {
		*key = c->key;
		*cert = c->cert;
		return 0;
	}
	pthread_mutex_lock(&o->lock);
	r = newest(o, c->rec.id);
	pthread_mutex_unlock(&o->lock);
	if (r == NULL || r->not_after <= now + margin) {
		/* Made once: whoever waited here finds the new one. */
		pthread_mutex_lock(&o->make);
		pthread_mutex_lock(&o->lock);
		r = newest(o, c->rec.id);
		pthread_mutex_unlock(&o->lock);
		if (r == NULL && (r = load(o, c)) != NULL)
			push(o, r);
		if (r == NULL || r->not_after <= now + margin) {
			if ((rc = make(o, c, cf->ocsp_responder_days,
			    &made)) == 0) {
				push(o, made);
				r = made;
			}
		}
		pthread_mutex_unlock(&o->make);
	}
	/* A renewal that failed leaves the old responder while it lasts. */
	if (r == NULL || r->not_after <= now)
		return rc ? rc : SF_EUNAVAIL;
	*key = r->key;
	*cert = r->cert;
	return 0;
}
