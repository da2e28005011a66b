"""The Kubernetes backend: one Job per run, followed logs, wait by watch, reconciliation by label.

Two modes:

* By default (no cluster can run on the development machines) every test talks to
  ``tests/k8s_fake.py``: a small fake of the Kubernetes API on 127.0.0.1, HAND-MADE from the API
  reference (not recorded from a cluster). The backend uses the REAL official client
  (``kubernetes.client.ApiClient`` with ``Configuration(host="http://127.0.0.1:<port>")``) over HTTP;
  the fake plays a Job controller and kubelet driven by the Job it received, with the container's
  behaviour chosen by its env var ``FAKE_SCENARIO`` (see the fake's docstring).
* Against a real cluster (kind, k3s, ...): set ``JUPYTER_ACTORS_TEST_KUBECONFIG`` to a kubeconfig
  file; optionally ``JUPYTER_ACTORS_TEST_K8S_NAMESPACE`` (default ``default``) and
  ``JUPYTER_ACTORS_TEST_K8S_IMAGE`` (default ``busybox:1.36``: the scenarios become shell commands).
  Tests that need a scenario only the fake can play (OOM, a node drain, the deadline, 410 Gone, the
  request bodies it received, the platform with a stub image builder) are skipped there.

Nothing here sleeps to synchronise: waits are on conditions, events or thread joins with deadlines.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import kubernetes
import pytest

from jupyter_actors.platform.backends.base import ContainerSpec
from jupyter_actors.platform.backends.kubernetes import (
    KubernetesBackend,
    job_name,
    job_state,
    split_labels,
    timestamp_ns,
)
from jupyter_actors.platform.clock import iso, utcnow
from jupyter_actors.platform.config import PlatformConfig
from jupyter_actors.platform.errors import EngineUnavailable
from jupyter_actors.platform.ids import new_id
from jupyter_actors.platform.limits import limits_for
from jupyter_actors.platform.runlog import RunLog

from .conftest import wait_until
from .k8s_fake import FakeKubernetes

LABEL_INSTANCE = "jupyter-actors.instance"
LABEL_RUN = "jupyter-actors.run-id"
LABEL_ACTOR = "jupyter-actors.actor-id"
LABEL_TIMEOUT_AT = "jupyter-actors.timeout-at"
LABEL_TEST = "jupyter-actors.test"  # every Job a test makes, for clean-up on a real cluster

REAL_KUBECONFIG = os.environ.get("JUPYTER_ACTORS_TEST_KUBECONFIG")
REAL_NAMESPACE = os.environ.get("JUPYTER_ACTORS_TEST_K8S_NAMESPACE", "default")
REAL_IMAGE = os.environ.get("JUPYTER_ACTORS_TEST_K8S_IMAGE", "busybox:1.36")
fake_only = pytest.mark.skipif(bool(REAL_KUBECONFIG), reason="a scenario only the fake Kubernetes API plays")
FIXTURES = Path(__file__).parent / "fixtures" / "kubernetes"

#: The scenarios as shell commands, for a real cluster.
SHELL = {
    "echo": 'i=1; while [ $i -le {n} ]; do echo "line $i"; i=$((i+1)); sleep 0.05; done',
    "burst": 'i=1; while [ $i -le {n} ]; do echo "burst $i"; i=$((i+1)); done',
    "exit": 'echo "failing with exit code {n}"; exit {n}',
    "sleep": "trap 'exit 143' TERM; echo sleeping; while true; do sleep 1; done",
}


def shell_command(scenario: str) -> list[str]:
    kind, _, argument = scenario.partition(":")
    return ["sh", "-c", SHELL[kind].format(n=argument or 1)]


# -- helpers ----------------------------------------------------------------------------------------


def wait_for(condition: Callable[[], object], timeout: float, message: str = "") -> object:
    """``wait_until`` polling faster: the fake answers in microseconds."""
    return wait_until(condition, timeout, interval=0.01, message=message)


def in_thread(target: Callable, *args) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def main() -> None:
        try:
            box["value"] = target(*args)
        except BaseException as exc:  # re-raised by joined()
            box["error"] = exc

    thread = threading.Thread(target=main, name=f"test-{getattr(target, '__name__', 'call')}", daemon=True)
    thread.start()
    return thread, box


def joined(started: tuple[threading.Thread, dict], timeout: float):
    thread, box = started
    thread.join(timeout)
    assert not thread.is_alive(), f"still running after {timeout} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def texts(lines) -> list[str]:
    return [line.text for line in lines]


def run_log_texts(data: bytes) -> list[str]:
    return [line.split(" ", 1)[1] for line in data.decode().splitlines()]


@dataclass
class Cluster:
    backend: KubernetesBackend
    api_client: object
    fake: FakeKubernetes | None
    namespace: str
    image: str
    timeout: float
    instance: str = field(default_factory=lambda: secrets.token_hex(6))
    test_id: str = field(default_factory=lambda: secrets.token_hex(4))

    def spec(self, scenario: str = "echo:3", *, labels: dict | None = None, timeout_secs: int = 0,
             memory_mb: int = 128, cpu_mode: str = "quota", publish_port: int | None = None,
             instance: str | None = None) -> ContainerSpec:
        run_id = new_id()
        instance = instance or self.instance
        deadline = utcnow() + dt.timedelta(seconds=timeout_secs) if timeout_secs else None
        timeout_at = iso(deadline) if deadline else ""
        return ContainerSpec(
            name=f"jupyter-actors-{instance}-{run_id}",
            image=self.image,
            env={"FAKE_SCENARIO": scenario, "GREETING": "hello world"},
            labels={LABEL_INSTANCE: instance, LABEL_RUN: run_id, LABEL_ACTOR: "ActorIdOf17Chars0",
                    LABEL_TIMEOUT_AT: timeout_at, LABEL_TEST: self.test_id, **(labels or {})},
            limits=limits_for(memory_mb, cpu_mode=cpu_mode, cores=8),
            user="1000:1000",
            publish_port=publish_port,
            command=None if self.fake else shell_command(scenario),
            timeout_at=deadline,
        )

    def started(self, scenario: str = "echo:3", **options) -> tuple[str, ContainerSpec]:
        spec = self.spec(scenario, **options)
        job = self.backend.create(spec)
        self.backend.start(job)
        return job, spec

    def wait(self, job: str) -> None:
        joined(in_thread(self.backend.wait, job), self.timeout)


@pytest.fixture
def cluster():
    if REAL_KUBECONFIG:
        api_client = kubernetes.config.new_client_from_config(config_file=REAL_KUBECONFIG)
        backend = KubernetesBackend(REAL_NAMESPACE, api_client=api_client)
        made = Cluster(backend, api_client, None, REAL_NAMESPACE, REAL_IMAGE, timeout=180)
        yield made
        for state in backend.list({LABEL_TEST: made.test_id}):
            backend.kill(state.id)
        backend.close()
        api_client.close()
        return
    fake = FakeKubernetes().start()
    api_client = kubernetes.client.ApiClient(kubernetes.client.Configuration(host=fake.url))
    backend = KubernetesBackend(api_client=api_client)
    backend.poll_interval_secs = 0.02
    try:
        yield Cluster(backend, api_client, fake, "default", "registry.example:5000/actors/test:0.0.1", timeout=10)
    finally:
        backend.close()
        api_client.close()
        fake.stop()
    assert not [t for t in threading.enumerate() if t.name == "fake-kubernetes"]


# -- names, labels, timestamps, states from hand-made fixtures -----------------------------------------


def test_job_names_are_dns_labels_unique_per_case_and_deterministic():
    a = job_name("jupyter-actors-0a1b2c3d4e5f-AbCdEfGhIjKlMnOpQ")
    b = job_name("jupyter-actors-0a1b2c3d4e5f-abcdefghijklmnopq")
    assert a != b
    assert a == job_name("jupyter-actors-0a1b2c3d4e5f-AbCdEfGhIjKlMnOpQ")
    long = job_name("jupyter-actors-0a1b2c3d4e5f-AbCdEfGhIjKlMnOpQ-r12-and-a-very-long-tail-" + "x" * 80)
    for name in (a, b, long, job_name("___"), job_name("Run_1.2")):
        assert len(name) <= 63
        assert name == name.lower()
        assert name[0].isalnum() and name[-1].isalnum()
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")


def test_labels_that_cannot_be_label_values_become_annotations():
    labels, annotations = split_labels({"a.b": "Run1", "jupyter-actors.timeout-at": "2024-01-02T03:04:05.000Z",
                                        "empty": "", "long": "x" * 64})
    assert labels == {"a.b": "Run1"}
    assert annotations["jupyter-actors.timeout-at"] == "2024-01-02T03:04:05.000Z"
    assert annotations["empty"] == "" and annotations["long"] == "x" * 64


def test_log_timestamps_with_nanoseconds_offsets_or_no_fraction():
    assert timestamp_ns("2024-01-02T03:04:05.123456789Z") == 1704164645_123456789
    assert timestamp_ns("2024-01-02T03:04:05.5Z") == 1704164645_500000000
    assert timestamp_ns("2024-01-02T03:04:05Z") == 1704164645_000000000
    assert timestamp_ns("2024-01-02T05:04:05.123456789+02:00") == 1704164645_123456789


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def test_state_of_a_running_job_from_the_documented_shapes():
    state = job_state(fixture("job-running.json"), [fixture("pod-running.json")])
    assert state.running and state.status == "running"
    assert (state.web_host, state.host_port) == ("10.244.1.5", 4321)
    assert state.name == "jupyter-actors-0a1b2c3d4e5f-AbCdEfGhIjKlMnOpQ"
    assert state.labels == {"jupyter-actors.instance": "0a1b2c3d4e5f", "jupyter-actors.run-id": "AbCdEfGhIjKlMnOpQ",
                            "jupyter-actors.timeout-at": "2024-05-06T08:08:09.000Z"}
    assert state.started_at == dt.datetime(2024, 5, 6, 7, 8, 11, tzinfo=dt.timezone.utc)
    assert state.exit_code is None and state.error is None and state.lost is None


def test_a_job_failed_by_a_disruption_it_did_not_absorb_is_lost():
    state = job_state(fixture("job-failed-backofflimit.json"), [fixture("pod-disrupted.json")])
    assert not state.running and state.status == "failed" and state.exit_code == 143
    assert state.disruptions == 1
    assert state.lost and "EvictionByEvictionAPI" in state.lost
    assert not state.deadline_exceeded


def test_an_eviction_for_ephemeral_storage_is_a_disk_error_not_a_loss():
    state = job_state(fixture("job-failed-backofflimit.json"), [fixture("pod-evicted-ephemeral-storage.json")])
    assert state.lost is None
    assert state.error and "disk limit" in state.error and "256Mi" in state.error


def test_an_image_that_cannot_be_pulled_is_reported():
    state = job_state(fixture("job-running.json"), [fixture("pod-image-pull-backoff.json")])
    assert state.running and state.status == "pending"
    assert "ImagePullBackOff" in state.error and "missing:0.0.1" in state.error


# -- configuration -----------------------------------------------------------------------------------


def test_no_cluster_configured_is_engine_unavailable(monkeypatch, tmp_path):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    with pytest.raises(EngineUnavailable, match="KUBECONFIG") as caught:
        KubernetesBackend(kubeconfig=str(tmp_path / "missing-kubeconfig"))
    assert "missing-kubeconfig" in caught.value.message
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "also-missing"))
    with pytest.raises(EngineUnavailable, match="also-missing"):
        KubernetesBackend()


def test_an_api_that_does_not_answer_is_engine_unavailable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    api_client = kubernetes.client.ApiClient(kubernetes.client.Configuration(host=f"http://127.0.0.1:{port}"))
    try:
        with pytest.raises(EngineUnavailable, match="does not answer"):
            KubernetesBackend(api_client=api_client)
    finally:
        api_client.close()


@fake_only
def test_a_kubeconfig_file_is_loaded(cluster, tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: fake, cluster: {{server: "{cluster.fake.url}"}}}}]
users: [{{name: tester, user: {{token: not-checked-by-the-fake}}}}]
contexts: [{{name: fake, context: {{cluster: fake, user: tester, namespace: default}}}}]
current-context: fake
""")
    backend = KubernetesBackend(kubeconfig=str(path), context="fake")
    try:
        assert backend.list({LABEL_INSTANCE: cluster.instance}) == []
        requests = cluster.fake.requests_to("GET", r"/apis/batch/v1/namespaces/default/jobs$")
        assert any(r["query"].get("limit") == "1" for r in requests)  # the ping
        assert requests[-1]["authorization"] == "Bearer not-checked-by-the-fake"
    finally:
        backend.close()


def test_images_are_built_by_the_image_backend_or_assumed_present(cluster):
    assert cluster.backend.image_exists("anything:1") is True
    assert cluster.backend.image_id("anything:1") == "anything:1"
    with pytest.raises(EngineUnavailable, match="Docker"):
        cluster.backend.build_image("/tmp", "t:1", "Dockerfile", 256, {}, {}, lambda line: None)
    with pytest.raises(EngineUnavailable):
        cluster.backend.push_image("t:1", "registry.example:5000/t:1")
    images = StubImages()
    backend = KubernetesBackend(cluster.namespace, api_client=cluster.api_client, images=images)
    assert backend.build_image("/ctx", "t:1", "Dockerfile", 256, {"A": "1"}, {}, lambda line: None) == "sha256:built"
    assert backend.push_image("t:1", "registry.example:5000/t:1") == "registry.example:5000/t:1"
    assert backend.image_exists("missing:1") is False
    assert images.calls == [("build", "t:1"), ("push", "t:1"), ("exists", "missing:1")]
    assert backend.disk_usage("x") == 0 and backend.disk_quota_supported("x") is True
    assert backend.memory_usage("x") is None and backend.cpu_usage_ns("x") is None
    assert not backend.has_network and backend.network_gateway("jupyter-actors") is None


# -- the Job ---------------------------------------------------------------------------------------------


@fake_only
def test_the_job_sent_is_a_suspended_guarded_job_with_equal_limits(cluster):
    spec = cluster.spec("echo:1", timeout_secs=600, memory_mb=1024, publish_port=4321)
    job = cluster.backend.create(spec)
    [body] = cluster.fake.created()
    assert body["apiVersion"] == "batch/v1" and body["kind"] == "Job"
    assert body["metadata"]["name"] == job == job_name(spec.name)
    assert body["metadata"]["namespace"] == "default"
    job_spec = body["spec"]
    assert job_spec["suspend"] is True
    assert job_spec["backoffLimit"] == 0
    assert "ttlSecondsAfterFinished" not in job_spec
    assert job_spec["podFailurePolicy"] == {"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {"action": "FailJob", "onExitCodes": {"containerName": "actor", "operator": "NotIn", "values": [0]}},
    ]}
    assert 600 + 60 - 3 <= job_spec["activeDeadlineSeconds"] <= 600 + 60 + 1
    pod = job_spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    [container] = pod["containers"]
    assert container["image"] == cluster.image
    assert {"name": "FAKE_SCENARIO", "value": "echo:1"} in container["env"]
    assert {"name": "GREETING", "value": "hello world"} in container["env"]
    resources = container["resources"]
    assert resources["limits"] == resources["requests"] == {
        "cpu": "250m", "memory": "1024Mi", "ephemeral-storage": "2048Mi"}  # 1024 MB: 1/4 core, 2 x disk
    assert container["securityContext"] == {
        "runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": True, "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["ports"] == [{"name": "web", "containerPort": 4321, "protocol": "TCP"}]
    assert "args" not in container and "command" not in container
    # Labels select (pods too); what cannot be a label value is an annotation.
    valid = {k: v for k, v in spec.labels.items() if k != LABEL_TIMEOUT_AT}
    assert body["metadata"]["labels"] == valid == body["spec"]["template"]["metadata"]["labels"]
    assert body["metadata"]["annotations"][LABEL_TIMEOUT_AT] == spec.labels[LABEL_TIMEOUT_AT]
    # start() resumes it with a merge patch.
    cluster.backend.start(job)
    [patch] = cluster.fake.requests_to("PATCH", job)
    assert patch["body"] == {"spec": {"suspend": False}}
    assert patch["content_type"] == "application/merge-patch+json"


@fake_only
def test_shares_mode_requests_cpu_without_a_cap_and_no_timeout_means_no_deadline(cluster):
    cluster.backend.create(cluster.spec("echo:1", memory_mb=4096, cpu_mode="shares"))
    [body] = cluster.fake.created()
    resources = body["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"] == {"cpu": "1000m", "memory": "4096Mi", "ephemeral-storage": "8192Mi"}
    assert resources["limits"] == {"memory": "4096Mi", "ephemeral-storage": "8192Mi"}
    assert "activeDeadlineSeconds" not in body["spec"]


@fake_only
def test_the_fake_refuses_what_the_api_server_refuses(cluster):
    body = cluster.backend.job_body(cluster.spec("echo:1"))
    body["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    body["metadata"]["labels"]["bad"] = "2024-01-02T03:04:05Z"
    with pytest.raises(kubernetes.client.exceptions.ApiException) as caught:
        cluster.backend._call(cluster.backend.batch.create_namespaced_job, "default", body)
    assert caught.value.status == 422
    status = json.loads(caught.value.body)
    assert status["kind"] == "Status" and status["reason"] == "Invalid"
    fields = {cause["field"] for cause in status["details"]["causes"]}
    assert {"spec.template.spec.restartPolicy", "metadata.labels"} <= fields


def test_creating_twice_adopts_the_existing_job(cluster):
    spec = cluster.spec("echo:1")
    first = cluster.backend.create(spec)
    assert cluster.backend.create(spec) == first
    assert [state.id for state in cluster.backend.list({LABEL_RUN: spec.labels[LABEL_RUN]})] == [first]
    if cluster.fake:
        assert len(cluster.fake.created()) == 2
        assert len(cluster.fake.jobs) == 1


def test_labels_round_trip_through_annotations(cluster):
    spec = cluster.spec("echo:1", timeout_secs=900, labels={"jupyter-actors.note": ""})
    job = cluster.backend.create(spec)
    assert cluster.backend.inspect(job).labels == spec.labels
    [state] = cluster.backend.list({LABEL_INSTANCE: cluster.instance, LABEL_TIMEOUT_AT: spec.labels[LABEL_TIMEOUT_AT]})
    assert state.id == job and state.labels == spec.labels
    assert cluster.backend.list({LABEL_INSTANCE: cluster.instance, LABEL_TIMEOUT_AT: "2000-01-01T00:00:00.000Z"}) == []
    stored = cluster.backend._get_job(job)["metadata"]
    assert LABEL_TIMEOUT_AT not in stored["labels"] and "jupyter-actors.note" not in stored["labels"]
    assert stored["annotations"][LABEL_TIMEOUT_AT] == spec.labels[LABEL_TIMEOUT_AT]
    assert stored["annotations"]["jupyter-actors.note"] == ""


def test_list_selects_by_labels(cluster):
    done_job, done_spec = cluster.started("echo:1")
    created_spec = cluster.spec("echo:1")
    created_job = cluster.backend.create(created_spec)
    other_job = cluster.backend.create(cluster.spec("echo:1", instance=secrets.token_hex(6)))
    cluster.wait(done_job)
    states = {state.id: state for state in cluster.backend.list({LABEL_INSTANCE: cluster.instance})}
    assert set(states) == {done_job, created_job}
    assert other_job not in states
    assert (states[done_job].running, states[done_job].exit_code, states[done_job].status) == (False, 0, "succeeded")
    assert (states[created_job].running, states[created_job].status) == (False, "created")
    assert states[created_job].labels == created_spec.labels and states[done_job].labels == done_spec.labels
    only = cluster.backend.list({LABEL_INSTANCE: cluster.instance, LABEL_RUN: created_spec.labels[LABEL_RUN]})
    assert [state.id for state in only] == [created_job]


# -- runs ---------------------------------------------------------------------------------------------


def test_a_run_succeeds_with_its_log_in_order(cluster):
    spec = cluster.spec("echo:3", timeout_secs=600)
    job = cluster.backend.create(spec)
    state = cluster.backend.inspect(job)
    assert (state.id, state.name, state.running, state.status) == (job, spec.name, False, "created")
    cluster.backend.start(job)
    lines = joined(in_thread(lambda: list(cluster.backend.logs(job, None, True))), cluster.timeout)
    assert texts(lines) == ["line 1", "line 2", "line 3"]
    stamps = [line.ts_ns for line in lines]
    assert all(type(ts) is int for ts in stamps)
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
    assert abs(stamps[0] / 1e9 - time.time()) < 600
    cluster.wait(job)
    state = cluster.backend.inspect(job)
    assert (state.running, state.exit_code, state.status, state.oom_killed) == (False, 0, "succeeded", False)
    assert not state.deadline_exceeded and state.disruptions == 0 and state.lost is None and state.error is None
    assert state.created_at and state.started_at and state.finished_at and state.finished_at >= state.started_at
    assert state.labels == spec.labels
    cluster.backend.remove(job)
    wait_for(lambda: cluster.backend.inspect(job) is None, cluster.timeout, "the Job to be gone")
    if cluster.fake:
        [delete] = cluster.fake.requests_to("DELETE", job)
        assert delete["query"]["propagationPolicy"] == "Background"


def test_since_ns_is_inclusive_and_drops_older_lines(cluster):
    job, _ = cluster.started("echo:5")
    cluster.wait(job)
    everything = list(cluster.backend.logs(job, None, False))
    assert texts(everything) == [f"line {n}" for n in range(1, 6)]
    assert list(cluster.backend.logs(job, everything[2].ts_ns, False)) == everything[2:]
    assert list(cluster.backend.logs(job, everything[-1].ts_ns + 1, False)) == []


def test_reopening_the_log_into_the_run_log_loses_and_repeats_nothing(cluster, tmp_path):
    job, _ = cluster.started("burst:6")
    path = tmp_path / "run.log"
    runlog = RunLog(path)
    stream = cluster.backend.logs(job, None, True)
    for number, line in enumerate(stream, 1):
        runlog.append([line])
        if number == 2:
            break
    stream.close()
    # Reopened in the same process: from the exact instant of the last stored line, inclusive.
    since = runlog.resume()
    again = cluster.backend.logs(job, since, True)
    for number, line in enumerate(again, 1):
        if number == 1:
            assert (line.ts_ns, line.text) == (since, "burst 2")
        runlog.append([line])
        if number == 3:
            break
    again.close()
    runlog.close()
    # Reopened by a restarted server: from the stored millisecond (the run log's precision).
    runlog = RunLog(path)
    since = runlog.resume()
    rest = cluster.backend.logs(job, since, True)
    delivered = joined(in_thread(lambda: list(rest)), cluster.timeout)
    runlog.append(delivered)
    runlog.close()
    assert run_log_texts(path.read_bytes()) == [f"burst {n}" for n in range(1, 7)]
    if cluster.fake:  # all six share one millisecond: the re-read from its start repeats the first four
        assert texts(delivered) == [f"burst {n}" for n in range(1, 7)]


def test_a_non_zero_exit_fails_the_job(cluster):
    job, _ = cluster.started("exit:3")
    cluster.wait(job)
    state = cluster.backend.inspect(job)
    assert (state.running, state.exit_code, state.status, state.oom_killed) == (False, 3, "failed", False)
    assert texts(cluster.backend.logs(job, None, False)) == ["failing with exit code 3"]
    if cluster.fake:
        failed = [c for c in cluster.fake.job(job)["status"]["conditions"] if c["type"] == "Failed"]
        assert failed[0]["reason"] == "PodFailurePolicy"


@fake_only
def test_an_oom_kill_is_reported(cluster):
    job, _ = cluster.started("oom")
    cluster.wait(job)
    state = cluster.backend.inspect(job)
    assert (state.running, state.exit_code, state.oom_killed, state.status) == (False, 137, True, "failed")


@fake_only
def test_the_deadline_is_reported(cluster):
    job, _ = cluster.started("deadline", timeout_secs=600)
    lines = joined(in_thread(lambda: list(cluster.backend.logs(job, None, True))), cluster.timeout)
    assert texts(lines) == ["working"]
    cluster.wait(job)
    state = cluster.backend.inspect(job)
    assert state.deadline_exceeded and not state.running and state.status == "failed"


@fake_only
def test_a_drained_node_replaces_the_pod_and_the_log_continues(cluster):
    job, _ = cluster.started("disrupt")
    lines = joined(in_thread(lambda: list(cluster.backend.logs(job, None, True))), cluster.timeout)
    assert texts(lines) == ["pod 1: started", "pod 1: working", "pod 2: resumed", "pod 2: done"]
    cluster.wait(job)
    state = cluster.backend.inspect(job)
    assert (state.running, state.exit_code, state.status, state.disruptions) == (False, 0, "succeeded", 1)
    assert state.lost is None
    assert len(cluster.fake.pods_of(job)) == 2
    # Read again later: both pods' lines, once each, and nothing before `since`.
    assert list(cluster.backend.logs(job, None, False)) == lines
    assert list(cluster.backend.logs(job, lines[2].ts_ns, False)) == lines[2:]


@pytest.mark.parametrize("grace", [3, 0])
def test_stop_deletes_the_job_and_ends_wait(cluster, grace):
    job, _ = cluster.started("sleep", publish_port=4321)
    state = wait_for(lambda: (s := cluster.backend.inspect(job)) and s.status == "running" and s,
                     cluster.timeout, "the pod to run")
    assert state.running and state.web_host and state.host_port == 4321
    waiter = in_thread(cluster.backend.wait, job)
    if grace:
        cluster.backend.stop(job, grace)
    else:
        cluster.backend.kill(job)
    joined(waiter, cluster.timeout)
    wait_for(lambda: cluster.backend.inspect(job) is None, cluster.timeout, "the Job to be gone")
    if cluster.fake:
        [job_delete] = cluster.fake.requests_to("DELETE", f"/jobs/{job}$")
        assert job_delete["query"]["propagationPolicy"] == "Background"
        pod_deletes = cluster.fake.requests_to("DELETE", "/pods/")
        assert [r["query"]["gracePeriodSeconds"] for r in pod_deletes] == [str(grace)]
        wait_for(lambda: not cluster.fake.pods_of(job), cluster.timeout, "the pod to be gone")


@fake_only
@pytest.mark.parametrize("how", ["event", "http"])
def test_wait_relists_after_410_gone(cluster, how):
    job, _ = cluster.started("echo:25")
    cluster.fake.expire_next_watch(how)
    cluster.wait(job)
    state = cluster.backend.inspect(job)
    assert (state.running, state.exit_code) == (False, 0)
    queries = [r["query"] for r in cluster.fake.requests_to("GET", r"/jobs$")
               if r["query"].get("fieldSelector") == f"metadata.name={job}"]
    watches = [q for q in queries if q.get("watch") in ("true", "True")]
    lists = [q for q in queries if "watch" not in q]
    assert len(watches) >= 2 and len(lists) >= 2  # watched, got 410, listed again, watched again
    assert all(q.get("resourceVersion") for q in watches)


def test_close_unblocks_a_following_reader(cluster):
    job, _ = cluster.started("sleep")
    stream = cluster.backend.logs(job, None, True)
    first = threading.Event()
    got = []

    def read() -> None:
        for line in stream:
            got.append(line)
            first.set()

    reader = in_thread(read)
    assert first.wait(cluster.timeout), "no line came"
    began = time.monotonic()
    stream.close()
    joined(reader, 5)
    assert time.monotonic() - began < 2
    assert texts(got) == ["sleeping"]
    cluster.backend.kill(job)


def test_closing_the_backend_unblocks_wait(cluster):
    job, _ = cluster.started("sleep")
    backend = KubernetesBackend(cluster.namespace, api_client=cluster.api_client)
    waiter = in_thread(backend.wait, job)
    watch = f"metadata.name={job}"
    if cluster.fake:
        wait_for(lambda: any(r["query"].get("fieldSelector") == watch and r["query"].get("watch")
                             for r in cluster.fake.requests_to("GET", r"/jobs$")), cluster.timeout, "the watch")
    began = time.monotonic()
    backend.close()
    joined(waiter, 5)
    assert time.monotonic() - began < 2
    assert cluster.backend.inspect(job).running  # the Job itself runs on
    cluster.backend.kill(job)


@fake_only
def test_close_unblocks_a_reader_waiting_for_the_pod_to_start(cluster):
    job, _ = cluster.started("pending")
    wait_for(lambda: "ImagePullBackOff" in (cluster.backend.inspect(job).error or ""), cluster.timeout,
             "the image pull to fail")
    stream = cluster.backend.logs(job, None, True)
    polls = len(cluster.fake.requests_to("GET", "/pods$"))
    reader = in_thread(lambda: list(stream))
    wait_for(lambda: len(cluster.fake.requests_to("GET", "/pods$")) >= polls + 3, cluster.timeout, "the reader to poll")
    assert reader[0].is_alive()
    stream.close()
    assert joined(reader, 5) == []
    assert cluster.backend.inspect(job).running  # a reader gives up on an image pull only after a grace period


@fake_only
def test_a_pod_that_cannot_start_ends_its_log_and_state_and_reading_changes_nothing(cluster):
    """The reader stops following a pod that will never start, ``inspect`` says why and ``wait`` returns;
    none of them writes to the cluster (the run's watcher then fails the run and removes its Job)."""
    cluster.backend.image_pull_grace_secs = 0
    job, _ = cluster.started("pending")

    def writes() -> list[dict]:
        return [r for method in ("POST", "PUT", "PATCH", "DELETE") for r in cluster.fake.requests_to(method, "")]

    made = len(writes())  # the Job's create and start
    assert joined(in_thread(lambda: list(cluster.backend.logs(job, None, True))), cluster.timeout) == []
    state = cluster.backend.inspect(job)
    assert not state.running and state.exit_code is None
    assert state.error and "ImagePullBackOff" in state.error
    cluster.wait(job)
    assert len(writes()) == made, "reading a log or a state changed the cluster"
    assert [p["metadata"]["name"] for p in cluster.fake.pods_of(job)], "the pod was deleted"
    cluster.backend.remove(job)


# -- the platform on the Kubernetes backend ----------------------------------------------------------------


class StubImages:
    """Stands in for the local Docker engine that builds images (no Docker in these tests)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def build_image(self, context_dir, tag, dockerfile, memory_mb, buildargs, labels, on_log, network=True) -> str:
        self.calls.append(("build", tag))
        on_log(f"(stub) built {tag}")
        return "sha256:built"

    def push_image(self, image: str, repository: str) -> str:
        self.calls.append(("push", image))
        return repository

    def image_exists(self, image: str) -> bool:
        self.calls.append(("exists", image))
        return image.startswith(("jupyter-actors", "registry"))

    def image_id(self, image: str) -> str:
        return f"sha256:{image}"

    def remove_image(self, image: str) -> None:
        self.calls.append(("remove", image))


@pytest.fixture
def k8s_platform(cluster, tmp_path):
    """Platforms on the fake cluster, sharing one data dir; closed afterwards."""
    from jupyter_actors.platform.core import Platform

    backend = KubernetesBackend(api_client=cluster.api_client, images=StubImages())
    backend.poll_interval_secs = 0.02
    made = []

    def make() -> Platform:
        platform = Platform(PlatformConfig(data_dir=tmp_path / "data", backend="kubernetes", stop_grace_secs=1,
                                           memory_limit_mb=8192), backend=backend)
        made.append(platform)
        return platform

    yield make
    for platform in made:
        platform.close()
    backend.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("run-") and t.is_alive()]


def define(platform, name: str, scenario: str) -> None:
    from jupyter_actors.platform.sources import inline_actor

    platform.create_actor(inline_actor(name, "print('hello')\n",
                                       env_vars=[{"name": "FAKE_SCENARIO", "value": scenario}]))
    build = platform.build(name)
    assert build["status"] == "SUCCEEDED", platform.build_log(build["id"]).decode()


@fake_only
def test_platform_runs_succeed_on_kubernetes(cluster, k8s_platform):
    platform = k8s_platform()
    define(platform, "k8s-hello", "echo:3")
    statuses: list[str] = []
    platform.subscribe(lambda run: statuses.append(run["status"]) if statuses[-1:] != [run["status"]] else None)
    run = platform.start_run("k8s-hello", memory_mb=256, timeout_secs=60)
    done = platform.wait_run(run["id"], timeout=30)
    assert done["status"] == "SUCCEEDED", done["status_message"]
    assert statuses[:3] == ["READY", "RUNNING", "SUCCEEDED"]
    assert done["exit_code"] == 0
    assert run_log_texts(platform.run_log(run["id"])) == ["line 1", "line 2", "line 3"]
    [body] = cluster.fake.created()
    env = {e["name"]: e["value"] for e in body["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ACTOR_RUN_ID"] == run["id"] and env["ACTOR_MEMORY_MBYTES"] == "256"
    assert body["metadata"]["labels"][LABEL_RUN] == run["id"]
    image = platform.get_build(done["build_id"])["image"]
    assert image.endswith("/k8s-hello:0.0.1") and body["spec"]["template"]["spec"]["containers"][0]["image"] == image
    wait_for(lambda: cluster.fake.job(done["container_id"]) is None, 10, "the finished Job to be removed")


@fake_only
def test_platform_run_survives_a_node_drain(cluster, k8s_platform):
    platform = k8s_platform()
    define(platform, "k8s-drained", "disrupt")
    run = platform.start_run("k8s-drained", memory_mb=256, timeout_secs=60)
    done = platform.wait_run(run["id"], timeout=30)
    assert done["status"] == "SUCCEEDED", done["status_message"]
    assert run_log_texts(platform.run_log(run["id"])) == [
        "pod 1: started", "pod 1: working", "pod 2: resumed", "pod 2: done"]


@fake_only
def test_platform_failures_and_unstartable_pods(cluster, k8s_platform):
    platform = k8s_platform()
    platform.backend.image_pull_grace_secs = 0
    define(platform, "k8s-fails", "exit:3")
    define(platform, "k8s-oom", "oom")
    define(platform, "k8s-no-image", "pending")
    runs = {name: platform.start_run(name, memory_mb=128, timeout_secs=60)["id"]
            for name in ("k8s-fails", "k8s-oom", "k8s-no-image")}
    failed = platform.wait_run(runs["k8s-fails"], timeout=30)
    assert (failed["status"], failed["exit_code"]) == ("FAILED", 3)
    assert "exited with code 3" in failed["status_message"]
    oom = platform.wait_run(runs["k8s-oom"], timeout=30)
    assert oom["status"] == "FAILED" and "memory limit of 128 MB" in oom["status_message"]
    unstartable = platform.wait_run(runs["k8s-no-image"], timeout=30)
    assert unstartable["status"] == "FAILED" and "ImagePullBackOff" in unstartable["status_message"]


@fake_only
def test_platform_run_past_its_deadline_times_out(cluster, k8s_platform):
    platform = k8s_platform()
    define(platform, "k8s-deadline", "deadline")
    run = platform.start_run("k8s-deadline", memory_mb=128, timeout_secs=60)
    container = wait_for(lambda: platform.get_run(run["id"])["container_id"], 10, "the Job")
    wait_for(lambda: cluster.fake.job(container) is None, 10, "the watcher to finish and remove the Job")
    done = platform.get_run(run["id"])
    assert done["status"] == "TIMED-OUT", done["status"]


@fake_only
def test_a_restarted_server_adopts_the_running_job_by_label(cluster, k8s_platform):
    first = k8s_platform()
    define(first, "k8s-long", "echo:40")
    run = first.start_run("k8s-long", memory_mb=128, timeout_secs=60)
    wait_for(lambda: first.run_log(run["id"]).count(b"\n") >= 2, 10, "some lines stored")
    first.close()  # the server goes away; the Job runs on
    second = k8s_platform()
    report = second.reconcile()
    assert run["id"] in report.adopted + report.finished
    done = second.wait_run(run["id"], timeout=30)
    assert done["status"] == "SUCCEEDED", done["status_message"]
    assert run_log_texts(second.run_log(run["id"])) == [f"line {n}" for n in range(1, 41)]


@fake_only
def test_pods_get_the_configured_actor_api_address_and_a_clear_error_without_one(cluster, k8s_platform):
    from jupyter_actors.api.actor_server import ActorApiServer, LoopThread
    from jupyter_actors.platform.errors import InvalidInput

    platform = k8s_platform()
    with pytest.raises(InvalidInput, match="actor_api_host"):
        platform.network_gateway()  # nothing to listen on by default: the operator must say where
    loop = LoopThread()
    server = ActorApiServer(platform, "127.0.0.1", advertise_url="http://actors-api.jupyter.svc:8765/")
    try:
        loop.call(server.start, loop.loop)
        define(platform, "k8s-api-address", "echo:1")
        run = platform.wait_run(platform.start_run("k8s-api-address", memory_mb=1024)["id"], timeout=30)
        assert run["status"] == "SUCCEEDED"
        [body] = cluster.fake.created()
        env = {item["name"]: item.get("value") for item in body["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["APIFY_API_BASE_URL"] == "http://actors-api.jupyter.svc:8765"
        assert env["ACTOR_EVENTS_WEBSOCKET_URL"].startswith(
            f"ws://actors-api.jupyter.svc:8765/v2/actor-runs/{run['id']}/events?token=")
    finally:
        loop.call(server.stop)
        loop.stop()
