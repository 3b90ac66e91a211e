"""Metric logging: a CSV file always (``logs.csv``: one row per logged step, a fixed header), TensorBoard optionally."""

from __future__ import annotations

import csv
import math
from pathlib import Path


class MetricLogger:
    def __init__(self, folder: str | Path, columns: list[str], log_with: str = "csv", enabled: bool = True,
                 resume_step: int | None = None):
        self.enabled = enabled
        self.columns = ["step", *columns]
        self.path = Path(folder) / "logs.csv"
        self.tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rows = []
        if resume_step is not None and self.path.is_file():  # keep the rows up to the resumed step
            with self.path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with self.path.open("w", newline="") as f:
            w = csv.DictWriter(f, self.columns)
            w.writeheader()
            w.writerows({k: r.get(k, "") for k in self.columns} for r in rows)
        if log_with == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:  # tensorboard is not a hard dependency
                raise RuntimeError("log_with='tensorboard' needs the tensorboard package: pip install tensorboard "
                                   "(or use log_with='csv')") from err
            self.tb = SummaryWriter(str(Path(folder) / "tensorboard"))
        elif log_with != "csv":
            raise ValueError(f"log_with must be 'csv' or 'tensorboard', not {log_with!r}")

    def log(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        row = {"step": step, **{k: (f"{v:.6g}" if isinstance(v, float) and math.isfinite(v) else v)
                                for k, v in values.items() if k in self.columns}}
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.columns).writerow(row)
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_log(path: str | Path) -> dict[str, list[float]]:
    """``logs.csv`` → {column: values} with NaN for blanks (plots, tests, notebooks)."""
    with Path(path).open(newline="") as f:
        rows = list(csv.DictReader(f))
    cols = rows[0].keys() if rows else []
    return {c: [float(r[c]) if r[c] not in ("", None) else float("nan") for r in rows] for c in cols}
