/*
 * caps: reads and drops Linux capabilities (raw capget/capset and prctl, no libcap).
 *
 * bpftail needs CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN) only to load and attach its BPF
 * programs; map updates and ring-buffer reads go through descriptors it already holds. After
 * start-up it keeps only what reading logs needs. Capabilities are per thread on Linux:
 * bt_caps_drop_except changes the calling thread (and threads created after it), so call it
 * before starting other threads. Masks are bit sets of (1ULL << CAP_x).
 */
#ifndef BT_CAPS_H
#define BT_CAPS_H

#include <stdbool.h>
#include <stdint.h>

#define BT_CAP(c) (1ULL << (c))

/* What a log shipper keeps: CAP_DAC_READ_SEARCH (read any log file, search any directory). */
uint64_t bt_caps_keep_logs(void);
/* True if cap is in the calling thread's effective set. */
bool bt_caps_have(int cap);
/* True if the effective set allows loading tracing BPF programs (CAP_SYS_ADMIN, or CAP_BPF
 * and CAP_PERFMON). */
bool bt_caps_can_bpf(void);
/* Effective and permitted sets of the calling thread. 0 or -errno. */
int bt_caps_get(uint64_t *effective, uint64_t *permitted);
/* Drops every capability not in keep from the bounding set (when CAP_SETPCAP allows), the
 * ambient set, and the effective, permitted and inheritable sets. Never adds one. 0 or -errno. */
int bt_caps_drop_except(uint64_t keep);
/* Formats a mask as hex (like /proc/self/status CapEff). Returns out. */
const char *bt_caps_format(uint64_t mask, char *out, unsigned outlen);

#endif
