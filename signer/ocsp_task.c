/*
 * ocsp_task.c - the OCSP responder's background task (see ocsp.h): it
 * keeps a pre-signed response for every unexpired certificate. Each run,
 * from the journal alone: the delegated responders that are missing or
 * due for renewal; responses that still say good for a certificate
 * revoked since (first: they are what a revocation kicks the task for);
 * certificates without a response (a cursor over the journal's rowids,
 * so a run reads only what was recorded since the last one); responses
 * refresh_seconds old; and the responses of expired certificates, which
 * are deleted. At most BUDGET signatures a run, a transaction per batch.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "ocsp_int.h"

#define BATCH 256
#define BUDGET 4096

/* One run's state. */
typedef struct {
	ocsp *o;
	const signer_conf *cf;
	ca **cas;
	size_t ncas;
	int64_t now;
	int budget;          /* signatures left */
	size_t skipped;      /* certificates of CAs that cannot sign */
} run;

static ca *
ca_by_id(const run *r, int64_t id)
{
	for (size_t i = 0; i < r->ncas; i++)
		if (r->cas[i]->rec.id == id)
			return r->cas[i];
	return NULL;
}

static size_t
batch_size(const run *r)
{
	return r->budget < BATCH ? (size_t)r->budget : BATCH;
}

/*
 * Sign the response of each row (delete it for an expired certificate)
 * and store the batch in one transaction. Rows of a CA that cannot sign
 * are counted in r->skipped. 0, or the first error (what was signed
 * before it is stored).
 */
static int
store_batch(run *r, const journal_ocsp_cert *v, size_t n, size_t *stored)
{
	journal_ocsp_resp out[BATCH];
	size_t k = 0;
	int rc = 0, prc;

	for (size_t i = 0; i < n && i < BATCH && rc == 0; i++) {
		ca *c = ca_by_id(r, v[i].ca_id);

		if (v[i].not_after <= r->now) {
			memset(&out[k], 0, sizeof out[k]);
			out[k].ca_id = v[i].ca_id;
			out[k].serial = v[i].serial;
			out[k++].cert_id_hash = v[i].cert_id_hash;
		} else if (c == NULL || !ocsp_ca_usable(r->o, c, r->now))
			r->skipped++;
		else if ((rc = ocsp_sign_stored(r->o, r->cf, c, &v[i], r->now,
		    &out[k])) == 0) {
			k++;
			r->budget--;
		}
	}
	if (k && (prc = journal_ocsp_put(r->o->jn, out, k)) != 0 && rc == 0)
		rc = prc;
	for (size_t i = 0; i < k; i++)
		free((void *)out[i].der);
	*stored = k;
	return rc;
}

/* Certificates recorded since the last run that have no response. */
static int
sign_new(run *r)
{
	journal_ocsp_cert *v = NULL;
	int64_t after = r->o->scan_rowid, upto;
	size_t n, k;
	int rc;

	if ((rc = journal_ocsp_last_cert(r->o->jn, &upto)) != 0)
		return rc;
	while (after < upto && r->budget > 0) {
		if ((rc = journal_ocsp_missing(r->o->jn, after, upto, r->now,
		    batch_size(r), &v, &n)) != 0)
			break;
		if (n == 0)
			after = upto;
		else if ((rc = store_batch(r, v, n, &k)) == 0)
			after = v[n - 1].rowid;
		free(v);
		v = NULL;
		if (rc != 0)
			break;
	}
	/* Only the task moves the cursor (maint.h: runs never overlap). */
	r->o->scan_rowid = after;
	return rc;
}

/* Re-sign CA c's responses that say good for a revoked certificate
 * (aged = 0) or were produced refresh_seconds ago or earlier. */
static int
resign(run *r, ca *c, int aged)
{
	journal_ocsp_cert *v = NULL;
	size_t n, k, limit;
	int rc = 0;

	while ((limit = batch_size(r)) > 0) {
		rc = aged ? journal_ocsp_aged(r->o->jn, c->rec.id,
		    r->now - r->cf->ocsp_refresh, limit, &v, &n) :
		    journal_ocsp_changed(r->o->jn, c->rec.id, limit, &v, &n);
		if (rc != 0 || n == 0) {
			free(v);
			break;
		}
		rc = store_batch(r, v, n, &k);
		free(v);
		v = NULL;
		/* Nothing stored: the same rows would come back. */
		if (rc != 0 || k == 0 || n < limit)
			break;
	}
	return rc;
}

static void
keep(int *first, int rc)
{
	if (*first == 0)
		*first = rc;
}

int
ocsp_refresh(void *arg, int64_t now)
{
	ocsp *o = arg;
	run r;
	token_key *k;
	X509 *x;
	int first = 0;

	memset(&r, 0, sizeof r);
	r.o = o;
	r.cf = ocsp_conf(o);
	r.now = now;
	r.budget = BUDGET;
	r.ncas = ca_list(o->cas, &r.cas);
	for (size_t i = 0; r.cf->ocsp_delegated && i < r.ncas; i++)
		if (ocsp_ca_usable(o, r.cas[i], now))
			keep(&first, ocsp_responder_get(o, r.cf, r.cas[i], now,
			    (int64_t)r.cf->ocsp_responder_renew_days * 86400,
			    &k, &x));
	for (size_t i = 0; i < r.ncas; i++)
		if (ocsp_ca_usable(o, r.cas[i], now))
			keep(&first, resign(&r, r.cas[i], 0));
	keep(&first, sign_new(&r));
	for (size_t i = 0; i < r.ncas; i++)
		if (ocsp_ca_usable(o, r.cas[i], now))
			keep(&first, resign(&r, r.cas[i], 1));
	if (r.skipped)
		log_warnx("OCSP: %zu certificates of CAs that cannot sign"
		    " (no key, no certificate, expired) have no response",
		    r.skipped);
	if (r.budget <= 0) {
		log_info("OCSP: %d responses signed; more are due", BUDGET);
		maint_kick(o->mt);
	}
	free(r.cas);
	return first;
}

int
ocsp_maint_add(ocsp *o, maint *m)
{
	o->mt = m;
	return maint_add(m, "ocsp", ocsp_refresh, o,
	    ocsp_conf(o)->ocsp_interval);
}
