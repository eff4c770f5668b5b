/* sampling: keeps each entry with probability rate (0..1) and drops the others, counted with
 * drop_counter_reason (default "sampling_stage"). The generator is a xorshift seeded once. */
#include "stage/stage.h"
#include "config/node.h"
#include "util/timeutil.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct st {
    uint64_t threshold; /* keep when the next 53-bit draw is below it */
    uint64_t rng;
    char *reason;
};

static const char *const keys[] = {"rate", "drop_counter_reason", NULL};

static void sampling_free(void *st)
{
    struct st *s = st;
    free(s->reason);
    free(s);
}

static void *sampling_init(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                           size_t errlen)
{
    int bad;
    double rate;
    if (bt_stage_check_keys(cfg, env, keys, err, errlen) < 0)
        return NULL;
    const struct bt_node *r = bt_node_get(cfg, "rate");
    if (!r || bt_node_double(r, &rate) < 0 || !(rate >= 0 && rate <= 1))
        return bt_stage_err(err, errlen, env, r ? r : cfg, "rate must be a number from 0 to 1");
    const char *reason = bt_stage_str(cfg, "drop_counter_reason", env, &bad, err, errlen);
    if (bad)
        return NULL;
    struct st *s = calloc(1, sizeof(*s));
    if (!s || !(s->reason = strdup(reason && *reason ? reason : "sampling_stage"))) {
        free(s);
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    }
    s->threshold = (uint64_t)(rate * (double)(1ULL << 53));
    s->rng = (uint64_t)bt_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)s;
    if (!s->rng)
        s->rng = 0x9E3779B97F4A7C15ULL;
    return s;
}

static enum bt_stage_result sampling_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
{
    struct st *s = st;
    uint64_t x = s->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s->rng = x;
    if ((x >> 11) < s->threshold)
        return BT_STAGE_KEEP;
    e->drop_reason = s->reason;
    return BT_STAGE_DROP;
}

const struct bt_stage_ops bt_stage_sampling_ops = {
    .name = "sampling",
    .init = sampling_init,
    .process = sampling_process,
    .free = sampling_free,
};
