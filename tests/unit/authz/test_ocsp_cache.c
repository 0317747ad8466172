/*
 * Unit tests of authz/ocsp_cache.c: a kept response comes back byte for
 * byte until its nextUpdate and not after; what is already stale is not
 * kept; a key kept again replaces the old response; past its size the
 * oldest entry goes; a mirrored revocation drops the responses about that
 * serial (whole serials, any case) and no other; a cache of size 0 keeps
 * nothing; NULL is harmless; threads hammering a small cache leave it
 * within its bound.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ocsp_cache.h"
#include "../../tap.h"

#define NOW 1800000000

static int
put(ocsp_cache *c, const char *key, const char *serials, const char *der,
    int64_t next)
{
	return ocsp_cache_put(c, (const uint8_t *)key, strlen(key), serials,
	    (const uint8_t *)der, strlen(der), next, NOW);
}

/* The response kept for key at now as a string ("" if none), in a buffer
 * of the calling thread's (test_threads calls it from four). */
static const char *
get(ocsp_cache *c, const char *key, int64_t now, int64_t *next)
{
	static __thread char buf[64];
	uint8_t *der = NULL;
	size_t len = 0;
	int64_t nu = 0;

	buf[0] = '\0';
	if (ocsp_cache_get(c, (const uint8_t *)key, strlen(key), now, &der,
	    &len, &nu) == 0 && len < sizeof buf) {
		memcpy(buf, der, len);
		buf[len] = '\0';
	}
	free(der);
	if (next)
		*next = nu;
	return buf;
}

static void
test_keep_and_expire(void)
{
	ocsp_cache *c = ocsp_cache_new(10);
	int64_t next = 0;

	is_int(put(c, "k1", "AA", "resp-1", NOW + 100), 0, "put");
	is_str(get(c, "k1", NOW + 1, &next), "resp-1", "the same bytes back");
	is_int(next, NOW + 100, "with its nextUpdate");
	is_str(get(c, "k2", NOW + 1, NULL), "", "another key: nothing");
	is_str(get(c, "k1", NOW + 99, NULL), "resp-1", "still there a second"
	    " before nextUpdate");
	is_str(get(c, "k1", NOW + 100, NULL), "", "gone at nextUpdate");
	is_int(ocsp_cache_count(c), 0, "and no longer counted");
	is_int(put(c, "k3", "AA", "stale", NOW), 0, "put of a stale response");
	is_str(get(c, "k3", NOW - 10, NULL), "", "is not kept");
	put(c, "k1", "AA", "old", NOW + 100);
	put(c, "k1", "AA", "new", NOW + 200);
	is_str(get(c, "k1", NOW, &next), "new", "a key put again: the new"
	    " response");
	is_int(next, NOW + 200, "with its nextUpdate");
	is_int(ocsp_cache_count(c), 1, "kept once");
	ocsp_cache_free(c);
}

static void
test_bound(void)
{
	ocsp_cache *c = ocsp_cache_new(3);
	char key[16], der[16];

	for (int i = 0; i < 4; i++) {
		snprintf(key, sizeof key, "k%d", i);
		snprintf(der, sizeof der, "r%d", i);
		put(c, key, "AA", der, NOW + 100);
	}
	is_int(ocsp_cache_count(c), 3, "a cache of 3 keeps 3");
	is_str(get(c, "k0", NOW, NULL), "", "the oldest went");
	is_str(get(c, "k3", NOW, NULL), "r3", "the newest stays");
	is_str(get(c, "k1", NOW, NULL), "r1", "and the others");
	ocsp_cache_free(c);
	c = ocsp_cache_new(0);
	is_int(put(c, "k", "AA", "r", NOW + 100), 0, "size 0: put succeeds");
	is_str(get(c, "k", NOW, NULL), "", "and keeps nothing");
	ocsp_cache_free(c);
	is_int(put(NULL, "k", "AA", "r", NOW + 100), 0, "NULL: put is harmless");
	is_str(get(NULL, "k", NOW, NULL), "", "get finds nothing");
	is_int(ocsp_cache_forget(NULL, "AA"), 0, "forget drops nothing");
	ocsp_cache_free(NULL);
	ok(1, "ocsp_cache_free(NULL) is harmless");
}

static void
test_forget(void)
{
	ocsp_cache *c = ocsp_cache_new(10);

	put(c, "one", "0A1B", "r1", NOW + 100);
	put(c, "two", "0A1B,2C3D", "r2", NOW + 100);
	put(c, "three", "2C3D", "r3", NOW + 100);
	put(c, "four", "0A1BFF", "r4", NOW + 100);
	is_int(ocsp_cache_forget(c, "0a1b"), 2, "forget a serial (lower case):"
	    " the two responses about it");
	is_str(get(c, "one", NOW, NULL), "", "the one-certificate response"
	    " went");
	is_str(get(c, "two", NOW, NULL), "", "the two-certificate one too");
	is_str(get(c, "three", NOW, NULL), "r3", "another serial's stays");
	is_str(get(c, "four", NOW, NULL), "r4", "a longer serial starting the"
	    " same stays");
	is_int(ocsp_cache_forget(c, "2C"), 0, "part of a serial drops nothing");
	is_int(ocsp_cache_forget(c, ""), 0, "an empty serial drops nothing");
	ocsp_cache_free(c);
}

static void *
hammer(void *arg)
{
	ocsp_cache *c = arg;
	char key[16];

	for (int i = 0; i < 20000; i++) {
		snprintf(key, sizeof key, "k%d", rand() % 500);
		if (i % 3)
			get(c, key, NOW, NULL);
		else
			put(c, key, "AA", "r", NOW + 100);
		if (i % 1000 == 0)
			ocsp_cache_forget(c, "AA");
	}
	return NULL;
}

static void
test_threads(void)
{
	ocsp_cache *c = ocsp_cache_new(50);
	pthread_t t[4];

	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, hammer, c);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	ok(ocsp_cache_count(c) <= 50, "4 threads, 80,000 operations: within"
	    " the bound (%zu)", ocsp_cache_count(c));
	ocsp_cache_free(c);
}

int
main(void)
{
	test_keep_and_expire();
	test_bound();
	test_forget();
	test_threads();
	return tap_done();
}
