"""The grader behind every ``check_<name>``: run the student's function on seeded random cases, compare with the
library's own implementation, print what happened, return a :class:`CheckResult` (true when every case passes).

Help comes in tiers, so that "Run all" on an unfinished notebook gives nothing away:

- a function that is **not written yet** (it still raises ``NotImplementedError``) gets one line saying so, and no
  hint unless the student asks for one;
- a **wrong answer** (or an exception) gets the failing case, *what went wrong* when the checker can tell (a
  property of the result: "does not sum to 1", "the transpose of the expected kernel", "overflows for large
  logits", …) and a **conceptual hint** (hint level 1: which idea or formula to revisit, no code);
- **code-level help** only on request: ``check_<name>(fn, hint_level=2)``. ``hint_level=0`` prints no hint at all.

A checker never raises for a wrong answer or for an exception inside the student's code: a classroom notebook keeps
running, and the message says what went wrong on which case. With ``OSDFACE_EXERCISES_STRICT=1`` in the environment
a failure raises ``AssertionError`` with the same message instead: CI runs the solution notebooks that way, so a
solution that stops matching the library fails the build.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import torch

HINT_LEVELS = (0, 1, 2)


@dataclass
class Case:
    """One graded call: ``fn(*args, **kwargs)`` should equal ``expected`` (``describe`` names it in messages)."""

    args: tuple
    expected: Any
    describe: str
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Hints:
    """``concept``: level 1, what to revisit (no code). ``code``: level 2, code-level steps (only on request)."""

    concept: str
    code: str


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
          **compare_kwargs) -> CheckResult:
    """Run ``fn`` on every case; print ``✓ name: N cases pass`` or the first failure with tiered help.

    ``hint_level`` None (the default): a conceptual hint for a wrong answer, nothing for a stub; 0: no hint;
    1: the conceptual hint (also for a stub); 2: the conceptual and the code-level hint. ``diagnose(got, case)``
    may name the property that failed (one sentence, or None)."""
    strict = os.environ.get("OSDFACE_EXERCISES_STRICT", "") == "1"
    if hint_level is not None and hint_level not in HINT_LEVELS:
        raise ValueError(f"hint_level must be one of {HINT_LEVELS} (or None), not {hint_level!r}")
    fn_name = getattr(fn, "__name__", "my_function")
    if fn_name == "<lambda>":
        fn_name = "my_function"
    call = f"{_check_name(name)}({fn_name}, hint_level=2)"

    def help_lines(default_level: int) -> list[str]:
        level = default_level if hint_level is None else hint_level
        lines = []
        if level >= 1:
            lines.append(f"  Hint: {hints.concept}")
        if level >= 2:
            lines.append(f"  Code-level help: {hints.code}")
        elif level == 1:
            lines.append(f"  Still stuck? {call} shows code-level help.")
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
    for i, case in enumerate(cases, 1):
        try:
            got = fn(*case.args, **case.kwargs)
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
