"""Reads Rust source into tokens for the code-health checks (check_modules.py, check_fn_length.py).

Python 3 stdlib only. Not a Rust parser: a tokenizer that knows comments, string, byte, raw-string
and char literals apart from lifetimes, so braces and paths inside them are never seen, plus the
one structural step both checks need: dropping `#[cfg(test)]` items.
"""

import re

# A token is (kind, text, line): kind "ident" (keywords included), "lit" (a string, char or
# number literal; its text is not kept) or "punct" ("::" is one token, every other punctuation
# character is its own token); line is 1-based.

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9][0-9A-Za-z_]*(\.[0-9][0-9A-Za-z_]*)?")
_RAW_STRING = re.compile(r'(?:b|c)?r(#*)"')


def tokenize(text):
    """Returns the tokens of one Rust file (see above); comments and literals' contents dropped."""
    tokens = []
    i, line, n = 0, 1, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            line += text.count("\n", i, j)
            i = j
        elif _RAW_STRING.match(text, i) and not _ident_before(text, i):
            m = _RAW_STRING.match(text, i)
            close = '"' + m.group(1)
            j = text.find(close, m.end())
            j = n if j < 0 else j + len(close)
            tokens.append(("lit", "", line))
            line += text.count("\n", i, j)
            i = j
        elif c == '"' or (c in "bc" and text.startswith('"', i + 1) and not _ident_before(text, i)):
            j = i + (1 if c == '"' else 2)
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            tokens.append(("lit", "", line))
            line += text.count("\n", i, j)
            i = j + 1
        elif c == "'" or (c == "b" and text.startswith("'", i + 1) and not _ident_before(text, i)):
            q = i if c == "'" else i + 1
            if text.startswith("\\", q + 1):  # '\n', '\'', '\u{..}'
                j = q + 3
                while j < n and text[j] != "'":
                    j += 1
                tokens.append(("lit", "", line))
                i = j + 1
            elif q + 2 < n and text[q + 2] == "'":  # 'x'
                tokens.append(("lit", "", line))
                i = q + 3
            else:  # a lifetime or label: 'a
                m = _IDENT.match(text, q + 1)
                tokens.append(("punct", "'", line))
                i = q + 1 if m is None else m.end()
        elif _IDENT.match(text, i):
            m = _IDENT.match(text, i)
            tokens.append(("ident", m.group(), line))
            i = m.end()
        elif c.isdigit():
            m = _NUMBER.match(text, i)
            tokens.append(("lit", "", line))
            i = m.end()
        elif text.startswith("::", i):
            tokens.append(("punct", "::", line))
            i += 2
        else:
            tokens.append(("punct", c, line))
            i += 1
    return tokens


def _ident_before(text, i):
    """Whether text[i] continues an identifier (so `br"..."` is not read inside `abr"`)."""
    return i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")


def read_tokens(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return tokenize(f.read())


def matching(tokens, i):
    """Index of the bracket closing the one at tokens[i] ("{", "(" or "["); len(tokens) if none."""
    opens, closes = "{([", "})]"
    depth = 0
    for j in range(i, len(tokens)):
        kind, text, _ = tokens[j]
        if kind != "punct":
            continue
        if text in opens:
            depth += 1
        elif text in closes:
            depth -= 1
            if depth == 0:
                return j
    return len(tokens)


def _is_cfg_test(tokens, i):
    """Whether an attribute starting at tokens[i] ("#") is #[cfg(test)] or #[cfg(all(test, ..))]."""
    if i + 4 >= len(tokens) or tokens[i + 1][1] != "[" or tokens[i + 2][1] != "cfg":
        return False
    end = matching(tokens, i + 1)
    inner = [t[1] for t in tokens[i + 3 : end]]
    # `test` as a predicate, not under not(..) or any(..): cfg(test) and cfg(all(test, ..))
    return "test" in inner and "not" not in inner and "any" not in inner


def item_end(tokens, i):
    """Index just past the item starting at tokens[i] (after its attributes): up to its `;` or
    the `}` closing its body, whichever comes first outside brackets."""
    j, is_use = i, False
    while j < len(tokens):
        kind, text, _ = tokens[j]
        if kind == "punct" and text in "([":
            j = matching(tokens, j) + 1
            continue
        if kind == "ident" and text == "use":
            is_use = True
        if kind == "punct" and text == ";":
            return j + 1
        if kind == "punct" and text == "{":
            if is_use:  # a use tree's braces; the item ends at its `;`
                j = matching(tokens, j) + 1
                continue
            return matching(tokens, j) + 1
        j += 1
    return len(tokens)


def drop_cfg_test(tokens):
    """The tokens without any item marked #[cfg(test)] (test modules, test-only helpers and uses)."""
    out, i = [], 0
    while i < len(tokens):
        if tokens[i][1] == "#" and _is_cfg_test(tokens, i):
            j = matching(tokens, i + 1) + 1
            while j < len(tokens) and tokens[j][1] == "#":  # further attributes of the same item
                j = matching(tokens, j + 1) + 1
            i = item_end(tokens, j)
            continue
        out.append(tokens[i])
        i += 1
    return out
