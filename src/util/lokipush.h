/*
 * lokipush: decodes a Loki push request body, as Loki and promtail's loki_push_api accept it:
 * a snappy block of a logproto.PushRequest (protobuf), or JSON
 *   {"streams":[{"stream":{"name":"value",...},"values":[["<unix ns>","line",{meta}],...]}]}
 * into a flat, read-only view of streams, entries and name/value pairs. A stream's labels are
 * either the Prometheus-style string of the protobuf form ({a="b", c="d\"e"}; walk it with
 * bt_lokipush_labels) or pairs (the JSON form). Every size is checked against the caps given;
 * nothing of the view outlives bt_lokipush_free. The only file with the protobuf-c and snappy
 * decoders of the push format (push/encode.c is the encoder).
 */
#ifndef BT_UTIL_LOKIPUSH_H
#define BT_UTIL_LOKIPUSH_H

#include <stddef.h>
#include <stdint.h>

struct bt_lp_kv {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct bt_lp_entry {
    int64_t ts_ns;
    const char *line;
    size_t line_len;
    size_t meta; /* first of n_meta pairs in kv */
    size_t n_meta;
};

struct bt_lp_stream {
    const char *labels; /* protobuf: the labels string; NULL for JSON (pairs below) */
    size_t labels_len;
    size_t lab, n_lab; /* JSON: the pairs in kv */
    size_t entry, n_entries;
};

struct bt_lokipush {
    struct bt_lp_stream *streams;
    size_t n_streams;
    struct bt_lp_entry *entries;
    size_t n_entries;
    struct bt_lp_kv *kv;
    size_t n_kv;
    void *priv; /* the decoded tree the view points into */
    char *raw;  /* the uncompressed protobuf */
};

enum bt_lokipush_format { BT_LOKIPUSH_PROTO, BT_LOKIPUSH_JSON };

/* Decodes body[0, n) into p (zeroed by the call). max_raw caps the uncompressed protobuf.
 * 0; -E2BIG past max_raw; -EINVAL with a message in err for a malformed body; -ENOMEM. */
int bt_lokipush_decode(struct bt_lokipush *p, enum bt_lokipush_format fmt, const void *body,
                       size_t n, size_t max_raw, char *err, size_t errlen);
void bt_lokipush_free(struct bt_lokipush *p);

/* Walks a labels string {name="value", ...}: fn gets each name and its unquoted value (in
 * scratch, which must have room for n bytes). 0, -EINVAL for a malformed string, or fn's
 * negative return. */
int bt_lokipush_labels(const char *s, size_t n, char *scratch,
                       int (*fn)(void *ctx, const char *name, size_t nl, const char *value,
                                 size_t vl),
                       void *ctx);

#endif
