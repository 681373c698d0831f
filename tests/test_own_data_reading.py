"""How an own-data run reads its files: a separate test source read as the training data were (a
stray `?` label unknown, not a class; in multi-task runs, the test split), a table target read once
(its warnings said once), and a class with a single example at shots: all said, with where it went."""
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from taskshare.cli import main
from taskshare.data.sources import read_source
from taskshare.errors import TaskshareError
from taskshare.experiments.own import few_shot_splits, load_own, read_target
from taskshare.experiments.own_sources import hold_out

from .data.own_files import image_folder, table_csv, tiny_bert, write_image

FAST = {"epochs": 1, "min_steps": 0, "batch_size": 16, "progress": False, "device": "cpu"}


def id_table(path: Path, n: int, seed: int, stray: dict[int, str] | None = None, feature_stray: int | None = None,
             colours=("red", "green")) -> Path:
    """Feature columns x1, x2, colour; label y, class ids 0/1 from x1; `stray` rows' labels and the
    `feature_stray` row's x1 replaced by tokens that are not numbers."""
    rng = np.random.default_rng(seed)
    lines = ["x1,x2,colour,y"]
    for i in range(n):
        x1 = rng.normal()
        cell = "?" if i == feature_stray else f"{x1:.3f}"
        label = (stray or {}).get(i, str(int(x1 > 0)))
        lines.append(f"{cell},{rng.normal():.3f},{colours[i % len(colours)]},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(tmp_path: Path, config: dict) -> int:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return main(["run", str(path)])


def _transfer(tmp_path: Path, target: dict, test: dict | None = None) -> dict:
    config = {"source": {"csv": str(id_table(tmp_path / "source.csv", 60, 1)), "label": "y"}, "target": target,
              "model": {"name": "mlp", "args": {"hidden": [8]}}, "output": str(tmp_path / "run"),
              "pretrain": {"train": FAST},
              "transfer": {"shots": ["all"], "strategies": ["linear_probe"], "train": FAST}}
    return {**config, "test": test} if test is not None else config


# 1. a test file's stray label


def test_a_stray_label_in_the_test_file_is_unknown_and_left_out_of_scoring(tmp_path, caplog, capsys):
    """The target's reader reads a `?` among class ids as unknown; the test file's reader took the
    target's kinds (classification) and made it a class the target lacks, which stopped the run."""
    target = {"csv": str(id_table(tmp_path / "target.csv", 60, 2)), "label": "y"}
    test = id_table(tmp_path / "test.csv", 20, 3, stray={4: "?", 9: "?"})   # 10%: more than the reader's 5%
    with caplog.at_level("WARNING", logger="taskshare"):
        assert _run(tmp_path, _transfer(tmp_path, target, {"csv": str(test), "label": "y"})) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "60 training / 18 test examples" in out                     # the two rows are not scored
    warned = [r.getMessage() for r in caplog.records if "test row(s) hold" in r.getMessage()]
    assert len(warned) == 1 and str(test) in warned[0] and "2 test row(s) hold ['?']" in warned[0]


def test_a_test_file_names_its_label_column_as_the_target_does_unless_it_says(tmp_path):
    """Without `label`, the test file was read for a column named `label`."""
    data = read_source({"csv": str(id_table(tmp_path / "target.csv", 40, 2)), "label": "y"})
    test = id_table(tmp_path / "test.csv", 20, 3, stray={0: "?"})
    _, held = hold_out(data, {"csv": str(test)}, 0.2, 0, (32, 32), "y", {"csv": "t.csv", "label": "y"})
    assert len(held) == 19 and set(held.labels["y"].tolist()) <= {0, 1}


def test_class_ids_written_as_floats_beside_a_stray_are_the_same_classes(tmp_path):
    """Beside a `?` the column is text, and `1.0` stayed a class of its own; the target's reader
    reads it as the number 1, class '1'."""
    data = read_source({"csv": str(id_table(tmp_path / "target.csv", 40, 2)), "label": "y"})
    (tmp_path / "test.csv").write_text("x1,x2,colour,y\n0.5,0.1,red,1.0\n-0.5,0.2,red,0.0\n0.1,0.3,green,?\n")
    _, held = hold_out(data, {"csv": str(tmp_path / "test.csv")}, 0.2, 0, (32, 32), "y", {"csv": "t", "label": "y"})
    assert held.labels["y"].tolist() == [1, 0] and data.class_names["y"] == ["0", "1"]


def test_a_stray_test_label_is_a_class_where_a_kind_says_so(tmp_path):
    """Declared kind: classification, the target's reader makes `?` a class: the test file's `?` is
    then a class the target lacks, named, as before."""
    spec = {"csv": str(id_table(tmp_path / "target.csv", 40, 2)), "label": "y", "kind": "classification"}
    data = read_source(spec)
    test = {"csv": str(id_table(tmp_path / "test.csv", 20, 3, stray={0: "?"})), "label": "y"}
    with pytest.raises(TaskshareError, match=r"has classes \['\?'\] that the training data"):
        hold_out(data, test, 0.2, 0, (32, 32), "y", spec)
    with pytest.raises(TaskshareError, match=r"has classes \['\?'\]"):      # stated on the test file itself
        hold_out(data, {**test, "kind": "classification"}, 0.2, 0, (32, 32), "y", {k: v for k, v in spec.items()
                                                                                  if k != "kind"})
    text = {"csv": str(tmp_path / "words.csv"), "label": "y"}            # text classes: `?` could be one
    (tmp_path / "words.csv").write_text("x,y\n" + "".join(f"{i},{['a', 'b'][i % 2]}\n" for i in range(20)))
    (tmp_path / "words_test.csv").write_text("x,y\n1,a\n2,?\n")
    with pytest.raises(TaskshareError, match=r"has classes \['\?'\]"):
        hold_out(read_source(text), {**text, "csv": str(tmp_path / "words_test.csv")}, 0.2, 0, (32, 32), "y", text)


def test_a_test_file_without_a_known_label_stops_naming_it(tmp_path):
    data = read_source({"csv": str(id_table(tmp_path / "target.csv", 40, 2)), "label": "y"})
    test = id_table(tmp_path / "test.csv", 3, 3, stray={0: "?", 1: "?", 2: ""})
    with pytest.raises(TaskshareError, match="has no known label for 'y'"):
        hold_out(data, {"csv": str(test), "label": "y"}, 0.2, 0, (32, 32), "y", {"csv": "t.csv", "label": "y"})


# 2. multi-task runs take a test source as their test split


def _multitask(tmp_path: Path, test: dict, epochs: int = 1) -> dict:
    return {"mode": "multitask", "data": {"csv": str(table_csv(tmp_path / "data.csv", n=120, seed=0)),
                                          "labels": ["big", "shade"]},
            "test": test, "model": {"name": "mlp", "args": {"hidden": [16]}}, "output": str(tmp_path / "mt"),
            "multitask": {"modes": ["single", "hard"], "train": {**FAST, "epochs": epochs, "lr": 0.02}}}


def test_a_multitask_run_scores_on_its_test_source(tmp_path, capsys):
    """The test file's `big` labels are the opposite of the rule the data follow: scored on it, a
    model that learnt the rule scores near zero; on held-out rows of the data it scored near one."""
    test = table_csv(tmp_path / "test.csv", n=40, seed=9)
    lines = test.read_text().splitlines()
    flip = {"yes": "no", "no": "yes"}
    rows = [line.split(",") for line in lines[1:]]
    test.write_text("\n".join([lines[0]] + [",".join(r[:3] + [flip[r[3]]] + r[4:]) for r in rows]) + "\n")
    assert _run(tmp_path, _multitask(tmp_path, {"csv": str(test)}, epochs=20)) == 0   # label names from data:
    out = " ".join(capsys.readouterr().out.split())
    assert "102 train / 18 val / 40 test rows (the test source" in out      # val_fraction 0.15 of 120 rows
    saved = json.loads((tmp_path / "mt" / "run.json").read_text())["test"]
    assert saved["big"]["accuracy"] < 0.2
    results = json.loads((tmp_path / "mt" / "multitask_results.json").read_text())["results"]
    assert all(r["test"]["big"]["accuracy"] < 0.2 for r in results)


def test_test_fraction_does_not_apply_beside_a_multitask_test_source():
    raw = {"mode": "multitask", "data": {"csv": "d.csv", "labels": ["a"]}, "model": {"name": "mlp"},
           "val_fraction": 0.85}
    with pytest.raises(TaskshareError, match="leave no training rows"):
        load_own(raw)
    assert load_own({**raw, "test": {"csv": "t.csv"}}).val_fraction == 0.85   # every data row trains or validates


def test_a_multitask_test_source_without_the_data_columns_is_named(tmp_path, capsys):
    import pandas as pd
    full = pd.read_csv(table_csv(tmp_path / "test.csv", n=20, seed=9))
    full.drop(columns=["shade"]).to_csv(tmp_path / "no_label.csv", index=False)
    full.drop(columns=["x2", "colour"]).to_csv(tmp_path / "no_features.csv", index=False)
    assert _run(tmp_path, _multitask(tmp_path, {"csv": str(tmp_path / "no_label.csv")})) == 2
    assert "no_label.csv has no label column 'shade'" in " ".join(capsys.readouterr().out.split())
    assert _run(tmp_path, _multitask(tmp_path, {"csv": str(tmp_path / "no_features.csv")})) == 2
    assert "has no feature columns ['x2', 'colour']" in " ".join(capsys.readouterr().out.split())


# 3. a table target is read once


def test_a_table_target_says_each_warning_once(tmp_path, caplog):
    """Encoded with the pretrained source's scaling, the target was read a second time, and every
    warning of its reading came twice. A category the source never saw is new there: said once too."""
    target = id_table(tmp_path / "target.csv", 60, 2, stray={7: "?"}, feature_stray=3, colours=("red", "green", "blue"))
    test = id_table(tmp_path / "test.csv", 20, 3, feature_stray=5, colours=("red", "purple"))
    with caplog.at_level("INFO", logger="taskshare"):
        assert _run(tmp_path, _transfer(tmp_path, {"csv": str(target), "label": "y"}, {"csv": str(test)})) == 0
    said = [r.getMessage() for r in caplog.records]
    assert sum("label column 'y' is numeric but for ['?']" in m for m in said) == 1
    for file in (target, test):
        mine = [m for m in said if m.startswith(str(file))]
        assert sum("column 'x1' is numeric, but holds ['?']" in m for m in mine) == 1, file
        assert sum("unknown numeric cells (blank or not a number)" in m for m in mine) == 1, file
    # unseen by the source: blue in the target; purple in the test file, unseen by the target too
    assert sum("categories not seen in training" in m and "['blue']" in m for m in said) == 1
    assert sum("categories not seen in training" in m and "['purple']" in m for m in said) == 1


# 4. a class with a single example at shots: all


def test_a_class_with_one_example_at_shots_all_is_named_with_where_it_went(tmp_path, caplog):
    pics = image_folder(tmp_path / "pics", per_class=6)
    lone = write_image(pics / "grey" / "only.png", bright=True, mode="RGB")
    config = load_own({"target": {"image_folder": str(pics)}, "source": {"image_folder": str(pics)},
                       "model": {"name": "mlp"}, "transfer": {"shots": ["all"]}})
    with caplog.at_level("WARNING", logger="taskshare"):
        target = read_target(config, (8, 8))
    warned = [r.getMessage() for r in caplog.records if "single training example" in r.getMessage()]
    assert len(warned) == 1 and "class 'grey'" in warned[0] and str(lone) in warned[0]
    assert "goes to training" in warned[0] and "the test rows hold none either" in warned[0]
    grey = target.train.class_names["label"].index("grey")
    splits = few_shot_splits(target.train.dataset(), target.test.dataset(), "all", 0, None)
    train_y = [int(splits.train[i][1]) for i in range(len(splits.train))]
    val_y = [int(splits.val[i][1]) for i in range(len(splits.val))]
    assert train_y.count(grey) == 1 and grey not in val_y                # where the warning says it went
    caplog.clear()
    with caplog.at_level("WARNING", logger="taskshare"):                  # two: one trains, one is tested
        write_image(pics / "grey" / "second.png", bright=True, mode="RGB", seed=7)
        read_target(config, (8, 8))
    assert any("class 'grey'" in r.getMessage() and "the test rows hold 1 of it" in r.getMessage()
               for r in caplog.records)


# 5. a label column of bools (JSON true/false)


def _spam_jsonl(path: Path, n: int, stray: set[int] = frozenset()) -> Path:
    """Texts whose first word says the label, a bool; the `stray` rows' labels are `?`."""
    rows = [{"text": f"{['ham', 'spam'][i % 2]} word {i}", "spam": "?" if i in stray else bool(i % 2)}
            for i in range(n)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_a_bool_label_column_reads_as_the_same_classes_with_or_without_a_stray(tmp_path):
    """pandas reads a bool as 0/1: beside one `?` the column's classes became '0'/'1', while a clean
    test file read 'False'/'True', and every test row was left out of scoring. Bools are classes, and
    a `?` among them one class more, as in any column of text labels."""
    clean = read_source({"jsonl": str(_spam_jsonl(tmp_path / "clean.jsonl", 40)), "label": "spam"})
    spec = {"jsonl": str(_spam_jsonl(tmp_path / "train.jsonl", 60, {5})), "label": "spam"}
    train = read_source(spec)
    assert clean.class_names["spam"] == ["False", "True"] and train.class_names["spam"] == ["?", "False", "True"]
    test = _spam_jsonl(tmp_path / "test.jsonl", 20)
    _, held = hold_out(train, {"jsonl": str(test)}, 0.2, 0, (32, 32), "spam", spec)
    assert len(held) == 20 and held.class_names == train.class_names
    assert [train.class_names["spam"][i] for i in held.labels["spam"][:4]] == ["False", "True", "False", "True"]
    with pytest.raises(TaskshareError, match=r"has classes \['\?'\]"):       # the target lacks it, as text classes
        hold_out(clean, {"jsonl": str(_spam_jsonl(tmp_path / "q.jsonl", 20, {3}))}, 0.2, 0, (32, 32), "spam",
                 {"jsonl": "c.jsonl", "label": "spam"})
    kept = read_source({**spec, "kind": "regression"})                    # declared numbers: 1/0, `?` unknown
    assert kept.labels["spam"][:2].tolist() == [0.0, 1.0] and np.isnan(kept.labels["spam"][5])


@pytest.mark.slow
def test_a_run_on_a_bool_label_column_with_a_stray_scores_its_clean_test_file(tmp_path, monkeypatch, capsys):
    tiny_bert(tmp_path / "bert", monkeypatch, hidden=16)
    config = {"target": {"jsonl": str(_spam_jsonl(tmp_path / "train.jsonl", 60, {5})), "label": "spam"},
              "test": {"jsonl": str(_spam_jsonl(tmp_path / "test.jsonl", 20))},
              "model": {"hf": str(tmp_path / "bert"), "max_length": 8}, "output": str(tmp_path / "run"),
              "transfer": {"shots": ["all"], "strategies": ["linear_probe"], "train": FAST}}
    assert _run(tmp_path, config) == 0
    assert "60 training / 20 test examples, 3 classes" in " ".join(capsys.readouterr().out.split())
    assert "accuracy" in json.loads((tmp_path / "run" / "run.json").read_text())["test"]


# 6. a regression label's stray in a separate test file


def _measured(path: Path, n: int, seed: int, stray: set[int] = frozenset()) -> Path:
    """id_table's columns and a regression label `v` (x1 plus noise), `?` in the `stray` rows."""
    table = id_table(path, n, seed)
    lines = table.read_text().splitlines()
    out = [lines[0] + ",v"] + [f"{line},{'?' if i in stray else round(float(line.split(',')[0]) * 2 + 1, 3)}"
                               for i, line in enumerate(lines[1:])]
    path.write_text("\n".join(out) + "\n")
    return path


def test_a_regression_labels_stray_in_the_test_file_is_unknown_at_any_count(tmp_path, caplog):
    """Above the reader's 5% the test file stopped (kind: regression but holds values that are not
    numbers); below it the warning told a declared regression column to declare kind: classification."""
    from taskshare.experiments.own_sources import read_test
    spec = {"csv": str(_measured(tmp_path / "train.csv", 40, 2, {7})), "labels": ["y", "v"],
            "kind": {"v": "regression"}}
    with caplog.at_level("WARNING", logger="taskshare"):
        train = read_source(spec)
        test_file = _measured(tmp_path / "test.csv", 20, 3, {1, 4, 9})            # 15%
        test = read_test(train, {"csv": str(test_file)}, spec, (32, 32))
    assert np.isnan(train.labels["v"][7]) and test.kind_of("v") == "regression" and test.class_names["v"] == []
    v = test.labels["v"]
    assert v.dtype == np.float32 and np.isnan(v[[1, 4, 9]]).all() and np.isfinite(np.delete(v, [1, 4, 9])).all()
    written = [line.split(",")[-1] for line in test_file.read_text().splitlines()[1:]]
    assert v[0] == np.float32(float(written[0]))
    said = [r.getMessage() for r in caplog.records]
    assert not any("declare kind: classification" in m for m in said)
    assert sum("label column 'v' (kind: regression) holds 1 cell(s)" in m for m in said) == 1    # the target's
    mine = [m for m in said if m.startswith(str(test_file))]
    assert len(mine) == 1 and "3 test row(s) hold ['?'] in label column 'v'" in mine[0]
