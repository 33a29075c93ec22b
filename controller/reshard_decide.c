/* reshard_decide: the driver's pure decisions (reshard.h): a store's
 * /health into a reshard_src, and whether a migration may move on. No I/O,
 * no locks: unit tested on their own (tests/unit/test_reshard.c). */
#include "reshard.h"

#include "json_whole.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <string.h>

static uint64_t reshard_decide_u64(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsNumber(v) && v->valuedouble > 0 ? (uint64_t)v->valuedouble
                                                   : 0;
}

int reshard_decide_parse_health(const char *body, size_t len, reshard_src *out)
{
    cJSON *root = json_whole_parse(body, len, NULL);
    const cJSON *m, *ph;
    uint32_t shard = out->shard;

    memset(out, 0, sizeof *out);
    out->shard = shard;
    if (root == NULL)
        return -1;
    out->answered = 1;
    out->keys = reshard_decide_u64(root, "keys");
    m = cJSON_GetObjectItemCaseSensitive(root, "migration");
    if (cJSON_IsObject(m)) {
        out->has_mig = 1;
        out->id = reshard_decide_u64(m, "id");
        ph = cJSON_GetObjectItemCaseSensitive(m, "phase");
        if (cJSON_IsString(ph))
            snprintf(out->phase, sizeof out->phase, "%s", ph->valuestring);
        out->source = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "source"));
        out->caught_up =
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "caught_up"));
        out->drained = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "drained"));
        out->position = reshard_decide_u64(m, "position");
        out->last_seq = reshard_decide_u64(m, "last_seq");
        out->fence_seq = reshard_decide_u64(m, "fence_seq");
        out->scanned = reshard_decide_u64(m, "scanned");
        out->sent = reshard_decide_u64(m, "sent");
        out->sent_bytes = reshard_decide_u64(m, "sent_bytes");
    }
    cJSON_Delete(root);
    return 0;
}

int reshard_decide_may_freeze(const reshard_src *s, size_t n, uint64_t id,
                       uint64_t max_lag)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!s[i].answered || !s[i].has_mig || s[i].id != id ||
            !s[i].caught_up || s[i].position > s[i].last_seq + max_lag ||
            (s[i].last_seq > s[i].position &&
             s[i].last_seq - s[i].position > max_lag))
            return 0;
    return 1;
}

int reshard_decide_may_switch(const reshard_src *s, size_t n, uint64_t id)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!s[i].answered || !s[i].has_mig || s[i].id != id ||
            !s[i].drained)
            return 0;
    return 1;
}

int reshard_decide_may_open(const reshard_src *s, size_t n, uint64_t id)
{
    size_t answered = 0;

    for (size_t i = 0; i < n; i++) {
        if (!s[i].answered)
            continue;
        answered++;
        if (!s[i].has_mig || s[i].id != id || strcmp(s[i].phase, "switch"))
            return 0;
    }
    return answered > 0;
}
