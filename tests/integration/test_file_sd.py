"""file_sd_configs end to end: targets listed in JSON and YAML files appear and disappear while
bpftail runs, and feed file targets exactly as static_configs do (labels after relabeling,
__path__ included)."""
import json
import os
import time

from lib import Agent, FakeLoki, free_port, wait_until


def config(loki, d, port):
    return """server:
  http_listen_port: %(port)d
  grpc_listen_port: 0
positions:
  filename: %(pos)s
  sync_period: 200ms
clients:
  - url: %(url)s
    batchwait: 100ms
scrape_configs:
  - job_name: sd
    file_sd_configs:
      - files: [%(sd)s/*.json, %(sd)s/*.yaml]
        refresh_interval: 5m
    relabel_configs:
      - source_labels: [__meta_filepath]
        regex: '.*/([^/]+)$'
        target_label: sd_file
""" % dict(port=port, pos=os.path.join(d, "positions.yaml"), url=loki.url,
           sd=os.path.join(d, "sd"))


def put(path, text):
    """Replaces a discovery file at once, as configuration tools do."""
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


def append(path, *lines):
    with open(path, "a") as f:
        for ln in lines:
            f.write(ln + "\n")


def lines_of(loki):
    return {e["line"]: e["labels"] for e in loki.entries()}


def test_file_sd_targets_appear_and_disappear(ctx):
    loki = FakeLoki(ctx)
    d = ctx.tmpdir()
    os.makedirs(os.path.join(d, "sd"))
    os.makedirs(os.path.join(d, "logs"))
    a_log, b_log = os.path.join(d, "logs", "a.log"), os.path.join(d, "logs", "b.log")
    append(a_log, "a-1")
    append(b_log, "b-1")
    put(os.path.join(d, "sd", "one.json"), json.dumps(
        [{"targets": ["localhost"], "labels": {"job": "ja", "__path__": a_log}}]))
    agent = Agent(ctx, config(loki, d, free_port())).start()
    wait_until(lambda: "a-1" in lines_of(loki), 20, interval=0.2, what="a-1 from a JSON target")
    assert lines_of(loki)["a-1"] == '{filename="%s", job="ja", sd_file="one.json"}' % a_log

    # A target listed in a new YAML file appears.
    put(os.path.join(d, "sd", "two.yaml"),
        "- targets: [localhost]\n  labels:\n    job: jb\n    __path__: %s\n" % b_log)
    wait_until(lambda: "b-1" in lines_of(loki), 20, interval=0.2, what="b-1 from a YAML target")
    assert lines_of(loki)["b-1"] == '{filename="%s", job="jb", sd_file="two.yaml"}' % b_log
    append(a_log, "a-2")
    wait_until(lambda: "a-2" in lines_of(loki), 20, interval=0.2, what="a-2")

    # The JSON file no longer lists a.log: its target stops being tailed.
    put(os.path.join(d, "sd", "one.json"), "[]")
    wait_until(lambda: "target removed" in agent.log(), 20, interval=0.2,
               what="the target to be removed")
    append(a_log, "a-3 after removal")
    append(b_log, "b-2")
    wait_until(lambda: "b-2" in lines_of(loki), 20, interval=0.2, what="b-2")
    time.sleep(1.0)
    assert "a-3 after removal" not in lines_of(loki), "a removed target was still tailed"

    # Listed again, it resumes where its committed position was.
    put(os.path.join(d, "sd", "one.json"), json.dumps(
        [{"targets": ["localhost"], "labels": {"job": "ja", "__path__": a_log}}]))
    wait_until(lambda: "a-3 after removal" in lines_of(loki), 20, interval=0.2,
               what="a-3 once the target is back")
    assert agent.stop() == 0
    assert loki.received() == loki.count(), "duplicates were pushed"
