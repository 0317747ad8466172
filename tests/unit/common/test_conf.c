/*
 * Unit tests of common/conf.c: the INI format (sections, comments, quotes,
 * the implicit top-level section), load errors with their line numbers,
 * typed getters with ranges, unknown-key checks, ${name} expansion and
 * comma-separated lists.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "err.h"
#include "util.h"
#include "../../tap.h"

static const char *sample =
    "# a comment\n"
    "; another comment\n"
    "loglevel = info\n"
    "\n"
    "[signer]\n"
    "  socket   =   /run/secretfree/signer.sock   \n"
    "workers=4\n"
    "quoted = \"  keep my blanks  \"\n"
    "empty =\n"
    "hash = value # not a comment\n"
    "enabled = yes\n"
    "[product.widgiot]\n"
    "name = WidgIoT\n"
    "[product.gadget]\n"
    "[region.us-east-1.widgiot]\r\n"
    "ca = us-east-1.widgiot\r\n";

static void
test_basic(void)
{
	char err[256] = "";
	const char **names = NULL;
	conf *c = NULL;
	size_t n;

	is_int(conf_parse("sample", sample, &c, err, sizeof err), 0,
	    "sample parses");
	if (c == NULL) {
		tap_diag("%s", err);
		return;
	}
	is_str(conf_get(c, "", "loglevel"), "info", "top-level key in \"\"");
	is_str(conf_get(c, "signer", "socket"), "/run/secretfree/signer.sock",
	    "value trimmed on both sides");
	is_str(conf_get(c, "signer", "workers"), "4", "no blanks around =");
	is_str(conf_get(c, "signer", "quoted"), "  keep my blanks  ",
	    "quotes removed, inner blanks kept");
	is_str(conf_get(c, "signer", "empty"), "", "empty value");
	is_str(conf_get(c, "signer", "hash"), "value # not a comment",
	    "value runs to end of line");
	is_str(conf_get(c, "region.us-east-1.widgiot", "ca"),
	    "us-east-1.widgiot", "CRLF line endings, dotted section");
	ok(conf_get(c, "signer", "nope") == NULL, "absent key is NULL");
	ok(conf_get(c, "nope", "socket") == NULL, "absent section is NULL");
	ok(conf_get(c, "signer", "loglevel") == NULL,
	    "keys do not leak between sections");
	is_str(conf_get_str(c, "signer", "nope", "dflt"), "dflt",
	    "conf_get_str default");
	is_str(conf_get_str(c, "signer", "workers", "dflt"), "4",
	    "conf_get_str present");
	ok(conf_has_section(c, "product.gadget"), "empty section exists");
	ok(conf_has_section(c, ""), "top-level section exists");
	ok(!conf_has_section(c, "product"), "prefix is not a section");

	n = conf_sections(c, "product.", &names);
	is_int(n, 2, "two product sections");
	if (n == 2) {
		is_str(names[0], "product.widgiot", "file order 1");
		is_str(names[1], "product.gadget", "file order 2");
	}
	free(names);
	n = conf_sections(c, "zzz.", &names);
	is_int(n, 0, "no section with that prefix");
	ok(names == NULL, "names NULL when none");
	conf_free(c);
	conf_free(NULL);
}

/* Parse text expected to fail; return the message. */
static int
parse_fails(const char *text, const char *want, const char *what)
{
	char err[256] = "";
	conf *c = NULL;
	int rc = conf_parse("t.conf", text, &c, err, sizeof err);

	is_int(rc, SF_ECONFIG, "%s: SF_ECONFIG", what);
	ok(c == NULL, "%s: no conf returned", what);
	ok(strstr(err, want) != NULL, "%s: message has \"%s\"", what, want);
	if (strstr(err, want) == NULL)
		tap_diag("message: %s", err);
	conf_free(c);
	return rc;
}

static void
test_errors(void)
{
	parse_fails("[a]\nx = 1\ny = 2\nx = 3\n", "t.conf:4:",
	    "duplicate key line");
	parse_fails("[a]\nx = 1\ny = 2\nx = 3\n", "first at line 2",
	    "duplicate key first line");
	parse_fails("x = 1\nx = 1\n", "t.conf:2:", "duplicate top-level key");
	parse_fails("[a]\n[b]\n\n[a]\n", "t.conf:4: section [a] repeated",
	    "duplicate section");
	parse_fails("[a]\njust words\n", "t.conf:2:", "line without =");
	parse_fails("[a\n", "t.conf:1: malformed section", "unclosed header");
	parse_fails("[]\n", "t.conf:1:", "empty section name");
	parse_fails("[a b]\n", "t.conf:1:", "blank in section name");
	parse_fails("[a/b]\n", "t.conf:1:", "slash in section name");
	parse_fails("\n\n k.ey = 1\n", "t.conf:3:", "dot in key");
	parse_fails("= 1\n", "t.conf:1:", "no key");
	parse_fails("a = \"open\n", "t.conf:1: unterminated", "open quote");
	parse_fails("a = \"\n", "t.conf:1: unterminated", "lone quote");
}

static void
test_load(void)
{
	char dir[] = "/tmp/test_conf.XXXXXX", path[300], err[256] = "";
	const char *text = "[x]\nk = v\n";
	conf *c = NULL;

	if (mkdtemp(dir) == NULL) {
		tap_skip("mkdtemp failed");
		return;
	}
	snprintf(path, sizeof path, "%s/a.conf", dir);
	is_int(sf_write_file(path, text, strlen(text), 0600), 0, "write file");
	is_int(conf_load(path, &c, err, sizeof err), 0, "conf_load");
	is_str(conf_get(c, "x", "k"), "v", "loaded value");
	conf_free(c);
	c = NULL;

	text = "[x]\nk = v\nbad line\n";
	sf_write_file(path, text, strlen(text), 0600);
	is_int(conf_load(path, &c, err, sizeof err), SF_ECONFIG,
	    "bad file: SF_ECONFIG");
	ok(strncmp(err, path, strlen(path)) == 0, "message starts with the"
	    " path (%s)", err);
	ok(strstr(err, ":3:") != NULL, "message has the line (%s)", err);

	sf_write_file(path, "k = a\0b\n", 8, 0600);
	is_int(conf_load(path, &c, err, sizeof err), SF_ECONFIG,
	    "NUL byte in file: SF_ECONFIG");
	unlink(path);

	is_int(conf_load(path, &c, err, sizeof err), SF_EIO,
	    "missing file: SF_EIO");
	ok(c == NULL, "missing file: nothing returned");
	ok(strstr(err, path) != NULL, "message names the file");
	rmdir(dir);
}

static void
test_int_bool(void)
{
	const char *text =
	    "[n]\n"
	    "a = 42\n"
	    "neg = -7\n"
	    "plus = +3\n"
	    "big = 99999999999999999999999\n"
	    "hex = 0x10\n"
	    "junk = 12abc\n"
	    "blank = \" 5\"\n"
	    "empty =\n"
	    "y1 = yes\n"
	    "y2 = TRUE\n"
	    "y3 = On\n"
	    "y4 = 1\n"
	    "n1 = no\n"
	    "n2 = false\n"
	    "n3 = OFF\n"
	    "n4 = 0\n"
	    "maybe = maybe\n";
	char err[256] = "";
	long long v;
	conf *c = NULL;
	int b;

	if (conf_parse("n.conf", text, &c, err, sizeof err) != 0) {
		ok(0, "int/bool sample parses: %s", err);
		return;
	}
	is_int(conf_get_int(c, "n", "a", 0, 0, 100, &v, err, sizeof err), 0,
	    "int in range");
	is_int(v, 42, "int value");
	is_int(conf_get_int(c, "n", "neg", 0, -10, 10, &v, err, sizeof err),
	    0, "negative int");
	is_int(v, -7, "negative value");
	is_int(conf_get_int(c, "n", "plus", 0, 0, 10, &v, err, sizeof err),
	    0, "explicit +");
	is_int(v, 3, "plus value");
	is_int(conf_get_int(c, "n", "absent", 17, 0, 10, &v, err, sizeof err),
	    0, "absent: default");
	is_int(v, 17, "default returned as is");
	is_int(conf_get_int(c, "n", "a", 0, 0, 41, &v, err, sizeof err),
	    SF_ECONFIG, "above max");
	ok(strstr(err, "[n] a") != NULL, "message names section and key"
	    " (%s)", err);
	ok(strstr(err, "0..41") != NULL, "message names the range (%s)", err);
	ok(strstr(err, "n.conf:2:") != NULL, "message has file and line");
	is_int(conf_get_int(c, "n", "a", 0, 43, 100, &v, err, sizeof err),
	    SF_ECONFIG, "below min");
	is_int(conf_get_int(c, "n", "big", 0, 0, 10, &v, err, sizeof err),
	    SF_ECONFIG, "overflow");
	is_int(conf_get_int(c, "n", "hex", 0, 0, 100, &v, err, sizeof err),
	    SF_ECONFIG, "hex is not accepted");
	is_int(conf_get_int(c, "n", "junk", 0, 0, 100, &v, err, sizeof err),
	    SF_ECONFIG, "trailing junk");
	is_int(conf_get_int(c, "n", "blank", 0, 0, 100, &v, err, sizeof err),
	    SF_ECONFIG, "leading blank inside quotes");
	is_int(conf_get_int(c, "n", "empty", 0, 0, 100, &v, err, sizeof err),
	    SF_ECONFIG, "empty is not an integer");

	for (int i = 1; i <= 4; i++) {
		char k[8];

		snprintf(k, sizeof k, "y%d", i);
		b = -1;
		is_int(conf_get_bool(c, "n", k, 0, &b, err, sizeof err), 0,
		    "bool %s", k);
		is_int(b, 1, "bool %s is true", k);
		snprintf(k, sizeof k, "n%d", i);
		b = -1;
		is_int(conf_get_bool(c, "n", k, 1, &b, err, sizeof err), 0,
		    "bool %s", k);
		is_int(b, 0, "bool %s is false", k);
	}
	is_int(conf_get_bool(c, "n", "absent", 1, &b, err, sizeof err), 0,
	    "absent bool");
	is_int(b, 1, "absent bool: default");
	is_int(conf_get_bool(c, "n", "maybe", 1, &b, err, sizeof err),
	    SF_ECONFIG, "\"maybe\" is not a bool");
	ok(strstr(err, "maybe") != NULL, "bool message quotes the value");
	conf_free(c);
}

static void
test_check_keys(void)
{
	static const char *const allowed[] = { "socket", "workers", NULL };
	const char *text = "[s]\nsocket = x\n\nworkres = 4\n[t]\n";
	char err[256] = "";
	conf *c = NULL;

	if (conf_parse("k.conf", text, &c, err, sizeof err) != 0) {
		ok(0, "check_keys sample parses: %s", err);
		return;
	}
	is_int(conf_check_keys(c, "s", allowed, err, sizeof err), SF_ECONFIG,
	    "typo refused");
	ok(strstr(err, "k.conf:4:") != NULL, "message names the line (%s)",
	    err);
	ok(strstr(err, "workres") != NULL, "message names the key (%s)", err);
	is_int(conf_check_keys(c, "t", allowed, err, sizeof err), 0,
	    "empty section passes");
	is_int(conf_check_keys(c, "absent", allowed, err, sizeof err), 0,
	    "absent section passes");
	conf_free(c);
	c = NULL;
	conf_parse("k.conf", "[s]\nsocket = x\nworkers = 2\n", &c, err,
	    sizeof err);
	is_int(conf_check_keys(c, "s", allowed, err, sizeof err), 0,
	    "all keys known");
	conf_free(c);
}

static void
test_expand(void)
{
	static const char *const vars[] = {
		"region", "us-east-1", "pl", "widgiot", "empty", "", NULL,
	};
	char err[256] = "";
	char *s;

	s = conf_expand("issuing-${pl}-${region}-2026a", vars, err, sizeof err);
	is_str(s, "issuing-widgiot-us-east-1-2026a", "two variables");
	free(s);
	s = conf_expand("${region}.${pl}", vars, err, sizeof err);
	is_str(s, "us-east-1.widgiot", "variables at both ends");
	free(s);
	s = conf_expand("no vars, $ alone, $region", vars, err, sizeof err);
	is_str(s, "no vars, $ alone, $region", "lone $ is literal");
	free(s);
	s = conf_expand("a${empty}b", vars, err, sizeof err);
	is_str(s, "ab", "empty value");
	free(s);
	s = conf_expand("", vars, err, sizeof err);
	is_str(s, "", "empty template");
	free(s);
	s = conf_expand("x-${nope}-y", vars, err, sizeof err);
	ok(s == NULL, "unknown variable: NULL");
	ok(strstr(err, "${nope}") != NULL, "message names it (%s)", err);
	free(s);
	s = conf_expand("x-${region", vars, err, sizeof err);
	ok(s == NULL, "unterminated ${: NULL");
	free(s);
	s = conf_expand("${}", vars, err, sizeof err);
	ok(s == NULL, "empty name: NULL");
	free(s);
	s = conf_expand("${region}", NULL, err, sizeof err);
	ok(s == NULL, "no variables at all: NULL");
	free(s);
}

static void
test_lists(void)
{
	char **items = NULL;
	size_t n;

	n = conf_split_list(" a, b ,,c ,  ,\td e\t", &items);
	is_int(n, 4, "four items, empties dropped");
	if (n == 4) {
		is_str(items[0], "a", "item 0");
		is_str(items[1], "b", "item 1 trimmed");
		is_str(items[2], "c", "item 2");
		is_str(items[3], "d e", "inner blank kept");
	}
	conf_list_free(items, n);
	n = conf_split_list("", &items);
	is_int(n, 0, "empty string: no items");
	conf_list_free(items, n);
	n = conf_split_list(" , ,", &items);
	is_int(n, 0, "only separators: no items");
	conf_list_free(items, n);
	n = conf_split_list("single", &items);
	is_int(n, 1, "one item");
	if (n == 1)
		is_str(items[0], "single", "the item");
	conf_list_free(items, n);
	conf_list_free(NULL, 0);
}

int
main(void)
{
	test_basic();
	test_errors();
	test_load();
	test_int_bool();
	test_check_keys();
	test_expand();
	test_lists();
	return tap_done();
}
