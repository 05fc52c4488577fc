"""Layering checks of issue 13: CLI commands are argument parsing and printing (no registered command function over
60 lines), the library never imports the CLI, and the model's vision pass is called from one function only."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[2]
MAX_COMMAND_LINES = 60


def _command_callbacks(app: typer.Typer, prefix: str = "") -> dict[str, object]:
    out = {f"{prefix}{c.name or c.callback.__name__}": c.callback for c in app.registered_commands}
    for group in app.registered_groups:
        out |= _command_callbacks(group.typer_instance, f"{prefix}{group.name} ")
    return out


def test_no_cli_command_is_longer_than_60_lines() -> None:
    import importlib

    from vidllm_cli.main import COMMANDS  # subcommands are registered lazily (issue 16): walk the table

    commands: dict[str, object] = {}
    for name, (module_name, _) in COMMANDS.items():
        module = importlib.import_module(f"vidllm_cli.{module_name}")
        if hasattr(module, "command"):
            commands[name] = module.command
        else:
            commands |= _command_callbacks(module.app, f"{name} ")
    assert {"reconstruct", "ask", "caption", "ground", "eval"} <= set(commands)
    lengths = {name: len(inspect.getsourcelines(fn)[0]) for name, fn in commands.items()}
    too_long = {name: n for name, n in lengths.items() if n > MAX_COMMAND_LINES}
    assert not too_long, f"CLI commands over {MAX_COMMAND_LINES} lines (move the work into vidllm_core): {too_long}"


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_library_never_imports_the_cli() -> None:
    files = sorted((ROOT / "vidllm_core").rglob("*.py"))
    assert len(files) > 50
    offenders = {str(f.relative_to(ROOT)): sorted(m for m in _imported_modules(f) if m.split(".")[0] == "vidllm_cli")
                 for f in files}
    assert not {f: m for f, m in offenders.items() if m}


def _calls(path: Path, attribute: str) -> int:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return sum(1 for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
               and n.func.attr == attribute)


def test_the_vision_pass_has_one_owner() -> None:
    """`encode_scene` / `reconstruct` of a model are called in `pipelines/vision_pass.py` only (library, CLI,
    benchmarks other than the network timing of benchmarks/reconstruct.py)."""
    files = [*(ROOT / "vidllm_core").rglob("*.py"), *(ROOT / "vidllm_cli").glob("*.py"),
             *(p for p in (ROOT / "benchmarks").glob("*.py") if p.name != "reconstruct.py")]
    callers = {str(f.relative_to(ROOT)) for f in files
               if _calls(f, "encode_scene") or _calls(f, "reconstruct")}
    assert callers == {"vidllm_core/pipelines/vision_pass.py"}
    users = {str(f.relative_to(ROOT)) for f in files if "run_vision_pass(" in f.read_text(encoding="utf-8")}
    assert {"vidllm_cli/scene.py", "vidllm_core/evaluation/model_geometry.py",
            "vidllm_core/evaluation/language_hooks.py", "benchmarks/ask.py"} <= users
