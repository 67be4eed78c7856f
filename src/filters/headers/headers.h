/*
 * filters/headers/headers.h - the "headers" filter type.
 *
 * Removes, sets and adds request and response header fields, per route or
 * globally, from lists compiled once at create(). README.md in this folder
 * documents the configuration.
 */
#ifndef PT_FILTERS_HEADERS_H
#define PT_FILTERS_HEADERS_H

#include "portico/filter.h"

extern const struct pt_filter_type pt_filters_headers_type;

#endif
