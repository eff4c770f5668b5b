/*
 * source_syslog: promtail's `syslog` scrape config, a syslog receiver on TCP or UDP, in the
 * event loop (non-blocking sockets, no thread per connection).
 *
 * Config (the scrape job's `syslog:` block, promtail's keys):
 *   listen_address: 0.0.0.0:1514   required; host:port or [v6]:port ("" or no host: all)
 *   listen_protocol: tcp           tcp or udp
 *   syslog_format: rfc5424         rfc5424 or rfc3164 (util/syslog.h)
 *   idle_timeout: 120s             a TCP connection silent this long is closed
 *   max_message_length: 8192       longer messages are dropped (counted)
 *   label_structured_data: false   RFC 5424 SD params as __syslog_message_sd_<id>_<name>
 *                                  ("@" in the id becomes "_")
 *   use_incoming_timestamp: false  the message's timestamp, else the time of reception
 *   use_rfc5424_message: false     the whole message as the line, else its MSG part
 *   labels: {job: syslog}          static labels
 *   max_connections: 1000          bpftail's: TCP connections past it are closed at once
 *   tls_config:                    TLS (TCP only; TLS 1.2 and later, util/tls.c):
 *     cert_file, key_file            the server's certificate chain and key (PEM), required
 *     ca_file                        set: clients must present a certificate signed by it
 * Labels for relabel_configs, as promtail names them: __syslog_connection_ip_address,
 * __syslog_message_severity (emergency .. debug), __syslog_message_facility (kern .. local7),
 * __syslog_message_hostname, __syslog_message_app_name, __syslog_message_proc_id,
 * __syslog_message_msg_id, and __syslog_connection_hostname: the sender's name by reverse DNS
 * (core/resolve.h: a worker thread, a cache), "" when it has none or the answer takes longer
 * than 2 s. A TCP connection is not read until its name is known or the 2 s have passed (the
 * sender sees TCP backpressure). A UDP sender whose name is not cached has its datagrams
 * held, in order, until then: at most 1024 datagrams or 1 MiB per sender and 256 senders;
 * past that they are dropped and counted (bpftail_dropped_entries_total{reason=
 * "resolve_queue_full"}). The "__" labels go after relabelling.
 *
 * TCP framing per message, as promtail detects it: a leading digit means octet counting
 * (RFC 6587 "LEN SP MSG"), anything else newline framing (a trailing CR is cut). UDP: one
 * message per datagram (trailing newlines cut).
 *
 * Delivery: every message goes through the job's durable queue (source/relay.h). When the
 * queue is full, a TCP connection keeps the message it was at and stops reading (the sender
 * sees TCP backpressure) until the queue has room; a UDP message is dropped and counted
 * (bpftail_dropped_entries_total{reason="relay_full"}). Limits hit are counted in
 * bpftail_syslog_limit_hits_total{limit="connections"|"message_length"|"idle_timeout"}.
 * Metrics as promtail's under bpftail's prefix: bpftail_syslog_target_entries_total,
 * bpftail_syslog_target_parsing_errors_total, bpftail_syslog_empty_messages_total; and
 * bpftail_syslog_tls_errors_total (failed handshakes: no or a bad client certificate).
 * Loop thread only.
 */
#ifndef BT_SOURCE_SYSLOG_H
#define BT_SOURCE_SYSLOG_H

#include <stddef.h>

#include "source/relay.h"

struct bt_syslog;

/* The agent's handle on syslog jobs (relay.h). */
extern const struct bt_receiver_ops bt_syslog_receiver;

/* Reads the `syslog:` block and, with a loop, binds the socket and opens the queue. NULL on
 * error with "file:line:col: syslog: ..." or the address in err. env is copied. */
struct bt_syslog *bt_syslog_new(const struct bt_node *cfg, const struct bt_receiver_env *env,
                                char *err, size_t errlen);
/* Closes the listener and every connection; the queue stays on disk. NULL is ignored. */
void bt_syslog_free(struct bt_syslog *s);
/* The bound port (tests, port 0). */
int bt_syslog_port(const struct bt_syslog *s);
/* Open TCP connections (tests, /targets). */
size_t bt_syslog_connections(const struct bt_syslog *s);

#endif
