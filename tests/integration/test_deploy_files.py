"""The deployment files parse and say what docs/deploy.md promises.

Given docker-compose.yml, deploy/kubernetes/*.yaml and deploy/systemd/*.service,
when they are read the way their tools read them (`docker-compose config` where the
binary exists, else PyYAML; `kubectl kustomize` where kubectl exists; an INI reader and,
where present, `systemd-analyze verify` for syntax only),
then each has the services, fields and settings the fleet relies on: Redis with AOF on
a volume and a password from the env file, scalable workers that shut down softly within
their grace period, Flower behind basic auth, a shared workspace everywhere.
"""

from __future__ import annotations

import configparser
import fnmatch
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
K8S = ROOT / "deploy" / "kubernetes"
SYSTEMD = ROOT / "deploy" / "systemd"
SOFT_SHUTDOWN = re.compile(r"worker\.soft_shutdown_timeout=(\d+(?:\.\d+)?)")
DESIGN_VARS = (
    "YAML_WORKFLOW_BROKER_URL",
    "YAML_WORKFLOW_STATE_URL",
    "YAML_WORKFLOW_KEY_PREFIX",
    "YAML_WORKFLOW_WORKSPACE_ROOT",
    "YAML_WORKFLOW_VISIBILITY_TIMEOUT",
    "YAML_WORKFLOW_STEP_TIMEOUT",
)


def _env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def _seconds(value: Any) -> float:
    """A compose duration ('90s', '1m30s', 90) in seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|us|s|m|h)", str(value)):
        total += float(number) * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def _command(value: Any) -> str:
    return " ".join(value) if isinstance(value, list) else str(value)


# --- docker compose -------------------------------------------------------------------


def _compose_project(tmp_path: Path) -> Path:
    """A copy of the project's compose file with an .env made from deploy/env.example."""
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env")
    (tmp_path / "examples").mkdir()
    return tmp_path


def _compose_binary() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    return None


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The compose model: `docker-compose config` where it exists, else the raw YAML."""
    project = _compose_project(tmp_path_factory.mktemp("compose"))
    binary = _compose_binary()
    if binary is None:
        model = yaml.safe_load(COMPOSE.read_text())
        model["_resolved"] = False
        return model
    out = subprocess.run(
        [*binary, "--profile", "tools", "config"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, f"compose config failed: {out.stderr}"
    model = yaml.safe_load(out.stdout)
    model["_resolved"] = True
    return model


def test_compose_file_is_valid_for_the_compose_tool(tmp_path: Path) -> None:
    binary = _compose_binary()
    if binary is None:
        pytest.skip("no docker-compose here; the YAML-level tests below still run")
    project = _compose_project(tmp_path)
    out = subprocess.run(
        [*binary, "config", "-q"], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr


def test_compose_refuses_to_start_without_the_redis_password(tmp_path: Path) -> None:
    binary = _compose_binary()
    if binary is None:
        pytest.skip("no docker-compose here")
    project = _compose_project(tmp_path)
    env = _env_file(project / ".env")
    del env["REDIS_PASSWORD"]
    (project / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    out = subprocess.run(
        [*binary, "config", "-q"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "REDIS_PASSWORD"},
    )
    assert out.returncode != 0
    assert "REDIS_PASSWORD" in out.stderr


def test_compose_has_redis_workers_flower_and_submit(compose: dict[str, Any]) -> None:
    assert {"redis", "worker", "beat", "flower", "submit"} <= set(compose["services"])


BEAT_SCHEDULER = "--scheduler=yaml_workflow.executors.celery.beat:ScheduleBeat"


def test_compose_beat_runs_our_scheduler_without_workspace_or_secrets(compose: dict[str, Any]) -> None:
    beat = compose["services"]["beat"]
    command = _command(beat["command"])
    assert "workers.app" in command and " beat" in command and BEAT_SCHEDULER in command
    # It enqueues ticks only: no workspace volume, no published port, Redis healthy first.
    assert not beat.get("volumes") and not beat.get("ports")
    assert "redis" in beat["depends_on"]
    assert "YAML_WORKFLOW_BROKER_URL" in beat["environment"]
    # SIGTERM gives the lock back; Docker waits long enough for that.
    assert _seconds(beat["stop_grace_period"]) >= 5


def test_compose_redis_keeps_an_aof_on_a_volume_with_a_password_from_env(
    compose: dict[str, Any],
) -> None:
    redis = compose["services"]["redis"]
    command = _command(redis["command"])
    assert "--appendonly yes" in command
    assert "--requirepass" in command and "REDIS_PASSWORD" in command
    assert "noeviction" in command
    assert any(
        str(v).split(":")[0] == "redis-data" and ":/data" in str(v) for v in redis["volumes"]
    )
    assert "redis-data" in compose["volumes"]
    assert redis["healthcheck"]["test"]


def test_compose_has_no_secret_written_in_it() -> None:
    text = COMPOSE.read_text()
    assert "change-me" not in text
    assert re.search(r"requirepass\s+['\"]?[A-Za-z0-9]", text) is None
    for password in re.findall(r"redis://:([^@]*)@", text):
        assert password.startswith("${"), password


def test_compose_services_read_the_env_file(compose: dict[str, Any]) -> None:
    env = _env_file(ENV_EXAMPLE)
    assert "REDIS_PASSWORD" in env and "FLOWER_BASIC_AUTH" in env
    for name in ("redis", "worker", "flower", "submit"):
        service = compose["services"][name]
        if compose["_resolved"]:
            # config has merged the env file into `environment`
            assert service["environment"]["REDIS_PASSWORD"] == env["REDIS_PASSWORD"], name
        else:
            assert service.get("env_file") in (".env", [".env"]), name


def test_compose_workers_and_submit_share_the_workspace_volume(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("worker", "submit"):
        volumes = [str(v) for v in services[name]["volumes"]]
        assert any(v.startswith("workspaces:/data/runs") for v in volumes), (name, volumes)
        environment = services[name]["environment"]
        assert environment["YAML_WORKFLOW_WORKSPACE_ROOT"] == "/data/runs"
        for var in ("YAML_WORKFLOW_BROKER_URL", "YAML_WORKFLOW_STATE_URL"):
            assert "@redis:6379" in environment[var], (name, var)
    assert "workspaces" in compose["volumes"]


def test_compose_configures_everything_by_the_design_variables(compose: dict[str, Any]) -> None:
    env = _env_file(ENV_EXAMPLE)
    for var in DESIGN_VARS:
        assert var in env or var in compose["services"]["worker"]["environment"], var


def test_compose_workers_scale_and_stop_softly(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker  # --scale worker=N works
    command = _command(worker["command"])
    assert "workers.app" in command and " worker" in command and "-E" in command
    soft = SOFT_SHUTDOWN.search(command)
    assert soft, command
    assert _seconds(worker["stop_grace_period"]) > float(soft.group(1))
    assert "ping" in _command(worker["healthcheck"]["test"])
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"


def test_compose_flower_is_published_behind_basic_auth(compose: dict[str, Any]) -> None:
    flower = compose["services"]["flower"]
    assert "flower" in _command(flower["command"])
    ports = flower["ports"]
    assert ports
    published = ports[0]
    if isinstance(published, dict):
        assert published["target"] == 5555 and published.get("published")
    else:
        assert str(published).split("/")[0].endswith(":5555")
    if compose["_resolved"]:
        assert ":" in flower["environment"]["FLOWER_BASIC_AUTH"]
    assert "healthcheck" in _command(flower["healthcheck"]["test"])


def test_compose_submit_is_a_one_shot_outside_up(compose: dict[str, Any]) -> None:
    submit = compose["services"]["submit"]
    assert submit["profiles"] == ["tools"]
    command = _command(submit["command"])
    assert command.startswith("yaml-workflow submit") and "--wait" in command
    assert submit.get("restart") in ("no", None)


def test_env_example_documents_every_setting() -> None:
    text = ENV_EXAMPLE.read_text()
    env = _env_file(ENV_EXAMPLE)
    for key in env:
        # Flower refuses FLOWER_* variables that are not its options.
        assert not key.startswith("FLOWER_") or key in ("FLOWER_BASIC_AUTH",), key
    assert text.count("#") > len(env)  # a comment per setting, at least


# --- the image --------------------------------------------------------------------------


def _dockerignored(path: str) -> bool:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return any(
        fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(path.split("/")[0], pat) for pat in patterns
    )


def test_dockerfile_copies_sources_that_exist_and_reach_the_build() -> None:
    """No engine here to build it: check what the build would read."""
    text = (ROOT / "Dockerfile").read_text()
    sources = []
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not _dockerignored(source.rstrip("/")), source
    assert _dockerignored(".env")  # secrets never reach the build context


def test_dockerfile_runs_unprivileged_with_an_init_and_no_secret() -> None:
    text = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r'^ENTRYPOINT \["tini", "--"\]', text, re.M)
    assert "'.[fleet]'" in text  # celery, redis and flower in the image
    assert not re.search(r"PASSWORD|BASIC_AUTH|redis://:", text)


# --- Kubernetes -----------------------------------------------------------------------


def _k8s_documents() -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path, doc))
    return docs


def _k8s(kind: str, name: str) -> dict[str, Any]:
    for _, doc in _k8s_documents():
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind} {name} in deploy/kubernetes")


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    containers = doc["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_every_kubernetes_manifest_parses_and_names_itself() -> None:
    docs = _k8s_documents()
    assert len(docs) >= 8
    for path, doc in docs:
        assert isinstance(doc, dict), path
        for field in ("apiVersion", "kind"):
            assert doc.get(field), (path, field)
        assert doc.get("metadata", {}).get("name"), path


def test_kubernetes_has_the_required_kinds() -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in _k8s_documents()}
    for expected in [
        ("StatefulSet", "redis"),
        ("Service", "redis"),
        ("Deployment", "yaml-workflow-worker"),
        ("Deployment", "yaml-workflow-beat"),
        ("Deployment", "flower"),
        ("Service", "flower"),
        ("ConfigMap", "yaml-workflow-config"),
        ("Secret", "yaml-workflow-secrets"),
        ("PersistentVolumeClaim", "yaml-workflow-workspaces"),
    ]:
        assert expected in kinds, expected


def test_kubernetes_redis_is_a_statefulset_with_a_claim_and_aof() -> None:
    redis = _k8s("StatefulSet", "redis")
    templates = redis["spec"]["volumeClaimTemplates"]
    assert templates and templates[0]["spec"]["resources"]["requests"]["storage"]
    container = _container(redis)
    args = " ".join(container.get("args", []) + container.get("command", []))
    assert "--appendonly yes" in args
    assert "$(REDIS_PASSWORD)" in args
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[templates[0]["metadata"]["name"]] == "/data"
    secret_refs = [
        e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e
    ]
    assert "yaml-workflow-secrets" in secret_refs
    assert redis["spec"]["serviceName"] == "redis"


def test_kubernetes_worker_has_resources_liveness_and_a_long_enough_grace() -> None:
    worker = _k8s("Deployment", "yaml-workflow-worker")
    pod = worker["spec"]["template"]["spec"]
    container = _container(worker)
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    probe = " ".join(container["livenessProbe"]["exec"]["command"])
    assert "celery" in probe and "inspect ping" in probe
    command = " ".join(container["command"] + container.get("args", []))
    assert "workers.app" in command and "worker" in command and "-E" in command
    soft = SOFT_SHUTDOWN.search(command)
    assert soft, command
    assert pod["terminationGracePeriodSeconds"] > float(soft.group(1))
    env = {e["name"]: e for e in container["env"]}
    assert env["REMAP_SIGTERM"]["value"] == "SIGQUIT"  # SIGTERM starts the soft shutdown
    for var in ("YAML_WORKFLOW_BROKER_URL", "YAML_WORKFLOW_STATE_URL"):
        assert "$(REDIS_PASSWORD)" in env[var]["value"]
    assert [s["configMapRef"]["name"] for s in container["envFrom"]] == ["yaml-workflow-config"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
    assert claims["workspaces"] == "yaml-workflow-workspaces"
    config = _k8s("ConfigMap", "yaml-workflow-config")["data"]
    assert mounts["workspaces"] == config["YAML_WORKFLOW_WORKSPACE_ROOT"]


def test_kubernetes_env_vars_referenced_are_defined_before_use() -> None:
    """$(VAR) in an env value or the command only expands when VAR is defined earlier."""
    config = set(_k8s("ConfigMap", "yaml-workflow-config")["data"])
    for path, doc in _k8s_documents():
        spec = doc.get("spec", {}).get("template", {}).get("spec")
        if not spec:
            continue
        for container in spec["containers"]:
            defined = set(config) if container.get("envFrom") else set()
            for entry in container.get("env", []):
                for ref in re.findall(r"\$\(([A-Z_]+)\)", entry.get("value", "")):
                    assert ref in defined, (path.name, entry["name"], ref)
                defined.add(entry["name"])
            for arg in container.get("command", []) + container.get("args", []):
                for ref in re.findall(r"\$\(([A-Z_]+)\)", arg):
                    assert ref in defined, (path.name, arg)


def test_kubernetes_configmap_and_secret_carry_the_settings() -> None:
    config = _k8s("ConfigMap", "yaml-workflow-config")["data"]
    for var in DESIGN_VARS:
        if var not in ("YAML_WORKFLOW_BROKER_URL", "YAML_WORKFLOW_STATE_URL"):
            assert var in config, var  # the URLs are built in the pod from the Secret
    assert all(isinstance(v, str) for v in config.values())  # ConfigMap data are strings
    secret = _k8s("Secret", "yaml-workflow-secrets")
    assert {"REDIS_PASSWORD", "FLOWER_BASIC_AUTH"} <= set(secret["stringData"])


def test_kubernetes_workspaces_are_read_write_many() -> None:
    pvc = _k8s("PersistentVolumeClaim", "yaml-workflow-workspaces")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_kubernetes_flower_has_a_service_and_basic_auth() -> None:
    flower = _k8s("Deployment", "flower")
    container = _container(flower)
    assert "flower" in container["command"]
    env = {e["name"]: e for e in container["env"]}
    assert env["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]["name"] == "yaml-workflow-secrets"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthcheck"
    service = _k8s("Service", "flower")
    labels = flower["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    assert service["spec"]["ports"][0]["port"] == 5555


def test_kubernetes_beat_runs_two_replicas_of_our_scheduler_and_says_why() -> None:
    beat = _k8s("Deployment", "yaml-workflow-beat")
    assert beat["spec"]["replicas"] == 2
    container = _container(beat)
    command = " ".join(container["command"])
    assert "workers.app" in command and " beat " in command + " " and BEAT_SCHEDULER in command
    names = [e["name"] for e in container["env"]]
    assert "YAML_WORKFLOW_BROKER_URL" in names and "YAML_WORKFLOW_STATE_URL" in names
    assert not beat["spec"]["template"]["spec"].get("volumes")  # no workspace, no secrets mounted
    text = (K8S / "beat.yaml").read_text()
    assert "Two replicas, and why that is safe" in text and "lock" in text and "idempotency key" in text


def test_kustomization_lists_every_manifest_but_the_job() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "submit-job.yaml"}
    assert listed == present


def test_kustomize_builds_the_manifests() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl here")
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60
    )
    if out.returncode != 0 and "unknown command" in out.stderr:
        pytest.skip("this kubectl has no kustomize")
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert all(
        d["metadata"].get("namespace") == "yaml-workflow" for d in docs if d["kind"] != "Namespace"
    )


# --- systemd --------------------------------------------------------------------------


def _unit(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(
        strict=False,
        interpolation=None,
        delimiters=("=",),
        comment_prefixes=("#", ";"),
        empty_lines_in_values=False,
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(path.read_text(), source=str(path))
    return parser


UNITS = sorted(SYSTEMD.glob("*.service"))


def test_systemd_has_a_worker_and_a_flower_unit() -> None:
    assert {p.name for p in UNITS} >= {
        "yaml-workflow-worker.service",
        "yaml-workflow-beat.service",
        "yaml-workflow-flower.service",
    }


def test_systemd_beat_runs_our_scheduler_and_needs_no_workspace_mount() -> None:
    unit = _unit(SYSTEMD / "yaml-workflow-beat.service")
    assert BEAT_SCHEDULER in unit["Service"]["ExecStart"] and " beat " in unit["Service"]["ExecStart"]
    assert "RequiresMountsFor" not in unit["Unit"]


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_systemd_unit_parses_with_the_sections_and_keys_it_needs(path: Path) -> None:
    unit = _unit(path)
    assert unit.sections() == ["Unit", "Service", "Install"]
    assert unit["Unit"]["Description"]
    service = unit["Service"]
    exec_start = service["ExecStart"]
    assert exec_start.startswith("/")  # systemd wants an absolute path
    assert "workers.app" in exec_start
    assert service["Restart"] in ("always", "on-failure")
    assert service["User"] and service["EnvironmentFile"].startswith("/etc/yaml-workflow/")
    assert service["KillSignal"] in ("SIGTERM", "SIGQUIT", "SIGINT")
    assert service["KillMode"] == "mixed"  # the signal goes to Celery's main process only
    timeout = (
        _seconds(service["TimeoutStopSec"])
        if not service["TimeoutStopSec"].isdigit()
        else float(service["TimeoutStopSec"])
    )
    soft = SOFT_SHUTDOWN.search(exec_start)
    assert timeout > (float(soft.group(1)) if soft else 0)
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_worker_stops_softly() -> None:
    unit = _unit(SYSTEMD / "yaml-workflow-worker.service")
    service = unit["Service"]
    assert " worker " in service["ExecStart"] and " -E " in service["ExecStart"]
    assert SOFT_SHUTDOWN.search(service["ExecStart"])
    environment = SYSTEMD.joinpath("yaml-workflow-worker.service").read_text()
    assert "Environment=REMAP_SIGTERM=SIGQUIT" in environment
    # systemd's own %h is a home directory: the node name must use %H (or %%h).
    assert re.search(r"--hostname=\S*(?<!%)%h", service["ExecStart"]) is None


def test_systemd_environment_file_examples_set_the_design_variables() -> None:
    env = _env_file(SYSTEMD / "yaml-workflow.env.example")
    for var in DESIGN_VARS:
        assert var in env, var
    worker = _unit(SYSTEMD / "yaml-workflow-worker.service")["Service"]["ExecStart"]
    for ref in re.findall(r"\$\{(\w+)\}", worker):
        assert ref in env, ref


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_systemd_analyze_finds_no_syntax_error(path: Path, tmp_path: Path) -> None:
    """Only file:line complaints count (unknown keys or sections, values that do not parse);
    the users, binaries and mounts of a real server are not on a test machine."""
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    out = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    syntax = [
        line for line in (out.stdout + out.stderr).splitlines() if line.startswith(f"{copy}:")
    ]
    assert syntax == []


DEAD_WORKER_BOUND = 60.0  # seconds: a dead worker's steps run again elsewhere within this


@pytest.mark.parametrize("values", [
    lambda: _env_file(ROOT / "deploy" / "env.example"),
    lambda: _k8s("ConfigMap", "yaml-workflow-config")["data"],
    lambda: _env_file(SYSTEMD / "yaml-workflow.env.example"),
], ids=["compose", "kubernetes", "systemd"])
def test_every_deployment_carries_the_dead_worker_settings_within_the_bound(values: Any) -> None:
    # The worst case after a worker dies: its unacked message comes back after the
    # visibility timeout plus one restore check; its step's claim is gone 4/3 of a claim
    # TTL after the last renewal; the waiting delivery looks again within 5 s.
    env = values()
    vt = float(env["YAML_WORKFLOW_VISIBILITY_TIMEOUT"])
    restore = float(env["YAML_WORKFLOW_RESTORE_INTERVAL"])
    ttl = float(env["YAML_WORKFLOW_CLAIM_TTL"])
    assert max(vt + restore, ttl * 4 / 3) + 5 <= DEAD_WORKER_BOUND, (vt, restore, ttl)
