"""The Kubernetes manifests (deploy/kubernetes) validate against the Kubernetes schemas, and
agree with the gateway: probes on routes it serves, a config it accepts, the drain it does."""

import os
import pathlib
import subprocess
import tomllib

import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
KDIR = ROOT / "deploy" / "kubernetes"


def kustomization():
    return yaml.safe_load((KDIR / "kustomization.yaml").read_text())


def resources():
    docs = []
    for name in kustomization()["resources"]:
        for doc in yaml.safe_load_all((KDIR / name).read_text()):
            if doc:
                docs.append((name, doc))
    return docs


def by_kind(kind):
    found = [d for _, d in resources() if d["kind"] == kind]
    assert len(found) == 1, f"one {kind} expected, found {len(found)}"
    return found[0]


def test_kustomization_lists_every_manifest():
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in KDIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


@pytest.mark.parametrize("name,doc", resources(), ids=lambda v: v if isinstance(v, str) else "")
def test_each_manifest_is_valid_for_kubernetes(name, doc):
    version = kubernetes_validate.utils.latest_version()
    # strict: unknown fields are errors, so a misspelt field cannot pass.
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_deployment_matches_what_the_gateway_does():
    dep = by_kind("Deployment")
    spec = dep["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    # One instance per data dir, and the old pod gone before the new one starts.
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"]["type"] == "Recreate"
    cfg = tomllib.loads(by_kind("ConfigMap")["data"]["ccgw.toml"])
    # The grace period covers the drain and the CLIs' own stop.
    assert spec["terminationGracePeriodSeconds"] >= cfg["drain_timeout_secs"] + 5 + 5
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert c["resources"]["requests"]["memory"].endswith("Gi")
    secret_refs = [e["secretRef"]["name"] for e in c["envFrom"]]
    assert by_kind("Secret")["metadata"]["name"] in secret_refs
    assert by_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == (
        dep["spec"]["selector"]["matchLabels"]
    )


def test_the_configmap_is_a_config_the_gateway_accepts(tmp_path):
    toml = by_kind("ConfigMap")["data"]["ccgw.toml"].replace('"/data"', f'"{tmp_path}"')
    conf = tmp_path / "ccgw.toml"
    conf.write_text(toml)
    binary = pathlib.Path(os.environ.get("CCGW_TEST_BIN", ROOT / "target" / "debug" / "ccgw"))
    # `keys list` loads and checks the whole config, then opens the store in its data dir.
    out = subprocess.run(
        [binary, "keys", "--config", conf, "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
