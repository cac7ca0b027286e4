"""experiments/final_network_variants.py: its variants and its choice rule (no training here)."""

import math
import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "final_network_variants.py"


@pytest.fixture(scope="module")
def script():
    return runpy.run_path(str(SCRIPT))        # defines the names; main() does not run


#: What the script printed on the two machines of experiments/RESULTS.md: for each variant, its
#: validation errors out of 10,000 and its training seconds (the repeat, not a candidate, left out).
RUNS = {
    "machine 1": {"no dropout": (87, 187), "dropout 0.5": (78, 184), "10 epochs": (78, 231), "5 epochs": (85, 119),
                  "dense 128": (89, 178), "32 + 32": (87, 190), "third convolution": (72, 278)},
    "machine 2": {"no dropout": (90, 86), "dropout 0.5": (74, 88), "10 epochs": (71, 110), "5 epochs": (78, 82),
                  "dense 128": (87, 120), "32 + 32": (93, 128), "third convolution": (76, 153)},
}


def choice(script, machine):
    """``(accuracies, (best, std_error, close, chosen))`` of the rule on one machine's run."""
    acc = {name: 1 - errors / 10_000 for name, (errors, _) in RUNS[machine].items()}
    sec = {name: seconds for name, (_, seconds) in RUNS[machine].items()}
    return acc, script["one_standard_error_choice"](acc, sec)


def test_one_standard_error_rule_by_hand(script):
    choose = script["one_standard_error_choice"]
    # the figures the script printed when the book's final network was chosen
    _, (best, se, close, chosen) = choice(script, "machine 1")
    assert best == "third convolution"
    assert se == pytest.approx(math.sqrt(0.9928 * 0.0072 / 10_000))     # 0.085 points: 8.5 errors
    assert close == ["dropout 0.5", "10 epochs", "third convolution"]    # 5 epochs is 13 errors away
    assert chosen == "dropout 0.5"
    # with only the best close enough, the best is chosen whatever its time
    assert choose({"a": 0.99, "b": 0.98}, {"a": 100, "b": 1})[3] == "a"
    with pytest.raises(ValueError, match="no variant"):
        choose({}, {})


def test_the_second_machines_figures_choose_the_5_epoch_variant(script):
    """experiments/RESULTS.md and the chapter: on a second machine the rule chose the 5-epoch
    variant; the book's "dropout 0.5" was within one standard error of the best there too."""
    acc, (best, se, close, chosen) = choice(script, "machine 2")
    assert best == "10 epochs" and chosen == "5 epochs"
    assert close == ["dropout 0.5", "10 epochs", "5 epochs", "third convolution"]
    assert 0 < acc["5 epochs"] - (acc[best] - se) < 2e-4          # "just within": by less than two errors
    text = (SCRIPT.parent / "RESULTS.md").read_text(encoding="utf-8")
    assert "chosen (the fastest of those): dropout 0.5, 5 epochs at x0.6" in text


def test_the_variants_are_judged_on_validation_and_include_the_book_choice(script):
    text = SCRIPT.read_text(encoding="utf-8")
    assert "load_mnist" not in text and "x_test" not in text and "val_size=10_000" in text
    variants = script["VARIANTS"]
    assert variants["dropout 0.5"] == (script["CHOSEN_ARCH"], script["TRAINING"])
    assert sum("repeat" in name for name in variants) == 1
    assert script["main"](["--list"]) is None                     # lists without training
    with pytest.raises(SystemExit):
        script["main"](["--shard", "3/2"])
