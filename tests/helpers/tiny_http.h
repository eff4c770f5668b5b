/*
 * tiny_http: a small HTTP server on 127.0.0.1 whose answers a test writes in a callback:
 * an OAuth2 token endpoint, a redirecting proxy, anything that is not Loki. Requests are read
 * whole (bodies up to 64 KiB) and the callback runs on the server's thread, one request at a
 * time, so it may update the test's counters under the server's own serialisation.
 */
#ifndef BT_TEST_TINY_HTTP_H
#define BT_TEST_TINY_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct bt_tiny_req {
    const char *method, *url;
    const char *authorization; /* "" when absent */
    const char *content_type;  /* "" when absent */
    const char *host;          /* the Host header, "" when absent */
    const char *body;          /* NUL-terminated */
    size_t body_len;
};

struct bt_tiny_resp {
    int status;         /* 200 unless set */
    char ctype[64];     /* "application/json" unless set */
    char location[512]; /* Location header when not empty */
    char body[4096];
};

typedef void (*bt_tiny_http_fn)(void *ctx, const struct bt_tiny_req *req,
                                struct bt_tiny_resp *resp);

struct bt_tiny_http;

/* Starts the server on an ephemeral port. NULL on failure. */
struct bt_tiny_http *bt_tiny_http_start(bt_tiny_http_fn fn, void *ctx);
/* The same over HTTPS with a PEM certificate and key (file contents, copied). */
struct bt_tiny_http *bt_tiny_http_start_tls(bt_tiny_http_fn fn, void *ctx, const char *cert_pem,
                                            const char *key_pem);
uint16_t bt_tiny_http_port(const struct bt_tiny_http *s);
/* Stops the server (NULL is ignored). */
void bt_tiny_http_stop(struct bt_tiny_http *s);

#endif
