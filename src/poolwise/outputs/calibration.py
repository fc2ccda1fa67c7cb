"""The files of a calibration (:mod:`poolwise.kinds.calibration`): ``calibration.csv`` (the
table), ``calibration.json`` (the table, the verdict and the normalised ranks),
``calibration.png`` (:func:`~poolwise.outputs.plots.calibration.plot_calibration`) and
``report.html`` (:func:`~poolwise.outputs.report.calibration_report`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from poolwise.kinds.calibration import Calibration
    from poolwise.outputs.report import Provenance

__all__ = ["write_calibration"]


def write_calibration(directory: Path, calibration: Calibration, *, title: str,
                      provenance: Provenance | None = None) -> None:
    """Write the table, the JSON document, the figure and the HTML page into ``directory``."""
    from poolwise.outputs.plots.calibration import plot_calibration
    from poolwise.outputs.report import REPORT_NAME, calibration_report
    from poolwise.outputs.writer import write_json

    calibration.table.to_csv(directory / "calibration.csv", index=False)
    document = {**calibration.to_dict(),
                "pit": {name: values.tolist() for name, values in calibration.pit.items()}}
    write_json(directory / "calibration.json", document)
    figure = plot_calibration(calibration)
    figure.savefig(directory / "calibration.png", dpi=110)
    (directory / REPORT_NAME).write_text(
        calibration_report(directory, calibration, title=title, provenance=provenance),
        encoding="utf-8")
