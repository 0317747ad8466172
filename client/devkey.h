/*
 * devkey.h - the key a simulated device signs its CSR with: a PEM private
 * key file, or a key in a PKCS#11 token used through libp11's OpenSSL
 * engine ("pkcs11"), as a device's secure element would be. Also the TLS
 * key of our own endpoints (ca issue-server).
 *
 * The token PIN comes from --pin-file or the URI's pin-source (a file of
 * mode 0600 owned by the caller), never from the command line: a URI with
 * a pin-value is refused. No key or PIN is ever printed.
 */
#ifndef SF_DEVKEY_H
#define SF_DEVKEY_H

#include <stddef.h>

#include <openssl/evp.h>

typedef struct devkey devkey;

typedef struct {
	const char *key_file;    /* PEM private key (unencrypted), or */
	const char *pkcs11_uri;  /* RFC 7512 URI of a private key in a token */
	const char *pin_file;    /* the token's PIN; else URI's pin-source */
	const char *module;      /* PKCS#11 module; else libp11's default */
} devkey_opts;

/*
 * Open the key. 0, or SF_EIO (a file cannot be read), SF_EINVAL (not a
 * key, a bad URI, a PIN file that is not private), SF_EUNAVAIL (the engine
 * or the token failed), with a sentence in why.
 */
int devkey_open(const devkey_opts *o, devkey **out, char *why, size_t whylen);
void devkey_close(devkey *k);     /* NULL-safe */
EVP_PKEY *devkey_pkey(const devkey *k);   /* borrowed */

/*
 * A PKCS#10 request with subject CN=cn, signed by the key (SHA-256;
 * SHA-384 for P-384; none for Ed25519). *pem is malloc'd and
 * NUL-terminated. SF_ECRYPTO with why on failure.
 */
int devkey_csr(const devkey *k, const char *cn, char **pem, size_t *pemlen,
    char *why, size_t whylen);

/*
 * Make an EC P-256 key and write it to path as PKCS#8 PEM, mode 0600,
 * refusing to overwrite (SF_EEXIST). 0, SF_EIO, SF_ECRYPTO.
 */
int devkey_generate(const char *path, char *why, size_t whylen);

#endif
