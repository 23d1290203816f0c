/*
 * schedule.c - schedule files: parsing, validation, where they come from, and slot arithmetic
 * (see schedule.h).
 *
 * Validation runs in two layers. The JSON-schema validator checks the shape of the file and of
 * each entry (types, ranges, unknown keys with a "did you mean"), which gives messages with the
 * key path for free. Then this file checks what a schema cannot say: a cron expression parses,
 * a zone exists, a duration is a duration, exactly one of cron/every is given. Every message
 * starts with the file and the entry's path, so a user can go straight to the line.
 */
#include "schedule.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsonschema.h"
#include "util.h"

#define SCHEDULE_FILE_MAX_BYTES (4 * 1024 * 1024)
#define DURATION                "{\"type\": [\"number\", \"string\"]}"

static const char file_schema[] =
    "{\"type\": \"object\", \"additionalProperties\": false, \"required\": [\"entries\"],"
    " \"properties\": {"
    "  \"description\": {\"type\": \"string\"},"
    "  \"timezone\": {\"type\": \"string\", \"minLength\": 1},"
    "  \"entries\": {\"type\": \"object\"}}}";

static const char entry_schema[] =
    "{\"type\": \"object\", \"additionalProperties\": false, \"required\": [\"job\"],"
    " \"properties\": {"
    "  \"description\": {\"type\": \"string\"},"
    "  \"job\": {\"type\": \"string\", \"minLength\": 1},"
    "  \"args\": {\"type\": \"object\"},"
    "  \"queue\": {\"type\": \"string\", \"minLength\": 1},"
    "  \"priority\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 9},"
    "  \"max_retries\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 1000},"
    "  \"expires\": " DURATION ","
    "  \"cron\": {\"type\": \"string\", \"minLength\": 1},"
    "  \"every\": " DURATION ","
    "  \"timezone\": {\"type\": \"string\", \"minLength\": 1},"
    "  \"enabled\": {\"type\": \"boolean\"},"
    "  \"missed\": {\"enum\": [\"skip\", \"run_once\"]},"
    "  \"grace\": " DURATION ","
    "  \"no_overlap\": {\"type\": \"boolean\"}}}";

static const char beat_config_schema[] =
    "{\"type\": \"object\", \"additionalProperties\": false, \"properties\": {"
    "  \"enabled\": {\"type\": \"boolean\"},"
    "  \"schedules\": {\"type\": [\"string\", \"array\"],"
    "                  \"items\": {\"type\": \"string\", \"minLength\": 1}}}}";

/* ============================================================================================
 * Sets and entries
 * ========================================================================================== */

static void entry_clear(schedule_entry *e)
{
    free(e->file);
    free(e->job_type);
    json_decref(e->args);
    free(e->queue);
    free(e->description);
    free(e->problem);
    memset(e, 0, sizeof *e);
}

schedule_set *schedule_set_new(void)
{
    schedule_set *s = calloc(1, sizeof *s);
    if (!s) {
        return NULL;
    }
    s->files = json_array();
    s->problems = json_array();
    if (!s->files || !s->problems) {
        schedule_set_free(s);
        return NULL;
    }
    return s;
}

void schedule_set_free(schedule_set *s)
{
    if (!s) {
        return;
    }
    for (size_t i = 0; i < s->n; i++) {
        entry_clear(&s->entries[i]);
    }
    free(s->entries);
    json_decref(s->files);
    json_decref(s->problems);
    free(s->source);
    free(s);
}

const schedule_entry *schedule_find(const schedule_set *s, const char *name)
{
    for (size_t i = 0; s && i < s->n; i++) {
        if (strcmp(s->entries[i].name, name) == 0) {
            return &s->entries[i];
        }
    }
    return NULL;
}

/* ============================================================================================
 * Parsing one file
 * ========================================================================================== */

static bool valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > SCHEDULE_NAME_MAX) {
        return false;
    }
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-')) {
            return false;
        }
    }
    return true;
}

/* A duration field: a number of seconds or a string with a unit. */
static int duration_field(const json_t *v, const char *where, int64_t *out_ms, bp_error *err)
{
    if (json_is_number(v)) {
        double s = json_number_value(v);
        if (!(s >= 0) || s > 9.0e12) {
            return bp_err(err, BP_E_INVAL, "%s: %g is not a valid number of seconds", where, s);
        }
        *out_ms = (int64_t)(s * 1000.0 + 0.5);
        return BP_OK;
    }
    if (util_parse_duration_ms(json_string_value(v), out_ms, err) != BP_OK) {
        bp_err_prefix(err, "%s: ", where);
        return BP_E_INVAL;
    }
    return BP_OK;
}

static int validate(const jsonschema *schema, const json_t *v, const char *root, bp_error *err)
{
    return jsonschema_validate_at(schema, v, root, err) == BP_OK ? BP_OK : BP_E_INVAL;
}

/* Turn one validated entry object into *e. `where` is "entries.<name>"; `file_zone` the file's
 * default zone name or NULL. */
static int build_entry(const char *file, const char *name, const char *where, const json_t *o,
                       const char *file_zone, schedule_entry *e, bp_error *err)
{
    const json_t *v;
    char here[160];
    int rc;

    util_strlcpy(e->name, name, sizeof e->name);
    e->file = strdup(file);
    e->job_type = strdup(json_string_value(json_object_get(o, "job")));
    v = json_object_get(o, "args");
    e->args = v ? json_deep_copy(v) : json_object();
    if (!e->file || !e->job_type || !e->args) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    if ((v = json_object_get(o, "queue")) != NULL && !(e->queue = strdup(json_string_value(v)))) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    if ((v = json_object_get(o, "description")) != NULL &&
        !(e->description = strdup(json_string_value(v)))) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    if ((v = json_object_get(o, "priority")) != NULL) {
        e->priority = (int)json_integer_value(v);
        e->has_priority = true;
    }
    if ((v = json_object_get(o, "max_retries")) != NULL) {
        e->max_retries = (int)json_integer_value(v);
        e->has_max_retries = true;
    }
    if ((v = json_object_get(o, "expires")) != NULL) {
        snprintf(here, sizeof here, "%s.expires", where);
        if ((rc = duration_field(v, here, &e->expires_ms, err)) != BP_OK) {
            return rc;
        }
        if (e->expires_ms <= 0) {
            return bp_err(err, BP_E_INVAL, "%s: must be more than 0 (leave it out for never)",
                          here);
        }
    }
    e->enabled = !json_is_false(json_object_get(o, "enabled"));
    e->no_overlap = !json_is_false(json_object_get(o, "no_overlap"));
    v = json_object_get(o, "missed");
    e->missed = v && strcmp(json_string_value(v), "run_once") == 0 ? SCHEDULE_MISSED_RUN_ONCE
                                                                   : SCHEDULE_MISSED_SKIP;
    e->grace_ms = SCHEDULE_DEFAULT_GRACE_MS;
    if ((v = json_object_get(o, "grace")) != NULL) {
        snprintf(here, sizeof here, "%s.grace", where);
        if ((rc = duration_field(v, here, &e->grace_ms, err)) != BP_OK) {
            return rc;
        }
        if (e->grace_ms > SCHEDULE_MAX_GRACE_MS) {
            return bp_err(err, BP_E_INVAL, "%s: at most 7d", here);
        }
    }

    /* Timing: exactly one of cron and every. */
    {
        const json_t *cron = json_object_get(o, "cron");
        const json_t *every = json_object_get(o, "every");
        const json_t *zone = json_object_get(o, "timezone");
        if (cron && every) {
            return bp_err(err, BP_E_INVAL, "%s: has both 'cron' and 'every': give one of them",
                          where);
        }
        if (!cron && !every) {
            return bp_err(err, BP_E_INVAL,
                          "%s: needs 'cron' (e.g. \"0 2 * * *\") or 'every' (e.g. \"15m\")", where);
        }
        if (every) {
            if (zone) {
                return bp_err(err, BP_E_INVAL,
                              "%s.timezone: an 'every' entry has no time zone (its slots are "
                              "aligned to the Unix epoch, UTC): use 'cron' for wall-clock times",
                              where);
            }
            snprintf(here, sizeof here, "%s.every", where);
            if ((rc = duration_field(every, here, &e->every_ms, err)) != BP_OK) {
                return rc;
            }
            if (e->every_ms < 1000 || e->every_ms % 1000 != 0) {
                return bp_err(err, BP_E_INVAL, "%s: must be a whole number of seconds, at least 1s",
                              here);
            }
            if (e->every_ms > SCHEDULE_MAX_EVERY_MS) {
                return bp_err(err, BP_E_INVAL, "%s: at most 366d", here);
            }
            e->is_cron = false;
        } else {
            const char *zone_name = zone ? json_string_value(zone) : file_zone;
            snprintf(here, sizeof here, "%s.cron", where);
            if (cron_parse(json_string_value(cron), &e->cron, err) != BP_OK) {
                bp_err_prefix(err, "%s: ", here);
                return BP_E_INVAL;
            }
            e->is_cron = true;
            e->zone = tz_utc();
            if (zone_name) {
                if (zone) {
                    snprintf(here, sizeof here, "%s.timezone", where);
                } else {
                    snprintf(here, sizeof here, "file.timezone (for %s)", where);
                }
                if ((rc = tz_get(zone_name, &e->zone, err)) != BP_OK) {
                    bp_err_prefix(err, "%s: ", here);
                    return rc == BP_E_NOMEM ? rc : BP_E_INVAL;
                }
            }
        }
    }
    return BP_OK;
}

int schedule_parse(schedule_set *s, const char *file, const char *text, bp_error *err)
{
    json_error_t jerr;
    json_t *doc = NULL;
    jsonschema *fs = NULL, *es = NULL;
    schedule_entry *grown = NULL;
    size_t n_new = 0, base = s->n;
    const char *file_zone, *name;
    json_t *o;
    int rc;

    doc = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        return bp_err(err, BP_E_INVAL, "%s: line %d, column %d: %s", file, jerr.line, jerr.column,
                      jerr.text);
    }
    rc = jsonschema_compile(file_schema, &fs, err);
    if (rc == BP_OK) {
        rc = jsonschema_compile(entry_schema, &es, err);
    }
    if (rc != BP_OK) {
        rc = bp_err(err, BP_E_INTERNAL, "built-in schedule schema is invalid: %s",
                    err ? err->msg : "");
        goto fail;
    }
    if ((rc = validate(fs, doc, "file", err)) != BP_OK) {
        goto fail_prefixed;
    }
    file_zone = json_string_value(json_object_get(doc, "timezone"));
    if (file_zone) {
        const tz *z;
        if ((rc = tz_get(file_zone, &z, err)) != BP_OK) {
            bp_err_prefix(err, "file.timezone: ");
            rc = rc == BP_E_NOMEM ? rc : BP_E_INVAL;
            goto fail_prefixed;
        }
    }

    n_new = json_object_size(json_object_get(doc, "entries"));
    grown = realloc(s->entries, (s->n + n_new + 1) * sizeof *grown);
    if (!grown) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto fail;
    }
    s->entries = grown;
    memset(&s->entries[base], 0, (n_new + 1) * sizeof *grown);

    json_object_foreach(json_object_get(doc, "entries"), name, o)
    {
        char where[SCHEDULE_NAME_MAX + 64];
        schedule_entry *e = &s->entries[s->n];
        if (!valid_name(name)) {
            rc = bp_err(err, BP_E_INVAL,
                        "entries: '%.60s' is not a valid entry name (1-%d characters from "
                        "A-Z a-z 0-9 _ . -)",
                        name, SCHEDULE_NAME_MAX);
            goto fail_prefixed;
        }
        snprintf(where, sizeof where, "entries.%s", name);
        {
            const schedule_entry *other = schedule_find(s, name);
            if (other) {
                rc = bp_err(err, BP_E_INVAL,
                            "%s: the name is already used by an entry of %s (names are unique "
                            "across all schedule files)",
                            where, other->file);
                goto fail_prefixed;
            }
        }
        if ((rc = validate(es, o, where, err)) != BP_OK) {
            goto fail_prefixed;
        }
        rc = build_entry(file, name, where, o, file_zone, e, err);
        /* Count it even on failure so that the cleanup below frees what it holds. */
        s->n++;
        if (rc != BP_OK) {
            goto fail_prefixed;
        }
    }
    json_decref(doc);
    jsonschema_free(fs);
    jsonschema_free(es);
    return BP_OK;

fail_prefixed:
    bp_err_prefix(err, "%s: ", file);
fail:
    for (size_t i = base; i < s->n; i++) {
        entry_clear(&s->entries[i]);
    }
    s->n = base;
    json_decref(doc);
    jsonschema_free(fs);
    jsonschema_free(es);
    if (err) {
        err->code = rc;
    }
    return rc;
}

int schedule_load_file(schedule_set *s, const char *path, bp_error *err)
{
    char *text = NULL;
    int rc = util_read_file(path, SCHEDULE_FILE_MAX_BYTES, &text, NULL, err);
    if (rc != BP_OK) {
        bp_err_prefix(err, "schedule file: ");
        return rc;
    }
    rc = schedule_parse(s, path, text, err);
    free(text);
    if (rc == BP_OK && json_array_append_new(s->files, json_string(path)) != 0) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
    }
    return rc;
}

/* ============================================================================================
 * Which files
 * ========================================================================================== */

static int add_problem(schedule_set *s, const char *path, const char *msg, bp_error *err)
{
    json_t *p = json_pack("{s:s, s:s}", "file", path, "error", msg);
    if (!p || json_array_append_new(s->problems, p) != 0) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    return BP_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.json files of a directory, sorted; *out is a NULL-terminated array the caller frees. */
static int list_dir(const char *dir, char ***out, size_t *out_n, bp_error *err)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;
    *out = NULL;
    *out_n = 0;
    if (!d) {
        char msg[128];
        int e = errno;
        return bp_err(err, BP_E_IO, "cannot read the directory %s: %s", dir,
                      strerror_r(e, msg, sizeof msg) == 0 ? msg : "error");
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !util_str_ends_with(de->d_name, ".json")) {
            continue;
        }
        if (n == cap) {
            char **grown = realloc(names, (cap = cap ? cap * 2 : 8) * sizeof *grown);
            if (!grown) {
                goto oom;
            }
            names = grown;
        }
        if (!(names[n] = util_asprintf("%s/%s", dir, de->d_name))) {
            goto oom;
        }
        n++;
    }
    closedir(d);
    if (n > 1) {
        qsort(names, n, sizeof *names, cmp_str);
    }
    *out = names;
    *out_n = n;
    return BP_OK;
oom:
    closedir(d);
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    return bp_err(err, BP_E_NOMEM, "out of memory");
}

static int load_one_file(schedule_set *s, const char *path, bp_error *err)
{
    bp_error ferr = {0};
    int rc = schedule_load_file(s, path, &ferr);
    if (rc == BP_E_NOMEM) {
        return bp_err(err, rc, "%s", ferr.msg);
    }
    return rc == BP_OK ? BP_OK : add_problem(s, path, ferr.msg, err);
}

int schedule_load_paths(schedule_set *s, const char *const *paths, size_t n, bool missing_ok,
                        bp_error *err)
{
    int rc = BP_OK;
    for (size_t i = 0; i < n && rc == BP_OK; i++) {
        const char *p = paths[i];
        DIR *probe;
        if (!util_path_exists(p)) {
            if (!missing_ok) {
                char msg[PATH_MAX + 64];
                snprintf(msg, sizeof msg, "schedule path %s does not exist", p);
                rc = add_problem(s, p, msg, err);
            }
            continue;
        }
        probe = opendir(p);
        if (probe) {
            char **files = NULL;
            size_t nf = 0;
            bp_error derr = {0};
            closedir(probe);
            if (list_dir(p, &files, &nf, &derr) != BP_OK) {
                rc = derr.code == BP_E_NOMEM ? bp_err(err, BP_E_NOMEM, "out of memory")
                                             : add_problem(s, p, derr.msg, err);
                continue;
            }
            for (size_t k = 0; k < nf; k++) {
                if (rc == BP_OK) {
                    rc = load_one_file(s, files[k], err);
                }
                free(files[k]);
            }
            free(files);
        } else {
            rc = load_one_file(s, p, err);
        }
    }
    return rc;
}

int schedule_check_config(const config *cfg, bp_error *err)
{
    const json_t *sec = config_section(cfg, "beat");
    jsonschema *schema = NULL;
    int rc;
    if (!sec) {
        return BP_OK;
    }
    if (jsonschema_compile(beat_config_schema, &schema, err) != BP_OK) {
        return bp_err(err, BP_E_INTERNAL, "built-in beat config schema is invalid");
    }
    rc = jsonschema_validate_at(schema, sec, "config.beat", err);
    jsonschema_free(schema);
    if (rc != BP_OK) {
        if (cfg->path) {
            bp_err_prefix(err, "%s: ", cfg->path);
        }
        if (err) {
            err->code = BP_E_CONFIG;
        }
        return BP_E_CONFIG;
    }
    return BP_OK;
}

bool schedule_beat_enabled(const config *cfg)
{
    return !json_is_false(json_object_get(config_section(cfg, "beat"), "enabled")) &&
           !json_is_false(json_object_get(config_section(cfg, "daemon"), "beat"));
}

/* A relative path from the config file is taken from the file's directory. */
static char *resolve_from(const char *base_file, const char *p)
{
    const char *slash;
    if (p[0] == '/' || !base_file) {
        return strdup(p);
    }
    slash = strrchr(base_file, '/');
    if (!slash) {
        return strdup(p);
    }
    return util_asprintf("%.*s/%s", (int)(slash - base_file), base_file, p);
}

int schedule_load_for(const config *cfg, schedule_set **out, bp_error *err)
{
    schedule_set *s = NULL;
    const char *env = getenv("BETPIPE_SCHEDULES");
    const json_t *conf = json_object_get(config_section(cfg, "beat"), "schedules");
    char **paths = NULL;
    size_t n = 0;
    bool missing_ok = false;
    int rc;

    *out = NULL;
    if ((rc = schedule_check_config(cfg, err)) != BP_OK) {
        return rc;
    }
    if (!(s = schedule_set_new())) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    if (env) {
        char *copy = strdup(env), *save = NULL;
        size_t cap = 1;
        for (const char *c = env; *c; c++) {
            cap += *c == ':';
        }
        paths = calloc(cap, sizeof *paths);
        if (!copy || !paths) {
            free(copy);
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            goto done;
        }
        for (char *p = strtok_r(copy, ":", &save); p && n < cap; p = strtok_r(NULL, ":", &save)) {
            paths[n++] = strdup(p);
        }
        free(copy);
        s->source = util_asprintf("BETPIPE_SCHEDULES=%s", env);
    } else if (conf) {
        size_t cap = json_is_array(conf) ? json_array_size(conf) : 1;
        paths = calloc(cap ? cap : 1, sizeof *paths);
        if (!paths) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            goto done;
        }
        if (json_is_string(conf)) {
            paths[n++] = resolve_from(cfg->path, json_string_value(conf));
        } else {
            size_t i;
            json_t *v;
            json_array_foreach(conf, i, v)
            {
                paths[n++] = resolve_from(cfg->path, json_string_value(v));
            }
        }
        s->source = util_asprintf("config beat.schedules (%s)", cfg->path ? cfg->path : "-");
    } else {
        char exe[PATH_MAX];
        char *dir = NULL;
        missing_ok = true;
        paths = calloc(1, sizeof *paths);
        if (!paths) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            goto done;
        }
        if (util_exe_dir(exe, sizeof exe) == BP_OK) {
            char *guess = util_asprintf("%s/../share/betpipe/schedules", exe);
            dir = guess ? util_realpath(guess) : NULL;
            if (!dir) {
                s->source = util_asprintf("default: none (no directory %s)", guess ? guess : "");
            }
            free(guess);
        }
        if (dir) {
            paths[n++] = dir;
            s->source = util_asprintf("default (%s)", dir);
        } else if (!s->source) {
            s->source = strdup("default: none");
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!paths[i]) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            goto done;
        }
    }
    if (!s->source) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto done;
    }
    rc = schedule_load_paths(s, (const char *const *)paths, n, missing_ok, err);
done:
    for (size_t i = 0; paths && i < n; i++) {
        free(paths[i]);
    }
    free(paths);
    if (rc != BP_OK) {
        schedule_set_free(s);
        return rc;
    }
    *out = s;
    return BP_OK;
}

/* ============================================================================================
 * Slots
 * ========================================================================================== */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

int schedule_next_slot(const schedule_entry *e, int64_t after_ms, int64_t *out_slot_ms)
{
    if (!e->is_cron) {
        *out_slot_ms = (floor_div(after_ms, e->every_ms) + 1) * e->every_ms;
        return BP_OK;
    }
    {
        int64_t next_s = 0;
        int rc = cron_next(&e->cron, e->zone, floor_div(after_ms, 1000), &next_s);
        if (rc != BP_OK) {
            return rc;
        }
        *out_slot_ms = next_s * 1000;
        return BP_OK;
    }
}

int schedule_prev_slots(const schedule_entry *e, int64_t before_ms, int64_t window_ms,
                        int64_t *out_slots, size_t max, size_t *out_n)
{
    int64_t oldest = before_ms - window_ms;
    size_t n = 0;
    *out_n = 0;
    if (max == 0) {
        return BP_OK;
    }
    if (!e->is_cron) {
        int64_t s = floor_div(before_ms - 1, e->every_ms) * e->every_ms;
        while (n < max && s >= oldest) {
            out_slots[n++] = s;
            s -= e->every_ms;
        }
        *out_n = n;
        return BP_OK;
    }
    /* Cron only runs forwards: walk the window from its start, keeping the last `max` slots in
     * a ring, then hand them out newest first. A window is at most a few days, so even
     * "* * * * *" is some thousand steps of about a microsecond. */
    {
        int64_t cur = oldest - 1, slot;
        size_t seen = 0;
        while (schedule_next_slot(e, cur, &slot) == BP_OK && slot < before_ms) {
            out_slots[seen % max] = slot;
            seen++;
            cur = slot;
        }
        n = seen < max ? seen : max;
        /* The ring holds the last n slots, the newest at (seen - 1) % max: rotate it into
         * chronological order, then reverse it. */
        if (seen > max) {
            size_t start = seen % max; /* the oldest kept slot */
            int64_t *copy = malloc(max * sizeof *copy);
            if (!copy) {
                return BP_E_NOMEM;
            }
            for (size_t i = 0; i < max; i++) {
                copy[i] = out_slots[(start + i) % max];
            }
            memcpy(out_slots, copy, max * sizeof *copy);
            free(copy);
        }
        for (size_t i = 0; i < n / 2; i++) {
            int64_t t = out_slots[i];
            out_slots[i] = out_slots[n - 1 - i];
            out_slots[n - 1 - i] = t;
        }
        *out_n = n;
        return BP_OK;
    }
}

void schedule_format_slot(int64_t slot_ms, char *buf, size_t len)
{
    int64_t s = floor_div(slot_ms, 1000);
    int64_t days = floor_div(s, 86400), rem = s - days * 86400, y;
    int m, d;
    tz_civil_from_days(days, &y, &m, &d);
    snprintf(buf, len, "%04lld-%02d-%02dT%02d:%02d:%02dZ", (long long)y, m, d, (int)(rem / 3600),
             (int)(rem / 60 % 60), (int)(rem % 60));
}

void schedule_slot_id(const char *entry, int64_t slot_ms, char *buf, size_t len)
{
    char iso[SCHEDULE_SLOT_ISO_SIZE];
    schedule_format_slot(slot_ms, iso, sizeof iso);
    snprintf(buf, len, "beat:%s:%s", entry, iso);
}

void schedule_unique_key(const char *entry, char *buf, size_t len)
{
    snprintf(buf, len, "beat:%s", entry);
}

bool schedule_parse_slot_id(const char *id, char *out_entry, size_t entry_len, int64_t *out_slot_ms)
{
    const char *name, *colon;
    if (!util_str_starts_with(id, "beat:")) {
        return false;
    }
    name = id + 5;
    colon = strchr(name, ':');
    if (!colon || colon == name || (size_t)(colon - name) >= entry_len) {
        return false;
    }
    if (util_parse_iso8601(colon + 1, out_slot_ms, NULL) != BP_OK) {
        return false;
    }
    util_strlcpy(out_entry, name, (size_t)(colon - name) + 1);
    return true;
}

void schedule_format_duration(int64_t ms, char *buf, size_t len)
{
    int64_t s = ms / 1000;
    if (ms % 1000 != 0 || ms == 0) {
        snprintf(buf, len, "%lldms", (long long)ms);
    } else if (s % 86400 == 0) {
        snprintf(buf, len, "%lldd", (long long)(s / 86400));
    } else if (s % 3600 == 0) {
        snprintf(buf, len, "%lldh", (long long)(s / 3600));
    } else if (s % 60 == 0) {
        snprintf(buf, len, "%lldm", (long long)(s / 60));
    } else {
        snprintf(buf, len, "%llds", (long long)s);
    }
}

void schedule_describe(const schedule_entry *e, char *buf, size_t len)
{
    if (!e->is_cron) {
        char every[32];
        schedule_format_duration(e->every_ms, every, sizeof every);
        snprintf(buf, len, "every %s", every);
    } else {
        char words[CRON_DESCRIBE_MAX];
        cron_describe(&e->cron, words, sizeof words);
        snprintf(buf, len, "cron %s (%s)", e->cron.text, words);
    }
}

json_t *schedule_entry_to_json(const schedule_entry *e)
{
    char describe[CRON_DESCRIBE_MAX + 300];
    json_t *o = json_object();
    if (!o) {
        return NULL;
    }
    schedule_describe(e, describe, sizeof describe);
    json_object_set_new(o, "name", json_string(e->name));
    json_object_set_new(o, "file", json_string(e->file));
    json_object_set_new(o, "job", json_string(e->job_type));
    json_object_set_new(o, "args", json_deep_copy(e->args));
    if (e->is_cron) {
        json_object_set_new(o, "cron", json_string(e->cron.text));
        json_object_set_new(o, "timezone", json_string(tz_name(e->zone)));
    } else {
        char every[32];
        schedule_format_duration(e->every_ms, every, sizeof every);
        json_object_set_new(o, "every", json_string(every));
        json_object_set_new(o, "every_s", json_integer(e->every_ms / 1000));
        json_object_set_new(o, "timezone", json_string("UTC"));
    }
    json_object_set_new(o, "schedule", json_string(describe));
    json_object_set_new(o, "queue", e->queue ? json_string(e->queue) : json_null());
    if (e->has_priority) {
        json_object_set_new(o, "priority", json_integer(e->priority));
    }
    if (e->has_max_retries) {
        json_object_set_new(o, "max_retries", json_integer(e->max_retries));
    }
    if (e->expires_ms > 0) {
        json_object_set_new(o, "expires_ms", json_integer(e->expires_ms));
    }
    json_object_set_new(o, "enabled", json_boolean(e->enabled));
    json_object_set_new(o, "missed",
                        json_string(e->missed == SCHEDULE_MISSED_RUN_ONCE ? "run_once" : "skip"));
    json_object_set_new(o, "grace_ms", json_integer(e->grace_ms));
    json_object_set_new(o, "no_overlap", json_boolean(e->no_overlap));
    if (e->description) {
        json_object_set_new(o, "description", json_string(e->description));
    }
    json_object_set_new(o, "problem", e->problem ? json_string(e->problem) : json_null());
    return o;
}
