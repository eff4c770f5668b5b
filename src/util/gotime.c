#include "util/gotime.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/gotime_int.h"
#include "util/rfc3339.h"

#define LAYOUT_MAX 256
#define LAYOUT_MAX_CHUNKS 64

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
    bool rfc3339; /* named RFC3339 or RFC3339Nano: util/rfc3339 first, the layout if it refuses */
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
    } dash[] = {{"070000", STD_NUM_SECONDS_TZ},
                {"07:00:00", STD_NUM_COLON_SECONDS_TZ},
                {"0700", STD_NUM_TZ},
                {"07:00", STD_NUM_COLON_TZ},
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
                static const enum std z[] = {STD_ZERO_MONTH,  STD_ZERO_DAY,    STD_ZERO_HOUR12,
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
        case '3': return *len = 1, STD_HOUR12;
        case '4': return *len = 1, STD_MINUTE;
        case '5': return *len = 1, STD_SECOND;
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
        default: break;
        }
    }
    *at = n;
    *len = 0;
    return STD_END;
}

static const char *const long_months[] = {"January",   "February", "March",    "April",
                                          "May",       "June",     "July",     "August",
                                          "September", "October",  "November", "December"};
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
        gtime_set_err(err, errlen, "empty time format%s%s", "", "");
        errno = EINVAL;
        return NULL;
    }
    struct bt_gotime *f = calloc(1, sizeof(*f));
    if (!f) {
        gtime_set_err(err, errlen, "out of memory%s%s", "", "");
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
            f->rfc3339 = strcmp(format, "RFC3339") == 0 || strcmp(format, "RFC3339Nano") == 0;
        }
    }
    size_t n = strlen(layout);
    if (n > LAYOUT_MAX) {
        gtime_set_err(err, errlen, "time format longer than 256 bytes: %.40s...%s", layout, "");
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
            gtime_set_err(err, errlen, "time format has too many elements: %s%s", layout, "");
            goto fail;
        }
        f->chunks[f->nchunks++] =
            (struct chunk){(uint16_t)i, (uint16_t)(at - i), (uint8_t)s, (uint8_t)nd};
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
    case 3: return 3;
    case 4: return (v->s[3] == 'T' || memcmp(v->s, "WITA", 4) == 0) ? 4 : 0;
    case 5: return v->s[4] == 'T' ? 5 : 0;
    default: return 0;
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
    case STD_WEEKDAY: return lookup_name(v, long_days, 7, 3) < 0 ? -EINVAL : 0;
    case STD_LONG_WEEKDAY: return lookup_name(v, long_days, 7, 0) < 0 ? -EINVAL : 0;
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
    case STD_NUM_COLON_SECONDS_TZ: return parse_numeric_zone(v, (enum std)c->std, f);
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
    case STD_END: break;
    }
    return -EINVAL;
}

static int apply_yday(struct fields *f)
{
    int ylen = gtime_is_leap(f->year) ? 366 : 365;
    if (f->yday < 1 || f->yday > ylen)
        return -ERANGE;
    int m = 1, d = f->yday;
    while (d > gtime_days_in(m, f->year))
        d -= gtime_days_in(m++, f->year);
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
    int64_t wall = gtime_days_from_civil(f->year, f->month, f->day) * GTIME_SEC_PER_DAY +
                   f->hour * 3600LL + f->min * 60LL + f->sec;
    int64_t unix_sec;
    int32_t off;
    switch (f->zone) {
    case Z_UTC: unix_sec = wall; break;
    case Z_OFFSET: unix_sec = wall - f->zoff; break;
    case Z_NAME:
        /* A known abbreviation of the location gives its offset; an unknown one counts as
         * offset 0 (Go records it in a made-up zone without adjusting the instant). */
        unix_sec = gtime_tz_lookup_name(g->loc, f->zname, f->znlen, wall, &off) ? wall - off : wall;
        break;
    default: unix_sec = g->loc ? gtime_tz_wall_to_unix(g->loc, wall) : wall; break;
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
    if (f.day < 1 || f.day > gtime_days_in(f.month, f.year))
        return -ERANGE;
    if (g->yearless) {
        /* promtail: the current year, except Dec in January (last year) and Jan in December
         * (next year). Feb 29 of a common year rolls to Mar 1, like Go's AddDate. */
        int64_t now_days = gtime_floor_div(now_ns, (GTIME_SEC_PER_DAY * 1000000000LL));
        int64_t ny = gtime_year_of_days(now_days);
        int nm = 1;
        while (nm < 12 && gtime_days_from_civil(ny, nm + 1, 1) <= now_days)
            nm++;
        if (f.month == 12 && nm == 1)
            ny--;
        else if (f.month == 1 && nm == 12)
            ny++;
        int64_t days = gtime_days_from_civil(ny, f.month, f.day);
        f.year = gtime_year_of_days(days);
        int m = 1;
        while (m < 12 && gtime_days_from_civil(f.year, m + 1, 1) <= days)
            m++;
        f.month = m;
        f.day = (int)(days - gtime_days_from_civil(f.year, m, 1) + 1);
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
        return parse_i64(s, n, &sec)
                   ? (__builtin_mul_overflow(sec, 1000000000LL, out) ? -ERANGE : 0)
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

bool bt_gotime_uses_now(const struct bt_gotime *f)
{
    return f->kind == FMT_LAYOUT && f->yearless;
}

int bt_gotime_parse(const struct bt_gotime *f, const char *s, size_t n, int64_t now_ns,
                    int64_t *out_ns)
{
    int64_t v;
    switch (f->kind) {
    case FMT_UNIX: return parse_unix(s, n, out_ns);
    case FMT_UNIX_MS:
    case FMT_UNIX_US:
    case FMT_UNIX_NS: {
        static const int64_t mul[] = {0, 0, 1000000, 1000, 1};
        if (!parse_i64(s, n, &v))
            return -EINVAL;
        return __builtin_mul_overflow(v, mul[f->kind], out_ns) ? -ERANGE : 0;
    }
    default:
        /* What the RFC 3339 parser takes, Go's layout parse takes the same way (it is only
         * stricter: offsets of 24 hours or 60 minutes, a comma before the fraction). */
        if (f->rfc3339 && bt_rfc3339_parse(s, n, out_ns) == 0)
            return 0;
        return parse_layout(f, s, n, now_ns, out_ns);
    }
}

int bt_gotime_parse_once(const char *format, const struct bt_tz *loc, const char *s, int64_t now_ns,
                         int64_t *out_ns)
{
    struct bt_gotime *f = bt_gotime_new(format, loc, NULL, 0);
    if (!f)
        return -errno;
    int rc = bt_gotime_parse(f, s, strlen(s), now_ns, out_ns);
    bt_gotime_free(f);
    return rc;
}
