/*
 * cmd_renew.h - the device simulator's renewal (secretfree enroll --renew,
 * enroll --ack), reached from cmd_enroll.c's option parsing, which gives
 * it the options the two share.
 */
#ifndef SF_CMD_RENEW_H
#define SF_CMD_RENEW_H

#include "cli.h"
#include "devkey.h"

typedef struct {
	const char *id;             /* --id: checked against the certificate */
	const char *cert;           /* --cert: the current certificate (PEM) */
	const char *chain;          /* --chain: its chain, for TLS */
	const char *new_key;        /* --new-key: move to this key (PEM) */
	const char *ack;            /* --ack: the enrollment to acknowledge */
	const char *out, *chain_out;
	const char *idempotency_key;
	int no_ack;
	devkey_opts key;            /* the current key (--ack: the new one) */
} renew_opts;

/* enroll --renew: Provisioning.Renew, then (unless no_ack)
 * Provisioning.Acknowledge. An exit code. */
int cmd_renew_run(cli *c, const renew_opts *o);
/* enroll --ack ENROLLMENT_ID: Provisioning.Acknowledge with the key's
 * signature over the enrollment id. An exit code. */
int cmd_renew_ack(cli *c, const renew_opts *o);

#endif
