/* decolorize: removes ANSI escape sequences (colours, cursor moves) from the line, using the
 * same pattern as Loki's line_format decolorize. Lines without ESC or CSI cost one scan. */
#include "stage/stage.h"
#include "config/node.h"
#include "util/regex.h"

#include <stdlib.h>
#include <string.h>

/* ESC or the 8-bit CSI (U+009B), then a control or SGR/CSI sequence. */
static const char ansi[] = "[\\x{1b}\\x{9b}][\\[\\]()#;?]*(?:(?:(?:[a-zA-Z\\d]*(?:;[a-zA-Z\\d]*)*)?"
                           "\\x{07})|(?:(?:\\d{1,4}(?:;\\d{0,4})*)?[\\dA-PRZcf-ntqry=><~]))";

struct st {
    struct bt_regex *re;
};

static void decolorize_free(void *st)
{
    struct st *s = st;
    bt_regex_free(s->re);
    free(s);
}

static void *decolorize_init(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                             size_t errlen)
{
    static const char *const none[] = {NULL};
    char rerr[256];
    if (bt_stage_check_keys(cfg, env, none, err, errlen) < 0)
        return NULL;
    struct st *s = calloc(1, sizeof(*s));
    if (!s)
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    s->re = bt_regex_new(ansi, 0, rerr, sizeof(rerr));
    if (!s->re) {
        free(s);
        return bt_stage_err(err, errlen, env, NULL, "internal pattern: %s", rerr);
    }
    return s;
}

static bool has_escape(const char *s, size_t n)
{
    if (memchr(s, 0x1b, n))
        return true;
    for (const char *p = s; (p = memchr(p, 0xc2, n - (size_t)(p - s))) && p + 1 < s + n; p++)
        if ((unsigned char)p[1] == 0x9b)
            return true;
    return false;
}

static enum bt_stage_result decolorize_process(void *st, struct bt_pentry *e,
                                               struct bt_stage_out *o)
{
    struct st *s = st;
    if (!has_escape(e->line, e->line_len))
        return BT_STAGE_KEEP;
    struct bt_buf *b = bt_pentry_line_begin(e);
    size_t prev = 0, start = 0;
    while (start < e->line_len && bt_regex_match(s->re, e->line, e->line_len, start) > 0) {
        size_t a, z;
        bt_regex_group(s->re, 0, &a, &z);
        if (bt_buf_add(b, e->line + prev, a - prev) < 0)
            return BT_STAGE_KEEP;
        prev = z;
        start = z > a ? z : z + 1;
    }
    if (bt_buf_add(b, e->line + prev, e->line_len - prev) < 0)
        return BT_STAGE_KEEP;
    bt_pentry_line_commit(e);
    return BT_STAGE_KEEP;
}

const struct bt_stage_ops bt_stage_decolorize_ops = {
    .name = "decolorize",
    .init = decolorize_init,
    .process = decolorize_process,
    .free = decolorize_free,
};
