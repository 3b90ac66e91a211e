"""The tutorial notebooks: well-formed (ids, stripped outputs, a parameters cell), student copies derived from the
solutions without drift, and every exercise's solution passes its checker while the student stub does not.

Executing the notebooks top to bottom is CI's job (``pytest --nbmake notebooks/solutions``, see ``.ci/run``)."""

import ast
import json
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


def test_the_notebooks_exist():
    names = [p.name for p in SOLUTIONS]
    for expected in ("01_degradations", "02_vre", "03_one_step", "04_losses", "05_train_nano", "06_evaluate",
                     "07_whole_photo_and_hub"):
        assert f"{expected}.ipynb" in names
    assert [p.name for p in STUDENTS] == names


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


def test_student_copies_are_up_to_date():
    assert make_students.main(["--check"]) == 0, "run: python notebooks/make_students.py"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_exercises_pass_in_solutions_and_fail_in_student_copy(path, capsys):
    """Run only the exercise cells (the student's function, then its checker) of both copies."""
    import osdface.exercises as ex

    for nb, want in ((load(path), True), (load(NOTEBOOKS / path.name), False)):
        solution_cells, check_cells = tagged(nb, "solution"), tagged(nb, "check")
        assert 2 <= len(check_cells) <= 3 and len(solution_cells) == len(check_cells)
        ns = {name: getattr(ex, name) for name in ex.__all__}
        for cell in solution_cells:
            exec(compile(source(cell), f"{path.stem}:{cell['id']}", "exec"), ns)
        results = [eval(source(cell).strip(), ns) for cell in check_cells]
        out = capsys.readouterr().out
        assert results == [want] * len(check_cells), out
        if not want:
            assert out.count("not written yet") == len(check_cells)


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
