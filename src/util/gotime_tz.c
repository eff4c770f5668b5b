/*
 * gotime_tz: time zones for gotime (TZif files, POSIX TZ footer rules) and the proleptic
 * Gregorian calendar helpers both halves use. See util/gotime.h.
 */
#include "util/gotime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/gotime_int.h"

#define TZIF_MAX_BYTES (512 * 1024)
#define TZ_ABBR_MAX 16
#define ALPHA_SEC INT64_MIN
#define OMEGA_SEC INT64_MAX

/* ---- calendar ---------------------------------------------------------------------------- */

bool gtime_is_leap(int64_t y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

int gtime_days_in(int month, int64_t year)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month == 2 && gtime_is_leap(year))
        return 29;
    return dim[month - 1];
}

/* Days since 1970-01-01 of the proleptic Gregorian date y-m-d; d may exceed the month. */
int64_t gtime_days_from_civil(int64_t y, int m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468 + (d - 1);
}

int64_t gtime_year_of_days(int64_t z)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    return yoe + era * 400 + (m <= 2);
}

int64_t gtime_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* ---- time zones -------------------------------------------------------------------------- */

struct tz_zone {
    int32_t off;
    bool dst;
    char abbr[TZ_ABBR_MAX];
};

enum rule_kind { RULE_JULIAN, RULE_DOY, RULE_MWD };

struct tz_rule {
    enum rule_kind kind;
    int day, week, mon;
    int32_t time;
};

struct tz_posix {
    bool valid, has_dst;
    char std[TZ_ABBR_MAX], dst[TZ_ABBR_MAX];
    int32_t stdoff, dstoff;
    struct tz_rule start, end;
};

struct bt_tz {
    char *name;
    size_t ntx, nzone;
    int64_t *tx_when;
    uint8_t *tx_idx;
    struct tz_zone *zones;
    struct tz_posix ext;
};

void gtime_set_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, a, b);
}

static bool posix_name(const char **sp, char *out)
{
    const char *s = *sp;
    size_t n = 0;
    if (*s == '<') {
        const char *e = strchr(s + 1, '>');
        if (!e)
            return false;
        n = (size_t)(e - s - 1);
        if (n >= TZ_ABBR_MAX)
            return false;
        memcpy(out, s + 1, n);
        out[n] = '\0';
        *sp = e + 1;
        return true;
    }
    while (s[n] && !(s[n] >= '0' && s[n] <= '9') && s[n] != ',' && s[n] != '-' && s[n] != '+')
        n++;
    if (n < 3 || n >= TZ_ABBR_MAX)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    *sp = s + n;
    return true;
}

static bool posix_num(const char **sp, int lo, int hi, int *out)
{
    const char *s = *sp;
    int v = 0, nd = 0;
    while (*s >= '0' && *s <= '9' && nd < 4) {
        v = v * 10 + (*s++ - '0');
        nd++;
    }
    if (!nd || v < lo || v > hi)
        return false;
    *out = v;
    *sp = s;
    return true;
}

/* [+-]hh[:mm[:ss]] in seconds. */
static bool posix_offset(const char **sp, int32_t *out)
{
    const char *s = *sp;
    int neg = 0, h, m = 0, sec = 0;
    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    if (!posix_num(&s, 0, 24 * 7, &h))
        return false;
    if (*s == ':') {
        s++;
        if (!posix_num(&s, 0, 59, &m))
            return false;
        if (*s == ':') {
            s++;
            if (!posix_num(&s, 0, 59, &sec))
                return false;
        }
    }
    int32_t v = (int32_t)(h * 3600 + m * 60 + sec);
    *out = neg ? -v : v;
    *sp = s;
    return true;
}

static bool posix_rule(const char **sp, struct tz_rule *r)
{
    const char *s = *sp;
    if (*s == 'J') {
        s++;
        r->kind = RULE_JULIAN;
        if (!posix_num(&s, 1, 365, &r->day))
            return false;
    } else if (*s == 'M') {
        s++;
        r->kind = RULE_MWD;
        if (!posix_num(&s, 1, 12, &r->mon) || *s++ != '.' || !posix_num(&s, 1, 5, &r->week) ||
            *s++ != '.' || !posix_num(&s, 0, 6, &r->day))
            return false;
    } else {
        r->kind = RULE_DOY;
        if (!posix_num(&s, 0, 365, &r->day))
            return false;
    }
    r->time = 2 * 3600;
    if (*s == '/') {
        s++;
        if (!posix_offset(&s, &r->time))
            return false;
    }
    *sp = s;
    return true;
}

static bool posix_parse(const char *s, struct tz_posix *p)
{
    memset(p, 0, sizeof(*p));
    if (!posix_name(&s, p->std) || !posix_offset(&s, &p->stdoff))
        return false;
    p->stdoff = -p->stdoff; /* POSIX offsets are west-positive */
    if (!*s || *s == ',') {
        p->valid = true;
        return true;
    }
    if (!posix_name(&s, p->dst))
        return false;
    if (!*s || *s == ',') {
        p->dstoff = p->stdoff + 3600;
    } else {
        if (!posix_offset(&s, &p->dstoff))
            return false;
        p->dstoff = -p->dstoff;
    }
    if (!*s)
        s = ",M3.2.0,M11.1.0"; /* tzcode's default rules */
    if (*s != ',' && *s != ';')
        return false;
    s++;
    if (!posix_rule(&s, &p->start) || *s++ != ',' || !posix_rule(&s, &p->end) || *s)
        return false;
    p->has_dst = true;
    p->valid = true;
    return true;
}

/* Seconds from the start of year (UTC) at which rule r fires, given the offset before it. */
static int64_t rule_time(int64_t year, const struct tz_rule *r, int32_t off)
{
    int64_t d;
    switch (r->kind) {
    case RULE_JULIAN:
        d = r->day - 1;
        if (gtime_is_leap(year) && r->day >= 60)
            d++;
        break;
    case RULE_DOY: d = r->day; break;
    default: {
        int64_t first = gtime_days_from_civil(year, r->mon, 1);
        int dow = (int)(((first + 4) % 7 + 7) % 7);
        int dom = r->day - dow;
        if (dom < 0)
            dom += 7;
        for (int i = 1; i < r->week; i++) {
            if (dom + 7 >= gtime_days_in(r->mon, year))
                break;
            dom += 7;
        }
        d = first - gtime_days_from_civil(year, 1, 1) + dom;
        break;
    }
    }
    return d * GTIME_SEC_PER_DAY + r->time - off;
}

struct tz_hit {
    const char *abbr;
    int32_t off;
    int64_t start, end;
};

static bool posix_lookup(const struct tz_posix *p, int64_t last_tx, int64_t sec, struct tz_hit *h)
{
    if (!p->valid)
        return false;
    if (!p->has_dst) {
        *h = (struct tz_hit){p->std, p->stdoff, last_tx, OMEGA_SEC};
        return true;
    }
    int64_t year = gtime_year_of_days(gtime_floor_div(sec, GTIME_SEC_PER_DAY));
    int64_t ystart = gtime_days_from_civil(year, 1, 1) * GTIME_SEC_PER_DAY;
    int64_t ysec = sec - ystart;
    int64_t s0 = rule_time(year, &p->start, p->stdoff);
    int64_t s1 = rule_time(year, &p->end, p->dstoff);
    const char *stdn = p->std, *dstn = p->dst;
    int32_t stdo = p->stdoff, dsto = p->dstoff;
    if (s1 < s0) { /* southern hemisphere: DST spans the new year */
        int64_t t = s0;
        s0 = s1;
        s1 = t;
        stdn = p->dst;
        dstn = p->std;
        stdo = p->dstoff;
        dsto = p->stdoff;
    }
    if (ysec < s0)
        *h = (struct tz_hit){stdn, stdo, ystart, ystart + s0};
    else if (ysec >= s1)
        *h = (struct tz_hit){stdn, stdo, ystart + s1, ystart + 365 * GTIME_SEC_PER_DAY};
    else
        *h = (struct tz_hit){dstn, dsto, ystart + s0, ystart + s1};
    return true;
}

static size_t first_zone(const struct bt_tz *tz)
{
    bool used = false;
    for (size_t i = 0; i < tz->ntx && !used; i++)
        used = tz->tx_idx[i] == 0;
    if (!used)
        return 0;
    for (size_t i = 0; i < tz->nzone; i++)
        if (!tz->zones[i].dst)
            return i;
    return 0;
}

static void tz_lookup(const struct bt_tz *tz, int64_t sec, struct tz_hit *h)
{
    if (!tz || (!tz->nzone && !tz->ext.valid)) {
        *h = (struct tz_hit){"UTC", 0, ALPHA_SEC, OMEGA_SEC};
        return;
    }
    if (!tz->nzone) {
        if (!posix_lookup(&tz->ext, ALPHA_SEC, sec, h))
            *h = (struct tz_hit){"UTC", 0, ALPHA_SEC, OMEGA_SEC};
        return;
    }
    if (!tz->ntx || sec < tz->tx_when[0]) {
        const struct tz_zone *z = &tz->zones[first_zone(tz)];
        *h = (struct tz_hit){z->abbr, z->off, ALPHA_SEC, tz->ntx ? tz->tx_when[0] : OMEGA_SEC};
        return;
    }
    size_t lo = 0, hi = tz->ntx;
    int64_t end = OMEGA_SEC;
    while (hi - lo > 1) {
        size_t m = lo + (hi - lo) / 2;
        if (sec < tz->tx_when[m]) {
            end = tz->tx_when[m];
            hi = m;
        } else {
            lo = m;
        }
    }
    const struct tz_zone *z = &tz->zones[tz->tx_idx[lo]];
    *h = (struct tz_hit){z->abbr, z->off, tz->tx_when[lo], end};
    if (lo == tz->ntx - 1 && tz->ext.valid) {
        struct tz_hit e;
        if (posix_lookup(&tz->ext, tz->tx_when[lo], sec, &e))
            *h = e;
    }
}

int bt_tz_offset(const struct bt_tz *tz, int64_t unix_sec, const char **abbr)
{
    struct tz_hit h;
    tz_lookup(tz, unix_sec, &h);
    if (abbr)
        *abbr = h.abbr;
    return h.off;
}

const char *bt_tz_name(const struct bt_tz *tz)
{
    return tz ? tz->name : "UTC";
}

void bt_tz_free(struct bt_tz *tz)
{
    if (!tz)
        return;
    free(tz->name);
    free(tz->tx_when);
    free(tz->tx_idx);
    free(tz->zones);
    free(tz);
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct tzif_hdr {
    uint32_t isut, isstd, leap, time, type, chars;
};

static bool tzif_header(const unsigned char *p, size_t len, struct tzif_hdr *h, int *version)
{
    if (len < 44 || memcmp(p, "TZif", 4) != 0)
        return false;
    *version = p[4] ? p[4] - '0' : 1;
    h->isut = be32(p + 20);
    h->isstd = be32(p + 24);
    h->leap = be32(p + 28);
    h->time = be32(p + 32);
    h->type = be32(p + 36);
    h->chars = be32(p + 40);
    return h->time <= 100000 && h->type >= 1 && h->type <= 256 && h->chars <= 4096 &&
           h->leap <= 10000 && h->isut <= 256 && h->isstd <= 256;
}

static size_t tzif_body_len(const struct tzif_hdr *h, size_t tsize)
{
    return h->time * tsize + h->time + h->type * 6 + h->chars + h->leap * (tsize + 4) + h->isstd +
           h->isut;
}

static int tzif_fill(struct bt_tz *tz, const unsigned char *p, const struct tzif_hdr *h,
                     size_t tsize)
{
    tz->ntx = h->time;
    tz->nzone = h->type;
    tz->tx_when = calloc(h->time ? h->time : 1, sizeof(*tz->tx_when));
    tz->tx_idx = calloc(h->time ? h->time : 1, 1);
    tz->zones = calloc(h->type, sizeof(*tz->zones));
    if (!tz->tx_when || !tz->tx_idx || !tz->zones)
        return -ENOMEM;
    for (size_t i = 0; i < h->time; i++)
        tz->tx_when[i] = tsize == 8 ? be64(p + i * 8) : (int32_t)be32(p + i * 4);
    p += h->time * tsize;
    for (size_t i = 0; i < h->time; i++) {
        if (p[i] >= h->type)
            return -EINVAL;
        tz->tx_idx[i] = p[i];
    }
    p += h->time;
    const unsigned char *chars = p + h->type * 6;
    for (size_t i = 0; i < h->type; i++, p += 6) {
        tz->zones[i].off = (int32_t)be32(p);
        tz->zones[i].dst = p[4] != 0;
        uint8_t ai = p[5];
        if (ai >= h->chars && h->chars)
            return -EINVAL;
        size_t n = 0;
        while (ai + n < h->chars && chars[ai + n] && n < TZ_ABBR_MAX - 1)
            n++;
        memcpy(tz->zones[i].abbr, chars + ai, n);
        tz->zones[i].abbr[n] = '\0';
    }
    for (size_t i = 1; i < h->time; i++)
        if (tz->tx_when[i] < tz->tx_when[i - 1])
            return -EINVAL;
    if (!h->time) { /* as Go: one transition at the dawn of time, so the footer applies */
        tz->ntx = 1;
        tz->tx_when[0] = ALPHA_SEC;
        tz->tx_idx[0] = 0;
    }
    return 0;
}

struct bt_tz *bt_tz_from_tzif(const char *name, const unsigned char *data, size_t len, char *err,
                              size_t errlen)
{
    struct tzif_hdr h;
    int version;
    struct bt_tz *tz = calloc(1, sizeof(*tz));
    if (!tz || !(tz->name = strdup(name ? name : ""))) {
        gtime_set_err(err, errlen, "%s%sout of memory", "", "");
        goto fail;
    }
    if (!tzif_header(data, len, &h, &version))
        goto bad;
    size_t off = 44, tsize = 4;
    size_t body = tzif_body_len(&h, 4);
    if (len - off < body)
        goto bad;
    if (version >= 2) {
        off += body;
        if (!tzif_header(data + off, len - off, &h, &version))
            goto bad;
        off += 44;
        tsize = 8;
        body = tzif_body_len(&h, 8);
        if (len - off < body)
            goto bad;
    }
    if (tzif_fill(tz, data + off, &h, tsize) < 0)
        goto bad;
    off += body;
    if (tsize == 8 && off < len && data[off] == '\n') {
        const unsigned char *nl = memchr(data + off + 1, '\n', len - off - 1);
        char footer[128];
        size_t fl = nl ? (size_t)(nl - data - off - 1) : 0;
        if (nl && fl && fl < sizeof(footer)) {
            memcpy(footer, data + off + 1, fl);
            footer[fl] = '\0';
            posix_parse(footer, &tz->ext); /* an unusable footer just means no extension */
        }
    }
    return tz;
bad:
    gtime_set_err(err, errlen, "invalid time zone data for %s%s", name ? name : "", "");
fail:
    bt_tz_free(tz);
    errno = EINVAL;
    return NULL;
}

static struct bt_tz *tz_utc(const char *name)
{
    struct bt_tz *tz = calloc(1, sizeof(*tz));
    if (tz && !(tz->name = strdup(name))) {
        free(tz);
        tz = NULL;
    }
    return tz;
}

static int read_small_file(const char *path, unsigned char **out, size_t *outlen)
{
    int rc = 0;
    unsigned char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > TZIF_MAX_BYTES) {
        rc = -EINVAL;
        goto out;
    }
    size_t want = (size_t)st.st_size, got = 0;
    buf = malloc(want ? want : 1);
    if (!buf) {
        rc = -ENOMEM;
        goto out;
    }
    while (got < want) {
        ssize_t r = read(fd, buf + got, want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = r < 0 ? -errno : -EIO;
            goto out;
        }
        got += (size_t)r;
    }
    *out = buf;
    *outlen = got;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

static struct bt_tz *tz_from_path(const char *path, const char *name, char *err, size_t errlen)
{
    unsigned char *data = NULL;
    size_t len = 0;
    int rc = read_small_file(path, &data, &len);
    if (rc < 0) {
        gtime_set_err(err, errlen, "unknown time zone %s: %s", name, strerror(-rc));
        errno = -rc;
        return NULL;
    }
    struct bt_tz *tz = bt_tz_from_tzif(name, data, len, err, errlen);
    free(data);
    return tz;
}

static bool tz_name_ok(const char *name)
{
    return name[0] != '/' && name[0] != '\\' && !strstr(name, "..");
}

struct bt_tz *bt_tz_load_dir(const char *dir, const char *name, char *err, size_t errlen)
{
    char path[4096];
    if (!tz_name_ok(name)) {
        gtime_set_err(err, errlen, "invalid time zone name %s%s", name, "");
        errno = EINVAL;
        return NULL;
    }
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        gtime_set_err(err, errlen, "time zone name too long: %s%s", name, "");
        errno = ENAMETOOLONG;
        return NULL;
    }
    return tz_from_path(path, name, err, errlen);
}

static struct bt_tz *tz_load_local(char *err, size_t errlen)
{
    const char *tzenv = getenv("TZ");
    struct bt_tz *tz = NULL;
    if (!tzenv)
        tz = tz_from_path("/etc/localtime", "Local", err, errlen);
    else if (*tzenv && strcmp(tzenv, "UTC") != 0)
        tz = bt_tz_load(tzenv[0] == ':' ? tzenv + 1 : tzenv, err, errlen);
    if (tz) {
        free(tz->name);
        tz->name = strdup("Local");
        if (!tz->name) {
            bt_tz_free(tz);
            tz = NULL;
        }
        return tz;
    }
    return tz_utc("Local"); /* Go falls back to UTC too */
}

struct bt_tz *bt_tz_load(const char *name, char *err, size_t errlen)
{
    static const char *const dirs[] = {"/usr/share/zoneinfo", "/usr/share/lib/zoneinfo",
                                       "/usr/lib/locale/TZ", "/etc/zoneinfo"};
    if (!name || !*name || strcmp(name, "UTC") == 0)
        return tz_utc("UTC");
    if (strcmp(name, "Local") == 0)
        return tz_load_local(err, errlen);
    const char *env = getenv("ZONEINFO");
    if (env && *env) {
        struct bt_tz *tz = bt_tz_load_dir(env, name, err, errlen);
        if (tz || errno != ENOENT)
            return tz;
    }
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        struct bt_tz *tz = bt_tz_load_dir(dirs[i], name, err, errlen);
        if (tz || errno != ENOENT)
            return tz;
    }
    gtime_set_err(err, errlen, "unknown time zone %s%s", name, "");
    errno = ENOENT;
    return NULL;
}

/* Resolves a wall-clock second count (as if UTC) in tz, the way Go's time.Date does. */
int64_t gtime_tz_wall_to_unix(const struct bt_tz *tz, int64_t wall)
{
    struct tz_hit h;
    tz_lookup(tz, wall, &h);
    if (h.off != 0) {
        int64_t utc = wall - h.off;
        if (utc < h.start || utc >= h.end)
            tz_lookup(tz, utc, &h);
        wall -= h.off;
    }
    return wall;
}

/* Offset of the zone called abbr in tz, preferring one in effect around wall. */
bool gtime_tz_lookup_name(const struct bt_tz *tz, const char *abbr, size_t n, int64_t wall,
                          int32_t *off)
{
    if (!tz)
        return false;
    for (size_t i = 0; i < tz->nzone; i++) {
        const struct tz_zone *z = &tz->zones[i];
        if (strlen(z->abbr) == n && memcmp(z->abbr, abbr, n) == 0) {
            struct tz_hit h;
            tz_lookup(tz, wall - z->off, &h);
            if (strlen(h.abbr) == n && memcmp(h.abbr, abbr, n) == 0) {
                *off = h.off;
                return true;
            }
        }
    }
    for (size_t i = 0; i < tz->nzone; i++) {
        const struct tz_zone *z = &tz->zones[i];
        if (strlen(z->abbr) == n && memcmp(z->abbr, abbr, n) == 0) {
            *off = z->off;
            return true;
        }
    }
    return false;
}
