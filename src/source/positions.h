/*
 * positions: the saved read positions of file targets, in a YAML file promtail can read.
 *
 * A record says, for one path, the committed byte offset (what Loki accepted, never merely
 * what was read) and, when known, the file's identity: device, inode and a fingerprint (hash
 * and length of its first bytes), so a replaced file or a reused inode is not resumed at a
 * stale offset. The file is promtail's format, a single `positions:` map of quoted strings:
 *   positions:
 *     "/var/log/syslog": "81234"
 *     "bpftail-id:/var/log/syslog": "2049:1234:<fingerprint hash hex>:1024"
 * The identity rides in the same map under a prefixed key because promtail reads the file
 * strictly (an unknown top-level key would make it refuse the file); promtail ignores these
 * keys and its cleanup drops them. Loading accepts promtail's files, bpftail's, and
 * corrupt ones (valid records are salvaged, one warning is logged); it never fails the agent.
 * Saving is atomic: temp file in the same directory, fsync, rename, fsync of the directory,
 * mode 0600. The store owns its records; loop thread only.
 */
#ifndef BT_POSITIONS_H
#define BT_POSITIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest fingerprint: the first bytes of a file that identify its content. */
#define BT_FP_MAX 1024
/* Largest positions file read (bytes); past that the rest is ignored with a warning. */
#define BT_POSITIONS_MAX_FILE (64u << 20)

struct bt_position {
    uint64_t offset;
    bool has_identity; /* dev, ino and the fingerprint below are valid */
    uint64_t dev, ino;
    uint64_t fp_hash; /* bt_hash64 of the first fp_len bytes */
    uint32_t fp_len;
};

struct bt_positions;

/* Creates an empty store bound to filename (copied). readonly stores never write. NULL+errno. */
struct bt_positions *bt_positions_new(const char *filename, bool readonly);
void bt_positions_free(struct bt_positions *p);
/* Reads the file: a missing or empty file gives no records; a corrupt one keeps what can be
 * salvaged and logs one warning (*salvaged, if given, is set true). 0 or -ENOMEM. */
int bt_positions_load(struct bt_positions *p, bool *salvaged);
/* Record for path, borrowed until the store changes, or NULL. */
const struct bt_position *bt_positions_get(const struct bt_positions *p, const char *path);
/* Creates or replaces path's record (copied). 0 or -ENOMEM. */
int bt_positions_set(struct bt_positions *p, const char *path, const struct bt_position *pos);
/* A cursor record: a key that is not a path (promtail's "journal-<job>", "cursor-<id>") whose
 * value is an opaque string, saved verbatim. get returns NULL when the key has no string value
 * (absent, or a numeric offset); the pointer is borrowed until the store changes. set copies
 * value; -EINVAL for an empty value or a key starting with '/'. 0 or -errno. */
const char *bt_positions_get_string(const struct bt_positions *p, const char *key);
int bt_positions_set_string(struct bt_positions *p, const char *key, const char *value);
/* Removes path's record if present. */
void bt_positions_remove(struct bt_positions *p, const char *path);
/* Path (borrowed) of a record with this device and inode, or NULL; *pos gets the record. */
const char *bt_positions_find_inode(const struct bt_positions *p, uint64_t dev, uint64_t ino,
                                    const struct bt_position **pos);
size_t bt_positions_count(const struct bt_positions *p);
/* Iterates records: start with *it = 0; returns false at the end. Borrowed pointers. */
bool bt_positions_next(const struct bt_positions *p, size_t *it, const char **path,
                       const struct bt_position **pos);
/* Writes the file atomically now (no-op for readonly stores). 0 or -errno. */
int bt_positions_save(struct bt_positions *p);
const char *bt_positions_filename(const struct bt_positions *p);

#endif
