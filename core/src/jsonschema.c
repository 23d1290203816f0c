/*
 * jsonschema.c - compile and check the JSON Schema subset of jsonschema.h.
 *
 * A schema is compiled once, when a plugin registers, into a tree of nodes: one node per schema
 * object, with the keywords already type-checked and the regexes already compiled. Validation
 * then walks the node tree beside the value and stops at the first violation, because the
 * message is for a human fixing one argument at a time, and one precise sentence beats a list.
 *
 * The parsed schema document stays alive inside the compiled schema: nodes borrow their
 * property names, enum lists, bounds and defaults from it instead of copying them, and
 * jsonschema_describe hands out a copy of it. Nothing is mutated after compile, which is what
 * makes concurrent validation safe without a lock.
 */
#include "jsonschema.h"

#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define JS_MAX_DEPTH 64
#define JS_PATH_MAX  256

/* Type bits; a node with types == 0 accepts any type. */
#define JS_T_OBJECT  0x01u
#define JS_T_ARRAY   0x02u
#define JS_T_STRING  0x04u
#define JS_T_INTEGER 0x08u
#define JS_T_NUMBER  0x10u
#define JS_T_BOOLEAN 0x20u
#define JS_T_NULL    0x40u

enum { JS_FORMAT_NONE, JS_FORMAT_DATE, JS_FORMAT_DATE_TIME };

static const struct {
    const char *name;
    unsigned bit;
} type_names[] = {
    {"object", JS_T_OBJECT},   {"array", JS_T_ARRAY},   {"string", JS_T_STRING},
    {"integer", JS_T_INTEGER}, {"number", JS_T_NUMBER}, {"boolean", JS_T_BOOLEAN},
    {"null", JS_T_NULL},
};

static const char *const known_keywords[] = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "enum",
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
    "default",
    "description",
    "title",
    "examples",
};

typedef struct js_node js_node;

typedef struct js_prop {
    const char *name; /* borrowed from the schema document */
    js_node *schema;
} js_prop;

struct js_node {
    unsigned types;
    js_prop *props;
    size_t n_props;
    bool has_properties;
    const char **required; /* borrowed strings */
    size_t n_required;
    bool additional; /* additionalProperties; true unless the schema says false */
    const json_t *enum_values;
    const json_t *const_value;
    const json_t *default_value;
    const json_t *minimum;
    const json_t *maximum;
    const json_t *ex_minimum;
    const json_t *ex_maximum;
    int64_t min_length, max_length; /* -1: unset */
    int64_t min_items, max_items;   /* -1: unset */
    bool has_pattern;
    regex_t pattern;
    const char *pattern_src;
    int format;
    js_node *items;
    bool unique_items;
};

struct jsonschema {
    json_t *doc;
    js_node *root;
};

/* jansson's iteration API takes a non-const json_t although it only reads. */
static json_t *unconst(const json_t *j)
{
    return (json_t *)(uintptr_t)j;
}

/* ============================================================================================
 * Paths: "args.league", "args.seasons[2]", "schema.properties.days.minimum"
 * ========================================================================================== */

typedef struct js_path {
    char buf[JS_PATH_MAX];
    size_t len;
} js_path;

static void path_init(js_path *p, const char *root)
{
    p->len = util_strlcpy(p->buf, root, sizeof p->buf);
    if (p->len >= sizeof p->buf) {
        p->len = sizeof p->buf - 1;
    }
}

/* Append a string, truncating quietly: a path that does not fit is still a useful prefix. */
static void path_add(js_path *p, const char *s)
{
    while (*s && p->len < sizeof p->buf - 1) {
        p->buf[p->len++] = *s++;
    }
    p->buf[p->len] = '\0';
}

static bool is_plain_key(const char *key)
{
    if (!*key) {
        return false;
    }
    for (const char *c = key; *c; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '-')) {
            return false;
        }
    }
    return true;
}

/* Push ".key" (or ["odd key"] for keys that would read badly); returns the length to pop to. */
static size_t path_push_key(js_path *p, const char *key)
{
    size_t old = p->len;
    if (is_plain_key(key)) {
        path_add(p, ".");
        path_add(p, key);
    } else {
        path_add(p, "[\"");
        path_add(p, key);
        path_add(p, "\"]");
    }
    return old;
}

/* Push a literal segment such as ".properties". */
static size_t path_push(js_path *p, const char *segment)
{
    size_t old = p->len;
    path_add(p, segment);
    return old;
}

static size_t path_push_index(js_path *p, size_t index)
{
    char seg[32];
    snprintf(seg, sizeof seg, "[%zu]", index);
    return path_push(p, seg);
}

static void path_pop(js_path *p, size_t old)
{
    p->len = old;
    p->buf[old] = '\0';
}

/* ============================================================================================
 * Describing values in messages
 * ========================================================================================== */

/* Numbers as a human writes them: 5, 2.5, 0.1 (not 0.10000000000000001). */
static void format_number(const json_t *v, char *buf, size_t len)
{
    if (json_is_integer(v)) {
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
        return;
    }
    double d = json_real_value(v);
    snprintf(buf, len, "%.15g", d);
    if (strtod(buf, NULL) != d) {
        snprintf(buf, len, "%.17g", d);
    }
    /* 3.0 is not the integer 3 to a schema, so do not print it as "3". */
    if (!strpbrk(buf, ".eEn") && strlen(buf) + 3 <= len) {
        memcpy(buf + strlen(buf), ".0", 3);
    }
}

/* A string quoted for a message: at most 60 bytes of it, control characters shown as '?',
 * never cut inside a UTF-8 sequence. buf should hold 72 bytes or more. */
static void format_string(const char *s, char *buf, size_t len)
{
    size_t o = 0, i = 0, limit;
    if (len < 8) {
        if (len) {
            buf[0] = '\0';
        }
        return;
    }
    limit = len - 6 < 60 ? len - 6 : 60;
    buf[o++] = '\'';
    for (; s[i] && i < limit; i++) {
        buf[o++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    }
    if (s[i]) {
        while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80) {
            i--;
            o--;
        }
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '\'';
    buf[o] = '\0';
}

/* "integer 5", "number 2.5", "string 'abc'", "boolean true", "null", "an object", "an array" */
static void describe_value(const json_t *v, char *buf, size_t len)
{
    char tmp[80]; /* leaves room for the "string " prefix in the callers' 100-byte buffers */
    switch (json_typeof(v)) {
    case JSON_OBJECT: snprintf(buf, len, "an object"); break;
    case JSON_ARRAY: snprintf(buf, len, "an array"); break;
    case JSON_STRING:
        format_string(json_string_value(v), tmp, sizeof tmp);
        snprintf(buf, len, "string %s", tmp);
        break;
    case JSON_INTEGER:
        format_number(v, tmp, sizeof tmp);
        snprintf(buf, len, "integer %s", tmp);
        break;
    case JSON_REAL:
        format_number(v, tmp, sizeof tmp);
        snprintf(buf, len, "number %s", tmp);
        break;
    case JSON_TRUE: snprintf(buf, len, "boolean true"); break;
    case JSON_FALSE: snprintf(buf, len, "boolean false"); break;
    case JSON_NULL:
    default: snprintf(buf, len, "null"); break;
    }
}

/* A value in a list of allowed values: 'poisson', 5, true, null; objects as compact JSON. */
static void format_literal(const json_t *v, char *buf, size_t len)
{
    if (json_is_string(v)) {
        format_string(json_string_value(v), buf, len);
    } else if (json_is_number(v)) {
        format_number(v, buf, len);
    } else if (json_is_boolean(v) || json_is_null(v)) {
        snprintf(buf, len, "%s", json_is_null(v) ? "null" : (json_is_true(v) ? "true" : "false"));
    } else {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        format_string(s ? s : "?", buf, len);
        free(s);
    }
}

/* "a string or null" */
static void describe_types(unsigned types, char *buf, size_t len)
{
    size_t o = 0;
    unsigned seen = 0, total = 0;
    for (size_t i = 0; i < BP_ARRAY_LEN(type_names); i++) {
        if (types & type_names[i].bit) {
            total++;
        }
    }
    buf[0] = '\0';
    for (size_t i = 0; i < BP_ARRAY_LEN(type_names) && o < len; i++) {
        if (!(types & type_names[i].bit)) {
            continue;
        }
        const char *name = type_names[i].name;
        const char *article = (name[0] == 'a' || name[0] == 'i' || name[0] == 'o') ? "an " : "a ";
        if (types & type_names[i].bit & JS_T_NULL) {
            article = "";
        }
        const char *sep = seen == 0 ? "" : (seen + 1 == total ? " or " : ", ");
        int w = snprintf(buf + o, len - o, "%s%s%s", sep, article, name);
        if (w < 0) {
            break;
        }
        o += (size_t)w;
        seen++;
    }
}

/* ============================================================================================
 * Compiling
 * ========================================================================================== */

static void node_free(js_node *n)
{
    if (!n) {
        return;
    }
    for (size_t i = 0; i < n->n_props; i++) {
        node_free(n->props[i].schema);
    }
    free(n->props);
    free(n->required);
    if (n->has_pattern) {
        regfree(&n->pattern);
    }
    node_free(n->items);
    free(n);
}

static int validate_node(const js_node *n, const json_t *v, js_path *path, bp_error *err);

static int compile_node(const json_t *j, js_path *path, int depth, js_node **out, bp_error *err);

static int bad(bp_error *err, const js_path *path, const char *keyword, const char *what)
{
    return bp_err(err, BP_E_INVAL, "%s.%s: %s", path->buf, keyword, what);
}

/* A non-negative integer keyword (minLength, maxItems ...). */
static int get_count(const json_t *v, const js_path *path, const char *kw, int64_t *out,
                     bp_error *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        return bad(err, path, kw, "must be a non-negative integer");
    }
    *out = (int64_t)json_integer_value(v);
    return BP_OK;
}

static int compile_type(const json_t *v, const js_path *path, unsigned *out, bp_error *err)
{
    const json_t *names[16];
    size_t n = 0;
    *out = 0;
    if (json_is_string(v)) {
        names[n++] = v;
    } else if (json_is_array(v) && json_array_size(v) > 0 &&
               json_array_size(v) <= BP_ARRAY_LEN(names)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            names[n++] = json_array_get(v, i);
        }
    } else {
        return bad(err, path, "type", "must be a type name or a non-empty array of type names");
    }
    for (size_t i = 0; i < n; i++) {
        const char *name = json_string_value(names[i]);
        unsigned bit = 0;
        for (size_t k = 0; name && k < BP_ARRAY_LEN(type_names); k++) {
            if (strcmp(name, type_names[k].name) == 0) {
                bit = type_names[k].bit;
            }
        }
        if (!bit) {
            char lit[80];
            format_literal(names[i], lit, sizeof lit);
            return bp_err(err, BP_E_INVAL,
                          "%s.type: unknown type %s (expected object, array, string, integer, "
                          "number, boolean or null)",
                          path->buf, lit);
        }
        if (*out & bit) {
            return bp_err(err, BP_E_INVAL, "%s.type: '%s' is listed twice", path->buf, name);
        }
        *out |= bit;
    }
    return BP_OK;
}

static int compile_properties(js_node *n, const json_t *v, js_path *path, int depth, bp_error *err)
{
    const char *key;
    json_t *sub;
    size_t i = 0;
    int rc;
    if (!json_is_object(v)) {
        return bad(err, path, "properties", "must be an object of name -> schema");
    }
    n->has_properties = true;
    n->props = calloc(json_object_size(v) ? json_object_size(v) : 1, sizeof *n->props);
    if (!n->props) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    json_object_foreach(unconst(v), key, sub)
    {
        size_t old = path_push(path, ".properties");
        path_push_key(path, key);
        n->props[i].name = key;
        rc = compile_node(sub, path, depth + 1, &n->props[i].schema, err);
        path_pop(path, old);
        if (rc != BP_OK) {
            return rc;
        }
        n->n_props = ++i;
    }
    return BP_OK;
}

static int compile_required(js_node *n, const json_t *v, const js_path *path, bp_error *err)
{
    if (!json_is_array(v)) {
        return bad(err, path, "required", "must be an array of property names");
    }
    n->required = calloc(json_array_size(v) ? json_array_size(v) : 1, sizeof *n->required);
    if (!n->required) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        const char *name = json_string_value(json_array_get(v, i));
        if (!name) {
            return bp_err(err, BP_E_INVAL, "%s.required[%zu]: must be a property name (string)",
                          path->buf, i);
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(n->required[k], name) == 0) {
                return bp_err(err, BP_E_INVAL, "%s.required: '%s' is listed twice", path->buf,
                              name);
            }
        }
        n->required[n->n_required++] = name;
    }
    return BP_OK;
}

static int compile_pattern(js_node *n, const json_t *v, const js_path *path, bp_error *err)
{
    char lit[80];
    char why[160];
    int rc;
    if (!json_is_string(v)) {
        return bad(err, path, "pattern", "must be a string (a POSIX extended regex)");
    }
    n->pattern_src = json_string_value(v);
    rc = regcomp(&n->pattern, n->pattern_src, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        regerror(rc, &n->pattern, why, sizeof why);
        format_string(n->pattern_src, lit, sizeof lit);
        return bp_err(err, BP_E_INVAL, "%s.pattern: %s is not a valid POSIX extended regex: %s",
                      path->buf, lit, why);
    }
    n->has_pattern = true;
    return BP_OK;
}

/* One keyword of a schema object. */
static int compile_keyword(js_node *n, const char *kw, const json_t *v, js_path *path, int depth,
                           bp_error *err)
{
    if (strcmp(kw, "type") == 0) {
        return compile_type(v, path, &n->types, err);
    }
    if (strcmp(kw, "properties") == 0) {
        return compile_properties(n, v, path, depth, err);
    }
    if (strcmp(kw, "required") == 0) {
        return compile_required(n, v, path, err);
    }
    if (strcmp(kw, "additionalProperties") == 0) {
        if (!json_is_boolean(v)) {
            return bad(err, path, kw, "must be true or false (schemas are not supported here)");
        }
        n->additional = json_is_true(v);
        return BP_OK;
    }
    if (strcmp(kw, "enum") == 0) {
        if (!json_is_array(v) || json_array_size(v) == 0) {
            return bad(err, path, kw, "must be a non-empty array of allowed values");
        }
        n->enum_values = v;
        return BP_OK;
    }
    if (strcmp(kw, "const") == 0) {
        n->const_value = v;
        return BP_OK;
    }
    if (strcmp(kw, "minimum") == 0 || strcmp(kw, "maximum") == 0 ||
        strcmp(kw, "exclusiveMinimum") == 0 || strcmp(kw, "exclusiveMaximum") == 0) {
        if (json_is_boolean(v)) {
            return bad(err, path, kw,
                       "must be a number (the boolean form of draft 4 is not supported)");
        }
        if (!json_is_number(v)) {
            return bad(err, path, kw, "must be a number");
        }
        if (strcmp(kw, "minimum") == 0) {
            n->minimum = v;
        } else if (strcmp(kw, "maximum") == 0) {
            n->maximum = v;
        } else if (strcmp(kw, "exclusiveMinimum") == 0) {
            n->ex_minimum = v;
        } else {
            n->ex_maximum = v;
        }
        return BP_OK;
    }
    if (strcmp(kw, "minLength") == 0) {
        return get_count(v, path, kw, &n->min_length, err);
    }
    if (strcmp(kw, "maxLength") == 0) {
        return get_count(v, path, kw, &n->max_length, err);
    }
    if (strcmp(kw, "minItems") == 0) {
        return get_count(v, path, kw, &n->min_items, err);
    }
    if (strcmp(kw, "maxItems") == 0) {
        return get_count(v, path, kw, &n->max_items, err);
    }
    if (strcmp(kw, "pattern") == 0) {
        return compile_pattern(n, v, path, err);
    }
    if (strcmp(kw, "format") == 0) {
        const char *f = json_string_value(v);
        if (f && strcmp(f, "date") == 0) {
            n->format = JS_FORMAT_DATE;
        } else if (f && strcmp(f, "date-time") == 0) {
            n->format = JS_FORMAT_DATE_TIME;
        } else {
            char lit[80];
            format_literal(v, lit, sizeof lit);
            return bp_err(err, BP_E_INVAL,
                          "%s.format: %s is not supported (supported: 'date', 'date-time')",
                          path->buf, lit);
        }
        return BP_OK;
    }
    if (strcmp(kw, "items") == 0) {
        size_t old;
        int rc;
        if (json_is_array(v)) {
            return bad(err, path, kw,
                       "the tuple form (an array of schemas) is not supported; give one schema");
        }
        old = path_push(path, ".items");
        rc = compile_node(v, path, depth + 1, &n->items, err);
        path_pop(path, old);
        return rc;
    }
    if (strcmp(kw, "uniqueItems") == 0) {
        if (!json_is_boolean(v)) {
            return bad(err, path, kw, "must be true or false");
        }
        n->unique_items = json_is_true(v);
        return BP_OK;
    }
    if (strcmp(kw, "default") == 0) {
        n->default_value = v;
        return BP_OK;
    }
    if (strcmp(kw, "description") == 0 || strcmp(kw, "title") == 0) {
        return json_is_string(v) ? BP_OK : bad(err, path, kw, "must be a string");
    }
    if (strcmp(kw, "examples") == 0) {
        return json_is_array(v) ? BP_OK : bad(err, path, kw, "must be an array");
    }
    const char *hint = util_closest(kw, known_keywords, BP_ARRAY_LEN(known_keywords));
    if (hint) {
        return bp_err(err, BP_E_INVAL, "%s: unknown keyword '%s' (did you mean '%s'?)", path->buf,
                      kw, hint);
    }
    return bp_err(err, BP_E_INVAL, "%s: unknown keyword '%s' (not in betpipe's schema subset)",
                  path->buf, kw);
}

/* Keyword combinations that can never be satisfied, or that say something the author did not
 * mean: these are bugs in the plugin, better found when it registers. */
static int check_node(const js_node *n, const js_path *path, bp_error *err)
{
    if (n->min_length >= 0 && n->max_length >= 0 && n->min_length > n->max_length) {
        return bad(err, path, "minLength", "is greater than maxLength");
    }
    if (n->min_items >= 0 && n->max_items >= 0 && n->min_items > n->max_items) {
        return bad(err, path, "minItems", "is greater than maxItems");
    }
    if (n->minimum && n->maximum && json_number_value(n->minimum) > json_number_value(n->maximum)) {
        return bad(err, path, "minimum", "is greater than maximum");
    }
    if (n->has_properties) {
        for (size_t i = 0; i < n->n_required; i++) {
            bool found = false;
            for (size_t k = 0; k < n->n_props && !found; k++) {
                found = strcmp(n->props[k].name, n->required[i]) == 0;
            }
            if (!found) {
                return bp_err(err, BP_E_INVAL, "%s.required: '%s' is not declared in properties",
                              path->buf, n->required[i]);
            }
        }
    }
    if (n->default_value) {
        /* A default that fails its own schema would turn every job that omits the field into a
         * job that fails validation for a reason its caller cannot see. */
        js_path dpath;
        bp_error derr;
        path_init(&dpath, path->buf);
        path_push(&dpath, ".default");
        if (validate_node(n, n->default_value, &dpath, &derr) != BP_OK) {
            return bp_err(err, BP_E_INVAL, "%s (the default does not satisfy its own schema)",
                          derr.msg);
        }
    }
    return BP_OK;
}

static int compile_node(const json_t *j, js_path *path, int depth, js_node **out, bp_error *err)
{
    js_node *n = NULL;
    const char *kw;
    json_t *v;
    int rc;
    *out = NULL;
    if (depth > JS_MAX_DEPTH) {
        return bp_err(err, BP_E_INVAL, "%s: schema nested more than %d levels deep", path->buf,
                      JS_MAX_DEPTH);
    }
    if (!json_is_object(j)) {
        return bp_err(err, BP_E_INVAL, "%s: a schema must be a JSON object", path->buf);
    }
    n = calloc(1, sizeof *n);
    if (!n) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    n->additional = true;
    n->min_length = n->max_length = n->min_items = n->max_items = -1;
    json_object_foreach(unconst(j), kw, v)
    {
        rc = compile_keyword(n, kw, v, path, depth, err);
        if (rc != BP_OK) {
            goto fail;
        }
    }
    rc = check_node(n, path, err);
    if (rc != BP_OK) {
        goto fail;
    }
    *out = n;
    return BP_OK;
fail:
    node_free(n);
    return rc;
}

static const char *const empty_object_schema = "{\"type\": \"object\", "
                                               "\"additionalProperties\": false}";

int jsonschema_compile(const char *schema_text, jsonschema **out, bp_error *err)
{
    jsonschema *s = NULL;
    json_error_t jerr;
    js_path path;
    int rc;
    *out = NULL;
    s = calloc(1, sizeof *s);
    if (!s) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    s->doc =
        json_loads(schema_text ? schema_text : empty_object_schema, JSON_REJECT_DUPLICATES, &jerr);
    if (!s->doc) {
        rc = bp_err(err, BP_E_INVAL, "schema: not valid JSON (line %d, column %d): %s", jerr.line,
                    jerr.column, jerr.text);
        goto fail;
    }
    path_init(&path, "schema");
    rc = compile_node(s->doc, &path, 0, &s->root, err);
    if (rc != BP_OK) {
        goto fail;
    }
    *out = s;
    return BP_OK;
fail:
    jsonschema_free(s);
    return rc;
}

void jsonschema_free(jsonschema *s)
{
    if (!s) {
        return;
    }
    node_free(s->root);
    json_decref(s->doc);
    free(s);
}

json_t *jsonschema_describe(const jsonschema *s)
{
    return s ? json_deep_copy(s->doc) : NULL;
}

/* ============================================================================================
 * Validating
 * ========================================================================================== */

static unsigned type_bit(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return JS_T_OBJECT;
    case JSON_ARRAY: return JS_T_ARRAY;
    case JSON_STRING: return JS_T_STRING;
    case JSON_INTEGER: return JS_T_INTEGER;
    case JSON_REAL: return JS_T_NUMBER;
    case JSON_TRUE:
    case JSON_FALSE: return JS_T_BOOLEAN;
    case JSON_NULL:
    default: return JS_T_NULL;
    }
}

/* <0, 0, >0 like strcmp. Two integers compare exactly; anything else as doubles. */
static int num_cmp(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return x < y ? -1 : x > y;
    }
    double x = json_number_value(a), y = json_number_value(b);
    return x < y ? -1 : x > y;
}

/* Unicode code points in a valid UTF-8 string of len bytes (jansson guarantees validity). */
static int64_t utf8_length(const char *s, size_t len)
{
    int64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    }
    return n;
}

static bool is_date(const char *s)
{
    int64_t ms;
    if (strlen(s) != 10) {
        return false;
    }
    for (int i = 0; i < 10; i++) {
        bool dash = i == 4 || i == 7;
        if (dash ? s[i] != '-' : (s[i] < '0' || s[i] > '9')) {
            return false;
        }
    }
    return util_parse_iso8601(s, &ms, NULL) == BP_OK;
}

static bool is_date_time(const char *s)
{
    int64_t ms;
    /* A date-time has a time part: "2026-11-22" alone is a date. */
    if (strlen(s) < 16 || (s[10] != 'T' && s[10] != 't' && s[10] != ' ')) {
        return false;
    }
    return util_parse_iso8601(s, &ms, NULL) == BP_OK;
}

static BP_PRINTF(3, 4) int fail_at(bp_error *err, const js_path *path, const char *fmt, ...)
{
    char msg[BP_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return bp_err(err, BP_E_INVAL, "%s: %s", path->buf, msg);
}

static int validate_string(const js_node *n, const json_t *v, js_path *path, bp_error *err)
{
    const char *s = json_string_value(v);
    size_t bytes = json_string_length(v);
    char lit[80], num[32];
    format_string(s, lit, sizeof lit);
    if (n->min_length >= 0 || n->max_length >= 0) {
        int64_t len = utf8_length(s, bytes);
        if (n->min_length >= 0 && len < n->min_length) {
            snprintf(num, sizeof num, "%lld", (long long)n->min_length);
            return fail_at(err, path, "%s is shorter than %s characters (minLength)", lit, num);
        }
        if (n->max_length >= 0 && len > n->max_length) {
            snprintf(num, sizeof num, "%lld", (long long)n->max_length);
            return fail_at(err, path, "%s is longer than %s characters (maxLength)", lit, num);
        }
    }
    if (n->has_pattern) {
        char pat[80];
        format_string(n->pattern_src, pat, sizeof pat);
        if (strlen(s) != bytes) {
            return fail_at(err, path, "%s contains a NUL character and cannot match pattern %s",
                           lit, pat);
        }
        if (regexec(&n->pattern, s, 0, NULL, 0) != 0) {
            return fail_at(err, path, "%s does not match pattern %s", lit, pat);
        }
    }
    if (n->format == JS_FORMAT_DATE && !is_date(s)) {
        return fail_at(err, path, "%s is not a valid date (expected YYYY-MM-DD)", lit);
    }
    if (n->format == JS_FORMAT_DATE_TIME && !is_date_time(s)) {
        return fail_at(err, path,
                       "%s is not a valid date-time (expected ISO 8601 such as "
                       "2026-11-22T10:15:00Z)",
                       lit);
    }
    return BP_OK;
}

static int validate_number(const js_node *n, const json_t *v, const js_path *path, bp_error *err)
{
    char got[40], lim[40];
    format_number(v, got, sizeof got);
    if (n->minimum && num_cmp(v, n->minimum) < 0) {
        format_number(n->minimum, lim, sizeof lim);
        return fail_at(err, path, "%s is less than the minimum %s", got, lim);
    }
    if (n->maximum && num_cmp(v, n->maximum) > 0) {
        format_number(n->maximum, lim, sizeof lim);
        return fail_at(err, path, "%s is greater than the maximum %s", got, lim);
    }
    if (n->ex_minimum && num_cmp(v, n->ex_minimum) <= 0) {
        format_number(n->ex_minimum, lim, sizeof lim);
        return fail_at(err, path, "%s must be greater than %s (exclusiveMinimum)", got, lim);
    }
    if (n->ex_maximum && num_cmp(v, n->ex_maximum) >= 0) {
        format_number(n->ex_maximum, lim, sizeof lim);
        return fail_at(err, path, "%s must be less than %s (exclusiveMaximum)", got, lim);
    }
    return BP_OK;
}

static const js_node *find_prop(const js_node *n, const char *name)
{
    for (size_t i = 0; i < n->n_props; i++) {
        if (strcmp(n->props[i].name, name) == 0) {
            return n->props[i].schema;
        }
    }
    return NULL;
}

static int validate_object(const js_node *n, const json_t *v, js_path *path, bp_error *err)
{
    const char *key;
    json_t *sub;
    /* Unknown fields first: "leage" next to a missing "league" is a typo, and pointing at the
     * typo helps more than complaining about the field it hides. */
    if (!n->additional) {
        json_object_foreach(unconst(v), key, sub)
        {
            if (find_prop(n, key)) {
                continue;
            }
            const char *names[64] = {0};
            size_t k = 0;
            for (; k < n->n_props && k < BP_ARRAY_LEN(names); k++) {
                names[k] = n->props[k].name;
            }
            const char *hint = util_closest(key, names, k);
            char lit[80];
            format_string(key, lit, sizeof lit);
            if (hint) {
                return bp_err(err, BP_E_INVAL, "%s: unknown field %s (did you mean '%s'?)",
                              path->buf, lit, hint);
            }
            if (n->n_props == 0) {
                return bp_err(err, BP_E_INVAL, "%s: unknown field %s (no fields are accepted)",
                              path->buf, lit);
            }
            return bp_err(err, BP_E_INVAL, "%s: unknown field %s", path->buf, lit);
        }
    }
    for (size_t i = 0; i < n->n_required; i++) {
        if (!json_object_get(v, n->required[i])) {
            return bp_err(err, BP_E_INVAL, "%s: missing required field '%s'", path->buf,
                          n->required[i]);
        }
    }
    for (size_t i = 0; i < n->n_props; i++) {
        const json_t *field = json_object_get(v, n->props[i].name);
        if (field) {
            size_t old = path_push_key(path, n->props[i].name);
            int rc = validate_node(n->props[i].schema, field, path, err);
            path_pop(path, old);
            if (rc != BP_OK) {
                return rc;
            }
        }
    }
    return BP_OK;
}

static int validate_array(const js_node *n, const json_t *v, js_path *path, bp_error *err)
{
    size_t count = json_array_size(v);
    char a[32], b[32];
    snprintf(a, sizeof a, "%zu", count);
    if (n->min_items >= 0 && (int64_t)count < n->min_items) {
        snprintf(b, sizeof b, "%lld", (long long)n->min_items);
        return fail_at(err, path, "has %s items, at least %s required (minItems)", a, b);
    }
    if (n->max_items >= 0 && (int64_t)count > n->max_items) {
        snprintf(b, sizeof b, "%lld", (long long)n->max_items);
        return fail_at(err, path, "has %s items, at most %s allowed (maxItems)", a, b);
    }
    if (n->unique_items) {
        /* Quadratic, but args arrays are short (a handful of seasons or leagues). */
        for (size_t i = 1; i < count; i++) {
            for (size_t k = 0; k < i; k++) {
                if (json_equal(json_array_get(v, i), json_array_get(v, k))) {
                    snprintf(a, sizeof a, "%zu", k);
                    snprintf(b, sizeof b, "%zu", i);
                    return fail_at(err, path, "items %s and %s are equal (uniqueItems)", a, b);
                }
            }
        }
    }
    if (n->items) {
        for (size_t i = 0; i < count; i++) {
            size_t old = path_push_index(path, i);
            int rc = validate_node(n->items, json_array_get(v, i), path, err);
            path_pop(path, old);
            if (rc != BP_OK) {
                return rc;
            }
        }
    }
    return BP_OK;
}

static int validate_enum(const js_node *n, const json_t *v, const js_path *path, bp_error *err)
{
    char got[96], list[300];
    size_t o = 0, count = json_array_size(n->enum_values);
    for (size_t i = 0; i < count; i++) {
        if (json_equal(v, json_array_get(n->enum_values, i))) {
            return BP_OK;
        }
    }
    list[0] = '\0';
    for (size_t i = 0; i < count && o < sizeof list - 8; i++) {
        char lit[80];
        format_literal(json_array_get(n->enum_values, i), lit, sizeof lit);
        int w = snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", lit);
        if (w < 0 || (size_t)w >= sizeof list - o) {
            snprintf(list + o, sizeof list - o, ", ...");
            break;
        }
        o += (size_t)w;
    }
    if (json_is_string(v) || json_is_number(v)) {
        format_literal(v, got, sizeof got);
    } else {
        describe_value(v, got, sizeof got);
    }
    return fail_at(err, path, "%s is not one of %s", got, list);
}

static int validate_node(const js_node *n, const json_t *v, js_path *path, bp_error *err)
{
    unsigned bit = type_bit(v);
    if (n->types && !(n->types & bit) && !(bit == JS_T_INTEGER && (n->types & JS_T_NUMBER))) {
        char want[120], got[100];
        describe_types(n->types, want, sizeof want);
        describe_value(v, got, sizeof got);
        return bp_err(err, BP_E_INVAL, "%s: expected %s, got %s", path->buf, want, got);
    }
    if (n->const_value && !json_equal(v, n->const_value)) {
        char want[96];
        format_literal(n->const_value, want, sizeof want);
        return bp_err(err, BP_E_INVAL, "%s: must be %s", path->buf, want);
    }
    if (n->enum_values) {
        int rc = validate_enum(n, v, path, err);
        if (rc != BP_OK) {
            return rc;
        }
    }
    switch (bit) {
    case JS_T_STRING: return validate_string(n, v, path, err);
    case JS_T_INTEGER:
    case JS_T_NUMBER: return validate_number(n, v, path, err);
    case JS_T_OBJECT: return validate_object(n, v, path, err);
    case JS_T_ARRAY: return validate_array(n, v, path, err);
    default: return BP_OK;
    }
}

int jsonschema_validate_at(const jsonschema *s, const json_t *value, const char *root,
                           bp_error *err)
{
    js_path path;
    path_init(&path, root && *root ? root : "args");
    if (!s) {
        return bp_err(err, BP_E_INVAL, "%s: no schema to validate against", path.buf);
    }
    if (!value) {
        return bp_err(err, BP_E_INVAL, "%s: missing (no value given)", path.buf);
    }
    return validate_node(s->root, value, &path, err);
}

int jsonschema_validate(const jsonschema *s, const json_t *value, bp_error *err)
{
    return jsonschema_validate_at(s, value, "args", err);
}

/* ============================================================================================
 * Defaults
 * ========================================================================================== */

static int defaults_node(const js_node *n, json_t *v)
{
    if (json_is_object(v)) {
        for (size_t i = 0; i < n->n_props; i++) {
            const js_node *p = n->props[i].schema;
            json_t *field = json_object_get(v, n->props[i].name);
            if (!field && p->default_value) {
                field = json_deep_copy(p->default_value);
                if (!field || json_object_set_new(v, n->props[i].name, field) != 0) {
                    return BP_E_NOMEM;
                }
            }
            if (field) {
                int rc = defaults_node(p, field);
                if (rc != BP_OK) {
                    return rc;
                }
            }
        }
    } else if (json_is_array(v) && n->items) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            int rc = defaults_node(n->items, json_array_get(v, i));
            if (rc != BP_OK) {
                return rc;
            }
        }
    }
    return BP_OK;
}

int jsonschema_apply_defaults(const jsonschema *s, json_t *value)
{
    if (!s || !value) {
        return BP_OK;
    }
    return defaults_node(s->root, value);
}
