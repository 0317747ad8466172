/*
 * sclient.h - the signer client: authz's only way to the signer, the
 * Signer service over the signer's issuance socket (Issue; OcspRespond;
 * the CRLs authz publishes: GetCrlIndex, GetCrl), OpenSSH monitor_wrap.c
 * style: one stub per request the other side answers.
 */
#ifndef SF_SCLIENT_H
#define SF_SCLIENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct sclient sclient;

/* What Signer.Issue answered. */
typedef struct {
	char serial[64];
	char *certificate_pem;    /* malloc'd */
	char *chain_pem;          /* malloc'd */
	char ca_name[80];
	int64_t not_before, not_after;
	int replayed;             /* the signer's earlier certificate for the
	                             enrollment id, returned again */
	int status;               /* CERT_ACTIVE, or CERT_PENDING_ACK (renewal) */
	int64_t ack_deadline;     /* PENDING_ACK: acknowledge before this */
} sclient_cert;

/*
 * A channel to the signer's issuance socket at target ("unix:/path");
 * every call on it has a deadline of timeout_ms. Opening does not wait for
 * the signer: a call made while it is down fails with SF_EUNAVAIL. 0 with
 * *out (close with sclient_close), or the rpc layer's SF_E* code.
 */
int sclient_open(const char *target, int timeout_ms, sclient **out);
void sclient_close(sclient *c);   /* NULL-safe */

/*
 * Ask the signer to issue a certificate for csr (PEM or DER) of the
 * product line in region, recorded under enrollment_id (replaces_serial:
 * "" for a first enrollment). 0 with *out filled (release it with
 * sclient_cert_fini), or the signer's refusal as an SF_E* code with its
 * message in why: the signer's status maps back through
 * rpc_err_from_status(), so that it reaches the device unchanged, except
 * that a deadline is SF_EUNAVAIL (DESIGN.md: the signer was too slow,
 * try later). A reply without a certificate or a serial is SF_EINTERNAL.
 */
int sclient_issue(sclient *c, const uint8_t *csr, size_t csr_len,
    const char *product_line, const char *region, const char *enrollment_id,
    const char *replaces_serial, sclient_cert *out, char *why, size_t whylen);
void sclient_cert_fini(sclient_cert *sc);   /* NULL-safe; zeroes *sc */
/*
 * sclient_issue of a first enrollment with the device's birth certificate
 * (PEM; just-in-time provisioning): the signer verifies it against its
 * own manufacturer CAs and registers a device it does not know.
 */
int sclient_issue_birth(sclient *c, const uint8_t *csr, size_t csr_len,
    const char *product_line, const char *region, const char *enrollment_id,
    const char *birth_pem, sclient_cert *out, char *why, size_t whylen);

/*
 * Ask the signer to answer the DER OCSP request req (Signer.OcspRespond).
 * 0 with *resp (malloc'd DER OCSPResponse, which may carry an error
 * status such as malformedRequest: the signer's answer, passed on as it
 * is) and *next_update (cache it until then; 0: do not). The signer
 * unreachable or too slow: SF_EUNAVAIL; another refusal: its SF_E* code;
 * why says which.
 */
int sclient_ocsp(sclient *c, const uint8_t *req, size_t len, uint8_t **resp,
    size_t *resp_len, int64_t *next_update, char *why, size_t whylen);

/* ---- CRLs ---- */

/* One CA that publishes CRLs, as Signer.GetCrlIndex lists it. */
typedef struct {
	char *ca_name;             /* malloc'd */
	char *generation;          /* malloc'd */
	unsigned shards;           /* 1: one CRL; N: N partitions + complete */
	uint64_t crl_number;       /* every CRL of the CA has this number */
	int64_t this_update, next_update;
} sclient_crl_entry;

/*
 * Every CA that publishes, with its current CRL number. 0 with *out (n
 * entries; sclient_crl_index_free), or the signer's status as an SF_E*
 * code with why (as sclient_issue).
 */
int sclient_crl_index(sclient *c, sclient_crl_entry **out, size_t *n,
    char *why, size_t whylen);
void sclient_crl_index_free(sclient_crl_entry *v, size_t n);  /* NULL-safe */

/* One CRL, as Signer.GetCrl answered. */
typedef struct {
	uint8_t *der;              /* malloc'd */
	size_t der_len;
	uint64_t crl_number;
	int64_t this_update, next_update;
	unsigned shards;
	char *distribution_point;  /* malloc'd; "" when the CA has no URL */
} sclient_crl;

/*
 * The CRL of a CA's shard (0: the complete one); generation "" or NULL
 * for the active one. 0 with *out (sclient_crl_fini), or the signer's
 * status as an SF_E* code with why; a reply without a CRL is
 * SF_EINTERNAL.
 */
int sclient_get_crl(sclient *c, const char *ca_name, const char *generation,
    unsigned shard, sclient_crl *out, char *why, size_t whylen);
void sclient_crl_fini(sclient_crl *crl);    /* NULL-safe; zeroes *crl */

/* ---- renewal with acknowledgement ---- */

/* A renewal for Signer.Issue (all borrowed). */
typedef struct {
	const uint8_t *csr;
	size_t csr_len;
	const char *product_line, *region, *enrollment_id;
	const char *replaces_serial;     /* the certificate it renews */
	const uint8_t *current_key_signature;  /* a new key: the current
	                                          key's signature (keysig.h) */
	size_t current_key_signature_len;
} sclient_renewal;

/*
 * Ask the signer for a renewal of r->replaces_serial (Signer.Issue): as
 * sclient_issue, the certificate PENDING_ACK in *out (status,
 * ack_deadline).
 */
int sclient_renew(sclient *c, const sclient_renewal *r, sclient_cert *out,
    char *why, size_t whylen);

/*
 * Tell the signer device_id acknowledged serial (Signer.Acknowledge). 0
 * with *acked_at (when the signer recorded it; the time of the
 * certificate it replaced being superseded), or the signer's refusal as
 * an SF_E* code with its message in why (as sclient_issue).
 */
int sclient_acknowledge(sclient *c, const char *device_id,
    const char *serial, int64_t *acked_at, char *why, size_t whylen);

/* ---- the CA chain, for front doors that publish it ---- */

/*
 * The chain of the active issuing CA of product_line in region
 * (Signer.GetCaChain): *ca_name and *chain_pem (the issuing CA first, the
 * root last), both malloc'd. Errors as sclient_issue (SF_ENOTFOUND: no
 * such CA).
 */
int sclient_ca_chain(sclient *c, const char *product_line, const char *region,
    char **ca_name, char **chain_pem, char *why, size_t whylen);

#endif
