/* k8s_pod: the targets and labels Prometheus' pod role makes, from pods recorded from a real
 * cluster (tests/data/k8s) and from small made-up pods for the cases it does not show. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/labels.h"
#include "source/k8s_pod.h"

#define DATA BT_SOURCE_DIR "/tests/data/k8s/"

static struct bt_labels got[16];
static size_t n_got;

static int collect(void *ctx, struct bt_labels *l)
{
    (void)ctx;
    cr_assert_lt(n_got, 16);
    bt_labels_init(&got[n_got]);
    cr_assert_eq(bt_labels_copy(&got[n_got], l), 0);
    n_got++;
    return 0;
}

static void reset(void)
{
    for (size_t i = 0; i < n_got; i++)
        bt_labels_free(&got[i]);
    n_got = 0;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    static char buf[1 << 20];
    *len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    return buf;
}

static const struct bt_labels *find(const char *pod, const char *container)
{
    for (size_t i = 0; i < n_got; i++) {
        const char *p = bt_labels_get(&got[i], "__meta_kubernetes_pod_name");
        const char *c = bt_labels_get(&got[i], "__meta_kubernetes_pod_container_name");
        if (p && c && strcmp(p, pod) == 0 && strcmp(c, container) == 0)
            return &got[i];
    }
    cr_assert_fail("no target for %s/%s", pod, container);
    return NULL;
}

#define L(l, name) (bt_labels_get((l), (name)) ? bt_labels_get((l), (name)) : "<none>")

Test(k8s_pod, running_pods_give_one_target_per_container_port, .fini = reset)
{
    size_t len;
    char *text = slurp(DATA "pods_list_node1_running.json", &len);
    cr_assert_eq(bt_k8s_pod_targets_text(text, len, collect, NULL), 5);
    const struct bt_labels *s = find("web-1", "sidecar");
    cr_assert_str_eq(L(s, "__meta_kubernetes_namespace"), "logs");
    cr_assert_str_eq(L(s, "__meta_kubernetes_pod_uid"), "2b3a0916-62dc-4b00-9416-a1ec6913d962");
    cr_assert_str_eq(L(s, "__meta_kubernetes_pod_node_name"), "node1");
    cr_assert_str_eq(L(s, "__meta_kubernetes_pod_ip"), "10.88.0.19");
    cr_assert_str_eq(L(s, "__meta_kubernetes_pod_phase"), "Running");
    cr_assert_str_eq(L(s, "__meta_kubernetes_pod_ready"), "true");
    cr_assert_str_eq(L(s, "__meta_kubernetes_pod_label_app"), "web");
    cr_assert_str_eq(L(s, "__meta_kubernetes_pod_labelpresent_tier"), "true");
    cr_assert_str_eq(L(s, "__meta_kubernetes_pod_annotation_logs_example_com_parser"), "json");
    cr_assert_str_eq(L(s, "__meta_kubernetes_pod_annotationpresent_logs_example_com_parser"),
                     "true");
    cr_assert_str_eq(L(s, "__meta_kubernetes_pod_container_id"),
                     "containerd://"
                     "a0f9215ed720e66ff5079a031ba112b006715ab0ccf1104e2ab0f88c696e9f5a");
    cr_assert_str_eq(L(s, "__meta_kubernetes_pod_container_image"),
                     "docker.io/library/busybox:local");
    cr_assert_str_eq(L(s, "__meta_kubernetes_pod_container_init"), "false");
    cr_assert_str_eq(L(s, "__meta_kubernetes_pod_container_port_name"), "metrics");
    cr_assert_str_eq(L(s, "__meta_kubernetes_pod_container_port_number"), "9100");
    cr_assert_str_eq(L(s, "__meta_kubernetes_pod_container_port_protocol"), "TCP");
    cr_assert_str_eq(L(s, "__address__"), "10.88.0.19:9100");
    cr_assert_str_eq(L(s, "__meta_kubernetes_pod_host_ip"),
                     L(find("api-1", "api"), "__meta_kubernetes_pod_host_ip"));
    cr_assert_null(bt_labels_get(s, "__meta_kubernetes_pod_controller_kind"));
}

Test(k8s_pod, daemonset_pod_has_its_controller_and_no_port, .fini = reset)
{
    size_t len;
    char *text = slurp(DATA "pods_list_node1_running.json", &len);
    cr_assert_gt(bt_k8s_pod_targets_text(text, len, collect, NULL), 0);
    const struct bt_labels *a = find("log-agent-gj4ql", "agent");
    cr_assert_str_eq(L(a, "__meta_kubernetes_pod_controller_kind"), "DaemonSet");
    cr_assert_str_eq(L(a, "__meta_kubernetes_pod_controller_name"), "log-agent");
    cr_assert_str_eq(L(a, "__address__"), "192.0.2.2");
    cr_assert_str_eq(L(a, "__meta_kubernetes_pod_label_controller_revision_hash"), "7b44978dd5");
    cr_assert_null(bt_labels_get(a, "__meta_kubernetes_pod_container_port_number"));
}

Test(k8s_pod, pending_pods_without_an_ip_have_no_targets, .fini = reset)
{
    size_t len;
    char *text = slurp(DATA "pods_list_node1_pending.json", &len);
    cr_assert_eq(bt_k8s_pod_targets_text(text, len, collect, NULL), 0);
    cr_assert_eq(n_got, 0);
}

Test(k8s_pod, init_containers_ports_and_names_as_prometheus, .fini = reset)
{
    const char *pod =
        "{\"metadata\":{\"name\":\"p\",\"namespace\":\"n\",\"uid\":\"u\","
        "\"labels\":{\"app.kubernetes.io/name\":\"x\",\"empty\":\"\"},"
        "\"ownerReferences\":[{\"kind\":\"ReplicaSet\",\"name\":\"other\"},"
        "{\"kind\":\"ReplicaSet\",\"name\":\"rs-1\",\"controller\":true}]},"
        "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\",\"ports\":["
        "{\"containerPort\":80,\"protocol\":\"UDP\"},{\"containerPort\":81,\"name\":\"b\"}]}],"
        "\"initContainers\":[{\"name\":\"init\",\"image\":\"ii\"}]},"
        "\"status\":{\"podIP\":\"fd00::1\",\"phase\":\"Pending\",\"conditions\":["
        "{\"type\":\"Ready\",\"status\":\"False\"}],"
        "\"initContainerStatuses\":[{\"name\":\"init\",\"containerID\":\"cri-o://9\"}]}}";
    cr_assert_eq(bt_k8s_pod_targets_text(pod, strlen(pod), collect, NULL), 3);
    cr_assert_str_eq(L(&got[0], "__address__"), "[fd00::1]:80");
    cr_assert_str_eq(L(&got[0], "__meta_kubernetes_pod_container_port_protocol"), "UDP");
    cr_assert_null(bt_labels_get(&got[0], "__meta_kubernetes_pod_container_port_name"));
    cr_assert_str_eq(L(&got[1], "__meta_kubernetes_pod_container_port_name"), "b");
    cr_assert_str_eq(L(&got[1], "__meta_kubernetes_pod_container_port_protocol"), "TCP");
    cr_assert_str_eq(L(&got[2], "__meta_kubernetes_pod_container_name"), "init");
    cr_assert_str_eq(L(&got[2], "__meta_kubernetes_pod_container_init"), "true");
    cr_assert_str_eq(L(&got[2], "__meta_kubernetes_pod_container_id"), "cri-o://9");
    cr_assert_str_eq(L(&got[2], "__address__"), "[fd00::1]", "no port: IPv6 in brackets");
    cr_assert_str_eq(L(&got[2], "__meta_kubernetes_pod_ready"), "false");
    cr_assert_str_eq(L(&got[2], "__meta_kubernetes_pod_label_app_kubernetes_io_name"), "x");
    cr_assert_str_eq(L(&got[2], "__meta_kubernetes_pod_labelpresent_empty"), "true");
    cr_assert_str_eq(L(&got[2], "__meta_kubernetes_pod_controller_name"), "rs-1");
}

Test(k8s_pod, bad_input_is_an_error_not_a_crash, .fini = reset)
{
    cr_assert_eq(bt_k8s_pod_targets_text("not json", 8, collect, NULL), -EINVAL);
    cr_assert_eq(bt_k8s_pod_targets_text("{}", 2, collect, NULL), -EINVAL);
    cr_assert_eq(bt_k8s_pod_targets_text("[1]", 3, collect, NULL), -EINVAL);
    const char *odd = "{\"metadata\":{\"name\":\"p\",\"labels\":[1]},\"spec\":{\"containers\":7},"
                      "\"status\":{\"podIP\":\"1.2.3.4\"}}";
    cr_assert_eq(bt_k8s_pod_targets_text(odd, strlen(odd), collect, NULL), 0);
}

Test(k8s_pod, node_target_with_address_by_type_order_and_kubelet_port, .fini = reset)
{
    const char *node =
        "{\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\",\"labels\":{\"kubernetes.io/os\":"
        "\"linux\"},\"annotations\":{\"a/b\":\"c\"}},\"spec\":{\"providerID\":\"aws:///i-1\"},"
        "\"status\":{\"addresses\":[{\"type\":\"Hostname\",\"address\":\"n1.local\"},"
        "{\"type\":\"InternalIP\",\"address\":\"10.0.0.5\"},"
        "{\"type\":\"InternalIP\",\"address\":\"10.0.0.6\"}],"
        "\"daemonEndpoints\":{\"kubeletEndpoint\":{\"Port\":10250}}}}";
    cr_assert_eq(bt_k8s_node_targets_text(node, strlen(node), collect, NULL), 1);
    cr_assert_str_eq(L(&got[0], "__address__"), "10.0.0.5:10250");
    cr_assert_str_eq(L(&got[0], "instance"), "n1");
    cr_assert_str_eq(L(&got[0], "__meta_kubernetes_node_name"), "n1");
    cr_assert_str_eq(L(&got[0], "__meta_kubernetes_node_provider_id"), "aws:///i-1");
    cr_assert_str_eq(L(&got[0], "__meta_kubernetes_node_label_kubernetes_io_os"), "linux");
    cr_assert_str_eq(L(&got[0], "__meta_kubernetes_node_labelpresent_kubernetes_io_os"), "true");
    cr_assert_str_eq(L(&got[0], "__meta_kubernetes_node_annotation_a_b"), "c");
    cr_assert_str_eq(L(&got[0], "__meta_kubernetes_node_address_InternalIP"), "10.0.0.5");
    cr_assert_str_eq(L(&got[0], "__meta_kubernetes_node_address_Hostname"), "n1.local");
}

Test(k8s_pod, recorded_node_without_addresses_has_no_target, .fini = reset)
{
    size_t len;
    char *text = slurp(DATA "nodes_list.json", &len);
    cr_assert_eq(bt_k8s_node_targets_text(text, len, collect, NULL), 0);
    cr_assert_eq(bt_k8s_node_targets_text("{}", 2, collect, NULL), -EINVAL);
}
