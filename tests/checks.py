"""checks.py: a Python test's PASS and FAIL lines and its count of failures.

A test in tests/<area>/ puts tests/ on its path and imports it:

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from checks import ok, must
"""
import sys

failed = 0


def ok(cond, what):
    """Prints a PASS or FAIL line for what; counts the failures."""
    global failed
    print(("PASS: " if cond else "FAIL: ") + what)
    if not cond:
        failed += 1
    return cond


def must(cond, what):
    """ok(), and the test stops here (exit 1) when cond does not hold."""
    if not ok(cond, what):
        sys.exit(1)
