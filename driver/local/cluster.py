"""`LocalCluster`: the API server plus everything a real cluster would run around it.

Start order is the order of a real cluster's bring-up: API server, then the driver's DeviceClasses
(what installing the driver's chart creates; `device_classes=False` leaves them to the caller), then
nodes (kubelets register Node objects and Leases), then controllers (resourceclaim, Deployment/ReplicaSet, a
default-scheduler for pods without claims, the disruption controller keeping PodDisruptionBudget status
current, the PersistentVolume binding controller). Every piece is a component with start()/stop() kept in `components`, stopped in reverse order; other parts add theirs (the allocation controller,
per-node kubelet plugins) through `component_factories` / `plugin_factory` without this file
knowing their classes.

    with LocalCluster() as cluster:          # the shipped default cluster
        api = cluster.api_client()           # official kubernetes client, over HTTP
        ...
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from driver import log
from driver.devices.classes import device_classes
from driver.local.claims import ClaimController
from driver.local.clusterfile import ClusterSpec, NodeSpec, load_cluster
from driver.local.disruption import DisruptionController
from driver.local.nodes import GrpcPreparer, Kubelet, NoPlugin, Preparer
from driver.local.scheduler import DefaultScheduler
from driver.local.server import ApiServer
from driver.local.volumebinding import VolumeBinder
from driver.local.workloads import WorkloadController

logger = log.get(__name__)


class Component(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


# (node, cluster) -> (a started-later component, the DRA socket path it serves) or None for "no plugin"
PluginFactory = Callable[[NodeSpec, "LocalCluster"], "tuple[Component, Path] | None"]
ComponentFactory = Callable[["LocalCluster"], Component]


class _Started:
    """Adapter so that the API server sits in `components` like everything else."""

    def __init__(self, start: Callable[[], Any], stop: Callable[[], Any]) -> None:
        self.start, self.stop = start, stop  # type: ignore[method-assign]


def driver_plugin_factory(node: NodeSpec, cluster: "LocalCluster") -> tuple[Component, Path] | None:
    """Start the real kubelet plugin (driver.plugin) in-process for a GPU node, when installed."""
    if node.nvml is None:
        return None
    try:
        from driver.plugin.driver import Plugin, PluginOptions  # type: ignore[import-not-found]
    except ImportError:
        return None
    base = cluster.workdir / "n" / node.name  # short: unix socket paths are limited to 107 bytes
    base.mkdir(parents=True, exist_ok=True)
    nvml = node.nvml
    if isinstance(nvml, dict):
        path = base / "nvml.yaml"
        path.write_text(yaml.safe_dump(nvml))
        nvml = str(path)
    node_config = base / "config.yaml"
    node_config.write_text(yaml.safe_dump(node.node_config(cluster.spec.driver_name)))
    sockets = base
    if len(str(base / "registry" / f"{cluster.spec.driver_name}-reg.sock")) > 100:
        sockets = cluster.short_dir() / node.name  # unix socket paths are limited to 107 bytes
    plugin_dir = sockets / "plugin"
    options = PluginOptions(
        node_name=node.name, driver_name=cluster.spec.driver_name, nvml=f"mock:{nvml}", node_config=str(node_config),
        kubeconfig=str(cluster.kubeconfig), plugin_dir=str(plugin_dir), registry_dir=str(sockets / "registry"),
        cdi_root=str(base / "cdi"), state_dir=str(base / "state"))
    plugin = Plugin(options)
    return plugin, Path(getattr(plugin, "dra_socket", plugin_dir / "dra.sock"))


class LocalCluster:
    """A whole local cluster; a context manager (see module docstring)."""

    def __init__(
        self,
        description: ClusterSpec | str | Path | None = None,
        workdir: str | Path | None = None,
        port: int = 0,
        plugin_factory: PluginFactory | None = driver_plugin_factory,
        component_factories: list[ComponentFactory] | None = None,
        claim_controller: bool = True,
        kubelets: bool = True,
        bookmark_interval: float = 60.0,
        lease_renew_s: float = 10.0,
        workloads: bool = True,
        default_scheduler: bool = True,
        device_classes: bool = True,
        disruption: bool = True,
        volumes: bool = True,
    ) -> None:
        self.spec = description if isinstance(description, ClusterSpec) else load_cluster(description)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="gpu-dra-local-"))
        self.api = ApiServer(port=port, bookmark_interval=bookmark_interval)
        self.kubeconfig = self.workdir / "kubeconfig"
        self.plugin_factory = plugin_factory
        self.component_factories = list(component_factories or [])
        self.with_claim_controller, self.with_kubelets = claim_controller, kubelets
        self.lease_renew_s = lease_renew_s
        self.with_workloads = workloads
        self.with_default_scheduler = default_scheduler
        self.with_device_classes = device_classes
        self.with_disruption = disruption
        self.with_volumes = volumes
        self.components: list[Component] = []
        self.kubelets: dict[str, Kubelet] = {}
        self._clients: list[client.ApiClient] = []
        self._short_dir: Path | None = None

    def short_dir(self) -> Path:
        """A short private directory under /tmp for unix sockets (removed with the cluster)."""
        if self._short_dir is None:
            self._short_dir = Path(tempfile.mkdtemp(prefix="gdl-", dir="/tmp"))
        return self._short_dir

    def api_client(self, pool_size: int | None = None) -> client.ApiClient:
        """A fresh official-client ApiClient for this cluster (closed with the cluster).

        `pool_size`: connections kept per host; give it for a component with more concurrent
        users (watches + writer threads) than the client's default (5 per CPU), or urllib3
        warns "Connection pool is full" and reconnects for each surplus request."""
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=cfg)
        if pool_size is not None:
            cfg.connection_pool_maxsize = pool_size
        api = client.ApiClient(cfg)
        self._clients.append(api)
        return api

    def create_device_classes(self) -> list[str]:
        """Create the driver's DeviceClasses (for `spec.driver_name`) over HTTP; existing ones are kept.

        Returns the names created. A class the API server rejects raises (the cluster would be
        unusable for the driver's claims, so start fails loudly).
        """
        resource = client.ResourceV1Api(self.api_client())
        created = []
        for cls in device_classes(self.spec.driver_name):
            try:
                resource.create_device_class(cls, _preload_content=False)
                created.append(cls["metadata"]["name"])
            except ApiException as exc:
                if exc.status != 409:
                    raise
        logger.info("device_classes_created", classes=created)
        return created

    def _add(self, component: Component) -> None:
        component.start()
        self.components.append(component)

    def start(self) -> "LocalCluster":
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._add(_Started(self.api.start, self.api.stop))
            self.api.write_kubeconfig(self.kubeconfig)
            if self.with_device_classes:
                self.create_device_classes()
            for index, node in enumerate(self.spec.nodes):
                preparer: Preparer = NoPlugin()
                if self.plugin_factory is not None:
                    started = self.plugin_factory(node, self)
                    if started is not None:
                        plugin, socket = started
                        self._add(plugin)
                        preparer = GrpcPreparer(str(socket))
                kubelet = Kubelet(node, index, self.api_client(), preparer, lease_renew_s=self.lease_renew_s)
                if self.with_kubelets:
                    self._add(kubelet)
                else:
                    kubelet.register()
                self.kubelets[node.name] = kubelet
            if self.with_claim_controller:
                self._add(ClaimController(self.api_client()))
            if self.with_workloads:
                self._add(WorkloadController(self.api_client()))
            if self.with_default_scheduler:
                self._add(DefaultScheduler(self.api_client()))
            if self.with_disruption:
                self._add(DisruptionController(self.api_client()))
            if self.with_volumes:
                self._add(VolumeBinder(self.api_client()))
            for factory in self.component_factories:
                self._add(factory(self))
        except BaseException:
            self.stop()
            raise
        logger.info("local_cluster_ready", url=self.api.url, nodes=[n.name for n in self.spec.nodes],
                    kubeconfig=str(self.kubeconfig))
        return self

    def stop(self) -> None:
        """Stop every component, newest first; the workdir is removed if the cluster made it."""
        while self.components:
            component = self.components.pop()
            try:
                component.stop()
            except Exception:  # keep stopping the rest
                logger.exception("component_stop_failed", component=type(component).__name__)
        for api in self._clients:
            api.close()
        self._clients.clear()
        if self._short_dir is not None:
            shutil.rmtree(self._short_dir, ignore_errors=True)
            self._short_dir = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
