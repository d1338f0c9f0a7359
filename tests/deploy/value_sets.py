"""Value sets the chart is rendered with in CI: the defaults, a mock-NVML cluster with one node
group per sharing mode, a renamed driver beside NVIDIA's, and minimal installs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# The values e2e/run.sh installs on kind: rendered and validated like the others.
KIND_E2E: dict[str, Any] = yaml.safe_load((Path(__file__).resolve().parents[2] / "e2e" / "values-kind.yaml").read_text())

EVERY_MODE: dict[str, Any] = {
    "nvml": "mock:a100-80gb-x8",
    "driverRoot": "/run/nvidia/driver",
    "plugin": {
        "nodeGroups": [
            {"name": "whole", "nodeSelector": {"gpu-dra.io/sharing": "whole"}, "sharing": {"mode": "whole"}},
            {
                "name": "mig",
                "nodeSelector": {"gpu-dra.io/sharing": "mig"},
                "sharing": {"mode": "mig", "migConfig": "all-1g.10gb"},
                "nvml": "mock",
                "mockNode": {"profile": "A100-SXM4-80GB", "gpuCount": 8},
            },
            {
                "name": "timeslicing",
                "nodeSelector": {"gpu-dra.io/sharing": "timeslicing"},
                "sharing": {"mode": "timeslicing", "replicas": 4},
                "gpus": {"0": {"mode": "whole"}},
            },
            {"name": "fractional", "nodeSelector": {"gpu-dra.io/sharing": "fractional"}, "sharing": {"mode": "fractional"}},
            {
                "name": "dynamic",
                "nodeSelector": {"gpu-dra.io/sharing": "dynamic"},
                "sharing": {"mode": "dynamic", "replicas": 2},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
            },
        ]
    },
    "controller": {
        "packing": {
            "strategy": "spread",
            "weights": {"gpu": 2, "cpu": 0.5, "memory": 0},
            "thresholds": {"gpu": 0.8},
            "coverage": 0.9,
            "pluginWeights": {"InterPodAffinity": 5, "Packing": 2},
            "interPodAffinity": {"hardPodAffinityWeight": 3},
            "topologySpread": {"defaultingType": "List", "defaultConstraints": [
                {"maxSkew": 2, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}]},
        }
    },
}

RENAMED_DRIVER: dict[str, Any] = {
    "driverName": "gpu.example.com",
    "image": {"repository": "registry.example.com/gpu-dra", "tag": "1.2.3", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "registry"}],
    "kubeletDir": "/var/snap/microk8s/common/var/lib/kubelet",
    "deviceClasses": {
        "gpu": {"enabled": True, "extendedResourceName": ""},
        "mig": {"enabled": True, "name": "mig-devices.example.com"},
        "replica": {"enabled": False},
    },
    "plugin": {"privileged": False},
    "controller": {"schedulerName": "packing-scheduler", "replicas": 3, "metricsPort": 9090},
}

MINIMAL: dict[str, Any] = {
    "nvml": "mock:t4-x2",
    "controller": {"replicas": 1, "leaderElect": False},
    "admissionPolicy": {"enabled": False},
}

PLUGIN_ONLY: dict[str, Any] = {"controller": {"enabled": False}}

CONTROLLER_ONLY: dict[str, Any] = {"plugin": {"enabled": False}}

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "every-mode": EVERY_MODE,
    "renamed-driver": RENAMED_DRIVER,
    "minimal": MINIMAL,
    "plugin-only": PLUGIN_ONLY,
    "controller-only": CONTROLLER_ONLY,
    "kind-e2e": KIND_E2E,
}
