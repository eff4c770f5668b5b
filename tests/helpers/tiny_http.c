/* A callback-driven HTTP server for tests; see tiny_http.h. */
#include "tiny_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BODY (64u << 10)

struct bt_tiny_http {
    struct MHD_Daemon *d;
    bt_tiny_http_fn fn;
    void *ctx;
    pthread_mutex_t mu;
    char *cert, *key;
};

struct conn {
    char *body;
    size_t len;
    bool too_big;
};

static const char *header(struct MHD_Connection *c, const char *name)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    return v ? v : "";
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **con_cls)
{
    struct bt_tiny_http *s = cls;
    struct conn *k = *con_cls;
    if (!k) {
        k = calloc(1, sizeof(*k));
        if (!k || !(k->body = calloc(1, MAX_BODY + 1))) {
            free(k);
            return MHD_NO;
        }
        *con_cls = k;
        return MHD_YES;
    }
    if (*data_size) {
        size_t n = *data_size;
        if (k->len + n > MAX_BODY) {
            k->too_big = true;
            n = MAX_BODY - k->len;
        }
        memcpy(k->body + k->len, data, n);
        k->len += n;
        *data_size = 0;
        return MHD_YES;
    }
    struct bt_tiny_req rq = {.method = method,
                             .url = url,
                             .authorization = header(c, "Authorization"),
                             .content_type = header(c, "Content-Type"),
                             .host = header(c, "Host"),
                             .body = k->body,
                             .body_len = k->len};
    struct bt_tiny_resp *rs = calloc(1, sizeof(*rs));
    if (!rs)
        return MHD_NO;
    rs->status = 200;
    snprintf(rs->ctype, sizeof(rs->ctype), "application/json");
    pthread_mutex_lock(&s->mu);
    s->fn(s->ctx, &rq, rs);
    pthread_mutex_unlock(&s->mu);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(rs->body), rs->body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret = MHD_NO;
    if (r) {
        MHD_add_response_header(r, "Content-Type", rs->ctype);
        if (rs->location[0])
            MHD_add_response_header(r, "Location", rs->location);
        ret = MHD_queue_response(c, (unsigned)rs->status, r);
        MHD_destroy_response(r);
    }
    free(rs);
    return ret;
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    struct conn *k = *con_cls;
    if (k) {
        free(k->body);
        free(k);
        *con_cls = NULL;
    }
}

struct bt_tiny_http *bt_tiny_http_start_tls(bt_tiny_http_fn fn, void *ctx, const char *cert_pem,
                                            const char *key_pem)
{
    struct bt_tiny_http *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->fn = fn;
    s->ctx = ctx;
    pthread_mutex_init(&s->mu, NULL);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION;
    if (cert_pem) {
        s->cert = strdup(cert_pem);
        s->key = strdup(key_pem);
        s->d = MHD_start_daemon(flags | MHD_USE_TLS, 0, NULL, NULL, on_request, s,
                                MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_NOTIFY_COMPLETED, on_done, s,
                                MHD_OPTION_HTTPS_MEM_CERT, s->cert, MHD_OPTION_HTTPS_MEM_KEY,
                                s->key, MHD_OPTION_END);
    } else {
        s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &sa,
                                MHD_OPTION_NOTIFY_COMPLETED, on_done, s, MHD_OPTION_END);
    }
    if (!s->d) {
        bt_tiny_http_stop(s);
        return NULL;
    }
    return s;
}

struct bt_tiny_http *bt_tiny_http_start(bt_tiny_http_fn fn, void *ctx)
{
    return bt_tiny_http_start_tls(fn, ctx, NULL, NULL);
}

uint16_t bt_tiny_http_port(const struct bt_tiny_http *s)
{
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    return i ? i->port : 0;
}

void bt_tiny_http_stop(struct bt_tiny_http *s)
{
    if (!s)
        return;
    if (s->d)
        MHD_stop_daemon(s->d);
    pthread_mutex_destroy(&s->mu);
    free(s->cert);
    free(s->key);
    free(s);
}
