"""Field errors of the per-kind rules (strategy.validate) for Secrets and Jobs: each names the field
and what was expected."""

from __future__ import annotations

from typing import Any

from driver.local import strategy
from driver.local.resources import RESOURCES, Resource


def _res(key: str) -> Resource:
    return next(r for r in RESOURCES if r.key == key)


def _job(**spec: Any) -> dict[str, Any]:
    labels = {"job": "j"}
    return {"metadata": {"name": "j", "namespace": "default"},
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "main", "image": "busybox"}]}},
                     **spec}}


def test_secret_data_must_be_a_map_of_base64() -> None:
    secrets = _res("secrets")
    meta = {"name": "s", "namespace": "default"}
    assert strategy.validate(secrets, {"metadata": meta, "data": {"ok": "aGk="}}, None) == []
    assert strategy.validate(secrets, {"metadata": meta, "data": ["x"]}, None) == [
        ("data", "Invalid value: expected a map of base64 strings")]
    assert strategy.validate(secrets, {"metadata": meta, "data": {"k": "not base64!"}}, None) == [
        ("data[k]", "Invalid value: 'not base64!': must be base64-encoded")]


def test_job_field_errors() -> None:
    jobs = _res("batch/jobs")
    assert strategy.validate(jobs, _job(), None) == []
    assert strategy.validate(jobs, {"metadata": {"name": "j"}}, None) == [("spec", "Required value")]
    causes = strategy.validate(jobs, _job(parallelism=-1, backoffLimit=True), None)
    assert causes == [("spec.parallelism", "Invalid value: -1: must be greater than or equal to 0"),
                      ("spec.backoffLimit", "Invalid value: True: must be greater than or equal to 0")]
    assert strategy.validate(jobs, _job(template={}), None) == [("spec.template", "Required value")]
    bad = _job(selector={"matchLabels": {"job": "other"}})
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    fields = [f for f, _ in strategy.validate(jobs, bad, None)]
    assert fields == ["spec.template.spec.restartPolicy", "spec.template.metadata.labels"]
    fields = [f for f, _ in strategy.validate(jobs, _job(selector={}), None)]
    assert fields == ["spec.selector"]


def test_deployment_field_errors_in_order() -> None:
    deployments = _res("apps/deployments")
    dep = _job(replicas=-2, selector={"matchLabels": {"app": "x"}})
    del dep["spec"]["template"]["spec"]["restartPolicy"]
    dep["spec"]["template"]["spec"]["containers"][0]["name"] = "Bad_Name"
    fields = [f for f, _ in strategy.validate(deployments, dep, None)]
    assert fields == ["spec.replicas", "spec.template.metadata.labels", "spec.template.spec.containers[0].name"]
    dep["spec"]["template"] = None
    fields = [f for f, _ in strategy.validate(deployments, dep, None)]
    assert fields == ["spec.replicas", "spec.template"]
