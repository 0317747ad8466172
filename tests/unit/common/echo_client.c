/*
 * echo-client: one call to the test service, printing the status name and
 * the reply's fields, for tests that run a client under another uid or
 * over TLS.
 *
 *   echo-client TARGET METHOD [--ca F] [--cert F --key F] [--name N] [TEXT]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "echo_service.h"
#include "log.h"

int
main(int argc, char **argv)
{
	Secretfree__Test__V1__EchoRequest req = SECRETFREE__TEST__V1__ECHO_REQUEST__INIT;
	rpc_client_opts o = { 0 };
	ProtobufCMessage *resp = NULL;
	rpc_client *c = NULL;
	rpc_status st;
	sigset_t set;
	int rc;

	if (argc < 3) {
		fprintf(stderr, "usage: echo-client TARGET METHOD [options] [TEXT]\n");
		return 2;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	log_init("echo-client", LOG_LEVEL_WARN);
	req.text = "";
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--ca") == 0 && i + 1 < argc)
			o.tls_ca_file = argv[++i];
		else if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc)
			o.tls_cert_file = argv[++i];
		else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
			o.tls_key_file = argv[++i];
		else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
			o.server_name = argv[++i];
		else
			req.text = argv[i];
	}
	rpc_init();
	if (rpc_client_open(argv[1], &o, &c) != 0) {
		fprintf(stderr, "echo-client: cannot open %s\n", argv[1]);
		return 1;
	}
	rc = rpc_client_call(c, &secretfree__test__v1__echo__descriptor, argv[2],
	    &req.base, &resp, 5000, &st);
	printf("status=%s\n", rpc_code_name(rc));
	printf("message=%s\n", st.message);
	if (resp) {
		Secretfree__Test__V1__EchoReply *r = (void *)resp;

		printf("text=%s\nuid=%lld\nlistener=%s\n", r->text,
		    (long long)r->uid, r->listener);
		protobuf_c_message_free_unpacked(resp, NULL);
	}
	rpc_client_close(c);
	rpc_fini();
	return 0;
}
