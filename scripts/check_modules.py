#!/usr/bin/env python3
"""Prints every cycle in the module imports inside each crate under crates/*/src; exits 1 if any.

    python3 scripts/check_modules.py [CRATES_DIR] [-v]

A module is a .rs file (a folder's mod.rs is the folder's module), found from src/lib.rs,
src/main.rs and src/bin/ through `mod` declarations; `#[cfg(test)]` items are left out, and
tests/, examples/ and benches/ are never read. A module imports another when its code names a
`crate::`, `$crate::` or `super::` path (in a `use` or anywhere else) that leads into it; the path
is followed through the `use` re-exports on its way, so `crate::DataError` counts as an import of
the module that defines `DataError` (error.rs), not of lib.rs. `mod` declarations are not imports:
a parent declaring a child is no cycle, but a child using its parent's items (`super::x`,
`crate::parent::x`) imports the parent. Paths that name neither `crate` nor `super` (a parent's
`pub use child::X`) are not counted.

Each cycle is printed once, from its alphabetically first module, as
`tuna-data: jsonl -> read -> jsonl`; -v adds, under each cycle, where each import is written.
"""

import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rustsrc  # noqa: E402

MAX_CYCLES_PER_GROUP = 200


class Crate:
    """The modules of one crate root (lib.rs, main.rs or a bin) and the imports between them."""

    def __init__(self, label, root_file):
        self.label = label
        self.files = {}  # module path (tuple) -> file, for file modules
        self.scopes = set()  # every module path, file and inline (`mod x { .. }`) modules
        self.uses = {}  # scope -> {name: (scope, segments)} from its `use` items
        self.paths = []  # (scope, segments, file, line) for each crate::/super:: path
        self._read_module((), root_file, mod_rs=True)

    # --- reading ---------------------------------------------------------------------------

    def _read_module(self, path, file, mod_rs):
        self.files[path] = file
        self.scopes.add(path)
        tokens = rustsrc.drop_cfg_test(rustsrc.read_tokens(file))
        # where this file's `mod x;` children live: beside lib.rs/main.rs/mod.rs, else in a.rs's a/
        child_dir = os.path.dirname(file)
        if not mod_rs:
            child_dir = os.path.join(child_dir, os.path.splitext(os.path.basename(file))[0])
        self._read_tokens(tokens, path, path, child_dir)

    def _read_tokens(self, tokens, file_path, scope, child_dir):
        file = self.files[file_path]
        i = 0
        while i < len(tokens):
            kind, text, line = tokens[i]
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ("", "", 0)
            after = tokens[i + 2] if i + 2 < len(tokens) else ("", "", 0)
            if kind == "ident" and text == "mod" and nxt[0] == "ident":
                if after[1] == ";":
                    self._declare_child(scope + (nxt[1],), child_dir, nxt[1], file, line)
                    i += 3
                    continue
                if after[1] == "{":
                    end = rustsrc.matching(tokens, i + 2)
                    inner = scope + (nxt[1],)
                    self.scopes.add(inner)
                    self._read_tokens(
                        tokens[i + 3 : end], file_path, inner, os.path.join(child_dir, nxt[1])
                    )
                    i = end + 1
                    continue
            if kind == "ident" and text == "use":
                end = i + 1
                while end < len(tokens) and tokens[end][1] != ";":
                    end += 1
                for segs, name in _use_tree(tokens[i + 1 : end]):
                    if name != "*":
                        self.uses.setdefault(scope, {})[name] = (scope, segs)
                    if segs and segs[0] in ("crate", "$crate", "super"):
                        self.paths.append((scope, segs, file, line))
                i = end + 1
                continue
            if kind == "ident" and text in ("crate", "super") and nxt[1] == "::" and not _in_visibility(tokens, i):
                starts_path = i == 0 or tokens[i - 1][1] != "::"
                if starts_path:
                    segs = ["$crate" if i > 0 and tokens[i - 1][1] == "$" else text]
                    j = i + 1
                    while j + 1 < len(tokens) and tokens[j][1] == "::" and tokens[j + 1][0] == "ident":
                        segs.append(tokens[j + 1][1])
                        j += 2
                    self.paths.append((scope, segs, file, line))
                    i = j
                    continue
            i += 1

    def _declare_child(self, path, child_dir, name, parent_file, line):
        for candidate, mod_rs in (
            (os.path.join(child_dir, name + ".rs"), False),
            (os.path.join(child_dir, name, "mod.rs"), True),
        ):
            if os.path.isfile(candidate):
                self._read_module(path, candidate, mod_rs)
                return
        print(f"{parent_file}:{line}: no file for `mod {name};`", file=sys.stderr)

    # --- resolving -------------------------------------------------------------------------

    def resolve(self, scope, segs, depth=0):
        """The module path that a path written in `scope` leads to; None if it leaves the crate."""
        if depth > 20 or not segs:
            return None
        head, rest = segs[0], list(segs[1:])
        if head in ("crate", "$crate"):
            base = ()
        elif head in ("super", "self"):
            base = scope
            while head in ("super", "self"):
                if head == "super":
                    if not base:
                        return None
                    base = base[:-1]
                if not rest:
                    return base
                head, rest = rest[0], rest[1:]
            rest = [head] + rest
        elif scope + (head,) in self.scopes:
            base = scope
            rest = list(segs)
        elif head in self.uses.get(scope, {}):
            use_scope, use_segs = self.uses[scope][head]
            return self.resolve(use_scope, list(use_segs) + rest, depth + 1)
        else:
            return None  # another crate, std, or an item of this module
        return self._walk(base, rest, depth)

    def _walk(self, module, segs, depth):
        for k, seg in enumerate(segs):
            if module + (seg,) in self.scopes:
                module = module + (seg,)
                continue
            reexport = self.uses.get(module, {}).get(seg)
            if reexport is not None:
                target = self.resolve(reexport[0], list(reexport[1]) + list(segs[k + 1 :]), depth + 1)
                return module if target is None else target
            return module  # an item defined in `module`
        return module

    def file_module(self, scope):
        while scope not in self.files:
            scope = scope[:-1]
        return scope

    def imports(self):
        """{(from, to): [(file, line, path text)]} between distinct file modules."""
        edges = {}
        for scope, segs, file, line in self.paths:
            target = self.resolve(scope, segs)
            if target is None:
                continue
            src, dst = self.file_module(scope), self.file_module(target)
            if src != dst:
                edges.setdefault((src, dst), []).append((file, line, "::".join(segs)))
        return edges


def _in_visibility(tokens, i):
    """Whether tokens[i] is the path of `pub(in crate::x)`, which restricts but imports nothing."""
    return i >= 3 and tokens[i - 1][1] == "in" and tokens[i - 2][1] == "(" and tokens[i - 3][1] == "pub"


def _use_tree(tokens):
    """[(segments, name)] for each leaf of a use tree (the tokens between `use` and `;`); name is
    what the leaf is called in scope (its alias, its last segment) or "*" for a glob."""
    leaves = []

    def tree(i, prefix):
        segs = list(prefix)
        while i < len(tokens):
            kind, text, _ = tokens[i]
            if text == "::":
                i += 1
            elif text == "$" and i + 1 < len(tokens):  # $crate
                segs.append("$" + tokens[i + 1][1])
                i += 2
            elif kind == "ident" and text == "as":
                leaves.append((segs, tokens[i + 1][1]))
                return i + 2
            elif kind == "ident":
                if text == "self" and segs:  # `a::{self, b}` names `a` itself
                    i += 1
                    continue
                segs.append(text)
                i += 1
            elif text == "*":
                leaves.append((segs, "*"))
                return i + 1
            elif text == "{":
                i += 1
                while i < len(tokens) and tokens[i][1] != "}":
                    i = tree(i, segs)
                    if i < len(tokens) and tokens[i][1] == ",":
                        i += 1
                return i + 1
            else:
                break
        if segs:
            leaves.append((segs, segs[-1]))
        return i

    tree(0, [])
    return leaves


def _cycles(edges):
    """Every elementary cycle of the graph {(a, b)}, each once, as [a, .., a] from its least node."""
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    found = []
    for start in sorted(graph, key=_name):
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ()), key=_name, reverse=True):
                if nxt == start:
                    found.append(path + [start])
                elif _name(nxt) > _name(start) and nxt not in path:
                    stack.append((nxt, path + [nxt]))
            if len(found) > MAX_CYCLES_PER_GROUP * 10:
                return found
    return sorted(found, key=lambda c: [_name(m) for m in c])


def _name(module):
    return "::".join(module) if module else "crate"


def _crate_roots(crate_dir):
    """[(label, root file)] for a crate: its lib.rs, main.rs and src/bin targets."""
    name = os.path.basename(crate_dir)
    manifest = os.path.join(crate_dir, "Cargo.toml")
    if os.path.isfile(manifest):
        with open(manifest, encoding="utf-8") as f:
            m = re.search(r'^\[package\][^\[]*?^name\s*=\s*"([^"]+)"', f.read(), re.M | re.S)
        if m:
            name = m.group(1)
    src = os.path.join(crate_dir, "src")
    roots = []
    if os.path.isfile(os.path.join(src, "lib.rs")):
        roots.append((name, os.path.join(src, "lib.rs")))
    if os.path.isfile(os.path.join(src, "main.rs")):
        roots.append((f"{name} (bin)" if roots else name, os.path.join(src, "main.rs")))
    bin_dir = os.path.join(src, "bin")
    if os.path.isdir(bin_dir):
        for entry in sorted(os.listdir(bin_dir)):
            path = os.path.join(bin_dir, entry)
            if entry.endswith(".rs"):
                roots.append((f"{name} (bin {entry[:-3]})", path))
            elif os.path.isfile(os.path.join(path, "main.rs")):
                roots.append((f"{name} (bin {entry})", os.path.join(path, "main.rs")))
    return roots


def main(argv):
    verbose = "-v" in argv
    args = [a for a in argv if a != "-v"]
    crates_dir = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates")
    crates_dir = os.path.normpath(crates_dir)
    total = 0
    for entry in sorted(os.listdir(crates_dir)):
        crate_dir = os.path.join(crates_dir, entry)
        if not os.path.isdir(os.path.join(crate_dir, "src")):
            continue
        for label, root in _crate_roots(crate_dir):
            crate = Crate(label, root)
            edges = crate.imports()
            cycles = _cycles(edges)
            for cycle in cycles[:MAX_CYCLES_PER_GROUP]:
                print(f"{label}: " + " -> ".join(_name(m) for m in cycle))
                if verbose:
                    for a, b in zip(cycle, cycle[1:]):
                        for file, line, text in edges[(a, b)]:
                            print(f"    {_name(a)} -> {_name(b)}: {os.path.relpath(file)}:{line} {text}")
            if len(cycles) > MAX_CYCLES_PER_GROUP:
                print(f"{label}: ... and {len(cycles) - MAX_CYCLES_PER_GROUP} more cycles")
            total += len(cycles)
    if total:
        print(f"{total} module cycle{'s' if total != 1 else ''}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
