/*
 * cmd_device.c - secretfree device ...: the factory import into the signer
 * (CaAdmin.RegisterDeviceKeys) and authz (Registry.ImportDevices), and the
 * devices in authz's registry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "out.h"
#include "devrec.h"
#include "err.h"
#include "import.h"
#include "pubkey.h"
#include "recres.h"
#include "secretfree/v1/ca_admin.pb-c.h"
#include "secretfree/v1/registry.pb-c.h"
#include "util.h"

#define CA_SVC (&secretfree__v1__ca_admin__descriptor)
#define REG_SVC (&secretfree__v1__registry__descriptor)
#define PAGE_MAX 1000

#define OUTCOME_IMPORTED SECRETFREE__V1__RECORD_OUTCOME__RECORD_OUTCOME_IMPORTED
#define OUTCOME_UNCHANGED SECRETFREE__V1__RECORD_OUTCOME__RECORD_OUTCOME_UNCHANGED

typedef Secretfree__V1__DeviceKeyRecord KeyRecord;
typedef Secretfree__V1__ImportResult ImportResult;

enum { BY_FILE = 0, BY_SIGNER = 1, BY_AUTHZ = 2, BY_CHECK = 3 };
static const char *const by_name[] = { "file", "signer", "authz", "check" };

/* ---- device import ---- */

static const char HELP_IMPORT[] =
"Usage: secretfree device import FILE|DIR [--format csv|jsonl|dir]\n"
"                                [--product-line P] [--region R]\n"
"                                [--batch N] [--dry-run]\n"
"\n"
"Import the factory's records (device id, public key) into both places\n"
"that check a device's key: each batch goes first to the signer\n"
"(CaAdmin.RegisterDeviceKeys), then the records the signer accepted go to\n"
"authz (Registry.ImportDevices). Both check every record again and refuse\n"
"a bad id, a bad or weak key, a known id with another key, a known key\n"
"under another id. Re-running an import is idempotent: records already\n"
"there with the same key are \"unchanged\".\n"
"\n"
"Formats (told by the name unless --format is given):\n"
"  csv    device_id,public_key[,product_line,region]; RFC 4180 quoting, so\n"
"         a PEM key fits in a quoted field; an optional header line\n"
"  jsonl  one JSON object per line (*.jsonl, *.ndjson, *.json):\n"
"         {\"device_id\": ..., \"public_key\": ..., \"product_line\": ...,\n"
"          \"region\": ...}\n"
"  dir    a directory of PEM public keys named <device id>.pem\n"
"public_key is a PEM PUBLIC KEY block or base64 of the DER\n"
"SubjectPublicKeyInfo. FILE may be - for standard input (with --format).\n"
"The file is streamed: a million records are fine.\n"
"\n"
"Every refused record is reported on stderr with where it is and who\n"
"refused it, e.g.\n"
"  devices.csv:7: device 1111: registered with another key (signer)\n"
"and the last line is the summary \"imported N, unchanged N, refused N\"\n"
"(imported: new to the signer or to authz; unchanged: both had it).\n"
"Progress goes to stderr when it is a terminal. With --json the summary\n"
"and the refusals are printed as one JSON object instead.\n"
"\n"
"Options:\n"
"  --format F         csv, jsonl or dir\n"
"  --product-line P   the product line of records that name none\n"
"  --region R         the region of records that name none (a device with\n"
"                     a region enrolls only there)\n"
"  --batch N          records per call (default 1000, at most 10000)\n"
"  --dry-run          read and check the records here; send nothing\n"
"\n"
"Exit status 9 when the import finished but refused records.\n"
"\n"
"Example:\n"
"  secretfree device import devices.csv --product-line widgiot\n"
"  secretfree device import keys/ --product-line widgiot --region eu-west-1\n";

typedef struct {
	char source[300];
	uint64_t line;
	int fmt;
} rec_where;

/* A refusal held until its batch is answered, so that a batch's
 * refusals come out in file order whoever made them. */
typedef struct {
	rec_where w;
	char id[DEVICE_ID_MAX + 1];
	int reason;
	int by;
	size_t seq;
	char message[200];
} pending;

typedef struct {
	cli *c;
	out_stream js;
	const char *path;
	int fmt;
	int tty;
	int dry_run;
	int progress_shown;
	size_t cap;
	/* The batch being filled: records and copies of what they point at. */
	size_t n;
	KeyRecord *recs;
	KeyRecord **ptrs;
	rec_where *where;
	pending *pend;           /* at most cap, with the batch's records */
	size_t npend;
	uint64_t nread, imported, unchanged, refused;
} importer;

static void
progress_clear(importer *im)
{
	if (im->progress_shown) {
		fputs("\r\033[K", stderr);
		im->progress_shown = 0;
	}
}

static void
progress(importer *im)
{
	if (!im->tty)
		return;
	fprintf(stderr, "\r\033[K%llu read: imported %llu, unchanged %llu,"
	    " refused %llu", (unsigned long long)im->nread,
	    (unsigned long long)im->imported,
	    (unsigned long long)im->unchanged,
	    (unsigned long long)im->refused);
	im->progress_shown = 1;
}

/* A short sentence for what the stores refuse (their messages repeat the
 * id); the checks' own sentences carry details worth keeping. */
static const char *
refusal_text(int reason, const char *message)
{
	switch (reason) {
	case SECRETFREE__V1__REFUSAL_REASON__REFUSAL_REASON_ID_HAS_OTHER_KEY:
		return "registered with another key";
	case SECRETFREE__V1__REFUSAL_REASON__REFUSAL_REASON_KEY_HAS_OTHER_ID:
		return "its key is registered under another device id";
	case SECRETFREE__V1__REFUSAL_REASON__REFUSAL_REASON_ID_HAS_OTHER_PLACE:
		return "registered for another product line or region";
	case SECRETFREE__V1__REFUSAL_REASON__REFUSAL_REASON_CONFLICT_IN_BATCH:
		return "conflicts with another record of the same batch";
	}
	return message && *message ? message : "refused";
}

/* The reader's sentences may start with where the record is ("line 7: ",
 * "name.pem: "); the refusal line says that already. */
static const char *
skip_where(const char *s, const rec_where *w)
{
	const char *p = s, *base = strrchr(w->source, '/');
	size_t n;

	if (strncmp(p, "line ", 5) == 0) {
		p += 5;
		while (*p >= '0' && *p <= '9')
			p++;
		if (p > s + 5 && strncmp(p, ": ", 2) == 0)
			return p + 2;
		return s;
	}
	base = base ? base + 1 : w->source;
	n = strlen(base);
	if (n && strncmp(s, base, n) == 0 && strncmp(s + n, ": ", 2) == 0)
		return s + n + 2;
	return s;
}

static void
emit(importer *im, const rec_where *w, const char *id, int reason,
    const char *message, int by)
{
	char rname[48], loc[340];
	const char *text = skip_where(refusal_text(reason, message), w);

	im->refused++;
	if (reason == IMPORT_MALFORMED)
		snprintf(rname, sizeof rname, "malformed");
	else
		out_enum(&secretfree__v1__refusal_reason__descriptor, reason,
		    "REFUSAL_REASON_", rname, sizeof rname);
	if (w->fmt == IMPORT_DIR)
		snprintf(loc, sizeof loc, "%s", w->source);
	else
		snprintf(loc, sizeof loc, "%s:%llu", w->source,
		    (unsigned long long)w->line);
	if (im->c->json) {
		out_stream_item(&im->js, json_pack("{s:o, s:I, s:o, s:s, s:o, "
		    "s:s}",
		    "source", out_jstr(w->source),
		    "line", (json_int_t)w->line,
		    "device_id", out_jstr(id),
		    "reason", rname,
		    "message", out_jstr(text),
		    "by", by_name[by]));
		return;
	}
	progress_clear(im);
	fflush(stdout);
	if (id && *id)
		fprintf(stderr, "%s: device %s: %s (%s)\n", loc, id, text,
		    by_name[by]);
	else
		fprintf(stderr, "%s: %s (%s)\n", loc, text, by_name[by]);
}

/* Hold a refusal for its batch (or report it now, with no batch). */
static void
refusal(importer *im, const rec_where *w, const char *id, int reason,
    const char *message, int by)
{
	pending *p;

	if (im->pend == NULL) {
		emit(im, w, id, reason, message, by);
		return;
	}
	p = &im->pend[im->npend];
	p->w = *w;
	snprintf(p->id, sizeof p->id, "%s", id ? id : "");
	p->reason = reason;
	p->by = by;
	p->seq = im->npend++;
	snprintf(p->message, sizeof p->message, "%s", message ? message : "");
}

static int
pending_cmp(const void *a, const void *b)
{
	const pending *x = a, *y = b;

	if (x->w.line != y->w.line)
		return x->w.line < y->w.line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void
pending_emit(importer *im)
{
	qsort(im->pend, im->npend, sizeof *im->pend, pending_cmp);
	for (size_t i = 0; i < im->npend; i++)
		emit(im, &im->pend[i].w, im->pend[i].id, im->pend[i].reason,
		    im->pend[i].message, im->pend[i].by);
	im->npend = 0;
}

static void
batch_clear(importer *im)
{
	for (size_t i = 0; i < im->n; i++) {
		free(im->recs[i].device_id);
		free(im->recs[i].product_line);
		free(im->recs[i].region);
		free(im->recs[i].spki_der.data);
	}
	im->n = 0;
}

/* Where a record is, as the refusal lines say it. */
static void
where_of(importer *im, const import_record *r, rec_where *w)
{
	w->line = r->line;
	w->fmt = im->fmt;
	if (im->fmt == IMPORT_DIR && strchr(r->source, '/') == NULL)
		snprintf(w->source, sizeof w->source, "%s%s%s", im->path,
		    im->path[strlen(im->path) - 1] == '/' ? "" : "/",
		    r->source);
	else
		snprintf(w->source, sizeof w->source, "%s", *r->source ?
		    r->source : im->path);
}

static int
batch_add(importer *im, const import_record *r)
{
	KeyRecord *k = &im->recs[im->n];

	secretfree__v1__device_key_record__init(k);
	k->device_id = strdup(r->device_id);
	k->product_line = strdup(r->product_line);
	k->region = strdup(r->region);
	k->spki_der.data = malloc(r->key.spki_len ? r->key.spki_len : 1);
	k->line = r->line;
	im->ptrs[im->n] = k;
	where_of(im, r, &im->where[im->n]);
	im->n++;
	if (!k->device_id || !k->product_line || !k->region ||
	    !k->spki_der.data)
		return cli_error(im->c, CLI_EXIT_ERROR, "out of memory");
	memcpy(k->spki_der.data, r->key.spki, r->key.spki_len);
	k->spki_der.len = r->key.spki_len;
	return 0;
}

static int
check_results(importer *im, const char *who, const ImportResult *res,
    size_t n)
{
	if (res->n_results != n)
		return cli_error(im->c, CLI_EXIT_ERROR, "%s answered %zu"
		    " results for %zu records", who, res->n_results, n);
	for (size_t i = 0; i < n; i++)
		if (res->results[i]->index != i)
			return cli_error(im->c, CLI_EXIT_ERROR, "%s answered"
			    " the results out of order", who);
	return 0;
}

/* Send the batch: the signer first, then authz with what the signer
 * accepted. */
static int
batch_flush(importer *im)
{
	Secretfree__V1__RegisterDeviceKeysRequest sreq =
	    SECRETFREE__V1__REGISTER_DEVICE_KEYS_REQUEST__INIT;
	Secretfree__V1__ImportDevicesRequest areq =
	    SECRETFREE__V1__IMPORT_DEVICES_REQUEST__INIT;
	ImportResult *sres = NULL, *ares = NULL;
	KeyRecord **pass = NULL;
	size_t *idx = NULL, np = 0;
	int ec;

	if (im->n == 0) {
		pending_emit(im);
		return 0;
	}
	sreq.records = im->ptrs;
	sreq.n_records = im->n;
	if ((ec = cli_call(im->c, CLI_SIGNER, CA_SVC, "RegisterDeviceKeys",
	    &sreq.base, (ProtobufCMessage **)&sres)) != 0 ||
	    (ec = check_results(im, "the signer", sres, im->n)) != 0)
		goto out;
	if ((pass = calloc(im->n, sizeof *pass)) == NULL ||
	    (idx = calloc(im->n, sizeof *idx)) == NULL) {
		ec = cli_error(im->c, CLI_EXIT_ERROR, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < im->n; i++) {
		const Secretfree__V1__RecordResult *r = sres->results[i];

		if (r->outcome == OUTCOME_IMPORTED ||
		    r->outcome == OUTCOME_UNCHANGED) {
			pass[np] = im->ptrs[i];
			idx[np++] = i;
		} else
			refusal(im, &im->where[i], im->ptrs[i]->device_id,
			    r->reason, r->message, BY_SIGNER);
	}
	if (np > 0) {
		areq.records = pass;
		areq.n_records = np;
		if ((ec = cli_call(im->c, CLI_AUTHZ, REG_SVC, "ImportDevices",
		    &areq.base, (ProtobufCMessage **)&ares)) != 0 ||
		    (ec = check_results(im, "authz", ares, np)) != 0)
			goto out;
	}
	for (size_t k = 0; k < np; k++) {
		const Secretfree__V1__RecordResult *a = ares->results[k];
		const Secretfree__V1__RecordResult *s = sres->results[idx[k]];

		if (a->outcome != OUTCOME_IMPORTED &&
		    a->outcome != OUTCOME_UNCHANGED)
			refusal(im, &im->where[idx[k]], pass[k]->device_id,
			    a->reason, a->message, BY_AUTHZ);
		else if (a->outcome == OUTCOME_IMPORTED ||
		    s->outcome == OUTCOME_IMPORTED)
			im->imported++;
		else
			im->unchanged++;
	}
	ec = 0;
out:
	if (sres)
		protobuf_c_message_free_unpacked(&sres->base, NULL);
	if (ares)
		protobuf_c_message_free_unpacked(&ares->base, NULL);
	free(pass);
	free(idx);
	batch_clear(im);
	pending_emit(im);
	progress(im);
	return ec;
}

/* --dry-run: the checks both daemons make, here. */
static void
dry_check(importer *im, const import_record *r)
{
	pubkey_info pk;
	rec_where w;
	char why[200];
	int reason;

	reason = devrec_check(r->device_id, r->key.spki, r->key.spki_len,
	    r->product_line, r->region, &pk, why, sizeof why);
	pubkey_info_free(&pk);
	if (reason) {
		where_of(im, r, &w);
		refusal(im, &w, r->device_id, reason, why, BY_CHECK);
	} else
		im->imported++;
}

static int
import_run(importer *im, import_reader *rd, size_t batch)
{
	import_record rec;
	rec_where w;
	int rc, ec = 0;

	memset(&rec, 0, sizeof rec);
	while ((rc = import_next(rd, &rec)) == 1) {
		im->nread++;
		if (rec.reason != 0) {
			where_of(im, &rec, &w);
			refusal(im, &w, rec.device_id, rec.reason, rec.why,
			    BY_FILE);
			if (im->pend && im->n + im->npend >= batch &&
			    (ec = batch_flush(im)) != 0)
				break;
			continue;
		}
		if (im->dry_run) {
			dry_check(im, &rec);
			continue;
		}
		if ((ec = batch_add(im, &rec)) != 0)
			break;
		if (im->n + im->npend >= batch && (ec = batch_flush(im)) != 0)
			break;
	}
	if (rc < 0 && ec == 0)
		ec = cli_error(im->c, CLI_EXIT_INPUT, "%s: %s (after record"
		    " %llu)", im->path, *rec.why ? rec.why : "read error",
		    (unsigned long long)im->nread);
	if (ec == 0 && !im->dry_run)
		ec = batch_flush(im);
	else if (im->pend)
		pending_emit(im);
	import_record_fini(&rec);
	batch_clear(im);
	return ec;
}

static void
import_summary(importer *im, int ec)
{
	FILE *f = ec ? stderr : stdout;
	json_t *tail;

	if (im->c->json) {
		/* A dry run counts valid records, not imported ones. */
		if (im->dry_run)
			tail = json_pack("{s:b, s:b, s:I, s:I, s:I}",
			    "dry_run", 1,
			    "complete", ec == 0,
			    "read", (json_int_t)im->nread,
			    "valid", (json_int_t)im->imported,
			    "refused", (json_int_t)im->refused);
		else
			tail = json_pack("{s:b, s:b, s:I, s:I, s:I, s:I}",
			    "dry_run", 0,
			    "complete", ec == 0,
			    "read", (json_int_t)im->nread,
			    "imported", (json_int_t)im->imported,
			    "unchanged", (json_int_t)im->unchanged,
			    "refused", (json_int_t)im->refused);
		out_stream_close(&im->js, tail);
		return;
	}
	progress_clear(im);
	if (ec)
		fprintf(f, "stopped after %llu records: ",
		    (unsigned long long)im->nread);
	if (im->dry_run)
		fprintf(f, "dry run: %llu valid, refused %llu (nothing sent)\n",
		    (unsigned long long)im->imported,
		    (unsigned long long)im->refused);
	else
		fprintf(f, "imported %llu, unchanged %llu, refused %llu\n",
		    (unsigned long long)im->imported,
		    (unsigned long long)im->unchanged,
		    (unsigned long long)im->refused);
}

static int
device_import(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "product-line", required_argument, NULL, 'p' },
		{ "region", required_argument, NULL, 'r' },
		{ "batch", required_argument, NULL, 'b' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 }
	};
	const char *pl = NULL, *region = NULL;
	import_reader *rd = NULL;
	importer im;
	long long batch = 1000;
	char why[512];
	int ch, ec, rc, fmt = IMPORT_AUTO;

	memset(&im, 0, sizeof im);
	im.c = c;
	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'f':
			if (strcmp(optarg, "csv") == 0)
				fmt = IMPORT_CSV;
			else if (strcmp(optarg, "jsonl") == 0)
				fmt = IMPORT_JSONL;
			else if (strcmp(optarg, "dir") == 0)
				fmt = IMPORT_DIR;
			else
				return cli_usage(c, "--format is csv, jsonl or"
				    " dir, not \"%s\"", optarg);
			break;
		case 'p':
			pl = optarg;
			break;
		case 'r':
			region = optarg;
			break;
		case 'b':
			if (cli_num(c, "--batch", optarg, 1, RECRES_MAX_RECORDS,
			    &batch) != 0)
				return CLI_EXIT_USAGE;
			break;
		case 'n':
			im.dry_run = 1;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc)
		return optind >= argc ? cli_usage(c, "which file or"
		    " directory?") : cli_usage(c, "one file or directory only,"
		    " not %s", argv[argc - 1]);
	im.path = argv[optind];
	/* Find the targets before reading anything. */
	if (!im.dry_run && (cli_target(c, CLI_SIGNER) == NULL ||
	    cli_target(c, CLI_AUTHZ) == NULL))
		return CLI_EXIT_USAGE;
	rc = import_open(im.path, fmt, pl, region, &rd, why, sizeof why);
	if (rc == SF_EINVAL)
		return cli_usage(c, "%s", why);
	if (rc != 0)
		return cli_error(c, CLI_EXIT_INPUT, "%s", why);
	im.fmt = import_format(rd);
	im.tty = !c->json && isatty(STDERR_FILENO);
	im.cap = (size_t)batch;
	if (!im.dry_run && ((im.recs = calloc(im.cap, sizeof *im.recs)) ==
	    NULL || (im.ptrs = calloc(im.cap, sizeof *im.ptrs)) == NULL ||
	    (im.where = calloc(im.cap, sizeof *im.where)) == NULL ||
	    (im.pend = calloc(im.cap, sizeof *im.pend)) == NULL)) {
		ec = cli_error(c, CLI_EXIT_ERROR, "out of memory");
		goto out;
	}
	if (c->json)
		out_stream_open(&im.js, stdout, json_pack("{s:o, s:s}",
		    "source", out_jstr(im.path),
		    "format", import_format_name(im.fmt)), "refusals");
	ec = import_run(&im, rd, (size_t)batch);
	import_summary(&im, ec);
	if (ec == 0 && im.refused > 0)
		ec = CLI_EXIT_REFUSED;
out:
	import_close(rd);
	free(im.recs);
	free(im.ptrs);
	free(im.where);
	free(im.pend);
	return ec;
}

/* ---- device list / show ---- */

static const char *
dstate_name(int v, char *buf, size_t len)
{
	return out_enum(&secretfree__v1__device_state__descriptor, v,
	    "DEVICE_STATE_", buf, len);
}

/* A device as --json prints it; key_type when its key can be read. */
static json_t *
device_json(const Secretfree__V1__Device *d)
{
	char st[32], hex[65] = "";
	pubkey_info pk;
	json_t *v;

	if (d->key_sha256.len == 32)
		sf_hex(d->key_sha256.data, 32, hex);
	v = json_pack("{s:o, s:o, s:o, s:s, s:s, s:s*, s:o, s:o, s:o, s:o}",
	    "device_id", out_jstr(d->device_id),
	    "product_line", out_jstr(d->product_line),
	    "region", out_jstr(d->region),
	    "state", dstate_name(d->state, st, sizeof st),
	    "key_sha256", hex,
	    "key_type", pubkey_from_spki(d->spki_der.data, d->spki_der.len,
	    &pk, NULL, 0) == 0 ? pubkey_type_name(pk.type) : NULL,
	    "current_serial", out_jstr(d->current_serial),
	    "thing_name", out_jstr(d->thing_name),
	    "created_at", out_jtime(d->created_at),
	    "updated_at", out_jtime(d->updated_at));
	pubkey_info_free(&pk);
	return v;
}

static int
state_opt(cli *c, const char *v, int *out)
{
	if (strcmp(v, "registered") == 0)
		*out = SECRETFREE__V1__DEVICE_STATE__DEVICE_STATE_REGISTERED;
	else if (strcmp(v, "active") == 0)
		*out = SECRETFREE__V1__DEVICE_STATE__DEVICE_STATE_ACTIVE;
	else if (strcmp(v, "disabled") == 0)
		*out = SECRETFREE__V1__DEVICE_STATE__DEVICE_STATE_DISABLED;
	else
		return cli_usage(c, "--state is registered, active or disabled,"
		    " not \"%s\"", v);
	return 0;
}

static const char HELP_LIST[] =
"Usage: secretfree device list [--product-line P] [--region R]\n"
"                              [--state registered|active|disabled]\n"
"                              [--limit N]\n"
"\n"
"List the devices in authz's registry (Registry.ListDevices), by id:\n"
"product line, region, state, current certificate and key fingerprint.\n"
"registered: imported, never enrolled; active: holds a certificate;\n"
"disabled: refused at enrollment until enabled again.\n"
"\n"
"Options:\n"
"  --product-line P   only this product line\n"
"  --region R         only this region\n"
"  --state S          only devices in this state\n"
"  --limit N          at most N devices (default 100)\n"
"\n"
"Example:\n"
"  secretfree device list --product-line widgiot --state registered\n";

static int
device_list(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "product-line", required_argument, NULL, 'p' },
		{ "region", required_argument, NULL, 'r' },
		{ "state", required_argument, NULL, 's' },
		{ "limit", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 }
	};
	static const char *const hdr[] = { "DEVICE", "PRODUCT_LINE", "REGION",
	    "STATE", "SERIAL", "KEY_SHA256" };
	Secretfree__V1__ListDevicesRequest req =
	    SECRETFREE__V1__LIST_DEVICES_REQUEST__INIT;
	Secretfree__V1__ListDevicesResponse *resp = NULL;
	out_table *tb = NULL;
	char after[DEVICE_ID_MAX + 1] = "", st[32], hex[65];
	long long limit = 100, n;
	size_t shown = 0;
	int ch, state = 0, ec = 0;
	out_stream js;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'p':
			req.product_line = optarg;
			break;
		case 'r':
			req.region = optarg;
			break;
		case 's':
			if (state_opt(c, optarg, &state) != 0)
				return CLI_EXIT_USAGE;
			req.state = state;
			break;
		case 'n':
			if (cli_num(c, "--limit", optarg, 1, 100000000,
			    &limit) != 0)
				return CLI_EXIT_USAGE;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage(c, "unexpected argument %s", argv[optind]);
	if (c->json)
		out_stream_open(&js, stdout, NULL, "devices");
	else if ((tb = out_table_new(6, hdr)) == NULL)
		return cli_error(c, CLI_EXIT_ERROR, "out of memory");
	while ((long long)shown < limit) {
		n = limit - (long long)shown;
		req.limit = (uint32_t)(n > PAGE_MAX ? PAGE_MAX : n);
		req.after_device_id = after;
		if ((ec = cli_call(c, CLI_AUTHZ, REG_SVC, "ListDevices",
		    &req.base, (ProtobufCMessage **)&resp)) != 0)
			break;
		for (size_t i = 0; i < resp->n_devices; i++) {
			const Secretfree__V1__Device *d = resp->devices[i];

			if (c->json)
				out_stream_item(&js, device_json(d));
			else {
				const char *row[6];

				hex[0] = '\0';
				if (d->key_sha256.len == 32)
					sf_hex(d->key_sha256.data, 8, hex);
				row[0] = d->device_id;
				row[1] = d->product_line;
				row[2] = d->region;
				row[3] = dstate_name(d->state, st, sizeof st);
				row[4] = d->current_serial;
				row[5] = hex;
				out_table_add(tb, row);
			}
			snprintf(after, sizeof after, "%s", d->device_id);
		}
		shown += resp->n_devices;
		n = (long long)resp->n_devices;
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		resp = NULL;
		if (n < (long long)req.limit)
			break;
	}
	if (c->json)
		out_stream_close(&js, NULL);
	else if (ec == 0)
		out_table_print(tb, stdout);
	out_table_free(tb);
	return ec;
}

static const char HELP_SHOW[] =
"Usage: secretfree device show ID\n"
"\n"
"Show a device from authz's registry (Registry.GetDevice): product line,\n"
"region, state, key type and fingerprint; its thing (Registry.GetThing)\n"
"with attributes, groups and policies once it has enrolled; and its\n"
"certificates (Registry.ListCertificates).\n"
"\n"
"Example:\n"
"  secretfree device show 1111\n"
"  secretfree --json device show 1111 | jq .thing.attributes\n";

/* A device's thing as --json prints it; null before it enrolled. */
static json_t *
thing_json(const Secretfree__V1__Thing *t)
{
	json_t *attrs = json_object();

	if (t == NULL) {
		json_decref(attrs);
		return json_null();
	}
	for (size_t i = 0; i < t->n_attributes; i++)
		out_jset(&attrs, t->attributes[i]->name,
		    out_jstr(t->attributes[i]->value));
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}",
	    "name", out_jstr(t->name),
	    "attributes", attrs,
	    "groups", out_jstrs(t->groups, t->n_groups),
	    "policies", out_jstrs(t->policies, t->n_policies),
	    "certificate_serial", out_jstr(t->certificate_serial),
	    "created_at", out_jtime(t->created_at));
}

/* A device's certificates as --json prints them. */
static json_t *
certs_json(const Secretfree__V1__ListDeviceCertificatesResponse *cl)
{
	json_t *a = json_array();
	char st[32];

	for (size_t i = 0; i < cl->n_certificates; i++) {
		const Secretfree__V1__CertificateInfo *ci = cl->certificates[i];

		out_jappend(&a, json_pack("{s:o, s:o, s:s, s:o, s:o, s:o, s:o}",
		    "serial", out_jstr(ci->serial),
		    "ca", out_jstr(ci->ca_name),
		    "status", out_enum(
		    &secretfree__v1__certificate_status__descriptor,
		    ci->status, "CERTIFICATE_STATUS_", st, sizeof st),
		    "not_before", out_jtime(ci->not_before),
		    "not_after", out_jtime(ci->not_after),
		    "issued_at", out_jtime(ci->issued_at),
		    "enrollment_id", out_jstr(ci->enrollment_id)));
	}
	return a;
}

static void
show_human(const Secretfree__V1__Device *d, const Secretfree__V1__Thing *t,
    const Secretfree__V1__ListDeviceCertificatesResponse *cl)
{
	static const char *const hdr[] = { "SERIAL", "CA", "STATUS",
	    "NOT_AFTER", "ENROLLMENT" };
	char st[32], hex[65] = "", b1[32], b2[32];
	pubkey_info pk;
	out_table *tb;

	if (d->key_sha256.len == 32)
		sf_hex(d->key_sha256.data, 32, hex);
	out_kv(stdout, "device", "%s", d->device_id);
	out_kv(stdout, "state", "%s", dstate_name(d->state, st, sizeof st));
	out_kv(stdout, "product line", "%s", d->product_line);
	out_kv(stdout, "region", "%s", *d->region ? d->region : "(any)");
	if (pubkey_from_spki(d->spki_der.data, d->spki_der.len, &pk, NULL,
	    0) == 0)
		out_kv(stdout, "key type", "%s", pubkey_type_name(pk.type));
	pubkey_info_free(&pk);
	out_kv(stdout, "key sha256", "%s", hex);
	out_kv(stdout, "current serial", "%s", d->current_serial);
	out_kv(stdout, "created", "%s", out_time(d->created_at, b1,
	    sizeof b1));
	out_kv(stdout, "updated", "%s", out_time(d->updated_at, b2,
	    sizeof b2));
	if (t) {
		printf("\nthing %s\n", t->name);
		for (size_t i = 0; i < t->n_attributes; i++)
			printf("  attribute  %s = %s\n", t->attributes[i]->name,
			    t->attributes[i]->value);
		for (size_t i = 0; i < t->n_groups; i++)
			printf("  group      %s\n", t->groups[i]);
		for (size_t i = 0; i < t->n_policies; i++)
			printf("  policy     %s\n", t->policies[i]);
	}
	if (cl == NULL || cl->n_certificates == 0) {
		printf("\nno certificates yet\n");
		return;
	}
	printf("\ncertificates\n");
	if ((tb = out_table_new(5, hdr)) == NULL)
		return;
	for (size_t i = 0; i < cl->n_certificates; i++) {
		const Secretfree__V1__CertificateInfo *ci = cl->certificates[i];
		const char *row[5] = { ci->serial, ci->ca_name, out_enum(
		    &secretfree__v1__certificate_status__descriptor,
		    ci->status, "CERTIFICATE_STATUS_", st, sizeof st),
		    out_time(ci->not_after, b1, sizeof b1),
		    ci->enrollment_id };

		out_table_add(tb, row);
	}
	out_table_print(tb, stdout);
	out_table_free(tb);
}

static int
device_show(cli *c, int argc, char **argv)
{
	static const struct option opts[] = { { NULL, 0, NULL, 0 } };
	Secretfree__V1__GetDeviceRequest dreq =
	    SECRETFREE__V1__GET_DEVICE_REQUEST__INIT;
	Secretfree__V1__GetThingRequest treq =
	    SECRETFREE__V1__GET_THING_REQUEST__INIT;
	Secretfree__V1__ListDeviceCertificatesRequest creq =
	    SECRETFREE__V1__LIST_DEVICE_CERTIFICATES_REQUEST__INIT;
	Secretfree__V1__Device *d = NULL;
	Secretfree__V1__Thing *t = NULL;
	Secretfree__V1__ListDeviceCertificatesResponse *cl = NULL;
	rpc_status rs;
	int ch, ec;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1)
		return CLI_EXIT_USAGE;
	if (optind + 1 != argc)
		return optind >= argc ? cli_usage(c, "which device?") :
		    cli_usage(c, "one device only, not %s", argv[argc - 1]);
	dreq.device_id = argv[optind];
	c->hint[RPC_NOT_FOUND] = "import it first: secretfree device import"
	    " FILE --product-line ID";
	if ((ec = cli_call(c, CLI_AUTHZ, REG_SVC, "GetDevice", &dreq.base,
	    (ProtobufCMessage **)&d)) != 0)
		return ec;
	c->hint[RPC_NOT_FOUND] = NULL;
	/* A device that never enrolled has no thing: not an error. */
	treq.name = d->device_id;
	ec = cli_call_quiet(c, CLI_AUTHZ, REG_SVC, "GetThing", &treq.base,
	    (ProtobufCMessage **)&t, &rs);
	if (ec != 0 && rs.code != RPC_NOT_FOUND) {
		ec = cli_rpc_fail(c, CLI_AUTHZ, &rs);
		goto out;
	}
	creq.device_id = d->device_id;
	if ((ec = cli_call(c, CLI_AUTHZ, REG_SVC, "ListCertificates",
	    &creq.base, (ProtobufCMessage **)&cl)) != 0)
		goto out;
	if (c->json)
		ec = out_json(c, json_pack("{s:o, s:o, s:o}",
		    "device", device_json(d),
		    "thing", thing_json(t),
		    "certificates", certs_json(cl)));
	else
		show_human(d, t, cl);
out:
	protobuf_c_message_free_unpacked(&d->base, NULL);
	if (t)
		protobuf_c_message_free_unpacked(&t->base, NULL);
	if (cl)
		protobuf_c_message_free_unpacked(&cl->base, NULL);
	return ec;
}

/* ---- device disable / enable ---- */

static const char HELP_DISABLE[] =
"Usage: secretfree device disable ID [--reason TEXT]\n"
"\n"
"Disable a device in authz's registry (Registry.DisableDevice): its\n"
"enrollments are refused with PERMISSION_DENIED until it is enabled again.\n"
"Certificates it holds are not revoked by this.\n"
"\n"
"Options:\n"
"  --reason TEXT   why, for the record (e.g. \"returned for repair\")\n"
"\n"
"Example:\n"
"  secretfree device disable 1115 --reason \"reported stolen\"\n";

static const char HELP_ENABLE[] =
"Usage: secretfree device enable ID\n"
"\n"
"Enable a disabled device again (Registry.EnableDevice): it returns to\n"
"active if it holds a certificate, else to registered.\n"
"\n"
"Example:\n"
"  secretfree device enable 1115\n";

static int
set_state(cli *c, int argc, char **argv, int disable)
{
	static const struct option dopts[] = {
		{ "reason", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 }
	};
	static const struct option eopts[] = { { NULL, 0, NULL, 0 } };
	Secretfree__V1__SetDeviceStateRequest req =
	    SECRETFREE__V1__SET_DEVICE_STATE_REQUEST__INIT;
	Secretfree__V1__Device *d = NULL;
	char st[32];
	int ch, ec;

	while ((ch = cli_getopt(c, argc, argv, disable ? dopts : eopts)) !=
	    -1) {
		if (ch != 'r')
			return CLI_EXIT_USAGE;
		req.reason = optarg;
	}
	if (optind + 1 != argc)
		return optind >= argc ? cli_usage(c, "which device?") :
		    cli_usage(c, "one device only, not %s", argv[argc - 1]);
	req.device_id = argv[optind];
	if ((ec = cli_call(c, CLI_AUTHZ, REG_SVC, disable ? "DisableDevice" :
	    "EnableDevice", &req.base, (ProtobufCMessage **)&d)) != 0)
		return ec;
	if (c->json)
		ec = out_json(c, device_json(d));
	else
		printf("device %s: %s\n", d->device_id, dstate_name(d->state,
		    st, sizeof st));
	protobuf_c_message_free_unpacked(&d->base, NULL);
	return ec;
}

static int
device_disable(cli *c, int argc, char **argv)
{
	return set_state(c, argc, argv, 1);
}

static int
device_enable(cli *c, int argc, char **argv)
{
	return set_state(c, argc, argv, 0);
}

const cli_cmd cmd_device_table[] = {
	{ "device", "import", device_import, "import factory records into the"
	    " signer and authz", HELP_IMPORT },
	{ "device", "list", device_list, "list registered devices", HELP_LIST },
	{ "device", "show", device_show, "show a device, its thing and"
	    " certificates", HELP_SHOW },
	{ "device", "disable", device_disable, "refuse a device's enrollments",
	    HELP_DISABLE },
	{ "device", "enable", device_enable, "enable a disabled device",
	    HELP_ENABLE },
	{ NULL, NULL, NULL, NULL, NULL }
};
