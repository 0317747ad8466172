/*
 * ocsp_cache.c - OCSP responses kept in memory (see ocsp_cache.h): a hash
 * table of chains over SHA-256(secret || key), and a list in insertion
 * order from which the oldest entry is evicted when the cache is full.
 * One mutex; a hit copies the response out under it.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "err.h"
#include "ocsp_cache.h"

struct entry {
	uint8_t id[32];             /* SHA-256(secret || key) */
	char *serials;              /* ",A1B2,C3D4," */
	uint8_t *der;
	size_t len;
	int64_t next_update;
	struct entry *chain;        /* same bucket */
	struct entry *older, *newer;
};

struct ocsp_cache {
	pthread_mutex_t lock;
	uint8_t secret[32];
	struct entry **buckets;
	size_t mask;                /* buckets - 1 */
	size_t n, max;
	struct entry *oldest, *newest;
};

ocsp_cache *
ocsp_cache_new(size_t max_entries)
{
	ocsp_cache *c = calloc(1, sizeof *c);
	size_t nb = 16;

	if (c == NULL)
		return NULL;
	while (nb < max_entries && nb < ((size_t)1 << 24))
		nb <<= 1;
	if ((c->buckets = calloc(nb, sizeof *c->buckets)) == NULL ||
	    RAND_bytes(c->secret, sizeof c->secret) != 1) {
		free(c->buckets);
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	c->mask = nb - 1;
	c->max = max_entries;
	return c;
}

static void
entry_free(struct entry *e)
{
	if (e == NULL)
		return;
	free(e->serials);
	free(e->der);
	free(e);
}

void
ocsp_cache_free(ocsp_cache *c)
{
	struct entry *e, *next;

	if (c == NULL)
		return;
	for (e = c->oldest; e; e = next) {
		next = e->newer;
		entry_free(e);
	}
	free(c->buckets);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static int
entry_id(const ocsp_cache *c, const uint8_t *key, size_t keylen,
    uint8_t id[32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
	    EVP_DigestUpdate(md, c->secret, sizeof c->secret) &&
	    EVP_DigestUpdate(md, key, keylen) &&
	    EVP_DigestFinal_ex(md, id, NULL);

	EVP_MD_CTX_free(md);
	return ok ? 0 : SF_ENOMEM;
}

static struct entry **
slot(ocsp_cache *c, const uint8_t id[32])
{
	size_t h;

	memcpy(&h, id, sizeof h);
	return &c->buckets[h & c->mask];
}

/* Take e out of its chain and the age list (c->lock held); free it. */
static void
drop(ocsp_cache *c, struct entry *e)
{
	struct entry **pp = slot(c, e->id);

	while (*pp && *pp != e)
		pp = &(*pp)->chain;
	if (*pp)
		*pp = e->chain;
	if (e->older)
		e->older->newer = e->newer;
	else
		c->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		c->newest = e->older;
	c->n--;
	entry_free(e);
}

static struct entry *
find(ocsp_cache *c, const uint8_t id[32])
{
	struct entry *e;

	for (e = *slot(c, id); e; e = e->chain)
		if (memcmp(e->id, id, sizeof e->id) == 0)
			return e;
	return NULL;
}

int
ocsp_cache_get(ocsp_cache *c, const uint8_t *key, size_t keylen,
    int64_t now, uint8_t **der, size_t *len, int64_t *next_update)
{
	uint8_t id[32];
	struct entry *e;
	int rc = SF_ENOTFOUND;

	*der = NULL;
	*len = 0;
	*next_update = 0;
	if (c == NULL || c->max == 0 || entry_id(c, key, keylen, id) != 0)
		return SF_ENOTFOUND;
	pthread_mutex_lock(&c->lock);
	if ((e = find(c, id)) != NULL && e->next_update <= now) {
		drop(c, e);
		e = NULL;
	}
	if (e && (*der = malloc(e->len)) != NULL) {
		memcpy(*der, e->der, e->len);
		*len = e->len;
		*next_update = e->next_update;
		rc = 0;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int
ocsp_cache_put(ocsp_cache *c, const uint8_t *key, size_t keylen,
    const char *serials, const uint8_t *der, size_t len, int64_t next_update,
    int64_t now)
{
	struct entry *e, *old;
	struct entry **sl;

	if (c == NULL || c->max == 0 || next_update <= now)
		return 0;
	if ((e = calloc(1, sizeof *e)) == NULL ||
	    entry_id(c, key, keylen, e->id) != 0 ||
	    (e->serials = malloc(strlen(serials) + 3)) == NULL ||
	    (e->der = malloc(len ? len : 1)) == NULL) {
		entry_free(e);
		return SF_ENOMEM;
	}
	/* ",A,B," so that forget matches whole serials. */
	strcpy(e->serials, ",");
	strcat(e->serials, serials);
	strcat(e->serials, ",");
	memcpy(e->der, der, len);
	e->len = len;
	e->next_update = next_update;
	pthread_mutex_lock(&c->lock);
	if ((old = find(c, e->id)) != NULL)
		drop(c, old);
	while (c->n >= c->max && c->oldest)
		drop(c, c->oldest);
	sl = slot(c, e->id);
	e->chain = *sl;
	*sl = e;
	e->older = c->newest;
	if (c->newest)
		c->newest->newer = e;
	else
		c->oldest = e;
	c->newest = e;
	c->n++;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

size_t
ocsp_cache_forget(ocsp_cache *c, const char *serial)
{
	struct entry *e, *next;
	char *pat;
	size_t n = 0;

	if (c == NULL || serial == NULL || *serial == '\0' ||
	    (pat = malloc(strlen(serial) + 3)) == NULL)
		return 0;
	pat[0] = ',';
	for (size_t i = 0; serial[i]; i++)
		pat[i + 1] = (char)toupper((unsigned char)serial[i]);
	strcpy(pat + strlen(serial) + 1, ",");
	pthread_mutex_lock(&c->lock);
	for (e = c->oldest; e; e = next) {
		next = e->newer;
		if (strstr(e->serials, pat) != NULL) {
			drop(c, e);
			n++;
		}
	}
	pthread_mutex_unlock(&c->lock);
	free(pat);
	return n;
}

size_t
ocsp_cache_count(ocsp_cache *c)
{
	size_t n;

	if (c == NULL)
		return 0;
	pthread_mutex_lock(&c->lock);
	n = c->n;
	pthread_mutex_unlock(&c->lock);
	return n;
}
