from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from driver.local.server import ApiServer
from ctl_helpers import CLASSES, Api, kube_for


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiServer]:
    srv = ApiServer(bookmark_interval=1.0).start()
    srv.write_kubeconfig(tmp_path / "kubeconfig")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def api(server: ApiServer) -> Api:
    a = Api(kube_for(server))
    for c in CLASSES:
        a.create(c)
    return a
