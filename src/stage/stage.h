/*
 * stage: the interface every pipeline stage implements, and the working entry stages change.
 *
 * A stage type is a table of function pointers (struct bt_stage_ops) found by name in the
 * registry (stage_registry.c). pipeline.c builds one instance per configured stage with
 * init(), then hands every entry through process() in order. A stage is a pure function over
 * one struct bt_pentry: it reads and changes labels, timestamp, line, the extracted map and
 * structured metadata, and returns KEEP, DROP (with e->drop_reason) or HELD. Stages do no I/O.
 *
 * The working entry borrows what it can and owns scratch memory it reuses from line to line:
 *   - labels are copy-on-write: e->labels points at the source's set until a stage asks for
 *     bt_pentry_labels_mut(), which copies them once into the entry's own set;
 *   - the line is pointer+length; a stage that rewrites it uses bt_pentry_set_line() or the
 *     begin/commit pair, which write into one of two reusable buffers (so the new line may be
 *     built from the old one);
 *   - extracted values are typed (string, number, bool, null, JSON text) in slots that keep
 *     their memory when the map is cleared.
 * So the common path allocates nothing once buffers have grown to the working size.
 *
 * Stages that hold entries back (multiline, limit) copy them with bt_pentry_copy(), take a
 * reference on e->seg, and later push them on with bt_stage_emit(); emitted entries run
 * through the stages after the emitting one and reach the sink. deadline/tick/flush let the
 * pipeline drive their timers. Nested stage lists (match) use the bt_stage_list_* functions of
 * pipeline.c. Loop thread only.
 */
#ifndef BT_STAGE_H
#define BT_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/entry.h"
#include "core/labels.h"
#include "util/buf.h"
#include "util/utf8.h"

struct bt_node;
struct bt_metrics;
struct bt_pipeline;
struct bt_segment;

/* Hard caps on what outside input can make a working entry hold. */
#define BT_PENTRY_LINE_MAX (64u << 20) /* bytes of a rewritten line */
#define BT_EXTRACTED_MAX 4096          /* keys in the extracted map */
#define BT_XVAL_MAX (64u << 20)        /* bytes of one extracted value */

enum bt_stage_result {
    BT_STAGE_KEEP = 0, /* go on to the next stage */
    BT_STAGE_DROP,     /* counted with e->drop_reason (NULL: "drop_stage"); entry goes no further */
    BT_STAGE_HELD,     /* the stage kept a copy and will emit it later; nothing more now */
};

/* Types of extracted values, as promtail's map[string]interface{} holds them. */
enum bt_xtype {
    BT_X_NULL = 0,
    BT_X_STRING,
    BT_X_NUMBER, /* float64, as JSON numbers decode in Go */
    BT_X_BOOL,
    BT_X_JSON, /* an object or array, kept as compact JSON text */
};

/* A value view. s/len are set for STRING and JSON (borrowed from the map: valid until the key
 * is set again or the map is cleared). */
struct bt_xval {
    enum bt_xtype type;
    double num;
    bool b;
    const char *s;
    size_t len;
};

struct bt_xslot {
    char *key;
    size_t klen, kcap;
    struct bt_xval v;
    char *buf; /* storage behind v.s */
    size_t bcap;
};

/* The extracted map: insertion-ordered slots, linear lookup (maps are small). */
struct bt_extracted {
    struct bt_xslot *v;
    size_t n, cap;
};

/* A working entry must stay where it is once used (no realloc'd arrays of them): labels may
 * point at its own set. */
struct bt_pentry {
    struct bt_labels *labels; /* current labels: read-only unless from bt_pentry_labels_mut */
    struct bt_labels own;     /* the entry's own copy once labels were changed */
    int64_t ts_ns;
    const char *line; /* current line: borrowed from the source or in lbuf[cur] */
    size_t line_len;
    struct bt_buf lbuf[2]; /* reusable line buffers */
    int cur;               /* which lbuf holds the line when it was rewritten */
    struct bt_extracted x;
    struct bt_labels meta;   /* structured metadata (names not restricted to label syntax) */
    struct bt_segment *seg;  /* borrowed; a stage that holds the entry takes its own reference */
    const char *drop_reason; /* set by a stage returning BT_STAGE_DROP (static or stage-owned) */
};

/* ---- working entry ---- */

/* Prepares an empty entry (allocates nothing). */
void bt_pentry_init(struct bt_pentry *e);
/* Frees everything the entry owns. */
void bt_pentry_free(struct bt_pentry *e);
/* Loads src into e for a new run: labels and line borrowed from src, metadata copied, extracted
 * cleared and filled with every label (promtail copies labels into extracted first).
 * 0 or -ENOMEM/-E2BIG. */
int bt_pentry_load(struct bt_pentry *e, const struct bt_entry *src);
/* The same, copying into extracted only the labels whose name keep() accepts (NULL: all):
 * the pipeline passes the keys its stages read. */
typedef bool (*bt_stage_keep_fn)(const void *ctx, const char *key, size_t klen);
int bt_pentry_load_keys(struct bt_pentry *e, const struct bt_entry *src, bt_stage_keep_fn keep,
                        const void *kctx);
/* Makes dst an owning deep copy of src (labels, line, extracted, metadata, ts, seg pointer; no
 * segment reference is taken). 0 or -ENOMEM/-E2BIG. */
int bt_pentry_copy(struct bt_pentry *dst, const struct bt_pentry *src);
/* Labels for writing: copies the borrowed set into e->own on first use. NULL on ENOMEM. */
struct bt_labels *bt_pentry_labels_mut(struct bt_pentry *e);
/* Replaces the line with a copy of s (s may point into the current line). 0 or -ENOMEM/-E2BIG
 * (line unchanged). */
int bt_pentry_set_line(struct bt_pentry *e, const char *s, size_t n);
/* Returns an empty buffer to build a new line in (the current line stays valid meanwhile);
 * bt_pentry_line_commit() makes it the line. A failed append leaves the buffer empty: check
 * the append's result and do not commit. */
struct bt_buf *bt_pentry_line_begin(struct bt_pentry *e);
void bt_pentry_line_commit(struct bt_pentry *e);
/* Fills out with a view of e for a sink: pointers valid until e changes. kv is scratch space
 * for the metadata view (grown as needed, owned by the caller). 0 or -ENOMEM. */
int bt_pentry_view(struct bt_pentry *e, struct bt_entry *out, struct bt_kv **kv, size_t *kvcap);

/* ---- extracted map ---- */

void bt_extracted_init(struct bt_extracted *x);
void bt_extracted_free(struct bt_extracted *x);
/* Forgets every key; memory kept for reuse. */
void bt_extracted_clear(struct bt_extracted *x);
/* Sets key to a copy of v (v->s may point into the map itself). 0 or -ENOMEM/-E2BIG. */
int bt_extracted_set(struct bt_extracted *x, const char *k, size_t klen, const struct bt_xval *v);
/* Shorthands for a string and a number value. */
int bt_extracted_set_str(struct bt_extracted *x, const char *k, size_t klen, const char *s,
                         size_t n);
int bt_extracted_set_num(struct bt_extracted *x, const char *k, size_t klen, double d);
/* Returns the value (borrowed, valid until the map changes) or NULL. */
const struct bt_xval *bt_extracted_get(const struct bt_extracted *x, const char *k, size_t klen);
/* Deletes key; 1 if it was there, 0 if not. */
int bt_extracted_del(struct bt_extracted *x, const char *k, size_t klen);
/* Makes dst a copy of src. 0 or -ENOMEM. */
int bt_extracted_copy(struct bt_extracted *dst, const struct bt_extracted *src);
/* Converts a value to text as promtail's getString does: strings as-is, numbers in the shortest
 * plain decimal (no exponent), bools as true/false, JSON values as their text (promtail's json
 * stage stores objects as marshalled strings). NULL fails with -EINVAL.
 * tmp (>= 64 bytes) is scratch for numbers; s and n get the text. */
int bt_xval_string(const struct bt_xval *v, char *tmp, size_t tmplen, const char **s, size_t *n);
/* Looks key up and converts it with bt_xval_string. 0, -ENOENT (absent) or -EINVAL. */
int bt_extracted_get_str(const struct bt_extracted *x, const char *k, size_t klen, char *tmp,
                         size_t tmplen, const char **s, size_t *n);
/* Formats a double as Go's strconv.FormatFloat(v, 'f', -1, 64). Returns the length. */
size_t bt_format_go_float(char *out, size_t outlen, double v);

/* ---- the stage interface ---- */

struct bt_stage_out; /* where a stage's emitted entries continue (opaque, owned by the runner) */
struct bt_stage_list;

/* What init() gets besides its own config. Borrowed for the stage's lifetime. */
struct bt_stage_env {
    const char *job;              /* scrape job name ("" if none) */
    const char *name;             /* stage name as written in the config (aliases included) */
    const struct bt_node *where;  /* the stage's key node, for error positions */
    struct bt_metrics *metrics;   /* may be NULL (tests): stages must cope */
    int depth;                    /* nesting level of match stages (0 at the top) */
    struct bt_pipeline *pipeline; /* the root pipeline (for bt_stage_list_new) */
};

typedef void (*bt_stage_key_fn)(void *ctx, const char *key, size_t klen);

struct bt_stage_ops {
    const char *name;
    /* Builds an instance from cfg (the value under the stage's key; may be a NULL node). NULL on
     * error with "file:line:col: stage \"name\": what" in err (see bt_stage_err). */
    void *(*init)(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                  size_t errlen);
    /* Processes one entry; out is where entries emitted now (not e itself) continue. */
    enum bt_stage_result (*process)(void *st, struct bt_pentry *e, struct bt_stage_out *out);
    /* Optional (NULL for stages that hold nothing): */
    int64_t (*deadline)(const void *st); /* monotonic time of the next tick needed, or INT64_MAX */
    void (*tick)(void *st, int64_t now_mono, struct bt_stage_out *out); /* emit what is due */
    void (*flush)(void *st, struct bt_stage_out *out);                  /* emit everything */
    void (*free)(void *st);
    /* Optional, both: which extracted values are read, so that stages can skip writing values
     * nobody reads (a regex's unread groups). reads() calls fn for every extracted key the
     * stage may read and returns true; a stage without reads(), or whose reads() returns false,
     * may read any key. prune() is told the keys some stage of the pipeline reads (keep; NULL:
     * every key, as -inspect shows them all) and may stop writing the others. */
    bool (*reads)(const void *st, bt_stage_key_fn fn, void *ctx);
    void (*prune)(void *st, bt_stage_keep_fn keep, const void *ctx);
};

/* Sends an entry a stage held on to the stages after it (and on to the sink). e is borrowed
 * for the call; the stage keeps its segment reference until this returns. */
void bt_stage_emit(struct bt_stage_out *out, struct bt_pentry *e);

/* Writes "file:line:col: stage \"name\": <fmt>" into err, positioned at node at (or at
 * env->where when at is NULL). Returns NULL so init() can `return bt_stage_err(...)`. */
void *bt_stage_err(char *err, size_t errlen, const struct bt_stage_env *env,
                   const struct bt_node *at, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Checks that cfg is a map (a NULL node counts as an empty map): 0, or -EINVAL with an error in
 * err. A key not in allowed (NULL-terminated) is ignored, as promtail ignores it, with a warning
 * log line naming file:line:col, stage and key. */
int bt_stage_check_keys(const struct bt_node *cfg, const struct bt_stage_env *env,
                        const char *const *allowed, char *err, size_t errlen);
/* The scalar text of map key k, or NULL if absent or null. -EINVAL via *bad when it is not a
 * scalar (error written to err). */
const char *bt_stage_str(const struct bt_node *cfg, const char *k, const struct bt_stage_env *env,
                         int *bad, char *err, size_t errlen);

/* A "name: source" option map (labels, structured_metadata, logfmt mapping, json
 * expressions): an empty or null source means "same as name". */
struct bt_stage_kv {
    char *name, *source;
    size_t name_len, source_len;
};
/* Parses cfg (a map) into *out (caller frees with bt_stage_kv_free). With label_names, each
 * name must be a valid label name. 0 or -EINVAL/-ENOMEM with the error in err. */
int bt_stage_kv_parse(const struct bt_node *cfg, const struct bt_stage_env *env, bool label_names,
                      struct bt_stage_kv **out, size_t *n, char *err, size_t errlen);
void bt_stage_kv_free(struct bt_stage_kv *v, size_t n);
/* The labels and structured_metadata stages: a parsed label-name map and the walk over the
 * extracted values it names. bt_stage_labelmap_new/_free are the stages' init/free ops. */
struct bt_stage_labelmap {
    struct bt_stage_kv *kv;
    size_t n;
};
void *bt_stage_labelmap_new(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                            size_t errlen);
void bt_stage_labelmap_free(void *map);
/* The reads op of the labelmap stages: every source the map names. */
bool bt_stage_labelmap_reads(const void *map, bt_stage_key_fn fn, void *ctx);
/* Finds the next pair from *i on whose extracted value exists, converts to text and is valid
 * UTF-8 (promtail skips the others); returns its kv and sets *v, *n (which may point into tmp,
 * BT_STAGE_LABELMAP_TMP bytes), or NULL when done. */
#define BT_STAGE_LABELMAP_TMP 64
const struct bt_stage_kv *bt_stage_labelmap_next(const struct bt_stage_labelmap *m,
                                                 const struct bt_pentry *e, size_t *i, char *tmp,
                                                 const char **v, size_t *n);
/* Parses a list of strings (labeldrop, labelallow, pack labels). Same rules. */
int bt_stage_strlist(const struct bt_node *cfg, const struct bt_stage_env *env, bool label_names,
                     char ***out, size_t *n, char *err, size_t errlen);
void bt_stage_strlist_free(char **v, size_t n);

/* ---- registry (stage_registry.c) ---- */

/* Looks up a stage type by its config name (aliases such as non_indexed_labels included).
 * Returns NULL for an unknown name; *unavailable is set when the name is known but the stage
 * is not built in. */
const struct bt_stage_ops *bt_stage_find(const char *name, bool *unavailable);
/* NULL-terminated list of known stage names (for messages). */
const char *const *bt_stage_names(void);

/* ---- nested stage lists (pipeline.c), used by match ---- */

/* Builds the stages of a pipeline_stages-style sequence. NULL on error, message in err. */
struct bt_stage_list *bt_stage_list_new(const struct bt_node *seq, const struct bt_stage_env *env,
                                        char *err, size_t errlen);
void bt_stage_list_free(struct bt_stage_list *l);
/* Runs e through the list. KEEP means e came out of the last stage; DROP is not counted here:
 * return it (e->drop_reason set) so the enclosing runner counts it once. Entries emitted later
 * by held stages continue to out. */
enum bt_stage_result bt_stage_list_run(struct bt_stage_list *l, struct bt_pentry *e,
                                       struct bt_stage_out *out);
int64_t bt_stage_list_deadline(const struct bt_stage_list *l);
void bt_stage_list_tick(struct bt_stage_list *l, int64_t now_mono, struct bt_stage_out *out);
void bt_stage_list_flush(struct bt_stage_list *l, struct bt_stage_out *out);
/* Counts one dropped entry (bpftail_dropped_entries_total/bytes{reason}); used by the runner
 * and by stages that drop several entries at once. */
void bt_stage_count_drop(struct bt_stage_out *out, const struct bt_pentry *e, const char *reason);

/* Stage types provided by stage_*.c files, for the registry. */
extern const struct bt_stage_ops bt_stage_regex_ops, bt_stage_json_ops, bt_stage_logfmt_ops,
    bt_stage_replace_ops, bt_stage_pack_ops, bt_stage_decolorize_ops, bt_stage_labels_ops,
    bt_stage_static_labels_ops, bt_stage_labeldrop_ops, bt_stage_labelallow_ops,
    bt_stage_structured_metadata_ops, bt_stage_output_ops, bt_stage_tenant_ops, bt_stage_limit_ops,
    bt_stage_sampling_ops, bt_stage_match_ops, bt_stage_drop_ops, bt_stage_multiline_ops,
    bt_stage_metrics_ops;
/* Provided by other branches; the registry declares them only when their file is present:
 * bt_stage_timestamp_ops (stage_timestamp.c), bt_stage_template_ops (stage_template.c),
 * bt_stage_docker_ops (stage_docker.c), bt_stage_cri_ops (stage_cri.c). */

#endif
