/*
 * relabel: Prometheus relabeling (relabel_configs) over a label set.
 *
 * Built once from a relabel_configs YAML list (struct bt_node); a bad rule is an error naming
 * file:line:col. Applying the rules changes a struct bt_labels in place, exactly as Prometheus'
 * relabel.Process does: regexes are fully anchored (^(?:re)$), $1, ${1}, $name and ${name}
 * references expand as Go's regexp.Expand, an empty result deletes the target label, and
 * hashmod is md5 of the joined values, last 8 bytes big-endian, mod modulus. Actions: replace,
 * keep, drop, keepequal, dropequal, hashmod, labelmap, labeldrop, labelkeep, lowercase,
 * uppercase. Removing the "__" labels afterwards is the caller's job (bt_labels_drop_reserved),
 * since the source still needs __path__ and friends. Loop thread only (regex match data and a
 * scratch buffer live in the struct).
 */
#ifndef BT_RELABEL_H
#define BT_RELABEL_H

#include <stddef.h>

struct bt_labels;
struct bt_node;
struct bt_relabel;

enum { BT_RELABEL_DROP = 0, BT_RELABEL_KEEP = 1 };

/* Compiles a relabel_configs list (NULL or an empty list: no rules, everything kept). NULL on
 * error with "file:line:col: message" in err. */
struct bt_relabel *bt_relabel_new(const struct bt_node *list, char *err, size_t errlen);
void bt_relabel_free(struct bt_relabel *r);
/* Applies every rule to l in order. Returns BT_RELABEL_KEEP or BT_RELABEL_DROP (l is then left
 * half-relabeled and should be discarded), or -ENOMEM. r NULL keeps l unchanged. */
int bt_relabel_apply(struct bt_relabel *r, struct bt_labels *l);
/* Number of rules (tests, /targets). */
size_t bt_relabel_count(const struct bt_relabel *r);

/* MD5 of n bytes into out[16] (RFC 1321). */
void bt_md5(const void *p, size_t n, unsigned char out[16]);

#endif
