#!/usr/bin/env python3
"""Re-points `[`name`](path#Lnn)` links in README.md and docs/ at the line where `name`
is now defined, after code moved. Prints what it changed and what it could not find
(those need a human: the name is gone or renamed). Run from the repository root; the
check it satisfies is tests/docs.rs `links_to_a_named_line_land_near_that_name`."""
import pathlib
import re
import sys

LINK = re.compile(r"\[`([^`]+)`\]\(([^)#]+)#L(\d+)(?:-L?(\d+))?\)")
NEAR = 20


def bare_name(label):
    for prefix in ("fn ", "const "):
        if label.startswith(prefix):
            label = label[len(prefix):]
    return label.split("(")[0].rsplit("::", 1)[-1]


def definition_line(lines, name):
    pattern = re.compile(
        r"\b(fn|struct|enum|const|static|type|trait|mod|impl(<[^>]*>)?)\s+" + re.escape(name) + r"\b"
    )
    for i, line in enumerate(lines):
        if pattern.search(line):
            return i + 1
    for i, line in enumerate(lines):
        if re.search(r"\b" + re.escape(name) + r"\b", line):
            return i + 1
    return None


def main():
    root = pathlib.Path(".")
    files = [root / "README.md"] + sorted(root.glob("docs/**/*.md"))
    unresolved = []
    for md in files:
        text = md.read_text()

        def fix(m):
            label, target, start, end = m.group(1), m.group(2), int(m.group(3)), m.group(4)
            name = bare_name(label)
            code_path = (md.parent / target)
            if not re.fullmatch(r"\w+", name) or not code_path.is_file():
                return m.group(0)
            lines = code_path.read_text().splitlines()
            window = lines[max(0, start - NEAR - 1):start]
            if any(name in l for l in window):
                return m.group(0)
            new = definition_line(lines, name)
            if new is None:
                unresolved.append(f"{md}: `{label}` -> {target}")
                return m.group(0)
            span = "" if end is None else f"-L{new + int(end) - start}"
            print(f"{md}: `{label}` {target}#L{start} -> #L{new}")
            return f"[`{label}`]({target}#L{new}{span})"

        new_text = LINK.sub(fix, text)
        if new_text != text:
            md.write_text(new_text)
    for line in unresolved:
        print("UNRESOLVED", line, file=sys.stderr)
    return 1 if unresolved else 0


if __name__ == "__main__":
    sys.exit(main())
