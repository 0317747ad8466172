/*
 * Unit tests of common/birth.c: a birth certificate chaining to a
 * registered manufacturer CA is accepted with its device id, key
 * fingerprint, serial and manufacturer; an unregistered CA, an expired or
 * not yet valid certificate, a revoked one, an expired CRL, a CA leaf and
 * a bad CN are refused with SF_EPERM; a registered intermediate needs no
 * root (partial chain); a chain the device sends is used; CA
 * registration refuses a non-CA and a key; CRLs are checked against
 * their CA.
 *
 * Keys, certificates and CRLs are made here at run time with OpenSSL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "birth.h"
#include "err.h"
#include "pubkey.h"
#include "../../tap.h"

static EVP_PKEY *
key(void)
{
	return EVP_EC_gen("P-256");
}

static void
ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v;
	X509_EXTENSION *e;

	X509V3_set_ctx(&v, issuer ? issuer : x, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &v, nid, value);
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
}

/* A certificate for k named cn, signed by issuer (NULL: self) with ik. */
static X509 *
cert(const char *cn, EVP_PKEY *k, X509 *issuer, EVP_PKEY *ik, int is_ca,
    long from, long to, long serial)
{
	X509 *x = X509_new();
	X509_NAME *nm = X509_NAME_new();

	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_NAME_add_entry_by_txt(nm, "O", MBSTRING_ASC,
	    (const unsigned char *)"Acme Devices", -1, -1, 0);
	X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(x, nm);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : nm);
	X509_gmtime_adj(X509_getm_notBefore(x), from);
	X509_gmtime_adj(X509_getm_notAfter(x), to);
	X509_set_pubkey(x, k);
	ext(x, issuer, NID_basic_constraints, is_ca ? "critical,CA:TRUE" :
	    "critical,CA:FALSE");
	ext(x, issuer, NID_key_usage, is_ca ? "critical,keyCertSign,cRLSign" :
	    "critical,digitalSignature");
	ext(x, issuer, NID_subject_key_identifier, "hash");
	X509_sign(x, ik, EVP_sha256());
	X509_NAME_free(nm);
	return x;
}

static X509_CRL *
crl(X509 *ca, EVP_PKEY *k, long serial_revoked, long next, long number)
{
	X509_CRL *c = X509_CRL_new();
	ASN1_TIME *t = X509_gmtime_adj(NULL, -60);
	ASN1_INTEGER *n = ASN1_INTEGER_new();

	X509_CRL_set_version(c, 1);
	X509_CRL_set_issuer_name(c, X509_get_subject_name(ca));
	X509_CRL_set1_lastUpdate(c, t);
	ASN1_TIME_free(t);
	t = X509_gmtime_adj(NULL, next);
	X509_CRL_set1_nextUpdate(c, t);
	ASN1_TIME_free(t);
	if (serial_revoked) {
		X509_REVOKED *r = X509_REVOKED_new();
		ASN1_INTEGER *s = ASN1_INTEGER_new();

		ASN1_INTEGER_set(s, serial_revoked);
		X509_REVOKED_set_serialNumber(r, s);
		t = X509_gmtime_adj(NULL, -30);
		X509_REVOKED_set_revocationDate(r, t);
		ASN1_TIME_free(t);
		ASN1_INTEGER_free(s);
		X509_CRL_add0_revoked(c, r);
	}
	ASN1_INTEGER_set(n, number);
	X509_CRL_add1_ext_i2d(c, NID_crl_number, n, 0, 0);
	ASN1_INTEGER_free(n);
	X509_CRL_sort(c);
	X509_CRL_sign(c, k, EVP_sha256());
	return c;
}

static char *
pem_of(X509 *a, X509 *b)
{
	BIO *m = BIO_new(BIO_s_mem());
	char *p, *s;
	long n;

	PEM_write_bio_X509(m, a);
	if (b)
		PEM_write_bio_X509(m, b);
	n = BIO_get_mem_data(m, &p);
	s = malloc((size_t)n + 1);
	memcpy(s, p, (size_t)n);
	s[n] = '\0';
	BIO_free(m);
	return s;
}

static char *
crl_pem(X509_CRL *c)
{
	BIO *m = BIO_new(BIO_s_mem());
	char *p, *s;
	long n;

	PEM_write_bio_X509_CRL(m, c);
	n = BIO_get_mem_data(m, &p);
	s = malloc((size_t)n + 1);
	memcpy(s, p, (size_t)n);
	s[n] = '\0';
	BIO_free(m);
	return s;
}

static int
verify(const char *leaf, const birth_anchor *a, size_t n, birth_info *bi,
    char *why, size_t whylen)
{
	why[0] = '\0';
	return birth_verify(leaf, strlen(leaf), a, n, time(NULL), bi, why,
	    whylen);
}

int
main(void)
{
	EVP_PKEY *rk = key(), *ik = key(), *xk = key(), *dk = key(),
	    *dk2 = key();
	X509 *root = cert("Acme Root CA", rk, NULL, rk, 1, -3600, 86400 * 365,
	    1);
	X509 *inter = cert("Acme Factory CA", ik, root, rk, 1, -3600,
	    86400 * 300, 2);
	X509 *other = cert("Other Root CA", xk, NULL, xk, 1, -3600, 86400, 3);
	X509 *leaf = cert("dev-0001", dk, root, rk, 0, -60, 86400, 100);
	X509 *leaf2 = cert("dev-0002", dk2, inter, ik, 0, -60, 86400, 101);
	X509 *expired = cert("dev-0003", dk, root, rk, 0, -7200, -3600, 102);
	X509 *future = cert("dev-0004", dk, root, rk, 0, 3600, 7200, 103);
	X509 *foreign = cert("dev-0005", dk, other, xk, 0, -60, 86400, 104);
	X509 *calf = cert("dev-0006", dk, root, rk, 1, -60, 86400, 105);
	X509 *badcn = cert("-bad id", dk, root, rk, 0, -60, 86400, 106);
	char *root_pem = pem_of(root, NULL), *inter_pem = pem_of(inter, NULL);
	char *other_pem = pem_of(other, NULL);
	char *leaf_pem = pem_of(leaf, NULL), *leaf2_chain = pem_of(leaf2,
	    inter), *leaf2_pem = pem_of(leaf2, NULL);
	char *s, why[512];
	X509_CRL *c1 = crl(root, rk, 100, 86400, 7);
	X509_CRL *c2 = crl(root, rk, 0, -10, 8);
	X509_CRL *c3 = crl(other, xk, 0, 86400, 1);
	char *c1_pem = crl_pem(c1), *c2_pem = crl_pem(c2), *c3_pem =
	    crl_pem(c3);
	birth_anchor a[2];
	birth_info bi;
	pubkey_info pk;
	birth_ca bc;
	int64_t num, next;

	memset(a, 0, sizeof a);
	a[0].name = "other";
	a[0].cert = (const uint8_t *)other_pem;
	a[0].cert_len = strlen(other_pem);
	a[1].name = "acme";
	a[1].cert = (const uint8_t *)root_pem;
	a[1].cert_len = strlen(root_pem);

	is_int(verify(leaf_pem, a, 2, &bi, why, sizeof why), 0,
	    "a birth certificate from a registered CA verifies (%s)", why);
	is_str(bi.device_id, "dev-0001", "its device id is the CN");
	is_str(bi.manufacturer, "acme", "the manufacturer that matched");
	is_int(bi.anchor, 1, "its index");
	is_str(bi.serial, "64", "the serial in upper-case hex");
	memset(&pk, 0, sizeof pk);
	pubkey_from_evp(dk, &pk, NULL, 0);
	ok(memcmp(bi.key_sha256, pk.sha256, 32) == 0,
	    "the key fingerprint is the canonical one");
	pubkey_info_free(&pk);

	is_int(verify(leaf_pem, a, 1, &bi, why, sizeof why), SF_EPERM,
	    "the same certificate with only another CA registered: refused");
	ok(strstr(why, "not issued by a registered manufacturer CA") != NULL,
	    "why says so: %s", why);
	is_int(verify(leaf_pem, a, 0, &bi, why, sizeof why), SF_EPERM,
	    "no CA registered: refused");

	s = pem_of(foreign, NULL);
	is_int(verify(s, &a[1], 1, &bi, why, sizeof why), SF_EPERM,
	    "a certificate from an unregistered CA is refused");
	free(s);
	s = pem_of(expired, NULL);
	is_int(verify(s, a, 2, &bi, why, sizeof why), SF_EPERM,
	    "an expired birth certificate is refused");
	ok(strstr(why, "expired") && strstr(why, "acme"), "why: %s", why);
	free(s);
	s = pem_of(future, NULL);
	is_int(verify(s, a, 2, &bi, why, sizeof why), SF_EPERM,
	    "a birth certificate not yet valid is refused");
	ok(strstr(why, "not valid yet") != NULL, "why: %s", why);
	free(s);
	s = pem_of(calf, NULL);
	is_int(verify(s, a, 2, &bi, why, sizeof why), SF_EPERM,
	    "a CA certificate is no birth certificate");
	free(s);
	s = pem_of(badcn, NULL);
	is_int(verify(s, a, 2, &bi, why, sizeof why), SF_EPERM,
	    "a CN that is no device id is refused");
	ok(strstr(why, "not a device id") != NULL, "why: %s", why);
	free(s);
	is_int(verify("garbage", a, 2, &bi, why, sizeof why), SF_EINVAL,
	    "bytes that are no certificate: SF_EINVAL");

	/* Intermediates: sent by the device, or registered themselves. */
	is_int(verify(leaf2_chain, a, 2, &bi, why, sizeof why), 0,
	    "a chain the device sends up to the registered root (%s)", why);
	is_int(verify(leaf2_pem, a, 2, &bi, why, sizeof why), SF_EPERM,
	    "without the intermediate: refused");
	a[0].name = "acme-factory";
	a[0].cert = (const uint8_t *)inter_pem;
	a[0].cert_len = strlen(inter_pem);
	is_int(verify(leaf2_pem, a, 1, &bi, why, sizeof why), 0,
	    "a registered intermediate needs no root (partial chain; %s)",
	    why);
	is_str(bi.manufacturer, "acme-factory", "it is the one matched");

	/* CRLs. */
	a[1].crl = (const uint8_t *)c1_pem;
	a[1].crl_len = strlen(c1_pem);
	is_int(verify(leaf_pem, &a[1], 1, &bi, why, sizeof why), SF_EPERM,
	    "a birth certificate on the manufacturer's CRL is refused");
	ok(strstr(why, "revoked") != NULL, "why: %s", why);
	a[1].crl = (const uint8_t *)c2_pem;
	a[1].crl_len = strlen(c2_pem);
	is_int(verify(leaf_pem, &a[1], 1, &bi, why, sizeof why), SF_EPERM,
	    "an expired CRL refuses");
	ok(strstr(why, "CRL has expired") != NULL, "why: %s", why);
	a[1].crl = NULL;
	a[1].crl_len = 0;

	/* Registration of a CA. */
	is_int(birth_ca_parse((const uint8_t *)root_pem, strlen(root_pem),
	    time(NULL), &bc, why, sizeof why), 0, "a CA certificate parses");
	is_str(bc.cn, "Acme Root CA", "its CN");
	ok(bc.der_len > 0 && bc.pem && strstr(bc.subject, "CN=Acme Root CA"),
	    "its DER, PEM and subject");
	birth_ca_fini(&bc);
	is_int(birth_ca_parse((const uint8_t *)leaf_pem, strlen(leaf_pem),
	    time(NULL), &bc, why, sizeof why), SF_EINVAL,
	    "a device certificate is no CA");
	ok(strstr(why, "CA:TRUE") != NULL, "why: %s", why);
	{
		BIO *m = BIO_new(BIO_s_mem());
		char *p;
		long n;

		PEM_write_bio_PrivateKey(m, rk, NULL, NULL, 0, NULL, NULL);
		PEM_write_bio_X509(m, root);
		n = BIO_get_mem_data(m, &p);
		is_int(birth_ca_parse((const uint8_t *)p, (size_t)n,
		    time(NULL), &bc, why, sizeof why), SF_EINVAL,
		    "a file with a private key is refused");
		ok(strstr(why, "private key") != NULL, "why: %s", why);
		BIO_free(m);
	}
	is_int(birth_crl_parse((const uint8_t *)c1_pem, strlen(c1_pem),
	    (const uint8_t *)root_pem, strlen(root_pem), &num, &next, NULL,
	    NULL, NULL, why, sizeof why), 0, "a CRL of the CA parses");
	is_int(num, 7, "its number");
	is_int(birth_crl_parse((const uint8_t *)c3_pem, strlen(c3_pem),
	    (const uint8_t *)root_pem, strlen(root_pem), &num, &next, NULL,
	    NULL, NULL, why, sizeof why), SF_EINVAL,
	    "another CA's CRL is refused");
	{
		char nm[33];

		birth_name_from_cn("Acme Root CA", nm);
		is_str(nm, "acme-root-ca", "a name from a CN");
		birth_name_from_cn("  ** Ünïcode__Corp. 2026 **", nm);
		is_str(nm, "n-code-corp-2026", "punctuation collapses");
	}

	free(root_pem);
	free(inter_pem);
	free(other_pem);
	free(leaf_pem);
	free(leaf2_chain);
	free(leaf2_pem);
	free(c1_pem);
	free(c2_pem);
	free(c3_pem);
	X509_CRL_free(c1);
	X509_CRL_free(c2);
	X509_CRL_free(c3);
	X509_free(root);
	X509_free(inter);
	X509_free(other);
	X509_free(leaf);
	X509_free(leaf2);
	X509_free(expired);
	X509_free(future);
	X509_free(foreign);
	X509_free(calf);
	X509_free(badcn);
	EVP_PKEY_free(rk);
	EVP_PKEY_free(ik);
	EVP_PKEY_free(xk);
	EVP_PKEY_free(dk);
	EVP_PKEY_free(dk2);
	return tap_done();
}
