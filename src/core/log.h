/*
 * core/log.h - the gateway's own diagnostics (not the access log).
 *
 * Lines go to stderr as "<RFC 3339 time> <level> <message>". Any thread may
 * log; a line is written with one write(2) so lines never interleave.
 */
#ifndef PT_CORE_LOG_H
#define PT_CORE_LOG_H

enum pt_log_level {
    PT_LOG_ERROR = 0,
    PT_LOG_WARN,
    PT_LOG_INFO,
    PT_LOG_DEBUG,
};

void pt_log_set_level(enum pt_log_level level);
enum pt_log_level pt_log_get_level(void);
void pt_log(enum pt_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pt_log_error(...) pt_log(PT_LOG_ERROR, __VA_ARGS__)
#define pt_log_warn(...) pt_log(PT_LOG_WARN, __VA_ARGS__)
#define pt_log_info(...) pt_log(PT_LOG_INFO, __VA_ARGS__)
#define pt_log_debug(...)                       \
    do {                                        \
        if (pt_log_get_level() >= PT_LOG_DEBUG) \
            pt_log(PT_LOG_DEBUG, __VA_ARGS__);  \
    } while (0)

#endif
