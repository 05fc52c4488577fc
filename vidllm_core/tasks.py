"""The benchmark tasks of the paper (Tables 2-4 and A.2): each declared once, by name, with what its annotation file
holds and how it is used. Import-light (no numpy / torch), so the CLI help reads it; `evaluation/tasks.py` attaches
the loader, scorer, model hook and training-sample builder to each name and checks it covers exactly these."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    """`language`: a 3D vision-language task (trainable in Stage 2); `boxes`: it needs GT object boxes."""

    name: str
    summary: str
    language: bool = True
    boxes: bool = False


TASK_SPECS: dict[str, TaskSpec] = {s.name: s for s in (
    TaskSpec("scanqa", "ScanQA question answering (ScanQA_v1.0_*.json)"),
    TaskSpec("sqa3d", "SQA3D situated QA (questions file; the annotations file beside it)"),
    TaskSpec("scan2cap", "Scan2Cap captioning of an object given its box (ScanRefer file or Scan2Cap corpus)",
             boxes=True),
    TaskSpec("scanrefer", "ScanRefer grounding, one box (ScanRefer_filtered_*.json)", boxes=True),
    TaskSpec("multi3drefer", "Multi3DRefer grounding, zero / one / many boxes (multi3drefer_*.json)", boxes=True),
    TaskSpec("nr3d", "Nr3D: choose the described object among the scene's objects (nr3d_*.csv)", boxes=True),
    TaskSpec("sr3d", "Sr3D: choose the described object among the scene's objects (sr3d_*.csv)", boxes=True),
    TaskSpec("depth", "depth accuracy (a scene list)", language=False),
    TaskSpec("pose", "camera pose accuracy (a scene list)", language=False),
    TaskSpec("recon", "reconstruction accuracy / completeness (a scene list)", language=False),
)}

LANGUAGE_TASKS: tuple[str, ...] = tuple(n for n, s in TASK_SPECS.items() if s.language)
BOX_TASKS: tuple[str, ...] = tuple(n for n, s in TASK_SPECS.items() if s.boxes)


def task_help(language_only: bool = False) -> str:
    """Comma-separated task names for CLI help."""
    return ", ".join(n for n, s in TASK_SPECS.items() if s.language or not language_only)


__all__ = ["BOX_TASKS", "LANGUAGE_TASKS", "TASK_SPECS", "TaskSpec", "task_help"]
