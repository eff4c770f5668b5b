"""A private Docker engine for bpftail's Docker integration suites.

Starts Debian's dockerd (installed with apt-get when missing) with its own data root, exec
root, unix socket and pidfile in a short temporary directory, without a bridge or iptables
rules so it cannot disturb another daemon on the same host, and with the vfs storage driver
so it works inside containers too. Images come from a busybox-static rootfs imported with
`docker import`; nothing is ever pulled. One engine serves every test of a run; it is stopped
and its directory removed when the process exits.

The stack and plugin suites also need the project's image: bpftail_image() makes the local
Debian base images (scripts/docker-base.sh) and builds the Dockerfile once per run with the
classic builder, so every suite of the run shares one build.
"""
import atexit
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

IMAGE = "bt-bb:latest"
APPLETS = ["sh", "cat", "echo", "seq", "sleep", "head", "tr", "ls", "awk", "printf", "yes",
           "dd", "true"]

_engine = None


class EngineError(AssertionError):
    pass


def _run(args, timeout=120, check=True, **kw):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise EngineError("%s failed (%d): %s" % (" ".join(args[:4]), p.returncode,
                                                   (p.stderr or p.stdout).strip()[:2000]))
    return p


def ensure_packages():
    """dockerd and busybox-static, installed with apt-get when missing (needs root)."""
    missing = []
    if not shutil.which("dockerd"):
        missing.append("docker.io")
    if not os.path.exists("/bin/busybox") and not shutil.which("busybox"):
        missing.append("busybox-static")
    if not missing:
        return
    if os.geteuid() != 0:
        raise EngineError("the Docker suites need root to install %s and run dockerd"
                          % " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    p = subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y"] + missing, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=900)
    if p.returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=600)
        p = subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y"] + missing, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=900)
    if p.returncode != 0:
        raise EngineError("apt-get install %s failed:\n%s" % (" ".join(missing), p.stdout[-2000:]))


class Engine:
    def __init__(self):
        ensure_packages()
        if os.geteuid() != 0:
            raise EngineError("dockerd needs root")
        self.attached = False
        if os.environ.get("BT_TEST_DOCKER_HOST"):
            self._attach(os.environ["BT_TEST_DOCKER_HOST"])
            return
        # unix socket paths are limited to 107 bytes: keep the directory short
        self.dir = tempfile.mkdtemp(prefix="btd-", dir="/tmp")
        self.data = os.path.join(self.dir, "data")
        self.containers = os.path.join(self.data, "containers")
        self.sock = os.path.join(self.dir, "d.sock")
        self.host = "unix://" + self.sock
        self.cli = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else shutil.which("docker")
        if not self.cli:
            raise EngineError("no docker CLI found")
        self.config_file = None
        self._start()
        self._import_image()

    def _start(self):
        self.log = open(os.path.join(self.dir, "dockerd.log"), "ab")
        args = ["dockerd", "--data-root", self.data, "--exec-root", os.path.join(self.dir, "x"),
                "-H", self.host, "--pidfile", os.path.join(self.dir, "d.pid"),
                "--bridge=none", "--iptables=false", "--ip-masq=false", "--storage-driver=vfs"]
        if self.config_file:
            args += ["--config-file", self.config_file]
        self.p = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            if self.p.poll() is not None:
                raise EngineError("dockerd exited with %d:\n%s" % (self.p.returncode, self.daemon_log()))
            if os.path.exists(self.sock) and self.docker("version", check=False).returncode == 0:
                break
            if time.monotonic() > deadline:
                self.stop()
                raise EngineError("dockerd did not answer within 60s:\n%s" % self.daemon_log())
            time.sleep(0.2)

    def restart(self, daemon_json=None):
        """Stops dockerd and starts it again on the same data root, with daemon_json (a dict,
        written to a daemon.json passed with --config-file) or with none. Containers are
        stopped by the restart; images, volumes and plugins stay (an enabled plugin is
        enabled again)."""
        if self.p is not None and self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(60)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        elif self.attached:
            with open(os.path.join(self.dir, "d.pid")) as f:
                pid = int(f.read().strip())
            os.kill(pid, 15)
            deadline = time.monotonic() + 60
            while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        self.log.close()
        self.config_file = None
        if daemon_json is not None:
            self.config_file = os.path.join(self.dir, "daemon.json")
            with open(self.config_file, "w") as f:
                json.dump(daemon_json, f)
        self._start()

    def _attach(self, host):
        """Uses a running engine (BT_TEST_DOCKER_HOST=unix://...sock, started like this class
        starts one) instead of starting one: for working on a suite without building the image
        again every run. The engine is left running at exit."""
        self.attached = True
        self.p = None
        self.config_file = None
        self.host = host
        self.sock = host[len("unix://"):]
        self.dir = os.path.dirname(self.sock)
        self.cli = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else shutil.which("docker")
        self.log = open(os.devnull, "wb")
        self.data = self.docker("info", "--format", "{{.DockerRootDir}}").stdout.strip()
        self.containers = os.path.join(self.data, "containers")
        if self.docker("image", "inspect", IMAGE, check=False).returncode != 0:
            self._import_image()

    def daemon_log(self):
        try:
            with open(os.path.join(self.dir, "dockerd.log"), errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def env(self, **extra):
        """The environment for a docker, docker-compose or script run against this engine."""
        env = dict(os.environ, DOCKER_HOST=self.host, **extra)
        env.pop("DOCKER_CONTEXT", None)
        env.pop("DOCKER_BUILDKIT", None)  # no buildx here: BuildKit builds fail
        return env

    def docker(self, *args, check=True, timeout=300):
        return _run([self.cli] + list(args), timeout=timeout, check=check, env=self.env())

    def _import_image(self):
        root = tempfile.mkdtemp(prefix="rootfs-", dir=self.dir)
        os.makedirs(os.path.join(root, "bin"))
        os.makedirs(os.path.join(root, "tmp"))
        busybox = "/bin/busybox" if os.path.exists("/bin/busybox") else shutil.which("busybox")
        shutil.copy(busybox, os.path.join(root, "bin", "busybox"))
        for a in APPLETS:
            os.symlink("busybox", os.path.join(root, "bin", a))
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", root, "-c", "."],
                               stdout=subprocess.PIPE)
        env = dict(os.environ, DOCKER_HOST=self.host)
        p = subprocess.run([self.cli, "import", "-", IMAGE], stdin=tar.stdout,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                           timeout=120)
        tar.wait()
        shutil.rmtree(root, ignore_errors=True)
        if p.returncode != 0:
            raise EngineError("docker import failed: %s" % p.stderr)

    def run(self, name, script, log_opts=(), labels=None, rm=False, detach=True,
            log_driver="json-file", tty=False, timeout=300):
        """Starts `sh -c script` in a busybox container; returns the full container id.
        log_driver None: the engine's default driver."""
        args = ["run", "--network", "none", "--name", name]
        if log_driver:
            args += ["--log-driver", log_driver]
        if tty:
            args.append("-t")
        if detach:
            args.append("-d")
        if rm:
            args.append("--rm")
        for o in log_opts:
            args += ["--log-opt", o]
        for k, v in (labels or {}).items():
            args += ["--label", "%s=%s" % (k, v)]
        args += [IMAGE, "sh", "-c", script]
        out = self.docker(*args, timeout=timeout).stdout.strip()
        return out.splitlines()[-1] if out else ""

    def wait(self, cid, timeout=300):
        return int(self.docker("wait", cid, timeout=timeout).stdout.strip() or "0")

    def inspect(self, cid):
        return json.loads(self.docker("inspect", cid).stdout)[0]

    def rm(self, cid):
        self.docker("rm", "-f", cid, check=False)

    def plugin_pid(self, name):
        """The pid of plugin `name`'s process on this engine, or None: the process whose
        parent, the containerd shim, was started for the plugin's id (other engines on the
        host may run plugins of their own)."""
        pid_id = self.docker("plugin", "inspect", "-f", "{{.Id}}", name, timeout=30).stdout.strip()
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/status" % d) as f:
                    ppid = re.search(r"^PPid:\s+(\d+)", f.read(), re.M).group(1)
                with open("/proc/%s/cmdline" % ppid, "rb") as f:
                    parent = f.read()
                if b"shim" not in parent or pid_id.encode() not in parent:
                    continue
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    if f.read().split(b"\0")[0]:
                        return int(d)
            except (OSError, AttributeError):
                continue
        return None

    def log_path(self, cid):
        return os.path.join(self.containers, cid, cid + "-json.log")

    def stop(self):
        if self.attached:
            return
        if self.p and self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()
        # vfs leaves plain directories; unmount anything a failed start may have left
        subprocess.run(["sh", "-c", "grep -o ' %s[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l"
                        % self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


def engine():
    """The shared engine, started on first use."""
    global _engine
    if _engine is None:
        _engine = Engine()
        atexit.register(_engine.stop)
    return _engine


_images = {}
BPFTAIL_IMAGE = "bpftail:latest"  # the name docker-compose.yml gives the image
TEST_LOKI_IMAGE = "bt-test-loki:latest"


def bpftail_image(root):
    """The project's image, bpftail:latest, built from root's Dockerfile on the shared engine
    once per run (later calls return at once). Installs what it needs (scripts/deps.sh docker),
    makes the local Debian base images when missing, builds with the classic builder and host
    networking (the engine has no bridge). Returns the image name; the build time is in
    build_seconds()."""
    if "bpftail" in _images:
        return _images["bpftail"]
    eng = engine()
    if eng.attached and eng.docker("image", "inspect", BPFTAIL_IMAGE, check=False).returncode == 0:
        # working on a suite against a running engine: its image is taken as it is (remove
        # it to build again)
        _images["bpftail"] = BPFTAIL_IMAGE
        return BPFTAIL_IMAGE
    t0 = time.monotonic()
    _run([os.path.join(root, "scripts", "deps.sh"), "docker"], timeout=900)
    _run([os.path.join(root, "scripts", "docker-base.sh")], timeout=900, env=eng.env())
    t1 = time.monotonic()
    p = subprocess.run([eng.cli, "build", "--network", "host", "-t", BPFTAIL_IMAGE, root],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=1800, env=eng.env())
    if p.returncode != 0:
        raise EngineError("docker build of the Dockerfile failed:\n%s" % p.stdout[-4000:])
    _images["bpftail"] = BPFTAIL_IMAGE
    _images["times"] = (t1 - t0, time.monotonic() - t1)
    print("bpftail image: base images %.1fs, docker build %.1fs" % _images["times"])
    return BPFTAIL_IMAGE


def build_seconds():
    """(base images, docker build) seconds of this run's image build, or None."""
    return _images.get("times")


def fake_loki_image(root, fake_loki_binary):
    """bt-test-loki:latest: the test Loki server (bt-fake-loki from the build directory) on the
    bpftail image, which has its libraries; it listens on 127.0.0.1:3100 like Loki and keeps
    the control API (/control/dump, /control/stats) of lib.FakeLoki."""
    if "loki" in _images:
        return _images["loki"]
    if not os.path.exists(fake_loki_binary):
        raise EngineError("test Loki server not built: %s" % fake_loki_binary)
    base = bpftail_image(root)
    eng = engine()
    d = tempfile.mkdtemp(prefix="bt-loki-img-")
    try:
        shutil.copy(fake_loki_binary, os.path.join(d, "bt-fake-loki"))
        with open(os.path.join(d, "Dockerfile"), "w") as f:
            f.write("FROM %s\nCOPY bt-fake-loki /usr/bin/bt-fake-loki\n"
                    "EXPOSE 3100\nENTRYPOINT [\"/usr/bin/bt-fake-loki\", \"--port\", \"3100\"]\n"
                    "CMD []\n" % base)
        p = subprocess.run([eng.cli, "build", "--network", "host", "-t", TEST_LOKI_IMAGE, d],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=300, env=eng.env())
        if p.returncode != 0:
            raise EngineError("docker build of the test Loki image failed:\n%s" % p.stdout[-3000:])
    finally:
        shutil.rmtree(d, ignore_errors=True)
    _images["loki"] = TEST_LOKI_IMAGE
    return TEST_LOKI_IMAGE


def proc_status(pid, key):
    """A kB field of /proc/pid/status (VmRSS, VmHWM) in bytes, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            m = re.search(r"^%s:\s+(\d+) kB" % key, f.read(), re.M)
        return int(m.group(1)) * 1024 if m else None
    except OSError:
        return None


def proc_cpu_seconds(pid):
    """user + system CPU seconds of a process (all threads), from /proc/pid/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_json_file(path):
    """Reads a json-file log as Docker wrote it and joins records without a trailing \\n with
    the next ones of the same stream and time (the chunks of one split line share its time):
    [(stream, line, time_ns)] in file order of completion."""
    out, pending = [], {}
    with open(path, "rb") as f:
        for raw in f:
            rec = json.loads(raw)
            s, ts = rec["stream"], parse_time(rec["time"])
            if s in pending and pending[s][2] != ts:
                out.append(tuple(pending.pop(s)))
            if s in pending:
                pending[s][1] += rec["log"]
            else:
                pending[s] = [s, rec["log"], ts]
            if rec["log"].endswith("\n"):
                out.append(tuple(pending.pop(s)))
    out.extend(tuple(v) for v in pending.values())
    return out


def parse_time(s):
    """RFC3339Nano (UTC, as Docker writes it) to Unix ns."""
    import calendar
    base, frac = s.rstrip("Z"), ""
    if "." in base:
        base, frac = base.split(".")
    secs = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    return secs * 1000000000 + int((frac + "000000000")[:9])
