/*
 * bench-registry - CPU cost of authz's registry on the enrollment path,
 * without the network, the CSR or the signer. Not a test.
 *
 *   bench-registry [-n N] [--warmup W] [--dir DIR] [--keep]
 *
 * Opens a registry file in a new temporary directory under DIR (default
 * $TMPDIR or /tmp; /dev/shm takes the fsync out of the figures), imports
 * W + N devices, stores a policy and a template (2 attributes, 1 group,
 * 1 policy), then runs for each device the calls that authz/enroll.c makes
 * for an enrollment that issues:
 *
 *   registry_device_get, registry_enrollment_by_key (a miss),
 *   registry_template_get, registry_enroll_commit (with the template),
 *   registry_enrollment_get
 *
 * W sequences first (not timed: warm caches, statements), then N timed.
 * Prints one line:
 *   result n=N seconds=S rate=R us_per_seq=U errors=E dir=DIR
 * and exits 1 if any call failed.
 *
 * Instruction counts (repeatable where wall time is not): the timed loop
 * is the function bench_loop, so
 *   valgrind --tool=callgrind --toggle-collect=bench_loop \
 *       build/tests/bench/bench-registry -n 300
 * counts only the N sequences; divide the total by N.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "pbenum.h"
#include "registry.h"
#include "util.h"

#define PRODUCT_LINE "benchiot"
#define REGION "eu-west-1"

static const char *CERT_PEM =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBszCCAVmgAwIBAgIUB2VuY2gtcmVnaXN0cnktY2VydGlmaWNhdGUwCgYIKoZI\n"
    "zj0EAwIwHjEcMBoGA1UEAwwTc2VjcmV0ZnJlZSBiZW5jaCBDQTAeFw0yNjEyMDEw\n"
    "MDAwMDBaFw0yNzEyMDEwMDAwMDBaMBQxEjAQBgNVBAMMCWJlbmNoLWRldjBZMBMG\n"
    "ByqGSM49AgEGCCqGSM49AwEHA0IABGJlbmNoLXJlZ2lzdHJ5LXB1YmxpYy1rZXkt\n"
    "cGxhY2Vob2xkZXItYnl0ZXMtZm9yLXRoZS1iZW5jaG1hcmstb25seS0xMjM0NTY3\n"
    "-----END CERTIFICATE-----\n";

static int failures;

static void
fail(const char *what, int rc)
{
	if (failures++ == 0)
		fprintf(stderr, "bench-registry: %s: %s\n", what,
		    sf_strerror(rc));
}

static void
device_id(char *buf, size_t len, size_t i)
{
	snprintf(buf, len, "bench-dev-%06zu", i);
}

static int
import_devices(registry *r, size_t n)
{
	registry_import_rec *recs;
	uint8_t (*fp)[32], spki[91];
	char (*ids)[32];
	int *outcome, rc;

	recs = calloc(n, sizeof *recs);
	fp = calloc(n, sizeof *fp);
	ids = calloc(n, sizeof *ids);
	outcome = calloc(n, sizeof *outcome);
	if (!recs || !fp || !ids || !outcome) {
		rc = SF_ENOMEM;
		goto out;
	}
	/* The registry does not parse the key; any bytes will do. */
	for (size_t k = 0; k < sizeof spki; k++)
		spki[k] = (uint8_t)(0x30 + k);
	for (size_t i = 0; i < n; i++) {
		device_id(ids[i], sizeof ids[i], i);
		for (size_t k = 0; k < 32; k++)
			fp[i][k] = (uint8_t)((i >> (8 * (k % 8))) ^ (k * 37));
		recs[i].device_id = ids[i];
		recs[i].spki = spki;
		recs[i].spki_len = sizeof spki;
		recs[i].key_sha256 = fp[i];
		recs[i].product_line = PRODUCT_LINE;
		recs[i].region = "";
	}
	if ((rc = registry_import(r, recs, n, outcome)) == 0)
		for (size_t i = 0; i < n; i++)
			if (outcome[i] != REGISTRY_IMPORTED) {
				rc = SF_EINVAL;
				break;
			}
out:
	free(recs);
	free(fp);
	free(ids);
	free(outcome);
	return rc;
}

static int
setup_template(registry *r)
{
	char *pols[] = { "bench-connect" };
	char *an[] = { "serial", "location" };
	char *av[] = { "${serial}", "${region}/${product_line}" };
	registry_template t = { PRODUCT_LINE, "bench-fleet", pols, 1, an, av,
	    2 };
	int rc;

	if ((rc = registry_policy_put(r, "bench-connect",
	    "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":"
	    "\"Allow\",\"Action\":\"iot:Connect\",\"Resource\":\"*\"}]}")) !=
	    0)
		return rc;
	return registry_template_put(r, &t);
}

/* One enrollment's registry calls, as authz/enroll.c makes them. */
static void
sequence(registry *r, size_t i)
{
	char dev[32], eid[48], serial[48], key[48];
	registry_enrollment en, got;
	registry_template tmpl;
	registry_device d;
	int rc, have_tmpl;

	device_id(dev, sizeof dev, i);
	snprintf(eid, sizeof eid, "enr-%08zu", i);
	snprintf(serial, sizeof serial, "5EC7E7F7EE%08zX", i);
	snprintf(key, sizeof key, "idem-%08zu", i);
	if ((rc = registry_device_get(r, dev, &d)) != 0) {
		fail("registry_device_get", rc);
		return;
	}
	if ((rc = registry_enrollment_by_key(r, dev, key, &got)) !=
	    SF_ENOTFOUND)
		fail("registry_enrollment_by_key (a miss)",
		    rc ? rc : SF_EEXIST);
	registry_enrollment_fini(&got);

	memset(&en, 0, sizeof en);
	en.enrollment_id = eid;
	en.device_id = dev;
	en.idempotency_key = key;
	for (size_t k = 0; k < 32; k++)
		en.csr_sha256[k] = (uint8_t)(i + k);
	en.serial = serial;
	en.ca_name = "bench-issuing-ca";
	en.certificate_pem = (char *)CERT_PEM;
	en.chain_pem = (char *)CERT_PEM;
	en.region = REGION;
	en.not_before = sf_now();
	en.not_after = en.not_before + 365 * 86400;
	en.created_at = sf_now();
	en.state = ENROLLMENT_ISSUED;
	en.replaces_serial = "";
	have_tmpl = (rc = registry_template_get(r, d.product_line,
	    &tmpl)) == 0;
	if (!have_tmpl)
		fail("registry_template_get", rc);
	if ((rc = registry_enroll_commit(r, &en, have_tmpl ? &tmpl :
	    NULL)) != 0)
		fail("registry_enroll_commit", rc);
	if ((rc = registry_enrollment_get(r, eid, &got)) != 0)
		fail("registry_enrollment_get", rc);
	registry_enrollment_fini(&got);
	if (have_tmpl)
		registry_template_fini(&tmpl);
	registry_device_fini(&d);
}

/* The timed (and, under callgrind, the counted) loop. */
__attribute__((noinline)) void bench_loop(registry *r, size_t from,
    size_t n);

__attribute__((noinline)) void
bench_loop(registry *r, size_t from, size_t n)
{
	for (size_t i = from; i < from + n; i++)
		sequence(r, i);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
rm_dir(const char *dir)
{
	struct dirent *de;
	char path[800];
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

static void
usage(void)
{
	fprintf(stderr, "usage: bench-registry [-n N] [--warmup W]"
	    " [--dir DIR] [--keep]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *base = getenv("TMPDIR");
	char dir[512], path[600], why[256];
	size_t n = 1000, warmup = 10;
	double t0, t1;
	registry *r = NULL;
	int rc, keep = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
			n = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc)
			warmup = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			base = argv[++i];
		else if (strcmp(argv[i], "--keep") == 0)
			keep = 1;
		else
			usage();
	}
	if (n == 0)
		usage();
	log_init("bench-registry", LOG_LEVEL_WARN);
	snprintf(dir, sizeof dir, "%s/sf-bench-registry.XXXXXX",
	    base && *base ? base : "/tmp");
	if (mkdtemp(dir) == NULL) {
		perror(dir);
		return 1;
	}
	snprintf(path, sizeof path, "%s/registry.db", dir);
	if ((rc = registry_open(path, &r, why, sizeof why)) != 0) {
		fprintf(stderr, "bench-registry: %s\n", why);
		goto out;
	}
	if ((rc = import_devices(r, warmup + n)) != 0) {
		fail("registry_import", rc);
		goto out;
	}
	if ((rc = setup_template(r)) != 0) {
		fail("template setup", rc);
		goto out;
	}
	for (size_t i = 0; i < warmup; i++)
		sequence(r, i);
	t0 = now_s();
	bench_loop(r, warmup, n);
	t1 = now_s();
	printf("result n=%zu seconds=%.3f rate=%.1f us_per_seq=%.1f"
	    " errors=%d dir=%s\n", n, t1 - t0, (double)n / (t1 - t0),
	    (t1 - t0) * 1e6 / (double)n, failures, base && *base ? base :
	    "/tmp");
out:
	registry_close(r);
	if (keep)
		fprintf(stderr, "bench-registry: kept %s\n", path);
	else
		rm_dir(dir);
	return (rc != 0 || failures) ? 1 : 0;
}
