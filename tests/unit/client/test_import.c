/*
 * Unit tests of client/import.c: the three factory formats agree on ids and
 * fingerprints; PEM and base64 keys; defaults; CSV headers, quoting,
 * multi-line PEM fields and CRLF; malformed lines reported with their line
 * number while the records after them are still read; refusals with the
 * reason devrec_check would give; what jansson makes strict in JSON Lines
 * (UTF-8, a key named twice, \u0000); dir mode; format detection; standard
 * input; empty files; and a large CSV and a large JSON Lines file read in
 * constant memory.
 *
 * Every key is generated here at run time; none is stored in the tree.
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "err.h"
#include "import.h"
#include "pubkey.h"
#include "util.h"
#include "../../tap.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

static char tmpdir[] = "/tmp/test_import.XXXXXX";

struct key {
	EVP_PKEY *pk;
	char *pem;        /* PEM "PUBLIC KEY" block, '\n' line ends */
	char *b64;        /* base64 of the DER SPKI, one line */
	char fp[65];      /* SHA-256 of i2d_PUBKEY: canonical for these keys */
	uint8_t fpraw[32];
};

static struct key ec1, ec2, ec384, ed, rsa, rsa1024;

/* What a read gave, record by record. */
struct got {
	uint64_t line;
	int reason;
	char id[DEVICE_ID_MAX + 1];
	char fp[65];
	char pl[33];
	char region[33];
	char why[200];
	char source[256];
};
#define MAXGOT 64
static struct got got[MAXGOT];

static int
make_key(struct key *k, const char *alg, const char *curve, size_t bits)
{
	unsigned char *der = NULL, md[32];
	BIO *bio = NULL;
	char *p;
	long n;
	int len, rc = -1;

	if (curve != NULL)
		k->pk = EVP_PKEY_Q_keygen(NULL, NULL, alg, curve);
	else if (bits != 0)
		k->pk = EVP_PKEY_Q_keygen(NULL, NULL, alg, bits);
	else
		k->pk = EVP_PKEY_Q_keygen(NULL, NULL, alg);
	if (k->pk == NULL || (len = i2d_PUBKEY(k->pk, &der)) <= 0)
		goto out;
	if ((k->b64 = malloc((size_t)len / 3 * 4 + 8)) == NULL)
		goto out;
	EVP_EncodeBlock((unsigned char *)k->b64, der, len);
	if (!EVP_Q_digest(NULL, "SHA256", NULL, der, (size_t)len, md, NULL))
		goto out;
	sf_hex(md, 32, k->fp);
	memcpy(k->fpraw, md, 32);
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_PUBKEY(bio, k->pk))
		goto out;
	n = BIO_get_mem_data(bio, &p);
	if ((k->pem = strndup(p, (size_t)n)) == NULL)
		goto out;
	rc = 0;
out:
	if (rc != 0) {
		tap_diag("cannot make a %s key", alg);
		ERR_print_errors_fp(stdout);
	}
	BIO_free(bio);
	OPENSSL_free(der);
	return rc;
}

static void
free_key(struct key *k)
{
	EVP_PKEY_free(k->pk);
	free(k->pem);
	free(k->b64);
}

/* tmpdir/name into buf. */
static const char *
tpath(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
	return buf;
}

static void
put_file(const char *name, const char *data, size_t len)
{
	char path[512];
	FILE *f = fopen(tpath(path, sizeof path, name), "w");

	if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
		tap_diag("cannot write %s", path);
}

static void
put_str(const char *name, const char *s)
{
	put_file(name, s, strlen(s));
}

/* A text being built, and the line the next record will start on. */
struct text {
	char *buf;
	size_t len;
	FILE *f;
};

static void
text_open(struct text *t)
{
	t->buf = NULL;
	t->len = 0;
	t->f = open_memstream(&t->buf, &t->len);
}

/* The line the next byte written will be on. */
static uint64_t
text_line(struct text *t)
{
	uint64_t n = 1;

	fflush(t->f);
	for (size_t i = 0; i < t->len; i++)
		n += t->buf[i] == '\n';
	return n;
}

static void __attribute__((format(printf, 2, 3)))
text_add(struct text *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(t->f, fmt, ap);
	va_end(ap);
}

/* Write the text to tmpdir/name and free it. */
static void
text_save(struct text *t, const char *name)
{
	fclose(t->f);
	put_file(name, t->buf, t->len);
	free(t->buf);
}

/* s with every '\n' escaped for a JSON string (malloc'd). */
static char *
json_esc(const char *s)
{
	char *out = malloc(strlen(s) * 2 + 1), *o = out;

	for (; *s != '\0'; s++) {
		if (*s == '\n') {
			*o++ = '\\';
			*o++ = 'n';
		} else
			*o++ = *s;
	}
	*o = '\0';
	return out;
}

/* s with every '\n' made "\r\n" (malloc'd). */
static char *
crlf(const char *s)
{
	char *out = malloc(strlen(s) * 2 + 1), *o = out;

	for (; *s != '\0'; s++) {
		if (*s == '\n')
			*o++ = '\r';
		*o++ = *s;
	}
	*o = '\0';
	return out;
}

static void
take(struct got *g, const import_record *rec)
{
	memset(g, 0, sizeof *g);
	g->line = rec->line;
	g->reason = rec->reason;
	sf_strlcpy(g->id, rec->device_id, sizeof g->id);
	sf_strlcpy(g->pl, rec->product_line, sizeof g->pl);
	sf_strlcpy(g->region, rec->region, sizeof g->region);
	sf_strlcpy(g->why, rec->why, sizeof g->why);
	sf_strlcpy(g->source, rec->source, sizeof g->source);
	if (rec->reason == 0)
		pubkey_fp_hex(rec->key.sha256, g->fp);
}

/*
 * Read tmpdir/name (or name itself if it starts with '/' or is "-") to the
 * end; the records go to got[]. The number of records, or the error.
 */
static int
read_all(const char *name, int fmt, const char *pl, const char *region)
{
	import_reader *r = NULL;
	import_record rec;
	char path[512], why[200] = "";
	int n = 0, rc;

	if (name[0] != '/' && strcmp(name, "-") != 0)
		name = tpath(path, sizeof path, name);
	if ((rc = import_open(name, fmt, pl, region, &r, why,
	    sizeof why)) != 0) {
		tap_diag("import_open %s: %s", name, why);
		return rc;
	}
	memset(&rec, 0, sizeof rec);
	while ((rc = import_next(r, &rec)) == 1) {
		if (n < MAXGOT)
			take(&got[n], &rec);
		if (rec.reason != 0)
			tap_diag("  %s line %llu: reason %d: %s", rec.source,
			    (unsigned long long)rec.line, rec.reason, rec.why);
		n++;
	}
	import_close(r);
	return rc < 0 ? rc : n;
}

static const struct got *
find_id(int n, const char *id)
{
	for (int i = 0; i < n && i < MAXGOT; i++)
		if (strcmp(got[i].id, id) == 0)
			return &got[i];
	return NULL;
}

/* What must_find() gives for a record that is not there: every check on
 * it then fails by itself. */
static const struct got none = { .reason = -1 };

/* The record of id among the n read, asserted to be there. */
static const struct got *
must_find(int n, const char *id, const char *what)
{
	const struct got *g = find_id(n, id);

	ok(g != NULL, "%s: %s was read", what, id);
	return g != NULL ? g : &none;
}

/* What a record should be read as. */
struct placed {
	const char *pl;
	const char *region;   /* "" = none */
	const char *what;
};

/* g is accepted with product line pl and region region ("" = none). */
static void
is_placed(const struct got *g, const char *pl, const char *region,
    const char *what)
{
	is_int(g->reason, 0, "%s: accepted", what);
	is_str(g->pl, pl, "%s: product line", what);
	is_str(g->region, region, "%s: region", what);
}

/* got[from..from+n) are placed as want[0..n) says. */
static void
are_placed(int from, const struct placed *want, size_t n)
{
	for (size_t i = 0; i < n; i++)
		is_placed(&got[from + (int)i], want[i].pl, want[i].region,
		    want[i].what);
}

/* got[i] is a good record of key k on line `line`. */
static void
is_good(int i, uint64_t line, const char *id, const struct key *k,
    const char *what)
{
	is_int(got[i].reason, 0, "%s: %s is accepted", what, id);
	is_str(got[i].id, id, "%s: record %d is %s", what, i + 1, id);
	is_int(got[i].line, line, "%s: %s is on line %llu", what, id,
	    (unsigned long long)line);
	is_str(got[i].fp, k->fp, "%s: %s has its key's fingerprint", what, id);
}

static void
is_bad(int i, uint64_t line, int reason, const char *what)
{
	is_int(got[i].reason, reason, "%s: line %llu refused with reason %d",
	    what, (unsigned long long)line, reason);
	is_int(got[i].line, line, "%s: the refusal names line %llu", what,
	    (unsigned long long)line);
}

/* The four devices that every format gives (test_same, test_stdin). */
static const struct {
	const char *id;
	struct key *k;
	int pem;          /* the key as PEM, else as base64 */
} same_devs[] = {
	{ "dev-ec", &ec1, 1 }, { "dev-ed", &ed, 0 },
	{ "dev-rsa", &rsa, 1 }, { "dev-384", &ec384, 0 },
};
#define NSAME (sizeof same_devs / sizeof same_devs[0])

/*
 * same.csv, same.jsonl and the directory same.d, each with the four
 * devices; lines[i] is the CSV line device i starts on.
 */
static void
same_write(uint64_t lines[NSAME])
{
	struct text csv, js;
	char path[512], name[64];

	text_open(&csv);
	text_open(&js);
	text_add(&csv, "device_id,public_key,product_line,region\n");
	mkdir(tpath(path, sizeof path, "same.d"), 0700);
	for (size_t i = 0; i < NSAME; i++) {
		const struct key *k = same_devs[i].k;
		char *esc = json_esc(k->pem);

		lines[i] = text_line(&csv);
		if (same_devs[i].pem)
			text_add(&csv, "%s,\"%s\",widgiot,us-east-1\n",
			    same_devs[i].id, k->pem);
		else
			text_add(&csv, "%s,%s,widgiot,us-east-1\n",
			    same_devs[i].id, k->b64);
		/* Each spelling of the key member once. */
		if (i == 0)
			text_add(&js, "{\"device_id\": \"%s\", \"public_key\": "
			    "\"%s\", \"product_line\": \"widgiot\", "
			    "\"region\": \"us-east-1\"}\n", same_devs[i].id,
			    esc);
		else
			text_add(&js, "{\"region\":\"us-east-1\",\"%s\":\"%s\","
			    "\"device_id\":\"%s\",\"product_line\":"
			    "\"widgiot\"}\n", same_devs[i].pem ?
			    "public_key_pem" : i == 1 ?
			    "public_key_der_base64" : "public_key",
			    same_devs[i].pem ? esc : k->b64, same_devs[i].id);
		free(esc);
		snprintf(name, sizeof name, "same.d/%s.pem", same_devs[i].id);
		put_str(name, same_devs[i].pem ? k->pem : k->b64);
	}
	text_save(&csv, "same.csv");
	text_save(&js, "same.jsonl");
}

/* file (one of same_write's) gives the four devices, each in its place. */
static void
same_check(const char *file, const uint64_t lines[NSAME])
{
	char name[64], what[128];
	int n;

	n = read_all(file, IMPORT_AUTO, "widgiot", "us-east-1");
	is_int(n, NSAME, "%s: four records", file);
	for (size_t i = 0; i < NSAME; i++) {
		const struct got *g = must_find(n, same_devs[i].id, file);

		snprintf(what, sizeof what, "%s: %s", file, same_devs[i].id);
		is_placed(g, "widgiot", "us-east-1", what);
		is_str(g->fp, same_devs[i].k->fp, "%s: its key's fingerprint",
		    what);
		if (strcmp(file, "same.csv") == 0) {
			is_int(g->line, lines[i], "%s starts on line %llu",
			    what, (unsigned long long)lines[i]);
			ok(strstr(g->source, "same.csv") != NULL,
			    "%s: the source is the file", what);
		} else if (strcmp(file, "same.jsonl") == 0)
			is_int(g->line, i + 1, "%s is on line %zu", what,
			    i + 1);
		else {
			snprintf(name, sizeof name, "%s.pem",
			    same_devs[i].id);
			is_str(g->source, name, "%s: the source is its file "
			    "name", what);
		}
	}
}

/* Each format reads the same four devices with the same fingerprints. */
static void
test_same(void)
{
	uint64_t lines[NSAME];
	int n;

	same_write(lines);
	same_check("same.csv", lines);
	same_check("same.jsonl", lines);
	same_check("same.d", lines);
	/* dir: line is the n-th file, in readdir order. */
	n = read_all("same.d", IMPORT_DIR, "widgiot", "us-east-1");
	is_int(n, NSAME, "dir: four files");
	for (int i = 0; i < n && i < (int)NSAME; i++)
		is_int(got[i].line, i + 1, "dir: file %d is numbered %d",
		    i + 1, i + 1);
}

/* The key as PEM, with CRLF, without its last newline, and as base64. */
static void
test_forms(void)
{
	struct text t;
	char *pem_crlf = crlf(ec2.pem);
	size_t plen = strlen(ec2.pem);
	int n;

	text_open(&t);
	text_add(&t, "f1,\"%s\"\n", ec2.pem);
	text_add(&t, "f2,\"%.*s\"\n", (int)plen - 1, ec2.pem);
	text_add(&t, "f3,\"%s\"\n", pem_crlf);
	text_add(&t, "f4,%s\n", ec2.b64);
	text_add(&t, "f5,\"%.20s\n%s\"\n", ec2.b64, ec2.b64 + 20);
	text_save(&t, "forms.csv");
	free(pem_crlf);
	n = read_all("forms.csv", IMPORT_CSV, "widgiot", NULL);
	is_int(n, 5, "forms: five records");
	for (int i = 0; i < n && i < 5; i++) {
		is_int(got[i].reason, 0, "forms: %s is accepted", got[i].id);
		is_str(got[i].fp, ec2.fp, "forms: %s gives the key's "
		    "fingerprint", got[i].id);
	}
}

/* CSV records of two, three and four fields, and empty ones. */
static void
test_defaults_csv(void)
{
	static const struct placed defaults[] = {
		{ "widgiot", "eu-west-1", "defaults: two fields take both "
		    "defaults" },
		{ "other", "eu-west-1", "defaults: three fields take the "
		    "default region" },
		{ "other", "us-east-1", "defaults: four fields take no "
		    "default" },
		{ "widgiot", "eu-west-1", "defaults: empty fields take the "
		    "defaults" },
		{ "widgiot", "eu-west-1", "defaults: empty quoted fields take "
		    "the defaults" },
	}, no_defaults[] = {
		{ "other", "", "no defaults: a record without region" },
		{ "other", "us-east-1", "no defaults: a full record" },
	};
	struct text t;
	int n;

	text_open(&t);
	text_add(&t, "d1,%s\n", ec1.b64);
	text_add(&t, "d2,%s,other\n", ec1.b64);
	text_add(&t, "d3,%s,other,us-east-1\n", ec1.b64);
	text_add(&t, "d4,%s,,\n", ec1.b64);
	text_add(&t, "d5,%s,\"\",\"\"\n", ec1.b64);
	text_save(&t, "defaults.csv");

	n = read_all("defaults.csv", IMPORT_CSV, "widgiot", "eu-west-1");
	is_int(n, 5, "defaults: five records");
	are_placed(0, defaults, 5);

	n = read_all("defaults.csv", IMPORT_CSV, NULL, NULL);
	is_int(n, 5, "no defaults: five records");
	is_int(got[0].reason, 6, "no defaults: no product line is "
	    "BAD_PRODUCT_LINE");
	ok(strstr(got[0].why, "no product line") != NULL,
	    "no defaults: why says so (%s)", got[0].why);
	are_placed(1, no_defaults, 2);
}

/* JSON members that are missing or null take the defaults. */
static void
test_defaults_jsonl(void)
{
	static const struct placed want[] = {
		{ "widgiot", "eu-west-1", "jsonl defaults: missing members "
		    "take the defaults" },
		{ "other", "eu-west-1", "jsonl defaults: a given product line "
		    "stays" },
		{ "widgiot", "eu-west-1", "jsonl defaults: null members take "
		    "the defaults" },
	};
	struct text t;
	int n;

	text_open(&t);
	text_add(&t, "{\"device_id\":\"j1\",\"public_key\":\"%s\"}\n", ec1.b64);
	text_add(&t, "{\"device_id\":\"j2\",\"public_key\":\"%s\","
	    "\"product_line\":\"other\"}\n", ec1.b64);
	text_add(&t, "{\"device_id\":\"j3\",\"public_key\":\"%s\","
	    "\"product_line\":null,\"region\":null}\n", ec1.b64);
	text_save(&t, "defaults.jsonl");
	n = read_all("defaults.jsonl", IMPORT_JSONL, "widgiot", "eu-west-1");
	is_int(n, 3, "jsonl defaults: three records");
	are_placed(0, want, 3);
}

static void
test_header(void)
{
	struct text t;
	int n;

	text_open(&t);
	text_add(&t, "device_id,public_key,product_line,region\n");
	text_add(&t, "h1,%s\n", ec1.b64);
	text_add(&t, "device_id,public_key\n");
	text_save(&t, "header.csv");
	n = read_all("header.csv", IMPORT_CSV, "widgiot", NULL);
	is_int(n, 2, "header: skipped, two records");
	is_good(0, 2, "h1", &ec1, "header");
	/* Only the first record is a header; a later one is a record. */
	is_bad(1, 3, 2, "header: a second header line");
	is_str(got[1].id, "device_id", "header: ... read as a device id");

	text_open(&t);
	text_add(&t, "\xef\xbb\xbf\r\n\r\nDEVICE_ID,\"public_key\"\r\n");
	text_add(&t, "h2,%s\r\n", ec1.b64);
	text_save(&t, "header2.csv");
	n = read_all("header2.csv", IMPORT_CSV, "widgiot", NULL);
	is_int(n, 1, "header: after a byte order mark and blank lines, CRLF, "
	    "any case");
	is_good(0, 4, "h2", &ec1, "header2");

	put_str("header3.csv", "device_id,public_key,product_line,region\n");
	is_int(read_all("header3.csv", IMPORT_CSV, "widgiot", NULL), 0,
	    "header: a file with only a header has no records");
}

/* Multi-line PEM fields, CRLF, "" escapes, quoted commas. */
static void
test_quoting(void)
{
	struct text t;
	char *pem = crlf(rsa.pem);
	uint64_t l1, l2, l3, l4, l5, l6;
	int n;

	text_open(&t);
	l1 = text_line(&t);
	text_add(&t, "q1,\"%s\",widgiot\r\n", pem);
	l2 = text_line(&t);
	text_add(&t, "q2,%s\r\n", ec1.b64);
	l3 = text_line(&t);
	text_add(&t, "\"q3\",\"%s\",\"widgiot\",\"us-east-1\"\r\n", ec1.b64);
	l4 = text_line(&t);
	text_add(&t, "\"q\"\"4\",%s\r\n", ec1.b64);
	l5 = text_line(&t);
	text_add(&t, "q5,%s,widgiot,\"us,east\"\r\n", ec1.b64);
	l6 = text_line(&t);
	text_add(&t, "q6,\"%s\"", pem);
	text_save(&t, "quoting.csv");
	free(pem);

	n = read_all("quoting.csv", IMPORT_CSV, "widgiot", NULL);
	is_int(n, 6, "quoting: six records");
	is_good(0, l1, "q1", &rsa, "quoting");
	is_good(1, l2, "q2", &ec1, "quoting");
	is_good(2, l3, "q3", &ec1, "quoting");
	is_str(got[2].region, "us-east-1", "quoting: quoted region");
	is_bad(3, l4, 1, "quoting: \"\" in a device id");
	is_str(got[3].id, "q\"4", "quoting: \"\" is one quote");
	is_bad(4, l5, 7, "quoting: a quoted comma in a region");
	is_str(got[4].region, "us,east", "quoting: the comma is kept");
	is_good(5, l6, "q6", &rsa, "quoting: last record without newline");
	ok(l2 > l1 + 5, "quoting: the PEM field spanned lines");
}

/* Bad lines in the middle are reported; the records after them are read. */
static void
test_csv_malformed(void)
{
	struct text t;
	uint64_t l13, l14, lu, l15, l16;
	char big[70 * 1024];
	int n;

	text_open(&t);
	text_add(&t, "m1,%s\n", ec1.b64);                        /* 1 */
	text_add(&t, "m2,\"%s\"x,widgiot\n", ec1.b64);           /* 2 */
	text_add(&t, "m3,%s\n", ec1.b64);                        /* 3 */
	text_add(&t, "m4,%s,widgiot,us-east-1,extra\n", ec1.b64);/* 4 */
	text_add(&t, "m5,%s\n", ec1.b64);                        /* 5 */
	text_add(&t, "justone\n");                               /* 6 */
	text_add(&t, "m7,ab\"c\n");                              /* 7 */
	text_add(&t, "m8,%s\n", ec1.b64);                        /* 8 */
	/* Closed by the quote that opens the next record's PEM field. */
	text_add(&t, "m9,\"%s\n", ec1.b64);                      /* 9 */
	l13 = text_line(&t);
	text_add(&t, "m13,\"%s\"\n", ec2.pem);
	l14 = text_line(&t);
	text_add(&t, "m14,%s\n", ec1.b64);
	memset(big, 'A', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	text_add(&t, "big,%s\n", big);
	text_add(&t, "m15,%s\n", ec1.b64);
	text_add(&t, "nul,ab");
	fputc('\0', t.f);
	text_add(&t, "c\n");
	/* Never closed: reported at its line, the rest read again. */
	lu = text_line(&t);
	text_add(&t, "unterminated,\"%s\n", ec1.b64);
	l15 = text_line(&t);
	text_add(&t, "m16,%s\n", ec1.b64);
	l16 = text_line(&t);
	text_add(&t, "m17,%s", ec1.b64);
	text_save(&t, "malformed.csv");

	n = read_all("malformed.csv", IMPORT_CSV, "widgiot", NULL);
	is_int(n, 17, "csv malformed: seventeen records");
	is_good(0, 1, "m1", &ec1, "csv malformed");
	is_bad(1, 2, IMPORT_MALFORMED, "csv malformed: text after a quote");
	ok(strstr(got[1].why, "line 2: text after a closing quote") != NULL,
	    "csv malformed: why names line 2 (%s)", got[1].why);
	is_good(2, 3, "m3", &ec1, "csv malformed");
	is_bad(3, 4, IMPORT_MALFORMED, "csv malformed: five fields");
	is_str(got[3].why, "line 4: 5 fields, expected 2 to 4",
	    "csv malformed: why of five fields");
	is_good(4, 5, "m5", &ec1, "csv malformed");
	is_bad(5, 6, IMPORT_MALFORMED, "csv malformed: one field");
	is_str(got[5].why, "line 6: 1 field, expected 2 to 4",
	    "csv malformed: why of one field");
	is_bad(6, 7, IMPORT_MALFORMED, "csv malformed: a quote inside a field");
	is_good(7, 8, "m8", &ec1, "csv malformed");
	is_bad(8, 9, IMPORT_MALFORMED, "csv malformed: a stray open quote");
	is_good(9, l13, "m13", &ec2, "csv malformed: PEM after a stray quote");
	is_good(10, l14, "m14", &ec1, "csv malformed");
	is_bad(11, l14 + 1, IMPORT_MALFORMED, "csv malformed: 70 KiB line");
	ok(strstr(got[11].why, "over 64 KiB") != NULL,
	    "csv malformed: why says over 64 KiB (%s)", got[11].why);
	is_good(12, l14 + 2, "m15", &ec1, "csv malformed: after the long line");
	is_bad(13, l14 + 3, IMPORT_MALFORMED, "csv malformed: a NUL byte");
	is_bad(14, lu, IMPORT_MALFORMED, "csv malformed: an unterminated "
	    "quote");
	ok(strstr(got[14].why, "unterminated") != NULL,
	    "csv malformed: why says unterminated (%s)", got[14].why);
	is_good(15, l15, "m16", &ec1, "csv malformed: after the quote");
	is_good(16, l16, "m17", &ec1, "csv malformed: last line");
}

/*
 * A quote never closed, followed by more than 64 KiB of good records: the
 * one record is refused and every record after it is read.
 */
static void
test_csv_runaway(void)
{
	import_reader *r = NULL;
	import_record rec;
	struct text t;
	char path[512], why[200];
	int n = 0, bad = 0, inorder = 1, rc;

	text_open(&t);
	text_add(&t, "r0,\"%s\n", ec1.b64);
	for (int i = 1; i <= 1000; i++)
		text_add(&t, "r%d,%s\n", i, ec1.b64);
	text_save(&t, "runaway.csv");

	memset(&rec, 0, sizeof rec);
	rc = import_open(tpath(path, sizeof path, "runaway.csv"), IMPORT_AUTO,
	    "widgiot", NULL, &r, why, sizeof why);
	is_int(rc, 0, "runaway: open");
	while (r != NULL && (rc = import_next(r, &rec)) == 1) {
		char id[16];

		snprintf(id, sizeof id, "r%d", n);
		if (n == 0)
			take(&got[0], &rec);
		else if (rec.reason != 0 || rec.line != (uint64_t)n + 1 ||
		    strcmp(rec.device_id, id) != 0)
			inorder = 0;
		bad += rec.reason != 0;
		n++;
	}
	import_close(r);
	is_int(n, 1001, "runaway: 1001 records");
	is_int(got[0].reason, IMPORT_MALFORMED, "runaway: line 1 refused");
	ok(strstr(got[0].why, "line 1: a quoted field is not closed within "
	    "64 KiB") != NULL, "runaway: why (%s)", got[0].why);
	is_int(bad, 1, "runaway: only that record is refused");
	ok(inorder, "runaway: the 1000 records after it are read, in order, "
	    "with their lines");
}

static void
test_jsonl(void)
{
	struct text t;
	char *pem = json_esc(ec2.pem);
	int n;

	text_open(&t);
	text_add(&t, "{\"device_id\":\"j1\",\"public_key\":\"%s\"}\n",
	    ec1.b64);                                            /* 1 */
	text_add(&t, "{\"device_id\":\"j2\",\"public_key\":\n");  /* 2 */
	text_add(&t, "[1, 2]\n");                                /* 3 */
	text_add(&t, "{\"device_id\":5,\"public_key\":\"%s\"}\n",
	    ec1.b64);                                            /* 4 */
	text_add(&t, "{\"device_id\":\"j5\",\"public_key\":\"%s\","
	    "\"extra\":[1,{\"x\":2}],\"n\":3}\n", pem);          /* 5 */
	text_add(&t, "\n");                                      /* 6 */
	text_add(&t, "{\"device_id\":\"j7\"}\n");                /* 7 */
	text_add(&t, "{\"device_id\":\"j8\",\"public_key\":\"%s\","
	    "\"public_key_pem\":\"%s\"}\n", ec1.b64, pem);       /* 8 */
	text_add(&t, "\"just a string\"\n");                     /* 9 */
	text_add(&t, "{\"device_id\":\"j10\",\"public_key_der_base64\":"
	    "\"%s\",\"product_line\":null,\"region\":null}\r\n",
	    ec1.b64);                                            /* 10 */
	text_add(&t, "{\"device_id\":\"j11\",\"public_key\":\"%s\","
	    "\"region\":true}\n", ec1.b64);                      /* 11 */
	text_add(&t, "{\"public_key\":\"%s\"}\n", ec1.b64);      /* 12 */
	text_add(&t, "{\"device_id\":\"j13\",\"public_key\":\"%s\","
	    "\"product_line\":{\"a\":1}}\n", ec1.b64);           /* 13 */
	text_add(&t, "{\"device_id\":\"j\\u0000\",\"public_key\":\"%s\"}\n",
	    ec1.b64);                                            /* 14 */
	text_add(&t, "{\"device_id\":\"j\\u0031\\u0035\",\"public_key\":"
	    "\"%s\",\"note\":\"a\\u0000\"}\n", ec1.b64);          /* 15 */
	/* An escaped backslash, then "u0000": no NUL, but not an id. */
	text_add(&t, "{\"device_id\":\"k\\\\u0000\",\"public_key\":\"%s\"}",
	    ec1.b64);                                            /* 16 */
	text_save(&t, "mixed.jsonl");
	free(pem);

	n = read_all("mixed.jsonl", IMPORT_JSONL, "widgiot", NULL);
	is_int(n, 15, "jsonl: fifteen records (one blank line)");
	is_good(0, 1, "j1", &ec1, "jsonl");
	is_bad(1, 2, IMPORT_MALFORMED, "jsonl: bad JSON");
	is_str(got[1].why, "line 2: not valid JSON", "jsonl: why of bad JSON");
	is_bad(2, 3, IMPORT_MALFORMED, "jsonl: an array");
	is_str(got[2].why, "line 3: an array, expected a JSON object",
	    "jsonl: why of an array");
	is_bad(3, 4, IMPORT_MALFORMED, "jsonl: a number as device id");
	is_str(got[3].why, "line 4: \"device_id\" is a number, expected a "
	    "string", "jsonl: why of a number");
	is_good(4, 5, "j5", &ec2, "jsonl: unknown keys ignored, PEM");
	is_bad(5, 7, IMPORT_MALFORMED, "jsonl: no key");
	is_str(got[5].why, "line 7: no \"public_key\"", "jsonl: why of no key");
	is_bad(6, 8, IMPORT_MALFORMED, "jsonl: two keys");
	is_bad(7, 9, IMPORT_MALFORMED, "jsonl: a string");
	is_good(8, 10, "j10", &ec1, "jsonl: der_base64, nulls, CRLF");
	is_str(got[8].pl, "widgiot", "jsonl: null product line takes the "
	    "default");
	is_bad(9, 11, IMPORT_MALFORMED, "jsonl: a boolean region");
	is_bad(10, 12, IMPORT_MALFORMED, "jsonl: no device id");
	is_bad(11, 13, IMPORT_MALFORMED, "jsonl: an object as product line");
	is_bad(12, 14, IMPORT_MALFORMED, "jsonl: a NUL in a string");
	is_good(13, 15, "j15", &ec1, "jsonl: escapes; NUL in an unknown key");
	is_bad(14, 16, 1, "jsonl: an escaped backslash before u0000, last "
	    "line without newline");
	is_str(got[14].id, "k\\u0000", "jsonl: ... is the id as read");
}

/*
 * What jansson makes strict: bytes that are not UTF-8, a key named twice
 * (the parsers disagree on which one counts), \u0000 in a member we read.
 */
static void
test_jsonl_strict(void)
{
	struct text t;
	int n;

	text_open(&t);
	text_add(&t, "{\"device_id\":\"s\xff\",\"public_key\":\"%s\"}\n",
	    ec1.b64);                                            /* 1 */
	text_add(&t, "{\"device_id\":\"s2\",\"device_id\":\"s3\","
	    "\"public_key\":\"%s\"}\n", ec1.b64);                /* 2 */
	text_add(&t, "{\"device_id\":\"s4\",\"public_key\":\"%s\","
	    "\"product_line\":\"w\\u0000\"}\n", ec1.b64);        /* 3 */
	text_add(&t, "{\"device_id\":\"s5\",\"public_key\":\"%s\","
	    "\"x\":{\"a\":1,\"a\":2}}\n", ec1.b64);              /* 4 */
	text_add(&t, "{\"device_id\":\"s6\",\"public_key\":\"%s\","
	    "\"n\":123456789012345678901234567890}\n", ec1.b64); /* 5 */
	text_save(&t, "strict.jsonl");

	n = read_all("strict.jsonl", IMPORT_JSONL, "widgiot", NULL);
	is_int(n, 5, "jsonl strict: five records");
	is_bad(0, 1, IMPORT_MALFORMED, "jsonl strict: a byte that is not "
	    "UTF-8");
	is_str(got[0].why, "line 1: not valid UTF-8", "jsonl strict: why of "
	    "bad UTF-8");
	is_bad(1, 2, IMPORT_MALFORMED, "jsonl strict: device_id twice");
	is_str(got[1].why, "line 2: an object names a key twice",
	    "jsonl strict: why of a key named twice");
	is_bad(2, 3, IMPORT_MALFORMED, "jsonl strict: \\u0000 in "
	    "product_line");
	is_str(got[2].why, "line 3: \"product_line\" has a NUL character "
	    "(\\u0000)", "jsonl strict: why of \\u0000");
	is_bad(3, 4, IMPORT_MALFORMED, "jsonl strict: a key twice in a "
	    "nested object");
	is_good(4, 5, "s6", &ec1, "jsonl strict: a huge number in an "
	    "unknown member");
}

/* Each refusal with the reason devrec_check gives, in its order (csv). */
static void
test_refusals(void)
{
	static const struct {
		const char *csv;
		int reason;
	} cases[] = {
		{ "-bad,%s", 1 },
		{ "good1,notakey", 2 },
		{ "good2,%r", 3 },
		{ "good3,%s,Widg_IoT", 6 },
		{ "good4,%s,widgiot,US-East", 7 },
		{ "-bad2,notakey,BAD,BAD", 1 },
		{ "good5,notakey,BAD,BAD", 6 },
		{ "good6,notakey,widgiot,BAD", 7 },
		{ "good7,%4", 0 },
		{ "good8,%e", 0 },
		{ "good9,", 2 },
		{ ",%s", 1 },
		{ "good10,%s,widgiot,us-east-1", 0 },
		{ "good11,%p", 2 },
	};
	struct text t;
	char longid[80];
	int n, ncase = (int)(sizeof cases / sizeof cases[0]);

	text_open(&t);
	for (int i = 0; i < ncase; i++) {
		const char *s = cases[i].csv, *pct = strchr(s, '%');

		if (pct == NULL) {
			text_add(&t, "%s\n", s);
			continue;
		}
		text_add(&t, "%.*s", (int)(pct - s), s);
		switch (pct[1]) {
		case 's': text_add(&t, "%s", ec1.b64); break;
		case 'r': text_add(&t, "%s", rsa1024.b64); break;
		case '4': text_add(&t, "%s", ec384.b64); break;
		case 'e': text_add(&t, "\"%s\"", ed.pem); break;
		/* A PEM block of another kind. */
		case 'p': text_add(&t, "\"-----BEGIN CERTIFICATE-----\n%s\n"
		    "-----END CERTIFICATE-----\n\"", ec1.b64); break;
		}
		text_add(&t, "%s\n", pct + 2);
	}
	memset(longid, 'x', 70);
	longid[70] = '\0';
	text_add(&t, "%s,%s\n", longid, ec1.b64);
	text_save(&t, "refusals.csv");

	n = read_all("refusals.csv", IMPORT_CSV, "widgiot", NULL);
	is_int(n, ncase + 1, "refusals: every line is a record");
	for (int i = 0; i < ncase && i < n; i++)
		is_int(got[i].reason, cases[i].reason, "refusals: \"%.30s\" "
		    "gives reason %d (%s)", cases[i].csv, cases[i].reason,
		    got[i].why);
	ok(strstr(got[2].why, "1024") != NULL, "refusals: RSA-1024's why "
	    "names its size (%s)", got[2].why);
	is_int(got[ncase].reason, 1, "refusals: a 70-character id");
	is_int(strlen(got[ncase].id), DEVICE_ID_MAX, "refusals: ... kept "
	    "truncated to %d", DEVICE_ID_MAX);
}

/* The same refusals from jsonl, each with devrec_check's reason. */
static void
test_refusals_jsonl(void)
{
	static const int want[] = { 1, 3, 7, 6, 2 };
	struct text j;
	int n;

	text_open(&j);
	text_add(&j, "{\"device_id\":\"-bad\",\"public_key\":\"%s\"}\n",
	    ec1.b64);
	text_add(&j, "{\"device_id\":\"w\",\"public_key\":\"%s\"}\n",
	    rsa1024.b64);
	text_add(&j, "{\"device_id\":\"w\",\"public_key\":\"%s\","
	    "\"region\":\"x y\"}\n", ec1.b64);
	text_add(&j, "{\"device_id\":\"w\",\"public_key\":\"%s\","
	    "\"product_line\":\"A\"}\n", ec1.b64);
	text_add(&j, "{\"device_id\":\"w\",\"public_key\":\"zz\"}\n");
	text_save(&j, "refusals.jsonl");
	n = read_all("refusals.jsonl", IMPORT_JSONL, "widgiot", NULL);
	is_int(n, 5, "refusals jsonl: five records");
	for (int i = 0; i < n && i < 5; i++)
		is_int(got[i].reason, want[i], "refusals jsonl: line %d gives "
		    "reason %d, as in csv", i + 1, want[i]);
}

static void
test_dir(void)
{
	char path[512], big[70 * 1024];
	const struct got *g;
	int n, seen = 0;

	mkdir(tpath(path, sizeof path, "factory"), 0700);
	put_str("factory/a1.pem", ec1.pem);
	put_str("factory/a2.pem", ed.b64);
	put_str("factory/notes.txt", "not a key\n");
	put_str("factory/README", "hello\n");
	put_str("factory/a3.pem.bak", ec1.pem);
	put_str("factory/broken.pem", "hello\n");
	put_str("factory/-x.pem", ec1.pem);
	put_str("factory/weak.pem", rsa1024.pem);
	put_str("factory/empty.pem", "");
	memset(big, 'A', sizeof big);
	put_file("factory/big.pem", big, sizeof big);
	mkdir(tpath(path, sizeof path, "factory/sub.pem"), 0700);
	mkfifo(tpath(path, sizeof path, "factory/fifo.pem"), 0600);

	n = read_all("factory", IMPORT_AUTO, "widgiot", "us-east-1");
	is_int(n, 9, "dir: the nine .pem entries are records");
	g = must_find(n, "a1", "dir");
	is_placed(g, "widgiot", "us-east-1", "dir: a1 (PEM) with the "
	    "defaults");
	is_str(g->fp, ec1.fp, "dir: a1: its key's fingerprint");
	is_str(g->source, "a1.pem", "dir: a1: the source is its file name");
	g = must_find(n, "a2", "dir");
	is_int(g->reason, 0, "dir: a2 (base64 Ed25519) is accepted");
	is_str(g->fp, ed.fp, "dir: a2: its key's fingerprint");
	is_int(must_find(n, "broken", "dir")->reason, 2,
	    "dir: a .pem that is not a key is BAD_KEY");
	is_int(must_find(n, "-x", "dir")->reason, 1,
	    "dir: a bad file name is BAD_DEVICE_ID");
	is_int(must_find(n, "weak", "dir")->reason, 3,
	    "dir: RSA-1024 is KEY_TYPE_NOT_ALLOWED");
	is_int(must_find(n, "empty", "dir")->reason, 2,
	    "dir: an empty file is BAD_KEY");
	g = must_find(n, "big", "dir");
	is_int(g->reason, 2, "dir: a 70 KiB file is BAD_KEY");
	ok(strstr(g->why, "64 KiB") != NULL, "dir: ... why says over 64 KiB "
	    "(%s)", g->why);
	g = must_find(n, "sub", "dir");
	is_int(g->reason, IMPORT_MALFORMED, "dir: a directory named .pem is "
	    "malformed");
	ok(strstr(g->why, "not a regular file") != NULL, "dir: ... why says "
	    "not a regular file (%s)", g->why);
	is_int(must_find(n, "fifo", "dir")->reason, IMPORT_MALFORMED,
	    "dir: a FIFO named .pem is malformed and does not hang");
	for (int i = 0; i < n && i < MAXGOT; i++)
		seen |= got[i].line >= 1 && got[i].line <= 9 ?
		    1 << got[i].line : 0;
	is_int(seen, 0x3fe, "dir: lines are 1 to 9, once each");
	ok(find_id(n, "notes") == NULL, "dir: notes.txt is skipped");
	ok(find_id(n, "README") == NULL, "dir: README is skipped");
	ok(find_id(n, "a3.pem") == NULL, "dir: a3.pem.bak is skipped");
}

/* The format told by the name, or by being a directory. */
static void
test_auto(void)
{
	static const struct {
		const char *name;
		int fmt;
	} names[] = {
		{ "auto.csv", IMPORT_CSV }, { "auto.jsonl", IMPORT_JSONL },
		{ "auto.ndjson", IMPORT_JSONL }, { "auto.json", IMPORT_JSONL },
		{ "AUTO.CSV", IMPORT_CSV }, { "factory", IMPORT_DIR },
	};
	import_reader *r;
	char path[512], why[200];
	int rc;

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (names[i].fmt != IMPORT_DIR)
			put_str(names[i].name, "");
		r = NULL;
		rc = import_open(tpath(path, sizeof path, names[i].name),
		    IMPORT_AUTO, NULL, NULL, &r, why, sizeof why);
		is_int(rc, 0, "auto: %s opens", names[i].name);
		is_str(import_format_name(r ? import_format(r) : -1),
		    import_format_name(names[i].fmt), "auto: %s is %s",
		    names[i].name, import_format_name(names[i].fmt));
		import_close(r);
	}
}

/* What import_open refuses, and with which error. */
static void
test_open_refusals(void)
{
	static const char *const sfx[] = { ".csv", ".jsonl", ".ndjson",
	    ".json" };
	import_reader *r;
	char path[512], why[200];
	int rc;

	put_str("auto.txt", "x,y\n");
	r = (import_reader *)1;
	why[0] = '\0';
	rc = import_open(tpath(path, sizeof path, "auto.txt"), IMPORT_AUTO,
	    NULL, NULL, &r, why, sizeof why);
	is_int(rc, SF_EINVAL, "auto: an unknown suffix is SF_EINVAL");
	ok(r == NULL, "auto: ... and *out is NULL");
	for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++)
		ok(strstr(why, sfx[i]) != NULL, "auto: why names %s (%s)",
		    sfx[i], why);
	is_int(read_all("auto.txt", IMPORT_CSV, "widgiot", NULL), 1,
	    "auto: an explicit format reads any name");
	is_int(import_open(tpath(path, sizeof path, "nothere.csv"),
	    IMPORT_AUTO, NULL, NULL, &r, why, sizeof why), SF_EIO,
	    "auto: a missing file is SF_EIO (%s)", why);
	is_int(import_open(tpath(path, sizeof path, "nothere.csv"),
	    IMPORT_CSV, NULL, NULL, &r, why, sizeof why), SF_EIO,
	    "csv: a missing file is SF_EIO");
	is_int(import_open("-", IMPORT_AUTO, NULL, NULL, &r, why,
	    sizeof why), SF_EINVAL, "auto: stdin needs a format (%s)", why);
	is_int(import_open("-", IMPORT_DIR, NULL, NULL, &r, why,
	    sizeof why), SF_EINVAL, "dir: not from stdin");
	is_int(import_open(tpath(path, sizeof path, "factory"), IMPORT_CSV,
	    NULL, NULL, &r, why, sizeof why), SF_EINVAL,
	    "csv: a directory is SF_EINVAL (%s)", why);
	is_int(import_open(tpath(path, sizeof path, "auto.csv"), IMPORT_DIR,
	    NULL, NULL, &r, why, sizeof why), SF_EIO,
	    "dir: a file is SF_EIO (%s)", why);
	is_int(import_open(tpath(path, sizeof path, "auto.csv"), 9,
	    NULL, NULL, &r, why, sizeof why), SF_EINVAL,
	    "an unknown format number is SF_EINVAL");
	is_str(import_format_name(IMPORT_DIR), "dir", "format name dir");
	is_str(import_format_name(IMPORT_CSV), "csv", "format name csv");
	is_str(import_format_name(IMPORT_JSONL), "jsonl", "format name jsonl");
	import_close(NULL);
	import_record_fini(NULL);
	ok(1, "import_close(NULL), import_record_fini(NULL)");
}

/* "-" reads standard input, here a file put on fd 0. */
static void
test_stdin(void)
{
	char path[512];
	int save = dup(0), fd, n;

	put_str("stdin.csv", "");
	fd = open(tpath(path, sizeof path, "same.csv"), O_RDONLY);
	dup2(fd, 0);
	close(fd);
	clearerr(stdin);
	n = read_all("-", IMPORT_CSV, "widgiot", NULL);
	is_int(n, 4, "stdin: csv, four records");
	is_str(got[0].source, "stdin", "stdin: the source is stdin");
	is_str(must_find(n, "dev-rsa", "stdin")->fp, rsa.fp,
	    "stdin: dev-rsa has its key's fingerprint");

	fd = open(tpath(path, sizeof path, "same.jsonl"), O_RDONLY);
	dup2(fd, 0);
	close(fd);
	clearerr(stdin);
	n = read_all("-", IMPORT_JSONL, "widgiot", NULL);
	is_int(n, 4, "stdin: jsonl, four records");
	dup2(save, 0);
	close(save);
	clearerr(stdin);
}

static void
test_empty(void)
{
	static const struct {
		const char *name;
		int records;
		const char *what;
	} files[] = {
		{ "empty.csv", 0, "csv" },
		{ "empty.jsonl", 0, "jsonl" },
		{ "empty.d", 0, "dir" },
		{ "blank.csv", 0, "csv of blank lines" },
		{ "blank.jsonl", 0, "jsonl of blank lines" },
		{ "bom.csv", 0, "csv of a byte order mark" },
		{ "notbom.csv", 1, "two bytes of a byte order mark are a "
		    "record" },
	};
	import_reader *r = NULL;
	import_record rec;
	char path[512], why[200];

	put_str("empty.csv", "");
	put_str("empty.jsonl", "");
	put_str("blank.csv", "\n\r\n  \n\t\n");
	put_str("blank.jsonl", "\n\n   \r\n");
	put_str("bom.csv", "\xef\xbb\xbf");
	put_str("notbom.csv", "\xef\xbb");
	mkdir(tpath(path, sizeof path, "empty.d"), 0700);
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
		is_int(read_all(files[i].name, IMPORT_AUTO, NULL, NULL),
		    files[i].records, "empty: %s", files[i].what);

	memset(&rec, 0, sizeof rec);
	import_open(tpath(path, sizeof path, "empty.csv"), IMPORT_AUTO,
	    NULL, NULL, &r, why, sizeof why);
	is_int(import_next(r, &rec), 0, "empty: the end");
	is_int(import_next(r, &rec), 0, "empty: the end again");
	import_close(r);
}

/* Records kept apart stay valid; rec need not be initialised. */
static void
test_ownership(void)
{
	import_reader *r = NULL;
	import_record batch[3], one;
	char path[512], why[200];
	int n = 0;

	memset(batch, 0xa5, sizeof batch);
	if (import_open(tpath(path, sizeof path, "same.csv"), IMPORT_AUTO,
	    "widgiot", NULL, &r, why, sizeof why) != 0) {
		ok(0, "ownership: open same.csv (%s)", why);
		return;
	}
	while (n < 3 && import_next(r, &batch[n]) == 1)
		n++;
	is_int(n, 3, "ownership: a batch of three");
	for (int i = 0; i < 3; i++)
		ok(batch[i].key.spki != NULL, "ownership: record %d of the "
		    "batch holds its key", i + 1);
	ok(memcmp(batch[0].key.sha256, ec1.fpraw, 32) == 0,
	    "ownership: the first record is intact after the third");
	ok(memcmp(batch[2].key.sha256, rsa.fpraw, 32) == 0,
	    "ownership: the third record has its own key");
	for (int i = 0; i < 3; i++) {
		import_record_fini(&batch[i]);
		import_record_fini(&batch[i]);
	}
	memset(&one, 0xa5, sizeof one);
	while (import_next(r, &one) == 1)
		n++;
	is_int(n, 4, "ownership: the fourth record into another rec");
	ok(one.key.spki == NULL, "ownership: at the end rec holds no SPKI");
	ok(one.key.key_bits == NULL, "ownership: at the end rec holds no key "
	    "bits");
	import_close(r);
}

static long
max_rss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/*
 * The peak RSS of this process image. ru_maxrss survives fork and execve,
 * so under meson it starts at the Python parent's peak and hides growth
 * below that; VmHWM belongs to this image alone.
 */
static long
vm_hwm_kb(void)
{
	char line[128];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f != NULL && fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return kb;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * The key of record i of a big file: mostly Ed25519, because OpenSSL 3.0
 * decodes it fastest and decoding the keys is nearly all of the time, and
 * every fourth record RSA-2048 (csv) or P-256 (jsonl). Odd records give
 * it as PEM, the others as base64.
 */
static const struct key *
big_key(int fmt, long i)
{
	if (i % 4 == 0)
		return fmt == IMPORT_CSV ? &rsa : &ec1;
	return &ed;
}

/* n records into path: 0, or -1 if it cannot be written. */
static int
big_write(const char *path, int fmt, long n)
{
	char *pem = json_esc(ed.pem);
	FILE *f;

	if (pem == NULL || (f = fopen(path, "w")) == NULL) {
		tap_diag("cannot write %s", path);
		free(pem);
		return -1;
	}
	if (fmt == IMPORT_CSV)
		fprintf(f, "device_id,public_key,product_line,region\n");
	for (long i = 0; i < n; i++) {
		const struct key *k = big_key(fmt, i);

		if (fmt == IMPORT_CSV && i % 2 == 1)
			fprintf(f, "widgiot-l07-%08ld,\"%s\",widgiot,"
			    "us-east-1\n", i, k->pem);
		else if (fmt == IMPORT_CSV)
			fprintf(f, "widgiot-l07-%08ld,%s%s\n", i, k->b64,
			    i % 4 == 0 ? ",widgiot" : "");
		else if (i % 2 == 1)
			fprintf(f, "{\"device_id\":\"widgiot-l07-%08ld\","
			    "\"public_key_pem\":\"%s\",\"product_line\":"
			    "\"widgiot\",\"region\":\"us-east-1\"}\n", i, pem);
		else
			fprintf(f, "{\"device_id\":\"widgiot-l07-%08ld\","
			    "\"public_key\":\"%s\"}\n", i, k->b64);
	}
	free(pem);
	return fclose(f) == 0 ? 0 : -1;
}

/*
 * Read the n records of path, checking each, and show that the peak RSS
 * and the heap did not grow with the file.
 */
static void
big_read(const char *path, const char *what, int fmt, long n)
{
	import_reader *r = NULL;
	import_record rec;
	struct mallinfo2 m0, m1;
	long good = 0, inorder = 0, keyed = 0, total = 0;
	long rss0, rss1, hwm0, hwm1;
	uint64_t lastline = 0;
	char why[200];
	struct stat st;
	double t0, t1;
	int rc;

	stat(path, &st);
	m0 = mallinfo2();
	rss0 = max_rss_kb();
	hwm0 = vm_hwm_kb();
	t0 = now_s();
	memset(&rec, 0, sizeof rec);
	rc = import_open(path, IMPORT_AUTO, "widgiot", "eu-west-1", &r, why,
	    sizeof why);
	while (r != NULL && (rc = import_next(r, &rec)) == 1) {
		good += rec.reason == 0;
		inorder += rec.line > lastline;
		keyed += memcmp(rec.key.sha256, big_key(fmt, total)->fpraw,
		    32) == 0;
		lastline = rec.line;
		total++;
	}
	import_close(r);
	t1 = now_s();
	rss1 = max_rss_kb();
	hwm1 = vm_hwm_kb();
	m1 = mallinfo2();

	is_int(rc, 0, "%s: read to the end", what);
	is_int(total, n, "%s: %ld records", what, n);
	is_int(good, n, "%s: every record accepted", what);
	is_int(inorder, n, "%s: lines increasing", what);
	is_int(keyed, n, "%s: every record with its key", what);
	tap_diag("%s: %ld records, %.1f MB, in %.2f s: %.0f records/s; max "
	    "RSS (getrusage) %ld -> %ld KiB, VmHWM %ld -> %ld KiB", what, n,
	    st.st_size / 1e6, t1 - t0, n / (t1 - t0), rss0, rss1, hwm0, hwm1);
	if (UNDER_ASAN) {
		tap_skip("max RSS under ASan (its quarantine holds freed "
		    "memory)");
		tap_skip("peak RSS under ASan");
		tap_skip("peak RSS under ASan");
		tap_skip("heap in use under ASan");
		return;
	}
	ok(rss1 - rss0 < 10 * 1024, "%s: max RSS (getrusage) grew by %ld KiB "
	    "(< 10 MB) reading %.1f MB", what, rss1 - rss0, st.st_size / 1e6);
	ok(hwm0 > 0, "%s: VmHWM is there to read", what);
	ok(hwm1 - hwm0 < 10 * 1024, "%s: peak RSS of this image (VmHWM) grew "
	    "by %ld KiB (< 10 MB)", what, hwm1 - hwm0);
	ok(m1.uordblks < m0.uordblks + 256 * 1024, "%s: heap in use after "
	    "close %zu -> %zu bytes", what, m0.uordblks, m1.uordblks);
}

/*
 * 100,000 records of CSV (20 MB) and of JSON Lines (18 MB), more than
 * the 10 MB their reading may take, stream through in a fixed amount of
 * memory.
 */
static void
test_big(void)
{
	const char *env = getenv("SF_IMPORT_RECORDS");
	/*
	 * Under ASan its allocator, not the reader, sets the pace (OpenSSL
	 * allocates a great deal per key decoded), so fewer records there.
	 */
	long n = env ? atol(env) : UNDER_ASAN ? 10000 : 100000;
	char path[512];

	if (big_write(tpath(path, sizeof path, "big.csv"), IMPORT_CSV,
	    n) == 0)
		big_read(path, "big csv", IMPORT_CSV, n);
	unlink(path);
	if (big_write(tpath(path, sizeof path, "big.jsonl"), IMPORT_JSONL,
	    n) == 0)
		big_read(path, "big jsonl", IMPORT_JSONL, n);
	unlink(path);
}

static void
rm_rf(const char *dir)
{
	char cmd[600];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		tap_diag("cannot remove %s", dir);
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	if (make_key(&ec1, "EC", "P-256", 0) || make_key(&ec2, "EC", "P-256",
	    0) || make_key(&ec384, "EC", "P-384", 0) ||
	    make_key(&ed, "ED25519", NULL, 0) ||
	    make_key(&rsa, "RSA", NULL, 2048) ||
	    make_key(&rsa1024, "RSA", NULL, 1024)) {
		ok(0, "make the test keys");
		rm_rf(tmpdir);
		return tap_done();
	}
	/* First, so that the peak RSS before it is the process's baseline. */
	test_big();
	test_same();
	test_forms();
	test_defaults_csv();
	test_defaults_jsonl();
	test_header();
	test_quoting();
	test_csv_malformed();
	test_csv_runaway();
	test_jsonl();
	test_jsonl_strict();
	test_refusals();
	test_refusals_jsonl();
	test_dir();
	test_auto();
	test_open_refusals();
	test_stdin();
	test_empty();
	test_ownership();
	free_key(&ec1);
	free_key(&ec2);
	free_key(&ec384);
	free_key(&ed);
	free_key(&rsa);
	free_key(&rsa1024);
	rm_rf(tmpdir);
	return tap_done();
}
