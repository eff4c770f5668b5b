#!/usr/bin/env python3
"""Checks that no file under src/ includes a header of a higher layer, and that each third-party
API is included only where docs/architecture.md allows it.

The rules are read from docs/architecture.md, from its ```layers and ```third-party blocks, so
they are written once. Usage: check_layers.py [REPO_ROOT]. Exit 0 when the tree obeys them,
1 with one line per violation otherwise, 2 when the rules cannot be read.
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def read_block(doc, name):
    m = re.search(r"^```%s\n(.*?)^```" % re.escape(name), doc, re.M | re.S)
    if not m:
        raise ValueError("docs/architecture.md has no ```%s block" % name)
    rules = {}
    for line in m.group(1).splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        key, _, rest = line.partition(":")
        rules[key.strip()] = rest.split()
    return rules


def check(root):
    with open(os.path.join(root, "docs", "architecture.md")) as f:
        doc = f.read()
    layers = read_block(doc, "layers")
    third = read_block(doc, "third-party")
    src = os.path.join(root, "src")
    problems = []
    seen_layers = set()
    for dirpath, _, files in sorted(os.walk(src)):
        for name in sorted(files):
            if not name.endswith((".c", ".cc", ".h")):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, src)
            parts = rel.split(os.sep)
            if len(parts) != 2:
                problems.append("%s: every source file lives in exactly one layer folder" % rel)
                continue
            layer = parts[0]
            seen_layers.add(layer)
            if layer not in layers:
                problems.append("%s: layer %r has no rule in docs/architecture.md" % (rel, layer))
                continue
            with open(path, errors="replace") as f:
                for no, text in enumerate(f, 1):
                    m = INCLUDE.match(text)
                    if not m:
                        continue
                    kind, inc = m.groups()
                    if kind == '"' and "/" in inc and inc.split("/")[0] in layers:
                        to = inc.split("/")[0]
                        if to not in layers[layer]:
                            problems.append("%s:%d: %s includes %s: layer %s may include only %s"
                                            % (rel, no, layer, inc, layer, " ".join(layers[layer])))
                    elif kind == '"' and "/" not in inc and inc not in GENERATED:
                        problems.append("%s:%d: include %s by its layer path (\"layer/%s\")"
                                        % (rel, no, inc, inc))
                    if inc in third and rel not in third[inc]:
                        problems.append("%s:%d: %s is kept behind %s" % (rel, no, inc,
                                                                         " ".join(third[inc])))
    for layer in layers:
        if layer not in seen_layers:
            problems.append("docs/architecture.md names layer %r, which has no folder" % layer)
    return problems


# Headers generated into the build tree or shared with the BPF program.
GENERATED = {"push.pb-c.h", "logentry.pb-c.h", "file_events.h", "file_events.skel.h"}

def selftest():
    """The checker must fail on an upward include and on a misplaced third-party include."""
    import shutil
    import tempfile
    tmp = tempfile.mkdtemp(prefix="bt-layers-")
    try:
        os.makedirs(os.path.join(tmp, "docs"))
        with open(os.path.join(tmp, "docs", "architecture.md"), "w") as f:
            f.write("```layers\nutil: util\ncore: core util\n```\n"
                    "```third-party\nyaml.h: core/conf.c\n```\n")
        for layer, name, body in (("util", "a.h", '#include "core/b.h"\n'),
                                  ("core", "b.h", '#include "util/a.h"\n#include <yaml.h>\n')):
            os.makedirs(os.path.join(tmp, "src", layer), exist_ok=True)
            with open(os.path.join(tmp, "src", layer, name), "w") as f:
                f.write(body)
        got = check(tmp)
        want = ["util/a.h:1: util includes core/b.h", "core/b.h:2: yaml.h is kept behind core/conf.c"]
        for w in want:
            if not any(p.startswith(w) for p in got):
                print("selftest: expected a violation %r, got %r" % (w, got))
                return False
        return len(got) == len(want)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if not selftest():
        print("check_layers: selftest failed: the checker would miss violations")
        sys.exit(2)
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        problems = check(root)
    except (OSError, ValueError) as e:
        print("check_layers: %s" % e)
        sys.exit(2)
    for p in problems:
        print(p)
    print("layers: %s" % ("ok" if not problems else "%d violations" % len(problems)))
    sys.exit(1 if problems else 0)
