"""paper_experiments/results_pages.py: the generated figures/<paper>/RESULTS.md pages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pages():
    from paper_experiments import results_pages

    return results_pages


@pytest.mark.parametrize("paper", ["dropnet", "foresight", "layerprune"])
def test_committed_pages_are_what_the_generator_writes(pages, paper, tmp_path):
    # A summary changed without rerunning the generator (or a page edited by hand) fails here.
    out = pages.write(paper, ROOT / "figures" / paper, tmp_path / "RESULTS.md")
    assert out.read_text() == (ROOT / "figures" / paper / "RESULTS.md").read_text()


def test_snip_table1_is_error_percent_next_to_the_paper(pages, tmp_path):
    header = "experiment,method,compression,seed,model,dataset,top1\n"
    rows = [
        "snip_lenets,reference,1.0,0,lenet_300_100,mnist,0.984",
        "snip_lenets,snip,20.0,0,lenet_300_100,mnist,0.9759",
        "snip_lenets,snip,50.0,0,lenet_300_100,mnist,0.9633",
        "snip_lenets,tfmot_gmp,20.0,0,lenet_300_100,mnist,0.9813",
    ]
    (tmp_path / "04_snip_table1_fig1_lenet300_mnist_snip_lenets_mnist_paper.csv").write_text(header + "\n".join(rows))
    lines = pages._snip_table1_against_paper(tmp_path)
    assert "| | reference | 95 % | 98 % |" in lines
    assert "| SNIP paper | 1.7 | 1.6 | 2.4 |" in lines
    assert "| ours, SNIP | 1.60 | 2.41 | 3.67 |" in lines  # 100 · (1 − top-1), not top-1
    assert "| ours, TFMOT gradual magnitude | – | 1.87 | – |" in lines


def test_foresight_page_says_how_each_summary_was_made(pages, tmp_path):
    summary = {
        "script": "08_snip_table3_initialisations", "model": "gru_s", "dataset": "fashion_mnist",
        "scale": "quick", "seeds": [0, 1], "epochs": 3, "outputs": ["figures/foresight/absent.png"],
    }
    stem = "08_snip_table3_initialisations_gru_s_fashion_mnist_quick"
    (tmp_path / f"{stem}.json").write_text(json.dumps(summary))
    (tmp_path / f"{stem}_table3.md").write_text("| Init. | error |\n|---|---|\n| RN | 90.00 |\n")
    page = pages.foresight_page(tmp_path)
    assert "Made with: fashion_mnist, scale quick; seeds 0, 1; 3 epochs." in page
    assert ("`python paper_experiments/foresight/08_snip_table3_initialisations.py --scale quick "
            "--dataset fashion_mnist --model gru_s`") in page
    assert "| RN | 90.00 |" in page
    assert "absent.png" not in page  # only figures that exist are linked


def test_main_refuses_an_unknown_paper(pages):
    with pytest.raises(SystemExit):
        pages.main(["snipp"])


def test_thesis_tie_rule_rows_put_each_rerun_cell_beside_the_exact_rule_run(pages, tmp_path):
    stem = pages.THESIS_STEM
    (tmp_path / f"{stem}_tie_rules_masks.csv").write_text(
        "method,compression,seed,same_masks,thesis_empirical_ratio,thesis_compression_error\n"
        "grasp,2.0,42,False,1.6885,0.15574\n"
        "grasp,64.0,42,True,64.0,0.0\n"
        "snip,2.0,42,True,2.0,0.0\n")
    (tmp_path / f"{stem}_thesisties.csv").write_text(
        "method,compression,seed,top1,empirical_ratio\n"
        "grasp,2.0,42,0.8232,1.6885\n"
        "grasp,64.0,42,0.2293,64.0\n")
    (tmp_path / f"{stem}.csv").write_text(
        "method,compression,seed,top1,empirical_ratio\n"
        "grasp,2.0,7,0.5,2.0\n"  # another seed, listed first: not the rerun's counterpart
        "grasp,2.0,42,0.8215,2.0\n"
        "grasp,64.0,42,0.2293,64.0\n")
    lines = pages._thesis_tie_rule_beside_exact(tmp_path)
    assert "changes 1 of 3 masks: GraSP at r = 2 (r_e 1.69, compression error 15.6 %)" in lines[2]
    assert "| GraSP | 2 | 82.32 | 82.15 | 1.69 | 2.00 | no |" in lines
    assert "| GraSP | 64 | 22.93 | 22.93 | 64.00 | 64.00 | yes |" in lines
    (tmp_path / f"{stem}_thesisties.csv").unlink()
    assert pages._thesis_tie_rule_beside_exact(tmp_path) == []  # no rerun, no section


def test_dropnet_levels_put_both_protocols_side_by_side_with_the_paper(pages, tmp_path):
    def summary(protocol, seeds, levels, scale="paper"):
        return {"script": "04_1_1_fig03_model_a_fc40_fc40_mnist.py", "section": "4.1", "title": "Model A: FC40-FC40",
                "protocol": protocol, "scale": {"name": scale, "seeds": list(range(seeds))},
                "paper_ordering": "minimum_layer ≥ minimum", "ordering_by_mean_test_accuracy": [["minimum", 0.9], ["random", 0.8]],
                "test_accuracy_at_levels": {"0.5": {"minimum": {"mean": 0.95, "ci95": 0.001, "n": seeds}},
                                            "0.25": {}, "0.1": levels},
                "grid_time": {"sittings": 2, "wall_clock_seconds": 3000.0, "process_seconds": 5900.0,
                              "most_processes_at_once": 2, "population_sizes": ["auto"]}}

    (tmp_path / "a.json").write_text(json.dumps(summary("paper", 15, {"minimum": {"mean": 0.857, "ci95": 0.005, "n": 15}})))
    (tmp_path / "b.json").write_text(json.dumps(summary("notebook", 15, {"random": {"mean": 0.761, "ci95": 0.02, "n": 14}})))
    # A cut of the paper scale is not compared level for level.
    (tmp_path / "c.json").write_text(json.dumps(summary("paper", 1, {"minimum": {"mean": 0.1, "ci95": 0.0, "n": 1}},
                                                        scale="paper_train3000")))
    lines = pages._dropnet_levels(tmp_path)
    assert "| arm | exact at 50 % | exact at 25 % | exact at 10 % | notebook at 50 % | notebook at 25 % | notebook at 10 % | paper at 10 % |" in lines
    assert "| minimum | 0.950 ± 0.001 (15) | – | 0.857 ± 0.005 (15) | 0.950 ± 0.001 (15) | – | – | ≈0.82 |" in lines
    assert "| random | – | – | – | – | – | 0.761 ± 0.020 (14) | ≈0.76 |" in lines
    assert "Exact grid: 50 min 00 s wall clock over 2 sitting(s), 1 h 38 min of process time, up to 2 processes at once, population auto." in lines
    assert not any("0.100" in line for line in lines)


def test_snip_table1_public_preset_adds_the_best_of_the_last_five_checkpoints(pages, tmp_path):
    """Issue 24: a --snip-protocol public CSV gets its own table, headed as such, with the public
    code's number (best of the last five checkpoints) beside the final iterate's."""
    header = "experiment,method,compression,seed,model,dataset,top1,top1_best_of_last5\n"
    rows = ["snip_lenets,reference,1.0,0,lenet_300_100,mnist,0.980,0.984",
            "snip_lenets,snip,20.0,0,lenet_300_100,mnist,0.9700,0.9750"]
    stem = "04_snip_table1_fig1_lenet300_mnist_snip_lenets_mnist_paper_snippublic"
    (tmp_path / f"{stem}.csv").write_text(header + "\n".join(rows))
    (tmp_path / "04_snip_table1_fig1_lenet300_mnist_snip_lenets_mnist_paper_std.csv").write_text(header + rows[1])
    lines = pages._snip_table1_against_paper(tmp_path)
    titles = sorted(line for line in lines if line.startswith("### "))
    assert titles == [
        "### SNIP Table 1, lenet_300_100, on the real mnist, Section 5 protocol, one public-code option (std): "
        "test error (%) against the paper",
        "### SNIP Table 1, lenet_300_100, on the real mnist, Section 5 schedule as the public code runs it: "
        "test error (%) against the paper"]
    assert "--snip-protocol" not in pages._foresight_command(
        {"script": "04_snip_table1_fig1_lenet300_mnist", "scale": "quick", "dataset": "digits",
         "snip_protocol": "paper", "snip_options": {"inputs": "scaled"}}, {})
    assert "| ours, SNIP | 2.00 | 3.00 | – |" in lines  # final iterate
    assert "| ours, SNIP, best of the last five checkpoints | 1.60 | 2.50 | – |" in lines
    command = pages._foresight_command({"script": "04_snip_table1_fig1_lenet300_mnist", "scale": "quick",
                                        "dataset": "digits", "snip_protocol": "public",
                                        "snip_options": {"weight_decay_mode": "decoupled", "inputs": "standardised",
                                                         "weights_init": "tf1_variance_scaling",
                                                         "train_draw": "fresh", "biases": "pruned"}}, {})
    assert "--snip-protocol public --weight-decay-mode decoupled" in command


def test_a_dropnet_grid_states_its_wall_clock_not_its_members_summed_times(pages):
    # A population's members are each timed by the whole population's steps, so their sum
    # (compute_seconds) is no wall clock; the grid's own record is, where there is one.
    summary = {"compute_seconds": 96827.8, "grid_time": {
        "sittings": 2, "wall_clock_seconds": 1190.8, "process_seconds": 2357.5, "most_processes_at_once": 2}}
    stated = pages._dropnet_time(summary)
    assert stated.startswith("19 min 51 s of wall clock") and "39 min 18 s of process time" in stated
    assert "2 processes" in stated and "2 sittings" in stated and "26 h" not in stated
    assert pages._dropnet_time({"compute_seconds": 90.0}) == "1 min 30 s of compute"
