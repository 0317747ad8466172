/*
 * Unit tests of signer/profile.c: subjects in both forms (escapes, UTF-8,
 * every refusal with its reason) and their one-line text read back;
 * 100,000 serials (distinct, positive, 16 bytes, as `openssl x509 -serial`
 * prints them); every extension builder checked through what OpenSSL
 * reports for a certificate carrying it (X509V3_EXT_print and the
 * accessors, after a DER round trip); validity and times read back; and
 * public keys of every device key type set into a certificate unchanged.
 *
 * Keys are made here at run time with EVP_PKEY_Q_keygen.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "err.h"
#include "profile.h"
#include "pubkey.h"
#include "util.h"
#include "../../tap.h"

/* ---- helpers ---- */

/* A certificate through DER and back, so the checks see what others see. */
static X509 *
reparse(X509 *x)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	X509 *r = NULL;
	int len = i2d_X509(x, &der);

	if (len > 0) {
		p = der;
		r = d2i_X509(NULL, &p, len);
	}
	OPENSSL_free(der);
	return r;
}

static EVP_PKEY *skel_key;   /* signs the skeletons */

/* A complete v3 certificate with nothing in it yet but the fields DER
 * requires, self-signed with skel_key by finish(). */
static X509 *
skeleton(void)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();

	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)"skeleton", -1, -1, 0);
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, n);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, skel_key);
	X509_NAME_free(n);
	return x;
}

/* Sign x, then through DER and back; x is freed. */
static X509 *
finish(X509 *x)
{
	X509 *r = NULL;

	if (X509_sign(x, skel_key, EVP_sha256()) > 0)
		r = reparse(x);
	X509_free(x);
	return r;
}

/* A certificate carrying ext, through DER and back. */
static X509 *
cert_with(X509_EXTENSION *ext)
{
	X509 *x = skeleton();

	if (ext && profile_add(x, ext) != 0) {
		X509_free(x);
		return NULL;
	}
	return finish(x);
}

/* What X509V3_EXT_print says about ext (malloc'd). */
static char *
ext_text(const X509_EXTENSION *ext)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long n;

	if (X509V3_EXT_print(b, (X509_EXTENSION *)ext, 0, 0) == 1 &&
	    (n = BIO_get_mem_data(b, &data)) >= 0 &&
	    (out = malloc((size_t)n + 1)) != NULL) {
		memcpy(out, data, (size_t)n);
		out[n] = '\0';
	}
	BIO_free(b);
	return out;
}

/* The extension of x with this NID, text of it, its criticality. */
static char *
cert_ext_text(X509 *x, int nid, int *critical)
{
	int i = x ? X509_get_ext_by_NID(x, nid, -1) : -1;
	X509_EXTENSION *e;

	*critical = -1;
	if (i < 0)
		return NULL;
	e = X509_get_ext(x, i);
	*critical = X509_EXTENSION_get_critical(e);
	return ext_text(e);
}

static char *
entry_text(X509_NAME *n, int i)
{
	unsigned char *u = NULL;
	char *r;
	int len;

	if (i < 0 || i >= X509_NAME_entry_count(n))
		return NULL;
	len = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(
	    X509_NAME_get_entry(n, i)));
	if (len < 0)
		return NULL;
	r = strndup((char *)u, (size_t)len);
	OPENSSL_free(u);
	return r;
}

static int
entry_nid(X509_NAME *n, int i)
{
	return OBJ_obj2nid(X509_NAME_ENTRY_get_object(X509_NAME_get_entry(n,
	    i)));
}

/* ---- subjects ---- */

static void
test_subject_forms(void)
{
	char why[256] = "";
	X509_NAME *a, *b, *c;
	char *s;

	a = profile_subject_parse("/C=US/O=Org/CN=x", why, sizeof why);
	ok(a != NULL, "slash form parses (%s)", why);
	b = profile_subject_parse("C=US, O=Org, CN=x", why, sizeof why);
	ok(b != NULL, "comma form parses (%s)", why);
	c = profile_subject_parse("  C = US ,O= Org,   CN =x  ", why,
	    sizeof why);
	ok(c != NULL, "comma form with blanks parses (%s)", why);
	if (a && b && c) {
		is_int(X509_NAME_entry_count(a), 3, "three entries");
		is_int(entry_nid(a, 0), NID_countryName, "first C");
		is_int(entry_nid(a, 1), NID_organizationName, "then O");
		is_int(entry_nid(a, 2), NID_commonName, "then CN");
		s = entry_text(a, 0);
		is_str(s, "US", "C=US");
		free(s);
		s = entry_text(a, 2);
		is_str(s, "x", "CN=x");
		free(s);
		is_int(X509_NAME_cmp(a, b), 0, "both forms give the same name");
		is_int(X509_NAME_cmp(a, c), 0, "blanks around keys and values"
		    " are trimmed");
		is_int(ASN1_STRING_type(X509_NAME_ENTRY_get_data(
		    X509_NAME_get_entry(a, 0))), V_ASN1_PRINTABLESTRING,
		    "C is a PrintableString");
	}
	X509_NAME_free(a);
	X509_NAME_free(b);
	X509_NAME_free(c);

	a = profile_subject_parse("/C=US/ST=VA/L=Anywhere/O=Automatra/"
	    "OU=WidgIoT us-east-1/CN=us-east-1.widgiot.automatra.net/"
	    "DC=example/emailAddress=pki@example.net/serialNumber=42/UID=u1",
	    why, sizeof why);
	ok(a != NULL, "every attribute parses (%s)", why);
	if (a) {
		static const int nids[] = { NID_countryName,
		    NID_stateOrProvinceName, NID_localityName,
		    NID_organizationName, NID_organizationalUnitName,
		    NID_commonName, NID_domainComponent,
		    NID_pkcs9_emailAddress, NID_serialNumber, NID_userId };
		int all = X509_NAME_entry_count(a) == 10;

		for (int i = 0; all && i < 10; i++)
			all = entry_nid(a, i) == nids[i];
		ok(all, "C ST L O OU CN DC emailAddress serialNumber UID, in"
		    " order");
		s = entry_text(a, 4);
		is_str(s, "WidgIoT us-east-1", "blanks inside a value kept");
		free(s);
	}
	X509_NAME_free(a);
}

static void
test_subject_escapes(void)
{
	char why[256] = "";
	X509_NAME *a;
	char *s;

	a = profile_subject_parse("/O=A\\/B/CN=x", why, sizeof why);
	s = a ? entry_text(a, 0) : NULL;
	is_str(s, "A/B", "slash form: \\/ is a / in the value");
	free(s);
	X509_NAME_free(a);
	a = profile_subject_parse("O=Org\\, Inc., CN=x", why, sizeof why);
	s = a ? entry_text(a, 0) : NULL;
	is_str(s, "Org, Inc.", "comma form: \\, is a , in the value");
	is_int(a ? X509_NAME_entry_count(a) : -1, 2, "and does not split it");
	free(s);
	X509_NAME_free(a);
	a = profile_subject_parse("/O=a,b/CN=back\\\\slash", why, sizeof why);
	s = a ? entry_text(a, 0) : NULL;
	is_str(s, "a,b", "slash form: a comma is plain text");
	free(s);
	s = a ? entry_text(a, 1) : NULL;
	is_str(s, "back\\slash", "\\\\ is one backslash");
	free(s);
	X509_NAME_free(a);
	a = profile_subject_parse("O=a/b, CN=x", why, sizeof why);
	s = a ? entry_text(a, 0) : NULL;
	is_str(s, "a/b", "comma form: a slash is plain text");
	free(s);
	X509_NAME_free(a);
}

static void
test_subject_utf8(void)
{
	char why[256] = "";
	X509_NAME *a;
	const ASN1_STRING *d;
	char *s;

	a = profile_subject_parse("/C=DE/O=M\xc3\xbcller & S\xc3\xb6hne/"
	    "CN=\xe6\x9d\xb1\xe4\xba\xac-1", why, sizeof why);
	ok(a != NULL, "UTF-8 values parse (%s)", why);
	if (a == NULL)
		return;
	d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(a, 1));
	is_int(ASN1_STRING_type(d), V_ASN1_UTF8STRING, "O is a UTF8String");
	is_int(ASN1_STRING_length(d), 16, "O is 16 bytes long");
	ok(memcmp(ASN1_STRING_get0_data(d), "M\xc3\xbcller & S\xc3\xb6hne",
	    16) == 0, "O holds the UTF-8 bytes unchanged");
	s = entry_text(a, 2);
	is_str(s, "\xe6\x9d\xb1\xe4\xba\xac-1", "CN in CJK characters");
	free(s);
	X509_NAME_free(a);
}

static void
test_subject_errors(void)
{
	static const struct {
		const char *s, *why_has;
	} bad[] = {
		{ "/C=US/X=1/CN=x", "unknown attribute \"X\"" },
		{ "C=US, commonName=x", "unknown attribute \"commonName\"" },
		{ "/C=US/O=/CN=x", "O has an empty value" },
		{ "O=Org, CN=  ", "CN has an empty value" },
		{ "/C=USA/CN=x", "two-letter" },
		{ "/C=U/CN=x", "two-letter" },
		{ "/C=12/CN=x", "two-letter" },
		{ "/C=U./CN=x", "two-letter" },
		{ "/C=US/CN", "\"CN\" is not KEY=value" },
		{ "O=Org, just text", "is not KEY=value" },
		{ "/C=US/CN=x/", "is not KEY=value" },
		{ "", "is not KEY=value" },
		{ "/", "KEY=value" },
		{ "/CN=0123456789012345678901234567890123456789012345678901234"
		    "5678901234", "bad value for CN" },
		{ "/C=\xc3\x9c/CN=x", "C" },
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char why[256] = "";
		X509_NAME *n = profile_subject_parse(bad[i].s, why, sizeof why);

		ok(n == NULL, "refused: \"%s\"", bad[i].s);
		ok(strstr(why, bad[i].why_has) != NULL,
		    "  and why says %s (%s)", bad[i].why_has, why);
		X509_NAME_free(n);
	}
	ok(profile_subject_parse(NULL, NULL, 0) == NULL,
	    "NULL subject, no why buffer: NULL");
}

static void
test_subject_fmt(void)
{
	static const char *const round[] = {
		"/C=US/O=Org/CN=x",
		"/C=US/ST=VA/L=Anywhere/O=Automatra/OU=WidgIoT us-east-1/"
		    "CN=us-east-1.widgiot.automatra.net",
		"/DC=net/DC=example/emailAddress=pki@example.net/"
		    "serialNumber=42/UID=u1",
		"/O=A\\/B/CN=back\\\\slash",
		"/O=Org, Inc./CN=a+b=c",
		"/C=DE/O=M\xc3\xbcller & S\xc3\xb6hne/CN=\xe6\x9d\xb1\xe4\xba\xac-1",
	};
	char why[256] = "";
	X509_NAME *a, *b;
	char *s;

	for (size_t i = 0; i < sizeof round / sizeof round[0]; i++) {
		a = profile_subject_parse(round[i], why, sizeof why);
		s = a ? profile_subject_fmt(a) : NULL;
		is_str(s, round[i], "fmt(parse(s)) == s for \"%s\"", round[i]);
		b = s ? profile_subject_parse(s, why, sizeof why) : NULL;
		ok(b != NULL, "  and parse(fmt(n)) parses");
		is_int(a && b ? X509_NAME_cmp(a, b) : -1, 0,
		    "  and is the same name");
		free(s);
		X509_NAME_free(a);
		X509_NAME_free(b);
	}
	a = profile_subject_parse("C=US, O=Org, CN=x", why, sizeof why);
	s = a ? profile_subject_fmt(a) : NULL;
	is_str(s, "/C=US/O=Org/CN=x", "the comma form is written in the slash"
	    " form");
	free(s);
	X509_NAME_free(a);

	/* A name from elsewhere: control bytes are shown, not passed on. */
	a = X509_NAME_new();
	X509_NAME_add_entry_by_NID(a, NID_commonName, V_ASN1_UTF8STRING,
	    (const unsigned char *)"a\nb", -1, -1, 0);
	s = profile_subject_fmt(a);
	is_str(s, "/CN=a\\x0Ab", "a newline in a value is written as \\x0A");
	free(s);
	X509_NAME_free(a);
}

/* ---- serials ---- */

static int
cmp16(const void *a, const void *b)
{
	return memcmp(a, b, SERIAL_LEN);
}

/* Validity: notBefore a minute back, notAfter days ahead, both read back
 * as Unix times; an unreadable time is 0. */
static void
test_validity(void)
{
	X509 *x = skeleton(), *r;
	ASN1_TIME *t = ASN1_TIME_new();
	int64_t now = (int64_t)time(NULL), nb, na;

	is_int(profile_set_validity(x, 30), 0, "profile_set_validity");
	r = finish(x);
	nb = r ? profile_time_unix(X509_get0_notBefore(r)) : 0;
	na = r ? profile_time_unix(X509_get0_notAfter(r)) : 0;
	ok(nb >= now - 60 - 2, "notBefore is about a minute back (%lld s)",
	    (long long)(now - nb));
	ok(nb <= now - 60 + 2, "  not more (%lld s)", (long long)(now - nb));
	ok(na >= now + 30 * 86400 - 2, "notAfter is 30 days ahead");
	ok(na <= now + 30 * 86400 + 2, "  not more");
	X509_free(r);
	ok(t ? ASN1_TIME_set_string(t, "20260102030405Z") : 0,
	    "a GeneralizedTime");
	is_int(t ? profile_time_unix(t) : -1, 1767323045,
	    "profile_time_unix reads it as UTC");
	ok(t ? ASN1_TIME_set_string(t, "260102030405Z") : 0, "a UTCTime");
	is_int(t ? profile_time_unix(t) : -1, 1767323045, "  the same time");
	ok(t ? ASN1_STRING_set(t, "not a time", -1) : 0, "garbage");
	is_int(t ? profile_time_unix(t) : -1, 0, "  is 0");
	ERR_clear_error();
	ASN1_TIME_free(t);
}

/* profile_add0 adds and frees; a NULL extension is a failed constructor. */
static void
test_add0(void)
{
	X509 *x = skeleton();

	is_int(profile_add0(x, profile_ext_basic(0, -1)), 0,
	    "profile_add0 adds an extension");
	is_int(X509_get_ext_count(x), 1, "  one extension");
	is_int(profile_add0(x, NULL), SF_ECRYPTO, "a NULL one: SF_ECRYPTO");
	is_int(X509_get_ext_count(x), 1, "  and nothing added");
	X509_free(x);
}

static void
test_serials(void)
{
	enum { N = 100000 };
	uint8_t (*v)[SERIAL_LEN] = malloc((size_t)N * SERIAL_LEN);
	char hex[2 * SERIAL_LEN + 1], back[80], want[2 * SERIAL_LEN + 1];
	int first_ok = 1, time_ok = 1, hex_ok = 1, text_ok = 1, len_ok = 1;
	int dup = 0, allbytes = 1, low = 0, sorted = 1;
	/* Which values each random byte took. */
	uint8_t seen[SERIAL_LEN - SERIAL_RANDOM_AT][256] = { { 0 } };
	uint32_t t0 = (uint32_t)time(NULL), t1, t;
	X509 *x = skeleton();

	if (v == NULL || x == NULL) {
		ok(0, "memory for the serials");
		free(v);
		X509_free(x);
		return;
	}
	for (int i = 0; i < N; i++) {
		memset(hex, 'z', sizeof hex);
		if (profile_serial_new(v[i], hex) != 0) {
			first_ok = 0;
			break;
		}
		if (v[i][0] != SERIAL_MARK)
			first_ok = 0;
		t = (uint32_t)v[i][1] << 24 | (uint32_t)v[i][2] << 16 |
		    (uint32_t)v[i][3] << 8 | v[i][4];
		if (t < t0 || t > (uint32_t)time(NULL))
			time_ok = 0;
		if (i > 0 && memcmp(v[i - 1], v[i], SERIAL_RANDOM_AT) > 0)
			sorted = 0;
		for (int k = SERIAL_RANDOM_AT; k < SERIAL_LEN; k++)
			seen[k - SERIAL_RANDOM_AT][v[i][k]] = 1;
		if (strlen(hex) != 32 || strspn(hex, "0123456789ABCDEF") != 32)
			hex_ok = 0;
		sf_hex_upper(v[i], SERIAL_LEN, want);
		if (strcmp(hex, want) != 0)
			hex_ok = 0;
		/* What a certificate carrying it prints. */
		if (profile_set_serial(x, v[i], SERIAL_LEN) != 0 ||
		    profile_serial_hex(X509_get0_serialNumber(x), back,
		    sizeof back) != 0 || strcmp(back, hex) != 0) {
			if (text_ok)
				tap_diag("serial %s reads back as %s", hex, back);
			text_ok = 0;
		}
		if (ASN1_STRING_length(X509_get0_serialNumber(x)) != SERIAL_LEN)
			len_ok = 0;
		low += v[i][0] < 0x10;
	}
	t1 = (uint32_t)time(NULL);
	for (int k = 0; k < SERIAL_LEN - SERIAL_RANDOM_AT; k++)
		for (int b = 0; b < 256; b++)
			allbytes &= seen[k][b];
	qsort(v, N, SERIAL_LEN, cmp16);
	for (int i = 1; i < N; i++)
		dup += memcmp(v[i - 1], v[i], SERIAL_LEN) == 0;
	ok(first_ok, "%d serials: first byte always 0x%02x", N, SERIAL_MARK);
	ok(time_ok, "bytes 1-4: the second of issuance, big-endian (%u..%u)",
	    t0, t1);
	ok(sorted, "made one after the other, they never sort backwards in"
	    " their first %d bytes", SERIAL_RANDOM_AT);
	ok(allbytes, "each of the %d random bytes takes all 256 values (no"
	    " bit lost)", SERIAL_LEN - SERIAL_RANDOM_AT);
	is_int(dup, 0, "all %d serials are distinct", N);
	ok(hex_ok, "text: 32 uppercase hex digits of the 16 bytes");
	ok(text_ok, "profile_serial_hex of a certificate carrying it gives the"
	    " same text (%d with a leading 0 digit)", low);
	ok(len_ok, "the certificate's serial has 16 content bytes");

	/* In DER too, the smallest and the largest: INTEGER of exactly 16
	 * bytes, positive. */
	for (int k = 0; k < 2; k++) {
		X509 *y = skeleton(), *r;
		const ASN1_INTEGER *ai;
		BIGNUM *bn;

		profile_set_serial(y, v[k ? N - 1 : 0], SERIAL_LEN);
		r = finish(y);
		ai = r ? X509_get0_serialNumber(r) : NULL;
		bn = ai ? ASN1_INTEGER_to_BN(ai, NULL) : NULL;
		ok(bn ? !BN_is_negative(bn) : 0, "after DER, the %s serial:"
		    " positive", k ? "largest" : "smallest");
		is_int(bn ? BN_num_bytes(bn) : -1, SERIAL_LEN, "after DER, the"
		    " %s serial: 16 bytes", k ? "largest" : "smallest");
		BN_free(bn);
		X509_free(r);
	}
	/* Short and odd values print as openssl does: whole bytes. */
	{
		static const uint8_t s1[] = { 0x05 }, s2[] = { 0x0a, 0xbc },
		    s3[] = { 0x00 };

		profile_set_serial(x, s1, 1);
		profile_serial_hex(X509_get0_serialNumber(x), back, sizeof back);
		is_str(back, "05", "serial 5 is \"05\"");
		profile_set_serial(x, s2, 2);
		profile_serial_hex(X509_get0_serialNumber(x), back, sizeof back);
		is_str(back, "0ABC", "serial 0x0abc is \"0ABC\"");
		profile_set_serial(x, s3, 1);
		profile_serial_hex(X509_get0_serialNumber(x), back, sizeof back);
		is_str(back, "00", "serial 0 is \"00\"");
	}
	X509_free(x);
	free(v);
}

/* ---- extensions ---- */

static void
test_basic(void)
{
	static const struct {
		int ca, path;
		const char *text;
	} cases[] = {
		{ 1, -1, "CA:TRUE" },
		{ 1, 0, "CA:TRUE, pathlen:0" },
		{ 1, 3, "CA:TRUE, pathlen:3" },
		{ 0, -1, "CA:FALSE" },
		{ 0, 2, "CA:FALSE" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		X509_EXTENSION *e = profile_ext_basic(cases[i].ca,
		    cases[i].path);
		X509 *x = cert_with(e);
		BASIC_CONSTRAINTS *bc;
		char *t;
		int crit;

		t = cert_ext_text(x, NID_basic_constraints, &crit);
		is_str(t, cases[i].text, "basicConstraints(%d, %d) prints %s",
		    cases[i].ca, cases[i].path, cases[i].text);
		is_int(crit, 1, "  critical");
		bc = x ? X509_get_ext_d2i(x, NID_basic_constraints, NULL,
		    NULL) : NULL;
		is_int(bc ? !!bc->ca : -1, cases[i].ca, "  cA %s",
		    cases[i].ca ? "TRUE" : "FALSE");
		if (cases[i].ca && cases[i].path >= 0)
			is_int(bc && bc->pathlen ? ASN1_INTEGER_get(
			    bc->pathlen) : -1, cases[i].path,
			    "  pathLenConstraint %d", cases[i].path);
		else
			ok(bc ? bc->pathlen == NULL : 0,
			    "  no pathLenConstraint");
		is_int(x ? !!(X509_get_extension_flags(x) & EXFLAG_CA) : -1,
		    cases[i].ca, "  OpenSSL %s it a CA", cases[i].ca ?
		    "calls" : "does not call");
		BASIC_CONSTRAINTS_free(bc);
		free(t);
		X509_free(x);
		X509_EXTENSION_free(e);
	}
}

static void
test_key_usage(void)
{
	static const struct {
		unsigned bits;
		const char *text;
	} cases[] = {
		{ KU_DIGITAL_SIGNATURE, "Digital Signature" },
		{ KU_NON_REPUDIATION, "Non Repudiation" },
		{ KU_KEY_ENCIPHERMENT, "Key Encipherment" },
		{ KU_DATA_ENCIPHERMENT, "Data Encipherment" },
		{ KU_KEY_AGREEMENT, "Key Agreement" },
		{ KU_KEY_CERT_SIGN, "Certificate Sign" },
		{ KU_CRL_SIGN, "CRL Sign" },
		{ KU_KEY_AGREEMENT | KU_ENCIPHER_ONLY,
		    "Key Agreement, Encipher Only" },
		{ KU_KEY_AGREEMENT | KU_DECIPHER_ONLY,
		    "Key Agreement, Decipher Only" },
		{ KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT,
		    "Digital Signature, Key Encipherment" },
		{ KU_KEY_CERT_SIGN | KU_CRL_SIGN | KU_DIGITAL_SIGNATURE,
		    "Digital Signature, Certificate Sign, CRL Sign" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		X509_EXTENSION *e = profile_ext_key_usage(cases[i].bits);
		X509 *x = cert_with(e);
		char *t;
		int crit;

		t = cert_ext_text(x, NID_key_usage, &crit);
		is_str(t, cases[i].text, "keyUsage 0x%04x prints %s",
		    cases[i].bits, cases[i].text);
		is_int(crit, 1, "  critical");
		is_int(x ? X509_get_key_usage(x) : 0, cases[i].bits,
		    "  X509_get_key_usage gives the same bits");
		free(t);
		X509_free(x);
		X509_EXTENSION_free(e);
	}
}

static void
test_eku(void)
{
	int both[] = { NID_client_auth, NID_server_auth }, one[] = {
	    NID_client_auth };
	X509_EXTENSION *e = profile_ext_eku(both, 2);
	X509 *x = cert_with(e);
	char *t;
	int crit;

	t = cert_ext_text(x, NID_ext_key_usage, &crit);
	is_str(t, "TLS Web Client Authentication, TLS Web Server"
	    " Authentication", "EKU clientAuth, serverAuth");
	is_int(crit, 0, "  not critical");
	is_int(x ? X509_get_extended_key_usage(x) : 0, XKU_SSL_CLIENT |
	    XKU_SSL_SERVER, "  X509_get_extended_key_usage agrees");
	free(t);
	X509_free(x);
	X509_EXTENSION_free(e);

	e = profile_ext_eku(one, 1);
	x = cert_with(e);
	t = cert_ext_text(x, NID_ext_key_usage, &crit);
	is_str(t, "TLS Web Client Authentication", "EKU clientAuth alone");
	is_int(x ? X509_get_extended_key_usage(x) : 0, XKU_SSL_CLIENT,
	    "  only clientAuth");
	is_int(x ? X509_check_purpose(x, X509_PURPOSE_SSL_CLIENT, 0) : -1, 1,
	    "  good for a TLS client");
	is_int(x ? X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0) : -1, 0,
	    "  not for a TLS server");
	free(t);
	X509_free(x);
	X509_EXTENSION_free(e);
}

static void
test_key_ids(void)
{
	uint8_t id[20], bits[65];
	X509_EXTENSION *e1, *e2;
	const ASN1_OCTET_STRING *os;
	X509 *x, *y;
	char *t, want[80];
	int crit;

	for (int i = 0; i < 20; i++)
		id[i] = (uint8_t)(0xa0 + i);
	e1 = profile_ext_ski(id);
	e2 = profile_ext_aki(id);
	x = skeleton();
	profile_add(x, e1);
	profile_add(x, e2);
	y = finish(x);
	os = y ? X509_get0_subject_key_id(y) : NULL;
	is_int(os ? ASN1_STRING_length(os) : -1, 20, "SKI: 20 bytes");
	ok(os ? memcmp(ASN1_STRING_get0_data(os), id, 20) == 0 : 0,
	    "SKI: X509_get0_subject_key_id is the id");
	os = y ? X509_get0_authority_key_id(y) : NULL;
	is_int(os ? ASN1_STRING_length(os) : -1, 20, "AKI: 20 bytes");
	ok(os ? memcmp(ASN1_STRING_get0_data(os), id, 20) == 0 : 0,
	    "AKI: X509_get0_authority_key_id is the id");
	ok(y ? X509_get0_authority_issuer(y) == NULL : 0,
	    "AKI: no authority issuer");
	ok(y ? X509_get0_authority_serial(y) == NULL : 0,
	    "AKI: no authority serial");
	t = cert_ext_text(y, NID_subject_key_identifier, &crit);
	snprintf(want, sizeof want, "A0:A1:A2:A3:A4:A5:A6:A7:A8:A9:AA:AB:AC:"
	    "AD:AE:AF:B0:B1:B2:B3");
	is_str(t, want, "SKI prints as the id");
	is_int(crit, 0, "SKI not critical");
	free(t);
	t = cert_ext_text(y, NID_authority_key_identifier, &crit);
	ok(t ? strstr(t, want) != NULL : 0, "AKI prints the id (%s)",
	    t ? t : "");
	is_int(crit, 0, "AKI not critical");
	free(t);
	X509_free(y);
	X509_EXTENSION_free(e1);
	X509_EXTENSION_free(e2);

	/* profile_key_id is SHA-1 of the key bits (RFC 5280 4.2.1.2 (1)). */
	memset(bits, 0x04, sizeof bits);
	profile_key_id(bits, sizeof bits, id);
	{
		uint8_t sha[20];

		SHA1(bits, sizeof bits, sha);
		ok(memcmp(sha, id, 20) == 0, "profile_key_id is SHA-1 of the"
		    " bits");
	}
}

static void
test_crldp_aia(void)
{
	X509_EXTENSION *e;
	X509 *x;
	char *t;
	int crit;

	e = profile_ext_crldp("http://crl.example.net/us-east-1.widgiot.crl");
	x = cert_with(e);
	t = cert_ext_text(x, NID_crl_distribution_points, &crit);
	ok(t ? strstr(t, "Full Name:") != NULL : 0, "CRL DP: a full name"
	    " (%s)", t ? t : "");
	ok(t ? strstr(t, "URI:http://crl.example.net/us-east-1.widgiot.crl")
	    != NULL : 0, "CRL DP: with the URL");
	is_int(crit, 0, "CRL DP not critical");
	{
		CRL_DIST_POINTS *dps = x ? X509_get_ext_d2i(x,
		    NID_crl_distribution_points, NULL, NULL) : NULL;
		DIST_POINT *dp = dps && sk_DIST_POINT_num(dps) == 1 ?
		    sk_DIST_POINT_value(dps, 0) : NULL;
		GENERAL_NAME *gn = dp && dp->distpoint &&
		    dp->distpoint->type == 0 &&
		    sk_GENERAL_NAME_num(dp->distpoint->name.fullname) == 1 ?
		    sk_GENERAL_NAME_value(dp->distpoint->name.fullname, 0) :
		    NULL;

		is_int(dps ? sk_DIST_POINT_num(dps) : -1, 1,
		    "CRL DP: one point");
		ok(gn != NULL, "CRL DP: one full name");
		is_int(gn ? gn->type : -1, GEN_URI, "CRL DP: a URI");
		is_str(gn && gn->type == GEN_URI ? (const char *)
		    ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier) :
		    NULL, "http://crl.example.net/us-east-1.widgiot.crl",
		    "CRL DP: the URL");
		ok(dp ? dp->reasons == NULL : 0, "CRL DP: no reasons");
		ok(dp ? dp->CRLissuer == NULL : 0, "CRL DP: no CRL issuer");

		sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
	}
	free(t);
	X509_free(x);
	X509_EXTENSION_free(e);

	e = profile_ext_aia("http://ocsp.example.net/x",
	    "http://ca.example.net/x.crt");
	x = cert_with(e);
	t = cert_ext_text(x, NID_info_access, &crit);
	is_str(t, "OCSP - URI:http://ocsp.example.net/x\n"
	    "CA Issuers - URI:http://ca.example.net/x.crt",
	    "AIA: OCSP and caIssuers");
	is_int(crit, 0, "AIA not critical");
	{
		AUTHORITY_INFO_ACCESS *aia = x ? X509_get_ext_d2i(x,
		    NID_info_access, NULL, NULL) : NULL;
		int good = aia && sk_ACCESS_DESCRIPTION_num(aia) == 2 &&
		    OBJ_obj2nid(sk_ACCESS_DESCRIPTION_value(aia, 0)->method) ==
		    NID_ad_OCSP && OBJ_obj2nid(sk_ACCESS_DESCRIPTION_value(aia,
		    1)->method) == NID_ad_ca_issuers;

		ok(good, "AIA: methods id-ad-ocsp then id-ad-caIssuers");
		AUTHORITY_INFO_ACCESS_free(aia);
	}
	free(t);
	X509_free(x);
	X509_EXTENSION_free(e);

	e = profile_ext_aia("http://ocsp.example.net/x", "");
	x = cert_with(e);
	t = cert_ext_text(x, NID_info_access, &crit);
	is_str(t, "OCSP - URI:http://ocsp.example.net/x", "AIA: OCSP alone");
	free(t);
	X509_free(x);
	X509_EXTENSION_free(e);
	e = profile_ext_aia(NULL, "http://ca.example.net/x.crt");
	t = e ? ext_text(e) : NULL;
	is_str(t, "CA Issuers - URI:http://ca.example.net/x.crt",
	    "AIA: caIssuers alone");
	free(t);
	X509_EXTENSION_free(e);
	ok(profile_ext_aia("", NULL) == NULL, "AIA with neither URL: none");
}

/* The length of a subtree's IP address and mask; -1 if it has none. */
static int
ip_len(const GENERAL_SUBTREE *st)
{
	if (st == NULL || st->base->type != GEN_IPADD)
		return -1;
	return ASN1_STRING_length(st->base->d.iPAddress);
}

/* The subtrees of the name constraints in x, decoded: IP subtrees are an
 * address and a mask, with no minimum or maximum. */
static void
check_nc_subtrees(X509 *x)
{
	NAME_CONSTRAINTS *nc = X509_get_ext_d2i(x, NID_name_constraints,
	    NULL, NULL);
	static const uint8_t ip10[8] = { 10, 0, 0, 0, 255, 0, 0, 0 };
	GENERAL_SUBTREE *st;

	is_int(nc ? sk_GENERAL_SUBTREE_num(nc->permittedSubtrees) : -1, 5,
	    "  5 permitted subtrees");
	is_int(nc ? sk_GENERAL_SUBTREE_num(nc->excludedSubtrees) : -1, 2,
	    "  2 excluded subtrees");
	st = nc ? sk_GENERAL_SUBTREE_value(nc->permittedSubtrees, 1) : NULL;
	is_int(st ? st->base->type : -1, GEN_IPADD,
	    "  IP:10.0.0.0/255.0.0.0 is an IP subtree");
	is_int(ip_len(st), 8, "  of address and mask (8 bytes)");
	ok(ip_len(st) == 8 ? memcmp(ASN1_STRING_get0_data(
	    st->base->d.iPAddress), ip10, 8) == 0 : 0,
	    "  10.0.0.0 and 255.0.0.0");
	st = nc ? sk_GENERAL_SUBTREE_value(nc->permittedSubtrees, 4) : NULL;
	is_int(st ? st->base->type : -1, GEN_IPADD, "  an IPv6 subtree");

	is_int(ip_len(st), 32, "  IPv6 address and mask: 32 bytes");
	ok(st ? st->minimum == NULL : 0, "  no minimum");
	ok(st ? st->maximum == NULL : 0, "  no maximum");
	NAME_CONSTRAINTS_free(nc);
}

static void
test_name_constraints(void)
{
	char why[256] = "";
	X509_EXTENSION *e;
	X509 *x;
	char *t;
	int none = -1, crit;

	e = profile_ext_name_constraints("DNS:.widgiot.example.net\n"
	    "IP:10.0.0.0/255.0.0.0\nemail:example.net\nURI:.example.net\n"
	    "IP:fd00::/ff00::", "DNS:.bad.example.net\nIP:0.0.0.0/0.0.0.0",
	    &none, why, sizeof why);
	ok(e != NULL, "name constraints build (%s)", why);
	is_int(none, 0, "  *none = 0");
	x = cert_with(e);
	t = cert_ext_text(x, NID_name_constraints, &crit);
	is_int(crit, 1, "  critical");
	{
		static const char *const subtrees[] = { "Permitted:",
		    "DNS:.widgiot.example.net", "IP:10.0.0.0/255.0.0.0",
		    "email:example.net", "URI:.example.net", "Excluded:",
		    "DNS:.bad.example.net", "IP:0.0.0.0/0.0.0.0" };

		for (size_t i = 0; i < sizeof subtrees / sizeof subtrees[0];
		    i++)
			ok(t ? strstr(t, subtrees[i]) != NULL : 0,
			    "  prints %s", subtrees[i]);
	}
	if (t && !strstr(t, "IP:0.0.0.0/0.0.0.0"))
		tap_diag("%s", t);
	ok(t ? strstr(t, "Permitted:") < strstr(t, "Excluded:") : 0,
	    "  Permitted before Excluded");
	ok(t ? strstr(t, "DNS:.bad.example.net") > strstr(t, "Excluded:") : 0,
	    "  the excluded one under Excluded");
	free(t);
	if (x)
		check_nc_subtrees(x);
	X509_free(x);
	X509_EXTENSION_free(e);

	e = profile_ext_name_constraints("", "IP:192.168.0.0/255.255.0.0",
	    &none, why, sizeof why);
	x = cert_with(e);
	t = cert_ext_text(x, NID_name_constraints, &crit);
	ok(t ? strstr(t, "Permitted:") == NULL : 0, "excluded only: no"
	    " Permitted");
	ok(t ? strstr(t, "Excluded:") != NULL : 0, "excluded only: Excluded");
	ok(t ? strstr(t, "IP:192.168.0.0/255.255.0.0") != NULL : 0,
	    "excluded only: the subtree");
	free(t);
	X509_free(x);
	X509_EXTENSION_free(e);
}

/* Bad entries are refused by name; no entries at all are not an error. */
static void
test_name_constraints_refused(void)
{
	static const char *const bad[] = { "FOO:bar", "DNS.example.net",
	    "IP:10.0.0.0", "IP:10.0.0.0/255.0.0", "IP:nonsense/1.2.3.4", ":x" };
	char why[256] = "";
	X509_EXTENSION *e;
	int none;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		why[0] = '\0';
		none = -1;
		e = profile_ext_name_constraints("DNS:.ok.example.net", bad[i],
		    &none, why, sizeof why);
		ok(e == NULL, "bad entry \"%s\" refused", bad[i]);
		is_int(none, 0, "  and *none is 0");
		ok(strstr(why, bad[i]) != NULL, "  why names it (%s)", why);
		X509_EXTENSION_free(e);
	}
	none = -1;
	e = profile_ext_name_constraints("", "", &none, why, sizeof why);
	ok(e == NULL, "both empty: no extension");
	is_int(none, 1, "  *none = 1");
	none = -1;
	e = profile_ext_name_constraints(NULL, NULL, &none, why, sizeof why);
	ok(e == NULL, "both NULL: no extension");
	is_int(none, 1, "  *none = 1");
	none = -1;
	e = profile_ext_name_constraints("\n\n", NULL, &none, why, sizeof why);
	ok(e == NULL, "empty lines only: no extension");
	is_int(none, 1, "  *none = 1");
}

static void
test_san(void)
{
	char *dns[] = { "a.example.net", "b.example.net" };
	char *ips[] = { "10.1.2.3", "2001:db8::1" };
	char *badip[] = { "10.1.2" }, *badip2[] = { "300.1.2.3" },
	    *badip3[] = { "a.example.net" };
	char why[256] = "";
	X509_EXTENSION *e;
	X509 *x;
	char *t;
	int crit;

	e = profile_ext_san(dns, 2, ips, 2, why, sizeof why);
	ok(e != NULL, "SAN with DNS names and IPs (%s)", why);
	x = cert_with(e);
	t = cert_ext_text(x, NID_subject_alt_name, &crit);
	is_str(t, "DNS:a.example.net, DNS:b.example.net, IP Address:10.1.2.3,"
	    " IP Address:2001:DB8:0:0:0:0:0:1", "  prints all four in order");
	is_int(crit, 0, "  not critical (the subject is not empty)");
	is_int(x ? X509_check_host(x, "b.example.net", 0, 0, NULL) : -1, 1,
	    "  X509_check_host matches a listed name");
	is_int(x ? X509_check_host(x, "c.example.net", 0, 0, NULL) : -1, 0,
	    "  and no other");
	is_int(x ? X509_check_ip_asc(x, "10.1.2.3", 0) : -1, 1,
	    "  X509_check_ip_asc matches a listed IPv4 address");
	is_int(x ? X509_check_ip_asc(x, "2001:db8::1", 0) : -1, 1,
	    "  and a listed IPv6 address");
	is_int(x ? X509_check_ip_asc(x, "10.1.2.4", 0) : -1, 0,
	    "  and no other");
	free(t);
	X509_free(x);
	X509_EXTENSION_free(e);

	e = profile_ext_san(dns, 1, NULL, 0, why, sizeof why);
	t = e ? ext_text(e) : NULL;
	is_str(t, "DNS:a.example.net", "SAN with one DNS name");
	free(t);
	X509_EXTENSION_free(e);
	e = profile_ext_san(NULL, 0, ips, 1, why, sizeof why);
	t = e ? ext_text(e) : NULL;
	is_str(t, "IP Address:10.1.2.3", "SAN with one IP");
	free(t);
	X509_EXTENSION_free(e);

	why[0] = '\0';
	e = profile_ext_san(dns, 2, badip, 1, why, sizeof why);
	ok(e == NULL, "bad IP 10.1.2 refused");
	ok(strstr(why, "IP address") != NULL, "  why says IP address (%s)",
	    why);
	ok(strstr(why, "10.1.2") != NULL, "  and names it");
	why[0] = '\0';
	e = profile_ext_san(NULL, 0, badip2, 1, why, sizeof why);
	ok(e == NULL, "bad IP 300.1.2.3 refused");
	ok(strstr(why, "300.1.2.3") != NULL, "  why names it (%s)", why);
	why[0] = '\0';
	e = profile_ext_san(NULL, 0, badip3, 1, why, sizeof why);
	ok(e == NULL, "a DNS name given as an IP refused");
	ok(strstr(why, "a.example.net") != NULL, "  why names it (%s)", why);
}

/* ---- public keys ---- */

static EVP_PKEY *
gen(const char *alg, const char *curve, size_t bits)
{
	if (curve != NULL)
		return EVP_PKEY_Q_keygen(NULL, NULL, alg, curve);
	if (bits != 0)
		return EVP_PKEY_Q_keygen(NULL, NULL, alg, bits);
	return EVP_PKEY_Q_keygen(NULL, NULL, alg);
}

static void
check_pubkey(const char *name, EVP_PKEY *key)
{
	char why[256] = "";
	pubkey_info pk;
	X509 *x, *r;
	EVP_PKEY *got;
	unsigned char *der = NULL;
	const ASN1_BIT_STRING *bits;
	int len;

	memset(&pk, 0, sizeof pk);
	if (key == NULL || pubkey_from_evp(key, &pk, why, sizeof why) != 0) {
		ok(0, "%s: key and pubkey_info (%s)", name, why);
		return;
	}
	x = skeleton();
	is_int(profile_set_pubkey(x, &pk), 0, "%s: profile_set_pubkey", name);
	got = X509_get0_pubkey(x);
	is_int(got ? EVP_PKEY_eq(got, key) : -1, 1, "%s: X509_get0_pubkey is"
	    " the key it came from", name);
	ERR_clear_error();
	{
		/* The issuance path: same bytes, decoded key left unset. */
		X509 *f = skeleton();
		unsigned char *fd = NULL;
		int fl;

		is_int(profile_set_pubkey_fast(f, &pk), 0,
		    "%s: profile_set_pubkey_fast", name);
		got = X509_get0_pubkey(f);
		ok(got == NULL || EVP_PKEY_eq(got, key) == 1, "%s: fast: the"
		    " decoded key is unset or the key, never another", name);
		ERR_clear_error();
		fl = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(f), &fd);
		is_int(fl, pk.spki_len, "%s: fast: the canonical DER's length",
		    name);
		ok((fl > 0 && (size_t)fl == pk.spki_len) ? memcmp(fd, pk.spki,
		    pk.spki_len) == 0 : 0, "%s: fast: the same canonical DER",
		    name);
		OPENSSL_free(fd);
		X509_free(f);
	}
	len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	is_int(len, pk.spki_len, "%s: the certificate's SPKI has the canonical"
	    " length", name);
	ok((len > 0 && (size_t)len == pk.spki_len) ? memcmp(der, pk.spki,
	    pk.spki_len) == 0 : 0, "%s: the certificate's SPKI is the"
	    " canonical DER", name);
	OPENSSL_free(der);
	bits = X509_get0_pubkey_bitstr(x);
	is_int(bits ? ASN1_STRING_length(bits) : -1, pk.key_bits_len,
	    "%s: subjectPublicKey length unchanged", name);
	ok((bits && (size_t)ASN1_STRING_length(bits) == pk.key_bits_len) ?
	    memcmp(ASN1_STRING_get0_data(bits), pk.key_bits,
	    pk.key_bits_len) == 0 : 0, "%s: subjectPublicKey bits unchanged",
	    name);
	r = finish(x);
	got = r ? X509_get0_pubkey(r) : NULL;
	is_int(got ? EVP_PKEY_eq(got, key) : -1, 1, "%s: and after DER too",
	    name);
	X509_free(r);
	pubkey_info_free(&pk);
}

static void
test_pubkeys(void)
{
	EVP_PKEY *k;

	k = gen("EC", "P-256", 0);
	check_pubkey("P-256", k);
	EVP_PKEY_free(k);
	k = gen("EC", "P-384", 0);
	check_pubkey("P-384", k);
	EVP_PKEY_free(k);
	k = gen("RSA", NULL, 2048);
	check_pubkey("RSA-2048", k);
	EVP_PKEY_free(k);
	k = gen("ED25519", NULL, 0);
	check_pubkey("Ed25519", k);
	EVP_PKEY_free(k);

	/* A compressed point goes into the certificate uncompressed. */
	k = gen("EC", "P-256", 0);
	if (k && EVP_PKEY_set_utf8_string_param(k,
	    OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "compressed") == 1) {
		unsigned char *der = NULL;
		int len = i2d_PUBKEY(k, &der);

		ok(len == 59, "P-256 compressed: a 59-byte SPKI from OpenSSL");
		OPENSSL_free(der);
		check_pubkey("P-256 compressed", k);
	} else
		tap_skip("cannot set the point format");
	EVP_PKEY_free(k);

	/* A certificate that had another key gets the new one. */
	{
		EVP_PKEY *old = gen("EC", "P-256", 0), *key = gen("EC", "P-384",
		    0);
		char why[256];
		pubkey_info pk;
		X509 *x = X509_new();
		EVP_PKEY *got;

		memset(&pk, 0, sizeof pk);
		X509_set_pubkey(x, old);
		pubkey_from_evp(key, &pk, why, sizeof why);
		is_int(profile_set_pubkey(x, &pk), 0, "replace a key");
		got = X509_get0_pubkey(x);
		is_int(got ? EVP_PKEY_eq(got, key) : -1, 1,
		    "X509_get0_pubkey answers the new key");
		ok(got ? EVP_PKEY_eq(got, old) != 1 : 0, "  not the old one");
		pubkey_info_free(&pk);
		X509_free(x);
		EVP_PKEY_free(old);
		EVP_PKEY_free(key);
	}
}

static void
test_pem(void)
{
	X509 *x = finish(skeleton()), *r = NULL;
	char *pem;
	BIO *b;
	unsigned char *d1 = NULL, *d2 = NULL;
	int l1, l2;

	pem = profile_cert_pem(x);
	ok(pem ? strncmp(pem, "-----BEGIN CERTIFICATE-----\n", 28) == 0 : 0,
	    "profile_cert_pem: starts with a BEGIN line");
	ok(pem ? strstr(pem, "-----END CERTIFICATE-----\n") != NULL : 0,
	    "  has an END line");
	ok(pem ? pem[strlen(pem) - 1] == '\n' : 0, "  and ends with a newline");
	if (pem && (b = BIO_new_mem_buf(pem, -1)) != NULL) {
		r = PEM_read_bio_X509(b, NULL, NULL, NULL);
		BIO_free(b);
	}
	l1 = i2d_X509(x, &d1);
	l2 = r ? i2d_X509(r, &d2) : -1;
	is_int(l2, l1, "and it reads back to DER of the same length");
	ok((l1 > 0 && l1 == l2) ? memcmp(d1, d2, (size_t)l1) == 0 : 0,
	    "  and the same bytes");

	OPENSSL_free(d1);
	OPENSSL_free(d2);
	X509_free(r);
	X509_free(x);
	free(pem);
}

int
main(void)
{
	if ((skel_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL) {
		ok(0, "a key for the skeleton certificates");
		return tap_done();
	}
	test_subject_forms();
	test_subject_escapes();
	test_subject_utf8();
	test_subject_errors();
	test_subject_fmt();
	test_serials();
	test_validity();
	test_add0();
	test_basic();
	test_key_usage();
	test_eku();
	test_key_ids();
	test_crldp_aia();
	test_name_constraints();
	test_name_constraints_refused();
	test_san();
	test_pubkeys();
	test_pem();
	EVP_PKEY_free(skel_key);
	return tap_done();
}
