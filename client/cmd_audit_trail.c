/*
 * cmd_audit_trail.c - secretfree audit verify, audit export, audit
 * checkpoint: the signer journal's tamper-evident audit trail (DESIGN.md,
 * "Audit trail"; CaAdmin.VerifyAudit, ExportAudit, AuditCheckpoint).
 *
 * An export is JSON Lines: one {"type":"event",...} per event in seq
 * order, each checkpoint as {"type":"checkpoint",...} right after the
 * event it covers. `audit verify --file` checks an export without the
 * signer: the chain (common/auditchain.c, the code the signer uses) and
 * each checkpoint's signature with the audit key's public key.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "auditchain.h"
#include "cli.h"
#include "out.h"
#include "secretfree/v1/ca_admin.pb-c.h"
#include "util.h"

#define CA_SVC (&secretfree__v1__ca_admin__descriptor)

typedef Secretfree__V1__AuditCheckpointInfo CheckpointInfo;

/* ---- base64 ---- */

static char *
b64(const uint8_t *p, size_t n)
{
	char *s = malloc(4 * ((n + 2) / 3) + 1);

	if (s)
		EVP_EncodeBlock((unsigned char *)s, p, (int)n);
	return s;
}

/* Decoded into a malloc'd buffer; NULL if s is not base64. */
static uint8_t *
unb64(const char *s, size_t *n)
{
	size_t len = strlen(s), pad = 0;
	uint8_t *p;
	int r;

	if (len == 0 || len % 4 != 0 || (p = malloc(len / 4 * 3 + 1)) == NULL)
		return NULL;
	if ((r = EVP_DecodeBlock(p, (const unsigned char *)s, (int)len)) < 0) {
		free(p);
		return NULL;
	}
	pad = (s[len - 1] == '=') + (s[len - 2] == '=');
	*n = (size_t)r - pad;
	return p;
}

/* ---- checkpoints as files and JSON ---- */

/* PREFIX.txt (what is signed), PREFIX.sig (DER), PREFIX.pub.pem. */
static int
write_checkpoint_files(cli *c, const char *prefix, const CheckpointInfo *ci)
{
	char path[4096];
	int ec;

	snprintf(path, sizeof path, "%s.txt", prefix);
	if ((ec = cli_write_file(c, path, ci->signed_text,
	    strlen(ci->signed_text), 0644)) != 0)
		return ec;
	snprintf(path, sizeof path, "%s.sig", prefix);
	if ((ec = cli_write_file(c, path, ci->signature.data,
	    ci->signature.len, 0644)) != 0)
		return ec;
	snprintf(path, sizeof path, "%s.pub.pem", prefix);
	return cli_write_file(c, path, ci->public_key_pem,
	    strlen(ci->public_key_pem), 0644);
}

static json_t *
checkpoint_json(const CheckpointInfo *ci, const char *pem)
{
	char *sig = b64(ci->signature.data, ci->signature.len);
	json_t *o;

	if (sig == NULL)
		return NULL;
	o = json_pack("{s:s, s:I, s:s, s:I, s:s, s:s, s:s, s:s}",
	    "type", "checkpoint",
	    "seq", (json_int_t)ci->seq,
	    "head", ci->head,
	    "at", (json_int_t)ci->at,
	    "key_label", ci->key_label,
	    "signature", sig,
	    "signed", ci->signed_text,
	    "public_key_pem", pem);
	free(sig);
	return o;
}

/* ---- audit checkpoint ---- */

static const char HELP_CHECKPOINT[] =
"Usage: secretfree audit checkpoint [--out PREFIX]\n"
"\n"
"Sign the head of the signer's audit trail now (CaAdmin.AuditCheckpoint).\n"
"The signer verifies the whole chain first and refuses to sign a broken\n"
"one (exit 8, naming the first broken event). The audit key is an EC\n"
"P-256 key in the signer's token ([audit] key_label), generated the first\n"
"time; the signer also makes a checkpoint by itself every [audit]\n"
"checkpoint_seconds when there are new events. If the head has a\n"
"checkpoint already, that one is printed.\n"
"\n"
"What is signed (ECDSA, SHA-256) is the text\n"
"  secretfree-audit-checkpoint v1\\n<seq>\\n<head>\\n<at>\\n\n"
"where head is the hash of event seq. With --out it is written with the\n"
"signature and the public key, so that openssl alone checks it:\n"
"  openssl dgst -sha256 -verify PREFIX.pub.pem -signature PREFIX.sig \\\n"
"      PREFIX.txt\n"
"\n"
"Options:\n"
"  --out PREFIX   write PREFIX.txt (the signed text), PREFIX.sig (the DER\n"
"                 signature) and PREFIX.pub.pem (the audit key)\n"
"\n"
"With --json: seq, head, at, key_label, signature (base64), signed,\n"
"public_key_pem, made (false: the head's earlier checkpoint).\n"
"\n"
"Exit status: 0 when signed (or found); 8 when the chain is broken; 6\n"
"when the token is unavailable; the usual codes otherwise.\n"
"\n"
"Example:\n"
"  secretfree audit checkpoint --out /var/backups/audit/cp-$(date +%F)\n";

static int
cmd_audit_checkpoint(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 }
	};
	Secretfree__V1__AuditCheckpointRequest req =
	    SECRETFREE__V1__AUDIT_CHECKPOINT_REQUEST__INIT;
	CheckpointInfo *r = NULL;
	const char *out = NULL;
	char t[32], *sig = NULL;
	int ch, ec;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		if (ch != 'o')
			return CLI_EXIT_USAGE;
		out = optarg;
	}
	if (optind != argc)
		return cli_usage(c, "no operands, not %s", argv[optind]);
	c->hint[9] = "the audit trail is broken: run secretfree audit verify";
	if ((ec = cli_call(c, CLI_SIGNER, CA_SVC, "AuditCheckpoint", &req.base,
	    (ProtobufCMessage **)&r)) != 0)
		return ec;
	if (out && (ec = write_checkpoint_files(c, out, r)) != 0)
		goto done;
	if (c->json) {
		json_t *o = checkpoint_json(r, r->public_key_pem);

		if (o) {
			json_object_del(o, "type");
			json_object_set_new(o, "made", json_boolean(r->made));
		}
		ec = out_json(c, o);
		goto done;
	}
	sig = b64(r->signature.data, r->signature.len);
	out_kv(stdout, "checkpoint", "event %lld%s", (long long)r->seq,
	    r->made ? "" : " (made earlier: no event since)");
	out_kv(stdout, "head", "%s", r->head);
	out_kv(stdout, "at", "%s", out_time(r->at, t, sizeof t));
	out_kv(stdout, "key", "%s", r->key_label);
	out_kv(stdout, "signature", "%s", sig ? sig : "?");
	if (out)
		printf("wrote %s.txt, %s.sig, %s.pub.pem; check with:\n"
		    "  openssl dgst -sha256 -verify %s.pub.pem -signature"
		    " %s.sig %s.txt\n", out, out, out, out, out, out);
done:
	free(sig);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return ec;
}

/* ---- audit export ---- */

/* --since: a seq (digits), or a time (@SECONDS, YYYY-MM-DD,
 * YYYY-MM-DDTHH:MM:SSZ). */
static int
since_arg(cli *c, const char *s, int64_t *seq, int64_t *at)
{
	struct tm tm;
	const char *end;
	char *e;
	long long v;

	*seq = *at = 0;
	errno = 0;
	v = strtoll(s[0] == '@' ? s + 1 : s, &e, 10);
	if (*s && *e == '\0' && errno == 0 && v > 0) {
		if (s[0] == '@')
			*at = v;
		else
			*seq = v;
		return 0;
	}
	memset(&tm, 0, sizeof tm);
	if (((end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) != NULL &&
	    *end == '\0') || (memset(&tm, 0, sizeof tm),
	    (end = strptime(s, "%Y-%m-%d", &tm)) != NULL && *end == '\0')) {
		*at = (int64_t)timegm(&tm);
		return 0;
	}
	return cli_usage(c, "--since %s: a seq (a number), or a time:"
	    " @SECONDS, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)", s);
}

static int
put_line(cli *c, FILE *f, json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	int ok = s && fputs(s, f) >= 0 && fputc('\n', f) != EOF;

	free(s);
	json_decref(o);
	return ok ? 0 : cli_error(c, CLI_EXIT_ERROR, "cannot write the export"
	    "%s", o ? "" : " (an event is not valid UTF-8)");
}

static const char HELP_EXPORT[] =
"Usage: secretfree audit export [--since SEQ|TIME] [--out FILE]\n"
"                               [--checkpoint] [--checkpoint-files PREFIX]\n"
"\n"
"Write the signer's audit trail as JSON Lines for a SIEM or an auditor\n"
"(CaAdmin.ExportAudit, page by page). One line per event, in seq order:\n"
"  {\"type\":\"event\",\"seq\":5,\"at\":1767225600,\"kind\":\"certificate-issued\",\n"
"   \"subject\":\"3F...\",\"detail\":\"{...}\",\"prev\":\"...\",\"hash\":\"...\"}\n"
"detail is the JSON object as text, exactly as hashed. Each checkpoint\n"
"inside the range follows the event it covers:\n"
"  {\"type\":\"checkpoint\",\"seq\":5,\"head\":\"...\",\"at\":...,\"key_label\":...,\n"
"   \"signature\":\"<base64 DER>\",\"signed\":\"<the signed text>\",\n"
"   \"public_key_pem\":\"...\"}\n"
"\n"
"hash = SHA-256(prev \"\\n\" seq \"\\t\" at \"\\t\" kind \"\\t\" subject \"\\t\"\n"
"detail) in lower-case hex; the first event's prev is 64 zeros. Events\n"
"after the last checkpoint are not covered by a signature: --checkpoint\n"
"makes one first, so that the whole export is.\n"
"\n"
"Options:\n"
"  --since SEQ|TIME   from event SEQ on, or from the first event at or\n"
"                     after TIME (@SECONDS, YYYY-MM-DD or\n"
"                     YYYY-MM-DDTHH:MM:SSZ, UTC); default: everything\n"
"  --out FILE         write to FILE (default: standard output)\n"
"  --checkpoint       sign the head first (as secretfree audit checkpoint)\n"
"  --checkpoint-files PREFIX\n"
"                     also write the last checkpoint of the export as\n"
"                     PREFIX.txt, PREFIX.sig and PREFIX.pub.pem, for\n"
"                     openssl dgst -sha256 -verify PREFIX.pub.pem\n"
"                     -signature PREFIX.sig PREFIX.txt\n"
"\n"
"Check an export with secretfree audit verify --file FILE [--key PEM].\n"
"\n"
"Exit status: 0 when written; 8 when --checkpoint finds the chain\n"
"broken; the usual codes otherwise.\n"
"\n"
"Example:\n"
"  secretfree audit export --checkpoint --out audit.jsonl \\\n"
"      --checkpoint-files cp\n"
"  secretfree audit export --since 2026-12-01 | siem-forwarder\n";

static int
cmd_audit_export(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "since", required_argument, NULL, 's' },
		{ "out", required_argument, NULL, 'o' },
		{ "checkpoint", no_argument, NULL, 'c' },
		{ "checkpoint-files", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 }
	};
	Secretfree__V1__ExportAuditRequest req =
	    SECRETFREE__V1__EXPORT_AUDIT_REQUEST__INIT;
	Secretfree__V1__AuditCheckpointRequest creq =
	    SECRETFREE__V1__AUDIT_CHECKPOINT_REQUEST__INIT;
	Secretfree__V1__ExportAuditResponse *r = NULL;
	ProtobufCMessage *cr = NULL;
	CheckpointInfo *last = NULL;
	const char *out = NULL, *files = NULL;
	int64_t seq = 0, at = 0, first = 0, lastseq = 0, lastcp = 0;
	size_t nev = 0, ncp = 0;
	FILE *f = stdout;
	int ch, ec = 0, make = 0;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 's':
			if ((ec = since_arg(c, optarg, &seq, &at)) != 0)
				return ec;
			break;
		case 'o': out = optarg; break;
		case 'c': make = 1; break;
		case 'f': files = optarg; break;
		default: return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage(c, "no operands, not %s", argv[optind]);
	c->hint[9] = "the audit trail is broken: run secretfree audit verify";
	if (make && (ec = cli_call(c, CLI_SIGNER, CA_SVC, "AuditCheckpoint",
	    &creq.base, &cr)) != 0)
		return ec;
	if (cr)
		protobuf_c_message_free_unpacked(cr, NULL);
	if (out && strcmp(out, "-") != 0 && (f = fopen(out, "w")) == NULL)
		return cli_error(c, CLI_EXIT_ERROR, "cannot write %s: %s", out,
		    strerror(errno));
	req.after_seq = seq > 0 ? seq - 1 : 0;
	req.since = at;
	for (;;) {
		if ((ec = cli_call(c, CLI_SIGNER, CA_SVC, "ExportAudit",
		    &req.base, (ProtobufCMessage **)&r)) != 0)
			break;
		for (size_t i = 0, k = 0; i < r->n_events && ec == 0; i++) {
			const Secretfree__V1__AuditEvent *e = r->events[i];

			ec = put_line(c, f, json_pack("{s:s, s:I, s:I, s:s, s:s,"
			    " s:s, s:s, s:s}", "type", "event",
			    "seq", (json_int_t)e->seq, "at", (json_int_t)e->at,
			    "kind", e->kind, "subject", e->subject,
			    "detail", e->detail, "prev", e->prev,
			    "hash", e->hash));
			if (first == 0)
				first = e->seq;
			lastseq = e->seq;
			nev++;
			for (; ec == 0 && k < r->n_checkpoints &&
			    r->checkpoints[k]->seq == e->seq; k++) {
				ec = put_line(c, f, checkpoint_json(
				    r->checkpoints[k], r->public_key_pem));
				lastcp = e->seq;
				ncp++;
			}
		}
		if (ec == 0 && files && r->n_checkpoints > 0) {
			if (last)
				protobuf_c_message_free_unpacked(&last->base,
				    NULL);
			/* Keep the page's last checkpoint: detach it. */
			last = r->checkpoints[r->n_checkpoints - 1];
			r->n_checkpoints--;
		}
		req.after_seq = lastseq;
		req.since = 0;
		ch = r->more;
		protobuf_c_message_free_unpacked(&r->base, NULL);
		r = NULL;
		if (ec != 0 || !ch)
			break;
	}
	if (f == stdout) {
		if (fflush(f) != 0 && ec == 0)
			ec = cli_error(c, CLI_EXIT_ERROR, "cannot write to"
			    " standard output: %s", strerror(errno));
	} else if (fclose(f) != 0 && ec == 0)
		ec = cli_error(c, CLI_EXIT_ERROR, "cannot write %s: %s", out,
		    strerror(errno));
	if (ec == 0 && files) {
		if (last == NULL)
			ec = cli_error(c, CLI_EXIT_STATE, "no checkpoint in the"
			    " export: nothing to write as %s.*; use"
			    " --checkpoint", files);
		else
			ec = write_checkpoint_files(c, files, last);
	}
	if (last)
		protobuf_c_message_free_unpacked(&last->base, NULL);
	if (ec == 0)
		fprintf(out && strcmp(out, "-") != 0 ? stdout : stderr,
		    "exported %zu events (%lld..%lld) and %zu checkpoints;"
		    " %s\n", nev, (long long)first, (long long)lastseq, ncp,
		    nev == 0 ? "nothing to cover" : lastcp == lastseq ?
		    "the last checkpoint covers them all" : lastcp ?
		    "events after the last checkpoint are not covered by a"
		    " signature" : "no checkpoint covers them (--checkpoint)");
	return ec;
}

/* ---- audit verify ---- */

/* An export read back: its events and checkpoints. */
typedef struct {
	audit_row *ev;
	size_t n, cap, i;
	json_t **cp;
	size_t ncp;
	json_t **lines;
	size_t nlines;
} exportfile;

static int
ef_next(void *arg, audit_row *r)
{
	exportfile *x = arg;

	if (x->i >= x->n)
		return 0;
	*r = x->ev[x->i++];
	return 1;
}

static int
ef_find(void *arg, const char *hash, int64_t *seq)
{
	exportfile *x = arg;

	for (size_t i = 0; i < x->n; i++)
		if (strcmp(x->ev[i].hash, hash) == 0) {
			*seq = x->ev[i].seq;
			return 1;
		}
	return 0;
}

static int
ef_next_prev(void *arg, int64_t seq, char prev[65])
{
	exportfile *x = arg;

	/* The one after seq in file order. */
	for (size_t i = 0; i + 1 < x->n; i++)
		if (x->ev[i].seq == seq) {
			memcpy(prev, x->ev[i + 1].prev, 65);
			return 1;
		}
	return 0;
}

static void
ef_free(exportfile *x)
{
	for (size_t i = 0; i < x->nlines; i++)
		json_decref(x->lines[i]);
	free(x->lines);
	free(x->ev);
	free(x->cp);
}

static int
ef_load(cli *c, const char *path, exportfile *x)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t len;
	int ec = 0;

	memset(x, 0, sizeof *x);
	if (f == NULL)
		return cli_error(c, CLI_EXIT_INPUT, "cannot read %s: %s", path,
		    strerror(errno));
	while (ec == 0 && (len = getline(&line, &cap, f)) >= 0) {
		json_error_t err;
		json_t *o, **nl;
		const char *type = NULL, *h1 = NULL, *h2 = NULL;
		json_int_t seq = 0, at = 0;

		lineno++;
		if (len <= 1)
			continue;
		if ((o = json_loads(line, 0, &err)) == NULL) {
			ec = cli_error(c, CLI_EXIT_INPUT, "%s:%zu: not JSON: %s",
			    path, lineno, err.text);
			break;
		}
		if ((nl = realloc(x->lines, (x->nlines + 1) * sizeof *nl)) ==
		    NULL) {
			json_decref(o);
			ec = cli_error(c, CLI_EXIT_ERROR, "out of memory");
			break;
		}
		x->lines = nl;
		x->lines[x->nlines++] = o;
		if (json_unpack(o, "{s:s}", "type", &type) != 0)
			type = "";
		if (strcmp(type, "event") == 0) {
			audit_row *e;

			if (x->n == x->cap) {
				size_t nc = x->cap ? 2 * x->cap : 256;
				audit_row *v = realloc(x->ev, nc * sizeof *v);

				if (v == NULL) {
					ec = cli_error(c, CLI_EXIT_ERROR,
					    "out of memory");
					break;
				}
				x->ev = v;
				x->cap = nc;
			}
			e = &x->ev[x->n];
			memset(e, 0, sizeof *e);
			if (json_unpack(o, "{s:I, s:I, s:s, s:s, s:s, s:s, s:s}",
			    "seq", &seq, "at", &at, "kind", &e->kind,
			    "subject", &e->subject, "detail", &e->detail,
			    "prev", &h1, "hash", &h2) != 0) {
				ec = cli_error(c, CLI_EXIT_INPUT, "%s:%zu: an"
				    " event needs seq, at, kind, subject,"
				    " detail, prev and hash", path, lineno);
				break;
			}
			e->seq = seq;
			e->at = at;
			sf_strlcpy(e->prev, h1, sizeof e->prev);
			sf_strlcpy(e->hash, h2, sizeof e->hash);
			x->n++;
		} else if (strcmp(type, "checkpoint") == 0) {
			json_t **v = realloc(x->cp, (x->ncp + 1) * sizeof *v);

			if (v == NULL) {
				ec = cli_error(c, CLI_EXIT_ERROR,
				    "out of memory");
				break;
			}
			x->cp = v;
			x->cp[x->ncp++] = o;
		} else
			ec = cli_error(c, CLI_EXIT_INPUT, "%s:%zu: type is"
			    " neither event nor checkpoint", path, lineno);
	}
	free(line);
	if (f != stdin)
		fclose(f);
	return ec;
}

static EVP_PKEY *
pem_key(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	return k;
}

/* One checkpoint of the file against the chain as walked (rep) and the
 * key. 0 if it holds; else rep gets the damage. */
static void
check_cp(const exportfile *x, json_t *o, EVP_PKEY *pinned,
    audit_report *rep, size_t *good)
{
	const char *head = "", *sig64 = "", *pem = "", *signed_text = NULL;
	json_int_t seq = 0, at = 0;
	char text[256];
	uint8_t *sig = NULL;
	size_t siglen = 0, n;
	EVP_PKEY *k = pinned;
	EVP_MD_CTX *md = NULL;
	int ok = 0;

	if (json_unpack(o, "{s:I, s:s, s:I, s:s, s?s, s?s}", "seq", &seq,
	    "head", &head, "at", &at, "signature", &sig64, "public_key_pem",
	    &pem, "signed", &signed_text) != 0) {
		audit_report_bad(rep, 0, AUDIT_CHECKPOINT, "a checkpoint line"
		    " lacks seq, head, at or signature");
		return;
	}
	n = audit_checkpoint_text(seq, head, at, text, sizeof text);
	if (signed_text && strcmp(signed_text, text) != 0) {
		audit_report_bad(rep, seq, AUDIT_CHECKPOINT, "the checkpoint at"
		    " event %lld: its signed text is not its seq, head and at",
		    (long long)seq);
		return;
	}
	if (k == NULL)
		k = pem_key(pem);
	sig = unb64(sig64, &siglen);
	ok = k && sig && (md = EVP_MD_CTX_new()) != NULL &&
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
	    EVP_DigestVerify(md, sig, siglen, (const unsigned char *)text,
	    n) == 1;
	EVP_MD_CTX_free(md);
	free(sig);
	if (k != pinned)
		EVP_PKEY_free(k);
	if (!ok) {
		audit_report_bad(rep, seq, AUDIT_CHECKPOINT, "the checkpoint at"
		    " event %lld does not verify with the %s key", (long long)seq,
		    pinned ? "given" : "export's");
		return;
	}
	for (size_t i = 0; i < x->n; i++)
		if (x->ev[i].seq == seq) {
			if (strcmp(x->ev[i].hash, head) != 0)
				audit_report_bad(rep, seq, AUDIT_CHECKPOINT,
				    "event %lld is not the one its checkpoint"
				    " signed: the events up to it were"
				    " rewritten", (long long)seq);
			else
				(*good)++;
			return;
		}
	audit_report_bad(rep, seq, AUDIT_DELETED, "event %lld, which a"
	    " checkpoint signed, is not in the export", (long long)seq);
}

static int
verify_file(cli *c, const char *path, const char *keyfile, audit_report *rep,
    size_t *good, int64_t *covered)
{
	exportfile x;
	audit_source src = { &x, ef_next, ef_find, ef_next_prev, 0 };
	EVP_PKEY *pinned = NULL;
	int ec;

	*good = 0;
	*covered = 0;
	if ((ec = ef_load(c, path, &x)) != 0)
		goto out;
	if (keyfile) {
		uint8_t *pem = NULL;
		size_t len = 0;

		if ((ec = cli_read_file(c, "audit key", keyfile, 1 << 16, &pem,
		    &len)) != 0)
			goto out;
		pinned = pem_key((const char *)pem);
		free(pem);
		if (pinned == NULL) {
			ec = cli_error(c, CLI_EXIT_INPUT, "%s: not a PEM public"
			    " key", keyfile);
			goto out;
		}
	}
	/* An export from event 1 starts at the zeros; a later one where it
	 * says. */
	if (audit_chain_verify(&src, 1, x.n && x.ev[0].seq == 1 ?
	    AUDIT_ZERO_HASH : NULL, rep) != 0) {
		ec = cli_error(c, CLI_EXIT_ERROR, "cannot hash");
		goto out;
	}
	for (size_t i = 0; i < x.ncp && rep->first_bad == 0; i++) {
		json_int_t s = 0;

		if (json_unpack(x.cp[i], "{s:I}", "seq", &s) == 0 && s > 0 &&
		    s <= rep->last_seq)
			check_cp(&x, x.cp[i], pinned, rep, good);
		else
			audit_report_bad(rep, s, AUDIT_CHECKPOINT, "the"
			    " checkpoint at event %lld is past the export's"
			    " last event", (long long)s);
		if (rep->first_bad == 0)
			*covered = s;
	}
out:
	EVP_PKEY_free(pinned);
	ef_free(&x);
	return ec;
}

static const char HELP_VERIFY[] =
"Usage: secretfree audit verify [--file EXPORT [--key PEM]]\n"
"\n"
"Check the signer's tamper-evident audit trail (CaAdmin.VerifyAudit).\n"
"Every change to CAs, certificates, device keys, CRLs and manufacturer CAs\n"
"is an event in the signer's journal, written in the same transaction,\n"
"whose hash chains it to the event before; checkpoints sign the chain's\n"
"head with a key in the token. The signer recomputes the chain from the\n"
"first event, checks that it ends at the last event it wrote, that each\n"
"checkpoint signed the event now at its seq, and each checkpoint's\n"
"signature. The first broken link is named, with what was done to it:\n"
"  edited      an event's fields no longer give its hash, or it was\n"
"              rewritten and the next one no longer chains to it\n"
"  deleted     an event is missing (a gap, or one the next chains to)\n"
"  inserted    an event the chain skips, or after the last one written\n"
"  reordered   an event chains to one that comes after it\n"
"  checkpoint  the chain is whole but is not what a checkpoint signed\n"
"              (rewritten), or a checkpoint's signature is bad\n"
"\n"
"With --file, an export (secretfree audit export) is checked instead,\n"
"without the signer: its chain (from the zeros if it starts at event 1,\n"
"else from its first event's prev), and each checkpoint in it: its\n"
"signature with the key given by --key (else the one in the export,\n"
"which proves less), and that it signed the event at its seq. The\n"
"events up to the last good checkpoint are then exactly those the signer\n"
"wrote.\n"
"\n"
"Options:\n"
"  --file EXPORT   check an export file (\"-\": standard input)\n"
"  --key PEM       the audit key's public key (from secretfree audit\n"
"                  checkpoint --out, kept apart from the export)\n"
"\n"
"With --json: intact, events, head_seq, head, first_bad_seq, damage,\n"
"problem, checkpoints (and covered_seq with --file).\n"
"\n"
"Exit status: 0 when intact; 11 when broken (the message names the\n"
"event and the damage); 5 for an unreadable export; the usual codes\n"
"when the signer cannot be asked.\n"
"\n"
"Example:\n"
"  secretfree audit verify\n"
"  secretfree audit verify --file audit.jsonl --key audit.pub.pem\n";

static int
cmd_audit_verify(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "key", required_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 }
	};
	Secretfree__V1__VerifyAuditRequest req =
	    SECRETFREE__V1__VERIFY_AUDIT_REQUEST__INIT;
	Secretfree__V1__VerifyAuditResponse *r = NULL;
	const char *file = NULL, *key = NULL, *damage;
	audit_report rep;
	int64_t covered = 0, cps;
	size_t good = 0;
	int ch, ec;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'f': file = optarg; break;
		case 'k': key = optarg; break;
		default: return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage(c, "no operands, not %s", argv[optind]);
	if (key && !file)
		return cli_usage(c, "--key goes with --file");
	if (file) {
		if ((ec = verify_file(c, file, key, &rep, &good, &covered)) != 0)
			return ec;
		cps = (int64_t)good;
	} else {
		if ((ec = cli_call(c, CLI_SIGNER, CA_SVC, "VerifyAudit",
		    &req.base, (ProtobufCMessage **)&r)) != 0)
			return ec;
		memset(&rep, 0, sizeof rep);
		rep.events = r->events;
		rep.last_seq = r->head_seq;
		sf_strlcpy(rep.last_hash, r->head, sizeof rep.last_hash);
		rep.first_bad = r->first_bad_seq;
		sf_strlcpy(rep.problem, r->problem, sizeof rep.problem);
		rep.damage = r->intact ? AUDIT_INTACT : AUDIT_EDITED;
		for (int d = AUDIT_INTACT; d <= AUDIT_CHECKPOINT; d++)
			if (strcmp(r->damage, audit_damage_name(d)) == 0)
				rep.damage = d;
		cps = r->checkpoints;
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	damage = audit_damage_name(rep.damage);
	if (c->json) {
		json_t *o = json_pack("{s:b, s:I, s:I, s:s, s:I, s:s, s:s, s:I}",
		    "intact", rep.first_bad == 0 && rep.damage == AUDIT_INTACT,
		    "events", (json_int_t)rep.events,
		    "head_seq", (json_int_t)rep.last_seq,
		    "head", rep.last_hash,
		    "first_bad_seq", (json_int_t)rep.first_bad,
		    "damage", damage, "problem", rep.problem,
		    "checkpoints", (json_int_t)cps);

		if (o && file)
			json_object_set_new(o, "covered_seq",
			    json_integer((json_int_t)covered));
		if ((ec = out_json(c, o)) != 0)
			return ec;
	} else if (rep.damage == AUDIT_INTACT) {
		printf("the audit trail is intact: %lld events, the last %lld"
		    " (%s); %lld checkpoints verified\n", (long long)rep.events,
		    (long long)rep.last_seq, rep.last_hash, (long long)cps);
		if (file && covered)
			printf("the events up to %lld are signed by a"
			    " checkpoint\n", (long long)covered);
		else if (file)
			printf("no checkpoint covers the export: it proves"
			    " nothing about completeness\n");
	} else {
		out_kv(stdout, "first broken event", "%lld",
		    (long long)rep.first_bad);
		out_kv(stdout, "damage", "%s", damage);
		out_kv(stdout, "problem", "%s", rep.problem);
	}
	if (rep.damage != AUDIT_INTACT)
		return cli_error(c, CLI_EXIT_TAMPERED, "the audit trail is"
		    " broken at event %lld (%s): %s", (long long)rep.first_bad,
		    damage, rep.problem);
	return 0;
}

const cli_cmd cmd_audit_trail_table[] = {
	{ "audit", "verify", cmd_audit_verify, "check the journal's"
	    " tamper-evident audit trail (or an export)", HELP_VERIFY },
	{ "audit", "export", cmd_audit_export, "write the audit trail as"
	    " JSON Lines with its signed checkpoints", HELP_EXPORT },
	{ "audit", "checkpoint", cmd_audit_checkpoint, "sign the audit"
	    " trail's head now with the key in the token", HELP_CHECKPOINT },
	{ NULL, NULL, NULL, NULL, NULL }
};
