/*
 * stage_registry: maps stage names from pipeline_stages to their implementations.
 *
 * Each stage type lives in its own src/stage/stage_<name>.c and exports bt_stage_<name>_ops. The
 * table refers to a stage's ops only when its source file is in the tree (__has_include), so a
 * build without, say, stage_cri.c still links, and configuring that stage gives the error
 * "stage \"cri\" is not available in this build" instead of a link failure. (Weak placeholder
 * symbols would not work here: btcore is a static library, and the linker does not pull an
 * archive member just to override a weak definition it already has.)
 *
 * Build note: the check happens when this file is compiled. After adding a stage file to a
 * tree that was built before, touch this file (or build from clean) so it sees the new stage;
 * otherwise the stage reports "not available in this build".
 */
#include "stage/stage.h"

#include <stddef.h>
#include <string.h>
#if __has_include("stage_regex.c")
#define OPS_REGEX (&bt_stage_regex_ops)
#else
#define OPS_REGEX NULL
#endif
#if __has_include("stage_json.c")
#define OPS_JSON (&bt_stage_json_ops)
#else
#define OPS_JSON NULL
#endif
#if __has_include("stage_logfmt.c")
#define OPS_LOGFMT (&bt_stage_logfmt_ops)
#else
#define OPS_LOGFMT NULL
#endif
#if __has_include("stage_replace.c")
#define OPS_REPLACE (&bt_stage_replace_ops)
#else
#define OPS_REPLACE NULL
#endif
#if __has_include("stage_pack.c")
#define OPS_PACK (&bt_stage_pack_ops)
#else
#define OPS_PACK NULL
#endif
#if __has_include("stage_decolorize.c")
#define OPS_DECOLORIZE (&bt_stage_decolorize_ops)
#else
#define OPS_DECOLORIZE NULL
#endif
#if __has_include("stage_labels.c")
#define OPS_LABELS (&bt_stage_labels_ops)
#else
#define OPS_LABELS NULL
#endif
#if __has_include("stage_static_labels.c")
#define OPS_STATIC_LABELS (&bt_stage_static_labels_ops)
#else
#define OPS_STATIC_LABELS NULL
#endif
#if __has_include("stage_labeldrop.c")
#define OPS_LABELDROP (&bt_stage_labeldrop_ops)
#else
#define OPS_LABELDROP NULL
#endif
#if __has_include("stage_labelallow.c")
#define OPS_LABELALLOW (&bt_stage_labelallow_ops)
#else
#define OPS_LABELALLOW NULL
#endif
#if __has_include("stage_structured_metadata.c")
#define OPS_STRUCTURED_METADATA (&bt_stage_structured_metadata_ops)
#else
#define OPS_STRUCTURED_METADATA NULL
#endif
#if __has_include("stage_output.c")
#define OPS_OUTPUT (&bt_stage_output_ops)
#else
#define OPS_OUTPUT NULL
#endif
#if __has_include("stage_tenant.c")
#define OPS_TENANT (&bt_stage_tenant_ops)
#else
#define OPS_TENANT NULL
#endif
#if __has_include("stage_limit.c")
#define OPS_LIMIT (&bt_stage_limit_ops)
#else
#define OPS_LIMIT NULL
#endif
#if __has_include("stage_sampling.c")
#define OPS_SAMPLING (&bt_stage_sampling_ops)
#else
#define OPS_SAMPLING NULL
#endif
#if __has_include("stage_match.c")
#define OPS_MATCH (&bt_stage_match_ops)
#else
#define OPS_MATCH NULL
#endif
#if __has_include("stage_drop.c")
#define OPS_DROP (&bt_stage_drop_ops)
#else
#define OPS_DROP NULL
#endif
#if __has_include("stage_multiline.c")
#define OPS_MULTILINE (&bt_stage_multiline_ops)
#else
#define OPS_MULTILINE NULL
#endif
#if __has_include("stage_metrics.c")
#define OPS_METRICS (&bt_stage_metrics_ops)
#else
#define OPS_METRICS NULL
#endif
#if __has_include("stage_timestamp.c")
#define OPS_TIMESTAMP (&bt_stage_timestamp_ops)
extern const struct bt_stage_ops bt_stage_timestamp_ops;
#else
#define OPS_TIMESTAMP NULL
#endif
#if __has_include("stage_template.c")
#define OPS_TEMPLATE (&bt_stage_template_ops)
extern const struct bt_stage_ops bt_stage_template_ops;
#else
#define OPS_TEMPLATE NULL
#endif
#if __has_include("stage_docker.c")
#define OPS_DOCKER (&bt_stage_docker_ops)
extern const struct bt_stage_ops bt_stage_docker_ops;
#else
#define OPS_DOCKER NULL
#endif
#if __has_include("stage_cri.c")
#define OPS_CRI (&bt_stage_cri_ops)
extern const struct bt_stage_ops bt_stage_cri_ops;
#else
#define OPS_CRI NULL
#endif

struct entry {
    const char *name;
    const struct bt_stage_ops *ops; /* NULL: known but not built in */
};

static const struct entry table[] = {
    {"regex", OPS_REGEX},
    {"json", OPS_JSON},
    {"logfmt", OPS_LOGFMT},
    {"replace", OPS_REPLACE},
    {"pack", OPS_PACK},
    {"decolorize", OPS_DECOLORIZE},
    {"labels", OPS_LABELS},
    {"static_labels", OPS_STATIC_LABELS},
    {"labeldrop", OPS_LABELDROP},
    {"labelallow", OPS_LABELALLOW},
    {"structured_metadata", OPS_STRUCTURED_METADATA},
    {"output", OPS_OUTPUT},
    {"tenant", OPS_TENANT},
    {"limit", OPS_LIMIT},
    {"sampling", OPS_SAMPLING},
    {"match", OPS_MATCH},
    {"drop", OPS_DROP},
    {"multiline", OPS_MULTILINE},
    {"metrics", OPS_METRICS},
    {"timestamp", OPS_TIMESTAMP},
    {"template", OPS_TEMPLATE},
    {"docker", OPS_DOCKER},
    {"cri", OPS_CRI},
    {"non_indexed_labels", OPS_STRUCTURED_METADATA}, /* the 2.9 name of structured_metadata */
    /* promtail stages bpftail does not implement: a clear error rather than "unknown" */
    {"geoip", NULL},
    {"eventlogmessage", NULL},
};

static const char *const names[] = {
    "regex",
    "json",
    "logfmt",
    "replace",
    "pack",
    "decolorize",
    "labels",
    "static_labels",
    "labeldrop",
    "labelallow",
    "structured_metadata",
    "output",
    "tenant",
    "limit",
    "sampling",
    "match",
    "drop",
    "multiline",
    "metrics",
    "timestamp",
    "template",
    "docker",
    "cri",
    "non_indexed_labels",
    NULL,
};

const struct bt_stage_ops *bt_stage_find(const char *name, bool *unavailable)
{
    *unavailable = false;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strcmp(table[i].name, name) == 0) {
            *unavailable = table[i].ops == NULL;
            return table[i].ops;
        }
    }
    return NULL;
}

const char *const *bt_stage_names(void)
{
    return names;
}
