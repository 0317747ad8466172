/*
 * registry_mfr.c - the manufacturer CAs in the registry (see registry.h):
 * authz's mirror of the signer's, for its own check of birth
 * certificates and for the client CAs of its device TLS listener.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "registry_int.h"
#include "util.h"

static const char *const SQL[NQ] = {
	[Q_MFR_PUT] = "INSERT INTO manufacturers (name, product_line,"
	    " certificate_pem, created_at, updated_at) VALUES (?1,?2,?3,?4,?4)"
	    " ON CONFLICT (name) DO UPDATE SET product_line = ?2,"
	    " certificate_pem = ?3, updated_at = ?4",
	[Q_MFR_SET_CRL] = "UPDATE manufacturers SET crl_pem = ?,"
	    " crl_number = ?, updated_at = ? WHERE name = ?",
	[Q_MFR_LIST] = "SELECT name, product_line, certificate_pem, crl_pem,"
	    " crl_number, created_at, updated_at FROM manufacturers"
	    " WHERE (?1 = '' OR product_line = ?1) ORDER BY name",
};

static void
mfr_fini(registry_mfr *m)
{
	free(m->name);
	free(m->product_line);
	free(m->certificate_pem);
	free(m->crl_pem);
	memset(m, 0, sizeof *m);
}

void
registry_mfrs_free(registry_mfr *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		mfr_fini(&v[i]);
	free(v);
}

static int
mfr_row(sqlite3_stmt *st, void *elem, void *arg)
{
	registry_mfr *m = elem;

	(void)arg;
	memset(m, 0, sizeof *m);
	m->name = col_strdup(st, 0);
	m->product_line = col_strdup(st, 1);
	m->certificate_pem = col_strdup(st, 2);
	m->crl_pem = col_strdup(st, 3);
	m->crl_number = sqlite3_column_int64(st, 4);
	m->created_at = sqlite3_column_int64(st, 5);
	m->updated_at = sqlite3_column_int64(st, 6);
	if (!m->name || !m->product_line || !m->certificate_pem ||
	    !m->crl_pem) {
		mfr_fini(m);
		return SF_ENOMEM;
	}
	return 0;
}

int
registry_mfr_put(registry *r, const char *name, const char *product_line,
    const char *certificate_pem)
{
	sqlite3_stmt *st = NULL;
	struct dbconn *c;
	int rc, intx = 0;

	if (empty(name) || empty(product_line) || empty(certificate_pem))
		return SF_EINVAL;
	c = registry_wlock(r);
	/* A transaction, to share the group's commit (registry.c). */
	if ((rc = registry_tx(c, Q_BEGIN_IMMEDIATE)) != 0)
		goto out;
	intx = 1;
	if ((rc = registry_stmt(c, SQL, Q_MFR_PUT, &st)) != 0)
		goto out;
	bind_text(st, 1, name);
	bind_text(st, 2, product_line);
	bind_text(st, 3, certificate_pem);
	sqlite3_bind_int64(st, 4, sf_now());
	rc = registry_run(c->db, st, "put manufacturer");
out:
	registry_done(st);
	if (intx)
		rc = registry_tx_end(c, rc);
	registry_wunlock(r);
	return rc;
}

int
registry_mfr_set_crl(registry *r, const char *name, const char *crl_pem,
    int64_t crl_number)
{
	sqlite3_stmt *st = NULL;
	struct dbconn *c;
	int rc, intx = 0;

	if (empty(name) || empty(crl_pem))
		return SF_EINVAL;
	c = registry_wlock(r);
	/* A transaction, to share the group's commit (registry.c). */
	if ((rc = registry_tx(c, Q_BEGIN_IMMEDIATE)) != 0)
		goto out;
	intx = 1;
	if ((rc = registry_stmt(c, SQL, Q_MFR_SET_CRL, &st)) != 0)
		goto out;
	bind_text(st, 1, crl_pem);
	sqlite3_bind_int64(st, 2, crl_number);
	sqlite3_bind_int64(st, 3, sf_now());
	bind_text(st, 4, name);
	rc = registry_run_one(c->db, st, "set manufacturer CRL");
out:
	registry_done(st);
	if (intx)
		rc = registry_tx_end(c, rc);
	registry_wunlock(r);
	return rc;
}

int
registry_mfr_list(registry *r, const char *product_line, registry_mfr **out,
    size_t *n)
{
	sqlite3_stmt *st = NULL;
	registry_mfr *v = NULL;
	size_t cnt = 0;
	struct dbconn *c;
	int rc;

	*out = NULL;
	*n = 0;
	c = registry_rlock(r);
	if ((rc = registry_stmt(c, SQL, Q_MFR_LIST, &st)) != 0)
		goto out;
	bind_text(st, 1, product_line);
	if ((rc = registry_rows(c->db, st, sizeof *v, mfr_row, NULL,
	    (void **)&v, &cnt, "list manufacturers")) != 0)
		goto out;
	*out = v;
	*n = cnt;
	v = NULL;
out:
	registry_mfrs_free(v, cnt);
	registry_done(st);
	registry_runlock(r);
	return rc;
}
