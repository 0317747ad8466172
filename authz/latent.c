/*
 * latent.c - enrollments that may outlast their HTTP request (see
 * latent.h): a job per enrollment, run by a thread of its own through
 * enroll_device or renewal_renew, named before it starts, waited for at
 * most the request's time, its outcome kept for a while.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "csr.h"
#include "err.h"
#include "latent.h"
#include "leaf.h"
#include "log.h"
#include "renewal.h"
#include "util.h"

/* Finished jobs kept at most (the oldest go first). */
#define KEEP_MAX 10000

struct job {
	struct job *next;
	struct latent *l;
	int refs;                  /* its thread, and each waiting request */
	int done, rc, replayed;
	int64_t done_at;
	char why[512];
	char cn[DEVICE_ID_MAX + 1];
	uint8_t csr_sha256[32];
	char renews[64];           /* a renewal: the serial; "" */
	char eid[64];
	char key[160];
	/* The request, owned until the thread is done with it. */
	uint8_t *csr;
	size_t csr_len;
	char region[64];
	char *peer_cert;
	char *birth_cert;
	uint8_t *keysig;
	size_t keysig_len;
};

struct latent {
	authz_ctx *ctx;
	pthread_mutex_t lock;
	pthread_cond_t cond;       /* a job done (CLOCK_MONOTONIC) */
	struct job *jobs;          /* newest first */
	int running, max_running;
};

static void
job_free(struct job *j)
{
	if (j == NULL)
		return;
	free(j->csr);
	free(j->peer_cert);
	free(j->birth_cert);
	free(j->keysig);
	free(j);
}

/* Drop finished jobs nobody waits for that are too old or too many
 * (lock held). */
static void
prune(latent *l)
{
	struct job **pp = &l->jobs, *j;
	int64_t now = sf_now();
	size_t kept = 0;

	while ((j = *pp) != NULL) {
		if (j->done && j->refs == 0 && (now - j->done_at >
		    LATENT_KEEP_S || ++kept > KEEP_MAX)) {
			*pp = j->next;
			job_free(j);
			continue;
		}
		pp = &j->next;
	}
}

static void *
job_main(void *arg)
{
	struct job *j = arg;
	latent *l = j->l;
	registry_enrollment en;
	char why[512] = "";
	int rc, replayed = 0;

	memset(&en, 0, sizeof en);
	if (j->peer_cert) {
		renewal_req r;

		memset(&r, 0, sizeof r);
		r.csr = j->csr;
		r.csr_len = j->csr_len;
		r.idempotency_key = j->key;
		r.current_serial = "";
		r.current_key_signature = j->keysig;
		r.current_key_signature_len = j->keysig_len;
		r.peer_cert = j->peer_cert;
		rc = renewal_renew(l->ctx, &r, &en, &replayed, why, sizeof why);
	} else {
		enroll_req r;

		memset(&r, 0, sizeof r);
		r.csr = j->csr;
		r.csr_len = j->csr_len;
		r.idempotency_key = j->key;
		r.region = j->region;
		r.birth_cert_pem = j->birth_cert;
		r.birth_only = j->birth_cert != NULL;
		rc = enroll_device(&l->ctx->en, &r, &en, &replayed, why,
		    sizeof why);
	}
	pthread_mutex_lock(&l->lock);
	j->rc = rc;
	j->replayed = replayed;
	sf_strlcpy(j->why, why, sizeof j->why);
	/* A replay by CSR may name an earlier enrollment. */
	if (rc == 0)
		sf_strlcpy(j->eid, en.enrollment_id, sizeof j->eid);
	j->done = 1;
	j->done_at = sf_now();
	free(j->csr);
	free(j->peer_cert);
	free(j->birth_cert);
	free(j->keysig);
	j->csr = j->keysig = NULL;
	j->peer_cert = NULL;
	j->refs--;
	l->running--;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
	registry_enrollment_fini(&en);
	return NULL;
}

int
latent_new(authz_ctx *ctx, int max_running, latent **out)
{
	pthread_condattr_t ca;
	latent *l;

	*out = NULL;
	if ((l = calloc(1, sizeof *l)) == NULL)
		return SF_ENOMEM;
	l->ctx = ctx;
	l->max_running = max_running > 0 ? max_running : 64;
	pthread_mutex_init(&l->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &ca);
	pthread_condattr_destroy(&ca);
	*out = l;
	return 0;
}

void
latent_free(latent *l)
{
	struct job *j;

	if (l == NULL)
		return;
	pthread_mutex_lock(&l->lock);
	while (l->running > 0)
		pthread_cond_wait(&l->cond, &l->lock);
	while ((j = l->jobs) != NULL) {
		l->jobs = j->next;
		job_free(j);
	}
	pthread_mutex_unlock(&l->lock);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cond);
	free(l);
}

void
latent_result_fini(latent_result *r)
{
	if (r == NULL)
		return;
	registry_enrollment_fini(&r->en);
	memset(r, 0, sizeof *r);
}

/* A refusal before anything runs. */
static int
refuse(latent_result *out, int rc, const char *why)
{
	out->done = 1;
	out->rc = rc;
	sf_strlcpy(out->why, why, sizeof out->why);
	return 0;
}

/*
 * The idempotency key and enrollment id of a new job: the device's key,
 * else that of the enrollment the same CSR made within the window (or,
 * when that one had no key, its id), else a random key.
 */
static int
name_job(latent *l, const latent_req *r, const csr_info *ci,
    const char *renews, struct job *j)
{
	registry_enrollment en;
	uint8_t b[16];
	char hex[33];

	if (*j->key == '\0' && *r->idempotency_key)
		sf_strlcpy(j->key, r->idempotency_key, sizeof j->key);
	if (*j->key == '\0' && registry_enrollment_by_csr(l->ctx->reg, ci->cn,
	    ci->sha256, sf_now() - authz_conf_now(l->ctx)->idempotency_window,
	    &en) == 0) {
		if (strcmp(en.replaces_serial, renews) == 0) {
			sf_strlcpy(j->key, en.idempotency_key, sizeof j->key);
			if (*j->key == '\0')
				sf_strlcpy(j->eid, en.enrollment_id,
				    sizeof j->eid);
		}
		registry_enrollment_fini(&en);
		if (*j->eid)
			return 0;
	}
	if (*j->key == '\0') {
		if (RAND_bytes(b, sizeof b) != 1)
			return SF_ECRYPTO;
		sf_hex(b, sizeof b, hex);
		snprintf(j->key, sizeof j->key, "http-%s", hex);
	}
	/* A key enroll.c refuses is refused there, with its sentence. */
	return enroll_id_for(ci->cn, renews, j->key, j->eid);
}

/* A new job for r (not yet started); NULL: no memory. */
static struct job *
job_new(latent *l, const latent_req *r, const csr_info *ci,
    const char *renews)
{
	struct job *j = calloc(1, sizeof *j);

	if (j == NULL)
		return NULL;
	j->l = l;
	sf_strlcpy(j->cn, ci->cn, sizeof j->cn);
	memcpy(j->csr_sha256, ci->sha256, 32);
	sf_strlcpy(j->renews, renews, sizeof j->renews);
	sf_strlcpy(j->region, r->region, sizeof j->region);
	j->csr = malloc(r->csr_len);
	j->csr_len = r->csr_len;
	if (r->peer_cert)
		j->peer_cert = strdup(r->peer_cert);
	if (r->birth_cert)
		j->birth_cert = strdup(r->birth_cert);
	if (r->current_key_signature_len) {
		j->keysig = malloc(r->current_key_signature_len);
		j->keysig_len = r->current_key_signature_len;
	}
	if (j->csr == NULL || (r->peer_cert && j->peer_cert == NULL) ||
	    (r->birth_cert && j->birth_cert == NULL) ||
	    (j->keysig_len && j->keysig == NULL)) {
		job_free(j);
		return NULL;
	}
	memcpy(j->csr, r->csr, r->csr_len);
	if (j->keysig_len)
		memcpy(j->keysig, r->current_key_signature, j->keysig_len);
	return j;
}

/* The job of the same request (device, CSR bytes, renewal) (lock held). */
static struct job *
job_find(latent *l, const csr_info *ci, const char *renews)
{
	for (struct job *j = l->jobs; j; j = j->next)
		if (strcmp(j->cn, ci->cn) == 0 && strcmp(j->renews,
		    renews) == 0 && memcmp(j->csr_sha256, ci->sha256, 32) == 0)
			return j;
	return NULL;
}

/* Wait for j at most until deadline (lock held), then fill out. */
static void
job_wait(latent *l, struct job *j, int wait_ms, latent_result *out)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += wait_ms / 1000;
	ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (!j->done && pthread_cond_timedwait(&l->cond, &l->lock,
	    &ts) == 0)
		;
	out->done = j->done;
	out->rc = j->rc;
	out->replayed = j->replayed;
	sf_strlcpy(out->why, j->why, sizeof out->why);
	sf_strlcpy(out->enrollment_id, j->eid, sizeof out->enrollment_id);
	sf_strlcpy(out->idempotency_key, j->key, sizeof out->idempotency_key);
	j->refs--;
}

int
latent_run(latent *l, const latent_req *r, int wait_ms, latent_result *out)
{
	struct job *j = NULL, *old;
	csr_info ci;
	leaf_info lf;
	pthread_attr_t attr;
	pthread_t th;
	char why[512] = "", renews[64] = "";
	int rc;

	memset(out, 0, sizeof *out);
	memset(&ci, 0, sizeof ci);
	/* The CSR names the device; csr_parse is enroll's own check. */
	if ((rc = csr_parse(r->csr, r->csr_len,
	    authz_conf_now(l->ctx)->csr_max, &ci, why, sizeof why)) != 0)
		return refuse(out, rc, why);
	if (r->peer_cert) {
		if (leaf_read(r->peer_cert, &lf, why, sizeof why) != 0) {
			csr_info_fini(&ci);
			return refuse(out, SF_EPERM, "the TLS client certificate"
			    " is not a device certificate of ours");
		}
		sf_strlcpy(renews, lf.serial, sizeof renews);
		leaf_fini(&lf);
	}
	pthread_mutex_lock(&l->lock);
	prune(l);
	if ((old = job_find(l, &ci, renews)) != NULL && !old->done) {
		/* The same request is running: wait for it. */
		old->refs++;
		job_wait(l, old, wait_ms, out);
		goto done;
	}
	if (l->running >= l->max_running) {
		refuse(out, SF_ELIMIT, "too many enrollments in progress;"
		    " retry later");
		goto done;
	}
	if ((j = job_new(l, r, &ci, renews)) == NULL) {
		refuse(out, SF_ENOMEM, "out of memory");
		goto done;
	}
	/*
	 * A retry of an earlier request asks again under its key: one that
	 * succeeded gets its certificate back, and one whose certificate the
	 * signer issued but authz could not record (an orphan) gets that
	 * one from the signer, which knows the enrollment id.
	 */
	if (old && !*r->idempotency_key)
		sf_strlcpy(j->key, old->key, sizeof j->key);
	pthread_mutex_unlock(&l->lock);
	rc = name_job(l, r, &ci, renews, j);
	pthread_mutex_lock(&l->lock);
	if (rc != 0) {
		refuse(out, rc, "cannot name the enrollment");
		job_free(j);
		goto done;
	}
	j->refs = 2;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&th, &attr, job_main, j);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		refuse(out, SF_EUNAVAIL, "cannot start the enrollment; retry"
		    " later");
		job_free(j);
		goto done;
	}
	l->running++;
	j->next = l->jobs;
	l->jobs = j;
	job_wait(l, j, wait_ms, out);
done:
	pthread_mutex_unlock(&l->lock);
	csr_info_fini(&ci);
	if (out->done && out->rc == 0 && (rc = registry_enrollment_get(
	    l->ctx->reg, out->enrollment_id, &out->en)) != 0) {
		out->rc = rc == SF_ENOTFOUND ? SF_EINTERNAL : rc;
		sf_strlcpy(out->why, "the enrollment could not be read back",
		    sizeof out->why);
	}
	return 0;
}

int
latent_lookup(latent *l, const char *enrollment_id, latent_result *out)
{
	int rc = SF_ENOTFOUND;

	memset(out, 0, sizeof *out);
	pthread_mutex_lock(&l->lock);
	prune(l);
	for (struct job *j = l->jobs; j; j = j->next)
		if (strcmp(j->eid, enrollment_id) == 0) {
			out->done = j->done;
			out->rc = j->rc;
			out->replayed = j->replayed;
			sf_strlcpy(out->why, j->why, sizeof out->why);
			sf_strlcpy(out->enrollment_id, j->eid,
			    sizeof out->enrollment_id);
			sf_strlcpy(out->idempotency_key, j->key,
			    sizeof out->idempotency_key);
			rc = 0;
			break;
		}
	pthread_mutex_unlock(&l->lock);
	return rc;
}
