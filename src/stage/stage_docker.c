/* The docker stage: Docker json-file records to lines (promtail's `docker: {}`).
 *
 * {"log":..., "stream":..., "time":...} becomes the log value as the line (every JSON escape
 * decoded; Docker's trailing \n is kept, as promtail keeps it), a `stream` label (also in
 * extracted) and the record's time as the timestamp. Beyond promtail, records whose log lacks
 * the trailing \n (Docker cuts lines at 16 KiB, and output that ends without a newline) are
 * joined with the following records of the same file, stream and time (Docker stamps every
 * chunk of a split line with the same time, so output that ended without a newline is not glued
 * to the next line the container prints), byte for byte, through partial.h. A record that is not
 * Docker JSON is counted in bpftail_docker_malformed_records_total and shipped unchanged, or
 * dropped with `drop_malformed: true` (reason docker_malformed). A bad or missing time keeps the
 * read time.
 */
#include <errno.h>
#include <stdlib.h>

#include "core/metrics.h"
#include "stage/partial.h"
#include "stage/stage.h"
#include "util/dockerjson.h"

static void *docker_init(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                         size_t errlen)
{
    return bt_join_stage_new(cfg, env, "docker", false, true, err, errlen);
}

static enum bt_stage_result docker_process(void *arg, struct bt_pentry *e, struct bt_stage_out *out)
{
    struct bt_join_stage *st = arg;
    struct bt_buf *b = bt_pentry_line_begin(e);
    struct bt_dockerjson rec;
    if (bt_dockerjson_parse(e->line, e->line_len, b, &rec) < 0) {
        bt_counter_inc(st->o.malformed);
        if (!st->o.drop_malformed)
            return BT_STAGE_KEEP;
        e->drop_reason = "docker_malformed";
        return BT_STAGE_DROP;
    }
    bt_pentry_line_commit(e);
    if (rec.stream_len && bt_stream_cache_apply(&st->sc, e, rec.stream, rec.stream_len) < 0) {
        e->drop_reason = "pipeline_error";
        return BT_STAGE_DROP;
    }
    if (rec.has_time)
        e->ts_ns = rec.time_ns;
    bool last = e->line_len && e->line[e->line_len - 1] == '\n';
    return bt_partial_add(st->p, e, last, out);
}

const struct bt_stage_ops bt_stage_docker_ops = {
    .name = "docker",
    .init = docker_init,
    .process = docker_process,
    .deadline = bt_join_stage_deadline,
    .tick = bt_join_stage_tick,
    .flush = bt_join_stage_flush,
    .free = bt_join_stage_free,
};
