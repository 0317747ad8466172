/*
 * daemon.h - the start-up and shutdown skeleton the daemons share.
 *
 * Each daemon's main.c keeps what is its own (usage text, start, reload,
 * teardown) and calls these in order:
 *
 *     daemon_opts_parse(&o, argc, argv, "secretfree-x", USAGE);
 *     daemon_init("x", &o);
 *     rc = start(...);
 *     if (rc == 0 && !o.check)
 *             daemon_wait(reload, ctx, o.path);
 *     daemon_shutdown(srv);
 *     ... free what start made ...
 *     return daemon_exit(&o, rc);
 */
#ifndef SF_DAEMON_H
#define SF_DAEMON_H

#include "rpc.h"

typedef struct {
	const char *path;      /* -c FILE: the configuration (borrowed argv) */
	int debug;             /* -d */
	int check;             /* --check */
} daemon_opts;

/*
 * Parse -c/--config FILE (required), -d/--debug, --check and -h/--help into
 * o. Returns only to go on; like OpenBSD's usage(), exits before anything
 * is set up: 0 after printing usage to stdout for --help, 2 after printing
 * it to stderr for a usage error (preceded by "prog: why" when -c is
 * missing or an argument is left over).
 */
void daemon_opts_parse(daemon_opts *o, int argc, char **argv,
    const char *prog, const char *usage);

/*
 * Log as procname (a string literal) at debug level with -d, else info;
 * block SIGTERM, SIGINT, SIGHUP and SIGPIPE before gRPC starts its threads,
 * so that they are taken by daemon_wait() in this thread only; rpc_init().
 */
void daemon_init(const char *procname, const daemon_opts *o);

/*
 * Wait for signals: SIGHUP calls reload(arg, path), SIGTERM and SIGINT
 * return (after logging which).
 */
typedef void daemon_reload_fn(void *arg, const char *path);
void daemon_wait(daemon_reload_fn *reload, void *arg, const char *path);

/* Finish running calls (5 s grace) and free srv; NULL is fine. */
void daemon_shutdown(rpc_server *srv);

/*
 * After the daemon has freed its own state: rpc_fini(), "stopped" when it
 * ran (rc 0 and not --check). Returns the exit status: 0 if rc is 0, else 1.
 */
int daemon_exit(const daemon_opts *o, int rc);

#endif
