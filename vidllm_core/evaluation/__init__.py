"""Benchmark evaluation: task registry, predictions I/O (resumable writer), sharding and merging (issue 4;
metric definitions ../shared/docs/METRICS.md)."""

from vidllm_core.evaluation.context import EvalContext
from vidllm_core.evaluation.predictions import (PredictionStats, ResumeResult, index_predictions, read_records,
                                                write_predictions_resumable)
from vidllm_core.evaluation.sharding import parse_shard, select, shard_index
from vidllm_core.evaluation.tasks import TASKS, Task, get_task, task_names

__all__ = ["EvalContext", "PredictionStats", "ResumeResult", "TASKS", "Task", "get_task", "index_predictions",
           "parse_shard", "read_records", "select", "shard_index", "task_names", "write_predictions_resumable"]
