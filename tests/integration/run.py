#!/usr/bin/env python3
"""Runs bpftail's integration suites (tests/integration/**/test_*.py) against the real binary.

Usage: run.py --build BUILD_DIR [-k SUBSTRING] [--list]
Prints one line per test and, at the end, a table of scenarios that record one, then
"integration: N passed, N failed". A test that cannot run here (missing engine, no BPF)
fails with its reason: nothing is skipped silently.
"""
import argparse
import importlib.util
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lib  # noqa: E402


def discover():
    mods = []
    for dirpath, _, files in sorted(os.walk(HERE)):
        for f in sorted(files):
            if f.startswith("test_") and f.endswith(".py"):
                mods.append(os.path.join(dirpath, f))
    return mods


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("-k", default="")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    passed = failed = 0
    table = []
    for path in discover():
        name = os.path.relpath(path, HERE)[:-3].replace(os.sep, ".")
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except Exception:
            print("FAIL %s (import)\n%s" % (name, traceback.format_exc()), flush=True)
            failed += 1
            continue
        for fn in sorted(n for n in dir(mod) if n.startswith("test_")):
            full = "%s.%s" % (name, fn)
            if args.k and args.k not in full:
                continue
            if args.list:
                print(full)
                continue
            ctx = lib.Ctx(args.build)
            ctx.table = table
            t0 = time.monotonic()
            try:
                getattr(mod, fn)(ctx)
                passed += 1
                print("PASS %s (%.1fs)" % (full, time.monotonic() - t0), flush=True)
            except lib.Skip as e:
                failed += 1
                print("FAIL %s: cannot run here: %s" % (full, e), flush=True)
            except Exception:
                failed += 1
                print("FAIL %s (%.1fs)\n%s" % (full, time.monotonic() - t0, traceback.format_exc()),
                      flush=True)
            finally:
                ctx.cleanup()
    if table:
        print("\n%-44s %12s %12s %10s %8s" % ("scenario", "written", "received", "duplicates", "lost"))
        for row in table:
            print("%-44s %12d %12d %10d %8d" % tuple(row))
    print("integration: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
