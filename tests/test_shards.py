"""dropnet_tf.harness.shards and paper_experiments.kit.sharding: --shard I/N and --merge (issue 16)."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dropnet_tf.harness.grid import RunGrid
from dropnet_tf.harness.results import ResultsFile
from dropnet_tf.harness.shards import (
    CellOrder, Shard, ShardsIncompleteError, merge_shards, shard_manifest_path, shard_path, write_manifest,
)

ROOT = Path(__file__).resolve().parents[1]

# A grid shaped like LayerPrune's arms: keys of different fields (baseline, filter, layer
# arms), and like DropNet's runs: several records per cell (one per cycle).
KEYS = (
    [{"arm": "baseline", "seed": seed} for seed in (0, 1)]
    + [{"arm": "filter", "criterion": c, "seed": 0} for c in ("l1_norm", "taylor")]
    + [{"arm": "layer", "n": n, "seed": 0} for n in (1, 2, 3)]
)
SETTINGS = {"scale": "quick", "dataset": "digits", "epochs": 1}


def _outcome(key: dict) -> list[dict]:
    """The records a cell appends: a deterministic function of its key (2 'cycles' for layer arms)."""
    value = sum(ord(ch) for ch in json.dumps(key, sort_keys=True)) % 97 / 97
    cycles = 2 if key["arm"] == "layer" else 1
    return [{**key, "cycle": c, "accuracy": value - 0.1 * c} for c in range(cycles)]


def _run_grid(path, order=None, ran=None) -> CellOrder | None:
    grid = RunGrid(path, order=order)
    for key in KEYS:
        def run(key=key):
            if ran is not None:
                ran.append(KEYS.index(key))
            grid.results.extend(_outcome(key))  # the cell stores its own records, as DropNet's do
            return None
        grid.cell(key, run)
    return order


def _run_shards(results, count, settings=SETTINGS, skip=()):
    for index in range(count):
        if index in skip:
            continue
        shard = Shard(index, count)
        write_manifest(results, shard, settings)
        order = _run_grid(shard.path(results), CellOrder(shard))
        write_manifest(results, shard, settings, keys=order.keys, complete=True)


# ----------------------------------------------------------------------------- selection


@pytest.mark.parametrize("index, expected", [(0, [0, 3, 6]), (1, [1, 4]), (2, [2, 5])])
def test_a_shard_runs_the_positions_congruent_to_its_index(tmp_path, index, expected):
    ran = []
    order = _run_grid(tmp_path / "r.jsonl", CellOrder(Shard(index, 3)), ran)
    assert ran == expected  # by hand: positions 0..6, p mod 3 == index
    assert order.keys == KEYS  # every cell numbered, run or not
    assert [r["arm"] for r in ResultsFile(tmp_path / "r.jsonl").records()] == [
        r["arm"] for p in expected for r in _outcome(KEYS[p])]


def test_the_order_does_not_depend_on_what_is_done(tmp_path):
    path = tmp_path / "r.jsonl"
    ResultsFile(path).extend(_outcome(KEYS[3]))  # position 3 already recorded
    ran = []
    _run_grid(path, CellOrder(Shard(0, 3)), ran)
    # Numbered from the visits, not from the missing cells: still 0 and 6, never 4.
    assert ran == [0, 6]
    ran.clear()
    _run_grid(tmp_path / "none.jsonl", CellOrder(run=False), ran)
    assert ran == []  # after a merge: nothing runs


@pytest.mark.parametrize("text", ["3/3", "-1/3", "0/0", "a/3", "1", "1/2/3", "4/3"])
def test_bad_shards_are_refused_by_the_command_line_and_the_core_alike(text):
    from paper_experiments.kit.cli import shard_argument

    with pytest.raises(argparse.ArgumentTypeError, match=rf"0 <= I < N .*got '{text}'"):
        shard_argument(text)
    parts = text.split("/")
    if len(parts) == 2 and all(p.lstrip("-").isdigit() for p in parts):
        with pytest.raises(ValueError, match=r"(0 <= I < N .*got I=-?\d+ for N=\d+|N must be >= 1, got 0)"):
            Shard(int(parts[0]), int(parts[1]))


@pytest.mark.parametrize("text, expected", [("0/1", (0, 1)), ("2/3", (2, 3)), (" 0 / 5 ", (0, 5))])
def test_good_shards_parse(text, expected):
    from paper_experiments.kit.cli import shard_argument

    assert shard_argument(text) == expected
    assert str(Shard(*expected)) == f"{expected[0]}/{expected[1]}"


def test_the_command_line_refuses_merge_with_shard_and_partial_without_merge(capsys):
    from paper_experiments import kit

    parser = kit.build_parser("x")
    with pytest.raises(SystemExit):
        parser.parse_args(["--shard", "0/2", "--merge"])
    assert "--merge and --shard exclude each other" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["--allow-partial"])
    assert "--allow-partial only applies to --merge" in capsys.readouterr().err
    assert parser.parse_args(["--shard", "1/4"]).shard == (1, 4)


def test_file_names():
    assert shard_path("runs/x/results.jsonl", 1, 3) == "runs/x/results.shard-1-of-3.jsonl"
    assert shard_manifest_path("runs/x/results.jsonl", 1, 3) == "runs/x/results.shard-1-of-3.manifest.json"
    assert Shard(0, 3).share(7) == 3 and Shard(2, 3).share(7) == 2


# ----------------------------------------------------------------------------- merge


def test_three_shards_merged_equal_the_grid_in_one_process(tmp_path):
    one = tmp_path / "one" / "results.jsonl"
    _run_grid(one)
    results = tmp_path / "sharded" / "results.jsonl"
    _run_shards(results, 3)
    (tmp_path / "sharded" / "results.shard-1-of-3.jsonl.state").mkdir()
    (tmp_path / "sharded" / "results.shard-1-of-3.jsonl.state" / "run.npz").write_bytes(b"state of shard 1")
    report = merge_shards(results, settings=SETTINGS)
    assert results.read_bytes() == one.read_bytes()  # the same lines in the same (grid) order
    assert (report.merged, report.missing, report.records, report.added, report.duplicates) == ([0, 1, 2], [], 10, 10, 0)
    assert (tmp_path / "sharded" / "results.jsonl.state" / "run.npz").read_bytes() == b"state of shard 1"
    # merging again skips the exact duplicates and changes nothing
    again = merge_shards(results)
    assert results.read_bytes() == one.read_bytes() and (again.added, again.duplicates) == (0, 10)


def test_a_missing_or_unfinished_shard_is_named_and_nothing_is_written(tmp_path):
    results = tmp_path / "results.jsonl"
    _run_shards(results, 3, skip=(2,))
    with pytest.raises(ShardsIncompleteError, match=r"missing shard\(s\) 2 of 3 \(no results\.shard-2-of-3"):
        merge_shards(results)
    assert not results.exists()
    write_manifest(results, Shard(1, 3), SETTINGS)  # shard 1 restarted, not finished
    with pytest.raises(ShardsIncompleteError, match=r"missing shard\(s\) 2 of 3.*unfinished shard\(s\) 1 of 3"):
        merge_shards(results)
    assert not results.exists()
    report = merge_shards(results, allow_partial=True)
    assert (report.missing, report.unfinished) == ([2], [1])
    wanted = [r for p in range(len(KEYS)) if p % 3 != 2 for r in _outcome(KEYS[p])]  # shards 0 and 1
    assert ResultsFile(results).records() == wanted


def test_shards_with_other_settings_counts_or_grids_are_refused(tmp_path):
    results = tmp_path / "results.jsonl"
    _run_shards(results, 3)
    write_manifest(results, Shard(2, 3), {**SETTINGS, "epochs": 2}, keys=KEYS, complete=True)
    name0, name2 = (shard_manifest_path(results, i, 3) for i in (0, 2))
    with pytest.raises(ValueError, match=rf"different settings: {name0} and {name2} differ at epochs: 1 vs 2"):
        merge_shards(results)
    with pytest.raises(ValueError, match=r"other settings than this command: epochs: 1 vs 3"):
        merge_shards(results, settings={**SETTINGS, "epochs": 3})
    write_manifest(results, Shard(2, 3), SETTINGS, keys=KEYS[:-1], complete=True)  # a shorter grid
    with pytest.raises(ValueError, match=r"different grid: .* differ at grid has 7 vs 6 entries"):
        merge_shards(results)
    write_manifest(results, Shard(2, 3), SETTINGS, keys=KEYS, complete=True)
    write_manifest(results, Shard(0, 4), SETTINGS, keys=KEYS, complete=True)
    with pytest.raises(ValueError, match=r"different counts beside .*: .*shard-0-of-3\.manifest\.json \(N=3\) and "
                                         r".*shard-0-of-4\.manifest\.json \(N=4\)"):
        merge_shards(results)
    assert not results.exists()


def test_conflicting_records_are_refused_naming_both_files(tmp_path):
    results = tmp_path / "results.jsonl"
    _run_shards(results, 3)
    changed = dict(_outcome(KEYS[4])[0], accuracy=0.5)  # cell 4 (shard 1), another outcome
    ResultsFile(results).append(changed)
    with pytest.raises(ValueError, match=rf"Conflicting records of the cell .*\"n\": 1.*record 0 differs between "
                                         rf"{results} and {shard_path(results, 1, 3)} at accuracy: 0.5 vs "):
        merge_shards(results)
    assert ResultsFile(results).records() == [changed]  # untouched
    results.unlink()
    ResultsFile(shard_path(results, 2, 3)).append({"arm": "layer", "n": 9, "seed": 0, "cycle": 0})
    with pytest.raises(ValueError, match=r"shard-2-of-3\.jsonl holds a record of no cell of the grid in "
                                         r".*shard-0-of-3\.manifest\.json \(\{\"arm\": \"layer\", \"cycle\": 0"):
        merge_shards(results)


def test_a_shard_still_running_merges_as_the_prefix_of_its_later_self(tmp_path):
    results = tmp_path / "results.jsonl"
    _run_shards(results, 3)
    partial = ResultsFile(results)
    partial.extend(_outcome(KEYS[5])[:1])  # an earlier --allow-partial merge saw cycle 0 only
    report = merge_shards(results)
    assert report.duplicates == 1 and report.records == 10
    assert ResultsFile(results).records() == [r for key in KEYS for r in _outcome(key)]


def test_the_script_kit_refuses_a_shard_file_of_other_settings(tmp_path):
    from paper_experiments.kit import UserError, sharding

    args = argparse.Namespace(scale="quick", dataset="digits", seeds=[0], out=str(tmp_path), shard=(0, 2),
                              merge=False, allow_partial=False, quiet=True)
    results = str(tmp_path / "results.jsonl")
    plan = sharding.plan(args, results)
    assert plan.results == str(tmp_path / "results.shard-0-of-2.jsonl") and plan.share(5) == 3
    args.seeds = [0, 1]
    with pytest.raises(UserError, match=r"results\.shard-0-of-2\.manifest\.json holds runs made with other "
                                        r"settings \(seeds has 1 vs 2 entries"):
        sharding.plan(args, results)


# ----------------------------------------------------------------------------- the scripts


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _without_times(records):
    return [{k: v for k, v in r.items() if k not in ("wall_seconds", "train_seconds", "scoring_seconds")}
            for r in records]


@pytest.mark.slow
def test_a_dropnet_grid_in_three_shard_processes_merged_equals_it_in_one_process(tmp_path):
    """04_1_1 on digits, 2 metrics × 2 seeds, 1 epoch per cycle: shards 0, 1, 2 of 3 in three
    processes at once, --merge, against the same command unsharded."""
    script = ROOT / "paper_experiments" / "dropnet" / "04_1_1_fig03_model_a_fc40_fc40_mnist.py"
    options = ["--scale", "quick", "--dataset", "digits", "--seeds", "0", "1", "--metrics", "minimum",
               "minimum_layer", "--max-epochs", "1", "--max-train", "300"]

    def where(name):
        return ["--out", str(tmp_path / name / "runs"), "--figures", str(tmp_path / name / "figures")]

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    shards = [subprocess.Popen([sys.executable, str(script), *options, *where("sharded"), "--shard", f"{i}/3"],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
              for i in range(3)]
    outputs = [shard.communicate(timeout=900)[0] for shard in shards]
    assert [shard.returncode for shard in shards] == [0, 0, 0], "\n".join(o[-2000:] for o in outputs)
    assert "Shard 2/3 done" in outputs[2]
    # each shard's progress counts its own runs: shard 0 has 2 of the 4, shard 1 one
    assert "run 2 of 2," in outputs[0] and "run 3 of" not in outputs[0] and "run 1 of 1," in outputs[1]
    sharded = tmp_path / "sharded"
    assert not (sharded / "figures").exists()  # a shard draws nothing
    # cells 0-3: (minimum, 0), (minimum, 1), (minimum_layer, 0), (minimum_layer, 1); shard 0 has 0 and 3
    shard0 = ResultsFile(sharded / "runs" / "results.shard-0-of-3.jsonl").records()
    assert {(r["metric"], r["seed"]) for r in shard0} == {("minimum", 0), ("minimum_layer", 1)}

    module = _load(script)
    module.main(module.EXPERIMENT, options + where("sharded") + ["--merge", "--quiet"])
    module.main(module.EXPERIMENT, options + where("one") + ["--quiet"])
    merged = ResultsFile(sharded / "runs" / "results.jsonl").records()
    one = ResultsFile(tmp_path / "one" / "runs" / "results.jsonl").records()
    assert len(one) > 4 * 2 and len({(r["metric"], r["seed"]) for r in one}) == 4
    assert _without_times(merged) == _without_times(one)
    assert sorted(os.listdir(sharded / "runs" / "results.jsonl.state")) == sorted(
        os.listdir(tmp_path / "one" / "runs" / "results.jsonl.state"))
    for name in sorted(os.listdir(tmp_path / "one" / "figures")):
        if name.endswith(".csv"):
            assert _rows(sharded / "figures" / name) == _rows(tmp_path / "one" / "figures" / name), name
    summary = "04_1_1_model_a_fc40_fc40_digits_quick.json"
    drop = ("cycles_this_call", "compute_seconds", "seconds_this_call", "grid_time", "merge")
    a, b = (json.loads((tmp_path / n / "figures" / summary).read_text()) for n in ("sharded", "one"))
    assert a["merge"]["merged"] == [0, 1, 2] and a["merge"]["missing_cells"] == 0 and "merge" not in b
    assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}
    # The grid's time: three shard sittings side by side (the merge trains nothing and is none),
    # against one sitting of the unsharded command.
    assert (a["grid_time"]["sittings"], a["grid_time"]["most_processes_at_once"]) == (3, 3)
    assert (b["grid_time"]["sittings"], b["grid_time"]["most_processes_at_once"]) == (1, 1)


@pytest.mark.slow
def test_a_foresight_grid_in_two_shards_merged_equals_it_in_one_process(tmp_path):
    """04 (SNIP Table 1) on digits: reference + SNIP + random at r = 10, 20, seed 0, 1 epoch,
    shards run through main() one after the other."""
    script = ROOT / "paper_experiments" / "foresight" / "04_snip_table1_fig1_lenet300_mnist.py"
    module = _load(script)
    options = ["--scale", "quick", "--dataset", "digits", "--seeds", "0", "--methods", "reference", "snip", "random",
               "--compressions", "10", "20", "--epochs", "1", "--max-train", "300", "--quiet"]

    def where(name):
        return ["--out", str(tmp_path / name / "runs"), "--figures", str(tmp_path / name / "figures")]

    for index in range(2):
        assert module.main(module.EXPERIMENT, options + where("sharded") + ["--shard", f"{index}/2"])["shard"]
    with pytest.raises(SystemExit):  # the merge command must match the shards' options
        module.main(module.EXPERIMENT, options + where("sharded") + ["--merge", "--epochs", "2"])
    module.main(module.EXPERIMENT, options + where("sharded") + ["--merge", "--quiet"])
    module.main(module.EXPERIMENT, options + where("one") + ["--quiet"])
    stem = "04_snip_table1_fig1_lenet300_mnist_snip_lenets_digits_quick"
    merged = ResultsFile(tmp_path / "sharded" / "runs" / f"{stem}.jsonl").records()
    one = ResultsFile(tmp_path / "one" / "runs" / f"{stem}.jsonl").records()
    assert len(one) == 5 and {r["method"] for r in one} == {"reference", "snip", "random"}
    assert _without_times(merged) == _without_times(one)
    shard1 = ResultsFile(tmp_path / "sharded" / "runs" / f"{stem}.shard-1-of-2.jsonl").records()
    assert [(r["method"], r["compression"]) for r in shard1] == [("snip", 10.0), ("random", 10.0)]
    assert (tmp_path / "sharded" / "figures" / f"{stem}_table1.md").read_text() == (
        tmp_path / "one" / "figures" / f"{stem}_table1.md").read_text()


@pytest.mark.slow
def test_a_layerprune_script_in_two_shards_trains_only_its_baselines_and_merges_to_the_one_process_run(tmp_path):
    """05 (Figs. 2-3) at the end-to-end test's tiny scale, seeds 0 and 1: one arm per seed, so
    shard I of 2 has seed I's arm and needs (and trains) only seed I's baseline."""
    import shutil

    from test_layerprune_experiments import TINY, needs_fashion

    if needs_fashion.args[0]:
        pytest.skip(needs_fashion.kwargs["reason"])
    script = ROOT / "paper_experiments" / "layerprune" / "05_figs2_3_block_importance_resnet56.py"
    module = _load(script)
    options = [*TINY, "--criteria", "l1_norm", "--seeds", "0", "1"]

    def where(name):
        return ["--out", str(tmp_path / name), "--figures", str(tmp_path / name / "figures")]

    assert module.main(options + where("sharded") + ["--shard", "1/2"]) is None  # a shard draws nothing
    assert os.listdir(tmp_path / "sharded" / "baselines") == ["resnet_fashion_mnist_rgb32_quick_n200_be1_seed1.keras"]
    module.main(options + where("sharded") + ["--shard", "0/2"])
    assert not (tmp_path / "sharded" / "figures").exists()
    module.main(options + where("sharded") + ["--merge"])
    shutil.copytree(tmp_path / "sharded" / "baselines", tmp_path / "one" / "baselines")  # the same networks
    module.main(options + where("one"))
    stem = "05_figs2_3_block_importance_resnet56_fashion_mnist_rgb32_quick_n200_be1_fe1"
    merged, one = (ResultsFile(tmp_path / name / f"{stem}.jsonl").records() for name in ("sharded", "one"))
    assert [r["seed"] for r in one] == [0, 1]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in merged] == [
        {k: v for k, v in r.items() if k != "seconds"} for r in one]
    csv_name = "05_figs2_3_block_importance_resnet56_fashion_mnist_rgb32_quick.csv"
    assert _rows(tmp_path / "sharded" / "figures" / csv_name) == _rows(tmp_path / "one" / "figures" / csv_name)


def test_a_shard_resumes_with_another_population_and_an_older_manifest_that_stored_it(tmp_path):
    from paper_experiments.kit import UserError, sharding

    results = str(tmp_path / "results.jsonl")
    old = argparse.Namespace(shard=(0, 2), merge=False, allow_partial=False, population="auto", seeds=[0, 1])
    # A manifest written when the population was still compared.
    write_manifest(results, Shard(0, 2), {**sharding.settings_of(old), "population": "auto"})
    new = argparse.Namespace(**{**vars(old), "population": 15})
    assert sharding.plan(new, results, log=None).shard == Shard(0, 2)
    # A setting that changes results is still refused, named.
    other = argparse.Namespace(**{**vars(old), "seeds": [0, 1, 2]})
    with pytest.raises(UserError, match=r"other settings \(seeds has 2 vs 3 entries"):
        sharding.plan(other, results, log=None)


# ----------------------------------------------------------------------------- records, not manifests (issue 27)


def _cells_of(index, count=3):
    """The keys shard ``index`` of ``count`` owns, worked out from the grid order by hand."""
    return [KEYS[p] for p in range(len(KEYS)) if p % count == index]


@pytest.mark.parametrize("damage, named", [
    ("delete", r"results\.shard-1-of-3\.jsonl is missing"),
    ("empty", r"results\.shard-1-of-3\.jsonl is empty"),
    ("torn", r"results\.shard-1-of-3\.jsonl is torn \(line\(s\) 2 not a JSON record\)"),
])
def test_a_finished_manifest_without_its_records_is_named_with_the_cells_it_lacks(tmp_path, damage, named):
    """Shard 1 of 3 owns cells 1 (baseline seed 1) and 4 (layer n=1, 2 records): its manifest says
    finished, its file does not hold them. The merge names the shard, the file and both cells."""
    results = tmp_path / "results.jsonl"
    _run_shards(results, 3)
    path = Path(shard_path(results, 1, 3))
    lines = path.read_text().splitlines(keepends=True)
    assert len(lines) == 3  # cell 1's record, cell 4's two cycles
    if damage == "delete":
        path.unlink()
    elif damage == "empty":
        path.write_text("")
    else:  # a copy cut inside cell 4's first record: cell 1 survives, cell 4 does not
        path.write_text(lines[0] + lines[1][: len(lines[1]) // 2])
    lacking = [1, 4] if damage != "torn" else [4]
    with pytest.raises(ShardsIncompleteError) as caught:
        merge_shards(results)
    message = str(caught.value)
    assert re.search(rf"shard 1 lacks {len(lacking)} of 2 cells \({named}\)", message), message
    assert ("arm=\"baseline\" seed=1" in message) == (1 in lacking) and 'arm="layer" n=1' in message
    assert "shard 0" not in message and "shard 2" not in message  # the finished shards are not blamed
    assert f"{len(lacking)} of 7 cells missing" in message and "Nothing was written" in message
    assert not results.exists()
    report = merge_shards(results, allow_partial=True)
    assert report.partial and report.missing_cells == len(lacking) and report.cells == 7
    assert report.lacking == {1: [KEYS[p] for p in lacking]}
    assert "PARTIAL" in report.describe() and f"{len(lacking)} of 7 cells missing" in report.describe()
    kept = [r for p in range(len(KEYS)) if p not in lacking for r in _outcome(KEYS[p])]
    assert ResultsFile(results).records() == kept  # the torn line is not merged, the whole ones are


def test_a_cell_is_finished_by_the_family_rule_not_by_having_records(tmp_path):
    """DropNet's rule: a run is done when its last record has a stop_reason. Shard 1's layer cell
    (n=1) stopped after cycle 0 of 2 although the manifest says finished: with the rule it lacks,
    with the default rule (any record) it would pass, which is why DropNet passes its own."""
    results = tmp_path / "results.jsonl"
    _run_shards(results, 3)
    path = Path(shard_path(results, 1, 3))
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + lines[1])  # cell 4 keeps cycle 0 only
    def last_cycle(records):  # the family rule here: the final record is cycle 1 of a layer arm
        return records[-1]["arm"] != "layer" or records[-1]["cycle"] == 1
    with pytest.raises(ShardsIncompleteError, match=r"shard 1 lacks 1 of 2 cells: \(arm=\"layer\" n=1 seed=0\)"):
        merge_shards(results, finished=last_cycle)
    assert merge_shards(results).missing_cells == 0  # precondition: the default rule cannot see it
    # a finished manifest is necessary as well: records alone of an unfinished shard do not pass
    results.unlink()
    _run_shards(results, 3)
    write_manifest(results, Shard(2, 3), SETTINGS, complete=False)
    with pytest.raises(ShardsIncompleteError, match=r"shard 2 \(its manifest says unfinished"):
        merge_shards(results)


def test_an_earlier_merge_holds_the_cells_of_a_file_lost_after_it(tmp_path):
    """The records decide: once a merge wrote shard 1's cells into results.jsonl, losing the shard's
    file loses nothing, and a second merge passes and keeps every record."""
    results = tmp_path / "results.jsonl"
    _run_shards(results, 3)
    merge_shards(results)
    Path(shard_path(results, 1, 3)).unlink()
    report = merge_shards(results)
    assert report.missing_cells == 0 and not report.partial
    assert ResultsFile(results).records() == [r for key in KEYS for r in _outcome(key)]


# ----------------------------------------------------------------------------- the scripts' merge (issue 27)

FIG3 = ROOT / "paper_experiments" / "dropnet" / "04_1_1_fig03_model_a_fc40_fc40_mnist.py"
FIG3_OPTIONS = ["--scale", "quick", "--dataset", "digits", "--seeds", "0", "1", "--metrics", "minimum_layer",
                "--max-epochs", "1", "--max-train", "200", "--quiet"]


@pytest.fixture(scope="module")
def fig3_shards(tmp_path_factory):
    """The issue's grid: Fig. 3 on digits, two seeds, run as --shard 0/2 and --shard 1/2 (in this
    process); cell 0 is seed 0 (shard 0), cell 1 seed 1 (shard 1). Tests copy the folder."""
    from script_helpers import load_script

    module = load_script(FIG3)
    where = tmp_path_factory.mktemp("fig3") / "runs"
    for index in range(2):
        assert module.main(module.EXPERIMENT, FIG3_OPTIONS + ["--out", str(where), "--shard", f"{index}/2"])
    return module, where


def _fig3_merge(module, runs, figures, *extra):
    return module.main(module.EXPERIMENT, FIG3_OPTIONS + ["--out", str(runs), "--figures", str(figures), "--merge",
                                                          *extra])


@pytest.mark.parametrize("damage", ["delete", "unfinished run"])
def test_the_issue_27_merge_of_a_dropnet_grid_lacking_shard_1_exits_1_and_draws_nothing(
        fig3_shards, tmp_path, capsys, monkeypatch, damage):
    """Shard 1's file deleted (the issue's case), or cut before its run's last cycle (no
    stop_reason: DropNet's finish rule): the merge names shard 1 and its cell (seed=1), exits
    with status 1 and draws nothing; --allow-partial draws and says "1 of 2 cells missing"."""
    import shutil

    import dropnet_tf.plotting

    module, source = fig3_shards
    runs = tmp_path / "runs"
    shutil.copytree(source, runs)
    shard1 = runs / "results.shard-1-of-2.jsonl"
    if damage == "delete":
        shard1.unlink()
    else:
        lines = shard1.read_text().splitlines(keepends=True)
        assert json.loads(lines[-1])["stop_reason"] and not json.loads(lines[-2])["stop_reason"]
        shard1.write_text("".join(lines[:-1]))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        _fig3_merge(module, runs, tmp_path / "figures")
    assert exited.value.code == 1
    err = " ".join(capsys.readouterr().err.split())
    reason = "results.shard-1-of-2.jsonl is missing" if damage == "delete" else "lacks 1 of 1 cells: (seed=1)"
    assert "shard 1 lacks 1 of 1 cells" in err and "(seed=1)" in err and reason in err, err
    assert "1 of 2 cells missing" in err and "shard 0" not in err
    assert not (tmp_path / "figures").exists() and not (runs / "results.jsonl").exists()

    notes = []
    real = dropnet_tf.plotting.plot_accuracy_vs_fraction
    monkeypatch.setattr(dropnet_tf.plotting, "plot_accuracy_vs_fraction",
                        lambda *a, **k: notes.append(k["note"]) or real(*a, **k))
    summary = _fig3_merge(module, runs, tmp_path / "figures", "--allow-partial")
    out = capsys.readouterr().out
    assert summary["merge"]["missing_cells"] == 1 and summary["merge"]["cells"] == 2
    assert summary["merge"]["missing"] == {"1": [{"experiment": "dropnet_04_1_1_model_a_fc40_fc40",
                                                  "metric": "minimum_layer", "seed": 1, "init": "original"}]}
    assert notes and all("PARTIAL merge (--allow-partial): 1 of 2 cells missing" in note for note in notes)
    assert "Merged: 1 of 2 runs" in out and "nothing runs" in out and "Resuming" not in out and "to go" not in out
    written = json.loads((tmp_path / "figures" / "04_1_1_model_a_fc40_fc40_digits_quick.json").read_text())
    assert written["merge"]["missing_cells"] == 1


def test_a_whole_dropnet_merge_says_it_merged_and_counts_no_missing_cell(fig3_shards, tmp_path, capsys):
    import shutil

    module, source = fig3_shards
    runs = tmp_path / "runs"
    shutil.copytree(source, runs)
    capsys.readouterr()
    summary = _fig3_merge(module, runs, tmp_path / "figures")
    out = capsys.readouterr().out
    assert summary["merge"] == {"shards": 2, "merged": [0, 1], "partial": False, "cells": 2, "missing_cells": 0,
                                "missing": {}}
    assert "Merged: 2 of 2 runs" in out and "PARTIAL" not in out and "Resuming" not in out
    assert {r["seed"] for r in ResultsFile(runs / "results.jsonl").records()} == {0, 1}


def test_a_foresight_merge_lacking_a_shard_exits_1_and_its_partial_merge_says_so(tmp_path, capsys, monkeypatch):
    """SNIP Table 1 (04) on digits: cells reference (seed 0) and snip r=10 (seed 0), one per shard.
    Foresight's cells are done with one record (the default rule); shard 1's file deleted."""
    from script_helpers import load_script

    module = load_script(ROOT / "paper_experiments" / "foresight" / "04_snip_table1_fig1_lenet300_mnist.py")
    protocol = sys.modules[module.main.__module__]
    options = ["--scale", "quick", "--dataset", "digits", "--seeds", "0", "--methods", "reference", "snip",
               "--compressions", "10", "--epochs", "1", "--max-train", "200", "--quiet",
               "--out", str(tmp_path / "runs"), "--figures", str(tmp_path / "figures")]
    for index in range(2):
        assert module.main(module.EXPERIMENT, options + ["--shard", f"{index}/2"])["shard"]
    stem = "04_snip_table1_fig1_lenet300_mnist_snip_lenets_digits_quick"
    (tmp_path / "runs" / f"{stem}.shard-1-of-2.jsonl").unlink()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        module.main(module.EXPERIMENT, options + ["--merge"])
    err = " ".join(capsys.readouterr().err.split())
    assert exited.value.code == 1 and "shard 1 lacks 1 of 1 cells" in err and '(method="snip"' in err, err
    assert not (tmp_path / "figures").exists()
    captions = []
    real = protocol.draw_curves
    monkeypatch.setattr(protocol, "draw_curves", lambda records, y, title, caption, path: captions.append(caption)
                        or real(records, y, title, caption, path))
    summary = module.main(module.EXPERIMENT, options + ["--merge", "--allow-partial"])
    assert summary["merge"]["missing_cells"] == 1 and summary["merge"]["cells"] == 2
    assert captions and all("PARTIAL merge (--allow-partial): 1 of 2 cells missing" in c for c in captions)
    assert "Merged: 1 of 2 runs" in capsys.readouterr().out


def test_layerprune_captions_and_footers_say_a_partial_merge(monkeypatch):
    """LayerPrune draws every caption and table footer through provenance(): after a partial
    merge it carries the count of missing cells; after a whole one, or none, nothing."""
    import types

    from dropnet_tf.harness.shards import MergeReport
    from paper_experiments.kit import entry
    from paper_experiments.layerprune import layerprune_protocol as lp

    args = types.SimpleNamespace(scale="quick", dataset="digits", seeds=None, criteria=None)
    scale = types.SimpleNamespace(resnet_depth=8, vgg_width=0.25, baseline_epochs=1, finetune_epochs=1,
                                  finetune_lr=0.01, seeds=(0,), latency_repeats=3, latency_batch=1)
    data = types.SimpleNamespace(x_train=[0] * 4, x_test=[0] * 2)
    partial = MergeReport("r.jsonl", 2, [0], unfinished=[1], cells=6, lacking={1: [{"seed": 1}, {"seed": 3}]})
    monkeypatch.setattr(entry.progress, "merged", partial)
    assert lp.provenance(args, scale, data, "05_x").endswith("PARTIAL merge (--allow-partial): 2 of 6 cells missing.")
    monkeypatch.setattr(entry.progress, "merged", MergeReport("r.jsonl", 2, [0, 1], cells=6))
    assert "PARTIAL" not in lp.provenance(args, scale, data, "05_x")
