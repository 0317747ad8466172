/*
 * registry_thing.c - things and groups in the registry (see registry.h):
 * reading a thing with its attributes and groups, pages of things (of a
 * group or of all), and groups with their member counts. Things are
 * written at enrollment, by the template (registry_enroll.c).
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "registry_int.h"
#include "util.h"

#define THING_COLS "name, device_id, certificate_serial, created_at"

static const char *const SQL[NQ] = {
	[Q_THING_BY_NAME] = "SELECT " THING_COLS " FROM things"
	    " WHERE name = ?1",
	[Q_THING_PAGE] = "SELECT " THING_COLS " FROM things t"
	    " WHERE (?1 = '' OR EXISTS (SELECT 1 FROM thing_groups m"
	    "  WHERE m.thing = t.name AND m.group_name = ?1))"
	    " AND name > ?2 ORDER BY name LIMIT ?3",
	[Q_THING_ATTRS] = "SELECT name, value FROM thing_attributes"
	    " WHERE thing = ? ORDER BY rowid",
	[Q_THING_GROUPS] = "SELECT group_name FROM thing_groups"
	    " WHERE thing = ? ORDER BY group_name",
	[Q_GROUP_LIST] = "SELECT g.name, (SELECT count(*) FROM thing_groups m"
	    " WHERE m.group_name = g.name) FROM groups g ORDER BY g.name",
};

void
registry_thing_fini(registry_thing *t)
{
	if (t == NULL)
		return;
	free(t->name);
	free(t->device_id);
	registry_strings_free(t->attr_names, t->nattrs);
	registry_strings_free(t->attr_values, t->nattrs);
	registry_strings_free(t->groups, t->ngroups);
	free(t->certificate_serial);
	memset(t, 0, sizeof *t);
}

void
registry_things_free(registry_thing *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		registry_thing_fini(&v[i]);
	free(v);
}

/* The statements thing_row reads a thing's children with. */
struct thing_kids {
	sqlite3 *db;
	sqlite3_stmt *attrs, *groups;
};

/* A THING_COLS row, its attributes and its groups into *elem (a
 * registry_thing). */
static int
thing_row(sqlite3_stmt *st, void *elem, void *arg)
{
	const struct thing_kids *k = arg;
	registry_thing *t = elem;
	int rc;

	t->name = col_strdup(st, 0);
	t->device_id = col_strdup(st, 1);
	t->certificate_serial = col_strdup(st, 2);
	t->created_at = sqlite3_column_int64(st, 3);
	if (!t->name || !t->device_id || !t->certificate_serial)
		return SF_ENOMEM;
	bind_text(k->attrs, 1, t->name);
	if ((rc = registry_collect(k->db, k->attrs, &t->attr_names,
	    &t->attr_values, &t->nattrs)) != 0)
		return rc;
	bind_text(k->groups, 1, t->name);
	return registry_collect(k->db, k->groups, &t->groups, NULL,
	    &t->ngroups);
}

/*
 * Read things (the one called name, or else a page of a group's or of
 * all) in one read transaction: *out (*n of them) is the caller's.
 */
static int
thing_read(registry *r, const char *name, const char *group,
    const char *after, size_t limit, registry_thing **out, size_t *n)
{
	sqlite3_stmt *st = NULL;
	struct thing_kids k = { NULL, NULL, NULL };
	struct dbconn *c;
	void *v = NULL;
	size_t cnt = 0;
	int rc;

	*out = NULL;
	*n = 0;
	c = registry_rlock(r);
	k.db = c->db;
	if ((rc = registry_stmt(c, SQL, name ? Q_THING_BY_NAME :
	    Q_THING_PAGE, &st)) != 0 ||
	    (rc = registry_stmt(c, SQL, Q_THING_ATTRS, &k.attrs)) != 0 ||
	    (rc = registry_stmt(c, SQL, Q_THING_GROUPS, &k.groups)) != 0)
		goto out;
	if (name)
		bind_text(st, 1, name);
	else {
		bind_text(st, 1, group);
		bind_text(st, 2, after);
		sqlite3_bind_int64(st, 3, sql_limit(limit));
	}
	if ((rc = registry_rows_tx(c, st, sizeof **out, thing_row, &k, &v,
	    &cnt, "read things")) != 0)
		goto out;
	*out = v;
	*n = cnt;
	v = NULL;  /* transferred */
out:
	registry_things_free(v, cnt);
	registry_done(st);
	registry_done(k.attrs);
	registry_done(k.groups);
	registry_runlock(r);
	return rc;
}

int
registry_thing_get(registry *r, const char *name, registry_thing *out)
{
	registry_thing *v = NULL;
	size_t n = 0;
	int rc;

	memset(out, 0, sizeof *out);
	if (empty(name))
		return SF_EINVAL;
	if ((rc = thing_read(r, name, NULL, NULL, 0, &v, &n)) != 0)
		return rc;
	return registry_one(v, n, sizeof *out, out);
}

int
registry_thing_list(registry *r, const char *group, const char *after,
    size_t limit, registry_thing **out, size_t *n)
{
	return thing_read(r, NULL, group, after, limit, out, n);
}

int
registry_group_list(registry *r, char ***names, uint32_t **counts,
    size_t *n)
{
	sqlite3_stmt *st = NULL;
	char **nm = NULL, **nnm;
	uint32_t *ct = NULL, *nct;
	size_t cnt = 0, capn = 0, capc = 0;
	struct dbconn *c;
	sqlite3 *db;
	int rc, code;

	*names = NULL;
	*counts = NULL;
	*n = 0;
	c = registry_rlock(r);
	db = c->db;
	if ((rc = registry_stmt(c, SQL, Q_GROUP_LIST, &st)) != 0)
		goto out;
	while ((code = sqlite3_step(st)) == SQLITE_ROW) {
		if ((nnm = registry_grow(nm, &capn, cnt, sizeof *nm)) == NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
		nm = nnm;
		if ((nct = registry_grow(ct, &capc, cnt, sizeof *ct)) == NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
		ct = nct;
		ct[cnt] = (uint32_t)sqlite3_column_int64(st, 1);
		if ((nm[cnt++] = col_strdup(st, 0)) == NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
	}
	if (code != SQLITE_DONE) {
		rc = registry_sql_err(db, code, "list groups");
		goto out;
	}
	*names = nm;
	*counts = ct;
	*n = cnt;
	nm = NULL;  /* transferred */
	ct = NULL;
	cnt = 0;
out:
	registry_strings_free(nm, cnt);
	free(ct);
	registry_done(st);
	registry_runlock(r);
	return rc;
}

