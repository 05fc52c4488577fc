"""Grounding metrics against ScanRefer / M3DRef-CLIP / Video-3D-LLM outputs (grounding_fixture.json)."""

from __future__ import annotations

import numpy as np
import pytest

from vidllm_core.errors import DataError
from vidllm_core.metrics import (
    box3d_iou,
    box3d_iou_matrix,
    multi3drefer_f1,
    referit3d_accuracy,
    scanrefer_accuracy,
)

FORMATS = ("center_size", "minmax")
IOU_KEYS = {"scanrefer": ("iou_scanrefer", "scanrefer", 1e-9), "m3drefclip": ("iou_m3drefclip", "m3drefclip", 1e-6),
            "exact": ("iou_exact", "exact", 1e-9)}


@pytest.fixture(scope="module")
def gf(load_json):
    return load_json("grounding_fixture.json")


@pytest.mark.parametrize("box_format", FORMATS)
@pytest.mark.parametrize("variant", list(IOU_KEYS))
def test_iou_and_acc_flags_equal_fixture(gf, variant, box_format):
    pairs = gf["iou_pairs"]
    pred = np.array([p[f"pred_{box_format}"] for p in pairs])
    gt = np.array([p[f"gt_{box_format}"] for p in pairs])
    key, flag, tol = IOU_KEYS[variant]
    iou = box3d_iou(pred, gt, variant=variant, box_format=box_format)
    np.testing.assert_allclose(iou, [p[key] for p in pairs], rtol=0, atol=tol)
    if variant == "scanrefer":  # Video-3D-LLM uses the same formula
        np.testing.assert_allclose(iou, [p["iou_video3dllm"] for p in pairs], rtol=0, atol=tol)
    # threshold decisions must be identical, including the exact-0.5 / exact-0.25 boundary cases
    assert [int(v >= 0.25) for v in iou] == [p[f"acc25_{flag}"] for p in pairs]
    assert [int(v >= 0.5) for v in iou] == [p[f"acc50_{flag}"] for p in pairs]


@pytest.mark.parametrize("box_format", FORMATS)
def test_scanrefer_accuracy_equals_fixture(gf, box_format):
    pairs = gf["iou_pairs"]
    pred = [p[f"pred_{box_format}"] for p in pairs]
    gt = [p[f"gt_{box_format}"] for p in pairs]
    for variant, name in [("scanrefer", "scanrefer_official"), ("m3drefclip", "m3drefclip_scanrefer_evaluator"),
                          ("exact", "exact_no_eps")]:
        got = scanrefer_accuracy(pred, gt, variant=variant, box_format=box_format)
        exp = gf["acc_over_iou_pairs"][name]
        assert got["Acc@0.25"] == pytest.approx(exp["Acc@0.25"], abs=1e-12), name
        assert got["Acc@0.5"] == pytest.approx(exp["Acc@0.5"], abs=1e-12), name


@pytest.mark.parametrize("box_format", FORMATS)
@pytest.mark.parametrize("variant", ["official", "video3dllm"])
def test_multi3drefer_f1_equals_fixture(gf, variant, box_format):
    queries = gf["multi3drefer_queries"]
    got = multi3drefer_f1([q[f"pred_{box_format}"] for q in queries], [q[f"gt_{box_format}"] for q in queries],
                          [q["eval_type"] for q in queries], variant=variant, box_format=box_format)
    for q, f1 in zip(queries, got["per_query"]):
        assert f1[0.25] == pytest.approx(q[f"f1_25_{variant}"], abs=1e-9), q["id"]
        assert f1[0.5] == pytest.approx(q[f"f1_50_{variant}"], abs=1e-9), q["id"]
    if variant == "official":
        summary = gf["multi3drefer_summary"]["official_evaluate"]
        for k in ("0.25", "0.5"):
            assert got[f"F1@{k}"] == pytest.approx(summary[f"f1@{k}"]["overall"], abs=1e-6)
            for t in ("zt_w_d", "zt_wo_d", "st_w_d", "st_wo_d", "mt"):
                assert got[f"F1@{k}/{t}"] == pytest.approx(summary[f"f1@{k}"][t], abs=1e-6), (k, t)
    else:
        summary = gf["multi3drefer_summary"]["video3dllm_mean"]
        assert got["F1@0.25"] == pytest.approx(summary["F1@0.25"], abs=1e-12)
        assert got["F1@0.5"] == pytest.approx(summary["F1@0.5"], abs=1e-12)


def test_hand_computed_grounding():
    # unit cube vs the same cube shifted by half along x: inter 0.5, union 1.5 -> 1/3
    assert box3d_iou([0.5, 0.5, 0.5, 1, 1, 1], [1.0, 0.5, 0.5, 1, 1, 1], variant="exact") == pytest.approx(1 / 3)
    m = box3d_iou_matrix([[0, 0, 0, 2, 2, 2]], [[0, 0, 0, 2, 2, 2], [0, 0, 0, 1, 1, 1], [5, 5, 5, 1, 1, 1]],
                         variant="exact")
    np.testing.assert_allclose(m, [[1.0, 1 / 8, 0.0]])
    got = scanrefer_accuracy([[0, 0, 0, 1, 1, 1]] * 4, [[0, 0, 0, 1, 1, 1], [0.5, 0, 0, 1, 1, 1],
                                                         [0.8, 0, 0, 1, 1, 1], [9, 9, 9, 1, 1, 1]],
                             unique_mask=[True, True, False, False])
    # IoUs 1, 1/3, 1/9, 0 -> Acc@0.25 = 2/4, Acc@0.5 = 1/4; unique {1, 1/3}, multiple {1/9, 0}
    assert (got["Acc@0.25"], got["Acc@0.5"]) == (0.5, 0.25)
    assert (got["Acc@0.25/unique"], got["Acc@0.5/unique"], got["Acc@0.25/multiple"]) == (1.0, 0.5, 0.0)
    assert (got["n"], got["n/unique"], got["n/multiple"]) == (4, 2, 2)
    # Hungarian maximises the IoU sum: 2 preds / 3 gts, one perfect match -> F1 = 2*1/5
    f1 = multi3drefer_f1([[[0, 0, 0, 1, 1, 1], [30, 0, 0, 1, 1, 1]]],
                         [[[0, 0, 0, 1, 1, 1], [2, 0, 0, 1, 1, 1], [4, 0, 0, 1, 1, 1]]], ["mt"])
    assert f1["F1@0.25"] == pytest.approx(0.4) and f1["F1@0.5/mt"] == pytest.approx(0.4)


def test_referit3d_accuracy_hand_computed():
    got = referit3d_accuracy(correct=[1, 0, 1, 1, 0], hard=[0, 0, 1, 1, 1], view_dep=[1, 0, 0, 1, 0])
    assert got == {"overall": 0.6, "easy": 0.5, "hard": pytest.approx(2 / 3), "view_dep": 1.0,
                   "view_indep": pytest.approx(1 / 3), "n": 5}


def test_grounding_bad_input():
    with pytest.raises(DataError, match="6 numbers"):
        box3d_iou([0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1])
    with pytest.raises(DataError, match="max >= min"):
        box3d_iou([1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1], box_format="minmax")
    with pytest.raises(DataError, match="eval_type"):
        multi3drefer_f1([[]], [[]], ["zero_target"])
    with pytest.raises(DataError, match="same length"):
        referit3d_accuracy([1], [0, 1], [0])
    with pytest.raises(DataError, match="predicted boxes"):
        scanrefer_accuracy([[0, 0, 0, 1, 1, 1]], [])
