/* Command-line flags and ${VAR} expansion of config text; see config.h. */
#include "config/config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/timeutil.h"

#define BT_EXPAND_MAX (16u << 20)
#define BT_EXPAND_DEPTH 8

enum flag_type { FL_STR, FL_BOOL, FL_PORT };

struct flag {
    const char *name;
    enum flag_type type;
    size_t off;
    const char *arg;
    const char *help;
};

#define CF(m) offsetof(struct bt_cli, m)
static const struct flag flags[] = {
    {"config.file", FL_STR, CF(config_file), "path",
     "YAML config file (promtail format). Without it the built-in config is used."},
    {"config.expand-env", FL_BOOL, CF(expand_env), NULL,
     "Expand ${VAR} and ${VAR:-default} in the config file ($$ is a literal $)."},
    {"check-syntax", FL_BOOL, CF(check_syntax), NULL, "Check the config and exit."},
    {"dry-run", FL_BOOL, CF(dry_run), NULL,
     "Print entries to stdout instead of pushing them; positions are not written."},
    {"inspect", FL_BOOL, CF(inspect), NULL, "Show what each pipeline stage changes (debug)."},
    {"print-config-stderr", FL_BOOL, CF(print_config), NULL,
     "Print the effective config (secrets masked) to stderr at start-up."},
    {"log.level", FL_STR, CF(log_level), "level",
     "debug, info, warn or error (overrides the file)."},
    {"version", FL_BOOL, CF(version), NULL, "Print the version and exit."},
    {"server.http-listen-port", FL_PORT, CF(http_port), "port",
     "HTTP port for /metrics, /ready, /targets (0 = any free port)."},
    {"client.url", FL_STR, CF(client_url), "url",
     "Loki push URL; replaces the url of every configured client, or adds one."},
    {"client.tenant-id", FL_STR, CF(client_tenant), "id",
     "Tenant (X-Scope-OrgID) of every client."},
    {"positions.file", FL_STR, CF(positions_file), "path", "Positions file (overrides the file)."},
    {"docker-plugin", FL_BOOL, CF(docker_plugin), NULL,
     "Run as a Docker logging plugin (no config file; see docs/docker-plugin.md)."},
    {"plugin.socket", FL_STR, CF(plugin_socket), "path",
     "Plugin mode: unix socket to serve (env BPFTAIL_PLUGIN_SOCKET)."},
    {"plugin.state-dir", FL_STR, CF(plugin_state_dir), "dir",
     "Plugin mode: directory of container state and spools (env BPFTAIL_STATE_DIR)."},
    {"plugin.spool-max", FL_STR, CF(plugin_spool_max), "size",
     "Plugin mode: bytes all spools may hold on disk (env BPFTAIL_SPOOL_MAX)."},
    {"plugin.metrics-addr", FL_STR, CF(plugin_metrics_addr), "host:port",
     "Plugin mode: /metrics and /ready listen address, \"\" = off (env BPFTAIL_METRICS_ADDR)."},
    {"help", FL_BOOL, CF(help), NULL, "Print this help and exit."},
    {"h", FL_BOOL, CF(help), NULL, NULL},
};

void bt_cli_usage(void)
{
    printf("Usage: bpftail [flags]\n\nbpftail ships log files and Docker logs to Grafana Loki. It "
           "reads promtail configs.\nFlags take one or two dashes; values go after \"=\" or as "
           "the next argument.\n\n");
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        if (!flags[i].help)
            continue;
        printf("  -%s%s%s\n        %s\n", flags[i].name, flags[i].arg ? " " : "",
               flags[i].arg ? flags[i].arg : "", flags[i].help);
    }
    printf("\nEnvironment: LOKI_URL sets the Loki base URL of the built-in config "
           "(default http://localhost:3100).\n");
}

static const struct flag *find_flag(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        if (strlen(flags[i].name) == n && strncmp(flags[i].name, name, n) == 0)
            return &flags[i];
    return NULL;
}

/* Sets one flag; value is NULL for a bare boolean. */
static int set_flag(const struct flag *f, const char *value, struct bt_cli *cli, char *err,
                    size_t errlen)
{
    char *at = (char *)cli + f->off;
    switch (f->type) {
    case FL_BOOL:
        if (!value) {
            *(bool *)at = true;
        } else if (bt_parse_bool(value, (bool *)at)) {
            snprintf(err, errlen, "invalid boolean value \"%s\" for flag -%s", value, f->name);
            return -EINVAL;
        }
        return 0;
    case FL_STR: *(const char **)at = value; return 0;
    case FL_PORT: {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end || v < 0 || v > 65535) {
            snprintf(err, errlen, "invalid port \"%s\" for flag -%s (0-65535)", value, f->name);
            return -EINVAL;
        }
        *(int *)at = (int)v;
        return 0;
    }
    }
    return -EINVAL;
}

int bt_cli_parse(int argc, char **argv, struct bt_cli *cli, char *err, size_t errlen)
{
    memset(cli, 0, sizeof(*cli));
    cli->http_port = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0' || strcmp(a, "--") == 0) {
            snprintf(err, errlen,
                     "unexpected argument \"%s\" (bpftail takes flags only; see -help)", a);
            return -EINVAL;
        }
        const char *name = a + (a[1] == '-' ? 2 : 1);
        const char *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        const struct flag *f = find_flag(name, n);
        if (!f) {
            snprintf(err, errlen, "unknown flag -%.*s (see -help)", (int)n, name);
            return -EINVAL;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!value && f->type != FL_BOOL) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "flag -%s needs a value", f->name);
                return -EINVAL;
            }
            value = argv[++i];
        }
        int rc = set_flag(f, value, cli, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- ${VAR} expansion ---- */

struct expander {
    const char *origin; /* whole text, for line:col in messages */
    struct bt_buf out;
    char *err;
    size_t errlen;
};

static int expand_fail(struct expander *x, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int expand_fail(struct expander *x, const char *at, const char *fmt, ...)
{
    int line = 1, col = 1;
    for (const char *p = x->origin; p < at; p++) {
        if (*p == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(x->err, x->errlen, "%d:%d: %s", line, col, msg);
    return -EINVAL;
}

/* Finds the "}" closing the "${" at s (nested "${" counted); NULL if none before end. */
static const char *closing_brace(const char *s, const char *end)
{
    int depth = 0;
    for (const char *p = s; p < end; p++) {
        if (p[0] == '$' && p + 1 < end && p[1] == '{') {
            depth++;
            p++;
        } else if (*p == '}' && --depth == 0) {
            return p;
        }
    }
    return NULL;
}

static int expand(struct expander *x, const char *s, size_t len, int depth);

/* Expands the inside of one ${...}: "NAME" or "NAME:-default". */
static int expand_var(struct expander *x, const char *in, size_t n, int depth)
{
    size_t k = 0;
    while (k < n && (in[k] == '_' || (in[k] >= 'a' && in[k] <= 'z') ||
                     (in[k] >= 'A' && in[k] <= 'Z') || (k > 0 && in[k] >= '0' && in[k] <= '9')))
        k++;
    bool has_default = n >= k + 2 && in[k] == ':' && in[k + 1] == '-';
    if (k == 0 || (k != n && !has_default))
        return expand_fail(x, in - 2,
                           "unsupported expansion \"${%.*s}\": use ${VAR} or ${VAR:-default}",
                           (int)n, in);
    char name[256];
    if (k >= sizeof(name))
        return expand_fail(x, in - 2, "variable name too long in \"${%.*s}\"", (int)n, in);
    memcpy(name, in, k);
    name[k] = '\0';
    const char *v = getenv(name);
    if (has_default && (!v || !*v)) {
        if (depth >= BT_EXPAND_DEPTH)
            return expand_fail(x, in - 2, "defaults nested too deeply in \"${%.*s}\"", (int)n, in);
        return expand(x, in + k + 2, n - k - 2, depth + 1);
    }
    if (v && bt_buf_adds(&x->out, v) < 0)
        return expand_fail(x, in - 2, "expanded config too large at \"${%.*s}\"", (int)n, in);
    return 0;
}

static int expand(struct expander *x, const char *s, size_t len, int depth)
{
    const char *end = s + len;
    const char *lit = s;
    int rc = 0;
    for (const char *p = s; p < end && !rc;) {
        if (*p != '$' || p + 1 >= end || (p[1] != '$' && p[1] != '{')) {
            p++;
            continue;
        }
        if (bt_buf_add(&x->out, lit, (size_t)(p - lit)) < 0)
            return expand_fail(x, p, "expanded config too large");
        if (p[1] == '$') {
            rc = bt_buf_add(&x->out, "$", 1) < 0 ? expand_fail(x, p, "expanded config too large")
                                                 : 0;
            p += 2;
        } else {
            const char *close = closing_brace(p, end);
            if (!close)
                return expand_fail(x, p, "unterminated \"${\"");
            rc = expand_var(x, p + 2, (size_t)(close - p - 2), depth);
            p = close + 1;
        }
        lit = p;
    }
    if (!rc && bt_buf_add(&x->out, lit, (size_t)(end - lit)) < 0)
        return expand_fail(x, end, "expanded config too large");
    return rc;
}

char *bt_config_expand_env(const char *text, size_t len, char *err, size_t errlen)
{
    struct expander x = {.origin = text, .err = err, .errlen = errlen};
    bt_buf_init(&x.out, BT_EXPAND_MAX);
    if (expand(&x, text, len, 0)) {
        bt_buf_free(&x.out);
        return NULL;
    }
    char *r = bt_buf_take(&x.out, NULL);
    if (!r)
        snprintf(err, errlen, "out of memory");
    return r;
}
