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
    return bt_join_stage_new(cfg, env, "cri", true, false, err, errlen);
}

static enum bt_stage_result cri_process(void *arg, struct bt_pentry *e, struct bt_stage_out *out)
{
    struct bt_join_stage *st = arg;
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

const struct bt_stage_ops bt_stage_cri_ops = {
    .name = "cri",
    .init = cri_init,
    .process = cri_process,
    .deadline = bt_join_stage_deadline,
    .tick = bt_join_stage_tick,
    .flush = bt_join_stage_flush,
    .free = bt_join_stage_free,
};
