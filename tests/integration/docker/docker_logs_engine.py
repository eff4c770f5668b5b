"""A private Docker engine for bpftail's Docker integration suites.

Starts Debian's dockerd (installed with apt-get when missing) with its own data root, exec
root, unix socket and pidfile in a short temporary directory, without a bridge or iptables
rules so it cannot disturb another daemon on the same host, and with the vfs storage driver
so it works inside containers too. Images come from a busybox-static rootfs imported with
`docker import`; nothing is ever pulled. One engine serves every test of a run; it is stopped
and its directory removed when the process exits.
"""
import atexit
import json
import os
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
        # unix socket paths are limited to 107 bytes: keep the directory short
        self.dir = tempfile.mkdtemp(prefix="btd-", dir="/tmp")
        self.data = os.path.join(self.dir, "data")
        self.containers = os.path.join(self.data, "containers")
        self.sock = os.path.join(self.dir, "d.sock")
        self.host = "unix://" + self.sock
        self.cli = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else shutil.which("docker")
        if not self.cli:
            raise EngineError("no docker CLI found")
        self.log = open(os.path.join(self.dir, "dockerd.log"), "wb")
        self.p = subprocess.Popen(
            ["dockerd", "--data-root", self.data, "--exec-root", os.path.join(self.dir, "x"),
             "-H", self.host, "--pidfile", os.path.join(self.dir, "d.pid"),
             "--bridge=none", "--iptables=false", "--ip-masq=false", "--storage-driver=vfs"],
            stdout=self.log, stderr=subprocess.STDOUT)
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
        self._import_image()

    def daemon_log(self):
        try:
            with open(os.path.join(self.dir, "dockerd.log"), errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def docker(self, *args, check=True, timeout=300):
        env = dict(os.environ, DOCKER_HOST=self.host)
        env.pop("DOCKER_CONTEXT", None)
        return _run([self.cli] + list(args), timeout=timeout, check=check, env=env)

    def _import_image(self):
        root = os.path.join(self.dir, "rootfs")
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
        if p.returncode != 0:
            raise EngineError("docker import failed: %s" % p.stderr)

    def run(self, name, script, log_opts=(), labels=None, rm=False, detach=True):
        """Starts `sh -c script` in a busybox container; returns the full container id."""
        args = ["run", "--network", "none", "--name", name, "--log-driver", "json-file"]
        if detach:
            args.append("-d")
        if rm:
            args.append("--rm")
        for o in log_opts:
            args += ["--log-opt", o]
        for k, v in (labels or {}).items():
            args += ["--label", "%s=%s" % (k, v)]
        args += [IMAGE, "sh", "-c", script]
        out = self.docker(*args).stdout.strip()
        return out.splitlines()[-1] if out else ""

    def wait(self, cid, timeout=300):
        return int(self.docker("wait", cid, timeout=timeout).stdout.strip() or "0")

    def inspect(self, cid):
        return json.loads(self.docker("inspect", cid).stdout)[0]

    def rm(self, cid):
        self.docker("rm", "-f", cid, check=False)

    def log_path(self, cid):
        return os.path.join(self.containers, cid, cid + "-json.log")

    def stop(self):
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
