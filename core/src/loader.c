/*
 * loader.c - from a .so file on disk to capabilities in the registry.
 *
 * A plugin is code we are about to run inside the daemon with all its privileges, built by
 * someone else at some other time against some version of our headers. So the loader is
 * suspicious in a precise order: first the file (a link or a writable file could be swapped for
 * other code), then the dynamic loader (dlopen with RTLD_NOW, so a missing symbol fails now and
 * not in the middle of a job), then the descriptor's frozen header - magic before anything else,
 * then the ABI version, then the size and build signature - and only then the plugin's own
 * init. Each step reads nothing the previous steps did not vouch for: we never look at a name
 * before the magic matched, never at `init` before struct_size says it is there.
 *
 * Whatever fails, the user gets one sentence that starts with the file name and says what to do
 * about it ("rebuild against betpipe 1.x headers", "check with: ldd FILE", "chmod go-w FILE").
 * And whatever fails, nothing stays behind: the registry transaction is rolled back, the host
 * table released, the object closed - so a directory mixing broken and healthy plugins loads
 * exactly the healthy ones.
 *
 * A known gap: the file is checked with lstat and then opened by name, so someone able to
 * replace it between the two calls wins. Defending against that means trusting the directory;
 * the plugin directory must not be writable by others either.
 */
#include "loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define LOADER_NAME_MAX 63

typedef struct loaded_plugin {
    char *file;
    char *name;
    char *version;
    char *description;
    char *build_sig;
    unsigned abi_major;
    unsigned abi_minor;
    void *handle;
    void (*fini)(void *state);
    void *state;
    const bp_host *host;
} loaded_plugin;

struct loader {
    registry *reg;
    loader_host_for_fn host_for;
    loader_host_release_fn host_release;
    void *ud;
    loaded_plugin **plugins; /* in load order */
    size_t n, cap;
};

int loader_new(registry *reg, loader_host_for_fn host_for, loader_host_release_fn host_release,
               void *ud, loader **out, bp_error *err)
{
    loader *l;
    *out = NULL;
    if (!reg || !host_for || !host_release) {
        return bp_err(err, BP_E_INVAL, "loader: a registry and host_for/host_release are needed");
    }
    l = calloc(1, sizeof *l);
    if (!l) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    l->reg = reg;
    l->host_for = host_for;
    l->host_release = host_release;
    l->ud = ud;
    *out = l;
    return BP_OK;
}

size_t loader_count(const loader *l)
{
    return l ? l->n : 0;
}

static void plugin_record_free(loaded_plugin *p)
{
    if (!p) {
        return;
    }
    free(p->file);
    free(p->name);
    free(p->version);
    free(p->description);
    free(p->build_sig);
    free(p);
}

/* Sanitizer builds keep every object mapped: LeakSanitizer symbolizes a leak only while the
 * code that allocated it is still loaded. */
static void close_handle(void *handle)
{
#ifdef BP_SANITIZED
    (void)handle;
#else
    if (handle) {
        dlclose(handle);
    }
#endif
}

/* ============================================================================================
 * Step 1: the file
 * ========================================================================================== */

static int check_file(const char *path, bp_error *err)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        int e = errno;
        char why[128];
        if (e == ENOENT || e == ENOTDIR) {
            return bp_err(err, BP_E_NOTFOUND, "%s: no such file", path);
        }
        if (strerror_r(e, why, sizeof why) != 0) {
            snprintf(why, sizeof why, "errno %d", e);
        }
        return bp_err(err, BP_E_IO, "%s: cannot stat: %s", path, why);
    }
    if (S_ISLNK(st.st_mode)) {
        return bp_err(err, BP_E_INVAL,
                      "%s: is a symbolic link; plugins must be regular files (a link can be "
                      "pointed at other code): copy the file instead",
                      path);
    }
    if (S_ISDIR(st.st_mode)) {
        return bp_err(err, BP_E_INVAL, "%s: is a directory, not a plugin file", path);
    }
    if (!S_ISREG(st.st_mode)) {
        return bp_err(err, BP_E_INVAL, "%s: is not a regular file", path);
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        return bp_err(err, BP_E_INVAL,
                      "%s: is group- or world-writable (mode %04o), so others could replace the "
                      "code betpipe runs: chmod go-w %s",
                      path, (unsigned)(st.st_mode & 07777), path);
    }
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        return bp_err(err, BP_E_INVAL,
                      "%s: is owned by uid %u, neither root nor the user betpipe runs as (uid %u)",
                      path, (unsigned)st.st_uid, (unsigned)geteuid());
    }
    return BP_OK;
}

/* Does the file start with the ELF magic? Used only to explain a dlopen failure. */
static bool looks_like_elf(const char *path)
{
    unsigned char magic[4] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;
    if (fd < 0) {
        return true; /* cannot tell: let dlerror() speak */
    }
    n = read(fd, magic, sizeof magic);
    close(fd);
    return n == 4 && magic[0] == 0x7f && magic[1] == 'E' && magic[2] == 'L' && magic[3] == 'F';
}

/* ============================================================================================
 * Steps 2-5: the object and its descriptor
 * ========================================================================================== */

static bool plugin_name_ok(const char *s)
{
    size_t n = 0;
    if (!s || !*s) {
        return false;
    }
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= LOADER_NAME_MAX ||
            !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            return false;
        }
    }
    return true;
}

static const loaded_plugin *find_loaded(const loader *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->plugins[i]->name, name) == 0) {
            return l->plugins[i];
        }
    }
    return NULL;
}

/* dlopen reads a name without a slash as a library to search for on the library path, not as
 * a file: "./" makes it a path again. */
static int open_object(const char *path, void **out_handle, bp_error *err)
{
    char *with_dir = NULL;
    const char *open_path = path;
    void *h;
    *out_handle = NULL;
    if (!strchr(path, '/')) {
        with_dir = util_asprintf("./%s", path);
        if (!with_dir) {
            return bp_err(err, BP_E_NOMEM, "out of memory");
        }
        open_path = with_dir;
    }
    dlerror();
    h = dlopen(open_path, RTLD_NOW | RTLD_LOCAL);
    free(with_dir);
    if (!h) {
        const char *why = dlerror();
        if (!looks_like_elf(path)) {
            return bp_err(err, BP_E_INVAL, "%s: not a shared object (not an ELF file)", path);
        }
        return bp_err(err, BP_E_IO, "%s: cannot be loaded: %s (check with: ldd %s)", path,
                      why ? why : "unknown dlopen error", path);
    }
    *out_handle = h;
    return BP_OK;
}

/*
 * Find the entry point, call it and check the frozen header. On success *out holds a copy of
 * the descriptor: min(struct_size, sizeof(bp_plugin)) bytes, the rest zero.
 */
static int read_descriptor(void *handle, const char *path, bp_plugin *out, bp_error *err)
{
    void *sym;
    bp_plugin_entry_fn entry;
    const bp_plugin *p;
    uint32_t magic, size;
    uint16_t major, minor;

    memset(out, 0, sizeof *out);
    dlerror();
    sym = dlsym(handle, BP_PLUGIN_ENTRY_SYMBOL);
    if (!sym) {
        return bp_err(err, BP_E_NOTFOUND,
                      "%s: not a betpipe plugin: no " BP_PLUGIN_ENTRY_SYMBOL
                      " symbol (define it with BP_PLUGIN_DEFINE)",
                      path);
    }
    /* POSIX guarantees a function's address survives the trip through void *. */
    memcpy(&entry, &sym, sizeof entry);
    p = entry();
    if (!p) {
        return bp_err(err, BP_E_INVAL, "%s: " BP_PLUGIN_ENTRY_SYMBOL "() returned NULL", path);
    }

    /* The frozen header, one field at a time, each read only once the previous one vouched
     * that we are looking at a betpipe descriptor of a layout we know. */
    memcpy(&magic, (const char *)p + offsetof(bp_plugin, magic), sizeof magic);
    if (magic != BP_PLUGIN_MAGIC) {
        return bp_err(err, BP_E_CORRUPT,
                      "%s: bad magic 0x%08x, expected 0x%08x: corrupt or "
                      "foreign plugin",
                      path, (unsigned)magic, (unsigned)BP_PLUGIN_MAGIC);
    }
    memcpy(&major, (const char *)p + offsetof(bp_plugin, abi_major), sizeof major);
    memcpy(&minor, (const char *)p + offsetof(bp_plugin, abi_minor), sizeof minor);
    if (major != BP_ABI_MAJOR) {
        return bp_err(err, BP_E_ABI,
                      "%s: built for ABI %u.x, this betpipe provides %d.%d: rebuild the plugin "
                      "against betpipe %d.x headers",
                      path, (unsigned)major, BP_ABI_MAJOR, BP_ABI_MINOR, BP_ABI_MAJOR);
    }
    if (minor > BP_ABI_MINOR) {
        return bp_err(err, BP_E_ABI,
                      "%s: needs ABI %u.%u, this betpipe provides %d.%d: upgrade betpipe", path,
                      (unsigned)major, (unsigned)minor, BP_ABI_MAJOR, BP_ABI_MINOR);
    }
    memcpy(&size, (const char *)p + offsetof(bp_plugin, struct_size), sizeof size);
    if (size < LOADER_PLUGIN_SIZE_1_0) {
        return bp_err(err, BP_E_ABI,
                      "%s: not binary compatible: descriptor size %u, expected at least %zu", path,
                      (unsigned)size, (size_t)LOADER_PLUGIN_SIZE_1_0);
    }
    memcpy(out, p, size < sizeof *out ? size : sizeof *out);
    if (!out->build_sig || strcmp(out->build_sig, BP_BUILD_SIG) != 0) {
        return bp_err(err, BP_E_ABI, "%s: not binary compatible: build signature %s, expected %s",
                      path, out->build_sig ? out->build_sig : "(none)", BP_BUILD_SIG);
    }
    return BP_OK;
}

static int check_identity(const loader *l, const bp_plugin *d, const char *path, bp_error *err)
{
    const loaded_plugin *other;
    if (!plugin_name_ok(d->name)) {
        char shown[80];
        size_t o = 0;
        for (; d->name && d->name[o] && o < 64; o++) {
            shown[o] = ((unsigned char)d->name[o] < 0x20) ? '?' : d->name[o];
        }
        shown[o] = '\0';
        return bp_err(err, BP_E_INVAL,
                      "%s: plugin name '%s' is invalid: expected a-z, 0-9 and _ only, at most "
                      "%d characters",
                      path, d->name ? shown : "(null)", LOADER_NAME_MAX);
    }
    if ((other = find_loaded(l, d->name)) != NULL) {
        return bp_err(err, BP_E_EXISTS, "%s: plugin '%s' is already loaded from %s", path, d->name,
                      other->file);
    }
    if (!d->init) {
        return bp_err(err, BP_E_INVAL, "%s: plugin '%s' has no init function", path, d->name);
    }
    return BP_OK;
}

static loaded_plugin *record_new(const char *path, const bp_plugin *d)
{
    loaded_plugin *p = calloc(1, sizeof *p);
    if (!p) {
        return NULL;
    }
    p->file = util_strdup(path);
    p->name = util_strdup(d->name);
    p->version = util_strdup(d->version ? d->version : "");
    p->description = util_strdup(d->description ? d->description : "");
    p->build_sig = util_strdup(d->build_sig);
    p->abi_major = d->abi_major;
    p->abi_minor = d->abi_minor;
    p->fini = d->fini;
    if (!p->file || !p->name || !p->version || !p->description || !p->build_sig) {
        plugin_record_free(p);
        return NULL;
    }
    return p;
}

/* ============================================================================================
 * Steps 6-7: init inside a registry transaction
 * ========================================================================================== */

static int run_init(loader *l, loaded_plugin *p, const bp_plugin *d, bp_error *err)
{
    bp_registry *table = NULL;
    bp_error perr = {0};
    void *state = NULL;
    int rc;

    p->host = l->host_for(l->ud, p->name);
    if (!p->host) {
        return bp_err(err, BP_E_INTERNAL, "%s: no host table for plugin '%s'", p->file, p->name);
    }
    rc = registry_begin(l->reg, p->name, p->host, &table, err);
    if (rc != BP_OK) {
        bp_err_prefix(err, "%s: ", p->file);
        goto fail;
    }

    rc = d->init(p->host, table, &state, &perr);
    perr.msg[sizeof perr.msg - 1] = '\0';
    if (rc != BP_OK) {
        /* init failed: whatever it registered goes, and fini is not called - the plugin has no
         * state we could hand it. */
        registry_rollback(l->reg);
        if (rc > 0) {
            rc =
                bp_err(err, BP_E_INTERNAL, "%s: plugin '%s' init failed with the invalid status %d",
                       p->file, p->name, rc);
        } else if (perr.msg[0]) {
            bp_err(err, rc, "%s: plugin '%s' init failed: %s", p->file, p->name, perr.msg);
        } else {
            bp_err(err, rc, "%s: plugin '%s' init failed: %s (no message)", p->file, p->name,
                   bp_status_str(rc));
        }
        goto fail;
    }

    /* init succeeded, so from here on a failure must call fini. */
    if (registry_count(l->reg, p->name) == 0) {
        registry_rollback(l->reg);
        rc = bp_err(err, BP_E_INVAL,
                    "%s: plugin '%s' registers nothing: its init must register at least one job "
                    "type, model, collector or notifier",
                    p->file, p->name);
        goto fail_fini;
    }
    rc = registry_commit(l->reg, state, &perr);
    if (rc != BP_OK) {
        bp_err(err, rc, "%s: plugin '%s': a registration was refused: %s", p->file, p->name,
               perr.msg);
        goto fail_fini;
    }
    p->state = state;
    return BP_OK;

fail_fini:
    if (p->fini) {
        p->fini(state);
    }
fail:
    l->host_release(l->ud, p->host);
    p->host = NULL;
    return rc;
}

int loader_load_file(loader *l, const char *path, bp_error *err)
{
    void *handle = NULL;
    loaded_plugin *p = NULL;
    bp_plugin desc;
    int rc;

    if (!l || !path || !*path) {
        return bp_err(err, BP_E_INVAL, "loader: no plugin path given");
    }
    if ((rc = check_file(path, err)) != BP_OK) {
        return rc;
    }
    if ((rc = open_object(path, &handle, err)) != BP_OK) {
        return rc;
    }
    if ((rc = read_descriptor(handle, path, &desc, err)) != BP_OK ||
        (rc = check_identity(l, &desc, path, err)) != BP_OK) {
        goto fail;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        loaded_plugin **grown = realloc(l->plugins, cap * sizeof *grown);
        if (!grown) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            goto fail;
        }
        l->plugins = grown;
        l->cap = cap;
    }
    if (!(p = record_new(path, &desc))) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto fail;
    }
    if ((rc = run_init(l, p, &desc, err)) != BP_OK) {
        goto fail;
    }
    p->handle = handle;
    l->plugins[l->n++] = p;
    return BP_OK;
fail:
    plugin_record_free(p);
    close_handle(handle);
    return rc;
}

/* ============================================================================================
 * Directories, unloading, describing
 * ========================================================================================== */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The "*.so" names in dir, sorted. */
static int list_plugin_files(const char *dir, char ***out_names, size_t *out_n, bp_error *err)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = BP_OK;
    *out_names = NULL;
    *out_n = 0;
    if (!d) {
        int e = errno;
        char why[128];
        if (e == ENOENT || e == ENOTDIR) {
            return bp_err(err, BP_E_NOTFOUND, "plugin directory %s does not exist", dir);
        }
        if (strerror_r(e, why, sizeof why) != 0) {
            snprintf(why, sizeof why, "errno %d", e);
        }
        return bp_err(err, BP_E_IO, "plugin directory %s: %s", dir, why);
    }
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len <= 3 || strcmp(de->d_name + len - 3, ".so") != 0) {
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 32;
            char **grown = realloc(names, ncap * sizeof *grown);
            if (!grown) {
                rc = bp_err(err, BP_E_NOMEM, "out of memory");
                goto done;
            }
            names = grown;
            cap = ncap;
        }
        if (!(names[n] = util_strdup(de->d_name))) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            goto done;
        }
        n++;
    }
    if (n > 1) {
        qsort(names, n, sizeof *names, cmp_names);
    }
done:
    closedir(d);
    if (rc != BP_OK) {
        for (size_t i = 0; i < n; i++) {
            free(names[i]);
        }
        free(names);
        return rc;
    }
    *out_names = names;
    *out_n = n;
    return BP_OK;
}

int loader_load_dir(loader *l, const char *dir, json_t **out_report, bp_error *err)
{
    char **names = NULL;
    size_t n = 0;
    json_t *report = NULL;
    int rc;

    if (out_report) {
        *out_report = NULL;
    }
    if ((rc = list_plugin_files(dir, &names, &n, err)) != BP_OK) {
        return rc;
    }
    if (!(report = json_array())) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        bp_error perr = {0};
        json_t *row;
        char *path = util_asprintf("%s/%s", dir, names[i]);
        if (!path) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            goto done;
        }
        int prc = loader_load_file(l, path, &perr);
        if (prc == BP_OK) {
            const loaded_plugin *p = l->plugins[l->n - 1];
            log_info("loader", "plugin loaded name=%s version=%s file=%s items=%zu", p->name,
                     p->version, path, registry_count(l->reg, p->name));
            row = json_pack("{s:s, s:b, s:s}", "file", path, "ok", 1, "plugin", p->name);
        } else {
            log_error("loader", "plugin skipped: %s", perr.msg);
            row = json_pack("{s:s, s:b, s:s, s:i}", "file", path, "ok", 0, "error", perr.msg,
                            "status", prc);
        }
        free(path);
        if (!row || json_array_append_new(report, row) != 0) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            goto done;
        }
    }
done:
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    if (rc != BP_OK) {
        json_decref(report);
        return rc;
    }
    if (out_report) {
        *out_report = report;
    } else {
        json_decref(report);
    }
    return BP_OK;
}

void loader_unload_all(loader *l)
{
    if (!l) {
        return;
    }
    while (l->n > 0) {
        loaded_plugin *p = l->plugins[--l->n];
        /* The registry entries point at the state fini is about to free: drop them first. */
        registry_remove_plugin(l->reg, p->name);
        if (p->fini) {
            p->fini(p->state);
        }
        l->host_release(l->ud, p->host);
        close_handle(p->handle);
        plugin_record_free(p);
    }
}

void loader_free(loader *l)
{
    if (!l) {
        return;
    }
    loader_unload_all(l);
    free(l->plugins);
    free(l);
}

static json_t *plugin_json(const loader *l, const loaded_plugin *p)
{
    static const char *const lists[REGISTRY_KINDS] = {"job_types", "models", "collectors",
                                                      "notifiers"};
    char abi[32];
    json_t *o;
    snprintf(abi, sizeof abi, "%u.%u", p->abi_major, p->abi_minor);
    o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "name", p->name, "version", p->version,
                  "description", p->description, "file", p->file, "abi", abi, "build_sig",
                  p->build_sig);
    for (int k = 0; o && k < REGISTRY_KINDS; k++) {
        json_t *items = registry_list_plugin(l->reg, (registry_kind)k, p->name);
        if (!items || json_object_set_new(o, lists[k], items) != 0) {
            json_decref(o);
            o = NULL;
        }
    }
    return o;
}

int loader_describe(const loader *l, json_t **out, bp_error *err)
{
    json_t *a = json_array();
    *out = NULL;
    if (!a) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; l && i < l->n; i++) {
        json_t *o = plugin_json(l, l->plugins[i]);
        if (!o || json_array_append_new(a, o) != 0) {
            json_decref(a);
            return bp_err(err, BP_E_NOMEM, "out of memory");
        }
    }
    *out = a;
    return BP_OK;
}

int loader_check_file(const char *path, loader_host_for_fn host_for,
                      loader_host_release_fn host_release, void *ud, json_t **out_report,
                      bp_error *err)
{
    registry *scratch = NULL;
    loader *l = NULL;
    json_t *report = NULL;
    int rc;

    *out_report = NULL;
    if ((rc = registry_new(&scratch, err)) != BP_OK ||
        (rc = loader_new(scratch, host_for, host_release, ud, &l, err)) != BP_OK ||
        (rc = loader_load_file(l, path, err)) != BP_OK) {
        goto done;
    }
    if (!l || l->n == 0 || !l->plugins || !(report = plugin_json(l, l->plugins[0]))) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto done;
    }
done:
    /* fini and unload before the scratch registry goes: the plugin may hold its table. */
    loader_free(l);
    registry_free(scratch);
    if (rc == BP_OK) {
        *out_report = report;
    }
    return rc;
}
