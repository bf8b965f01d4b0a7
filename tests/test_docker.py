"""docker/ agrees with the code: compose.yaml and the Dockerfiles are parsed (no Docker needed) and
checked against Settings, the console scripts of pyproject.toml and their real argparse parsers."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from app.config import WELL_KNOWN_SECRETS, Settings

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCRIPTS = PYPROJECT["project"]["scripts"]
API_DOCKERFILE = (DOCKER / "api.Dockerfile").read_text()
WORKER_DOCKERFILE = (DOCKER / "worker.Dockerfile").read_text()
SETTING_ENV_NAMES = {f"VRFT_{name.upper()}" for name in Settings.model_fields}
VRFT_SERVICES = ("migrate", "api", "worker")
SHARED_SETTINGS = ("VRFT_DATABASE_URL", "VRFT_BROKER_URL", "VRFT_S3_ENDPOINT_URL", "VRFT_S3_BUCKET",
                   "VRFT_S3_ACCESS_KEY_ID", "VRFT_S3_SECRET_ACCESS_KEY", "VRFT_BASE_MODELS")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|TOKEN", re.I)

# Compose interpolation: $$ escapes; ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}.
INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
                           r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)")


def interpolations(text: str):
    for m in INTERPOLATION.finditer(text):
        if m.group(0) != "$$":
            yield m.group("name") or m.group("bare"), m.group("op")


def interpolate(text: str, env: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("name") or m.group("bare")
        op, arg, value = m.group("op"), m.group("arg"), env.get(name)
        if op in (":?", "?") and not value and not (op == "?" and value is not None):
            raise KeyError(f"{name}: {arg}")
        if op in (":-", "-") and (value is None or (op == ":-" and not value)):
            return arg
        return value or ""
    return INTERPOLATION.sub(sub, text)


def dotenv(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


EXAMPLE_ENV = dotenv(DOCKER / ".env.example")
# .env.example leaves every required value empty (compose refuses to start until filled): fill them
# the way an operator would, with fresh non-default values.
FILLED_ENV = {k: v or f"filled-{k.lower().replace('_', '-')}-0123456789abcdef" for k, v in EXAMPLE_ENV.items()}
FILLED_ENV["S3_ENDPOINT_URL"] = "http://vrft.example.com:8333"


def strings(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, str):
        yield node


def environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def command(service: str) -> list[str]:
    cmd = SERVICES[service].get("command")
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)


class _Parsed(Exception):
    def __init__(self, namespace):
        self.namespace = namespace


def parse_with_console_script(argv: list[str]) -> argparse.Namespace:
    """Run the console script's real entry point up to its argparse call; SystemExit(2) = bad args."""
    assert argv[0] in SCRIPTS, f"{argv[0]!r} is not a console script of pyproject.toml ({sorted(SCRIPTS)})"
    module, _, func = SCRIPTS[argv[0]].partition(":")
    entry = getattr(importlib.import_module(module), func)
    original = argparse.ArgumentParser.parse_args

    def capture(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(argparse.ArgumentParser, "parse_args", capture)
        try:
            entry(argv[1:])
        except _Parsed as parsed:
            return parsed.namespace
    raise AssertionError(f"{argv} never reached its argument parser")


def dockerfile_cmd(text: str) -> list[str]:
    lines = [line for line in text.splitlines() if line.startswith("CMD ")]
    assert len(lines) == 1, "one CMD per Dockerfile"
    return json.loads(lines[0][4:])  # exec form


def run_instructions(text: str) -> str:
    joined = re.sub(r"\\\n", " ", text)
    return "\n".join(line for line in joined.splitlines() if line.startswith("RUN "))


# -- compose: settings ------------------------------------------------------------------------------

def test_every_vrft_variable_in_compose_is_a_setting():
    used = {key for svc in SERVICES for key in environment(svc) if key.startswith("VRFT_")}
    used |= {name for s in strings(COMPOSE) for name, _ in interpolations(s) if name.startswith("VRFT_")}
    assert used, "compose configures vrft through VRFT_* variables"
    assert used <= SETTING_ENV_NAMES, f"not Settings fields: {sorted(used - SETTING_ENV_NAMES)}"


@pytest.mark.parametrize("service", VRFT_SERVICES)
def test_vrft_services_share_database_broker_and_s3(service):
    env = environment(service)
    missing = [name for name in SHARED_SETTINGS if not env.get(name)]
    assert not missing, f"{service} lacks {missing}"
    api = environment("api")
    assert {k: env[k] for k in SHARED_SETTINGS} == {k: api[k] for k in SHARED_SETTINGS}, \
        f"{service} and api must point at the same database, broker, bucket and models"


@pytest.mark.parametrize("service", VRFT_SERVICES)
def test_example_env_gives_valid_production_settings(service, monkeypatch):
    """With docker/.env.example filled in, Settings parse, use Postgres/Redis/S3 and would serve on 0.0.0.0."""
    for name in list(os.environ):
        if name.startswith("VRFT_"):
            monkeypatch.delenv(name)
    for name, value in environment(service).items():
        monkeypatch.setenv(name, interpolate(value, FILLED_ENV))
    settings = Settings()
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert urlsplit(settings.broker_url).scheme == "redis" and not settings.embedded
    assert settings.s3_bucket and settings.s3_access_key_id and settings.s3_secret_access_key
    assert settings.insecure_reasons("0.0.0.0") == []
    json.dumps(settings.base_models)


def test_compose_variables_are_documented_in_env_example():
    used = {name for s in strings(COMPOSE) for name, _ in interpolations(s)}
    assert used <= set(EXAMPLE_ENV), f"missing from docker/.env.example: {sorted(used - set(EXAMPLE_ENV))}"


def test_no_secret_has_a_default():
    """Every secret is `${VAR:?...}`: compose refuses to start without it rather than using a default."""
    for s in strings(COMPOSE):
        for name, op in interpolations(s):
            if SECRET_NAME.search(name):
                assert op == ":?", f"${{{name}}} must be written ${{{name}:?...}} in compose.yaml"
    for svc in SERVICES:
        for key, value in environment(svc).items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", value), f"{svc}.{key} must be ${{VAR:?...}}"
            if "://" in value:  # a password inside a URL must be a required variable too
                markers = {name: f"var-{name}" for name, _ in interpolations(value)}
                password = urlsplit(interpolate(value, markers)).password
                if password:
                    name = password.removeprefix("var-")
                    assert password in markers.values() and f"${{{name}:?" in value, \
                        f"{svc}.{key} has a literal password or one with a default"
    for key, value in EXAMPLE_ENV.items():
        if SECRET_NAME.search(key):
            assert value == "", f".env.example must leave {key} empty, so compose refuses to start until it is set"
    for service in VRFT_SERVICES:  # as copied, unfilled, the example env is refused
        with pytest.raises(KeyError):
            [interpolate(v, EXAMPLE_ENV) for v in environment(service).values()]
    assert not WELL_KNOWN_SECRETS & {interpolate("${S3_SECRET_ACCESS_KEY:?x}", FILLED_ENV)}


def test_worker_model_cache_is_a_setting_on_a_volume():
    env = environment("worker")
    cache = env["VRFT_MODEL_CACHE"]
    targets = [v.split(":")[1] for v in SERVICES["worker"]["volumes"]]
    assert any(cache == t or cache.startswith(t.rstrip("/") + "/") for t in targets), (cache, targets)
    assert "VRFT_MODEL_CACHE" in SETTING_ENV_NAMES


# -- compose: commands, ordering, GPU ---------------------------------------------------------------

@pytest.mark.parametrize("service", VRFT_SERVICES)
def test_service_commands_are_console_scripts_with_valid_arguments(service):
    argv = command(service)
    parse_with_console_script(argv)  # raises SystemExit(2) on an unknown subcommand or option


def test_commands_do_the_right_thing():
    assert parse_with_console_script(command("migrate")).command == "migrate"
    serve = parse_with_console_script(command("api"))
    assert serve.command == "serve" and serve.host == "0.0.0.0"
    ports = [str(p) for p in SERVICES["api"]["ports"]]
    assert any(p.endswith(f":{serve.port}") for p in ports), ports
    assert command("worker")[0] == "vrft-worker"
    with pytest.raises(SystemExit):  # the parser really is checked: a bad subcommand is refused
        parse_with_console_script(["vrft-server", "no-such-command"])
    # the README's first-key and multi-GPU commands parse too
    assert parse_with_console_script(["vrft-server", "create-key", "--project", "NAME"]).project == "NAME"
    assert parse_with_console_script(["vrft-worker", "--gpus", "0,1,2,3"]).gpus == "0,1,2,3"


def test_migrate_runs_once_before_api_and_worker():
    migrate = SERVICES["migrate"]
    assert migrate.get("restart", "no") == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for svc in ("api", "worker"):
        assert SERVICES[svc]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", svc


def test_healthy_conditions_have_healthchecks():
    for svc, spec in SERVICES.items():
        for dep, cond in (spec.get("depends_on") or {}).items():
            assert dep in SERVICES, f"{svc} depends on unknown {dep}"
            if cond.get("condition") == "service_healthy":
                assert "healthcheck" in SERVICES[dep], f"{svc} waits for {dep} to be healthy but it has no healthcheck"


def test_worker_reserves_a_gpu_and_api_does_not():
    devices = SERVICES["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) and d.get("count") for d in devices)
    assert "deploy" not in SERVICES["api"]


def test_images_match_dockerfiles():
    assert SERVICES["migrate"]["image"] == SERVICES["api"]["image"]
    for svc, dockerfile in (("migrate", "api"), ("api", "api"), ("worker", "worker")):
        build = SERVICES[svc]["build"]
        assert (DOCKER / build["context"]).resolve() == ROOT
        assert build["dockerfile"] == f"docker/{dockerfile}.Dockerfile"
    args = SERVICES["worker"]["build"].get("args", {})
    for name in args:
        assert re.search(rf"^ARG {name}\b", WORKER_DOCKERFILE, re.M), f"worker build arg {name} is not an ARG"


def test_backing_services():
    assert SERVICES["postgres"]["image"].startswith("postgres:16")
    assert SERVICES["redis"]["image"].startswith("redis:7")
    redis_cmd = " ".join(command("redis"))
    assert "--appendonly yes" in redis_cmd, "the broker must persist queued jobs"
    assert "--save \"\"" not in redis_cmd
    for svc in ("postgres", "redis", "s3"):
        named = [v for v in SERVICES[svc]["volumes"] if ":" in v and not v.startswith((".", "/"))]
        assert named, f"{svc} needs a named volume"
    s3_conf = COMPOSE["configs"]["s3-identities"]["content"]
    identities = json.loads(interpolate(s3_conf, FILLED_ENV))
    (cred,) = identities["identities"][0]["credentials"]
    assert cred == {"accessKey": FILLED_ENV["S3_ACCESS_KEY_ID"], "secretKey": FILLED_ENV["S3_SECRET_ACCESS_KEY"]}
    assert "-ip.bind=0.0.0.0" in command("s3"), "the healthcheck probes 127.0.0.1"


# -- Dockerfiles ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [API_DOCKERFILE, WORKER_DOCKERFILE], ids=["api", "worker"])
def test_dockerfile_cmd_is_a_console_script(text):
    parse_with_console_script(dockerfile_cmd(text))


@pytest.mark.parametrize("text", [API_DOCKERFILE, WORKER_DOCKERFILE], ids=["api", "worker"])
def test_image_keeps_migrations_next_to_the_app_package(text):
    """app/migrate.py reads ROOT/alembic.ini and ROOT/migrations with ROOT = app/.. : editable install."""
    from app import migrate

    assert migrate.ROOT == ROOT and (ROOT / "alembic.ini").exists() and (ROOT / "migrations").is_dir()
    copies = re.findall(r"^COPY (.+)$", text, re.M)
    copied = {Path(src).name for line in copies for src in line.split()[:-1]}
    assert {"pyproject.toml", "alembic.ini", "migrations", "app", "workers"} <= copied
    assert re.search(r"pip install -e ", run_instructions(text)), "install editable so migrations are found"
    assert re.search(r"^USER (?!root)\S+", text, re.M), "run as a non-root user"


def test_api_image_has_no_torch():
    runs = run_instructions(API_DOCKERFILE)
    assert re.search(r"^FROM python:3\.11-slim", API_DOCKERFILE, re.M)
    assert "[worker" not in runs and "torch" not in runs
    assert "torch" not in " ".join(PYPROJECT["project"]["dependencies"]), "the base install must stay torch-free"
    assert "EXPOSE 8000" in API_DOCKERFILE
    assert "/healthz" in re.search(r"^HEALTHCHECK.*(?:\n .*)*", API_DOCKERFILE, re.M).group(0)
    assert re.search(r"""@app\.get\(["']/healthz["']""", (ROOT / "app" / "main.py").read_text())


def test_worker_image_installs_pinned_cuda_torch_then_the_worker_extra():
    runs = run_instructions(WORKER_DOCKERFILE)
    assert re.search(r"^(ARG|FROM) .*nvidia/cuda:", WORKER_DOCKERFILE, re.M)
    assert re.search(r"^ARG TORCH_VERSION=", WORKER_DOCKERFILE, re.M)
    assert re.search(r"^ARG TORCH_INDEX_URL=https://download\.pytorch\.org/whl/cu\d+", WORKER_DOCKERFILE, re.M)
    torch_at = runs.find('"torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"')
    extra_at = runs.find('.[worker]')
    assert 0 <= torch_at < extra_at, "pinned torch from the CUDA index first, then the project with [worker]"
    assert "worker" in PYPROJECT["project"]["optional-dependencies"]
    default = re.search(r"^ARG TORCH_VERSION=(\S+)", WORKER_DOCKERFILE, re.M).group(1)
    torch_req = next(r for r in PYPROJECT["project"]["optional-dependencies"]["worker"] if r.startswith("torch"))
    from packaging.requirements import Requirement

    assert Requirement(torch_req).specifier.contains(default), f"{torch_req} would replace torch {default}"
    assert default == SERVICES["worker"]["build"]["args"]["TORCH_VERSION"].split(":-")[1].rstrip("}")


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_context():
    patterns = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    for needed in (".venv", ".git", "var", ".vrft", "test-output"):
        assert needed in patterns, needed
    assert {"docker/.env", "**/.env"} & patterns
    assert ".env" in (DOCKER / ".gitignore").read_text().split()
