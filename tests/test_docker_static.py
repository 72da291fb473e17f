"""Static checks of docker/: no Docker engine runs here, so the compose file and Dockerfiles
are parsed and their properties checked (start order, health, exposure, secrets, install
order, privileges). Runs in well under a second."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
CORE_SERVICES = ("postgres", "redis", "minio", "mlflow")

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; not $${...} (escaped,
# left for the container's shell).
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|_KEY$")


# ---- helpers -----------------------------------------------------------------------------


def strings(node: Any) -> list[str]:
    """Every string value (and mapping key) in a YAML tree."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*strings(k), *strings(v))]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return []


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Dependency → condition (the short list form means service_started)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def is_one_shot(name: str) -> bool:
    """A job that runs to completion: restart "no", and every dependant waits for it with
    service_completed_successfully (a healthcheck would be meaningless on it)."""
    if str(SERVICES[name].get("restart", "no")) != "no":
        return False
    conditions = [depends_on(s).get(name) for s in SERVICES.values()]
    waited = [c for c in conditions if c is not None]
    return bool(waited) and all(c == "service_completed_successfully" for c in waited)


def command_args(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(a) for a in cmd]


def flag_value(args: list[str], flag: str) -> str | None:
    """Value of ``--flag value`` or ``--flag=value`` in an argument list."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def env_example() -> dict[str, str]:
    out = {}
    for raw in (DOCKER / ".env.example").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        word, _, rest = full.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    assert not pending, f"{path.name} ends inside a continued line"
    return instructions


def exec_form(args: str) -> list[str]:
    """JSON-array form of CMD/ENTRYPOINT (YAML parses JSON arrays)."""
    value = yaml.safe_load(args)
    assert isinstance(value, list), f"not exec (JSON array) form: {args}"
    return [str(v) for v in value]


def final_user(instructions: list[tuple[str, str]]) -> str | None:
    users = [args for word, args in instructions if word == "USER"]
    return users[-1].split(":")[0] if users else None


# ---- compose -----------------------------------------------------------------------------


def test_core_services_present() -> None:
    missing = [s for s in CORE_SERVICES if s not in SERVICES]
    assert not missing, f"compose.yaml lacks services {missing}"


@pytest.mark.parametrize("name", list(SERVICES))
def test_every_service_has_a_healthcheck(name: str) -> None:
    service = SERVICES[name]
    if name not in CORE_SERVICES and is_one_shot(name):
        assert "healthcheck" not in service or service["healthcheck"].get("disable")
        return
    check = service.get("healthcheck")
    assert check, f"service {name} has no healthcheck"
    assert not check.get("disable"), f"service {name} disables its healthcheck"
    test = check.get("test")
    assert test, f"service {name}: healthcheck without a test"
    if isinstance(test, list):
        assert test[0] in ("CMD", "CMD-SHELL"), f"service {name}: healthcheck test {test}"
        assert len(test) > 1, f"service {name}: empty healthcheck command"


@pytest.mark.parametrize("name", list(SERVICES))
def test_health_conditions_point_at_healthchecked_services(name: str) -> None:
    for dep, condition in depends_on(SERVICES[name]).items():
        assert dep in SERVICES, f"{name} depends on unknown service {dep}"
        if condition == "service_healthy":
            assert SERVICES[dep].get("healthcheck"), f"{name} waits for {dep}'s health: none"
        if condition == "service_completed_successfully":
            assert is_one_shot(dep), f"{name} waits for {dep} to finish but it restarts"


def test_mlflow_waits_for_healthy_postgres_and_minio() -> None:
    deps = depends_on(SERVICES["mlflow"])
    assert deps.get("postgres") == "service_healthy"
    assert deps.get("minio") == "service_healthy"


def test_mlflow_server_command() -> None:
    args = command_args(SERVICES["mlflow"])
    entrypoint = SERVICES["mlflow"].get("entrypoint")
    if entrypoint is None:  # the image's ENTRYPOINT is `mlflow`
        build = SERVICES["mlflow"]["build"]
        image_file = DOCKER / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
        entry = [exec_form(a) for w, a in dockerfile(image_file) if w == "ENTRYPOINT"][-1]
        args = entry + args
    assert args[:2] == ["mlflow", "server"], args
    backend = flag_value(args, "--backend-store-uri")
    assert backend, "mlflow server needs --backend-store-uri"
    assert re.match(r"postgresql(\+psycopg2)?://[^@]+@postgres:5432/mlflow$", backend), backend
    artifacts = flag_value(args, "--artifacts-destination")
    assert artifacts, "mlflow server needs --artifacts-destination"
    assert artifacts.startswith("s3://"), artifacts
    assert "--no-serve-artifacts" not in args
    env = environment(SERVICES["mlflow"])
    assert env.get("MLFLOW_S3_ENDPOINT_URL") == "http://minio:9000"


def test_mlflow_webhook_settings() -> None:
    env = environment(SERVICES["mlflow"])
    key = env.get("MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY", "")
    m = INTERPOLATION.fullmatch(key)
    assert m, "the webhook encryption key must come from the env file, not be written here"
    assert m.group(1) == "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"
    assert m.group(2) in (":?", "?"), "a missing key must stop `compose up` (use ${VAR:?msg})"
    schemes = {s.strip() for s in env.get("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "").split(",")}
    assert {"http", "https"} <= schemes
    assert env.get("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "").lower() == "true"
    assert "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY" in env_example()


@pytest.mark.parametrize("name", list(SERVICES))
def test_ports_bind_to_loopback_only(name: str) -> None:
    service = SERVICES[name]
    assert service.get("network_mode") != "host", f"{name} uses the host network"
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            assert port.get("host_ip") == "127.0.0.1", f"{name}: {port} not bound to 127.0.0.1"
        else:
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} not bound to 127.0.0.1"


def test_volumes_declared_and_used() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    used: set[str] = set()
    for name, service in SERVICES.items():
        for volume in service.get("volumes") or []:
            if isinstance(volume, dict):
                kind, source = volume.get("type", "volume"), volume.get("source")
            else:
                parts = str(volume).split(":")
                source = parts[0] if len(parts) > 1 else None
                is_path = source is not None and source.startswith(("/", ".", "~"))
                kind = "bind" if is_path else "volume"
            if source is None:  # anonymous volume
                continue
            if kind == "volume":
                assert source in declared, f"{name} uses undeclared volume {source}"
                used.add(source)
            elif kind == "bind" and not source.startswith(("/", "~")):
                assert (DOCKER / source).exists(), f"{name} bind-mounts missing {source}"
    assert declared <= used, f"declared but unused volumes {sorted(declared - used)}"


def test_secrets_come_from_the_env_file() -> None:
    """No literal secret in compose.yaml; every variable it needs is in .env.example, and
    the example leaves secrets empty."""
    example = env_example()
    referenced: dict[str, str | None] = {}
    for text in strings(COMPOSE):
        for m in INTERPOLATION.finditer(text):
            referenced.setdefault(m.group(1), m.group(2))
    missing = sorted(set(referenced) - set(example))
    assert not missing, f".env.example does not define {missing}"
    for name, service in SERVICES.items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key):
                assert value.startswith("${"), f"{name}: {key} is written in compose.yaml"
    filled = [k for k, v in example.items() if SECRET_NAME.search(k) and v]
    assert not filled, f".env.example holds secret values for {filled}"
    assert ".env" in (DOCKER / ".gitignore").read_text().split()


# ---- Dockerfiles -------------------------------------------------------------------------


def test_oscflow_image_installs_cpu_torch_before_the_package() -> None:
    steps = dockerfile(DOCKER / "Dockerfile")
    assert steps[0] == ("FROM", "python:3.11-slim")
    runs = [(i, args) for i, (word, args) in enumerate(steps) if word == "RUN"]
    torch = [i for i, args in runs if "pip install" in args and "torch==2.13.0" in args]
    assert torch, "no RUN pip install torch==2.13.0"
    torch_run = steps[torch[0]][1]
    assert "--index-url https://download.pytorch.org/whl/cpu" in torch_run
    package = [i for i, args in runs if re.search(r"pip install (\S+ )*\.(\s|$)", args)]
    assert package, "no RUN pip install ."
    assert torch[0] < package[0], "torch must be installed before the package"
    assert "torch" not in steps[package[0]][1].split("&&")[0], "the package step pins no torch"


def test_oscflow_image_copies_only_what_the_context_keeps() -> None:
    steps = dockerfile(DOCKER / "Dockerfile")
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for word, args in steps:
        if word == "COPY" and "--from" not in args:
            *sources, _dest = args.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert source.rstrip("/") in kept, f"COPY {source}: excluded from the context"


@pytest.mark.parametrize("image", ["Dockerfile", "mlflow.Dockerfile"])
def test_images_do_not_run_as_root(image: str) -> None:
    user = final_user(dockerfile(DOCKER / image))
    assert user is not None, f"{image} has no USER line (it would run as root)"
    assert user not in ("root", "0"), f"{image} runs as {user}"


def test_oscflow_entrypoint() -> None:
    steps = dockerfile(DOCKER / "Dockerfile")
    entry = [exec_form(args) for word, args in steps if word == "ENTRYPOINT"]
    assert entry, "no ENTRYPOINT"
    assert entry[-1] == ["oscflow"]


def test_mlflow_image_pins_the_server_version() -> None:
    runs = " ".join(
        args for word, args in dockerfile(DOCKER / "mlflow.Dockerfile") if word == "RUN"
    )
    assert re.search(r"mlflow==3\.17\.2\b", runs)
    assert "psycopg2" in runs, "PostgreSQL backend needs a driver"
    assert "boto3" in runs, "S3 artifacts need boto3"
