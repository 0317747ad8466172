/*
 * Unit tests of signer/token.c against a real SoftHSM2 token made for the
 * run by tokens/softhsm-init in a temporary directory: opening and PIN
 * checks, key generation for every CA key type, the read-back attribute
 * policy, signatures verified by OpenSSL, two threads signing at once, and
 * recovery after the faults token.h's test hooks inject.
 *
 * Environment: SF_SOFTHSM_INIT (path of tokens/softhsm-init),
 * SF_SOFTHSM_MODULE (optional, default /usr/lib/softhsm/libsofthsm2.so),
 * SF_TOKEN_SIGNS (optional, signatures per thread in the thread test).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "err.h"
#include "log.h"
#include "pubkey.h"
#include "token.h"
#include "util.h"
#include "../../tap.h"
#include "hsm_fixture.h"

static char uri_good[64] = "pkcs11:token=secretfree";
static const char *module = "/usr/lib/softhsm/libsofthsm2.so";

static int
write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	size_t n = strlen(text);

	if (fd < 0)
		return -1;
	if (write(fd, text, n) != (ssize_t)n || fchmod(fd, mode) != 0) {
		close(fd);
		return -1;
	}
	return close(fd);
}

static int
make_token(void)
{
	return hsm_make("sf-token");
}

static void
rm_tmpdir(void)
{
	if (hsm_cleanup() != 0)
		tap_diag("could not remove %s", hsm_dir);
}

static int
open_with(const char *uri, const char *pinfile, int sessions, token **t,
    char *why, size_t whylen)
{
	token_opts o = { 0 };

	o.module = module;
	o.uri = uri;
	o.pin_file = pinfile;
	o.sessions = sessions;
	return token_open(&o, t, why, whylen);
}

static void
test_open_errors(void)
{
	char why[256], path[400], uri[600];
	token *t = NULL;
	int rc;

	/*
	 * Login state belongs to the process, so these run while no other
	 * token object is logged in (else a wrong PIN meets "already logged in").
	 */
	snprintf(path, sizeof path, "%s/wrong.pin", hsm_dir);
	write_file(path, "00000000\n", 0600);
	rc = open_with(uri_good, path, 0, &t, why, sizeof why);
	is_int(rc, SF_EPERM, "wrong PIN: SF_EPERM");
	ok(t == NULL, "wrong PIN: no token");
	ok(strstr(why, "login") != NULL, "wrong PIN: why says login (%s)", why);
	ok(strstr(why, "00000000") == NULL, "wrong PIN: why does not carry the PIN");

	snprintf(path, sizeof path, "%s/loose.pin", hsm_dir);
	{
		uint8_t *pin;
		size_t len;

		sf_read_file(hsm_pin_path, 1024, &pin, &len);
		write_file(path, (char *)pin, 0644);
		free(pin);
	}
	rc = open_with(uri_good, path, 0, &t, why, sizeof why);
	is_int(rc, SF_ECONFIG, "PIN file mode 0644: SF_ECONFIG");
	ok(strstr(why, "0644") != NULL, "PIN file mode 0644: why names the mode (%s)", why);
	chmod(path, 0640);
	rc = open_with(uri_good, path, 0, &t, why, sizeof why);
	is_int(rc, SF_ECONFIG, "PIN file mode 0640: SF_ECONFIG");

	/* As root: a PIN file of the user the signer will become (pin_owner)
	 * opens, one of another user does not. */
	if (geteuid() == 0) {
		token_opts o = { 0 };

		chmod(path, 0600);
		if (chown(path, 65534, 65534) != 0)
			tap_diag("chown: %s", strerror(errno));
		rc = open_with(uri_good, path, 0, &t, why, sizeof why);
		is_int(rc, SF_ECONFIG, "PIN file of another user: SF_ECONFIG");
		ok(strstr(why, "owned by uid 65534") != NULL &&
		    strstr(why, "signer's user (uid 0)") != NULL,
		    "why names the owner and the expected user (%s)", why);
		o.module = module;
		o.uri = uri_good;
		o.pin_file = path;
		o.pin_owner = 65534;
		rc = token_open(&o, &t, why, sizeof why);
		is_int(rc, 0, "PIN file of pin_owner (0600), read as root: opens"
		    " (%s)", why);
		token_close(t);
		t = NULL;
	} else
		tap_skip("PIN file owners: needs root");

	snprintf(path, sizeof path, "%s/missing.pin", hsm_dir);
	rc = open_with(uri_good, path, 0, &t, why, sizeof why);
	is_int(rc, SF_ECONFIG, "missing PIN file: SF_ECONFIG");
	rc = open_with(uri_good, hsm_dir, 0, &t, why, sizeof why);
	is_int(rc, SF_ECONFIG, "PIN file that is a directory: SF_ECONFIG");

	snprintf(path, sizeof path, "%s/link.pin", hsm_dir);
	if (symlink(hsm_pin_path, path) == 0) {
		rc = open_with(uri_good, path, 0, &t, why, sizeof why);
		is_int(rc, SF_ECONFIG, "PIN file through a symlink: SF_ECONFIG");
	}

	snprintf(path, sizeof path, "%s/empty.pin", hsm_dir);
	write_file(path, "\n", 0600);
	rc = open_with(uri_good, path, 0, &t, why, sizeof why);
	is_int(rc, SF_ECONFIG, "empty PIN file: SF_ECONFIG");

	rc = open_with("pkcs11:token=nonesuch", hsm_pin_path, 0, &t, why, sizeof why);
	is_int(rc, SF_ECONFIG, "URI matching no token: SF_ECONFIG");
	ok(strstr(why, "no initialised token") != NULL, "no token: why says so (%s)", why);

	rc = open_with("pkcs11:token=secretfree;bogus=1", hsm_pin_path, 0, &t, why, sizeof why);
	is_int(rc, SF_ECONFIG, "URI with an unknown attribute: SF_ECONFIG");
	rc = open_with("http://example.com/", hsm_pin_path, 0, &t, why, sizeof why);
	is_int(rc, SF_ECONFIG, "not a pkcs11 URI: SF_ECONFIG");

	rc = open_with(uri_good, NULL, 0, &t, why, sizeof why);
	is_int(rc, SF_ECONFIG, "no PIN file and no pin-source: SF_ECONFIG");
	rc = open_with("pkcs11:token=secretfree?pin-value=1234", NULL, 0, &t,
	    why, sizeof why);
	is_int(rc, SF_ECONFIG, "pin-value in the URI refused: SF_ECONFIG");
	rc = open_with("pkcs11:token=secretfree?pin-source=https://x/pin", NULL,
	    0, &t, why, sizeof why);
	is_int(rc, SF_ECONFIG, "pin-source that is not a file: SF_ECONFIG");

	{
		token_opts o = { 0 };

		o.module = "/nonexistent/libnothing.so";
		o.uri = uri_good;
		o.pin_file = hsm_pin_path;
		rc = token_open(&o, &t, why, sizeof why);
		is_int(rc, SF_ECONFIG, "missing module: SF_ECONFIG");
	}

	/* The token chosen by its CK_TOKEN_INFO fields (token_uri.h). */
	rc = open_with("pkcs11:token=secretfree;manufacturer=SoftHSM%20project"
	    ";model=SoftHSM%20v2", hsm_pin_path, 0, &t, why, sizeof why);
	is_int(rc, 0, "token, manufacturer and model (percent-encoded) match"
	    " the token (%s)", why);
	token_close(t);
	t = NULL;
	rc = open_with("pkcs11:token=secretfree;model=Other", hsm_pin_path, 0,
	    &t, why, sizeof why);
	is_int(rc, SF_ECONFIG, "another model: no token matches");
	rc = open_with("pkcs11:token=secret", hsm_pin_path, 0, &t, why,
	    sizeof why);
	is_int(rc, SF_ECONFIG, "a prefix of the label is not the label");
	rc = open_with("pkcs11:token=secretfree;object=root-2026a;type=private",
	    hsm_pin_path, 0, &t, why, sizeof why);
	is_int(rc, SF_ECONFIG, "a key's URI as [token] uri: SF_ECONFIG");
	ok(strstr(why, "names the token only") != NULL, "  saying why (%s)",
	    why);
	rc = open_with("pkcs11:token=secretfree;library-version=2",
	    hsm_pin_path, 0, &t, why, sizeof why);
	ok(rc == SF_ECONFIG && strstr(why, "library-version is not supported"),
	    "library-version: refused by name (%s)", why);
	snprintf(uri, sizeof uri, "pkcs11:token=secretfree?module-path=%s",
	    module);
	rc = open_with(uri, hsm_pin_path, 0, &t, why, sizeof why);
	is_int(rc, 0, "module-path equal to [token] module: opens (%s)", why);
	token_close(t);
	t = NULL;
	rc = open_with("pkcs11:token=secretfree?module-path=/lib/other.so",
	    hsm_pin_path, 0, &t, why, sizeof why);
	is_int(rc, SF_ECONFIG, "another module-path: SF_ECONFIG");
	rc = open_with("pkcs11:token=secret free", hsm_pin_path, 0, &t, why,
	    sizeof why);
	ok(rc == SF_ECONFIG && strstr(why, "offset 19") &&
	    strstr(why, "%20"), "an unencoded space: SF_ECONFIG, where and"
	    " how to encode it (%s)", why);

	/* pin-source, both forms, with no pin file. */
	snprintf(uri, sizeof uri, "pkcs11:token=secretfree?pin-source=file:%s",
	    hsm_pin_path);
	rc = open_with(uri, NULL, 0, &t, why, sizeof why);
	is_int(rc, 0, "pin-source=file:PATH opens (%s)", why);
	token_close(t);
	t = NULL;
	snprintf(uri, sizeof uri, "pkcs11:token=secretfree?pin-source=%s",
	    hsm_pin_path);
	rc = open_with(uri, NULL, 0, &t, why, sizeof why);
	is_int(rc, 0, "pin-source=PATH opens (%s)", why);
	token_close(t);
	t = NULL;

	token_close(NULL);
	ok(1, "token_close(NULL) is harmless");
}

/* Verify sig over tbs with the key's public half, as a relying party would. */
static int
verify(token_key *k, const uint8_t *tbs, size_t len, const uint8_t *sig,
    size_t siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	const EVP_MD *md = NULL;
	int r;

	switch (token_key_type(k)) {
	case PUBKEY_EC_P384:
		md = EVP_sha384();
		break;
	case PUBKEY_ED25519:
		md = NULL;
		break;
	default:
		md = EVP_sha256();
	}
	r = EVP_DigestVerifyInit(ctx, NULL, md, NULL, token_key_public(k)) == 1 &&
	    EVP_DigestVerify(ctx, sig, siglen, tbs, len) == 1;
	EVP_MD_CTX_free(ctx);
	return r;
}

static int
sign_verify(token *t, token_key *k)
{
	uint8_t tbs[300], sig[1024];
	size_t siglen = sizeof sig;

	RAND_bytes(tbs, sizeof tbs);
	if (token_sign(t, k, tbs, sizeof tbs, sig, &siglen) != 0)
		return 0;
	return verify(k, tbs, sizeof tbs, sig, siglen);
}

static const struct {
	int type;
	const char *label;
	int nid;
} types[] = {
	{ PUBKEY_EC_P256, "test-p256", NID_ecdsa_with_SHA256 },
	{ PUBKEY_EC_P384, "test-p384", NID_ecdsa_with_SHA384 },
	{ PUBKEY_RSA_2048, "test-rsa2048", NID_sha256WithRSAEncryption },
	{ PUBKEY_RSA_3072, "test-rsa3072", NID_sha256WithRSAEncryption },
	{ PUBKEY_RSA_4096, "test-rsa4096", NID_sha256WithRSAEncryption },
	{ PUBKEY_ED25519, "test-ed25519", NID_ED25519 },
};
#define NTYPES (sizeof types / sizeof types[0])
static token_key *keys[NTYPES];

static void
test_generate(token *t)
{
	char why[256];
	token_key *k = NULL, *f = NULL;
	int rc;

	for (size_t i = 0; i < NTYPES; i++) {
		int64_t t0 = sf_mono_ms();

		rc = token_generate_key(t, types[i].label, types[i].type, &keys[i]);
		if (types[i].type == PUBKEY_ED25519 && rc == SF_EKEYTYPE) {
			tap_diag("this token cannot make Ed25519 keys");
			is_int(rc, SF_EKEYTYPE, "Ed25519 not supported: SF_EKEYTYPE");
			continue;
		}
		is_int(rc, 0, "generate %s", types[i].label);
		if (rc != 0)
			continue;
		tap_diag("%s generated in %lld ms", types[i].label,
		    (long long)(sf_mono_ms() - t0));
		k = keys[i];
		is_int(token_key_type(k), types[i].type, "%s: type", types[i].label);
		is_str(token_key_label(k), types[i].label, "%s: label", types[i].label);
		is_int(token_key_sig_nid(k), types[i].nid, "%s: signature NID", types[i].label);
		ok(token_key_public(k) != NULL, "%s: public key", types[i].label);
		rc = token_key_check(t, k, why, sizeof why);
		is_int(rc, 0, "%s: attributes read back as the policy says (%s)",
		    types[i].label, why);
		ok(sign_verify(t, k), "%s: signature verifies with OpenSSL", types[i].label);

		rc = token_find_key(t, types[i].label, &f);
		is_int(rc, 0, "%s: found by label", types[i].label);
		if (rc == 0) {
			ok(EVP_PKEY_eq(token_key_public(f), token_key_public(k)) == 1,
			    "%s: found key has the same public key", types[i].label);
			is_int(token_key_type(f), types[i].type, "%s: found key type",
			    types[i].label);
			ok(sign_verify(t, f), "%s: found key signs", types[i].label);
			token_key_free(f);
			f = NULL;
		}
	}

	rc = token_generate_key(t, types[0].label, PUBKEY_EC_P256, &k);
	is_int(rc, SF_EEXIST, "duplicate label: SF_EEXIST");
	ok(k == NULL, "duplicate label: no key");
	rc = token_generate_key(t, "test-other", PUBKEY_RSA_OTHER, &k);
	is_int(rc, SF_EKEYTYPE, "PUBKEY_RSA_OTHER cannot be generated: SF_EKEYTYPE");
	rc = token_generate_key(t, "", PUBKEY_EC_P256, &k);
	is_int(rc, SF_EINVAL, "empty label: SF_EINVAL");
	rc = token_find_key(t, "nonesuch", &k);
	is_int(rc, SF_ENOTFOUND, "find unknown label: SF_ENOTFOUND");
	token_key_free(NULL);
}

static void
test_ecdsa_der(token *t)
{
	uint8_t tbs[64], sig[1024];
	const uint8_t *p = sig;
	size_t siglen = sizeof sig;
	ECDSA_SIG *es;
	int der_ok = 0, n;

	if (keys[1] == NULL) {
		tap_skip("no P-384 key");
		return;
	}
	memset(tbs, 'x', sizeof tbs);
	if (token_sign(t, keys[1], tbs, sizeof tbs, sig, &siglen) == 0 &&
	    (es = d2i_ECDSA_SIG(NULL, &p, (long)siglen)) != NULL) {
		n = i2d_ECDSA_SIG(es, NULL);
		der_ok = p == sig + siglen && n == (int)siglen;
		ECDSA_SIG_free(es);
	}
	ok(der_ok, "P-384 signature is exactly one DER ECDSA-Sig-Value (%zu bytes)", siglen);
	tbs[0] ^= 1;
	ok(!verify(keys[1], tbs, sizeof tbs, sig, siglen),
	    "a signature does not verify over other bytes");
	siglen = 10;
	ok(token_sign(t, keys[0], tbs, sizeof tbs, sig, &siglen) == SF_EINVAL,
	    "a signature buffer too small: SF_EINVAL");
}

static void
test_uri(token *t)
{
	static const char label[] = "ca key;1%/\xc3\xa9";
	token_key *k = NULL, *f = NULL;
	char *uri;
	int rc;

	is_str(token_label(t), "secretfree", "token label");
	if (keys[0] != NULL) {
		uri = token_key_uri(t, keys[0]);
		is_str(uri, "pkcs11:token=secretfree;object=test-p256;type=private",
		    "URI of a plain label");
		free(uri);
	}
	rc = token_generate_key(t, label, PUBKEY_EC_P256, &k);
	is_int(rc, 0, "generate with a label that needs encoding");
	if (rc != 0)
		return;
	uri = token_key_uri(t, k);
	is_str(uri, "pkcs11:token=secretfree;object=ca%20key%3B1%25%2F%C3%A9;type=private",
	    "URI percent-encodes outside the unreserved set");
	free(uri);
	rc = token_find_key(t, label, &f);
	is_int(rc, 0, "find by that label");
	ok(f ? sign_verify(t, f) : 0, "and sign with it");
	token_key_free(f);
	token_key_free(k);
}

/* A key made with the token's defaults: the policy check must refuse it. */
static void
test_loose_key(token *t)
{
	char cmd[1024], why[256];
	token_key *k = NULL;
	uint8_t *pin = NULL;
	size_t len;
	int rc;

	if (system("command -v pkcs11-tool >/dev/null 2>&1") != 0) {
		tap_skip("no pkcs11-tool");
		return;
	}
	if (sf_read_file(hsm_pin_path, 1024, &pin, &len) != 0)
		return;
	pin[strcspn((char *)pin, "\n")] = '\0';
	snprintf(cmd, sizeof cmd, "pkcs11-tool --module '%s' --token-label "
	    "secretfree --login --pin '%s' --keypairgen --key-type "
	    "EC:prime256v1 --label loose --id 0123 >/dev/null 2>&1",
	    module, (char *)pin);
	free(pin);
	if (system(cmd) != 0) {
		tap_skip("pkcs11-tool --keypairgen failed");
		return;
	}
	rc = token_find_key(t, "loose", &k);
	is_int(rc, 0, "a key made by pkcs11-tool is found");
	if (rc != 0)
		return;
	rc = token_key_check(t, k, why, sizeof why);
	is_int(rc, SF_EPERM, "token_key_check refuses its default usages");
	ok(strstr(why, "CKA_DECRYPT") != NULL || strstr(why, "CKA_UNWRAP") != NULL ||
	    strstr(why, "CKA_SIGN_RECOVER") != NULL || strstr(why, "CKA_DERIVE") != NULL,
	    "and names the attribute (%s)", why);
	token_key_free(k);
}

struct signer_arg {
	token *t;
	token_key *k;
	int n, check, ok, unavail;
};

static void *
signer_thread(void *p)
{
	struct signer_arg *a = p;
	uint8_t tbs[200], sig[1024];

	for (int i = 0; i < a->n; i++) {
		size_t siglen = sizeof sig;
		int rc;

		memset(tbs, 0, sizeof tbs);
		memcpy(tbs, &i, sizeof i);
		memcpy(tbs + sizeof i, &a, sizeof a);
		rc = token_sign(a->t, a->k, tbs, sizeof tbs, sig, &siglen);
		if (rc == 0 && (!a->check ||
		    verify(a->k, tbs, sizeof tbs, sig, siglen)))
			a->ok++;
		else if (rc == SF_EUNAVAIL)
			a->unavail++;
		else
			tap_diag("signature %d: %s", i, rc ? sf_strerror(rc) :
			    "does not verify");
	}
	return NULL;
}

/* Signatures per second over nthreads threads of n signatures each. */
static double
run_signers(token *t, token_key *k, int nthreads, int n, int check,
    int *all_ok)
{
	struct signer_arg a[2];
	pthread_t th[2];
	int64_t t0 = sf_mono_ms(), ms;

	*all_ok = 1;
	for (int i = 0; i < nthreads; i++) {
		a[i] = (struct signer_arg){ t, k, n, check, 0, 0 };
		pthread_create(&th[i], NULL, signer_thread, &a[i]);
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_join(th[i], NULL);
		if (a[i].ok != n)
			*all_ok = 0;
	}
	ms = sf_mono_ms() - t0;
	return ms > 0 ? 1000.0 * nthreads * n / (double)ms : 0;
}

static void
test_threads(token *t)
{
	const char *e = getenv("SF_TOKEN_SIGNS");
	int n = e ? atoi(e) : 2000, all;
	double r1, r2;

	if (keys[0] == NULL) {
		tap_skip("no P-256 key");
		return;
	}
	r1 = run_signers(t, keys[0], 1, n, 1, &all);
	ok(all, "one thread: %d P-256 signatures all verify", n);
	r2 = run_signers(t, keys[0], 2, n, 1, &all);
	ok(all, "two threads: %d P-256 signatures each, all verify", n);
	tap_diag("P-256 sign+verify: %.0f/s with 1 thread, %.0f/s with 2", r1, r2);
	r1 = run_signers(t, keys[0], 1, n, 0, &all);
	ok(all, "one thread: %d P-256 signatures, not verified", n);
	r2 = run_signers(t, keys[0], 2, n, 0, &all);
	ok(all, "two threads: %d P-256 signatures each, not verified", n);
	tap_diag("P-256 token_sign only: %.0f/s with 1 thread, %.0f/s with 2", r1, r2);
}

static void
test_recovery(token *t)
{
	char why[256];
	token_key *k = keys[0], *f = NULL;
	int rc;

	if (k == NULL) {
		tap_skip("no P-256 key");
		return;
	}
	is_int(token_test_close_all_sessions(t), 0, "fault: C_CloseAllSessions");
	ok(sign_verify(t, k), "signs after all sessions were closed");
	ok(sign_verify(t, k), "and again");

	is_int(token_test_logout(t), 0, "fault: C_Logout");
	ok(sign_verify(t, k), "signs after a logout");
	if (keys[2] != NULL)
		ok(sign_verify(t, keys[2]), "RSA key signs after the logout too");

	is_int(token_test_finalize(t), 0, "fault: C_Finalize");
	ok(sign_verify(t, k), "signs after the module was finalised");
	if (keys[5] != NULL)
		ok(sign_verify(t, keys[5]), "Ed25519 key signs after it too");

	is_int(token_test_logout(t), 0, "fault: C_Logout again");
	rc = token_key_check(t, k, why, sizeof why);
	is_int(rc, 0, "token_key_check recovers as well (%s)", why);
	is_int(token_test_close_all_sessions(t), 0, "fault: C_CloseAllSessions again");
	rc = token_find_key(t, types[1].label, &f);
	is_int(rc, 0, "token_find_key recovers as well");
	ok(f ? sign_verify(t, f) : 0, "and the key found signs");
	token_key_free(f);
	is_int(token_test_finalize(t), 0, "fault: C_Finalize again");
	rc = token_generate_key(t, "test-after-finalize", PUBKEY_EC_P256, &f);
	is_int(rc, 0, "token_generate_key recovers as well");
	token_key_free(f);
}

/* Faults while two threads sign: no crash, no hang, results stay right. */
static void
test_recovery_concurrent(token *t)
{
	struct signer_arg a[2];
	pthread_t th[2];
	int bad = 0, unavail = 0, good = 0;

	if (keys[0] == NULL) {
		tap_skip("no P-256 key");
		return;
	}
	for (int i = 0; i < 2; i++) {
		a[i] = (struct signer_arg){ t, keys[0], 1000, 1, 0, 0 };
		pthread_create(&th[i], NULL, signer_thread, &a[i]);
	}
	for (int i = 0; i < 5; i++) {
		usleep(20000);
		token_test_logout(t);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		good += a[i].ok;
		unavail += a[i].unavail;
		bad += a[i].n - a[i].ok - a[i].unavail;
	}
	is_int(bad, 0, "logouts during two signing threads: every signature "
	    "returned verifies (%d ok, %d unavailable)", good, unavail);
	ok(sign_verify(t, keys[0]), "and signing works afterwards");
}

/* One session shared by two threads: they queue for it, nothing breaks. */
static void
test_one_session(void)
{
	char why[256];
	token *t = NULL;
	token_key *k = NULL;
	int rc, all = 0;

	rc = open_with(uri_good, hsm_pin_path, 1, &t, why, sizeof why);
	is_int(rc, 0, "open with one session (%s)", why);
	if (rc != 0)
		return;
	rc = token_find_key(t, types[0].label, &k);
	is_int(rc, 0, "find the P-256 key again");
	if (rc == 0) {
		run_signers(t, k, 2, 300, 1, &all);
		ok(all, "two threads on one session: all 600 signatures verify");
	}
	token_close(t);
	/* A key may outlive its token object; freeing it touches no token. */
	token_key_free(k);
}

int
main(void)
{
	char why[256];
	token *t = NULL;
	int rc;

	log_init("test_token", LOG_LEVEL_WARN);
	if (getenv("SF_SOFTHSM_MODULE"))
		module = getenv("SF_SOFTHSM_MODULE");
	if (access(module, R_OK) != 0 || make_token() != 0) {
		tap_skip("no SoftHSM2 token could be made");
		rm_tmpdir();
		return tap_done();
	}

	test_open_errors();

	rc = open_with(uri_good, hsm_pin_path, 4, &t, why, sizeof why);
	is_int(rc, 0, "open with the right PIN (%s)", why);
	if (rc != 0) {
		rm_tmpdir();
		return tap_done();
	}
	test_generate(t);
	test_ecdsa_der(t);
	test_uri(t);
	test_loose_key(t);
	test_threads(t);
	test_recovery(t);
	test_recovery_concurrent(t);

	token_close(t);
	for (size_t i = 0; i < NTYPES; i++)
		token_key_free(keys[i]);
	test_one_session();
	rm_tmpdir();
	return tap_done();
}
