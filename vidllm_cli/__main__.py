"""`python -m vidllm_cli ...` (used by torchrun) runs the same app as the `vidllm` script."""

from vidllm_cli.main import app

if __name__ == "__main__":
    app()
