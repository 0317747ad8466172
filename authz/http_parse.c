/*
 * http_parse.c - the front doors' reading of header values, paths and
 * bodies (see http_parse.h). Pure functions: every input is a string or
 * bytes from the peer, every answer a value or an SF_E* code, and nothing
 * here may crash or read past what it was given (tests/fuzz/fuzz_http.c).
 */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "devrec.h"
#include "err.h"
#include "http_parse.h"
#include "util.h"

#define DER_SEQUENCE 0x30

static const char *const EST_OPS[] = { "cacerts", "simpleenroll",
    "simplereenroll", "csrattrs", "serverkeygen", "fullcmc", NULL };

int
http_parse_content_type(const char *ct)
{
	static const struct {
		const char *type;
		int ct;
	} types[] = {
		{ "application/pkcs10", HTTP_CT_PKCS10 },
		{ "application/x-pem-file", HTTP_CT_PEM },
		{ "application/pem", HTTP_CT_PEM },
		{ "text/plain", HTTP_CT_PEM },
		{ "application/octet-stream", HTTP_CT_BYTES },
	};
	size_t n;

	if (ct == NULL)
		return HTTP_CT_NONE;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	n = strcspn(ct, "; \t");
	if (n == 0)
		return HTTP_CT_NONE;
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		if (strlen(types[i].type) == n &&
		    strncasecmp(ct, types[i].type, n) == 0)
			return types[i].ct;
	return HTTP_CT_OTHER;
}

static int
b64_value(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
http_parse_b64(const char *in, size_t len, size_t max, uint8_t **out,
    size_t *outlen)
{
	uint8_t *buf;
	uint32_t acc = 0;
	size_t n = 0, bits = 0, pad = 0, chars = 0;

	*out = NULL;
	*outlen = 0;
	if (len > max)
		return SF_ETOOBIG;
	if ((buf = malloc(len / 4 * 3 + 3)) == NULL)
		return SF_ENOMEM;
	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)in[i], v;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			pad++;
			chars++;
			continue;
		}
		/* Nothing but blanks after the padding. */
		if (pad || (v = b64_value(c)) < 0)
			goto bad;
		chars++;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[n++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* Whole quanta; at most two '='; no stray bits left set. */
	if (chars == 0 || chars % 4 != 0 || pad > 2 || acc != 0 || n == 0)
		goto bad;
	*out = buf;
	*outlen = n;
	return 0;
bad:
	free(buf);
	return SF_EINVAL;
}

/* A body of application/pkcs10: the DER, or base64 of it. */
static int
pkcs10_body(const uint8_t *body, size_t len, size_t max, uint8_t **csr,
    size_t *csrlen, char *why, size_t whylen)
{
	size_t i = 0;
	int rc;

	while (i < len && isspace(body[i]))
		i++;
	if (i < len && body[i] == DER_SEQUENCE) {
		if ((*csr = malloc(len)) == NULL)
			return SF_ENOMEM;
		memcpy(*csr, body, len);
		*csrlen = len;
		return 0;
	}
	/* base64 takes a third more room than the DER. */
	rc = http_parse_b64((const char *)body, len, max / 3 * 4 + 256, csr,
	    csrlen);
	if (rc == SF_EINVAL)
		sf_why(why, whylen, "the application/pkcs10 body is neither"
		    " DER nor base64 of it");
	else if (rc == SF_ETOOBIG)
		sf_why(why, whylen, "the CSR is over %zu bytes", max);
	return rc;
}

int
http_parse_new_csr(const char *header, const uint8_t *body, size_t len,
    const char *ctype, size_t max, uint8_t **csr, size_t *csrlen, char *why,
    size_t whylen)
{
	int ct = http_parse_content_type(ctype), rc;

	*csr = NULL;
	*csrlen = 0;
	if (header && len > 0) {
		sf_why(why, whylen, "send the CSR in the device-csr header or"
		    " in the body, not both");
		return SF_EINVAL;
	}
	if (header) {
		rc = http_parse_b64(header, strlen(header), max / 3 * 4 + 256,
		    csr, csrlen);
		if (rc == SF_EINVAL)
			sf_why(why, whylen, "the device-csr header is not"
			    " base64 (of the PEM CSR)");
		else if (rc == SF_ETOOBIG)
			sf_why(why, whylen, "the CSR is over %zu bytes", max);
		return rc;
	}
	if (len == 0) {
		sf_why(why, whylen, "no CSR: send it as base64 of the PEM in"
		    " the device-csr header, or as the body (application/pkcs10"
		    " or application/x-pem-file)");
		return SF_EINVAL;
	}
	if (len > max) {
		sf_why(why, whylen, "the CSR is over %zu bytes", max);
		return SF_ETOOBIG;
	}
	switch (ct) {
	case HTTP_CT_PKCS10:
		return pkcs10_body(body, len, max, csr, csrlen, why, whylen);
	case HTTP_CT_PEM:
	case HTTP_CT_BYTES:
		if ((*csr = malloc(len)) == NULL)
			return SF_ENOMEM;
		memcpy(*csr, body, len);
		*csrlen = len;
		return 0;
	}
	sf_why(why, whylen, "a CSR body needs Content-Type application/pkcs10"
	    " (DER or base64 of it), application/x-pem-file (PEM) or"
	    " application/octet-stream");
	return SF_EINVAL;
}

int
http_parse_est_csr(const uint8_t *body, size_t len, const char *ctype,
    size_t max, uint8_t **csr, size_t *csrlen, char *why, size_t whylen)
{
	*csr = NULL;
	*csrlen = 0;
	if (http_parse_content_type(ctype) != HTTP_CT_PKCS10) {
		sf_why(why, whylen, "an EST request is Content-Type"
		    " application/pkcs10 (RFC 7030 4.2.1)");
		return SF_EINVAL;
	}
	if (len == 0) {
		sf_why(why, whylen, "no CSR in the body");
		return SF_EINVAL;
	}
	if (len > max / 3 * 4 + 256) {
		sf_why(why, whylen, "the CSR is over %zu bytes", max);
		return SF_ETOOBIG;
	}
	return pkcs10_body(body, len, max, csr, csrlen, why, whylen);
}

/* A decimal number of at most 18 digits at *p; advances *p. */
static int
number(const char **p, size_t *out)
{
	size_t v = 0;
	int digits = 0;

	while (**p >= '0' && **p <= '9') {
		if (++digits > 18)
			return -1;
		v = v * 10 + (size_t)(**p - '0');
		(*p)++;
	}
	if (digits == 0)
		return -1;
	*out = v;
	return 0;
}

int
http_parse_range(const char *hdr, size_t total, size_t *off, size_t *len)
{
	const char *p = hdr;
	size_t first = 0, last = 0;
	int has_first, has_last;

	*off = 0;
	*len = total;
	if (p == NULL || strncasecmp(p, "bytes", 5) != 0)
		return HTTP_RANGE_ALL;
	p += 5;
	while (*p == ' ')
		p++;
	if (*p++ != '=')
		return HTTP_RANGE_ALL;
	while (*p == ' ')
		p++;
	has_first = number(&p, &first) == 0;
	if (*p++ != '-')
		return HTTP_RANGE_ALL;
	has_last = number(&p, &last) == 0;
	while (*p == ' ')
		p++;
	/* Several ranges, or trailing bytes: ignored. */
	if (*p != '\0' || (!has_first && !has_last))
		return HTTP_RANGE_ALL;
	if (!has_first) {
		/* The last `last` bytes. */
		if (last == 0)
			return HTTP_RANGE_UNSATISFIABLE;
		*len = last < total ? last : total;
		*off = total - *len;
		return total ? HTTP_RANGE_PART : HTTP_RANGE_UNSATISFIABLE;
	}
	if (has_last && last < first)
		return HTTP_RANGE_ALL;
	if (first >= total)
		return HTTP_RANGE_UNSATISFIABLE;
	if (!has_last || last >= total)
		last = total - 1;
	*off = first;
	*len = last - first + 1;
	return HTTP_RANGE_PART;
}

int
http_parse_enrollment_path(const char *path, char id[64])
{
	static const char prefix[] = "/enrollments/";
	size_t n;

	id[0] = '\0';
	if (path == NULL || strncmp(path, prefix, sizeof prefix - 1) != 0)
		return SF_ENOTFOUND;
	path += sizeof prefix - 1;
	n = strlen(path);
	if (n == 0 || n >= 64 || !sf_enrollment_id_valid(path))
		return SF_EINVAL;
	memcpy(id, path, n + 1);
	return 0;
}

int
http_parse_est_path(const char *path, char label[80], char op[24])
{
	static const char prefix[] = "/.well-known/est/";
	const char *slash, *o;
	size_t ll = 0;

	label[0] = op[0] = '\0';
	if (path == NULL || strncmp(path, prefix, sizeof prefix - 1) != 0)
		return SF_ENOTFOUND;
	path += sizeof prefix - 1;
	if ((slash = strchr(path, '/')) != NULL) {
		ll = (size_t)(slash - path);
		o = slash + 1;
		if (ll == 0 || ll >= 80 || strchr(o, '/') != NULL)
			return SF_ENOTFOUND;
	} else
		o = path;
	for (size_t i = 0; EST_OPS[i]; i++)
		if (strcmp(o, EST_OPS[i]) == 0) {
			memcpy(label, path, ll);
			label[ll] = '\0';
			sf_strlcpy(op, o, 24);
			return 0;
		}
	return SF_ENOTFOUND;
}

int
http_parse_ca_label(const char *label, char region[40], char product[40])
{
	const char *dot = strchr(label, '.');
	size_t rl;

	region[0] = product[0] = '\0';
	if (dot == NULL || (rl = (size_t)(dot - label)) == 0 || rl >= 40 ||
	    strlen(dot + 1) >= 40)
		return SF_EINVAL;
	memcpy(region, label, rl);
	region[rl] = '\0';
	sf_strlcpy(product, dot + 1, 40);
	if (!sf_name_valid(region) || !sf_name_valid(product)) {
		region[0] = product[0] = '\0';
		return SF_EINVAL;
	}
	return 0;
}

int
http_parse_b64_lines(const uint8_t *in, size_t len, char **out,
    size_t *outlen)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t chars = (len + 2) / 3 * 4, n = 0, col = 0;
	char *s;

	*out = NULL;
	*outlen = 0;
	if (len > SIZE_MAX / 2)
		return SF_ENOMEM;
	if ((s = malloc(chars + (chars / 64 + 1) * 2 + 1)) == NULL)
		return SF_ENOMEM;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		size_t left = len - i;

		if (left > 1)
			v |= (uint32_t)in[i + 1] << 8;
		if (left > 2)
			v |= in[i + 2];
		s[n++] = abc[(v >> 18) & 63];
		s[n++] = abc[(v >> 12) & 63];
		s[n++] = left > 1 ? abc[(v >> 6) & 63] : '=';
		s[n++] = left > 2 ? abc[v & 63] : '=';
		if ((col += 4) == 64) {
			s[n++] = '\r';
			s[n++] = '\n';
			col = 0;
		}
	}
	if (col) {
		s[n++] = '\r';
		s[n++] = '\n';
	}
	s[n] = '\0';
	*out = s;
	*outlen = n;
	return 0;
}
