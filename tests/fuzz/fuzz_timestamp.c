/*
 * Timestamps from line content: Go layouts (util/gotime.c) and RFC 3339 (util/rfc3339.c).
 * The input's first line is compiled as a layout (or names one of promtail's formats) and the
 * rest is parsed with it, in UTC and in a zone with DST; the same value goes through fixed
 * layouts and the RFC 3339 parser, whose result must format and parse back to itself. Then the
 * timestamp stage over each line.
 */
#include "fuzz_common.h"
#include "util/gotime.h"
#include "util/rfc3339.h"

static const char *const fixed[] = {
    "RFC3339Nano", "2006-01-02 15:04:05.000 MST", "Jan _2 15:04:05",
    "UnixMs",      "02/Jan/2006:15:04:05 -0700",  "Monday 3PM .999999"};
#define N_FIXED (sizeof(fixed) / sizeof(fixed[0]))
static struct bt_gotime *fixed_f[N_FIXED];
static struct bt_tz *zone;
static struct fz_pipe pipe_;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];
    fz_quiet();
    zone = bt_tz_load("Europe/Berlin", err, sizeof(err));
    for (size_t i = 0; i < N_FIXED; i++)
        if (!(fixed_f[i] = bt_gotime_new(fixed[i], zone, err, sizeof(err))))
            abort();
    fz_pipe_new(&pipe_, "- regex: {expression: '^(?P<ts>\\S+ \\S+)'}\n"
                        "- timestamp:\n"
                        "    source: ts\n"
                        "    format: '2006-01-02 15:04:05.999999999Z07:00'\n"
                        "    fallback_formats: [RFC1123Z, Unix, 'Jan _2 2006 15:04:05']\n"
                        "    location: Europe/Berlin\n");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *h, *r;
    size_t hn, rn;
    fz_split(data, size, &h, &hn, &r, &rn);
    char *layout = fz_strdup(h, hn);
    char *val = malloc(rn ? rn : 1);
    if (!val)
        abort();
    memcpy(val, r, rn);
    const int64_t now = 1764400000000000000LL;
    char err[256];
    int64_t ns;
    for (int z = 0; z < 2; z++) {
        struct bt_gotime *f = bt_gotime_new(layout, z ? zone : NULL, err, sizeof(err));
        if (f) {
            (void)bt_gotime_parse(f, val, rn, now, &ns);
            bt_gotime_free(f);
        }
    }
    for (size_t i = 0; i < N_FIXED; i++)
        (void)bt_gotime_parse(fixed_f[i], val, rn, now, &ns);
    if (bt_rfc3339_parse(val, rn, &ns) == 0) {
        char out[40];
        size_t n = bt_rfc3339_format(ns, out, sizeof(out));
        int64_t back;
        if (n >= sizeof(out) || bt_rfc3339_parse(out, n, &back) != 0 || back != ns)
            abort();
    }
    free(val);
    free(layout);
    fz_pipe_lines(&pipe_, data, size);
    return 0;
}
