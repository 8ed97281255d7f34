"""k8s/ rendered per overlay: valid Kubernetes 1.30 objects that keep the promises of
docs/operations.md "Deploy" (probes, a locked-down pod, a drain before SIGTERM, Secrets only
by reference, the network policy, the replica floor per overlay, the migration Job)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from config.settings import ConfigError, load_settings
from tests.deploy.conftest import K8S, OVERLAYS, Manifest, render

KUBERNETES_VERSION = "1.30.0"
NAMESPACES = {"dev": "receiptd-dev", "production": "receiptd"}
KINDS = {
    "Namespace",
    "ServiceAccount",
    "ConfigMap",
    "Service",
    "Deployment",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "Job",
}
CONFIG_PATH = "/etc/receiptd/receiptd.toml"
STORE_CREDENTIALS = "/run/secrets/receiptd/"
# Example values of every variable a pod takes from the Secret receiptd-secrets, shaped as
# docs/operations.md "Deploy" tells operators to write them (the configuration must load with them).
SECRET_EXAMPLES: dict[str, str | None] = {
    "DATABASE_URL": "postgresql://receiptd:pw@postgres.example:5432/receiptd"
    "?sslmode=verify-full&sslrootcert=/run/secrets/receiptd/database-ca.pem",
    "REDIS_URL": "rediss://redis.example:6380/0?ssl_ca_certs=/run/secrets/receiptd/redis-ca.pem",
    "RECEIPTD_AUTH__API_KEYS": json.dumps(
        [{"name": "billing-service", "key": "k" * 32, "scopes": ["customers:read"]}]
    ),
    # Optional, and absent here: both overlays name a jwks_url, and a JWKS and an HS256
    # secret together stop start-up (auth.user_tokens.secret).
    "RECEIPTD_AUTH__USER_TOKENS__SECRET": None,
    "RECEIPTD_WEBHOOKS__OUTBOUND": json.dumps(
        [{"url": "https://billing.example/receiptd", "secrets": ["k1:" + "w" * 32]}]
    ),
}
# Keys of the configuration that hold secrets: never in the ConfigMap.
SECRET_KEYS = {"url", "key", "key_sha256", "secret", "secrets", "api_keys", "outbound"}


def objects(manifests: tuple[Manifest, ...], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: tuple[Manifest, ...], kind: str) -> Manifest:
    (found,) = objects(manifests, kind)
    return found


def workloads(manifests: tuple[Manifest, ...]) -> list[Manifest]:
    """The objects that run pods: the Deployment and the migration Job."""
    return objects(manifests, "Deployment") + objects(manifests, "Job")


def pod_spec(workload: Manifest) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def server(manifests: tuple[Manifest, ...]) -> dict[str, Any]:
    (container,) = pod_spec(one(manifests, "Deployment"))["containers"]
    return container


def config_text(manifests: tuple[Manifest, ...]) -> str:
    return one(manifests, "ConfigMap")["data"]["receiptd.toml"]


def config(manifests: tuple[Manifest, ...]) -> dict[str, Any]:
    return tomllib.loads(config_text(manifests))


def quantity(text: str | int) -> float:
    """A Kubernetes quantity (250m, 1, 512Mi, 1Gi) as a number."""
    units = {"m": 1e-3, "": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    match = re.fullmatch(r"([0-9.]+)(m|Ki|Mi|Gi|)", str(text))
    assert match, f"unexpected quantity {text!r}"
    return float(match[1]) * units[match[2]]


def test_every_object_is_valid_for_kubernetes_1_30(manifests) -> None:
    assert {m["kind"] for m in manifests} == KINDS
    for manifest in manifests:
        # strict: an unknown field (a typo, or one newer than 1.30) fails too
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_does_reject_a_bad_object(manifests) -> None:
    deployment = json.loads(json.dumps(one(manifests, "Deployment")))
    pod_spec(deployment)["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_everything_lands_in_the_overlay_namespace_which_enforces_restricted(
    overlay, manifests
) -> None:
    namespace = one(manifests, "Namespace")
    assert namespace["metadata"]["name"] == NAMESPACES[overlay]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for manifest in manifests:
        if manifest["kind"] != "Namespace":
            assert manifest["metadata"]["namespace"] == NAMESPACES[overlay], manifest["kind"]


def test_probes(manifests) -> None:
    container = server(manifests)
    (port,) = container["ports"]
    assert (port["name"], port["containerPort"]) == ("http", 8080)
    assert config(manifests)["server"]["port"] == port["containerPort"]
    expected = {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert (get["path"], get["port"]) == (path, "http"), probe
    # the start-up probe covers the migrations serve applies before it listens
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60


def test_pods_run_locked_down(manifests) -> None:
    for workload in workloads(manifests):
        spec = pod_spec(workload)
        name = workload["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] > 0, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        # else the kubelet adds RECEIPTD_SERVICE_HOST & co., which the settings loader refuses
        assert spec["enableServiceLinks"] is False, name
        assert "hostNetwork" not in spec
        assert "hostPID" not in spec
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert context.get("privileged", False) is False, name


def test_only_tmp_is_writable(manifests) -> None:
    for workload in workloads(manifests):
        spec = pod_spec(workload)
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert not any("hostPath" in v for v in volumes.values())
        for container in spec["containers"]:
            for mount in container["volumeMounts"]:
                volume = volumes[mount["name"]]
                if "emptyDir" in volume:
                    assert mount["mountPath"] == "/tmp"
                    assert "sizeLimit" in volume["emptyDir"]
                else:
                    assert mount.get("readOnly") is True, mount


def test_requests_and_limits_everywhere(manifests) -> None:
    for workload in workloads(manifests):
        for container in pod_spec(workload)["containers"]:
            resources = container["resources"]
            for resource in ("cpu", "memory"):
                request = quantity(resources["requests"][resource])
                assert 0 < request <= quantity(resources["limits"][resource])


def test_dev_is_smaller_than_production() -> None:
    dev, production = (
        server(render(K8S / "overlays" / name))["resources"] for name in ("dev", "production")
    )
    for part in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            assert quantity(dev[part][resource]) <= quantity(production[part][resource])


def test_sigterm_comes_after_the_drain_and_in_flight_requests_finish(manifests) -> None:
    spec = pod_spec(one(manifests, "Deployment"))
    command = server(manifests)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pause = int(command[1])
    assert pause >= 5
    shutdown_timeout = config(manifests)["server"]["shutdown_timeout"]
    # the grace period counts from the start of preStop: pause, then SIGTERM and the drain
    assert spec["terminationGracePeriodSeconds"] > pause + shutdown_timeout


def test_the_configuration_listens_in_the_pod_and_loads(manifests, tmp_path) -> None:
    settings = config(manifests)
    assert settings["server"]["host"] == "0.0.0.0"
    path = tmp_path / "receiptd.toml"
    path.write_text(config_text(manifests))
    environment = {}
    for variable in server(manifests)["env"]:
        if "valueFrom" in variable:
            example = SECRET_EXAMPLES[variable["name"]]
            if example is not None:
                environment[variable["name"]] = example
        else:
            environment[variable["name"]] = variable["value"]
    assert environment["RECEIPTD_CONFIG"] == CONFIG_PATH
    # The store files only exist in a pod (the Secret receiptd-store-credentials): every key is
    # valid exactly when missing files are all that is left to report.
    with pytest.raises(ConfigError) as raised:
        load_settings(path, environment)
    problems = str(raised.value).splitlines()[1:]
    assert problems
    for problem in problems:
        assert re.fullmatch(rf"\s*\S+: file not found: {STORE_CREDENTIALS}\S+", problem), problem


def test_the_configuration_is_mounted_where_receiptd_config_points(manifests) -> None:
    configmap = one(manifests, "ConfigMap")["metadata"]["name"]
    for workload in workloads(manifests):
        spec = pod_spec(workload)
        volumes = {v["name"]: v for v in spec["volumes"]}
        (container,) = spec["containers"]
        env = {v["name"]: v.get("value") for v in container["env"]}
        assert env["RECEIPTD_CONFIG"] == CONFIG_PATH
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        assert mounts[str(Path(CONFIG_PATH).parent)]["configMap"]["name"] == configmap
        credentials = mounts[STORE_CREDENTIALS.rstrip("/")]["secret"]
        assert credentials["secretName"] == "receiptd-store-credentials"


def test_secrets_are_only_referenced(manifests) -> None:
    assert not objects(manifests, "Secret")
    for manifest in manifests:
        assert "stringData" not in manifest
        assert manifest["kind"] == "ConfigMap" or "data" not in manifest
    for workload in workloads(manifests):
        for container in pod_spec(workload)["containers"]:
            assert "envFrom" not in container
            for variable in container["env"]:
                if variable["name"] == "RECEIPTD_CONFIG":
                    continue
                reference = variable["valueFrom"]["secretKeyRef"]
                assert "value" not in variable
                # The migration role's URL has a Secret of its own, which only the Job reads.
                secret = (
                    "receiptd-migration-secrets"
                    if workload["kind"] == "Job"
                    else "receiptd-secrets"
                )
                assert (reference["name"], reference["key"]) == (secret, variable["name"])


def test_database_and_redis_come_from_the_secret_never_the_embedded_default(manifests) -> None:
    required = {
        v["name"]
        for v in server(manifests)["env"]
        if "valueFrom" in v and not v["valueFrom"]["secretKeyRef"].get("optional", False)
    }
    assert {"DATABASE_URL", "REDIS_URL", "RECEIPTD_AUTH__API_KEYS"} <= required
    (migrate,) = pod_spec(one(manifests, "Job"))["containers"]
    migration = [v["name"] for v in migrate["env"] if "valueFrom" in v]
    assert migration == ["RECEIPTD_DATABASE__MIGRATION_URL"]
    settings = config(manifests)
    for section in ("database", "redis"):
        assert "url" not in settings.get(section, {})


def test_the_configmap_holds_no_secret_and_store_files_come_from_the_secret(manifests) -> None:
    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else key)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}.{i}")
        else:
            assert not set(path.split(".")) & SECRET_KEYS, path
            if (path.endswith("_file") or ".root_certificates." in path) and node:
                assert str(node).startswith(STORE_CREDENTIALS), path

    walk(config(manifests), "")


def test_prometheus_scrapes_metrics_on_the_http_port(manifests) -> None:
    port = str(server(manifests)["ports"][0]["containerPort"])
    service = one(manifests, "Service")
    pod = one(manifests, "Deployment")["spec"]["template"]["metadata"]
    for scrape in (pod["annotations"], service["metadata"]["annotations"]):
        assert scrape["prometheus.io/scrape"] == "true"
        assert scrape["prometheus.io/port"] == port
        assert scrape["prometheus.io/path"] == "/metrics"
    (service_port,) = service["spec"]["ports"]
    assert (service_port["name"], service_port["targetPort"]) == ("http", "http")
    assert service["spec"]["selector"].items() <= pod["labels"].items()


def test_network_policy(manifests) -> None:
    policy = one(manifests, "NetworkPolicy")["spec"]
    selector = policy["podSelector"]["matchLabels"].items()
    for workload in workloads(manifests):
        assert selector <= workload["spec"]["template"]["metadata"]["labels"].items()
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": 8080, "protocol": "TCP"}]
    allowed = set()
    for rule in policy["egress"]:
        assert rule["ports"], "an egress rule without ports opens every port"
        ports = {(p["port"], p["protocol"]) for p in rule["ports"]}
        allowed |= ports
        if ports == {(443, "TCP")}:
            # the store APIs: public addresses only, not the cluster's private ranges
            for peer in rule["to"]:
                assert set(peer) == {"ipBlock"}
                assert peer["ipBlock"]["except"]
        if ports == {(53, "UDP"), (53, "TCP")}:
            (peer,) = rule["to"]
            assert peer["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert allowed == {(53, "UDP"), (53, "TCP"), (5432, "TCP"), (6379, "TCP"), (443, "TCP")}


def test_replicas_autoscaler_and_disruption_budget(overlay, manifests) -> None:
    deployment = one(manifests, "Deployment")
    hpa = one(manifests, "HorizontalPodAutoscaler")["spec"]
    pdb = one(manifests, "PodDisruptionBudget")["spec"]
    # the autoscaler owns the replica count: an apply must not reset it
    assert "replicas" not in deployment["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    assert hpa["maxReplicas"] >= hpa["minReplicas"] >= 1
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"].items()
    assert pdb["selector"]["matchLabels"].items() <= pod_labels
    if overlay == "production":
        assert hpa["minReplicas"] >= 2
        assert pdb["minAvailable"] >= 1
        assert "maxUnavailable" not in pdb
    else:
        assert hpa["minReplicas"] == 1
        assert pdb == {"maxUnavailable": 1, "selector": pdb["selector"]}
    # one pod may always be evicted at the floor, or node drains would hang
    assert pdb.get("minAvailable", 0) < hpa["minReplicas"]


def test_migration_job_runs_receiptd_migrate_with_the_same_image_and_config(manifests) -> None:
    job = one(manifests, "Job")
    spec = pod_spec(job)
    (migrate,) = spec["containers"]
    assert migrate["command"] + migrate.get("args", []) == ["receiptd", "migrate"]
    assert server(manifests)["command"] + server(manifests)["args"] == ["receiptd", "serve"]
    assert migrate["image"] == server(manifests)["image"]
    assert migrate["image"].startswith("registry.example.com/receiptd:")
    assert spec["restartPolicy"] in {"Never", "OnFailure"}
    assert job["spec"]["backoffLimit"] >= 1
    assert job["spec"]["activeDeadlineSeconds"] > 0


@pytest.mark.parametrize("directory", ["base", *(f"overlays/{name}" for name in OVERLAYS)], ids=str)
def test_kustomizations_stay_within_what_kustomize_v2_understands(directory) -> None:
    # Debian's kubectl (what a machine without one gets) embeds kustomize v2.0.3: no
    # `patches`, `replicas`, `labels`, `components`, or directories under `resources`.
    known = {
        "apiVersion",
        "kind",
        "namespace",
        "namePrefix",
        "commonLabels",
        "commonAnnotations",
        "bases",
        "resources",
        "images",
        "configMapGenerator",
        "secretGenerator",
        "generatorOptions",
        "patchesStrategicMerge",
        "patchesJson6902",
        "vars",
    }
    kustomization = yaml.safe_load((K8S / directory / "kustomization.yaml").read_text())
    assert set(kustomization) <= known
    for resource in kustomization.get("resources", []):
        assert (K8S / directory / resource).is_file(), resource
