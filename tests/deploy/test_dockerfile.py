"""The Dockerfile, read and linted (no engine here builds it): order, user, paths."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from scripts import make_certs

from .conftest import ROOT, tool

DOCKERFILE = ROOT / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments out."""
    joined = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")
    ))  # fmt: skip
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def stages(text: str) -> dict[str, list[tuple[str, str]]]:
    """Instructions per ``FROM ... AS <name>`` stage."""
    out: dict[str, list[tuple[str, str]]] = {}
    current = None
    for word, rest in instructions(text):
        if word == "FROM":
            current = rest.split(" AS ")[-1].strip()
            out[current] = []
        elif current is not None:
            out[current].append((word, rest))
    return out


def index(steps: list[tuple[str, str]], word: str, needle: str) -> int:
    hits = [i for i, (w, r) in enumerate(steps) if w == word and needle in r]
    assert hits, f"no {word} with {needle!r}"
    return hits[0]


def test_hadolint_finds_nothing_and_does_flag_a_bad_file(tmp_path: Path) -> None:
    done = subprocess.run(
        [tool("hadolint"), "--config", str(ROOT / ".hadolint.yaml"), str(DOCKERFILE)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim\nRUN pip install torch\nUSER root\n")
    flagged = subprocess.run(
        [tool("hadolint"), "--config", str(ROOT / ".hadolint.yaml"), str(bad)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert flagged.returncode == 1
    assert "DL3013" in flagged.stdout and "DL3002" in flagged.stdout


def test_cpu_torch_then_cached_dependencies_then_code() -> None:
    every = stages(DOCKERFILE.read_text())
    # the dependency list comes from pyproject.toml alone, in a stage of its own
    listing = every["requirements"]
    assert [r for w, r in listing if w == "COPY"] == ["pyproject.toml ./"]
    assert "['project']['dependencies']" in index_run(listing, "requirements.txt")
    builder = every["builder"]
    assert ("ARG", "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu") in builder
    torch = index(builder, "RUN", '--index-url "${TORCH_INDEX_URL}"')
    assert '"torch==${TORCH_VERSION}"' in builder[torch][1]
    manifest = index(builder, "COPY", "--from=requirements /src/requirements.txt")
    deps = index(builder, "RUN", "pip install -r requirements.txt")
    code = index(builder, "COPY", ". /app")
    project = index(builder, "RUN", "pip install --no-deps /app")
    assert torch < manifest < deps < code < project
    # nothing but the list is copied before the dependency layer
    copies = [r for w, r in builder[:deps] if w == "COPY"]
    assert copies == ["--from=requirements /src/requirements.txt ./"]


def index_run(steps: list[tuple[str, str]], needle: str) -> str:
    return steps[index(steps, "RUN", needle)][1]


def test_runtime_stage_is_non_root_numeric_with_one_writable_volume() -> None:
    runtime = stages(DOCKERFILE.read_text())["runtime"]
    args = dict(r.split("=", 1) for w, r in runtime if w == "ARG" and "=" in r)
    user = [r for w, r in runtime if w == "USER"][-1]
    resolved = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], user)
    uid, gid = resolved.split(":")
    assert uid.isdigit() and int(uid) >= 10000 and gid.isdigit()
    env = dict(
        re.findall(r"(\w+)=(\S+)", " ".join(r for w, r in runtime if w == "ENV"))
    )
    volume = [r for w, r in runtime if w == "VOLUME"]
    assert volume == ['["/var/lib/frl"]']
    for name in ("HOME", "FLWR_HOME", "NUMBA_CACHE_DIR", "MPLCONFIGDIR", "TMPDIR"):
        assert env[name] == "/var/lib/frl" or env[name].startswith("/var/lib/frl/"), (
            name
        )
    assert env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] == "1"
    # the runtime stage takes the venv and the sources, nothing from the build cache
    copies = [r for w, r in runtime if w == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv", "--from=builder /app /app"]
    assert [r for w, r in runtime if w == "ENTRYPOINT"] == [
        '["python", "-m", "scripts.entrypoint"]'
    ]


def _regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax (Go ``filepath.Match`` plus ``**``) as a regex."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``path`` out of the context.

    A pattern matches the path or a parent folder; the last match wins (``!``
    re-includes).
    """
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for raw in patterns:
        negate = raw.startswith("!")
        regex = _regex(raw.removeprefix("!"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            verdict = not negate
    return verdict


def test_dockerignore_keeps_the_build_inputs_and_drops_the_bulk() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for bulk in (".venv/bin/python", ".git/HEAD", "outputs/x/y.zip", "multirun/a",
                 "tests/conftest.py", "fl_server/__pycache__/a.pyc"):  # fmt: skip
        assert ignored(bulk, patterns), bulk
    needed = ["pyproject.toml", "README.md", "LICENSE", "scripts/entrypoint.py",
              "deploy/demo/clusters/us-east/7-21", "deploy/compose/migrator.yaml",
              "envs/data/reach/7-21/nodes.json", "conf/config.yaml"]  # fmt: skip
    needed += [f"{p}/__init__.py" for p in ("envs", "policies", "fl_clients",
               "fl_server", "serving", "conf", "scripts", "hooks")]  # fmt: skip
    for path in needed:
        assert (ROOT / path).exists(), path
        assert not ignored(path, patterns), path
    # the demo's cluster folders are links that must resolve inside the context
    for link in (ROOT / "deploy/demo/clusters").glob("*/*"):
        target = link.resolve()
        assert target.is_relative_to(ROOT) and target.exists(), link
        assert not ignored(str(target.relative_to(ROOT)), patterns), link


def test_keys_stay_out_of_the_image_and_out_of_git(tmp_path: Path) -> None:
    """Keys never reach an image or a commit.

    Everything ``make_certs`` writes by default is ignored by both files; its
    private files are ignored wherever they are written.
    """
    names = make_certs.Names(("superlink",), ("127.0.0.1",))
    make_certs.make_all(tmp_path / "certs", names, ["us-east"], api_key=True)
    files = sorted(str(p.relative_to(tmp_path / "certs"))
                   for p in (tmp_path / "certs").rglob("*") if p.is_file())  # fmt: skip
    assert "superlink/superlink.key" in files and "api/serving-api-key" in files
    default = [f"{make_certs.DEFAULT_OUT}/{f}" for f in files]
    private = [f for f in files if f.endswith(".key") or f.endswith("serving-api-key")]
    assert len(private) == 3  # the SuperLink's, the node's and the API key
    elsewhere = [f"ops/tls/{f}" for f in private] + [f"deploy/x/{f}" for f in private]
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in default + elsewhere:
        assert ignored(path, patterns), f".dockerignore lets {path} into the image"
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin", "-v", "-n"],
        input="\n".join(default + elsewhere), capture_output=True, text=True,
        cwd=ROOT, check=False,
    )  # fmt: skip
    if done.returncode == 128:
        pytest.skip(f"not a git checkout: {done.stderr.strip()}")
    verdicts = dict(line.split("\t")[::-1] for line in done.stdout.splitlines())
    unignored = [path for path, rule in verdicts.items() if rule.startswith("::")]
    assert set(verdicts) == set(default + elsewhere)
    assert unignored == [], f".gitignore lets these be committed: {unignored}"
    # a file of the build context of the same shape is not caught by mistake
    assert not ignored("scripts/make_certs.py", patterns)
