/*
 * token.c - CA keys in a PKCS#11 token, reached through p11-kit (token.h):
 * the key operations (generate, find, check, sign). The PIN, the slot, the
 * session pool and its repair are in token_session.c; what both share is in
 * token_int.h.
 *
 * Each operation is a token_fn that token_run runs on a pooled session,
 * once more after a fault. A repair bumps the pool's generation, and a key
 * whose handle is of an older generation looks itself up again (key_handle;
 * "Faults" in token_session.c).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

#include "err.h"
#include "log.h"
#include "pubkey.h"
#include "token.h"
#include "token_int.h"
#include "token_uri.h"
#include "util.h"

#define SIG_MAX 1024           /* raw signature buffer: RSA up to 8192 bits */
#define KEY_ID_LEN 16
#define LABEL_MAX 128

struct token_key {
	char *label;
	uint8_t *id;
	size_t idlen;
	int type;
	EVP_PKEY *pub;
	pthread_mutex_t mu;        /* guards priv and gen */
	CK_OBJECT_HANDLE priv;
	uint64_t gen;              /* the pool generation priv belongs to */
};

/* DER of the curves' OIDs, as CKA_EC_PARAMS carries them. */
static const uint8_t OID_P256[] = {
	0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
static const uint8_t OID_P384[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 };
static const uint8_t OID_ED25519[] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };
/* PKCS#11 3.0 also allows the curve name as a PrintableString. */
static const uint8_t STR_ED25519[] = { 0x13, 0x0c, 'e', 'd', 'w', 'a', 'r',
	'd', 's', '2', '5', '5', '1', '9' };

/* What a CA private key must say when read back (DESIGN.md). */
static const struct {
	CK_ATTRIBUTE_TYPE type;
	const char *name;
	CK_BBOOL want;
} key_policy[] = {
	{ CKA_TOKEN, "CKA_TOKEN", CK_TRUE },
	{ CKA_PRIVATE, "CKA_PRIVATE", CK_TRUE },
	{ CKA_SENSITIVE, "CKA_SENSITIVE", CK_TRUE },
	{ CKA_ALWAYS_SENSITIVE, "CKA_ALWAYS_SENSITIVE", CK_TRUE },
	{ CKA_EXTRACTABLE, "CKA_EXTRACTABLE", CK_FALSE },
	{ CKA_NEVER_EXTRACTABLE, "CKA_NEVER_EXTRACTABLE", CK_TRUE },
	{ CKA_LOCAL, "CKA_LOCAL", CK_TRUE },
	{ CKA_SIGN, "CKA_SIGN", CK_TRUE },
	{ CKA_DECRYPT, "CKA_DECRYPT", CK_FALSE },
	{ CKA_UNWRAP, "CKA_UNWRAP", CK_FALSE },
	{ CKA_SIGN_RECOVER, "CKA_SIGN_RECOVER", CK_FALSE },
	{ CKA_DERIVE, "CKA_DERIVE", CK_FALSE },
	/* Nobody holding the PIN may turn a usage on later or copy the key
	 * into an object with other attributes. */
	{ CKA_MODIFIABLE, "CKA_MODIFIABLE", CK_FALSE },
	{ CKA_COPYABLE, "CKA_COPYABLE", CK_FALSE },
};
#define NPOLICY (sizeof key_policy / sizeof key_policy[0])

/* ------------------------------------------------------------------ */
/* Objects and attributes                                               */

/* Up to two matches: *n of 2 means "more than one". */
static CK_RV
find2(token *t, CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG ntmpl,
    CK_OBJECT_HANDLE objs[2], CK_ULONG *n)
{
	CK_RV rv, frv;

	*n = 0;
	if ((rv = t->f->C_FindObjectsInit(s, tmpl, ntmpl)) != CKR_OK)
		return rv;
	rv = t->f->C_FindObjects(s, objs, 2, n);
	/* Always: an active search blocks every other operation. */
	frv = t->f->C_FindObjectsFinal(s);
	return rv != CKR_OK ? rv : frv;
}

/* A variable-length attribute into a malloc'd buffer. */
static CK_RV
attr_get(token *t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
    CK_ATTRIBUTE_TYPE type, uint8_t **out, size_t *len)
{
	CK_ATTRIBUTE a = { type, NULL, 0 };
	CK_RV rv;

	*out = NULL;
	*len = 0;
	if ((rv = t->f->C_GetAttributeValue(s, o, &a, 1)) != CKR_OK)
		return rv;
	if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION ||
	    a.ulValueLen > 64 * 1024)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	if ((a.pValue = malloc(a.ulValueLen ? a.ulValueLen : 1)) == NULL)
		return CKR_HOST_MEMORY;
	if ((rv = t->f->C_GetAttributeValue(s, o, &a, 1)) != CKR_OK) {
		free(a.pValue);
		return rv;
	}
	*out = a.pValue;
	*len = a.ulValueLen;
	return CKR_OK;
}

static int
key_policy_check(token *t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
    char *why, size_t whylen, CK_RV *crv)
{
	CK_ATTRIBUTE a[NPOLICY];
	CK_BBOOL v[NPOLICY];
	CK_RV rv;
	size_t i;

	for (i = 0; i < NPOLICY; i++) {
		v[i] = CK_FALSE;
		a[i].type = key_policy[i].type;
		a[i].pValue = &v[i];
		a[i].ulValueLen = sizeof v[i];
	}
	rv = t->f->C_GetAttributeValue(s, h, a, NPOLICY);
	/* With these two the readable attributes are filled in anyway. */
	if (rv != CKR_OK && rv != CKR_ATTRIBUTE_TYPE_INVALID &&
	    rv != CKR_ATTRIBUTE_SENSITIVE) {
		*crv = rv;
		sf_why(why, whylen, "C_GetAttributeValue: %s",
		    p11_kit_strerror(rv));
		return rv_err(rv);
	}
	for (i = 0; i < NPOLICY; i++) {
		if (a[i].ulValueLen != sizeof(CK_BBOOL)) {
			sf_why(why, whylen, "%s cannot be read",
			    key_policy[i].name);
			return SF_EPERM;
		}
		if ((v[i] != CK_FALSE) != (key_policy[i].want != CK_FALSE)) {
			sf_why(why, whylen, "%s is %s, must be %s",
			    key_policy[i].name, v[i] ? "TRUE" : "FALSE",
			    key_policy[i].want ? "TRUE" : "FALSE");
			return SF_EPERM;
		}
	}
	return 0;
}

/*
 * CKA_EC_POINT is a DER OCTET STRING around the point; a few modules
 * return the bare point. want is the point's length.
 */
static int
ec_point_unwrap(const uint8_t *p, size_t len, size_t want,
    const uint8_t **pt)
{
	if (len == want + 2 && want < 128 && p[0] == 0x04 && p[1] == want) {
		*pt = p + 2;
		return 0;
	}
	if (len == want + 3 && want >= 128 && want < 256 && p[0] == 0x04 &&
	    p[1] == 0x81 && p[2] == want) {
		*pt = p + 3;
		return 0;
	}
	if (len == want) {
		*pt = p;
		return 0;
	}
	return SF_ECRYPTO;
}

static int
pub_ec(const char *group, size_t fieldlen, const uint8_t *der, size_t len,
    EVP_PKEY **out)
{
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	const uint8_t *pt;
	int rc = SF_ECRYPTO;

	if (ec_point_unwrap(der, len, 1 + 2 * fieldlen, &pt) != 0 ||
	    pt[0] != 0x04)
		return SF_ECRYPTO;
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
	    group, 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
	    pt, 1 + 2 * fieldlen) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
		goto out;
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		log_openssl("token: EC public key");
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return rc;
}

static int
pub_rsa(const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen,
    EVP_PKEY **out)
{
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	BIGNUM *bn = NULL, *be = NULL;
	int rc = SF_ECRYPTO;

	if ((bn = BN_bin2bn(n, (int)nlen, NULL)) == NULL ||
	    (be = BN_bin2bn(e, (int)elen, NULL)) == NULL ||
	    (bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
		goto out;
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		log_openssl("token: RSA public key");
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	return rc;
}

static int
eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	return alen == blen && memcmp(a, b, alen) == 0;
}

/* The public half as an EVP_PKEY, and its PUBKEY_* type. */
static int
pub_load(token *t, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE hpub,
    CK_KEY_TYPE kt, EVP_PKEY **pk, int *type, CK_RV *crv)
{
	uint8_t *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	const uint8_t *pt;
	CK_RV rv;
	int bits, rc = SF_EKEYTYPE;

	*pk = NULL;
	*type = PUBKEY_NONE;
	if (kt == CKK_RSA) {
		if ((rv = attr_get(t, s, hpub, CKA_MODULUS, &a, &alen)) !=
		    CKR_OK || (rv = attr_get(t, s, hpub, CKA_PUBLIC_EXPONENT,
		    &b, &blen)) != CKR_OK) {
			*crv = rv;
			rc = rv_err(rv);
			goto out;
		}
		if ((rc = pub_rsa(a, alen, b, blen, pk)) != 0)
			goto out;
		bits = EVP_PKEY_get_bits(*pk);
		if (bits == 2048)
			*type = PUBKEY_RSA_2048;
		else if (bits == 3072)
			*type = PUBKEY_RSA_3072;
		else if (bits == 4096)
			*type = PUBKEY_RSA_4096;
		else if (bits > 2048 && bits < 4096)
			*type = PUBKEY_RSA_OTHER;
		else
			rc = SF_EKEYTYPE;
		goto out;
	}
	if (kt != CKK_EC && kt != CKK_EC_EDWARDS)
		goto out;
	if ((rv = attr_get(t, s, hpub, CKA_EC_PARAMS, &a, &alen)) != CKR_OK ||
	    (rv = attr_get(t, s, hpub, CKA_EC_POINT, &b, &blen)) != CKR_OK) {
		*crv = rv;
		rc = rv_err(rv);
		goto out;
	}
	if (kt == CKK_EC && eq(a, alen, OID_P256, sizeof OID_P256)) {
		*type = PUBKEY_EC_P256;
		rc = pub_ec("prime256v1", 32, b, blen, pk);
	} else if (kt == CKK_EC && eq(a, alen, OID_P384, sizeof OID_P384)) {
		*type = PUBKEY_EC_P384;
		rc = pub_ec("secp384r1", 48, b, blen, pk);
	} else if (kt == CKK_EC_EDWARDS &&
	    (eq(a, alen, OID_ED25519, sizeof OID_ED25519) ||
	    eq(a, alen, STR_ED25519, sizeof STR_ED25519))) {
		*type = PUBKEY_ED25519;
		rc = SF_ECRYPTO;
		if (ec_point_unwrap(b, blen, 32, &pt) == 0 &&
		    (*pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL,
		    pt, 32)) != NULL)
			rc = 0;
	}
out:
	if (rc != 0) {
		EVP_PKEY_free(*pk);
		*pk = NULL;
		*type = PUBKEY_NONE;
	}
	free(a);
	free(b);
	return rc;
}

static token_key *
key_new(const char *label, const uint8_t *id, size_t idlen)
{
	token_key *k;

	if ((k = calloc(1, sizeof *k)) == NULL)
		return NULL;
	pthread_mutex_init(&k->mu, NULL);
	k->priv = CK_INVALID_HANDLE;
	if ((k->label = strdup(label)) == NULL ||
	    (k->id = malloc(idlen ? idlen : 1)) == NULL) {
		token_key_free(k);
		return NULL;
	}
	memcpy(k->id, id, idlen);
	k->idlen = idlen;
	return k;
}

/* A token_key for the pair (hpriv, hpub) found on session s. */
static int
key_load(token *t, const tsess *s, CK_OBJECT_HANDLE hpriv,
    CK_OBJECT_HANDLE hpub, const char *label, const uint8_t *id,
    size_t idlen, token_key **out, CK_RV *crv)
{
	CK_KEY_TYPE kt = (CK_KEY_TYPE)-1, ktpub = (CK_KEY_TYPE)-1;
	CK_ATTRIBUTE a = { CKA_KEY_TYPE, &kt, sizeof kt };
	CK_ATTRIBUTE b = { CKA_KEY_TYPE, &ktpub, sizeof ktpub };
	token_key *k = NULL;
	CK_RV rv;
	int rc;

	*out = NULL;
	if ((rv = t->f->C_GetAttributeValue(s->h, hpriv, &a, 1)) != CKR_OK ||
	    (rv = t->f->C_GetAttributeValue(s->h, hpub, &b, 1)) != CKR_OK) {
		*crv = rv;
		return rv_err(rv);
	}
	if (kt != ktpub) {
		log_warnx("token %s: key %s: the public and private objects "
		    "differ in type", t->label, label);
		return SF_ECRYPTO;
	}
	if ((k = key_new(label, id, idlen)) == NULL)
		return SF_ENOMEM;
	if ((rc = pub_load(t, s->h, hpub, kt, &k->pub, &k->type, crv)) != 0) {
		if (rc == SF_EKEYTYPE)
			log_warnx("token %s: key %s: not a CA key type we use",
			    t->label, label);
		token_key_free(k);
		return rc;
	}
	k->priv = hpriv;
	k->gen = s->gen;
	*out = k;
	return 0;
}

/* The private key's handle in the session's generation. */
static int
key_handle(token *t, const tsess *s, token_key *k, CK_OBJECT_HANDLE *h,
    CK_RV *crv)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof cls },
		{ CKA_LABEL, k->label, strlen(k->label) },
		{ CKA_ID, k->id, k->idlen },
	};
	CK_OBJECT_HANDLE objs[2];
	CK_ULONG n;
	CK_RV rv;
	int fresh;

	pthread_mutex_lock(&k->mu);
	*h = k->priv;
	fresh = k->gen == s->gen && k->priv != CK_INVALID_HANDLE;
	pthread_mutex_unlock(&k->mu);
	if (fresh)
		return 0;
	rv = find2(t, s->h, tmpl, k->idlen ? 3 : 2, objs, &n);
	if (rv == CKR_OK && n == 0)
		rv = session_logged_in(t, s->h);
	if (rv != CKR_OK) {
		*crv = rv;
		return rv_err(rv);
	}
	if (n != 1) {
		log_warnx("token %s: key %s: %s", t->label, k->label,
		    n == 0 ? "no longer in the token" :
		    "several private keys have its label and id");
		return SF_EUNAVAIL;
	}
	pthread_mutex_lock(&k->mu);
	k->priv = objs[0];
	k->gen = s->gen;
	pthread_mutex_unlock(&k->mu);
	*h = objs[0];
	return 0;
}

/* ------------------------------------------------------------------ */
/* Keys                                                                 */

struct gen_req {
	const char *label;
	int type;
	token_key *k;
};

#define ADD(a, n, t, p, l) do { \
	(a)[(n)].type = (t); (a)[(n)].pValue = (void *)(p); \
	(a)[(n)].ulValueLen = (l); (n)++; \
} while (0)

static int
op_generate(token *t, const tsess *s, void *arg, CK_RV *crv)
{
	struct gen_req *g = arg;
	CK_OBJECT_CLASS pubc = CKO_PUBLIC_KEY, privc = CKO_PRIVATE_KEY;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_BYTE e[] = { 0x01, 0x00, 0x01 };
	CK_MECHANISM m = { 0, NULL, 0 };
	CK_ATTRIBUTE pub[16], priv[16], find[2];
	CK_OBJECT_HANDLE hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE;
	CK_OBJECT_HANDLE objs[2];
	CK_ULONG npub = 0, npriv = 0, nfind = 0, n, bits = 0;
	CK_KEY_TYPE kt;
	const uint8_t *params = NULL;
	size_t plen = 0, lablen = strlen(g->label);
	uint8_t id[KEY_ID_LEN];
	char why[160];
	CK_RV rv;
	int rc, pidx = -1;

	switch (g->type) {
	case PUBKEY_EC_P256:
		params = OID_P256, plen = sizeof OID_P256;
		break;
	case PUBKEY_EC_P384:
		params = OID_P384, plen = sizeof OID_P384;
		break;
	case PUBKEY_ED25519:
		params = OID_ED25519, plen = sizeof OID_ED25519;
		break;
	case PUBKEY_RSA_2048:
		bits = 2048;
		break;
	case PUBKEY_RSA_3072:
		bits = 3072;
		break;
	case PUBKEY_RSA_4096:
		bits = 4096;
		break;
	default:
		return SF_EKEYTYPE;
	}
	kt = bits ? CKK_RSA :
	    g->type == PUBKEY_ED25519 ? CKK_EC_EDWARDS : CKK_EC;
	m.mechanism = bits ? CKM_RSA_PKCS_KEY_PAIR_GEN :
	    kt == CKK_EC_EDWARDS ? CKM_EC_EDWARDS_KEY_PAIR_GEN :
	    CKM_EC_KEY_PAIR_GEN;

	/* A session that is not logged in would not see the label taken. */
	if ((rv = session_logged_in(t, s->h)) != CKR_OK) {
		*crv = rv;
		return rv_err(rv);
	}
	ADD(find, nfind, CKA_CLASS, &privc, sizeof privc);
	ADD(find, nfind, CKA_LABEL, g->label, lablen);
	if ((rv = find2(t, s->h, find, nfind, objs, &n)) != CKR_OK) {
		*crv = rv;
		return rv_err(rv);
	}
	if (n != 0)
		return SF_EEXIST;
	if (RAND_bytes(id, sizeof id) != 1) {
		log_openssl("token: RAND_bytes");
		return SF_ECRYPTO;
	}

	ADD(pub, npub, CKA_CLASS, &pubc, sizeof pubc);
	ADD(pub, npub, CKA_KEY_TYPE, &kt, sizeof kt);
	ADD(pub, npub, CKA_TOKEN, &yes, sizeof yes);
	ADD(pub, npub, CKA_PRIVATE, &no, sizeof no);
	ADD(pub, npub, CKA_VERIFY, &yes, sizeof yes);
	ADD(pub, npub, CKA_ENCRYPT, &no, sizeof no);
	ADD(pub, npub, CKA_WRAP, &no, sizeof no);
	ADD(pub, npub, CKA_VERIFY_RECOVER, &no, sizeof no);
	ADD(pub, npub, CKA_DERIVE, &no, sizeof no);
	ADD(pub, npub, CKA_LABEL, g->label, lablen);
	ADD(pub, npub, CKA_ID, id, sizeof id);
	if (bits) {
		ADD(pub, npub, CKA_MODULUS_BITS, &bits, sizeof bits);
		ADD(pub, npub, CKA_PUBLIC_EXPONENT, e, sizeof e);
	} else {
		pidx = (int)npub;
		ADD(pub, npub, CKA_EC_PARAMS, params, plen);
	}

	ADD(priv, npriv, CKA_CLASS, &privc, sizeof privc);
	ADD(priv, npriv, CKA_KEY_TYPE, &kt, sizeof kt);
	ADD(priv, npriv, CKA_TOKEN, &yes, sizeof yes);
	ADD(priv, npriv, CKA_PRIVATE, &yes, sizeof yes);
	ADD(priv, npriv, CKA_SENSITIVE, &yes, sizeof yes);
	ADD(priv, npriv, CKA_EXTRACTABLE, &no, sizeof no);
	ADD(priv, npriv, CKA_SIGN, &yes, sizeof yes);
	/* SoftHSM2 makes these TRUE unless told otherwise. */
	ADD(priv, npriv, CKA_DECRYPT, &no, sizeof no);
	ADD(priv, npriv, CKA_UNWRAP, &no, sizeof no);
	ADD(priv, npriv, CKA_SIGN_RECOVER, &no, sizeof no);
	ADD(priv, npriv, CKA_DERIVE, &no, sizeof no);
	ADD(priv, npriv, CKA_MODIFIABLE, &no, sizeof no);
	ADD(priv, npriv, CKA_COPYABLE, &no, sizeof no);
	ADD(priv, npriv, CKA_LABEL, g->label, lablen);
	ADD(priv, npriv, CKA_ID, id, sizeof id);

	rv = t->f->C_GenerateKeyPair(s->h, &m, pub, npub, priv, npriv, &hpub,
	    &hpriv);
	/*
	 * PKCS#11 3.0 names Ed25519 by OID or by the PrintableString
	 * "edwards25519"; modules differ in which they take.
	 */
	if (kt == CKK_EC_EDWARDS && (rv == CKR_DOMAIN_PARAMS_INVALID ||
	    rv == CKR_ATTRIBUTE_VALUE_INVALID ||
	    rv == CKR_CURVE_NOT_SUPPORTED || rv == CKR_TEMPLATE_INCONSISTENT)) {
		log_debug("token %s: Ed25519 by OID refused (%s); trying "
		    "\"edwards25519\"", t->label, p11_kit_strerror(rv));
		pub[pidx].pValue = (void *)STR_ED25519;
		pub[pidx].ulValueLen = sizeof STR_ED25519;
		rv = t->f->C_GenerateKeyPair(s->h, &m, pub, npub, priv, npriv,
		    &hpub, &hpriv);
	}
	if (rv != CKR_OK) {
		*crv = rv;
		rc = rv_err(rv);
		if (rv == CKR_ATTRIBUTE_VALUE_INVALID ||
		    rv == CKR_TEMPLATE_INCONSISTENT)
			rc = SF_EKEYTYPE;
		return rc;
	}
	if ((rc = key_policy_check(t, s->h, hpriv, why, sizeof why, crv)) !=
	    0) {
		log_warnx("token %s: new key %s refused: %s", t->label,
		    g->label, why);
		rc = SF_ECRYPTO;
		goto out;
	}
	if ((rc = key_load(t, s, hpriv, hpub, g->label, id, sizeof id, &g->k,
	    crv)) != 0)
		goto out;
	if (g->k->type != g->type) {
		log_warnx("token %s: new key %s is not of the type asked for",
		    t->label, g->label);
		token_key_free(g->k);
		g->k = NULL;
		rc = SF_ECRYPTO;
		goto out;
	}
	log_info("token %s: generated key %s", t->label, g->label);
out:
	if (rc != 0) {
		/* A refused key must not keep its label taken. */
		(void)t->f->C_DestroyObject(s->h, hpriv);
		(void)t->f->C_DestroyObject(s->h, hpub);
	}
	return rc;
}

static int
label_valid(const char *label)
{
	size_t n;

	if (label == NULL || (n = strlen(label)) == 0 || n > LABEL_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)label[i] < 0x20 || label[i] == 0x7f)
			return 0;
	return 1;
}

int
token_generate_key(token *t, const char *label, int type, token_key **out)
{
	struct gen_req g = { label, type, NULL };
	int rc;

	*out = NULL;
	if (t == NULL || !label_valid(label))
		return SF_EINVAL;
	pthread_mutex_lock(&t->admin);
	rc = token_run(t, op_generate, &g, "generate key", label);
	pthread_mutex_unlock(&t->admin);
	if (rc == 0)
		*out = g.k;
	return rc;
}

struct find_req {
	const char *label;
	token_key *k;
};

static int
op_find(token *t, const tsess *s, void *arg, CK_RV *crv)
{
	struct find_req *q = arg;
	CK_OBJECT_CLASS pubc = CKO_PUBLIC_KEY, privc = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[2];
	CK_OBJECT_HANDLE priv[2], pub[2];
	CK_ULONG n, ntmpl = 0;
	uint8_t *id = NULL;
	size_t idlen = 0, lablen = strlen(q->label);
	CK_RV rv;
	int rc;

	if ((rv = session_logged_in(t, s->h)) != CKR_OK) {
		*crv = rv;
		return rv_err(rv);
	}
	ADD(tmpl, ntmpl, CKA_CLASS, &privc, sizeof privc);
	ADD(tmpl, ntmpl, CKA_LABEL, q->label, lablen);
	if ((rv = find2(t, s->h, tmpl, ntmpl, priv, &n)) != CKR_OK) {
		*crv = rv;
		return rv_err(rv);
	}
	if (n == 0)
		return SF_ENOTFOUND;
	if (n > 1) {
		log_warnx("token %s: several private keys are labelled %s",
		    t->label, q->label);
		return SF_ECONFLICT;
	}
	if ((rv = attr_get(t, s->h, priv[0], CKA_ID, &id, &idlen)) != CKR_OK) {
		*crv = rv;
		return rv_err(rv);
	}
	/* The public half is the one with the same CKA_ID (else label). */
	tmpl[0].pValue = &pubc;
	if (idlen > 0) {
		tmpl[1].type = CKA_ID;
		tmpl[1].pValue = id;
		tmpl[1].ulValueLen = idlen;
	}
	if ((rv = find2(t, s->h, tmpl, 2, pub, &n)) != CKR_OK) {
		*crv = rv;
		rc = rv_err(rv);
		goto out;
	}
	if (n != 1) {
		log_warnx("token %s: key %s: %s public key object", t->label,
		    q->label, n ? "more than one" : "no");
		rc = n ? SF_ECONFLICT : SF_ENOTFOUND;
		goto out;
	}
	rc = key_load(t, s, priv[0], pub[0], q->label, id, idlen, &q->k, crv);
out:
	free(id);
	return rc;
}

int
token_find_key(token *t, const char *label, token_key **out)
{
	struct find_req q = { label, NULL };
	int rc;

	*out = NULL;
	if (t == NULL || !label_valid(label))
		return SF_EINVAL;
	pthread_mutex_lock(&t->admin);
	rc = token_run(t, op_find, &q, "find key", label);
	pthread_mutex_unlock(&t->admin);
	if (rc == 0)
		*out = q.k;
	return rc;
}

void
token_key_free(token_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pub);
	free(k->label);
	free(k->id);
	pthread_mutex_destroy(&k->mu);
	free(k);
}

struct check_req {
	token_key *k;
	char *why;
	size_t whylen;
};

static int
op_check(token *t, const tsess *s, void *arg, CK_RV *crv)
{
	struct check_req *c = arg;
	CK_OBJECT_HANDLE h;
	int rc;

	sf_why(c->why, c->whylen, "%s", "");
	if ((rc = key_handle(t, s, c->k, &h, crv)) != 0) {
		sf_why(c->why, c->whylen, "the key cannot be found");
		return rc;
	}
	return key_policy_check(t, s->h, h, c->why, c->whylen, crv);
}

int
token_key_check(token *t, token_key *k, char *why, size_t whylen)
{
	struct check_req c = { k, why, whylen };

	sf_why(why, whylen, "%s", "");
	if (t == NULL || k == NULL)
		return SF_EINVAL;
	return token_run(t, op_check, &c, "check key", k->label);
}

const char *
token_key_label(const token_key *k)
{
	return k->label;
}

int
token_key_type(const token_key *k)
{
	return k->type;
}

EVP_PKEY *
token_key_public(const token_key *k)
{
	return k->pub;
}

int
token_key_sig_nid(const token_key *k)
{
	switch (k->type) {
	case PUBKEY_EC_P256:
		return NID_ecdsa_with_SHA256;
	case PUBKEY_EC_P384:
		return NID_ecdsa_with_SHA384;
	case PUBKEY_RSA_2048:
	case PUBKEY_RSA_3072:
	case PUBKEY_RSA_4096:
	case PUBKEY_RSA_OTHER:
		return NID_sha256WithRSAEncryption;
	case PUBKEY_ED25519:
		return NID_ED25519;
	}
	return NID_undef;
}

char *
token_key_uri(const token *t, const token_key *k)
{
	token_uri u;

	memset(&u, 0, sizeof u);
	u.token = (char *)t->label;
	u.object = k->label;
	u.type = TOKEN_URI_TYPE_PRIVATE;
	return token_uri_fmt(&u);
}

/* ------------------------------------------------------------------ */
/* Signing                                                              */

struct sign_req {
	token_key *k;
	CK_MECHANISM_TYPE mech;
	const uint8_t *data;
	size_t len;
	uint8_t raw[SIG_MAX];
	CK_ULONG rawlen;
};

static int
op_sign(token *t, const tsess *s, void *arg, CK_RV *crv)
{
	struct sign_req *r = arg;
	CK_MECHANISM m = { r->mech, NULL, 0 };
	CK_OBJECT_HANDLE h;
	CK_RV rv;
	int rc;

	if ((rc = key_handle(t, s, r->k, &h, crv)) != 0)
		return rc;
	if ((rv = t->f->C_SignInit(s->h, &m, h)) != CKR_OK) {
		*crv = rv;
		return rv_err(rv);
	}
	/*
	 * From here the operation must end on every path (SoftHSM2 keeps a
	 * pending C_SignInit across C_Logout). C_Sign with a buffer that
	 * holds any signature we accept ends it whatever it answers, except
	 * CKR_BUFFER_TOO_SMALL.
	 */
	r->rawlen = sizeof r->raw;
	rv = t->f->C_Sign(s->h, (CK_BYTE_PTR)r->data, (CK_ULONG)r->len,
	    r->raw, &r->rawlen);
	if (rv == CKR_BUFFER_TOO_SMALL) {
		/* PKCS#11 2.40 has no cancel: closing the session ends it. */
		(void)t->f->C_CloseSession(s->h);
		*crv = CKR_SESSION_CLOSED;
		return SF_EUNAVAIL;
	}
	if (rv != CKR_OK) {
		/*
		 * Whether the operation ended is the module's word against
		 * its own failure: close the session, so that nothing is left
		 * pending on it, and let the pool be rebuilt.
		 */
		(void)t->f->C_CloseSession(s->h);
		*crv = fault_class(rv) != FAULT_NONE ? rv : CKR_SESSION_CLOSED;
		return SF_EUNAVAIL;
	}
	return 0;
}

/* The token's raw r||s as a DER ECDSA-Sig-Value. */
static int
ecdsa_der(const uint8_t *raw, size_t rawlen, uint8_t *out, size_t *outlen)
{
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *s = NULL;
	unsigned char *p = out;
	size_t half = rawlen / 2;
	int n, rc = SF_ECRYPTO;

	if ((r = BN_bin2bn(raw, (int)half, NULL)) == NULL ||
	    (s = BN_bin2bn(raw + half, (int)half, NULL)) == NULL ||
	    (es = ECDSA_SIG_new()) == NULL || !ECDSA_SIG_set0(es, r, s))
		goto out;
	r = s = NULL;  /* transferred */
	if ((n = i2d_ECDSA_SIG(es, NULL)) <= 0)
		goto out;
	if ((size_t)n > *outlen) {
		rc = SF_EINVAL;
		goto out;
	}
	if (i2d_ECDSA_SIG(es, &p) != n)
		goto out;
	*outlen = (size_t)n;
	rc = 0;
out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	return rc;
}

int
token_sign(token *t, token_key *k, const uint8_t *tbs, size_t len,
    uint8_t *sig, size_t *siglen)
{
	struct sign_req r;
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t field = 0;
	int rc;

	if (t == NULL || k == NULL || tbs == NULL || sig == NULL ||
	    siglen == NULL)
		return SF_EINVAL;
	memset(&r, 0, sizeof r);
	r.k = k;
	r.data = tbs;
	r.len = len;
	switch (k->type) {
	case PUBKEY_EC_P256:
	case PUBKEY_EC_P384:
		field = k->type == PUBKEY_EC_P256 ? 32 : 48;
		if (EVP_Digest(tbs, len, md, &mdlen, field == 32 ? t->sha256 :
		    t->sha384, NULL) != 1) {
			log_openssl("token: digest");
			return SF_ECRYPTO;
		}
		r.mech = CKM_ECDSA;
		r.data = md;
		r.len = mdlen;
		break;
	case PUBKEY_RSA_2048:
	case PUBKEY_RSA_3072:
	case PUBKEY_RSA_4096:
	case PUBKEY_RSA_OTHER:
		r.mech = CKM_SHA256_RSA_PKCS;
		break;
	case PUBKEY_ED25519:
		r.mech = CKM_EDDSA;
		break;
	default:
		return SF_EKEYTYPE;
	}
	if ((rc = token_run(t, op_sign, &r, "sign with", k->label)) != 0)
		return rc;
	if (field) {
		if (r.rawlen != 2 * field) {
			log_warnx("token %s: key %s: ECDSA signature of %lu "
			    "bytes", t->label, k->label,
			    (unsigned long)r.rawlen);
			return SF_ECRYPTO;
		}
		return ecdsa_der(r.raw, r.rawlen, sig, siglen);
	}
	if (k->type == PUBKEY_ED25519 && r.rawlen != 64)
		return SF_ECRYPTO;
	if (r.rawlen > *siglen)
		return SF_EINVAL;
	memcpy(sig, r.raw, r.rawlen);
	*siglen = r.rawlen;
	return 0;
}
