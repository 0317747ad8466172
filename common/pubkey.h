/*
 * pubkey.h - public keys as the project compares them: canonical
 * SubjectPublicKeyInfo, its SHA-256 fingerprint, the key policy, and the
 * device id syntax (DESIGN.md "Conventions").
 *
 * Canonical SPKI: EC points uncompressed (OpenSSL keeps a compressed key
 * compressed through d2i_PUBKEY/i2d_PUBKEY, so it is converted explicitly),
 * named curves only; other keys as i2d_PUBKEY writes them. The fingerprint
 * is SHA-256 over the canonical DER: 32 raw bytes on the wire, lowercase hex
 * in text. authz and the signer each compute it themselves with this code.
 *
 * Key types use the numbers of secretfree.v1.KeyType (common.proto).
 */
#ifndef SF_PUBKEY_H
#define SF_PUBKEY_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

enum {
	PUBKEY_NONE = 0,
	PUBKEY_EC_P256 = 1,
	PUBKEY_EC_P384 = 2,
	PUBKEY_RSA_2048 = 3,
	PUBKEY_RSA_3072 = 4,
	PUBKEY_RSA_4096 = 5,
	PUBKEY_ED25519 = 6,
	PUBKEY_RSA_OTHER = 7,  /* RSA of another allowed size (2048..8192 bits) */
};

#define PUBKEY_FP_LEN 32
#define PUBKEY_RSA_MIN_BITS 2048
#define PUBKEY_RSA_MAX_BITS 8192
#define PUBKEY_RSA_MAX_EXP_BITS 256   /* the public exponent is below 2^256 */
#define DEVICE_ID_MAX 64

typedef struct {
	int type;              /* PUBKEY_* */
	int bits;              /* key size in bits (256, 384, 2048, ..., 255 for Ed25519) */
	uint8_t sha256[PUBKEY_FP_LEN];  /* fingerprint of the canonical SPKI */
	uint8_t *spki;         /* canonical DER SubjectPublicKeyInfo (malloc'd) */
	size_t spki_len;
	/*
	 * The parts of the canonical SPKI, so that a certificate can carry the
	 * key without an OpenSSL decode/encode round trip
	 * (X509_PUBKEY_set0_param): algorithm NID (NID_X9_62_id_ecPublicKey,
	 * NID_rsaEncryption, NID_ED25519), curve NID for EC (else NID_undef),
	 * and the subjectPublicKey BIT STRING contents (the uncompressed point,
	 * the DER RSAPublicKey, or the 32 raw Ed25519 bytes).
	 */
	int alg_nid;
	int curve_nid;
	uint8_t *key_bits;     /* malloc'd */
	size_t key_bits_len;
} pubkey_info;

/*
 * Parse DER SubjectPublicKeyInfo (nothing may follow it), canonicalise,
 * fingerprint and apply the device key policy: ECDSA P-256 / P-384 (named
 * curve), RSA 2048..8192 bits with an odd public exponent of at least
 * 65537 and below 2^256 (FIPS 186-4) whose modulus does not carry the
 * ROCA fingerprint (CVE-2017-15361), Ed25519.
 * Returns 0; SF_EINVAL if the bytes are not an SPKI; SF_EKEYTYPE if the key
 * is of a type or size the policy refuses. why (if not NULL) gets a
 * sentence naming the problem ("RSA key of 1024 bits: below the 2048-bit
 * minimum"). On error *out is zeroed and owns nothing.
 */
int pubkey_from_spki(const uint8_t *der, size_t len, pubkey_info *out,
    char *why, size_t whylen);
/* The same from a key OpenSSL already decoded (a CSR's, a token's). */
int pubkey_from_evp(EVP_PKEY *pk, pubkey_info *out, char *why, size_t whylen);
/*
 * Parse text a factory file carries: a PEM "PUBLIC KEY" block, or base64
 * of the DER SPKI (blanks and newlines ignored). Then as pubkey_from_spki.
 */
int pubkey_from_text(const char *text, size_t len, pubkey_info *out,
    char *why, size_t whylen);
void pubkey_info_free(pubkey_info *pk);   /* frees the members; NULL-safe */

/* Lowercase hex of the fingerprint into out[65]. */
void pubkey_fp_hex(const uint8_t fp[PUBKEY_FP_LEN], char out[65]);

/* "ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096", "ed25519",
 * "rsa"; "none" for PUBKEY_NONE. */
const char *pubkey_type_name(int type);
/* Inverse of pubkey_type_name for the first six; PUBKEY_NONE if unknown. */
int pubkey_type_parse(const char *name);

/* The RSA modulus (big-endian bytes) carries the ROCA fingerprint. */
int pubkey_rsa_is_roca(const uint8_t *n, size_t len);

/*
 * Device id syntax: 1-64 characters of [A-Za-z0-9._-], the first a letter
 * or digit. Returns 1 if valid. why (if not NULL) says what is wrong.
 */
int device_id_valid(const char *id, char *why, size_t whylen);

#endif
