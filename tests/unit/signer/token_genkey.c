/*
 * token-genkey - generate CA keys through signer/token.c, for the
 * integration tests that then inspect them with stock tools.
 *
 *   token-genkey MODULE URI PINFILE LABEL=TYPE...
 *
 * TYPE is ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096 or ed25519.
 * Prints "LABEL URI" for each key made; exits 1 on the first failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "pubkey.h"
#include "token.h"

static int
type_parse(const char *s)
{
	static const struct { const char *name; int type; } names[] = {
		{ "ec-p256", PUBKEY_EC_P256 }, { "ec-p384", PUBKEY_EC_P384 },
		{ "rsa-2048", PUBKEY_RSA_2048 }, { "rsa-3072", PUBKEY_RSA_3072 },
		{ "rsa-4096", PUBKEY_RSA_4096 }, { "ed25519", PUBKEY_ED25519 },
	};

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(s, names[i].name) == 0)
			return names[i].type;
	return PUBKEY_NONE;
}

int
main(int argc, char **argv)
{
	token_opts o = { 0 };
	char why[256];
	token *t = NULL;
	int rc, status = 0;

	if (argc < 5) {
		fprintf(stderr, "usage: token-genkey MODULE URI PINFILE LABEL=TYPE...\n");
		return 2;
	}
	log_init("token-genkey", LOG_LEVEL_WARN);
	o.module = argv[1];
	o.uri = argv[2];
	o.pin_file = argv[3];
	if ((rc = token_open(&o, &t, why, sizeof why)) != 0) {
		fprintf(stderr, "token-genkey: %s: %s\n", sf_strerror(rc), why);
		return 1;
	}
	for (int i = 4; i < argc && status == 0; i++) {
		char *label = strdup(argv[i]), *eq = strchr(label, '=');
		token_key *k = NULL;
		char *uri;
		int type;

		if (eq == NULL || (type = type_parse(eq + 1)) == PUBKEY_NONE) {
			fprintf(stderr, "token-genkey: %s: want LABEL=TYPE\n", argv[i]);
			status = 2;
		} else {
			*eq = '\0';
			if ((rc = token_generate_key(t, label, type, &k)) != 0) {
				fprintf(stderr, "token-genkey: %s: %s\n", label,
				    sf_strerror(rc));
				status = 1;
			} else if ((uri = token_key_uri(t, k)) != NULL) {
				printf("%s %s\n", label, uri);
				free(uri);
			}
		}
		token_key_free(k);
		free(label);
	}
	token_close(t);
	return status;
}
