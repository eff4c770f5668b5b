/*
 * docker_fifo: decodes the byte stream Docker writes to a logging plugin's FIFO into whole log
 * lines. Pure: the caller reads the FIFO (non-blocking, in the loop) and feeds what it read.
 *
 * The stream is frames of [u32 big-endian length][protobuf LogEntry] (proto/logentry.proto,
 * Docker's api/types/plugins/logdriver/entry.proto). Docker splits a line longer than 16 KiB
 * into chunks marked partial, sharing one partial id and the first chunk's timestamp, with
 * ordinals 1..n and last=true on the chunk that ended with a newline; output that ends without a
 * newline arrives as one partial chunk (last=false) that nothing ever completes. The decoder
 * joins the chunks of each stream (stdout and stderr separately, as they interleave) and emits
 * one line per Docker line, with the first chunk's timestamp:
 *   - when the chunk with last=true arrives;
 *   - when a chunk of another partial id, or a whole line, arrives on the same stream (the
 *     pending text is emitted first, as its own line, flagged unterminated);
 *   - on bt_dfifo_eof (after StopLogging Docker closes the FIFO), and on bt_dfifo_flush;
 *   - when the joined line reaches max_line: the text past it is dropped and counted
 *     ("line_too_long"), the line is emitted truncated (flagged).
 *
 * Bad input never loses the stream: a frame whose length is above max_frame, or whose payload
 * is not a LogEntry (bad protobuf, or empty: length 0; no line field is fine: an empty line), is
 * counted with its bytes ("frame_too_large", "bad_frame") and skipped. The decoder then
 * resynchronises by looking for the next plausible frame header (a length within bounds
 * followed by the source field of a LogEntry, or its time field when there is no source)
 * instead of trusting the length, so one corrupt length costs only the bytes up to the next
 * good frame. A frame cut off by EOF is counted ("truncated_frame"); the bytes it held are
 * searched for whole frames first, in case its length was the corrupt part.
 *
 * No allocation per frame: buffers grow to the largest frame/line seen and are reused.
 */
#ifndef BT_DOCKER_FIFO_H
#define BT_DOCKER_FIFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bt_buf;
struct bt_dfifo;

enum bt_dstream { BT_DSTREAM_STDOUT = 0, BT_DSTREAM_STDERR = 1, BT_DSTREAM_OTHER = 2 };

struct bt_dfifo_line {
    enum bt_dstream stream;
    int64_t ts_ns;     /* Docker's time_nano (the first chunk's for a joined line) */
    const char *line;  /* without the newline; borrowed for the call */
    size_t len;
    bool unterminated; /* ended by EOF/flush or another line, not by a newline */
    bool truncated;    /* cut at max_line */
    uint32_t chunks;   /* frames joined (1 for a whole line) */
};

/* A decoded line. */
typedef void (*bt_dfifo_line_fn)(void *ctx, const struct bt_dfifo_line *l);
/* Bytes rejected, with a reason: "frame_too_large", "bad_frame", "truncated_frame" (frames), or
 * "line_too_long" (bytes cut from a joined line). */
typedef void (*bt_dfifo_drop_fn)(void *ctx, const char *reason, uint64_t bytes);

struct bt_dfifo_config {
    size_t max_frame; /* largest frame accepted (0 = 1 MiB, like Loki's driver) */
    size_t max_line;  /* largest joined line (0 = 1 MiB) */
};

/* NULL with errno on failure. drop may be NULL. */
struct bt_dfifo *bt_dfifo_new(const struct bt_dfifo_config *cfg, bt_dfifo_line_fn line,
                              bt_dfifo_drop_fn drop, void *ctx);
void bt_dfifo_free(struct bt_dfifo *d);
/* Feeds bytes as read from the FIFO, split anywhere. Lines are emitted during the call. */
void bt_dfifo_feed(struct bt_dfifo *d, const void *buf, size_t len);
/* Emits every pending partial line (flagged unterminated). */
void bt_dfifo_flush(struct bt_dfifo *d);
/* End of stream: counts an incomplete frame and flushes. */
void bt_dfifo_eof(struct bt_dfifo *d);
/* Frames decoded so far. */
uint64_t bt_dfifo_frames(const struct bt_dfifo *d);
/* Bytes held (an incomplete frame, pending partial lines). */
size_t bt_dfifo_buffered(const struct bt_dfifo *d);

/* Appends one frame to out (for ReadLogs replies, tests and benchmarks). partial_id NULL = a
 * whole line without metadata. 0 or the buffer's error. */
int bt_dfifo_encode(struct bt_buf *out, enum bt_dstream stream, int64_t ts_ns, const char *line,
                    size_t len, bool partial, const char *partial_id, int32_t ordinal,
                    bool last);

#endif
