"""docker-compose.yml, Dockerfile and .env.example, checked without a Docker engine.

No Docker engine runs here, so nothing is built or started: the files are parsed and
compared with what the native stack of the integration test runs (``tests/prod_stack.py``:
USER_ENV, INIT, COMPONENTS), with churnops' settings, and with this venv (built from the
same lock as the image).

How compose is compared with the native stack:

- An Airflow command in compose is ``churnops airflow --no-setup ARGS``
  (``AIRFLOW_IN_PROJECT_ENV``): it execs ``airflow ARGS`` in the project's Airflow
  environment, the environment ProdStack starts its components with (LocalAirflow's; the
  two are the same: tests/unit/test_settings_and_cli.py). It is compared as ``airflow ARGS``.
- Programs are compared by name (ProdStack runs them by their path in the venv).
- A ``{placeholder}`` of the native stack's templates stands for what a deployment fills
  differently (hosts, ports, paths, database names, credentials, sizes) and matches any
  text in compose, but one placeholder has one value over the whole file: ``{airflow_db}``
  is the same database in the metadata URL and the Celery result backend, ``{mlflow_port}``
  the same port in the tracking URI, the server's ``--port``, its published port and its
  health check. Everything else must be equal, token by token: subcommands, flags, their
  order, fixed values (``prod``, ``CeleryExecutor``, the queue).
"""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import PROJECT_DIR
from tests.prod_stack import (
    AIRFLOW_IN_PROJECT_ENV,
    COMPONENTS,
    INIT,
    MLFLOW_SERVER_ENV,
    USER_ENV,
)

pytestmark = pytest.mark.unit

COMPOSE_FILE = PROJECT_DIR / "docker-compose.yml"
DOCKERFILE = PROJECT_DIR / "Dockerfile"
ENV_EXAMPLE = PROJECT_DIR / ".env.example"
SERVICES_WITHOUT_NATIVE_COMMAND = {"postgres", "redis"}  # the machine's own servers natively
LONG_RUNNING = set(COMPONENTS) | SERVICES_WITHOUT_NATIVE_COMMAND
SCORING_SERVICE = "churnops-serve"  # churnops' own service: no native stack component
AIRFLOW_SERVICES = {name for name in COMPONENTS if name.startswith("airflow-")} | set(INIT)

# Variables the Airflow services get in compose and the native stack does not, and why:
# name -> the form of its value (a template, as in USER_ENV), or "" for any value.
COMPOSE_ONLY_ENV = {
    # The Airflow home churnops derives from CHURNOPS_STATE_DIR (checked equal below), also
    # for commands that do not go through `churnops airflow`: the worker's health check.
    "AIRFLOW_HOME": "",
    # Containers reach the API server by its service name; the native stack is one host,
    # where churnops' own localhost addresses are right.
    "AIRFLOW__API__BASE_URL": "",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://{api_host}:{api_port}/execution/",
    # Secrets: natively the JWT secret is generated once in the state dir, and the test
    # stack stores no connection that a Fernet key would encrypt.
    "AIRFLOW__API_AUTH__JWT_SECRET": "",
    "AIRFLOW__CORE__FERNET_KEY": "",
}
# churnops' own settings (CHURNOPS_*) beyond USER_ENV may differ freely: they tune the
# pipeline, not the wiring, and the native test gives its own (a small simulated base).
# Each must be a real setting (test_every_churnops_variable_is_a_real_setting).
SECRET_NAME = re.compile(r"PASS|SECRET|KEY|TOKEN|AUTH")
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}, ...
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<modifier>:?[-?+])(?P<rest>[^}]*))?\}")
PLACEHOLDER = re.compile(r"\{(\w+)\}")


# ----------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def compose(text: str) -> dict[str, Any]:
    return yaml.safe_load(text)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def interpolations(text: str) -> Iterator[re.Match[str]]:
    """Every ``${...}`` compose fills in (``$$`` is a literal dollar)."""
    return INTERPOLATION.finditer(text.replace("$$", ""))


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """``value`` as compose fills it from ``env`` (only the forms this file may use)."""

    def one(match: re.Match[str]) -> str:
        name, modifier, rest = match["name"], match["modifier"], match["rest"]
        if env.get(name):
            return env[name]
        if modifier == ":?":
            raise KeyError(f"compose would refuse: {name} is required ({rest})")
        return rest if modifier == ":-" else ""

    return INTERPOLATION.sub(one, value)


def command(service: dict[str, Any]) -> list[str]:
    """A service's command as a list (this file writes every command as a list)."""
    cmd = service.get("command")
    assert isinstance(cmd, list), f"write the command as a list, not {cmd!r}"
    return [str(arg) for arg in cmd]


def as_native(cmd: list[str]) -> list[str]:
    """`churnops airflow --no-setup ARGS` -> `airflow ARGS` (see the module docstring)."""
    wrapper = list(AIRFLOW_IN_PROJECT_ENV)
    return ["airflow", *cmd[len(wrapper) :]] if cmd[: len(wrapper)] == wrapper else cmd


def health_test(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else str(test)


class Bindings(dict[str, str]):
    """Placeholder -> the one value compose gives it."""

    def match(self, template: str, value: str, where: str) -> None:
        parts = PLACEHOLDER.split(template)
        pattern = ""
        for i, part in enumerate(parts):
            if i % 2 == 0:
                pattern += re.escape(part)
            else:
                pattern += f"(?P<{part}>.+?)"
        found = re.fullmatch(pattern, value)
        assert found, f"{where}: {value!r} is not of the native stack's form {template!r}"
        for name, got in found.groupdict().items():
            bound = self.setdefault(name, got)
            assert bound == got, f"{where}: {{{name}}} is {got!r} here, {bound!r} elsewhere"

    def match_command(self, template: tuple[str, ...], cmd: list[str], where: str) -> None:
        cmd = as_native(cmd)
        assert Path(cmd[0]).name == template[0], f"{where}: runs {cmd[0]}, not {template[0]}"
        assert len(cmd) == len(template), f"{where}: {cmd} is not {list(template)}"
        for position, (expected, got) in enumerate(zip(template[1:], cmd[1:], strict=True)):
            self.match(expected, got, f"{where}, argument {position + 1}")


def bind_everything(services: dict[str, dict[str, Any]]) -> Bindings:
    """Match every command and every native variable of compose with the native stack's
    templates, with one value per placeholder; return the values."""
    bindings = Bindings()
    for name, template in {**COMPONENTS, **INIT}.items():
        bindings.match_command(template, command(services[name]), name)
    for name in sorted(AIRFLOW_SERVICES):
        env = services[name]["environment"]
        for variable, template in {**USER_ENV, **COMPOSE_ONLY_ENV}.items():
            if template:
                bindings.match(template, str(env[variable]), f"{name} {variable}")
    return bindings


def native_program(name: str) -> Path:
    return Path(sys.executable).parent / name


# ----------------------------------------------------------------------------- services
def test_the_services_are_the_native_stacks(services: dict[str, dict[str, Any]]) -> None:
    """One service per native component, the init job, the two servers, the scoring service."""
    assert set(services) == (
        set(COMPONENTS) | set(INIT) | SERVICES_WITHOUT_NATIVE_COMMAND | {SCORING_SERVICE}
    )


def test_the_scoring_service_scales_on_the_online_store(
    services: dict[str, dict[str, Any]],
) -> None:
    """churnops serve on all interfaces, no fixed name or host port (it scales), its
    health check on /healthz, the online store in Redis (not the broker's database), and
    the same online store URL for the Airflow workers that write it."""
    serve = services[SCORING_SERVICE]
    cmd = command(serve)
    assert cmd[:2] == ["churnops", "serve"] and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert "container_name" not in serve and "ports" not in serve
    assert "/healthz" in health_test(serve)
    url = serve["environment"]["CHURNOPS_ONLINE_STORE_URL"]
    assert "@redis:6379/1" in url
    assert services["airflow-worker"]["environment"]["CHURNOPS_ONLINE_STORE_URL"] == url
    assert services["airflow-worker"]["environment"]["AIRFLOW__CELERY__BROKER_URL"].endswith("/0")
    assert {"redis", "mlflow"} <= set(serve["depends_on"])
    state_dir = serve["environment"]["CHURNOPS_STATE_DIR"]
    assert _mounts(serve)[state_dir] == "churnops-state"


def test_each_service_runs_the_native_stacks_command(
    services: dict[str, dict[str, Any]],
) -> None:
    bindings = Bindings()
    for name, template in {**COMPONENTS, **INIT}.items():
        bindings.match_command(template, command(services[name]), name)
    # The airflow components go through the wrapper, so they get the project's Airflow
    # environment; calling `airflow` directly would skip it.
    for name in COMPONENTS:
        if COMPONENTS[name][0] == "airflow":
            assert command(services[name])[: len(AIRFLOW_IN_PROJECT_ENV)] == list(
                AIRFLOW_IN_PROJECT_ENV
            ), name


def test_the_airflow_services_get_the_native_stacks_variables(
    services: dict[str, dict[str, Any]],
) -> None:
    """The same names as the native stack exports (USER_ENV), of the same form; any other
    is one of the few compose needs and the native stack does not (COMPOSE_ONLY_ENV)."""
    bindings = Bindings()
    for name in sorted(AIRFLOW_SERVICES):
        env = services[name]["environment"]
        missing = set(USER_ENV) - set(env)
        assert not missing, f"{name} lacks {sorted(missing)}, which the native stack sets"
        extra = {
            variable
            for variable in set(env) - set(USER_ENV) - set(COMPOSE_ONLY_ENV)
            if not variable.startswith("CHURNOPS_")
        }
        assert not extra, (
            f"{name} sets {sorted(extra)}: set them in the native stack too "
            "(tests/prod_stack.py USER_ENV), or say here why only compose needs them"
        )
        for variable, template in USER_ENV.items():
            bindings.match(template, str(env[variable]), f"{name} {variable}")
    # Only the init job sets the admin password (natively it is generated once).
    for name in AIRFLOW_SERVICES - set(INIT):
        assert "CHURNOPS_AIRFLOW_ADMIN_PASSWORD" not in services[name]["environment"], name
    assert "CHURNOPS_AIRFLOW_ADMIN_PASSWORD" in services["airflow-init"]["environment"]


def test_one_value_per_placeholder_and_the_values_name_real_services(
    services: dict[str, dict[str, Any]],
) -> None:
    """Commands and variables together: every URL points at a service of this file, on
    the port that service listens on; the three databases are distinct and exist."""
    bindings = bind_everything(services)
    postgres = services["postgres"]["environment"]
    user = bindings["postgres_login"].split(":", 1)[0]
    assert user == postgres["POSTGRES_USER"]
    assert bindings["postgres_server"] == "postgres:5432"
    assert bindings["redis_server"].rsplit("@", 1)[-1] == "redis:6379"
    databases = [bindings[f"{part}_db"] for part in ("warehouse", "airflow", "mlflow")]
    assert len(set(databases)) == 3, f"one database for two purposes: {databases}"
    init_sql = (PROJECT_DIR / "scripts" / "postgres-init.sql").read_text()
    created = {postgres["POSTGRES_DB"]} | set(re.findall(r"CREATE DATABASE (\w+)", init_sql))
    assert set(databases) <= created, f"not created: {set(databases) - created}"
    # MLflow: the tracking URI reaches the server's port, published and health-checked.
    mlflow = services["mlflow"]
    assert bindings["mlflow_host"] == "mlflow"
    assert bindings["mlflow_bind"] == "0.0.0.0"  # reachable from the other containers
    port = bindings["mlflow_port"]
    assert [str(p).rsplit(":", 1)[-1] for p in mlflow["ports"]] == [port]
    assert f"http://localhost:{port}/health" in health_test(mlflow)
    assert f"mlflow:{port}" in mlflow["environment"]["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    # The server's own settings are the native stack's.
    assert MLFLOW_SERVER_ENV.items() <= mlflow["environment"].items()
    # The API server: what the workers call, what is published and health-checked.
    api = services["airflow-api-server"]
    assert bindings["api_host"] == "airflow-api-server"
    port = bindings["api_port"]
    assert [str(p).rsplit(":", 1)[-1] for p in api["ports"]] == [port]
    assert f"http://localhost:{port}/api/v2/monitor/health" in health_test(api)


def test_churnops_gives_the_components_the_compose_settings(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """What the components end up with: churnops' Airflow environment for the compose
    settings keeps the API server's address and the secrets compose gives (a component
    elsewhere than localhost), and its Airflow home is compose's AIRFLOW_HOME."""
    from churnops.orchestration.environment import airflow_env
    from churnops.settings import load_settings

    # The secrets a user must give; every optional variable takes the file's default.
    given = {
        m["name"]: f"value-of-{m['name']}"
        for m in interpolations(COMPOSE_FILE.read_text())
        if m["modifier"] == ":?"
    }
    for name in sorted(AIRFLOW_SERVICES):
        env = {k: interpolate(str(v), given) for k, v in services[name]["environment"].items()}
        settings = load_settings(env)
        assert settings.profile == "prod" and settings.warehouse.kind == "postgres"
        assert str(settings.paths.airflow_home) == env["AIRFLOW_HOME"], name
        assert settings.mlflow.tracking_uri == env["CHURNOPS_MLFLOW_TRACKING_URI"]
        # airflow_env writes the state dir's JWT secret: a throw-away state dir here.
        elsewhere = load_settings({**env, "CHURNOPS_STATE_DIR": str(tmp_path)})
        result = airflow_env(elsewhere, environ=env)
        for variable in (
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            "AIRFLOW__CORE__EXECUTOR",
            "AIRFLOW__API__BASE_URL",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
            "AIRFLOW__API_AUTH__JWT_SECRET",
        ):
            assert result[variable] == env[variable], f"{name}: churnops overrides {variable}"


def test_every_churnops_variable_is_a_real_setting(services: dict[str, dict[str, Any]]) -> None:
    """A typo in a CHURNOPS_* name would be silently ignored: each must be read somewhere."""
    code = (
        "\n".join(p.read_text() for p in (PROJECT_DIR / "include" / "churnops").rglob("*.py"))
        + (PROJECT_DIR / "dbt_project" / "profiles.yml").read_text()
    )
    names = {n for s in services.values() for n in s.get("environment", {}) if "CHURNOPS_" in n}
    assert names
    for name in sorted(names):
        assert re.search(rf"\b{name}\b", code), f"{name} is not read by churnops"


# ----------------------------------------------------------------------------- health
def test_every_long_running_service_has_its_health_check(
    services: dict[str, dict[str, Any]],
) -> None:
    wrapper = " ".join(AIRFLOW_IN_PROJECT_ENV)
    expected = {
        "postgres": ["pg_isready"],
        "redis": ["redis-cli ping"],
        "mlflow": ["/health"],
        "airflow-api-server": ["/api/v2/monitor/health"],
        "airflow-scheduler": [f"CMD {wrapper} jobs check --job-type SchedulerJob --local"],
        "airflow-dag-processor": [f"CMD {wrapper} jobs check --job-type DagProcessorJob --local"],
        "airflow-triggerer": [f"CMD {wrapper} jobs check --job-type TriggererJob --local"],
        "airflow-worker": ["celery --app airflow.providers.celery.executors.celery_executor.app"],
    }
    assert set(expected) == LONG_RUNNING
    for name in sorted(LONG_RUNNING):
        test = health_test(services[name])
        for fragment in expected[name]:
            assert fragment in test, f"{name}'s health check {test!r} lacks {fragment!r}"
    for name in INIT:
        assert "healthcheck" not in services[name], f"{name} runs once: nothing to check"


def test_the_worker_health_check_pings_that_worker(services: dict[str, dict[str, Any]]) -> None:
    """Celery names the worker by --celery-hostname (%h: the container's hostname, which
    the shell has as $HOSTNAME); the ping must ask that name, or it fails on a good worker
    (or passes on a bad one)."""
    worker = services["airflow-worker"]
    cmd = command(worker)
    name = cmd[cmd.index("--celery-hostname") + 1]
    assert "%h" in name, "without the container's hostname, scaled workers share one name"
    assert health_test(worker).startswith("CMD-SHELL")  # $HOSTNAME needs a shell
    assert f"inspect ping -d {name.replace('%h', '$${HOSTNAME}')}" in health_test(worker)


def test_the_health_checks_use_what_the_installed_airflow_has() -> None:
    """`airflow jobs check` accepts these job types and --local in this Airflow, and the
    Celery app the worker's check pings exists (read from the installed source: no import)."""
    spec = importlib.util.find_spec("airflow")
    assert spec is not None and spec.submodule_search_locations
    airflow_dir = Path(next(iter(spec.submodule_search_locations)))
    cli = (airflow_dir / "cli" / "cli_config.py").read_text()
    job_types = re.search(r"ARG_JOB_TYPE_FILTER = Arg\(.*?choices=\(([^)]*)\)", cli, re.S)
    assert job_types, "ARG_JOB_TYPE_FILTER not found in airflow/cli/cli_config.py"
    assert set(re.findall(r'"(\w+)"', job_types[1])) >= {
        "SchedulerJob",
        "DagProcessorJob",
        "TriggererJob",
    }
    assert re.search(r'ARG_JOB_HOSTNAME_CALLABLE_FILTER = Arg\(\s*\("--local",\)', cli)
    executor = airflow_dir / "providers" / "celery" / "executors" / "celery_executor.py"
    assert 'if name == "app"' in executor.read_text()


def test_services_start_after_what_they_need(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for needed, how in service.get("depends_on", {}).items():
            condition = how["condition"]
            if needed in INIT:
                assert condition == "service_completed_successfully", (name, needed)
            else:
                assert condition == "service_healthy", (name, needed)
                assert "healthcheck" in services[needed], f"{name} waits for {needed}'s health"
    for name in AIRFLOW_SERVICES - set(INIT):
        depends = services[name]["depends_on"]
        assert {"postgres", "redis", *INIT} <= set(depends), name
    assert {"mlflow", "airflow-api-server"} <= set(services["airflow-worker"]["depends_on"])
    assert "postgres" in services["mlflow"]["depends_on"]
    assert "postgres" in services["airflow-init"]["depends_on"]
    assert services["airflow-init"]["restart"] == "no"
    for name in LONG_RUNNING:
        assert services[name]["restart"] == "unless-stopped", name


def test_the_worker_scales(services: dict[str, dict[str, Any]]) -> None:
    """`docker compose up --scale airflow-worker=4` needs no fixed name, hostname or
    host port on the worker."""
    worker = services["airflow-worker"]
    assert not {"container_name", "hostname", "ports"} & set(worker)


# ----------------------------------------------------------------------------- state
def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Mount target -> source, for the short syntax this file uses."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        mounts[target] = source
    return mounts


def test_state_lives_in_named_volumes(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose["volumes"])
    assert declared == {"postgres-data", "churnops-state", "mlflow-artifacts"}
    used = {
        source
        for service in services.values()
        for source in _mounts(service).values()
        if not source.startswith(("./", "/"))
    }
    assert used == declared, "every named volume declared and used"
    assert _mounts(services["postgres"])["/var/lib/postgresql/data"] == "postgres-data"
    mlflow = command(services["mlflow"])
    artifacts = mlflow[mlflow.index("--artifacts-destination") + 1]
    assert _mounts(services["mlflow"])[artifacts] == "mlflow-artifacts"
    for name in AIRFLOW_SERVICES:
        state_dir = services[name]["environment"]["CHURNOPS_STATE_DIR"]
        assert _mounts(services[name])[state_dir] == "churnops-state", name
    # The image owns the mount points, so a new volume is writable by its user.
    dockerfile = DOCKERFILE.read_text()
    for target in (artifacts, services["airflow-worker"]["environment"]["CHURNOPS_STATE_DIR"]):
        assert re.search(rf"mkdir -p [^\n]*{re.escape(target)}\b", dockerfile), target
        assert re.search(rf"chown [^\n]*{re.escape(target)}\b", dockerfile), target


def test_mounted_files_exist(services: dict[str, dict[str, Any]]) -> None:
    bound = [s for service in services.values() for s in _mounts(service).values()]
    files = [s for s in bound if s.startswith("./")]
    assert files
    for source in files:
        assert (PROJECT_DIR / source).is_file(), source
    assert not [s for s in bound if s.startswith("/")], "no absolute host paths"
    for name, service in services.items():
        if "build" in service:
            assert service["build"] == ".", name
    assert DOCKERFILE.is_file()


# ----------------------------------------------------------------------------- secrets
def test_compose_refuses_to_start_without_its_secrets(text: str) -> None:
    """Every secret is `${NAME:?...}`: required and non-empty; none has a default."""
    secrets = [m for m in interpolations(text) if SECRET_NAME.search(m["name"])]
    assert {m["name"] for m in secrets} >= {
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
        "AIRFLOW_JWT_SECRET",
        "AIRFLOW_FERNET_KEY",
        "CHURNOPS_AIRFLOW_ADMIN_PASSWORD",
    }
    for match in secrets:
        assert match["modifier"] == ":?", f"{match[0]}: a secret must be ${{NAME:?...}}"
    assert not re.search(r"\$(?![{$])", text.replace("$$", "")), "use ${NAME}, not $NAME"


def test_no_secret_is_written_in_the_file(services: dict[str, dict[str, Any]], text: str) -> None:
    """Secret-named variables and the passwords in URLs and flags are references only."""
    required = re.compile(r"\$\{\w+:\?[^}]*\}")
    for name, service in services.items():
        for variable, value in service.get("environment", {}).items():
            if SECRET_NAME.search(variable):
                assert required.fullmatch(str(value)), f"{name} {variable}={value!r}"
        cmd = [str(arg) for arg in service.get("command") or []]
        for flag, value in zip(cmd, cmd[1:], strict=False):
            if flag.startswith("--") and SECRET_NAME.search(flag.upper()):
                assert required.fullmatch(value), f"{name} {flag} {value!r}"
    credentials = re.findall(r"://[^/\s:@]*:(.+?)@", text.replace("$$", ""))
    assert credentials
    for password in credentials:
        assert required.fullmatch(password), f"a password in a URL: {password!r}"


def test_env_example_lists_every_variable_compose_reads(text: str) -> None:
    """Each ${NAME} is in .env.example; the required ones uncommented and empty (no
    default password there either), the others as examples."""
    example = ENV_EXAMPLE.read_text()
    listed = dict(re.findall(r"^#? ?(\w+)=(.*)$", example, re.M))
    references = list(interpolations(text))
    assert references
    for match in references:
        assert match["name"] in listed, f"{match['name']} is not in .env.example"
        if match["modifier"] == ":?":
            assert re.search(rf"^{match['name']}=$", example, re.M), (
                f".env.example: {match['name']} must be an empty, uncommented line"
            )


# ----------------------------------------------------------------------------- image
def test_the_image_installs_what_the_services_run(services: dict[str, dict[str, Any]]) -> None:
    """The Dockerfile installs the lock (no dev group) and parses the dbt project; what
    the services run is installed by that lock (this venv is built from it)."""
    dockerfile = "\n".join(
        line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    project = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]
    minor = re.search(r">=3\.(\d+)", project["requires-python"])
    assert minor and re.search(rf"^FROM python:3\.{minor[1]}\b", dockerfile, re.M)
    syncs = re.findall(r"uv sync [^\n]*", dockerfile)
    assert syncs and all({"--frozen", "--no-dev"} <= set(s.split()) for s in syncs), syncs
    assert re.search(r"\bdbt parse\b", dockerfile)
    apt = re.search(r"apt-get install [^\n]*", dockerfile)
    assert apt and {"gcc", "libgomp1"} <= set(apt[0].split()), "compiled scoring, LightGBM"
    assert project["scripts"]["churnops"] == "churnops.cli:main"
    programs = set()
    for service in services.values():
        if "build" not in service:
            continue
        programs.add(command(service)[0])
        test = service.get("healthcheck", {}).get("test")
        if test:
            programs.add(test[1] if test[0] == "CMD" else test[1].split()[0])
    assert programs == {"churnops", "mlflow", "python", "celery"}
    for program in sorted(programs):
        assert native_program(program).exists(), f"{program} is not in the venv"


def test_the_lock_gives_the_image_the_prod_profiles_drivers() -> None:
    """Without the dev group, the lock still brings Celery and its Redis client, the
    PostgreSQL drivers (psycopg2 for Airflow and MLflow, asyncpg for Airflow's async
    paths, ADBC for the warehouse) and the providers."""
    lock = tomllib.loads((PROJECT_DIR / "uv.lock").read_text())
    packages = {p["name"]: p for p in lock["package"]}
    seen: set[tuple[str, tuple[str, ...]]] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [("churnops", ())]
    while todo:
        name, extras = todo.pop()
        package = packages[name]
        dependencies = list(package.get("dependencies", []))  # not dev-dependencies
        for extra in extras:
            dependencies += package.get("optional-dependencies", {}).get(extra, [])
        for dependency in dependencies:
            key = (dependency["name"], tuple(dependency.get("extra", [])))
            if key not in seen:
                seen.add(key)
                todo.append(key)
    closure = {name for name, _ in seen}
    assert {
        "celery",
        "redis",
        "psycopg2-binary",
        "asyncpg",
        "adbc-driver-postgresql",
        "apache-airflow-providers-celery",
        "apache-airflow-providers-postgres",
        "mlflow",
        "dbt-postgres",
    } <= closure
    assert "pytest" not in closure  # the dev group stays out of the image


def test_the_build_context_leaves_out_state_and_secrets() -> None:
    ignored = set((PROJECT_DIR / ".dockerignore").read_text().split())
    assert {".env", ".venv", ".churnops", ".git", "dbt_project/target"} <= ignored
