#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""testlog-counts.py TESTLOG.JSON [PREFIX]: count meson's results as "PASSED FAILED SKIPPED".

testlog.json holds one JSON object per test; its result is OK, FAIL, SKIP, TIMEOUT,
EXPECTEDFAIL, UNEXPECTEDPASS or ERROR. Every skipped test's own "SKIP: name: reason" line and
every failed test's name go to stderr (after PREFIX), so a skip is never silent in check.sh."""
import json
import sys

path = sys.argv[1]
prefix = sys.argv[2] if len(sys.argv) > 2 else ""
passed = failed = skipped = 0
with open(path, encoding="utf-8", errors="replace") as f:
    for line in f:
        if not line.strip():
            continue
        t = json.loads(line)
        r = t.get("result")
        name = t.get("name", "?")
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
            why = [l for l in (t.get("stdout") or "").splitlines() if l.startswith("SKIP:")]
            print(prefix + (why[-1] if why else f"SKIP: {name}: (no reason printed)"), file=sys.stderr)
        else:
            failed += 1
            print(f"{prefix}FAIL {name} ({r})", file=sys.stderr)
print(passed, failed, skipped)
