#include "util/gotime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TZIF_MAX_BYTES (512 * 1024)
#define TZ_ABBR_MAX 16
#define LAYOUT_MAX 256
#define LAYOUT_MAX_CHUNKS 64
#define SEC_PER_DAY 86400LL
#define ALPHA_SEC INT64_MIN
#define OMEGA_SEC INT64_MAX

/* ---- calendar ---------------------------------------------------------------------------- */

static bool is_leap(int64_t y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

static int days_in(int month, int64_t year)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month == 2 && is_leap(year))
        return 29;
    return dim[month - 1];
}

/* Days since 1970-01-01 of the proleptic Gregorian date y-m-d; d may exceed the month. */
static int64_t days_from_civil(int64_t y, int m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468 + (d - 1);
}

static int64_t year_of_days(int64_t z)
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

static int64_t floor_div(int64_t a, int64_t b)
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

static void set_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
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
        if (is_leap(year) && r->day >= 60)
            d++;
        break;
    case RULE_DOY:
        d = r->day;
        break;
    default: {
        int64_t first = days_from_civil(year, r->mon, 1);
        int dow = (int)(((first + 4) % 7 + 7) % 7);
        int dom = r->day - dow;
        if (dom < 0)
            dom += 7;
        for (int i = 1; i < r->week; i++) {
            if (dom + 7 >= days_in(r->mon, year))
                break;
            dom += 7;
        }
        d = first - days_from_civil(year, 1, 1) + dom;
        break;
    }
    }
    return d * SEC_PER_DAY + r->time - off;
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
    int64_t year = year_of_days(floor_div(sec, SEC_PER_DAY));
    int64_t ystart = days_from_civil(year, 1, 1) * SEC_PER_DAY;
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
        *h = (struct tz_hit){stdn, stdo, ystart + s1, ystart + 365 * SEC_PER_DAY};
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
        set_err(err, errlen, "%s%sout of memory", "", "");
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
    set_err(err, errlen, "invalid time zone data for %s%s", name ? name : "", "");
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
        set_err(err, errlen, "unknown time zone %s: %s", name, strerror(-rc));
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
        set_err(err, errlen, "invalid time zone name %s%s", name, "");
        errno = EINVAL;
        return NULL;
    }
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        set_err(err, errlen, "time zone name too long: %s%s", name, "");
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
    set_err(err, errlen, "unknown time zone %s%s", name, "");
    errno = ENOENT;
    return NULL;
}

/* Resolves a wall-clock second count (as if UTC) in tz, the way Go's time.Date does. */
static int64_t tz_wall_to_unix(const struct bt_tz *tz, int64_t wall)
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
static bool tz_lookup_name(const struct bt_tz *tz, const char *abbr, size_t n, int64_t wall,
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

/* ---- layouts ----------------------------------------------------------------------------- */

enum std {
    STD_END = 0,
    STD_LONG_MONTH,
    STD_MONTH,
    STD_NUM_MONTH,
    STD_ZERO_MONTH,
    STD_LONG_WEEKDAY,
    STD_WEEKDAY,
    STD_DAY,
    STD_UNDER_DAY,
    STD_ZERO_DAY,
    STD_UNDER_YEARDAY,
    STD_ZERO_YEARDAY,
    STD_HOUR,
    STD_HOUR12,
    STD_ZERO_HOUR12,
    STD_MINUTE,
    STD_ZERO_MINUTE,
    STD_SECOND,
    STD_ZERO_SECOND,
    STD_LONG_YEAR,
    STD_YEAR,
    STD_PM_UPPER,
    STD_PM_LOWER,
    STD_TZ,
    STD_ISO_TZ,
    STD_ISO_SECONDS_TZ,
    STD_ISO_SHORT_TZ,
    STD_ISO_COLON_TZ,
    STD_ISO_COLON_SECONDS_TZ,
    STD_NUM_TZ,
    STD_NUM_SECONDS_TZ,
    STD_NUM_SHORT_TZ,
    STD_NUM_COLON_TZ,
    STD_NUM_COLON_SECONDS_TZ,
    STD_FRAC0,
    STD_FRAC9,
};

struct chunk {
    uint16_t lit_off, lit_len; /* literal text before the element */
    uint8_t std;
    uint8_t ndigits; /* STD_FRAC0: digits required */
};

enum fmt_kind { FMT_LAYOUT, FMT_UNIX, FMT_UNIX_MS, FMT_UNIX_US, FMT_UNIX_NS };

struct bt_gotime {
    enum fmt_kind kind;
    bool yearless;
    const struct bt_tz *loc;
    char layout[LAYOUT_MAX + 1];
    size_t nchunks;
    struct chunk chunks[LAYOUT_MAX_CHUNKS];
};

static bool lower_at(const char *s, size_t i, size_t n)
{
    return i < n && s[i] >= 'a' && s[i] <= 'z';
}

static bool has_at(const char *s, size_t i, size_t n, const char *w)
{
    size_t l = strlen(w);
    return i + l <= n && memcmp(s + i, w, l) == 0;
}

static bool digit_at(const char *s, size_t i, size_t n)
{
    return i < n && s[i] >= '0' && s[i] <= '9';
}

/* Finds the next layout element at or after i: returns its start in *at, length in *len. */
static enum std next_std(const char *l, size_t n, size_t i, size_t *at, size_t *len, int *nd)
{
    static const struct {
        const char *w;
        enum std s;
    } dash[] = {{"070000", STD_NUM_SECONDS_TZ}, {"07:00:00", STD_NUM_COLON_SECONDS_TZ},
                {"0700", STD_NUM_TZ},           {"07:00", STD_NUM_COLON_TZ},
                {"07", STD_NUM_SHORT_TZ}};
    for (; i < n; i++) {
        *at = i;
        char c = l[i];
        switch (c) {
        case 'J':
            if (has_at(l, i, n, "Jan")) {
                if (has_at(l, i, n, "January"))
                    return *len = 7, STD_LONG_MONTH;
                if (!lower_at(l, i + 3, n))
                    return *len = 3, STD_MONTH;
            }
            break;
        case 'M':
            if (has_at(l, i, n, "Mon")) {
                if (has_at(l, i, n, "Monday"))
                    return *len = 6, STD_LONG_WEEKDAY;
                if (!lower_at(l, i + 3, n))
                    return *len = 3, STD_WEEKDAY;
            }
            if (has_at(l, i, n, "MST"))
                return *len = 3, STD_TZ;
            break;
        case '0':
            if (i + 1 < n && l[i + 1] >= '1' && l[i + 1] <= '6') {
                static const enum std z[] = {STD_ZERO_MONTH, STD_ZERO_DAY,    STD_ZERO_HOUR12,
                                             STD_ZERO_MINUTE, STD_ZERO_SECOND, STD_YEAR};
                return *len = 2, z[l[i + 1] - '1'];
            }
            if (has_at(l, i, n, "002"))
                return *len = 3, STD_ZERO_YEARDAY;
            break;
        case '1':
            if (i + 1 < n && l[i + 1] == '5')
                return *len = 2, STD_HOUR;
            return *len = 1, STD_NUM_MONTH;
        case '2':
            if (has_at(l, i, n, "2006"))
                return *len = 4, STD_LONG_YEAR;
            return *len = 1, STD_DAY;
        case '_':
            if (i + 1 < n && l[i + 1] == '2') {
                if (has_at(l, i + 1, n, "2006")) { /* "_2006" is '_' then a year */
                    *at = i + 1;
                    return *len = 4, STD_LONG_YEAR;
                }
                return *len = 2, STD_UNDER_DAY;
            }
            if (has_at(l, i, n, "__2"))
                return *len = 3, STD_UNDER_YEARDAY;
            break;
        case '3':
            return *len = 1, STD_HOUR12;
        case '4':
            return *len = 1, STD_MINUTE;
        case '5':
            return *len = 1, STD_SECOND;
        case 'P':
            if (i + 1 < n && l[i + 1] == 'M')
                return *len = 2, STD_PM_UPPER;
            break;
        case 'p':
            if (i + 1 < n && l[i + 1] == 'm')
                return *len = 2, STD_PM_LOWER;
            break;
        case '-':
        case 'Z':
            for (size_t k = 0; k < sizeof(dash) / sizeof(dash[0]); k++) {
                if (has_at(l, i + 1, n, dash[k].w)) {
                    *len = 1 + strlen(dash[k].w);
                    if (c == '-')
                        return dash[k].s;
                    return (enum std)(dash[k].s - STD_NUM_TZ + STD_ISO_TZ);
                }
            }
            break;
        case '.':
        case ',':
            if (i + 1 < n && (l[i + 1] == '0' || l[i + 1] == '9')) {
                size_t j = i + 1;
                while (j < n && l[j] == l[i + 1])
                    j++;
                if (!digit_at(l, j, n)) {
                    *nd = (int)(j - i - 1);
                    *len = j - i;
                    return l[i + 1] == '0' ? STD_FRAC0 : STD_FRAC9;
                }
            }
            break;
        default:
            break;
        }
    }
    *at = n;
    *len = 0;
    return STD_END;
}

static const char *const long_months[] = {"January", "February", "March",     "April",
                                          "May",     "June",     "July",      "August",
                                          "September", "October", "November", "December"};
static const char *const long_days[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                        "Thursday", "Friday", "Saturday"};

static const struct {
    const char *name, *layout;
} named_layouts[] = {
    {"ANSIC", "Mon Jan _2 15:04:05 2006"},
    {"UnixDate", "Mon Jan _2 15:04:05 MST 2006"},
    {"RubyDate", "Mon Jan 02 15:04:05 -0700 2006"},
    {"RFC822", "02 Jan 06 15:04 MST"},
    {"RFC822Z", "02 Jan 06 15:04 -0700"},
    {"RFC850", "Monday, 02-Jan-06 15:04:05 MST"},
    {"RFC1123", "Mon, 02 Jan 2006 15:04:05 MST"},
    {"RFC1123Z", "Mon, 02 Jan 2006 15:04:05 -0700"},
    {"RFC3339", "2006-01-02T15:04:05Z07:00"},
    {"RFC3339Nano", "2006-01-02T15:04:05.999999999Z07:00"},
};

struct bt_gotime *bt_gotime_new(const char *format, const struct bt_tz *loc, char *err,
                                size_t errlen)
{
    if (!format || !*format) {
        set_err(err, errlen, "empty time format%s%s", "", "");
        errno = EINVAL;
        return NULL;
    }
    struct bt_gotime *f = calloc(1, sizeof(*f));
    if (!f) {
        set_err(err, errlen, "out of memory%s%s", "", "");
        return NULL;
    }
    f->loc = loc;
    static const struct {
        const char *name;
        enum fmt_kind kind;
    } unixes[] = {{"Unix", FMT_UNIX},
                  {"UnixMs", FMT_UNIX_MS},
                  {"UnixUs", FMT_UNIX_US},
                  {"UnixNs", FMT_UNIX_NS}};
    for (size_t i = 0; i < sizeof(unixes) / sizeof(unixes[0]); i++) {
        if (strcmp(format, unixes[i].name) == 0) {
            f->kind = unixes[i].kind;
            return f;
        }
    }
    const char *layout = format;
    for (size_t i = 0; i < sizeof(named_layouts) / sizeof(named_layouts[0]); i++) {
        if (strcmp(format, named_layouts[i].name) == 0) {
            layout = named_layouts[i].layout;
            f->loc = NULL; /* promtail parses the named Go layouts with time.Parse */
        }
    }
    size_t n = strlen(layout);
    if (n > LAYOUT_MAX) {
        set_err(err, errlen, "time format longer than 256 bytes: %.40s...%s", layout, "");
        goto fail;
    }
    memcpy(f->layout, layout, n + 1);
    f->kind = FMT_LAYOUT;
    f->yearless = layout == format && !strstr(layout, "06"); /* "2006" contains "06" too */
    size_t i = 0;
    for (;;) {
        size_t at, len;
        int nd = 0;
        enum std s = next_std(f->layout, n, i, &at, &len, &nd);
        if (f->nchunks == LAYOUT_MAX_CHUNKS) {
            set_err(err, errlen, "time format has too many elements: %s%s", layout, "");
            goto fail;
        }
        f->chunks[f->nchunks++] = (struct chunk){(uint16_t)i, (uint16_t)(at - i), (uint8_t)s,
                                                 (uint8_t)nd};
        if (s == STD_END)
            break;
        i = at + len;
    }
    return f;
fail:
    free(f);
    errno = EINVAL;
    return NULL;
}

void bt_gotime_free(struct bt_gotime *f)
{
    free(f);
}

struct pval {
    const char *s;
    size_t n;
};

static bool pv_digit(const struct pval *v, size_t i)
{
    return i < v->n && v->s[i] >= '0' && v->s[i] <= '9';
}

static void pv_adv(struct pval *v, size_t k)
{
    v->s += k;
    v->n -= k;
}

/* Go's skip(): literal text, where a run of spaces matches a run of spaces. */
static bool skip_lit(struct pval *v, const char *p, size_t pn)
{
    while (pn) {
        if (*p == ' ') {
            if (v->n && v->s[0] != ' ')
                return false;
            while (pn && *p == ' ')
                p++, pn--;
            while (v->n && v->s[0] == ' ')
                pv_adv(v, 1);
            continue;
        }
        if (!v->n || v->s[0] != *p)
            return false;
        p++, pn--;
        pv_adv(v, 1);
    }
    return true;
}

static bool getnum(struct pval *v, bool fixed, int *out)
{
    if (!pv_digit(v, 0))
        return false;
    if (!pv_digit(v, 1)) {
        if (fixed)
            return false;
        *out = v->s[0] - '0';
        pv_adv(v, 1);
        return true;
    }
    *out = (v->s[0] - '0') * 10 + (v->s[1] - '0');
    pv_adv(v, 2);
    return true;
}

static bool getnum3(struct pval *v, bool fixed, int *out)
{
    int x = 0;
    size_t i = 0;
    for (; i < 3 && pv_digit(v, i); i++)
        x = x * 10 + (v->s[i] - '0');
    if (i == 0 || (fixed && i != 3))
        return false;
    *out = x;
    pv_adv(v, i);
    return true;
}

static bool fixed_digits(const char *s, size_t n, int *out)
{
    int x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        x = x * 10 + (s[i] - '0');
    }
    *out = x;
    return true;
}

static int lookup_name(struct pval *v, const char *const *tab, size_t ntab, size_t cut)
{
    for (size_t i = 0; i < ntab; i++) {
        size_t l = cut ? cut : strlen(tab[i]);
        if (v->n >= l && strncasecmp(v->s, tab[i], l) == 0) {
            pv_adv(v, l);
            return (int)i;
        }
    }
    return -1;
}

/* ".123456789" (nbytes incl. the separator) to nanoseconds; digits past the ninth ignored. */
static bool parse_nanos(const char *s, size_t nbytes, int *ns)
{
    if (s[0] != '.' && s[0] != ',')
        return false;
    if (nbytes > 10)
        nbytes = 10;
    int x = 0;
    if (!fixed_digits(s + 1, nbytes - 1, &x))
        return false;
    for (size_t i = nbytes; i < 10; i++)
        x *= 10;
    *ns = x;
    return true;
}

/* Go's parseTimeZone: length of a zone abbreviation at the start of v, or 0. */
static size_t zone_len(const struct pval *v)
{
    if (v->n < 3)
        return 0;
    if (v->n >= 4 && (memcmp(v->s, "ChST", 4) == 0 || memcmp(v->s, "MeST", 4) == 0))
        return 4;
    if (memcmp(v->s, "GMT", 3) == 0) {
        size_t i = 3;
        if (i < v->n && (v->s[i] == '+' || v->s[i] == '-')) {
            size_t j = i + 1;
            int x = 0;
            while (j < v->n && v->s[j] >= '0' && v->s[j] <= '9' && x <= 23)
                x = x * 10 + (v->s[j++] - '0');
            if (j > i + 1 && x <= 23)
                i = j;
        }
        return i;
    }
    if (v->s[0] == '+' || v->s[0] == '-') {
        size_t j = 1;
        int x = 0;
        while (j < v->n && v->s[j] >= '0' && v->s[j] <= '9' && x <= 23)
            x = x * 10 + (v->s[j++] - '0');
        return j > 1 && x <= 23 ? j : 0;
    }
    size_t up = 0;
    while (up < 6 && up < v->n && v->s[up] >= 'A' && v->s[up] <= 'Z')
        up++;
    switch (up) {
    case 3:
        return 3;
    case 4:
        return (v->s[3] == 'T' || memcmp(v->s, "WITA", 4) == 0) ? 4 : 0;
    case 5:
        return v->s[4] == 'T' ? 5 : 0;
    default:
        return 0;
    }
}

struct fields {
    int64_t year;
    int month, day, yday, hour, min, sec, nsec;
    bool pm, am;
    enum { Z_NONE, Z_UTC, Z_OFFSET, Z_NAME } zone;
    int32_t zoff;
    const char *zname;
    size_t znlen;
};

static int parse_numeric_zone(struct pval *v, enum std s, struct fields *f)
{
    const char *p = v->s;
    int hr, mm = 0, ss = 0;
    size_t used;
    bool ok;
    if (s == STD_ISO_COLON_TZ || s == STD_NUM_COLON_TZ) {
        if (v->n < 6 || p[3] != ':')
            return -EINVAL;
        ok = fixed_digits(p + 1, 2, &hr) && fixed_digits(p + 4, 2, &mm);
        used = 6;
    } else if (s == STD_ISO_SHORT_TZ || s == STD_NUM_SHORT_TZ) {
        if (v->n < 3)
            return -EINVAL;
        ok = fixed_digits(p + 1, 2, &hr);
        used = 3;
    } else if (s == STD_ISO_COLON_SECONDS_TZ || s == STD_NUM_COLON_SECONDS_TZ) {
        if (v->n < 9 || p[3] != ':' || p[6] != ':')
            return -EINVAL;
        ok = fixed_digits(p + 1, 2, &hr) && fixed_digits(p + 4, 2, &mm) &&
             fixed_digits(p + 7, 2, &ss);
        used = 9;
    } else if (s == STD_ISO_SECONDS_TZ || s == STD_NUM_SECONDS_TZ) {
        if (v->n < 7)
            return -EINVAL;
        ok = fixed_digits(p + 1, 2, &hr) && fixed_digits(p + 3, 2, &mm) &&
             fixed_digits(p + 5, 2, &ss);
        used = 7;
    } else {
        if (v->n < 5)
            return -EINVAL;
        ok = fixed_digits(p + 1, 2, &hr) && fixed_digits(p + 3, 2, &mm);
        used = 5;
    }
    if (!ok || (p[0] != '+' && p[0] != '-'))
        return -EINVAL;
    if (hr > 24 || mm > 60 || ss > 60)
        return -ERANGE;
    f->zone = Z_OFFSET;
    f->zoff = (int32_t)((hr * 60 + mm) * 60 + ss);
    if (p[0] == '-')
        f->zoff = -f->zoff;
    pv_adv(v, used);
    return 0;
}

/* The next element after chunk i is a fractional-second field. */
static bool next_is_frac(const struct bt_gotime *g, size_t i)
{
    return i + 1 < g->nchunks &&
           (g->chunks[i + 1].std == STD_FRAC0 || g->chunks[i + 1].std == STD_FRAC9);
}

static int parse_elem(const struct bt_gotime *g, size_t ci, struct pval *v, struct fields *f)
{
    const struct chunk *c = &g->chunks[ci];
    int x;
    switch ((enum std)c->std) {
    case STD_YEAR:
        if (v->n < 2 || !fixed_digits(v->s, 2, &x))
            return -EINVAL;
        f->year = x >= 69 ? 1900 + x : 2000 + x;
        pv_adv(v, 2);
        return 0;
    case STD_LONG_YEAR:
        if (v->n < 4 || !fixed_digits(v->s, 4, &x))
            return -EINVAL;
        f->year = x;
        pv_adv(v, 4);
        return 0;
    case STD_MONTH:
        if ((x = lookup_name(v, long_months, 12, 3)) < 0)
            return -EINVAL;
        f->month = x + 1;
        return 0;
    case STD_LONG_MONTH:
        if ((x = lookup_name(v, long_months, 12, 0)) < 0)
            return -EINVAL;
        f->month = x + 1;
        return 0;
    case STD_NUM_MONTH:
    case STD_ZERO_MONTH:
        if (!getnum(v, c->std == STD_ZERO_MONTH, &f->month))
            return -EINVAL;
        return f->month < 1 || f->month > 12 ? -ERANGE : 0;
    case STD_WEEKDAY:
        return lookup_name(v, long_days, 7, 3) < 0 ? -EINVAL : 0;
    case STD_LONG_WEEKDAY:
        return lookup_name(v, long_days, 7, 0) < 0 ? -EINVAL : 0;
    case STD_DAY:
    case STD_UNDER_DAY:
    case STD_ZERO_DAY:
        if (c->std == STD_UNDER_DAY && v->n && v->s[0] == ' ')
            pv_adv(v, 1);
        return getnum(v, c->std == STD_ZERO_DAY, &f->day) ? 0 : -EINVAL;
    case STD_UNDER_YEARDAY:
    case STD_ZERO_YEARDAY:
        for (int k = 0; k < 2 && c->std == STD_UNDER_YEARDAY && v->n && v->s[0] == ' '; k++)
            pv_adv(v, 1);
        return getnum3(v, c->std == STD_ZERO_YEARDAY, &f->yday) ? 0 : -EINVAL;
    case STD_HOUR:
        if (!getnum(v, false, &f->hour))
            return -EINVAL;
        return f->hour > 23 ? -ERANGE : 0;
    case STD_HOUR12:
    case STD_ZERO_HOUR12:
        if (!getnum(v, c->std == STD_ZERO_HOUR12, &f->hour))
            return -EINVAL;
        return f->hour > 12 ? -ERANGE : 0;
    case STD_MINUTE:
    case STD_ZERO_MINUTE:
        if (!getnum(v, c->std == STD_ZERO_MINUTE, &f->min))
            return -EINVAL;
        return f->min > 59 ? -ERANGE : 0;
    case STD_SECOND:
    case STD_ZERO_SECOND: {
        if (!getnum(v, c->std == STD_ZERO_SECOND, &f->sec))
            return -EINVAL;
        if (f->sec > 59)
            return -ERANGE;
        /* Go accepts a fractional second here even when the layout has none. */
        if (v->n >= 2 && (v->s[0] == '.' || v->s[0] == ',') && pv_digit(v, 1) &&
            !next_is_frac(g, ci)) {
            size_t k = 2;
            while (pv_digit(v, k))
                k++;
            if (!parse_nanos(v->s, k, &f->nsec))
                return -EINVAL;
            pv_adv(v, k);
        }
        return 0;
    }
    case STD_PM_UPPER:
    case STD_PM_LOWER: {
        const char *pm = c->std == STD_PM_UPPER ? "PM" : "pm";
        const char *am = c->std == STD_PM_UPPER ? "AM" : "am";
        if (v->n < 2)
            return -EINVAL;
        if (memcmp(v->s, pm, 2) == 0)
            f->pm = true;
        else if (memcmp(v->s, am, 2) == 0)
            f->am = true;
        else
            return -EINVAL;
        pv_adv(v, 2);
        return 0;
    }
    case STD_ISO_TZ:
    case STD_ISO_SECONDS_TZ:
    case STD_ISO_SHORT_TZ:
    case STD_ISO_COLON_TZ:
    case STD_ISO_COLON_SECONDS_TZ:
        if (v->n && v->s[0] == 'Z') {
            pv_adv(v, 1);
            f->zone = Z_UTC;
            return 0;
        }
        return parse_numeric_zone(v, (enum std)c->std, f);
    case STD_NUM_TZ:
    case STD_NUM_SECONDS_TZ:
    case STD_NUM_SHORT_TZ:
    case STD_NUM_COLON_TZ:
    case STD_NUM_COLON_SECONDS_TZ:
        return parse_numeric_zone(v, (enum std)c->std, f);
    case STD_TZ: {
        if (v->n >= 3 && memcmp(v->s, "UTC", 3) == 0) {
            f->zone = Z_UTC;
            pv_adv(v, 3);
            return 0;
        }
        size_t zl = zone_len(v);
        if (!zl)
            return -EINVAL;
        f->zone = Z_NAME;
        f->zname = v->s;
        f->znlen = zl;
        pv_adv(v, zl);
        return 0;
    }
    case STD_FRAC0: {
        size_t nd = 1 + (size_t)c->ndigits;
        if (v->n < nd || !parse_nanos(v->s, nd, &f->nsec))
            return -EINVAL;
        pv_adv(v, nd);
        return 0;
    }
    case STD_FRAC9: {
        if (v->n < 2 || (v->s[0] != '.' && v->s[0] != ',') || !pv_digit(v, 1))
            return 0; /* omitted */
        size_t k = 1;
        while (pv_digit(v, k))
            k++;
        if (!parse_nanos(v->s, k, &f->nsec))
            return -EINVAL;
        pv_adv(v, k);
        return 0;
    }
    case STD_END:
        break;
    }
    return -EINVAL;
}

static int apply_yday(struct fields *f)
{
    int ylen = is_leap(f->year) ? 366 : 365;
    if (f->yday < 1 || f->yday > ylen)
        return -ERANGE;
    int m = 1, d = f->yday;
    while (d > days_in(m, f->year))
        d -= days_in(m++, f->year);
    if ((f->month >= 0 && f->month != m) || (f->day >= 0 && f->day != d))
        return -EINVAL;
    f->month = m;
    f->day = d;
    return 0;
}

static int to_ns(int64_t unix_sec, int nsec, int64_t *out)
{
    /* int64 nanoseconds cover 1677-09-21 .. 2262-04-11 */
    if (unix_sec < -9223372036LL || unix_sec > 9223372035LL)
        return -ERANGE;
    *out = unix_sec * 1000000000LL + nsec;
    return 0;
}

static int resolve(const struct bt_gotime *g, const struct fields *f, int64_t *out)
{
    int64_t wall = days_from_civil(f->year, f->month, f->day) * SEC_PER_DAY + f->hour * 3600LL +
                   f->min * 60LL + f->sec;
    int64_t unix_sec;
    int32_t off;
    switch (f->zone) {
    case Z_UTC:
        unix_sec = wall;
        break;
    case Z_OFFSET:
        unix_sec = wall - f->zoff;
        break;
    case Z_NAME:
        /* A known abbreviation of the location gives its offset; an unknown one counts as
         * offset 0 (Go records it in a made-up zone without adjusting the instant). */
        unix_sec = tz_lookup_name(g->loc, f->zname, f->znlen, wall, &off) ? wall - off : wall;
        break;
    default:
        unix_sec = g->loc ? tz_wall_to_unix(g->loc, wall) : wall;
        break;
    }
    return to_ns(unix_sec, f->nsec, out);
}

static int parse_layout(const struct bt_gotime *g, const char *s, size_t n, int64_t now_ns,
                        int64_t *out)
{
    struct pval v = {s, n};
    struct fields f = {.month = -1, .day = -1, .yday = -1};
    int rc;
    for (size_t i = 0; i < g->nchunks; i++) {
        const struct chunk *c = &g->chunks[i];
        if (!skip_lit(&v, g->layout + c->lit_off, c->lit_len))
            return -EINVAL;
        if (c->std == STD_END)
            break;
        if ((rc = parse_elem(g, i, &v, &f)) < 0)
            return rc;
    }
    if (v.n)
        return -EINVAL; /* extra text */
    if (f.pm && f.hour < 12)
        f.hour += 12;
    else if (f.am && f.hour == 12)
        f.hour = 0;
    if (f.yday >= 0) {
        if ((rc = apply_yday(&f)) < 0)
            return rc;
    } else {
        if (f.month < 0)
            f.month = 1;
        if (f.day < 0)
            f.day = 1;
    }
    if (f.day < 1 || f.day > days_in(f.month, f.year))
        return -ERANGE;
    if (g->yearless) {
        /* promtail: the current year, except Dec in January (last year) and Jan in December
         * (next year). Feb 29 of a common year rolls to Mar 1, like Go's AddDate. */
        int64_t now_days = floor_div(now_ns, (SEC_PER_DAY * 1000000000LL));
        int64_t ny = year_of_days(now_days);
        int nm = 1;
        while (nm < 12 && days_from_civil(ny, nm + 1, 1) <= now_days)
            nm++;
        if (f.month == 12 && nm == 1)
            ny--;
        else if (f.month == 1 && nm == 12)
            ny++;
        int64_t days = days_from_civil(ny, f.month, f.day);
        f.year = year_of_days(days);
        int m = 1;
        while (m < 12 && days_from_civil(f.year, m + 1, 1) <= days)
            m++;
        f.month = m;
        f.day = (int)(days - days_from_civil(f.year, m, 1) + 1);
    }
    return resolve(g, &f, out);
}

/* strconv.ParseInt(s, 10, 64) */
static bool parse_i64(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (n && (s[0] == '+' || s[0] == '-'))
        neg = s[i++] == '-';
    if (i == n)
        return false;
    uint64_t x = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (x > (lim - d) / 10)
            return false;
        x = x * 10 + d;
    }
    *out = neg ? (int64_t)(0 - x) : (int64_t)x;
    return true;
}

static int parse_unix(const char *s, size_t n, int64_t *out)
{
    const char *dot = memchr(s, '.', n);
    int64_t sec, frac = 0;
    if (dot && memchr(dot + 1, '.', n - (size_t)(dot - s) - 1))
        dot = NULL; /* two dots: promtail parses the whole string as an integer (and fails) */
    if (!dot)
        return parse_i64(s, n, &sec) ? (__builtin_mul_overflow(sec, 1000000000LL, out)
                                             ? -ERANGE
                                             : 0)
                                     : -EINVAL;
    size_t fl = n - (size_t)(dot - s) - 1;
    if (!parse_i64(s, (size_t)(dot - s), &sec) || !parse_i64(dot + 1, fl, &frac))
        return -EINVAL;
    if (fl > 9)
        return -ERANGE; /* "nanosecond precision is limited to 9 digits" */
    for (size_t i = fl; i < 9; i++)
        frac *= 10;
    int64_t ns;
    if (__builtin_mul_overflow(sec, 1000000000LL, &ns) || __builtin_add_overflow(ns, frac, out))
        return -ERANGE;
    return 0;
}

int bt_gotime_parse(const struct bt_gotime *f, const char *s, size_t n, int64_t now_ns,
                    int64_t *out_ns)
{
    int64_t v;
    switch (f->kind) {
    case FMT_UNIX:
        return parse_unix(s, n, out_ns);
    case FMT_UNIX_MS:
    case FMT_UNIX_US:
    case FMT_UNIX_NS: {
        static const int64_t mul[] = {0, 0, 1000000, 1000, 1};
        if (!parse_i64(s, n, &v))
            return -EINVAL;
        return __builtin_mul_overflow(v, mul[f->kind], out_ns) ? -ERANGE : 0;
    }
    default:
        return parse_layout(f, s, n, now_ns, out_ns);
    }
}

int bt_gotime_parse_once(const char *format, const struct bt_tz *loc, const char *s,
                         int64_t now_ns, int64_t *out_ns)
{
    struct bt_gotime *f = bt_gotime_new(format, loc, NULL, 0);
    if (!f)
        return -errno;
    int rc = bt_gotime_parse(f, s, strlen(s), now_ns, out_ns);
    bt_gotime_free(f);
    return rc;
}
