#!/usr/bin/env python3
"""Checks every file under deploy/ and runs what it says.

1. Parses every file: YAML documents (each Kubernetes object has apiVersion,
   kind and metadata.name), the Dockerfile (FROM, USER, HEALTHCHECK, CMD),
   systemd units (ExecStart) and their EnvironmentFile examples (KEY=VALUE).
   A file of any other kind fails the test: whoever adds one adds its check.
2. Extracts the exact command and arguments each one gives ledgerd and
   ledger-witness and starts the built binary with them, waits for its
   "listening on" line and stops it with SIGTERM (it must exit 0).

Rewritten, and only these: the binaries' install paths (/usr/local/bin/NAME or
a bare NAME on PATH) become the built targets; data directories, the policy
path and /tmp become temporary directories; every --listen HOST:PORT becomes
127.0.0.1:0 and the policy's witness URL the started witness's address;
site-specific placeholders (REPLACE_WITH_...) get real values (the ledger's
operator.vkey, the witness's vkey). Flag names and every other argument are
used as written, so a wrong flag in a manifest fails here.
"""
import argparse
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time

import yaml

FAILURES = []


def fail(msg):
    FAILURES.append(msg)
    print("FAIL: " + msg, flush=True)


def ok(msg):
    print("ok: " + msg, flush=True)


# ---------------------------------------------------------------- parsing ---

def parse_yaml(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    if not docs:
        fail(f"{path}: no YAML documents")
    objs = []
    for i, d in enumerate(docs):
        where = f"{path} document {i + 1}"
        if not isinstance(d, dict):
            fail(f"{where}: not a mapping")
            continue
        for key in ("apiVersion", "kind"):
            if not d.get(key):
                fail(f"{where}: no {key}")
        name = (d.get("metadata") or {}).get("name")
        if not name:
            fail(f"{where}: no metadata.name")
        objs.append(d)
    ok(f"{path}: {len(objs)} Kubernetes objects "
       + ", ".join(f"{o.get('kind')}/{(o.get('metadata') or {}).get('name')}" for o in objs))
    return objs


def dockerfile_instructions(path):
    """(INSTRUCTION, text) pairs, continuation lines joined, comments dropped."""
    out, cur = [], ""
    with open(path) as f:
        for line in f:
            s = line.rstrip("\n")
            if not cur and (not s.strip() or s.lstrip().startswith("#")):
                continue
            if cur and s.lstrip().startswith("#"):
                continue
            if s.endswith("\\"):
                cur += s[:-1] + " "
                continue
            cur += s
            word, _, rest = cur.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            cur = ""
    return out


def parse_dockerfile(path):
    ins = dockerfile_instructions(path)
    names = [i for i, _ in ins]
    for need in ("FROM", "USER", "HEALTHCHECK", "CMD", "EXPOSE", "VOLUME"):
        if need not in names:
            fail(f"{path}: no {need}")
    froms = [r for i, r in ins if i == "FROM"]
    if len(froms) < 2:
        fail(f"{path}: not multi-stage ({len(froms)} FROM)")
    users = [r for i, r in ins if i == "USER"]
    if users and users[-1].split(":")[0] in ("root", "0"):
        fail(f"{path}: the image runs as root")
    if not any("7400" in r.split() for i, r in ins if i == "EXPOSE"):
        fail(f"{path}: does not expose 7400")
    import json
    cmd = health = None
    for i, r in ins:
        if i == "CMD":
            cmd = json.loads(r)
        if i == "HEALTHCHECK":
            m = re.search(r"\bCMD\s+(\[.*\])\s*$", r)
            if not m:
                fail(f"{path}: HEALTHCHECK is not an exec-form CMD")
            else:
                health = json.loads(m.group(1))
    # The build stage installs what tools/setup.sh installs.
    setup = os.path.join(os.path.dirname(path), "..", "..", "tools", "setup.sh")
    if os.path.exists(setup):
        m = re.search(r"packages=\((.*?)\$\{", open(setup).read(), re.S)
        want = set(m.group(1).split()) if m else set()
        stage, build_words = 0, set()
        for i, r in ins:
            stage += i == "FROM"
            if i == "RUN" and stage == 1:
                build_words.update(r.split())
        missing = sorted(p for p in want if p not in build_words)
        if not want or missing:
            fail(f"{path}: the build stage does not install what tools/setup.sh does: missing {missing or 'the list'}")
    ok(f"{path}: {len(froms)} stages, USER {users[-1] if users else '?'}, CMD {cmd}, HEALTHCHECK {health}")
    return cmd, health


def unit_sections(path):
    sections, cur, sec = {}, "", None
    with open(path) as f:
        for line in f:
            s = line.rstrip("\n")
            if not cur and (not s.strip() or s.lstrip()[:1] in "#;"):
                continue
            if s.endswith("\\"):
                cur += s[:-1] + " "
                continue
            cur += s
            t = cur.strip()
            cur = ""
            if t.startswith("[") and t.endswith("]"):
                sec = t[1:-1]
                sections.setdefault(sec, [])
                continue
            if "=" not in t or sec is None:
                fail(f"{path}: cannot parse line {t!r}")
                continue
            k, _, v = t.partition("=")
            sections[sec].append((k.strip(), v.strip()))
    return sections


def parse_unit(path):
    s = unit_sections(path)
    svc = dict(s.get("Service", []))
    if "ExecStart" not in svc:
        fail(f"{path}: no ExecStart in [Service]")
    for sec in ("Unit", "Install"):
        if sec not in s:
            fail(f"{path}: no [{sec}]")
    ok(f"{path}: ExecStart {svc.get('ExecStart')}")
    return svc


def parse_env_file(path):
    env = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            t = line.strip()
            if not t or t.startswith("#"):
                continue
            m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", t)
            if not m:
                fail(f"{path}:{n}: not KEY=VALUE: {t!r}")
                continue
            env[m.group(1)] = m.group(2)
    ok(f"{path}: {sorted(env)}")
    return env


def systemd_argv(exec_start, env):
    """ExecStart as systemd splits it: ${X} one word, $X split on whitespace."""
    words = []
    for w in shlex.split(exec_start):
        if re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*", w):
            words.extend(env.get(w[1:], "").split())
            continue
        words.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), w))
    return words


# ---------------------------------------------------------------- running ---

class Proc:
    """A started binary; collects its output, finds the "listening on" line."""

    def __init__(self, what, argv, env=None):
        self.what, self.argv = what, argv
        print(f"start {what}: {shlex.join(argv)}", flush=True)
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, env=env, start_new_session=True)
        self.lines, self.cv = [], threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            with self.cv:
                self.lines.append(line.rstrip("\n"))
                self.cv.notify_all()
        with self.cv:
            self.lines.append(None)
            self.cv.notify_all()

    def wait_for(self, pattern, limit=120):
        """The first output line matching pattern (None if it exited first).
        The limit only keeps a hung binary from hanging ctest."""
        rx = re.compile(pattern)
        with self.cv:
            i = 0
            while True:
                while i < len(self.lines):
                    line = self.lines[i]
                    if line is None:
                        return None
                    m = rx.search(line)
                    if m:
                        return m
                    i += 1
                if not self.cv.wait(timeout=limit):
                    return None

    def output(self):
        with self.cv:
            return "\n".join(l for l in self.lines if l is not None)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = self.p.wait()
            fail(f"{self.what}: did not stop within 60 s of SIGTERM")
        return rc


def run_until_listening(what, argv, name, env=None, after=None):
    """Starts argv, waits for "NAME listening on HOST:PORT", runs after(proc,
    address), stops it with SIGTERM and wants exit 0. Returns the proc."""
    p = Proc(what, argv, env)
    m = p.wait_for(re.escape(name) + r" listening on (\S+)")
    if not m:
        p.stop()
        fail(f"{what}: never printed '{name} listening on'; exit {p.p.returncode}; output:\n{p.output()}")
        return None
    ok(f"{what}: listening on {m.group(1)}")
    if after:
        after(p, m.group(1))
    rc = p.stop()
    if rc != 0:
        fail(f"{what}: exit {rc} after SIGTERM, want 0; output:\n{p.output()}")
    else:
        ok(f"{what}: stopped by SIGTERM, exit 0")
    return p


class Rewriter:
    """Paths and ports only (see the module comment)."""

    def __init__(self, tmp, bins):
        self.tmp, self.bins, self.paths = tmp, bins, {}

    def dir_for(self, path):
        if path not in self.paths:
            d = tempfile.mkdtemp(prefix=os.path.basename(path.rstrip("/")) + "-", dir=self.tmp)
            self.paths[path] = d
        return self.paths[path]

    def argv(self, argv, policy=None):
        out = []
        prog = argv[0]
        base = os.path.basename(prog)
        if base not in self.bins or prog not in (base, "/usr/local/bin/" + base):
            fail(f"unexpected program {prog!r}")
            return None
        out.append(self.bins[base])
        prev = None
        for a in argv[1:]:
            if prev in ("--listen", "--metrics-listen"):
                a = "127.0.0.1:0"
            elif prev == "--data":
                a = self.dir_for(a)
            elif prev == "--witness-policy":
                if policy is None or a not in policy:
                    fail(f"--witness-policy {a}: no policy file at that path in the manifests")
                    return None
                a = policy[a]
            out.append(a)
            prev = a if a.startswith("--") else None
        return out


def k8s_objects(objs, kind):
    return {o["metadata"]["name"]: o for o in objs if o.get("kind") == kind}


def container_argv(c, env_values, what):
    """command + args of a container, $(VAR) expanded as the kubelet does."""
    env = {}
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            ref = (e.get("valueFrom") or {}).get("configMapKeyRef") or {}
            v = env_values.get((ref.get("name"), ref.get("key")))
            if v is None:
                fail(f"{what}: env {e['name']} names ConfigMap {ref.get('name')} key {ref.get('key')}, not in the manifests")
                v = ""
            env[e["name"]] = v
    words = list(c.get("command", [])) + list(c.get("args", []))
    return [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), w) for w in words]


def check_ports(what, c, port, probe_kind):
    ports = [p.get("containerPort") for p in c.get("ports", [])]
    if port not in ports:
        fail(f"{what}: containerPort {port} not declared ({ports})")
    for probe in ("readinessProbe", "livenessProbe"):
        pr = c.get(probe)
        if not pr or probe_kind not in pr or pr[probe_kind].get("port") != port:
            fail(f"{what}: {probe} is not a {probe_kind} probe on port {port}: {pr}")


def listen_port(argv):
    for i, a in enumerate(argv[:-1]):
        if a == "--listen":
            return int(argv[i + 1].rsplit(":", 1)[1])
    return None


# ------------------------------------------------------------------- main ---

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deploy", required=True)
    ap.add_argument("--ledgerd", required=True)
    ap.add_argument("--witness", required=True)
    ap.add_argument("--ledgerctl", required=True)
    a = ap.parse_args()
    bins = {"ledgerd": a.ledgerd, "ledger-witness": a.witness, "ledgerctl": a.ledgerctl}

    k8s, dockerfile, units, envfiles = [], None, {}, {}
    for root, _, files in os.walk(a.deploy):
        for f in sorted(files):
            path = os.path.join(root, f)
            rel = os.path.relpath(path, a.deploy)
            if f.endswith((".yaml", ".yml")):
                k8s.extend(parse_yaml(path))
            elif f == "Dockerfile":
                dockerfile = parse_dockerfile(path)
            elif f.endswith(".dockerignore"):
                with open(path) as fh:
                    pats = [l.strip() for l in fh if l.strip() and not l.startswith("#")]
                if "var" not in pats or ".git" not in pats:
                    fail(f"{path}: must keep var/ (keys) and .git out of the build context")
                ok(f"{path}: {pats}")
            elif f.endswith(".service"):
                units[f] = parse_unit(path)
            elif f.endswith(".default"):
                envfiles[f] = parse_env_file(path)
            else:
                fail(f"{rel}: no check for this kind of file (add one to {__file__})")
    if dockerfile is None:
        fail("no deploy/container/Dockerfile")
    for u in ("ledgerd.service", "ledger-witness.service"):
        if u not in units:
            fail(f"no deploy/systemd/{u}")

    tmp = tempfile.mkdtemp(prefix="deploy_manifests-")
    rw = Rewriter(tmp, bins)

    # ---- Kubernetes: what the objects say of each other -------------------
    sts = k8s_objects(k8s, "StatefulSet").get("ledgerd")
    dep = k8s_objects(k8s, "Deployment").get("ledger-witness")
    cms = k8s_objects(k8s, "ConfigMap")
    svcs = k8s_objects(k8s, "Service")
    for name, obj in (("StatefulSet/ledgerd", sts), ("Deployment/ledger-witness", dep),
                      ("Service/ledgerd", svcs.get("ledgerd")),
                      ("Service/ledger-witness", svcs.get("ledger-witness"))):
        if obj is None:
            fail(f"no {name} under deploy/kubernetes")
    if not sts or not dep:
        return finish(tmp)
    if not sts["spec"].get("volumeClaimTemplates"):
        fail("StatefulSet/ledgerd: no volumeClaimTemplates")
    pdb_selects = [o["spec"]["selector"]["matchLabels"] for o in k8s if o.get("kind") == "PodDisruptionBudget"]
    np_selects = [o["spec"]["podSelector"]["matchLabels"] for o in k8s if o.get("kind") == "NetworkPolicy"]
    for what, labels in (("ledgerd", sts["spec"]["template"]["metadata"]["labels"]),
                         ("ledger-witness", dep["spec"]["template"]["metadata"]["labels"])):
        if not any(all(labels.get(k) == v for k, v in sel.items()) for sel in pdb_selects):
            fail(f"no PodDisruptionBudget selects the {what} pods")
        if not any(all(labels.get(k) == v for k, v in sel.items()) for sel in np_selects):
            fail(f"no NetworkPolicy selects the {what} pods")
    for svc_name, pod in (("ledgerd", sts), ("ledger-witness", dep)):
        svc = svcs.get(svc_name)
        labels = pod["spec"]["template"]["metadata"]["labels"]
        if svc and not all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()):
            fail(f"Service/{svc_name} does not select its pods")
    dep_vols = {v["name"]: v for v in dep["spec"]["template"]["spec"].get("volumes", [])}
    wc = dep["spec"]["template"]["spec"]["containers"][0]
    wdata = [m for m in wc.get("volumeMounts", []) if m["mountPath"] == "/var/lib/ledger-witness"]
    if not wdata or "persistentVolumeClaim" not in dep_vols.get(wdata[0]["name"], {}):
        fail("Deployment/ledger-witness: its data directory is not on a PersistentVolumeClaim (a witness must keep its state)")
    elif dep_vols[wdata[0]["name"]]["persistentVolumeClaim"]["claimName"] not in k8s_objects(k8s, "PersistentVolumeClaim"):
        fail("Deployment/ledger-witness: its PersistentVolumeClaim is not in the manifests")
    if dep["spec"].get("replicas") != 1 or dep["spec"].get("strategy", {}).get("type") != "Recreate":
        fail("Deployment/ledger-witness: must be one replica with strategy Recreate (never two on one state)")

    env_values = {(n, k): v for n, cm in cms.items() for k, v in (cm.get("data") or {}).items()}
    lc = [c for c in sts["spec"]["template"]["spec"]["containers"] if c["name"] == "ledgerd"]
    if not lc:
        fail("StatefulSet/ledgerd: no container named ledgerd")
        return finish(tmp)
    lc = lc[0]
    check_ports("StatefulSet/ledgerd", lc, 7400, "grpc")
    check_ports("Deployment/ledger-witness", wc, 7480, "tcpSocket")
    led_argv = container_argv(lc, env_values, "StatefulSet/ledgerd")
    wit_argv = container_argv(wc, env_values, "Deployment/ledger-witness")
    if listen_port(led_argv) != 7400:
        fail(f"StatefulSet/ledgerd: does not listen on the port its probes use: {led_argv}")
    if listen_port(wit_argv) != 7480:
        fail(f"Deployment/ledger-witness: does not listen on 7480: {wit_argv}")

    # The policy file as the pod sees it: a ConfigMap volume mounted at a directory.
    sts_vols = {v["name"]: v for v in sts["spec"]["template"]["spec"].get("volumes", [])}
    policy_texts = {}
    for m in lc.get("volumeMounts", []):
        cm = (sts_vols.get(m["name"]) or {}).get("configMap")
        if not cm:
            continue
        data = cms.get(cm["name"], {}).get("data") or {}
        if m.get("subPath"):
            if m["subPath"] in data:
                policy_texts[m["mountPath"]] = data[m["subPath"]]
        else:
            for key, text in data.items():
                policy_texts[os.path.join(m["mountPath"], key)] = text

    # ---- 1. the init container creates the ledger ------------------------
    init = [c for c in sts["spec"]["template"]["spec"].get("initContainers", [])]
    data_dir = rw.dir_for("/var/lib/decision-ledger")
    if len(init) != 1:
        fail("StatefulSet/ledgerd: expected one init container (it creates the ledger)")
        return finish(tmp)
    script = init[0]["command"][-1]
    # Paths only: the data directory and /tmp become temporary directories; the
    # binaries are found on PATH, as in the image (/usr/local/bin).
    bindir = os.path.join(tmp, "bin")
    os.makedirs(bindir)
    for n, p in bins.items():
        os.symlink(os.path.abspath(p), os.path.join(bindir, n))
    tmp_dir = rw.dir_for("/tmp")
    script = re.sub(r"/var/lib/decision-ledger|/tmp/",
                    lambda m: data_dir if m.group(0).startswith("/var") else tmp_dir + "/", script)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    print("start init-ledger (sh -c, paths rewritten)", flush=True)
    r = subprocess.run(init[0]["command"][:-1] + [script], env=env, capture_output=True, text=True, timeout=300)
    vkey_path = os.path.join(data_dir, "operator.vkey")
    if r.returncode != 0 or not os.path.exists(vkey_path):
        fail(f"init-ledger: exit {r.returncode}, operator.vkey {'present' if os.path.exists(vkey_path) else 'missing'}:\n{r.stdout}{r.stderr}")
        return finish(tmp)
    log_vkey = open(vkey_path).read().strip()
    if log_vkey not in r.stdout:
        fail("init-ledger: its log does not show the operator vkey (README tells operators to read it there)")
    ok(f"init-ledger: created the ledger, vkey {log_vkey}")
    r2 = subprocess.run(init[0]["command"][:-1] + [script], env=env, capture_output=True, text=True, timeout=300)
    if r2.returncode != 0 or "operator vkey: " + log_vkey not in r2.stdout:
        fail(f"init-ledger on an existing ledger: exit {r2.returncode}, want 0 and its vkey printed\n{r2.stdout}{r2.stderr}")
    else:
        ok("init-ledger: a second start leaves the existing ledger alone and prints its vkey (exit 0)")

    # Unfilled, the ConfigMap's policy stops ledgerd, naming the placeholder
    # (README "Deploying": ledgerd exits 2 until the policy names the ledger).
    for mount_path, text in policy_texts.items():
        raw = os.path.join(rw.dir_for("/etc/ledger-unfilled"), os.path.basename(mount_path))
        with open(raw, "w") as fh:
            fh.write(text)
        run = rw.argv(led_argv, {mount_path: raw})
        if run:
            r3 = subprocess.run(run, capture_output=True, text=True, timeout=120)
            if r3.returncode != 2 or "REPLACE_WITH_" not in r3.stderr:
                fail(f"ledgerd with the unfilled policy: exit {r3.returncode}, want 2 naming the placeholder:\n{r3.stdout}{r3.stderr}")
            else:
                ok("ledgerd with the unfilled policy: exit 2, naming the placeholder")

    # ---- 2. the witness, with the ConfigMap's values filled in -------------
    wit_argv = [w.replace("REPLACE_WITH_LEDGERD_OPERATOR_VKEY", log_vkey) for w in wit_argv]
    wit_run = rw.argv(wit_argv)
    wit = Proc("k8s Deployment/ledger-witness", wit_run) if wit_run else None
    wm = wit.wait_for(r"ledger-witness listening on (\S+)") if wit else None
    if not wm:
        fail(f"k8s Deployment/ledger-witness: never listened; output:\n{wit.output() if wit else ''}")
        if wit:
            wit.stop()
        return finish(tmp)
    wit_addr = wm.group(1)
    vm = wit.wait_for(r"^\s*vkey: (\S+)")
    wit_vkey = vm.group(1) if vm else ""
    ok(f"k8s Deployment/ledger-witness: listening on {wit_addr}, vkey {wit_vkey}")

    # ---- 3. ledgerd with the ConfigMap's policy -----------------------------
    policy_files = {}
    for mount_path, text in policy_texts.items():
        text = text.replace("REPLACE_WITH_LEDGERD_OPERATOR_VKEY", log_vkey)
        text = text.replace("REPLACE_WITH_WITNESS_VKEY", wit_vkey)
        text = re.sub(r"http://ledger-witness:7480", "http://" + wit_addr, text)  # the Service's address
        if "REPLACE_WITH_" in text:
            fail(f"policy {mount_path}: a placeholder this test does not know: {text}")
        f = os.path.join(rw.dir_for("/etc/ledger"), os.path.basename(mount_path))
        with open(f, "w") as fh:
            fh.write(text)
        policy_files[mount_path] = f
    ledgerd_run = rw.argv(led_argv, policy_files)
    health = dockerfile[1] if dockerfile else None

    def k8s_checks(p, addr):
        if health:
            argv = [bins.get(health[0], health[0])] + [
                addr if w == "127.0.0.1:7400" else w for w in health[1:]]
            hr = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            if hr.returncode != 0:
                fail(f"Dockerfile HEALTHCHECK against ledgerd: exit {hr.returncode}: {hr.stderr}")
            else:
                ok("Dockerfile HEALTHCHECK command answers 0 against the served ledger")
        # The witness cosigns: the policy the ConfigMap holds works end to end.
        # ledgerd sends its checkpoint to the witnesses at start; wait for the
        # round (polling; the limit only keeps a broken setup from hanging).
        for _ in range(120):
            wr = subprocess.run([bins["ledgerctl"], "--server", addr, "checkpoint", "--witnessed",
                                 "--witness-policy", list(policy_files.values())[0]],
                                capture_output=True, text=True, timeout=60)
            if wr.returncode == 0 and wit_vkey and wit_vkey.split("+")[0] in wr.stdout:
                ok("ledgerd with the ConfigMap's policy: the witness cosigned its checkpoint")
                return
            time.sleep(0.5)
        fail(f"ledgerd with the ConfigMap's policy: no checkpoint cosigned by the witness "
             f"(last: exit {wr.returncode}: {wr.stderr.strip()})")

    if ledgerd_run and policy_files:
        run_until_listening("k8s StatefulSet/ledgerd", ledgerd_run, "ledgerd", after=k8s_checks)
    wrc = wit.stop()
    if wrc != 0:
        fail(f"k8s Deployment/ledger-witness: exit {wrc} after SIGTERM; output:\n{wit.output()}")
    else:
        ok("k8s Deployment/ledger-witness: stopped by SIGTERM, exit 0")

    # ---- 4. the container's default command --------------------------------
    if dockerfile and dockerfile[0]:
        if listen_port(dockerfile[0]) != 7400:
            fail(f"Dockerfile CMD does not listen on 7400: {dockerfile[0]}")
        rw_docker = Rewriter(tmp, bins)
        run_until_listening("Dockerfile CMD", rw_docker.argv(dockerfile[0]) or ["false"], "ledgerd")

    # ---- 5. systemd units with their EnvironmentFile examples ---------------
    for unit, binary, envfile in (("ledgerd.service", "ledgerd", "ledgerd.default"),
                                  ("ledger-witness.service", "ledger-witness", "ledger-witness.default")):
        svc = units.get(unit)
        if not svc:
            continue
        env = dict(envfiles.get(envfile, {}))
        if not env:
            fail(f"deploy/systemd/{envfile}: missing (the example of the unit's EnvironmentFile)")
        if "EnvironmentFile" not in svc:
            fail(f"{unit}: no EnvironmentFile")
        env = {k: v.replace("REPLACE_WITH_LEDGERD_OPERATOR_VKEY", log_vkey) for k, v in env.items()}
        argv = systemd_argv(svc["ExecStart"], env)
        rw_unit = Rewriter(tmp, bins)
        rw_unit.paths["/var/lib/decision-ledger"] = data_dir  # the ledger the policy names
        pol = {}
        if "--witness-policy" in argv:
            path = argv[argv.index("--witness-policy") + 1]
            pol[path] = list(policy_files.values())[0] if policy_files else ""
        run = rw_unit.argv(argv, pol)
        if run:
            run_until_listening(f"systemd {unit}", run, binary)
    return finish(tmp)


def finish(tmp):
    subprocess.run(["rm", "-rf", tmp])
    if FAILURES:
        print(f"\n{len(FAILURES)} failure(s):\n" + "\n".join(" - " + f for f in FAILURES), flush=True)
        return 1
    print("\nall deploy/ files parse and every command they give starts and stops cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
