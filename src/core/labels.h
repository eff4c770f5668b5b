/*
 * labels: a small sorted set of label name/value pairs, and Loki's canonical string for it.
 *
 * The set owns its strings. Setting a label to an empty value deletes it, as Loki drops empty
 * values anyway. Names starting with "__" (like __tenant_id__ or __path__) are kept in the set
 * but left out of the canonical string sent to Loki. The canonical string is
 *   {a="x", b="y\"z"}
 * sorted by name, values quoted as Go's strconv.Quote does, and is cached with its hash until
 * the set changes. Slots keep their memory when cleared and reused, so a scratch set that is
 * refilled for every line allocates nothing in the steady state.
 */
#ifndef BT_LABELS_H
#define BT_LABELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bt_label {
    char *name;
    size_t name_len, name_cap;
    char *value;
    size_t value_len, value_cap;
};

struct bt_labels {
    struct bt_label *v;
    size_t n, cap; /* n in use (sorted by name); cap slots allocated (may hold spare memory) */
    char *canon;   /* cached canonical string, valid when !dirty */
    size_t canon_len, canon_cap;
    uint64_t hash; /* hash of the canonical string, valid when !dirty */
    /* Valid when !dirty: a number unique in the process to each computation of the canonical
     * string (a copy of a clean set shares its source's). Two sets with one stamp hold the
     * same labels, reserved ones too, so a consumer may remember what it derived from a set by
     * its stamp, never by its address. 0: none yet. */
    uint64_t stamp;
    bool dirty;
};

void bt_labels_init(struct bt_labels *l);
void bt_labels_free(struct bt_labels *l);
/* Removes every label; memory kept. */
void bt_labels_clear(struct bt_labels *l);
/* Sets name to value (copied). An empty value deletes the label. 0 or -ENOMEM. */
int bt_labels_set(struct bt_labels *l, const char *name, const char *value);
int bt_labels_setn(struct bt_labels *l, const char *name, size_t nlen, const char *value,
                   size_t vlen);
/* Returns the value (borrowed, valid until the set changes) or NULL. */
const char *bt_labels_get(const struct bt_labels *l, const char *name);
const char *bt_labels_getn(const struct bt_labels *l, const char *name, size_t nlen);
/* Deletes name if present. Returns 1 if deleted, 0 if absent. */
int bt_labels_del(struct bt_labels *l, const char *name);
/* Makes dst an exact copy of src (dst's memory reused). 0 or -ENOMEM. */
int bt_labels_copy(struct bt_labels *dst, const struct bt_labels *src);
/* Adds each label of src whose name dst does not have (external labels merge "under"). */
int bt_labels_merge_under(struct bt_labels *dst, const struct bt_labels *src);
/* Deletes every label whose name starts with "__". */
void bt_labels_drop_reserved(struct bt_labels *l);
/* Returns the cached canonical string (without "__" labels) and its length; NULL on ENOMEM. */
const char *bt_labels_canon(struct bt_labels *l, size_t *len);
/* Hash of the canonical string. */
uint64_t bt_labels_hash(struct bt_labels *l);
/* Number of labels that would appear in the canonical string. */
size_t bt_labels_visible(const struct bt_labels *l);
bool bt_labels_equal(const struct bt_labels *a, const struct bt_labels *b);

/* [a-zA-Z_][a-zA-Z0-9_]* */
bool bt_label_name_valid(const char *s, size_t n);
/* Appends the Go strconv.Quote form of s (with the quotes) to out. 0 or -ENOMEM/-E2BIG. */
struct bt_buf;
int bt_go_quote(struct bt_buf *out, const char *s, size_t n);

#endif
