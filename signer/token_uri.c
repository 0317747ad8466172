/*
 * token_uri.c - PKCS#11 URIs (RFC 7512): parse, format, match a field
 * (see token_uri.h).
 *
 * The grammar, as far as it is ours:
 *
 *   pk11-URI   = "pkcs11:" pk11-path [ "?" pk11-query ]
 *   pk11-path  = [ pk11-pattr *( ";" pk11-pattr ) ]
 *   pk11-query = [ pk11-qattr *( "&" pk11-qattr ) ]
 *   pk11-pchar = unreserved / pk11-res-avail / "&" / pct-encoded
 *   pk11-qchar = unreserved / pk11-res-avail / "/" / "?" / "|" / pct-encoded
 *   pk11-res-avail = ":" / "[" / "]" / "@" / "!" / "$" / "'" / "(" / ")"
 *                    / "*" / "+" / "," / "="
 *
 * An attribute is name "=" value, split at the first "=". p11-kit's own
 * parser also accepts unencoded spaces and other characters the RFC does
 * not; this one holds to the RFC and says which character to encode.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "token_uri.h"
#include "util.h"

enum { PATH = 0, QUERY = 1 };

/* The attributes we read, in token_uri's order; where each lives. */
enum {
	A_TOKEN, A_MANUF, A_SERIAL, A_MODEL, A_SLOT_ID, A_OBJECT, A_ID,
	A_TYPE, A_PIN_SOURCE, A_PIN_VALUE, A_MODULE_NAME, A_MODULE_PATH,
	A_COUNT
};

static const struct {
	const char *name;
	int where;
	size_t max;          /* longest value that can match; 0: any */
} attrs[A_COUNT] = {
	[A_TOKEN] = { "token", PATH, 32 },
	[A_MANUF] = { "manufacturer", PATH, 32 },
	[A_SERIAL] = { "serial", PATH, 16 },
	[A_MODEL] = { "model", PATH, 16 },
	[A_SLOT_ID] = { "slot-id", PATH, 0 },
	[A_OBJECT] = { "object", PATH, 0 },
	[A_ID] = { "id", PATH, 0 },
	[A_TYPE] = { "type", PATH, 0 },
	[A_PIN_SOURCE] = { "pin-source", QUERY, 0 },
	[A_PIN_VALUE] = { "pin-value", QUERY, 0 },
	[A_MODULE_NAME] = { "module-name", QUERY, 0 },
	[A_MODULE_PATH] = { "module-path", QUERY, 0 },
};

/* RFC 7512 attributes that secretfree does not match on. */
static const char *const unsupported[] = {
	"library-manufacturer", "library-description", "library-version",
	"slot-manufacturer", "slot-description", NULL,
};

static const char *const types[] = {
	[TOKEN_URI_TYPE_PUBLIC] = "public",
	[TOKEN_URI_TYPE_PRIVATE] = "private",
	[TOKEN_URI_TYPE_CERT] = "cert",
	[TOKEN_URI_TYPE_SECRET_KEY] = "secret-key",
	[TOKEN_URI_TYPE_DATA] = "data",
};
#define NTYPES (sizeof types / sizeof types[0])

static int
unreserved(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	    c == '~';
}

/* May c stand unencoded in a value of the path or the query? */
static int
allowed(int c, int where)
{
	if (unreserved(c) || (c != '\0' && strchr(":[]@!$'()*+,=", c)))
		return 1;
	return where == PATH ? c == '&' : (c == '/' || c == '?' || c == '|');
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A name (or a bad character) as text fit for a message: at most 40
 * printable characters, anything else as \xNN. */
static const char *
printable(const char *s, size_t n, char buf[200])
{
	size_t o = 0;

	for (size_t i = 0; i < n && i < 40 && o + 5 < 200; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			buf[o++] = (char)c;
		else
			o += (size_t)snprintf(buf + o, 200 - o, "\\x%02x", c);
	}
	if (n > 40 && o + 4 < 200) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

/*
 * Decode the value s[0..n) (at offset off of the URI) of attribute name
 * into a malloc'd buffer of *len bytes plus a NUL. text: %00 refused.
 */
static int
decode(const char *s, size_t n, size_t off, int where, int text,
    const char *name, uint8_t **out, size_t *len, char *why, size_t whylen)
{
	uint8_t *b;
	size_t o = 0;
	char pb[200];

	*out = NULL;
	if ((b = malloc(n + 1)) == NULL)
		return SF_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i], h, l;

		if (c == '%') {
			if (i + 2 >= n) {
				sf_why(why, whylen, "PKCS#11 URI: %s: \"%%\" at"
				    " offset %zu is not followed by two hex"
				    " digits", name, off + i);
				goto bad;
			}
			h = hexval((unsigned char)s[i + 1]);
			l = hexval((unsigned char)s[i + 2]);
			if (h < 0 || l < 0) {
				sf_why(why, whylen, "PKCS#11 URI: %s: \"%s\" at"
				    " offset %zu is not a %%XX escape", name,
				    printable(s + i, 3, pb), off + i);
				goto bad;
			}
			c = h << 4 | l;
			if (c == 0 && text) {
				sf_why(why, whylen, "PKCS#11 URI: %s holds %%00"
				    " (a NUL) at offset %zu", name, off + i);
				goto bad;
			}
			i += 2;
		} else if (!allowed(c, where)) {
			sf_why(why, whylen, "PKCS#11 URI: %s: character \"%s\""
			    " at offset %zu must be percent-encoded (%%%02X)",
			    name, printable(s + i, 1, pb), off + i, c);
			goto bad;
		}
		b[o++] = (uint8_t)c;
	}
	b[o] = '\0';
	*out = b;
	*len = o;
	return 0;
bad:
	free(b);
	return SF_EINVAL;
}

static int
find_attr(const char *name, size_t n)
{
	for (int i = 0; i < A_COUNT; i++)
		if (strlen(attrs[i].name) == n &&
		    memcmp(attrs[i].name, name, n) == 0)
			return i;
	return -1;
}

/* What a name we do not read is, said in why. */
static int
refuse_name(const char *name, size_t n, int where, size_t off, char *why,
    size_t whylen)
{
	char pb[200];
	int i;

	printable(name, n, pb);
	if (n == 0) {
		sf_why(why, whylen, "PKCS#11 URI: an attribute at offset %zu"
		    " has no name", off);
		return SF_EINVAL;
	}
	for (int k = 0; unsupported[k]; k++)
		if (strlen(unsupported[k]) == n &&
		    memcmp(unsupported[k], name, n) == 0) {
			sf_why(why, whylen, "PKCS#11 URI: attribute %s is not"
			    " supported: the token is chosen by token,"
			    " manufacturer, serial, model and slot-id", pb);
			return SF_EINVAL;
		}
	if (n > 2 && name[0] == 'x' && name[1] == '-') {
		sf_why(why, whylen, "PKCS#11 URI: vendor attribute %s is not"
		    " supported", pb);
		return SF_EINVAL;
	}
	if ((i = find_attr(name, n)) >= 0) {
		sf_why(why, whylen, "PKCS#11 URI: %s belongs in the %s, after"
		    " %s", pb, attrs[i].where == PATH ? "path" : "query",
		    attrs[i].where == PATH ? "\"pkcs11:\"" : "\"?\"");
		return SF_EINVAL;
	}
	sf_why(why, whylen, "PKCS#11 URI: unknown %s attribute %s (path: token,"
	    " manufacturer, serial, model, slot-id, object, id, type; query:"
	    " pin-source, pin-value, module-name, module-path)",
	    where == PATH ? "path" : "query", pb);
	return SF_EINVAL;
}

static char **
text_slot(token_uri *u, int a)
{
	switch (a) {
	case A_TOKEN: return &u->token;
	case A_MANUF: return &u->manufacturer;
	case A_SERIAL: return &u->serial;
	case A_MODEL: return &u->model;
	case A_OBJECT: return &u->object;
	case A_PIN_SOURCE: return &u->pin_source;
	case A_PIN_VALUE: return &u->pin_value;
	case A_MODULE_NAME: return &u->module_name;
	case A_MODULE_PATH: return &u->module_path;
	}
	return NULL;
}

/* value s[0..n) at offset off of attribute a into u. */
static int
set_attr(token_uri *u, int a, const char *s, size_t n, size_t off,
    char *why, size_t whylen)
{
	const char *name = attrs[a].name;
	uint8_t *b = NULL;
	size_t len = 0;
	int rc;

	if (a == A_SLOT_ID) {
		unsigned long v = 0;

		if (n == 0 || n > 20) {
			sf_why(why, whylen, "PKCS#11 URI: slot-id must be a"
			    " decimal number");
			return SF_EINVAL;
		}
		for (size_t i = 0; i < n; i++) {
			if (s[i] < '0' || s[i] > '9' ||
			    v > (~0UL - (unsigned long)(s[i] - '0')) / 10) {
				sf_why(why, whylen, "PKCS#11 URI: slot-id must"
				    " be a decimal number that fits a"
				    " CK_SLOT_ID");
				return SF_EINVAL;
			}
			v = v * 10 + (unsigned long)(s[i] - '0');
		}
		u->has_slot_id = 1;
		u->slot_id = v;
		return 0;
	}
	if (a == A_TYPE) {
		u->type = TOKEN_URI_TYPE_ANY;
		if (n == 0)
			return 0;
		for (size_t t = 1; t < NTYPES; t++)
			if (strlen(types[t]) == n &&
			    memcmp(types[t], s, n) == 0) {
				u->type = (int)t;
				return 0;
			}
		sf_why(why, whylen, "PKCS#11 URI: type must be public, private,"
		    " cert, secret-key or data");
		return SF_EINVAL;
	}
	if ((rc = decode(s, n, off, attrs[a].where, a != A_ID, name, &b,
	    &len, why, whylen)) != 0)
		return rc;
	if (a == A_ID) {
		u->id = b;
		u->id_len = len;
		return 0;
	}
	if (attrs[a].max && len > attrs[a].max) {
		sf_why(why, whylen, "PKCS#11 URI: %s is %zu bytes; the token's"
		    " field has %zu, so it could never match", name, len,
		    attrs[a].max);
		free(b);
		return SF_EINVAL;
	}
	*text_slot(u, a) = (char *)b;
	return 0;
}

/* The attributes of one component, text[start..end), separated by sep. */
static int
component(token_uri *u, const char *text, size_t start, size_t end,
    int where, int seen[A_COUNT], char *why, size_t whylen)
{
	char sep = where == PATH ? ';' : '&';
	size_t i = start;
	int rc;

	if (start == end)
		return 0;
	for (;;) {
		size_t j = i, eq;
		int a;

		while (j < end && text[j] != sep)
			j++;
		if (j == i) {
			sf_why(why, whylen, "PKCS#11 URI: an empty attribute at"
			    " offset %zu (one \"%c\" too many)", i, sep);
			return SF_EINVAL;
		}
		for (eq = i; eq < j && text[eq] != '='; eq++)
			;
		if (eq == j) {
			char pb[200];

			sf_why(why, whylen, "PKCS#11 URI: \"%s\" at offset %zu"
			    " is not name=value", printable(text + i, j - i,
			    pb), i);
			return SF_EINVAL;
		}
		a = find_attr(text + i, eq - i);
		if (a < 0 || attrs[a].where != where)
			return refuse_name(text + i, eq - i, where, i, why,
			    whylen);
		if (seen[a]++) {
			sf_why(why, whylen, "PKCS#11 URI: %s appears twice",
			    attrs[a].name);
			return SF_EINVAL;
		}
		if ((rc = set_attr(u, a, text + eq + 1, j - eq - 1, eq + 1,
		    why, whylen)) != 0)
			return rc;
		if (j == end)
			return 0;
		i = j + 1;
	}
}

int
token_uri_parse(const char *text, token_uri *out, char *why, size_t whylen)
{
	int seen[A_COUNT] = { 0 };
	const char *q;
	size_t len, qpos;
	int rc;

	memset(out, 0, sizeof *out);
	sf_why(why, whylen, "%s", "");
	if ((len = strnlen(text, TOKEN_URI_MAX + 1)) > TOKEN_URI_MAX) {
		sf_why(why, whylen, "PKCS#11 URI longer than %d bytes",
		    TOKEN_URI_MAX);
		return SF_EINVAL;
	}
	if (strncasecmp(text, "pkcs11:", 7) != 0) {
		sf_why(why, whylen, "not a PKCS#11 URI: it must start with"
		    " \"pkcs11:\"");
		return SF_EINVAL;
	}
	q = memchr(text + 7, '?', len - 7);
	qpos = q ? (size_t)(q - text) : len;
	if ((rc = component(out, text, 7, qpos, PATH, seen, why,
	    whylen)) != 0 ||
	    (q && (rc = component(out, text, qpos + 1, len, QUERY, seen, why,
	    whylen)) != 0))
		goto out;
	if (out->pin_source && out->pin_value) {
		sf_why(why, whylen, "PKCS#11 URI: pin-source and pin-value"
		    " together: give one");
		rc = SF_EINVAL;
	}
out:
	if (rc != 0)
		token_uri_fini(out);
	return rc;
}

void
token_uri_fini(token_uri *u)
{
	if (u == NULL)
		return;
	for (int a = 0; a < A_COUNT; a++) {
		char **p = text_slot(u, a);

		if (p)
			free(*p);
	}
	free(u->id);
	memset(u, 0, sizeof *u);
}

/*
 * Append "name=" and the value (n bytes) at *p, percent-encoding only
 * what the component does not allow as it is: never longer than the text
 * the value was parsed from, so that a URI within TOKEN_URI_MAX formats
 * within it too (fuzz_p11uri found the case where encoding every
 * reserved character made it longer).
 */
static char *
put(char *p, const char *name, const uint8_t *v, size_t n, int where)
{
	static const char hex[] = "0123456789ABCDEF";

	p = stpcpy(p, name);
	*p++ = '=';
	for (size_t i = 0; i < n; i++) {
		if (allowed(v[i], where))
			*p++ = (char)v[i];
		else {
			*p++ = '%';
			*p++ = hex[v[i] >> 4];
			*p++ = hex[v[i] & 15];
		}
	}
	return p;
}

char *
token_uri_fmt(const token_uri *u)
{
	size_t need = 16 + 24;
	char *s, *p, num[24];
	int first = 1, inquery = 0;

	for (int a = 0; a < A_COUNT; a++) {
		char **v = text_slot((token_uri *)u, a);

		if (v && *v)
			need += strlen(attrs[a].name) + 2 + 3 * strlen(*v);
	}
	need += u->id ? 4 + 3 * u->id_len : 0;
	need += 32;   /* type=secret-key; */
	if ((s = malloc(need)) == NULL)
		return NULL;
	p = stpcpy(s, "pkcs11:");
	for (int a = 0; a < A_COUNT; a++) {
		char **v = text_slot((token_uri *)u, a);
		const uint8_t *val = NULL;
		size_t n = 0;

		if (a == A_SLOT_ID && u->has_slot_id) {
			n = (size_t)snprintf(num, sizeof num, "%lu",
			    u->slot_id);
			val = (const uint8_t *)num;
		} else if (a == A_ID && u->id) {
			val = u->id;
			n = u->id_len;
		} else if (a == A_TYPE && u->type > TOKEN_URI_TYPE_ANY &&
		    (size_t)u->type < NTYPES) {
			val = (const uint8_t *)types[u->type];
			n = strlen(types[u->type]);
		} else if (v && *v) {
			val = (const uint8_t *)*v;
			n = strlen(*v);
		} else
			continue;
		if (attrs[a].where == QUERY && !inquery) {
			*p++ = '?';
			inquery = 1;
			first = 1;
		}
		if (!first)
			*p++ = attrs[a].where == PATH ? ';' : '&';
		first = 0;
		p = put(p, attrs[a].name, val, n, attrs[a].where);
	}
	*p = '\0';
	return s;
}

int
token_uri_match_field(const char *want, const unsigned char *field,
    size_t len)
{
	size_t n;

	if (want == NULL)
		return 1;
	if ((n = strlen(want)) > len || memcmp(field, want, n) != 0)
		return 0;
	for (size_t i = n; i < len; i++)
		if (field[i] != ' ' && field[i] != '\0')
			return 0;
	return 1;
}
