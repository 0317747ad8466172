/*
 * test_http_parse - the front doors' readers (authz/http_parse.c): the
 * forms of a Range, base64 with line breaks and its strictness, the CSR
 * from the device-csr header or the body by content type, EST bodies,
 * enrollment and EST paths, CA labels, and http_status_from_err against
 * DESIGN.md's errors table.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "http.h"
#include "http_parse.h"
#include "../../tap.h"

static void
test_range(void)
{
	size_t off, len;

	is_int(http_parse_range(NULL, 100, &off, &len), HTTP_RANGE_ALL,
	    "no Range: all");
	ok(off == 0 && len == 100, "all is [0, 100)");
	is_int(http_parse_range("bytes=0-9", 100, &off, &len),
	    HTTP_RANGE_PART, "bytes=0-9: a part");
	ok(off == 0 && len == 10, "[0, 10)");
	is_int(http_parse_range("bytes=90-", 100, &off, &len),
	    HTTP_RANGE_PART, "bytes=90-: a part");
	ok(off == 90 && len == 10, "[90, 100)");
	is_int(http_parse_range("bytes=95-200", 100, &off, &len),
	    HTTP_RANGE_PART, "a last byte past the end is cut");
	ok(off == 95 && len == 5, "[95, 100)");
	is_int(http_parse_range("bytes=-30", 100, &off, &len),
	    HTTP_RANGE_PART, "bytes=-30: the last 30");
	ok(off == 70 && len == 30, "[70, 100)");
	is_int(http_parse_range("bytes=-300", 100, &off, &len),
	    HTTP_RANGE_PART, "a suffix longer than all: all of it");
	ok(off == 0 && len == 100, "[0, 100)");
	is_int(http_parse_range("bytes=100-", 100, &off, &len),
	    HTTP_RANGE_UNSATISFIABLE, "starting at the end: 416");
	is_int(http_parse_range("bytes=-0", 100, &off, &len),
	    HTTP_RANGE_UNSATISFIABLE, "an empty suffix: 416");
	is_int(http_parse_range("bytes=0-1,5-6", 100, &off, &len),
	    HTTP_RANGE_ALL, "several ranges: ignored");
	is_int(http_parse_range("bytes=9-2", 100, &off, &len), HTTP_RANGE_ALL,
	    "last before first: ignored");
	is_int(http_parse_range("items=0-9", 100, &off, &len), HTTP_RANGE_ALL,
	    "another unit: ignored");
	is_int(http_parse_range("bytes=99999999999999999999-", 100, &off,
	    &len), HTTP_RANGE_ALL, "a number too long: ignored");
}

static void
test_b64(void)
{
	uint8_t *out = NULL;
	size_t n = 0;
	char *lines = NULL;

	is_int(http_parse_b64("QUJD\r\nREVG\n", 11, 100, &out, &n), 0,
	    "base64 with line breaks");
	ok(n == 6 && memcmp(out, "ABCDEF", 6) == 0, "decodes to ABCDEF");
	free(out);
	is_int(http_parse_b64("QUI=", 4, 100, &out, &n), 0, "padding");
	ok(n == 2, "two bytes");
	free(out);
	is_int(http_parse_b64("QUI", 3, 100, &out, &n), SF_EINVAL,
	    "a short quantum refused");
	is_int(http_parse_b64("QU=I", 4, 100, &out, &n), SF_EINVAL,
	    "data after padding refused");
	is_int(http_parse_b64("QUJ=", 4, 100, &out, &n), SF_EINVAL,
	    "stray bits refused");
	is_int(http_parse_b64("QU*D", 4, 100, &out, &n), SF_EINVAL,
	    "a character outside the alphabet refused");
	is_int(http_parse_b64("", 0, 100, &out, &n), SF_EINVAL,
	    "nothing refused");
	is_int(http_parse_b64("QUJDREVG", 8, 4, &out, &n), SF_ETOOBIG,
	    "over the limit");
	is_int(http_parse_b64_lines((const uint8_t *)"ABCDEF", 6, &lines, &n),
	    0, "encode");
	is_str(lines, "QUJDREVG\r\n", "in CRLF-terminated lines");
	free(lines);
}

static void
test_csr_source(void)
{
	uint8_t *csr = NULL;
	size_t n = 0;
	const uint8_t pem[] = "-----BEGIN CERTIFICATE REQUEST-----\n";
	char why[256];

	is_int(http_parse_new_csr("LS0tLS1CRUdJTg==", NULL, 0, NULL, 16384,
	    &csr, &n, why, sizeof why), 0, "device-csr: base64 decoded");
	ok(n == 10 && memcmp(csr, "-----BEGIN", 10) == 0, "to the PEM text");
	free(csr);
	is_int(http_parse_new_csr("not base64", NULL, 0, NULL, 16384, &csr,
	    &n, why, sizeof why), SF_EINVAL, "device-csr not base64: EINVAL");
	is_int(http_parse_new_csr("QUJD", pem, sizeof pem, "text/plain",
	    16384, &csr, &n, why, sizeof why), SF_EINVAL,
	    "header and body: EINVAL");
	is_int(http_parse_new_csr(NULL, NULL, 0, NULL, 16384, &csr, &n, why,
	    sizeof why), SF_EINVAL, "neither: EINVAL");
	is_int(http_parse_new_csr(NULL, pem, sizeof pem,
	    "Application/X-PEM-File; charset=utf-8", 16384, &csr, &n, why,
	    sizeof why), 0, "a PEM body, the content type in any case");
	free(csr);
	is_int(http_parse_new_csr(NULL, pem, sizeof pem, "application/json",
	    16384, &csr, &n, why, sizeof why), SF_EINVAL,
	    "another content type: EINVAL");
	is_int(http_parse_new_csr(NULL, (const uint8_t *)"\x30\x03\x02\x01\x00",
	    5, "application/pkcs10", 16384, &csr, &n, why, sizeof why), 0,
	    "a DER pkcs10 body taken as it is");
	ok(n == 5 && csr[0] == 0x30, "five DER bytes");
	free(csr);
	is_int(http_parse_new_csr(NULL, (const uint8_t *)"MAMCAQA=\r\n", 10,
	    "application/pkcs10", 16384, &csr, &n, why, sizeof why), 0,
	    "a base64 pkcs10 body decoded");
	ok(n == 5 && csr[0] == 0x30, "to the DER");
	free(csr);
	is_int(http_parse_new_csr(NULL, pem, sizeof pem, "text/plain", 10,
	    &csr, &n, why, sizeof why), SF_ETOOBIG, "a body over max: ETOOBIG");
	is_int(http_parse_est_csr((const uint8_t *)"MAMCAQA=", 8,
	    "application/pkcs10", 16384, &csr, &n, why, sizeof why), 0,
	    "EST: base64 of the DER");
	free(csr);
	is_int(http_parse_est_csr((const uint8_t *)"MAMCAQA=", 8,
	    "application/x-pem-file", 16384, &csr, &n, why, sizeof why),
	    SF_EINVAL, "EST: only application/pkcs10");
}

static void
test_paths(void)
{
	char id[64], label[80], op[24], region[40], product[40];

	is_int(http_parse_enrollment_path(
	    "/enrollments/enr-0123456789abcdef0123456789abcdef", id), 0,
	    "an enrollment path");
	is_str(id, "enr-0123456789abcdef0123456789abcdef", "its id");
	is_int(http_parse_enrollment_path("/enrollments/", id), SF_EINVAL,
	    "no id: EINVAL");
	is_int(http_parse_enrollment_path("/enrollments/a/b", id), SF_EINVAL,
	    "a slash in the id: EINVAL");
	is_int(http_parse_enrollment_path("/enrollment/x", id), SF_ENOTFOUND,
	    "another path: ENOTFOUND");
	is_int(http_parse_est_path("/.well-known/est/cacerts", label, op), 0,
	    "EST without a label");
	ok(*label == '\0' && strcmp(op, "cacerts") == 0, "op cacerts");
	is_int(http_parse_est_path(
	    "/.well-known/est/us-east-1.widgiot/simplereenroll", label, op), 0,
	    "EST with a label");
	is_str(label, "us-east-1.widgiot", "the label");
	is_str(op, "simplereenroll", "the op");
	is_int(http_parse_est_path("/.well-known/est/a/b/cacerts", label, op),
	    SF_ENOTFOUND, "two labels: not EST");
	is_int(http_parse_est_path("/.well-known/est/nothing", label, op),
	    SF_ENOTFOUND, "an unknown op: not EST");
	is_int(http_parse_ca_label("us-east-1.widgiot", region, product), 0,
	    "a CA label");
	ok(strcmp(region, "us-east-1") == 0 && strcmp(product, "widgiot") == 0,
	    "region and product line");
	is_int(http_parse_ca_label("widgiot", region, product), SF_EINVAL,
	    "no region: EINVAL");
	is_int(http_parse_ca_label("US.widgiot", region, product), SF_EINVAL,
	    "an invalid region: EINVAL");
}

static void
test_status(void)
{
	is_int(http_status_from_err(0), 200, "0: 200");
	is_int(http_status_from_err(SF_EINVAL), 400, "EINVAL: 400");
	is_int(http_status_from_err(SF_EKEYTYPE), 400, "EKEYTYPE: 400");
	is_int(http_status_from_err(SF_ETOOBIG), 413, "ETOOBIG: 413");
	is_int(http_status_from_err(SF_ENOTFOUND), 404, "ENOTFOUND: 404");
	is_int(http_status_from_err(SF_EPERM), 403, "EPERM: 403");
	is_int(http_status_from_err(SF_ECONFLICT), 403, "ECONFLICT: 403");
	is_int(http_status_from_err(SF_ELIMIT), 429, "ELIMIT: 429");
	is_int(http_status_from_err(SF_ESTATE), 409, "ESTATE: 409");
	is_int(http_status_from_err(SF_EUNAVAIL), 503, "EUNAVAIL: 503");
	is_int(http_status_from_err(SF_EDB), 500, "EDB: 500");
	is_int(http_status_from_err(SF_ECRYPTO), 500, "ECRYPTO: 500");
}

int
main(void)
{
	test_range();
	test_b64();
	test_csr_source();
	test_paths();
	test_status();
	return tap_done();
}
