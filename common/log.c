/*
 * log.c - process-prefixed logging to stderr (see log.h). One line per
 * message, with a UTC timestamp, the process name and pid; one fprintf per
 * line, so stdio's lock keeps lines of concurrent threads apart.
 * log_openssl() drains OpenSSL's error queue into the log.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "log.h"

static const char *log_procname = "secretfree";
/* Set by SIGHUP while other threads log: read and written atomically. */
static int log_level = LOG_LEVEL_INFO;

void
log_init(const char *procname, int level)
{
	log_procname = procname;
	__atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
}

void
log_setlevel(int level)
{
	__atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
}

int
log_getlevel(void)
{
	return __atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

static void log_vwrite(const char *tag, const char *fmt, va_list ap,
    int errnum) __attribute__((format(printf, 2, 0)));

/*
 * Control characters (C0, DEL) in a formatted message become \xNN: what a
 * peer sends (a region, a device id in an error) can never start a line of
 * its own or move the cursor of a terminal tailing the log. A backslash is
 * doubled, so that an escape in the log always means one.
 */
static void
log_escape(const char *in, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	size_t k = 0;

	for (; *in && k + 5 < outlen; in++) {
		unsigned char c = (unsigned char)*in;

		if (c < 0x20 || c == 0x7f) {
			out[k++] = '\\';
			out[k++] = 'x';
			out[k++] = hex[c >> 4];
			out[k++] = hex[c & 15];
		} else if (c == '\\') {
			out[k++] = '\\';
			out[k++] = '\\';
		} else
			out[k++] = (char)c;
	}
	out[k] = '\0';
}

static void
log_vwrite(const char *tag, const char *fmt, va_list ap, int errnum)
{
	char raw[2048], msg[4096], stamp[32];
	struct timespec ts;
	struct tm tm;

	vsnprintf(raw, sizeof raw, fmt, ap);
	log_escape(raw, msg, sizeof msg);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
	/* One fprintf per line: stdio's lock keeps lines from interleaving. */
	if (errnum)
		fprintf(stderr, "%s.%03ldZ %s[%d]: %s: %s: %s\n", stamp,
		    ts.tv_nsec / 1000000, log_procname, (int)getpid(), tag,
		    msg, strerror(errnum));
	else
		fprintf(stderr, "%s.%03ldZ %s[%d]: %s: %s\n", stamp,
		    ts.tv_nsec / 1000000, log_procname, (int)getpid(), tag,
		    msg);
}

#define LOG_BODY(tag, errnum) do { \
	va_list ap; va_start(ap, fmt); log_vwrite(tag, fmt, ap, errnum); va_end(ap); \
} while (0)

void
log_info(const char *fmt, ...)
{
	if (log_getlevel() >= LOG_LEVEL_INFO)
		LOG_BODY("info", 0);
}

void
log_debug(const char *fmt, ...)
{
	if (log_getlevel() >= LOG_LEVEL_DEBUG)
		LOG_BODY("debug", 0);
}

void
log_warn(const char *fmt, ...)
{
	int saved = errno;

	LOG_BODY("warning", saved);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY("warning", 0);
}

void
fatal(const char *fmt, ...)
{
	int saved = errno;

	LOG_BODY("fatal", saved);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY("fatal", 0);
	exit(1);
}

void
log_openssl(const char *what)
{
	unsigned long e;
	char buf[256];
	int n = 0;

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof buf);
		log_warnx("%s: %s", what, buf);
		n++;
	}
	if (n == 0)
		log_warnx("%s: (no OpenSSL error queued)", what);
}
