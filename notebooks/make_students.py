"""Derive the student notebooks (``notebooks/NN_*.ipynb``) from the solutions (``notebooks/solutions/NN_*.ipynb``),
and write the folder a teacher hands out.

The solutions are the only copy anyone edits. In a code cell tagged ``solution`` the lines between
``# BEGIN SOLUTION`` and ``# END SOLUTION`` become a starter stub (the same indentation)::

    # your code here
    raise NotImplementedError

and the markers go away; every other cell is copied as it is, outputs and execution counts cleared. A markdown cell
tagged ``solution`` (a worked answer in prose, e.g. the answers to "check your understanding") is left out of the
student copy.

    python notebooks/make_students.py              # (re)write the student copies next to solutions/
    python notebooks/make_students.py --check      # exit 1 if a student copy is missing or differs (tests use it)
    python notebooks/make_students.py --out DIR    # the student download: DIR holds only the student notebooks,
                                                   # the public-domain example images (examples/), the few
                                                   # repository files they name (HANDOUT_FILES) and a README;
                                                   # no solutions/, no teacher guide, no face photos
    python notebooks/make_students.py --out DIR --full-solutions
                                                   # the same, and the checkers' hint_level=3 shows a full
                                                   # solution (off by default: levels 1-2 lead, they do not answer)

``--full-solutions`` writes ``osdface-course.json`` (``{"full_solutions": true}``) into the download, which the
checkers read from the folder Jupyter runs the notebooks in; without it the file says ``false``.

``--out`` refuses a folder inside ``notebooks/`` and a non-empty folder it did not write (it leaves a marker file),
and checks what it wrote: no cell tagged ``solution``, no solution marker, no output.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
MARKER = ".osdface-students"  # marks a folder written by --out (only such a folder is ever rewritten)
BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
STUDENT_README = """# OSDFace course: student notebooks

Notebooks `00_overview` … `08_final_project` teach OSDFace (one-step diffusion face restoration, CVPR 2025) by
running it. Start with `00_overview.ipynb`.

1. Install the library (Python 3.11): `pip install osdface` from the copy your teacher names, or
   `pip install -r requirements.txt` in a checkout of the osdface repository; then `pip install jupyterlab`.
2. Start Jupyter in this folder: `jupyter lab` (the notebooks find the example face in `examples/`).
3. Run each notebook top to bottom. The first code cell holds its parameters; the defaults run on a laptop CPU.

**Exercises.** Replace `raise NotImplementedError` in the marked cells with your code, then run the `check_…` cell
below it. It prints ✓, or the first failing case with what went wrong and a hint about the idea;
`check_…(your_function, hint_level=2)` shows the next step (a skeleton with blanks) when you are stuck, and
`hint_level=3` a full solution {solutions}. Write the function yourself: an answer that calls the library's own
version is refused. The questions under *Check your understanding* are for you (and for discussion in class).

`examples/`: public-domain pictures (a NASA portrait) and pictures generated from it; `examples/README.md` says how.
`docs/ARCHITECTURE.md`: the architecture notes the notebooks cite. `scripts/ablation.py` and
`benchmarks/results/ablation.json`: the final project's ablation script and the project's measured report;
`benchmarks/speed.py`: the timing script notebook 03 mentions.
"""
STUB = ["# your code here", "raise NotImplementedError"]
REPO = HERE.parent
#: files of the repository the student notebooks name, copied into the download at the same relative paths
#: (the architecture notes the notebooks cite, the ablation script of 08 and its measured report, the speed script
#: 03 points to)
HANDOUT_FILES = ("docs/ARCHITECTURE.md", "scripts/ablation.py", "benchmarks/results/ablation.json",
                 "benchmarks/speed.py")


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


def leaks(nb: dict) -> list[str]:
    """What a student copy must not contain: solution-tagged cells, solution markers, outputs."""
    found = []
    for i, cell in enumerate(nb["cells"]):
        where = f"cell {cell.get('id', i)}"
        if "solution" in cell.get("metadata", {}).get("tags", []) and cell["cell_type"] == "markdown":
            found.append(f"{where}: a markdown cell tagged 'solution'")
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if BEGIN in text or END in text:
            found.append(f"{where}: a solution marker")
        if cell.get("outputs"):
            found.append(f"{where}: outputs")
    return found


COURSE_FILE = "osdface-course.json"  # read by osdface.exercises (full_solutions_enabled)


def write_student_folder(out: Path, root: Path = HERE, examples: Path = EXAMPLES, *,
                         full_solutions: bool = False) -> list[Path]:
    """The student download in ``out``: the student notebooks, ``examples/``, a README and the course settings
    (``osdface-course.json``: whether ``hint_level=3`` shows full solutions). Returns the files."""
    out = Path(out).resolve()
    root = Path(root).resolve()
    if out == root or root in out.parents:
        raise NotebookError(f"{out} is inside {root}: choose a folder outside the notebooks (the teacher's copy)")
    if out.exists() and not out.is_dir():
        raise NotebookError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise NotebookError(f"{out} is not empty and was not written by make_students.py; choose another --out")
        shutil.rmtree(out)
    sources = sorted((root / "solutions").glob("*.ipynb"))
    if not sources:
        raise NotebookError(f"no notebooks in {root / 'solutions'}")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by notebooks/make_students.py --out; rewritten by the next run\n")
    written = []
    for src in sources:
        student = student_notebook(json.loads(src.read_text(encoding="utf-8")), src.name)
        bad = leaks(student)
        if bad:
            raise NotebookError(f"{src.name}: the student copy would leak: {'; '.join(bad)}")
        (out / src.name).write_text(dumps(student), encoding="utf-8")
        written.append(out / src.name)
    if examples.is_dir():  # public-domain / generated pictures only (never face photos: they are not in the repo)
        (out / "examples").mkdir()
        for p in sorted(examples.iterdir()):
            if p.is_file() and p.suffix.lower() in (".png", ".jpg", ".jpeg", ".md"):
                shutil.copyfile(p, out / "examples" / p.name)
                written.append(out / "examples" / p.name)
    for rel in HANDOUT_FILES:
        src = REPO / rel
        if not src.is_file():
            raise NotebookError(f"{rel} is missing from the repository; the student notebooks name it")
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out / rel)
        written.append(out / rel)
    readme = STUDENT_README.replace("{solutions}", "(your teacher enabled them for this course)" if full_solutions
                                    else "where your teacher enables them (not in this copy)")
    (out / "README.md").write_text(readme, encoding="utf-8")
    (out / COURSE_FILE).write_text(json.dumps({"full_solutions": bool(full_solutions)}) + "\n", encoding="utf-8")
    written += [out / "README.md", out / COURSE_FILE]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report student copies that differ")
    parser.add_argument("--root", type=Path, default=HERE, help="the notebooks folder (holds solutions/)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the student download into this folder (student notebooks, examples, README)")
    parser.add_argument("--full-solutions", action="store_true",
                        help="with --out: let the checkers' hint_level=3 show a full solution (off by default)")
    args = parser.parse_args(argv)
    if args.full_solutions and args.out is None:
        parser.error("--full-solutions applies to the download: add --out DIR")
    if args.out is not None:
        try:
            files = write_student_folder(args.out, args.root, full_solutions=args.full_solutions)
        except NotebookError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        notebooks = [p for p in files if p.suffix == ".ipynb"]
        print(f"wrote {len(notebooks)} student notebooks and {len(files) - len(notebooks)} other files to "
              f"{args.out} (no solutions, no teacher guide; full solutions in the hints: "
              f"{'on' if args.full_solutions else 'off'})")
        return 0
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
