/*
 * docker_sd: promtail's docker_sd_configs. Lists containers through the Docker API (libcurl,
 * on a unix socket or TCP) and follows each running container's logs through the API.
 *
 * Every refresh_interval it asks GET /containers/json (running containers, with the configured
 * filters) and gives each container the labels Prometheus' Docker discovery sets:
 * __meta_docker_container_id, _name (with Docker's leading /), _network_mode,
 * __meta_docker_container_label_<sanitized>, __meta_docker_network_{id,name,ip} and
 * __meta_docker_port_{private,public,public_ip} of its first network and port, __address__,
 * and per stream __meta_docker_container_log_stream. The job's relabel rules (borrowed) run
 * once per container and stream, a dropped result is not followed, and the "__" labels are
 * removed afterwards. Logs come from
 *   GET /containers/<id>/logs?stdout=1&stderr=1&follow=1&timestamps=1&since=<s.ns>
 * demultiplexed from Docker's 8-byte frame headers (a container with a TTY sends no headers;
 * that is detected from the first bytes), each frame "<RFC3339Nano> <text>". Frames without a
 * trailing \n (Docker's 16 KiB splits) are joined with the next frames of the same stream and
 * time (Docker stamps every chunk of a line alike), up to max_line bytes, and flushed when the
 * stream ends; the trailing \n is removed.
 *
 * Delivery: each container has an ack owner whose offsets are entry timestamps (ns), so the
 * committed offset says "everything up to this time was accepted". The caller stores it
 * through cursor_set and gives it back through cursor_get after a restart; logs are then asked
 * from that second and entries older than the cursor are skipped, so nothing is sent twice.
 * A container that stops ends its log stream; if it runs again (restart) it is followed again
 * from the last entry read. All I/O is non-blocking on the loop; loop thread only.
 *
 * Containers are found from Docker's event stream first (GET /events, type=container, events
 * start/die/destroy, one long-lived request): at `start` the container is looked up (GET
 * /containers/json?all=1 with the configured filters and its id, so it gets the same labels as
 * from a listing even if it already exited) and its logs are asked from its cursor (0 for a new
 * container: from its first line). A container that lives a second is thus read whole before
 * `--rm` removes it; the listing every refresh_interval stays as the reconcile for missed events.
 * A broken event stream is counted, logged once and reopened with backoff (1 s to 30 s) from the
 * time of the last event seen, followed by a listing.
 */
#ifndef BT_DOCKER_SD_H
#define BT_DOCKER_SD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/entry.h"

struct bt_loop;
struct bt_metrics;
struct bt_node;
struct bt_relabel;
struct bt_docker_sd;
struct bt_buf;

struct bt_docker_sd_env {
    struct bt_loop *loop;       /* required */
    struct bt_metrics *metrics; /* may be NULL */
    struct bt_relabel *relabel; /* borrowed, may be NULL */
    const char *job;            /* for logs and metrics */
    bt_entry_sink_fn sink;      /* receives every entry (borrowed as in entry.h) */
    void *ctx;
    size_t max_line; /* cap of a joined line; 0 = 256 KiB */
    /* Positions: the committed time (Unix ns) of a container, 0 if none. Both optional. */
    int64_t (*cursor_get)(void *pctx, const char *container_id);
    void (*cursor_set)(void *pctx, const char *container_id, int64_t committed_ns);
    void *pctx;
};

/* Reads one docker_sd_configs item (host required; port, host_networking_host, filters,
 * refresh_interval) and starts the first listing. env is copied. NULL on error with
 * "file:line:col: docker_sd_configs: ..." in err. */
struct bt_docker_sd *bt_docker_sd_new(const struct bt_node *cfg, const struct bt_docker_sd_env *env,
                                      char *err, size_t errlen);
/* Stops every request; entries in flight keep their segments (the ack owners outlive it). */
void bt_docker_sd_free(struct bt_docker_sd *sd);
/* Starts a listing now (one at a time). 0 or -errno. */
int bt_docker_sd_refresh(struct bt_docker_sd *sd);
/* Positions glue. The record key is promtail's "cursor-<container id>"; bpftail stores Unix
 * nanoseconds there, promtail stored seconds, so a value below 1e12 is read as seconds (a
 * migrated promtail position then resumes at its second, possibly repeating that second). */
const char *bt_docker_sd_cursor_key(char *out, size_t outlen, const char *container_id);
int64_t bt_docker_sd_cursor_decode(uint64_t stored);
/* One event of Docker's /events stream, borrowed for the call. */
struct bt_docker_event {
    const char *type;   /* "container", ... ("" if absent) */
    const char *action; /* "start", "die", "destroy", ... ("" if absent) */
    const char *id;     /* the actor's id ("" if absent) */
    int64_t time_ns;    /* timeNano, or time in seconds * 1e9, 0 if absent */
};
typedef void (*bt_docker_event_fn)(void *ctx, const struct bt_docker_event *ev);
/* Feeds n bytes of an /events body: Docker writes one JSON object per line, and a read may end
 * anywhere inside one. Each complete line is parsed and passed to fn; the incomplete rest stays
 * in acc (a buffer whose max bounds one event). Returns the number of lines that were not valid
 * event objects (skipped), or -E2BIG / -ENOMEM when a line does not fit in acc. */
int bt_docker_events_feed(struct bt_buf *acc, const char *p, size_t n, bt_docker_event_fn fn,
                          void *ctx);
/* Containers known / log streams currently open. */
size_t bt_docker_sd_containers(const struct bt_docker_sd *sd);
size_t bt_docker_sd_following(const struct bt_docker_sd *sd);
/* Whether the event stream is open and answered (HTTP 200 seen). */
bool bt_docker_sd_events_connected(const struct bt_docker_sd *sd);

#endif
