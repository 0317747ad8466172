/*
 * ca_fixture.h - a signer's state for a unit test of ca*.c or issue.c: a
 * SoftHSM2 token (hsm_fixture.h), a configuration file and a journal in
 * the token's temporary directory, and the CA store over them, as
 * signer/main.c opens them. ca_fixture_open() fills the fixture (or
 * skips the test); ca_fixture_close() closes everything and removes the
 * directory.
 *
 * The configuration: root EC P-256 with pathLen 2; product line widgiot
 * (pathLen 1, name constraints DNS:.widgiot.example.net and excluded
 * IP:0.0.0.0/0.0.0.0, device keys EC P-256 only, 5 certificates per device
 * per hour); product line gadget (pathLen 0). Extra text is appended.
 *
 * Environment: SF_SOFTHSM_INIT (path of tokens/softhsm-init),
 * SF_SOFTHSM_MODULE (optional, default /usr/lib/softhsm/libsofthsm2.so).
 */
#ifndef SF_CA_FIXTURE_H
#define SF_CA_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "ca.h"
#include "config.h"
#include "err.h"
#include "journal.h"
#include "profile.h"
#include "pubkey.h"
#include "secretfree/v1/common.pb-c.h"
#include "token.h"
#include "util.h"
#include "../../tap.h"
#include "hsm_fixture.h"

#define ROLE_ROOT SECRETFREE__V1__CA_ROLE__CA_ROLE_ROOT
#define ROLE_INTERMEDIATE SECRETFREE__V1__CA_ROLE__CA_ROLE_INTERMEDIATE
#define ROLE_ISSUING SECRETFREE__V1__CA_ROLE__CA_ROLE_ISSUING
#define STATE_ACTIVE SECRETFREE__V1__CA_STATE__CA_STATE_ACTIVE
#define STATE_PENDING SECRETFREE__V1__CA_STATE__CA_STATE_PENDING

typedef struct {
	signer_conf *conf;
	token *tok;
	journal *jn;
	ca_store *cas;
} ca_fixture;

static void __attribute__((unused))
ca_fixture_close(ca_fixture *fx)
{
	ca_store_close(fx->cas);
	journal_close(fx->jn);
	token_close(fx->tok);
	signer_conf_free(fx->conf);
	memset(fx, 0, sizeof *fx);
	if (hsm_cleanup() != 0)
		tap_diag("could not remove %s", hsm_dir);
}

/* 0 once everything is open. Otherwise -1, with a diagnostic and the
 * test skipped, and what was opened closed again. */
static int __attribute__((unused))
ca_fixture_open(ca_fixture *fx, const char *prefix, const char *extra)
{
	const char *module = getenv("SF_SOFTHSM_MODULE") ?
	    getenv("SF_SOFTHSM_MODULE") : "/usr/lib/softhsm/libsofthsm2.so";
	char why[512] = "", conf[300], *text = NULL;
	token_opts o = { 0 };
	int rc = -1;

	memset(fx, 0, sizeof *fx);
	if (access(module, R_OK) != 0 || hsm_make(prefix) != 0) {
		tap_diag("no SoftHSM2 token could be made");
		goto out;
	}
	snprintf(conf, sizeof conf, "%s/signer.conf", hsm_dir);
	text = sf_aprintf("[signer]\n"
	    "journal = %s/journal.db\n"
	    "issuance_socket = unix:%s/i/s.sock\n"
	    "admin_socket = unix:%s/a/s.sock\n"
	    "[token]\n"
	    "module = %s\n"
	    "uri = pkcs11:token=secretfree\n"
	    "pin_file = %s\n"
	    "[limits]\n"
	    "device_certs_per_window = 5\n"
	    "[defaults]\n"
	    "organization = Automatra\n"
	    "domain = example.net\n"
	    "[root]\n"
	    "key_type = ec-p256\n"
	    "path_len = 2\n"
	    "[product.widgiot]\n"
	    "display_name = WidgIoT\n"
	    "path_len = 1\n"
	    "permitted = DNS:.widgiot.example.net\n"
	    "excluded = IP:0.0.0.0/0.0.0.0\n"
	    "device_key_types = ec-p256\n"
	    "[product.gadget]\n"
	    "path_len = 0\n%s", hsm_dir, hsm_dir, hsm_dir, module,
	    hsm_pin_path, extra ? extra : "");
	if (text == NULL ||
	    sf_write_file(conf, text, strlen(text), 0600) != 0) {
		tap_diag("cannot write %s", conf);
		goto out;
	}
	if (signer_conf_load(conf, &fx->conf, why, sizeof why) != 0) {
		tap_diag("configuration: %s", why);
		goto out;
	}
	o.module = fx->conf->token_module;
	o.uri = fx->conf->token_uri;
	o.pin_file = fx->conf->token_pin_file;
	o.sessions = 2;
	if (token_open(&o, &fx->tok, why, sizeof why) != 0 ||
	    journal_open(fx->conf->journal, &fx->jn, why, sizeof why) != 0 ||
	    ca_store_open(fx->conf, fx->tok, fx->jn, &fx->cas, why,
	    sizeof why) != 0) {
		tap_diag("cannot open the signer's state: %s", why);
		goto out;
	}
	rc = 0;
out:
	free(text);
	if (rc != 0) {
		tap_skip("no signer state could be made");
		ca_fixture_close(fx);
	}
	return rc;
}


/* A CA with the configured defaults; NULL (with a failed check) if it
 * cannot be made. */
static __attribute__((unused)) ca *
ca_fixture_create(ca_fixture *fx, int role, const char *pl, const char *rg)
{
	ca_create_req r;
	ca *c = NULL;
	char why[512] = "", *csr = NULL;
	int rc;

	memset(&r, 0, sizeof r);
	r.role = role;
	r.product_line = pl;
	r.region = rg;
	rc = ca_create(fx->cas, &r, &c, &csr, why, sizeof why);
	is_int(rc, 0, "create the %s%s%s CA (%s)", rg ? rg : "", rg ? "." : "",
	    pl ? pl : "root", why);
	free(csr);
	return rc == 0 ? c : NULL;
}

/*
 * A leaf ready for ca_issue under profile ("device:<pl>", "server",
 * "ocsp-responder"), as the signer builds one (signer/lint.h): subject
 * CN = cn, a fresh EC P-256 key, valid days, CA:FALSE, KU
 * digitalSignature, the profile's EKU, SKI; a server's SANs (dns and ip,
 * each optional; neither: DNS = cn). NULL on failure.
 */
static __attribute__((unused)) X509 *
ca_fixture_leaf(const char *profile, const char *cn, int days,
    const char *dns, const char *ip)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char *const dv[] = { (char *)(dns || ip ? dns : cn) };
	char *const iv[] = { (char *)ip };
	int server = strcmp(profile, "server") == 0;
	int eku = server ? NID_server_auth : strncmp(profile, "device:", 7) ==
	    0 ? NID_client_auth : NID_OCSP_sign;
	X509_NAME *n = X509_NAME_new();
	X509 *x = X509_new();
	pubkey_info pk;
	uint8_t ski[20];
	char why[256];
	int okk;

	memset(&pk, 0, sizeof pk);
	okk = k && n && x && pubkey_from_evp(k, &pk, why, sizeof why) == 0 &&
	    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0) &&
	    X509_set_version(x, X509_VERSION_3) &&
	    X509_set_subject_name(x, n) && profile_set_pubkey(x, &pk) == 0 &&
	    profile_set_validity(x, days) == 0 &&
	    profile_add0(x, profile_ext_basic(0, -1)) == 0 &&
	    profile_add0(x, profile_ext_key_usage(KU_DIGITAL_SIGNATURE)) == 0 &&
	    profile_add0(x, profile_ext_eku(&eku, 1)) == 0;
	if (okk) {
		profile_key_id(pk.key_bits, pk.key_bits_len, ski);
		okk = profile_add0(x, profile_ext_ski(ski)) == 0 &&
		    (!server || profile_add0(x, profile_ext_san(dv,
		    dv[0] != NULL, iv, ip != NULL, why, sizeof why)) == 0);
	}
	pubkey_info_free(&pk);
	X509_NAME_free(n);
	EVP_PKEY_free(k);
	if (!okk) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* The first certificate of a PEM text (owned by the caller), or NULL. */
static __attribute__((unused)) X509 *
pem_cert(const char *pem)
{
	BIO *b = pem ? BIO_new_mem_buf(pem, -1) : NULL;
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	return x;
}

/*
 * Verify leaf up to the trust anchor with OpenSSL, through the
 * intermediates (NULL-terminated); with crl_check, the leaf's CRL checked
 * too (crl: the one CRL in the store, or NULL for none). X509_V_OK, or
 * the X509_V_ERR_* code X509_verify_cert reports (-1 if the check could
 * not be set up).
 */
static int __attribute__((unused))
chain_error_crl(X509 *leaf, X509 *anchor, X509 *const *between,
    int crl_check, X509_CRL *crl)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	int err = -1;

	if (leaf == NULL || anchor == NULL || store == NULL || ctx == NULL ||
	    untrusted == NULL || !X509_STORE_add_cert(store, anchor) ||
	    (crl && !X509_STORE_add_crl(store, crl)))
		goto out;
	if (crl_check)
		X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
	for (size_t i = 0; between && between[i]; i++)
		sk_X509_push(untrusted, between[i]);
	if (!X509_STORE_CTX_init(ctx, store, leaf, untrusted))
		goto out;
	err = X509_verify_cert(ctx) == 1 ? X509_V_OK :
	    X509_STORE_CTX_get_error(ctx);
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_free(untrusted);
	return err;
}

static int __attribute__((unused))
chain_error(X509 *leaf, X509 *anchor, X509 *const *between)
{
	return chain_error_crl(leaf, anchor, between, 0, NULL);
}

#endif
