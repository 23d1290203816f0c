/*
 * log.h - the core's logger. One line per event:
 *     2026-11-22T10:15:00.123Z INFO pool job started id=... type=sys.noop queue=default
 * Thread-safe: a line is written with one write(2) so lines never interleave.
 */
#ifndef BP_CORE_LOG_H
#define BP_CORE_LOG_H

#include <stdarg.h>

#include "betpipe/log.h"
#include "betpipe/status.h"

/* Set the threshold (BP_LOG_*) and the file descriptor lines go to (default: 2). */
void log_set_level(int level);
int log_get_level(void);
void log_set_fd(int fd);
/* "error", "warn", "info", "debug", "trace" -> level; BP_E_INVAL for anything else. */
int log_level_parse(const char *name, int *out_level);
const char *log_level_name(int level);
/* Also emit JSON lines instead of text (for log shippers). */
void log_set_json(int on);

void log_write(int level, const char *component, const char *fmt, ...) BP_PRINTF(3, 4);
void log_vwrite(int level, const char *component, const char *fmt, va_list ap) BP_PRINTF(3, 0);

#define log_error(comp, ...) log_write(BP_LOG_ERROR, (comp), __VA_ARGS__)
#define log_warn(comp, ...)  log_write(BP_LOG_WARN, (comp), __VA_ARGS__)
#define log_info(comp, ...)  log_write(BP_LOG_INFO, (comp), __VA_ARGS__)
#define log_debug(comp, ...)                                                                       \
    do {                                                                                           \
        if (log_get_level() >= BP_LOG_DEBUG) {                                                     \
            log_write(BP_LOG_DEBUG, (comp), __VA_ARGS__);                                          \
        }                                                                                          \
    } while (0)

#endif
