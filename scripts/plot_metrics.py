#!/usr/bin/python3
"""Plots a metrics file written by the examples (--metrics run.jsonl) to a PNG.

    scripts/plot_metrics.py run.jsonl                # writes run.png
    scripts/plot_metrics.py run.jsonl -o loss.png --title "mlp, AdamW"

One JSON object per line, each with a "step" and any of "loss", "val_loss", "accuracy" (other
keys are ignored). Training and validation loss share the left axis; accuracy, when present,
gets its own axis on the right. When a resumed run appended steps that were already logged,
the later record wins. Needs matplotlib (Debian: python3-matplotlib).
"""
import argparse
import json
import pathlib
import sys


def read_series(path):
    """{"loss": {step: value}, ...} from the JSONL file; malformed lines are reported and skipped."""
    series = {"loss": {}, "val_loss": {}, "accuracy": {}}
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
                step = record["step"]
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                print(f"plot_metrics: {path}:{number}: skipped ({error})", file=sys.stderr)
                continue
            for key, points in series.items():
                value = record.get(key)
                if isinstance(value, (int, float)):
                    points[step] = value
    return series


def plot(series, output, title):
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as pyplot

    figure, loss_axis = pyplot.subplots(figsize=(8, 4.5), dpi=120)
    handles = []
    for key, label, style in (("loss", "training loss", "-"), ("val_loss", "validation loss", "o-")):
        points = sorted(series[key].items())
        if points:
            steps, values = zip(*points)
            handles += loss_axis.plot(steps, values, style, label=label, markersize=4)
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("loss")
    loss_axis.grid(alpha=0.3)

    accuracy = sorted(series["accuracy"].items())
    if accuracy:
        accuracy_axis = loss_axis.twinx()
        steps, values = zip(*accuracy)
        handles += accuracy_axis.plot(steps, [100 * v for v in values], "s--", color="tab:green",
                                      label="accuracy (%)", markersize=4)
        accuracy_axis.set_ylabel("accuracy (%)")

    loss_axis.legend(handles=handles, loc="upper right")
    loss_axis.set_title(title)
    figure.tight_layout()
    figure.savefig(output)


def main():
    parser = argparse.ArgumentParser(description="Plot an examples metrics JSONL file to PNG.")
    parser.add_argument("metrics", type=pathlib.Path, help="the JSONL file (--metrics of mlp or gpt)")
    parser.add_argument("-o", "--output", type=pathlib.Path, help="the PNG to write (default: METRICS with .png)")
    parser.add_argument("--title", help="the plot's title (default: the file's name)")
    arguments = parser.parse_args()

    try:
        series = read_series(arguments.metrics)
    except OSError as error:
        print(f"plot_metrics: cannot read {arguments.metrics}: {error.strerror}", file=sys.stderr)
        return 2
    if not series["loss"] and not series["val_loss"]:
        print(f"plot_metrics: {arguments.metrics} has no loss or val_loss records", file=sys.stderr)
        return 2
    try:
        import matplotlib  # noqa: F401  (checked here to fail with a one-line reason)
    except ImportError:
        print("plot_metrics: needs matplotlib (Debian: apt-get install python3-matplotlib)", file=sys.stderr)
        return 2

    output = arguments.output or arguments.metrics.with_suffix(".png")
    plot(series, output, arguments.title or arguments.metrics.name)
    print(f"plot_metrics: wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
