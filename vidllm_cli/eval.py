"""`vidllm eval`: score predictions, a baseline or the model on ScanQA, SQA3D, Scan2Cap, ScanRefer, Multi3DRefer,
Nr3D, Sr3D, depth, pose and reconstruction with the official metric definitions; shard, merge and dry-run."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from vidllm_cli.common import console, fail, user_errors
from vidllm_core.tasks import task_help

TASK_HELP = task_help()  # the task names as declared once in vidllm_core.tasks


Opt, Arg = typer.Option, typer.Argument
TaskArg = Annotated[str, Arg(help=f"Benchmark: {TASK_HELP}.")]
MergeDirsArg = Annotated[Optional[list[Path]], Arg(help="With --merge: the shard output directories.",
                                                   show_default=False)]
AnnotationsOpt = Annotated[Optional[list[Path]], Opt(
    "--annotations", "-a", help="Annotation file (SQA3D: questions file, plus the annotations file or found beside it; "
    "depth/pose/recon: a scene list).")]
ScenesOpt = Annotated[Optional[Path], Opt(help="Scene folders: posed images (depth/pose/recon, and --model on the "
                                          "language tasks) or raw ScanNet scans (GT boxes for grounding).")]
ModelOpt = Annotated[Optional[Path], Opt(help="Model directory: run the model, resumably.")]
PredictionsOpt = Annotated[Optional[Path], Opt(help="Predictions file (JSONL) or directory to score.")]
BaselineOpt = Annotated[Optional[str], Opt(help="majority | random | oracle-box (context rows); with --model on "
                                           "depth/pose/recon: no-alignment.")]
OutOpt = Annotated[Optional[Path], Opt("--out", "-o", help="Output directory (metrics.json, predictions.jsonl).")]
LimitOpt = Annotated[Optional[int], Opt(help="Evaluate only the first N items of the file.")]
ShardOpt = Annotated[Optional[str], Opt(help="I/N: evaluate shard I (0-based) of N, by id hash.")]
MergeOpt = Annotated[bool, Opt("--merge", help="Merge shard output directories into -o.")]
JsonOpt = Annotated[bool, Opt("--json", help="Print the metrics JSON on stdout only.")]
DryRunOpt = Annotated[bool, Opt("--dry-run", help="Check annotations (and scenes); run nothing.")]
TrainAnnOpt = Annotated[Optional[list[Path]], Opt(help="Training annotations for the majority baseline.")]
GtBoxesOpt = Annotated[Optional[Path], Opt(help="GT boxes JSON: scene -> object id -> box (cx cy cz dx dy dz).")]
PreparedOpt = Annotated[Optional[Path], Opt(help="Prepared ScanNet folder (vidllm prepare scannet): GT boxes and axis "
                                            "alignments; its posed images are the default --scenes of --model.")]
AllowMissingOpt = Annotated[bool, Opt("--allow-missing-alignment", help="A scene without axis alignment uses "
                                      "identity (noted in metrics.json) instead of failing.")]
ProposalsOpt = Annotated[Optional[Path], Opt(help="Proposal boxes dir: <scene>.npy / <scene>.json (random baseline; "
                                             "with --model, scanrefer / multi3drefer / scan2cap select among them).")]
LabelMapOpt = Annotated[Optional[Path], Opt(help="scannetv2-labels.combined.tsv (ScanRefer unique/multiple).")]
CaptionOpt = Annotated[Optional[str], Opt(help="Text pre-processing: Scan2Cap scan2cap (default), coco, corpus; "
                                          "ScanQA/SQA3D coco (default), raw, llava3d.")]
MeteorOpt = Annotated[str, Opt(help="METEOR implementation: python (no Java; close to the jar, see docs/metrics.md) "
                               "or java (pycocoevalcap's METEOR 1.5).")]
DepthAlignOpt = Annotated[str, Opt(help="Depth alignment: none, median, lstsq.")]
SeedOpt = Annotated[int, Opt(help="Seed of the random baseline.")]
FramesOpt = Annotated[Optional[int], Opt(min=1, help="--model: frames sampled per scene [default: the model's "
                                         "input.num_frames].")]
DeviceOpt = Annotated[str, Opt(help="--model: cpu or cuda.")]


def command(task: TaskArg, merge_dirs: MergeDirsArg = None, annotations: AnnotationsOpt = None,
            scenes: ScenesOpt = None, model: ModelOpt = None, predictions: PredictionsOpt = None,
            baseline: BaselineOpt = None, out: OutOpt = None, limit: LimitOpt = None, shard: ShardOpt = None,
            merge: MergeOpt = False, json_out: JsonOpt = False, dry_run: DryRunOpt = False,
            train_annotations: TrainAnnOpt = None, gt_boxes: GtBoxesOpt = None, prepared: PreparedOpt = None,
            allow_missing_alignment: AllowMissingOpt = False, proposals: ProposalsOpt = None,
            label_map: LabelMapOpt = None, caption_pipeline: CaptionOpt = None, meteor: MeteorOpt = "python",
            depth_align: DepthAlignOpt = "none", seed: SeedOpt = 0, frames: FramesOpt = None,
            device: DeviceOpt = "cpu") -> None:
    """Score a benchmark; writes OUT/metrics.json and OUT/predictions.jsonl."""
    with user_errors():   # errors are raised after the run lock is released, then printed as one line
        from vidllm_core.evaluation import request as rq
        from vidllm_core.evaluation.tasks import get_task

        get_task(task)   # an unknown task is the first error
        if dry_run:
            _dry_run(task, annotations, scenes, json_out)
            return
        if out is None:
            fail("give an output directory with -o/--out")
        if merge or merge_dirs:
            if not merge or not merge_dirs:
                fail("merge shard outputs with: vidllm eval TASK --merge DIR1 DIR2 ... -o OUT")
            result = rq.merge_runs(task, merge_dirs, out, _command_line())
        else:
            options = {k: v for k, v in locals().items() if k in rq.EvalRequest.__dataclass_fields__}  # the options
            request = rq.EvalRequest(**{**options, "annotations": list(annotations or []),
                                        "train_annotations": list(train_annotations or []),
                                        "command": _command_line()})
            result = rq.run_eval(request, lambda ctx: _progress(ctx, quiet=json_out))
    _warn(result)
    _report(result.doc, json_out)


def _dry_run(task: str, annotations: Optional[list[Path]], scenes: Optional[Path], json_out: bool) -> None:
    from vidllm_core.evaluation import run as ev
    from vidllm_core.evaluation.tasks import get_task

    spec = get_task(task)
    if not annotations:
        fail("--dry-run needs --annotations FILE")
    report = ev.dry_run(spec, annotations, scenes)
    _print_dry_run(spec.name, report, json_out)
    if report.problems:
        raise typer.Exit(1)


def _warn(result) -> None:
    from vidllm_core.evaluation.tasks import get_task

    unit = get_task(result.doc["task"]).unit
    if result.stats is not None:
        _warn_stats(result.stats, unit, result.n_items)
    if result.missing:
        print(f"warning: {result.missing} of {result.n_items} {unit} have no prediction in the shards; scored as "
              "wrong", file=sys.stderr)


def _command_line() -> str:
    import shlex

    return shlex.join(["vidllm", *sys.argv[1:]])


class _progress:
    """Rich progress bars (with ETA) on stderr for the scorer's long loops; silent when stderr is not a terminal."""

    def __init__(self, ctx, quiet: bool) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TimeRemainingColumn(), console=console, transient=True,
                            disable=quiet or not console.is_terminal)
        ctx.progress = self._add

    def _add(self, label: str, total: int):
        tid = self.bar.add_task(label, total=total)
        return lambda: self.bar.advance(tid)

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> bool:
        self.bar.__exit__(*exc)
        return False


def _warn_stats(stats, unit: str, n_items: int) -> None:
    ex = stats.examples
    if stats.unknown:
        print(f"warning: {stats.unknown} prediction(s) have ids not in the evaluated {unit} "
              f"(e.g. {ex.get('unknown')!r}); ignored", file=sys.stderr)
    if stats.duplicates:
        print(f"warning: {stats.duplicates} duplicate prediction id(s) (e.g. {ex.get('duplicate')!r}); "
              "the first record of each is used", file=sys.stderr)
    if stats.missing:
        print(f"warning: {stats.missing} of {n_items} {unit} have no prediction (e.g. {ex.get('missing')!r}); "
              "scored as wrong", file=sys.stderr)


def _flat(metrics: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(_flat(value, f"{name}/"))
        elif not isinstance(value, list):
            rows.append((name, value))
    return rows


def _report(doc: dict, json_out: bool) -> None:
    for note in doc["notes"]:
        print(f"note: {note}", file=sys.stderr)
    if json_out:
        sys.stdout.write(json.dumps(doc["metrics"], indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"vidllm eval {doc['task']} ({doc['n']} items, {doc['run'].get('source')})", min_width=56)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in _flat(doc["metrics"]):
        text = f"{value:.4f}" if isinstance(value, float) else ("-" if value is None else str(value))
        table.add_row(name, text)
    Console(width=100).print(table)


def _print_dry_run(task: str, report, json_out: bool) -> None:
    if json_out:
        sys.stdout.write(json.dumps({"counts": report.counts, "problems": report.problems}, indent=2) + "\n")
        return
    counts = ", ".join(f"{v} {k}" for k, v in report.counts.items())
    print(f"{task}: {counts}")
    for p in report.problems:
        print(f"problem: {p}")
    print(f"{len(report.problems)} problem(s) found" if report.problems else "no problems found")
