"""vidllm: the Vid-LLM library (reconstruction + 3D vision-language reasoning from video).

Importing this package has no side effects; heavy modules are imported where they are used.
"""

__version__ = "0.1.0"
