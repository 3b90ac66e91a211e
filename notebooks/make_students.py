"""Derive the student notebooks (``notebooks/NN_*.ipynb``) from the solutions (``notebooks/solutions/NN_*.ipynb``).

The solutions are the only copy anyone edits. In a code cell tagged ``solution`` the lines between
``# BEGIN SOLUTION`` and ``# END SOLUTION`` become a starter stub (the same indentation)::

    # your code here
    raise NotImplementedError

and the markers go away; every other cell is copied as it is, outputs and execution counts cleared. A markdown cell
tagged ``solution`` (a worked answer in prose) is left out of the student copy.

    python notebooks/make_students.py            # (re)write the student copies
    python notebooks/make_students.py --check    # exit 1 if a student copy is missing or differs (tests use it)
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
STUB = ["# your code here", "raise NotImplementedError"]


class NotebookError(ValueError):
    pass


def _lines(source) -> list[str]:
    text = "".join(source) if isinstance(source, list) else source
    return text.split("\n")


def stub_source(source, where: str = "cell") -> str:
    """A solution cell's source with every BEGIN/END SOLUTION block replaced by the stub."""
    out, inside, found = [], False, False
    for line in _lines(source):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise NotebookError(f"{where}: nested '{BEGIN}'")
            inside, found = True, True
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + s for s in STUB)
        elif stripped == END:
            if not inside:
                raise NotebookError(f"{where}: '{END}' without '{BEGIN}'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise NotebookError(f"{where}: '{BEGIN}' is never closed")
    if not found:
        raise NotebookError(f"{where}: tagged 'solution' but has no '{BEGIN}' … '{END}' block")
    return "\n".join(out)


def student_notebook(nb: dict, name: str = "notebook") -> dict:
    """The student copy of a solutions notebook (a dict as read from .ipynb JSON)."""
    nb = copy.deepcopy(nb)
    cells = []
    for i, cell in enumerate(nb["cells"]):
        tags = cell.get("metadata", {}).get("tags", [])
        if "solution" in tags:
            if cell["cell_type"] == "markdown":
                continue
            cell["source"] = stub_source(cell["source"], f"{name}, cell {cell.get('id', i)}")
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        cells.append(cell)
    nb["cells"] = cells
    return nb


def dumps(nb: dict) -> str:
    """The on-disk form (nbformat's: 1-space indent, sorted keys, trailing newline)."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report student copies that differ")
    parser.add_argument("--root", type=Path, default=HERE, help="the notebooks folder (holds solutions/)")
    args = parser.parse_args(argv)
    sources = sorted((args.root / "solutions").glob("*.ipynb"))
    if not sources:
        print(f"no notebooks in {args.root / 'solutions'}", file=sys.stderr)
        return 1
    stale = []
    for src in sources:
        text = dumps(student_notebook(json.loads(src.read_text(encoding="utf-8")), src.name))
        target = args.root / src.name
        if target.is_file() and target.read_text(encoding="utf-8") == text:
            continue
        if args.check:
            stale.append(target)
        else:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target}")
    if stale:
        print("student notebooks out of date (run python notebooks/make_students.py): "
              + ", ".join(str(p) for p in stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
