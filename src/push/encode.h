/*
 * encode: turns a sealed batch into the body of a Loki push request.
 *
 * The body is a logproto.PushRequest (proto/push.proto), written by hand in the bytes protobuf-c
 * would pack (tests decode it with protobuf-c and compare golden bytes), and compressed
 * with snappy's block format, which is what Loki expects for Content-Type
 * application/x-protobuf. Pure: no I/O, callable from any thread on a batch nobody changes.
 */
#ifndef BT_ENCODE_H
#define BT_ENCODE_H

#include <stddef.h>

struct bt_batch;
struct bt_buf;

/* Encodes b into out (reset first). *raw_len (optional) gets the uncompressed size.
 * 0, -ENOMEM, or -E2BIG if out's cap is too small. out's memory grows to snappy's bound plus
 * the uncompressed request when its cap allows (the request is staged there), so reusing out
 * for every batch allocates nothing. */
int bt_encode_push(const struct bt_batch *b, struct bt_buf *out, size_t *raw_len);

/* Encodes without compression (tests, debugging). Same rules. */
int bt_encode_push_raw(const struct bt_batch *b, struct bt_buf *out);

#endif
