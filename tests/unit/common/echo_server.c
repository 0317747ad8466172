/*
 * echo-server: the test service of echo.proto on real listeners, for tests
 * that need a separate process (Python grpcio interop, the peer-uid check
 * under another uid, TLS).
 *
 *   echo-server [--unix PATH] [--tcp HOST:PORT --cert F --key F
 *               [--client-ca F]] [--allow-uid N]... [--any-uid]
 *               [--socket-mode OCTAL] [--dir-mode OCTAL] [--insecure-tcp]
 *
 * Prints "READY port=N" once serving; stops on SIGTERM or SIGINT.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "echo_service.h"
#include "log.h"

int
main(int argc, char **argv)
{
	rpc_listener_opts u = { 0 }, t = { 0 };
	uid_t uids[16];
	size_t nuids = 0;
	rpc_server *srv;
	sigset_t set;
	int sig, have_u = 0, have_t = 0;
	char *uaddr = NULL;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	log_init("echo-server", LOG_LEVEL_WARN);

	u.name = "unix";
	u.id = ECHO_LISTENER;
	u.socket_gid = (gid_t)-1;
	t.name = "tcp";
	t.id = ECHO_LISTENER;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--any-uid") == 0) {
			u.any_uid = 1;
			continue;
		}
		if (strcmp(a, "--insecure-tcp") == 0) {
			t.insecure_tcp = 1;
			continue;
		}
		if (v == NULL) {
			fprintf(stderr, "echo-server: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (strcmp(a, "--unix") == 0) {
			uaddr = malloc(strlen(v) + 6);
			sprintf(uaddr, "unix:%s", v);
			u.address = uaddr;
			have_u = 1;
		} else if (strcmp(a, "--tcp") == 0) {
			t.address = v;
			have_t = 1;
		} else if (strcmp(a, "--cert") == 0)
			t.tls_cert_file = v;
		else if (strcmp(a, "--key") == 0)
			t.tls_key_file = v;
		else if (strcmp(a, "--client-ca") == 0)
			t.tls_client_ca_file = v;
		else if (strcmp(a, "--allow-uid") == 0 && nuids < 16)
			uids[nuids++] = (uid_t)strtoul(v, NULL, 10);
		else if (strcmp(a, "--socket-mode") == 0)
			u.socket_mode = (mode_t)strtoul(v, NULL, 8);
		else if (strcmp(a, "--dir-mode") == 0)
			u.dir_mode = (mode_t)strtoul(v, NULL, 8);
		else {
			fprintf(stderr, "echo-server: unknown option %s\n", a);
			return 2;
		}
	}
	u.allowed_uids = uids;
	u.n_allowed_uids = nuids;

	rpc_init();
	srv = rpc_server_new();
	if (echo_register(srv) != 0 ||
	    (have_u && rpc_server_listen(srv, &u) != 0) ||
	    (have_t && rpc_server_listen(srv, &t) != 0) ||
	    rpc_server_start(srv) != 0) {
		fprintf(stderr, "echo-server: cannot start\n");
		return 1;
	}
	printf("READY port=%d\n", have_t ? rpc_server_port(srv, have_u ? 1 : 0) : 0);
	fflush(stdout);
	sigdelset(&set, SIGPIPE);
	sigwait(&set, &sig);
	rpc_server_shutdown(srv, 1000);
	rpc_server_free(srv);
	rpc_fini();
	free(uaddr);
	return 0;
}
