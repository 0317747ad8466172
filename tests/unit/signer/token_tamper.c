/*
 * token-tamper - what someone holding the token's user PIN could try on a
 * CA key after it was made, for the tests that check the token refuses it
 * (CKA_MODIFIABLE and CKA_COPYABLE FALSE) or the signer notices it. Stock
 * tools cannot do all of it: pkcs11-tool and p11tool change only CKA_ID
 * and CKA_LABEL of an existing object, and copy nothing.
 *
 *   token-tamper MODULE TOKEN-LABEL PINFILE LABEL attrs
 *       print the private key's boolean attributes, "NAME=TRUE|FALSE|-"
 *   token-tamper MODULE TOKEN-LABEL PINFILE LABEL set ATTR=TRUE|FALSE
 *       C_SetAttributeValue on the private key (ATTR: CKA_DECRYPT,
 *       CKA_DERIVE, CKA_UNWRAP, CKA_SIGN_RECOVER, CKA_EXTRACTABLE,
 *       CKA_MODIFIABLE)
 *   token-tamper MODULE TOKEN-LABEL PINFILE LABEL copy
 *       C_CopyObject of the private key under the label LABEL-copy
 *
 * Prints the CK_RV for set and copy (CKR_OK, CKR_ACTION_PROHIBITED,
 * CKR_ATTRIBUTE_READ_ONLY by name, others in hex); exits 0 when the token did
 * it, 1 when it refused, 2 on a usage or set-up error. A test helper:
 * the signer's own code keeps pkcs11.h inside signer/token*.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

static const struct {
	const char *name;
	CK_ATTRIBUTE_TYPE type;
} attrs[] = {
#define A(x) { #x, x }
	A(CKA_TOKEN), A(CKA_PRIVATE), A(CKA_SENSITIVE), A(CKA_EXTRACTABLE),
	A(CKA_SIGN), A(CKA_DECRYPT), A(CKA_UNWRAP), A(CKA_SIGN_RECOVER),
	A(CKA_DERIVE), A(CKA_MODIFIABLE), A(CKA_COPYABLE), A(CKA_DESTROYABLE),
#undef A
};
#define NATTRS (sizeof attrs / sizeof attrs[0])

/* The CK_RVs a test looks for by name; others in hex. */
static void
print_rv(CK_RV rv)
{
	switch (rv) {
	case CKR_OK: printf("CKR_OK\n"); break;
	case CKR_ACTION_PROHIBITED: printf("CKR_ACTION_PROHIBITED\n"); break;
	case CKR_ATTRIBUTE_READ_ONLY: printf("CKR_ATTRIBUTE_READ_ONLY\n");
		break;
	default: printf("CKR 0x%lx\n", (unsigned long)rv); break;
	}
}

static int
fail(const char *what, CK_RV rv)
{
	fprintf(stderr, "token-tamper: %s: %s\n", what, p11_kit_strerror(rv));
	return 2;
}

/* The session's slot: the token labelled label. */
static int
open_token(CK_FUNCTION_LIST *f, const char *label, CK_SESSION_HANDLE *s)
{
	CK_SLOT_ID slots[16];
	CK_ULONG n = 16;
	CK_TOKEN_INFO ti;
	CK_RV rv;

	if ((rv = f->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_OK)
		return fail("C_GetSlotList", rv);
	for (CK_ULONG i = 0; i < n; i++) {
		if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		if (strncmp((char *)ti.label, label, strlen(label)) != 0 ||
		    (strlen(label) < 32 && ti.label[strlen(label)] != ' '))
			continue;
		if ((rv = f->C_OpenSession(slots[i], CKF_SERIAL_SESSION |
		    CKF_RW_SESSION, NULL, NULL, s)) != CKR_OK)
			return fail("C_OpenSession", rv);
		return 0;
	}
	fprintf(stderr, "token-tamper: no token labelled %s\n", label);
	return 2;
}

static int
find_priv(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s, const char *label,
    CK_OBJECT_HANDLE *h)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof cls },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};
	CK_OBJECT_HANDLE objs[2];
	CK_ULONG n = 0;
	CK_RV rv;

	if ((rv = f->C_FindObjectsInit(s, t, 2)) != CKR_OK)
		return fail("C_FindObjectsInit", rv);
	rv = f->C_FindObjects(s, objs, 2, &n);
	f->C_FindObjectsFinal(s);
	if (rv != CKR_OK)
		return fail("C_FindObjects", rv);
	if (n != 1) {
		fprintf(stderr, "token-tamper: %lu private keys labelled %s\n",
		    (unsigned long)n, label);
		return 2;
	}
	*h = objs[0];
	return 0;
}

static int
show(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h)
{
	for (size_t i = 0; i < NATTRS; i++) {
		CK_BBOOL v = CK_FALSE;
		CK_ATTRIBUTE a = { attrs[i].type, &v, sizeof v };
		CK_RV rv = f->C_GetAttributeValue(s, h, &a, 1);

		printf("%s=%s\n", attrs[i].name, rv != CKR_OK ? "-" :
		    v ? "TRUE" : "FALSE");
	}
	return 0;
}

static int
set(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
    const char *arg)
{
	const char *eq = strchr(arg, '=');
	CK_BBOOL v;
	CK_RV rv;

	if (eq == NULL || (strcmp(eq + 1, "TRUE") != 0 &&
	    strcmp(eq + 1, "FALSE") != 0))
		return 2;
	v = strcmp(eq + 1, "TRUE") == 0 ? CK_TRUE : CK_FALSE;
	for (size_t i = 0; i < NATTRS; i++) {
		CK_ATTRIBUTE a = { attrs[i].type, &v, sizeof v };

		if (strlen(attrs[i].name) != (size_t)(eq - arg) ||
		    strncmp(attrs[i].name, arg, (size_t)(eq - arg)) != 0)
			continue;
		rv = f->C_SetAttributeValue(s, h, &a, 1);
		print_rv(rv);
		return rv == CKR_OK ? 0 : 1;
	}
	return 2;
}

static int
copy(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
    const char *label)
{
	char copy_label[160];
	CK_ATTRIBUTE a = { CKA_LABEL, copy_label, 0 };
	CK_OBJECT_HANDLE nh = CK_INVALID_HANDLE;
	CK_RV rv;

	snprintf(copy_label, sizeof copy_label, "%s-copy", label);
	a.ulValueLen = strlen(copy_label);
	rv = f->C_CopyObject(s, h, &a, 1, &nh);
	print_rv(rv);
	return rv == CKR_OK ? 0 : 1;
}

int
main(int argc, char **argv)
{
	CK_FUNCTION_LIST *f;
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	char pin[260];
	FILE *fp;
	CK_RV rv;
	int rc;

	if (argc < 6 || (strcmp(argv[5], "set") == 0 && argc != 7)) {
		fprintf(stderr, "usage: token-tamper MODULE TOKEN-LABEL PINFILE"
		    " LABEL attrs|set ATTR=TRUE|FALSE|copy\n");
		return 2;
	}
	if ((fp = fopen(argv[3], "r")) == NULL ||
	    fgets(pin, sizeof pin, fp) == NULL) {
		fprintf(stderr, "token-tamper: cannot read %s\n", argv[3]);
		return 2;
	}
	fclose(fp);
	pin[strcspn(pin, "\r\n")] = '\0';
	if ((f = p11_kit_module_load(argv[1], 0)) == NULL) {
		fprintf(stderr, "token-tamper: cannot load %s\n", argv[1]);
		return 2;
	}
	if ((rv = p11_kit_module_initialize(f)) != CKR_OK)
		return fail("C_Initialize", rv);
	if ((rc = open_token(f, argv[2], &s)) != 0)
		return rc;
	rv = f->C_Login(s, CKU_USER, (CK_UTF8CHAR *)pin, strlen(pin));
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
		return fail("C_Login", rv);
	if ((rc = find_priv(f, s, argv[4], &h)) != 0)
		return rc;
	if (strcmp(argv[5], "attrs") == 0)
		rc = show(f, s, h);
	else if (strcmp(argv[5], "set") == 0)
		rc = set(f, s, h, argv[6]);
	else if (strcmp(argv[5], "copy") == 0)
		rc = copy(f, s, h, argv[4]);
	else
		rc = 2;
	f->C_Logout(s);
	f->C_CloseSession(s);
	p11_kit_module_finalize(f);
	p11_kit_module_release(f);
	return rc;
}
