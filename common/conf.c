/*
 * conf.c - the INI-style configuration format (see conf.h).
 *
 * The whole file is held in memory as sections in file order, each with its
 * entries in file order; lookups are linear. Configuration files have tens
 * of keys and are read once at start-up, so nothing cleverer pays off, and
 * file order is what conf_sections() and error messages need anyway.
 */
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "err.h"
#include "log.h"
#include "util.h"

/* A CA's configuration is a few KiB; anything near this is not one. */
#define CONF_MAX_FILE (1024 * 1024)

struct conf_entry {
	char *key;
	char *value;
	int line;
};

struct conf_section {
	char *name;
	int line;                  /* 0 for the implicit top-level section */
	struct conf_entry *ents;
	size_t nents, cap;
};

struct conf {
	char *name;                /* file name or caller's label */
	struct conf_section *secs;
	size_t nsecs, cap;
};

void
conf_free(conf *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nsecs; i++) {
		struct conf_section *s = &c->secs[i];

		for (size_t k = 0; k < s->nents; k++) {
			free(s->ents[k].key);
			free(s->ents[k].value);
		}
		free(s->ents);
		free(s->name);
	}
	free(c->secs);
	free(c->name);
	free(c);
}

static struct conf_section *
find_section(const conf *c, const char *name)
{
	if (c == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < c->nsecs; i++)
		if (strcmp(c->secs[i].name, name) == 0)
			return &c->secs[i];
	return NULL;
}

static struct conf_entry *
find_entry(const struct conf_section *s, const char *key)
{
	if (s == NULL || key == NULL)
		return NULL;
	for (size_t i = 0; i < s->nents; i++)
		if (strcmp(s->ents[i].key, key) == 0)
			return &s->ents[i];
	return NULL;
}

static struct conf_section *
add_section(conf *c, const char *name, size_t namelen, int line)
{
	struct conf_section *s;

	if (c->nsecs == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 8;
		struct conf_section *n = realloc(c->secs, ncap * sizeof *n);

		if (n == NULL)
			return NULL;
		c->secs = n;
		c->cap = ncap;
	}
	s = &c->secs[c->nsecs];
	memset(s, 0, sizeof *s);
	if ((s->name = strndup(name, namelen)) == NULL)
		return NULL;
	s->line = line;
	c->nsecs++;
	return s;
}

static int
add_entry(struct conf_section *s, const char *key, size_t keylen,
    const char *value, size_t valuelen, int line)
{
	struct conf_entry *e;

	if (s->nents == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 8;
		struct conf_entry *n = realloc(s->ents, ncap * sizeof *n);

		if (n == NULL)
			return SF_ENOMEM;
		s->ents = n;
		s->cap = ncap;
	}
	e = &s->ents[s->nents];
	e->key = strndup(key, keylen);
	e->value = strndup(value, valuelen);
	e->line = line;
	if (e->key == NULL || e->value == NULL) {
		free(e->key);
		free(e->value);
		return SF_ENOMEM;
	}
	s->nents++;
	return 0;
}

static int
is_blank(int ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\f' ||
	    ch == '\v';
}

static int
is_key_char(int ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	    (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
}

static int
is_section_char(int ch)
{
	return is_key_char(ch) || ch == '.';
}

/* How a section is named in messages: the top level has no name. */
static const char *
sec_label(const char *name)
{
	return name[0] == '\0' ? "(top level)" : name;
}

static int
out_of_memory(const conf *c, int line, char *why, size_t whylen)
{
	sf_why(why, whylen, "%s:%d: out of memory", c->name, line);
	return SF_ENOMEM;
}

/*
 * One line, already without its newline and surrounding blanks. *cur is the
 * section keys go to (NULL until the first key or header).
 */
static int
parse_line(conf *c, struct conf_section **cur, const char *p, size_t n,
    int line, char *why, size_t whylen)
{
	const char *key = p, *val;
	struct conf_section *s;
	struct conf_entry *e;
	size_t i, keylen, vallen;

	if (n == 0 || p[0] == '#' || p[0] == ';')
		return 0;
	if (p[0] == '[') {
		if (n < 3 || p[n - 1] != ']') {
			sf_why(why, whylen, "%s:%d: malformed section header",
			    c->name, line);
			return SF_ECONFIG;
		}
		for (i = 1; i < n - 1; i++) {
			if (!is_section_char((unsigned char)p[i])) {
				sf_why(why, whylen, "%s:%d: a section name is "
				    "made of A-Z a-z 0-9 . _ -", c->name, line);
				return SF_ECONFIG;
			}
		}
		for (i = 0; i < c->nsecs; i++) {
			s = &c->secs[i];
			if (strlen(s->name) == n - 2 &&
			    memcmp(s->name, p + 1, n - 2) == 0) {
				sf_why(why, whylen, "%s:%d: section [%s] repeated "
				    "(first at line %d)", c->name, line,
				    s->name, s->line);
				return SF_ECONFIG;
			}
		}
		if ((*cur = add_section(c, p + 1, n - 2, line)) == NULL)
			return out_of_memory(c, line, why, whylen);
		return 0;
	}

	for (keylen = 0; keylen < n && is_key_char((unsigned char)p[keylen]);
	    keylen++)
		;
	for (i = keylen; i < n && is_blank((unsigned char)p[i]); i++)
		;
	if (keylen == 0 || i == n || p[i] != '=') {
		sf_why(why, whylen, "%s:%d: expected \"key = value\", a [section] "
		    "or a comment", c->name, line);
		return SF_ECONFIG;
	}
	for (i++; i < n && is_blank((unsigned char)p[i]); i++)
		;
	val = p + i;
	vallen = n - i;
	/* Quotes keep leading or trailing blanks; there are no escapes. */
	if (vallen > 0 && val[0] == '"') {
		if (vallen < 2 || val[vallen - 1] != '"') {
			sf_why(why, whylen, "%s:%d: unterminated quoted value",
			    c->name, line);
			return SF_ECONFIG;
		}
		val++;
		vallen -= 2;
	}
	if (*cur == NULL && (*cur = add_section(c, "", 0, 0)) == NULL)
		return out_of_memory(c, line, why, whylen);
	s = *cur;
	for (i = 0; i < s->nents; i++) {
		e = &s->ents[i];
		if (strlen(e->key) == keylen &&
		    memcmp(e->key, key, keylen) == 0) {
			sf_why(why, whylen, "%s:%d: key \"%s\" repeated in [%s] "
			    "(first at line %d)", c->name, line, e->key,
			    sec_label(s->name), e->line);
			return SF_ECONFIG;
		}
	}
	if (add_entry(s, key, keylen, val, vallen, line) != 0)
		return out_of_memory(c, line, why, whylen);
	return 0;
}

/* Parse len bytes; the text need not be NUL-terminated. */
static int
parse_buf(const char *name, const char *text, size_t len, conf **out,
    char *why, size_t whylen)
{
	struct conf_section *cur = NULL;
	const char *p = text, *end = text + len;
	conf *c = NULL;
	int line = 0, rc = SF_ENOMEM;

	*out = NULL;
	if ((c = calloc(1, sizeof *c)) == NULL ||
	    (c->name = strdup(name ? name : "(config)")) == NULL) {
		sf_why(why, whylen, "%s: out of memory", name ? name : "(config)");
		goto out;
	}
	if (memchr(text, '\0', len) != NULL) {
		sf_why(why, whylen, "%s: contains a NUL byte", c->name);
		rc = SF_ECONFIG;
		goto out;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end, *next = nl ? nl + 1 : end;

		line++;
		while (p < e && is_blank((unsigned char)*p))
			p++;
		while (e > p && is_blank((unsigned char)e[-1]))
			e--;
		if ((rc = parse_line(c, &cur, p, (size_t)(e - p), line, why,
		    whylen)) != 0)
			goto out;
		p = next;
	}
	*out = c;
	c = NULL;  /* transferred */
	rc = 0;
out:
	conf_free(c);
	return rc;
}

int
conf_parse(const char *name, const char *text, conf **out, char *why,
    size_t whylen)
{
	*out = NULL;
	if (text == NULL)
		return SF_EINVAL;
	return parse_buf(name, text, strlen(text), out, why, whylen);
}

int
conf_load(const char *path, conf **out, char *why, size_t whylen)
{
	uint8_t *buf = NULL;
	size_t len;
	int rc;

	*out = NULL;
	errno = 0;
	rc = sf_read_file(path, CONF_MAX_FILE, &buf, &len);
	if (rc == SF_ETOOBIG) {
		sf_why(why, whylen, "%s: larger than %d bytes", path,
		    CONF_MAX_FILE);
		return SF_ECONFIG;
	}
	if (rc != 0) {
		sf_why(why, whylen, "%s: cannot read: %s", path,
		    errno ? strerror(errno) : sf_strerror(rc));
		return rc == SF_ENOMEM ? SF_ENOMEM : SF_EIO;
	}
	rc = parse_buf(path, (const char *)buf, len, out, why, whylen);
	free(buf);
	return rc;
}

const char *
conf_get(const conf *c, const char *section, const char *key)
{
	struct conf_entry *e = find_entry(find_section(c, section), key);

	return e ? e->value : NULL;
}

const char *
conf_get_str(const conf *c, const char *section, const char *key,
    const char *def)
{
	const char *v = conf_get(c, section, key);

	return v ? v : def;
}

/* "name:line: [section] key" for messages about one entry. */
static void
where(const conf *c, const char *section, const struct conf_entry *e,
    char *buf, size_t len)
{
	snprintf(buf, len, "%s:%d: [%s] %s", c->name, e->line,
	    sec_label(section), e->key);
}

int
conf_get_int(const conf *c, const char *section, const char *key,
    long long def, long long min, long long max, long long *out, char *why,
    size_t whylen)
{
	struct conf_entry *e = find_entry(find_section(c, section), key);
	char at[512], *end;
	const char *v;
	long long n;

	*out = def;
	if (e == NULL)
		return 0;
	v = e->value;
	where(c, section, e, at, sizeof at);
	/* strtoll alone would take leading blanks, "0x" and trailing junk. */
	errno = 0;
	if (!(isdigit((unsigned char)v[0]) ||
	    ((v[0] == '-' || v[0] == '+') && isdigit((unsigned char)v[1])))) {
		sf_why(why, whylen, "%s: \"%s\" is not an integer (expected "
		    "%lld..%lld)", at, v, min, max);
		return SF_ECONFIG;
	}
	n = strtoll(v, &end, 10);
	if (*end != '\0') {
		sf_why(why, whylen, "%s: \"%s\" is not an integer (expected "
		    "%lld..%lld)", at, v, min, max);
		return SF_ECONFIG;
	}
	if (errno == ERANGE || n < min || n > max) {
		sf_why(why, whylen, "%s: %s is out of range (expected "
		    "%lld..%lld)", at, v, min, max);
		return SF_ECONFIG;
	}
	*out = n;
	return 0;
}

int
conf_get_bool(const conf *c, const char *section, const char *key,
    int def, int *out, char *why, size_t whylen)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	struct conf_entry *e = find_entry(find_section(c, section), key);
	char at[512];

	*out = def;
	if (e == NULL)
		return 0;
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcasecmp(e->value, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(e->value, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	where(c, section, e, at, sizeof at);
	sf_why(why, whylen, "%s: \"%s\" is not a boolean (expected yes/no, "
	    "true/false, on/off or 1/0)", at, e->value);
	return SF_ECONFIG;
}

/* "name: [section] key" for messages about a value (no line number). */
static void
what(const conf *c, const char *section, const char *key, char *buf,
    size_t len)
{
	snprintf(buf, len, "%s: [%s] %s", c->name, section, key);
}

int
conf_get_uids(const conf *c, const char *section, const char *key,
    uid_t *uids, size_t max, size_t *n, char *why, size_t whylen)
{
	char **items = NULL, at[512];
	size_t k = conf_split_list(conf_get(c, section, key), &items);
	int rc = 0;

	*n = 0;
	for (size_t i = 0; i < k; i++) {
		struct passwd *pw;
		char *end;
		unsigned long u = strtoul(items[i], &end, 10);

		if (*n >= max) {
			what(c, section, key, at, sizeof at);
			sf_why(why, whylen, "%s: more than %zu uids", at, max);
			rc = SF_ECONFIG;
			break;
		}
		if (*end == '\0' && end != items[i])
			uids[(*n)++] = (uid_t)u;
		else if ((pw = getpwnam(items[i])) != NULL)
			uids[(*n)++] = pw->pw_uid;
		else {
			what(c, section, key, at, sizeof at);
			sf_why(why, whylen, "%s: unknown user \"%s\"", at,
			    items[i]);
			rc = SF_ECONFIG;
			break;
		}
	}
	conf_list_free(items, k);
	return rc;
}

int
conf_get_gid(const conf *c, const char *section, const char *key,
    gid_t *gid, char *why, size_t whylen)
{
	const char *v = conf_get(c, section, key);
	struct group *gr;
	char at[512], *end;
	unsigned long g;

	*gid = (gid_t)-1;
	if (v == NULL || *v == '\0')
		return 0;
	g = strtoul(v, &end, 10);
	if (*end == '\0') {
		*gid = (gid_t)g;
		return 0;
	}
	if ((gr = getgrnam(v)) == NULL) {
		what(c, section, key, at, sizeof at);
		sf_why(why, whylen, "%s: unknown group \"%s\"", at, v);
		return SF_ECONFIG;
	}
	*gid = gr->gr_gid;
	return 0;
}

int
conf_get_log_level(const conf *c, const char *section, const char *key,
    int def, int *out, char *why, size_t whylen)
{
	const char *v = conf_get(c, section, key);
	char at[512];

	*out = def;
	if (v == NULL)
		return 0;
	if (strcmp(v, "warning") == 0)
		*out = LOG_LEVEL_WARN;
	else if (strcmp(v, "info") == 0)
		*out = LOG_LEVEL_INFO;
	else if (strcmp(v, "debug") == 0)
		*out = LOG_LEVEL_DEBUG;
	else {
		what(c, section, key, at, sizeof at);
		sf_why(why, whylen, "%s: warning, info or debug", at);
		return SF_ECONFIG;
	}
	return 0;
}

int
conf_has_section(const conf *c, const char *section)
{
	return find_section(c, section) != NULL;
}

size_t
conf_sections(const conf *c, const char *prefix, const char ***names)
{
	size_t n = 0, plen = prefix ? strlen(prefix) : 0;
	const char **v;

	*names = NULL;
	if (c == NULL || c->nsecs == 0)
		return 0;
	if ((v = calloc(c->nsecs, sizeof *v)) == NULL)
		return 0;
	for (size_t i = 0; i < c->nsecs; i++)
		if (strncmp(c->secs[i].name, prefix ? prefix : "", plen) == 0)
			v[n++] = c->secs[i].name;
	if (n == 0) {
		free(v);
		return 0;
	}
	*names = v;
	return n;
}

int
conf_check_keys(const conf *c, const char *section,
    const char *const *allowed, char *why, size_t whylen)
{
	struct conf_section *s = find_section(c, section);

	if (s == NULL)
		return 0;
	for (size_t i = 0; i < s->nents; i++) {
		const char *const *a;

		for (a = allowed; a && *a; a++)
			if (strcmp(*a, s->ents[i].key) == 0)
				break;
		if (a == NULL || *a == NULL) {
			sf_why(why, whylen, "%s:%d: unknown key \"%s\" in [%s]",
			    c->name, s->ents[i].line, s->ents[i].key,
			    sec_label(s->name));
			return SF_ECONFIG;
		}
	}
	return 0;
}

/* A growing string for conf_expand. */
struct sbuf {
	char *p;
	size_t len, cap;
};

static int
sbuf_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 64;
		char *np;

		while (ncap < b->len + n + 1)
			ncap *= 2;
		if ((np = realloc(b->p, ncap)) == NULL)
			return SF_ENOMEM;
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

char *
conf_expand(const char *tmpl, const char *const *vars, char *why,
    size_t whylen)
{
	struct sbuf b = { 0 };
	const char *p = tmpl, *q, *close;
	char *ret = NULL;
	int said = 0;

	if (tmpl == NULL) {
		sf_why(why, whylen, "no template");
		return NULL;
	}
	if (sbuf_add(&b, "", 0) != 0)
		goto out;
	while ((q = strstr(p, "${")) != NULL) {
		const char *const *v, *val;
		size_t nlen;

		if (sbuf_add(&b, p, (size_t)(q - p)) != 0)
			goto out;
		if ((close = strchr(q + 2, '}')) == NULL) {
			sf_why(why, whylen, "\"%s\": unterminated ${ at offset "
			    "%zu", tmpl, (size_t)(q - tmpl));
			said = 1;
			goto out;
		}
		nlen = (size_t)(close - (q + 2));
		for (v = vars; v && v[0]; v += 2)
			if (strlen(v[0]) == nlen &&
			    memcmp(v[0], q + 2, nlen) == 0)
				break;
		if (v == NULL || v[0] == NULL) {
			sf_why(why, whylen, "\"%s\": unknown variable ${%.*s}",
			    tmpl, (int)nlen, q + 2);
			said = 1;
			goto out;
		}
		val = v[1] ? v[1] : "";
		if (sbuf_add(&b, val, strlen(val)) != 0)
			goto out;
		p = close + 1;
	}
	if (sbuf_add(&b, p, strlen(p)) != 0)
		goto out;
	ret = b.p;
	b.p = NULL;  /* transferred */
out:
	if (ret == NULL && !said)
		sf_why(why, whylen, "out of memory");
	free(b.p);
	return ret;
}

size_t
conf_split_list(const char *value, char ***items)
{
	size_t n = 0, cap = 0;
	char **v = NULL, **nv;
	size_t ret = 0;
	const char *p = value;

	*items = NULL;
	if (value == NULL)
		return 0;
	for (;;) {
		const char *comma = strchr(p, ',');
		const char *s = p, *e = comma ? comma : p + strlen(p);

		while (s < e && is_blank((unsigned char)*s))
			s++;
		while (e > s && is_blank((unsigned char)e[-1]))
			e--;
		if (e > s) {
			if (n == cap) {
				cap = cap ? cap * 2 : 8;
				if ((nv = realloc(v, cap * sizeof *v)) == NULL)
					goto out;
				v = nv;
			}
			if ((v[n] = strndup(s, (size_t)(e - s))) == NULL)
				goto out;
			n++;
		}
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	if (n > 0) {
		*items = v;
		v = NULL;  /* transferred */
		ret = n;
	}
out:
	/* The interface has no error return: an empty list is the failure. */
	conf_list_free(v, n);
	return ret;
}

void
conf_list_free(char **items, size_t n)
{
	if (items == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(items[i]);
	free(items);
}
