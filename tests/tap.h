/*
 * tap.h - a tiny TAP producer for the C tests. scripts/test counts the
 * "ok" / "not ok" lines of every test program for its final
 * "N passed, N failed" line.
 */
#ifndef SF_TAP_H
#define SF_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_count, tap_failed;

static void __attribute__((format(printf, 4, 5), unused))
tap_ok(int cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	tap_count++;
	printf("%sok %d - ", cond ? "" : "not ", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond) {
		tap_failed++;
		printf("#   failed at %s:%d\n", file, line);
	}
	fflush(stdout);
}

static void __attribute__((format(printf, 1, 2), unused))
tap_diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static void __attribute__((unused))
tap_skip(const char *why)
{
	tap_count++;
	printf("ok %d # SKIP %s\n", tap_count, why);
	fflush(stdout);
}

static int __attribute__((unused))
tap_done(void)
{
	printf("1..%d\n", tap_count);
	return tap_failed ? 1 : 0;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(a, b, ...) do { \
	long long _a = (long long)(a), _b = (long long)(b); \
	tap_ok(_a == _b, __FILE__, __LINE__, __VA_ARGS__); \
	if (_a != _b) tap_diag("got %lld, expected %lld", _a, _b); \
} while (0)
#define is_str(a, b, ...) do { \
	const char *_a = (a), *_b = (b); \
	int _c = _a && _b && strcmp(_a, _b) == 0; \
	tap_ok(_c, __FILE__, __LINE__, __VA_ARGS__); \
	if (!_c) tap_diag("got \"%s\", expected \"%s\"", _a ? _a : "(null)", _b ? _b : "(null)"); \
} while (0)

#endif
