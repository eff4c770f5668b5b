/*
 * config: reads a promtail-compatible YAML config (plus bpftail's own keys) into plain structs.
 *
 * Parsing is strict like promtail's: every key the agent does not support is an error naming
 * file:line:col and the key. Blocks that other modules interpret (pipeline_stages,
 * relabel_configs, docker_sd_configs, fim) are kept as struct bt_node trees owned by the
 * config, validated by those modules when the agent builds them (so -check-syntax builds them
 * too). Defaults equal promtail's. The config owns everything it points to.
 */
#ifndef BT_CONFIG_H
#define BT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/labels.h"

struct bt_node;

struct bt_tls_config {
    char *ca_file, *cert_file, *key_file, *server_name;
    char *ca, *cert, *key;           /* inline PEM (Prometheus' ca, cert, key) */
    char *min_version, *max_version; /* "TLS10".."TLS13" or NULL */
    bool insecure_skip_verify;
};

struct bt_header {
    char *name, *value;
};

/* Prometheus' oauth2 block: the client-credentials grant (push/oauth2.c). */
struct bt_oauth2_config {
    bool set; /* the block was given */
    char *client_id, *client_secret, *client_secret_file, *token_url;
    char **scopes;
    size_t n_scopes;
    struct bt_header *params; /* endpoint_params */
    size_t n_params;
    struct bt_tls_config tls;
    char *proxy_url, *no_proxy;
    bool proxy_from_environment;
};

struct bt_client_config {
    char *url;              /* required */
    char *name;             /* default: host[:port] of url */
    int64_t batchwait_ns;   /* 1s */
    uint64_t batchsize;     /* 1048576 */
    int64_t min_backoff_ns; /* 500ms */
    int64_t max_backoff_ns; /* 5m */
    int max_retries;        /* 10; 0 = forever */
    int64_t timeout_ns;     /* 10s */
    char *tenant_id;        /* NULL: no header */
    struct bt_labels external_labels;
    char *basic_username, *basic_password, *basic_password_file;
    char *bearer_token, *bearer_token_file;
    char *basic_username_file;
    /* authorization: "Authorization: <type> <credentials>" (type defaults to Bearer). */
    bool auth_set;
    char *auth_type, *auth_credentials, *auth_credentials_file;
    struct bt_oauth2_config oauth2;
    char *proxy_url;
    char *no_proxy;              /* hosts that bypass proxy_url */
    bool proxy_from_environment; /* HTTP(S)_PROXY / NO_PROXY from the environment */
    struct bt_header *proxy_connect_headers;
    size_t n_proxy_connect_headers;
    bool follow_redirects; /* true, as promtail 2.9+ */
    bool enable_http2;     /* false: promtail never speaks HTTP/2 to Loki */
    struct bt_tls_config tls;
    struct bt_header *headers;
    size_t n_headers;
    bool drop_rate_limited_batches;
    /* bpftail: drop entries older than this before sending (0 = off). */
    int64_t max_age_ns;
    /* bpftail: push requests at once (4); batches are split into as many lanes by stream. */
    int max_in_flight;
};

enum bt_start_at { BT_START_BEGINNING = 0, BT_START_END = 1 };

struct bt_static_config {
    char **targets;
    size_t n_targets;
    struct bt_labels labels; /* includes __path__, __path_exclude__ */
    const struct bt_node *node;
};

struct bt_scrape_config {
    char *job_name;
    struct bt_static_config *statics;
    size_t n_statics;
    const struct bt_node *pipeline_stages;       /* NULL if absent */
    const struct bt_node *relabel_configs;       /* NULL if absent */
    const struct bt_node *docker_sd_configs;     /* NULL if absent */
    const struct bt_node *docker;                /* bpftail `docker:` discovery target, or NULL */
    const struct bt_node *journal;               /* promtail `journal:` target, or NULL */
    const struct bt_node *file_sd_configs;       /* NULL if absent */
    const struct bt_node *kubernetes_sd_configs; /* NULL if absent */
    const struct bt_node *syslog;                /* promtail `syslog:` receiver, or NULL */
    const struct bt_node *loki_push_api;         /* promtail `loki_push_api:` receiver, or NULL */
    const struct bt_node *gelf;                  /* promtail `gelf:` receiver, or NULL */
    char *encoding;                              /* NULL = UTF-8 */
    /* bpftail extensions for file targets */
    enum bt_start_at start_at; /* first contact with a file that has no position */
    int64_t ignore_older_ns;   /* 0 = off: skip files not modified for this long */
    const struct bt_node *node;
};

struct bt_server_config {
    char *http_listen_address; /* "" = all */
    int http_listen_port;      /* 80 as promtail; 0 = ephemeral; -1 = disabled */
    int grpc_listen_port;      /* accepted, unused */
    bool grpc_ignored;         /* a grpc_* setting was given: logged once as ignored */
    char *external_url;        /* accepted, unused: promtail's web UI links */
    char *http_path_prefix;   /* "" or "/x[/y]" without a trailing slash: every endpoint under it */
    char *http_tls_cert_file; /* http_tls_config: HTTPS with this certificate and key */
    char *http_tls_key_file;
    char *log_level;  /* info */
    char *log_format; /* logfmt */
    bool disable;
    bool register_instrumentation;
    bool health_check_target; /* true */
    bool enable_runtime_reload;
    int64_t graceful_shutdown_timeout_ns;
};

struct bt_positions_config {
    char *filename;         /* /var/log/positions.yaml */
    int64_t sync_period_ns; /* 10s */
    bool ignore_invalid_yaml;
};

struct bt_limits_config {
    bool readline_rate_enabled;
    double readline_rate;    /* 10000 */
    int readline_burst;      /* 10000 */
    bool readline_rate_drop; /* true */
    size_t max_streams;
    uint64_t max_line_size; /* 0 = unlimited */
    bool max_line_size_truncate;
};

struct bt_target_config {
    int64_t sync_period_ns; /* 10s */
    bool stdin_;
};

/* bpftail's own section (`bpftail:` at top level). */
struct bt_agent_config {
    uint64_t memory_limit;         /* 64 MiB: bytes held in batches and in flight */
    int64_t shutdown_timeout_ns;   /* 5s */
    char *watcher;                 /* auto|bpf|fanotify|inotify|poll */
    int64_t line_flush_timeout_ns; /* partial last line flushed after this: 5s */
    int64_t rotate_grace_ns;       /* renamed-away file kept open this long after EOF: 5s */
    int64_t idle_close_ns;         /* idle files closed after this: 5m, 0 = never */
    uint64_t read_buffer;          /* bytes per read(): 256 KiB */
    size_t max_open_files;         /* 0 = derived from RLIMIT_NOFILE */
    bool fingerprint_check;        /* true */
    char *spool_dir;               /* receivers' durable queues; NULL = beside positions */
    uint64_t spool_max_bytes;      /* bound of each receiver's queue: 256 MiB */
};

struct bt_config {
    char *path;
    struct bt_node *root; /* owned */
    struct bt_server_config server;
    struct bt_positions_config positions;
    struct bt_client_config *clients;
    size_t n_clients;
    struct bt_scrape_config *scrapes;
    size_t n_scrapes;
    struct bt_limits_config limits;
    struct bt_target_config target;
    struct bt_agent_config agent;
    const struct bt_node *fim; /* bpftail `fim:` section or NULL */
};

/* Command-line settings that override or complete the file. */
struct bt_cli {
    const char *config_file;
    bool expand_env;
    bool check_syntax;
    bool dry_run;
    bool inspect;
    bool print_config;
    bool version;
    const char *log_level;
    int http_port; /* -1 if not given */
    const char *client_url;
    const char *client_tenant;
    const char *positions_file;
    bool help;
    /* Docker logging plugin mode (src/plugin); each setting also has an environment
     * variable, see plugin/plugin.h. */
    bool docker_plugin;
    const char *plugin_socket;
    const char *plugin_state_dir;
    const char *plugin_spool_max;
    const char *plugin_metrics_addr;
};

/* Parses argv (promtail's single-dash flags; "-flag=value" and "-flag value" both work). On a
 * bad flag returns -EINVAL and writes a message to err. */
int bt_cli_parse(int argc, char **argv, struct bt_cli *cli, char *err, size_t errlen);
/* Prints the flag list. */
void bt_cli_usage(void);

/* Loads the config for cli: the file (with ${VAR} / ${VAR:-default} expansion when asked),
 * or the built-in default config when no file is given. NULL on error with a message naming
 * file:line:col and the key in err. */
struct bt_config *bt_config_load(const struct bt_cli *cli, char *err, size_t errlen);
/* Parses YAML text (tests). name is used in messages. */
struct bt_config *bt_config_parse(const char *text, size_t len, const char *name, char *err,
                                  size_t errlen);
void bt_config_free(struct bt_config *c);
/* Writes the effective config as YAML (for -print-config-stderr). */
struct bt_buf;
int bt_config_dump(const struct bt_config *c, struct bt_buf *out);
/* Expands ${VAR} and ${VAR:-default} ($$ is a literal $). Caller frees. NULL on error. */
char *bt_config_expand_env(const char *text, size_t len, char *err, size_t errlen);

/* A client config built outside a config file (the Docker plugin's log-opts). init sets
 * promtail's defaults; check validates it as the clients: block is validated (url, proxy,
 * tenant, auth, TLS pairs, durations) and derives the name; free releases what it owns. */
void bt_client_config_init(struct bt_client_config *cl);
int bt_client_config_check(struct bt_client_config *cl, char *err, size_t errlen);
void bt_client_config_free(struct bt_client_config *cl);

/* The built-in default config text: the /var/log files ending in "log" as job=varlogs to
 * $LOKI_URL or http://localhost:3100/loki/api/v1/push. */
extern const char bt_default_config[];

#endif
