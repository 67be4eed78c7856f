/*
 * filters/builtin.h - the filter types compiled into portico.
 *
 * Built-in filters use only the plugin ABI (include/portico/), exactly like
 * a filter loaded from a shared object; this is their registration
 * function, the counterpart of a plugin's pt_plugin_init.
 */
#ifndef PT_FILTERS_BUILTIN_H
#define PT_FILTERS_BUILTIN_H

/*
 * Register every built-in filter type with pt_filter_register().
 * Status: 0, or the first registration's error (PT_ERR_CONFIG, e.g. when
 * called twice). Thread: main thread, before workers start.
 */
int pt_filters_register_builtin(void);

#endif
