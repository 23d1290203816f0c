/*
 * betpipe/log.h - log levels and the plugin-side logging macros.
 *
 * Part of the plugin ABI. Plugins log only through host->log; the core prefixes the line with the
 * timestamp, level and "plugin:<name>" component and writes one line per event:
 *     2026-11-22T10:15:00.123Z INFO plugin:maint backup written path=/var/.../x.db bytes=81920
 */
#ifndef BETPIPE_LOG_H
#define BETPIPE_LOG_H

#define BP_LOG_ERROR 0
#define BP_LOG_WARN  1
#define BP_LOG_INFO  2
#define BP_LOG_DEBUG 3
#define BP_LOG_TRACE 4

#define BP_LOG_(h, lvl, ...)                                                                       \
    do {                                                                                           \
        if ((h)->log_enabled((h), (lvl))) {                                                        \
            (h)->log((h), (lvl), __VA_ARGS__);                                                     \
        }                                                                                          \
    } while (0)

/* BP_LOGE(host, "fmt", ...) and friends: error, warning, info, debug, trace. */
#define BP_LOGE(h, ...) BP_LOG_((h), BP_LOG_ERROR, __VA_ARGS__)
#define BP_LOGW(h, ...) BP_LOG_((h), BP_LOG_WARN, __VA_ARGS__)
#define BP_LOGI(h, ...) BP_LOG_((h), BP_LOG_INFO, __VA_ARGS__)
#define BP_LOGD(h, ...) BP_LOG_((h), BP_LOG_DEBUG, __VA_ARGS__)
#define BP_LOGT(h, ...) BP_LOG_((h), BP_LOG_TRACE, __VA_ARGS__)

#endif
