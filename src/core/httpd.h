/*
 * httpd: the agent's HTTP server (/metrics, /ready, /targets, /config, /reload, / → /targets).
 *
 * Runs inside the agent's epoll loop, never in a thread of its own: libmicrohttpd is started in
 * external-polling epoll mode, its epoll fd is registered with the loop and MHD_run is called
 * when it is readable, plus a one-shot loop timer that exists only while MHD asks for a
 * timeout (open connections), so an idle agent with no HTTP clients never wakes up for it.
 * Handlers therefore run on the loop thread and may read agent state without locks.
 *
 * The server owns its listen socket and connections. It does not own the handlers' context or
 * the metrics registry (borrowed; they must outlive the server). Request bodies are not needed
 * by the built-in endpoints and are refused past BT_HTTPD_MAX_BODY bytes (413, or connection
 * closed). A server may also route every POST to a generic handler (the Docker plugin's
 * protocol); its bodies are kept, up to post_max_body. Responses built by handlers are capped
 * at BT_HTTPD_MAX_RESPONSE bytes. bt_httpd_new listens on TCP, bt_httpd_new_unix on a unix
 * socket path (replacing a stale socket file, never another kind of file). A server with a
 * `request` handler (a receiver's own server, the Loki push API) hands every whole request to
 * it instead, with bodies up to its max_body. A server keeps at most max_connections (64 by
 * default) open and closes further ones at once. Each limit hit goes to the limit_hit handler;
 * a server without one counts refused connections and 413s in bpftail_http_refused_total
 * {port, reason} when the handlers give a metrics registry.
 */
#ifndef BT_HTTPD_H
#define BT_HTTPD_H

#include <stddef.h>

struct bt_buf;
struct bt_loop;
struct bt_metrics;
struct bt_httpd;

/* The limits a server enforces on its clients, as reported to a limit_hit handler. */
enum bt_httpd_limit {
    BT_HTTPD_LIMIT_CONNECTIONS,  /* a connection past max_connections, closed at once */
    BT_HTTPD_LIMIT_IDLE_TIMEOUT, /* a connection closed after idle_timeout_s without traffic */
    BT_HTTPD_LIMIT_BODY,         /* a request body past its cap, answered 413 */
};

#define BT_HTTPD_MAX_BODY (64 * 1024)
#define BT_HTTPD_MAX_RESPONSE (64 * 1024 * 1024)

/* A request handed whole to a `request` handler (see below). Valid for the call only. */
struct bt_http_request {
    const char *method, *url;
    const char *body; /* the whole body, NUL-terminated; body_len bytes */
    size_t body_len;
    void *conn; /* for bt_http_header */
};
/* The value of request header name (case-insensitive), or NULL. */
const char *bt_http_header(const struct bt_http_request *r, const char *name);

/* Endpoint callbacks, all optional. Each fills the given empty buffer and returns 0, or
 * nonzero for failure (ready: "not ready"). Called on the loop thread. */
struct bt_httpd_handlers {
    struct bt_metrics *metrics; /* /metrics; NULL = process metrics only */
    int (*ready)(
        void *ctx,
        struct bt_buf *msg); /* /ready: 0 = 200 "Ready", else 500 msg; NULL = always ready */
    int (*targets)(void *ctx, struct bt_buf *json); /* /targets: JSON body; NULL = 404 */
    int (*config)(void *ctx, struct bt_buf *yaml);  /* /config: text/plain; NULL = 404 */
    int (*reload)(void *ctx,
                  struct bt_buf *msg); /* POST /reload: 0 = 200 msg, else 500; NULL = 404 */
    /* Any POST other than /reload, with its body (NUL-terminated, borrowed for the call).
     * Fills out and *ctype (static string), returns the HTTP status. NULL = built-in routes
     * only. */
    unsigned (*post)(void *ctx, const char *url, const char *body, size_t len, struct bt_buf *out,
                     const char **ctype);
    size_t post_max_body; /* cap on a POST body for post (0 = BT_HTTPD_MAX_BODY) */
    /* Set: this handler serves every request instead of the endpoints above (a receiver's own
     * server). It fills out (text/plain unless *ctype is set) and returns the HTTP status.
     * Bodies are kept up to max_body bytes (0 = BT_HTTPD_MAX_BODY); past it: 413. */
    int (*request)(void *ctx, const struct bt_http_request *req, struct bt_buf *out,
                   const char **ctype);
    size_t max_body;
    void *ctx;
    /* Open connections at most (0 = 64): one more is closed as soon as it is accepted. */
    unsigned max_connections;
    /* A connection with no traffic for this long is closed (0 = 30 s). */
    unsigned idle_timeout_s;
    /* Called on the loop thread each time a limit above is hit (counting); may be NULL. */
    void (*limit_hit)(void *ctx, enum bt_httpd_limit what);
    /* "" or NULL: endpoints at the root. "/p" (no trailing slash, at most 200 bytes): every
     * endpoint only under /p (promtail's server.http_path_prefix); copied. */
    const char *path_prefix;
    /* Both or neither: PEM certificate (chain) and key files; HTTPS instead of HTTP (promtail's
     * server.http_tls_config). Read once at start. */
    const char *tls_cert_file, *tls_key_file;
};

/* Binds addr:port ("" or "0.0.0.0" = all addresses, IPv6 dual stack when the host has IPv6;
 * a host name resolves to its first bindable address; port 0 = ephemeral) and starts serving
 * on loop. Copies *h (NULL = no handlers). Returns NULL with errno set and a message naming
 * addr:port in err on failure. */
struct bt_httpd *bt_httpd_new(struct bt_loop *loop, const char *addr, int port,
                              const struct bt_httpd_handlers *h, char *err, size_t errlen);
/* Serves on a unix socket at path, created with mode 0600 (dockerd runs as root). A socket
 * file left at path by a dead process is replaced; any other file there is an error. */
struct bt_httpd *bt_httpd_new_unix(struct bt_loop *loop, const char *path,
                                   const struct bt_httpd_handlers *h, char *err, size_t errlen);
/* The bound port (the real one when 0 was asked; 0 for a unix socket). */
int bt_httpd_port(const struct bt_httpd *s);
/* 1 while the server keeps a loop timer armed (MHD asked for a timeout: open connections),
 * else 0. Lets tests check that an idle server schedules no wake-ups. */
int bt_httpd_timer_armed(const struct bt_httpd *s);
/* Unregisters from the loop, closes every connection and the listen socket. NULL is a no-op. */
void bt_httpd_free(struct bt_httpd *s);

/* Appends the process_* metrics of the calling process (CPU seconds, resident and virtual
 * memory, open and max fds, start time) read from /proc/self. 0, -errno if /proc is
 * unreadable, or the buffer's error. */
int bt_httpd_process_metrics(struct bt_buf *out);

#endif
