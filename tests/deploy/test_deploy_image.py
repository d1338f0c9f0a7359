"""deploy/Dockerfile: a multi-stage build whose final stage has no build tools, runs `gpu-dra` as a
non-root user, and whose build context (Dockerfile.dockerignore) holds what the wheel needs."""

from __future__ import annotations

import re

from deploy_support import REPO

DOCKERFILE = (REPO / "deploy" / "Dockerfile").read_text()
IGNORE = (REPO / "deploy" / "Dockerfile.dockerignore").read_text()


def _stages() -> list[str]:
    parts = re.split(r"(?m)^FROM\s", DOCKERFILE)
    return ["FROM " + p for p in parts[1:]]


def test_two_stages_from_a_slim_python_311_base() -> None:
    stages = _stages()
    assert len(stages) == 2
    base = re.search(r"(?m)^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE)
    assert base and re.fullmatch(r"python:3\.11-slim(-\w+)?", base.group(1))
    assert all(s.startswith("FROM ${PYTHON_IMAGE}") for s in stages)


def test_final_stage_installs_wheels_only_and_runs_unprivileged() -> None:
    final = _stages()[-1]
    assert "from=builder" in final and "--no-index" in final
    for tool in ("apt-get", "gcc", "build-essential", "COPY driver", "pip wheel"):
        assert tool not in final, tool
    assert "pip uninstall --yes pip setuptools wheel" in final
    user = re.search(r"(?m)^USER (\d+):(\d+)$", final)
    assert user and int(user.group(1)) != 0
    assert re.search(r'(?m)^ENTRYPOINT \["gpu-dra"\]$', final)


def test_build_context_keeps_what_the_wheel_needs() -> None:
    kept = {line[1:] for line in IGNORE.splitlines() if line.startswith("!")}
    assert {"pyproject.toml", "README.md", "driver/"} <= kept
    assert "*" in IGNORE.splitlines(), "everything else stays out of the context (no .venv, no tests)"
