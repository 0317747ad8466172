/*
 * registry_template.c - policies and provisioning templates in the
 * registry (see registry.h). A template names, per product line, the
 * group a new thing joins, the policies its certificate carries, and
 * attribute values with ${...} variables; storing one checks that its
 * policies exist and its values expand (conf_expand), so that a typo is
 * refused once rather than copied into every thing. Groups come into
 * being here, when a template names them. Applying a template at
 * enrollment is registry_enroll.c's part.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "err.h"
#include "log.h"
#include "registry_int.h"
#include "util.h"

static const char *const SQL[NQ] = {
	/* The CHECK (json_valid(document)) refuses what is not JSON. */
	[Q_POLICY_PUT] = "INSERT INTO policies (name, document,"
	    " created_at, updated_at) VALUES (?1, ?2, ?3, ?3)"
	    " ON CONFLICT (name) DO UPDATE SET document = excluded.document,"
	    " updated_at = excluded.updated_at",
	[Q_POLICY_GET] = "SELECT document FROM policies WHERE name = ?",
	[Q_POLICY_LIST] = "SELECT name, document FROM policies"
	    " ORDER BY name",
	[Q_POLICY_EXISTS] = "SELECT 1 FROM policies WHERE name = ?",
	[Q_GROUP_ENSURE] = "INSERT INTO groups (name, created_at)"
	    " VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
	[Q_TEMPLATE_PUT] = "INSERT INTO templates (product_line,"
	    " thing_group, updated_at) VALUES (?, ?, ?)"
	    " ON CONFLICT (product_line)"
	    " DO UPDATE SET thing_group = excluded.thing_group,"
	    " updated_at = excluded.updated_at",
	[Q_TEMPLATE_DEL_POLICIES] =
	    "DELETE FROM template_policies WHERE product_line = ?",
	[Q_TEMPLATE_DEL_ATTRS] =
	    "DELETE FROM template_attributes WHERE product_line = ?",
	[Q_TEMPLATE_ADD_POLICY] = "INSERT INTO template_policies"
	    " (product_line, position, policy) VALUES (?, ?, ?)",
	[Q_TEMPLATE_ADD_ATTR] = "INSERT INTO template_attributes"
	    " (product_line, position, name, value) VALUES (?, ?, ?, ?)",
	[Q_TEMPLATE_READ] = "SELECT product_line, thing_group FROM templates"
	    " WHERE ?1 IS NULL OR product_line = ?1 ORDER BY product_line",
	[Q_TEMPLATE_POLICIES] = "SELECT policy FROM template_policies"
	    " WHERE product_line = ? ORDER BY position",
	[Q_TEMPLATE_ATTRS] = "SELECT name, value FROM template_attributes"
	    " WHERE product_line = ? ORDER BY position",
};

/* ---- policies ---- */

int
registry_policy_put(registry *r, const char *name, const char *document)
{
	sqlite3_stmt *st = NULL;
	int64_t now = sf_now();
	struct dbconn *c;
	int rc, intx = 0;

	if (empty(name) || document == NULL)
		return SF_EINVAL;
	c = registry_wlock(r);
	/* A transaction, to share the group's commit (registry.c). */
	if ((rc = registry_tx(c, Q_BEGIN_IMMEDIATE)) != 0)
		goto out;
	intx = 1;
	if ((rc = registry_stmt(c, SQL, Q_POLICY_PUT, &st)) != 0)
		goto out;
	bind_text(st, 1, name);
	bind_text(st, 2, document);
	sqlite3_bind_int64(st, 3, now);
	rc = registry_run(c->db, st, "put policy");
out:
	registry_done(st);
	if (intx)
		rc = registry_tx_end(c, rc);
	registry_wunlock(r);
	return rc;
}

int
registry_policy_get(registry *r, const char *name, char **document)
{
	sqlite3_stmt *st = NULL;
	struct dbconn *c;
	sqlite3 *db;
	int rc, code;

	*document = NULL;
	if (empty(name))
		return SF_EINVAL;
	c = registry_rlock(r);
	db = c->db;
	if ((rc = registry_stmt(c, SQL, Q_POLICY_GET, &st)) != 0)
		goto out;
	bind_text(st, 1, name);
	if ((code = sqlite3_step(st)) == SQLITE_ROW)
		rc = (*document = col_strdup(st, 0)) ? 0 : SF_ENOMEM;
	else if (code == SQLITE_DONE)
		rc = SF_ENOTFOUND;
	else
		rc = registry_sql_err(db, code, "get policy");
out:
	registry_done(st);
	registry_runlock(r);
	return rc;
}

int
registry_policy_list(registry *r, char ***names, char ***documents,
    size_t *n)
{
	sqlite3_stmt *st = NULL;
	struct dbconn *c;
	int rc;

	*names = *documents = NULL;
	*n = 0;
	c = registry_rlock(r);
	if ((rc = registry_stmt(c, SQL, Q_POLICY_LIST, &st)) != 0)
		goto out;
	rc = registry_collect(c->db, st, names, documents, n);
out:
	registry_done(st);
	registry_runlock(r);
	return rc;
}

/* ---- templates ---- */

void
registry_template_fini(registry_template *t)
{
	if (t == NULL)
		return;
	free(t->product_line);
	free(t->thing_group);
	registry_strings_free(t->policies, t->npolicies);
	registry_strings_free(t->attr_names, t->nattrs);
	registry_strings_free(t->attr_values, t->nattrs);
	memset(t, 0, sizeof *t);
}

void
registry_templates_free(registry_template *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		registry_template_fini(&v[i]);
	free(v);
}

char *
registry_attr_expand(const char *value, const char *device_id,
    const char *serial, const char *region, const char *product_line)
{
	const char *const vars[] = { "device_id", device_id, "serial", serial,
	    "region", region, "product_line", product_line, NULL };

	return conf_expand(value, vars, NULL, 0);
}

int
registry_template_valid(const registry_template *t)
{
	char *v;

	if (empty(t->product_line))
		return SF_EINVAL;
	if (t->npolicies && t->policies == NULL)
		return SF_EINVAL;
	for (size_t i = 0; i < t->npolicies; i++)
		if (empty(t->policies[i]))
			return SF_EINVAL;
	if (t->nattrs && (t->attr_names == NULL || t->attr_values == NULL))
		return SF_EINVAL;
	for (size_t i = 0; i < t->nattrs; i++) {
		if (empty(t->attr_names[i]) || t->attr_values[i] == NULL ||
		    (v = registry_attr_expand(t->attr_values[i], "", "", "",
		    "")) == NULL)
			return SF_EINVAL;
		free(v);
	}
	return 0;
}

int
registry_policy_check(struct dbconn *c, const char *name, const char *user)
{
	sqlite3_stmt *st = NULL;
	int code, rc;

	if ((rc = registry_stmt(c, SQL, Q_POLICY_EXISTS, &st)) != 0)
		return rc;
	bind_text(st, 1, name);
	if ((code = sqlite3_step(st)) == SQLITE_DONE) {
		log_warnx("registry: %s names policy \"%s\", which does not "
		    "exist", user, name);
		rc = SF_ENOTFOUND;
	} else if (code != SQLITE_ROW)
		rc = registry_sql_err(c->db, code, "policy lookup");
	registry_done(st);
	return rc;
}

int
registry_group_ensure(struct dbconn *c, const char *name, int64_t now)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = registry_stmt(c, SQL, Q_GROUP_ENSURE, &st)) != 0)
		return rc;
	bind_text(st, 1, name);
	sqlite3_bind_int64(st, 2, now);
	rc = registry_run(c->db, st, "create group");
	registry_done(st);
	return rc;
}

int
registry_template_put(registry *r, const registry_template *t)
{
	sqlite3_stmt *up = NULL, *delp = NULL, *dela = NULL, *tp = NULL,
	    *ta = NULL;
	int64_t now = sf_now();
	char user[128];
	struct dbconn *c;
	sqlite3 *db;
	int rc, intx = 0;

	if ((rc = registry_template_valid(t)) != 0)
		return rc;
	snprintf(user, sizeof user, "template %s", t->product_line);
	c = registry_wlock(r);
	db = c->db;
	if ((rc = registry_stmt(c, SQL, Q_TEMPLATE_PUT, &up)) != 0 ||
	    (rc = registry_stmt(c, SQL, Q_TEMPLATE_DEL_POLICIES,
	    &delp)) != 0 ||
	    (rc = registry_stmt(c, SQL, Q_TEMPLATE_DEL_ATTRS, &dela)) != 0 ||
	    (rc = registry_stmt(c, SQL, Q_TEMPLATE_ADD_POLICY, &tp)) != 0 ||
	    (rc = registry_stmt(c, SQL, Q_TEMPLATE_ADD_ATTR, &ta)) != 0)
		goto out;
	if ((rc = registry_tx(c, Q_BEGIN_IMMEDIATE)) != 0)
		goto out;
	intx = 1;
	for (size_t i = 0; i < t->npolicies; i++)
		if ((rc = registry_policy_check(c, t->policies[i],
		    user)) != 0)
			goto out;
	bind_text(up, 1, t->product_line);
	bind_text(up, 2, t->thing_group);
	sqlite3_bind_int64(up, 3, now);
	if ((rc = registry_run(db, up, "put template")) != 0)
		goto out;
	if (!empty(t->thing_group) &&
	    (rc = registry_group_ensure(c, t->thing_group, now)) != 0)
		goto out;
	/* Replace the children: policies, then attributes. */
	bind_text(delp, 1, t->product_line);
	if ((rc = registry_run(db, delp, "clear template policies")) != 0)
		goto out;
	bind_text(dela, 1, t->product_line);
	if ((rc = registry_run(db, dela, "clear template attributes")) != 0)
		goto out;
	for (size_t i = 0; i < t->npolicies; i++) {
		bind_text(tp, 1, t->product_line);
		sqlite3_bind_int64(tp, 2, (sqlite3_int64)i);
		bind_text(tp, 3, t->policies[i]);
		if ((rc = registry_run(db, tp, "put template policy")) != 0)
			goto out;
	}
	for (size_t i = 0; i < t->nattrs; i++) {
		bind_text(ta, 1, t->product_line);
		sqlite3_bind_int64(ta, 2, (sqlite3_int64)i);
		bind_text(ta, 3, t->attr_names[i]);
		bind_text(ta, 4, t->attr_values[i]);
		if ((rc = registry_run(db, ta, "put template attribute")) != 0)
			goto out;
	}
	rc = 0;
out:
	/* A name twice in one template is the caller's mistake. */
	if (rc == SF_EEXIST)
		rc = SF_EINVAL;
	registry_done(up);
	registry_done(delp);
	registry_done(dela);
	registry_done(tp);
	registry_done(ta);
	if (intx)
		rc = registry_tx_end(c, rc);
	registry_wunlock(r);
	return rc;
}

/* The statements template_row reads a template's children with. */
struct template_kids {
	sqlite3 *db;
	sqlite3_stmt *pols, *attrs;
};

/* A template row, its policies and its attributes into *elem (a
 * registry_template). */
static int
template_row(sqlite3_stmt *st, void *elem, void *arg)
{
	const struct template_kids *k = arg;
	registry_template *t = elem;
	int rc;

	t->product_line = col_strdup(st, 0);
	t->thing_group = col_strdup(st, 1);
	if (!t->product_line || !t->thing_group)
		return SF_ENOMEM;
	bind_text(k->pols, 1, t->product_line);
	if ((rc = registry_collect(k->db, k->pols, &t->policies, NULL,
	    &t->npolicies)) != 0)
		return rc;
	bind_text(k->attrs, 1, t->product_line);
	return registry_collect(k->db, k->attrs, &t->attr_names,
	    &t->attr_values, &t->nattrs);
}

/*
 * Read templates (one, or all when product_line is NULL) in one read
 * transaction: *out (*n of them) is the caller's.
 */
static int
template_read(registry *r, const char *product_line, registry_template **out,
    size_t *n)
{
	sqlite3_stmt *st = NULL;
	struct template_kids k = { NULL, NULL, NULL };
	struct dbconn *c;
	void *v = NULL;
	size_t cnt = 0;
	int rc;

	*out = NULL;
	*n = 0;
	c = registry_rlock(r);
	k.db = c->db;
	if ((rc = registry_stmt(c, SQL, Q_TEMPLATE_READ, &st)) != 0 ||
	    (rc = registry_stmt(c, SQL, Q_TEMPLATE_POLICIES, &k.pols)) != 0 ||
	    (rc = registry_stmt(c, SQL, Q_TEMPLATE_ATTRS, &k.attrs)) != 0)
		goto out;
	if (product_line)
		bind_text(st, 1, product_line);
	if ((rc = registry_rows_tx(c, st, sizeof **out, template_row, &k, &v,
	    &cnt, "read templates")) != 0)
		goto out;
	*out = v;
	*n = cnt;
	v = NULL;  /* transferred */
out:
	registry_templates_free(v, cnt);
	registry_done(st);
	registry_done(k.pols);
	registry_done(k.attrs);
	registry_runlock(r);
	return rc;
}

int
registry_template_get(registry *r, const char *product_line,
    registry_template *out)
{
	registry_template *v = NULL;
	size_t n = 0;
	int rc;

	memset(out, 0, sizeof *out);
	if (empty(product_line))
		return SF_EINVAL;
	if ((rc = template_read(r, product_line, &v, &n)) != 0)
		return rc;
	return registry_one(v, n, sizeof *out, out);
}

int
registry_template_list(registry *r, registry_template **out, size_t *n)
{
	return template_read(r, NULL, out, n);
}

