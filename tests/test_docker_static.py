"""Static checks of docker/: no Docker engine runs here, so the compose file and Dockerfiles
are parsed and their properties checked (start order, health, exposure, secrets, install
order, privileges). Runs in well under a second."""

from __future__ import annotations

import configparser
import fnmatch
import re
import shlex
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
CORE_SERVICES = ("postgres", "redis", "minio", "mlflow")
PLATFORM_SERVICES = ("intake", "worker", "register-webhook")
# The platform commands compose expects from the oscflow CLI (Hydra overrides after them).
PLATFORM_COMMANDS = {
    "intake": ["intake", "stack=team", "intake.host=0.0.0.0"],
    "worker": ["worker", "stack=team"],
    "register-webhook": [
        "register-webhook",
        "stack=team",
        "intake.public_url=http://intake:5055/webhooks/mlflow",
    ],
}
# Read by the MLflow client and boto3 rather than by conf/: every platform service needs them.
CLIENT_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)
# Only the services that sign or verify webhook deliveries get the webhook secret.
WEBHOOK_SECRET = "OSCFLOW_WEBHOOK_SECRET"
OC_ENV = re.compile(r"\$\{oc\.env:([A-Za-z_][A-Za-z0-9_]*)")

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
                m = INTERPOLATION.fullmatch(value)
                assert m, f"{name}: {key} is written in compose.yaml"
                assert SECRET_NAME.search(m.group(1)), f"{name}: {key} comes from {m.group(1)}"
    # A secret variable is never given a default: a missing one stops `compose up`.
    for text in strings(COMPOSE):
        for m in INTERPOLATION.finditer(text):
            if SECRET_NAME.search(m.group(1)):
                assert m.group(2) in (":?", "?"), f"{m.group(0)}: a secret needs ${{VAR:?msg}}"
    # Credentials inside URLs and the Redis password flag are interpolations too.
    for text in strings(COMPOSE):
        for m in re.finditer(r"://[^/@\s:]*:([^@\s]*)@", text):
            assert INTERPOLATION.fullmatch(m.group(1)), f"password written in the URL {text}"
    requirepass = flag_value(command_args(SERVICES["redis"]), "--requirepass")
    assert requirepass, "redis-server needs --requirepass"
    assert INTERPOLATION.fullmatch(requirepass), "redis password not from .env"
    filled = [k for k, v in example.items() if SECRET_NAME.search(k) and v]
    assert not filled, f".env.example holds secret values for {filled}"
    text = (DOCKER / ".env.example").read_text()
    assert "Fernet.generate_key()" in text, ".env.example must say how to make the Fernet key"
    assert ".env" in (DOCKER / ".gitignore").read_text().split()


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """What compose makes of ``text`` with the env file ``env`` (``$$`` → ``$``)."""

    def value(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        got = env.get(name)
        if op == ":-":
            return got or arg
        if op == "-":
            return arg if got is None else got
        if op in (":?", "?") and (got is None or (op == ":?" and not got)):
            raise KeyError(f"compose would stop: {name} ({arg})")
        return got or ""

    return INTERPOLATION.sub(value, text).replace("$$", "$")


def filled_env() -> dict[str, str]:
    """.env.example with every empty value filled, as a user's docker/.env would be."""
    return {k: v or f"test-{k.lower().replace('_', '-')}-value" for k, v in env_example().items()}


def resolved_environment(name: str) -> dict[str, str]:
    env = filled_env()
    return {k: interpolate(v, env) for k, v in environment(SERVICES[name]).items()}


def mlflow_args() -> list[str]:
    """The MLflow server's argv: the image's ENTRYPOINT + the service's command."""
    args = command_args(SERVICES["mlflow"])
    if SERVICES["mlflow"].get("entrypoint") is None:
        build = SERVICES["mlflow"]["build"]
        image_file = DOCKER / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
        args = [exec_form(a) for w, a in dockerfile(image_file) if w == "ENTRYPOINT"][-1] + args
    return args


def healthcheck_urls(name: str) -> list[str]:
    test = SERVICES[name]["healthcheck"]["test"]
    text = " ".join(test) if isinstance(test, list) else str(test)
    return re.findall(r"https?://[^'\"\s]+", text)


def postgres_databases() -> list[str]:
    """POSTGRES_DB, then the databases the init scripts create, in the order they run."""
    names = [environment(SERVICES["postgres"])["POSTGRES_DB"]]
    for script in sorted((DOCKER / "postgres").glob("*.sql")):
        names += re.findall(r"(?im)^\s*CREATE DATABASE\s+(\w+)", script.read_text())
    return names


def platform_conf_files(job: str = "platform", choices: Mapping[str, str] | None = None) -> list:
    """The YAML files Hydra composes for ``conf/<job>.yaml`` with the group ``choices``
    (default ``stack=team``): the job's file and its defaults list, followed recursively."""
    choices = {"stack": "team", **(choices or {})}
    conf = ROOT / "conf"
    files: list[Path] = []

    def visit(path: Path, group_dir: Path) -> None:
        files.append(path)
        for entry in yaml.safe_load(path.read_text()).get("defaults") or []:
            if not isinstance(entry, dict):
                continue  # _self_
            ((group, option),) = entry.items()
            group = str(group).removeprefix("override ").strip()
            base = conf if group.startswith("/") or group_dir == conf else group_dir
            option = choices.get(group.strip("/"), option)
            if option is None:
                continue
            target = base / group.strip("/") / f"{option}.yaml"
            assert target.is_file(), f"{path.name}: default {group}={option} has no {target}"
            visit(target, target.parent)

    visit(conf / f"{job}.yaml", conf)
    return files


def conf_env_names() -> set[str]:
    """Every ``${oc.env:NAME`` the team platform config reads."""
    return {n for f in platform_conf_files() for n in OC_ENV.findall(f.read_text())}


def compose_team_config(name: str) -> Any:
    """The platform config `oscflow <command> stack=team ...` composes inside service ``name``:
    its environment (from a filled .env) and the Hydra overrides of its command."""
    from oscflow.config import load

    overrides = [a for a in command_args(SERVICES[name]) if "=" in a]
    with pytest.MonkeyPatch.context() as mp:
        for var in conf_env_names() | set(CLIENT_ENV):
            mp.delenv(var, raising=False)
        for key, value in resolved_environment(name).items():
            mp.setenv(key, value)
        return load("platform", overrides)


@pytest.fixture(scope="module")
def team_config() -> dict[str, Any]:
    return {name: compose_team_config(name) for name in PLATFORM_SERVICES}


def test_platform_services_present() -> None:
    missing = [s for s in PLATFORM_SERVICES if s not in SERVICES]
    assert not missing, f"compose.yaml lacks services {missing}"


@pytest.mark.parametrize("name", PLATFORM_SERVICES)
def test_platform_services_run_the_oscflow_image(name: str) -> None:
    service = SERVICES[name]
    build = service.get("build")
    assert isinstance(build, dict), f"{name} must build the oscflow image"
    assert (DOCKER / build["context"]).resolve() == ROOT, "context: the repository root"
    assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == DOCKER / "Dockerfile"
    images = {SERVICES[s].get("image") for s in PLATFORM_SERVICES}
    assert None not in images, "the oscflow image needs a tag (image:)"
    assert len(images) == 1, f"one image for all platform services: {images}"
    assert "entrypoint" not in service, f"{name} must keep the image's `oscflow` entrypoint"
    assert command_args(service) == PLATFORM_COMMANDS[name]


def test_platform_cli_has_the_commands_compose_runs() -> None:
    from oscflow.platform.cli import COMMANDS

    missing = [c[0] for c in PLATFORM_COMMANDS.values() if c[0] not in COMMANDS]
    assert not missing, f"compose runs `oscflow {missing[0]}`, which the CLI does not have"


def test_platform_start_order() -> None:
    healthy = {
        "intake": {"postgres", "redis"},
        "worker": {"postgres", "redis", "mlflow"},
        "register-webhook": {"mlflow", "intake"},
    }
    for name, needs in healthy.items():
        deps = depends_on(SERVICES[name])
        waits = {d for d, c in deps.items() if c == "service_healthy"}
        assert needs <= waits, f"{name} must wait for healthy {sorted(needs - waits)}"
    assert is_one_shot("register-webhook"), "register-webhook runs once; the worker waits for it"
    assert str(SERVICES["worker"].get("restart")) == "unless-stopped"
    assert str(SERVICES["intake"].get("restart")) == "unless-stopped"


@pytest.mark.parametrize("name", PLATFORM_SERVICES)
def test_platform_services_get_the_environment_the_code_reads(name: str) -> None:
    """Every ${oc.env:NAME} of conf/platform.yaml and the files it composes with stack=team,
    plus the MLflow/S3 client variables, is set in the service (the webhook secret only where
    deliveries are signed or verified)."""
    names = conf_env_names()
    assert {"OSCFLOW_LEDGER_URL", "OSCFLOW_REDIS_URL", WEBHOOK_SECRET} <= names, names
    env = environment(SERVICES[name])
    wanted = (names | set(CLIENT_ENV)) - ({WEBHOOK_SECRET} if name == "worker" else set())
    missing = sorted(wanted - set(env))
    assert not missing, f"{name} lacks {missing}"
    if name == "worker":
        assert WEBHOOK_SECRET not in env, "the worker neither signs nor verifies deliveries"


def test_platform_config_points_at_the_compose_services(team_config: dict[str, Any]) -> None:
    cfg = team_config["worker"]
    args = mlflow_args()
    port = int(flag_value(args, "--port") or 0)
    assert cfg.mlflow.port == port, f"mlflow.port {cfg.mlflow.port} != server --port {port}"
    assert cfg.tracking_uri == f"http://mlflow:{port}"
    assert f"http://127.0.0.1:{port}/health" in healthcheck_urls("mlflow")
    allowed = resolved_environment("mlflow")["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    netloc = urlsplit(cfg.tracking_uri).netloc
    assert any(fnmatch.fnmatch(netloc, p) for p in allowed), f"{netloc} fails the host check"

    env = filled_env()
    assert cfg.mlflow.backend_store_uri == interpolate(flag_value(args, "--backend-store-uri"), env)
    destination = interpolate(flag_value(args, "--artifacts-destination") or "", env)
    assert cfg.mlflow.artifacts_destination == destination
    assert destination.split("/")[2] == interpolate("${MLFLOW_BUCKET:-mlflow}", env)
    # the DVC remote: the bucket minio-init creates, on the endpoint the MLflow server uses
    assert cfg.s3.dvc_remote.split("/")[2] == interpolate("${DVC_BUCKET:-dvc}", env)
    assert cfg.s3.endpoint_url == resolved_environment("mlflow")["MLFLOW_S3_ENDPOINT_URL"]
    assert not cfg.s3.serve, "compose runs MinIO: oscflow starts no S3 server there"

    assert cfg.queue.backend == "redis"
    redis = urlsplit(cfg.queue.redis_url)
    assert (redis.hostname, redis.port) == ("redis", 6379)
    assert flag_value(command_args(SERVICES["redis"]), "--port") in (None, "6379")
    assert redis.password == interpolate(
        flag_value(command_args(SERVICES["redis"]), "--requirepass"), env
    )

    from sqlalchemy.engine import make_url

    postgres = resolved_environment("postgres")
    for url in (cfg.ledger_url, cfg.mlflow.backend_store_uri):
        u = make_url(url)
        # SQLAlchemy >= 2.1 maps a bare postgresql:// to psycopg 3, which is not installed.
        assert u.drivername == "postgresql+psycopg2", url
        assert (u.host, u.port) == ("postgres", 5432), url
        assert (u.username, u.password) == (
            postgres["POSTGRES_USER"],
            postgres["POSTGRES_PASSWORD"],
        )
        assert u.database in postgres_databases(), f"{url}: no such database in postgres"
    assert make_url(cfg.ledger_url).database != make_url(cfg.mlflow.backend_store_uri).database


def test_team_stack_settings_reach_the_config(team_config: dict[str, Any]) -> None:
    """conf/stack/team.yaml's MLflow settings survive composition and match the server."""
    cfg = team_config["worker"]
    args = mlflow_args()
    assert cfg.mlflow.app_name == flag_value(args, "--app-name") == "basic-auth"
    assert cfg.mlflow.workers == int(flag_value(args, "--workers") or 1)
    assert cfg.mlflow.host == "mlflow"


def test_intake_listens_where_mlflow_posts(team_config: dict[str, Any]) -> None:
    cfg = team_config["intake"]
    assert cfg.intake.host == "0.0.0.0", "the intake must listen beyond loopback in a container"
    port = int(cfg.intake.port)
    assert f"http://127.0.0.1:{port}/healthz" in healthcheck_urls("intake")
    assert str(port) in [str(p) for p in SERVICES["intake"].get("expose") or []]
    registered = team_config["register-webhook"]
    assert registered.intake.public_url == f"http://intake:{port}{cfg.intake.path}"
    secret = filled_env()[WEBHOOK_SECRET]
    assert cfg.intake.secret == registered.intake.secret == secret
    assert team_config["worker"].intake.secret is None
    for name in PLATFORM_SERVICES:
        assert not SERVICES[name].get("ports"), f"{name} publishes no host port"


def test_mlflow_authentication() -> None:
    """basic-auth on; users in PostgreSQL (no password in the ini); the admin from .env; the
    platform services sign in as that admin (creating webhooks needs one)."""
    args = mlflow_args()
    assert flag_value(args, "--app-name") == "basic-auth"
    env = environment(SERVICES["mlflow"])
    path = env.get("MLFLOW_AUTH_CONFIG_PATH")
    assert path, "MLFLOW_AUTH_CONFIG_PATH must point at the mounted auth config"
    mounts = [str(v).split(":") for v in SERVICES["mlflow"].get("volumes") or []]
    source = next((m[0] for m in mounts if len(m) > 1 and m[1] == path), None)
    assert source, f"nothing mounted at {path}"
    ini = configparser.ConfigParser()
    ini.read_string((DOCKER / source).read_text())
    from sqlalchemy.engine import make_url

    url = make_url(ini["mlflow"]["database_uri"])
    assert url.drivername == "postgresql+psycopg2", url
    assert url.host == "postgres", url
    assert url.password is None, "the auth database password comes from PGPASSWORD"
    assert url.database in postgres_databases()
    assert (
        url.database
        != make_url(interpolate(flag_value(args, "--backend-store-uri"), filled_env())).database
    )
    pg = environment(SERVICES["postgres"])
    assert env.get("PGPASSWORD") == pg["POSTGRES_PASSWORD"]
    assert interpolate(env.get("PGUSER", ""), {}) == interpolate(pg["POSTGRES_USER"], {})
    for key in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        m = INTERPOLATION.fullmatch(env.get(key, ""))
        assert m, f"{key} must come from .env"
        assert m.group(2) == ":?", f"{key} must be required (${{VAR:?msg}})"
    admin_user = INTERPOLATION.fullmatch(env["MLFLOW_AUTH_ADMIN_USERNAME"])
    admin_password = INTERPOLATION.fullmatch(env["MLFLOW_AUTH_ADMIN_PASSWORD"])
    assert admin_user, "the admin user name must come from .env"
    assert admin_password, "the admin password must come from .env"
    for name in PLATFORM_SERVICES:
        client = environment(SERVICES[name])
        user = INTERPOLATION.fullmatch(client["MLFLOW_TRACKING_USERNAME"])
        password = INTERPOLATION.fullmatch(client["MLFLOW_TRACKING_PASSWORD"])
        assert user, f"{name}: MLFLOW_TRACKING_USERNAME must come from .env"
        assert password, f"{name}: MLFLOW_TRACKING_PASSWORD must come from .env"
        assert user.group(1) == admin_user.group(1), f"{name} must sign in as the admin"
        assert password.group(1) == admin_password.group(1), f"{name}: not the admin password"


def test_postgres_health_means_every_database_exists() -> None:
    test = SERVICES["postgres"]["healthcheck"]["test"]
    text = " ".join(test) if isinstance(test, list) else str(test)
    last = postgres_databases()[-1]
    assert re.search(rf"-d {last}\b.*select 1", text), f"healthcheck must query {last}"


def test_worker_stops_gracefully() -> None:
    worker = SERVICES["worker"]
    assert worker.get("stop_signal") == "SIGINT", "Huey finishes running jobs on SIGINT"


# ---- Dockerfiles -------------------------------------------------------------------------


def dockerfile_args(steps: list[tuple[str, str]]) -> dict[str, str]:
    """ARG name -> default value ("" when it has none)."""
    out = {}
    for word, args in steps:
        if word == "ARG":
            name, _, default = args.partition("=")
            out[name.strip()] = default.strip().strip('"')
    return out


def with_args(text: str, args: dict[str, str]) -> str:
    """A RUN line as the shell sees it for given build-argument values."""
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m[1], m[0]), text)


def test_oscflow_image_installs_torch_before_the_package() -> None:
    steps = dockerfile(DOCKER / "Dockerfile")
    assert steps[0] == ("FROM", "python:3.11-slim")
    defaults = dockerfile_args(steps)
    runs = [(i, args) for i, (word, args) in enumerate(steps) if word == "RUN"]
    torch = [i for i, a in runs if re.search(r"pip install .*torch==", with_args(a, defaults))]
    assert torch, "no RUN pip install torch==..."
    torch_run = with_args(steps[torch[0]][1], defaults)
    assert re.search(r"[\"']?torch==2\.13\.0[\"']?(\s|$)", torch_run), torch_run
    assert re.search(r"--index-url [\"']?https://download\.pytorch\.org/whl/cpu[\"']?\s", torch_run)
    package = [i for i, args in runs if re.search(r"pip install (\S+ )*[\"']?\.\[team\]", args)]
    assert package, "no RUN pip install .[team]"
    assert torch[0] < package[0], "torch must be installed before the package"
    assert "torch" not in steps[package[0]][1].split("&&")[0], "the package step pins no torch"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(d.startswith("boto3") for d in extras["team"]), "the team extra brings boto3"


def test_oscflow_image_has_a_cuda_build_argument() -> None:
    """The torch index is a build argument, CPU by default; another value selects the wheel
    index of that CUDA build, and the ARG is declared before the RUN that reads it."""
    steps = dockerfile(DOCKER / "Dockerfile")
    defaults = dockerfile_args(steps)
    torch = next(
        (i, a)
        for i, (w, a) in enumerate(steps)
        if w == "RUN" and "torch==" in with_args(a, defaults)
    )
    variable = [name for name in defaults if re.search(rf"\$\{{?{name}\b", torch[1])]
    cuda = {**defaults, **dict.fromkeys(variable, "cu128")}
    assert "download.pytorch.org/whl/cu128" in with_args(torch[1], cuda), (
        f"no build argument changes the torch index of: {torch[1]}"
    )
    declared = [i for i, (w, a) in enumerate(steps) if w == "ARG" and a.split("=")[0] in variable]
    assert declared, f"{variable} not declared with ARG"
    assert max(declared) < torch[0], "ARG must come before the RUN that uses it"
    # compose passes only arguments the Dockerfile declares.
    for name, service in SERVICES.items():
        build = service.get("build")
        if isinstance(build, dict) and build.get("dockerfile") == "docker/Dockerfile":
            unknown = set(build.get("args") or {}) - set(defaults)
            assert not unknown, f"{name} passes undeclared build args {unknown}"


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
    assert re.search(r"mlflow\[auth\]==3\.17\.2\b", runs), "mlflow with the auth extra (Flask-WTF)"
    assert "psycopg2" in runs, "PostgreSQL backend needs a driver"
    assert "boto3" in runs, "S3 artifacts need boto3"
