// The RE2 side of bench/floor.c (see floor_re2.h).
#include "floor_re2.h"

#include <re2/re2.h>

struct floor_re2 {
    RE2 re;
    floor_re2() : re("(\\S+) \\S+ ([^\\[:]+)(?:\\[\\d+\\])?: (.*)") {}
};

extern "C" struct floor_re2 *floor_re2_new(void)
{
    floor_re2 *r = new floor_re2();
    if (!r->re.ok()) {
        delete r;
        return nullptr;
    }
    return r;
}

extern "C" bool floor_re2_match(struct floor_re2 *r, const char *line, size_t len,
                                struct floor_span *time, struct floor_span *app,
                                struct floor_span *msg)
{
    re2::StringPiece sub[4];
    if (!r->re.Match(re2::StringPiece(line, len), 0, len, RE2::ANCHOR_BOTH, sub, 4))
        return false;
    time->p = sub[1].data();
    time->len = sub[1].size();
    app->p = sub[2].data();
    app->len = sub[2].size();
    msg->p = sub[3].data();
    msg->len = sub[3].size();
    return true;
}
