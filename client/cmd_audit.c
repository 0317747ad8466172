/*
 * cmd_audit.c - secretfree audit reconcile: compare what the signer's
 * journal says (the source of truth) with authz's registry, device by
 * device and certificate by certificate, list every disagreement by kind,
 * and make authz follow the signer where it can.
 *
 * Both sides are read page by page in the same order (devices by id,
 * certificates by serial: CaAdmin.ListDeviceKeys and ListCertificates,
 * Registry.ListDevices and ListCertificates with no device), and merged
 * like two sorted files, so that memory does not grow with the fleet.
 * The disagreements, and what is done about each:
 *   device-state                   the states differ: authz is set to the
 *                                  signer's (Registry.DisableDevice,
 *                                  EnableDevice, RevokeDevice)
 *   certificate-status             status or revocation differ: authz
 *                                  mirrors the signer's
 *                                  (Registry.UpdateCertificateStatus)
 *   orphan                         a certificate the signer issued that
 *                                  authz never recorded: adopted with its
 *                                  chain (CaAdmin.GetCaChain,
 *                                  Registry.AdoptCertificate)
 *   certificate-unknown-to-signer  authz records a certificate the signer
 *                                  never issued: reported only
 *   device-unknown-to-authz,       a device only one side has: reported
 *   device-unknown-to-signer       only (the factory import is where
 *                                  devices come from)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd_device.h"
#include "out.h"
#include "secretfree/v1/ca_admin.pb-c.h"
#include "secretfree/v1/registry.pb-c.h"
#include "util.h"

#define CA_SVC (&secretfree__v1__ca_admin__descriptor)
#define REG_SVC (&secretfree__v1__registry__descriptor)
#define PAGE 500

typedef Secretfree__V1__CertificateInfo CertInfo;
typedef Secretfree__V1__DeviceKeyInfo KeyInfo;
typedef Secretfree__V1__Device Device;

enum { K_DEVICE_STATE, K_DEVICE_NO_AUTHZ, K_DEVICE_NO_SIGNER,
    K_CERT_STATUS, K_ORPHAN, K_CERT_NO_SIGNER, K_N };

static const char *const KIND[K_N] = { "device-state",
    "device-unknown-to-authz", "device-unknown-to-signer",
    "certificate-status", "orphan", "certificate-unknown-to-signer" };

/*
 * One of the four lists: a paged List call whose request has a string
 * field naming where the page starts and a uint32 "limit", and whose reply
 * one repeated field of messages, each with a string key.
 */
typedef struct {
	int which;                   /* CLI_SIGNER, CLI_AUTHZ */
	const ProtobufCServiceDescriptor *svc;
	const char *method;
	const ProtobufCMessageDescriptor *req;
	const char *after;           /* the request's paging field */
	const char *items;           /* the reply's repeated field */
	const char *key;             /* each item's key field */
} list_spec;

static const list_spec SIGNER_DEVICES = { CLI_SIGNER, CA_SVC,
    "ListDeviceKeys", &secretfree__v1__list_device_keys_request__descriptor,
    "after_device_id", "devices", "device_id" };
static const list_spec AUTHZ_DEVICES = { CLI_AUTHZ, REG_SVC, "ListDevices",
    &secretfree__v1__list_devices_request__descriptor, "after_device_id",
    "devices", "device_id" };
static const list_spec SIGNER_CERTS = { CLI_SIGNER, CA_SVC,
    "ListCertificates", &secretfree__v1__list_certificates_request__descriptor,
    "after_serial", "certificates", "serial" };
static const list_spec AUTHZ_CERTS = { CLI_AUTHZ, REG_SVC, "ListCertificates",
    &secretfree__v1__list_device_certificates_request__descriptor,
    "after_serial", "certificates", "serial" };

/* The address of field name of message m (whose descriptor is d). */
static void *
field(const ProtobufCMessageDescriptor *d, const void *m, const char *name,
    const ProtobufCFieldDescriptor **f)
{
	*f = protobuf_c_message_descriptor_get_field_by_name(d, name);
	return (char *)m + (*f)->offset;
}

/* One side's list, a page at a time. */
typedef struct {
	cli *c;
	const list_spec *ls;
	ProtobufCMessage *page;
	void **items;
	size_t n, i;
	char after[128];
	int end;                 /* the last page is in */
} cursor;

/* A CA's chain, fetched once. */
struct chain {
	char *name, *pem;
};

typedef struct {
	cli *c;
	int dry_run;
	size_t devices, certs;
	size_t count[K_N];
	size_t fixed, remaining;
	struct chain *chains;
	size_t nchains;
	out_stream js;
} audit;

/* ---- the lists ---- */

static void
cur_init(cursor *k, cli *c, const list_spec *ls)
{
	memset(k, 0, sizeof *k);
	k->c = c;
	k->ls = ls;
}

static void
cur_fini(cursor *k)
{
	if (k->page)
		protobuf_c_message_free_unpacked(k->page, NULL);
	k->page = NULL;
}

/* The key of item x of k's list. */
static const char *
cur_key(const cursor *k, const void *x)
{
	const ProtobufCFieldDescriptor *f;

	return *(char **)field(((const ProtobufCMessage *)x)->descriptor, x,
	    k->ls->key, &f);
}

/* The page after k->after into k->page, k->items, k->n. */
static int
cur_fetch(cursor *k)
{
	const list_spec *ls = k->ls;
	const ProtobufCFieldDescriptor *f;
	ProtobufCMessage *req;
	int ec;

	if ((req = malloc(ls->req->sizeof_message)) == NULL)
		return cli_error(k->c, CLI_EXIT_ERROR, "out of memory");
	ls->req->message_init(req);
	*(char **)field(ls->req, req, ls->after, &f) = k->after;
	*(uint32_t *)field(ls->req, req, "limit", &f) = PAGE;
	ec = cli_call(k->c, ls->which, ls->svc, ls->method, req, &k->page);
	free(req);
	if (ec != 0)
		return ec;
	k->items = *(void ***)field(k->page->descriptor, k->page, ls->items,
	    &f);
	k->n = *(size_t *)((char *)k->page + f->quantifier_offset);
	return 0;
}

/* The current item into *item (NULL at the end), fetching as needed. 0
 * or the exit code of a failed call (reported). */
static int
cur_peek(cursor *k, void **item)
{
	int ec;

	*item = NULL;
	while (k->i >= k->n && !k->end) {
		if (k->n > 0)
			snprintf(k->after, sizeof k->after, "%s",
			    cur_key(k, k->items[k->n - 1]));
		cur_fini(k);
		k->n = k->i = 0;
		if ((ec = cur_fetch(k)) != 0)
			return ec;
		k->end = k->n < PAGE;
	}
	if (k->i < k->n)
		*item = k->items[k->i];
	return 0;
}

/* Order the heads x of s and y of z as strcmp does, the end last. */
static int
head_cmp(const cursor *s, const void *x, const cursor *z, const void *y)
{
	if (x == NULL || y == NULL)
		return x == NULL ? (y == NULL ? 0 : 1) : -1;
	return strcmp(cur_key(s, x), cur_key(z, y));
}

/* ---- reporting ---- */

enum { R_DRY, R_FIXED, R_FAILED, R_MANUAL };

/*
 * One disagreement: counted, and printed (a line, or an item of the JSON
 * document). result says what became of it; note the action taken (or to
 * take) or why not.
 */
static void
report(audit *a, int kind, const char *device_id, const char *serial,
    const char *signer, const char *authz, int result, const char *note)
{
	static const char *const RES[] = { "would fix", "fixed", "not fixed",
	    "not fixed" };

	a->count[kind]++;
	if (result == R_FIXED)
		a->fixed++;
	else
		a->remaining++;
	if (a->c->json) {
		out_stream_item(&a->js, json_pack("{s:s, s:o, s:o, s:o, s:o,"
		    " s:s, s:o}", "kind", KIND[kind],
		    "device_id", out_jstr(device_id),
		    "serial", serial ? out_jstr(serial) : json_null(),
		    "signer", out_jstr(signer),
		    "authz", out_jstr(authz),
		    "result", result == R_DRY ? "dry-run" : result == R_FIXED ?
		    "fixed" : result == R_FAILED ? "failed" : "manual",
		    "action", out_jstr(note)));
		return;
	}
	if (serial)
		printf("%s %s (device %s): signer %s, authz %s: %s (%s)\n",
		    KIND[kind], serial, device_id, signer, authz, RES[result],
		    note);
	else
		printf("%s %s: signer %s, authz %s: %s (%s)\n", KIND[kind],
		    device_id, signer, authz, RES[result], note);
}

/* Run a fix, or not with --dry-run: R_FIXED, R_FAILED (why in msg). */
static int
fix(audit *a, int which, const ProtobufCServiceDescriptor *svc,
    const char *method, const ProtobufCMessage *req, char *msg,
    size_t msglen)
{
	ProtobufCMessage *resp = NULL;
	rpc_status st;

	if (a->dry_run)
		return R_DRY;
	if (cli_call_quiet(a->c, which, svc, method, req, &resp, &st) != 0) {
		snprintf(msg, msglen, "%s: %s: %s", method,
		    rpc_code_name(st.code), st.message);
		return R_FAILED;
	}
	protobuf_c_message_free_unpacked(resp, NULL);
	return R_FIXED;
}

/* ---- devices ---- */

/* authz's state agrees with the signer's: the signer has no REGISTERED
 * (a device that may be issued to is ACTIVE there). */
static int
states_agree(int signer, int authz)
{
	if (signer == SECRETFREE__V1__DEVICE_STATE__DEVICE_STATE_ACTIVE)
		return authz ==
		    SECRETFREE__V1__DEVICE_STATE__DEVICE_STATE_ACTIVE ||
		    authz ==
		    SECRETFREE__V1__DEVICE_STATE__DEVICE_STATE_REGISTERED;
	return signer == authz;
}

static void
device_state(audit *a, const void *x, const void *y)
{
	const KeyInfo *s = x;
	const Device *d = y;
	Secretfree__V1__SetDeviceStateRequest req =
	    SECRETFREE__V1__SET_DEVICE_STATE_REQUEST__INIT;
	const char *method;
	char ss[32], as[32], msg[640];
	int res;

	if (states_agree(s->state, d->state))
		return;
	method = s->state == SECRETFREE__V1__DEVICE_STATE__DEVICE_STATE_REVOKED ?
	    "RevokeDevice" : s->state ==
	    SECRETFREE__V1__DEVICE_STATE__DEVICE_STATE_DISABLED ?
	    "DisableDevice" : "EnableDevice";
	req.device_id = s->device_id;
	req.reason = "audit reconcile: the signer's state";
	snprintf(msg, sizeof msg, "Registry.%s", method);
	res = fix(a, CLI_AUTHZ, REG_SVC, method, &req.base, msg, sizeof msg);
	report(a, K_DEVICE_STATE, s->device_id, NULL,
	    cmd_device_state_name(s->state, ss, sizeof ss),
	    cmd_device_state_name(d->state, as, sizeof as), res, msg);
}

static void
device_no_authz(audit *a, const void *x)
{
	const KeyInfo *k = x;
	char st[32];

	report(a, K_DEVICE_NO_AUTHZ, k->device_id, NULL,
	    cmd_device_state_name(k->state, st, sizeof st), "none", R_MANUAL,
	    "import it into authz: secretfree device import");
}

static void
device_no_signer(audit *a, const void *y)
{
	const Device *d = y;
	char st[32];

	report(a, K_DEVICE_NO_SIGNER, d->device_id, NULL, "none",
	    cmd_device_state_name(d->state, st, sizeof st), R_MANUAL,
	    "the signer never registered it: import it, or ignore authz's"
	    " record");
}

/* ---- certificates ---- */

static const char *
status_text(const CertInfo *ci, char *buf, size_t len)
{
	char st[32];

	out_enum(&secretfree__v1__certificate_status__descriptor, ci->status,
	    "CERTIFICATE_STATUS_", st, sizeof st);
	if (ci->status ==
	    SECRETFREE__V1__CERTIFICATE_STATUS__CERTIFICATE_STATUS_REVOKED)
		snprintf(buf, len, "%s (%s)", st,
		    cli_reason_name(ci->revocation_reason));
	else
		snprintf(buf, len, "%s", st);
	return buf;
}

static void
cert_status(audit *a, const void *x, const void *y)
{
	const CertInfo *s = x, *z = y;
	Secretfree__V1__UpdateCertificateStatusRequest req =
	    SECRETFREE__V1__UPDATE_CERTIFICATE_STATUS_REQUEST__INIT;
	Secretfree__V1__CertificateStatusUpdate u =
	    SECRETFREE__V1__CERTIFICATE_STATUS_UPDATE__INIT, *up = &u;
	char b1[64], b2[64], msg[640] = "Registry.UpdateCertificateStatus";
	int res;

	if (s->status == z->status && (s->status !=
	    SECRETFREE__V1__CERTIFICATE_STATUS__CERTIFICATE_STATUS_REVOKED ||
	    (s->revocation_reason == z->revocation_reason &&
	    s->revoked_at == z->revoked_at)))
		return;
	u.serial = s->serial;
	u.status = s->status;
	u.reason = s->revocation_reason;
	u.revoked_at = s->revoked_at;
	u.device_id = s->device_id;
	req.updates = &up;
	req.n_updates = 1;
	res = fix(a, CLI_AUTHZ, REG_SVC, "UpdateCertificateStatus", &req.base,
	    msg, sizeof msg);
	report(a, K_CERT_STATUS, s->device_id, s->serial,
	    status_text(s, b1, sizeof b1), status_text(z, b2, sizeof b2), res,
	    msg);
}

/* The chain of CA name (CaAdmin.GetCaChain), fetched once; NULL with msg
 * when it cannot be had. */
static const char *
chain_of(audit *a, const char *name, char *msg, size_t msglen)
{
	Secretfree__V1__GetCaRequest req = SECRETFREE__V1__GET_CA_REQUEST__INIT;
	Secretfree__V1__GetChainResponse *r = NULL;
	struct chain *nv, ch;
	rpc_status st;

	for (size_t i = 0; i < a->nchains; i++)
		if (strcmp(a->chains[i].name, name) == 0)
			return a->chains[i].pem;
	req.name = (char *)name;
	if (cli_call_quiet(a->c, CLI_SIGNER, CA_SVC, "GetCaChain", &req.base,
	    (ProtobufCMessage **)&r, &st) != 0) {
		snprintf(msg, msglen, "CaAdmin.GetCaChain %s: %s: %s", name,
		    rpc_code_name(st.code), st.message);
		return NULL;
	}
	ch.name = strdup(name);
	ch.pem = strdup(r->chain_pem);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	if (ch.name == NULL || ch.pem == NULL || (nv = realloc(a->chains,
	    (a->nchains + 1) * sizeof *nv)) == NULL) {
		free(ch.name);
		free(ch.pem);
		snprintf(msg, msglen, "out of memory");
		return NULL;
	}
	a->chains = nv;
	a->chains[a->nchains++] = ch;
	return ch.pem;
}

/* A certificate only the signer has: adopted by authz. */
static void
orphan(audit *a, const void *x)
{
	const CertInfo *s = x;
	Secretfree__V1__AdoptCertificateRequest req =
	    SECRETFREE__V1__ADOPT_CERTIFICATE_REQUEST__INIT;
	char b1[64], eid[80], region[64], msg[640] =
	    "Registry.AdoptCertificate";
	const char *dot = strchr(s->ca_name, '.');
	int res = R_FAILED;

	/* The issuing CA "<region>.<product line>" names the region. */
	snprintf(region, sizeof region, "%.*s", dot ? (int)(dot -
	    s->ca_name) : 0, s->ca_name);
	snprintf(eid, sizeof eid, "%s%s", *s->enrollment_id ?
	    s->enrollment_id : "adopted-", *s->enrollment_id ? "" : s->serial);
	req.device_id = s->device_id;
	req.enrollment_id = eid;
	req.certificate_pem = s->certificate_pem;
	req.ca_name = s->ca_name;
	req.region = region;
	req.status = s->status;
	req.replaces_serial = s->replaces_serial;
	req.revocation_reason = s->revocation_reason;
	req.revoked_at = s->revoked_at;
	req.ack_deadline = s->ack_deadline;
	if (a->dry_run)
		res = R_DRY;
	else if ((req.chain_pem = (char *)chain_of(a, s->ca_name, msg,
	    sizeof msg)) != NULL)
		res = fix(a, CLI_AUTHZ, REG_SVC, "AdoptCertificate",
		    &req.base, msg, sizeof msg);
	report(a, K_ORPHAN, s->device_id, s->serial, status_text(s, b1,
	    sizeof b1), "none", res, msg);
}

static void
cert_no_signer(audit *a, const void *y)
{
	const CertInfo *ci = y;
	char b[64];

	report(a, K_CERT_NO_SIGNER, ci->device_id, ci->serial, "none",
	    status_text(ci, b, sizeof b), R_MANUAL, "the signer never issued"
	    " it: authz's record is wrong");
}

/* Server certificates are the signer's alone. */
static int
server_cert(const void *x)
{
	return *((const CertInfo *)x)->device_id == '\0';
}

/* ---- the comparison ---- */

/* What to do with the heads of the two lists, by which side has one. */
typedef struct {
	const list_spec *signer, *authz;
	int (*skip)(const void *x);       /* NULL: none of the signer's */
	void (*signer_only)(audit *a, const void *x);
	void (*authz_only)(audit *a, const void *y);
	void (*both)(audit *a, const void *x, const void *y);
} merge_spec;

static const merge_spec DEVICES = { &SIGNER_DEVICES, &AUTHZ_DEVICES, NULL,
    device_no_authz, device_no_signer, device_state };
static const merge_spec CERTS = { &SIGNER_CERTS, &AUTHZ_CERTS, server_cert,
    orphan, cert_no_signer, cert_status };

/* Merge the two sorted lists of m as two sorted files are merged; *seen
 * counts the keys. 0 or the exit code of a failed list call. */
static int
merge(audit *a, const merge_spec *m, size_t *seen)
{
	cursor s, z;
	void *x, *y;
	int ec, cmp;

	cur_init(&s, a->c, m->signer);
	cur_init(&z, a->c, m->authz);
	for (;;) {
		if ((ec = cur_peek(&s, &x)) != 0 || (ec = cur_peek(&z, &y)) != 0)
			break;
		if (x && m->skip && m->skip(x)) {
			s.i++;
			continue;
		}
		if (x == NULL && y == NULL)
			break;
		(*seen)++;
		if ((cmp = head_cmp(&s, x, &z, y)) < 0)
			m->signer_only(a, x);
		else if (cmp > 0)
			m->authz_only(a, y);
		else
			m->both(a, x, y);
		s.i += cmp <= 0;
		z.i += cmp >= 0;
	}
	cur_fini(&s);
	cur_fini(&z);
	return ec;
}

/* ---- the command ---- */

static json_t *
counts_json(const audit *a)
{
	json_t *o = json_object();

	for (int k = 0; k < K_N; k++)
		out_jset(&o, KIND[k], json_integer((json_int_t)a->count[k]));
	return json_pack("{s:o, s:i, s:i, s:o, s:i, s:i}",
	    "counts", o,
	    "devices", (int)a->devices,
	    "certificates", (int)a->certs,
	    "agree", json_boolean(a->remaining == 0),
	    "fixed", (int)a->fixed,
	    "remaining", (int)a->remaining);
}

static void
summary(const audit *a)
{
	size_t total = a->fixed + a->remaining;
	int first = 1;

	if (total == 0) {
		printf("the signer and authz agree: %zu devices, %zu"
		    " certificates\n", a->devices, a->certs);
		return;
	}
	for (int k = 0; k < K_N; k++)
		if (a->count[k]) {
			printf("%s%s %zu", first ? "" : ", ", KIND[k],
			    a->count[k]);
			first = 0;
		}
	printf("\n%zu disagreements in %zu devices and %zu certificates:"
	    " %zu fixed, %zu remaining%s\n", total, a->devices, a->certs,
	    a->fixed, a->remaining, a->dry_run ? " (--dry-run: nothing"
	    " changed)" : "");
}

static const char HELP_RECONCILE[] =
"Usage: secretfree audit reconcile [--dry-run]\n"
"\n"
"Compare the signer's journal, the source of truth for devices and\n"
"certificates, with authz's registry, and make authz follow the signer.\n"
"Run it after a command exited 10 (the signer changed, authz did not\n"
"follow), after authz lost its registry, or regularly.\n"
"\n"
"Both sides are read page by page (devices by id, certificates by serial)\n"
"and every disagreement is printed on a line of its own, by kind:\n"
"  device-state                   the states differ: authz is disabled,\n"
"                                 enabled or revoked as the signer says\n"
"  certificate-status             status or revocation differ: authz\n"
"                                 mirrors the signer's\n"
"  orphan                         a certificate the signer issued that\n"
"                                 authz never recorded (its registry\n"
"                                 commit failed, or it gave up waiting):\n"
"                                 authz adopts it with its chain; the\n"
"                                 device holds it only if it holds none\n"
"  certificate-unknown-to-signer  authz records a certificate the signer\n"
"                                 never issued: reported, not changed\n"
"  device-unknown-to-authz        a device only the signer has: reported;\n"
"                                 import it (secretfree device import)\n"
"  device-unknown-to-signer       a device only authz has: reported\n"
"e.g.\n"
"  device-state 1115: signer disabled, authz active: fixed\n"
"      (Registry.DisableDevice)\n"
"The last lines count the disagreements by kind, and how many were\n"
"fixed and remain.\n"
"\n"
"Options:\n"
"  --dry-run   list the disagreements and change nothing\n"
"\n"
"With --json: one object with dry_run, the disagreements (kind,\n"
"device_id, serial, signer, authz, result: dry-run, fixed, failed or\n"
"manual, action), counts by kind, devices, certificates, agree, fixed\n"
"and remaining.\n"
"\n"
"Exit status: 0 when the two agree afterwards (with --dry-run: when they\n"
"agree); 10 when disagreements remain (with --dry-run: when there are\n"
"any); a failed list call exits as that call's status says.\n"
"\n"
"Example:\n"
"  secretfree audit reconcile --dry-run\n"
"  secretfree audit reconcile && echo in agreement\n";

static int
cmd_audit_reconcile(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 }
	};
	audit a;
	int ch, ec;

	memset(&a, 0, sizeof a);
	a.c = c;
	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		if (ch != 'n')
			return CLI_EXIT_USAGE;
		a.dry_run = 1;
	}
	if (optind < argc)
		return cli_usage(c, "unexpected argument %s", argv[optind]);
	if (c->json)
		out_stream_open(&a.js, stdout, json_pack("{s:b}", "dry_run",
		    a.dry_run), "disagreements");
	if ((ec = merge(&a, &DEVICES, &a.devices)) == 0)
		ec = merge(&a, &CERTS, &a.certs);
	if (c->json)
		out_stream_close(&a.js, ec == 0 ? counts_json(&a) : NULL);
	else if (ec == 0)
		summary(&a);
	for (size_t i = 0; i < a.nchains; i++) {
		free(a.chains[i].name);
		free(a.chains[i].pem);
	}
	free(a.chains);
	if (ec == 0 && a.remaining > 0)
		ec = CLI_EXIT_MIRROR;
	return ec;
}

const cli_cmd cmd_audit_table[] = {
	{ "audit", "reconcile", cmd_audit_reconcile, "make authz agree with"
	    " the signer's journal", HELP_RECONCILE },
	{ NULL, NULL, NULL, NULL, NULL }
};
