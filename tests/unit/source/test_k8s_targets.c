/* k8s_targets: objects become reference-counted targets; the caller hears of each label set
 * once when it appears and once when it goes, a label change is a removal before an addition,
 * and a list that finds the same objects changes nothing. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/node.h"
#include "core/labels.h"
#include "source/k8s_sd_int.h"
#include "source/relabel.h"

#define DATA BT_SOURCE_DIR "/tests/data/k8s/"

static char log_[64][256];
static size_t n_log;
static struct k8s_targets tg;
static struct bt_relabel *rel;
static struct bt_node *reldoc;

static void on_target(void *ctx, const struct bt_labels *l, bool add)
{
    (void)ctx;
    cr_assert_lt(n_log, 64);
    cr_assert_not_null(bt_labels_get(l, "__path__"));
    cr_assert_null(bt_labels_get(l, "__address__"), "only __path__ stays of the __ labels");
    snprintf(log_[n_log++], sizeof(log_[0]), "%s %s/%s app=%s", add ? "add" : "remove",
             bt_labels_get(l, "pod"), bt_labels_get(l, "container"), bt_labels_get(l, "app"));
}

static void setup(void)
{
    const char *rules = "- source_labels: [__meta_kubernetes_pod_name]\n  target_label: pod\n"
                        "- source_labels: [__meta_kubernetes_pod_container_name]\n"
                        "  target_label: container\n"
                        "- source_labels: [__meta_kubernetes_pod_label_app]\n  target_label: app\n"
                        "- source_labels: [__meta_kubernetes_pod_label_host]\n"
                        "  target_label: __host__\n"
                        "- source_labels: [__meta_kubernetes_pod_uid, "
                        "__meta_kubernetes_pod_container_name]\n"
                        "  separator: /\n  replacement: /var/log/pods/*$1/*.log\n"
                        "  target_label: __path__\n";
    char err[512];
    reldoc = bt_yaml_parse(rules, strlen(rules), "r.yaml", err, sizeof(err));
    cr_assert_not_null(reldoc, "%s", err);
    rel = bt_relabel_new(reldoc, err, sizeof(err));
    cr_assert_not_null(rel, "%s", err);
    setenv("HOSTNAME", "node1", 1);
    k8s_targets_init(&tg, K8S_POD, rel, "job", on_target, NULL);
    n_log = 0;
}

static void teardown(void)
{
    k8s_targets_free(&tg);
    bt_relabel_free(rel);
    bt_node_free(reldoc);
}

TestSuite(k8s_targets, .init = setup, .fini = teardown);

static json_t *pod_list(void)
{
    json_error_t je;
    json_t *doc = json_load_file(DATA "pods_list_node1_running.json", 0, &je);
    cr_assert_not_null(doc, "%s", je.text);
    return doc;
}

static json_t *item(json_t *doc, const char *name)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(doc, "items"), i, p)
    {
        if (strcmp(json_string_value(json_object_get(json_object_get(p, "metadata"), "name")),
                   name) == 0)
            return p;
    }
    cr_assert_fail("no pod %s", name);
    return NULL;
}

static void list(json_t *doc, const void *owner, uint64_t gen)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(doc, "items"), i, p) k8s_object_update(&tg, owner, gen, p);
    k8s_objects_sweep(&tg, owner, gen);
}

static bool logged(const char *line)
{
    for (size_t i = 0; i < n_log; i++)
        if (strcmp(log_[i], line) == 0)
            return true;
    return false;
}

Test(k8s_targets, a_list_adds_each_container_once_and_a_second_list_changes_nothing)
{
    json_t *doc = pod_list();
    list(doc, &tg, 1);
    cr_assert_eq(n_log, 5);
    cr_assert(logged("add web-1/sidecar app=web"));
    cr_assert(logged("add log-agent-gj4ql/agent app=log-agent"));
    cr_assert_eq(tg.targets.n, 5);
    list(doc, &tg, 2);
    cr_assert_eq(n_log, 5, "a re-list of the same pods reports nothing");
    json_decref(doc);
}

Test(k8s_targets, a_label_change_removes_the_old_set_before_adding_the_new)
{
    json_t *doc = pod_list();
    list(doc, &tg, 1);
    n_log = 0;
    json_t *web = item(doc, "web-1");
    json_object_set_new(json_object_get(json_object_get(web, "metadata"), "labels"), "app",
                        json_string("web-v2"));
    k8s_object_update(&tg, &tg, 1, web);
    cr_assert_eq(n_log, 4);
    cr_assert_str_eq(log_[0], "remove web-1/web app=web");
    cr_assert_str_eq(log_[1], "remove web-1/sidecar app=web");
    cr_assert(strncmp(log_[2], "add web-1/", 10) == 0 && strstr(log_[2], "app=web-v2"));
    cr_assert(strncmp(log_[3], "add web-1/", 10) == 0 && strstr(log_[3], "app=web-v2"));
    json_decref(doc);
}

Test(k8s_targets, deleted_and_unlisted_pods_remove_their_targets)
{
    json_t *doc = pod_list();
    list(doc, &tg, 1);
    n_log = 0;
    k8s_object_delete(&tg, item(doc, "db-1"));
    cr_assert_eq(n_log, 1);
    cr_assert_str_eq(log_[0], "remove db-1/db app=db");
    k8s_object_delete(&tg, item(doc, "db-1"));
    cr_assert_eq(n_log, 1, "deleted twice: reported once");
    /* The next list no longer has api-1: it went while nobody watched. */
    json_t *items = json_object_get(doc, "items");
    for (size_t i = 0; i < json_array_size(items); i++)
        if (json_array_get(items, i) == item(doc, "api-1")) {
            json_array_remove(items, i);
            break;
        }
    list(doc, &tg, 2);
    cr_assert(logged("remove api-1/api app=api"));
    cr_assert(logged("add db-1/db app=db"), "db-1 is still in the list: it is back");
    json_decref(doc);
}

Test(k8s_targets, ports_of_one_container_are_one_target_and_other_hosts_are_dropped)
{
    const char *pod = "{\"metadata\":{\"name\":\"p\",\"namespace\":\"n\",\"uid\":\"u\",\"labels\":{"
                      "\"app\":\"a\"}},"
                      "\"spec\":{\"containers\":[{\"name\":\"c\",\"ports\":[{\"containerPort\":1},"
                      "{\"containerPort\":2}]}]},\"status\":{\"podIP\":\"10.0.0.1\"}}";
    json_t *o = json_loads(pod, 0, NULL);
    k8s_object_update(&tg, &tg, 1, o);
    cr_assert_eq(n_log, 1);
    cr_assert_eq(tg.targets.n, 1);
    json_object_set_new(json_object_get(json_object_get(o, "metadata"), "labels"), "host",
                        json_string("node2"));
    k8s_object_update(&tg, &tg, 1, o);
    cr_assert_eq(tg.targets.n, 0, "__host__ of another node: dropped");
    cr_assert_str_eq(log_[1], "remove p/c app=a");
    json_object_set_new(json_object_get(json_object_get(o, "metadata"), "labels"), "host",
                        json_string("node1"));
    k8s_object_update(&tg, &tg, 1, o);
    cr_assert_eq(tg.targets.n, 1, "__host__ of this node: kept");
    json_decref(o);
}
