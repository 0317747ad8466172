/*
 * leaf.c - reading a device certificate (see leaf.h).
 */
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "err.h"
#include "leaf.h"
#include "util.h"

static int64_t
unix_time(const ASN1_TIME *t)
{
	struct tm tm;

	return ASN1_TIME_to_tm(t, &tm) ? (int64_t)timegm(&tm) : 0;
}

void
leaf_fini(leaf_info *l)
{
	if (l == NULL)
		return;
	pubkey_info_free(&l->key);
	memset(l, 0, sizeof *l);
}

int
leaf_read(const char *pem, leaf_info *l, char *why, size_t whylen)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	const ASN1_INTEGER *ai;
	X509_NAME *subj;
	int rc = SF_EINVAL, len;

	memset(l, 0, sizeof *l);
	if (x == NULL) {
		sf_why(why, whylen, "certificate_pem is not a PEM"
		    " certificate");
		goto out;
	}
	/* Positive, as the signer makes serials, and printed as it prints
	 * them: the integer's bytes in upper-case hex. */
	ai = X509_get0_serialNumber(x);
	len = ASN1_STRING_length(ai);
	if (ASN1_STRING_type(ai) != V_ASN1_INTEGER || len < 1 || len > 20) {
		sf_why(why, whylen, "the certificate's serial is not one the"
		    " signer makes");
		goto out;
	}
	sf_hex_upper(ASN1_STRING_get0_data(ai), (size_t)len, l->serial);
	subj = X509_get_subject_name(x);
	if (X509_NAME_get_text_by_NID(subj, NID_commonName, l->cn,
	    sizeof l->cn) <= 0) {
		sf_why(why, whylen, "the certificate has no CN");
		goto out;
	}
	if (pubkey_from_evp(X509_get0_pubkey(x), &l->key, why, whylen) != 0)
		goto out;
	l->not_before = unix_time(X509_get0_notBefore(x));
	l->not_after = unix_time(X509_get0_notAfter(x));
	rc = 0;
out:
	if (rc != 0)
		leaf_fini(l);
	ERR_clear_error();
	X509_free(x);
	BIO_free(b);
	return rc;
}
