/*
 * privdrop.c - give up root for the configured service user (see
 * privdrop.h). The daemons call it once during start-up, after opening
 * what needs root and before serving any call; it verifies afterwards that
 * root cannot be regained.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "privdrop.h"

int
privdrop(const char *user, char *why, size_t whylen)
{
	struct passwd *pw;

	if (user == NULL || *user == '\0')
		return 0;
	if ((pw = getpwnam(user)) == NULL) {
		snprintf(why, whylen, "unknown user %s", user);
		return SF_ECONFIG;
	}
	if (geteuid() != 0) {
		if (geteuid() == pw->pw_uid)
			return 0;
		snprintf(why, whylen, "not root: cannot become user %s", user);
		return SF_EPERM;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) != 0 ||
	    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) != 0 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) != 0) {
		snprintf(why, whylen, "cannot become user %s: %s", user,
		    strerror(errno));
		return SF_EPERM;
	}
	if (pw->pw_uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		snprintf(why, whylen, "could regain root after dropping to %s",
		    user);
		return SF_EPERM;
	}
	return 0;
}
