"""vidllm: the Vid-LLM library (reconstruction + 3D vision-language reasoning from video).

Importing this package has no side effects; heavy modules are imported where they are used.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vidllm")  # one source of truth: pyproject.toml, as installed
except PackageNotFoundError:  # a source tree used without `pip install -e .`: say so instead of guessing
    __version__ = "0+unknown"
