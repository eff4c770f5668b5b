/*
 * agent_int: what the agent's two files share, private to src/agent/agent*.c.
 *
 * agent.c runs the agent: the sink after the pipelines, backpressure, batches coming back from
 * the push threads, timers, shutdown, reload and the HTTP handlers. agent_build.c builds it
 * from a config: jobs, clients, targets and discovery, metrics, signals, capabilities. Loop
 * thread only, like everything the agent owns.
 */
#ifndef BT_AGENT_INT_H
#define BT_AGENT_INT_H

#include "agent/agent.h"
#include "core/caps.h"
#include "core/entry.h"
#include "core/httpd.h"
#include "core/labels.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/resolve.h"
#include "config/config.h"
#include "config/node.h"
#include "watch/watch_bpf.h"
#include "stage/pipeline.h"
#include "source/docker_sd.h"
#include "source/file_sd.h"
#include "source/k8s_sd.h"
#include "source/fim.h"
#include "source/positions.h"
#include "source/relabel.h"
#include "source/source_docker.h"
#include "source/source_file.h"
#include "source/source_journal.h"
#include "source/source_gelf.h"
#include "source/source_push.h"
#include "source/source_syslog.h"
#include "push/batch.h"
#include "push/client.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHUTDOWN_POLL_NS (20 * BT_NS_PER_MS)
/* Sealed batches a client may have beyond what its push thread works on (bt_client_backlog:
 * with max_in_flight requests, that many plus these) before file sources pause. Files are the
 * buffer: reading further ahead than this only costs memory, since pushes are the bottleneck.
 * A few batches keep the push thread busy while the loop fills the next one. */
#define MAX_QUEUED_BATCHES 2
#define RESUME_QUEUED_BATCHES 1

struct agent_client {
    struct bt_agent *a;
    struct bt_client_config *cfg;
    struct bt_batcher_config bcfg;
    struct bt_batcher *batcher;
    struct bt_client *client;
    struct bt_series *m_too_old;
};

#define AGENT_RECEIVER_KINDS 3

struct agent_job {
    struct bt_agent *a;
    struct bt_relabel *relabel;
    struct bt_docker_disc *disc;
    struct bt_journal *journal;
    struct bt_receiver *recv[AGENT_RECEIVER_KINDS]; /* agent_receiver_kinds' order; or NULL */
    struct bt_file_sd **fsds;
    size_t n_fsds;
    struct bt_docker_sd **sds;
    size_t n_sds;
    struct bt_k8s_sd **ksds;
    size_t n_ksds;
    struct bt_scrape_config *sc;
    struct bt_pipeline *pipeline;
};

struct bt_agent {
    struct bt_config *cfg;
    struct bt_config *owned_cfg; /* a config loaded by a reload (else cfg is the caller's) */
    struct agent_job fim_job;    /* FIM's sink context: outlives the jobs a reload replaces */
    const struct bt_cli *cli;
    struct bt_loop *loop;
    struct bt_metrics *metrics;
    struct agent_client *clients;
    size_t n_clients;
    struct agent_job *jobs;
    size_t n_jobs;
    struct bt_files *files;
    struct bt_fim *fim;
    const char *watcher_shown; /* backend named in bpftail_watcher_info */
    struct bt_httpd *httpd;
    struct bt_resolver *resolver; /* syslog's reverse DNS, made with the first syslog job */
    int sigfd;
    uint64_t tick_timer;
    int64_t tick_at;
    bool dry_run;
    bool check_only;
    bool stopping;
    bool paused;
    int64_t stop_deadline;
    uint64_t stop_timer;
    size_t memory_limit;
    /* readline rate limiter (limits_config) */
    double tokens;
    int64_t refill_at;
    struct bt_series *m_rate_drop, *m_rate_drop_bytes;
    struct bt_series *m_inflight, *m_paused, *m_pause_mem, *m_pause_queue;
    struct bt_series *m_reload_ok, *m_reload_fail;
    struct bt_buf dry;
};

void agent_sink(void *ctx, const struct bt_entry *e);
void agent_batch_drop(void *ctx, const struct bt_entry *e, const char *reason);
void agent_batch_ready(void *ctx, struct bt_batch *b);
void agent_before_sleep(struct bt_loop *l, void *arg);
int agent_build_clients(struct bt_agent *a, char *err, size_t errlen);
int agent_build_jobs(struct bt_agent *a, char *err, size_t errlen);
int agent_build_targets(struct bt_agent *a, char *err, size_t errlen);
void agent_client_done(struct bt_loop *l, int fd, uint32_t events, void *arg);
int agent_h_config(void *ctx, struct bt_buf *out);
int agent_h_ready(void *ctx, struct bt_buf *msg);
int agent_h_reload(void *ctx, struct bt_buf *msg);
int agent_h_targets(void *ctx, struct bt_buf *out);
void agent_job_source_sink(void *ctx, const struct bt_entry *e);
void agent_on_signal(struct bt_loop *l, int fd, uint32_t events, void *arg);

#endif
