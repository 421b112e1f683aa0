"""The foresight experiment runner and the numbered scripts of paper_experiments/foresight."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dropnet_tf.core.backend import keras
from dropnet_tf.data import Dataset
from dropnet_tf.foresight import MaskedDense, get_weight_masks
from dropnet_tf.foresight import experiment as fe
from dropnet_tf.foresight.experiment import REFERENCE, TrainingProtocol, run_foresight_grid

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS_DIR = ROOT / "paper_experiments" / "foresight"


def tiny_data(n=120, classes=6, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.normal(size=(n, 10)).astype(np.float32) + y[:, None] * 0.3
    return Dataset("tiny", "synthetic", x, y, x[:12], y[:12], x[:60], y[:60], classes)


def build(seed, init):
    initializer = "glorot_uniform" if init != "he_normal" else "he_normal"
    return keras.Sequential([
        keras.Input((10,)),
        MaskedDense(16, activation="relu", kernel_initializer=initializer, name="hidden"),
        MaskedDense(6, activation="softmax", kernel_initializer=initializer, name="out"),
    ])


PROTOCOL = TrainingProtocol(epochs=1, learning_rate=0.05, batch_size=32)


def test_grid_records_resume_and_compression(tmp_path, monkeypatch):
    results = tmp_path / "r.jsonl"
    built = {}

    def build_and_keep(seed, init):
        # Keep every model the grid trains, so that its masks can be read afterwards.
        model = build(seed, init)
        built.setdefault(seed, []).append(model)
        return model

    # r = 3 does not divide the 256 prunable weights: round(256 / 3) = 85 are kept, so
    # r_e = 256 / 85 = 3.0118.  Keeping 86 (ceil) or 84 would still be within 5 % of r,
    # which is why the ratio is checked exactly here and not with a tolerance.
    # One pruning method is enough to see the grid's loops (exact counts per method are
    # tested in test_foresight_masks and test_foresight_scorers_*): 6 trainings, not 10.
    compressions = [3, 8]
    methods = [REFERENCE, "snip"]
    records = run_foresight_grid(results, "exp", build_and_keep, tiny_data(), methods, compressions, [0, 1],
                                 PROTOCOL, scoring_batch_size=30, log=None, extra={"model": "mlp"})
    # reference once per seed at r = 1, the others at every r
    assert len(records) == 2 + 1 * 2 * 2
    prunable = 10 * 16 + 16 * 6
    # Runs happen method by method, r by r, seed by seed: pair each record with its model.
    order = [(m, r, s) for m in methods for r in ([1.0] if m == REFERENCE else compressions) for s in (0, 1)]
    models = {}
    for method, compression, seed in order:
        models[(method, float(compression), seed)] = built[seed].pop(0)
    for record in records:
        assert record["model"] == "mlp" and 0 <= record["top1"] <= record["top5"] <= 1
        model = models[(record["method"], record["compression"], record["seed"])]
        masks = get_weight_masks(model)
        # Counted here with numpy from the trained model's masks, not taken from the report.
        kept = int(sum(np.count_nonzero(m) for m in masks.values()))
        # Selection keeps exactly round(n / r) weights (thesis eq. 4.1), 32 for r = 8.
        expected_kept = int(np.floor(prunable / record["compression"] + 0.5))
        assert kept == expected_kept, (record["method"], record["compression"], kept)
        assert record["prunable"] == prunable == sum(m.size for m in masks.values())
        assert record["nonzero"] == kept
        assert record["empirical_ratio"] == prunable / kept
        assert record["compression_error"] == (record["compression"] - prunable / kept) / record["compression"]
        assert record["per_weight_density"] == {name: np.count_nonzero(m) / m.size for name, m in masks.items()}
        # Training kept the pruned weights at zero and the sparse network did train.
        for layer in model.layers:
            kernel = layer.kernel.numpy()
            assert np.all(kernel[masks[f"{layer.name}/kernel"] == 0] == 0)
    assert records[0]["empirical_ratio"] == 1.0 and records[0]["nonzero"] == prunable
    # a second call trains nothing: every run is already in the file
    monkeypatch.setattr(fe, "train_and_evaluate", lambda *a, **k: pytest.fail("retrained a finished run"))
    again = run_foresight_grid(results, "exp", build, tiny_data(), methods, compressions, [0, 1],
                               PROTOCOL, scoring_batch_size=30, log=None)
    assert again == records


def test_grid_rejects_unknown_methods_before_training(tmp_path):
    with pytest.raises(ValueError, match="bogus"):
        run_foresight_grid(tmp_path / "r.jsonl", "exp", build, tiny_data(), ["snip", "bogus"], [4], [0], PROTOCOL, log=None)
    assert not (tmp_path / "r.jsonl").exists()


def test_external_baselines_and_train_init(tmp_path):
    calls = []

    def baseline(seed, compression):
        calls.append((seed, compression))
        return {"top1": 0.5, "top5": 0.9, "empirical_ratio": compression}

    records = run_foresight_grid(tmp_path / "r.jsonl", "exp", build, tiny_data(), ["tfmot_gmp", "snip"], [4], [3],
                                 PROTOCOL, external={"tfmot_gmp": baseline}, train_init="he_normal", log=None)
    assert calls == [(3, 4.0)]
    snip = [r for r in records if r["method"] == "snip"][0]
    assert snip["init"] == "default" and snip["train_init"] == "he_normal"
    assert [r for r in records if r["method"] == "tfmot_gmp"][0]["top5"] == 0.9


def test_random_labels_change_what_is_learned(tmp_path):
    data = tiny_data(n=240)
    true = run_foresight_grid(tmp_path / "a.jsonl", "a", build, data, [REFERENCE], [2], [0],
                              TrainingProtocol(epochs=8, learning_rate=0.1, batch_size=16), log=None)
    shuffled = run_foresight_grid(tmp_path / "b.jsonl", "b", build, data, [REFERENCE], [2], [0],
                                  TrainingProtocol(epochs=8, learning_rate=0.1, batch_size=16), random_labels=True, log=None)
    assert shuffled[0]["random_labels"] is True
    assert true[0]["train_loss"][-1] < shuffled[0]["train_loss"][-1]


def test_training_protocol_validation_and_schedule():
    with pytest.raises(ValueError, match="epochs"):
        TrainingProtocol(epochs=-1, learning_rate=0.1)
    with pytest.raises(ValueError, match="learning_rate"):
        TrainingProtocol(epochs=1, learning_rate=0)
    with pytest.raises(ValueError, match="optimizer"):
        TrainingProtocol(epochs=1, learning_rate=0.1, optimizer="lbfgs")
    optimizer = TrainingProtocol(epochs=1, learning_rate=0.1, learning_rate_drops=((10, 0.1), (20, 0.1))).make_optimizer()
    schedule = optimizer.learning_rate if callable(getattr(optimizer, "learning_rate", None)) else optimizer._learning_rate
    values = [float(schedule(step)) for step in (0, 15, 25)]
    np.testing.assert_allclose(values, [0.1, 0.01, 0.001], rtol=1e-5)


def test_a_diverging_run_stops_at_once_and_says_so(tmp_path):
    # lr 1e6 blows the loss up to inf/NaN within a few steps; without the guard every one of
    # the 30 epochs would still run (and the record would look like a trained network at chance).
    data = tiny_data(n=240)
    blow_up = TrainingProtocol(epochs=30, learning_rate=1e6, batch_size=16, momentum=0.9, nesterov=False)
    records = run_foresight_grid(tmp_path / "r.jsonl", "exp", build, data, [REFERENCE], [2], [0], blow_up, log=None)
    assert records[0]["diverged"] is True and records[0]["diverged_at"][0] == 0
    assert len(records[0]["train_loss"]) == 1  # stopped inside the first epoch
    healthy = run_foresight_grid(tmp_path / "h.jsonl", "exp", build, data, [REFERENCE], [2], [0],
                                 TrainingProtocol(epochs=3, learning_rate=0.05, batch_size=16), log=None)
    assert healthy[0]["diverged"] is False and len(healthy[0]["train_loss"]) == 3
    assert healthy[0]["diverged_at"] is None


def test_divergence_guard_catches_a_finite_blow_up_and_spares_a_noisy_healthy_run():
    from dropnet_tf.engines.callbacks import StopOnDivergence

    class FakeModel:
        stop_training = False

    def feed(losses, factor=100.0):
        guard = StopOnDivergence(factor)
        guard.set_model(FakeModel())
        guard.on_train_begin()
        for epoch, batch, loss in losses:
            if batch == 0:
                guard.on_epoch_begin(epoch)
            guard.on_train_batch_end(batch, {"loss": loss})
            if guard.model.stop_training:
                break
        return guard.diverged_at

    # The dense LeNet-5-Caffe's running loss at lr 0.1 / momentum 0.9: finite but 1e10 by step 20.
    assert feed([(0, 0, 2.26), (0, 1, 2.13), (0, 2, 1.73), (0, 3, 5.7e10), (0, 4, 1.7e28)]) == (0, 3)
    assert feed([(0, 0, 2.3), (0, 1, float("nan"))]) == (0, 1)
    assert feed([(0, 0, 2.3), (0, 1, 4.0), (1, 0, 150.0), (1, 1, 0.5)]) is None  # 65x: a spike, not divergence
    assert feed([(0, 0, 2.3), (0, 1, 231.0)]) == (0, 1)
    with pytest.raises(ValueError, match="factor"):
        StopOnDivergence(1.0)


@pytest.mark.parametrize("dataset, every, batch", [("mnist", 25_000, 100), ("cifar10", 30_000, 128)])
def test_snip_protocol_drops_the_rate_by_0_1_every_25k_or_30k_iterations(dataset, every, batch):
    """SNIP Section 5, word for word: "SGD with momentum of 0.9, batch size of 100 for MNIST and 128
    for CIFAR ... weight decay rate of 0.0005 ... initial learning rate is set to 0.1 and decayed by
    0.1 at every 25k or 30k iterations for MNIST and CIFAR, respectively"."""
    from paper_experiments.foresight import foresight_protocol as fp

    protocol = fp.snip_protocol(dataset)
    assert tuple(map(tuple, protocol.learning_rate_drops)) == ((every, 0.1), (2 * every, 0.1), (3 * every, 0.1))
    assert (protocol.learning_rate, protocol.momentum, protocol.batch_size, protocol.weight_decay) == (
        0.1, 0.9, batch, 5e-4)


def test_snip_protocols_and_output_names_of_cut_runs():
    from paper_experiments.foresight import foresight_protocol as fp

    module = __import__("importlib").import_module("paper_experiments.foresight.05_snip_table1_fig1_lenet5_caffe_mnist")
    exp = module.EXPERIMENT

    def resolved(*argv):
        args = fp.parse_args(exp, ["--scale", "paper", *argv])
        return fp.resolve(exp, args)[0], fp.stem(exp, args)

    paper, name = resolved()
    assert name.endswith("_mnist_paper")
    assert (paper.momentum, paper.learning_rate, paper.batch_size, paper.weight_decay) == (0.9, 0.1, 100, 5e-4)
    assert [step for step, _ in paper.learning_rate_drops] == [25_000, 50_000, 75_000]
    assert round(paper.epochs * 54_000 / 100) == 99_900  # 185 epochs of 540 steps: the 100k iterations
    code, name = resolved("--snip-protocol", "code")
    assert name.endswith("_mnist_paper_snipcode")
    assert (code.momentum, code.learning_rate, code.batch_size, code.weight_decay) == (0.0, 0.1, 100, 5e-4)
    assert code.learning_rate_drops == () and code.epochs * 540 == 10_260  # the public code's 10k iterations
    assert resolved("--epochs", "20", "--max-train", "5000")[1].endswith("_mnist_paper_train5000_epochs20")
    assert fp.stem(exp, fp.parse_args(exp, ["--scale", "quick", "--epochs", "2"])).endswith("_quick")
    with pytest.raises(SystemExit):
        fp.parse_args(exp, ["--snip-protocol", "caffe"])
    thesis = __import__("importlib").import_module("paper_experiments.foresight.01_thesis_4_2_3_figs_4_11_4_13_cnn_mnist")
    with pytest.raises(SystemExit):  # the option belongs to the SNIP scripts only
        fp.parse_args(thesis.EXPERIMENT, ["--snip-protocol", "code"])


# --------------------------------------------------------------------------------------------
# The numbered scripts
# --------------------------------------------------------------------------------------------


def _run(script: str, tmp_path: Path, *extra: str) -> str:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, str(SCRIPTS_DIR / script), "--scale", "quick", "--dataset", "digits",
               "--out", str(tmp_path / "runs"), "--figures", str(tmp_path / "figures"), *extra]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_every_script_declares_a_known_model_and_methods():
    from dropnet_tf.models.foresight import FORESIGHT_MODELS
    from dropnet_tf.foresight.scorers import METHODS

    import importlib

    scripts = sorted(p.stem for p in SCRIPTS_DIR.glob("[0-9][0-9]_*.py"))
    assert len(scripts) >= 9
    for name in scripts:
        exp = importlib.import_module(f"paper_experiments.foresight.{name}").EXPERIMENT
        assert exp.script == name
        for model in (exp.model,) + tuple(exp.model_choices):
            assert model in FORESIGHT_MODELS, (name, model)
        assert set(exp.methods) <= set(METHODS) | {REFERENCE, "tfmot_gmp"}, name


@pytest.mark.slow
def test_lenet_script_end_to_end_and_resume(tmp_path, capsys):
    script = "04_snip_table1_fig1_lenet300_mnist.py"
    args = ("--methods", "reference", "snip", "random", "--compressions", "10", "--epochs", "1", "--seeds", "0")
    stdout = _run(script, tmp_path, *args)
    assert "snip r=10" in stdout
    figures = tmp_path / "figures"
    stem = "04_snip_table1_fig1_lenet300_mnist_snip_lenets_digits_quick"
    assert (figures / f"{stem}_table1_fig1_top1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (figures / f"{stem}_table1.md").read_text()
    assert "| SNIP |" in table and "| Random |" in table
    summary = json.loads((figures / f"{stem}.json").read_text())
    assert summary["runs"] == 3 and summary["model"] == "lenet_300_100"
    lines = (tmp_path / "runs" / f"{stem}.jsonl").read_text().splitlines()
    # The rerun goes through main() in this process: no second TensorFlow start-up.
    import importlib

    module = importlib.import_module(f"paper_experiments.foresight.{script[:-3]}")
    capsys.readouterr()
    module.main(module.EXPERIMENT, ["--scale", "quick", "--dataset", "digits", "--out", str(tmp_path / "runs"),
                                    "--figures", str(tmp_path / "figures"), *args])
    stdout = capsys.readouterr().out
    assert "snip" in stdout and "r=10" not in stdout  # resumed: nothing ran again
    assert (tmp_path / "runs" / f"{stem}.jsonl").read_text().splitlines() == lines


@pytest.mark.slow
def test_connections_script_draws_one_image_per_class_and_sparsity(tmp_path):
    _run("07_snip_fig2_connections_lenet300_mnist.py", tmp_path)
    stem = "07_snip_fig2_connections_lenet300_mnist_digits_quick_fig2"
    images = np.load(tmp_path / "figures" / f"{stem}.npz")["images"]
    assert images.shape == (5, 10, 8, 8)
    # sparser rows keep fewer connections, and no pixel keeps more than its 300
    totals = images.sum(axis=(1, 2, 3))
    assert all(a > b for a, b in zip(totals, totals[1:]))
    assert images.max() <= 300
    assert (tmp_path / "figures" / f"{stem}.png").exists()


def test_top5_ranks_ties_by_class_index_like_the_thesis():
    metric = fe.top_k_accuracy_with_ties_by_index(5)
    collapsed = np.tile(np.eye(10, dtype=np.float32)[0], (10, 1))  # always predicts class 0
    metric.update_state(np.arange(10), collapsed)
    assert float(metric.result()) == pytest.approx(0.5)  # classes 0-4 are "in the top 5"
    metric.reset_state()
    scores = np.array([[0.1, 0.5, 0.2, 0.05, 0.05, 0.02, 0.03, 0.01, 0.02, 0.02]], np.float32)
    metric.update_state(np.array([2]), scores)
    assert float(metric.result()) == 1.0
    metric.reset_state()
    metric.update_state(np.array([7]), scores)  # the lowest score: rank 9
    assert float(metric.result()) == 0.0
    reference = keras.metrics.SparseTopKCategoricalAccuracy(k=5)
    reference.update_state(np.arange(10), collapsed)
    assert float(reference.result()) == 1.0  # why Keras' own metric is not used


def test_tables_and_curves_leave_diverged_runs_out(tmp_path):
    from paper_experiments.foresight import foresight_protocol as fp

    exp = __import__("importlib").import_module("paper_experiments.foresight.05_snip_table1_fig1_lenet5_caffe_mnist").EXPERIMENT

    def record(method, r, seed, top1, diverged=False):
        return {"method": method, "compression": r, "seed": seed, "top1": top1, "top5": 0.5 if diverged else 0.99,
                "empirical_ratio": r, "diverged": diverged}

    records = [record(REFERENCE, 1.0, 0, 0.10, True), record(REFERENCE, 1.0, 1, 0.11, True),
               record("snip", 50.0, 0, 0.98), record("snip", 100.0, 0, 0.10, True), record("snip", 100.0, 1, 0.97)]
    table = (tmp_path / "t.md")
    fp.write_table(exp, records, (50, 100), str(table))
    text = table.read_text()
    assert "Unpruned: diverged in all 2 runs" in text
    assert "| SNIP | 99.00 | 98.00 | 50.0 | 99.00 | 97.00 | 100.0 |" in text  # the diverged r=100 run left out
    curves = fp.summarise(records, "top1")
    assert curves["snip"] == [(50.0, 0.98, 0.0, 1), (100.0, 0.97, 0.0, 1)]  # no chance-level reference at r = 1


# --------------------------------------------------------------------------------------------
# SNIP as its public code runs it (issue 24, point 2)
# --------------------------------------------------------------------------------------------


def _snip_script(number: str = "04"):
    import importlib

    name = {"04": "04_snip_table1_fig1_lenet300_mnist", "05": "05_snip_table1_fig1_lenet5_caffe_mnist"}[number]
    return importlib.import_module(f"paper_experiments.foresight.{name}")


def test_public_code_options_one_name_per_combination_and_the_public_preset():
    """Every combination of the five options and the two schedules gets its own output name
    (64 names); --snip-protocol public is Section 5's schedule with all five at the code's
    value, and so is paper with the five flags (the same training, the same file)."""
    import itertools

    from paper_experiments.foresight import foresight_protocol as fp

    exp = _snip_script().EXPERIMENT
    flags = {"weight_decay_mode": "--weight-decay-mode", "inputs": "--inputs", "weights_init": "--weights-init",
             "train_draw": "--train-draw", "biases": "--biases"}
    names = {}
    for schedule in ("paper", "code"):
        for values in itertools.product(*fp.PUBLIC_CODE_OPTIONS.values()):
            argv = ["--scale", "paper", "--snip-protocol", schedule]
            for name, value in zip(fp.PUBLIC_CODE_OPTIONS, values):
                argv += [flags[name], value]
            args = fp.parse_args(exp, argv)
            assert fp.snip_options(exp, args) == dict(zip(fp.PUBLIC_CODE_OPTIONS, values))
            names[(schedule, values)] = fp.stem(exp, args)
    assert len(set(names.values())) == 64
    today = tuple(v[0] for v in fp.PUBLIC_CODE_OPTIONS.values())
    public = tuple(v[1] for v in fp.PUBLIC_CODE_OPTIONS.values())
    assert names[("paper", today)].endswith("_mnist_paper")  # today's names are unchanged
    assert names[("code", today)].endswith("_mnist_paper_snipcode")
    assert names[("paper", public)].endswith("_mnist_paper_snippublic")
    alone = {name: names[("paper", tuple(p if n == name else t for n, t, p in
                                         zip(fp.PUBLIC_CODE_OPTIONS, today, public)))]
             for name in fp.PUBLIC_CODE_OPTIONS}
    assert {n: s.rsplit("_paper", 1)[1] for n, s in alone.items()} == {
        "weight_decay_mode": "_wdcoupled", "inputs": "_std", "weights_init": "_tf1vs", "train_draw": "_fresh",
        "biases": "_biasespruned"}

    def resolved(*argv):
        args = fp.parse_args(exp, ["--scale", "paper", *argv])
        return args, fp.resolve(exp, args)[0], fp.stem(exp, args)

    args, protocol, name = resolved("--snip-protocol", "public")
    assert name == names[("paper", public)]
    assert fp.snip_options(exp, args) == dict(zip(fp.PUBLIC_CODE_OPTIONS, public))
    assert protocol.weight_decay_mode == "coupled" and protocol.momentum == 0.9  # Section 5's schedule
    assert [step for step, _ in protocol.learning_rate_drops] == [25_000, 50_000, 75_000]
    # the preset with one option set back is that combination's name, not the preset's
    args, protocol, name = resolved("--snip-protocol", "public", "--weight-decay-mode", "decoupled")
    assert protocol.weight_decay_mode == "decoupled" and name.endswith("_paper_std_tf1vs_fresh_biasespruned")
    assert resolved()[1].weight_decay_mode == "decoupled"  # Section 5 as before issue 24
    assert resolved("--weight-decay-mode", "coupled")[1].weight_decay_mode == "coupled"
    # quick-scale runs say so too (before, code and paper shared ..._quick)
    assert fp.stem(exp, fp.parse_args(exp, ["--scale", "quick", "--inputs", "standardised"])).endswith("_quick_std")
    with pytest.raises(SystemExit):
        fp.parse_args(exp, ["--biases", "dropped"])
    thesis = __import__("importlib").import_module("paper_experiments.foresight.01_thesis_4_2_3_figs_4_11_4_13_cnn_mnist")
    with pytest.raises(SystemExit):  # SNIP's options belong to the SNIP scripts only
        fp.parse_args(thesis.EXPERIMENT, ["--inputs", "standardised"])


def test_standardised_inputs_use_one_mean_and_std_of_all_training_images():
    """SNIP's mnist.py: /255, then (x - m) / s with m, s the mean and std of every pixel of the
    official training set (train + validation splits here), the same two numbers for test."""
    from paper_experiments.foresight import foresight_protocol as fp

    data = tiny_data()
    data = Dataset("tiny", "synthetic", data.x_train, data.y_train, data.x_val + 1.0, data.y_val,
                   data.x_test * 3.0 + 2.0, data.y_test, data.num_classes)
    everything = np.concatenate([data.x_train.ravel(), data.x_val.ravel()]).astype(np.float64)
    mean, std = everything.mean(), everything.std()
    out = fp.standardise(data)
    for split in ("train", "val", "test"):
        np.testing.assert_allclose(getattr(out, f"x_{split}"), (getattr(data, f"x_{split}") - mean) / std,
                                   rtol=1e-5, atol=1e-5)
        assert getattr(out, f"x_{split}").dtype == np.float32
    # discriminates: the training split alone, or each split's own statistics, are other numbers
    assert abs(data.x_train.mean() - mean) > 0.05 and abs(out.x_test.std() - 1.0) > 0.5
    assert abs(out.x_train.mean()) > 0.01
    exp = _snip_script().EXPERIMENT
    args = fp.parse_args(exp, ["--scale", "quick", "--dataset", "digits", "--inputs", "standardised"])
    digits = fp.prepare_data(exp, args)
    plain = fp.prepare_data(exp, fp.parse_args(exp, ["--scale", "quick", "--dataset", "digits"]))
    assert plain.x_train.min() == 0.0 and digits.x_train.min() < -0.5


def test_fresh_draw_scores_one_draw_and_trains_another_under_its_mask(tmp_path):
    """train_draw="fresh" (SNIP's weights_bp / weights_ap): the mask is SNIP's on the draw of
    build(seed), the trained weights are another draw (build(fresh_seed(seed))) under that
    mask; "same" trains the scored draw."""
    from dropnet_tf.foresight import prune_at_init

    data = tiny_data()
    built = []

    def seeded_build(seed, init):
        keras.utils.set_random_seed(1000 + seed)  # the draw follows the seed passed in
        model = build(seed, init)
        built.append((seed, model))
        return model

    protocol = TrainingProtocol(epochs=0, learning_rate=0.05, batch_size=32)  # no training: see the draw itself
    records = run_foresight_grid(str(tmp_path / "r.jsonl"), "fresh", seeded_build, data, ["snip"], [4], [0], protocol,
                                 scoring_batch_size=60, log=None, train_draw="fresh")
    assert records[0]["train_draw"] == "fresh"
    assert [seed for seed, _ in built] == [0, fe.fresh_seed(0)]
    scored, trained = built[0][1], built[1][1]
    masks = get_weight_masks(trained)
    assert get_weight_masks(scored).keys() == masks.keys()
    for name, mask in get_weight_masks(scored).items():
        np.testing.assert_array_equal(masks[name], mask)
    # the mask is SNIP's on the scored draw, not on the trained one
    again = seeded_build(0, "glorot_uniform")
    prune_at_init(again, "snip", 4, data=fe.scoring_batch(data.x_train, data.y_train, 60, 0), seed=0)
    on_trained = seeded_build(fe.fresh_seed(0), "glorot_uniform")
    prune_at_init(on_trained, "snip", 4, data=fe.scoring_batch(data.x_train, data.y_train, 60, 0), seed=0)
    for name in masks:
        np.testing.assert_array_equal(get_weight_masks(again)[name], masks[name])
    assert any(not np.array_equal(get_weight_masks(on_trained)[n], masks[n]) for n in masks)
    kernel, fresh = scored.get_layer("hidden").kernel.numpy(), trained.get_layer("hidden").kernel.numpy()
    mask = masks[next(n for n in masks if n.startswith("hidden"))]
    assert np.all(fresh[mask == 0] == 0) and not np.allclose(fresh[mask == 1], kernel[mask == 1])
    built.clear()
    same = run_foresight_grid(str(tmp_path / "s.jsonl"), "same", seeded_build, data, ["snip"], [4], [0], protocol,
                              scoring_batch_size=60, log=None)
    assert same[0]["train_draw"] == "same" and [seed for seed, _ in built] == [0]
    with pytest.raises(ValueError, match=r"train_draw must be one of \('same', 'fresh'\), got 'new'"):
        run_foresight_grid(str(tmp_path / "x.jsonl"), "x", seeded_build, data, ["snip"], [4], [0], protocol,
                           log=None, train_draw="new")


@pytest.mark.both_keras
def test_test_checkpoints_keep_the_last_ones_and_the_best_of_them():
    """SNIP's test.py: test top-1 of a checkpoint every `interval` steps, the last `keep` kept;
    each value against a separately trained copy stopped at that step (numpy argmax)."""
    from dropnet_tf.engines.config import TrainingConfig
    from dropnet_tf.engines.training import Trainer

    data = tiny_data()
    x, y = data.x_train[:64], data.y_train[:64]

    def trained(steps, callbacks=()):
        keras.utils.set_random_seed(4)
        model = build(0, "glorot_uniform")
        config = TrainingConfig(max_epochs=steps // 2, batch_size=32, shuffle=False, early_stopping=False,
                                learning_rate=0.5, momentum=0.9)
        Trainer(model, config, (x, y), engine="keras").fit(callbacks=list(callbacks))
        return model

    def accuracy(model):
        return float(np.mean(np.asarray(model(data.x_test)).argmax(axis=1) == data.y_test))

    tests = fe.TestCheckpoints(data.x_test, data.y_test, interval=2, keep=2, batch_size=7)
    trained(8, [tests])
    expected = [[6, accuracy(trained(6))], [8, accuracy(trained(8))]]
    assert tests.found == expected
    record = tests.record()
    assert record["top1_best_of_last5"] == max(a for _, a in expected) and record["checkpoint_interval"] == 2
    assert len({accuracy(trained(s)) for s in (2, 4, 6, 8)}) > 1  # the steps really differ
    with pytest.raises(ValueError, match=r"TestCheckpoints interval must be a positive integer, got 0"):
        fe.TestCheckpoints(data.x_test, data.y_test, interval=0)


def test_public_preset_end_to_end_records_every_option(tmp_path):
    """--snip-protocol public through the script's main() (digits, quick scale, 1 epoch): every
    record says which options it ran with, and they took effect: the coupled optimizer,
    LeNet-300-100's 410 biases counted among the prunable weights and all pruned by SNIP
    (zero biases score 0), kept in the reference, TF 1 variance scaling, a fresh draw,
    standardised inputs and the checkpoint fields."""
    module = _snip_script("04")
    out, figures = tmp_path / "runs", tmp_path / "figures"
    summary = module.main(module.EXPERIMENT, [
        "--scale", "quick", "--dataset", "digits", "--out", str(out), "--figures", str(figures), "--quiet",
        "--methods", "reference", "snip", "--compressions", "10", "--epochs", "1", "--seeds", "0",
        "--snip-protocol", "public"])
    stem = "04_snip_table1_fig1_lenet300_mnist_snip_lenets_digits_quick_snippublic"
    records = [json.loads(line) for line in (out / f"{stem}.jsonl").read_text().splitlines()]
    assert summary["snip_options"] == {"weight_decay_mode": "coupled", "inputs": "standardised",
                                       "weights_init": "tf1_variance_scaling", "train_draw": "fresh",
                                       "biases": "pruned"}
    weights = 64 * 300 + 300 * 100 + 100 * 10
    by_method = {r["method"]: r for r in records}
    for record in records:
        assert record["snip_protocol"] == "public" and record["snip_options"] == summary["snip_options"]
        assert record["protocol"]["weight_decay_mode"] == "coupled"
        assert record["init"] == record["train_init"] == "tf1_variance_scaling"
        assert record["train_draw"] == "fresh"
        assert record["prunable"] == weights + 410  # biases are in the pruned set
        assert "top1_best_of_last5" in record and record["checkpoint_interval"] == 1000
    assert by_method["reference"]["nonzero"] == weights + 410
    snip = by_method["snip"]
    assert snip["nonzero"] == round((weights + 410) / 10)
    density = snip["per_weight_density"]
    biases = {name: d for name, d in density.items() if "bias" in name}
    assert len(biases) == 3 and all(d == 0.0 for d in biases.values())  # every zero bias scored 0, removed


def test_table_adds_the_best_of_the_last_five_checkpoints_when_recorded(tmp_path):
    from paper_experiments.foresight import foresight_protocol as fp

    exp = _snip_script().EXPERIMENT
    records = [
        {"method": "reference", "compression": 1.0, "top1": 0.98, "top5": 1.0, "empirical_ratio": 1.0,
         "top1_best_of_last5": 0.985},
        {"method": "snip", "compression": 10.0, "top1": 0.97, "top5": 1.0, "empirical_ratio": 10.0,
         "top1_best_of_last5": 0.9725},
        {"method": "snip", "compression": 10.0, "top1": 0.96, "top5": 1.0, "empirical_ratio": 10.0,
         "top1_best_of_last5": 0.9675},
    ]
    text = Path(fp.write_table(exp, records, (10,), str(tmp_path / "t.md"))).read_text()
    assert "| SNIP | 100.00 | 96.50 | 10.0 |" in text  # final iterate, mean of two seeds
    assert "| SNIP | 97.00 |" in text  # best of the last five checkpoints, mean of 97.25 and 96.75
    assert "Unpruned, best of the last five checkpoints: top-1 98.50 %." in text
    plain = [{k: v for k, v in r.items() if k != "top1_best_of_last5"} for r in records]
    assert "checkpoints" not in Path(fp.write_table(exp, plain, (10,), str(tmp_path / "p.md"))).read_text()
