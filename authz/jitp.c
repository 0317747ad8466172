/*
 * jitp.c - just-in-time provisioning in authz (see jitp.h).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "err.h"
#include "jitp.h"
#include "leaf.h"
#include "log.h"
#include "util.h"

uint64_t
jitp_client_ca_generation(void *arg)
{
	enroll_ctx *e = arg;

	return __atomic_load_n(&e->mfr_generation, __ATOMIC_ACQUIRE);
}

void
jitp_changed(enroll_ctx *e)
{
	__atomic_add_fetch(&e->mfr_generation, 1, __ATOMIC_ACQ_REL);
}

char *
jitp_client_ca_pem(void *arg)
{
	enroll_ctx *e = arg;
	registry_mfr *v = NULL;
	size_t n = 0, len = 0;
	char *pem = NULL;

	if (registry_mfr_list(e->reg, NULL, &v, &n) != 0) {
		log_warnx("device listener: cannot read the manufacturer CAs");
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		len += strlen(v[i].certificate_pem) + 1;
	if (n && (pem = malloc(len + 1)) != NULL) {
		pem[0] = '\0';
		for (size_t i = 0; i < n; i++) {
			strcat(pem, v[i].certificate_pem);
			strcat(pem, "\n");
		}
	}
	registry_mfrs_free(v, n);
	return pem;
}

int
jitp_verify(enroll_ctx *e, const char *pem, birth_info *bi,
    char **product_line, char *why, size_t whylen)
{
	registry_mfr *v = NULL;
	birth_anchor *a = NULL;
	size_t n = 0;
	int rc;

	*product_line = NULL;
	if ((rc = registry_mfr_list(e->reg, NULL, &v, &n)) != 0) {
		sf_why(why, whylen, "manufacturer lookup failed");
		return rc;
	}
	if (n && (a = calloc(n, sizeof *a)) == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		a[i].name = v[i].name;
		a[i].cert = (const uint8_t *)v[i].certificate_pem;
		a[i].cert_len = strlen(v[i].certificate_pem);
		if (*v[i].crl_pem) {
			a[i].crl = (const uint8_t *)v[i].crl_pem;
			a[i].crl_len = strlen(v[i].crl_pem);
		}
	}
	if ((rc = birth_verify(pem, strlen(pem), a, n, sf_now(), bi, why,
	    whylen)) != 0)
		goto out;
	if ((*product_line = strdup(v[bi->anchor].product_line)) == NULL)
		rc = SF_ENOMEM;
out:
	free(a);
	registry_mfrs_free(v, n);
	return rc;
}

static X509 *
first_cert(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	return x;
}

int
jitp_same_cert(const char *pa, const char *pb)
{
	X509 *a = pa ? first_cert(pa) : NULL, *b = pb ? first_cert(pb) : NULL;
	int same = a && b && X509_cmp(a, b) == 0;

	X509_free(a);
	X509_free(b);
	ERR_clear_error();
	return same;
}

int
jitp_cert_ours(registry *reg, const char *pem)
{
	registry_cert c;
	registry_enrollment en;
	leaf_info l;
	int ours = 0;

	if (pem == NULL || leaf_read(pem, &l, NULL, 0) != 0)
		return 0;
	if (registry_cert_get(reg, l.serial, &c) == 0) {
		if (registry_enrollment_get(reg, c.enrollment_id, &en) == 0) {
			ours = jitp_same_cert(pem, en.certificate_pem);
			registry_enrollment_fini(&en);
		}
		registry_cert_fini(&c);
	}
	leaf_fini(&l);
	return ours;
}
