#!/usr/bin/env python3
"""Writes docs/api/: one page per public header of include/recblocks/, made from the header itself.

A page holds the header's opening comment (what it computes, shapes, memory, errors, caveats) and its public
declarations: namespace-scope types, functions, concepts and aliases, and the public members of its classes, each
with the `///` comment written above or beside it. Bodies, private members and `detail` namespaces are left out.
The headers stay the single source: run this after changing one, and commit the pages
(ctest `api_reference_current` fails while a page is stale).

    python3 scripts/make_api_reference.py          # rewrite docs/api/
    python3 scripts/make_api_reference.py --check  # exit 1, naming the stale pages, if docs/api/ is not current
"""
from __future__ import annotations

import argparse
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
INCLUDE = ROOT / "include"
OUT = ROOT / "docs" / "api"

# Internal headers: kernels behind the dispatch table and explicit-instantiation units.
INTERNAL = (re.compile(r"^recblocks/backend/cpu/kernels/"), re.compile(r"dispatch_instantiate\.hpp$"))

ACCESS = re.compile(r"^\s*(public|private|protected)\s*:")
TYPE_HEAD = re.compile(r"^\s*(?:template\s*<.*>\s*)?(class|struct|union)\s+(?:\[\[[^\]]*\]\]\s*)?([A-Za-z_]\w*)")
ENUM_HEAD = re.compile(r"^\s*enum\s+(?:class\s+|struct\s+)?([A-Za-z_]\w*)")
NAMESPACE = re.compile(r"^\s*(?:inline\s+)?namespace\s*([A-Za-z_:\w]*)\s*\{")
SKIP_LINE = re.compile(r"^\s*(#|RECBLOCKS_NAMESPACE_(BEGIN|END)|static_assert|friend\b|using\s+namespace\b)")


def strip_code(line: str) -> str:
    """The line without string/char literals and comments (to count braces and parentheses)."""
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])*'", "''", line)
    return line.split("//", 1)[0]


def opening_comment(lines: list[str]) -> list[str]:
    out, started = [], False
    for line in lines:
        s = line.strip()
        if s.startswith("#pragma"):
            continue
        if s.startswith("//"):
            started = True
            out.append(re.sub(r"^//+ ?", "", s))
        elif started or s:
            break
    while out and not out[-1].strip():
        out.pop()
    return out


def clean_declaration(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s*\{\s*$", "", text)
    # constructors: drop the member-initialiser list
    m = re.search(r"\)\s*((?:const|noexcept|override|final|\s)*)\s*:\s*[A-Za-z_]\w*[({]", text)
    if m and not re.match(r"^\s*(?:template\s*<.*>\s*)?(class|struct|enum)\b", text):
        text = text[: m.start() + 1] + (" " + m.group(1).strip() if m.group(1).strip() else "")
    return text.rstrip(" ;") + ";"


class Scope:
    def __init__(self, kind: str, name: str = "", access: str = "public", shown: bool = False):
        self.kind, self.name, self.access, self.shown = kind, name, access, shown


def type_head(head: str):
    """(keyword, name) when the statement head opens a class, struct or union definition."""
    m = TYPE_HEAD.match(head)
    if not m:
        return None
    after = head[m.end():]
    if "(" in after.split(":")[0]:  # a function returning a struct, not a definition
        return None
    return m.group(1), m.group(2)


def declarations(lines: list[str]):
    """Yields (depth, comment lines, text) for the header's public declarations, in order; a class or enum
    is printed open ("struct X {"), its public members indented, then "};"."""
    stack: list[Scope] = []
    doc: list[str] = []
    i, n = 0, len(lines)

    def visible() -> bool:
        return all(not (s.kind in ("detail", "block") or (s.kind == "type" and s.access != "public")
                        or (s.kind in ("type", "enum") and not s.shown)) for s in stack)

    def depth() -> int:
        return sum(1 for s in stack if s.kind in ("type", "enum"))

    def close_scopes(code: str):
        for ch in code:
            if ch == "{":
                stack.append(Scope("block"))
            elif ch == "}" and stack:
                top = stack.pop()
                if top.kind in ("type", "enum") and top.shown:
                    yield depth(), [], "};"

    while i < n:
        s = lines[i].strip()
        if s.startswith("///") and not s.startswith("///<"):
            doc.append(re.sub(r"^///\s?", "", s))
            i += 1
            continue
        if not s or s.startswith("//"):
            if not s:
                doc = []
            i += 1
            continue
        if SKIP_LINE.match(s):
            while i < n and lines[i].rstrip().endswith("\\"):
                i += 1
            doc = []
            i += 1
            continue
        if stack and stack[-1].kind == "block":  # inside a body: only track braces
            yield from close_scopes(strip_code(lines[i]))
            doc = []
            i += 1
            continue
        m = ACCESS.match(s)
        if m and stack and stack[-1].kind == "type":
            stack[-1].access = m.group(1)
            doc = []
            i += 1
            continue
        ns = NAMESPACE.match(s)
        if ns:
            name = ns.group(1)
            stack.append(Scope("detail" if (name == "" or name.endswith("detail")) else "namespace", name))
            doc = []
            i += 1
            continue
        if stack and stack[-1].kind == "enum":  # enumerators, one per line
            code = strip_code(lines[i])
            trailing = re.search(r"///<\s?(.*)$", lines[i])
            item = code.split("}")[0].strip().rstrip(",").strip()
            if item and visible():
                yield depth(), doc + ([trailing.group(1).strip()] if trailing else []), item + ","
            doc = []
            if "}" in code:
                yield from close_scopes(code[code.index("}"):])
            i += 1
            continue
        if s.startswith("}"):
            yield from close_scopes(strip_code(lines[i]))
            doc = []
            i += 1
            continue

        # One statement head: up to the first "{" or ";" outside parentheses.
        text, paren, braces, end_char = "", 0, 0, None
        while i < n:
            code = strip_code(lines[i])
            for pos, ch in enumerate(code):
                is_concept = re.search(r"\bconcept\b", text) is not None  # its requires-body is part of it
                if ch == "(":
                    paren += 1
                elif ch == ")":
                    paren -= 1
                elif is_concept and ch in "{}":
                    braces += 1 if ch == "{" else -1
                elif ch in "{;" and paren <= 0 and braces == 0:
                    end_char = ch
                    break
                text += ch
            text += " "
            if end_char:
                break
            i += 1
        if i >= n:
            break
        head = re.sub(r"\s+", " ", text).strip()
        trailing = re.search(r"///<\s?(.*)$", lines[i])
        full_doc = doc + ([trailing.group(1).strip()] if trailing else [])
        doc = []
        code = strip_code(lines[i])
        rest = code[code.index(end_char) + 1:]
        show = visible() and head and not re.match(r"^(return|if|for|while|do|else|case)\b", head)
        th = type_head(head) if end_char == "{" else None
        if th:
            kind, name = th
            if show:
                yield depth(), full_doc, clean_declaration(head) .rstrip(";") + " {"
            stack.append(Scope("type", name, "private" if kind == "class" else "public", shown=bool(show)))
        elif end_char == "{" and ENUM_HEAD.match(head):
            if show:
                yield depth(), full_doc, clean_declaration(head).rstrip(";") + " {"
            stack.append(Scope("enum", shown=bool(show)))
            # enumerators written on the same line as the brace
            inline = rest.split("}")[0].strip()
            if inline and show:
                for item in [x.strip() for x in inline.split(",") if x.strip()]:
                    yield depth(), [], item + ","
            if "}" in rest:
                yield from close_scopes(rest[rest.index("}"):])
            i += 1
            continue
        else:
            if show and not re.search(r"\boperator\s*=\s*\(", head):
                yield depth(), full_doc, clean_declaration(head)
            if end_char == "{":
                stack.append(Scope("block"))
        yield from close_scopes(rest)
        i += 1


def split_template(decl: str) -> list[str]:
    """'template <...> requires C void f(...)' as three lines: template, requires clause, declaration."""
    parts = []
    if decl.startswith("template"):
        depth = 0
        for k, ch in enumerate(decl):
            if ch == "<":
                depth += 1
            elif ch == ">":
                depth -= 1
                if depth == 0:
                    parts.append(decl[: k + 1])
                    decl = decl[k + 1:].strip()
                    break
    if re.match(r"^requires\b", decl):
        depth = 0
        for k in range(len("requires"), len(decl)):
            ch = decl[k]
            if ch in "<(":
                depth += 1
            elif ch in ">)":
                depth -= 1
            elif ch == " " and depth == 0 and k > len("requires") and not decl[k + 1:].startswith(("&&", "||")) \
                    and not decl[k - 2:k] in ("&&", "||"):
                parts.append(decl[:k])
                decl = decl[k + 1:].strip()
                break
    return parts + [decl]


def page(rel: str, text: str) -> str:
    lines = text.splitlines()
    out = [f"# `{rel}`", "", f"`#include <{rel}>`", ""]
    intro = opening_comment(lines)
    if intro:
        out += ["```text", *intro, "```", ""]
    decls = list(declarations(lines))
    if decls:
        out += ["## Declarations", "", "```cpp"]
        for depth, doc, decl in decls:
            pad = "    " * depth
            if decl == "};" and out[-1].endswith("{"):  # a type without public members
                out[-1] = out[-1][:-2] + ";"
                continue
            for d in doc:
                out.append(f"{pad}/// {d}".rstrip())
            for k, part in enumerate(split_template(decl)):
                out.append(pad + ("    " if k and part.startswith("requires") else "") + part)
        out += ["```", ""]
    return "\n".join(out).rstrip() + "\n"


def public_headers() -> list[pathlib.Path]:
    heads = []
    for p in sorted(INCLUDE.rglob("*.hpp")):
        rel = p.relative_to(INCLUDE).as_posix()
        if any(r.search(rel) for r in INTERNAL):
            continue
        heads.append(p)
    return heads


def render() -> dict[pathlib.Path, str]:
    pages: dict[pathlib.Path, str] = {}
    index = ["# API reference", "",
             "One page per public header, made from the header by `scripts/make_api_reference.py`: its opening "
             "comment and its public declarations with their comments. The guides (models.md, retrieval.md, ...) "
             "explain how the pieces fit; these pages list what each header offers.", ""]
    folder = None
    for p in public_headers():
        rel = p.relative_to(INCLUDE).as_posix()
        name = rel[len("recblocks/"):]
        top = name.split("/")[0] if "/" in name else "(top level)"
        if top != folder:
            folder = top
            index += ["", f"## {folder}", ""]
        md = pathlib.Path(name).with_suffix(".md")
        pages[OUT / md] = page(rel, p.read_text(encoding="utf-8"))
        intro = opening_comment(p.read_text(encoding="utf-8").splitlines())
        para = []
        for line in intro:
            if not line.strip():
                break
            para.append(line.strip())
        first = re.split(r"(?<=\.)\s", " ".join(para))[0] if para else ""
        if len(first) > 160:
            first = first[:157].rsplit(" ", 1)[0] + " …"
        index.append(f"- [`{name}`]({md.as_posix()}){' — ' + first if first else ''}")
    pages[OUT / "README.md"] = "\n".join(index).rstrip() + "\n"
    return pages


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    pages = render()
    existing = {p for p in OUT.rglob("*.md")} if OUT.exists() else set()
    if args.check:
        stale = [p for p, t in pages.items() if not p.exists() or p.read_text(encoding="utf-8") != t]
        stale += sorted(existing - set(pages))
        for p in stale:
            print(f"stale: {p.relative_to(ROOT)}", file=sys.stderr)
        if stale:
            print("docs/api/ is out of date: run python3 scripts/make_api_reference.py", file=sys.stderr)
        return 1 if stale else 0
    for p in existing - set(pages):
        p.unlink()
    for p, t in pages.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        if not p.exists() or p.read_text(encoding="utf-8") != t:
            p.write_text(t, encoding="utf-8")
    print(f"wrote {len(pages)} pages under {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
