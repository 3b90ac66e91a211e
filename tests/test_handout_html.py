"""The course as a student reads it: every notebook of the handout (``make_students.py --out``) rendered to HTML with
nbconvert, as a browser or a course site shows it.

- As handed out: no stored output of the teacher's run (no output area, no picture, no execution count), no solution
  text (no line of a worked exercise, no teacher's answer), and a stub in every exercise.
- As run by a student (the handout executed top to bottom with the exercises unsolved; CI part 2, or
  ``OSDFACE_HANDOUT_EXECUTED=DIR`` pointing at copies that ``benchmarks/notebook_times.py --keep DIR`` executed):
  no error, every checker reports "not written yet" and gives nothing away, and wherever the text says "look at" a
  picture or a close-up, the code cell above it drew one.
"""

import html
import json
import os
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
sys.path.insert(0, str(NOTEBOOKS))
import make_students  # noqa: E402

pytest.importorskip("nbconvert")
bs4 = pytest.importorskip("bs4")

#: text that tells the student to look at something the notebook draws
LOOK_AT = re.compile(r"\blook\s+at\s+(?:(?:the|each|these)\s+)?(?:pictures?|close-ups?|images?|faces?|panels?|rows?|grids?)\b",
                     re.IGNORECASE)


def source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def to_html(nb) -> str:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nbformat.reads(json.dumps(nb), as_version=4))
    return body


def cells_of(page: str):
    """(kind, element) for every cell of a rendered notebook, in order ("code" or "markdown")."""
    soup = bs4.BeautifulSoup(page, "html.parser")
    out = []
    for div in soup.find_all("div", class_="jp-Cell"):
        classes = div.get("class", [])
        out.append(("code" if "jp-CodeCell" in classes else "markdown", div))
    return out


def solution_lines(solution_nb) -> list[str]:
    """The lines of the teacher's worked exercises and answers that identify them (long enough to be specific)."""
    lines = []
    for cell in solution_nb["cells"]:
        if "solution" not in cell.get("metadata", {}).get("tags", []):
            continue
        text = source(cell)
        if cell["cell_type"] == "code":
            text = text.split(make_students.BEGIN, 1)[1].split(make_students.END, 1)[0]
        for line in text.splitlines():
            line = line.strip()
            if len(line) >= 25 and not line.startswith("#"):
                lines.append(line)
    return lines


def visible_text(page: str) -> str:
    return html.unescape(bs4.BeautifulSoup(page, "html.parser").get_text())


@pytest.fixture(scope="module")
def handout(tmp_path_factory):
    out = tmp_path_factory.mktemp("handout") / "course"
    make_students.write_student_folder(out)
    return out


def test_the_handout_renders_without_the_teachers_run_or_solutions(handout):
    checked_lines = 0
    for path in sorted(handout.glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        page = to_html(nb)
        soup = bs4.BeautifulSoup(page, "html.parser")
        # no stored output: no output area, no picture, no execution count in a prompt
        assert not soup.find_all(class_="jp-OutputArea-output"), path.name
        notebook = soup.find(class_="jp-Notebook")  # the cells (the page's style sheet has inline icons)
        assert notebook is not None and not notebook.find_all("img") and "data:image" not in str(notebook), path.name
        prompts = [re.sub(r"\s", "", p.get_text()) for p in soup.find_all(class_="jp-InputPrompt")]
        assert all(p in ("", "In[]:") for p in prompts), (path.name, prompts[:3])  # "In [ ]:", never "In [3]:"
        # no solution text: no line of a worked exercise or of the teacher's answers, no marker
        text = visible_text(page)
        teacher = json.loads((NOTEBOOKS / "solutions" / path.name).read_text(encoding="utf-8"))
        for line in solution_lines(teacher):
            assert line not in text, (path.name, line)
            checked_lines += 1
        assert "BEGIN SOLUTION" not in text and "Answers (teacher's copy)" not in text
        exercises = [c for c in nb["cells"] if "check" in c.get("metadata", {}).get("tags", [])]
        assert text.count("raise NotImplementedError") >= len(exercises), path.name
    assert checked_lines >= 40  # the rule bites: the worked exercises and answers have that many lines


def test_the_renderer_would_see_a_leak(handout):
    """The checks above can fail: the teacher's copy, rendered alike, shows its solution lines."""
    teacher = json.loads((NOTEBOOKS / "solutions" / "03_one_step.ipynb").read_text(encoding="utf-8"))
    text = visible_text(to_html(teacher))
    assert any(line in text for line in solution_lines(teacher))
    # and a stored output of a run: its output area, its picture, its execution count
    code = next(c for c in teacher["cells"] if c["cell_type"] == "code")
    code["execution_count"] = 3
    code["outputs"] = [{"output_type": "display_data", "metadata": {},
                        "data": {"image/png": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwAD"
                                              "hgGAWjR9awAAAABJRU5ErkJggg==", "text/plain": "<Figure>"}}]
    soup = bs4.BeautifulSoup(to_html(teacher), "html.parser")
    assert soup.find_all(class_="jp-OutputArea-output") and soup.find(class_="jp-Notebook").find_all("img")
    assert "In[3]:" in [re.sub(r"\s", "", p.get_text()) for p in soup.find_all(class_="jp-InputPrompt")]


HANDOUT_NAMES = [p.name for p in sorted(NOTEBOOKS.glob("*.ipynb"))]


def _executed(handout: Path, name: str) -> dict:
    """The handout notebook ``name`` after a student's run (executed here, or read from $OSDFACE_HANDOUT_EXECUTED)."""
    given = os.environ.get("OSDFACE_HANDOUT_EXECUTED")
    if given:
        return json.loads((Path(given) / name).read_text(encoding="utf-8"))
    if os.environ.get("OSDFACE_RUN_HANDOUT") != "1":
        pytest.skip("runs the handout notebook (a minute or more): CI part 2 sets OSDFACE_RUN_HANDOUT=1")
    import nbformat
    from nbclient import NotebookClient

    strict = os.environ.pop("OSDFACE_EXERCISES_STRICT", None)  # a student's run: stubs do not stop it
    faces = os.environ.pop("OSDFACE_FACES", None)  # the handout's own example faces, as a student starts
    try:
        nb = nbformat.read(handout / name, as_version=4)
        NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(handout)}}).execute()
        return json.loads(nbformat.writes(nb))
    finally:
        if strict is not None:
            os.environ["OSDFACE_EXERCISES_STRICT"] = strict
        if faces is not None:
            os.environ["OSDFACE_FACES"] = faces


def test_the_look_at_rule_applies():
    """Notebooks 00 and 03 ask the student to look at the pictures they draw: the rule below has work to do."""
    hits = [p.name for p in sorted(NOTEBOOKS.glob("*.ipynb")) for c in json.loads(p.read_text(encoding="utf-8"))["cells"]
            if c["cell_type"] == "markdown" and LOOK_AT.search(source(c))]
    assert {"00_overview.ipynb", "03_one_step.ipynb"} <= set(hits), hits


@pytest.mark.parametrize("name", HANDOUT_NAMES)
def test_what_a_student_sees_after_running_the_handout(handout, name):
    import osdface.exercises as ex
    from osdface.exercises import _grading

    nb = _executed(handout, name)
    solutions = [h.solution for mod in {sys.modules[getattr(ex, n).__module__] for n in ex.__all__
                                        if n.startswith("check_")}
                 for h in vars(mod).values() if isinstance(h, _grading.Hints)]
    errors = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, (name, errors[:1])
    page = to_html(nb)
    text = visible_text(page)
    exercises = [c for c in nb["cells"] if "check" in c.get("metadata", {}).get("tags", [])]
    assert len(re.findall(r"✗ \w+: not written yet", text)) == len(exercises), name
    assert "Next step (fill in" not in text and not any(s in text for s in solutions), name
    cells = cells_of(page)
    for i, (kind, div) in enumerate(cells):
        if kind != "markdown" or not LOOK_AT.search(div.get_text(" ")):
            continue
        above = next((d for k, d in reversed(cells[:i]) if k == "code"), None)
        assert above is not None and above.find("img") is not None, (
            name, LOOK_AT.search(div.get_text(" ")).group(0), "no picture in the code cell above")
