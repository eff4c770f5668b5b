#include "core/labels.h"
#include "util/buf.h"
#include "util/hmap.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

void bt_labels_init(struct bt_labels *l)
{
    memset(l, 0, sizeof(*l));
    l->dirty = true;
}

void bt_labels_free(struct bt_labels *l)
{
    for (size_t i = 0; i < l->cap; i++) {
        free(l->v[i].name);
        free(l->v[i].value);
    }
    free(l->v);
    free(l->canon);
    bt_labels_init(l);
}

void bt_labels_clear(struct bt_labels *l)
{
    l->n = 0;
    l->dirty = true;
}

static int put_str(char **p, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (n + 1 > *cap) {
        size_t nc = n + 1 < 16 ? 16 : n + 1;
        char *q = realloc(*p, nc);
        if (!q)
            return -ENOMEM;
        *p = q;
        *cap = nc;
    }
    memcpy(*p, s, n);
    (*p)[n] = '\0';
    *len = n;
    return 0;
}

static int cmp_name(const char *a, size_t an, const char *b, size_t bn)
{
    size_t m = an < bn ? an : bn;
    int c = memcmp(a, b, m);
    if (c)
        return c;
    return an < bn ? -1 : an > bn ? 1 : 0;
}

/* Binary search; returns index of name or the insertion point with *found = 0. */
static size_t lookup(const struct bt_labels *l, const char *name, size_t nlen, int *found)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = cmp_name(l->v[mid].name, l->v[mid].name_len, name, nlen);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

static void del_at(struct bt_labels *l, size_t i)
{
    struct bt_label tmp = l->v[i];
    memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof(l->v[0]));
    l->n--;
    l->v[l->n] = tmp; /* keep the slot's memory as spare */
    l->dirty = true;
}

int bt_labels_setn(struct bt_labels *l, const char *name, size_t nlen, const char *value,
                   size_t vlen)
{
    int found;
    size_t i = lookup(l, name, nlen, &found);
    if (vlen == 0) {
        if (found)
            del_at(l, i);
        return 0;
    }
    if (found) {
        struct bt_label *s = &l->v[i];
        if (s->value_len == vlen && memcmp(s->value, value, vlen) == 0)
            return 0;
        l->dirty = true;
        return put_str(&s->value, &s->value_len, &s->value_cap, value, vlen);
    }
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 8;
        struct bt_label *nv = realloc(l->v, nc * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        memset(nv + l->cap, 0, (nc - l->cap) * sizeof(*nv));
        l->v = nv;
        l->cap = nc;
    }
    struct bt_label spare = l->v[l->n];
    if (put_str(&spare.name, &spare.name_len, &spare.name_cap, name, nlen) ||
        put_str(&spare.value, &spare.value_len, &spare.value_cap, value, vlen)) {
        l->v[l->n] = spare;
        return -ENOMEM;
    }
    memmove(&l->v[i + 1], &l->v[i], (l->n - i) * sizeof(l->v[0]));
    l->v[i] = spare;
    l->n++;
    l->dirty = true;
    return 0;
}

int bt_labels_set(struct bt_labels *l, const char *name, const char *value)
{
    return bt_labels_setn(l, name, strlen(name), value, value ? strlen(value) : 0);
}

const char *bt_labels_getn(const struct bt_labels *l, const char *name, size_t nlen)
{
    int found;
    size_t i = lookup(l, name, nlen, &found);
    return found ? l->v[i].value : NULL;
}

const char *bt_labels_get(const struct bt_labels *l, const char *name)
{
    return bt_labels_getn(l, name, strlen(name));
}

int bt_labels_del(struct bt_labels *l, const char *name)
{
    int found;
    size_t i = lookup(l, name, strlen(name), &found);
    if (!found)
        return 0;
    del_at(l, i);
    return 1;
}

int bt_labels_copy(struct bt_labels *dst, const struct bt_labels *src)
{
    if (dst == src)
        return 0;
    if (dst->cap < src->n) {
        struct bt_label *nv = realloc(dst->v, src->n * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        memset(nv + dst->cap, 0, (src->n - dst->cap) * sizeof(*nv));
        dst->v = nv;
        dst->cap = src->n;
    }
    for (size_t i = 0; i < src->n; i++) {
        struct bt_label *d = &dst->v[i];
        const struct bt_label *s = &src->v[i];
        if (put_str(&d->name, &d->name_len, &d->name_cap, s->name, s->name_len) ||
            put_str(&d->value, &d->value_len, &d->value_cap, s->value, s->value_len)) {
            dst->n = i;
            dst->dirty = true;
            return -ENOMEM;
        }
    }
    dst->n = src->n;
    dst->dirty = true;
    if (!src->dirty && src->canon) {
        struct bt_buf b = {dst->canon, 0, dst->canon_cap, (size_t)-1};
        if (bt_buf_add(&b, src->canon, src->canon_len) == 0) {
            dst->canon = b.ptr;
            dst->canon_cap = b.cap;
            dst->canon_len = src->canon_len;
            dst->hash = src->hash;
            dst->stamp = src->stamp;
            dst->dirty = false;
        } else {
            dst->canon = NULL;
            dst->canon_cap = 0;
        }
    }
    return 0;
}

int bt_labels_merge_under(struct bt_labels *dst, const struct bt_labels *src)
{
    for (size_t i = 0; i < src->n; i++) {
        const struct bt_label *s = &src->v[i];
        if (bt_labels_getn(dst, s->name, s->name_len))
            continue;
        int rc = bt_labels_setn(dst, s->name, s->name_len, s->value, s->value_len);
        if (rc)
            return rc;
    }
    return 0;
}

void bt_labels_drop_reserved(struct bt_labels *l)
{
    for (size_t i = 0; i < l->n;) {
        if (l->v[i].name_len >= 2 && l->v[i].name[0] == '_' && l->v[i].name[1] == '_')
            del_at(l, i);
        else
            i++;
    }
}

static bool reserved(const struct bt_label *lb)
{
    return lb->name_len >= 2 && lb->name[0] == '_' && lb->name[1] == '_';
}

size_t bt_labels_visible(const struct bt_labels *l)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        n += !reserved(&l->v[i]);
    return n;
}

/* Decodes one UTF-8 rune at s (n bytes left). Returns its length, or 0 if invalid. */
static size_t utf8_rune(const unsigned char *s, size_t n, uint32_t *r)
{
    if (s[0] < 0x80) {
        *r = s[0];
        return 1;
    }
    size_t len;
    uint32_t min;
    if ((s[0] & 0xe0) == 0xc0) {
        len = 2;
        *r = s[0] & 0x1f;
        min = 0x80;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3;
        *r = s[0] & 0x0f;
        min = 0x800;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4;
        *r = s[0] & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        *r = (*r << 6) | (s[i] & 0x3f);
    }
    if (*r < min || *r > 0x10ffff || (*r >= 0xd800 && *r <= 0xdfff))
        return 0;
    return len;
}

/* Approximates Go's unicode.IsPrint for the runes that matter in labels: control characters,
 * the C1 range, line/paragraph separators, the BOM and non-characters are escaped. */
static bool rune_printable(uint32_t r)
{
    if (r < 0x20 || (r >= 0x7f && r < 0xa0))
        return false;
    if (r == 0xad || r == 0x2028 || r == 0x2029 || r == 0xfeff || (r >= 0xfff9 && r <= 0xfffb))
        return false;
    if ((r & 0xfffe) == 0xfffe || (r >= 0xfdd0 && r <= 0xfdef))
        return false;
    if (r >= 0xe000 && r <= 0xf8ff) /* private use */
        return false;
    if (r >= 0x200b && r <= 0x200f)
        return false;
    return true;
}

int bt_go_quote(struct bt_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    int rc = bt_buf_add(out, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (rc == 0 && i < n) {
        size_t run = i;
        while (run < n && p[run] >= 0x20 && p[run] < 0x7f && p[run] != '"' && p[run] != '\\')
            run++;
        if (run > i) {
            rc = bt_buf_add(out, p + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = p[i];
        const char *esc = NULL;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\a': esc = "\\a"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\v': esc = "\\v"; break;
        default: break;
        }
        if (esc) {
            rc = bt_buf_adds(out, esc);
            i++;
            continue;
        }
        uint32_t r;
        size_t len = c < 0x80 ? 1 : utf8_rune(p + i, n - i, &r);
        if (c < 0x80)
            r = c;
        if (len == 0) {
            tmp[0] = '\\';
            tmp[1] = 'x';
            tmp[2] = hex[c >> 4];
            tmp[3] = hex[c & 15];
            rc = bt_buf_add(out, tmp, 4);
            i++;
        } else if (rune_printable(r)) {
            rc = bt_buf_add(out, p + i, len);
            i += len;
        } else {
            if (r < 0x80)
                snprintf(tmp, sizeof(tmp), "\\x%02x", r);
            else if (r < 0x10000)
                snprintf(tmp, sizeof(tmp), "\\u%04x", r);
            else
                snprintf(tmp, sizeof(tmp), "\\U%08x", r);
            rc = bt_buf_adds(out, tmp);
            i += len;
        }
    }
    if (rc == 0)
        rc = bt_buf_add(out, "\"", 1);
    return rc;
}

const char *bt_labels_canon(struct bt_labels *l, size_t *len)
{
    if (!l->dirty && l->canon) {
        if (len)
            *len = l->canon_len;
        return l->canon;
    }
    struct bt_buf b = {l->canon, 0, l->canon_cap, (size_t)-1};
    int rc = bt_buf_add(&b, "{", 1);
    bool first = true;
    for (size_t i = 0; rc == 0 && i < l->n; i++) {
        const struct bt_label *lb = &l->v[i];
        if (reserved(lb))
            continue;
        if (!first)
            rc = bt_buf_add(&b, ", ", 2);
        first = false;
        if (rc == 0)
            rc = bt_buf_add(&b, lb->name, lb->name_len);
        if (rc == 0)
            rc = bt_buf_add(&b, "=", 1);
        if (rc == 0)
            rc = bt_go_quote(&b, lb->value, lb->value_len);
    }
    if (rc == 0)
        rc = bt_buf_add(&b, "}", 1);
    if (rc) {
        l->canon = NULL;
        l->canon_cap = 0;
        l->dirty = true;
        return NULL;
    }
    l->canon = b.ptr;
    l->canon_cap = b.cap;
    l->canon_len = b.len;
    l->hash = bt_hash64(b.ptr, b.len);
    static uint64_t next_stamp;
    l->stamp = __atomic_add_fetch(&next_stamp, 1, __ATOMIC_RELAXED);
    l->dirty = false;
    if (len)
        *len = l->canon_len;
    return l->canon;
}

uint64_t bt_labels_hash(struct bt_labels *l)
{
    if (l->dirty || !l->canon)
        bt_labels_canon(l, NULL);
    return l->hash;
}

bool bt_labels_equal(const struct bt_labels *a, const struct bt_labels *b)
{
    if (!a->dirty && !b->dirty && a->stamp && a->stamp == b->stamp)
        return true; /* one stamp, one canonical string: the same labels (labels.h) */
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        if (a->v[i].name_len != b->v[i].name_len || a->v[i].value_len != b->v[i].value_len ||
            memcmp(a->v[i].name, b->v[i].name, a->v[i].name_len) ||
            memcmp(a->v[i].value, b->v[i].value, a->v[i].value_len))
            return false;
    }
    return true;
}

bool bt_label_name_valid(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}
