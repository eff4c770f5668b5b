/*
 * logql: the part of LogQL that promtail's match stage accepts: a stream selector with label
 * matchers (=, !=, =~, !~; regexes anchored on the whole value as in Loki) followed by optional
 * line filters (|= contains, != does not contain, |~ matches, !~ does not match; regexes
 * unanchored). Strings are Go literals: "..." with escapes or `raw`. Parsers (| json ...),
 * label filters, line_format and "or" in filters are rejected with a message saying so.
 * A compiled query is immutable apart from the regex match data, so it serves one thread.
 */
#ifndef BT_LOGQL_H
#define BT_LOGQL_H

#include <stdbool.h>
#include <stddef.h>

struct bt_labels;
struct bt_logql;

/* Parses s. NULL on error with "offset N: what" in err. */
struct bt_logql *bt_logql_parse(const char *s, char *err, size_t errlen);
void bt_logql_free(struct bt_logql *q);
/* True if the label set satisfies every matcher (an absent label counts as ""). */
bool bt_logql_match_labels(struct bt_logql *q, const struct bt_labels *l);
/* True if the line passes every line filter (always true without filters). */
bool bt_logql_match_line(struct bt_logql *q, const char *line, size_t n);

#endif
