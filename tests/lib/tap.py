"""A tiny TAP producer for the Python tests (counted by scripts/test)."""
import sys

_n = 0
_failed = 0


def ok(cond, what, diag=None):
    global _n, _failed
    _n += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (_n, what))
    if not cond:
        _failed += 1
        if diag is not None:
            for line in str(diag).splitlines():
                print("#   " + line)
    sys.stdout.flush()
    return cond


def eq(got, want, what, extra=None):
    d = "got %r, expected %r" % (got, want)
    if extra:
        d += "\n" + str(extra)
    return ok(got == want, what, d)


def skip(what, why):
    global _n
    _n += 1
    print("ok %d - %s # SKIP %s" % (_n, what, why))


def diag(msg):
    for line in str(msg).splitlines():
        print("# " + line)
    sys.stdout.flush()


def done():
    print("1..%d" % _n)
    sys.stdout.flush()
    return 1 if _failed else 0
