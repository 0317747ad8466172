/*
 * cmd_devstate.c - secretfree device disable / enable / revoke: changes of
 * a device's state. The signer is the source of truth for device state,
 * so each change goes to the signer first (CaAdmin.DisableDevice,
 * EnableDevice, RevokeDevice), which records it in its journal and from
 * then on refuses what the new state forbids, whatever authz asks; then
 * authz follows (Registry.DisableDevice, EnableDevice, RevokeDevice and
 * UpdateCertificateStatus, mirror.c). When authz cannot follow, the
 * change holds and the exit status is 10: `secretfree audit reconcile`
 * repairs authz later.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmd_device.h"
#include "mirror.h"
#include "out.h"
#include "secretfree/v1/ca_admin.pb-c.h"

#define CA_SVC (&secretfree__v1__ca_admin__descriptor)

static const char HINT_NOT_FOUND[] = "is it imported? secretfree device"
    " list; secretfree device import FILE --product-line ID";

static const char HELP_DISABLE[] =
"Usage: secretfree device disable ID [--reason TEXT]\n"
"\n"
"Disable a device. The signer records it first (CaAdmin.DisableDevice):\n"
"from its answer on, Signer.Issue refuses the device with\n"
"PERMISSION_DENIED, whoever asks, and the change is in the signer's\n"
"journal. Then authz follows (Registry.DisableDevice) and refuses the\n"
"device's enrollments too. Certificates the device holds stay valid:\n"
"revoke them with `secretfree device revoke ID --keep-device`.\n"
"\n"
"Options:\n"
"  --reason TEXT   why, for both records (at most 256 characters), e.g.\n"
"                  \"returned for repair\"\n"
"\n"
"Prints \"device ID: disabled\"; with --json authz's record of the device\n"
"with the signer's state beside it (signer_state).\n"
"\n"
"Exit status: 3 when the signer does not know the device, 8 when it is\n"
"revoked (a revoked device stays revoked), 10 when the signer disabled it\n"
"but authz could not record that (it holds at the signer; run\n"
"`secretfree audit reconcile` once authz answers).\n"
"\n"
"Example:\n"
"  secretfree device disable 1115 --reason \"reported stolen\"\n";

static const char HELP_ENABLE[] =
"Usage: secretfree device enable ID [--reason TEXT]\n"
"\n"
"Enable a disabled device again: at the signer first\n"
"(CaAdmin.EnableDevice), then in authz (Registry.EnableDevice), where it\n"
"returns to active if it holds a certificate, else to registered. A\n"
"revoked device cannot be enabled (exit 8).\n"
"\n"
"Options:\n"
"  --reason TEXT   why, for both records\n"
"\n"
"Exit status: 3 when the signer does not know the device, 8 when it is\n"
"revoked, 10 when authz could not follow the signer.\n"
"\n"
"Example:\n"
"  secretfree device enable 1115\n";

static const char HELP_REVOKE[] =
"Usage: secretfree device revoke ID [--reason REASON] [--keep-device]\n"
"\n"
"Revoke every live certificate of a device (unexpired and not revoked)\n"
"and, unless --keep-device, the device itself. The signer does it all in\n"
"one journal transaction before it answers (CaAdmin.RevokeDevice), and\n"
"its background tasks then regenerate the CRLs and OCSP responses. A\n"
"revoked device is refused for good, by the signer and by authz: it\n"
"cannot be enabled again. Then authz mirrors each certificate's status\n"
"(Registry.UpdateCertificateStatus) and the device's\n"
"(Registry.RevokeDevice).\n"
"\n"
"With --keep-device only the certificates are revoked: the device stays\n"
"as it was and, if active, may enroll again with its registered key (for\n"
"a certificate that leaked while the device's key did not).\n"
"\n"
"Revoking again is safe: certificates revoked already keep their first\n"
"revocation, and none is revoked twice.\n"
"\n"
"Options:\n"
"  --reason REASON  why (RFC 5280): unspecified (default), key-compromise,\n"
"                   ca-compromise, affiliation-changed, superseded,\n"
"                   cessation-of-operation, privilege-withdrawn,\n"
"                   aa-compromise\n"
"  --keep-device    revoke the certificates only\n"
"\n"
"Prints one line per certificate revoked, then the device's state; with\n"
"--json one object: device_id, state (the signer's), keep_device and\n"
"revoked (serial, reason, revoked_at of each).\n"
"\n"
"Exit status: 3 when the signer does not know the device, 10 when the\n"
"signer revoked but authz could not record it all (it holds at the\n"
"signer; run `secretfree audit reconcile` once authz answers).\n"
"\n"
"Example:\n"
"  secretfree device revoke 1115 --reason key-compromise\n"
"  secretfree device revoke 1116 --reason superseded --keep-device\n";

/* ID [--reason TEXT] into *id and *reason; an exit code on a bad line. */
static int
id_and_note(cli *c, int argc, char **argv, const char **id,
    const char **reason)
{
	static const struct option opts[] = {
		{ "reason", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 }
	};
	int ch;

	*reason = "";
	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		if (ch != 'r')
			return CLI_EXIT_USAGE;
		*reason = optarg;
	}
	return cli_operand(c, argc, argv, "device", id);
}

static int
set_state(cli *c, int argc, char **argv, int disable)
{
	Secretfree__V1__SetDeviceKeyStateRequest req =
	    SECRETFREE__V1__SET_DEVICE_KEY_STATE_REQUEST__INIT;
	Secretfree__V1__DeviceKeyInfo *k = NULL;
	Secretfree__V1__Device *d = NULL;
	const char *method = disable ? "DisableDevice" : "EnableDevice";
	const char *id = NULL, *reason = "";
	char st[32], sst[32], what[128];
	int ec, jec;
	json_t *j;

	if ((ec = id_and_note(c, argc, argv, &id, &reason)) != 0)
		return ec;
	req.device_id = (char *)id;
	req.reason = (char *)reason;
	c->hint[RPC_NOT_FOUND] = HINT_NOT_FOUND;
	c->hint[RPC_FAILED_PRECONDITION] = "a revoked device stays revoked";
	if ((ec = cli_call(c, CLI_SIGNER, CA_SVC, method, &req.base,
	    (ProtobufCMessage **)&k)) != 0)
		return ec;
	snprintf(what, sizeof what, "device %s %s", id, disable ? "disabled" :
	    "enabled");
	ec = mirror_device_state(c, what, method, id, reason, &d);
	cmd_device_state_name(k->state, sst, sizeof sst);
	if (c->json) {
		j = d ? cmd_device_json(d) : json_pack("{s:o}", "device_id",
		    out_jstr(k->device_id));
		out_jset(&j, "signer_state", json_string(sst));
		jec = out_json(c, j);
		ec = ec ? ec : jec;
	} else
		printf("device %s: %s\n", id, d ? cmd_device_state_name(
		    d->state, st, sizeof st) : sst);
	protobuf_c_message_free_unpacked(&k->base, NULL);
	if (d)
		protobuf_c_message_free_unpacked(&d->base, NULL);
	return ec;
}

static int
cmd_device_disable(cli *c, int argc, char **argv)
{
	return set_state(c, argc, argv, 1);
}

static int
cmd_device_enable(cli *c, int argc, char **argv)
{
	return set_state(c, argc, argv, 0);
}

/* The signer's answer to RevokeDevice as --json prints it. */
static json_t *
revoked_json(const Secretfree__V1__RevokeDeviceResponse *r, int keep)
{
	json_t *a = json_array();
	char st[32];

	for (size_t i = 0; i < r->n_revoked; i++)
		out_jappend(&a, json_pack("{s:o, s:s, s:o}",
		    "serial", out_jstr(r->revoked[i]->serial),
		    "reason", cli_reason_name(r->revoked[i]->reason),
		    "revoked_at", out_jtime(r->revoked[i]->revoked_at)));
	return json_pack("{s:o, s:s, s:b, s:o}",
	    "device_id", out_jstr(r->device ? r->device->device_id : ""),
	    "state", cmd_device_state_name(r->device ? r->device->state : 0,
	    st, sizeof st),
	    "keep_device", keep,
	    "revoked", a);
}

static int
cmd_device_revoke(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "reason", required_argument, NULL, 'r' },
		{ "keep-device", no_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 }
	};
	Secretfree__V1__RevokeDeviceRequest req =
	    SECRETFREE__V1__REVOKE_DEVICE_REQUEST__INIT;
	Secretfree__V1__RevokeDeviceResponse *r = NULL;
	const char *id = NULL;
	char what[160], st[32];
	int ch, ec, reason = 0, jec;

	while ((ch = cli_getopt(c, argc, argv, opts)) != -1) {
		switch (ch) {
		case 'r':
			if (cli_reason(c, optarg, &reason) != 0)
				return CLI_EXIT_USAGE;
			break;
		case 'k':
			req.keep_device = 1;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if ((ec = cli_operand(c, argc, argv, "device", &id)) != 0)
		return ec;
	req.device_id = (char *)id;
	req.reason = reason;
	c->hint[RPC_NOT_FOUND] = HINT_NOT_FOUND;
	if ((ec = cli_call(c, CLI_SIGNER, CA_SVC, "RevokeDevice", &req.base,
	    (ProtobufCMessage **)&r)) != 0)
		return ec;
	snprintf(what, sizeof what, "device %s: %zu certificates%s revoked",
	    req.device_id, r->n_revoked, req.keep_device ? "" :
	    " and the device");
	ec = mirror_cert_status(c, what, r->revoked, r->n_revoked, NULL);
	if (ec == 0 && !req.keep_device)
		ec = mirror_device_state(c, what, "RevokeDevice",
		    req.device_id, cli_reason_name(reason), NULL);
	if (c->json) {
		jec = out_json(c, revoked_json(r, req.keep_device));
		ec = ec ? ec : jec;
	} else {
		for (size_t i = 0; i < r->n_revoked; i++)
			printf("certificate %s revoked (%s)\n",
			    r->revoked[i]->serial,
			    cli_reason_name(r->revoked[i]->reason));
		printf("device %s: %s, %zu certificate%s revoked%s\n",
		    req.device_id, cmd_device_state_name(r->device ?
		    r->device->state : 0, st, sizeof st), r->n_revoked,
		    r->n_revoked == 1 ? "" : "s", req.keep_device ?
		    "; it may enroll again" : "");
	}
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return ec;
}

const cli_cmd cmd_devstate_table[] = {
	{ "device", "disable", cmd_device_disable, "refuse a device's"
	    " certificates (signer, then authz)", HELP_DISABLE },
	{ "device", "enable", cmd_device_enable, "enable a disabled device",
	    HELP_ENABLE },
	{ "device", "revoke", cmd_device_revoke, "revoke a device and its"
	    " certificates", HELP_REVOKE },
	{ NULL, NULL, NULL, NULL, NULL }
};
