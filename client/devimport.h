/*
 * devimport.h - the factory import of `secretfree device import`: the
 * records of a file go to the signer, then to authz, in batches (the
 * protocol and why the signer goes first: devimport.c).
 */
#ifndef SF_DEVIMPORT_H
#define SF_DEVIMPORT_H

#include <stddef.h>

#include "cli.h"

typedef struct {
	const char *path;          /* a file, a directory, or "-" (stdin) */
	int fmt;                   /* IMPORT_AUTO, _CSV, _JSONL or _DIR */
	const char *product_line;  /* for records that name none; NULL: none */
	const char *region;        /* likewise */
	size_t batch;              /* records per call, 1..RECRES_MAX_RECORDS */
	int dry_run;               /* check the records here, send nothing */
} devimport_opts;

/*
 * Import o->path. Each refused record is reported on stderr with its file
 * and line (with --json, in the document on stdout), then the summary.
 * Returns CLI_EXIT_OK; CLI_EXIT_REFUSED when the import went to the end
 * but records were refused; or, after its message, the exit code of what
 * stopped it (the file cannot be read, a call failed), the summary then
 * saying how far it got.
 */
int devimport_run(cli *c, const devimport_opts *o);

#endif
