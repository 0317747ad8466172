/*
 * libFuzzer target: raw bytes to the rpc dispatch of every method of every
 * service, in the spirit of p11-kit's fuzz/rpc_fuzzer.c.
 *
 * Input: byte 0 picks the method (an index over the methods of Signer,
 * CaAdmin, Provisioning and Registry, in that order); byte 1 picks which
 * of the process's two listeners the call comes in on (bit 0); the rest is
 * the request body. The body goes through rpc_dispatch_raw(), the same
 * code a call from a socket goes through after its bytes are read: method
 * lookup, the listener permission, unpacking, the UTF-8 check, the real
 * handler, packing the reply.
 *
 * The handlers run on real state, made once per process in a temporary
 * directory: a SoftHSM2 token (tokens/softhsm-init, path in
 * SF_SOFTHSM_INIT), the signer's journal with a root, the widgiot
 * intermediate and the us-east-1.widgiot issuing CA, authz's registry, and
 * the signer serving Signer on a Unix socket so that authz's Enroll
 * reaches it through sclient.c. Device "1111" is registered on both sides
 * with a P-256 key made from a fixed scalar, so that committed seeds
 * (tests/fuzz/corpus/rpc, written by `fuzz-replay-rpc --seeds DIR`)
 * carry CSRs the signer accepts.
 *
 * A daemon never dies on input: any crash, leak report or sanitizer
 * finding here is a bug.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include "authz.h"
#include "ca.h"
#include "journal.h"
#include "log.h"
#include "pubkey.h"
#include "registry.h"
#include "rpc.h"
#include "sclient.h"
#include "secretfree/v1/ca_admin.pb-c.h"
#include "secretfree/v1/provisioning.pb-c.h"
#include "secretfree/v1/registry.pb-c.h"
#include "secretfree/v1/signer.pb-c.h"
#include "signer.h"
#include "util.h"
#include "../unit/csr_fixture.h"
#include "../unit/signer/hsm_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);
int fuzz_write_seeds(const char *dir);

static const ProtobufCServiceDescriptor *const services[] = {
	&secretfree__v1__signer__descriptor,
	&secretfree__v1__ca_admin__descriptor,
	&secretfree__v1__provisioning__descriptor,
	&secretfree__v1__registry__descriptor,
};
#define NSERVICES (sizeof services / sizeof services[0])

static struct {
	int ready;          /* 1 set up, -1 failed */
	signer_ctx s;
	authz_ctx a;
	authz_conf acf;
	rpc_server *ssrv;   /* Signer + CaAdmin; listens on the issuance socket */
	rpc_server *asrv;   /* Provisioning + Registry; no listener */
	EVP_PKEY *devkey;
} fz;

/* The device key: P-256 from a fixed scalar, the same in every run. */
static EVP_PKEY *
fixed_key(void)
{
	static const uint8_t scalar[32] = {
		0x5e, 0xc7, 0x3f, 0x01, 0x9a, 0x22, 0x41, 0x7d,
		0x10, 0x88, 0xc3, 0x5b, 0x2f, 0x6e, 0x93, 0x04,
		0xd1, 0x7a, 0x46, 0xe2, 0x0b, 0x5c, 0x99, 0x31,
		0x84, 0x2d, 0xf0, 0x6b, 0x13, 0xa7, 0x58, 0xce,
	};
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	BIGNUM *priv = BN_bin2bn(scalar, sizeof scalar, NULL);
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	EC_POINT *pub = g ? EC_POINT_new(g) : NULL;
	uint8_t pubbuf[65];
	EVP_PKEY *pk = NULL;

	if (!pc || !b || !priv || !pub ||
	    !EC_POINT_mul(g, pub, priv, NULL, NULL, NULL) ||
	    EC_POINT_point2oct(g, pub, POINT_CONVERSION_UNCOMPRESSED, pubbuf,
	    sizeof pubbuf, NULL) != sizeof pubbuf ||
	    !OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME,
	    "prime256v1", 0) ||
	    !OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PRIV_KEY, priv) ||
	    !OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY,
	    pubbuf, sizeof pubbuf) ||
	    (params = OSSL_PARAM_BLD_to_param(b)) == NULL ||
	    EVP_PKEY_fromdata_init(pc) <= 0 ||
	    EVP_PKEY_fromdata(pc, &pk, EVP_PKEY_KEYPAIR, params) <= 0)
		pk = NULL;
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(b);
	EVP_PKEY_CTX_free(pc);
	BN_free(priv);
	EC_POINT_free(pub);
	EC_GROUP_free(g);
	return pk;
}

static int
make_cas(void)
{
	static const struct { int role; const char *pl, *rg; } want[] = {
		{ SECRETFREE__V1__CA_ROLE__CA_ROLE_ROOT, NULL, NULL },
		{ SECRETFREE__V1__CA_ROLE__CA_ROLE_INTERMEDIATE, "widgiot",
		    NULL },
		{ SECRETFREE__V1__CA_ROLE__CA_ROLE_ISSUING, "widgiot",
		    "us-east-1" },
	};
	char why[512];

	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		ca_create_req r;
		ca *c = NULL;
		char *csr = NULL;

		memset(&r, 0, sizeof r);
		r.role = want[i].role;
		r.product_line = want[i].pl;
		r.region = want[i].rg;
		if (ca_create(fz.s.cas, &r, &c, &csr, why, sizeof why) != 0) {
			fprintf(stderr, "fuzz_rpc: CA: %s\n", why);
			return -1;
		}
		free(csr);
	}
	return 0;
}

static int
open_signer(void)
{
	char path[400], why[512] = "", *text;
	token_opts o = { 0 };
	rpc_listener_opts l = { 0 };
	const char *module = getenv("SF_SOFTHSM_MODULE") ?
	    getenv("SF_SOFTHSM_MODULE") : "/usr/lib/softhsm/libsofthsm2.so";
	int rc;

	snprintf(path, sizeof path, "%s/signer.conf", hsm_dir);
	text = sf_aprintf("[signer]\njournal = %s/journal.db\n"
	    "issuance_socket = unix:%s/i/s.sock\n"
	    "admin_socket = unix:%s/a/s.sock\n"
	    "[token]\nmodule = %s\nuri = pkcs11:token=secretfree\n"
	    "pin_file = %s\nsessions = 2\n"
	    "[limits]\ndevice_certs_per_window = 1000000\n"
	    "global_per_second = 1000000\nglobal_burst = 1000000\n"
	    "[root]\nkey_type = ec-p256\n"
	    "[product.widgiot]\ndisplay_name = WidgIoT\n",
	    hsm_dir, hsm_dir, hsm_dir, module, hsm_pin_path);
	rc = text == NULL || sf_write_file(path, text, strlen(text),
	    0600) != 0;
	free(text);
	if (rc || signer_conf_load(path, &fz.s.conf, why, sizeof why) != 0)
		goto fail;
	o.module = fz.s.conf->token_module;
	o.uri = fz.s.conf->token_uri;
	o.pin_file = fz.s.conf->token_pin_file;
	o.sessions = 2;
	if (token_open(&o, &fz.s.tok, why, sizeof why) != 0 ||
	    journal_open(fz.s.conf->journal, &fz.s.jn, why, sizeof why) != 0 ||
	    ca_store_open(fz.s.conf, fz.s.tok, fz.s.jn, &fz.s.cas, why,
	    sizeof why) != 0 || make_cas() != 0)
		goto fail;
	fz.s.rl = rate_new(1000000, 3600, 1e6, 1000000);
	fz.s.ic.conf = fz.s.conf;
	fz.s.ic.cas = fz.s.cas;
	fz.s.ic.jn = fz.s.jn;
	fz.s.ic.rl = fz.s.rl;
	fz.s.oc = ocsp_new(fz.s.conf, fz.s.tok, fz.s.jn, fz.s.cas);
	fz.s.au = audit_new(fz.s.tok, fz.s.jn, fz.s.conf->audit_key_label, 0);
	l.name = "issuance";
	l.address = fz.s.conf->issuance_socket;
	l.id = SIGNER_ISSUANCE;
	l.workers = 2;
	if (fz.s.rl == NULL || fz.s.oc == NULL || fz.s.au == NULL ||
	    (fz.ssrv = rpc_server_new()) == NULL ||
	    rpc_signer_register(fz.ssrv, &fz.s) != 0 ||
	    rpc_admin_register(fz.ssrv, &fz.s) != 0 ||
	    rpc_server_listen(fz.ssrv, &l) != 0 ||
	    rpc_server_start(fz.ssrv) != 0)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "fuzz_rpc: signer: %s\n", why);
	return -1;
}

static int
open_authz(void)
{
	char path[400], why[512] = "";

	snprintf(path, sizeof path, "%s/registry.db", hsm_dir);
	if (registry_open(path, &fz.a.reg, why, sizeof why) != 0 ||
	    sclient_open(fz.s.conf->issuance_socket, 5000, &fz.a.signer) != 0)
		goto fail;
	fz.acf.csr_max = 16384;
	fz.acf.default_region = "us-east-1";
	fz.acf.idempotency_window = 86400;
	fz.a.conf = &fz.acf;
	if ((fz.a.rl = rate_new(1000000, 3600, 1e6, 1000000)) == NULL ||
	    enroll_ctx_init(&fz.a.en, &fz.acf, fz.a.reg, fz.a.signer,
	    fz.a.rl) != 0 ||
	    (fz.asrv = rpc_server_new()) == NULL ||
	    rpc_provisioning_register(fz.asrv, &fz.a) != 0 ||
	    rpc_registry_register(fz.asrv, &fz.a) != 0)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "fuzz_rpc: authz: %s\n", why);
	return -1;
}

/* Device 1111 with the fixed key, on both sides. */
static int
register_device(void)
{
	pubkey_info pk;
	journal_device d;
	registry_import_rec r;
	char why[256];
	int o1 = 0, o2 = 0, rc;

	memset(&pk, 0, sizeof pk);
	if ((fz.devkey = fixed_key()) == NULL ||
	    pubkey_from_evp(fz.devkey, &pk, why, sizeof why) != 0)
		return -1;
	d.device_id = r.device_id = "1111";
	d.key_sha256 = r.key_sha256 = pk.sha256;
	d.product_line = r.product_line = "widgiot";
	d.region = r.region = "";
	r.spki = pk.spki;
	r.spki_len = pk.spki_len;
	rc = journal_device_register(fz.s.jn, &d, 1, &o1) != 0 ||
	    registry_import(fz.a.reg, &r, 1, &o2) != 0 ? -1 : 0;
	pubkey_info_free(&pk);
	return rc;
}

static void
cleanup(void)
{
	hsm_cleanup();
}

static int
setup(void)
{
	if (fz.ready)
		return fz.ready;
	fz.ready = -1;
	/* SF_FUZZ_VERBOSE=1: the handlers' info lines too, for debugging. */
	log_init("fuzz_rpc", getenv("SF_FUZZ_VERBOSE") ? LOG_LEVEL_INFO :
	    LOG_LEVEL_WARN);
	if (hsm_make("fuzzrpc") != 0) {
		fprintf(stderr, "fuzz_rpc: no SoftHSM2 token (SF_SOFTHSM_INIT"
		    " names tokens/softhsm-init)\n");
		return -1;
	}
	atexit(cleanup);
	rpc_init();
	if (open_signer() != 0 || open_authz() != 0 || register_device() != 0)
		return -1;
	fz.ready = 1;
	return 1;
}

/* The i-th method over all services: its service, and its path. */
static const ProtobufCServiceDescriptor *
pick(unsigned i, char *path, size_t pathlen)
{
	unsigned total = 0;

	for (size_t s = 0; s < NSERVICES; s++)
		total += services[s]->n_methods;
	i %= total;
	for (size_t s = 0; s < NSERVICES; s++) {
		if (i < services[s]->n_methods) {
			snprintf(path, pathlen, "/%s/%s", services[s]->name,
			    services[s]->methods[i].name);
			return services[s];
		}
		i -= services[s]->n_methods;
	}
	return NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	const ProtobufCServiceDescriptor *svc;
	rpc_server *srv;
	unsigned bit;
	char path[160];
	uint8_t *reply = NULL;
	size_t rlen = 0;
	rpc_status st;

	if (len < 2 || setup() != 1)
		return 0;
	svc = pick(data[0], path, sizeof path);
	if (svc == services[0] || svc == services[1]) {
		srv = fz.ssrv;
		bit = data[1] & 1 ? SIGNER_ADMIN : SIGNER_ISSUANCE;
	} else {
		srv = fz.asrv;
		bit = data[1] & 1 ? AUTHZ_ADMIN : AUTHZ_DEVICE;
	}
	rpc_dispatch_raw(srv, bit, path, data + 2, len - 2, &reply, &rlen,
	    &st);
	free(reply);
	ERR_clear_error();
	return 0;
}

/* ---- seeds: one valid request per method that takes a CSR or a name ---- */

/* Index of Service/Method in pick()'s numbering; -1 if unknown. */
static int
method_index(const ProtobufCServiceDescriptor *svc, const char *method)
{
	int base = 0;

	for (size_t s = 0; s < NSERVICES; s++) {
		if (services[s] == svc) {
			for (unsigned m = 0; m < svc->n_methods; m++)
				if (strcmp(svc->methods[m].name, method) == 0)
					return base + (int)m;
			return -1;
		}
		base += (int)services[s]->n_methods;
	}
	return -1;
}

static int
write_seed(const char *dir, const ProtobufCServiceDescriptor *svc,
    const char *method, int admin, const ProtobufCMessage *m)
{
	size_t n = m ? protobuf_c_message_get_packed_size(m) : 0;
	uint8_t *buf = malloc(n + 2);
	char path[600];
	int idx = method_index(svc, method), rc;

	if (buf == NULL || idx < 0) {
		free(buf);
		return -1;
	}
	buf[0] = (uint8_t)idx;
	buf[1] = (uint8_t)admin;
	if (m)
		protobuf_c_message_pack(m, buf + 2);
	snprintf(path, sizeof path, "%s/%s-%s%s", dir, svc->short_name, method,
	    admin ? "-admin" : "");
	rc = sf_write_file(path, buf, n + 2, 0644);
	free(buf);
	return rc;
}

int
fuzz_write_seeds(const char *dir)
{
	Secretfree__V1__IssueRequest iss = SECRETFREE__V1__ISSUE_REQUEST__INIT;
	Secretfree__V1__EnrollRequest en = SECRETFREE__V1__ENROLL_REQUEST__INIT;
	Secretfree__V1__GetCaRequest gca = SECRETFREE__V1__GET_CA_REQUEST__INIT;
	Secretfree__V1__GetDeviceRequest gd =
	    SECRETFREE__V1__GET_DEVICE_REQUEST__INIT;
	Secretfree__V1__FetchCertificateRequest fc =
	    SECRETFREE__V1__FETCH_CERTIFICATE_REQUEST__INIT;
	Secretfree__V1__GetCrlRequest crl = SECRETFREE__V1__GET_CRL_REQUEST__INIT;
	Secretfree__V1__GetCrlAdminRequest acrl =
	    SECRETFREE__V1__GET_CRL_ADMIN_REQUEST__INIT;
	uint8_t *csr = NULL;
	size_t csrlen = 0;
	int rc = 0;

	if (setup() != 1 || make_csr(fz.devkey, "1111", 0, &csr, &csrlen) != 0)
		return -1;
	mkdir(dir, 0755);
	/* Every method once with an empty body, on both listeners. */
	for (size_t s = 0; s < NSERVICES; s++)
		for (unsigned m = 0; m < services[s]->n_methods; m++)
			for (int admin = 0; admin < 2; admin++)
				rc |= write_seed(dir, services[s],
				    services[s]->methods[m].name, admin, NULL);
	iss.csr.data = en.csr.data = csr;
	iss.csr.len = en.csr.len = csrlen;
	iss.product_line = "widgiot";
	iss.region = "us-east-1";
	iss.enrollment_id = "enr-seed";
	en.idempotency_key = "seed";
	gca.name = "us-east-1.widgiot";
	gd.device_id = "1111";
	fc.enrollment_id = "enr-seed";
	rc |= write_seed(dir, services[0], "Issue", 0, &iss.base);
	rc |= write_seed(dir, services[1], "GetCa", 1, &gca.base);
	rc |= write_seed(dir, services[1], "GetCaChain", 1, &gca.base);
	rc |= write_seed(dir, services[2], "Enroll", 0, &en.base);
	rc |= write_seed(dir, services[2], "FetchCertificate", 0, &fc.base);
	rc |= write_seed(dir, services[3], "GetDevice", 1, &gd.base);
	crl.ca_name = acrl.ca_name = "us-east-1.widgiot";
	rc |= write_seed(dir, services[0], "GetCrl", 0, &crl.base);
	rc |= write_seed(dir, services[1], "GetCrl", 1, &acrl.base);
	OPENSSL_free(csr);
	return rc ? -1 : 0;
}
