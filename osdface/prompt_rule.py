"""The prompt rule's ordering and selection in NumPy, for the ONNX Runtime pipeline (docs/ARCHITECTURE.md §2).

The exported VRE graph computes, for every grid position, the distance to its nearest code and that code's index
(:meth:`osdface.models.Codebook.distances`, then min / argmin: the same float32 formula and layout as the torch
rule). What is left happens here, outside any graph, with NumPy only (no torch):

- positions ordered by their nearest-code distance, ascending, with **equal distances in the order torch.sort's
  default (unstable) algorithm puts them on a CPU** (:func:`torch_cpu_sort_order`);
- walking that order, each code kept the first time it appears, until ``num_tokens`` (77) distinct codes are kept;
  fewer: the remaining slots are -1 (zero rows of the prompt).

The result equals :func:`osdface.models.codebook.select_unique_codes` given the same distances, including exact
ties: ``tests/test_onnx.py`` checks it on random, tie-heavy and near-tie (the fixture of ``tests/test_codebook.py``)
cases.

Exact ties. Which of two positions with *exactly* equal distances comes first only matters when they map to
different codes (a different first occurrence, or the 77-code cut). ``torch.sort`` without ``stable=True`` on a CPU
is ``std::sort`` on (value, index) pairs comparing values (NaN last); PyTorch's Linux wheels are built with
libstdc++, whose ``std::sort`` is an introsort (median-of-three quicksort, heapsort below a depth limit, insertion
sort for the last runs of 16). :func:`torch_cpu_sort_order` is a transcription of that algorithm, so the tie order
is torch's own; NumPy's sorts (stable, or its SIMD quicksort) order ties differently and were not used. Torch
builds with another C++ library (macOS: libc++, Windows: MSVC) or on a GPU order exact ties their own way, so
there the torch rule itself differs from this one on exact ties between different codes (rare on real features).
"""

from __future__ import annotations

import numpy as np

__all__ = ["torch_cpu_sort_order", "select_codes"]

_THRESHOLD = 16  # libstdc++'s _S_threshold


def _less(a: float, b: float) -> bool:
    """PyTorch's ascending key comparison: NaN sorts after every number."""
    return (a == a and b != b) or a < b


def torch_cpu_sort_order(values) -> list[int]:
    """The positions of ``values`` (a sequence of numbers, e.g. ``array.tolist()``) in the order
    ``torch.sort(values).indices`` gives on a Linux CPU build: libstdc++'s ``std::sort`` (introsort) of
    (value, index) pairs compared by value, transcribed step by step."""
    v = list(values)
    ix = list(range(len(v)))
    n = len(v)

    def swap(i: int, j: int) -> None:
        v[i], v[j] = v[j], v[i]
        ix[i], ix[j] = ix[j], ix[i]

    def adjust_heap(first: int, hole: int, length: int, value: float, index: int) -> None:
        top = second = hole
        while second < (length - 1) // 2:
            second = 2 * (second + 1)
            if _less(v[first + second], v[first + second - 1]):
                second -= 1
            v[first + hole], ix[first + hole] = v[first + second], ix[first + second]
            hole = second
        if (length & 1) == 0 and second == (length - 2) // 2:
            second = 2 * (second + 1)
            v[first + hole], ix[first + hole] = v[first + second - 1], ix[first + second - 1]
            hole = second - 1
        parent = (hole - 1) // 2  # __push_heap
        while hole > top and _less(v[first + parent], value):
            v[first + hole], ix[first + hole] = v[first + parent], ix[first + parent]
            hole = parent
            parent = (hole - 1) // 2
        v[first + hole], ix[first + hole] = value, index

    def heap_sort(first: int, last: int) -> None:  # __partial_sort(first, last, last): make_heap + sort_heap
        length = last - first
        if length >= 2:
            parent = (length - 2) // 2
            while True:
                adjust_heap(first, parent, length, v[first + parent], ix[first + parent])
                if parent == 0:
                    break
                parent -= 1
        while last - first > 1:
            last -= 1
            value, index = v[last], ix[last]
            v[last], ix[last] = v[first], ix[first]
            adjust_heap(first, 0, last - first, value, index)

    def introsort_loop(first: int, last: int, depth: int) -> None:
        while last - first > _THRESHOLD:
            if depth == 0:
                heap_sort(first, last)
                return
            depth -= 1
            # __move_median_to_first(first, first + 1, mid, last - 1)
            a, b, c = first + 1, first + (last - first) // 2, last - 1
            if _less(v[a], v[b]):
                if _less(v[b], v[c]):
                    swap(first, b)
                elif _less(v[a], v[c]):
                    swap(first, c)
                else:
                    swap(first, a)
            elif _less(v[a], v[c]):
                swap(first, a)
            elif _less(v[b], v[c]):
                swap(first, c)
            else:
                swap(first, b)
            # __unguarded_partition(first + 1, last, pivot = first)
            lo, hi, pivot = first + 1, last, v[first]
            while True:
                while _less(v[lo], pivot):
                    lo += 1
                hi -= 1
                while _less(pivot, v[hi]):
                    hi -= 1
                if not lo < hi:
                    break
                swap(lo, hi)
                lo += 1
            introsort_loop(lo, last, depth)
            last = lo

    def linear_insert(i: int) -> None:  # __unguarded_linear_insert
        value, index = v[i], ix[i]
        j = i - 1
        while _less(value, v[j]):
            v[j + 1], ix[j + 1] = v[j], ix[j]
            j -= 1
        v[j + 1], ix[j + 1] = value, index

    def insertion_sort(first: int, last: int) -> None:
        for i in range(first + 1, last):
            if _less(v[i], v[first]):
                value, index = v[i], ix[i]
                v[first + 1:i + 1], ix[first + 1:i + 1] = v[first:i], ix[first:i]
                v[first], ix[first] = value, index
            else:
                linear_insert(i)

    if n > 1:
        introsort_loop(0, n, 2 * (n.bit_length() - 1))  # depth limit 2·⌊log2 n⌋
        if n > _THRESHOLD:  # __final_insertion_sort
            insertion_sort(0, _THRESHOLD)
            for i in range(_THRESHOLD, n):
                linear_insert(i)
        else:
            insertion_sort(0, n)
    return ix


def select_codes(min_dist: np.ndarray, nearest: np.ndarray, num_tokens: int = 77) -> tuple[np.ndarray, np.ndarray]:
    """The prompt rule on the VRE graph's outputs: ``min_dist`` (B, N) float32 nearest-code distances and
    ``nearest`` (B, N) their code indices → (indices (B, num_tokens) int64, -1 where not valid; valid (B, T) bool).
    Each image's selection is its own (a batch gives every image what it would get alone)."""
    min_dist, nearest = np.asarray(min_dist), np.asarray(nearest)
    if min_dist.ndim != 2 or min_dist.shape != nearest.shape:
        raise ValueError(f"expected (B, N) distances and indices of one shape, got {min_dist.shape}, {nearest.shape}")
    indices = np.full((min_dist.shape[0], num_tokens), -1, dtype=np.int64)
    for b in range(min_dist.shape[0]):
        kept: dict[int, None] = {}
        codes = nearest[b]
        for position in torch_cpu_sort_order(min_dist[b].tolist()):
            kept.setdefault(int(codes[position]))
            if len(kept) == num_tokens:
                break
        indices[b, :len(kept)] = list(kept)
    return indices, indices >= 0
