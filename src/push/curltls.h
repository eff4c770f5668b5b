/*
 * curltls: applies a tls_config block (Prometheus' TLS settings) to a libcurl easy handle, for
 * the push client and its OAuth2 token requests alike: CA, client certificate and key as files
 * or inline PEM (curl copies them), insecure_skip_verify, min_version and max_version.
 * server_name is the caller's (it needs the URL).
 */
#ifndef BT_CURLTLS_H
#define BT_CURLTLS_H

#include <curl/curl.h>

struct bt_tls_config;

/* Sets the options of t on e; t is read, not kept. */
void bt_curl_set_tls(CURL *e, const struct bt_tls_config *t);

#endif
