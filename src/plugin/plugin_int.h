/*
 * plugin_int: what the plugin's files share, private to src/plugin/plugin*.c.
 *
 * plugin.c runs the process: settings, the Docker protocol handlers, shared push clients,
 * timers, the state directory walk, metrics and shutdown. plugin_container.c is one container:
 * its FIFO, decoder, spool, pipeline and the pump between them. Loop thread only, except the
 * push threads inside struct bt_client.
 */
#ifndef BT_PLUGIN_INT_H
#define BT_PLUGIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/labels.h"
#include "plugin/plugin_opts.h"
#include "push/batch.h"
#include "util/buf.h"

struct bt_ack_owner;
struct bt_client;
struct bt_dfifo;
struct bt_httpd;
struct bt_loop;
struct bt_metrics;
struct bt_pipeline;
struct bt_series;
struct bt_spool;
struct bt_spool_group;

#define PL_READ_CHUNK (64 * 1024)
/* Reads per wake-up and container: one busy container cannot starve the others. */
#define PL_READS_PER_ROUND 16
/* Spool bytes pumped per container and round before the loop looks at other work. */
#define PL_PUMP_BYTES (4u << 20)
/* A client is "full" (containers stop pumping; FIFOs are still read into the spools) at this
 * many sealed batches beyond what its push thread works on (bt_client_backlog), or this many
 * bytes held; it resumes below half. */
#define PL_MAX_QUEUED 2
#define PL_MAX_INFLIGHT (32u << 20)
#define PL_SHUTDOWN_NS (5 * 1000000000LL)

struct pl_client {
    struct bt_plugin *p;
    struct pl_client *next;
    char *key;
    struct bt_client_config cfg;
    struct bt_batcher_config bcfg;
    struct bt_batcher *batcher;
    struct bt_client *client;
    int refs;
    bool full;
};

struct pl_container {
    struct bt_plugin *p;
    struct pl_container *next;
    char *file;    /* the FIFO path, as in the request */
    char *dir;     /* its state directory */
    char *id;      /* full container id */
    char *name;    /* container name */
    char *mlabels; /* container_id="...",container_name="..." for metrics */
    struct bt_plugin_opts opts;
    struct pl_client *client;
    struct bt_pipeline *pipeline;
    struct bt_labels labels[3]; /* stream labels + source=stdout|stderr|other */
    int fd;                     /* -1 once EOF was read (or the FIFO is gone) */
    bool stop_requested;        /* StopLogging came (shown in logs; EOF ends the reading) */
    bool piped_flushed;         /* pipeline flushed after the last spooled record went in */
    bool attached;              /* spool opened and FIFO registered with the loop */
    uint64_t attach_timer;      /* pending attach (right after StartLogging answered) */
    struct bt_dfifo *dec;
    struct bt_spool *spool;
    struct bt_ack_owner *ack;
    struct bt_buf rec; /* one spool record being built */
    uint64_t dropped_seen;
    /* End offsets of records pumped but not yet committed, oldest first (a ring). When the
     * spool's bound drops a segment, the ones in it are not lost: their batches still go out. */
    uint64_t *fly;
    size_t fly_head, fly_n, fly_cap;
    struct bt_series *m_lines, *m_bytes, *m_spool_bytes;
};

struct bt_plugin {
    struct bt_loop *loop;
    struct bt_metrics *metrics;
    struct bt_httpd *sock; /* Docker's protocol */
    struct bt_httpd *metrics_http;
    struct bt_spool_group *group;
    struct pl_client *clients;
    struct pl_container *containers;
    char *state_dir;
    char hostname[256];
    int sigfd;
    bool stopping;
    bool exiting; /* the loop has ended: everything is being freed */
    int64_t stop_deadline;
    uint64_t tick_timer, more_timer;
    int64_t tick_at;
    bool more; /* a pump round left work: run again before sleeping */
    struct bt_series *m_containers, *m_unknown_opt;
    char **unknown_seen; /* option names already logged once */
    size_t n_unknown;
};

/* plugin_container.c */
struct pl_container *pl_container_start(struct bt_plugin *p, const struct bt_plugin_info *in,
                                        const char *dir, bool restored, char *err, size_t errlen);
void pl_container_stop(struct pl_container *c);
/* Pumps spooled records into the pipeline while the client has room. Returns true when
 * records are left that the client could take (another round is due). */
bool pl_container_pump(struct pl_container *c);
/* Reads the FIFO (bounded per call). */
void pl_container_read(struct pl_container *c);
/* True when the container has nothing more to do (EOF, spool acknowledged). */
bool pl_container_done(const struct pl_container *c);
/* Shutdown: stop reading, flush partial lines and the spool. */
void pl_container_quiesce(struct pl_container *c);
/* Frees everything; with destroy, deletes the state directory and spool too. */
void pl_container_free(struct pl_container *c, bool destroy);
int64_t pl_container_deadline(const struct pl_container *c);
void pl_container_tick(struct pl_container *c, int64_t now);

/* plugin.c */
struct pl_client *pl_client_get(struct bt_plugin *p, const struct bt_client_config *cfg, char *err,
                                size_t errlen);
void pl_client_put(struct pl_client *c);
bool pl_client_full(struct pl_client *c);
void pl_request_more(struct bt_plugin *p);
/* The state directory of a FIFO path (heap). */
char *pl_state_path(const struct bt_plugin *p, const char *file);

#endif
