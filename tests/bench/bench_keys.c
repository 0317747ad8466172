/*
 * bench-keys - CPU cost of parsing and checking what devices and factories
 * send: csr_parse (a CSR, as authz and the signer each check it) and
 * pubkey_from_text (a factory file's key, as the CLI, the signer and
 * authz each check it). Not a test.
 *
 *   bench-keys csr  [-n N] [--warmup W] FILE
 *   bench-keys spki [-n N] [--warmup W] FILE
 *   bench-keys gen-import -n N [--rsa-percent P] [--prefix ID] [--seed S]
 *
 * FILE is a CSR (PEM or DER) or a public key (PEM "PUBLIC KEY" or base64
 * of the DER SPKI). W calls first (not timed), then N timed. Prints:
 *   result mode=csr n=N seconds=S rate=R us_per_call=U errors=E
 * and exits 1 if any call failed.
 *
 * gen-import writes N factory records as JSON Lines on stdout for
 * `secretfree device import` (tests/bench/run_import.py): device ids
 * ID-0000001..., product line widgiot, region us-east-1, the key as base64
 * of its DER SPKI. P percent of them (default 10, spread evenly) are
 * RSA-2048, the rest P-256. The P-256 points are k*G, (k+1)*G, ... from a
 * random k (one point addition each, so a million take seconds); the RSA
 * keys are RSA-shaped: a random odd 2048-bit modulus and e = 65537, which
 * the import decodes and checks as any other (size, exponent, ROCA, DER)
 * but which nobody can sign with; making a million real RSA keys would
 * take days. No private key is written anywhere.
 *
 * Instruction counts: the timed loop is the function bench_loop, so
 *   valgrind --tool=callgrind --toggle-collect=bench_loop \
 *       build/tests/bench/bench-keys csr -n 200 p256.csr
 * counts only the N calls; divide the total by N.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "csr.h"
#include "err.h"
#include "log.h"
#include "pubkey.h"

static int failures;
static char first_why[256];

static void
one(int csr, const uint8_t *data, size_t len)
{
	char why[256] = "";
	int rc;

	if (csr) {
		csr_info ci;

		rc = csr_parse(data, len, CSR_MAX_DEFAULT, &ci, why,
		    sizeof why);
		csr_info_fini(&ci);
	} else {
		pubkey_info pk;

		rc = pubkey_from_text((const char *)data, len, &pk, why,
		    sizeof why);
		pubkey_info_free(&pk);
	}
	if (rc != 0 && failures++ == 0)
		snprintf(first_why, sizeof first_why, "%s: %s",
		    sf_strerror(rc), why);
}

/* The timed (and, under callgrind, the counted) loop. */
__attribute__((noinline)) void bench_loop(int csr, const uint8_t *data,
    size_t len, size_t n);

__attribute__((noinline)) void
bench_loop(int csr, const uint8_t *data, size_t len, size_t n)
{
	for (size_t i = 0; i < n; i++)
		one(csr, data, len);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* base64 of an SPKI made from its algorithm, parameters and key bits. */
static int
spki_b64(int alg, int ptype, void *pval, const uint8_t *kb, size_t kblen,
    char *out, size_t outlen)
{
	X509_PUBKEY *xpk = X509_PUBKEY_new();
	unsigned char *bits = OPENSSL_memdup(kb, kblen), *der = NULL;
	int n = -1;

	if (xpk && bits && X509_PUBKEY_set0_param(xpk, OBJ_nid2obj(alg),
	    ptype, pval, bits, (int)kblen)) {
		bits = NULL;
		if ((n = i2d_X509_PUBKEY(xpk, &der)) > 0 &&
		    (size_t)(n + 2) / 3 * 4 < outlen)
			n = EVP_EncodeBlock((unsigned char *)out, der, n);
		else
			n = -1;
	}
	OPENSSL_free(bits);
	OPENSSL_free(der);
	X509_PUBKEY_free(xpk);
	return n;
}

static int
gen_import(size_t n, int rsa_percent, const char *prefix)
{
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	EC_POINT *pt = g ? EC_POINT_new(g) : NULL;
	BN_CTX *bn = BN_CTX_new();
	BIGNUM *k = BN_new();
	uint8_t kb[300];
	char b64[600];
	size_t rsa_acc = 0;

	if (!g || !pt || !bn || !k || !BN_rand_range(k, EC_GROUP_get0_order(g))
	    || !EC_POINT_mul(g, pt, k, NULL, NULL, bn))
		return 1;
	for (size_t i = 1; i <= n; i++) {
		int len;

		/* An even spread: record i is RSA when the share crosses 1. */
		rsa_acc += (size_t)rsa_percent;
		if (rsa_acc >= 100) {
			/* RSAPublicKey: SEQUENCE { INTEGER n (257 bytes), INTEGER e } */
			static const uint8_t head[] = { 0x30, 0x82, 0x01, 0x0a,
			    0x02, 0x82, 0x01, 0x01, 0x00 };
			static const uint8_t tail[] = { 0x02, 0x03, 0x01, 0x00,
			    0x01 };

			rsa_acc -= 100;
			memcpy(kb, head, sizeof head);
			if (RAND_bytes(kb + sizeof head, 256) != 1)
				return 1;
			kb[sizeof head] |= 0x80;
			kb[sizeof head + 255] |= 0x01;
			memcpy(kb + sizeof head + 256, tail, sizeof tail);
			len = spki_b64(NID_rsaEncryption, V_ASN1_NULL, NULL, kb,
			    sizeof head + 256 + sizeof tail, b64, sizeof b64);
		} else {
			if (!EC_POINT_add(g, pt, pt, EC_GROUP_get0_generator(g),
			    bn) || EC_POINT_point2oct(g, pt,
			    POINT_CONVERSION_UNCOMPRESSED, kb, 65, bn) != 65)
				return 1;
			len = spki_b64(NID_X9_62_id_ecPublicKey, V_ASN1_OBJECT,
			    OBJ_nid2obj(NID_X9_62_prime256v1), kb, 65, b64,
			    sizeof b64);
		}
		if (len <= 0)
			return 1;
		printf("{\"device_id\": \"%s-%07zu\", \"public_key\": \"%.*s\", "
		    "\"product_line\": \"widgiot\", \"region\": \"us-east-1\"}\n",
		    prefix, i, len, b64);
	}
	BN_free(k);
	BN_CTX_free(bn);
	EC_POINT_free(pt);
	EC_GROUP_free(g);
	return fflush(stdout) == 0 ? 0 : 1;
}

static void
usage(void)
{
	fprintf(stderr, "usage: bench-keys csr|spki [-n N] [--warmup W] "
	    "FILE\n"
	    "       bench-keys gen-import -n N [--rsa-percent P] "
	    "[--prefix ID]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *file = NULL;
	size_t n = 1000, warmup = 10, len = 0, cap = 0;
	uint8_t *data = NULL;
	double t0, t1;
	FILE *f;
	int csr;

	if (argc < 3)
		usage();
	if (strcmp(argv[1], "gen-import") == 0) {
		const char *prefix = "bench";
		int rsa = 10;

		for (int i = 2; i < argc; i++) {
			if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
				n = strtoul(argv[++i], NULL, 10);
			else if (strcmp(argv[i], "--rsa-percent") == 0 &&
			    i + 1 < argc)
				rsa = atoi(argv[++i]);
			else if (strcmp(argv[i], "--prefix") == 0 &&
			    i + 1 < argc)
				prefix = argv[++i];
			else
				usage();
		}
		if (rsa < 0 || rsa > 100)
			usage();
		return gen_import(n, rsa, prefix);
	}
	if (strcmp(argv[1], "csr") == 0)
		csr = 1;
	else if (strcmp(argv[1], "spki") == 0)
		csr = 0;
	else
		usage();
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
			n = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc)
			warmup = strtoul(argv[++i], NULL, 10);
		else if (argv[i][0] != '-' && file == NULL)
			file = argv[i];
		else
			usage();
	}
	if (n == 0 || file == NULL)
		usage();
	log_init("bench-keys", LOG_LEVEL_WARN);
	if ((f = fopen(file, "rb")) == NULL) {
		perror(file);
		return 2;
	}
	for (;;) {
		size_t got;

		if (len == cap) {
			cap = cap ? 2 * cap : 4096;
			if ((data = realloc(data, cap)) == NULL)
				return 2;
		}
		if ((got = fread(data + len, 1, cap - len, f)) == 0)
			break;
		len += got;
	}
	fclose(f);
	/* Not through bench_loop: callgrind counts only the timed calls. */
	for (size_t i = 0; i < warmup; i++)
		one(csr, data, len);
	t0 = now_s();
	bench_loop(csr, data, len, n);
	t1 = now_s();
	printf("result mode=%s n=%zu seconds=%.3f rate=%.1f us_per_call=%.2f"
	    " errors=%d\n", csr ? "csr" : "spki", n, t1 - t0,
	    (double)n / (t1 - t0), (t1 - t0) * 1e6 / (double)n, failures);
	if (failures)
		fprintf(stderr, "bench-keys: first failure: %s\n", first_why);
	free(data);
	return failures ? 1 : 0;
}
