"""Settings of the web app: one frozen dataclass, read from the environment once per process.

Every field can be set with an environment variable ``CADSEARCH_WEB_<FIELD>`` (upper case), except the
workspace, which follows the project-wide rule (``$CADSEARCH_WORKSPACE``, else ``./cadsearch-workspace``).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from cadsearch.errors import InputError
from cadsearch.workspace import resolve_workspace

__all__ = ["Settings", "ENV_PREFIX"]

ENV_PREFIX = "CADSEARCH_WEB_"


@dataclass(frozen=True)
class Settings:
    """What the web app needs to know.

    Attributes:
        workspace: the workspace folder (catalog, views, index); ``web-cache/`` inside it holds thumbnails and GLBs.
        model: which trained model the searcher uses (``scratch`` or ``transfer``); None = the searcher's default.
        max_upload_bytes: largest accepted request body / uploaded file (bytes); larger ones get 413.
        max_pixels: largest accepted image (width × height) — decompression bombs are refused before decoding.
        top_k: results per search (the API's ``k`` parameter may ask for fewer or more, up to ``max_k``).
        max_k: the most results one search may ask for.
        thumbnail_size: side of the model thumbnails in pixels.
        examples_dir: a folder of photos offered as examples on the home page, read at run time (never copied);
            None = a few renders from the workspace's views.
        max_examples: how many example images the home page shows.
        results_kept: how many recent searches the results pages remember (in memory; older links expire).
        search_slots: searches (decode + search) running at once; more wait their turn. This bounds the memory
            of decoded uploads; the CPU gains little from more anyway.
        detect_threshold: the lowest score of an object found in a whole photo (0–1; ``cadsearch search
            --detect-threshold``); None = the detector's own (0.3). Needs a trained detector.
    """

    workspace: Path = dataclasses.field(default_factory=lambda: resolve_workspace(None))
    model: str | None = None
    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    top_k: int = 5
    max_k: int = 50
    thumbnail_size: int = 256
    examples_dir: Path | None = None
    max_examples: int = 6
    results_kept: int = 64
    search_slots: int = 4
    detect_threshold: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "workspace", Path(self.workspace).expanduser().absolute())
        if self.examples_dir is not None:
            object.__setattr__(self, "examples_dir", Path(self.examples_dir).expanduser().absolute())
        for name in (
            "max_upload_bytes",
            "max_pixels",
            "top_k",
            "max_k",
            "thumbnail_size",
            "results_kept",
            "search_slots",
        ):
            if getattr(self, name) < 1:
                raise InputError(f"web setting {name} must be positive, got {getattr(self, name)}")
        if self.detect_threshold is not None and not 0.0 <= self.detect_threshold <= 1.0:
            raise InputError(f"web setting detect_threshold must be between 0 and 1, got {self.detect_threshold}")
        if not 16 <= self.thumbnail_size <= 1024:
            raise InputError(f"web setting thumbnail_size must be between 16 and 1024, got {self.thumbnail_size}")

    @classmethod
    def from_env(cls, workspace: str | os.PathLike[str] | None = None, **overrides) -> Settings:
        """Settings from ``CADSEARCH_WEB_*`` variables, then ``overrides`` (keyword = field name)."""
        values: dict = {"workspace": resolve_workspace(workspace)}
        for f in dataclasses.fields(cls):
            raw = os.environ.get(ENV_PREFIX + f.name.upper())
            if raw is None or f.name == "workspace":
                continue
            values[f.name] = _parse(f.name, raw, f.type)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _parse(name: str, raw: str, annotation: str) -> object:
    """Turn an environment variable's text into the field's type (annotations are strings here)."""
    raw = raw.strip()
    if "int" in annotation:
        try:
            return int(raw.replace("_", ""))
        except ValueError:
            raise InputError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a whole number") from None
    if "float" in annotation:
        try:
            return float(raw) if raw else None
        except ValueError:
            raise InputError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a number") from None
    if "Path" in annotation:
        return Path(raw) if raw else None
    return raw or None
