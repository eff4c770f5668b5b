#include "util/timeutil.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t bt_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * BT_NS_PER_SEC + ts.tv_nsec;
}

int64_t bt_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * BT_NS_PER_SEC + ts.tv_nsec;
}

int64_t bt_mono_coarse_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * BT_NS_PER_SEC + ts.tv_nsec;
}

struct unit {
    const char *name;
    double ns;
};

static const struct unit dur_units[] = {
    {"ns", 1},   {"us", 1e3},   {"\xc2\xb5s", 1e3}, {"ms", 1e6},        {"s", 1e9},
    {"m", 60e9}, {"h", 3600e9}, {"d", 86400e9},     {"w", 7 * 86400e9}, {"y", 365 * 86400e9},
};

int bt_parse_duration(const char *s, int64_t *out_ns)
{
    if (!s || !*s)
        return -EINVAL;
    const char *p = s;
    int neg = 0;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (strcmp(p, "0") == 0) {
        *out_ns = 0;
        return 0;
    }
    double total = 0;
    int parts = 0;
    while (*p) {
        if (!isdigit((unsigned char)*p) && *p != '.')
            return -EINVAL;
        char *end;
        double v = strtod(p, &end);
        if (end == p)
            return -EINVAL;
        p = end;
        const struct unit *best = NULL;
        size_t bestlen = 0;
        for (size_t i = 0; i < sizeof(dur_units) / sizeof(dur_units[0]); i++) {
            size_t l = strlen(dur_units[i].name);
            if (strncmp(p, dur_units[i].name, l) == 0 && l > bestlen) {
                best = &dur_units[i];
                bestlen = l;
            }
        }
        if (!best)
            return -EINVAL;
        total += v * best->ns;
        p += bestlen;
        parts++;
    }
    if (!parts || total > 9.2e18)
        return -EINVAL;
    *out_ns = (int64_t)llround(neg ? -total : total);
    return 0;
}

int bt_parse_bytes(const char *s, uint64_t *out)
{
    if (!s || !*s)
        return -EINVAL;
    while (isspace((unsigned char)*s))
        s++;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0)
        return -EINVAL;
    while (isspace((unsigned char)*end))
        end++;
    static const struct {
        const char *u;
        double mul;
    } units[] = {
        {"", 1},
        {"b", 1},
        {"k", 1024},
        {"kb", 1e3},
        {"kib", 1024},
        {"m", 1048576.0},
        {"mb", 1e6},
        {"mib", 1048576},
        {"g", 1073741824.0},
        {"gb", 1e9},
        {"gib", 1073741824.0},
        {"t", 1099511627776.0},
        {"tb", 1e12},
        {"tib", 1099511627776.0},
    };
    char u[8];
    size_t n = strlen(end);
    if (n >= sizeof(u))
        return -EINVAL;
    for (size_t i = 0; i <= n; i++)
        u[i] = (char)tolower((unsigned char)end[i]);
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(u, units[i].u) == 0) {
            double r = v * units[i].mul;
            if (r > 1.8e19)
                return -EINVAL;
            *out = (uint64_t)llround(r);
            return 0;
        }
    }
    return -EINVAL;
}

const char *bt_format_duration(char *out, size_t outlen, int64_t ns)
{
    if (ns == 0) {
        snprintf(out, outlen, "0s");
        return out;
    }
    const char *sign = ns < 0 ? "-" : "";
    uint64_t u = ns < 0 ? (uint64_t)(-(ns + 1)) + 1 : (uint64_t)ns;
    if (u < 1000)
        snprintf(out, outlen, "%s%lluns", sign, (unsigned long long)u);
    else if (u < 1000000)
        snprintf(out, outlen, "%s%gus", sign, (double)u / 1e3);
    else if (u < 1000000000ULL)
        snprintf(out, outlen, "%s%gms", sign, (double)u / 1e6);
    else {
        uint64_t h = u / 3600000000000ULL;
        uint64_t m = (u / 60000000000ULL) % 60;
        double sec = (double)(u % 60000000000ULL) / 1e9;
        if (h)
            snprintf(out, outlen, "%s%lluh%llum%gs", sign, (unsigned long long)h,
                     (unsigned long long)m, sec);
        else if (m)
            snprintf(out, outlen, "%s%llum%gs", sign, (unsigned long long)m, sec);
        else
            snprintf(out, outlen, "%s%gs", sign, sec);
    }
    return out;
}

int bt_parse_bool(const char *s, bool *out)
{
    static const char *const t[] = {"1", "t", "T", "true", "TRUE", "True"};
    static const char *const f[] = {"0", "f", "F", "false", "FALSE", "False"};
    for (size_t i = 0; i < 6; i++) {
        if (strcmp(s, t[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcmp(s, f[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}
