/*
 * crl.c - CRLs made from the journal, signed in the token and stored in
 * the journal (see crl.h). The revoked entries are read once into a
 * compact array; each CRL (the complete one, then each partition) is then
 * built, signed, checked and encoded in turn, so that only one OpenSSL
 * CRL is in memory at a time.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "crl.h"
#include "err.h"
#include "log.h"
#include "profile.h"
#include "secretfree/v1/common.pb-c.h"
#include "sign.h"
#include "util.h"

/* One CA's CRLs are made by one caller at a time (the background task,
 * or a GetCrl that finds none). */
static pthread_mutex_t crl_lock = PTHREAD_MUTEX_INITIALIZER;

int
crl_shard_of(const char *serial_hex, int shards)
{
	unsigned r = 0;

	if (shards <= 1 || serial_hex == NULL || *serial_hex == '\0')
		return 0;
	for (const char *p = serial_hex; *p; p++) {
		int d = isdigit((unsigned char)*p) ? *p - '0' :
		    isxdigit((unsigned char)*p) ?
		    tolower((unsigned char)*p) - 'a' + 10 : -1;

		if (d < 0)
			return 0;
		r = (r * 16 + (unsigned)d) % (unsigned)shards;
	}
	return (int)r + 1;
}

size_t
crl_reply_bytes(size_t der_len, int with_pem)
{
	size_t b64 = (der_len + 2) / 3 * 4;

	/* PEM: base64 in lines of 64, the BEGIN and END lines. */
	return der_len + 4096 + (with_pem ? b64 + (b64 + 63) / 64 + 64 : 0);
}

char *
crl_shard_url(const char *url, int shard)
{
	size_t n = strlen(url);

	if (shard <= 0)
		return strdup(url);
	if (n >= 4 && strcmp(url + n - 4, ".crl") == 0)
		return sf_aprintf("%.*s-%d.crl", (int)(n - 4), url, shard);
	return sf_aprintf("%s-%d.crl", url, shard);
}

/* ---- the entries ---- */

struct entry {
	char serial[41];        /* RFC 5280: at most 20 octets */
	int64_t when;
	int reason;
	int shard;
};

struct entries {
	struct entry *v;
	size_t n, cap;
	int shards;
};

static int
collect(const char *serial, int64_t when, int reason, void *arg)
{
	struct entries *es = arg;
	struct entry *e;

	if (es->n == es->cap) {
		size_t cap = es->cap ? es->cap * 2 : 256;
		struct entry *nv = realloc(es->v, cap * sizeof *nv);

		if (nv == NULL)
			return SF_ENOMEM;
		es->v = nv;
		es->cap = cap;
	}
	e = &es->v[es->n];
	if (sf_strlcpy(e->serial, serial, sizeof e->serial) >=
	    sizeof e->serial) {
		log_warnx("CRL: serial %s is too long; left out", serial);
		return 0;
	}
	e->when = when;
	e->reason = reason;
	e->shard = crl_shard_of(serial, es->shards);
	es->n++;
	return 0;
}

/* ---- one CRL ---- */

static X509_REVOKED *
revoked_new(const struct entry *e, int64_t now, ASN1_ENUMERATED **reasons)
{
	X509_REVOKED *rv = X509_REVOKED_new();
	ASN1_INTEGER *sn = NULL;
	ASN1_TIME *t = NULL;
	BIGNUM *bn = NULL;
	int ok = 0;

	if (rv == NULL || !BN_hex2bn(&bn, e->serial) ||
	    (sn = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
	    (t = ASN1_TIME_set(NULL, (time_t)(e->when > 0 ? e->when : now)))
	    == NULL || !X509_REVOKED_set_serialNumber(rv, sn) ||
	    !X509_REVOKED_set_revocationDate(rv, t))
		goto out;
	/* RFC 5280 5.3.1: no reasonCode rather than unspecified. */
	if (e->reason > 0 && e->reason <= 10) {
		if (reasons[e->reason] == NULL &&
		    ((reasons[e->reason] = ASN1_ENUMERATED_new()) == NULL ||
		    !ASN1_ENUMERATED_set(reasons[e->reason], e->reason)))
			goto out;
		if (X509_REVOKED_add1_ext_i2d(rv, NID_crl_reason,
		    reasons[e->reason], 0, 0) != 1)
			goto out;
	}
	ok = 1;
out:
	BN_free(bn);
	ASN1_INTEGER_free(sn);
	ASN1_TIME_free(t);
	if (!ok) {
		X509_REVOKED_free(rv);
		rv = NULL;
	}
	return rv;
}

/* What every CRL of one making shares. */
struct making {
	signer_ctx *ctx;
	ca *c;
	const struct entries *es;
	int64_t number, now, next;
};

/* The unsigned CRL of shard (0: every entry), naming idp_url (NULL: no
 * IDP); *count gets its number of entries. */
static X509_CRL *
crl_build(const struct making *m, int shard, const char *idp_url,
    int64_t *count)
{
	ASN1_ENUMERATED *reasons[11] = { 0 };
	X509_CRL *crl = X509_CRL_new();
	X509_EXTENSION *idp = NULL;
	ASN1_INTEGER *num = ASN1_INTEGER_new();
	ASN1_TIME *tu = ASN1_TIME_set(NULL, (time_t)m->now);
	ASN1_TIME *nu = ASN1_TIME_set(NULL, (time_t)m->next);
	int ok = 0;

	*count = 0;
	if (crl == NULL || num == NULL || tu == NULL || nu == NULL ||
	    !X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(m->c->cert)) ||
	    !X509_CRL_set1_lastUpdate(crl, tu) ||
	    !X509_CRL_set1_nextUpdate(crl, nu))
		goto out;
	for (size_t i = 0; i < m->es->n; i++) {
		const struct entry *e = &m->es->v[i];
		X509_REVOKED *rv;

		if (shard != 0 && e->shard != shard)
			continue;
		if ((rv = revoked_new(e, m->now, reasons)) == NULL ||
		    !X509_CRL_add0_revoked(crl, rv)) {
			X509_REVOKED_free(rv);
			goto out;
		}
		(*count)++;
	}
	if (!X509_CRL_sort(crl) || !ASN1_INTEGER_set_int64(num, m->number) ||
	    (m->c->ext_aki && !X509_CRL_add_ext(crl, m->c->ext_aki, -1)) ||
	    X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) != 1)
		goto out;
	if (idp_url && ((idp = profile_ext_idp(idp_url)) == NULL ||
	    !X509_CRL_add_ext(crl, idp, -1)))
		goto out;
	ok = 1;
out:
	for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
		ASN1_ENUMERATED_free(reasons[i]);
	X509_EXTENSION_free(idp);
	ASN1_INTEGER_free(num);
	ASN1_TIME_free(tu);
	ASN1_TIME_free(nu);
	if (!ok) {
		ERR_clear_error();
		X509_CRL_free(crl);
		crl = NULL;
	}
	return crl;
}

/* Build, sign, verify and encode shard's CRL into *out. */
static int
crl_one(const struct making *m, int shard, journal_crl *out, char *why,
    size_t whylen)
{
	const char *url = m->c->rec.crl_url;
	char *idp_url = NULL;
	X509_CRL *crl = NULL;
	unsigned char *der = NULL;
	int len, rc = SF_ENOMEM;

	memset(out, 0, sizeof *out);
	/* The complete CRL of a partitioned CA covers every certificate:
	 * no IDP. Otherwise the IDP is the URL its certificates carry. */
	if (*url && (shard > 0 || m->c->rec.crl_shards <= 1) &&
	    (idp_url = crl_shard_url(url, shard)) == NULL)
		goto out;
	rc = SF_ECRYPTO;
	if ((crl = crl_build(m, shard, idp_url, &out->revoked_count)) == NULL) {
		sf_why(why, whylen, "CA %s: cannot build CRL shard %d",
		    m->c->rec.name, shard);
		goto out;
	}
	if ((rc = sign_crl(m->ctx->tok, m->c->key, crl)) != 0) {
		sf_why(why, whylen, "CA %s: the token did not sign the CRL: %s",
		    m->c->rec.name, sf_strerror(rc));
		goto out;
	}
	/* A faulty token must not put a bad CRL into the world. */
	if (X509_CRL_verify(crl, X509_get0_pubkey(m->c->cert)) != 1) {
		sf_why(why, whylen, "CA %s: the CRL's signature from the token"
		    " does not verify with the CA certificate's key",
		    m->c->rec.name);
		rc = SF_EUNAVAIL;   /* the token misbehaves */
		goto out;
	}
	if ((len = i2d_X509_CRL(crl, &der)) <= 0) {
		sf_why(why, whylen, "CA %s: cannot encode the CRL",
		    m->c->rec.name);
		goto out;
	}
	if ((out->der = malloc((size_t)len)) == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	memcpy(out->der, der, (size_t)len);
	out->der_len = (size_t)len;
	out->shard = shard;
	out->crl_number = m->number;
	out->this_update = m->now;
	out->next_update = m->next;
	rc = 0;
out:
	ERR_clear_error();
	OPENSSL_free(der);
	X509_CRL_free(crl);
	free(idp_url);
	return rc;
}

static int
can_sign(signer_ctx *ctx, const ca *c, char *why, size_t whylen)
{
	if (ca_cert(ctx->cas, c) == NULL) {
		sf_why(why, whylen, "CA %s has no certificate yet",
		    c->rec.name);
		return SF_ESTATE;
	}
	if (!ca_key_usable(c)) {
		char t[sizeof c->key_problem];

		ca_key_problem(c, t, sizeof t);
		sf_why(why, whylen, "CA %s is unavailable: %s", c->rec.name, t);
		return SF_EUNAVAIL;
	}
	return 0;
}

static int
shards_of(const ca *c)
{
	return c->rec.crl_shards > 1 ? c->rec.crl_shards : 1;
}

/* crl_make with crl_lock held. */
static int
make_locked(signer_ctx *ctx, ca *c, int64_t now, char *why, size_t whylen)
{
	struct entries es = { NULL, 0, 0, shards_of(c) };
	struct making m = { ctx, c, &es, 0, now, 0 };
	int n = es.shards > 1 ? es.shards + 1 : 1, rc;
	journal_crl *v = NULL;
	int64_t t0 = sf_mono_ms(), revocations = 0, bytes = 0;

	if ((rc = can_sign(ctx, c, why, whylen)) != 0)
		return rc;
	m.next = now + signer_conf_now(ctx)->crl_validity_s;
	/* Counted before the entries are read: a revocation in between
	 * makes the stored count stale, and so one more CRL, never one
	 * fewer. */
	if ((rc = journal_cert_revoked_count(ctx->jn, c->rec.id,
	    &revocations)) != 0 ||
	    (rc = journal_cert_revoked(ctx->jn, c->rec.id,
	    now - signer_conf_now(ctx)->crl_validity_s, collect, &es)) != 0) {
		sf_why(why, whylen, "CA %s: cannot read its revoked"
		    " certificates", c->rec.name);
		goto out;
	}
	if ((v = calloc((size_t)n, sizeof *v)) == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	if ((rc = journal_ca_next_crl_number(ctx->jn, c->rec.id,
	    &m.number)) != 0) {
		sf_why(why, whylen, "CA %s: no CRL number", c->rec.name);
		goto out;
	}
	for (int i = 0; i < n; i++) {
		if ((rc = crl_one(&m, i, &v[i], why, whylen)) != 0)
			goto out;
		v[i].revocations = revocations;
		bytes += (int64_t)v[i].der_len;
	}
	if ((rc = journal_crl_put(ctx->jn, c->rec.id, v, (size_t)n)) != 0) {
		sf_why(why, whylen, "CA %s: the journal could not store its"
		    " CRL", c->rec.name);
		goto out;
	}
	log_info("CA %s %s: CRL %lld listing %zu revoked, %d CRL%s of %lld"
	    " bytes in all, next update in %d s, made in %lld ms",
	    c->rec.name, c->rec.generation, (long long)m.number, es.n, n,
	    n > 1 ? "s" : "", (long long)bytes, signer_conf_now(ctx)->crl_validity_s,
	    (long long)(sf_mono_ms() - t0));
out:
	for (int i = 0; v && i < n; i++)
		journal_crl_fini(&v[i]);
	free(v);
	free(es.v);
	return rc;
}

int
crl_make(signer_ctx *ctx, ca *c, int64_t now, char *why, size_t whylen)
{
	int rc;

	pthread_mutex_lock(&crl_lock);
	rc = make_locked(ctx, c, now, why, whylen);
	pthread_mutex_unlock(&crl_lock);
	return rc;
}

int
crl_due(signer_ctx *ctx, const ca *c, int64_t now)
{
	journal_crl head;
	int64_t revocations, not_after;
	int state, due, has_cert;

	/* An import or a revocation may change these meanwhile. */
	ca_store_read_lock(ctx->cas);
	state = c->rec.state;
	has_cert = c->cert != NULL;
	not_after = c->rec.not_after;
	ca_store_read_unlock(ctx->cas);
	if (!has_cert || !ca_key_usable(c) ||
	    state == SECRETFREE__V1__CA_STATE__CA_STATE_PENDING ||
	    now > not_after)
		return 0;
	if (journal_crl_get(ctx->jn, c->rec.id, 0, 0, &head) != 0)
		return 1;
	if (journal_cert_revoked_count(ctx->jn, c->rec.id, &revocations) != 0)
		return 0;
	due = revocations != head.revocations ||
	    (state != SECRETFREE__V1__CA_STATE__CA_STATE_REVOKED &&
	    now >= head.next_update - signer_conf_now(ctx)->crl_refresh_s);
	journal_crl_fini(&head);
	return due;
}

int
crl_task(void *arg, int64_t now)
{
	signer_ctx *ctx = arg;
	char why[256];
	ca **all = NULL;
	size_t n = ca_list(ctx->cas, &all);
	int first = 0, rc;

	for (size_t i = 0; i < n; i++) {
		pthread_mutex_lock(&crl_lock);
		rc = crl_due(ctx, all[i], now) ? make_locked(ctx, all[i], now,
		    why, sizeof why) : 0;
		pthread_mutex_unlock(&crl_lock);
		if (rc != 0) {
			log_warnx("%s", why);
			if (first == 0)
				first = rc;
		}
	}
	free(all);
	return first;
}

int
crl_get(signer_ctx *ctx, ca *c, int shard, journal_crl *out, char *why,
    size_t whylen)
{
	int shards = shards_of(c), rc;

	memset(out, 0, sizeof *out);
	if (shard < 0 || shard > shards) {
		sf_why(why, whylen, "CA %s has %d CRL shard%s: shard %d does not"
		    " exist (0 is the complete CRL)", c->rec.name, shards,
		    shards > 1 ? "s" : "", shard);
		return SF_EINVAL;
	}
	if (shards == 1)
		shard = 0;
	pthread_mutex_lock(&crl_lock);
	rc = journal_crl_get(ctx->jn, c->rec.id, shard, 1, out);
	if (rc == SF_ENOTFOUND && (rc = make_locked(ctx, c, sf_now(), why,
	    whylen)) == 0)
		rc = journal_crl_get(ctx->jn, c->rec.id, shard, 1, out);
	pthread_mutex_unlock(&crl_lock);
	if (rc == SF_EDB)
		sf_why(why, whylen, "CA %s: cannot read its CRL", c->rec.name);
	return rc;
}
