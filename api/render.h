/* render: a stored value inside a JSON answer: "value" as a string when it is
 * valid UTF-8 without NUL bytes, else "value_base64". */
#ifndef KV_API_RENDER_H
#define KV_API_RENDER_H

#include <cjson/cJSON.h>
#include <stddef.h>

int render_is_utf8(const char *s, size_t n);
void render_value(cJSON *obj, const char *val, size_t len);

#endif
