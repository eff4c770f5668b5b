/* file_sd: target files (JSON and YAML) become label sets that appear and disappear once each. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/labels.h"
#include "config/node.h"
#include "source/file_sd.h"
#include "source/relabel.h"
#include "tmpdir.h"

struct event {
    bool add;
    char path[256], labels[512], file[256];
};

static struct event ev[32];
static size_t n_ev;
static char root[256];
static struct bt_node *cfgdoc, *reldoc;
static struct bt_relabel *rel;

static void on_target(void *ctx, const struct bt_labels *l, bool add)
{
    cr_assert_lt(n_ev, 32);
    struct event *e = &ev[n_ev++];
    e->add = add;
    snprintf(e->path, sizeof(e->path), "%s", bt_labels_get(l, "__path__"));
    const char *f = bt_labels_get(l, "__meta_filepath");
    snprintf(e->file, sizeof(e->file), "%s", f ? f : "");
    struct bt_labels c;
    bt_labels_init(&c);
    bt_labels_copy(&c, l);
    size_t n;
    const char *s = bt_labels_canon(&c, &n);
    snprintf(e->labels, sizeof(e->labels), "%.*s", (int)n, s);
    bt_labels_free(&c);
}

static struct bt_file_sd *make(const char *relabel_yaml)
{
    char err[512] = "", text[1024];
    snprintf(text, sizeof(text), "files: [%s/*.json, %s/*.yml]\nrefresh_interval: 1h\n", root,
             root);
    cfgdoc = bt_yaml_parse(text, strlen(text), "c.yaml", err, sizeof(err));
    cr_assert_not_null(cfgdoc, "%s", err);
    if (relabel_yaml)
        reldoc = bt_yaml_parse(relabel_yaml, strlen(relabel_yaml), "r.yaml", err, sizeof(err));
    rel = bt_relabel_new(reldoc, err, sizeof(err));
    cr_assert_not_null(rel, "%s", err);
    /* No loop: the test drives the refreshes. */
    struct bt_file_sd *sd = bt_file_sd_new(cfgdoc, NULL, rel, on_target, NULL, err, sizeof(err));
    cr_assert_not_null(sd, "%s", err);
    return sd;
}

static void put(const char *name, const char *text)
{
    /* A new mtime for every write, even within the same clock tick. */
    char tmp[300];
    snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
    cr_assert_eq(bt_tmpdir_write(root, tmp, text, strlen(text)), 0);
    char a[600], b[600];
    snprintf(a, sizeof(a), "%s/%s", root, tmp);
    snprintf(b, sizeof(b), "%s/%s", root, name);
    cr_assert_eq(rename(a, b), 0);
    usleep(10000);
}

static void setup(void)
{
    cr_assert_eq(bt_tmpdir_make(root, sizeof(root)), 0);
    n_ev = 0;
}

static void teardown(void)
{
    bt_node_free(cfgdoc);
    bt_node_free(reldoc);
    bt_relabel_free(rel);
    cfgdoc = reldoc = NULL;
    rel = NULL;
    bt_tmpdir_remove(root);
}

TestSuite(file_sd, .init = setup, .fini = teardown);

Test(file_sd, json_and_yaml_targets_appear_and_disappear_once)
{
    struct bt_file_sd *sd = make(NULL);
    put("a.json", "[{\"targets\": [\"localhost\"], \"labels\": {\"job\": \"a\", "
                  "\"__path__\": \"/var/log/a.log\"}}]");
    put("b.yml", "- targets: [localhost]\n  labels: {job: b, __path__: /var/log/b/*.log}\n"
                 "- targets: [localhost]\n  labels: {job: nopath}\n");
    put("ignored.txt", "not a target file");
    cr_assert_eq(bt_file_sd_refresh(sd), 2);
    cr_assert_eq(n_ev, 2);
    bool seen_a = false, seen_b = false;
    for (size_t i = 0; i < n_ev; i++) {
        cr_assert(ev[i].add);
        seen_a |= strcmp(ev[i].path, "/var/log/a.log") == 0;
        seen_b |= strcmp(ev[i].path, "/var/log/b/*.log") == 0;
    }
    cr_assert(seen_a && seen_b);
    /* Nothing changed: nothing reported. */
    bt_file_sd_refresh(sd);
    cr_assert_eq(n_ev, 2);
    /* a.json drops its target; b.yml is deleted. */
    put("a.json", "[]");
    char p[400];
    snprintf(p, sizeof(p), "%s/b.yml", root);
    cr_assert_eq(unlink(p), 0);
    cr_assert_eq(bt_file_sd_refresh(sd), 0);
    cr_assert_eq(n_ev, 4);
    cr_assert_not(ev[2].add);
    cr_assert_not(ev[3].add);
    bt_file_sd_free(sd);
}

Test(file_sd, a_broken_file_keeps_its_targets)
{
    struct bt_file_sd *sd = make(NULL);
    put("a.json", "[{\"targets\": [\"x\"], \"labels\": {\"__path__\": \"/a\"}}]");
    cr_assert_eq(bt_file_sd_refresh(sd), 1);
    put("a.json", "[{\"targets\": [\"x\"], \"labels\": {\"__path__\": ");
    cr_assert_eq(bt_file_sd_refresh(sd), 1);
    put("a.json", "{\"not\": \"a list\"}");
    cr_assert_eq(bt_file_sd_refresh(sd), 1);
    cr_assert_eq(n_ev, 1);
    bt_file_sd_free(sd);
}

Test(file_sd, relabel_sees_address_and_filepath)
{
    struct bt_file_sd *sd = make("- source_labels: [__address__]\n"
                                 "  target_label: host\n"
                                 "- source_labels: [job]\n"
                                 "  regex: skip\n"
                                 "  action: drop\n");
    put("a.json",
        "[{\"targets\": [\"h1\", \"h2\"], \"labels\": {\"job\": \"a\", "
        "\"__path__\": \"/a\"}},"
        " {\"targets\": [\"h3\"], \"labels\": {\"job\": \"skip\", \"__path__\": \"/s\"}}]");
    cr_assert_eq(bt_file_sd_refresh(sd), 2);
    cr_assert_eq(n_ev, 2);
    char want[400];
    snprintf(want, sizeof(want), "%s/a.json", root);
    cr_expect_str_eq(ev[0].file, want);
    cr_expect(strcmp(ev[0].labels, "{host=\"h1\", job=\"a\"}") == 0 ||
                  strcmp(ev[1].labels, "{host=\"h1\", job=\"a\"}") == 0,
              "%s / %s", ev[0].labels, ev[1].labels);
    bt_file_sd_free(sd);
}

Test(file_sd, config_is_strict)
{
    char err[512] = "";
    const char *bad[] = {"files: [a.json]\nrefresh: 1s\n", "refresh_interval: 1s\n",
                         "files: [a.txt]\n", "files: [a.json]\nrefresh_interval: -1s\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct bt_node *n = bt_yaml_parse(bad[i], strlen(bad[i]), "c.yaml", err, sizeof(err));
        cr_assert_not_null(n);
        struct bt_file_sd *sd = bt_file_sd_new(n, NULL, NULL, on_target, NULL, err, sizeof(err));
        cr_expect_null(sd, "%s accepted", bad[i]);
        cr_expect(strstr(err, "c.yaml:") && strstr(err, "file_sd_configs:"), "%s", err);
        bt_file_sd_free(sd);
        bt_node_free(n);
    }
}
