/* k8s_svc: the targets and labels Prometheus' service, endpoints, endpointslice and ingress
 * roles make, from hand-written API objects in the v1 shapes (tests/data/k8s), and the join of
 * endpoint targets with their Service's labels through k8s_targets. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/node.h"
#include "core/labels.h"
#include "source/k8s_sd_int.h"
#include "source/k8s_svc.h"
#include "source/relabel.h"

#define DATA BT_SOURCE_DIR "/tests/data/k8s/"

static struct bt_labels got[32];
static size_t n_got;

static int collect(void *ctx, struct bt_labels *l)
{
    (void)ctx;
    cr_assert_lt(n_got, 32);
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

TestSuite(k8s_svc, .fini = reset);

static json_t *load(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), DATA "%s", name);
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    cr_assert_not_null(doc, "%s: %s", name, je.text);
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
    cr_assert_fail("no object %s", name);
    return NULL;
}

/* The target whose label name has value. */
static const struct bt_labels *find(const char *name, const char *value)
{
    for (size_t i = 0; i < n_got; i++) {
        const char *v = bt_labels_get(&got[i], name);
        if (v && strcmp(v, value) == 0)
            return &got[i];
    }
    cr_assert_fail("no target with %s=%s", name, value);
    return NULL;
}

#define L(l, name) (bt_labels_get((l), (name)) ? bt_labels_get((l), (name)) : "<none>")

Test(k8s_svc, service_gives_one_target_per_port_at_its_dns_name)
{
    json_t *doc = load("services_list.json");
    cr_assert_eq(bt_k8s_service_targets(item(doc, "web"), collect, NULL), 2);
    const struct bt_labels *m = find("__address__", "web.logs.svc:9100");
    cr_assert_str_eq(L(m, "__meta_kubernetes_namespace"), "logs");
    cr_assert_str_eq(L(m, "__meta_kubernetes_service_name"), "web");
    cr_assert_str_eq(L(m, "__meta_kubernetes_service_type"), "ClusterIP");
    cr_assert_str_eq(L(m, "__meta_kubernetes_service_cluster_ip"), "10.96.12.7");
    cr_assert_str_eq(L(m, "__meta_kubernetes_service_port_name"), "metrics");
    cr_assert_str_eq(L(m, "__meta_kubernetes_service_port_number"), "9100");
    cr_assert_str_eq(L(m, "__meta_kubernetes_service_port_protocol"), "TCP");
    cr_assert_str_eq(L(m, "__meta_kubernetes_service_label_app_kubernetes_io_part_of"), "shop");
    cr_assert_str_eq(L(m, "__meta_kubernetes_service_labelpresent_app"), "true");
    cr_assert_str_eq(L(m, "__meta_kubernetes_service_annotation_prometheus_io_scrape"), "true");
    cr_assert_str_eq(L(m, "__meta_kubernetes_service_annotationpresent_prometheus_io_scrape"),
                     "true");
    cr_assert_null(bt_labels_get(m, "__meta_kubernetes_service_external_name"));
    find("__address__", "web.logs.svc:80");
    cr_assert_eq(bt_k8s_service_targets(item(doc, "dns"), collect, NULL), 1);
    cr_assert_str_eq(L(&got[2], "__meta_kubernetes_service_port_protocol"), "UDP");
    json_decref(doc);
}

Test(k8s_svc, external_name_service_has_its_name_and_no_cluster_ip)
{
    json_t *doc = load("services_list.json");
    cr_assert_eq(bt_k8s_service_targets(item(doc, "upstream"), collect, NULL), 1);
    cr_assert_str_eq(L(&got[0], "__address__"), "upstream.logs.svc:5432");
    cr_assert_str_eq(L(&got[0], "__meta_kubernetes_service_type"), "ExternalName");
    cr_assert_str_eq(L(&got[0], "__meta_kubernetes_service_external_name"), "db.example.com");
    cr_assert_null(bt_labels_get(&got[0], "__meta_kubernetes_service_cluster_ip"));
    cr_assert_null(bt_labels_get(&got[0], "__meta_kubernetes_service_port_name"));
    json_decref(doc);
}

Test(k8s_svc, endpoints_give_one_target_per_address_and_port_with_service_labels)
{
    json_t *eps = load("endpoints_list.json"), *svcs = load("services_list.json");
    cr_assert_eq(
        bt_k8s_endpoints_targets(item(eps, "web"), item(svcs, "web"), NULL, NULL, collect, NULL),
        4);
    const struct bt_labels *r = find("__address__", "10.88.0.19:9100");
    cr_assert_str_eq(L(r, "__meta_kubernetes_namespace"), "logs");
    cr_assert_str_eq(L(r, "__meta_kubernetes_endpoints_name"), "web");
    cr_assert_str_eq(L(r, "__meta_kubernetes_endpoints_label_app"), "web");
    cr_assert_str_eq(L(r, "__meta_kubernetes_endpoint_ready"), "true");
    cr_assert_str_eq(L(r, "__meta_kubernetes_endpoint_node_name"), "node1");
    cr_assert_str_eq(L(r, "__meta_kubernetes_endpoint_port_name"), "metrics");
    cr_assert_str_eq(L(r, "__meta_kubernetes_endpoint_port_protocol"), "TCP");
    cr_assert_str_eq(L(r, "__meta_kubernetes_endpoint_port_app_protocol"), "http");
    cr_assert_str_eq(L(r, "__meta_kubernetes_endpoint_address_target_kind"), "Pod");
    cr_assert_str_eq(L(r, "__meta_kubernetes_endpoint_address_target_name"), "web-1");
    cr_assert_null(bt_labels_get(r, "__meta_kubernetes_endpoint_hostname"));
    cr_assert_str_eq(L(r, "__meta_kubernetes_service_name"), "web");
    cr_assert_str_eq(L(r, "__meta_kubernetes_service_label_app_kubernetes_io_part_of"), "shop");
    cr_assert_str_eq(L(r, "__meta_kubernetes_service_annotation_prometheus_io_scrape"), "true");
    cr_assert_null(bt_labels_get(r, "__meta_kubernetes_service_port_name"),
                   "the service's port labels belong to the service role");
    const struct bt_labels *n = find("__address__", "10.88.0.23:8080");
    cr_assert_str_eq(L(n, "__meta_kubernetes_endpoint_ready"), "false");
    cr_assert_str_eq(L(n, "__meta_kubernetes_endpoint_hostname"), "web-2");
    cr_assert_null(bt_labels_get(n, "__meta_kubernetes_endpoint_port_app_protocol"));
    json_decref(eps);
    json_decref(svcs);
}

Test(k8s_svc, endpoints_without_a_service_or_target_ref)
{
    json_t *eps = load("endpoints_list.json");
    cr_assert_eq(bt_k8s_endpoints_targets(item(eps, "legacy"), NULL, NULL, NULL, collect, NULL), 1);
    cr_assert_str_eq(L(&got[0], "__address__"), "192.0.2.40:3306");
    cr_assert_str_eq(L(&got[0], "__meta_kubernetes_endpoint_port_protocol"), "TCP");
    cr_assert_null(bt_labels_get(&got[0], "__meta_kubernetes_endpoint_port_name"));
    cr_assert_null(bt_labels_get(&got[0], "__meta_kubernetes_endpoint_address_target_kind"));
    cr_assert_null(bt_labels_get(&got[0], "__meta_kubernetes_service_name"));
    json_decref(eps);
}

/* Pods by "ns/name" for the endpoint roles' lookups: the items of a PodList. */
static const json_t *pod_in(void *ctx, const char *ns, const char *name)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get((json_t *)ctx, "items"), i, p)
    {
        const json_t *md = json_object_get(p, "metadata");
        if (strcmp(json_string_value(json_object_get(md, "name")), name) == 0 &&
            strcmp(json_string_value(json_object_get(md, "namespace")), ns) == 0)
            return p;
    }
    return NULL;
}

/* The labels Prometheus gives an endpoint target whose address is pod web-1, container c. */
static void assert_web1(const struct bt_labels *l, const char *c, const char *port_name,
                        const char *port)
{
    cr_assert_str_eq(L(l, "__meta_kubernetes_pod_name"), "web-1");
    cr_assert_str_eq(L(l, "__meta_kubernetes_pod_uid"), "2b3a0916-62dc-4b00-9416-a1ec6913d962");
    cr_assert_str_eq(L(l, "__meta_kubernetes_pod_ip"), "10.88.0.19");
    cr_assert_str_eq(L(l, "__meta_kubernetes_pod_host_ip"), "192.0.2.2");
    cr_assert_str_eq(L(l, "__meta_kubernetes_pod_node_name"), "node1");
    cr_assert_str_eq(L(l, "__meta_kubernetes_pod_phase"), "Running");
    cr_assert_str_eq(L(l, "__meta_kubernetes_pod_ready"), "true");
    cr_assert_str_eq(L(l, "__meta_kubernetes_pod_label_tier"), "front");
    cr_assert_str_eq(L(l, "__meta_kubernetes_pod_labelpresent_app"), "true");
    cr_assert_str_eq(L(l, "__meta_kubernetes_pod_annotation_logs_example_com_parser"), "json");
    cr_assert_str_eq(L(l, "__meta_kubernetes_pod_annotationpresent_logs_example_com_parser"),
                     "true");
    cr_assert_str_eq(L(l, "__meta_kubernetes_pod_container_name"), c);
    cr_assert_str_eq(L(l, "__meta_kubernetes_pod_container_image"),
                     "docker.io/library/busybox:local");
    cr_assert_str_eq(L(l, "__meta_kubernetes_pod_container_port_name"), port_name);
    cr_assert_str_eq(L(l, "__meta_kubernetes_pod_container_port_number"), port);
    cr_assert_str_eq(L(l, "__meta_kubernetes_pod_container_port_protocol"), "TCP");
    cr_assert_str_eq(L(l, "__meta_kubernetes_pod_container_init"), "false");
    cr_assert_null(bt_labels_get(l, "__meta_kubernetes_pod_container_id"),
                   "Prometheus gives endpoint targets no container id");
}

Test(k8s_svc, endpoint_targets_of_a_known_pod_carry_its_labels_and_its_containers)
{
    json_t *eps = load("endpoints_list.json"), *svcs = load("services_list.json");
    json_t *pods = load("pods_list_node1_running.json");
    cr_assert_eq(
        bt_k8s_endpoints_targets(item(eps, "web"), item(svcs, "web"), pod_in, pods, collect, NULL),
        4, "both ports of web-1 are endpoint ports: no target of its own");
    const struct bt_labels *h = find("__address__", "10.88.0.19:8080");
    assert_web1(h, "web", "http", "8080");
    cr_assert_str_eq(L(h, "__meta_kubernetes_endpoint_port_name"), "http");
    cr_assert_str_eq(L(h, "__meta_kubernetes_endpoints_name"), "web");
    cr_assert_str_eq(L(h, "__meta_kubernetes_service_name"), "web");
    cr_assert_str_eq(L(h, "__meta_kubernetes_namespace"), "logs");
    assert_web1(find("__address__", "10.88.0.19:9100"), "sidecar", "metrics", "9100");
    const struct bt_labels *n = find("__address__", "10.88.0.23:8080");
    cr_assert_null(bt_labels_get(n, "__meta_kubernetes_pod_name"), "web-2 is not known");
    cr_assert_null(bt_labels_get(n, "__meta_kubernetes_pod_container_name"));
    cr_assert_str_eq(L(n, "__meta_kubernetes_endpoint_address_target_name"), "web-2");
    json_decref(eps);
    json_decref(svcs);
    json_decref(pods);
}

Test(k8s_svc, container_ports_no_endpoint_covers_get_targets_of_their_own)
{
    json_t *eps = load("endpoints_list.json"), *pods = load("pods_list_node1_running.json");
    json_t *web = item(eps, "web");
    json_t *ports = json_object_get(json_array_get(json_object_get(web, "subsets"), 0), "ports");
    json_array_remove(ports, 1); /* only http (8080) is an endpoint port now */
    json_t *pod = (json_t *)pod_in(pods, "logs", "web-1");
    json_t *owners = json_loads("[{\"kind\":\"ReplicaSet\",\"name\":\"web-5d8f\",\"controller\":"
                                "true}]",
                                0, NULL);
    json_object_set_new(json_object_get(pod, "metadata"), "ownerReferences", owners);
    json_t *init = json_loads("[{\"name\":\"proxy\",\"image\":\"proxy:1\",\"restartPolicy\":"
                              "\"Always\",\"ports\":[{\"name\":\"admin\",\"containerPort\":9901,"
                              "\"protocol\":\"TCP\"}]}]",
                              0, NULL);
    json_object_set_new(json_object_get(pod, "spec"), "initContainers", init);
    cr_assert_eq(bt_k8s_endpoints_targets(web, NULL, pod_in, pods, collect, NULL), 4);
    assert_web1(find("__address__", "10.88.0.19:8080"), "web", "http", "8080");
    const struct bt_labels *m = find("__address__", "10.88.0.19:9100");
    assert_web1(m, "sidecar", "metrics", "9100");
    cr_assert_str_eq(L(m, "__meta_kubernetes_endpoints_name"), "web");
    cr_assert_str_eq(L(m, "__meta_kubernetes_pod_controller_kind"), "ReplicaSet");
    cr_assert_str_eq(L(m, "__meta_kubernetes_pod_controller_name"), "web-5d8f");
    cr_assert_null(bt_labels_get(m, "__meta_kubernetes_endpoint_port_name"),
                   "not an endpoint port: no endpoint labels");
    cr_assert_null(bt_labels_get(m, "__meta_kubernetes_endpoint_ready"));
    const struct bt_labels *i = find("__address__", "10.88.0.19:9901");
    cr_assert_str_eq(L(i, "__meta_kubernetes_pod_container_name"), "proxy");
    cr_assert_str_eq(L(i, "__meta_kubernetes_pod_container_init"), "true");
    cr_assert_str_eq(L(i, "__meta_kubernetes_pod_container_port_name"), "admin");
    find("__address__", "10.88.0.23:8080");
    json_decref(eps);
    json_decref(pods);
}

Test(k8s_svc, endpointslice_targets_of_a_known_pod_carry_its_labels)
{
    json_t *es = load("endpointslices_list.json"), *pods = load("pods_list_node1_running.json");
    json_t *web = item(es, "web-7xk2p");
    cr_assert_eq(bt_k8s_endpointslice_targets(web, NULL, pod_in, pods, collect, NULL), 4);
    const struct bt_labels *h = find("__address__", "10.88.0.19:9100");
    assert_web1(h, "sidecar", "metrics", "9100");
    cr_assert_str_eq(L(h, "__meta_kubernetes_endpointslice_port"), "9100");
    cr_assert_str_eq(L(h, "__meta_kubernetes_endpointslice_endpoint_conditions_ready"), "true");
    cr_assert_null(
        bt_labels_get(find("__address__", "10.88.0.23:8080"), "__meta_kubernetes_pod_name"));
    reset();
    /* A port without a number stands for all ports: the address alone, no container match, and
     * every container port of the pod gets a target of its own. */
    json_t *ports = json_loads("[{\"name\":\"all\",\"protocol\":\"TCP\"}]", 0, NULL);
    json_object_set_new(web, "ports", ports);
    cr_assert_eq(bt_k8s_endpointslice_targets(web, NULL, pod_in, pods, collect, NULL), 4);
    const struct bt_labels *a = find("__address__", "10.88.0.19");
    cr_assert_str_eq(L(a, "__meta_kubernetes_pod_name"), "web-1");
    cr_assert_null(bt_labels_get(a, "__meta_kubernetes_endpointslice_port"));
    cr_assert_null(bt_labels_get(a, "__meta_kubernetes_pod_container_name"));
    find("__address__", "10.88.0.23");
    assert_web1(find("__address__", "10.88.0.19:8080"), "web", "http", "8080");
    assert_web1(find("__address__", "10.88.0.19:9100"), "sidecar", "metrics", "9100");
    json_decref(es);
    json_decref(pods);
}

Test(k8s_svc, loadbalancer_service_has_its_address)
{
    json_t *doc = load("services_list.json");
    json_t *svc = json_deep_copy(item(doc, "web"));
    json_t *spec = json_object_get(svc, "spec");
    json_object_set_new(spec, "type", json_string("LoadBalancer"));
    json_object_set_new(svc, "status",
                        json_loads("{\"loadBalancer\":{\"ingress\":[{\"ip\":\"203.0.113.7\"},"
                                   "{\"ip\":\"203.0.113.8\"}]}}",
                                   0, NULL));
    cr_assert_eq(bt_k8s_service_targets(svc, collect, NULL), 2);
    cr_assert_str_eq(L(&got[0], "__meta_kubernetes_service_loadbalancer_ip"), "203.0.113.7");
    cr_assert_str_eq(L(&got[0], "__meta_kubernetes_service_cluster_ip"), "10.96.12.7");
    reset();
    json_object_set_new(spec, "loadBalancerIP", json_string("203.0.113.1"));
    cr_assert_eq(bt_k8s_service_targets(svc, collect, NULL), 2);
    cr_assert_str_eq(L(&got[1], "__meta_kubernetes_service_loadbalancer_ip"), "203.0.113.1",
                     "the spec's address first, as Prometheus reads it");
    reset();
    cr_assert_eq(bt_k8s_service_targets(item(doc, "web"), collect, NULL), 2);
    cr_assert_null(bt_labels_get(&got[0], "__meta_kubernetes_service_loadbalancer_ip"),
                   "only for type LoadBalancer");
    json_decref(svc);
    json_decref(doc);
}

Test(k8s_svc, endpointslice_gives_one_target_per_endpoint_address_and_port)
{
    json_t *es = load("endpointslices_list.json"), *svcs = load("services_list.json");
    json_t *web = item(es, "web-7xk2p");
    cr_assert_str_eq(bt_k8s_endpointslice_service(web), "web");
    cr_assert_eq(bt_k8s_endpointslice_targets(web, item(svcs, "web"), NULL, NULL, collect, NULL),
                 4);
    const struct bt_labels *r = find("__address__", "10.88.0.19:8080");
#define E "__meta_kubernetes_endpointslice_"
    cr_assert_str_eq(L(r, "__meta_kubernetes_namespace"), "logs");
    cr_assert_str_eq(L(r, E "name"), "web-7xk2p");
    cr_assert_str_eq(L(r, E "label_kubernetes_io_service_name"), "web");
    cr_assert_str_eq(L(r, E "labelpresent_endpointslice_kubernetes_io_managed_by"), "true");
    cr_assert_str_eq(L(r, E "address_type"), "IPv4");
    cr_assert_str_eq(L(r, E "address_target_kind"), "Pod");
    cr_assert_str_eq(L(r, E "address_target_name"), "web-1");
    cr_assert_str_eq(L(r, E "endpoint_conditions_ready"), "true");
    cr_assert_str_eq(L(r, E "endpoint_conditions_serving"), "true");
    cr_assert_str_eq(L(r, E "endpoint_conditions_terminating"), "false");
    cr_assert_str_eq(L(r, E "endpoint_node_name"), "node1");
    cr_assert_str_eq(L(r, E "endpoint_zone"), "zone-a");
    cr_assert_str_eq(L(r, E "port"), "8080");
    cr_assert_str_eq(L(r, E "port_name"), "http");
    cr_assert_str_eq(L(r, E "port_protocol"), "TCP");
    cr_assert_null(bt_labels_get(r, E "port_app_protocol"));
    cr_assert_str_eq(L(r, "__meta_kubernetes_service_name"), "web");
    cr_assert_str_eq(L(r, "__meta_kubernetes_service_label_app"), "web");
    const struct bt_labels *t = find("__address__", "10.88.0.23:9100");
    cr_assert_str_eq(L(t, E "endpoint_conditions_ready"), "false");
    cr_assert_str_eq(L(t, E "endpoint_conditions_terminating"), "true");
    cr_assert_str_eq(L(t, E "endpoint_hostname"), "web-2");
    cr_assert_str_eq(L(t, E "endpoint_topology_kubernetes_io_hostname"), "node1");
    cr_assert_str_eq(L(t, E "endpoint_topology_present_kubernetes_io_hostname"), "true");
    cr_assert_str_eq(L(t, E "port_app_protocol"), "http");
    json_decref(es);
    json_decref(svcs);
}

Test(k8s_svc, endpointslice_ipv6_addresses_go_in_brackets_and_unset_conditions_stay_out)
{
    json_t *es = load("endpointslices_list.json");
    cr_assert_eq(
        bt_k8s_endpointslice_targets(item(es, "dns6-qq9rt"), NULL, NULL, NULL, collect, NULL), 1);
    cr_assert_str_eq(L(&got[0], "__address__"), "[fd00:10:88::5]:53");
    cr_assert_str_eq(L(&got[0], E "address_type"), "IPv6");
    cr_assert_str_eq(L(&got[0], E "port_protocol"), "UDP");
    cr_assert_null(bt_labels_get(&got[0], E "endpoint_conditions_ready"));
    cr_assert_null(bt_labels_get(&got[0], "__meta_kubernetes_service_name"));
    json_decref(es);
}

Test(k8s_svc, ingress_gives_one_target_per_rule_and_path)
{
    json_t *doc = load("ingresses_list.json");
    cr_assert_eq(bt_k8s_ingress_targets(item(doc, "shop"), collect, NULL), 4);
#define I "__meta_kubernetes_ingress_"
    const struct bt_labels *s = find(I "path", "/static");
    cr_assert_str_eq(L(s, "__address__"), "shop.example.com");
    cr_assert_str_eq(L(s, I "host"), "shop.example.com");
    cr_assert_str_eq(L(s, I "scheme"), "https");
    cr_assert_str_eq(L(s, I "name"), "shop");
    cr_assert_str_eq(L(s, I "class_name"), "nginx");
    cr_assert_str_eq(L(s, I "label_app"), "web");
    cr_assert_str_eq(L(s, I "annotation_nginx_ingress_kubernetes_io_rewrite_target"), "/");
    cr_assert_str_eq(L(s, "__meta_kubernetes_namespace"), "logs");
    const struct bt_labels *w = find("__address__", "v1.api.example.com");
    cr_assert_str_eq(L(w, I "scheme"), "https", "a *. tls host covers one label");
    cr_assert_str_eq(L(w, I "path"), "/", "a path left out is /");
    const struct bt_labels *p = find("__address__", "plain.example.com");
    cr_assert_str_eq(L(p, I "scheme"), "http");
    cr_assert_str_eq(L(p, I "path"), "/", "a rule without paths is one target at /");
    json_decref(doc);
}

Test(k8s_svc, ingress_without_host_and_with_the_class_annotation)
{
    json_t *doc = load("ingresses_list.json");
    cr_assert_eq(bt_k8s_ingress_targets(item(doc, "old"), collect, NULL), 1);
    cr_assert_null(bt_labels_get(&got[0], "__address__"));
    cr_assert_str_eq(L(&got[0], I "path"), "/old");
    cr_assert_str_eq(L(&got[0], I "scheme"), "http");
    cr_assert_str_eq(L(&got[0], I "class_name"), "traefik");
    json_decref(doc);
}

Test(k8s_svc, bad_objects_are_errors_not_crashes)
{
    json_t *bad = json_loads("{\"metadata\":{\"name\":\"x\",\"labels\":7},\"spec\":{\"ports\":"
                             "[1,{\"port\":\"a\"}]},\"subsets\":{},\"endpoints\":[{\"addresses\":"
                             "[5]}],\"ports\":7}",
                             0, NULL);
    json_t *empty = json_object();
    cr_assert_eq(bt_k8s_service_targets(empty, collect, NULL), -EINVAL);
    cr_assert_eq(bt_k8s_endpoints_targets(empty, NULL, NULL, NULL, collect, NULL), -EINVAL);
    cr_assert_eq(bt_k8s_endpointslice_targets(NULL, NULL, NULL, NULL, collect, NULL), -EINVAL);
    cr_assert_eq(bt_k8s_ingress_targets(empty, collect, NULL), -EINVAL);
    cr_assert_eq(bt_k8s_service_targets(bad, collect, NULL), 2);
    cr_assert_eq(bt_k8s_endpoints_targets(bad, bad, NULL, NULL, collect, NULL), 0);
    cr_assert_eq(bt_k8s_endpointslice_targets(bad, NULL, NULL, NULL, collect, NULL), 0);
    cr_assert_eq(bt_k8s_ingress_targets(bad, collect, NULL), 0);
    json_decref(bad);
    json_decref(empty);
}

/* ---- the join through k8s_targets ---- */

static char log_[32][256];
static size_t n_log;

static void on_target(void *ctx, const struct bt_labels *l, bool add)
{
    (void)ctx;
    cr_assert_lt(n_log, 32);
    snprintf(log_[n_log++], sizeof(log_[0]), "%s %s svc=%s", add ? "add" : "remove",
             bt_labels_get(l, "addr"), bt_labels_get(l, "part") ? bt_labels_get(l, "part") : "-");
}

Test(k8s_svc, endpoint_targets_get_the_service_labels_when_the_service_comes_and_goes)
{
    const char *rules = "- source_labels: [__address__]\n  target_label: addr\n"
                        "- source_labels: [__meta_kubernetes_service_label_app_kubernetes_io_"
                        "part_of]\n  target_label: part\n"
                        "- source_labels: [__meta_kubernetes_endpoint_port_name]\n"
                        "  regex: http\n  action: keep\n"
                        "- target_label: __path__\n  replacement: /var/log/x.log\n";
    char err[512];
    struct bt_node *doc = bt_yaml_parse(rules, strlen(rules), "r.yaml", err, sizeof(err));
    cr_assert_not_null(doc, "%s", err);
    struct bt_relabel *rel = bt_relabel_new(doc, err, sizeof(err));
    cr_assert_not_null(rel, "%s", err);
    struct k8s_targets tg;
    k8s_targets_init(&tg, K8S_ENDPOINTS, rel, "job", on_target, NULL);
    json_t *eps = load("endpoints_list.json"), *svcs = load("services_list.json");
    int owner, aux;
    k8s_object_update(&tg, &owner, 1, item(eps, "web"));
    cr_assert_eq(n_log, 2);
    cr_assert_str_eq(log_[0], "add 10.88.0.19:8080 svc=-");
    k8s_join_update(&tg, K8S_JOIN_SERVICE, &aux, 1, item(svcs, "web"));
    k8s_join_update(&tg, K8S_JOIN_SERVICE, &aux, 1, item(svcs, "dns"));
    cr_assert_eq(n_log, 6, "the two targets are made again with the service's labels");
    cr_assert_str_eq(log_[2], "remove 10.88.0.19:8080 svc=-");
    cr_assert_str_eq(log_[4], "add 10.88.0.19:8080 svc=shop");
    k8s_join_update(&tg, K8S_JOIN_SERVICE, &aux, 2, item(svcs, "web"));
    cr_assert_eq(n_log, 6, "an unchanged service changes nothing");
    k8s_joins_sweep(&tg, K8S_JOIN_SERVICE, &aux, 3);
    cr_assert_eq(n_log, 10, "a service gone takes its labels away");
    cr_assert_str_eq(log_[9], "add 10.88.0.23:8080 svc=-");
    k8s_object_delete(&tg, item(eps, "web"));
    cr_assert_eq(n_log, 12);
    cr_assert_eq(tg.targets.n, 0);
    k8s_targets_free(&tg);
    bt_relabel_free(rel);
    bt_node_free(doc);
    json_decref(eps);
    json_decref(svcs);
}

Test(k8s_svc, endpoint_targets_wait_for_the_first_service_list)
{
    const char *rules = "- source_labels: [__address__]\n  target_label: addr\n"
                        "- source_labels: [__meta_kubernetes_service_label_app_kubernetes_io_"
                        "part_of]\n  target_label: part\n"
                        "- target_label: __path__\n  replacement: /var/log/x.log\n";
    char err[512];
    struct bt_node *doc = bt_yaml_parse(rules, strlen(rules), "r.yaml", err, sizeof(err));
    cr_assert_not_null(doc, "%s", err);
    struct bt_relabel *rel = bt_relabel_new(doc, err, sizeof(err));
    cr_assert_not_null(rel, "%s", err);
    struct k8s_targets tg;
    k8s_targets_init(&tg, K8S_ENDPOINTSLICE, rel, "job", on_target, NULL);
    tg.hold = true;
    json_t *es = load("endpointslices_list.json"), *svcs = load("services_list.json");
    int owner, aux;
    k8s_object_update(&tg, &owner, 1, item(es, "web-7xk2p"));
    cr_assert_eq(n_log, 0, "no target before the services are known");
    k8s_join_update(&tg, K8S_JOIN_SERVICE, &aux, 1, item(svcs, "web"));
    cr_assert_eq(n_log, 0);
    k8s_joins_synced(&tg);
    cr_assert_eq(n_log, 4);
    for (size_t i = 0; i < n_log; i++)
        cr_assert(strstr(log_[i], "add ") && strstr(log_[i], "svc=shop"), "%s", log_[i]);
    k8s_targets_free(&tg);
    bt_relabel_free(rel);
    bt_node_free(doc);
    json_decref(es);
    json_decref(svcs);
}

static void on_pod_log(void *ctx, const struct bt_labels *l, bool add)
{
    (void)ctx;
    cr_assert_lt(n_log, 32);
    const char *t = bt_labels_get(l, "tier");
    snprintf(log_[n_log++], sizeof(log_[0]), "%s %s tier=%s", add ? "add" : "remove",
             bt_labels_get(l, "addr"), t ? t : "-");
}

Test(k8s_svc, endpoint_targets_wait_for_the_pods_and_follow_their_changes)
{
    const char *rules = "- source_labels: [__address__]\n  target_label: addr\n"
                        "- source_labels: [__meta_kubernetes_pod_label_tier]\n"
                        "  target_label: tier\n"
                        "- source_labels: [__meta_kubernetes_endpoint_port_name]\n"
                        "  regex: http\n  action: keep\n"
                        "- target_label: __path__\n  replacement: /var/log/x.log\n";
    char err[512];
    struct bt_node *doc = bt_yaml_parse(rules, strlen(rules), "r.yaml", err, sizeof(err));
    cr_assert_not_null(doc, "%s", err);
    struct bt_relabel *rel = bt_relabel_new(doc, err, sizeof(err));
    cr_assert_not_null(rel, "%s", err);
    struct k8s_targets tg;
    n_log = 0;
    k8s_targets_init(&tg, K8S_ENDPOINTS, rel, "job", on_pod_log, NULL);
    tg.hold = true;
    json_t *eps = load("endpoints_list.json"), *pods = load("pods_list_node1_running.json");
    int owner, svc_w, pod_w;
    k8s_object_update(&tg, &owner, 1, item(eps, "web"));
    k8s_join_update(&tg, K8S_JOIN_POD, &pod_w, 1, item(pods, "web-1"));
    k8s_join_update(&tg, K8S_JOIN_POD, &pod_w, 1, item(pods, "api-1"));
    cr_assert_eq(n_log, 0, "no target before the services and pods are known");
    (void)svc_w;
    k8s_joins_synced(&tg);
    cr_assert_eq(n_log, 2);
    cr_assert_str_eq(log_[0], "add 10.88.0.19:8080 tier=front");
    cr_assert_str_eq(log_[1], "add 10.88.0.23:8080 tier=-");
    json_t *web1 = json_deep_copy(item(pods, "web-1"));
    json_object_set_new(json_object_get(json_object_get(web1, "metadata"), "labels"), "tier",
                        json_string("back"));
    k8s_join_update(&tg, K8S_JOIN_POD, &pod_w, 1, web1);
    cr_assert_eq(n_log, 4, "the pod's change makes its endpoint's targets again");
    cr_assert_str_eq(log_[2], "remove 10.88.0.19:8080 tier=front");
    cr_assert_str_eq(log_[3], "add 10.88.0.19:8080 tier=back");
    k8s_join_update(&tg, K8S_JOIN_POD, &pod_w, 2, item(pods, "api-1"));
    k8s_join_update(&tg, K8S_JOIN_POD, &pod_w, 2, web1);
    cr_assert_eq(n_log, 4, "a pod no address refers to, or unchanged, changes nothing");
    k8s_join_delete(&tg, K8S_JOIN_POD, web1);
    cr_assert_eq(n_log, 6, "a pod gone takes its labels away");
    cr_assert_str_eq(log_[5], "add 10.88.0.19:8080 tier=-");
    k8s_join_update(&tg, K8S_JOIN_POD, &pod_w, 3, item(pods, "web-1"));
    cr_assert_eq(n_log, 8);
    k8s_joins_sweep(&tg, K8S_JOIN_POD, &pod_w, 4);
    cr_assert_eq(n_log, 10, "a pod a list no longer has is gone too");
    cr_assert_str_eq(log_[9], "add 10.88.0.19:8080 tier=-");
    json_decref(web1);
    k8s_targets_free(&tg);
    bt_relabel_free(rel);
    bt_node_free(doc);
    json_decref(eps);
    json_decref(pods);
}
