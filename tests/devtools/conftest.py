"""Fixtures for the devtools tests: the toy SAM app deployed to a private ministack."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from keaplink_dev.local.deploy import sam_build, sam_deploy
from keaplink_dev.local.ministack import MiniStack, ensure_installed, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
TOY = Path(__file__).parent / "fixtures" / "toy"
TOY_STACK = "toy"
TOY_SECRET = 'noecho value with spaces, "quotes" = and commas'


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: drives the local stack (ministack + Keap sandbox) as a user would")


@dataclass
class ToyStack:
    ms: MiniStack
    endpoint: str
    app_dir: Path
    outputs: dict[str, str]

    @property
    def api_base(self) -> str:
        return f"{self.endpoint}/_aws/execute-api/{self.outputs['ApiId']}/Prod"


@pytest.fixture(scope="session")
def toy_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ToyStack]:
    base = tmp_path_factory.mktemp("toy")
    app_dir = base / "app"
    shutil.copytree(TOY, app_dir, ignore=shutil.ignore_patterns(".aws-sam", "__pycache__"))
    ensure_installed(REPO_ROOT)
    sam_build(app_dir)
    ms = MiniStack(free_port(), base / "ministack", base / "ministack.log", repo_root=REPO_ROOT)
    with ms:
        outputs = sam_deploy(app_dir, ms.endpoint, TOY_STACK, {"ClientSecret": TOY_SECRET})
        yield ToyStack(ms, ms.endpoint, app_dir, outputs)
