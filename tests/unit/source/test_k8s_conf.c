/* k8s_conf: a kubernetes_sd_configs item, a kubeconfig file and the in-cluster service account
 * become a connection and the pod role's namespaces and selectors; what is not supported is an
 * error that names the place. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/node.h"
#include "source/k8s_sd_int.h"
#include "tmpdir.h"

static char dir[256], err[1024];
static struct bt_node *doc;
static struct k8s_conf conf;

static void setup(void)
{
    cr_assert_eq(bt_tmpdir_make(dir, sizeof(dir)), 0);
    memset(&conf, 0, sizeof(conf));
    err[0] = '\0';
}

static void teardown(void)
{
    k8s_conf_free(&conf);
    bt_node_free(doc);
    doc = NULL;
    bt_tmpdir_remove(dir);
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    unsetenv("BPFTAIL_K8S_SERVICEACCOUNT_DIR");
}

static int parse(const char *yaml, bool check)
{
    bt_node_free(doc);
    k8s_conf_free(&conf);
    memset(&conf, 0, sizeof(conf));
    doc = bt_yaml_parse(yaml, strlen(yaml), "c.yaml", err, sizeof(err));
    cr_assert_not_null(doc, "%s", err);
    return k8s_conf_parse(&conf, doc, check, err, sizeof(err));
}

TestSuite(k8s_conf, .init = setup, .fini = teardown);

Test(k8s_conf, api_server_selectors_namespaces_and_auth)
{
    cr_assert_eq(parse("role: pod\n"
                       "api_server: https://api.example:6443/\n"
                       "namespaces: {names: [a, b, a]}\n"
                       "selectors:\n"
                       "  - {role: pod, field: spec.nodeName=n1, label: app=x}\n"
                       "  - {role: node, field: metadata.name=n1}\n"
                       "tls_config: {ca_file: /ca.pem, insecure_skip_verify: true}\n"
                       "authorization: {type: Bearer, credentials_file: /tok}\n",
                       false),
                 0, "%s", err);
    cr_assert_str_eq(conf.conn.server, "https://api.example:6443");
    cr_assert_eq(conf.n_ns, 2);
    cr_assert_str_eq(conf.ns[1], "b");
    cr_assert_str_eq(conf.field_sel, "spec.nodeName=n1");
    cr_assert_str_eq(conf.label_sel, "app=x");
    cr_assert_str_eq(conf.conn.ca_file, "/ca.pem");
    cr_assert(conf.conn.insecure);
    cr_assert_str_eq(conf.conn.auth_scheme, "Bearer");
    cr_assert_str_eq(conf.conn.auth_cred_file, "/tok");
}

Test(k8s_conf, every_prometheus_role_is_read_and_others_refused)
{
    static const char *const names[] = {"pod",       "node",          "service",
                                        "endpoints", "endpointslice", "ingress"};
    for (int r = K8S_POD; r <= K8S_INGRESS; r++) {
        char y[128];
        snprintf(y, sizeof(y), "role: %s\napi_server: http://x\n", names[r]);
        cr_assert_eq(parse(y, false), 0, "%s: %s", names[r], err);
        cr_assert_eq(conf.role, (enum k8s_role)r);
    }
    cr_assert_neq(parse("role: pods\napi_server: http://x\n", false), 0);
    cr_assert(strstr(err, "c.yaml:1:7: kubernetes_sd_configs: unknown role pods"), "%s", err);
    cr_assert_neq(parse("api_server: http://x\n", false), 0);
    cr_assert(strstr(err, "role is required"), "%s", err);
}

Test(k8s_conf, selectors_of_the_role_apply_and_others_are_ignored)
{
    cr_assert_eq(parse("role: endpointslice\napi_server: http://x\nselectors:\n"
                       "  - {role: endpointslice, label: app=web}\n"
                       "  - {role: pod, field: spec.nodeName=n1}\n",
                       false),
                 0, "%s", err);
    cr_assert_str_eq(conf.label_sel, "app=web");
    cr_assert_null(conf.field_sel, "the pod selector is not for the slices");
    cr_assert_str_eq(conf.pod_field_sel, "spec.nodeName=n1");
    cr_assert_eq(parse("role: endpoints\napi_server: http://x\nselectors:\n"
                       "  - {role: service, label: tier=front}\n"
                       "  - {role: endpoints, field: metadata.name=web}\n"
                       "  - {role: pod, field: spec.nodeName=n1, label: app=web}\n",
                       false),
                 0, "%s", err);
    cr_assert_str_eq(conf.field_sel, "metadata.name=web");
    cr_assert_null(conf.label_sel);
    cr_assert_str_eq(conf.svc_label_sel, "tier=front", "for the services watched for labels");
    cr_assert_str_eq(conf.pod_field_sel, "spec.nodeName=n1", "for the pods watched for labels");
    cr_assert_str_eq(conf.pod_label_sel, "app=web");
    cr_assert_eq(parse("role: service\napi_server: http://x\nselectors:\n"
                       "  - {role: service, label: tier=front}\n",
                       false),
                 0, "%s", err);
    cr_assert_str_eq(conf.label_sel, "tier=front");
    cr_assert_null(conf.svc_label_sel);
    cr_assert_null(conf.pod_label_sel);
}

Test(k8s_conf, unknown_and_unsupported_keys_are_errors)
{
    cr_assert_neq(parse("role: pod\napi_server: http://x\nfoo: 1\n", false), 0);
    cr_assert(strstr(err, "c.yaml:3:1: kubernetes_sd_configs: foo is not supported"), "%s", err);
    cr_assert_neq(parse("role: pod\napi_server: http://x\noauth2: {client_id: a}\n", false), 0);
    cr_assert(strstr(err, "oauth2 is not supported"), "%s", err);
    cr_assert_neq(parse("role: pod\napi_server: http://x\nattach_metadata: {node: true}\n", false),
                  0);
    cr_assert(strstr(err, "node metadata is not supported yet"), "%s", err);
    cr_assert_eq(parse("role: pod\napi_server: http://x\nattach_metadata: {node: false}\n", false),
                 0, "%s", err);
    cr_assert_neq(parse("role: pod\napi_server: ftp://x\n", false), 0);
    cr_assert(strstr(err, "http:// or https://"), "%s", err);
    cr_assert_neq(parse("role: pod\napi_server: http://x\nbearer_token: a\n"
                        "basic_auth: {username: u, password: p}\n",
                        false),
                  0);
    cr_assert(strstr(err, "cannot both be set"), "%s", err);
    cr_assert_neq(parse("role: pod\napi_server: http://x\ntls_config: {server_name: a}\n", false),
                  0);
    cr_assert(strstr(err, "server_name is not supported"), "%s", err);
}

Test(k8s_conf, kubeconfig_current_context_with_inline_data_and_relative_paths)
{
    /* "-----BEGIN CERTIFICATE-----\n" and "KEY\n" in base64 */
    const char *kc = "apiVersion: v1\n"
                     "kind: Config\n"
                     "current-context: two\n"
                     "clusters:\n"
                     "  - name: c1\n"
                     "    cluster: {server: 'https://one:6443'}\n"
                     "  - name: c2\n"
                     "    cluster:\n"
                     "      server: https://two:6443\n"
                     "      certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==\n"
                     "contexts:\n"
                     "  - {name: one, context: {cluster: c1, user: u1}}\n"
                     "  - {name: two, context: {cluster: c2, user: u2}}\n"
                     "users:\n"
                     "  - {name: u1, user: {token: t1}}\n"
                     "  - name: u2\n"
                     "    user:\n"
                     "      client-certificate: certs/client.crt\n"
                     "      client-key-data: S0VZCg==\n"
                     "      tokenFile: tok\n";
    cr_assert_eq(bt_tmpdir_write(dir, "kubeconfig", kc, strlen(kc)), 0);
    char yaml[600], want[400];
    snprintf(yaml, sizeof(yaml), "role: pod\nkubeconfig_file: %s/kubeconfig\n", dir);
    cr_assert_eq(parse(yaml, false), 0, "%s", err);
    cr_assert_str_eq(conf.conn.server, "https://two:6443");
    cr_assert_eq(conf.conn.ca_len, 28);
    cr_assert_eq(memcmp(conf.conn.ca_pem, "-----BEGIN CERTIFICATE-----\n", 28), 0);
    cr_assert_eq(conf.conn.key_len, 4);
    cr_assert_eq(memcmp(conf.conn.key_pem, "KEY\n", 4), 0);
    snprintf(want, sizeof(want), "%s/certs/client.crt", dir);
    cr_assert_str_eq(conf.conn.cert_file, want);
    snprintf(want, sizeof(want), "%s/tok", dir);
    cr_assert_str_eq(conf.conn.auth_cred_file, want);

    snprintf(yaml, sizeof(yaml),
             "role: pod\nkubeconfig_file: %s/kubeconfig\napi_server: http://x\n", dir);
    cr_assert_neq(parse(yaml, false), 0);
    cr_assert(strstr(err, "cannot both be set"), "%s", err);
    snprintf(yaml, sizeof(yaml), "role: pod\nkubeconfig_file: %s/missing\n", dir);
    cr_assert_neq(parse(yaml, false), 0);
    cr_assert(strstr(err, "kubeconfig_file:"), "%s", err);
    const char *ex = "current-context: a\nclusters: [{name: c, cluster: {server: 'https://a'}}]\n"
                     "contexts: [{name: a, context: {cluster: c, user: u}}]\n"
                     "users: [{name: u, user: {exec: {command: aws}}}]\n";
    cr_assert_eq(bt_tmpdir_write(dir, "exec", ex, strlen(ex)), 0);
    snprintf(yaml, sizeof(yaml), "role: pod\nkubeconfig_file: %s/exec\n", dir);
    cr_assert_neq(parse(yaml, false), 0);
    cr_assert(strstr(err, "exec and auth-provider credentials are not supported"), "%s", err);
}

Test(k8s_conf, in_cluster_service_account_and_own_namespace)
{
    cr_assert_eq(bt_tmpdir_write(dir, "token", "abc\n", 4), 0);
    cr_assert_eq(bt_tmpdir_write(dir, "ca.crt", "x", 1), 0);
    cr_assert_eq(bt_tmpdir_write(dir, "namespace", "monitoring\n", 11), 0);
    setenv("BPFTAIL_K8S_SERVICEACCOUNT_DIR", dir, 1);
    cr_assert_neq(parse("role: pod\n", false), 0);
    cr_assert(strstr(err, "not running in a cluster"), "%s", err);
    cr_assert_eq(parse("role: pod\n", true), 0, "a config check outside the cluster: %s", err);
    setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    cr_assert_eq(
        parse("role: pod\nnamespaces: {own_namespace: true, names: [kube-system]}\n", false), 0,
        "%s", err);
    cr_assert_str_eq(conf.conn.server, "https://10.0.0.1:443");
    char want[400];
    snprintf(want, sizeof(want), "%s/token", dir);
    cr_assert_str_eq(conf.conn.auth_cred_file, want);
    snprintf(want, sizeof(want), "%s/ca.crt", dir);
    cr_assert_str_eq(conf.conn.ca_file, want);
    cr_assert_eq(conf.n_ns, 2);
    cr_assert_str_eq(conf.ns[0], "monitoring"); /* in the order of the keys */
    cr_assert_str_eq(conf.ns[1], "kube-system");
    char tok[64];
    cr_assert_eq(k8s_read_secret(conf.conn.auth_cred_file, tok, sizeof(tok)), 0);
    cr_assert_str_eq(tok, "abc");
}

Test(k8s_conf, role_node_takes_node_selectors_and_no_namespaces)
{
    cr_assert_eq(parse("role: node\napi_server: http://x\nnamespaces: {names: [a]}\n"
                       "selectors:\n  - {role: pod, field: spec.nodeName=n1}\n"
                       "  - {role: node, label: pool=logs}\n",
                       false),
                 0, "%s", err);
    cr_assert_eq(conf.role, K8S_NODE);
    cr_assert_eq(conf.n_ns, 0);
    cr_assert_null(conf.field_sel);
    cr_assert_str_eq(conf.label_sel, "pool=logs");
}
