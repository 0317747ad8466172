/*
 * ca_create.c - making a CA (ca_create in ca.h): a root, a product line's
 * intermediate or a region's issuing CA. Five steps under the store's
 * admin lock, ordered so that the token is touched only once the request
 * is known to be good: plan (name, parent, generation and the configured
 * defaults), validate (subject, name constraints, key type, validity),
 * generate the key in the token, certify (the parent signs through
 * ca_issue, a root signs itself through the same path; with an external
 * parent a CSR is made instead) and record (the journal, then the store).
 * A rotation (ca_rotate.c) plans its own way and takes the same steps from
 * the defaults on (ca_int.h).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509v3.h>

#include "ca_int.h"
#include "devrec.h"
#include "err.h"
#include "log.h"
#include "profile.h"
#include "pubkey.h"
#include "secretfree/v1/common.pb-c.h"
#include "util.h"

#define ROLE_ROOT SECRETFREE__V1__CA_ROLE__CA_ROLE_ROOT
#define ROLE_INTERMEDIATE SECRETFREE__V1__CA_ROLE__CA_ROLE_INTERMEDIATE
#define ROLE_ISSUING SECRETFREE__V1__CA_ROLE__CA_ROLE_ISSUING

static const char *
role_name(int role)
{
	switch (role) {
	case ROLE_ROOT: return "root";
	case ROLE_INTERMEDIATE: return "intermediate";
	case ROLE_ISSUING: return "issuing";
	}
	return "?";
}

/* ---- step 1: plan ---- */

/* The CA's name from its role, product line and region; the product
 * line's configuration. */
static int
plan_name(const signer_conf *cf, const ca_create_req *r, char *name,
    size_t namelen, const product_conf **pcp, char *why, size_t whylen)
{
	const char *pl = r->product_line ? r->product_line : "";
	const char *rg = r->region ? r->region : "";

	*pcp = NULL;
	if (r->role == ROLE_ROOT) {
		if (*pl || *rg) {
			sf_why(why, whylen, "a root CA has no product line or"
			    " region");
			return SF_EINVAL;
		}
		snprintf(name, namelen, "root");
		return 0;
	}
	if (r->role != ROLE_INTERMEDIATE && r->role != ROLE_ISSUING) {
		sf_why(why, whylen, "role must be root, intermediate or"
		    " issuing");
		return SF_EINVAL;
	}
	if (!sf_name_valid(pl)) {
		sf_why(why, whylen, "product line \"%s\" is not a valid id"
		    " (1-32 of a-z, 0-9, -)", pl);
		return SF_EINVAL;
	}
	if ((*pcp = signer_conf_product(cf, pl)) == NULL) {
		sf_why(why, whylen, "product line \"%s\" is not configured:"
		    " add a [product.%s] section to %s", pl, pl, cf->path);
		return SF_ESTATE;
	}
	if (r->role == ROLE_INTERMEDIATE) {
		if (*rg) {
			sf_why(why, whylen, "an intermediate CA has no"
			    " region");
			return SF_EINVAL;
		}
		snprintf(name, namelen, "%s", pl);
		return 0;
	}
	if (!sf_name_valid(rg)) {
		sf_why(why, whylen, "region \"%s\" is not a valid id (1-32"
		    " of a-z, 0-9, -)", rg);
		return SF_EINVAL;
	}
	snprintf(name, namelen, "%s.%s", rg, pl);
	return 0;
}

int
ca_create_parent(ca_store *s, int role, const char *product_line,
    const char *name, ca **parent, char *why, size_t whylen)
{
	const char *pname = role == ROLE_INTERMEDIATE ? "root" : product_line;
	ca *p = ca_find_locked(s, pname, NULL, 1);

	*parent = NULL;
	if (p == NULL || p->rec.state !=
	    SECRETFREE__V1__CA_STATE__CA_STATE_ACTIVE || !p->cert) {
		sf_why(why, whylen, "no active %s CA \"%s\" to sign %s: create"
		    " it first", role == ROLE_INTERMEDIATE ? "root" :
		    "intermediate", pname, name);
		return SF_ESTATE;
	}
	if (p->key == NULL) {
		sf_why(why, whylen, "the key of CA %s is not in the token",
		    pname);
		return SF_EUNAVAIL;
	}
	if (p->rec.path_len == 0) {
		sf_why(why, whylen, "CA %s has pathLen 0: it cannot sign"
		    " another CA", pname);
		return SF_ESTATE;
	}
	*parent = p;
	return 0;
}

char *
ca_create_generation(ca_store *s, const char *name, const char *want)
{
	char gen[16];
	time_t now = time(NULL);
	struct tm tm;

	if (want && *want)
		return ca_find_locked(s, name, want, 0) ? NULL : strdup(want);
	gmtime_r(&now, &tm);
	for (char l = 'a'; l <= 'z'; l++) {
		snprintf(gen, sizeof gen, "%d%c", tm.tm_year + 1900, l);
		if (ca_find_locked(s, name, gen, 0) == NULL)
			return strdup(gen);
	}
	return NULL;
}

/* Name, parent and generation, against the store as it is now. */
static int
plan_identity(ca_store *s, ca_create_plan *p, char *why, size_t whylen)
{
	const ca_create_req *r = p->r;
	journal_ca *rec = &p->c->rec;
	char name[80];
	ca *existing;
	int rc;

	pthread_rwlock_rdlock(&s->lock);
	if ((rc = plan_name(p->cf, r, name, sizeof name, &p->pc, why,
	    whylen)) != 0)
		goto out;
	if ((existing = ca_find_locked(s, name, NULL, 1)) != NULL &&
	    ca_state_live(existing->rec.state)) {
		sf_why(why, whylen, "CA %s already exists (generation %s, %s);"
		    " rotate it instead", name, existing->rec.generation,
		    existing->rec.state ==
		    SECRETFREE__V1__CA_STATE__CA_STATE_PENDING ? "pending" :
		    "active");
		rc = SF_EEXIST;
		goto out;
	}
	if (!r->external_parent && r->role != ROLE_ROOT &&
	    (rc = ca_create_parent(s, r->role, r->product_line, name,
	    &p->parent, why, whylen)) != 0)
		goto out;
	rec->name = strdup(name);
	rec->product_line = strdup(r->product_line ? r->product_line : "");
	rec->region = strdup(r->region ? r->region : "");
	if (!rec->name || !rec->product_line || !rec->region) {
		rc = SF_ENOMEM;
		goto out;
	}
	rec->role = r->role;
	if ((rec->generation = ca_create_generation(s, name, r->generation)) ==
	    NULL) {
		sf_why(why, whylen, "generation \"%s\" of CA %s is taken",
		    r->generation ? r->generation : "", name);
		rc = SF_EEXIST;
	}
out:
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

void
ca_create_defaults(ca_create_plan *p, int key_type, int days)
{
	const signer_conf *cf = p->cf;
	journal_ca *rec = &p->c->rec;

	switch (rec->role) {
	case ROLE_ROOT:
		rec->key_type = key_type ? key_type : cf->root_key_type;
		p->days = days ? days : cf->root_validity_days;
		p->def_path = cf->root_path_len;
		p->subj_tmpl = cf->root_subject;
		snprintf(p->label, sizeof p->label, "root-%s", rec->generation);
		break;
	case ROLE_INTERMEDIATE:
		rec->key_type = key_type ? key_type : p->pc->ca_key_type;
		p->days = days ? days : p->pc->ca_validity_days;
		p->def_path = p->pc->ca_path_len;
		p->subj_tmpl = p->pc->ca_subject;
		snprintf(p->label, sizeof p->label, "intermediate-%s-%s",
		    rec->product_line, rec->generation);
		break;
	default:
		rec->key_type = key_type ? key_type : cf->issuing_key_type;
		p->days = days ? days : cf->issuing_validity_days;
		p->def_path = 0;
		p->subj_tmpl = cf->issuing_subject;
		snprintf(p->label, sizeof p->label, "issuing-%s-%s-%s",
		    rec->product_line, rec->region, rec->generation);
		break;
	}
}

static char *
expand(const ca_create_plan *p, const char *req, const char *tmpl, char *why,
    size_t whylen)
{
	const journal_ca *rec = &p->c->rec;

	return signer_conf_expand_display(p->cf, req && *req ? req : tmpl,
	    rec->name, rec->product_line, p->r->display_name, rec->region,
	    rec->generation, NULL, why, whylen);
}

/* The rest of the CA's record: pathLen within its parent's, name
 * constraints, the subject and URLs from their templates. */
static int
plan_record(ca_create_plan *p, char *why, size_t whylen)
{
	const ca_create_req *r = p->r;
	const ca *parent = p->parent;
	journal_ca *rec = &p->c->rec;

	rec->parent_id = parent ? parent->rec.id : 0;
	rec->external_parent = r->external_parent;
	p->c->parent = p->parent;
	rec->path_len = r->has_path_len ? r->path_len : p->def_path;
	if (parent && parent->rec.path_len >= 0 && (rec->path_len < 0 ||
	    rec->path_len >= parent->rec.path_len)) {
		/* Within the parent's pathLen, or the chain cannot verify. */
		if (r->has_path_len) {
			sf_why(why, whylen, "pathLen %d does not fit under CA"
			    " %s (pathLen %d)", rec->path_len,
			    parent->rec.name, parent->rec.path_len);
			return SF_EINVAL;
		}
		rec->path_len = parent->rec.path_len - 1;
	}
	rec->key_label = strdup(p->label);
	rec->state = SECRETFREE__V1__CA_STATE__CA_STATE_PENDING;
	rec->created_at = sf_now();
	rec->permitted = r->npermitted ? sf_join(r->permitted,
	    r->npermitted, "\n") : strdup(p->pc ? p->pc->permitted : "");
	rec->excluded = r->nexcluded ? sf_join(r->excluded, r->nexcluded,
	    "\n") : strdup(p->pc ? p->pc->excluded : "");
	rec->crl_shards = r->crl_shards ? r->crl_shards : p->cf->crl_shards;
	rec->serial = strdup("");
	rec->external_chain = strdup("");
	if (!rec->key_label || !rec->permitted || !rec->excluded ||
	    !rec->serial || !rec->external_chain)
		return SF_ENOMEM;
	if ((rec->subject = expand(p, r->subject, p->subj_tmpl, why,
	    whylen)) == NULL ||
	    (rec->crl_url = expand(p, r->crl_url, p->cf->crl_url, why,
	    whylen)) == NULL ||
	    (rec->ocsp_url = expand(p, r->ocsp_url, p->cf->ocsp_url, why,
	    whylen)) == NULL ||
	    (rec->ca_issuers_url = expand(p, r->ca_issuers_url,
	    p->cf->ca_issuers_url, why, whylen)) == NULL)
		return SF_EINVAL;
	return 0;
}

/* ---- step 2: validate ---- */

/* Everything the certificate will say is checked before a key is made
 * for it. All refusals are SF_EINVAL. */
static int
validate(ca_create_plan *p, char *why, size_t whylen)
{
	const journal_ca *rec = &p->c->rec;
	X509_EXTENSION *nc;
	int none;

	if ((p->subject = profile_subject_parse(rec->subject, why,
	    whylen)) == NULL)
		return SF_EINVAL;
	nc = profile_ext_name_constraints(rec->permitted, rec->excluded,
	    &none, why, whylen);
	X509_EXTENSION_free(nc);
	if (nc == NULL && !none) {
		if (why[0] == '\0')
			sf_why(why, whylen, "bad name constraints");
		return SF_EINVAL;
	}
	if (rec->key_type < PUBKEY_EC_P256 || rec->key_type > PUBKEY_ED25519) {
		sf_why(why, whylen, "CA key type must be ec-p256, ec-p384,"
		    " rsa-2048, rsa-3072, rsa-4096 or ed25519");
		return SF_EINVAL;
	}
	if (p->days < 1 || p->days > 36500) {
		sf_why(why, whylen, "validity of %d days is out of range",
		    p->days);
		return SF_EINVAL;
	}
	/* Each partition is published at a URL derived from crl_url. */
	if (rec->crl_shards < 1 || rec->crl_shards > CONFIG_MAX_SHARDS ||
	    (rec->crl_shards > 1 && *rec->crl_url == '\0')) {
		sf_why(why, whylen, "crl_shards must be 1..%d, and more than"
		    " one needs a crl_url", CONFIG_MAX_SHARDS);
		return SF_EINVAL;
	}
	return 0;
}

/* ---- step 3: the key, made inside the token ---- */

static int
generate_key(ca_store *s, ca_create_plan *p, char *why, size_t whylen)
{
	ca *c = p->c;
	int rc;

	if ((rc = token_generate_key(s->tok, p->label, c->rec.key_type,
	    &c->key)) != 0) {
		if (rc == SF_EEXIST)
			sf_why(why, whylen, "a key labelled %s already exists"
			    " in the token; pick another generation",
			    p->label);
		else
			sf_why(why, whylen, "cannot generate a %s key in the"
			    " token: %s", pubkey_type_name(c->rec.key_type),
			    sf_strerror(rc));
		return rc;
	}
	c->pub = token_key_public(c->key);
	if ((rc = pubkey_from_evp(c->pub, &p->pk, why, whylen)) != 0)
		return rc;
	profile_key_id(p->pk.key_bits, p->pk.key_bits_len, c->ski);
	log_info("CA %s %s: generated %s key %s", c->rec.name,
	    c->rec.generation, pubkey_type_name(c->rec.key_type), p->label);
	return 0;
}

/* ---- step 4: certify ---- */

/* The CA certificate for c, not yet signed: every extension from the
 * profile. */
static X509 *
build_ca_cert(const ca *c, X509_NAME *subject, const pubkey_info *pk,
    int days, char *why, size_t whylen)
{
	X509 *x = X509_new();
	X509_EXTENSION *nc;
	int none, ok = 0;

	if (x == NULL || !X509_set_version(x, X509_VERSION_3) ||
	    !X509_set_subject_name(x, subject) ||
	    profile_set_validity(x, days) != 0 ||
	    profile_set_pubkey(x, pk) != 0 ||
	    profile_add0(x, profile_ext_basic(1, c->rec.path_len)) != 0 ||
	    /* digitalSignature too: the CA signs its own OCSP responses. */
	    profile_add0(x, profile_ext_key_usage(KU_KEY_CERT_SIGN |
	    KU_CRL_SIGN | KU_DIGITAL_SIGNATURE)) != 0 ||
	    profile_add0(x, profile_ext_ski(c->ski)) != 0)
		goto out;
	nc = profile_ext_name_constraints(c->rec.permitted, c->rec.excluded,
	    &none, why, whylen);
	ok = none || profile_add0(x, nc) == 0;
out:
	if (!ok) {
		if (why[0] == '\0')
			sf_why(why, whylen, "cannot build the CA certificate");
		X509_free(x);
		return NULL;
	}
	return x;
}

/*
 * Build and sign c's certificate, or with an external parent make the CSR
 * the parent will sign. A root is its own issuer; as ca_prepare has not
 * yet run for it, it has no AKI, CRL DP or AIA to add, and a self-signed
 * root carries none. Its journal row has to wait for the CA's own row
 * (record); a certificate signed by the parent is journaled now, under
 * the parent.
 */
static int
certify(ca_store *s, ca_create_plan *p, int external, char **csr_pem,
    char *why, size_t whylen)
{
	ca *c = p->c;
	char serial[64];
	unsigned char *der = NULL;
	int rc, derlen;

	if (external)
		return ca_export_csr(s, c, NULL, csr_pem, why, whylen);
	if ((c->cert = build_ca_cert(c, p->subject, &p->pk, p->days, why,
	    whylen)) == NULL)
		return SF_ECRYPTO;
	if (p->parent == NULL) {
		if ((rc = ca_issue_sign(s, c, c->cert, p->meta.profile,
		    serial)) != 0) {
			sf_why(why, whylen, "cannot self-sign the root"
			    " certificate");
			return rc;
		}
	} else if ((rc = ca_issue(s, p->parent, c->cert, &p->meta,
	    serial)) != 0) {
		sf_why(why, whylen, "CA %s could not sign %s: %s",
		    p->parent->rec.name, c->rec.name, sf_strerror(rc));
		return rc;
	}
	free(c->rec.serial);
	c->rec.serial = strdup(serial);
	c->rec.state = SECRETFREE__V1__CA_STATE__CA_STATE_ACTIVE;
	c->rec.not_before = profile_time_unix(X509_get0_notBefore(c->cert));
	c->rec.not_after = profile_time_unix(X509_get0_notAfter(c->cert));
	if ((derlen = i2d_X509(c->cert, &der)) <= 0)
		return SF_ECRYPTO;
	/* The record is freed with free(), not OPENSSL_free(). */
	if ((c->rec.cert_der = malloc((size_t)derlen)) != NULL) {
		memcpy(c->rec.cert_der, der, (size_t)derlen);
		c->rec.cert_len = (size_t)derlen;
	}
	OPENSSL_free(der);
	return c->rec.serial && c->rec.cert_der ? 0 : SF_ENOMEM;
}

int
ca_create_make(ca_store *s, ca_create_plan *p, int external,
    char **csr_pem, char *why, size_t whylen)
{
	int rc;

	if ((rc = validate(p, why, whylen)) != 0 ||
	    (rc = generate_key(s, p, why, whylen)) != 0)
		return rc;
	return certify(s, p, external, csr_pem, why, whylen);
}

/* ---- step 5: record ---- */

static int
record(ca_store *s, ca_create_plan *p, char *why, size_t whylen)
{
	ca *c = p->c;
	int rc;

	if ((rc = journal_ca_insert(s->jn, &c->rec)) != 0) {
		sf_why(why, whylen, "cannot record CA %s in the journal",
		    c->rec.name);
		return rc;
	}
	/* A self-signed root: its certificate, issued by itself. */
	if (c->cert && p->parent == NULL &&
	    (rc = ca_issue_record(s, c, c->cert, &p->meta,
	    c->rec.serial)) != 0) {
		sf_why(why, whylen, "cannot journal the root certificate");
		return rc;
	}
	if ((rc = ca_prepare(c)) != 0 ||
	    (rc = ca_store_append(s, c, NULL)) != 0)
		return rc;
	log_info("CA %s %s created (%s, %s, serial %s)", c->rec.name,
	    c->rec.generation, role_name(c->rec.role),
	    c->cert ? "active" : "pending: waiting for its certificate",
	    c->rec.serial);
	return 0;
}

int
ca_create(ca_store *s, const ca_create_req *r, ca **out, char **csr_pem,
    char *why, size_t whylen)
{
	ca_create_plan p;
	int rc;

	*out = NULL;
	*csr_pem = NULL;
	why[0] = '\0';
	memset(&p, 0, sizeof p);
	p.r = r;
	p.meta = (ca_issue_meta){ "ca", "", p.pk.sha256, "ca-admin", "", "" };
	pthread_mutex_lock(&s->admin);
	p.cf = s->conf;
	if ((p.c = calloc(1, sizeof *p.c)) == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	if ((rc = plan_identity(s, &p, why, whylen)) != 0 ||
	    (p.parent && (rc = ca_usable(s, p.parent, why, whylen)) != 0))
		goto out;
	ca_create_defaults(&p, r->key_type, r->validity_days);
	if ((rc = plan_record(&p, why, whylen)) != 0 ||
	    (rc = ca_create_make(s, &p, r->external_parent, csr_pem, why,
	    whylen)) != 0 ||
	    (rc = record(s, &p, why, whylen)) != 0)
		goto out;
	*out = p.c;
	p.c = NULL;  /* transferred */
out:
	pthread_mutex_unlock(&s->admin);
	ca_create_plan_fini(&p, rc, csr_pem);
	return rc;
}

void
ca_create_plan_fini(ca_create_plan *p, int rc, char **csr_pem)
{
	if (p->c && p->c->key && rc)
		log_warnx("CA %s: failed after key %s was generated; the unused"
		    " key stays in the token", p->c->rec.name,
		    p->c->rec.key_label);
	ca_free(p->c);
	p->c = NULL;
	X509_NAME_free(p->subject);
	p->subject = NULL;
	pubkey_info_free(&p->pk);
	if (rc && csr_pem) {
		free(*csr_pem);
		*csr_pem = NULL;
	}
}
