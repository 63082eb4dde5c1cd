"""Training metrics as JSON lines: one object per logged step, appended and flushed at once,
so a crash loses at most the line being written and ``tail -f`` shows progress.

Resuming from step N first drops every record past N (a run that crashed after its last
checkpoint logged steps that the resumed run will take again), so the file always reads as one
uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from types import TracebackType
from typing import Any

from kinetoscope.errors import KinetoscopeError

METRICS_NAME = "metrics.jsonl"


class MetricsLog:
    """Append-only JSONL file of metric records; each record has an int ``step``."""

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = Path(path)
        if resume_step is None:
            self.path.unlink(missing_ok=True)  # a fresh run starts a fresh log
        else:
            self._truncate_after(resume_step)
        try:
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise KinetoscopeError(f"cannot write metrics {self.path}: {exc.strerror}") from exc

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (numbers are rounded to 6 significant digits; NaN/inf -> null)."""
        line = json.dumps({key: _clean(value) for key, value in record.items()})
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _truncate_after(self, step: int) -> None:
        if not self.path.exists():
            return
        kept = [record for record in read_metrics(self.path) if record.get("step", 0) <= step]
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        temporary.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        os.replace(temporary, self.path)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every complete record of a metrics file (a torn last line is skipped)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    return value
