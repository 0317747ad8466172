/*
 * ca.c - the CA store (see ca.h): the CAs loaded from the journal with
 * their keys found in the token, the look-ups the handlers make, the
 * check that a CA may still issue (state, expiry, the configured minimum
 * of validity left), and ca_issue, the one path by which any CA signs a
 * certificate (a root's own included). Making a CA is in ca_create.c; a
 * new generation and the end of an old one's overlap in ca_rotate.c;
 * revoking a CA and what it issued in ca_revoke.c; the CSR and
 * certificate exchanged with an external parent are in ca_external.c.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509v3.h>

#include "ca_int.h"
#include "crl.h"
#include "err.h"
#include "lint.h"
#include "log.h"
#include "pbenum.h"
#include "profile.h"
#include "pubkey.h"
#include "secretfree/v1/common.pb-c.h"
#include "sign.h"
#include "util.h"

static void
free_shard_dps(ca *c)
{
	for (int i = 0; c->ext_crldp_shard && i < c->rec.crl_shards; i++)
		X509_EXTENSION_free(c->ext_crldp_shard[i]);
	free(c->ext_crldp_shard);
	c->ext_crldp_shard = NULL;
}

/* Each partition's CRL DP, for a CA with crl_shards > 1. */
static int
make_shard_dps(ca *c)
{
	char *url;

	free_shard_dps(c);
	if (c->rec.crl_shards <= 1 || *c->rec.crl_url == '\0')
		return 0;
	if ((c->ext_crldp_shard = calloc((size_t)c->rec.crl_shards,
	    sizeof *c->ext_crldp_shard)) == NULL)
		return SF_ENOMEM;
	for (int i = 0; i < c->rec.crl_shards; i++) {
		if ((url = crl_shard_url(c->rec.crl_url, i + 1)) == NULL)
			return SF_ENOMEM;
		c->ext_crldp_shard[i] = profile_ext_crldp(url);
		free(url);
		if (c->ext_crldp_shard[i] == NULL)
			return SF_ECRYPTO;
	}
	return 0;
}

void
ca_free(ca *c)
{
	if (c == NULL)
		return;
	free_shard_dps(c);
	journal_ca_fini(&c->rec);
	token_key_free(c->key);
	X509_free(c->cert);
	X509_EXTENSION_free(c->ext_aki);
	X509_EXTENSION_free(c->ext_crldp);
	X509_EXTENSION_free(c->ext_aia);
	free(c->chain_pem);
	free(c);
}

/* Called at load and after creation or import. */
int
ca_prepare(ca *c)
{
	ASN1_OCTET_STRING *ski;
	pubkey_info pk;
	char why[160];
	char *pem;
	size_t len;
	int rc;

	memset(&pk, 0, sizeof pk);
	/* What the CA signs is verified with its certificate's key. */
	if (c->cert)
		c->pub = X509_get0_pubkey(c->cert);
	if (c->pub && pubkey_from_evp(c->pub, &pk, why, sizeof why) == 0) {
		profile_key_id(pk.key_bits, pk.key_bits_len, c->ski);
		pubkey_info_free(&pk);
	}
	if (c->cert == NULL)
		return 0;
	/* An outside parent may have made the SKI another way: the AKI of
	 * what this CA issues names the SKI its certificate carries. */
	if ((ski = X509_get_ext_d2i(c->cert, NID_subject_key_identifier, NULL,
	    NULL)) != NULL && ASN1_STRING_length(ski) == sizeof c->ski)
		memcpy(c->ski, ASN1_STRING_get0_data(ski), sizeof c->ski);
	ASN1_OCTET_STRING_free(ski);
	X509_EXTENSION_free(c->ext_aki);
	X509_EXTENSION_free(c->ext_crldp);
	X509_EXTENSION_free(c->ext_aia);
	c->ext_aki = profile_ext_aki(c->ski);
	c->ext_crldp = *c->rec.crl_url ? profile_ext_crldp(c->rec.crl_url) :
	    NULL;
	c->ext_aia = (*c->rec.ocsp_url || *c->rec.ca_issuers_url) ?
	    profile_ext_aia(c->rec.ocsp_url, c->rec.ca_issuers_url) : NULL;
	if (c->ext_aki == NULL || (*c->rec.crl_url && c->ext_crldp == NULL))
		return SF_ECRYPTO;
	if ((rc = make_shard_dps(c)) != 0)
		return rc;
	if ((pem = profile_cert_pem(c->cert)) == NULL)
		return SF_ENOMEM;
	free(c->chain_pem);
	if (c->parent && c->parent->chain_pem)
		c->chain_pem = sf_aprintf("%s%s", pem, c->parent->chain_pem);
	else if (c->rec.external_chain && *c->rec.external_chain) {
		len = strlen(c->rec.external_chain);
		c->chain_pem = sf_aprintf("%s%s%s", pem, c->rec.external_chain,
		    c->rec.external_chain[len - 1] == '\n' ? "" : "\n");
	} else
		c->chain_pem = strdup(pem);
	free(pem);
	return c->chain_pem ? 0 : SF_ENOMEM;
}

static ca *
find_id(ca_store *s, int64_t id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i]->rec.id == id)
			return s->v[i];
	return NULL;
}

int
ca_store_append(ca_store *s, ca *c, ca *retire)
{
	ca **nv;

	pthread_rwlock_wrlock(&s->lock);
	nv = realloc(s->v, (s->n + 1) * sizeof *nv);
	if (nv) {
		s->v = nv;
		s->v[s->n++] = c;
		if (retire) {
			retire->rec.state = CA_RETIRING;
			retire->rec.retired_at = c->rec.created_at;
		}
	}
	pthread_rwlock_unlock(&s->lock);
	return nv ? 0 : SF_ENOMEM;
}

/* One journal row into the store; the row's contents become the CA's. A
 * key missing from the token is not fatal here: ca_store_check_keys makes
 * the CA unavailable. Parents come before their children in the journal. */
static int
load_ca(ca_store *s, journal_ca *row, char *why, size_t whylen)
{
	const unsigned char *p;
	ca *c;
	int rc = 0;

	if ((c = calloc(1, sizeof *c)) == NULL)
		return SF_ENOMEM;
	c->rec = *row;
	memset(row, 0, sizeof *row);  /* transferred */
	if (token_find_key(s->tok, c->rec.key_label, &c->key) == 0)
		c->pub = token_key_public(c->key);
	if (c->rec.cert_der) {
		p = c->rec.cert_der;
		if ((c->cert = d2i_X509(NULL, &p, (long)c->rec.cert_len)) ==
		    NULL) {
			sf_why(why, whylen, "CA %s %s: stored certificate does"
			    " not parse", c->rec.name, c->rec.generation);
			rc = SF_EDB;
			goto out;
		}
	}
	c->parent = c->rec.parent_id ? find_id(s, c->rec.parent_id) : NULL;
	if ((rc = ca_prepare(c)) != 0 ||
	    (rc = ca_store_append(s, c, NULL)) != 0) {
		sf_why(why, whylen, "CA %s: cannot prepare", c->rec.name);
		goto out;
	}
	c = NULL;  /* transferred */
out:
	ca_free(c);
	return rc;
}

int
ca_store_open(const signer_conf *conf, token *t, journal *j, ca_store **out,
    char *why, size_t whylen)
{
	ca_store *s;
	journal_ca *rows = NULL;
	char first[sizeof ((ca *)0)->key_problem + 64];
	size_t n = 0;
	int rc;

	*out = NULL;
	if ((s = calloc(1, sizeof *s)) == NULL)
		return SF_ENOMEM;
	pthread_rwlock_init(&s->lock, NULL);
	pthread_mutex_init(&s->admin, NULL);
	s->conf = conf;
	s->tok = t;
	s->jn = j;
	if ((rc = journal_ca_list(j, &rows, &n)) != 0) {
		sf_why(why, whylen, "cannot read the CAs from the journal");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if ((rc = load_ca(s, &rows[i], why, whylen)) != 0)
			goto out;
	if (ca_store_check_keys(s, first, sizeof first) > 0 &&
	    conf->bad_key_refuse) {
		sf_why(why, whylen, "%s; [token] bad_key = refuse: not"
		    " starting", first);
		rc = SF_ESTATE;
		goto out;
	}
	*out = s;
	s = NULL;  /* transferred */
out:
	journal_ca_list_free(rows, n);
	ca_store_close(s);
	return rc;
}

void
ca_store_close(ca_store *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		ca_free(s->v[i]);
	free(s->v);
	pthread_rwlock_destroy(&s->lock);
	pthread_mutex_destroy(&s->admin);
	free(s);
}

void
ca_store_set_conf(ca_store *s, const signer_conf *conf)
{
	/* Readers hold either lock: the admin paths the mutex, ca_usable
	 * the read lock. */
	pthread_mutex_lock(&s->admin);
	pthread_rwlock_wrlock(&s->lock);
	s->conf = conf;
	pthread_rwlock_unlock(&s->lock);
	pthread_mutex_unlock(&s->admin);
}

int
ca_state_live(int st)
{
	return st == SECRETFREE__V1__CA_STATE__CA_STATE_ACTIVE ||
	    st == SECRETFREE__V1__CA_STATE__CA_STATE_PENDING;
}

ca *
ca_find_locked(ca_store *s, const char *name, const char *gen, int live_only)
{
	ca *best = NULL;

	for (size_t i = 0; i < s->n; i++) {
		ca *c = s->v[i];

		if (strcmp(c->rec.name, name) != 0)
			continue;
		if (gen && *gen) {
			if (strcmp(c->rec.generation, gen) == 0)
				return c;
			continue;
		}
		if (c->rec.state == SECRETFREE__V1__CA_STATE__CA_STATE_ACTIVE)
			return c;
		if (!live_only || ca_state_live(c->rec.state))
			best = c;
	}
	return (gen && *gen) ? NULL : best;
}

ca *
ca_find(ca_store *s, const char *name, const char *generation)
{
	ca *c;

	pthread_rwlock_rdlock(&s->lock);
	c = ca_find_locked(s, name, generation, 0);
	pthread_rwlock_unlock(&s->lock);
	return c;
}

ca *
ca_find_state(ca_store *s, const char *name, int state)
{
	ca *c = NULL;

	pthread_rwlock_rdlock(&s->lock);
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i]->rec.name, name) == 0 &&
		    s->v[i]->rec.state == state)
			c = s->v[i];
	pthread_rwlock_unlock(&s->lock);
	return c;
}

ca *
ca_find_issuing(ca_store *s, const char *product_line, const char *region)
{
	char name[80];
	ca *c = NULL;

	if (snprintf(name, sizeof name, "%s.%s", region, product_line) >=
	    (int)sizeof name)
		return NULL;
	pthread_rwlock_rdlock(&s->lock);
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i]->rec.name, name) == 0 &&
		    s->v[i]->rec.state ==
		    SECRETFREE__V1__CA_STATE__CA_STATE_ACTIVE &&
		    s->v[i]->rec.role ==
		    SECRETFREE__V1__CA_ROLE__CA_ROLE_ISSUING) {
			c = s->v[i];
			break;
		}
	pthread_rwlock_unlock(&s->lock);
	return c;
}

size_t
ca_list(ca_store *s, ca ***out)
{
	size_t n;

	pthread_rwlock_rdlock(&s->lock);
	n = s->n;
	*out = malloc((n ? n : 1) * sizeof **out);
	if (*out == NULL)
		n = 0;
	else if (n)
		memcpy(*out, s->v, n * sizeof **out);
	pthread_rwlock_unlock(&s->lock);
	return n;
}

void
ca_store_read_lock(ca_store *s)
{
	pthread_rwlock_rdlock(&s->lock);
}

void
ca_store_read_unlock(ca_store *s)
{
	pthread_rwlock_unlock(&s->lock);
}

X509 *
ca_cert(ca_store *s, const ca *c)
{
	X509 *x;

	pthread_rwlock_rdlock(&s->lock);
	x = c->cert;
	pthread_rwlock_unlock(&s->lock);
	return x;
}

int
ca_state(ca_store *s, const ca *c)
{
	int st;

	pthread_rwlock_rdlock(&s->lock);
	st = c->rec.state;
	pthread_rwlock_unlock(&s->lock);
	return st;
}

const char *
ca_state_name(int state)
{
	switch (state) {
	case CA_PENDING: return "pending";
	case CA_ACTIVE: return "active";
	case CA_RETIRING: return "retiring";
	case CA_RETIRED: return "retired";
	case CA_REVOKED: return "revoked";
	}
	return "unknown";
}

/* "2026-03-01T12:00:00Z" */
static const char *
time_text(int64_t t, char buf[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, 32, "%lld", (long long)t);
	return buf;
}

int
ca_usable(ca_store *s, const ca *c, char *why, size_t whylen)
{
	int64_t now = sf_now(), min, not_after;
	char t[sizeof c->key_problem];
	int state, days, has_cert, rc = 0;

	/* What an import, a revocation or SIGHUP may change, read at once. */
	pthread_rwlock_rdlock(&s->lock);
	state = c->rec.state;
	has_cert = c->cert != NULL;
	not_after = c->rec.not_after;
	days = s->conf->ca_min_remaining_days;
	pthread_rwlock_unlock(&s->lock);
	min = (int64_t)days * 86400;
	if (state != CA_ACTIVE) {
		sf_why(why, whylen, "CA %s (generation %s) is %s: it issues"
		    " nothing new", c->rec.name, c->rec.generation,
		    ca_state_name(state));
		rc = SF_ESTATE;
	} else if (!has_cert) {
		sf_why(why, whylen, "CA %s (generation %s) has no certificate"
		    " yet", c->rec.name, c->rec.generation);
		rc = SF_ESTATE;
	} else if (not_after <= now) {
		sf_why(why, whylen, "CA %s (generation %s) expired at %s:"
		    " rotate it (secretfree ca rotate %s)", c->rec.name,
		    c->rec.generation, time_text(not_after, t),
		    c->rec.name);
		rc = SF_ESTATE;
	} else if (not_after - now < min) {
		sf_why(why, whylen, "CA %s (generation %s) expires at %s, in"
		    " less than the configured minimum of %d days ([limits]"
		    " ca_min_remaining_days): rotate it (secretfree ca rotate"
		    " %s)", c->rec.name, c->rec.generation,
		    time_text(not_after, t),
		    days, c->rec.name);
		rc = SF_ESTATE;
	} else if (!ca_key_usable(c)) {
		ca_key_problem(c, t, sizeof t);
		sf_why(why, whylen, "CA %s (generation %s) is unavailable: %s",
		    c->rec.name, c->rec.generation, t);
		rc = SF_EUNAVAIL;
	}
	return rc;
}

size_t
ca_generations_text(ca_store *s, const char *name, int (*states)(int),
    char *buf, size_t len)
{
	size_t n = 0, k = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < s->n; i++) {
		const ca *c = s->v[i];

		if (strcmp(c->rec.name, name) != 0 ||
		    (states && !states(c->rec.state)))
			continue;
		if (k < len)
			k += (size_t)snprintf(buf + k, len - k, "%s%s (%s)",
			    n ? ", " : "", c->rec.generation,
			    ca_state_name(c->rec.state));
		n++;
	}
	return n;
}

char *
ca_subject_text(const ca *c)
{
	if (c->cert)
		return profile_subject_fmt(X509_get_subject_name(c->cert));
	return strdup(c->rec.subject);
}

/* ---- issuance ---- */

/*
 * The last line of defence, whatever the caller checked: only an ACTIVE
 * issuer signs (a root signing itself is PENDING until recorded), never
 * after it expired, and never a certificate whose notAfter is not after
 * its notBefore once cut to the issuer's.
 */
static int
issue_allowed(ca_store *s, const ca *issuer, const X509 *x)
{
	int state;

	pthread_rwlock_rdlock(&s->lock);
	state = issuer->rec.state;
	pthread_rwlock_unlock(&s->lock);
	if (issuer->cert != x && (state != CA_ACTIVE ||
	    X509_cmp_time(X509_get0_notAfter(issuer->cert), NULL) <= 0))
		return SF_ESTATE;
	if (ASN1_TIME_compare(X509_get0_notAfter(x),
	    X509_get0_notBefore(x)) <= 0)
		return SF_ESTATE;
	return 0;
}

/*
 * Cut x's validity to the issuer's: a certificate never outlives its
 * issuer nor begins before it (an outside parent's certificate for a CA
 * may begin a little in the future).
 */
static int
cut_validity(const ca *issuer, X509 *x)
{
	const ASN1_TIME *na = X509_get0_notAfter(issuer->cert);
	const ASN1_TIME *nb = X509_get0_notBefore(issuer->cert);
	int day, sec;

	if (issuer->cert == x)
		return 0;
	if (ASN1_TIME_diff(&day, &sec, na, X509_get0_notAfter(x)) &&
	    (day > 0 || sec > 0) && !X509_set1_notAfter(x, na))
		return SF_ECRYPTO;
	if (ASN1_TIME_diff(&day, &sec, X509_get0_notBefore(x), nb) &&
	    (day > 0 || sec > 0) && !X509_set1_notBefore(x, nb))
		return SF_ECRYPTO;
	return 0;
}

/* x checked against its profile (lint.h), its algorithm set first. */
static int
lint(const ca *issuer, X509 *x, const char *profile, const char *serial_hex)
{
	const char *rule = NULL;
	char why[256];
	int rc;

	if ((rc = sign_cert_alg(issuer->key, x)) != 0)
		return rc;
	if ((rc = lint_cert(x, lint_profile(profile), issuer->cert,
	    token_key_sig_nid(issuer->key), &rule, why, sizeof why)) != 0)
		log_warnx("CA %s %s: certificate %s (profile %s) refused"
		    " before signing: lint rule %s: %s", issuer->rec.name,
		    issuer->rec.generation, serial_hex, profile ? profile :
		    "none", rule, why);
	return rc;
}

int
ca_issue_sign(ca_store *s, const ca *issuer, X509 *x, const char *profile,
    char serial_hex[64])
{
	uint8_t serial[SERIAL_LEN];
	const X509_EXTENSION *crldp;
	int rc, shard;

	serial_hex[0] = '\0';
	if (!ca_key_usable(issuer) || issuer->cert == NULL)
		return SF_EUNAVAIL;
	if ((rc = profile_serial_new(serial, serial_hex)) != 0 ||
	    (rc = profile_set_serial(x, serial, sizeof serial)) != 0)
		goto out;
	rc = SF_ECRYPTO;
	if (!X509_set_issuer_name(x, X509_get_subject_name(issuer->cert)) ||
	    (rc = cut_validity(issuer, x)) != 0)
		goto out;
	if ((rc = issue_allowed(s, issuer, x)) != 0) {
		log_warnx("CA %s %s: refused to sign: it is not active, has"
		    " expired, or the certificate would end before it begins",
		    issuer->rec.name, issuer->rec.generation);
		goto out;
	}
	/* A partitioned CA's certificate names its serial's shard. */
	shard = crl_shard_of(serial_hex, issuer->rec.crl_shards);
	crldp = issuer->ext_crldp_shard && shard > 0 ?
	    issuer->ext_crldp_shard[shard - 1] : issuer->ext_crldp;
	if ((issuer->ext_aki && (rc = profile_add(x, issuer->ext_aki))) ||
	    (crldp && (rc = profile_add(x, crldp))) ||
	    (issuer->ext_aia && (rc = profile_add(x, issuer->ext_aia))))
		goto out;
	if ((rc = lint(issuer, x, profile, serial_hex)) != 0 ||
	    (rc = sign_cert(s->tok, issuer->key, x)) != 0)
		goto out;
	/* A faulty token, or a key that is not the certificate's, must not
	 * put a bad certificate into the world. */
	if (!sign_verify_cert(x, X509_get0_pubkey(issuer->cert))) {
		log_warnx("CA %s: signature from the token does not verify"
		    " with the CA certificate's key; certificate %s discarded",
		    issuer->rec.name, serial_hex);
		/* The token misbehaves: UNAVAILABLE, as for its other faults. */
		rc = SF_EUNAVAIL;
	}
out:
	if (rc)
		serial_hex[0] = '\0';
	return rc;
}

int
ca_issue_record(ca_store *s, const ca *issuer, X509 *x,
    const ca_issue_meta *m, const char *serial_hex)
{
	journal_cert jc;
	unsigned char *der = NULL;
	char *subject = NULL;
	int len, rc;

	if ((len = i2d_X509(x, &der)) <= 0 ||
	    (subject = profile_subject_fmt(X509_get_subject_name(x))) == NULL) {
		rc = SF_ECRYPTO;
		goto out;
	}
	memset(&jc, 0, sizeof jc);
	jc.ca_id = issuer->rec.id;
	jc.serial = serial_hex;
	jc.subject = subject;
	jc.device_id = m->device_id;
	jc.key_sha256 = m->key_sha256;
	jc.not_before = profile_time_unix(X509_get0_notBefore(x));
	jc.not_after = profile_time_unix(X509_get0_notAfter(x));
	jc.issued_at = sf_now();
	jc.requester = m->requester;
	jc.profile = m->profile;
	jc.enrollment_id = m->enrollment_id;
	jc.replaces_serial = m->replaces_serial;
	jc.status = m->ack_deadline ? CERT_PENDING_ACK : CERT_ACTIVE;
	jc.ack_deadline = m->ack_deadline;
	jc.der = der;
	jc.der_len = (size_t)len;
	rc = journal_cert_record(s->jn, &jc);
	if (rc == SF_EEXIST)
		log_warnx("CA %s: serial %s already used; certificate"
		    " discarded", issuer->rec.name, serial_hex);
out:
	OPENSSL_free(der);
	free(subject);
	return rc;
}

/*
 * A CA revoked while x was being signed: ca_revoke marks the CA before
 * it revokes what the journal holds, so x, recorded before this look, is
 * either caught by that revocation or revoked here; it is not returned.
 */
static int
revoked_meanwhile(ca_store *s, const ca *issuer, const char *serial_hex)
{
	int state, reason;

	pthread_rwlock_rdlock(&s->lock);
	state = issuer->rec.state;
	reason = issuer->rec.revocation_reason;
	pthread_rwlock_unlock(&s->lock);
	if (state != CA_REVOKED)
		return 0;
	log_warnx("CA %s %s was revoked while certificate %s was signed; it is"
	    " revoked too", issuer->rec.name, issuer->rec.generation,
	    serial_hex);
	journal_cert_revoke(s->jn, issuer->rec.id, serial_hex,
	    ca_revoke_leaf_reason(reason), sf_now());
	return SF_ESTATE;
}

int
ca_issue(ca_store *s, ca *issuer, X509 *x, const ca_issue_meta *m,
    char serial_hex[64])
{
	int rc;

	if ((rc = ca_issue_sign(s, issuer, x, m->profile, serial_hex)) == 0 &&
	    (rc = ca_issue_record(s, issuer, x, m, serial_hex)) == 0)
		rc = revoked_meanwhile(s, issuer, serial_hex);
	if (rc)
		serial_hex[0] = '\0';
	return rc;
}
