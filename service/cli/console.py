"""What the CLI prints: live training progress, result lines and the models table.

Kept apart from the click commands so the commands read as plain steps and
so a future command (``nnserve serve`` training an empty store) can show the
same progress.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import click

from nn import Callback
from service.store import VersionInfo


class TrainingProgress(Callback):
    """An ``nn`` callback showing one model's epochs: a progress bar with ETA on a terminal,
    plain log lines (about ten per model, plus the last epoch) when output is a pipe or a file."""

    def __init__(self, label: str, epochs: int, file: TextIO | None = None, tty: bool | None = None) -> None:
        self.label = label
        self.epochs = int(epochs)
        self.file = file if file is not None else sys.stdout
        self.tty = self.file.isatty() if tty is None else tty
        self.every = max(1, self.epochs // 10)
        self._bar: Any = None
        self._started = 0.0
        self._last: tuple[int, dict[str, float]] | None = None
        self._printed = -1

    def on_train_begin(self, logs: dict[str, float]) -> None:
        self._started = time.perf_counter()
        self._last, self._printed = None, -1
        if self.tty:
            self._bar = click.progressbar(
                length=self.epochs,
                label=self.label,
                show_eta=True,
                show_pos=True,
                item_show_func=lambda logs: format_logs(logs) if logs else None,
                file=self.file,
            )
            self._bar.__enter__()

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self._last = (epoch, dict(logs))
        if self._bar is not None:
            self._bar.update(1, current_item=logs)
        elif epoch == 0 or (epoch + 1) % self.every == 0 or epoch + 1 == self.epochs:
            self._line(epoch, logs)

    def on_train_end(self, logs: dict[str, float]) -> None:
        if self._last is not None and self._bar is None and self._printed != self._last[0]:
            self._line(*self._last)
        self.close()
        if self._last is not None and self._last[0] + 1 < self.epochs:
            click.echo(
                f"{self.label}: stopped at epoch {self._last[0] + 1}/{self.epochs}: no further improvement",
                file=self.file,
            )

    def close(self) -> None:
        """End the bar (also after an error, so the terminal line is finished)."""
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def _line(self, epoch: int, logs: Mapping[str, float]) -> None:
        elapsed = time.perf_counter() - self._started
        width = len(str(self.epochs))
        click.echo(
            f"{self.label}: epoch {epoch + 1:>{width}}/{self.epochs} {format_logs(logs)} ({elapsed:.1f} s)",
            file=self.file,
        )
        self._printed = epoch


def format_logs(logs: Mapping[str, float]) -> str:
    """``loss 0.1234 val_accuracy 0.9700`` from an epoch's logs (learning rate and timing left out)."""
    shown = [k for k in ("loss", "val_loss") if k in logs]
    shown += sorted(k for k in logs if k.startswith("val_") and k != "val_loss")
    return " ".join(f"{k} {logs[k]:.4f}" for k in shown)


def format_metrics(metrics: Mapping[str, float], primary: str | None = None) -> str:
    """``accuracy 0.9737 log_loss 0.0812``, the primary metric first."""
    keys = sorted(metrics, key=lambda k: (k != primary, k))
    return " ".join(f"{k} {metrics[k]:.4f}" for k in keys)


def version_list(infos: Sequence[VersionInfo]) -> str:
    """``1-4,6!,7``: runs of good versions collapsed, broken ones marked ``!``."""
    parts: list[str] = []
    run: list[int] = []

    def flush() -> None:
        parts.extend([f"{run[0]}-{run[-1]}"] if len(run) > 2 else [str(v) for v in run])
        run.clear()

    for info in infos:
        if info.ok and run and info.version == run[-1] + 1:
            run.append(info.version)
            continue
        flush()
        if info.ok:
            run.append(info.version)
        else:
            parts.append(f"{info.version}!")
    flush()
    return ",".join(parts)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [headers, *rows]]
    return "\n".join(lines)


def explanation_tables(body: Mapping[str, Any], top: int = 0) -> str:
    """An explanation answer (``POST .../explain``'s body) as text: per row a line with the prediction, the
    explained output at the row and at the baseline (and the completeness gap), then each feature's
    attribution, largest first (the ``top`` largest, every one when 0)."""
    method = body.get("method")
    steps = f", {body['steps']} steps" if body.get("steps") else ""
    baseline = body.get("baseline")
    shown = baseline if isinstance(baseline, str) else "a given row"
    parts = [f"{body.get('model')} version {body.get('version')}: {method}{steps}, baseline {shown}"]
    for i, row in enumerate(body.get("explanations") or []):
        gap = "" if row.get("completeness_gap") is None else f"; completeness gap {row['completeness_gap']:.3g}"
        parts.append(
            f"\nrow {i + 1}: prediction {row['prediction']}; explained output ({row['target']}) "
            f"{row['output']:.6g} at the row, {row['baseline_output']:.6g} at the baseline{gap}"
        )
        ranked = sorted(row["attributions"].items(), key=lambda kv: -abs(kv[1]))
        kept = ranked[:top] if top else ranked
        parts.append(table(["feature", "attribution"], [[name, f"{value:+.6g}"] for name, value in kept]))
        if len(kept) < len(ranked):
            parts.append(f"({len(ranked) - len(kept)} more; --top 0 shows every feature)")
    return "\n".join(parts)
