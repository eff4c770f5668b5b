/*
 * client: pushes sealed batches to one Loki URL from its own thread.
 *
 * The loop thread submits batches (ownership passes to the client); the push thread encodes,
 * posts with libcurl (keep-alive, up to max_in_flight requests at once, never two undecided
 * requests with a stream in common, see push/gate.h), and classifies the answer: 2xx
 * accepted; 429, 5xx and transport errors retried with jittered exponential backoff
 * (honouring Retry-After) up to max_retries; any other status dropped at once with a reason
 * taken from Loki's message. Batches may be decided out of submission order (other streams).
 * Decided batches come back to the loop thread through an eventfd: the loop reads them with
 * bt_client_take_done and releases them (which advances positions). Only the loop thread
 * touches positions, never this module.
 */
#ifndef BT_CLIENT_H
#define BT_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct bt_batch;
struct bt_client_config;
struct bt_metrics;
struct bt_client;

/* Creates the client and starts its push thread. cfg is borrowed for the client's lifetime.
 * NULL with errno on failure. */
struct bt_client *bt_client_new(const struct bt_client_config *cfg, struct bt_metrics *m);
/* Queues a sealed batch; takes ownership. 0, or -ESHUTDOWN after stop (batch returned as
 * ABANDONED through take_done). */
int bt_client_submit(struct bt_client *c, struct bt_batch *b);
/* Readable (EPOLLIN) when decided batches wait in take_done. */
int bt_client_notify_fd(const struct bt_client *c);
/* Returns the next decided batch (outcome set) or NULL. Loop thread. */
struct bt_batch *bt_client_take_done(struct bt_client *c);
/* Bytes (batch->bytes) queued or in flight, not yet decided. */
size_t bt_client_pending_bytes(const struct bt_client *c);
/* Batches queued or in flight. */
size_t bt_client_pending(const struct bt_client *c);
/* Batches beyond what the push thread can work on now: the larger of pending + 1 -
 * max_in_flight (one batch waiting beyond a full window of requests) and the queued batches
 * held back only by their streams (one stream's batches go one at a time). With one request
 * in flight it equals pending. The sources' backpressure reads it: at 2, reading further ahead
 * only costs memory. */
size_t bt_client_backlog(const struct bt_client *c);
/* Stops accepting work and waits until deadline_mono_ns for queued batches to be decided;
 * the push in progress at the deadline is cancelled and everything undecided comes back
 * ABANDONED. Returns the number abandoned. */
size_t bt_client_stop(struct bt_client *c, int64_t deadline_mono_ns);
/* Frees the client (stops it first with an immediate deadline). Undecided batches are freed. */
void bt_client_free(struct bt_client *c);
/* The client's display name ("host:port" of the URL or the configured name). */
const char *bt_client_name(const struct bt_client *c);
/* "host:port" of the URL: the `host` label of the client's metrics. */
const char *bt_client_host(const struct bt_client *c);

/* Classifies an HTTP answer. Returns 1 if the batch should be retried, 0 if final. For a final
 * failure, *reason gets one of: "rate_limited", "too_old", "too_new", "line_too_long",
 * "out_of_order", "invalid_labels", "stream_limited", "http_4xx", "request_too_large",
 * "ingester_error". 401, 403 and nginx's 400 for a client certificate are retried
 * ("unauthorized": credentials, not the batch, are wrong). status -1 = transport error. body may be
 * NULL. */
int bt_client_classify(int status, const char *body, size_t body_len, const char **reason);

#endif
