/*
 * HTTP request handling of bpftail's own servers (core/httpd.c on libmicrohttpd): the agent's
 * server (/metrics, /ready, /targets, /config, /reload, a POST handler as the Docker plugin's
 * protocol uses, under a path prefix) and the loki_push_api receiver's (source/source_push.c:
 * push bodies in every form and encoding, /raw, /ready). The first byte picks the server; the
 * rest is sent as raw bytes on a loopback connection — request line, headers, body, pipelined
 * requests, garbage — which is then half-closed, and the loop runs until the server has
 * answered and closed it. Whatever comes back must look like HTTP. The servers live for the
 * whole run, as in the agent.
 */
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/httpd.h"
#include "core/loop.h"
#include "fuzz_common.h"
#include "source/source_push.h"
#include "util/buf.h"

static struct bt_loop *loop;
static struct bt_metrics *metrics;
static struct bt_httpd *agent;
static struct bt_receiver *push;
static int ports[2];

static int h_ready(void *ctx, struct bt_buf *msg)
{
    return 0;
}
static int h_targets(void *ctx, struct bt_buf *json)
{
    return bt_buf_adds(json, "{\"activeTargets\":[]}");
}
static int h_config(void *ctx, struct bt_buf *yaml)
{
    return bt_buf_adds(yaml, "server:\n  http_listen_port: 9080\n");
}
static int h_reload(void *ctx, struct bt_buf *msg)
{
    return 1; /* a failed reload: 500 with a message */
}
static unsigned h_post(void *ctx, const char *url, const char *body, size_t len, struct bt_buf *out,
                       const char **ctype)
{
    /* The body is NUL-terminated and len long: touch all of it. */
    volatile unsigned char x = 0;
    for (size_t i = 0; i <= len; i++)
        x ^= (unsigned char)body[i];
    (void)x;
    *ctype = "application/json";
    bt_buf_addf(out, "{\"Err\":\"\",\"len\":%zu}", len);
    return 200;
}

static void sink(void *ctx, const struct bt_entry *e)
{
    struct fz_pipe dummy;
    fz_sink(&dummy, e);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[512];
    fz_quiet();
    loop = bt_loop_new();
    metrics = bt_metrics_new();
    if (!loop || !metrics)
        abort();
    struct bt_httpd_handlers h = {.metrics = metrics,
                                  .ready = h_ready,
                                  .targets = h_targets,
                                  .config = h_config,
                                  .reload = h_reload,
                                  .post = h_post,
                                  .post_max_body = 4096,
                                  .path_prefix = "/p"};
    if (!(agent = bt_httpd_new(loop, "127.0.0.1", 0, &h, err, sizeof(err)))) {
        fprintf(stderr, "httpd: %s\n", err);
        abort();
    }
    ports[0] = bt_httpd_port(agent);

    static char qdir[256];
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(qdir, sizeof(qdir), "%s/bt-fuzz-push-%d", base, (int)getpid());
    static const char yaml[] = "server: {http_listen_address: 127.0.0.1, http_listen_port: 0}\n"
                               "labels: {pushserver: fuzz}\n"
                               "use_incoming_timestamp: true\n"
                               "max_request_bytes: 64KiB\n"
                               "max_decompressed_bytes: 256KiB\n";
    struct bt_node *cfg = bt_yaml_parse(yaml, sizeof(yaml) - 1, "push.yaml", err, sizeof(err));
    struct bt_receiver_env env = {.loop = loop,
                                  .metrics = metrics,
                                  .job = "push",
                                  .sink = sink,
                                  .queue_dir = qdir,
                                  .queue_bytes = 4 << 20};
    if (!cfg || !(push = bt_push_receiver.open(cfg, &env, err, sizeof(err)))) {
        fprintf(stderr, "push receiver: %s\n", err);
        abort();
    }
    bt_node_free(cfg);
    ports[1] = bt_push_receiver.port(push);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int port = ports[data[0] & 1];
    data++, size--;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS))
        abort();
    size_t off = 0, rlen = 0;
    bool shut = false, closed = false;
    char resp[4096];
    int idle = 0;
    /* Rounds of: send what the socket takes, let the server run, read what it answered. All
     * of it is in this process and loopback delivery is immediate, so once everything is sent
     * a round in which the server has nothing to do and nothing comes back means it is done
     * (or waits for more of a request, or keeps the connection open for the next one). */
    for (int round = 0; round < 100000 && !closed && idle < 2; round++) {
        if (off < size) {
            ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
            if (n > 0)
                off += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EINPROGRESS && errno != ENOTCONN)
                off = size; /* the server closed early (a refused request) */
        }
        if (off >= size && !shut) {
            shutdown(fd, SHUT_WR);
            shut = true;
        }
        int ran = bt_loop_run_once(loop, 0);
        bool got = false;
        for (;;) {
            char tmp[4096];
            ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
            if (n > 0) {
                size_t k = (size_t)n < sizeof(resp) - rlen ? (size_t)n : sizeof(resp) - rlen;
                memcpy(resp + rlen, tmp, k);
                rlen += k;
                got = true;
                continue;
            }
            if (n == 0 || (errno != EAGAIN && errno != EINTR))
                closed = true;
            break;
        }
        idle = shut && ran <= 0 && !got ? idle + 1 : 0;
    }
    if (rlen >= 5 && memcmp(resp, "HTTP/", 5) != 0)
        abort();
    /* A reset, so the server drops the connection now rather than at its idle timeout. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    /* Let the server see the close and free the connection. */
    for (int i = 0; i < 3; i++)
        bt_loop_run_once(loop, 0);
    return 0;
}
