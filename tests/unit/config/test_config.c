#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/labels.h"
#include "config/node.h"
#include "tmpdir.h"
#include "util/buf.h"
#include "util/timeutil.h"

#define DATA BT_SOURCE_DIR "/tests/data/configs/"
#define SEC BT_NS_PER_SEC
#define MS BT_NS_PER_MS
#define URL "http://localhost:3100/loki/api/v1/push"
#define MIN_CFG "clients:\n  - url: " URL "\n"

static char err[1024];

static struct bt_config *parse(const char *text)
{
    err[0] = '\0';
    return bt_config_parse(text, strlen(text), "c.yaml", err, sizeof(err));
}

static void parse_fails(const char *text, const char *want1, const char *want2)
{
    struct bt_config *c = parse(text);
    cr_assert_null(c, "expected an error containing \"%s\" for:\n%s", want1, text);
    cr_assert(strstr(err, want1), "error \"%s\" lacks \"%s\"", err, want1);
    if (want2)
        cr_assert(strstr(err, want2), "error \"%s\" lacks \"%s\"", err, want2);
}

static struct bt_cli cli_for(const char *file)
{
    struct bt_cli cli;
    memset(&cli, 0, sizeof(cli));
    cli.http_port = -1;
    cli.config_file = file;
    return cli;
}

static struct bt_config *load_sample(const char *name)
{
    struct bt_cli cli = cli_for(name);
    err[0] = '\0';
    return bt_config_load(&cli, err, sizeof(err));
}

/* ---- defaults and every key ---- */

Test(config, minimal_config_gets_promtail_defaults)
{
    struct bt_config *c = parse(MIN_CFG);
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(c->server.http_listen_address, "");
    cr_assert_eq(c->server.http_listen_port, 80);
    cr_assert_eq(c->server.grpc_listen_port, 9095);
    cr_assert_str_eq(c->server.log_level, "info");
    cr_assert_str_eq(c->server.log_format, "logfmt");
    cr_assert(c->server.register_instrumentation);
    cr_assert(c->server.health_check_target);
    cr_assert_not(c->server.disable);
    cr_assert_not(c->server.enable_runtime_reload);
    cr_assert_eq(c->server.graceful_shutdown_timeout_ns, 30 * SEC);
    cr_assert_str_eq(c->positions.filename, "/var/log/positions.yaml");
    cr_assert_eq(c->positions.sync_period_ns, 10 * SEC);
    cr_assert_not(c->positions.ignore_invalid_yaml);
    cr_assert_eq(c->n_clients, 1);
    const struct bt_client_config *cl = &c->clients[0];
    cr_assert_str_eq(cl->url, URL);
    cr_assert_str_eq(cl->name, "localhost:3100");
    cr_assert_eq(cl->batchwait_ns, 1 * SEC);
    cr_assert_eq(cl->batchsize, 1048576);
    cr_assert_eq(cl->min_backoff_ns, 500 * MS);
    cr_assert_eq(cl->max_backoff_ns, 300 * SEC);
    cr_assert_eq(cl->max_retries, 10);
    cr_assert_eq(cl->timeout_ns, 10 * SEC);
    cr_assert_null(cl->tenant_id);
    cr_assert_eq(cl->external_labels.n, 0);
    cr_assert_null(cl->basic_username);
    cr_assert_null(cl->bearer_token);
    cr_assert_eq(cl->n_headers, 0);
    cr_assert_not(cl->drop_rate_limited_batches);
    cr_assert_eq(cl->max_age_ns, 0);
    cr_assert_eq(cl->max_in_flight, 4);
    cr_assert_eq(c->n_scrapes, 0);
    cr_assert_not(c->limits.readline_rate_enabled);
    cr_assert_float_eq(c->limits.readline_rate, 10000, 1e-9);
    cr_assert_eq(c->limits.readline_burst, 10000);
    cr_assert(c->limits.readline_rate_drop);
    cr_assert_eq(c->limits.max_streams, 0);
    cr_assert_eq(c->limits.max_line_size, 0);
    cr_assert_not(c->limits.max_line_size_truncate);
    cr_assert_eq(c->target.sync_period_ns, 10 * SEC);
    cr_assert_not(c->target.stdin_);
    cr_assert_eq(c->agent.memory_limit, 64u << 20);
    cr_assert_eq(c->agent.shutdown_timeout_ns, 5 * SEC);
    cr_assert_str_eq(c->agent.watcher, "auto");
    cr_assert_eq(c->agent.line_flush_timeout_ns, 5 * SEC);
    cr_assert_eq(c->agent.rotate_grace_ns, 5 * SEC);
    cr_assert_eq(c->agent.idle_close_ns, 300 * SEC);
    cr_assert_eq(c->agent.read_buffer, 256u << 10);
    cr_assert_eq(c->agent.max_open_files, 0);
    cr_assert(c->agent.fingerprint_check);
    cr_assert_null(c->fim);
    cr_assert_not_null(c->root);
    bt_config_free(c);
}

Test(config, every_supported_key_is_read)
{
    struct bt_config *c = load_sample(DATA "bpftail-full.yaml");
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(c->path, DATA "bpftail-full.yaml");
    cr_assert_str_eq(c->server.http_listen_address, "127.0.0.1");
    cr_assert_eq(c->server.http_listen_port, 3101);
    cr_assert_eq(c->server.grpc_listen_port, 9096);
    cr_assert_str_eq(c->server.log_level, "debug");
    cr_assert_not(c->server.register_instrumentation);
    cr_assert(c->server.disable);
    cr_assert_not(c->server.health_check_target);
    cr_assert(c->server.enable_runtime_reload);
    cr_assert_eq(c->server.graceful_shutdown_timeout_ns, 45 * SEC);
    cr_assert_str_eq(c->positions.filename, "/var/lib/bpftail/positions.yaml");
    cr_assert_eq(c->positions.sync_period_ns, 3 * SEC);
    cr_assert(c->positions.ignore_invalid_yaml);

    cr_assert_eq(c->n_clients, 2);
    const struct bt_client_config *cl = &c->clients[0];
    cr_assert_str_eq(cl->url, "https://user:pw@loki.example:8443/loki/api/v1/push");
    cr_assert_str_eq(cl->name, "main");
    cr_assert_eq(cl->batchwait_ns, 250 * MS);
    cr_assert_eq(cl->batchsize, 256 * 1024);
    cr_assert_eq(cl->min_backoff_ns, 100 * MS);
    cr_assert_eq(cl->max_backoff_ns, 30 * SEC);
    cr_assert_eq(cl->max_retries, 0);
    cr_assert_eq(cl->timeout_ns, 5 * SEC);
    cr_assert_str_eq(cl->tenant_id, "tenant-1");
    cr_assert_str_eq(bt_labels_get(&cl->external_labels, "cluster"), "c1");
    cr_assert_str_eq(bt_labels_get(&cl->external_labels, "region"), "eu");
    cr_assert_str_eq(cl->bearer_token_file, "/run/secrets/loki-token");
    cr_assert_str_eq(cl->proxy_url, "http://proxy.example:3128");
    cr_assert_str_eq(cl->tls.ca_file, "/etc/ssl/ca.pem");
    cr_assert_str_eq(cl->tls.cert_file, "/etc/ssl/client.pem");
    cr_assert_str_eq(cl->tls.key_file, "/etc/ssl/client.key");
    cr_assert_str_eq(cl->tls.server_name, "loki.internal");
    cr_assert(cl->tls.insecure_skip_verify);
    cr_assert_eq(cl->n_headers, 2);
    cr_assert_str_eq(cl->headers[0].name, "X-Team");
    cr_assert_str_eq(cl->headers[0].value, "infra");
    cr_assert_str_eq(cl->headers[1].name, "X-Api-Key");
    cr_assert_str_eq(cl->headers[1].value, "abc123");
    cr_assert(cl->drop_rate_limited_batches);
    cr_assert_eq(cl->max_age_ns, 168LL * 3600 * SEC);
    cr_assert_str_eq(c->clients[1].bearer_token, "tok-xyz");
    cr_assert_str_eq(c->clients[1].name, "localhost:3100");

    cr_assert_eq(c->n_scrapes, 3);
    const struct bt_scrape_config *s = &c->scrapes[0];
    cr_assert_str_eq(s->job_name, "files");
    cr_assert_str_eq(s->encoding, "UTF-16");
    cr_assert_eq(s->start_at, BT_START_END);
    cr_assert_eq(s->ignore_older_ns, 24LL * 3600 * SEC);
    cr_assert_eq(s->n_statics, 1);
    cr_assert_eq(s->statics[0].n_targets, 1);
    cr_assert_str_eq(s->statics[0].targets[0], "localhost");
    cr_assert_str_eq(bt_labels_get(&s->statics[0].labels, "__path__"), "/var/log/app/**/*.log");
    cr_assert_str_eq(bt_labels_get(&s->statics[0].labels, "job"), "files");
    cr_assert_not_null(s->statics[0].node);
    cr_assert_eq(s->relabel_configs->type, BT_NODE_SEQ);
    cr_assert_eq(s->relabel_configs->n, 1);
    cr_assert_eq(s->pipeline_stages->n, 2);
    cr_assert_not_null(bt_node_get(s->pipeline_stages->items[0], "regex"));
    cr_assert_null(s->docker_sd_configs);
    cr_assert_null(s->docker);
    cr_assert_eq(s->node->type, BT_NODE_MAP);
    s = &c->scrapes[1];
    cr_assert_eq(s->n_statics, 0);
    cr_assert_eq(s->docker_sd_configs->n, 1);
    cr_assert_str_eq(bt_node_get(s->docker_sd_configs->items[0], "host")->str,
                     "unix:///var/run/docker.sock");
    cr_assert_eq(s->start_at, BT_START_BEGINNING);
    s = &c->scrapes[2];
    cr_assert_not_null(s->docker, "a bare docker: key switches the target on");
    cr_assert(bt_node_is_null(s->docker));

    cr_assert(c->limits.readline_rate_enabled);
    cr_assert_float_eq(c->limits.readline_rate, 250.5, 1e-9);
    cr_assert_eq(c->limits.readline_burst, 500);
    cr_assert_not(c->limits.readline_rate_drop);
    cr_assert_eq(c->limits.max_streams, 1000);
    cr_assert_eq(c->limits.max_line_size, 256000);
    cr_assert(c->limits.max_line_size_truncate);
    cr_assert_eq(c->target.sync_period_ns, 20 * SEC);
    cr_assert_eq(c->agent.memory_limit, 128u << 20);
    cr_assert_eq(c->agent.shutdown_timeout_ns, 8 * SEC);
    cr_assert_str_eq(c->agent.watcher, "inotify");
    cr_assert_eq(c->agent.line_flush_timeout_ns, 2 * SEC);
    cr_assert_eq(c->agent.rotate_grace_ns, 10 * SEC);
    cr_assert_eq(c->agent.idle_close_ns, 0);
    cr_assert_eq(c->agent.read_buffer, 1u << 20);
    cr_assert_eq(c->agent.max_open_files, 512);
    cr_assert_not(c->agent.fingerprint_check);
    cr_assert_eq(c->fim->type, BT_NODE_MAP);
    cr_assert_not_null(bt_node_get(c->fim, "paths"));
    bt_config_free(c);
}

/* ---- promtail's documented examples ---- */

Test(config, promtail_local_example_parses)
{
    struct bt_config *c = load_sample(DATA "promtail-local.yaml");
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->server.http_listen_port, 9080);
    cr_assert_eq(c->server.grpc_listen_port, 0);
    cr_assert_str_eq(c->positions.filename, "/tmp/positions.yaml");
    cr_assert_str_eq(c->clients[0].url, URL);
    cr_assert_eq(c->n_scrapes, 1);
    cr_assert_str_eq(c->scrapes[0].job_name, "system");
    cr_assert_str_eq(bt_labels_get(&c->scrapes[0].statics[0].labels, "__path__"), "/var/log/*log");
    cr_assert_str_eq(bt_labels_canon(&c->scrapes[0].statics[0].labels, NULL), "{job=\"varlogs\"}");
    bt_config_free(c);
}

Test(config, promtail_static_example_with_path_exclude_parses)
{
    struct bt_config *c = load_sample(DATA "promtail-static-exclude.yaml");
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->positions.sync_period_ns, 5 * SEC);
    cr_assert_eq(c->n_scrapes, 2);
    const struct bt_labels *l = &c->scrapes[0].statics[0].labels;
    cr_assert_str_eq(bt_labels_get(l, "__path_exclude__"), "/var/log/*.gz");
    cr_assert_str_eq(bt_labels_get(l, "host"), "web-1");
    cr_assert_eq(c->scrapes[0].relabel_configs->n, 0, "empty list kept as an empty node");
    cr_assert_eq(c->scrapes[0].pipeline_stages->n, 0);
    cr_assert_eq(c->scrapes[1].statics[0].n_targets, 0, "targets are optional");
    cr_assert_str_eq(bt_labels_get(&c->scrapes[1].statics[0].labels, "__path__"),
                     "/var/log/nginx/{access,error}.log");
    bt_config_free(c);
}

Test(config, promtail_multi_client_example_parses)
{
    struct bt_config *c = load_sample(DATA "promtail-multi-client.yaml");
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(c->server.log_level, "warn");
    cr_assert_eq(c->n_clients, 3);
    cr_assert_str_eq(c->clients[0].tenant_id, "team-a");
    cr_assert_eq(c->clients[0].batchwait_ns, 2 * SEC);
    cr_assert_eq(c->clients[0].batchsize, 524288);
    cr_assert_str_eq(bt_labels_get(&c->clients[0].external_labels, "cluster"), "prod");
    cr_assert_str_eq(c->clients[1].tenant_id, "team-b");
    cr_assert_eq(c->clients[1].min_backoff_ns, 1 * SEC);
    cr_assert_eq(c->clients[1].max_backoff_ns, 60 * SEC);
    cr_assert_eq(c->clients[1].max_retries, 20);
    cr_assert_str_eq(c->clients[2].name, "hosted");
    cr_assert_str_eq(c->clients[2].basic_username, "123456");
    cr_assert_str_eq(c->clients[2].basic_password, "s3cr3t-p4ss");
    cr_assert_eq(c->clients[2].timeout_ns, 30 * SEC);
    /* Two tenants on one Loki share a host; their derived names must still differ. */
    cr_assert_str_eq(c->clients[0].name, "loki:3100");
    cr_assert_str_eq(c->clients[1].name, "loki:3100-2");
    bt_config_free(c);
}

Test(config, promtail_docker_stage_example_keeps_stages_as_nodes)
{
    struct bt_config *c = load_sample(DATA "promtail-docker-stage.yaml");
    cr_assert_not_null(c, "%s", err);
    const struct bt_node *st = c->scrapes[0].pipeline_stages;
    cr_assert_eq(st->type, BT_NODE_SEQ);
    cr_assert_eq(st->n, 2);
    const struct bt_node *docker = bt_node_get(st->items[0], "docker");
    cr_assert_not_null(docker);
    cr_assert_eq(docker->type, BT_NODE_MAP);
    cr_assert_eq(docker->n, 0);
    cr_assert_eq(docker->line, 18);
    bt_config_free(c);
}

Test(config, promtail_journal_and_file_sd_blocks_are_kept_as_nodes)
{
    struct bt_config *c = load_sample(DATA "promtail-journal.yaml");
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->n_scrapes, 2);
    const struct bt_node *j = c->scrapes[0].journal;
    cr_assert_not_null(j);
    cr_assert_str_eq(bt_node_get(j, "max_age")->str, "12h");
    cr_assert_null(c->scrapes[0].file_sd_configs);
    const struct bt_node *fs = c->scrapes[1].file_sd_configs;
    cr_assert_not_null(fs);
    cr_assert_eq(fs->type, BT_NODE_SEQ);
    cr_assert_eq(fs->n, 1);
    cr_assert_null(c->scrapes[1].journal);
    bt_config_free(c);
    /* `journal:` alone switches the target on with promtail's defaults. */
    c = parse(MIN_CFG "scrape_configs:\n  - job_name: j\n    journal:\n");
    cr_assert_not_null(c, "%s", err);
    cr_assert_not_null(c->scrapes[0].journal);
    bt_config_free(c);
}

Test(config, shipped_example_configs_parse)
{
    static const char *const files[] = {"config/bpftail.yaml", "config/promtail-local.yaml",
                                        "config/promtail-docker.yaml"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", BT_SOURCE_DIR, files[i]);
        struct bt_cli cli = cli_for(path);
        cli.expand_env = true;
        struct bt_config *c = bt_config_load(&cli, err, sizeof(err));
        cr_assert_not_null(c, "%s: %s", files[i], err);
        cr_assert_geq(c->n_scrapes, 1, "%s", files[i]);
        bt_config_free(c);
    }
}

/* ---- errors ---- */

Test(config, unknown_key_names_file_line_and_path)
{
    parse_fails(MIN_CFG "    batch_wait: 1s\n",
                "c.yaml:3:5: unknown key \"batch_wait\" in clients[0]", NULL);
    parse_fails(MIN_CFG "server:\n  http_port: 1\n",
                "c.yaml:4:3: unknown key \"http_port\" in server", NULL);
    parse_fails(MIN_CFG "clientz: []\n", "c.yaml:3:1: unknown key \"clientz\" at top level", NULL);
    parse_fails(MIN_CFG "    backoff_config:\n      min: 1s\n",
                "c.yaml:4:7: unknown key \"min\" in clients[0].backoff_config", NULL);
    parse_fails(MIN_CFG "scrape_configs:\n  - job_name: a\n    static_configs:\n"
                        "      - targets: [x]\n        lables: {a: b}\n",
                "c.yaml:7:9: unknown key \"lables\" in scrape_configs[0].static_configs[0]", NULL);
}

Test(config, bad_values_name_the_key_and_line)
{
    parse_fails(MIN_CFG "    batchwait: soon\n",
                "c.yaml:3:16: clients[0].batchwait: invalid duration", "soon");
    parse_fails(MIN_CFG "    timeout: -5s\n", "c.yaml:3:14: clients[0].timeout", "negative");
    parse_fails(MIN_CFG "    batchsize: lots\n", "clients[0].batchsize: invalid byte size", NULL);
    parse_fails(MIN_CFG "limits_config:\n  max_line_size: 1ZB\n",
                "c.yaml:4:18: limits_config.max_line_size: invalid byte size", NULL);
    parse_fails(MIN_CFG "server:\n  http_listen_port: 70000\n",
                "c.yaml:4:21: server.http_listen_port: 70000 is out of range", NULL);
    parse_fails(MIN_CFG "server:\n  http_listen_port: eighty\n", "expected an integer", NULL);
    parse_fails(MIN_CFG "server:\n  disable: maybe\n", "server.disable: expected true or false",
                NULL);
    parse_fails(MIN_CFG "server:\n  http_listen_port: {a: 1}\n",
                "c.yaml:4:21: server.http_listen_port: expected an integer, got a map", NULL);
    parse_fails(MIN_CFG "server: [1]\n", "c.yaml:3:9: server: expected a map, got a list", NULL);
    parse_fails(MIN_CFG "server:\n  log_level: loud\n", "server.log_level", "debug, info");
    parse_fails(MIN_CFG "server:\n  log_format: xml\n", "server.log_format", "logfmt or json");
    parse_fails(MIN_CFG "bpftail:\n  watcher: magic\n", "bpftail.watcher", "fanotify");
    parse_fails(MIN_CFG "bpftail:\n  read_buffer: 10\n", "read_buffer", "4KiB");
    parse_fails(MIN_CFG "scrape_configs:\n  - job_name: a\n    start_at: middle\n",
                "c.yaml:5:15: scrape_configs[0].start_at: expected beginning or end", NULL);
    parse_fails(MIN_CFG "scrape_configs:\n  - job_name: a\n    pipeline_stages: {docker: {}}\n",
                "scrape_configs[0].pipeline_stages: expected a list, got a map", NULL);
    parse_fails(MIN_CFG "limits_config:\n  readline_rate: -1\n", "readline_rate", "non-negative");
    parse_fails("- a\n- b\n", "c.yaml:1:1: expected a map of config blocks", NULL);
}

Test(config, client_without_url_is_an_error)
{
    parse_fails(MIN_CFG "  - tenant_id: x\n", "c.yaml:3:5: clients[1]: url is required", NULL);
    parse_fails("clients:\n  - url: localhost:3100\n", "must start with http:// or https://", NULL);
    parse_fails("clients:\n  - url: http:///path\n", "has no host", NULL);
    parse_fails("clients: []\n", "no clients configured", "-client.url");
    parse_fails("", "no clients configured", NULL);
}

Test(config, duplicate_job_name_is_an_error)
{
    parse_fails(MIN_CFG "scrape_configs:\n  - job_name: a\n  - job_name: b\n  - job_name: a\n",
                "c.yaml:6:15: scrape_configs[2]: duplicate job_name \"a\" (first at line 4)", NULL);
    parse_fails(MIN_CFG "scrape_configs:\n  - static_configs: []\n",
                "scrape_configs[0]: job_name is required", NULL);
}

Test(config, auth_methods_are_mutually_exclusive)
{
    parse_fails(MIN_CFG "    bearer_token: a\n    bearer_token_file: /f\n",
                "clients[0]: at most one of bearer_token and bearer_token_file", NULL);
    parse_fails(MIN_CFG "    bearer_token: a\n    basic_auth: {username: u}\n",
                "at most one of basic_auth, bearer_token", NULL);
    parse_fails(MIN_CFG "    basic_auth: {username: u, password: p, password_file: /f}\n",
                "at most one of password and password_file", NULL);
    parse_fails(MIN_CFG "    tls_config: {cert_file: /c}\n", "cert_file and key_file", NULL);
}

Test(config, client_fields_are_validated)
{
    parse_fails(MIN_CFG "    tenant_id: a|b\n", "tenant_id \"a|b\"", NULL);
    parse_fails(MIN_CFG "    headers: {X-Scope-OrgID: t}\n", "set by bpftail; use tenant_id", NULL);
    parse_fails(MIN_CFG "    headers: {\"bad header\": t}\n", "invalid header name", NULL);
    parse_fails(MIN_CFG "    headers: {X-A: \"a\\r\\nX-B: b\"}\n", "CR, LF", NULL);
    parse_fails(MIN_CFG "    external_labels: {1abc: x}\n", "\"1abc\" is not a valid label name",
                NULL);
    parse_fails(MIN_CFG "    backoff_config: {min_period: 10s, max_period: 1s}\n",
                "min_period <= max_period", NULL);
    parse_fails(MIN_CFG "    batchwait: 0s\n", "batchwait must be greater than 0", NULL);
    parse_fails(MIN_CFG "    name: a\n  - url: " URL "\n    name: a\n", "clients[1]",
                "duplicate client name \"a\"");
    parse_fails(MIN_CFG "    http_headers: {X-A: {values: [a]}}\n",
                "clients[0].http_headers: not supported by bpftail", "use headers");
}

Test(config, authorization_oauth2_and_http_options_are_read)
{
    struct bt_config *c =
        parse(MIN_CFG "    authorization: {type: Token, credentials_file: /f}\n"
                      "    follow_redirects: false\n"
                      "    enable_http2: true\n"
                      "    proxy_url: http://proxy:3128\n"
                      "    no_proxy: localhost,10.0.0.0/8\n"
                      "    proxy_connect_header:\n"
                      "      Proxy-Authorization: [Basic eA==, other]\n"
                      "    tls_config: {min_version: TLS12, max_version: TLS13}\n");
    const struct bt_client_config *cl = &c->clients[0];
    cr_assert(cl->auth_set);
    cr_assert_str_eq(cl->auth_type, "Token");
    cr_assert_str_eq(cl->auth_credentials_file, "/f");
    cr_assert_not(cl->follow_redirects);
    cr_assert(cl->enable_http2);
    cr_assert_str_eq(cl->no_proxy, "localhost,10.0.0.0/8");
    cr_assert_eq(cl->n_proxy_connect_headers, 2);
    cr_assert_str_eq(cl->proxy_connect_headers[1].value, "other");
    cr_assert_str_eq(cl->tls.min_version, "TLS12");
    bt_config_free(c);

    c = parse(MIN_CFG "    oauth2:\n"
                      "      client_id: id\n"
                      "      client_secret_file: /s\n"
                      "      scopes: [logs.write, openid]\n"
                      "      token_url: https://auth.example.com/token\n"
                      "      endpoint_params: {audience: loki}\n"
                      "      tls_config: {insecure_skip_verify: true}\n"
                      "      proxy_url: http://proxy:3128\n");
    cl = &c->clients[0];
    cr_assert(cl->oauth2.set);
    cr_assert_str_eq(cl->oauth2.client_id, "id");
    cr_assert_eq(cl->oauth2.n_scopes, 2);
    cr_assert_str_eq(cl->oauth2.scopes[1], "openid");
    cr_assert_eq(cl->oauth2.n_params, 1);
    cr_assert_str_eq(cl->oauth2.params[0].value, "loki");
    cr_assert(cl->oauth2.tls.insecure_skip_verify);
    /* Defaults: redirects followed (promtail 2.9+), HTTP/2 off (promtail never uses it). */
    bt_config_free(c);
    c = parse(MIN_CFG);
    cr_assert(c->clients[0].follow_redirects);
    cr_assert_not(c->clients[0].enable_http2);
    cr_assert_not(c->clients[0].auth_set);
    bt_config_free(c);
}

Test(config, authorization_and_oauth2_follow_prometheus_rules)
{
    parse_fails(MIN_CFG "    authorization: {credentials: a, credentials_file: /f}\n",
                "at most one of credentials and credentials_file", NULL);
    parse_fails(MIN_CFG "    authorization: {type: basic, credentials: a}\n", "use basic_auth",
                NULL);
    parse_fails(MIN_CFG "    authorization: {credentials: a}\n    bearer_token: b\n",
                "authorization is not compatible with bearer_token", NULL);
    parse_fails(MIN_CFG "    authorization: {credentials: a}\n    basic_auth: {username: u}\n",
                "at most one of basic_auth, oauth2 and authorization", NULL);
    parse_fails(MIN_CFG "    authorization: {credentials_ref: x}\n",
                "clients[0].authorization.credentials_ref: not supported", "_file");
    parse_fails(MIN_CFG "    oauth2: {client_id: a, token_url: http://t/}\n    bearer_token: b\n",
                "at most one of basic_auth, bearer_token", NULL);
    parse_fails(MIN_CFG "    oauth2: {client_id: a}\n", "oauth2: token_url is required", NULL);
    parse_fails(MIN_CFG "    oauth2: {token_url: ftp://t/}\n", "oauth2.token_url", "http://");
    parse_fails(MIN_CFG "    oauth2: {token_url: http://t/, client_secret: a, "
                        "client_secret_file: /f}\n",
                "at most one of client_secret and client_secret_file", NULL);
    parse_fails(MIN_CFG "    oauth2: {token_url: http://t/, tls_config: {server_name: x}}\n",
                "oauth2.tls_config.server_name: not supported by bpftail", NULL);
    parse_fails(MIN_CFG "    no_proxy: localhost\n", "no_proxy needs proxy_url", NULL);
    parse_fails(MIN_CFG "    proxy_url: http://p/\n    proxy_from_environment: true\n",
                "exclude each other", NULL);
    parse_fails(MIN_CFG "    tls_config: {min_version: TLS14}\n", "TLS10, TLS11", NULL);
    parse_fails(MIN_CFG "    tls_config: {min_version: TLS13, max_version: TLS12}\n",
                "above max_version", NULL);
    parse_fails(MIN_CFG "    follow_redirects: maybe\n", "clients[0].follow_redirects",
                "true or false");
}

Test(config, receivers_are_kept_for_their_modules)
{
    struct bt_config *c = parse(MIN_CFG "scrape_configs:\n  - job_name: j\n    syslog: "
                                        "{listen_address: \":1514\"}\n  - job_name: k\n"
                                        "    loki_push_api: {server: {http_listen_port: 3500}}\n"
                                        "bpftail:\n  spool_dir: /var/lib/bpftail/spool\n"
                                        "  spool_max_bytes: 1GiB\n");
    cr_assert_not_null(c, "%s", err);
    cr_assert_not_null(c->scrapes[0].syslog);
    cr_assert_not_null(c->scrapes[1].loki_push_api);
    cr_assert_str_eq(c->agent.spool_dir, "/var/lib/bpftail/spool");
    cr_assert_eq(c->agent.spool_max_bytes, 1ull << 30);
    bt_config_free(c);
}

Test(config, unsupported_promtail_features_say_so)
{
    parse_fails(MIN_CFG "scrape_configs:\n  - job_name: j\n    kafka: {brokers: [x]}\n",
                "c.yaml:5:5: scrape_configs[0].kafka: not supported by bpftail", NULL);
    parse_fails(MIN_CFG "scrape_configs:\n  - job_name: k\n    consul_sd_configs: []\n",
                "scrape_configs[0].consul_sd_configs: not supported by bpftail", NULL);
    parse_fails(MIN_CFG "tracing:\n  enabled: true\n",
                "c.yaml:4:3: tracing: not supported by bpftail", NULL);
    parse_fails(MIN_CFG "wal:\n  enabled: true\n  dir: /wal\n", "wal: not supported by bpftail",
                NULL);
    struct bt_config *c = parse(MIN_CFG "tracing: {enabled: false}\nwal: {enabled: false}\n");
    cr_assert_not_null(c, "switched-off blocks are harmless: %s", err);
    bt_config_free(c);
}

Test(config, label_names_are_validated)
{
    parse_fails(MIN_CFG "scrape_configs:\n  - job_name: a\n    static_configs:\n"
                        "      - labels:\n          job: x\n          bad-name: y\n",
                "c.yaml:8:11: scrape_configs[0].static_configs[0].labels: \"bad-name\" is not a "
                "valid label name",
                NULL);
    parse_fails(MIN_CFG "scrape_configs:\n  - job_name: a\n    static_configs:\n"
                        "      - labels: {job: [x]}\n",
                "label job: expected a string value, got a list", NULL);
}

Test(config, empty_label_value_removes_the_label)
{
    struct bt_config *c = parse(MIN_CFG "scrape_configs:\n  - job_name: a\n    static_configs:\n"
                                        "      - labels: {job: x, empty: \"\", none: }\n");
    cr_assert_not_null(c, "%s", err);
    const struct bt_labels *l = &c->scrapes[0].statics[0].labels;
    cr_assert_eq(l->n, 1);
    cr_assert_str_eq(bt_labels_get(l, "job"), "x");
    bt_config_free(c);
}

Test(config, null_values_keep_defaults)
{
    struct bt_config *c = parse(MIN_CFG "    batchwait:\n    tenant_id: ~\nserver:\npositions:\n");
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->clients[0].batchwait_ns, 1 * SEC);
    cr_assert_null(c->clients[0].tenant_id);
    cr_assert_eq(c->server.http_listen_port, 80);
    bt_config_free(c);
}

Test(config, port_zero_means_ephemeral_and_is_accepted)
{
    struct bt_config *c = parse(MIN_CFG "server:\n  http_listen_port: 0\n");
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->server.http_listen_port, 0);
    bt_config_free(c);
}

Test(config, single_client_block_is_merged_into_clients)
{
    struct bt_config *c = parse("client:\n  url: http://a:3100/loki/api/v1/push\n"
                                "  tenant_id: t1\n"
                                "clients:\n  - url: http://b:3100/loki/api/v1/push\n");
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->n_clients, 2);
    cr_assert_str_eq(c->clients[0].url, "http://a:3100/loki/api/v1/push");
    cr_assert_str_eq(c->clients[0].tenant_id, "t1");
    cr_assert_str_eq(c->clients[1].url, "http://b:3100/loki/api/v1/push");
    bt_config_free(c);
    parse_fails("client:\n  url: http://a:3100/x\n  bogus: 1\n",
                "c.yaml:3:3: unknown key \"bogus\" in client", NULL);
}

Test(config, derived_client_name_drops_user_info)
{
    struct bt_config *c =
        parse("clients:\n  - url: https://u:p@logs.example.net/loki/api/v1/push\n");
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(c->clients[0].name, "logs.example.net");
    bt_config_free(c);
}

/* Every bad-*.yaml sample fails with a message that names its line and the problem. */
struct bad_case {
    const char *file, *where, *what;
};
static const struct bad_case bad_cases[] = {
    {"bad-unknown-client-key.yaml", ":3:5:", "unknown key \"batch_wait\" in clients[0]"},
    {"bad-duration.yaml", ":4:19:", "clients[0].backoff_config.min_period: invalid duration"},
    {"bad-type.yaml", ":2:21:", "server.http_listen_port: expected an integer, got a list"},
    {"bad-size.yaml", ":4:18:", "limits_config.max_line_size: invalid byte size"},
    {"bad-missing-url.yaml", ":3:5:", "clients[1]: url is required"},
    {"bad-duplicate-job.yaml", ":7:15:", "duplicate job_name \"system\""},
    {"bad-windows-events.yaml", ":5:5:", "windows_events: not supported by bpftail"},
    {"bad-tracing.yaml", ":4:3:", "tracing: not supported by bpftail"},
    {"bad-auth.yaml", ":2:5:", "at most one of basic_auth, bearer_token"},
    {"bad-label-name.yaml", ":8:11:", "\"bad-name\" is not a valid label name"},
    {"bad-syntax.yaml", ":5:", "expected"},
    {"bad-top-level.yaml", ":3:1:", "unknown key \"scrape_config\" at top level"},
};

Test(config, every_bad_sample_fails_naming_its_line)
{
    size_t n = sizeof(bad_cases) / sizeof(bad_cases[0]);
    for (size_t i = 0; i < n; i++) {
        char path[512], want[600];
        snprintf(path, sizeof(path), DATA "%s", bad_cases[i].file);
        struct bt_config *c = load_sample(path);
        cr_expect_null(c, "%s should fail", bad_cases[i].file);
        bt_config_free(c);
        snprintf(want, sizeof(want), "%s%s", path, bad_cases[i].where);
        cr_expect(strstr(err, want), "%s: \"%s\" lacks \"%s\"", bad_cases[i].file, err, want);
        cr_expect(strstr(err, bad_cases[i].what), "%s: \"%s\" lacks \"%s\"", bad_cases[i].file, err,
                  bad_cases[i].what);
    }
    /* Every bad sample on disk is covered by the table above. */
    DIR *d = opendir(DATA);
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "bad-", 4) != 0)
            continue;
        bool found = false;
        for (size_t i = 0; i < n; i++)
            found = found || strcmp(bad_cases[i].file, e->d_name) == 0;
        cr_expect(found, "%s has no expectation", e->d_name);
    }
    closedir(d);
}

/* ---- environment expansion ---- */

static char *expand(const char *s)
{
    err[0] = '\0';
    return bt_config_expand_env(s, strlen(s), err, sizeof(err));
}

static void expands_to(const char *in, const char *out)
{
    char *r = expand(in);
    cr_assert_not_null(r, "%s: %s", in, err);
    cr_assert_str_eq(r, out, "expanding \"%s\"", in);
    free(r);
}

Test(config_env, expands_set_unset_and_default_variables)
{
    setenv("BT_T_SET", "loki:3100", 1);
    setenv("BT_T_EMPTY", "", 1);
    unsetenv("BT_T_UNSET");
    expands_to("url: http://${BT_T_SET}/push", "url: http://loki:3100/push");
    expands_to("a: '${BT_T_UNSET}'", "a: ''");
    expands_to("a: ${BT_T_UNSET:-fallback}", "a: fallback");
    expands_to("a: ${BT_T_SET:-fallback}", "a: loki:3100");
    expands_to("a: ${BT_T_EMPTY:-fallback}", "a: fallback");
    expands_to("a: ${BT_T_UNSET:-}", "a: ");
    expands_to("a: ${BT_T_UNSET:-${BT_T_SET}}", "a: loki:3100");
    expands_to("a: ${BT_T_UNSET:-http://h:1/${BT_T_UNSET:-x}}", "a: http://h:1/x");
}

Test(config_env, double_dollar_is_a_literal_dollar_and_lone_dollars_stay)
{
    setenv("BT_T_SET", "v", 1);
    expands_to("a: $${BT_T_SET}", "a: ${BT_T_SET}");
    expands_to("regex: '^(.*)$'\nreplacement: $1 $$", "regex: '^(.*)$'\nreplacement: $1 $");
    expands_to("$", "$");
    expands_to("", "");
}

Test(config_env, bad_expansions_name_their_position)
{
    cr_assert_null(expand("a: 1\nb: ${OPEN\n"));
    cr_assert_str_eq(err, "2:4: unterminated \"${\"");
    cr_assert_null(expand("a: ${1BAD}"));
    cr_assert(strstr(err, "1:4: unsupported expansion \"${1BAD}\""), "%s", err);
    cr_assert_null(expand("a: ${X:=y}"));
    cr_assert(strstr(err, "use ${VAR} or ${VAR:-default}"), "%s", err);
    cr_assert_null(expand("a: ${}"));
}

Test(config_env, load_expands_only_when_asked)
{
    char dir[256], path[512];
    cr_assert_eq(bt_tmpdir_make(dir, sizeof(dir)), 0);
    const char *text = "clients:\n  - url: ${BT_T_LOKI:-http://fallback:3100}/loki/api/v1/push\n"
                       "    tenant_id: ${BT_T_TENANT}\n";
    cr_assert_eq(bt_tmpdir_write(dir, "c.yaml", text, strlen(text)), 0);
    snprintf(path, sizeof(path), "%s/c.yaml", dir);
    setenv("BT_T_TENANT", "acme", 1);
    unsetenv("BT_T_LOKI");

    struct bt_cli cli = cli_for(path);
    cli.expand_env = true;
    struct bt_config *c = bt_config_load(&cli, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(c->clients[0].url, "http://fallback:3100/loki/api/v1/push");
    cr_assert_str_eq(c->clients[0].tenant_id, "acme");
    bt_config_free(c);

    setenv("BT_T_LOKI", "https://other", 1);
    c = bt_config_load(&cli, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(c->clients[0].url, "https://other/loki/api/v1/push");
    bt_config_free(c);

    cli.expand_env = false;
    c = bt_config_load(&cli, err, sizeof(err));
    cr_assert_null(c);
    cr_assert(strstr(err, "-config.expand-env=true"), "%s", err);

    const char *bad = "clients:\n  - url: ${OOPS\n";
    cr_assert_eq(bt_tmpdir_write(dir, "bad.yaml", bad, strlen(bad)), 0);
    snprintf(path, sizeof(path), "%s/bad.yaml", dir);
    cli = cli_for(path);
    cli.expand_env = true;
    cr_assert_null(bt_config_load(&cli, err, sizeof(err)));
    char want[600];
    snprintf(want, sizeof(want), "%s:2:10: unterminated", path);
    cr_assert(strstr(err, want), "%s", err);
    bt_tmpdir_remove(dir);
}

Test(config, missing_file_is_an_error_naming_it)
{
    char dir[256], path[512];
    cr_assert_eq(bt_tmpdir_make(dir, sizeof(dir)), 0);
    snprintf(path, sizeof(path), "%s/absent.yaml", dir);
    struct bt_config *c = load_sample(path);
    cr_assert_null(c);
    cr_assert(strstr(err, path) && strstr(err, "No such file"), "%s", err);
    c = load_sample(dir);
    cr_assert_null(c, "a directory is not a config file");
    cr_assert(strstr(err, "regular file"), "%s", err);
    bt_tmpdir_remove(dir);
}

/* ---- built-in default ---- */

Test(config, builtin_default_is_used_without_a_file_and_expands_loki_url)
{
    unsetenv("LOKI_URL");
    struct bt_cli cli = cli_for(NULL);
    struct bt_config *c = bt_config_load(&cli, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_assert_null(c->path);
    cr_assert_eq(c->server.http_listen_port, 9080);
    cr_assert_str_eq(c->positions.filename, "/tmp/bpftail-positions.yaml");
    cr_assert_eq(c->n_clients, 1);
    cr_assert_str_eq(c->clients[0].url, URL);
    cr_assert_eq(c->n_scrapes, 1);
    cr_assert_str_eq(c->scrapes[0].job_name, "system");
    cr_assert_str_eq(c->scrapes[0].statics[0].targets[0], "localhost");
    cr_assert_str_eq(bt_labels_get(&c->scrapes[0].statics[0].labels, "job"), "varlogs");
    cr_assert_str_eq(bt_labels_get(&c->scrapes[0].statics[0].labels, "__path__"), "/var/log/*log");
    bt_config_free(c);

    setenv("LOKI_URL", "https://loki.example:443", 1);
    c = bt_config_load(&cli, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(c->clients[0].url, "https://loki.example:443/loki/api/v1/push");
    bt_config_free(c);
    unsetenv("LOKI_URL");
}

Test(config, shipped_bpftail_yaml_equals_the_builtin_default)
{
    FILE *f = fopen(BT_SOURCE_DIR "/config/bpftail.yaml", "r");
    cr_assert_not_null(f);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    cr_assert_str_eq(buf, bt_default_config);
}

/* ---- flags override the file ---- */

Test(config, flags_override_file_values)
{
    struct bt_cli cli = cli_for(DATA "promtail-multi-client.yaml");
    cli.http_port = 0;
    cli.log_level = "debug";
    cli.positions_file = "/tmp/p.yaml";
    cli.client_url = "http://override:3100/loki/api/v1/push";
    cli.client_tenant = "flag-tenant";
    struct bt_config *c = bt_config_load(&cli, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->server.http_listen_port, 0);
    cr_assert_str_eq(c->server.log_level, "debug");
    cr_assert_str_eq(c->positions.filename, "/tmp/p.yaml");
    cr_assert_eq(c->n_clients, 3);
    for (size_t i = 0; i < c->n_clients; i++) {
        cr_assert_str_eq(c->clients[i].url, "http://override:3100/loki/api/v1/push");
        cr_assert_str_eq(c->clients[i].tenant_id, "flag-tenant");
    }
    cr_assert_str_eq(c->clients[0].name, "override:3100");
    cr_assert_str_eq(c->clients[1].name, "override:3100-2");
    cr_assert_str_eq(c->clients[2].name, "hosted");
    bt_config_free(c);
}

Test(config, client_url_flag_adds_a_client_or_fills_a_missing_url)
{
    char dir[256], path[512];
    cr_assert_eq(bt_tmpdir_make(dir, sizeof(dir)), 0);
    const char *text = "clients:\n  - tenant_id: t\n";
    cr_assert_eq(bt_tmpdir_write(dir, "c.yaml", text, strlen(text)), 0);
    snprintf(path, sizeof(path), "%s/c.yaml", dir);
    struct bt_cli cli = cli_for(path);
    cr_assert_null(bt_config_load(&cli, err, sizeof(err)), "no url without the flag");
    cli.client_url = "http://flag:3100/loki/api/v1/push";
    struct bt_config *c = bt_config_load(&cli, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_assert_str_eq(c->clients[0].url, "http://flag:3100/loki/api/v1/push");
    cr_assert_str_eq(c->clients[0].tenant_id, "t");
    bt_config_free(c);

    cr_assert_eq(bt_tmpdir_write(dir, "c.yaml", "server: {}\n", 11), 0);
    c = bt_config_load(&cli, err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->n_clients, 1);
    cr_assert_eq(c->clients[0].batchsize, 1048576, "a flag-made client has the defaults");
    bt_config_free(c);

    cli.log_level = "chatty";
    cr_assert_null(bt_config_load(&cli, err, sizeof(err)));
    cr_assert(strstr(err, "-log.level"), "%s", err);
    bt_tmpdir_remove(dir);
}

/* ---- dump ---- */

Test(config, dump_masks_secrets)
{
    struct bt_config *c = load_sample(DATA "bpftail-full.yaml");
    cr_assert_not_null(c, "%s", err);
    free(c->clients[1].bearer_token);
    c->clients[1].bearer_token = strdup("tok-xyz");
    struct bt_buf out;
    bt_buf_init(&out, 1 << 20);
    cr_assert_eq(bt_config_dump(c, &out), 0);
    const char *s = bt_buf_str(&out);
    cr_assert_null(strstr(s, "tok-xyz"), "bearer token leaked:\n%s", s);
    cr_assert_null(strstr(s, ":pw@"), "URL password leaked:\n%s", s);
    cr_assert_null(strstr(s, "abc123"), "API key header leaked:\n%s", s);
    cr_assert(strstr(s, "https://user:<secret>@loki.example:8443/"), "%s", s);
    cr_assert(strstr(s, "bearer_token: \"<secret>\""), "%s", s);
    cr_assert(strstr(s, "X-Team: \"infra\""), "%s", s);
    bt_buf_free(&out);
    bt_config_free(c);

    c = load_sample(DATA "promtail-multi-client.yaml");
    cr_assert_not_null(c, "%s", err);
    bt_buf_init(&out, 1 << 20);
    cr_assert_eq(bt_config_dump(c, &out), 0);
    cr_assert_null(strstr(bt_buf_str(&out), "s3cr3t"), "%s", bt_buf_str(&out));
    cr_assert(strstr(bt_buf_str(&out), "password: \"<secret>\""));
    bt_buf_free(&out);
    bt_config_free(c);
}

static char *dump(const struct bt_config *c)
{
    struct bt_buf out;
    bt_buf_init(&out, 1 << 20);
    cr_assert_eq(bt_config_dump(c, &out), 0);
    return bt_buf_take(&out, NULL);
}

Test(config, dump_of_auth_oauth2_and_proxy_keys_parses_back_and_hides_secrets)
{
    struct bt_config *c =
        parse("server:\n  http_path_prefix: /agent\n"
              "clients:\n"
              "  - url: " URL "\n"
              "    authorization: {type: Token, credentials: cred-xyz}\n"
              "    proxy_url: http://proxy:3128\n"
              "    no_proxy: localhost\n"
              "    proxy_connect_header: {Proxy-Authorization: [Basic pc-xyz, two]}\n"
              "    follow_redirects: false\n"
              "    enable_http2: true\n"
              "    tls_config: {ca: \"PEM\", key: key-xyz, cert: C, min_version: TLS12}\n"
              "  - url: " URL "\n"
              "    oauth2:\n"
              "      client_id: id\n"
              "      client_secret: cs-xyz\n"
              "      scopes: [a, b]\n"
              "      token_url: https://auth/token\n"
              "      endpoint_params: {audience: loki}\n"
              "      tls_config: {insecure_skip_verify: true}\n"
              "      proxy_from_environment: true\n");
    char *d1 = dump(c);
    cr_assert_null(strstr(d1, "xyz"), "a secret leaked:\n%s", d1);
    struct bt_config *c2 = bt_config_parse(d1, strlen(d1), "dump", err, sizeof(err));
    cr_assert_not_null(c2, "dump does not parse: %s\n%s", err, d1);
    char *d2 = dump(c2);
    cr_assert_str_eq(d1, d2);
    cr_assert_str_eq(c2->server.http_path_prefix, "/agent");
    cr_assert_not(c2->clients[0].follow_redirects);
    cr_assert(c2->clients[0].enable_http2);
    cr_assert_str_eq(c2->clients[0].auth_type, "Token");
    cr_assert_eq(c2->clients[1].oauth2.n_scopes, 2);
    cr_assert(c2->clients[1].oauth2.proxy_from_environment);
    free(d1);
    free(d2);
    bt_config_free(c);
    bt_config_free(c2);
}

Test(config, dump_parses_back_to_the_same_config)
{
    static const char *const files[] = {
        "bpftail-full.yaml",          "promtail-local.yaml",        "promtail-static-exclude.yaml",
        "promtail-multi-client.yaml", "promtail-docker-stage.yaml", "promtail-journal.yaml",
        "promtail-receivers.yaml"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[512];
        snprintf(path, sizeof(path), DATA "%s", files[i]);
        struct bt_config *c = load_sample(path);
        cr_assert_not_null(c, "%s", err);
        char *d1 = dump(c);
        struct bt_config *c2 = bt_config_parse(d1, strlen(d1), "dump", err, sizeof(err));
        cr_assert_not_null(c2, "%s: dump does not parse: %s\n%s", files[i], err, d1);
        char *d2 = dump(c2);
        cr_assert_str_eq(d1, d2, "%s: dump changed after a round trip", files[i]);
        cr_assert_eq(c2->n_scrapes, c->n_scrapes);
        cr_assert_eq(c2->clients[0].batchwait_ns, c->clients[0].batchwait_ns);
        free(d1);
        free(d2);
        bt_config_free(c);
        bt_config_free(c2);
    }
}

Test(config, dump_writes_durations_exactly)
{
    struct bt_config *c = parse(MIN_CFG "    batchwait: 1500ms\n    timeout: 1h30m\n"
                                        "    max_age: 250us\n");
    cr_assert_not_null(c, "%s", err);
    char *d = dump(c);
    cr_assert(strstr(d, "batchwait: 1500ms\n"), "%s", d);
    cr_assert(strstr(d, "timeout: 1h30m\n"), "%s", d);
    cr_assert(strstr(d, "max_age: 250us\n"), "%s", d);
    free(d);
    bt_config_free(c);
}

Test(config, max_in_flight_is_read_dumped_and_bounded)
{
    struct bt_config *c = parse(MIN_CFG "    max_in_flight: 1\n");
    cr_assert_not_null(c, "%s", err);
    cr_assert_eq(c->clients[0].max_in_flight, 1);
    char *d = dump(c);
    cr_assert(strstr(d, "max_in_flight: 1\n"), "%s", d);
    free(d);
    bt_config_free(c);
    cr_assert_null(parse(MIN_CFG "    max_in_flight: 0\n"));
    cr_assert(strstr(err, "max_in_flight"), "%s", err);
    cr_assert_null(parse(MIN_CFG "    max_in_flight: 65\n"));
}

/* ---- command line ---- */

static int cli_parse(struct bt_cli *cli, int argc, char **argv)
{
    err[0] = '\0';
    return bt_cli_parse(argc, argv, cli, err, sizeof(err));
}

Test(cli, accepts_equals_and_separate_values_and_double_dashes)
{
    char *argv[] = {"bpftail",
                    "-config.file=/etc/a.yaml",
                    "--log.level",
                    "debug",
                    "-server.http-listen-port",
                    "0",
                    "--client.url=http://x:1/p",
                    "-client.tenant-id",
                    "t",
                    "-positions.file=/p.yaml",
                    NULL};
    struct bt_cli cli;
    cr_assert_eq(cli_parse(&cli, 10, argv), 0, "%s", err);
    cr_assert_str_eq(cli.config_file, "/etc/a.yaml");
    cr_assert_str_eq(cli.log_level, "debug");
    cr_assert_eq(cli.http_port, 0);
    cr_assert_str_eq(cli.client_url, "http://x:1/p");
    cr_assert_str_eq(cli.client_tenant, "t");
    cr_assert_str_eq(cli.positions_file, "/p.yaml");
    cr_assert_not(cli.expand_env);
}

Test(cli, boolean_flags_take_no_separate_value)
{
    char *argv[] = {"bpftail",        "-config.expand-env",     "-check-syntax=true", "--dry-run",
                    "-inspect=false", "-print-config-stderr=1", "-version=T",         NULL};
    struct bt_cli cli;
    cr_assert_eq(cli_parse(&cli, 7, argv), 0, "%s", err);
    cr_assert(cli.expand_env);
    cr_assert(cli.check_syntax);
    cr_assert(cli.dry_run);
    cr_assert_not(cli.inspect);
    cr_assert(cli.print_config);
    cr_assert(cli.version);
    cr_assert_eq(cli.http_port, -1, "not given");
    cr_assert_null(cli.config_file);

    char *argv2[] = {"bpftail", "-dry-run", "true", NULL};
    cr_assert_eq(cli_parse(&cli, 3, argv2), -EINVAL, "a bool does not eat the next argument");
    cr_assert(strstr(err, "unexpected argument \"true\""), "%s", err);
}

Test(cli, help_flags)
{
    struct bt_cli cli;
    char *a1[] = {"bpftail", "-h", NULL};
    cr_assert_eq(cli_parse(&cli, 2, a1), 0);
    cr_assert(cli.help);
    char *a2[] = {"bpftail", "--help", NULL};
    cr_assert_eq(cli_parse(&cli, 2, a2), 0);
    cr_assert(cli.help);
}

Test(cli, bad_flags_are_errors)
{
    struct bt_cli cli;
    char *a1[] = {"bpftail", "-config.fil=x", NULL};
    cr_assert_eq(cli_parse(&cli, 2, a1), -EINVAL);
    cr_assert(strstr(err, "unknown flag -config.fil"), "%s", err);
    char *a2[] = {"bpftail", "-config.file", NULL};
    cr_assert_eq(cli_parse(&cli, 2, a2), -EINVAL);
    cr_assert(strstr(err, "-config.file needs a value"), "%s", err);
    char *a3[] = {"bpftail", "-dry-run=maybe", NULL};
    cr_assert_eq(cli_parse(&cli, 2, a3), -EINVAL);
    cr_assert(strstr(err, "invalid boolean"), "%s", err);
    char *a4[] = {"bpftail", "-server.http-listen-port=99999", NULL};
    cr_assert_eq(cli_parse(&cli, 2, a4), -EINVAL);
    cr_assert(strstr(err, "invalid port"), "%s", err);
    char *a5[] = {"bpftail", "config.yaml", NULL};
    cr_assert_eq(cli_parse(&cli, 2, a5), -EINVAL);
    char *a6[] = {"bpftail", "---config.file=x", NULL};
    cr_assert_eq(cli_parse(&cli, 2, a6), -EINVAL);
}

Test(cli, usage_lists_every_flag, .init = cr_redirect_stdout)
{
    bt_cli_usage();
    fflush(stdout);
    static const char *const names[] = {
        "-config.file", "-config.expand-env", "-check-syntax",
        "-dry-run",     "-inspect",           "-print-config-stderr",
        "-log.level",   "-version",           "-server.http-listen-port",
        "-client.url",  "-client.tenant-id",  "-positions.file",
        "-help"};
    char buf[8192];
    FILE *f = cr_get_redirected_stdout();
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        cr_assert(strstr(buf, names[i]), "usage lacks %s:\n%s", names[i], buf);
}

/* Parsing never crashes on damaged input, and every failure still says where. */
static void check_damaged(const char *text, size_t len)
{
    char e[1024] = "";
    struct bt_config *c = bt_config_parse(text, len, "c.yaml", e, sizeof(e));
    if (c)
        bt_config_free(c);
    else
        cr_assert(strncmp(e, "c.yaml:", 7) == 0, "error without position: \"%s\" for:\n%.*s", e,
                  (int)len, text);
}

Test(config, damaged_configs_fail_cleanly_with_a_position)
{
    FILE *f = fopen(DATA "bpftail-full.yaml", "r");
    cr_assert_not_null(f);
    static char text[16384];
    size_t len = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    for (size_t cut = 0; cut < len; cut += 7)
        check_damaged(text, cut);
    /* Deterministic byte damage: each round changes a few bytes to YAML punctuation. */
    static const char punct[] = ":-[]{}\n #&*!|>'\"%@`,?";
    unsigned seed = 12345;
    static char copy[16384];
    for (int round = 0; round < 400; round++) {
        memcpy(copy, text, len);
        for (int k = 0; k < 3; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % len;
            seed = seed * 1103515245u + 12345u;
            copy[at] = punct[(seed >> 8) % (sizeof(punct) - 1)];
        }
        check_damaged(copy, len);
    }
}

Test(config, promtail_grpc_settings_and_external_url_are_accepted)
{
    /* bpftail serves no gRPC: the settings are checked for type, then ignored with one info log
     * line at start (agent/main.c); external_url only feeds promtail's web UI links */
    struct bt_config *c = parse(MIN_CFG "server:\n"
                                        "  grpc_listen_address: 127.0.0.1\n"
                                        "  grpc_server_max_recv_msg_size: 104857600\n"
                                        "  grpc_server_max_send_msg_size: 104857600\n"
                                        "  grpc_server_max_concurrent_streams: 1000\n"
                                        "  external_url: https://logs.example.com/promtail\n");
    cr_assert(c->server.grpc_ignored);
    cr_assert_str_eq(c->server.external_url, "https://logs.example.com/promtail");
    bt_config_free(c);
    c = parse(MIN_CFG "server:\n  http_listen_port: 9080\n");
    cr_assert_not(c->server.grpc_ignored);
    bt_config_free(c);
    parse_fails(MIN_CFG "server:\n  grpc_server_max_recv_msg_size: big\n",
                "c.yaml:4:34: server.grpc_server_max_recv_msg_size", "integer");
    c = parse(MIN_CFG "server:\n  grpc_tls_config: {cert_file: /c, key_file: /k}\n");
    cr_assert(c->server.grpc_ignored);
    bt_config_free(c);
    c = parse(MIN_CFG "server:\n  http_tls_config: {cert_file: /c, key_file: /k, "
                      "client_auth_type: NoClientCert}\n");
    cr_assert_str_eq(c->server.http_tls_cert_file, "/c");
    cr_assert_str_eq(c->server.http_tls_key_file, "/k");
    bt_config_free(c);
    parse_fails(MIN_CFG "server:\n  http_tls_config: {cert_file: /c}\n",
                "cert_file and key_file go together", NULL);
    parse_fails(MIN_CFG "server:\n  http_tls_config: {cert_file: /c, key_file: /k, "
                        "client_auth_type: RequireAndVerifyClientCert}\n",
                "server.http_tls_config.client_auth_type: not supported by bpftail",
                "NoClientCert");
    parse_fails(MIN_CFG "server:\n  http_tls_config: {client_ca_file: /ca}\n",
                "server.http_tls_config.client_ca_file: not supported by bpftail", NULL);
}

Test(config, http_path_prefix_is_normalised_as_promtail_routes_it)
{
    struct bt_config *c = parse(MIN_CFG "server:\n  http_path_prefix: /promtail/\n");
    cr_assert_str_eq(c->server.http_path_prefix, "/promtail");
    bt_config_free(c);
    c = parse(MIN_CFG "server:\n  http_path_prefix: /\n");
    cr_assert_str_eq(c->server.http_path_prefix, "");
    bt_config_free(c);
    c = parse(MIN_CFG);
    cr_assert_str_eq(c->server.http_path_prefix, "");
    bt_config_free(c);
    parse_fails(MIN_CFG "server:\n  http_path_prefix: promtail\n", "server.http_path_prefix",
                "must start with a slash");
    parse_fails(MIN_CFG "server:\n  http_path_prefix: \"/a?b\"\n", "server.http_path_prefix",
                "plain path");
}
