"""Every benchmark in one command: each bench module runs as its own process, its last line
(one JSON object) is collected, a summary table is printed, and the last line is one JSON
object of every figure and ratio keyed by bench.

    .venv/bin/python -m bench                  # every bench at its default size
    .venv/bin/python -m bench --quick          # small sizes, under two minutes on 2 cores
    .venv/bin/python -m bench --only ingest,scale
    .venv/bin/python -m bench --soak           # also the soak bench (never by default)

A bench module that is not there (written in parallel elsewhere) is skipped with a note; one
that fails or prints no JSON last line is reported as failed (exit code 1), and the others
still run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Bench:
    name: str
    args: list[str] = field(default_factory=list)  # the default run's arguments
    quick: list[str] | None = field(default_factory=lambda: ["--quick"])  # None: not in --quick
    timeout_s: float = 3600.0
    quick_timeout_s: float = 60.0
    optional: bool = False  # only with its own flag (--soak)


# --quick sizes aim at two minutes for the whole run on this 2-core machine: each module's own
# --quick where it is small enough, smaller sizes where it is not (README: what is too slow).
BENCHES = [
    Bench("ingest", quick=["--quick", "--store", "postgres", "-n", "3000", "--naive", "200"]),
    Bench("nats_ingest", quick=["--quick", "-n", "2000"]),
    Bench("http", quick=["--duration", "3"]),  # its --quick is 2 x 5 s runs
    # The log holds a 10,000-event customer and a 9,000-event template whatever --events says;
    # its catch-up (about 800 events/s before issue 8's read-path work) is most of this run.
    Bench("projections", quick=["--quick", "--events", "20000", "--reads", "300"]),
    Bench("scale", quick=["--quick", "-n", "1000"]),  # two workers' start-up is most of it
    Bench("audit", quick=["--quick", "--events", "20000"]),
    Bench("pages", quick=["--quick"]),
    Bench("explain", quick=None),
    Bench("auth", quick=["-n", "2000"]),  # it has no --quick of its own
    Bench("memory", quick=["--customers", "20000", "--requests", "2000"]),
    Bench("soak", quick=None, optional=True),
]


def available(name: str) -> bool:
    return importlib.util.find_spec(f"bench.{name}") is not None


def all_benches() -> list[Bench]:
    """The known benches, then any other bench module found beside them (run as they are)."""
    known = {bench.name for bench in BENCHES}
    found = sorted(
        path.stem
        for path in Path(__file__).parent.glob("*.py")
        if not path.stem.startswith("_") and path.stem not in known
    )
    return BENCHES + [Bench(name) for name in found]


def last_json(output: str) -> dict[str, Any] | None:
    """The JSON object a bench prints as its last line, if it did."""
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        return None
    try:
        found = json.loads(lines[-1])
    except json.JSONDecodeError:
        return None
    return found if isinstance(found, dict) else None


def run_bench(bench: Bench, quick: bool) -> dict[str, Any]:
    """Run one bench as `python -m bench.<name>`; its figures or why there are none."""
    args = (bench.quick or []) if quick else bench.args
    command = [sys.executable, "-m", f"bench.{bench.name}", *args]
    print(f"bench: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=bench.quick_timeout_s if quick else bench.timeout_s,
        )
    except subprocess.TimeoutExpired as expired:
        return {
            "status": "timeout",
            "seconds": round(time.monotonic() - started, 1),
            "note": f"stopped after {expired.timeout:.0f} s",
        }
    took = round(time.monotonic() - started, 1)
    figures = last_json(done.stdout)
    if done.returncode != 0 or figures is None:
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        return {
            "status": "failed",
            "seconds": took,
            "exit_code": done.returncode,
            "note": " | ".join(tail)[-300:],
        }
    sys.stderr.write(done.stdout)  # the bench's own table, for the reader (stdout stays ours)
    return {"status": "ok", "seconds": took, "figures": figures}


def flatten(figures: Any, prefix: str = "") -> dict[str, Any]:
    """Numbers and booleans of a nested result, keyed by dotted path (for the summary)."""
    flat: dict[str, Any] = {}
    if isinstance(figures, dict):
        for key, value in figures.items():
            flat.update(flatten(value, f"{prefix}{key}."))
    elif isinstance(figures, list):
        for index, value in enumerate(figures):
            flat.update(flatten(value, f"{prefix}{index}."))
    elif isinstance(figures, bool | int | float):
        flat[prefix.rstrip(".")] = figures
    return flat


def headline(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures worth a line in the summary: rates, latencies, ratios and verdicts."""
    words = ("per_s", "ratio", "p99", "p50", "meets", "decided_once")
    return {
        k: v
        for k, v in flatten(figures).items()
        if any(w in k for w in words) and not any(w in k for w in ("publish", "target"))
    }


def print_summary(results: dict[str, dict[str, Any]], took: float) -> None:
    print(f"{'bench':<13}{'status':<9}{'seconds':>8}  figures")
    for name, result in results.items():
        line = f"{name:<13}{result['status']:<9}{result.get('seconds', ''):>8}  "
        if result["status"] == "ok":
            shown = headline(result["figures"])
            items = [
                f"{k}={v:,.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()
            ]
            print(line + (items[0] if items else ""))
            for item in items[1:]:
                print(f"{'':<32}{item}")
        else:
            print(line + result.get("note", ""))
    print(f"all benches: {took:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under 2 minutes")
    parser.add_argument("--only", help="comma-separated bench names (default: every one)")
    parser.add_argument("--soak", action="store_true", help="also run bench.soak")
    args = parser.parse_args(argv)
    benches = all_benches()
    known = {bench.name: bench for bench in benches}
    if args.only:
        wanted = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in wanted if name not in known]
        if unknown:
            parser.error(f"no bench {', '.join(unknown)}; known: {', '.join(known)}")
        chosen = [known[name] for name in wanted]
    else:
        chosen = [b for b in benches if not b.optional or (b.name == "soak" and args.soak)]
    started = time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    for bench in chosen:
        if not available(bench.name):
            results[bench.name] = {"status": "missing", "note": f"no module bench.{bench.name}"}
        elif args.quick and bench.quick is None:
            results[bench.name] = {"status": "skipped", "note": "not part of --quick"}
        else:
            results[bench.name] = run_bench(bench, args.quick)
    took = time.monotonic() - started
    print_summary(results, took)
    summary = {
        "quick": args.quick,
        "seconds": round(took, 1),
        **{
            name: r.get("figures", {"status": r["status"], "note": r.get("note")})
            for name, r in results.items()
        },
    }
    print(json.dumps(summary))
    return 1 if any(r["status"] in ("failed", "timeout") for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
