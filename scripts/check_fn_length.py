#!/usr/bin/env python3
"""Prints every Rust function longer than LIMIT lines outside tests and examples; exits 1 if any.

    python3 scripts/check_fn_length.py DIR LIMIT

Reads the .rs files under DIR, skipping tests/, examples/, benches/ and target/ folders and
`#[cfg(test)]` items. A function's length runs from the line of its `fn` to the line of the `}`
closing its body, both counted; functions nested in a body are measured on their own too
(and still count toward the outer one). Longest first, as `131 lines  path:line  name`.
"""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rustsrc  # noqa: E402

SKIPPED_DIRS = {"tests", "examples", "benches", "target"}


def functions(tokens):
    """[(name, first line, last line)] of each function with a body in the tokens."""
    found = []
    for i, (kind, text, line) in enumerate(tokens):
        if kind != "ident" or text != "fn" or i + 1 >= len(tokens) or tokens[i + 1][0] != "ident":
            continue
        j = i + 2
        while j < len(tokens):  # the signature: up to `;` (no body) or the body's `{`
            t = tokens[j][1]
            if tokens[j][0] == "punct" and t in "([":
                j = rustsrc.matching(tokens, j) + 1
            elif tokens[j][0] == "punct" and t in ";{":
                break
            else:
                j += 1
        if j < len(tokens) and tokens[j][1] == "{":
            end = rustsrc.matching(tokens, j)
            last = tokens[min(end, len(tokens) - 1)][2]
            found.append((tokens[i + 1][1], line, last))
    return found


def main(argv):
    if len(argv) != 2 or not argv[1].isdigit():
        print(__doc__.strip(), file=sys.stderr)
        return 2
    root, limit = argv[0], int(argv[1])
    long = []
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in SKIPPED_DIRS)
        for f in sorted(files):
            if not f.endswith(".rs"):
                continue
            path = os.path.join(d, f)
            tokens = rustsrc.drop_cfg_test(rustsrc.read_tokens(path))
            for name, first, last in functions(tokens):
                n = last - first + 1
                if n > limit:
                    long.append((n, path, first, name))
    for n, path, line, name in sorted(long, key=lambda x: (-x[0], x[1], x[2])):
        print(f"{n:4d} lines  {path}:{line}  {name}")
    return 1 if long else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
