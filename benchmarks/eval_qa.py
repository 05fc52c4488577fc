"""Benchmark `vidllm eval scanqa|sqa3d --model`: questions/s of the model run with the questions of a scene answered
one at a time (batch 1, the behaviour before issue 16) and together (batched greedy generation), interleaved in one
process, on `vidllm synth` scenes (not in the paper: a throughput check).

Usage: .venv/bin/python benchmarks/eval_qa.py SYNTH_DIR [--task scanqa] [--model DIR] [--batch 1 16] [--repeats 3]
SYNTH_DIR is a `vidllm synth` output. Each run is a fresh evaluation context (the model is loaded and every scene is
encoded again); the timed part is the model run (vision passes + answers, predictions.jsonl written), not scoring.
The answers of every batch size are compared with batch 1's (they must be equal: greedy decoding).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def _annotations(synth: Path, task: str) -> list[Path]:
    ann = synth / "annotations"
    if task == "scanqa":
        return [ann / "ScanQA_v1.0_train.json"]
    return [ann / "v1_balanced_questions_train_scannetv2.json",
            ann / "v1_balanced_sqa_annotations_train_scannetv2.json"]


class Timed:
    """Wraps `owner.name` (a function) and adds up the seconds spent in it."""

    def __init__(self, owner: object, name: str) -> None:
        self.owner, self.name, self.real, self.seconds = owner, name, getattr(owner, name), 0.0

    def __enter__(self) -> "Timed":
        def timed(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            t = time.perf_counter()
            try:
                return self.real(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t

        setattr(self.owner, self.name, timed)
        return self

    def __exit__(self, *exc: object) -> None:
        setattr(self.owner, self.name, self.real)


def run_once(task: str, model: Path, synth: Path, batch: int, out: Path) -> tuple[dict[str, float], int, dict]:
    """({"total", "vision", "fsync"} seconds of the model run, questions, uid -> answer)."""
    from vidllm_core.evaluation import language_hooks, predictions
    from vidllm_core.evaluation import run as ev
    from vidllm_core.evaluation.context import EvalContext
    from vidllm_core.evaluation.tasks import get_task

    spec = get_task(task)
    records, _ = ev.load_items(spec, _annotations(synth, task))
    ctx = EvalContext(scenes_dir=synth / "posed_images", all_records=records, allow_missing_alignment=True,
                      answer_batch_size=batch)
    items = spec.prepare(model, out, records, ctx)       # loads the model (not timed)
    with Timed(language_hooks, "encode_posed_scene") as vision, Timed(predictions.os, "fsync") as sync:
        t = time.perf_counter()
        preds, _, _ = ev.model_predictions(spec, model, items, out, ctx)
        total = time.perf_counter() - t
    return {"total": total, "vision": vision.seconds, "fsync": sync.seconds}, len(items), preds


def main() -> None:
    from vidllm_core.assets import default_model_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("synth", type=Path)
    ap.add_argument("--task", default="scanqa", choices=["scanqa", "sqa3d"])
    ap.add_argument("--model", type=Path, default=None, help="[default: the shipped demo model]")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = args.model or default_model_dir()
    times: dict[int, list[dict[str, float]]] = {b: [] for b in args.batch}
    answers: dict[int, dict] = {}
    n = 0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for b in args.batch:   # interleaved: the machine's load hits every batch size alike
                seconds, n, preds = run_once(args.task, model, args.synth, b, Path(tmp) / f"{b}-{r}")
                times[b].append(seconds)
                answers.setdefault(b, preds)
    ref = answers[args.batch[0]]
    print(f"{args.task}: {n} questions, {args.repeats} interleaved repeats, {args.threads} thread(s)")
    base = statistics.median(t["total"] for t in times[args.batch[0]])
    for b in args.batch:
        total = [t["total"] for t in times[b]]
        med = statistics.median(total)
        part = {k: statistics.median(t[k] for t in times[b]) for k in ("vision", "fsync")}
        same = "same answers" if answers[b] == ref else "ANSWERS DIFFER"
        print(f"batch {b:3d}: median {med:.2f} s ({min(total):.2f}-{max(total):.2f}) = {n / med:.1f} questions/s, "
              f"x{base / med:.2f} vs batch {args.batch[0]}; of it vision passes {part['vision']:.2f} s, fsync "
              f"{part['fsync']:.2f} s, answers + rest {med - part['vision'] - part['fsync']:.2f} s; {same}")


if __name__ == "__main__":
    main()
