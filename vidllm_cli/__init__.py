"""vidllm command line: a thin Typer + Rich layer over vidllm_core."""
