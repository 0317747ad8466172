/*
 * daemon.c - the start-up and shutdown skeleton the daemons share (see
 * daemon.h).
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "daemon.h"
#include "log.h"

void
daemon_opts_parse(daemon_opts *o, int argc, char **argv, const char *prog,
    const char *usage)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "debug", no_argument, NULL, 'd' },
		{ "check", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	o->path = NULL;
	o->debug = 0;
	o->check = 0;
	while ((ch = getopt_long(argc, argv, "c:dh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->path = optarg;
			break;
		case 'd':
			o->debug = 1;
			break;
		case 'C':
			o->check = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			exit(0);
		default:
			fputs(usage, stderr);
			exit(2);
		}
	}
	if (o->path == NULL || optind != argc) {
		fprintf(stderr, "%s: %s\n\n%s", prog, o->path ?
		    "unexpected argument" : "-c FILE is required", usage);
		exit(2);
	}
}

/* The signals daemon_wait() takes; SIGPIPE is blocked but not waited for. */
static void
wait_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
}

void
daemon_init(const char *procname, const daemon_opts *o)
{
	sigset_t set;

	log_init(procname, o->debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	/* gRPC starts threads: signals are taken in this thread only. */
	wait_set(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	rpc_init();
}

void
daemon_wait(daemon_reload_fn *reload, void *arg, const char *path)
{
	sigset_t set;
	int sig;

	wait_set(&set);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			reload(arg, path);
			continue;
		}
		log_info("signal %d: shutting down", sig);
		return;
	}
}

void
daemon_shutdown(rpc_server *srv)
{
	rpc_server_shutdown(srv, 5000);
	rpc_server_free(srv);
}

int
daemon_exit(const daemon_opts *o, int rc)
{
	rpc_fini();
	if (rc == 0 && !o->check)
		log_info("stopped");
	return rc == 0 ? 0 : 1;
}
