/*
 * ca_rotate.c - a CA's next generation (ca_rotate) and the end of an old
 * generation's overlap (ca_retire); see ca.h.
 *
 * A rotation plans from the generation it replaces: same name, role,
 * product line, region, subject, name constraints and pathLen, so that
 * relying parties that match on names see no change and the chain keeps
 * its shape; a new key (the old key type unless another is asked for),
 * the role's configured validity, and a certificate from the parent's
 * ACTIVE generation. From the defaults on it takes creation's steps
 * (ca_int.h). The new generation and the old one's retirement are one
 * journal transaction, and one step in the store, so that a name never
 * has two ACTIVE generations, nor none.
 *
 * The root is not rotated: devices trust it by its key, and a new root
 * is of use only once it is in every device's trust store, which nothing
 * here can do (see DESIGN.md, "CA rotation").
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca_int.h"
#include "err.h"
#include "log.h"
#include "pbenum.h"
#include "util.h"

static int
is_retiring(int state)
{
	return state == CA_RETIRING;
}

/* ---- rotation ---- */

/* The generation to replace, the parent to sign the new one and the new
 * one's identity, with s->lock held. */
static int
plan_locked(ca_store *s, ca_create_plan *p, const ca_rotate_req *r,
    ca **oldp, char *why, size_t whylen)
{
	journal_ca *rec = &p->c->rec;
	ca *old, *pending = NULL;
	int rc;

	if ((old = ca_find_locked(s, r->name, NULL, 0)) == NULL) {
		sf_why(why, whylen, "no CA named %s", r->name);
		return SF_ENOTFOUND;
	}
	if (old->rec.role == CA_ROOT) {
		sf_why(why, whylen, "the root CA is not rotated: devices trust"
		    " it by its key, so a new root is of use only once every"
		    " device trusts it; rotate the intermediate and issuing"
		    " CAs, whose keys devices do not hold");
		return SF_ESTATE;
	}
	for (size_t i = 0; i < s->n && pending == NULL; i++)
		if (strcmp(s->v[i]->rec.name, r->name) == 0 &&
		    s->v[i]->rec.state == CA_PENDING)
			pending = s->v[i];
	if (pending != NULL) {
		sf_why(why, whylen, "a rotation of CA %s is pending (generation"
		    " %s): import its certificate first (secretfree ca"
		    " import-cert %s)", r->name, pending->rec.generation,
		    r->name);
		return SF_ESTATE;
	}
	if (old->rec.state != CA_ACTIVE) {
		sf_why(why, whylen, "CA %s has no active generation to rotate"
		    " (generation %s is %s): make a new one with secretfree ca"
		    " create", r->name, old->rec.generation,
		    ca_state_name(old->rec.state));
		return SF_ESTATE;
	}
	if ((p->pc = signer_conf_product(p->cf, old->rec.product_line)) ==
	    NULL) {
		sf_why(why, whylen, "product line \"%s\" is no longer"
		    " configured: add its [product.%s] section to %s",
		    old->rec.product_line, old->rec.product_line, p->cf->path);
		return SF_ESTATE;
	}
	if (!old->rec.external_parent && (rc = ca_create_parent(s,
	    old->rec.role, old->rec.product_line, old->rec.name, &p->parent,
	    why, whylen)) != 0)
		return rc;
	rec->role = old->rec.role;
	rec->name = strdup(old->rec.name);
	rec->product_line = strdup(old->rec.product_line);
	rec->region = strdup(old->rec.region);
	if (!rec->name || !rec->product_line || !rec->region)
		return SF_ENOMEM;
	if ((rec->generation = ca_create_generation(s, r->name,
	    r->generation)) == NULL) {
		sf_why(why, whylen, "generation \"%s\" of CA %s is taken",
		    r->generation ? r->generation : "", r->name);
		return SF_EEXIST;
	}
	*oldp = old;
	return 0;
}

/*
 * A URL of the new generation from its template. Generations must not
 * share a CRL (each signs its own) or a caIssuers certificate, so for
 * those (per_gen) a ${name} in a template without ${generation} stands
 * for "<name>-<generation>".
 */
static char *
url_for(const ca_create_plan *p, const char *tmpl, int per_gen, char *why,
    size_t whylen)
{
	const journal_ca *rec = &p->c->rec;
	char *name = NULL, *url;

	if (per_gen && strstr(tmpl, "${generation}") == NULL &&
	    (name = sf_aprintf("%s-%s", rec->name, rec->generation)) == NULL)
		return NULL;
	url = signer_conf_expand_display(p->cf, tmpl, name ? name : rec->name,
	    rec->product_line, NULL, rec->region, rec->generation, NULL, why,
	    whylen);
	free(name);
	return url;
}

/* SF_ESTATE if another generation of the name has the new one's CRL or
 * caIssuers URL. */
static int
urls_distinct(ca_store *s, const journal_ca *rec, char *why, size_t whylen)
{
	int rc = 0;

	pthread_rwlock_rdlock(&s->lock);
	for (size_t i = 0; i < s->n && rc == 0; i++) {
		const journal_ca *o = &s->v[i]->rec;
		const char *same = NULL;

		if (strcmp(o->name, rec->name) != 0)
			continue;
		if (*rec->crl_url && strcmp(o->crl_url, rec->crl_url) == 0)
			same = rec->crl_url;
		else if (*rec->ca_issuers_url &&
		    strcmp(o->ca_issuers_url, rec->ca_issuers_url) == 0)
			same = rec->ca_issuers_url;
		if (same) {
			sf_why(why, whylen, "generation %s of CA %s would"
			    " publish at %s, as generation %s does: put"
			    " ${name} or ${generation} in the URL templates"
			    " of [defaults]", rec->generation, rec->name, same,
			    o->generation);
			rc = SF_ESTATE;
		}
	}
	pthread_rwlock_unlock(&s->lock);
	return rc;
}

/* The rest of the new generation's record, from the old one's. */
static int
plan_record(ca_store *s, ca_create_plan *p, const ca *old, char *why,
    size_t whylen)
{
	journal_ca *rec = &p->c->rec;
	const ca *parent = p->parent;

	rec->parent_id = parent ? parent->rec.id : 0;
	rec->external_parent = old->rec.external_parent;
	/* The new generation publishes its CRLs as the old one did. */
	rec->crl_shards = old->rec.crl_shards;
	p->c->parent = p->parent;
	rec->path_len = old->rec.path_len;
	if (parent && parent->rec.path_len >= 0 && (rec->path_len < 0 ||
	    rec->path_len >= parent->rec.path_len))
		rec->path_len = parent->rec.path_len - 1;
	rec->key_label = strdup(p->label);
	rec->state = CA_PENDING;
	rec->created_at = sf_now();
	rec->permitted = strdup(old->rec.permitted);
	rec->excluded = strdup(old->rec.excluded);
	rec->serial = strdup("");
	rec->external_chain = strdup("");
	rec->subject = ca_subject_text(old);
	if (!rec->key_label || !rec->permitted || !rec->excluded ||
	    !rec->serial || !rec->external_chain || !rec->subject)
		return SF_ENOMEM;
	if ((rec->crl_url = url_for(p, p->cf->crl_url, 1, why, whylen)) ==
	    NULL ||
	    (rec->ocsp_url = url_for(p, p->cf->ocsp_url, 0, why, whylen)) ==
	    NULL ||
	    (rec->ca_issuers_url = url_for(p, p->cf->ca_issuers_url, 1, why,
	    whylen)) == NULL)
		return SF_EINVAL;
	return urls_distinct(s, rec, why, whylen);
}

/* The journal (the new generation, and the old one RETIRING unless the
 * new one waits for an outside parent), then the store. */
static int
record(ca_store *s, ca_create_plan *p, ca *old, char *why, size_t whylen)
{
	ca *c = p->c, *retire = c->cert ? old : NULL;
	int rc;

	if ((rc = journal_ca_rotate(s->jn, &c->rec, retire ? old->rec.id :
	    0)) != 0) {
		sf_why(why, whylen, "cannot record the rotation of CA %s in"
		    " the journal", c->rec.name);
		return rc;
	}
	if ((rc = ca_prepare(c)) != 0 ||
	    (rc = ca_store_append(s, c, retire)) != 0)
		return rc;
	log_info("CA %s rotated: generation %s %s (serial %s), generation %s"
	    " %s", c->rec.name, c->rec.generation, c->cert ? "active" :
	    "pending: waiting for its certificate", c->rec.serial,
	    old->rec.generation, retire ? "retiring" : "active until then");
	return 0;
}

int
ca_rotate(ca_store *s, const ca_rotate_req *r, ca **out, ca **prev,
    char **csr_pem, char *why, size_t whylen)
{
	ca_create_plan p;
	ca *old = NULL;
	int rc;

	*out = *prev = NULL;
	*csr_pem = NULL;
	why[0] = '\0';
	memset(&p, 0, sizeof p);
	p.meta = (ca_issue_meta){ "ca", "", p.pk.sha256, "ca-admin:rotate",
	    "", "" };
	pthread_mutex_lock(&s->admin);
	p.cf = s->conf;
	if ((p.c = calloc(1, sizeof *p.c)) == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	pthread_rwlock_rdlock(&s->lock);
	rc = plan_locked(s, &p, r, &old, why, whylen);
	pthread_rwlock_unlock(&s->lock);
	if (rc != 0 ||
	    (p.parent && (rc = ca_usable(s, p.parent, why, whylen)) != 0))
		goto out;
	ca_create_defaults(&p, r->key_type ? r->key_type : old->rec.key_type,
	    0);
	if ((rc = plan_record(s, &p, old, why, whylen)) != 0 ||
	    (rc = ca_create_make(s, &p, old->rec.external_parent, csr_pem,
	    why, whylen)) != 0 ||
	    (rc = record(s, &p, old, why, whylen)) != 0)
		goto out;
	*out = p.c;
	*prev = old;
	p.c = NULL;  /* transferred */
out:
	pthread_mutex_unlock(&s->admin);
	ca_create_plan_fini(&p, rc, csr_pem);
	return rc;
}

/* ---- the end of the overlap ---- */

/* The generation to retire, with s->lock held. */
static int
retire_pick(ca_store *s, const char *name, const char *gen, ca **out,
    char *why, size_t whylen)
{
	char list[256];
	size_t n;

	*out = NULL;
	if (gen && *gen) {
		if ((*out = ca_find_locked(s, name, gen, 0)) == NULL) {
			sf_why(why, whylen, "CA %s has no generation %s", name,
			    gen);
			return SF_ENOTFOUND;
		}
		return 0;
	}
	if ((n = ca_generations_text(s, name, is_retiring, list,
	    sizeof list)) == 1) {
		for (size_t i = 0; i < s->n; i++)
			if (strcmp(s->v[i]->rec.name, name) == 0 &&
			    s->v[i]->rec.state == CA_RETIRING)
				*out = s->v[i];
		return 0;
	}
	if (n > 1) {
		sf_why(why, whylen, "CA %s has %zu retiring generations (%s):"
		    " name the one to retire", name, n, list);
		return SF_EINVAL;
	}
	if (ca_generations_text(s, name, NULL, list, sizeof list) == 0) {
		sf_why(why, whylen, "no CA named %s", name);
		return SF_ENOTFOUND;
	}
	sf_why(why, whylen, "CA %s has no retiring generation (it has %s):"
	    " rotate it first (secretfree ca rotate %s)", name, list, name);
	return SF_ESTATE;
}

/* SF_ESTATE if c cannot be retired now, with s->lock held. */
static int
retire_check(ca_store *s, const ca *c, char *why, size_t whylen)
{
	if (c->rec.state == CA_RETIRED)
		return 0;
	if (c->rec.state != CA_RETIRING) {
		sf_why(why, whylen, "CA %s generation %s is %s: only a retiring"
		    " generation (one a rotation replaced) is retired",
		    c->rec.name, c->rec.generation,
		    ca_state_name(c->rec.state));
		return SF_ESTATE;
	}
	for (size_t i = 0; i < s->n; i++) {
		const ca *k = s->v[i];

		if (k->parent != c || k->rec.state == CA_RETIRED ||
		    k->rec.state == CA_REVOKED)
			continue;
		sf_why(why, whylen, "CA %s generation %s still certifies CA %s"
		    " generation %s (%s): rotate that one, then retire it"
		    " first", c->rec.name, c->rec.generation, k->rec.name,
		    k->rec.generation, ca_state_name(k->rec.state));
		return SF_ESTATE;
	}
	return 0;
}

int
ca_retire(ca_store *s, const char *name, const char *gen, ca **out,
    char *why, size_t whylen)
{
	int64_t now = sf_now();
	ca *c = NULL;
	int rc;

	*out = NULL;
	why[0] = '\0';
	pthread_mutex_lock(&s->admin);
	pthread_rwlock_rdlock(&s->lock);
	if ((rc = retire_pick(s, name, gen, &c, why, whylen)) == 0)
		rc = retire_check(s, c, why, whylen);
	pthread_rwlock_unlock(&s->lock);
	if (rc != 0 || c->rec.state == CA_RETIRED)
		goto out;
	if ((rc = journal_ca_set_state(s->jn, c->rec.id, CA_RETIRED, now,
	    0)) != 0) {
		sf_why(why, whylen, "cannot record the retirement of CA %s",
		    name);
		goto out;
	}
	pthread_rwlock_wrlock(&s->lock);
	c->rec.state = CA_RETIRED;
	c->rec.retired_at = now;
	pthread_rwlock_unlock(&s->lock);
	log_info("CA %s %s retired: its overlap is over", c->rec.name,
	    c->rec.generation);
out:
	pthread_mutex_unlock(&s->admin);
	if (rc == 0)
		*out = c;
	return rc;
}
