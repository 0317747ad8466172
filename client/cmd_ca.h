/*
 * cmd_ca.h - what the files of `secretfree ca` share (cmd_ca.c,
 * cmd_ca_rotate.c, cmd_ca_server.c, cmd_ca_claim.c): a CA printed for people and as JSON,
 * fetching one, and the options and operands several take.
 */
#ifndef SF_CMD_CA_H
#define SF_CMD_CA_H

#include <jansson.h>

#include "cli.h"
#include "secretfree/v1/ca_admin.pb-c.h"

typedef Secretfree__V1__CaInfo CaInfo;

/* A CA as "key: value" lines on stdout. */
void cmd_ca_print(const CaInfo *ca);
/* A CA as --json prints it (a new reference; NULL when out of memory). */
json_t *cmd_ca_json(const CaInfo *ca);
/* Print one CA as JSON, with csr_pem as a member "csr_pem" unless NULL.
 * The exit code. */
int cmd_ca_print_json(cli *c, const CaInfo *ca, const char *csr_pem);
/* CaAdmin.GetCa for name (and generation, NULL/"": the active one); the
 * exit code, *out the CA (free with protobuf_c_message_free_unpacked). */
int cmd_ca_get(cli *c, const char *name, const char *generation,
    CaInfo **out);
/* A key type option's value into *out (PUBKEY_*); CLI_EXIT_USAGE after a
 * message naming opt and the types. */
int cmd_ca_key_type(cli *c, const char *opt, const char *v, int *out);
/* The command's one operand (what, e.g. "CA", names it in the usage
 * message) after the options: 0 with *name, or CLI_EXIT_USAGE. */
int cmd_ca_one_name(cli *c, int argc, char **argv, const char *what,
    const char **name);
/* A certificate for a key of our own (issue-server, issue-claim): the
 * key file opened (made first when gen, EC P-256, mode 0600) and a CSR
 * with CN cn signed by it into *csr (free it). The exit code. */
int cmd_ca_key_csr(cli *c, const char *keyf, int gen, const char *cn,
    char **csr, size_t *csrlen);
/* cert followed by chain into out, or cert into out and chain into
 * chain_out when that is not NULL. The exit code. */
int cmd_ca_write_cert(cli *c, const char *out, const char *chain_out,
    const char *cert, const char *chain);

#endif
