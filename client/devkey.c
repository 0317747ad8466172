/*
 * devkey.c - the key a simulated device signs its CSR with, and the TLS
 * key of our own endpoints (see devkey.h): a PEM file, or a key in a
 * PKCS#11 token through libp11's OpenSSL engine with the PIN read from a
 * private file, never from the command line. The ENGINE API is deprecated
 * in OpenSSL 3.0, but libp11 0.4.12 offers nothing else to OpenSSL; this
 * is the only file that uses it.
 */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "devkey.h"
#include "err.h"

#define PIN_MAX 256

struct devkey {
	EVP_PKEY *pk;
	ENGINE *engine;          /* set for a token key */
};

/* OpenSSL's first queued error as text (and the queue cleared). */
static const char *
ssl_error(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		snprintf(buf, len, "no detail");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

/* Never prompt: an encrypted key file is refused. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static int
load_pem(const char *path, EVP_PKEY **out, char *why, size_t whylen)
{
	char detail[256];
	BIO *b;

	*out = NULL;
	if ((b = BIO_new_file(path, "r")) == NULL) {
		sf_why(why, whylen, "cannot read key file %s: %s", path,
		    strerror(errno));
		ERR_clear_error();
		return SF_EIO;
	}
	*out = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
	BIO_free(b);
	if (*out == NULL) {
		sf_why(why, whylen, "%s is not an unencrypted PEM private key"
		    " (%s)", path, ssl_error(detail, sizeof detail));
		return SF_EINVAL;
	}
	return 0;
}

/* ---- PINs and URIs ---- */

/* The PIN: first line of a regular file of ours that only we can read. */
static int
read_pin(const char *path, char *pin, size_t pinlen, char *why, size_t whylen)
{
	struct stat st;
	size_t n = 0;
	ssize_t r;
	int fd, rc = SF_EINVAL;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		sf_why(why, whylen, "PIN file %s: %s", path, strerror(errno));
		return SF_EIO;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		sf_why(why, whylen, "PIN file %s is not a regular file", path);
		goto out;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
		sf_why(why, whylen, "PIN file %s must be ours with mode 0600"
		    " (it is uid %u, mode %04o)", path, (unsigned)st.st_uid,
		    (unsigned)(st.st_mode & 07777));
		goto out;
	}
	while (n < pinlen - 1) {
		r = read(fd, pin + n, pinlen - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			sf_why(why, whylen, "PIN file %s: %s", path,
			    strerror(errno));
			rc = SF_EIO;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	pin[n] = '\0';
	pin[strcspn(pin, "\r\n")] = '\0';
	if (*pin == '\0') {
		sf_why(why, whylen, "PIN file %s is empty", path);
		goto out;
	}
	rc = 0;
out:
	if (rc)
		explicit_bzero(pin, pinlen);
	close(fd);
	return rc;
}

static int
hexval(int ch)
{
	if (isdigit(ch))
		return ch - '0';
	ch = tolower(ch);
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Percent-decode s[0..n) into out[outlen]; -1 if it does not fit or is
 * malformed. */
static int
pct_decode(const char *s, size_t n, char *out, size_t outlen)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		int ch = (unsigned char)s[i];

		if (ch == '%') {
			int hi, lo;

			if (i + 2 >= n)
				return -1;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			ch = hi * 16 + lo;
			i += 2;
		}
		if (k + 1 >= outlen || ch == 0)
			return -1;
		out[k++] = (char)ch;
	}
	out[k] = '\0';
	return 0;
}

/*
 * Split the URI's attributes: pin-value is refused (a PIN on the command
 * line), pin-source is taken out (we read the PIN ourselves) and its path
 * returned in src; the rest is the URI the engine gets.
 */
static int
uri_prepare(const char *uri, char **engine_uri, char *src, size_t srclen,
    char *why, size_t whylen)
{
	size_t len = strlen(uri), o = 0;
	const char *p, *end = uri + len;
	char *u;
	int in_query = 0, nq = 0;

	*engine_uri = NULL;
	src[0] = '\0';
	if (strncmp(uri, "pkcs11:", 7) != 0) {
		sf_why(why, whylen, "\"%s\" is not a PKCS#11 URI (pkcs11:...)",
		    uri);
		return SF_EINVAL;
	}
	if ((u = malloc(len + 1)) == NULL)
		return SF_ENOMEM;
	memcpy(u, "pkcs11:", 7);
	o = 7;
	for (p = uri + 7; p < end; ) {
		size_t n = strcspn(p, in_query ? "&" : ";?");
		char sep = p[n];

		if (n > 0) {
			if (strncmp(p, "pin-value=", 10) == 0) {
				sf_why(why, whylen, "the URI carries a"
				    " pin-value: put the PIN in a file (mode"
				    " 0600) and use --pin-file or"
				    " pin-source=file:PATH");
				free(u);
				return SF_EINVAL;
			}
			if (strncmp(p, "pin-source=", 11) == 0) {
				const char *v = p + 11;
				size_t vn = n - 11;

				/* file:/path, file:///path or a path. */
				if (vn >= 5 && strncmp(v, "file:", 5) == 0) {
					v += 5;
					vn -= 5;
				}
				if (vn >= 3 && strncmp(v, "///", 3) == 0) {
					v += 2;
					vn -= 2;
				}
				if (vn == 0 || pct_decode(v, vn, src,
				    srclen) != 0) {
					sf_why(why, whylen, "bad pin-source in"
					    " the URI");
					free(u);
					return SF_EINVAL;
				}
			} else {
				if (in_query)
					u[o++] = nq++ ? '&' : '?';
				else if (o > 7)
					u[o++] = ';';
				memcpy(u + o, p, n);
				o += n;
			}
		}
		p += n;
		if (sep == '\0')
			break;
		if (sep == '?')
			in_query = 1;
		p++;
	}
	u[o] = '\0';
	*engine_uri = u;
	return 0;
}

static int
load_token(const devkey_opts *o, devkey *k, char *why, size_t whylen)
{
	char src[1024], pin[PIN_MAX + 1], detail[256], *uri = NULL;
	const char *pin_path;
	int rc, have_pin = 0;

	if ((rc = uri_prepare(o->pkcs11_uri, &uri, src, sizeof src, why,
	    whylen)) != 0)
		return rc;
	pin_path = o->pin_file ? o->pin_file : (*src ? src : NULL);
	if (pin_path) {
		if ((rc = read_pin(pin_path, pin, sizeof pin, why,
		    whylen)) != 0)
			goto out;
		have_pin = 1;
	}
	if (o->module && access(o->module, R_OK) != 0) {
		sf_why(why, whylen, "cannot read PKCS#11 module %s: %s",
		    o->module, strerror(errno));
		rc = SF_EIO;
		goto out;
	}
	rc = SF_EUNAVAIL;
	if ((k->engine = ENGINE_by_id("pkcs11")) == NULL) {
		sf_why(why, whylen, "cannot load the OpenSSL engine \"pkcs11\""
		    " (Debian: apt-get install libengine-pkcs11-openssl): %s",
		    ssl_error(detail, sizeof detail));
		goto out;
	}
	/* Our own message says what failed; libp11 would add its lines.
	 * (QUIET is newer than some libp11 releases: not fatal.) */
	if (!ENGINE_ctrl_cmd_string(k->engine, "QUIET", NULL, 1))
		ERR_clear_error();
	if (o->module && !ENGINE_ctrl_cmd_string(k->engine, "MODULE_PATH",
	    o->module, 0)) {
		sf_why(why, whylen, "the pkcs11 engine refused module %s: %s",
		    o->module, ssl_error(detail, sizeof detail));
		goto out;
	}
	if (have_pin && !ENGINE_ctrl_cmd_string(k->engine, "PIN", pin, 0)) {
		sf_why(why, whylen, "the pkcs11 engine refused the PIN: %s",
		    ssl_error(detail, sizeof detail));
		goto out;
	}
	if (!ENGINE_init(k->engine)) {
		sf_why(why, whylen, "cannot initialise the pkcs11 engine%s%s:"
		    " %s", o->module ? " with module " : "",
		    o->module ? o->module : "", ssl_error(detail,
		    sizeof detail));
		ENGINE_free(k->engine);
		k->engine = NULL;
		goto out;
	}
	if ((k->pk = ENGINE_load_private_key(k->engine, uri, NULL,
	    NULL)) == NULL) {
		sf_why(why, whylen, "no usable private key at %s: no such token"
		    " or key, or a wrong PIN", uri);
		ERR_clear_error();
		rc = SF_EINVAL;
		goto out;
	}
	rc = 0;
out:
	explicit_bzero(pin, sizeof pin);
	free(uri);
	return rc;
}

int
devkey_open(const devkey_opts *o, devkey **out, char *why, size_t whylen)
{
	devkey *k;
	int rc;

	*out = NULL;
	if ((k = calloc(1, sizeof *k)) == NULL)
		return SF_ENOMEM;
	if (o->key_file)
		rc = load_pem(o->key_file, &k->pk, why, whylen);
	else if (o->pkcs11_uri)
		rc = load_token(o, k, why, whylen);
	else {
		sf_why(why, whylen, "no key given");
		rc = SF_EINVAL;
	}
	if (rc) {
		devkey_close(k);
		return rc;
	}
	*out = k;
	return 0;
}

void
devkey_close(devkey *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pk);
	if (k->engine) {
		ENGINE_finish(k->engine);
		ENGINE_free(k->engine);
	}
	free(k);
}

EVP_PKEY *
devkey_pkey(const devkey *k)
{
	return k->pk;
}

/* ---- CSRs and new keys ---- */

static const EVP_MD *
sign_digest(EVP_PKEY *pk)
{
	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_ED25519:
	case EVP_PKEY_ED448:
		return NULL;
	case EVP_PKEY_EC:
		return EVP_PKEY_get_bits(pk) > 256 ? EVP_sha384() :
		    EVP_sha256();
	}
	return EVP_sha256();
}

int
devkey_csr(const devkey *k, const char *cn, char **pem, size_t *pemlen,
    char *why, size_t whylen)
{
	X509_REQ *req = NULL;
	X509_NAME *name = NULL;
	BIO *b = NULL;
	char detail[256], *data;
	long n;
	int rc = SF_ECRYPTO;

	*pem = NULL;
	*pemlen = 0;
	if ((req = X509_REQ_new()) == NULL || (name = X509_NAME_new()) == NULL)
		goto out;
	if (!X509_REQ_set_version(req, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0) ||
	    !X509_REQ_set_subject_name(req, name) ||
	    !X509_REQ_set_pubkey(req, k->pk)) {
		sf_why(why, whylen, "cannot build the CSR: %s",
		    ssl_error(detail, sizeof detail));
		goto out;
	}
	if (X509_REQ_sign(req, k->pk, sign_digest(k->pk)) <= 0) {
		sf_why(why, whylen, "the key could not sign the CSR: %s",
		    ssl_error(detail, sizeof detail));
		goto out;
	}
	if ((b = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_X509_REQ(b, req) ||
	    (n = BIO_get_mem_data(b, &data)) <= 0) {
		sf_why(why, whylen, "cannot encode the CSR");
		goto out;
	}
	if ((*pem = malloc((size_t)n + 1)) == NULL) {
		rc = SF_ENOMEM;
		goto out;
	}
	memcpy(*pem, data, (size_t)n);
	(*pem)[n] = '\0';
	*pemlen = (size_t)n;
	rc = 0;
out:
	BIO_free(b);
	X509_NAME_free(name);
	X509_REQ_free(req);
	return rc;
}

int
devkey_generate(const char *path, char *why, size_t whylen)
{
	EVP_PKEY *pk = NULL;
	BIO *b = NULL;
	FILE *f = NULL;
	char detail[256];
	int fd, rc = SF_ECRYPTO;

	if ((pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL) {
		sf_why(why, whylen, "cannot make an EC P-256 key: %s",
		    ssl_error(detail, sizeof detail));
		goto out;
	}
	/* O_EXCL: an existing key is never overwritten. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd < 0) {
		rc = errno == EEXIST ? SF_EEXIST : SF_EIO;
		sf_why(why, whylen, "cannot create key file %s: %s%s", path,
		    strerror(errno), errno == EEXIST ? " (remove it, or drop"
		    " --generate-key to use it)" : "");
		goto out;
	}
	if ((f = fdopen(fd, "w")) == NULL) {
		close(fd);
		unlink(path);
		rc = SF_EIO;
		goto out;
	}
	if ((b = BIO_new_fp(f, BIO_NOCLOSE)) == NULL ||
	    !PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL) ||
	    BIO_flush(b) <= 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
		sf_why(why, whylen, "cannot write key file %s", path);
		unlink(path);
		rc = SF_EIO;
		goto out;
	}
	rc = 0;
out:
	BIO_free(b);
	if (f)
		fclose(f);
	EVP_PKEY_free(pk);
	ERR_clear_error();
	return rc;
}
