"""docker-compose.yml agrees with the gateway and its image: the ccgw service's store URL
names the Postgres service and its database, its port, data volume and health check are the
ones the image and the gateway use, and it starts only once Postgres is healthy."""

import pathlib
import re
import tomllib
import urllib.parse

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def dockerfile_env():
    """The ENV the image sets (`ENV A=1 \\ B=2`)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(dict(re.findall(r"(\w+)=(\S+)", line)))
    return env


def ccgw():
    return compose()["services"]["ccgw"]


def test_the_store_url_names_the_postgres_service_and_its_database():
    services = compose()["services"]
    pg = services["postgres"]
    assert pg["image"].startswith("postgres:")
    url = ccgw()["environment"]["CCGW_DATABASE_URL"]
    parts = urllib.parse.urlsplit(url)
    assert parts.scheme in ("postgres", "postgresql"), "the gateway accepts these schemes"
    assert parts.hostname == "postgres" and parts.hostname in services
    assert parts.port == 5432
    assert parts.username == pg["environment"]["POSTGRES_USER"]
    assert parts.path.lstrip("/") == pg["environment"]["POSTGRES_DB"]
    # One password for both, from the environment, never written here.
    assert parts.password == pg["environment"]["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD:-ccgw}"
    assert ccgw()["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])


def test_port_volume_and_health_check_match_the_image_and_the_gateway():
    env = dockerfile_env()
    svc = ccgw()
    port = svc["environment"].get("CCGW_PORT", env["CCGW_PORT"])
    assert port == env["CCGW_PORT"]
    assert [p.split(":")[-1] for p in svc["ports"]] == [port]
    data_dir = svc["environment"].get("CCGW_DATA_DIR", env["CCGW_DATA_DIR"])
    assert data_dir == env["CCGW_DATA_DIR"]
    volumes = compose()["volumes"]
    mounts = dict(v.split(":", 1)[::-1] for v in svc["volumes"])
    assert mounts[data_dir] in volumes, "the data dir is a named volume"
    pg_mounts = [v.split(":", 1) for v in compose()["services"]["postgres"]["volumes"]]
    assert any(name in volumes and path == "/var/lib/postgresql/data" for name, path in pg_mounts)
    check = " ".join(svc["healthcheck"]["test"])
    # The readiness route the image's own HEALTHCHECK and Kubernetes use, on the same port.
    assert f"http://127.0.0.1:{port}/health/ready" in check
    assert "/health/ready" in (ROOT / "Dockerfile").read_text()


def test_the_stop_grace_period_covers_the_drain():
    svc = ccgw()
    cfg = tomllib.loads(
        yaml.safe_load((ROOT / "deploy" / "kubernetes" / "configmap.yaml").read_text())["data"][
            "ccgw.toml"
        ]
    )
    drain = cfg.get("drain_timeout_secs", 20)
    grace = int(svc["stop_grace_period"].rstrip("s"))
    assert grace >= drain + 5 + 5
