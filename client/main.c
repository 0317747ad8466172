/*
 * secretfree - the PKI admin's command-line tool: builds the CA hierarchy
 * on the signer, imports the factory's device keys into the signer and
 * authz, manages devices, and simulates a device enrolling. It holds
 * nothing: it reaches only the signer's admin socket, authz's admin socket
 * and authz's device listener.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"

#ifndef SF_VERSION
#define SF_VERSION "unknown"
#endif

static const char *USAGE_HEAD =
"Usage: secretfree [GLOBAL OPTIONS] COMMAND [ARGS...]\n"
"\n"
"The secretfree admin tool: build the CA hierarchy in the signer, import\n"
"the factory's device keys into the signer and authz, look after devices\n"
"and certificates, and enroll as a device would.\n"
"\n"
"Commands:\n";

static const char *USAGE_TAIL =
"\n"
"Global options (before the command):\n"
"  --signer unix:PATH   the signer's admin socket (env SECRETFREE_SIGNER)\n"
"  --authz unix:PATH    authz's admin socket (env SECRETFREE_AUTHZ)\n"
"  --config FILE        configuration file (env SECRETFREE_CONFIG; else\n"
"                       ~/.config/secretfree/cli.conf, else\n"
"                       /etc/secretfree/cli.conf if present)\n"
"  --json               print results as JSON on standard output\n"
"  --timeout SECONDS    deadline of each call (default 30)\n"
"  -h, --help           this text; COMMAND --help explains a command\n"
"  --version            print the version\n"
"\n"
"Targets are taken from the flags, then the environment, then the\n"
"configuration file, an INI file with a [cli] section:\n"
"  [cli]\n"
"  signer = unix:/run/secretfree/admin/signer.sock\n"
"  authz = unix:/run/secretfree/authz-admin/authz.sock\n"
"  endpoint = provision.example.net:8443   # for enroll\n"
"  ca_file = /etc/secretfree/root.pem      # for enroll over TLS\n"
"\n"
"Exit status:\n"
"  0  success\n"
"  1  other error\n"
"  2  usage or configuration error\n"
"  3  not found (NOT_FOUND)\n"
"  4  permission denied (PERMISSION_DENIED)\n"
"  5  invalid input (INVALID_ARGUMENT, OUT_OF_RANGE, unreadable input file)\n"
"  6  unavailable or deadline exceeded: retry later\n"
"  7  rate limited (RESOURCE_EXHAUSTED): retry later\n"
"  8  already exists or wrong state (ALREADY_EXISTS, FAILED_PRECONDITION)\n"
"  9  an import finished with refused records\n"
"  10 the signer made a change that authz did not mirror (authz\n"
"     unreachable): run `secretfree audit reconcile`; from audit\n"
"     reconcile: the two still disagree\n"
"  11 audit verify: the audit trail is broken (the message names the\n"
"     first broken event)\n"
"\n"
"Example:\n"
"  export SECRETFREE_SIGNER=unix:/run/secretfree/admin/signer.sock\n"
"  export SECRETFREE_AUTHZ=unix:/run/secretfree/authz-admin/authz.sock\n"
"  secretfree ca init --product-line widgiot --region us-east-1\n"
"  secretfree device import devices.csv --product-line widgiot\n"
"  secretfree device list --state registered\n";

static const cli_cmd *const tables[] = {
	cmd_ca_table, cmd_ca_rotate_table, cmd_ca_server_table, cmd_ca_claim_table,
	cmd_device_table, cmd_devstate_table, cmd_renew_table, cmd_enroll_table,
	cmd_cert_table, cmd_crl_table, cmd_audit_table, cmd_audit_trail_table,
	cmd_status_table,
	cmd_mfr_table,
	cmd_mqtt_table,
};
#define NTABLES (sizeof tables / sizeof tables[0])

static void
usage(FILE *f)
{
	char name[64];

	fputs(USAGE_HEAD, f);
	for (size_t t = 0; t < NTABLES; t++)
		for (const cli_cmd *k = tables[t]; k->name; k++) {
			snprintf(name, sizeof name, "%s%s%s", k->group ?
			    k->group : "", k->group ? " " : "", k->name);
			fprintf(f, "  %-20s %s\n", name, k->summary);
		}
	fputs(USAGE_TAIL, f);
}

static int
is_group(const char *s)
{
	for (size_t t = 0; t < NTABLES; t++)
		for (const cli_cmd *k = tables[t]; k->name; k++)
			if (k->group && strcmp(k->group, s) == 0)
				return 1;
	return 0;
}

static void
group_usage(FILE *f, const char *group)
{
	fprintf(f, "Usage: secretfree %s SUBCOMMAND [OPTIONS]\n\n"
	    "Subcommands:\n", group);
	for (size_t t = 0; t < NTABLES; t++)
		for (const cli_cmd *k = tables[t]; k->name; k++)
			if (k->group && strcmp(k->group, group) == 0)
				fprintf(f, "  %-14s %s\n", k->name, k->summary);
	fprintf(f, "\nEach has its own help: secretfree %s SUBCOMMAND --help\n"
	    "\nExample:\n  secretfree %s %s --help\n", group, group,
	    strcmp(group, "ca") == 0 ? "init" : strcmp(group, "audit") == 0 ?
	    "reconcile" : strcmp(group, "mqtt") == 0 ? "config" : "list");
}

static const cli_cmd *
find(const char *group, const char *name)
{
	for (size_t t = 0; t < NTABLES; t++)
		for (const cli_cmd *k = tables[t]; k->name; k++) {
			if ((k->group == NULL) != (group == NULL))
				continue;
			if (group && strcmp(k->group, group) != 0)
				continue;
			if (strcmp(k->name, name) == 0)
				return k;
		}
	return NULL;
}

/* --help or -h among a command's arguments (before any "--"). */
static int
wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return 0;
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0)
			return 1;
	}
	return 0;
}

/* The global options before the command; returns the command's index,
 * or -1 with *ec set when done (help, version, usage error). */
static int
globals(cli *c, int argc, char **argv, int *ec)
{
	static const char *const takes[] = { "--signer", "--authz",
	    "--config", "--timeout", NULL };
	int i;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i], *eq = strchr(a, '='), *v = NULL;
		size_t n = eq ? (size_t)(eq - a) : strlen(a);
		long long t;
		int k;

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			*ec = CLI_EXIT_OK;
			return -1;
		}
		if (strcmp(a, "--version") == 0) {
			printf("secretfree %s\n", SF_VERSION);
			*ec = CLI_EXIT_OK;
			return -1;
		}
		if (strcmp(a, "--json") == 0) {
			c->json = 1;
			continue;
		}
		for (k = 0; takes[k]; k++)
			if (strlen(takes[k]) == n &&
			    strncmp(a, takes[k], n) == 0)
				break;
		if (takes[k] == NULL) {
			*ec = cli_usage(c, "unknown global option %s", a);
			return -1;
		}
		if (eq)
			v = eq + 1;
		else if (i + 1 < argc)
			v = argv[++i];
		else {
			*ec = cli_usage(c, "option %s needs a value", takes[k]);
			return -1;
		}
		switch (k) {
		case 0:
			c->opt_target[CLI_SIGNER] = v;
			break;
		case 1:
			c->opt_target[CLI_AUTHZ] = v;
			break;
		case 2:
			c->opt_config = v;
			break;
		default:
			if ((*ec = cli_num(c, "--timeout", v, 1, 86400,
			    &t)) != 0)
				return -1;
			c->timeout_ms = (int)t * 1000;
		}
	}
	if (i >= argc) {
		usage(stderr);
		*ec = CLI_EXIT_USAGE;
		return -1;
	}
	return i;
}

static int
dispatch(cli *c, int argc, char **argv)
{
	static char cmdname[64];
	const cli_cmd *k;
	int i, ec;

	if ((i = globals(c, argc, argv, &ec)) < 0)
		return ec;
	if (strcmp(argv[i], "help") == 0) {
		if (i + 1 >= argc) {
			usage(stdout);
			return CLI_EXIT_OK;
		}
		if (is_group(argv[i + 1]) && i + 2 >= argc) {
			group_usage(stdout, argv[i + 1]);
			return CLI_EXIT_OK;
		}
		k = is_group(argv[i + 1]) ? find(argv[i + 1], argv[i + 2]) :
		    find(NULL, argv[i + 1]);
		if (k == NULL)
			return cli_usage(c, "no command %s", argv[i + 1]);
		fputs(k->help, stdout);
		return CLI_EXIT_OK;
	}
	if (is_group(argv[i])) {
		const char *group = argv[i];

		if (i + 1 >= argc) {
			group_usage(stderr, group);
			return CLI_EXIT_USAGE;
		}
		if (strcmp(argv[i + 1], "--help") == 0 ||
		    strcmp(argv[i + 1], "-h") == 0) {
			group_usage(stdout, group);
			return CLI_EXIT_OK;
		}
		if ((k = find(group, argv[i + 1])) == NULL) {
			c->cmd = group;
			return cli_usage(c, "unknown subcommand %s",
			    argv[i + 1]);
		}
		i++;
	} else if ((k = find(NULL, argv[i])) == NULL)
		return cli_usage(c, "unknown command %s", argv[i]);
	snprintf(cmdname, sizeof cmdname, "%s%s%s", k->group ? k->group : "",
	    k->group ? " " : "", k->name);
	c->cmd = cmdname;
	if (wants_help(argc - i, argv + i)) {
		fputs(k->help, stdout);
		return CLI_EXIT_OK;
	}
	return k->fn(c, argc - i, argv + i);
}

int
main(int argc, char **argv)
{
	sigset_t set;
	cli c;
	int ec;

	/* gRPC starts threads: no signal of ours may land on them, and a
	 * closed pipe is an error to report, not a death. */
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	log_init("secretfree", LOG_LEVEL_WARN);
	cli_init(&c);
	ec = dispatch(&c, argc, argv);
	if (fflush(stdout) != 0 && ec == 0)
		ec = cli_error(&c, CLI_EXIT_ERROR, "cannot write the output");
	cli_fini(&c);
	return ec;
}
