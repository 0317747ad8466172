/*
 * Unit tests of common/privdrop.c: which configurations privdrop_resolve
 * accepts as root and as another user, and privdrop_apply in a child
 * process (the drop is for good, so never in the test itself). The
 * daemons' drop end to end is tests/integration/test_privdrop.py.
 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "privdrop.h"
#include "../../tap.h"

static void
as_root(void)
{
	privdrop_user u;
	struct passwd *nobody = getpwnam("nobody");
	char why[256] = "";
	pid_t pid;
	int st;

	is_int(privdrop_resolve("[signer] user", NULL, &u, why, sizeof why),
	    SF_ECONFIG, "root without a user: refused");
	ok(strstr(why, "[signer] user is not set") &&
	    strstr(why, "[signer] user = root"),
	    "the message names the key and how to stay root on purpose");
	tap_diag("%s", why);
	is_int(privdrop_resolve("[authz] user", "", &u, why, sizeof why),
	    SF_ECONFIG, "an empty user is no user");
	ok(strstr(why, "[authz] user") != NULL, "named: %s", why);
	is_int(privdrop_resolve("[signer] user", "root", &u, why, sizeof why),
	    0, "user = root: accepted");
	ok(u.uid == 0 && u.change && strcmp(u.name, "root") == 0,
	    "resolved to uid 0");
	is_int(privdrop_resolve("[signer] user", "no-such-user-sf", &u, why,
	    sizeof why), SF_ECONFIG, "an unknown user: refused");
	ok(strstr(why, "unknown user no-such-user-sf") != NULL, "named: %s",
	    why);
	if (nobody == NULL) {
		tap_skip("no user nobody");
		return;
	}
	is_int(privdrop_resolve("[signer] user", "nobody", &u, why,
	    sizeof why), 0, "user = nobody: resolved");
	ok(u.uid == nobody->pw_uid && u.gid == nobody->pw_gid && u.change,
	    "to nobody's uid and gid, to be switched to");

	/* The drop itself, in a child: it reports what it became. */
	if ((pid = fork()) == 0) {
		uid_t r, e, s;
		int code = 0;

		if (privdrop_apply(&u, why, sizeof why) != 0)
			_exit(1);
		getresuid(&r, &e, &s);
		if (r != nobody->pw_uid || e != r || s != r)
			code |= 2;
		if (getgid() != nobody->pw_gid || getegid() != nobody->pw_gid)
			code |= 4;
		if (setuid(0) == 0 || seteuid(0) == 0)
			code |= 8;
		_exit(code);
	}
	ok(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st),
	    "the child ran");
	is_int(WEXITSTATUS(st), 0, "privdrop_apply: real, effective and saved"
	    " uid and gid are nobody's, and root cannot be regained");
}

static void
as_other(void)
{
	struct passwd *me = getpwuid(geteuid());
	privdrop_user u;
	char why[256] = "";

	is_int(privdrop_resolve("[signer] user", NULL, &u, why, sizeof why),
	    0, "not root, no user: runs as it is");
	ok(u.uid == geteuid() && !u.change, "nothing to change");
	is_int(privdrop_apply(&u, why, sizeof why), 0, "privdrop_apply: no-op");
	if (me) {
		is_int(privdrop_resolve("[signer] user", me->pw_name, &u, why,
		    sizeof why), 0, "user = our own name: accepted");
		ok(!u.change, "nothing to change");
	}
	is_int(privdrop_resolve("[signer] user", "root", &u, why, sizeof why),
	    SF_EPERM, "user = root when not root: refused");
	ok(strstr(why, "not root") != NULL, "%s", why);
}

int
main(void)
{
	if (geteuid() == 0)
		as_root();
	else
		as_other();
	return tap_done();
}
