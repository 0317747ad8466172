/*
 * cli.c - what every secretfree command shares (see cli.h): its messages
 * ("secretfree: <cmd>: ..." and hints on stderr), the global options mixed
 * into each command's getopt table, where the three targets come from
 * (flag, then environment, then the [cli] section of the configuration
 * file), the gRPC clients and calls, with a failed call turned into one
 * error line, a hint and an exit code, and whole-file reads and writes.
 * What the commands print on stdout is out.c's.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "conf.h"
#include "err.h"
#include "util.h"

#define PROG "secretfree"
#define CONF_SECTION "cli"

static const struct {
	const char *flag;
	const char *env;
	const char *key;
	const char *what;
	const char *form;
} targets[CLI_NTARGETS] = {
	{ "--signer", "SECRETFREE_SIGNER", "signer",
	    "signer admin socket", "unix:PATH" },
	{ "--authz", "SECRETFREE_AUTHZ", "authz",
	    "authz admin socket", "unix:PATH" },
	{ "--endpoint", "SECRETFREE_ENDPOINT", "endpoint",
	    "authz device endpoint", "HOST:PORT or unix:PATH" },
};

void
cli_init(cli *c)
{
	memset(c, 0, sizeof *c);
	c->cmd = "";
	c->timeout_ms = 30 * 1000;
}

void
cli_fini(cli *c)
{
	for (int i = 0; i < CLI_NTARGETS; i++) {
		rpc_client_close(c->client[i]);
		c->client[i] = NULL;
		free(c->target[i]);
		c->target[i] = NULL;
	}
	if (c->rpc_up)
		rpc_fini();
	c->rpc_up = 0;
	conf_free(c->conf);
	c->conf = NULL;
	free(c->conf_path);
	free(c->conf_ca_file);
	free(c->opt_all);
	c->conf_path = c->conf_ca_file = NULL;
	c->opt_all = NULL;
}

/* ------------------------------------------------------------------ */
/* Messages                                                             */

static void vmsg(cli *c, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
vmsg(cli *c, const char *fmt, va_list ap)
{
	fflush(stdout);
	if (c->cmd && *c->cmd)
		fprintf(stderr, PROG ": %s: ", c->cmd);
	else
		fprintf(stderr, PROG ": ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int
cli_error(cli *c, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(c, fmt, ap);
	va_end(ap);
	return code;
}

void
cli_hint(cli *c, const char *fmt, ...)
{
	va_list ap;

	(void)c;
	va_start(ap, fmt);
	fputs("hint: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

int
cli_usage(cli *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(c, fmt, ap);
	va_end(ap);
	fprintf(stderr, "try '" PROG "%s%s --help'\n", *c->cmd ? " " : "",
	    c->cmd);
	return CLI_EXIT_USAGE;
}

int
cli_exit_code(int status)
{
	switch (status) {
	case RPC_OK:
		return CLI_EXIT_OK;
	case RPC_NOT_FOUND:
		return CLI_EXIT_NOTFOUND;
	case RPC_PERMISSION_DENIED:
	case RPC_UNAUTHENTICATED:
		return CLI_EXIT_DENIED;
	case RPC_INVALID_ARGUMENT:
	case RPC_OUT_OF_RANGE:
		return CLI_EXIT_INPUT;
	case RPC_UNAVAILABLE:
	case RPC_DEADLINE_EXCEEDED:
		return CLI_EXIT_UNAVAIL;
	case RPC_RESOURCE_EXHAUSTED:
		return CLI_EXIT_LIMIT;
	case RPC_ALREADY_EXISTS:
	case RPC_FAILED_PRECONDITION:
		return CLI_EXIT_STATE;
	}
	return CLI_EXIT_ERROR;
}

/* ------------------------------------------------------------------ */
/* Options                                                              */

enum {
	GOPT_SIGNER = 0x1000, GOPT_AUTHZ, GOPT_CONFIG, GOPT_JSON, GOPT_TIMEOUT
};

static const struct option global_opts[] = {
	{ "signer", required_argument, NULL, GOPT_SIGNER },
	{ "authz", required_argument, NULL, GOPT_AUTHZ },
	{ "config", required_argument, NULL, GOPT_CONFIG },
	{ "json", no_argument, NULL, GOPT_JSON },
	{ "timeout", required_argument, NULL, GOPT_TIMEOUT },
};
#define NGLOBAL (sizeof global_opts / sizeof global_opts[0])

static const char *
opt_name(const struct option *all, int val)
{
	for (size_t i = 0; all && all[i].name; i++)
		if (all[i].val == val)
			return all[i].name;
	return "?";
}

int
cli_getopt(cli *c, int argc, char **argv, const struct option *opts)
{
	long long n;
	int ch;

	if (c->opt_cmd != opts || c->opt_all == NULL) {
		size_t k = 0;

		while (opts && opts[k].name)
			k++;
		free(c->opt_all);
		if ((c->opt_all = calloc(k + NGLOBAL + 1,
		    sizeof *c->opt_all)) == NULL) {
			cli_error(c, CLI_EXIT_ERROR, "out of memory");
			return '?';
		}
		if (k)
			memcpy(c->opt_all, opts, k * sizeof *opts);
		memcpy(c->opt_all + k, global_opts, sizeof global_opts);
		c->opt_cmd = opts;
		optind = 0;     /* glibc: start over, permuting */
		opterr = 0;
	}
	for (;;) {
		ch = getopt_long(argc, argv, "", c->opt_all, NULL);
		switch (ch) {
		case GOPT_SIGNER:
			c->opt_target[CLI_SIGNER] = optarg;
			continue;
		case GOPT_AUTHZ:
			c->opt_target[CLI_AUTHZ] = optarg;
			continue;
		case GOPT_CONFIG:
			c->opt_config = optarg;
			continue;
		case GOPT_JSON:
			c->json = 1;
			continue;
		case GOPT_TIMEOUT:
			if (cli_num(c, "--timeout", optarg, 1, 86400, &n) != 0)
				return '?';
			c->timeout_ms = (int)n * 1000;
			continue;
		case '?':
			if (optopt)
				cli_usage(c, "option --%s needs a value",
				    opt_name(c->opt_all, optopt));
			else
				cli_usage(c, "unknown option %s",
				    argv[optind - 1]);
			return '?';
		}
		return ch;
	}
}

/* The reasons a revocation may give (the signer refuses the others). */
static const struct { int v; const char *name; } REASONS[] = {
	{ 0, "unspecified" }, { 1, "key-compromise" },
	{ 2, "ca-compromise" }, { 3, "affiliation-changed" },
	{ 4, "superseded" }, { 5, "cessation-of-operation" },
	{ 9, "privilege-withdrawn" }, { 10, "aa-compromise" },
};

/* a and b equal, ignoring case and dashes. */
static int
reason_eq(const char *a, const char *b)
{
	for (;;) {
		while (*a == '-')
			a++;
		while (*b == '-')
			b++;
		if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
			return 0;
		if (*a == '\0')
			return 1;
		a++;
		b++;
	}
}

int
cli_reason(cli *c, const char *s, int *reason)
{
	for (size_t i = 0; i < sizeof REASONS / sizeof REASONS[0]; i++)
		if (reason_eq(s, REASONS[i].name)) {
			*reason = REASONS[i].v;
			return 0;
		}
	return cli_usage(c, "\"%s\" is not a revocation reason: one of"
	    " unspecified, key-compromise, ca-compromise, affiliation-changed,"
	    " superseded, cessation-of-operation, privilege-withdrawn,"
	    " aa-compromise", s);
}

const char *
cli_reason_name(int reason)
{
	for (size_t i = 0; i < sizeof REASONS / sizeof REASONS[0]; i++)
		if (REASONS[i].v == reason)
			return REASONS[i].name;
	return "unknown";
}

int
cli_operand(cli *c, int argc, char **argv, const char *what,
    const char **out)
{
	*out = NULL;
	if (optind >= argc)
		return cli_usage(c, "which %s?", what);
	if (optind + 1 != argc)
		return cli_usage(c, "one %s only, not %s", what,
		    argv[argc - 1]);
	*out = argv[optind];
	return 0;
}

int
cli_num(cli *c, const char *opt, const char *s, long long min, long long max,
    long long *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
		return cli_usage(c, "%s must be a number from %lld to %lld, not"
		    " \"%s\"", opt, min, max, s);
	*out = v;
	return 0;
}

int
cli_list_add(cli *c, cli_list *l, char *s)
{
	char **nv;

	if ((nv = reallocarray(l->v, l->n + 1, sizeof *nv)) == NULL)
		return cli_error(c, CLI_EXIT_ERROR, "out of memory");
	l->v = nv;
	l->v[l->n++] = s;
	return 0;
}

void
cli_list_free(cli_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* ------------------------------------------------------------------ */
/* Configuration and targets                                            */

static int
readable(const char *path)
{
	return access(path, R_OK) == 0;
}

/* Load the configuration file once: --config, $SECRETFREE_CONFIG,
 * ~/.config/secretfree/cli.conf, /etc/secretfree/cli.conf. */
static int
load_conf(cli *c)
{
	static const char *const keys[] = { "signer", "authz", "endpoint",
	    "ca_file", NULL };
	const char *path = c->opt_config, *env, *home;
	char *guess = NULL, why[512];
	int rc;

	if (c->conf_loaded)
		return c->conf_loaded < 0 ? CLI_EXIT_USAGE : 0;
	c->conf_loaded = 1;
	if (path == NULL && (env = getenv("SECRETFREE_CONFIG")) != NULL &&
	    *env)
		path = env;
	if (path == NULL) {
		if ((env = getenv("XDG_CONFIG_HOME")) != NULL && *env)
			guess = sf_aprintf("%s/secretfree/cli.conf", env);
		else if ((home = getenv("HOME")) != NULL && *home)
			guess = sf_aprintf("%s/.config/secretfree/cli.conf",
			    home);
		if (guess && readable(guess))
			path = guess;
		else if (readable("/etc/secretfree/cli.conf"))
			path = "/etc/secretfree/cli.conf";
	}
	if (path == NULL) {
		free(guess);
		return 0;
	}
	if ((c->conf_path = strdup(path)) == NULL) {
		free(guess);
		return cli_error(c, CLI_EXIT_ERROR, "out of memory");
	}
	free(guess);
	rc = conf_load(c->conf_path, &c->conf, why, sizeof why);
	if (rc == SF_EIO) {
		c->conf_loaded = -1;
		return cli_error(c, CLI_EXIT_USAGE, "cannot read configuration"
		    " file %s: %s", c->conf_path, strerror(errno));
	}
	if (rc == 0)
		rc = conf_check_keys(c->conf, CONF_SECTION, keys, why,
		    sizeof why);
	if (rc != 0) {
		c->conf_loaded = -1;
		return cli_error(c, CLI_EXIT_USAGE, "%s", why);
	}
	return 0;
}

/* "unix:/p" stays, "/p" becomes "unix:/p"; host:port only where allowed. */
static char *
normalize(cli *c, int which, const char *v, const char *src)
{
	if (strncmp(v, "unix:", 5) == 0 && v[5] != '\0')
		return strdup(v);
	if (v[0] == '/')
		return sf_aprintf("unix:%s", v);
	if (which == CLI_ENDPOINT && strchr(v, ':') != NULL && v[0] != ':')
		return strdup(v);
	cli_error(c, CLI_EXIT_USAGE, "%s \"%s\" is not %s", src, v,
	    targets[which].form);
	return NULL;
}

const char *
cli_target(cli *c, int which)
{
	const char *v, *src;
	char *srcbuf = NULL;

	if (c->target[which])
		return c->target[which];
	v = c->opt_target[which];
	src = targets[which].flag;
	if (v == NULL || *v == '\0') {
		v = getenv(targets[which].env);
		src = targets[which].env;
	}
	if (v == NULL || *v == '\0') {
		v = NULL;
		if (load_conf(c) != 0)
			return NULL;
		if (c->conf && (v = conf_get(c->conf, CONF_SECTION,
		    targets[which].key)) != NULL && *v) {
			srcbuf = sf_aprintf("%s in %s", targets[which].key,
			    c->conf_path);
			src = srcbuf ? srcbuf : targets[which].key;
		} else
			v = NULL;
	}
	if (v == NULL) {
		cli_error(c, CLI_EXIT_USAGE, "no %s given: use %s %s, set %s,"
		    " or put %s = ... in [cli] of the configuration file",
		    targets[which].what, targets[which].flag,
		    targets[which].form, targets[which].env,
		    targets[which].key);
		return NULL;
	}
	c->target[which] = normalize(c, which, v, src);
	free(srcbuf);
	return c->target[which];
}

const char *
cli_ca_file(cli *c)
{
	const char *v;

	if (c->ca_file)
		return c->ca_file;
	if (load_conf(c) != 0 || c->conf == NULL)
		return NULL;
	if ((v = conf_get(c->conf, CONF_SECTION, "ca_file")) == NULL ||
	    *v == '\0')
		return NULL;
	free(c->conf_ca_file);
	c->conf_ca_file = strdup(v);
	return c->conf_ca_file;
}

int
cli_client(cli *c, int which, rpc_client **out)
{
	rpc_client_opts o;
	const char *t, *ca = NULL;

	*out = NULL;
	if (c->client[which]) {
		*out = c->client[which];
		return 0;
	}
	if ((t = cli_target(c, which)) == NULL)
		return CLI_EXIT_USAGE;
	memset(&o, 0, sizeof o);
	if (strncmp(t, "unix:", 5) != 0) {
		ca = cli_ca_file(c);
		if (c->conf_loaded < 0)
			return CLI_EXIT_USAGE;
		if (ca && !readable(ca))
			return cli_error(c, CLI_EXIT_INPUT, "cannot read CA"
			    " file %s: %s", ca, strerror(errno));
		o.tls_ca_file = ca;
		o.server_name = c->server_name;
		o.tls_cert_file = c->tls_cert_file;
		o.tls_key_file = c->tls_key_file;
	}
	if (!c->rpc_up) {
		rpc_grpc_log_quiet(1);
		rpc_init();
		c->rpc_up = 1;
	}
	if (rpc_client_open(t, &o, &c->client[which]) != 0)
		return cli_error(c, CLI_EXIT_ERROR, "cannot set up a channel to"
		    " %s", t);
	*out = c->client[which];
	return 0;
}

int
cli_call_quiet(cli *c, int which, const ProtobufCServiceDescriptor *svc,
    const char *method, const ProtobufCMessage *req, ProtobufCMessage **resp,
    rpc_status *st)
{
	rpc_client *rc;
	int ec;

	*resp = NULL;
	st->code = RPC_UNKNOWN;
	st->message[0] = '\0';
	if ((ec = cli_client(c, which, &rc)) != 0) {
		st->code = -1;
		return ec;
	}
	return cli_exit_code(rpc_client_call(rc, svc, method, req, resp,
	    c->timeout_ms, st));
}

int
cli_rpc_fail(cli *c, int which, const rpc_status *st)
{
	const char *who = which == CLI_SIGNER ? "the signer" : "authz";
	const char *flag = targets[which].flag;
	const char *t = c->target[which] ? c->target[which] : "";
	int code = st->code;

	if (code < 0)   /* the client could not be set up: reported */
		return CLI_EXIT_USAGE;
	cli_error(c, 0, "%s (%s)", *st->message ? st->message :
	    rpc_code_name(code), rpc_code_name(code));
	if (code >= 0 && code < CLI_NSTATUS && c->hint[code]) {
		cli_hint(c, "%s", c->hint[code]);
		return cli_exit_code(code);
	}
	switch (code) {
	case RPC_UNAVAILABLE:
		if (which == CLI_ENDPOINT)
			cli_hint(c, "is authz listening at %s, and is its"
			    " signer up? check --endpoint (and --ca-file,"
			    " --server-name for TLS); retry later", t);
		else
			cli_hint(c, "is %s running? check %s (now %s)", who,
			    flag, t);
		break;
	case RPC_DEADLINE_EXCEEDED:
		cli_hint(c, "no answer within %d s (--timeout); retry later",
		    c->timeout_ms / 1000);
		break;
	case RPC_PERMISSION_DENIED:
		if (strstr(st->message, "is not served on") != NULL)
			cli_hint(c, "%s must name %s's admin socket (now %s)",
			    flag, who, t);
		else if (strstr(st->message, "peer uid") != NULL)
			cli_hint(c, "run as a user in %s's admin_uids", who);
		break;
	case RPC_UNIMPLEMENTED:
		/* Another daemon's socket, or one older than this CLI. */
		if (which == CLI_ENDPOINT)
			cli_hint(c, "%s does not serve this: is --endpoint"
			    " authz's device endpoint?", t);
		else
			cli_hint(c, "%s must name %s's admin socket (now %s);"
			    " or %s is older than this tool", flag, who, t,
			    who);
		break;
	case RPC_RESOURCE_EXHAUSTED:
		cli_hint(c, "rate limited; retry later");
		break;
	}
	return cli_exit_code(code);
}

int
cli_call(cli *c, int which, const ProtobufCServiceDescriptor *svc,
    const char *method, const ProtobufCMessage *req, ProtobufCMessage **resp)
{
	rpc_status st;
	int ec;

	if ((ec = cli_call_quiet(c, which, svc, method, req, resp, &st)) == 0)
		return 0;
	return cli_rpc_fail(c, which, &st);
}

/* ------------------------------------------------------------------ */
/* Files                                                                */

int
cli_read_file(cli *c, const char *what, const char *path, size_t max,
    uint8_t **out, size_t *len)
{
	int rc;

	if ((rc = sf_read_file(path, max, out, len)) == 0)
		return 0;
	if (rc == SF_ETOOBIG)
		return cli_error(c, CLI_EXIT_INPUT, "%s %s is larger than %zu"
		    " bytes", what, path, max);
	return cli_error(c, CLI_EXIT_INPUT, "cannot read %s %s: %s", what,
	    path, strerror(errno));
}

int
cli_write_file(cli *c, const char *path, const void *data, size_t len,
    int mode)
{
	if (strcmp(path, "-") == 0) {
		if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0)
			return cli_error(c, CLI_EXIT_ERROR, "cannot write to"
			    " standard output: %s", strerror(errno));
		return 0;
	}
	if (sf_write_file(path, data, len, mode) != 0)
		return cli_error(c, CLI_EXIT_ERROR, "cannot write %s: %s", path,
		    strerror(errno));
	return 0;
}
