"""The README's settings table and ``.env.example``, written from the declaration.

Both files keep the generated part between two marker lines; the rest of each file is
prose. ``python -m churnops.settings.docs --write`` (``make settings-docs``) rewrites
the generated parts; ``--check`` exits 1 when a committed file is out of date (the unit
test ``tests/unit/test_settings_declared.py`` checks the same).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple

from churnops.settings.declare import allowed_text, show_value
from churnops.settings.model import _DEFAULT_PROJECT_DIR, Settings, declared_settings

SOURCE = "include/churnops/settings/model.py"
BEGIN = f"<!-- BEGIN settings: generated from {SOURCE} by `make settings-docs` -->"
END = "<!-- END settings -->"
ENV_BEGIN = f"# ---- BEGIN churnops settings: generated from {SOURCE} by `make settings-docs`"
ENV_END = "# ---- END churnops settings"


class Row(NamedTuple):
    name: str
    default: str  # for a reader: `value`, or the derived default in words
    example: str  # the value as written in the variable ("" when derived or secret)
    allowed: str
    help: str
    secret: bool


def _groups() -> list[tuple[str, str, list[Row]]]:
    """Per section of the declaration: (path, title, rows)."""
    groups: dict[str, tuple[str, list[Row]]] = {}
    for path, owner, (field, declared, hint) in declared_settings(Settings):
        title = "General" if not path else (owner.__doc__ or path).strip().splitlines()[0]
        title = title.replace("``", "`")
        _, rows = groups.setdefault(path, (title, []))
        if declared.secret or declared.default_text is not None:
            example = ""
            default = declared.default_text or ""
        else:
            example = show_value(declared, hint, field.default)
            default = f"`{example}`" if example else "none"
        allowed = allowed_text(declared, hint)
        rows.append(Row(declared.env, default, example, allowed, declared.help, declared.secret))
    return [(path, title, rows) for path, (title, rows) in groups.items()]


def markdown() -> str:
    """The README's settings tables, one per section, between the markers."""
    lines = [BEGIN]
    for path, title, rows in _groups():
        heading = f"`settings.{path}`: {title}" if path else f"`settings`: {title}"
        lines += ["", f"**{heading}**", "", "| variable | default | allowed | meaning |"]
        lines.append("| --- | --- | --- | --- |")
        for row in rows:
            cells = (f"`{row.name}`", row.default, row.allowed, row.help)
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    lines += ["", END]
    return "\n".join(lines)


def env_example() -> str:
    """``.env.example``'s churnops part between the markers: every variable, commented
    out at its default; a secret as an empty line (docker compose requires it)."""
    lines = [
        ENV_BEGIN,
        "# Every churnops setting at its default: uncomment a line to change it.",
    ]
    for path, title, rows in _groups():
        lines += ["", f"# -- {path or 'general'}: {title}"]
        for row in rows:
            note = row.help if row.example else f"{row.help} (default: {row.default})"
            lines += textwrap.wrap(
                note.replace("`", ""), 88, initial_indent="# ", subsequent_indent="#   "
            )
            lines.append(f"{row.name}=" if row.secret else f"# {row.name}={row.example}")
    lines.append(ENV_END)
    return "\n".join(lines)


def splice(text: str, generated: str, begin: str, end: str) -> str:
    """``text`` with the lines from ``begin`` to ``end`` replaced by ``generated``."""
    start = text.index(begin)
    stop = text.index(end, start) + len(end)
    return text[:start] + generated + text[stop:]


def targets(project_dir: Path = _DEFAULT_PROJECT_DIR) -> dict[Path, str]:
    """Each generated file's wanted content."""
    readme = project_dir / "README.md"
    example = project_dir / ".env.example"
    return {
        readme: splice(readme.read_text(), markdown(), BEGIN, END),
        example: splice(example.read_text(), env_example(), ENV_BEGIN, ENV_END),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m churnops.settings.docs", description=__doc__)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--markdown", action="store_true", help="print the README's tables")
    action.add_argument("--env", action="store_true", help="print .env.example's part")
    action.add_argument("--write", action="store_true", help="rewrite both files' parts")
    action.add_argument("--check", action="store_true", help="exit 1 if either is stale")
    args = parser.parse_args(argv)
    if args.markdown or args.env:
        print(markdown() if args.markdown else env_example())
        return 0
    stale = [path for path, wanted in targets().items() if path.read_text() != wanted]
    if args.check:
        for path in stale:
            print(f"{path.name} disagrees with the settings' declaration: make settings-docs")
        return 1 if stale else 0
    for path, wanted in targets().items():
        path.write_text(wanted)
    print(f"rewrote {', '.join(path.name for path in stale) or 'nothing (up to date)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
