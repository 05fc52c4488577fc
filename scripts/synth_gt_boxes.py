#!/usr/bin/env python
"""Write synthrooms GT boxes in the `--gt-boxes` format ({scene: {object_id: [cx,cy,cz,dx,dy,dz]}}, the scene.json
axis-aligned boxes) and hard-link each scene's mesh.ply into posed_images/ for `vidllm eval recon`:
`python scripts/synth_gt_boxes.py DATA` -> DATA/gt_boxes.json."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: synth_gt_boxes.py SYNTHROOMS_DIR", file=sys.stderr)
        return 2
    root = Path(sys.argv[1])
    from vidllm_core.io import write_json_atomic

    boxes: dict[str, dict[str, list[float]]] = {}
    for scene in sorted((root / "scenes").iterdir()):
        meta = scene / "scene.json"
        if not meta.is_file():
            continue
        objs = json.loads(meta.read_text(encoding="utf-8"))["objects"]
        boxes[scene.name] = {str(o["id"]): [*o["aabb"]["center"], *o["aabb"]["size"]] for o in objs}
        mesh, link = scene / "mesh.ply", root / "posed_images" / scene.name / "mesh.ply"
        if mesh.is_file() and link.parent.is_dir() and not link.exists():
            os.link(mesh, link)
    write_json_atomic(root / "gt_boxes.json", boxes)
    print(f"wrote {root / 'gt_boxes.json'} ({len(boxes)} scenes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
