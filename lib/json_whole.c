#include "json_whole.h"

cJSON *json_whole_parse(const char *text, size_t len, const char **end)
{
    const char *e = NULL, *stop;
    cJSON *root;

    if (text == NULL) /* an empty answer */
        return NULL;
    stop = text + len;
    root = cJSON_ParseWithLengthOpts(text, len, &e, 0);

    if (root != NULL) {
        /* cJSON leaves e just after the value; JSON whitespace may follow. */
        while (e < stop && (*e == ' ' || *e == '\t' || *e == '\n' || *e == '\r'))
            e++;
        if (e < stop) {
            cJSON_Delete(root);
            root = NULL;
        }
    }
    if (end)
        *end = e;
    return root;
}
