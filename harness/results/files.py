"""Writing result files so that a reader never sees one half-written, and the `latest` links."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import ResultsError


def write_atomic(path: Path, text: str) -> None:
    """Write a whole file or nothing: a reader never sees it half-written."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_json(path: Path, what: str) -> Any:
    """A manifest's JSON, or a ResultsError naming the file (`what` says which folder it should be in)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing (is {path.parent} a {what} folder?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise ResultsError(f"{path}: unreadable ({exc.strerror})") from None


def write_frame(path: Path, df: pd.DataFrame, float_format: str = "%.9f") -> None:
    """A table as CSV, atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_csv(tmp, index=False, float_format=float_format)
    os.replace(tmp, path)


def link_latest(folder: Path, name: str) -> None:
    """Point <folder's parent>/<name> at `folder` (a relative symlink, replaced atomically)."""
    link = folder.parent / name
    tmp = folder.parent / f".{name}-{folder.name}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(folder.name)
    os.replace(tmp, link)
