"""What the rest of alprd needs from a detector and a recogniser.

Backends (our ONNX models today, others later) implement these small protocols;
the pipeline depends on nothing else. ``vision`` knows no database or network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class ModelError(RuntimeError):
    """A model file is missing, corrupt or of the wrong shape; the message says which and how to fix it."""


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
    """What the recogniser read in one crop. Empty text means "not a plate"."""

    text: str
    confidence: float
    char_confidences: tuple[float, ...]


class PlateDetector(Protocol):
    def detect(self, image: np.ndarray) -> list[Detection]:
        """Find plates in a BGR uint8 image of any size."""
        ...


class PlateRecognizer(Protocol):
    def read(self, crops: Sequence[np.ndarray]) -> list[PlateText]:
        """Read a batch of BGR uint8 plate crops; one result per crop, in order."""
        ...
