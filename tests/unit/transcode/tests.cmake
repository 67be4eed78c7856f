# One cmocka executable per tests/unit/transcode/test_<file>.c, linked with pt_transcode.
file(GLOB pt_transcode_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/test_*.c)
foreach(t ${pt_transcode_tests})
  get_filename_component(n ${t} NAME_WE)
  string(REGEX REPLACE "^test_" "" n ${n})
  pt_unit_test(transcode ${n} DEPS pt_transcode)
endforeach()

# The JSON codec's test schema (tests/protos/transcode_json) compiled by
# protoc-c, with the hooks a descriptor pool would give (json_fixture.c);
# also used by fuzz/transcode_json and bench_json_codec.
set(PT_TCJ_PROTO_DIR ${CMAKE_CURRENT_LIST_DIR}/../../protos/transcode_json)
set(PT_TCJ_GEN ${CMAKE_BINARY_DIR}/gen_transcode_json)
add_custom_command(
  OUTPUT ${PT_TCJ_GEN}/kitchen.pb-c.c ${PT_TCJ_GEN}/kitchen.pb-c.h
         ${PT_TCJ_GEN}/presence.pb-c.c ${PT_TCJ_GEN}/presence.pb-c.h
  COMMAND ${CMAKE_COMMAND} -E make_directory ${PT_TCJ_GEN}
  COMMAND ${PROTOC_C} -I${PT_TCJ_PROTO_DIR} -I/usr/include --c_out=${PT_TCJ_GEN}
          kitchen.proto presence.proto
  DEPENDS ${PT_TCJ_PROTO_DIR}/kitchen.proto ${PT_TCJ_PROTO_DIR}/presence.proto
  WORKING_DIRECTORY ${PT_TCJ_PROTO_DIR}
  COMMENT "protoc-c: JSON codec test protos")
add_library(pt_test_json STATIC ${PT_TCJ_GEN}/kitchen.pb-c.c ${PT_TCJ_GEN}/presence.pb-c.c
            ${CMAKE_CURRENT_LIST_DIR}/json_fixture.c)
target_compile_options(pt_test_json PRIVATE -Wno-missing-prototypes -Wno-missing-braces)
target_include_directories(pt_test_json PUBLIC ${PT_TCJ_GEN} ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(pt_test_json PUBLIC pt_transcode pt_proto)
foreach(t json_decode json_encode json_golden)
  if(TARGET test_transcode_${t})
    target_link_libraries(test_transcode_${t} PRIVATE pt_test_json PkgConfig::JANSSON)
    target_compile_definitions(test_transcode_${t} PRIVATE
      PT_JSON_GOLDEN_DIR="${CMAKE_CURRENT_LIST_DIR}/json_golden")
  endif()
endforeach()

# Not a test: the codec as a command next to the portico binary, for
# json_roundtrip.py (against python's json_format) and for people.
add_executable(tc_json ${CMAKE_CURRENT_LIST_DIR}/tc_json.c)
target_link_libraries(tc_json PRIVATE pt_test_json)
set_target_properties(tc_json PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})

# Random messages through tc_json against python's json_format, both ways
# (integration-labelled: it runs python and protoc).
add_test(NAME integration/transcode_json_roundtrip
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/json_roundtrip.py
                 --tc-json $<TARGET_FILE:tc_json> --count 300)
set_tests_properties(integration/transcode_json_roundtrip PROPERTIES
  LABELS integration TIMEOUT 300 ENVIRONMENT PYTHONDONTWRITEBYTECODE=1)
