"""The grader behind every ``check_<name>``: run the student's function on seeded random cases, compare with the
library's own implementation, print what happened, return a :class:`CheckResult` (true when every case passes).

Help comes in tiers, so that "Run all" on an unfinished notebook gives nothing away and a stuck student is led, not
handed the answer:

- a function that is **not written yet** (it still raises ``NotImplementedError``) gets one line saying so, and no
  hint unless the student asks for one;
- a **wrong answer** (or an exception) gets the failing case, *what went wrong* when the checker can tell (a
  property of the result and where to look: "does not sum to 1", "the transpose of the expected kernel", … never
  the corrected line) and a **conceptual hint** (hint level 1: which idea or formula to revisit, no code);
- ``check_<name>(fn, hint_level=2)``: **the next step**, a partial skeleton with blanks (``___``) to fill;
- ``hint_level=3``: a **full solution**, only where the teacher enabled it (``make_students.py --full-solutions``
  writes ``osdface-course.json`` into the handout; ``$OSDFACE_FULL_SOLUTIONS=1`` does the same); otherwise the
  checker says that it is off. ``hint_level=0`` prints no hint at all.

The exercise is to write the function, so an answer that calls the library's own implementation (directly, through
another name or through a wrapper) is refused with "write it yourself": the checker watches which functions run
while the student's function runs (:func:`sys.setprofile`) and recognises the reference's code and the library
functions it is built from.

A checker never raises for a wrong answer or for an exception inside the student's code: a classroom notebook keeps
running, and the message says what went wrong on which case. With ``OSDFACE_EXERCISES_STRICT=1`` in the environment
a failure raises ``AssertionError`` with the same message instead: CI runs the solution notebooks that way, so a
solution that stops matching the library fails the build.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import traceback
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import torch

HINT_LEVELS = (0, 1, 2, 3)
#: the file a teacher's handout carries when full solutions are enabled (``make_students.py --full-solutions``)
COURSE_FILE = "osdface-course.json"
SOLUTIONS_ENV = "OSDFACE_FULL_SOLUTIONS"


def full_solutions_enabled(folder: str | os.PathLike | None = None) -> bool:
    """True when the teacher enabled full solutions: ``$OSDFACE_FULL_SOLUTIONS=1``, or ``osdface-course.json`` with
    ``"full_solutions": true`` in ``folder`` (default: the working folder, where Jupyter runs a notebook)."""
    if os.environ.get(SOLUTIONS_ENV, "") == "1":
        return True
    path = os.path.join(os.fspath(folder) if folder is not None else os.getcwd(), COURSE_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("full_solutions") is True
    except (OSError, ValueError, AttributeError):
        return False


@dataclass
class Case:
    """One graded call: ``fn(*args, **kwargs)`` should equal ``expected`` (``describe`` names it in messages)."""

    args: tuple
    expected: Any
    describe: str
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Hints:
    """``concept``: level 1, the idea or formula to revisit (no code). ``step``: level 2, the next step or a partial
    skeleton with blanks (``___``), never the whole answer. ``solution``: level 3, a full solution, shown only where
    the teacher enabled it (:func:`full_solutions_enabled`)."""

    concept: str
    step: str
    solution: str


# ------------------------------------------------------------------------------------------------ delegation
def _unwrap(obj) -> types.FunctionType | None:
    obj = inspect.unwrap(getattr(obj, "__func__", obj))
    return obj if isinstance(obj, types.FunctionType) else None


def reference_codes(*references) -> dict:
    """The code objects of ``references`` and of every library function they are built from (followed through
    their module globals, within ``osdface`` outside ``osdface.exercises``), each mapped to its dotted name."""
    found: dict = {}
    todo = [f for f in map(_unwrap, references) if f is not None]
    while todo:
        f = todo.pop()
        if f.__code__ in found:
            continue
        found[f.__code__] = f"{f.__module__}.{f.__qualname__}"
        names, stack = set(), [f.__code__]
        while stack:  # names used by the function and by the functions / comprehensions nested in it
            code = stack.pop()
            names.update(code.co_names)
            stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
        for name in names:
            g = _unwrap(f.__globals__.get(name))
            mod = getattr(g, "__module__", "") or ""
            if g is not None and mod.startswith("osdface.") and not mod.startswith("osdface.exercises"):
                todo.append(g)
    return found


def _run_watched(fn: Callable, case: Case, codes: dict) -> tuple[Any, str | None]:
    """``fn(*case.args)`` and the name of the first reference function that ran inside it (None: none did)."""
    if not codes:
        return fn(*case.args, **case.kwargs), None
    hit: list[str] = []

    def watch(frame, event, arg):
        if event == "call" and not hit and frame.f_code in codes:
            hit.append(codes[frame.f_code])

    previous = sys.getprofile()
    sys.setprofile(watch)
    try:
        got = fn(*case.args, **case.kwargs)
    except BaseException:
        if hit:
            return None, hit[0]
        raise
    finally:
        sys.setprofile(previous)
    return got, (hit[0] if hit else None)


class CheckResult:
    """What a checker returns: true when every case passed. It behaves like that bool (``if check(...)``,
    ``check(...) == True``) and shows nothing of its own in a notebook: the checker already printed its line."""

    __slots__ = ("name", "passed", "message")

    def __init__(self, name: str, passed: bool, message: str):
        self.name, self.passed, self.message = name, bool(passed), message

    def __bool__(self) -> bool:
        return self.passed

    def __eq__(self, other) -> bool:
        if isinstance(other, (bool, np.bool_, CheckResult)):
            return self.passed == bool(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.passed)

    def __repr__(self) -> str:
        return f"CheckResult({self.name!r}, passed={self.passed})"

    def _ipython_display_(self) -> None:  # the ✓ / ✗ line is the display; no trailing True / False
        return None


def _as_array(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64 if x.is_floating_point() else x.dtype).numpy()
    return np.asarray(x)


def compare(got, expected, *, rtol: float = 1e-5, atol: float = 1e-6, exact: bool = False) -> str | None:
    """None when ``got`` matches ``expected`` (arrays / tensors / tuples of them); else a short description."""
    if got is None:
        return "your function returned None (did you forget `return`?)"
    if isinstance(expected, tuple):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return f"expected a tuple of {len(expected)} values, got {type(got).__name__}"
        for i, (g, e) in enumerate(zip(got, expected)):
            why = compare(g, e, rtol=rtol, atol=atol, exact=exact)
            if why:
                return f"item {i}: {why}"
        return None
    try:
        g, e = _as_array(got), _as_array(expected)
    except (TypeError, ValueError, RuntimeError) as err:
        return f"cannot read the result as an array ({type(err).__name__}: {err})"
    if g.shape != e.shape:
        return f"shape {tuple(g.shape)}, expected {tuple(e.shape)}"
    if g.dtype == object:
        return f"the result is not numeric (dtype {g.dtype})"
    if exact or e.dtype.kind in "biu":
        if not np.array_equal(g, e):
            bad = np.argwhere(g != e)
            first = tuple(int(i) for i in bad[0]) if bad.size else ()
            return (f"{len(bad)} of {e.size} values differ; first at index {first}: "
                    f"got {g[first] if first else g}, expected {e[first] if first else e}")
        return None
    if not np.all(np.isfinite(g)):
        return "the result contains NaN or infinite values"
    if not np.allclose(g, e, rtol=rtol, atol=atol):
        err = np.abs(g.astype(np.float64) - e.astype(np.float64))
        first = tuple(int(i) for i in np.unravel_index(np.argmax(err), err.shape))
        return (f"largest difference {err.max():.3g} at index {first} "
                f"(got {g[first] if first else g}, expected {e[first] if first else e})")
    return None


def close(a, b, *, rtol: float = 1e-4, atol: float = 1e-6) -> bool:
    """``a`` ≈ ``b`` as arrays (False on any shape or conversion problem): for the checkers' diagnoses."""
    try:
        a, b = _as_array(a).astype(np.float64), _as_array(b).astype(np.float64)
    except (TypeError, ValueError, RuntimeError):
        return False
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol))


def _check_name(name: str) -> str:
    return f"check_{name}"


def grade(name: str, fn: Callable, cases: Iterable[Case], hints: Hints, *, hint_level: int | None = None,
          quiet: bool = False, diagnose: Callable[[Any, Case], str | None] | None = None,
          references: Iterable[Callable] = (), delegates: Callable[[Callable], str | None] | None = None,
          **compare_kwargs) -> CheckResult:
    """Run ``fn`` on every case; print ``✓ name: N cases pass`` or the first failure with tiered help.

    ``hint_level`` None (the default): a conceptual hint for a wrong answer, nothing for a stub; 0: no hint;
    1: the conceptual hint (also for a stub); 2: and the next step (a skeleton with blanks); 3: and a full solution
    where the teacher enabled it. ``diagnose(got, case)`` may name the property that failed (one sentence, or None).
    ``references``: the library's implementation(s) the answer must not call (see :func:`reference_codes`);
    ``delegates(fn)``: another way to see delegation (e.g. a table read from the library), a sentence or None."""
    strict = os.environ.get("OSDFACE_EXERCISES_STRICT", "") == "1"
    if hint_level is not None and hint_level not in HINT_LEVELS:
        raise ValueError(f"hint_level must be one of {HINT_LEVELS} (or None), not {hint_level!r}")
    fn_name = getattr(fn, "__name__", "my_function")
    if fn_name == "<lambda>":
        fn_name = "my_function"
    call = f"{_check_name(name)}({fn_name}, hint_level=%d)"

    def help_lines(default_level: int) -> list[str]:
        level = default_level if hint_level is None else hint_level
        lines = []
        if level >= 1:
            lines.append(f"  Hint: {hints.concept}")
        if level == 1:
            lines.append(f"  Still stuck? {call % 2} shows the next step.")
        if level >= 2:
            lines.append(f"  Next step (fill in the blanks ___): {hints.step}")
        if level == 3:
            if full_solutions_enabled():
                lines.append(f"  Full solution (enabled by your teacher): {hints.solution}")
            else:
                lines.append("  Full solutions are off in this course (your teacher can enable them); the next step "
                             "above and the hint are the help there is. Ask in class.")
        return lines

    def finish(passed: bool, lines: list[str]) -> CheckResult:
        msg = "\n".join(lines)
        if not quiet:
            print(msg, flush=True)
        if strict and not passed:
            raise AssertionError(msg)
        return CheckResult(name, passed, msg)

    if not callable(fn):
        return finish(False, [f"✗ {name}: pass your function itself (e.g. {_check_name(name)}(my_function)), "
                              f"not {type(fn).__name__}"])
    cases = list(cases)
    codes = reference_codes(*references)

    def refuse(what: str) -> CheckResult:
        return finish(False, [f"✗ {name}: write it yourself: {fn_name} {what}, (part of) the library's implementation "
                              "this exercise grades against, so passing would show nothing. Compute the result with "
                              "your own code (plain numpy / torch operations).", f"  Hint: {hints.concept}"])

    if delegates is not None:
        why = delegates(fn)
        if why:
            return refuse(why)
    for i, case in enumerate(cases, 1):
        try:
            got, used = _run_watched(fn, case, codes)
        except NotImplementedError:
            first = (f"✗ {name}: not written yet ({fn_name} still raises NotImplementedError): replace that line "
                     "with your code and run this cell again.")
            if hint_level is None:
                first += f" Stuck? {_check_name(name)}({fn_name}, hint_level=1) gives a hint."
            return finish(False, [first, *help_lines(0)])
        except Exception as err:  # noqa: BLE001 - a classroom checker reports, it does not crash
            where = traceback.extract_tb(err.__traceback__)[-1]
            return finish(False, [f"✗ {name}: case {i} ({case.describe}) raised {type(err).__name__}: {err} "
                                  f"(line {where.lineno} of {where.name}).", *help_lines(1)])
        if used:
            return refuse(f"calls the library's {used}")
        why = compare(got, case.expected, **compare_kwargs)
        if why:
            lines = [f"✗ {name}: case {i} ({case.describe}): {why}."]
            what = None
            if diagnose is not None:
                try:
                    what = diagnose(got, case)
                except Exception:  # noqa: BLE001 - a diagnosis is a bonus; never let it hide the failure
                    what = None
            if what:
                lines.append(f"  What went wrong: {what}")
            return finish(False, lines + help_lines(1))
    return finish(True, [f"✓ {name}: all {len(cases)} cases match the library."])
