"""What a table's label and feature cells are read as: a numeric label column that looks like a
measurement, a declared label kind, a label column with no known value, stray tokens, blanks and
infinities in numeric columns."""
import json

import numpy as np
import pytest

from taskshare.data.sources import read_source
from taskshare.data.sources.labels import _strays_unknown, regression_values
from taskshare.data.sources.table import _mostly_numbers, encode, numbers, refit, strays
from taskshare.errors import ConfigError, TaskshareError


def measurements_csv(path, n=100, seed=0):
    """Two features and a continuous target, as a regression table (diabetes-like) has."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    target = np.round(150 + 40 * x[:, 0] + rng.normal(size=n) * 5)
    lines = ["a,b,target,grade"] + [f"{x[i, 0]:.3f},{x[i, 1]:.3f},{target[i]:.0f},{i % 3}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_numeric_label_with_many_values_stops_naming_the_column_and_the_keys(tmp_path):
    file = measurements_csv(tmp_path / "d.csv")
    distinct = len(set(np.loadtxt(file, delimiter=",", skiprows=1)[:, 2]))
    with pytest.raises(TaskshareError) as err:
        read_source({"csv": str(file), "label": "target"})
    text = str(err.value)
    assert "'target'" in text and f"{distinct} distinct" in text
    assert "kind: regression" in text and "kind: classification" in text


def test_fractional_label_values_stop_too(tmp_path):
    (tmp_path / "f.csv").write_text("x,y\n" + "".join(f"{i},{i % 2 + 0.5}\n" for i in range(30)))
    with pytest.raises(TaskshareError, match="not all whole numbers"):
        read_source({"csv": str(tmp_path / "f.csv"), "label": "y"})


def test_few_integer_classes_are_still_classes(tmp_path):
    data = read_source({"csv": str(measurements_csv(tmp_path / "d.csv")), "label": "grade"})
    assert data.class_names["grade"] == ["0", "1", "2"] and data.kind_of("grade") == "classification"


def test_declared_kinds_read_values_or_classes(tmp_path):
    file = measurements_csv(tmp_path / "d.csv")
    data = read_source({"csv": str(file), "labels": ["target", "grade"], "kind": {"target": "regression"}})
    assert data.kind_of("target") == "regression" and data.class_names["target"] == []
    assert data.labels["target"].dtype == np.float32 and data.labels["target"].min() > 50   # the values themselves
    assert data.kind_of("grade") == "classification" and data.labels["grade"].dtype == np.int64
    same = read_source({"csv": str(file), "labels": {"target": "regression", "grade": "classification"}})
    assert same.label_kinds == data.label_kinds and np.array_equal(same.labels["target"], data.labels["target"])
    many = read_source({"csv": str(file), "label": "target", "kind": "classification"})
    assert len(many.class_names["target"]) > 20        # asked for: every value a class


def test_regression_label_blank_is_nan_and_text_is_refused(tmp_path):
    (tmp_path / "r.csv").write_text("x,y\n1,2.5\n2,\n3,4\n")
    data = read_source({"csv": str(tmp_path / "r.csv"), "label": "y", "kind": "regression"})
    assert np.isnan(data.labels["y"][1]) and data.known("y").tolist() == [True, False, True]
    (tmp_path / "t.csv").write_text("x,y\n1,2.5\n2,high\n")
    with pytest.raises(TaskshareError, match=r"'y'.*\['high'\]"):
        read_source({"csv": str(tmp_path / "t.csv"), "label": "y", "kind": "regression"})


@pytest.mark.parametrize("kind, message", [("numeric", "'numeric'; expected classification or regression"),
                                           ({"other": "regression"}, "'other', which is not a label column")])
def test_bad_kind_is_named(tmp_path, kind, message):
    with pytest.raises(ConfigError, match=message):
        read_source({"csv": str(measurements_csv(tmp_path / "d.csv")), "label": "grade", "kind": kind})


def test_blank_label_column_stops_naming_it(tmp_path):
    (tmp_path / "b.csv").write_text("x,y\n1,\n2,\n3,\n")
    with pytest.raises(TaskshareError, match="label column 'y' has no known value"):
        read_source({"csv": str(tmp_path / "b.csv"), "label": "y"})


def test_jsonl_label_field_no_record_has_is_refused_with_the_fields_seen(tmp_path):
    rows = [{"text": "a b", "topic": "x"}, {"text": "c d", "topic": "y"}]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(TaskshareError, match=r"no label column 'topc'.*\['text', 'topic'\]"):
        read_source({"jsonl": str(tmp_path / "t.jsonl"), "label": "topc"})
    rows[1].pop("topic")           # a field some records lack is unknown there
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert read_source({"jsonl": str(tmp_path / "t.jsonl"), "label": "topic"}).labels["topic"].tolist() == [0, -1]


def table_with(tmp_path, cell: str):
    rows = [f"{i * 0.5},{['red', 'blue'][i % 2]},{i % 2}" for i in range(40)]
    rows[7] = f"{cell},red,1"
    (tmp_path / "t.csv").write_text("x,colour,y\n" + "\n".join(rows) + "\n")
    return str(tmp_path / "t.csv")


def test_stray_token_in_a_numeric_column_reads_as_unknown_with_a_warning(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="taskshare"):
        data = read_source({"csv": table_with(tmp_path, "?"), "label": "y"})
    x = data.encoding["columns"][0]
    assert x["name"] == "x" and x["type"] == "numeric"          # one column, not a category per number
    assert data.inputs.shape == (40, 3) and data.inputs[7, 0] == 0.0   # the training mean
    assert "'x'" in caplog.text and "['?']" in caplog.text and "unknown" in caplog.text


def test_blank_numeric_cells_are_counted_in_the_log(tmp_path, caplog):
    with caplog.at_level("INFO", logger="taskshare"):
        read_source({"csv": table_with(tmp_path, ""), "label": "y"})
    assert "set to the training mean: x 1" in caplog.text


def test_a_stray_token_is_counted_as_unknown_not_as_blank(tmp_path, caplog):
    """The count covers `?` cells too, which the line called blank."""
    with caplog.at_level("INFO", logger="taskshare"):
        read_source({"csv": table_with(tmp_path, "?"), "label": "y"})
    assert "unknown numeric cells (blank or not a number) set to the training mean: x 1" in caplog.text


def test_infinity_stops_naming_the_file_column_and_row(tmp_path):
    with pytest.raises(TaskshareError, match=r"t\.csv: column 'x' holds inf in data row 8"):
        read_source({"csv": table_with(tmp_path, "inf"), "label": "y"})


def test_refit_takes_means_and_categories_from_the_given_rows_only(tmp_path):
    data = read_source({"csv": table_with(tmp_path, "3"), "label": "y"})
    rows = np.arange(10)
    encoding = refit(data.raw.iloc[rows], data.encoding)
    x = [float(v) for v in data.raw["x"].iloc[rows]]
    assert encoding["columns"][0]["mean"] == pytest.approx(np.mean(x))
    assert encode(data.raw, encoding).shape == data.inputs.shape


def label_csv(path, labels):
    path.write_text("x,y\n" + "".join(f"{i * 0.1:.1f},{v}\n" for i, v in enumerate(labels)))
    return str(path)


def test_a_stray_token_in_a_numeric_label_is_unknown_and_the_class_id_check_still_runs(tmp_path, caplog):
    prices = np.random.default_rng(0).integers(100, 400, 200).tolist()
    with pytest.raises(TaskshareError, match=r"'y' holds \d+ distinct numbers in 200 rows"):
        read_source({"csv": label_csv(tmp_path / "p.csv", prices + ["?"]), "label": "y"})
    with caplog.at_level("WARNING", logger="taskshare"):
        data = read_source({"csv": label_csv(tmp_path / "b.csv", [0, 1] * 20 + ["?"]), "label": "y"})
    assert data.class_names["y"] == ["0", "1"] and data.labels["y"][-1] == -1   # not a third class
    assert "'y'" in caplog.text and "['?']" in caplog.text and "unknown" in caplog.text
    values = read_source({"csv": label_csv(tmp_path / "r.csv", [1.5, 2.5] * 20 + ["n/a"]), "label": "y",
                          "kind": "regression"})
    assert np.isnan(values.labels["y"][-1]) and values.labels["y"][0] == 1.5
    asked = read_source({"csv": label_csv(tmp_path / "c.csv", [0, 1] * 20 + ["?"]), "label": "y",
                         "kind": "classification"})
    assert asked.class_names["y"] == ["0", "1", "?"]          # declared: every value a class
    words = read_source({"csv": label_csv(tmp_path / "w.csv", ["cat", "dog"] * 10 + [1]), "label": "y"})
    assert words.class_names["y"] == ["1", "cat", "dog"]       # text labels stay class names


@pytest.mark.parametrize("ids", [np.repeat(np.arange(30), 4), np.repeat(np.arange(1, 22), 4),
                                 np.repeat(np.arange(100), 3)])
def test_class_ids_from_zero_or_one_are_classes_without_asking(tmp_path, ids):
    data = read_source({"csv": label_csv(tmp_path / "f.csv", ids.tolist()), "label": "y"})
    assert data.kind_of("y") == "classification" and len(data.class_names["y"]) == len(set(ids.tolist()))


def test_many_class_ids_are_read_as_classes_with_a_word_about_counts(tmp_path, caplog):
    """Whole numbers 0..30 in 100 rows may be ids or a count: read as classes, and the log says how to
    say otherwise; ten digit ids are not mentioned."""
    counts = (list(range(31)) * 4)[:100]
    with caplog.at_level("WARNING", logger="taskshare"):
        data = read_source({"csv": label_csv(tmp_path / "c.csv", counts), "label": "y"})
    assert len(data.class_names["y"]) == 31 and "kind: regression" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="taskshare"):
        read_source({"csv": label_csv(tmp_path / "d.csv", [i % 10 for i in range(100)]), "label": "y"})
    assert "kind: regression" not in caplog.text


@pytest.mark.parametrize("ids", [np.repeat(np.arange(2, 32), 4), np.repeat(np.r_[0:29, 30], 4)])
def test_ids_that_are_no_contiguous_range_from_zero_or_one_still_stop(tmp_path, ids):
    with pytest.raises(TaskshareError, match="a measurement rather than classes"):
        read_source({"csv": label_csv(tmp_path / "f.csv", ids.tolist()), "label": "y"})


@pytest.mark.parametrize("cells, read_as", [
    (["?" if i % 4 == 0 else i * 0.5 for i in range(80)], "61 categories"),    # many numbers
    (["?" if i % 10 == 0 else 1 + i % 5 for i in range(60)], "6 categories"),   # a 1-5 rating: warned too
])
def test_numbers_with_many_stray_tokens_become_categories_with_a_warning(tmp_path, caplog, cells, read_as):
    (tmp_path / "m.csv").write_text("x,y\n" + "".join(f"{c},{i % 2}\n" for i, c in enumerate(cells)))
    with caplog.at_level("WARNING", logger="taskshare"):
        data = read_source({"csv": str(tmp_path / "m.csv"), "label": "y"})
    assert data.encoding["columns"][0]["type"] == "categorical"
    assert f"'x' is read as {read_as}" in caplog.text and "['?']" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="taskshare"):
        read_source({"csv": str(tmp_path / "m.csv"), "label": "y", "categorical": ["x"]})
    assert "'x'" not in caplog.text                              # asked for: no warning


def test_a_token_training_read_as_unknown_is_unknown_again_in_new_rows(tmp_path, caplog):
    import pandas as pd
    data = read_source({"csv": table_with(tmp_path, "?"), "label": "y"})
    assert data.encoding["columns"][0]["unknown"] == ["?"]
    with caplog.at_level("WARNING", logger="taskshare"):
        row = encode(pd.DataFrame({"x": ["?"], "colour": ["red"]}), data.encoding, "new")
    assert row[0, 0] == 0.0 and "'x'" in caplog.text and "['?']" in caplog.text   # the training mean
    with pytest.raises(TaskshareError, match=r"column 'x' was numeric in training but holds text here \(\['n/a'\]\)"):
        encode(pd.DataFrame({"x": ["n/a"], "colour": ["red"]}), data.encoding, "new")
    clean = read_source({"csv": table_with(tmp_path, "3"), "label": "y"})
    assert "unknown" not in clean.encoding["columns"][0]           # an encoding without strays is as before


def _feature_reading(cells: list) -> object:
    """What a feature column makes of its last cell: categories, stops, or the number (NaN: unknown)."""
    import pandas as pd
    column = pd.Series(cells, dtype=object)
    if not _mostly_numbers(column):
        return "categories"
    try:
        return float(numbers(column, "x", "t", quiet=True)[-1])
    except TaskshareError:
        return "stops"


def _label_reading(cells: list) -> object:
    """The same for a label column, read as numbers (kind: regression reads them so too)."""
    read = _strays_unknown(cells, "y", None, "t")
    if read is cells:
        return "categories"
    try:
        return float(regression_values(read, "y", "t")[-1])
    except TaskshareError:
        return "stops"


@pytest.mark.parametrize("cell, expected", [(" 3 ", 3.0), ("1e3", 1000.0), ("nan", "unknown"), ("", "unknown"),
                                            ("inf", "stops"), ("?", "categories"), ("n/a", "categories")])
def test_an_odd_cell_reads_alike_in_a_feature_and_a_label_column(caplog, cell, expected):
    # 38 numbers, two '?' and two of the cell: two strays are few (at most 5% of 40 or 42 known
    # cells), four too many. 'nan' is an unknown cell: features once counted it as a stray and
    # labels as a known number, so the same column was categories as a feature and numbers as a label
    import pandas as pd
    cells = ["0", "1"] * 19 + ["?", "?", cell, cell]
    readings = [_feature_reading(cells), _label_reading(cells)]
    readings = ["unknown" if isinstance(r, float) and np.isnan(r) else r for r in readings]
    assert readings == [expected, expected]
    if expected != "categories":
        with caplog.at_level("WARNING", logger="taskshare"):
            _strays_unknown(cells, "y", None, "t")
        assert strays(pd.Series(cells, dtype=object)) == ["?"] and "numeric but for ['?']" in caplog.text
