/*
 * jsonschema.h - a validator for the JSON Schema subset that plugins use to declare job args,
 * model params, collector requests and notifier targets (see betpipe/registry.h).
 *
 * Supported keywords, with their JSON Schema (draft 2020-12) meaning:
 *   type              a name or an array of names: object, array, string, integer, number,
 *                     boolean, null. "integer" accepts only JSON integers (5, not 5.0): a job
 *                     reading json_integer_value() must never see a real.
 *   properties        object of name -> schema
 *   required          array of names; when `properties` is present each name must be declared
 *                     there (a typo in `required` is a schema bug, not something to find at run
 *                     time)
 *   additionalProperties  a boolean only (schemas are not supported). Absent means true, as in
 *                     JSON Schema: a job that wants typos refused says "additionalProperties":
 *                     false.
 *   enum, const       compared with json_equal (1 and 1.0 are different values)
 *   minimum, maximum, exclusiveMinimum, exclusiveMaximum   numbers (the draft 6+ form)
 *   minLength, maxLength   counted in Unicode code points
 *   pattern           POSIX extended regex (regcomp), unanchored like JSON Schema: write ^...$
 *   format            "date" (YYYY-MM-DD) or "date-time" (ISO 8601 with a time part); any other
 *                     format is refused at compile time rather than silently ignored
 *   items             one schema for every element (the tuple form is not supported)
 *   minItems, maxItems, uniqueItems
 *   default           must itself satisfy the schema it sits in (checked at compile time);
 *                     filled in by jsonschema_apply_defaults()
 *   description, title, examples   annotations, kept for jsonschema_describe()
 * Anything else - an unknown keyword, a keyword with a value of the wrong type, a regex that
 * does not compile, minimum > maximum - is refused by jsonschema_compile() with a message that
 * names the keyword and where it sits ("schema.properties.league.pattern: ...").
 *
 * Thread-safety: a compiled schema is immutable. Any number of threads may call
 * jsonschema_validate / _validate_at / _apply_defaults / _describe on the same schema at once
 * (regexec on a compiled regex is thread-safe). jsonschema_free must not race with them.
 */
#ifndef BP_CORE_JSONSCHEMA_H
#define BP_CORE_JSONSCHEMA_H

#include <jansson.h>

#include "betpipe/status.h"

typedef struct jsonschema jsonschema;

/*
 * Parse and check a schema. NULL schema_text means "an object with no properties allowed":
 * only {} validates (the schema of a job that takes no arguments).
 * On success *out is a new schema the caller frees with jsonschema_free. On failure *out is NULL
 * and err names the problem: BP_E_INVAL for a bad schema, BP_E_NOMEM.
 */
int jsonschema_compile(const char *schema_text, jsonschema **out, bp_error *err);

/* Release a compiled schema (NULL is fine). */
void jsonschema_free(jsonschema *s);

/*
 * Check `value` (borrowed) against the schema. BP_OK, or BP_E_INVAL with the first violation in
 * err, its path rooted at "args":
 *     args.league: expected a string, got integer 5
 *     args: unknown field 'leage' (did you mean 'league'?)
 *     args.seasons[2]: 'x' does not match pattern '^[0-9]{4}$'
 *     args: missing required field 'model'
 * A NULL value is reported as missing. Thread-safe (see above).
 */
int jsonschema_validate(const jsonschema *s, const json_t *value, bp_error *err);

/* The same with another name for the root of the paths ("params", "request", "target"). */
int jsonschema_validate_at(const jsonschema *s, const json_t *value, const char *root,
                           bp_error *err);

/*
 * Fill, in place, every property that is missing from `value` and declares a default, at the
 * top level and in nested objects (also objects inside arrays that have an `items` schema).
 * Defaults are deep-copied, so `value` never shares structure with the schema. Values whose
 * type does not fit the schema are left alone (validation reports them). Returns BP_OK or
 * BP_E_NOMEM (value may then be partly filled).
 */
int jsonschema_apply_defaults(const jsonschema *s, json_t *value);

/* The schema as JSON: a new reference (a deep copy the caller may modify), NULL on OOM. For a
 * schema compiled from NULL it is {"type": "object", "additionalProperties": false}. */
json_t *jsonschema_describe(const jsonschema *s);

#endif
