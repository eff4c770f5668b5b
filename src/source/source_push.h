/*
 * source_push: promtail's `loki_push_api` scrape config, a Loki push receiver with its own
 * HTTP server (core/httpd.c in the agent's loop), so other agents can push to bpftail.
 *
 * Config (the scrape job's `loki_push_api:` block, promtail's keys):
 *   server:                      promtail's server block; http_listen_address ("" = all),
 *     http_listen_port: 3500     http_listen_port and http_server_idle_timeout (30s: a
 *                                connection without traffic this long is closed; whole
 *                                seconds) are used, the other keys accepted
 *   labels: {pushserver: a}      static labels, set over the pushed stream's labels
 *   use_incoming_timestamp: false  the pushed timestamps, else the time of reception
 *   max_request_bytes: 8MiB      bpftail's: a larger body is refused (413)
 *   max_decompressed_bytes: 64MiB  bpftail's: a gzip or snappy body growing past it is
 *                                refused (413: a "gzip bomb")
 *   max_connections: 1000        bpftail's: connections past it are closed at once
 * Endpoints: POST /loki/api/v1/push (protobuf + snappy, or JSON with Content-Type
 * application/json; Content-Encoding gzip or deflate on top), POST /loki/api/v1/raw (one entry
 * per line of the body, static labels), GET /ready. Structured metadata is kept, the tenant of
 * X-Scope-OrgID goes on as the entries' tenant (__tenant_id__). The job's relabel_configs run
 * over each stream's labels, then the "__" labels go.
 *
 * Delivery: a request is answered 204 only once all its entries are in the job's durable queue
 * (source/relay.h) and flushed; 429 when they do not fit in the queue (nothing of the request
 * is queued, so the sender's retry does not duplicate), 400 for a malformed body. Metrics:
 * bpftail_push_target_requests_total{job,status}, bpftail_push_target_entries_total{job}, and
 * the limits hit: bpftail_push_limit_hits_total{job,limit="connections"|"request_size"|
 * "decompressed_size"|"idle_timeout"}.
 * Loop thread only.
 */
#ifndef BT_SOURCE_PUSH_H
#define BT_SOURCE_PUSH_H

#include "source/relay.h"

/* The agent's handle on loki_push_api jobs (relay.h): open reads the block and, with a loop,
 * opens the queue and starts the server. */
extern const struct bt_receiver_ops bt_push_receiver;

#endif
