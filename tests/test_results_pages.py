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
