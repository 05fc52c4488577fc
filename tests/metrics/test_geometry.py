"""Pose, reconstruction and depth metrics against PoseDiffusion/VGGT and NeuralRecon/Atlas (pose_fixture*,
recon_fixture*), plus hand-computed depth cases (there is no depth fixture)."""

from __future__ import annotations

import numpy as np
import pytest

from vidllm_core.errors import DataError
from vidllm_core.metrics import (
    depth_metrics,
    pose_errors,
    pose_metrics,
    pose_scores_from_errors,
    reconstruction_metrics,
    voxel_down_sample,
)

POSE_KEYS = ("RRA@5", "RTA@5", "RRA@15", "RTA@15", "RRA@30", "RTA@30", "AUC@5", "AUC@15", "AUC@30", "n_pairs")


@pytest.fixture(scope="module")
def pose_fx(fixture_dir):
    return dict(np.load(fixture_dir / "pose_fixture.npz", allow_pickle=False))


@pytest.fixture(scope="module")
def pose_summary(load_json):
    return load_json("pose_fixture_summary.json")


def _w2c(c2w: np.ndarray) -> np.ndarray:
    return np.linalg.inv(c2w)


def test_pose_errors_and_scores_equal_fixture_per_set(pose_fx, pose_summary):
    names = [str(n) for n in pose_fx["set_names"]]
    assert len(names) == 9
    for name in names:
        pred, gt = _w2c(pose_fx[f"{name}__pred_c2w"]), _w2c(pose_fx[f"{name}__gt_c2w"])
        r_err, t_err = pose_errors(pred, gt)
        # the fixture's near-zero angles are acos round-off (~2e-6 deg); 1e-5 deg covers them
        np.testing.assert_allclose(r_err, pose_fx[f"{name}__rErr_deg"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(t_err, pose_fx[f"{name}__tErr_deg"], rtol=0, atol=1e-5)
        got = pose_metrics(pred, gt)
        exp = pose_summary["sets"][name]["vggt_convention"]
        for key in POSE_KEYS:
            assert got[key] == pytest.approx(exp[key], abs=1e-9), (name, key)
        assert got["RRA@15"] == pytest.approx(float(pose_fx[f"{name}__expected_RRA15"]), abs=1e-9)
        assert got["AUC@30"] == pytest.approx(float(pose_fx[f"{name}__expected_AUC30"]), abs=1e-9)
        got_pd = pose_metrics(pred, gt, convention="posediffusion")
        exp_pd = pose_summary["sets"][name]["posediffusion_convention"]
        for key in POSE_KEYS:
            assert got_pd[key] == pytest.approx(exp_pd[key], abs=1e-9), (name, "posediffusion", key)


def test_pose_pooled_over_all_pairs(pose_fx, pose_summary):
    errs = [pose_errors(_w2c(pose_fx[f"{n}__pred_c2w"]), _w2c(pose_fx[f"{n}__gt_c2w"])) for n in pose_fx["set_names"]]
    got = pose_scores_from_errors(np.concatenate([e[0] for e in errs]), np.concatenate([e[1] for e in errs]))
    exp = pose_summary["pooled_all_pairs"]["vggt_convention"]
    assert got["n_pairs"] == 151
    for key in POSE_KEYS:
        assert got[key] == pytest.approx(exp[key], abs=1e-9), key


def test_pose_hand_computed():
    def c2w(yaw_deg: float, centre: list[float]) -> np.ndarray:
        a = np.radians(yaw_deg)
        m = np.eye(4)
        m[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
        m[:3, 3] = centre
        return m

    gt = np.stack([c2w(0, [0, 0, 0]), c2w(0, [1, 0, 0])])
    pred = np.stack([c2w(0, [0, 0, 0]), c2w(20.5, [3, 0, 0])])  # translation direction right, rotation off by 20.5 deg
    r_err, t_err = pose_errors(np.linalg.inv(pred), np.linalg.inv(gt))
    assert r_err[0] == pytest.approx(20.5, abs=1e-9) and t_err[0] < 1e-3
    got = pose_metrics(np.linalg.inv(pred), np.linalg.inv(gt))
    assert got["RRA@15"] == 0.0 and got["RRA@30"] == 1.0 and got["n_pairs"] == 1
    # AUC@30 with one pair whose max error (20.5) lies in the bin [20, 21): the cumulative fraction is 1 for the
    # 10 bins [20,21) .. [29,30] and 0 before -> 10 / 30
    assert got["AUC@30"] == pytest.approx(10 / 30)
    with pytest.raises(DataError, match="at least 2 frames"):
        pose_metrics(np.eye(4)[None], np.eye(4)[None])


@pytest.fixture(scope="module")
def recon_fx(fixture_dir):
    return dict(np.load(fixture_dir / "recon_fixture.npz", allow_pickle=False))


@pytest.mark.parametrize(("down_sample", "prefix"), [(None, "expected_"), (0.02, "expected_voxel0.02_")])
def test_reconstruction_equals_fixture(recon_fx, load_json, down_sample, prefix):
    got = reconstruction_metrics(recon_fx["pred"], recon_fx["gt"], threshold=0.05, down_sample=down_sample)
    for ours, theirs in [("Acc", "acc"), ("Comp", "comp"), ("Prec", "prec"), ("Recall", "recall"),
                         ("F-score", "fscore")]:
        assert got[ours] == pytest.approx(float(recon_fx[prefix + theirs]), abs=1e-9), ours
    summary = load_json("recon_fixture_summary.json")
    if down_sample:
        assert (got["n_pred"], got["n_gt"]) == (summary["n_pred_after_o3d_voxel_0.02"],
                                                summary["n_gt_after_o3d_voxel_0.02"])
        official = summary["official_neuralrecon_eval_mesh_default_voxel0.02"]
        assert got["Acc"] == pytest.approx(official["dist1"], abs=1e-9)
        assert got["Recall"] == pytest.approx(official["recal"], abs=1e-9)


def test_reconstruction_distances_equal_fixture(recon_fx):
    from scipy.spatial import cKDTree

    d, _ = cKDTree(recon_fx["gt"]).query(recon_fx["pred"])
    np.testing.assert_allclose(d, recon_fx["dist_pred_to_gt"], rtol=0, atol=1e-12)


def test_reconstruction_hand_cases():
    pts = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    same = reconstruction_metrics(pts, pts, down_sample=None)
    assert (same["Acc"], same["Prec"], same["F-score"]) == (0.0, 1.0, 1.0)
    at = reconstruction_metrics([[0.0, 0.0, 0.05]], [[0.0, 0.0, 0.0]], down_sample=None)
    assert at["Acc"] == pytest.approx(0.05) and at["Prec"] == 0.0 and at["F-score"] == 0.0  # strict <
    near = reconstruction_metrics([[0.0, 0.0, 0.0499]], [[0.0, 0.0, 0.0]], down_sample=None)
    assert near["Prec"] == 1.0 and near["Recall"] == 1.0
    # two points 1 cm apart fall into the same 2 cm voxel (origin = min - 1 cm) and are averaged
    np.testing.assert_allclose(voxel_down_sample([[0.0, 0, 0], [0.009, 0, 0]], 0.02), [[0.0045, 0, 0]])
    with pytest.raises(DataError, match="empty"):
        reconstruction_metrics(np.zeros((0, 3)), pts)


def test_depth_hand_computed():
    gt = np.array([[1.0, 2.0], [4.0, 0.0]])  # the 0 is invalid
    pred = np.array([[2.0, 2.0], [4.0, 9.0]])
    got = depth_metrics(pred, gt)
    assert got["n_pixels"] == 3 and got["n_images"] == 1
    assert got["delta1"] == pytest.approx(2 / 3)  # ratios 2, 1, 1
    assert got["AbsRel"] == pytest.approx((1 / 1 + 0 + 0) / 3)
    assert got["SqRel"] == pytest.approx(1 / 3)
    assert got["RMSE"] == pytest.approx(np.sqrt(1 / 3))
    assert got["log10"] == pytest.approx(np.log10(2) / 3)
    assert got["RMSE_log"] == pytest.approx(np.sqrt(np.log(2) ** 2 / 3))
    e = np.array([np.log(2), 0, 0])
    assert got["SILog"] == pytest.approx(100 * np.sqrt(np.mean(e**2) - np.mean(e) ** 2))
    # a scaled prediction is perfect after median alignment, and scale+shift after least squares
    assert depth_metrics(gt * 3, gt, align="median")["AbsRel"] == pytest.approx(0.0, abs=1e-12)
    assert depth_metrics(gt * 3 + 1, gt, align="median")["AbsRel"] > 0.05
    assert depth_metrics(gt * 3 + 1, gt, align="lstsq")["AbsRel"] == pytest.approx(0.0, abs=1e-9)
    # batch: averaged per image, not per pixel
    batch = depth_metrics(np.stack([gt, pred]), np.stack([gt, gt]), valid=np.ones((2, 2, 2), bool))
    assert batch["AbsRel"] == pytest.approx(got["AbsRel"] / 2) and batch["n_images"] == 2
    with pytest.raises(DataError, match="no valid"):
        depth_metrics(pred, np.zeros_like(gt))
    with pytest.raises(DataError, match="alignment"):
        depth_metrics(pred, gt, align="affine")  # type: ignore[arg-type]
