"""deploy/Dockerfile, checked without a Docker engine: what it copies exists and reaches the build context, it
installs the README's pinned set with the cluster's extras, and it starts the code server the Helm chart
expects as an unprivileged user with the k8s executor."""

import json
import re
import shlex
import tomllib
from pathlib import Path, PurePosixPath

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO / "deploy" / "Dockerfile.dockerignore"
VALUES = REPO / "deploy" / "helm" / "values.yaml"
CLUSTER_EXTRAS = {"postgres", "s3", "k8s"}


def instructions(dockerfile: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each instruction, continuation lines joined and comments dropped."""
    lines = [line for line in dockerfile.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            found.append((keyword.upper(), arguments.strip()))
    return found


def arguments_of(keyword: str) -> list[str]:
    return [arguments for found, arguments in instructions() if found == keyword]


def environment() -> dict[str, str]:
    return dict(pair.split("=", 1) for arguments in arguments_of("ENV") for pair in shlex.split(arguments))


def pip_install_commands(text: str) -> list[list[str]]:
    """Each `pip install ...` command in `text`, split as a shell would (up to `&&`, `;` or a comment)."""
    commands = []
    for match in re.finditer(r"pip install [^\n#;&]+", text):
        commands.append(shlex.split(match.group(0)))
    return commands


def extras_of(command: list[str]) -> set[str]:
    (target,) = [word for word in command if "[" in word]
    inside = re.search(r"\[([^\]]*)\]", target)
    assert inside is not None
    return {extra.strip() for extra in inside.group(1).split(",")}


def test_every_path_the_dockerfile_copies_exists_and_is_sent_in_the_build_context() -> None:
    sources = [source for arguments in arguments_of("COPY") for source in shlex.split(arguments)[:-1]]
    included = {line[1:] for line in DOCKERIGNORE.read_text().splitlines() if line.startswith("!")}
    assert sources, "the Dockerfile copies nothing"
    assert [source for source in sources if not (REPO / source).exists()] == []
    assert [source for source in sources if source not in included] == []


def test_the_image_installs_the_cluster_extras_with_the_readmes_constraints() -> None:
    readme_setup = pip_install_commands(REPO.joinpath("README.md").read_text())[0]
    (image_setup,) = [
        command for arguments in arguments_of("RUN") for command in pip_install_commands(arguments)
    ]
    assert image_setup[2:4] == readme_setup[2:4] == ["-c", "constraints.txt"]
    assert extras_of(image_setup) == CLUSTER_EXTRAS


def test_every_package_of_the_cluster_extras_is_pinned_in_constraints() -> None:
    extras = tomllib.loads(REPO.joinpath("pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins = dict(
        line.split("==", 1)
        for line in REPO.joinpath("constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    for extra in sorted(CLUSTER_EXTRAS):
        for requirement in extras[extra]:
            name, _, version = requirement.partition("==")
            assert pins.get(name) == version, (
                f"{requirement} (extra {extra}) is not pinned in constraints.txt"
            )


def test_the_default_command_is_the_code_server_on_the_port_the_chart_uses() -> None:
    (command,) = arguments_of("CMD")
    words = json.loads(command)
    deployment = yaml.safe_load(VALUES.read_text())["dagster-user-deployments"]["deployments"][0]
    assert words[:3] == ["dagster", "api", "grpc"]
    assert words[words.index("-p") + 1] == str(deployment["port"]) == "4000"
    assert words[words.index("-m") + 1] == deployment["dagsterApiGrpcArgs"][1]
    assert arguments_of("EXPOSE") == ["4000"]


def test_there_is_no_entrypoint_since_the_chart_and_the_launchers_pass_whole_commands() -> None:
    assert arguments_of("ENTRYPOINT") == []


def test_the_image_runs_as_an_unprivileged_user() -> None:
    user = arguments_of("USER")[-1]
    assert user not in ("root", "0") and user.isdigit()


def test_the_image_runs_steps_as_kubernetes_jobs_and_finds_the_versions_it_copies() -> None:
    env = environment()
    (workdir,) = arguments_of("WORKDIR")
    (versions,) = [arguments for arguments in arguments_of("COPY") if shlex.split(arguments)[0] == "versions"]
    assert env["CURATION_EXECUTOR"] == "k8s"
    assert PurePosixPath(workdir, shlex.split(versions)[-1]) == PurePosixPath(env["CURATION_VERSIONS"])
