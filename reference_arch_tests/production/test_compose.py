"""The docker-compose stack, checked as files (no Docker engine here): it parses, and every service,
volume, variable and file it names exists and agrees with the project."""

from __future__ import annotations

import re
import shlex
import pytest
import yaml

from reference_arch.common.locations import LOCATIONS
from reference_arch.common.settings import OFFLINE_ENV, PROJECT_ROOT

CODE_SERVICES = {f"code-{name}": name for name in LOCATIONS}
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
# The switches to production backends (README), passed to the code servers by name.
SWITCHES = {"OPENAI_API_KEY", "OPENAI_BASE_URL", "REFERENCE_ARCH_LLM_MODEL", "REFERENCE_ARCH_EMBEDDINGS_PROVIDER",
            "REFERENCE_ARCH_EMBEDDINGS_MODEL",
            "WEAVIATE_URL", "WEAVIATE_API_KEY", "GITHUB_TOKEN", "SLACK_BOT_TOKEN"}
SECRET = re.compile(r"_(KEY|TOKEN|PASSWORD|SECRET)$")
# Variables the project reads that are not deployment settings.
NOT_DEPLOYMENT_SETTINGS = {"DAGSTER_HOME", *OFFLINE_ENV}


def load(path: str) -> dict:
    return yaml.safe_load((PROJECT_ROOT / path).read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return load("docker-compose.yml")


def interpolate(value, env: dict[str, str]):
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` (and ``$$``), recursively."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match):
        name, op, arg = match.groups()
        if env.get(name):
            return env[name]
        if op and op.endswith("?"):
            raise KeyError(f"{name} is required: {arg}")
        return arg or ""

    return VARIABLE.sub(replace, value.replace("$$", "\0")).replace("\0", "$")


def command_option(command: list[str], *flags: str) -> str:
    for i, part in enumerate(command):
        if part in flags:
            return command[i + 1]
    raise AssertionError(f"{flags} not in {command}")


def test_services_and_volumes(compose):
    services = compose["services"]
    assert {"postgres", "weaviate", "webserver", "daemon", *CODE_SERVICES} <= set(services)
    declared = set(compose["volumes"])
    used = set()
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
                used.add(source)
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
    assert used == declared, f"declared but unused volumes: {declared - used}"
    # Every location and the home volume: one code server each, all sharing REFERENCE_ARCH_HOME.
    for service_name, location in CODE_SERVICES.items():
        service = services[service_name]
        command = service["command"]
        assert command_option(command, "-m") == f"reference_arch.{location}.definitions"
        assert command_option(command, "--location-name") == location
        home = service["environment"]["REFERENCE_ARCH_HOME"]
        assert any(m.endswith(f":{home}") for m in service["volumes"]), service["volumes"]


def test_the_stack_refuses_to_start_without_its_secrets(compose):
    with pytest.raises(KeyError, match="DAGSTER_POSTGRES_PASSWORD"):
        interpolate(compose["services"]["postgres"], {})
    with pytest.raises(KeyError, match="WEAVIATE_API_KEY"):
        interpolate(compose["services"]["weaviate"], {"DAGSTER_POSTGRES_PASSWORD": "x"})
    # With them, everything resolves; no secret has a default written in the file.
    resolved = interpolate(compose, {"DAGSTER_POSTGRES_PASSWORD": "pg-secret", "WEAVIATE_API_KEY": "wv-secret"})
    code_env = resolved["services"]["code-rag"]["environment"]
    assert code_env["WEAVIATE_API_KEY"] == "wv-secret" and code_env["OPENAI_API_KEY"] == ""
    text = (PROJECT_ROOT / "docker-compose.yml").read_text()
    for secret in ("OPENAI_API_KEY", "WEAVIATE_API_KEY", "DAGSTER_POSTGRES_PASSWORD", "GITHUB_TOKEN", "SLACK_BOT_TOKEN"):
        for match in re.finditer(r"\$\{%s(:?[-?])([^}]*)\}" % secret, text):
            assert match.group(1).endswith("?") or match.group(2) == "", f"{secret} has a default value"


def test_weaviate_brings_no_vectorizer_and_uses_api_keys(compose):
    env = compose["services"]["weaviate"]["environment"]
    assert env["DEFAULT_VECTORIZER_MODULE"] == "none" and env["ENABLE_MODULES"] == ""
    assert env["AUTHENTICATION_APIKEY_ENABLED"] == "true" and env["AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED"] == "false"
    assert "WEAVIATE_API_KEY" in env["AUTHENTICATION_APIKEY_ALLOWED_KEYS"]
    code_env = compose["services"]["code-rag"]["environment"]
    assert code_env["WEAVIATE_URL"] == "http://weaviate:8080"


def project_env_vars() -> set[str]:
    """Environment variables the package reads: what a deployment may need to set."""
    names = set()
    pattern = re.compile(r"""["']((?:REFERENCE_ARCH|OPENAI|WEAVIATE|GITHUB|SLACK|DAGSTER)_[A-Z0-9_]+)["']""")
    for path in (PROJECT_ROOT / "reference_arch").rglob("*.py"):
        names |= set(pattern.findall(path.read_text()))
    from reference_arch.common.settings import SETTINGS  # declared as fields: their names are not in the text

    return (names | {s.name for s in SETTINGS}) - NOT_DEPLOYMENT_SETTINGS


def test_code_servers_receive_the_backend_switches_and_every_secret_the_project_reads(compose):
    read = project_env_vars()
    assert SWITCHES <= read  # the scan finds what the code reads
    required = SWITCHES | {name for name in read if SECRET.search(name)}
    for service_name in CODE_SERVICES:
        service = compose["services"][service_name]
        missing = required - set(service["environment"])
        assert not missing, f"{service_name} does not pass {sorted(missing)} (add them to x-code-env)"
    # Every setting, so that the run containers receive it too (compose fills them from .env)
    from reference_arch.common.settings import SETTINGS

    assert {s.name for s in SETTINGS if not s.internal} <= set(compose["x-code-env"])
    assert ".env" in (PROJECT_ROOT / ".dockerignore").read_text().split()  # never baked into the image


def test_instance_config_points_at_postgres_and_reads_env_the_stack_sets(compose, tmp_path):
    from dagster._core.instance.config import dagster_instance_config

    config = load("docker/dagster.yaml")
    db = config["storage"]["postgres"]["postgres_db"]
    needed = {v["env"] for v in db.values() if isinstance(v, dict)}
    assert needed == {"DAGSTER_POSTGRES_HOST", "DAGSTER_POSTGRES_PORT", "DAGSTER_POSTGRES_USER",
                      "DAGSTER_POSTGRES_PASSWORD", "DAGSTER_POSTGRES_DB"}
    for name in ("webserver", "daemon", *CODE_SERVICES):
        env = compose["services"][name]["environment"]
        assert needed <= set(env), f"{name} lacks {needed - set(env)}"
        assert env["DAGSTER_POSTGRES_HOST"] == "postgres"
    assert config["concurrency"]["pools"]["default_limit"] == 1
    # Dagster's own schema accepts it (the connection itself is tested in test_postgres_instance).
    (tmp_path / "dagster.yaml").write_text((PROJECT_ROOT / "docker/dagster.yaml").read_text())
    validated, _ = dagster_instance_config(str(tmp_path))
    assert validated["run_coordinator"]["class"] == "QueuedRunCoordinator"


def test_docker_workspace_points_at_the_code_servers(compose):
    workspace = load("docker/workspace.yaml")["load_from"]
    local = {e["python_module"]["location_name"]: e["python_module"]["module_name"]
             for e in load("workspace.yaml")["load_from"]}
    servers = {e["grpc_server"]["location_name"]: e["grpc_server"] for e in workspace}
    assert set(servers) == set(local) == set(LOCATIONS)
    for location, server in servers.items():
        service = compose["services"][server["host"]]
        assert CODE_SERVICES[server["host"]] == location
        assert str(server["port"]) == command_option(service["command"], "-p")
        assert command_option(service["command"], "-m") == local[location]
        assert str(server["port"]) in service["healthcheck"]["test"]


def dockerfile_copies() -> list[tuple[list[str], str]]:
    copies = []
    for line in (PROJECT_ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            *sources, target = shlex.split(line)[1:]
            copies.append((sources, target))
    return copies


def test_dockerfile_and_the_files_services_use(compose):
    build = compose["x-image"]["build"]
    assert (PROJECT_ROOT / build["context"] / build["dockerfile"]).is_file()
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert 'pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"' in dockerfile
    assert "/cpu" in compose["x-image"]["build"]["args"]["TORCH_INDEX_URL"]  # CPU torch by default
    targets = {}
    for sources, target in dockerfile_copies():
        for source in sources:
            assert (PROJECT_ROOT / source).exists(), f"Dockerfile copies missing {source}"
            targets[target] = source
    assert targets["/opt/dagster/dagster_home/dagster.yaml"] == "docker/dagster.yaml"
    for name in ("webserver", "daemon"):
        command = compose["services"][name]["command"]
        words = command[-1].split() if command[0] == "sh" else command
        assert targets[command_option(words, "-w")] == "docker/workspace.yaml"
    assert "python -m reference_arch.common.pools" in compose["services"]["daemon"]["command"][-1]
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".reference_arch" in ignored


def test_optional_local_llm_and_gpu_variant(compose):
    ollama = compose["services"]["ollama"]
    assert ollama["profiles"] == ["llm"]  # not started unless asked for
    assert "OPENAI_BASE_URL" in compose["x-code-env"]
    gpu = load("docker/compose.gpu.yml")["services"]
    assert {"code-finetune", "code-pretrain"} <= set(gpu) <= set(compose["services"])
    for name, service in gpu.items():
        assert "cu" in service["build"]["args"]["TORCH_INDEX_URL"].rsplit("/", 1)[-1]
        assert service["environment"]["DAGSTER_CURRENT_IMAGE"] == service["image"]  # the runs' image: CUDA
        base = compose["services"][name]["command"]
        assert service["command"][:len(base)] == base and service["command"][len(base)] == "--container-context"


def test_each_run_gets_a_container_of_its_own(compose, tmp_path):
    """DockerRunLauncher: the run's container starts from its code server's image, joins the stack's network,
    mounts the home and storage volumes where the code servers do, and receives every setting and secret;
    under the GPU override, the training locations' runs also get the GPUs."""
    import json

    from dagster._core.instance.config import dagster_instance_config
    from dagster_docker import DockerRunLauncher
    from dagster_docker.container_context import DockerContainerContext

    (tmp_path / "dagster.yaml").write_text((PROJECT_ROOT / "docker/dagster.yaml").read_text())
    validated, _ = dagster_instance_config(str(tmp_path))  # dagster-docker's own schema accepts it
    launcher = validated["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")
    config = launcher["config"]
    assert config["network"] == compose["networks"]["default"]["name"]
    assert config["env_vars"] == [name for name in compose["x-code-env"] if name != "DAGSTER_HOME"]
    volumes = {v["name"]: k for k, v in compose["volumes"].items() if v and "name" in v}
    code = compose["services"]["code-pretrain"]
    for mount in config["container_kwargs"]["volumes"]:
        name, path = mount.split(":")
        assert f"{volumes[name]}:{path}" in code["volumes"]  # where the code servers have it
    for name in CODE_SERVICES:
        assert compose["services"][name]["environment"]["DAGSTER_CURRENT_IMAGE"] == compose["x-image"]["image"]
    daemon = compose["services"]["daemon"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in daemon["volumes"]
    assert set(compose["x-code-env"]) <= set(daemon["environment"])  # the values it forwards
    # The GPU override's container context, merged as DockerRunLauncher merges it for a run
    gpu = load("docker/compose.gpu.yml")["services"]["code-pretrain"]["command"]
    context = json.loads(gpu[gpu.index("--container-context") + 1])
    built = DockerRunLauncher(**config)  # what the daemon builds from the config
    run_context = DockerContainerContext(env_vars=built.env_vars, networks=built.networks,
                                         container_kwargs=built.container_kwargs).merge(
        DockerContainerContext.create_from_config(context))
    assert run_context.container_kwargs["volumes"] == config["container_kwargs"]["volumes"]
    assert run_context.container_kwargs["device_requests"][0]["Capabilities"] == [["gpu"]]
    assert run_context.env_vars[-1] == "REFERENCE_ARCH_DEVICE=cuda"  # after the daemon's value: it wins
