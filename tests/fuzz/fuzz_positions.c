/*
 * The positions file reader (source/positions.c): the input is the file's content, loaded into
 * a read-only store (which salvages what it can of a corrupt file); every record read back
 * must be found again by its path.
 */
#include <stdio.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "source/positions.h"

static char path[256];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_quiet();
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(path, sizeof(path), "%s/bt-fuzz-positions-%d.yaml", dir, (int)getpid());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    struct bt_positions *p = bt_positions_new(path, true);
    if (!p)
        abort();
    bool salvaged = false;
    if (bt_positions_load(p, &salvaged) != 0)
        abort();
    size_t it = 0, n = 0;
    const char *k;
    const struct bt_position *pos;
    while (bt_positions_next(p, &it, &k, &pos)) {
        n++;
        if (!k || (!bt_positions_get(p, k) && !bt_positions_get_string(p, k)))
            abort();
    }
    if (n != bt_positions_count(p))
        abort();
    bt_positions_free(p);
    unlink(path);
    return 0;
}
