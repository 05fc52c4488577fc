"""Regenerate examples/: two synthrooms scenes from a seed never used for training (2026), with their questions.

    .venv/bin/python scripts/make_examples.py

Writes examples/room.mp4, examples/room2.mp4 and examples/questions.json (ScanQA-style questions with the true
answers, computed from each scene's geometry by the generator).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SEED = 2026
ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    out = ROOT / "examples"
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "vidllm_cli", "synth", tmp, "--scenes", "2", "--seed", str(SEED),
                        "--split-ratios", "0,0,1"], check=True)
        questions = json.loads((Path(tmp) / "annotations" / "ScanQA_v1.0_test.json").read_text())
        records = []
        for name, scene in (("room.mp4", "synth0000_00"), ("room2.mp4", "synth0001_00")):
            shutil.copyfile(Path(tmp) / "scenes" / scene / "video.mp4", out / name)
            shutil.copyfile(Path(tmp) / "scenes" / scene / "scene.json", out / name.replace(".mp4", ".scene.json"))
            records += [{"video": name, "question": q["question"], "answers": q["answers"]}
                        for q in questions if q["scene_id"] == scene]
    (out / "questions.json").write_text(json.dumps({"seed": SEED, "questions": records}, indent=1) + "\n")
    print(f"wrote {out}: 2 videos, {len(records)} questions")


if __name__ == "__main__":
    main()
