#include "util/hmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static char tomb_marker;
#define TOMB (&tomb_marker)

uint64_t bt_hash64(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t i = 0;
    /* 8 bytes at a time, then the tail; FNV-style multiply with a final avalanche. */
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0x100000001b3ULL;
        h ^= h >> 29;
    }
    for (; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

void bt_hmap_init(struct bt_hmap *m)
{
    memset(m, 0, sizeof(*m));
}

void bt_hmap_free(struct bt_hmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != TOMB)
            free(m->slots[i].key);
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

static struct bt_hmap_slot *find(const struct bt_hmap *m, const void *key, size_t klen,
                                 uint64_t hash)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = hash & mask, probes = 0; probes < m->cap; i = (i + 1) & mask, probes++) {
        struct bt_hmap_slot *s = &m->slots[i];
        if (!s->key)
            return NULL;
        if (s->key != TOMB && s->hash == hash && s->klen == klen && memcmp(s->key, key, klen) == 0)
            return s;
    }
    return NULL;
}

void *bt_hmap_get_h(const struct bt_hmap *m, const void *key, size_t klen, uint64_t hash)
{
    struct bt_hmap_slot *s = find(m, key, klen, hash);
    return s ? s->val : NULL;
}

void *bt_hmap_get(const struct bt_hmap *m, const void *key, size_t klen)
{
    return bt_hmap_get_h(m, key, klen, bt_hash64(key, klen));
}

static int grow(struct bt_hmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    if (m->n * 4 < m->cap) /* mostly tombstones: rehash at the same size */
        ncap = m->cap;
    struct bt_hmap_slot *ns = calloc(ncap, sizeof(*ns));
    if (!ns)
        return -ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        struct bt_hmap_slot *s = &m->slots[i];
        if (!s->key || s->key == TOMB)
            continue;
        size_t j = s->hash & (ncap - 1);
        while (ns[j].key)
            j = (j + 1) & (ncap - 1);
        ns[j] = *s;
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    m->used = m->n;
    return 0;
}

int bt_hmap_put_h(struct bt_hmap *m, const void *key, size_t klen, uint64_t hash, void *val,
                  void **old)
{
    struct bt_hmap_slot *s = find(m, key, klen, hash);
    if (s) {
        if (old)
            *old = s->val;
        s->val = val;
        return 0;
    }
    if (old)
        *old = NULL;
    if ((m->used + 1) * 4 >= m->cap * 3) {
        int rc = grow(m);
        if (rc)
            return rc;
    }
    char *k = malloc(klen + 1);
    if (!k)
        return -ENOMEM;
    memcpy(k, key, klen);
    k[klen] = '\0';
    size_t mask = m->cap - 1;
    size_t i = hash & mask;
    while (m->slots[i].key && m->slots[i].key != TOMB)
        i = (i + 1) & mask;
    if (!m->slots[i].key)
        m->used++;
    m->slots[i] = (struct bt_hmap_slot){k, klen, hash, val};
    m->n++;
    return 0;
}

int bt_hmap_put(struct bt_hmap *m, const void *key, size_t klen, void *val, void **old)
{
    return bt_hmap_put_h(m, key, klen, bt_hash64(key, klen), val, old);
}

void *bt_hmap_del(struct bt_hmap *m, const void *key, size_t klen)
{
    struct bt_hmap_slot *s = find(m, key, klen, bt_hash64(key, klen));
    if (!s)
        return NULL;
    void *v = s->val;
    free(s->key);
    s->key = TOMB;
    s->val = NULL;
    m->n--;
    return v;
}

struct bt_hmap_slot *bt_hmap_next(const struct bt_hmap *m, size_t *pos)
{
    while (*pos < m->cap) {
        struct bt_hmap_slot *s = &m->slots[(*pos)++];
        if (s->key && s->key != TOMB)
            return s;
    }
    return NULL;
}
