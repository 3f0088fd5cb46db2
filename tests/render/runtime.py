"""Running a container of the service's image in the real Docker engine the way each target's runtime
would run it: the kubelet (a rendered pod spec), Docker Compose (a service of compose.yaml) and
systemd (the NixOS module's unit). Each `*Run` class turns its input into `docker run` arguments,
starts the container, performs that runtime's checks (probes, health checks) and stops it with that
runtime's signal and grace period. Anything in the input this file does not know how to honour is an
error, never skipped: a run that could not be done faithfully must not pass.

Upstream semantics this follows (read from source, not copied):
- kubelet environment: kubernetes/kubernetes pkg/kubelet/kubelet_pods.go (makeEnvironmentVariables:
  envFrom first, then env in order, `$(VAR)` expanded against what is defined so far; the
  `kubernetes` service variables are always present, other services only with enableServiceLinks);
  `$(VAR)` syntax: third_party/forked/golang/expansion/expand.go.
- volume ownership with fsGroup: pkg/volume/volume_linux.go (SetVolumeOwnership: group fsGroup,
  mode | 0440 for read-only volumes such as Secrets, | 0660 otherwise, setgid on directories);
  emptyDir directories are created 0777 (pkg/volume/emptydir).
- probes: pkg/kubelet/prober (initialDelaySeconds, periodSeconds, timeoutSeconds, successThreshold,
  failureThreshold, defaults 0/10/1/1/3) and pkg/probe/http (GET to the pod IP, success on
  200-399, User-Agent kube-probe/<version>).
- termination: pkg/kubelet/kuberuntime/kuberuntime_container.go (killContainer: the preStop hook
  runs within the grace period, the rest of it, at least 2 s, is the runtime's SIGTERM-to-SIGKILL
  timeout).
- systemd: specifiers (%d is $CREDENTIALS_DIRECTORY, /run/credentials/<unit>), LoadCredential,
  StateDirectory, DynamicUser (uids 61184-65519), TimeoutStopSec, KillSignal: systemd.exec(5),
  systemd.unit(5), systemd.kill(5).
"""

import http.client
import ipaddress
import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import threading
import time

KUBE_VERSION = "1.30"
MIN_GRACE_SECONDS = 2  # the kubelet never gives the runtime less than this after preStop
READY_WITHIN_SECONDS = 30  # a pod that is not ready by then counts as failed (the test's bound)
HELM_TEST_TIMEOUT = 60


class RunError(AssertionError):
    """A run that did not behave as the runtime requires; the message carries the container's log."""


def docker(*args, timeout=120, check=True, input_bytes=None):
    out = subprocess.run(["docker", *args], capture_output=True, timeout=timeout, input=input_bytes)
    if check and out.returncode != 0:
        raise RunError(f"docker {' '.join(args[:3])}: {out.stderr.decode(errors='replace').strip()}")
    return out


def logs(container, tail=40):
    out = docker("logs", "--tail", str(tail), container, check=False)
    return (out.stdout + out.stderr).decode(errors="replace").strip()


def state(container):
    out = docker("inspect", "--format", "{{json .State}}", container, check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def container_ip(container, network):
    out = docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", container)
    return json.loads(out.stdout)[network]["IPAddress"]


class Forwarder:
    """A TCP forwarder on the host: stands in for a Service's cluster IP (to a pod's port) or for a
    database the target provides (to the local PostgreSQL)."""

    def __init__(self, listen_host, listen_port, target):
        self.target = target
        self.server = socket.create_server((listen_host, listen_port))
        self.address = self.server.getsockname()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target(), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)  # the timeout was for connecting; idle pooled connections stay
            # A Service's DNAT forwards segments as they come; a relay that let Nagle's algorithm
            # hold a request's second write (a POST's body) until the peer's delayed ACK added
            # hundreds of milliseconds the cluster never shows.
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.closed = True
        self.server.close()


class Network:
    """One user-defined bridge per render: containers reach each other, and the host reaches them,
    by IP; the host's forwarders listen on the bridge's gateway address."""

    def __init__(self, name):
        self.name = name
        docker("network", "create", "--label", "devsecops-render=1", name)
        config = json.loads(docker("network", "inspect", name).stdout)[0]["IPAM"]["Config"][0]
        self.subnet = ipaddress.ip_network(config["Subnet"])
        self.gateway = config.get("Gateway") or str(next(self.subnet.hosts()))
        self.forwarders = []

    def forward(self, port, target, address=None):
        forwarder = Forwarder(address or self.gateway, port, target)
        self.forwarders.append(forwarder)
        return forwarder.address[1]

    def service_address(self):
        """A further address of the host on this bridge, from the top of its subnet (Docker hands
        out container addresses from the bottom): one per Service, as each has its own cluster IP."""
        self._next = getattr(self, "_next", 0) + 1
        address = str(self.subnet.broadcast_address - self._next)
        bridge = "br-" + json.loads(docker("network", "inspect", self.name).stdout)[0]["Id"][:12]
        subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", bridge], check=True, capture_output=True)
        return address

    def close(self):
        for forwarder in self.forwarders:
            forwarder.close()
        docker("network", "rm", self.name, check=False)


def remove_leftovers():
    """Containers and networks of an earlier run that was killed before it could clean up."""
    for kind, fmt in (("ps", "{{.ID}}"), ("network", "{{.ID}}")):
        args = ["ps", "-aq"] if kind == "ps" else ["network", "ls", "-q"]
        out = docker(*args, "--filter", "label=devsecops-render=1", check=False)
        ids = out.stdout.decode().split()
        if ids:
            docker(*(["rm", "-f", "-v"] if kind == "ps" else ["network", "rm"]), *ids, check=False)


def image_user(image):
    user = json.loads(docker("image", "inspect", image).stdout)[0]["Config"].get("User") or "0"
    uid, _, gid = user.partition(":")
    if not uid.isdigit() or (gid and not gid.isdigit()):
        raise RunError(f"{image}: USER {user!r} is not numeric; runAsNonRoot cannot be verified")
    return int(uid), int(gid) if gid else None


def expand(text, env):
    """Kubernetes `$(VAR)` expansion: defined names are replaced, `$$` is a literal `$`, anything
    else is left as written."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            if text[i + 1] == "$":
                out.append("$")
                i += 2
                continue
            if text[i + 1] == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2:end]
                    out.append(env[name] if name in env else text[i:end + 1])
                    i = end + 1
                    continue
        out.append(text[i])
        i += 1
    return "".join(out)


UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def quantity_bytes(value):
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    if not m or (m.group(2) and m.group(2) not in UNITS):
        raise RunError(f"memory quantity {value!r} is not understood")
    return int(float(m.group(1)) * UNITS.get(m.group(2), 1))


def quantity_cpus(value):
    text = str(value)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def http_get(url, timeout, headers=None):
    """One HTTP GET as a probe makes it: (status or None, detail)."""
    parsed = re.fullmatch(r"(https?)://([^/:]+|\[[^\]]+\]):(\d+)(/.*)?", url)
    scheme, host, port, path = parsed.groups()
    cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    kwargs = {"context": ssl._create_unverified_context()} if scheme == "https" else {}
    conn = cls(host.strip("[]"), int(port), timeout=timeout, **kwargs)
    try:
        conn.request("GET", path or "/", headers=headers or {})
        response = conn.getresponse()
        body = response.read(10 * 1024)
        return response.status, f"{url}: {response.status} {body[:200].decode(errors='replace')}"
    except (OSError, http.client.HTTPException) as e:
        return None, f"{url}: {e}"
    finally:
        conn.close()


def log_errors(container):
    """JSON log lines at error or critical level: a render that starts but logs errors is broken."""
    text = docker("logs", container, check=False).stdout.decode(errors="replace")
    bad = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("level") in ("error", "critical"):
            bad.append(line)
    return bad


class ContainerRun:
    """A detached container with the arguments a runtime computed; common start/stop mechanics."""

    def __init__(self, name, network, image, labels=None):
        self.name = name
        self.network = network
        self.image = image
        self.args = ["--label", "devsecops-render=1", "--network", network.name, "--name", name]
        for key, value in (labels or {}).items():
            self.args += ["--label", f"{key}={value}"]
        self.started = False

    def start(self, entrypoint, args, env):
        argv = ["run", "-d", *self.args]
        for key, value in env.items():
            argv += ["-e", f"{key}={value}"]
        if entrypoint is not None:
            argv += ["--entrypoint", entrypoint[0]]
        argv.append(self.image)
        argv += list(entrypoint[1:] if entrypoint else []) + list(args)
        docker(*argv)
        self.started = True

    def running(self):
        return state(self.name).get("Running", False)

    def exited(self):
        """Fails with the container's own output when it is no longer running."""
        current = state(self.name)
        if current and not current.get("Running"):
            raise RunError(f"{self.name} exited with code {current.get('ExitCode')}"
                           f"{' (OOM killed)' if current.get('OOMKilled') else ''}:\n{logs(self.name)}")

    def stop(self, signal_name, grace_seconds):
        """Sends the stop signal, waits for the exit within the grace period, kills after it.
        Returns (seconds taken, exit code)."""
        started = time.monotonic()
        docker("kill", "--signal", signal_name, self.name, check=False)
        deadline = started + grace_seconds
        while time.monotonic() < deadline:
            current = state(self.name)
            if not current.get("Running"):
                return time.monotonic() - started, current.get("ExitCode")
            time.sleep(0.1)
        docker("kill", "--signal", "KILL", self.name, check=False)
        raise RunError(f"{self.name} was still running {grace_seconds} s after {signal_name} and was killed:\n"
                       f"{logs(self.name)}")

    def remove(self):
        docker("rm", "-f", "-v", self.name, check=False)


class Cluster:
    """What a cluster would hold beside the render: Secrets the chart references but does not make
    (created by an operator, by CloudNativePG or by hand, as the README says), and a real PostgreSQL
    for database URLs. Every such Secret key must be known here; anything else is an error."""

    def __init__(self, database_url):
        self.database_url = database_url  # a callable: network -> URL the containers can use
        self.token = secrets.token_hex(32)  # what `openssl rand -hex 32` makes, as documented

    def secret_value(self, name, key, network):
        if key in ("api-token",):
            return self.token.encode()
        if key in ("database-url", "uri"):
            return self.database_url(network).encode()
        raise RunError(f"Secret {name} key {key} is neither rendered nor a known external Secret")


class PodRun:
    """A rendered pod spec run as the kubelet runs it: one Docker container per container of the pod,
    on the pod's own IP."""

    def __init__(self, render, pod_name, namespace, spec, labels, objects, cluster, image, network, workdir):
        self.render = render
        self.pod_name = pod_name
        self.namespace = namespace
        self.spec = spec
        self.labels = labels
        self.objects = objects
        self.cluster = cluster
        self.image = image
        self.network = network
        self.workdir = workdir
        self.containers = []
        self.ip = None
        unknown = set(spec) - {
            "serviceAccountName", "automountServiceAccountToken", "enableServiceLinks", "priorityClassName",
            "imagePullSecrets", "terminationGracePeriodSeconds", "securityContext", "topologySpreadConstraints",
            "nodeSelector", "tolerations", "affinity", "containers", "volumes", "restartPolicy"}
        if unknown:
            raise RunError(f"{render} {pod_name}: pod fields not emulated here: {sorted(unknown)}")
        if spec.get("initContainers"):
            raise RunError(f"{render} {pod_name}: init containers are not emulated here")

    # --- what the kubelet computes for a container -------------------------------------------------

    def _config_map(self, name):
        data = self.objects.get(("ConfigMap", name))
        if data is None:
            raise RunError(f"{self.render} {self.pod_name}: ConfigMap {name} is not in the render")
        return {k: v.encode() for k, v in data.get("data", {}).items()}

    def _secret(self, name, keys=None):
        data = self.objects.get(("Secret", name))
        if data is not None:
            import base64
            values = {k: base64.b64decode(v) for k, v in data.get("data", {}).items()}
            values.update({k: v.encode() for k, v in data.get("stringData", {}).items()})
            missing = set(keys or []) - set(values)
            if missing:
                raise RunError(f"{self.render}: Secret {name} has no key {sorted(missing)}")
            return values
        if keys is None:
            raise RunError(f"{self.render}: Secret {name} is not rendered and is used whole (envFrom)")
        return {key: self.cluster.secret_value(name, key, self.network) for key in keys}

    def environment(self, container):
        env = {}
        for source in container.get("envFrom", []):
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                values = self._config_map(source["configMapRef"]["name"])
            elif "secretRef" in source:
                values = self._secret(source["secretRef"]["name"])
            else:
                raise RunError(f"{self.render}: envFrom {source} is not emulated")
            for key, value in values.items():
                env[prefix + key] = value.decode()
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = expand(var["value"], env)
            elif "valueFrom" in var:
                ref = var["valueFrom"]
                if "configMapKeyRef" in ref:
                    r = ref["configMapKeyRef"]
                    env[var["name"]] = self._config_map(r["name"])[r["key"]].decode()
                elif "secretKeyRef" in ref:
                    r = ref["secretKeyRef"]
                    env[var["name"]] = self._secret(r["name"], [r["key"]])[r["key"]].decode()
                elif "fieldRef" in ref:
                    fields = {"metadata.name": self.pod_name, "metadata.namespace": self.namespace,
                              "status.podIP": self.ip or ""}
                    path = ref["fieldRef"]["fieldPath"]
                    if path not in fields:
                        raise RunError(f"{self.render}: fieldRef {path} is not emulated")
                    env[var["name"]] = fields[path]
                else:
                    raise RunError(f"{self.render}: env {var['name']} valueFrom {ref} is not emulated")
            else:
                env[var["name"]] = ""
        # The API server's Service, always present (kubelet_pods.go: master services).
        env.setdefault("KUBERNETES_SERVICE_HOST", "10.43.0.1")
        env.setdefault("KUBERNETES_SERVICE_PORT", "443")
        env.setdefault("KUBERNETES_SERVICE_PORT_HTTPS", "443")
        env.setdefault("KUBERNETES_PORT", "tcp://10.43.0.1:443")
        if self.spec.get("enableServiceLinks", True):
            raise RunError(f"{self.render}: enableServiceLinks is on: the Service variables of the namespace "
                           "are not emulated (and the chart turns them off)")
        return env

    def _security(self, container):
        pod_sc = self.spec.get("securityContext", {})
        sc = container.get("securityContext", {})
        args = []
        image_uid, image_gid = image_user(self.image)
        uid = sc.get("runAsUser", pod_sc.get("runAsUser", image_uid))
        # Without runAsGroup the image's group applies to the image's user, else group 0.
        gid = sc.get("runAsGroup", pod_sc.get("runAsGroup", image_gid if uid == image_uid else 0))
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) and uid == 0:
            raise RunError(f"{self.render}: runAsNonRoot, but the container would run as root")
        args += ["--user", f"{uid}:{gid if gid is not None else 0}"]
        groups = list(pod_sc.get("supplementalGroups", []))
        if "fsGroup" in pod_sc:
            groups.append(pod_sc["fsGroup"])
        for group in groups:
            args += ["--group-add", str(group)]
        if sc.get("privileged"):
            args.append("--privileged")
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        if sc.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        caps = sc.get("capabilities", {})
        for cap in caps.get("drop", []):
            args += ["--cap-drop", cap]
        for cap in caps.get("add", []):
            args += ["--cap-add", cap]
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {"type": "RuntimeDefault"}))
        if seccomp.get("type") == "Unconfined":
            args += ["--security-opt", "seccomp=unconfined"]
        elif seccomp.get("type") != "RuntimeDefault":
            raise RunError(f"{self.render}: seccomp profile {seccomp} is not emulated")
        for key in set(sc) - {"runAsUser", "runAsGroup", "runAsNonRoot", "privileged", "allowPrivilegeEscalation",
                              "readOnlyRootFilesystem", "capabilities", "seccompProfile"}:
            raise RunError(f"{self.render}: securityContext.{key} is not emulated")
        return args

    def _resources(self, container):
        limits = container.get("resources", {}).get("limits", {})
        args = []
        if "memory" in limits:
            args += ["--memory", str(quantity_bytes(limits["memory"]))]
        if "cpu" in limits:
            args += ["--cpus", str(quantity_cpus(limits["cpu"]))]
        return args

    def _volumes(self, container):
        pod_sc = self.spec.get("securityContext", {})
        fs_group = pod_sc.get("fsGroup")
        volumes = {v["name"]: v for v in self.spec.get("volumes", [])}
        args = []
        for mount in container.get("volumeMounts", []):
            if set(mount) - {"name", "mountPath", "readOnly"}:
                raise RunError(f"{self.render}: volumeMount fields {sorted(set(mount) - {'name', 'mountPath', 'readOnly'})}"
                               " are not emulated")
            volume = volumes.get(mount["name"])
            if volume is None:
                raise RunError(f"{self.render}: volumeMount {mount['name']} names no volume")
            path = mount["mountPath"]
            if "secret" in volume or "configMap" in volume:
                source = volume.get("secret") or volume.get("configMap")
                name = source.get("secretName") or source.get("name")
                items = source.get("items")
                keys = [i["key"] for i in items] if items else None
                data = self._secret(name, keys) if "secret" in volume else self._config_map(name)
                directory = os.path.join(self.workdir, self.render, self.pod_name, mount["name"])
                os.makedirs(directory, exist_ok=True)
                default_mode = source.get("defaultMode", 0o644)
                for item in items or [{"key": k, "path": k} for k in data]:
                    target = os.path.join(directory, item["path"])
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    with open(target, "wb") as f:
                        f.write(data[item["key"]])
                    mode = item.get("mode", default_mode)
                    # SetVolumeOwnership: group fsGroup, read for the group on read-only volumes.
                    if fs_group is not None:
                        os.chown(target, 0, fs_group)
                        mode |= 0o440
                    os.chmod(target, mode)
                if fs_group is not None:
                    os.chown(directory, 0, fs_group)
                    os.chmod(directory, 0o2755)
                # Secret and ConfigMap volumes are always mounted read-only by the kubelet.
                args += ["--mount", f"type=bind,source={directory},target={path},readonly"]
            elif volume.get("emptyDir", {}).get("medium") == "Memory":
                size = volume["emptyDir"].get("sizeLimit")
                options = ["rw", "nosuid", "nodev", "exec"] + ([f"size={quantity_bytes(size)}"] if size else [])
                options += ["mode=2777", f"gid={fs_group}"] if fs_group is not None else ["mode=0777"]
                args += ["--tmpfs", f"{path}:{','.join(options)}"]
            elif "emptyDir" in volume or "persistentVolumeClaim" in volume:
                # A directory on the node's disk, as the kubelet makes an emptyDir (0777) and as a
                # provisioner hands out a volume; with fsGroup, group-owned and setgid
                # (SetVolumeOwnership). sizeLimit is enforced by eviction, not by the mount. A claim
                # is one directory for every pod of the render that mounts it (all on one node here).
                if "persistentVolumeClaim" in volume:
                    directory = self.claim_directory(volume["persistentVolumeClaim"]["claimName"])
                else:
                    directory = os.path.join(self.workdir, self.render, self.pod_name, mount["name"])
                os.makedirs(directory, exist_ok=True)
                if fs_group is not None:
                    os.chown(directory, 0, fs_group)
                os.chmod(directory, 0o2777 if fs_group is not None else 0o777)
                args += ["--mount", f"type=bind,source={directory},target={path}"]
            else:
                raise RunError(f"{self.render}: volume {volume} is not emulated")
            if mount.get("readOnly") and ("emptyDir" in volume or "persistentVolumeClaim" in volume):
                raise RunError(f"{self.render}: read-only emptyDir/PVC mounts are not emulated")
        return args

    def claim_directory(self, claim):
        return os.path.join(self.workdir, self.render, "claims", claim)

    def _command(self, container, env):
        command = [expand(c, env) for c in container.get("command", [])] or None
        args = [expand(a, env) for a in container.get("args", [])]
        return command, args

    # --- probes ------------------------------------------------------------------------------------

    def _port(self, container, port):
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for p in container.get("ports", []):
            if p.get("name") == port:
                return p["containerPort"]
        raise RunError(f"{self.render}: probe port {port!r} names no container port")

    def probe_once(self, run, container, probe):
        """One attempt of a probe handler: (success, detail)."""
        timeout = probe.get("timeoutSeconds", 1)
        if "httpGet" in probe:
            get = probe["httpGet"]
            host = get.get("host") or self.ip
            scheme = get.get("scheme", "HTTP").lower()
            headers = {"User-Agent": f"kube-probe/{KUBE_VERSION}", "Accept": "*/*"}
            headers.update({h["name"]: h["value"] for h in get.get("httpHeaders", [])})
            url = f"{scheme}://{host}:{self._port(container, get['port'])}{get.get('path', '/')}"
            status, detail = http_get(url, timeout, headers)
            return status is not None and 200 <= status < 400, detail
        if "tcpSocket" in probe:
            port = self._port(container, probe["tcpSocket"]["port"])
            try:
                socket.create_connection((probe["tcpSocket"].get("host") or self.ip, port), timeout=timeout).close()
                return True, f"tcp {port} open"
            except OSError as e:
                return False, f"tcp {port}: {e}"
        if "exec" in probe:
            try:
                out = docker("exec", run.name, *probe["exec"]["command"], timeout=timeout, check=False)
            except subprocess.TimeoutExpired:
                return False, f"exec timed out after {timeout} s"
            return out.returncode == 0, (out.stdout + out.stderr).decode(errors="replace").strip()
        raise RunError(f"{self.render}: probe handler {sorted(probe)} is not emulated")

    def run_probe(self, run, container, kind, until_success_within=None):
        """Runs a probe with the kubelet's timing until it succeeds successThreshold times in a row.
        Startup and liveness fail at failureThreshold consecutive failures (the kubelet would kill
        the container); readiness keeps trying up to `until_success_within` seconds."""
        probe = container.get(kind)
        if not probe:
            return f"no {kind}"
        period = probe.get("periodSeconds", 10)
        failure_threshold = probe.get("failureThreshold", 3)
        success_threshold = probe.get("successThreshold", 1)
        time.sleep(probe.get("initialDelaySeconds", 0))
        failures = successes = 0
        deadline = time.monotonic() + (until_success_within or 10**9)
        while True:
            run.exited()
            attempt = time.monotonic()
            ok, detail = self.probe_once(run, container, probe)
            if ok:
                successes += 1
                failures = 0
                if successes >= success_threshold:
                    return detail
            else:
                successes = 0
                failures += 1
                if until_success_within is None and failures >= failure_threshold:
                    raise RunError(f"{self.render} {container['name']}: {kind} failed {failures} times "
                                   f"(last: {detail})\n{logs(run.name)}")
                if until_success_within is not None and time.monotonic() > deadline:
                    raise RunError(f"{self.render} {container['name']}: not ready within {until_success_within} s "
                                   f"(last {kind}: {detail})\n{logs(run.name)}")
            time.sleep(max(0.0, period - (time.monotonic() - attempt)))

    # --- the pod's life ----------------------------------------------------------------------------

    def start(self):
        for container in self.spec["containers"]:
            if not container["image"].split("@")[0].rsplit(":", 1)[0].endswith("/devsecops-app"):
                raise RunError(f"{self.render}: container {container['name']} runs {container['image']}, "
                               "which is not the service's image: it cannot run here")
            unknown = set(container) - {"name", "image", "imagePullPolicy", "command", "args", "ports", "env",
                                        "envFrom", "securityContext", "startupProbe", "livenessProbe",
                                        "readinessProbe", "lifecycle", "resources", "volumeMounts"}
            if unknown:
                raise RunError(f"{self.render}: container fields not emulated: {sorted(unknown)}")
            run = ContainerRun(f"{self.network.name}-{self.pod_name}-{container['name']}"[:120], self.network,
                               self.image, {"render": self.render})
            run.args += ["--hostname", self.pod_name[:63]]
            run.args += self._security(container) + self._resources(container) + self._volumes(container)
            env = self.environment(container)
            command, args = self._command(container, env)
            run.start(command, args, env)
            self.containers.append((run, container))
        self.ip = container_ip(self.containers[0][0].name, self.network.name)

    def become_ready(self):
        """Startup probe to success, then readiness until ready, then one liveness round."""
        results = []
        for run, container in self.containers:
            results.append(self.run_probe(run, container, "startupProbe"))
            results.append(self.run_probe(run, container, "readinessProbe", until_success_within=READY_WITHIN_SECONDS))
            results.append(self.run_probe(run, container, "livenessProbe"))
        return results

    def run_to_completion(self, extra_hosts, timeout=HELM_TEST_TIMEOUT):
        """A restartPolicy Never pod (helm test, a Job's pod): every container must exit 0 within
        `timeout` seconds."""
        if self.spec.get("restartPolicy") not in ("Never", None):
            raise RunError(f"{self.render} {self.pod_name}: restartPolicy {self.spec['restartPolicy']} is not emulated")
        for container in self.spec["containers"]:
            run = ContainerRun(f"{self.network.name}-{self.pod_name}-{container['name']}"[:120], self.network,
                               self.image, {"render": self.render})
            run.args += self._security(container) + self._resources(container) + self._volumes(container)
            for host, address in extra_hosts.items():
                run.args += ["--add-host", f"{host}:{address}"]
            env = self.environment(container)
            command, args = self._command(container, env)
            run.start(command, args, env)
            self.containers.append((run, container))
            deadline = time.monotonic() + timeout
            while run.running() and time.monotonic() < deadline:
                time.sleep(0.2)
            current = state(run.name)
            if current.get("Running") or current.get("ExitCode") != 0:
                how = f"still running after {timeout} s" if current.get("Running") else f"exit {current.get('ExitCode')}"
                raise RunError(f"{self.render} {self.pod_name}/{container['name']} did not succeed ({how}):\n"
                               f"{logs(run.name)}")

    def required_affinity_met(self, running):
        """The scheduler's required pod affinity: every term must select a running pod on the node
        (here, every pod shares the one node). A term nothing satisfies would leave the pod Pending."""
        affinity = self.spec.get("affinity") or {}
        unknown = set(affinity) - {"podAffinity"}
        if unknown:
            raise RunError(f"{self.render} {self.pod_name}: affinity {sorted(unknown)} is not emulated")
        terms = affinity.get("podAffinity", {})
        if set(terms) - {"requiredDuringSchedulingIgnoredDuringExecution"}:
            raise RunError(f"{self.render} {self.pod_name}: podAffinity {sorted(terms)} is not emulated")
        for term in terms.get("requiredDuringSchedulingIgnoredDuringExecution", []):
            selector = term.get("labelSelector", {})
            if set(selector) != {"matchLabels"} or set(term) - {"labelSelector", "topologyKey"}:
                raise RunError(f"{self.render} {self.pod_name}: affinity term {term} is not emulated")
            if not any(all(pod.labels.get(k) == v for k, v in selector["matchLabels"].items()) for pod in running):
                raise RunError(f"{self.render} {self.pod_name}: no running pod matches its required pod affinity "
                               f"{selector['matchLabels']}: it would stay Pending")

    def terminate(self):
        """Deletion as the kubelet does it: preStop within the grace period, then SIGTERM (the image has
        no STOPSIGNAL) with what is left of it, at least 2 s; SIGKILL after. Returns seconds taken."""
        grace = self.spec.get("terminationGracePeriodSeconds", 30)
        started = time.monotonic()
        for run, container in self.containers:
            hook = container.get("lifecycle", {}).get("preStop")
            if hook:
                if set(hook) == {"sleep"}:
                    time.sleep(hook["sleep"]["seconds"])
                elif set(hook) == {"exec"}:
                    out = docker("exec", run.name, *hook["exec"]["command"], timeout=grace, check=False)
                    if out.returncode != 0:
                        raise RunError(f"{self.render}: preStop exec failed: {out.stderr.decode(errors='replace')}")
                else:
                    raise RunError(f"{self.render}: preStop {sorted(hook)} is not emulated")
                # The container keeps serving while preStop runs: it must not have stopped on its own.
                run.exited()
                ok, detail = self.probe_once(run, container, container.get("livenessProbe") or
                                             {"tcpSocket": {"port": container["ports"][0]["containerPort"]}})
                if not ok:
                    raise RunError(f"{self.render}: stopped serving during preStop: {detail}")
        for run, _ in self.containers:
            remaining = max(MIN_GRACE_SECONDS, grace - (time.monotonic() - started))
            _, code = run.stop("TERM", remaining)
            if code != 0:
                raise RunError(f"{self.render}: exited with {code} after SIGTERM (a clean drain exits 0):\n"
                               f"{logs(run.name)}")
        return time.monotonic() - started

    def remove(self):
        for run, _ in self.containers:
            run.remove()


class ComposeRun:
    """A service of `docker-compose config` (compose.yaml with its .env resolved) run as Compose
    runs it: its own user, read-only root, capabilities, security options, environment, health
    check (Docker's own, with compose's timings) and stop_grace_period."""

    KNOWN = {"image", "read_only", "user", "environment", "ports", "depends_on", "healthcheck", "stop_grace_period",
             "security_opt", "cap_drop", "networks", "tmpfs", "command", "entrypoint", "stop_signal", "volumes"}

    def __init__(self, name, service, image, network, extra_hosts):
        unknown = set(service) - self.KNOWN
        if unknown:
            raise RunError(f"compose {name}: keys not emulated: {sorted(unknown)}")
        if service.get("volumes"):
            raise RunError(f"compose {name}: volumes are not emulated for the service's image")
        self.name = name
        self.service = service
        self.run = ContainerRun(f"{network.name}-{name}", network, image, {"render": "compose"})
        args = self.run.args
        if service.get("read_only"):
            args.append("--read-only")
        if "user" in service:
            args += ["--user", str(service["user"])]
        for cap in service.get("cap_drop", []):
            args += ["--cap-drop", cap]
        for opt in service.get("security_opt", []):
            args += ["--security-opt", opt]
        for path in service.get("tmpfs", []) if isinstance(service.get("tmpfs"), list) else \
                [service["tmpfs"]] if service.get("tmpfs") else []:
            args += ["--tmpfs", path]
        for host, address in extra_hosts.items():
            args += ["--add-host", f"{host}:{address}"]
        self.health = service.get("healthcheck")
        if self.health and self.health["test"][0] != "CMD":
            raise RunError(f"compose {name}: health check {self.health['test'][0]} needs a shell the image does not have")
        self.environment = {k: "" if v is None else str(v) for k, v in (service.get("environment") or {}).items()}

    def start(self):
        entrypoint = self.service.get("entrypoint")
        command = self.service.get("command") or []
        self.run.start(entrypoint, command, self.environment)

    def become_healthy(self, within):
        """Docker's health check as the engine runs an exec-form test: the first after `interval`,
        each bounded by `timeout`, unhealthy after `retries` consecutive failures (failures within
        `start_period` do not count)."""
        if not self.health:
            raise RunError(f"compose {self.name}: no health check")
        interval = parse_duration(self.health.get("interval", "30s"))
        timeout = parse_duration(self.health.get("timeout", "30s"))
        retries = int(self.health.get("retries", 3))
        start_period = parse_duration(self.health.get("start_period", "0s"))
        started = time.monotonic()
        failures = 0
        while time.monotonic() - started < within:
            time.sleep(interval)
            self.run.exited()
            try:
                out = docker("exec", self.run.name, *self.health["test"][1:], timeout=timeout, check=False)
                ok, detail = out.returncode == 0, (out.stdout + out.stderr).decode(errors="replace").strip()
            except subprocess.TimeoutExpired:
                ok, detail = False, f"timed out after {timeout} s"
            if ok:
                return detail
            if time.monotonic() - started > start_period:
                failures += 1
            if failures >= retries:
                raise RunError(f"compose {self.name}: unhealthy: {detail}\n{logs(self.run.name)}")
        raise RunError(f"compose {self.name}: not healthy within {within} s\n{logs(self.run.name)}")

    def terminate(self):
        grace = parse_duration(self.service.get("stop_grace_period", "10s"))
        signal_name = self.service.get("stop_signal", "SIGTERM").removeprefix("SIG")
        seconds, code = self.run.stop(signal_name, grace)
        if code != 0:
            raise RunError(f"compose {self.name}: exited with {code} after SIG{signal_name}:\n{logs(self.run.name)}")
        return seconds


def parse_duration(text):
    """Compose/Go durations: 1m30s, 10s, 500ms."""
    total = 0.0
    for value, unit in re.findall(r"([0-9.]+)(ms|us|h|m|s)", str(text)):
        total += float(value) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}[unit]
    if not total and str(text) not in ("0", "0s"):
        raise RunError(f"duration {text!r} is not understood")
    return total


class SystemdRun:
    """A NixOS module's unit run as systemd runs it: its Environment= with specifiers resolved,
    LoadCredential files in $CREDENTIALS_DIRECTORY, a DynamicUser uid (one per user name, so units
    sharing `User=` share it), writable StateDirectory entries (directories under the run's state
    root, shared by the units of one machine) and PrivateTmp on an otherwise read-only root
    (ProtectSystem=strict), no capabilities, no new privileges, no network with PrivateNetwork;
    a service is stopped with KillSignal and TimeoutStopSec, a oneshot runs to its exit. The
    syscall filter and the other sandboxing options are left to the VM test: Docker's seccomp
    profile stands in."""

    DYNAMIC_UID = 61184
    BINARY = "/usr/local/bin/devsecops-app"  # the image's; ExecStart names the package's

    def __init__(self, name, unit, environment, service_config, network, image, workdir, credentials, state_root,
                 instance=None):
        self.name = name
        self.unit = unit
        self.config = service_config
        self.oneshot = service_config.get("Type") == "oneshot"
        exec_start = re.sub(r"%i", lambda _: instance or "", service_config["ExecStart"]).split()
        if "%" in " ".join(exec_start) or not exec_start[0].endswith("/bin/devsecops-app"):
            raise RunError(f"{name}: ExecStart {service_config['ExecStart']!r} is not the service binary")
        self.command = [self.BINARY, *exec_start[1:]]
        self.run = ContainerRun(f"{network.name}-{name}", network, image, {"render": name})
        args = self.run.args
        credentials_dir = f"/run/credentials/{unit}"
        uid = self.DYNAMIC_UID if service_config.get("DynamicUser") else 0
        if uid == 0:
            raise RunError(f"{name}: the unit runs as root")
        args += ["--user", f"{uid}:{uid}"]
        if service_config.get("ProtectSystem") == "strict":
            args.append("--read-only")
        if service_config.get("NoNewPrivileges"):
            args += ["--security-opt", "no-new-privileges"]
        if service_config.get("PrivateNetwork"):
            args[args.index("--network") + 1] = "none"
        bounding = [c for c in service_config.get("CapabilityBoundingSet", []) if c]
        args += ["--cap-drop", "ALL"] + [a for c in bounding for a in ("--cap-add", c.removeprefix("CAP_"))]
        if service_config.get("PrivateTmp"):
            args += ["--tmpfs", "/tmp:rw,nosuid,nodev,mode=1777", "--tmpfs", "/var/tmp:rw,nosuid,nodev,mode=1777"]
        state_dirs = service_config.get("StateDirectory", [])
        for state_dir in [state_dirs] if isinstance(state_dirs, str) else state_dirs:
            # systemd creates it with StateDirectoryMode and chowns it to the unit's user.
            directory = os.path.join(state_root, state_dir)
            os.makedirs(directory, exist_ok=True)
            for path, _, files in os.walk(directory):
                os.chown(path, uid, uid)
                for f in files:
                    os.chown(os.path.join(path, f), uid, uid)
            os.chmod(directory, int(service_config.get("StateDirectoryMode", "0755"), 8))
            args += ["--mount", f"type=bind,source={directory},target=/var/lib/{state_dir}"]
        if "WorkingDirectory" in service_config:
            args += ["--workdir", service_config["WorkingDirectory"]]
        directory = os.path.join(workdir, name, "credentials")
        os.makedirs(directory, exist_ok=True)
        for spec in service_config.get("LoadCredential", []):
            cred, _, _source = spec.partition(":")
            if cred not in credentials:
                raise RunError(f"{name}: credential {cred} has no test fixture")
            path = os.path.join(directory, cred)
            with open(path, "wb") as f:
                f.write(credentials[cred])
            os.chown(path, uid, uid)
            os.chmod(path, 0o400)
        os.chown(directory, uid, uid)
        os.chmod(directory, 0o500)
        args += ["--mount", f"type=bind,source={directory},target={credentials_dir},readonly"]
        specifiers = {"d": credentials_dir, "S": "/var/lib", "t": "/run", "T": "/tmp", "N": unit.removesuffix(".service"),
                      "n": unit, "i": instance or "", "%": "%"}
        self.environment = {}
        for key, value in environment.items():
            if key == "PATH":
                continue  # store paths of the host's tools; the image has none and needs none
            self.environment[key] = re.sub(r"%(.)", lambda m: resolve(m.group(1), specifiers, key), value)
        self.host = self.environment.get("HOST", "127.0.0.1")
        self.port = self.environment.get("PORT", "8080")

    def start(self):
        self.run.start([self.command[0]], self.command[1:], self.environment)

    def run_to_exit(self, within=60):
        """A oneshot: started, waited for; its exit code and output."""
        self.start()
        deadline = time.monotonic() + within
        while self.run.running() and time.monotonic() < deadline:
            time.sleep(0.2)
        current = state(self.run.name)
        if current.get("Running"):
            raise RunError(f"{self.name}: still running after {within} s:\n{logs(self.run.name)}")
        return current.get("ExitCode"), logs(self.run.name, 20)

    def check(self, path):
        """The service's endpoints from inside its own network namespace, as the VM test's curl on
        the machine reaches them (HOST is loopback by default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        host = "127.0.0.1" if host in ("0.0.0.0", "[::]") else host
        out = docker("exec", self.run.name, self.BINARY, "healthcheck",
                     f"http://{host}:{self.port}{path}", check=False)
        return out.returncode == 0, (out.stdout + out.stderr).decode(errors="replace").strip()

    def become_ready(self, within):
        deadline = time.monotonic() + within
        while True:
            self.run.exited()
            results = [self.check(p) for p in ("/health", "/ready")]
            if all(ok for ok, _ in results):
                return [detail for _, detail in results]
            if time.monotonic() > deadline:
                raise RunError(f"{self.name}: not ready within {within} s: {results}\n{logs(self.run.name)}")
            time.sleep(0.3)

    def terminate(self):
        signal_name = self.config.get("KillSignal", "SIGTERM").removeprefix("SIG")
        seconds, code = self.run.stop(signal_name, float(self.config.get("TimeoutStopSec", 90)))
        if code != 0:
            raise RunError(f"{self.name}: exited with {code} after SIG{signal_name}:\n{logs(self.run.name)}")
        return seconds


def resolve(specifier, known, key):
    if specifier not in known:
        raise RunError(f"Environment {key}: systemd specifier %{specifier} is not emulated")
    return known[specifier]
