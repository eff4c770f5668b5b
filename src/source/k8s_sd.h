/*
 * k8s_sd: promtail's kubernetes_sd_configs, every role of Prometheus' Kubernetes discovery:
 * pods, nodes, services, endpoints, endpointslices and ingresses found through the Kubernetes
 * API become file targets, as Prometheus makes them (k8s_pod.h, k8s_svc.h).
 *
 * Connection: api_server (with tls_config, bearer_token, bearer_token_file, basic_auth,
 * authorization, proxy_url), or kubeconfig_file (server, CA, client certificate and key, token
 * or token file, user name and password of its current context), or, with neither, the
 * in-cluster config: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT with the service
 * account's token, CA and namespace from /var/run/secrets/kubernetes.io/serviceaccount
 * ($BPFTAIL_K8S_SERVICEACCOUNT_DIR overrides the directory). Token files are read again for
 * every request, so a rotated token is used from the next one on.
 *
 * Discovery: for each namespace of `namespaces` (names, own_namespace; none = all), LIST
 * /api/v1[/namespaces/<ns>]/pods with the pod role's label and field selectors (in pages of
 * 500 with continue tokens; objects gone are known after the last page), then WATCH from
 * the list's resourceVersion with allowWatchBookmarks. Watch events move the resourceVersion on;
 * a watch the server ends is opened again from it. 410 Gone (an ERROR event with code 410, or
 * the HTTP status) lists again (after a second if the watch was refused as soon as it opened); a
 * list after a re-list keeps the targets that did not change (no target is removed and added again,
 * so nothing is read twice). Other failures list again after a backoff of 1 s doubling to 30 s. All
 * requests are libcurl multi transfers on the loop; no thread.
 *
 * Targets: each pod target goes through the job's relabel rules (borrowed); a target without
 * __path__ afterwards, or whose __host__ is not this host's name ($HOSTNAME, else
 * gethostname), is dropped, as promtail does. The "__" labels other than __path__ and
 * __path_exclude__ are then removed, and equal label sets (a container with several ports)
 * are one target. The caller is told of each target that appears (add) and goes (remove)
 * exactly once. Role node lists and watches /api/v1/nodes instead (one target per node with
 * an address, k8s_pod.h; namespaces do not apply); roles service and endpoints their /api/v1
 * resources, endpointslice /apis/discovery.k8s.io/v1 and ingress /apis/networking.k8s.io/v1.
 * Roles endpoints and endpointslice also list and watch the services (with the role service's
 * selectors) and the pods (the role pod's) of each namespace and make no target before every
 * one of those has listed once, so targets carry their Service's and Pod's labels from the
 * start; a change of a service or pod makes the targets joined to it again. Loop thread only.
 */
#ifndef BT_K8S_SD_H
#define BT_K8S_SD_H

#include <stdbool.h>
#include <stddef.h>

struct bt_labels;
struct bt_loop;
struct bt_metrics;
struct bt_node;
struct bt_relabel;
struct bt_k8s_sd;

/* A target appeared (add true) or went away (add false). labels borrowed for the call. */
typedef void (*bt_k8s_sd_fn)(void *ctx, const struct bt_labels *labels, bool add);

/* Reads one kubernetes_sd_configs item and, with a loop, starts listing. NULL loop: config
 * check only (a kubeconfig file is read all the same). NULL on error with
 * "file:line:col: kubernetes_sd_configs: ..." in err. */
struct bt_k8s_sd *bt_k8s_sd_new(const struct bt_node *cfg, struct bt_loop *loop,
                                struct bt_metrics *metrics, struct bt_relabel *relabel,
                                const char *job, bt_k8s_sd_fn fn, void *ctx, char *err,
                                size_t errlen);
/* Stops every request; reports nothing (the caller keeps or drops the targets). */
void bt_k8s_sd_free(struct bt_k8s_sd *sd);
/* Targets currently reported / objects known (pods, nodes, endpoints, ...; not the services
 * watched for their labels). */
size_t bt_k8s_sd_targets(const struct bt_k8s_sd *sd);
size_t bt_k8s_sd_pods(const struct bt_k8s_sd *sd);

#endif
