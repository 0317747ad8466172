/*
 * bench-keys - CPU cost of parsing and checking what devices and factories
 * send: csr_parse (a CSR, as authz and the signer each check it) and
 * pubkey_from_text (a factory file's key, as the CLI, the signer and
 * authz each check it). Not a test.
 *
 *   bench-keys csr  [-n N] [--warmup W] FILE
 *   bench-keys spki [-n N] [--warmup W] FILE
 *
 * FILE is a CSR (PEM or DER) or a public key (PEM "PUBLIC KEY" or base64
 * of the DER SPKI). W calls first (not timed), then N timed. Prints:
 *   result mode=csr n=N seconds=S rate=R us_per_call=U errors=E
 * and exits 1 if any call failed.
 *
 * Instruction counts: the timed loop is the function bench_loop, so
 *   valgrind --tool=callgrind --toggle-collect=bench_loop \
 *       build/tests/bench/bench-keys csr -n 200 p256.csr
 * counts only the N calls; divide the total by N.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "csr.h"
#include "err.h"
#include "log.h"
#include "pubkey.h"

static int failures;
static char first_why[256];

static void
one(int csr, const uint8_t *data, size_t len)
{
	char why[256] = "";
	int rc;

	if (csr) {
		csr_info ci;

		rc = csr_parse(data, len, CSR_MAX_DEFAULT, &ci, why,
		    sizeof why);
		csr_info_fini(&ci);
	} else {
		pubkey_info pk;

		rc = pubkey_from_text((const char *)data, len, &pk, why,
		    sizeof why);
		pubkey_info_free(&pk);
	}
	if (rc != 0 && failures++ == 0)
		snprintf(first_why, sizeof first_why, "%s: %s",
		    sf_strerror(rc), why);
}

/* The timed (and, under callgrind, the counted) loop. */
__attribute__((noinline)) void bench_loop(int csr, const uint8_t *data,
    size_t len, size_t n);

__attribute__((noinline)) void
bench_loop(int csr, const uint8_t *data, size_t len, size_t n)
{
	for (size_t i = 0; i < n; i++)
		one(csr, data, len);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
usage(void)
{
	fprintf(stderr, "usage: bench-keys csr|spki [-n N] [--warmup W] "
	    "FILE\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *file = NULL;
	size_t n = 1000, warmup = 10, len = 0, cap = 0;
	uint8_t *data = NULL;
	double t0, t1;
	FILE *f;
	int csr;

	if (argc < 3)
		usage();
	if (strcmp(argv[1], "csr") == 0)
		csr = 1;
	else if (strcmp(argv[1], "spki") == 0)
		csr = 0;
	else
		usage();
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
			n = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc)
			warmup = strtoul(argv[++i], NULL, 10);
		else if (argv[i][0] != '-' && file == NULL)
			file = argv[i];
		else
			usage();
	}
	if (n == 0 || file == NULL)
		usage();
	log_init("bench-keys", LOG_LEVEL_WARN);
	if ((f = fopen(file, "rb")) == NULL) {
		perror(file);
		return 2;
	}
	for (;;) {
		size_t got;

		if (len == cap) {
			cap = cap ? 2 * cap : 4096;
			if ((data = realloc(data, cap)) == NULL)
				return 2;
		}
		if ((got = fread(data + len, 1, cap - len, f)) == 0)
			break;
		len += got;
	}
	fclose(f);
	/* Not through bench_loop: callgrind counts only the timed calls. */
	for (size_t i = 0; i < warmup; i++)
		one(csr, data, len);
	t0 = now_s();
	bench_loop(csr, data, len, n);
	t1 = now_s();
	printf("result mode=%s n=%zu seconds=%.3f rate=%.1f us_per_call=%.2f"
	    " errors=%d\n", csr ? "csr" : "spki", n, t1 - t0,
	    (double)n / (t1 - t0), (t1 - t0) * 1e6 / (double)n, failures);
	if (failures)
		fprintf(stderr, "bench-keys: first failure: %s\n", first_why);
	free(data);
	return failures ? 1 : 0;
}
