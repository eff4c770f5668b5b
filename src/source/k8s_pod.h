/*
 * k8s_pod: the targets Prometheus' Kubernetes discovery (role pod) makes of one Pod object.
 *
 * Pure: no I/O. A pod without an IP yet (Pending, or evicted) has no targets, as in
 * Prometheus. Otherwise every container, init containers included, gives one target per
 * declared port, or one target if it declares none, with these labels:
 *   __address__                      podIP:port, or podIP alone ([podIP] if IPv6)
 *   __meta_kubernetes_namespace      metadata.namespace
 *   __meta_kubernetes_pod_name, _uid, _node_name, _ip, _host_ip, _phase
 *   __meta_kubernetes_pod_ready      "true"/"false"/"unknown" (the Ready condition)
 *   __meta_kubernetes_pod_label_<name>, _labelpresent_<name> ("true")
 *   __meta_kubernetes_pod_annotation_<name>, _annotationpresent_<name> ("true")
 *   __meta_kubernetes_pod_controller_kind, _controller_name (the ownerReference with controller)
 *   __meta_kubernetes_pod_container_name, _container_id (from the container's status),
 *   _container_image, _container_init ("true"/"false"),
 *   _container_port_name, _container_port_number, _container_port_protocol (with a port)
 * Label and annotation names are sanitized as Prometheus does: every character outside
 * [a-zA-Z0-9_] becomes '_'. An empty value leaves the label out (labels.h).
 */
#ifndef BT_K8S_POD_H
#define BT_K8S_POD_H

#include <stddef.h>

struct bt_labels;
struct json_t;

/* Receives one target's labels; it may change them (relabeling). Non-zero stops the walk. */
typedef int (*bt_k8s_target_fn)(void *ctx, struct bt_labels *labels);

/* Calls fn for every target of pod (a Pod object). Returns the number of targets, or -EINVAL
 * when pod is not an object with metadata.name, -ENOMEM, or fn's non-zero value. */
int bt_k8s_pod_targets(const struct json_t *pod, bt_k8s_target_fn fn, void *ctx);
/* The same from JSON text of a Pod or a PodList (its items in order): tests, tools. Returns
 * the number of targets; -EINVAL also for text that is not JSON. */
int bt_k8s_pod_targets_text(const char *text, size_t len, bt_k8s_target_fn fn, void *ctx);
/* The labels every target of pod carries, also the endpoint targets whose address is the pod:
 * __meta_kubernetes_namespace, the pod's name, uid, node_name, ip, host_ip, phase, ready,
 * label_*, labelpresent_*, annotation_*, annotationpresent_*, controller_kind and
 * controller_name. 0 or -ENOMEM. */
int bt_k8s_pod_labels(struct bt_labels *l, const struct json_t *pod);
/* "namespace/name" of a Pod (or Node: "/name") object into out; NULL without metadata.name. */
const char *bt_k8s_pod_key(const struct json_t *pod, char *out, size_t outlen);

/* prefix + name, every character of name outside [a-zA-Z0-9_] made '_', set to value. */
int bt_k8s_set_sanitized(struct bt_labels *l, const char *prefix, const char *name,
                         const char *value);
/* For each key of map (labels, annotations): vprefix<key> = value and pprefix<key> = "true".
 * 0 or -ENOMEM. */
int bt_k8s_map_labels(struct bt_labels *l, const struct json_t *map, const char *vprefix,
                      const char *pprefix);

/* Role node: the one target of a Node object, as Prometheus makes it:
 *   __address__                   <first address by type InternalIP, InternalDNS, ExternalIP,
 *                                  ExternalDNS, LegacyHostIP, Hostname>:<kubelet port>
 *   instance                      the node's name
 *   __meta_kubernetes_node_name, _provider_id
 *   __meta_kubernetes_node_label_<name>, _labelpresent_<name>, _annotation_<name>,
 *   _annotationpresent_<name>
 *   __meta_kubernetes_node_address_<type>   the first address of each type
 * A node without an address has no target. Returns 1, 0 or as bt_k8s_pod_targets. */
int bt_k8s_node_targets(const struct json_t *node, bt_k8s_target_fn fn, void *ctx);
/* The same from JSON text of a Node or a NodeList. */
int bt_k8s_node_targets_text(const char *text, size_t len, bt_k8s_target_fn fn, void *ctx);

#endif
