"""BENCHMARKS.md is written in sections, each owned by one benchmark script and kept between markers."""
from __future__ import annotations

import re
from pathlib import Path

PATH = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
HEADER = "# Benchmarks of the lab itself\n\nWritten by the scripts in `benchmarks/`; each section names its machine.\n"


def write_section(name: str, lines: list[str]) -> str:
    """Replace (or append) the section `name` of BENCHMARKS.md; returns the section's text."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = "\n".join([start, *lines, end])
    old = PATH.read_text() if PATH.exists() else HEADER
    if start in old:
        new = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _m: text, old, flags=re.S)
    else:
        new = old.rstrip() + "\n\n" + text + "\n"
    PATH.write_text(new)
    return text
