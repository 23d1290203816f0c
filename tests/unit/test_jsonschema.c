/*
 * test_jsonschema.c - the args-schema validator: every keyword accepted and violated, every
 * schema mistake refused at compile time, defaults, describe, and concurrent validation.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "jsonschema.h"

static jsonschema *compile_ok(const char *text)
{
    jsonschema *s = NULL;
    bp_error e = {0};
    int rc = jsonschema_compile(text, &s, &e);
    cr_assert_eq(rc, BP_OK, "schema should compile: %s\nerror: %s", text ? text : "(null)", e.msg);
    cr_assert_not_null(s);
    return s;
}

/* The schema must be refused, with a message containing `phrase`. */
static void compile_fails(const char *text, const char *phrase)
{
    jsonschema *s = (jsonschema *)1;
    bp_error e = {0};
    int rc = jsonschema_compile(text, &s, &e);
    cr_assert_eq(rc, BP_E_INVAL, "schema should be refused: %s", text);
    cr_assert_null(s, "out must be NULL on failure");
    cr_assert_eq(e.code, BP_E_INVAL);
    cr_assert(strstr(e.msg, phrase) != NULL, "message '%s' should contain '%s'", e.msg, phrase);
}

static int check(const jsonschema *s, const char *value, bp_error *e)
{
    json_error_t jerr;
    json_t *v = json_loads(value, JSON_DECODE_ANY, &jerr);
    cr_assert_not_null(v, "bad test JSON %s: %s", value, jerr.text);
    int rc = jsonschema_validate(s, v, e);
    json_decref(v);
    return rc;
}

static void accepts(const jsonschema *s, const char *value)
{
    bp_error e = {0};
    int rc = check(s, value, &e);
    cr_assert_eq(rc, BP_OK, "%s should be accepted, got: %s", value, e.msg);
}

/* Refused with exactly `msg`. */
static void rejects(const jsonschema *s, const char *value, const char *msg)
{
    bp_error e = {0};
    int rc = check(s, value, &e);
    cr_assert_eq(rc, BP_E_INVAL, "%s should be refused", value);
    cr_assert_eq(e.code, BP_E_INVAL);
    cr_assert_str_eq(e.msg, msg, "value %s\n  got:  %s\n  want: %s", value, e.msg, msg);
}

/* Refused with a message containing `phrase`. */
static void rejects_with(const jsonschema *s, const char *value, const char *phrase)
{
    bp_error e = {0};
    int rc = check(s, value, &e);
    cr_assert_eq(rc, BP_E_INVAL, "%s should be refused", value);
    cr_assert(strstr(e.msg, phrase) != NULL, "message '%s' should contain '%s'", e.msg, phrase);
}

/* ---- the messages of the brief ------------------------------------------------------------ */

static const char *const league_schema =
    "{\"type\": \"object\", \"additionalProperties\": false,"
    " \"required\": [\"league\", \"model\"],"
    " \"properties\": {"
    "   \"league\": {\"type\": \"string\"},"
    "   \"model\": {\"type\": \"string\", \"enum\": [\"poisson\", \"dixon_coles\", \"elo\"]},"
    "   \"seasons\": {\"type\": \"array\", \"items\": {\"type\": \"string\","
    "                 \"pattern\": \"^[0-9]{4}$\"}}}}";

Test(jsonschema, documented_messages)
{
    jsonschema *s = compile_ok(league_schema);
    accepts(s, "{\"league\": \"E0\", \"model\": \"elo\", \"seasons\": [\"2023\", \"2024\"]}");
    rejects(s, "{\"league\": 5, \"model\": \"elo\"}",
            "args.league: expected a string, got integer 5");
    rejects(s, "{\"leage\": \"E0\", \"model\": \"elo\"}",
            "args: unknown field 'leage' (did you mean 'league'?)");
    rejects(s, "{\"league\": \"E0\", \"model\": \"elo\", \"seasons\": [\"2023\", \"2024\", \"x\"]}",
            "args.seasons[2]: 'x' does not match pattern '^[0-9]{4}$'");
    rejects(s, "{\"league\": \"E0\"}", "args: missing required field 'model'");
    rejects(s, "{\"league\": \"E0\", \"model\": \"elo2\"}",
            "args.model: 'elo2' is not one of 'poisson', 'dixon_coles', 'elo'");
    rejects(s, "[1]", "args: expected an object, got an array");
    jsonschema_free(s);
}

Test(jsonschema, other_root_names)
{
    jsonschema *s = compile_ok(league_schema);
    json_t *v = json_pack("{s:i, s:s}", "league", 1, "model", "elo");
    bp_error e = {0};
    cr_assert_eq(jsonschema_validate_at(s, v, "params", &e), BP_E_INVAL);
    cr_assert_str_eq(e.msg, "params.league: expected a string, got integer 1");
    cr_assert_eq(jsonschema_validate_at(s, NULL, "request", &e), BP_E_INVAL);
    cr_assert(strstr(e.msg, "request: missing") != NULL, "%s", e.msg);
    json_decref(v);
    jsonschema_free(s);
}

/* ---- NULL schema ------------------------------------------------------------------------ */

Test(jsonschema, null_schema_takes_only_an_empty_object)
{
    jsonschema *s = compile_ok(NULL);
    accepts(s, "{}");
    rejects(s, "{\"x\": 1}", "args: unknown field 'x' (no fields are accepted)");
    rejects(s, "null", "args: expected an object, got null");
    rejects(s, "\"x\"", "args: expected an object, got string 'x'");
    json_t *d = jsonschema_describe(s);
    json_t *want = json_pack("{s:s, s:b}", "type", "object", "additionalProperties", 0);
    cr_assert(json_equal(d, want));
    json_decref(d);
    json_decref(want);
    jsonschema_free(s);
}

/* ---- type ----------------------------------------------------------------------------------- */

Test(jsonschema, type_each_name)
{
    static const struct {
        const char *type, *good, *bad, *msg;
    } cases[] = {
        {"object", "{}", "1", "args: expected an object, got integer 1"},
        {"array", "[]", "{}", "args: expected an array, got an object"},
        {"string", "\"\"", "true", "args: expected a string, got boolean true"},
        {"integer", "-7", "7.5", "args: expected an integer, got number 7.5"},
        {"number", "7.5", "\"7\"", "args: expected a number, got string '7'"},
        {"boolean", "false", "0", "args: expected a boolean, got integer 0"},
        {"null", "null", "false", "args: expected null, got boolean false"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "{\"type\": \"%s\"}", cases[i].type);
        jsonschema *s = compile_ok(text);
        accepts(s, cases[i].good);
        rejects(s, cases[i].bad, cases[i].msg);
        jsonschema_free(s);
    }
}

Test(jsonschema, integer_is_a_number_but_a_real_is_not_an_integer)
{
    jsonschema *n = compile_ok("{\"type\": \"number\"}");
    jsonschema *i = compile_ok("{\"type\": \"integer\"}");
    accepts(n, "3");
    accepts(n, "3.25");
    accepts(i, "3");
    rejects(i, "3.0", "args: expected an integer, got number 3.0");
    jsonschema_free(n);
    jsonschema_free(i);
}

Test(jsonschema, type_array)
{
    jsonschema *s = compile_ok("{\"type\": [\"string\", \"null\"]}");
    accepts(s, "\"x\"");
    accepts(s, "null");
    rejects(s, "1", "args: expected a string or null, got integer 1");
    jsonschema_free(s);
    s = compile_ok("{\"type\": [\"integer\", \"string\", \"boolean\"]}");
    rejects(s, "[]", "args: expected a string, an integer or a boolean, got an array");
    jsonschema_free(s);
}

Test(jsonschema, no_type_accepts_anything)
{
    jsonschema *s = compile_ok("{\"description\": \"anything\"}");
    accepts(s, "1");
    accepts(s, "null");
    accepts(s, "{\"a\": [1, 2]}");
    jsonschema_free(s);
}

/* ---- objects ------------------------------------------------------------------------------- */

Test(jsonschema, additional_properties_default_true)
{
    jsonschema *s = compile_ok("{\"type\": \"object\", \"properties\": {\"a\": {\"type\": "
                               "\"integer\"}}}");
    accepts(s, "{\"a\": 1, \"b\": \"free\"}");
    rejects(s, "{\"a\": \"1\"}", "args.a: expected an integer, got string '1'");
    jsonschema_free(s);
}

Test(jsonschema, additional_properties_false_without_hint)
{
    jsonschema *s = compile_ok("{\"type\": \"object\", \"additionalProperties\": false,"
                               " \"properties\": {\"league\": {}}}");
    rejects(s, "{\"colour\": 1}", "args: unknown field 'colour'");
    jsonschema_free(s);
}

Test(jsonschema, nested_paths)
{
    jsonschema *s =
        compile_ok("{\"type\": \"object\", \"properties\": {\"filters\": {\"type\": \"object\","
                   " \"required\": [\"from\"], \"properties\": {\"from\": {\"type\": \"string\"},"
                   " \"odd key\": {\"type\": \"integer\"}}}}}");
    rejects(s, "{\"filters\": {}}", "args.filters: missing required field 'from'");
    rejects(s, "{\"filters\": {\"from\": \"x\", \"odd key\": \"y\"}}",
            "args.filters[\"odd key\"]: expected an integer, got string 'y'");
    jsonschema_free(s);
}

Test(jsonschema, required_must_be_declared)
{
    compile_fails("{\"properties\": {\"league\": {}}, \"required\": [\"leage\"]}",
                  "schema.required: 'leage' is not declared in properties");
    /* without properties, required alone is fine */
    jsonschema *s = compile_ok("{\"required\": [\"a\"]}");
    accepts(s, "{\"a\": null}");
    rejects(s, "{}", "args: missing required field 'a'");
    jsonschema_free(s);
}

/* ---- enum and const -------------------------------------------------------------------------- */

Test(jsonschema, enum_mixed_values)
{
    jsonschema *s = compile_ok("{\"enum\": [1, \"two\", null, [3]]}");
    accepts(s, "1");
    accepts(s, "\"two\"");
    accepts(s, "null");
    accepts(s, "[3]");
    rejects(s, "1.0", "args: 1.0 is not one of 1, 'two', null, '[3]'");
    rejects(s, "{}", "args: an object is not one of 1, 'two', null, '[3]'");
    jsonschema_free(s);
}

Test(jsonschema, const_value)
{
    jsonschema *s = compile_ok("{\"const\": \"v1\"}");
    accepts(s, "\"v1\"");
    rejects(s, "\"v2\"", "args: must be 'v1'");
    jsonschema_free(s);
    s = compile_ok("{\"const\": {\"a\": [1, 2]}}");
    accepts(s, "{\"a\": [1, 2]}");
    rejects_with(s, "{\"a\": [2, 1]}", "args: must be");
    jsonschema_free(s);
}

/* ---- numbers ------------------------------------------------------------------------------ */

Test(jsonschema, minimum_maximum)
{
    jsonschema *s = compile_ok("{\"type\": \"integer\", \"minimum\": 1, \"maximum\": 90}");
    accepts(s, "1");
    accepts(s, "90");
    rejects(s, "0", "args: 0 is less than the minimum 1");
    rejects(s, "91", "args: 91 is greater than the maximum 90");
    jsonschema_free(s);
    s = compile_ok("{\"type\": \"number\", \"minimum\": 0.05, \"maximum\": 1e3}");
    accepts(s, "0.05");
    rejects(s, "0.04", "args: 0.04 is less than the minimum 0.05");
    rejects(s, "1000.5", "args: 1000.5 is greater than the maximum 1000.0");
    jsonschema_free(s);
}

Test(jsonschema, exclusive_bounds)
{
    jsonschema *s = compile_ok("{\"exclusiveMinimum\": 0, \"exclusiveMaximum\": 1}");
    accepts(s, "0.5");
    accepts(s, "\"strings are not numbers\"");
    rejects(s, "0", "args: 0 must be greater than 0 (exclusiveMinimum)");
    rejects(s, "1", "args: 1 must be less than 1 (exclusiveMaximum)");
    rejects(s, "1.5", "args: 1.5 must be less than 1 (exclusiveMaximum)");
    jsonschema_free(s);
}

Test(jsonschema, large_integers_compare_exactly)
{
    jsonschema *s = compile_ok("{\"maximum\": 9007199254740993}");
    accepts(s, "9007199254740993");
    rejects(s, "9007199254740994",
            "args: 9007199254740994 is greater than the maximum 9007199254740993");
    jsonschema_free(s);
}

/* ---- strings ----------------------------------------------------------------------------- */

Test(jsonschema, length_counts_code_points)
{
    jsonschema *s = compile_ok("{\"type\": \"string\", \"minLength\": 2, \"maxLength\": 3}");
    accepts(s, "\"ab\"");
    accepts(s, "\"\u00e9t\u00e9\""); /* 3 code points, 5 bytes */
    rejects(s, "\"a\"", "args: 'a' is shorter than 2 characters (minLength)");
    rejects(s, "\"abcd\"", "args: 'abcd' is longer than 3 characters (maxLength)");
    jsonschema_free(s);
}

Test(jsonschema, pattern_is_unanchored_posix_ere)
{
    jsonschema *s = compile_ok("{\"pattern\": \"[0-9]+\"}");
    accepts(s, "\"season 2024\"");
    rejects(s, "\"none\"", "args: 'none' does not match pattern '[0-9]+'");
    accepts(s, "5"); /* pattern applies to strings only */
    jsonschema_free(s);
    s = compile_ok("{\"pattern\": \"^(E|SP|D)[0-9]$\"}");
    accepts(s, "\"SP1\"");
    rejects_with(s, "\"SP12\"", "does not match pattern '^(E|SP|D)[0-9]$'");
    jsonschema_free(s);
}

Test(jsonschema, long_and_control_strings_are_shortened_in_messages)
{
    jsonschema *s = compile_ok("{\"type\": \"integer\"}");
    bp_error e = {0};
    json_t *v =
        json_string("line1\nline2 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    cr_assert_eq(jsonschema_validate(s, v, &e), BP_E_INVAL);
    cr_assert(strstr(e.msg, "'line1?line2 aaa") != NULL, "%s", e.msg);
    cr_assert(strstr(e.msg, "...'") != NULL, "%s", e.msg);
    cr_assert(strlen(e.msg) < 120, "%s", e.msg);
    json_decref(v);
    jsonschema_free(s);
}

Test(jsonschema, format_date)
{
    jsonschema *s = compile_ok("{\"type\": \"string\", \"format\": \"date\"}");
    accepts(s, "\"2024-02-29\"");
    rejects(s, "\"2023-02-29\"", "args: '2023-02-29' is not a valid date (expected YYYY-MM-DD)");
    rejects_with(s, "\"2024-2-01\"", "is not a valid date");
    rejects_with(s, "\"2024-02-01T10:00:00Z\"", "is not a valid date");
    jsonschema_free(s);
}

Test(jsonschema, format_date_time)
{
    jsonschema *s = compile_ok("{\"format\": \"date-time\"}");
    accepts(s, "\"2026-11-22T10:15:00Z\"");
    accepts(s, "\"2026-11-22T10:15:00.250+01:00\"");
    rejects(s, "\"2026-11-22\"",
            "args: '2026-11-22' is not a valid date-time (expected ISO 8601 such as "
            "2026-11-22T10:15:00Z)");
    rejects_with(s, "\"2026-11-22T25:00:00Z\"", "is not a valid date-time");
    rejects_with(s, "\"yesterday\"", "is not a valid date-time");
    jsonschema_free(s);
}

/* ---- arrays -------------------------------------------------------------------------------- */

Test(jsonschema, items_count_and_uniqueness)
{
    jsonschema *s = compile_ok("{\"type\": \"array\", \"minItems\": 1, \"maxItems\": 3,"
                               " \"uniqueItems\": true, \"items\": {\"type\": \"integer\"}}");
    accepts(s, "[1, 2, 3]");
    rejects(s, "[]", "args: has 0 items, at least 1 required (minItems)");
    rejects(s, "[1, 2, 3, 4]", "args: has 4 items, at most 3 allowed (maxItems)");
    rejects(s, "[1, 2, 1]", "args: items 0 and 2 are equal (uniqueItems)");
    rejects(s, "[1, \"2\"]", "args[1]: expected an integer, got string '2'");
    jsonschema_free(s);
    s = compile_ok("{\"uniqueItems\": false}");
    accepts(s, "[1, 1]");
    jsonschema_free(s);
}

Test(jsonschema, arrays_of_objects)
{
    jsonschema *s = compile_ok(
        "{\"type\": \"object\", \"properties\": {\"legs\": {\"type\": \"array\", \"items\":"
        " {\"type\": \"object\", \"required\": [\"price\"], \"properties\": {\"price\":"
        " {\"type\": \"number\", \"exclusiveMinimum\": 1}}}}}}");
    accepts(s, "{\"legs\": [{\"price\": 2.1}, {\"price\": 1.01}]}");
    rejects(s, "{\"legs\": [{\"price\": 2.1}, {\"price\": 1}]}",
            "args.legs[1].price: 1 must be greater than 1 (exclusiveMinimum)");
    rejects(s, "{\"legs\": [{}]}", "args.legs[0]: missing required field 'price'");
    jsonschema_free(s);
}

/* ---- annotations ----------------------------------------------------------------------------- */

Test(jsonschema, annotations_are_accepted_and_described)
{
    const char *text = "{\"title\": \"Train\", \"description\": \"fit a model\","
                       " \"examples\": [{\"league\": \"E0\"}], \"type\": \"object\"}";
    jsonschema *s = compile_ok(text);
    json_t *d = jsonschema_describe(s);
    json_t *want = json_loads(text, 0, NULL);
    cr_assert(json_equal(d, want));
    /* a copy: changing it does not change the schema */
    json_object_set_new(d, "type", json_string("array"));
    json_t *again = jsonschema_describe(s);
    cr_assert(json_equal(again, want));
    json_decref(d);
    json_decref(again);
    json_decref(want);
    jsonschema_free(s);
}

/* ---- defaults ------------------------------------------------------------------------------ */

Test(jsonschema, defaults_fill_top_level_and_nested)
{
    jsonschema *s = compile_ok(
        "{\"type\": \"object\", \"properties\": {"
        " \"days\": {\"type\": \"integer\", \"default\": 7},"
        " \"league\": {\"type\": \"string\"},"
        " \"opts\": {\"type\": \"object\", \"default\": {}, \"properties\": {"
        "    \"decay\": {\"type\": \"number\", \"default\": 0.0065},"
        "    \"tags\": {\"type\": \"array\", \"default\": [\"a\"]}}},"
        " \"legs\": {\"type\": \"array\", \"items\": {\"type\": \"object\", \"properties\":"
        "    {\"stake\": {\"type\": \"number\", \"default\": 1}}}}}}");
    json_t *v = json_loads("{\"league\": \"E0\", \"legs\": [{}, {\"stake\": 5}]}", 0, NULL);
    cr_assert_eq(jsonschema_apply_defaults(s, v), BP_OK);
    json_t *want = json_loads("{\"league\": \"E0\", \"days\": 7,"
                              " \"opts\": {\"decay\": 0.0065, \"tags\": [\"a\"]},"
                              " \"legs\": [{\"stake\": 1}, {\"stake\": 5}]}",
                              0, NULL);
    char *got = json_dumps(v, JSON_SORT_KEYS);
    cr_assert(json_equal(v, want), "got %s", got);
    free(got);
    accepts(s, "{\"days\": 3}");

    /* present values are kept; defaults are copies, not shared with the schema */
    json_t *w = json_loads("{\"days\": 30}", 0, NULL);
    cr_assert_eq(jsonschema_apply_defaults(s, w), BP_OK);
    cr_assert_eq(json_integer_value(json_object_get(w, "days")), 30);
    json_array_append_new(json_object_get(json_object_get(w, "opts"), "tags"), json_string("b"));
    json_t *x = json_object();
    cr_assert_eq(jsonschema_apply_defaults(s, x), BP_OK);
    cr_assert_eq(json_array_size(json_object_get(json_object_get(x, "opts"), "tags")), 1);

    /* a value of the wrong type is left for validation to report */
    json_t *y = json_loads("{\"opts\": 5}", 0, NULL);
    cr_assert_eq(jsonschema_apply_defaults(s, y), BP_OK);
    cr_assert_eq(json_integer_value(json_object_get(y, "opts")), 5);

    json_decref(v);
    json_decref(w);
    json_decref(x);
    json_decref(y);
    json_decref(want);
    jsonschema_free(s);
}

Test(jsonschema, default_must_satisfy_its_schema)
{
    compile_fails("{\"properties\": {\"days\": {\"type\": \"integer\", \"minimum\": 1,"
                  " \"default\": 0}}}",
                  "schema.properties.days.default: 0 is less than the minimum 1 (the default "
                  "does not satisfy its own schema)");
    compile_fails("{\"properties\": {\"m\": {\"enum\": [\"a\"], \"default\": \"b\"}}}",
                  "schema.properties.m.default: 'b' is not one of 'a'");
}

/* ---- schema mistakes ------------------------------------------------------------------------- */

Test(jsonschema, bad_schemas_are_refused_with_the_keyword_and_path)
{
    static const struct {
        const char *schema, *phrase;
    } cases[] = {
        {"{", "schema: not valid JSON"},
        {"[]", "schema: a schema must be a JSON object"},
        {"{\"a\": 1, \"a\": 2}", "schema: not valid JSON"},
        {"{\"typ\": \"string\"}", "schema: unknown keyword 'typ' (did you mean 'type'?)"},
        {"{\"oneOf\": []}", "schema: unknown keyword 'oneOf' (not in betpipe's schema subset)"},
        {"{\"properties\": {\"a\": {\"minimun\": 1}}}",
         "schema.properties.a: unknown keyword 'minimun' (did you mean 'minimum'?)"},
        {"{\"type\": \"str\"}", "schema.type: unknown type 'str'"},
        {"{\"type\": 5}", "schema.type: must be a type name or a non-empty array"},
        {"{\"type\": []}", "schema.type: must be a type name or a non-empty array"},
        {"{\"type\": [\"string\", \"string\"]}", "schema.type: 'string' is listed twice"},
        {"{\"properties\": []}", "schema.properties: must be an object"},
        {"{\"properties\": {\"a\": 5}}", "schema.properties.a: a schema must be a JSON object"},
        {"{\"required\": \"a\"}", "schema.required: must be an array of property names"},
        {"{\"required\": [1]}", "schema.required[0]: must be a property name"},
        {"{\"required\": [\"a\", \"a\"]}", "schema.required: 'a' is listed twice"},
        {"{\"additionalProperties\": {}}",
         "schema.additionalProperties: must be true or false (schemas are not supported here)"},
        {"{\"enum\": []}", "schema.enum: must be a non-empty array"},
        {"{\"enum\": \"a\"}", "schema.enum: must be a non-empty array"},
        {"{\"minimum\": \"1\"}", "schema.minimum: must be a number"},
        {"{\"maximum\": null}", "schema.maximum: must be a number"},
        {"{\"exclusiveMinimum\": true}",
         "schema.exclusiveMinimum: must be a number (the boolean form of draft 4"},
        {"{\"exclusiveMaximum\": \"x\"}", "schema.exclusiveMaximum: must be a number"},
        {"{\"minimum\": 5, \"maximum\": 1}", "schema.minimum: is greater than maximum"},
        {"{\"minLength\": -1}", "schema.minLength: must be a non-negative integer"},
        {"{\"maxLength\": 1.5}", "schema.maxLength: must be a non-negative integer"},
        {"{\"minLength\": 3, \"maxLength\": 2}", "schema.minLength: is greater than maxLength"},
        {"{\"minItems\": \"1\"}", "schema.minItems: must be a non-negative integer"},
        {"{\"maxItems\": -2}", "schema.maxItems: must be a non-negative integer"},
        {"{\"minItems\": 2, \"maxItems\": 1}", "schema.minItems: is greater than maxItems"},
        {"{\"pattern\": 5}", "schema.pattern: must be a string"},
        {"{\"pattern\": \"^[0-9{4}$\"}",
         "schema.pattern: '^[0-9{4}$' is not a valid POSIX extended regex"},
        {"{\"format\": \"email\"}",
         "schema.format: 'email' is not supported (supported: 'date', 'date-time')"},
        {"{\"format\": 1}", "schema.format: 1 is not supported"},
        {"{\"items\": [{}]}", "schema.items: the tuple form"},
        {"{\"items\": {\"type\": \"nope\"}}", "schema.items.type: unknown type 'nope'"},
        {"{\"uniqueItems\": 1}", "schema.uniqueItems: must be true or false"},
        {"{\"description\": 1}", "schema.description: must be a string"},
        {"{\"title\": []}", "schema.title: must be a string"},
        {"{\"examples\": {}}", "schema.examples: must be an array"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        compile_fails(cases[i].schema, cases[i].phrase);
    }
}

Test(jsonschema, deep_nesting_is_refused)
{
    char text[4096] = "";
    size_t o = 0;
    for (int i = 0; i < 70; i++) {
        o += (size_t)snprintf(text + o, sizeof text - o, "{\"items\": ");
    }
    o += (size_t)snprintf(text + o, sizeof text - o, "{}");
    for (int i = 0; i < 70; i++) {
        o += (size_t)snprintf(text + o, sizeof text - o, "}");
    }
    compile_fails(text, "nested more than 64 levels deep");
}

/* ---- threads --------------------------------------------------------------------------------- */

typedef struct worker_arg {
    const jsonschema *s;
    int failures;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    json_t *good =
        json_loads("{\"league\": \"E0\", \"model\": \"elo\", \"seasons\": [\"2024\"]}", 0, NULL);
    json_t *bad =
        json_loads("{\"league\": \"E0\", \"model\": \"elo\", \"seasons\": [\"24\"]}", 0, NULL);
    for (int i = 0; i < 2000; i++) {
        bp_error e = {0};
        if (jsonschema_validate(a->s, good, &e) != BP_OK) {
            a->failures++;
        }
        if (jsonschema_validate(a->s, bad, &e) != BP_E_INVAL ||
            strcmp(e.msg, "args.seasons[0]: '24' does not match pattern '^[0-9]{4}$'") != 0) {
            a->failures++;
        }
    }
    json_decref(good);
    json_decref(bad);
    return NULL;
}

Test(jsonschema, concurrent_validation_of_one_schema)
{
    jsonschema *s = compile_ok(league_schema);
    pthread_t t[4];
    worker_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg){.s = s};
        cr_assert_eq(pthread_create(&t[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(args[i].failures, 0, "thread %d saw %d wrong answers", i, args[i].failures);
    }
    jsonschema_free(s);
}
