/*
 * plugin_opts: what a Docker StartLogging request says, read into plain structs: the request
 * itself (the FIFO path and Docker's logger.Info), the log-opts of Loki's Docker driver as
 * bpftail understands them, and the label set of the container's streams.
 *
 * Pure: no I/O except reading a loki-pipeline-stage-file. JSON strings are decoded by jansson
 * (Docker escapes <, > and & as \u003c ...). Option values are Go-style strings as Loki's
 * driver reads them: durations as time.ParseDuration (plus promtail's d/w/y), integers as
 * strconv.Atoi, booleans as strconv.ParseBool, sizes (max-size) as Docker's units.RAMInBytes
 * (k, m, g, t, p: powers of 1024, optional b/ib, case-insensitive).
 *
 * Option rules: every loki-* key below is known; an unknown loki-* key is an error naming the
 * key (a typo must not silently ship logs somewhere else). Docker's own keys (mode,
 * max-buffer-size, tag, labels, labels-regex, env, env-regex, cache-*) and the json-file keys
 * of Loki's driver (no-file, keep-file, max-size, max-file) are accepted. Any other key is
 * reported through the unknown callback (the caller logs it once) and ignored.
 *
 * Labels, as Loki's driver builds them: the external labels (default container_name={{.Name}},
 * each value a Docker log-tag template), the labels/labels-regex/env/env-regex attributes
 * (- and . in names become _), swarm_stack/swarm_service and compose_project/compose_service
 * from the container's labels, host, filename=/var/log/docker/<id>/json.log, and bpftail's
 * container_id (full id) and image (image name) under them; then loki-relabel-config once.
 * Names and values are validated. `source` is added per line by the caller.
 */
#ifndef BT_PLUGIN_OPTS_H
#define BT_PLUGIN_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/labels.h"

struct bt_node;

struct bt_plugin_kv {
    char *key, *value;
};

/* A StartLogging request: {"File": ..., "Info": {...}}. Owns every string. */
struct bt_plugin_info {
    char *file;           /* the FIFO */
    char *container_id;   /* 64 hex */
    char *container_name; /* without Docker's leading "/" */
    char *entrypoint;
    char **args;
    size_t n_args;
    char *image_id, *image_name, *daemon_name, *created;
    char **env; /* "K=V" */
    size_t n_env;
    struct bt_plugin_kv *labels; /* container labels */
    size_t n_labels;
    struct bt_plugin_kv *config; /* log-opts, in request order */
    size_t n_config;
};

/* Parses a StartLogging body. 0, or -EINVAL with a message in err (bad JSON, no File, no
 * ContainerID, a field of the wrong type). */
int bt_plugin_info_parse(const char *json, size_t len, struct bt_plugin_info *out, char *err,
                         size_t errlen);
void bt_plugin_info_free(struct bt_plugin_info *in);
/* The "File" of a StopLogging body, heap copy; NULL with a message in err. */
char *bt_plugin_parse_file(const char *json, size_t len, char *err, size_t errlen);
/* Value of a log-opt or NULL. */
const char *bt_plugin_info_opt(const struct bt_plugin_info *in, const char *key);

/* A key that is neither Loki's nor Docker's: told once per request, then ignored. */
typedef void (*bt_plugin_unknown_fn)(void *ctx, const char *key);

struct bt_plugin_opts {
    struct bt_client_config client; /* url (userinfo moved to basic auth), tenant, batch, ... */
    struct bt_node *stages_doc;     /* owned YAML tree of the pipeline, or NULL */
    const struct bt_node *stages;   /* the stage list inside stages_doc, or NULL */
    struct bt_node *relabel_doc;    /* owned YAML list of relabel configs, or NULL */
    const char *external_labels;    /* borrowed from the info, or the default */
    bool no_file, keep_file;        /* accepted: docker logs is served by Docker's cache */
    int64_t max_size;               /* -1 = unset */
    int max_file;                   /* 1 */
    uint64_t spool_max;             /* max_size * max_file, 0 = only the global bound */
};

/* Reads the log-opts of in into o (initialised here). 0, or -EINVAL with a message naming the
 * key in err. The caller frees o with bt_plugin_opts_free in both cases. */
int bt_plugin_opts_parse(const struct bt_plugin_info *in, struct bt_plugin_opts *o,
                         bt_plugin_unknown_fn unknown, void *ctx, char *err, size_t errlen);
void bt_plugin_opts_free(struct bt_plugin_opts *o);
/* A string naming everything that makes a push client distinct (url, auth, tenant, batching,
 * backoff, retries, timeout, TLS, proxy): containers with equal keys share one client.
 * Heap string; NULL on ENOMEM. */
char *bt_plugin_client_key(const struct bt_client_config *c);

/* Builds the container's labels into out (cleared first), as described above. hostname is
 * the host label. 0, or -EINVAL with a message in err (bad template, bad relabel config,
 * invalid label name or value, everything relabeled away). */
int bt_plugin_labels(const struct bt_plugin_info *in, const struct bt_plugin_opts *o,
                     const char *hostname, struct bt_labels *out, char *err, size_t errlen);

/* Docker's units.RAMInBytes ("10m", "1.5g", "512KiB"). 0 or -EINVAL. */
int bt_plugin_parse_size(const char *s, int64_t *out);

#endif
