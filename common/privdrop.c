/*
 * privdrop.c - give up root for the configured service user (see
 * privdrop.h). The daemons resolve the user before they open anything and
 * switch once during start-up, after opening what needs root and before
 * serving any call; the switch is verified: root cannot be regained.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "privdrop.h"
#include "util.h"

int
privdrop_resolve(const char *key, const char *user, privdrop_user *out,
    char *why, size_t whylen)
{
	struct passwd *pw;
	uid_t euid = geteuid();

	memset(out, 0, sizeof *out);
	out->uid = euid;
	out->gid = getegid();
	if (user == NULL || *user == '\0') {
		if (euid != 0)
			return 0;
		sf_why(why, whylen, "started as root and %s is not set: name "
		    "the service user to run as (%s = root to stay root on "
		    "purpose)", key, key);
		return SF_ECONFIG;
	}
	if (strlen(user) >= sizeof out->name) {
		sf_why(why, whylen, "%s: user name too long", key);
		return SF_ECONFIG;
	}
	errno = 0;
	if ((pw = getpwnam(user)) == NULL) {
		sf_why(why, whylen, "%s: unknown user %s", key, user);
		return SF_ECONFIG;
	}
	if (euid != 0 && pw->pw_uid != euid) {
		sf_why(why, whylen, "%s = %s, but started as uid %u, not root: "
		    "cannot become uid %u", key, user, (unsigned)euid,
		    (unsigned)pw->pw_uid);
		return SF_EPERM;
	}
	sf_strlcpy(out->name, pw->pw_name, sizeof out->name);
	out->uid = pw->pw_uid;
	out->gid = pw->pw_gid;
	out->change = euid == 0;
	return 0;
}

int
privdrop_apply(const privdrop_user *u, char *why, size_t whylen)
{
	if (!u->change)
		return 0;
	if (initgroups(u->name, u->gid) != 0 ||
	    setresgid(u->gid, u->gid, u->gid) != 0 ||
	    setresuid(u->uid, u->uid, u->uid) != 0) {
		sf_why(why, whylen, "cannot become user %s: %s", u->name,
		    strerror(errno));
		return SF_EPERM;
	}
	if (u->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		sf_why(why, whylen, "could regain root after dropping to %s",
		    u->name);
		return SF_EPERM;
	}
	return 0;
}
