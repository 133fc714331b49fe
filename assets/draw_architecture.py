"""Draw ``assets/architecture.png``: the parts of pairtrade and what flows between them.

Run from the repository root (or anywhere)::

    python assets/draw_architecture.py [--out assets/architecture.png] [--dpi 100]

Only matplotlib is needed (Agg backend, no display). Keep the picture true to the code: when a part
changes, edit the boxes below and re-run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

W, H = 160.0, 106.0  # drawing units; the figure is 16 x 10.6 inches

C_OFFLINE = "#eef4fb"
C_LIVE = "#f3f8ef"
C_FILE = "#fff7d6"
C_PROC = "#dbe9f7"
C_TRADER = "#e3f1dc"
C_BROKER = "#fbe3d6"
C_NOTIFY = "#eadcf5"
C_EDGE = "#333333"
C_ARROW = "#2f4f6f"


def box(ax, x0, y0, x1, y1, title, lines=(), color=C_PROC, title_size=12, size=9.5, dashed=False,
        align="center", z=2):
    """Draw a rounded box with a bold title and body lines.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Target axes (data units are drawing units).
    x0, y0, x1, y1 : float
        Lower-left and upper-right corners.
    title : str
        Bold first line.
    lines : sequence of str, optional
        Body lines, drawn under the title.
    color : str, optional
        Fill colour.
    title_size, size : float, optional
        Font sizes in points of the title and the body.
    dashed : bool, optional
        Dashed outline (used for containers and either/or groups).
    align : {"center", "left"}, optional
        Horizontal alignment of the body lines.
    z : int, optional
        Drawing order.

    Returns
    -------
    tuple of float
        ``(x0, y0, x1, y1)`` for placing arrows.
    """
    patch = FancyBboxPatch(
        (x0, y0), x1 - x0, y1 - y0, boxstyle="round,pad=0.2,rounding_size=1.2",
        linewidth=1.6 if not dashed else 1.4, edgecolor=C_EDGE, facecolor=color,
        linestyle="--" if dashed else "-", zorder=z,
    )
    ax.add_patch(patch)
    cx = (x0 + x1) / 2
    ty = y1 - 1.2
    if title:
        ax.text(cx, ty, title, ha="center", va="top", fontsize=title_size, fontweight="bold", zorder=z + 1)
        ty -= title_size * 0.2 + 1.0
    lx = cx if align == "center" else x0 + 1.2
    for line in lines:
        ax.text(lx, ty, line, ha=align, va="top", fontsize=size, zorder=z + 1)
        ty -= size * 0.19 + 0.75
    return x0, y0, x1, y1


def arrow(ax, p0, p1, label="", label_xy=None, rad=0.0, color=C_ARROW, size=9, both=False, ha="center",
          style="-|>"):
    """Draw an arrow from ``p0`` to ``p1`` with an optional label.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Target axes.
    p0, p1 : tuple of float
        Start and end points.
    label : str, optional
        Text placed at ``label_xy`` (default: the midpoint).
    label_xy : tuple of float, optional
        Label position.
    rad : float, optional
        Curvature of the arc (0 = straight).
    color : str, optional
        Line colour.
    size : float, optional
        Label font size in points.
    both : bool, optional
        Arrow heads at both ends.
    ha : str, optional
        Horizontal alignment of the label.
    style : str, optional
        Matplotlib arrow style when ``both`` is false.
    """
    patch = FancyArrowPatch(
        p0, p1, arrowstyle="<|-|>" if both else style, mutation_scale=16, linewidth=1.8, color=color,
        connectionstyle=f"arc3,rad={rad}", zorder=5, shrinkA=2, shrinkB=2,
    )
    ax.add_patch(patch)
    if label:
        lx, ly = label_xy or ((p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2)
        ax.text(lx, ly, label, ha=ha, va="center", fontsize=size, color=color, zorder=6,
                bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none", alpha=0.9))


def path_arrow(ax, points, label="", label_xy=None, color=C_ARROW, size=9, ha="center"):
    """Draw a polyline whose last segment carries an arrow head.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Target axes.
    points : sequence of tuple of float
        Vertices, at least two.
    label : str, optional
        Text placed at ``label_xy``.
    label_xy : tuple of float, optional
        Label position (default: the second vertex).
    color : str, optional
        Line colour.
    size : float, optional
        Label font size in points.
    ha : str, optional
        Horizontal alignment of the label.
    """
    xs, ys = zip(*points[:-1])
    ax.plot(list(xs) + [points[-1][0]], list(ys) + [points[-1][1]], color=color, linewidth=1.8, zorder=5,
            solid_capstyle="round")
    arrow(ax, points[-2], points[-1], color=color)
    if label:
        lx, ly = label_xy or points[1]
        ax.text(lx, ly, label, ha=ha, va="center", fontsize=size, color=color, zorder=6,
                bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none", alpha=0.9))


def draw(out: Path, dpi: int = 100) -> Path:
    """Render the architecture picture.

    Parameters
    ----------
    out : pathlib.Path
        PNG file to write.
    dpi : int, optional
        Resolution; 100 gives a 1600 x 1060 pixel image.

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    fig = plt.figure(figsize=(W / 10, H / 10), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, W)
    ax.set_ylim(0, H)
    ax.axis("off")

    # ---- bands ---------------------------------------------------------------------------
    ax.add_patch(FancyBboxPatch((1, 73), W - 2, 31.5, boxstyle="round,pad=0,rounding_size=2",
                                facecolor=C_OFFLINE, edgecolor="#9db4cc", linewidth=1.2, zorder=0))
    ax.text(2.5, 103, "OFFLINE  ·  python optimizer.py", ha="left", va="top", fontsize=13,
            fontweight="bold", color="#34506e")
    ax.add_patch(FancyBboxPatch((1, 1), W - 2, 67.5, boxstyle="round,pad=0,rounding_size=2",
                                facecolor=C_LIVE, edgecolor="#a8c49a", linewidth=1.2, zorder=0))
    ax.text(2.5, 67.5, "LIVE  ·  python controller.py", ha="left", va="top",
            fontsize=13, fontweight="bold", color="#3d5c2f")

    # ---- offline: optimizer ----------------------------------------------------------------
    box(ax, 3, 75.5, 41, 96.5, "bars (pairtrade.data)", [
        "--data files (CSV / CSV.gz)",
        "Alpaca historical bars",
        "(alpaca-py, on-disk cache)",
        "embedded arch data",
        "(SPX / COMP daily)",
    ], color=C_FILE)
    box(ax, 47, 89, 69, 98.5, "pairs.json", ["pairs: y, x legs"], color=C_FILE)
    box(ax, 75, 75.5, 117, 98.5, "optimizer.py", [
        "pairtrade.backtest: parameter grid,",
        "cost model, Sharpe + min trades, gates",
        "runs the ONE strategy kernel",
        "(pairtrade.strategy, numba) over",
        "pairtrade.signals arrays",
    ])
    box(ax, 124, 79, 157, 93, "optimized_params.json", ["per-pair entry / exit / stop", "thresholds + metrics"],
        color=C_FILE)
    arrow(ax, (41.5, 82), (74.5, 82), "historical bars", label_xy=(49, 82))
    arrow(ax, (69.5, 94), (74.5, 94))
    arrow(ax, (117.5, 86), (123.5, 86))

    # ---- live: controller --------------------------------------------------------------------
    box(ax, 3, 27, 57, 62.5, "controller.py  (pairtrade.live)", [], color=C_PROC, title_size=12.5)
    sub = dict(color="white", title_size=10, size=9, z=3)
    box(ax, 5, 51.5, 55, 57.5, "ONE market-data websocket", ["alpaca-py StockDataStream (bars)"], **sub)
    box(ax, 5, 43.5, 55, 49.5, "ONE trade_updates stream", ["routed to traders by client_order_id"], **sub)
    box(ax, 5, 29, 55, 41.5, "supervisor", ["starts one trader per pair, staggered",
                                            "(REST budget); restarts them;",
                                            "fans bars out, one pipe per trader"], **sub)

    box(ax, 3, 4, 57, 17.5, "run dir", ["events.jsonl  ·  trades.csv", "equity.csv  ·  summary.json"],
        color=C_FILE)
    arrow(ax, (30, 26.5), (30, 18), "writes", label_xy=(34, 22.2))

    # config into the controller
    path_arrow(ax, [(58, 88.5), (58, 66), (50, 66), (50, 63)], "reads", label_xy=(58, 78))
    path_arrow(ax, [(140, 78.5), (140, 70.7), (44, 70.7), (44, 63)], "thresholds", label_xy=(100, 70.7))

    # ---- live: traders ------------------------------------------------------------------------
    for k, off in enumerate((2.4, 1.2)):
        ax.add_patch(FancyBboxPatch((67 + off, 22 - off), 44, 33, boxstyle="round,pad=0.2,rounding_size=1.2",
                                    facecolor=C_TRADER, edgecolor=C_EDGE, linewidth=1.0, zorder=1 + k))
    box(ax, 67, 22, 111, 55, "trader process  (one per pair)", [], color=C_TRADER, title_size=12, z=3)
    tsub = dict(color="white", title_size=10, size=9, z=4)
    box(ax, 69, 42.5, 109, 51.5, "SignalEngine  (pairtrade.signals)", [
        "numba Kalman hedge ratio, spread z-score,", "Hurst exponent, ADF statistic + p-value"], **tsub)
    box(ax, 69, 34.5, 109, 40, "strategy kernel  (strategy_step)", ["same code as the backtest"], **tsub)
    box(ax, 69, 24, 88, 32, "orders", ["alpaca-py", "TradingClient"], **tsub)
    box(ax, 90, 24, 109, 32, "state store", ["persist, then act;", "reconcile on start"], **tsub)
    arrow(ax, (90, 42.3), (90, 40.2))
    arrow(ax, (80, 34.3), (80, 32.2))

    # controller -> traders
    arrow(ax, (57.5, 35), (66.5, 35))
    ax.text(62, 36, "pipes:\nbars,\norder\nupdates", ha="center", va="bottom", fontsize=8.5, color=C_ARROW)

    # ---- broker side ---------------------------------------------------------------------------
    box(ax, 121, 21, 158, 64.5, "broker  (either one)", [], color="#fdf3ee", dashed=True, title_size=12)
    box(ax, 123, 36, 156, 59, "local paper exchange", [
        "pairtrade.exchange, in-process,",
        "127.0.0.1, no keys:",
        "REST  ·  msgpack market-data ws",
        "trade_updates ws",
        "replay clock  ·  fill model",
        "fault injection",
    ], color=C_BROKER, title_size=10.5, size=9, z=3)
    ax.text(139.5, 34.2, "— or —", ha="center", va="center", fontsize=10, fontstyle="italic", zorder=4)
    box(ax, 123, 23, 156, 32, "Alpaca paper / live", ["alpaca.markets", "API keys in .env"], color=C_BROKER,
        title_size=10.5, size=9, z=3)

    # broker <-> controller streams (above the traders)
    path_arrow(ax, [(120.5, 61.5), (62, 61.5), (62, 54.5), (57.5, 54.5)],
               "market-data ws: bars of every pair's legs", label_xy=(92, 61.5))
    path_arrow(ax, [(120.5, 58), (64.5, 58), (64.5, 46.5), (57.5, 46.5)],
               "trade_updates ws: fills, cancels, rejects", label_xy=(92, 58))
    # traders -> broker REST
    arrow(ax, (114, 28), (120.5, 28), both=True)
    ax.text(117, 25.6, "REST\norders,\npositions", ha="center", va="top", fontsize=8.5, color=C_ARROW)

    # ---- notifications -------------------------------------------------------------------------
    box(ax, 67, 3.5, 113, 15.5, "Telegram notifier  (pairtrade.notify)", [
        "python-telegram-bot, queue + sender thread;",
        "NullNotifier when TELEGRAM_* unset",
    ], color=C_NOTIFY, title_size=10.5, size=9)
    box(ax, 124, 5.5, 156, 13.5, "Telegram Bot API", ["your chat"], color=C_NOTIFY, title_size=10.5)
    arrow(ax, (90, 18.3), (90, 15.8), "entries, exits", label_xy=(101, 17.4), size=8.5)
    path_arrow(ax, [(57.5, 30), (61, 30), (61, 9.5), (66.5, 9.5)], "equity,\nalerts", label_xy=(61, 21),
               size=8.5)
    arrow(ax, (113.5, 9.5), (123.5, 9.5), "HTTPS", label_xy=(118.5, 12), size=8.5)

    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, facecolor="white", metadata={"Software": None})
    plt.close(fig)
    return out


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("architecture.png"))
    parser.add_argument("--dpi", type=int, default=100)
    args = parser.parse_args()
    path = draw(args.out, args.dpi)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
