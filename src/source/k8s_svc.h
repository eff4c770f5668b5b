/*
 * k8s_svc: the targets Prometheus' Kubernetes discovery makes of the roles service, endpoints,
 * endpointslice and ingress, one object at a time. Pure: no I/O. Label and annotation names
 * are sanitized as for pods (k8s_pod.h); an empty value leaves the label out.
 *
 * Every target has __meta_kubernetes_namespace and the object's
 * __meta_kubernetes_<kind>_name, _label_<name>, _labelpresent_<name>, _annotation_<name>,
 * _annotationpresent_<name> (kind: service, endpoints, endpointslice, ingress).
 *
 * service: one target per spec.ports item, __address__ <name>.<namespace>.svc:<port>, with
 *   __meta_kubernetes_service_type, _cluster_ip (not for ExternalName), _external_name
 *   (ExternalName only), _loadbalancer_ip (LoadBalancer only: spec.loadBalancerIP as in
 *   Prometheus, else status.loadBalancer.ingress[0].ip), _port_name, _port_number,
 *   _port_protocol.
 * endpoints: one target per address (subsets[].addresses: ready "true", notReadyAddresses:
 *   "false") and port, __address__ ip:port, with __meta_kubernetes_endpoint_hostname,
 *   _node_name, _ready, _port_name, _port_protocol, _port_app_protocol,
 *   _address_target_kind, _address_target_name.
 * endpointslice: one target per endpoint, address and port, __address__ address:port, with
 *   __meta_kubernetes_endpointslice_address_type, _address_target_kind, _address_target_name,
 *   _endpoint_conditions_ready, _serving, _terminating (when set), _endpoint_hostname,
 *   _endpoint_node_name, _endpoint_zone, _endpoint_topology_<key> and
 *   _endpoint_topology_present_<key> (deprecatedTopology), _port, _port_name, _port_protocol,
 *   _port_app_protocol (an endpointslice port without a number: __address__ is the address).
 *   For both, svc (the Service of the same name, endpointslice: of the kubernetes.io/
 *   service-name label; NULL if unknown) adds __meta_kubernetes_service_name and the
 *   service's label and annotation labels. An address whose targetRef is a Pod that pods
 *   finds gets the pod's labels (bt_k8s_pod_labels) and, when a container (init containers
 *   after the others) declares the endpoint's port, __meta_kubernetes_pod_container_name,
 *   _container_image, _container_port_name, _container_port_number,
 *   _container_port_protocol and _container_init. Then every container port of those pods
 *   that no endpoint port covered gets a target of its own: __address__ podIP:port, the
 *   object's and service's labels, the pod's and that container port's labels, no
 *   endpoint labels (a pod without an IP gets none).
 * ingress: one target per rule and path (no paths: "/"), __address__ the rule's host, with
 *   __meta_kubernetes_ingress_host, _path, _scheme ("https" when the host matches a tls
 *   host, "*." wildcards included, else "http") and _class_name (spec.ingressClassName, else
 *   the kubernetes.io/ingress.class annotation).
 */
#ifndef BT_K8S_SVC_H
#define BT_K8S_SVC_H

#include "source/k8s_pod.h"

#include <stdbool.h>

/* The Pod namespace/name, or NULL if it is not known. The object stays valid during the walk. */
typedef const struct json_t *(*bt_k8s_pod_lookup_fn)(void *ctx, const char *ns, const char *name);

/* Each returns the number of targets, -EINVAL when obj is not an object with metadata.name,
 * -ENOMEM, or fn's non-zero value. pods NULL: no pod labels. */
int bt_k8s_service_targets(const struct json_t *svc, bt_k8s_target_fn fn, void *ctx);
int bt_k8s_endpoints_targets(const struct json_t *ep, const struct json_t *svc,
                             bt_k8s_pod_lookup_fn pods, void *pctx, bt_k8s_target_fn fn, void *ctx);
int bt_k8s_endpointslice_targets(const struct json_t *es, const struct json_t *svc,
                                 bt_k8s_pod_lookup_fn pods, void *pctx, bt_k8s_target_fn fn,
                                 void *ctx);
/* Whether an Endpoints or EndpointSlice object has an address whose targetRef is Pod ns/name. */
bool bt_k8s_refers_to_pod(const struct json_t *obj, const char *ns, const char *name);
int bt_k8s_ingress_targets(const struct json_t *ing, bt_k8s_target_fn fn, void *ctx);
/* The Service name an EndpointSlice belongs to (its kubernetes.io/service-name label), or
 * NULL. */
const char *bt_k8s_endpointslice_service(const struct json_t *es);

#endif
