/*
 * http_parse.h - what the front doors (http_rest.c, http_est.c) read from
 * a request, as pure functions of strings and bytes: no I/O, no server,
 * so that tests/fuzz/fuzz_http.c drives them straight from fuzz input.
 * libmicrohttpd has parsed the HTTP itself; these read the values of its
 * headers, its path and its body.
 */
#ifndef SF_HTTP_PARSE_H
#define SF_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* A request body's Content-Type, as the front doors tell them apart. */
enum {
	HTTP_CT_NONE = 0,       /* no Content-Type */
	HTTP_CT_PKCS10,         /* application/pkcs10: DER, or its base64 */
	HTTP_CT_PEM,            /* application/x-pem-file, text/plain */
	HTTP_CT_BYTES,          /* application/octet-stream: told by content */
	HTTP_CT_OTHER,
};

/* The media type of a Content-Type value (parameters, case and blanks
 * ignored): HTTP_CT_*. NULL is HTTP_CT_NONE. */
int http_parse_content_type(const char *ct);

/*
 * Strict base64 (RFC 4648 alphabet, padding as needed, blanks and line
 * breaks anywhere ignored) into a malloc'd buffer; at most max bytes of
 * input. 0, SF_ETOOBIG, SF_EINVAL (not base64, or nothing), SF_ENOMEM.
 */
int http_parse_b64(const char *in, size_t len, size_t max, uint8_t **out,
    size_t *outlen);

/*
 * The CSR of a POST /new: the `device-csr` header (base64 of the PEM CSR,
 * as the reference's device sends it, or of the DER) or the body, by its
 * Content-Type: application/pkcs10 (DER or base64 of it),
 * application/x-pem-file or text/plain (PEM), application/octet-stream
 * (any of these). One of the two, not both. max bounds the CSR as sent
 * (csr_max_bytes). 0 with *csr (malloc'd; what csr_parse reads), or
 * SF_EINVAL / SF_ETOOBIG / SF_ENOMEM with why.
 */
int http_parse_new_csr(const char *header, const uint8_t *body, size_t len,
    const char *ctype, size_t max, uint8_t **csr, size_t *csrlen, char *why,
    size_t whylen);

/*
 * The CSR of an EST simpleenroll / simplereenroll (RFC 7030 4.2.1, RFC
 * 8951): Content-Type application/pkcs10, the body base64 of the DER
 * (line breaks allowed; a DER body is taken too). 0 with *csr (malloc'd),
 * or SF_EINVAL / SF_ETOOBIG / SF_ENOMEM with why.
 */
int http_parse_est_csr(const uint8_t *body, size_t len, const char *ctype,
    size_t max, uint8_t **csr, size_t *csrlen, char *why, size_t whylen);

/* http_parse_range's answers. */
enum {
	HTTP_RANGE_PART = 0,     /* serve [*off, *off + *len) with 206 */
	HTTP_RANGE_ALL = 1,      /* no Range, or one to ignore: serve all */
	HTTP_RANGE_UNSATISFIABLE = 2,   /* 416 */
};

/*
 * A Range header over a representation of total bytes (RFC 9110 14.1.2):
 * one range of bytes, "bytes=first-last", "bytes=first-" or
 * "bytes=-suffix". A header that is absent or does not parse, or asks for
 * several ranges, is ignored (HTTP_RANGE_ALL), as the RFC allows; a range
 * that starts past the end is HTTP_RANGE_UNSATISFIABLE.
 */
int http_parse_range(const char *hdr, size_t total, size_t *off,
    size_t *len);

/*
 * The enrollment id in a path "/enrollments/<id>" (what
 * sf_enrollment_id_valid takes; authz makes "enr-" and 32 lowercase hex
 * digits). 0 with id, SF_ENOTFOUND (not such a path), SF_EINVAL (an id
 * that is not one).
 */
int http_parse_enrollment_path(const char *path, char id[64]);

/*
 * An EST path (RFC 7030 3.2.2): "/.well-known/est/<op>" or
 * "/.well-known/est/<label>/<op>", op one of cacerts, simpleenroll,
 * simplereenroll, csrattrs, serverkeygen, fullcmc. The label is an
 * issuing CA's name ("us-east-1.widgiot": region, then product line);
 * "" without one. 0 with label and op; SF_ENOTFOUND otherwise.
 */
int http_parse_est_path(const char *path, char label[80], char op[24]);

/*
 * A CA label "<region>.<product line>" into its parts (each
 * sf_name_valid). 0, or SF_EINVAL.
 */
int http_parse_ca_label(const char *label, char region[40],
    char product[40]);

/* The other way, for EST replies: base64 in lines of 64 characters,
 * each ending in "\r\n" (RFC 2045, RFC 8951), NUL-terminated and
 * malloc'd. 0 or SF_ENOMEM. */
int http_parse_b64_lines(const uint8_t *in, size_t len, char **out,
    size_t *outlen);

#endif
