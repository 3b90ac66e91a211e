"""The grader behind every ``check_<name>``: run the student's function on seeded random cases, compare with the
library's own implementation, print one friendly line (and a hint on failure), return True / False.

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


@dataclass
class Case:
    """One graded call: ``fn(*args, **kwargs)`` should equal ``expected`` (``describe`` names it in messages)."""

    args: tuple
    expected: Any
    describe: str
    kwargs: dict = field(default_factory=dict)


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


def grade(name: str, fn: Callable, cases: Iterable[Case], hint: str, *, quiet: bool = False,
          **compare_kwargs) -> bool:
    """Run ``fn`` on every case; print ``✓ name: N cases pass`` or the first failure with ``hint``."""
    strict = os.environ.get("OSDFACE_EXERCISES_STRICT", "") == "1"

    def say(msg: str) -> None:
        if not quiet:
            print(msg, flush=True)
        if strict and msg.startswith("✗"):
            raise AssertionError(msg)

    if not callable(fn):
        say(f"✗ {name}: pass your function itself (e.g. check_{name}(my_function)), not {type(fn).__name__}")
        return False
    cases = list(cases)
    for i, case in enumerate(cases, 1):
        try:
            got = fn(*case.args, **case.kwargs)
        except NotImplementedError:
            say(f"✗ {name}: not written yet (the function raises NotImplementedError). Hint: {hint}")
            return False
        except Exception as err:  # noqa: BLE001 - a classroom checker reports, it does not crash
            where = traceback.extract_tb(err.__traceback__)[-1]
            say(f"✗ {name}: case {i} ({case.describe}) raised {type(err).__name__}: {err} "
                f"(line {where.lineno} of {where.name}). Hint: {hint}")
            return False
        why = compare(got, case.expected, **compare_kwargs)
        if why:
            say(f"✗ {name}: case {i} ({case.describe}): {why}. Hint: {hint}")
            return False
    say(f"✓ {name}: all {len(cases)} cases match the library.")
    return True
