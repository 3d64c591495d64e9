"""Shape checks of compose.yaml, the Dockerfile and .dockerignore (no Docker engine needed).

Usage: python3 deployment_shape.py REPO_ROOT RESOLVED_COMPOSE_YAML
RESOLVED_COMPOSE_YAML is `docker-compose --env-file .env.example -f compose.yaml config` output,
so anchors, merges and variables are already resolved. Prints one "ok - ..." or "FAIL - ..." line
per check; scripts/check-deployment counts them.
"""

import json
import os
import re
import sys

import yaml

ROOT, RESOLVED = sys.argv[1], sys.argv[2]
ENTRYPOINT_SERVICES = {"planner", "scheduler", "worker", "link", "cli", "fetch-model", "init-broker"}
PRODUCTS = ["hyperion", "partition-planner", "scheduler", "stage-worker", "link-emulator"]
# compose service -> (entrypoint service, broker user)
HYPERION_SERVICES = {
    "partition-planner": ("planner", "planner"),
    "scheduler": ("scheduler", "scheduler"),
    "worker-edge": ("worker", "worker"),
    "worker-fog": ("worker", "worker"),
    "worker-cloud": ("worker", "worker"),
    "cli": ("cli", "client"),
}
LONGEST_REQUEST_MS = 600_000

results = []


def check(ok, name, detail=""):
    results.append(ok)
    print(f"ok   - {name}" if ok else f"FAIL - {name}{': ' + detail if detail else ''}")


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as file:
        return file.read()


# --- compose ---------------------------------------------------------------------------------
raw_compose = read("compose.yaml")
with open(RESOLVED, encoding="utf-8") as file:
    compose = yaml.safe_load(file)
services = compose.get("services", {})

check(not re.search(r"^name\s*:", raw_compose, re.M), "compose.yaml has no top-level name: (docker-compose 1.29 rejects it)")
missing = {"rabbitmq", "init-broker", "model", *HYPERION_SERVICES} - set(services)
check(not missing, "compose defines rabbitmq, init-broker, model, planner, scheduler and a worker per tier",
      f"missing {sorted(missing)}")

optional_secrets = {"HYPERION_MONITOR_PASSWORD"}
defaulted = [m.group(1) for m in re.finditer(r"\$\{(HYPERION_\w*PASSWORD)(:?-|-)", raw_compose)
             if m.group(1) not in optional_secrets]
check(not defaulted, "compose gives no password a default (each is required from .env)", f"defaulted: {defaulted}")

env_example = read(".env.example")
defined = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", env_example, re.M))
used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", raw_compose))
check(used <= defined, ".env.example documents every variable compose.yaml reads", f"undocumented: {sorted(used - defined)}")


def environment(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return env


def depends(service):
    value = service.get("depends_on") or {}
    return value if isinstance(value, dict) else {name: {"condition": "service_started"} for name in value}


def mounts(service):
    result = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            parts = volume.split(":")
            result.append({"source": parts[0], "target": parts[1] if len(parts) > 1 else parts[0],
                           "read_only": len(parts) > 2 and "ro" in parts[2].split(",")})
        else:
            result.append({"source": volume.get("source", ""), "target": volume.get("target", ""),
                           "read_only": bool(volume.get("read_only"))})
    return result


broker = services.get("rabbitmq", {})
check(bool(re.fullmatch(r"rabbitmq:3(\.\d+)*-management", str(broker.get("image", "")))),
      "broker runs a rabbitmq:3 management image", str(broker.get("image")))
health = broker.get("healthcheck", {}).get("test", [])
health_text = " ".join(health) if isinstance(health, list) else str(health)
check("check_port_connectivity" in health_text, "broker healthcheck proves the AMQP port accepts connections", health_text)
check(environment(broker).get("RABBITMQ_DEFAULT_USER", "guest") != "guest", "broker starts with an administrator, not guest")
conf_mounts = [m for m in mounts(broker) if m["target"].startswith("/etc/rabbitmq/conf.d/")]
conf_text = ""
if conf_mounts:
    source = conf_mounts[0]["source"]
    path = source if os.path.isabs(source) else os.path.join(ROOT, source)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as file:
            conf_text = file.read()
timeout = re.search(r"^\s*consumer_timeout\s*=\s*(\d+)", conf_text, re.M)
check(bool(timeout) and int(timeout.group(1)) > LONGEST_REQUEST_MS,
      "broker config mounted into conf.d raises consumer_timeout above the longest request (600 s)",
      f"consumer_timeout = {timeout.group(1) if timeout else 'unset'}")
check(bool(re.search(r"^\s*loopback_users\.guest\s*=\s*true", conf_text, re.M)), "broker config keeps guest on loopback")
hostname = broker.get("hostname", "")
check(bool(hostname), "broker has a fixed hostname (a fixed node name for init-broker and the data volume)")

init = services.get("init-broker", {})
init_cmd = (init.get("entrypoint") or []) + (init.get("command") or [])
check(any(part.endswith("broker-users") for part in init_cmd) and
      any(m["target"].endswith("broker-users") and m["source"].endswith("scripts/broker-users") for m in mounts(init)),
      "init-broker runs scripts/broker-users")
check("--delete-guest" in init_cmd, "init-broker deletes guest")
node = init_cmd[init_cmd.index("--node") + 1] if "--node" in init_cmd else ""
check(node == f"rabbit@{hostname}", "init-broker addresses the broker's node name", f"--node {node!r}, hostname {hostname!r}")
check(depends(init).get("rabbitmq", {}).get("condition") == "service_healthy", "init-broker waits for a healthy broker")
init_env = environment(init)
needed = {"HYPERION_ADMIN_PASSWORD", "HYPERION_PLANNER_PASSWORD", "HYPERION_SCHEDULER_PASSWORD",
          "HYPERION_WORKER_PASSWORD", "HYPERION_CLIENT_PASSWORD"}
check(needed <= set(init_env), "init-broker receives every service's password", f"missing {sorted(needed - set(init_env))}")
check(str(init.get("restart", "no")) == "no", "init-broker is one-shot (restart: no)")

model = services.get("model", {})
model_cmd = (model.get("entrypoint") or []) + (model.get("command") or [])
check(any(part.endswith("fetch-model.py") for part in model_cmd) and
      any(m["target"] == "/models" and not m["read_only"] for m in mounts(model)),
      "model step runs fetch-model.py into the models volume")
check(str(model.get("restart", "no")) == "no", "model step is one-shot (restart: no)")

topology = json.loads(read("examples/local-topology.json")) if os.path.isfile(os.path.join(ROOT, "examples/local-topology.json")) else {}
tiers = [tier.get("name") for tier in topology.get("tiers", [])]

for name, (entry, user) in HYPERION_SERVICES.items():
    service = services.get(name)
    if service is None:
        continue
    entrypoint = service.get("entrypoint") or []
    command = service.get("command") or []
    picked = entrypoint[1] if len(entrypoint) > 1 else (command[0] if command else None)
    check(picked in ENTRYPOINT_SERVICES and picked == entry, f"{name} starts entrypoint service '{entry}'", f"got {picked!r}")
    check("build" in service or str(service.get("image", "")).startswith("hyperion"), f"{name} runs the Hyperion image")
    deps = depends(service)
    ok = (deps.get("rabbitmq", {}).get("condition") == "service_healthy"
          and deps.get("init-broker", {}).get("condition") == "service_completed_successfully")
    if name != "cli":
        ok = ok and deps.get("model", {}).get("condition") == "service_completed_successfully"
    check(ok, f"{name} waits for a healthy broker, its users{'' if name == 'cli' else ' and the model'}", str(deps))
    if name != "cli":
        check(service.get("restart") in ("always", "unless-stopped", "on-failure"), f"{name} has a restart policy",
              str(service.get("restart")))
    limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
    check("cpus" in limits and "memory" in limits, f"{name} has cpu and memory limits", str(limits))
    url = environment(service).get("HYPERION_AMQP_URL", "")
    match = re.match(r"amqps?://([^:@/]+):[^@]*@([^:/]+)", url)
    check(bool(match) and match.group(1) == user and match.group(2) == "rabbitmq",
          f"{name} connects to the broker as '{user}'", re.sub(r":[^:@]*@", ":***@", url))
    check(any(m["target"] == "/models" and m["read_only"] for m in mounts(service)), f"{name} mounts the models volume read-only")
    check(service.get("init") is True, f"{name} runs under an init process (signals reach the service)")

for name, service in services.items():
    if name.startswith("worker-"):
        tier = name[len("worker-"):]
        env = environment(service)
        check(env.get("HYPERION_TIER") == tier and (not tiers or tier in tiers),
              f"{name} serves tier '{tier}' of examples/local-topology.json", f"HYPERION_TIER={env.get('HYPERION_TIER')!r}, tiers {tiers}")
        fixed = [key for key in ("container_name", "ports", "hostname") if key in service]
        fixed += ["HYPERION_NODE_ID"] if env.get("HYPERION_NODE_ID") else []
        check(not fixed, f"{name} scales with --scale (no container_name, ports, hostname or node id)", f"has {fixed}")
published = [name for name, service in services.items() if service.get("ports") and name != "rabbitmq"]
check(not published, "only the broker publishes host ports", f"also {published}")

# --- Dockerfile ------------------------------------------------------------------------------
dockerfile = re.sub(r"\\\n", " ", read("Dockerfile"))
instructions = [line.strip() for line in dockerfile.splitlines() if line.strip() and not line.strip().startswith("#")]
stages = []
for line in instructions:
    if line.upper().startswith("FROM "):
        stages.append([line])
    elif stages:
        stages[-1].append(line)
check(len(stages) >= 2, "Dockerfile is multi-stage", f"{len(stages)} stage(s)")
build, runtime = (stages[0], stages[-1]) if len(stages) >= 2 else ([""], [""])
check(bool(re.match(r"FROM\s+swift:6\.\d+(\.\d+)?-bookworm(\s|$)", build[0], re.I)),
      "build stage is the official Swift 6 image for Debian 12 (swift:6.x-bookworm)", build[0])
build_runs = " ".join(line for line in build if line.upper().startswith("RUN "))
for package in ("librabbitmq-dev", "libjansson-dev", "pkg-config"):
    check(re.search(rf"apt-get install[^;&]*\b{re.escape(package)}\b", build_runs) is not None, f"build stage installs {package}")
swift_builds = re.findall(r"swift build[^;&|]*", build_runs)
product_builds = [command for command in swift_builds if "--show-bin-path" not in command]
check(bool(product_builds) and all("--static-swift-stdlib" in c and re.search(r"-c\s+release", c) for c in swift_builds),
      "every swift build is release with --static-swift-stdlib", str(swift_builds))
for product in PRODUCTS:
    check(re.search(rf"(?<![\w-]){re.escape(product)}(?![\w-])", build_runs) is not None and "--product" in build_runs,
          f"build stage builds product {product}")
check(bool(re.match(r"FROM\s+debian:bookworm-slim(\s|$)", runtime[0], re.I)), "runtime stage is debian:bookworm-slim", runtime[0])
runtime_runs = " ".join(line for line in runtime if line.upper().startswith("RUN "))
for package in ("librabbitmq4", "libjansson4", "ca-certificates"):
    check(re.search(rf"apt-get install[^;&]*\b{re.escape(package)}\b", runtime_runs) is not None, f"runtime installs {package}")
check(re.search(r"\S+-dev\b", runtime_runs) is None, "runtime installs no -dev package")
check(not any("swift" in line.lower() and line.upper().startswith("COPY") and "/usr/lib/swift" in line for line in runtime),
      "runtime copies no Swift shared libraries (the stdlib is static)")
users = [line.split(None, 1)[1].strip() for line in runtime if line.upper().startswith("USER ")]
check(bool(users) and users[-1].split(":")[0] not in ("root", "0"), "runtime runs as a non-root USER", str(users))
entrypoints = [line.split(None, 1)[1] for line in runtime if line.upper().startswith("ENTRYPOINT ")]
entry_path = ""
if entrypoints:
    try:
        form = json.loads(entrypoints[-1])
        entry_path = form[0] if isinstance(form, list) and form else ""
    except json.JSONDecodeError:
        entry_path = ""
copied = [line for line in runtime if line.upper().startswith("COPY ") and "docker/entrypoint.sh" in line]
check(bool(entry_path) and any(line.split()[-1] == entry_path for line in copied),
      "runtime's exec-form ENTRYPOINT is docker/entrypoint.sh", f"ENTRYPOINT {entrypoints}, copies {copied}")
check(any(line.upper().startswith("COPY ") and "--from=" in line for line in runtime), "runtime copies the built binaries from the build stage")
sources = []
for line in instructions:
    if line.upper().startswith("COPY ") and "--from=" not in line:
        parts = [part for part in line.split()[1:] if not part.startswith("--")]
        sources += [part for part in parts[:-1] if part != "."]
absent = [source for source in sources if not os.path.exists(os.path.join(ROOT, source))]
check(not absent, "every file the Dockerfile copies exists", f"missing {absent}")

ignored = [line.strip() for line in read(".dockerignore").splitlines() if line.strip() and not line.startswith("#")]
for pattern in (".build*", "models", ".run", ".env", ".git"):
    covered = pattern in ignored or (pattern == ".build*" and {".build", ".build-*"} <= set(ignored))
    check(covered, f".dockerignore excludes {pattern}")

sys.exit(0 if all(results) else 1)
