"""docker/: what can be checked without a Docker engine or a cluster.

The spawner configurations load into a real traitlets Config through hub/jupyterhub_config.py and give
DockerSpawner/KubeSpawner subclasses with the LDJ rules; the container spawner's real start path
refuses users without a project and hands the catalogue to the container; the image's entry point
writes it and copies the notebooks without overwriting; compose, chart values and Dockerfiles agree
with each other and name files that exist.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
import yaml
from docker.errors import DockerException
from jupyterhub.objects import Hub
from jupyterhub.spawner import LocalProcessSpawner, SimpleLocalProcessSpawner, Spawner
from tornado import web
from traitlets.config import Config
from traitlets.utils.importstring import import_item

from ldj import governance as gov
from ldj import store
from ldj.catalogue import load_entries
from ldj.deployment import DeploymentError
from ldj.hub import CATALOGUE_FILE, LDJSpawnerMixin
from ldj.settings import REPO_ROOT, get_settings

DOCKER = REPO_ROOT / "docker"
sys.path.insert(0, str(DOCKER))
import ldj_spawners  # noqa: E402 - lives in docker/

CRITERIA = {key: "Containerwerkomgeving." for key in gov.CRITERIA}


def load_hub_config(monkeypatch, tmp_path, spawner: str) -> Config:
    monkeypatch.setenv("LDJ_SPAWNER", spawner)
    monkeypatch.setenv("LDJ_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    config = Config()
    path = REPO_ROOT / "hub" / "jupyterhub_config.py"
    exec(compile(path.read_text(), str(path), "exec"), {"get_config": lambda: config, "__file__": str(path)})
    get_settings.cache_clear()
    return config


@pytest.mark.parametrize("spawner, base, section", [("docker", "dockerspawner.DockerSpawner", "DockerSpawner"),
                                                    ("kubernetes", "kubespawner.KubeSpawner", "KubeSpawner")])
def test_one_setting_selects_a_container_spawner_with_the_ldj_rules(monkeypatch, tmp_path, spawner, base, section):
    config = load_hub_config(monkeypatch, tmp_path, spawner)
    cls = import_item(config.JupyterHub.spawner_class)
    assert issubclass(cls, import_item(base)) and issubclass(cls, LDJSpawnerMixin)
    assert config[section].cmd == ["ldj-workspace-start", "jupyterhub-singleuser"]
    assert config[section].image == "ldj-singleuser:latest"
    assert config.JupyterHub.hub_ip == "0.0.0.0" and config.JupyterHub.hub_connect_ip == "hub"
    assert "access:services!service=ldj-data" in config.Spawner.server_token_scopes
    assert {s["name"] for s in config.JupyterHub.services} >= {"ldj-data", "ldj-lifecycle", "idle-culler"}


@pytest.fixture
def open_dir():
    """A folder workspace accounts can pass through (pytest's tmp_path lies in a 0700 folder)."""
    folder = Path(tempfile.mkdtemp(prefix="ldj-docker-"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_local_default_runs_workspaces_as_their_own_accounts(monkeypatch, open_dir):
    config = load_hub_config(monkeypatch, open_dir, "local")
    assert config.JupyterHub.spawner_class == "ldj.hub.LDJLocalSpawner"
    cls = import_item(config.JupyterHub.spawner_class)
    assert issubclass(cls, LocalProcessSpawner) and not issubclass(cls, SimpleLocalProcessSpawner)
    assert config.Spawner.cmd[1:] == ["-m", "jupyterhub.singleuser"] and "args" not in config.Spawner
    assert stat.S_IMODE((open_dir / "var").stat().st_mode) == 0o700
    assert stat.S_IMODE((open_dir / "homes").stat().st_mode) == 0o711


def test_a_local_hub_that_is_not_root_refuses_unless_shared_accounts_are_accepted(monkeypatch, open_dir):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(DeploymentError, match="LDJ_ALLOW_SHARED_WORKSPACE_ACCOUNTS=true"):
        load_hub_config(monkeypatch, open_dir, "local")
    assert not (open_dir / "var").exists()  # refused before anything was made
    monkeypatch.setenv("LDJ_ALLOW_SHARED_WORKSPACE_ACCOUNTS", "true")
    for folder in ("var", "homes"):  # the hub's own account's
        (open_dir / folder).mkdir()
        os.chown(open_dir / folder, 1000, 1000)
    assert load_hub_config(monkeypatch, open_dir, "local").JupyterHub.spawner_class == "ldj.hub.LDJLocalSpawner"


@pytest.fixture
def grants(monkeypatch, tmp_path):
    """A store where anna has an active project (trajectories) and bob has none, read by ldj.hub."""
    monkeypatch.setenv("LDJ_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    engine = store.get_engine(get_settings())
    catalogue = {e.id: set(e.variable_names) for e in load_entries(REPO_ROOT / "catalog").values()}
    gov.add_user(engine, "steward", display_name="S", organisation="SEJN", roles=["steward"])
    for name in ("apo1", "apo2"):
        gov.add_user(engine, name, display_name=name, organisation=name, roles=["apo"])
    for name in ("anna", "bob"):
        gov.add_user(engine, name, display_name=name, organisation="ORG01", roles=["researcher"])
    request = gov.create_request(engine, "anna", title="t", applicant_organisation="ORG01", sejn_member=True,
                                 criteria=CRITERIA, entries={"trajectories": ["trajectory", "intervention"]},
                                 members=[], access_from=date.today(), access_until=date.today() + timedelta(days=9),
                                 catalogue=catalogue)
    gov.submit(engine, request, "anna")
    gov.start_review(engine, request, "steward")
    for reviewer in ("apo1", "apo2"):
        gov.review(engine, request, reviewer, {i: 4 for i in range(1, 7)}, {}, "approve")
    gov.decide(engine, request, "steward")
    yield engine
    get_settings.cache_clear()


def docker_spawner(name: str):
    # A real LDJDockerSpawner; the hub's user object is represented by what the spawner reads of it.
    user = SimpleNamespace(name=name, url=f"/user/{name}/", escaped_name=name, id=1)
    return ldj_spawners.LDJDockerSpawner(user=user, hub=Hub(ip="127.0.0.1", port=8081, base_url="/hub/"),
                                         api_token="token-of-the-server", _log_name=name)


def start_without_docker(spawner) -> Exception:
    """The spawner's real start(); no Docker engine runs here, so it ends where it contacts Docker."""
    with pytest.raises(Exception) as failure:
        asyncio.run(spawner.start())
    return failure.value


def test_a_user_without_a_project_gets_no_container(grants):
    error = start_without_docker(docker_spawner("bob"))
    assert isinstance(error, web.HTTPError) and error.status_code == 403
    assert "Geen actief, goedgekeurd project" in error.log_message


def test_the_catalogue_reaches_the_container_and_the_entry_point_writes_it(grants, tmp_path):
    spawner = docker_spawner("anna")
    error = start_without_docker(spawner)
    assert isinstance(error, DockerException), error  # past the LDJ checks, stopped only by the missing engine
    env = spawner.get_env()
    assert env["LDJ_CATALOG"] == f"/home/jovyan/{CATALOGUE_FILE}"
    catalogue = yaml.safe_load(ldj_spawners.decode_catalogue(env[ldj_spawners.CATALOGUE_ENV]))
    assert list(catalogue["entries"]) == ["trajectories"]
    assert "JUPYTERHUB_API_TOKEN" in str(catalogue) and "token-of-the-server" not in str(catalogue)

    # The image's entry point, run here with the variables the container would get.
    home = tmp_path / "home"
    home.mkdir()
    (home / "02_voor_na_verandering.ipynb").write_text("my own work")
    run_env = {"PATH": os.environ["PATH"], "HOME": str(home), "LDJ_CATALOG": str(home / CATALOGUE_FILE),
               ldj_spawners.CATALOGUE_ENV: env[ldj_spawners.CATALOGUE_ENV],
               "STARTER_NOTEBOOKS_DIR": str(REPO_ROOT / "starter_notebooks")}
    check = ("import os, intake; print(sorted(intake.from_yaml_file(os.environ['LDJ_CATALOG']).entries),"
             f" '{ldj_spawners.CATALOGUE_ENV}' in os.environ)")
    out = subprocess.run([sys.executable, str(DOCKER / "workspace-start"), sys.executable, "-c", check],
                         env=run_env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['trajectories'] False"  # the command ran after it; the variable is not passed on
    assert stat.S_IMODE((home / CATALOGUE_FILE).stat().st_mode) == 0o444
    assert (home / "02_voor_na_verandering.ipynb").read_text() == "my own work"
    assert sorted(p.name for p in home.glob("*.ipynb")) == sorted(
        p.name for p in (REPO_ROOT / "starter_notebooks").glob("*.ipynb"))


def test_the_entry_point_refuses_to_start_without_a_catalogue(tmp_path):
    result = subprocess.run([sys.executable, str(DOCKER / "workspace-start"), "true"], capture_output=True, text=True,
                            env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})
    assert result.returncode != 0 and "no catalogue from the hub" in result.stderr


@pytest.mark.parametrize("spawner", ["docker", "kubernetes"])
def test_container_workspaces_get_no_data_folder_no_secret_and_no_root(monkeypatch, tmp_path, spawner):
    config = load_hub_config(monkeypatch, tmp_path, spawner)
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    data_mounts = {v.split(":")[0] for v in compose["services"]["hub"]["volumes"]}  # ldj-data, docker.sock
    assert "ldj-data" in data_mounts
    if spawner == "docker":
        mounts = config.DockerSpawner.volumes
        assert mounts == {"ldj-home-{username}": "/home/jovyan"} and not set(mounts) & data_mounts
        assert config.DockerSpawner.extra_create_kwargs["user"].split(":")[0] not in ("0", "root")
        assert config.DockerSpawner.extra_host_config["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in config.DockerSpawner.extra_host_config["security_opt"]
    else:
        assert [v["persistentVolumeClaim"]["claimName"] for v in config.KubeSpawner.volumes] == ["ldj-home-{username}"]
        assert [m["mountPath"] for m in config.KubeSpawner.volume_mounts] == ["/home/jovyan"]
        assert config.KubeSpawner.uid not in (0, None) and config.KubeSpawner.allow_privilege_escalation is False
        assert config.KubeSpawner.container_security_context["runAsNonRoot"] is True


def test_the_chart_mounts_the_data_folder_and_the_key_in_the_hub_only():
    values = yaml.safe_load((DOCKER / "z2jh-values.yaml").read_text())
    hub_volumes = {v["name"] for v in values["hub"]["extraVolumes"]}
    assert hub_volumes == {"ldj-data", "ldj-secrets"}
    singleuser = values["singleuser"]
    assert not singleuser["storage"].get("extraVolumes") and not singleuser["storage"].get("extraVolumeMounts")
    assert hub_volumes.isdisjoint(str(singleuser).replace("'", " ").split())
    assert singleuser["uid"] != 0 and singleuser["allowPrivilegeEscalation"] is False
    assert singleuser["extraPodConfig"]["securityContext"]["runAsNonRoot"] is True
    assert "LDJ_DATABASE_URL" not in str(singleuser) and "pseudonym" not in str(singleuser)


def test_the_workspace_image_runs_unprivileged_with_a_read_only_catalogue():
    lines = [line.strip() for line in (DOCKER / "Dockerfile.singleuser").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    copies = [line for line in lines if line.startswith("COPY ")]
    # The package and the catalogue definitions belong to root: the workspace's user reads them, cannot change them.
    assert any(" catalog " in line for line in copies) and not any("--chown" in line for line in copies)
    assert lines.index(next(line for line in lines if line.startswith("USER "))) > max(map(lines.index, copies))
    assert not [line for line in lines if line.startswith("VOLUME") or "LDJ_DATA_DIR" in line
                or "LDJ_DATABASE_URL" in line or "pseudonym" in line]


def test_a_container_workspace_inherits_no_database_url_key_or_secret(grants, monkeypatch):
    monkeypatch.setenv("LDJ_DATABASE_URL", "postgresql+psycopg://ldj:secret@db/ldj")
    monkeypatch.setenv("LDJ_PSEUDONYM_KEY_FILE", "/etc/ldj/pseudonym.key")
    monkeypatch.setenv("CONFIGPROXY_AUTH_TOKEN", "proxy-secret")
    spawner = docker_spawner("anna")
    start_without_docker(spawner)
    env = spawner.get_env()
    assert {k for k in env if k.startswith("LDJ_")} == {"LDJ_CATALOG", "LDJ_DATA_SERVICE_URL",
                                                          ldj_spawners.CATALOGUE_ENV}
    assert not [k for k, v in env.items() if "secret" in v or "pseudonym" in v]


def copied_sources(dockerfile: Path) -> list[str]:
    sources = []
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            sources += line.split()[1:-1]
    return sources


@pytest.mark.parametrize("name", ["Dockerfile.singleuser", "Dockerfile.hub", "Dockerfile.hub-k8s"])
def test_dockerfiles_copy_files_that_exist(name):
    sources = copied_sources(DOCKER / name)
    assert sources and all((REPO_ROOT / s).exists() for s in sources), sources


def test_compose_builds_existing_files_and_agrees_with_the_docker_spawner(monkeypatch, tmp_path):
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"db", "hub", "singleuser"}
    for service in services.values():
        if "build" in service:
            context = (DOCKER / service["build"]["context"]).resolve()
            assert context == REPO_ROOT and (context / service["build"]["dockerfile"]).is_file()
    config = load_hub_config(monkeypatch, tmp_path, "docker")
    assert services["hub"]["container_name"] == config.JupyterHub.hub_connect_ip
    assert services["singleuser"]["image"] == config.DockerSpawner.image
    assert services["hub"]["environment"]["LDJ_SPAWNER"] == "docker"
    assert re.fullmatch(r"postgresql\+psycopg://ldj:\$\{POSTGRES_PASSWORD\}@db/ldj",
                        services["hub"]["environment"]["LDJ_DATABASE_URL"])
    assert services["db"]["environment"]["POSTGRES_USER"] == "ldj"
    assert set(compose["volumes"]) == {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])
                                       if not v.startswith("/")}


def test_chart_values_have_kubespawner_storage_and_the_culler():
    values = yaml.safe_load((DOCKER / "z2jh-values.yaml").read_text())
    singleuser = values["singleuser"]
    assert singleuser["storage"]["type"] == "dynamic" and singleuser["storage"]["homeMountPath"] == "/home/jovyan"
    assert singleuser["cmd"] == ["ldj-workspace-start", "jupyterhub-singleuser"]
    assert values["cull"]["enabled"] is True and values["cull"]["timeout"] > 0
    extra = values["hub"]["extraConfig"]["ldj"]
    compile(extra, "hub.extraConfig.ldj", "exec")
    assert '"ldj_spawners.LDJKubeSpawner"' in extra and "/srv/ldj/docker" in extra
    assert values["hub"]["extraEnv"]["LDJ_SPAWNER"] == "kubernetes"
    # The data service's port in extraConfig is the one the network policy opens to the proxy.
    port = int(re.search(r":(\d+)\"", extra).group(1))
    assert port in [p["port"] for rule in values["hub"]["networkPolicy"]["ingress"] for p in rule["ports"]]


# --- what a workspace can reach over the network ----------------------------------------------------

def test_docker_workspaces_are_on_an_internal_network_with_the_hub_alone(monkeypatch, tmp_path):
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services, networks = compose["services"], compose["networks"]
    config = load_hub_config(monkeypatch, tmp_path, "docker")
    spawner = config.DockerSpawner
    [key] = [k for k, n in networks.items() if n["name"] == spawner.network_name]
    workspaces = networks[key]
    # No route out, and no address of the host on the bridge (Docker 28: the host's services stay out of reach).
    assert workspaces["internal"] is True
    assert workspaces["driver_opts"] == {"com.docker.network.bridge.gateway_mode_ipv4": "isolated",
                                         "com.docker.network.bridge.gateway_mode_ipv6": "isolated"}
    assert {name for name, s in services.items() if key in s.get("networks", [])} == {"hub"}
    assert key not in services["db"]["networks"]
    # The hub keeps its own way out (published port, login provider) on a network workspaces are not on.
    assert [n for n in services["hub"]["networks"] if n != key] and not any(
        networks[n].get("internal") for n in services["hub"]["networks"] if n != key)
    # The container gets that network as its network_mode and nothing adds another or a way around it.
    assert spawner.use_internal_ip is True
    assert not {"network_mode", "extra_hosts", "dns", "links"} & set(spawner.extra_host_config)
    assert not {"networking_config", "host_config"} & set(spawner.extra_create_kwargs)
    assert "links" not in spawner
    # On it, the hub container offers the hub API and the proxy (with the data service behind it); the data
    # service and the portal themselves listen on the hub's loopback only.
    data_service = urlsplit(services["hub"]["environment"]["LDJ_DATA_SERVICE_URL"])
    assert (data_service.hostname, data_service.port) == (services["hub"]["container_name"], config.JupyterHub.port)
    assert data_service.path == "/services/ldj-data"
    assert config.JupyterHub.hub_connect_ip == services["hub"]["container_name"]
    for service in config.JupyterHub.services:
        if "url" in service:
            assert urlsplit(service["url"]).hostname == "127.0.0.1", service["name"]


EGRESS_ALLOW_RULES = {"cloudMetadataServer", "dnsPortsCloudMetadataServer", "dnsPortsKubeSystemNamespace",
                      "dnsPortsPrivateIPs", "nonPrivateIPs", "privateIPs"}  # the chart's (3.x and 4.x)


def test_kubernetes_workspaces_may_reach_the_hub_and_the_proxy_only():
    policy = yaml.safe_load((DOCKER / "z2jh-values.yaml").read_text())["singleuser"]["networkPolicy"]
    assert policy["enabled"] is True
    assert policy["egressAllowRules"] == dict.fromkeys(EGRESS_ALLOW_RULES, False)
    allowed = []
    for rule in policy["egress"]:
        assert set(rule) == {"to", "ports"}  # a rule without ports or without `to` opens every port or address
        [peer] = rule["to"]
        assert set(peer) == {"podSelector"}  # no ipBlock, no namespaceSelector
        allowed.append((peer["podSelector"]["matchLabels"]["component"],
                        sorted((p["port"], p["protocol"]) for p in rule["ports"])))
        assert peer["podSelector"]["matchLabels"]["app"] == "jupyterhub"
    # The hub API, and the proxy, which routes /services/ldj-data to the data service. No DNS (port 53).
    assert sorted(allowed) == [("hub", [(8081, "TCP")]), ("proxy", [(8000, "TCP")])]


def expand_kubernetes_variables(value: str, variables: dict) -> str:
    """$(NAME) as Kubernetes expands it in a container's environment."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: variables[m.group(1)], value)


def test_kubernetes_workspaces_need_no_dns(monkeypatch):
    values = yaml.safe_load((DOCKER / "z2jh-values.yaml").read_text())
    # The variables Kubernetes gives every pod for the chart's services (their cluster addresses).
    services = {"HUB_SERVICE_HOST": "10.96.0.10", "HUB_SERVICE_PORT": "8081",
                "PROXY_PUBLIC_SERVICE_HOST": "10.96.0.20", "PROXY_PUBLIC_SERVICE_PORT_HTTP": "80"}
    raw = values["hub"]["extraEnv"]["LDJ_DATA_SERVICE_URL"]
    assert set(re.findall(r"\$\((\w+)\)", raw)) <= set(services)
    data_service = urlsplit(expand_kubernetes_variables(raw, services))
    assert data_service.path == "/services/ldj-data"
    for name, value in {**services, "POD_IP": "10.1.0.7"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "path", list(sys.path))  # extraConfig adds the image's docker/ folder
    config = Config()
    exec(compile(values["hub"]["extraConfig"]["ldj"], "hub.extraConfig.ldj", "exec"), {"c": config})
    # JupyterHub's own Spawner (KubeSpawner's base) turns it into the workspace's hub API and activity URLs.
    user = SimpleNamespace(name="anna", url="/user/anna/", escaped_name="anna", id=1)
    env = Spawner(hub_connect_url=config.KubeSpawner.hub_connect_url, user=user, api_token="t",
                  hub=Hub(ip="0.0.0.0", port=8081, base_url="/hub/", connect_ip="hub")).get_env()
    urls = [data_service, urlsplit(env["JUPYTERHUB_API_URL"]), urlsplit(env["JUPYTERHUB_ACTIVITY_URL"])]
    assert urls[1].netloc == "10.96.0.10:8081"
    for url in urls:
        ipaddress.ip_address(url.hostname)  # an address, not a name: nothing for a workspace to look up
