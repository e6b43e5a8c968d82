"""docker-compose.yml and the Dockerfile checked against the real command line and settings
(there is no Docker engine here): every role runs a command `hub` parses, every variable it
sets is a real setting with a valid value, every service has a healthcheck that means it."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.cli import build_parser
from hub.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
HUB_SERVICES = {
    name: s for name, s in SERVICES.items() if s.get("image") == "interaction-hub:latest"
}

# The roles of issue 8's split, and the `hub` subcommand each runs.
ROLES = {
    "api": ("serve", None),
    "ingest": ("ingest", "nats"),
    "projector": ("project", None),
    "publisher": ("publish", "nats"),
}
HEALTH_ROLE = {"api": "api", "ingest": "ingest", "projector": "project", "publisher": "publish"}


def interpolate(value: str) -> str:
    """Compose's variable interpolation with nothing set: `${X:-default}` is the default,
    `${X:?message}` would stop compose (so it must not appear), `$$` is a literal `$`."""
    assert ":?" not in value, f"compose would refuse to start without a variable: {value}"
    value = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)
    assert not re.search(r"(?<!\$)\$\{?\w", value.replace("$$", "")), f"unset variable: {value}"
    return value.replace("$$", "$")


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment as a mapping"
    return {name: interpolate(str(value)) for name, value in env.items()}


def settings_of(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a container of this service would read from its environment."""
    for name in [n for n in os.environ if n.startswith("HUB_")]:
        monkeypatch.delenv(name)
    for name, value in environment(service).items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_every_role_of_the_split_is_a_service_on_the_hub_image() -> None:
    assert set(ROLES) <= set(HUB_SERVICES)
    for name in ROLES:
        assert HUB_SERVICES[name]["build"] == "."


@pytest.mark.parametrize("name", sorted(ROLES))
def test_each_role_runs_the_hub_subcommand_of_its_role(name: str) -> None:
    args = build_parser().parse_args(HUB_SERVICES[name]["command"])
    command, target = ROLES[name]
    assert args.command == command
    assert (getattr(args, "source", None) or getattr(args, "target", None)) == target


def test_every_hub_service_command_parses_with_the_real_cli() -> None:
    for name, service in HUB_SERVICES.items():
        args = build_parser().parse_args(service["command"])
        assert callable(args.run), name


def test_api_listens_on_all_interfaces_without_running_projections(monkeypatch) -> None:
    api = HUB_SERVICES["api"]
    args = build_parser().parse_args(api["command"])
    assert args.host == "0.0.0.0"
    assert str(args.port) in api["expose"]
    assert settings_of(api, monkeypatch).run_projections is False
    assert "ports" not in api, "replicas are reached through the balancer, not a fixed port"


def test_balancer_proxies_to_the_api_service_on_its_port() -> None:
    lb = SERVICES["lb"]
    (config,) = lb["configs"]
    content = interpolate(COMPOSE["configs"][config["source"]]["content"])
    assert "proxy_pass $api;" in content and "set $api http://api:8000;" in content
    assert lb["ports"] == ["8000:8000"]
    assert lb["depends_on"]["api"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", sorted(HUB_SERVICES))
def test_every_variable_a_hub_service_sets_is_a_real_setting(name: str, monkeypatch) -> None:
    env = environment(HUB_SERVICES[name])
    fields = {f"HUB_{field.upper()}" for field in Settings.model_fields}
    assert set(env) <= fields, set(env) - fields
    settings = settings_of(HUB_SERVICES[name], monkeypatch)  # values validate
    assert settings.is_postgres
    assert settings.eventsourcing_env()["POSTGRES_HOST"] == "postgres"
    assert settings.nats_url == "nats://nats:4222"


def test_hub_reaches_postgres_with_the_database_and_user_postgres_is_given() -> None:
    pg = environment(SERVICES["postgres"])
    url = environment(HUB_SERVICES["api"])["HUB_DATABASE_URL"]
    assert url == (
        f"postgresql://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/"
        f"{pg['POSTGRES_DB']}"
    )


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_long_running_service_has_a_healthcheck(name: str) -> None:
    service = SERVICES[name]
    if service.get("restart") == "no":
        return  # a one-shot (init) is waited for with service_completed_successfully
    check = service["healthcheck"]["test"]
    assert check[0] in ("CMD", "CMD-SHELL") and len(check) > 1


@pytest.mark.parametrize("name", sorted(ROLES))
def test_each_role_is_checked_by_hub_health_of_that_role(name: str) -> None:
    check = HUB_SERVICES[name]["healthcheck"]["test"]
    assert check[:2] == ["CMD", "hub"]
    args = build_parser().parse_args(check[2:])
    assert (args.command, args.role) == ("health", HEALTH_ROLE[name])


def test_depends_on_waits_for_healthy_or_completed_services_that_exist() -> None:
    for name, service in SERVICES.items():
        for other, how in (service.get("depends_on") or {}).items():
            assert other in SERVICES, (name, other)
            if how["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[other], (name, other)
            else:
                assert how["condition"] == "service_completed_successfully"
                assert SERVICES[other]["restart"] == "no"
    for name in ROLES:
        needs = HUB_SERVICES[name]["depends_on"]
        assert needs["postgres"]["condition"] == needs["nats"]["condition"] == "service_healthy"
        assert needs["init"]["condition"] == "service_completed_successfully"


def test_nats_runs_jetstream_on_a_volume_with_a_monitoring_port_for_its_healthcheck() -> None:
    nats = SERVICES["nats"]
    command = nats["command"]
    assert command[0] == "nats-server" and "-js" in command
    store = command[command.index("-sd") + 1]
    assert any(v.split(":")[1] == store for v in nats["volumes"])
    port = command[command.index("-m") + 1]
    assert f"localhost:{port}/healthz" in " ".join(nats["healthcheck"]["test"])
    assert set(COMPOSE["volumes"]) >= {v.split(":")[0] for v in nats["volumes"]}


def test_postgres_keeps_its_data_on_a_volume() -> None:
    (volume,) = SERVICES["postgres"]["volumes"]
    name, path = volume.split(":")
    assert path == "/var/lib/postgresql/data" and name in COMPOSE["volumes"]


def test_init_creates_the_tables_before_the_roles_start() -> None:
    init = HUB_SERVICES["init"]
    args = build_parser().parse_args(init["command"])
    assert (args.command, args.projections_command) == ("projections", "status")


def test_image_runs_the_hub_entrypoint_with_every_package_installed() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["hub"]' in dockerfile
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'hub = "api.cli:main"' in pyproject
    include = re.search(r"include = \[(.*?)\]", pyproject)
    assert include is not None
    for package in re.findall(r'"(\w+)\*"', include.group(1)):
        assert f"COPY {package} {package}" in dockerfile, package
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.M)
    assert cmd is not None
    assert build_parser().parse_args(yaml.safe_load(cmd.group(1))).command == "serve"
