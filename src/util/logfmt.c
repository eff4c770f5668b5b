/* logfmt tokenizer (logfmt.h). */
#include "util/logfmt.h"
#include "util/buf.h"
#include "util/jmespath.h"

#include <errno.h>

void bt_logfmt_init(struct bt_logfmt *d, const char *s, size_t n)
{
    d->s = s;
    d->n = n;
    d->pos = 0;
}

int bt_logfmt_next(struct bt_logfmt *d, struct bt_logfmt_kv *kv)
{
    const unsigned char *s = (const unsigned char *)d->s;
    size_t n = d->n, i = d->pos;
    while (i < n && s[i] <= ' ')
        i++;
    if (i >= n) {
        d->pos = n;
        return 0;
    }
    size_t ks = i;
    while (i < n && s[i] > ' ' && s[i] != '=') {
        if (s[i] == '"')
            goto bad;
        i++;
    }
    if (i == ks) /* '=' with no key */
        goto bad;
    kv->key = d->s + ks;
    kv->klen = i - ks;
    kv->val = d->s + i;
    kv->vlen = 0;
    kv->quoted = false;
    if (i >= n || s[i] != '=') {
        d->pos = i;
        return 1;
    }
    i++;
    if (i < n && s[i] == '"') {
        size_t vs = i++;
        while (i < n && s[i] != '"') {
            if (s[i] == '\\')
                i++;
            i++;
        }
        if (i >= n)
            goto bad;
        i++;
        kv->val = d->s + vs;
        kv->vlen = i - vs;
        kv->quoted = true;
    } else {
        size_t vs = i;
        while (i < n && s[i] > ' ') {
            if (s[i] == '"' || s[i] == '=')
                goto bad;
            i++;
        }
        kv->val = d->s + vs;
        kv->vlen = i - vs;
    }
    d->pos = i;
    return 1;
bad:
    d->pos = n;
    return -EINVAL;
}

int bt_logfmt_value(const struct bt_logfmt_kv *kv, struct bt_buf *out)
{
    if (!kv->quoted)
        return bt_buf_add(out, kv->val, kv->vlen);
    return bt_json_unescape(kv->val, kv->vlen, out);
}
