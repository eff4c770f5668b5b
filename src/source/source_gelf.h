/*
 * source_gelf: promtail's `gelf` scrape config, a GELF receiver on UDP (what Docker's `gelf`
 * log driver sends), in the event loop.
 *
 * Config (the scrape job's `gelf:` block, promtail's keys):
 *   listen_address: ":12201"     host:port (no host: all addresses)
 *   labels: {job: gelf}          static labels
 *   use_incoming_timestamp: false  the message's `timestamp`, else the time of reception
 *   max_message_bytes: 1MiB      bpftail's: a message larger than this, reassembled or after
 *                                decompression, is dropped (counted)
 *   max_pending: 1000            bpftail's: chunked messages being reassembled at once
 * A datagram is one GELF message: JSON, gzip or zlib compressed JSON, or one chunk of a
 * chunked message (magic 0x1e 0x0f, 8-byte id, sequence number, count up to 128), reassembled
 * in any order; a message whose chunks do not all arrive within 5 s is dropped (counted), as is
 * the oldest pending one past max_pending. The line is the message's JSON as received
 * (promtail writes it again with Go's encoder: the same fields, possibly another order).
 * The common message (a flat ASCII JSON object) is read in one pass without allocating; any
 * other shape goes to jansson, which accepts and refuses exactly as before. Datagrams are read
 * 16 per recvmmsg(2). Labels for relabel_configs: __gelf_message_level (emergency .. debug),
 * __gelf_message_host, __gelf_message_version, __gelf_message_facility.
 *
 * Delivery: through the job's durable queue (source/relay.h); a message that finds the queue
 * full is dropped and counted (UDP cannot be held back). Metrics:
 * bpftail_gelf_target_entries_total, bpftail_gelf_target_chunked_messages_total,
 * bpftail_gelf_target_parsing_errors_total, and
 * bpftail_dropped_entries_total{reason="gelf_incomplete"|"gelf_too_large"|"relay_full"}, and
 * the limits hit: bpftail_gelf_limit_hits_total{job,limit="message_size"|"decompressed_size"|
 * "pending"|"reassembly_timeout"}.
 * Loop thread only.
 */
#ifndef BT_SOURCE_GELF_H
#define BT_SOURCE_GELF_H

#include "source/relay.h"

/* The agent's handle on gelf jobs (relay.h): open reads the `gelf:` block and, with a loop,
 * opens the queue and binds the socket. */
extern const struct bt_receiver_ops bt_gelf_receiver;

#endif
