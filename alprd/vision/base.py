"""What the rest of alprd needs from a detector and a recogniser.

Backends (our ONNX models today, others later) implement these small protocols;
the pipeline depends on nothing else. ``vision`` knows no database or network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class ModelError(RuntimeError):
    """A model file is missing, corrupt or of the wrong shape; the message says which and how to fix it."""


def open_session(path: Path, threads: int, what: str, fix: str) -> Any:
    """An onnxruntime CPU session for ``path`` with the settings every alprd model runs under.

    One thread pool of ``threads`` and sequential execution, so that each model uses
    exactly the cores it is given; full graph optimisation (it fuses the int8 pairs).
    A missing or unloadable file raises ModelError naming ``what`` it is and the ``fix``.
    """
    if not path.is_file():
        raise ModelError(f"{what} {path} not found: {fix}")
    try:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several private exception types
        raise ModelError(f"{what} {path} could not be loaded, it is corrupt or not an ONNX model "
                         f"({type(exc).__name__}: {exc}): {fix}") from exc


@dataclass(frozen=True)
class Detection:
    """A plate box in original-image pixels (x1, y1 inclusive; x2, y2 exclusive)."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1


@dataclass(frozen=True)
class PlateText:
    """What the recogniser read in one crop. Empty text means "not a plate".

    ``candidates`` are the likeliest texts with their probabilities, best first (the
    text itself among them); ``region`` is the configured region whose plate syntax
    ``text`` fits, and ``format_ok`` is False when regions are configured and the
    reading fits none of them (it is then kept as read, not forced into one).
    """

    text: str
    confidence: float
    char_confidences: tuple[float, ...]
    candidates: tuple[tuple[str, float], ...] = ()
    region: str | None = None
    format_ok: bool = True


class PlateDetector(Protocol):
    def detect(self, image: np.ndarray) -> list[Detection]:
        """Find plates in a BGR uint8 image of any size."""
        ...


class PlateRecognizer(Protocol):
    def read(self, crops: Sequence[np.ndarray]) -> list[PlateText]:
        """Read a batch of BGR uint8 plate crops; one result per crop, in order."""
        ...
