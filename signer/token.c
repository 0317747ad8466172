/*
 * token.c - CA keys in a PKCS#11 token, reached through p11-kit (token.h).
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
#include "token_uri.h"
#include "util.h"

#define DEFAULT_SESSIONS 4
#define MAX_SESSIONS 64
#define PIN_MAX 256            /* SoftHSM2 allows 4-255 characters */
#define PIN_PAGE 4096          /* the PIN lives alone in one locked page */
#define WAIT_MS 30000          /* longest wait for a session or a repair */
#define SIG_MAX 1024           /* raw signature buffer: RSA up to 8192 bits */
#define KEY_ID_LEN 16
#define LABEL_MAX 128

enum { FAULT_NONE = 0, FAULT_SESSION = 1, FAULT_MODULE = 2 };

struct token {
	CK_FUNCTION_LIST *f;
	int initialized;           /* token_open's C_Initialize succeeded */
	token_uri uri;             /* [token] uri: which token */
	CK_SLOT_ID slot;
	char label[33];            /* CKA token label, trailing blanks cut */
	char *pin;                 /* PIN_PAGE bytes, mlock'd, NUL-terminated */
	size_t pinlen;
	EVP_MD *sha256, *sha384;
	pthread_mutex_t admin;     /* serialises generate/find (labels) */

	pthread_mutex_t mu;        /* guards the pool state below */
	pthread_cond_t cv;
	CK_SESSION_HANDLE *sess;   /* CK_INVALID_HANDLE when closed */
	int *idle;                 /* stack of indexes of idle sessions */
	int nsess, nidle, busy;
	int exclusive;             /* a repair is running or waiting to */
	int need;                  /* FAULT_* the next taker must repair */
	uint64_t gen;              /* bumped by every repair */
	/* For token_status (under mu). */
	uint64_t faults, repairs, failed_repairs;
	CK_RV last_fault;
	int64_t last_fault_at, last_repair_at;
	int repair_failing;        /* the last repair failed */
};

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

/* A session taken from the pool. */
typedef struct {
	int idx;
	CK_SESSION_HANDLE h;
	uint64_t gen;
} tsess;

/*
 * One attempt of an operation on a session. Returns 0 or SF_E*; *crv gets
 * the CK_RV that failed, which decides whether the pool needs repair and
 * whether the operation is tried again.
 */
typedef int (*token_fn)(token *, const tsess *, void *, CK_RV *);

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

static CK_RV session_logged_in(token *, CK_SESSION_HANDLE);

static int
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

static int
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
 * Run fn on a pooled session; after a fault, once more on a repaired pool.
 * what and label (of the key, may be NULL) name the operation in logs.
 */
static int
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

/*
 * Private objects are invisible, not an error, to a session that is not
 * logged in: tell "no such key" from "logged out".
 */
static CK_RV
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
