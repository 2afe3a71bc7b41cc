"""What a lesson notebook needs, in one call: `result = lesson(3)`.

It runs the lesson live into <project>/results/lessons with a figure per run that grows as its tasks
finish, and when the live run cannot be done (no broker, no interpreter for it, a failure) shows the
lesson's reference result instead, shipped in notebooks/reference/ and marked as such, so a class is
never left with nothing. `save_reference` writes those files from a live result (`make lesson N=3
SAVE_REFERENCE=1`).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from harness.course import verdicts
from harness.course.lessons import TITLES, LessonResult, run_lesson
from harness.errors import LabError
from harness.project import PROJECT_ROOT
from harness.results.paths import RESULTS_DIR

REFERENCE = PROJECT_ROOT / "notebooks" / "reference"
# A reference keeps two figures per lesson, scaled to this width: enough to point at, small to ship.
REFERENCE_WIDTH = 960


def _reference_paths(number: int) -> tuple[Path, list[Path]]:
    folder = REFERENCE / f"lesson{number}"
    return folder / "result.json", sorted(folder.glob("*.png"))


def reference_result(number: int) -> LessonResult:
    """The lesson's reference result: measured once on the machine it names, not on yours."""
    path, figures = _reference_paths(number)
    data = json.loads(path.read_text())
    table = pd.DataFrame(data["table"]).set_index(data["index"]) if data["table"] else pd.DataFrame()
    result = LessonResult(number, TITLES[number], verdicts.Verdict(**data["verdict"]), {}, table)
    result.reference = data["measured_on"]
    result.saved_figures = figures
    return result


def save_reference(result: LessonResult, machine: str) -> Path:
    """Write a live result as the lesson's reference (table, verdict, two figures scaled down)."""
    from PIL import Image

    path, old = _reference_paths(result.number)
    path.parent.mkdir(parents=True, exist_ok=True)
    for figure in old:
        figure.unlink()
    table = result.table.reset_index()
    path.write_text(json.dumps({"measured_on": machine, "index": result.table.index.name or table.columns[0],
                                "table": json.loads(table.to_json(orient="records")),
                                "verdict": result.verdict.__dict__}, indent=1) + "\n")
    figures = result.figures
    for i, figure in enumerate(f for f in (figures[:1] + figures[-1:]) if f.exists()):
        image: Image.Image = Image.open(figure)
        image = image.resize((REFERENCE_WIDTH, round(image.height * REFERENCE_WIDTH / image.width)))
        image.convert("P", palette=Image.Palette.ADAPTIVE).save(path.parent / f"{i + 1}-{figure.stem}.png",
                                                                 optimize=True)
    return path


def lesson(number: int, live: bool = True) -> LessonResult:
    """Run lesson `number` live from a notebook, or show its reference result if that cannot be done."""
    from IPython.display import Markdown, display

    from harness.present import live as live_views

    pd.set_option("display.precision", 3)
    try:
        result = run_lesson(number, results_dir=PROJECT_ROOT / RESULTS_DIR / "lessons", log=lambda _line: None,
                            live=live_views.notebook if live else None)
        for line in result.cautions:
            print(f"caution: {line}")
        return result
    except (LabError, OSError, ValueError) as exc:
        result = reference_result(number)
        display(Markdown(f"**The live run could not be done here** ({exc}).\n\n**What follows is the lesson's "
                         f"REFERENCE RESULT, measured on {result.reference}, not on this machine.**"))
        print(f"REFERENCE RESULT (measured on {result.reference}): the live run failed: {exc}")
        return result


def show_figures(result: LessonResult) -> None:
    from IPython.display import Image, display

    for figure in result.figures:
        display(Image(filename=str(figure)))
