/*
 * libFuzzer target: what the HTTP front doors read from a request
 * (authz/http_parse.c), driven from one input. The input is four lines,
 * then the body:
 *
 *   Content-Type value
 *   device-csr header value ("-": no header)
 *   Range header value
 *   path
 *   body...
 *
 * Each reader gets its part: the CSR from header or body (then csr_parse,
 * as the front door does), the EST body, the Range over the body's length,
 * the enrollment and EST paths and the CA label, and base64 both ways.
 * Besides crashes, a broken invariant aborts: a range outside the body,
 * base64 that does not come back as it went.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "csr.h"
#include "err.h"
#include "http.h"
#include "http_parse.h"

#define MAX_CSR 16384

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

/* The next line of [*p, end) as a NUL-terminated copy; NULL at the end. */
static char *
line(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *nl;
	char *s;

	if (*p >= end)
		return NULL;
	nl = memchr(*p, '\n', (size_t)(end - *p));
	if (nl == NULL)
		nl = end;
	if ((s = malloc((size_t)(nl - *p) + 1)) == NULL)
		abort();
	memcpy(s, *p, (size_t)(nl - *p));
	s[nl - *p] = '\0';
	*p = nl < end ? nl + 1 : end;
	return s;
}

static void
try_csr(const uint8_t *csr, size_t n)
{
	csr_info ci;

	if (csr_parse(csr, n, MAX_CSR, &ci, NULL, 0) == 0)
		csr_info_fini(&ci);
}

static void
roundtrip(const uint8_t *b, size_t n)
{
	uint8_t *dec = NULL, *again = NULL;
	char *lines = NULL;
	size_t dn, ln, an;

	if (http_parse_b64((const char *)b, n, 1 << 20, &dec, &dn) != 0)
		return;
	if (http_parse_b64_lines(dec, dn, &lines, &ln) != 0)
		abort();
	if (strlen(lines) != ln || http_parse_b64(lines, ln, 1 << 21, &again,
	    &an) != 0 || an != dn || memcmp(again, dec, dn) != 0)
		abort();
	free(dec);
	free(again);
	free(lines);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	const uint8_t *p = data, *end = data + len, *body;
	char *ctype = line(&p, end), *hdr = line(&p, end);
	char *range = line(&p, end), *path = line(&p, end);
	char id[64], label[80], op[24], region[40], product[40];
	uint8_t *csr = NULL;
	size_t blen, csrlen, off, n;
	int r;

	body = p;
	blen = (size_t)(end - p);
	(void)http_parse_content_type(ctype);
	if (http_parse_new_csr(hdr && strcmp(hdr, "-") != 0 ? hdr : NULL, body,
	    blen, ctype, MAX_CSR, &csr, &csrlen, NULL, 0) == 0) {
		try_csr(csr, csrlen);
		free(csr);
	}
	if (http_parse_est_csr(body, blen, ctype, MAX_CSR, &csr, &csrlen,
	    NULL, 0) == 0) {
		try_csr(csr, csrlen);
		free(csr);
	}
	r = http_parse_range(range, blen, &off, &n);
	if (r == HTTP_RANGE_PART && (n == 0 || off >= blen || n > blen - off))
		abort();
	if (r == HTTP_RANGE_ALL && (off != 0 || n != blen))
		abort();
	if (http_parse_enrollment_path(path, id) == 0 && strlen(id) >= 64)
		abort();
	if (http_parse_est_path(path, label, op) == 0 && *label)
		(void)http_parse_ca_label(label, region, product);
	if (hdr)
		roundtrip((const uint8_t *)hdr, strlen(hdr));
	roundtrip(body, blen);
	(void)http_status_from_err(len ? -(int)(data[0] % 20) : 0);
	free(ctype);
	free(hdr);
	free(range);
	free(path);
	ERR_clear_error();
	return 0;
}
