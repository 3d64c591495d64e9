// Swift's view of jansson. Function-like macros (JSON_INDENT, json_object_foreach, the
// reference-count helpers) are invisible to Swift, so the few Hyperion needs are functions here.
#ifndef HYPERION_CJANSSON_SHIM_H
#define HYPERION_CJANSSON_SHIM_H

#include <jansson.h>

static inline void hyperion_json_decref(json_t *json) { json_decref(json); }
static inline json_t *hyperion_json_incref(json_t *json) { return json_incref(json); }
static inline size_t hyperion_json_indent(size_t n) { return JSON_INDENT(n); }
static inline size_t hyperion_json_real_precision(size_t n) { return JSON_REAL_PRECISION(n); }

static inline json_type json_typeof_shim(const json_t *json) { return json_typeof(json); }

#endif
