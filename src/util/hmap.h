/*
 * hmap: an open-addressing hash map from byte-string keys to pointers.
 *
 * The map copies keys (owned by the map) and borrows values: freeing a value is the caller's
 * job, for example by walking the map with bt_hmap_next() before bt_hmap_free(). Not
 * thread-safe. Lookups with a precomputed hash avoid rehashing hot keys.
 */
#ifndef BT_UTIL_HMAP_H
#define BT_UTIL_HMAP_H

#include <stddef.h>
#include <stdint.h>

struct bt_hmap_slot {
    char *key; /* NULL: empty; BT_HMAP_TOMB: deleted */
    size_t klen;
    uint64_t hash;
    void *val;
};

struct bt_hmap {
    struct bt_hmap_slot *slots;
    size_t cap; /* power of two or 0 */
    size_t n;
    size_t used; /* n + tombstones */
};

/* 64-bit hash of bytes (FNV-1a folded with a final mix). */
uint64_t bt_hash64(const void *p, size_t n);

void bt_hmap_init(struct bt_hmap *m);
/* Frees the slots and keys (not the values). */
void bt_hmap_free(struct bt_hmap *m);
/* Returns the value for key, or NULL. */
void *bt_hmap_get(const struct bt_hmap *m, const void *key, size_t klen);
void *bt_hmap_get_h(const struct bt_hmap *m, const void *key, size_t klen, uint64_t hash);
/* Inserts or replaces. Returns 0 or -ENOMEM. *old (optional) gets the replaced value or NULL. */
int bt_hmap_put(struct bt_hmap *m, const void *key, size_t klen, void *val, void **old);
int bt_hmap_put_h(struct bt_hmap *m, const void *key, size_t klen, uint64_t hash, void *val,
                  void **old);
/* Removes key; returns its value or NULL. */
void *bt_hmap_del(struct bt_hmap *m, const void *key, size_t klen);
/* Iterates: start with *pos = 0; returns the next slot or NULL at the end. Deleting the
 * returned key during iteration is allowed. */
struct bt_hmap_slot *bt_hmap_next(const struct bt_hmap *m, size_t *pos);

#endif
