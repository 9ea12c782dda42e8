"""The shape of benchmarks/: the harness, the scripts a user runs and the research records
apart, imports one way, no cycle, small files, and every command the docs name runs.

Read from the source (ast), nothing imported, except the last two tests."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import assert_no_import_cycle
from tests.test_docs import anchors

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
README = BENCHMARKS / "README.md"
#: Where the commands a user copies live (the results files record the commands too).
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "Makefile", README,
         *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs").rglob("results/**/*.md"))]
#: A strategy named by its import path, loaded when first used (harness/registry.py).
TARGET = re.compile(r"^(benchmarks(?:\.\w+)+):\w+$")


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(BENCHMARKS.rglob("*.py"))}


def kind(name):
    """``harness``, ``research``, ``script`` (a module of benchmarks/ itself) or ``package``."""
    parts = name.split(".")
    if len(parts) == 1:
        return "package"
    return parts[1] if parts[1] in ("harness", "research") else "script"


def runnable(name):
    return 'if __name__ == "__main__":' in MODULES[name].read_text()


def imports(name):
    """The benchmarks modules ``name`` imports anywhere in its file (inside functions too),
    and those it names as a strategy's ``"module:function"``."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert not node.level, f"{name}: relative import"
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = TARGET.match(node.value)
            if match:
                found.add(match.group(1))
    return {target for target in found
            if target in MODULES and target != name and kind(target) != "package"}


GRAPH = {name: imports(name) for name in MODULES}


def test_the_three_parts_exist_and_every_script_runs():
    kinds = {kind(name) for name in MODULES}
    assert {"harness", "research", "script"} <= kinds
    not_runnable = [n for n in MODULES if kind(n) == "script" and not runnable(n)]
    assert not not_runnable, (
        f"{not_runnable}: a module of benchmarks/ itself is a script a user runs; shared "
        "code goes to benchmarks/harness/")


def test_no_import_cycle():
    assert_no_import_cycle(GRAPH)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_flow_from_the_harness_to_the_scripts_to_research(name):
    allowed = {"harness": {"harness"}, "script": {"harness"},
               "research": {"harness", "script", "research"},
               "package": set()}[kind(name)]
    wrong = sorted(t for t in GRAPH[name] if kind(t) not in allowed)
    assert not wrong, (f"{name} ({kind(name)}) imports {wrong}: the harness imports only "
                       "itself, a script only the harness (move what two scripts share "
                       "down to benchmarks/harness/), research anything")


def _code_lines(function):
    body = function.body
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
            and isinstance(first.value.value, str):
        body = body[1:]
    return 0 if not body else body[-1].end_lineno - body[0].lineno + 1


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_function_over_60_lines_and_no_file_over_400(name):
    text = MODULES[name].read_text()
    assert len(text.splitlines()) <= 400, name
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert _code_lines(node) <= 60, f"{name}:{node.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_and_path_in_the_docs_exists(page):
    text = page.read_text()
    commands = [m.rstrip(".") for m in re.findall(r"-m (benchmarks[\w.<>]*)", text)
                if "<" not in m]  # "python -m benchmarks.<name>" is a pattern
    missing = [m for m in commands if m not in MODULES or not runnable(m)]
    missing += [p for p in re.findall(r"\bbenchmarks/[\w/]+\.py\b", text)
                if not (ROOT / p).is_file()]
    assert not missing, f"{page.name} names {sorted(set(missing))}"


def _section(title):
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else len(text)]


def _first_cells(section):
    """The backticked ``*.py`` names in the first column of a section's table."""
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([\w/]+)\.py`", line.split(" | ")[0]))
    return names


def test_the_readme_lists_every_script_and_record():
    scripts = {n.split(".")[-1] for n in MODULES if kind(n) == "script"}
    assert _first_cells(_section("Scripts a user runs")) == scripts
    records = _first_cells(_section("Research records"))
    research = {n.split(".")[-1] for n in MODULES if kind(n) == "research" and
                n != "benchmarks.research"}
    runnable_research = {n.split(".")[-1] for n in MODULES
                         if kind(n) == "research" and runnable(n)}
    assert {r.removeprefix("research/") for r in records if "/" in r} >= runnable_research
    named = set(re.findall(r"research/(\w+)\.py", _section("Research records")))
    assert named == research, "every research module is named, and only those that exist"


def test_the_readme_lists_every_harness_module():
    named = set(re.findall(r"`(\w+)\.py`", _section("The harness")))
    harness = {n.split(".")[-1] for n in MODULES if kind(n) == "harness" and
               n != "benchmarks.harness"}
    assert named == harness


def test_every_link_in_the_benchmarks_readme_resolves():
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", README.read_text()):
        path, _, anchor = target.partition("#")
        destination = (README.parent / path).resolve()
        if not destination.exists() or (anchor and anchor not in anchors(destination)):
            broken.append(target)
    assert not broken, broken


def test_a_screen_runs_every_arm_of_the_reproduction_alike():
    """A research screen resumes a copy of a reproduction's run state: the same arms."""
    from benchmarks import label_efficiency
    from benchmarks.research import ally_screen

    assert {n: ally_screen.ARMS[n] for n in label_efficiency.ARMS} == label_efficiency.ARMS


@pytest.mark.slow
def test_every_script_answers_help():
    script = ("import contextlib, importlib, io, sys\n"
              f"for name in {sorted(n for n in MODULES if runnable(n))!r}:\n"
              "    out = io.StringIO()\n"
              "    try:\n"
              "        with contextlib.redirect_stdout(out):\n"
              "            importlib.import_module(name).main(['--help'])\n"
              "    except SystemExit as exc:\n"
              "        assert exc.code == 0 and 'usage:' in out.getvalue(), name\n"
              "    else:\n"
              "        raise AssertionError(name + ': --help did not exit')\n"
              "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
