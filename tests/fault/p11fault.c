/*
 * p11fault.c - a PKCS#11 module that forwards every call to a real module
 * (SoftHSM2 by default) and injects faults on a schedule: the token the
 * fault tests load instead of SoftHSM2 (tests/fault/README.md).
 *
 * Environment:
 *   SF_P11FAULT_MODULE    the real module (default SoftHSM2's)
 *   SF_P11FAULT_SCHEDULE  a schedule file, re-read whenever it changes
 *                         (mtime, size or inode): a test edits it while
 *                         the signer runs; a missing file means no faults
 *   SF_P11FAULT_LOG       if set, a line per injected fault is appended
 *
 * Schedule lines ('#' starts a comment):
 *   FUNCTION ACTION [WHEN]
 * FUNCTION is a PKCS#11 name (C_Sign, C_OpenSession, ...) or '*' for every
 * wrapped function. ACTION is a return value (CKR_DEVICE_ERROR,
 * CKR_SESSION_HANDLE_INVALID, CKR_USER_NOT_LOGGED_IN, CKR_DEVICE_REMOVED,
 * CKR_TOKEN_NOT_PRESENT, CKR_FUNCTION_FAILED, CKR_GENERAL_ERROR), delay=MS
 * (the call is made after MS milliseconds), or flip (C_Sign only: the
 * real signature with one byte changed). WHEN is nth=N (the Nth call of
 * that function since the schedule was loaded, 1-based), from=N (every
 * call from the Nth on; the default, from=1), or p=P (each call with
 * probability P). A faulted call does not reach the real module (except
 * delay and flip).
 *
 * This is test code: it is the one file besides signer/token*.c that
 * includes pkcs11.h, and the product never loads it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#define DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define MAX_RULES 32

enum when { WHEN_FROM, WHEN_NTH, WHEN_P };
enum action { ACT_RV, ACT_DELAY, ACT_FLIP };

struct rule {
	char func[40];          /* "" = every function */
	enum action act;
	CK_RV rv;
	long delay_ms;
	enum when when;
	unsigned long n;
	double p;
};

/* Wrapped functions, each with its call counter. */
enum fn {
	F_GetSlotList, F_GetSlotInfo, F_GetTokenInfo, F_OpenSession,
	F_CloseSession, F_CloseAllSessions, F_GetSessionInfo, F_Login,
	F_Logout, F_CreateObject, F_DestroyObject, F_GetAttributeValue,
	F_SetAttributeValue, F_FindObjectsInit, F_FindObjects,
	F_FindObjectsFinal, F_SignInit, F_Sign, F_GenerateKeyPair,
	F_GenerateRandom, F_COUNT
};

static const char *fn_names[F_COUNT] = {
	"C_GetSlotList", "C_GetSlotInfo", "C_GetTokenInfo", "C_OpenSession",
	"C_CloseSession", "C_CloseAllSessions", "C_GetSessionInfo", "C_Login",
	"C_Logout", "C_CreateObject", "C_DestroyObject",
	"C_GetAttributeValue", "C_SetAttributeValue", "C_FindObjectsInit",
	"C_FindObjects", "C_FindObjectsFinal", "C_SignInit", "C_Sign",
	"C_GenerateKeyPair", "C_GenerateRandom",
};

static const struct { const char *name; CK_RV rv; } rv_names[] = {
	{ "CKR_DEVICE_ERROR", CKR_DEVICE_ERROR },
	{ "CKR_SESSION_HANDLE_INVALID", CKR_SESSION_HANDLE_INVALID },
	{ "CKR_USER_NOT_LOGGED_IN", CKR_USER_NOT_LOGGED_IN },
	{ "CKR_DEVICE_REMOVED", CKR_DEVICE_REMOVED },
	{ "CKR_TOKEN_NOT_PRESENT", CKR_TOKEN_NOT_PRESENT },
	{ "CKR_FUNCTION_FAILED", CKR_FUNCTION_FAILED },
	{ "CKR_GENERAL_ERROR", CKR_GENERAL_ERROR },
	{ "CKR_DEVICE_MEMORY", CKR_DEVICE_MEMORY },
	{ "CKR_SESSION_CLOSED", CKR_SESSION_CLOSED },
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static CK_FUNCTION_LIST *real;
static CK_FUNCTION_LIST ours;
static struct rule rules[MAX_RULES];
static size_t nrules;
static unsigned long calls[F_COUNT];
static struct stat loaded;     /* the schedule file as last read */
static int have_loaded;
static unsigned int seed = 12345;

static const char *
rv_name(CK_RV rv)
{
	for (size_t i = 0; i < sizeof rv_names / sizeof rv_names[0]; i++)
		if (rv_names[i].rv == rv)
			return rv_names[i].name;
	return "CKR_?";
}

static int
parse_rule(char *line, struct rule *r)
{
	char *f, *a, *w;

	memset(r, 0, sizeof *r);
	if ((f = strtok(line, " \t")) == NULL ||
	    (a = strtok(NULL, " \t")) == NULL)
		return -1;
	w = strtok(NULL, " \t");
	if (strcmp(f, "*") != 0)
		snprintf(r->func, sizeof r->func, "%s", f);
	if (strncmp(a, "delay=", 6) == 0) {
		r->act = ACT_DELAY;
		r->delay_ms = atol(a + 6);
	} else if (strcmp(a, "flip") == 0) {
		r->act = ACT_FLIP;
	} else {
		size_t i;

		for (i = 0; i < sizeof rv_names / sizeof rv_names[0]; i++)
			if (strcmp(a, rv_names[i].name) == 0)
				break;
		if (i == sizeof rv_names / sizeof rv_names[0])
			return -1;
		r->act = ACT_RV;
		r->rv = rv_names[i].rv;
	}
	r->when = WHEN_FROM;
	r->n = 1;
	if (w == NULL)
		return 0;
	if (strncmp(w, "nth=", 4) == 0) {
		r->when = WHEN_NTH;
		r->n = strtoul(w + 4, NULL, 10);
	} else if (strncmp(w, "from=", 5) == 0) {
		r->n = strtoul(w + 5, NULL, 10);
	} else if (strncmp(w, "p=", 2) == 0) {
		r->when = WHEN_P;
		r->p = atof(w + 2);
	} else
		return -1;
	return 0;
}

/* Re-read the schedule if the file changed; the caller holds mu. */
static void
reload(void)
{
	const char *path = getenv("SF_P11FAULT_SCHEDULE");
	struct stat st;
	char line[256];
	FILE *fp;

	if (path == NULL)
		return;
	if (stat(path, &st) != 0) {
		if (have_loaded) {
			nrules = 0;
			have_loaded = 0;
			memset(calls, 0, sizeof calls);
		}
		return;
	}
	if (have_loaded && st.st_ino == loaded.st_ino &&
	    st.st_size == loaded.st_size &&
	    st.st_mtim.tv_sec == loaded.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == loaded.st_mtim.tv_nsec)
		return;
	loaded = st;
	have_loaded = 1;
	nrules = 0;
	memset(calls, 0, sizeof calls);
	if ((fp = fopen(path, "r")) == NULL)
		return;
	while (fgets(line, sizeof line, fp) != NULL && nrules < MAX_RULES) {
		char *hash = strchr(line, '#');

		if (hash)
			*hash = '\0';
		line[strcspn(line, "\r\n")] = '\0';
		if (strspn(line, " \t") == strlen(line))
			continue;
		if (parse_rule(line, &rules[nrules]) == 0)
			nrules++;
		else
			fprintf(stderr, "p11fault: bad schedule line ignored\n");
	}
	fclose(fp);
}

static void
note(enum fn f, const char *what)
{
	const char *path = getenv("SF_P11FAULT_LOG");
	FILE *fp;

	if (path == NULL || (fp = fopen(path, "a")) == NULL)
		return;
	fprintf(fp, "%s %s\n", fn_names[f], what);
	fclose(fp);
}

/*
 * What to do with this call of f: 0 forward; else the CK_RV to return.
 * *delay_ms and *flip are set for the actions that still forward.
 */
static CK_RV
decide(enum fn f, long *delay_ms, int *flip)
{
	CK_RV rv = CKR_OK;
	unsigned long n;

	*delay_ms = 0;
	*flip = 0;
	pthread_mutex_lock(&mu);
	reload();
	n = ++calls[f];
	for (size_t i = 0; i < nrules && rv == CKR_OK; i++) {
		struct rule *r = &rules[i];
		int hit;

		if (r->func[0] && strcmp(r->func, fn_names[f]) != 0)
			continue;
		if (r->act == ACT_FLIP && f != F_Sign)
			continue;
		switch (r->when) {
		case WHEN_NTH:
			hit = n == r->n;
			break;
		case WHEN_P:
			hit = (double)rand_r(&seed) / RAND_MAX < r->p;
			break;
		default:
			hit = n >= r->n;
			break;
		}
		if (!hit)
			continue;
		if (r->act == ACT_DELAY)
			*delay_ms = r->delay_ms;
		else if (r->act == ACT_FLIP)
			*flip = 1;
		else
			rv = r->rv;
	}
	pthread_mutex_unlock(&mu);
	if (rv != CKR_OK)
		note(f, rv_name(rv));
	else if (*flip)
		note(f, "flip");
	else if (*delay_ms)
		note(f, "delay");
	return rv;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Decide, then forward to the real module's function. */
#define PRE(f) \
	long delay_; int flip_; CK_RV rv_; \
	if ((rv_ = decide(f, &delay_, &flip_)) != CKR_OK) \
		return rv_; \
	if (delay_) \
		sleep_ms(delay_); \
	(void)flip_

static CK_RV
w_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count)
{
	PRE(F_GetSlotList);
	return real->C_GetSlotList(present, list, count);
}

static CK_RV
w_GetSlotInfo(CK_SLOT_ID id, CK_SLOT_INFO_PTR info)
{
	PRE(F_GetSlotInfo);
	return real->C_GetSlotInfo(id, info);
}

static CK_RV
w_GetTokenInfo(CK_SLOT_ID id, CK_TOKEN_INFO_PTR info)
{
	PRE(F_GetTokenInfo);
	return real->C_GetTokenInfo(id, info);
}

static CK_RV
w_OpenSession(CK_SLOT_ID id, CK_FLAGS flags, CK_VOID_PTR app,
    CK_NOTIFY notify, CK_SESSION_HANDLE_PTR s)
{
	PRE(F_OpenSession);
	return real->C_OpenSession(id, flags, app, notify, s);
}

static CK_RV
w_CloseSession(CK_SESSION_HANDLE s)
{
	PRE(F_CloseSession);
	return real->C_CloseSession(s);
}

static CK_RV
w_CloseAllSessions(CK_SLOT_ID id)
{
	PRE(F_CloseAllSessions);
	return real->C_CloseAllSessions(id);
}

static CK_RV
w_GetSessionInfo(CK_SESSION_HANDLE s, CK_SESSION_INFO_PTR info)
{
	PRE(F_GetSessionInfo);
	return real->C_GetSessionInfo(s, info);
}

static CK_RV
w_Login(CK_SESSION_HANDLE s, CK_USER_TYPE u, CK_UTF8CHAR_PTR pin,
    CK_ULONG len)
{
	PRE(F_Login);
	return real->C_Login(s, u, pin, len);
}

static CK_RV
w_Logout(CK_SESSION_HANDLE s)
{
	PRE(F_Logout);
	return real->C_Logout(s);
}

static CK_RV
w_CreateObject(CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR t, CK_ULONG n,
    CK_OBJECT_HANDLE_PTR o)
{
	PRE(F_CreateObject);
	return real->C_CreateObject(s, t, n, o);
}

static CK_RV
w_DestroyObject(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o)
{
	PRE(F_DestroyObject);
	return real->C_DestroyObject(s, o);
}

static CK_RV
w_GetAttributeValue(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
    CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	PRE(F_GetAttributeValue);
	return real->C_GetAttributeValue(s, o, t, n);
}

static CK_RV
w_SetAttributeValue(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
    CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	PRE(F_SetAttributeValue);
	return real->C_SetAttributeValue(s, o, t, n);
}

static CK_RV
w_FindObjectsInit(CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	PRE(F_FindObjectsInit);
	return real->C_FindObjectsInit(s, t, n);
}

static CK_RV
w_FindObjects(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE_PTR o, CK_ULONG max,
    CK_ULONG_PTR n)
{
	PRE(F_FindObjects);
	return real->C_FindObjects(s, o, max, n);
}

static CK_RV
w_FindObjectsFinal(CK_SESSION_HANDLE s)
{
	PRE(F_FindObjectsFinal);
	return real->C_FindObjectsFinal(s);
}

static CK_RV
w_SignInit(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
	PRE(F_SignInit);
	return real->C_SignInit(s, m, k);
}

static CK_RV
w_Sign(CK_SESSION_HANDLE s, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig,
    CK_ULONG_PTR siglen)
{
	CK_RV rv;

	PRE(F_Sign);
	rv = real->C_Sign(s, data, len, sig, siglen);
	/* A wrong signature, as a broken token might return one. */
	if (rv == CKR_OK && flip_ && sig != NULL && *siglen > 0)
		sig[*siglen / 2] ^= 0x5a;
	return rv;
}

static CK_RV
w_GenerateKeyPair(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m,
    CK_ATTRIBUTE_PTR pub, CK_ULONG npub, CK_ATTRIBUTE_PTR priv,
    CK_ULONG npriv, CK_OBJECT_HANDLE_PTR hpub, CK_OBJECT_HANDLE_PTR hpriv)
{
	PRE(F_GenerateKeyPair);
	return real->C_GenerateKeyPair(s, m, pub, npub, priv, npriv, hpub,
	    hpriv);
}

static CK_RV
w_GenerateRandom(CK_SESSION_HANDLE s, CK_BYTE_PTR buf, CK_ULONG len)
{
	PRE(F_GenerateRandom);
	return real->C_GenerateRandom(s, buf, len);
}

CK_RV
C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
	const char *path = getenv("SF_P11FAULT_MODULE");
	CK_RV (*gfl)(CK_FUNCTION_LIST_PTR_PTR);
	void *h;
	CK_RV rv;

	if (out == NULL)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&mu);
	if (real != NULL) {
		*out = &ours;
		pthread_mutex_unlock(&mu);
		return CKR_OK;
	}
	if ((h = dlopen(path ? path : DEFAULT_MODULE, RTLD_NOW |
	    RTLD_LOCAL)) == NULL ||
	    (gfl = (CK_RV (*)(CK_FUNCTION_LIST_PTR_PTR))dlsym(h,
	    "C_GetFunctionList")) == NULL) {
		fprintf(stderr, "p11fault: cannot load %s: %s\n",
		    path ? path : DEFAULT_MODULE, dlerror());
		pthread_mutex_unlock(&mu);
		return CKR_GENERAL_ERROR;
	}
	if ((rv = gfl(&real)) != CKR_OK) {
		real = NULL;
		pthread_mutex_unlock(&mu);
		return rv;
	}
	ours = *real;
	ours.C_GetFunctionList = C_GetFunctionList;
	ours.C_GetSlotList = w_GetSlotList;
	ours.C_GetSlotInfo = w_GetSlotInfo;
	ours.C_GetTokenInfo = w_GetTokenInfo;
	ours.C_OpenSession = w_OpenSession;
	ours.C_CloseSession = w_CloseSession;
	ours.C_CloseAllSessions = w_CloseAllSessions;
	ours.C_GetSessionInfo = w_GetSessionInfo;
	ours.C_Login = w_Login;
	ours.C_Logout = w_Logout;
	ours.C_CreateObject = w_CreateObject;
	ours.C_DestroyObject = w_DestroyObject;
	ours.C_GetAttributeValue = w_GetAttributeValue;
	ours.C_SetAttributeValue = w_SetAttributeValue;
	ours.C_FindObjectsInit = w_FindObjectsInit;
	ours.C_FindObjects = w_FindObjects;
	ours.C_FindObjectsFinal = w_FindObjectsFinal;
	ours.C_SignInit = w_SignInit;
	ours.C_Sign = w_Sign;
	ours.C_GenerateKeyPair = w_GenerateKeyPair;
	ours.C_GenerateRandom = w_GenerateRandom;
	*out = &ours;
	pthread_mutex_unlock(&mu);
	return CKR_OK;
}
