"""The README's modAL example runs as written."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_example_runs_and_learns(tmp_path):
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Use it in a modAL loop\n\n```python\n(.*?)```", readme, re.S).group(1)
    script = tmp_path / "example.py"
    script.write_text(block)
    done = subprocess.run([sys.executable, "-W", "ignore::FutureWarning", str(script)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    accuracies = [float(line.split()[-1]) for line in done.stdout.splitlines()]
    assert len(accuracies) == 6
    assert accuracies[-1] > accuracies[0] and accuracies[-1] > 0.93
