#!/usr/bin/python3
"""Count the TAP results of a meson test run and print the final
"N passed, N failed" line. Every "ok"/"not ok" line of every test program is
one test; a program that crashed, timed out or printed no TAP at all counts
as one failure on top of what it printed."""
import json
import re
import sys

OK = re.compile(r"^ok \d+")
NOT_OK = re.compile(r"^not ok \d+")


def main(path):
    passed = failed = skipped = 0
    bad = []
    with open(path) as f:
        for line in f:
            t = json.loads(line)
            out = t.get("stdout") or ""
            p = n = s = 0
            for l in out.splitlines():
                if NOT_OK.match(l):
                    n += 1
                elif OK.match(l):
                    if "# SKIP" in l:
                        s += 1
                    else:
                        p += 1
            result = t.get("result")
            if result not in ("OK", "SKIP", "EXPECTEDFAIL") and n == 0:
                n += 1
            if n:
                bad.append("%s (%s, %d failed)" % (t["name"], result, n))
            passed += p
            failed += n
            skipped += s
    for b in bad:
        print("FAILED: " + b)
    if skipped:
        print("%d skipped" % skipped)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
