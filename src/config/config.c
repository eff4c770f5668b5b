/* Config file top level, scrape configs, loading and freeing; see config.h. */
#include "config/config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config_decode.h"
#include "util/log.h"
#include "util/timeutil.h"

#define BT_CONFIG_MAX_FILE (16u << 20)
#define BT_CONFIG_BUILTIN_NAME "<built-in config>"

/* Kept byte for byte equal to config/bpftail.yaml (a test checks it). */
const char bt_default_config[] =
    "# bpftail default configuration.\n"
    "#\n"
    "# Used when bpftail starts without -config.file. It ships every file under /var/log\n"
    "# whose name ends in \"log\" as job=\"varlogs\" to the Loki at $LOKI_URL (default\n"
    "# http://localhost:3100). Environment references like the one in the client url are\n"
    "# always expanded in this built-in copy; when you run bpftail with your own copy of this\n"
    "# file, also pass -config.expand-env=true.\n"
    "#\n"
    "# Positions go to /tmp so that a first run works without root. For a real deployment\n"
    "# point positions.filename at a persistent place such as /var/lib/bpftail/positions.yaml,\n"
    "# otherwise a reboot clears /tmp and every file is shipped again from the start.\n"
    "server:\n"
    "  http_listen_port: 9080\n"
    "  grpc_listen_port: 0\n"
    "\n"
    "positions:\n"
    "  filename: /tmp/bpftail-positions.yaml\n"
    "\n"
    "clients:\n"
    "  - url: ${LOKI_URL:-http://localhost:3100}/loki/api/v1/push\n"
    "\n"
    "scrape_configs:\n"
    "  - job_name: system\n"
    "    static_configs:\n"
    "      - targets:\n"
    "          - localhost\n"
    "        labels:\n"
    "          job: varlogs\n"
    "          __path__: /var/log/*log\n";

/* ---- server, positions, limits, target, options, bpftail ---- */

static int dec_log_level(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    enum bt_log_level lvl;
    if (bt_node_is_null(v))
        return 0;
    if (v->type != BT_NODE_SCALAR || bt_log_parse_level(v->str, &lvl))
        return bt_cfg_fail(c, v, "expected one of debug, info, warn, error");
    return bt_cfg_str(c, v, at);
}

static int dec_log_format(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    if (bt_node_is_null(v))
        return 0;
    if (v->type != BT_NODE_SCALAR || (strcmp(v->str, "logfmt") != 0 && strcmp(v->str, "json") != 0))
        return bt_cfg_fail(c, v, "expected logfmt or json");
    return bt_cfg_str(c, v, at);
}

/* gRPC server settings: promtail configs carry them, bpftail serves no gRPC. Checked for their
 * type (so a typo in a value is still an error) and remembered, so that the agent logs one info
 * line naming them as ignored. */
static int dec_grpc_address(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    if (bt_node_is_null(v))
        return 0;
    if (v->type != BT_NODE_SCALAR)
        return bt_cfg_fail(c, v, "expected a string, got %s", bt_cfg_kind_name(v));
    *(bool *)at = true;
    return 0;
}

static int dec_grpc_int(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    long long ll;
    if (bt_node_is_null(v))
        return 0;
    if (v->type != BT_NODE_SCALAR || bt_node_int(v, &ll) || ll < 0 || ll > INT_MAX)
        return bt_cfg_fail(c, v, "expected an integer in [0, %d]", INT_MAX);
    *(bool *)at = true;
    return 0;
}

/* gRPC TLS settings: bpftail serves no gRPC, so they change nothing; a map is required. */
static int dec_grpc_tls(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    if (bt_node_is_null(v))
        return 0;
    if (v->type != BT_NODE_MAP)
        return bt_cfg_fail(c, v, "expected a map, got %s", bt_cfg_kind_name(v));
    *(bool *)at = true;
    return 0;
}

/* profiling_enabled: false is what promtail does by default; true would serve pprof
 * endpoints, which bpftail has not. */
static int dec_profiling(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    bool on = false;
    if (bt_node_is_null(v))
        return 0;
    if (v->type != BT_NODE_SCALAR || bt_node_bool(v, &on))
        return bt_cfg_fail(c, v, "expected true or false");
    if (on)
        return bt_cfg_fail(c, v, "not supported by bpftail: it serves no /debug/pprof endpoints");
    return 0;
}

/* http_path_prefix as promtail's router takes it: it must start with a slash; trailing
 * slashes are dropped ("/" alone is no prefix). */
static int dec_path_prefix(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    if (bt_node_is_null(v))
        return 0;
    if (v->type != BT_NODE_SCALAR)
        return bt_cfg_fail(c, v, "expected a string, got %s", bt_cfg_kind_name(v));
    if (v->str[0] && v->str[0] != '/')
        return bt_cfg_fail(c, v, "\"%s\" must start with a slash", v->str);
    for (const char *p = v->str; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '?' || *p == '#' || *p == '%')
            return bt_cfg_fail(c, v, "\"%s\": only a plain path is allowed (no spaces, ?, # or %%)",
                               v->str);
    if (strlen(v->str) > 200)
        return bt_cfg_fail(c, v, "longer than 200 characters");
    char *s = strdup(v->str);
    if (!s)
        return bt_cfg_oom(c, v);
    size_t n = strlen(s);
    while (n && s[n - 1] == '/')
        s[--n] = '\0';
    free(*(char **)at);
    *(char **)at = s;
    return 0;
}

/* client_auth_type: only what needs no client certificate check (which would need GnuTLS'
 * own API behind libmicrohttpd). */
static int dec_client_auth(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    if (bt_node_is_null(v) || (v->type == BT_NODE_SCALAR &&
                               (strcmp(v->str, "") == 0 || strcmp(v->str, "NoClientCert") == 0)))
        return 0;
    return bt_cfg_fail(c, v,
                       "not supported by bpftail: only NoClientCert; client certificates are "
                       "not checked, put a TLS-terminating proxy in front for that");
}

#define SV(m) offsetof(struct bt_server_config, m)
static const struct bt_cfg_field http_tls_fields[] = {
    {.key = "cert_file", .kind = BT_CFG_STR, .off = SV(http_tls_cert_file)},
    {.key = "key_file", .kind = BT_CFG_STR, .off = SV(http_tls_key_file)},
    {.key = "client_auth_type", .kind = BT_CFG_FN, .fn = dec_client_auth},
    {.key = "client_ca_file",
     .kind = BT_CFG_UNSUPPORTED,
     .note = "client certificates are not checked; put a TLS-terminating proxy in front"},
    {0},
};

static const struct bt_cfg_field server_fields[] = {
    {.key = "http_listen_address", .kind = BT_CFG_STR, .off = SV(http_listen_address)},
    {.key = "http_listen_port", .kind = BT_CFG_INT, .off = SV(http_listen_port), .hi = 65535},
    {.key = "grpc_listen_port", .kind = BT_CFG_INT, .off = SV(grpc_listen_port), .hi = 65535},
    {.key = "log_level", .kind = BT_CFG_FN, .off = SV(log_level), .fn = dec_log_level},
    {.key = "log_format", .kind = BT_CFG_FN, .off = SV(log_format), .fn = dec_log_format},
    {.key = "register_instrumentation", .kind = BT_CFG_BOOL, .off = SV(register_instrumentation)},
    {.key = "disable", .kind = BT_CFG_BOOL, .off = SV(disable)},
    {.key = "health_check_target", .kind = BT_CFG_BOOL, .off = SV(health_check_target)},
    {.key = "enable_runtime_reload", .kind = BT_CFG_BOOL, .off = SV(enable_runtime_reload)},
    {.key = "graceful_shutdown_timeout",
     .kind = BT_CFG_DURATION,
     .off = SV(graceful_shutdown_timeout_ns)},
    {.key = "http_server_read_timeout", .kind = BT_CFG_ACCEPT_DUR},
    {.key = "http_server_write_timeout", .kind = BT_CFG_ACCEPT_DUR},
    {.key = "http_server_idle_timeout", .kind = BT_CFG_ACCEPT_DUR},
    {.key = "grpc_listen_address",
     .kind = BT_CFG_FN,
     .off = SV(grpc_ignored),
     .fn = dec_grpc_address},
    {.key = "grpc_server_max_recv_msg_size",
     .kind = BT_CFG_FN,
     .off = SV(grpc_ignored),
     .fn = dec_grpc_int},
    {.key = "grpc_server_max_send_msg_size",
     .kind = BT_CFG_FN,
     .off = SV(grpc_ignored),
     .fn = dec_grpc_int},
    {.key = "grpc_server_max_concurrent_streams",
     .kind = BT_CFG_FN,
     .off = SV(grpc_ignored),
     .fn = dec_grpc_int},
    /* promtail uses external_url only for links in its web UI, which bpftail does not serve */
    {.key = "external_url", .kind = BT_CFG_STR, .off = SV(external_url)},
    {.key = "http_path_prefix",
     .kind = BT_CFG_FN,
     .off = SV(http_path_prefix),
     .fn = dec_path_prefix},
    {.key = "profiling_enabled", .kind = BT_CFG_FN, .fn = dec_profiling},
    {.key = "http_tls_config", .kind = BT_CFG_SUB, .sub = http_tls_fields},
    {.key = "grpc_tls_config", .kind = BT_CFG_FN, .off = SV(grpc_ignored), .fn = dec_grpc_tls},
    {0},
};

#define PO(m) offsetof(struct bt_positions_config, m)
static const struct bt_cfg_field positions_fields[] = {
    {.key = "filename", .kind = BT_CFG_STR, .off = PO(filename)},
    {.key = "sync_period", .kind = BT_CFG_DURATION, .off = PO(sync_period_ns)},
    {.key = "ignore_invalid_yaml", .kind = BT_CFG_BOOL, .off = PO(ignore_invalid_yaml)},
    {0},
};

#define LI(m) offsetof(struct bt_limits_config, m)
static const struct bt_cfg_field limits_fields[] = {
    {.key = "readline_rate_enabled", .kind = BT_CFG_BOOL, .off = LI(readline_rate_enabled)},
    {.key = "readline_rate", .kind = BT_CFG_DOUBLE, .off = LI(readline_rate)},
    {.key = "readline_burst", .kind = BT_CFG_INT, .off = LI(readline_burst), .hi = INT_MAX},
    {.key = "readline_rate_drop", .kind = BT_CFG_BOOL, .off = LI(readline_rate_drop)},
    {.key = "max_streams", .kind = BT_CFG_SIZE, .off = LI(max_streams), .hi = INT_MAX},
    {.key = "max_line_size", .kind = BT_CFG_BYTES, .off = LI(max_line_size)},
    {.key = "max_line_size_truncate", .kind = BT_CFG_BOOL, .off = LI(max_line_size_truncate)},
    {0},
};

static const struct bt_cfg_field target_fields[] = {
    {.key = "sync_period",
     .kind = BT_CFG_DURATION,
     .off = offsetof(struct bt_target_config, sync_period_ns)},
    {.key = "stdin", .kind = BT_CFG_BOOL, .off = offsetof(struct bt_target_config, stdin_)},
    {0},
};

static const struct bt_cfg_field options_fields[] = {
    {.key = "stream_lag_labels", .kind = BT_CFG_ACCEPT},
    {0},
};

static int dec_watcher(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    static const char *const names[] = {"auto", "bpf", "fanotify", "inotify", "poll"};
    if (bt_node_is_null(v))
        return 0;
    for (size_t i = 0; v->type == BT_NODE_SCALAR && i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(v->str, names[i]) == 0)
            return bt_cfg_str(c, v, at);
    return bt_cfg_fail(c, v, "expected one of auto, bpf, fanotify, inotify, poll");
}

#define AG(m) offsetof(struct bt_agent_config, m)
static const struct bt_cfg_field agent_fields[] = {
    {.key = "memory_limit", .kind = BT_CFG_BYTES, .off = AG(memory_limit)},
    {.key = "shutdown_timeout", .kind = BT_CFG_DURATION, .off = AG(shutdown_timeout_ns)},
    {.key = "watcher", .kind = BT_CFG_FN, .off = AG(watcher), .fn = dec_watcher},
    {.key = "line_flush_timeout", .kind = BT_CFG_DURATION, .off = AG(line_flush_timeout_ns)},
    {.key = "rotate_grace", .kind = BT_CFG_DURATION, .off = AG(rotate_grace_ns)},
    {.key = "idle_close", .kind = BT_CFG_DURATION, .off = AG(idle_close_ns)},
    {.key = "read_buffer", .kind = BT_CFG_BYTES, .off = AG(read_buffer)},
    {.key = "max_open_files", .kind = BT_CFG_SIZE, .off = AG(max_open_files), .hi = INT_MAX},
    {.key = "fingerprint_check", .kind = BT_CFG_BOOL, .off = AG(fingerprint_check)},
    {.key = "spool_dir", .kind = BT_CFG_STR, .off = AG(spool_dir)},
    {.key = "spool_max_bytes", .kind = BT_CFG_BYTES, .off = AG(spool_max_bytes)},
    {0},
};

/* promtail's `tracing` and `wal` are harmless when switched off, so `enabled: false` is
 * accepted; anything that would turn them on is refused. */
static int dec_disabled_only(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    bool on = true;
    const struct bt_node *en = bt_node_get(v, "enabled");
    if (bt_node_is_null(v) || (en && !bt_node_bool(en, &on) && !on))
        return 0;
    return bt_cfg_fail(c, v, "not supported by bpftail (only \"enabled: false\" is accepted)");
}

/* promtail 2.9's polling knobs: bpftail is woken by file events, so they are validated and
 * have no effect. */
static const struct bt_cfg_field file_watch_fields[] = {
    {.key = "min_poll_frequency", .kind = BT_CFG_ACCEPT_DUR},
    {.key = "max_poll_frequency", .kind = BT_CFG_ACCEPT_DUR},
    {0},
};
static const struct bt_cfg_field global_fields[] = {
    {.key = "file_watch_config", .kind = BT_CFG_SUB, .sub = file_watch_fields},
    {0},
};

/* ---- clients ---- */

static struct bt_client_config *add_client(struct bt_cfg_ctx *c, struct bt_config *cfg,
                                           const struct bt_node *at)
{
    struct bt_client_config *cl = realloc(cfg->clients, (cfg->n_clients + 1) * sizeof(*cl));
    if (!cl)
        return NULL;
    cfg->clients = cl;
    const struct bt_node **nodes =
        realloc(c->client_nodes, (c->n_client_nodes + 1) * sizeof(*nodes));
    if (!nodes)
        return NULL;
    c->client_nodes = nodes;
    nodes[c->n_client_nodes++] = at;
    cl = &cfg->clients[cfg->n_clients++];
    bt_cfg_client_defaults(cl);
    return cl;
}

static int dec_clients(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    struct bt_config *cfg = at;
    int rc = bt_cfg_expect_seq(c, v);
    for (size_t i = 0; !rc && !bt_node_is_null(v) && i < v->n; i++) {
        struct bt_client_config *cl = add_client(c, cfg, v->items[i]);
        if (!cl)
            return bt_cfg_oom(c, v->items[i]);
        size_t mark = bt_cfg_push_idx(c, cfg->n_clients - 1);
        rc = bt_cfg_client_decode(c, v->items[i], cl);
        if (!rc)
            bt_cfg_pop(c, mark);
    }
    return rc;
}

/* promtail's deprecated single `client:` block becomes one more entry of clients. */
static int dec_single_client(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    if (bt_node_is_null(v))
        return 0;
    struct bt_client_config *cl = add_client(c, at, v);
    if (!cl)
        return bt_cfg_oom(c, v);
    return bt_cfg_client_decode(c, v, cl);
}

/* ---- scrape_configs ---- */

static int dec_targets(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    struct bt_static_config *st =
        (struct bt_static_config *)((char *)at - offsetof(struct bt_static_config, targets));
    int rc = bt_cfg_expect_seq(c, v);
    if (rc || bt_node_is_null(v))
        return rc;
    for (size_t i = 0; i < st->n_targets; i++)
        free(st->targets[i]);
    free(st->targets);
    st->n_targets = 0;
    st->targets = calloc(v->n ? v->n : 1, sizeof(char *));
    if (!st->targets)
        return bt_cfg_oom(c, v);
    for (size_t i = 0; i < v->n; i++) {
        const struct bt_node *t = v->items[i];
        if (t->type != BT_NODE_SCALAR || bt_node_is_null(t))
            return bt_cfg_fail(c, t, "targets[%zu]: expected a string, got %s", i,
                               bt_cfg_kind_name(t));
        if (!(st->targets[i] = strdup(t->str)))
            return bt_cfg_oom(c, t);
        st->n_targets = i + 1;
    }
    return 0;
}

static int dec_static_labels(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    return bt_cfg_labels(c, v, at);
}

static const struct bt_cfg_field static_fields[] = {
    {.key = "targets",
     .kind = BT_CFG_FN,
     .off = offsetof(struct bt_static_config, targets),
     .fn = dec_targets},
    {.key = "labels",
     .kind = BT_CFG_FN,
     .off = offsetof(struct bt_static_config, labels),
     .fn = dec_static_labels},
    {0},
};

static int dec_statics(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    struct bt_scrape_config *sc =
        (struct bt_scrape_config *)((char *)at - offsetof(struct bt_scrape_config, statics));
    int rc = bt_cfg_expect_seq(c, v);
    if (rc || bt_node_is_null(v) || sc->statics)
        return rc;
    sc->statics = calloc(v->n ? v->n : 1, sizeof(*sc->statics));
    if (!sc->statics)
        return bt_cfg_oom(c, v);
    for (size_t i = 0; i < v->n; i++) {
        struct bt_static_config *st = &sc->statics[i];
        bt_labels_init(&st->labels);
        st->node = v->items[i];
        sc->n_statics = i + 1;
        size_t mark = bt_cfg_push_idx(c, i);
        if (v->items[i]->type != BT_NODE_MAP)
            return bt_cfg_fail(c, v->items[i], "expected a map with targets and labels, got %s",
                               bt_cfg_kind_name(v->items[i]));
        if ((rc = bt_cfg_decode(c, v->items[i], static_fields, st)))
            return rc;
        bt_cfg_pop(c, mark);
    }
    return 0;
}

static int dec_start_at(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    if (bt_node_is_null(v))
        return 0;
    if (v->type == BT_NODE_SCALAR && strcmp(v->str, "beginning") == 0)
        *(enum bt_start_at *)at = BT_START_BEGINNING;
    else if (v->type == BT_NODE_SCALAR && strcmp(v->str, "end") == 0)
        *(enum bt_start_at *)at = BT_START_END;
    else
        return bt_cfg_fail(c, v, "expected beginning or end");
    return 0;
}

/* `docker:` (and `journal:`) alone (null) switches the target on with its defaults, so the node
 * is kept even when it is null. */
static int dec_docker(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    if (!bt_node_is_null(v) && v->type != BT_NODE_MAP)
        return bt_cfg_fail(c, v, "expected a map, got %s", bt_cfg_kind_name(v));
    *(const struct bt_node **)at = v;
    return 0;
}

#define SC(m) offsetof(struct bt_scrape_config, m)
/* Scrape kinds bpftail does not read, by reason. The texts are asserted by the compatibility
 * corpus (tests/compat) and summed up in the README's "Coming from promtail" table. */
#define UNSUPPORTED_TARGET(k, why)                                                                 \
    {                                                                                              \
        .key = k, .kind = BT_CFG_UNSUPPORTED, .note = why                                          \
    }
#define CLOUD(k)                                                                                   \
    UNSUPPORTED_TARGET(k, "it receives logs from a cloud or network service; bpftail ships the "   \
                          "logs of its own machine (files, journal, Docker)")
#define REMOTE_SD(k)                                                                               \
    UNSUPPORTED_TARGET(k, "it discovers remote targets; bpftail reads its own machine (use "       \
                          "static_configs or file_sd_configs)")
static const struct bt_cfg_field scrape_fields[] = {
    {.key = "job_name", .kind = BT_CFG_STR, .off = SC(job_name)},
    {.key = "static_configs", .kind = BT_CFG_FN, .off = SC(statics), .fn = dec_statics},
    {.key = "pipeline_stages", .kind = BT_CFG_SEQ_NODE, .off = SC(pipeline_stages)},
    {.key = "relabel_configs", .kind = BT_CFG_SEQ_NODE, .off = SC(relabel_configs)},
    {.key = "docker_sd_configs", .kind = BT_CFG_SEQ_NODE, .off = SC(docker_sd_configs)},
    {.key = "docker", .kind = BT_CFG_FN, .off = SC(docker), .fn = dec_docker},
    {.key = "journal", .kind = BT_CFG_FN, .off = SC(journal), .fn = dec_docker},
    {.key = "syslog", .kind = BT_CFG_FN, .off = SC(syslog), .fn = dec_docker},
    {.key = "loki_push_api", .kind = BT_CFG_FN, .off = SC(loki_push_api), .fn = dec_docker},
    {.key = "gelf", .kind = BT_CFG_FN, .off = SC(gelf), .fn = dec_docker},
    {.key = "file_sd_configs", .kind = BT_CFG_SEQ_NODE, .off = SC(file_sd_configs)},
    {.key = "kubernetes_sd_configs", .kind = BT_CFG_SEQ_NODE, .off = SC(kubernetes_sd_configs)},
    {.key = "encoding", .kind = BT_CFG_STR, .off = SC(encoding)},
    {.key = "start_at", .kind = BT_CFG_FN, .off = SC(start_at), .fn = dec_start_at},
    {.key = "ignore_older", .kind = BT_CFG_DURATION, .off = SC(ignore_older_ns)},
    {.key = "decompression", .kind = BT_CFG_FN, .fn = dec_disabled_only},
    UNSUPPORTED_TARGET("windows_events", "Windows event logs; bpftail runs on Linux"),
    CLOUD("gcplog"),
    CLOUD("kafka"),
    CLOUD("cloudflare"),
    CLOUD("heroku_drain"),
    CLOUD("azure_event_hubs"),
    REMOTE_SD("consul_sd_configs"),
    REMOTE_SD("consulagent_sd_configs"),
    REMOTE_SD("dockerswarm_sd_configs"),
    REMOTE_SD("dns_sd_configs"),
    REMOTE_SD("ec2_sd_configs"),
    REMOTE_SD("azure_sd_configs"),
    REMOTE_SD("gce_sd_configs"),
    REMOTE_SD("openstack_sd_configs"),
    REMOTE_SD("http_sd_configs"),
    REMOTE_SD("serverset_sd_configs"),
    REMOTE_SD("nerve_sd_configs"),
    REMOTE_SD("marathon_sd_configs"),
    REMOTE_SD("triton_sd_configs"),
    REMOTE_SD("digitalocean_sd_configs"),
    REMOTE_SD("eureka_sd_configs"),
    REMOTE_SD("hetzner_sd_configs"),
    REMOTE_SD("ionos_sd_configs"),
    REMOTE_SD("kuma_sd_configs"),
    REMOTE_SD("lightsail_sd_configs"),
    REMOTE_SD("linode_sd_configs"),
    REMOTE_SD("nomad_sd_configs"),
    REMOTE_SD("ovhcloud_sd_configs"),
    REMOTE_SD("puppetdb_sd_configs"),
    REMOTE_SD("scaleway_sd_configs"),
    REMOTE_SD("uyuni_sd_configs"),
    REMOTE_SD("vultr_sd_configs"),
    {0},
};

static void scrape_free(struct bt_scrape_config *sc)
{
    free(sc->job_name);
    free(sc->encoding);
    for (size_t i = 0; i < sc->n_statics; i++) {
        struct bt_static_config *st = &sc->statics[i];
        for (size_t j = 0; j < st->n_targets; j++)
            free(st->targets[j]);
        free(st->targets);
        bt_labels_free(&st->labels);
    }
    free(sc->statics);
}

static int check_scrape(struct bt_cfg_ctx *c, const struct bt_config *cfg, size_t i)
{
    const struct bt_scrape_config *sc = &cfg->scrapes[i];
    const struct bt_node *jn = bt_node_get(sc->node, "job_name");
    if (!sc->job_name || !sc->job_name[0])
        return bt_cfg_fail(c, jn ? jn : sc->node, "job_name is required");
    for (size_t j = 0; j < i; j++)
        if (strcmp(cfg->scrapes[j].job_name, sc->job_name) == 0)
            return bt_cfg_fail(c, jn, "duplicate job_name \"%s\" (first at line %d)", sc->job_name,
                               cfg->scrapes[j].node->line);
    return 0;
}

static int dec_scrapes(struct bt_cfg_ctx *c, const struct bt_node *v, void *at)
{
    struct bt_config *cfg = at;
    int rc = bt_cfg_expect_seq(c, v);
    if (rc || bt_node_is_null(v) || cfg->scrapes)
        return rc;
    cfg->scrapes = calloc(v->n ? v->n : 1, sizeof(*cfg->scrapes));
    if (!cfg->scrapes)
        return bt_cfg_oom(c, v);
    for (size_t i = 0; i < v->n; i++) {
        struct bt_scrape_config *sc = &cfg->scrapes[i];
        sc->node = v->items[i];
        cfg->n_scrapes = i + 1;
        size_t mark = bt_cfg_push_idx(c, i);
        if (sc->node->type != BT_NODE_MAP)
            return bt_cfg_fail(c, sc->node, "expected a map with job_name, got %s",
                               bt_cfg_kind_name(sc->node));
        if ((rc = bt_cfg_decode(c, sc->node, scrape_fields, sc)) || (rc = check_scrape(c, cfg, i)))
            return rc;
        bt_cfg_pop(c, mark);
    }
    return 0;
}

/* ---- top level ---- */

#define TOP(m) offsetof(struct bt_config, m)
static const struct bt_cfg_field top_fields[] = {
    {.key = "server", .kind = BT_CFG_SUB, .off = TOP(server), .sub = server_fields},
    {.key = "positions", .kind = BT_CFG_SUB, .off = TOP(positions), .sub = positions_fields},
    {.key = "clients", .kind = BT_CFG_FN, .fn = dec_clients},
    {.key = "client", .kind = BT_CFG_FN, .fn = dec_single_client},
    {.key = "scrape_configs", .kind = BT_CFG_FN, .fn = dec_scrapes},
    {.key = "limits_config", .kind = BT_CFG_SUB, .off = TOP(limits), .sub = limits_fields},
    {.key = "target_config", .kind = BT_CFG_SUB, .off = TOP(target), .sub = target_fields},
    {.key = "options", .kind = BT_CFG_SUB, .sub = options_fields},
    {.key = "bpftail", .kind = BT_CFG_SUB, .off = TOP(agent), .sub = agent_fields},
    {.key = "fim", .kind = BT_CFG_MAP_NODE, .off = TOP(fim)},
    {.key = "global", .kind = BT_CFG_SUB, .sub = global_fields},
    {.key = "tracing", .kind = BT_CFG_FN, .fn = dec_disabled_only},
    {.key = "wal", .kind = BT_CFG_FN, .fn = dec_disabled_only},
    {0},
};

static int set_defaults(struct bt_config *cfg)
{
    cfg->server.http_listen_port = 80;
    cfg->server.grpc_listen_port = 9095;
    cfg->server.register_instrumentation = true;
    cfg->server.health_check_target = true;
    cfg->server.graceful_shutdown_timeout_ns = 30 * BT_NS_PER_SEC;
    cfg->positions.sync_period_ns = 10 * BT_NS_PER_SEC;
    cfg->limits.readline_rate = 10000;
    cfg->limits.readline_burst = 10000;
    cfg->limits.readline_rate_drop = true;
    cfg->target.sync_period_ns = 10 * BT_NS_PER_SEC;
    cfg->agent.memory_limit = 64u << 20;
    cfg->agent.shutdown_timeout_ns = 5 * BT_NS_PER_SEC;
    cfg->agent.line_flush_timeout_ns = 5 * BT_NS_PER_SEC;
    cfg->agent.rotate_grace_ns = 5 * BT_NS_PER_SEC;
    cfg->agent.idle_close_ns = 300 * BT_NS_PER_SEC;
    cfg->agent.read_buffer = 256u << 10;
    cfg->agent.fingerprint_check = true;
    cfg->agent.spool_max_bytes = 256ull << 20;
    cfg->server.http_listen_address = strdup("");
    cfg->server.http_path_prefix = strdup("");
    cfg->server.log_level = strdup("info");
    cfg->server.log_format = strdup("logfmt");
    cfg->positions.filename = strdup("/var/log/positions.yaml");
    cfg->agent.watcher = strdup("auto");
    if (!cfg->server.http_listen_address || !cfg->server.http_path_prefix ||
        !cfg->server.log_level || !cfg->server.log_format || !cfg->positions.filename ||
        !cfg->agent.watcher)
        return -ENOMEM;
    return 0;
}

static int replace(char **dst, const char *s)
{
    char *n = strdup(s);
    if (!n)
        return -ENOMEM;
    free(*dst);
    *dst = n;
    return 0;
}

/* Flags win over the file. -client.url and -client.tenant-id are applied with the clients. */
static int apply_cli(struct bt_cfg_ctx *c, struct bt_config *cfg, const struct bt_cli *cli)
{
    enum bt_log_level lvl;
    if (cli->log_level && bt_log_parse_level(cli->log_level, &lvl))
        return bt_cfg_fail(c, NULL, "-log.level: expected one of debug, info, warn, error");
    if (cli->http_port > 65535)
        return bt_cfg_fail(c, NULL, "-server.http-listen-port: %d is out of range", cli->http_port);
    if (cli->http_port >= 0)
        cfg->server.http_listen_port = cli->http_port;
    if ((cli->log_level && replace(&cfg->server.log_level, cli->log_level)) ||
        (cli->positions_file && replace(&cfg->positions.filename, cli->positions_file)))
        return bt_cfg_oom(c, NULL);
    c->url_override = cli->client_url;
    c->tenant_override = cli->client_tenant;
    return 0;
}

static int check_rest(struct bt_cfg_ctx *c, const struct bt_config *cfg)
{
    const struct bt_node *r = cfg->root;
    if (!cfg->positions.filename || !cfg->positions.filename[0])
        return bt_cfg_fail(c, bt_node_get(r, "positions"), "positions.filename must not be empty");
    if (cfg->positions.sync_period_ns <= 0)
        return bt_cfg_fail(c, bt_node_get(r, "positions"), "positions.sync_period must be > 0");
    if (cfg->target.sync_period_ns <= 0)
        return bt_cfg_fail(c, bt_node_get(r, "target_config"),
                           "target_config.sync_period must be > 0");
    if (!cfg->server.http_tls_cert_file != !cfg->server.http_tls_key_file)
        return bt_cfg_fail(c, bt_node_get(bt_node_get(r, "server"), "http_tls_config"),
                           "server.http_tls_config: cert_file and key_file go together");
    if (cfg->agent.memory_limit < (1u << 20))
        return bt_cfg_fail(c, bt_node_get(r, "bpftail"), "bpftail.memory_limit must be >= 1MiB");
    if (cfg->agent.read_buffer < 4096 || cfg->agent.read_buffer > (64u << 20))
        return bt_cfg_fail(c, bt_node_get(r, "bpftail"),
                           "bpftail.read_buffer must be between 4KiB and 64MiB");
    return 0;
}

/* Parses text (already env-expanded) with the flag overrides of cli (may be NULL). */
static struct bt_config *parse_with(const char *text, size_t len, const char *name,
                                    const struct bt_cli *cli, char *err, size_t errlen)
{
    struct bt_cfg_ctx c = {.err = err, .errlen = errlen};
    struct bt_config *cfg = calloc(1, sizeof(*cfg));
    int rc = -ENOMEM;
    if (!cfg || set_defaults(cfg) || !(cfg->path = strdup(name))) {
        snprintf(err, errlen, "%s: out of memory", name);
        goto out;
    }
    cfg->root = bt_yaml_parse(text, len, name, err, errlen);
    if (!cfg->root)
        goto out;
    if (!bt_node_is_null(cfg->root) && cfg->root->type != BT_NODE_MAP) {
        rc = bt_cfg_fail(&c, cfg->root, "expected a map of config blocks at the top, got %s",
                         bt_cfg_kind_name(cfg->root));
        goto out;
    }
    if ((rc = bt_cfg_decode(&c, cfg->root, top_fields, cfg)))
        goto out;
    if (cli && (rc = apply_cli(&c, cfg, cli)))
        goto out;
    if ((rc = check_rest(&c, cfg)))
        goto out;
    rc = bt_cfg_clients_finish(&c, cfg);
out:
    free(c.client_nodes);
    if (rc) {
        bt_config_free(cfg);
        return NULL;
    }
    return cfg;
}

struct bt_config *bt_config_parse(const char *text, size_t len, const char *name, char *err,
                                  size_t errlen)
{
    return parse_with(text, len, name ? name : "<config>", NULL, err, errlen);
}

/* Reads a whole config file (at most BT_CONFIG_MAX_FILE bytes). Caller frees. */
static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    char *buf = NULL;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > BT_CONFIG_MAX_FILE) {
        snprintf(err, errlen, "%s: not a regular file of at most %u bytes", path,
                 BT_CONFIG_MAX_FILE);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    size_t off = 0;
    while (off < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + off, (size_t)st.st_size - off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            free(buf);
            buf = NULL;
            goto out;
        }
        if (r == 0)
            break;
        off += (size_t)r;
    }
    buf[off] = '\0';
    *len = off;
out:
    close(fd);
    return buf;
}

struct bt_config *bt_config_load(const struct bt_cli *cli, char *err, size_t errlen)
{
    const char *name = cli->config_file ? cli->config_file : BT_CONFIG_BUILTIN_NAME;
    char *raw = NULL, *text = NULL;
    struct bt_config *cfg = NULL;
    size_t len = 0;
    if (cli->config_file) {
        if (!(raw = read_file(cli->config_file, &len, err, errlen)))
            return NULL;
    }
    const char *src = raw ? raw : bt_default_config;
    if (!raw)
        len = strlen(bt_default_config);
    if (!raw || cli->expand_env) {
        char eerr[256];
        text = bt_config_expand_env(src, len, eerr, sizeof(eerr));
        if (!text) {
            snprintf(err, errlen, "%s:%s", name, eerr);
            goto out;
        }
        src = text;
        len = strlen(text);
    }
    cfg = parse_with(src, len, name, cli, err, errlen);
    if (cfg && !cli->config_file) {
        free(cfg->path);
        cfg->path = NULL;
    }
out:
    free(raw);
    free(text);
    return cfg;
}

void bt_config_free(struct bt_config *c)
{
    if (!c)
        return;
    free(c->path);
    free(c->server.http_listen_address);
    free(c->server.external_url);
    free(c->server.http_path_prefix);
    free(c->server.http_tls_cert_file);
    free(c->server.http_tls_key_file);
    free(c->server.log_level);
    free(c->server.log_format);
    free(c->positions.filename);
    free(c->agent.watcher);
    free(c->agent.spool_dir);
    for (size_t i = 0; i < c->n_clients; i++)
        bt_cfg_client_free(&c->clients[i]);
    free(c->clients);
    for (size_t i = 0; i < c->n_scrapes; i++)
        scrape_free(&c->scrapes[i]);
    free(c->scrapes);
    bt_node_free(c->root);
    free(c);
}
