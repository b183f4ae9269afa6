"""`make bench`: run every tests/bench/bench_*.py module's ``run()`` and print ``name: value unit``.

Benchmarks print numbers; they assert nothing. ``python -m tests.bench api mail`` runs a subset.
"""

import importlib
import sys
import warnings
from pathlib import Path

# Handlers called without a metric (a GET) make Powertools warn on stderr: not a figure.
warnings.filterwarnings("ignore", message="No application metrics to publish")


def main(selected: list[str]) -> None:
    for path in sorted(Path(__file__).parent.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if selected and name not in selected:
            continue
        module = importlib.import_module(f"tests.bench.{path.stem}")
        for metric, value, unit in module.run():
            print(f"{metric}: {value:g} {unit}" if isinstance(value, float) else f"{metric}: {value} {unit}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
