/*
 * log.h - process-prefixed logging to stderr (OpenSMTPD style).
 *
 * log_warn() appends strerror(errno); log_warnx() does not. fatal()/fatalx()
 * log and exit(1): use them during start-up only, never on a client's input.
 * The _f variants prefix the calling function's name. Never log PINs or keys.
 */
#ifndef SF_LOG_H
#define SF_LOG_H

#include <stdarg.h>

enum { LOG_LEVEL_WARN = 0, LOG_LEVEL_INFO = 1, LOG_LEVEL_DEBUG = 2 };

/* procname is kept by pointer: pass a string literal. */
void log_init(const char *procname, int level);
void log_setlevel(int level);
int log_getlevel(void);

void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define log_info_f(fmt, ...)  log_info("%s: " fmt, __func__, ##__VA_ARGS__)
#define log_warn_f(fmt, ...)  log_warn("%s: " fmt, __func__, ##__VA_ARGS__)
#define log_warnx_f(fmt, ...) log_warnx("%s: " fmt, __func__, ##__VA_ARGS__)
#define log_debug_f(fmt, ...) log_debug("%s: " fmt, __func__, ##__VA_ARGS__)
#define fatal_f(fmt, ...)     fatal("%s: " fmt, __func__, ##__VA_ARGS__)
#define fatalx_f(fmt, ...)    fatalx("%s: " fmt, __func__, ##__VA_ARGS__)

/* Log OpenSSL's error queue (and clear it) at warning level, with a prefix. */
void log_openssl(const char *what);

#endif
