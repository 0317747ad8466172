/*
 * token_uri.h - PKCS#11 URIs (RFC 7512): the signer's [token] uri and the
 * URIs it gives its keys.
 *
 *   pkcs11:token=secretfree;serial=0123456789abcdef?pin-source=file:/p
 *
 * Path attributes: token, manufacturer, serial, model (matched against the
 * token's CK_TOKEN_INFO), slot-id (decimal CK_SLOT_ID), object (CKA_LABEL),
 * id (CKA_ID, bytes), type (public, private, cert, secret-key, data).
 * Query attributes: pin-source, pin-value, module-name, module-path.
 * Values are percent-decoded; characters outside RFC 7512's sets must be
 * percent-encoded ("%20" for a space). Refused, each with a sentence that
 * names it: anything but "pkcs11:" (case-insensitive) at the start, an
 * attribute twice, an empty attribute name, a character that must be
 * encoded, a bad or truncated %XX, %00 in a text value, a token, model,
 * serial or manufacturer longer than its CK_TOKEN_INFO field (it could
 * never match), a slot-id that is not a decimal CK_SLOT_ID, a type not in
 * the list, pin-source and pin-value together, attributes RFC 7512 defines
 * that secretfree does not use (library-manufacturer, library-description,
 * library-version, slot-manufacturer, slot-description), vendor
 * attributes (x-...), any other name, and a URI longer than
 * TOKEN_URI_MAX. Parsing touches no token; only token_session.c matches.
 */
#ifndef SF_TOKEN_URI_H
#define SF_TOKEN_URI_H

#include <stddef.h>
#include <stdint.h>

#define TOKEN_URI_MAX 4096

enum {
	TOKEN_URI_TYPE_ANY = 0,      /* no type= (or an empty one) */
	TOKEN_URI_TYPE_PUBLIC,
	TOKEN_URI_TYPE_PRIVATE,
	TOKEN_URI_TYPE_CERT,
	TOKEN_URI_TYPE_SECRET_KEY,
	TOKEN_URI_TYPE_DATA,
};

/* A parsed URI: each string malloc'd and NUL-terminated, NULL when the
 * attribute is absent ("" when present and empty). */
typedef struct {
	char *token;             /* CK_TOKEN_INFO label, at most 32 bytes */
	char *manufacturer;      /* manufacturerID, at most 32 */
	char *serial;            /* serialNumber, at most 16 */
	char *model;             /* model, at most 16 */
	int has_slot_id;
	unsigned long slot_id;
	char *object;            /* CKA_LABEL */
	uint8_t *id;             /* CKA_ID; NULL when absent */
	size_t id_len;
	int type;                /* TOKEN_URI_TYPE_* */
	char *pin_source;
	char *pin_value;
	char *module_name;
	char *module_path;
} token_uri;

/*
 * Parse text (NUL-terminated) into *out (zeroed first; token_uri_fini it
 * whatever the result). 0, SF_EINVAL with why naming the attribute or
 * the character and its offset, SF_ENOMEM.
 */
int token_uri_parse(const char *text, token_uri *out, char *why,
    size_t whylen);
void token_uri_fini(token_uri *u);   /* NULL-safe; zeroes *u */

/*
 * u as a URI (malloc'd; NULL if out of memory): the path attributes in
 * the order of the struct, then the query ones, each byte the component
 * does not allow as it is percent-encoded (%XX, upper case) and no other,
 * so that token_uri_parse gives u back, and a URI that token_uri_parse
 * read formats no longer than it was.
 */
char *token_uri_fmt(const token_uri *u);

/* 1 if want (NULL: absent, which matches anything) equals the blank-padded
 * CK_TOKEN_INFO-style field of len bytes, else 0. */
int token_uri_match_field(const char *want, const unsigned char *field,
    size_t len);

#endif
