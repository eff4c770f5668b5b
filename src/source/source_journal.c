#include "source/source_journal.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <systemd/sd-journal.h>

#include "core/ack.h"
#include "core/labels.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "config/node.h"
#include "source/positions.h"
#include "source/relabel.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timeutil.h"

#define COMP "journal"
#define DEFAULT_MAX_AGE_NS (7 * 3600 * BT_NS_PER_SEC)
/* Entries read per loop round: the loop stays responsive while a backlog is read. */
#define ROUND_MAX 512
#define LABEL_MAX 256

/* An entry in flight: its sequence number and cursor, released in order. */
struct pend {
    uint64_t seq;
    char *cursor;
};

struct bt_journal {
    struct bt_journal_env env;
    char *job;
    char *path; /* NULL: the system journal */
    bool json;
    int64_t max_age_ns;
    char **matches;
    size_t n_matches;
    struct bt_labels statics;

    sd_journal *sd;
    int fd;
    uint64_t timer; /* next read round or sd-journal's timeout */
    bool paused;
    bool current; /* sd-journal is on an entry not yet sent: send it before moving on */

    struct bt_ack_owner *owner;
    uint64_t seq;
    struct pend *pend;
    size_t pend_head, pend_n, pend_cap;
    char key[LABEL_MAX + 16];
    uint64_t n_entries, committed;
    struct bt_series *m_lines, *m_no_message, *m_empty_labels;

    struct bt_labels fields, labels;
    struct bt_buf line;
};

const char *bt_journal_position_key(char *out, size_t outlen, const char *job)
{
    snprintf(out, outlen, "journal-%s", job);
    return out;
}

const char *bt_journal_priority_keyword(const char *p)
{
    static const char *const kw[] = {"emerg",   "alert",  "crit", "error",
                                     "warning", "notice", "info", "debug"};
    if (p[0] >= '0' && p[0] <= '7' && p[1] == '\0')
        return kw[p[0] - '0'];
    return p;
}

/* ---- delivery ---- */

static void on_commit(void *ctx, uint64_t committed)
{
    struct bt_journal *j = ctx;
    const char *last = NULL;
    while (j->pend_n && j->pend[j->pend_head].seq < committed) {
        struct pend *p = &j->pend[j->pend_head];
        if (last)
            free((char *)last);
        last = p->cursor;
        j->pend_head = (j->pend_head + 1) % j->pend_cap;
        j->pend_n--;
    }
    j->committed = committed;
    if (last && j->env.positions)
        bt_positions_set_string(j->env.positions, j->key, last);
    free((char *)last);
}

static int pend_push(struct bt_journal *j, uint64_t seq, char *cursor)
{
    if (j->pend_n == j->pend_cap) {
        size_t cap = j->pend_cap ? j->pend_cap * 2 : 64;
        struct pend *p = malloc(cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        for (size_t i = 0; i < j->pend_n; i++)
            p[i] = j->pend[(j->pend_head + i) % j->pend_cap];
        free(j->pend);
        j->pend = p;
        j->pend_cap = cap;
        j->pend_head = 0;
    }
    j->pend[(j->pend_head + j->pend_n) % j->pend_cap] = (struct pend){seq, cursor};
    j->pend_n++;
    return 0;
}

/* ---- one entry ---- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t min, cp;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0)
        len = 2, min = 0x80, cp = s[0] & 0x1f;
    else if ((s[0] & 0xf0) == 0xe0)
        len = 3, min = 0x800, cp = s[0] & 0x0f;
    else if ((s[0] & 0xf8) == 0xf0)
        len = 4, min = 0x10000, cp = s[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Appends s as a JSON string the way Go's encoding/json writes it (promtail marshals the
 * fields with it): <, >, & and control bytes as \u00XX, U+2028 and U+2029 escaped, and each
 * byte that is not valid UTF-8 as \ufffd. */
static int json_str(struct bt_buf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    int rc = bt_buf_add(b, "\"", 1);
    for (size_t i = 0; rc == 0 && i < n;) {
        unsigned char c = u[i];
        size_t l = utf8_len(u + i, n - i);
        if (c == '"' || c == '\\')
            rc = bt_buf_addf(b, "\\%c", c);
        else if (c == '\n')
            rc = bt_buf_adds(b, "\\n");
        else if (c == '\r')
            rc = bt_buf_adds(b, "\\r");
        else if (c == '\t')
            rc = bt_buf_adds(b, "\\t");
        else if (c < 0x20 || c == '<' || c == '>' || c == '&')
            rc = bt_buf_addf(b, "\\u%04x", c);
        else if (l == 0)
            rc = bt_buf_adds(b, "\\ufffd");
        else if (l == 3 && c == 0xe2 && u[i + 1] == 0x80 && (u[i + 2] == 0xa8 || u[i + 2] == 0xa9))
            rc = bt_buf_adds(b, u[i + 2] == 0xa8 ? "\\u2028" : "\\u2029");
        else
            rc = bt_buf_add(b, s + i, l);
        i += l ? l : 1;
    }
    return rc ? rc : bt_buf_add(b, "\"", 1);
}

/* The fields of the current entry into j->fields (raw names) and the labels into j->labels.
 * *has_msg tells whether MESSAGE was present (its value is in fields, possibly empty). */
static int collect(struct bt_journal *j, bool *has_msg)
{
    const void *d;
    size_t l;
    char name[LABEL_MAX];
    int rc = 0;
    bt_labels_clear(&j->fields);
    rc = bt_labels_copy(&j->labels, &j->statics);
    *has_msg = false;
    bt_buf_reset(&j->line);
    SD_JOURNAL_FOREACH_DATA(j->sd, d, l)
    {
        const char *s = d, *eq = memchr(s, '=', l);
        if (!eq || eq == s || (size_t)(eq - s) + sizeof("__journal__keyword") >= sizeof(name))
            continue;
        size_t nl = (size_t)(eq - s), vl = l - nl - 1;
        if (!bt_label_name_valid(s, nl))
            continue;
        if (nl == 7 && memcmp(s, "MESSAGE", 7) == 0) {
            *has_msg = true;
            if (!j->json) {
                bt_buf_reset(&j->line);
                rc = rc ? rc : bt_buf_add(&j->line, eq + 1, vl);
            }
        }
        rc = rc ? rc : bt_labels_setn(&j->fields, s, nl, eq + 1, vl);
        memcpy(name, "__journal_", 10);
        for (size_t i = 0; i < nl; i++)
            name[10 + i] = (char)tolower((unsigned char)s[i]);
        name[10 + nl] = '\0';
        /* Static labels win over fields, as promtail adds them last. */
        if (!bt_labels_get(&j->statics, name))
            rc = rc ? rc : bt_labels_setn(&j->labels, name, 10 + nl, eq + 1, vl);
    }
    const char *prio = bt_labels_get(&j->fields, "PRIORITY");
    if (prio && !bt_labels_get(&j->statics, "__journal_priority_keyword"))
        rc = rc ? rc
                : bt_labels_set(&j->labels, "__journal_priority_keyword",
                                bt_journal_priority_keyword(prio));
    if (j->json && rc == 0) {
        rc = bt_buf_add(&j->line, "{", 1);
        for (size_t i = 0; rc == 0 && i < j->fields.n; i++) {
            const struct bt_label *lb = &j->fields.v[i];
            if (i)
                rc = bt_buf_add(&j->line, ",", 1);
            rc = rc ? rc : json_str(&j->line, lb->name, lb->name_len);
            rc = rc ? rc : bt_buf_add(&j->line, ":", 1);
            rc = rc ? rc : json_str(&j->line, lb->value, lb->value_len);
        }
        rc = rc ? rc : bt_buf_add(&j->line, "}", 1);
    }
    return rc < 0 ? rc : 0;
}

/* Reads the entry sd-journal is positioned on and hands it to the sink. 0 or -errno. */
static int emit(struct bt_journal *j)
{
    char *cursor = NULL;
    int rc = sd_journal_get_cursor(j->sd, &cursor);
    if (rc < 0)
        return rc;
    uint64_t seq = j->seq;
    struct bt_segment *seg = NULL;
    if (pend_push(j, seq, cursor) < 0 || !(seg = bt_segment_new(j->owner, seq, seq + 1))) {
        if (j->pend_n && j->pend[(j->pend_head + j->pend_n - 1) % j->pend_cap].cursor == cursor)
            j->pend_n--;
        free(cursor);
        j->current = true; /* out of memory: this entry again on the next round */
        return -ENOMEM;
    }
    j->seq++;
    uint64_t usec = 0;
    bool has_msg;
    sd_journal_get_realtime_usec(j->sd, &usec);
    rc = collect(j, &has_msg);
    if (rc == 0 && !has_msg && !j->json)
        bt_counter_inc(j->m_no_message);
    if (rc == 0 && (has_msg || j->json)) {
        int keep = bt_relabel_apply(j->env.relabel, &j->labels);
        if (keep == BT_RELABEL_KEEP)
            bt_labels_drop_reserved(&j->labels);
        if (keep != BT_RELABEL_KEEP || !bt_labels_visible(&j->labels))
            bt_counter_inc(j->m_empty_labels); /* promtail counts relabel drops here too */
        else {
            struct bt_entry e = {.labels = &j->labels,
                                 .ts_ns = (int64_t)usec * 1000,
                                 .line = j->line.ptr ? j->line.ptr : "",
                                 .line_len = j->line.len,
                                 .seg = seg};
            j->n_entries++;
            bt_counter_inc(j->m_lines);
            j->env.sink(j->env.ctx, &e);
        }
    }
    bt_segment_unref(seg, 1); /* skipped entries pass at once */
    return rc;
}

/* ---- reading on the loop ---- */

static void arm(struct bt_journal *j, int64_t delay_ns);

static void round_fire(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_journal *j = arg;
    j->timer = 0;
    bt_journal_read(j, ROUND_MAX);
}

static void arm(struct bt_journal *j, int64_t delay_ns)
{
    if (!j->env.loop)
        return;
    if (j->timer)
        bt_loop_reset_timer(j->env.loop, j->timer, delay_ns);
    else
        j->timer = bt_loop_add_timer(j->env.loop, delay_ns, 0, round_fire, j);
}

int bt_journal_read(struct bt_journal *j, size_t max)
{
    if (!j->sd)
        return -EBADF;
    size_t n = 0;
    int rc = 0;
    while (!j->paused && n < max) {
        rc = j->current ? 1 : sd_journal_next(j->sd);
        j->current = false;
        if (rc <= 0)
            break;
        n++;
        if ((rc = emit(j)) < 0)
            break;
    }
    if (rc < 0) {
        static struct bt_ratelimit rl = BT_RATELIMIT_INIT(60);
        uint64_t sup;
        if (bt_ratelimit_ok(&rl, &sup))
            BT_WARN(COMP, "reading the journal failed", "job=%s err=\"%s\"", j->job, strerror(-rc));
    }
    if (rc < 0 && !j->paused) {
        arm(j, BT_NS_PER_SEC); /* a damaged file or no memory: try again without an event */
    } else if (!j->paused && n >= max) {
        arm(j, 0); /* more to read: next round */
    } else if (j->env.loop) {
        uint64_t t = (uint64_t)-1;
        if (sd_journal_get_timeout(j->sd, &t) >= 0 && t != (uint64_t)-1) {
            uint64_t now = (uint64_t)bt_mono_ns() / 1000;
            arm(j, t > now ? (int64_t)(t - now) * 1000 : 0);
        }
    }
    return rc < 0 ? rc : (int)n;
}

static void fd_ready(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct bt_journal *j = arg;
    sd_journal_process(j->sd); /* NOP, APPEND or INVALIDATE: in every case, read on */
    if (!j->paused)
        bt_journal_read(j, ROUND_MAX);
}

void bt_journal_pause(struct bt_journal *j)
{
    j->paused = true;
}

void bt_journal_resume(struct bt_journal *j)
{
    if (!j->paused)
        return;
    j->paused = false;
    arm(j, 0);
}

/* ---- opening ---- */

/* Positions sd-journal so that the next sd_journal_next gives the first entry to send. */
static int seek_start(struct bt_journal *j)
{
    const char *cur = j->env.positions ? bt_positions_get_string(j->env.positions, j->key) : NULL;
    int64_t oldest = bt_now_ns() - j->max_age_ns;
    if (cur && sd_journal_seek_cursor(j->sd, cur) >= 0 && sd_journal_next(j->sd) > 0) {
        uint64_t usec = 0;
        sd_journal_get_realtime_usec(j->sd, &usec);
        if ((int64_t)usec * 1000 >= oldest) {
            /* On the delivered entry itself: the next one is new. Elsewhere (that entry was
             * vacuumed, or does not match): this closest later entry is the first to send. */
            j->current = sd_journal_test_cursor(j->sd, cur) <= 0;
            BT_INFO(COMP, "resuming after the saved cursor", "job=%s", j->job);
            return 0;
        }
        BT_INFO(COMP, "saved cursor older than max_age, starting at max_age", "job=%s", j->job);
    }
    return sd_journal_seek_realtime_usec(j->sd, oldest > 0 ? (uint64_t)oldest / 1000 : 0);
}

static int open_journal(struct bt_journal *j, char *err, size_t errlen)
{
    int rc = j->path ? sd_journal_open_directory(&j->sd, j->path, 0) : sd_journal_open(&j->sd, 0);
    if (rc < 0) {
        snprintf(err, errlen, "journal: job %s: cannot open %s: %s", j->job,
                 j->path ? j->path : "the system journal", strerror(-rc));
        j->sd = NULL;
        return rc;
    }
    for (size_t i = 0; i < j->n_matches; i++) {
        const char *m = j->matches[i];
        rc = strcmp(m, "+") == 0 ? sd_journal_add_disjunction(j->sd)
                                 : sd_journal_add_match(j->sd, m, 0);
        if (rc < 0) {
            snprintf(err, errlen, "journal: job %s: bad match \"%s\": %s", j->job, m,
                     strerror(-rc));
            return rc;
        }
    }
    if ((rc = seek_start(j)) < 0) {
        snprintf(err, errlen, "journal: job %s: cannot seek: %s", j->job, strerror(-rc));
        return rc;
    }
    j->fd = sd_journal_get_fd(j->sd);
    if (j->fd < 0) {
        snprintf(err, errlen, "journal: job %s: no wake-up fd: %s", j->job, strerror(-j->fd));
        return j->fd;
    }
    int ev = sd_journal_get_events(j->sd);
    uint32_t events = ev > 0 ? (uint32_t)ev : EPOLLIN;
    if ((rc = bt_loop_add_fd(j->env.loop, j->fd, events, fd_ready, j)) < 0) {
        snprintf(err, errlen, "journal: job %s: event loop: %s", j->job, strerror(-rc));
        j->fd = -1;
        return rc;
    }
    BT_INFO(COMP, "journal opened", "job=%s path=%s matches=%zu", j->job,
            j->path ? j->path : "(system)", j->n_matches);
    arm(j, 0);
    return 0;
}

/* ---- config ---- */

static int fail(char *err, size_t errlen, const struct bt_node *n, const char *msg)
{
    char where[256];
    snprintf(err, errlen, "%s: journal: %s", bt_node_where(n, where, sizeof(where)), msg);
    return -EINVAL;
}

static int split_matches(struct bt_journal *j, const char *s)
{
    const char *p = s;
    while (*p) {
        while (*p && isspace((unsigned char)*p))
            p++;
        const char *b = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (p == b)
            break;
        char **m = realloc(j->matches, (j->n_matches + 1) * sizeof(*m));
        if (!m)
            return -ENOMEM;
        j->matches = m;
        if (!(m[j->n_matches] = strndup(b, (size_t)(p - b))))
            return -ENOMEM;
        j->n_matches++;
    }
    return 0;
}

static int parse_cfg(struct bt_journal *j, const struct bt_node *cfg, char *err, size_t errlen)
{
    j->max_age_ns = DEFAULT_MAX_AGE_NS;
    if (!bt_node_is_null(cfg) && cfg->type != BT_NODE_MAP)
        return fail(err, errlen, cfg, "expected a map");
    for (size_t i = 0; !bt_node_is_null(cfg) && i < cfg->n; i++) {
        const struct bt_node *k = bt_node_key(cfg, i), *v = bt_node_val(cfg, i);
        const char *key = k->str ? k->str : "";
        if (strcmp(key, "path") == 0 && (v->type == BT_NODE_SCALAR || bt_node_is_null(v))) {
            free(j->path);
            j->path = bt_node_is_null(v) || !v->len ? NULL : strdup(v->str);
            if (!bt_node_is_null(v) && v->len && !j->path)
                return -ENOMEM;
        } else if (strcmp(key, "json") == 0) {
            if (!bt_node_is_null(v) && bt_node_bool(v, &j->json))
                return fail(err, errlen, v, "json must be true or false");
        } else if (strcmp(key, "max_age") == 0) {
            long long ns;
            if (bt_node_is_null(v))
                continue;
            if (bt_node_duration(v, &ns) || ns <= 0)
                return fail(err, errlen, v, "max_age must be a positive duration");
            j->max_age_ns = ns;
        } else if (strcmp(key, "matches") == 0 &&
                   (v->type == BT_NODE_SCALAR || bt_node_is_null(v))) {
            if (!bt_node_is_null(v) && split_matches(j, v->str) < 0)
                return -ENOMEM;
        } else if (strcmp(key, "labels") == 0 && (v->type == BT_NODE_MAP || bt_node_is_null(v))) {
            for (size_t m = 0; v->type == BT_NODE_MAP && m < v->n; m++) {
                const struct bt_node *lk = bt_node_key(v, m), *lv = bt_node_val(v, m);
                if (!lk->str || !bt_label_name_valid(lk->str, lk->len) ||
                    lv->type != BT_NODE_SCALAR)
                    return fail(err, errlen, lk, "invalid label");
                if (bt_labels_set(&j->statics, lk->str, lv->str) < 0)
                    return -ENOMEM;
            }
        } else {
            char msg[300];
            snprintf(msg, sizeof(msg), "unknown key or bad value \"%.200s\"", key);
            return fail(err, errlen, k, msg);
        }
    }
    return 0;
}

struct bt_journal *bt_journal_new(const struct bt_node *cfg, const struct bt_journal_env *env,
                                  char *err, size_t errlen)
{
    struct bt_journal *j = calloc(1, sizeof(*j));
    if (!j) {
        snprintf(err, errlen, "journal: out of memory");
        return NULL;
    }
    j->env = *env;
    j->fd = -1;
    bt_labels_init(&j->statics);
    bt_labels_init(&j->fields);
    bt_labels_init(&j->labels);
    bt_buf_init(&j->line, 16u << 20); /* larger than any journal field */
    j->job = strdup(env->job ? env->job : "");
    int rc = j->job ? parse_cfg(j, cfg, err, errlen) : -ENOMEM;
    if (rc == -ENOMEM)
        snprintf(err, errlen, "journal: out of memory");
    if (rc < 0)
        goto fail;
    bt_journal_position_key(j->key, sizeof(j->key), j->job);
    if (!env->loop)
        return j;
    if (env->metrics) {
        char esc[256], lbl[400];
        bt_metrics_escape(esc, sizeof(esc), j->job);
        snprintf(lbl, sizeof(lbl), "job=\"%s\"", esc);
        j->m_lines = bt_metrics_counter(env->metrics, "bpftail_journal_target_lines_total",
                                        "Journal entries sent.", lbl);
        snprintf(lbl, sizeof(lbl), "error=\"no_message\",job=\"%s\"", esc);
        j->m_no_message =
            bt_metrics_counter(env->metrics, "bpftail_journal_target_parsing_errors_total",
                               "Journal entries not sent, by reason.", lbl);
        snprintf(lbl, sizeof(lbl), "error=\"empty_labels\",job=\"%s\"", esc);
        j->m_empty_labels =
            bt_metrics_counter(env->metrics, "bpftail_journal_target_parsing_errors_total",
                               "Journal entries not sent, by reason.", lbl);
    }
    j->owner = bt_ack_owner_new(0, on_commit, j);
    if (!j->owner) {
        snprintf(err, errlen, "journal: out of memory");
        goto fail;
    }
    if (open_journal(j, err, errlen) < 0)
        goto fail;
    return j;
fail:
    bt_journal_free(j);
    return NULL;
}

void bt_journal_free(struct bt_journal *j)
{
    if (!j)
        return;
    if (j->env.loop) {
        if (j->fd >= 0)
            bt_loop_del_fd(j->env.loop, j->fd);
        if (j->timer)
            bt_loop_del_timer(j->env.loop, j->timer);
    }
    if (j->owner)
        bt_ack_owner_close(j->owner);
    if (j->sd)
        sd_journal_close(j->sd);
    for (size_t i = 0; i < j->pend_n; i++)
        free(j->pend[(j->pend_head + i) % j->pend_cap].cursor);
    free(j->pend);
    for (size_t i = 0; i < j->n_matches; i++)
        free(j->matches[i]);
    free(j->matches);
    bt_labels_free(&j->statics);
    bt_labels_free(&j->fields);
    bt_labels_free(&j->labels);
    bt_buf_free(&j->line);
    free(j->path);
    free(j->job);
    free(j);
}

uint64_t bt_journal_entries(const struct bt_journal *j)
{
    return j->n_entries;
}

uint64_t bt_journal_committed(const struct bt_journal *j)
{
    return j->committed;
}
