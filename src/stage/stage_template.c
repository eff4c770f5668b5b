/*
 * template: sets extracted[source] to the result of a Go template (util/gotemplate.h).
 *
 * The template sees every extracted key as a string (values that promtail cannot turn into a
 * string, such as null, are absent), `.Value` = extracted[source] and `.Entry` = the line. An
 * empty result deletes the key. An execution error (for example a missing key given to a
 * string function) leaves the map unchanged, as in promtail, and is logged at debug level,
 * rate-limited. The template is compiled once at load; unsupported functions fail there.
 */
#include "stage/stage.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config/node.h"
#include "util/gotemplate.h"
#include "util/log.h"

#define NUM_SLOT 400 /* text of one numeric value */
#define NUM_SLOTS 32 /* numeric values one execution may look up */

struct st {
    char *source;
    size_t source_len;
    struct bt_gotmpl *tmpl;
    struct bt_buf out;
    struct bt_ratelimit rl;
    /* per-execution lookup state */
    const struct bt_pentry *e;
    char nums[NUM_SLOTS][NUM_SLOT];
    int nnums;
};

static const char *const keys[] = {"source", "template", NULL};

static int lookup_key(struct st *s, const char *name, size_t n, const char **val, size_t *vlen)
{
    const struct bt_xval *xv = bt_extracted_get(&s->e->x, name, n);
    if (!xv)
        return 0;
    char spare[NUM_SLOT];
    char *tmp = s->nnums < NUM_SLOTS ? s->nums[s->nnums] : spare;
    if (bt_xval_string(xv, tmp, NUM_SLOT, val, vlen) < 0)
        return 0;
    if (*val == tmp) {
        if (tmp == spare)
            return 0; /* out of scratch slots: treat as absent rather than alias a value */
        s->nnums++;
    }
    return 1;
}

static int lookup(void *ctx, const char *name, size_t n, const char **val, size_t *vlen)
{
    struct st *s = ctx;
    if (n == 5 && memcmp(name, "Entry", 5) == 0) {
        *val = s->e->line;
        *vlen = s->e->line_len;
        return 1;
    }
    if (n == 5 && memcmp(name, "Value", 5) == 0 &&
        lookup_key(s, s->source, s->source_len, val, vlen))
        return 1;
    return lookup_key(s, name, n, val, vlen);
}

static void tmpl_free(void *st)
{
    struct st *s = st;
    if (!s)
        return;
    bt_gotmpl_free(s->tmpl);
    bt_buf_free(&s->out);
    free(s->source);
    free(s);
}

static void *tmpl_init(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                       size_t errlen)
{
    int bad = 0;
    char msg[256];
    if (bt_stage_check_keys(cfg, env, keys, err, errlen) < 0)
        return NULL;
    const char *src = bt_stage_str(cfg, "source", env, &bad, err, errlen);
    const char *text = bad ? NULL : bt_stage_str(cfg, "template", env, &bad, err, errlen);
    if (bad)
        return NULL;
    if (!src || !*src)
        return bt_stage_err(err, errlen, env, cfg, "source is required");
    struct st *s = calloc(1, sizeof(*s));
    if (!s || !(s->source = strdup(src))) {
        free(s);
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    }
    s->source_len = strlen(src);
    bt_buf_init(&s->out, BT_XVAL_MAX);
    s->rl = (struct bt_ratelimit)BT_RATELIMIT_INIT(10);
    s->tmpl = bt_gotmpl_new(text ? text : "", msg, sizeof(msg));
    if (!s->tmpl) {
        bt_stage_err(err, errlen, env, bt_node_get(cfg, "template"), "%s", msg);
        tmpl_free(s);
        return NULL;
    }
    return s;
}

static enum bt_stage_result tmpl_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
{
    struct st *s = st;
    char msg[256];
    uint64_t suppressed;
    s->e = e;
    s->nnums = 0;
    bt_buf_reset(&s->out);
    int rc = bt_gotmpl_exec(s->tmpl, lookup, s, &s->out, msg, sizeof(msg));
    s->e = NULL;
    if (rc < 0) {
        if (bt_log_get_level() <= BT_LOG_DEBUG && bt_ratelimit_ok(&s->rl, &suppressed)) {
            char q[300];
            BT_DEBUG("stage", "template execution failed", "stage=template err=%s suppressed=%llu",
                     bt_logq(q, sizeof(q), msg), (unsigned long long)suppressed);
        }
        return BT_STAGE_KEEP;
    }
    if (s->out.len == 0)
        bt_extracted_del(&e->x, s->source, s->source_len);
    else
        bt_extracted_set_str(&e->x, s->source, s->source_len, s->out.ptr, s->out.len);
    return BT_STAGE_KEEP;
}

const struct bt_stage_ops bt_stage_template_ops = {
    .name = "template",
    .init = tmpl_init,
    .process = tmpl_process,
    .free = tmpl_free,
};
