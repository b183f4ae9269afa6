"""`make bench`: run every tests/bench/bench_*.py module's ``run()`` and print ``name: value unit``.

Benchmarks print numbers; they assert nothing. A benchmark that fails prints ``name: FAILED (reason)``
and the others still run. ``python -m tests.bench api mail`` runs a subset.
"""

import importlib
import sys
import traceback
import warnings
from pathlib import Path

# Handlers called without a metric (a GET) make Powertools warn on stderr: not a figure.
warnings.filterwarnings("ignore", message="No application metrics to publish")


def main(selected: list[str]) -> int:
    failed = 0
    for path in sorted(Path(__file__).parent.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if selected and name not in selected:
            continue
        try:  # run() may be a generator: the figures measured before a failure are printed
            for metric, value, unit in importlib.import_module(f"tests.bench.{path.stem}").run():
                print(f"{metric}: {value:g} {unit}" if isinstance(value, float) else f"{metric}: {value} {unit}",
                      flush=True)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as error:  # noqa: BLE001 -- pytest.fail() in a helper raises a BaseException too
            failed += 1
            traceback.print_exc(file=sys.stderr)
            reason = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
            print(f"{name}: FAILED ({type(error).__name__}{': ' + reason if reason else ''})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
