/*
 * Fuzz target for the Docker FIFO decoder (libFuzzer; scripts/fuzz.sh docker_fifo builds and
 * runs it, docs/fuzzing.md).
 *
 * Besides the sanitizers, it checks that the decoding does not depend on how the bytes are
 * cut: the input is fed whole to one decoder and in pieces (sizes taken from its first byte) to
 * another, and both must report the same lines and the same dropped bytes per reason. Small
 * max_frame and max_line make the resync and truncation paths reachable.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "source/docker_fifo.h"

struct tally {
    uint64_t hash, lines, drops[4];
    size_t max_line;
};

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ c[i]) * 0x100000001b3ull;
    return h;
}

static void on_line(void *ctx, const struct bt_dfifo_line *l)
{
    struct tally *t = ctx;
    if (l->len > t->max_line || (l->len && !l->line))
        abort();
    uint64_t head[4] = {(uint64_t)l->stream, (uint64_t)l->ts_ns, l->len,
                        (uint64_t)l->unterminated << 1 | l->truncated | (uint64_t)l->chunks << 2};
    t->hash = mix(t->hash, head, sizeof(head));
    t->hash = mix(t->hash, l->line, l->len);
    t->lines++;
}

static void on_drop(void *ctx, const char *reason, uint64_t bytes)
{
    static const char *const reasons[4] = {"frame_too_large", "bad_frame", "truncated_frame",
                                           "line_too_long"};
    struct tally *t = ctx;
    for (int i = 0; i < 4; i++) {
        if (strcmp(reason, reasons[i]) == 0) {
            t->drops[i] += bytes;
            return;
        }
    }
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)(data[0] % 17) + 1;
    data++, size--;
    struct bt_dfifo_config c = {.max_frame = 300, .max_line = 100};
    struct tally whole = {.hash = 14695981039346656037ull, .max_line = c.max_line};
    struct tally split = whole;
    struct bt_dfifo *a = bt_dfifo_new(&c, on_line, on_drop, &whole);
    struct bt_dfifo *b = bt_dfifo_new(&c, on_line, on_drop, &split);
    if (!a || !b)
        abort();
    bt_dfifo_feed(a, data, size);
    for (size_t off = 0; off < size; off += step)
        bt_dfifo_feed(b, data + off, size - off < step ? size - off : step);
    bt_dfifo_eof(a);
    bt_dfifo_eof(b);
    if (bt_dfifo_buffered(a) || bt_dfifo_buffered(b))
        abort();
    if (whole.hash != split.hash || whole.lines != split.lines ||
        memcmp(whole.drops, split.drops, sizeof(whole.drops)) != 0)
        abort();
    bt_dfifo_free(a);
    bt_dfifo_free(b);
    return 0;
}
