/*
 * cli.h - what the secretfree commands share: the targets (signer admin
 * socket, authz admin socket, authz device endpoint) and their clients,
 * option parsing, gRPC status -> exit code with one error line and a hint,
 * and whole-file reads and writes. What the commands print on stdout is
 * out.h's.
 *
 * The CLI holds nothing: it reaches only the signer's admin socket, authz's
 * admin socket and (for enroll, as a device would) authz's device listener.
 */
#ifndef SF_CLI_H
#define SF_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

#include "rpc.h"

/* Exit codes: documented in `secretfree --help` and client/README.md. */
enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_ERROR = 1,      /* anything else */
	CLI_EXIT_USAGE = 2,      /* bad command line or configuration */
	CLI_EXIT_NOTFOUND = 3,   /* NOT_FOUND */
	CLI_EXIT_DENIED = 4,     /* PERMISSION_DENIED, UNAUTHENTICATED */
	CLI_EXIT_INPUT = 5,      /* INVALID_ARGUMENT, OUT_OF_RANGE, bad file */
	CLI_EXIT_UNAVAIL = 6,    /* UNAVAILABLE, DEADLINE_EXCEEDED: retry */
	CLI_EXIT_LIMIT = 7,      /* RESOURCE_EXHAUSTED */
	CLI_EXIT_STATE = 8,      /* ALREADY_EXISTS, FAILED_PRECONDITION */
	CLI_EXIT_REFUSED = 9,    /* an import finished with refused records */
	CLI_EXIT_MIRROR = 10,    /* the signer changed, authz did not follow */
	CLI_EXIT_TAMPERED = 11,  /* audit verify: the audit trail is broken */
};

/* The three places the CLI talks to. */
enum { CLI_SIGNER = 0, CLI_AUTHZ = 1, CLI_ENDPOINT = 2, CLI_NTARGETS = 3 };

#define CLI_NSTATUS 17          /* gRPC status codes 0..16 */

typedef struct conf conf;

typedef struct cli {
	const char *cmd;                 /* "ca init": for messages */
	const char *opt_target[CLI_NTARGETS];  /* from flags */
	const char *opt_config;          /* --config */
	const char *ca_file;             /* enroll: --ca-file */
	const char *server_name;         /* enroll: --server-name */
	const char *tls_cert_file;       /* enroll --renew: the client */
	const char *tls_key_file;        /* certificate over TLS */
	int json;                        /* --json */
	int timeout_ms;                  /* --timeout, in ms */
	/* Per-status hints a command sets before its calls (NULL: default). */
	const char *hint[CLI_NSTATUS];
	/* Private. */
	char *target[CLI_NTARGETS];      /* resolved: unix:/... or host:port */
	char *conf_ca_file;
	conf *conf;
	char *conf_path;
	int conf_loaded;
	int rpc_up;
	rpc_client *client[CLI_NTARGETS];
	const struct option *opt_cmd;    /* cli_getopt's current table */
	struct option *opt_all;
} cli;

void cli_init(cli *c);
/* Close the clients, shut gRPC down, free what cli_* allocated. */
void cli_fini(cli *c);

/* ---- messages ---- */

/* "secretfree: <cmd>: <message>" on stderr; returns code. */
int cli_error(cli *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "hint: <text>" on stderr. */
void cli_hint(cli *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A usage error: the message, then "try 'secretfree <cmd> --help'";
 * returns CLI_EXIT_USAGE. */
int cli_usage(cli *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The exit code for a gRPC status. */
int cli_exit_code(int status);

/* ---- options ---- */

/*
 * getopt_long over the command's long options plus the global ones
 * (--signer, --authz, --config, --json, --timeout, which cli_getopt
 * handles itself). Returns the option's val, -1 at the end (optind is the
 * first operand), or '?' after printing a usage message.
 */
int cli_getopt(cli *c, int argc, char **argv, const struct option *opts);
/*
 * A revocation reason: an RFC 5280 name ("keyCompromise") or its
 * lower-case, dashed form ("key-compromise"), case-insensitive; into
 * *reason as common.proto numbers it. CLI_EXIT_USAGE after a message
 * listing the names.
 */
int cli_reason(cli *c, const char *s, int *reason);
/* The lower-case, dashed name of a reason ("key-compromise"). */
const char *cli_reason_name(int reason);

/* The one operand a command takes, argv[optind] once cli_getopt is done,
 * into *out; else CLI_EXIT_USAGE after "which <what>?" or "one <what>
 * only, not ...". */
int cli_operand(cli *c, int argc, char **argv, const char *what,
    const char **out);

/* An integer option in [min, max]; CLI_EXIT_USAGE after a message. */
int cli_num(cli *c, const char *opt, const char *s, long long min,
    long long max, long long *out);

/* A growing list of borrowed strings (repeated options). */
typedef struct {
	char **v;
	size_t n;
} cli_list;

int cli_list_add(cli *c, cli_list *l, char *s);
void cli_list_free(cli_list *l);

/* ---- targets and calls ---- */

/*
 * The target for which, resolved from flag, environment, then configuration
 * file (DESIGN: flags, then environment, then config). NULL after printing
 * a message naming what to set (then the command returns CLI_EXIT_USAGE).
 */
const char *cli_target(cli *c, int which);
/* The CA file for enroll: --ca-file, else ca_file in the configuration;
 * NULL when neither (gRPC's default roots are used). */
const char *cli_ca_file(cli *c);
/* Open (once) the client for which. CLI_EXIT_OK or an exit code. */
int cli_client(cli *c, int which, rpc_client **out);
/*
 * A unary call. CLI_EXIT_OK with *resp the reply (free with
 * protobuf_c_message_free_unpacked), or, after the error line
 * "secretfree: <cmd>: <server's message> (<STATUS>)" and a hint, the exit
 * code for the status (*resp NULL).
 */
int cli_call(cli *c, int which, const ProtobufCServiceDescriptor *svc,
    const char *method, const ProtobufCMessage *req, ProtobufCMessage **resp);
/* The same without printing anything; the status is in *st. */
int cli_call_quiet(cli *c, int which, const ProtobufCServiceDescriptor *svc,
    const char *method, const ProtobufCMessage *req, ProtobufCMessage **resp,
    rpc_status *st);
/* Print the error line and hint for a failed call; returns its exit code. */
int cli_rpc_fail(cli *c, int which, const rpc_status *st);

/* ---- files ---- */

/* Read a whole file (at most max bytes). CLI_EXIT_INPUT after a message. */
int cli_read_file(cli *c, const char *what, const char *path, size_t max,
    uint8_t **out, size_t *len);
/* Write a file ("-" = stdout). CLI_EXIT_ERROR after a message. */
int cli_write_file(cli *c, const char *path, const void *data, size_t len,
    int mode);

/* ---- commands ---- */

typedef struct {
	const char *group;       /* "ca", "device", "cert"; NULL: top level */
	const char *name;        /* "init"; for top level, the command */
	int (*fn)(cli *c, int argc, char **argv);
	const char *summary;     /* one line for `secretfree --help` */
	const char *help;        /* the whole --help text */
} cli_cmd;

/* NULL-terminated tables, one per cmd_*.c file. */
extern const cli_cmd cmd_ca_table[];
extern const cli_cmd cmd_ca_rotate_table[];
extern const cli_cmd cmd_ca_server_table[];
extern const cli_cmd cmd_ca_claim_table[];
extern const cli_cmd cmd_device_table[];
extern const cli_cmd cmd_devstate_table[];
extern const cli_cmd cmd_audit_table[];
extern const cli_cmd cmd_audit_trail_table[];
extern const cli_cmd cmd_status_table[];
extern const cli_cmd cmd_enroll_table[];
extern const cli_cmd cmd_cert_table[];
extern const cli_cmd cmd_crl_table[];
extern const cli_cmd cmd_renew_table[];
extern const cli_cmd cmd_mfr_table[];
extern const cli_cmd cmd_mqtt_table[];

#endif
