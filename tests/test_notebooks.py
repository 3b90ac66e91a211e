"""The tutorial notebooks: well-formed (ids, stripped outputs, a parameters cell), a course header and
"check your understanding" questions in each (answers only in the teacher's copy), no stale or hard-coded measured
numbers in the prose, student copies derived from the solutions without drift, the student download
(``make_students.py --out``) free of solutions, and every exercise's solution passes its checker while the student
stub does not (and gives no hint away).

Executing the notebooks top to bottom is CI's job (``pytest --nbmake notebooks/solutions``, see ``.ci/run``)."""

import ast
import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
SOLUTIONS = sorted((NOTEBOOKS / "solutions").glob("*.ipynb"))
STUDENTS = sorted(NOTEBOOKS.glob("*.ipynb"))
ALL = SOLUTIONS + STUDENTS

sys.path.insert(0, str(NOTEBOOKS))
import make_students  # noqa: E402


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def tagged(nb, tag):
    return [c for c in nb["cells"] if tag in c.get("metadata", {}).get("tags", [])]


#: notebooks without graded exercises (the course map)
NO_EXERCISES = {"00_overview"}


def markdown(nb, *, answers: bool = False):
    return [source(c) for c in nb["cells"] if c["cell_type"] == "markdown"
            and (answers or "solution" not in c.get("metadata", {}).get("tags", []))]


def test_the_notebooks_exist():
    names = [p.name for p in SOLUTIONS]
    for expected in ("00_overview", "01_degradations", "02_vre", "03_one_step", "04_losses", "05_train_nano",
                     "06_evaluate", "07_whole_photo_and_hub"):
        assert f"{expected}.ipynb" in names
    assert [p.name for p in STUDENTS] == names
    assert (NOTEBOOKS / "TEACHING.md").is_file()


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(NOTEBOOKS)))
def test_notebook_is_well_formed(path):
    import nbformat

    nb = load(path)
    nbformat.validate(nbformat.reads(path.read_text(encoding="utf-8"), as_version=4))
    assert nb["nbformat"] == 4 and nb["nbformat_minor"] >= 5
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    ids = [c.get("id") for c in nb["cells"]]
    assert all(ids) and len(set(ids)) == len(ids), "every cell needs a unique id"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"outputs not stripped in {cell['id']}"
            ast.parse(source(cell))  # no syntax errors (a student stub included)
        assert "attachments" not in cell, "no embedded pictures"
        # face photos only through the FACES parameter / $OSDFACE_FACES, never a hard-coded data path
        assert "shared/data" not in source(cell)
    # one papermill-style parameters cell: the first code cell, fast defaults, one switch to the full path
    params = tagged(nb, "parameters")
    code_cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(params) == 1 and params[0] is code_cells[0]
    names = {t.id for n in ast.parse(source(params[0])).body if isinstance(n, ast.Assign) for t in n.targets}
    assert "FULL" in names
    assert "FULL = False" in source(params[0])


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_course_header_and_questions(path):
    """Learning goals, prerequisites and a time estimate up front; questions at the end, answered in the teacher's
    copy only."""
    nb = load(path)
    head = source(nb["cells"][0])
    for row in ("**You will**", "**Before you start**", "**Time** | about "):
        assert row in head, (path.name, row)
    texts = markdown(nb)
    assert any(t.startswith("## Check your understanding") or "\n## Check your understanding" in t for t in texts)
    answers = [source(c) for c in tagged(nb, "solution") if c["cell_type"] == "markdown"]
    assert len(answers) == 1 and answers[0].startswith("**Answers (teacher's copy).**")
    student = load(NOTEBOOKS / path.name)
    assert not any("Answers (teacher's copy)" in t for t in markdown(student, answers=True))


# measured quantities (dB, %, seconds, speed-up ratios, parameter counts) belong in code output, computed on the run;
# prose may state definitions, constants of the method, shapes (16×16) and the time estimate of the header
MEASURED = re.compile(r"\d[\d,.]*\s?(dB\b|%|seconds?\b|s per\b|M parameters|[×x](?=\s*[),.;:]|\s*$|\s+(?:faster|"
                      r"slower|speed|less|more|lower|higher|better|worse)\b))", re.MULTILINE)
STALE = ("placeholder", "watch the outputs move from noise", "smaller than 50", "still random")


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_prose_quotes_no_measured_numbers(path):
    """Text that states a number must compute it: the prose quotes no measurement of today's model, the cells print
    them (and the prose says what to compare)."""
    for text in markdown(load(path), answers=True):
        hits = [m.group(0) for m in MEASURED.finditer(text)]
        assert not hits, (path.name, hits, text[:200])
        for phrase in STALE:
            assert phrase not in text.lower(), (path.name, phrase)


def test_student_copies_are_up_to_date():
    assert make_students.main(["--check"]) == 0, "run: python notebooks/make_students.py"


def test_student_download_holds_no_solutions(tmp_path, capsys):
    out = tmp_path / "handout"
    assert make_students.main(["--out", str(out)]) == 0
    names = sorted(p.name for p in out.glob("*.ipynb"))
    assert names == [p.name for p in STUDENTS]
    assert not (out / "solutions").exists() and not (out / "TEACHING.md").exists()
    assert (out / "README.md").is_file() and (out / "examples" / "astronaut_face.png").is_file()
    examples = {p.name for p in (REPO / "examples").iterdir() if p.is_file()}
    assert {p.name for p in (out / "examples").iterdir()} <= examples  # nothing but the repository's examples
    for nb_path in out.glob("*.ipynb"):
        text = nb_path.read_text(encoding="utf-8")
        assert "BEGIN SOLUTION" not in text and "Answers (teacher's copy)" not in text
        assert make_students.leaks(json.loads(text)) == []
        assert nb_path.read_text(encoding="utf-8") == (NOTEBOOKS / nb_path.name).read_text(encoding="utf-8")
    # rewriting its own folder is fine; a foreign non-empty folder or one inside notebooks/ is refused
    assert make_students.main(["--out", str(out)]) == 0
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    assert make_students.main(["--out", str(tmp_path / "mine")]) == 1
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "keep me"
    assert make_students.main(["--out", str(NOTEBOOKS / "handout")]) == 1
    assert not (NOTEBOOKS / "handout").exists()
    assert "inside" in capsys.readouterr().err


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_exercises_pass_in_solutions_and_fail_in_student_copy(path, capsys):
    """Run only the exercise cells (the student's function, then its checker) of both copies."""
    import osdface.exercises as ex

    for nb, want in ((load(path), True), (load(NOTEBOOKS / path.name), False)):
        solution_cells = [c for c in tagged(nb, "solution") if c["cell_type"] == "code"]
        check_cells = tagged(nb, "check")
        if path.stem in NO_EXERCISES:
            assert not check_cells and not solution_cells
            continue
        assert 2 <= len(check_cells) <= 3 and len(solution_cells) == len(check_cells)
        ns = {name: getattr(ex, name) for name in ex.__all__}
        for cell in solution_cells:
            exec(compile(source(cell), f"{path.stem}:{cell['id']}", "exec"), ns)
        results = [eval(source(cell).strip(), ns) for cell in check_cells]
        out = capsys.readouterr().out
        assert results == [want] * len(check_cells), out
        if not want:  # "Run all" on the student copy: every stub reported, no hint given away
            assert out.count("not written yet") == len(check_cells)
            assert "Hint:" not in out and "Next step" not in out


def test_stub_source_replaces_marked_blocks_keeping_indentation():
    src = ("import numpy as np\n\n\ndef f(x):\n    '''doc'''\n    # BEGIN SOLUTION\n    y = x + 1\n"
           "    return y\n    # END SOLUTION\n")
    out = make_students.stub_source(src)
    assert out == ("import numpy as np\n\n\ndef f(x):\n    '''doc'''\n    # your code here\n"
                   "    raise NotImplementedError\n")
    ns = {}
    exec(out, ns)
    with pytest.raises(NotImplementedError):
        ns["f"](1)
    for bad, why in [("x = 1\n", "no '# BEGIN SOLUTION'"), ("# BEGIN SOLUTION\nx = 1\n", "never closed"),
                     ("# END SOLUTION\n", "without"), ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n", "nested")]:
        with pytest.raises(make_students.NotebookError, match=why):
            make_students.stub_source(bad)


def test_student_notebook_drops_solution_markdown_and_outputs(tmp_path):
    nb = {"cells": [
        {"cell_type": "markdown", "id": "a", "metadata": {"tags": ["solution"]}, "source": ["the answer is 4"]},
        {"cell_type": "code", "id": "b", "metadata": {"tags": ["solution"]}, "execution_count": 3,
         "outputs": [{"output_type": "stream", "name": "stdout", "text": "hi"}],
         "source": ["def f():\n", "    # BEGIN SOLUTION\n", "    return 4\n", "    # END SOLUTION\n"]},
        {"cell_type": "code", "id": "c", "metadata": {}, "execution_count": 4, "outputs": [], "source": "f()"},
    ], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    out = make_students.student_notebook(nb)
    assert [c["id"] for c in out["cells"]] == ["b", "c"]
    assert "return 4" not in source(out["cells"][0]) and "NotImplementedError" in source(out["cells"][0])
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in out["cells"])
    assert nb["cells"][1]["outputs"]  # the solutions notebook itself is left alone
    # the command writes the copies next to solutions/ and --check notices drift
    (tmp_path / "solutions").mkdir()
    (tmp_path / "solutions" / "x.ipynb").write_text(json.dumps(nb))
    assert make_students.main(["--root", str(tmp_path), "--check"]) == 1
    assert make_students.main(["--root", str(tmp_path)]) == 0
    assert make_students.main(["--root", str(tmp_path), "--check"]) == 0
    assert load(tmp_path / "x.ipynb") == out


@pytest.mark.parametrize("path", [p for p in SOLUTIONS if p.stem not in NO_EXERCISES], ids=lambda p: p.stem)
def test_exercise_cells_do_not_have_the_reference_in_scope(path):
    """No name a notebook binds with an import is the library function one of its exercises grades against (or the
    class whose method it is): ``return squared_distances(z, codes)`` must not be one word away. The module
    (``codebook.squared_distances``) may be imported for the demonstrations; the checker refuses a call to it."""
    import importlib
    import inspect

    import osdface.exercises as ex

    nb = load(path)
    exercises = sorted({m for c in tagged(nb, "check") for m in re.findall(r"check_(\w+)\(", source(c))})
    assert exercises
    refs = [inspect.unwrap(f) for name in exercises for f in ex.reference_functions(name)]
    owners = [getattr(importlib.import_module(f.__module__), f.__qualname__.split(".")[0]) for f in refs
              if "." in f.__qualname__]
    bound = {}
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        for node in ast.walk(ast.parse(source(cell))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    module = importlib.import_module(node.module)
                    obj = getattr(module, alias.name, None)
                    if obj is None:  # a submodule
                        obj = importlib.import_module(f"{node.module}.{alias.name}")
                    bound[alias.asname or alias.name] = obj
    for name, obj in bound.items():
        obj = inspect.unwrap(obj) if callable(obj) else obj
        assert not any(obj is r for r in refs), f"{path.name} binds the reference {name}: import its module instead"
        assert not any(obj is o for o in owners), f"{path.name} binds {name}, whose method is an exercise's reference"


def test_full_solutions_are_off_in_the_download_unless_the_teacher_enables_them(tmp_path, capsys):
    from osdface.exercises import full_solutions_enabled

    out = tmp_path / "handout"
    assert make_students.main(["--out", str(out)]) == 0
    assert json.loads((out / "osdface-course.json").read_text()) == {"full_solutions": False}
    assert not full_solutions_enabled(out)
    assert "not in this copy" in (out / "README.md").read_text()
    assert make_students.main(["--out", str(out), "--full-solutions"]) == 0
    assert full_solutions_enabled(out)
    assert "enabled them for this course" in (out / "README.md").read_text()
    with pytest.raises(SystemExit):
        make_students.main(["--full-solutions"])  # only with --out: the repository's copies carry no settings


#: a path as notebooks write them: relative, with at least one folder, or a file name with a known suffix
PATH_LIKE = re.compile(r"(?<![\w/.:@-])((?:\./)?[\w.-]+(?:/[\w.-]*)+|[\w-]+\.(?:md|py|ipynb|json|txt|png|jpg))"
                       r"(?![\w/])")


def named_paths(nb) -> set[str]:
    return {m.group(1) for cell in nb["cells"] for m in PATH_LIKE.finditer(source(cell))}


def _tracked_top_level() -> set[str]:
    """The checkout's top-level entries that are part of the repository (git's tracked files), not what a run left
    there (the README's out/, a built site/): those are outputs a notebook may name too."""
    import subprocess

    try:
        files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
        return {line.split("/")[0] for line in files.splitlines() if line and not line.startswith(".")}
    except (OSError, subprocess.CalledProcessError):
        return {p.name for p in REPO.iterdir() if not p.name.startswith(".")}


def test_every_path_a_handout_notebook_names_exists_in_the_handout(tmp_path):
    """A path that names part of the repository (its first component is a top-level entry of the checkout, or the
    teacher's files) exists in the handout ``make_students.py --out`` writes, or in the installed package."""
    import osdface

    out = tmp_path / "handout"
    assert make_students.main(["--out", str(out)]) == 0
    repo_entries = _tracked_top_level()
    package = Path(osdface.__file__).resolve().parent
    checked, missing = 0, []
    for nb_path in sorted(out.glob("*.ipynb")):
        for path in sorted(named_paths(load(nb_path))):
            rel = path.removeprefix("./")
            first = rel.split("/")[0]
            if "TEACHING" in rel or first in ("solutions", "notebooks"):
                missing.append(f"{nb_path.name}: {path} (a teacher's file)")
                continue
            if first not in repo_entries:
                continue  # not the repository's: an output the notebook makes (runs/…), a Hub id, a formula
            checked += 1
            if first == "osdface":
                found = (package.parent / rel).exists()
            else:
                found = (out / rel).exists()
            if not found:
                missing.append(f"{nb_path.name}: {path}")
    assert checked >= 10  # the rule is exercised: examples/, docs/, scripts/, benchmarks/, osdface/ are named
    assert not missing, missing


def test_teaching_guide_figures_come_from_the_timing_script():
    """TEACHING.md's run-time table is what benchmarks/notebook_times.py renders from its results file, for every
    notebook; the guide's counts match the course."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("notebook_times", REPO / "benchmarks" / "notebook_times.py")
    times = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(times)
    results = json.loads(times.RESULTS.read_text(encoding="utf-8"))
    assert sorted(results["notebooks"]) == [p.stem for p in SOLUTIONS]
    assert all(r["status"] == "ok" and r["seconds"] > 0 for r in results["notebooks"].values())
    guide = (NOTEBOOKS / "TEACHING.md").read_text(encoding="utf-8")
    assert times.render(results) in guide, "run: python benchmarks/notebook_times.py --render-only"
    words = {6: "Six", 7: "Seven", 8: "Eight", 9: "Nine", 10: "Ten"}
    assert f"{words[len(SOLUTIONS)]} notebooks" in guide
    assert not any(f"{w} notebooks" in guide for n, w in words.items() if n != len(SOLUTIONS))
    n_exercises = sum(len(tagged(load(p), "check")) for p in SOLUTIONS)
    assert f"{n_exercises} exercises in 01–08" in guide
