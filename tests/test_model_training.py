"""Training: real learning on 16 px data, exact resume, NaN handling, and the CLI's one-line errors."""
import json
import re
import signal

import chainer
import numpy as np
import pytest

from gqn.cli import Duration
from gqn.data import ShardBatches
from gqn.errors import GqnError
from gqn.model.config import ModelConfig, TrainConfig
from gqn.model.gqn import build_model
from gqn.model.loss import reported_nll
from gqn.model.objective import Objective
from gqn.runs.device import get_device
from gqn.runs.run import RunOptions, make_optimizer
from gqn.runs.train import LrFit, run_training, train_step
from gqn.shards import Dataset
from tests.helpers import run_cli, signal_when
from tests.model_data import TINY, write_dataset

HYPER = {**TINY, "batch_size": 4}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("training")
    return {"train": write_dataset(root / "train", scenes=20), "test": write_dataset(root / "test", 8, seed=1),
            "small": write_dataset(root / "small", scenes=4, size=12), "root": root}


def train_run(data_dir, out, iterations, resume=False, explicit=(), **hyper):
    options = RunOptions(iterations, snapshot_every=3, log_every=1, workers=0, progress=False)
    run_training(data_dir, out, {**HYPER, **hyper}, set(explicit), options, resume=resume)


def test_elbo_decreases_on_a_fixed_batch(data):
    config = TrainConfig(batch_size=8, lr_start=5e-3, lr_end=5e-3, context_max=4)
    model = build_model(ModelConfig(16, 16, **TINY), seed=0)
    optimizer = make_optimizer(model, config)
    batch = ShardBatches(Dataset(data["train"]), 8, (2, 2), seed=0).batch(0)
    losses = [train_step(model, optimizer, batch, config, i, get_device(None))["neg_elbo"] for i in range(40)]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 5, losses


def test_kl_warmup_trains_the_prior_only_once_the_kl_weighs(data):
    """The prior head gets gradients only through the KL: with weight 0 it stays put; the log still reports
    the true negative ELBO (weight 1)."""
    config = TrainConfig(batch_size=4, context_max=4, kl_warmup=10)
    model = build_model(ModelConfig(16, 16, **TINY), seed=0)
    optimizer = make_optimizer(model, config)
    batch = ShardBatches(Dataset(data["train"]), 4, (2, 2), seed=0).batch(0)
    prior = model.generation[0].prior.conv.W
    before = prior.array.copy()
    metrics = train_step(model, optimizer, batch, config, 0, get_device(None))
    assert np.array_equal(prior.array, before)
    assert metrics["kl"] > 0 and metrics["neg_elbo"] == pytest.approx(metrics["nll"] + metrics["kl"])
    train_step(model, optimizer, batch, config, 5, get_device(None))
    assert not np.array_equal(prior.array, before)


def snapshot_arrays(run):
    with np.load(run / "snapshot.npz") as npz:
        return {k: npz[k] for k in npz.files if k != "meta"}


def train_losses(run):
    entries = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [(e["iteration"], e["neg_elbo"], e["kl"]) for e in entries if e["split"] == "train"]


def logged_train_steps(run) -> int:
    """The training steps a running job has logged so far (complete lines only: it may be writing one)."""
    path = run / "log.jsonl"
    lines = path.read_text().split("\n")[:-1] if path.exists() else []
    return sum(json.loads(line)["split"] == "train" for line in lines)


def test_resume_continues_exactly(data, tmp_path):
    train_run(data["train"], tmp_path / "straight", 6)
    train_run(data["train"], tmp_path / "resumed", 3)
    train_run(data["train"], tmp_path / "resumed", 6, resume=True)
    a, b = snapshot_arrays(tmp_path / "straight"), snapshot_arrays(tmp_path / "resumed")
    assert a.keys() == b.keys() and any(k.startswith("optimizer/") for k in a)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert train_losses(tmp_path / "straight") == train_losses(tmp_path / "resumed")
    assert [i for i, _, _ in train_losses(tmp_path / "resumed")] == [1, 2, 3, 4, 5, 6]


def snapshot_meta(run):
    with np.load(run / "snapshot.npz") as npz:
        return json.loads(str(npz["meta"]))


def test_time_limit_stops_after_the_step_and_resume_continues_exactly(data, tmp_path):
    """A run stopped by --time-limit and resumed equals an uninterrupted one, GECO's multiplier included."""
    geco = {"objective": "geco", "geco_kappa": 0.001}
    train_run(data["train"], tmp_path / "straight", 5, **geco)
    options = RunOptions(5, snapshot_every=1000, log_every=1, workers=0, progress=False, time_limit=1e-3)
    assert run_training(data["train"], tmp_path / "limited", {**HYPER, **geco}, set(), options) == 1
    assert snapshot_meta(tmp_path / "limited")["iteration"] == 1
    train_run(data["train"], tmp_path / "limited", 5, resume=True, **geco)
    a, b = snapshot_arrays(tmp_path / "straight"), snapshot_arrays(tmp_path / "limited")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    state = snapshot_meta(tmp_path / "limited")["objective_state"]
    assert state == snapshot_meta(tmp_path / "straight")["objective_state"]
    assert state["log_lambda"] > -2 * np.log(0.25)   # the error is above kappa: the multiplier rose
    assert train_losses(tmp_path / "straight") == train_losses(tmp_path / "limited")


TINY_CLI = ["--steps", 2, "--hidden", 8, "--canvas", 8, "--r-channels", 16, "--batch-size", 4]


def test_cli_time_limit_exits_0_with_how_to_continue(data, tmp_path):
    result = run_cli("train", data["train"], "--out", tmp_path / "run", "--iterations", "1M", "--time-limit", "2s",
                     "--workers", 0, "--no-progress", *TINY_CLI)
    assert result.code == 0, result.err
    done = int(re.search(r"Time limit reached after iteration (\d+) of 1000000", result.out).group(1))
    assert "plus --resume" in result.out and snapshot_meta(tmp_path / "run")["iteration"] == done
    bad = run_cli("train", data["train"], "--out", tmp_path / "bad", "--time-limit", "soon")
    assert bad.code == 2 and "'soon' is not a duration" in bad.err


def test_lr_fit_extrapolates_the_speed_so_far_to_the_deadline():
    fit = LrFit(start=100, deadline=100.0, begin=0.0)
    assert fit.due == 10.0                                   # a tenth of the time
    assert fit.estimate(150, now=10.0) == 150 + 5 * 90      # 50 iterations in 10 s, 90 s left
    assert fit.estimate(600, now=120.0) == 600              # past the deadline: nothing left


def test_cli_lr_steps_auto_anneals_to_lr_end_by_the_time_limit(data, tmp_path):
    """The stored lr_steps becomes the iterations the time limit allows: the rate starts at --lr-start and
    ends near --lr-end (a placeholder of --iterations = 1M would keep it at --lr-start throughout)."""
    run = tmp_path / "run"
    result = run_cli("train", data["train"], "--out", run, "--iterations", "1M", "--time-limit", "3s",
                     "--lr-start", "1e-3", "--lr-end", "1e-4", "--lr-steps", "auto", "--log-every", 1,
                     "--workers", 0, "--no-progress", *TINY_CLI)
    assert result.code == 0, result.err
    meta = snapshot_meta(run)
    done, steps = meta["iteration"], meta["train"]["lr_steps"]
    assert json.loads((run / "config.json").read_text())["train"]["lr_steps"] == steps
    assert f"anneals to 0.0001 by iteration {steps}" in result.out + result.err
    assert steps < 2 * done, (steps, done)
    rates = [e["lr"] for e in map(json.loads, (run / "log.jsonl").read_text().splitlines())]
    assert rates[0] == pytest.approx(1e-3, rel=1e-3) and rates[-1] < 0.6e-3, rates
    bad = run_cli("train", data["train"], "--out", tmp_path / "bad", "--lr-steps", "auto")
    assert bad.code == 2 and "--lr-steps auto fits the annealing to --time-limit" in bad.err


def test_cli_lr_warmup_raises_the_rate_linearly_over_its_iterations(data, tmp_path):
    run = tmp_path / "run"
    result = run_cli("train", data["train"], "--out", run, "--iterations", 6, "--lr-start", "1e-3", "--lr-end",
                     "1e-3", "--lr-warmup", 4, "--log-every", 1, "--workers", 0, "--no-progress", *TINY_CLI)
    assert result.code == 0, result.err
    entries = map(json.loads, (run / "log.jsonl").read_text().splitlines())
    rates = [e["lr"] for e in entries if e.get("split") == "train"]
    assert rates == pytest.approx([0.25e-3, 0.5e-3, 0.75e-3, 1e-3, 1e-3, 1e-3])


@pytest.mark.parametrize("text,seconds", [("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("45s", 45), ("90", 5400),
                                          ("23:50:00", 85800), ("50:00", 3000), ("1-12:00:00", 129600)])
def test_durations(text, seconds):
    assert Duration().convert(text, None, None) == seconds


@pytest.mark.parametrize("objective", ["paper", "fixed-sigma", "calibrated", "geco"])
def test_every_objective_learns_a_fixed_batch(data, objective):
    """Each objective lowers the reconstruction error of a batch it sees again and again; the reported
    negative ELBO is the one at the batch's calibrated sigma whatever the objective."""
    config = TrainConfig(batch_size=8, lr_start=5e-3, lr_end=5e-3, context_max=4, objective=objective)
    model = build_model(ModelConfig(16, 16, **TINY), seed=0)
    optimizer, objective_state = make_optimizer(model, config), Objective(config)
    batch = ShardBatches(Dataset(data["train"]), 8, (2, 2), seed=0).batch(0)
    steps = [train_step(model, optimizer, batch, config, i, get_device(None), objective=objective_state)
             for i in range(40)]
    assert np.mean([m["mse"] for m in steps[-5:]]) < 0.7 * np.mean([m["mse"] for m in steps[:5]])
    last = steps[-1]
    assert last["nll"] == pytest.approx(reported_nll(last["mse"], 3 * 16 * 16))


def test_geco_multiplier_follows_the_constraint():
    objective = Objective(TrainConfig(objective="geco", geco_kappa=0.01, geco_rate=0.1, sigma=0.5))
    assert objective.training_sigma(0, 1.0) == pytest.approx(0.5)
    objective.update(0.05)                 # 5x kappa: the step is clipped to +rate
    assert objective.log_lambda == pytest.approx(-2 * np.log(0.5) + 0.1)
    for _ in range(600):   # far below kappa: once the moving average turns, the multiplier falls
        objective.update(0.001)
    assert objective.log_lambda < -2 * np.log(0.5)
    assert Objective(objective.config, objective.state()).log_lambda == objective.log_lambda


def test_nan_loss_stops_and_keeps_the_last_good_snapshot(data, tmp_path):
    run = tmp_path / "run"
    train_run(data["train"], run, 3)
    before = snapshot_arrays(run)
    bad = write_dataset(tmp_path / "nan", scenes=6, nan_viewpoints=True)
    with pytest.raises(GqnError, match=r"loss is nan at iteration 4; stopped\. The last good snapshot .*"
                                       r"\(iteration 3\) is kept"):
        train_run(bad, run, 6, resume=True)
    after = snapshot_arrays(run)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_an_empty_snapshot_is_a_one_line_error_not_an_interruption(data, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "snapshot.npz").write_bytes(b"")
    for args in (["train", data["train"], "--out", tmp_path / "run", "--resume", "--workers", 0],
                 ["evaluate", tmp_path / "run", "--data", data["test"]]):
        code, _, err = run_cli(*args)
        assert code == 1 and err.startswith("Error: ") and "not a readable snapshot (No data left in file)" in err, err


def test_cli_train_then_evaluate(data, tmp_path):
    run = tmp_path / "run"
    code, _, err = run_cli("train", data["train"], "--out", run, "--iterations", 2,
                           "--test", data["test"], "--test-every", 2, "--workers", 0, "--no-progress", *TINY_CLI)
    assert code == 0, err
    splits = [json.loads(line)["split"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert splits == ["train", "test"]
    code, out, err = run_cli("evaluate", run, "--data", data["test"], "--gifs", 1,
                             "--frames", 4)
    assert code == 0, err
    assert "bits/pixel" in out and (run / "eval" / "metrics.json").exists()


def test_ctrl_c_snapshots_the_last_step_and_resume_continues(data, tmp_path):
    run = tmp_path / "run"
    args = ["train", data["train"], "--out", run, "--iterations", 100_000, "--log-every", 1, "--snapshot-every",
            1000, "--no-progress", *TINY_CLI]
    result, _ = signal_when(args, run, lambda d: logged_train_steps(d) >= 3, sig=signal.SIGINT)
    assert result.code == 130 and "Traceback" not in result.err, result.err
    done = int(re.search(r"Interrupted after iteration (\d+);", result.err).group(1))
    assert done >= 3 and "continue with --resume" in result.err
    with np.load(run / "snapshot.npz") as npz:
        assert json.loads(str(npz["meta"]))["iteration"] == done
    assert run_cli(*args[:5], done + 2, "--resume", "--log-every", 1, "--no-progress", *TINY_CLI).code == 0
    assert [i for i, *_ in train_losses(run)][-2:] == [done + 1, done + 2]


@pytest.mark.parametrize("case,message", [
    ("missing", "not a directory"),
    ("corrupt", "not a readable HDF5 file"),
    ("gpu", "--gpu 0: CuPy with a CUDA GPU is not available"),
    ("exists", "already holds a training run"),
    ("size", "size mismatch"),
    ("architecture", "--hidden 16 differs"),
])
def test_cli_train_errors_are_one_line(data, tmp_path, case, message):
    run = data["root"] / "error-run"
    if not (run / "snapshot.npz").exists():
        train_run(data["train"], run, 3)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "000000.h5").write_bytes(b"not hdf5")
    args = {
        "missing": [tmp_path / "nowhere", "--out", tmp_path / "r"],
        "corrupt": [corrupt, "--out", tmp_path / "r"],
        "gpu": [data["train"], "--out", tmp_path / "r", "--gpu", 0],
        "exists": [data["train"], "--out", run],
        "size": [data["small"], "--out", run, "--resume"],
        "architecture": [data["train"], "--out", run, "--resume", "--hidden", 16],
    }[case]
    if case == "gpu" and chainer.backends.cuda.available:
        pytest.skip("a GPU is available here")
    code, out, err = run_cli("train", *args, "--no-progress", "--workers", 0)
    assert code == 1
    assert err.startswith("Error: ") and message in err and err.count("\n") == 1, err
