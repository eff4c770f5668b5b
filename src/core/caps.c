/* caps: see caps.h. Uses the v3 (64-bit) capability ABI directly. */
#include "core/caps.h"

#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/log.h"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

struct capsets {
    uint64_t eff, prm, inh;
};

static int caps_read(struct capsets *s)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[2] = {{0}};

    if (syscall(SYS_capget, &h, d) < 0)
        return -errno;
    s->eff = (uint64_t)d[1].effective << 32 | d[0].effective;
    s->prm = (uint64_t)d[1].permitted << 32 | d[0].permitted;
    s->inh = (uint64_t)d[1].inheritable << 32 | d[0].inheritable;
    return 0;
}

static int caps_write(const struct capsets *s)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[2];

    d[0].effective = (uint32_t)s->eff;
    d[1].effective = (uint32_t)(s->eff >> 32);
    d[0].permitted = (uint32_t)s->prm;
    d[1].permitted = (uint32_t)(s->prm >> 32);
    d[0].inheritable = (uint32_t)s->inh;
    d[1].inheritable = (uint32_t)(s->inh >> 32);
    if (syscall(SYS_capset, &h, d) < 0)
        return -errno;
    return 0;
}

uint64_t bt_caps_keep_logs(void)
{
    return BT_CAP(CAP_DAC_READ_SEARCH);
}

int bt_caps_get(uint64_t *effective, uint64_t *permitted)
{
    struct capsets s;
    int rc = caps_read(&s);

    if (rc < 0)
        return rc;
    if (effective)
        *effective = s.eff;
    if (permitted)
        *permitted = s.prm;
    return 0;
}

bool bt_caps_have(int cap)
{
    uint64_t eff = 0;

    if (cap < 0 || cap > 63 || bt_caps_get(&eff, NULL) < 0)
        return false;
    return (eff & BT_CAP(cap)) != 0;
}

bool bt_caps_can_bpf(void)
{
    uint64_t eff = 0;

    if (bt_caps_get(&eff, NULL) < 0)
        return false;
    if (eff & BT_CAP(CAP_SYS_ADMIN))
        return true;
    return (eff & BT_CAP(CAP_BPF)) && (eff & BT_CAP(CAP_PERFMON));
}

int bt_caps_drop_except(uint64_t keep)
{
    struct capsets s;
    char before[24], after[24];
    int rc = caps_read(&s);

    if (rc < 0)
        goto out;
    /* The bounding set first: dropping from it needs CAP_SETPCAP, which goes next. */
    if (s.eff & BT_CAP(CAP_SETPCAP)) {
        for (int cap = 0; cap < 64; cap++) {
            if (keep & BT_CAP(cap))
                continue;
            if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 1)
                continue; /* unknown to this kernel, or already gone */
            if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
                rc = -errno;
                goto out;
            }
        }
    }
    /* Ambient capabilities would survive an execve; clearing fails with EINVAL before 4.3. */
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
        rc = -errno;
        goto out;
    }
    bt_caps_format(s.eff, before, sizeof(before));
    s.eff &= keep;
    s.prm &= keep;
    s.inh &= keep;
    rc = caps_write(&s);
    if (rc == 0)
        BT_INFO("caps", "capabilities dropped", "before=%s after=%s", before,
                bt_caps_format(s.eff, after, sizeof(after)));
out:
    if (rc < 0)
        BT_WARN("caps", "dropping capabilities failed", "err=%d", rc);
    return rc;
}

const char *bt_caps_format(uint64_t mask, char *out, unsigned outlen)
{
    snprintf(out, outlen, "%016llx", (unsigned long long)mask);
    return out;
}
