/*
 * token_session.c - the token's PIN, slot and session pool, and the pool's
 * repair after a fault (token.h; the key operations are in token.c, what
 * both share in token_int.h).
 *
 * The module is loaded "managed" by p11-kit: p11-kit initialises it with
 * CKF_OS_LOCKING_OK (SoftHSM2 turns its locks off when C_Initialize gets
 * NULL) and reference-counts C_Initialize/C_Finalize between users of the
 * same module in this process.
 *
 * Sessions. A fixed pool of read-write sessions, all opened at once and
 * logged in once (login state belongs to the application, not the session).
 * An operation takes one session, runs to its end on it and gives it back.
 *
 * Faults. When a call answers with a session/login/handle error or a
 * device error, the pool is marked as needing repair. The next taker
 * waits until every session is back (nobody may be inside the module
 * while it is re-initialised), repairs (re-open and re-login, plus
 * C_Finalize/C_Initialize and a new slot lookup for device errors) and
 * bumps the generation counter. Object handles may differ after a repair,
 * so each token_key remembers the generation its handle belongs to and
 * looks itself up again (by CKA_LABEL and CKA_ID) when it is stale. An
 * operation is retried once after a fault; every wait has a deadline.
 *
 * Login state belongs to the process: two token objects on one token share
 * it (the second C_Login answers "already logged in", and closing either
 * logs both out, which the other then repairs).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

#include "err.h"
#include "log.h"
#include "token.h"
#include "token_int.h"
#include "token_uri.h"
#include "util.h"

#define DEFAULT_SESSIONS 4
#define MAX_SESSIONS 64
#define PIN_MAX 256            /* SoftHSM2 allows 4-255 characters */
#define PIN_PAGE 4096          /* the PIN lives alone in one locked page */
#define WAIT_MS 30000          /* longest wait for a session or a repair */

int
fault_class(CK_RV rv)
{
	switch (rv) {
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_CLOSED:
	case CKR_USER_NOT_LOGGED_IN:
	case CKR_KEY_HANDLE_INVALID:
	case CKR_OBJECT_HANDLE_INVALID:
	/*
	 * The token's own trouble, in no better words: the session's state
	 * is unknown (an operation may still be active on it), so the pool
	 * is rebuilt and the caller hears UNAVAILABLE.
	 */
	case CKR_GENERAL_ERROR:
	case CKR_FUNCTION_FAILED:
	/* An operation someone left unfinished on the session. */
	case CKR_OPERATION_ACTIVE:
		return FAULT_SESSION;
	case CKR_DEVICE_ERROR:
	case CKR_DEVICE_REMOVED:
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_CRYPTOKI_NOT_INITIALIZED:
		return FAULT_MODULE;
	}
	return FAULT_NONE;
}

int
rv_err(CK_RV rv)
{
	switch (rv) {
	case CKR_OK:
		return 0;
	case CKR_HOST_MEMORY:
	case CKR_DEVICE_MEMORY:
		return SF_ENOMEM;
	case CKR_PIN_INCORRECT:
	case CKR_PIN_INVALID:
	case CKR_PIN_LEN_RANGE:
	case CKR_PIN_EXPIRED:
	case CKR_PIN_LOCKED:
		return SF_EPERM;
	case CKR_MECHANISM_INVALID:
	case CKR_DOMAIN_PARAMS_INVALID:
	case CKR_CURVE_NOT_SUPPORTED:
	case CKR_KEY_SIZE_RANGE:
		return SF_EKEYTYPE;
	}
	return fault_class(rv) ? SF_EUNAVAIL : SF_ECRYPTO;
}

static void
deadline_in(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* ------------------------------------------------------------------ */
/* The PIN                                                              */

/* The path a pin-source names: "file:/path", "file:///path" or a path. */
static int
pin_source_path(const char *src, const char **path, char *why, size_t whylen)
{
	const char *colon = strchr(src, ':'), *slash = strchr(src, '/');

	if (strncmp(src, "file:", 5) == 0) {
		src += 5;
		/* file:///path: an empty authority is the local host. */
		if (strncmp(src, "///", 3) == 0)
			src += 2;
	} else if (colon != NULL && (slash == NULL || colon < slash)) {
		sf_why(why, whylen, "pin-source %s: only files are supported",
		    src);
		return SF_ECONFIG;
	}
	if (*src == '\0') {
		sf_why(why, whylen, "pin-source names no file");
		return SF_ECONFIG;
	}
	*path = src;
	return 0;
}

/*
 * Read the PIN into the locked page. owner is the user the signer runs as
 * (privdrop.h), which is not the euid while root opens the token. The file
 * is checked through the descriptor we read from, so it cannot be swapped
 * in between; O_NONBLOCK keeps a FIFO planted at the path from blocking
 * start-up.
 */
static int
pin_load(token *t, const char *path, uid_t owner, char *why, size_t whylen)
{
	struct stat st;
	size_t n = 0;
	ssize_t r;
	int fd, rc = SF_ECONFIG;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		sf_why(why, whylen, "PIN file %s: %s", path, strerror(errno));
		return SF_ECONFIG;
	}
	if (fstat(fd, &st) != 0) {
		sf_why(why, whylen, "PIN file %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		sf_why(why, whylen, "PIN file %s is not a regular file", path);
		goto out;
	}
	/* Root's own file is safe too: with the mode checked below, only
	 * root can read it. */
	if (st.st_uid != owner && st.st_uid != geteuid() && st.st_uid != 0) {
		sf_why(why, whylen, "PIN file %s is owned by uid %u: it must "
		    "belong to the signer's user (uid %u) or root (chown)",
		    path, (unsigned)st.st_uid, (unsigned)owner);
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		sf_why(why, whylen, "PIN file %s has mode %04o: group and others "
		    "must have no access (chmod 600)", path,
		    (unsigned)(st.st_mode & 07777));
		goto out;
	}
	while (n <= PIN_MAX) {
		r = read(fd, t->pin + n, PIN_MAX + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			sf_why(why, whylen, "PIN file %s: %s", path,
			    strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > PIN_MAX) {
		sf_why(why, whylen, "PIN file %s is longer than %d bytes", path,
		    PIN_MAX);
		goto out;
	}
	while (n > 0 && (t->pin[n - 1] == '\n' || t->pin[n - 1] == '\r'))
		n--;
	if (n == 0) {
		sf_why(why, whylen, "PIN file %s is empty", path);
		goto out;
	}
	t->pin[n] = '\0';
	t->pinlen = n;
	rc = 0;
out:
	if (rc != 0)
		explicit_bzero(t->pin, PIN_PAGE);
	close(fd);
	return rc;
}

static int
pin_alloc(token *t)
{
	void *p;

	p = mmap(NULL, PIN_PAGE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return SF_ENOMEM;
	/* Not fatal: RLIMIT_MEMLOCK may be 0 for an unprivileged user. */
	if (mlock(p, PIN_PAGE) != 0)
		log_debug_f("mlock of the PIN page: %s", strerror(errno));
	(void)madvise(p, PIN_PAGE, MADV_DONTDUMP);
	t->pin = p;
	return 0;
}

static void
pin_free(token *t)
{
	if (t->pin == NULL)
		return;
	explicit_bzero(t->pin, PIN_PAGE);
	munlock(t->pin, PIN_PAGE);
	munmap(t->pin, PIN_PAGE);
	t->pin = NULL;
	t->pinlen = 0;
}

/* ------------------------------------------------------------------ */
/* Slot and session pool                                                */

static void
label_trim(char out[33], const CK_UTF8CHAR in[32])
{
	size_t n = 32;

	memcpy(out, in, 32);
	while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\0'))
		n--;
	out[n] = '\0';
}

/* Find the one initialised token the URI matches. */
static int
slot_find(token *t, CK_SLOT_ID *slot, char label[33], char *why,
    size_t whylen)
{
	CK_SLOT_ID *slots = NULL;
	CK_ULONG n = 0, i, matches = 0;
	CK_TOKEN_INFO ti;
	CK_RV rv;
	int rc = SF_EUNAVAIL;

	for (;;) {
		if ((rv = t->f->C_GetSlotList(CK_TRUE, NULL, &n)) != CKR_OK)
			break;
		if (n == 0)
			break;
		free(slots);
		if ((slots = calloc(n, sizeof *slots)) == NULL) {
			rc = SF_ENOMEM;
			goto out;
		}
		rv = t->f->C_GetSlotList(CK_TRUE, slots, &n);
		/* A token may have arrived between the two calls. */
		if (rv != CKR_BUFFER_TOO_SMALL)
			break;
	}
	if (rv != CKR_OK) {
		sf_why(why, whylen, "C_GetSlotList: %s", p11_kit_strerror(rv));
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (t->uri.has_slot_id && slots[i] != t->uri.slot_id)
			continue;
		if (t->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK ||
		    !(ti.flags & CKF_TOKEN_INITIALIZED) ||
		    !token_uri_match_field(t->uri.token, ti.label,
		    sizeof ti.label) ||
		    !token_uri_match_field(t->uri.manufacturer,
		    ti.manufacturerID, sizeof ti.manufacturerID) ||
		    !token_uri_match_field(t->uri.serial, ti.serialNumber,
		    sizeof ti.serialNumber) ||
		    !token_uri_match_field(t->uri.model, ti.model,
		    sizeof ti.model))
			continue;
		if (matches++ == 0) {
			*slot = slots[i];
			label_trim(label, ti.label);
		}
	}
	if (matches != 1) {
		rc = SF_ECONFIG;
		if (matches == 0)
			sf_why(why, whylen, "no initialised token matches the URI "
			    "(%lu slots with a token)", (unsigned long)n);
		else
			sf_why(why, whylen, "%lu tokens match the URI: name one "
			    "by its label and serial", (unsigned long)matches);
		goto out;
	}
	rc = 0;
out:
	free(slots);
	return rc;
}

/* Close every session of the pool; errors do not matter here. */
static void
pool_close(token *t)
{
	for (int i = 0; i < t->nsess; i++) {
		if (t->sess[i] != CK_INVALID_HANDLE)
			(void)t->f->C_CloseSession(t->sess[i]);
		t->sess[i] = CK_INVALID_HANDLE;
	}
	t->nidle = 0;
}

/* Open the whole pool and log in; the pool is empty on failure. */
static CK_RV
pool_open(token *t)
{
	CK_RV rv = CKR_OK;
	int i;

	for (i = 0; i < t->nsess; i++) {
		rv = t->f->C_OpenSession(t->slot,
		    CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
		    &t->sess[i]);
		if (rv != CKR_OK) {
			t->sess[i] = CK_INVALID_HANDLE;
			goto out;
		}
	}
	/* One login serves every session of the application. */
	rv = t->f->C_Login(t->sess[0], CKU_USER, (CK_UTF8CHAR_PTR)t->pin,
	    (CK_ULONG)t->pinlen);
	if (rv == CKR_USER_ALREADY_LOGGED_IN)
		rv = CKR_OK;
	if (rv != CKR_OK)
		goto out;
	for (i = 0; i < t->nsess; i++)
		t->idle[i] = i;
	t->nidle = t->nsess;
out:
	if (rv != CKR_OK)
		pool_close(t);
	return rv;
}

/*
 * Rebuild the pool after a fault. Runs with the pool exclusive (no session
 * in use) but without t->mu, since module calls may take a while.
 */
static int
repair(token *t, int level, CK_RV *bad)
{
	char why[256], label[33];
	CK_RV rv;

	pool_close(t);
	if (level >= FAULT_MODULE) {
		log_warnx("token %s: re-initialising the PKCS#11 module",
		    t->label);
		(void)p11_kit_module_finalize(t->f);
	}
	/*
	 * Also after a session fault: someone may have finalised our
	 * (managed) module while it stayed initialised underneath for
	 * another user, and p11-kit needs its own C_Initialize back.
	 */
	rv = p11_kit_module_initialize(t->f);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		log_warnx("token %s: C_Initialize: %s", t->label,
		    p11_kit_strerror(rv));
		*bad = rv;
		return SF_EUNAVAIL;
	}
	/* Slot ids may change when the module starts again. */
	if (level >= FAULT_MODULE &&
	    slot_find(t, &t->slot, label, why, sizeof why) != 0) {
		log_warnx("token %s: %s", t->label, why);
		*bad = CKR_TOKEN_NOT_PRESENT;
		return SF_EUNAVAIL;
	}
	if ((rv = pool_open(t)) != CKR_OK) {
		log_warnx("token %s: re-opening sessions: %s", t->label,
		    p11_kit_strerror(rv));
		*bad = rv;
		return SF_EUNAVAIL;
	}
	log_info("token %s: %d sessions re-opened and logged in again",
	    t->label, t->nsess);
	return 0;
}

/*
 * Take an idle session, repairing the pool first if a fault was seen.
 * SF_EUNAVAIL if none comes free (or the repair fails) within WAIT_MS.
 */
static int
session_take(token *t, tsess *s)
{
	struct timespec dl;
	CK_RV bad;
	int level, rc = 0;

	deadline_in(&dl, WAIT_MS);
	pthread_mutex_lock(&t->mu);
	for (;;) {
		if (t->exclusive || (t->need == FAULT_NONE && t->nidle == 0)) {
			if (pthread_cond_timedwait(&t->cv, &t->mu, &dl) ==
			    ETIMEDOUT) {
				rc = SF_EUNAVAIL;
				goto out;
			}
			continue;
		}
		if (t->need == FAULT_NONE)
			break;
		/* Nobody may be inside the module while the pool is rebuilt. */
		t->exclusive = 1;
		while (t->busy > 0 && rc == 0)
			if (pthread_cond_timedwait(&t->cv, &t->mu, &dl) ==
			    ETIMEDOUT)
				rc = SF_EUNAVAIL;
		if (rc == 0) {
			level = t->need;
			bad = CKR_OK;
			pthread_mutex_unlock(&t->mu);
			rc = repair(t, level, &bad);
			pthread_mutex_lock(&t->mu);
			if (rc == 0) {
				t->need = FAULT_NONE;
				t->gen++;
				t->repairs++;
				t->repair_failing = 0;
				t->last_repair_at = sf_now();
			} else {
				t->failed_repairs++;
				t->repair_failing = 1;
				if (fault_class(bad) > t->need)
					t->need = fault_class(bad);
			}
		}
		t->exclusive = 0;
		pthread_cond_broadcast(&t->cv);
		if (rc != 0)
			goto out;
	}
	s->idx = t->idle[--t->nidle];
	s->h = t->sess[s->idx];
	s->gen = t->gen;
	t->busy++;
out:
	pthread_mutex_unlock(&t->mu);
	return rc;
}

/* Give a session back; rv is the last thing the token said on it. */
static void
session_put(token *t, const tsess *s, CK_RV rv)
{
	int level = fault_class(rv);

	pthread_mutex_lock(&t->mu);
	t->busy--;
	/*
	 * A fault seen on sessions of an older generation has been repaired
	 * already; do not rebuild the pool twice for it.
	 */
	if (level != FAULT_NONE) {
		t->faults++;
		t->last_fault = rv;
		t->last_fault_at = sf_now();
	}
	if (level != FAULT_NONE && s->gen == t->gen && level > t->need)
		t->need = level;
	t->idle[t->nidle++] = s->idx;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
}

/*
 * Private objects are invisible, not an error, to a session that is not
 * logged in: tell "no such key" from "logged out".
 */
CK_RV
session_logged_in(token *t, CK_SESSION_HANDLE s)
{
	CK_SESSION_INFO si;
	CK_RV rv;

	if ((rv = t->f->C_GetSessionInfo(s, &si)) != CKR_OK)
		return rv;
	if (si.state != CKS_RO_USER_FUNCTIONS &&
	    si.state != CKS_RW_USER_FUNCTIONS)
		return CKR_USER_NOT_LOGGED_IN;
	return CKR_OK;
}

/*
 * Run fn on a pooled session; after a fault, once more on a repaired pool.
 * what and label (of the key, may be NULL) name the operation in logs.
 */
int
token_run(token *t, token_fn fn, void *arg, const char *what,
    const char *label)
{
	tsess s;
	CK_RV rv, srv;
	int rc;

	for (int attempt = 0; attempt < 2; attempt++) {
		if ((rc = session_take(t, &s)) != 0) {
			log_warnx("token %s: %s %s: no usable session",
			    t->label, what, label ? label : "");
			return rc;
		}
		rv = CKR_OK;
		rc = fn(t, &s, arg, &rv);
		if (rc != 0 && rv != CKR_OK && fault_class(rv) == FAULT_NONE) {
			log_warnx("token %s: %s %s: %s", t->label, what,
			    label ? label : "", p11_kit_strerror(rv));
			/*
			 * A module may answer a lost login with a generic
			 * error (SoftHSM2: CKR_GENERAL_ERROR from C_Sign after
			 * a C_Logout between C_SignInit and C_Sign), so ask
			 * the session what state it is in.
			 */
			if (fault_class(srv = session_logged_in(t, s.h)) !=
			    FAULT_NONE)
				rv = srv;
		}
		session_put(t, &s, rv);
		if (rc == 0 || fault_class(rv) == FAULT_NONE)
			return rc;
		log_warnx("token %s: %s %s: %s%s", t->label, what,
		    label ? label : "", p11_kit_strerror(rv),
		    attempt == 0 ? "; repairing and retrying once" : "");
	}
	return SF_EUNAVAIL;
}

/* ------------------------------------------------------------------ */
/* Open and close                                                       */

/*
 * Parse [token] uri into t->uri and check it names a token the way the
 * signer uses one: no key attributes (keys are found by label), no PIN in
 * the URI, a module only if it is [token] module. *pin_path: the PIN
 * file, o->pin_file or the URI's pin-source. SF_ECONFIG with why.
 */
static int
uri_check(token *t, const token_opts *o, const char **pin_path, char *why,
    size_t whylen)
{
	char msg[256];
	int rc;

	if ((rc = token_uri_parse(o->uri, &t->uri, msg, sizeof msg)) != 0) {
		sf_why(why, whylen, "token URI: %s", msg);
		return rc == SF_ENOMEM ? SF_ENOMEM : SF_ECONFIG;
	}
	if (t->uri.object || t->uri.id || t->uri.type) {
		sf_why(why, whylen, "token URI: object, id and type name a key;"
		    " [token] uri names the token only (the signer finds its"
		    " keys by label)");
		return SF_ECONFIG;
	}
	if (t->uri.pin_value) {
		sf_why(why, whylen, "token URI carries a pin-value: give the PIN "
		    "in a file or a pin-source instead");
		return SF_ECONFIG;
	}
	if (t->uri.module_name || (t->uri.module_path &&
	    strcmp(t->uri.module_path, o->module) != 0)) {
		sf_why(why, whylen, "token URI: the module is [token] module"
		    " (%s); a module-name or another module-path in the URI"
		    " is refused", o->module);
		return SF_ECONFIG;
	}
	if ((*pin_path = o->pin_file) != NULL)
		return 0;
	if (t->uri.pin_source == NULL) {
		sf_why(why, whylen, "no PIN: give a PIN file or a pin-source in"
		    " the URI");
		return SF_ECONFIG;
	}
	return pin_source_path(t->uri.pin_source, pin_path, why, whylen);
}

int
token_open(const token_opts *o, token **out, char *why, size_t whylen)
{
	pthread_condattr_t ca;
	const char *pin_path;
	token *t = NULL;
	CK_RV rv;
	int rc;

	*out = NULL;
	sf_why(why, whylen, "%s", "");
	if (o == NULL || o->module == NULL || o->uri == NULL) {
		sf_why(why, whylen, "a module path and a token URI are required");
		return SF_ECONFIG;
	}
	if (o->sessions < 0 || o->sessions > MAX_SESSIONS) {
		sf_why(why, whylen, "sessions must be 1..%d", MAX_SESSIONS);
		return SF_ECONFIG;
	}
	if ((t = calloc(1, sizeof *t)) == NULL)
		return SF_ENOMEM;
	pthread_mutex_init(&t->mu, NULL);
	pthread_mutex_init(&t->admin, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cv, &ca);
	pthread_condattr_destroy(&ca);
	t->nsess = o->sessions ? o->sessions : DEFAULT_SESSIONS;
	t->sess = calloc((size_t)t->nsess, sizeof *t->sess);
	t->idle = calloc((size_t)t->nsess, sizeof *t->idle);
	t->sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
	t->sha384 = EVP_MD_fetch(NULL, "SHA2-384", NULL);
	if (t->sess == NULL || t->idle == NULL ||
	    t->sha256 == NULL || t->sha384 == NULL ||
	    (rc = pin_alloc(t)) != 0) {
		rc = SF_ENOMEM;
		goto out;
	}
	for (int i = 0; i < t->nsess; i++)
		t->sess[i] = CK_INVALID_HANDLE;

	if ((rc = uri_check(t, o, &pin_path, why, whylen)) != 0)
		goto out;
	if ((rc = pin_load(t, pin_path, o->pin_owner ? o->pin_owner :
	    geteuid(), why, whylen)) != 0)
		goto out;

	/* A bare name is p11-kit's to resolve in its module directory. */
	if (strchr(o->module, '/') != NULL && access(o->module, R_OK) != 0) {
		rc = SF_ECONFIG;
		sf_why(why, whylen, "PKCS#11 module %s: %s", o->module,
		    strerror(errno));
		goto out;
	}
	rc = SF_EUNAVAIL;
	if ((t->f = p11_kit_module_load(o->module, 0)) == NULL) {
		sf_why(why, whylen, "loading %s: %s", o->module,
		    p11_kit_message() ? p11_kit_message() : "failed");
		goto out;
	}
	if ((rv = p11_kit_module_initialize(t->f)) != CKR_OK) {
		sf_why(why, whylen, "C_Initialize: %s", p11_kit_strerror(rv));
		goto out;
	}
	t->initialized = 1;
	if ((rc = slot_find(t, &t->slot, t->label, why, whylen)) != 0)
		goto out;
	if ((rv = pool_open(t)) != CKR_OK) {
		rc = rv_err(rv) == SF_EPERM ? SF_EPERM : SF_EUNAVAIL;
		sf_why(why, whylen, "token %s: %s: %s", t->label,
		    rc == SF_EPERM ? "login refused" : "opening sessions",
		    p11_kit_strerror(rv));
		goto out;
	}
	log_info("token %s: open, %d sessions", t->label, t->nsess);
	*out = t;
	t = NULL;  /* transferred */
	rc = 0;
out:
	token_close(t);
	return rc;
}

void
token_close(token *t)
{
	if (t == NULL)
		return;
	if (t->f != NULL) {
		if (t->sess != NULL && t->sess[0] != CK_INVALID_HANDLE)
			(void)t->f->C_Logout(t->sess[0]);
		if (t->sess != NULL)
			pool_close(t);
		/* NOT_INITIALIZED after token_test_finalize: no matter. */
		if (t->initialized)
			(void)p11_kit_module_finalize(t->f);
		p11_kit_module_release(t->f);
	}
	pin_free(t);
	token_uri_fini(&t->uri);
	EVP_MD_free(t->sha256);
	EVP_MD_free(t->sha384);
	free(t->sess);
	free(t->idle);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	pthread_mutex_destroy(&t->admin);
	free(t);
}

const char *
token_label(const token *t)
{
	return t->label;
}

/* A look at the session: the cheapest call that needs the token. */
static int
op_probe(token *t, const tsess *s, void *arg, CK_RV *crv)
{
	CK_SESSION_INFO si;
	CK_RV rv;

	(void)arg;
	if ((rv = t->f->C_GetSessionInfo(s->h, &si)) != CKR_OK) {
		*crv = rv;
		return rv_err(rv);
	}
	if (si.state != CKS_RO_USER_FUNCTIONS &&
	    si.state != CKS_RW_USER_FUNCTIONS) {
		*crv = CKR_USER_NOT_LOGGED_IN;
		return SF_EUNAVAIL;
	}
	return 0;
}

int
token_status(token *t, token_state *out)
{
	int rc;

	memset(out, 0, sizeof *out);
	/* Through the pool, so that a pending repair is tried now. */
	rc = token_run(t, op_probe, NULL, "probe", NULL);
	pthread_mutex_lock(&t->mu);
	out->available = rc == 0;
	out->faults = t->faults;
	out->repairs = t->repairs;
	out->failed_repairs = t->failed_repairs;
	if (t->last_fault != CKR_OK)
		sf_strlcpy(out->last_fault, p11_kit_strerror(t->last_fault),
		    sizeof out->last_fault);
	out->last_fault_at = t->last_fault_at;
	out->last_repair_at = t->last_repair_at;
	out->sessions = t->nsess;
	out->sessions_busy = t->busy;
	pthread_mutex_unlock(&t->mu);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Fault injection                                                      */

int
token_test_close_all_sessions(token *t)
{
	return t->f->C_CloseAllSessions(t->slot) == CKR_OK ? 0 : SF_EUNAVAIL;
}

/* As a foreign library would: on a session of its own. */
int
token_test_logout(token *t)
{
	CK_SESSION_HANDLE h;
	CK_RV rv;

	rv = t->f->C_OpenSession(t->slot, CKF_SERIAL_SESSION, NULL, NULL, &h);
	if (rv != CKR_OK)
		return SF_EUNAVAIL;
	rv = t->f->C_Logout(h);
	(void)t->f->C_CloseSession(h);
	return rv == CKR_OK ? 0 : SF_EUNAVAIL;
}

int
token_test_finalize(token *t)
{
	return t->f->C_Finalize(NULL) == CKR_OK ? 0 : SF_EUNAVAIL;
}
