"""compose.yaml follows the code (no Docker daemon runs here, so its structure is checked instead): the
orchestrator replicas are the project's image started as the tests start the service, every environment name
is a setting the service reads and validates, the URLs point at the services that serve them, every service
has a health check, and the load balancer (deploy/nginx.conf) spreads over the replicas, streaming-safe."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from config.settings import Settings
from server.cli import main as cli

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
NGINX = (ROOT / "deploy" / "nginx.conf").read_text()
_VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def defaults(value: object) -> str:
    """A compose value with each ${NAME:-default} replaced by its default (what a bare `up` runs with)."""
    return _VARIABLE.sub(lambda m: m.group(2) or "", str(value))


def options_of(command: str, capsys: pytest.CaptureFixture[str]) -> set[str]:
    """The options `orchestrator <command>` accepts, from the real CLI's --help."""
    with pytest.raises(SystemExit):
        cli([command, "--help"])
    return set(re.findall(r"--[a-z][a-z-]*", capsys.readouterr().out))


def served_port(service: str) -> int:
    command = SERVICES[service]["command"]
    return int(command[command.index("--port") + 1])


def test_the_layout_has_postgres_chroma_an_inference_node_replicas_and_a_load_balancer():
    assert {"postgres", "chroma", "inference", "orchestrator", "lb"} <= set(SERVICES)
    assert SERVICES["postgres"]["image"].startswith("postgres:")  # the official image
    assert int(defaults(SERVICES["orchestrator"]["deploy"]["replicas"])) >= 2
    assert "ports" not in SERVICES["orchestrator"]  # reached through the load balancer only
    for name, service in SERVICES.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    for name in ("orchestrator", "lb"):
        needs = SERVICES[name]["depends_on"]
        assert all(c["condition"] == "service_healthy" for c in needs.values()), name
    assert set(SERVICES["orchestrator"]["depends_on"]) == {"postgres", "chroma", "inference"}


def test_the_project_services_are_built_from_the_repositorys_dockerfile():
    for name in ("orchestrator", "chroma", "inference"):
        assert SERVICES[name]["build"] == ".", name
        assert SERVICES[name]["image"] == SERVICES["orchestrator"]["image"], name
    assert (ROOT / "Dockerfile").is_file()


def test_the_commands_are_the_ones_the_tests_run(capsys):
    serve, inference = SERVICES["orchestrator"]["command"], SERVICES["inference"]["command"]
    assert serve[:2] == ["orchestrator", "serve"] and inference[:2] == ["orchestrator", "inference"]
    for command in (serve, inference):
        used = {arg for arg in command[2:] if arg.startswith("--")}
        assert used <= options_of(command[1], capsys), command
    chroma = SERVICES["chroma"]["command"]
    engines = (ROOT / "tests" / "engines.py").read_text()  # how the tests start their Chroma server
    assert chroma[:2] == ["chroma", "run"]
    assert all(f'"{arg}"' in engines for arg in chroma[2:] if arg.startswith("--"))


def test_every_environment_name_is_a_setting_and_the_defaults_validate():
    environment = SERVICES["orchestrator"]["environment"]
    fields = {name.upper() for name in Settings.model_fields}
    assert set(environment) <= fields, set(environment) - fields
    values = {name.lower(): defaults(value) for name, value in environment.items()}
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    assert settings.shared_storage and settings.chroma_url


def test_the_urls_point_at_the_services_that_serve_them():
    environment = {k: defaults(v) for k, v in SERVICES["orchestrator"]["environment"].items()}
    pg_env = {k: defaults(v) for k, v in SERVICES["postgres"]["environment"].items()}
    database = urlsplit(environment["DATABASE_URL"])
    assert (database.scheme, database.hostname, database.port) == ("postgresql", "postgres", 5432)
    assert (database.username, database.password) == (pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"])
    assert database.path.lstrip("/") == pg_env["POSTGRES_DB"]
    chroma = urlsplit(environment["CHROMA_URL"])
    assert (chroma.hostname, chroma.port) == ("chroma", served_port("chroma"))
    node = urlsplit(environment["INFERENCE_BASE_URL"])
    assert (node.hostname, node.port, node.path) == ("inference", served_port("inference"), "/v1")


def test_the_load_balancer_spreads_over_the_replicas_and_keeps_streams_flowing():
    mounts = SERVICES["lb"]["volumes"]
    source, target = mounts[0].split(":")[:2]
    assert (ROOT / source).resolve() == ROOT / "deploy" / "nginx.conf" and target.startswith("/etc/nginx/conf.d/")
    upstreams = dict(re.findall(r"upstream\s+(\w+)\s*\{([^}]*)\}", NGINX))
    assert list(upstreams) == [re.search(r"proxy_pass\s+http://(\w+);", NGINX).group(1)]
    block = next(iter(upstreams.values()))
    servers = re.findall(r"^\s*server\s+([\w.-]+):(\d+)([^;]*);", block, re.M)
    # One name that Docker's DNS answers with every replica, re-resolved as replicas come and go.
    assert [(host, int(port)) for host, port, _ in servers] == [("orchestrator", served_port("orchestrator"))]
    assert "resolve" in servers[0][2] and re.search(r"^resolver\s+127\.0\.0\.11", NGINX, re.M)
    assert "least_conn;" in block
    assert "proxy_buffering off;" in NGINX and "proxy_http_version 1.1;" in NGINX
    read_timeout = re.search(r"proxy_read_timeout\s+(\d+)s;", NGINX)
    assert read_timeout and int(read_timeout.group(1)) >= 600
    listen = int(re.search(r"listen\s+(\d+);", NGINX).group(1))
    assert defaults(SERVICES["lb"]["ports"][0]).split(":")[-1] == str(listen)
