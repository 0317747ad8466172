/*
 * bench-issue - throughput and latency of the issuance path, one layer at
 * a time. Not a test: tests/bench/run_bench.py (scripts/bench) runs it.
 *
 *   bench-issue sign   --module M --uri U --pin-file F [--label L]
 *   bench-issue issue  --target unix:PATH --csr FILE --product-line P
 *                      --region R
 *   bench-issue enroll --target HOST:PORT --ca-file F --csr FILE
 *                      [--server-name N] [--region R] [--key-prefix K]
 *   bench-issue enroll --target unix:PATH --csr FILE ...   (authz admin socket)
 *   bench-issue chain  --target unix:PATH --product-line P --region R
 *
 *   common: --seconds S (default 3) --threads T (default 1, at most 64)
 *           --warmup N (calls per thread before the clock starts; default 10)
 *           --calls N (each thread stops after N timed calls, or at the
 *           end of S seconds, whichever comes first; for callgrind)
 *           --rate R (open loop: R calls/s in all, spread evenly over the
 *           threads; a call's latency counts from when it was due, not
 *           from when a busy thread got round to it, so a server that
 *           falls behind shows it in p99)
 *           --cpu-pid NAME=PID (may repeat, up to 4: the CPU time that
 *           process used during the timed window, per timed call, and its
 *           resident set at the end: cpu_NAME_us=, rss_NAME_kb=)
 *           --csr-bundle FILE (issue / enroll: a file of concatenated PEM
 *           requests, each sent exactly once, warm-up included, in order
 *           over all threads; the run ends when they are used up or at
 *           the end of S seconds: a fleet where every device enrolls once)
 *           --csr-pool FILE (issue / enroll: the same kind of file, used
 *           over and over: thread i sends requests i, i+T, i+2T, ... mod
 *           n, so no two threads ever send one device's request and no
 *           device piles up thousands of live certificates, as none does
 *           in a fleet; n must be a multiple of the thread count)
 *
 * sign:   token_generate_key (P-256) once, then token_sign of a 300-byte
 *         TBS in a loop: the token's raw signing rate, the baseline.
 * issue:  Signer.Issue on the signer's issuance socket, one rpc_client
 *         (gRPC channel) per thread; --enrollment-ids 1 sends a new
 *         enrollment id with every call, as authz does (the signer's
 *         replay check then has an id to look up).
 * enroll: Provisioning.Enroll on authz (TLS device listener, or the admin
 *         Unix socket), one rpc_client per thread, a distinct
 *         idempotency key per call so that every call really issues.
 * chain:  Signer.GetCaChain on the signer's issuance socket: a call that
 *         reads nothing but memory and answers about as many bytes as
 *         Issue does, so the signer's CPU per call is what a gRPC call
 *         costs it (the floor under every Issue).
 * --csr may be given several times: thread i sends CSR i mod n (one device
 * per thread, since authz serialises the enrollments of one device).
 *
 * Prints one line per run:
 *   result mode=issue transport=unix threads=2 seconds=3.001 calls=6000
 *   errors=0 rate=1999.3 p50_us=950 p99_us=2100 max_us=9000
 *   client_cpu_us=120 [target_rate=500] [cpu_signer_us=900 rss_signer_kb=30000]
 * and exits 1 if any call failed (the first failure goes to stderr).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "pubkey.h"
#include "rpc.h"
#include "secretfree/v1/provisioning.pb-c.h"
#include "secretfree/v1/signer.pb-c.h"
#include "token.h"

#define MAX_THREADS 64
#define MAX_CSRS 64
#define MAX_PIDS 4
#define TBS_LEN 300
#define CALL_TIMEOUT_MS 30000

enum { MODE_SIGN, MODE_ISSUE, MODE_ENROLL, MODE_CHAIN };

typedef struct {
	uint8_t *data;
	size_t len;
} blob;

static struct {
	int mode;
	const char *mode_name;
	double seconds;
	int threads;
	int warmup;
	long calls;       /* per thread; 0: no limit */
	/* sign */
	const char *module, *uri, *pin_file, *label;
	/* issue / enroll */
	const char *target, *ca_file, *server_name;
	const char *product_line, *region, *key_prefix;
	int enrollment_ids;   /* issue: a new enrollment id per call */
	blob csr[MAX_CSRS];
	int ncsr;
	double rate;      /* 0: closed loop */
	struct {
		const char *name;
		long pid;
		double cpu0, cpu1;   /* seconds of CPU at the start / end */
		long rss_kb;
	} pid[MAX_PIDS];
	int npid;
	blob *bundle;     /* --csr-bundle: each used once */
	size_t nbundle;
	int pool;         /* --csr-pool: the bundle cycled, per thread */
} opt = { .seconds = 3, .threads = 1, .warmup = 10 };

static atomic_size_t bundle_next;

/* Shared state of a run. */
static token *tok;
static token_key *tkey;
static pthread_barrier_t start_barrier;
static double t_start, t_end;      /* CLOCK_MONOTONIC seconds */
static atomic_int stop_now;
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_error[600];

typedef struct {
	int idx;
	uint32_t *lat_us;               /* one per timed call */
	size_t n, cap;
	uint64_t errors;
	double last_done;               /* when the last timed call finished */
	int setup_failed;
	uint64_t counter;               /* idempotency keys */
	char key_prefix[96];
} worker;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
sleep_until(double t)
{
	struct timespec ts;

	ts.tv_sec = (time_t)t;
	ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	    EINTR)
		;
}

/* utime + stime of a process, in seconds; -1 if it cannot be read. */
static double
proc_cpu(long pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	FILE *f;
	size_t n;

	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces and ')': fields start after the
	 * last ')'. utime and stime are fields 14 and 15, the 12th and 13th
	 * after it. */
	if ((p = strrchr(buf, ')')) == NULL || sscanf(p + 2,
	    "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
	    &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long
proc_rss_kb(long pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%ld/status", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static double
self_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
record_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
record_error(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&err_lock);
	if (first_error[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(first_error, sizeof first_error, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&err_lock);
	atomic_store(&stop_now, 1);
}

static int
push_latency(worker *w, double us)
{
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 65536;
		uint32_t *p = realloc(w->lat_us, cap * sizeof *p);

		if (p == NULL)
			return -1;
		w->lat_us = p;
		w->cap = cap;
	}
	w->lat_us[w->n++] = us < 0 ? 0 : us > 4e9 ? 4000000000u :
	    (uint32_t)us;
	return 0;
}

/* ---- one call of each mode; 0 on success ---- */

typedef struct {
	rpc_client *cli;
	const blob *csr;
	size_t k;         /* --csr-pool: this thread's calls so far */
	uint8_t tbs[TBS_LEN];
} call_ctx;

static int
one_sign(worker *w, call_ctx *cc)
{
	uint8_t sig[1024];
	size_t siglen = sizeof sig;
	int rc;

	/* A different TBS each time, as certificates differ (serials). */
	memcpy(cc->tbs + 8, &w->counter, sizeof w->counter);
	w->counter++;
	if ((rc = token_sign(tok, tkey, cc->tbs, sizeof cc->tbs, sig,
	    &siglen)) != 0) {
		record_error("token_sign: %s", sf_strerror(rc));
		return -1;
	}
	return 0;
}

static int
one_issue(worker *w, call_ctx *cc)
{
	Secretfree__V1__IssueRequest req = SECRETFREE__V1__ISSUE_REQUEST__INIT;
	ProtobufCMessage *m = NULL;
	rpc_status st;
	char eid[128];
	int code;

	if (opt.enrollment_ids) {
		/* As authz sends them: each call a new enrollment. */
		snprintf(eid, sizeof eid, "%s-%llu", w->key_prefix,
		    (unsigned long long)w->counter++);
		req.enrollment_id = eid;
	}
	req.csr.data = cc->csr->data;
	req.csr.len = cc->csr->len;
	req.product_line = (char *)opt.product_line;
	req.region = (char *)opt.region;
	req.requester = "bench";
	code = rpc_client_call(cc->cli, &secretfree__v1__signer__descriptor,
	    "Issue", &req.base, &m, CALL_TIMEOUT_MS, &st);
	if (code != RPC_OK) {
		record_error("Signer.Issue: %s: %s", rpc_code_name(code),
		    st.message);
		return -1;
	}
	if (*((Secretfree__V1__IssueResponse *)m)->serial == '\0') {
		protobuf_c_message_free_unpacked(m, NULL);
		record_error("Signer.Issue: a reply without a serial");
		return -1;
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}

static int
one_chain(worker *w, call_ctx *cc)
{
	Secretfree__V1__GetCaChainRequest req =
	    SECRETFREE__V1__GET_CA_CHAIN_REQUEST__INIT;
	ProtobufCMessage *m = NULL;
	rpc_status st;
	int code, empty;

	(void)w;
	req.product_line = (char *)opt.product_line;
	req.region = (char *)opt.region;
	code = rpc_client_call(cc->cli, &secretfree__v1__signer__descriptor,
	    "GetCaChain", &req.base, &m, CALL_TIMEOUT_MS, &st);
	if (code != RPC_OK) {
		record_error("Signer.GetCaChain: %s: %s", rpc_code_name(code),
		    st.message);
		return -1;
	}
	empty = *((Secretfree__V1__GetCaChainResponse *)m)->chain_pem == '\0';
	protobuf_c_message_free_unpacked(m, NULL);
	if (empty) {
		record_error("Signer.GetCaChain: a reply without a chain");
		return -1;
	}
	return 0;
}

static int
one_enroll(worker *w, call_ctx *cc)
{
	Secretfree__V1__EnrollRequest req = SECRETFREE__V1__ENROLL_REQUEST__INIT;
	Secretfree__V1__EnrollResponse *r;
	ProtobufCMessage *m = NULL;
	rpc_status st;
	char key[128];
	int code;

	snprintf(key, sizeof key, "%s-%llu", w->key_prefix,
	    (unsigned long long)w->counter++);
	req.csr.data = cc->csr->data;
	req.csr.len = cc->csr->len;
	req.idempotency_key = key;
	req.region = (char *)(opt.region ? opt.region : "");
	code = rpc_client_call(cc->cli,
	    &secretfree__v1__provisioning__descriptor, "Enroll", &req.base, &m,
	    CALL_TIMEOUT_MS, &st);
	if (code != RPC_OK) {
		record_error("Provisioning.Enroll: %s: %s", rpc_code_name(code),
		    st.message);
		return -1;
	}
	r = (Secretfree__V1__EnrollResponse *)m;
	if (r->replayed || *r->serial == '\0') {
		record_error("Provisioning.Enroll: %s (key %s)", r->replayed ?
		    "replayed: the call did not issue" : "no serial", key);
		protobuf_c_message_free_unpacked(m, NULL);
		return -1;
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}

/* 0 on success, -1 on failure, 1 when the bundle is used up. */
static int
one_call(worker *w, call_ctx *cc)
{
	if (opt.pool)
		cc->csr = &opt.bundle[((size_t)w->idx + cc->k++ *
		    (size_t)opt.threads) % opt.nbundle];
	else if (opt.bundle != NULL) {
		size_t i = atomic_fetch_add(&bundle_next, 1);

		if (i >= opt.nbundle)
			return 1;
		cc->csr = &opt.bundle[i];
	}
	switch (opt.mode) {
	case MODE_SIGN:
		return one_sign(w, cc);
	case MODE_ISSUE:
		return one_issue(w, cc);
	case MODE_CHAIN:
		return one_chain(w, cc);
	default:
		return one_enroll(w, cc);
	}
}

static void *
worker_main(void *arg)
{
	worker *w = arg;
	call_ctx cc;
	int ok = 1;

	memset(&cc, 0, sizeof cc);
	for (size_t i = 0; i < sizeof cc.tbs; i++)
		cc.tbs[i] = (uint8_t)(i * 7 + w->idx);
	if (opt.mode != MODE_SIGN) {
		rpc_client_opts o = { 0 };

		o.tls_ca_file = opt.ca_file;
		o.server_name = opt.server_name;
		if (opt.ncsr)
			cc.csr = &opt.csr[w->idx % opt.ncsr];
		if (rpc_client_open(opt.target, &o, &cc.cli) != 0) {
			record_error("cannot open a client for %s", opt.target);
			ok = 0;
		}
	}
	/* Warm-up: connection, TLS handshake, caches; not timed. */
	for (int i = 0; ok && i < opt.warmup; i++)
		if (one_call(w, &cc) < 0)
			ok = 0;
	w->setup_failed = !ok;
	pthread_barrier_wait(&start_barrier);
	/* main sets t_start / t_end between the two barriers. */
	pthread_barrier_wait(&start_barrier);
	while (ok && !atomic_load(&stop_now)) {
		double t0 = now_s(), t1;
		int rc;

		if (opt.rate > 0) {
			/* Due times: this thread's k-th call at
			 * t_start + (k + idx / threads) * threads / rate. */
			double every = (double)opt.threads / opt.rate;
			double due = t_start + ((double)w->n +
			    (double)w->idx / opt.threads) * every;

			if (due >= t_end)
				break;
			if (due > t0)
				sleep_until(due);
			t0 = due;
		}
		if (t0 >= t_end || (opt.calls > 0 && w->n >= (size_t)opt.calls))
			break;
		if ((rc = one_call(w, &cc)) != 0) {
			if (rc < 0)
				w->errors++;
			break;
		}
		t1 = now_s();
		w->last_done = t1;
		if (push_latency(w, (t1 - t0) * 1e6) != 0) {
			record_error("out of memory");
			break;
		}
	}
	rpc_client_close(cc.cli);
	return NULL;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static uint32_t
pct(const uint32_t *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

static int
run(void)
{
	pthread_t th[MAX_THREADS];
	worker *ws;
	uint32_t *all;
	size_t total = 0, k = 0;
	uint64_t errors = 0;
	double last = 0, elapsed, cpu0, cpu1;
	const char *transport;
	int setup_failed = 0;

	if ((ws = calloc((size_t)opt.threads, sizeof *ws)) == NULL)
		return 1;
	pthread_barrier_init(&start_barrier, NULL, (unsigned)opt.threads + 1);
	for (int i = 0; i < opt.threads; i++) {
		ws[i].idx = i;
		snprintf(ws[i].key_prefix, sizeof ws[i].key_prefix,
		    "%s-%ld-%d", opt.key_prefix ? opt.key_prefix : "bench",
		    (long)getpid(), i);
		if (pthread_create(&th[i], NULL, worker_main, &ws[i]) != 0) {
			fprintf(stderr, "bench-issue: pthread_create: %s\n",
			    strerror(errno));
			exit(1);
		}
	}
	/* Workers finish their warm-up (first barrier), the clock is set,
	 * and all start together (second barrier). */
	pthread_barrier_wait(&start_barrier);
	for (int i = 0; i < opt.npid; i++)
		opt.pid[i].cpu0 = proc_cpu(opt.pid[i].pid);
	cpu0 = self_cpu();
	t_start = now_s();
	t_end = t_start + opt.seconds;
	pthread_barrier_wait(&start_barrier);
	for (int i = 0; i < opt.threads; i++)
		pthread_join(th[i], NULL);
	cpu1 = self_cpu();
	for (int i = 0; i < opt.npid; i++) {
		opt.pid[i].cpu1 = proc_cpu(opt.pid[i].pid);
		opt.pid[i].rss_kb = proc_rss_kb(opt.pid[i].pid);
	}
	for (int i = 0; i < opt.threads; i++) {
		total += ws[i].n;
		errors += ws[i].errors;
		setup_failed |= ws[i].setup_failed;
		if (ws[i].last_done > last)
			last = ws[i].last_done;
	}
	if ((all = malloc((total ? total : 1) * sizeof *all)) == NULL)
		return 1;
	for (int i = 0; i < opt.threads; i++) {
		memcpy(all + k, ws[i].lat_us, ws[i].n * sizeof *all);
		k += ws[i].n;
		free(ws[i].lat_us);
	}
	qsort(all, total, sizeof *all, cmp_u32);
	elapsed = last > t_start ? last - t_start : opt.seconds;
	transport = opt.mode == MODE_SIGN ? "pkcs11" :
	    strncmp(opt.target, "unix:", 5) == 0 ? "unix" : "tls";
	printf("result mode=%s transport=%s threads=%d seconds=%.3f calls=%zu"
	    " errors=%llu rate=%.1f p50_us=%u p99_us=%u max_us=%u",
	    opt.mode_name, transport, opt.threads, elapsed, total,
	    (unsigned long long)errors, total ? (double)total / elapsed : 0.0,
	    pct(all, total, 0.50), pct(all, total, 0.99),
	    total ? all[total - 1] : 0);
	printf(" client_cpu_us=%.0f", total ? (cpu1 - cpu0) * 1e6 /
	    (double)total : 0.0);
	if (opt.rate > 0)
		printf(" target_rate=%.1f", opt.rate);
	for (int i = 0; i < opt.npid; i++) {
		double d = opt.pid[i].cpu1 - opt.pid[i].cpu0;

		if (opt.pid[i].cpu0 < 0 || opt.pid[i].cpu1 < 0 || total == 0)
			printf(" cpu_%s_us=-1", opt.pid[i].name);
		else
			printf(" cpu_%s_us=%.0f", opt.pid[i].name,
			    d * 1e6 / (double)total);
		printf(" rss_%s_kb=%ld", opt.pid[i].name, opt.pid[i].rss_kb);
	}
	printf("\n");
	fflush(stdout);
	free(all);
	free(ws);
	pthread_barrier_destroy(&start_barrier);
	if (first_error[0])
		fprintf(stderr, "bench-issue: %s\n", first_error);
	return (errors || setup_failed || first_error[0]) ? 1 : 0;
}

/* ---- set-up ---- */

static void
usage(void)
{
	fprintf(stderr,
"usage: bench-issue sign --module M --uri U --pin-file F [--label L]\n"
"       bench-issue issue --target unix:PATH --csr FILE --product-line P"
" --region R\n"
"                   [--enrollment-ids 1]\n"
"       bench-issue enroll --target HOST:PORT|unix:PATH [--ca-file F]"
" --csr FILE\n"
"                   [--server-name N] [--region R] [--key-prefix K]\n"
"       bench-issue chain --target unix:PATH --product-line P --region R\n"
"  common: --seconds S --threads T --warmup N --calls N --rate R\n"
"          --cpu-pid NAME=PID (repeat); --csr may repeat;\n"
"          --csr-bundle FILE instead of --csr: each request sent once\n"
"          --csr-pool FILE instead of --csr: thread i sends i, i+T, ...\n");
	exit(2);
}

static int
read_file(const char *path, blob *out)
{
	FILE *f = fopen(path, "rb");
	uint8_t buf[65536];
	size_t n;

	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof buf, f);
	if (ferror(f) || n == 0 || n == sizeof buf ||
	    (out->data = malloc(n)) == NULL) {
		fclose(f);
		return -1;
	}
	memcpy(out->data, buf, n);
	out->len = n;
	fclose(f);
	return 0;
}

/* --csr-bundle: split a file of concatenated PEM requests. */
static int
read_bundle(const char *path)
{
	static const char begin[] = "-----BEGIN CERTIFICATE REQUEST-----";
	static const char end[] = "-----END CERTIFICATE REQUEST-----";
	FILE *f = fopen(path, "rb");
	char *text = NULL, *p;
	size_t len = 0, cap = 0, n;

	if (f == NULL) {
		fprintf(stderr, "bench-issue: cannot read %s: %s\n", path,
		    strerror(errno));
		return -1;
	}
	for (;;) {
		if (cap - len < 65536) {
			char *t = realloc(text, cap = cap ? cap * 2 : 1 << 20);

			if (t == NULL)
				goto oom;
			text = t;
		}
		if ((n = fread(text + len, 1, cap - len - 1, f)) == 0)
			break;
		len += n;
	}
	fclose(f);
	text[len] = '\0';
	for (p = strstr(text, begin); p != NULL; p = strstr(p, begin)) {
		char *e = strstr(p, end);
		blob *b;

		if (e == NULL)
			break;
		e += sizeof end - 1;
		if ((b = realloc(opt.bundle, (opt.nbundle + 1) *
		    sizeof *b)) == NULL)
			goto oom_text;
		opt.bundle = b;
		b = &opt.bundle[opt.nbundle];
		b->len = (size_t)(e - p) + 1;
		if ((b->data = malloc(b->len)) == NULL)
			goto oom_text;
		memcpy(b->data, p, b->len - 1);
		b->data[b->len - 1] = '\n';
		opt.nbundle++;
		p = e;
	}
	free(text);
	if (opt.nbundle == 0) {
		fprintf(stderr, "bench-issue: no PEM request in %s\n", path);
		return -1;
	}
	return 0;
oom:
	fclose(f);
oom_text:
	free(text);
	fprintf(stderr, "bench-issue: out of memory reading %s\n", path);
	return -1;
}

static void
parse_args(int argc, char **argv)
{
	if (argc < 2)
		usage();
	opt.mode_name = argv[1];
	if (strcmp(argv[1], "sign") == 0)
		opt.mode = MODE_SIGN;
	else if (strcmp(argv[1], "issue") == 0)
		opt.mode = MODE_ISSUE;
	else if (strcmp(argv[1], "enroll") == 0)
		opt.mode = MODE_ENROLL;
	else if (strcmp(argv[1], "chain") == 0)
		opt.mode = MODE_CHAIN;
	else
		usage();
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--seconds") == 0)
			opt.seconds = atof(v);
		else if (strcmp(a, "--threads") == 0)
			opt.threads = atoi(v);
		else if (strcmp(a, "--warmup") == 0)
			opt.warmup = atoi(v);
		else if (strcmp(a, "--calls") == 0)
			opt.calls = atol(v);
		else if (strcmp(a, "--module") == 0)
			opt.module = v;
		else if (strcmp(a, "--uri") == 0)
			opt.uri = v;
		else if (strcmp(a, "--pin-file") == 0)
			opt.pin_file = v;
		else if (strcmp(a, "--label") == 0)
			opt.label = v;
		else if (strcmp(a, "--target") == 0)
			opt.target = v;
		else if (strcmp(a, "--ca-file") == 0)
			opt.ca_file = v;
		else if (strcmp(a, "--server-name") == 0)
			opt.server_name = v;
		else if (strcmp(a, "--product-line") == 0)
			opt.product_line = v;
		else if (strcmp(a, "--region") == 0)
			opt.region = v;
		else if (strcmp(a, "--key-prefix") == 0)
			opt.key_prefix = v;
		else if (strcmp(a, "--enrollment-ids") == 0)
			opt.enrollment_ids = atoi(v) != 0;
		else if (strcmp(a, "--csr") == 0) {
			if (opt.ncsr == MAX_CSRS)
				usage();
			if (read_file(v, &opt.csr[opt.ncsr]) != 0) {
				fprintf(stderr, "bench-issue: cannot read %s\n",
				    v);
				exit(1);
			}
			opt.ncsr++;
		} else if (strcmp(a, "--rate") == 0) {
			opt.rate = atof(v);
			if (opt.rate <= 0)
				usage();
		} else if (strcmp(a, "--cpu-pid") == 0) {
			const char *eq = strchr(v, '=');

			if (opt.npid == MAX_PIDS || eq == NULL || eq == v ||
			    atol(eq + 1) <= 0)
				usage();
			opt.pid[opt.npid].name = strndup(v, (size_t)(eq - v));
			opt.pid[opt.npid].pid = atol(eq + 1);
			opt.npid++;
		} else if (strcmp(a, "--csr-bundle") == 0 ||
		    strcmp(a, "--csr-pool") == 0) {
			if (opt.bundle != NULL)
				usage();
			if (read_bundle(v) != 0)
				exit(1);
			opt.pool = strcmp(a, "--csr-pool") == 0;
		} else
			usage();
	}
	if (opt.bundle != NULL && opt.ncsr == 0) {
		/* Every thread's first request, for the checks below. */
		opt.csr[0] = opt.bundle[0];
		opt.ncsr = 1;
	}
	if (opt.seconds <= 0 || opt.threads < 1 || opt.threads > MAX_THREADS ||
	    opt.warmup < 0 || (opt.bundle && (opt.mode == MODE_SIGN ||
	    opt.mode == MODE_CHAIN)))
		usage();
	if (opt.pool && opt.nbundle % (size_t)opt.threads != 0) {
		fprintf(stderr, "bench-issue: the pool's %zu requests are not a"
		    " multiple of --threads %d: two threads would share a"
		    " device\n", opt.nbundle, opt.threads);
		exit(2);
	}
	switch (opt.mode) {
	case MODE_SIGN:
		if (!opt.module || !opt.uri || !opt.pin_file)
			usage();
		break;
	case MODE_ISSUE:
		if (!opt.target || !opt.ncsr || !opt.product_line ||
		    !opt.region)
			usage();
		break;
	case MODE_CHAIN:
		if (!opt.target || opt.ncsr || !opt.product_line ||
		    !opt.region)
			usage();
		break;
	default:
		if (!opt.target || !opt.ncsr)
			usage();
		if (strncmp(opt.target, "unix:", 5) != 0 && !opt.ca_file) {
			fprintf(stderr, "bench-issue: a TLS target needs"
			    " --ca-file\n");
			exit(2);
		}
		break;
	}
}

static int
open_token(void)
{
	token_opts o = { 0 };
	char why[256], label[64];
	int rc;

	o.module = opt.module;
	o.uri = opt.uri;
	o.pin_file = opt.pin_file;
	o.sessions = opt.threads > 4 ? opt.threads : 4;
	if ((rc = token_open(&o, &tok, why, sizeof why)) != 0) {
		fprintf(stderr, "bench-issue: token_open: %s: %s\n",
		    sf_strerror(rc), why);
		return -1;
	}
	if (opt.label && token_find_key(tok, opt.label, &tkey) == 0)
		return 0;
	if (opt.label == NULL) {
		snprintf(label, sizeof label, "bench-%ld-%ld", (long)getpid(),
		    (long)time(NULL));
		opt.label = label;
	}
	if ((rc = token_generate_key(tok, opt.label, PUBKEY_EC_P256,
	    &tkey)) != 0) {
		fprintf(stderr, "bench-issue: token_generate_key: %s\n",
		    sf_strerror(rc));
		return -1;
	}
	opt.label = NULL;   /* pointed at the stack */
	return 0;
}

int
main(int argc, char **argv)
{
	sigset_t set;
	int status;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	log_init("bench-issue", LOG_LEVEL_WARN);
	parse_args(argc, argv);
	if (opt.mode == MODE_SIGN) {
		if (open_token() != 0)
			return 1;
		status = run();
		token_key_free(tkey);
		token_close(tok);
		return status;
	}
	rpc_init();
	status = run();
	rpc_fini();
	if (opt.bundle != NULL) {
		for (size_t i = 0; i < opt.nbundle; i++)
			free(opt.bundle[i].data);
		free(opt.bundle);
	} else
		for (int i = 0; i < opt.ncsr; i++)
			free(opt.csr[i].data);
	for (int i = 0; i < opt.npid; i++)
		free((char *)opt.pid[i].name);
	return status;
}
