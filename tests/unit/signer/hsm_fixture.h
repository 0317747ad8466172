/*
 * hsm_fixture.h - a SoftHSM2 token for a unit test, made in a temporary
 * directory by tokens/softhsm-init (its path in SF_SOFTHSM_INIT, as
 * tests/meson.build sets it). hsm_make() exports SOFTHSM2_CONF and fills
 * hsm_dir and hsm_pin_path; hsm_cleanup() removes the directory.
 */
#ifndef SF_HSM_FIXTURE_H
#define SF_HSM_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char hsm_dir[256], hsm_pin_path[320];

/* 0 once the token exists; -1 if it could not be made. */
static int __attribute__((unused))
hsm_make(const char *prefix)
{
	const char *init = getenv("SF_SOFTHSM_INIT");
	char cmd[512], line[512];
	FILE *p;
	int ok = 0;

	if (init == NULL)
		return -1;
	snprintf(hsm_dir, sizeof hsm_dir, "/tmp/%s.XXXXXX", prefix);
	if (mkdtemp(hsm_dir) == NULL)
		return -1;
	snprintf(cmd, sizeof cmd, "'%s' '%s/hsm'", init, hsm_dir);
	if ((p = popen(cmd, "r")) == NULL)
		return -1;
	/* SOFTHSM2_CONF comes from the script's one stdout line. */
	while (fgets(line, sizeof line, p) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "SOFTHSM2_CONF=", 14) == 0) {
			setenv("SOFTHSM2_CONF", line + 14, 1);
			ok = 1;
		}
	}
	if (pclose(p) != 0 || !ok)
		return -1;
	snprintf(hsm_pin_path, sizeof hsm_pin_path, "%s/hsm/user.pin", hsm_dir);
	return 0;
}

/* Returns 0, or -1 if the directory could not be removed. */
static int __attribute__((unused))
hsm_cleanup(void)
{
	char cmd[300];

	if (hsm_dir[0] == '\0')
		return 0;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", hsm_dir);
	return system(cmd) == 0 ? 0 : -1;
}

#endif
