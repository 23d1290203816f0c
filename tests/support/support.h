/*
 * support.h - helpers shared by the test suites: temp dirs, scaled deadlines, and running the
 * real betpipe binary (foreground with captured output, or as a background daemon).
 *
 * Paths come from the environment CTest sets (see tests/CMakeLists.txt):
 *   BP_TEST_BIN, BP_TEST_PLUGIN_DIR, BP_TEST_FIXTURE_PLUGIN_DIR, BP_TEST_SOURCE_DIR,
 *   BP_TEST_DATA_DIR, BP_TEST_BUILD_DIR.
 * Deadlines are multiplied by BP_TEST_TIMEOUT_MULTIPLIER (set it under sanitizers/valgrind).
 */
#ifndef BP_TEST_SUPPORT_H
#define BP_TEST_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A required environment variable; aborts the test (cr_assert) when missing. */
const char *bpt_env(const char *name);

/* A fresh directory under $TMPDIR (or /tmp); caller frees the string. bpt_rm_rf removes it. */
char *bpt_tmpdir(const char *tag);
void bpt_rm_rf(const char *path);

/* base_ms scaled by BP_TEST_TIMEOUT_MULTIPLIER. */
int64_t bpt_deadline_ms(int64_t base_ms);
int64_t bpt_now_ms(void);

/* Poll `cond(ud)` every few ms until it returns true or timeout_ms (scaled) passes. */
bool bpt_wait_for(bool (*cond)(void *ud), void *ud, int64_t timeout_ms);

/* The result of running a command to completion. */
typedef struct bpt_result {
    int exit_code; /* exit status, or 128 + signal */
    char *out;     /* captured stdout (NUL-terminated, never NULL) */
    char *err;     /* captured stderr */
} bpt_result;

/* Run argv (argv[0] = "betpipe" is replaced by BP_TEST_BIN) with extra environment entries
 * ("K=V", NULL-terminated, may be NULL), optional stdin text, and a timeout. */
bpt_result bpt_run(const char *const *argv, const char *const *env, const char *stdin_text,
                   int64_t timeout_ms);
/* Convenience: betpipe --data-dir DIR <args...> (NULL-terminated varargs). */
bpt_result bpt_betpipe(const char *data_dir, ...);
void bpt_result_free(bpt_result *r);

/* Start a background process (argv[0] = "betpipe" maps to BP_TEST_BIN); stdout/stderr go to
 * log_path (appended). Returns the pid. */
pid_t bpt_spawn(const char *const *argv, const char *const *env, const char *log_path);
/* In a forked child of process `parent`: die with it (SIGKILL), or exit at once if it is gone
 * already. A test that times out is killed by its runner before it can stop the daemons and
 * servers it started; without this they would outlive the suite. */
void bpt_die_with_parent(pid_t parent);
/* Send sig and wait up to timeout_ms for the process to exit; SIGKILL after that. Returns the
 * exit code (or 128 + signal). */
int bpt_stop(pid_t pid, int sig, int64_t timeout_ms);
/* Has the process exited? (reaps it) */
bool bpt_exited(pid_t pid, int *out_code);

/* Read a whole file (NULL when missing); caller frees. */
char *bpt_slurp(const char *path);

/* Write `text` to dir/name (replacing it); asserts on failure. */
void bpt_write_in(const char *dir, const char *name, const char *text);

/* How many times `needle` occurs in the file at `path` (0 when the file is missing). */
int bpt_count_in_file(const char *path, const char *needle);

/* A bpt_wait_for condition: the file at `path` contains `needle`. */
typedef struct bpt_file_has {
    const char *path, *needle;
} bpt_file_has;
bool bpt_file_contains(void *ud);

#endif
