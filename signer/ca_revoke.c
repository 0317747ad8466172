/*
 * ca_revoke.c - revoking a CA generation and, with cascade, everything
 * below it (see ca.h).
 *
 * The order is what makes it safe to stop at any point and call again:
 * first the CAs are marked REVOKED in the store (from then on none of
 * them signs: ca_issue looks at the state), then in the journal together
 * with the CA's own certificate in its parent's scope, then what they
 * issued goes in batches, each one journal transaction. Every call finds
 * what is left from the journal, so a repeated call carries on where the
 * last one stopped, and a certificate signed while the CA was being
 * revoked is caught either by a batch or by ca_issue itself.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ca_int.h"
#include "err.h"
#include "log.h"
#include "pbenum.h"
#include "revoke.h"
#include "util.h"

int
ca_revoke_leaf_reason(int reason)
{
	/* RFC 5280: cACompromise is what a certificate below a CA whose key
	 * was compromised is revoked for. */
	return reason == REASON_KEY_COMPROMISE ? REASON_CA_COMPROMISE : reason;
}

int
ca_pick(ca_store *s, const char *name, const char *gen, ca **out,
    char *why, size_t whylen)
{
	char list[256];
	size_t n;
	int rc = 0;

	pthread_rwlock_rdlock(&s->lock);
	n = ca_generations_text(s, name, NULL, list, sizeof list);
	if (gen && *gen)
		*out = ca_find_locked(s, name, gen, 0);
	else
		*out = n == 1 ? ca_find_locked(s, name, NULL, 0) : NULL;
	pthread_rwlock_unlock(&s->lock);
	if (*out != NULL)
		return 0;
	if (n == 0 || (gen && *gen)) {
		sf_why(why, whylen, "no CA named %s%s%s", name,
		    gen && *gen ? " with generation " : "", gen ? gen : "");
		rc = SF_ENOTFOUND;
	} else {
		sf_why(why, whylen, "CA %s has %zu generations (%s): name the"
		    " one you mean", name, n, list);
		rc = SF_EINVAL;
	}
	return rc;
}

/* The CAs below c, at any depth (malloc'd; *n of them), s->lock held. */
static ca **
below_locked(ca_store *s, const ca *c, size_t *n)
{
	ca **v = malloc((s->n ? s->n : 1) * sizeof *v);

	*n = 0;
	for (size_t i = 0; v && i < s->n; i++)
		for (const ca *p = s->v[i]->parent; p; p = p->parent)
			if (p == c) {
				v[(*n)++] = s->v[i];
				break;
			}
	return v;
}

/* SF_ESTATE unless c may be revoked for reason with cascade or not. */
static int
revoke_check(const ca *c, int state, ca *const *below, size_t nbelow,
    const ca_revoke_req *r, char *why, size_t whylen)
{
	if (c->rec.role == CA_ROOT) {
		sf_why(why, whylen, "the root CA cannot be revoked (nothing"
		    " above it lists it): take it out of the trust stores, or"
		    " revoke the CAs below it");
		return SF_ESTATE;
	}
	if (state == CA_REVOKED && c->rec.revocation_reason != r->reason) {
		sf_why(why, whylen, "CA %s generation %s was revoked already,"
		    " for %s", c->rec.name, c->rec.generation,
		    revoke_reason_name(c->rec.revocation_reason));
		return SF_ESTATE;
	}
	for (size_t i = 0; !r->cascade && state != CA_REVOKED && i < nbelow;
	    i++) {
		if (below[i]->rec.state == CA_REVOKED ||
		    below[i]->rec.state == CA_RETIRED)
			continue;
		sf_why(why, whylen, "CA %s generation %s certifies CA %s"
		    " generation %s (%s): revoke with cascade, or rotate and"
		    " retire that one first", c->rec.name, c->rec.generation,
		    below[i]->rec.name, below[i]->rec.generation,
		    ca_state_name(below[i]->rec.state));
		return SF_ESTATE;
	}
	return 0;
}

/*
 * Mark c (unless it is revoked already) and, with cascade, the CAs below
 * it REVOKED: in the store first, then in the journal with c's own
 * certificate; the store is put back if the journal fails.
 */
static int
revoke_cas(ca_store *s, ca *c, ca **below, size_t nbelow,
    const ca_revoke_req *r, ca_revoke_result *out, char *why,
    size_t whylen)
{
	int64_t *ids = calloc(nbelow + 1, sizeof *ids), when = sf_now();
	int *was = calloc(nbelow + 1, sizeof *was), leaf;
	size_t n = 0;
	int top, rc;

	if (ids == NULL || was == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	leaf = ca_revoke_leaf_reason(r->reason);
	pthread_rwlock_wrlock(&s->lock);
	if ((top = c->rec.state != CA_REVOKED) != 0) {
		was[nbelow] = c->rec.state;
		c->rec.state = CA_REVOKED;
		c->rec.revoked_at = when;
		c->rec.revocation_reason = r->reason;
	}
	for (size_t i = 0; r->cascade && i < nbelow; i++) {
		if (below[i]->rec.state == CA_REVOKED)
			continue;
		was[n] = below[i]->rec.state;
		below[i]->rec.state = CA_REVOKED;
		below[i]->rec.revoked_at = c->rec.revoked_at;
		below[i]->rec.revocation_reason = leaf;
		below[n] = below[i];  /* below[0..n) are those changed */
		ids[n++] = below[i]->rec.id;
	}
	pthread_rwlock_unlock(&s->lock);
	if ((!top && n == 0) || (rc = journal_ca_revoke(s->jn, top ?
	    c->rec.id : 0, r->reason, ids, n, leaf, c->rec.revoked_at,
	    top ? c->rec.parent_id : 0, c->rec.serial)) == 0) {
		out->cas_revoked = (size_t)top + n;
		rc = 0;
		goto out;
	}
	sf_why(why, whylen, "the journal could not record the revocation of"
	    " CA %s", c->rec.name);
	pthread_rwlock_wrlock(&s->lock);
	if (top)
		c->rec.state = was[nbelow];
	for (size_t i = 0; i < n; i++)
		below[i]->rec.state = was[i];
	pthread_rwlock_unlock(&s->lock);
out:
	free(ids);
	free(was);
	return rc;
}

/* out->changed: c's parent when c's own certificate was revoked now, and
 * every CA that issued one of this call's certificates. */
static int
note_changed(ca_store *s, const ca *c, int own, ca_revoke_result *out)
{
	const ca **v = malloc((s->n + 1) * sizeof *v);
	size_t n = 0;

	if (v == NULL)
		return SF_ENOMEM;
	pthread_rwlock_rdlock(&s->lock);
	if (own && c->parent)
		v[n++] = c->parent;
	for (size_t i = 0; i < s->n; i++)
		for (size_t k = 0; k < out->ncerts; k++)
			if (out->certs[k].ca_id == s->v[i]->rec.id) {
				v[n++] = s->v[i];
				break;
			}
	pthread_rwlock_unlock(&s->lock);
	out->changed = v;
	out->nchanged = n;
	return 0;
}

/* The next batch of certificates below c: those c and the CAs below it
 * issued, revoked at c's time. */
static int
revoke_certs(ca_store *s, const ca *c, ca *const *below, size_t nbelow,
    const ca_revoke_req *r, ca_revoke_result *out)
{
	int64_t *ids = malloc((nbelow + 1) * sizeof *ids);
	int rc;

	if (ids == NULL)
		return SF_ENOMEM;
	ids[0] = c->rec.id;
	for (size_t i = 0; i < nbelow; i++)
		ids[i + 1] = below[i]->rec.id;
	rc = journal_cert_revoke_batch(s->jn, ids, nbelow + 1,
	    ca_revoke_leaf_reason(c->rec.revocation_reason),
	    c->rec.revoked_at, r->max, &out->certs, &out->ncerts,
	    &out->remaining);
	free(ids);
	return rc;
}

int
ca_revoke(ca_store *s, ca *c, const ca_revoke_req *r,
    ca_revoke_result *out, char *why, size_t whylen)
{
	ca **below = NULL, **changed = NULL;
	size_t nbelow = 0;
	int state, rc;

	memset(out, 0, sizeof *out);
	why[0] = '\0';
	if (!revoke_reason_ok(r->reason)) {
		sf_why(why, whylen, "reason %d (%s) is not one a CA can be"
		    " revoked for here", r->reason,
		    revoke_reason_name(r->reason));
		return SF_EINVAL;
	}
	pthread_mutex_lock(&s->admin);
	pthread_rwlock_rdlock(&s->lock);
	state = c->rec.state;
	below = below_locked(s, c, &nbelow);
	pthread_rwlock_unlock(&s->lock);
	if (below == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	if ((rc = revoke_check(c, state, below, nbelow, r, why, whylen)) != 0)
		goto out;
	/* revoke_cas reorders its copy; the batch wants every CA below. */
	if ((changed = malloc((nbelow ? nbelow : 1) * sizeof *changed)) ==
	    NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	memcpy(changed, below, nbelow * sizeof *changed);
	if ((rc = revoke_cas(s, c, changed, nbelow, r, out, why,
	    whylen)) != 0)
		goto out;
	if (r->cascade && (rc = revoke_certs(s, c, below, nbelow, r,
	    out)) != 0) {
		sf_why(why, whylen, "the journal could not record the"
		    " revocation of the certificates below CA %s", c->rec.name);
		goto out;
	}
	rc = note_changed(s, c, state != CA_REVOKED, out);
	log_info("CA %s %s revoked (%s)%s: %zu CAs and %zu certificates in"
	    " this call, %lld certificates left", c->rec.name,
	    c->rec.generation, revoke_reason_name(c->rec.revocation_reason),
	    r->cascade ? " with cascade" : "", out->cas_revoked, out->ncerts,
	    (long long)out->remaining);
out:
	pthread_mutex_unlock(&s->admin);
	free(below);
	free(changed);
	if (rc)
		ca_revoke_result_fini(out);
	return rc;
}

void
ca_revoke_result_fini(ca_revoke_result *r)
{
	if (r == NULL)
		return;
	free(r->certs);
	free(r->changed);
	memset(r, 0, sizeof *r);
}
