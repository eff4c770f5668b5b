#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/labels.h"
#include "core/loop.h"
#include "config/node.h"
#include "source/relabel.h"
#include "source/source_docker.h"
#include "tmpdir.h"
#include "util/timeutil.h"

#define ID1 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define ID2 "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

struct event {
    char id[80];
    bool gone;
    struct bt_labels labels;
};

static struct event ev[32];
static size_t n_ev;
static char root[256], ctrs[320];
static struct bt_node *cfgdoc, *reldoc;

static void on_target(void *ctx, const char *id, const struct bt_labels *l)
{
    cr_assert_lt(n_ev, 32);
    struct event *e = &ev[n_ev++];
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->gone = l == NULL;
    bt_labels_init(&e->labels);
    if (l)
        bt_labels_copy(&e->labels, l);
}

static void setup(void)
{
    cr_assert_eq(bt_tmpdir_make(root, sizeof(root)), 0);
    snprintf(ctrs, sizeof(ctrs), "%s/containers", root);
    cr_assert_eq(mkdir(ctrs, 0755), 0);
}

static void teardown(void)
{
    for (size_t i = 0; i < n_ev; i++)
        bt_labels_free(&ev[i].labels);
    n_ev = 0;
    bt_node_free(cfgdoc);
    bt_node_free(reldoc);
    cfgdoc = reldoc = NULL;
    bt_tmpdir_remove(root);
}

TestSuite(source_docker, .init = setup, .fini = teardown);

static void add_container_driver(const char *id, const char *json, const char *driver)
{
    char dir[512], host[128];
    snprintf(dir, sizeof(dir), "%s/%s", ctrs, id);
    mkdir(dir, 0755);
    if (json)
        cr_assert_eq(bt_tmpdir_write(dir, "config.v2.json", json, strlen(json)), 0);
    if (json && driver) {
        snprintf(host, sizeof(host), "{\"LogConfig\":{\"Type\":\"%s\",\"Config\":{}}}", driver);
        cr_assert_eq(bt_tmpdir_write(dir, "hostconfig.json", host, strlen(host)), 0);
    }
}

static void add_container(const char *id, const char *json)
{
    add_container_driver(id, json, "json-file");
}

static struct bt_node *yaml(const char *text)
{
    char err[256];
    struct bt_node *n = bt_yaml_parse(text, strlen(text), "cfg.yaml", err, sizeof(err));
    cr_assert_not_null(n, "%s", err);
    return n;
}

static struct bt_docker_disc *disc(struct bt_loop *loop, struct bt_relabel *r, const char *extra)
{
    char text[1024], err[256];
    snprintf(text, sizeof(text), "path: %s/\n%s", ctrs, extra ? extra : "");
    cfgdoc = yaml(text);
    struct bt_docker_disc *d =
        bt_docker_disc_new(cfgdoc, loop, r, on_target, NULL, err, sizeof(err));
    cr_assert_not_null(d, "%s", err);
    return d;
}

static const char *CFG1 =
    "{\"ID\":\"" ID1 "\",\"Name\":\"/web-1\",\"LogPath\":\"/x/" ID1 "-json.log\","
    "\"Config\":{\"Image\":\"bb:latest\",\"Labels\":{\"com.docker.compose.project\":\"shop\","
    "\"com.docker.compose.service\":\"web\",\"team.name\":\"core\"}}}";

Test(source_docker, reports_containers_with_their_labels)
{
    add_container(ID1, CFG1);
    struct bt_docker_disc *d = disc(NULL, NULL, "labels:\n  job: docker\n");
    cr_assert_str_eq(bt_docker_disc_path(d), ctrs);
    cr_assert_eq(bt_docker_disc_scan(d), 0);
    cr_assert_eq(n_ev, 1);
    struct bt_labels *l = &ev[0].labels;
    char want[600];
    snprintf(want, sizeof(want), "%s/%s/%s-json.log*", ctrs, ID1, ID1);
    cr_assert_str_eq(bt_labels_get(l, "__path__"), want);
    snprintf(want, sizeof(want), "%s/%s/*.gz", ctrs, ID1);
    cr_assert_str_eq(bt_labels_get(l, "__path_exclude__"), want);
    cr_assert_str_eq(bt_labels_get(l, "container_id"), ID1);
    cr_assert_str_eq(bt_labels_get(l, "container_name"), "web-1");
    cr_assert_str_eq(bt_labels_get(l, "image"), "bb:latest");
    cr_assert_str_eq(bt_labels_get(l, "compose_project"), "shop");
    cr_assert_str_eq(bt_labels_get(l, "compose_service"), "web");
    cr_assert_str_eq(bt_labels_get(l, "job"), "docker");
    cr_assert_str_eq(bt_labels_get(l, "__meta_docker_container_name"), "/web-1");
    cr_assert_str_eq(bt_labels_get(l, "__meta_docker_container_id"), ID1);
    cr_assert_str_eq(bt_labels_get(l, "__meta_docker_container_label_team_name"), "core");
    cr_assert_str_eq(bt_labels_get(l, "__meta_docker_container_label_com_docker_compose_project"),
                     "shop");
    cr_assert_eq(bt_docker_disc_count(d), 1);
    /* a second scan with nothing changed reports nothing */
    bt_docker_disc_scan(d);
    cr_assert_eq(n_ev, 1);
    bt_docker_disc_free(d);
}

Test(source_docker, fresh_container_without_config_waits_then_appears)
{
    struct bt_docker_disc *d = disc(NULL, NULL, NULL);
    add_container(ID1, NULL);
    cr_assert_eq(bt_docker_disc_scan(d), 1);
    cr_assert_eq(n_ev, 0);
    add_container_driver(ID1, CFG1, NULL); /* config.v2.json first, hostconfig.json next */
    cr_assert_eq(bt_docker_disc_scan(d), 1);
    cr_assert_eq(n_ev, 0);
    add_container(ID1, CFG1);
    cr_assert_eq(bt_docker_disc_scan(d), 0);
    cr_assert_eq(n_ev, 1);
    bt_docker_disc_free(d);
}

Test(source_docker, removed_container_is_released)
{
    add_container(ID1, CFG1);
    add_container(ID2, "{\"ID\":\"" ID2 "\",\"Name\":\"/db\",\"Config\":{\"Image\":\"pg\"}}");
    struct bt_docker_disc *d = disc(NULL, NULL, NULL);
    bt_docker_disc_scan(d);
    cr_assert_eq(n_ev, 2);
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/%s", ctrs, ID1);
    bt_tmpdir_remove(dir);
    bt_docker_disc_scan(d);
    cr_assert_eq(n_ev, 3);
    cr_assert(ev[2].gone);
    cr_assert_str_eq(ev[2].id, ID1);
    cr_assert_eq(bt_docker_disc_count(d), 1);
    bt_docker_disc_free(d);
}

Test(source_docker, changed_config_is_reported_again)
{
    add_container(ID1, CFG1);
    struct bt_docker_disc *d = disc(NULL, NULL, NULL);
    bt_docker_disc_scan(d);
    char dir[512], path[600];
    snprintf(dir, sizeof(dir), "%s/%s", ctrs, ID1);
    const char *renamed =
        "{\"ID\":\"" ID1 "\",\"Name\":\"/renamed\",\"Config\":{\"Image\":\"bb\"}}";
    add_container(ID1, renamed);
    /* make sure the mtime differs even on coarse clocks */
    snprintf(path, sizeof(path), "%s/config.v2.json", dir);
    struct timeval tv[2] = {{1000, 0}, {1000, 0}};
    utimes(path, tv);
    bt_docker_disc_scan(d);
    cr_assert_eq(n_ev, 2);
    cr_assert_str_eq(bt_labels_get(&ev[1].labels, "container_name"), "renamed");
    cr_assert_null(bt_labels_get(&ev[1].labels, "compose_project"));
    bt_docker_disc_free(d);
}

Test(source_docker, other_log_drivers_and_junk_entries_are_skipped)
{
    add_container_driver(ID1, "{\"ID\":\"" ID1 "\",\"Name\":\"/j\",\"LogPath\":\"\"}", "journald");
    add_container("not-a-container-id", CFG1);
    add_container(ID2, "{ broken json");
    struct bt_docker_disc *d = disc(NULL, NULL, NULL);
    cr_assert_eq(bt_docker_disc_scan(d), 1, "the broken config is retried");
    cr_assert_eq(n_ev, 0);
    bt_docker_disc_free(d);
}

Test(source_docker, relabel_rules_filter_and_map_container_labels)
{
    char err[256];
    reldoc = yaml("- source_labels: [__meta_docker_container_label_team_name]\n"
                  "  regex: core\n"
                  "  action: keep\n"
                  "- action: labelmap\n"
                  "  regex: __meta_docker_container_label_(team_.*)\n"
                  "- source_labels: [__meta_docker_container_name]\n"
                  "  regex: '/(.*)'\n"
                  "  target_label: container\n");
    struct bt_relabel *r = bt_relabel_new(reldoc, err, sizeof(err));
    cr_assert_not_null(r, "%s", err);
    add_container(ID1, CFG1);
    add_container(ID2, "{\"ID\":\"" ID2 "\",\"Name\":\"/db\",\"Config\":{\"Image\":\"pg\"}}");
    struct bt_docker_disc *d = disc(NULL, r, NULL);
    bt_docker_disc_scan(d);
    cr_assert_eq(n_ev, 1, "the container without team=core is dropped");
    cr_assert_str_eq(ev[0].id, ID1);
    cr_assert_str_eq(bt_labels_get(&ev[0].labels, "team_name"), "core");
    cr_assert_str_eq(bt_labels_get(&ev[0].labels, "container"), "web-1");
    bt_docker_disc_free(d);
    bt_relabel_free(r);
}

Test(source_docker, missing_directory_is_no_containers)
{
    char err[256];
    struct bt_node *n = yaml("path: /nonexistent-bpftail-test-dir\n");
    struct bt_docker_disc *d = bt_docker_disc_new(n, NULL, NULL, on_target, NULL, err, sizeof(err));
    cr_assert_not_null(d, "%s", err);
    cr_assert_eq(bt_docker_disc_scan(d), 0);
    cr_assert_eq(n_ev, 0);
    bt_docker_disc_free(d);
    bt_node_free(n);
}

Test(source_docker, new_container_is_found_through_directory_events)
{
    struct bt_loop *loop = bt_loop_new();
    cr_assert_not_null(loop);
    /* a long refresh interval: only the inotify path can find it in time */
    struct bt_docker_disc *d = disc(loop, NULL, "refresh_interval: 1h\n");
    cr_assert_eq(n_ev, 0);
    add_container(ID1, NULL);
    add_container(ID1, CFG1);
    int64_t until = bt_mono_ns() + 10 * BT_NS_PER_SEC;
    while (n_ev == 0 && bt_mono_ns() < until)
        bt_loop_run_once(loop, 100 * BT_NS_PER_MS);
    cr_assert_eq(n_ev, 1);
    cr_assert_str_eq(ev[0].id, ID1);
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/%s", ctrs, ID1);
    bt_tmpdir_remove(dir);
    until = bt_mono_ns() + 10 * BT_NS_PER_SEC;
    while (n_ev == 1 && bt_mono_ns() < until)
        bt_loop_run_once(loop, 100 * BT_NS_PER_MS);
    cr_assert_eq(n_ev, 2);
    cr_assert(ev[1].gone);
    bt_docker_disc_free(d);
    bt_loop_free(loop);
}

Test(source_docker, label_names_are_sanitized_like_prometheus)
{
    char out[64];
    cr_assert_str_eq(bt_docker_label_name(out, sizeof(out), "p_", "com.docker/x-y z"),
                     "p_com_docker_x_y_z");
    cr_assert_str_eq(bt_docker_label_name(out, 6, "p_", "abcdef"), "p_abc");
}

Test(source_docker, bad_config_is_an_error_with_position)
{
    char err[256];
    struct bt_node *n = yaml("refresh_interval: soon\n");
    cr_assert_null(bt_docker_disc_new(n, NULL, NULL, on_target, NULL, err, sizeof(err)));
    cr_assert(strstr(err, "cfg.yaml:1:19") && strstr(err, "refresh_interval"), "%s", err);
    bt_node_free(n);
    n = yaml("colour: red\n");
    cr_assert_null(bt_docker_disc_new(n, NULL, NULL, on_target, NULL, err, sizeof(err)));
    cr_assert(strstr(err, "colour"), "%s", err);
    bt_node_free(n);
}
