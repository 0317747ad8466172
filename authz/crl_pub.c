/*
 * crl_pub.c - authz's CRL publisher (see crl_pub.h): the signer's CRLs
 * fetched when their number changes, held in memory for GET /crl/<file>
 * and written atomically into crl_dir. authz holds no CA key: it only
 * passes on what the signer signed.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "crl_pub.h"
#include "err.h"
#include "log.h"
#include "util.h"

#define FILE_MAX (64 << 20)
#define NAME_MAX_LEN 200

/* One published file. */
struct pfile {
	char *name;
	uint8_t *data;
	size_t len;
	int64_t next_update;
	char *owner;            /* "<ca> <generation>"; NULL: crl_dir at start */
	int rank;               /* the owner's place in the index (newer: higher) */
	int stale_logged;
};

/* A CA whose CRLs were fetched: their number, and its complete CRL in PEM
 * for crls.pem (kept here: another CA may hold its file name). */
struct pca {
	char *owner;
	uint64_t number;
	int rank;
	uint8_t *pem;
	size_t pem_len;
	int64_t next_update;
};

struct crl_pub {
	sclient *sc;
	char *dir;
	int refresh_s;
	pthread_mutex_t lock;   /* files, cas */
	struct pfile *files;
	size_t nfiles;
	struct pca *cas;
	size_t ncas;
	pthread_mutex_t round;  /* one round at a time; signer_down */
	int signer_down;
	pthread_mutex_t wlock;  /* stop, wake */
	pthread_cond_t wake;
	int stop, started;
	pthread_t thread;
};

static void
pfile_fini(struct pfile *f)
{
	free(f->name);
	free(f->data);
	free(f->owner);
	memset(f, 0, sizeof *f);
}

static int
ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);

	return n >= t && strcmp(s + n - t, tail) == 0;
}

/* A plain file name: 1-200 of [A-Za-z0-9._-], not starting with a dot. */
static int
name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > NAME_MAX_LEN || s[0] == '.')
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._-") == n;
}

/* The DER file name of a CA's shard (crl_pub.h), malloc'd. */
static char *
file_name(const char *ca_name, unsigned shard, const char *dp)
{
	const char *slash = strrchr(dp, '/'), *base = slash ? slash + 1 : dp;

	if (name_ok(base) && ends_with(base, ".crl"))
		return strdup(base);
	return shard ? sf_aprintf("%s-%u.crl", ca_name, shard) :
	    sf_aprintf("%s.crl", ca_name);
}

static int64_t
time_unix(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

/* The earliest nextUpdate of the CRLs in data (DER, or PEM with one or
 * more); 0 if none parses. */
static int64_t
next_update_of(const uint8_t *data, size_t len)
{
	const unsigned char *p = data;
	X509_CRL *crl;
	int64_t nu = 0, t;
	BIO *b;

	if ((crl = d2i_X509_CRL(NULL, &p, (long)len)) != NULL) {
		nu = time_unix(X509_CRL_get0_nextUpdate(crl));
		X509_CRL_free(crl);
		return nu;
	}
	if ((b = BIO_new_mem_buf(data, (int)len)) == NULL)
		return 0;
	while ((crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) != NULL) {
		t = time_unix(X509_CRL_get0_nextUpdate(crl));
		if (t && (nu == 0 || t < nu))
			nu = t;
		X509_CRL_free(crl);
	}
	BIO_free(b);
	ERR_clear_error();
	return nu;
}

/* DER -> PEM ("X509 CRL"), malloc'd. */
static int
to_pem(const uint8_t *der, size_t len, uint8_t **out, size_t *outlen)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long n;
	int rc = SF_ENOMEM;

	*out = NULL;
	if (b && PEM_write_bio(b, PEM_STRING_X509_CRL, "", der, (long)len) &&
	    (n = BIO_get_mem_data(b, &data)) > 0 &&
	    (*out = malloc((size_t)n)) != NULL) {
		memcpy(*out, data, (size_t)n);
		*outlen = (size_t)n;
		rc = 0;
	}
	BIO_free(b);
	return rc;
}

/* ---- the published set (p->lock held) ---- */

static struct pfile *
find_file(crl_pub *p, const char *name)
{
	for (size_t i = 0; i < p->nfiles; i++)
		if (strcmp(p->files[i].name, name) == 0)
			return &p->files[i];
	return NULL;
}

static void
remove_file(crl_pub *p, struct pfile *f)
{
	pfile_fini(f);
	*f = p->files[--p->nfiles];
}

static int
append_file(crl_pub *p, struct pfile *f)
{
	struct pfile *nv = realloc(p->files, (p->nfiles + 1) * sizeof *nv);

	if (nv == NULL)
		return SF_ENOMEM;
	p->files = nv;
	p->files[p->nfiles++] = *f;
	memset(f, 0, sizeof *f);  /* transferred */
	return 0;
}

static struct pca *
find_ca(crl_pub *p, const char *owner)
{
	for (size_t i = 0; i < p->ncas; i++)
		if (strcmp(p->cas[i].owner, owner) == 0)
			return &p->cas[i];
	return NULL;
}

/* Record what was fetched for owner: its number and a copy of its
 * complete CRL in PEM (f). */
static int
set_fetched(crl_pub *p, const char *owner, int rank, uint64_t number,
    const struct pfile *f)
{
	struct pca *c = find_ca(p, owner), *nv;
	uint8_t *pem;

	if ((pem = malloc(f->len ? f->len : 1)) == NULL)
		return SF_ENOMEM;
	memcpy(pem, f->data, f->len);
	if (c == NULL) {
		if ((nv = realloc(p->cas, (p->ncas + 1) * sizeof *nv)) == NULL ||
		    (nv[p->ncas].owner = strdup(owner)) == NULL) {
			if (nv)
				p->cas = nv;
			free(pem);
			return SF_ENOMEM;
		}
		p->cas = nv;
		c = &p->cas[p->ncas++];
		c->pem = NULL;
	}
	free(c->pem);
	c->pem = pem;
	c->pem_len = f->len;
	c->next_update = f->next_update;
	c->number = number;
	c->rank = rank;
	return 0;
}

/* ---- crl_dir ---- */

static int
write_file(crl_pub *p, const struct pfile *f)
{
	char *path;
	int rc;

	if (p->dir == NULL)
		return 0;
	if ((path = sf_aprintf("%s/%s", p->dir, f->name)) == NULL)
		return SF_ENOMEM;
	if ((rc = sf_write_file(path, f->data, f->len, 0644)) != 0)
		log_warnx("CRLs: cannot write %s: %s", path, sf_strerror(rc));
	free(path);
	return rc;
}

/* What crl_dir holds from a previous run, served until the signer
 * answers. */
static void
load_dir(crl_pub *p)
{
	struct pfile f;
	struct dirent *d;
	size_t loaded = 0;
	char *path;
	DIR *dh;

	if ((dh = opendir(p->dir)) == NULL)
		return;
	while ((d = readdir(dh)) != NULL) {
		if (!name_ok(d->d_name) || (!ends_with(d->d_name, ".crl") &&
		    !ends_with(d->d_name, ".pem")))
			continue;
		memset(&f, 0, sizeof f);
		f.rank = -1;
		if ((path = sf_aprintf("%s/%s", p->dir, d->d_name)) == NULL ||
		    sf_read_file(path, FILE_MAX, &f.data, &f.len) != 0 ||
		    (f.next_update = next_update_of(f.data, f.len)) == 0 ||
		    (f.name = strdup(d->d_name)) == NULL ||
		    append_file(p, &f) != 0)
			pfile_fini(&f);
		else
			loaded++;
		free(path);
	}
	closedir(dh);
	if (loaded)
		log_info("CRLs: %zu files from %s served until the signer"
		    " answers", loaded, p->dir);
}

/* ---- a round ---- */

/* 1 if name is published by a newer CA than owner (rank). Another CA
 * at the same name is a misconfiguration, logged. */
static int
held_by_newer(crl_pub *p, const char *name, int rank, const char *owner)
{
	struct pfile *f;
	int held = 0;

	pthread_mutex_lock(&p->lock);
	f = find_file(p, name);
	if (f && f->owner && strcmp(f->owner, owner) != 0) {
		held = f->rank > rank;
		log_warnx("CRLs: %s is the distribution point of CA %s and of"
		    " CA %s; serving the newer one's (%s)", name, owner,
		    f->owner, held ? f->owner : owner);
	}
	pthread_mutex_unlock(&p->lock);
	return held;
}

/*
 * Write v[0..n) (taken; v[1] is the complete CRL in PEM) into crl_dir,
 * then let them replace what owner published, and record its number. A
 * name held by a newer CA stays the newer one's. The files are written
 * outside the lock that serving takes: each is synced to disk.
 */
static int
install(crl_pub *p, const char *owner, int rank, uint64_t number,
    struct pfile *v, size_t n)
{
	struct pfile *old;
	int rc;

	pthread_mutex_lock(&p->lock);
	rc = set_fetched(p, owner, rank, 0, &v[1]);
	pthread_mutex_unlock(&p->lock);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if (held_by_newer(p, v[i].name, rank, owner))
			pfile_fini(&v[i]);
		else if (write_file(p, &v[i]) != 0)
			rc = SF_EIO;
	}
	pthread_mutex_lock(&p->lock);
	for (size_t i = p->nfiles; i-- > 0;)
		if (p->files[i].owner && strcmp(p->files[i].owner, owner) == 0)
			remove_file(p, &p->files[i]);
	for (size_t i = 0; i < n; i++) {
		if (v[i].name == NULL)
			continue;
		if ((old = find_file(p, v[i].name)) != NULL)
			remove_file(p, old);
		if (append_file(p, &v[i]) != 0)
			rc = SF_ENOMEM;
	}
	/* Without its number the CA is fetched (and written) again next
	 * round. */
	if (rc == 0)
		find_ca(p, owner)->number = number;
	pthread_mutex_unlock(&p->lock);
	return rc;
}

/* Fetch every CRL of e (its shard 0, then its partitions) and install
 * them. */
static int
fetch_ca(crl_pub *p, const sclient_crl_entry *e, int rank)
{
	unsigned n = e->shards > 1 ? e->shards + 1 : 1;
	struct pfile *v = calloc(2 * (size_t)n, sizeof *v);
	char *owner = sf_aprintf("%s %s", e->ca_name, e->generation);
	char why[256] = "";
	sclient_crl crl;
	int rc = SF_ENOMEM;

	if (v == NULL || owner == NULL)
		goto out;
	for (unsigned k = 0; k < n; k++) {
		struct pfile *der = &v[2 * k], *pem = &v[2 * k + 1];

		if ((rc = sclient_get_crl(p->sc, e->ca_name, e->generation, k,
		    &crl, why, sizeof why)) != 0) {
			log_warnx("CRLs: CA %s shard %u: %s; trying again in"
			    " %d s", owner, k, why, p->refresh_s);
			goto out;
		}
		der->name = file_name(e->ca_name, k, crl.distribution_point);
		der->data = crl.der;
		der->len = crl.der_len;
		crl.der = NULL;  /* transferred */
		der->next_update = pem->next_update = crl.next_update;
		der->rank = pem->rank = rank;
		sclient_crl_fini(&crl);
		rc = SF_ENOMEM;
		if (der->name == NULL || (der->owner = strdup(owner)) == NULL ||
		    (pem->owner = strdup(owner)) == NULL ||
		    (pem->name = sf_aprintf("%s.pem", der->name)) == NULL ||
		    to_pem(der->data, der->len, &pem->data, &pem->len) != 0)
			goto out;
	}
	if ((rc = install(p, owner, rank, e->crl_number, v, 2 * (size_t)n))
	    == 0)
		log_info("CRLs: CA %s: CRL %llu, %u files", owner,
		    (unsigned long long)e->crl_number, 2 * n);
out:
	for (size_t i = 0; v && i < 2 * (size_t)n; i++)
		pfile_fini(&v[i]);
	free(v);
	free(owner);
	return rc;
}

/* crls.pem, every CA's complete CRL (oldest CA first), into *b; b->data
 * NULL when there is none or it is what is published already. */
static int
make_bundle(crl_pub *p, struct pfile *b)
{
	struct pfile *old;
	size_t len = 0;
	int max_rank = -1;

	memset(b, 0, sizeof *b);
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < p->ncas; i++) {
		len += p->cas[i].pem_len;
		if (p->cas[i].rank > max_rank)
			max_rank = p->cas[i].rank;
	}
	if (len == 0 || (b->data = malloc(len)) == NULL) {
		pthread_mutex_unlock(&p->lock);
		return len == 0 ? 0 : SF_ENOMEM;
	}
	for (int r = 0; r <= max_rank; r++)
		for (size_t i = 0; i < p->ncas; i++) {
			const struct pca *c = &p->cas[i];

			if (c->rank != r)
				continue;
			memcpy(b->data + b->len, c->pem, c->pem_len);
			b->len += c->pem_len;
			if (b->next_update == 0 || c->next_update < b->next_update)
				b->next_update = c->next_update;
		}
	b->rank = max_rank + 1;
	old = find_file(p, CRL_PUB_BUNDLE);
	if (old && old->len == b->len && memcmp(old->data, b->data,
	    b->len) == 0)
		pfile_fini(b);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

/* crls.pem written (when its content changes) and published. */
static int
update_bundle(crl_pub *p)
{
	struct pfile b, *old;
	int rc;

	if ((rc = make_bundle(p, &b)) != 0 || b.data == NULL)
		return rc;
	if ((b.name = strdup(CRL_PUB_BUNDLE)) == NULL) {
		pfile_fini(&b);
		return SF_ENOMEM;
	}
	if (write_file(p, &b) != 0)
		rc = SF_EIO;
	pthread_mutex_lock(&p->lock);
	if ((old = find_file(p, CRL_PUB_BUNDLE)) != NULL)
		remove_file(p, old);
	if (append_file(p, &b) != 0)
		rc = SF_ENOMEM;
	pthread_mutex_unlock(&p->lock);
	pfile_fini(&b);
	return rc;
}

/* Say once per file that it is served past its nextUpdate. */
static void
check_stale(crl_pub *p)
{
	int64_t now = sf_now();

	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < p->nfiles; i++) {
		struct pfile *f = &p->files[i];

		if (f->next_update >= now || f->stale_logged)
			continue;
		log_warnx("CRLs: %s is past its nextUpdate (%lld s ago) and"
		    " still served: the signer has no newer one for us yet",
		    f->name, (long long)(now - f->next_update));
		f->stale_logged = 1;
	}
	pthread_mutex_unlock(&p->lock);
}

/* The number fetched for e's CA, or 0 when none was. */
static uint64_t
fetched(crl_pub *p, const sclient_crl_entry *e)
{
	char *owner = sf_aprintf("%s %s", e->ca_name, e->generation);
	struct pca *c;
	uint64_t n = 0;

	if (owner == NULL)
		return 0;
	pthread_mutex_lock(&p->lock);
	if ((c = find_ca(p, owner)) != NULL)
		n = c->number;
	pthread_mutex_unlock(&p->lock);
	free(owner);
	return n;
}

int
crl_pub_refresh(crl_pub *p)
{
	sclient_crl_entry *idx = NULL;
	size_t n = 0;
	char why[256] = "";
	int rc, first = 0;

	pthread_mutex_lock(&p->round);
	if ((rc = sclient_crl_index(p->sc, &idx, &n, why, sizeof why)) != 0) {
		if (!p->signer_down)
			log_warnx("CRLs: no index from the signer (%s); serving"
			    " the CRLs fetched before", why);
		p->signer_down = 1;
		first = rc;
		goto out;
	}
	if (p->signer_down)
		log_info("CRLs: the signer answers again");
	p->signer_down = 0;
	for (size_t i = 0; i < n; i++)
		if (fetched(p, &idx[i]) != idx[i].crl_number &&
		    (rc = fetch_ca(p, &idx[i], (int)i)) != 0 && first == 0)
			first = rc;
	/* crls.pem only from a complete set: never one that lost a CA. */
	if (first == 0)
		first = update_bundle(p);
out:
	check_stale(p);
	sclient_crl_index_free(idx, n);
	pthread_mutex_unlock(&p->round);
	return first;
}

/* ---- the thread ---- */

static void *
run(void *arg)
{
	crl_pub *p = arg;
	struct timespec ts;

	pthread_mutex_lock(&p->wlock);
	while (!p->stop) {
		pthread_mutex_unlock(&p->wlock);
		crl_pub_refresh(p);
		pthread_mutex_lock(&p->wlock);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += p->refresh_s;
		while (!p->stop && pthread_cond_timedwait(&p->wake, &p->wlock,
		    &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&p->wlock);
	return NULL;
}

int
crl_pub_new(sclient *sc, const char *dir, int refresh_s, crl_pub **out,
    char *why, size_t whylen)
{
	pthread_condattr_t ca;
	crl_pub *p;

	*out = NULL;
	if ((p = calloc(1, sizeof *p)) == NULL)
		return SF_ENOMEM;
	p->sc = sc;
	p->refresh_s = refresh_s > 0 ? refresh_s : 5;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->round, NULL);
	pthread_mutex_init(&p->wlock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (dir) {
		if ((p->dir = strdup(dir)) == NULL) {
			crl_pub_free(p);
			return SF_ENOMEM;
		}
		if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
			sf_why(why, whylen, "[http] crl_dir %s cannot be made:"
			    " %s", dir, strerror(errno));
			crl_pub_free(p);
			return SF_EIO;
		}
		load_dir(p);
	}
	*out = p;
	return 0;
}

int
crl_pub_start(crl_pub *p)
{
	if (pthread_create(&p->thread, NULL, run, p) != 0)
		return SF_EINTERNAL;
	p->started = 1;
	return 0;
}

void
crl_pub_free(crl_pub *p)
{
	if (p == NULL)
		return;
	if (p->started) {
		pthread_mutex_lock(&p->wlock);
		p->stop = 1;
		pthread_cond_signal(&p->wake);
		pthread_mutex_unlock(&p->wlock);
		pthread_join(p->thread, NULL);
	}
	for (size_t i = 0; i < p->nfiles; i++)
		pfile_fini(&p->files[i]);
	free(p->files);
	for (size_t i = 0; i < p->ncas; i++) {
		free(p->cas[i].owner);
		free(p->cas[i].pem);
	}
	free(p->cas);
	free(p->dir);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->wlock);
	pthread_mutex_destroy(&p->round);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* ---- serving ---- */

int
crl_pub_get(crl_pub *p, const char *name, uint8_t **data, size_t *len,
    int64_t *next_update)
{
	struct pfile *f;
	int rc = SF_ENOTFOUND;

	*data = NULL;
	*len = 0;
	pthread_mutex_lock(&p->lock);
	if ((f = find_file(p, name)) != NULL) {
		rc = SF_ENOMEM;
		if ((*data = malloc(f->len ? f->len : 1)) != NULL) {
			memcpy(*data, f->data, f->len);
			*len = f->len;
			*next_update = f->next_update;
			rc = 0;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

int
crl_pub_http(const http_req *rq, http_resp *rs, void *arg)
{
	const char *name = http_req_path(rq) + strlen("/crl/");
	int64_t nu = 0, now = sf_now();
	int rc;

	if (!name_ok(name) || (rc = crl_pub_get(arg, name, &rs->body, &rs->len,
	    &nu)) == SF_ENOTFOUND)
		return http_resp_text(rs, 404, "no CRL named \"%.*s\"\n",
		    NAME_MAX_LEN, name);
	if (rc != 0)
		return rc;
	rs->status = 200;
	rs->content_type = ends_with(name, ".pem") ?
	    "application/x-pem-file" : "application/pkix-crl";
	/* Caches keep it until the next one is due, not after. */
	if (nu > now)
		rs->max_age = nu - now;
	else
		http_resp_header(rs, "Cache-Control", "no-cache");
	return 0;
}
