"""The e2e target: a real cluster when E2E_KUBECONFIG names a reachable one (kind via
e2e/run.sh, or any cluster with the chart installed), else the local cluster (driver.local)
started in this process with its controller, so that CI runs the same tests on every change.

Environment:
  E2E_KUBECONFIG       kubeconfig of a cluster with gpu-dra installed
  E2E_SCHEDULER_NAME   the controller's scheduler name there (default gpu-dra-scheduler)
  E2E_DRIVER_NAME      the driver name there (default gpu.nvidia.com)
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from kubernetes import client, config

sys.path.insert(0, str(Path(__file__).parent))

from e2e_support import Target, apply, rendered_device_classes, wait_slices  # noqa: E402

SCHEDULER = os.environ.get("E2E_SCHEDULER_NAME", "gpu-dra-scheduler")
DRIVER = os.environ.get("E2E_DRIVER_NAME", "gpu.nvidia.com")


def _reachable(kubeconfig: Path) -> str | None:
    """None when the API server answers /version, else why not."""
    if not kubeconfig.is_file():
        return f"{kubeconfig} is not a file"
    try:
        api = config.new_client_from_config(config_file=str(kubeconfig))
        try:
            client.VersionApi(api).get_code(_request_timeout=10)
        finally:
            api.close()
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable", reported verbatim
        return f"{type(exc).__name__}: {exc}"
    return None


def _controller_factory(cluster: Any) -> Any:
    """The allocation controller as one of the local cluster's components (what the chart's
    Deployment runs), scheduling the pods that name SCHEDULER."""
    from driver.controller.kube import Kube, new_client
    from driver.controller.scheduler import Controller, ControllerConfig

    return Controller(Kube(new_client(str(cluster.kubeconfig))), ControllerConfig(scheduler_name=SCHEDULER))


def _local_cluster() -> Iterator[Target]:
    """The in-process local cluster (default description) with the controller, or a skip saying
    what is missing."""
    try:
        from driver.local.cluster import LocalCluster
        from driver.controller.scheduler import Controller  # noqa: F401 - presence check
    except ImportError as exc:
        pytest.skip(f"no e2e target: E2E_KUBECONFIG is not set and the local cluster is not available ({exc})")
    cluster = LocalCluster(component_factories=[_controller_factory])
    with cluster:
        target = Target(f"local cluster ({cluster.api.url})", cluster.kubeconfig, SCHEDULER, cluster.spec.driver_name,
                    client_validation=False)
        try:
            yield target
        finally:
            target.close()


@pytest.fixture(scope="session")
def target() -> Iterator[Target]:
    if shutil.which("kubectl") is None:
        pytest.skip("no kubectl on PATH: the e2e tests apply manifests with kubectl, as a user would")
    env = os.environ.get("E2E_KUBECONFIG")
    if env:
        kubeconfig = Path(env).expanduser()
        problem = _reachable(kubeconfig)
        if problem is None:
            found = Target(f"cluster from E2E_KUBECONFIG={kubeconfig}", kubeconfig, SCHEDULER, DRIVER)
            try:
                yield found
            finally:
                found.close()
            return
        print(f"\nE2E_KUBECONFIG={env} is not reachable ({problem}); using the local cluster", file=sys.stderr)
    yield from _local_cluster()


@pytest.fixture(scope="session")
def installed(target: Target) -> Target:
    """The target with the chart's DeviceClasses applied (kubectl) and the driver's devices published."""
    classes = rendered_device_classes(target.driver_name)
    apply(target, None, classes)
    names = set(target.kubectl("get", "deviceclasses", "-o", "name").split())
    assert {f"deviceclass.resource.k8s.io/{c['metadata']['name']}" for c in classes} <= names
    wait_slices(target, target.driver_name)
    return target
