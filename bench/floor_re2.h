/* floor_re2: the pipeline scenario's regex for bench/floor.c, the C side of a small RE2 shim.
 * The pattern is the scenario's, with only the groups the pipeline uses (time, app, msg)
 * capturing: the floor does no work whose result is not used. */
#ifndef BENCH_FLOOR_RE2_H
#define BENCH_FLOOR_RE2_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct floor_span {
    const char *p;
    size_t len;
};

struct floor_re2;

/* Compiles the pattern; NULL if RE2 refused it. */
struct floor_re2 *floor_re2_new(void);
/* Matches the whole line; on a match the spans point into line. */
bool floor_re2_match(struct floor_re2 *re, const char *line, size_t len, struct floor_span *time,
                     struct floor_span *app, struct floor_span *msg);

#ifdef __cplusplus
}
#endif
#endif
