/*
 * transcode/route_int.h - private to route_*.c.
 */
#ifndef PT_TRANSCODE_ROUTE_INT_H
#define PT_TRANSCODE_ROUTE_INT_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

#include "portico/str.h"

/* The field of d called name: its proto name or its json_name. NULL when none. */
const ProtobufCFieldDescriptor *pt_tc_field_find(const ProtobufCMessageDescriptor *d,
                                                 struct pt_str name);
/* A lower-case HTTP header (and gRPC metadata) name: [0-9a-z-_.]+. */
bool pt_tc_header_name_ok(struct pt_str name);

#endif
