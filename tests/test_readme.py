"""The README's Python example runs as written."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_python_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    code = blocks[0].replace("TrainConfig(epochs=10)", "TrainConfig(epochs=10, progress=False)")
    exec(compile(code, "README.md", "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    names = [line.split()[0] for line in lines]
    assert names == ["scratch", "linear_probe", "lp_ft", "last_k"]
    accuracy = {line.split()[0]: float(line.split()[1]) for line in lines}
    assert accuracy["linear_probe"] > accuracy["scratch"]  # transfer helps at 20 labels per class
    assert min(accuracy.values()) > 0.3 and accuracy["linear_probe"] > 0.4   # five classes: constant scores 0.2


def test_readme_opens_with_the_two_commands():
    text = README.read_text()
    commands = re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)[:2]
    assert commands[0].endswith("taskshare demo") and "pytest" in commands[1]
    ci = (README.parent / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()


@pytest.mark.slow
def test_readme_multitask_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    code = next(b for b in blocks if "HardSharing" in b)
    assert len(code.strip().splitlines()) <= 15  # the issue asks for a hard-sharing example under 15 lines
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    metrics = eval(out.strip(), {"nan": float("nan")})
    assert metrics["is_pos"]["auroc"] > 0.9 and metrics["score"]["r2"] > 0.8


@pytest.mark.slow
def test_readme_domain_adaptation_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    code = next(b for b in blocks if "fit_adaptation" in b)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    distance = float(out.split("how different:")[1].split()[0])
    assert 0.5 < distance <= 2.0          # the example's domains differ, and the printed distance says so
