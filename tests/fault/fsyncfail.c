/*
 * fsyncfail.c - an LD_PRELOAD library for the disk tests: while the file
 * named by SF_FSYNC_FAIL exists, fsync() and fdatasync() fail with EIO
 * (after doing nothing), as a disk that lost a write would make them.
 * Test code only; the product never loads it.
 */

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <dlfcn.h>

static int
failing(void)
{
	const char *flag = getenv("SF_FSYNC_FAIL");

	return flag != NULL && access(flag, F_OK) == 0;
}

int
fsync(int fd)
{
	static int (*real)(int);

	if (failing()) {
		errno = EIO;
		return -1;
	}
	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	return real(fd);
}

int
fdatasync(int fd)
{
	static int (*real)(int);

	if (failing()) {
		errno = EIO;
		return -1;
	}
	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	return real(fd);
}
