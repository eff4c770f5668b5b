/* The cri stage: CRI container log lines (promtail's `cri: {}`).
 *
 *   2019-01-01T01:00:00.000000001Z stderr P some log message
 *
 * time, then stdout|stderr, then flags, then the content, single spaces between. The content
 * becomes the line, stream a label (also in extracted, with flags), time the timestamp. Records
 * whose flags are exactly P are joined with the following records of the same file and stream
 * up to and including the next non-P one, with no separator, and the joined entry takes the
 * last record's timestamp, as promtail does. Unlike promtail, a P never followed by its F is
 * emitted after max_wait_time, and the join is capped (partial.h). A line of another shape is
 * counted in bpftail_cri_malformed_records_total and shipped unchanged (or dropped with
 * drop_malformed, reason cri_malformed).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"
#include "stage/partial.h"
#include "stage/stage.h"
#include "util/rfc3339.h"

struct cri_stage {
    struct bt_partial_opts o;
    struct bt_partial *p;
    struct bt_stream_cache sc;
};

struct cri_rec {
    const char *time, *stream, *flags, *content;
    size_t time_len, stream_len, flags_len, content_len;
};

/* Splits s as promtail's regex does: ^(?s)(\S+?) (stdout|stderr) (\S+?) (.*)$ */
static bool cri_split(const char *s, size_t n, struct cri_rec *r)
{
    const char *end = s + n, *p = s;
    while (p < end && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\f' &&
           *p != '\v')
        p++;
    if (p == s || p == end || *p != ' ')
        return false;
    r->time = s;
    r->time_len = (size_t)(p - s);
    p++;
    if ((size_t)(end - p) < 7 || (memcmp(p, "stdout ", 7) && memcmp(p, "stderr ", 7)))
        return false;
    r->stream = p;
    r->stream_len = 6;
    p += 7;
    const char *f = p;
    while (p < end && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\f' &&
           *p != '\v')
        p++;
    if (p == f || p == end || *p != ' ')
        return false;
    r->flags = f;
    r->flags_len = (size_t)(p - f);
    r->content = p + 1;
    r->content_len = (size_t)(end - p - 1);
    return true;
}

static void *cri_init(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                      size_t errlen)
{
    struct cri_stage *st = calloc(1, sizeof(*st));
    if (!st)
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    if (bt_partial_parse_opts(cfg, env, &st->o, err, errlen)) {
        free(st);
        return NULL;
    }
    st->o.cfg.latest_ts = true;
    bt_partial_metrics(&st->o, env, "cri");
    bt_stream_cache_init(&st->sc);
    st->p = bt_partial_new(&st->o.cfg);
    if (!st->p) {
        free(st);
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    }
    return st;
}

static enum bt_stage_result cri_process(void *arg, struct bt_pentry *e, struct bt_stage_out *out)
{
    struct cri_stage *st = arg;
    struct cri_rec r;
    if (!cri_split(e->line, e->line_len, &r)) {
        bt_counter_inc(st->o.malformed);
        if (!st->o.drop_malformed)
            return BT_STAGE_KEEP;
        e->drop_reason = "cri_malformed";
        return BT_STAGE_DROP;
    }
    int64_t ts;
    if (bt_rfc3339_parse(r.time, r.time_len, &ts) == 0)
        e->ts_ns = ts;
    bool last = !(r.flags_len == 1 && r.flags[0] == 'P');
    if (bt_stream_cache_apply(&st->sc, e, r.stream, r.stream_len) < 0 ||
        bt_extracted_set_str(&e->x, "flags", 5, r.flags, r.flags_len) < 0 ||
        bt_pentry_set_line(e, r.content, r.content_len) < 0) {
        e->drop_reason = "pipeline_error";
        return BT_STAGE_DROP;
    }
    return bt_partial_add(st->p, e, last, out);
}

static int64_t cri_deadline(const void *arg)
{
    const struct cri_stage *st = arg;
    return bt_partial_deadline(st->p);
}

static void cri_tick(void *arg, int64_t now_mono, struct bt_stage_out *out)
{
    struct cri_stage *st = arg;
    bt_partial_tick(st->p, now_mono, out);
}

static void cri_flush(void *arg, struct bt_stage_out *out)
{
    struct cri_stage *st = arg;
    bt_partial_flush(st->p, out);
}

static void cri_free(void *arg)
{
    struct cri_stage *st = arg;
    if (!st)
        return;
    bt_partial_free(st->p);
    bt_stream_cache_free(&st->sc);
    free(st);
}

const struct bt_stage_ops bt_stage_cri_ops = {
    .name = "cri",
    .init = cri_init,
    .process = cri_process,
    .deadline = cri_deadline,
    .tick = cri_tick,
    .flush = cri_flush,
    .free = cri_free,
};
