/*
 * Unit tests of signer/token_uri.c: PKCS#11 URIs as RFC 7512 writes them
 * (every attribute we read, percent-encoding, the characters each
 * component allows, empty values), what is refused and that the sentence
 * names it, token_uri_fmt giving back what token_uri_parse reads, and
 * matching a blank-padded CK_TOKEN_INFO field.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "token_uri.h"
#include "../../tap.h"

/* Parse text; 0 or the error, the sentence in why. */
static int
parse(const char *text, token_uri *u, char *why, size_t whylen)
{
	return token_uri_parse(text, u, why, whylen);
}

static void
test_valid(void)
{
	static const uint8_t id[] = { 0x00, 0x01, 0xab, 0xff };
	token_uri u;
	char why[300] = "";

	is_int(parse("pkcs11:", &u, why, sizeof why), 0, "\"pkcs11:\": every"
	    " token (%s)", why);
	ok(!u.token && !u.object && !u.has_slot_id && !u.id && !u.type,
	    "  nothing set");
	token_uri_fini(&u);
	is_int(parse("PKCS11:token=a", &u, why, sizeof why), 0, "the scheme"
	    " in capitals (%s)", why);
	is_str(u.token, "a", "  token a");
	token_uri_fini(&u);

	is_int(parse("pkcs11:token=My%20Token;manufacturer=SoftHSM%20project;"
	    "serial=0123456789abcdef;model=SoftHSM%20v2;slot-id=18446744073709"
	    "551615;object=issuing-widgiot-us-east-1-2026a;id=%00%01%ab%FF;"
	    "type=private?pin-source=file:/etc/secret%20free/user.pin&"
	    "module-name=softhsm2&module-path=/usr/lib/softhsm/libsofthsm2.so",
	    &u, why, sizeof why), 0, "every attribute we read (%s)", why);
	is_str(u.token, "My Token", "  token, %%20 decoded");
	is_str(u.manufacturer, "SoftHSM project", "  manufacturer");
	is_str(u.serial, "0123456789abcdef", "  serial");
	is_str(u.model, "SoftHSM v2", "  model");
	ok(u.has_slot_id && u.slot_id == 18446744073709551615UL,
	    "  slot-id, the largest CK_SLOT_ID");
	is_str(u.object, "issuing-widgiot-us-east-1-2026a", "  object");
	ok(u.id && u.id_len == 4 && memcmp(u.id, id, 4) == 0,
	    "  id as bytes, %%00 and either case of hex included");
	is_int(u.type, TOKEN_URI_TYPE_PRIVATE, "  type private");
	is_str(u.pin_source, "file:/etc/secret free/user.pin",
	    "  pin-source with \":\" and \"/\" unencoded in the query");
	is_str(u.module_name, "softhsm2", "  module-name");
	is_str(u.module_path, "/usr/lib/softhsm/libsofthsm2.so",
	    "  module-path");
	token_uri_fini(&u);
	token_uri_fini(&u);
	ok(1, "token_uri_fini twice, and of NULL, is harmless");
	token_uri_fini(NULL);

	static const char *const typ[] = { "public", "private", "cert",
	    "secret-key", "data" };
	for (int i = 0; i < 5; i++) {
		char text[64];

		snprintf(text, sizeof text, "pkcs11:type=%s", typ[i]);
		is_int(parse(text, &u, why, sizeof why), 0, "type=%s", typ[i]);
		is_int(u.type, TOKEN_URI_TYPE_PUBLIC + i, "  read as such");
		token_uri_fini(&u);
	}

	is_int(parse("pkcs11:token=;object=&x=y:[]@!$'()*+,=", &u, why,
	    sizeof why), 0, "empty values; \"&\" and the reserved set in a path"
	    " value (%s)", why);
	is_str(u.token, "", "  token present and empty");
	is_str(u.object, "&x=y:[]@!$'()*+,=", "  object with \"&\" and \"=\"");
	token_uri_fini(&u);
	is_int(parse("pkcs11:id=;type=", &u, why, sizeof why), 0, "id= and"
	    " type= empty");
	ok(u.id != NULL && u.id_len == 0 && u.type == TOKEN_URI_TYPE_ANY,
	    "  an empty id, any type");
	token_uri_fini(&u);
	is_int(parse("pkcs11:?pin-value=a/b?c|d", &u, why, sizeof why), 0,
	    "query only; \"/\", \"?\", \"|\" in a query value (%s)", why);
	is_str(u.pin_value, "a/b?c|d", "  pin-value");
	token_uri_fini(&u);
	is_int(parse("pkcs11:token=abcdefghijklmnopqrstuvwxyz012345;"
	    "serial=0123456789abcdef", &u, why, sizeof why), 0, "a 32-byte"
	    " token label and a 16-byte serial fit");
	token_uri_fini(&u);
}

struct bad {
	const char *uri;
	const char *says;    /* a piece of the sentence */
	const char *what;
};

static const struct bad bads[] = {
	{ "", "must start with", "empty" },
	{ "http://example.com/", "must start with", "another scheme" },
	{ "pkcs11", "must start with", "no colon" },
	{ "pkcs11:;", "an empty attribute at offset 7", "an empty attribute" },
	{ "pkcs11:token=a;", "empty attribute at offset 15 (one \";\" too"
	    " many)", "a trailing \";\"" },
	{ "pkcs11:?pin-value=a;b", "\";\" at offset 19 must be percent-encoded"
	    " (%3B)", "\";\" in a query value" },
	{ "pkcs11:token", "is not name=value", "no \"=\"" },
	{ "pkcs11:=a", "has no name", "no name" },
	{ "pkcs11:token=a;token=b", "token appears twice", "token twice" },
	{ "pkcs11:?pin-source=a&pin-source=b", "pin-source appears twice",
	    "pin-source twice" },
	{ "pkcs11:bogus=1", "unknown path attribute bogus", "an unknown name" },
	{ "pkcs11:?bogus=1", "unknown query attribute bogus",
	    "an unknown query name" },
	{ "pkcs11:Token=a", "unknown path attribute Token",
	    "names are case-sensitive" },
	{ "pkcs11:library-version=1", "library-version is not supported",
	    "library-version" },
	{ "pkcs11:library-manufacturer=a", "library-manufacturer is not"
	    " supported", "library-manufacturer" },
	{ "pkcs11:library-description=a", "library-description is not"
	    " supported", "library-description" },
	{ "pkcs11:slot-description=a", "slot-description is not supported",
	    "slot-description" },
	{ "pkcs11:slot-manufacturer=a", "slot-manufacturer is not supported",
	    "slot-manufacturer" },
	{ "pkcs11:x-vendor=1", "vendor attribute x-vendor", "a vendor"
	    " attribute" },
	{ "pkcs11:?x-vendor=1", "vendor attribute x-vendor",
	    "a vendor query attribute" },
	{ "pkcs11:pin-source=a", "pin-source belongs in the query",
	    "a query attribute in the path" },
	{ "pkcs11:?token=a", "token belongs in the path",
	    "a path attribute in the query" },
	{ "pkcs11:token=a%2", "not followed by two hex digits",
	    "a truncated escape" },
	{ "pkcs11:token=a%", "not followed by two hex digits",
	    "a lone \"%\"" },
	{ "pkcs11:token=a%zz", "is not a %XX escape", "a bad escape" },
	{ "pkcs11:token=a%00b", "%00", "a NUL in a text value" },
	{ "pkcs11:?pin-source=a%00", "%00", "a NUL in pin-source" },
	{ "pkcs11:token=a b", "offset 14 must be percent-encoded (%20)",
	    "an unencoded space" },
	{ "pkcs11:token=a/b", "must be percent-encoded (%2F)",
	    "\"/\" in a path value" },
	{ "pkcs11:token=a?b=c", "unknown query attribute b",
	    "\"?\" starts the query" },
	{ "pkcs11:token=a#b", "must be percent-encoded (%23)",
	    "a fragment" },
	{ "pkcs11:token=\xc3\xa9", "must be percent-encoded (%C3)",
	    "UTF-8 unencoded" },
	{ "pkcs11:token=\x01", "\\x01", "a control character, shown escaped" },
	{ "pkcs11:token=abcdefghijklmnopqrstuvwxyz0123456",
	    "token is 33 bytes; the token's field has 32", "a 33-byte label" },
	{ "pkcs11:serial=0123456789abcdef0", "serial is 17 bytes",
	    "a 17-byte serial" },
	{ "pkcs11:model=0123456789abcdef0", "model is 17 bytes",
	    "a 17-byte model" },
	{ "pkcs11:manufacturer=%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41"
	    "%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41%41",
	    "manufacturer is 33 bytes", "33 bytes once decoded" },
	{ "pkcs11:slot-id=", "decimal number", "an empty slot-id" },
	{ "pkcs11:slot-id=-1", "decimal number", "a negative slot-id" },
	{ "pkcs11:slot-id=0x10", "decimal number", "a hex slot-id" },
	{ "pkcs11:slot-id=%31", "decimal number", "an encoded slot-id" },
	{ "pkcs11:slot-id=18446744073709551616", "fits a CK_SLOT_ID",
	    "a slot-id past 2^64 - 1" },
	{ "pkcs11:type=key", "type must be public, private", "an unknown"
	    " type" },
	{ "pkcs11:type=Private", "type must be", "types are case-sensitive" },
	{ "pkcs11:?pin-source=a&pin-value=b", "pin-source and pin-value"
	    " together", "pin-source and pin-value" },
	{ "pkcs11:?&pin-value=b", "empty attribute at offset 8 (one \"&\" too"
	    " many)", "an empty query attribute" },
};

static void
test_refused(void)
{
	token_uri u;
	char why[300], *big;

	for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
		why[0] = '\0';
		is_int(parse(bads[i].uri, &u, why, sizeof why), SF_EINVAL,
		    "%s: refused", bads[i].what);
		ok(strstr(why, bads[i].says) != NULL, "  saying \"%s\" (%s)",
		    bads[i].says, why);
		ok(u.token == NULL && u.id == NULL && u.pin_source == NULL,
		    "  leaving nothing behind");
	}
	big = malloc(TOKEN_URI_MAX + 2);
	if (big) {
		memset(big, 'a', TOKEN_URI_MAX + 1);
		memcpy(big, "pkcs11:object=", 14);
		big[TOKEN_URI_MAX + 1] = '\0';
		is_int(parse(big, &u, why, sizeof why), SF_EINVAL,
		    "a URI of %d bytes: refused", TOKEN_URI_MAX + 1);
		ok(strstr(why, "longer than") != NULL, "  saying so (%s)", why);
		big[TOKEN_URI_MAX] = '\0';
		is_int(parse(big, &u, why, sizeof why), 0, "one of %d: read",
		    TOKEN_URI_MAX);
		token_uri_fini(&u);
		free(big);
	}
}

/* parse(fmt(parse(text))) == parse(text), and fmt is stable. */
static void
round_trip(const char *text, const char *want)
{
	token_uri a, b;
	char why[300] = "", *s1 = NULL, *s2 = NULL;

	is_int(parse(text, &a, why, sizeof why), 0, "parse %s (%s)", text,
	    why);
	s1 = token_uri_fmt(&a);
	if (want)
		is_str(s1, want, "  formats as %s", want);
	is_int(s1 ? parse(s1, &b, why, sizeof why) : -1, 0,
	    "  which parses (%s)", why);
	s2 = token_uri_fmt(&b);
	is_str(s2, s1, "  and formats the same again");
	ok(a.id_len == b.id_len && (a.id == NULL) == (b.id == NULL) &&
	    (a.id_len == 0 || memcmp(a.id, b.id, a.id_len) == 0) &&
	    a.type == b.type && a.has_slot_id == b.has_slot_id &&
	    a.slot_id == b.slot_id, "  the same attributes");
	free(s1);
	free(s2);
	token_uri_fini(&a);
	token_uri_fini(&b);
}

static void
test_fmt(void)
{
	token_uri u;
	char *s;

	round_trip("pkcs11:", "pkcs11:");
	round_trip("pkcs11:token=secretfree;object=root-2026a;type=private",
	    "pkcs11:token=secretfree;object=root-2026a;type=private");
	round_trip("pkcs11:type=cert;object=a%20b;token=x",
	    "pkcs11:token=x;object=a%20b;type=cert");
	round_trip("pkcs11:token=:[]&;id=%00%ff%2a;slot-id=007?pin-source=/a/b&"
	    "module-path=/m.so",
	    "pkcs11:token=:[]&;slot-id=7;id=%00%FF*?pin-source=/a/b"
	    "&module-path=/m.so");
	round_trip("pkcs11:object=a%26b?pin-value=a%26b%3Bc",
	    "pkcs11:object=a&b?pin-value=a%26b%3Bc");
	round_trip("pkcs11:?pin-value=%26%3B%20%3F",
	    "pkcs11:?pin-value=%26%3B%20?");
	round_trip("pkcs11:token=;id=", "pkcs11:token=;id=");
	round_trip("pkcs11:?pin-value=1234", "pkcs11:?pin-value=1234");

	/* Formatting never lengthens what was parsed (fuzz_p11uri's finding:
	 * a URI of reserved characters just under the limit came out over
	 * it when every reserved character was encoded). */
	{
		char *big = malloc(TOKEN_URI_MAX + 1), why[300];
		token_uri v;

		if (big) {
			size_t n = strlen("pkcs11:?pin-source=");

			memcpy(big, "pkcs11:?pin-source=", n);
			for (; n < TOKEN_URI_MAX; n++)
				big[n] = "?|/:"[n % 4];
			big[n] = '\0';
			s = token_uri_parse(big, &v, why, sizeof why) == 0 ?
			    token_uri_fmt(&v) : NULL;
			ok(s && strlen(s) <= TOKEN_URI_MAX, "a %d-byte URI of"
			    " reserved characters formats within the limit"
			    " (%zu)", TOKEN_URI_MAX, s ? strlen(s) : 0);
			token_uri_fini(&v);
			is_int(s ? token_uri_parse(s, &v, why, sizeof why) : -1,
			    0, "  and parses back (%s)", why);
			token_uri_fini(&v);
			free(s);
			free(big);
		}
	}

	memset(&u, 0, sizeof u);
	u.token = "My Token";
	u.object = "k/1";
	u.type = TOKEN_URI_TYPE_PRIVATE;
	s = token_uri_fmt(&u);
	is_str(s, "pkcs11:token=My%20Token;object=k%2F1;type=private",
	    "a key's URI made from its parts");
	free(s);
}

static void
test_match(void)
{
	const unsigned char label[32] = "secretfree                      ";
	unsigned char nul[16] = "abc";

	ok(token_uri_match_field(NULL, label, sizeof label), "absent matches");
	ok(token_uri_match_field("secretfree", label, sizeof label),
	    "the label without its blanks matches");
	ok(token_uri_match_field("secretfree  ", label, sizeof label),
	    "with some of them too");
	ok(!token_uri_match_field("secret", label, sizeof label),
	    "a prefix does not");
	ok(!token_uri_match_field("secretfreeX", label, sizeof label),
	    "a longer one does not");
	ok(!token_uri_match_field("", label, sizeof label),
	    "an empty one does not match a label that has one");
	ok(token_uri_match_field("abc", nul, sizeof nul),
	    "NUL padding is taken as blanks");
	ok(!token_uri_match_field("abcdefghijklmnopq", nul, sizeof nul),
	    "longer than the field: never");
}

int
main(void)
{
	test_valid();
	test_refused();
	test_fmt();
	test_match();
	return tap_done();
}
