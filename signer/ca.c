/*
 * ca.c - the CA hierarchy (see ca.h).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "ca.h"
#include "devrec.h"
#include "err.h"
#include "log.h"
#include "profile.h"
#include "pubkey.h"
#include "secretfree/v1/common.pb-c.h"
#include "sign.h"
#include "util.h"

/* Backdate notBefore a little: device clocks are not all right. */
#define BACKDATE 60

struct ca_store {
	pthread_rwlock_t lock;
	pthread_mutex_t admin;    /* one admin change at a time */
	const signer_conf *conf;
	token *tok;
	journal *jn;
	ca **v;
	size_t n;
};

static const char *
role_name(int role)
{
	switch (role) {
	case SECRETFREE__V1__CA_ROLE__CA_ROLE_ROOT: return "root";
	case SECRETFREE__V1__CA_ROLE__CA_ROLE_INTERMEDIATE: return "intermediate";
	case SECRETFREE__V1__CA_ROLE__CA_ROLE_ISSUING: return "issuing";
	}
	return "?";
}

static void
ca_free(ca *c)
{
	if (c == NULL)
		return;
	journal_ca_fini(&c->rec);
	token_key_free(c->key);
	X509_free(c->cert);
	X509_EXTENSION_free(c->ext_aki);
	X509_EXTENSION_free(c->ext_crldp);
	X509_EXTENSION_free(c->ext_aia);
	free(c->chain_pem);
	free(c);
}

/* Compute what a CA with a certificate needs to issue: key id, extensions,
 * chain. Called at load and after creation/import. */
static int
ca_prepare(ca *c)
{
	pubkey_info pk;
	char why[160];
	char *pem;
	size_t len;

	memset(&pk, 0, sizeof pk);
	if (c->pub == NULL && c->cert)
		c->pub = X509_get0_pubkey(c->cert);
	if (c->pub && pubkey_from_evp(c->pub, &pk, why, sizeof why) == 0) {
		profile_key_id(pk.key_bits, pk.key_bits_len, c->ski);
		pubkey_info_free(&pk);
	}
	if (c->cert == NULL)
		return 0;
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

static int
store_append(ca_store *s, ca *c)
{
	ca **nv;

	pthread_rwlock_wrlock(&s->lock);
	nv = realloc(s->v, (s->n + 1) * sizeof *nv);
	if (nv) {
		s->v = nv;
		s->v[s->n++] = c;
	}
	pthread_rwlock_unlock(&s->lock);
	return nv ? 0 : SF_ENOMEM;
}

int
ca_store_open(const signer_conf *conf, token *t, journal *j, ca_store **out,
    char *why, size_t whylen)
{
	ca_store *s;
	journal_ca *rows = NULL;
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
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		ca *c = calloc(1, sizeof *c);
		const unsigned char *p;

		if (c == NULL) {
			rc = SF_ENOMEM;
			goto fail;
		}
		c->rec = rows[i];
		memset(&rows[i], 0, sizeof rows[i]);  /* transferred */
		if (token_find_key(t, c->rec.key_label, &c->key) != 0)
			log_warnx("CA %s %s: key %s not found in the token; it"
			    " cannot sign", c->rec.name, c->rec.generation,
			    c->rec.key_label);
		else
			c->pub = token_key_public(c->key);
		if (c->rec.cert_der) {
			p = c->rec.cert_der;
			c->cert = d2i_X509(NULL, &p, (long)c->rec.cert_len);
			if (c->cert == NULL) {
				sf_why(why, whylen, "CA %s %s: stored"
				    " certificate does not parse", c->rec.name,
				    c->rec.generation);
				ca_free(c);
				rc = SF_EDB;
				goto fail;
			}
		}
		c->parent = c->rec.parent_id ? find_id(s, c->rec.parent_id) :
		    NULL;
		if ((rc = ca_prepare(c)) != 0 || (rc = store_append(s, c))) {
			sf_why(why, whylen, "CA %s: cannot prepare",
			    c->rec.name);
			ca_free(c);
			goto fail;
		}
	}
	journal_ca_list_free(rows, n);
	*out = s;
	return 0;
fail:
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
	pthread_mutex_lock(&s->admin);
	s->conf = conf;
	pthread_mutex_unlock(&s->admin);
}

static int
state_live(int st)
{
	return st == SECRETFREE__V1__CA_STATE__CA_STATE_ACTIVE ||
	    st == SECRETFREE__V1__CA_STATE__CA_STATE_PENDING;
}

/* With the lock held. */
static ca *
find_locked(ca_store *s, const char *name, const char *gen, int live_only)
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
		if (!live_only || state_live(c->rec.state))
			best = c;
	}
	return (gen && *gen) ? NULL : best;
}

ca *
ca_find(ca_store *s, const char *name, const char *generation)
{
	ca *c;

	pthread_rwlock_rdlock(&s->lock);
	c = find_locked(s, name, generation, 0);
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
	if (*out)
		memcpy(*out, s->v, n * sizeof **out);
	else
		n = 0;
	pthread_rwlock_unlock(&s->lock);
	return n;
}

char *
ca_subject_text(const ca *c)
{
	if (c->cert)
		return profile_subject_fmt(X509_get_subject_name(c->cert));
	return strdup(c->rec.subject);
}

int
ca_issue(ca_store *s, ca *issuer, X509 *x, const ca_issue_meta *m,
    char serial_hex[64])
{
	uint8_t serial[SERIAL_LEN];
	const ASN1_TIME *na;
	journal_cert jc;
	unsigned char *der = NULL;
	char *subject = NULL;
	int len, rc, day, sec;

	serial_hex[0] = '\0';
	if (issuer->key == NULL || issuer->cert == NULL)
		return SF_EUNAVAIL;
	if ((rc = profile_serial_new(serial, serial_hex)) != 0 ||
	    (rc = profile_set_serial(x, serial, sizeof serial)) != 0)
		return rc;
	rc = SF_ECRYPTO;
	if (!X509_set_issuer_name(x, X509_get_subject_name(issuer->cert)))
		goto out;
	/* A certificate never outlives its issuer. */
	na = X509_get0_notAfter(issuer->cert);
	if (ASN1_TIME_diff(&day, &sec, na, X509_get0_notAfter(x)) &&
	    (day > 0 || sec > 0) && !X509_set1_notAfter(x, na))
		goto out;
	if ((rc = profile_add(x, issuer->ext_aki)) != 0 ||
	    (issuer->ext_crldp && (rc = profile_add(x, issuer->ext_crldp))) ||
	    (issuer->ext_aia && (rc = profile_add(x, issuer->ext_aia))))
		goto out;
	if ((rc = sign_cert(s->tok, issuer->key, x)) != 0)
		goto out;
	/* A faulty token must not put a bad certificate into the world. */
	if (!sign_verify_cert(x, issuer->pub)) {
		log_warnx("CA %s: signature from the token does not verify;"
		    " certificate %s discarded", issuer->rec.name, serial_hex);
		rc = SF_ECRYPTO;
		goto out;
	}
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
	{
		struct tm tm;

		ASN1_TIME_to_tm(X509_get0_notBefore(x), &tm);
		jc.not_before = (int64_t)timegm(&tm);
		ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm);
		jc.not_after = (int64_t)timegm(&tm);
	}
	jc.issued_at = sf_now();
	jc.requester = m->requester;
	jc.profile = m->profile;
	jc.enrollment_id = m->enrollment_id;
	jc.replaces_serial = m->replaces_serial;
	jc.der = der;
	jc.der_len = (size_t)len;
	rc = journal_cert_record(s->jn, &jc);
	if (rc == SF_EEXIST)
		log_warnx("CA %s: serial %s already used; certificate"
		    " discarded", issuer->rec.name, serial_hex);
out:
	if (rc)
		serial_hex[0] = '\0';
	OPENSSL_free(der);
	free(subject);
	return rc;
}

/* ---- creation ---- */

static char *
join_lines(char *const *v, size_t n)
{
	size_t len = 1;
	char *out;

	for (size_t i = 0; i < n; i++)
		len += strlen(v[i]) + 1;
	if ((out = calloc(1, len)) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(out, "\n");
		strcat(out, v[i]);
	}
	return out;
}

static char *
pick_generation(ca_store *s, const char *name, const char *want)
{
	char gen[16];
	time_t now = time(NULL);
	struct tm tm;

	if (want && *want)
		return find_locked(s, name, want, 0) ? NULL : strdup(want);
	gmtime_r(&now, &tm);
	for (char l = 'a'; l <= 'z'; l++) {
		snprintf(gen, sizeof gen, "%d%c", tm.tm_year + 1900, l);
		if (find_locked(s, name, gen, 0) == NULL)
			return strdup(gen);
	}
	return NULL;
}

static int
set_validity(X509 *x, int days)
{
	time_t now = time(NULL);

	if (!X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), days, 0, &now))
		return SF_ECRYPTO;
	return 0;
}

/* Build the CA certificate for c (not yet signed). */
static X509 *
build_ca_cert(ca *c, X509_NAME *subject, const pubkey_info *pk, int days,
    char *why, size_t whylen)
{
	X509 *x = X509_new();
	X509_EXTENSION *e;
	int none, ok = 0;

	if (x == NULL || !X509_set_version(x, X509_VERSION_3) ||
	    !X509_set_subject_name(x, subject) ||
	    set_validity(x, days) != 0 || profile_set_pubkey(x, pk) != 0)
		goto out;
	e = profile_ext_basic(1, c->rec.path_len);
	ok = e && profile_add(x, e) == 0;
	X509_EXTENSION_free(e);
	if (!ok)
		goto out;
	/* digitalSignature too: the CA signs its own OCSP responses. */
	e = profile_ext_key_usage(KU_KEY_CERT_SIGN | KU_CRL_SIGN |
	    KU_DIGITAL_SIGNATURE);
	ok = e && profile_add(x, e) == 0;
	X509_EXTENSION_free(e);
	if (!ok)
		goto out;
	e = profile_ext_ski(c->ski);
	ok = e && profile_add(x, e) == 0;
	X509_EXTENSION_free(e);
	if (!ok)
		goto out;
	ok = 0;
	e = profile_ext_name_constraints(c->rec.permitted, c->rec.excluded,
	    &none, why, whylen);
	if (e == NULL && !none)
		goto out;
	if (e) {
		ok = profile_add(x, e) == 0;
		X509_EXTENSION_free(e);
		if (!ok)
			goto out;
	}
	ok = 1;
out:
	if (!ok) {
		if (why[0] == '\0')
			sf_why(why, whylen, "cannot build the CA certificate");
		X509_free(x);
		return NULL;
	}
	return x;
}

static char *
req_pem(token *t, token_key *k, X509_NAME *subject, EVP_PKEY *pub,
    char *why, size_t whylen)
{
	X509_REQ *req = X509_REQ_new();
	BIO *b = NULL;
	char *data, *out = NULL;
	long n;

	if (req == NULL || !X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
	    !X509_REQ_set_subject_name(req, subject) ||
	    !X509_REQ_set_pubkey(req, pub) || sign_req(t, k, req) != 0 ||
	    X509_REQ_verify(req, pub) != 1) {
		sf_why(why, whylen, "cannot make a CSR for the CA key");
		ERR_clear_error();
		goto out;
	}
	if ((b = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_X509_REQ(b, req))
		goto out;
	if ((n = BIO_get_mem_data(b, &data)) > 0 &&
	    (out = malloc((size_t)n + 1)) != NULL) {
		memcpy(out, data, (size_t)n);
		out[n] = '\0';
	}
out:
	BIO_free(b);
	X509_REQ_free(req);
	return out;
}

/* Check the request and fill c->rec's identity; with s->lock held (read). */
static int
plan_ca(ca_store *s, const ca_create_req *r, ca *c, ca **parent,
    const product_conf **pcp, char *why, size_t whylen)
{
	const signer_conf *cf = s->conf;
	const product_conf *pc = NULL;
	const char *pl = r->product_line ? r->product_line : "";
	const char *rg = r->region ? r->region : "";
	char name[80];
	ca *existing;

	*parent = NULL;
	switch (r->role) {
	case SECRETFREE__V1__CA_ROLE__CA_ROLE_ROOT:
		if (*pl || *rg) {
			sf_why(why, whylen, "a root CA has no product line or"
			    " region");
			return SF_EINVAL;
		}
		snprintf(name, sizeof name, "root");
		break;
	case SECRETFREE__V1__CA_ROLE__CA_ROLE_INTERMEDIATE:
	case SECRETFREE__V1__CA_ROLE__CA_ROLE_ISSUING:
		if (!sf_name_valid(pl)) {
			sf_why(why, whylen, "product line \"%s\" is not a"
			    " valid id (1-32 of a-z, 0-9, -)", pl);
			return SF_EINVAL;
		}
		if ((pc = config_product(cf, pl)) == NULL) {
			sf_why(why, whylen, "product line \"%s\" is not"
			    " configured: add a [product.%s] section to %s",
			    pl, pl, cf->path);
			return SF_ESTATE;
		}
		if (r->role == SECRETFREE__V1__CA_ROLE__CA_ROLE_INTERMEDIATE) {
			if (*rg) {
				sf_why(why, whylen, "an intermediate CA has"
				    " no region");
				return SF_EINVAL;
			}
			snprintf(name, sizeof name, "%s", pl);
		} else {
			if (!sf_name_valid(rg)) {
				sf_why(why, whylen, "region \"%s\" is not a"
				    " valid id (1-32 of a-z, 0-9, -)", rg);
				return SF_EINVAL;
			}
			snprintf(name, sizeof name, "%s.%s", rg, pl);
		}
		break;
	default:
		sf_why(why, whylen, "role must be root, intermediate or"
		    " issuing");
		return SF_EINVAL;
	}
	if ((existing = find_locked(s, name, NULL, 1)) != NULL &&
	    state_live(existing->rec.state)) {
		sf_why(why, whylen, "CA %s already exists (generation %s,"
		    " %s); rotate it instead", name, existing->rec.generation,
		    existing->rec.state ==
		    SECRETFREE__V1__CA_STATE__CA_STATE_PENDING ? "pending" :
		    "active");
		return SF_EEXIST;
	}
	if (!r->external_parent &&
	    r->role != SECRETFREE__V1__CA_ROLE__CA_ROLE_ROOT) {
		const char *pname = r->role ==
		    SECRETFREE__V1__CA_ROLE__CA_ROLE_INTERMEDIATE ? "root" : pl;
		ca *p = find_locked(s, pname, NULL, 1);

		if (p == NULL || p->rec.state !=
		    SECRETFREE__V1__CA_STATE__CA_STATE_ACTIVE || !p->cert) {
			sf_why(why, whylen, "no active %s CA \"%s\" to sign"
			    " %s: create it first", r->role ==
			    SECRETFREE__V1__CA_ROLE__CA_ROLE_INTERMEDIATE ?
			    "root" : "intermediate", pname, name);
			return SF_ESTATE;
		}
		if (p->key == NULL) {
			sf_why(why, whylen, "the key of CA %s is not in the"
			    " token", pname);
			return SF_EUNAVAIL;
		}
		if (p->rec.path_len == 0) {
			sf_why(why, whylen, "CA %s has pathLen 0: it cannot"
			    " sign another CA", pname);
			return SF_ESTATE;
		}
		*parent = p;
	}
	c->rec.name = strdup(name);
	c->rec.product_line = strdup(pl);
	c->rec.region = strdup(rg);
	*pcp = pc;
	return c->rec.name && c->rec.product_line && c->rec.region ? 0 :
	    SF_ENOMEM;
}

static char *
expand(ca_store *s, const ca_create_req *r, const char *req, const char *tmpl,
    ca *c, char *why, size_t whylen)
{
	return config_expand_display(s->conf, req && *req ? req : tmpl,
	    c->rec.name, c->rec.product_line, r->display_name, c->rec.region,
	    c->rec.generation, NULL, why, whylen);
}

int
ca_create(ca_store *s, const ca_create_req *r, ca **out, char **csr_pem,
    char *why, size_t whylen)
{
	const signer_conf *cf;
	const product_conf *pc = NULL;
	ca *c = NULL, *parent = NULL;
	X509_NAME *subject = NULL;
	X509 *x = NULL;
	pubkey_info pk;
	char label[160], serial[64];
	const char *subj_tmpl;
	int rc, days, def_path, isroot;
	unsigned char *der = NULL;
	int derlen;

	*out = NULL;
	*csr_pem = NULL;
	why[0] = '\0';
	memset(&pk, 0, sizeof pk);
	pthread_mutex_lock(&s->admin);
	cf = s->conf;
	if ((c = calloc(1, sizeof *c)) == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	pthread_rwlock_rdlock(&s->lock);
	rc = plan_ca(s, r, c, &parent, &pc, why, whylen);
	if (rc == 0 && (c->rec.generation = pick_generation(s, c->rec.name,
	    r->generation)) == NULL) {
		sf_why(why, whylen, "generation \"%s\" of CA %s is taken",
		    r->generation ? r->generation : "", c->rec.name);
		rc = SF_EEXIST;
	}
	pthread_rwlock_unlock(&s->lock);
	if (rc)
		goto out;
	isroot = r->role == SECRETFREE__V1__CA_ROLE__CA_ROLE_ROOT;
	c->rec.role = r->role;
	c->rec.parent_id = parent ? parent->rec.id : 0;
	c->rec.external_parent = r->external_parent;
	c->parent = parent;
	switch (r->role) {
	case SECRETFREE__V1__CA_ROLE__CA_ROLE_ROOT:
		c->rec.key_type = r->key_type ? r->key_type : cf->root_key_type;
		days = r->validity_days ? r->validity_days :
		    cf->root_validity_days;
		def_path = cf->root_path_len;
		subj_tmpl = cf->root_subject;
		snprintf(label, sizeof label, "root-%s", c->rec.generation);
		break;
	case SECRETFREE__V1__CA_ROLE__CA_ROLE_INTERMEDIATE:
		c->rec.key_type = r->key_type ? r->key_type : pc->ca_key_type;
		days = r->validity_days ? r->validity_days :
		    pc->ca_validity_days;
		def_path = pc->ca_path_len;
		subj_tmpl = pc->ca_subject;
		snprintf(label, sizeof label, "intermediate-%s-%s",
		    c->rec.product_line, c->rec.generation);
		break;
	default:
		c->rec.key_type = r->key_type ? r->key_type :
		    cf->issuing_key_type;
		days = r->validity_days ? r->validity_days :
		    cf->issuing_validity_days;
		def_path = 0;
		subj_tmpl = cf->issuing_subject;
		snprintf(label, sizeof label, "issuing-%s-%s-%s",
		    c->rec.product_line, c->rec.region, c->rec.generation);
		break;
	}
	c->rec.path_len = r->has_path_len ? r->path_len : def_path;
	if (parent && parent->rec.path_len >= 0 &&
	    (c->rec.path_len < 0 || c->rec.path_len >= parent->rec.path_len)) {
		/* Within the parent's pathLen, or the chain cannot verify. */
		if (r->has_path_len) {
			sf_why(why, whylen, "pathLen %d does not fit under"
			    " CA %s (pathLen %d)", c->rec.path_len,
			    parent->rec.name, parent->rec.path_len);
			rc = SF_EINVAL;
			goto out;
		}
		c->rec.path_len = parent->rec.path_len - 1;
	}
	c->rec.key_label = strdup(label);
	c->rec.state = SECRETFREE__V1__CA_STATE__CA_STATE_PENDING;
	c->rec.created_at = sf_now();
	c->rec.permitted = r->npermitted ? join_lines(r->permitted,
	    r->npermitted) : strdup(pc ? pc->permitted : "");
	c->rec.excluded = r->nexcluded ? join_lines(r->excluded,
	    r->nexcluded) : strdup(pc ? pc->excluded : "");
	c->rec.serial = strdup("");
	c->rec.external_chain = strdup("");
	if (!c->rec.key_label || !c->rec.permitted || !c->rec.excluded ||
	    !c->rec.serial || !c->rec.external_chain) {
		rc = SF_ENOMEM;
		goto out;
	}
	rc = SF_EINVAL;
	if ((c->rec.subject = expand(s, r, r->subject, subj_tmpl, c, why,
	    whylen)) == NULL ||
	    (c->rec.crl_url = expand(s, r, r->crl_url, cf->crl_url, c, why,
	    whylen)) == NULL ||
	    (c->rec.ocsp_url = expand(s, r, r->ocsp_url, cf->ocsp_url, c, why,
	    whylen)) == NULL ||
	    (c->rec.ca_issuers_url = expand(s, r, r->ca_issuers_url,
	    cf->ca_issuers_url, c, why, whylen)) == NULL ||
	    (subject = profile_subject_parse(c->rec.subject, why,
	    whylen)) == NULL)
		goto out;
	{
		/* Refuse bad name constraints before a key is made for them. */
		int none;
		X509_EXTENSION *nc = profile_ext_name_constraints(
		    c->rec.permitted, c->rec.excluded, &none, why, whylen);

		if (nc == NULL && !none) {
			if (why[0] == '\0')
				sf_why(why, whylen, "bad name constraints");
			goto out;
		}
		X509_EXTENSION_free(nc);
	}
	if (c->rec.key_type < PUBKEY_EC_P256 ||
	    c->rec.key_type > PUBKEY_ED25519) {
		sf_why(why, whylen, "CA key type must be ec-p256, ec-p384,"
		    " rsa-2048, rsa-3072, rsa-4096 or ed25519");
		goto out;
	}
	if (days < 1 || days > 36500) {
		sf_why(why, whylen, "validity of %d days is out of range",
		    days);
		goto out;
	}

	/* The key, made inside the token. */
	if ((rc = token_generate_key(s->tok, label, c->rec.key_type,
	    &c->key)) != 0) {
		if (rc == SF_EEXIST)
			sf_why(why, whylen, "a key labelled %s already"
			    " exists in the token; pick another generation",
			    label);
		else
			sf_why(why, whylen, "cannot generate a %s key in the"
			    " token: %s", pubkey_type_name(c->rec.key_type),
			    sf_strerror(rc));
		goto out;
	}
	c->pub = token_key_public(c->key);
	if ((rc = pubkey_from_evp(c->pub, &pk, why, whylen)) != 0)
		goto out;
	profile_key_id(pk.key_bits, pk.key_bits_len, c->ski);
	log_info("CA %s %s: generated %s key %s", c->rec.name,
	    c->rec.generation, pubkey_type_name(c->rec.key_type), label);

	if (r->external_parent) {
		if ((*csr_pem = req_pem(s->tok, c->key, subject, c->pub, why,
		    whylen)) == NULL) {
			rc = SF_ECRYPTO;
			goto out;
		}
	} else {
		ca self;
		ca *issuer = parent;

		rc = SF_ECRYPTO;
		if ((x = build_ca_cert(c, subject, &pk, days, why, whylen)) ==
		    NULL)
			goto out;
		if (isroot) {
			/* Self-signed: the root issues itself. Its own
			 * record is not in the journal yet, so its
			 * certificate is journaled after the CA row. */
			uint8_t sn[SERIAL_LEN];

			if ((rc = profile_serial_new(sn, serial)) != 0 ||
			    (rc = profile_set_serial(x, sn, sizeof sn)) != 0)
				goto out;
			rc = SF_ECRYPTO;
			if (!X509_set_issuer_name(x, subject) ||
			    sign_cert(s->tok, c->key, x) != 0 ||
			    !sign_verify_cert(x, c->pub)) {
				sf_why(why, whylen, "cannot self-sign the"
				    " root certificate");
				goto out;
			}
		} else {
			ca_issue_meta m = { "ca", "", pk.sha256, "ca-admin",
			    "", "" };

			memset(&self, 0, sizeof self);
			if ((rc = ca_issue(s, issuer, x, &m, serial)) != 0) {
				sf_why(why, whylen, "CA %s could not sign %s:"
				    " %s", issuer->rec.name, c->rec.name,
				    sf_strerror(rc));
				goto out;
			}
		}
		c->cert = x;
		x = NULL;
		free(c->rec.serial);
		c->rec.serial = strdup(serial);
		c->rec.state = SECRETFREE__V1__CA_STATE__CA_STATE_ACTIVE;
		{
			struct tm tm;

			ASN1_TIME_to_tm(X509_get0_notBefore(c->cert), &tm);
			c->rec.not_before = (int64_t)timegm(&tm);
			ASN1_TIME_to_tm(X509_get0_notAfter(c->cert), &tm);
			c->rec.not_after = (int64_t)timegm(&tm);
		}
		if ((derlen = i2d_X509(c->cert, &der)) <= 0) {
			rc = SF_ECRYPTO;
			goto out;
		}
		c->rec.cert_der = malloc((size_t)derlen);
		if (c->rec.cert_der == NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
		memcpy(c->rec.cert_der, der, (size_t)derlen);
		c->rec.cert_len = (size_t)derlen;
	}
	if ((rc = journal_ca_insert(s->jn, &c->rec)) != 0) {
		sf_why(why, whylen, "cannot record CA %s in the journal",
		    c->rec.name);
		goto out;
	}
	if (isroot && c->cert) {
		journal_cert jc;

		memset(&jc, 0, sizeof jc);
		jc.ca_id = c->rec.id;
		jc.serial = c->rec.serial;
		jc.subject = c->rec.subject;
		jc.device_id = "";
		jc.key_sha256 = pk.sha256;
		jc.not_before = c->rec.not_before;
		jc.not_after = c->rec.not_after;
		jc.issued_at = sf_now();
		jc.requester = "ca-admin";
		jc.profile = "ca";
		jc.der = c->rec.cert_der;
		jc.der_len = c->rec.cert_len;
		if ((rc = journal_cert_record(s->jn, &jc)) != 0) {
			sf_why(why, whylen, "cannot journal the root"
			    " certificate");
			goto out;
		}
	}
	if ((rc = ca_prepare(c)) != 0 || (rc = store_append(s, c)) != 0)
		goto out;
	log_info("CA %s %s created (%s, %s, serial %s)", c->rec.name,
	    c->rec.generation, role_name(c->rec.role),
	    c->cert ? "active" : "pending: waiting for its certificate",
	    c->rec.serial);
	*out = c;
	c = NULL;  /* transferred */
out:
	pthread_mutex_unlock(&s->admin);
	if (c && c->key && rc)
		log_warnx("CA creation failed after key %s was generated; the"
		    " unused key stays in the token", c->rec.key_label);
	ca_free(c);
	X509_free(x);
	X509_NAME_free(subject);
	OPENSSL_free(der);
	pubkey_info_free(&pk);
	if (rc) {
		free(*csr_pem);
		*csr_pem = NULL;
	}
	return rc;
}

int
ca_export_csr(ca_store *s, ca *c, const char *subject, char **csr_pem,
    char *why, size_t whylen)
{
	X509_NAME *n = NULL;
	int rc = SF_EINVAL;

	*csr_pem = NULL;
	if (c->key == NULL) {
		sf_why(why, whylen, "the key of CA %s is not in the token",
		    c->rec.name);
		return SF_EUNAVAIL;
	}
	if (subject && *subject)
		n = profile_subject_parse(subject, why, whylen);
	else if (c->cert)
		n = X509_NAME_dup(X509_get_subject_name(c->cert));
	else
		n = profile_subject_parse(c->rec.subject, why, whylen);
	if (n == NULL)
		return rc;
	if ((*csr_pem = req_pem(s->tok, c->key, n, c->pub, why, whylen)) !=
	    NULL)
		rc = 0;
	else
		rc = SF_ECRYPTO;
	X509_NAME_free(n);
	return rc;
}

static STACK_OF(X509) *
pem_certs(const char *pem)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x;

	if (sk == NULL || b == NULL) {
		sk_X509_free(sk);
		BIO_free(b);
		return NULL;
	}
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		if (!sk_X509_push(sk, x))
			X509_free(x);
	ERR_clear_error();
	BIO_free(b);
	return sk;
}

int
ca_import_cert(ca_store *s, ca *c, const char *cert_pem,
    const char *chain_pem, char *why, size_t whylen)
{
	STACK_OF(X509) *certs = NULL, *chain = NULL;
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509 *x;
	unsigned char *der = NULL;
	char serial[64];
	int rc = SF_EINVAL, n, derlen;

	pthread_mutex_lock(&s->admin);
	if (c->rec.state != SECRETFREE__V1__CA_STATE__CA_STATE_PENDING) {
		sf_why(why, whylen, "CA %s %s is not waiting for a"
		    " certificate", c->rec.name, c->rec.generation);
		rc = SF_ESTATE;
		goto out;
	}
	if ((certs = pem_certs(cert_pem)) == NULL ||
	    sk_X509_num(certs) != 1) {
		sf_why(why, whylen, "certificate_pem must hold exactly one"
		    " PEM certificate");
		goto out;
	}
	x = sk_X509_value(certs, 0);
	if (c->pub == NULL || EVP_PKEY_eq(X509_get0_pubkey(x), c->pub) != 1) {
		sf_why(why, whylen, "the certificate is not for the key of"
		    " CA %s", c->rec.name);
		rc = SF_EPERM;
		goto out;
	}
	if (X509_check_ca(x) != 1 ||
	    !(X509_get_key_usage(x) & KU_KEY_CERT_SIGN)) {
		sf_why(why, whylen, "the certificate is not a CA certificate"
		    " with keyCertSign");
		goto out;
	}
	if ((chain = pem_certs(chain_pem ? chain_pem : "")) == NULL ||
	    (n = sk_X509_num(chain)) == 0) {
		sf_why(why, whylen, "chain_pem must hold the issuer's chain"
		    " up to its root");
		goto out;
	}
	/* The last certificate of the chain is the trust anchor. */
	if ((store = X509_STORE_new()) == NULL ||
	    !X509_STORE_add_cert(store, sk_X509_value(chain, n - 1)) ||
	    (ctx = X509_STORE_CTX_new()) == NULL ||
	    !X509_STORE_CTX_init(ctx, store, x, chain)) {
		rc = SF_ECRYPTO;
		goto out;
	}
	if (X509_verify_cert(ctx) != 1) {
		sf_why(why, whylen, "the certificate does not verify against"
		    " the given chain: %s", X509_verify_cert_error_string(
		    X509_STORE_CTX_get_error(ctx)));
		goto out;
	}
	if (profile_serial_hex(X509_get0_serialNumber(x), serial,
	    sizeof serial) != 0 || (derlen = i2d_X509(x, &der)) <= 0) {
		rc = SF_ECRYPTO;
		goto out;
	}
	{
		struct tm tm;
		int64_t nb, na;

		ASN1_TIME_to_tm(X509_get0_notBefore(x), &tm);
		nb = (int64_t)timegm(&tm);
		ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm);
		na = (int64_t)timegm(&tm);
		if ((rc = journal_ca_set_cert(s->jn, c->rec.id, der,
		    (size_t)derlen, serial, nb, na,
		    SECRETFREE__V1__CA_STATE__CA_STATE_ACTIVE,
		    chain_pem)) != 0) {
			sf_why(why, whylen, "cannot record the certificate");
			goto out;
		}
		pthread_rwlock_wrlock(&s->lock);
		free(c->rec.external_chain);
		c->rec.external_chain = strdup(chain_pem);
		free(c->rec.serial);
		c->rec.serial = strdup(serial);
		c->rec.not_before = nb;
		c->rec.not_after = na;
		X509_up_ref(x);
		c->cert = x;
		c->rec.state = SECRETFREE__V1__CA_STATE__CA_STATE_ACTIVE;
		rc = ca_prepare(c);
		pthread_rwlock_unlock(&s->lock);
	}
	log_info("CA %s %s: imported certificate %s from the external parent",
	    c->rec.name, c->rec.generation, serial);
out:
	pthread_mutex_unlock(&s->admin);
	ERR_clear_error();
	OPENSSL_free(der);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_pop_free(certs, X509_free);
	sk_X509_pop_free(chain, X509_free);
	return rc;
}
