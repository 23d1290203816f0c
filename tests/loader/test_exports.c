/*
 * test_exports.c - every shipped plugin exports exactly one symbol, bp_plugin_entry.
 *
 * Hidden visibility is a build setting, and build settings drift: one plugin compiled without
 * it, or a static library linked without --exclude-libs, and its symbols land in the dynamic
 * table where they can interpose on other plugins' or the daemon's symbols. This test reads the
 * ELF dynamic symbol table of every .so in BP_TEST_PLUGIN_DIR itself (no dependency on binutils)
 * and lists anything else that is exported.
 *
 * The same check runs against two fixtures to prove it can fail: job-healthy_a (clean) and
 * job-bad_exports (exports fixture_extra_export). When nm is installed it is used as a second
 * opinion on the parser.
 */
#include <dirent.h>
#include <elf.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support.h"
#include "util.h"

#define EXPORTS_MAX_FILE (256u * 1024u * 1024u)

/* A list of symbol names, sorted and newline-separated, for easy comparison and messages. */
typedef struct name_list {
    char *names[512];
    size_t n;
} name_list;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_free(name_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->names[i]);
    }
    l->n = 0;
}

static char *list_join(const name_list *l)
{
    size_t len = 1;
    for (size_t i = 0; i < l->n; i++) {
        len += strlen(l->names[i]) + 2;
    }
    char *s = calloc(1, len);
    cr_assert(s);
    for (size_t i = 0; i < l->n; i++) {
        if (i) {
            strncat(s, ", ", len - strlen(s) - 1);
        }
        strncat(s, l->names[i], len - strlen(s) - 1);
    }
    return s;
}

/*
 * The defined, visible symbols in the dynamic symbol table of an ELF64 little-endian shared
 * object (what `nm -D --defined-only` prints). Returns 0, or -1 with why filled.
 */
static int elf_exports(const char *path, name_list *out, char *why, size_t why_len)
{
    char *buf = NULL;
    size_t len = 0;
    bp_error e = {0};
    int rc = -1;
    out->n = 0;
    if (util_read_file(path, EXPORTS_MAX_FILE, &buf, &len, &e) != BP_OK) {
        util_strlcpy(why, e.msg, why_len);
        return -1;
    }
    const unsigned char *b = (const unsigned char *)buf;
    if (len < sizeof(Elf64_Ehdr) || memcmp(b, ELFMAG, SELFMAG) != 0) {
        snprintf(why, why_len, "not an ELF file");
        goto done;
    }
    if (b[EI_CLASS] != ELFCLASS64 || b[EI_DATA] != ELFDATA2LSB) {
        snprintf(why, why_len, "not a 64-bit little-endian ELF file");
        goto done;
    }
    Elf64_Ehdr eh;
    memcpy(&eh, b, sizeof eh);
    if (eh.e_shoff == 0 || eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shoff > len ||
        (uint64_t)eh.e_shnum * sizeof(Elf64_Shdr) > len - eh.e_shoff) {
        snprintf(why, why_len, "no usable section header table");
        goto done;
    }
    bool found = false;
    for (size_t i = 0; i < eh.e_shnum; i++) {
        Elf64_Shdr sh, str;
        memcpy(&sh, b + eh.e_shoff + i * sizeof sh, sizeof sh);
        if (sh.sh_type != SHT_DYNSYM) {
            continue;
        }
        found = true;
        if (sh.sh_link >= eh.e_shnum || sh.sh_entsize != sizeof(Elf64_Sym) || sh.sh_offset > len ||
            sh.sh_size > len - sh.sh_offset) {
            snprintf(why, why_len, "corrupt .dynsym section");
            goto done;
        }
        memcpy(&str, b + eh.e_shoff + sh.sh_link * sizeof str, sizeof str);
        if (str.sh_offset > len || str.sh_size > len - str.sh_offset || str.sh_size == 0 ||
            b[str.sh_offset + str.sh_size - 1] != '\0') {
            snprintf(why, why_len, "corrupt dynamic string table");
            goto done;
        }
        for (size_t k = 1; k < sh.sh_size / sizeof(Elf64_Sym); k++) {
            Elf64_Sym sym;
            memcpy(&sym, b + sh.sh_offset + k * sizeof sym, sizeof sym);
            unsigned bind = ELF64_ST_BIND(sym.st_info), type = ELF64_ST_TYPE(sym.st_info);
            unsigned vis = ELF64_ST_VISIBILITY(sym.st_other);
            if (sym.st_shndx == SHN_UNDEF || sym.st_name >= str.sh_size ||
                (bind != STB_GLOBAL && bind != STB_WEAK && bind != STB_GNU_UNIQUE) ||
                (vis != STV_DEFAULT && vis != STV_PROTECTED) || type == STT_SECTION ||
                type == STT_FILE) {
                continue;
            }
            const char *name = (const char *)b + str.sh_offset + sym.st_name;
            if (!*name) {
                continue;
            }
            cr_assert_lt(out->n, sizeof out->names / sizeof out->names[0]);
            out->names[out->n++] = util_strdup(name);
        }
    }
    if (!found) {
        snprintf(why, why_len, "no dynamic symbol table (.dynsym)");
        goto done;
    }
    qsort(out->names, out->n, sizeof out->names[0], cmp_str);
    rc = 0;
done:
    free(buf);
    return rc;
}

/* The check itself: NULL when `path` exports exactly bp_plugin_entry, else a new string
 * saying what is wrong. */
static char *export_problem(const char *path)
{
    name_list l = {0};
    char why[256];
    char *problem = NULL;
    if (elf_exports(path, &l, why, sizeof why) != 0) {
        problem = util_asprintf("%s: cannot read its symbols: %s", path, why);
    } else if (l.n != 1 || strcmp(l.names[0], "bp_plugin_entry") != 0) {
        char *joined = list_join(&l);
        problem = util_asprintf("%s exports [%s]; a plugin must export only bp_plugin_entry "
                                "(build it with bp_add_plugin, which hides everything else)",
                                path, joined);
        free(joined);
    }
    list_free(&l);
    return problem;
}

static char *fixture(const char *name)
{
    return util_asprintf("%s/job-%s.so", bpt_env("BP_TEST_FIXTURE_PLUGIN_DIR"), name);
}

/* ---- the real check ---------------------------------------------------------------------------
 */

Test(exports, shipped_plugins_export_only_bp_plugin_entry)
{
    const char *dir = bpt_env("BP_TEST_PLUGIN_DIR");
    const char *allow = getenv("BP_TEST_ALLOW_NO_PLUGINS");
    DIR *d = opendir(dir);
    size_t checked = 0;
    char report[4096] = "";
    size_t failures = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (!util_str_ends_with(de->d_name, ".so")) {
            continue;
        }
        char *path = util_asprintf("%s/%s", dir, de->d_name);
        char *problem = export_problem(path);
        checked++;
        if (problem) {
            failures++;
            size_t used = strlen(report);
            snprintf(report + used, sizeof report - used, "\n  %s", problem);
            free(problem);
        }
        free(path);
    }
    if (d) {
        closedir(d);
    }
    if (checked == 0) {
        if (allow && strcmp(allow, "1") == 0) {
            /* Criterion 2.4.1: cr_skip_test does not leave the test (so return), and a
             * cr_log_warn before it turns the exit status into a failure (so only the skip
             * message, which is printed, carries the explanation). */
            cr_skip_test("no shipped plugins in %s yet; passing only because "
                         "BP_TEST_ALLOW_NO_PLUGINS=1",
                         dir);
            return;
        }
        cr_assert_fail("no shipped plugins found in %s: betpipe ships its job types, models, "
                       "collectors and notifiers as plugins, so there must be some (set "
                       "BP_TEST_ALLOW_NO_PLUGINS=1 to run this before they exist)",
                       dir);
    }
    cr_assert_eq(failures, 0, "%zu of %zu shipped plugins export more than bp_plugin_entry:%s",
                 failures, checked, report);
}

/* ---- proving the check can fail ------------------------------------------------------------- */

Test(exports, check_accepts_a_clean_plugin)
{
    char *p = fixture("healthy_a");
    char *problem = export_problem(p);
    cr_assert_null(problem, "%s", problem);
    free(p);
}

Test(exports, check_catches_an_extra_export)
{
    char *p = fixture("bad_exports");
    char *problem = export_problem(p);
    cr_assert_not_null(problem);
    cr_assert(strstr(problem, "exports [bp_plugin_entry, fixture_extra_export]"), "%s", problem);
    free(problem);
    free(p);
}

Test(exports, check_catches_a_missing_entry)
{
    char *p = fixture("bad_noentry");
    char *problem = export_problem(p);
    cr_assert_not_null(problem);
    cr_assert(strstr(problem, "exports []"), "%s", problem);
    free(problem);
    free(p);
}

Test(exports, check_refuses_what_is_not_elf)
{
    char *dir = bpt_tmpdir("exports");
    char *p = util_asprintf("%s/fake.so", dir);
    FILE *f = fopen(p, "w");
    cr_assert(f);
    fputs("#!/bin/sh\n", f);
    fclose(f);
    char *problem = export_problem(p);
    cr_assert_not_null(problem);
    cr_assert(strstr(problem, "cannot read its symbols: not an ELF file"), "%s", problem);
    free(problem);
    free(p);
    bpt_rm_rf(dir);
    free(dir);
}

/* nm, when present, must see the same exports as our parser. */
Test(exports, parser_agrees_with_nm)
{
    const char *nm = "/usr/bin/nm";
    if (access(nm, X_OK) != 0) {
        cr_skip_test("%s is not installed", nm);
        return;
    }
    char *p = fixture("bad_exports");
    const char *argv[] = {nm, "-D", "--defined-only", p, NULL};
    bpt_result r = bpt_run(argv, NULL, NULL, 30000);
    cr_assert_eq(r.exit_code, 0, "nm failed: %s", r.err);
    name_list mine = {0}, theirs = {0};
    char why[256];
    cr_assert_eq(elf_exports(p, &mine, why, sizeof why), 0, "%s", why);
    /* nm lines: "<address> <type> <name>" */
    for (char *line = r.out; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) {
            *nl = '\0';
        }
        char *name = strrchr(line, ' ');
        if (name && name[1]) {
            theirs.names[theirs.n++] = util_strdup(name + 1);
        }
        line = nl ? nl + 1 : NULL;
    }
    qsort(theirs.names, theirs.n, sizeof theirs.names[0], cmp_str);
    char *a = list_join(&mine), *b = list_join(&theirs);
    cr_assert_str_eq(a, b, "parser [%s] vs nm [%s]", a, b);
    free(a);
    free(b);
    list_free(&mine);
    list_free(&theirs);
    bpt_result_free(&r);
    free(p);
}
