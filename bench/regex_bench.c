/* regex_bench: how long util/regex takes on 64 KiB lines against patterns that make a
 * backtracking engine run for exponential time. Usage: regex_bench [repeats]
 * Prints one line per pattern: the best wall time of `repeats` searches, with and without
 * submatches, and the throughput of the submatch search. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/regex.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int repeats = argc > 1 ? atoi(argv[1]) : 5;
    static const char *pats[] = {"(.*a){12}$", "(a|aa)+$", "(a+)+$", "(?:a*)*b\\z", "(\\w+\\s?)+$"};
    size_t n = 64 * 1024;
    char *line = malloc(n);
    if (!line)
        return 1;
    memset(line, 'a', n - 1);
    line[n - 1] = '!'; /* fails at the very end: the worst case for backtracking */
    printf("%-14s %12s %14s %10s\n", "pattern", "match ms", "submatch ms", "MB/s");
    for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
        char err[256];
        struct bt_regex *re = bt_regex_new(pats[i], 0, err, sizeof(err));
        if (!re) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        double best = 1e9, best_sub = 1e9;
        for (int r = 0; r < repeats; r++) {
            double t0 = now();
            int m = bt_regex_match(re, line, n, 0);
            double t1 = now();
            size_t a, b;
            bt_regex_group(re, 0, &a, &b); /* no match: no second search */
            /* a matching line, so that the groups are searched for too */
            line[n - 1] = 'a';
            double t2 = now();
            m += bt_regex_match(re, line, n, 0) > 0 && bt_regex_group(re, 0, &a, &b);
            double t3 = now();
            line[n - 1] = '!';
            best = t1 - t0 < best ? t1 - t0 : best;
            best_sub = t3 - t2 < best_sub ? t3 - t2 : best_sub;
            (void)m;
        }
        printf("%-14s %12.3f %14.3f %10.1f\n", pats[i], best * 1e3, best_sub * 1e3,
               (double)n / best_sub / 1e6);
        bt_regex_free(re);
    }
    free(line);
    return 0;
}
