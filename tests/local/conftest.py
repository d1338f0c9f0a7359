"""Fixtures for the local cluster tests: a fresh API server per test and official clients for it, and a
one-node local cluster per module for the imperative kubectl tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from driver.local.cluster import LocalCluster
from driver.local.server import ApiServer
from local_helpers import one_node_cluster


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiServer]:
    server = ApiServer(bookmark_interval=0.2)
    server.start()
    server.write_kubeconfig(tmp_path / "kubeconfig")
    yield server
    server.stop()


@pytest.fixture
def kube(api: ApiServer) -> Iterator[client.ApiClient]:
    assert api.kubeconfig_path is not None
    api_client = config.new_client_from_config(str(api.kubeconfig_path))
    yield api_client
    api_client.close()


@pytest.fixture
def core(kube: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube)


@pytest.fixture
def dra(kube: client.ApiClient) -> client.ResourceV1Api:
    return client.ResourceV1Api(kube)


@pytest.fixture(scope="module")
def one_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with one_node_cluster(tmp_path_factory.mktemp("one-node")) as cluster:
        yield cluster
