#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/node.h"
#include "core/labels.h"
#include "plugin/plugin_opts.h"
#include "util/timeutil.h"

#define CID "285a64c0ffee0123456789abcdef0123456789abcdef0123456789abcdef0123"

/* A StartLogging body with the given log-opts (a JSON object's inside) and extra Info fields. */
static char *request(const char *config, const char *extra)
{
    char *s = NULL;
    cr_assert(asprintf(&s,
                       "{\"File\":\"/run/docker/logging/abc\",\"Info\":{\"Config\":{%s},"
                       "\"ContainerID\":\"" CID "\",\"ContainerName\":\"/t-opts\","
                       "\"ContainerEntrypoint\":\"sh\",\"ContainerArgs\":[\"-c\",\"echo hi\"],"
                       "\"ContainerImageID\":\"sha256:4c33aa0011bb2233cc\","
                       "\"ContainerImageName\":\"bb:latest\",\"DaemonName\":\"docker\"%s%s}}",
                       config, extra ? "," : "", extra ? extra : "") > 0);
    return s;
}

static void parse_info(const char *config, const char *extra, struct bt_plugin_info *in)
{
    char *body = request(config, extra);
    char err[512] = "";
    int rc = bt_plugin_info_parse(body, strlen(body), in, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    free(body);
}

static int unknown_calls;
static char unknown_last[64];

static void on_unknown(void *ctx, const char *key)
{
    unknown_calls++;
    snprintf(unknown_last, sizeof(unknown_last), "%s", key);
}

/* Parses config; returns the rc and leaves the message in err. */
static int opts(const char *config, struct bt_plugin_info *in, struct bt_plugin_opts *o, char *err,
                size_t errlen)
{
    parse_info(config, NULL, in);
    unknown_calls = 0;
    return bt_plugin_opts_parse(in, o, on_unknown, NULL, err, errlen);
}

static void opts_fail(const char *config, const char *want)
{
    struct bt_plugin_info in;
    struct bt_plugin_opts o;
    char err[512] = "";
    int rc = opts(config, &in, &o, err, sizeof(err));
    cr_assert_lt(rc, 0, "expected an error for %s", config);
    cr_assert(strstr(err, want), "error \"%s\" lacks \"%s\"", err, want);
    bt_plugin_opts_free(&o);
    bt_plugin_info_free(&in);
}

#define URL "\"loki-url\":\"http://loki:3100/loki/api/v1/push\""

Test(plugin_opts, parses_the_request_with_go_escapes)
{
    struct bt_plugin_info in;
    parse_info("\"tag\":\"\\u003c{{.Name}}\\u003e \\u0026\"",
               "\"ContainerEnv\":[\"FOO=bar\"],\"ContainerLabels\":{\"a\":\"b\\u003cc\"}", &in);
    cr_assert_str_eq(in.file, "/run/docker/logging/abc");
    cr_assert_str_eq(in.container_id, CID);
    cr_assert_str_eq(in.container_name, "t-opts", "the leading / goes");
    cr_assert_str_eq(bt_plugin_info_opt(&in, "tag"), "<{{.Name}}> &");
    cr_assert_eq(in.n_args, 2);
    cr_assert_str_eq(in.args[1], "echo hi");
    cr_assert_eq(in.n_env, 1);
    cr_assert_str_eq(in.env[0], "FOO=bar");
    cr_assert_eq(in.n_labels, 1);
    cr_assert_str_eq(in.labels[0].value, "b<c");
    bt_plugin_info_free(&in);
}

Test(plugin_opts, bad_requests_are_errors)
{
    struct bt_plugin_info in;
    char err[256];
    static const char *const bad[][2] = {
        {"{", "invalid JSON"},
        {"[]", "JSON object"},
        {"{\"Info\":{\"ContainerID\":\"x\"}}", "File"},
        {"{\"File\":\"/f\"}", "Info"},
        {"{\"File\":\"/f\",\"Info\":{\"ContainerID\":\"\"}}", "container id"},
        {"{\"File\":\"/f\",\"Info\":{\"ContainerID\":\"x\",\"Config\":{\"a\":1}}}", "Config.a"},
        {"{\"File\":\"/f\",\"Info\":{\"ContainerID\":\"x\",\"ContainerEnv\":\"A=1\"}}",
         "ContainerEnv"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        int rc = bt_plugin_info_parse(bad[i][0], strlen(bad[i][0]), &in, err, sizeof(err));
        cr_assert_lt(rc, 0, "%s accepted", bad[i][0]);
        cr_assert(strstr(err, bad[i][1]), "%s: \"%s\" lacks \"%s\"", bad[i][0], err, bad[i][1]);
        bt_plugin_info_free(&in);
    }
    char *f = bt_plugin_parse_file("{\"File\":\"/run/x\"}", 17, err, sizeof(err));
    cr_assert_str_eq(f, "/run/x");
    free(f);
    cr_assert_null(bt_plugin_parse_file("{}", 2, err, sizeof(err)));
}

Test(plugin_opts, every_loki_option)
{
    struct bt_plugin_info in;
    struct bt_plugin_opts o;
    char err[512] = "";
    int rc = opts("\"loki-url\":\"https://user:p%40ss@loki:3100/loki/api/v1/push\","
                  "\"loki-tenant-id\":\"team-a\",\"loki-batch-wait\":\"2s\","
                  "\"loki-batch-size\":\"4096\",\"loki-timeout\":\"3s\","
                  "\"loki-min-backoff\":\"100ms\",\"loki-max-backoff\":\"1m\","
                  "\"loki-retries\":\"0\",\"loki-external-labels\":\"job=docker\","
                  "\"loki-pipeline-stages\":\"- regex:\\n    expression: '(?P<x>.*)'\\n\","
                  "\"loki-relabel-config\":\"- action: labeldrop\\n  regex: host\\n\","
                  "\"loki-tls-ca-file\":\"/ca.pem\",\"loki-tls-cert-file\":\"/c.pem\","
                  "\"loki-tls-key-file\":\"/k.pem\",\"loki-tls-server-name\":\"loki.local\","
                  "\"loki-tls-insecure-skip-verify\":\"T\","
                  "\"loki-proxy-url\":\"http://proxy:3128\",\"no-file\":\"true\","
                  "\"keep-file\":\"1\",\"max-size\":\"10m\",\"max-file\":\"3\"",
                  &in, &o, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    const struct bt_client_config *c = &o.client;
    cr_assert_str_eq(c->url, "https://loki:3100/loki/api/v1/push", "userinfo leaves the url");
    cr_assert_str_eq(c->basic_username, "user");
    cr_assert_str_eq(c->basic_password, "p@ss", "percent-decoded like Go's url.User");
    cr_assert_str_eq(c->tenant_id, "team-a");
    cr_assert_eq(c->batchwait_ns, 2000000000LL);
    cr_assert_eq(c->batchsize, 4096);
    cr_assert_eq(c->timeout_ns, 3000000000LL);
    cr_assert_eq(c->min_backoff_ns, 100000000LL);
    cr_assert_eq(c->max_backoff_ns, 60000000000LL);
    cr_assert_eq(c->max_retries, 0);
    cr_assert_str_eq(c->tls.ca_file, "/ca.pem");
    cr_assert_str_eq(c->tls.cert_file, "/c.pem");
    cr_assert_str_eq(c->tls.key_file, "/k.pem");
    cr_assert_str_eq(c->tls.server_name, "loki.local");
    cr_assert(c->tls.insecure_skip_verify);
    cr_assert_str_eq(c->proxy_url, "http://proxy:3128");
    cr_assert_str_eq(o.external_labels, "job=docker");
    cr_assert_not_null(o.stages);
    cr_assert_eq(o.stages->n, 1);
    cr_assert_not_null(o.relabel_doc);
    cr_assert(o.no_file && o.keep_file);
    cr_assert_eq(o.max_size, 10 << 20);
    cr_assert_eq(o.max_file, 3);
    cr_assert_eq(o.spool_max, 30u << 20, "max-size x max-file bounds the container's spool");
    cr_assert_eq(unknown_calls, 0);
    bt_plugin_opts_free(&o);
    bt_plugin_info_free(&in);
}

Test(plugin_opts, defaults_are_lokis)
{
    struct bt_plugin_info in;
    struct bt_plugin_opts o;
    char err[512] = "";
    cr_assert_eq(opts(URL, &in, &o, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(o.client.batchwait_ns, 1000000000LL);
    cr_assert_eq(o.client.batchsize, 1048576);
    cr_assert_eq(o.client.max_retries, 10);
    cr_assert_eq(o.client.timeout_ns, 10000000000LL);
    cr_assert_str_eq(o.external_labels, "container_name={{.Name}}");
    cr_assert_null(o.client.basic_username);
    cr_assert_null(o.stages);
    cr_assert_eq(o.max_size, -1);
    cr_assert_eq(o.spool_max, 0);
    bt_plugin_opts_free(&o);
    bt_plugin_info_free(&in);
}

Test(plugin_opts, unknown_loki_option_is_refused_by_name)
{
    opts_fail(URL ",\"loki-batchsize\":\"10\"", "loki-batchsize");
    opts_fail(URL ",\"loki-\":\"10\"", "loki-");
}

Test(plugin_opts, bad_values_name_the_option)
{
    opts_fail(URL ",\"loki-batch-wait\":\"1 sec\"", "loki-batch-wait");
    opts_fail(URL ",\"loki-timeout\":\"0s\"", "loki-timeout");
    opts_fail(URL ",\"loki-batch-size\":\"1MB\"", "loki-batch-size");
    opts_fail(URL ",\"loki-retries\":\"-1\"", "loki-retries");
    opts_fail(URL ",\"loki-tls-insecure-skip-verify\":\"yes\"", "loki-tls-insecure-skip-verify");
    opts_fail(URL ",\"no-file\":\"on\"", "no-file");
    opts_fail(URL ",\"max-size\":\"10q\"", "max-size");
    opts_fail(URL ",\"max-file\":\"0\"", "max-file");
    opts_fail(URL ",\"loki-pipeline-stages\":\"- [\"", "loki-pipeline-stages");
    opts_fail(URL ",\"loki-pipeline-stages\":\"a: b\"", "loki-pipeline-stages");
    opts_fail(URL ",\"loki-pipeline-stages\":\"- docker: {}\","
                  "\"loki-pipeline-stage-file\":\"/x.yaml\"",
              "only one of");
    opts_fail(URL ",\"loki-pipeline-stage-file\":\"/nonexistent/stages.yaml\"",
              "loki-pipeline-stage-file");
    opts_fail("\"loki-url\":\"ftp://loki/\"", "http://");
    opts_fail("\"loki-batch-wait\":\"1s\"", "loki-url is required");
    opts_fail(URL ",\"loki-tenant-id\":\"a/b\"", "tenant_id");
    opts_fail(URL ",\"loki-tls-cert-file\":\"/c.pem\"", "key_file");
    opts_fail(URL ",\"loki-min-backoff\":\"2m\",\"loki-max-backoff\":\"1m\"", "backoff");
}

Test(plugin_opts, docker_keys_accepted_other_keys_reported_once)
{
    struct bt_plugin_info in;
    struct bt_plugin_opts o;
    char err[512] = "";
    int rc = opts(URL ",\"mode\":\"non-blocking\",\"max-buffer-size\":\"4m\",\"tag\":\"x\","
                      "\"labels\":\"a\",\"labels-regex\":\"^a\",\"env\":\"A\",\"env-regex\":\"^A\","
                      "\"cache-disabled\":\"false\",\"cache-max-size\":\"20m\","
                      "\"cache-max-file\":\"5\",\"cache-compress\":\"true\",\"foo\":\"bar\"",
                  &in, &o, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(unknown_calls, 1);
    cr_assert_str_eq(unknown_last, "foo");
    bt_plugin_opts_free(&o);
    bt_plugin_info_free(&in);
}

Test(plugin_opts, go_bools_and_docker_sizes)
{
    bool b;
    static const char *const t[] = {"1", "t", "T", "true", "TRUE", "True"};
    static const char *const f[] = {"0", "f", "F", "false", "FALSE", "False"};
    for (int i = 0; i < 6; i++) {
        cr_assert(bt_parse_bool(t[i], &b) == 0 && b);
        cr_assert(bt_parse_bool(f[i], &b) == 0 && !b);
    }
    cr_assert_lt(bt_parse_bool("yes", &b), 0);
    cr_assert_lt(bt_parse_bool("", &b), 0);
    int64_t v;
    cr_assert(bt_plugin_parse_size("10m", &v) == 0 && v == 10 << 20);
    cr_assert(bt_plugin_parse_size("1.5g", &v) == 0 && v == 3LL << 29);
    cr_assert(bt_plugin_parse_size("512KiB", &v) == 0 && v == 512 << 10);
    cr_assert(bt_plugin_parse_size("2MB", &v) == 0 && v == 2 << 20);
    cr_assert(bt_plugin_parse_size("100", &v) == 0 && v == 100);
    cr_assert_lt(bt_plugin_parse_size("-1m", &v), 0);
    cr_assert_lt(bt_plugin_parse_size("m", &v), 0);
    cr_assert_lt(bt_plugin_parse_size("10x", &v), 0);
}

Test(plugin_opts, client_key_tells_client_options_apart)
{
    struct bt_plugin_info a, b;
    struct bt_plugin_opts oa, ob;
    char err[512];
    cr_assert_eq(opts(URL ",\"loki-external-labels\":\"x=1\"", &a, &oa, err, sizeof(err)), 0);
    cr_assert_eq(opts(URL, &b, &ob, err, sizeof(err)), 0);
    char *ka = bt_plugin_client_key(&oa.client), *kb = bt_plugin_client_key(&ob.client);
    cr_assert_str_eq(ka, kb, "labels do not make another client");
    free(kb);
    bt_plugin_opts_free(&ob);
    bt_plugin_info_free(&b);
    cr_assert_eq(opts(URL ",\"loki-tenant-id\":\"t2\"", &b, &ob, err, sizeof(err)), 0);
    kb = bt_plugin_client_key(&ob.client);
    cr_assert_str_neq(ka, kb, "another tenant is another client");
    free(ka);
    free(kb);
    bt_plugin_opts_free(&oa);
    bt_plugin_opts_free(&ob);
    bt_plugin_info_free(&a);
    bt_plugin_info_free(&b);
}

/* Builds the labels of a request; returns the canonical string (static) or the error. */
static const char *labels_of(const char *config, const char *extra, char *err, size_t errlen)
{
    static char out[4096];
    struct bt_plugin_info in;
    struct bt_plugin_opts o;
    struct bt_labels l;
    bt_labels_init(&l);
    parse_info(config, extra, &in);
    int rc = bt_plugin_opts_parse(&in, &o, NULL, NULL, err, errlen);
    if (rc == 0)
        rc = bt_plugin_labels(&in, &o, "node1", &l, err, errlen);
    if (rc == 0) {
        size_t n;
        snprintf(out, sizeof(out), "%s", bt_labels_canon(&l, &n));
    }
    bt_labels_free(&l);
    bt_plugin_opts_free(&o);
    bt_plugin_info_free(&in);
    return rc == 0 ? out : NULL;
}

Test(plugin_labels, loki_driver_defaults)
{
    char err[512] = "";
    const char *l = labels_of(URL, NULL, err, sizeof(err));
    cr_assert_not_null(l, "%s", err);
    cr_assert_str_eq(l, "{container_id=\"" CID "\", container_name=\"t-opts\", "
                        "filename=\"/var/log/docker/" CID "/json.log\", host=\"node1\", "
                        "image=\"bb:latest\"}");
}

Test(plugin_labels, external_label_templates)
{
    char err[512] = "";
    const char *l = labels_of(URL ",\"loki-external-labels\":\"a={{.ID}},b={{.FullID}},"
                                  "c={{.ImageID}},d={{.ImageFullID}},e={{.ImageName}},"
                                  "f={{.Command}},g={{.DaemonName}},h={{.Hostname}},"
                                  "i={{.Name | upper}}\"",
                              NULL, err, sizeof(err));
    cr_assert_not_null(l, "%s", err);
    cr_assert(strstr(l, "a=\"285a64c0ffee\""), "%s", l);
    cr_assert(strstr(l, "b=\"" CID "\""), "%s", l);
    cr_assert(strstr(l, "c=\"4c33aa0011bb\""), "%s", l);
    cr_assert(strstr(l, "d=\"sha256:4c33aa0011bb2233cc\""), "%s", l);
    cr_assert(strstr(l, "e=\"bb:latest\""), "%s", l);
    cr_assert(strstr(l, "f=\"sh -c echo hi\""), "%s", l);
    cr_assert(strstr(l, "g=\"docker\""), "%s", l);
    cr_assert(strstr(l, "h=\"node1\""), "%s", l);
    cr_assert(strstr(l, "i=\"T-OPTS\""), "%s", l);
    cr_assert_null(strstr(l, "container_name="), "external labels replace the default: %s", l);
    cr_assert_null(labels_of(URL ",\"loki-external-labels\":\"a=b=c\"", NULL, err, sizeof(err)));
    cr_assert(strstr(err, "a=b=c"), "%s", err);
    cr_assert_null(
        labels_of(URL ",\"loki-external-labels\":\"a={{.Name\"", NULL, err, sizeof(err)));
    cr_assert(strstr(err, "loki-external-labels"), "%s", err);
    cr_assert_null(labels_of(URL ",\"loki-external-labels\":\"1a=x\"", NULL, err, sizeof(err)));
    cr_assert(strstr(err, "invalid label name"), "%s", err);
}

Test(plugin_labels, compose_swarm_labels_env_attributes)
{
    char err[512] = "";
    const char *l = labels_of(
        URL ",\"labels\":\"team,missing\",\"labels-regex\":\"^org\\\\.\",\"env\":\"APP_ENV\","
            "\"env-regex\":\"^K8S\"",
        "\"ContainerLabels\":{\"com.docker.compose.project\":\"shop\","
        "\"com.docker.compose.service\":\"web\",\"com.docker.stack.namespace\":\"st\","
        "\"com.docker.swarm.service.name\":\"st_web\",\"team\":\"core\",\"org.x-y\":\"1\","
        "\"other\":\"no\"},\"ContainerEnv\":[\"APP_ENV=prod\",\"K8S_NS=default\",\"SECRET=s\","
        "\"NOEQ\"]",
        err, sizeof(err));
    cr_assert_not_null(l, "%s", err);
    cr_assert(strstr(l, "compose_project=\"shop\""), "%s", l);
    cr_assert(strstr(l, "compose_service=\"web\""), "%s", l);
    cr_assert(strstr(l, "swarm_stack=\"st\""), "%s", l);
    cr_assert(strstr(l, "swarm_service=\"st_web\""), "%s", l);
    cr_assert(strstr(l, "team=\"core\""), "%s", l);
    cr_assert(strstr(l, "org_x_y=\"1\""), "- and . become _: %s", l);
    cr_assert(strstr(l, "APP_ENV=\"prod\""), "%s", l);
    cr_assert(strstr(l, "K8S_NS=\"default\""), "%s", l);
    cr_assert_null(strstr(l, "SECRET"), "%s", l);
    cr_assert_null(strstr(l, "other"), "%s", l);
}

Test(plugin_labels, relabel_once_then_validated)
{
    char err[512] = "";
    const char *l =
        labels_of(URL ",\"loki-relabel-config\":\"- action: labeldrop\\n  regex: (host|filename)\\n"
                      "- source_labels: [container_name]\\n  target_label: app\\n\"",
                  NULL, err, sizeof(err));
    cr_assert_not_null(l, "%s", err);
    cr_assert_null(strstr(l, "host="), "%s", l);
    cr_assert_null(strstr(l, "filename="), "%s", l);
    cr_assert(strstr(l, "app=\"t-opts\""), "%s", l);
    cr_assert_null(labels_of(URL ",\"loki-relabel-config\":\"- action: drop\\n  regex: .*\\n"
                                 "  source_labels: [host]\\n\"",
                             NULL, err, sizeof(err)));
    cr_assert(strstr(err, "dropped"), "%s", err);
    cr_assert_null(
        labels_of(URL ",\"loki-relabel-config\":\"- action: nosuch\\n\"", NULL, err, sizeof(err)));
    cr_assert(strstr(err, "loki-relabel-config"), "%s", err);
    char big[2200 + 64];
    memset(big, 'v', 2200);
    big[2200] = '\0';
    char extra[2400];
    snprintf(extra, sizeof(extra), "\"ContainerLabels\":{\"long\":\"%s\"}", big);
    cr_assert_null(labels_of(URL ",\"labels\":\"long\"", extra, err, sizeof(err)));
    cr_assert(strstr(err, "invalid value for label long"), "%s", err);
}
