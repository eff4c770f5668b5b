"""Docker container logs against a real Docker engine (docker_logs_engine.py) and the test
Loki server.

Every line a container prints must arrive exactly once, with Docker's timestamp and the right
labels: 10,000 lines on each of stdout and stderr, a 40 KiB line (three json-file records),
output without a trailing newline, a container started after the agent had shipped others, a
container writing 20 MB under max-size=1m max-file=3, and a container removed right after it
exited. The first suite uses the seed-style promtail config unchanged (a static target on
<data-root>/containers/*/*-json.log with `docker: {}`); the second the `docker:` discovery
target with relabel_configs (and Docker's rotation under it); the third docker_sd_configs
through the Docker API, across container restarts and an agent restart.
"""
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import docker_logs_engine as dockerd  # noqa: E402  (a unique module name: suites share sys.modules)
import lib  # noqa: E402

N_LINES = 10000
ROT_LINES = 200000  # about 20 MB of output
GONE_LINES = 1000
LATE_LINES = 500

SCRIPT_MANY = ("awk 'BEGIN{for(i=0;i<%d;i++) print \"out seq=\" i}' & "
               "awk 'BEGIN{for(i=0;i<%d;i++) print \"err seq=\" i}' >&2; wait" % (N_LINES, N_LINES))
SCRIPT_LONG = "echo before-long; head -c 40000 /dev/zero | tr '\\0' a; echo; echo after-long"
SCRIPT_NONL = "echo first; printf no-newline-at-end"
SCRIPT_ROT = ("awk 'BEGIN{s=sprintf(\"%%90s\",\"\"); gsub(/ /,\"x\",s); "
              "for(i=0;i<%d;i++) printf \"rot seq=%%08d %%s\\n\", i, s}'" % ROT_LINES)


def seq_script(tag, n):
    return "awk 'BEGIN{for(i=0;i<%d;i++) print \"%s seq=\" i}'" % (n, tag)


def labels_of(entry):
    return dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', entry["labels"]))


def by_container(entries, key):
    """Groups entries by the container id found in `key` (a label value)."""
    out = {}
    for e in entries:
        v = labels_of(e).get(key, "")
        m = re.search(r"[0-9a-f]{64}", v)
        out.setdefault(m.group(0) if m else "", []).append(e)
    return out


def check_exact(ctx, scenario, got, expected, allow_dups=0):
    """got: Loki entries of one container; expected: [(stream, line, ts)] from its log file."""
    want = {}
    for s, line, ts in expected:
        want[(s, line, ts)] = want.get((s, line, ts), 0) + 1
    have = {}
    by_line = {}
    for s, line, ts in want:
        by_line.setdefault((s, line), []).append(ts)
    for e in got:
        k = (labels_of(e).get("stream"), e["line"], e["ts"])
        if k not in want:
            # bpftail gives an entry that repeats its stream's previous timestamp the next
            # nanosecond (docs/timestamps.md), so a line delivered twice comes back a few ns
            # after the original: count it as a duplicate of that line, not as a new one.
            near = [t for t in by_line.get(k[:2], []) if 0 < k[2] - t <= 100000]
            if near:
                k = k[:2] + (max(near),)
        have[k] = have.get(k, 0) + 1
    lost = sum(max(0, c - have.get(k, 0)) for k, c in want.items())
    dups = sum(max(0, c - want.get(k, 0)) for k, c in have.items() if k in want)
    extra = [k for k in have if k not in want]
    ctx.table.append([scenario, len(expected), len(got), dups, lost])
    assert not extra, "%s: entries Docker never wrote (or with wrong stream/ts): %r" % (
        scenario, [(s, l[:80], t) for s, l, t in extra[:5]])
    if dups:
        print("DUPLICATED:", [(k[0], k[1][:60], k[2]) for k, c in have.items() if c > want.get(k, 0) and k in want])
    assert lost == 0 and dups <= allow_dups, "%s: lost %d, duplicated %d" % (scenario, lost, dups)


def check_seqs(ctx, scenario, got, tag, n):
    seen = {}
    for e in got:
        m = re.match(r"%s seq=(\d+)" % tag, e["line"])
        if m:
            seen[int(m.group(1))] = seen.get(int(m.group(1)), 0) + 1
    lost = [i for i in range(n) if i not in seen]
    dups = sum(c - 1 for c in seen.values())
    ctx.table.append([scenario, n, len(got), dups, len(lost)])
    assert not lost and not dups, "%s: lost %d (first %r), duplicated %d" % (
        scenario, len(lost), lost[:5], dups)


def start_agent(ctx, loki, scrape):
    d = ctx.tmpdir()
    port = lib.free_port()
    cfg = """server:
  http_listen_port: %d
  grpc_listen_port: 0
positions:
  filename: %s/positions.yaml
  sync_period: 1s
clients:
  - url: %s
    batchwait: 200ms
scrape_configs:
%s""" % (port, d, loki.url, scrape)
    agent = lib.Agent(ctx, cfg).start()
    time.sleep(1.0)
    assert agent.alive(), "bpftail exited at start:\n%s" % agent.log()[-3000:]
    return agent, port


def wait_count(loki, agent, n, timeout, what):
    def enough():
        if not agent.alive():
            raise AssertionError("bpftail died:\n%s" % agent.log()[-3000:])
        if loki.p.poll() is not None:
            raise AssertionError("the test Loki server exited with %r" % loki.p.returncode)
        return loki.count() >= n
    try:
        lib.wait_until(enough, timeout, interval=0.5, what=what)
    except AssertionError as e:
        # what arrived, by file, and what the agent said: enough to tell a lost file from a
        # slow one
        per = {}
        for en in loki.entries():
            f = labels_of(en).get("filename", "")
            per[f] = per.get(f, 0) + 1
        log = agent.log()
        said = [ln for ln in log.splitlines() if "level=warn" in ln or "level=error" in ln or
                "left its name" in ln]
        raise AssertionError("%s\n%d of %d entries; by filename: %r\nbpftail's warnings, "
                             "errors and files followed by identity:\n%s\nbpftail log tail:\n%s"
                             % (e, loki.count(), n, per, "\n".join(said[:40]), log[-3000:]))


def test_seed_config_ships_every_docker_line_once(ctx):
    eng = dockerd.engine()
    loki = lib.FakeLoki(ctx)
    scrape = """  - job_name: containers
    static_configs:
      - targets: [localhost]
        labels:
          job: containers
          __path__: %s/*/*-json.log
    pipeline_stages:
      - docker: {}
""" % eng.containers
    agent, _ = start_agent(ctx, loki, scrape)
    ids = {}
    try:
        ids["many"] = eng.run("many", SCRIPT_MANY)
        ids["long"] = eng.run("long", SCRIPT_LONG)
        ids["nonl"] = eng.run("nonl", SCRIPT_NONL)
        ids["rot"] = eng.run("rot", SCRIPT_ROT, log_opts=("max-size=1m", "max-file=3"))
        for k in ("many", "long", "nonl", "rot"):
            assert eng.wait(ids[k]) == 0, k
        expected = {k: dockerd.read_json_file(eng.log_path(ids[k])) for k in ("many", "long", "nonl")}
        # removed: printed and deleted at once; the agent must still ship what it read
        ids["gone"] = eng.run("gone", seq_script("gone", GONE_LINES))
        assert eng.wait(ids["gone"]) == 0
        eng.rm(ids["gone"])
        base = sum(len(v) for v in expected.values()) + ROT_LINES + GONE_LINES
        wait_count(loki, agent, base, 240, "%d entries before the late container" % base)
        ids["late"] = eng.run("late", seq_script("late", LATE_LINES))
        assert eng.wait(ids["late"]) == 0
        expected["late"] = dockerd.read_json_file(eng.log_path(ids["late"]))
        wait_count(loki, agent, base + LATE_LINES, 120, "the late container's lines")
        time.sleep(3)  # anything sent twice would show up now
        groups = by_container(loki.entries(), "filename")
        for k in ("many", "long", "nonl", "late"):
            check_exact(ctx, "docker json-file: " + k, groups.get(ids[k], []), expected[k])
        check_seqs(ctx, "docker json-file: 20 MB max-size=1m max-file=3",
                   groups.get(ids["rot"], []), "rot", ROT_LINES)
        check_seqs(ctx, "docker json-file: removed container",
                   groups.get(ids["gone"], []), "gone", GONE_LINES)
        long_line = [e for e in groups[ids["long"]] if len(e["line"]) > 30000]
        assert len(long_line) == 1 and long_line[0]["line"] == "a" * 40000 + "\n"
        nonl = [e["line"] for e in groups[ids["nonl"]]]
        assert "no-newline-at-end" in nonl, nonl
        for e in groups[ids["many"]][:50]:
            lab = labels_of(e)
            assert lab.get("job") == "containers" and lab.get("stream") in ("stdout", "stderr"), lab
            assert not any(n.startswith("__") for n in lab), lab
    finally:
        for cid in ids.values():
            eng.rm(cid)


def test_discovery_target_labels_containers_and_applies_relabeling(ctx):
    eng = dockerd.engine()
    loki = lib.FakeLoki(ctx)
    scrape = """  - job_name: docker
    docker:
      path: %s
      refresh_interval: 2s
      labels:
        job: docker
    relabel_configs:
      - source_labels: [__meta_docker_container_label_team]
        target_label: team
      - source_labels: [__meta_docker_container_label_skip]
        regex: "yes"
        action: drop
    pipeline_stages:
      - docker: {}
""" % eng.containers
    agent, port = start_agent(ctx, loki, scrape)
    ids = {}
    try:
        labels = {"com.docker.compose.project": "shop", "com.docker.compose.service": "web",
                  "team": "core"}
        ids["web"] = eng.run("web-1", seq_script("web", 2000), labels=labels)
        ids["skip"] = eng.run("skipped", seq_script("skip", 100), labels={"skip": "yes"})
        # Docker's rotation under the discovery target: its glob also matches the rotated
        # files, and each line must still arrive once
        ids["rot"] = eng.run("rot-d", SCRIPT_ROT, log_opts=("max-size=1m", "max-file=3"))
        assert eng.wait(ids["web"]) == 0 and eng.wait(ids["skip"]) == 0
        assert eng.wait(ids["rot"]) == 0
        # a restarted container keeps shipping into the same file
        eng.docker("start", ids["web"])
        assert eng.wait(ids["web"]) == 0
        expected = dockerd.read_json_file(eng.log_path(ids["web"]))
        assert len(expected) == 4000
        wait_count(loki, agent, 4000 + ROT_LINES, 240, "4000 entries of web-1 and the rotated ones")
        time.sleep(3)
        entries = loki.entries()
        groups = by_container(entries, "container_id")
        check_seqs(ctx, "docker target: 20 MB max-size=1m max-file=3", groups.get(ids["rot"], []),
                   "rot", ROT_LINES)
        check_exact(ctx, "docker target: labelled container", groups.get(ids["web"], []), expected)
        assert not groups.get(ids["skip"]), "a container dropped by relabeling was shipped"
        lab = labels_of(groups[ids["web"]][0])
        want = {"job": "docker", "container_id": ids["web"], "container_name": "web-1",
                "image": dockerd.IMAGE, "compose_project": "shop", "compose_service": "web",
                "team": "core"}
        for k, v in want.items():
            assert lab.get(k) == v, "label %s: %r in %r" % (k, lab.get(k), lab)
        assert lab.get("stream") == "stdout"
        assert not any(n.startswith("__") for n in lab), lab
    finally:
        for cid in ids.values():
            eng.rm(cid)


SCRIPT_SD = ("n=$(cat /tmp/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /tmp/n; sleep 2; "
             "awk -v r=$n 'BEGIN{for(i=0;i<3000;i++) print \"sd run=\" r \" seq=\" i}' & "
             "awk -v r=$n 'BEGIN{for(i=0;i<3000;i++) print \"sd-err run=\" r \" seq=\" i}' >&2; wait; "
             "head -c 40000 /dev/zero | tr '\\0' b; echo; printf tail-without-newline; sleep 3")


def api_expected(path):
    """What the Docker API gives for a json-file log: the same records, trailing \\n removed."""
    return [(s, line[:-1] if line.endswith("\n") else line, ts)
            for s, line, ts in dockerd.read_json_file(path)]


def test_docker_sd_configs_follow_the_api_across_restarts(ctx):
    eng = dockerd.engine()
    loki = lib.FakeLoki(ctx)
    scrape = """  - job_name: dockersd
    docker_sd_configs:
      - host: %s
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [__meta_docker_container_label_sdtest]
        regex: "yes"
        action: keep
      - source_labels: [__meta_docker_container_name]
        regex: '/(.*)'
        target_label: container
      - source_labels: [__meta_docker_container_log_stream]
        target_label: stream
""" % eng.host
    agent, _ = start_agent(ctx, loki, scrape)
    cid = None
    try:
        cid = eng.run("sd-1", SCRIPT_SD, labels={"sdtest": "yes"})
        per_run = 6000 + 2
        assert eng.wait(cid) == 0
        wait_count(loki, agent, per_run, 120, "the first run's entries")
        # a restarted container keeps shipping
        eng.docker("start", cid)
        assert eng.wait(cid) == 0
        wait_count(loki, agent, 2 * per_run, 120, "the restarted run's entries")
        # the agent restarts while the container runs a third time: resumed from positions
        assert agent.stop() == 0, agent.log()[-3000:]
        eng.docker("start", cid)
        time.sleep(1)
        agent.start()
        assert eng.wait(cid) == 0
        wait_count(loki, agent, 3 * per_run, 120, "the third run's entries")
        time.sleep(3)
        entries = loki.entries()
        got = [e for e in entries if labels_of(e).get("container") == "sd-1"]
        # At-least-once across the agent restart: the API's since= has the granularity of the
        # entry timestamps, so the entry in flight when the agent stopped may come twice (seen
        # in about one run in three; promtail repeats up to a whole second here).
        check_exact(ctx, "docker_sd_configs: 3 runs, agent restart", got,
                    api_expected(eng.log_path(cid)), allow_dups=1)
        lab = labels_of(got[0])
        assert set(lab) == {"container", "stream"}, lab
        assert any(len(e["line"]) == 40000 for e in got)
    finally:
        if cid:
            eng.rm(cid)


RM_CONTAINERS = 20
RM_LINES = 3000
RM_PARALLEL = 4
# 3,000 numbered lines in five bursts over about 1 s (start to exit, measured 1.0-1.5 s on a
# loaded test engine), then --rm removes the container: a cron job, a migration or a CI step.
# Shorter than refresh_interval (2 s), so a listing alone sees at most some of them.
# The last burst is printed right before the exit, racing the end of the log stream, and the
# very last line has no newline (a held line that --rm may remove before it is read again).
SCRIPT_RM = ("b=0; while [ $b -lt 5 ]; do sleep 0.15; "
             "awk -v b=$b -v t=$T 'BEGIN{for(j=0;j<600;j++){n=b*600+j; "
             "if(n==2999) printf \"%s seq=%d\", t, n; else print t \" seq=\" n}}'; "
             "b=$((b+1)); done")


def test_docker_sd_configs_read_short_lived_rm_containers_whole(ctx):
    import threading
    eng = dockerd.engine()
    loki = lib.FakeLoki(ctx)
    scrape = """  - job_name: dockersd-rm
    docker_sd_configs:
      - host: %s
        refresh_interval: 2s
    relabel_configs:
      - source_labels: [__meta_docker_container_label_rmtest]
        regex: "yes"
        action: keep
      - source_labels: [__meta_docker_container_name]
        regex: '/(.*)'
        target_label: container
""" % eng.host
    agent, _ = start_agent(ctx, loki, scrape)
    names = ["rm-%02d" % i for i in range(RM_CONTAINERS)]
    errors, races = [], []
    todo = list(names)
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                name = todo.pop(0)
            try:
                # attached (no -d): returns when the container exited; --rm removes it then
                eng.run(name, "T=%s; %s" % (name, SCRIPT_RM), labels={"rmtest": "yes"},
                        rm=True, detach=False)
            except Exception as e:  # noqa: BLE001  (reported below)
                if "unable to remove filesystem" in str(e):
                    # dockerd's own race removing a --rm container's directory (moby#40729):
                    # the container ran and exited, its lines are checked below like the others.
                    races.append(name)
                    eng.docker("rm", "-f", name, check=False)
                else:
                    errors.append("%s: %s" % (name, e))

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(RM_PARALLEL)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ran = time.monotonic() - t0
    assert not errors, errors
    total = RM_CONTAINERS * RM_LINES
    try:
        wait_count(loki, agent, total, 60, "%d entries of %d --rm containers" % (total, RM_CONTAINERS))
    except AssertionError as e:
        print("waited: %s" % e)
    time.sleep(3)  # anything sent twice would show up now
    entries = loki.entries()
    print("containers ran %.1fs; entries received %d of %d; dockerd failed to remove %r" % (
        ran, len(entries), total, races))
    warns = [ln for ln in agent.log().splitlines() if "level=warn" in ln]
    print("agent warnings: %d%s" % (len(warns), "".join("\n  " + w[:200] for w in warns[:5])))
    # dockerd sometimes ends a removed container's log stream early and refuses the follow-up
    # request (500), which the agent logs: the lines it never sent are not the agent's to lose.
    # Only the end of a stream may be missing that way, at most once per such warning.
    engine_ended = sum(1 for w in warns if "log stream ended with an error" in w)
    failed, cut_short = [], []
    for name in names:
        got = [e for e in entries if labels_of(e).get("container") == name]
        seen = {}
        for e in got:
            m = re.match(r"%s seq=(\d+)" % name, e["line"])
            assert m, "%s: a line it never printed: %r" % (name, e["line"][:80])
            seen[int(m.group(1))] = seen.get(int(m.group(1)), 0) + 1
        lost = sum(1 for i in range(RM_LINES) if i not in seen)
        dups = sum(c - 1 for c in seen.values())
        ctx.table.append(["docker_sd --rm ~1 s: " + name, RM_LINES, len(got), dups, lost])
        tail_only = seen and all(i in seen for i in range(max(seen) + 1))
        if lost and not dups and tail_only and len(cut_short) < engine_ended:
            cut_short.append("%s: the last %d lines" % (name, lost))
        elif lost or dups:
            failed.append("%s lost %d duplicated %d" % (name, lost, dups))
    print("streams dockerd ended early: %r" % cut_short)
    assert not failed, "; ".join(failed)
