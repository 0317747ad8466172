/*
 * devimport.c - the factory import protocol of `secretfree device import`.
 *
 * The reader (import.c) streams the file; its records gather into batches
 * of --batch. Each batch goes first to the signer
 * (CaAdmin.RegisterDeviceKeys), then the records the signer accepted
 * (imported or unchanged) go to authz (Registry.ImportDevices). The signer
 * goes first because it holds the second, independent check of a device's
 * key (DESIGN.md: it keeps device id -> key and signs for no other key):
 * were authz first, a record the signer then refused would sit in authz's
 * registry, and authz would take that device's enrollments only for the
 * signer to refuse them. Signer first, authz never holds a device the
 * signer would refuse; a record the signer took and authz refused is
 * harmless, since nobody enrolls without authz.
 *
 * Both daemons check every record again and answer one RecordResult per
 * record, in order. Each refusal is reported with the record's file and
 * line and who refused it (the file's reader, the signer, authz, or the
 * local checks of --dry-run), held until its batch is answered so that
 * refusals come out in file order. Re-running an import is idempotent:
 * what both already hold with the same key is "unchanged", and counts as
 * imported when either of them took it new.
 *
 * Reading and checking the file (JSON or CSV, each key decoded and
 * checked) costs about as much as either daemon's share, so the work is
 * a pipeline of three threads, each batch passing through them in file
 * order: the reader fills a batch; the signer thread sends it to the
 * signer; the main thread sends what the signer accepted to authz and
 * reports the refusals. While authz stores batch k, the signer stores
 * batch k+1 and the reader reads batch k+2. Three batch slots go round,
 * so at most three batches and their refusals are held and memory does
 * not grow with the file. Only the reader touches the file; only the
 * main thread writes the output (the signer thread keeps its answer or
 * its error in the batch, for the main thread to report in order).
 * Should authz fail on batch k, the import stops there; batch k+1 may
 * then be registered at the signer alone, which is harmless (see above)
 * and which re-running the import completes.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "devimport.h"
#include "devrec.h"
#include "err.h"
#include "import.h"
#include "out.h"
#include "pubkey.h"
#include "secretfree/v1/ca_admin.pb-c.h"
#include "secretfree/v1/registry.pb-c.h"

#define CA_SVC (&secretfree__v1__ca_admin__descriptor)
#define REG_SVC (&secretfree__v1__registry__descriptor)

#define OUTCOME_IMPORTED SECRETFREE__V1__RECORD_OUTCOME__RECORD_OUTCOME_IMPORTED
#define OUTCOME_UNCHANGED SECRETFREE__V1__RECORD_OUTCOME__RECORD_OUTCOME_UNCHANGED

typedef Secretfree__V1__DeviceKeyRecord KeyRecord;
typedef Secretfree__V1__ImportResult ImportResult;

/* Who refused a record. */
enum { BY_FILE = 0, BY_SIGNER = 1, BY_AUTHZ = 2, BY_CHECK = 3 };
static const char *const by_name[] = { "file", "signer", "authz", "check" };

/* Where a record is, as its refusal line says it. */
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

/* A batch: its records, copies of what they point at, and refusals. */
typedef struct {
	size_t n;
	KeyRecord *recs;
	KeyRecord **ptrs;
	rec_where *where;
	pending *pend;           /* at most cap, with the batch's records */
	size_t npend;
	uint64_t nread;          /* records read when the batch was closed */
	int last;                /* the reader's last batch */
	int read_rc;             /* last: import_next's error, or 0 */
	char read_why[256];      /* ... and its sentence */
	/* The signer thread's answer: sec 0 and sres, or sec and sst. */
	ImportResult *sres;
	int sec;
	rpc_status sst;
} batch;

/* Where a slot is in the pipeline. */
enum { SLOT_FREE = 0, SLOT_READ, SLOT_SIGNED };
#define NSLOTS 3

typedef struct {
	cli *c;
	out_stream js;
	const char *path;
	int fmt;
	int tty;
	int dry_run;
	int progress_shown;
	size_t cap;
	batch slot[NSLOTS];
	batch *pend_to;          /* where refusals go (NULL: emit at once) */
	uint64_t nread, imported, unchanged, refused;
	/* Reader -> signer thread -> main thread: state[i] of slot i. */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int state[NSLOTS];
	int stop;                /* the main thread gave up */
	import_reader *rd;
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

/* Hold a refusal for its batch b (or report it now, with no batch). */
static void
refusal(importer *im, batch *b, const rec_where *w, const char *id,
    int reason, const char *message, int by)
{
	pending *p;

	if (b == NULL) {
		emit(im, w, id, reason, message, by);
		return;
	}
	p = &b->pend[b->npend];
	p->w = *w;
	snprintf(p->id, sizeof p->id, "%s", id ? id : "");
	p->reason = reason;
	p->by = by;
	p->seq = b->npend++;
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
pending_emit(importer *im, batch *b)
{
	qsort(b->pend, b->npend, sizeof *b->pend, pending_cmp);
	for (size_t i = 0; i < b->npend; i++)
		emit(im, &b->pend[i].w, b->pend[i].id, b->pend[i].reason,
		    b->pend[i].message, b->pend[i].by);
	b->npend = 0;
}

static void
batch_clear(batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->recs[i].device_id);
		free(b->recs[i].product_line);
		free(b->recs[i].region);
		free(b->recs[i].spki_der.data);
	}
	b->n = 0;
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

/* 0, or SF_ENOMEM (the reader thread reports nothing itself). */
static int
batch_add(importer *im, batch *b, const import_record *r)
{
	KeyRecord *k = &b->recs[b->n];

	secretfree__v1__device_key_record__init(k);
	k->device_id = strdup(r->device_id);
	k->product_line = strdup(r->product_line);
	k->region = strdup(r->region);
	k->spki_der.data = malloc(r->key.spki_len ? r->key.spki_len : 1);
	k->line = r->line;
	b->ptrs[b->n] = k;
	where_of(im, r, &b->where[b->n]);
	b->n++;
	if (!k->device_id || !k->product_line || !k->region ||
	    !k->spki_der.data)
		return SF_ENOMEM;
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

/* The signer thread: send the batch to the signer, keep the answer. */
static void
batch_sign(importer *im, batch *b)
{
	Secretfree__V1__RegisterDeviceKeysRequest sreq =
	    SECRETFREE__V1__REGISTER_DEVICE_KEYS_REQUEST__INIT;

	b->sres = NULL;
	b->sec = 0;
	if (b->n == 0)
		return;
	sreq.records = b->ptrs;
	sreq.n_records = b->n;
	b->sec = cli_call_quiet(im->c, CLI_SIGNER, CA_SVC,
	    "RegisterDeviceKeys", &sreq.base, (ProtobufCMessage **)&b->sres,
	    &b->sst);
}

/* The main thread, once the signer answered the batch: report its error,
 * or send authz what the signer accepted. */
static int
batch_flush(importer *im, batch *b)
{
	Secretfree__V1__ImportDevicesRequest areq =
	    SECRETFREE__V1__IMPORT_DEVICES_REQUEST__INIT;
	ImportResult *sres = b->sres, *ares = NULL;
	KeyRecord **pass = NULL;
	size_t *idx = NULL, np = 0;
	int ec;

	b->sres = NULL;
	if (b->n == 0) {
		pending_emit(im, b);
		return 0;
	}
	if (b->sec != 0) {
		ec = cli_rpc_fail(im->c, CLI_SIGNER, &b->sst);
		goto out;
	}
	if ((ec = check_results(im, "the signer", sres, b->n)) != 0)
		goto out;
	if ((pass = calloc(b->n, sizeof *pass)) == NULL ||
	    (idx = calloc(b->n, sizeof *idx)) == NULL) {
		ec = cli_error(im->c, CLI_EXIT_ERROR, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < b->n; i++) {
		const Secretfree__V1__RecordResult *r = sres->results[i];

		if (r->outcome == OUTCOME_IMPORTED ||
		    r->outcome == OUTCOME_UNCHANGED) {
			pass[np] = b->ptrs[i];
			idx[np++] = i;
		} else
			refusal(im, b, &b->where[i], b->ptrs[i]->device_id,
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
			refusal(im, b, &b->where[idx[k]], pass[k]->device_id,
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
	batch_clear(b);
	pending_emit(im, b);
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
		refusal(im, NULL, &w, r->device_id, reason, why, BY_CHECK);
	} else
		im->imported++;
}

/* --dry-run: read and check every record here, one at a time. */
static int
run_dry(importer *im, import_reader *rd)
{
	import_record rec;
	rec_where w;
	int rc, ec = 0;

	memset(&rec, 0, sizeof rec);
	while ((rc = import_next(rd, &rec)) == 1) {
		im->nread++;
		if (rec.reason != 0) {
			where_of(im, &rec, &w);
			refusal(im, NULL, &w, rec.device_id, rec.reason,
			    rec.why, BY_FILE);
			continue;
		}
		dry_check(im, &rec);
	}
	if (rc < 0)
		ec = cli_error(im->c, CLI_EXIT_INPUT, "%s: %s (after record"
		    " %llu)", im->path, *rec.why ? rec.why : "read error",
		    (unsigned long long)im->nread);
	import_record_fini(&rec);
	return ec;
}

/* Wait until slot i is in state st: 0, or -1 once the import stopped. */
static int
slot_take(importer *im, int i, int st)
{
	int stop;

	pthread_mutex_lock(&im->mu);
	while (im->state[i] != st && !im->stop)
		pthread_cond_wait(&im->cv, &im->mu);
	stop = im->stop;
	pthread_mutex_unlock(&im->mu);
	return stop ? -1 : 0;
}

/* Hand slot i on in state st. */
static void
slot_pass(importer *im, int i, int st)
{
	pthread_mutex_lock(&im->mu);
	im->state[i] = st;
	pthread_cond_broadcast(&im->cv);
	pthread_mutex_unlock(&im->mu);
}

/* Stop the import: the reader and the signer thread end at their next
 * slot. */
static void
import_stop(importer *im)
{
	pthread_mutex_lock(&im->mu);
	im->stop = 1;
	pthread_cond_broadcast(&im->cv);
	pthread_mutex_unlock(&im->mu);
}

/*
 * The reader thread: fill a free slot until batch records (good or
 * refused) have gathered, hand it over, take the other. The last batch
 * says why the file ended (its end, or import_next's error).
 */
static void *
reader_main(void *arg)
{
	importer *im = arg;
	import_record rec;
	uint64_t nread = 0;
	rec_where w;
	batch *b;
	int rc = 1, i = 0;

	memset(&rec, 0, sizeof rec);
	for (;;) {
		if (slot_take(im, i, SLOT_FREE) != 0)
			break;
		b = &im->slot[i];
		b->last = 0;
		b->read_rc = 0;
		b->read_why[0] = '\0';
		while (b->n + b->npend < im->cap &&
		    (rc = import_next(im->rd, &rec)) == 1) {
			nread++;
			if (rec.reason != 0) {
				where_of(im, &rec, &w);
				refusal(im, b, &w, rec.device_id, rec.reason,
				    rec.why, BY_FILE);
			} else if (batch_add(im, b, &rec) != 0) {
				rc = SF_ENOMEM;
				snprintf(rec.why, sizeof rec.why, "out of "
				    "memory");
				break;
			}
		}
		b->nread = nread;
		if (rc != 1) {
			b->last = 1;
			b->read_rc = rc;
			snprintf(b->read_why, sizeof b->read_why, "%s",
			    rec.why);
		}
		slot_pass(im, i, SLOT_READ);
		if (b->last)
			break;
		i = (i + 1) % NSLOTS;
	}
	import_record_fini(&rec);
	return NULL;
}

/*
 * The signer thread: send each batch the reader filled to the signer, in
 * file order, and hand it to the main thread. A batch the reader's error
 * cut short is not sent.
 */
static void *
signer_main(void *arg)
{
	importer *im = arg;
	batch *b;
	int i = 0, last = 0;

	while (!last) {
		if (slot_take(im, i, SLOT_READ) != 0)
			break;
		b = &im->slot[i];
		last = b->last;
		if (!(last && b->read_rc < 0))
			batch_sign(im, b);
		slot_pass(im, i, SLOT_SIGNED);
		i = (i + 1) % NSLOTS;
	}
	return NULL;
}

/*
 * Send each batch the reader hands over, in file order. 0 or the exit code
 * of what stopped it.
 */
static int
run_batches(importer *im)
{
	pthread_t rth, sth;
	rpc_client *unused;
	batch *b;
	int ec = 0, i = 0, last = 0;

	/* Both clients now, in this thread: the signer thread then only
	 * calls. */
	if ((ec = cli_client(im->c, CLI_SIGNER, &unused)) != 0 ||
	    (ec = cli_client(im->c, CLI_AUTHZ, &unused)) != 0)
		return ec;
	if (pthread_create(&rth, NULL, reader_main, im) != 0)
		return cli_error(im->c, CLI_EXIT_ERROR, "cannot start the "
		    "reader thread");
	if (pthread_create(&sth, NULL, signer_main, im) != 0) {
		import_stop(im);
		pthread_join(rth, NULL);
		return cli_error(im->c, CLI_EXIT_ERROR, "cannot start the "
		    "signer thread");
	}
	while (!last) {
		/* Only this thread stops the import: the wait ends with the
		 * slot signed. */
		(void)slot_take(im, i, SLOT_SIGNED);
		b = &im->slot[i];
		last = b->last;
		im->nread = b->nread;
		if (last && b->read_rc == SF_ENOMEM)
			ec = cli_error(im->c, CLI_EXIT_ERROR, "out of memory");
		else if (last && b->read_rc < 0)
			/* The batch the error cut short is not sent. */
			ec = cli_error(im->c, CLI_EXIT_INPUT, "%s: %s (after "
			    "record %llu)", im->path, *b->read_why ?
			    b->read_why : "read error",
			    (unsigned long long)im->nread);
		else
			ec = batch_flush(im, b);   /* frees the signer's answer */
		batch_clear(b);
		if (b->npend)
			pending_emit(im, b);
		if (ec != 0)
			import_stop(im);
		slot_pass(im, i, SLOT_FREE);
		if (ec != 0)
			break;
		i = (i + 1) % NSLOTS;
	}
	pthread_join(sth, NULL);
	pthread_join(rth, NULL);
	for (int k = 0; k < NSLOTS; k++) {
		if (im->slot[k].sres)
			protobuf_c_message_free_unpacked(
			    &im->slot[k].sres->base, NULL);
		batch_clear(&im->slot[k]);
	}
	return ec;
}

/* The last line, "imported N, unchanged N, refused N" (or the JSON
 * document's last members). */
static void
summary(importer *im, int ec)
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

int
devimport_run(cli *c, const devimport_opts *o)
{
	import_reader *rd = NULL;
	importer im;
	char why[512];
	int ec, rc;

	memset(&im, 0, sizeof im);
	im.c = c;
	im.path = o->path;
	im.dry_run = o->dry_run;
	/* Find the targets before reading anything. */
	if (!im.dry_run && (cli_target(c, CLI_SIGNER) == NULL ||
	    cli_target(c, CLI_AUTHZ) == NULL))
		return CLI_EXIT_USAGE;
	rc = import_open(o->path, o->fmt, o->product_line, o->region, &rd, why,
	    sizeof why);
	if (rc == SF_EINVAL)
		return cli_usage(c, "%s", why);
	if (rc != 0)
		return cli_error(c, CLI_EXIT_INPUT, "%s", why);
	im.fmt = import_format(rd);
	im.tty = !c->json && isatty(STDERR_FILENO);
	im.cap = o->batch;
	im.rd = rd;
	pthread_mutex_init(&im.mu, NULL);
	pthread_cond_init(&im.cv, NULL);
	for (int k = 0; !im.dry_run && k < NSLOTS; k++) {
		batch *b = &im.slot[k];

		if ((b->recs = calloc(im.cap, sizeof *b->recs)) == NULL ||
		    (b->ptrs = calloc(im.cap, sizeof *b->ptrs)) == NULL ||
		    (b->where = calloc(im.cap, sizeof *b->where)) == NULL ||
		    (b->pend = calloc(im.cap, sizeof *b->pend)) == NULL) {
			ec = cli_error(c, CLI_EXIT_ERROR, "out of memory");
			goto out;
		}
	}
	if (c->json)
		out_stream_open(&im.js, stdout, json_pack("{s:o, s:s}",
		    "source", out_jstr(im.path),
		    "format", import_format_name(im.fmt)), "refusals");
	ec = im.dry_run ? run_dry(&im, rd) : run_batches(&im);
	summary(&im, ec);
	if (ec == 0 && im.refused > 0)
		ec = CLI_EXIT_REFUSED;
out:
	import_close(rd);
	for (int k = 0; k < NSLOTS; k++) {
		free(im.slot[k].recs);
		free(im.slot[k].ptrs);
		free(im.slot[k].where);
		free(im.slot[k].pend);
	}
	pthread_cond_destroy(&im.cv);
	pthread_mutex_destroy(&im.mu);
	return ec;
}
