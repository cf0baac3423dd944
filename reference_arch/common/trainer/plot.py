"""The loss curve as a picture the Dagster UI shows: a PNG embedded in Markdown metadata
(``![loss](data:image/png;base64,...)``, as Dagster's docs embed a matplotlib figure).

matplotlib draws it (its Agg backend, through ``Figure`` and ``FigureCanvasAgg``: no pyplot, no global
backend switch, safe in a step's thread); the caption under the image gives the numbers.

Light: no torch, no transformers; matplotlib only inside ``loss_png``.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any, Sequence

WIDTH, HEIGHT = 640, 280  # pixels, either way
CURVE = "tab:blue"


def loss_points(curve: Sequence[dict[str, Any]]) -> list[tuple[int, float]]:
    """``(step, loss)`` of each metrics report with a finite loss, in step order."""
    points = []
    for m in curve:
        try:
            step, loss = int(m["step"]), float(m["loss"])
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(loss):
            points.append((step, loss))
    return sorted(points)


def loss_png(steps: Sequence[int], losses: Sequence[float]) -> bytes:
    """The training loss against the step as PNG bytes (``WIDTH`` x ``HEIGHT`` pixels)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH / 100, HEIGHT / 100), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(steps, losses, color=CURVE, marker="." if len(steps) <= 30 else None)
    axes.set_xlabel("step")
    axes.set_ylabel("training loss")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def loss_plot_markdown(curve: Sequence[dict[str, Any]]) -> str | None:
    """The curve's plot as Markdown (the image, then a line with the numbers), or None with no finite loss."""
    points = loss_points(curve)
    if not points:
        return None
    steps, losses = [s for s, _ in points], [v for _, v in points]
    image = base64.b64encode(loss_png(steps, losses)).decode("ascii")
    caption = (f"Training loss {losses[0]:.4g} at step {steps[0]:,} -> {losses[-1]:.4g} at step {steps[-1]:,} "
               f"(lowest {min(losses):.4g}, {len(points)} reports)")
    return f"![training loss](data:image/png;base64,{image})\n\n{caption}"
