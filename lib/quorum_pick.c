/* quorum_pick: see quorum_pick.h. */
#include "quorum_pick.h"

int quorum_pick_winner(const quorum_pick_answer *a, size_t n)
{
    int win = -1;

    for (size_t i = 0; i < n; i++) {
        if (!a[i].candidate)
            continue;
        if (win < 0 || a[i].version > a[win].version ||
            (a[i].version == a[win].version && a[i].value && !a[win].value))
            win = (int)i;
    }
    return win;
}

bool quorum_pick_is_stale(const quorum_pick_answer *a,
                          const quorum_pick_answer *w)
{
    return a->candidate && w->version > 0 && a->version < w->version;
}
