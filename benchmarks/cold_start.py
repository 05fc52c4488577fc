"""Cold start of new `vidllm` processes (issue 16 item 3; not in the paper): `python -c "import vidllm_cli.main"`,
`vidllm ask VIDEO Q` with an empty scene cache and with the scene cached, and the resident mode (`vidllm serve ask`
against a fresh `vidllm serve start`: first answer, then cached), for one or more source trees run with this venv's
Python, interleaved (tree A's round, tree B's round, ...) so the machine's load hits every tree alike.

Usage: .venv/bin/python benchmarks/cold_start.py [--repeats 3] [--video examples/room.mp4] [NAME=TREE ...]
A TREE is a source checkout (e.g. `git archive COMMIT | tar -x -C /tmp/old`), put first on PYTHONPATH; default:
this checkout. Wall seconds and the process's user+sys CPU seconds (less noisy on a shared machine; for `serve ask`
only the client's CPU: the server's work shows in the wall time). One thread (OMP_NUM_THREADS=1).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "what is on the table?"


def _run(tree: Path, args: list[str]) -> tuple[float, float, str]:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], env=env, cwd=tempfile.gettempdir(), capture_output=True,
                          text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, proc.stdout.strip()


def _round(tree: Path, video: Path) -> dict[str, tuple[float, float, str]]:
    ask = ["-m", "vidllm_cli", "ask", str(video), QUESTION]
    with tempfile.TemporaryDirectory(prefix="vc", dir="/tmp") as tmp:   # short: Unix socket paths are limited
        out = {"import vidllm_cli.main": _run(tree, ["-c", "import vidllm_cli.main"]),
               "ask, empty scene cache": _run(tree, [*ask, "--cache-dir", f"{tmp}/c"]),
               "ask, scene cached": _run(tree, [*ask, "--cache-dir", f"{tmp}/c"])}
        if not (tree / "vidllm_cli" / "serve.py").exists():
            return out
        sock = f"{tmp}/s.sock"
        env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
        server = subprocess.Popen([sys.executable, "-m", "vidllm_cli", "serve", "start", "--socket", sock,
                                   "--cache-dir", f"{tmp}/s"], env=env, stderr=subprocess.PIPE, text=True)
        try:
            if "ready" not in server.stderr.readline():   # type: ignore[union-attr]
                raise SystemExit(f"{tree}: vidllm serve start did not come up")
            client = ["-m", "vidllm_cli", "serve", "ask", str(video), QUESTION, "--socket", sock]
            out["serve ask, first (server just started)"] = _run(tree, client)
            out["serve ask, scene in memory"] = _run(tree, client)
            _run(tree, ["-m", "vidllm_cli", "serve", "stop", "--socket", sock])
        finally:
            server.wait(30)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trees", nargs="*", help="NAME=TREE (default: this checkout)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--video", type=Path, default=ROOT / "examples" / "room.mp4")
    args = ap.parse_args()
    trees = dict(t.split("=", 1) for t in args.trees) or {"this": str(ROOT)}
    results: dict[tuple[str, str], list[tuple[float, float, str]]] = {}
    for _ in range(args.repeats):
        for name, tree in trees.items():
            for what, value in _round(Path(tree).resolve(), args.video.resolve()).items():
                results.setdefault((name, what), []).append(value)
    print(f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}; {args.repeats} interleaved repeats")
    for (name, what), values in results.items():
        wall, cpu = [v[0] for v in values], [v[1] for v in values]
        answers = sorted({v[2] for v in values})
        print(f"{name:8s} {what:40s} wall {statistics.median(wall):.2f} s ({min(wall):.2f}-{max(wall):.2f}), "
              f"user+sys {statistics.median(cpu):.2f} s ({min(cpu):.2f}-{max(cpu):.2f}) {answers}")


if __name__ == "__main__":
    main()
