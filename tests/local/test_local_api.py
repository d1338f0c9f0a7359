"""The local API server through the official kubernetes client over HTTP: storage semantics."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from driver.local.server import ApiServer
from local_helpers import pod_body
from wait_helpers import wait_for


def _status(exc: ApiException) -> dict:
    return json.loads(exc.body)


def test_two_writers_from_one_version_one_gets_409(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}, "data": {"n": "0"}})
    first = core.read_namespaced_config_map("cm", "default")
    second = core.read_namespaced_config_map("cm", "default")
    first.data = {"n": "1"}
    second.data = {"n": "2"}
    updated = core.replace_namespaced_config_map("cm", "default", first)
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("cm", "default", second)
    assert err.value.status == 409
    assert _status(err.value)["reason"] == "Conflict"
    current = core.read_namespaced_config_map("cm", "default")
    assert current.data == {"n": "1"}
    assert int(updated.metadata.resource_version) > int(first.metadata.resource_version)
    assert current.metadata.resource_version == updated.metadata.resource_version


def test_resource_version_increases_and_noop_update_keeps_it(core: client.CoreV1Api) -> None:
    a = core.create_namespaced_config_map("default", {"metadata": {"name": "a"}, "data": {"k": "v"}})
    b = core.create_namespaced_config_map("default", {"metadata": {"name": "b"}})
    assert int(b.metadata.resource_version) > int(a.metadata.resource_version)
    same = core.replace_namespaced_config_map("a", "default", a)
    assert same.metadata.resource_version == a.metadata.resource_version


def test_duplicate_name_is_409_already_exists(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "dup"}})
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("default", {"metadata": {"name": "dup"}})
    assert err.value.status == 409
    body = _status(err.value)
    assert body["reason"] == "AlreadyExists" and body["details"]["name"] == "dup"


def test_generate_name_uid_and_timestamp(core: client.CoreV1Api) -> None:
    made = [core.create_namespaced_config_map("default", {"metadata": {"generateName": "job-"}}) for _ in range(3)]
    names = {m.metadata.name for m in made}
    assert len(names) == 3 and all(n.startswith("job-") and len(n) == 9 for n in names)
    assert len({m.metadata.uid for m in made}) == 3
    assert all(m.metadata.creation_timestamp is not None for m in made)


def test_not_found_is_a_status_body(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("nope", "default")
    body = _status(err.value)
    assert err.value.status == 404
    assert body["kind"] == "Status" and body["reason"] == "NotFound"
    assert body["details"] == {"kind": "pods", "name": "nope"}


def test_create_in_missing_namespace_is_404(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("ghost", {"metadata": {"name": "x"}})
    assert err.value.status == 404 and "namespaces" in _status(err.value)["message"]


def test_invalid_name_is_422_naming_the_field(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("default", {"metadata": {"name": "Bad_Name"}})
    body = _status(err.value)
    assert err.value.status == 422 and body["reason"] == "Invalid"
    assert [c["field"] for c in body["details"]["causes"]] == ["metadata.name"]


def test_watch_resumes_from_a_resource_version(core: client.CoreV1Api) -> None:
    a = core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    since = a.metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "b"}})
    core.patch_namespaced_config_map("a", "default", {"data": {"x": "1"}})
    core.delete_namespaced_config_map("b", "default")
    seen = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, "default", resource_version=since, timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 3:
            w.stop()
    assert seen == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]


def test_watch_without_version_starts_with_current_objects(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "old"}})
    w = watch.Watch()
    first = next(iter(w.stream(core.list_namespaced_config_map, "default", timeout_seconds=5)))
    w.stop()
    assert (first["type"], first["object"].metadata.name) == ("ADDED", "old")


def test_expired_watch_gets_410(api: ApiServer, core: client.CoreV1Api) -> None:
    old = core.create_namespaced_config_map("default", {"metadata": {"name": "a"}}).metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "b"}})
    api.store.compact()
    resp = core.list_namespaced_config_map("default", watch=True, resource_version=old, _preload_content=False)
    event = json.loads(next(resp.stream()).splitlines()[0])
    resp.release_conn()
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
    with pytest.raises(ApiException) as err:
        for _ in watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=old,
                                      timeout_seconds=5):
            pass
    assert err.value.status == 410


def test_history_window_is_bounded(tmp_path) -> None:
    with ApiServer(history=3) as small:
        small.write_kubeconfig(tmp_path / "kc")
        from kubernetes import config as kconfig

        api_client = kconfig.new_client_from_config(str(tmp_path / "kc"))
        core = client.CoreV1Api(api_client)
        first = core.create_namespaced_config_map("default", {"metadata": {"name": "c0"}}).metadata.resource_version
        for i in range(1, 5):
            core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
        resp = core.list_namespaced_config_map("default", watch=True, resource_version=first, _preload_content=False)
        event = json.loads(next(resp.stream()).splitlines()[0])
        resp.release_conn()
        api_client.close()
    assert event["type"] == "ERROR" and event["object"]["code"] == 410


def test_bookmarks_carry_the_current_version(core: client.CoreV1Api) -> None:
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    resp = core.list_namespaced_config_map("default", watch=True, resource_version=rv, allow_watch_bookmarks=True,
                                           timeout_seconds=5, _preload_content=False)
    created = core.create_namespaced_config_map("default", {"metadata": {"name": "x"}})
    events = []
    buffer = b""
    for chunk in resp.stream():
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            events.append(json.loads(line))
        if any(e["type"] == "BOOKMARK" for e in events):
            break
    resp.release_conn()
    assert events[0]["type"] == "ADDED"
    mark = next(e for e in events if e["type"] == "BOOKMARK")["object"]
    assert mark["kind"] == "ConfigMap"
    assert int(mark["metadata"]["resourceVersion"]) >= int(created.metadata.resource_version)


def test_watch_list_streams_initial_events_then_a_marked_bookmark(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "b"}})
    resp = core.list_namespaced_config_map("default", watch=True, send_initial_events=True, allow_watch_bookmarks=True,
                                           resource_version_match="NotOlderThan", timeout_seconds=5,
                                           _preload_content=False)
    events, buffer = [], b""
    for chunk in resp.stream():
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            events.append(json.loads(line))
        if any(e["type"] == "BOOKMARK" for e in events):
            break
    resp.release_conn()
    assert [(e["type"], e["object"]["metadata"].get("name")) for e in events[:2]] == [("ADDED", "a"), ("ADDED", "b")]
    assert events[2]["type"] == "BOOKMARK"
    assert events[2]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_label_selectors(core: client.CoreV1Api) -> None:
    for name, labels in [("a", {"app": "x", "tier": "web"}), ("b", {"app": "y"}), ("c", {"tier": "db"})]:
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": labels}})

    def names(selector: str) -> list[str]:
        return [i.metadata.name for i in core.list_namespaced_config_map("default", label_selector=selector).items]

    assert names("app=x") == ["a"]
    assert names("app!=x") == ["b", "c"]
    assert names("app in (x, y)") == ["a", "b"]
    assert names("app notin (x)") == ["b", "c"]
    assert names("tier") == ["a", "c"]
    assert names("!tier") == ["b"]
    assert names("app=x,tier=web") == ["a"]
    with pytest.raises(ApiException) as err:
        names("app in x")
    assert err.value.status == 400


def test_field_selectors(core: client.CoreV1Api) -> None:
    for name in ("p1", "p2", "p3"):
        core.create_namespaced_pod("default", pod_body(name))
    core.create_namespaced_pod_binding("p2", "default", {"metadata": {"name": "p2"}, "target": {"name": "n1"}},
                                       _preload_content=False)
    core.patch_namespaced_pod_status("p3", "default", {"status": {"phase": "Succeeded"}})

    def names(selector: str) -> list[str]:
        return [i.metadata.name for i in core.list_pod_for_all_namespaces(field_selector=selector).items]

    assert names("spec.nodeName=n1") == ["p2"]
    assert names("spec.nodeName=") == ["p1", "p3"]
    assert names("status.phase!=Succeeded") == ["p1", "p2"]
    assert names("metadata.name=p1,metadata.namespace=default") == ["p1"]
    assert names("spec.schedulerName=default-scheduler") == ["p1", "p2", "p3"]
    with pytest.raises(ApiException) as err:
        names("spec.hostname=x")
    assert err.value.status == 400 and "field label not supported" in _status(err.value)["message"]


def test_limit_and_continue(api: ApiServer, core: client.CoreV1Api) -> None:
    for i in range(5):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"cm-{i}"}})
    page = core.list_namespaced_config_map("default", limit=2)
    got = [i.metadata.name for i in page.items]
    assert page.metadata.remaining_item_count == 3
    while page.metadata._continue:
        page = core.list_namespaced_config_map("default", limit=2, _continue=page.metadata._continue)
        got += [i.metadata.name for i in page.items]
    assert got == [f"cm-{i}" for i in range(5)]
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map("default", limit=2, _continue="not-a-token")
    assert err.value.status == 400
    token = core.list_namespaced_config_map("default", limit=2).metadata._continue
    core.create_namespaced_config_map("default", {"metadata": {"name": "late"}})
    api.store.compact()
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map("default", limit=2, _continue=token)
    assert err.value.status == 410 and _status(err.value)["reason"] == "Expired"


def test_list_resource_version_too_large_is_rejected(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map("default", resource_version="99999999", resource_version_match="NotOlderThan")
    assert err.value.status == 504


def test_status_subresource_is_separate(core: client.CoreV1Api) -> None:
    pod = core.create_namespaced_pod("default", pod_body("p"))
    assert pod.status.phase == "Pending" and pod.metadata.generation == 1
    raw = core.read_namespaced_pod("p", "default", _preload_content=False)
    body = json.loads(raw.data)
    body["status"]["phase"] = "Running"
    body["spec"]["containers"][0]["image"] = "busybox:1.37"
    updated = core.replace_namespaced_pod("p", "default", body)
    assert updated.status.phase == "Pending"  # main resource ignores status
    assert updated.spec.containers[0].image == "busybox:1.37"
    assert updated.metadata.generation == 2
    body = json.loads(core.read_namespaced_pod("p", "default", _preload_content=False).data)
    body["status"]["phase"] = "Running"
    body["spec"]["containers"][0]["image"] = "busybox:9"
    body["metadata"]["labels"] = {"sneaky": "yes"}
    after = core.replace_namespaced_pod_status("p", "default", body)
    assert after.status.phase == "Running"
    assert after.spec.containers[0].image == "busybox:1.37"  # status ignores spec and metadata
    assert after.metadata.labels is None and after.metadata.generation == 2


def test_pod_spec_is_immutable_except_images(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod_body("p"))
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_pod("p", "default", {"spec": {"restartPolicy": "Never"}})
    assert err.value.status == 422 and _status(err.value)["details"]["causes"][0]["field"] == "spec"


def test_binding_sets_node_once(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod_body("p"))
    core.create_namespaced_pod_binding("p", "default", {"metadata": {"name": "p"}, "target": {"name": "n1"}},
                                       _preload_content=False)
    pod = core.read_namespaced_pod("p", "default")
    assert pod.spec.node_name == "n1"
    assert [(c.type, c.status) for c in pod.status.conditions] == [("PodScheduled", "True")]
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_binding("p", "default", {"metadata": {"name": "p"}, "target": {"name": "n2"}},
                                           _preload_content=False)
    assert err.value.status == 409 and 'already assigned to node "n1"' in _status(err.value)["message"]
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_binding("p", "default", {"metadata": {"name": "p"}, "target": {}},
                                           _preload_content=False)
    assert err.value.status == 422
    assert core.read_namespaced_pod("p", "default").spec.node_name == "n1"


def test_finalizers_and_deletion_timestamp(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "f", "finalizers": ["example.com/keep"]}})
    core.delete_namespaced_config_map("f", "default")
    held = core.read_namespaced_config_map("f", "default")
    assert held.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map("f", "default", {"metadata": {"finalizers": ["example.com/keep", "more"]}})
    assert err.value.status == 422
    core.patch_namespaced_config_map("f", "default", [{"op": "remove", "path": "/metadata/finalizers"}])
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("f", "default")
    assert err.value.status == 404


def test_delete_preconditions(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map("c", "default", body={"preconditions": {"uid": "wrong"}})
    assert err.value.status == 409 and "Precondition failed" in _status(err.value)["message"]
    core.read_namespaced_config_map("c", "default")


def test_bound_pod_deletion_waits_for_grace_period(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod_body("p"))
    core.create_namespaced_pod("default", pod_body("unbound"))
    core.create_namespaced_pod_binding("p", "default", {"metadata": {"name": "p"}, "target": {"name": "n1"}},
                                       _preload_content=False)
    terminating = core.delete_namespaced_pod("p", "default")
    assert terminating.metadata.deletion_grace_period_seconds == 30
    assert core.read_namespaced_pod("p", "default").metadata.deletion_timestamp is not None
    core.delete_namespaced_pod("p", "default", grace_period_seconds=0)
    core.delete_namespaced_pod("unbound", "default")  # never scheduled: goes at once
    assert core.list_namespaced_pod("default").items == []


def test_owner_references_are_garbage_collected(core: client.CoreV1Api) -> None:
    owner = core.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_config_map("default", {"metadata": {"name": "dep", "ownerReferences": [ref]}})
    other = core.create_namespaced_config_map("default", {"metadata": {"name": "other"}})
    ref2 = {"apiVersion": "v1", "kind": "ConfigMap", "name": "other", "uid": other.metadata.uid}
    core.create_namespaced_config_map("default", {"metadata": {"name": "shared", "ownerReferences": [ref, ref2]}})
    core.delete_namespaced_config_map("owner", "default")
    wait_for(lambda: [c.metadata.name for c in core.list_namespaced_config_map("default").items] == ["other", "shared"],
             what="the sole dependent collected, the co-owned one kept")


def test_object_created_with_a_dangling_owner_is_collected(core: client.CoreV1Api) -> None:
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "gone", "uid": "00000000-dead-beef-0000-000000000000"}
    core.create_namespaced_config_map("default", {"metadata": {"name": "orphaned", "ownerReferences": [ref]}})
    wait_for(lambda: not core.list_namespaced_config_map("default").items, what="dangling dependent collected")


def test_orphan_propagation_keeps_dependents(core: client.CoreV1Api) -> None:
    owner = core.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_config_map("default", {"metadata": {"name": "dep", "ownerReferences": [ref]}})
    core.delete_namespaced_config_map("owner", "default", propagation_policy="Orphan")
    dep = core.read_namespaced_config_map("dep", "default")
    assert dep.metadata.owner_references is None


def test_foreground_deletion_waits_for_blocking_dependents(core: client.CoreV1Api) -> None:
    owner = core.create_namespaced_config_map("default", {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid,
           "blockOwnerDeletion": True}
    core.create_namespaced_config_map("default", {"metadata": {"name": "dep", "ownerReferences": [ref],
                                                               "finalizers": ["example.com/hold"]}})
    core.delete_namespaced_config_map("owner", "default", propagation_policy="Foreground")
    held = core.read_namespaced_config_map("owner", "default")
    assert held.metadata.deletion_timestamp is not None and "foregroundDeletion" in held.metadata.finalizers
    wait_for(lambda: core.read_namespaced_config_map("dep", "default").metadata.deletion_timestamp,
             what="dependent being deleted")
    assert core.read_namespaced_config_map("owner", "default").metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("dep", "default", {"metadata": {"$deleteFromPrimitiveList/finalizers":
                                                                      ["example.com/hold"]}})
    wait_for(lambda: not core.list_namespaced_config_map("default").items, what="owner deleted after its dependent")


def test_strategic_merge_patch_merges_lists_by_key(core: client.CoreV1Api) -> None:
    body = pod_body("p")
    body["spec"]["containers"].append({"name": "side", "image": "envoy:1"})
    core.create_namespaced_pod("default", body)
    patched = core.patch_namespaced_pod("p", "default", {"spec": {"containers": [{"name": "side", "image": "envoy:2"}]}})
    assert [(c.name, c.image) for c in patched.spec.containers] == [("main", "busybox:1.36"), ("side", "envoy:2")]
    core.patch_namespaced_pod_status("p", "default", {"status": {"conditions": [{"type": "A", "status": "True"}]}})
    pod = core.patch_namespaced_pod_status("p", "default", {"status": {"conditions": [{"type": "B", "status": "False"}]}})
    assert [c.type for c in pod.status.conditions] == ["A", "B"]


def test_json_patch_test_failure_is_422_and_changes_nothing(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "c"}, "data": {"a": "1"}})
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map("c", "default", [{"op": "test", "path": "/data/a", "value": "2"},
                                                          {"op": "replace", "path": "/data/a", "value": "3"}])
    assert err.value.status == 422
    assert core.read_namespaced_config_map("c", "default").data == {"a": "1"}


def test_patch_with_stale_resource_version_conflicts(core: client.CoreV1Api) -> None:
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    core.patch_namespaced_config_map("c", "default", {"data": {"x": "1"}})
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map("c", "default", {"metadata": {"resourceVersion": cm.metadata.resource_version},
                                                          "data": {"x": "2"}})
    assert err.value.status == 409


def test_watch_with_field_selector_sees_pods_arrive_on_binding(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", pod_body("p"))
    rv = core.list_pod_for_all_namespaces().metadata.resource_version
    core.create_namespaced_pod_binding("p", "default", {"metadata": {"name": "p"}, "target": {"name": "n1"}},
                                       _preload_content=False)
    w = watch.Watch()
    event = next(iter(w.stream(core.list_pod_for_all_namespaces, field_selector="spec.nodeName=n1",
                               resource_version=rv, timeout_seconds=5)))
    w.stop()
    assert event["type"] == "ADDED" and event["object"].spec.node_name == "n1"


def test_namespace_deletion_removes_its_objects(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "team"}})
    core.create_namespaced_config_map("team", {"metadata": {"name": "c"}})
    core.delete_namespace("team")
    assert core.list_namespaced_config_map("team").items == []
    with pytest.raises(ApiException):
        core.read_namespace("team")


def test_injected_faults(api: ApiServer, core: client.CoreV1Api) -> None:
    api.faults.set(verb="create", resource="configmaps", error_rate=1.0, count=1)
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    assert err.value.status == 500 and _status(err.value)["reason"] == "InternalError"
    core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})  # the rule was used up
    rule = api.faults.set(verb="update", resource="configmaps", conflict_rate=1.0)
    cm = core.read_namespaced_config_map("c", "default")
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("c", "default", cm)
    assert err.value.status == 409
    core.read_namespaced_config_map("c", "default")  # other verbs unaffected
    api.faults.remove(rule)
    api.faults.set(resource="pods/status", latency=0.01, count=1)
    core.replace_namespaced_config_map("c", "default", cm)
    for bad in ({"verb": "fly"}, {"error_rate": 2.0}, {"latency": -1.0}, {"count": 0}):
        with pytest.raises(ValueError):
            api.faults.set(**bad)


def test_discovery(kube: client.ApiClient) -> None:
    groups = client.ApisApi(kube).get_api_versions()
    by_name = {g.name: g for g in groups.groups}
    assert by_name["resource.k8s.io"].preferred_version.version == "v1"
    assert "coordination.k8s.io" in by_name
    assert client.CoreApi(kube).get_api_versions().versions == ["v1"]
    resources = client.ResourceV1Api(kube).get_api_resources()
    names = {r.name: r for r in resources.resources}
    assert names["resourceslices"].namespaced is False
    assert names["resourceclaims"].kind == "ResourceClaim" and "watch" in names["resourceclaims"].verbs
    assert "resourceclaims/status" in names
    assert client.VersionApi(kube).get_code().major == "1"


def test_openapi_v3_advertises_server_side_field_validation(kube: client.ApiClient) -> None:
    host = kube.configuration.host
    root = kube.call_api("GET", f"{host}/openapi/v3")
    root.read()
    paths = json.loads(root.data)["paths"]
    assert {"api/v1", "apis/resource.k8s.io/v1", "apis/apps/v1"} <= set(paths)
    doc = kube.call_api("GET", host + paths["apis/resource.k8s.io/v1"]["serverRelativeURL"])
    doc.read()
    post = json.loads(doc.data)["paths"]["/apis/resource.k8s.io/v1/namespaces/{namespace}/resourceclaims"]["post"]
    assert post["x-kubernetes-group-version-kind"] == {"group": "resource.k8s.io", "version": "v1", "kind": "ResourceClaim"}
    assert [p["name"] for p in post["parameters"]] == ["fieldValidation"]


def test_field_validation_modes(kube: client.ApiClient) -> None:
    """Unknown fields: 400 with Strict, a Warning header by default (the typed client cannot send them)."""
    url = f"{kube.configuration.host}/api/v1/namespaces/default/configmaps"
    body = {"metadata": {"name": "c", "labls": {"a": "b"}}, "sepc": {}}

    def post(query: str):
        resp = kube.call_api("POST", url + query, header_params={"Content-Type": "application/json"}, body=body)
        resp.read()
        return resp

    strict = post("?fieldValidation=Strict")
    assert strict.status == 400
    assert 'unknown field "metadata.labls"' in json.loads(strict.data)["message"]
    warned = post("")
    assert warned.status == 201 and 'unknown field' in warned.getheader("Warning") and "sepc" in warned.getheader("Warning")
    assert post("?fieldValidation=Loose").status == 400


def test_v1beta2_reads_the_same_objects(kube: client.ApiClient, dra: client.ResourceV1Api) -> None:
    dra.create_device_class({"metadata": {"name": "gpu.nvidia.com"}, "spec": {}})
    resp = kube.call_api("GET", f"{kube.configuration.host}/apis/resource.k8s.io/v1beta2/deviceclasses/gpu.nvidia.com")
    resp.read()
    body = json.loads(resp.data)
    assert body["apiVersion"] == "resource.k8s.io/v1beta2" and body["metadata"]["name"] == "gpu.nvidia.com"


def test_concurrent_writers_never_lose_an_update(api: ApiServer, kube: client.ApiClient) -> None:
    """Read-modify-write with retry on 409 from several threads: every increment lands exactly once."""
    import threading

    from kubernetes import config as kconfig

    core = client.CoreV1Api(kube)
    core.create_namespaced_config_map("default", {"metadata": {"name": "counter"}, "data": {"n": "0"}})

    def writer() -> None:
        own = kconfig.new_client_from_config(str(api.kubeconfig_path))
        mine = client.CoreV1Api(own)
        for _ in range(15):
            while True:
                cm = mine.read_namespaced_config_map("counter", "default")
                cm.data["n"] = str(int(cm.data["n"]) + 1)
                try:
                    mine.replace_namespaced_config_map("counter", "default", cm)
                    break
                except ApiException as exc:
                    assert exc.status == 409
        own.close()

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert core.read_namespaced_config_map("counter", "default").data["n"] == "60"
